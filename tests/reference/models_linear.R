## Published-data reference values for rp2pr_eval.models.cluster_ols (and the HC variants).
##
## Run from the repository root:
##     Rscript tests/reference/models_linear.R
## Writes
##     tests/reference/data/mv_deaths.csv      clubSandwich's MortalityRates, the subset of its
##                                             panel-data vignette (motor-vehicle deaths, 1970-1983)
##     tests/reference/data/mtcars.csv         R's mtcars
##     tests/reference/models_linear_reference.json
## pytest never runs this script; it reads the committed outputs.
##
## The calls are those of clubSandwich's vignette "Cluster-robust standard errors and hypothesis
## tests in panel data models" (Pustejovsky): lm(mrate ~ 0 + legal + beertaxa + factor(state) +
## factor(year)), unweighted and weighted by population, coef_test with CR1/naive-t,
## CR2/Satterthwaite and CR3, Wald_test HTZ of both coefficients; and sandwich::vcovHC on mtcars.

suppressPackageStartupMessages({
  library(clubSandwich)
  library(sandwich)
  library(jsonlite)
})

out_dir <- file.path("tests", "reference")
data_dir <- file.path(out_dir, "data")
dir.create(data_dir, showWarnings = FALSE, recursive = TRUE)

data("MortalityRates", package = "clubSandwich")
MV <- subset(MortalityRates, cause == "Motor Vehicle" & year <= 1983 & !is.na(beertaxa))
MV <- MV[, c("state", "year", "mrate", "legal", "beertaxa", "pop")]
write.csv(MV, file.path(data_dir, "mv_deaths.csv"), row.names = FALSE)

coefs <- c("legal", "beertaxa")
`%||%` <- function(a, b) if (is.null(a)) b else a
one_fit <- function(fit, types = c("CR1", "CR2")) {
  out <- list()
  for (v in types) {
    test <- if (v == "CR2") "Satterthwaite" else "naive-t"
    ## rp2pr_eval's "CR1" is Stata's factor G/(G-1)(N-1)/(N-K): clubSandwich "CR1S"
    ct <- coef_test(fit, vcov = if (v == "CR1") "CR1S" else v, cluster = MV$state, test = test, coefs = coefs)
    out[[v]] <- list(test = test, estimate = ct$beta, se = ct$SE, df = ct$df_Satt %||% ct$df_t %||% ct$df, p = ct$p_Satt %||% ct$p_t %||% ct$p_val)
  }
  wt <- Wald_test(fit, constraints = constrain_zero(coefs), vcov = "CR2", cluster = MV$state, test = "HTZ")
  out$wald_HTZ <- list(Fstat = wt$Fstat, df_num = wt$df_num, df_denom = wt$df_denom, p = wt$p_val)
  out
}


lm_unweighted <- lm(mrate ~ 0 + legal + beertaxa + factor(state) + factor(year), data = MV)
## Weights rescaled to mean 1: the estimates, SEs and Satterthwaite df do not change, but clubSandwich
## 0.5.8's HTZ Wald test is not invariant to the scale of the weights: with the raw populations
## (millions) it gives F = 12.25 on (2, 19.6) df, with pop / mean(pop) F = 11.54 on (2, 8.65),
## the value every rescaling near 1 gives and the one rp2pr_eval computes (it rescales to mean 1).
MV$w <- MV$pop / mean(MV$pop)
lm_weighted <- lm(mrate ~ 0 + legal + beertaxa + factor(state) + factor(year), weights = w, data = MV)
## CR3 (jackknife) is undefined with state fixed effects (deleting a state leaves the design
## singular; clubSandwich stops, as rp2pr_eval raises DataError), so it is checked on the pooled model.
lm_pooled <- lm(mrate ~ legal + beertaxa + factor(year), data = MV)

write.csv(mtcars, file.path(data_dir, "mtcars.csv"), row.names = FALSE)
fit_mt <- lm(mpg ~ wt + hp, data = mtcars)
hc <- list()
for (type in c("HC1", "HC2", "HC3")) {
  V <- vcovHC(fit_mt, type = type)
  hc[[type]] <- list(estimate = unname(coef(fit_mt)), se = unname(sqrt(diag(V))))
}

ref <- list(
  source = "clubSandwich MortalityRates (panel-data vignette); sandwich::vcovHC on mtcars",
  r_version = R.version.string,
  clubSandwich_version = as.character(packageVersion("clubSandwich")),
  sandwich_version = as.character(packageVersion("sandwich")),
  coefs = coefs,
  unweighted = one_fit(lm_unweighted),
  weighted = one_fit(lm_weighted),
  pooled = one_fit(lm_pooled, c("CR1", "CR2", "CR3")),
  mtcars = list(formula = "mpg ~ wt + hp", terms = names(coef(fit_mt)), hc = hc)
)
writeLines(toJSON(ref, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           file.path(out_dir, "models_linear_reference.json"))
cat("wrote models_linear_reference.json\n")
