# Reference values for tests/test_gee_block.py (block exchangeable GEE and the KC / FG / MD sandwiches).
#
# Run from the repository root:   Rscript tests/reference/gee_block.R
# Writes tests/reference/data/gee_block_data.csv and tests/reference/gee_block_reference.json.
# R is never needed at test time: both outputs are committed.
#
# 1. Data: 24 clusters ("pairs") x 2 trusts x 2 periods = 4 blocks per cluster, 10-25 rows per block,
#    cluster-level treatment (10 of 24), period indicator, their product and a patient covariate;
#    logit with cluster (SD 0.3) and block (SD 0.4) random intercepts, so that the within-block
#    correlation exceeds the between-block one.
# 2. geepack::geeglm(corstr = "userdefined", zcor = Z): Z has one row per pair of rows j < k within a
#    cluster (in combn order) and two indicator columns, same block / different block.  geepack
#    estimates each alpha as the mean product of Pearson residuals over its pairs divided by
#    phi = sum e^2 / N: the block exchangeable moment estimator.  std.err = "san.se" (Liang-Zeger).
# 3. At geepack's estimates, by dense hand formulas per cluster (V_i = phi A^1/2 R_i A^1/2,
#    H_ii = D_i C D_i' V_i^-1, C = (sum D_i' V_i^-1 D_i)^-1):
#      Mancl-DeRouen      C sum D'V^-1 (I-H)^-1 r r' (I-H)^-T V^-1 D C
#      Kauermann-Carroll  C sum D'V^-1 (I-H)^-1/2 r r' (I-H)^-T/2 V^-1 D C   (geesmv::GEE.var.kc)
#      Fay-Graubard       C sum F_i D'V^-1 r r' V^-1 D F_i C, F_i = diag((1 - min(0.75, diag(D'V^-1 D C)))^-1/2)
#                         (geesmv::GEE.var.fg; geesmv is not installable here, these are its formulas).
#    (I-H)^-1/2 is computed from the eigen-decomposition of I-H (diagonalisable, real positive eigenvalues).

suppressPackageStartupMessages({
  library(geepack)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = FALSE)
script <- sub("^--file=", "", args[grep("^--file=", args)])
ref_dir <- if (length(script)) dirname(normalizePath(script)) else "tests/reference"
data_path <- file.path(ref_dir, "data", "gee_block_data.csv")
json_path <- file.path(ref_dir, "gee_block_reference.json")

set.seed(20261203)
G <- 24
treat_c <- sample(rep(0:1, c(14, 10)))
rows <- list()
for (g in seq_len(G)) {
  a <- rnorm(1, 0, 0.3)
  for (t in 1:2) for (post in 0:1) {
    m <- sample(10:25, 1)
    b <- rnorm(1, 0, 0.4)
    x <- rnorm(m)
    eta <- -0.2 + 0.3 * treat_c[g] + 0.2 * post + 0.3 * treat_c[g] * post + 0.5 * x + a + b
    rows[[length(rows) + 1]] <- data.frame(cluster = g, block = (t - 1) * 2 + post + 1, treat = treat_c[g],
                                           post = post, x = round(x, 4), y = rbinom(m, 1, plogis(eta)))
  }
}
d <- do.call(rbind, rows)
d <- d[order(d$cluster, d$block), ]
write.csv(d, data_path, row.names = FALSE)
d <- read.csv(data_path)
d$treat_post <- d$treat * d$post
form <- y ~ treat + post + treat_post + x

zrows <- list()
for (g in unique(d$cluster)) {
  bl <- d$block[d$cluster == g]
  pr <- combn(length(bl), 2)
  same <- as.integer(bl[pr[1, ]] == bl[pr[2, ]])
  zrows[[length(zrows) + 1]] <- cbind(same, 1L - same)
}
Z <- do.call(rbind, zrows)

fit <- geeglm(form, id = cluster, data = d, family = binomial, corstr = "userdefined", zcor = Z,
              std.err = "san.se", control = geese.control(epsilon = 1e-12, maxit = 200))
alpha <- unname(fit$geese$alpha)
phi <- unname(fit$geese$gamma)
beta <- unname(coef(fit))
X <- model.matrix(form, d)
p <- ncol(X)
mu <- as.vector(plogis(X %*% beta))
parts <- list()
Bsum <- matrix(0, p, p)
for (g in unique(d$cluster)) {
  ix <- which(d$cluster == g)
  bl <- d$block[ix]
  R <- outer(bl, bl, function(u, v) ifelse(u == v, alpha[1], alpha[2])); diag(R) <- 1
  A <- mu[ix] * (1 - mu[ix])
  D <- A * X[ix, , drop = FALSE]
  V <- phi * (sqrt(A) %o% sqrt(A)) * R
  Vinv <- solve(V)
  Bi <- t(D) %*% Vinv %*% D
  Bsum <- Bsum + Bi
  parts[[length(parts) + 1]] <- list(D = D, Vinv = Vinv, r = d$y[ix] - mu[ix], B = Bi)
}
C <- solve(Bsum)
mpow <- function(M, pw) { e <- eigen(M); Re(e$vectors %*% diag(e$values^pw) %*% solve(e$vectors)) }
meat <- list(robust = 0, md = 0, kc = 0, fg = 0)
for (pt in parts) {
  n <- nrow(pt$D)
  H <- pt$D %*% C %*% t(pt$D) %*% pt$Vinv
  W <- t(pt$D) %*% pt$Vinv
  s <- W %*% pt$r
  u_md <- W %*% solve(diag(n) - H, pt$r)
  u_kc <- W %*% mpow(diag(n) - H, -0.5) %*% pt$r
  Fi <- diag(as.vector((1 - pmin(0.75, diag(pt$B %*% C)))^(-0.5)))
  u_fg <- Fi %*% s
  meat$robust <- meat$robust + s %*% t(s)
  meat$md <- meat$md + u_md %*% t(u_md)
  meat$kc <- meat$kc + u_kc %*% t(u_kc)
  meat$fg <- meat$fg + u_fg %*% t(u_fg)
}
vc <- lapply(meat, function(M) unname(C %*% M %*% C))

ref <- list(
  provenance = list(script = "tests/reference/gee_block.R", r_version = R.version.string,
                    geepack_version = as.character(packageVersion("geepack")),
                    data = "tests/reference/data/gee_block_data.csv", seed = 20261203L),
  call = "geeglm(y ~ treat + post + treat_post + x, id = cluster, family = binomial, corstr = 'userdefined', zcor = Z, std.err = 'san.se')",
  names = colnames(X), coef = beta, alpha_within = alpha[1], alpha_between = alpha[2], scale = phi,
  vcov_robust_geepack = unname(fit$geese$vbeta),
  vcov_robust_hand = vc$robust, vcov_mancl_derouen_hand = vc$md,
  vcov_kauermann_carroll_hand = vc$kc, vcov_fay_graubard_hand = vc$fg,
  n_obs = nrow(d), n_clusters = G)
writeLines(toJSON(ref, auto_unbox = TRUE, digits = NA, pretty = TRUE, matrix = "rowmajor"), json_path)
cat("wrote", data_path, "and", json_path, "\n")
