"""rp2pr_eval.models reproduces published results on public datasets, from its public entry points.

Every reference number comes from an R script in tests/reference/ (the call is quoted in each test)
whose data and output are committed, so pytest needs no R. Tolerances are stated per test.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rp2pr_eval import models
from rp2pr_eval.errors import DataError
from tests.conftest import ROOT

pytestmark = pytest.mark.reference

REF = ROOT / "tests" / "reference"
DATA = REF / "data"


def _ref(name: str) -> dict:
    return json.loads((REF / name).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- cluster_ols
MV_FORMULA = "mrate ~ 0 + legal + beertaxa + C(state) + C(year)"


@pytest.fixture(scope="module")
def mv_deaths():
    mv = pd.read_csv(DATA / "mv_deaths.csv")
    return mv.assign(w=mv["pop"] / mv["pop"].mean())


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("vcov", ["CR1", "CR2"])
def test_cluster_ols_reproduces_clubsandwich_mortality_rates(mv_deaths, weighted, vcov):
    """clubSandwich panel-data vignette: ``coef_test(lm(mrate ~ 0 + legal + beertaxa + factor(state) +
    factor(year) [, weights = pop]), vcov = "CR2" | "CR1S", cluster = state, test = "Satterthwaite" |
    "naive-t")``. Tolerance 1e-10 relative on estimates, SEs, df and p-values."""
    ref = _ref("models_linear_reference.json")["weighted" if weighted else "unweighted"][vcov]
    res = models.cluster_ols(MV_FORMULA, mv_deaths, cluster="state", weights="w" if weighted else None, vcov=vcov)
    terms = ["legal", "beertaxa"]
    np.testing.assert_allclose(res.params[terms], ref["estimate"], rtol=1e-10)
    np.testing.assert_allclose(res.bse[terms], ref["se"], rtol=1e-10)
    np.testing.assert_allclose(res.df[terms], ref["df"], rtol=1e-10)
    np.testing.assert_allclose(res.pvalues[terms], ref["p"], rtol=1e-8)
    assert res.nobs == len(mv_deaths) and res.n_groups == 50


@pytest.mark.parametrize("weighted", [False, True])
def test_cluster_ols_htz_wald_test_matches_clubsandwich(mv_deaths, weighted):
    """``Wald_test(fit, constraints = constrain_zero(c("legal", "beertaxa")), vcov = "CR2", test = "HTZ")``;
    weights pop / mean(pop) (clubSandwich's HTZ is not scale-invariant in the weights, see the R script).
    Tolerance 1e-9 relative."""
    ref = _ref("models_linear_reference.json")["weighted" if weighted else "unweighted"]["wald_HTZ"]
    res = models.cluster_ols(MV_FORMULA, mv_deaths, cluster="state", weights="w" if weighted else None)
    wt = models.wald_test(res, ["legal", "beertaxa"], test="HTZ")
    np.testing.assert_allclose([wt.statistic, wt.df_den, wt.p_value], [ref["Fstat"], ref["df_denom"], ref["p"]],
                               rtol=1e-9)


@pytest.mark.parametrize("vcov", ["CR1", "CR2", "CR3"])
def test_cluster_ols_cr3_on_the_pooled_model(mv_deaths, vcov):
    """``coef_test(lm(mrate ~ legal + beertaxa + factor(year)), vcov = "CR3" | ..., cluster = state)``; 1e-10."""
    ref = _ref("models_linear_reference.json")["pooled"][vcov]
    res = models.cluster_ols("mrate ~ legal + beertaxa + C(year)", mv_deaths, cluster="state", vcov=vcov)
    np.testing.assert_allclose(res.bse[["legal", "beertaxa"]], ref["se"], rtol=1e-10)
    np.testing.assert_allclose(res.pvalues[["legal", "beertaxa"]], ref["p"], rtol=1e-8)


def test_cluster_ols_cr3_with_state_effects_is_refused_as_in_clubsandwich(mv_deaths):
    """clubSandwich stops (singular system) for CR3 with state fixed effects; so does cluster_ols, in words."""
    with pytest.raises(DataError, match="CR3"):
        models.cluster_ols(MV_FORMULA, mv_deaths, cluster="state", vcov="CR3")


@pytest.mark.parametrize("vcov", ["HC1", "HC2", "HC3"])
def test_cluster_ols_hc_matches_sandwich_vcovhc(vcov):
    """``sandwich::vcovHC(lm(mpg ~ wt + hp, mtcars), type = "HC1" | "HC2" | "HC3")``; 1e-10 relative."""
    ref = _ref("models_linear_reference.json")["mtcars"]["hc"][vcov]
    res = models.cluster_ols("mpg ~ wt + hp", pd.read_csv(DATA / "mtcars.csv"), vcov=vcov)
    assert list(res.params.index) == ["Intercept", "wt", "hp"]
    np.testing.assert_allclose(res.params, ref["estimate"], rtol=1e-10)
    np.testing.assert_allclose(res.bse, ref["se"], rtol=1e-10)
    assert (res.df == 32 - 3).all()


def test_cluster_ols_arrays_equal_formula(mv_deaths):
    """The array path gives the formula path's numbers (same engine), with the given names."""
    a = models.cluster_ols("mrate ~ legal + beertaxa", mv_deaths, cluster="state")
    X = np.column_stack([np.ones(len(mv_deaths)), mv_deaths["legal"], mv_deaths["beertaxa"]])
    b = models.cluster_ols(mv_deaths["mrate"].to_numpy(), X, cluster=mv_deaths["state"].to_numpy(),
                           names=["Intercept", "legal", "beertaxa"])
    pd.testing.assert_series_equal(a.bse, b.bse)
    assert a.formula == "mrate ~ legal + beertaxa" and b.formula is None


def test_result_shape_and_rendering(mv_deaths):
    res = models.cluster_ols("mrate ~ legal + beertaxa", mv_deaths, cluster="state", vcov="CR2")
    frame = res.to_frame()
    assert list(frame.columns) == ["term", "estimate", "se", "statistic", "df", "p_value", "ci_low", "ci_high"]
    ci = res.conf_int(0.9)
    assert (ci["ci_low"] < res.params).all() and (res.params < ci["ci_high"]).all()
    assert res.cov_params.loc["legal", "legal"] == pytest.approx(res.bse["legal"] ** 2)
    text = res.summary()
    assert text.startswith("cluster_ols: mrate ~ legal + beertaxa") and "beertaxa" in text
    assert res.summary("html").startswith("<p><b>cluster_ols")
    assert "\\begin{tabular}" in res.summary("latex")
    with pytest.raises(ValueError, match="fmt="):
        res.summary("pdf")
    with pytest.raises(AttributeError):
        res.nobs = 3  # frozen


def test_cluster_ols_bad_inputs_say_what_is_wrong(mv_deaths):
    with pytest.raises(ValueError, match="vcov='CR9' is not valid"):
        models.cluster_ols("mrate ~ legal", mv_deaths, cluster="state", vcov="CR9")
    with pytest.raises(ValueError, match="needs cluster="):
        models.cluster_ols("mrate ~ legal", mv_deaths, vcov="CR2")
    with pytest.raises(DataError, match="'nope' is not a column"):
        models.cluster_ols("mrate ~ legal", mv_deaths, cluster="nope")
    with pytest.raises(DataError, match="cannot evaluate the formula"):
        models.cluster_ols("mrate ~ no_such_column", mv_deaths, cluster="state")
    with pytest.raises(ValueError, match="has no response"):
        models.cluster_ols("~ legal", mv_deaths, cluster="state")


def test_missing_values_are_left_out_and_counted(mv_deaths):
    data = mv_deaths.copy()
    data.loc[data.index[:3], "beertaxa"] = np.nan
    data.loc[data.index[5], "state"] = np.nan
    res = models.cluster_ols("mrate ~ legal + beertaxa", data, cluster="state")
    assert res.nobs == len(data) - 4 and res.info["n_dropped"] == 4
