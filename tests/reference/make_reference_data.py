"""Write the fixed data set behind ``tests/reference/did_reference.json``.

Run from the repository root (R is then run on what this writes)::

    .venv/bin/python tests/reference/make_reference_data.py
    Rscript tests/reference/make_reference.R

The data are one seeded draw of the package generator,

    rp.simulate_nlca(seed=2718, n_pairs=16, n_treated_pairs=6,
                     effects={"active_treatment": 0.3}, volume_median=80, volume_clip=(40, 160))

(32 trusts in 16 pairs, 6 pairs to the intervention, about 20,000 patients),
and the files are what R needs to refit the package's estimators:

``data/did_patients.csv.gz``
    Patient-level rows of the pre and post years (2008–09, 2012–13) with
    ``active_treatment``, ``survival_days``, ``died`` and the case-mix columns
    (``age, sex, performance_status, stage, imd_quintile``), plus ``treated``
    and ``post`` coded as :func:`rp2pr_eval.estimators.prepare.prepare` codes them
    (arm == intervention; audit year in the design's post years).  Missing
    values are written ``NA``.
``data/did_panel_period.csv``
    Trust × period (pre/post) rates of ``active_treatment``, built by
    ``prepare`` + ``trust_values(prep, "period")`` exactly as ``did_aggregate``
    and ``ancova`` build them.
``data/did_panel_year.csv``
    Trust × audit-year rates of ``active_treatment`` for all six design years,
    built by ``prepare(keep_during=True)`` + ``trust_values(prep, "audit_year")``
    as ``event_study`` builds them (``did_twfe`` uses the pre and post years of
    the same table).

The gzip header carries no time stamp, so the files (and their SHA-256 in the
JSON provenance) are reproducible byte for byte.  ``tests/test_did_reference.py``
imports :func:`simulate`, :func:`build_tables` and :func:`csv_bytes` from here
to check that the committed files are still what the package produces.
"""
from __future__ import annotations

import gzip
import io
from pathlib import Path

import pandas as pd

import rp2pr_eval as rp
from rp2pr_eval.estimators.prepare import prepare, trust_values

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"

SIMULATION = dict(seed=2718, n_pairs=16, n_treated_pairs=6, effects={"active_treatment": 0.3},
                  volume_median=80, volume_clip=(40, 160))
OUTCOME = "active_treatment"
PATIENT_COLUMNS = ["trust_id", "pair_id", "arm", "treated", "audit_year", "post", "age", "sex",
                   "performance_status", "stage", "imd_quintile", "active_treatment", "survival_days", "died"]
PANEL_COLUMNS = ["trust_id", "pair_id", "arm", "treated"]
FILES = {"patients": "did_patients.csv.gz", "panel_period": "did_panel_period.csv",
         "panel_year": "did_panel_year.csv"}


def simulate() -> pd.DataFrame:
    """The fixed data set (the call in the module docstring)."""
    return rp.simulate_nlca(**SIMULATION)


def build_tables(patients: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The three tables written to ``data/`` (keys of :data:`FILES`)."""
    design = rp.StudyDesign()
    period = patients["audit_year"].map(design.period_map())
    rows = patients.loc[period.isin(["pre", "post"]).to_numpy()]
    rows = rows.assign(
        treated=(rows["arm"] == design.intervention_arm).astype(int),
        post=(rows["audit_year"].map(design.period_map()) == "post").astype(int),
    )
    patient_table = rows[PATIENT_COLUMNS].reset_index(drop=True)

    prep = prepare(patients, OUTCOME, design=None, cluster="pair_id")
    by_period = trust_values(prep, "period")
    prep_all = prepare(patients, OUTCOME, design=None, cluster="pair_id", keep_during=True)
    by_year = trust_values(prep_all, "audit_year")
    # Check here that the panel rows are the patients of the patient file (same eligibility).
    n_pp = int(patient_table["active_treatment"].notna().sum())
    if int(by_period["denominator"].sum()) != n_pp:
        raise RuntimeError("trust × period denominators do not add up to the patient rows")
    cols = [*PANEL_COLUMNS]
    panel_period = by_period[[*cols, "period", "numerator", "denominator", "value", "weight"]].copy()
    panel_year = by_year[[*cols, "audit_year", "numerator", "denominator", "value", "weight"]].copy()
    panel_year["period"] = panel_year["audit_year"].map(design.period_map())
    for frame in (panel_period, panel_year):
        frame["treated"] = frame["treated"].astype(int)
        frame["numerator"] = frame["numerator"].astype(int)
        frame["denominator"] = frame["denominator"].astype(int)
    return {"patients": patient_table, "panel_period": panel_period, "panel_year": panel_year}


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The CSV text of a table as written (before gzip)."""
    return frame.to_csv(index=False, na_rep="NA", lineterminator="\n").encode()


def write(tables: dict[str, pd.DataFrame], directory: Path = DATA_DIR) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, name in FILES.items():
        path = directory / name
        raw = csv_bytes(tables[key])
        if name.endswith(".gz"):
            buf = io.BytesIO()
            with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
                gz.write(raw)
            raw = buf.getvalue()
        path.write_bytes(raw)
        paths[key] = path
    return paths


def main() -> None:
    paths = write(build_tables(simulate()))
    total = 0
    for path in paths.values():
        size = path.stat().st_size
        total += size
        print(f"wrote {path.relative_to(HERE.parents[1])} ({size:,} bytes)")
    print(f"total {total:,} bytes")


if __name__ == "__main__":
    main()
