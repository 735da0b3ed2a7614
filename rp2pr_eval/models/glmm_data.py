"""Data preparation for the random-intercept logistic GLMM (:mod:`rp2pr_eval.models.glmm`).

Checks and codes ``X``, ``y``, ``groups`` and ``trials``, sorts rows by group, collapses identical
(group, x) rows into binomial rows when that halves the data, and holds the constants of the
likelihood; plus the tall matrix-vector products the likelihood uses.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import linalg, special

from rp2pr_eval.errors import DataError

__all__ = ["GlmmData", "aggregate_rows", "as_matrix", "check_rank", "factorize_labels", "first_rows", "gram",
           "gram_blocked", "group_values", "mv", "prepare_data", "tmv"]

# Tall matrix-vector products go through einsum, and the weighted cross-product in
# row blocks: OpenBLAS's threaded gemv on a tall 80k x 15 matrix was 10-20 times
# slower than a single-threaded loop when the two cores were shared.

@dataclass(frozen=True, slots=True)
class GlmmData:
    X: np.ndarray  # (m, k) rows sorted by group (possibly aggregated)
    succ: np.ndarray  # (m,) successes
    trials: np.ndarray  # (m,) trials
    gidx: np.ndarray  # (m,) group code, sorted
    S: sp.csr_matrix  # (G, m) group indicator for segment sums
    n_groups: int
    n_obs: int
    const: float  # sum of log C(n, y) over the original rows
    ll_saturated: float
    names: tuple[str, ...]
    labels: np.ndarray
    bernoulli: bool


def as_matrix(X: object, names: object) -> tuple[np.ndarray, tuple[str, ...]]:
    if isinstance(X, pd.DataFrame):
        cols = tuple(str(c) for c in X.columns)
        bad = [
            c for c in X.columns
            if not (pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c]))
        ]
        if bad:
            raise DataError(f"X columns {bad} are not numeric; encode them as indicators first")
        arr = X.to_numpy(dtype=float, na_value=np.nan)
    else:
        cols = None
        try:
            arr = np.asarray(X, dtype=float)
        except (TypeError, ValueError) as exc:
            raise DataError(f"X must be a numeric array: {exc}") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"X must be two-dimensional (rows x columns); got {arr.ndim} dimensions")
    if arr.shape[1] == 0:
        raise DataError("X has no columns; include at least an intercept column of ones")
    if names is None:
        names = cols if cols is not None else tuple(f"x{j}" for j in range(arr.shape[1]))
    names = tuple(str(s) for s in names)
    if len(names) != arr.shape[1]:
        raise DataError(f"names has {len(names)} entries but X has {arr.shape[1]} columns")
    if len(set(names)) != len(names):
        dup = sorted({s for s in names if names.count(s) > 1})
        raise DataError(f"names must be unique; repeated: {dup}")
    return np.ascontiguousarray(arr), names


def first_rows(mask: np.ndarray, at_most: int = 5) -> list[int]:
    return np.flatnonzero(mask)[:at_most].tolist()


def prepare_data(X, y, groups, trials, names) -> GlmmData:
    Xa, names = as_matrix(X, names)
    n = Xa.shape[0]
    if n == 0:
        raise DataError("no rows: X, y and groups are empty")
    try:
        ya = np.asarray(y, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise DataError(f"y must be numeric: {exc}") from None
    if ya.shape[0] != n:
        raise DataError(f"y has {ya.shape[0]} values but X has {n} rows")
    garr = group_values(groups, n)

    bad = ~np.isfinite(Xa)
    if bad.any():
        cols = [names[j] for j in np.flatnonzero(bad.any(axis=0))]
        raise DataError(
            f"X has {int(bad.sum())} missing or non-finite values in column(s) {cols} "
            f"(first rows {first_rows(bad.any(axis=1))}); drop or impute them first"
        )
    if not np.isfinite(ya).all():
        raise DataError(
            f"y has {int((~np.isfinite(ya)).sum())} missing or non-finite values "
            f"(first rows {first_rows(~np.isfinite(ya))})"
        )
    if trials is None:
        na = np.ones(n)
        off = (ya != 0) & (ya != 1)
        if off.any():
            raise DataError(
                f"y must be 0/1 when trials is None; found {np.unique(ya[off])[:5].tolist()} "
                f"(first rows {first_rows(off)}); pass trials= for binomial rows"
            )
    else:
        try:
            na = np.asarray(trials, dtype=float).ravel()
        except (TypeError, ValueError) as exc:
            raise DataError(f"trials must be numeric: {exc}") from None
        if na.shape[0] != n:
            raise DataError(f"trials has {na.shape[0]} values but X has {n} rows")
        off = ~np.isfinite(na) | (na < 1) | (np.abs(na - np.round(na)) > 1e-8)
        if off.any():
            raise DataError(
                f"trials must be positive whole numbers (first offending rows {first_rows(off)})"
            )
        off = (ya < 0) | (ya > na) | (np.abs(ya - np.round(ya)) > 1e-8)
        if off.any():
            raise DataError(
                f"y must be whole numbers of successes between 0 and trials "
                f"(first offending rows {first_rows(off)})"
            )
        na = np.round(na)
        ya = np.round(ya)

    codes, labels = factorize_labels(garr)
    if (codes < 0).any():
        raise DataError(
            f"groups has {int((codes < 0).sum())} missing labels (first rows {first_rows(codes < 0)})"
        )
    G = len(labels)
    if G < 2:
        raise DataError(f"a random intercept needs at least 2 groups; groups has {G} distinct label(s)")
    if ya.sum() == 0:
        raise DataError("the outcome has no events (every y is 0): the model cannot be estimated")
    if ya.sum() == na.sum():
        raise DataError("every trial is an event (y == trials in every row): the model cannot be estimated")

    check_rank(Xa, names)

    const = float(np.sum(special.gammaln(na + 1) - special.gammaln(ya + 1) - special.gammaln(na - ya + 1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = ya / na
        sat = special.xlogy(ya, p) + special.xlogy(na - ya, 1 - p)
    ll_sat = const + float(sat.sum())

    order = np.argsort(codes, kind="stable")
    gs, Xs, ys, ns = codes[order], Xa[order], ya[order], na[order]
    gs, Xs, ys, ns = aggregate_rows(gs, Xs, ys, ns)
    m = len(gs)
    S = sp.csr_matrix((np.ones(m), (gs, np.arange(m))), shape=(G, m))
    return GlmmData(
        X=np.ascontiguousarray(Xs),
        succ=ys,
        trials=ns,
        gidx=gs,
        S=S,
        n_groups=G,
        n_obs=n,
        const=const,
        ll_saturated=ll_sat,
        names=names,
        labels=labels,
        bernoulli=bool(np.all(ns == 1)),
    )


def group_values(groups, n: int) -> np.ndarray:
    """One label per row as a 1-D array (labels may be any hashable, tuples included)."""
    if (
        isinstance(groups, tuple)
        and len(groups) == 2
        and n != 2
        and all(hasattr(gg, "__len__") and not isinstance(gg, str) and len(gg) == n for gg in groups)
    ):
        raise NotImplementedError(
            "nested random intercepts (groups=(outer, inner)) are not implemented; "
            "pass one grouping variable"
        )
    if isinstance(groups, (pd.Series, pd.Index)):
        values = groups.to_numpy()
    elif isinstance(groups, np.ndarray):
        if groups.ndim != 1:
            raise NotImplementedError(
                f"groups must be one label per row (1-D); got a {groups.ndim}-D array. "
                "Nested random intercepts are not implemented"
            )
        values = groups
    else:
        try:
            items = list(groups)
        except TypeError:
            raise DataError(
                f"groups must be a sequence of labels, one per row; got {type(groups).__name__}"
            ) from None
        values = np.empty(len(items), dtype=object)
        values[:] = items
    if len(values) != n:
        raise DataError(f"groups has {len(values)} values but X has {n} rows")
    return values


def factorize_labels(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    try:
        codes, uniques = pd.factorize(values, sort=True)
    except TypeError:  # labels of mixed, unorderable types
        codes, uniques = pd.factorize(values, sort=False)
    labels = np.empty(len(uniques), dtype=object)
    labels[:] = list(uniques)
    return np.asarray(codes, dtype=np.int64), labels


def check_rank(X: np.ndarray, names: tuple[str, ...]) -> None:
    """Raise DataError naming the columns of X that are linear combinations of others.

    Fast path: eigenvalues of the column-normalised cross-product matrix. When that
    is nearly singular, columns are taken in order (as R's ``lm`` does) and a column
    is reported when it lies in the span of the earlier columns kept.
    """
    norms = np.sqrt(np.einsum("ij,ij->j", X, X))
    zero = norms == 0
    if zero.any():
        raise DataError(f"X column(s) {[names[j] for j in np.flatnonzero(zero)]} are all zero")
    C = gram(X / norms, np.ones(len(X)), block=1024)
    ev = linalg.eigvalsh(C)
    if ev[0] > 1e-11 * ev[-1]:
        return
    kept: list[int] = []
    problems = []
    for j in range(C.shape[0]):
        if kept:
            L = linalg.cholesky(C[np.ix_(kept, kept)], lower=True)
            c = linalg.solve_triangular(L, C[kept, j], lower=True)
            resid = C[j, j] - c @ c
            if resid < 1e-9 * C[j, j]:
                coef = linalg.solve_triangular(L.T, c, lower=False)
                used = [names[kept[i]] for i in np.flatnonzero(np.abs(coef) > 1e-6)]
                problems.append(f"{names[j]!r} = combination of {used}")
                continue
        kept.append(j)
    if problems:
        dropped = [names[j] for j in range(C.shape[0]) if j not in kept]
        raise DataError(
            f"X is rank deficient (rank {len(kept)} of {C.shape[0]} columns): column(s) {dropped} "
            f"are linear combinations of earlier columns ({'; '.join(problems)}); drop them"
        )


def aggregate_rows(g, X, y, n):
    """Collapse identical (group, x) rows into binomial rows when that halves the rows."""
    m = len(g)
    if m < 1000:
        return g, X, y, n
    frame = pd.DataFrame(X)
    if frame.nunique().max() > m // 4:
        return g, X, y, n
    frame.insert(0, "_g", g)
    key = frame.groupby(list(frame.columns), sort=True).ngroup().to_numpy()
    n_keys = int(key.max()) + 1
    if n_keys > m // 2:
        return g, X, y, n
    first = np.full(n_keys, -1, dtype=np.int64)
    first[key[::-1]] = np.arange(m)[::-1]
    ya = np.bincount(key, weights=y, minlength=n_keys)
    na = np.bincount(key, weights=n, minlength=n_keys)
    ga, Xa = g[first], X[first]
    order = np.argsort(ga, kind="stable")
    return ga[order], Xa[order], ya[order], na[order]


def mv(X: np.ndarray, v: np.ndarray) -> np.ndarray:
    """X @ v."""
    return np.einsum("ij,j->i", X, v)


def tmv(X: np.ndarray, v: np.ndarray) -> np.ndarray:
    """X.T @ v."""
    return np.einsum("ij,i->j", X, v)


def gram(X: np.ndarray, w: np.ndarray, block: int = 4096) -> np.ndarray:
    """X' diag(w) X, accumulated over row blocks."""
    out = np.zeros((X.shape[1], X.shape[1]))
    for a in range(0, X.shape[0], block):
        Xa = X[a : a + block]
        out += (Xa.T * w[a : a + block]) @ Xa
    return 0.5 * (out + out.T)


def gram_blocked(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """X' diag(w) X in blocks of 1,024 rows: small enough that OpenBLAS stays single-threaded
    (4,096-row blocks were 10 times slower when the two cores were shared)."""
    return gram(X, w, block=1024)
