"""Cell suppression of a two-way table of counts with its totals.

:func:`suppress_counts` suppresses counts 1..k-1 (primary), then, with
``policy.secondary``, further cells until no suppressed cell, inner or total,
can be narrowed to fewer than two values from what the table shows and what
its symbols say (the interval audit of
:mod:`rp2pr_eval.presentation.disclosure.linked`). Two fast combinatorial
steps come first and do most of the work: a line heuristic and the bridge
test of Gusfield (1988) for cells determined exactly by the margins; the
interval audit then catches what bounds give away (two ``<5`` cells of a
column that must add to 8 are both 4). :func:`interval_audit` reports every
suppressed cell's feasible range.

References
----------
Hundepool A, Domingo-Ferrer J, Franconi L, Giessing S, Schulte Nordholt E,
Spicer K, de Wolf P-P (2012). *Statistical Disclosure Control*. Wiley
(chapters on tabular data: sensitive cells and secondary cell suppression).

Gusfield D (1988). A graph theoretic approach to statistical data security.
*SIAM Journal on Computing* 17(3), 552-571.
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from rp2pr_eval.presentation.disclosure.linked import (
    LinkedCounts,
    feasible_ranges,
    protect_linked,
    table_equations,
)
from rp2pr_eval.presentation.disclosure.policy import DisclosurePolicy

TableMargins = Literal["rows", "columns", "both"]

TOTAL_LABEL = "Total"


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
    #: The extended table as linked counts, its masks and the (row, column) label of each cell.
    linked: tuple[LinkedCounts, np.ndarray, np.ndarray, list[tuple[Hashable, Hashable]]] | None = field(
        default=None, repr=False)

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


def _linked(values: np.ndarray, present: np.ndarray) -> LinkedCounts:
    """The extended table as linked counts: inner cells are chosen before totals, smallest first."""
    n_rows, n_cols = values.shape
    total = np.zeros_like(present)
    total[-1, :] = total[:, -1] = True
    cost = values.astype(float) + np.where(total, 1e15, 0.0)
    return LinkedCounts(values=values.ravel(), equations=table_equations(n_rows - 1, n_cols - 1),
                        published=present.ravel(), cost=cost.ravel())


def _withheld_totals(values: np.ndarray, present: np.ndarray, primary: np.ndarray, threshold: int) -> np.ndarray:
    """Shown line totals over at least k-1 cells that are all small (or zero): withheld whatever their size.

    A line of m primary cells (1..k-1 each) and a small total is closed: no
    shown cell is left in it to suppress, and with m = k-1 the symbols'
    bounds alone pin it (``<3 + <3 = 2`` gives 1 and 1). With m < k-1 the
    line alone never pins a cell (each lies in 1..k-m, the total in
    m..k-1). So the total of every line with m >= k-1 small cells and no
    other non-zero cell is withheld, whatever its size: the rule depends
    only on what the reader sees (m symbols), so that a total was withheld
    tells nothing about it, and the audit knows it only as >= 0.
    """
    n_rows, n_cols = values.shape
    out = np.zeros_like(present)

    def closed(cells: np.ndarray, small: np.ndarray) -> bool:
        return bool(small.sum() >= threshold - 1 and np.all(small | (cells == 0)))

    # Lines of inner cells first (they see only inner cells, never withheld), then the two lines of
    # totals through the grand total, from the totals as they will be shown (a withheld total is no
    # longer a small symbol): so a reader can replay the rule from the symbols.
    for i in range(n_rows - 1):
        out[i, -1] = present[i, -1] and closed(values[i, :-1], primary[i, :-1])
    for j in range(n_cols - 1):
        out[-1, j] = present[-1, j] and closed(values[:-1, j], primary[:-1, j])
    shown_small = primary & ~out
    out[-1, -1] = present[-1, -1] and (closed(values[-1, :-1], shown_small[-1, :-1])
                                       or closed(values[:-1, -1], shown_small[:-1, -1]))
    return out


def _suppress(values: np.ndarray, present: np.ndarray, policy: DisclosurePolicy,
              forced: np.ndarray) -> tuple[np.ndarray, np.ndarray, LinkedCounts]:
    """Primary and full suppression masks on the extended table (see :func:`suppress_counts`)."""
    primary = _primary(values, present, policy)
    supp = primary | (forced & present & (values != 0))
    withheld = _withheld_totals(values, present, primary, policy.threshold) if policy.secondary else np.zeros_like(present)
    primary = primary & ~withheld
    supp = supp | withheld
    audited = present & ~withheld          # a withheld total tells the reader nothing: not published
    lc = _linked(values, audited)
    if policy.secondary:
        while True:
            _singleton_pass(values, audited, supp)
            exposed = _exposed(audited, supp)
            if not exposed:
                break
            supp[_close_cycle(values, audited, supp, exposed[0])] = True
        _, flat = protect_linked(lc, policy, suppressed=supp.ravel(), primary=primary.ravel())
        supp = flat.reshape(values.shape) | withheld
    return primary, supp, lc


def round_counts(values: np.ndarray, base: int | None) -> np.ndarray:
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


def counts_of(frame: pd.DataFrame, column: Hashable, what: str = "count column") -> np.ndarray:
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


def total_row_label(index: pd.Index, label: Hashable) -> Hashable:
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
    also_suppress: Iterable[tuple[Hashable, Hashable]] | None = None,
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
       Last, the *interval audit*
       (:func:`rp2pr_eval.presentation.disclosure.linked.protect_linked`):
       for each suppressed cell, its smallest and largest value over all
       real tables that agree with the shown cells and totals, are
       non-negative, and hold 1..k-1 in every primary cell and at least k
       in every secondary cell (when the symbols differ; at least 1 when
       they are the same). While a cell's range holds fewer than two
       integers, one more shown non-zero cell of its row or column is
       suppressed (the cheapest that makes it safe). This catches what the
       bounds give away: two ``<5`` cells of a column that must add to 8.
       A shown row or column total whose non-zero cells are all primary,
       at least k-1 of them, is *withheld* (``policy.secondary_symbol``)
       whatever its size, before the audit: no shown cell is left in such
       a line to protect it, and the symbols' bounds alone may pin it
       (``<3``, ``<3``, total 2 gives 1 and 1). The rule depends only on
       the symbols a reader sees, so the withholding itself tells nothing;
       the audit knows such a total only as >= 0.
    3. *Rounding* (``policy.rounding``): every shown count, totals included,
       is rounded to the nearest multiple (totals from the unrounded counts,
       so they need not add up).

    Guarantee (with ``policy.secondary``): every suppressed cell, inner or
    total, can take at least two integer values in tables that agree with
    everything the table shows and its symbols say (unless its symbol alone
    leaves one: ``"<2"`` means 1). The constraint matrix of a two-way table
    with its totals is totally unimodular, so the bounds found over real
    tables are reached by integer tables. Not guaranteed: a reader may
    still narrow a cell to a short interval (``"<5"`` to 3-4); totals not
    shown here but published elsewhere are not accounted for (show them,
    or name the cells another table hides in ``also_suppress``); and the
    pattern of suppression itself is not modelled (that a cell was chosen
    as the cheapest to protect another).

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
    also_suppress : iterable of (row label, column label), optional
        Cells to suppress as secondary from the start, because another table
        that shares them (the same totals) hides them; zeros are left shown.
        Labels of the output frame (the total row and column included).

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
    total_label = None if col_total is None else total_row_label(table.index, col_total)
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

    inner = np.column_stack([counts_of(data, c) for c in cols])
    n_rows, n_cols = inner.shape
    values = np.zeros((n_rows + 1, n_cols + 1), dtype=np.int64)
    values[:n_rows, :n_cols] = inner
    values[:n_rows, n_cols] = inner.sum(axis=1)
    values[n_rows, :] = values[:n_rows, :].sum(axis=0)

    if has_row_total:
        given = counts_of(data, row_total, "row_total column")
        bad = np.flatnonzero(given != values[:n_rows, n_cols])
        if bad.size:
            raise ValueError(
                f"suppress_counts: row_total column {row_total!r} does not equal the sum of the count columns "
                f"at row(s) {_labels(data.index, bad)}"
            )
    if has_col_total:
        check = cols + ([row_total] if has_row_total else [])
        given_row = table.loc[[total_label], check]
        given = np.array([counts_of(given_row, c, "col_total row, column")[0] for c in check])
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
    row_of = {label: i for i, label in enumerate(data.index)}
    col_of = {label: j for j, label in enumerate(cols)}
    if total_label is not None:
        row_of[total_label] = n_rows
    if row_total is not None:
        col_of[row_total] = n_cols
    forced = np.zeros_like(present)
    if also_suppress is not None:
        if isinstance(also_suppress, (str, bytes)) or not isinstance(also_suppress, Iterable):
            raise ValueError(f"suppress_counts: also_suppress must be (row, column) label pairs, got {also_suppress!r}")
        for pair in also_suppress:
            if not isinstance(pair, tuple) or len(pair) != 2 or pair[0] not in row_of or pair[1] not in col_of:
                raise ValueError(f"suppress_counts: also_suppress cell {pair!r} is not a (row, column) of the table")
            forced[row_of[pair[0]], col_of[pair[1]]] = True
    primary, supp, lc = _suppress(values, present, policy, forced)
    shown = round_counts(values, policy.rounding)

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
    labels = [(r, c) for r in list(data.index) + [total_label if total_label is not None else TOTAL_LABEL]
              for c in list(cols) + [row_total if row_total is not None else TOTAL_LABEL]]
    return SuppressedTable(frame=out, mask=mask, primary_mask=primary_mask, policy=policy,
                           linked=(lc, primary.ravel(), supp.ravel(), labels))


def interval_audit(result: SuppressedTable) -> pd.DataFrame:
    """The feasible range of every suppressed cell of a :func:`suppress_counts` result.

    For each suppressed cell (inner or total), its smallest and largest value
    over all real tables that agree with the shown cells and totals, are
    non-negative, and respect what the symbols say (1..k-1 for the primary
    symbol, at least k for a distinct secondary symbol, at least 1 for a
    shared one). Shown counts under a rounding policy are known only to the
    values that round to them.

    Parameters
    ----------
    result : SuppressedTable

    Returns
    -------
    pandas.DataFrame
        ``row, column, kind ("primary"/"secondary"), low, high, values`` where
        ``values`` is the number of integers in [low, high] (inf when
        unbounded). With secondary suppression on, every ``values`` is at
        least 2 unless the symbol alone leaves fewer (k = 2).

    Notes
    -----
    Hundepool et al. (2012), §4.3: the attacker's linear programmes. The
    equivalent in tau-ARGUS is the audit step ("protection intervals").
    """
    if not isinstance(result, SuppressedTable) or result.linked is None:
        raise ValueError("interval_audit: pass the SuppressedTable that suppress_counts returned")
    lc, primary, supp, labels = result.linked
    ranges = feasible_ranges(lc, primary, supp, result.policy, cells=np.flatnonzero(supp))
    rows = []
    for cell, low, high in ranges:
        c = int(cell)
        count = np.inf if np.isinf(high) else np.floor(high + 1e-6) - np.ceil(low - 1e-6) + 1
        rows.append({"row": labels[c][0], "column": labels[c][1], "kind": "primary" if primary[c] else "secondary",
                     "low": low, "high": high, "values": count})
    return pd.DataFrame(rows, columns=["row", "column", "kind", "low", "high", "values"])

