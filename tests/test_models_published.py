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


# --------------------------------------------------------------------------- glmm_logit
@pytest.fixture(scope="module")
def cbpp():
    return pd.read_csv(DATA / "cbpp.csv", dtype={"herd": str, "period": str})


@pytest.mark.parametrize(("n_quad", "key"), [(1, "nAGQ1"), (25, "nAGQ25")])
def test_glmm_logit_reproduces_lme4_cbpp(cbpp, n_quad, key):
    """``glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), family = binomial, cbpp,
    nAGQ = 1 | 25)`` (lme4's documented example; tests/reference/glmm.R). Tolerance 1e-5 absolute on
    the fixed effects, SEs and herd SD (lme4's own optimiser tolerance is ~1e-5: its default control
    moves the Laplace fit by 6e-4)."""
    ref = _ref("glmm_reference.json")["cbpp"][key]
    res = models.glmm_logit("incidence ~ period", data=cbpp, groups="herd", trials="size", n_quad=n_quad)
    assert list(res.params.index) == ["Intercept", "period[T.2]", "period[T.3]", "period[T.4]"]
    np.testing.assert_allclose(res.params, list(ref["fixef"].values()), atol=1e-5)
    np.testing.assert_allclose(res.bse, list(ref["se"].values()), atol=1e-5)
    assert res.random_sd == {"herd": pytest.approx(ref["re_sd"], abs=1e-5)}
    assert res.nobs == 56 and res.n_groups == 15 and np.isinf(res.df).all()


def test_glmm_logit_one_grouping_term_for_now(cbpp):
    with pytest.raises(ValueError, match="one grouping term is supported"):
        models.glmm_logit("incidence ~ period", data=cbpp, groups=["herd", "period"], trials="size")


# --------------------------------------------------------------------------- lmm
@pytest.mark.parametrize("reml", [True, False])
def test_lmm_reproduces_lme4_sleepstudy_random_slopes(reml):
    """``lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = TRUE | FALSE)`` (Bates et al. 2015,
    section 1; tests/reference/models_mixed.R). Tolerances: fixed effects 1e-8 relative; SEs 1e-5 and
    SDs and correlation 1e-4 relative (statsmodels' optimiser stops where the likelihood is flat to
    1e-9: the log-likelihoods agree to 1e-8)."""
    ref = _ref("models_mixed_reference.json")["REML" if reml else "ML"]
    ss = pd.read_csv(DATA / "lmm_sleepstudy.csv", dtype={"Subject": str})
    res = models.lmm("Reaction ~ Days", data=ss, groups="Subject", random_slopes=["Days"], reml=reml)
    np.testing.assert_allclose(res.params, list(ref["fixef"].values()), rtol=1e-8)
    np.testing.assert_allclose(res.bse, list(ref["se"].values()), rtol=1e-5)
    np.testing.assert_allclose([res.random_sd["Subject"], res.random_sd["Days|Subject"]],
                               [ref["sd_intercept"], ref["sd_days"]], rtol=1e-4)
    assert res.info["random_corr"][0][1] == pytest.approx(ref["corr"], rel=1e-3)
    assert res.info["residual_sd"] == pytest.approx(ref["residual_sd"], rel=1e-5)
    assert res.info["loglik"] == pytest.approx(ref["logLik"], abs=1e-8)


# --------------------------------------------------------------------------- gee_logit
@pytest.mark.parametrize("cov_struct", ["exchangeable", "independence"])
@pytest.mark.parametrize("vcov", ["robust", "mancl_derouen"])
def test_gee_logit_reproduces_geepack_ohio(cov_struct, vcov):
    """geepack's ohio example: ``geeglm(resp ~ age + smoke + age:smoke, id = id, family = binomial,
    corstr = ...)``, san.se; Mancl–DeRouen from geepack's fit by its definition
    (tests/reference/models_gee_cox.R). Tolerance 1e-9 absolute (coefficients, SEs, alpha)."""
    ref = _ref("models_gee_cox_reference.json")["gee"][cov_struct]
    ohio = pd.read_csv(DATA / "ohio.csv")
    res = models.gee_logit("resp ~ age + smoke + age:smoke", data=ohio, groups="id", cov_struct=cov_struct,
                           vcov=vcov)
    assert list(res.params.index) == ["Intercept", "age", "smoke", "age:smoke"]
    np.testing.assert_allclose(res.params, ref["coef"], atol=1e-9)
    np.testing.assert_allclose(res.bse, ref["se_" + vcov], atol=1e-9)
    assert res.info["working_corr"] == pytest.approx(ref["alpha"], abs=1e-9)
    assert res.n_groups == 537 and (res.df == 537 - 4).all()


# --------------------------------------------------------------------------- cox
COX_CASES = {"efron": {}, "breslow": {"ties": "breslow"}, "strata": {"strata": "inst"},
             "cluster": {"cluster": "inst"}, "strata_cluster": {"strata": "ph.ecog", "cluster": "inst"}}


@pytest.mark.parametrize("case", list(COX_CASES))
def test_cox_reproduces_survival_lung(case):
    """survival's lung: ``coxph(Surv(time, status) ~ age + sex [+ strata(inst)], lung, ties = ...,
    [cluster = inst])`` (tests/reference/models_gee_cox.R). Tolerance 1e-10 absolute (coefficients,
    SEs, log partial likelihood); rows with a missing stratum or cluster are left out, as in R."""
    ref = _ref("models_gee_cox_reference.json")["cox"][case]
    lung = pd.read_csv(DATA / "lung.csv").assign(dead=lambda d: (d["status"] == 2).astype(int))
    res = models.cox("age + sex", data=lung, time="time", event="dead", **COX_CASES[case])
    np.testing.assert_allclose(res.params, ref["coef"], atol=1e-10)
    np.testing.assert_allclose(res.bse, ref["se"], atol=1e-10)
    assert res.info["loglik"] == pytest.approx(ref["loglik"], abs=1e-9)
    assert res.nobs == ref["n"] and res.info["n_events"] == ref["nevent"]


# --------------------------------------------------------------------------- resampling
@pytest.mark.parametrize("null", [True, False])
def test_wild_cluster_bootstrap_full_enumeration_matches_the_plain_algorithm(null):
    """PetersenCL (sandwich), ``lm(y ~ x)`` clustered by year (G = 10), H0: x = 1, all 2^10 Rademacher
    draws, each refitted by lm with vcovCL(type = "HC1") in R (tests/reference/models_resampling.R):
    boottest's full enumeration, deterministic. The p-value is exact (a share of 1024); t draws 1e-10."""
    ref = _ref("models_resampling_reference.json")["wild"]
    pe = pd.read_csv(DATA / "petersen.csv")
    res = models.wild_cluster_bootstrap("y ~ x", data=pe, param="x", cluster="year", h0=1.0, null=null)
    assert res.info["enumerated"] and res.info["n_boot"] == 1024
    assert res.pvalues["x"] == ref["p_wcr" if null else "p_wcu"]
    np.testing.assert_allclose(np.sort(res.info["t_draws"]), ref["t_draws_wcr_sorted" if null else "t_draws_wcu_sorted"],
                               atol=1e-10)
    assert res.params["x"] == pytest.approx(ref["estimate"], abs=1e-12)
    assert res.bse["x"] == pytest.approx(ref["se_cr1"], abs=1e-12)
    assert res.tvalues["x"] == pytest.approx(ref["t"], abs=1e-10)
    lo, hi = res.conf_int().loc["x"]
    assert lo < res.params["x"] < hi


def test_randomisation_test_exact_enumeration_of_sleep():
    """R's sleep as two independent groups of ten: all choose(20, 10) = 184,756 assignments, statistic the
    difference in means (tests/reference/models_resampling.R). Exact p 0.0814…, to 1e-12."""
    ref = _ref("models_resampling_reference.json")["randomisation"]
    sleep = pd.read_csv(DATA / "sleep.csv")
    res = models.randomisation_test("extra ~ treated", data=sleep, param="treated", treatment="treated",
                                    n_draws=200_000, ci=False)
    assert res.info["exact"] and res.info["n_draws"] == ref["n_draws"]
    assert res.params["treated"] == pytest.approx(ref["estimate"], abs=1e-12)
    assert res.pvalues["treated"] == pytest.approx(ref["p"], abs=1e-12)
    np.testing.assert_allclose(np.quantile(res.info["draws"], [0.01, 0.25, 0.5, 0.75, 0.99], method="inverted_cdf"),
                               ref["draws_quantiles"], atol=1e-12)


def test_randomisation_test_refuses_a_design_not_linear_in_the_treatment():
    sleep = pd.read_csv(DATA / "sleep.csv")
    with pytest.raises(ValueError, match="linearly"):
        models.randomisation_test("extra ~ I(1 - treated)", data=sleep, param="I(1 - treated)", treatment="treated")


# --------------------------------------------------------------------------- adjust_pvalues
def test_adjust_pvalues_on_plain_pvalues_matches_p_adjust():
    """R: ``p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm")`` = 0.03 0.06 0.06 0.02; ``"BH"`` = 0.02 0.04 0.04 0.02."""
    p = pd.Series([0.01, 0.04, 0.03, 0.005], index=list("abcd"))
    np.testing.assert_allclose(models.adjust_pvalues(p, "holm"), [0.03, 0.06, 0.06, 0.02], atol=1e-15)
    np.testing.assert_allclose(models.adjust_pvalues(p.to_numpy(), "fdr_bh"), [0.02, 0.04, 0.04, 0.02], atol=1e-15)
    assert list(models.adjust_pvalues(p, "holm").index) == list("abcd")


def test_adjust_pvalues_romano_wolf_on_joint_draws():
    """Hand-checkable: two hypotheses, five joint draws. |T| = (3, 1): step 1 counts draws with max|T*| ≥ 3
    (2 of 5) → (1 + 2)/6 = 0.5; step 2 counts |T*_2| ≥ 1 (3 of 5) → 4/6, monotone → 0.6667."""
    draws = np.array([[4.0, 0.5], [0.1, 3.5], [1.0, 1.0], [0.2, 0.1], [0.3, 2.0]])
    out = models.adjust_pvalues(method="romano_wolf", observed=np.array([3.0, -1.0]), null_draws=draws)
    np.testing.assert_allclose(out, [0.5, 4 / 6])
    with pytest.raises(ValueError, match="needs observed"):
        models.adjust_pvalues([0.1], "romano_wolf")
