"""Statistical disclosure control for tables that leave the analysis.

Exported tables (CSV/LaTeX/HTML, the report, executed notebooks) must not show
small counts, nor let a reader work a small count out from the totals. This
module implements the presets of STUDY.md §5 and DATA_CONTRACT.md §5:

``threshold`` (default, k = 5)
    Counts 1..k-1 are shown as ``"<k"``; secondary suppression.
``hes_legacy``
    Counts 1-5 are shown as ``"*"``; secondary suppression (the HES rule
    before September 2018).
``nhsd_2018``
    Counts 1-7 are shown as ``"*"`` and every other count is rounded to the
    nearest 5 (totals are computed from the unrounded counts, then rounded);
    means and medians only where n >= 8. Rounding protects the margins, so
    secondary suppression is off unless asked for.

Model estimates and confidence intervals are exempt. Nothing here changes
its input: every function returns new frames. Numbers stay numbers: only a
column that holds a suppression symbol becomes ``object`` dtype.

The secondary suppression, its guarantee and its limits are described in
docs/methods/disclosure.md and in :func:`suppress_counts`.

References
----------
NHS Digital (2018). Disclosure control methodology for Hospital Episode
Statistics (HES) and Emergency Care Data Set (ECDS), applied from September
2018; and the HES Analysis Guide (small-number rule before 2018).

Hundepool A, Domingo-Ferrer J, Franconi L, Giessing S, Schulte Nordholt E,
Spicer K, de Wolf P-P (2012). *Statistical Disclosure Control*. Wiley
(chapters on tabular data: sensitive cells and secondary cell suppression).

Gusfield D (1988). A graph theoretic approach to statistical data security.
*SIAM Journal on Computing* 17(3), 552-571.
"""
from __future__ import annotations

import math
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from rp2pr_eval._options import DisclosurePreset, check_option

TableMargins = Literal["rows", "columns", "both"]

TOTAL_LABEL = "Total"

_PRESETS: dict[str, dict[str, Any]] = {
    "nhsd_2018": {"threshold": 8, "rounding": 5, "secondary": False, "symbol": "*", "min_n_for_summary": 8},
    "hes_legacy": {"threshold": 6, "rounding": None, "secondary": True, "symbol": "*", "min_n_for_summary": 6},
}


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True, slots=True)
class DisclosurePolicy:
    """How counts and the statistics built on them are protected.

    Use :meth:`from_preset`; construct directly only for a documented variant
    (or use ``dataclasses.replace`` on a preset).

    Parameters
    ----------
    preset : {"nhsd_2018", "hes_legacy", "threshold"}
        The rule the policy implements (a label; the other fields carry it).
    threshold : int
        The smallest count shown: counts 1..threshold-1 are suppressed
        (0 is shown as 0). ``threshold=1`` suppresses nothing.
    rounding : int or None
        Visible counts (and totals) are rounded to the nearest multiple of
        this base (5 for ``nhsd_2018``); ``None``: no rounding.
    secondary : bool
        Secondary suppression on (see :func:`suppress_counts`).
    symbol : str
        Shown in place of a count in the suppressed range (``"*"`` or
        ``"<5"``).
    min_n_for_summary : int
        Means and medians are shown only where their n is at least this.
    secondary_symbol : str
        Shown in place of a value withheld only to protect another cell
        (secondary suppression) and of a percentage or summary withheld because
        of its count. Kept apart from ``symbol`` because ``"<5"`` would be a
        false statement about a cell of, say, 30. Default ``"*"``.

    Notes
    -----
    STUDY.md §5 and DATA_CONTRACT.md §5 define the presets; NHS Digital (2018)
    the ``nhsd_2018`` rule; Hundepool et al. (2012) the general method.
    """

    preset: str
    threshold: int
    rounding: int | None
    secondary: bool
    symbol: str
    min_n_for_summary: int
    secondary_symbol: str = "*"

    def __post_init__(self) -> None:
        check_option("preset", self.preset, DisclosurePreset)
        if not _is_int(self.threshold) or self.threshold < 1:
            raise ValueError(f"DisclosurePolicy: threshold must be an integer >= 1, got {self.threshold!r}")
        if self.rounding is not None and (not _is_int(self.rounding) or self.rounding < 1):
            raise ValueError(f"DisclosurePolicy: rounding must be None or an integer >= 1, got {self.rounding!r}")
        if not isinstance(self.secondary, (bool, np.bool_)):
            raise ValueError(f"DisclosurePolicy: secondary must be True or False, got {self.secondary!r}")
        if not _is_int(self.min_n_for_summary) or self.min_n_for_summary < 0:
            raise ValueError(
                f"DisclosurePolicy: min_n_for_summary must be an integer >= 0, got {self.min_n_for_summary!r}"
            )
        for name in ("symbol", "secondary_symbol"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"DisclosurePolicy: {name} must be a non-empty string, got {value!r}")
            if _parse_number(value) is not None:
                raise ValueError(f"DisclosurePolicy: {name}={value!r} reads as a number; use e.g. '*' or '<5'")

    @classmethod
    def from_preset(
        cls,
        preset: DisclosurePreset = "threshold",
        *,
        threshold: int | None = None,
        secondary: bool | None = None,
    ) -> DisclosurePolicy:
        """The policy of a named preset.

        Parameters
        ----------
        preset : {"threshold", "hes_legacy", "nhsd_2018"}
            ``"threshold"``: counts 1..k-1 shown as ``"<k"``, secondary
            suppression, means where n >= k. ``"hes_legacy"``: counts 1-5 shown
            as ``"*"``, secondary suppression, means where n >= 6.
            ``"nhsd_2018"``: counts 1-7 shown as ``"*"``, other counts rounded
            to the nearest 5, means where n >= 8, no secondary suppression.
        threshold : int, optional
            k for the ``"threshold"`` preset (default 5). The other presets fix
            their threshold; giving one raises ``ValueError``.
        secondary : bool, optional
            Override the preset's secondary suppression (e.g. ``True`` to add
            it to ``nhsd_2018``).

        Returns
        -------
        DisclosurePolicy

        Raises
        ------
        ValueError
            Unknown preset, a threshold for a fixed preset, or a threshold that
            is not an integer >= 1.
        """
        check_option("preset", preset, DisclosurePreset)
        if preset == "threshold":
            k = 5 if threshold is None else threshold
            if not _is_int(k) or k < 1:
                raise ValueError(f"DisclosurePolicy.from_preset: threshold must be an integer >= 1, got {k!r}")
            fields = {"threshold": int(k), "rounding": None, "secondary": True, "symbol": f"<{k}", "min_n_for_summary": int(k)}
        else:
            if threshold is not None:
                fixed = _PRESETS[preset]["threshold"]
                raise ValueError(
                    f"DisclosurePolicy.from_preset: the {preset!r} preset fixes its threshold "
                    f"(counts 1-{fixed - 1} suppressed); use preset='threshold' for threshold={threshold!r}"
                )
            fields = dict(_PRESETS[preset])
        if secondary is not None:
            fields["secondary"] = secondary
        return cls(preset=preset, **fields)

    @property
    def footnote(self) -> str:
        """A footnote explaining the symbols, for the foot of an exported table."""
        k = self.threshold
        parts = [f"{self.symbol}: a count from 1 to {k - 1}."]
        if self.secondary_symbol == self.symbol:
            parts = [f"{self.symbol}: a count from 1 to {k - 1}, or a value withheld to protect such a count."]
        else:
            parts.append(f"{self.secondary_symbol}: withheld so that a small count cannot be worked out.")
        parts.append(f"Means and medians are shown only where n >= {self.min_n_for_summary}.")
        if self.rounding is not None:
            parts.append(
                f"Other counts are rounded to the nearest {self.rounding}; totals are rounded separately "
                "and may differ from the sum of their rounded parts."
            )
        return " ".join(parts)


@dataclass(frozen=True, slots=True, eq=False)
class SuppressedTable:
    """A protected count table and where it was suppressed.

    Attributes
    ----------
    frame : pandas.DataFrame
        The table to export: suppressed cells hold the policy's symbol, the
        others their (rounded) count; totals appended when asked for.
    mask : pandas.DataFrame
        Boolean, same shape as ``frame``: True where a cell is suppressed
        (primary or secondary).
    primary_mask : pandas.DataFrame
        Boolean: True where a count lies in the suppressed range.
    policy : DisclosurePolicy
        The policy applied.
    """

    frame: pd.DataFrame
    mask: pd.DataFrame = field(repr=False)
    primary_mask: pd.DataFrame = field(repr=False)
    policy: DisclosurePolicy

    @property
    def secondary_mask(self) -> pd.DataFrame:
        """True where a cell is withheld only to protect another cell."""
        return self.mask & ~self.primary_mask


# ---------------------------------------------------------------------------
# Secondary suppression on the table extended by its margins.
#
# The table with its totals is an (R+1) x (C+1) array; row R holds the column
# totals, column C the row totals, [R, C] the grand total. Each row and each
# column of this array is one linear equation (its cells add up to its
# total). A cell is *unknown* to a reader when it is suppressed or not shown
# (a total the table does not show). Seen as a bipartite graph (one node per
# row and per column of the extended array, one edge per unknown cell), a
# suppressed cell is exactly determined by the shown values iff its edge is a
# bridge (Gusfield 1988): otherwise it lies on a cycle, and adding +t/-t
# alternately round the cycle changes it without changing any equation.
# ---------------------------------------------------------------------------


def _primary(values: np.ndarray, present: np.ndarray, policy: DisclosurePolicy) -> np.ndarray:
    return present & (values >= 1) & (values < policy.threshold)


def _pick(cells: Sequence[tuple[int, int]], values: np.ndarray, shape: tuple[int, int]) -> tuple[int, int]:
    """Smallest count first; totals only when no inner cell qualifies; then by position."""
    n_rows, n_cols = shape
    return min(cells, key=lambda rc: (rc[0] == n_rows - 1 or rc[1] == n_cols - 1, int(values[rc]), rc))


def _singleton_pass(values: np.ndarray, present: np.ndarray, supp: np.ndarray) -> None:
    """The line heuristic, in place: no row/column may hold exactly one unknown cell that is suppressed."""
    n_rows, n_cols = values.shape
    lines = [(i, slice(None)) for i in range(n_rows)] + [(slice(None), j) for j in range(n_cols)]
    changed = True
    while changed:
        changed = False
        for line in lines:
            s, p, v = supp[line], present[line], values[line]
            if np.count_nonzero(s | ~p) != 1 or not s.any():
                continue
            free = np.flatnonzero(p & ~s & (v != 0))
            if free.size == 0:  # cannot happen: the line's shown total is a candidate
                continue
            if isinstance(line[0], int):
                cells = [(line[0], int(k)) for k in free]
            else:
                cells = [(int(k), line[1]) for k in free]
            supp[_pick(cells, values, values.shape)] = True
            changed = True


def _graph(present: np.ndarray, supp: np.ndarray) -> tuple[list[list[tuple[int, int]]], list[tuple[int, int]]]:
    n_rows, n_cols = present.shape
    cells = [tuple(map(int, rc)) for rc in np.argwhere(supp | ~present)]
    adj: list[list[tuple[int, int]]] = [[] for _ in range(n_rows + n_cols)]
    for k, (i, j) in enumerate(cells):
        adj[i].append((n_rows + j, k))
        adj[n_rows + j].append((i, k))
    return adj, cells


def _bridges(adj: list[list[tuple[int, int]]]) -> set[int]:
    """Edge ids of the bridges of an undirected graph (iterative Tarjan)."""
    n = len(adj)
    disc = [-1] * n
    low = [0] * n
    timer = 0
    out: set[int] = set()
    for root in range(n):
        if disc[root] != -1:
            continue
        disc[root] = low[root] = timer
        timer += 1
        stack = [(root, -1, iter(adj[root]))]
        while stack:
            node, via, it = stack[-1]
            for nb, k in it:
                if k == via:
                    continue
                if disc[nb] == -1:
                    disc[nb] = low[nb] = timer
                    timer += 1
                    stack.append((nb, k, iter(adj[nb])))
                    break
                low[node] = min(low[node], disc[nb])
            else:
                stack.pop()
                if stack:
                    parent = stack[-1][0]
                    low[parent] = min(low[parent], low[node])
                    if low[node] > disc[parent]:
                        out.add(via)
    return out


def _exposed(present: np.ndarray, supp: np.ndarray) -> list[tuple[int, int]]:
    """Suppressed cells whose value follows exactly from the shown cells, in row-major order."""
    adj, cells = _graph(present, supp)
    return sorted(cells[k] for k in _bridges(adj) if supp[cells[k]])


def _component(adj: list[list[tuple[int, int]]], start: int, skip: int) -> set[int]:
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        for nb, k in adj[node]:
            if k != skip and nb not in seen:
                seen.add(nb)
                todo.append(nb)
    return seen


def _close_cycle(values: np.ndarray, present: np.ndarray, supp: np.ndarray, cell: tuple[int, int]) -> tuple[int, int]:
    """A shown non-zero cell whose suppression puts the exposed ``cell`` on a cycle (or merges towards one)."""
    n_rows = values.shape[0]
    adj, cells = _graph(present, supp)
    edge = cells.index(cell)
    side_a = _component(adj, cell[0], edge)
    side_b = _component(adj, n_rows + cell[1], edge)
    closing, merging = [], []
    for i, j in np.argwhere(present & ~supp & (values != 0)):
        u, w = int(i), n_rows + int(j)
        if (u in side_a and w in side_b) or (u in side_b and w in side_a):
            closing.append((int(i), int(j)))
        elif (u in side_a) != (w in side_a) or (u in side_b) != (w in side_b):
            merging.append((int(i), int(j)))
    # Summing the equations of side_a shows the exposed cell equals a signed sum of the
    # shown cells leaving side_a; one of them is non-zero because the cell is, so a
    # candidate always exists.
    candidates = closing or merging
    if not candidates:
        raise RuntimeError(f"disclosure: no cell can protect cell {cell} (internal error)")
    return _pick(candidates, values, values.shape)


def _suppress(values: np.ndarray, present: np.ndarray, policy: DisclosurePolicy) -> tuple[np.ndarray, np.ndarray]:
    """Primary and full suppression masks on the extended table."""
    primary = _primary(values, present, policy)
    supp = primary.copy()
    if policy.secondary:
        while True:
            _singleton_pass(values, present, supp)
            exposed = _exposed(present, supp)
            if not exposed:
                break
            supp[_close_cycle(values, present, supp, exposed[0])] = True
    return primary, supp


def _round(values: np.ndarray, base: int | None) -> np.ndarray:
    """Nearest multiple of ``base`` (halves up) of non-negative integers; ``None``: unchanged."""
    if base is None or base == 1:
        return values.copy()
    return ((values + base // 2) // base) * base


# ---------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------


def _labels(index: pd.Index, positions: np.ndarray, limit: int = 5) -> str:
    shown = [repr(label) for label in index[positions[:limit]].tolist()]
    more = f" and {len(positions) - limit} more" if len(positions) > limit else ""
    return ", ".join(shown) + more


def _counts(frame: pd.DataFrame, column: Hashable, what: str = "count column") -> np.ndarray:
    """The column as int64, or ValueError naming the column and the first bad rows."""
    s = frame[column]
    if not is_numeric_dtype(s.dtype) or is_bool_dtype(s.dtype):
        raise ValueError(f"{what} {column!r} must be numeric (whole counts); it has dtype {s.dtype}")
    arr = s.to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(arr) | (arr < 0) | (arr != np.round(arr))
    if bad.any():
        pos = np.flatnonzero(bad)
        raise ValueError(
            f"{what} {column!r} must hold non-negative whole numbers with no missing values; "
            f"bad value(s) {s.iloc[pos[:5]].tolist()} at row(s) {_labels(frame.index, pos)}"
        )
    return arr.astype(np.int64)


def _check_unique(df: pd.DataFrame, who: str) -> None:
    if not df.columns.is_unique:
        dup = sorted({repr(c) for c in df.columns[df.columns.duplicated()]})
        raise ValueError(f"{who}: column labels must be unique; duplicated: {', '.join(dup)}")
    if not df.index.is_unique:
        dup = sorted({repr(r) for r in df.index[df.index.duplicated()]})[:5]
        raise ValueError(f"{who}: row labels (the index) must be unique; duplicated: {', '.join(dup)}")


def _total_row_label(index: pd.Index, label: Hashable) -> Hashable:
    if isinstance(index, pd.MultiIndex) and not isinstance(label, tuple):
        return (label,) + ("",) * (index.nlevels - 1)
    return label


def _render(numbers: np.ndarray, primary: np.ndarray, supp: np.ndarray, index: pd.Index, policy: DisclosurePolicy) -> pd.Series:
    if not supp.any():
        return pd.Series(numbers, index=index, dtype="int64")
    obj = numbers.astype(object)
    obj[supp & ~primary] = policy.secondary_symbol
    obj[primary] = policy.symbol
    return pd.Series(obj, index=index, dtype=object)


def suppress_counts(
    table: pd.DataFrame,
    *,
    policy: DisclosurePolicy,
    count_columns: Sequence[Hashable] | None = None,
    row_total: Hashable | None = None,
    col_total: Hashable | None = None,
) -> SuppressedTable:
    """Suppress (and, under ``nhsd_2018``, round) the counts of a table.

    The count columns of ``table`` form a two-way table (rows by count
    columns). Optionally a row-total column and a column-total row are shown;
    they are computed from the unrounded counts.

    Rules, in order:

    1. *Primary suppression*: a shown count (cell or total) in
       1..``policy.threshold``-1 is replaced by ``policy.symbol``. Zeros are
       shown: suppressing a zero protects nobody, and a reader may know a
       structural zero anyway; so zeros count as known values below.
    2. *Secondary suppression* (``policy.secondary``). Every row and column
       of the table extended by its shown totals is an equation "the cells add
       up to the total". Repeatedly, in every row and then every column in
       which exactly one value is unknown to the reader and that value is a
       suppressed cell, the smallest shown non-zero cell of that row/column is
       also suppressed (ties: the first by position; the total only if no
       inner cell qualifies), until no such line is left. A row whose total
       is not shown is not an equation for the reader and needs nothing.
       This line heuristic is necessary but not sufficient: two blocks of
       suppressed cells joined by a single suppressed cell still give that
       cell away. So the table is then audited exactly: a suppressed cell is
       determined by the shown values iff it is a bridge of the bipartite
       graph whose nodes are the rows and columns and whose edges are the
       unknown cells (Gusfield 1988). For the first such cell, the smallest
       shown non-zero cell joining its two sides (which closes a cycle
       through it) is suppressed, and the heuristic and audit are repeated.
       Every step suppresses one more non-zero cell, and suppressing all of
       them (totals included) leaves no bridge, so this ends.
    3. *Rounding* (``policy.rounding``): every shown count, totals included,
       is rounded to the nearest multiple (totals from the unrounded counts,
       so they need not add up).

    Guarantee (with ``policy.secondary``): no suppressed cell, inner or
    total, can be computed exactly from the shown cells and totals (zeros
    included). Not guaranteed: bounds. A reader still learns that a
    ``"<5"`` cell lies in 1-4 and may narrow a suppressed cell to an
    interval by linear programming; and totals not shown but published
    elsewhere are not accounted for: show them (``row_total``/``col_total``)
    so that they are protected too.

    ``nhsd_2018`` has no secondary suppression by default: rounding every
    other count and every total to the nearest 5 leaves each suppressed
    count uncertain by several units whatever the margins show (NHS Digital
    2018); pass ``DisclosurePolicy.from_preset("nhsd_2018", secondary=True)``
    to add it. All counts are treated as sub-national.

    Parameters
    ----------
    table : pandas.DataFrame
        Counts, rows labelled by the index. Not modified.
    policy : DisclosurePolicy
        See :meth:`DisclosurePolicy.from_preset`.
    count_columns : sequence of labels, optional
        The count columns; default: every numeric, non-boolean column (except
        ``row_total``). Other columns pass through unchanged (use
        :func:`protect_table` for percentages and means).
    row_total : label, optional
        Show row totals in this column (appended; if the column exists it must
        equal the row sums and is used as the totals).
    col_total : label, optional
        Show column totals in the row with this index label (appended; if the
        row exists it must equal the column sums). With both, the grand total
        is shown too.

    Returns
    -------
    SuppressedTable
        ``frame``, ``mask``, ``primary_mask`` (same shape), ``policy``.

    Raises
    ------
    ValueError
        Non-unique labels, unknown or non-count columns, negative, missing
        or fractional counts, or shown totals that do not add up.

    References
    ----------
    Hundepool et al. (2012), *Statistical Disclosure Control*, Wiley, tabular
    data chapters. Gusfield D (1988), SIAM J Comput 17(3):552-571. NHS
    Digital (2018), HES/ECDS disclosure control methodology.
    """
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"suppress_counts: table must be a pandas DataFrame, got {type(table).__name__}")
    if not isinstance(policy, DisclosurePolicy):
        raise ValueError(f"suppress_counts: policy must be a DisclosurePolicy, got {type(policy).__name__}")
    _check_unique(table, "suppress_counts")
    has_row_total = row_total is not None and row_total in table.columns
    total_label = None if col_total is None else _total_row_label(table.index, col_total)
    has_col_total = total_label is not None and total_label in set(table.index)
    data = table.drop(index=[total_label]) if has_col_total else table

    if count_columns is None:
        cols = [c for c in table.columns if c != row_total and is_numeric_dtype(table[c].dtype) and not is_bool_dtype(table[c].dtype)]
        if not cols:
            raise ValueError("suppress_counts: table has no numeric columns; name the count_columns")
    else:
        if isinstance(count_columns, (str, bytes)):
            raise ValueError(f"suppress_counts: count_columns must be a list of column labels, got the string {count_columns!r}")
        cols = list(count_columns)
        missing = [c for c in cols if c not in table.columns]
        if missing:
            raise ValueError(f"suppress_counts: count column(s) {missing} not in the table; columns are {list(table.columns)}")
        if not cols:
            raise ValueError("suppress_counts: count_columns is empty")
        if len(set(cols)) != len(cols):
            raise ValueError(f"suppress_counts: count_columns repeats a column: {cols}")
        if row_total is not None and row_total in cols:
            raise ValueError(f"suppress_counts: row_total {row_total!r} is also listed in count_columns")
    if len(data) == 0:
        raise ValueError("suppress_counts: the table has no rows of counts")

    inner = np.column_stack([_counts(data, c) for c in cols])
    n_rows, n_cols = inner.shape
    values = np.zeros((n_rows + 1, n_cols + 1), dtype=np.int64)
    values[:n_rows, :n_cols] = inner
    values[:n_rows, n_cols] = inner.sum(axis=1)
    values[n_rows, :] = values[:n_rows, :].sum(axis=0)

    if has_row_total:
        given = _counts(data, row_total, "row_total column")
        bad = np.flatnonzero(given != values[:n_rows, n_cols])
        if bad.size:
            raise ValueError(
                f"suppress_counts: row_total column {row_total!r} does not equal the sum of the count columns "
                f"at row(s) {_labels(data.index, bad)}"
            )
    if has_col_total:
        check = cols + ([row_total] if has_row_total else [])
        given_row = table.loc[[total_label], check]
        given = np.array([_counts(given_row, c, "col_total row, column")[0] for c in check])
        bad = np.flatnonzero(given != values[n_rows, : len(check)])
        if bad.size:
            raise ValueError(
                f"suppress_counts: col_total row {total_label!r} does not equal the column sums in column(s) "
                f"{[check[b] for b in bad]}"
            )

    present = np.zeros_like(values, dtype=bool)
    present[:n_rows, :n_cols] = True
    present[:n_rows, n_cols] = row_total is not None
    present[n_rows, :n_cols] = col_total is not None
    present[n_rows, n_cols] = row_total is not None and col_total is not None
    primary, supp = _suppress(values, present, policy)
    shown = _round(values, policy.rounding)

    out = table.copy()
    if row_total is not None and not has_row_total:
        out[row_total] = np.zeros(len(out), dtype=np.int64)
    if total_label is not None and not has_col_total:
        if isinstance(out.index, pd.MultiIndex):
            extra = pd.MultiIndex.from_tuples([total_label], names=out.index.names)
        else:
            extra = pd.Index([total_label], name=out.index.name)
        out = out.reindex(out.index.append(extra))
    ext_row = np.empty(len(out), dtype=np.int64)
    ext_row[out.index.get_indexer(data.index)] = np.arange(n_rows)
    if total_label is not None:
        ext_row[out.index.get_loc(total_label)] = n_rows

    mask = pd.DataFrame(False, index=out.index, columns=out.columns)
    primary_mask = mask.copy()
    targets = list(enumerate(cols)) + ([(n_cols, row_total)] if row_total is not None else [])
    for j, col in targets:
        out[col] = _render(shown[ext_row, j], primary[ext_row, j], supp[ext_row, j], out.index, policy)
        mask[col] = supp[ext_row, j]
        primary_mask[col] = primary[ext_row, j]
    return SuppressedTable(frame=out, mask=mask, primary_mask=primary_mask, policy=policy)


def _ratio_scale(values: np.ndarray, num: np.ndarray, den: np.ndarray) -> float:
    """The power of ten a ratio column is expressed on (100 for a percentage)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = np.isfinite(values) & (num > 0) & (den > 0) & (values > 0)
        if not ok.any():
            return 100.0
        estimate = float(np.median(values[ok] * den[ok] / num[ok]))
    return 10.0 ** round(math.log10(estimate))


def _float_column(frame: pd.DataFrame, column: Hashable, who: str) -> np.ndarray:
    s = frame[column]
    if not is_numeric_dtype(s.dtype) or is_bool_dtype(s.dtype):
        raise ValueError(f"protect_table: {who} column {column!r} must be numeric; it has dtype {s.dtype}")
    return s.to_numpy(dtype=float, na_value=np.nan)


def protect_table(
    df: pd.DataFrame,
    *,
    policy: DisclosurePolicy,
    count_columns: Sequence[Hashable],
    percent_columns: Mapping[Hashable, tuple[Hashable, Hashable]] | None = None,
    summary_columns: Mapping[Hashable, Hashable] | None = None,
    margins: TableMargins | None = "both",
) -> pd.DataFrame:
    """Protect an export table of counts, percentages and means.

    The counts go through :func:`suppress_counts` (with the totals chosen by
    ``margins``). Then:

    - a percentage (or rate) is withheld (``policy.secondary_symbol``) when its
      numerator or denominator is suppressed;
    - a mean or median is withheld when its n is suppressed or below
      ``policy.min_n_for_summary`` (missing values stay missing);
    - under a rounding policy (``nhsd_2018``) every shown percentage is
      recomputed from the rounded numerator and denominator, as NHS Digital
      does: an exact percentage beside a rounded denominator would give the
      exact numerator back;
    - in an added total row, percentages are computed from the totals and
      means/medians are left missing (they cannot be derived from the rows).

    Other columns (model estimates, confidence intervals, labels) pass
    through unchanged: they are exempt. Linear relations other than the
    margins (for example a column that is another column's complement) are
    not detected; put such counts in one cross-table.

    Parameters
    ----------
    df : pandas.DataFrame
        The table, rows labelled by the index. Not modified.
    policy : DisclosurePolicy
        See :meth:`DisclosurePolicy.from_preset`.
    count_columns : sequence of labels
        Columns of counts of individuals. Numerators, denominators and the n
        of every summary must be among them.
    percent_columns : mapping, optional
        ``{column: (numerator, denominator)}``; the column holds
        scale x numerator / denominator with scale a power of ten (100 for a
        percentage, inferred from the values).
    summary_columns : mapping, optional
        ``{column: n_column}`` for means and medians.
    margins : {"both", "rows", "columns"} or None
        Totals to show and protect: ``"rows"`` appends a ``"Total"`` column
        of row totals (the count columns must then be additive across a row;
        a numerator and its denominator are not), ``"columns"`` appends a
        ``"Total"`` row of column totals, ``"both"`` both (and the grand
        total), ``None`` neither (secondary suppression then has no
        equation to protect against).

    Returns
    -------
    pandas.DataFrame
        A new frame; suppressed cells hold a symbol, the rest numbers.

    Raises
    ------
    ValueError
        Invalid ``margins``; a percentage, summary or n column that is
        missing or not a count column as required; ``margins`` with row totals
        over a numerator and its denominator; and the errors of
        :func:`suppress_counts`.

    References
    ----------
    NHS Digital (2018), HES/ECDS disclosure control methodology (rounding,
    percentages from rounded counts, means only where n >= 8). Hundepool et
    al. (2012), *Statistical Disclosure Control*, Wiley.
    """
    check_option("margins", margins, TableMargins, allow_none=True)
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"protect_table: df must be a pandas DataFrame, got {type(df).__name__}")
    if isinstance(count_columns, (str, bytes)) or count_columns is None:
        raise ValueError(f"protect_table: count_columns must be a list of column labels, got {count_columns!r}")
    counts = list(count_columns)
    percent_columns = dict(percent_columns or {})
    summary_columns = dict(summary_columns or {})
    for name, pair in percent_columns.items():
        if name not in df.columns:
            raise ValueError(f"protect_table: percent column {name!r} not in the table")
        if name in counts:
            raise ValueError(f"protect_table: {name!r} is both a count and a percent column")
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ValueError(f"protect_table: percent_columns[{name!r}] must be a (numerator, denominator) tuple, got {pair!r}")
        for role, col in zip(("numerator", "denominator"), pair):
            if col not in counts:
                raise ValueError(f"protect_table: {role} {col!r} of percent column {name!r} must be one of count_columns {counts}")
        if margins in ("rows", "both"):
            raise ValueError(
                f"protect_table: margins={margins!r} would add a row total summing numerator {pair[0]!r} and "
                f"denominator {pair[1]!r} of {name!r}; use margins='columns' or None"
            )
    for name, n_col in summary_columns.items():
        if name not in df.columns:
            raise ValueError(f"protect_table: summary column {name!r} not in the table")
        if name in counts or name in percent_columns:
            raise ValueError(f"protect_table: {name!r} is a summary column and also a count or percent column")
        if n_col not in counts:
            raise ValueError(f"protect_table: n column {n_col!r} of summary column {name!r} must be one of count_columns {counts}")

    row_total = TOTAL_LABEL if margins in ("rows", "both") else None
    col_total = TOTAL_LABEL if margins in ("columns", "both") else None
    st = suppress_counts(df, policy=policy, count_columns=counts, row_total=row_total, col_total=col_total)
    out, mask = st.frame, st.mask
    total_label = None if col_total is None else _total_row_label(df.index, col_total)
    added_row = total_label is not None and total_label not in set(df.index)
    pos = out.index.get_indexer(df.index)
    base = policy.rounding

    for name, (num_col, den_col) in percent_columns.items():
        given = _float_column(df, name, "percent")
        num, den = _counts(df, num_col), _counts(df, den_col)
        scale = _ratio_scale(given, num, den)
        ratio = np.full(len(out), np.nan)
        ratio[pos] = given
        fresh = np.zeros(len(out), dtype=bool)  # rows whose ratio is computed here
        if base is not None:
            fresh[pos] = ~np.isnan(given)
        rows = pos
        if added_row:
            rows = np.append(pos, out.index.get_loc(total_label))
            num, den = np.append(num, num.sum()), np.append(den, den.sum())
            fresh[rows[-1]] = True
        r_num, r_den = _round(num, base), _round(den, base)
        with np.errstate(invalid="ignore", divide="ignore"):
            computed = np.where(r_den > 0, scale * r_num / np.maximum(r_den, 1), np.nan)
        ratio[rows] = np.where(fresh[rows], computed, ratio[rows])
        hide = (mask[num_col] | mask[den_col]).to_numpy()
        out[name] = _derived(ratio, hide, out.index, policy)

    for name, n_col in summary_columns.items():
        given = _float_column(df, name, "summary")
        n = _counts(df, n_col)
        value = np.full(len(out), np.nan)
        value[pos] = given
        small = np.zeros(len(out), dtype=bool)
        small[pos] = n < policy.min_n_for_summary
        hide = (mask[n_col].to_numpy() | small) & ~np.isnan(value)
        out[name] = _derived(value, hide, out.index, policy)
    return out


def _derived(values: np.ndarray, hide: np.ndarray, index: pd.Index, policy: DisclosurePolicy) -> pd.Series:
    if not hide.any():
        return pd.Series(values, index=index, dtype="float64")
    obj = values.astype(object)
    obj[hide] = policy.secondary_symbol
    return pd.Series(obj, index=index, dtype=object)


# ---------------------------------------------------------------------------
# Audit
# ---------------------------------------------------------------------------

_DIGITS = re.compile(r"^\d{1,3}(,\d{3})+$|^\d+$")


def _parse_number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def _as_count(value: object, symbols: set[str], strict: bool) -> int | None:
    """The count a rendered cell shows, or None (symbol, missing, not a count)."""
    if value is None or isinstance(value, (bool, np.bool_)) or value is pd.NA:
        return None
    if _is_int(value):
        return int(value) if value >= 0 else None
    if isinstance(value, (float, np.floating)):
        if strict and math.isfinite(value) and value >= 0 and float(value).is_integer():
            return int(value)
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text or text in symbols:
            return None
        if _DIGITS.match(text):
            return int(text.replace(",", ""))
        if strict:
            number = _parse_number(text)
            if number is not None and math.isfinite(number) and number >= 0 and number.is_integer():
                return int(number)
    return None


def _looks_like_counts(column: pd.Series, symbols: set[str]) -> bool:
    found = False
    for value in column:
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            continue
        if isinstance(value, str) and value.strip() in symbols:
            continue
        if _as_count(value, symbols, strict=False) is None:
            return False
        found = True
    return found


def check_disclosure(
    df_rendered: pd.DataFrame,
    *,
    policy: DisclosurePolicy,
    count_columns: Sequence[Hashable] | None = None,
) -> list[str]:
    """List the disclosure-rule violations of a rendered (exported) table.

    A violation is a visible count in the suppressed range
    1..``policy.threshold``-1, or, under a rounding policy, a visible count
    that is not a multiple of the rounding base. Symbols and missing values
    are skipped. Secondary suppression is not audited here (it needs the
    table's structure; :func:`suppress_counts` guarantees it).

    Parameters
    ----------
    df_rendered : pandas.DataFrame
        The table as exported (numbers, symbol strings, or the same read back
        from CSV, where counts may be digit strings).
    policy : DisclosurePolicy
        The policy the table must satisfy.
    count_columns : sequence of labels, optional
        The columns to audit. Default: every column whose visible values are
        all whole numbers stored as integers or digit strings (floats, such as
        percentages, are skipped). The inference can flag a column of small
        integers that are not counts (a period number); pass the count
        columns for a precise audit. Named columns are audited whatever their
        type, floats with whole values included.

    Returns
    -------
    list of str
        One message per violating cell, naming its row and column; empty if
        the table passes.

    References
    ----------
    NHS Digital (2018), HES/ECDS disclosure control methodology; STUDY.md §5.
    """
    if not isinstance(df_rendered, pd.DataFrame):
        raise ValueError(f"check_disclosure: df_rendered must be a pandas DataFrame, got {type(df_rendered).__name__}")
    if not isinstance(policy, DisclosurePolicy):
        raise ValueError(f"check_disclosure: policy must be a DisclosurePolicy, got {type(policy).__name__}")
    symbols = {policy.symbol, policy.secondary_symbol}
    if count_columns is None:
        strict = False
        cols = [c for c in df_rendered.columns if _looks_like_counts(df_rendered[c], symbols)]
    else:
        strict = True
        cols = list(count_columns)
        missing = [c for c in cols if c not in df_rendered.columns]
        if missing:
            raise ValueError(f"check_disclosure: count column(s) {missing} not in the table")
    k = policy.threshold
    found: list[str] = []
    for col in cols:
        for label, value in df_rendered[col].items():
            n = _as_count(value, symbols, strict)
            if n is None:
                continue
            if 1 <= n < k:
                found.append(
                    f"row {label!r}, column {col!r}: count {n} is shown, but counts 1-{k - 1} must be "
                    f"suppressed under {policy.preset!r}"
                )
            elif policy.rounding is not None and n % policy.rounding:
                found.append(
                    f"row {label!r}, column {col!r}: count {n} is not rounded to a multiple of "
                    f"{policy.rounding} as {policy.preset!r} requires"
                )
    return found


__all__ = [
    "DisclosurePolicy",
    "SuppressedTable",
    "TableMargins",
    "check_disclosure",
    "protect_table",
    "suppress_counts",
]
