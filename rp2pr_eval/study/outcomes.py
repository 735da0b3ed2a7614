"""The outcome registry (STUDY.md §2) and the default case-mix covariates.

Each :class:`Outcome` knows its column, label, kind, eligible group (a rule on
the patient table), the direction that is better, its unit, the national
reference values the generator reproduces, and the audit standard where one
exists.  :func:`resolve_outcome` accepts a registry name or any 0/1 or numeric
column of the patient table (then every patient is eligible).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from rp2pr_eval.errors import DataError

EligibleRule = Callable[[pd.DataFrame], pd.Series]


def _all(df: pd.DataFrame) -> pd.Series:
    return pd.Series(True, index=df.index)


def _histology(value: str) -> EligibleRule:
    def rule(df: pd.DataFrame) -> pd.Series:
        return (df["histology"] == value).fillna(False).astype(bool)

    rule.__name__ = f"histology_{value}"
    return rule


def _had_bronchoscopy(df: pd.DataFrame) -> pd.Series:
    return (pd.to_numeric(df["bronchoscopy"]) == 1).fillna(False).astype(bool)


def _treated_with_referral(df: pd.DataFrame) -> pd.Series:
    return df["days_referral_to_treatment"].notna()


@dataclass(frozen=True, slots=True)
class Outcome:
    """One registry entry.

    ``national`` maps audit year → the national rate (binary, proportion),
    median (continuous, days) or median survival (time to event, days).
    ``trust_sd`` is the true between-trust SD on the model scale (logit, log
    days, log hazard).  ``requires`` lists the columns the eligibility rule reads.
    """

    name: str
    label: str
    kind: str
    eligible_group: str
    better: str
    unit: str
    national: Mapping[int, float]
    trust_sd: float
    primary: bool = False
    audit_standard: float | None = None
    requires: tuple[str, ...] = ()
    event_column: str | None = None
    derived_from: str | None = None
    rule: EligibleRule = field(default=_all, repr=False, compare=False)

    def eligible(self, patients: pd.DataFrame) -> pd.Series:
        """Boolean mask of the patients in this outcome's denominator."""
        missing = [c for c in self.requires if c not in patients.columns]
        if missing:
            raise DataError(
                f"outcome {self.name!r} needs column(s) {missing} to find its eligible group ({self.eligible_group})"
            )
        return self.rule(patients)

    @property
    def display_label(self) -> str:
        """The label with its unit, e.g. ``"Any anti-cancer treatment (%)"`` (no unit twice)."""
        if not self.unit or self.unit.lower() in self.label.lower():
            return self.label
        return f"{self.label} ({self.unit})"

    @property
    def columns(self) -> tuple[str, ...]:
        """The data columns holding this outcome."""
        return (self.name,) if self.event_column is None else (self.name, self.event_column)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "label": self.label, "kind": self.kind,
            "eligible_group": self.eligible_group, "better": self.better, "unit": self.unit,
            "national": {str(k): v for k, v in self.national.items()}, "trust_sd": self.trust_sd,
            "primary": self.primary, "audit_standard": self.audit_standard,
            "event_column": self.event_column, "derived_from": self.derived_from,
        }


def _b(name, label, rate09, rate12, sd, *, group="all", rule=_all, requires=(), primary=False,
       standard=None, derived_from=None) -> Outcome:
    return Outcome(
        name=name, label=label, kind="binary", eligible_group=group, better="higher", unit="%",
        national=MappingProxyType({2009: rate09, 2012: rate12}), trust_sd=sd, primary=primary,
        audit_standard=standard, requires=requires, rule=rule, derived_from=derived_from,
    )


_ENTRIES = (
    _b("mdt_discussed", "Discussed at MDT", 0.95, 0.965, 0.9, primary=True, standard=0.95),
    _b("histo_confirmed", "Histological/cytological confirmation", 0.74, 0.78, 0.40, primary=True, standard=0.75),
    _b("active_treatment", "Any anti-cancer treatment", 0.582, 0.61, 0.30, primary=True),
    _b("nsclc_resection", "Surgical resection in NSCLC", 0.14, 0.22, 0.40, group="histology NSCLC",
       rule=_histology("NSCLC"), requires=("histology",), primary=True),
    _b("sclc_chemo", "Chemotherapy in SCLC", 0.69, 0.70, 0.35, group="histology SCLC",
       rule=_histology("SCLC"), requires=("histology",), primary=True),
    _b("cns_seen", "Seen by lung cancer nurse specialist", 0.75, 0.80, 1.0,
       group="all (missing = no)", primary=True, standard=0.80),
    _b("cns_at_diagnosis", "Nurse specialist present at diagnosis", 0.437, 0.57, 0.9),
    _b("ct_before_bronch", "CT before bronchoscopy", 0.88, 0.94, 0.7, group="had bronchoscopy",
       rule=_had_bronchoscopy, requires=("bronchoscopy",)),
    _b("stage_recorded", "Stage recorded", 0.80, 0.88, 0.9),
    _b("ps_recorded", "Performance status recorded", 0.88, 0.92, 0.9),
    Outcome(
        name="days_referral_to_treatment", label="Days from referral to first treatment",
        kind="continuous", eligible_group="treated, with referral date", better="lower", unit="days",
        national=MappingProxyType({2009: 40.0, 2012: 42.0}), trust_sd=0.20,
        requires=("days_referral_to_treatment",), rule=_treated_with_referral,
    ),
    _b("treated_within_62d", "Treated within 62 days of referral", 0.81, 0.78, 0.4,
       group="treated, with referral date", rule=_treated_with_referral,
       requires=("days_referral_to_treatment",), derived_from="days_referral_to_treatment"),
    Outcome(
        name="survival_days", label="Survival from first seen", kind="time_to_event",
        eligible_group="all", better="longer", unit="days",
        national=MappingProxyType({2008: 191.0, 2012: 221.0}), trust_sd=0.10,
        event_column="died",
    ),
)

#: The outcome registry: name → :class:`Outcome` (read-only).
OUTCOMES: Mapping[str, Outcome] = MappingProxyType({o.name: o for o in _ENTRIES})

#: Display names of the estimators (figures, tables, the report); a name not listed is shown as is.
ESTIMATOR_LABELS: Mapping[str, str] = MappingProxyType({
    "ancova": "ANCOVA (primary)",
    "did_aggregate": "Difference in differences",
    "did_twfe": "Two-way fixed effects",
    "mixed_linear": "Linear mixed model",
    "did_logistic": "Logistic DiD (case-mix)",
    "mixed_logistic": "Mixed logistic model",
    "gee_logistic": "Logistic GEE",
    "did_cox": "Cox DiD",
    "event_study": "Event study",
    "randomisation_test": "Randomisation test",
    "wild_cluster_bootstrap": "Wild cluster bootstrap",
})

#: What an effect on each scale of :class:`~rp2pr_eval.results.effect.Effect` is, in words, as shown
#: (risk differences in percentage points; log ratios exponentiated to ratios).
SCALE_LABELS: Mapping[str, str] = MappingProxyType({
    "risk_difference": "Risk difference (percentage points)",
    "log_odds_ratio": "Odds ratio",
    "log_hazard_ratio": "Hazard ratio",
    "log_ratio": "Ratio of geometric means (intervention / control)",
    "days": "Difference (days)",
})

#: The six primary indicators of the published trial (Russell et al. 2014).
PRIMARY_OUTCOMES: tuple[str, ...] = tuple(o.name for o in _ENTRIES if o.primary)

#: Default case-mix covariates.  ``age`` enters linearly; ``sex``,
#: ``performance_status``, ``stage`` and ``imd_quintile`` as indicators
#: (a missing performance status or stage is its own level).
CASE_MIX: list[str] = ["age", "sex", "performance_status", "stage", "imd_quintile"]

#: Columns the data contract declares categorical even when stored as integers.
CATEGORICAL_COLUMNS: frozenset[str] = frozenset(
    {"sex", "performance_status", "stage", "histology", "imd_quintile", "arm"}
)


def resolve_outcome(patients: pd.DataFrame, outcome: str) -> Outcome:
    """Return the registry entry for ``outcome``, or an ad hoc entry for a data column.

    A column that is not in the registry must be 0/1 (→ binary) or numeric
    (→ continuous); every patient with a non-missing value is then eligible.
    """
    if not isinstance(outcome, str):
        raise TypeError(f"outcome must be a registry name or column name (str), got {type(outcome).__name__}")
    if outcome in OUTCOMES:
        entry = OUTCOMES[outcome]
        for col in entry.columns:
            if col not in patients.columns:
                raise DataError(f"outcome {outcome!r}: column {col!r} is not in the patient table")
        return entry
    if outcome not in patients.columns:
        raise DataError(
            f"outcome {outcome!r} is neither a registry outcome ({', '.join(OUTCOMES)}) nor a column of the patient table"
        )
    col = patients[outcome]
    if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
        raise DataError(f"outcome column {outcome!r} must be 0/1 or numeric, got dtype {col.dtype}")
    values = pd.to_numeric(col.dropna())
    if values.empty:
        raise DataError(f"outcome column {outcome!r} has no non-missing values")
    binary = bool(values.isin([0, 1]).all())

    def present(df: pd.DataFrame, _c=outcome) -> pd.Series:
        return df[_c].notna()

    return Outcome(
        name=outcome, label=outcome, kind="binary" if binary else "continuous",
        eligible_group=f"non-missing {outcome}", better="higher", unit="%" if binary else "",
        national=MappingProxyType({}), trust_sd=float("nan"), requires=(outcome,), rule=present,
    )


def outcome_values(patients: pd.DataFrame, entry: Outcome) -> np.ndarray:
    """Outcome column as a float array (NaN where missing)."""
    return pd.to_numeric(patients[entry.name]).to_numpy(dtype=float, na_value=np.nan)
