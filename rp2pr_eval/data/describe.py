"""Descriptive summaries of a patient table: design structure and national rates against STUDY.md."""
from __future__ import annotations

import numpy as np
import pandas as pd

from rp2pr_eval.data.panel import analysis_rows
from rp2pr_eval.study.design import StudyDesign, resolve_design
from rp2pr_eval.study.outcomes import OUTCOMES


def design_summary(patients: pd.DataFrame, *, design: StudyDesign | None = None) -> dict[str, object]:
    """Counts of trusts, pairs, arms and patients per audit year (validated input assumed)."""
    design = resolve_design(design)
    trusts = patients.drop_duplicates("trust_id")
    pairs = trusts.drop_duplicates("pair_id")
    return {
        "patients": int(len(patients)),
        "trusts": int(len(trusts)),
        "pairs": int(len(pairs)),
        "trusts_by_arm": {str(k): int(v) for k, v in trusts["arm"].value_counts().sort_index().items()},
        "pairs_by_arm": {str(k): int(v) for k, v in pairs["arm"].value_counts().sort_index().items()},
        "patients_by_year": {int(k): int(v) for k, v in patients["audit_year"].value_counts().sort_index().items()},
        "periods": {"pre": list(design.pre_years), "during": list(design.during_years), "post": list(design.post_years)},
    }


def national_rates(patients: pd.DataFrame) -> pd.DataFrame:
    """National rate (binary), median (continuous) or median survival per outcome and audit year.

    Returns a tidy frame ``outcome, label, audit_year, n, value, reference``
    where ``reference`` is the STUDY.md value for that year (NaN if none).
    Median survival is the Kaplan–Meier median (statsmodels ``SurvfuncRight``).
    """
    from statsmodels.duration.survfunc import SurvfuncRight

    rows = []
    for name, entry in OUTCOMES.items():
        if any(c not in patients.columns for c in entry.columns + entry.requires):
            continue
        data, _ = analysis_rows(patients, entry)
        for year, g in data.groupby("audit_year", sort=True):
            values = pd.to_numeric(g[name]).to_numpy(dtype=float)
            if entry.kind == "binary":
                value = float(values.mean())
            elif entry.kind == "continuous":
                value = float(np.median(values))
            else:
                value = float(SurvfuncRight(values, pd.to_numeric(g[entry.event_column]).to_numpy(dtype=float)).quantile(0.5))
            rows.append({"outcome": name, "label": entry.label, "audit_year": int(year), "n": int(len(g)),
                         "value": value, "reference": float(entry.national.get(int(year), np.nan))})
    return pd.DataFrame(rows)


def national_rates_table(patients: pd.DataFrame) -> pd.DataFrame:
    """:func:`national_rates` as a wide table: one row per outcome, audit years as columns, STUDY.md references beside."""
    rates = national_rates(patients)
    table = rates.pivot(index="label", columns="audit_year", values="value")
    refs = rates.dropna(subset=["reference"]).pivot(index="label", columns="audit_year", values="reference")
    refs.columns = [f"STUDY.md {c}" for c in refs.columns]
    order = list(dict.fromkeys(rates["label"]))
    return table.join(refs).loc[order]


def volume_summary(patients: pd.DataFrame) -> pd.DataFrame:
    """Patients per trust by audit year: trusts, total, median, quartiles, min and max (no trust is named)."""
    per = patients.groupby(["audit_year", "trust_id"], observed=True).size().rename("n").reset_index()
    g = per.groupby("audit_year")["n"]
    return pd.DataFrame({
        "trusts": g.size(), "patients": g.sum(), "median": g.median(), "q1": g.quantile(0.25),
        "q3": g.quantile(0.75), "min": g.min(), "max": g.max(),
    })


def completeness(patients: pd.DataFrame) -> pd.DataFrame:
    """Share of patients with each case-mix or recording field present, by audit year."""
    cols = [c for c in ("performance_status", "stage", "treatment_recorded", "cns_recorded") if c in patients.columns]
    out = {}
    for col in cols:
        present = patients[col].notna() if col in ("performance_status", "stage") else (patients[col] == 1)
        out[col] = present.groupby(patients["audit_year"]).mean()
    return pd.DataFrame(out)


def trend_panels(patients: pd.DataFrame, outcomes, *, design: StudyDesign | None = None) -> dict[str, pd.DataFrame]:
    """Trust × audit-year panels for several binary outcomes (validation once)."""
    from rp2pr_eval.data.panel import trust_panel
    from rp2pr_eval.data.validate import validate_patients

    design = resolve_design(design)
    validate_patients(patients, design=design, missing_period="ignore",
                      incomplete_pairs="keep")  # descriptive: a pair that lost a trust is shown as it is
    return {o: trust_panel(patients, o, by="audit_year", design=design, validate=False) for o in outcomes}
