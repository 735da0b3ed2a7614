"""The synthetic generator: structure, national rates, pairing, eligibility, truth, reproducibility."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

import rp2pr_eval as rp
from rp2pr_eval.data.describe import national_rates
from tests.conftest import BUNDLED


@pytest.fixture(scope="module")
def seeds():
    return [rp.simulate_nlca(seed=s) for s in (101, 102, 103)]


@pytest.mark.fixture
def test_structure(seeds):
    df = seeds[0]
    rp.validate_patients(df)
    trusts = df.drop_duplicates("trust_id")
    assert len(trusts) == 80 and trusts["pair_id"].nunique() == 40
    assert (trusts.groupby("pair_id").size() == 2).all()
    assert (trusts.groupby("pair_id")["arm"].nunique() == 1).all()
    pairs = trusts.drop_duplicates("pair_id")
    assert (pairs["arm"] == "intervention").sum() == 15
    assert (trusts["arm"] == "intervention").sum() == 30
    assert sorted(df["audit_year"].unique()) == list(range(2008, 2014))
    # volumes: median trust-year ≈ 210 in 2008, national records rising ≈ 6% a year
    per_year = df.groupby("audit_year").size()
    growth = (per_year.iloc[-1] / per_year.iloc[0]) ** (1 / 5) - 1
    assert 0.03 < growth < 0.09
    assert 150 < df[df.audit_year == 2008].groupby("trust_id").size().median() < 280


@pytest.mark.simulation
def test_national_rates_within_two_points(seeds):
    rates = pd.concat([national_rates(df) for df in seeds]).groupby(["outcome", "audit_year"])
    mean = rates[["value", "reference"]].mean().dropna()
    assert len(mean) >= 25
    for (outcome, year), row in mean.iterrows():
        kind = rp.OUTCOMES[outcome].kind
        if kind == "binary":
            assert abs(row.value - row.reference) < 0.02, (outcome, year, row.value, row.reference)
        else:  # medians in days: within 5 %
            assert abs(row.value / row.reference - 1) < 0.05, (outcome, year, row.value, row.reference)


@pytest.mark.simulation
def test_trust_variation_in_active_treatment(seeds):
    iqrs = []
    for df in seeds:
        panel = rp.trust_panel(df, "active_treatment", by="audit_year")
        r = panel.loc[panel.audit_year == 2011, "rate"]
        iqrs.append(r.quantile(0.75) - r.quantile(0.25))
    assert 0.07 <= np.mean(iqrs) <= 0.14


@pytest.mark.simulation
def test_pairs_contrast_at_baseline(seeds):
    """Within-pair baseline gap on the pairing composite exceeds that of random pairs."""
    rng = np.random.default_rng(0)
    for df in seeds:
        score = 0
        for name in rp.StudyDesign().pairing_indicators:
            p = rp.trust_panel(df, name)
            pre = p[p.period == "pre"].set_index("trust_id")["rate"]
            score = score + (pre - pre.mean()) / pre.std()
        trusts = df.drop_duplicates("trust_id").set_index("trust_id")
        gap = trusts.assign(s=score).groupby("pair_id")["s"].agg(lambda s: abs(s.iloc[0] - s.iloc[1])).mean()
        random_gaps = []
        for _ in range(200):
            perm = rng.permutation(score.to_numpy())
            random_gaps.append(np.abs(perm[0::2] - perm[1::2]).mean())
        assert gap > np.quantile(random_gaps, 0.99)


@pytest.mark.fixture
def test_eligible_groups_respected(seeds):
    df = seeds[0]
    assert df.loc[df.histology != "NSCLC", "nsclc_resection"].isna().all()
    assert df.loc[df.histology == "NSCLC", "nsclc_resection"].notna().all()
    assert df.loc[df.histology != "SCLC", "sclc_chemo"].isna().all()
    assert df.loc[df.bronchoscopy == 0, "ct_before_bronch"].isna().all()
    assert df.loc[df.active_treatment == 0, "days_referral_to_treatment"].isna().all()
    assert df.loc[df.histo_confirmed == 0, "histology"].eq("other").all()
    assert df.loc[df.stage_recorded == 0, "stage"].isna().all()
    assert df.loc[df.ps_recorded == 1, "performance_status"].notna().all()
    w = df.dropna(subset=["days_referral_to_treatment"])
    assert (w.treated_within_62d == (w.days_referral_to_treatment <= 62).astype(int)).all()


@pytest.mark.simulation
def test_crude_did_recovers_planted_effect():
    """Large trial (200 pairs, 100 treated): crude DiD of proportions near the true marginal RD."""
    df = rp.simulate_nlca(seed=7, n_pairs=200, n_treated_pairs=100, effects={"active_treatment": 0.5})
    truth = df.attrs["truth"]
    assert truth["effects"]["active_treatment"] == 0.5 and truth["effects"]["cns_seen"] == 0.0
    d = df[df.audit_year.isin([2008, 2009, 2012, 2013])].assign(post=lambda x: x.audit_year >= 2012)
    m = d.groupby(["arm", "post"])["active_treatment"].mean()
    did = (m["intervention", True] - m["intervention", False]) - (m["control", True] - m["control", False])
    rd = truth["risk_difference"]["active_treatment"]
    assert 0.05 < rd < 0.12  # 0.5 logit at p≈0.6, attenuated by case-mix spread and unrecorded treatment
    assert abs(did - rd) < 0.03
    # and a null outcome stays near zero
    m0 = d.groupby(["arm", "post"])["cns_seen"].mean()
    did0 = (m0["intervention", True] - m0["intervention", False]) - (m0["control", True] - m0["control", False])
    assert abs(did0) < 0.03


@pytest.mark.fixture
def test_same_seed_same_frame_and_bytes(tmp_path):
    a = rp.simulate_nlca(seed=9, n_pairs=6, n_treated_pairs=2)
    b = rp.simulate_nlca(seed=9, n_pairs=6, n_treated_pairs=2)
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs["truth"] == b.attrs["truth"]
    c = rp.simulate_nlca(seed=10, n_pairs=6, n_treated_pairs=2)
    assert not a["active_treatment"].equals(c["active_treatment"])
    p1 = rp.save_patients(a, tmp_path / "a.csv.gz")
    p2 = rp.save_patients(b, tmp_path / "b.csv.gz")
    assert p1.read_bytes() == p2.read_bytes()


@pytest.mark.fixture
def test_generator_accepts_a_generator_and_leaves_global_state():
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    rp.simulate_nlca(seed=np.random.default_rng(1), n_pairs=4, n_treated_pairs=1)
    assert (np.random.get_state()[1] == before).all()


@pytest.mark.fixture
@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"effects": {"treated_within_62d": 0.1}}, "derived from 'days_referral_to_treatment'"),
        ({"effects": {"nonsense": 0.1}}, "unknown outcome 'nonsense'"),
        ({"effects": {"cns_seen": "big"}}, "must be a finite number"),
        ({"n_pairs": 5, "n_treated_pairs": 5}, "n_treated_pairs must be an integer between 1 and"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"trust_df": 2}, "trust_df must be > 2"),
    ],
)
def test_bad_generator_arguments(kwargs, pattern):
    with pytest.raises(rp.ParameterError, match=pattern):
        rp.simulate_nlca(**kwargs)


@pytest.mark.fixture
def test_bundled_data_regenerates_byte_for_byte(tmp_path):
    """data/synthetic/README.md gives this command; the bytes must match the committed file."""
    from rp2pr_eval.cli import main

    out = tmp_path / "nlca_patients.csv.gz"
    code = main(["simulate", "--seed", "20100401", "--effect", "active_treatment=0.3", "--effect", "cns_seen=0.4",
                 "--effect", "nsclc_resection=0.25", "--out", str(out)])
    assert code == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(BUNDLED.read_bytes()).hexdigest()
    assert (tmp_path / "nlca_patients.truth.json").read_text() == BUNDLED.with_name("nlca_patients.truth.json").read_text()


@pytest.mark.fixture
def test_bundled_data_loads_with_truth(bundled_patients):
    truth = bundled_patients.attrs["truth"]
    assert truth["effects"]["active_treatment"] == 0.3 and truth["effects"]["sclc_chemo"] == 0.0
    assert bundled_patients["trust_id"].nunique() == 80


@pytest.mark.fixture
@pytest.mark.parametrize("outcome", ["mdt_discussed", "nsclc_resection", "sclc_chemo", "ct_before_bronch",
                                     "days_referral_to_treatment", "treated_within_62d", "survival_days"])
def test_one_outcome_simulation_equals_the_full_table(outcome):
    """The power simulation's generator path (one outcome, same random numbers) gives simulate_nlca's column."""
    from rp2pr_eval.synthetic.generator import GeneratorSettings, simulate_arrays

    planted = "days_referral_to_treatment" if outcome == "treated_within_62d" else outcome
    effects = {planted: 0.4, "active_treatment": 0.2}
    kwargs = {"volume_median": 60, "volume_clip": (30, 120), "n_pairs": 12, "n_treated_pairs": 5}
    full = rp.simulate_nlca(seed=21, effects=effects, **kwargs)
    trial = simulate_arrays(21, None, effects, GeneratorSettings(**kwargs), outcomes=(outcome,))
    assert "cns_seen" not in trial.outcomes["y"]  # the other outcomes were not simulated
    want = full[outcome].to_numpy(dtype=float, na_value=np.nan)
    np.testing.assert_array_equal(trial.outcomes["y"][outcome], want)
    if outcome == "survival_days":
        np.testing.assert_array_equal(trial.outcomes["y"]["died"], full["died"].to_numpy(dtype=float))
    assert trial.truth["risk_difference"].get(outcome) == full.attrs["truth"]["risk_difference"].get(outcome)
    assert trial.truth["pairs"] == full.attrs["truth"]["pairs"]
    with pytest.raises(rp.ParameterError, match="unknown outcome"):
        simulate_arrays(21, None, {}, GeneratorSettings(**kwargs), outcomes=("no_such",))


@pytest.mark.fixture
def test_calibration_hits_the_target_rate_with_recording_and_cap():
    """α per year solves mean(recorded × expit(α + η)) = target (capped at 0.999 × the recorded share)."""
    from scipy.special import expit

    from rp2pr_eval.synthetic.outcomes_model import calibrate_intercepts as calibrate

    rng = np.random.default_rng(4)
    key_year = np.repeat(np.arange(3), 50)
    eta = rng.normal(0, 1.5, 150)
    count = rng.integers(0, 6, 150)
    count[key_year == 2] = 0                                   # a year without eligible patients
    recorded = np.minimum(count, rng.integers(0, 6, 150)).astype(float)
    targets = np.array([0.3, 0.95, 0.5])                      # 0.95 exceeds the recorded share in year 1
    alpha = calibrate(eta, key_year, targets, count, recorded)
    for j in range(2):
        sel = key_year == j
        share = recorded[sel].sum() / count[sel].sum()
        goal = min(targets[j], 0.999 * share)
        achieved = (recorded[sel] * expit(alpha[j] + eta[sel])).sum() / count[sel].sum()
        assert achieved == pytest.approx(goal, abs=1e-13)
    assert 0.999 * recorded[key_year == 1].sum() / count[key_year == 1].sum() < 0.95
    assert alpha[2] == 0.0
