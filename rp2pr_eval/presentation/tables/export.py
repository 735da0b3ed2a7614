"""Export of a table as CSV, LaTeX, Markdown and HTML under disclosure control (:func:`export_table`).

The same frame always gives the same bytes (no timestamps, ``\\n`` line ends,
UTF-8). A frame marked protected (:mod:`.marking`) is written as it is after
checks; any other frame must declare its numeric columns and is protected or
audited here (DATA_CONTRACT.md §5, STUDY.md §5). The renderers (Markdown, HTML,
LaTeX) live here because nothing else writes tables to files.
"""
from __future__ import annotations

import html
import math
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from rp2pr_eval._options import check_option
from rp2pr_eval.errors import DataError
from rp2pr_eval.presentation.disclosure import DisclosurePolicy, TableMargins, check_disclosure, protect_table
from rp2pr_eval.presentation.tables.marking import MARK_KEY, mark_frame, resolve_policy
from rp2pr_eval.results.effect import format_frame

ExportFormat = Literal["csv", "tex", "md", "html"]

_PATIENT_MEASURES = ("age", "survival_days", "days_referral_to_treatment")
_PATIENT_COLUMNS = _PATIENT_MEASURES + ("sex", "performance_status", "stage", "histology", "imd_quintile", "died")
_EFFECT_DISPLAY = ("outcome", "estimator", "scale", "estimate", "se", "ci_low", "ci_high", "p_value", "df")
_EFFECT_NUMERIC = ("estimate", "se", "ci_low", "ci_high", "p_value", "df", "level", "p_adjusted",
                   "n_obs", "n_trusts", "n_clusters")


def _patient_level(frame: pd.DataFrame) -> str | None:
    """Why the frame looks like patient records, or None."""
    names = {str(c) for c in frame.columns} | {str(n) for n in frame.index.names if n is not None}
    if "patient_id" in names:
        return "it has a 'patient_id' column"
    present = [c for c in _PATIENT_COLUMNS if c in names]
    if any(c in present for c in _PATIENT_MEASURES) and len(present) >= 3:
        return f"it has the per-patient columns {present} (one row per patient)"
    return None


def _labels_list(name: str, value: Sequence[Hashable] | None) -> list[Hashable]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a list of column labels, got {value!r}")
    return list(value)


def _check_declared(
    frame: pd.DataFrame,
    count_columns: Sequence[Hashable],
    percent_columns: Mapping[Hashable, Any] | None,
    summary_columns: Mapping[Hashable, Any] | None,
    exempt_columns: Sequence[Hashable] | None,
) -> None:
    """Every numeric column of an unprotected frame is a count, a percentage, a summary or exempt.

    Without count columns, integer columns are left to the audit (they are
    taken for counts); floats must be declared.
    """
    counts = _labels_list("count_columns", count_columns)
    exempt = _labels_list("exempt_columns", exempt_columns)
    unknown = [c for c in counts + exempt if c not in frame.columns]
    if unknown:
        raise ValueError(f"export_table: column(s) {unknown} not in the table; columns are {list(frame.columns)}")
    declared = set(counts) | set(percent_columns or {}) | set(summary_columns or {}) | set(exempt)
    if all(c in frame.columns for c in _EFFECT_DISPLAY):
        declared |= set(_EFFECT_NUMERIC) & set(frame.columns)
    undeclared = []
    for c in frame.columns:
        dtype = frame[c].dtype
        if c in declared or not is_numeric_dtype(dtype) or is_bool_dtype(dtype):
            continue
        if counts or dtype.kind == "f":
            undeclared.append(c)
    if undeclared:
        raise DataError(
            f"export_table: numeric column(s) {undeclared} are not declared; name each as a count "
            "(count_columns), a percentage of counts (percent_columns), a mean or median (summary_columns), or "
            "exempt_columns if it is not built on counts of patients"
        )


def _flat_columns(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    if isinstance(out.columns, pd.MultiIndex):
        out.columns = [" ".join(str(p) for p in c if str(p)) for c in out.columns]
    return out


def _show_index(frame: pd.DataFrame) -> bool:
    return not (isinstance(frame.index, pd.RangeIndex) and frame.index.name is None)


def _cell_text(value: Any, digits: int) -> str:
    if isinstance(value, str):
        return value
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def _display_strings(frame: pd.DataFrame, digits: int) -> pd.DataFrame:
    """The cells as text for LaTeX, Markdown and HTML (effects via results.format_frame)."""
    if all(c in frame.columns for c in _EFFECT_DISPLAY):
        return format_frame(frame, digits=digits).reset_index(drop=True)
    if _show_index(frame):
        names = frame.index.names
        unnamed = [("" if len(names) == 1 else f"level_{i}") if n is None else n for i, n in enumerate(names)]
        frame = frame.rename_axis(unnamed).reset_index()
    out = pd.DataFrame({str(c): [_cell_text(v, digits) for v in frame.iloc[:, j]]
                        for j, c in enumerate(frame.columns)}, dtype=object)
    return out


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _markdown(shown: pd.DataFrame, caption: str | None, notes: list[str]) -> str:
    lines = [f"**{_md_escape(caption)}**", ""] if caption else []
    lines.append("| " + " | ".join(_md_escape(c) for c in shown.columns) + " |")
    lines.append("|" + "---|" * len(shown.columns))
    lines += ["| " + " | ".join(_md_escape(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    lines += [""] + notes if notes else []
    return "\n".join(lines) + "\n"


def _html(shown: pd.DataFrame, caption: str | None, notes: list[str]) -> str:
    body = shown.to_html(index=False, border=0, escape=True)
    if caption:
        body = re.sub(r"^(<table[^>]*>)", lambda m: f"{m.group(1)}\n  <caption>{html.escape(caption)}</caption>", body, count=1)
    foot = "".join(f'\n<p class="table-note">{html.escape(n)}</p>' for n in notes)
    return body + foot + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}"}


def _tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in text)


def _latex(shown: pd.DataFrame, caption: str | None, notes: list[str]) -> str:
    tabular = shown.to_latex(index=False, escape=True)
    # pandas escapes the LaTeX specials but not < and >, which render as ¡ and ¿ in OT1 fonts.
    tabular = tabular.replace("<", r"\textless{}").replace(">", r"\textgreater{}")
    if not caption and not notes:
        return tabular
    parts = [r"\begin{table}[htbp]", r"\centering"]
    if caption:
        parts.append(rf"\caption{{{_tex_escape(caption)}}}")
    parts.append(tabular.rstrip("\n"))
    if notes:
        parts.append(r"\par\smallskip")
        parts += [rf"{{\footnotesize {_tex_escape(n)}\par}}" for n in notes]
    parts.append(r"\end{table}")
    return "\n".join(parts) + "\n"


def export_table(
    frame: pd.DataFrame,
    path_stem: str | Path,
    *,
    formats: Sequence[str] = ("csv", "tex", "md", "html"),
    caption: str | None = None,
    policy: DisclosurePolicy | None = None,
    count_columns: Sequence[Hashable] | None = None,
    percent_columns: Mapping[Hashable, tuple[Hashable, Hashable]] | None = None,
    summary_columns: Mapping[Hashable, Hashable] | None = None,
    margins: TableMargins | None = None,
    exempt_columns: Sequence[Hashable] | None = None,
    digits: int = 3,
) -> list[Path]:
    """Write a table as CSV, LaTeX, Markdown and HTML under disclosure control.

    The same frame always gives the same bytes (no timestamps, ``\\n`` line
    ends, UTF-8). Files are ``<path_stem>.csv``, ``.tex``, ``.md``,
    ``.html``; parent folders are created.

    Disclosure control, in order:

    1. A frame with a ``patient_id`` column or index level, or with the
       columns of a patient record (``age``, ``survival_days`` or
       ``days_referral_to_treatment`` with at least two more of ``sex``,
       ``performance_status``, ``stage``, ``histology``, ``imd_quintile``,
       ``died``), is refused.
    2. A frame marked protected (``attrs["disclosure"]``, set by
       :func:`table_one`, :func:`national_table` and this function) is
       written as it is, after checking that its policy is ``policy`` (when
       given), that no column was added since, and that its count columns
       pass :func:`~rp2pr_eval.presentation.disclosure.check_disclosure`. A frame marked
       unprotected (``protect=False``) is refused.
    3. Otherwise every numeric column must be declared: a count, a
       percentage of counts, a summary with its n, or exempt
       (``exempt_columns``: numbers not derived from counts of patients; the
       numeric columns of a tidy effects frame are exempt by default). An
       undeclared float column is refused, because a percentage beside its
       denominator gives a suppressed count back.
    4. With ``count_columns``, the frame goes through
       :func:`~rp2pr_eval.presentation.disclosure.protect_table` (with
       ``percent_columns``, ``summary_columns`` and ``margins``).
    5. Without, the frame is audited with ``check_disclosure`` (count
       columns inferred: whole numbers stored as integers) and refused if a
       small count is visible.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table. Not modified. A non-default index is written as columns.
    path_stem : str or Path
        Output path without extension.
    formats : sequence of {"csv", "tex", "md", "html"}
        Formats to write, in this order.
    caption : str, optional
        Title for LaTeX (``\\caption``), Markdown (bold line) and HTML
        (``<caption>``); CSV holds the data only.
    policy : DisclosurePolicy, optional
        Default: the protected frame's own policy, else the default design's
        (:func:`disclosure_policy`).
    count_columns, percent_columns, summary_columns, margins
        Passed to :func:`~rp2pr_eval.presentation.disclosure.protect_table` for a frame
        not yet protected. ``margins=None`` (default) adds no totals: if the
        frame's counts add up to totals shown elsewhere, ask for them here so
        that secondary suppression protects against them.
    exempt_columns : sequence of labels, optional
        Numeric columns that are not counts of patients nor built on them
        (model estimates, years, trust-level indices) and need no control.
    digits : int
        Decimals of floats in LaTeX, Markdown and HTML (CSV keeps full
        precision). A tidy effects frame is formatted by
        :func:`rp2pr_eval.results.format_frame` instead.

    Returns
    -------
    list of Path
        The files written, in the order of ``formats``.

    Raises
    ------
    DataError
        Patient-level rows, an unprotected frame, a protected frame changed
        since or protected under another policy, or a visible small count.
    ValueError
        Invalid formats, options or count columns.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"export_table: frame must be a pandas DataFrame, got {type(frame).__name__}")
    if isinstance(formats, str) or not isinstance(formats, Sequence) or not formats:
        raise ValueError(f"formats must be a non-empty sequence of 'csv', 'tex', 'md', 'html', got {formats!r}")
    for fmt in formats:
        check_option("formats", fmt, ExportFormat)
    if len(set(formats)) != len(formats):
        raise ValueError(f"formats repeats a format: {list(formats)}")
    if caption is not None and not isinstance(caption, str):
        raise ValueError(f"caption must be a string or None, got {caption!r}")
    if not isinstance(digits, int) or isinstance(digits, bool) or digits < 0:
        raise ValueError(f"digits must be a non-negative integer, got {digits!r}")
    if policy is not None and not isinstance(policy, DisclosurePolicy):
        raise ValueError(f"policy must be a DisclosurePolicy or None, got {type(policy).__name__}")
    reason = _patient_level(frame)
    if reason:
        raise DataError(f"export_table refuses patient-level data: {reason}; export aggregated tables only")

    mark = frame.attrs.get(MARK_KEY)
    status = mark.get("status") if isinstance(mark, Mapping) else None
    if status == "unprotected":
        raise DataError("export_table: the frame was built with protect=False (exact small counts); rebuild it with "
                        "protect=True to export it")
    if status == "protected":
        if count_columns is not None or percent_columns or summary_columns:
            raise ValueError("export_table: the frame is already protected; do not pass count_columns, "
                             "percent_columns or summary_columns")
        marked = DisclosurePolicy(**mark["policy"])
        if policy is not None and policy != marked:
            raise DataError(f"export_table: the frame was protected under {marked.preset!r} (threshold "
                            f"{marked.threshold}) but export asks for {policy.preset!r} (threshold "
                            f"{policy.threshold}); rebuild it with that policy")
        added = [str(c) for c in frame.columns if str(c) not in set(mark.get("columns", []))]
        if added:
            raise DataError(f"export_table: column(s) {added} were added after disclosure control; protect the "
                            "frame again (pass count_columns for a plain table)")
        policy, out = marked, frame
        audit = [c for c in frame.columns if str(c) in set(mark.get("count_columns", []))]
        found = check_disclosure(out, policy=policy, count_columns=audit)
        if found:
            raise DataError(f"export_table: the protected frame shows small counts, so it was changed after "
                            f"protection: {found[:3]}")
    elif count_columns is not None:
        policy = resolve_policy(policy, None)
        _check_declared(frame, count_columns, percent_columns, summary_columns, exempt_columns)
        out = protect_table(frame, policy=policy, count_columns=count_columns, percent_columns=percent_columns,
                            summary_columns=summary_columns, margins=margins)
        audit = list(count_columns) + ([] if margins in (None, "columns") else ["Total"])
        mark_frame(out, policy, audit)
        found = check_disclosure(out, policy=policy, count_columns=audit)
        if found:  # an internal guarantee of protect_table
            raise RuntimeError(f"export_table: disclosure control failed: {found[:3]}")
    else:
        if percent_columns or summary_columns:
            raise ValueError("export_table: percent_columns and summary_columns need count_columns")
        _check_declared(frame, (), None, None, exempt_columns)
        policy, out = resolve_policy(policy, None), frame
        found = check_disclosure(out, policy=policy)
        if found:
            raise DataError(f"export_table: the table shows small counts ({len(found)} cell(s)): {found[:3]}; pass "
                            "count_columns (and percent_columns) to protect it, or build it protected")
    notes = [policy.footnote] if (out.attrs.get(MARK_KEY) or {}).get("status") == "protected" else []

    flat = _flat_columns(out)
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    shown = _display_strings(flat, digits) if set(formats) - {"csv"} else None
    paths = []
    for fmt in formats:
        if fmt == "csv":
            text = flat.to_csv(index=_show_index(flat), lineterminator="\n", na_rep="")
        elif fmt == "md":
            text = _markdown(shown, caption, notes)
        elif fmt == "html":
            text = _html(shown, caption, notes)
        else:
            text = _latex(shown, caption, notes)
        path = stem.with_name(f"{stem.name}.{fmt}")
        path.write_bytes(text.encode("utf-8"))
        paths.append(path)
    return paths


__all__ = ["ExportFormat", "export_table"]
