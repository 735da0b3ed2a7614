"""The batch runner: every notebook through Papermill, outcomes in parallel, one run folder.

``run_evaluation`` validates the parameters and the data before anything starts, executes the
notebooks (``10_outcome_analysis`` once per outcome) in ``jobs`` parallel kernels, exports each
executed notebook to HTML, writes the manifest and ``index.html``, audits the folder for disclosure
problems, and only then moves the folder into place: an interrupted or failed run leaves no
half-written run folder (a failing *notebook* does not stop the others; the run ends with a summary
and a non-zero exit).

Where things are while a run is under way:

* the validated copy of the patient table the kernels read, and the resolved parameters
  (``run_parameters.json``), live in a **private working folder** (``tempfile.mkdtemp``: mode 0700,
  in the system's temporary folder, never under ``--out``), removed on every exit path;
* the run folder is assembled as ``<out>/.<run-id>.partial`` and renamed to ``<out>/<run-id>`` at
  the end; it never holds patient rows.

Every notebook gets the same three parameters — ``params`` (the resolved parameter file),
``output_dir`` (the folder being assembled) and, for ``10_outcome_analysis``, ``outcome`` — and
resolves everything else itself through :func:`rp2pr_eval.pipeline.notebook.notebook_setup`, exactly
as it does when run alone with Papermill or in JupyterLab.
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rp2pr_eval import paths
from rp2pr_eval.errors import DataError, ParameterError
from rp2pr_eval.pipeline.config import RunConfig
from rp2pr_eval.pipeline.environment import environment_record, installed_versions, sha256

#: Run ids: letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit (no path separators).
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
#: Sub-folders of a run folder.
RUN_FOLDERS = ("notebooks", "results", "figures", "tables")


@dataclass
class NotebookJob:
    name: str                      # e.g. "10_outcome_analysis__active_treatment"
    template: str                  # notebook file stem
    parameters: dict[str, Any]
    outcome: str | None = None
    status: str = "pending"
    seconds: float = 0.0
    error: str | None = None


@dataclass
class RunResult:
    run_dir: Path
    jobs: list[NotebookJob] = field(default_factory=list)
    audit: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[NotebookJob]:
        return [j for j in self.jobs if j.status != "ok"]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.audit


def _git_commit() -> str | None:
    if not paths.is_checkout():
        return None
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.PACKAGE_DIR.parent, capture_output=True,
                             text=True, timeout=5)
        return res.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def check_run_id(run_id: str) -> str:
    """Refuse run ids that are not a plain folder name (see :data:`RUN_ID`)."""
    if not isinstance(run_id, str) or not RUN_ID.match(run_id) or run_id in (".", ".."):
        raise ParameterError(f"--run-id {str(run_id)[:40]!r} is not valid: use 1–100 letters, digits, '.', '_' or "
                             "'-', starting with a letter or digit")
    return run_id


def plan_jobs(config: RunConfig, *, params_file: Path, staging: Path) -> tuple[list[NotebookJob], NotebookJob | None]:
    """Notebook jobs of a run: independent ones, and the summary that waits for them."""
    common = {"params": str(params_file), "output_dir": str(staging)}
    jobs: list[NotebookJob] = []
    summary = None
    for nb in config.notebooks:
        if nb == "10_outcome_analysis":
            for outcome in config.outcomes:
                jobs.append(NotebookJob(f"{nb}__{outcome}", nb, {"outcome": outcome, **common}, outcome=outcome))
        elif nb == "20_summary":
            summary = NotebookJob(nb, nb, dict(common))
        elif nb in ("00_data_checks", "01_descriptives"):
            jobs.append(NotebookJob(nb, nb, {"params": common["params"],
                                             **({"output_dir": common["output_dir"]} if nb == "01_descriptives" else {})}))
        else:
            jobs.append(NotebookJob(nb, nb, dict(common)))
    # longest first (power, then the outcome notebooks, then the quick checks), so no long job starts last
    order = {"30_power": 0, "10_outcome_analysis": 1}
    jobs.sort(key=lambda j: (order.get(j.template, 2), j.name))
    return jobs, summary


def _execute(job: NotebookJob, staging: Path, cwd: Path) -> NotebookJob:
    import papermill as pm

    source = paths.notebooks_dir() / f"{job.template}.ipynb"
    target = staging / "notebooks" / f"{job.name}.ipynb"
    start = time.perf_counter()
    try:
        pm.execute_notebook(str(source), str(target), parameters=job.parameters, kernel_name="python3",
                            progress_bar=False, log_output=False, cwd=str(cwd))
        _export_html(target)
        job.status = "ok"
    except Exception as exc:  # a failing notebook must not stop the others
        job.status = "failed"
        job.error = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        if target.exists():
            try:
                _export_html(target)
            except Exception:  # pragma: no cover - best effort
                pass
    job.seconds = time.perf_counter() - start
    return job


def _export_html(path: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    book = nbformat.read(str(path), as_version=4)
    body, _ = HTMLExporter().from_notebook_node(book)
    out = path.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def _kernel_environment() -> None:
    """Kernels inherit this: one BLAS thread each (parallelism is across notebooks), inline figures."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")


def run_evaluation(config: RunConfig, *, run_id: str | None = None, progress: bool = True) -> RunResult:
    """Execute a whole run (see module docstring); returns the run folder and per-notebook status.

    Raises
    ------
    ParameterError, DataError
        Before anything runs, for bad parameters, a bad run id, a missing or invalid data file, or an
        existing / unwritable output folder.
    """
    from rp2pr_eval.data.io import load_patients

    data = Path(config.data).expanduser().resolve()
    if not data.is_file():
        raise DataError(f"{data}: data file not found")
    run_id = check_run_id(run_id or time.strftime("run-%Y%m%d-%H%M%S"))
    patients = load_patients(data, design=config.design)   # validate before any notebook starts
    out_root = Path(config.out).expanduser().resolve()
    final = out_root / run_id
    if final.exists():
        raise ParameterError(f"{final}: output folder already exists; choose another --run-id or remove it")
    try:
        out_root.mkdir(parents=True, exist_ok=True)
        staging = out_root / f".{run_id}.partial"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
    except OSError as exc:
        raise ParameterError(f"{out_root}: cannot write the output folder ({exc.strerror})") from None
    private = Path(tempfile.mkdtemp(prefix="rp2pr-eval-"))      # mode 0700, outside --out
    result = RunResult(run_dir=final)
    started = time.time()
    try:
        for sub in RUN_FOLDERS:
            (staging / sub).mkdir()
        # one parquet copy of the validated data: kernels load it ~10× faster than the CSV
        fast = private / "patients.parquet"
        patients.to_parquet(fast, index=False)
        kernel_config = replace(config, data=str(fast))
        params_file = private / "run_parameters.json"
        params_file.write_text(json.dumps(kernel_config.to_dict(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
        jobs, summary = plan_jobs(config, params_file=params_file, staging=staging)
        _kernel_environment()
        bar = _progress(len(jobs) + (summary is not None), progress)
        with ThreadPoolExecutor(max_workers=max(1, config.jobs)) as pool:
            futures = [pool.submit(_execute, job, staging, private) for job in jobs]
            for fut in as_completed(futures):
                job = fut.result()
                bar.update(1)
                bar.set_postfix_str(f"{job.name}: {job.status}")
        if summary is not None:
            _execute(summary, staging, private)
            bar.update(1)
        bar.close()
        result.jobs = jobs + ([summary] if summary is not None else [])
        timings = _collect_timings(staging)
        _write_manifest(staging, config, data, result, started, run_id, timings)
        from rp2pr_eval.presentation.report import write_index

        write_index(staging)
        from rp2pr_eval.pipeline.audit import audit_run

        result.audit = audit_run(staging, patient_ids=set(patients["patient_id"].astype(str)), policy=None,
                                 design=config.design)
        _write_manifest(staging, config, data, result, started, run_id, timings)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return result


def _collect_timings(staging: Path) -> dict[str, Any]:
    """Timings the notebooks wrote under ``timings/`` (they belong in the manifest, not in results)."""
    folder = staging / "timings"
    out: dict[str, Any] = {}
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            try:
                out[path.stem] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                out[path.stem] = None
        shutil.rmtree(folder)
    return out


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="notebooks", unit="nb", disable=not enabled, file=sys.stderr)


def _write_manifest(staging: Path, config: RunConfig, data: Path, result: RunResult, started: float, run_id: str,
                    timings: dict[str, Any]) -> None:
    manifest = {
        "run_id": run_id,
        "command": "rp2pr-eval run",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "seconds": round(time.time() - started, 2),
        "versions": installed_versions(),
        "environment": environment_record(),
        "git_commit": _git_commit(),
        "platform": platform.platform(),
        "data": str(data),
        "data_sha256": sha256(data),
        "parameters": config.to_dict(),
        "seeds": {"run": config.seed, "randomisation": config.seed, "bootstrap": config.seed, "power": config.seed},
        "notebooks": [{"name": j.name, "template": j.template, "outcome": j.outcome, "status": j.status,
                       "seconds": round(j.seconds, 2), "error": j.error,
                       "ipynb": f"notebooks/{j.name}.ipynb",
                       "html": f"notebooks/{j.name}.html" if (staging / "notebooks" / f"{j.name}.html").exists()
                       else None}
                      for j in result.jobs],
        "timings": timings,
        "audit": result.audit,
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


__all__ = ["RUN_ID", "NotebookJob", "RunResult", "check_run_id", "plan_jobs", "run_evaluation", "sha256"]
