"""The DiD, ANCOVA, event-study, logistic and Cox estimators against R reference values.

Reference values: ``tests/reference/did_reference.json``, written by
``Rscript tests/reference/make_reference.R`` (R 4.2.2; clubSandwich 0.5.8,
sandwich 3.0.2, estimatr 1.0.0, survival 3.5.3) on the files that
``tests/reference/make_reference_data.py`` writes to ``tests/reference/data/``
from one draw of the package generator::

    rp.simulate_nlca(seed=2718, n_pairs=16, n_treated_pairs=6,
                     effects={"active_treatment": 0.3}, volume_median=80, volume_clip=(40, 160))

The estimators run here on the same call's output through the public API (the
patient table, not the committed panels); :func:`test_committed_data_is_current`
checks that the generator and the package's panel building still give the
committed files byte for byte and that their SHA-256 are those R read.  R is
not needed to run these tests.

Tolerances (the issue's): estimates 1e-8 absolute; standard errors, degrees of
freedom and p-values 1e-6 relative; Cox estimates 1e-6 absolute and SEs 1e-5
relative.

Conventions matched: CR1 = clubSandwich ``CR1S`` = ``sandwich::vcovCL(type = "HC1")``
(G/(G−1)·(N−1)/(N−K), K counting the absorbed fixed effects), t(G − 1); CR2 =
clubSandwich ``CR2`` (identity working model for weighted ``lm`` as well) with
Satterthwaite df; CR3 = clubSandwich ``CR3`` with t(G − 1) (``coef_test(test =
"naive-t")``).  Categorical case-mix: missing performance status/stage are a
level, the first sorted level is the reference, as R's
``factor(x, exclude = NULL)``.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rp2pr_eval as rp
from rp2pr_eval.estimators.did import did_cox

pytestmark = pytest.mark.reference

REF_DIR = Path(__file__).parent / "reference"
OUTCOME = "active_treatment"

EST_ATOL = 1e-8
SE_RTOL = 1e-6
COX_EST_ATOL = 1e-6
COX_SE_RTOL = 1e-5

WEIGHTS = {"weighted": "denominator", "unweighted": None}
R_VCOV = {"CR1": "CR1S", "CR2": "CR2", "CR3": "CR3"}


def _load_data_module():
    spec = importlib.util.spec_from_file_location("make_reference_data", REF_DIR / "make_reference_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DATA = _load_data_module()


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads((REF_DIR / "did_reference.json").read_text())


@pytest.fixture(scope="module")
def patients() -> pd.DataFrame:
    return DATA.simulate()


def _close_est(actual, desired, atol=EST_ATOL):
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(desired, dtype=float), rtol=0, atol=atol)


def _close_rel(actual, desired, rtol=SE_RTOL):
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(desired, dtype=float), rtol=rtol, atol=0)


def _as_list(x):
    return x if isinstance(x, list) else [x]


# --------------------------------------------------------------------------- the data
def test_committed_data_is_current(ref, patients):
    """The committed files are byte for byte what ``make_reference_data.py`` writes now, and what R read.

    If this fails the generator or the panel building changed: rerun
    ``make_reference_data.py`` and ``make_reference.R`` and review the new JSON.
    """
    fresh = DATA.build_tables(patients)
    for key, name in DATA.FILES.items():
        path = REF_DIR / "data" / name
        meta = ref["provenance"]["data"][key]
        assert meta["path"] == f"tests/reference/data/{name}"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == meta["sha256"], f"{name} changed since R read it"
        committed = path.read_bytes()
        if name.endswith(".gz"):
            committed = gzip.decompress(committed)
        assert committed == DATA.csv_bytes(fresh[key]), f"{name} is no longer what the package produces"


def test_reference_sizes(ref, patients):
    """Row counts agree with R (64 trust-periods, 192 trust-years, 13,387 patients)."""
    eff = rp.did_aggregate(patients, OUTCOME)
    assert eff.n_obs == ref["did_aggregate"]["weighted"]["n"]
    assert eff.details["n_patients"] == ref["did_logistic"]["case_mix"]["n"]
    es = rp.event_study(patients, OUTCOME, reference_year=2009)
    assert es.effects[0].n_obs == ref["event_study"]["weighted"]["n"]


# --------------------------------------------------------------------------- did_aggregate
@pytest.mark.parametrize("vcov", ["CR1", "CR2", "CR3"])
@pytest.mark.parametrize("cluster", ["pair_id", "trust_id"])
@pytest.mark.parametrize("weighting", ["weighted", "unweighted"])
def test_did_aggregate(ref, patients, weighting, cluster, vcov):
    """R::

        fit <- lm(rate ~ treated * post, data = panel_period, weights = denominator)  # or unweighted
        coef_test(fit, vcov = vcovCR(fit, cluster = pair_id, type = "CR2"), test = "Satterthwaite")
        coef_test(fit, vcov = vcovCR(fit, cluster = pair_id, type = "CR1S" | "CR3"), test = "naive-t")
        # and cluster = trust_id
    """
    r = ref["did_aggregate"][weighting]
    rr = r[cluster][R_VCOV[vcov]]
    eff = rp.did_aggregate(patients, OUTCOME, weights=WEIGHTS[weighting], cluster=cluster, vcov=vcov)
    _close_est(eff.estimate, r["estimate"])
    _close_est(eff.estimate, rr["estimate"])
    _close_rel(eff.se, rr["se"])
    _close_rel(eff.df, rr["df"])
    _close_rel(eff.p_value, rr["p"])
    assert eff.n_clusters == r[cluster]["n_clusters"]
    names = {"(Intercept)": "intercept", "treated": "treated", "post": "post", "treated:post": "treated:post"}
    for rname, value in r["coefficients"].items():
        _close_est(eff.details["coefficients"][names[rname]][0], value)


@pytest.mark.parametrize("cluster", ["pair_id", "trust_id"])
@pytest.mark.parametrize("weighting", ["weighted", "unweighted"])
def test_did_aggregate_cr1_is_sandwich_hc1(ref, patients, weighting, cluster):
    """R: ``sandwich::vcovCL(lm(rate ~ treated * post, weights = denominator), cluster = ~pair_id, type = "HC1")``."""
    r = ref["did_aggregate"][weighting][cluster]
    eff = rp.did_aggregate(patients, OUTCOME, weights=WEIGHTS[weighting], cluster=cluster, vcov="CR1")
    _close_rel(eff.se, r["vcovCL_HC1"]["se"])


@pytest.mark.parametrize("cluster", ["pair_id", "trust_id"])
@pytest.mark.parametrize("weighting", ["weighted", "unweighted"])
def test_did_aggregate_cr2_is_estimatr(ref, patients, weighting, cluster):
    """R: ``estimatr::lm_robust(rate ~ treated * post, weights = denominator, clusters = pair_id, se_type = "CR2")``.

    estimatr's CR2 (weighted or not) and its Bell–McCaffrey df equal clubSandwich's here.
    """
    r = ref["did_aggregate"][weighting][cluster]["lm_robust_CR2"]
    eff = rp.did_aggregate(patients, OUTCOME, weights=WEIGHTS[weighting], cluster=cluster, vcov="CR2")
    _close_est(eff.estimate, r["estimate"])
    _close_rel(eff.se, r["se"])
    _close_rel(eff.df, r["df"])
    _close_rel(eff.p_value, r["p"])


# --------------------------------------------------------------------------- ancova
@pytest.mark.parametrize("vcov", ["CR1", "CR2", "CR3"])
@pytest.mark.parametrize("weighting", ["weighted", "unweighted"])
def test_ancova(ref, patients, weighting, vcov):
    """R::

        fit <- lm(post ~ treated + pre, data = wide, weights = n_post)  # or unweighted
        coef_test(fit, vcov = vcovCR(fit, cluster = pair_id, type = "CR2"), test = "Satterthwaite")
        coef_test(fit, vcov = vcovCR(fit, cluster = pair_id, type = "CR1S" | "CR3"), test = "naive-t")
    """
    r = ref["ancova"][weighting]
    rr = r["pair_id"][R_VCOV[vcov]]
    eff = rp.ancova(patients, OUTCOME, weights=WEIGHTS[weighting], vcov=vcov)
    _close_est(eff.estimate, r["estimate"])
    _close_est(eff.details["baseline_slope"], r["baseline_slope"])
    _close_rel(eff.se, rr["se"])
    _close_rel(eff.df, rr["df"])
    _close_rel(eff.p_value, rr["p"])
    assert eff.n_obs == r["n"]


# --------------------------------------------------------------------------- did_twfe
@pytest.mark.parametrize("vcov", ["CR1", "CR2"])
@pytest.mark.parametrize("weighting", ["weighted", "unweighted"])
def test_did_twfe(ref, patients, weighting, vcov):
    """R::

        fit <- lm(rate ~ D + factor(trust_id) + factor(audit_year), weights = denominator,
                  data = panel_year[audit_year %in% c(2008, 2009, 2012, 2013), ])
        sandwich::vcovCL(fit, cluster = ~pair_id, type = "HC1")   # = vcovCR(type = "CR1S")
        coef_test(fit, vcov = vcovCR(fit, cluster = pair_id, type = "CR2"), test = "Satterthwaite")
    """
    r = ref["did_twfe"][weighting]
    rr = r["pair_id"][R_VCOV[vcov]]
    eff = rp.did_twfe(patients, OUTCOME, weights=WEIGHTS[weighting], vcov=vcov)
    _close_est(eff.estimate, r["estimate"])
    _close_rel(eff.se, rr["se"])
    _close_rel(eff.df, rr["df"])
    _close_rel(eff.p_value, rr["p"])
    if vcov == "CR1":
        _close_rel(eff.se, r["pair_id"]["vcovCL_HC1"]["se"])
        # (linearmodels PanelOLS gives the same SE: tests/test_did.py::test_twfe_agrees_with_linearmodels_panelols)


# --------------------------------------------------------------------------- event_study
@pytest.mark.parametrize("weighting", ["weighted", "unweighted"])
def test_event_study(ref, patients, weighting):
    """R::

        fit <- lm(rate ~ tr2008 + tr2010 + tr2011 + tr2012 + tr2013 + factor(trust_id) + factor(audit_year),
                  data = panel_year, weights = denominator)          # trYYYY = treated * (audit_year == YYYY)
        V <- vcovCR(fit, cluster = pair_id, type = "CR2")
        coef_test(fit, vcov = V, test = "Satterthwaite")
        Wald_test(fit, constraints = constrain_zero("tr2008"), vcov = V, test = "HTZ")
    """
    r = ref["event_study"][weighting]
    es = rp.event_study(patients, OUTCOME, reference_year=r["reference_year"], weights=WEIGHTS[weighting], vcov="CR2")
    by_year = {int(e.details["year"]): e for e in es.effects}
    assert sorted(by_year) == r["years"]
    effects = [by_year[y] for y in r["years"]]
    _close_est([e.estimate for e in effects], r["estimate"])
    _close_rel([e.se for e in effects], r["se"])
    _close_rel([e.df for e in effects], r["df"])
    _close_rel([e.p_value for e in effects], r["p"])
    pt = r["pretrend"]
    assert es.pretrend_test == "HTZ"
    assert es.pretrend_df_num == pt["df_num"] == len(_as_list(pt["terms"]))
    _close_rel(es.pretrend_statistic, pt["F"])
    _close_rel(es.pretrend_df_den, pt["df_den"])
    _close_rel(es.pretrend_p, pt["p"])


# --------------------------------------------------------------------------- did_logistic
@pytest.mark.parametrize("adjustment", ["case_mix", "unadjusted"])
def test_did_logistic(ref, patients, adjustment):
    """R::

        fit <- glm(active_treatment ~ treated * post + age + sex + factor(performance_status, exclude = NULL)
                   + factor(stage, exclude = NULL) + factor(imd_quintile), family = binomial, data = patients)
        sandwich::vcovCL(fit, cluster = ~pair_id, type = "HC1")       # reference t(G - 1), G = 16

    (``unadjusted``: ``active_treatment ~ treated * post``.)
    """
    r = ref["did_logistic"][adjustment]
    covariates = rp.CASE_MIX if adjustment == "case_mix" else None
    eff = rp.did_logistic(patients, OUTCOME, covariates=covariates)
    assert eff.n_obs == r["n"]
    _close_est(eff.estimate, r["estimate"])
    _close_rel(eff.se, r["se_treated_post"])
    _close_rel(eff.df, r["df"])
    _close_rel(eff.p_value, r["p"])
    _close_rel(eff.details["log_likelihood"], r["log_likelihood"])
    coefs = eff.details["coefficients"]
    assert sorted(coefs) == sorted(r["names"])
    _close_est([coefs[n][0] for n in r["names"]], r["coef"])
    _close_rel([coefs[n][1] for n in r["names"]], r["se"])


# --------------------------------------------------------------------------- did_cox
@pytest.fixture(scope="module")
def cox_fits(patients) -> dict:
    """did_cox with and without case-mix (fitted once)."""
    return {"case_mix": did_cox(patients, "survival_days", covariates=rp.CASE_MIX),
            "unadjusted": did_cox(patients, "survival_days", covariates=None)}


@pytest.mark.parametrize("adjustment", ["case_mix", "unadjusted"])
def test_did_cox_estimates(ref, cox_fits, adjustment):
    """R::

        coxph(Surv(survival_days, died) ~ treated * post + age + sex + factor(performance_status, exclude = NULL)
              + factor(stage, exclude = NULL) + factor(imd_quintile), data = patients,
              ties = "efron", cluster = pair_id)

    (``unadjusted``: ``~ treated * post``.)  Every coefficient to 1e-6 absolute.
    """
    r = ref["did_cox"][adjustment]
    eff = cox_fits[adjustment]
    assert eff.n_obs == r["n"]
    assert eff.details["n_events"] == r["n_events"]
    assert eff.n_clusters == r["n_clusters"]
    assert eff.df is None
    _close_est(eff.estimate, r["estimate"], atol=COX_EST_ATOL)
    coefs = eff.details["coefficients"]
    assert sorted(coefs) == sorted(r["names"])
    _close_est([coefs[n][0] for n in r["names"]], r["coef"], atol=COX_EST_ATOL)


@pytest.mark.parametrize("adjustment", ["case_mix", "unadjusted"])
def test_did_cox_robust_se(ref, cox_fits, adjustment):
    """R: ``sqrt(diag(coxph(..., ties = "efron", cluster = pair_id)$var))`` (robust SE), 1e-5 relative.

    did_cox uses rp2pr_eval.survival_core.fit_cox, whose Efron score residuals match coxph's
    (statsmodels PHReg builds its robust variance from Breslow-type residuals and is 0.1 % off).
    """
    r = ref["did_cox"][adjustment]
    eff = cox_fits[adjustment]
    coefs = eff.details["coefficients"]
    _close_rel(eff.se, r["se"], rtol=COX_SE_RTOL)
    _close_rel([coefs[n][1] for n in r["names"]], r["robust_se"], rtol=COX_SE_RTOL)

