"""Publication tables and their export under disclosure control.

- :func:`table_one`: baseline characteristics by arm and period (Table 1).
- :func:`results_table`: effects across outcomes and estimators.
- :func:`national_table`: national rates per outcome and audit year against
  the STUDY.md reference values.
- :func:`export_table`: CSV, LaTeX, Markdown and HTML, byte-for-byte
  deterministic, with disclosure control (DATA_CONTRACT.md §5, STUDY.md §5).

The tables of counts are built tidy first (numbers stay numbers); the wide
display frames are strings made by the formatters at the end of each builder.
Effects are formatted only by :func:`rp2pr_eval.results.format_frame`.

A frame that has been through disclosure control carries
``frame.attrs["disclosure"] = {"status": "protected", "policy": {...},
"count_columns": [...], "columns": [...]}``; a frame built with
``protect=False`` carries ``{"status": "unprotected"}`` and is refused by
:func:`export_table`. See docs/methods/tables.md.
"""
from __future__ import annotations

import dataclasses
import html
import math
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from rp2pr_eval._options import check_option
from rp2pr_eval.data.describe import national_rates
from rp2pr_eval.data.panel import analysis_rows
from rp2pr_eval.data.validate import validate_patients
from rp2pr_eval.errors import DataError
from rp2pr_eval.presentation.disclosure import (
    DisclosurePolicy,
    TableMargins,
    check_disclosure,
    policy_for_design,
    protect_table,
    suppress_counts,
)
from rp2pr_eval.presentation.disclosure.suppression import round_counts
from rp2pr_eval.presentation.panels import year_cube
from rp2pr_eval.results.effect import Effect, effects_table, format_frame
from rp2pr_eval.study.design import StudyDesign, resolve_design
from rp2pr_eval.study.outcomes import OUTCOMES

TableLayout = Literal["wide", "tidy"]
ResultsLayout = Literal["long", "wide"]
ExportFormat = Literal["csv", "tex", "md", "html"]
GroupKey = Literal["arm", "period"]

#: Columns of the tidy Table 1 (``table_one(..., layout="tidy")``).
TABLE_ONE_COLUMNS: tuple[str, ...] = (
    "variable", "level", "arm", "period", "n", "denominator", "percent", "mean", "sd", "median", "q1", "q3",
    "n_trusts",
)
#: Columns of the tidy national table (``national_table(..., layout="tidy")``).
NATIONAL_COLUMNS: tuple[str, ...] = (
    "outcome", "label", "unit", "measure", "audit_year", "numerator", "n", "value", "reference", "difference",
)
ALL = "all"
MISSING = "Missing"
_TOTAL = "__total__"
_MARK = "disclosure"
_COUNT_COLUMNS = ["n", "denominator"]


# ---------------------------------------------------------------------------
# Disclosure helpers
# ---------------------------------------------------------------------------


def disclosure_policy(design: StudyDesign | None = None) -> DisclosurePolicy:
    """The disclosure policy of a study design (``design.disclosure`` and its threshold).

    Parameters
    ----------
    design : StudyDesign, optional
        ``None``: the default design (preset ``"threshold"``, k = 5).

    Returns
    -------
    DisclosurePolicy
        :func:`rp2pr_eval.presentation.disclosure.policy_for_design`; the
        design has already refused a threshold below 2 or one contradicting
        its preset.
    """
    return policy_for_design(design)


def _policy(policy: DisclosurePolicy | None, design: StudyDesign | None) -> DisclosurePolicy:
    if policy is None:
        return disclosure_policy(design)
    if not isinstance(policy, DisclosurePolicy):
        raise ValueError(f"policy must be a DisclosurePolicy or None, got {type(policy).__name__}")
    return policy


def mark_protected(frame: pd.DataFrame, policy: DisclosurePolicy, count_columns: Sequence[str]) -> pd.DataFrame:
    """Record in ``frame.attrs["disclosure"]`` that ``count_columns`` went through disclosure control under ``policy``.

    For tables protected by other modules (e.g. :func:`rp2pr_eval.presentation.flow.flow_table`):
    :func:`export_table` then writes the frame as it is after checking those columns.
    """
    if not isinstance(policy, DisclosurePolicy):
        raise ValueError(f"policy must be a DisclosurePolicy, got {type(policy).__name__}")
    return _mark(frame, policy, count_columns)


def _mark(frame: pd.DataFrame, policy: DisclosurePolicy | None, count_columns: Sequence[str] = ()) -> pd.DataFrame:
    """Record in ``attrs`` whether (and how) the frame was protected."""
    if policy is None:
        mark: dict[str, Any] = {"status": "unprotected"}
    else:
        mark = {
            "status": "protected",
            "policy": dataclasses.asdict(policy),
            "count_columns": [str(c) for c in count_columns],
            "columns": [str(c) for c in frame.columns],
        }
    frame.attrs = {**frame.attrs, _MARK: mark}  # a new dict: attrs may be shared with the frame copied from
    return frame


def _column(values: list, kind: str) -> pd.Series:
    """Numbers stay numbers; only a column that holds a symbol becomes ``object``."""
    if any(isinstance(v, str) for v in values):
        return pd.Series([np.nan if v is None else v for v in values], dtype=object)
    if kind == "count":
        return pd.Series([pd.NA if v is None else int(v) for v in values], dtype="Int64")
    return pd.Series([np.nan if v is None else float(v) for v in values], dtype="float64")


def _protect_levels(counts: pd.DataFrame, policy: DisclosurePolicy | None, hidden_totals: Iterable = ()
                    ) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    """Protect a levels x groups table of counts whose column totals (group sizes) are shown.

    ``hidden_totals``: groups whose total another table sharing it hides.
    Returns the shown counts, the shown totals, and the masks of hidden
    cells and totals. Without a policy, the counts unchanged and empty masks.
    """
    totals = counts.sum(axis=0)
    if policy is None:
        none = pd.DataFrame(False, index=counts.index, columns=counts.columns)
        return counts.astype(object), totals.astype(object), none, pd.Series(False, index=counts.columns)
    st = suppress_counts(counts, policy=policy, count_columns=list(counts.columns), col_total=_TOTAL,
                         also_suppress=[(_TOTAL, g) for g in hidden_totals])
    shown, mask = st.frame, st.mask
    return (shown.drop(index=_TOTAL), shown.loc[_TOTAL], mask.drop(index=_TOTAL), mask.loc[_TOTAL].astype(bool))


def _percent(n: Any, total: Any, hidden: bool, policy: DisclosurePolicy | None) -> Any:
    """Percentage of shown (possibly rounded) counts; withheld when either count is hidden."""
    if hidden:
        return policy.secondary_symbol  # type: ignore[union-attr]
    return 100.0 * int(n) / int(total) if int(total) > 0 else None


def _summary_hidden(n: int, total_hidden: bool, policy: DisclosurePolicy | None) -> bool:
    return policy is not None and (total_hidden or n < policy.min_n_for_summary)


# ---------------------------------------------------------------------------
# Table 1
# ---------------------------------------------------------------------------

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
    pol = _policy(policy, design) if protect else None
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
        protected = [(v, lv, _protect_levels(t, pol, sorted(hidden))) for v, lv, t in level_tables]
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
                    "percent": _percent(shown.at[level, gi], totals[gi], hidden, pol),
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
            if _summary_hidden(vol.size, total_hidden[gi], pol) or small:
                values.update(median=pol.secondary_symbol, q1=pol.secondary_symbol, q3=pol.secondary_symbol)  # type: ignore[union-attr]
        add("patients_per_trust_year", "", gi, **values)
    for gi in range(n_groups):
        a = age[group == gi]
        values = {"n": shown_total[gi]}
        if a.size:
            values.update(mean=float(a.mean()), sd=float(a.std(ddof=1)) if a.size > 1 else None)
            if _summary_hidden(a.size, total_hidden[gi], pol):
                values.update(mean=pol.secondary_symbol, sd=pol.secondary_symbol)  # type: ignore[union-attr]
        add("age", "", gi, **values)
    rows.extend(cat_rows)

    kinds = {"n": "count", "denominator": "count", "n_trusts": "count"}
    tidy = pd.DataFrame({
        col: (pd.Series([r.get(col) for r in rows], dtype="str") if col in ("variable", "level", "arm", "period")
              else _column([r.get(col) for r in rows], kinds.get(col, "float")))
        for col in TABLE_ONE_COLUMNS
    })
    if pol is not None:
        found = check_disclosure(tidy, policy=pol, count_columns=_COUNT_COLUMNS)
        if found:  # an internal guarantee, not a user error
            raise RuntimeError(f"table_one: disclosure control failed: {found[:3]}")
    out = tidy if layout == "tidy" else _table_one_wide(tidy, groups, labels)
    out.attrs = {"n_dropped": n_dropped}
    return _mark(out, pol, _COUNT_COLUMNS if layout == "tidy" else ())


def _fmt_count(v: Any) -> str:
    if isinstance(v, str):
        return v
    return "" if v is None or pd.isna(v) else f"{int(v):,}"


def _fmt_num(v: Any, digits: int = 1) -> str:
    if isinstance(v, str):
        return v
    return "" if v is None or pd.isna(v) else f"{float(v):.{digits}f}"


def _table_one_cell(row: pd.Series) -> str:
    variable = row["variable"]
    if variable == "patients":
        return _fmt_count(row["n"])
    if variable == "trusts":
        return _fmt_count(row["n_trusts"])
    if variable == "patients_per_trust_year":
        if isinstance(row["median"], str) or pd.isna(row["median"]):
            return _fmt_num(row["median"])
        return f"{row['median']:.1f} ({row['q1']:.1f}–{row['q3']:.1f})"
    if variable == "age":
        if isinstance(row["mean"], str) or pd.isna(row["mean"]):
            return _fmt_num(row["mean"])
        return f"{row['mean']:.1f} ({_fmt_num(row['sd'])})"
    n, pct = row["n"], row["percent"]
    if isinstance(n, str):
        return n
    if isinstance(pct, str):
        return f"{_fmt_count(n)} ({pct})"
    return _fmt_count(n) if pd.isna(pct) else f"{_fmt_count(n)} ({pct:.1f}%)"


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


# ---------------------------------------------------------------------------
# Effects across outcomes and estimators
# ---------------------------------------------------------------------------

_REQUIRED_EFFECT_COLUMNS = ("outcome", "estimator", "scale", "estimate", "ci_low", "ci_high", "p_value")
_SCALE_LABELS = {
    "log_odds_ratio": "log OR", "log_hazard_ratio": "log HR", "log_ratio": "log ratio",
    "odds_ratio": "OR", "hazard_ratio": "HR",
}


def _effects_frame(effects_or_frame: object) -> pd.DataFrame:
    if isinstance(effects_or_frame, pd.DataFrame):
        frame = effects_or_frame.copy()
    elif isinstance(effects_or_frame, Effect):
        frame = effects_table([effects_or_frame])
    elif isinstance(effects_or_frame, (str, bytes)) or not isinstance(effects_or_frame, Iterable):
        raise ValueError(f"results_table needs Effects or a tidy effects frame, got {type(effects_or_frame).__name__}")
    else:
        frame = effects_table(effects_or_frame)  # TypeError for non-Effects
    if frame.empty:
        raise ValueError("results_table: no effects to tabulate")
    missing = [c for c in _REQUIRED_EFFECT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"results_table: the frame lacks column(s) {missing}; a tidy effects frame has {list(_REQUIRED_EFFECT_COLUMNS)}")
    for col in ("estimate", "ci_low", "ci_high", "p_value"):
        if not is_numeric_dtype(frame[col].dtype):
            raise ValueError(f"results_table: column {col!r} must be numeric; it has dtype {frame[col].dtype}")
    for col in ("se", "df"):
        if col not in frame.columns:
            frame[col] = np.nan
    return frame.reset_index(drop=True)


def _scale_label(scale: str, outcome: str, scale_pp: bool) -> str:
    if scale == "risk_difference":
        return "pp" if scale_pp else "proportion"
    if scale == "days":
        return OUTCOMES[outcome].unit if outcome in OUTCOMES else "days"
    return _SCALE_LABELS.get(scale, scale)


def results_table(
    effects_or_frame: Effect | Iterable[Effect] | pd.DataFrame,
    *,
    labels: Mapping[str, str] | None = None,
    scale_pp: bool = True,
    p_adjusted: bool = True,
    layout: ResultsLayout = "long",
    digits: int | None = None,
) -> pd.DataFrame:
    """Effects across outcomes and estimators as a display table.

    Outcomes come in registry order (:data:`rp2pr_eval.OUTCOMES`; others
    after them, in order of appearance) under their registry labels;
    estimators in order of appearance. Each effect shows
    ``estimate [CI]`` and its p-value, and the adjusted p-value when the
    effects carry one (:func:`adjust_pvalues` stores ``p_adjusted``). The
    numbers are formatted by :func:`rp2pr_eval.results.format_frame`.

    Parameters
    ----------
    effects_or_frame : Effect, iterable of Effect, or pandas.DataFrame
        Effects, or their tidy frame (:func:`rp2pr_eval.effects_table`;
        needs ``outcome, estimator, scale, estimate, ci_low, ci_high,
        p_value``).
    labels : mapping, optional
        Display names for outcomes and estimators, overriding the registry
        labels (e.g. ``{"did_aggregate": "DiD, trust-period rates"}``).
    scale_pp : bool
        Risk differences in percentage points (default) or as proportions.
    p_adjusted : bool
        Show the adjusted p-value column when present (default).
    layout : {"long", "wide"}
        ``"long"``: one row per outcome and estimator (grouped by outcome),
        columns ``Outcome, Estimator, Scale, Estimate [95% CI], p`` (and
        ``p adj.``). ``"wide"``: one row per outcome and scale, one
        ``estimate [CI]`` and ``p`` column per estimator.
    digits : int, optional
        Decimals of estimates and limits; default 2 with ``scale_pp``, else
        3. p-values always have 3 decimals (or show ``<0.001``).

    Returns
    -------
    pandas.DataFrame
        Strings, ready for :func:`export_table`. Model estimates and
        confidence intervals need no disclosure control (STUDY.md §5).

    Raises
    ------
    ValueError
        No effects, missing or non-numeric columns, the same outcome,
        estimator and scale twice, mixed confidence levels, invalid options.
    """
    check_option("layout", layout, ResultsLayout)
    for name, value in (("scale_pp", scale_pp), ("p_adjusted", p_adjusted)):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {value!r}")
    if digits is None:
        digits = 2 if scale_pp else 3
    if not isinstance(digits, int) or isinstance(digits, bool) or digits < 0:
        raise ValueError(f"digits must be a non-negative integer or None, got {digits!r}")
    if labels is not None and (not isinstance(labels, Mapping)
                               or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())):
        raise ValueError("labels must be a mapping of outcome or estimator names to display strings")
    labels = dict(labels or {})
    frame = _effects_frame(effects_or_frame)

    keys = list(zip(frame["outcome"], frame["estimator"], frame["scale"]))
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(
            f"results_table: more than one effect for (outcome, estimator, scale) {dup[:3]}; give them distinct "
            "estimator names (e.g. dataclasses.replace(effect, estimator='did_aggregate (CR1)'))"
        )
    level = 0.95
    if "level" in frame.columns:
        levels = pd.unique(frame["level"].dropna())
        if len(levels) > 1:
            raise ValueError(f"results_table: effects have different confidence levels {sorted(levels.tolist())}")
        if len(levels):
            level = float(levels[0])
    registry = {name: i for i, name in enumerate(OUTCOMES)}
    extra = {o: len(registry) + i for i, o in enumerate(pd.unique(frame["outcome"])) if o not in registry}
    est_rank = {e: i for i, e in enumerate(pd.unique(frame["estimator"]))}
    frame["_o"] = frame["outcome"].map(lambda o: registry.get(o, extra.get(o)))
    frame["_e"] = frame["estimator"].map(est_rank)
    frame = frame.sort_values(["_o", "_e"], kind="stable").reset_index(drop=True)

    shown = format_frame(frame, digits=digits, scale_pp=scale_pp)
    ci_head = f"Estimate [{100 * level:g}% CI]"
    has_adj = p_adjusted and "p adj." in shown.columns and frame["p_adjusted"].notna().any()
    adj_head = "p adj."
    if has_adj and "adjust_method" in frame.columns:
        methods = pd.unique(frame["adjust_method"].dropna())
        if len(methods) == 1:
            adj_head = f"p adj. ({methods[0]})"
    long = pd.DataFrame({
        "Outcome": [labels.get(o, OUTCOMES[o].label if o in OUTCOMES else o) for o in frame["outcome"]],
        "Estimator": [labels.get(e, e) for e in frame["estimator"]],
        "Scale": [_scale_label(s, o, scale_pp) for s, o in zip(frame["scale"], frame["outcome"])],
        ci_head: (shown["estimate"] + " " + shown["95% CI"]).to_numpy(),
        "p": shown["p"].to_numpy(),
    }, dtype=object)
    if has_adj:
        long[adj_head] = shown["p adj."].to_numpy()
    if layout == "long":
        return long
    stats = [ci_head, "p"] + ([adj_head] if has_adj else [])
    rows = long[["Outcome", "Scale"]].drop_duplicates().reset_index(drop=True)
    wide = rows.copy()
    for est in pd.unique(long["Estimator"]):
        part = long[long["Estimator"] == est]
        merged = rows.merge(part, on=["Outcome", "Scale"], how="left")
        for stat in stats:
            wide[f"{est}: {stat}"] = merged[stat].fillna("").to_numpy()
    return wide.astype(object)


# ---------------------------------------------------------------------------
# National rates against STUDY.md
# ---------------------------------------------------------------------------

_MEASURES = {"binary": "rate", "continuous": "median", "time_to_event": "median survival (Kaplan–Meier)"}


def national_table(
    patients: pd.DataFrame,
    *,
    design: StudyDesign | None = None,
    policy: DisclosurePolicy | None = None,
    protect: bool = True,
    layout: TableLayout = "tidy",
) -> pd.DataFrame:
    """National rates (medians, median survival) per outcome and audit year against STUDY.md.

    The numbers come from :func:`rp2pr_eval.data.describe.national_rates`; this
    function adds the registry units (rates in %, times in days), the
    difference from the STUDY.md reference value and disclosure control.

    Parameters
    ----------
    patients : pandas.DataFrame
        Patient table (DATA_CONTRACT.md §1); validated first. Outcomes whose
        columns are absent are left out.
    design : StudyDesign, optional
        Supplies the disclosure policy.
    policy : DisclosurePolicy, optional
        Overrides the design's policy.
    protect : bool
        Apply disclosure control (default); ``False`` for exact numbers
        (marked unprotected; :func:`export_table` refuses them).
    layout : {"tidy", "wide"}
        ``"tidy"``: one row per outcome and year, columns
        :data:`NATIONAL_COLUMNS` (``value``, ``reference`` and
        ``difference`` in the outcome's unit: % and percentage points for
        rates, days otherwise). ``"wide"``: strings, one row per outcome,
        one column per audit year and the reference values.

    Returns
    -------
    pandas.DataFrame

    Notes
    -----
    For a binary outcome the events and non-events of each year form a
    table whose column totals (the year's patients) are shown, protected
    like :func:`table_one` so that a small number of non-events cannot be
    worked out from the rate; the rate is withheld when the events or the
    total are. A median is withheld when its n is withheld or below
    ``policy.min_n_for_summary``.
    """
    check_option("layout", layout, TableLayout)
    if not isinstance(protect, (bool, np.bool_)):
        raise ValueError(f"protect must be True or False, got {protect!r}")
    design = resolve_design(design)
    pol = _policy(policy, design) if protect else None
    validate_patients(patients, design=design, missing_period="ignore",
                      incomplete_pairs="keep")  # descriptive: a pair that lost a trust is shown as it is
    rates = national_rates(patients)
    if rates.empty:
        raise DataError(f"the patient table has none of the registry outcome columns ({', '.join(OUTCOMES)})")

    rows: list[dict[str, Any]] = []
    for name in pd.unique(rates["outcome"]):
        entry = OUTCOMES[name]
        part = rates[rates["outcome"] == name].reset_index(drop=True)
        years = part["audit_year"].tolist()
        n = part["n"].to_numpy(dtype=np.int64)
        binary = entry.kind == "binary"
        scale = 100.0 if binary else 1.0
        if binary:
            events = np.rint(part["value"].to_numpy() * n).astype(np.int64)
            counts = pd.DataFrame([events, n - events], index=["events", "non_events"], columns=range(len(years)))
        else:
            counts = pd.DataFrame([n], index=["n"], columns=range(len(years)))
        shown, totals, mask, tmask = _protect_levels(counts, pol)
        if binary and pol is not None:
            shown, totals, mask, tmask = _national_cells(patients, name, years, pol)
        for j, year in enumerate(years):
            hidden = bool(tmask[j] or (binary and mask.at["events", j]))
            if binary:
                value = _percent(shown.at["events", j], totals[j], hidden, pol)
            elif _summary_hidden(int(n[j]), hidden, pol):
                value = pol.secondary_symbol  # type: ignore[union-attr]
            else:
                value = float(part.at[j, "value"])
            ref = part.at[j, "reference"] * scale
            if isinstance(value, str) or value is None or np.isnan(ref) or np.isnan(value):
                difference = value if isinstance(value, str) else None
            else:
                difference = value - ref
            rows.append({
                "outcome": name, "label": entry.label, "unit": entry.unit, "measure": _MEASURES[entry.kind],
                "audit_year": int(year), "numerator": shown.at["events", j] if binary else None,
                "n": totals[j], "value": value, "reference": None if np.isnan(ref) else ref,
                "difference": difference,
            })
    kinds = {"audit_year": "count", "numerator": "count", "n": "count"}
    tidy = pd.DataFrame({
        col: (pd.Series([r[col] for r in rows], dtype="str") if col in ("outcome", "label", "unit", "measure")
              else _column([r[col] for r in rows], kinds.get(col, "float")))
        for col in NATIONAL_COLUMNS
    })
    if layout == "tidy":
        return _mark(tidy, pol, ["numerator", "n"])
    return _mark(_national_wide(tidy), pol)


def _national_cells(patients: pd.DataFrame, name: str, years: list, policy: DisclosurePolicy
                    ) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    """Events and patients of each year, protected with the arm-year counts of the trends figure.

    :func:`rp2pr_eval.presentation.panels.year_cube` protects both together, so a
    national count hidden here cannot be added up from the arm-years saved for the
    figures, nor an arm-year worked out from the national counts shown here.
    """
    data, _ = analysis_rows(patients, OUTCOMES[name])
    grouped = data.groupby([data["arm"].astype(str), data["audit_year"]], sort=True)[name]
    arm_years = grouped.agg(numerator="sum", denominator="size").reset_index()
    arm_years["numerator"] = arm_years["numerator"].round().astype(np.int64)
    cube = year_cube(arm_years, policy).query("arm == 'all'").set_index("audit_year")
    shown = pd.DataFrame(index=["events", "non_events"], columns=range(len(years)), dtype=object)
    mask = pd.DataFrame(False, index=["events", "non_events"], columns=range(len(years)))
    totals, tmask = pd.Series(index=range(len(years)), dtype=object), pd.Series(False, index=range(len(years)))
    for j, year in enumerate(years):
        row = cube.loc[int(year)]
        e, n = int(row["numerator"]), int(row["denominator"])
        e_shown, n_shown = (int(v) for v in round_counts(np.array([e, n]), policy.rounding))
        shown.at["events", j] = (policy.symbol if row["small_numerator"] else policy.secondary_symbol
                                 if row["withheld_numerator"] else e_shown)
        shown.at["non_events", j] = policy.secondary_symbol if row["withheld_non_events"] else n_shown - e_shown
        totals[j] = (policy.symbol if row["small_denominator"] else policy.secondary_symbol
                     if row["withheld_denominator"] else n_shown)
        mask.at["events", j] = bool(row["withheld_numerator"])
        mask.at["non_events", j] = bool(row["withheld_non_events"])
        tmask[j] = bool(row["withheld_denominator"])
    return shown, totals, mask, tmask


def _national_wide(tidy: pd.DataFrame) -> pd.DataFrame:
    years = sorted(pd.unique(tidy["audit_year"]).tolist())
    records = []
    for name in pd.unique(tidy["outcome"]):
        part = tidy[tidy["outcome"] == name]
        first = part.iloc[0]
        rec = {"Outcome": first["label"], "Unit": first["unit"], "Measure": first["measure"]}
        values = dict(zip(part["audit_year"], part["value"]))
        rec.update({str(y): _fmt_num(values.get(y)) for y in years})
        refs = part[part["reference"].notna()]
        rec["STUDY.md reference"] = "; ".join(f"{y}: {_fmt_num(v)}" for y, v in zip(refs["audit_year"], refs["reference"]))
        records.append(rec)
    return pd.DataFrame(records, dtype=object)


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------

_PATIENT_MEASURES = ("age", "survival_days", "days_referral_to_treatment")
_PATIENT_COLUMNS = _PATIENT_MEASURES + ("sex", "performance_status", "stage", "histology", "imd_quintile", "died")
_EFFECT_DISPLAY = ("outcome", "estimator", "scale", "estimate", "se", "ci_low", "ci_high", "p_value", "df")
_EFFECT_NUMERIC = ("estimate", "se", "ci_low", "ci_high", "p_value", "df", "level", "p_adjusted",
                   "n_obs", "n_trusts", "n_clusters")


def _patient_level(frame: pd.DataFrame) -> str | None:
    """Why the frame looks like patient records, or None."""
    names = {str(c) for c in frame.columns} | {str(n) for n in frame.index.names if n is not None}
    if "patient_id" in names:
        return "it has a 'patient_id' column"
    present = [c for c in _PATIENT_COLUMNS if c in names]
    if any(c in present for c in _PATIENT_MEASURES) and len(present) >= 3:
        return f"it has the per-patient columns {present} (one row per patient)"
    return None


def _labels_list(name: str, value: Sequence[Hashable] | None) -> list[Hashable]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a list of column labels, got {value!r}")
    return list(value)


def _check_declared(
    frame: pd.DataFrame,
    count_columns: Sequence[Hashable],
    percent_columns: Mapping[Hashable, Any] | None,
    summary_columns: Mapping[Hashable, Any] | None,
    exempt_columns: Sequence[Hashable] | None,
) -> None:
    """Every numeric column of an unprotected frame is a count, a percentage, a summary or exempt.

    Without count columns, integer columns are left to the audit (they are
    taken for counts); floats must be declared.
    """
    counts = _labels_list("count_columns", count_columns)
    exempt = _labels_list("exempt_columns", exempt_columns)
    unknown = [c for c in counts + exempt if c not in frame.columns]
    if unknown:
        raise ValueError(f"export_table: column(s) {unknown} not in the table; columns are {list(frame.columns)}")
    declared = set(counts) | set(percent_columns or {}) | set(summary_columns or {}) | set(exempt)
    if all(c in frame.columns for c in _EFFECT_DISPLAY):
        declared |= set(_EFFECT_NUMERIC) & set(frame.columns)
    undeclared = []
    for c in frame.columns:
        dtype = frame[c].dtype
        if c in declared or not is_numeric_dtype(dtype) or is_bool_dtype(dtype):
            continue
        if counts or dtype.kind == "f":
            undeclared.append(c)
    if undeclared:
        raise DataError(
            f"export_table: numeric column(s) {undeclared} are not declared; name each as a count "
            "(count_columns), a percentage of counts (percent_columns), a mean or median (summary_columns), or "
            "exempt_columns if it is not built on counts of patients"
        )


def _flat_columns(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    if isinstance(out.columns, pd.MultiIndex):
        out.columns = [" ".join(str(p) for p in c if str(p)) for c in out.columns]
    return out


def _show_index(frame: pd.DataFrame) -> bool:
    return not (isinstance(frame.index, pd.RangeIndex) and frame.index.name is None)


def _cell_text(value: Any, digits: int) -> str:
    if isinstance(value, str):
        return value
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def _display_strings(frame: pd.DataFrame, digits: int) -> pd.DataFrame:
    """The cells as text for LaTeX, Markdown and HTML (effects via results.format_frame)."""
    if all(c in frame.columns for c in _EFFECT_DISPLAY):
        return format_frame(frame, digits=digits).reset_index(drop=True)
    if _show_index(frame):
        names = frame.index.names
        unnamed = [("" if len(names) == 1 else f"level_{i}") if n is None else n for i, n in enumerate(names)]
        frame = frame.rename_axis(unnamed).reset_index()
    out = pd.DataFrame({str(c): [_cell_text(v, digits) for v in frame.iloc[:, j]]
                        for j, c in enumerate(frame.columns)}, dtype=object)
    return out


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _markdown(shown: pd.DataFrame, caption: str | None, notes: list[str]) -> str:
    lines = [f"**{_md_escape(caption)}**", ""] if caption else []
    lines.append("| " + " | ".join(_md_escape(c) for c in shown.columns) + " |")
    lines.append("|" + "---|" * len(shown.columns))
    lines += ["| " + " | ".join(_md_escape(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    lines += [""] + notes if notes else []
    return "\n".join(lines) + "\n"


def _html(shown: pd.DataFrame, caption: str | None, notes: list[str]) -> str:
    body = shown.to_html(index=False, border=0, escape=True)
    if caption:
        body = re.sub(r"^(<table[^>]*>)", lambda m: f"{m.group(1)}\n  <caption>{html.escape(caption)}</caption>", body, count=1)
    foot = "".join(f'\n<p class="table-note">{html.escape(n)}</p>' for n in notes)
    return body + foot + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}"}


def _tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in text)


def _latex(shown: pd.DataFrame, caption: str | None, notes: list[str]) -> str:
    tabular = shown.to_latex(index=False, escape=True)
    # pandas escapes the LaTeX specials but not < and >, which render as ¡ and ¿ in OT1 fonts.
    tabular = tabular.replace("<", r"\textless{}").replace(">", r"\textgreater{}")
    if not caption and not notes:
        return tabular
    parts = [r"\begin{table}[htbp]", r"\centering"]
    if caption:
        parts.append(rf"\caption{{{_tex_escape(caption)}}}")
    parts.append(tabular.rstrip("\n"))
    if notes:
        parts.append(r"\par\smallskip")
        parts += [rf"{{\footnotesize {_tex_escape(n)}\par}}" for n in notes]
    parts.append(r"\end{table}")
    return "\n".join(parts) + "\n"


def export_table(
    frame: pd.DataFrame,
    path_stem: str | Path,
    *,
    formats: Sequence[str] = ("csv", "tex", "md", "html"),
    caption: str | None = None,
    policy: DisclosurePolicy | None = None,
    count_columns: Sequence[Hashable] | None = None,
    percent_columns: Mapping[Hashable, tuple[Hashable, Hashable]] | None = None,
    summary_columns: Mapping[Hashable, Hashable] | None = None,
    margins: TableMargins | None = None,
    exempt_columns: Sequence[Hashable] | None = None,
    digits: int = 3,
) -> list[Path]:
    """Write a table as CSV, LaTeX, Markdown and HTML under disclosure control.

    The same frame always gives the same bytes (no timestamps, ``\\n`` line
    ends, UTF-8). Files are ``<path_stem>.csv``, ``.tex``, ``.md``,
    ``.html``; parent folders are created.

    Disclosure control, in order:

    1. A frame with a ``patient_id`` column or index level, or with the
       columns of a patient record (``age``, ``survival_days`` or
       ``days_referral_to_treatment`` with at least two more of ``sex``,
       ``performance_status``, ``stage``, ``histology``, ``imd_quintile``,
       ``died``), is refused.
    2. A frame marked protected (``attrs["disclosure"]``, set by
       :func:`table_one`, :func:`national_table` and this function) is
       written as it is, after checking that its policy is ``policy`` (when
       given), that no column was added since, and that its count columns
       pass :func:`~rp2pr_eval.presentation.disclosure.check_disclosure`. A frame marked
       unprotected (``protect=False``) is refused.
    3. Otherwise every numeric column must be declared: a count, a
       percentage of counts, a summary with its n, or exempt
       (``exempt_columns``: numbers not derived from counts of patients; the
       numeric columns of a tidy effects frame are exempt by default). An
       undeclared float column is refused, because a percentage beside its
       denominator gives a suppressed count back.
    4. With ``count_columns``, the frame goes through
       :func:`~rp2pr_eval.presentation.disclosure.protect_table` (with
       ``percent_columns``, ``summary_columns`` and ``margins``).
    5. Without, the frame is audited with ``check_disclosure`` (count
       columns inferred: whole numbers stored as integers) and refused if a
       small count is visible.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table. Not modified. A non-default index is written as columns.
    path_stem : str or Path
        Output path without extension.
    formats : sequence of {"csv", "tex", "md", "html"}
        Formats to write, in this order.
    caption : str, optional
        Title for LaTeX (``\\caption``), Markdown (bold line) and HTML
        (``<caption>``); CSV holds the data only.
    policy : DisclosurePolicy, optional
        Default: the protected frame's own policy, else the default design's
        (:func:`disclosure_policy`).
    count_columns, percent_columns, summary_columns, margins
        Passed to :func:`~rp2pr_eval.presentation.disclosure.protect_table` for a frame
        not yet protected. ``margins=None`` (default) adds no totals: if the
        frame's counts add up to totals shown elsewhere, ask for them here so
        that secondary suppression protects against them.
    exempt_columns : sequence of labels, optional
        Numeric columns that are not counts of patients nor built on them
        (model estimates, years, trust-level indices) and need no control.
    digits : int
        Decimals of floats in LaTeX, Markdown and HTML (CSV keeps full
        precision). A tidy effects frame is formatted by
        :func:`rp2pr_eval.results.format_frame` instead.

    Returns
    -------
    list of Path
        The files written, in the order of ``formats``.

    Raises
    ------
    DataError
        Patient-level rows, an unprotected frame, a protected frame changed
        since or protected under another policy, or a visible small count.
    ValueError
        Invalid formats, options or count columns.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"export_table: frame must be a pandas DataFrame, got {type(frame).__name__}")
    if isinstance(formats, str) or not isinstance(formats, Sequence) or not formats:
        raise ValueError(f"formats must be a non-empty sequence of 'csv', 'tex', 'md', 'html', got {formats!r}")
    for fmt in formats:
        check_option("formats", fmt, ExportFormat)
    if len(set(formats)) != len(formats):
        raise ValueError(f"formats repeats a format: {list(formats)}")
    if caption is not None and not isinstance(caption, str):
        raise ValueError(f"caption must be a string or None, got {caption!r}")
    if not isinstance(digits, int) or isinstance(digits, bool) or digits < 0:
        raise ValueError(f"digits must be a non-negative integer, got {digits!r}")
    if policy is not None and not isinstance(policy, DisclosurePolicy):
        raise ValueError(f"policy must be a DisclosurePolicy or None, got {type(policy).__name__}")
    reason = _patient_level(frame)
    if reason:
        raise DataError(f"export_table refuses patient-level data: {reason}; export aggregated tables only")

    mark = frame.attrs.get(_MARK)
    status = mark.get("status") if isinstance(mark, Mapping) else None
    if status == "unprotected":
        raise DataError("export_table: the frame was built with protect=False (exact small counts); rebuild it with "
                        "protect=True to export it")
    if status == "protected":
        if count_columns is not None or percent_columns or summary_columns:
            raise ValueError("export_table: the frame is already protected; do not pass count_columns, "
                             "percent_columns or summary_columns")
        marked = DisclosurePolicy(**mark["policy"])
        if policy is not None and policy != marked:
            raise DataError(f"export_table: the frame was protected under {marked.preset!r} (threshold "
                            f"{marked.threshold}) but export asks for {policy.preset!r} (threshold "
                            f"{policy.threshold}); rebuild it with that policy")
        added = [str(c) for c in frame.columns if str(c) not in set(mark.get("columns", []))]
        if added:
            raise DataError(f"export_table: column(s) {added} were added after disclosure control; protect the "
                            "frame again (pass count_columns for a plain table)")
        policy, out = marked, frame
        audit = [c for c in frame.columns if str(c) in set(mark.get("count_columns", []))]
        found = check_disclosure(out, policy=policy, count_columns=audit)
        if found:
            raise DataError(f"export_table: the protected frame shows small counts, so it was changed after "
                            f"protection: {found[:3]}")
    elif count_columns is not None:
        policy = _policy(policy, None)
        _check_declared(frame, count_columns, percent_columns, summary_columns, exempt_columns)
        out = protect_table(frame, policy=policy, count_columns=count_columns, percent_columns=percent_columns,
                            summary_columns=summary_columns, margins=margins)
        audit = list(count_columns) + ([] if margins in (None, "columns") else ["Total"])
        _mark(out, policy, audit)
        found = check_disclosure(out, policy=policy, count_columns=audit)
        if found:  # an internal guarantee of protect_table
            raise RuntimeError(f"export_table: disclosure control failed: {found[:3]}")
    else:
        if percent_columns or summary_columns:
            raise ValueError("export_table: percent_columns and summary_columns need count_columns")
        _check_declared(frame, (), None, None, exempt_columns)
        policy, out = _policy(policy, None), frame
        found = check_disclosure(out, policy=policy)
        if found:
            raise DataError(f"export_table: the table shows small counts ({len(found)} cell(s)): {found[:3]}; pass "
                            "count_columns (and percent_columns) to protect it, or build it protected")
    notes = [policy.footnote] if (out.attrs.get(_MARK) or {}).get("status") == "protected" else []

    flat = _flat_columns(out)
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    shown = _display_strings(flat, digits) if set(formats) - {"csv"} else None
    paths = []
    for fmt in formats:
        if fmt == "csv":
            text = flat.to_csv(index=_show_index(flat), lineterminator="\n", na_rep="")
        elif fmt == "md":
            text = _markdown(shown, caption, notes)
        elif fmt == "html":
            text = _html(shown, caption, notes)
        else:
            text = _latex(shown, caption, notes)
        path = stem.with_name(f"{stem.name}.{fmt}")
        path.write_bytes(text.encode("utf-8"))
        paths.append(path)
    return paths


__all__ = [
    "NATIONAL_COLUMNS",
    "TABLE_ONE_COLUMNS",
    "disclosure_policy",
    "export_table",
    "mark_protected",
    "national_table",
    "results_table",
    "table_one",
]
