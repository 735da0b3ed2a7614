"""Realistic awkward data: each case is handled as documented or refused with a clear error."""
from __future__ import annotations

import numpy as np
import pytest

import rp2pr_eval as rp

pytestmark = pytest.mark.fixture


def test_very_small_trusts(small_patients):
    """Trusts with ~10 patients a year: trust-level estimators still run; CR2 df stay positive."""
    df = rp.simulate_nlca(seed=4, n_pairs=10, n_treated_pairs=4, volume_median=10, volume_clip=(6, 14))
    for f in (rp.ancova, rp.did_aggregate, rp.did_twfe):
        e = f(df, "active_treatment")
        assert np.isfinite(e.estimate) and e.df > 1
    # SCLC chemotherapy with ~1 SCLC patient per trust-year: some trusts lack post data → clear refusal
    with pytest.raises(rp.DataError, match=r"have no eligible 'sclc_chemo' patients in the (pre|post) years"):
        rp.ancova(df, "sclc_chemo")


def test_outcome_near_100_percent(ilcop_patients):
    """MDT discussion ≈ 96 %: estimators run; the logistic models see every arm × period cell vary."""
    e = rp.ancova(ilcop_patients, "mdt_discussed")
    assert abs(e.estimate) < 0.05 and e.se > 0
    lg = rp.did_logistic(ilcop_patients, "mdt_discussed")
    assert np.isfinite(lg.se)


def test_missing_performance_status_and_stage_are_their_own_level(small_patients):
    e = rp.did_logistic(small_patients, "active_treatment", covariates=rp.CASE_MIX)
    terms = e.details["coefficients"]
    assert "performance_status[missing]" in terms and "stage[missing]" in terms
    assert small_patients["performance_status"].isna().any()


def test_pair_without_patients_in_one_year(small_patients):
    """A pair with no patients in a during year: before–after estimators are unaffected; the event study
    estimates that year from the remaining trusts."""
    pair = small_patients["pair_id"].iloc[0]
    df = small_patients[~((small_patients.pair_id == pair) & (small_patients.audit_year == 2010))]
    full = rp.did_aggregate(small_patients, "active_treatment")
    gap = rp.did_aggregate(df, "active_treatment")
    assert gap.estimate == pytest.approx(full.estimate)          # during years are not used
    es = rp.event_study(df, "active_treatment")
    assert len(es.effects) == 5 and np.isfinite(es.pretrend_p)
    # the same gap in a post year is refused by name
    post_gap = small_patients[~((small_patients.pair_id == pair) & small_patients.audit_year.isin([2012, 2013]))]
    with pytest.raises(rp.DataError, match="in the post years"):
        rp.ancova(post_gap, "active_treatment")


def test_covariate_that_determines_the_outcome_is_refused(small_patients):
    """Missing PS defines ps_recorded = 0: with PS as a covariate the logit has no finite maximum."""
    with pytest.raises(rp.DataError, match=r"'ps_recorded' is \(quasi-\)separated by the covariates"):
        rp.did_logistic(small_patients, "ps_recorded", covariates=rp.CASE_MIX)
    ok = rp.did_logistic(small_patients, "ps_recorded", covariates=["age", "sex", "stage", "imd_quintile"])
    assert np.isfinite(ok.se) and ok.se < 1
