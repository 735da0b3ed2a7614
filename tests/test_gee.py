"""Tests for rp2pr_eval.gee_core.fit_gee_logit (logistic GEE, robust and Mancl–DeRouen).

Reference values come from ``tests/reference/gee.R`` (R 4.2.2, geepack 1.3.9):

    geeglm(y ~ treat + post + treat_post + age + female + stage2 + stage3,
           id = cluster, data = d, family = binomial, corstr = "exchangeable",
           std.err = "san.se", control = geese.control(epsilon = 1e-12, maxit = 200))

and ``corstr = "independence"``, on ``tests/reference/data/gee_data.csv`` (3,000
rows, 30 clusters of 49–168). The Mancl–DeRouen reference is a dense hand
formula evaluated in R at geepack's estimates. R is not needed to run these tests.

Convention: geepack estimates the exchangeable correlation with no degrees-of-
freedom corrections (phi = sum e^2 / N, rho divided by the number of pairs);
statsmodels' default subtracts p from both, so statsmodels is called with
``ddof_scale=0`` below, and fit_gee_logit does the same.

fit_gee_logit uses its own Fisher scoring; statsmodels is the cross-check. The
large-cluster tests use ``rp.simulate_nlca(seed=3, n_pairs=20, n_treated_pairs=8)``
(44,625 patients, pair clusters of 1,144-4,731), where, as on the bundled audit,
the exchangeable GEE has no solution (rho runs away; see the gee_core module
docstring): they check agreement at fixed rho, on a subsample, and the early
DataError.
"""
from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import special, stats
from statsmodels.genmod.cov_struct import Exchangeable, Independence

from rp2pr_eval.errors import DataError
from rp2pr_eval.models.gee import GeeConvergenceWarning, GeeFit, fit_gee_logit

REF_DIR = Path(__file__).parent / "reference"
COVARIATES = ["treat", "post", "treat_post", "age", "female", "stage2", "stage3"]
NAMES = ["(Intercept)", *COVARIATES]
COV_STRUCTS = ["exchangeable", "independence"]


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ref():
    return json.loads((REF_DIR / "gee_reference.json").read_text())


@pytest.fixture(scope="module")
def data():
    d = pd.read_csv(REF_DIR / "data" / "gee_data.csv")
    X = np.column_stack([np.ones(len(d)), d[COVARIATES].to_numpy(float)])
    return X, d["y"].to_numpy(float), d["cluster"].to_numpy(), d


@pytest.fixture(scope="module")
def fits(data):
    X, y, g, _ = data
    return {cs: fit_gee_logit(X, y, g, cov_struct=cs, names=NAMES) for cs in COV_STRUCTS}


@pytest.fixture(scope="module")
def sm_fits(data):
    """statsmodels' own GEE with its dense bias-reduced covariance (ddof_scale=0)."""
    X, y, g, _ = data
    out = {}
    for cs, struct in [("exchangeable", Exchangeable), ("independence", Independence)]:
        model = sm.GEE(y, X, groups=g, family=sm.families.Binomial(), cov_struct=struct())
        out[cs] = model.fit(ctol=1e-10, maxiter=200, ddof_scale=0, cov_type="bias_reduced")
    return out


def dense_sandwiches(X, y, groups, beta, rho):
    """Deliberately naive Mancl–DeRouen / Liang–Zeger with n_i x n_i matrices."""
    mu = special.expit(X @ beta)
    blocks = [np.flatnonzero(groups == k) for k in np.unique(groups)]
    parts, bread = [], 0.0
    for ix in blocks:
        n = len(ix)
        a = mu[ix] * (1 - mu[ix])
        D = a[:, None] * X[ix]
        R = np.full((n, n), rho)
        np.fill_diagonal(R, 1.0)
        V = np.sqrt(a)[:, None] * R * np.sqrt(a)[None, :]
        Vinv = np.linalg.inv(V)
        bread = bread + D.T @ Vinv @ D
        parts.append((D, Vinv, y[ix] - mu[ix]))
    C = np.linalg.inv(bread)
    meat_lz, meat_md = 0.0, 0.0
    for D, Vinv, r in parts:
        H = D @ C @ D.T @ Vinv
        s = D.T @ Vinv @ r
        u = D.T @ Vinv @ np.linalg.solve(np.eye(len(r)) - H, r)
        meat_lz = meat_lz + np.outer(s, s)
        meat_md = meat_md + np.outer(u, u)
    return C @ meat_lz @ C, C @ meat_md @ C


# ---------------------------------------------------------------------------
# Reference values (geepack)
# ---------------------------------------------------------------------------


@pytest.mark.reference
def test_reference_data_matches_provenance(ref):
    digest = hashlib.md5((REF_DIR / "data" / "gee_data.csv").read_bytes()).hexdigest()
    assert digest == ref["provenance"]["data_md5"]
    assert ref["provenance"]["geepack_version"] == "1.3.9"
    assert ref["n_obs"] == 3000 and ref["n_clusters"] == 30


@pytest.mark.reference
@pytest.mark.parametrize("cs", COV_STRUCTS)
def test_coefficients_match_geepack(fits, ref, cs):
    fit, r = fits[cs], ref[cs]
    assert list(fit.names) == r["names"]
    # Brief: within 1e-4 absolute; measured 5e-12 exchangeable, 2e-15 independence
    # (geepack run with epsilon=1e-12; own Fisher scoring, tol=1e-8 on the Newton decrement).
    np.testing.assert_allclose(fit.coef, r["coef"], rtol=0, atol=1e-7)
    # geepack's default epsilon=1e-4 stops earlier, still well inside 1e-4.
    np.testing.assert_allclose(fit.coef, r["coef_default_epsilon"], rtol=0, atol=1e-5)
    assert fit.converged
    assert fit.n_obs == 3000 and fit.n_clusters == 30 and fit.df == 22


@pytest.mark.reference
@pytest.mark.parametrize("cs", COV_STRUCTS)
def test_robust_se_match_geepack(fits, ref, cs):
    fit, r = fits[cs], ref[cs]
    # Brief: within 1e-3 relative; measured 1.1e-12 (SEs), 1.3e-10 (covariance elements).
    np.testing.assert_allclose(np.sqrt(np.diag(fit.vcov_robust)), r["se_robust"], rtol=1e-7)
    np.testing.assert_allclose(fit.vcov_robust, np.array(r["vcov_robust"]), rtol=1e-7, atol=1e-14)


@pytest.mark.reference
def test_working_correlation_matches_geepack(fits, ref):
    assert fits["exchangeable"].working_corr == pytest.approx(
        ref["exchangeable"]["working_corr"], abs=1e-8
    )
    assert ref["exchangeable"]["working_corr"] == pytest.approx(0.044295, abs=1e-6)
    assert fits["independence"].working_corr == 0.0


@pytest.mark.reference
@pytest.mark.parametrize("cs", COV_STRUCTS)
def test_mancl_derouen_matches_r_hand_formula(fits, ref, cs):
    fit, r = fits[cs], ref[cs]
    # Measured: 1.1e-10 relative (elements), 1.2e-12 (SEs).
    np.testing.assert_allclose(
        fit.vcov_mancl_derouen, np.array(r["vcov_mancl_derouen_hand"]), rtol=1e-7, atol=1e-14
    )
    np.testing.assert_allclose(fit.se, r["se_mancl_derouen_hand"], rtol=1e-7)
    # The correction inflates every SE here (by 4-11%).
    ratio = fit.se / np.sqrt(np.diag(fit.vcov_robust))
    assert np.all(ratio > 1.0) and np.all(ratio < 1.2)


# ---------------------------------------------------------------------------
# Equivalence with statsmodels and with a dense implementation
# ---------------------------------------------------------------------------


@pytest.mark.equivalence
@pytest.mark.parametrize("cs", COV_STRUCTS)
def test_matches_statsmodels_robust_and_bias_reduced(fits, sm_fits, cs):
    fit, res = fits[cs], sm_fits[cs]
    np.testing.assert_allclose(fit.coef, res.params, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fit.vcov_robust, res.cov_robust, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(fit.vcov_mancl_derouen, res.cov_robust_bc, rtol=1e-8, atol=1e-14)
    if cs == "exchangeable":
        assert fit.working_corr == pytest.approx(res.cov_struct.dep_params, abs=1e-10)


@pytest.mark.equivalence
def test_statsmodels_default_ddof_gives_a_different_rho(data, fits):
    """Why ddof_scale=0: statsmodels' default rho differs from geepack's by 1.2e-4."""
    X, y, g, _ = data
    model = sm.GEE(y, X, groups=g, family=sm.families.Binomial(), cov_struct=Exchangeable())
    rho_default = model.fit(ctol=1e-10).cov_struct.dep_params
    assert abs(rho_default - fits["exchangeable"].working_corr) > 5e-5


@pytest.mark.equivalence
@pytest.mark.parametrize("cs", COV_STRUCTS)
def test_matches_dense_naive_implementation(data, fits, cs):
    X, y, g, _ = data
    fit = fits[cs]
    lz, md = dense_sandwiches(X, y, g, fit.coef, fit.working_corr)
    np.testing.assert_allclose(fit.vcov_robust, lz, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(fit.vcov_mancl_derouen, md, rtol=1e-9, atol=1e-15)


# ---------------------------------------------------------------------------
# Hand-calculable fixtures
# ---------------------------------------------------------------------------


@pytest.mark.fixture
def test_intercept_only_independence_by_arithmetic():
    """Intercept only, independence: beta = logit(ybar), closed-form sandwiches.

    With p = ybar and a = p(1 - p): C = 1/(N a), s_i = sum_j (y_ij - p),
    B_i C = n_i / N, so V_LZ = sum s_i^2 / (N a)^2 and
    V_MD = sum {s_i / (1 - n_i/N)}^2 / (N a)^2.
    """
    sizes = [3, 5, 4, 8, 6]
    ones = [1, 3, 1, 6, 2]
    g = np.repeat(np.arange(5), sizes)
    y = np.concatenate([[1] * k + [0] * (n - k) for n, k in zip(sizes, ones)]).astype(float)
    N, p = 26, 13 / 26
    fit = fit_gee_logit(np.ones((N, 1)), y, g, cov_struct="independence")
    s = np.array(ones) - p * np.array(sizes)  # [-0.5, 0.5, -1, 2, -1]
    na = N * p * (1 - p)  # 6.5
    v_lz = np.sum(s**2) / na**2
    v_md = np.sum((s / (1 - np.array(sizes) / N)) ** 2) / na**2
    assert fit.coef[0] == pytest.approx(0.0, abs=1e-12)
    assert fit.vcov_robust[0, 0] == pytest.approx(v_lz, rel=1e-12)
    assert fit.vcov_robust[0, 0] == pytest.approx(6.5 / 42.25, rel=1e-12)
    assert fit.vcov_mancl_derouen[0, 0] == pytest.approx(v_md, rel=1e-12)
    assert fit.df == 4 and fit.n_clusters == 5 and fit.names == ("x0",)


@pytest.mark.fixture
def test_rho_is_the_geepack_moment_estimator(data, fits):
    X, y, g, _ = data
    fit = fits["exchangeable"]
    mu = special.expit(X @ fit.coef)
    e = (y - mu) / np.sqrt(mu * (1 - mu))
    phi = np.sum(e**2) / len(e)
    sums = pd.Series(e).groupby(g).agg(["sum", "count"])
    sq = pd.Series(e**2).groupby(g).sum()
    pairs = ((sums["sum"] ** 2 - sq) / 2).sum()
    n_pairs = (sums["count"] * (sums["count"] - 1) / 2).sum()
    assert fit.working_corr == pytest.approx(pairs / (phi * n_pairs), abs=1e-9)


@pytest.mark.fixture
def test_t_reference_and_coef_table(fits):
    fit = fits["exchangeable"]
    assert fit.vcov_type == "mancl_derouen" and fit.cov_struct == "exchangeable"
    np.testing.assert_allclose(fit.se, np.sqrt(np.diag(fit.vcov_mancl_derouen)))
    tab = fit.coef_table(level=0.95)
    q = stats.t.ppf(0.975, 22)
    row = tab.set_index("term").loc["treat_post"]
    j = NAMES.index("treat_post")
    assert row["ci_high"] - row["estimate"] == pytest.approx(q * fit.se[j])
    assert row["p_value"] == pytest.approx(2 * stats.t.sf(abs(fit.coef[j] / fit.se[j]), 22))
    assert fit.pvalues[j] == pytest.approx(row["p_value"])
    with pytest.raises(ValueError, match="level"):
        fit.coef_table(level=95)


@pytest.mark.fixture
def test_robust_option_selects_robust_vcov(data, fits):
    X, y, g, _ = data
    fit = fit_gee_logit(X, y, g, vcov="robust", names=NAMES)
    np.testing.assert_array_equal(fit.vcov, fit.vcov_robust)
    np.testing.assert_allclose(fit.vcov_mancl_derouen, fits["exchangeable"].vcov_mancl_derouen)
    assert fit.vcov_type == "robust"


@pytest.mark.fixture
def test_row_order_label_type_and_dataframe_input(data, fits):
    X, y, g, _ = data
    order = np.random.default_rng(7).permutation(len(y))
    frame = pd.DataFrame(X[order], columns=NAMES)
    fit = fit_gee_logit(frame, pd.Series(y[order]), pd.Series([f"c{k}" for k in g[order]]))
    ref = fits["exchangeable"]
    assert fit.names == tuple(NAMES)
    np.testing.assert_allclose(fit.coef, ref.coef, atol=1e-10)
    np.testing.assert_allclose(fit.vcov_mancl_derouen, ref.vcov_mancl_derouen, rtol=1e-8)


@pytest.mark.fixture
def test_result_is_frozen_and_read_only(fits):
    fit = fits["exchangeable"]
    assert isinstance(fit, GeeFit)
    with pytest.raises(AttributeError):
        fit.df = 3
    with pytest.raises(ValueError):
        fit.coef[0] = 1.0


# ---------------------------------------------------------------------------
# Input validation and failure modes
# ---------------------------------------------------------------------------


@pytest.mark.fixture
def test_missing_values_raise(data):
    X, y, g, _ = data
    Xn = X.copy()
    Xn[5, 4] = np.nan
    with pytest.raises(DataError, match=r"X: 1 missing.*'age'"):
        fit_gee_logit(Xn, y, g, names=NAMES)
    yn = y.copy()
    yn[[2, 9]] = np.nan
    with pytest.raises(DataError, match="y: 2 missing"):
        fit_gee_logit(X, yn, g)
    gn = g.astype(object)
    gn[3] = None
    with pytest.raises(DataError, match="groups: 1 missing"):
        fit_gee_logit(X, y, gn)


@pytest.mark.fixture
def test_outcome_not_binary_or_constant_raises(data):
    X, y, g, _ = data
    with pytest.raises(DataError, match="expected 0/1"):
        fit_gee_logit(X, y * 2, g)
    with pytest.raises(DataError, match="outcome is 0 for all 3000 rows"):
        fit_gee_logit(X, np.zeros_like(y), g)
    with pytest.raises(DataError, match="length 3000"):
        fit_gee_logit(X, y[:-1], g)


@pytest.mark.fixture
def test_outcome_constant_within_a_cell_raises(data):
    X, y, g, d = data
    cells = (d["treat"].astype(str) + "x" + d["post"].astype(str)).to_numpy()
    fit_gee_logit(X, y, g, cells=cells)  # every cell has 0s and 1s
    y2 = y.copy()
    y2[cells == "1x1"] = 1.0
    with pytest.raises(DataError, match=r"constant within 1 cell.*'1x1' \(all 1"):
        fit_gee_logit(X, y2, g, cells=cells)


@pytest.mark.fixture
def test_too_few_clusters_raises(data):
    X, y, g, _ = data
    with pytest.raises(DataError, match="8 clusters for 8 parameters"):
        fit_gee_logit(X, y, g % 8)


@pytest.mark.fixture
def test_collinear_columns_raise(data):
    X, y, g, _ = data
    Xc = np.column_stack([X, X[:, 1] + X[:, 2]])
    with pytest.raises(DataError, match="rank 8 < 9"):
        fit_gee_logit(Xc, y, g)


@pytest.mark.fixture
def test_invalid_options_raise(data):
    X, y, g, _ = data
    with pytest.raises(ValueError, match="cov_struct='ar1'.*'exchangeable'"):
        fit_gee_logit(X, y, g, cov_struct="ar1")
    with pytest.raises(ValueError, match="vcov='CR2'.*'mancl_derouen'"):
        fit_gee_logit(X, y, g, vcov="CR2")
    with pytest.raises(ValueError, match="max_iter"):
        fit_gee_logit(X, y, g, max_iter=0)
    with pytest.raises(ValueError, match="tol"):
        fit_gee_logit(X, y, g, tol=-1.0)
    with pytest.raises(ValueError, match="names has 2 entries"):
        fit_gee_logit(X, y, g, names=["a", "b"])


@pytest.mark.fixture
def test_non_convergence_warns(data):
    X, y, g, _ = data
    with pytest.warns(GeeConvergenceWarning, match="did not converge in max_iter=2"):
        fit = fit_gee_logit(X, y, g, max_iter=2)
    assert not fit.converged and fit.n_iter == 2


@pytest.mark.fixture
def test_separation_raises(data):
    X, y, g, d = data
    y2 = y.copy()
    y2[d["stage3"].to_numpy() == 1] = 0.0  # stage 3 perfectly predicts y = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match="separated"):
            fit_gee_logit(X, y2, g, max_iter=20)


@pytest.mark.fixture
def test_cluster_with_leverage_one(data):
    """A covariate non-zero in one cluster only: I - H_ii is singular."""
    X, y, g, _ = data
    X1 = np.column_stack([X, (g == 3).astype(float)])
    with pytest.raises(DataError, match="leverage"):
        fit_gee_logit(X1, y, g)
    with pytest.warns(GeeConvergenceWarning, match="set to NaN"):
        fit = fit_gee_logit(X1, y, g, vcov="robust")
    assert np.all(np.isnan(fit.vcov_mancl_derouen)) and np.all(np.isfinite(fit.se))


@pytest.mark.fixture
def test_negative_correlation_outside_range_raises():
    """Each cluster exactly half 1s: rho = -1/(n-1), the working correlation is singular."""
    g = np.repeat(np.arange(4), 6)
    y = np.tile([1.0, 0.0], 12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match="cov_struct='independence'"):
            fit_gee_logit(np.ones((24, 1)), y, g)
    fit = fit_gee_logit(np.ones((24, 1)), y, g, cov_struct="independence")
    assert fit.coef[0] == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------------------
# Own solver: scaling invariance, and clusters of thousands (ILCOP-shaped data)
# ---------------------------------------------------------------------------


@pytest.mark.fixture
def test_convergence_is_invariant_to_covariate_scaling(data, fits):
    """The convergence test is the Newton decrement sqrt(U' I^-1 U), which does not
    depend on the units of X: age in years, centuries or centred gives the same path."""
    X, y, g, _ = data
    ref = fits["exchangeable"]
    j = NAMES.index("age")
    for scale, shift in [(100.0, 0.0), (0.01, 0.0), (1.0, -72.0)]:
        X2 = X.copy()
        X2[:, j] = (X[:, j] + shift) / scale
        fit = fit_gee_logit(X2, y, g, names=NAMES)
        assert fit.converged and fit.n_iter == ref.n_iter
        assert fit.working_corr == pytest.approx(ref.working_corr, abs=1e-12)
        np.testing.assert_allclose(fit.coef[j], ref.coef[j] * scale, rtol=1e-9)
        np.testing.assert_allclose(fit.coef[1:j], ref.coef[1:j], rtol=0, atol=1e-10)
        np.testing.assert_allclose(fit.se[1:j], ref.se[1:j], rtol=1e-9)


@pytest.fixture(scope="module")
def ilcop_like():
    """20 pairs (8 treated) at ILCOP volumes: 44,625 patients, pair clusters of 1,144-4,731."""
    import rp2pr_eval as rp
    from rp2pr_eval.estimators.prepare import patient_design, prepare

    df = rp.simulate_nlca(seed=3, n_pairs=20, n_treated_pairs=8)
    prep = prepare(df, "active_treatment", design=None, cluster="pair_id", kinds=("binary",))
    X, names = patient_design(prep, rp.CASE_MIX)
    y = prep.rows["active_treatment"].to_numpy(float)
    g = np.asarray(prep.cluster_codes())
    order = np.argsort(g, kind="stable")
    return X[order], y[order], g[order], names, df


def _fixed_rho_fit(X, y, g, rho):
    """Our Fisher scoring with rho held fixed, and the sandwiches there (rows sorted by g)."""
    from rp2pr_eval.models import gee_solver as gee_core

    sizes = np.bincount(g)
    beta, _, converged, _, _, _ = gee_core.fit_gee_beta(
        X, y, sizes, "exchangeable", 100, 1e-10, _fixed_rho=rho
    )
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    lz, md, _ = gee_core.sandwiches(X, y, beta, rho, bounds)
    rho_hat = gee_core.ClusterMoments(gee_core.ClusterLayout(X, y, sizes), beta).rho()
    return beta, converged, lz, md, rho_hat


@pytest.mark.equivalence
def test_large_clusters_fixed_rho_matches_statsmodels(ilcop_like):
    """At any fixed rho the huge clusters are no numerical problem: our Fisher scoring and
    robust sandwich equal statsmodels' (update_dep=False) to ~1e-13 (measured 1e-13 / 5e-14).

    It also shows why the exchangeable fit has no solution on these data: the moment
    estimator at beta(rho) exceeds rho at every rho (statsmodels' own update, ddof 0).
    """
    X, y, g, _, _ = ilcop_like
    start = None
    for rho in (0.002, 0.005, 0.01):
        beta, converged, lz, _, rho_hat = _fixed_rho_fit(X, y, g, rho)
        assert converged
        cs = Exchangeable()
        model = sm.GEE(y, X, groups=g, family=sm.families.Binomial(), cov_struct=cs,
                       update_dep=False)
        cs.dep_params = rho
        res = model.fit(maxiter=100, ctol=1e-7, ddof_scale=0, cov_type="robust",
                        start_params=start)
        assert res.converged
        start = res.params
        np.testing.assert_allclose(beta, res.params, rtol=0, atol=1e-10)
        np.testing.assert_allclose(np.sqrt(np.diag(lz)), np.sqrt(np.diag(res.cov_robust)),
                                   rtol=1e-9)
        j = 3  # treated:post
        assert np.isfinite(lz[j, j]) and lz[j, j] > 0
        model.update_cached_means(res.params)
        cs.update(res.params)
        assert rho_hat == pytest.approx(cs.dep_params, rel=1e-9)
        assert rho_hat > rho + 5e-4  # F(rho) - rho: +0.0011, +0.0007, +0.0029


@pytest.mark.equivalence
def test_large_clusters_subsample_matches_dense(ilcop_like):
    """A 150-per-cluster subsample of the same data (3,000 rows) has a solution; the
    converged fit's sandwiches equal the dense n_i x n_i formulas there."""
    X, y, g, _, _ = ilcop_like
    rng = np.random.default_rng(42)
    keep = np.sort(np.concatenate(
        [rng.choice(np.flatnonzero(g == k), 150, replace=False) for k in np.unique(g)]
    ))
    Xs, ys, gs = X[keep], y[keep], g[keep]
    fit = fit_gee_logit(Xs, ys, gs)
    assert fit.converged and 0.0 < fit.working_corr < 0.1
    lz, md = dense_sandwiches(Xs, ys, gs, fit.coef, fit.working_corr)
    np.testing.assert_allclose(fit.vcov_robust, lz, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(fit.vcov_mancl_derouen, md, rtol=1e-9, atol=1e-15)


@pytest.mark.fixture
def test_large_clusters_runaway_falls_back_to_one_step_rho(ilcop_like):
    """The reproduction case: statsmodels' exchangeable GEE drifts until the coefficients
    overflow (rho 0.0019, 0.0029, ... then NaN). There is no fixed point to find (see the
    previous test), so fit_gee_logit notices within ~20 updates, warns naming the cause and
    holds rho at its one-step value (the moment estimator at the independence fit) — the
    same fit rho="one-step" gives without a warning — in well under a second of CPU."""
    import time

    from rp2pr_eval.models.gee_solver import GeeConvergenceWarning, one_step_rho

    X, y, g, names, _ = ilcop_like
    cpu = time.process_time()
    with pytest.warns(GeeConvergenceWarning, match=r"keeps growing.*held at its one-step estimate"):
        fit = fit_gee_logit(X, y, g, names=names)
    assert time.process_time() - cpu < 3.0
    rho1 = one_step_rho(X, y, np.bincount(g))
    assert fit.converged and fit.rho_method == "one-step (no joint solution)" and fit.working_corr == rho1
    assert 0.0 < rho1 < 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        direct = fit_gee_logit(X, y, g, names=names, rho="one-step")
        fixed = fit_gee_logit(X, y, g, names=names, rho=rho1)
    assert direct.rho_method == "one-step" and fixed.rho_method == "fixed"
    np.testing.assert_array_equal(direct.coef, fit.coef)
    np.testing.assert_allclose(fixed.coef, fit.coef, rtol=0, atol=1e-10)
    ind = fit_gee_logit(X, y, g, names=names, cov_struct="independence")
    assert ind.converged and ind.rho_method == "none" and np.all(np.isfinite(ind.se))
    # a consistent rho leaves beta close to the independence fit here (same estimand)
    j = names.index("treated:post")
    assert abs(fit.coef[j] - ind.coef[j]) < 0.5 * ind.se[j]


@pytest.mark.equivalence
def test_one_step_rho_equals_statsmodels_at_that_rho(ilcop_like):
    """rho='one-step': rho is geepack's moment estimator at the independence (GLM) fit, and at that
    rho statsmodels' GEE (dependence held fixed) gives the same coefficients and robust SEs."""
    X, y, g, names, _ = ilcop_like
    glm = sm.GLM(y, X, family=sm.families.Binomial()).fit(tol=1e-12)
    e = (y - glm.fittedvalues) / np.sqrt(glm.fittedvalues * (1 - glm.fittedvalues))
    num = sum((e[g == k].sum() ** 2 - (e[g == k] ** 2).sum()) / 2 for k in np.unique(g))
    pairs = sum(n * (n - 1) / 2 for n in np.bincount(g))
    rho_hand = num / pairs / (e @ e / len(e))
    fit = fit_gee_logit(X, y, g, names=names, rho="one-step", vcov="robust")
    assert fit.working_corr == pytest.approx(rho_hand, rel=1e-8)
    cs = Exchangeable()
    model = sm.GEE(y, X, groups=g, family=sm.families.Binomial(), cov_struct=cs, update_dep=False)
    cs.dep_params = fit.working_corr
    res = model.fit(maxiter=100, ctol=1e-7, ddof_scale=0, start_params=fit.coef)
    np.testing.assert_allclose(fit.coef, res.params, rtol=0, atol=1e-8)
    np.testing.assert_allclose(fit.se, np.sqrt(np.diag(res.cov_robust)), rtol=1e-7)


@pytest.mark.fixture
def test_bad_rho_option():
    X = np.column_stack([np.ones(40), np.tile([0.0, 1.0], 20)])
    y = np.tile([0.0, 1.0, 1.0, 0.0], 10)
    g = np.repeat(np.arange(8), 5)
    for bad in ("joint", True, float("nan")):
        with pytest.raises(ValueError, match="rho="):
            fit_gee_logit(X, y, g, rho=bad)
    with pytest.raises(DataError, match="not inside"):
        fit_gee_logit(X, y, g, rho=-0.5)


@pytest.mark.equivalence
def test_large_clusters_converge_where_a_solution_exists():
    """Clusters of 600-2,500 (ILCOP at volume median 120): a fixed point exists and is found
    (29 updates); at our rho, statsmodels reproduces our beta and robust SEs, and its own
    moment update returns the same rho, i.e. (beta, rho) solves both equations."""
    import rp2pr_eval as rp
    from rp2pr_eval.estimators.prepare import patient_design, prepare

    df = rp.simulate_nlca(seed=3, volume_median=120, volume_clip=(120 / 3.5, 120 * 3.5))
    prep = prepare(df, "active_treatment", design=None, cluster="pair_id", kinds=("binary",))
    X, names = patient_design(prep, rp.CASE_MIX)
    y = prep.rows["active_treatment"].to_numpy(float)
    g = np.asarray(prep.cluster_codes())
    assert np.bincount(g).max() > 2000
    fit = fit_gee_logit(X, y, g, names=names, vcov="robust")
    assert fit.converged and 0.005 < fit.working_corr < 0.01
    cs = Exchangeable()
    model = sm.GEE(y, X, groups=g, family=sm.families.Binomial(), cov_struct=cs,
                   update_dep=False)
    cs.dep_params = fit.working_corr
    res = model.fit(maxiter=100, ctol=1e-7, ddof_scale=0, start_params=fit.coef)
    np.testing.assert_allclose(fit.coef, res.params, rtol=0, atol=1e-8)
    np.testing.assert_allclose(fit.se, np.sqrt(np.diag(res.cov_robust)), rtol=1e-7)
    model.update_cached_means(res.params)
    cs.update(res.params)
    assert cs.dep_params == pytest.approx(fit.working_corr, rel=1e-7)


@pytest.mark.equivalence
def test_gee_logistic_falls_back_to_independence_on_runaway(ilcop_like):
    """The analysis layer catches the DataError and reports the independence fit."""
    import rp2pr_eval as rp
    from rp2pr_eval.estimators.gee import gee_logistic_with_fallback

    df = ilcop_like[-1]
    effect = gee_logistic_with_fallback(df, "active_treatment", covariates=rp.CASE_MIX,
                                        vcov="mancl_derouen", level=0.95, design=None, cluster="pair_id")
    assert effect.details["cov_struct"] == "independence"
    assert "keeps growing" in effect.details["fallback"]
    assert np.isfinite(effect.se) and effect.se > 0
    # the public estimator itself answers with the one-step rho, and says so
    from rp2pr_eval.models.gee import GeeConvergenceWarning

    with pytest.warns(GeeConvergenceWarning, match="one-step"):
        own = rp.gee_logistic(df, "active_treatment", covariates=rp.CASE_MIX)
    assert own.details["rho_method"] == "one-step (no joint solution)" and own.details["cov_struct"] == "exchangeable"
    assert np.isfinite(own.se) and own.p_value > 0


# ---------------------------------------------------------------------------
# Monte Carlo: size of the robust and Mancl–DeRouen tests with few clusters
# ---------------------------------------------------------------------------


@pytest.mark.simulation
def test_mancl_derouen_size_closer_to_nominal_with_20_clusters():
    """Null treatment effect, 20 clusters (7 treated, as ILCOP's 15:25), unequal sizes.

    Cluster sizes lognormal (median 40, sdlog 0.8), random intercept SD 0.5,
    exchangeable GEE, t reference with G - p = 18 df; 400 seeded replicates.
    Measured: robust 7.25%, Mancl–DeRouen 5.25% (normal reference: 9.0% and 6.5%);
    other seeds with 600 replicates gave 7.5-8.0% and 4.3-4.8%.
    """
    rng = np.random.default_rng(20240611)
    G, n_treated, reps = 20, 7, 400
    rejections = np.zeros(4)  # robust-t, MD-t, robust-z, MD-z
    n_fits = 0
    for _ in range(reps):
        sizes = np.maximum(5, np.round(rng.lognormal(np.log(40), 0.8, G))).astype(int)
        g = np.repeat(np.arange(G), sizes)
        treated = np.zeros(G)
        treated[rng.permutation(G)[:n_treated]] = 1.0
        eta = -0.5 + rng.normal(0.0, 0.5, G)
        y = (rng.random(sizes.sum()) < special.expit(eta[g])).astype(float)
        X = np.column_stack([np.ones(len(g)), treated[g]])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = fit_gee_logit(X, y, g, vcov="robust", tol=1e-6)
        except DataError:  # e.g. a non-positive-definite rho; counted below
            continue
        n_fits += 1
        t_rob = abs(fit.coef[1]) / np.sqrt(fit.vcov_robust[1, 1])
        t_md = abs(fit.coef[1]) / np.sqrt(fit.vcov_mancl_derouen[1, 1])
        q_t, q_z = stats.t.ppf(0.975, fit.df), stats.norm.ppf(0.975)
        rejections += [t_rob > q_t, t_md > q_t, t_rob > q_z, t_md > q_z]
    assert n_fits >= 0.99 * reps
    rob_t, md_t, rob_z, md_z = rejections / n_fits
    assert abs(md_t - 0.05) < abs(rob_t - 0.05)
    assert abs(md_z - 0.05) < abs(rob_z - 0.05)
    assert rob_t > 0.06  # the plain sandwich is anti-conservative with 20 clusters
    assert 0.03 < md_t < 0.07  # Monte Carlo SE ~1.1 percentage points


@pytest.mark.simulation
def test_one_step_rho_size_and_standard_error_at_ilcop_shape():
    """rho='one-step' over 60 seeded null trials (40 pairs, 15 treated, small volumes): the
    Mancl–DeRouen test rejects at most 5 % + 3.3 MC SE, and the mean SE matches the spread of
    the estimates (ratio within 0.75–1.35)."""
    import rp2pr_eval as rp

    est, se, rejections = [], [], 0
    for seed in range(60):
        df = rp.simulate_nlca(seed=np.random.default_rng([11, seed]), volume_median=50, volume_clip=(25, 120))
        e = rp.gee_logistic(df, "active_treatment", covariates=["age", "stage"], rho="one-step")
        assert e.details["rho_method"] == "one-step"
        est.append(e.estimate)
        se.append(e.se)
        rejections += e.p_value < 0.05
    assert rejections / 60 < 0.05 + 3.3 * math.sqrt(0.05 * 0.95 / 60)
    ratio = np.mean(se) / np.std(est, ddof=1)
    assert 0.75 < ratio < 1.35, ratio
