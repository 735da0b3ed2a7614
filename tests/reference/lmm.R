## Reference values for rp2pr_eval.estimators.mixed_linear (random-intercept linear mixed model, REML).
##
## Run from the repository root, after the Python data step:
##     .venv/bin/python tests/reference/make_lmm_data.py
##     Rscript tests/reference/lmm.R
## Reads
##     tests/reference/data/lmm_active_treatment.csv            trust x period rates
##     tests/reference/data/lmm_days_referral_to_treatment.csv  trust x period mean log(1 + days)
##         (both written by make_lmm_data.py from
##          rp.simulate_nlca(seed=31, n_pairs=20, n_treated_pairs=8, volume_median=80,
##                           volume_clip=(40, 160)) via prepare() + trust_values(prep, "period"))
## Writes
##     tests/reference/data/lmm_sleepstudy.csv   lme4's sleepstudy (so pytest needs no R)
##     tests/reference/lmm_reference.json        lmer fits: fixed effects, SEs, RE SD,
##                                               residual SD, REML logLik, theta, and
##                                               Satterthwaite df (lmerTest) and, for the
##                                               unweighted fits, Kenward-Roger df
## pytest never runs this script; it only reads the committed outputs.
##
## Fits (all REML):
##     lmer(Reaction ~ Days + (1 | Subject), data = sleepstudy)
##     lmer(value ~ treated * post + (1 | trust_id), data = <table>)                  unweighted
##     lmer(value ~ treated * post + (1 | trust_id), data = <table>, weights = w)    w = weight / mean(weight)
## with lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 0.1, rhoend = 1e-12)) so that
## the reference values are lme4's optimum to well below the 1e-4 test tolerance.  The
## default-control fit is also made and its largest difference from the tight fit is
## recorded under "default_control_maxdiff".

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
has_lmerTest <- requireNamespace("lmerTest", quietly = TRUE)
has_pbkrtest <- requireNamespace("pbkrtest", quietly = TRUE)

out_dir <- file.path("tests", "reference")
data_dir <- file.path(out_dir, "data")
dir.create(data_dir, showWarnings = FALSE, recursive = TRUE)

sha256 <- function(path) {
  if (requireNamespace("digest", quietly = TRUE)) {
    return(digest::digest(file = path, algo = "sha256"))
  }
  strsplit(system2("sha256sum", shQuote(path), stdout = TRUE), " ")[[1]][1]
}

## ---- data -------------------------------------------------------------------------
sleep_path <- file.path(data_dir, "lmm_sleepstudy.csv")
ss <- lme4::sleepstudy
ss$Subject <- as.character(ss$Subject)
write.csv(ss, sleep_path, row.names = FALSE)
sleep <- read.csv(sleep_path, colClasses = c(Subject = "character"))

read_panel <- function(path) {
  d <- read.csv(path, colClasses = c(trust_id = "character", pair_id = "character",
                                     arm = "character", period = "character"))
  d$w <- d$weight / mean(d$weight)
  d
}
panel_paths <- c(active_treatment = file.path(data_dir, "lmm_active_treatment.csv"),
                 days_referral_to_treatment = file.path(data_dir, "lmm_days_referral_to_treatment.csv"))
panels <- lapply(panel_paths, read_panel)

## ---- fits -----------------------------------------------------------------------------
tight <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 0.1, rhoend = 1e-12, maxfun = 1e5))

## REML log-likelihood written out (same formula as lme4, checks the weight convention):
## l_R = -1/2 [ log|V| + log|X' V^-1 X| + r' V^-1 r + (n - p) log(2 pi) ],
## V = sigma_u^2 Z Z' + sigma^2 W^-1, r = y - X beta_hat.  log|V| contains -sum(log w).
reml_loglik_direct <- function(fit, y, X, g, w) {
  vc <- as.data.frame(VarCorr(fit))
  su2 <- vc$vcov[1]
  s2 <- sigma(fit)^2
  Z <- model.matrix(~ 0 + factor(g))
  V <- su2 * tcrossprod(Z) + s2 * diag(1 / w, length(y))
  Vi <- solve(V)
  XtViX <- crossprod(X, Vi %*% X)
  beta <- solve(XtViX, crossprod(X, Vi %*% y))
  r <- y - X %*% beta
  n <- length(y); p <- ncol(X)
  -0.5 * (as.numeric(determinant(V)$modulus) + as.numeric(determinant(XtViX)$modulus) +
          as.numeric(crossprod(r, Vi %*% r)) + (n - p) * log(2 * pi))
}

ddf_table <- function(fit, ddf) {
  m <- lmerTest::as_lmerModLmerTest(fit)
  cf <- summary(m, ddf = ddf)$coefficients
  as.list(setNames(cf[, "df"], rownames(cf)))
}

summarise_fit <- function(fit, fit_default, y, X, g, w) {
  vc <- as.data.frame(VarCorr(fit))
  ll <- as.numeric(logLik(fit, REML = TRUE))
  out <- list(
    fixef = as.list(fixef(fit)),
    se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
    re_sd = vc$sdcor[1],
    residual_sd = sigma(fit),
    theta = unname(getME(fit, "theta")),
    logLik = ll,
    logLik_direct = reml_loglik_direct(fit, y, X, g, w),
    sum_log_weights = sum(log(w)),
    REMLcrit = unname(getME(fit, "devcomp")$cmp["REML"]),
    nobs = nobs(fit),
    ngroups = unname(ngrps(fit)),
    isSingular = isSingular(fit),
    optimizer_messages = fit@optinfo$conv$lme4$messages,
    default_control_maxdiff = max(abs(c(fixef(fit) - fixef(fit_default),
                                        getME(fit, "theta") - getME(fit_default, "theta"),
                                        sigma(fit) - sigma(fit_default),
                                        ll - as.numeric(logLik(fit_default))))))
  if (has_lmerTest) out$df_satterthwaite <- ddf_table(fit, "Satterthwaite")
  ## pbkrtest's Kenward-Roger builds Var(y) with an identity residual matrix (.get_SigmaG),
  ## i.e. it ignores prior weights, so it is recorded for unweighted fits only.
  if (has_lmerTest && has_pbkrtest && all(w == 1)) out$df_kenward_roger <- ddf_table(fit, "Kenward-Roger")
  out
}

fits <- list()
calls <- list()

calls$sleepstudy <- "lmer(Reaction ~ Days + (1 | Subject), data = sleepstudy, REML = TRUE, control = lmerControl(optimizer = 'bobyqa', optCtrl = list(rhobeg = 0.1, rhoend = 1e-12, maxfun = 1e5)))"
f <- lmer(Reaction ~ Days + (1 | Subject), data = sleep, REML = TRUE, control = tight)
f0 <- lmer(Reaction ~ Days + (1 | Subject), data = sleep, REML = TRUE)
fits$sleepstudy <- summarise_fit(f, f0, sleep$Reaction, model.matrix(~ Days, sleep), sleep$Subject,
                                 rep(1, nrow(sleep)))

calls$panel_unweighted <- "lmer(value ~ treated * post + (1 | trust_id), data = panel, REML = TRUE, control = <as for sleepstudy>)"
calls$panel_weighted <- "lmer(value ~ treated * post + (1 | trust_id), data = panel, REML = TRUE, weights = weight / mean(weight), control = <as for sleepstudy>)"
for (outcome in names(panels)) {
  d <- panels[[outcome]]
  X <- model.matrix(~ treated * post, d)
  fu <- lmer(value ~ treated * post + (1 | trust_id), data = d, REML = TRUE, control = tight)
  fu0 <- lmer(value ~ treated * post + (1 | trust_id), data = d, REML = TRUE)
  fw <- lmer(value ~ treated * post + (1 | trust_id), data = d, REML = TRUE, weights = w, control = tight)
  fw0 <- lmer(value ~ treated * post + (1 | trust_id), data = d, REML = TRUE, weights = w)
  fits[[outcome]] <- list(
    unweighted = summarise_fit(fu, fu0, d$value, X, d$trust_id, rep(1, nrow(d))),
    weighted = summarise_fit(fw, fw0, d$value, X, d$trust_id, d$w)
  )
}

paths <- c(sleepstudy = sleep_path, panel_paths)
ref <- c(
  list(provenance = list(
    script = "tests/reference/lmm.R",
    command = ".venv/bin/python tests/reference/make_lmm_data.py && Rscript tests/reference/lmm.R",
    R_version = R.version.string,
    lme4_version = as.character(packageVersion("lme4")),
    Matrix_version = as.character(packageVersion("Matrix")),
    lmerTest_version = if (has_lmerTest) as.character(packageVersion("lmerTest")) else NULL,
    pbkrtest_version = if (has_pbkrtest) as.character(packageVersion("pbkrtest")) else NULL,
    jsonlite_version = as.character(packageVersion("jsonlite")),
    date = format(Sys.time(), "%Y-%m-%d"),
    simulation = "rp.simulate_nlca(seed=31, n_pairs=20, n_treated_pairs=8, volume_median=80, volume_clip=(40, 160)); prepare(patients, outcome, design=None, cluster='pair_id') + trust_values(prep, 'period') (tests/reference/make_lmm_data.py)",
    data = lapply(names(paths), function(k) list(name = k, path = unname(paths[[k]]),
                                                   sha256 = sha256(paths[[k]]))),
    calls = calls,
    notes = paste(
      "se: sqrt(diag(vcov(fit))); re_sd: SD of the random intercept; residual_sd: sigma(fit)",
      "(for the weighted fit the residual variance of a row is residual_sd^2 / w);",
      "logLik: logLik(fit, REML = TRUE); logLik_direct: the REML log-likelihood computed",
      "from the formula -1/2[log|V| + log|X'V^-1X| + r'V^-1r + (n-p)log(2pi)] with",
      "V = sigma_u^2 ZZ' + sigma^2 W^-1 at the lme4 estimates (equal to logLik: lme4's",
      "REML logLik for prior weights includes +1/2 sum(log w), the Jacobian of the weights);",
      "df_satterthwaite / df_kenward_roger: lmerTest::as_lmerModLmerTest(fit) summary df;",
      "Kenward-Roger is recorded for unweighted fits only (pbkrtest 0.5.2 ignores prior weights:",
      "its Var(y) uses an identity residual matrix).")
  )),
  fits
)
writeLines(toJSON(ref, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"),
           file.path(out_dir, "lmm_reference.json"))
cat("wrote", file.path(out_dir, "lmm_reference.json"), "\n")
