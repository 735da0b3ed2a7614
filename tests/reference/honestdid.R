## Reference values for the parallel-trends sensitivity of rp2pr_eval/inference/honest_did.py
## (Rambachan & Roth 2023), read by tests/test_sensitivity_reference.py.
##
## The R package HonestDiD does not install here (it needs CVXR, lpSolveAPI and TruncatedNormal,
## which are not packaged for Debian and CRAN is unreachable), so this script does not run it.
## It collects what HonestDiD itself computed and published, with the exact inputs:
##
##   * the knitr cache of HonestDiD's README (README_cache/gfm/, committed in the package
##     repository, github.com/asheshrambachan/HonestDiD at commit
##     6813f02ed38f0b63bdca6915604b2eac90491303): full-precision results of
##     createSensitivityResults_relativeMagnitudes (C-LF, chunks 4, 7, 10) and
##     createSensitivityResults (FLCI, chunk 6) on the Medicaid-expansion example, the
##     Sun-Abraham event study's betahat and sigma (chunk 10), and the data of the example with
##     its fixest coefficients and covariance (chunk 8);
##   * BCdata_EventStudy and LWdata_EventStudy (data/*.rda of the same commit): Benzarti &
##     Carloni (2019) and Lovenheim & Willen (2019) event studies, with the results printed in the
##     HonestDiD vignette (vignettes/HonestDiD_Example.pdf at commit
##     a8fff427fbf84d581278d7b60e474826808c1761) and full-precision R results for the BC data
##     recorded by the Julia port (github.com/eohne/HonestDiD.jl, test/reference.jl at commit
##     8179fe811b5e4e2296ad65e14568049e7bed2eda), which are entered below by hand.
##
## The Medicaid example's betahat and sigma without the control (README chunk 3, not cached)
## are recomputed here: the TWFE regression by lm() and the cluster-robust covariance with
## fixest's default small-sample factor G/(G-1) * (n-1)/(n-K), K = coefficients + 8 year
## effects (state effects nested in the clusters are not counted).  The script checks that this
## convention reproduces the cached fixest covariance of the regression *with* the control
## (chunk 8) to 1e-12 (relative; 4e-14 observed) before using it.
##
## Run from the repository root with a HonestDiD working tree at that commit:
##     Rscript tests/reference/honestdid.R /path/to/HonestDiD
## Writes tests/reference/honestdid_reference.json.  pytest never runs R.

suppressMessages({library(jsonlite); library(sandwich)})
args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1) stop("usage: Rscript tests/reference/honestdid.R /path/to/HonestDiD")
root <- args[1]
cache <- file.path(root, "README_cache", "gfm")
chunk <- function(name) {
  f <- list.files(cache, pattern = paste0("^", name, "_.*\\.rdb$"), full.names = TRUE)
  e <- new.env(); lazyLoad(sub("\\.rdb$", "", f[1]), envir = e); e
}
tab <- function(x, m) { x <- as.data.frame(x); list(m = x[[m]], lb = x$lb, ub = x$ub) }

## ---------------------------------------------------------------- Medicaid expansion (README)
e8 <- chunk("unnamed-chunk-8")
d <- as.data.frame(e8$df_nonstaggered)
d$stfips <- as.numeric(d$stfips); d$year <- as.numeric(d$year)
ev <- setdiff(2008:2015, 2013)
for (y in ev) d[[paste0("ev", y)]] <- d$D * (d$year == y)
rhs <- paste(paste0("ev", ev), collapse = " + ")
fixest_vcov <- function(fit, k_coef) {
  n <- nrow(d); G <- length(unique(d$stfips)); K <- k_coef + length(unique(d$year))
  V <- vcovCL(fit, cluster = ~stfips, type = "HC0", cadjust = FALSE)
  V * G / (G - 1) * (n - 1) / (n - K)
}
fit_c <- lm(as.formula(paste("dins ~", rhs, "+ control + factor(stfips) + factor(year)")), data = d)
Vc <- fixest_vcov(fit_c, 8)[2:8, 2:8]
check <- max(abs(Vc - e8$sigma)) / max(abs(e8$sigma))
if (check > 1e-12) stop("the fixest convention does not reproduce the cached covariance: ", check)
fit <- lm(as.formula(paste("dins ~", rhs, "+ factor(stfips) + factor(year)")), data = d)
b_ehec <- unname(coef(fit)[2:8]); V_ehec <- unname(fixest_vcov(fit, 7)[2:8, 2:8])

e4 <- chunk("unnamed-chunk-4"); e6 <- chunk("unnamed-chunk-6"); e7 <- chunk("unnamed-chunk-7")
e10 <- chunk("unnamed-chunk-10")

## ---------------------------------------------------------------- Benzarti-Carloni, Lovenheim-Willen
load(file.path(root, "data", "BCdata_EventStudy.rda")); load(file.path(root, "data", "LWdata_EventStudy.rda"))

cases <- list(
  list(name = "medicaid_rm_clf", source = "HonestDiD README chunk 4 (knitr cache)",
       betahat = b_ehec, sigma = V_ehec, n_pre = 5, n_post = 2, l_vec = c(1, 0),
       restriction = "relative_magnitudes", method = "C-LF", grid_points = 1000, r = tab(e4$delta_rm_results, "Mbar"),
       printed = list(lb = c(0.0241, 0.0171, 0.00859, -0.00107), ub = c(0.0673, 0.0720, 0.0796, 0.0883))),
  list(name = "medicaid_sd_flci", source = "HonestDiD README chunk 6 (knitr cache)",
       betahat = b_ehec, sigma = V_ehec, n_pre = 5, n_post = 2, l_vec = c(1, 0),
       restriction = "smoothness", method = "FLCI", r = tab(e6$delta_sd_results, "M"),
       printed = list(lb = c(0.0259, 0.0132, 0.00286, -0.00714, -0.0171, -0.0271),
                      ub = c(0.0607, 0.0787, 0.0907, 0.101, 0.111, 0.121))),
  list(name = "medicaid_rm_clf_average", source = "HonestDiD README chunk 7 (knitr cache)",
       betahat = b_ehec, sigma = V_ehec, n_pre = 5, n_post = 2, l_vec = c(0.5, 0.5),
       restriction = "relative_magnitudes", method = "C-LF", grid_points = 1000,
       r = tab(e7$delta_rm_results_avg, "Mbar"),
       original = list(lb = e7$originalResults_avg$lb, ub = e7$originalResults_avg$ub)),
  list(name = "medicaid_control_sd_flci", source = "HonestDiD README chunk 8 (cached inputs; printed output)",
       betahat = unname(as.numeric(e8$betahat)), sigma = unname(e8$sigma), n_pre = 5, n_post = 2, l_vec = c(1, 0),
       restriction = "smoothness", method = "FLCI",
       r = list(m = seq(0, 0.05, by = 0.01), lb = c(0.0264, 0.0128, 0.00186, -0.00814, -0.0181, -0.0281),
                ub = c(0.0607, 0.0788, 0.0908, 0.101, 0.111, 0.121)), printed_only = TRUE),
  list(name = "sunab_rm_clf", source = "HonestDiD README chunk 10 (knitr cache)",
       betahat = unname(as.numeric(e10$beta_vcv$beta)), sigma = unname(e10$beta_vcv$sigma),
       n_pre = e10$kwargs$numPrePeriods, n_post = e10$kwargs$numPostPeriods,
       l_vec = c(1, rep(0, e10$kwargs$numPostPeriods - 1)),
       restriction = "relative_magnitudes", method = "C-LF", grid_points = 100, r = tab(e10$sensitivity_results, "Mbar"),
       original = list(lb = e10$original_results$lb, ub = e10$original_results$ub)),
  list(name = "bc_flci", source = "R HonestDiD on BCdata_EventStudy, findOptimalFLCI (HonestDiD.jl test/reference.jl FLCI_BC)",
       betahat = unname(BCdata_EventStudy$betahat), sigma = unname(BCdata_EventStudy$sigma), n_pre = 4, n_post = 4,
       l_vec = c(1, 0, 0, 0), restriction = "smoothness", method = "FLCI",
       r = list(m = c(0, 0.1, 0.2), lb = c(0.131411316, 0.1194440001, 0.01944400015),
                ub = c(0.2161696482, 0.4185082143, 0.5185082143), half_length = c(0.04237916612, 0.1495321071, 0.2495321071)),
       original = list(lb = 0.15877494280765, ub = 0.233147292681241)),
  list(name = "bc_sd_conditional", source = "R HonestDiD createSensitivityResults(method = 'Conditional') on BCdata (HonestDiD.jl SENS_COND)",
       betahat = unname(BCdata_EventStudy$betahat), sigma = unname(BCdata_EventStudy$sigma), n_pre = 4, n_post = 4,
       l_vec = c(1, 0, 0, 0), restriction = "smoothness", method = "conditional", grid_points = 1000,
       r = list(m = c(0, 0.1, 0.2), lb = c(0.2100501789, 0.1195044811, 0.02030132213),
                ub = c(0.3277998271, 0.4180257149, 0.5179737331))),
  list(name = "bc_sd_conditional_gp200", source = "R HonestDiD computeConditionalCS_DeltaSD(M = 0.1, hybrid_flag = 'ARP', gridPoints = 200) (HonestDiD.jl CCS_SD_ARP)",
       betahat = unname(BCdata_EventStudy$betahat), sigma = unname(BCdata_EventStudy$sigma), n_pre = 4, n_post = 4,
       l_vec = c(1, 0, 0, 0), restriction = "smoothness", method = "conditional", grid_points = 200,
       r = list(m = 0.1, lb = 0.1228761035, ub = 0.4168150178)),
  list(name = "bc_sd_conditional_average", source = "R HonestDiD computeConditionalCS_DeltaSD(l_vec = rep(1/4, 4), M = 0.1, hybrid_flag = 'ARP', gridPoints = 100) (HonestDiD.jl CCS_SD_AVG_ARP)",
       betahat = unname(BCdata_EventStudy$betahat), sigma = unname(BCdata_EventStudy$sigma), n_pre = 4, n_post = 4,
       l_vec = rep(0.25, 4), restriction = "smoothness", method = "conditional", grid_points = 100,
       r = list(m = 0.1, lb = -0.1809607769, ub = 0.8531008055)),
  list(name = "bc_rm_conditional", source = "R HonestDiD computeConditionalCS_DeltaRM(Mbar = 1, hybrid_flag = 'ARP', gridPoints = 200) (HonestDiD.jl CCS_RM_ARP)",
       betahat = unname(BCdata_EventStudy$betahat), sigma = unname(BCdata_EventStudy$sigma), n_pre = 4, n_post = 4,
       l_vec = c(1, 0, 0, 0), restriction = "relative_magnitudes", method = "conditional", grid_points = 200,
       r = list(m = 1, lb = 0.07055244362, ub = 0.3184394077)),
  list(name = "lw_sd_flci", source = "HonestDiD vignette (printed), Lovenheim-Willen, l = basisVector(17, 23)",
       betahat = unname(LWdata_EventStudy$betahat), sigma = unname(LWdata_EventStudy$sigma), n_pre = 9, n_post = 23,
       l_vec = replace(rep(0, 23), 17, 1), restriction = "smoothness", method = "FLCI",
       r = list(m = seq(0, 0.025, by = 0.005), lb = c(3.91, 2.11, -0.0829, -2.38, -4.95, -8.13),
                ub = c(8.37, 8.16, 8.19, 8.03, 7.51, 6.22)), printed_only = TRUE)
)

## R's standard normal stream (set.seed(0), Mersenne-Twister, inversion), first values, so the test
## can check its emulation of the draws HonestDiD's least-favourable critical value uses.
set.seed(0)
rnorm_head <- rnorm(20)

out <- list(r_version = R.version.string, fixest_convention_check = check, rnorm_seed0_head = rnorm_head, cases = cases)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/honestdid_reference.json")
cat("wrote tests/reference/honestdid_reference.json\n")
