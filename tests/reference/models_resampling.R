## Reference values for rp2pr_eval.models.wild_cluster_bootstrap and .randomisation_test.
##
## Run from the repository root:  Rscript tests/reference/models_resampling.R
## Writes tests/reference/data/petersen.csv (sandwich's PetersenCL: Petersen 2009's simulated firm-year
## panel), tests/reference/data/sleep.csv (R's sleep, Student 1908) and
## tests/reference/models_resampling_reference.json.
##
## Neither boottest (Stata) nor fwildclusterboot can run here, so the wild bootstrap reference is the
## algorithm of Cameron, Gelbach & Miller (2008) written out plainly: lm(y ~ x) on PetersenCL
## clustered by year (G = 10), the null x = 1 imposed, ALL 2^10 = 1024 Rademacher sign vectors
## (boottest's and fwildclusterboot's full enumeration, which they use when 2^G <= B), each
## bootstrap sample refitted by lm and its t statistic built from sandwich::vcovCL(type = "HC1"):
## deterministic, so any correct implementation must agree to rounding. Same without the null
## (WCU: residuals unrestricted, t* centred at the estimate).
## The randomisation reference is the exact two-sample permutation test of the sleep data treated as
## two independent groups of ten: all choose(20, 10) = 184756 assignments, statistic the lm coefficient
## (the difference in means), two-sided p = mean(|T*| >= |T|).
suppressPackageStartupMessages({ library(sandwich); library(jsonlite) })
dir <- file.path("tests", "reference"); data_dir <- file.path(dir, "data")
data("PetersenCL", package = "sandwich")
write.csv(PetersenCL, file.path(data_dir, "petersen.csv"), row.names = FALSE)
d <- PetersenCL
G <- length(unique(d$year)); cl <- match(d$year, sort(unique(d$year)))
tstat <- function(y, h0) {
  f <- lm(ystar ~ x, data = data.frame(ystar = y, x = d$x, year = d$year))
  (coef(f)[["x"]] - h0) / sqrt(vcovCL(f, cluster = ~year, type = "HC1")[["x", "x"]])
}
## H0: x = 1 (the estimate is 1.035 with t = 31 against 0, where every bootstrap t exceeds it and p = 1)
h0 <- 1
fit <- lm(y ~ x, data = d)
t_obs <- tstat(d$y, h0)
signs <- as.matrix(expand.grid(rep(list(c(1, -1)), G)))
restricted <- lm(I(y - h0 * x) ~ 1, data = d)
wcr <- apply(signs, 1, function(v) tstat(fitted(restricted) + h0 * d$x + v[cl] * residuals(restricted), h0))
wcu <- apply(signs, 1, function(v) tstat(fitted(fit) + v[cl] * residuals(fit), coef(fit)[["x"]]))
tie <- 1e-9 * abs(t_obs)
wild <- list(h0 = h0, estimate = coef(fit)[["x"]], se_cr1 = sqrt(vcovCL(fit, cluster = ~year, type = "HC1")[["x", "x"]]),
             t = t_obs, n_draws = nrow(signs),
             p_wcr = mean(abs(wcr) >= abs(t_obs) - tie), t_draws_wcr_sorted = sort(wcr),
             p_wcu = mean(abs(wcu) >= abs(t_obs) - tie), t_draws_wcu_sorted = sort(wcu))

s <- data.frame(extra = sleep$extra, treated = as.numeric(sleep$group == "2"))
write.csv(s, file.path(data_dir, "sleep.csv"), row.names = FALSE)
est <- function(tr) coef(lm(s$extra ~ tr))[[2]]
T_obs <- est(s$treated)
idx <- combn(20, 10)
draws <- apply(idx, 2, function(ix) { tr <- numeric(20); tr[ix] <- 1; mean(s$extra[tr == 1]) - mean(s$extra[tr == 0]) })
ri <- list(estimate = T_obs, n_draws = ncol(idx), p = mean(abs(draws) >= abs(T_obs) * (1 - 1e-9)),
           draws_quantiles = unname(quantile(draws, c(0.01, 0.25, 0.5, 0.75, 0.99), type = 1)))
ref <- list(source = "sandwich PetersenCL (Petersen 2009); R sleep (Student 1908)", r_version = R.version.string,
            wild = wild, randomisation = ri)
writeLines(toJSON(ref, digits = NA, auto_unbox = TRUE, pretty = FALSE), file.path(dir, "models_resampling_reference.json"))
