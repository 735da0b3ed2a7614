"""Tests for rp2pr_eval.inference.variance (cluster-robust variance for linear models).

Reference values come from ``tests/reference/variance.R`` (R clubSandwich and
sandwich) run on ``tests/reference/data/variance_data.csv``; the JSON with their
provenance is committed, so R is not needed here.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from rp2pr_eval.errors import DataError
from rp2pr_eval.models.linear import (
    LinearFit,
    cluster_vcov,
    satterthwaite_df,
    wald_test,
    wls,
)

REF_DIR = Path(__file__).parent / "reference"
COEF_ATOL = 1e-8
RTOL = 1e-6


# --------------------------------------------------------------------------- helpers
@functools.cache
def _data() -> pd.DataFrame:
    return pd.read_csv(REF_DIR / "data" / "variance_data.csv")


@functools.cache
def _ref() -> dict:
    with open(REF_DIR / "variance_reference.json") as fh:
        return json.load(fh)


def _design(model: str) -> pd.DataFrame:
    """The model matrix R's lm builds (factor levels sorted, first level the reference)."""
    d = _data()
    parts = [pd.Series(1.0, index=d.index, name="(Intercept)")]
    if model.startswith("fe"):
        parts.append(d[["post", "tp", "x"]].astype(float))
        dummies = pd.get_dummies(d["cluster"], prefix="factor(cluster)", prefix_sep="", dtype=float)
        parts.append(dummies.iloc[:, 1:])
    else:
        parts.append(d[["treated", "post", "tp", "x"]].astype(float))
    return pd.concat(parts, axis=1)


def _fit(model: str, vcov: str, *, working_model: str = "identity", clustered: bool = True) -> LinearFit:
    d = _data()
    m = _ref()["models"][model]
    return wls(_design(model), d["y"], weights=d["w"] if m["weighted"] else None,
               cluster=d["cluster"] if clustered else None, vcov=vcov, working_model=working_model)


def _close(actual, desired, rtol=RTOL):
    """Relative agreement, with an absolute floor for entries that are ~0 relative to the array."""
    desired = np.asarray(desired, dtype=float)
    atol = rtol * 1e-6 * np.max(np.abs(desired))
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol)


def _as_float(v):
    return np.inf if v == "Inf" else float(v)


# (model, our vcov, our working model, key of the R matrix)
CASES = [
    (model, vcov, wm, key)
    for model in ("ols", "wls", "fe_ols", "fe_wls")
    for vcov, wm, key in (("CR1", "identity", "CR1S"), ("CR2", "identity", "CR2"),
                          ("CR3", "identity", "CR3"), ("CR2", "inverse_weights", "CR2_inverse_var"))
    if key in _ref()["models"][model]
]


# --------------------------------------------------------------------------- reference (R)
@pytest.mark.reference
@pytest.mark.parametrize(("model", "vcov", "wm", "key"), CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_vcov_matches_clubsandwich(model, vcov, wm, key):
    """R: vcovCR(fit, cluster = dat$cluster, type = "CR1S" | "CR2" | "CR3"[, inverse_var = TRUE])."""
    m = _ref()["models"][model]
    fit = _fit(model, vcov, working_model=wm)
    assert fit.names == tuple(m["names"])
    np.testing.assert_allclose(fit.coef, m["coef"], rtol=0, atol=COEF_ATOL)
    np.testing.assert_allclose(fit.resid, m["resid"], rtol=0, atol=COEF_ATOL)
    _close(fit.vcov, m[key])
    assert fit.n_clusters == _ref()["n_clusters"] == 30
    assert fit.n_obs == _ref()["n"] == 120


@pytest.mark.reference
@pytest.mark.parametrize(("model", "wm", "key"), [
    ("ols", "identity", "CR2_satterthwaite"), ("wls", "identity", "CR2_satterthwaite"),
    ("wls", "inverse_weights", "CR2_inverse_var_satterthwaite"),
    ("fe_ols", "identity", "CR2_satterthwaite"), ("fe_wls", "identity", "CR2_satterthwaite"),
    ("fe_wls", "inverse_weights", "CR2_inverse_var_satterthwaite"),
])
def test_satterthwaite_matches_coef_test(model, wm, key):
    """R: coef_test(fit, vcov = vcovCR(fit, cluster, type = "CR2"), test = "Satterthwaite")."""
    ref = _ref()["models"][model][key]
    fit = _fit(model, "CR2", working_model=wm)
    _close(fit.se, ref["se"])
    _close(fit.df, ref["df"])
    _close(satterthwaite_df(fit), ref["df"])
    _close([fit.t_test(i)["p_value"] for i in range(len(fit.names))], ref["p"])


@pytest.mark.reference
@pytest.mark.parametrize(("model", "vcov", "wm", "key"), CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES])
@pytest.mark.parametrize(("test", "rkey"), [("HTZ", "HTZ"), ("chi-sq", "chi-sq"), ("naive-F", "Naive-F")])
def test_wald_matches_wald_test(model, vcov, wm, key, test, rkey):
    """R: Wald_test(fit, constraints = C, vcov = V, test = "HTZ" | "chi-sq" | "Naive-F").

    C selects tp and x.
    """
    ref = _ref()["models"][model]["wald"][key][rkey]
    fit = _fit(model, vcov, working_model=wm)
    res = wald_test(fit, ["tp", "x"], test=test)
    assert res.df_num == ref["df_num"] == 2
    _close(res.statistic, ref["F"])
    _close(res.delta, ref["delta"])
    _close(res.df_den, _as_float(ref["df_den"]))
    _close(res.p_value, ref["p"])


@pytest.mark.reference
@pytest.mark.parametrize("model", ["ols", "wls", "fe_ols", "fe_wls"])
def test_cr1_matches_sandwich_vcovcl(model):
    """R: sandwich::vcovCL(fit, cluster = ~cluster, type = "HC1") (Stata's default factor)."""
    fit = _fit(model, "CR1")
    _close(fit.vcov, _ref()["models"][model]["vcovCL_HC1"])
    np.testing.assert_array_equal(fit.df, 29.0)


HC_CASES = [
    (model, vcov, wm, key)
    for model in ("ols", "wls")
    for vcov, wm, key in (
        ("CR1", "identity", "CR1S"), ("CR2", "identity", "CR2"), ("CR3", "identity", "CR3"),
        ("CR1", "identity", "vcovHC_HC1"), ("CR2", "inverse_weights", "vcovHC_HC2"),
        ("CR3", "identity", "vcovHC_HC3"), ("CR2", "inverse_weights", "CR2_inverse_var"))
    if key in _ref()["models"][model]["HC"]
]


@pytest.mark.reference
@pytest.mark.parametrize(("model", "vcov", "wm", "key"), HC_CASES, ids=[f"{c[0]}-{c[3]}" for c in HC_CASES])
def test_unclustered_matches_hc(model, vcov, wm, key):
    """cluster=None: R vcovCR(fit, cluster = row, type = ...) and sandwich::vcovHC(fit, type = ...)."""
    ref = _ref()["models"][model]["HC"]
    fit = _fit(model, vcov, working_model=wm, clustered=False)
    _close(fit.vcov, ref[key])
    assert fit.n_clusters is None
    if vcov == "CR2" and wm == "identity":
        _close(fit.df, ref["CR2_satterthwaite"]["df"])
    elif vcov != "CR2":
        np.testing.assert_array_equal(fit.df, 120 - 5)


@pytest.mark.reference
def test_reference_provenance():
    prov = _ref()["provenance"]
    assert prov["script"] == "tests/reference/variance.R"
    assert prov["packages"]["clubSandwich"] == "0.5.8"
    assert prov["R"].startswith("R version")


# --------------------------------------------------------------------------- fixtures
# Intercept only, G = 4 clusters of 2: mean 5, residual cluster sums -6, -2, 0, 8, so
# CR0 = 104 / 8^2 = 13/8. With equal clusters CR1 = CR2 = G/(G-1) CR0 = 13/6 (K = 1),
# CR3 = (G/(G-1))^2 CR0 = 26/9, and the CR2 Satterthwaite df is exactly G - 1 = 3.
Y_SMALL = np.array([1.0, 3.0, 2.0, 6.0, 5.0, 5.0, 8.0, 10.0])
CL_SMALL = np.array(["a", "a", "b", "b", "c", "c", "d", "d"])


@pytest.mark.fixture
@pytest.mark.parametrize(("vcov", "var"), [("CR1", 13 / 6), ("CR2", 13 / 6), ("CR3", 26 / 9)])
def test_intercept_only_by_hand(vcov, var):
    fit = wls(np.ones((8, 1)), Y_SMALL, cluster=CL_SMALL, vcov=vcov, names=["mean"])
    assert fit.coef[0] == pytest.approx(5.0, abs=1e-12)
    assert fit.vcov[0, 0] == pytest.approx(var, rel=1e-12)
    assert fit.df[0] == pytest.approx(3.0, rel=1e-10)
    t = fit.t_test("mean", h0=1.0)
    se = np.sqrt(var)
    assert t["t"] == pytest.approx(4.0 / se, rel=1e-12)
    assert t["p_value"] == pytest.approx(2 * stats.t.sf(4.0 / se, 3), rel=1e-10)
    assert t["ci_low"] == pytest.approx(5.0 - 3.182446305284263 * se, rel=1e-10)
    assert t["ci_high"] == pytest.approx(5.0 + 3.182446305284263 * se, rel=1e-10)


@pytest.mark.fixture
@pytest.mark.parametrize(("vcov", "var_treated"), [("CR1", 7 / 3), ("CR2", 2.0)])
def test_saturated_did_by_hand(vcov, var_treated):
    """Four clusters (two treated), one pre and one post row each; saturated model.

    Treated pre (2, 4) post (7, 9): +5; control pre (1, 3) post (2, 4): +1; DiD = 4.
    Residuals (y minus cell mean) are (-1, -1), (1, 1), (-1, -1), (1, 1) by cluster, so
    the cluster scores of post and tp, (e_post - e_pre)/2, are all 0 (variance 0), and
    those of treated, ±e_pre/2, are ±1/2: CR0 = 4/4 = 1. CR1 multiplies by
    G/(G-1)·(N-1)/(N-K) = 4/3·7/4 = 7/3. For CR2 every row has leverage 1/2 and no
    cross-leverage within its cluster, so A_j = sqrt(2)·I and CR2 = 2·CR0 = 2.
    """
    y = np.array([2.0, 7.0, 4.0, 9.0, 1.0, 2.0, 3.0, 4.0])
    treated = np.array([1, 1, 1, 1, 0, 0, 0, 0.0])
    post = np.array([0, 1, 0, 1, 0, 1, 0, 1.0])
    X = np.column_stack([np.ones(8), treated, post, treated * post])
    fit = wls(X, y, cluster=[1, 1, 2, 2, 3, 3, 4, 4], vcov=vcov, names=["const", "treated", "post", "tp"])
    np.testing.assert_allclose(fit.coef, [2.0, 1.0, 1.0, 4.0], atol=1e-12)
    np.testing.assert_allclose(fit.resid, [-1, -1, 1, 1, -1, -1, 1, 1], atol=1e-12)
    assert fit.vcov[1, 1] == pytest.approx(var_treated, rel=1e-12)
    np.testing.assert_allclose(fit.vcov[[2, 3], [2, 3]], 0.0, atol=1e-24)
    assert fit.to_frame().loc[3, "estimate"] == pytest.approx(4.0)


@pytest.mark.fixture
def test_cr3_is_leave_one_cluster_out_jackknife():
    """CR3 = sum_j (b_(j) - b)(b_(j) - b)' with no (G-1)/G factor (clubSandwich convention)."""
    d = _data()
    X, y, w = _design("wls").to_numpy(), d["y"].to_numpy(), d["w"].to_numpy()
    fit = wls(X, y, weights=w, cluster=d["cluster"], vcov="CR3")
    dev = []
    for label in d["cluster"].unique():
        keep = (d["cluster"] != label).to_numpy()
        sw = np.sqrt(w[keep])
        b = np.linalg.lstsq(X[keep] * sw[:, None], y[keep] * sw, rcond=None)[0]
        dev.append(b - fit.coef)
    dev = np.array(dev)
    np.testing.assert_allclose(fit.vcov, dev.T @ dev, rtol=1e-9)
    centred = dev - dev.mean(axis=0)
    classic = (len(dev) - 1) / len(dev) * centred.T @ centred
    assert not np.allclose(fit.vcov, classic, rtol=1e-3)


@pytest.mark.fixture
def test_htz_with_one_constraint_is_satterthwaite_t():
    fit = _fit("wls", "CR2")
    t = fit.t_test("tp")
    res = wald_test(fit, [0, 0, 0, 1, 0])
    assert res.statistic == pytest.approx(t["t"] ** 2, rel=1e-12)
    assert res.df_den == pytest.approx(t["df"], rel=1e-10)
    assert res.p_value == pytest.approx(t["p_value"], rel=1e-9)
    assert res.delta == pytest.approx(1.0)


@pytest.mark.fixture
@pytest.mark.parametrize("vcov", ["CR1", "CR2", "CR3"])
def test_invariant_to_weight_scale_row_order_and_labels(vcov):
    d = _data()
    X, y, w, cl = _design("wls"), d["y"], d["w"], d["cluster"]
    base = wls(X, y, weights=w, cluster=cl, vcov=vcov)
    perm = np.random.default_rng(3).permutation(len(d))
    codes = pd.factorize(cl)[0] * 7 + 100  # integer labels instead of strings
    other = wls(X.iloc[perm], y.iloc[perm], weights=w.iloc[perm] * 0.037, cluster=codes[perm], vcov=vcov)
    np.testing.assert_allclose(other.coef, base.coef, rtol=1e-10)
    np.testing.assert_allclose(other.vcov, base.vcov, rtol=1e-9)
    np.testing.assert_allclose(other.df, base.df, rtol=1e-9)


@pytest.mark.fixture
def test_unweighted_working_models_coincide_and_cluster_vcov_agrees():
    d = _data()
    X, y, cl = _design("ols"), d["y"], d["cluster"]
    a = wls(X, y, cluster=cl, vcov="CR2")
    b = wls(X, y, cluster=cl, vcov="CR2", working_model="inverse_weights")
    np.testing.assert_allclose(a.vcov, b.vcov, rtol=1e-12)
    np.testing.assert_allclose(a.df, b.df, rtol=1e-10)
    np.testing.assert_allclose(cluster_vcov(X, a.resid, cluster=cl, vcov="CR2"), a.vcov, rtol=1e-12)
    both = satterthwaite_df(a, [[0, 1, 0, 0, 0], [0, 0, 0, 1, 0]])
    np.testing.assert_allclose(both, a.df[[1, 3]], rtol=1e-12)
    assert not a.vcov.flags.writeable


@pytest.mark.fixture
@pytest.mark.parametrize("model", ["wls", "fe_wls"])
@pytest.mark.parametrize("clustered", [True, False])
def test_df_terms_give_the_full_computations_df_bit_for_bit(model, clustered):
    """wls(df_terms=...) computes the Satterthwaite df of those coefficients only, each the same float as
    with all df computed (single terms, several, the last; unclustered: chunks of the G×G arrays)."""
    d = _data()
    X, y, w = _design(model), d["y"], d["w"]
    cl = d["cluster"] if clustered else None
    full = wls(X, y, weights=w, cluster=cl, vcov="CR2")
    names = list(full.names)
    for terms in ([names[1]], [names[-1]], names[:3], [names[2], names[0]]):
        part = wls(X, y, weights=w, cluster=cl, vcov="CR2", df_terms=terms)
        for term in terms:
            assert part.t_test(term) == full.t_test(term)  # every float equal, not just close
        assert part._df is None  # the other coefficients' df are not computed ...
        assert part.df.tobytes() == full.df.tobytes()  # ... until df is read, then all of them
        assert not part.df.flags.writeable
    one = wls(X, y, weights=w, cluster=cl, vcov="CR1", df_terms=[names[1]])  # CR1: df G - 1, as always
    np.testing.assert_array_equal(one.df, wls(X, y, weights=w, cluster=cl, vcov="CR1").df)


@pytest.mark.fixture
def test_df_terms_rejects_unknown_coefficients():
    d = _data()
    with pytest.raises(ValueError, match=r"df_terms: unknown coefficient\(s\) \['tpx'\]"):
        wls(_design("wls"), d["y"], cluster=d["cluster"], vcov="CR2", df_terms=["tp", "tpx"])


# --------------------------------------------------------------------------- equivalence
@pytest.mark.equivalence
@pytest.mark.parametrize("weighted", [False, True])
def test_cr1_equals_statsmodels_cluster(weighted):
    d = _data()
    X, y = _design("ols").to_numpy(), d["y"].to_numpy()
    groups = pd.factorize(d["cluster"])[0]
    if weighted:
        res = sm.WLS(y, X, weights=d["w"].to_numpy()).fit(cov_type="cluster", cov_kwds={"groups": groups})
    else:
        res = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": groups})
    fit = wls(X, y, weights=d["w"] if weighted else None, cluster=d["cluster"], vcov="CR1")
    np.testing.assert_allclose(fit.coef, res.params, rtol=1e-10)
    np.testing.assert_allclose(fit.vcov, res.cov_params(), rtol=1e-9)


@pytest.mark.equivalence
@pytest.mark.parametrize(("vcov", "wm", "sm_type"), [
    ("CR1", "identity", "HC1"), ("CR2", "inverse_weights", "HC2"), ("CR3", "identity", "HC3"),
])
@pytest.mark.parametrize("weighted", [False, True])
def test_unclustered_equals_statsmodels_hc(vcov, wm, sm_type, weighted):
    d = _data()
    X, y = _design("ols").to_numpy(), d["y"].to_numpy()
    model = sm.WLS(y, X, weights=d["w"].to_numpy()) if weighted else sm.OLS(y, X)
    res = model.fit(cov_type=sm_type)
    fit = wls(X, y, weights=d["w"] if weighted else None, vcov=vcov, working_model=wm)
    np.testing.assert_allclose(fit.vcov, res.cov_params(), rtol=1e-9)


# --------------------------------------------------------------------------- input checks
def _xy(n=12):
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    return X, rng.normal(size=n), np.repeat(np.arange(n // 2), 2)


def test_rejects_one_dimensional_x():
    X, y, cl = _xy()
    with pytest.raises(DataError, match="2-dimensional"):
        wls(X[:, 1], y, cluster=cl)


def test_rejects_non_numeric_x():
    X, y, cl = _xy()
    with pytest.raises(DataError, match="numeric"):
        wls(pd.DataFrame({"a": ["u"] * 12, "b": X[:, 1]}), y, cluster=cl)


def test_rejects_y_of_wrong_length():
    X, y, cl = _xy()
    with pytest.raises(DataError, match=r"y must have shape \(12,\)"):
        wls(X, y[:-1], cluster=cl)


def test_rejects_nan_in_x_and_names_column():
    X, y, cl = _xy()
    X[3, 1] = np.nan
    with pytest.raises(DataError, match=r"X contains NaN.*\[3\].*'slope'"):
        wls(X, y, cluster=cl, names=["const", "slope"])


def test_rejects_inf_in_y():
    X, y, cl = _xy()
    y[5] = np.inf
    with pytest.raises(DataError, match=r"y contains NaN or infinite values.*\[5\]"):
        wls(X, y, cluster=cl)


def test_rejects_nan_weights():
    X, y, cl = _xy()
    w = np.ones(12)
    w[0] = np.nan
    with pytest.raises(DataError, match="weights contains NaN"):
        wls(X, y, weights=w, cluster=cl)


def test_rejects_non_positive_weights():
    X, y, cl = _xy()
    w = np.ones(12)
    w[[2, 7]] = [0.0, -1.0]
    with pytest.raises(DataError, match=r"weights must be positive; 2 are not.*\[2, 7\]"):
        wls(X, y, weights=w, cluster=cl)


def test_rejects_cluster_of_wrong_length():
    X, y, cl = _xy()
    with pytest.raises(DataError, match=r"cluster must have shape \(12,\)"):
        wls(X, y, cluster=cl[:-1])


def test_rejects_missing_cluster_labels():
    X, y, _ = _xy()
    cl = ["a", "b", None, "c"] * 3
    with pytest.raises(DataError, match="cluster has 3 missing"):
        wls(X, y, cluster=cl)


def test_rejects_single_cluster():
    X, y, _ = _xy()
    with pytest.raises(DataError, match="at least 2 clusters; got 1"):
        wls(X, y, cluster=np.zeros(12))


def test_rejects_rank_deficient_x_naming_collinear_columns():
    X, y, cl = _xy()
    X = np.column_stack([X, 2 * X[:, 1] - 3, np.arange(12.0)])
    with pytest.raises(DataError, match=r"rank deficient \(rank 3 < 4.*\['const', 'dose', 'dose_mg'\]"):
        wls(X, y, cluster=cl, names=["const", "dose", "dose_mg", "time"])


def test_rejects_too_few_observations():
    X, y, cl = _xy(4)
    X = np.column_stack([X, X[:, 1] ** 2, X[:, 1] ** 3])
    with pytest.raises(DataError, match="more observations than columns"):
        wls(X, y, cluster=cl)


def test_rejects_unknown_vcov():
    X, y, cl = _xy()
    expected = r"vcov='HC2' is not valid; expected one of 'CR1', 'CR2', 'CR3'"
    with pytest.raises(ValueError, match=expected) as exc:
        wls(X, y, cluster=cl, vcov="HC2")
    assert not isinstance(exc.value, DataError)


def test_rejects_unknown_working_model():
    X, y, cl = _xy()
    with pytest.raises(ValueError, match="working_model='ar1' is not valid"):
        wls(X, y, cluster=cl, working_model="ar1")


def test_rejects_names_of_wrong_length():
    X, y, cl = _xy()
    with pytest.raises(ValueError, match="names has 1 entries but X has 2 columns"):
        wls(X, y, cluster=cl, names=["const"])


def test_cr3_undefined_with_cluster_fixed_effects():
    with pytest.raises(DataError, match="CR3.*undefined.*deleting cluster"):
        _fit("fe_ols", "CR3")


def test_wald_rejects_bad_constraints():
    fit = _fit("ols", "CR2")
    with pytest.raises(ValueError, match="test='F' is not valid"):
        wald_test(fit, ["tp"], test="F")
    with pytest.raises(ValueError, match=r"R must have shape \(q, 5\)"):
        wald_test(fit, np.ones((1, 3)))
    with pytest.raises(ValueError, match="unknown coefficient"):
        wald_test(fit, ["tp", "nope"])
    with pytest.raises(ValueError, match="linearly dependent"):
        wald_test(fit, [[0, 0, 0, 1, 0], [0, 0, 0, 2, 0]])


def test_t_test_rejects_bad_level_and_name():
    fit = _fit("ols", "CR1")
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\)"):
        fit.t_test("tp", level=95)
    with pytest.raises(ValueError, match="unknown coefficient 'tpp'"):
        fit.t_test("tpp")


# --------------------------------------------------------------------------- simulation
@pytest.mark.simulation
def test_cr2_satterthwaite_coverage_and_naive_undercoverage():
    """40 clusters, 15 treated : 25 control, cluster-level treatment, ICC 0.3.

    CR2 + Satterthwaite 95% intervals cover the treatment effect 93-97% of the time;
    CR1 with each row its own cluster (ignoring the clustering: HC1) under-covers.
    """
    rng = np.random.default_rng(20240611)
    G, reps, tau, icc = 40, 1500, 0.5, 0.3
    sizes = rng.integers(4, 13, size=G)
    treat = np.zeros(G)
    treat[rng.permutation(G)[:15]] = 1.0
    cl = np.repeat(np.arange(G), sizes)
    n = cl.size
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), treat[cl], x])
    U = rng.normal(scale=np.sqrt(icc), size=(reps, G))
    Y = 1.0 + tau * treat[cl] + 0.5 * x + U[:, cl] + rng.normal(scale=np.sqrt(1 - icc), size=(reps, n))
    out = {"CR2": [], "HC1": []}
    for y in Y:
        f = wls(X, y, cluster=cl, vcov="CR2")
        out["CR2"].append((f.coef[1], f.se[1], f.df[1]))
        f = wls(X, y, cluster=None, vcov="CR1")
        out["HC1"].append((f.coef[1], f.se[1], f.df[1]))
    coverage = {}
    for key, rows in out.items():
        b, se, df = np.array(rows).T
        coverage[key] = float(np.mean(np.abs(b - tau) <= stats.t.ppf(0.975, df) * se))
    assert 0.93 <= coverage["CR2"] <= 0.97, coverage
    assert coverage["HC1"] < 0.85, coverage
    assert np.mean(np.array(out["CR2"])[:, 2]) < G - 1  # Satterthwaite df below G - 1 (15:25 imbalance)
