# Reference values for rp2pr_eval/models/linear.py (tests/test_variance.py).
#
# Run from the repository root:
#   Rscript tests/reference/variance.R
# Writes tests/reference/data/variance_data.csv (only if it is missing) and
# tests/reference/variance_reference.json.  pytest never runs R: it reads the
# committed CSV and JSON.
#
# Models (all fitted with lm on the committed CSV):
#   ols     y ~ treated + post + tp + x                     (tp = treated * post)
#   wls     same, weights = w (analytic/precision weights)
#   fe_ols  y ~ post + tp + x + factor(cluster)             (singular I - H_jj blocks)
#   fe_wls  same, weights = w
# For each: coefficients; clubSandwich vcovCR CR1S, CR2, CR3 (CR3 not for the
# fixed-effect models, where deleting a cluster makes X rank deficient);
# coef_test(test = "Satterthwaite") under CR2; Wald_test on (tp, x) under CR2,
# CR1S and CR3 with tests HTZ, chi-sq and Naive-F; sandwich::vcovCL(type = "HC1").
# For the weighted models also the inverse-variance working model
# (vcovCR(..., inverse_var = TRUE)).  Heteroskedasticity-consistent versions
# (cluster = each row) for ols and wls: vcovCR with cluster = row number and
# sandwich::vcovHC HC1, HC2, HC3.

suppressPackageStartupMessages({
  library(clubSandwich)
  library(sandwich)
  library(jsonlite)
})

script_path <- "tests/reference/variance.R"
csv_path <- "tests/reference/data/variance_data.csv"
json_path <- "tests/reference/variance_reference.json"

if (!file.exists(csv_path)) {
  set.seed(20240611)
  sizes <- rep(c(2L, 3L, 4L, 5L, 6L), each = 6L)       # 30 clusters, 120 rows
  G <- length(sizes)
  labels <- sprintf("c%02d", sample.int(G))           # labels not in row order
  treated_cl <- as.integer(seq_len(G) %in% sample.int(G, 12L))
  u <- rnorm(G, sd = 0.8)                              # cluster effect
  cl <- rep(seq_len(G), times = sizes)
  n <- length(cl)
  post <- as.integer(unlist(lapply(sizes, function(s) rep_len(c(0L, 1L), s))))
  flip <- runif(n) < 0.2                               # a little imbalance
  post[flip] <- 1L - post[flip]
  treated <- treated_cl[cl]
  tp <- treated * post
  x <- round(rnorm(n, mean = 0.2 * treated), 6)
  w <- round(runif(n, 10, 200))                        # like patient denominators
  e <- rnorm(n, sd = 1.2 * sqrt(50 / w))
  y <- round(1 + 0.5 * treated + 0.3 * post + 0.4 * tp + 0.8 * x + u[cl] + e, 6)
  dat <- data.frame(cluster = labels[cl], treated = treated, post = post, tp = tp,
                    x = x, w = w, y = y)
  dat <- dat[sample.int(n), ]                          # shuffle rows: clusters not contiguous
  write.csv(dat, csv_path, row.names = FALSE)
}

dat <- read.csv(csv_path, stringsAsFactors = FALSE)
dat$row <- seq_len(nrow(dat))

mat <- function(v) {
  v <- as.matrix(v)
  unname(lapply(seq_len(nrow(v)), function(i) as.numeric(v[i, ])))
}

C_mat <- function(fit) {
  nm <- names(coef(fit))
  C <- matrix(0, 2, length(nm))
  C[1, nm == "tp"] <- 1
  C[2, nm == "x"] <- 1
  C
}

wald_list <- function(fit, V) {
  wt <- Wald_test(fit, constraints = C_mat(fit), vcov = V,
                  test = c("HTZ", "chi-sq", "Naive-F"))
  out <- list()
  for (i in seq_len(nrow(wt))) {
    out[[as.character(wt$test[i])]] <- list(
      F = wt$Fstat[i], delta = wt$delta[i], df_num = wt$df_num[i],
      df_den = if (is.finite(wt$df_denom[i])) wt$df_denom[i] else "Inf",
      p = wt$p_val[i])
  }
  out
}

satt <- function(fit, V) {
  ct <- coef_test(fit, vcov = V, test = "Satterthwaite")
  list(se = ct$SE, df = ct$df_Satt, p = ct$p_Satt)
}

one_model <- function(formula, weighted, with_cr3 = TRUE) {
  fit <- if (weighted) lm(formula, data = dat, weights = w) else lm(formula, data = dat)
  stopifnot(!any(is.na(coef(fit))))
  out <- list(
    formula = deparse(formula), weighted = weighted,
    names = names(coef(fit)), coef = unname(coef(fit)),
    resid = unname(residuals(fit)))
  V1 <- vcovCR(fit, cluster = dat$cluster, type = "CR1S")
  V2 <- vcovCR(fit, cluster = dat$cluster, type = "CR2")
  out$CR1S <- mat(V1)
  out$CR2 <- mat(V2)
  out$CR2_satterthwaite <- satt(fit, V2)
  out$wald <- list(CR2 = wald_list(fit, V2), CR1S = wald_list(fit, V1))
  if (with_cr3) {
    V3 <- vcovCR(fit, cluster = dat$cluster, type = "CR3")
    out$CR3 <- mat(V3)
    out$wald$CR3 <- wald_list(fit, V3)
  }
  out$vcovCL_HC1 <- mat(sandwich::vcovCL(fit, cluster = ~cluster, type = "HC1"))
  if (weighted) {
    V2i <- vcovCR(fit, cluster = dat$cluster, type = "CR2", inverse_var = TRUE)
    out$CR2_inverse_var <- mat(V2i)
    out$CR2_inverse_var_satterthwaite <- satt(fit, V2i)
    out$wald$CR2_inverse_var <- wald_list(fit, V2i)
  }
  if (with_cr3) {
    # cluster = each row (heteroskedasticity-consistent)
    H2 <- vcovCR(fit, cluster = dat$row, type = "CR2")
    out$HC <- list(
      CR1S = mat(vcovCR(fit, cluster = dat$row, type = "CR1S")),
      CR2 = mat(H2),
      CR2_satterthwaite = satt(fit, H2),
      CR3 = mat(vcovCR(fit, cluster = dat$row, type = "CR3")),
      vcovHC_HC1 = mat(sandwich::vcovHC(fit, type = "HC1")),
      vcovHC_HC2 = mat(sandwich::vcovHC(fit, type = "HC2")),
      vcovHC_HC3 = mat(sandwich::vcovHC(fit, type = "HC3")))
    if (weighted) {
      out$HC$CR2_inverse_var <- mat(vcovCR(fit, cluster = dat$row, type = "CR2",
                                           inverse_var = TRUE))
    }
  }
  out
}

f_main <- y ~ treated + post + tp + x
f_fe <- y ~ post + tp + x + factor(cluster)

ref <- list(
  provenance = list(
    script = script_path,
    data = csv_path,
    generated = format(Sys.time(), "%Y-%m-%d %H:%M:%S %Z"),
    R = R.version.string,
    packages = list(
      clubSandwich = as.character(packageVersion("clubSandwich")),
      sandwich = as.character(packageVersion("sandwich")),
      jsonlite = as.character(packageVersion("jsonlite"))),
    calls = c(
      "vcovCR(fit, cluster = dat$cluster, type = 'CR1S' | 'CR2' | 'CR3')",
      "vcovCR(fit, cluster = dat$cluster, type = 'CR2', inverse_var = TRUE)  # weighted models only",
      "coef_test(fit, vcov = V, test = 'Satterthwaite')",
      "Wald_test(fit, constraints = C, vcov = V, test = c('HTZ', 'chi-sq', 'Naive-F'))  # C selects tp and x",
      "sandwich::vcovCL(fit, cluster = ~cluster, type = 'HC1')",
      "vcovCR(fit, cluster = dat$row, type = ...); sandwich::vcovHC(fit, type = 'HC1' | 'HC2' | 'HC3')"),
    notes = paste(
      "For lm fits clubSandwich's default CR2 working model is the identity",
      "(target = I, inverse_var = FALSE) whether or not the fit is weighted;",
      "inverse_var = TRUE gives the inverse-weight working model.")),
  n = nrow(dat),
  n_clusters = length(unique(dat$cluster)),
  models = list(
    ols = one_model(f_main, FALSE),
    wls = one_model(f_main, TRUE),
    fe_ols = one_model(f_fe, FALSE, with_cr3 = FALSE),
    fe_wls = one_model(f_fe, TRUE, with_cr3 = FALSE)))

writeLines(toJSON(ref, auto_unbox = TRUE, digits = NA, pretty = TRUE), json_path)
cat("wrote", json_path, "\n")
