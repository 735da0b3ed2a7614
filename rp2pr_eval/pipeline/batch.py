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
  the end; it never holds patient rows;
* the kernels talk to the runner over Unix sockets in the private folder and are forked from a warm
  kernel server (:mod:`rp2pr_eval.pipeline.kernel_server`: the package is imported once per run, not
  once per notebook); papermill writes each executed notebook once, when it has run.

Faults: SIGINT, SIGTERM and SIGHUP stop the kernels, remove the private folder and the unfinished
run folder, and re-raise (:class:`RunInterrupted` for SIGTERM/SIGHUP); so does any exception. A
SIGKILL cannot be caught: the next run removes what it left (the private folder, found by its
unlocked owner file; the ``.partial`` folder, once it holds the run id's lock). A run holds an
exclusive lock ``<out>/.<run-id>.lock`` (``fcntl.flock``, released by the kernel even after SIGKILL)
for its whole life, so two runs with the same id never touch each other's folders: the second is
refused at once.

Every notebook gets the same three parameters — ``params`` (the resolved parameter file),
``output_dir`` (the folder being assembled) and, for ``10_outcome_analysis``, ``outcome`` — and
resolves everything else itself through :func:`rp2pr_eval.pipeline.notebook.notebook_setup`, exactly
as it does when run alone with Papermill or in JupyterLab.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rp2pr_eval import paths
from rp2pr_eval.errors import DataError, ParameterError
from rp2pr_eval.pipeline.config import RunConfig
from rp2pr_eval.pipeline.environment import environment_record, installed_versions, sha256
from rp2pr_eval.pipeline.kernel_server import ipc_kernel_manager

#: Run ids: letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit (no path separators).
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
#: Sub-folders of a run folder.
RUN_FOLDERS = ("notebooks", "results", "figures", "tables")
#: Notebooks that need the patient table (not run from a trust panel).
PATIENT_NOTEBOOKS = ("00_data_checks", "01_descriptives")


@dataclass
class NotebookJob:
    name: str                      # e.g. "10_outcome_analysis__active_treatment"
    template: str                  # notebook file stem
    parameters: dict[str, Any]
    outcome: str | None = None
    status: str = "pending"
    seconds: float = 0.0
    error: str | None = None


class RunInterrupted(BaseException):
    """A run stopped by SIGTERM or SIGHUP (SIGINT raises ``KeyboardInterrupt``); the run left nothing behind."""

    def __init__(self, signame: str) -> None:
        super().__init__(signame)
        self.signame = signame


@dataclass
class RunResult:
    run_dir: Path
    jobs: list[NotebookJob] = field(default_factory=list)
    audit: list[str] = field(default_factory=list)
    #: What the runner did besides running (e.g. removed the leftovers of a killed run).
    notes: list[str] = field(default_factory=list)
    #: "outcome / estimator: reason" of every requested estimator that could not be estimated.
    not_estimable: list[str] = field(default_factory=list)
    #: "outcome / estimator: reason" of every estimator that does not apply to the data (a trust panel).
    not_applicable: list[str] = field(default_factory=list)
    #: The generator's planted truth of synthetic data (:func:`truth_record`), ``None`` for other data.
    truth: dict[str, Any] | None = None

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


def truth_record(patients) -> dict[str, Any] | None:
    """The planted truth a run used, for its manifest: ``None`` unless the data carry a generator's truth.

    Synthetic data loaded with their sidecar (``<stem>.truth.json``, read by
    :func:`rp2pr_eval.load_patients` into ``attrs["truth"]``) carry the generator's planted effects
    (``effects``, on the generator's ``scale`` of each outcome: conditional log odds ratio, log ratio of
    waiting times, log hazard ratio) and the true marginal risk difference among post-period
    intervention patients (``risk_difference``). The run records these (not the pairs or settings), so
    the report reads the truth from the run folder, never from the data folder.
    """
    truth = getattr(patients, "attrs", {}).get("truth")
    if not isinstance(truth, dict) or "effects" not in truth:
        return None
    keep = ("generator", "package_version", "seed", "ramp", "effects", "scale", "risk_difference")
    return json.loads(json.dumps({k: truth[k] for k in keep if k in truth}))


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
        elif nb in PATIENT_NOTEBOOKS and config.data_kind == "panel":
            continue                              # patient-level tables: not applicable to a trust panel
        elif nb in ("00_data_checks", "01_descriptives"):
            jobs.append(NotebookJob(nb, nb, {"params": common["params"],
                                             **({"output_dir": common["output_dir"]} if nb == "01_descriptives" else {})}))
        else:
            jobs.append(NotebookJob(nb, nb, dict(common)))
    # the outcome notebooks first (the summary waits for them), each group longest first (LPT order), so
    # no long job starts last and the kernels end together
    jobs.sort(key=_longest_first)
    return jobs, summary


#: Seconds each notebook took on the bundled data (2 jobs, 2 cores), used only to order the jobs.
_SECONDS = {"10_outcome_analysis": 11.0, "01_descriptives": 4.6, "30_power": 2.2, "00_data_checks": 2.0}
#: Outcome notebooks of continuous and time-to-event outcomes run fewer estimators and referee checks.
_SECONDS_BY_KIND = {"continuous": 7.7, "time_to_event": 2.0}


def _longest_first(job: NotebookJob) -> tuple[bool, float, str]:
    from rp2pr_eval.study.outcomes import OUTCOMES

    seconds = _SECONDS.get(job.template, 5.0)
    if job.outcome is not None and job.outcome in OUTCOMES:
        seconds = _SECONDS_BY_KIND.get(OUTCOMES[job.outcome].kind, seconds)
    return job.template != "10_outcome_analysis", -seconds, job.name


def _execute(job: NotebookJob, staging: Path, private: Path | None = None, server=None) -> NotebookJob:
    import papermill as pm

    source = paths.notebooks_dir() / f"{job.template}.ipynb"
    target = staging / "notebooks" / f"{job.name}.ipynb"
    start = time.perf_counter()
    engine = {} if private is None else {"kernel_manager_class": ipc_kernel_manager(private, server)}
    try:
        # request_save_on_cell_execute=False: papermill writes the notebook once at the end (and, with the
        # failing cell, on an error) instead of at the start and end of every cell (~150 writes of a growing
        # notebook each, ~20 s of the runner's CPU per run)
        pm.execute_notebook(str(source), str(target), parameters=job.parameters, kernel_name="python3",
                            progress_bar=False, log_output=False, request_save_on_cell_execute=False, **engine)
        # no cwd=: papermill would chdir the whole process, and with several notebooks in threads the
        # process could be left in a folder that is then removed (the notebooks need no working folder)
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


#: One HTML exporter per runner thread (its templates are compiled once, not for every notebook).
_EXPORTERS = threading.local()


def _export_html(path: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    book = nbformat.read(str(path), as_version=4)
    exporter = getattr(_EXPORTERS, "html", None)
    if exporter is None:
        exporter = _EXPORTERS.html = HTMLExporter()
    body, _ = exporter.from_notebook_node(book)
    out = path.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def _kernel_environment() -> None:
    """Kernels inherit this: one BLAS thread each (parallelism is across notebooks), inline figures."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")


def run_evaluation(config: RunConfig, *, run_id: str | None = None, progress: bool = True,
                   fork_kernels: bool = True) -> RunResult:
    """Execute a whole run (see module docstring); returns the run folder and per-notebook status.

    ``fork_kernels=False`` starts every kernel as a fresh process instead of forking it from the kernel
    server (the same results; slower: ``benchmarks/bench_batch.py`` times both).

    Raises
    ------
    ParameterError, DataError
        Before anything runs, for bad parameters, a bad run id, a missing or invalid data file, data that
        do not fit the parameters (:func:`~rp2pr_eval.pipeline.preflight.preflight`), a run id in use by
        another run, or an existing / unwritable output folder.
    RunInterrupted, KeyboardInterrupt
        After a signal, once the kernels are stopped and the unfinished folders removed.
    """
    from rp2pr_eval.data.io import load_patients
    from rp2pr_eval.pipeline.preflight import preflight

    data = Path(config.data).expanduser().resolve()
    if not data.is_file():
        raise DataError(f"{data}: data file not found")
    run_id = check_run_id(time.strftime("run-%Y%m%d-%H%M%S") if run_id is None else run_id)
    if config.data_kind == "panel":                         # rp2pr-eval run --panel: a trust panel
        from rp2pr_eval.data.io import load_panel
        from rp2pr_eval.pipeline.preflight import preflight_panel

        patients = load_panel(data, design=config.design, incomplete_pairs=config.incomplete_pairs)
        preflight_panel(config, patients)
    else:
        patients = load_patients(data, design=config.design,   # validate before any notebook starts
                                 incomplete_pairs=config.incomplete_pairs)
        preflight(config, patients)
    out_root = Path(config.out).expanduser().resolve()
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParameterError(f"{out_root}: cannot create the output folder ({exc.strerror})") from None
    result = RunResult(run_dir=out_root / run_id)
    with _signals_raise(), _run_lock(out_root, run_id):
        final = out_root / run_id
        if final.exists():
            raise ParameterError(f"{final}: output folder already exists; choose another --run-id or remove it")
        staging = out_root / f".{run_id}.partial"
        try:
            if staging.exists():           # we hold the run id's lock: its owner was killed
                shutil.rmtree(staging)
                result.notes.append(f"removed {staging}, the unfinished folder of an interrupted run")
            staging.mkdir()
        except OSError as exc:
            raise ParameterError(f"{out_root}: cannot write the output folder ({exc.strerror})") from None
        result.notes += remove_stale_workdirs()
        with _private_workdir() as private:
            try:
                _run(config, patients, data, run_id, staging, private, result, progress, fork_kernels)
                os.replace(staging, final)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    return result


def _run(config: RunConfig, patients, data: Path, run_id: str, staging: Path, private: Path, result: RunResult,
         progress: bool, fork_kernels: bool = True) -> None:
    started = time.time()
    for sub in RUN_FOLDERS:
        (staging / sub).mkdir()
    # one parquet copy of the validated data: kernels load it ~10× faster than the CSV
    fast = private / ("panel.parquet" if config.data_kind == "panel" else "patients.parquet")
    patients.to_parquet(fast, index=False)
    kernel_config = replace(config, data=str(fast))
    params_file = private / "run_parameters.json"
    params_file.write_text(json.dumps({"run_id": run_id, "data": str(data), "run_dir": str(result.run_dir),
                                       "parameters": kernel_config.to_dict()}, indent=1, sort_keys=True) + "\n",
                           encoding="utf-8")
    jobs, summary = plan_jobs(config, params_file=params_file, staging=staging)
    if config.data_kind == "panel":
        result.notes += [f"{nb}: not applicable to a trust panel (patient-level tables); not run"
                         for nb in PATIENT_NOTEBOOKS if nb in config.notebooks]
    _kernel_environment()
    from rp2pr_eval.pipeline import kernel_server

    server = kernel_server.KernelServer(private) if fork_kernels and kernel_server.supported() else None
    bar = _progress(len(jobs) + (summary is not None), progress)
    try:
        run_jobs(jobs, summary, lambda job: _execute(job, staging, private, server), workers=config.jobs,
                 on_done=lambda job: (bar.update(1), bar.set_postfix_str(f"{job.name}: {job.status}")))
    finally:
        bar.close()
        if server is not None:
            server.stop()
    result.jobs = jobs + ([summary] if summary is not None else [])
    result.not_estimable = _not_estimable(staging)
    result.not_applicable = _not_estimable(staging, prefix="not applicable")
    timings = _collect_timings(staging)
    result.truth = truth_record(patients)
    _write_manifest(staging, config, data, result, started, run_id, timings)
    from rp2pr_eval.presentation.report_html import write_report

    write_report(staging)
    from rp2pr_eval.presentation.report_pdf import write_report_pdf

    try:                                   # the same report as one PDF; the run stands without it
        write_report_pdf(staging)
    except Exception as exc:  # noqa: BLE001 - reported, never silent
        result.notes.append(f"report.pdf not written: {type(exc).__name__}: {exc}")
    from rp2pr_eval.pipeline.audit import audit_run

    ids = set(patients["patient_id"].astype(str)) if "patient_id" in patients.columns else set()
    result.audit = audit_run(staging, patient_ids=ids, policy=None, design=config.design)
    _write_manifest(staging, config, data, result, started, run_id, timings)


def run_jobs(jobs: list[NotebookJob], summary: NotebookJob | None, execute, *, workers: int,
             on_done=None) -> None:
    """Run ``execute(job)`` for every job in ``workers`` threads, in the given order, and the summary
    as soon as the last outcome notebook (``10_outcome_analysis``) has ended — it reads only their
    results, so it need not wait for the quick checks, and the run does not end with a kernel idle.

    On any exception or signal the waiting jobs are cancelled, the kernels stopped and the exception
    re-raised once the running jobs have returned.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    waiting = list(jobs) + ([summary] if summary is not None else [])
    outcomes_left = {j.name for j in jobs if j.template == "10_outcome_analysis"}
    futures: list = []
    running: set = set()

    def start_next() -> None:
        if summary is not None and summary in waiting and not outcomes_left:
            job = summary
        else:
            job = next((j for j in waiting if j is not summary), None)
            if job is None:                # only the summary waits, for outcome notebooks still running
                return
        waiting.remove(job)
        fut = pool.submit(execute, job)
        futures.append(fut)
        running.add(fut)

    try:
        for _ in range(max(1, workers)):
            start_next()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                running.discard(fut)
                job = fut.result()
                outcomes_left.discard(job.name)
                if on_done is not None:
                    on_done(job)
                start_next()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        _stop_kernels()
        wait(futures, timeout=30)          # the notebook threads end once their kernels are gone
        raise
    pool.shutdown()


# --------------------------------------------------------------------------- faults and isolation
_WORKDIR_PREFIX = "rp2pr-eval-"
_OWNER = ".owner.lock"


def _flock(fh, *, block: bool = False) -> bool:
    """Exclusive advisory lock on an open file; ``False`` if another process holds it (POSIX only)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no locking (documented)
        return True
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        return True
    except BlockingIOError:
        return False


@contextlib.contextmanager
def _run_lock(out_root: Path, run_id: str):
    """Hold ``<out>/.<run-id>.lock`` for the life of the run; refuse at once if another run holds it."""
    path = out_root / f".{run_id}.lock"
    try:
        fh = open(path, "a+", encoding="utf-8")
    except OSError as exc:
        raise ParameterError(f"{out_root}: cannot write the output folder ({exc.strerror})") from None
    try:
        if not _flock(fh):
            fh.seek(0)
            owner = fh.read().strip()[:40] or "another process"
            raise ParameterError(f"run id {run_id!r} is in use by a run still going in {out_root} ({owner}); "
                                 "wait for it or choose another --run-id")
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {platform.node()}\n")
        fh.flush()
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        fh.close()


@contextlib.contextmanager
def _private_workdir():
    """A 0700 folder in the system's temporary folder, locked by its owner, removed on every exit path."""
    private = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
    fh = open(private / f"{_OWNER}.new", "w", encoding="utf-8")
    _flock(fh, block=True)
    os.replace(private / f"{_OWNER}.new", private / _OWNER)   # visible only once locked
    try:
        yield private
    finally:
        shutil.rmtree(private, ignore_errors=True)
        fh.close()


def remove_stale_workdirs(tmp: str | Path | None = None) -> list[str]:
    """Remove private working folders of runs that were killed: their owner file's lock is free.

    Only folders with an owner file are considered (a folder being set up, or made by another program
    or version, is never touched).
    """
    notes = []
    root = Path(tempfile.gettempdir() if tmp is None else tmp)
    for folder in sorted(root.glob(f"{_WORKDIR_PREFIX}*")):
        owner = folder / _OWNER
        try:
            if not folder.is_dir() or folder.stat().st_uid != os.getuid() or not owner.is_file():
                continue
            with open(owner, "a", encoding="utf-8") as fh:
                stale = _flock(fh)
            if stale:
                shutil.rmtree(folder, ignore_errors=True)
                notes.append(f"removed {folder}, the working data of a run that was killed")
        except OSError:
            continue
    return notes


@contextlib.contextmanager
def _signals_raise():
    """In the main thread, SIGTERM and SIGHUP raise :class:`RunInterrupted` (so clean-up code runs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise RunInterrupted(signal.Signals(signum).name)

    previous = {}
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _stop_kernels() -> None:
    """Terminate the notebook kernels this process started (then kill what is left after 3 s)."""
    import psutil

    try:
        kernels = [p for p in psutil.Process().children(recursive=True)
                   if any(k in " ".join(p.cmdline()) for k in ("ipykernel_launcher", "kernel_server"))]
    except psutil.Error:
        return
    for proc in kernels:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(kernels, timeout=3)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def _not_estimable(staging: Path, prefix: str = "not estimable") -> list[str]:
    """Estimators the outcome notebooks recorded as not estimable (or ``prefix``: not applicable)."""
    out = []
    for path in sorted((staging / "results").glob("*.extras.json")):
        try:
            skipped = json.loads(path.read_text(encoding="utf-8")).get("skipped") or {}
        except (OSError, ValueError, AttributeError):
            continue
        out += [f"{path.name.split('.')[0]} / {step}: {reason}" for step, reason in skipped.items()
                if str(reason).startswith(prefix)]
    return out


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
        "not_estimable": result.not_estimable,
        "not_applicable": result.not_applicable,
        "data_kind": config.data_kind,
        "truth": result.truth,
        "audit": result.audit,
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


__all__ = ["RUN_ID", "NotebookJob", "RunInterrupted", "RunResult", "check_run_id", "plan_jobs", "remove_stale_workdirs",
           "run_evaluation", "sha256", "truth_record"]
