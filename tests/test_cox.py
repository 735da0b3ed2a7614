"""Tests for rp2pr_eval.survival_core.fit_cox (Cox PH, Efron/Breslow ties, cluster-robust variance).

Reference values come from ``tests/reference/cox.R`` (R 4.2.2, survival 3.5.3):

    coxph(Surv(time, died) ~ treated + post + treated_post + age + female + stage3 +
          stage4 + ps + imd, data = d, ties = "efron", cluster = cl,
          control = coxph.control(eps = 1e-10, iter.max = 100))

and ``ties = "breslow"``, each also without ``cluster``, on
``tests/reference/data/cox_data.csv.gz`` (4,000 rows, 30 clusters, whole-day
times: 3,614 events at 578 distinct times). The robust variance is coxph's
``fit$var`` (crossprod of the dfbeta residuals summed by cluster); the
model-based one ``fit$naive.var``. R is not needed to run these tests.

statsmodels' PHReg agrees except for the robust variance with Efron ties,
where it uses Breslow-type score residuals; the equivalence tests pin that
difference down rather than hide it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.duration.hazard_regression import PHReg

from rp2pr_eval.errors import DataError
from rp2pr_eval.models.cox import CoxConvergenceWarning, CoxFit, _Sorted, fit_cox

REF_DIR = Path(__file__).parent / "reference"
DATA = REF_DIR / "data" / "cox_data.csv.gz"
COVARIATES = ["treated", "post", "treated_post", "age", "female", "stage3", "stage4", "ps", "imd"]
TIES = ["efron", "breslow"]


# ---------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ref():
    return json.loads((REF_DIR / "cox_reference.json").read_text())


@pytest.fixture(scope="module")
def rdata():
    return pd.read_csv(DATA)


@pytest.fixture(scope="module")
def fits(rdata):
    d = rdata
    out = {}
    for ties in TIES:
        out[ties, True] = fit_cox(d["time"], d["died"], d[COVARIATES], groups=d["cl"], ties=ties)
        out[ties, False] = fit_cox(d["time"], d["died"], d[COVARIATES], ties=ties)
    return out


def simulate_weibull(rng, n, beta, *, unit=1.0, n_clusters=None):
    """Weibull PH data (shape 0.8, median 300 days at x = 0); times floored to ``unit`` days.

    Columns: binary, normal, binary, normal. Censoring uniform on 180-900 days.
    """
    X = np.column_stack(
        [rng.integers(0, 2, n), rng.standard_normal(n), rng.integers(0, 2, n), rng.standard_normal(n)]
    ).astype(float)
    shape = 0.8
    scale = 300.0 / np.log(2.0) ** (1.0 / shape)
    t = scale * (rng.exponential(size=n) / np.exp(X @ beta)) ** (1.0 / shape)
    c = rng.uniform(180.0, 900.0, n)
    time = np.floor(np.minimum(t, c) / unit)
    event = (t <= c).astype(float)
    groups = None if n_clusters is None else rng.integers(0, n_clusters, n)
    return time, event, X, groups


@pytest.fixture(scope="module")
def small():
    """1,500 rows, 15 clusters, whole-day times with many ties, 5 covariates."""
    rng = np.random.default_rng(20240612)
    time, event, X, _ = simulate_weibull(rng, 1500, np.array([0.4, -0.3, 0.2, 0.5]))
    g = rng.integers(0, 15, 1500)
    X = np.column_stack([X, rng.uniform(50, 90, 1500)])  # an uncentred continuous column (age)
    return time, event, X, g


def assert_vcov_close(actual, desired, rtol):
    """|actual - desired| <= rtol * sqrt(V_ii V_jj) element-wise (relative on the correlation scale)."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    d = np.sqrt(np.diag(desired))
    err = np.abs(actual - desired) / np.outer(d, d)
    assert err.max() <= rtol, f"max scaled difference {err.max():.3g} > {rtol:g}"


def naive_cox(time, event, X, beta, ties):
    """Deliberately loop-based log likelihood, score, information and score residuals."""
    n, p = X.shape
    r = np.exp(X @ beta)
    ll, U, info = 0.0, np.zeros(p), np.zeros((p, p))
    resid = np.zeros((n, p))
    for t in np.unique(time[event == 1]):
        risk = np.flatnonzero(time >= t)
        dead = np.flatnonzero((time == t) & (event == 1))
        d = len(dead)
        for l in range(d):
            f = l / d if ties == "efron" else 0.0
            wt = np.ones(n)
            wt[dead] = 1.0 - f  # risk-set weight of each subject in this term
            s0 = np.sum(wt[risk] * r[risk])
            s1 = (wt[risk] * r[risk]) @ X[risk]
            s2 = (X[risk] * (wt[risk] * r[risk])[:, None]).T @ X[risk]
            xbar = s1 / s0
            ll -= np.log(s0)
            U -= xbar
            info += s2 / s0 - np.outer(xbar, xbar)
            for i in risk:
                resid[i] -= wt[i] * r[i] / s0 * (X[i] - xbar)
            for i in dead:
                resid[i] += (X[i] - xbar) / d
        ll += np.sum(X[dead] @ beta)
        U += X[dead].sum(axis=0)
    return ll, U, info, resid


# ---------------------------------------------------------------------------
# Reference values from R's survival::coxph
# ---------------------------------------------------------------------------


@pytest.mark.reference
def test_reference_data_matches_provenance(ref, rdata):
    assert hashlib.md5(DATA.read_bytes()).hexdigest() == ref["provenance"]["data_md5"]
    assert len(rdata) == ref["n_obs"] == 4000
    assert int(rdata["died"].sum()) == ref["n_events"]
    assert rdata["cl"].nunique() == ref["n_clusters"] == 30
    # many ties: about six events per distinct event time
    assert ref["n_unique_event_times"] < ref["n_events"] / 5


@pytest.mark.reference
@pytest.mark.parametrize("ties", TIES)
def test_coefficients_and_loglik_match_coxph(fits, ref, ties):
    r = ref[ties]
    for clustered in (True, False):
        fit = fits[ties, clustered]
        assert fit.names == tuple(r["names"])
        np.testing.assert_allclose(fit.coef, r["coef"], rtol=1e-6, atol=0)
        np.testing.assert_allclose(fit.coef, r["coef_no_cluster"], rtol=1e-6, atol=0)
        assert fit.loglik == pytest.approx(r["loglik"], rel=1e-10)
        assert fit.loglik_null == pytest.approx(r["loglik_null"], rel=1e-10)
        assert fit.converged
        assert fit.n_obs == ref["n_obs"] and fit.n_events == ref["n_events"]
        assert fit.ties == ties
    # R's default eps = 1e-9 and ours give the same estimate well inside the tolerance
    np.testing.assert_allclose(fits[ties, True].coef, r["coef_default_eps"], rtol=1e-6, atol=0)


@pytest.mark.reference
@pytest.mark.parametrize("ties", TIES)
def test_robust_variance_matches_coxph_cluster(fits, ref, ties):
    fit, r = fits[ties, True], ref[ties]
    assert fit.n_clusters == 30 and fit.robust
    np.testing.assert_allclose(fit.se, r["se_robust"], rtol=1e-5, atol=0)
    assert_vcov_close(fit.vcov, r["vcov_robust"], rtol=1e-5)
    # the robust SE of the cluster-level treatment is far from the model-based one
    assert fit.se[0] / np.sqrt(fit.vcov_model[0, 0]) > 2.0


@pytest.mark.reference
@pytest.mark.parametrize("ties", TIES)
def test_model_based_variance_matches_coxph(fits, ref, ties):
    r = ref[ties]
    np.testing.assert_allclose(np.sqrt(np.diag(fits[ties, True].vcov_model)), r["se_naive"], rtol=1e-5, atol=0)
    fit = fits[ties, False]
    assert fit.n_clusters is None and not fit.robust
    np.testing.assert_allclose(fit.se, r["se_no_cluster"], rtol=1e-5, atol=0)
    assert_vcov_close(fit.vcov, r["vcov_naive"], rtol=1e-5)
    np.testing.assert_array_equal(fit.vcov, fit.vcov_model)


@pytest.mark.reference
@pytest.mark.parametrize("ties", TIES)
def test_score_residuals_by_cluster_match_coxph(rdata, fits, ref, ties):
    """residuals(fit, type = "score", collapse = cl): pins the Efron weighting of the residuals."""
    d = rdata
    X = d[COVARIATES].to_numpy(float)
    X = X - X.mean(axis=0)
    st = _Sorted.build(d["time"].to_numpy(float), d["died"].to_numpy(float), X, ties)
    resid = np.empty_like(X)
    resid[st.order] = st.score_residuals(np.asarray(fits[ties, True].coef))
    cl = d["cl"].to_numpy()
    Ug = np.array([resid[cl == k].sum(axis=0) for k in ref["cluster_labels"]])
    R_Ug = np.array(ref[ties]["score_resid_by_cluster"])
    np.testing.assert_allclose(Ug, R_Ug, rtol=1e-6, atol=1e-6 * np.abs(R_Ug).max())


# ---------------------------------------------------------------------------
# Equivalence with statsmodels PHReg
# ---------------------------------------------------------------------------


@pytest.mark.equivalence
@pytest.mark.parametrize("ties", TIES)
def test_matches_statsmodels_model_based(small, ties):
    time, event, X, _ = small
    model = PHReg(time, X, status=event, ties=ties)
    res = model.fit()
    fit = fit_cox(time, event, X, ties=ties)
    np.testing.assert_allclose(fit.coef, res.params, rtol=1e-8, atol=1e-10)
    assert_vcov_close(fit.vcov, res.cov_params(), rtol=1e-7)
    assert fit.loglik == pytest.approx(model.loglike(fit.coef), rel=1e-12)
    assert fit.loglik_null == pytest.approx(model.loglike(np.zeros(X.shape[1])), rel=1e-12)


@pytest.mark.equivalence
def test_matches_statsmodels_robust_breslow(small):
    time, event, X, g = small
    res = PHReg(time, X, status=event, ties="breslow").fit(groups=g)
    fit = fit_cox(time, event, X, groups=g, ties="breslow")
    np.testing.assert_allclose(fit.coef, res.params, rtol=1e-8, atol=1e-10)
    assert_vcov_close(fit.vcov, res.cov_params(), rtol=1e-7)
    assert fit.n_clusters == 15


@pytest.mark.equivalence
def test_statsmodels_efron_robust_uses_breslow_score_residuals(small):
    """statsmodels' Efron robust vcov = I_efron^-1 (sum_g U_g U_g') I_efron^-1 with Breslow-type U_i.

    fit_cox follows R (Efron-weighted residuals; see the reference tests), so its
    robust SEs differ from statsmodels' on tied data; the coefficients and
    model-based variance agree.
    """
    time, event, X, g = small
    res = PHReg(time, X, status=event, ties="efron").fit(groups=g)
    fit = fit_cox(time, event, X, groups=g, ties="efron")
    np.testing.assert_allclose(fit.coef, res.params, rtol=1e-8, atol=1e-10)

    Xc = X - X.mean(axis=0)
    resid = np.empty_like(Xc)
    st = _Sorted.build(time, event, Xc, "breslow")
    resid[st.order] = st.score_residuals(np.asarray(fit.coef))
    Ug = np.array([resid[g == k].sum(axis=0) for k in np.unique(g)])
    breslow_meat = fit.vcov_model @ Ug.T @ Ug @ fit.vcov_model
    assert_vcov_close(res.cov_params(), breslow_meat, rtol=1e-7)
    rel = np.abs(fit.se / res.bse - 1.0)
    assert rel.max() > 1e-4  # a real difference, not rounding


@pytest.mark.equivalence
def test_efron_robust_matches_statsmodels_without_ties():
    rng = np.random.default_rng(3)
    beta = np.array([0.4, -0.3, 0.2, 0.5])
    time, event, X, _ = simulate_weibull(rng, 800, beta, unit=1e-6)
    g = rng.integers(0, 12, 800)
    assert np.unique(time[event == 1]).size == event.sum()
    res = PHReg(time, X, status=event, ties="efron").fit(groups=g)
    fit = fit_cox(time, event, X, groups=g, ties="efron")
    np.testing.assert_allclose(fit.coef, res.params, rtol=1e-8, atol=1e-10)
    assert_vcov_close(fit.vcov, res.cov_params(), rtol=1e-7)


# ---------------------------------------------------------------------------
# Hand-calculable fixtures and the loop-based definitions
# ---------------------------------------------------------------------------


@pytest.mark.fixture
def test_three_patients_by_arithmetic():
    """Deaths at t=1 (x=0 and x=1, tied) and t=2 (x=0, alone in its risk set).

    Breslow: l(b) = b - 2 log(2 + e^b), so e^b = 2 and I = 2 p(1-p), p = 1/2.
    Efron:   l(b) = b - log(2 + e^b) - log((3 + e^b)/2), so e^{2b} = 6 and
             I = p1(1-p1) + p2(1-p2), p1 = u/(2+u), p2 = u/(3+u), u = sqrt(6).
    At b = 0: l = -2 log 3 (Breslow), -log 3 - log 2 (Efron).
    """
    time, event, x = [1, 1, 2], [1, 1, 1], np.array([[0.0], [1.0], [0.0]])
    b = fit_cox(time, event, x, ties="breslow", tol=1e-14)
    assert b.coef[0] == pytest.approx(np.log(2.0), abs=1e-10)
    assert b.loglik_null == pytest.approx(-2.0 * np.log(3.0), rel=1e-14)
    assert b.loglik == pytest.approx(np.log(2.0) - 2.0 * np.log(4.0), rel=1e-12)
    assert b.se[0] == pytest.approx(np.sqrt(2.0), rel=1e-8)

    e = fit_cox(time, event, x, ties="efron", tol=1e-14)
    u = np.sqrt(6.0)
    p1, p2 = u / (2 + u), u / (3 + u)
    assert e.coef[0] == pytest.approx(0.5 * np.log(6.0), abs=1e-10)
    assert e.loglik_null == pytest.approx(-np.log(3.0) - np.log(2.0), rel=1e-14)
    assert e.loglik == pytest.approx(np.log(u) - np.log(2 + u) - np.log((3 + u) / 2), rel=1e-12)
    assert e.se[0] == pytest.approx(1.0 / np.sqrt(p1 * (1 - p1) + p2 * (1 - p2)), rel=1e-8)
    assert e.n_events == 3 and e.n_obs == 3


@pytest.mark.fixture
@pytest.mark.parametrize("ties", TIES)
def test_vectorised_terms_match_loop_definitions(ties):
    """Likelihood, score, information and score residuals at an arbitrary beta, heavy ties."""
    rng = np.random.default_rng(5)
    n = 80
    time = rng.integers(0, 8, n).astype(float)  # eight distinct times, ties of events and censorings
    event = (rng.random(n) < 0.7).astype(float)
    X = np.column_stack([rng.standard_normal(n), rng.integers(0, 2, n), rng.uniform(60, 80, n)])
    X = X - X.mean(axis=0)
    beta = np.array([0.3, -0.5, 0.05])
    st = _Sorted.build(time, event, X, ties)
    ll, U, info = st.evaluate(beta)
    resid = np.empty_like(X)
    resid[st.order] = st.score_residuals(beta)
    ll0, U0, info0, resid0 = naive_cox(time, event, X, beta, ties)
    assert ll == pytest.approx(ll0, rel=1e-12)
    np.testing.assert_allclose(U, U0, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(info, info0, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(resid, resid0, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(resid.sum(axis=0), U, atol=1e-10)


@pytest.mark.fixture
def test_invariance_to_row_order_labels_and_input_types(small):
    time, event, X, g = small
    fit = fit_cox(time, event, X, groups=g)
    perm = np.random.default_rng(0).permutation(len(time))
    df = pd.DataFrame(X[perm], columns=[f"c{j}" for j in range(X.shape[1])])
    labels = pd.Series(np.array([f"pair-{k:02d}" for k in g])[perm])
    fit2 = fit_cox(pd.Series(time[perm]), event[perm].astype(bool), df, groups=labels)
    assert fit2.names == tuple(df.columns)
    np.testing.assert_allclose(fit2.coef, fit.coef, rtol=1e-10)
    np.testing.assert_allclose(fit2.vcov, fit.vcov, rtol=1e-9)
    assert fit2.loglik == pytest.approx(fit.loglik, rel=1e-12)
    # shifting a covariate changes nothing (no intercept in a Cox model)
    fit3 = fit_cox(time, event, X + 1000.0, groups=g)
    np.testing.assert_allclose(fit3.coef, fit.coef, rtol=1e-8)


@pytest.mark.fixture
def test_result_is_frozen_read_only_and_tabulates(fits):
    fit = fits["efron", True]
    assert isinstance(fit, CoxFit)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.coef = None  # type: ignore[misc]
    with pytest.raises(ValueError):
        fit.coef[0] = 1.0
    tab = fit.coef_table()
    assert list(tab["term"]) == list(fit.names)
    np.testing.assert_allclose(tab["z"], fit.coef / fit.se)
    np.testing.assert_allclose(tab["ci_high"] - tab["ci_low"], 2 * 1.959963984540054 * fit.se)
    np.testing.assert_allclose(tab["hr"], np.exp(fit.coef))
    assert tab["p_value"].between(0, 1).all()
    with pytest.raises(ValueError, match="level"):
        fit.coef_table(level=1.5)


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


@pytest.fixture()
def tiny():
    rng = np.random.default_rng(1)
    n = 60
    time = rng.integers(1, 30, n).astype(float)
    event = (rng.random(n) < 0.7).astype(float)
    X = pd.DataFrame({"a": rng.standard_normal(n), "b": rng.integers(0, 2, n).astype(float)})
    return time, event, X


@pytest.mark.fixture
def test_bad_times_raise(tiny):
    time, event, X = tiny
    t = time.copy()
    t[[3, 7]] = -1.0
    with pytest.raises(DataError, match=r"time: 2 negative.*\[3, 7\]"):
        fit_cox(t, event, X)
    t = time.copy()
    t[5] = np.nan
    with pytest.raises(DataError, match=r"time: 1 missing or non-finite.*\[5\]"):
        fit_cox(t, event, X)
    with pytest.raises(DataError, match="time: expected a 1-D array of length 60"):
        fit_cox(time[:-1], event, X)


@pytest.mark.fixture
def test_bad_events_raise(tiny):
    time, event, X = tiny
    e = event.copy()
    e[2] = 2.0
    with pytest.raises(DataError, match=r"event: expected 0/1.*\[2\.0\].*\[2\]"):
        fit_cox(time, e, X)
    e = event.copy()
    e[4] = np.nan
    with pytest.raises(DataError, match="event: 1 missing"):
        fit_cox(time, e, X)
    with pytest.raises(DataError, match="no events"):
        fit_cox(time, np.zeros_like(event), X)


@pytest.mark.fixture
def test_bad_covariates_raise(tiny):
    time, event, X = tiny
    Xn = X.copy()
    Xn.loc[6, "b"] = np.nan
    with pytest.raises(DataError, match=r"X: 1 missing or non-finite values in column\(s\) \['b'\].*\[6\]"):
        fit_cox(time, event, Xn)
    with pytest.raises(DataError, match=r"\['const'\] are constant"):
        fit_cox(time, event, X.assign(const=1.0))
    with pytest.raises(DataError, match=r"rank 2 < 3.*\['c'\]"):
        fit_cox(time, event, X.assign(c=2.0 * X["a"] - X["b"] + 5.0))
    with pytest.raises(DataError, match="X: expected a numeric matrix"):
        fit_cox(time, event, X.assign(s="x"))


@pytest.mark.fixture
def test_bad_groups_and_options_raise(tiny):
    time, event, X = tiny
    g = np.arange(60) % 5
    with pytest.raises(DataError, match="groups: 1 missing labels"):
        fit_cox(time, event, X, groups=pd.Series(g).where(np.arange(60) != 9))
    with pytest.raises(DataError, match="at least two"):
        fit_cox(time, event, X, groups=np.zeros(60))
    with pytest.raises(DataError, match="groups: expected length 60"):
        fit_cox(time, event, X, groups=g[:50])
    with pytest.raises(ValueError, match=r"ties='exact' is not valid; expected one of 'efron', 'breslow'"):
        fit_cox(time, event, X, ties="exact")
    with pytest.raises(ValueError, match="max_iter"):
        fit_cox(time, event, X, max_iter=0)
    with pytest.raises(ValueError, match="tol"):
        fit_cox(time, event, X, tol=-1.0)
    with pytest.raises(ValueError, match="names has 1 entries"):
        fit_cox(time, event, X, names=["a"])


@pytest.mark.fixture
def test_non_convergence_warns(small):
    time, event, X, g = small
    with pytest.warns(CoxConvergenceWarning, match="did not converge in max_iter=1"):
        fit = fit_cox(time, event, X, groups=g, max_iter=1)
    assert not fit.converged and fit.n_iter == 1
    assert np.all(np.isfinite(fit.se))


@pytest.mark.fixture
def test_monotone_likelihood_warns():
    """All deaths among x = 1 before any x = 0 patient dies: the MLE of x is +infinity (R warns too)."""
    rng = np.random.default_rng(1)
    x = np.r_[np.ones(100), np.zeros(100)]
    time = np.r_[rng.integers(1, 50, 100), rng.integers(60, 100, 100)].astype(float)
    event = np.r_[np.ones(100), np.zeros(100)]
    X = np.column_stack([x, rng.standard_normal(200)])
    with pytest.warns(CoxConvergenceWarning, match=r"before coefficient\(s\) \['x'\]"):
        fit = fit_cox(time, event, X, names=["x", "z"])
    assert fit.coef[0] > 15.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_cox(time, event, X[:, [1]])  # no warning for a finite MLE


# ---------------------------------------------------------------------------
# Simulation: recovery of a known truth
# ---------------------------------------------------------------------------


@pytest.mark.simulation
def test_recovers_weibull_truth_and_efron_beats_breslow_with_coarse_ties():
    """20,000 patients; times in whole days, then in 30-day months (30 distinct times).

    Days: both approximations recover beta (|z| < 4). Months: Efron still does,
    while Breslow is attenuated towards 0 (Breslow's known bias with heavy ties).
    """
    beta = np.array([0.5, -0.3, 0.2, 0.7])
    time, event, X, _ = simulate_weibull(np.random.default_rng(7), 20_000, beta)
    for ties in TIES:
        fit = fit_cox(time, event, X, ties=ties)
        assert np.all(np.abs((fit.coef - beta) / fit.se) < 4.0)
    time, event, X, _ = simulate_weibull(np.random.default_rng(8), 20_000, beta, unit=30.0)
    assert np.unique(time).size <= 31
    efron = fit_cox(time, event, X, ties="efron")
    breslow = fit_cox(time, event, X, ties="breslow")
    assert np.all(np.abs((efron.coef - beta) / efron.se) < 4.0)
    assert np.all(np.abs(breslow.coef) < np.abs(efron.coef))
    assert np.abs((breslow.coef[3] - beta[3]) / breslow.se[3]) > 4.0


@pytest.mark.simulation
def test_bias_and_coverage_over_replications():
    """200 seeded replications of 600 patients in 30 (independent) clusters, Efron ties.

    The mean estimate is within 4 Monte Carlo SEs plus 0.02 of beta (the Cox
    MLE has an O(1/n) bias away from 0), and the 95% Wald intervals with the
    model-based and the robust variance cover in 88-99% of replications.
    """
    beta = np.array([0.5, -0.3, 0.2, 0.7])
    rng = np.random.default_rng(11)
    est, cover_model, cover_robust = [], [], []
    for _ in range(200):
        time, event, X, g = simulate_weibull(rng, 600, beta, n_clusters=30)
        fit = fit_cox(time, event, X, groups=g)
        est.append(fit.coef)
        cover_model.append(np.abs(fit.coef - beta) < 1.96 * np.sqrt(np.diag(fit.vcov_model)))
        cover_robust.append(np.abs(fit.coef - beta) < 1.96 * fit.se)
    est = np.array(est)
    mc_se = est.std(axis=0, ddof=1) / np.sqrt(len(est))
    assert np.all(np.abs(est.mean(axis=0) - beta) < 4 * mc_se + 0.02)
    for cover in (np.mean(cover_model, axis=0), np.mean(cover_robust, axis=0)):
        assert np.all((cover > 0.88) & (cover < 0.99)), cover
