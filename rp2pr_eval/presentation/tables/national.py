"""National rates (medians, median survival) per outcome and audit year against STUDY.md (:func:`national_table`).

The numbers come from :func:`rp2pr_eval.data.describe.national_rates`; the
counts of binary outcomes are protected together with the arm × year counts of
the trends figure (:func:`rp2pr_eval.presentation.panels.year_cube`). See
docs/methods/tables.md.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from rp2pr_eval._options import check_option
from rp2pr_eval.data.describe import national_rates
from rp2pr_eval.data.panel import analysis_rows
from rp2pr_eval.data.validate import validate_patients
from rp2pr_eval.errors import DataError
from rp2pr_eval.presentation.disclosure import DisclosurePolicy
from rp2pr_eval.presentation.disclosure.suppression import round_counts
from rp2pr_eval.presentation.panels import year_cube
from rp2pr_eval.presentation.tables.marking import (
    TableLayout,
    format_number,
    mark_frame,
    protect_levels,
    resolve_policy,
    shown_percent,
    summary_hidden,
    typed_column,
)
from rp2pr_eval.study.design import StudyDesign, resolve_design
from rp2pr_eval.study.outcomes import OUTCOMES

#: Columns of the tidy national table (``national_table(..., layout="tidy")``).
NATIONAL_COLUMNS: tuple[str, ...] = (
    "outcome", "label", "unit", "measure", "audit_year", "numerator", "n", "value", "reference", "difference",
)
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
    pol = resolve_policy(policy, design) if protect else None
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
        shown, totals, mask, tmask = protect_levels(counts, pol)
        if binary and pol is not None:
            shown, totals, mask, tmask = _national_cells(patients, name, years, pol)
        for j, year in enumerate(years):
            hidden = bool(tmask[j] or (binary and mask.at["events", j]))
            if binary:
                value = shown_percent(shown.at["events", j], totals[j], hidden, pol)
            elif summary_hidden(int(n[j]), hidden, pol):
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
              else typed_column([r[col] for r in rows], kinds.get(col, "float")))
        for col in NATIONAL_COLUMNS
    })
    if layout == "tidy":
        return mark_frame(tidy, pol, ["numerator", "n"])
    return mark_frame(_national_wide(tidy), pol)


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
        rec.update({str(y): format_number(values.get(y)) for y in years})
        refs = part[part["reference"].notna()]
        rec["STUDY.md reference"] = "; ".join(f"{y}: {format_number(v)}" for y, v in zip(refs["audit_year"], refs["reference"]))
        records.append(rec)
    return pd.DataFrame(records, dtype=object)


__all__ = ["NATIONAL_COLUMNS", "national_table"]
