"""Patient-level mixed models and GEE through the public API: known truth, details, errors."""
from __future__ import annotations

import numpy as np
import pytest

import rp2pr_eval as rp


@pytest.fixture(scope="module")
def trial():
    """60 pairs (30 treated), planted +0.4 on histological confirmation (no recording artefact)."""
    return rp.simulate_nlca(seed=41, n_pairs=60, n_treated_pairs=30, volume_median=70, volume_clip=(40, 120),
                            effects={"histo_confirmed": 0.4})


@pytest.mark.simulation
def test_mixed_logistic_recovers_the_conditional_log_odds_ratio(trial):
    """Trust effects in the generator vary over time (AR(1)) and pairs share shocks after baseline, so the
    GLMM's model-based SE understates the sampling SD; the pair-clustered SE of the logistic DiD is the
    yardstick for recovery (validate-methods measures the GLMM's size).  The GLMM point estimate must
    agree with the trust fixed-effects logit, which identifies the same within-trust contrast."""
    e = rp.mixed_logistic(trial, "histo_confirmed", covariates=rp.CASE_MIX, n_quad=25)
    robust = rp.did_logistic(trial, "histo_confirmed", covariates=rp.CASE_MIX)
    assert robust.se > e.se
    assert abs(e.estimate - 0.4) < 3 * robust.se, (e.estimate, robust.se)
    import statsmodels.api as sm

    from rp2pr_eval.estimators.prepare import patient_design, prepare

    prep = prepare(trial, "histo_confirmed", design=None, cluster="pair_id", kinds=("binary",))
    X, names = patient_design(prep, rp.CASE_MIX)
    D = (prep.rows["trust_id"].to_numpy()[:, None] == np.unique(prep.rows["trust_id"])[None, :]).astype(float)
    fe = sm.GLM(prep.rows["histo_confirmed"].to_numpy(float), np.column_stack([X[:, [2, 3]], X[:, 4:], D]),
                family=sm.families.Binomial()).fit()
    assert e.estimate == pytest.approx(fe.params[1], abs=0.01)
    d = e.details
    assert d["converged"] and 0.2 < d["re_sd"] < 0.7          # trust SD 0.4 on the logit scale
    assert d["re_sd_ci_low"] < d["re_sd"] < d["re_sd_ci_high"]
    truth = trial.attrs["truth"]["risk_difference"]["histo_confirmed"]
    assert abs(d["risk_difference"]["estimate"] - truth) < 3 * robust.details["risk_difference"]["se"]
    te = d["trust_effects"]
    assert len(te) == 120 and {"trust_id", "arm", "mode", "se", "ci_low", "ci_high"} <= set(te[0])
    laplace = rp.mixed_logistic(trial, "histo_confirmed", covariates=rp.CASE_MIX, n_quad=1)
    assert laplace.estimate == pytest.approx(e.estimate, abs=0.01)


@pytest.mark.simulation
def test_mixed_linear_recovers_the_risk_difference(trial):
    e = rp.mixed_linear(trial, "histo_confirmed")
    truth = trial.attrs["truth"]["risk_difference"]["histo_confirmed"]
    assert abs(e.estimate - truth) < 3 * e.se
    assert e.details["re_sd"] > 0 and e.df == 118


@pytest.mark.fixture
def test_vb_runs_for_comparison(small_patients):
    e = rp.mixed_logistic(small_patients, "cns_seen", method="vb")
    assert e.vcov == "VB posterior" and np.isfinite(e.estimate)


@pytest.mark.fixture
def test_errors(small_patients):
    with pytest.raises(ValueError, match="method='ml' is not valid"):
        rp.mixed_logistic(small_patients, "cns_seen", method="ml")
    with pytest.raises(rp.DataError, match="does not handle continuous"):
        rp.mixed_logistic(small_patients, "days_referral_to_treatment")
    with pytest.raises(ValueError, match="n_quad must be a positive integer"):
        rp.mixed_logistic(small_patients, "cns_seen", n_quad=0)
