"""The data contract: one test per rule of DATA_CONTRACT §1–2 (fixture tests)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import rp2pr_eval as rp
from rp2pr_eval.data import PeriodCoverageWarning

pytestmark = pytest.mark.fixture


def test_valid_frame_is_returned_unchanged(patients):
    out = rp.validate_patients(patients)
    assert out is patients


def _first_trust(df, arm=None):
    trusts = df.drop_duplicates("trust_id")
    if arm:
        trusts = trusts[trusts["arm"] == arm]
    return trusts.iloc[0]


def _set(df, column, row, value):
    df = df.copy()
    if column in df.columns and df[column].dtype != object and not isinstance(value, (int, float)):
        df[column] = df[column].astype(object)
    df.loc[df.index[row], column] = value
    return df


CASES = {
    "missing_column": (lambda d: d.drop(columns=["stage"]), r"required column\(s\) \['stage'\] missing"),
    "missing_two_columns": (lambda d: d.drop(columns=["age", "sex"]), r"\['age', 'sex'\] missing"),
    "duplicate_patient_id": (lambda d: _set(d, "patient_id", 5, d["patient_id"].iloc[4]), r"patient_id.*duplicated ids: N0*5"),
    "empty_patient_id": (lambda d: _set(d, "patient_id", 3, " "), r"'patient_id' has empty identifiers"),
    "numeric_trust_id": (lambda d: d.assign(trust_id=np.arange(len(d))), r"'trust_id' must hold text"),
    "arm_label": (lambda d: _set(d, "arm", 2, "treatment"), r"'arm' has invalid values.*'treatment'"),
    "age_200": (lambda d: _set(d, "age", 7, 200), r"'age' out of range.*200.*18–110"),
    "age_float": (lambda d: _set(d.assign(age=d["age"].astype(float)), "age", 7, 70.5), r"'age' must hold whole numbers"),
    "age_text": (lambda d: _set(d, "age", 7, "old"), r"'age' must be numeric"),
    "ps_7": (lambda d: _set(d, "performance_status", 1, 7), r"'performance_status' out of range.*7"),
    "stage_V": (lambda d: _set(d, "stage", 1, "V"), r"'stage' has invalid values.*'V'"),
    "sex_X": (lambda d: _set(d, "sex", 1, "X"), r"'sex' has invalid values"),
    "histology_missing": (lambda d: _set(d, "histology", 1, None), r"'histology' has 1 missing"),
    "imd_6": (lambda d: _set(d, "imd_quintile", 1, 6), r"'imd_quintile' out of range"),
    "binary_2": (lambda d: _set(d, "active_treatment", 1, 2), r"'active_treatment' must be 0/1"),
    "negative_days": (lambda d: _set(d, "days_referral_to_treatment", int(np.flatnonzero(d["days_referral_to_treatment"].notna())[0]), -3.0),
                      r"'days_referral_to_treatment' must be non-negative"),
    "negative_survival": (lambda d: _set(d, "survival_days", 0, -1.0), r"'survival_days' must be non-negative"),
    "died_without_survival": (lambda d: d.drop(columns=["survival_days"]), r"needs both 'survival_days' and 'died'"),
    "year_outside_design": (lambda d: _set(d, "audit_year", 0, 2015), r"years outside the design.*2015"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_rule_raises_a_clear_error(patients, case):
    mutate, pattern = CASES[case]
    bad = mutate(patients)
    with pytest.raises(rp.DataError, match=pattern):
        rp.validate_patients(bad)


def test_trust_in_two_arms_names_the_trust(patients):
    t = _first_trust(patients)
    other = "control" if t["arm"] == "intervention" else "intervention"
    idx = patients.index[patients["trust_id"] == t["trust_id"]][0]
    patients.loc[idx, "arm"] = other
    with pytest.raises(rp.DataError, match=rf"trust\(s\) {t['trust_id']} appear in more than one arm"):
        rp.validate_patients(patients)


def test_trust_in_two_pairs_names_the_trust(patients):
    t = _first_trust(patients)
    other_pair = patients.loc[(patients["pair_id"] != t["pair_id"]) & (patients["arm"] == t["arm"]), "pair_id"].iloc[0]
    idx = patients.index[patients["trust_id"] == t["trust_id"]][0]
    patients.loc[idx, "pair_id"] = other_pair
    with pytest.raises(rp.DataError, match=rf"{t['trust_id']} appear in more than one pair"):
        rp.validate_patients(patients)


def test_pair_of_three_is_refused(patients):
    t = _first_trust(patients)
    extra = patients[patients["trust_id"] == t["trust_id"]].copy()
    extra["trust_id"] = "T999"
    extra["patient_id"] = "X" + extra["patient_id"]
    bad = pd.concat([patients, extra], ignore_index=True)
    with pytest.raises(rp.DataError, match=rf"pair\(s\) {t['pair_id']} \(3 trusts: .*T999\) do not hold exactly two"):
        rp.validate_patients(bad)


def test_pair_of_one_is_refused(patients):
    t = _first_trust(patients)
    bad = patients[patients["trust_id"] != t["trust_id"]]
    with pytest.raises(rp.DataError, match=rf"{t['pair_id']} \(1 trust: "):
        rp.validate_patients(bad)


def test_pair_with_mixed_arms_is_refused(patients):
    t = _first_trust(patients)
    mate = patients.loc[(patients["pair_id"] == t["pair_id"]) & (patients["trust_id"] != t["trust_id"]), "trust_id"].iloc[0]
    other = "control" if t["arm"] == "intervention" else "intervention"
    patients.loc[patients["trust_id"] == mate, "arm"] = other
    with pytest.raises(rp.DataError, match=rf"pair\(s\) {t['pair_id']} have trusts in different arms"):
        rp.validate_patients(patients)


def test_trust_missing_post_years_warns_or_raises(patients):
    t = _first_trust(patients)
    bad = patients[~((patients["trust_id"] == t["trust_id"]) & patients["audit_year"].isin([2012, 2013]))]
    with pytest.warns(PeriodCoverageWarning, match=rf"{t['trust_id']} have no patients in the post years"):
        rp.validate_patients(bad)
    with pytest.raises(rp.DataError, match=rf"{t['trust_id']} have no patients in the post years"):
        rp.validate_patients(bad, missing_period="raise")


def test_trust_missing_pre_years_warns(patients):
    t = _first_trust(patients)
    bad = patients[~((patients["trust_id"] == t["trust_id"]) & patients["audit_year"].isin([2008, 2009]))]
    with pytest.warns(PeriodCoverageWarning, match="pre years"):
        rp.validate_patients(bad)


def test_empty_frame_and_wrong_type():
    with pytest.raises(rp.DataError, match="no rows"):
        rp.validate_patients(pd.DataFrame({c: [] for c in rp.data.REQUIRED_COLUMNS}))
    with pytest.raises(rp.DataError, match="must be a pandas DataFrame"):
        rp.validate_patients([1, 2, 3])


def test_extra_columns_are_kept(patients):
    patients["something_else"] = "x"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "something_else" in rp.validate_patients(patients).columns


def test_other_sizes_are_accepted():
    df = rp.simulate_nlca(seed=3, n_pairs=20, n_treated_pairs=7, volume_median=40, volume_clip=(20, 80))
    rp.validate_patients(df)
    assert df["pair_id"].nunique() == 20


# ---------------------------------------------------------------- panels
def test_panel_rules(patients):
    panel = rp.trust_panel(patients, "active_treatment")
    assert rp.validate_panel(panel) is panel
    bad = panel.copy()
    bad.loc[bad.index[0], "numerator"] = bad.loc[bad.index[0], "denominator"] + 1
    with pytest.raises(rp.DataError, match="0 ≤ numerator ≤ denominator"):
        rp.validate_panel(bad)
    bad = panel.copy()
    bad.loc[bad.index[0], "denominator"] = 0
    bad.loc[bad.index[0], "numerator"] = 0
    with pytest.raises(rp.DataError, match="denominator > 0"):
        rp.validate_panel(bad)
    bad = panel.copy()
    bad.loc[bad.index[1], "rate"] = 0.0 if bad.loc[bad.index[1], "rate"] > 0 else 0.5
    with pytest.raises(rp.DataError, match="'rate' differs"):
        rp.validate_panel(bad)
    with pytest.raises(rp.DataError, match=r"lacks column\(s\) \['numerator'\]"):
        rp.validate_panel(panel.drop(columns="numerator"))


@pytest.mark.fixture
def test_large_table_rules_checked_on_distinct_values_still_name_the_row(bundled_patients):
    """Large tables check label columns on their distinct values first; a bad value is still found and named."""
    big = bundled_patients
    assert len(big) > 100_000
    bad_stage = big.copy()
    bad_stage.loc[bad_stage.index[70_000], "stage"] = "V"
    with pytest.raises(rp.DataError, match=r"column 'stage' has invalid values at row 70000 \(trust T\d+\): 'V'"):
        rp.validate_patients(bad_stage)
    blank = big.copy()
    blank.loc[blank.index[5], "pair_id"] = "  "
    with pytest.raises(rp.DataError, match=r"column 'pair_id' has empty identifiers at row 5"):
        rp.validate_patients(blank)
    arm = big.copy()
    arm.loc[arm.index[9], "arm"] = "Intervention"
    with pytest.raises(rp.DataError, match=r"column 'arm' has invalid values at row 9"):
        rp.validate_patients(arm)


@pytest.mark.fixture
def test_large_panel_with_a_missing_arm_names_the_trust(bundled_patients):
    """A stacked panel of many outcomes (> 1000 rows) with one trust's arm missing is refused by name."""
    binaries = [n for n, e in rp.OUTCOMES.items() if e.kind == "binary"]
    panel = pd.concat([rp.trust_panel(bundled_patients, o, "audit_year") for o in binaries], ignore_index=True)
    assert len(panel) > 1000
    rp.validate_panel(panel)
    trust = panel["trust_id"].iloc[0]
    gap = panel.assign(arm=panel["arm"].where(panel["trust_id"] != trust, None))
    with pytest.raises(rp.DataError, match=rf"column 'arm' has labels outside the design's arms .*\(trust {trust}\): (None|nan)"):
        rp.validate_panel(gap)


@pytest.mark.fixture
def test_arm_labels_come_from_the_design():
    """DATA_CONTRACT §3: the design names the arm labels; tables using them validate and analyse."""
    design = rp.StudyDesign(intervention_arm="ILCOP", control_arm="usual care")
    patients = rp.simulate_nlca(seed=3, design=design, n_pairs=8, n_treated_pairs=3, volume_median=60,
                                volume_clip=(30, 120))
    assert set(patients["arm"]) == {"ILCOP", "usual care"}
    rp.validate_patients(patients, design=design)
    assert np.isfinite(rp.ancova(patients, "active_treatment", design=design).estimate)
    with pytest.raises(rp.DataError, match=r"column 'arm' has invalid values .*expected 'intervention' or 'control'"):
        rp.validate_patients(patients)  # the default design's labels
