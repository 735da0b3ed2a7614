"""The batch runner: every notebook through Papermill, outcomes in parallel, one run folder.

``run_evaluation`` validates the parameters and the data before anything
starts, executes the notebooks (``10_outcome_analysis`` once per outcome) in
``jobs`` parallel kernels, exports each executed notebook to HTML, writes the
manifest and ``index.html``, audits the folder for disclosure problems, and
only then moves the folder into place: an interrupted or failed run leaves no
half-written run folder (a failing *notebook* does not stop the others; the
run ends with a summary and a non-zero exit).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from rp2pr_eval import paths
from rp2pr_eval.errors import DataError, ParameterError
from rp2pr_eval.pipeline.config import RunConfig

DEPENDENCIES = ("numpy", "pandas", "scipy", "statsmodels", "linearmodels", "matplotlib", "seaborn", "papermill",
                "nbconvert", "ipykernel", "pyarrow", "pyyaml", "joblib", "dask", "distributed")


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


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("rp2pr_eval",) + DEPENDENCIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _git_commit() -> str | None:
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.PACKAGE_DIR.parent, capture_output=True, text=True,
                             timeout=5)
        return res.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _resolve(path: str, root: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else (root / p)


def plan_jobs(config: RunConfig, *, data: Path, design: Path, tmp: Path) -> tuple[list[NotebookJob], NotebookJob | None]:
    """Notebook jobs of a run: independent ones, and the summary that waits for them."""
    dirs = {"results_dir": str(tmp / "results"), "figures_dir": str(tmp / "figures"), "tables_dir": str(tmp / "tables")}
    jobs: list[NotebookJob] = []
    summary = None
    for nb in config.notebooks:
        if nb == "00_data_checks":
            jobs.append(NotebookJob(nb, nb, {"data_path": str(data), "design_path": str(design)}))
        elif nb == "01_descriptives":
            jobs.append(NotebookJob(nb, nb, {"data_path": str(data), "design_path": str(design),
                                             "tables_dir": dirs["tables_dir"], "figures_dir": dirs["figures_dir"]}))
        elif nb == "10_outcome_analysis":
            for outcome in config.outcomes:
                params = {"outcome": outcome, "data_path": str(data), "design_path": str(design),
                          "results_dir": dirs["results_dir"], "figures_dir": dirs["figures_dir"], "seed": config.seed,
                          **config.settings_for(outcome).to_parameters()}
                jobs.append(NotebookJob(f"{nb}__{outcome}", nb, params, outcome=outcome))
        elif nb == "30_power":
            p = config.power
            jobs.append(NotebookJob(nb, nb, {"design_path": str(design), "results_dir": dirs["results_dir"],
                                             "figures_dir": dirs["figures_dir"], "outcome": p.outcome,
                                             "estimator": p.estimator, "effects": list(p.effects),
                                             "n_sims": p.n_sims, "backend": p.backend, "seed": config.seed}))
        elif nb == "20_summary":
            summary = NotebookJob(nb, nb, {"results_dir": dirs["results_dir"], "figures_dir": dirs["figures_dir"],
                                           "tables_dir": dirs["tables_dir"], "outcomes": list(config.outcomes),
                                           "primary_outcomes": [o for o in config.primary_outcomes
                                                                if o in config.outcomes]})
    # longest first (power, then the outcome notebooks, then the quick checks), so no long job starts last
    order = {"30_power": 0, "10_outcome_analysis": 1}
    jobs.sort(key=lambda j: (order.get(j.template, 2), j.name))
    return jobs, summary


def _execute(job: NotebookJob, tmp: Path) -> NotebookJob:
    import papermill as pm

    source = paths.notebooks_dir() / f"{job.template}.ipynb"
    target = tmp / "notebooks" / f"{job.name}.ipynb"
    start = time.perf_counter()
    try:
        pm.execute_notebook(str(source), str(target), parameters=job.parameters, kernel_name="python3",
                            progress_bar=False, log_output=False, cwd=str(tmp))
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
    """Kernels inherit this: one BLAS thread each (parallelism is across notebooks), Agg backend."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")


def run_evaluation(config: RunConfig, *, run_id: str | None = None, progress: bool = True,
                   root: Path | None = None) -> RunResult:
    """Execute a whole run (see module docstring); returns the run folder and per-notebook status.

    Raises
    ------
    ParameterError, DataError
        Before anything runs, for bad parameters, a missing or invalid data
        file, or an existing / unwritable output folder.
    """
    from rp2pr_eval.data.io import load_patients

    root = Path.cwd() if root is None else root
    data = _resolve(config.data, root).resolve()
    design_path = _resolve(config.design_path, root).resolve()
    if not data.is_file():
        raise DataError(f"{data}: data file not found")
    patients = load_patients(data, design=config.design)   # validate before any notebook starts
    out_root = _resolve(config.out, root)
    run_id = run_id or time.strftime("run-%Y%m%d-%H%M%S")
    final = out_root / run_id
    if final.exists():
        raise ParameterError(f"{final}: output folder already exists; choose another --run-id or remove it")
    try:
        out_root.mkdir(parents=True, exist_ok=True)
        tmp = out_root / f".{run_id}.partial"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    except OSError as exc:
        raise ParameterError(f"{out_root}: cannot write the output folder ({exc.strerror})") from None
    result = RunResult(run_dir=final)
    started = time.time()
    try:
        for sub in ("notebooks", "results", "figures", "tables", "data"):
            (tmp / sub).mkdir()
        # one parquet copy of the validated data: kernels load it ~10× faster than the CSV
        fast = tmp / "data" / "patients.parquet"
        patients.to_parquet(fast, index=False)
        jobs, summary = plan_jobs(config, data=fast, design=design_path, tmp=tmp)
        _kernel_environment()
        bar = _progress(len(jobs) + (summary is not None), progress)
        with ThreadPoolExecutor(max_workers=max(1, config.jobs)) as pool:
            futures = [pool.submit(_execute, job, tmp) for job in jobs]
            for fut in as_completed(futures):
                job = fut.result()
                bar.update(1)
                bar.set_postfix_str(f"{job.name}: {job.status}")
        if summary is not None:
            _execute(summary, tmp)
            bar.update(1)
        bar.close()
        result.jobs = jobs + ([summary] if summary is not None else [])
        (tmp / "data" / "patients.parquet").unlink()
        (tmp / "data").rmdir()
        _write_manifest(tmp, config, data, result, started, run_id)
        from rp2pr_eval.presentation.report import write_index

        write_index(tmp)
        from rp2pr_eval.pipeline.audit import audit_run

        result.audit = audit_run(tmp, patient_ids=set(patients["patient_id"].astype(str)), policy=None,
                                 design=config.design)
        _write_manifest(tmp, config, data, result, started, run_id)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="notebooks", unit="nb", disable=not enabled, file=sys.stderr)


def _write_manifest(tmp: Path, config: RunConfig, data: Path, result: RunResult, started: float, run_id: str) -> None:
    manifest = {
        "run_id": run_id,
        "command": "rp2pr-eval run",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "seconds": round(time.time() - started, 2),
        "versions": _versions(),
        "git_commit": _git_commit(),
        "platform": platform.platform(),
        "data": str(data),
        "data_sha256": sha256(data),
        "parameters": config.to_dict(),
        "seeds": {"run": config.seed, "randomisation": config.seed, "bootstrap": config.seed, "power": config.seed},
        "notebooks": [{"name": j.name, "template": j.template, "outcome": j.outcome, "status": j.status,
                       "seconds": round(j.seconds, 2), "error": j.error,
                       "ipynb": f"notebooks/{j.name}.ipynb",
                       "html": f"notebooks/{j.name}.html" if (tmp / "notebooks" / f"{j.name}.html").exists() else None}
                      for j in result.jobs],
        "audit": result.audit,
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


__all__ = ["run_evaluation", "RunResult", "NotebookJob", "plan_jobs", "sha256"]
