"""Publication tables (rp2pr_eval.tables): Table 1, results, national rates, export.

Fixture tests: every expected number is computed directly from the patient
frame with plain pandas (or written out by hand for the Effects), and the
disclosure tests use frames crafted so that known cells are small.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import rp2pr_eval as rp
from rp2pr_eval import DataError, Effect, StudyDesign
from rp2pr_eval.data.describe import national_rates
from rp2pr_eval.presentation.disclosure import DisclosurePolicy, check_disclosure
from rp2pr_eval.presentation.tables import (
    NATIONAL_COLUMNS,
    TABLE_ONE_COLUMNS,
    disclosure_policy,
    export_table,
    national_table,
    results_table,
    table_one,
)
from rp2pr_eval.results.effect import format_frame

pytestmark = pytest.mark.fixture

DESIGN = StudyDesign()
THRESHOLD = DisclosurePolicy.from_preset()


def cell(tidy: pd.DataFrame, variable: str, level: str, arm: str, period: str) -> pd.Series:
    row = tidy[(tidy["variable"] == variable) & (tidy["level"] == level) & (tidy["arm"] == arm) & (tidy["period"] == period)]
    assert len(row) == 1
    return row.iloc[0]


@pytest.fixture(scope="module")
def crafted(small_patients) -> pd.DataFrame:
    """The small trial with two small cells planted.

    Intervention, pre: only 3 patients keep stage I (the others become stage
    II). Control, post: only 2 patients are female.
    """
    p = small_patients.copy()
    pre = (p["arm"] == "intervention") & p["audit_year"].isin(DESIGN.pre_years)
    stage_one = p.index[pre & (p["stage"] == "I")]
    p.loc[stage_one[3:], "stage"] = "II"
    post = (p["arm"] == "control") & p["audit_year"].isin(DESIGN.post_years)
    p.loc[post, "sex"] = "M"
    p.loc[p.index[post][:2], "sex"] = "F"
    return p


# ---------------------------------------------------------------------------
# Table 1
# ---------------------------------------------------------------------------


def test_table_one_cells_equal_direct_pandas_counts(small_patients):
    p = small_patients
    post = p[(p["arm"] == "control") & p["audit_year"].isin(DESIGN.post_years)]
    pre = p[(p["arm"] == "intervention") & p["audit_year"].isin(DESIGN.pre_years)]
    n_iii = int((post["stage"] == "III").sum())
    n_missing_ps = int(post["performance_status"].isna().sum())
    volumes = pre.groupby(["trust_id", "audit_year"]).size().to_numpy()

    for protect in (False, True):  # all cells here are large: protection leaves them alone
        tidy = table_one(p, layout="tidy", protect=protect)
        assert list(tidy.columns) == list(TABLE_ONE_COLUMNS)
        stage = cell(tidy, "stage", "III", "control", "post")
        assert stage["n"] == n_iii and stage["denominator"] == len(post)
        assert stage["percent"] == pytest.approx(100 * n_iii / len(post))
        assert cell(tidy, "performance_status", "Missing", "control", "post")["n"] == n_missing_ps
        assert cell(tidy, "age_band", "80+", "intervention", "pre")["n"] == int((pre["age"] >= 80).sum())
        assert cell(tidy, "age_band", "<60", "intervention", "pre")["n"] == int((pre["age"] < 60).sum())
        age = cell(tidy, "age", "", "intervention", "pre")
        assert age["mean"] == pytest.approx(pre["age"].mean()) and age["sd"] == pytest.approx(pre["age"].std())
        assert cell(tidy, "patients", "", "intervention", "pre")["n"] == len(pre)
        assert cell(tidy, "trusts", "", "intervention", "pre")["n_trusts"] == pre["trust_id"].nunique()
        vol = cell(tidy, "patients_per_trust_year", "", "intervention", "pre")
        assert vol["median"] == pytest.approx(np.median(volumes))
        assert vol["q1"] == pytest.approx(np.percentile(volumes, 25))

    wide = table_one(p)
    assert list(wide.columns) == ["Characteristic", "Level", "Intervention, pre (2008–2009)",
                                  "Intervention, post (2012–2013)", "Control, pre (2008–2009)",
                                  "Control, post (2012–2013)"]
    row = wide.index[(wide["Level"] == "III")][0]
    assert wide.at[row, "Control, post (2012–2013)"] == f"{n_iii:,} ({100 * n_iii / len(post):.1f}%)"
    assert wide.at[0, "Intervention, pre (2008–2009)"] == f"{len(pre):,}"


def test_table_one_periods_and_groups(small_patients):
    p = small_patients
    during = int(p["audit_year"].isin(DESIGN.during_years).sum())
    tidy = table_one(p, layout="tidy", protect=False)
    assert tidy.attrs["n_dropped"] == {"outside_design_years": 0, "during": during}
    assert set(tidy["period"]) == {"pre", "post"}
    with_during = table_one(p, layout="tidy", protect=False, include_during=True)
    assert with_during.attrs["n_dropped"]["during"] == 0
    assert cell(with_during, "patients", "", "control", "during")["n"] == int(
        ((p["arm"] == "control") & p["audit_year"].isin(DESIGN.during_years)).sum())
    pooled = table_one(p, layout="tidy", protect=False, by=())
    assert cell(pooled, "patients", "", "all", "all")["n"] == len(p) - during
    by_period = table_one(p, by=("period",))
    assert list(by_period.columns[2:]) == ["Pre (2008–2009)", "Post (2012–2013)"]


def test_table_one_small_counts_are_suppressed_and_not_recoverable(crafted):
    """Each variable is one equation per group: its shown levels add up to the shown group size.

    A withheld count is recoverable from that equation only if it is the
    only unknown in it, so every (variable, group) with a withheld count
    must withhold at least two.
    """
    exact = table_one(crafted, layout="tidy", protect=False)
    assert cell(exact, "stage", "I", "intervention", "pre")["n"] == 3
    assert cell(exact, "sex", "F", "control", "post")["n"] == 2

    tidy = table_one(crafted, layout="tidy")
    assert check_disclosure(tidy, policy=THRESHOLD, count_columns=["n", "denominator"]) == []
    assert cell(tidy, "stage", "I", "intervention", "pre")["n"] == "<5"
    assert cell(tidy, "sex", "F", "control", "post")["n"] == "<5"
    # The male row is shown alone, but male = total - 2 would give the 2 away.
    assert cell(tidy, "sex", "M", "control", "post")["n"] == "*"

    counts = tidy[tidy["denominator"].notna()]
    hidden = counts["n"].map(lambda v: isinstance(v, str))
    per_equation = hidden.groupby([counts["variable"], counts["arm"], counts["period"]]).sum()
    assert per_equation.max() >= 2 and not (per_equation == 1).any()
    # Percentages built on a withheld count are withheld.
    assert counts.loc[hidden, "percent"].eq("*").all()
    assert not counts.loc[~hidden, "percent"].map(lambda v: isinstance(v, str)).any()

    wide = table_one(crafted)
    stage_i = wide.index[wide["Level"] == "I"][0]
    assert wide.at[stage_i, "Intervention, pre (2008–2009)"] == "<5"
    assert wide.at[wide.index[wide["Level"] == "Male"][0], "Control, post (2012–2013)"] == "*"


def test_table_one_withholds_means_below_the_minimum_n(small_patients):
    policy = dataclasses.replace(THRESHOLD, min_n_for_summary=1000)
    tidy = table_one(small_patients, layout="tidy", policy=policy)
    n_pre = cell(tidy, "patients", "", "intervention", "pre")["n"]
    assert n_pre < 1000 and cell(tidy, "age", "", "intervention", "pre")["mean"] == "*"
    assert cell(tidy, "age", "", "control", "pre")["n"] >= 1000
    assert isinstance(cell(tidy, "age", "", "control", "pre")["mean"], float)
    # Fewer than 1000 trust-years everywhere: every median (IQR) is withheld.
    assert tidy.loc[tidy["variable"] == "patients_per_trust_year", "median"].eq("*").all()


def test_table_one_nhsd_rounds_counts_and_recomputes_percentages(crafted):
    policy = DisclosurePolicy.from_preset("nhsd_2018")
    tidy = table_one(crafted, layout="tidy", policy=policy)
    assert check_disclosure(tidy, policy=policy, count_columns=["n", "denominator"]) == []
    shown = tidy[tidy["denominator"].notna() & tidy["n"].map(lambda v: not isinstance(v, str))]
    assert (shown["n"].astype(int) % 5 == 0).all()
    expected = 100 * shown["n"].astype(int) / shown["denominator"].astype(int)
    assert np.allclose(shown["percent"].astype(float), expected)


def test_table_one_rejects_bad_options(small_patients):
    with pytest.raises(ValueError, match="by must be a tuple"):
        table_one(small_patients, by="arm")
    with pytest.raises(ValueError, match="by='trust'"):
        table_one(small_patients, by=("arm", "trust"))
    with pytest.raises(ValueError, match="layout='long'"):
        table_one(small_patients, layout="long")
    with pytest.raises(DataError, match="stage"):
        table_one(small_patients.drop(columns="stage"))


# ---------------------------------------------------------------------------
# Results table
# ---------------------------------------------------------------------------


def effect(outcome: str, estimator: str, scale: str, est: float, lo: float, hi: float, p: float) -> Effect:
    return Effect(outcome=outcome, estimator=estimator, estimand="difference in differences", scale=scale,
                  estimate=est, se=0.01, ci_low=lo, ci_high=hi, p_value=p, df=38.0, n_obs=160, n_trusts=80,
                  n_clusters=40, cluster="pair_id", vcov="CR2")


@pytest.fixture()
def effects() -> list[Effect]:
    return [
        effect("cns_seen", "did_aggregate", "risk_difference", 0.05, 0.03, 0.07, 0.0004),
        effect("my_indicator", "did_aggregate", "risk_difference", 0.0, -0.01, 0.01, 1.0),
        effect("active_treatment", "did_aggregate", "risk_difference", 0.021, -0.004, 0.046, 0.1),
        effect("active_treatment", "did_logistic", "log_odds_ratio", 0.12, -0.02, 0.26, 0.09),
    ]


def test_results_table_rows_labels_and_pp_scaling(effects):
    table = results_table(effects)
    assert list(table.columns) == ["Outcome", "Estimator", "Scale", "Estimate [95% CI]", "p"]
    # Registry order (active_treatment before cns_seen), non-registry outcomes last.
    assert table["Outcome"].tolist() == ["Any anti-cancer treatment", "Any anti-cancer treatment",
                                         "Seen by lung cancer nurse specialist", "my_indicator"]
    assert table["Estimator"].tolist() == ["did_aggregate", "did_logistic", "did_aggregate", "did_aggregate"]
    assert table["Scale"].tolist() == ["pp", "log OR", "pp", "pp"]
    assert table["Estimate [95% CI]"].tolist()[:3] == ["2.10 [-0.40, 4.60]", "0.12 [-0.02, 0.26]", "5.00 [3.00, 7.00]"]
    assert table["p"].tolist()[:3] == ["0.100", "0.090", "<0.001"]

    as_proportions = results_table(effects, scale_pp=False)
    assert as_proportions["Estimate [95% CI]"].iloc[2] == "0.050 [0.030, 0.070]"
    assert as_proportions["Scale"].iloc[2] == "proportion"
    # A tidy frame gives the same table as the Effects.
    assert results_table(rp.effects_table(effects)).equals(table)


def test_results_table_adjusted_p_labels_and_wide_layout(effects):
    adjusted = [e.with_details(p_adjusted=min(1.0, 3 * e.p_value), adjust_method="holm") for e in effects]
    table = results_table(adjusted, labels={"did_aggregate": "DiD", "cns_seen": "Nurse specialist"})
    assert table.columns[-1] == "p adj. (holm)"
    assert table["p adj. (holm)"].tolist() == ["0.300", "0.270", "0.001", "1.000"]
    assert table["Outcome"].iloc[2] == "Nurse specialist" and table["Estimator"].iloc[0] == "DiD"
    assert "p adj. (holm)" not in results_table(adjusted, p_adjusted=False).columns

    wide = results_table(adjusted, layout="wide")
    assert list(wide.columns[:2]) == ["Outcome", "Scale"]
    assert len(wide) == 4  # active_treatment appears on two scales
    at = wide[(wide["Outcome"] == "Any anti-cancer treatment") & (wide["Scale"] == "pp")].iloc[0]
    assert at["did_aggregate: Estimate [95% CI]"] == "2.10 [-0.40, 4.60]"
    assert at["did_logistic: Estimate [95% CI]"] == ""


def test_results_table_rejects_ambiguous_or_incomplete_input(effects):
    with pytest.raises(ValueError, match="more than one effect"):
        results_table(effects + [effects[0]])
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['ci_low'\]"):
        results_table(rp.effects_table(effects).drop(columns="ci_low"))
    with pytest.raises(ValueError, match="no effects"):
        results_table([])


def test_format_frame_scale_pp_option(effects):
    frame = rp.effects_table(effects[:1])
    assert format_frame(frame)["estimate"].iloc[0] == "5.000"
    assert format_frame(frame, scale_pp=False)["estimate"].iloc[0] == "0.050"


# ---------------------------------------------------------------------------
# National table
# ---------------------------------------------------------------------------


def test_national_table_reuses_national_rates_with_units(small_patients):
    rates = national_rates(small_patients)
    tidy = national_table(small_patients, protect=False)
    assert list(tidy.columns) == list(NATIONAL_COLUMNS)
    assert len(tidy) == len(rates)
    row = tidy[(tidy["outcome"] == "active_treatment") & (tidy["audit_year"] == 2009)].iloc[0]
    ref = rates[(rates["outcome"] == "active_treatment") & (rates["audit_year"] == 2009)].iloc[0]
    assert row["unit"] == "%" and row["label"] == "Any anti-cancer treatment"
    assert row["value"] == pytest.approx(100 * ref["value"]) and row["reference"] == pytest.approx(58.2)
    assert row["difference"] == pytest.approx(100 * ref["value"] - 58.2)
    assert row["numerator"] == round(ref["value"] * ref["n"]) and row["n"] == ref["n"]
    days = tidy[(tidy["outcome"] == "days_referral_to_treatment") & (tidy["audit_year"] == 2012)].iloc[0]
    assert days["unit"] == "days" and days["reference"] == 42.0

    protected = national_table(small_patients)
    assert check_disclosure(protected, policy=THRESHOLD, count_columns=["numerator", "n"]) == []
    wide = national_table(small_patients, layout="wide")
    assert wide.loc[wide["Outcome"] == "Any anti-cancer treatment", "STUDY.md reference"].iloc[0] == "2009: 58.2; 2012: 61.0"


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


def test_exports_four_formats_byte_identical(small_patients, effects, tmp_path):
    for name, frame in (("table1", table_one(small_patients)), ("results", results_table(effects))):
        first = export_table(frame, tmp_path / "a" / name, caption="A caption & <5")
        second = export_table(frame, tmp_path / "b" / name, caption="A caption & <5")
        assert [p.suffix for p in first] == [".csv", ".tex", ".md", ".html"]
        assert all(p.is_file() and p.stat().st_size > 0 for p in first)
        assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    tex = (tmp_path / "a" / "table1.tex").read_text(encoding="utf-8")
    assert r"\caption{A caption \& \textless{}5}" in tex and "<" not in tex
    md = (tmp_path / "a" / "table1.md").read_text(encoding="utf-8")
    assert THRESHOLD.footnote in md  # the symbols are explained under a protected table
    html = (tmp_path / "a" / "results.html").read_text(encoding="utf-8")
    assert "<caption>A caption &amp; &lt;5</caption>" in html


def test_export_protects_count_columns_of_a_plain_frame(tmp_path):
    frame = pd.DataFrame({"n": [3, 40, 57], "denominator": [60, 60, 60], "percent": [5.0, 66.7, 95.0]},
                         index=pd.Index(["a", "b", "c"], name="group"))
    with pytest.raises(DataError, match=r"count 3 is shown"):
        export_table(frame.drop(columns="percent"), tmp_path / "raw")
    with pytest.raises(DataError, match=r"\['percent'\] are not declared"):
        export_table(frame, tmp_path / "raw", count_columns=["n", "denominator"])
    paths = export_table(frame, tmp_path / "safe", count_columns=["n", "denominator"],
                         percent_columns={"percent": ("n", "denominator")}, margins="columns")
    back = pd.read_csv(paths[0], dtype=str, keep_default_na=False).set_index("group")
    assert back.loc["a", "n"] == "<5" and back.loc["a", "percent"] == "*"
    assert back.loc["b", "n"] == "*"  # secondary: the Total row would give the 3 back
    assert check_disclosure(back, policy=THRESHOLD, count_columns=["n", "denominator"]) == []
    assert frame.loc["a", "n"] == 3  # the input is not changed


def test_export_refuses_patient_level_and_unprotected_frames(small_patients, tmp_path):
    with pytest.raises(DataError, match="patient_id"):
        export_table(small_patients, tmp_path / "p")
    with pytest.raises(DataError, match="one row per patient"):
        export_table(small_patients.drop(columns="patient_id"), tmp_path / "p")
    with pytest.raises(DataError, match="protect=False"):
        export_table(table_one(small_patients, protect=False), tmp_path / "p")
    tidy = table_one(small_patients, layout="tidy")
    with pytest.raises(DataError, match="added after disclosure control"):
        export_table(tidy.assign(extra=1), tmp_path / "p")
    with pytest.raises(DataError, match="protected under 'threshold'"):
        export_table(tidy, tmp_path / "p", policy=DisclosurePolicy.from_preset("hes_legacy"))
    with pytest.raises(ValueError, match="formats='pdf'"):
        export_table(tidy, tmp_path / "p", formats=("pdf",))
    assert not list(tmp_path.iterdir())  # nothing written by a refused export


def test_disclosure_policy_follows_the_design():
    assert disclosure_policy() == DisclosurePolicy.from_preset("threshold", threshold=5)
    assert disclosure_policy(StudyDesign(disclosure_threshold=10)).symbol == "<10"
    assert disclosure_policy(StudyDesign(disclosure="hes_legacy")).threshold == 6
    # a contradiction is refused when the design is made, before any table
    with pytest.raises(rp.ParameterError, match="contradicts disclosure='nhsd_2018', which fixes k = 8"):
        StudyDesign(disclosure="nhsd_2018", disclosure_threshold=3)
