"""A raw, audit-like extract of a simulated patient table: what a real NLCA extract looks like on arrival.

:func:`write_raw_extract` writes the patients of :func:`rp2pr_eval.simulate_nlca` in the layout a
statistician receives from an audit — upper-case field names, coded values, dates instead of audit
years, organisation codes such as ``RA3`` instead of trust labels, no pair or arm columns — together
with the allocation list (trust, pair, arm) and a ready ``mapping.yaml``.
:func:`rp2pr_eval.import_extract` on that mapping gives back the patient table exactly (values, column
order and types); ``tests/test_import.py`` checks this for several seeds and designs.

The raw fields and their codes:

==========================  ====================================================================
``PATIENT_ID``              the patient id
``TRUST_CODE``              organisation code of the trust first seen (``R`` + two characters)
``DATE_FIRST_SEEN``         dd/mm/yyyy, within the audit year (the audit period is the calendar year)
``AGE``, ``IMD_QUINTILE``   numbers
``SEX``                     1 male, 2 female
``PERF_STATUS``             WHO 0–4; 9 not recorded
``STAGE``                   1A, 1B, 2A, 2B, 3A, 3B, 4; X not recorded
``HISTOLOGY``               1 NSCLC, 2 SCLC, 3 other histology, 4 no histological confirmation
``MDT_DISCUSSED`` …         1 yes, 2 no; blank where not recorded (treatment, nurse at diagnosis) or
                            not applicable (surgery outside NSCLC, chemotherapy outside SCLC, CT before
                            bronchoscopy without bronchoscopy)
``DATE_REFERRAL``           dd/mm/yyyy, 0–14 days before first seen; blank for treated patients
                            without a referral date
``DATE_FIRST_TREATMENT``    dd/mm/yyyy, referral + the waiting time; blank if untreated
``VITAL_STATUS``            D dead, A alive at the end of follow-up
``DATE_DEATH_OR_CENSOR``    dd/mm/yyyy: first seen + survival days
==========================  ====================================================================

Dates: the generator places censoring at the end of the year after the last audit year
(365-day years); a censored patient is dated so that first seen + survival days falls there
(29–31 December), and a patient who died is given a uniformly drawn day of the audit year that keeps
the death before it.  The draws (days, sub-stages, referral lead times, code order) come from
``seed``; the same patients and seed give the same bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rp2pr_eval.data.io import gzip_bytes
from rp2pr_eval.files import write_bytes
from rp2pr_eval.errors import DataError, ParameterError
from rp2pr_eval.study.design import StudyDesign, resolve_design

EXTRACT_NAME = "nlca_extract.csv.gz"
ALLOCATION_NAME = "allocation.csv"
MAPPING_NAME = "mapping.yaml"
DATE_FORMAT = "%d/%m/%Y"
_NEEDED = ("patient_id", "trust_id", "pair_id", "arm", "audit_year", "age", "sex", "performance_status", "stage",
           "histology", "imd_quintile", "bronchoscopy", "treatment_recorded", "cns_recorded", "mdt_discussed",
           "histo_confirmed", "active_treatment", "nsclc_resection", "sclc_chemo", "cns_seen", "cns_at_diagnosis",
           "ct_before_bronch", "stage_recorded", "ps_recorded", "days_referral_to_treatment", "treated_within_62d",
           "survival_days", "died")
_CODE_CHARS = "ABCDEFGHJKLMNPQRTUVWXY0123456789"


@dataclass(frozen=True, slots=True)
class RawExtract:
    """The three files :func:`write_raw_extract` wrote."""

    extract: Path
    allocation: Path
    mapping: Path


def trust_codes(n_trusts: int, rng: np.random.Generator) -> np.ndarray:
    """Distinct organisation-like codes ``R`` + two characters (three for more than 1,024 trusts), in random order."""
    width = 2 if n_trusts <= len(_CODE_CHARS) ** 2 else 3
    total = len(_CODE_CHARS) ** width
    picks = np.sort(rng.choice(total, size=n_trusts, replace=False))
    codes = []
    for k in picks:
        chars = []
        for _ in range(width):
            k, r = divmod(int(k), len(_CODE_CHARS))
            chars.append(_CODE_CHARS[r])
        codes.append("R" + "".join(reversed(chars)))
    return rng.permutation(np.array(codes, dtype=object))


def _yes_no(values: pd.Series) -> np.ndarray:
    """0/1 (nullable) as the audit's 1 yes / 2 no / blank."""
    v = values.to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isnan(v), "", np.where(v == 1, "1", "2")).astype(object)


def _dates(days: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 (NaN: blank) as dd/mm/yyyy text (formatted once per distinct day)."""
    out = np.full(len(days), "", dtype=object)
    ok = ~np.isnan(days)
    distinct, where = np.unique(days[ok].astype(np.int64), return_inverse=True)
    text = pd.to_datetime(distinct, unit="D").strftime(DATE_FORMAT).to_numpy(dtype=object)
    out[ok] = text[where]
    return out


def raw_extract_frames(patients: pd.DataFrame, *, seed: int = 1, design: StudyDesign | None = None
                       ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """The raw extract, the allocation list and trust label → code, as frames (see the module docstring)."""
    missing = [c for c in _NEEDED if c not in patients.columns]
    if missing:
        raise DataError(f"write_raw_extract needs the generator's columns; missing {missing}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
    design = resolve_design(design)
    rng = np.random.default_rng([int(seed), 0x5A3])
    n = len(patients)
    trusts = np.sort(patients["trust_id"].unique())
    codes = trust_codes(len(trusts), rng)
    code_of = dict(zip(trusts, codes))

    year = patients["audit_year"].to_numpy(dtype=np.int64)
    survival = patients["survival_days"].to_numpy(dtype=float)
    died = patients["died"].to_numpy(dtype=np.int64)
    span = (design.years[-1] + 2 - year) * 365            # generator: follow-up ends (last year + 2 − year)·365 − entry
    room = np.clip(span - 1 - survival, 0, 364)
    draw = np.floor(rng.random(n) * (room + 1))
    day = np.where(died == 1, draw, room)                 # censored: first seen + survival = end of follow-up
    jan1 = (year - 1970).astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64).astype(float)
    first_seen = jan1 + day
    end = first_seen + survival

    treated = patients["active_treatment"].to_numpy(dtype=float, na_value=np.nan) == 1
    wait = patients["days_referral_to_treatment"].to_numpy(dtype=float)
    has_wait = ~np.isnan(wait)
    lead = np.floor(rng.random(n) * 15)
    lead = np.where(has_wait, np.minimum(lead, np.nan_to_num(wait)), lead)
    referral = np.where(treated & ~has_wait, np.nan, first_seen - lead)
    later = 7 + np.floor(rng.random(n) * 53)
    treatment = np.where(treated, np.where(has_wait, referral + np.nan_to_num(wait), first_seen + later), np.nan)

    stage = patients["stage"].to_numpy(dtype=object)
    sub = rng.random(n) < 0.5
    stage_code = np.full(n, "X", dtype=object)
    for label, (a, b) in {"I": ("1A", "1B"), "II": ("2A", "2B"), "III": ("3A", "3B"), "IV": ("4", "4")}.items():
        hit = stage == label
        stage_code[hit] = np.where(sub[hit], a, b)
    ps = patients["performance_status"].to_numpy(dtype=float, na_value=np.nan)
    confirmed = patients["histo_confirmed"].to_numpy(dtype=float, na_value=np.nan) == 1
    histology = patients["histology"].to_numpy(dtype=object)
    histo_code = np.where(histology == "NSCLC", "1", np.where(histology == "SCLC", "2", np.where(confirmed, "3", "4")))
    treat_rec = patients["treatment_recorded"].to_numpy() == 1
    cns_rec = patients["cns_recorded"].to_numpy() == 1

    def recorded(column: str, mask: np.ndarray) -> np.ndarray:
        out = _yes_no(patients[column])
        out[~mask] = ""
        return out

    extract = pd.DataFrame({
        "PATIENT_ID": patients["patient_id"].to_numpy(dtype=object),
        "TRUST_CODE": patients["trust_id"].map(code_of).to_numpy(dtype=object),
        "DATE_FIRST_SEEN": _dates(first_seen),
        "AGE": patients["age"].to_numpy(dtype=np.int64),
        "SEX": np.where(patients["sex"].to_numpy(dtype=object) == "M", "1", "2"),
        "PERF_STATUS": np.where(np.isnan(ps), "9", np.nan_to_num(ps).astype(np.int64).astype(str)),
        "STAGE": stage_code,
        "HISTOLOGY": histo_code,
        "IMD_QUINTILE": patients["imd_quintile"].to_numpy(dtype=np.int64),
        "MDT_DISCUSSED": _yes_no(patients["mdt_discussed"]),
        "BRONCHOSCOPY": _yes_no(patients["bronchoscopy"]),
        "CT_BEFORE_BRONCH": _yes_no(patients["ct_before_bronch"]),
        "ANY_TREATMENT": recorded("active_treatment", treat_rec),
        "SURGERY": recorded("nsclc_resection", treat_rec),
        "CHEMOTHERAPY": recorded("sclc_chemo", treat_rec),
        "CNS_SEEN": _yes_no(patients["cns_seen"]),
        "CNS_AT_DIAGNOSIS": recorded("cns_at_diagnosis", cns_rec),
        "DATE_REFERRAL": _dates(referral),
        "DATE_FIRST_TREATMENT": _dates(treatment),
        "VITAL_STATUS": np.where(died == 1, "D", "A"),
        "DATE_DEATH_OR_CENSOR": _dates(end),
    })
    per_trust = patients.drop_duplicates("trust_id")
    allocation = pd.DataFrame({
        "TRUST_CODE": per_trust["trust_id"].map(code_of).to_numpy(dtype=object),
        "PAIR": per_trust["pair_id"].to_numpy(dtype=object),
        "ARM": np.where(per_trust["arm"].to_numpy(dtype=object) == design.intervention_arm, "I", "C"),
    }).sort_values("TRUST_CODE", kind="stable").reset_index(drop=True)
    if not set(per_trust["arm"]) <= set(design.arms):
        raise DataError(f"write_raw_extract: arm labels {sorted(set(per_trust['arm']))} are not the design's {list(design.arms)}")
    return extract, allocation, {str(t): str(c) for t, c in zip(trusts, codes)}


_MAPPING = """\
# Mapping of the synthetic raw NLCA extract onto the rp2pr_eval data contract (docs/methods/import.md).
# Written by rp2pr_eval.write_raw_extract; `rp2pr-eval import mapping.yaml --out patients.csv.gz` reads it.
description: synthetic raw NLCA extract (no real patient data)
source: {extract}
allocation: {allocation}
allocation_columns: {{trust_id: TRUST_CODE, pair_id: PAIR, arm: ARM}}
date_format: "%d/%m/%Y"
audit_year: {{from_date: DATE_FIRST_SEEN, year: calendar}}
columns:
  patient_id: PATIENT_ID
  trust_id: TRUST_CODE
  age: AGE
  sex: SEX
  performance_status: PERF_STATUS
  stage: STAGE
  histology: HISTOLOGY
  imd_quintile: IMD_QUINTILE
  bronchoscopy: BRONCHOSCOPY
extra_columns:
  treatment_recorded: {{from: ANY_TREATMENT, codes: {{1: 1, 2: 1, null: 0}}}}
  cns_recorded: {{from: CNS_AT_DIAGNOSIS, codes: {{1: 1, 2: 1, null: 0}}}}
codes:
  sex: {{1: M, 2: F}}
  performance_status: {{0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 9: null}}
  stage: {{1A: I, 1B: I, 2A: II, 2B: II, 3A: III, 3B: III, 4: IV, X: null}}
  histology: {{1: NSCLC, 2: SCLC, 3: other, 4: other}}
  bronchoscopy: {{1: 1, 2: 0}}
  arm: {{I: {intervention}, C: {control}}}
  trust_id:   # organisation code -> the analysis's trust label
{trust_codes}
outcomes:
  mdt_discussed: {{from: MDT_DISCUSSED, codes: {{1: 1, 2: 0}}}}
  histo_confirmed: {{from: HISTOLOGY, codes: {{1: 1, 2: 1, 3: 1, 4: 0}}}}
  active_treatment: {{from: ANY_TREATMENT, codes: {{1: 1, 2: 0, null: 0}}}}     # not recorded counts as no
  nsclc_resection: {{from: SURGERY, codes: {{1: 1, 2: 0, null: 0}}}}            # NSCLC patients only
  sclc_chemo: {{from: CHEMOTHERAPY, codes: {{1: 1, 2: 0, null: 0}}}}            # SCLC patients only
  cns_seen: {{from: CNS_SEEN, codes: {{1: 1, 2: 0}}}}
  cns_at_diagnosis: {{from: CNS_AT_DIAGNOSIS, codes: {{1: 1, 2: 0, null: 0}}}}
  ct_before_bronch: {{from: CT_BEFORE_BRONCH, codes: {{1: 1, 2: 0}}}}           # patients with a bronchoscopy
  stage_recorded: {{from: STAGE, codes: {{1A: 1, 1B: 1, 2A: 1, 2B: 1, 3A: 1, 3B: 1, 4: 1, X: 0}}}}
  ps_recorded: {{from: PERF_STATUS, codes: {{0: 1, 1: 1, 2: 1, 3: 1, 4: 1, 9: 0}}}}
  days_referral_to_treatment: {{days_between: [DATE_REFERRAL, DATE_FIRST_TREATMENT]}}
  treated_within_62d: {{at_most: 62, of: days_referral_to_treatment}}
  survival_days: {{days_between: [DATE_FIRST_SEEN, DATE_DEATH_OR_CENSOR]}}
  died: {{from: VITAL_STATUS, codes: {{D: 1, A: 0}}}}
"""


def mapping_text(trust_code_of: dict[str, str], design: StudyDesign | None = None, *,
                 extract: str = EXTRACT_NAME, allocation: str = ALLOCATION_NAME) -> str:
    """The ``mapping.yaml`` of a raw extract (trust label → organisation code as ``trust_code_of``)."""
    design = resolve_design(design)
    lines = "\n".join(f"    {code}: {label}" for label, code in sorted(trust_code_of.items(), key=lambda kv: kv[1]))
    return _MAPPING.format(extract=extract, allocation=allocation, trust_codes=lines,
                           intervention=design.intervention_arm, control=design.control_arm)


def write_raw_extract(patients: pd.DataFrame, folder: str | Path, *, seed: int = 1,
                      design: StudyDesign | None = None, overwrite: bool = False) -> RawExtract:
    """Write a simulated patient table as a raw audit-like extract, its allocation list and a ready mapping.

    Parameters
    ----------
    patients
        A table from :func:`rp2pr_eval.simulate_nlca` (it needs the generator's columns, including
        ``treatment_recorded`` and ``cns_recorded``).
    folder
        Where to write ``nlca_extract.csv.gz``, ``allocation.csv`` and ``mapping.yaml`` (created).
    seed
        Seed of the draws that place dates and pick sub-stages and trust codes (module docstring).
    design
        The design the patients were simulated under (``None``: the default); it fixes the end of
        follow-up and the arm labels.
    overwrite
        Replace existing files (otherwise an existing file is an error).

    Returns
    -------
    RawExtract
        The paths of the three files; ``rp2pr_eval.import_extract(result.mapping, design=design)``
        gives ``patients`` back.

    Raises
    ------
    DataError
        A column the layout needs is missing; ``ParameterError`` an invalid seed or an existing file.
    """
    design = resolve_design(design)
    folder = Path(folder)
    paths = RawExtract(folder / EXTRACT_NAME, folder / ALLOCATION_NAME, folder / MAPPING_NAME)
    if not overwrite:
        existing = [str(p) for p in (paths.extract, paths.allocation, paths.mapping) if p.exists()]
        if existing:
            raise ParameterError(f"{', '.join(existing)} exist(s); pass overwrite=True (CLI: --force) to replace")
    extract, allocation, code_of = raw_extract_frames(patients, seed=seed, design=design)
    folder.mkdir(parents=True, exist_ok=True)
    # level 6: 4 % larger than level 9 and three times faster on this highly repetitive text
    write_bytes(paths.extract, gzip_bytes(extract.to_csv(index=False, lineterminator="\n").encode("utf-8"), level=6))
    write_bytes(paths.allocation, allocation.to_csv(index=False, lineterminator="\n").encode("utf-8"))
    write_bytes(paths.mapping, mapping_text(code_of, design).encode("utf-8"))
    return paths


__all__ = ["ALLOCATION_NAME", "EXTRACT_NAME", "MAPPING_NAME", "RawExtract", "mapping_text", "raw_extract_frames",
           "trust_codes", "write_raw_extract"]
