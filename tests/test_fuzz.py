"""Fuzz harness (issue 13, item 7): malformed patient tables, parameter folders and run folders.

The promise checked for every generated case: a correct result or a one-line error (exit code 2 from
the CLI, ``DataError``/``ParameterError`` from the API), never a traceback, and nothing written where
the user would look (``--out`` stays empty, no half-written file beside the input).  The signal tests
(SIGTERM, SIGKILL, SIGINT mid-run) are in ``tests/test_faults.py``.

Cases are drawn by hypothesis with ``derandomize=True`` (the same cases on every machine) and a
small budget; ``-m slow`` runs a larger one.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import rp2pr_eval as rp
from rp2pr_eval.cli import main
from rp2pr_eval.data.contract import REQUIRED_COLUMNS
from rp2pr_eval.pipeline.config import load_run_config
from tests.conftest import ROOT

pytestmark = pytest.mark.simulation

BUDGET = int(os.environ.get("RP2PR_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=BUDGET, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def tiny() -> pd.DataFrame:
    """A tiny valid trial: 4 pairs (2 treated), ~8 patients per trust-year."""
    return rp.simulate_nlca(seed=3, n_pairs=4, n_treated_pairs=2, volume_median=8, volume_clip=(4, 12))


# ----------------------------------------------------------------------------- helpers
def _one_line_error(code: int, err: str) -> None:
    assert code == 2, (code, err[-1500:])
    assert "Traceback" not in err, err[-1500:]
    lines = [line for line in err.splitlines() if line.strip() and "WARNING" not in line and "Warning" not in line]
    assert len(lines) == 1 and lines[0].startswith("rp2pr-eval: error: "), err[-1500:]
    assert len(lines[0]) < 600, lines[0][:200]


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


GARBAGE = st.one_of(st.just(""), st.just("NA"), st.just("-1"), st.just("1e308"), st.just("nan"), st.just("inf"),
                    st.just("2009.5"), st.just("ÿ"), st.just("\x00"), st.just("9" * 40), st.text(max_size=12),
                    st.just("intervention"), st.just("control "), st.just("1/2/2010"))

MUTATIONS = st.lists(st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(sorted(REQUIRED_COLUMNS))),
    st.tuples(st.just("rename"), st.sampled_from(["trust_id", "pair_id", "arm", "audit_year", "patient_id"])),
    st.tuples(st.just("cell"), st.sampled_from(["trust_id", "pair_id", "arm", "audit_year", "patient_id", "age",
                                                "sex", "stage", "active_treatment", "survival_days",
                                                "days_referral_to_treatment"]), st.integers(0, 10_000), GARBAGE),
    st.tuples(st.just("duplicate_row"), st.integers(0, 10_000)),
    st.tuples(st.just("swap_arm"), st.integers(0, 10_000)),
    st.tuples(st.just("header_only")),
), min_size=1, max_size=3)


def _mutate(frame: pd.DataFrame, mutations) -> pd.DataFrame:
    frame = frame.astype(object).copy()
    for m in mutations:
        if m[0] == "drop" and m[1] in frame.columns:
            frame = frame.drop(columns=[m[1]])
        elif m[0] == "rename" and m[1] in frame.columns:
            frame = frame.rename(columns={m[1]: m[1].upper() + "_X"})
        elif m[0] == "cell" and m[1] in frame.columns and len(frame):
            frame.iat[m[2] % len(frame), frame.columns.get_loc(m[1])] = m[3]
        elif m[0] == "duplicate_row" and len(frame):
            frame = pd.concat([frame, frame.iloc[[m[1] % len(frame)]]], ignore_index=True)
        elif m[0] == "swap_arm" and "arm" in frame.columns and "trust_id" in frame.columns and len(frame):
            trust = frame["trust_id"].iloc[m[1] % len(frame)]
            rows = frame["trust_id"] == trust
            frame.loc[rows, "arm"] = np.where(frame.loc[rows, "arm"] == "control", "intervention", "control")
        elif m[0] == "header_only":
            frame = frame.iloc[:0]
    return frame


# ----------------------------------------------------------------------------- patient tables
@FUZZ
@given(mutations=MUTATIONS)
def test_fuzz_patient_tables_give_a_correct_table_or_a_one_line_error(tiny, tmp_path_factory, mutations, capsys):
    folder = tmp_path_factory.mktemp("fz")
    path = folder / "patients.csv"
    _mutate(tiny, mutations).to_csv(path, index=False)
    before = _listing(folder)
    try:
        frame = rp.load_patients(path, design=rp.StudyDesign(n_treated_pairs=2))
    except rp.DataError as exc:
        event("refused")
        assert "\n" not in str(exc) and len(str(exc)) < 600
        code = main(["validate-data", str(path)])
        _one_line_error(code, capsys.readouterr().err)
    else:                                                      # accepted: then it is a valid contract table
        event("accepted")
        rp.validate_patients(frame)
        assert frame["patient_id"].is_unique
    assert _listing(folder) == before                         # nothing written beside the input


BYTE_DAMAGE = st.lists(st.tuples(st.sampled_from(["truncate", "insert", "flip"]), st.integers(0, 1 << 20),
                                 st.binary(min_size=1, max_size=8)), min_size=1, max_size=3)


@FUZZ
@given(damage=BYTE_DAMAGE, suffix=st.sampled_from([".csv", ".csv.gz", ".parquet", ".dta", ".xlsx"]))
def test_fuzz_damaged_files_never_end_in_a_traceback(tiny, tmp_path_factory, damage, suffix, capsys):
    folder = tmp_path_factory.mktemp("fb")
    path = folder / f"patients{suffix}"
    rp.save_patients(tiny, folder / "clean.csv.gz")
    clean = rp.load_patients(folder / "clean.csv.gz", validate=False)
    if suffix in (".csv", ".csv.gz", ".parquet"):
        rp.save_patients(clean, path)
    elif suffix == ".dta":
        clean.to_stata(path, write_index=False, version=118)
    else:
        clean.to_excel(path, index=False)
    raw = bytearray(path.read_bytes())
    for kind, at, data in damage:
        at %= max(len(raw), 1)
        if kind == "truncate":
            raw = raw[: max(at, 1)]
        elif kind == "insert":
            raw[at:at] = data
        else:
            raw[at] ^= data[0] or 1
    path.write_bytes(bytes(raw))
    (folder / "clean.csv.gz").unlink()
    before = _listing(folder)
    code = main(["validate-data", str(path)])
    err = capsys.readouterr().err
    event(f"{suffix}: exit {code}")
    if code != 0:                                             # damage may be harmless (e.g. in padding)
        _one_line_error(code, err)
    assert _listing(folder) == before


# ----------------------------------------------------------------------------- parameter folders
KEYS = ["data", "design", "seed", "jobs", "notebooks", "outcomes", "primary_outcomes", "analysis", "power",
        "analysis.estimators", "analysis.cluster", "analysis.vcov", "analysis.covariates", "analysis.ri_draws",
        "analysis.boot_weights", "analysis.level", "power.n_sims", "power.effects", "power.outcome",
        "design.n_treated_pairs", "design.pre_years", "design.disclosure_threshold", "design.disclosure",
        "design.intervention_arm", "design.seed"]
BAD_VALUES = st.one_of(st.none(), st.just(-1), st.just(0), st.just(1), st.just(1.5), st.just(True), st.just("x"),
                       st.just([]), st.just({}), st.just(["ancova", "ancov"]), st.just([2008, "2009"]),
                       st.just("a" * 5000), st.just({"a": [1, {"b": 2}]}), st.just(float("nan")),
                       st.just(["does_not_exist"]), st.just("../../etc/passwd"))


def _parameter_folder(dest: Path, changes, typo: str | None, raw_bytes: bytes | None) -> Path:
    run = yaml.safe_load((ROOT / "parameters" / "run.yaml").read_text(encoding="utf-8"))
    design = yaml.safe_load((ROOT / "parameters" / "design.yaml").read_text(encoding="utf-8"))
    run["data"] = str(ROOT / "data" / "synthetic" / "nlca_patients.csv.gz")
    for key, value in changes:
        target, _, leaf = key.rpartition(".")
        holder = design if target == "design" else (run.setdefault(target, {}) if target else run)
        if isinstance(holder, dict):
            holder[leaf] = value
    if typo:
        run[typo] = 1
    dest.mkdir()
    (dest / "outcomes").mkdir()
    (dest / "design.yaml").write_text(yaml.safe_dump(design), encoding="utf-8")
    text = yaml.safe_dump(run, allow_unicode=True).encode("utf-8")
    (dest / "run.yaml").write_bytes(raw_bytes + text if raw_bytes else text)
    return dest


@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(KEYS), BAD_VALUES), min_size=1, max_size=3),
       typo=st.one_of(st.none(), st.sampled_from(["sed", "outcome", "Analysis", "out_dir"])),
       raw_bytes=st.one_of(st.none(), st.sampled_from([b"\xff\xfe", b"a: &a [*a]\n", b"seed: 1\nseed: 2\n",
                                                       b"\x00", b"!!python/object:os.system\n"])))
def test_fuzz_parameter_folders_are_refused_before_anything_runs(tmp_path_factory, changes, typo, raw_bytes,
                                                                    capsys):
    base = tmp_path_factory.mktemp("fp")
    params = _parameter_folder(base / "p", changes, typo, raw_bytes)
    try:
        config = load_run_config(params)
    except (rp.ParameterError, rp.DataError) as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 600, str(exc)[:300]
        accepted = False
    else:
        accepted = True
        assert config.seed >= 0 and config.outcomes                 # what was accepted is sane
    event("accepted" if accepted else "refused")
    if accepted:
        return                                                       # a valid folder would start a full run
    out = base / "out"
    code = main(["run", "--params", str(params), "--out", str(out), "--quiet"])
    _one_line_error(code, capsys.readouterr().err)
    assert not out.exists() or _listing(out) == []                  # nothing written for a refused run


# ----------------------------------------------------------------------------- run folders given to audit
FILE_KINDS = [".csv", ".csv.gz", ".json", ".ipynb", ".parquet", ".html", ".md", ".tex", ".svg", ".txt", ".npy",
              ".png", ".pdf", ""]


@FUZZ
@given(files=st.lists(st.tuples(st.sampled_from(FILE_KINDS), st.binary(max_size=200),
                                st.sampled_from(["results", "tables", "notebooks", "", "deep/er"])),
                      min_size=1, max_size=6),
       plant=st.one_of(st.none(), st.integers(0, 5)))
def test_fuzz_audit_reports_malformed_files_instead_of_crashing(tiny, tmp_path_factory, files, plant, capsys):
    """Any folder a user means to send: junk files are reported (never a crash), a planted patient id is found."""
    base = tmp_path_factory.mktemp("fa")
    data = base / "patients.csv.gz"
    rp.save_patients(tiny, data)
    run = base / "send"
    for i, (suffix, content, sub) in enumerate(files):
        (run / sub).mkdir(parents=True, exist_ok=True)
        if plant is not None and i == plant % len(files):
            content = content + b"\n" + str(tiny["patient_id"].iloc[7]).encode() + b"\n"
            suffix = ".txt"
        (run / sub / f"f{i}{suffix}").write_bytes(content)
    before = _listing(run)
    code = main(["audit", str(run), "--data", str(data)])
    captured = capsys.readouterr()
    event(f"audit exit {code}")
    assert "Traceback" not in captured.err + captured.out
    assert code in (0, 1), captured.err[-500:]
    if plant is not None:
        assert code == 1 and "patient id" in captured.out, captured.out[-800:]
    assert _listing(run) == before                                   # the audit only reads
