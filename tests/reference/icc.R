# Reference values for tests/test_icc.py (rp2pr_eval.models.variance_components and the latent ICCs of rp.icc).
#
# Run from the repository root:   Rscript tests/reference/icc.R
# Writes tests/reference/data/icc_unbalanced.csv, tests/reference/data/icc_balanced.csv and
# tests/reference/icc_reference.json.  R is never needed at test time: the outputs are committed.
#
# Data: 20 pairs (8 "treated") x 2 trusts x 2 periods; y ~ Bernoulli(plogis(-0.3 + 0.2 T + 0.1 post
# + 0.2 T post + a_pair + b_trust + c_trust_period)), SDs 0.3, 0.4, 0.25.  Unbalanced: 30-120 patients
# per trust-period; balanced: 50 each.
#
# 1. Balanced data: lme4::lmer REML variance components of the linear (proportion-scale) models
#      y ~ cell + (1 | trust_id),  y ~ cell + (1 | pair_id),  y ~ cell + (1 | trust_id) + (1 | trust_period)
#    (cell = arm x period).  For balanced data the ANOVA (moment) estimators equal the REML estimates
#    whenever these are positive (Searle, Casella & McCulloch 1992, sec. 6.7), an independent check of
#    the moment algebra with fixed effects swept out.
# 2. Unbalanced data, intercept only: the classical one-way ANOVA estimator for unequal cluster sizes
#      (MSB - MSW) / (MSB + (n0 - 1) MSW),  n0 = (N - sum n_g^2 / N) / (k - 1)
#    from summary(aov(y ~ factor(g))) (what ICCbin::iccbin(method = "aov") computes; ICCbin is not
#    installable here), for g = trust and pair.
# 3. Unbalanced data: lme4::glmer(y ~ treated * post + (1 | g), family = binomial, nAGQ = 25) for
#    g = trust_id, pair_id, trust_period; the latent ICC sigma^2 / (sigma^2 + pi^2 / 3).

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = FALSE)
script <- sub("^--file=", "", args[grep("^--file=", args)])
ref_dir <- if (length(script)) dirname(normalizePath(script)) else "tests/reference"
dir.create(file.path(ref_dir, "data"), showWarnings = FALSE, recursive = TRUE)

make_data <- function(sizes_fun, seed) {
  set.seed(seed)
  n_pairs <- 20
  treated_pair <- sample(rep(0:1, c(12, 8)))
  a <- rnorm(n_pairs, 0, 0.3)
  rows <- list()
  for (p in seq_len(n_pairs)) for (t in 1:2) {
    trust <- sprintf("T%02d%d", p, t)
    b <- rnorm(1, 0, 0.4)
    for (post in 0:1) {
      m <- sizes_fun()
      c_tp <- rnorm(1, 0, 0.25)
      tr <- treated_pair[p]
      eta <- -0.3 + 0.2 * tr + 0.1 * post + 0.2 * tr * post + a[p] + b + c_tp
      rows[[length(rows) + 1]] <- data.frame(
        pair_id = sprintf("P%02d", p), trust_id = trust, treated = tr, post = post,
        trust_period = paste0(trust, ":", post), y = rbinom(m, 1, plogis(eta)))
    }
  }
  d <- do.call(rbind, rows)
  d$cell <- factor(paste0(d$treated, d$post))
  d
}

unb <- make_data(function() sample(30:120, 1), 20261203)
bal <- make_data(function() 50L, 20261204)
write.csv(unb[, c("pair_id", "trust_id", "treated", "post", "y")], file.path(ref_dir, "data", "icc_unbalanced.csv"),
          row.names = FALSE)
write.csv(bal[, c("pair_id", "trust_id", "treated", "post", "y")], file.path(ref_dir, "data", "icc_balanced.csv"),
          row.names = FALSE)
unb <- read.csv(file.path(ref_dir, "data", "icc_unbalanced.csv"))
bal <- read.csv(file.path(ref_dir, "data", "icc_balanced.csv"))
for (nm in c("unb", "bal")) {
  d <- get(nm)
  d$cell <- factor(paste0(d$treated, d$post))
  d$trust_period <- paste0(d$trust_id, ":", d$post)
  assign(nm, d)
}

vc <- function(fit) {
  v <- as.data.frame(VarCorr(fit))
  setNames(as.list(v$vcov), ifelse(v$grp == "Residual", "residual", v$grp))
}
ctrl <- lmerControl(check.conv.singular = "ignore")
reml <- list(
  trust = vc(lmer(y ~ cell + (1 | trust_id), data = bal, REML = TRUE, control = ctrl)),
  pair = vc(lmer(y ~ cell + (1 | pair_id), data = bal, REML = TRUE, control = ctrl)),
  nested = vc(lmer(y ~ cell + (1 | trust_id) + (1 | trust_period), data = bal, REML = TRUE, control = ctrl))
)

oneway <- function(y, g) {
  a <- summary(aov(y ~ factor(g)))[[1]]
  msb <- a[1, "Mean Sq"]; msw <- a[2, "Mean Sq"]
  ng <- table(g); N <- length(y); k <- length(ng)
  n0 <- (N - sum(ng^2) / N) / (k - 1)
  list(icc = (msb - msw) / (msb + (n0 - 1) * msw), msb = msb, msw = msw, n0 = n0,
       sigma2_between = (msb - msw) / n0, sigma2_within = msw)
}
aov_ref <- list(trust = oneway(unb$y, unb$trust_id), pair = oneway(unb$y, unb$pair_id))

latent <- list()
for (g in c("trust_id", "pair_id", "trust_period")) {
  f <- glmer(as.formula(paste0("y ~ treated * post + (1 | ", g, ")")), data = unb, family = binomial, nAGQ = 25)
  s2 <- as.data.frame(VarCorr(f))$vcov[1]
  latent[[g]] <- list(sd = sqrt(s2), icc = s2 / (s2 + pi^2 / 3), loglik = as.numeric(logLik(f)))
}

out <- list(
  provenance = list(script = "tests/reference/icc.R", R = R.version.string,
                    lme4 = as.character(packageVersion("lme4"))),
  balanced_reml = reml, unbalanced_oneway_aov = aov_ref, unbalanced_glmer_nagq25 = latent)
write_json(out, file.path(ref_dir, "icc_reference.json"), auto_unbox = TRUE, digits = NA, pretty = TRUE)
cat("wrote", file.path(ref_dir, "icc_reference.json"), "\n")
