## Reference values for rp2pr_eval.models.glmm_nested (nested random intercepts, Laplace).
##
## Run from the repository root, after tests/reference/make_glmm_nested_data.py:
##     Rscript tests/reference/glmm_nested.R              # the synthetic fits (what is committed)
##     Rscript tests/reference/glmm_nested.R generator    # also the generator draw (18 fixed effects;
##                                                        # the tight glmer fit ran > 1 h on the shared
##                                                        # machine and was not completed)
## Reads  tests/reference/data/glmm_nested_{synthetic,generator}.csv.gz
## Writes tests/reference/glmm_nested_reference.json: for each fit, the fixed effects, their SEs
##        (vcov(), lme4's finite-difference Hessian), the random-intercept SDs, logLik(),
##        isSingular() and the conditional modes of each term.
## pytest never runs this script; it only reads the committed output.
##
## As in glmm.R, the optimiser is bobyqa with a tight rhoend and the penalised IRLS uses
## tolPwrss = 1e-12, so that the reference is the optimum of lme4's objective to well below the
## test tolerances; the default-control fit is recorded too ("default_control_maxdiff").

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

out_dir <- file.path("tests", "reference")
data_dir <- file.path(out_dir, "data")
tight <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12,
                      optCtrl = list(rhoend = 1e-10, maxfun = 1e5))

read_fixture <- function(name) {
  d <- read.csv(gzfile(file.path(data_dir, sprintf("glmm_nested_%s.csv.gz", name))),
                colClasses = c(pair_id = "character", trust_id = "character", period = "character"))
  d$pair_id <- factor(d$pair_id)
  d$trust_id <- factor(d$trust_id)
  d$period <- factor(d$period, levels = c("pre", "post"))
  d
}

summarise_fit <- function(fit, fit_default, seconds) {
  vc <- as.data.frame(VarCorr(fit))
  sds <- setNames(as.list(vc$sdcor), vc$grp)
  re <- ranef(fit, condVar = TRUE)
  modes <- lapply(names(re), function(g) {
    pv <- attr(re[[g]], "postVar")
    list(group = rownames(re[[g]]), mode = re[[g]][, 1], sd = sqrt(as.numeric(pv)))
  })
  names(modes) <- names(re)
  fe <- fixef(fit)
  se <- sqrt(diag(as.matrix(vcov(fit))))
  list(
    fixef = as.list(fe), se = as.list(se), sd = sds,
    loglik = as.numeric(logLik(fit)), singular = isSingular(fit),
    modes = modes, seconds = seconds,
    default_control_maxdiff = max(abs(c(fixef(fit_default) - fe,
                                        as.data.frame(VarCorr(fit_default))$sdcor - vc$sdcor)))
  )
}

fits <- list()
calls <- list()
syn <- read_fixture("synthetic")
f_syn <- y ~ treated * post + age10 + sex_M + ps_high
specs <- list(
  synthetic_3level = list(data = syn, rhs = "(1 | pair_id) + (1 | trust_id) + (1 | trust_id:period)"),
  synthetic_trust_period = list(data = syn, rhs = "(1 | trust_id) + (1 | trust_id:period)"),
  synthetic_pair_trust = list(data = syn, rhs = "(1 | pair_id) + (1 | trust_id)")
)
if ("generator" %in% commandArgs(trailingOnly = TRUE)) {
  gen <- read_fixture("generator")
  cm <- setdiff(names(gen), c("y", "treated", "post", "pair_id", "trust_id", "period"))
  f_gen <- paste("y ~ treated * post +", paste(cm, collapse = " + "))
  specs$generator_3level <- list(data = gen, rhs = "(1 | pair_id) + (1 | trust_id) + (1 | trust_id:period)",
                                 lhs = f_gen)
}
for (nm in names(specs)) {
  sp <- specs[[nm]]
  lhs <- if (is.null(sp$lhs)) deparse(f_syn) else sp$lhs
  form <- as.formula(paste(lhs, "+", sp$rhs))
  t0 <- proc.time()[["elapsed"]]
  fit <- glmer(form, family = binomial, data = sp$data, nAGQ = 1, control = tight)
  secs <- proc.time()[["elapsed"]] - t0
  fit_def <- suppressMessages(glmer(form, family = binomial, data = sp$data, nAGQ = 1))
  fits[[nm]] <- summarise_fit(fit, fit_def, secs)
  calls[[nm]] <- paste0("glmer(", paste(deparse(form), collapse = " "),
                        ", family = binomial, nAGQ = 1, control = glmerControl(optimizer = 'bobyqa', ",
                        "tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-10, maxfun = 1e5)))")
  cat(nm, "logLik", fits[[nm]]$loglik, "singular", fits[[nm]]$singular, "\n")
}
out <- list(
  generated_by = "tests/reference/glmm_nested.R",
  r_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  calls = calls,
  fits = fits
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           file.path(out_dir, "glmm_nested_reference.json"))
