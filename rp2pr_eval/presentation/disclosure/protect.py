"""Protect an export table of counts, percentages and means (:func:`protect_table`)."""
from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from rp2pr_eval._options import check_option
from rp2pr_eval.presentation.disclosure.policy import DisclosurePolicy
from rp2pr_eval.presentation.disclosure.suppression import (
    TOTAL_LABEL,
    TableMargins,
    counts_of,
    round_counts,
    suppress_counts,
    total_row_label,
)


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
    total_label = None if col_total is None else total_row_label(df.index, col_total)
    added_row = total_label is not None and total_label not in set(df.index)
    pos = out.index.get_indexer(df.index)
    base = policy.rounding

    for name, (num_col, den_col) in percent_columns.items():
        given = _float_column(df, name, "percent")
        num, den = counts_of(df, num_col), counts_of(df, den_col)
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
        r_num, r_den = round_counts(num, base), round_counts(den, base)
        with np.errstate(invalid="ignore", divide="ignore"):
            computed = np.where(r_den > 0, scale * r_num / np.maximum(r_den, 1), np.nan)
        ratio[rows] = np.where(fresh[rows], computed, ratio[rows])
        hide = (mask[num_col] | mask[den_col]).to_numpy()
        out[name] = _derived(ratio, hide, out.index, policy)

    for name, n_col in summary_columns.items():
        given = _float_column(df, name, "summary")
        n = counts_of(df, n_col)
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


__all__ = ["protect_table"]
