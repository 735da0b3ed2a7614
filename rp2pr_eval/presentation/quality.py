"""The data-quality report of an extract import, in CSV and HTML, under disclosure control.

:func:`quality_tables` protects the frames of :class:`~rp2pr_eval.data.quality.ImportQuality` with the
design's policy (default: counts 1–4 shown as ``<5``, with secondary suppression) through the public
functions of :mod:`rp2pr_eval.presentation.disclosure`:

* ``rows`` — rows kept and dropped by reason, with the rows read as their column total;
* ``completeness`` — per column × trust × audit year, ``recorded`` and ``missing`` with their row
  total ``eligible``; ``percent_recorded`` is withheld where either count is (a percentage beside its
  denominator would give the count back), and computed from the shown counts under a rounding policy;
* ``codes`` — the codes seen per field, each field protected against its total (the rows kept);
* ``pairs`` and ``arms`` — trusts per pair and arm with their patients (protected against the total).

Counts of trusts and pairs are counts of organisations, not of patients, and are exempt.  Every table
is audited with :func:`~rp2pr_eval.presentation.disclosure.check_disclosure` before it is written.
:func:`write_quality_report` writes ``quality_<table>.csv`` and ``quality.html`` into a folder, built
aside and moved into place, so an interrupted write leaves no half-written report.

Not detected (as documented for :func:`~rp2pr_eval.presentation.disclosure.protect_table`): linear
relations between tables (e.g. a trust's patients summed over the years of the completeness table
against a pair's total).  The tables carry no patient-level rows.
"""
from __future__ import annotations

import html
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from rp2pr_eval.files import write_bytes
from rp2pr_eval.data.quality import ImportQuality
from rp2pr_eval.errors import DataError, ParameterError
from rp2pr_eval.presentation.disclosure import DisclosurePolicy, check_disclosure, suppress_counts
from rp2pr_eval.presentation.tables import disclosure_policy
from rp2pr_eval.study.design import StudyDesign

TABLES = ("rows", "arms", "pairs", "codes", "completeness")
_COUNTS = {"rows": ["rows"], "arms": ["patients"], "pairs": ["patients"], "codes": ["rows"],
           "completeness": ["eligible", "recorded", "missing"]}
_TITLES = {
    "rows": "Rows read, dropped (with the reason) and kept",
    "arms": "Pairs, trusts and patients per arm",
    "pairs": "Trusts and patients per pair",
    "codes": "Codes seen per field (kept rows) and the contract value each became",
    "completeness": "Completeness by field, trust and audit year (percent of eligible patients recorded)",
}


def _shown_number(value: object) -> float:
    return float(value) if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        else np.nan


def _protect_column_total(frame: pd.DataFrame, count: str, index: list[str], total: str,
                          policy: DisclosurePolicy) -> pd.DataFrame:
    """Counts in ``count`` protected against their column total (appended as a row labelled ``total``)."""
    table = frame.set_index(index)
    label = total if len(index) == 1 else tuple([total] + [""] * (len(index) - 1))
    st = suppress_counts(table, policy=policy, count_columns=[count], col_total=label)
    return st.frame.reset_index()


def quality_tables(quality: ImportQuality, *, policy: DisclosurePolicy | None = None,
                   design: StudyDesign | None = None) -> dict[str, pd.DataFrame]:
    """The quality frames as export tables under disclosure control (see the module docstring).

    Parameters
    ----------
    quality
        ``import_with_quality(...).quality``.
    policy
        Disclosure policy; default: the design's (:func:`rp2pr_eval.presentation.tables.disclosure_policy`).
    design
        Study design whose policy applies when ``policy`` is ``None`` (default design: threshold 5).

    Returns
    -------
    dict of str to pandas.DataFrame
        ``rows``, ``arms``, ``pairs``, ``codes``, ``completeness``; suppressed cells hold the policy's
        symbols, other cells numbers.
    """
    if not isinstance(quality, ImportQuality):
        raise ParameterError(f"quality must be an ImportQuality (import_with_quality(...).quality), got "
                             f"{type(quality).__name__}")
    policy = disclosure_policy(design) if policy is None else policy
    if not isinstance(policy, DisclosurePolicy):
        raise ParameterError(f"policy must be a DisclosurePolicy or None, got {type(policy).__name__}")
    out: dict[str, pd.DataFrame] = {}

    rows = quality.rows.loc[quality.rows["step"] != "read"].copy()
    rows["label"] = rows["step"] + ": " + rows["reason"]
    protected = _protect_column_total(rows[["label", "rows"]], "rows", ["label"], "read: rows in the extract", policy)
    split = protected["label"].str.split(": ", n=1, expand=True)
    out["rows"] = pd.DataFrame({"step": split[0], "reason": split[1], "rows": protected["rows"]})

    arms = quality.arms.copy()
    out["arms"] = _protect_column_total(arms, "patients", ["arm"], "Total", policy)
    for column in ("pairs", "trusts"):  # organisations, not patients: exempt, total shown
        out["arms"][column] = np.append(arms[column].to_numpy(dtype=np.int64), arms[column].sum())

    pairs = quality.pairs.copy()
    out["pairs"] = _protect_column_total(pairs, "patients", ["pair_id", "arm", "trusts"], "Total", policy)

    blocks = []
    for (column, field), group in quality.codes.groupby(["column", "field"], sort=False):
        table = _protect_column_total(group[["code", "value", "rows"]], "rows", ["code", "value"], "Total", policy)
        table.insert(0, "column", column)
        table.insert(1, "field", field)
        blocks.append(table)
    out["codes"] = (pd.concat(blocks, ignore_index=True) if blocks
                    else pd.DataFrame(columns=["column", "field", "code", "value", "rows"]))

    comp = quality.completeness
    keys = ["column", "field", "trust_id", "audit_year"]
    st = suppress_counts(comp.set_index(keys)[["recorded", "missing"]], policy=policy,
                         count_columns=["recorded", "missing"], row_total="eligible")
    frame = st.frame
    rec = np.array([_shown_number(v) for v in frame["recorded"]])
    elig = np.array([_shown_number(v) for v in frame["eligible"]])
    hidden = (st.mask["recorded"] | st.mask["eligible"]).to_numpy() | np.isnan(rec) | np.isnan(elig)
    with np.errstate(invalid="ignore", divide="ignore"):
        percent = np.where(elig > 0, 100 * rec / np.where(elig > 0, elig, 1), np.nan)
    pct = percent.astype(object)
    pct[hidden] = policy.secondary_symbol
    frame = frame.reset_index()[keys + ["eligible", "recorded", "missing"]]
    frame["percent_recorded"] = pct
    out["completeness"] = frame

    for name, table in out.items():
        problems = check_disclosure(table, policy=policy, count_columns=_COUNTS[name])
        if problems:  # pragma: no cover - suppress_counts guarantees this
            raise DataError(f"quality table {name!r} fails disclosure control: {problems[0]}")
    return out


def _html_table(frame: pd.DataFrame) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:.1f}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "\n".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                     for row in frame.itertuples(index=False))
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def quality_html(quality: ImportQuality, tables: dict[str, pd.DataFrame], policy: DisclosurePolicy) -> str:
    """The report page: facts of the import, then every protected table (completeness as trust × year)."""
    comp = tables["completeness"]
    wide = comp.pivot_table(index=["column", "field", "trust_id"], columns="audit_year", values="percent_recorded",
                            aggfunc="first", sort=False).reset_index()
    wide.columns = [str(c) for c in wide.columns]
    parts = [
        "<!DOCTYPE html>", "<html><head><meta charset='utf-8'><title>Import data-quality report</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:small}th{background:#eee}</style></head><body>",
        "<h1>Import data-quality report</h1>",
        "<ul>",
        f"<li>extract: {html.escape(Path(quality.source).name)} (SHA-256 {quality.source_sha256})</li>",
        f"<li>mapping: {html.escape(Path(quality.mapping).name)}</li>",
        f"<li>import time: {quality.seconds:.1f} s</li>",
        "</ul>",
        f"<p><em>Disclosure control ({html.escape(policy.preset)}): {html.escape(policy.footnote)}</em></p>",
    ]
    for name in ("rows", "arms", "pairs", "codes"):
        parts += [f"<h2>{html.escape(_TITLES[name])}</h2>", _html_table(tables[name])]
    parts += [f"<h2>{html.escape(_TITLES['completeness'])}</h2>",
              "<p>Counts per cell are in quality_completeness.csv.</p>", _html_table(wide), "</body></html>"]
    return "\n".join(parts) + "\n"


def write_quality_report(quality: ImportQuality, folder: str | Path, *, policy: DisclosurePolicy | None = None,
                         design: StudyDesign | None = None, overwrite: bool = False) -> dict[str, Path]:
    """Write the protected quality tables as ``quality_<table>.csv`` and ``quality.html`` into ``folder``.

    The folder is built aside (``.<name>.<pid>.partial``) and renamed into place at the end; with
    ``overwrite`` an existing report folder is replaced, otherwise it is an error.

    Returns
    -------
    dict of str to Path
        Table name (and ``html``) → file written.
    """
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise ParameterError(f"{folder} exists; pass overwrite=True (CLI: --force) to replace the report")
    if folder.exists() and not folder.is_dir():
        raise ParameterError(f"{folder} is a file; expected a folder for the quality report")
    policy = disclosure_policy(design) if policy is None else policy
    tables = quality_tables(quality, policy=policy)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        names = {}
        for name in TABLES:
            path = tmp / f"quality_{name}.csv"
            write_bytes(path, tables[name].to_csv(index=False, lineterminator="\n").encode("utf-8"))
            names[name] = folder / path.name
        write_bytes(tmp / "quality.html", quality_html(quality, tables, policy).encode("utf-8"))
        names["html"] = folder / "quality.html"
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.{os.getpid()}.old")
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return names


__all__ = ["TABLES", "quality_html", "quality_tables", "write_quality_report"]
