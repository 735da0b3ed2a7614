"""One way into every general model: a formula and a DataFrame (through formulaic), or arrays.

:func:`model_frame` turns ``("y ~ x1 + x2:x3", data)`` into the response, the design matrix and
its column names (formulaic's names: ``Intercept``, ``x2:x3``, ``C(g)[T.b]``, ``g[T.b]`` for text
columns), plus the extra per-row columns a model needs (cluster, weights, groups, trials, time,
event, strata), all aligned on the rows kept. Rows with a missing value in any variable the model
uses are left out, as R's ``na.omit`` does, and counted (``n_dropped``).

The array path, ``model_frame(y, X, ...)``, takes a response vector and a design matrix (array or
DataFrame; names from its columns or ``names=``) and extra columns as arrays; nothing is left out.

formulaic is the formula library linearmodels and pyfixest use; no formula is parsed here.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rp2pr_eval.errors import DataError

__all__ = ["ModelFrame", "model_frame"]


@dataclass(frozen=True, slots=True, eq=False)
class ModelFrame:
    """Response, design and extra columns of one model, aligned on the rows used.

    Attributes
    ----------
    y : ndarray or None
        Response (``None`` for a right-hand-side-only formula).
    X : ndarray, shape (n, k)
        Design matrix (float).
    names : tuple of str
        Column names of ``X`` (formulaic's term names, e.g. ``treated:post``).
    extra : dict of str to ndarray
        The extra columns asked for (``None`` entries left out), one value per row used.
    rows : ndarray
        Positions (0-based) in ``data`` of the rows used.
    n_dropped : int
        Rows of ``data`` left out for a missing value.
    formula : str or None
        The formula (``None`` on the array path).
    response : str or None
        Name of the response (the formula's left-hand side).
    """

    y: np.ndarray | None
    X: np.ndarray
    names: tuple[str, ...]
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    rows: np.ndarray | None = None
    n_dropped: int = 0
    formula: str | None = None
    response: str | None = None

    @property
    def nobs(self) -> int:
        return int(self.X.shape[0])


def model_frame(
    formula_or_y,
    data_or_X,
    *,
    extra: Mapping[str, object] | None = None,
    names: Sequence[str] | None = None,
    response: bool = True,
    intercept: bool = True,
    model: str = "model",
) -> ModelFrame:
    """Response, design matrix and extra columns from a formula and a DataFrame, or from arrays.

    Parameters
    ----------
    formula_or_y
        A formula string such as ``"y ~ x + C(g)"`` (formulaic syntax; ``response=False``: a
        right-hand side such as ``"x + C(g)"`` or ``"~ x"``), or the response as an array.
    data_or_X
        The DataFrame the formula refers to, or the design matrix (array or DataFrame).
    extra
        Extra per-row columns, name -> column name in ``data`` (formula path) or array (either
        path); ``None`` values are skipped.
    names
        Array path only: column names of ``X`` (default its DataFrame columns or ``x0, x1, ...``).
    response
        Whether a response is expected (formula path: a left-hand side).
    intercept
        ``False`` drops formulaic's ``Intercept`` column after coding (reduced-rank coding of
        factors is kept, as R does for a Cox model).
    model
        The calling model's name, for error messages.

    Raises
    ------
    DataError
        A column named in ``extra`` or in the formula is missing, the formula cannot be
        evaluated, no complete rows remain, or arrays have the wrong length.
    TypeError
        ``data`` is not a DataFrame on the formula path.
    """
    extra = {k: v for k, v in (extra or {}).items() if v is not None}
    if isinstance(formula_or_y, str):
        return _from_formula(formula_or_y, data_or_X, extra, response, intercept, model)
    return _from_arrays(formula_or_y, data_or_X, extra, names, response, intercept, model)


def _from_formula(formula, data, extra, response, intercept, model) -> ModelFrame:
    import formulaic

    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"{model}: with a formula, data must be a pandas DataFrame, got {type(data).__name__}")
    has_lhs = "~" in formula and formula.split("~", 1)[0].strip() != ""
    if response and not has_lhs:
        raise ValueError(f"{model}: the formula {formula!r} has no response; write it as 'y ~ x1 + x2'")
    if not response and has_lhs:
        raise ValueError(f"{model}: the formula {formula!r} has a left-hand side; give only the covariates, "
                         "e.g. 'age + sex' (time and event are separate arguments)")
    frame = data.reset_index(drop=True)
    keep = np.ones(len(frame), dtype=bool)
    arrays: dict[str, np.ndarray] = {}
    for key, value in extra.items():
        if isinstance(value, str):
            if value not in frame.columns:
                raise DataError(f"{model}: {key}={value!r} is not a column of data")
            column = frame[value].to_numpy()
        else:
            column = _as_column(value, len(frame), key, model)
        arrays[key] = column
        keep &= ~pd.isna(column)
    spec = formula if response else formula.split("~", 1)[-1]
    try:
        mm = formulaic.model_matrix(spec, frame.loc[keep], na_action="drop")
    except Exception as exc:  # formulaic raises several types (syntax, missing names, coding)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{model}: cannot evaluate the formula {formula!r}: {first}") from None
    if response:
        lhs, rhs = mm.lhs, mm.rhs
        if lhs.shape[1] != 1:
            raise ValueError(f"{model}: the response must be one column; {formula!r} gives {list(lhs.columns)}")
        y = lhs.to_numpy(dtype=float)[:, 0]
        response_name = str(lhs.columns[0])
    else:
        rhs, y, response_name = mm, None, None
    rows = rhs.index.to_numpy()
    X = rhs.to_numpy(dtype=float)
    col_names = tuple(str(c) for c in rhs.columns)
    if not intercept and "Intercept" in col_names:
        j = col_names.index("Intercept")
        X = np.delete(X, j, axis=1)
        col_names = col_names[:j] + col_names[j + 1:]
    if X.shape[0] == 0:
        raise DataError(f"{model}: no complete rows: every row has a missing value in a variable of the model")
    if X.shape[1] == 0:
        raise DataError(f"{model}: the formula {formula!r} gives no columns")
    return ModelFrame(y=y, X=X, names=col_names, extra={k: v[rows] for k, v in arrays.items()}, rows=rows,
                      n_dropped=int(len(frame) - len(rows)), formula=formula, response=response_name)


def _from_arrays(y, X, extra, names, response, intercept, model) -> ModelFrame:
    if isinstance(X, str):
        raise TypeError(f"{model}: the first argument is a formula only if it is a string; with arrays pass (y, X)")
    if isinstance(X, pd.DataFrame):
        cols = [str(c) for c in X.columns]
        try:
            Xa = X.to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{model}: X must be numeric ({exc})") from None
    else:
        cols = None
        try:
            Xa = np.array(X, dtype=float)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{model}: X must be numeric ({exc})") from None
    if Xa.ndim == 1:
        Xa = Xa[:, None]
    if Xa.ndim != 2:
        raise DataError(f"{model}: X must be a 2-D design matrix, got shape {Xa.shape}")
    n = Xa.shape[0]
    if names is None:
        names = cols if cols is not None else [f"x{j}" for j in range(Xa.shape[1])]
    names_t = tuple(str(s) for s in names)
    if len(names_t) != Xa.shape[1]:
        raise ValueError(f"{model}: names has {len(names_t)} entries but X has {Xa.shape[1]} columns")
    ya = None
    if response:
        if y is None:
            raise ValueError(f"{model}: a response y is needed")
        try:
            ya = np.asarray(y.to_numpy(dtype=float, na_value=np.nan) if isinstance(y, pd.Series) else y,
                            dtype=float).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{model}: y must be numeric ({exc})") from None
        if ya.shape[0] != n:
            raise DataError(f"{model}: y has {ya.shape[0]} values but X has {n} rows")
    arrays = {}
    for key, value in extra.items():
        if isinstance(value, str):
            raise TypeError(f"{model}: {key}={value!r} names a column, which needs the formula interface "
                            "(formula, data); with arrays pass one value per row")
        arrays[key] = _as_column(value, n, key, model)
    return ModelFrame(y=ya, X=Xa, names=names_t, extra=arrays, rows=np.arange(n), n_dropped=0)


def _as_column(value, n: int, key: str, model: str) -> np.ndarray:
    arr = value.to_numpy() if isinstance(value, (pd.Series, pd.Index)) else np.asarray(value)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise DataError(f"{model}: {key} must have one value per row ({n}), got shape {arr.shape}")
    return arr
