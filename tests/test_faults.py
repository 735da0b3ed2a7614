"""Faults and hostile input against the runner and the CLI (issue 13): signals, run isolation, atomic writes,
slips caught before anything runs, bounded input, one-line errors.

Every case asserts the promise: a one-line error (no traceback) or a correct result, nothing half-written,
and no patient row left where a user would send it.
"""
from __future__ import annotations

import errno
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import rp2pr_eval as rp
from rp2pr_eval.cli import main
from tests.conftest import ROOT

pytestmark = pytest.mark.fixture


def _one_line(capsys, pattern: str | None = None) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    lines = [l for l in err.splitlines() if l.startswith("rp2pr-eval: error:")]
    assert len(lines) == 1, err
    if pattern is not None:
        import re

        assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> Path:
    df = rp.simulate_nlca(seed=12, n_pairs=10, n_treated_pairs=4, volume_median=50, volume_clip=(30, 80))
    return rp.save_patients(df, tmp_path_factory.mktemp("data") / "patients.csv.gz")


def _params(folder: Path, data: Path, *, notebooks=("00_data_checks", "10_outcome_analysis"),
            outcomes=("active_treatment",), **design_changes) -> Path:
    shutil.copytree(ROOT / "parameters", folder)
    run = yaml.safe_load((folder / "run.yaml").read_text())
    run.update({"data": str(data), "out": str(folder.parent / "out"), "notebooks": list(notebooks),
                "outcomes": list(outcomes), "analysis": {**run["analysis"], "ri_draws": 99, "boot_draws": 99,
                                                         "n_quad": 3}})
    (folder / "run.yaml").write_text(yaml.safe_dump(run))
    design = yaml.safe_load((folder / "design.yaml").read_text())
    design.update({"n_treated_pairs": 4, **design_changes})
    (folder / "design.yaml").write_text(yaml.safe_dump(design))
    return folder


def _files_with_patient_ids(root: Path, ids: set[str]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".parquet" or b"patient_id" in data or any(i.encode() in data for i in list(ids)[:50]):
                hits.append(str(path.relative_to(root)))
    return hits


# ------------------------------------------------------------------------------------------- signals
def _start_run(params: Path, run_id: str, systmp: Path) -> subprocess.Popen:
    env = dict(os.environ, TMPDIR=str(systmp), MPLBACKEND="Agg")
    return subprocess.Popen([sys.executable, "-m", "rp2pr_eval.cli", "run", "--params", str(params), "--run-id",
                             run_id, "--quiet", "--jobs", "1"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_kernel(out: Path, run_id: str, systmp: Path, timeout: float = 120) -> None:
    """Until the private folder holds the data and a notebook kernel is running (its Unix sockets are there;
    papermill writes the notebook itself only once it has run)."""
    end = time.time() + timeout
    while time.time() < end:
        private = list(systmp.glob("rp2pr-eval-*/patients.parquet"))
        if private and (out / f".{run_id}.partial").is_dir() and list(systmp.glob("rp2pr-eval-*/k*-*")):
            time.sleep(1.0)
            return
        time.sleep(0.2)
    raise AssertionError("the run did not start a notebook in time")


@pytest.mark.notebook
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_mid_run_leaves_nothing_behind(tmp_path, small_csv, sig):
    params = _params(tmp_path / "p", small_csv)
    systmp = tmp_path / "systmp"
    systmp.mkdir()
    proc = _start_run(params, "r", systmp)
    _wait_for_kernel(tmp_path / "out", "r", systmp)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig.value or (sig == signal.SIGINT and proc.returncode == 130), (proc.returncode, err)
    assert "Traceback" not in err and ("stopped by" in err or "interrupted" in err), err
    assert list((tmp_path / "out").iterdir()) == []           # no .partial, no run folder, no lock
    assert list(systmp.iterdir()) == []                      # the private copy of the data is gone
    import psutil

    assert not [p for p in psutil.process_iter(["cmdline"]) if str(systmp) in " ".join(p.info["cmdline"] or [])]


@pytest.mark.notebook
def test_sigkill_leaves_no_patient_rows_in_the_output_root_and_the_next_run_cleans_up(tmp_path, small_csv):
    params = _params(tmp_path / "p", small_csv)
    systmp = tmp_path / "systmp"
    systmp.mkdir()
    proc = _start_run(params, "r", systmp)
    _wait_for_kernel(tmp_path / "out", "r", systmp)
    proc.kill()
    proc.wait(timeout=60)
    time.sleep(2)                                           # orphaned kernels notice and exit
    ids = set(rp.load_patients(small_csv)["patient_id"])
    out = tmp_path / "out"
    assert _files_with_patient_ids(out, ids) == []          # the data copy lives outside --out
    assert (out / ".r.partial").exists()                    # what a killed run leaves: no patient rows
    env = dict(os.environ, TMPDIR=str(systmp), MPLBACKEND="Agg")
    res = subprocess.run([sys.executable, "-m", "rp2pr_eval.cli", "run", "--params", str(params), "--run-id", "r",
                          "--quiet"], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "unfinished folder of an interrupted run" in res.stderr
    assert "working data of a run that was killed" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["r"]
    # the killed run's private data folder is gone; only a killed kernel's connection file (ports, no data) may stay
    assert [p.name for p in systmp.iterdir() if not (p.name.startswith("tmp") and p.suffix == ".json")] == []


@pytest.mark.notebook
def test_two_runs_with_the_same_id_do_not_touch_each_other(tmp_path, small_csv, capsys):
    params = _params(tmp_path / "p", small_csv)
    systmp = tmp_path / "systmp"
    systmp.mkdir()
    proc = _start_run(params, "same", systmp)
    _wait_for_kernel(tmp_path / "out", "same", systmp)
    assert main(["run", "--params", str(params), "--run-id", "same", "--quiet"]) == 2
    _one_line(capsys, r"run id 'same' is in use by a run still going")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    manifest = json.loads((tmp_path / "out" / "same" / "manifest.json").read_text())
    assert all(n["status"] == "ok" for n in manifest["notebooks"])


@pytest.mark.parametrize("run_id", ["./../escape", "..", ".", "a/b", "x" * 101, "-leading", "sp ace", ""])
def test_unsafe_run_ids_are_refused_before_anything_is_written(tmp_path, small_csv, capsys, run_id):
    params = _params(tmp_path / "p", small_csv)
    assert main(["run", "--params", str(params), f"--run-id={run_id}", "--quiet"]) == 2
    _one_line(capsys, r"--run-id .* is not valid")
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape").exists()


# ------------------------------------------------------------------------------------------- atomic writes
def test_an_interrupted_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch, small_patients):
    target = rp.save_patients(small_patients, tmp_path / "data.csv.gz")
    before = target.read_bytes()

    def broken(self, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(gzip.GzipFile, "write", broken)
    with pytest.raises(KeyboardInterrupt):
        rp.save_patients(small_patients.head(10), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv.gz", "data.truth.json"] or \
        sorted(p.name for p in tmp_path.iterdir()) == ["data.csv.gz"]


def test_disk_full_during_simulate_is_one_line_and_leaves_no_file(tmp_path, monkeypatch, capsys):
    real_open = open

    def full(file, mode="r", *args, **kwargs):
        if "w" in mode and ".tmp" in str(file):
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full)
    out = tmp_path / "sim.csv.gz"
    assert main(["simulate", "--out", str(out), "--pairs", "4", "--treated-pairs", "2", "--seed", "1"]) == 2
    _one_line(capsys, r"No space left on device.*free some space")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------- slips caught up front
def test_swapped_arm_labels_are_refused_before_any_notebook(tmp_path, small_csv, capsys):
    params = _params(tmp_path / "p", small_csv, intervention_arm="control", control_arm="intervention")
    assert main(["run", "--params", str(params), "--quiet"]) == 2
    _one_line(capsys, r"4 pairs in the intervention arm|6 pairs in the intervention arm 'control'.*swapped")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("change, pattern", [
    (lambda p: p.joinpath("outcomes", "sclc_chemo.yaml").write_text("covariates: [agee]\n"),
     r"outcomes/sclc_chemo.yaml: covariate 'agee' for 'sclc_chemo' is not a column"),
    (lambda p: p.joinpath("run.yaml").write_text(p.joinpath("run.yaml").read_text().replace("seed: 20100401",
                                                                                           "seed: -3")),
     r"key 'seed' must be a non-negative integer"),
    (lambda p: p.joinpath("outcomes", "ps_recorded.yaml").write_text("covariates: [ps_recorded]\n"),
     r"the outcome 'ps_recorded' is also a covariate"),
])
def test_parameter_slips_stop_the_run_before_it_starts(tmp_path, small_csv, capsys, change, pattern):
    params = _params(tmp_path / "p", small_csv, outcomes=("sclc_chemo", "ps_recorded"))
    change(params)
    assert main(["run", "--params", str(params), "--quiet"]) == 2
    _one_line(capsys, pattern)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_negative_seed_on_the_command_line(tmp_path, small_csv, capsys):
    params = _params(tmp_path / "p", small_csv)
    assert main(["run", "--params", str(params), "--seed", "-1", "--quiet"]) == 2
    _one_line(capsys, r"--seed must be a non-negative integer")


@pytest.mark.notebook
def test_not_estimable_estimators_are_named_in_the_run_and_the_summary(tmp_path, small_csv, capsys):
    """An outcome separated by arm: every estimator is 'not estimable' with the reason, never '-0.00 [-0.00]'."""
    df = rp.load_patients(small_csv)
    df["active_treatment"] = (df["arm"] == "intervention").astype(int)
    data = rp.save_patients(df, tmp_path / "separated.csv.gz")
    params = _params(tmp_path / "p", data, notebooks=("10_outcome_analysis", "20_summary"))
    assert main(["run", "--params", str(params), "--run-id", "s", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "not estimable (" in err and "active_treatment / ancova" in err
    run = tmp_path / "out" / "s"
    assert rp.load_effects(run / "results" / "active_treatment.json") == []
    manifest = json.loads((run / "manifest.json").read_text())
    assert any("no variation between trusts" in m or "separation" in m for m in manifest["not_estimable"])
    summary = (run / "notebooks" / "20_summary.html").read_text()
    assert "Not estimable in this run" in summary


# ------------------------------------------------------------------------------------------- rerun
def test_rerun_refuses_changed_data_and_malformed_manifests(tmp_path, small_csv, capsys):
    run = tmp_path / "run"
    run.mkdir()
    data = tmp_path / "d.csv.gz"
    shutil.copy(small_csv, data)
    from rp2pr_eval.pipeline.config import load_run_config

    params = _params(tmp_path / "p", data)
    manifest = {"run_id": "x", "data": str(data), "data_sha256": "0" * 64,
                "parameters": load_run_config(params).to_dict()}
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert main(["rerun", str(run), "--quiet"]) == 2
    _one_line(capsys, r"SHA-256 differs from the manifest's")
    (run / "manifest.json").write_text("{not json")
    assert main(["rerun", str(run), "--quiet"]) == 2
    _one_line(capsys, r"not a readable manifest")
    (run / "manifest.json").write_bytes(b"\xff\xfe\x00garbage")
    for command in (["rerun", str(run)], ["figures", "--run", str(run)], ["audit", str(run)]):
        assert main(command) == 2
        _one_line(capsys, r"manifest")
    (run / "manifest.json").write_text(json.dumps({"run_id": "x", "parameters": {"seed": 1}}))
    assert main(["rerun", str(run), "--quiet"]) == 2
    _one_line(capsys, r"not a usable run manifest")


# ------------------------------------------------------------------------------------------- bounded input
def test_gzip_bomb_sparse_file_and_corrupt_gzip(tmp_path, monkeypatch, capsys, small_csv):
    monkeypatch.setenv("RP2PR_EVAL_MAX_INPUT_BYTES", str(2_000_000))
    bomb = tmp_path / "bomb.csv.gz"
    with gzip.open(bomb, "wb") as fh:
        fh.write(b"patient_id,trust_id\n" + b"0" * 20_000_000)
    assert bomb.stat().st_size < 100_000
    assert main(["validate-data", str(bomb)]) == 2
    _one_line(capsys, r"decompresses to more than 2 MiB, over the limit")
    plain = tmp_path / "plain.csv"
    plain.write_bytes(b"patient_id,trust_id\n" + b"1,A\n" * 600_000)     # 2.4 MB on disk
    assert main(["validate-data", str(plain)]) == 2
    _one_line(capsys, r"2 MiB \(max_bytes\)|over the limit")
    monkeypatch.delenv("RP2PR_EVAL_MAX_INPUT_BYTES")
    sparse = tmp_path / "sparse.csv"
    with open(sparse, "wb") as fh:
        fh.truncate(64 * 1024**2)
    assert main(["validate-data", str(sparse)]) == 2
    _one_line(capsys, r"sparse file|NUL bytes")
    raw = bytearray(small_csv.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 64] = b"\x00" * 64
    corrupt = tmp_path / "corrupt.csv.gz"
    corrupt.write_bytes(bytes(raw))
    assert main(["validate-data", str(corrupt)]) == 2
    _one_line(capsys, r"not a valid gzip file")


def test_parameter_files_latin1_duplicates_and_billion_laughs(tmp_path, small_csv, capsys):
    params = _params(tmp_path / "p", small_csv)
    text = (params / "run.yaml").read_text()
    (params / "run.yaml").write_bytes(text.encode() + "# caf\xe9\n".encode("latin-1"))
    assert main(["run", "--params", str(params), "--quiet"]) == 2
    _one_line(capsys, r"run.yaml: not UTF-8 text \(byte 0xe9 on line")
    (params / "run.yaml").write_text(text + "seed: 5\n")
    assert main(["run", "--params", str(params), "--quiet"]) == 2
    _one_line(capsys, r"key 'seed' is given twice")
    # a billion laughs on a typed key: 9 levels of 9 aliases (9**9 strings if expanded)
    levels = ["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 10)]
    (params / "run.yaml").write_text(text.replace("outcomes:", "old_outcomes:", 1).split("old_outcomes:")[0]
                                     + "outcomes: [" + ", ".join(levels) + "]\n")
    start = time.time()
    assert main(["run", "--params", str(params), "--quiet"]) == 2
    line = _one_line(capsys)
    assert len(line) < 400 and time.time() - start < 20
    (params / "run.yaml").write_text(text)
    (params / "design.yaml").write_text("pre_years: [2008, 2009]\n" + "#" * (2 * 1024**2))
    assert main(["run", "--params", str(params), "--quiet"]) == 2
    _one_line(capsys, r"parameter files are at most 1 MiB")


@pytest.mark.notebook
def test_kernels_talk_over_private_unix_sockets_not_loopback_tcp(tmp_path):
    """The kernels hold the patient table: their messages go over Unix sockets in the run's private 0700
    folder (removed with it), not in plain text over loopback TCP ports any local user can reach."""
    import nbformat
    import papermill as pm

    from rp2pr_eval.pipeline.batch import ipc_kernel_manager

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    manager = ipc_kernel_manager(private)(kernel_name="python3")
    assert manager.transport == "ipc" and Path(manager.ip).parent == private
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(
        "import json, ipykernel.kernelapp as k\nprint(json.dumps(k.IPKernelApp.instance().transport))")]
    nbformat.write(book, tmp_path / "in.ipynb")
    pm.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                        progress_bar=False, kernel_manager_class=ipc_kernel_manager(private))
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert out.cells[0].outputs[0]["text"].strip() == '"ipc"'
    assert list(private.iterdir()) == []           # the sockets are gone with the kernel
