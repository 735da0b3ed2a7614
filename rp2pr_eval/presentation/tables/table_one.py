"""Table 1: baseline characteristics of the patients by arm and period, under disclosure control.

:func:`table_one` builds the table tidy first (numbers stay numbers, the
policy's symbols where withheld); the wide display frame of strings is made
at the end. See docs/methods/tables.md for the disclosure rules it applies.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from rp2pr_eval._options import check_option
from rp2pr_eval.data.validate import validate_patients
from rp2pr_eval.errors import DataError
from rp2pr_eval.presentation.disclosure import DisclosurePolicy, check_disclosure
from rp2pr_eval.presentation.tables.marking import (
    TableLayout,
    format_count,
    format_number,
    mark_frame,
    protect_levels,
    resolve_policy,
    shown_percent,
    summary_hidden,
    typed_column,
)
from rp2pr_eval.study.design import StudyDesign, resolve_design

GroupKey = Literal["arm", "period"]

#: Columns of the tidy Table 1 (``table_one(..., layout="tidy")``).
TABLE_ONE_COLUMNS: tuple[str, ...] = (
    "variable", "level", "arm", "period", "n", "denominator", "percent", "mean", "sd", "median", "q1", "q3",
    "n_trusts",
)
ALL = "all"
MISSING = "Missing"
_COUNT_COLUMNS = ["n", "denominator"]


_AGE_BANDS = ("<60", "60–69", "70–79", "80+")
# (variable, display label, column, levels, missing level, displayed levels or None for all)
_CATEGORICAL: tuple[tuple[str, str, str, tuple[str, ...], bool, tuple[str, ...] | None], ...] = (
    ("age_band", "Age band, n (%)", "age", _AGE_BANDS, False, None),
    ("sex", "Male sex, n (%)", "sex", ("F", "M"), False, ("M",)),
    ("performance_status", "Performance status (WHO), n (%)", "performance_status", ("0", "1", "2", "3", "4"), True, None),
    ("stage", "Stage, n (%)", "stage", ("I", "II", "III", "IV"), True, None),
    ("histology", "Histology, n (%)", "histology", ("NSCLC", "SCLC", "other"), False, None),
    ("imd_quintile", "IMD quintile (1 = most deprived), n (%)", "imd_quintile", ("1", "2", "3", "4", "5"), False, None),
)
_SUMMARY_LABELS = {
    "patients": "Patients, n",
    "trusts": "Trusts, n",
    "patients_per_trust_year": "Patients per trust-year, median (IQR)",
    "age": "Age, years, mean (SD)",
}
_LEVEL_LABELS = {"other": "Other", "M": "Male"}


def _level_codes(series: pd.Series, levels: Sequence[str], *, column: str, missing: bool) -> np.ndarray:
    """Code each value by its position in ``levels``; a missing value is ``len(levels)`` when allowed."""
    na = series.isna().to_numpy()
    if is_numeric_dtype(series.dtype) and not is_bool_dtype(series.dtype):
        keys = pd.Series(series.to_numpy(dtype=float, na_value=np.nan))
        lookup = {float(level): i for i, level in enumerate(levels)}
    else:
        keys = pd.Series(series.to_numpy(dtype=object))
        lookup = {level: i for i, level in enumerate(levels)}
    mapped = keys.map(lookup).to_numpy(dtype=float, na_value=np.nan)
    bad = np.isnan(mapped) & ~na
    if bad.any():
        found = pd.unique(series[bad]).tolist()[:5]
        raise DataError(f"column {column!r}: value(s) {found} are not among the levels {list(levels)}")
    if na.any() and not missing:
        raise DataError(f"column {column!r} has {int(na.sum())} missing value(s); expected one of {list(levels)}")
    return np.where(na, len(levels), np.nan_to_num(mapped)).astype(np.int64)


def _check_by(by: object) -> tuple[str, ...]:
    if isinstance(by, str) or not isinstance(by, (tuple, list)):
        raise ValueError(f"by must be a tuple of 'arm' and/or 'period' (e.g. ('arm', 'period') or ()), got {by!r}")
    for key in by:
        check_option("by", key, GroupKey)
    if len(set(by)) != len(by):
        raise ValueError(f"by repeats a key: {tuple(by)!r}")
    return tuple(by)


def _group_label(group: tuple[str, str], design: StudyDesign) -> str:
    arm, period = group
    years = {"pre": design.pre_years, "during": design.during_years, "post": design.post_years}
    parts = []
    if arm != ALL:
        parts.append(arm.capitalize())
    if period != ALL:
        y = years[period]
        span = f"{y[0]}" if len(y) == 1 else f"{y[0]}–{y[-1]}"
        parts.append(f"{period} ({span})" if parts else f"{period.capitalize()} ({span})")
    return ", ".join(parts) if parts else "All patients"


def table_one(
    patients: pd.DataFrame,
    *,
    design: StudyDesign | None = None,
    by: Sequence[str] = ("arm", "period"),
    include_during: bool = False,
    policy: DisclosurePolicy | None = None,
    protect: bool = True,
    layout: TableLayout = "wide",
) -> pd.DataFrame:
    """Baseline characteristics of the patients by arm and period (Table 1).

    Rows: patients (n); trusts (n); median patients per trust-year (IQR);
    age (mean, SD) and age bands <60, 60–69, 70–79, 80+; male sex;
    performance status 0–4 and missing; stage I–IV and missing; histology
    NSCLC, SCLC, other; IMD quintile 1–5; categories as n (% of the group's
    patients).

    Parameters
    ----------
    patients : pandas.DataFrame
        Patient table (DATA_CONTRACT.md §1); validated first.
    design : StudyDesign, optional
        Years of each period and the disclosure policy; ``None``: the default.
    by : tuple of {"arm", "period"}
        The column groups, in this order (default arm, then period); ``()``
        gives one column of all patients.
    include_during : bool
        Add the ``during`` years as a period (default: pre and post only).
    policy : DisclosurePolicy, optional
        Overrides the design's policy (:func:`disclosure_policy`).
    protect : bool
        Apply disclosure control (default). ``protect=False`` gives the exact
        numbers for internal use; such a frame is marked unprotected and
        :func:`export_table` refuses it.
    layout : {"wide", "tidy"}
        ``"wide"``: a display frame of strings, columns ``Characteristic``,
        ``Level`` and one per group. ``"tidy"``: one row per variable, level
        and group with the columns :data:`TABLE_ONE_COLUMNS` (numbers, or
        the policy's symbols where withheld).

    Returns
    -------
    pandas.DataFrame
        ``attrs["disclosure"]`` records the protection; ``attrs["n_dropped"]``
        counts the patients left out (audit years outside the design, and the
        during years unless ``include_during``).

    Notes
    -----
    Disclosure control (see docs/methods/tables.md): each categorical
    variable is a levels x groups table of counts whose column totals (the
    group sizes) are shown; :func:`rp2pr_eval.presentation.disclosure.suppress_counts`
    suppresses counts 1 to k-1 with secondary suppression against those
    totals (the female count is protected with the male count although only
    the male row is shown). Percentages are withheld when their count or
    denominator is; means and SDs when the group's n is withheld or below
    ``policy.min_n_for_summary``; the median (IQR) of patients per trust-year
    when there are fewer trust-years than that minimum or a quartile is
    itself a count in the suppressed range. Numbers of trusts are not counts
    of patients and are shown. Under a rounding policy percentages are
    computed from the rounded counts.

    Raises
    ------
    DataError
        The patient table breaks the data contract.
    ValueError
        Invalid ``by``, ``layout`` or ``policy``.
    """
    by = _check_by(by)
    check_option("layout", layout, TableLayout)
    for name, value in (("include_during", include_during), ("protect", protect)):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {value!r}")
    design = resolve_design(design)
    pol = resolve_policy(policy, design) if protect else None
    validate_patients(patients, design=design, missing_period="ignore",
                      incomplete_pairs="keep")  # descriptive: a pair that lost a trust is shown as it is

    periods = ("pre", "during", "post") if include_during else ("pre", "post")
    period = patients["audit_year"].map(design.period_map())
    in_design = period.notna().to_numpy()
    keep = period.isin(periods).to_numpy()
    n_dropped = {"outside_design_years": int((~in_design).sum()), "during": int((in_design & ~keep).sum())}
    data = patients.loc[keep]
    if data.empty:
        raise DataError(f"no patients in the audit years of the periods {list(periods)}: {list(design.years)}")
    period = period[keep]

    # Groups: the product of the `by` keys in the order given; a key not in `by` is "all".
    key_levels = {"arm": design.arms, "period": periods}
    key_values = {"arm": data["arm"].astype(str).to_numpy(), "period": period.astype(str).to_numpy()}
    group = np.zeros(len(data), dtype=np.int64)
    for key in by:
        group = group * len(key_levels[key]) + _level_codes(
            pd.Series(key_values[key]), key_levels[key], column=key, missing=False)
    combos: list[dict[str, str]] = [{}]
    for key in by:
        combos = [{**c, key: level} for c in combos for level in key_levels[key]]
    groups = [(c.get("arm", ALL), c.get("period", ALL)) for c in combos]
    labels = [_group_label(g, design) for g in groups]
    n_groups = len(groups)

    rows: list[dict[str, Any]] = []

    def add(variable: str, level: str, gi: int, **values: Any) -> None:
        rows.append({"variable": variable, "level": level, "arm": groups[gi][0], "period": groups[gi][1], **values})

    # Categorical variables (and the group totals that protect them).
    age = pd.to_numeric(data["age"]).to_numpy(dtype=float)
    size = np.bincount(group, minlength=n_groups)
    cat_rows: list[dict[str, Any]] = []
    total_hidden = np.zeros(n_groups, dtype=bool)
    shown_total: list[Any] = list(size)
    level_tables = []
    for variable, _, column, levels, missing, _ in _CATEGORICAL:
        if variable == "age_band":
            codes = np.digitize(age, [60, 70, 80])
        else:
            codes = _level_codes(data[column], levels, column=column, missing=missing)
        all_levels = list(levels) + ([MISSING] if missing else [])
        counts = np.bincount(codes * n_groups + group, minlength=len(all_levels) * n_groups).reshape(len(all_levels), n_groups)
        level_tables.append((variable, all_levels, pd.DataFrame(counts, index=all_levels, columns=range(n_groups))))
    # Every variable's table shares the group sizes: a size hidden in one is hidden in all, so that no
    # table shows what another's protection relies on (repeated until no table hides a new one).
    hidden: set[int] = set()
    while True:
        protected = [(v, lv, protect_levels(t, pol, sorted(hidden))) for v, lv, t in level_tables]
        now = {int(g) for *_, (_, _, _, tmask) in protected for g in np.flatnonzero(tmask.to_numpy())}
        if now <= hidden:
            break
        hidden |= now
    for variable, all_levels, (shown, totals, mask, tmask) in protected:
        total_hidden |= tmask.to_numpy()
        shown_total = list(totals)
        for level in all_levels:
            for gi in range(n_groups):
                hidden = bool(mask.at[level, gi] or tmask[gi])
                cat_rows.append({
                    "variable": variable, "level": level, "arm": groups[gi][0], "period": groups[gi][1],
                    "n": shown.at[level, gi], "denominator": totals[gi],
                    "percent": shown_percent(shown.at[level, gi], totals[gi], hidden, pol),
                })

    # Summary rows.
    trusts = data["trust_id"].astype(str).to_numpy()
    years = data["audit_year"].to_numpy()
    volumes = pd.DataFrame({"g": group, "t": trusts, "y": years}).groupby(["g", "t", "y"], sort=True).size()
    for gi in range(n_groups):
        add("patients", "", gi, n=shown_total[gi])
    for gi in range(n_groups):
        add("trusts", "", gi, n_trusts=int(pd.unique(trusts[group == gi]).size))
    for gi in range(n_groups):
        vol = volumes[volumes.index.get_level_values("g") == gi].to_numpy(dtype=float)
        values: dict[str, Any] = {"n_trusts": int(pd.unique(trusts[group == gi]).size)}
        if vol.size:
            q1, med, q3 = np.percentile(vol, [25, 50, 75])
            values.update(median=med, q1=q1, q3=q3)
            small = pol is not None and any(1 <= q < pol.threshold for q in (q1, med, q3))
            if summary_hidden(vol.size, total_hidden[gi], pol) or small:
                values.update(median=pol.secondary_symbol, q1=pol.secondary_symbol, q3=pol.secondary_symbol)  # type: ignore[union-attr]
        add("patients_per_trust_year", "", gi, **values)
    for gi in range(n_groups):
        a = age[group == gi]
        values = {"n": shown_total[gi]}
        if a.size:
            values.update(mean=float(a.mean()), sd=float(a.std(ddof=1)) if a.size > 1 else None)
            if summary_hidden(a.size, total_hidden[gi], pol):
                values.update(mean=pol.secondary_symbol, sd=pol.secondary_symbol)  # type: ignore[union-attr]
        add("age", "", gi, **values)
    rows.extend(cat_rows)

    kinds = {"n": "count", "denominator": "count", "n_trusts": "count"}
    tidy = pd.DataFrame({
        col: (pd.Series([r.get(col) for r in rows], dtype="str") if col in ("variable", "level", "arm", "period")
              else typed_column([r.get(col) for r in rows], kinds.get(col, "float")))
        for col in TABLE_ONE_COLUMNS
    })
    if pol is not None:
        found = check_disclosure(tidy, policy=pol, count_columns=_COUNT_COLUMNS)
        if found:  # an internal guarantee, not a user error
            raise RuntimeError(f"table_one: disclosure control failed: {found[:3]}")
    out = tidy if layout == "tidy" else _table_one_wide(tidy, groups, labels)
    out.attrs = {"n_dropped": n_dropped}
    return mark_frame(out, pol, _COUNT_COLUMNS if layout == "tidy" else ())


def _table_one_cell(row: pd.Series) -> str:
    variable = row["variable"]
    if variable == "patients":
        return format_count(row["n"])
    if variable == "trusts":
        return format_count(row["n_trusts"])
    if variable == "patients_per_trust_year":
        if isinstance(row["median"], str) or pd.isna(row["median"]):
            return format_number(row["median"])
        return f"{row['median']:.1f} ({row['q1']:.1f}–{row['q3']:.1f})"
    if variable == "age":
        if isinstance(row["mean"], str) or pd.isna(row["mean"]):
            return format_number(row["mean"])
        return f"{row['mean']:.1f} ({format_number(row['sd'])})"
    n, pct = row["n"], row["percent"]
    if isinstance(n, str):
        return n
    if isinstance(pct, str):
        return f"{format_count(n)} ({pct})"
    return format_count(n) if pd.isna(pct) else f"{format_count(n)} ({pct:.1f}%)"


def _table_one_wide(tidy: pd.DataFrame, groups: list[tuple[str, str]], labels: list[str]) -> pd.DataFrame:
    """The display frame: one row per variable and level, one column per group."""
    cell = tidy.apply(_table_one_cell, axis=1)
    key = pd.Series(list(zip(tidy["arm"], tidy["period"])))
    order = [(v, _SUMMARY_LABELS[v], ("",)) for v in _SUMMARY_LABELS]
    order += [(v, label, shown or tuple(levels) + ((MISSING,) if missing else ()))
              for v, label, _, levels, missing, shown in _CATEGORICAL]
    records = []
    for variable, label, levels in order:
        for i, level in enumerate(levels):
            rec = {"Characteristic": label if i == 0 else "", "Level": _LEVEL_LABELS.get(level, level)}
            sel = (tidy["variable"] == variable) & (tidy["level"] == level)
            by_group = dict(zip(key[sel], cell[sel]))
            rec.update({lab: by_group[g] for g, lab in zip(groups, labels)})
            records.append(rec)
    return pd.DataFrame(records, columns=["Characteristic", "Level", *labels], dtype=object)


__all__ = ["ALL", "GroupKey", "MISSING", "TABLE_ONE_COLUMNS", "table_one"]
