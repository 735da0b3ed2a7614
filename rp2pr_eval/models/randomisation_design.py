"""Assignments and inputs for randomisation inference: re-randomisations of the units, assignment maps, checks."""
from __future__ import annotations

import itertools
import math
import operator

import numpy as np

from rp2pr_eval.errors import DataError
from rp2pr_eval.models.wild import as_rng, cluster_codes

__all__ = ["absorb_columns", "as_matrix", "assignment_map", "check_assignments", "pair_assignments", "response"]

# Draws are processed in chunks whose working arrays hold about this many float64
# elements (4 MB): small enough to stay in cache, which is faster than one big
# batch, and the peak memory is a small multiple of it, far below 1 GB.
CHUNK_ELEMENTS = 1 << 19

def pair_assignments(
    n_units: int,
    n_treated: int,
    n_draws: int,
    *,
    rng: np.random.Generator | int | None,
    observed: np.ndarray | None = None,
) -> tuple[np.ndarray, bool]:
    """Re-randomisations of ``n_treated`` of ``n_units`` units (ILCOP: 15 of 40 pairs).

    Parameters
    ----------
    n_units
        Number of randomisation units (pairs).
    n_treated
        Number of units assigned to intervention in every assignment.
    n_draws
        Maximum number of assignments wanted.
    rng
        ``numpy.random.Generator`` or seed (used only for Monte Carlo draws).
    observed
        Optional observed 0/1 assignment of length ``n_units``; it is checked
        to be a possible assignment of this design (``DataError`` otherwise).

    Returns
    -------
    assignments : numpy.ndarray
        ``int8`` matrix ``(D, n_units)`` of 0/1 with exactly ``n_treated`` ones per row.
    exact : bool
        ``True`` when all ``C(n_units, n_treated)`` assignments are enumerated.

    Notes
    -----
    *Exact*: when ``C(n_units, n_treated) ≤ n_draws`` every assignment is
    listed once (``itertools.combinations``, lexicographic order of the
    treated units), the observed one included; the randomisation p-value is
    then an exact share.

    *Monte Carlo*: otherwise ``n_draws`` assignments are drawn independently
    and uniformly from all ``C(n_units, n_treated)`` (each row the
    ``n_treated`` units with the smallest of ``n_units`` uniform keys).  Draws
    are *with* replacement and may coincide with the observed assignment: the
    observed assignment is not removed.  That keeps the draws and the observed
    assignment exchangeable under the null, so ``(1 + #{|T*| ≥ |T|}) / (1 + D)``
    is a valid p-value (Phipson & Smyth 2010).  ILCOP's ``C(40, 15) ≈ 4.0e10``
    assignments always take this branch.
    """
    n_units = operator.index(n_units)
    n_treated = operator.index(n_treated)
    n_draws = operator.index(n_draws)
    if n_units < 1 or not 0 <= n_treated <= n_units:
        raise ValueError(f"need 0 ≤ n_treated ≤ n_units and n_units ≥ 1; got {n_treated} of {n_units}")
    if n_draws < 1:
        raise ValueError(f"n_draws={n_draws} must be positive")
    if observed is not None:
        obs = np.asarray(observed)
        if obs.shape != (n_units,) or not np.isin(obs, (0, 1)).all() or int(obs.sum()) != n_treated:
            raise DataError(
                f"observed assignment must be 0/1 of length {n_units} with {n_treated} treated; "
                f"got shape {obs.shape} with {int(np.sum(obs == 1))} ones"
            )
    total = math.comb(n_units, n_treated)
    if total <= n_draws:
        out = np.zeros((total, n_units), dtype=np.int8)
        if n_treated:
            idx = np.fromiter(
                itertools.chain.from_iterable(itertools.combinations(range(n_units), n_treated)),
                dtype=np.intp,
                count=total * n_treated,
            ).reshape(total, n_treated)
            out[np.arange(total)[:, None], idx] = 1
        return out, True
    gen = as_rng(rng)
    out = np.zeros((n_draws, n_units), dtype=np.int8)
    chunk = max(1, CHUNK_ELEMENTS // n_units)
    for start in range(0, n_draws, chunk):
        stop = min(n_draws, start + chunk)
        keys = gen.random((stop - start, n_units))
        idx = np.argpartition(keys, n_treated - 1, axis=1)[:, :n_treated]
        out[np.arange(start, stop)[:, None], idx] = 1
    return out, False


def assignment_map(unit_index: np.ndarray, n_units: int, scale: np.ndarray | None = None) -> np.ndarray:
    """Linear map from a unit assignment to a row-level treatment column.

    Returns ``L`` of shape ``(N, n_units)`` with ``L[i, unit_index[i]] = scale[i]``
    (1 when ``scale`` is ``None``), so that ``L @ a`` is the column for
    assignment ``a``: ``treated`` is ``assignment_map(pair_of_row, 40)`` and
    ``treated × post`` is ``assignment_map(pair_of_row, 40, post)``.  Stack
    several with ``np.stack`` to pass them as ``treat_cols_builder``.
    """
    idx = np.asarray(unit_index)
    n_units = operator.index(n_units)
    if idx.ndim != 1 or idx.dtype.kind not in "iu" or (idx.size and (idx.min() < 0 or idx.max() >= n_units)):
        raise DataError(f"unit_index must be 1-D integers in 0..{n_units - 1}")
    values = np.ones(idx.shape[0]) if scale is None else np.asarray(scale, dtype=np.float64)
    if values.shape != idx.shape:
        raise DataError(f"scale must have shape {idx.shape}; got {values.shape}")
    out = np.zeros((idx.shape[0], n_units))
    out[np.arange(idx.shape[0]), idx] = values
    return out


def as_matrix(name: str, value: object, n_obs: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] != n_obs:
        raise DataError(f"{name} must have {n_obs} rows; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        rows = np.unique(np.nonzero(~np.isfinite(arr))[0])[:5].tolist()
        raise DataError(f"{name} has missing or infinite values (rows {rows})")
    return arr


def absorb_columns(absorb: object, n_obs: int) -> np.ndarray:
    if absorb is None:
        return np.zeros((n_obs, 0))
    if isinstance(absorb, (list, tuple)):
        blocks = []
        for labels in absorb:
            codes, n_levels = cluster_codes(labels, n_obs)
            dummies = np.zeros((n_obs, n_levels))
            dummies[np.arange(n_obs), codes] = 1.0
            blocks.append(dummies)
        return np.hstack(blocks) if blocks else np.zeros((n_obs, 0))
    return as_matrix("absorb", absorb, n_obs)


def check_assignments(assignments: object) -> np.ndarray:
    a = np.asarray(assignments)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] < 1:
        raise DataError(f"assignments must be a (draws × units) matrix; got shape {a.shape}")
    if a.dtype.kind in "iub":
        ok = a.size == 0 or (a.min() >= 0 and a.max() <= 1)
    else:
        ok = bool(((a == 0) | (a == 1)).all())
    if not ok:
        raise DataError("assignments must be 0/1")
    return a


def response(y: object) -> tuple[np.ndarray, int]:
    ya = np.asarray(y, dtype=np.float64)
    if ya.ndim != 1:
        raise DataError(f"y must be 1-D; got shape {ya.shape}")
    if not np.isfinite(ya).all():
        rows = np.nonzero(~np.isfinite(ya))[0][:5].tolist()
        raise DataError(f"y has missing or infinite values (rows {rows})")
    return ya, ya.shape[0]
