# Reference values for tests/test_case_mix.py (rp2pr_eval.case_mix_adjusted_rates).
#
# Run from the repository root:
#   .venv/bin/python tests/reference/make_case_mix_data.py
#   Rscript tests/reference/case_mix.R
# Reads tests/reference/data/case_mix_patients.csv.gz and writes tests/reference/case_mix_reference.json.
# R is never needed at test time: both files are committed.
#
# 1. active_treatment (every patient eligible): glm(binomial) on age + sex + factor(ps) + factor(stage)
#    + factor(imd) fitted on the pre years 2008-09, missing PS and stage their own level "missing"
#    (placed last, the first level the reference, as the package does); expected counts = the sum of
#    the predicted probabilities per trust and period (pre 2008-09, during 2010-11, post 2012-13).
# 2. nsclc_resection (NSCLC patients only) fitted on 2012 alone, by audit year.
# Exact limits for O/E: poisson.test(O, conf.level = 0.95)$conf.int / E (Garwood).
# Byar limits: O (1 - 1/(9 O) - z/(3 sqrt O))^3 / E and (O+1)(1 - 1/(9(O+1)) + z/(3 sqrt(O+1)))^3 / E.
suppressPackageStartupMessages(library(jsonlite))

d <- read.csv("tests/reference/data/case_mix_patients.csv.gz", na.strings = c("NA", ""), stringsAsFactors = FALSE)
lev <- function(x) {
  x <- ifelse(is.na(x), "missing", as.character(x))
  u <- sort(setdiff(unique(x), "missing"))
  factor(x, levels = c(u, if ("missing" %in% x) "missing"))
}
d$sex <- lev(d$sex); d$ps <- lev(d$performance_status); d$stage <- lev(d$stage); d$imd <- lev(d$imd_quintile)
d$period <- ifelse(d$audit_year %in% 2008:2009, "pre", ifelse(d$audit_year %in% 2010:2011, "during", "post"))
z <- qnorm(0.975)

one <- function(outcome, fit_years, by) {
  x <- d[!is.na(d[[outcome]]), ]
  x$y <- x[[outcome]]
  fit <- glm(y ~ age + sex + ps + stage + imd, family = binomial(), data = x[x$audit_year %in% fit_years, ],
             control = glm.control(epsilon = 1e-12, maxit = 100))
  x$p <- predict(fit, newdata = x, type = "response")
  key <- if (by == "period") x$period else as.character(x$audit_year)
  cells <- unique(data.frame(trust_id = x$trust_id, time = key))
  rows <- lapply(seq_len(nrow(cells)), function(i) {
    s <- x$trust_id == cells$trust_id[i] & key == cells$time[i]
    O <- sum(x$y[s]); E <- sum(x$p[s])
    ci <- poisson.test(O, conf.level = 0.95)$conf.int
    byl <- if (O > 0) O * (1 - 1 / (9 * O) - z / (3 * sqrt(O)))^3 else 0
    byh <- (O + 1) * (1 - 1 / (9 * (O + 1)) + z / (3 * sqrt(O + 1)))^3
    list(trust_id = cells$trust_id[i], time = cells$time[i], observed = O, n = sum(s), expected = E,
         oe_low = ci[1] / E, oe_high = ci[2] / E, byar_low = max(byl, 0) / E, byar_high = byh / E)
  })
  list(outcome = outcome, fit_years = fit_years, by = by, reference_rate = mean(x$y[x$audit_year %in% fit_years]),
       coefficients = as.list(coef(fit)), se = as.list(sqrt(diag(vcov(fit)))), rows = rows)
}

out <- list(r_version = R.version.string,
            cases = list(one("active_treatment", 2008:2009, "period"), one("nsclc_resection", 2012, "audit_year")))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/case_mix_reference.json")
