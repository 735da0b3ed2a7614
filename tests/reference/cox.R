# Reference values for tests/test_cox.py (rp2pr_eval.models.cox.fit_cox).
#
# Run from the repository root:   Rscript tests/reference/cox.R
# Writes tests/reference/data/cox_data.csv.gz and tests/reference/cox_reference.json.
# R is never needed at test time: both outputs are committed.
#
# 1. Simulates a fixed dataset: 4,000 patients in 30 clusters of unequal size,
#    a cluster-level treatment, a patient-level period indicator and their
#    product, and six case-mix columns (age in years, female, stage 3, stage 4,
#    performance status 0-4, a continuous deprivation score). Survival times are
#    Weibull proportional hazards (shape 0.8, median about 250 days) with a
#    normal cluster frailty (SD 0.3 on the log-hazard scale, so the robust and
#    model-based variances differ); censoring is administrative (uniform entry,
#    1-3 years of follow-up) plus 5% random loss. Times are floored to whole
#    days, so there are many tied event times, tied events and censorings, and
#    a few deaths on day 0.
# 2. Fits survival::coxph(Surv(time, died) ~ ..., cluster = cl) with
#    ties = "efron" and ties = "breslow", and the same models without
#    `cluster`. The reference fits use coxph.control(eps = 1e-10, iter.max = 100)
#    so that the coefficients are converged well beyond the test tolerance; the
#    default-control (eps = 1e-9) coefficients are recorded for comparison.
#    Robust variance: fit$var (Lin & Wei 1989: crossprod of the dfbeta
#    residuals summed by cluster, no small-sample factor); model-based variance:
#    fit$naive.var with cluster, fit$var without.
#    The score residuals summed by cluster, residuals(fit, type = "score",
#    collapse = cl), are recorded as well.

suppressPackageStartupMessages({
  library(survival)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = FALSE)
script <- sub("^--file=", "", args[grep("^--file=", args)])
ref_dir <- if (length(script)) dirname(normalizePath(script)) else "tests/reference"
data_path <- file.path(ref_dir, "data", "cox_data.csv.gz")
json_path <- file.path(ref_dir, "cox_reference.json")
dir.create(dirname(data_path), showWarnings = FALSE, recursive = TRUE)

# ---- 1. data -----------------------------------------------------------------
set.seed(20240612)
N <- 4000
G <- 30
sizes <- sample(60:220, G, replace = TRUE)
sizes <- round(sizes * N / sum(sizes))
sizes[G] <- N - sum(sizes[-G])
cl <- rep(seq_len(G), sizes)
treated_c <- sample(rep(0:1, c(18, 12)))
frailty <- rnorm(G, 0, 0.3)
treated <- treated_c[cl]
post <- rbinom(N, 1, 0.5)
age <- round(rnorm(N, 72, 9))
female <- rbinom(N, 1, 0.45)
stage <- sample(1:4, N, TRUE, prob = c(0.2, 0.15, 0.3, 0.35))
ps <- sample(0:4, N, TRUE, prob = c(0.2, 0.3, 0.25, 0.15, 0.1))
imd <- round(rnorm(N), 3)
lp <- 0.10 * treated - 0.05 * post - 0.20 * treated * post + 0.02 * (age - 72) -
  0.15 * female + 0.6 * (stage == 3) + 1.1 * (stage == 4) + 0.25 * ps + 0.08 * imd +
  frailty[cl]
shape <- 0.8
scale <- 250 / log(2)^(1 / shape)           # median 250 days at lp = 0
t_event <- scale * (-log(runif(N)) / exp(lp))^(1 / shape)
t_cens <- runif(N, 365, 3 * 365)
lost <- rbinom(N, 1, 0.05) == 1
t_cens[lost] <- runif(sum(lost), 0, t_cens[lost])
died <- as.integer(t_event <= t_cens)
time <- floor(pmin(t_event, t_cens))
d <- data.frame(cl, time, died, treated, post, treated_post = treated * post, age, female,
                stage3 = as.integer(stage == 3), stage4 = as.integer(stage == 4), ps, imd)
con <- gzfile(data_path, "w")
write.csv(d, con, row.names = FALSE)
close(con)
d <- read.csv(data_path)  # fit exactly what is committed

form <- Surv(time, died) ~ treated + post + treated_post + age + female + stage3 + stage4 + ps + imd
tight <- coxph.control(eps = 1e-10, iter.max = 100)

fit_one <- function(ties) {
  m_cl <- coxph(form, data = d, ties = ties, cluster = cl, control = tight)
  m_nocl <- coxph(form, data = d, ties = ties, control = tight)
  m_def <- coxph(form, data = d, ties = ties, cluster = cl)
  U_g <- residuals(m_cl, type = "score", collapse = d$cl)
  stopifnot(max(abs(m_cl$naive.var - m_nocl$var)) < 1e-12)
  list(
    call = sprintf(paste0("coxph(%s, data = d, ties = \"%s\", cluster = cl, ",
                          "control = coxph.control(eps = 1e-10, iter.max = 100))"),
                   paste(deparse(form), collapse = ""), ties),
    call_no_cluster = sprintf(paste0("coxph(%s, data = d, ties = \"%s\", ",
                                     "control = coxph.control(eps = 1e-10, iter.max = 100))"),
                              paste(deparse(form), collapse = ""), ties),
    names = names(coef(m_cl)),
    coef = unname(coef(m_cl)),
    se_robust = unname(sqrt(diag(m_cl$var))),
    se_naive = unname(sqrt(diag(m_cl$naive.var))),
    vcov_robust = unname(m_cl$var),
    vcov_naive = unname(m_cl$naive.var),
    coef_no_cluster = unname(coef(m_nocl)),
    se_no_cluster = unname(sqrt(diag(m_nocl$var))),
    loglik_null = m_cl$loglik[1],
    loglik = m_cl$loglik[2],
    n_iter = m_cl$iter,
    score_resid_by_cluster = unname(U_g),
    coef_default_eps = unname(coef(m_def)),
    loglik_default_eps = m_def$loglik[2]
  )
}

ref <- list(
  provenance = list(
    script = "tests/reference/cox.R",
    command = "Rscript tests/reference/cox.R",
    r_version = R.version.string,
    survival_version = as.character(packageVersion("survival")),
    jsonlite_version = as.character(packageVersion("jsonlite")),
    data = "tests/reference/data/cox_data.csv.gz",
    data_md5 = unname(tools::md5sum(data_path)),
    seed = 20240612L,
    notes = paste(
      "coxph robust variance (cluster = cl) is crossprod(rowsum(dfbeta, cl)) =",
      "I^-1 (sum_g U_g U_g') I^-1, U_g = cluster sums of the score residuals",
      "(Efron-weighted for ties = 'efron'), no small-sample factor."
    )
  ),
  n_obs = nrow(d),
  n_events = sum(d$died),
  n_clusters = length(unique(d$cl)),
  n_unique_times = length(unique(d$time)),
  n_unique_event_times = length(unique(d$time[d$died == 1])),
  cluster_labels = sort(unique(d$cl)),
  formula = paste(deparse(form), collapse = ""),
  efron = fit_one("efron"),
  breslow = fit_one("breslow")
)

writeLines(toJSON(ref, auto_unbox = TRUE, digits = NA, pretty = TRUE, matrix = "rowmajor"),
           json_path)
cat("wrote", data_path, "and", json_path, "\n")
