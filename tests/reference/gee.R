# Reference values for tests/test_gee.py (rp2pr_eval.models.gee.fit_gee_logit).
#
# Run from the repository root:   Rscript tests/reference/gee.R
# Writes tests/reference/data/gee_data.csv and tests/reference/gee_reference.json.
# R is never needed at test time: both outputs are committed.
#
# 1. Simulates a fixed dataset: 3,000 patients in 30 clusters of unequal size
#    (sorted by cluster, as geepack requires), a cluster-level treatment, a
#    patient-level period indicator and their product, age, sex and a
#    three-level stage (two indicators); outcome from a random-intercept logit
#    (SD 0.5) so that the exchangeable correlation is clearly positive.
# 2. Fits geepack::geeglm(family = binomial, corstr = "exchangeable") and
#    corstr = "independence", std.err = "san.se" (plain Liang-Zeger sandwich),
#    with a tight convergence tolerance (geese.control(epsilon = 1e-12)); the
#    default epsilon = 1e-4 fit is also recorded for comparison.
# 3. Computes, by a direct dense hand formula at geepack's estimates (beta,
#    alpha, scale), the Liang-Zeger sandwich and the Mancl & DeRouen (2001)
#    bias-corrected sandwich
#      C [ sum_i D_i' V_i^-1 (I - H_ii)^-1 r_i r_i' (I - H_ii)^-T V_i^-1 D_i ] C,
#      H_ii = D_i C D_i' V_i^-1,  C = (sum_i D_i' V_i^-1 D_i)^-1,
#    (geesmv::GEE.var.md is not installable here; this is its formula).

suppressPackageStartupMessages({
  library(geepack)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = FALSE)
script <- sub("^--file=", "", args[grep("^--file=", args)])
ref_dir <- if (length(script)) dirname(normalizePath(script)) else "tests/reference"
data_path <- file.path(ref_dir, "data", "gee_data.csv")
json_path <- file.path(ref_dir, "gee_reference.json")
dir.create(dirname(data_path), showWarnings = FALSE, recursive = TRUE)

# ---- 1. data -----------------------------------------------------------------
set.seed(20240611)
G <- 30
sizes <- sample(40:160, G, replace = TRUE)
sizes <- round(sizes * 3000 / sum(sizes))
sizes[G] <- 3000 - sum(sizes[-G])
cluster <- rep(seq_len(G), sizes)
treat_c <- sample(rep(0:1, c(18, 12)))
u <- rnorm(G, 0, 0.5)
n <- sum(sizes)
treat <- treat_c[cluster]
post <- rbinom(n, 1, 0.5)
age <- round(rnorm(n, 72, 9))
female <- rbinom(n, 1, 0.45)
stage <- sample(1:3, n, TRUE, prob = c(0.3, 0.3, 0.4))
eta <- -0.4 + 0.2 * treat + 0.1 * post + 0.35 * treat * post - 0.03 * (age - 72) -
  0.2 * female + 0.3 * (stage == 2) - 0.6 * (stage == 3) + u[cluster]
y <- rbinom(n, 1, plogis(eta))
d <- data.frame(cluster, y, treat, post, treat_post = treat * post, age, female,
                stage2 = as.integer(stage == 2), stage3 = as.integer(stage == 3))
write.csv(d, data_path, row.names = FALSE)
d <- read.csv(data_path)  # fit exactly what is committed

form <- y ~ treat + post + treat_post + age + female + stage2 + stage3

# ---- 3. dense hand formulas ---------------------------------------------------
hand_sandwiches <- function(X, y, id, beta, alpha, phi) {
  p <- ncol(X)
  mu <- as.vector(plogis(X %*% beta))
  blocks <- split(seq_along(y), id)
  Bsum <- matrix(0, p, p)
  parts <- vector("list", length(blocks))
  for (k in seq_along(blocks)) {
    ix <- blocks[[k]]
    ni <- length(ix)
    a <- mu[ix] * (1 - mu[ix])
    D <- a * X[ix, , drop = FALSE]                       # diag(a) X
    R <- matrix(alpha, ni, ni); diag(R) <- 1
    V <- phi * (sqrt(a) %o% sqrt(a)) * R                  # phi A^1/2 R A^1/2
    Vinv <- solve(V)
    Bsum <- Bsum + t(D) %*% Vinv %*% D
    parts[[k]] <- list(D = D, Vinv = Vinv, r = y[ix] - mu[ix])
  }
  C <- solve(Bsum)
  meat_lz <- matrix(0, p, p)
  meat_md <- matrix(0, p, p)
  for (pt in parts) {
    H <- pt$D %*% C %*% t(pt$D) %*% pt$Vinv
    s <- t(pt$D) %*% pt$Vinv %*% pt$r
    adj <- solve(diag(nrow(H)) - H, pt$r)
    u <- t(pt$D) %*% pt$Vinv %*% adj
    meat_lz <- meat_lz + s %*% t(s)
    meat_md <- meat_md + u %*% t(u)
  }
  list(robust = C %*% meat_lz %*% C, mancl_derouen = C %*% meat_md %*% C,
       naive = C)
}

X <- model.matrix(form, d)
fit_one <- function(corstr) {
  m <- geeglm(form, id = cluster, data = d, family = binomial, corstr = corstr,
              std.err = "san.se", control = geese.control(epsilon = 1e-12, maxit = 200))
  m_def <- geeglm(form, id = cluster, data = d, family = binomial, corstr = corstr,
                  std.err = "san.se")
  alpha <- if (corstr == "exchangeable") unname(m$geese$alpha) else 0
  phi <- unname(m$geese$gamma)
  beta <- unname(coef(m))
  hs <- hand_sandwiches(X, d$y, d$cluster, beta, alpha, phi)
  vg <- unname(m$geese$vbeta)
  list(
    call = sprintf(paste0("geeglm(%s, id = cluster, data = d, family = binomial, ",
                          "corstr = \"%s\", std.err = \"san.se\", ",
                          "control = geese.control(epsilon = 1e-12, maxit = 200))"),
                   deparse(form), corstr),
    names = colnames(X),
    coef = beta,
    se_robust = sqrt(diag(vg)),
    vcov_robust = vg,
    working_corr = alpha,
    scale = phi,
    vcov_robust_hand = unname(hs$robust),
    vcov_mancl_derouen_hand = unname(hs$mancl_derouen),
    se_mancl_derouen_hand = sqrt(diag(hs$mancl_derouen)),
    max_abs_diff_robust_hand_vs_geepack = max(abs(hs$robust - vg)),
    coef_default_epsilon = unname(coef(m_def)),
    working_corr_default_epsilon = if (corstr == "exchangeable") unname(m_def$geese$alpha) else 0
  )
}

ref <- list(
  provenance = list(
    script = "tests/reference/gee.R",
    command = "Rscript tests/reference/gee.R",
    r_version = R.version.string,
    geepack_version = as.character(packageVersion("geepack")),
    jsonlite_version = as.character(packageVersion("jsonlite")),
    data = "tests/reference/data/gee_data.csv",
    data_md5 = unname(tools::md5sum(data_path)),
    seed = 20240611L,
    notes = paste(
      "geepack estimates the exchangeable correlation by the moment estimator",
      "alpha = sum_i sum_{j<k} e_ij e_ik / (phi * sum_i n_i(n_i-1)/2) with",
      "phi = sum e^2 / N (no ddof), e = Pearson residuals; statsmodels matches",
      "with GEE.fit(ddof_scale=0). Mancl-DeRouen computed by dense hand formula."
    )
  ),
  n_obs = nrow(d),
  n_clusters = length(unique(d$cluster)),
  cluster_sizes = as.vector(table(d$cluster)),
  formula = deparse(form),
  exchangeable = fit_one("exchangeable"),
  independence = fit_one("independence")
)

writeLines(toJSON(ref, auto_unbox = TRUE, digits = NA, pretty = TRUE, matrix = "rowmajor"),
           json_path)
cat("wrote", data_path, "and", json_path, "\n")
