"""A new user's paths through the runner and the notebooks (issue 12): every run subset works, notebooks
run from any folder with the same parameters as the runner, reruns reproduce a default run to the byte,
and a parameter folder is self-contained."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import rp2pr_eval as rp
from rp2pr_eval.cli import main
from rp2pr_eval.pipeline import notebook_setup
from rp2pr_eval.pipeline.config import load_run_config
from tests.conftest import BUNDLED, ROOT

pytestmark = pytest.mark.notebook


def _params(folder: Path, data: Path, *, outcomes, notebooks=None, primary=None, threshold=None) -> Path:
    """A self-contained parameter folder with relative paths (as a user would copy and edit one)."""
    shutil.copytree(ROOT / "parameters", folder)
    run = yaml.safe_load((folder / "run.yaml").read_text())
    shutil.copy(data, folder / data.name)
    run.update({"data": data.name, "out": "../outputs", "seed": 7, "outcomes": outcomes,
                "analysis": {**run["analysis"], "ri_draws": 199, "boot_draws": 199, "n_quad": 5},
                "power": {"outcome": "active_treatment", "estimator": "ancova", "effects": [0.0, 1.0], "n_sims": 4}})
    if notebooks is not None:
        run["notebooks"] = notebooks
    if primary is not None:
        run["primary_outcomes"] = primary
    (folder / "run.yaml").write_text(yaml.safe_dump(run))
    design = yaml.safe_load((folder / "design.yaml").read_text())
    design["n_treated_pairs"] = 4                        # the small test data: 4 of 10 pairs treated
    if threshold is not None:
        design["disclosure_threshold"] = threshold
    (folder / "design.yaml").write_text(yaml.safe_dump(design))
    return folder


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    df = rp.simulate_nlca(seed=12, n_pairs=10, n_treated_pairs=4, volume_median=70, volume_clip=(40, 120),
                          effects={"active_treatment": 0.9})
    return rp.save_patients(df, tmp_path_factory.mktemp("data") / "patients.csv.gz")


# ---------------------------------------------------------------- 2. every run subset works
@pytest.mark.parametrize("outcomes", [["active_treatment", "cns_seen"], ["survival_days"],
                                      ["days_referral_to_treatment"]], ids=["two-primaries", "survival", "waiting"])
def test_any_subset_of_outcomes_runs_summarises_and_redraws(tmp_path, small_data, outcomes, capsys, monkeypatch):
    params = _params(tmp_path / "parameters", small_data, outcomes=outcomes,
                     notebooks=["10_outcome_analysis", "20_summary"])
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--params", str(params), "--run-id", "s", "--quiet"]) == 0, capsys.readouterr().err
    run = tmp_path / "outputs" / "s"
    summary = json.loads((run / "manifest.json").read_text())
    assert all(n["status"] == "ok" for n in summary["notebooks"]), summary["notebooks"]
    absent = [o for o in rp.PRIMARY_OUTCOMES if o not in outcomes]
    nb = (run / "notebooks" / "20_summary.html").read_text()
    assert "Primary indicators without a primary result in this run" in nb
    assert rp.OUTCOMES[absent[0]].label in nb
    for p in (run / "figures").glob("*"):
        p.unlink()
    capsys.readouterr()
    assert main(["figures", "--run", str(run), "--jobs", "1"]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "regenerated" in out.out
    assert (run / "figures" / "forest.svg").is_file()
    assert all((run / "results" / f"{o}.json").is_file() for o in outcomes)


# ---------------------------------------------------------------- 3 and 5. notebooks from anywhere, same parameters
def _papermill(notebook: str, out: Path, cwd: Path, **parameters) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "papermill", "--no-progress-bar", "-k", "python3", notebook, str(out)]
    for k, v in parameters.items():
        args += ["-p", k, str(v)]
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=900)


def test_papermill_from_the_repository_root_uses_the_outcomes_layered_parameters(tmp_path, bundled_patients):
    """The issue's case: run from the repository root, default parameters, one outcome's notebook.

    Fails on the old notebooks ('../parameters/design.yaml: design file not found') and, once paths work,
    would differ from `make run` if parameters/outcomes/sclc_chemo.yaml were skipped."""
    res = _papermill("notebooks/10_outcome_analysis.ipynb", tmp_path / "out.ipynb", ROOT, outcome="sclc_chemo",
                     output_dir=tmp_path / "o")
    assert res.returncode == 0, res.stderr[-3000:]
    saved = {e.details["step"]: e for e in rp.load_effects(tmp_path / "o" / "results" / "sclc_chemo.json")}
    config = load_run_config()
    settings = config.settings_for("sclc_chemo")
    assert settings.covariates == ("age", "performance_status")          # parameters/outcomes/sclc_chemo.yaml
    terms = {t.split("[")[0] for t in saved["did_logistic"].details["coefficients"]}
    assert terms == {"intercept", "treated", "post", "treated:post", "age", "performance_status"}
    expected = rp.did_logistic(bundled_patients, "sclc_chemo", covariates=list(settings.covariates),
                               design=config.design)
    assert saved["did_logistic"].estimate == pytest.approx(expected.estimate, rel=1e-12)


def test_nbconvert_and_run_all_resolve_the_same_defaults(tmp_path):
    """nbconvert --execute (kernel in the notebook's folder) and JupyterLab's Run All (same) from elsewhere."""
    env = dict(os.environ, MPLBACKEND="Agg")
    copy = tmp_path / "00_data_checks.ipynb"
    res = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                          "--output", str(copy), str(ROOT / "notebooks" / "00_data_checks.ipynb")],
                         cwd=tmp_path, capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    text = copy.read_text()
    assert str(BUNDLED) in text and "125925" in text.replace(",", "")
    # Run All in JupyterLab = a kernel started in the notebook's own folder (nbclient, as JupyterLab does)
    import nbclient
    import nbformat

    book = nbformat.read(ROOT / "notebooks" / "00_data_checks.ipynb", as_version=4)
    nbclient.NotebookClient(book, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}
                            ).execute()
    shown = json.dumps([c.get("outputs") for c in book.cells])
    assert str(BUNDLED) in shown


def test_outcome_settings_resolve_the_same_on_every_path():
    """ps_recorded drops performance status (else three estimators are 'not estimable'), sclc_chemo reduces
    the case mix: the notebook's resolution equals the runner's."""
    config = load_run_config()
    for outcome in ("ps_recorded", "sclc_chemo", "active_treatment", "survival_days"):
        setup = notebook_setup("10_outcome_analysis", outcome=outcome)
        assert setup.options == config.settings_for(outcome).to_parameters()
    assert "performance_status" not in notebook_setup("10_outcome_analysis", outcome="ps_recorded").options["covariates"]
    with pytest.raises(rp.ParameterError, match="needs the parameter outcome"):
        notebook_setup("10_outcome_analysis", outcome=10)          # papermill -p outcome 010
    with pytest.raises(rp.ParameterError, match="not a registry outcome"):
        notebook_setup("10_outcome_analysis", outcome="cns_sen")
    with pytest.raises(rp.ParameterError, match="parameter folder not found"):
        notebook_setup("00_data_checks", params="/no/such/folder")


def test_a_parameter_folder_is_self_contained(tmp_path, small_data, monkeypatch):
    """--params otherdir reads otherdir/design.yaml (a threshold of 300 there stays 300), from any folder."""
    params = _params(tmp_path / "otherdir", small_data, outcomes=["active_treatment"], threshold=300,
                     notebooks=["01_descriptives"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_run_config(params)
    assert config.design.disclosure_threshold == 300
    assert Path(config.data) == params / small_data.name and Path(config.out) == tmp_path / "outputs"
    assert main(["run", "--params", str(params), "--run-id", "t", "--quiet"]) == 0
    run = tmp_path / "outputs" / "t"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["parameters"]["design"]["disclosure_threshold"] == 300
    table = (run / "tables" / "table_one.csv").read_text()
    assert "<300" in table and "<5" not in table                  # the notebook used the folder's threshold


# ---------------------------------------------------------------- 4. reruns are byte-identical
def test_a_default_run_reruns_byte_identical(tmp_path, small_data, capsys):
    params = _params(tmp_path / "parameters", small_data, outcomes=["active_treatment", "survival_days"])
    assert yaml.safe_load((params / "run.yaml").read_text())["notebooks"] == list(load_run_config().notebooks)
    assert main(["run", "--params", str(params), "--run-id", "a", "--quiet"]) == 0
    run = tmp_path / "outputs" / "a"
    power = json.loads((run / "results" / "power.json").read_text())
    assert power["timing"] == {}                                   # timings live in the manifest only
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["timings"]["power"]["wall_seconds"] > 0 and not (run / "timings").exists()
    assert manifest["environment"]["lock_sha256"] and manifest["environment"]["matches_lock"] is True
    # today's parameter files change; the rerun must use the manifest's
    (params / "run.yaml").write_text((params / "run.yaml").read_text().replace("seed: 7", "seed: 8"))
    capsys.readouterr()
    assert main(["rerun", str(run), "--quiet"]) == 0, capsys.readouterr()
    assert "byte-identical" in capsys.readouterr().out
