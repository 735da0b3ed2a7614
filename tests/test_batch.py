"""Notebooks through Papermill and the run command end to end, on a small synthetic dataset.

Asserts on what the notebooks save (recommenders' functional notebook tests), not merely that they ran.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import rp2pr_eval as rp
from rp2pr_eval.cli import main
from rp2pr_eval.pipeline import batch
from rp2pr_eval.pipeline.config import load_run_config
from tests.conftest import ROOT

pytestmark = pytest.mark.notebook

OUTCOMES = ["active_treatment", "cns_seen", "days_referral_to_treatment", "survival_days"]


def _write_params(folder: Path, data: Path, out: Path, *, outcomes=OUTCOMES, notebooks=None, jobs=2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    design = yaml.safe_load((ROOT / "parameters" / "design.yaml").read_text())
    design["n_treated_pairs"] = 4                        # the small test data: 4 of 10 pairs treated
    (folder / "design.yaml").write_text(yaml.safe_dump(design))
    run = {
        "data": str(data), "design": str(folder / "design.yaml"), "out": str(out), "seed": 7, "jobs": jobs,
        "notebooks": notebooks or ["00_data_checks", "01_descriptives", "10_outcome_analysis", "20_summary", "30_power"],
        "outcomes": outcomes, "primary_outcomes": ["active_treatment", "cns_seen"],
        "analysis": {"ri_draws": 199, "boot_draws": 199, "n_quad": 5},
        "power": {"outcome": "active_treatment", "estimator": "ancova", "effects": [0.0, 1.0], "n_sims": 6,
                  "plan_from_data": True},
    }
    (folder / "run.yaml").write_text(yaml.safe_dump(run))
    (folder / "outcomes").mkdir(exist_ok=True)
    (folder / "outcomes" / "survival_days.yaml").write_text("estimators: [did_cox]\n")
    return folder


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    df = rp.simulate_nlca(seed=12, n_pairs=10, n_treated_pairs=4, volume_median=70, volume_clip=(40, 120),
                          effects={"active_treatment": 0.9})
    return rp.save_patients(df, folder / "patients.csv.gz")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, small_data):
    base = tmp_path_factory.mktemp("run")
    params = _write_params(base / "parameters", small_data, base / "outputs")
    assert main(["run", "--params", str(params), "--run-id", "r1", "--quiet"]) == 0
    return base / "outputs" / "r1"


def test_every_notebook_ran_and_the_folder_is_complete(finished_run):
    manifest = json.loads((finished_run / "manifest.json").read_text())
    names = {n["name"]: n for n in manifest["notebooks"]}
    assert set(names) == {"00_data_checks", "01_descriptives", "20_summary", "30_power",
                          *(f"10_outcome_analysis__{o}" for o in OUTCOMES)}
    assert all(n["status"] == "ok" for n in names.values()), [n for n in names.values() if n["status"] != "ok"]
    for n in names.values():
        assert (finished_run / n["ipynb"]).exists() and (finished_run / n["html"]).exists()
    assert manifest["audit"] == []
    assert not list(finished_run.parent.glob(".*partial*"))


def test_outcome_results_recover_the_planted_sign(finished_run):
    effects = {e.details["step"]: e for e in rp.load_effects(finished_run / "results" / "active_treatment.json")}
    assert {"ancova", "did_aggregate", "did_twfe", "did_logistic", "mixed_logistic", "randomisation_test",
            "wild_cluster_bootstrap"} <= set(effects)
    for e in effects.values():
        assert np.isfinite([e.estimate, e.se, e.ci_low, e.ci_high, e.p_value]).all(), e
        assert e.outcome == "active_treatment"
        assert e.estimate > 0, e                     # planted +0.9 on the logit scale
    extras = json.loads((finished_run / "results" / "active_treatment.extras.json").read_text())
    es = extras["event_study"]
    assert 0 <= es["pretrend_p"] <= 1 and es["pretrend_test"] == "HTZ"
    assert extras["randomisation"]["n_draws"] == 199
    cox = rp.load_effects(finished_run / "results" / "survival_days.json")
    assert [e.estimator for e in cox] == ["did_cox"] and cox[0].scale == "log_hazard_ratio"
    days = {e.details["step"]: e for e in rp.load_effects(finished_run / "results" / "days_referral_to_treatment.json")}
    assert days["ancova"].scale == "log_ratio" and "did_logistic" not in days


def test_summary_power_tables_and_report(finished_run):
    assert (finished_run / "figures" / "forest.svg").exists()
    assert (finished_run / "tables" / "primary_results.csv").exists()
    assert (finished_run / "tables" / "table_one.csv").exists()
    power = rp.PowerResult.from_dict(json.loads((finished_run / "results" / "power.json").read_text()))
    rows = dict(zip(power.frame["effect"], power.frame["power"]))
    assert rows[1.0] > rows[0.0]  # power at a large planted effect exceeds the size
    index = (finished_run / "index.html").read_text()
    links = re.findall(r"(?:href|src)='([^']+)'", index)
    assert len(links) >= 10
    for link in links:
        assert (finished_run / link).exists(), link


def test_manifest_records_what_is_needed_to_repeat(finished_run, small_data):
    manifest = json.loads((finished_run / "manifest.json").read_text())
    assert manifest["data_sha256"] == batch.sha256(Path(small_data))
    assert manifest["parameters"]["seed"] == 7 and manifest["parameters"]["analysis"]["ri_draws"] == 199
    assert manifest["versions"]["rp2pr_eval"] and manifest["versions"]["numpy"]


def test_executed_notebooks_show_no_patient_rows(finished_run, small_data):
    ids = set(rp.load_patients(small_data)["patient_id"])
    from rp2pr_eval.pipeline.audit import audit_run

    assert audit_run(finished_run, patient_ids=ids) == []


def test_figures_regenerate_without_refitting(finished_run, monkeypatch):
    import statsmodels.base.model as smm

    def refuse(*a, **k):
        raise AssertionError("a model was fitted")

    monkeypatch.setattr(smm.LikelihoodModel, "fit", refuse)
    monkeypatch.setattr("rp2pr_eval.models.linear.wls", refuse)
    before = {p.name: p.read_bytes() for p in (finished_run / "figures").glob("*.svg")}
    for p in (finished_run / "figures").glob("*_event_study.*"):
        p.unlink()
    assert main(["figures", "--run", str(finished_run), "--jobs", "1"]) == 0   # in-process: the patch applies
    after = {p.name: p.read_bytes() for p in (finished_run / "figures").glob("*.svg")}
    assert after == before                                  # redrawn, byte-identical, nothing refitted


def test_jobs_run_longest_first_so_no_long_notebook_starts_last(tmp_path):
    """The outcome notebooks first (the summary waits for them), the binary outcomes' (every estimator
    and referee check) before the others; then the other notebooks, longest first."""
    config = load_run_config(ROOT / "parameters")
    jobs, summary = batch.plan_jobs(config, params_file=tmp_path / "p.json", staging=tmp_path)
    names = [j.name for j in jobs]
    kinds = [rp.OUTCOMES[j.outcome].kind if j.outcome else None for j in jobs]
    n_binary = kinds.count("binary")
    assert n_binary >= 10 and kinds[:n_binary] == ["binary"] * n_binary
    assert names.index("01_descriptives") < names.index("30_power") < names.index("00_data_checks")
    assert names[-1] == "00_data_checks" and summary.name == "20_summary"
    n_outcomes = sum(j.template == "10_outcome_analysis" for j in jobs)
    assert all(j.template == "10_outcome_analysis" for j in jobs[:n_outcomes])
    assert names[n_outcomes - 1] == "10_outcome_analysis__survival_days"


def test_the_summary_starts_when_the_last_outcome_notebook_ends_not_after_the_quick_checks(tmp_path):
    """Two workers: the summary waits for every outcome notebook (it reads their results) and then goes
    before the jobs still waiting; it never starts while an outcome notebook runs."""
    import threading
    import time as clock

    config = load_run_config(ROOT / "parameters")
    jobs, summary = batch.plan_jobs(config, params_file=tmp_path / "p.json", staging=tmp_path)
    seconds = {j.name: (0.06 if j.template == "10_outcome_analysis" else 0.2) for j in jobs}
    seconds[jobs[0].name] = 1.0                       # one long outcome notebook, ending while checks wait
    log, lock = [], threading.Lock()

    def execute(job):
        with lock:
            log.append(("start", job.name, clock.perf_counter()))
        clock.sleep(seconds.get(job.name, 0.01))
        job.status = "ok"
        with lock:
            log.append(("end", job.name, clock.perf_counter()))
        return job

    batch.run_jobs(jobs, summary, execute, workers=2)
    starts = {n: t for e, n, t in log if e == "start"}
    ends = {n: t for e, n, t in log if e == "end"}
    outcome_ends = [ends[j.name] for j in jobs if j.template == "10_outcome_analysis"]
    assert len(starts) == len(jobs) + 1 and starts["20_summary"] >= max(outcome_ends)
    later = [j.name for j in jobs if starts[j.name] > starts["20_summary"]]
    assert later, "the summary waited for the quick checks"
    assert all(not n.startswith("10_outcome_analysis") for n in later)


# ---------------------------------------------------------------- failures
def test_bad_parameter_file_stops_before_anything_runs(tmp_path, small_data, capsys):
    params = _write_params(tmp_path / "p", small_data, tmp_path / "out")
    text = (params / "run.yaml").read_text().replace("ri_draws:", "ri_drawz:")
    (params / "run.yaml").write_text(text)
    assert main(["run", "--params", str(params), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "run.yaml: unknown key analysis.'ri_drawz'" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_unknown_outcome_on_the_command_line(tmp_path, small_data, capsys):
    params = _write_params(tmp_path / "p", small_data, tmp_path / "out")
    assert main(["run", "--params", str(params), "--outcome", "cns_sen", "--quiet"]) == 2
    assert "unknown outcome 'cns_sen'" in capsys.readouterr().err


def test_existing_output_folder_is_refused(tmp_path, small_data, capsys):
    params = _write_params(tmp_path / "p", small_data, tmp_path / "out")
    (tmp_path / "out" / "r").mkdir(parents=True)
    assert main(["run", "--params", str(params), "--run-id", "r", "--quiet"]) == 2
    assert "output folder already exists" in capsys.readouterr().err


def test_a_failing_notebook_does_not_stop_the_others(tmp_path, small_data, monkeypatch, capsys):
    notebooks = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", notebooks)
    book = json.loads((notebooks / "00_data_checks.ipynb").read_text())
    book["cells"].append({"cell_type": "code", "id": "boom", "metadata": {}, "execution_count": None,
                          "outputs": [], "source": "raise RuntimeError('deliberate failure')"})
    (notebooks / "00_data_checks.ipynb").write_text(json.dumps(book))
    monkeypatch.setattr(batch.paths, "notebooks_dir", lambda: notebooks)
    params = _write_params(tmp_path / "p", small_data, tmp_path / "out", outcomes=["cns_seen"],
                           notebooks=["00_data_checks", "10_outcome_analysis"])
    assert main(["run", "--params", str(params), "--run-id", "f", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "failed: 00_data_checks" in err and "deliberate failure" in err
    manifest = json.loads((tmp_path / "out" / "f" / "manifest.json").read_text())
    status = {n["name"]: n["status"] for n in manifest["notebooks"]}
    assert status == {"00_data_checks": "failed", "10_outcome_analysis__cns_seen": "ok"}
    assert (tmp_path / "out" / "f" / "results" / "cns_seen.json").exists()


def test_rerun_reproduces_results_tables_and_figures_to_the_byte(tmp_path, small_data, capsys):
    params = _write_params(tmp_path / "p", small_data, tmp_path / "out", outcomes=["active_treatment", "cns_seen"],
                           notebooks=["01_descriptives", "10_outcome_analysis", "20_summary"])
    assert main(["run", "--params", str(params), "--run-id", "a", "--quiet"]) == 0
    assert main(["rerun", str(tmp_path / "out" / "a"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "byte-identical" in out
    from rp2pr_eval.pipeline.rerun import compare_runs

    a, b = tmp_path / "out" / "a", tmp_path / "out" / "a-rerun"
    result = compare_runs(a, b, run_id_b="a-rerun")
    every = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    assert result.differences == () and sorted(result.identical + result.normalised) == every  # every file compared
    assert set(result.normalised) <= {"manifest.json", "index.html"} | {f for f in every if f.startswith("notebooks/")}
    assert len(list(a.glob("figures/*.svg"))) >= 8 and len(list(a.glob("tables/*"))) >= 8
    assert any(f.endswith(".png") for f in result.identical)
    # a changed result is reported, and so is a changed number inside a normalised file or an extra file
    (b / "results" / "cns_seen.json").write_text("{}")
    nb = b / "notebooks" / "20_summary.ipynb"
    nb.write_text(nb.read_text(encoding="utf-8").replace("cns_seen", "cns_s33n", 1), encoding="utf-8")
    manifest = json.loads((b / "manifest.json").read_text(encoding="utf-8"))
    manifest["seconds"] = 0.0                                  # a time: not a difference
    (b / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (b / "tables" / "extra.csv").write_text("x\n1\n")
    result = compare_runs(a, b, run_id_b="a-rerun")
    assert result.differences == ("notebooks/20_summary.ipynb: contents differ", "results/cns_seen.json: contents differ",
                                  "tables/extra.csv: only in the rerun")
    assert "manifest.json" in result.normalised


def test_audit_command_flags_patient_rows_and_small_counts(finished_run, small_data, tmp_path, capsys):
    import pandas as pd

    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    assert main(["audit", str(copy), "--data", str(small_data)]) == 0
    leak = rp.load_patients(small_data).head(3)[["patient_id", "trust_id", "age"]]
    leak.to_csv(copy / "tables" / "leak.csv", index=False)
    pd.DataFrame({"group": ["a", "b"], "n": [3, 40]}).to_csv(copy / "tables" / "small.csv", index=False)
    assert main(["audit", str(copy), "--data", str(small_data)]) == 1
    out = capsys.readouterr().out
    assert "tables/leak.csv: shows a 'patient_id' column" in out
    assert "tables/leak.csv: shows 3 patient id(s)" in out
    assert "tables/small.csv" in out


def test_run_from_a_trust_panel(tmp_path, small_data, finished_run, capsys):
    """``rp2pr-eval run --panel``: the trust-level results equal the patient run's; the rest is not applicable."""
    patients = rp.load_patients(small_data)
    binary = [o for o in OUTCOMES if rp.OUTCOMES[o].kind == "binary"]
    panel = pd.concat([rp.trust_panel(patients, o, by="audit_year") for o in binary], ignore_index=True)
    panel_file = tmp_path / "trust_panel.csv"
    panel.drop(columns="rate").to_csv(panel_file, index=False)
    params = _write_params(tmp_path / "parameters", small_data, tmp_path / "outputs",
                           outcomes=["active_treatment", "cns_seen", "days_referral_to_treatment"])
    assert main(["run", "--params", str(params), "--panel", str(panel_file), "--run-id", "p1", "--quiet"]) == 0
    run = tmp_path / "outputs" / "p1"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["data_kind"] == "panel" and manifest["parameters"]["data_kind"] == "panel"
    assert {n["name"] for n in manifest["notebooks"]} == {
        "20_summary", "30_power", *(f"10_outcome_analysis__{o}" for o in
                                    ("active_treatment", "cns_seen", "days_referral_to_treatment"))}
    assert all(n["status"] == "ok" for n in manifest["notebooks"])
    na = manifest["not_applicable"]
    assert "active_treatment / did_logistic: not applicable to a trust panel: a patient-level model needs the " \
           "patient table (case mix per patient)" in na
    assert any(s.startswith("days_referral_to_treatment / ancova: not applicable to a trust panel: it carries "
                            "numerator/denominator counts only") for s in na)
    assert manifest["audit"] == []
    ours = {e.details["step"]: e for e in rp.load_effects(run / "results" / "active_treatment.json")}
    theirs = {e.details["step"]: e for e in rp.load_effects(finished_run / "results" / "active_treatment.json")}
    assert set(ours) == {"ancova", "did_aggregate", "did_twfe", "mixed_linear", "randomisation_test",
                         "wild_cluster_bootstrap"}
    for step, e in ours.items():
        for field in ("estimate", "se", "ci_low", "ci_high", "p_value"):
            assert abs(getattr(e, field) - getattr(theirs[step], field)) <= 1e-12, (step, field)
    # the referee's trust-level checks run from the panel too, with the patient run's numbers
    from rp2pr_eval.results.outcome import OutcomeAnalysis
    ours = OutcomeAnalysis.load(run / "results", "active_treatment").sensitivity
    theirs = OutcomeAnalysis.load(finished_run / "results", "active_treatment").sensitivity
    assert set(ours.skipped) == set(theirs.skipped)
    for a, b in zip(ours.effect_modification, theirs.effect_modification, strict=True):
        assert abs(a.estimate - b.estimate) <= 1e-12 and abs(a.se - b.se) <= 1e-12
    assert ours.leave_one_pair_out["estimate"].to_numpy() == pytest.approx(
        theirs.leave_one_pair_out["estimate"].to_numpy(), abs=1e-12)
    assert abs(ours.placebo_in_time.estimate - theirs.placebo_in_time.estimate) <= 1e-12
    cont = OutcomeAnalysis.load(run / "results", "days_referral_to_treatment").sensitivity
    assert cont.skipped["leave_one_pair_out"].startswith("not applicable to a trust panel")
    # 30_power plans from the run's data (power.plan_from_data): rp.icc of the panel = of the patients
    from rp2pr_eval.inference.power_results import PowerResult
    ours, theirs = (PowerResult.from_dict(json.loads((r / "results" / "power.json").read_text()))
                    for r in (run, finished_run))
    sd = [r.simulate_kwargs["trust_sd"]["active_treatment"] for r in (ours, theirs)]
    assert sd[0] == pytest.approx(sd[1], abs=1e-8)
    assert ours.simulate_kwargs["trust_autocorrelation"] == pytest.approx(
        theirs.simulate_kwargs["trust_autocorrelation"], abs=1e-12)
    assert ours.frame["power"].tolist() == theirs.frame["power"].tolist()
    assert ours.simulations["reject"].tolist() == theirs.simulations["reject"].tolist()
    assert main(["run", "--params", str(params), "--panel", str(panel_file), "--data", str(small_data), "--quiet"]) != 0
    assert "give --data (a patient table) or --panel (a trust panel), not both" in capsys.readouterr().err


def test_report_page_is_self_contained_and_readable(finished_run):
    """index.html: headline sentences, labels, figures inline; every link resolves inside the folder."""
    from html.parser import HTMLParser
    from urllib.parse import unquote, urlparse

    page = (finished_run / "index.html").read_text(encoding="utf-8")

    class Links(HTMLParser):
        def __init__(self):
            super().__init__()
            self.refs: list[tuple[str, str]] = []

        def handle_starttag(self, tag, attrs):
            for name, value in attrs:
                if (tag, name) in (("img", "src"), ("a", "href"), ("link", "href"), ("script", "src")):
                    self.refs.append((tag, value))

    parser = Links()
    parser.feed(page)
    images = [v for t, v in parser.refs if t == "img"]
    assert len(images) >= 3 and all(v.endswith(".png") for v in images)
    root = finished_run.resolve()
    for tag, ref in parser.refs:
        url = urlparse(ref)
        assert not url.scheme and not url.netloc and not ref.startswith("/"), f"{tag} {ref!r} is not relative"
        target = (finished_run / unquote(url.path)).resolve()
        assert target.is_file() and target.is_relative_to(root), f"{tag} {ref!r} does not resolve in the run folder"
    assert ".partial" not in page and "Run <code>r1</code>" in page
    assert "Any anti-cancer treatment: " in page and "percentage points (95 % CI" in page and "Holm p" in page
    assert "ANCOVA (primary)" in page and "lock file SHA-256" in page and "data SHA-256" in page
    manifest = json.loads((finished_run / "manifest.json").read_text())
    assert manifest["git_commit"] is None or manifest["git_commit"] in page
    assert manifest["environment"]["lock_sha256"] in page
    assert "trusts in" in page and "randomised to the intervention" in page


def test_report_page_shows_the_referee_checks_of_every_binary_outcome(finished_run):
    """Issue 17: the report shows breakdown values, effect modification and the leave-one-pair-out range."""
    from rp2pr_eval.presentation.referee import sensitivity_summary

    page = (finished_run / "index.html").read_text(encoding="utf-8")
    summary = sensitivity_summary(finished_run / "results").set_index("outcome")
    binary = [o for o in OUTCOMES if rp.OUTCOMES[o].kind == "binary"]
    assert set(binary) <= set(summary.index)
    assert "<h2>Referee's checks</h2>" in page
    for outcome in binary:
        r = summary.loc[outcome]
        section = page.split("<h2>Referee's checks</h2>", 1)[1]
        row = next(line for line in section.split("<tr>") if line.startswith(f"<td>{r['label']}</td>"))
        assert f"{100 * r['lopo_min']:+.1f} (without {r['lopo_min_pair']})" in row
        assert f"{100 * r['lopo_max']:+.1f} (without {r['lopo_max_pair']})" in row
        if np.isfinite(r["effect_modification"]):
            assert f"{100 * r['effect_modification']:+.1f} pp" in row
        m = r["breakdown_relative_magnitudes"]
        assert (f"{m:.2f}" if np.isfinite(m) else "none found") in row
    wait = summary.loc["days_referral_to_treatment"]          # a waiting time: ratios, as in its figures
    section = page.split("<h2>Referee's checks</h2>", 1)[1]
    row = next(line for line in section.split("<tr>") if line.startswith(f"<td>{wait['label']}</td>"))
    assert f"{np.exp(wait['lopo_min']):.2f} (without {wait['lopo_min_pair']})" in row
    assert f"all pairs {np.exp(wait['lopo_full']):.2f}" in row


def test_report_page_states_patients_truth_methods_and_data_quality(finished_run, small_data, tmp_path):
    """Issue 18, point 3: patients analysed (protected flow), the stored truth beside each estimate, the
    methods in brief with the registry copied into the run folder, data quality; all from the run folder."""
    from rp2pr_eval.data.io import truth_path
    from rp2pr_eval.presentation.report_html import write_report

    page = (finished_run / "index.html").read_text(encoding="utf-8")
    manifest = json.loads((finished_run / "manifest.json").read_text())
    # (a) patients analysed: the protected flow's analysed cells, pre + post, never below the threshold
    flow = json.loads((finished_run / "results" / "flow.json").read_text())
    analysed = [r for r in flow["rows"] if r["stage"] == "analysed"]
    assert analysed and all(r["patients"] is not None and r["patients"] >= 5 for r in analysed)
    before_after = sum(r["patients"] for r in analysed if r["period"] in ("pre", "post"))
    during = sum(r["patients"] for r in analysed if r["period"] == "during")
    design = page.split("<h2>Design</h2>", 1)[1].split("<h2>", 1)[0]
    assert f"Patients analysed: {before_after:,} in the before and after years" in design
    assert f"{during:,} in the during years (event study only)" in design
    # (b) the truth the run recorded is the generator's, and stands beside each estimate
    stored = json.loads(truth_path(small_data).read_text())
    assert manifest["truth"]["effects"] == stored["effects"]
    assert manifest["truth"]["risk_difference"] == stored["risk_difference"]
    primary = page.split("<h2>Primary indicators</h2>", 1)[1].split("</table>", 1)[0]
    assert "<th>True effect (generator)</th>" in primary
    rd = stored["risk_difference"]["active_treatment"]
    row = next(r for r in primary.split("<tr>") if r.startswith("<td>Any anti-cancer treatment</td>"))
    assert row.rstrip().endswith(f"<td class='n'>{100 * rd:+.1f}</td></tr>") and abs(rd) > 0.05  # 0.9 log OR
    section = page.split("<h3 id='active_treatment'>", 1)[1].split("<h3", 1)[0]
    logistic = next(r for r in section.split("<tr>") if r.startswith("<td>Logistic DiD (case-mix)</td>"))
    assert logistic.rstrip().endswith(f"<td class='n'>{np.exp(stored['effects']['active_treatment']):.2f}</td></tr>")
    cox = page.split("<h3 id='survival_days'>", 1)[1].split("<h3", 1)[0]
    assert "<td>Cox DiD</td>" in cox and "<td class='n'>1.00</td></tr>" in cox          # no survival effect planted
    assert "chance alone" in page and "generator&#x27;s truth +" in page
    # (c) methods in brief, the registry rendered into the run folder (its links resolve offline)
    assert "<h2>Methods in brief</h2>" in page and "href='docs/METHODS.html'" in page
    registry = (finished_run / "docs" / "METHODS.html").read_text(encoding="utf-8")
    assert "<h1>Methods registry</h1>" in registry
    links = re.findall(r'href="(methods/[a-z_]+\.html)', registry)
    assert len(links) >= 5 and all((finished_run / "docs" / link).is_file() for link in links)
    # (d) data quality: analysed patients by arm and period (protected), notes, the data-checks notebook
    quality = page.split("<h2>Data quality</h2>", 1)[1].split("<h2>", 1)[0]
    for r in analysed:
        assert f"<td class='n'>{r['patients']:,}</td>" in quality
    assert "Not estimable: active_treatment / gee_logistic" in quality
    assert "href='notebooks/00_data_checks.html'" in quality
    # the page is rebuilt from the run folder alone: a copy whose data file is gone gives the same page
    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    shutil.rmtree(copy / "docs")
    moved = json.loads((copy / "manifest.json").read_text())
    moved["data"] = str(tmp_path / "gone" / "patients.csv.gz")
    (copy / "manifest.json").write_text(json.dumps(moved))
    write_report(copy)
    assert (copy / "index.html").read_text(encoding="utf-8") == page


def test_report_marks_p_values_the_validation_did_not_support(finished_run):
    """Issue 16 item 6: did_logistic's CR1 p-value over-rejected in the validation (0.072 / 0.077), so the page
    marks it descriptive with the reason and names the test to quote instead; validated ones are not marked."""
    page = (finished_run / "index.html").read_text(encoding="utf-8")
    section = page.split("<h3 id='active_treatment'>", 1)[1].split("<h3", 1)[0]
    rows = {r.split("</td>", 1)[0].removeprefix("<td>"): r for r in section.split("<tr>")[1:]}
    assert "† descriptive" in rows["Logistic DiD (case-mix)"]
    assert "† descriptive" not in rows["ANCOVA (primary)"] and "† descriptive" not in rows["Two-way fixed effects"]
    note = section.split("<p class='note'>† Descriptive p-value", 1)[1].split("</p>", 1)[0]
    assert "0.072 / 0.077" in note and "score wild bootstrap" in note
    quote = page.split("<h2>Which p-values to quote</h2>", 1)[1].split("<h2>", 1)[0]
    standing = {r.split("</td>", 1)[0].removeprefix("<td>"): r for r in quote.split("<tr>")[2:]}
    assert "<strong>descriptive</strong>" in standing["Logistic DiD (case-mix)"]
    assert "<td>validated</td>" in standing["ANCOVA (primary)"]
    assert "href='docs/methods/validation.html'" in quote and (finished_run / "docs/methods/validation.html").is_file()
    # the notebook list names each notebook in words, its job name beside it
    assert ("Outcome analysis: Any anti-cancer treatment</a> (<code>10_outcome_analysis__active_treatment</code>)"
            in page)


def test_tables_use_labels_and_units(finished_run):
    """Issue 18, point 4: tables/ under registry labels, estimators in words, risk differences in pp."""
    primary = pd.read_csv(finished_run / "tables" / "primary_results.csv", dtype=str)
    effects = {e.details["step"]: e for e in rp.load_effects(finished_run / "results" / "active_treatment.json")}
    row = primary.set_index("Indicator").loc["Any anti-cancer treatment"]
    e = effects["ancova"]
    assert row["Estimator"] == "ANCOVA (primary)" and row["Scale"] == "Risk difference (percentage points)"
    assert row["Estimate"] == f"{100 * e.estimate:+.1f}" and row["95% CI"] == f"{100 * e.ci_low:+.1f} to {100 * e.ci_high:+.1f}"
    assert row["Trusts"] == "20" and row["Pairs"] == "10"
    everything = (finished_run / "tables" / "all_results.md").read_text(encoding="utf-8")
    for code in ("did_twfe", "did_aggregate", "mixed_linear", "ancova+RI", "| ancova |"):
        assert code not in everything
    assert "| Two-way fixed effects |" in everything and "| ANCOVA, randomisation inference |" in everything
    assert f"| {100 * effects['did_twfe'].estimate:.2f} [" in everything


def test_the_run_writes_the_report_as_one_pdf(finished_run):
    """Issue 18, point 3: report.pdf: a text page with the design, headline sentences (and the truth),
    then one page per saved figure; its text (read with pypdf) holds the headline sentences."""
    from pypdf import PdfReader

    from rp2pr_eval.presentation.report_html import headline_sentence
    from rp2pr_eval.presentation.report_pdf import _figure_pages

    reader = PdfReader(finished_run / "report.pdf")
    figures = _figure_pages(finished_run)
    texts = [" ".join(page.extract_text().split()) for page in reader.pages]
    n_text = next(i for i, t in enumerate(texts) if t.startswith("All outcomes, four estimators"))
    assert len(figures) >= 8 and len(reader.pages) == n_text + len(figures) and n_text >= 2
    first = texts[0]
    summary = rp.report.load_summary(finished_run / "results", OUTCOMES, ["active_treatment", "cns_seen"])
    holm = {e.outcome: e.details["p_adjusted"] for e in summary.primary_holm}
    for e in summary.primary:
        assert " ".join(headline_sentence(e, holm[e.outcome]).split()) in first
    assert "Patients analysed: " in first and "generator's truth +" in first and "chance alone" in first
    # issue 18: the sections of index.html besides the estimates, on the text pages after the first
    sections = " ".join(texts[1:n_text])
    assert texts[1].startswith("Methods in brief")
    for title in ("Methods in brief", "Data quality", "Referee's checks"):
        assert title in sections and f"<h2>{title}</h2>" in page_html(finished_run), title
    assert "ANCOVA (primary) Trust-level weighted regression" in sections and "docs/methods/variance.md" in sections
    assert "Patients analysed pre during post" in sections
    summary_checks = rp.sensitivity_summary(finished_run / "results")
    for r in summary_checks.itertuples():
        assert f"{r.label} (" in sections and "leave one pair out, ANCOVA (primary):" in sections
        if r.scale == "risk_difference":
            assert f"{100 * r.lopo_min:+.1f} (without {r.lopo_min_pair})".replace("-", "−") in sections
    assert any(f.stem.endswith("_effect_modification") for f, _ in figures)
    # the figures are their own vector PDFs, not pixels: a figure page's text holds the figure's words
    for (path, caption), text in zip(figures, texts[n_text:]):
        assert text.startswith(" ".join(caption.split())), (path.stem, text[:80])
        own = text[len(" ".join(caption.split())):].replace(f"figures/{path.stem} (.png, .svg, .pdf)", "")
        assert len(own.split()) >= 3, (path.stem, own)
    assert (finished_run / "report.pdf").stat().st_size < 5e6
    assert not (finished_run / ".report.pdf.partial").exists()


def page_html(run_dir):
    return (run_dir / "index.html").read_text(encoding="utf-8")


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def test_report_page_in_headless_chromium(finished_run, tmp_path):
    """Issue 18: index.html opened from a copied folder in headless Chromium (DevTools protocol, no
    network): every image loads, every link resolves to a file of the copy, no console error."""
    import subprocess
    import time
    import urllib.request
    from urllib.parse import unquote, urlparse

    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium installed (Debian: apt-get install -y chromium; .ci/run installs it)")
    websocket = pytest.importorskip("websocket")
    copy = tmp_path / "copied run"                       # a space in the path, as on a user's desktop
    shutil.copytree(finished_run, copy)
    profile = tmp_path / "profile"
    profile.mkdir()
    proc = subprocess.Popen([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                             "--disable-component-update", "--disable-sync", "--no-first-run",
                             f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 30
        while not (port_file.exists() and port_file.read_text().strip()) and time.time() < deadline:
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        ids = iter(range(1, 10_000))
        events: list[dict] = []

        def call(method: str, **params):
            n = next(ids)
            ws.send(json.dumps({"id": n, "method": method, "params": params}))
            while True:
                msg = json.loads(ws.recv())
                if msg.get("id") == n:
                    assert "error" not in msg, msg
                    return msg.get("result", {})
                events.append(msg)

        for domain in ("Page", "Runtime", "Log", "Network"):
            call(f"{domain}.enable")
        call("Page.navigate", url=(copy / "index.html").as_uri())
        deadline = time.time() + 60
        while not any(e.get("method") == "Page.loadEventFired" for e in events) and time.time() < deadline:
            events.append(json.loads(ws.recv()))
        assert any(e.get("method") == "Page.loadEventFired" for e in events), "the page did not finish loading"
        state = call("Runtime.evaluate", returnByValue=True, expression="""JSON.stringify({
            images: [...document.images].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]),
            links: [...document.querySelectorAll('a[href]')].map(a => a.href),
            title: document.title})""")
        found = json.loads(state["result"]["value"])
        ws.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert len(found["images"]) >= 10
    assert [src for src, ok in found["images"] if not ok] == [], "images that did not load"
    root = copy.resolve()
    assert len(found["links"]) >= 20
    for href in found["links"]:
        url = urlparse(href)
        assert url.scheme == "file", f"link {href} leaves the folder"
        target = Path(unquote(url.path)).resolve()
        assert target.is_file() and target.is_relative_to(root), f"link {href} does not resolve in the copy"
    errors = [e for e in events if e.get("method") in ("Runtime.exceptionThrown", "Network.loadingFailed")
              or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    assert errors == [], errors[:3]
