"""The referee's checks in the run: add_referee_checks, their saved record, the summary table, figures and flow redrawn."""
from __future__ import annotations

import dataclasses
import json
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

import rp2pr_eval as rp
from rp2pr_eval.errors import DataError, ParameterError
from rp2pr_eval.pipeline.audit import audit_run
from rp2pr_eval.pipeline.config import RunConfig, load_run_config
from rp2pr_eval.pipeline.referee import protected_baseline_points
from rp2pr_eval.presentation import referee
from rp2pr_eval.presentation.disclosure import DisclosurePolicy
from rp2pr_eval.presentation.flow import flow_table, load_flow, save_flow
from rp2pr_eval.results.sensitivity import SensitivityChecks

matplotlib.use("Agg", force=False)
pytestmark = pytest.mark.fixture

FAST = dict(n_sims=200, grid_points=100, effect_modification_draws=200)


@pytest.fixture(scope="module")
def small_analysis(small_patients):
    return rp.analyse_outcome(small_patients, "active_treatment", estimators=["ancova", "event_study"])


@pytest.fixture(scope="module")
def checked(small_patients, small_analysis):
    return rp.add_referee_checks(small_analysis, small_patients, seed=7, placebo_outcomes=["active_treatment"], **FAST)


# --------------------------------------------------------------------------- what add_referee_checks runs
def test_checks_equal_the_direct_calls(small_patients, small_analysis, checked):
    s = checked.sensitivity
    assert small_analysis.sensitivity is None and checked.effects is small_analysis.effects   # a copy, input untouched
    assert s.skipped == {} and set(s.timings) == set(rp.pipeline.referee.REFEREE_CHECKS)
    for restriction in ("relative_magnitudes", "smoothness"):
        direct = rp.parallel_trends_sensitivity(small_analysis.event_study, restriction, n_sims=200, grid_points=100,
                                                seed=7)
        pd.testing.assert_frame_equal(s.parallel_trends[restriction].to_frame(), direct.to_frame())
        assert s.parallel_trends[restriction].breakdown == direct.breakdown
    inter, within = rp.effect_modification(small_patients, "active_treatment", n_draws=200, seed=7)
    assert s.effect_modification_effect("interaction").estimate == inter.estimate
    assert s.effect_modification_effect("interaction").details["ri_p_value"] == inter.details["ri_p_value"]
    assert s.effect_modification_effect("within_pair").estimate == within.estimate
    assert "points" not in s.effect_modification_effect("interaction").details     # kept apart, protected
    lopo = rp.leave_one_pair_out(small_patients, "active_treatment")
    pd.testing.assert_frame_equal(s.leave_one_pair_out.drop(columns="seconds"), lopo.drop(columns="seconds"))
    assert s.placebo_in_time.estimate == rp.placebo_in_time(small_patients, "active_treatment").estimate
    assert s.placebo_outcome.estimator == "ancova+placebo_outcome"
    assert s.placebo_outcome.estimate == checked.effects["ancova"].estimate
    summary = s.leave_one_pair_out_summary()
    assert summary["min"] == lopo["estimate"].min() and summary["max"] == lopo["estimate"].max()
    assert summary["largest"][0] == (lopo["pair_id"].iloc[0], lopo["shift"].iloc[0])   # sorted by |shift|


def test_checks_record_what_does_not_apply(small_patients, small_analysis):
    surv = rp.analyse_outcome(small_patients, "survival_days", estimators=["did_cox"])
    s = rp.add_referee_checks(surv, small_patients, **FAST).sensitivity
    assert all(v == "does not apply to time_to_event outcomes" for k, v in s.skipped.items() if k != "placebo_outcome")
    no_es = dataclasses.replace(small_analysis, event_study=None, skipped={"event_study": "not requested"})
    s = rp.add_referee_checks(no_es, small_patients, checks=["parallel_trends", "placebo_in_time"], **FAST).sensitivity
    assert s.skipped["parallel_trends"].startswith("needs the event study")
    assert s.skipped["effect_modification"] == "not requested" and s.placebo_in_time is not None
    assert s.skipped["placebo_outcome"] == "not requested"
    one_pre = rp.StudyDesign(pre_years=(2009,), during_years=(2010, 2011), post_years=(2012, 2013))
    s = rp.add_referee_checks(small_analysis, small_patients[small_patients["audit_year"] >= 2009], design=one_pre,
                              checks=["placebo_in_time"], **FAST).sensitivity
    assert s.skipped["placebo_in_time"].startswith("does not apply to this design")
    cont = rp.analyse_outcome(small_patients, "days_referral_to_treatment", estimators=["ancova"])
    s = rp.add_referee_checks(cont, small_patients, checks=["effect_modification", "leave_one_pair_out"],
                              **FAST).sensitivity
    assert s.skipped["effect_modification"] == "does not apply to continuous outcomes"
    assert s.scale == "log_ratio" and len(s.leave_one_pair_out) == 12


def test_bad_options_are_refused(small_patients, small_analysis):
    with pytest.raises(ValueError, match="unknown check"):
        rp.add_referee_checks(small_analysis, small_patients, checks=["jackknife"])
    with pytest.raises(ValueError, match="estimator='gee'.*ancova"):
        rp.add_referee_checks(small_analysis, small_patients, estimator="gee")
    with pytest.raises(ParameterError, match="effect_modification_draws"):
        rp.add_referee_checks(small_analysis, small_patients, effect_modification_draws=10)
    with pytest.raises(ParameterError, match="m_smoothness"):
        rp.add_referee_checks(small_analysis, small_patients, m_smoothness=[-1.0])
    with pytest.raises(ParameterError, match="list of outcome names"):
        rp.add_referee_checks(small_analysis, small_patients, placebo_outcomes="active_treatment")
    with pytest.raises(TypeError, match="OutcomeAnalysis"):
        rp.add_referee_checks({"outcome": "active_treatment"}, small_patients)


# --------------------------------------------------------------------------- saved with the results
def test_saved_and_loaded_without_refitting(tmp_path, checked):
    path = checked.save(tmp_path / "results", timings_dir=tmp_path / "timings")
    first = (tmp_path / "results" / "active_treatment.extras.json").read_bytes()
    extras = json.loads(first)
    assert set(extras["sensitivity"]) >= {"parallel_trends", "effect_modification", "leave_one_pair_out",
                                          "placebo_in_time", "placebo_outcome", "skipped", "settings"}
    assert "seconds" not in extras["sensitivity"]["leave_one_pair_out"][0]            # timings are not results
    assert all(v["seconds"] is None for v in extras["sensitivity"]["parallel_trends"].values())
    assert {"n_pre", "n_post"}.isdisjoint(extras["sensitivity_points"][0])             # rates only
    timings = json.loads((tmp_path / "timings" / "active_treatment.json").read_text())
    assert set(timings["referee_checks"]) == set(checked.sensitivity.timings) and "ancova" in timings["estimators"]
    back = rp.OutcomeAnalysis.load(tmp_path / "results", "active_treatment")
    assert back.sensitivity.to_dict() == checked.sensitivity.to_dict()
    pd.testing.assert_frame_equal(back.sensitivity.baseline_points, checked.sensitivity.baseline_points)
    assert back.sensitivity.parallel_trends["smoothness"].breakdown == \
        checked.sensitivity.parallel_trends["smoothness"].breakdown
    back.save(tmp_path / "results")                                                   # load → save: same bytes
    assert (tmp_path / "results" / "active_treatment.extras.json").read_bytes() == first
    assert path.exists()


def test_old_results_without_the_checks_still_load(tmp_path, small_analysis):
    small_analysis.save(tmp_path)
    extras = json.loads((tmp_path / "active_treatment.extras.json").read_text())
    assert "sensitivity" not in extras and "sensitivity_points" not in extras       # unchanged files without checks
    back = rp.OutcomeAnalysis.load(tmp_path, "active_treatment")
    assert back.sensitivity is None
    assert "were not run" in back.show("leave_one_pair_out").data
    assert referee.sensitivity_summary(tmp_path).empty
    assert referee.redraw_outcome_referee_figures(tmp_path, tmp_path / "fig", "active_treatment") == []


def test_show_gives_each_check_or_the_reason(checked):
    assert checked.show("parallel_trends_smoothness") is checked.sensitivity.parallel_trends["smoothness"]
    assert checked.show("effect_modification_within_pair").estimator == "effect_modification_within_pair"
    text = checked.show("leave_one_pair_out").data
    s = checked.sensitivity.leave_one_pair_out_summary()
    assert f"{100 * s['min']:.2f}" in text and s["largest"][0][0] in text
    skipped = dataclasses.replace(checked.sensitivity, placebo_in_time=None, skipped={"placebo_in_time": "why"})
    assert "placebo_in_time: why" in skipped.show("placebo_in_time").data
    with pytest.raises(ValueError, match="not a referee check"):
        checked.sensitivity.show("jackknife")


def test_small_counts_are_withheld_from_the_points(tmp_path, small_patients):
    patients = small_patients.copy()
    trust = sorted(patients["trust_id"].unique())[0]
    rows = patients.index[(patients["trust_id"] == trust) & patients["audit_year"].isin([2008, 2009])]
    patients.loc[rows, "active_treatment"] = 0
    patients.loc[rows[:2], "active_treatment"] = 1                     # 2 events in the trust's pre period: small
    analysis = rp.analyse_outcome(patients, "active_treatment", estimators=["ancova"])
    checked = rp.add_referee_checks(analysis, patients, checks=["effect_modification"], **FAST)
    pts = checked.sensitivity.baseline_points
    row = pts[pts["trust_id"] == trust].iloc[0]
    assert row["withheld"] and math.isnan(row["baseline"]) and math.isnan(row["change"])
    assert pts["withheld"].sum() == analysis.panel_period.loc[analysis.panel_period["withheld"], "trust_id"].nunique()
    shown = checked.sensitivity.interaction_with_points()
    assert trust not in {p["trust_id"] for p in shown.details["points"]}
    assert shown.details["points_withheld"] == int(pts["withheld"].sum())
    checked.save(tmp_path / "results")
    assert audit_run(tmp_path) == []
    # the same file with the raw counts put back is caught by the audit
    extras = json.loads((tmp_path / "results" / "active_treatment.extras.json").read_text())
    extras["sensitivity_points"][0]["n_pre"] = 3
    (tmp_path / "results" / "active_treatment.extras.json").write_text(json.dumps(extras))
    assert audit_run(tmp_path)


def test_protected_points_blank_rates_of_withheld_trusts():
    points = pd.DataFrame({"trust_id": ["A", "B"], "pair_id": ["P1", "P1"], "arm": ["control"] * 2,
                           "baseline": [0.1, 0.2], "post": [0.3, 0.3], "change": [0.2, 0.1], "n_pre": [3, 40],
                           "n_post": [50, 40], "low_in_pair": [True, False]})
    out = protected_baseline_points(points, {"A"})
    assert out["withheld"].tolist() == [True, False] and out["baseline"].isna().tolist() == [True, False]
    assert "n_pre" not in out and out.loc[1, "change"] == 0.1


# --------------------------------------------------------------------------- the summary table
def test_sensitivity_summary_reads_saved_results(tmp_path, small_patients, checked):
    checked.save(tmp_path)
    cont = rp.analyse_outcome(small_patients, "days_referral_to_treatment", estimators=["ancova", "event_study"])
    rp.add_referee_checks(cont, small_patients, checks=["parallel_trends", "effect_modification", "leave_one_pair_out"],
                          **FAST).save(tmp_path)
    frame = rp.sensitivity_summary(tmp_path)
    assert list(frame.columns) == list(referee.SENSITIVITY_COLUMNS)
    assert frame["outcome"].tolist() == ["active_treatment", "days_referral_to_treatment"]   # registry order
    row = frame.iloc[0]
    s = checked.sensitivity
    assert row["breakdown_relative_magnitudes"] == s.parallel_trends["relative_magnitudes"].breakdown
    assert row["breakdown_smoothness"] == s.parallel_trends["smoothness"].breakdown
    em = s.effect_modification_effect("interaction")
    assert (row["effect_modification"], row["effect_modification_ci_low"], row["effect_modification_ci_high"]) == \
        (em.estimate, em.ci_low, em.ci_high)
    assert row["effect_modification_ri_p"] == em.details["ri_p_value"]
    assert row["lopo_min"] == s.leave_one_pair_out["estimate"].min()
    assert row["lopo_max"] == s.leave_one_pair_out["estimate"].max()
    assert row["lopo_full"] == checked.effects["ancova"].estimate
    assert row["placebo_outcome"] == checked.effects["ancova"].estimate and row["not_run"] == ""
    cont_row = frame.iloc[1]
    assert math.isnan(cont_row["effect_modification"]) and cont_row["scale"] == "log_ratio"
    assert "effect_modification: does not apply to continuous outcomes" in cont_row["not_run"]
    assert frame.select_dtypes("number").shape[1] == 24                                    # numbers stay numbers
    written = referee.export_sensitivity_summary(tmp_path, tmp_path / "tables")
    assert [p.name for p in written] == ["sensitivity.csv", "sensitivity.tex", "sensitivity.md", "sensitivity.html"]
    back = pd.read_csv(tmp_path / "tables" / "sensitivity.csv")
    assert np.allclose(back["Leave one pair out: lowest"], [100 * row["lopo_min"], np.exp(cont_row["lopo_min"])],
                       rtol=1e-12)                                # percentage points; the waiting time as a ratio
    assert back["Leave one pair out: lowest"].dtype == float         # numbers stay numbers in the CSV
    assert referee.sensitivity_summary(tmp_path, ["days_referral_to_treatment", "mdt_discussed"])["outcome"].tolist() \
        == ["days_referral_to_treatment"]


def test_sensitivity_tables_use_labels_units_and_words(tmp_path, small_patients, checked):
    """tables/sensitivity.*: headers and values in words with units, no code names; numbers in the CSV."""
    checked.save(tmp_path)
    cont = rp.analyse_outcome(small_patients, "days_referral_to_treatment", estimators=["ancova", "event_study"])
    rp.add_referee_checks(cont, small_patients, checks=["parallel_trends", "leave_one_pair_out", "placebo_in_time"],
                          **FAST).save(tmp_path)
    summary = rp.sensitivity_summary(tmp_path)
    table = referee.sensitivity_table(summary)
    assert list(table.columns) == [h for h, _, _ in referee.SENSITIVITY_TABLE_COLUMNS]
    assert not [h for h in table.columns if "_" in h or "lopo" in h or h in referee.SENSITIVITY_COLUMNS]
    assert table["Outcome"].tolist() == [rp.OUTCOMES["active_treatment"].label,
                                         rp.OUTCOMES["days_referral_to_treatment"].label]
    assert table["Scale"].tolist() == ["percentage points", "ratio"]
    assert table["Leave one pair out: estimator"].tolist() == ["ANCOVA (primary)"] * 2
    assert "Effect modification: not requested" not in " ".join(table["Checks not run (why)"])
    assert not any("_" in str(v) for v in table["Checks not run (why)"])
    s = checked.sensitivity
    assert table.loc[0, "Effect modification (pp per 10 pp of baseline rate)"] == pytest.approx(
        100 * s.effect_modification_effect("interaction").estimate, rel=1e-12)
    assert table.loc[0, "Breakdown M (smoothness; pp per year, log scale per year for ratios)"] == pytest.approx(
        100 * summary.loc[0, "breakdown_smoothness"]) or math.isinf(summary.loc[0, "breakdown_smoothness"])
    assert table.loc[1, "Placebo in time"] == pytest.approx(np.exp(summary.loc[1, "placebo_in_time"]), rel=1e-12)
    assert table.loc[1, "Placebo in time: p"] == summary.loc[1, "placebo_in_time_p"]
    written = referee.export_sensitivity_summary(tmp_path, tmp_path / "tables")
    text = {p.suffix: p.read_text(encoding="utf-8") for p in written}
    for suffix in (".csv", ".md", ".html", ".tex"):
        assert "lopo_" not in text[suffix] and "log_ratio" not in text[suffix], suffix
    assert "Days from referral to first treatment" in text[".md"] and "percentage points" in text[".html"]
    back = pd.read_csv(tmp_path / "tables" / "sensitivity.csv")
    assert back.select_dtypes("number").shape[1] >= 20


# --------------------------------------------------------------------------- figures from saved results
def test_referee_figures_redrawn_from_saved_results(tmp_path, checked, monkeypatch):
    import matplotlib.pyplot as plt

    checked.save(tmp_path / "results")
    loaded = rp.OutcomeAnalysis.load(tmp_path / "results", "active_treatment")

    def no_fitting(*args, **kwargs):
        raise AssertionError("a figure refitted a model")

    for name in ("ancova", "effect_modification", "leave_one_pair_out", "parallel_trends_sensitivity"):
        monkeypatch.setattr(rp, name, no_fitting)
    monkeypatch.setattr("rp2pr_eval.estimators.did.ancova", no_fitting)
    before = dict(matplotlib.rcParams)
    figs = referee.referee_figures(loaded, tmp_path / "figures")
    assert all(f is not None for f in figs.values())
    assert len(figs["sensitivity"].axes) == 2
    assert sorted(p.name for p in (tmp_path / "figures").glob("*.svg")) == [
        "active_treatment_effect_modification.svg", "active_treatment_leave_one_pair_out.svg",
        "active_treatment_sensitivity.svg"]
    assert not plt.get_fignums() and dict(matplotlib.rcParams) == before              # closed, no global state
    first = (tmp_path / "figures" / "active_treatment_sensitivity.svg").read_bytes()
    referee.redraw_outcome_referee_figures(tmp_path / "results", tmp_path / "figures", "active_treatment")
    assert (tmp_path / "figures" / "active_treatment_sensitivity.svg").read_bytes() == first   # reproducible


def test_leave_one_pair_out_figure_scale(small_patients):
    frame = rp.leave_one_pair_out(small_patients, "days_referral_to_treatment")
    ax = rp.figures.plot_leave_one_pair_out(frame, scale="log_ratio")
    xs = np.concatenate([line.get_xdata() for line in ax.lines if len(line.get_xdata()) > 2])
    assert np.allclose(np.sort(xs), np.sort(np.exp(frame["estimate"].to_numpy())))         # ratios, not log ratios
    assert ax.get_xlabel() == "Ratio (intervention / control), pair left out"
    assert ax.get_xscale() == "log" and 1 in list(ax.get_xticks())
    assert any(list(line.get_xdata()) == [1.0, 1.0] for line in ax.lines)                  # reference line at 1
    ax = rp.figures.plot_leave_one_pair_out(frame.assign(outcome="x"))
    assert "percentage points" in ax.get_xlabel()


# --------------------------------------------------------------------------- the flow record
def test_flow_saved_protected_and_redrawn(tmp_path, small_patients):
    flow = rp.flow_counts(small_patients)
    flow.loc[(flow["stage"] == "analysed") & (flow["period"] == "post"), "patients"] = 3     # a small count
    table = save_flow(flow, tmp_path / "results", tables_dir=tmp_path / "tables")
    record = json.loads((tmp_path / "results" / "flow.json").read_text())
    assert record["schema"] == "rp2pr_eval.flow" and record["disclosure"] == "threshold"
    post = [r for r in record["rows"] if r["stage"] == "analysed" and r["period"] == "post"]
    assert {r["patients"] for r in post} == {"<5"}                                           # suppressed
    loaded = load_flow(tmp_path / "results")
    assert loaded.attrs["flow_protected"] == "threshold"
    assert loaded["trusts"].tolist() == table["trusts"].tolist()
    assert flow_table(loaded) is loaded                                                      # not protected twice
    with pytest.raises(DataError, match="protected under 'threshold'"):
        flow_table(loaded, policy=DisclosurePolicy.from_preset("nhsd_2018"))
    fig = referee.flow_figure(tmp_path / "results", tmp_path / "figures")
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "<5 patients" in texts and "Invited\n156 trusts" in texts and "n = " not in texts
    assert (tmp_path / "figures" / "flow_diagram.svg").exists()
    assert (tmp_path / "tables" / "flow.csv").read_text().count("<5") == 2
    assert audit_run(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="01_descriptives"):
        load_flow(tmp_path / "elsewhere")


def test_figures_command_redraws_the_referee_figures_and_the_flow(tmp_path, small_patients, checked):
    run = tmp_path / "run"
    checked.save(run / "results")
    save_flow(rp.flow_counts(small_patients), run / "results")
    config = load_run_config().with_overrides(outcomes=("active_treatment",))
    (run / "manifest.json").write_text(json.dumps({"parameters": config.to_dict()}))
    written = rp.report.regenerate_figures(run, n_jobs=1)
    names = {p.name for p in written}
    assert {"active_treatment_sensitivity.svg", "active_treatment_effect_modification.svg",
            "active_treatment_leave_one_pair_out.svg", "flow_diagram.svg", "forest.svg"} <= names
    assert all((run / "figures" / n).exists() for n in names)


# --------------------------------------------------------------------------- parameters
def test_run_yaml_sensitivity_section(tmp_path):
    import shutil

    from tests.conftest import BUNDLED, ROOT

    folder = tmp_path / "params"
    shutil.copytree(ROOT / "parameters", folder)
    config = load_run_config(folder)
    assert config.sensitivity.effect_modification_draws == 2000 and config.sensitivity.placebo_outcomes == ()
    assert RunConfig.from_dict(config.to_dict()).sensitivity == config.sensitivity
    old = config.to_dict()
    del old["sensitivity"]                                               # a manifest from before the checks
    assert RunConfig.from_dict(old).sensitivity == rp.pipeline.config.SensitivitySettings()
    run_yaml = (folder / "run.yaml").read_text()
    for bad, message in (("n_sims: 1000", "sensitivity.n_sims must be ≥ 100"),
                         ("placebo_outcomes: []", "unknown outcome 'nothing'"),
                         ("estimator: ancova             # refitted", "sensitivity.'estimator' = 'gee'"),
                         ("m_smoothness: null", "m_smoothness must be null or a non-empty list"),
                         ("checks: [parallel_trends,", "unknown check 'jackknife'")):
        replacement = {"n_sims: 1000": "n_sims: 10", "placebo_outcomes: []": "placebo_outcomes: [nothing]",
                       "estimator: ancova             # refitted": "estimator: gee             # refitted", "m_smoothness: null": "m_smoothness: [-0.1]",
                       "checks: [parallel_trends,": "checks: [jackknife, parallel_trends,"}[bad]
        (folder / "run.yaml").write_text(run_yaml.replace(bad, replacement, 1))
        with pytest.raises(ParameterError, match=message):
            load_run_config(folder)
    (folder / "run.yaml").write_text(run_yaml.replace("  n_sims: 1000", "  n_sim: 1000", 1))
    with pytest.raises(ParameterError, match="unknown key sensitivity.'n_sim'"):
        load_run_config(folder)
    (folder / "run.yaml").write_text(run_yaml.replace("placebo_outcomes: []", "placebo_outcomes: [stage_recorded]"))
    from rp2pr_eval.pipeline import notebook_setup

    options = notebook_setup("10_outcome_analysis", params=folder, outcome="stage_recorded",
                             data_path=BUNDLED).sensitivity_options
    assert options["placebo_outcomes"] == ["stage_recorded"] and options["level"] == 0.95
    assert options["cluster"] == "pair_id"


def test_sensitivity_checks_from_dict_refuses_other_input():
    with pytest.raises(ValueError, match="SensitivityChecks.from_dict"):
        SensitivityChecks.from_dict({"not": "it"})
    with pytest.raises(ValueError, match="'interaction', 'within_pair'"):
        SensitivityChecks(outcome="x").effect_modification_effect("both")


# --------------------------------------------------------------------------- leave one pair out on trust values
@pytest.mark.parametrize("outcome, estimator", [("active_treatment", "ancova"), ("days_referral_to_treatment", "ancova"),
                                                ("nsclc_resection", "did_aggregate")])
def test_leave_one_pair_out_on_trust_values_equals_refitting_patients(small_patients, monkeypatch, outcome, estimator):
    from rp2pr_eval.inference import influence

    fit = getattr(rp, estimator)
    fast = rp.leave_one_pair_out(small_patients, outcome, fit)
    calls = []
    monkeypatch.setattr(influence, "_TRUST_VALUE_ESTIMATORS", {})            # the refit-on-patients path
    slow = rp.leave_one_pair_out(small_patients, outcome, lambda *a, **k: calls.append(1) or fit(*a, **k))
    assert len(calls) == 13                                                   # full data + 12 pairs refitted
    columns = ["pair_id", "arm", "estimate", "se", "ci_low", "ci_high", "p_value", "shift", "rank", "jackknife_se"]
    pd.testing.assert_frame_equal(fast[columns], slow[columns], rtol=1e-10)


def test_leave_one_pair_out_falls_back_to_patients_when_the_values_path_disagrees(small_patients, monkeypatch):
    from rp2pr_eval.inference import influence

    refits = []

    def counted(*args, **kwargs):
        refits.append(1)
        return rp.ancova(*args, **kwargs)

    monkeypatch.setattr(influence, "_TRUST_VALUE_ESTIMATORS", {counted: "did_aggregate"})   # the wrong spec
    frame = rp.leave_one_pair_out(small_patients, "active_treatment", counted)
    assert len(refits) == 13                                  # the check failed: every pair refitted on patients
    assert np.isclose(frame["full_estimate"].iloc[0], rp.ancova(small_patients, "active_treatment").estimate)
