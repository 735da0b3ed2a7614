"""The run-folder audit reads every file type and is never crashed by one (issue 13).

Planted leaks: for each file type the package writes or a user may add, a patient id and a count of
3 in a column named ``deaths`` (or in prose) are planted, and the audit must report both; the same
files without the leak must pass (no false positive). Before issue 13 the audit read only ``.csv``
under ``tables/`` with a few column names, skipped ``results/``, and crashed on a malformed
notebook. Malformed files: binary garbage, truncated gzip, a gzip bomb, invalid JSON and notebooks,
a 2 GiB sparse file, Latin-1 text, deep nesting, links and FIFOs are reported, never raised.
"""
from __future__ import annotations

import functools
import gzip
import io
import json
import os
import zipfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rp2pr_eval.pipeline.audit import audit_files, audit_run
from rp2pr_eval.presentation.disclosure import DisclosurePolicy, small_counts_in_table, small_counts_in_text

pytestmark = pytest.mark.fixture

ID = "N0012345"
IDS = {ID, "N0000002", "N0000003"}


def leak_frame(leak: bool) -> pd.DataFrame:
    return pd.DataFrame({"group": ["Stage IV", "Stage III"], "deaths": [3 if leak else 30, 40],
                         "note": [ID if leak else "T001", "none"]})


def _html_table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=True)


def _notebook(outputs: list[dict]) -> str:
    cells = [{"cell_type": "code", "execution_count": 1, "id": "c1", "metadata": {}, "outputs": outputs,
              "source": "frame"}]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def _write(folder, name: str, data: bytes | str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def plant(folder, kind: str, leak: bool) -> str:
    """Write one file of the given kind, with or without the leak; returns its relative path."""
    f = leak_frame(leak)
    count = "3" if leak else "30"
    pid = ID if leak else "T001"
    if kind == "csv":
        name, data = "tables/t.csv", f.to_csv(index=False)
    elif kind == "csv.gz":
        name, data = "tables/t.csv.gz", gzip.compress(f.to_csv(index=False).encode(), mtime=0)
    elif kind == "tsv":
        name, data = "tables/t.tsv", f.to_csv(index=False, sep="\t")
    elif kind == "parquet":
        buf = io.BytesIO()
        f.to_parquet(buf, index=False)
        name, data = "results/t.parquet", buf.getvalue()
    elif kind == "json":
        name, data = "results/t.json", json.dumps({"rows": f.to_dict(orient="records")})
    elif kind == "extras.json":   # the run's own results file: panels audited, model output not
        extras = {"schema": "rp2pr_eval.outcome_extras", "outcome": "x", "label": "x", "kind": "binary",
                  "randomisation": {"histogram": {"counts": [1, 2, 3], "edges": [0, 1, 2, 3]}},
                  "panel_period": [{"trust_id": pid, "numerator": int(count), "denominator": 50,
                                   "rate": int(count) / 50}]}
        name, data = "results/x.extras.json", json.dumps(extras)
    elif kind == "md":
        name, data = "tables/t.md", "**Deaths**\n\n| group | deaths | note |\n|---|---|---|\n" + "".join(
            f"| {r.group} | {r.deaths} | {r.note} |\n" for r in f.itertuples())
    elif kind == "html":
        name, data = "tables/t.html", f"<html><body><h1>Deaths</h1>{_html_table(f)}</body></html>"
    elif kind == "tex":
        name, data = "tables/t.tex", f.to_latex(index=False)
    elif kind == "svg":
        name, data = "figures/f.svg", (f'<svg xmlns="http://www.w3.org/2000/svg"><!-- {count} deaths -->'
                                       f'<text x="1" y="2">{pid}</text><path d="M 0 3 L 3 3"/></svg>')
    elif kind == "txt":
        name, data = "notes.txt", f"Summary\n{count} patients died in trust T001 (patient {pid}).\n"
    elif kind == "ipynb-html":
        name, data = "notebooks/a.ipynb", _notebook([{"output_type": "execute_result", "execution_count": 1,
                                                      "metadata": {}, "data": {"text/html": _html_table(f),
                                                                               "text/plain": f.to_string()}}])
    elif kind == "ipynb-stream":
        name, data = "notebooks/b.ipynb", _notebook([{"output_type": "stream", "name": "stdout",
                                                      "text": f.to_string() + "\n"}])
    elif kind == "ipynb-markdown":
        md = "| group | deaths | note |\n|---|---|---|\n" + "".join(f"| {r.group} | {r.deaths} | {r.note} |\n"
                                                                  for r in f.itertuples())
        name, data = "notebooks/c.ipynb", _notebook([{"output_type": "display_data", "metadata": {},
                                                      "data": {"text/markdown": md, "text/plain": "<md>"}}])
    elif kind == "ipynb-plain":
        name, data = "notebooks/d.ipynb", _notebook([{"output_type": "execute_result", "execution_count": 1,
                                                      "metadata": {}, "data": {"text/plain": f.to_string()}}])
    elif kind == "xlsx":
        buf = io.BytesIO()
        f.to_excel(buf, index=False)
        name, data = "tables/t.xlsx", buf.getvalue()
    elif kind == "npy":
        buf = io.BytesIO()
        np.save(buf, np.array([pid, "x"]))
        buf2 = io.BytesIO()
        np.save(buf2, np.array([int(count), 40]))
        _write(folder, "results/counts.npy", buf2.getvalue())
        name, data = "results/ids.npy", buf.getvalue()
    else:
        raise AssertionError(kind)
    _write(folder, name, data)
    return name


KINDS = ["csv", "csv.gz", "tsv", "parquet", "json", "extras.json", "md", "html", "tex", "svg", "txt",
         "ipynb-html", "ipynb-stream", "ipynb-markdown", "ipynb-plain", "xlsx", "npy"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_planted_patient_id_and_small_count_are_found(tmp_path, kind):
    name = plant(tmp_path, kind, leak=True)
    problems = audit_run(tmp_path, patient_ids=IDS)
    assert any("patient id(s) of the input data" in p for p in problems), problems
    assert any("3 is in the suppressed range 1-4" in p or "count 3 in the suppressed range" in p
               for p in problems), problems
    assert all(ID not in p for p in problems)           # messages never quote an id
    assert any(p.startswith(name.split("/")[0]) or p.startswith("notes") for p in problems)


@pytest.mark.parametrize("kind", KINDS)
def test_the_same_files_without_the_leak_pass(tmp_path, kind):
    plant(tmp_path, kind, leak=False)
    assert audit_run(tmp_path, patient_ids=IDS) == []


def test_patient_level_rows_are_found_whatever_the_file(tmp_path):
    rows = pd.DataFrame({"patient_id": ["N0000002", "N0000003"], "age": [70, 64], "sex": ["F", "M"],
                         "stage": ["IV", "II"]})
    buf = io.BytesIO()
    rows.to_parquet(buf, index=False)
    _write(tmp_path, "data/patients.parquet", buf.getvalue())
    _write(tmp_path, "tables/rows.csv", rows.drop(columns="patient_id").to_csv(index=False))
    problems = audit_run(tmp_path, patient_ids=IDS)
    assert "data/patients.parquet: shows a 'patient_id' column (patient-level rows)" in problems
    assert any(p.startswith("data/patients.parquet: shows 2 patient id(s)") for p in problems)
    assert any(p.startswith("tables/rows.csv: shows the per-patient columns") for p in problems)


def test_model_output_is_exempt_but_not_from_the_id_check(tmp_path):
    effects = {"schema": "rp2pr_eval.effects", "effects": [{"estimator": "did_cox", "estimate": 0.1,
                                                            "n_obs": 3, "details": {"n_dropped": {"missing": 2}}}]}
    _write(tmp_path, "results/o.json", json.dumps(effects))
    buf = io.BytesIO()
    np.save(buf, np.array([1.0, 2.0, 3.0]))
    _write(tmp_path, "results/o.ri_draws.npy", buf.getvalue())
    assert audit_run(tmp_path, patient_ids=IDS) == []
    effects["effects"][0]["details"]["note"] = ID
    _write(tmp_path, "results/o.json", json.dumps(effects))
    assert audit_run(tmp_path, patient_ids=IDS) == ["results/o.json: shows 1 patient id(s) of the input data "
                                                    "(first at effects[0].details, row 1, column 'note')"]


def test_short_numeric_ids_are_matched_in_id_columns_only(tmp_path):
    _write(tmp_path, "tables/a.csv", "year,patients\n2008,120\n")
    _write(tmp_path, "tables/b.csv", "patient_ref_id,value\n2008,1.5\n")
    problems = audit_run(tmp_path, patient_ids={"2008"})
    assert problems == ["tables/b.csv: shows 1 patient id(s) of the input data (first at row 1, column "
                        "'patient_ref_id')"]


# ---------------------------------------------------------------------------
# The rules on rendered tables and prose
# ---------------------------------------------------------------------------

POLICY = DisclosurePolicy.from_preset()


@pytest.mark.parametrize(
    "frame, expected",
    [
        (pd.DataFrame({"deaths": [3, 40]}), [3]),
        (pd.DataFrame({"Characteristic": ["Stage I", "Stage II"], "Control": ["4 (12.0%)", "30 (88.0%)"]}), [4]),
        (pd.DataFrame({"audit_year": [2008, 2009], "n_trusts": [3, 4], "p_value": [1.0, 0.5]}), []),
        (pd.DataFrame({"label": ["Trusts, n", "Patients, n"], "All": [3, 40]}), []),
        (pd.DataFrame({"": [0, 1, 2], "rate": [0.1, 0.2, 0.3]}), []),                    # row numbers
        (pd.DataFrame({"median_days": [3.5, 4.0, 40.0]}), []),                            # measurements
        (pd.DataFrame({"rate": [0.75], "denominator": [16]}), [4]),                        # 16 - 12 = 4
        (pd.DataFrame({"percent": ["50.0"], "n": ["1,000"]}), []),                         # does not pin
        (pd.DataFrame({"deaths": ["<5", "*", "12"]}), []),
    ],
)
def test_the_table_rule(frame, expected):
    assert [f.count for f in small_counts_in_table(frame, POLICY)] == expected


def test_the_prose_rule():
    text = "n = 3\n(N=2,104)\n3 of 40 patients\n12 deaths, 2 died\nseen in 2010: 4 trusts\nT001 had 120 patients"
    assert [(line, n) for line, n, _ in small_counts_in_text(text, POLICY)] == [(1, 3), (3, 3), (4, 2)]


# ---------------------------------------------------------------------------
# Malformed files: reported, never raised
# ---------------------------------------------------------------------------


def _problem(problems, name):
    hits = [p for p in problems if p.startswith(name + ":")]
    assert hits, (name, problems)
    return hits[0]


def test_malformed_files_are_reported_as_unreadable(tmp_path):
    good = gzip.compress(b"a,b\n1,2\n" * 1000, mtime=0)
    nested = "[" * 100_000 + "]" * 100_000
    files = {
        "tables/garbage.csv": bytes(range(256)) * 40,
        "tables/truncated.csv.gz": good[: len(good) // 2],
        "tables/not-gzip.csv.gz": b"plain text, not gzip",
        "tables/bomb.csv.gz": gzip.compress(b"0" * 3_000_000, mtime=0),
        "results/invalid.json": b'{"panel_year": [1, 2,',
        "results/nested.json": nested.encode(),
        "notebooks/list.ipynb": b"[1, 2, 3]",
        "notebooks/broken.ipynb": b'{"cells": [{"cell_type": "code", "outputs": 7}]}',
        "notebooks/truncated.ipynb": _notebook([])[:40].encode(),
        "results/garbage.parquet": b"PAR1 not really",
        "tables/garbage.xlsx": b"PK\x03\x04 not a zip",
        "results/pickle.npy": _npy_object(),
        "figures/empty.svg": b"",
        "tables/empty.csv": b"",
    }
    for name, data in files.items():
        _write(tmp_path, name, data)
    with open(tmp_path / "huge.txt", "wb") as fh:
        fh.truncate(2 * 1024**3)                       # a 2 GiB sparse file: refused by size, never read
    report = audit_files(tmp_path, patient_ids=IDS, max_bytes=1_000_000)
    p = report.problems
    assert "binary content" in _problem(p, "tables/garbage.csv")
    assert "truncated gzip stream" in _problem(p, "tables/truncated.csv.gz")
    assert "not a valid gzip stream" in _problem(p, "tables/not-gzip.csv.gz")
    assert "decompresses to more than 1,000,000 bytes" in _problem(p, "tables/bomb.csv.gz")
    assert "not valid JSON" in _problem(p, "results/invalid.json")
    assert "unreadable" in _problem(p, "results/nested.json")
    assert "not a notebook" in _problem(p, "notebooks/list.ipynb")
    assert "not a notebook" in _problem(p, "notebooks/broken.ipynb")
    assert "not valid JSON" in _problem(p, "notebooks/truncated.ipynb")
    assert "not a readable Parquet file" in _problem(p, "results/garbage.parquet")
    assert "not a readable Excel file" in _problem(p, "tables/garbage.xlsx")
    assert "without pickles" in _problem(p, "results/pickle.npy")
    assert "too large to audit (2,147,483,648 bytes" in _problem(p, "huge.txt")
    assert not [x for x in p if x.startswith(("figures/empty.svg", "tables/empty.csv"))]
    assert all("\n" not in x for x in p)
    assert len(report.unreadable) == 13


def _npy_object() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buf.getvalue()


def test_latin1_text_is_reported_and_still_audited(tmp_path):
    _write(tmp_path, "tables/t.csv", "trust,deaths\nSaint-Étienne,3\n".encode("latin-1"))
    problems = audit_run(tmp_path)
    assert problems[0] == "tables/t.csv: not valid UTF-8 (byte 19); audited as Latin-1"
    assert "count 3 is in the suppressed range" in problems[1]


def test_links_fifos_and_entities_do_not_stop_the_audit(tmp_path):
    _write(tmp_path, "tables/real.csv", "group,deaths\na,30\n")
    os.symlink(tmp_path / "tables" / "real.csv", tmp_path / "tables" / "link.csv")
    os.symlink("/etc", tmp_path / "etc")
    os.mkfifo(tmp_path / "pipe.csv")
    laughs = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">'
              '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]><svg><text>&lol3;</text></svg>')
    _write(tmp_path, "figures/laughs.svg", laughs)
    problems = audit_run(tmp_path)
    assert "tables/link.csv: unreadable, not audited: a symbolic link (not followed)" in problems
    assert "etc: unreadable, not audited: a symbolic link (not followed)" in problems
    assert "pipe.csv: unreadable, not audited: not a regular file" in problems
    assert not [p for p in problems if p.startswith(("tables/real.csv", "figures/laughs.svg"))]


def test_audit_refuses_what_is_not_a_folder(tmp_path):
    from rp2pr_eval.errors import ParameterError

    with pytest.raises(ParameterError, match="not a folder to audit"):
        audit_run(tmp_path / "missing")
    with pytest.raises(ParameterError, match="max_bytes must be a positive integer"):
        audit_run(tmp_path, max_bytes=0)


# ---------------------------------------------------------------------------
# Fuzz: random and mutated files of every type never raise
# ---------------------------------------------------------------------------

SUFFIXES = [".csv", ".csv.gz", ".tsv", ".json", ".ipynb", ".md", ".html", ".tex", ".svg", ".txt", ".parquet",
            ".xlsx", ".npy", ".gz", ".bin", ".extras.json"]


@functools.lru_cache(maxsize=None)
def _valid_bytes(suffix: str) -> bytes:
    """A valid file of the type (computed once: an Excel file holds its creation time)."""
    f = leak_frame(True)
    if suffix in (".csv", ".tsv", ".txt", ".bin"):
        return f.to_csv(index=False).encode()
    if suffix in (".csv.gz", ".gz"):
        return gzip.compress(f.to_csv(index=False).encode(), mtime=0)
    if suffix in (".json", ".extras.json"):
        return json.dumps({"schema": "rp2pr_eval.outcome_extras", "panel_period": f.to_dict(orient="records")}).encode()
    if suffix == ".ipynb":
        return _notebook([{"output_type": "execute_result", "data": {"text/html": _html_table(f)}}]).encode()
    if suffix in (".md", ".html", ".svg"):
        return _html_table(f).encode()
    if suffix == ".tex":
        return f.to_latex().encode()
    buf = io.BytesIO()
    if suffix == ".parquet":
        f.to_parquet(buf)
    elif suffix == ".xlsx":
        f.to_excel(buf)
    else:
        np.save(buf, np.array([3, 4]))
    return buf.getvalue()


@st.composite
def hostile_files(draw):
    suffix = draw(st.sampled_from(SUFFIXES))
    base = _valid_bytes(suffix)
    how = draw(st.sampled_from(["random", "truncate", "flip", "splice", "valid"]))
    if how == "random":
        data = draw(st.binary(max_size=2000))
    elif how == "truncate":
        data = base[: draw(st.integers(0, len(base)))]
    elif how == "flip":
        data = bytearray(base)
        for _ in range(draw(st.integers(1, 8))):
            if data:
                i = draw(st.integers(0, len(data) - 1))
                data[i] = draw(st.integers(0, 255))
        data = bytes(data)
    elif how == "splice":
        data = base[: len(base) // 2] + draw(st.binary(max_size=200)) + base[len(base) // 2:]
    else:
        data = base
    return suffix, data


FUZZ = settings(deadline=None, max_examples=60, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _check_never_raises(tmp_path, files):
    folder = tmp_path / f"run{abs(hash(tuple(files))) % 10**9}"
    for i, (suffix, data) in enumerate(files):
        _write(folder, f"f{i}{suffix}", data)
    report = audit_files(folder, patient_ids=IDS, max_bytes=200_000)
    assert isinstance(report.problems, list) and all(isinstance(p, str) and "\n" not in p for p in report.problems)
    assert report.files == len(files)


@pytest.mark.simulation
@FUZZ
@given(files=st.lists(hostile_files(), min_size=1, max_size=4))
def test_fuzz_hostile_files_never_crash_the_audit(tmp_path, files):
    _check_never_raises(tmp_path, files)


@pytest.mark.slow
@settings(deadline=None, max_examples=800, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(files=st.lists(hostile_files(), min_size=1, max_size=6))
def test_fuzz_hostile_files_never_crash_the_audit_large(tmp_path, files):
    _check_never_raises(tmp_path, files)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**9) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)


@pytest.mark.simulation
@FUZZ
@given(value=JSON_VALUES, as_notebook=st.booleans())
def test_fuzz_any_json_or_notebook_structure(tmp_path, value, as_notebook):
    doc = {"cells": [{"cell_type": "code", "outputs": [value] if as_notebook else value}]} if as_notebook else value
    folder = tmp_path / f"j{abs(hash(json.dumps(doc, sort_keys=True))) % 10**9}"
    _write(folder, "x.ipynb" if as_notebook else "results/x.json", json.dumps(doc))
    problems = audit_run(folder, patient_ids=IDS)
    assert all(isinstance(p, str) and "\n" not in p for p in problems)


def test_the_copied_methods_registry_is_exempt_only_while_unchanged(tmp_path):
    """The report copies the package's rendered methods registry into docs/: its worked examples ('n = 2')
    are documentation, not results, so the audit passes them, but only byte for byte."""
    from rp2pr_eval.pipeline.audit import audit_run
    from rp2pr_eval.presentation.report_content import copy_methods

    assert copy_methods(tmp_path) == tmp_path / "docs" / "METHODS.html"
    assert len(list((tmp_path / "docs" / "methods").glob("*.html"))) >= 10
    assert audit_run(tmp_path) == []
    page = tmp_path / "docs" / "methods" / "tables.html"
    page.write_text(page.read_text(encoding="utf-8") + "<p>3 patients died</p>", encoding="utf-8")
    found = audit_run(tmp_path)
    assert found and all(f.startswith("docs/methods/tables.html: ") for f in found)
