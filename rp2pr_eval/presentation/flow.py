"""The flow table for export: :func:`rp2pr_eval.data.flow.flow_counts` through disclosure control.

:func:`flow_table` protects the patient counts; :func:`save_flow` writes the protected table as the
run's saved record ``results/flow.json`` (and, optionally, exports it to ``tables/``), and
:func:`load_flow` reads it back, marked protected, so the flow diagram is redrawn from it
(``rp2pr-eval figures``) without the patients.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from rp2pr_eval.data.flow import COUNT_COLUMNS, FLOW_COLUMNS
from rp2pr_eval.errors import DataError
from rp2pr_eval.presentation.disclosure import DisclosurePolicy, protect_table
from rp2pr_eval.presentation.tables import disclosure_policy, export_table, mark_protected
from rp2pr_eval.study.design import StudyDesign

__all__ = ["FLOW_FILE", "FLOW_SCHEMA", "PATIENT_COUNT_COLUMNS", "flow_table", "load_flow", "save_flow"]

#: ``schema`` of the saved flow record, and its file name in a results folder.
FLOW_SCHEMA = "rp2pr_eval.flow"
FLOW_FILE = "flow.json"

#: Counts of individuals (patients): protected.  Trust and pair counts describe organisations, not
#: people, and are published in the trial reports; they pass through.
PATIENT_COUNT_COLUMNS = ("patients", "excluded_patients", "ineligible_patients", "missing_outcome_patients")


def flow_table(flow: pd.DataFrame, *, design: StudyDesign | None = None,
               policy: DisclosurePolicy | None = None) -> pd.DataFrame:
    """The flow counts ready to export: patient counts disclosure-controlled (``design.disclosure``).

    Rows are boxes of the flow diagram, not cells of an additive table, so no margins are added
    (``margins=None``): each patient count is protected on its own (small counts suppressed; with
    ``nhsd_2018`` every count rounded to 5).  Missing counts (a box that has none) stay empty.
    """
    if is_protected_flow(flow):
        wanted = None if policy is None and design is None else (disclosure_policy(design) if policy is None else policy)
        marked = DisclosurePolicy(**flow.attrs["disclosure"]["policy"])
        if wanted is not None and wanted != marked:
            raise DataError(f"flow_table: the flow table was protected under {marked.preset!r} (threshold "
                            f"{marked.threshold}), not {wanted.preset!r} (threshold {wanted.threshold}); protect the "
                            "flow counts again")
        return flow
    missing = [c for c in FLOW_COLUMNS if c not in getattr(flow, "columns", ())]
    if missing:
        raise DataError(f"flow_table: flow is missing column(s) {missing}; pass rp2pr_eval.data.flow.flow_counts(...)")
    policy = disclosure_policy(design) if policy is None else policy
    frame = flow.copy()
    present = {c: frame[c].notna() for c in PATIENT_COUNT_COLUMNS}
    filled = frame.assign(**{c: frame[c].fillna(0).astype(int) for c in PATIENT_COUNT_COLUMNS})
    protected = protect_table(filled, policy=policy, count_columns=list(PATIENT_COUNT_COLUMNS), margins=None)
    for c in PATIENT_COUNT_COLUMNS:
        protected[c] = protected[c].astype(object).where(present[c], None)
    protected.attrs = {**flow.attrs, **protected.attrs}
    return _mark_protected(protected, policy)


def is_protected_flow(flow: pd.DataFrame) -> bool:
    """True for a flow table that has been through :func:`flow_table` (or was read by :func:`load_flow`)."""
    attrs = getattr(flow, "attrs", {})
    mark = attrs.get("disclosure")
    return bool(attrs.get("flow_protected")) and isinstance(mark, Mapping) and mark.get("status") == "protected"


def _mark_protected(table: pd.DataFrame, policy: DisclosurePolicy) -> pd.DataFrame:
    """The protected flow table, marked for :func:`~rp2pr_eval.presentation.tables.export_table` (patient columns)."""
    mark_protected(table, policy, PATIENT_COUNT_COLUMNS)
    table.attrs["flow_protected"] = policy.preset
    return table


def save_flow(flow: pd.DataFrame, results_dir: str | Path, *, tables_dir: str | Path | None = None,
              design: StudyDesign | None = None, policy: DisclosurePolicy | None = None) -> pd.DataFrame:
    """Save the trial's flow as ``<results_dir>/flow.json`` after disclosure control; return the protected table.

    The record holds the protected table only (patient counts from 1 to k−1 suppressed; trust and
    pair counts, which describe organisations, as they are), the policy (preset, threshold,
    secondary suppression), the outcome the
    "analysed" rows count (``None``: every patient) and the notes of
    :func:`rp2pr_eval.data.flow.flow_counts`.  With ``tables_dir``, the table is also exported as
    ``<tables_dir>/flow.{csv,tex,md,html}``.  Deterministic bytes: a rerun gives the same file.
    """
    policy = disclosure_policy(design) if policy is None else policy
    table = flow_table(flow, design=design, policy=policy)
    rows = table.astype(object).where(table.notna(), None)
    payload = {"schema": FLOW_SCHEMA, "disclosure": policy.preset, "threshold": policy.threshold,
               "secondary": bool(policy.secondary), "outcome": flow.attrs.get("outcome"),
               "notes": [str(n) for n in flow.attrs.get("notes", [])],
               "rows": [{k: _native(v) for k, v in r.items()} for r in rows.to_dict(orient="records")]}
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / FLOW_FILE).write_text(json.dumps(payload, indent=1, sort_keys=True, allow_nan=False) + "\n",
                                         encoding="utf-8")
    if tables_dir is not None:
        export_table(table, Path(tables_dir) / "flow", caption="Flow of trusts and patients (CONSORT for cluster trials)",
                     policy=policy)
    return table


def _native(value):
    if value is None or isinstance(value, str):
        return value
    return value.item() if hasattr(value, "item") else value


def load_flow(source: str | Path | Mapping) -> pd.DataFrame:
    """Read a saved flow record (a results folder, its ``flow.json``, or the parsed JSON): the protected table.

    ``attrs``: the disclosure mark of :func:`~rp2pr_eval.presentation.tables.mark_protected` and
    ``flow_protected`` (the policy's name: the table is not protected again), ``notes`` and ``outcome``.
    """
    if isinstance(source, Mapping):
        payload = source
    else:
        path = Path(source)
        path = path / FLOW_FILE if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no saved flow record (the 01_descriptives notebook writes it)")
        payload = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(payload, Mapping) or payload.get("schema") != FLOW_SCHEMA:
        raise DataError(f"load_flow: not a flow record (expected schema {FLOW_SCHEMA!r})")
    table = pd.DataFrame(list(payload["rows"]), columns=list(FLOW_COLUMNS))
    for col in COUNT_COLUMNS:
        if col not in PATIENT_COUNT_COLUMNS:
            table[col] = pd.array(table[col].tolist(), dtype="Int64")
        else:
            table[col] = table[col].astype(object).where(table[col].notna(), None)
    table.attrs = {"notes": list(payload.get("notes", [])), "outcome": payload.get("outcome")}
    preset = payload.get("disclosure", "threshold")
    policy = DisclosurePolicy.from_preset(preset, threshold=payload.get("threshold") if preset == "threshold" else None,
                                          secondary=payload.get("secondary"))
    return _mark_protected(table, policy)
