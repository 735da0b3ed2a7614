"""Restricted wild cluster bootstrap-t core (rp2pr_eval.inference.wild).

The reference throughout is a deliberately simple implementation: impose the
null, multiply the restricted residuals by each draw's cluster weights, refit
WLS with ``numpy.linalg.lstsq`` and compute the CR1 t statistic with an explicit
loop over clusters (the algorithm of Cameron, Gelbach & Miller 2008, as in
Stata ``boottest`` / R ``fwildclusterboot``).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm

from rp2pr_eval.errors import DataError
from rp2pr_eval.models.wild import bootstrap_weights, wild_cluster_bootstrap_linear

N_PAIRS = 40
N_TREATED = 15


def trust_period_panel(seed: int, *, effect: float = 0.0, n_pairs: int = N_PAIRS, n_treated: int = N_TREATED):
    """ILCOP-shaped trust × period rates: 2 trusts per pair, pre/post, whole pairs treated."""
    rng = np.random.default_rng(seed)
    pair = np.repeat(np.arange(n_pairs), 4)                  # rows: pair, trust (2), period (2)
    trust = np.repeat(np.arange(2 * n_pairs), 2)
    post = np.tile([0.0, 1.0], 2 * n_pairs)
    arm = np.zeros(n_pairs)
    arm[rng.choice(n_pairs, n_treated, replace=False)] = 1.0
    treated = arm[pair]
    denom = np.clip(np.round(rng.lognormal(np.log(210), 0.5, 2 * n_pairs)), 60, 750)[trust]
    pair_eff = rng.normal(0, 0.04, n_pairs)[pair]
    trust_eff = rng.standard_t(4, 2 * n_pairs)[trust] * 0.05
    p = np.clip(0.58 + pair_eff + trust_eff + 0.02 * post + effect * treated * post, 0.05, 0.95)
    rate = rng.binomial(denom.astype(int), p) / denom
    X = np.column_stack([np.ones_like(post), treated, post, treated * post])
    return X, rate, pair, denom


def loop_wcr(X, y, *, coef_index, cluster, weights, h0, V):
    """Per-draw refit reference: returns (estimate, CR1 se, t, t_draws)."""
    codes = np.unique(cluster, return_inverse=True)[1]
    G = codes.max() + 1
    n, k = X.shape
    sw = np.sqrt(weights)
    Xw = X * sw[:, None]

    def fit(yy):
        beta = np.linalg.lstsq(Xw, yy * sw, rcond=None)[0]
        resid = (yy - X @ beta) * sw
        bread = np.linalg.inv(Xw.T @ Xw)
        meat = np.zeros((k, k))
        for g in range(G):
            s = Xw[codes == g].T @ resid[codes == g]
            meat += np.outer(s, s)
        V_ = G / (G - 1) * (n - 1) / (n - k) * bread @ meat @ bread
        return beta[coef_index], math.sqrt(V_[coef_index, coef_index])

    est, se = fit(y)
    Xr = np.delete(X, coef_index, axis=1)
    beta_r = np.linalg.lstsq(Xr * sw[:, None], (y - h0 * X[:, coef_index]) * sw, rcond=None)[0]
    fitted_r = Xr @ beta_r + h0 * X[:, coef_index]
    resid_r = y - fitted_r
    t_draws = []
    for v in V:
        b, s = fit(fitted_r + v[codes] * resid_r)
        t_draws.append((b - h0) / s)
    return est, se, (est - h0) / se, np.array(t_draws)


# --------------------------------------------------------------------------- weights
@pytest.mark.fixture
def test_bootstrap_weight_distributions():
    V = bootstrap_weights(7, 5, "rademacher", rng=1)
    assert V.shape == (5, 7) and V.dtype == np.float64
    assert set(np.unique(V)) <= {-1.0, 1.0}
    W = bootstrap_weights(40, 20_000, "webb", rng=2)
    expected = np.sqrt([0.5, 1.0, 1.5])
    np.testing.assert_allclose(np.unique(W), np.concatenate([-expected[::-1], expected]))
    # six equally likely values: each share within 5 SE of 1/6
    shares = np.unique(W, return_counts=True)[1] / W.size
    assert np.all(np.abs(shares - 1 / 6) < 5 * math.sqrt(1 / 6 * 5 / 6 / W.size))
    M = bootstrap_weights(40, 20_000, "mammen", rng=3)
    vals = np.unique(M)
    np.testing.assert_allclose(vals, [-(math.sqrt(5) - 1) / 2, (math.sqrt(5) + 1) / 2])
    # mean 0, variance 1, third moment 1 (to Monte Carlo accuracy)
    assert abs(M.mean()) < 0.01 and abs(M.var() - 1) < 0.01 and abs((M**3).mean() - 1) < 0.03
    # the seed fixes the draws; the global numpy state is not used
    np.testing.assert_array_equal(bootstrap_weights(3, 4, rng=9), bootstrap_weights(3, 4, rng=np.random.default_rng(9)))
    with pytest.raises(ValueError, match="rademacher"):
        bootstrap_weights(3, 4, "normal", rng=1)


# --------------------------------------------------------------------------- equivalence
@pytest.mark.equivalence
@pytest.mark.parametrize("kind", ["rademacher", "webb", "mammen"])
@pytest.mark.parametrize("weighted", [True, False])
def test_draw_for_draw_equals_refit_loop(kind, weighted):
    X, y, pair, denom = trust_period_panel(1, effect=0.03)
    w = denom if weighted else np.ones_like(y)
    V = bootstrap_weights(N_PAIRS, 199, kind, rng=4)
    h0 = 0.01
    res = wild_cluster_bootstrap_linear(
        X, y, coef_index=3, cluster=pair, weights=denom if weighted else None, h0=h0,
        weight_matrix=V, boot_weights=kind, ci=False,
    )
    est, se, t, t_draws = loop_wcr(X, y, coef_index=3, cluster=pair, weights=w, h0=h0, V=V)
    assert res.estimate == pytest.approx(est, rel=1e-10)
    assert res.se == pytest.approx(se, rel=1e-10)
    assert res.t_stat == pytest.approx(t, rel=1e-10)
    np.testing.assert_allclose(res.t_draws, t_draws, rtol=1e-9, atol=1e-12)
    tie = 1e-9 * abs(t)                                      # near-ties count as extreme
    assert res.p_value == pytest.approx(np.mean(np.abs(t_draws) >= abs(t) - tie))
    eq = 2 * min(np.mean(t_draws <= t + tie), np.mean(t_draws >= t - tie))
    assert res.p_value_equal_tail == pytest.approx(min(1.0, eq))
    assert res.n_boot == 199 and res.n_clusters == N_PAIRS and res.boot_weights == kind
    assert math.isnan(res.ci_low) and math.isnan(res.ci_high)


@pytest.mark.equivalence
def test_other_coefficient_and_uneven_clusters():
    """Any column, clusters of unequal size and unsorted labels (strings)."""
    X, y, pair, denom = trust_period_panel(2)
    keep = np.ones(len(y), dtype=bool)
    keep[[3, 10, 11, 50]] = False                           # unbalanced panel
    labels = np.array([f"P{p:02d}" for p in pair])[keep]
    perm = np.random.default_rng(0).permutation(keep.sum())
    Xk, yk, lk, wk = X[keep][perm], y[keep][perm], labels[perm], denom[keep][perm]
    V = bootstrap_weights(N_PAIRS, 99, rng=5)
    res = wild_cluster_bootstrap_linear(Xk, yk, coef_index=2, cluster=lk, weights=wk, h0=0.02,
                                        weight_matrix=V, ci=False)
    _, _, t, t_draws = loop_wcr(Xk, yk, coef_index=2, cluster=lk, weights=wk, h0=0.02, V=V)
    assert res.t_stat == pytest.approx(t, rel=1e-10)
    np.testing.assert_allclose(res.t_draws, t_draws, rtol=1e-9, atol=1e-12)


@pytest.mark.equivalence
def test_estimate_and_cr1_se_equal_statsmodels():
    X, y, pair, denom = trust_period_panel(3, effect=0.02)
    res = wild_cluster_bootstrap_linear(X, y, coef_index=3, cluster=pair, weights=denom, n_boot=99, seed=1, ci=False)
    sm_fit = sm.WLS(y, X, weights=denom).fit(cov_type="cluster", cov_kwds={"groups": pair})
    assert res.estimate == pytest.approx(sm_fit.params[3], rel=1e-10)
    assert res.se == pytest.approx(sm_fit.bse[3], rel=1e-10)   # G/(G-1)·(N-1)/(N-K), as statsmodels


@pytest.mark.fixture
def test_seed_and_weight_matrix_paths_agree():
    X, y, pair, denom = trust_period_panel(4)
    a = wild_cluster_bootstrap_linear(X, y, coef_index=3, cluster=pair, weights=denom, n_boot=499, seed=7,
                                      boot_weights="webb")
    V = bootstrap_weights(N_PAIRS, 499, "webb", rng=np.random.default_rng(7))
    b = wild_cluster_bootstrap_linear(X, y, coef_index=3, cluster=pair, weights=denom, weight_matrix=V,
                                      boot_weights="webb")
    np.testing.assert_array_equal(a.t_draws, b.t_draws)
    assert a == b                                            # t_draws is excluded from equality
    assert not a.t_draws.flags.writeable


@pytest.mark.fixture
def test_small_sample_factor_changes_se_only():
    X, y, pair, denom = trust_period_panel(5, effect=0.03)
    V = bootstrap_weights(N_PAIRS, 299, rng=6)
    on = wild_cluster_bootstrap_linear(X, y, coef_index=3, cluster=pair, weights=denom, weight_matrix=V)
    off = wild_cluster_bootstrap_linear(X, y, coef_index=3, cluster=pair, weights=denom, weight_matrix=V,
                                        small_sample=False)
    n, k, G = X.shape[0], X.shape[1], N_PAIRS
    assert on.se / off.se == pytest.approx(math.sqrt(G / (G - 1) * (n - 1) / (n - k)))
    assert on.p_value == off.p_value and on.p_value_equal_tail == off.p_value_equal_tail
    assert on.ci_low == pytest.approx(off.ci_low, abs=1e-10) and on.ci_high == pytest.approx(off.ci_high, abs=1e-10)


# --------------------------------------------------------------------------- confidence interval
@pytest.mark.fixture
@pytest.mark.parametrize("level", [0.95, 0.90])
def test_ci_bounds_are_where_p_crosses_one_minus_level(level):
    X, y, pair, denom = trust_period_panel(6, effect=0.04)
    B = 999
    V = bootstrap_weights(N_PAIRS, B, rng=8)
    res = wild_cluster_bootstrap_linear(X, y, coef_index=3, cluster=pair, weights=denom, weight_matrix=V, level=level)
    alpha = 1 - level
    assert res.ci_low < res.estimate < res.ci_high

    def p_at(h):
        return wild_cluster_bootstrap_linear(X, y, coef_index=3, cluster=pair, weights=denom, weight_matrix=V,
                                             h0=h, ci=False).p_value

    eps = 1e-6 * res.se
    for bound, inside in ((res.ci_low, res.ci_low + eps), (res.ci_high, res.ci_high - eps)):
        outside = 2 * bound - inside
        assert p_at(inside) >= alpha > p_at(outside)
        assert abs(p_at(bound) - alpha) <= 1.0 / B + 1e-12
    # the same set by brute force on a grid: {h : p(h) ≥ alpha}
    grid = np.linspace(res.ci_low - 0.5 * res.se, res.ci_high + 0.5 * res.se, 41)
    accepted = np.array([p_at(h) >= alpha for h in grid])
    np.testing.assert_array_equal(accepted, (grid >= res.ci_low) & (grid <= res.ci_high))


@pytest.mark.fixture
@pytest.mark.parametrize("kind", ["rademacher", "webb"])
def test_ci_with_few_clusters(kind):
    """8 clusters: Rademacher has only 2**8 = 256 weight vectors, so draws repeat
    (including the all-ones draw, whose t* equals t for every null value) and p(h)
    jumps in large steps; the bounds must still sit exactly at a crossing of 0.05."""
    X, y, pair, denom = trust_period_panel(3, n_pairs=8, n_treated=3, effect=0.03)
    V = bootstrap_weights(8, 999, kind, rng=1)
    res = wild_cluster_bootstrap_linear(X, y, coef_index=3, cluster=pair, weights=denom, weight_matrix=V,
                                        boot_weights=kind)
    assert np.isfinite([res.ci_low, res.ci_high]).all()

    def p_at(h):
        return wild_cluster_bootstrap_linear(X, y, coef_index=3, cluster=pair, weights=denom, weight_matrix=V,
                                             h0=h, ci=False).p_value

    eps = 1e-6 * res.se
    assert p_at(res.ci_low + eps) >= 0.05 > p_at(res.ci_low - eps)
    assert p_at(res.ci_high - eps) >= 0.05 > p_at(res.ci_high + eps)


@pytest.mark.fixture
def test_ci_wider_than_or_close_to_cr1_interval():
    """With 40 balanced clusters the WCR interval is close to the CR1 t(G-1) interval."""
    from scipy import stats

    X, y, pair, denom = trust_period_panel(7, effect=0.03)
    res = wild_cluster_bootstrap_linear(X, y, coef_index=3, cluster=pair, weights=denom, n_boot=1999, seed=3)
    half = stats.t.ppf(0.975, N_PAIRS - 1) * res.se
    assert res.ci_high - res.ci_low == pytest.approx(2 * half, rel=0.25)


# --------------------------------------------------------------------------- input checks
@pytest.mark.fixture
def test_bad_input_raises():
    X, y, pair, denom = trust_period_panel(8)
    y_nan = y.copy()
    y_nan[5] = np.nan
    with pytest.raises(DataError, match="y has missing"):
        wild_cluster_bootstrap_linear(X, y_nan, coef_index=3, cluster=pair, n_boot=9)
    w_bad = denom.copy()
    w_bad[2] = 0
    with pytest.raises(DataError, match="weights must be positive"):
        wild_cluster_bootstrap_linear(X, y, coef_index=3, cluster=pair, weights=w_bad, n_boot=9)
    with pytest.raises(DataError, match="at least 2 clusters"):
        wild_cluster_bootstrap_linear(X, y, coef_index=3, cluster=np.zeros_like(pair), n_boot=9)
    with pytest.raises(DataError, match="rank deficient"):
        wild_cluster_bootstrap_linear(np.column_stack([X, X[:, 1]]), y, coef_index=3, cluster=pair, n_boot=9)
    with pytest.raises(DataError, match="cluster has"):
        wild_cluster_bootstrap_linear(X, y, coef_index=3, cluster=np.where(pair == 3, np.nan, pair), n_boot=9)
    with pytest.raises(ValueError, match="boot_weights"):
        wild_cluster_bootstrap_linear(X, y, coef_index=3, cluster=pair, boot_weights="gaussian", n_boot=9)
    with pytest.raises(ValueError, match="weight_matrix must have shape"):
        wild_cluster_bootstrap_linear(X, y, coef_index=3, cluster=pair, weight_matrix=np.ones((9, 3)))
    with pytest.raises(ValueError, match="coef_index"):
        wild_cluster_bootstrap_linear(X, y, coef_index=4, cluster=pair, n_boot=9)


# --------------------------------------------------------------------------- size
@pytest.mark.simulation
def test_size_under_the_null_and_ci_consistency():
    """300 seeded datasets under no effect, 399 Rademacher draws each.

    Rejection at 5% must lie within the binomial 99.9% range of 0.05 for 300
    replicates, and the confidence interval must exclude 0 exactly when p < 0.05.
    """
    reps, B = 300, 399
    rejections = 0
    for rep in range(reps):
        X, y, pair, denom = trust_period_panel(1000 + rep)
        res = wild_cluster_bootstrap_linear(X, y, coef_index=3, cluster=pair, weights=denom, n_boot=B, seed=rep)
        rejections += res.p_value < 0.05
        assert (res.ci_low <= 0.0 <= res.ci_high) == (res.p_value >= 0.05)
    rate = rejections / reps
    half = 3.3 * math.sqrt(0.05 * 0.95 / reps)
    assert 0.05 - half < rate < 0.05 + half, rate


# --------------------------------------------------------------------------- unrestricted (WCU)
def loop_wcu(X, y, *, coef_index, cluster, weights, V):
    """Per-draw refit reference for the unrestricted bootstrap: y* = Xβ̂ + v·û, t* = (β* − β̂)/se*."""
    codes = np.unique(cluster, return_inverse=True)[1]
    G = codes.max() + 1
    n, k = X.shape
    sw = np.sqrt(weights)
    Xw = X * sw[:, None]
    bread = np.linalg.inv(Xw.T @ Xw)

    def fit(yy):
        beta = np.linalg.lstsq(Xw, yy * sw, rcond=None)[0]
        resid = (yy - X @ beta) * sw
        meat = sum(np.outer(Xw[codes == g].T @ resid[codes == g], Xw[codes == g].T @ resid[codes == g])
                   for g in range(G))
        V_ = G / (G - 1) * (n - 1) / (n - k) * bread @ meat @ bread
        return beta, math.sqrt(V_[coef_index, coef_index])

    beta, se = fit(y)
    fitted, resid = X @ beta, y - X @ beta
    t_draws = []
    for v in V:
        b, s = fit(fitted + v[codes] * resid)
        t_draws.append((b[coef_index] - beta[coef_index]) / s)
    return beta[coef_index], se, np.array(t_draws)


@pytest.mark.equivalence
@pytest.mark.parametrize("kind", ["rademacher", "webb"])
def test_unrestricted_draw_for_draw_equals_refit_loop(kind):
    X, y, pair, denom = trust_period_panel(5, effect=0.03)
    V = bootstrap_weights(N_PAIRS, 199, kind, rng=6)
    h0 = 0.01
    res = wild_cluster_bootstrap_linear(X, y, coef_index=3, cluster=pair, weights=denom, h0=h0, weight_matrix=V,
                                        boot_weights=kind, null=False, level=0.9)
    est, se, t_draws = loop_wcu(X, y, coef_index=3, cluster=pair, weights=denom, V=V)
    assert res.estimate == pytest.approx(est, rel=1e-10) and res.se == pytest.approx(se, rel=1e-10)
    np.testing.assert_allclose(res.t_draws, t_draws, rtol=1e-9, atol=1e-12)
    t = (est - h0) / se
    assert res.t_stat == pytest.approx(t, rel=1e-10)
    assert res.p_value == pytest.approx(np.mean(np.abs(t_draws) >= abs(t) - 1e-9 * abs(t)))
    # symmetric percentile-t interval: the 20th largest |t*| of 199 (k = ceil(0.1 × 199))
    q = np.sort(np.abs(t_draws))[::-1][19]
    assert res.ci_low == pytest.approx(est - q * se, rel=1e-9) and res.ci_high == pytest.approx(est + q * se, rel=1e-9)
    # the restricted bootstrap on the same data and weights differs
    wcr = wild_cluster_bootstrap_linear(X, y, coef_index=3, cluster=pair, weights=denom, h0=h0, weight_matrix=V)
    assert not np.allclose(wcr.t_draws, res.t_draws)


@pytest.mark.simulation
def test_unrestricted_size_under_the_null():
    """WCU at the ILCOP design: 200 seeded null datasets × 399 draws reject at 5 % within Monte Carlo error."""
    reps, rejections = 200, 0
    for rep in range(reps):
        X, y, pair, denom = trust_period_panel(5000 + rep)
        res = wild_cluster_bootstrap_linear(X, y, coef_index=3, cluster=pair, weights=denom, n_boot=399, seed=rep,
                                            null=False)
        rejections += res.p_value < 0.05
        assert (res.ci_low <= 0.0 <= res.ci_high) == (res.p_value >= 0.05)
    rate = rejections / reps
    assert abs(rate - 0.05) < 3.3 * math.sqrt(0.05 * 0.95 / reps), rate
