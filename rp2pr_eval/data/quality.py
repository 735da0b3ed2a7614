"""Data-quality frames of an extract import: rows kept and dropped, completeness, codes seen, trusts per pair and arm.

Computed here (exact counts, for the analyst); written under disclosure control by
:func:`rp2pr_eval.presentation.quality.write_quality_report`, which suppresses small counts before
anything leaves the analysis.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rp2pr_eval.data.convert import text_codes
from rp2pr_eval.data.mapping import Codes, ExtractMapping

#: Uncoded fields with at most this many distinct values are listed in the codes table too.
MAX_LISTED_VALUES = 20
BLANK = "(blank)"
MISSING = "(missing)"


@dataclass(frozen=True, slots=True, eq=False)
class ImportQuality:
    """The data-quality frames of one import (exact counts; protect them before export).

    Attributes
    ----------
    source, mapping, source_sha256
        The extract and mapping files, and the extract's SHA-256.
    n_read, n_kept
        Rows read from the extract and rows in the patient table.
    rows
        ``step`` (``read``, ``dropped``, ``kept``), ``reason``, ``rows``.
    completeness
        One row per column × trust × audit year: ``column``, ``field`` (the raw field or the derivation),
        ``trust_id``, ``audit_year``, ``eligible`` (rows in the column's denominator: all patients, or an
        outcome's eligible group), ``recorded`` (non-missing among them), ``missing``.
    codes
        ``column``, ``field``, ``code`` (raw, as text; ``(blank)``), ``value`` (contract value as text;
        ``(missing)``), ``rows``: every code seen in a coded field (and the values of uncoded fields with
        at most 20 distinct values), counted over the kept rows.
    pairs
        ``pair_id``, ``arm``, ``trusts`` (the two trust ids), ``patients``.
    arms
        ``arm``, ``pairs``, ``trusts``, ``patients``.
    seconds
        Wall time of the import.
    """

    source: str
    mapping: str
    source_sha256: str
    n_read: int
    n_kept: int
    rows: pd.DataFrame
    completeness: pd.DataFrame
    codes: pd.DataFrame
    pairs: pd.DataFrame
    arms: pd.DataFrame
    seconds: float


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _value_text(value: object) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _codes_rows(column: str, field: str, series: pd.Series, codes: Codes | None) -> list[dict]:
    idx, texts = text_codes(series)
    if codes is None and len(texts) > MAX_LISTED_VALUES:
        return []
    counts = np.bincount(idx[idx >= 0], minlength=len(texts))
    n_blank = int((idx < 0).sum())
    out = []
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), texts[i]))
    for i in order:
        value = texts[i] if codes is None else _value_text(codes.table.get(texts[i]))
        out.append({"column": column, "field": field, "code": texts[i], "value": value, "rows": int(counts[i])})
    if n_blank:
        value = MISSING if codes is None or not codes.maps_blank else _value_text(codes.blank)
        out.append({"column": column, "field": field, "code": BLANK, "value": value, "rows": n_blank})
    return out


def quality_frames(patients: pd.DataFrame, raw: pd.DataFrame, mapping: ExtractMapping, allocation: pd.DataFrame, *,
                   n_read: int, dropped: list[tuple[str, int]], eligible: dict[str, np.ndarray],
                   described: dict[str, str], seconds: float) -> ImportQuality:
    """The :class:`ImportQuality` of an import (``raw``: the kept rows of the extract's mapped fields)."""
    n_kept = len(patients)
    rows = pd.DataFrame([{"step": "read", "reason": "rows in the extract", "rows": n_read}]
                        + [{"step": "dropped", "reason": reason, "rows": n} for reason, n in dropped]
                        + [{"step": "kept", "reason": "rows in the patient table", "rows": n_kept}])

    # completeness by column × trust × year
    t_code, t_lab = pd.factorize(patients["trust_id"], sort=True)
    y_code, y_lab = pd.factorize(patients["audit_year"], sort=True)
    cell = t_code.astype(np.int64) * len(y_lab) + y_code
    n_cells = len(t_lab) * len(y_lab)
    fields = {c: r.field for c, r in mapping.columns.items()}
    fields.update({c: r.field for c, r in mapping.extra_columns.items()})
    fields["audit_year"] = mapping.audit_year.field
    fields.update(described)
    blocks = []
    cell_trust = np.repeat(np.asarray(t_lab, dtype=object), len(y_lab))
    cell_year = np.tile(np.asarray(y_lab, dtype=np.int64), len(t_lab))
    for column in patients.columns:
        if column in ("patient_id", "trust_id", "pair_id", "arm"):
            continue
        ok = eligible.get(column, np.ones(n_kept, dtype=bool))
        recorded = ok & patients[column].notna().to_numpy()
        n_ok = np.bincount(cell[ok], minlength=n_cells)
        n_rec = np.bincount(cell[recorded], minlength=n_cells)
        blocks.append(pd.DataFrame({"column": column, "field": fields.get(column, column), "trust_id": cell_trust,
                                    "audit_year": cell_year, "eligible": n_ok, "recorded": n_rec,
                                    "missing": n_ok - n_rec}))
    completeness = pd.concat(blocks, ignore_index=True)
    completeness = completeness.loc[completeness["eligible"] > 0].reset_index(drop=True)

    # codes seen per field
    code_rows: list[dict] = []
    for column, rule in mapping.columns.items():
        if column in ("patient_id", "age") or (column == "trust_id" and rule.codes is None):
            continue
        code_rows += _codes_rows(column, rule.field, raw[rule.field], rule.codes)
    for column, rule in mapping.outcomes.items():
        if rule.kind == "field":
            code_rows += _codes_rows(column, rule.field, raw[rule.field], rule.codes)
    for column, rule in mapping.extra_columns.items():
        code_rows += _codes_rows(column, rule.field, raw[rule.field], rule.codes)
    codes = pd.DataFrame(code_rows, columns=["column", "field", "code", "value", "rows"])

    # trusts per pair and arm
    per_trust = patients["trust_id"].value_counts()
    alloc = allocation.assign(patients=allocation["trust_id"].map(per_trust).fillna(0).astype(np.int64))
    pairs = (alloc.groupby(["pair_id", "arm"], sort=True)
             .agg(trusts=("trust_id", lambda s: ", ".join(sorted(s))), patients=("patients", "sum"))
             .reset_index())
    arms = (alloc.groupby("arm", sort=True)
            .agg(pairs=("pair_id", "nunique"), trusts=("trust_id", "size"), patients=("patients", "sum"))
            .reset_index())
    return ImportQuality(
        source=str(mapping.source), mapping=mapping.name, source_sha256=_sha256(mapping.source), n_read=int(n_read),
        n_kept=int(n_kept), rows=rows, completeness=completeness, codes=codes, pairs=pairs, arms=arms,
        seconds=float(seconds),
    )


__all__ = ["BLANK", "ImportQuality", "MISSING", "quality_frames"]
