"""Validation of patient tables and trust panels against the data contract.

Every rule raises :class:`~rp2pr_eval.errors.DataError` whose message names the
column, the first offending rows or trusts and what was expected.  Nothing is
coerced, dropped or imputed: :func:`validate_patients` returns the frame it was
given.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Iterable

import numpy as np
import pandas as pd

from rp2pr_eval._arrays import sorted_codes
from rp2pr_eval._options import IncompletePairs, check_option
from rp2pr_eval.data.contract import (
    COLUMN_RULES,
    ID_COLUMNS,
    PANEL_COLUMNS,
    PERIODS,
    REQUIRED_COLUMNS,
)
from rp2pr_eval.errors import DataError
from rp2pr_eval.study.design import StudyDesign, resolve_design
from rp2pr_eval.study.outcomes import OUTCOMES

_SHOW = 5  # how many offending rows/trusts a message names


class PeriodCoverageWarning(UserWarning):
    """A trust has no patients in the pre or post years of the design."""


def _first(values: Iterable, n: int = _SHOW) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:n])
    return shown + (f", … ({len(values)} in all)" if len(values) > n else "")


def _rows_message(df: pd.DataFrame, mask: np.ndarray, column: str) -> str:
    idx = np.flatnonzero(mask)
    parts = []
    for i in idx[:_SHOW]:
        row = df.iloc[i]
        where = f"row {df.index[i]!r}"
        if "trust_id" in df.columns and column != "trust_id":
            where += f" (trust {row['trust_id']})"
        value = row[column]
        if isinstance(value, np.generic):
            value = value.item()
        parts.append(f"{where}: {value!r}")
    more = f"; {len(idx)} rows in all" if len(idx) > _SHOW else ""
    return "; ".join(parts) + more


def _is_text(series: pd.Series) -> bool:
    if pd.api.types.is_string_dtype(series.dtype) and not pd.api.types.is_object_dtype(series.dtype):
        return True
    if isinstance(series.dtype, pd.CategoricalDtype):
        return all(isinstance(c, str) for c in series.dtype.categories)
    if pd.api.types.is_object_dtype(series.dtype):
        nonnull = series.dropna()
        return bool(nonnull.map(lambda v: isinstance(v, str)).all())
    return False


def _as_numeric(df: pd.DataFrame, column: str, *, integer: bool) -> np.ndarray:
    """Column as float array; raises if its type is not numeric (or not integral)."""
    s = df[column]
    if pd.api.types.is_bool_dtype(s.dtype) and not integer:
        return s.astype(float).to_numpy()
    if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
        sample = s.dropna().astype(str).unique()[:3]
        raise DataError(
            f"column {column!r} must be numeric, got dtype {s.dtype} (values like {', '.join(map(repr, sample))})"
        )
    values = s.to_numpy(dtype=float, na_value=np.nan)
    if integer:
        finite = np.isfinite(values)
        frac = finite & (values != np.round(values))
        if frac.any():
            raise DataError(
                f"column {column!r} must hold whole numbers; non-integer values at {_rows_message(df, frac, column)}"
            )
    return values


def _all_values_ok(s: pd.Series, ok, max_unique: int = 1000, *, allow_missing: bool = True) -> bool:
    """True if every distinct value passes ``ok`` (checked on the distinct values of a low-cardinality
    column; missing values pass only if ``allow_missing``).  ``False`` means "check row by row", not "invalid"."""
    values = s.unique()
    if len(values) > max_unique:
        return False
    missing = np.asarray(pd.isna(values), dtype=bool)
    if missing.any() and not allow_missing:
        return False
    return all(ok(v) for v, m in zip(np.asarray(values, dtype=object), missing) if not m)


def _check_column(df: pd.DataFrame, column: str, design: StudyDesign | None = None) -> None:
    rule = COLUMN_RULES[column]
    if column == "arm" and design is not None and tuple(design.arms) != tuple(rule.values):
        # the design names the arm labels (DATA_CONTRACT §3); the contract's are the default
        rule = dataclasses.replace(rule, values=tuple(design.arms),
                                   expected=" or ".join(repr(a) for a in design.arms))
    s = df[column]
    missing = s.isna().to_numpy()
    if missing.any() and not rule.nullable:
        raise DataError(
            f"column {column!r} has {int(missing.sum())} missing value(s) "
            f"(first: {_rows_message(df, missing, column)}); expected {rule.expected}"
        )
    if rule.kind == "string":
        if not _is_text(s):
            raise DataError(f"column {column!r} must hold text identifiers, got dtype {s.dtype}; expected {rule.expected}")
        if column != "patient_id" and _all_values_ok(s, lambda v: str(v).strip() != ""):  # ids: all distinct
            return
        empty = (s.astype(str).str.strip() == "").to_numpy() & ~missing
        if empty.any():
            raise DataError(f"column {column!r} has empty identifiers at {_rows_message(df, empty, column)}")
    elif rule.kind == "category":
        if not _is_text(s):
            raise DataError(f"column {column!r} must hold text labels ({rule.expected}), got dtype {s.dtype}")
        if _all_values_ok(s, lambda v: v in rule.values):
            return
        bad = ~s.isin(rule.values).to_numpy() & ~missing
        if bad.any():
            raise DataError(f"column {column!r} has invalid values at {_rows_message(df, bad, column)}; expected {rule.expected}")
    elif rule.kind == "int":
        values = _as_numeric(df, column, integer=True)
        lo, hi = rule.values
        bad = ~missing & ((values < lo) | (values > hi))
        if bad.any():
            raise DataError(f"column {column!r} out of range at {_rows_message(df, bad, column)}; expected {rule.expected}")
    elif rule.kind == "binary":
        values = _as_numeric(df, column, integer=False)
        bad = ~missing & ~np.isin(values, (0.0, 1.0))
        if bad.any():
            raise DataError(f"column {column!r} must be 0/1; invalid values at {_rows_message(df, bad, column)}")
    elif rule.kind == "nonneg":
        values = _as_numeric(df, column, integer=False)
        bad = ~missing & ~(values >= 0)
        if bad.any():
            raise DataError(
                f"column {column!r} must be non-negative days; invalid values at {_rows_message(df, bad, column)}"
            )


def _check_structure(df: pd.DataFrame, design: StudyDesign, incomplete_pairs: str | None = None) -> None:
    """One patient per row, then :func:`_check_membership` (arms, pairs, design years)."""
    if not df["patient_id"].is_unique:
        dup = df["patient_id"].duplicated(keep=False).to_numpy()
        ids = pd.unique(df["patient_id"][dup])
        raise DataError(f"column 'patient_id' has duplicated ids: {_first(ids)}; expected one row per patient")
    _check_membership(df, design, incomplete_pairs)


def _check_membership(df: pd.DataFrame, design: StudyDesign, incomplete_pairs: str | None = None, *,
                      codes: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """One arm and one pair per trust, two trusts per pair, one arm per pair, design years (if ``audit_year``).

    ``incomplete_pairs`` ``"keep"`` or ``"drop"`` accepts pairs with one trust (what the estimators then do
    with them is theirs: :func:`rp2pr_eval.estimators.prepare.prepare`); ``None`` refuses them.
    ``codes``: the sorted codes and labels of ``trust_id`` when the caller has them already.

    Works on integer codes of the identifier columns (each factorised once), so
    a 130,000-row table is checked in a few milliseconds.
    """
    arms = set(design.arms)
    if _all_values_ok(df["arm"], lambda v: v in arms, allow_missing=False):
        bad_arm = np.zeros(len(df), dtype=bool)
    else:
        bad_arm = ~df["arm"].isin(arms).to_numpy()  # a missing arm is not one of the design's arms
    if bad_arm.any():
        raise DataError(
            f"column 'arm' has labels outside the design's arms {sorted(arms)} at {_rows_message(df, bad_arm, 'arm')}"
        )
    t_code, t_lab = sorted_codes(df["trust_id"]) if codes is None else codes
    p_code, p_lab = sorted_codes(df["pair_id"])
    a_code, _ = sorted_codes(df["arm"])
    for column, code in (("trust_id", t_code), ("pair_id", p_code)):  # callers check these first; be safe
        if (code < 0).any():
            raise DataError(f"column {column!r} has missing values at {_rows_message(df, code < 0, column)}")
    n_t, n_p, n_a = len(t_lab), len(p_lab), int(a_code.max()) + 1
    # distinct (trust, pair, arm) combinations: one per trust if the table is valid
    combo = np.unique((t_code.astype(np.int64) * n_p + p_code) * n_a + a_code)
    c_trust, rest = np.divmod(combo, n_p * n_a)
    c_pair, c_arm = np.divmod(rest, n_a)

    def n_distinct(group: np.ndarray, value: np.ndarray, n_groups: int) -> np.ndarray:
        pairs = np.unique(group.astype(np.int64) * (int(value.max()) + 1) + value)
        return np.bincount(pairs // (int(value.max()) + 1), minlength=n_groups)

    two_arms = t_lab[n_distinct(c_trust, c_arm, n_t) > 1]
    if len(two_arms):
        raise DataError(
            f"trust(s) {_first(two_arms)} appear in more than one arm; expected one arm per trust for all years"
        )
    two_pairs = t_lab[n_distinct(c_trust, c_pair, n_t) > 1]
    if len(two_pairs):
        raise DataError(
            f"trust(s) {_first(two_pairs)} appear in more than one pair; expected one pair per trust for all years"
        )
    # now one row of combo per trust, in trust order
    per_pair = np.bincount(c_pair, minlength=n_p)
    bad_size = np.flatnonzero((per_pair > 2) | ((per_pair == 1) & (incomplete_pairs is None)))
    if len(bad_size):
        desc = [
            f"{p_lab[p]} ({per_pair[p]} trust{'s' if per_pair[p] != 1 else ''}: {', '.join(map(str, t_lab[c_trust[c_pair == p]]))})"
            for p in bad_size
        ]
        hint = ("; a pair that lost a trust can be kept as a one-trust cluster (incomplete_pairs='keep') or "
                "dropped (incomplete_pairs='drop')") if (per_pair[bad_size] == 1).all() else ""
        raise DataError(f"pair(s) {_first(desc)} do not hold exactly two trusts; expected two trusts per pair{hint}")
    mixed = p_lab[n_distinct(c_pair, c_arm, n_p) > 1]
    if len(mixed):
        raise DataError(f"pair(s) {_first(mixed)} have trusts in different arms; expected both trusts of a pair in one arm")
    if "audit_year" not in df.columns:  # a trust panel by period
        return
    years = df["audit_year"].to_numpy()
    outside = ~np.isin(years, design.years)
    if outside.any():
        raise DataError(
            f"column 'audit_year' has years outside the design {design.years[0]}–{design.years[-1]} "
            f"at {_rows_message(df, outside, 'audit_year')}; expected one of {list(design.years)}"
        )


def check_allocation(patients: pd.DataFrame, *, design: StudyDesign | None = None) -> None:
    """Check that the data's allocation is the design's: both arms present, ``n_treated_pairs`` pairs treated.

    A swapped pair of arm labels in ``design.yaml`` (``intervention_arm: control``) validates row by
    row and silently flips the sign of every effect; the count of pairs in the intervention arm
    catches it (ILCOP: 15 of 40). The runner and ``rp2pr-eval validate-data`` call this before any
    analysis; the loader does not (a subset of pairs is a legitimate sensitivity analysis — set
    ``n_treated_pairs`` to match it).

    Raises
    ------
    DataError
        Naming the arm labels and the counts found and expected.
    """
    design = resolve_design(design)
    pairs = patients.drop_duplicates("pair_id")[["pair_id", "arm"]]
    counts = pairs["arm"].astype(str).value_counts()
    for arm in design.arms:
        if counts.get(arm, 0) == 0:
            raise DataError(f"no pair is in the {'intervention' if arm == design.intervention_arm else 'control'} arm "
                            f"{arm!r} of the design (arms in the data: {', '.join(map(repr, sorted(counts.index)))})")
    treated = int(counts.get(design.intervention_arm, 0))
    if treated != design.n_treated_pairs:
        swapped = (int(counts.get(design.control_arm, 0)) == design.n_treated_pairs)
        raise DataError(f"the data have {treated} pairs in the intervention arm {design.intervention_arm!r} but the "
                        f"design says n_treated_pairs = {design.n_treated_pairs}"
                        + ("; the arm labels look swapped (intervention_arm / control_arm in the design file)"
                           if swapped else "; set n_treated_pairs in the design file to the number randomised"))


def trusts_missing_period(patients: pd.DataFrame, design: StudyDesign | None = None) -> dict[str, list[str]]:
    """Trusts with no patients in all pre years or all post years: ``{"pre": [...], "post": [...]}``."""
    design = resolve_design(design)
    out: dict[str, list[str]] = {}
    trust = patients["trust_id"].to_numpy()
    all_trusts = pd.unique(trust)
    year = patients["audit_year"].to_numpy()
    for period, years in (("pre", design.pre_years), ("post", design.post_years)):
        present = pd.unique(trust[np.isin(year, years)])
        out[period] = sorted(all_trusts[~np.isin(all_trusts, present)].tolist())
    return out


def validate_patients(
    patients: pd.DataFrame,
    *,
    design: StudyDesign | None = None,
    missing_period: str = "warn",
    incomplete_pairs: IncompletePairs | None = None,
) -> pd.DataFrame:
    """Check a patient table against the data contract and return it unchanged.

    Parameters
    ----------
    patients
        One row per patient first seen in an audit year (DATA_CONTRACT §1).
        Columns beyond the contract are kept and ignored.
    design
        Study design (years and arm labels); ``None`` for the default design.
    missing_period
        What to do when a trust has no patients in all pre or all post years:
        ``"warn"`` (the loader's behaviour), ``"raise"`` (estimators that need
        both periods) or ``"ignore"``.
    incomplete_pairs
        ``None`` (default): a pair with one trust is an error; ``"keep"`` or ``"drop"``: accepted (the
        estimators' option of the same name says what happens to it; docs/METHODS.md).

    Returns
    -------
    pandas.DataFrame
        The same frame, not copied or altered.

    Raises
    ------
    DataError
        Naming the column, the first offending rows or trusts, and what was expected.
    """
    if not isinstance(patients, pd.DataFrame):
        raise DataError(f"patients must be a pandas DataFrame, got {type(patients).__name__}")
    if missing_period not in ("warn", "raise", "ignore"):
        raise ValueError(f"missing_period={missing_period!r} is not valid; expected 'warn', 'raise' or 'ignore'")
    check_option("incomplete_pairs", incomplete_pairs, IncompletePairs, allow_none=True)
    design = resolve_design(design)
    if patients.empty:
        raise DataError("the patient table has no rows; expected one row per patient")
    if patients.columns.duplicated().any():
        dups = patients.columns[patients.columns.duplicated()].unique()
        raise DataError(f"duplicated column name(s) {list(dups)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in patients.columns]
    if missing:
        raise DataError(
            f"required column(s) {missing} missing from the patient table; it has {list(patients.columns)[:12]}"
        )
    for column in REQUIRED_COLUMNS:
        _check_column(patients, column, design)
    for column in COLUMN_RULES:
        if column not in REQUIRED_COLUMNS and column in patients.columns:
            _check_column(patients, column, design)
    for name, entry in OUTCOMES.items():
        if name in patients.columns and entry.kind == "binary" and name not in COLUMN_RULES:
            values = _as_numeric(patients, name, integer=False)
            bad = ~np.isnan(values) & ~np.isin(values, (0.0, 1.0))
            if bad.any():
                raise DataError(f"outcome column {name!r} must be 0/1 or missing; invalid values at {_rows_message(patients, bad, name)}")
    if ("survival_days" in patients.columns) != ("died" in patients.columns):
        raise DataError("survival needs both 'survival_days' and 'died'; only one of them is present")
    _check_structure(patients, design, incomplete_pairs)
    if missing_period != "ignore":
        gaps = trusts_missing_period(patients, design)
        for period, trusts in gaps.items():
            if trusts:
                years = design.pre_years if period == "pre" else design.post_years
                msg = f"trust(s) {_first(trusts)} have no patients in the {period} years {list(years)}"
                if missing_period == "raise":
                    raise DataError(msg + "; the estimator needs both pre and post data for every trust")
                warnings.warn(msg, PeriodCoverageWarning, stacklevel=2)
    return patients


def validate_panel(panel: pd.DataFrame, *, design: StudyDesign | None = None,
                   incomplete_pairs: IncompletePairs | None = None) -> pd.DataFrame:
    """Check a trust panel (DATA_CONTRACT §2) and return it unchanged.

    Required: ``trust_id, pair_id, arm, outcome, numerator, denominator`` and ``audit_year`` or
    ``period``; ``rate`` is optional (checked against numerator/denominator when present, as
    :func:`rp2pr_eval.trust_panel` writes it; published figures often carry counts only).  One row per
    trust × outcome × time cell; pairs, arms and years as for patient tables (``incomplete_pairs`` as in
    :func:`validate_patients`).
    """
    if not isinstance(panel, pd.DataFrame):
        raise DataError(f"panel must be a pandas DataFrame, got {type(panel).__name__}")
    check_option("incomplete_pairs", incomplete_pairs, IncompletePairs, allow_none=True)
    design = resolve_design(design)
    if panel.empty:
        raise DataError("the trust panel has no rows")
    missing = [c for c in PANEL_COLUMNS if c not in panel.columns]
    time_cols = [c for c in ("period", "audit_year") if c in panel.columns]
    if missing or not time_cols:
        need = missing + ([] if time_cols else ["period or audit_year"])
        raise DataError(f"trust panel lacks column(s) {need}; it has {list(panel.columns)}")
    for column in ("trust_id", "pair_id", *(["audit_year"] if "audit_year" in panel.columns else [])):
        _check_column(panel, column)
    if panel["outcome"].isna().any() or not _is_text(panel["outcome"]):
        raise DataError("trust panel column 'outcome' must name a registry outcome on every row (text)")
    num = _as_numeric(panel, "numerator", integer=True)
    den = _as_numeric(panel, "denominator", integer=True)
    bad = ~((den > 0) & (num >= 0) & (num <= den))
    if bad.any():
        raise DataError(
            "trust panel needs 0 ≤ numerator ≤ denominator and denominator > 0; "
            f"invalid at {_rows_message(panel, bad, 'numerator')}"
        )
    rate = _as_numeric(panel, "rate", integer=False) if "rate" in panel.columns else num / den
    off = ~np.isclose(rate, num / den, rtol=0, atol=1e-9)
    if off.any():
        raise DataError(f"trust panel column 'rate' differs from numerator/denominator at {_rows_message(panel, off, 'rate')}")
    if "period" in panel.columns:
        bad = ~panel["period"].astype(str).isin(PERIODS).to_numpy()
        if bad.any():
            raise DataError(f"trust panel column 'period' must be one of {list(PERIODS)}; invalid at {_rows_message(panel, bad, 'period')}")
    key = ["trust_id", "outcome", time_cols[0]]
    trust_codes = sorted_codes(panel["trust_id"])
    cell = trust_codes[0].astype(np.int64)
    for column in key[1:]:
        codes, labels = pd.factorize(panel[column], use_na_sentinel=False)
        cell = cell * len(labels) + codes
    if len(np.unique(cell)) < len(cell):
        dup = panel.duplicated(key, keep=False).to_numpy()
        raise DataError(f"trust panel has more than one row per {key}: {_rows_message(panel, dup, 'trust_id')}")
    _check_membership(panel, design, incomplete_pairs, codes=trust_codes)
    return panel


__all__ = ["validate_patients", "validate_panel", "trusts_missing_period", "PeriodCoverageWarning", "ID_COLUMNS"]
