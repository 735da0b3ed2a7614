"""Input checks of :func:`rp2pr_eval.models.cox.fit_cox`: design, times, events, cluster and stratum labels, rank."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.linalg import lapack

from rp2pr_eval._arrays import check_design, numeric_vector
from rp2pr_eval.errors import DataError

__all__ = ["check_X", "check_event", "check_groups", "check_labels", "check_rank", "check_time", "numeric_1d"]

#: A column whose squared multiple correlation with the others exceeds
#: ``1 - RANK_TOL`` is treated as linearly dependent.
RANK_TOL = 1e-10


def check_X(X, names):
    return check_design(X, names, allow_vector=True)


def numeric_1d(v, n_obs, what):
    return numeric_vector(v, n_obs, what)


def check_time(time, n_obs):
    ta = numeric_1d(time, n_obs, "time")
    neg = ta < 0
    if neg.any():
        raise DataError(
            f"time: {int(neg.sum())} negative values {np.unique(ta[neg])[:5].tolist()} at rows "
            f"(0-based) {np.flatnonzero(neg)[:5].tolist()}; follow-up times must be >= 0"
        )
    return ta


def check_event(event, n_obs):
    da = numeric_1d(event, n_obs, "event")
    bad = (da != 0.0) & (da != 1.0)
    if bad.any():
        raise DataError(
            f"event: expected 0/1 values (1 = died, 0 = censored); found "
            f"{np.unique(da[bad])[:5].tolist()} at rows (0-based) {np.flatnonzero(bad)[:5].tolist()}"
        )
    if da.sum() == 0:
        raise DataError(f"event: no events among the {n_obs} rows; a Cox model cannot be fitted")
    return da


def check_labels(labels, n_obs, what):
    """Integer codes of stratum labels (no missing labels)."""
    ser = labels.reset_index(drop=True) if isinstance(labels, pd.Series) else pd.Series(np.asarray(labels))
    if ser.ndim != 1 or len(ser) != n_obs:
        raise DataError(f"{what}: expected a 1-D array of length {n_obs} (rows of X), got {len(ser)}")
    codes, _ = pd.factorize(ser, use_na_sentinel=True)
    if (codes < 0).any():
        raise DataError(f"{what}: {int((codes < 0).sum())} missing labels; first rows (0-based): "
                        f"{np.flatnonzero(codes < 0)[:5].tolist()}")
    return np.asarray(codes, dtype=np.intp)


def check_groups(groups, n_obs):
    ser = groups.reset_index(drop=True) if isinstance(groups, pd.Series) else None
    if ser is None:
        arr = np.asarray(groups)
        if arr.ndim != 1:
            raise DataError(f"groups: expected a 1-D array, got shape {arr.shape}")
        ser = pd.Series(arr)
    if len(ser) != n_obs:
        raise DataError(f"groups: expected length {n_obs} (rows of X), got {len(ser)}")
    codes, uniques = pd.factorize(ser, use_na_sentinel=True)
    missing = codes < 0
    if missing.any():
        raise DataError(
            f"groups: {int(missing.sum())} missing labels; first rows (0-based): "
            f"{np.flatnonzero(missing)[:5].tolist()}"
        )
    if len(uniques) < 2:
        raise DataError(
            f"groups: {len(uniques)} cluster; the cluster-robust variance needs at least two"
        )
    return np.asarray(codes, dtype=np.intp), list(uniques)


def check_rank(Xc, names):
    """Reject constant and (numerically) linearly dependent columns of the centred design.

    Pivoted Cholesky (LAPACK ``dpstrf``) of the correlation matrix: a column
    whose squared multiple correlation with the columns before it exceeds
    ``1 - RANK_TOL`` is dependent.
    """
    ss = np.einsum("ij,ij->j", Xc, Xc)
    const = np.flatnonzero(ss <= 0.0)
    if const.size:
        raise DataError(
            f"X: column(s) {[names[j] for j in const]} are constant; a constant (such as an "
            "intercept) is not identifiable in a Cox model"
        )
    sd = np.sqrt(ss)
    corr = (Xc.T @ Xc) / np.outer(sd, sd)
    _, piv, rank, _ = lapack.dpstrf(corr, tol=RANK_TOL)
    if rank < Xc.shape[1]:
        dropped = [names[j] for j in piv[rank:] - 1]
        raise DataError(
            f"X: the centred design matrix has rank {rank} < {Xc.shape[1]} columns; linearly "
            f"dependent column(s) include {dropped} (after centring, so a column may be a linear "
            "combination of the others plus a constant)"
        )
