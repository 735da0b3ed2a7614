"""Array helpers shared across layers: the design-matrix validator of the array-level model cores (GEE,
Cox) and :func:`sorted_codes`, the integer coding of identifier columns used by the data checks and
the trust-level estimators."""
from __future__ import annotations

import numpy as np
import pandas as pd

from rp2pr_eval.errors import DataError


def check_design(X, names, *, allow_vector: bool = False) -> tuple[np.ndarray, tuple[str, ...]]:
    """A float copy of ``X`` (DataFrame or array) and its column names, or a clear error.

    Raises DataError for non-numeric, empty, non-2-D (1-D allowed with ``allow_vector``) or non-finite
    input (naming the columns and first rows); ValueError for names that do not fit the columns.
    """
    if names is None and isinstance(X, pd.DataFrame):
        names = [str(c) for c in X.columns]
    try:
        if isinstance(X, pd.DataFrame):  # nullable dtypes: pd.NA -> NaN
            Xa = X.to_numpy(dtype=float, na_value=np.nan, copy=True)
        else:
            Xa = np.array(X, dtype=float)  # a copy: callers' arrays are never modified
    except (TypeError, ValueError) as exc:
        raise DataError(f"X: expected a numeric matrix ({exc})") from exc
    if allow_vector and Xa.ndim == 1:
        Xa = Xa[:, None]
    if Xa.ndim != 2:
        raise DataError(f"X: expected a 2-D matrix, got an array of shape {Xa.shape}")
    n_obs, p = Xa.shape
    if n_obs == 0 or p == 0:
        raise DataError(f"X: empty design matrix of shape {Xa.shape}")
    if names is None:
        names_t = tuple(f"x{j}" for j in range(p))
    else:
        names_t = tuple(str(v) for v in names)
        if len(names_t) != p:
            raise ValueError(f"names has {len(names_t)} entries but X has {p} columns")
        if len(set(names_t)) != p:
            raise ValueError(f"names are not unique: {list(names_t)}")
    bad = ~np.isfinite(Xa)
    if bad.any():
        cols = [names_t[j] for j in np.flatnonzero(bad.any(axis=0))]
        rows = np.flatnonzero(bad.any(axis=1))
        raise DataError(
            f"X: {int(bad.sum())} missing or non-finite values in column(s) {cols[:10]}; "
            f"first rows (0-based): {rows[:5].tolist()}"
        )
    return Xa, names_t


def numeric_vector(v, n_obs: int, what: str, *, expected: str = "numeric values") -> np.ndarray:
    """A finite float vector of length ``n_obs`` from an array or Series (booleans as 0/1).

    Errors name ``what``, the shape expected, and the first rows that are missing or not finite;
    ``expected`` says what a non-numeric input should have been (e.g. "a 0/1 numeric outcome").
    """
    if isinstance(v, pd.Series) and v.dtype != bool:
        try:
            v = v.to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{what}: expected {expected} ({exc})") from exc
    arr = np.asarray(v)
    if arr.ndim != 1 or arr.shape[0] != n_obs:
        raise DataError(f"{what}: expected a 1-D array of length {n_obs} (rows of X), got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(float)
    try:
        arr = arr.astype(float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what}: expected {expected} ({exc})") from exc
    bad = ~np.isfinite(arr)
    if bad.any():
        raise DataError(
            f"{what}: {int(bad.sum())} missing or non-finite values; first rows (0-based): "
            f"{np.flatnonzero(bad)[:5].tolist()}"
        )
    return arr


def sorted_codes(values) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes and sorted distinct labels of a column: what ``pandas.factorize(values, sort=True)`` gives.

    The column is factorised in order of appearance (a hash table) and only its distinct labels are
    sorted, then the codes renumbered; for identifier columns with few distinct labels (trusts, pairs,
    arms, years) this takes about half the time of sorting inside ``factorize`` and gives the same
    codes. Missing values get code ``-1``. Categorical columns (whose order is their categories') and
    labels that do not sort among themselves (mixed types) are left to pandas.

    Parameters
    ----------
    values : Series, Index or 1-D array

    Returns
    -------
    codes : ndarray of intp, shape (n,)
    labels : ndarray, shape (n_labels,)
        The distinct non-missing labels in sorted order (object dtype for text).
    """
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        codes, labels = pd.factorize(values, sort=True)
        return codes, np.asarray(labels)
    codes, labels = pd.factorize(values)
    labels = np.asarray(labels)
    try:
        order = np.argsort(labels, kind="stable")
    except TypeError:  # labels of mixed types: pandas' safe sort
        codes, labels = pd.factorize(values, sort=True)
        return codes, np.asarray(labels)
    rank = np.empty(len(order) + 1, dtype=np.intp)
    rank[order] = np.arange(len(order))
    rank[-1] = -1  # code -1 (missing) stays -1
    return rank[codes], labels[order]
