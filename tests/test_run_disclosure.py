"""A whole run on data where small counts are common is safe to send (issue 13).

Six pairs, a median of 15 patients per trust-year (3 to 40): on the code before issue 13 the run's
``results/<outcome>.extras.json`` held exact trust × year counts of 1–4, ``00_data_checks`` showed
trust-years of a handful of patients and completeness shares beside totals that gave exact counts,
and the audit did not look. Now the audit (which reads every file) passes, the saved panels hold
nothing in the suppressed range, the withheld trust-periods cannot be narrowed to one value from
the arm totals (checked here with the reader's linear programmes, independently of the module),
and the figures are redrawn from the saved results without refitting.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.optimize import linprog

import rp2pr_eval as rp
from rp2pr_eval.cli import main
from rp2pr_eval.pipeline.audit import audit_run
from tests.conftest import ROOT

pytestmark = pytest.mark.notebook

OUTCOMES = ["sclc_chemo", "mdt_discussed"]
K = 5


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny")
    df = rp.simulate_nlca(seed=3, n_pairs=6, n_treated_pairs=2, volume_median=15, volume_clip=(3, 40))
    data = rp.save_patients(df, base / "patients.csv.gz")
    params = base / "parameters"
    params.mkdir()
    design = (ROOT / "parameters" / "design.yaml").read_text().replace("n_treated_pairs: 15", "n_treated_pairs: 2")
    (params / "design.yaml").write_text(design)
    run = {"data": str(data), "design": "design.yaml", "out": str(base / "out"), "seed": 5, "jobs": 2,
           "notebooks": ["00_data_checks", "01_descriptives", "10_outcome_analysis", "20_summary"],
           "outcomes": OUTCOMES, "primary_outcomes": OUTCOMES,
           "analysis": {"estimators": ["ancova", "event_study", "randomisation_test"], "ri_draws": 99,
                        "boot_draws": 99, "n_quad": 5}}
    (params / "run.yaml").write_text(yaml.safe_dump(run))
    assert main(["run", "--params", str(params), "--run-id", "t", "--quiet"]) == 0
    return base / "out" / "t", df


def test_the_run_passes_the_audit_of_every_file(tiny):
    run, df = tiny
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["audit"] == []
    assert all(n["status"] == "ok" for n in manifest["notebooks"]), manifest["notebooks"]
    assert audit_run(run, patient_ids=set(df["patient_id"])) == []


def test_saved_results_hold_no_trust_year_counts_and_no_small_count(tiny):
    run, _ = tiny
    for outcome in OUTCOMES:
        extras = json.loads((run / "results" / f"{outcome}.extras.json").read_text())
        assert extras["panel_year"] is None                      # before: every trust-year, exactly
        trends = pd.DataFrame(extras["trends"])
        assert not {"numerator", "denominator"} & set(trends.columns)
        panel = pd.DataFrame(extras["panel_period"])
        assert set(panel["period"]) <= {"pre", "post"}
        shown = panel[~panel["withheld"]]
        for col in ("numerator", "denominator"):
            assert not shown[col].between(1, K - 1).any()
        assert not (shown["denominator"] - shown["numerator"]).between(1, K - 1).any()
        assert panel.loc[panel["withheld"], ["numerator", "denominator", "rate"]].isna().all().all()
        assert panel["withheld"].any()                            # these data do have small trust-periods


def test_withheld_trust_periods_cannot_be_narrowed_to_one_value(tiny):
    """The reader knows the shown rows and every arm x period total; a withheld row shows nothing."""
    run, df = tiny
    for outcome in OUTCOMES:
        truth = rp.trust_panel(df, outcome, by="period", design=rp.StudyDesign(n_treated_pairs=2))
        truth = truth[truth["period"].isin(["pre", "post"])]
        panel = pd.DataFrame(json.loads((run / "results" / f"{outcome}.extras.json").read_text())["panel_period"])
        merged = truth.merge(panel[["trust_id", "period", "withheld"]], on=["trust_id", "period"])
        assert len(merged) == len(truth)
        for (_, _), g in merged.groupby(["arm", "period"]):
            hidden = g[g["withheld"]]
            if hidden.empty:
                continue
            m = len(hidden)
            # variables e_t, f_t per withheld trust; e + f >= 1; sums fixed by the group totals
            e_left = g["numerator"].sum() - g.loc[~g["withheld"], "numerator"].sum()
            n_left = g["denominator"].sum() - g.loc[~g["withheld"], "denominator"].sum()
            a_eq = np.zeros((2, 2 * m))
            a_eq[0, :m] = 1
            a_eq[1, m:] = 1
            b_eq = [e_left, n_left - e_left]
            a_ub = np.zeros((m, 2 * m))
            for t in range(m):
                a_ub[t, t] = a_ub[t, m + t] = -1
            for var in range(2 * m):
                c = np.zeros(2 * m)
                c[var] = 1
                lo = linprog(c, A_ub=a_ub, b_ub=-np.ones(m), A_eq=a_eq, b_eq=b_eq, method="highs")
                hi = linprog(-c, A_ub=a_ub, b_ub=-np.ones(m), A_eq=a_eq, b_eq=b_eq, method="highs")
                assert lo.status == 0 and hi.status == 0
                assert np.floor(-hi.fun + 1e-6) - np.ceil(lo.fun - 1e-6) >= 1, (outcome, g, var)


def test_data_checks_show_protected_tables(tiny):
    run, df = tiny
    book = json.loads((run / "notebooks" / "00_data_checks.ipynb").read_text())
    html = "".join("".join(o.get("data", {}).get("text/html", "")) for c in book["cells"] for o in c.get("outputs", []))
    assert "<5" in html or "&lt;5" in html                      # a trust-year below 5 patients shows as <5
    per = df.groupby(["audit_year", "trust_id"]).size()
    assert per.min() < K                                        # ... and there is one


def test_figures_are_redrawn_from_the_saved_results(tiny, tmp_path):
    run, _ = tiny
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = {f"{o}_{kind}.svg": (copy / "figures" / f"{o}_{kind}.svg").read_bytes()
              for o in OUTCOMES for kind in ("trends", "funnel") if (copy / "figures" / f"{o}_{kind}.svg").exists()}
    assert len(before) >= 3
    for p in (copy / "figures").glob("*.svg"):
        p.unlink()
    assert main(["figures", "--run", str(copy), "--jobs", "1"]) == 0
    after = {name: (copy / "figures" / name).read_bytes() for name in before}
    assert after == before
    svg = (copy / "figures" / "sclc_chemo_funnel.svg").read_text()
    assert "not shown, small counts" in svg
