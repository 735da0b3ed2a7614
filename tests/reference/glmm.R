## Reference values for rp2pr_eval.models.glmm (random-intercept logistic GLMM).
##
## Run from the repository root:
##     Rscript tests/reference/glmm.R
## Writes
##     tests/reference/data/cbpp.csv            lme4's cbpp data (so pytest needs no R)
##     tests/reference/data/glmm_data.csv.gz    a fixed synthetic patient-level data set
##     tests/reference/glmm_reference.json      lme4 fits: fixed effects, SEs, RE SD,
##                                              logLik, conditional modes and SDs
## pytest never runs this script; it only reads the committed outputs.
##
## The optimiser is bobyqa in both glmer stages with a tight rhoend, and the
## penalised IRLS for the conditional modes uses tolPwrss = 1e-12 instead of 1e-7,
## so that the reference values are the optimum of lme4's objective to well below
## the test tolerances.  (With the default tolPwrss the Laplace deviance for cbpp is
## evaluated at modes that are not fully converged: logLik() is 2.8e-4 too low and
## the fixed effects move by up to 6e-4.)  glmer's default (bobyqa then Nelder_Mead) is also fitted and the
## largest difference from the tight fit is recorded under "default_control_maxdiff".

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

out_dir <- file.path("tests", "reference")
data_dir <- file.path(out_dir, "data")
dir.create(data_dir, showWarnings = FALSE, recursive = TRUE)

## ---- cbpp (lme4) ------------------------------------------------------------
cbpp_path <- file.path(data_dir, "cbpp.csv")
cb <- lme4::cbpp
cb$herd <- as.character(cb$herd)
cb$period <- as.character(cb$period)
write.csv(cb, cbpp_path, row.names = FALSE)
cbpp_csv <- read.csv(cbpp_path, colClasses = c(herd = "character", period = "character"))
cbpp_csv$herd <- factor(cbpp_csv$herd, levels = as.character(1:15))
cbpp_csv$period <- factor(cbpp_csv$period, levels = as.character(1:4))

## ---- synthetic patient-level data --------------------------------------------
## 40 trusts, about 6,000 patients; trust-level treatment (20 of 40), a patient-level
## post-period indicator, age (continuous), sex and performance status; sigma = 0.4.
set.seed(20240611)
G <- 40L
size <- pmax(30L, as.integer(round(rgamma(G, shape = 4, rate = 4 / 150))))
group <- rep(sprintf("T%02d", seq_len(G)), times = size)
gi <- rep(seq_len(G), times = size)
n <- length(group)
treat_g <- sample(rep(0:1, each = G / 2))
b <- rnorm(G, 0, 0.4)
treat <- treat_g[gi]
post <- rbinom(n, 1, 0.5)
age <- round(rnorm(n, 72, 9), 1)
female <- rbinom(n, 1, 0.47)
ps_high <- rbinom(n, 1, plogis(-1 + 0.04 * (age - 72)))
eta <- -0.3 + 0.2 * treat + 0.15 * post + 0.3 * treat * post - 0.35 * (age - 70) / 10 +
  0.1 * female - 0.8 * ps_high + b[gi]
y <- rbinom(n, 1, plogis(eta))
syn <- data.frame(group = group, y = y, treat = treat, post = post, age = age,
                  female = female, ps_high = ps_high)
syn_path <- file.path(data_dir, "glmm_data.csv.gz")
con <- gzfile(syn_path, "w")
write.csv(syn, con, row.names = FALSE)
close(con)
syn_csv <- read.csv(syn_path, colClasses = c(group = "character"))
syn_csv$age10 <- (syn_csv$age - 70) / 10

## ---- fits ---------------------------------------------------------------------
tight <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12,
                      optCtrl = list(rhoend = 1e-10, maxfun = 1e5))

summarise_fit <- function(fit) {
  re <- ranef(fit, condVar = TRUE)[[1]]
  pv <- attr(re, "postVar")
  vc <- as.data.frame(VarCorr(fit))
  list(
    fixef = as.list(fixef(fit)),
    se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
    re_sd = vc$sdcor[1],
    theta = unname(getME(fit, "theta")),
    logLik = as.numeric(logLik(fit)),
    deviance = deviance(fit),
    nobs = nobs(fit),
    ngroups = unname(ngrps(fit)),
    sd_profile_ci95 = unname(confint(fit, parm = "theta_", method = "profile",
                                     level = 0.95, quiet = TRUE)[1, ]),
    ranef = list(labels = rownames(re),
                 mode = unname(re[, 1]),
                 cond_sd = sqrt(as.numeric(pv[1, 1, ]))),
    optimizer_messages = fit@optinfo$conv$lme4$messages
  )
}

maxdiff <- function(a, b) {
  max(abs(c(fixef(a) - fixef(b), getME(a, "theta") - getME(b, "theta"),
            as.numeric(logLik(a)) - as.numeric(logLik(b)))))
}

fits <- list()
calls <- list()

calls$cbpp <- "glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), family = binomial, data = cbpp, nAGQ = nAGQ, control = glmerControl(optimizer = 'bobyqa', tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-10, maxfun = 1e5)))"
calls$synthetic <- "glmer(y ~ treat + post + treat:post + age10 + female + ps_high + (1 | group), family = binomial, data = glmm_data, nAGQ = nAGQ, control = <as for cbpp>) with age10 = (age - 70) / 10"

for (q in c(1L, 25L)) {
  key <- paste0("nAGQ", q)
  f_cb <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                family = binomial, data = cbpp_csv, nAGQ = q, control = tight)
  f_cb_def <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                    family = binomial, data = cbpp_csv, nAGQ = q)
  f_sy <- glmer(y ~ treat + post + treat:post + age10 + female + ps_high + (1 | group),
                family = binomial, data = syn_csv, nAGQ = q, control = tight)
  f_sy_def <- glmer(y ~ treat + post + treat:post + age10 + female + ps_high + (1 | group),
                    family = binomial, data = syn_csv, nAGQ = q)
  fits$cbpp[[key]] <- c(summarise_fit(f_cb), default_control_maxdiff = maxdiff(f_cb, f_cb_def))
  fits$synthetic[[key]] <- c(summarise_fit(f_sy), default_control_maxdiff = maxdiff(f_sy, f_sy_def))
}

## The same fixed effects without the random intercept (the sigma = 0 boundary).
g_sy <- glm(y ~ treat + post + treat:post + age10 + female + ps_high,
            family = binomial, data = syn_csv)
fits$synthetic$glm <- list(fixef = as.list(coef(g_sy)),
                           se = as.list(sqrt(diag(vcov(g_sy)))),
                           logLik = as.numeric(logLik(g_sy)))

ref <- c(
  list(provenance = list(
    script = "tests/reference/glmm.R",
    command = "Rscript tests/reference/glmm.R",
    R_version = R.version.string,
    lme4_version = as.character(packageVersion("lme4")),
    Matrix_version = as.character(packageVersion("Matrix")),
    jsonlite_version = as.character(packageVersion("jsonlite")),
    date = format(Sys.time(), "%Y-%m-%d"),
    calls = calls,
    notes = paste(
      "se: sqrt(diag(vcov(fit))), which for glmer uses the finite-difference Hessian",
      "of the deviance over (theta, beta); re_sd: sd of the random intercept;",
      "sd_profile_ci95: confint(fit, parm = 'theta_', method = 'profile');",
      "ranef: conditional modes with cond_sd = sqrt(postVar).",
      "synthetic data: set.seed(20240611), 40 groups; true linear predictor",
      "-0.3 + 0.2 treat + 0.15 post + 0.3 treat:post - 0.35 age10 + 0.1 female",
      "- 0.8 ps_high + b_group, b_group ~ N(0, 0.4^2).")
  )),
  fits
)
writeLines(toJSON(ref, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           file.path(out_dir, "glmm_reference.json"))
cat("wrote", file.path(out_dir, "glmm_reference.json"), "\n")
