"""Command line: ``rp2pr-eval <command>``.

User errors (bad data, bad parameters, bad flags, unwritable folders) print one
line ``rp2pr-eval: error: …`` and exit with status 2, without a traceback;
``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Sequence

from rp2pr_eval.errors import DataError, ParameterError

EXIT_USER_ERROR = 2
EXIT_FAILED = 1


class UserError(Exception):
    """An error in what the user asked for (printed as one line)."""


def _cmd_simulate(args: argparse.Namespace) -> int:
    from rp2pr_eval.data.io import save_patients
    from rp2pr_eval.study.design import StudyDesign
    from rp2pr_eval.synthetic.generator import simulate_nlca

    design = StudyDesign.from_yaml(args.design) if args.design else None
    effects = {}
    for item in args.effect or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--effect expects NAME=VALUE, got {item!r}")
        try:
            effects[name] = float(value)
        except ValueError:
            raise UserError(f"--effect {name}: {value!r} is not a number") from None
    if (args.out is None) == (args.raw is None):
        raise UserError("give either --out FILE (a contract table) or --raw DIR (a raw extract, allocation and mapping)")
    out = Path(args.out if args.out is not None else args.raw)
    if args.out is not None and out.exists() and not args.force:
        raise UserError(f"{out} exists; pass --force to overwrite")
    if args.raw is not None and not args.force:
        from rp2pr_eval.synthetic.raw import ALLOCATION_NAME, EXTRACT_NAME, MAPPING_NAME

        existing = [str(out / n) for n in (EXTRACT_NAME, ALLOCATION_NAME, MAPPING_NAME) if (out / n).exists()]
        if existing:
            raise UserError(f"{', '.join(existing)} exist(s); pass --force to overwrite")
    frame = simulate_nlca(seed=args.seed, design=design, effects=effects, n_pairs=args.pairs,
                          n_treated_pairs=args.treated_pairs)
    if args.raw is not None:
        from rp2pr_eval.synthetic.raw import write_raw_extract

        files = write_raw_extract(frame, out, seed=args.seed, design=design, overwrite=args.force)
        print(f"wrote a raw extract of {len(frame)} patients in {frame['trust_id'].nunique()} trusts: "
              f"{files.extract}, {files.allocation}, {files.mapping}")
        return 0
    save_patients(frame, out)
    print(f"wrote {len(frame)} patients in {frame['trust_id'].nunique()} trusts to {out}")
    return 0


def _report_folder(out: Path) -> Path:
    name = out.name
    for suffix in (".csv.gz", ".csv", ".parquet", ".pq"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return out.with_name(f"{name}_quality")


def _cmd_import(args: argparse.Namespace) -> int:
    import time

    from rp2pr_eval.data.extract import import_with_quality
    from rp2pr_eval.data.io import save_patients
    from rp2pr_eval.presentation.quality import write_quality_report
    from rp2pr_eval.study.design import StudyDesign

    out = Path(args.out)
    if not out.name.lower().endswith((".csv", ".csv.gz", ".parquet", ".pq")):
        raise UserError(f"--out {out}: expected a .csv, .csv.gz or .parquet file name")
    report = Path(args.report) if args.report is not None else _report_folder(out)
    for path in (out, report):
        if path.exists() and not args.force:
            raise UserError(f"{path} exists; pass --force to overwrite")
    for flag, value in (("--max-rows", args.max_rows), ("--max-mb", args.max_mb)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be ≥ 1, got {value}")
    design = StudyDesign.from_yaml(args.design) if args.design else None
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = import_with_quality(args.mapping, design=design, max_rows=args.max_rows,
                                     max_bytes=None if args.max_mb is None else int(args.max_mb * 1024**2))
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    save_patients(result.patients, out)
    written = write_quality_report(result.quality, report, design=design, overwrite=args.force)
    q = result.quality
    dropped = q.n_read - q.n_kept
    patients = result.patients
    print(f"imported {q.n_kept} patients (read {q.n_read}, dropped {dropped}) in {patients['trust_id'].nunique()} "
          f"trusts and {patients['pair_id'].nunique()} pairs in {time.perf_counter() - start:.1f} s; wrote {out}; "
          f"quality report: {written['html']}")
    return 0


def _cmd_validate_data(args: argparse.Namespace) -> int:
    from rp2pr_eval.data.describe import design_summary
    from rp2pr_eval.data.io import load_patients
    from rp2pr_eval.study.design import StudyDesign

    design = StudyDesign.from_yaml(args.design) if args.design else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = load_patients(args.path, design=design)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    s = design_summary(frame, design=design)
    print(f"{args.path}: valid — {s['patients']} patients, {s['trusts']} trusts, {s['pairs']} pairs "
          f"({', '.join(f'{k}: {v}' for k, v in s['pairs_by_arm'].items())} pairs)")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from rp2pr_eval.data.describe import design_summary, national_rates
    from rp2pr_eval.data.io import load_patients
    from rp2pr_eval.study.design import StudyDesign

    from rp2pr_eval import paths

    design = StudyDesign.from_yaml(args.design) if args.design else None
    data = paths.bundled_data() if args.data is None else Path(args.data)
    frame = load_patients(data, design=design)
    s = design_summary(frame, design=design)
    print(f"data: {data}")
    print(f"patients {s['patients']}, trusts {s['trusts']} {s['trusts_by_arm']}, pairs {s['pairs']} {s['pairs_by_arm']}")
    print("patients per audit year: " + ", ".join(f"{y}: {n}" for y, n in s["patients_by_year"].items()))
    rates = national_rates(frame)
    table = rates.pivot(index="outcome", columns="audit_year", values="value")
    refs = rates.dropna(subset=["reference"]).pivot(index="outcome", columns="audit_year", values="reference")
    refs.columns = [f"STUDY {c}" for c in refs.columns]
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print("national rates (proportions; medians in days) against STUDY.md §2:")
        print(table.join(refs).round(3).to_string())
    return 0


def _cwd_path(value: str | None) -> str | None:
    """A path given on the command line, made absolute against the working directory."""
    return None if value is None else str(Path(value).expanduser().resolve())


def _read_manifest(run: Path) -> dict:
    if not (run / "manifest.json").is_file():
        raise UserError(f"{run}: not a run folder (no manifest.json)")
    try:
        manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{run / 'manifest.json'}: not a readable manifest ({type(exc).__name__})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("parameters"), dict):
        raise UserError(f"{run / 'manifest.json'}: not a run manifest (no 'parameters')")
    from rp2pr_eval.pipeline.config import RunConfig

    try:
        RunConfig.from_dict(manifest["parameters"], source=f"{run / 'manifest.json'}: parameters")
    except ParameterError as exc:
        raise UserError(f"not a usable run manifest: {exc}") from None
    if not isinstance(manifest.get("data"), str):
        raise UserError(f"{run / 'manifest.json'}: not a run manifest (no 'data')")
    return manifest


def _cmd_run(args: argparse.Namespace) -> int:
    from rp2pr_eval.pipeline.batch import run_evaluation
    from rp2pr_eval.pipeline.config import load_run_config

    if args.data is not None and args.panel is not None:
        raise UserError("give --data (a patient table) or --panel (a trust panel), not both")
    config = load_run_config(args.params).with_overrides(
        data=_cwd_path(args.data if args.panel is None else args.panel), out=_cwd_path(args.out), jobs=args.jobs,
        seed=args.seed, outcomes=tuple(args.outcome) if args.outcome else None,
        data_kind="panel" if args.panel is not None else None)
    result = run_evaluation(config, run_id=args.run_id, progress=not args.quiet)
    for note in result.notes:
        print(f"  note: {note}", file=sys.stderr)
    n_ok = sum(j.status == "ok" for j in result.jobs)
    print(f"{n_ok}/{len(result.jobs)} notebooks ran; report: {result.run_dir / 'index.html'}")
    if result.not_estimable:
        print(f"  not estimable ({len(result.not_estimable)}):", file=sys.stderr)
        for item in result.not_estimable[:20]:
            print(f"    {item[:200]}", file=sys.stderr)
    for job in result.failed:
        print(f"  failed: {job.name}: {job.error}", file=sys.stderr)
    for problem in result.audit:
        print(f"  disclosure audit: {problem}", file=sys.stderr)
    return 0 if result.ok else EXIT_FAILED


def _cmd_figures(args: argparse.Namespace) -> int:
    import os
    import time

    from rp2pr_eval.presentation.report import regenerate_figures

    os.environ.setdefault("MPLBACKEND", "Agg")   # files only; the worker processes inherit it

    run = Path(args.run)
    _read_manifest(run)
    start = time.perf_counter()
    written = regenerate_figures(run, n_jobs=args.jobs)
    print(f"regenerated {len(written)} figures (PNG, PDF, SVG) in {run / 'figures'} "
          f"in {time.perf_counter() - start:.1f} s without refitting")
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from rp2pr_eval.data.io import load_patients
    from rp2pr_eval.pipeline.audit import audit_run

    from rp2pr_eval.study.design import StudyDesign

    run = Path(args.run)
    if not run.is_dir():
        raise UserError(f"{run}: not a folder; give a run folder (outputs/<run-id>) or any folder to be sent")
    if (run / "manifest.json").exists():
        manifest = _read_manifest(run)
        design = StudyDesign.from_dict(manifest["parameters"]["design"])
        data = Path(args.data or manifest["data"])
    else:                       # any folder a user means to send: the default disclosure policy, ids from --data
        print(f"{run}: no manifest.json (not a run folder): checked with the default disclosure policy"
              + ("" if args.data else "; give --data to check for patient ids too"))
        design = StudyDesign()
        data = Path(args.data) if args.data else None
    ids = None
    if data is not None and data.is_file():
        ids = set(load_patients(data, validate=False)["patient_id"].astype(str))
    problems = audit_run(run, patient_ids=ids, design=design)
    for p in problems:
        print(p)
    print(f"{run}: {'no disclosure problems found' if not problems else f'{len(problems)} problem(s)'}"
          + ("" if ids is not None else " (input data not found: patient ids not checked)"))
    return 0 if not problems else EXIT_FAILED


def _cmd_rerun(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from rp2pr_eval.pipeline.batch import run_evaluation
    from rp2pr_eval.pipeline.config import RunConfig
    from rp2pr_eval.pipeline.environment import sha256
    from rp2pr_eval.pipeline.rerun import compare_runs

    run = Path(args.run)
    manifest = _read_manifest(run)
    # exactly the parameters the manifest recorded (not today's parameter files)
    config = RunConfig.from_dict(manifest["parameters"], source=str(run / "manifest.json"))
    data = Path(manifest.get("data", ""))
    if not data.is_file():
        raise UserError(f"{data}: the run's data file is not there any more; a rerun needs the same data")
    if sha256(data) != manifest.get("data_sha256"):
        raise UserError(f"{data}: SHA-256 differs from the manifest's ({str(manifest.get('data_sha256'))[:12]}…); "
                        "the data changed since the run, so a rerun cannot reproduce it")
    config = replace(config, data=str(data.resolve()), out=str(run.resolve().parent))
    new = run_evaluation(config, run_id=args.run_id or f"{run.name}-rerun", progress=not args.quiet)
    result = compare_runs(run, new.run_dir, run_id_a=manifest.get("run_id"), run_id_b=new.run_dir.name)
    if not result:
        print(f"rerun {new.run_dir} differs from {run} in {len(result.differences)} of {result.n_files} file(s):")
        for d in result.differences:
            print(f"  {d}")
        return EXIT_FAILED
    print(f"rerun {new.run_dir} reproduces {run}: all {result.n_files} files compared; {len(result.identical)} "
          f"byte-identical, {len(result.normalised)} (manifest, notebooks, report page) identical once their "
          "times, run id and folder names are removed")
    return 0 if new.ok else EXIT_FAILED


def _cmd_validate_methods(args: argparse.Namespace) -> int:
    import math

    for flag, value, minimum in (("--reps", args.reps, 1), ("--effect-reps", args.effect_reps, 0),
                                 ("--jobs", args.jobs, 1), ("--ri-draws", args.ri_draws, 19),
                                 ("--boot-draws", args.boot_draws, 19), ("--seed", args.seed, 0)):
        if value is not None and value < minimum:
            raise ParameterError(f"{flag} must be ≥ {minimum}, got {value}")
    if not math.isfinite(args.effect):
        raise ParameterError(f"--effect must be a finite number, got {args.effect}")
    if args.scheduler is not None and args.backend != "dask":
        raise ParameterError(f"--scheduler needs --backend dask (got --backend {args.backend})")
    import time

    from rp2pr_eval.inference.method_study import (
        NO_DRIFT_SIMULATE_KWARGS,
        SMALL_SIMULATE_KWARGS,
        parse_methods,
        render_markdown,
        run_replicates,
        summarise,
        write_outputs,
    )
    from rp2pr_eval.study.outcomes import OUTCOMES

    binary = [k for k, v in OUTCOMES.items() if v.kind == "binary"]
    if args.outcome not in binary:
        raise ParameterError(f"--outcome {args.outcome!r} is not a binary registry outcome: {', '.join(binary)}")
    methods = parse_methods(args.methods, args.small)
    start = time.perf_counter()
    replicates = run_replicates(
        args.reps, effect=args.effect, outcome=args.outcome, methods=methods, seed=args.seed, backend=args.backend,
        n_jobs=args.jobs, scheduler=args.scheduler,
        simulate_kwargs={**(SMALL_SIMULATE_KWARGS if args.small else {}),
                         **(NO_DRIFT_SIMULATE_KWARGS if args.drift == "off" else {})} or None,
        effect_reps=args.effect_reps, n_draws=args.ri_draws, n_boot=args.boot_draws, progress=not args.quiet)
    summary = summarise(replicates)
    written = write_outputs(summary, args.out, replicates=replicates)
    print(render_markdown(summary), end="")
    print(f"\nwrote {written['csv']}, {written['md']} and {written['replicates']} "
          f"({time.perf_counter() - start:.0f} s, backend {args.backend})")
    return 0


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")


def _add_validate_methods(subparsers) -> argparse.ArgumentParser:
    """The ``validate-methods`` sub-command (the Monte Carlo study of :mod:`rp2pr_eval.inference.method_study`)."""
    from typing import get_args

    from rp2pr_eval.inference.method_study import Backend

    p = subparsers.add_parser(
        "validate-methods", help="Monte Carlo size, coverage and power of every method at the ILCOP design",
        description="Simulate ILCOP-shaped trials under the null and a planted effect and report, per estimator × "
                    "inference method, the size at 5 %, 95 % CI coverage, bias, power and failures.")
    p.add_argument("--reps", type=int, required=True, help="null replicates")
    p.add_argument("--effect-reps", type=int, default=None, help="effect replicates (default: --reps)")
    p.add_argument("--effect", type=float, default=0.3, help="planted effect, logit scale (default 0.3)")
    p.add_argument("--outcome", default="active_treatment", help="binary registry outcome (default active_treatment)")
    p.add_argument("--methods", default=None, metavar="LIST",
                   help="comma-separated method ids, 'cheap' or 'all' (default all; with --small: cheap)")
    p.add_argument("--jobs", type=int, default=None, help="parallel workers (default: CPU count)")
    p.add_argument("--backend", choices=get_args(Backend), default="local",
                   help="local (joblib processes), serial or dask (default local)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="dask scheduler address (default: a LocalCluster on 127.0.0.1)")
    p.add_argument("--out", default="outputs/validation", help="output folder (default outputs/validation)")
    p.add_argument("--seed", type=int, default=1, help="root seed (default 1)")
    p.add_argument("--ri-draws", type=int, default=499, help="randomisation-test draws per replicate (default 499)")
    p.add_argument("--boot-draws", type=int, default=399, help="wild bootstrap draws per replicate (default 399)")
    p.add_argument("--small", action="store_true",
                   help="reduced volumes (median 40 patients per trust-year) and the cheap trust-level methods")
    p.add_argument("--drift", choices=("on", "off"), default="on",
                   help="trust x period drift of the generator: on (AR(1) trust effects, rho 0.7, and pair shocks; "
                        "default) or off (trust effects constant over the years, no pair shocks)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_common(p)
    p.set_defaults(func=_cmd_validate_methods)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rp2pr-eval", description="ILCOP evaluation toolkit")
    _add_common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("simulate", help="write a synthetic NLCA patient table with a known truth")
    p.add_argument("--out", help="output file (.csv, .csv.gz or .parquet)")
    p.add_argument("--raw", metavar="DIR", help="write a raw audit-like extract, its allocation list and a ready "
                                                "mapping.yaml into DIR instead (rp2pr-eval import reads them)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--design", help="design YAML (default: the built-in design)")
    p.add_argument("--effect", action="append", metavar="OUTCOME=VALUE",
                   help="planted effect (logit / log / log-hazard scale); repeatable")
    p.add_argument("--pairs", type=int, default=40, help="number of pairs (default 40)")
    p.add_argument("--treated-pairs", type=int, default=None, help="pairs randomised to intervention (default 15)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    _add_common(p)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("import", help="turn a raw extract and an allocation list into a contract table (mapping YAML)",
                       description="Read a raw extract as MAPPING.yaml says (docs/methods/import.md), validate the "
                                   "patient table, write it to --out and a data-quality report (CSV and HTML, "
                                   "disclosure-controlled) to --report.")
    p.add_argument("mapping", metavar="MAPPING.yaml", help="mapping file (paths in it are relative to it)")
    p.add_argument("--out", required=True, help="output patient table (.csv, .csv.gz or .parquet)")
    p.add_argument("--report", metavar="DIR", help="quality report folder (default: <out>_quality beside --out)")
    p.add_argument("--design", help="design YAML (default: the built-in design)")
    p.add_argument("--max-rows", type=int, default=10_000_000, help="refuse extracts with more rows (default 10 million)")
    p.add_argument("--max-mb", type=float, default=2048, help="refuse larger files, MiB (default 2048)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output and report")
    _add_common(p)
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("validate-data", help="check a patient table against the data contract")
    p.add_argument("path", help="CSV, gzipped CSV, Parquet, Stata .dta, SAS .sas7bdat/.xpt or Excel .xlsx file")
    p.add_argument("--design", help="design YAML")
    _add_common(p)
    p.set_defaults(func=_cmd_validate_data)

    p = sub.add_parser("summary", help="validate data and print trusts, pairs, volumes and national rates")
    p.add_argument("--data", default=None, help="patient table (default: the bundled synthetic data)")
    p.add_argument("--design", help="design YAML")
    _add_common(p)
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("run", help="run the whole evaluation (notebooks through Papermill) into outputs/<run-id>")
    p.add_argument("--params", default=None,
                   help="parameter folder (run.yaml, design.yaml, outcomes/; paths inside relative to it); "
                        "default: the project's parameters/")
    p.add_argument("--data", help="patient table (overrides run.yaml)")
    p.add_argument("--panel", metavar="FILE",
                   help="run from a trust panel instead (trust_id, pair_id, arm, audit_year, outcome, numerator, "
                        "denominator): trust-level estimators only, the others recorded as not applicable")
    p.add_argument("--out", help="output root folder (overrides run.yaml)")
    p.add_argument("--jobs", type=int, help="parallel notebook kernels (overrides run.yaml)")
    p.add_argument("--outcome", action="append", metavar="NAME", help="outcome to analyse; repeatable")
    p.add_argument("--seed", type=int, help="random seed (overrides run.yaml)")
    p.add_argument("--run-id", help="name of the run folder (default: run-<date>-<time>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_common(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("figures", help="regenerate every figure of a run from its saved results (no refitting)")
    p.add_argument("--run", required=True, help="run folder outputs/<run-id>")
    p.add_argument("--jobs", type=int, default=-1, help="parallel processes (default: all cores)")
    _add_common(p)
    p.set_defaults(func=_cmd_figures)

    p = sub.add_parser("audit", help="scan a run folder for patient-level rows and small counts")
    p.add_argument("run", help="run folder outputs/<run-id>")
    p.add_argument("--data", help="input patient table (default: the one in the manifest)")
    _add_common(p)
    p.set_defaults(func=_cmd_audit)

    p = sub.add_parser("rerun", help="repeat a run from its manifest and report any difference")
    p.add_argument("run", help="run folder outputs/<run-id>")
    p.add_argument("--run-id", help="name of the new run folder (default: <run-id>-rerun)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_common(p)
    p.set_defaults(func=_cmd_rerun)

    _add_validate_methods(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed a one-line usage error
        return int(exc.code or 0) if exc.code in (0, None) else EXIT_USER_ERROR
    debug = bool(getattr(args, "debug", False)) or "--debug" in argv
    try:
        return int(args.func(args) or 0)
    except (DataError, ParameterError, UserError, FileNotFoundError, PermissionError, IsADirectoryError,
            NotADirectoryError, FileExistsError) as exc:
        if debug:
            raise
        return _error(str(exc))
    except KeyboardInterrupt:
        print("rp2pr-eval: interrupted (Ctrl-C); nothing half-written was left", file=sys.stderr)
        return 130
    except BaseException as exc:
        from rp2pr_eval.pipeline.batch import RunInterrupted

        if isinstance(exc, RunInterrupted):
            print(f"rp2pr-eval: stopped by {exc.signame}; nothing half-written was left", file=sys.stderr)
            return 128 + int(getattr(__import__("signal"), exc.signame))
        if isinstance(exc, OSError) and not debug:      # the disk, the file system, the network share
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            return _error(f"{where}{exc.strerror or exc}" + (" (free some space and run again)"
                                                              if exc.errno in (28, 122) else ""))
        if isinstance(exc, MemoryError) and not debug:
            return _error("out of memory (the input is too large for this machine, or a parameter value is hostile)")
        raise


def _error(message: str) -> int:
    print(f"rp2pr-eval: error: {message.replace(chr(10), ' ')}", file=sys.stderr)
    return EXIT_USER_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
