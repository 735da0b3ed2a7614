"""Disclosure audit of a run folder: no patient id, no patient-level rows, no visible small count.

Every file under the folder is read (:mod:`rp2pr_eval.pipeline.audit_readers`:
CSV, CSV.gz, Parquet, Excel, JSON including ``results/``, notebooks, Markdown,
HTML, LaTeX, SVG, NumPy arrays, text, and any other file that decodes as
text; images are not read) and checked for

1. **patient ids** — tokens of the input's ``patient_id`` column (letters,
   digits, ``_`` and ``-``), anywhere: tables, headers, prose, notebook
   outputs. An all-digit id shorter than six characters would match ordinary
   numbers (years, counts), so it is looked for only in columns whose header
   says ``id`` or ``patient``;
2. **patient-level rows** — a ``patient_id`` column, or the columns of a
   patient record (``age``, ``survival_days`` or ``days_referral_to_treatment``
   with two more of the contract's per-patient columns);
3. **small counts** — counts in the suppressed range 1..k-1 of the design's
   policy, whatever the column is called
   (:func:`rp2pr_eval.presentation.disclosure.small_counts_in_table` for
   tables, :func:`~rp2pr_eval.presentation.disclosure.small_counts_in_text`
   for prose: the rule and its false-positive trade-offs are documented
   there). Model output is exempt from this check (not from 1 and 2): the
   effects and power files (their ``schema``), the event study, randomisation,
   trust random effects and referee's checks (``sensitivity``: sets, effects,
   leave-one-pair-out estimates) of ``<outcome>.extras.json`` (its
   ``sensitivity_points``, per-trust rates, are audited), the randomisation
   draws, the run's ``manifest.json`` (run metadata) and the pages of the
   package's methods registry copied into ``docs/`` (exempt only while they
   are byte for byte the package's rendering);

and a file that cannot be read — binary garbage where text is expected, a
truncated or bombing gzip, invalid JSON or notebook, a file over the size
limit, a symbolic link, anything not a regular file — is reported as
unreadable: what the audit cannot read it cannot pass. Text that is not UTF-8
is audited as Latin-1 and reported.

The batch runner calls :func:`audit_run` at the end of every run and refuses
to call the run clean if it reports anything; ``rp2pr-eval audit`` runs it on
a finished run folder. Messages never quote a patient id.
"""
from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rp2pr_eval.errors import ParameterError
from rp2pr_eval.pipeline.audit_readers import MAX_BYTES, Content, Table, Unreadable, read_content
from rp2pr_eval.presentation.disclosure import (
    DisclosurePolicy,
    column_kind,
    policy_for_design,
    small_counts_in_table,
    small_counts_in_text,
)
from rp2pr_eval.presentation.disclosure.check import header_words
from rp2pr_eval.study.design import StudyDesign, resolve_design

#: Column names treated as counts in exported tables (kept for callers; the rule now covers any name).
COUNT_COLUMNS = frozenset({"n", "count", "numerator", "denominator", "patients", "events", "n_patients"})
#: Messages reported per file before "and N more".
MAX_MESSAGES_PER_FILE = 5
_TOKEN = re.compile(r"[A-Za-z0-9_\-]+")
_PATIENT_MEASURES = frozenset({"age", "survival_days", "days_referral_to_treatment"})
_PATIENT_COLUMNS = _PATIENT_MEASURES | {"sex", "performance_status", "stage", "histology", "imd_quintile", "died"}
#: Files at the top of a run folder that hold run metadata, not results (counts not audited).
METADATA_FILES = frozenset({"manifest.json"})


@dataclass
class AuditReport:
    """What :func:`audit_files` found."""

    problems: list[str] = field(default_factory=list)
    files: int = 0
    unreadable: list[str] = field(default_factory=list)
    not_read: list[str] = field(default_factory=list)   # images

    @property
    def ok(self) -> bool:
        return not self.problems


class _Ids:
    def __init__(self, patient_ids: Iterable[object] | None):
        ids = {str(i).strip() for i in patient_ids or () if str(i).strip()}
        self.strong = {i for i in ids if len(i) >= 6 or not i.isdigit()}
        self.weak = ids - self.strong

    def __bool__(self) -> bool:
        return bool(self.strong or self.weak)

    def in_text(self, text: str) -> int:
        if not self.strong:
            return 0
        return len({t for t in _TOKEN.findall(text) if t in self.strong})


def _cell_text(value: object) -> str:
    return "" if value is None else str(value)


def _patient_level(header: list[object]) -> str | None:
    names = {str(h).strip() for h in header}
    if "patient_id" in names:
        return "shows a 'patient_id' column (patient-level rows)"
    present = sorted(names & _PATIENT_COLUMNS)
    if names & _PATIENT_MEASURES and len(present) >= 3:
        return f"shows the per-patient columns {present} (patient-level rows)"
    return None


def _table_ids(table: Table, ids: _Ids) -> tuple[int, str | None]:
    """Patient ids in a table (cells and header), and where the first is."""
    found: set[str] = set()
    first = None
    id_cols = [j for j, h in enumerate(table.header) if {"id", "patient", "patient_id"} & set(header_words(h))]
    for j, h in enumerate(table.header):
        hit = {t for t in _TOKEN.findall(_cell_text(h)) if t in ids.strong}
        if hit and first is None:
            first = f"column header {j + 1}"
        found |= hit
    for i, row in enumerate(table.rows):
        for j, value in enumerate(row):
            text = _cell_text(value)
            if not text:
                continue
            hit = {t for t in _TOKEN.findall(text) if t in ids.strong}
            if j in id_cols and text.strip() in ids.weak:
                hit.add(text.strip())
            if hit:
                found |= hit
                if first is None:
                    col = table.header[j] if j < len(table.header) else j + 1
                    first = f"row {i + 1}, column {str(col)[:40]!r}"
    return len(found), first


def _frame(table: Table):
    import pandas as pd

    width = max([len(table.header)] + [len(r) for r in table.rows[:100_000]])
    header = list(table.header) + [f"column {j + 1}" for j in range(len(table.header), width)]
    seen: dict[str, int] = {}
    unique = []
    for h in header:
        key = str(h)
        seen[key] = seen.get(key, 0) + 1
        unique.append(key if seen[key] == 1 else f"{key} ({seen[key]})")
    rows = [list(r) + [None] * (width - len(r)) for r in table.rows]
    return pd.DataFrame(rows, columns=unique, dtype=object) if rows else pd.DataFrame(columns=unique)


def _audit_content(rel: str, content: Content, ids: _Ids, policy: DisclosurePolicy, counts: bool) -> list[str]:
    """The problems of one file's content; no message quotes a patient id (a row label may be one)."""
    found = _findings(rel, content, ids, policy, counts)
    if not ids.strong:
        return found
    return [_TOKEN.sub(lambda m: "[a patient id]" if m.group(0) in ids.strong else m.group(0), line)
            for line in found]


def _findings(rel: str, content: Content, ids: _Ids, policy: DisclosurePolicy, counts: bool) -> list[str]:
    out = [f"{rel}: {note}" for note in content.notes]
    where = lambda t: f"{t.where.strip()}, " if t.where.strip() else ""  # noqa: E731
    n_ids, first = 0, None
    for table in content.tables:
        reason = _patient_level(table.header)
        if reason:
            out.append(f"{rel}: {where(table)}{reason}")
        if ids:
            n, at = _table_ids(table, ids)
            if n and first is None:
                first = f"{where(table)}{at}"
            n_ids += n
    for label, text in content.texts:
        n = ids.in_text(text) if ids else 0
        if n and first is None:
            first = label.strip() or "text"
        n_ids += n
    if n_ids:
        out.append(f"{rel}: shows {n_ids} patient id(s) of the input data (first at {first})")
    if not counts or content.model_output:
        return out
    for table in content.tables:
        if table.model_output or not table.rows:
            continue
        frame = _frame(table)
        for finding in small_counts_in_table(frame, policy):
            out.append(f"{rel}: {where(table)}{finding.message(policy)}")
    for label, text in content.texts:
        for line, n, phrase in small_counts_in_text(text, policy):
            out.append(f"{rel}: {label.strip() or 'text'}, line {line}: {phrase!r} shows a count {n} in the "
                       f"suppressed range 1-{policy.threshold - 1}")
    return out


def audit_file(path: str | Path, *, root: str | Path | None = None, patient_ids: Iterable[object] | None = None,
               policy: DisclosurePolicy | None = None, max_bytes: int = MAX_BYTES, counts: bool = True
               ) -> list[str]:
    """The problems of one file (see the module docstring); an unreadable file is one problem."""
    path = Path(path)
    rel = str(path.relative_to(root)) if root is not None else str(path)
    policy = policy_for_design(None) if policy is None else policy
    return _audit_path(path, rel, _Ids(patient_ids), policy, max_bytes, counts)


def _audit_path(path: Path, rel: str, ids: _Ids, policy: DisclosurePolicy, max_bytes: int, counts: bool) -> list[str]:
    try:
        content = read_content(path, max_bytes=max_bytes)
    except Unreadable as exc:
        return [f"{rel}: unreadable, not audited: {exc}"]
    except (MemoryError, RecursionError, ValueError, OSError, UnicodeError) as exc:
        return [f"{rel}: unreadable, not audited: {type(exc).__name__}"]
    if content is None:
        return []
    return _audit_content(rel, content, ids, policy, counts)


def _walk(run_dir: Path) -> Iterable[tuple[Path, str | None]]:
    """Every entry under the folder (no link followed), with why it cannot be read (None: a regular file)."""
    for folder, dirs, files in os.walk(run_dir, followlinks=False):
        base = Path(folder)
        for d in sorted(dirs):
            if (base / d).is_symlink():
                yield base / d, "a symbolic link (not followed)"
        dirs[:] = sorted(d for d in dirs if not (base / d).is_symlink())
        for f in sorted(files):
            path = base / f
            try:
                info = os.lstat(path)
            except OSError as exc:
                yield path, f"cannot be read ({exc.strerror})"
                continue
            if stat.S_ISLNK(info.st_mode):
                yield path, "a symbolic link (not followed)"
            elif not stat.S_ISREG(info.st_mode):
                yield path, "not a regular file"
            else:
                yield path, None


def _package_document(path: Path, rel: str) -> bool:
    """True for a page of the package's methods registry copied into the run folder, byte for byte.

    Its example numbers (``n = 2`` in a worked example) are documentation, not results; a file under
    ``docs/`` that differs from the package's rendering is audited like any other.
    """
    if not rel.startswith("docs/"):
        return False
    from rp2pr_eval.presentation.report_content import rendered_methods

    expected = rendered_methods().get(rel.replace(os.sep, "/"))
    try:
        return expected is not None and path.read_bytes() == expected.encode("utf-8")
    except OSError:
        return False


def audit_files(run_dir: str | Path, *, patient_ids: Iterable[object] | None = None,
                policy: DisclosurePolicy | None = None, design: StudyDesign | None = None,
                max_bytes: int = MAX_BYTES) -> AuditReport:
    """Audit every file of a folder; see :func:`audit_run` (this returns the counts too)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ParameterError(f"{run_dir}: not a folder to audit")
    if policy is None:
        policy = policy_for_design(resolve_design(design))
    elif not isinstance(policy, DisclosurePolicy):
        raise ParameterError(f"audit: policy must be a DisclosurePolicy or None, got {type(policy).__name__}")
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 1:
        raise ParameterError(f"audit: max_bytes must be a positive integer, got {max_bytes!r}")
    report = AuditReport()
    ids = _Ids(patient_ids)                  # once: 58k ids took 0.1 s per file when built for each of ~400 files
    for path, why in _walk(run_dir):
        rel = str(path.relative_to(run_dir))
        report.files += 1
        if why is not None:
            report.unreadable.append(rel)
            report.problems.append(f"{rel}: unreadable, not audited: {why}")
            continue
        counts = rel not in METADATA_FILES and not _package_document(path, rel)
        found = _audit_path(path, rel, ids, policy, max_bytes, counts)
        if found and "unreadable, not audited" in found[0]:
            report.unreadable.append(rel)
        if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".gif", ".pdf"):
            report.not_read.append(rel)
        if len(found) > MAX_MESSAGES_PER_FILE:
            found = found[:MAX_MESSAGES_PER_FILE] + [f"{rel}: and {len(found) - MAX_MESSAGES_PER_FILE} more"]
        report.problems += found
    return report


def audit_run(run_dir: str | Path, *, patient_ids: set[str] | None = None,
              policy: DisclosurePolicy | None = None, design: StudyDesign | None = None,
              max_bytes: int = MAX_BYTES) -> list[str]:
    """List disclosure problems in a run folder (empty list: the folder passes).

    Parameters
    ----------
    run_dir : str or Path
        The run folder (every file under it is audited).
    patient_ids : set of str, optional
        The ``patient_id`` values of the input data; ``None``: ids are not
        checked (patient-id columns still are).
    policy : DisclosurePolicy, optional
        Default: the design's (:func:`rp2pr_eval.presentation.disclosure.policy_for_design`).
    design : StudyDesign, optional
        The run's design (its disclosure preset and threshold).
    max_bytes : int
        Files larger than this, or decompressing to more, are reported as
        unreadable (default 64 MiB).

    Returns
    -------
    list of str
        One line per problem, naming the file and where in it; at most
        :data:`MAX_MESSAGES_PER_FILE` per file.

    Raises
    ------
    ParameterError
        ``run_dir`` is not a folder, or an invalid option.
    """
    return audit_files(run_dir, patient_ids=patient_ids, policy=policy, design=design, max_bytes=max_bytes).problems


__all__ = ["COUNT_COLUMNS", "MAX_MESSAGES_PER_FILE", "METADATA_FILES", "AuditReport", "audit_file", "audit_files",
           "audit_run"]
