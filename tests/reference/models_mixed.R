## Published-data reference values for rp2pr_eval.models.lmm with random slopes (lme4's sleepstudy).
##
## Run from the repository root:  Rscript tests/reference/models_mixed.R
## Reads tests/reference/data/lmm_sleepstudy.csv (written by lmm.R from lme4's sleepstudy) and writes
## tests/reference/models_mixed_reference.json. The model is the one of Bates et al. (2015, J Stat
## Softw 67(1), section 1): lmer(Reaction ~ Days + (Days | Subject), sleepstudy), REML and ML, fitted
## with tight bobyqa tolerances so that the references are the optimum to well below the test tolerance.
suppressPackageStartupMessages({ library(lme4); library(jsonlite) })
d <- read.csv(file.path("tests", "reference", "data", "lmm_sleepstudy.csv"))
d$Subject <- factor(d$Subject)
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
one <- function(reml) {
  f <- lmer(Reaction ~ Days + (Days | Subject), data = d, REML = reml, control = ctrl)
  vc <- as.data.frame(VarCorr(f))
  list(fixef = as.list(fixef(f)), se = as.list(sqrt(diag(as.matrix(vcov(f))))),
       sd_intercept = vc$sdcor[vc$var1 == "(Intercept)" & is.na(vc$var2) & vc$grp == "Subject"],
       sd_days = vc$sdcor[vc$var1 == "Days" & is.na(vc$var2) & vc$grp == "Subject"],
       corr = vc$sdcor[!is.na(vc$var2)], residual_sd = sigma(f), logLik = as.numeric(logLik(f)))
}
ref <- list(source = "lme4 sleepstudy, Bates et al. (2015) J Stat Softw 67(1), lmer(Reaction ~ Days + (Days | Subject))",
            r_version = R.version.string, lme4_version = as.character(packageVersion("lme4")),
            REML = one(TRUE), ML = one(FALSE))
writeLines(toJSON(ref, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           file.path("tests", "reference", "models_mixed_reference.json"))
