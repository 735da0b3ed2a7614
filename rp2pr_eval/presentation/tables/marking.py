"""The disclosure policy and mark of a table, and the protected cells the table builders share.

Lowest module of :mod:`rp2pr_eval.presentation.tables`: :mod:`.table_one`,
:mod:`.national` and :mod:`.export` build on it. A frame that has been through
disclosure control carries ``frame.attrs["disclosure"]`` (:data:`MARK_KEY`)
``= {"status": "protected", "policy": {...}, "count_columns": [...],
"columns": [...]}``; a frame built with ``protect=False`` carries
``{"status": "unprotected"}`` and is refused by
:func:`~rp2pr_eval.presentation.tables.export_table`. See docs/methods/tables.md.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from rp2pr_eval.presentation.disclosure import DisclosurePolicy, policy_for_design, suppress_counts
from rp2pr_eval.study.design import StudyDesign

TableLayout = Literal["wide", "tidy"]
#: Key of the disclosure mark in ``frame.attrs``.
MARK_KEY = "disclosure"
_TOTAL = "__total__"


def disclosure_policy(design: StudyDesign | None = None) -> DisclosurePolicy:
    """The disclosure policy of a study design (``design.disclosure`` and its threshold).

    Parameters
    ----------
    design : StudyDesign, optional
        ``None``: the default design (preset ``"threshold"``, k = 5).

    Returns
    -------
    DisclosurePolicy
        :func:`rp2pr_eval.presentation.disclosure.policy_for_design`; the
        design has already refused a threshold below 2 or one contradicting
        its preset.
    """
    return policy_for_design(design)


def resolve_policy(policy: DisclosurePolicy | None, design: StudyDesign | None) -> DisclosurePolicy:
    """``policy`` when given (checked to be a DisclosurePolicy), else the design's (:func:`disclosure_policy`)."""
    if policy is None:
        return disclosure_policy(design)
    if not isinstance(policy, DisclosurePolicy):
        raise ValueError(f"policy must be a DisclosurePolicy or None, got {type(policy).__name__}")
    return policy


def mark_protected(frame: pd.DataFrame, policy: DisclosurePolicy, count_columns: Sequence[str]) -> pd.DataFrame:
    """Record in ``frame.attrs["disclosure"]`` that ``count_columns`` went through disclosure control under ``policy``.

    For tables protected by other modules (e.g. :func:`rp2pr_eval.presentation.flow.flow_table`):
    :func:`~rp2pr_eval.presentation.tables.export_table` then writes the frame as it is after checking those columns.
    """
    if not isinstance(policy, DisclosurePolicy):
        raise ValueError(f"policy must be a DisclosurePolicy, got {type(policy).__name__}")
    return mark_frame(frame, policy, count_columns)


def mark_frame(frame: pd.DataFrame, policy: DisclosurePolicy | None, count_columns: Sequence[str] = ()) -> pd.DataFrame:
    """Record in ``attrs`` whether (and how) the frame was protected."""
    if policy is None:
        mark: dict[str, Any] = {"status": "unprotected"}
    else:
        mark = {
            "status": "protected",
            "policy": dataclasses.asdict(policy),
            "count_columns": [str(c) for c in count_columns],
            "columns": [str(c) for c in frame.columns],
        }
    frame.attrs = {**frame.attrs, MARK_KEY: mark}  # a new dict: attrs may be shared with the frame copied from
    return frame


def typed_column(values: list, kind: str) -> pd.Series:
    """Numbers stay numbers; only a column that holds a symbol becomes ``object``."""
    if any(isinstance(v, str) for v in values):
        return pd.Series([np.nan if v is None else v for v in values], dtype=object)
    if kind == "count":
        return pd.Series([pd.NA if v is None else int(v) for v in values], dtype="Int64")
    return pd.Series([np.nan if v is None else float(v) for v in values], dtype="float64")


def protect_levels(counts: pd.DataFrame, policy: DisclosurePolicy | None, hidden_totals: Iterable = ()
                    ) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    """Protect a levels x groups table of counts whose column totals (group sizes) are shown.

    ``hidden_totals``: groups whose total another table sharing it hides.
    Returns the shown counts, the shown totals, and the masks of hidden
    cells and totals. Without a policy, the counts unchanged and empty masks.
    """
    totals = counts.sum(axis=0)
    if policy is None:
        none = pd.DataFrame(False, index=counts.index, columns=counts.columns)
        return counts.astype(object), totals.astype(object), none, pd.Series(False, index=counts.columns)
    st = suppress_counts(counts, policy=policy, count_columns=list(counts.columns), col_total=_TOTAL,
                         also_suppress=[(_TOTAL, g) for g in hidden_totals])
    shown, mask = st.frame, st.mask
    return (shown.drop(index=_TOTAL), shown.loc[_TOTAL], mask.drop(index=_TOTAL), mask.loc[_TOTAL].astype(bool))


def shown_percent(n: Any, total: Any, hidden: bool, policy: DisclosurePolicy | None) -> Any:
    """Percentage of shown (possibly rounded) counts; withheld when either count is hidden."""
    if hidden:
        return policy.secondary_symbol  # type: ignore[union-attr]
    return 100.0 * int(n) / int(total) if int(total) > 0 else None


def summary_hidden(n: int, total_hidden: bool, policy: DisclosurePolicy | None) -> bool:
    """Whether a mean, SD or median over ``n`` patients is withheld (its group size hidden, or n too small)."""
    return policy is not None and (total_hidden or n < policy.min_n_for_summary)


def format_count(v: Any) -> str:
    """A count with thousands separators; a symbol as it is; missing as ``""``."""
    if isinstance(v, str):
        return v
    return "" if v is None or pd.isna(v) else f"{int(v):,}"


def format_number(v: Any, digits: int = 1) -> str:
    """A number with ``digits`` decimals; a symbol as it is; missing as ``""``."""
    if isinstance(v, str):
        return v
    return "" if v is None or pd.isna(v) else f"{float(v):.{digits}f}"


__all__ = [
    "MARK_KEY",
    "TableLayout",
    "disclosure_policy",
    "format_count",
    "format_number",
    "mark_frame",
    "mark_protected",
    "protect_levels",
    "resolve_policy",
    "shown_percent",
    "summary_hidden",
    "typed_column",
]
