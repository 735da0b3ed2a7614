"""The data contract (DATA_CONTRACT.md §1–2) as data: columns, types, allowed values."""
from __future__ import annotations

from dataclasses import dataclass

#: Columns every patient table must have.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "patient_id", "trust_id", "pair_id", "arm", "audit_year", "age", "sex",
    "performance_status", "stage", "histology", "imd_quintile",
)
ID_COLUMNS: tuple[str, ...] = ("patient_id", "trust_id", "pair_id")


@dataclass(frozen=True, slots=True)
class ColumnRule:
    """Type and value rule for one column."""

    kind: str                      # "string", "int", "category", "binary", "nonneg"
    values: tuple | None = None    # allowed values (category) or (low, high) for int
    nullable: bool = False
    expected: str = ""


COLUMN_RULES: dict[str, ColumnRule] = {
    "patient_id": ColumnRule("string", expected="unique non-empty string"),
    "trust_id": ColumnRule("string", expected="non-empty string"),
    "pair_id": ColumnRule("string", expected="non-empty string"),
    "arm": ColumnRule("category", ("intervention", "control"), expected="'intervention' or 'control'"),
    "audit_year": ColumnRule("int", (1990, 2100), expected="integer calendar year"),
    "age": ColumnRule("int", (18, 110), expected="integer years 18–110"),
    "sex": ColumnRule("category", ("F", "M"), expected="'F' or 'M'"),
    "performance_status": ColumnRule("int", (0, 4), nullable=True, expected="WHO/ECOG 0–4 or missing"),
    "stage": ColumnRule("category", ("I", "II", "III", "IV"), nullable=True, expected="'I', 'II', 'III', 'IV' or missing"),
    "histology": ColumnRule("category", ("NSCLC", "SCLC", "other"), expected="'NSCLC', 'SCLC' or 'other'"),
    "imd_quintile": ColumnRule("int", (1, 5), expected="integer 1 (most deprived) – 5"),
    # optional columns the generator writes and some outcomes need
    "bronchoscopy": ColumnRule("binary", nullable=False, expected="0/1"),
    "died": ColumnRule("binary", expected="0/1"),
    "survival_days": ColumnRule("nonneg", expected="non-negative days"),
    "days_referral_to_treatment": ColumnRule("nonneg", nullable=True, expected="non-negative days or missing"),
}

#: Columns read as text by the loaders (never converted to numbers).
TEXT_COLUMNS: tuple[str, ...] = ("patient_id", "trust_id", "pair_id", "arm", "sex", "stage", "histology")

#: Required columns of a trust panel (DATA_CONTRACT §2) for binary outcomes (``rate`` is optional), besides
#: ``audit_year`` or ``period``.
PANEL_COLUMNS: tuple[str, ...] = ("trust_id", "pair_id", "arm", "outcome", "numerator", "denominator")
PERIODS: tuple[str, ...] = ("pre", "during", "post")
