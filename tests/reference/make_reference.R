## Reference values for the difference-in-differences estimators of rp2pr_eval/estimators/did.py
## (did_aggregate, ancova, did_twfe, event_study, did_logistic, did_cox), read by
## tests/test_did_reference.py.
##
## Run from the repository root, after the data script:
##     .venv/bin/python tests/reference/make_reference_data.py
##     Rscript tests/reference/make_reference.R
## Reads  tests/reference/data/did_patients.csv.gz   patient rows, pre and post years
##        tests/reference/data/did_panel_period.csv  trust x period rates (pre/post)
##        tests/reference/data/did_panel_year.csv    trust x audit-year rates (2008-2013)
## Writes tests/reference/did_reference.json
## pytest never runs R; it only reads the committed data and JSON.
##
## The data are rp.simulate_nlca(seed=2718, n_pairs=16, n_treated_pairs=6,
## effects={"active_treatment": 0.3}, volume_median=80, volume_clip=(40, 160)):
## 32 trusts in 16 pairs (6 pairs intervention); outcome active_treatment.
##
## Models (the package's options in brackets)
##   did_aggregate  lm(rate ~ treated * post[, weights = denominator]) on the trust x
##                  period panel; clubSandwich vcovCR CR1S / CR2 / CR3 clustered by
##                  pair_id and by trust_id; coef_test Satterthwaite (CR2) and naive-t
##                  (CR1S, CR3: t(G - 1), the package's df for CR1/CR3);
##                  sandwich::vcovCL(type = "HC1"); estimatr::lm_robust(se_type = "CR2").
##   ancova         lm(post ~ treated + pre[, weights = n_post]), one row per trust;
##                  CR2 + Satterthwaite and CR1S by pair_id.
##   did_twfe       lm(rate ~ D + factor(trust_id) + factor(audit_year)[, weights =
##                  denominator]) on the pre and post years, D = treated x post;
##                  sandwich::vcovCL HC1 (= clubSandwich CR1S) and CR2 + Satterthwaite by pair.
##   event_study    the same dummy regression on all six years with treated x year for
##                  every year except 2009; CR2 + Satterthwaite by pair;
##                  Wald_test(constrain_zero(<pre-year terms>), test = "HTZ").
##   did_logistic   glm(active_treatment ~ treated * post + age + sex
##                  + factor(performance_status, exclude = NULL) + factor(stage, exclude = NULL)
##                  + factor(imd_quintile), family = binomial) and without covariates;
##                  sandwich::vcovCL(cluster = ~pair_id, type = "HC1"); t(G - 1) reference.
##   did_cox        coxph(Surv(survival_days, died) ~ treated * post + <case-mix>,
##                  ties = "efron", cluster = pair_id) and without covariates; robust SE.
##                  Also, as a diagnostic, the robust SE built from Breslow-form score
##                  residuals around the Efron information (statsmodels PHReg's convention).
## The glm and coxph fits use tight convergence controls (glm epsilon 1e-14,
## coxph eps 1e-14) so that the reference is the optimum to well below the test
## tolerances; the point estimates move by about 1e-13 (glm) and 1e-9 (coxph) against the defaults (recorded
## under "default_control_maxdiff").

suppressPackageStartupMessages({
  library(clubSandwich)
  library(sandwich)
  library(estimatr)
  library(survival)
  library(jsonlite)
})

script_path <- "tests/reference/make_reference.R"
data_dir <- file.path("tests", "reference", "data")
json_path <- file.path("tests", "reference", "did_reference.json")
files <- c(patients = "did_patients.csv.gz", panel_period = "did_panel_period.csv",
           panel_year = "did_panel_year.csv")
paths <- file.path(data_dir, files)
names(paths) <- names(files)
missing <- paths[!file.exists(paths)]
if (length(missing)) {
  stop("missing data file(s) ", paste(missing, collapse = ", "),
       "; run .venv/bin/python tests/reference/make_reference_data.py first")
}

sha256 <- function(path) {
  out <- system2("sha256sum", shQuote(path), stdout = TRUE)
  strsplit(out, " ")[[1]][1]
}

read_data <- function(path) {
  con <- if (grepl("\\.gz$", path)) gzfile(path) else path
  read.csv(con, stringsAsFactors = FALSE, na.strings = "NA",
           colClasses = c(trust_id = "character", pair_id = "character"))
}

pat <- read_data(paths[["patients"]])
pp <- read_data(paths[["panel_period"]])
py <- read_data(paths[["panel_year"]])

## the rate from integer counts (equal to the committed value column)
pp$rate <- pp$numerator / pp$denominator
py$rate <- py$numerator / py$denominator
stopifnot(max(abs(pp$rate - pp$value)) < 1e-15, max(abs(py$rate - py$value)) < 1e-15)
pp$post <- as.integer(pp$period == "post")
py$post <- as.integer(py$period == "post")

## ---- helpers ------------------------------------------------------------------
term_list <- function(fit) as.list(coef(fit))

lin_inference <- function(fit, cluster, terms, with_cr3 = TRUE) {
  ## clubSandwich CR1S / CR2 / CR3, sandwich vcovCL HC1, for the named terms.
  ## CR3 is left out for the fixed-effect models: deleting a pair deletes its
  ## trusts' fixed effects, so the jackknife is undefined (the package raises).
  V1 <- vcovCR(fit, cluster = cluster, type = "CR1S")
  V2 <- vcovCR(fit, cluster = cluster, type = "CR2")
  HC1 <- sandwich::vcovCL(fit, cluster = cluster, type = "HC1")
  pick <- function(ct, df_col, p_col) {
    ct <- ct[match(terms, ct$Coef), ]
    list(estimate = ct$beta, se = ct$SE, df = ct[[df_col]], p = ct[[p_col]])
  }
  out <- list(
    terms = terms,
    CR1S = pick(coef_test(fit, vcov = V1, test = "naive-t"), "df_t", "p_t"),
    CR2 = pick(coef_test(fit, vcov = V2, test = "Satterthwaite"), "df_Satt", "p_Satt"),
    vcovCL_HC1 = list(se = unname(sqrt(diag(HC1))[terms])),
    n_clusters = length(unique(cluster)))
  if (with_cr3) {
    V3 <- vcovCR(fit, cluster = cluster, type = "CR3")
    out$CR3 <- pick(coef_test(fit, vcov = V3, test = "naive-t"), "df_t", "p_t")
  }
  out
}

## ---- did_aggregate --------------------------------------------------------------
did_aggregate_one <- function(weighted) {
  fit <- if (weighted) lm(rate ~ treated * post, data = pp, weights = denominator) else
    lm(rate ~ treated * post, data = pp)
  out <- list(
    call = if (weighted) "lm(rate ~ treated * post, data = panel_period, weights = denominator)" else
      "lm(rate ~ treated * post, data = panel_period)",
    n = nobs(fit), coefficients = term_list(fit), estimate = unname(coef(fit)["treated:post"]))
  for (cl in c("pair_id", "trust_id")) {
    inf <- lin_inference(fit, pp[[cl]], "treated:post")
    rob <- if (weighted)
      lm_robust(rate ~ treated * post, data = pp, weights = denominator, clusters = pp[[cl]], se_type = "CR2") else
      lm_robust(rate ~ treated * post, data = pp, clusters = pp[[cl]], se_type = "CR2")
    i <- which(rob$term == "treated:post")
    inf$lm_robust_CR2 <- list(estimate = unname(rob$coefficients[i]), se = unname(rob$std.error[i]),
                              df = unname(rob$df[i]), p = unname(rob$p.value[i]))
    out[[cl]] <- inf
  }
  out
}

## ---- ancova -------------------------------------------------------------------
pre <- pp[pp$period == "pre", c("trust_id", "pair_id", "treated", "rate", "denominator")]
post <- pp[pp$period == "post", c("trust_id", "rate", "denominator")]
names(pre)[names(pre) == "rate"] <- "pre"
names(pre)[names(pre) == "denominator"] <- "n_pre"
names(post) <- c("trust_id", "post", "n_post")
wide <- merge(pre, post, by = "trust_id")
wide <- wide[order(wide$trust_id), ]

ancova_one <- function(weighted) {
  fit <- if (weighted) lm(post ~ treated + pre, data = wide, weights = n_post) else
    lm(post ~ treated + pre, data = wide)
  list(
    call = if (weighted) "lm(post ~ treated + pre, data = wide, weights = n_post)" else
      "lm(post ~ treated + pre, data = wide)",
    n = nobs(fit), coefficients = term_list(fit), estimate = unname(coef(fit)["treated"]),
    baseline_slope = unname(coef(fit)["pre"]),
    pair_id = lin_inference(fit, wide$pair_id, "treated"))
}

## ---- did_twfe ---------------------------------------------------------------------
twfe <- py[py$period %in% c("pre", "post"), ]
twfe$D <- twfe$treated * twfe$post

did_twfe_one <- function(weighted) {
  f <- rate ~ D + factor(trust_id) + factor(audit_year)
  fit <- if (weighted) lm(f, data = twfe, weights = denominator) else lm(f, data = twfe)
  stopifnot(!any(is.na(coef(fit))))
  list(
    call = paste0("lm(rate ~ D + factor(trust_id) + factor(audit_year), data = panel_year[pre and post years]",
                  if (weighted) ", weights = denominator)" else ")"),
    n = nobs(fit), n_coef = length(coef(fit)), estimate = unname(coef(fit)["D"]),
    pair_id = lin_inference(fit, twfe$pair_id, "D", with_cr3 = FALSE))
}

## ---- event_study ---------------------------------------------------------------
years <- sort(unique(py$audit_year))
ref_year <- 2009L
effect_years <- setdiff(years, ref_year)
pre_years <- c(2008L, 2009L)
es <- py
for (y in effect_years) es[[paste0("tr", y)]] <- es$treated * as.integer(es$audit_year == y)
es_terms <- paste0("tr", effect_years)
es_pre_terms <- paste0("tr", intersect(effect_years, pre_years))

event_study_one <- function(weighted) {
  f <- as.formula(paste("rate ~", paste(es_terms, collapse = " + "), "+ factor(trust_id) + factor(audit_year)"))
  fit <- if (weighted) lm(f, data = es, weights = denominator) else lm(f, data = es)
  stopifnot(!any(is.na(coef(fit))))
  V2 <- vcovCR(fit, cluster = es$pair_id, type = "CR2")
  ct <- coef_test(fit, vcov = V2, test = "Satterthwaite")
  ct <- ct[match(es_terms, ct$Coef), ]
  wt <- Wald_test(fit, constraints = constrain_zero(es_pre_terms), vcov = V2, test = "HTZ")
  list(
    call = paste0("lm(", deparse(f, width.cutoff = 500L), ", data = panel_year",
                  if (weighted) ", weights = denominator)" else ")"),
    wald_call = sprintf("Wald_test(fit, constraints = constrain_zero(c(%s)), vcov = vcovCR(fit, cluster = pair_id, type = \"CR2\"), test = \"HTZ\")",
                        paste0('"', es_pre_terms, '"', collapse = ", ")),
    n = nobs(fit), reference_year = ref_year, years = effect_years, terms = es_terms,
    estimate = ct$beta, se = ct$SE, df = ct$df_Satt, p = ct$p_Satt,
    pretrend = list(terms = es_pre_terms, F = wt$Fstat, delta = wt$delta, df_num = wt$df_num,
                    df_den = wt$df_denom, p = wt$p_val))
}

## ---- did_logistic ------------------------------------------------------------------
lg <- pat[!is.na(pat$active_treatment), ]
## the package's names for R's coefficient names
package_name <- function(nm) {
  nm <- sub("^\\(Intercept\\)$", "intercept", nm)
  nm <- sub("^sex(.*)$", "sex[\\1]", nm)
  nm <- sub("^factor\\(performance_status, exclude = NULL\\)NA$", "performance_status[missing]", nm)
  nm <- sub("^factor\\(performance_status, exclude = NULL\\)(.*)$", "performance_status[\\1]", nm)
  nm <- sub("^factor\\(stage, exclude = NULL\\)NA$", "stage[missing]", nm)
  nm <- sub("^factor\\(stage, exclude = NULL\\)(.*)$", "stage[\\1]", nm)
  nm <- sub("^factor\\(imd_quintile\\)(.*)$", "imd_quintile[\\1]", nm)
  nm
}
casemix <- "age + sex + factor(performance_status, exclude = NULL) + factor(stage, exclude = NULL) + factor(imd_quintile)"

logistic_one <- function(adjusted) {
  f <- as.formula(paste("active_treatment ~ treated * post", if (adjusted) paste("+", casemix) else ""))
  tight <- glm(f, family = binomial, data = lg, control = glm.control(epsilon = 1e-14, maxit = 100))
  default <- glm(f, family = binomial, data = lg)
  V <- sandwich::vcovCL(tight, cluster = ~pair_id, type = "HC1")
  se <- sqrt(diag(V))
  G <- length(unique(lg$pair_id))
  b <- unname(coef(tight)["treated:post"])
  s <- unname(se["treated:post"])
  list(
    call = paste0("glm(", deparse(f, width.cutoff = 500L), ", family = binomial, data = patients[!is.na(active_treatment)])"),
    vcov_call = "sandwich::vcovCL(fit, cluster = ~pair_id, type = \"HC1\")",
    n = nobs(tight), n_clusters = G, r_names = names(coef(tight)),
    names = package_name(names(coef(tight))), coef = unname(coef(tight)), se = unname(se),
    estimate = b, se_treated_post = s, df = G - 1, p = 2 * pt(abs(b / s), G - 1, lower.tail = FALSE),
    log_likelihood = as.numeric(logLik(tight)), converged = tight$converged,
    default_control_maxdiff = max(abs(coef(default) - coef(tight))))
}

## ---- did_cox -------------------------------------------------------------------------
cx <- pat[!is.na(pat$survival_days) & !is.na(pat$died), ]
cox_one <- function(adjusted) {
  f <- as.formula(paste("Surv(survival_days, died) ~ treated * post", if (adjusted) paste("+", casemix) else ""))
  tight <- coxph(f, data = cx, ties = "efron", cluster = pair_id,
                 control = coxph.control(eps = 1e-14, iter.max = 100, toler.chol = 1e-15))
  default <- coxph(f, data = cx, ties = "efron", cluster = pair_id)
  b <- coef(tight)
  ## Diagnostic (not coxph's answer): the sandwich with the Efron information but
  ## Breslow-form score residuals at the Efron estimate, which is what
  ## statsmodels PHReg.robust_covariance computes for ties = "efron" (its
  ## score_residuals ignore the tie method).  Kept to document the gap.
  bres <- coxph(f, data = cx, ties = "breslow", init = b, control = coxph.control(iter.max = 0))
  U <- rowsum(residuals(bres, type = "score"), cx$pair_id)
  V_mixed <- tight$naive.var %*% crossprod(U) %*% tight$naive.var
  list(
    call = paste0("coxph(", deparse(f, width.cutoff = 500L), ", data = patients, ties = \"efron\", cluster = pair_id)"),
    n = tight$n, n_events = tight$nevent, n_clusters = length(unique(cx$pair_id)),
    r_names = names(b), names = package_name(names(b)), coef = unname(b),
    robust_se = unname(sqrt(diag(tight$var))), naive_se = unname(sqrt(diag(tight$naive.var))),
    estimate = unname(b["treated:post"]), se = unname(sqrt(diag(tight$var))[names(b) == "treated:post"]),
    log_likelihood = tight$loglik[2],
    diagnostic_robust_se_breslow_score = unname(sqrt(diag(V_mixed))),
    default_control_maxdiff = max(abs(coef(default) - b)))
}

## ---- assemble ------------------------------------------------------------------------
pkgs <- c("clubSandwich", "sandwich", "estimatr", "survival", "jsonlite")
ref <- list(
  provenance = list(
    script = script_path,
    data_script = "tests/reference/make_reference_data.py",
    generated = format(Sys.time(), "%Y-%m-%d %H:%M:%S %Z"),
    R = R.version.string,
    packages = setNames(lapply(pkgs, function(p) as.character(packageVersion(p))), pkgs),
    simulation = paste("rp.simulate_nlca(seed=2718, n_pairs=16, n_treated_pairs=6,",
                       "effects={\"active_treatment\": 0.3}, volume_median=80, volume_clip=(40, 160))"),
    data = setNames(lapply(names(paths), function(k) list(path = unname(paths[[k]]), sha256 = sha256(paths[[k]]))),
                    names(paths)),
    notes = paste(
      "Rates are numerator/denominator recomputed in R from the committed counts.",
      "clubSandwich's CR2 for lm uses the identity working model with or without weights.",
      "CR1S and CR3 are referred to t(G - 1) (coef_test test = 'naive-t'), the package's convention.",
      "Logistic: t(G - 1) reference for the vcovCL HC1 sandwich. Cox: robust (cluster) SE, normal reference.")),
  outcome = "active_treatment",
  did_aggregate = list(weighted = did_aggregate_one(TRUE), unweighted = did_aggregate_one(FALSE)),
  ancova = list(weighted = ancova_one(TRUE), unweighted = ancova_one(FALSE)),
  did_twfe = list(weighted = did_twfe_one(TRUE), unweighted = did_twfe_one(FALSE)),
  event_study = list(weighted = event_study_one(TRUE), unweighted = event_study_one(FALSE)),
  did_logistic = list(case_mix = logistic_one(TRUE), unadjusted = logistic_one(FALSE)),
  did_cox = list(case_mix = cox_one(TRUE), unadjusted = cox_one(FALSE)))

writeLines(toJSON(ref, auto_unbox = TRUE, digits = NA, pretty = TRUE), json_path)
cat("wrote", json_path, "\n")
