"""Input checks and cluster bookkeeping for :mod:`rp2pr_eval.models.linear` (design, response, weights,
cluster codes with rows sorted by cluster, the rank check, constraint matrices)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rp2pr_eval.errors import DataError

__all__ = ["ClusterGroups", "as_constraints", "as_design", "as_groups", "as_vector", "as_weights", "check_finite",
           "check_level", "qr_full_rank", "readonly"]

RANK_TOL = 1e-7  # |R_ii| relative to the column norm below which a column is aliased (as R lm)


@dataclass(frozen=True, slots=True, eq=False)
class ClusterGroups:
    """Cluster codes with rows sorted by cluster, for segment sums and blocks."""

    codes: np.ndarray  # (n,) integer codes 0..G-1
    labels: np.ndarray  # (G,) original labels
    order: np.ndarray  # rows sorted by cluster (stable)
    starts: np.ndarray  # (G,) first position of each cluster in ``order``
    sizes: np.ndarray  # (G,)
    blocks: tuple  # ((clusters, rows), ...) one per cluster size; rows has shape (m, size)

    @property
    def n_groups(self) -> int:
        return len(self.sizes)

    def sum(self, a: np.ndarray) -> np.ndarray:
        """Per-cluster sums of the rows of ``a`` (first axis): shape (G, ...)."""
        return np.add.reduceat(a[self.order], self.starts, axis=0)

    def cross(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """Per-cluster cross products ``A_j' B_j`` of (n, p) and (n, r) arrays: (G, p, r)."""
        out = np.empty((self.n_groups, A.shape[1], B.shape[1]))
        for cl, rows in self.blocks:
            out[cl] = np.swapaxes(A[rows], 1, 2) @ B[rows]
        return out


def as_design(X, names) -> tuple[np.ndarray, tuple[str, ...]]:
    cols = list(X.columns) if isinstance(X, pd.DataFrame) else None
    try:
        Xa = np.array(X, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"X must be numeric: {exc}") from exc
    if Xa.ndim != 2:
        raise DataError(f"X must be 2-dimensional (n, k); got shape {Xa.shape}")
    n, k = Xa.shape
    if k == 0:
        raise DataError("X has no columns")
    if names is None:
        names = cols if cols is not None else [f"x{i}" for i in range(k)]
    names = tuple(str(s) for s in names)
    if len(names) != k:
        raise ValueError(f"names has {len(names)} entries but X has {k} columns")
    if len(set(names)) != k:
        raise ValueError(f"names must be unique; got {list(names)}")
    check_finite(Xa, "X", names)
    if n <= k:
        raise DataError(f"need more observations than columns of X; got n={n}, k={k}")
    return Xa, names


def as_vector(v, what: str, n: int) -> np.ndarray:
    try:
        a = np.array(v, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be numeric: {exc}") from exc
    if a.ndim != 1 or a.shape[0] != n:
        raise DataError(f"{what} must have shape ({n},); got {a.shape}")
    check_finite(a, what)
    return a


def as_weights(weights, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = as_vector(weights, "weights", n)
    bad = np.flatnonzero(w <= 0)
    if bad.size:
        raise DataError(f"weights must be positive; {bad.size} are not, first at rows "
                        f"{bad[:5].tolist()} (values {w[bad[:5]].tolist()})")
    return w / w.mean()


def check_finite(a: np.ndarray, what: str, names=None) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1) if a.ndim == 2 else bad)
        msg = f"{what} contains NaN or infinite values in {rows.size} row(s), first {rows[:5].tolist()}"
        if a.ndim == 2 and names is not None:
            msg += f" (columns {[names[j] for j in np.flatnonzero(bad.any(axis=0))]})"
        raise DataError(msg)


def as_groups(cluster, n: int) -> ClusterGroups:
    if cluster is None:
        codes, labels = np.arange(n), np.arange(n)
    else:
        vals = np.asarray(cluster, dtype=object) if not isinstance(cluster, pd.Series) else cluster.to_numpy()
        if vals.ndim != 1 or vals.shape[0] != n:
            raise DataError(f"cluster must have shape ({n},); got {np.shape(vals)}")
        codes, labels = pd.factorize(vals, use_na_sentinel=True)
        missing = np.flatnonzero(codes < 0)
        if missing.size:
            raise DataError(f"cluster has {missing.size} missing label(s), "
                            f"first at rows {missing[:5].tolist()}")
        labels = np.asarray(labels, dtype=object)
    G = len(labels)
    if G < 2:
        raise DataError(f"cluster-robust variance needs at least 2 clusters; got {G}")
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=G)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    blocks = []
    for s in np.unique(sizes):
        cl = np.flatnonzero(sizes == s)
        blocks.append((cl, order[starts[cl][:, None] + np.arange(s)]))
    return ClusterGroups(codes=codes, labels=labels, order=order, starts=starts, sizes=sizes,
                   blocks=tuple(blocks))


def qr_full_rank(Xs: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """QR of the whitened design; DataError naming the collinear columns if rank deficient.

    A column is aliased when its residual norm after projection on the preceding
    columns, |R_ii|, is below 1e-7 of its own norm (R's ``lm`` rule).
    """
    norms = np.linalg.norm(Xs, axis=0)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise DataError(f"X is rank deficient: column(s) {[names[j] for j in zero]} are all zero")
    q, r = np.linalg.qr(Xs)
    if np.all(np.abs(np.diag(r)) >= RANK_TOL * norms):
        return q, r
    _, s, vt = np.linalg.svd(Xs / norms, full_matrices=False)
    small = s < RANK_TOL * s[0]
    small[-1] = True  # the QR found a dependency
    involved = np.flatnonzero((np.abs(vt[small]) > 1e-6).any(axis=0))
    raise DataError(
        f"X is rank deficient (rank {int((~small).sum())} < {Xs.shape[1]} columns): "
        f"collinear columns {[names[j] for j in involved]}")


def as_constraints(R, names: tuple[str, ...]) -> np.ndarray:
    k = len(names)
    if isinstance(R, str):
        R = [R]
    if isinstance(R, Sequence) and len(R) > 0 and all(isinstance(x, str) for x in R):
        unknown = [x for x in R if x not in names]
        if unknown:
            raise ValueError(f"unknown coefficient(s) {unknown}; have {list(names)}")
        return np.eye(k)[[names.index(x) for x in R]]
    C = np.atleast_2d(np.asarray(R, dtype=float))
    if C.ndim != 2 or C.shape[1] != k or C.shape[0] == 0:
        raise ValueError(f"R must have shape (q, {k}); got {np.shape(R)}")
    if not np.isfinite(C).all():
        raise ValueError("R contains NaN or infinite values")
    return C


def check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")


def readonly(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    a.setflags(write=False)
    return a
