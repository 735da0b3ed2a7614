"""Case-mix-adjusted trust rates: R's glm and poisson.test, the crude-versus-adjusted funnel on synthetic data, errors."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import rp2pr_eval as rp
from rp2pr_eval.estimators.case_mix import poisson_ci
from rp2pr_eval.presentation.figures import funnel_limits, plot_adjusted_funnel, plot_funnel
from tests.conftest import ROOT

REFERENCE = ROOT / "tests" / "reference"


@pytest.fixture(scope="module")
def reference():
    return json.loads((REFERENCE / "case_mix_reference.json").read_text())


@pytest.fixture(scope="module")
def reference_patients():
    return rp.load_patients(REFERENCE / "data" / "case_mix_patients.csv.gz")


@pytest.fixture(scope="module")
def case_mix_only():
    """Trusts differ in case mix (strong shifts) and in nothing else: no trust effect on active treatment."""
    return rp.simulate_nlca(seed=2, casemix_sd=0.6, trust_sd={"active_treatment": 0.0})


def _term(name: str) -> str:
    """R's coefficient name for the package's (``sex[M]`` ↔ ``sexM``, ``performance_status[1]`` ↔ ``ps1``)."""
    if name == "intercept":
        return "(Intercept)"
    column, _, level = name.partition("[")
    short = {"performance_status": "ps", "imd_quintile": "imd"}.get(column, column)
    return short + level.rstrip("]")


@pytest.mark.reference
@pytest.mark.parametrize("case", [0, 1])
def test_matches_r_glm_and_poisson_test(reference, reference_patients, case):
    """Expected counts, O/E limits (exact: poisson.test; Byar) and the model agree with R (tests/reference/case_mix.R)."""
    ref = reference["cases"][case]
    by = ref["by"]
    exact = rp.case_mix_adjusted_rates(reference_patients, ref["outcome"], fit_years=ref["fit_years"], by=by)
    byar = rp.case_mix_adjusted_rates(reference_patients, ref["outcome"], fit_years=ref["fit_years"], by=by,
                                      ci_method="byar")
    assert exact.reference_rate == pytest.approx(ref["reference_rate"], abs=1e-15)
    for term, (estimate, se) in exact.coefficients.items():
        assert estimate == pytest.approx(ref["coefficients"][_term(term)], abs=1e-8), term
        assert se == pytest.approx(ref["se"][_term(term)], rel=1e-6), term
    table = exact.table.assign(time=exact.table[by].astype(str)).set_index(["trust_id", "time"])
    table_b = byar.table.assign(time=byar.table[by].astype(str)).set_index(["trust_id", "time"])
    assert len(table) == len(ref["rows"])
    for row in ref["rows"]:
        got = table.loc[(row["trust_id"], row["time"])]
        assert got["numerator"] == row["observed"] and got["denominator"] == row["n"]
        assert got["expected"] == pytest.approx(row["expected"], rel=1e-9)
        assert got["oe_ci_low"] == pytest.approx(row["oe_low"], rel=1e-9)
        assert got["oe_ci_high"] == pytest.approx(row["oe_high"], rel=1e-9)
        got_b = table_b.loc[(row["trust_id"], row["time"])]
        assert got_b["oe_ci_low"] == pytest.approx(row["byar_low"], rel=1e-12)
        assert got_b["oe_ci_high"] == pytest.approx(row["byar_high"], rel=1e-12)


@pytest.mark.fixture
def test_indirect_standardisation_arithmetic(case_mix_only):
    rates = rp.case_mix_adjusted_rates(case_mix_only, "active_treatment")
    t = rates.table
    pre = t[t["period"] == "pre"]
    # a logistic model with an intercept reproduces the observed total of the data it was fitted on
    assert pre["expected"].sum() == pytest.approx(pre["numerator"].sum(), rel=1e-10)
    assert pre["national_adjusted_rate"].iloc[0] == pytest.approx(pre["national_rate"].iloc[0], rel=1e-10)
    assert rates.reference_rate == pytest.approx(pre["numerator"].sum() / pre["denominator"].sum(), rel=1e-12)
    np.testing.assert_allclose(t["adjusted_rate"], t["numerator"] / t["expected"] * rates.reference_rate, rtol=1e-12)
    assert (t["oe_ci_low"] < t["oe_ratio"]).all() and (t["oe_ratio"] < t["oe_ci_high"]).all()
    assert rates.n_fit == int(case_mix_only["audit_year"].isin([2008, 2009]).sum())
    assert set(t["period"]) == {"pre", "during", "post"} and len(t) == 80 * 3
    # Poisson limits by hand: O = 0 has lower limit 0 and exact upper -log(0.025)
    low, high = poisson_ci(np.array([0.0, 10.0]), 0.95, "exact")
    assert low[0] == 0 and high[0] == pytest.approx(-np.log(0.025), rel=1e-12)
    assert (low[1], high[1]) == pytest.approx((4.795389, 18.390356), abs=1e-6)   # Garwood's table


def _outside(table: pd.DataFrame, column: str, target: str, period: str) -> set[str]:
    rows = table[table["period"] == period]
    limits = funnel_limits(rows[target].iloc[0], rows["denominator"].to_numpy(), levels=(0.998,))
    rate = rows[column].to_numpy()
    return set(rows["trust_id"][(rate < limits["lower"].to_numpy()) | (rate > limits["upper"].to_numpy())])


@pytest.mark.simulation
def test_crude_funnel_flags_trusts_the_adjusted_one_does_not(case_mix_only):
    """No trust differs in care, only in case mix: the crude funnel flags ~30 % of trusts, the adjusted one ~none.

    Seed 2, casemix_sd 0.6, no trust effect on active treatment; 99.8 % binomial limits around the
    national (adjusted) rate: crude 25/80 outside in pre, 28/80 in post; adjusted 0/80 and 1/80
    (expected by chance alone: 0.16).
    """
    rates = rp.case_mix_adjusted_rates(case_mix_only, "active_treatment")
    t = rates.table
    crude = {p: _outside(t, "crude_rate", "national_rate", p) for p in ("pre", "post")}
    adjusted = {p: _outside(t, "adjusted_rate", "national_adjusted_rate", p) for p in ("pre", "post")}
    assert (len(crude["pre"]), len(crude["post"])) == (25, 28)
    assert (len(adjusted["pre"]), len(adjusted["post"])) == (0, 1)
    assert len(crude["pre"] - adjusted["pre"]) == 25 and len(crude["post"] - adjusted["post"]) == 27
    # the figures report the same counts from the same frame
    crude_fig = plot_funnel(t, overdispersion=False)
    adjusted_fig = plot_adjusted_funnel(rates, overdispersion=False)
    text = lambda fig: [tx.get_text() for ax in fig.axes for tx in ax.texts]   # noqa: E731
    assert text(crude_fig) == ["Outside 99.8% limits: 25/80", "Outside 99.8% limits: 28/80"]
    assert text(adjusted_fig) == ["Outside 99.8% limits: 0/80", "Outside 99.8% limits: 1/80"]
    assert adjusted_fig.axes[0].get_ylabel() == "Case-mix adjusted rate (%)"
    import matplotlib.pyplot as plt

    plt.close(crude_fig)
    plt.close(adjusted_fig)


@pytest.mark.simulation
def test_adjustment_keeps_real_differences_between_trusts():
    """Positive control: with a real trust effect (SD 0.6 on the logit scale) most flagged trusts stay flagged."""
    patients = rp.simulate_nlca(seed=3, casemix_sd=0.25, trust_sd={"active_treatment": 0.6})
    t = rp.case_mix_adjusted_rates(patients, "active_treatment").table
    crude = _outside(t, "crude_rate", "national_rate", "pre")
    adjusted = _outside(t, "adjusted_rate", "national_adjusted_rate", "pre")
    assert (len(crude), len(adjusted), len(crude & adjusted)) == (32, 25, 21)


@pytest.mark.fixture
def test_fit_on_a_chosen_year_and_by_audit_year(case_mix_only):
    rates = rp.case_mix_adjusted_rates(case_mix_only, "active_treatment", fit_years=2012, by="audit_year")
    t = rates.table
    year = t[t["audit_year"] == 2012]
    assert rates.fit_years == (2012,) and year["expected"].sum() == pytest.approx(year["numerator"].sum(), rel=1e-10)
    assert sorted(t["audit_year"].unique()) == list(range(2008, 2014))
    resection = rp.case_mix_adjusted_rates(case_mix_only, "nsclc_resection")
    assert resection.table["denominator"].sum() == int((case_mix_only["histology"] == "NSCLC").sum())
    assert resection.n_dropped["ineligible"] == int((case_mix_only["histology"] != "NSCLC").sum())


@pytest.mark.fixture
def test_errors(small_patients):
    with pytest.raises(rp.DataError, match="needs a binary outcome; 'days_referral_to_treatment' is continuous"):
        rp.case_mix_adjusted_rates(small_patients, "days_referral_to_treatment")
    with pytest.raises(rp.ParameterError, match=r"fit_years \[2001\] have no eligible patients"):
        rp.case_mix_adjusted_rates(small_patients, "active_treatment", fit_years=2001)
    with pytest.raises(rp.ParameterError, match="fit_years must be None"):
        rp.case_mix_adjusted_rates(small_patients, "active_treatment", fit_years="pre")
    with pytest.raises(ValueError, match="ci_method='poisson' is not valid; expected one of 'exact', 'byar'"):
        rp.case_mix_adjusted_rates(small_patients, "active_treatment", ci_method="poisson")
    with pytest.raises(ValueError, match="by='trust' is not valid"):
        rp.case_mix_adjusted_rates(small_patients, "active_treatment", by="trust")
    with pytest.raises(rp.DataError, match=r"covariate\(s\) \['bmi'\] are not columns"):
        rp.case_mix_adjusted_rates(small_patients, "active_treatment", covariates=["age", "bmi"])
    odd = small_patients.copy()
    odd["frailty"] = np.where(odd["audit_year"] >= 2012, "high", "low")
    with pytest.raises(rp.DataError, match=r"covariate 'frailty' has level\(s\) 'high' \(\d+ patients\) that never occur"):
        rp.case_mix_adjusted_rates(odd, "active_treatment", covariates=["age", "frailty"])
    odd["score"] = np.where(np.arange(len(odd)) < 3, np.nan, 1.0)
    with pytest.raises(rp.DataError, match="covariate 'score' has 3 missing values"):
        rp.case_mix_adjusted_rates(odd, "active_treatment", covariates=["score"])
    odd["all_one"] = 1
    with pytest.raises(rp.DataError, match="does not vary in the reference years"):
        rp.case_mix_adjusted_rates(odd, "all_one", covariates=["age"])
    with pytest.raises(ValueError, match="plot_adjusted_funnel: rates must be a CaseMixRates"):
        plot_adjusted_funnel([1, 2])
