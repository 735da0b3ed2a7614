"""Field conversions of the extract import: raw values to text codes, numbers and dates, with counted problems.

Each function works on the distinct values of a field (factorised once), so a 500,000-row field with
a handful of codes costs a few milliseconds, and reports every problem as a sentence naming the raw
field, the offending values and how many rows carry each.  Problems are returned (appended to a list),
not raised, so one import reports every field's problems at once.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from rp2pr_eval.data.mapping import Codes

_SHOW = 6


def describe_counts(values: list[str], counts: list[int], limit: int = _SHOW) -> str:
    """``'3' (1,204 rows), 'U' (12 rows)`` — most frequent first, at most ``limit`` shown."""
    order = np.argsort(-np.asarray(counts), kind="stable")
    parts = [f"{values[i]!r} ({counts[i]:,} row{'s' if counts[i] != 1 else ''})" for i in order[:limit]]
    if len(order) > limit:
        parts.append(f"… ({len(order)} values, {sum(counts):,} rows in all)")
    return ", ".join(parts)


def _unique_text(value: object) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return ""
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        stamp = pd.Timestamp(value)
        return stamp.strftime("%Y-%m-%d") if stamp == stamp.normalize() else stamp.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()


def text_codes(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Each row's code as an index into the list of distinct texts (-1: blank).

    Whole numbers lose their decimal point (a Stata ``1.0`` is ``'1'``), text is stripped, an empty
    text or a missing value is blank.
    """
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    if pd.api.types.is_string_dtype(series.dtype) and not pd.api.types.is_object_dtype(series.dtype):
        texts = pd.Series(uniques, dtype=series.dtype).str.strip().to_numpy(dtype=object, na_value="").tolist()
    else:
        texts = [_unique_text(u) for u in uniques]
    if "" not in texts and len(set(texts)) == len(texts):  # the usual case: nothing merges
        return codes.astype(np.int64, copy=False), texts
    distinct: dict[str, int] = {}
    remap = np.empty(len(texts) + 1, dtype=np.int64)
    remap[-1] = -1
    for i, text in enumerate(texts):
        remap[i] = -1 if text == "" else distinct.setdefault(text, len(distinct))
    return remap[codes], list(distinct)


def apply_codes(series: pd.Series, codes: Codes, *, field: str, target: str, problems: list[str],
                as_float: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Contract values and the mask of blank rows not covered by ``codes``.

    Values are an object array (``None`` = missing), or floats (NaN = missing) with ``as_float``.
    Unmapped non-blank codes are a problem naming each code and its row count; blanks are the caller's
    to judge (an outcome's blank outside its eligible group is no problem).
    """
    idx, texts = text_codes(series)
    counts = np.bincount(idx[idx >= 0], minlength=len(texts))
    unmapped = [i for i, t in enumerate(texts) if t not in codes.table]
    if unmapped:
        problems.append(
            f"field {field!r} (-> {target}): code(s) {describe_counts([texts[i] for i in unmapped], [int(counts[i]) for i in unmapped])} "
            f"not in the mapping's codes ({codes.shown()}); add them, mapped to a value or null")
    lookup = [codes.table.get(text) for text in texts] + [codes.blank if codes.maps_blank else None]
    if as_float:
        table = np.array([np.nan if v is None else float(v) for v in lookup], dtype=float)
    else:
        table = np.empty(len(lookup), dtype=object)
        table[:] = lookup
    blank = (idx < 0) if not codes.maps_blank else np.zeros(len(idx), dtype=bool)
    return table[idx], blank


def numbers(series: pd.Series, *, field: str, target: str, problems: list[str]) -> np.ndarray:
    """The field as floats (NaN where blank); text that is not a number is a problem (values and counts)."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype(float).to_numpy()
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=float, na_value=np.nan)
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        problems.append(f"field {field!r} (-> {target}) holds dates; expected numbers")
        return np.full(len(series), np.nan)
    idx, texts = text_codes(series)
    parsed = pd.to_numeric(pd.Series(texts, dtype=object), errors="coerce").to_numpy(dtype=float) if texts else \
        np.empty(0)
    bad = [i for i in range(len(texts)) if np.isnan(parsed[i])]
    if bad:
        counts = np.bincount(idx[idx >= 0], minlength=len(texts))
        problems.append(f"field {field!r} (-> {target}): value(s) {describe_counts([texts[i] for i in bad], [int(counts[i]) for i in bad])} "
                        "are not numbers; map them with codes or correct the extract")
    lookup = np.append(parsed, np.nan)
    return lookup[idx]


def dates(series: pd.Series, date_format: str, *, field: str, target: str, problems: list[str]) -> pd.Series:
    """The field as datetime64 (NaT where blank).  Date-typed columns (Stata, SAS, Excel, Parquet) are
    taken as they are; text is parsed with ``date_format``, and text that does not parse is a problem."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return pd.Series(series.to_numpy(dtype="datetime64[ns]"), index=series.index)
    if pd.api.types.is_numeric_dtype(series.dtype) and series.notna().any():
        problems.append(f"field {field!r} (-> {target}) holds numbers, not dates (format {date_format!r}); "
                        "export dates as text or as a date type")
        return pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns]")
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    parsed = np.empty(len(uniques) + 1, dtype="datetime64[ns]")
    parsed[-1] = np.datetime64("NaT")
    bad_text, bad_count = [], []
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    text_pos, text_values = [], []
    for i, value in enumerate(uniques):
        if isinstance(value, (pd.Timestamp, dt.datetime, dt.date)):
            parsed[i] = np.datetime64(pd.Timestamp(value).normalize(), "ns")
        else:
            text = str(value).strip()
            if text == "":
                parsed[i] = np.datetime64("NaT")
            else:
                text_pos.append(i)
                text_values.append(text)
    if text_values:
        got = pd.to_datetime(pd.Series(text_values), format=date_format, errors="coerce").to_numpy(dtype="datetime64[ns]")
        for pos, text, value in zip(text_pos, text_values, got):
            parsed[pos] = value
            if np.isnat(value):
                bad_text.append(text)
                bad_count.append(int(counts[pos]))
    if bad_text:
        problems.append(f"field {field!r} (-> {target}): value(s) {describe_counts(bad_text, bad_count)} do not "
                        f"parse as dates with format {date_format!r}")
    return pd.Series(parsed[codes], index=series.index)


def infer_values(values: np.ndarray, *, what: str, problems: list[str]) -> pd.Series | np.ndarray:
    """An object array of coded values as a typed array: int64 (whole numbers, none missing), Int64 (with
    missing), float64, or text ("str"); mixed text and numbers are a problem."""
    present = [v for v in values if v is not None]
    kinds = {type(v) for v in present}
    if not present:
        return pd.array([pd.NA] * len(values), dtype="Int64")
    if kinds <= {int}:
        if len(present) == len(values):
            return np.asarray(values, dtype=np.int64)
        return pd.array(values, dtype="Int64")
    if kinds <= {int, float}:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    if kinds <= {str}:
        return pd.array(values, dtype="str")
    problems.append(f"{what}: the codes give both numbers and text; expected one type")
    return np.asarray(values, dtype=object)


__all__ = ["apply_codes", "dates", "describe_counts", "infer_values", "numbers", "text_codes"]
