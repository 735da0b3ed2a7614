## Published-data reference values for rp2pr_eval.models.gee_logit and rp2pr_eval.models.cox.
##
## Run from the repository root:  Rscript tests/reference/models_gee_cox.R
## Writes tests/reference/data/ohio.csv (geepack's ohio: wheeze of 537 children at ages 7-10,
## maternal smoking), tests/reference/data/lung.csv (survival's lung: NCCTG advanced lung cancer)
## and tests/reference/models_gee_cox_reference.json.
##
## GEE: geepack's documented example (?ohio; Halekoh, Hojsgaard & Yan 2006, J Stat Softw 15(2)):
##   geeglm(resp ~ age + smoke + age:smoke, id = id, data = ohio, family = binomial,
##          corstr = "exchangeable" | "independence"), robust ("san.se") SEs; the Mancl-DeRouen
##   sandwich computed here from geepack's fit by its definition (Mancl & DeRouen 2001):
##   V = B^-1 [sum_i D_i' V_i^-1 (I - H_ii)^-1 r_i r_i' (I - H_ii)^-T V_i^-1 D_i] B^-1,
##   H_ii = D_i B^-1 D_i' V_i^-1 (geesmv's GEE.var.md, which is not installable here).
## Cox: survival's lung examples (Therneau & Grambsch 2000): coxph(Surv(time, status) ~ age + sex,
##   lung) with ties = "efron" and "breslow", + strata(inst) and cluster = inst (robust variance).
suppressPackageStartupMessages({ library(geepack); library(survival); library(jsonlite) })
dir <- file.path("tests", "reference"); data_dir <- file.path(dir, "data")

data(ohio, package = "geepack")
write.csv(ohio, file.path(data_dir, "ohio.csv"), row.names = FALSE)
gee_one <- function(corstr) {
  f <- geeglm(resp ~ age + smoke + age:smoke, id = id, data = ohio, family = binomial, corstr = corstr)
  X <- model.matrix(f); mu <- fitted(f); r <- ohio$resp - mu; a <- mu * (1 - mu)
  rho <- if (corstr == "exchangeable") as.numeric(f$geese$alpha) else 0
  ids <- split(seq_len(nrow(ohio)), ohio$id)
  p <- ncol(X); B <- matrix(0, p, p)
  parts <- lapply(ids, function(ix) {
    n <- length(ix); R <- (1 - rho) * diag(n) + rho; A <- diag(sqrt(a[ix]), n)
    Vi <- A %*% R %*% A; D <- diag(a[ix], n) %*% X[ix, , drop = FALSE]
    list(D = D, Vinv = solve(Vi), r = r[ix])
  })
  for (q in parts) B <- B + t(q$D) %*% q$Vinv %*% q$D
  Binv <- solve(B); meat <- matrix(0, p, p)
  for (q in parts) {
    H <- q$D %*% Binv %*% t(q$D) %*% q$Vinv
    u <- t(q$D) %*% q$Vinv %*% solve(diag(nrow(H)) - H, q$r)
    meat <- meat + u %*% t(u)
  }
  md <- Binv %*% meat %*% Binv
  list(terms = names(coef(f)), coef = unname(coef(f)), se_robust = unname(summary(f)$coefficients[, "Std.err"]),
       se_mancl_derouen = sqrt(diag(md)), alpha = rho)
}
data(cancer, package = "survival")
lung <- survival::lung
write.csv(lung, file.path(data_dir, "lung.csv"), row.names = FALSE)
cox_one <- function(fit) list(coef = unname(coef(fit)), se = unname(sqrt(diag(vcov(fit)))),
                              loglik = fit$loglik[2], n = fit$n, nevent = fit$nevent)
ref <- list(
  source = "geepack ohio (?ohio, Halekoh et al. 2006); survival lung (Therneau & Grambsch 2000)",
  r_version = R.version.string, geepack_version = as.character(packageVersion("geepack")),
  survival_version = as.character(packageVersion("survival")),
  gee = list(exchangeable = gee_one("exchangeable"), independence = gee_one("independence")),
  cox = list(
    efron = cox_one(coxph(Surv(time, status) ~ age + sex, data = lung, ties = "efron")),
    breslow = cox_one(coxph(Surv(time, status) ~ age + sex, data = lung, ties = "breslow")),
    strata = cox_one(coxph(Surv(time, status) ~ age + sex + strata(inst), data = lung)),
    cluster = cox_one(coxph(Surv(time, status) ~ age + sex, data = lung, cluster = inst)),
    strata_cluster = cox_one(coxph(Surv(time, status) ~ age + sex + strata(ph.ecog), data = lung, cluster = inst))
  ))
writeLines(toJSON(ref, digits = NA, auto_unbox = TRUE, pretty = TRUE), file.path(dir, "models_gee_cox_reference.json"))
