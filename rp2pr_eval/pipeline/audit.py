"""Disclosure audit of a run folder: no patient-level rows, no visible small counts.

Scans the executed notebooks (``.ipynb`` outputs and ``.html``), the exported
tables and the results for (a) any patient id of the input data, (b) a
``patient_id`` column (a row-level frame), and (c) in exported count tables,
visible counts inside the suppression range of the design's disclosure policy.
The batch runner calls it at the end of every run; ``rp2pr-eval audit`` runs
it on a finished run folder.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable

import pandas as pd

from rp2pr_eval.presentation.disclosure import DisclosurePolicy, check_disclosure
from rp2pr_eval.study.design import StudyDesign, resolve_design

#: Column names treated as counts in exported tables.
COUNT_COLUMNS = frozenset({"n", "count", "numerator", "denominator", "patients", "events", "n_patients"})
_TOKEN = re.compile(r"[A-Za-z0-9_\-]+")


def _texts(run_dir: Path) -> Iterable[tuple[Path, str]]:
    for path in sorted(run_dir.rglob("*")):
        if not path.is_file() or path.suffix not in (".ipynb", ".html", ".csv", ".md", ".tex", ".json"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".ipynb":  # only what the notebook shows, not its source
            book = json.loads(text)
            parts = []
            for cell in book.get("cells", []):
                for out in cell.get("outputs", []):
                    parts.append("".join(out.get("text", "")))
                    for value in out.get("data", {}).values():
                        parts.append(value if isinstance(value, str) else "".join(value) if isinstance(value, list) else "")
            text = "\n".join(parts)
        yield path, text


def audit_run(run_dir: str | Path, *, patient_ids: set[str] | None = None,
              policy: DisclosurePolicy | None = None, design: StudyDesign | None = None) -> list[str]:
    """List disclosure problems in a run folder (empty list: the folder passes)."""
    run_dir = Path(run_dir)
    design = resolve_design(design)
    if policy is None:
        kwargs = {"threshold": design.disclosure_threshold} if design.disclosure == "threshold" else {}
        policy = DisclosurePolicy.from_preset(design.disclosure, **kwargs)
    problems: list[str] = []
    for path, text in _texts(run_dir):
        rel = path.relative_to(run_dir)
        if rel.parts[0] == "results" and path.suffix == ".json":
            continue  # analysis results: model estimates and trust-level panels for figures, not exports
        if "patient_id" in text:
            problems.append(f"{rel}: shows a 'patient_id' column (patient-level rows)")
        if patient_ids:
            hits = {t for t in _TOKEN.findall(text) if t in patient_ids}
            if hits:
                problems.append(f"{rel}: shows {len(hits)} patient id(s) from the input data, e.g. {sorted(hits)[0]}")
        if rel.parts[0] == "tables" and path.suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            counts = [c for c in frame.columns if str(c).strip().lower() in COUNT_COLUMNS]
            if counts:
                problems += [f"{rel}: {m}" for m in check_disclosure(frame, policy=policy, count_columns=counts)]
    return problems
