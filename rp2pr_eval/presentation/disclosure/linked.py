"""Interval audit and secondary suppression for counts tied by linear equations.

A set of published counts is a vector ``x`` of non-negative integers with
linear relations ``A x = 0`` a reader knows (row and column totals, a
denominator that is events plus non-events, national totals that are sums of
arm totals, the same count in two tables). For every cell the reader knows an
interval:

* a shown count: its value (under rounding to base b: the values that round
  to it, at least k unless it is 0);
* a count shown as the primary symbol: 1..k-1;
* a count shown as a secondary symbol distinct from the primary one: >= k
  (zeros are never suppressed and 1..k-1 carry the primary symbol); with one
  symbol for both: >= 1;
* a count no file shows: >= 0;

and callers may narrow or widen these per cell (a withheld panel row shows
no symbol per count, so each of its counts is only >= 0).

The **interval audit** computes, for a suppressed cell u, the smallest and
largest value of ``x_u`` over all real vectors satisfying the equations and
the intervals (two linear programmes, HiGHS through
:func:`scipy.optimize.linprog`). The cell is *exposed* when that range holds
fewer than two integers although its own interval holds two or more, unless
the cell is 0: the policy shows zeros (a zero is not a small count), so a
hidden cell the equations pin at 0 discloses nothing the policy would not
publish (e.g. arms of 0/1 and 0/2 patients below a national 0 events: the
arms' events are known to be 0, their patients are not). Since
the true table is feasible, one programme usually suffices: the cell is safe
as soon as a feasible table puts it one away from its true value.

**Secondary suppression** (:func:`protect_linked`): while a cell is exposed,
suppress one more shown non-zero unit that shares an equation with it (or,
failing that, with an unknown cell joined to it), trying the cheapest first
and taking the first that makes the cell safe, else the one that widens its
range most. Suppressing a cell replaces a known value by an interval that
contains it, so no range ever narrows: a cell found safe stays safe and only
the exposed and newly suppressed cells are audited again. Every step
suppresses one more unit, so the loop ends.

Why by hand: tau-ARGUS (Hundepool et al. 2012) is the reference
implementation of protection intervals but is a Java/C++ desktop program
with no Python interface; sdcTable (R) likewise. The audit itself is only
linear programming, which SciPy's HiGHS does well.

References
----------
Hundepool A, Domingo-Ferrer J, Franconi L, Giessing S, Schulte Nordholt E,
Spicer K, de Wolf P-P (2012). *Statistical Disclosure Control*. Wiley,
§4.3-4.4 (the attacker's linear-programming problem; protection intervals).

Fischetti M, Salazar J-J (2001). Solving the cell suppression problem on
tabular data with linear constraints. *Management Science* 47(7), 1008-1027.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

from rp2pr_eval.presentation.disclosure.policy import DisclosurePolicy

#: Slack allowed on the LP's optimum before a value is taken as reached.
TOLERANCE = 1e-6
#: Candidates tried (each one linear programme) before the widest is taken.
MAX_TRIES = 12


@dataclass(eq=False)
class LinkedCounts:
    """Counts, the equations a reader knows, and who shows what.

    Attributes
    ----------
    values : numpy.ndarray
        Non-negative integer counts, one per cell.
    equations : list of (indices, coefficients)
        Each equation says ``sum(coefficients * values[indices]) == 0``.
    published : numpy.ndarray of bool
        Cells some file shows unless suppressed; the others no one shows
        (known to the reader only as >= 0, or ``hidden_low``).
    unit : numpy.ndarray of int
        Cells with the same unit are suppressed together (a panel row:
        numerator, denominator and non-events). Default: one unit per cell.
    cost : numpy.ndarray of float
        Order in which units are chosen for secondary suppression (lowest
        first; ties by position). Default: the cell's value.
    primary_bounds, secondary_bounds : (low, high) arrays, optional
        What a reader knows of a cell suppressed as primary / secondary
        (see the module docstring for the defaults). ``high = inf`` for none.
    hidden_low : numpy.ndarray, optional
        Lower bound of an unpublished cell (default 0).
    suppressible : numpy.ndarray of bool, optional
        Published cells that may be suppressed to protect others (default
        all); a known total published elsewhere is published but not
        suppressible here.
    """

    values: np.ndarray
    equations: list[tuple[np.ndarray, np.ndarray]]
    published: np.ndarray
    unit: np.ndarray | None = None
    cost: np.ndarray | None = None
    primary_bounds: tuple[np.ndarray, np.ndarray] | None = None
    secondary_bounds: tuple[np.ndarray, np.ndarray] | None = None
    hidden_low: np.ndarray | None = None
    suppressible: np.ndarray | None = None
    _matrix: sparse.csr_matrix | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.int64)
        n = self.values.size
        if (self.values < 0).any():
            raise ValueError("LinkedCounts: counts must be non-negative")
        self.published = np.asarray(self.published, dtype=bool)
        self.unit = np.arange(n) if self.unit is None else np.asarray(self.unit, dtype=np.int64)
        self.cost = self.values.astype(float) if self.cost is None else np.asarray(self.cost, dtype=float)
        self.suppressible = (np.ones(n, dtype=bool) if self.suppressible is None
                             else np.asarray(self.suppressible, dtype=bool))
        rows, cols, data = [], [], []
        for r, (idx, coef) in enumerate(self.equations):
            idx, coef = np.asarray(idx, dtype=np.int64), np.asarray(coef, dtype=float)
            if int(np.dot(coef, self.values[idx])) != 0:
                raise ValueError(f"LinkedCounts: equation {r} does not hold for the counts")
            rows += [r] * idx.size
            cols += idx.tolist()
            data += coef.tolist()
        self._matrix = sparse.csr_matrix((data, (rows, cols)), shape=(len(self.equations), n))

    @property
    def matrix(self) -> sparse.csr_matrix:
        """The equations as a sparse matrix ``A`` with ``A @ values == 0``."""
        assert self._matrix is not None
        return self._matrix


def _reader_bounds(lc: LinkedCounts, primary: np.ndarray, supp: np.ndarray,
                   policy: DisclosurePolicy) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the interval a reader knows (see the module docstring)."""
    v = lc.values.astype(float)
    k = policy.threshold
    n = v.size
    low, high = v.copy(), v.copy()
    if policy.rounding is not None and policy.rounding > 1:
        b = policy.rounding
        shown_value = ((lc.values + b // 2) // b) * b
        low = np.maximum(shown_value - b // 2, 0).astype(float)
        high = (shown_value + math.ceil(b / 2) - 1).astype(float)
        low = np.where(shown_value > 0, np.maximum(low, k), 0.0)
        high = np.where(lc.values == 0, 0.0, high)   # a shown 0 is an exact zero
    p_low, p_high = lc.primary_bounds or (np.full(n, 1.0), np.full(n, float(k - 1)))
    distinct = policy.symbol != policy.secondary_symbol
    s_low, s_high = lc.secondary_bounds or (np.full(n, float(k) if distinct else 1.0), np.full(n, np.inf))
    hidden_low = np.zeros(n) if lc.hidden_low is None else np.asarray(lc.hidden_low, dtype=float)
    sec = supp & ~primary
    low = np.where(primary, p_low, np.where(sec, s_low, low))
    high = np.where(primary, p_high, np.where(sec, s_high, high))
    unpublished = ~lc.published
    low = np.where(unpublished, hidden_low, low)
    high = np.where(unpublished, np.inf, high)
    return low, high


class _Problem:
    """The reader's linear programme for one suppression state."""

    def __init__(self, lc: LinkedCounts, primary: np.ndarray, supp: np.ndarray, policy: DisclosurePolicy):
        low, high = _reader_bounds(lc, primary, supp, policy)
        self.low, self.high = low, high
        free = low != high
        self.free = np.flatnonzero(free)
        self.position = -np.ones(lc.values.size, dtype=np.int64)
        self.position[self.free] = np.arange(self.free.size)
        a = lc.matrix
        fixed = np.where(free, 0.0, low)
        a_free = a[:, self.free]
        keep = np.asarray(a_free.getnnz(axis=1) > 0).ravel()
        self.a_eq = a_free[keep]
        self.b_eq = -(a @ fixed)[keep]
        self.bounds = [(low[i], None if math.isinf(high[i]) else high[i]) for i in self.free]

    def extreme(self, cell: int, sense: int) -> float:
        """min (sense=+1) or max (sense=-1) of the cell over the feasible set; ±inf when unbounded."""
        pos = self.position[cell]
        if pos < 0:
            return float(self.low[cell])
        c = np.zeros(self.free.size)
        c[pos] = sense
        if self.a_eq.shape[0] == 0:
            lo, hi = self.bounds[pos]
            return float(lo if sense > 0 else (np.inf if hi is None else hi))
        res = linprog(c, A_eq=self.a_eq, b_eq=self.b_eq, bounds=self.bounds, method="highs")
        if res.status == 3:
            return -np.inf if sense > 0 else np.inf
        if res.status != 0:  # the true table is feasible, so this is numerical trouble: assume the worst
            return float(self.low[cell]) if sense < 0 else float(self.high[cell])
        return float(res.fun) * sense

    def cell_range(self, cell: int) -> tuple[float, float]:
        return self.extreme(cell, +1), self.extreme(cell, -1)


def _integers(low: float, high: float) -> float:
    """How many integers lie in [low, high] (inf when unbounded)."""
    if math.isinf(high) or math.isinf(low):
        return math.inf
    return math.floor(high + TOLERANCE) - math.ceil(low - TOLERANCE) + 1


def _needs(low: float, high: float) -> bool:
    """A cell must have two possible values unless its own interval has fewer."""
    return _integers(low, high) >= 2


def _safe(problem: _Problem, cell: int, value: int) -> bool:
    """At least two integers in the cell's feasible range (or fewer in its own interval), or a zero.

    A cell whose true value is 0 is safe whatever the reader derives: the
    policy publishes zeros (only 1..k-1 are suppressed), so a reader who pins
    a hidden cell at 0 learns nothing the policy would not show.
    """
    if value == 0:
        return True
    if not _needs(problem.low[cell], problem.high[cell]):
        return True
    if problem.extreme(cell, -1) >= value + 1 - TOLERANCE:
        return True
    if problem.extreme(cell, +1) <= value - 1 + TOLERANCE:
        return True
    return False


def feasible_ranges(lc: LinkedCounts, primary: np.ndarray, suppressed: np.ndarray,
                    policy: DisclosurePolicy, cells: Sequence[int] | None = None) -> np.ndarray:
    """The interval audit: ``[low, high]`` of each suppressed cell over the reader's feasible tables.

    Parameters
    ----------
    lc : LinkedCounts
    primary, suppressed : numpy.ndarray of bool
        Cells suppressed as primary, and all suppressed cells.
    policy : DisclosurePolicy
    cells : sequence of int, optional
        Cells to audit (default every suppressed and every unpublished cell).

    Returns
    -------
    numpy.ndarray
        Shape (len(cells), 3): cell, low, high (``inf`` when unbounded).
    """
    problem = _Problem(lc, primary, suppressed, policy)
    if cells is None:
        cells = np.flatnonzero(suppressed | ~lc.published)
    return np.array([(c, *problem.cell_range(int(c))) for c in cells], dtype=float).reshape(-1, 3)


def exposed_cells(lc: LinkedCounts, primary: np.ndarray, suppressed: np.ndarray,
                  policy: DisclosurePolicy, cells: Sequence[int] | None = None) -> list[int]:
    """Suppressed cells whose feasible range holds fewer than two integers (see the module docstring)."""
    problem = _Problem(lc, primary, suppressed, policy)
    cells = np.flatnonzero(suppressed) if cells is None else cells
    return [int(c) for c in cells if not _safe(problem, int(c), int(lc.values[c]))]


def _neighbours(lc: LinkedCounts, cell: int, unknown: np.ndarray, allowed: np.ndarray) -> list[int]:
    """Allowed cells sharing an equation with ``cell``; failing that, with unknown cells joined to it."""
    a = lc.matrix
    at = a.T.tocsr()
    seen_eq: set[int] = set()
    seen_cells = {cell}
    frontier = [cell]
    while frontier:
        eqs = {int(e) for c in frontier for e in at[c].indices} - seen_eq
        if not eqs:
            return []
        seen_eq |= eqs
        cells = {int(c) for e in eqs for c in a[e].indices} - seen_cells
        found = sorted(c for c in cells if allowed[c])
        if found:
            return found
        seen_cells |= cells
        frontier = [c for c in cells if unknown[c]]
    return []


def protect_linked(
    lc: LinkedCounts,
    policy: DisclosurePolicy,
    *,
    suppressed: np.ndarray | None = None,
    primary: np.ndarray | None = None,
    audit: Callable[[np.ndarray], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Primary suppression, then secondary suppression until no suppressed cell is exposed.

    Parameters
    ----------
    lc : LinkedCounts
    policy : DisclosurePolicy
    suppressed : numpy.ndarray of bool, optional
        Cells already suppressed (e.g. by a faster heuristic, or because
        another table hides them); a unit is suppressed whole.
    primary : numpy.ndarray of bool, optional
        Primary cells; default: published cells in 1..k-1 (and the other
        cells of their units).
    audit : callable, optional
        Called with the suppression mask after each added unit (tests).

    Returns
    -------
    (primary, suppressed) : numpy.ndarray of bool

    Raises
    ------
    RuntimeError
        No shown cell is left whose suppression could protect an exposed
        cell (the equations and bounds pin it whatever is hidden): an
        internal limit, reported rather than a table that discloses.
    """
    values = lc.values
    unit = lc.unit
    if primary is None:
        small = lc.published & lc.suppressible & (values >= 1) & (values < policy.threshold)
        primary = np.isin(unit, unit[small])
    supp = primary.copy() if suppressed is None else (suppressed | primary)
    supp = np.isin(unit, unit[supp]) & lc.published
    verified: set[int] = set()
    while True:
        pending = [int(c) for c in np.flatnonzero(supp) if int(c) not in verified]
        if not pending:
            return primary, supp
        problem = _Problem(lc, primary, supp, policy)
        exposed = None
        for c in pending:
            if _safe(problem, c, int(values[c])):
                verified.add(c)
            else:
                exposed = c
                break
        if exposed is None:
            return primary, supp
        unknown = supp | ~lc.published
        nonzero_unit = np.isin(unit, unit[values > 0])
        allowed = lc.published & ~supp & nonzero_unit & ~np.isin(unit, unit[~lc.suppressible])
        candidates = _neighbours(lc, exposed, unknown, allowed)
        if not candidates:
            raise RuntimeError(f"disclosure: no shown count is left to protect cell {exposed} (internal limit)")
        by_unit: dict[int, int] = {}
        for c in candidates:
            u = int(unit[c])
            if u not in by_unit or lc.cost[c] < lc.cost[by_unit[u]]:
                by_unit[u] = c
        order = sorted(by_unit.items(), key=lambda item: (lc.cost[item[1]], item[1]))
        best, best_width = None, -1.0
        for u, _ in order[:MAX_TRIES]:
            trial = supp | (unit == u)
            trial_problem = _Problem(lc, primary, trial, policy)
            if _safe(trial_problem, exposed, int(values[exposed])):
                best = u
                break
            width = _integers(*trial_problem.cell_range(exposed))
            if width > best_width:
                best, best_width = u, width
        supp = supp | (unit == best)
        if audit is not None:
            audit(supp)


def table_equations(n_rows: int, n_cols: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Equations of an (n_rows+1) x (n_cols+1) table with totals, cells numbered row-major.

    Row ``n_rows`` holds the column totals, column ``n_cols`` the row totals.
    """
    width = n_cols + 1
    eqs = []
    for i in range(n_rows + 1):
        idx = np.array([i * width + j for j in range(n_cols + 1)])
        coef = np.ones(n_cols + 1)
        coef[-1] = -1
        eqs.append((idx, coef))
    for j in range(n_cols + 1):
        idx = np.array([i * width + j for i in range(n_rows + 1)])
        coef = np.ones(n_rows + 1)
        coef[-1] = -1
        eqs.append((idx, coef))
    return eqs


__all__ = ["LinkedCounts", "exposed_cells", "feasible_ranges", "protect_linked", "table_equations"]
