"""Score wild cluster bootstrap (Kline & Santos 2012) for did_logistic and gee_logistic.

* the algebra equals the restricted wild cluster bootstrap-t draw for draw on a linear model;
* the vectorised draws equal a slow loop (restricted fit by statsmodels with an offset, cluster
  scores and information by explicit loops, one draw at a time);
* size in a seeded Monte Carlo; the data-frame front end, shared weights and option checks.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm

import rp2pr_eval as rp
from rp2pr_eval.models.score_bootstrap import score_bootstrap_logit, score_t_draws
from rp2pr_eval.models.wild import bootstrap_weights, wild_cluster_bootstrap_linear


def _cluster_logit_data(rng, n_clusters=40, n_treated=15, effect=0.0, sd=0.4):
    """Cluster-randomised before-after logistic data: treated clusters, post rows, random cluster intercepts."""
    treated_c = np.zeros(n_clusters)
    treated_c[rng.choice(n_clusters, n_treated, replace=False)] = 1
    sizes = rng.integers(40, 160, n_clusters)
    g = np.repeat(np.arange(n_clusters), sizes)
    t = treated_c[g]
    post = rng.integers(0, 2, len(g)).astype(float)
    x = rng.normal(size=len(g))
    u = rng.normal(0, sd, n_clusters)[g] + rng.normal(0, sd / 2, (n_clusters, 2))[g, post.astype(int)]
    eta = -0.3 + 0.2 * t + 0.2 * post + effect * t * post + 0.5 * x + u
    y = (rng.random(len(g)) < 1 / (1 + np.exp(-eta))).astype(float)
    X = np.column_stack([np.ones(len(g)), t, post, t * post, x])
    return X, y, g


@pytest.mark.equivalence
@pytest.mark.parametrize("kind", ["rademacher", "webb"])
def test_score_algebra_equals_linear_wcr_draw_for_draw(kind):
    """Linear model: s_g = X_g'u~_g, B_g = X_g'X_g gives exactly the WCR bootstrap t (CR0 scale)."""
    rng = np.random.default_rng(3)
    X, y, g = _cluster_logit_data(rng)
    y = y + rng.normal(size=len(y))  # any continuous response
    j = 3
    V = bootstrap_weights(40, 499, kind, rng=np.random.default_rng(8))
    wcr = wild_cluster_bootstrap_linear(X, y, coef_index=j, cluster=g, weight_matrix=V, small_sample=False, ci=False)
    # restricted OLS residuals (beta_j = 0) and the cluster summaries
    Xr = np.delete(X, j, axis=1)
    u = y - Xr @ np.linalg.lstsq(Xr, y, rcond=None)[0]
    s_g = np.array([X[g == k].T @ u[g == k] for k in range(40)])
    B_g = np.array([X[g == k].T @ X[g == k] for k in range(40)])
    _, draws = score_t_draws(s_g, B_g, j, V)
    np.testing.assert_allclose(draws, wcr.t_draws, rtol=1e-9, atol=1e-12)


def _slow_score_draws(X, y, g, j, h, V):
    """Reference: statsmodels GLM with offset for the restricted fit, then loops over draws and clusters."""
    Xr = np.delete(X, j, axis=1)
    fit = sm.GLM(y, Xr, family=sm.families.Binomial(), offset=h * X[:, j]).fit(tol=1e-12)
    beta = np.insert(np.asarray(fit.params), j, h)
    mu = 1 / (1 + np.exp(-X @ beta))
    G = int(g.max()) + 1
    s, B = [], []
    for k in range(G):
        rows = g == k
        s.append(X[rows].T @ (y[rows] - mu[rows]))
        B.append((X[rows] * (mu[rows] * (1 - mu[rows]))[:, None]).T @ X[rows])
    H_inv = np.linalg.inv(sum(B))
    out = []
    for v in np.vstack([np.ones(G), V]):
        S = sum(v[k] * s[k] for k in range(G))
        num = (H_inv @ S)[j]
        var = sum(((H_inv @ (v[k] * s[k] - B[k] @ H_inv @ S))[j]) ** 2 for k in range(G))
        out.append(num / math.sqrt(var))
    return out[0], np.array(out[1:])


@pytest.mark.equivalence
@pytest.mark.parametrize("h", [0.0, 0.25])
def test_score_bootstrap_matches_slow_reference_loop(h):
    rng = np.random.default_rng(11)
    X, y, g = _cluster_logit_data(rng, effect=0.2)
    V = bootstrap_weights(40, 200, "webb", rng=np.random.default_rng(2))
    start = np.asarray(sm.GLM(y, X, family=sm.families.Binomial()).fit().params)
    res = score_bootstrap_logit(X, y, g, coef_index=3, start=start, se=0.1, h0=h, weight_matrix=V, ci=False)
    t_obs, draws = _slow_score_draws(X, y, g, 3, h, V)
    assert res.score_stat == pytest.approx(t_obs, rel=1e-7)
    np.testing.assert_allclose(res.t_draws, draws, rtol=1e-7, atol=1e-10)
    assert res.p_value == pytest.approx(np.mean(np.abs(draws) >= abs(t_obs) * (1 - 1e-9)))


@pytest.mark.simulation
def test_score_bootstrap_size_seeded_monte_carlo():
    """Null effect, 40 clusters (15 treated), cluster and cluster-period intercepts: 300 trials, 199 Rademacher
    draws each; the 5 % rejection rate must be within 3 MC SE of 0.05 (measured: see docs/methods/resampling.md)."""
    rng = np.random.default_rng(2026)
    rejections = []
    for _ in range(300):
        X, y, g = _cluster_logit_data(rng)
        start = np.asarray(sm.GLM(y, X, family=sm.families.Binomial()).fit().params)
        res = score_bootstrap_logit(X, y, g, coef_index=3, start=start, se=0.1, n_boot=199,
                                    seed=rng, ci=False)
        rejections.append(res.p_value < 0.05)
    rate = float(np.mean(rejections))
    mcse = math.sqrt(0.05 * 0.95 / len(rejections))
    assert abs(rate - 0.05) < 3 * mcse, rate


@pytest.fixture(scope="module")
def small(small_patients):
    return small_patients


def test_front_end_did_logistic(small):
    e = rp.wild_cluster_bootstrap(small, "active_treatment", rp.did_logistic, n_boot=199, seed=4)
    base = rp.did_logistic(small, "active_treatment")
    assert e.estimator == "did_logistic+score_bootstrap"
    assert e.estimate == base.estimate and e.se == base.se and e.df is None
    assert 0 < e.p_value <= 1 and e.ci_low < e.estimate < e.ci_high
    # the CI bounds are where the bootstrap p-value crosses 5 %: the test at each bound is at the edge
    X_check = rp.wild_cluster_bootstrap(small, "active_treatment", rp.did_logistic, n_boot=199, seed=4)
    assert X_check.p_value == e.p_value and X_check.ci_low == e.ci_low
    # shared draws: the same weight matrix as the seed gives the same answer
    n_pairs = small["pair_id"].nunique()
    W = rp.shared_bootstrap_weights(n_pairs, 199, "rademacher", seed=4)
    shared = rp.wild_cluster_bootstrap(small, "active_treatment", rp.did_logistic, weight_matrix=W)
    assert shared.p_value == e.p_value and shared.ci_high == pytest.approx(e.ci_high, rel=1e-9)


def test_front_end_gee_logistic_and_options(small):
    e = rp.wild_cluster_bootstrap(small, "active_treatment", rp.gee_logistic, n_boot=99, seed=1,
                                  cov_struct="independence", weights="webb")
    assert e.estimator == "gee_logistic+score_bootstrap" and "webb" in e.vcov
    did = rp.wild_cluster_bootstrap(small, "active_treatment", rp.did_logistic, n_boot=99, seed=1, weights="webb")
    # independence GEE and the logistic GLM have the same scores: same p-value
    assert e.p_value == did.p_value
    with pytest.raises(ValueError, match="restricted only"):
        rp.wild_cluster_bootstrap(small, "active_treatment", rp.did_logistic, null=False)
    with pytest.raises(ValueError, match="supports"):
        rp.wild_cluster_bootstrap(small, "active_treatment", rp.mixed_logistic)


@pytest.mark.fixture
def test_gee_score_bootstrap_inverts_past_nulls_the_model_cannot_be_fitted_under(bundled_patients):
    """mdt_discussed (a 96 % rate): inverting the GEE score test probes h = estimate + 2.3 x width = 1.57,
    where the restricted fit has fitted probabilities of 0 or 1. Before, that probe ended the whole call
    with the separation error although the test at h0 = 0 and the interval are well defined; now such nulls
    count as rejected, the interval is the test's own, and the count is reported."""
    effect = rp.wild_cluster_bootstrap(bundled_patients, "mdt_discussed", rp.gee_logistic, n_boot=99, seed=1)
    assert effect.estimator == "gee_logistic+score_bootstrap"
    assert effect.details["infeasible_nulls"] >= 1
    assert 0.1 < effect.p_value < 0.6                              # estimate 0.35, SE 0.26: not significant
    assert math.isfinite(effect.ci_low) and math.isfinite(effect.ci_high)
    assert effect.ci_low < 0 < effect.estimate < effect.ci_high < 1.5
