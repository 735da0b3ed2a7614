"""Write the trust × period tables behind ``tests/reference/lmm_reference.json``.

Run from the repository root (R is then run on what this writes)::

    .venv/bin/python tests/reference/make_lmm_data.py
    Rscript tests/reference/lmm.R

The data are one seeded draw of the package generator,

    rp.simulate_nlca(seed=31, n_pairs=20, n_treated_pairs=8, volume_median=80, volume_clip=(40, 160))

(40 trusts in 20 pairs, 8 pairs to the intervention), reduced to the values
``mixed_linear`` fits, built exactly as ``mixed_linear`` builds them:
``prepare(patients, outcome, design=None, cluster="pair_id")`` then
``trust_values(prep, "period")`` (default ``summary="mean_log"``).

``data/lmm_active_treatment.csv``
    Trust × period (pre/post) rates of ``active_treatment``;
    ``weight`` = denominator (eligible patients).
``data/lmm_days_referral_to_treatment.csv``
    Trust × period mean of log(1 + days) of ``days_referral_to_treatment``;
    ``weight`` = number of patients with a recorded value.

Columns: ``trust_id, pair_id, arm, treated, period, post, value, weight``
(``treated`` and ``post`` as 0/1 integers).  Floats are written with
``repr`` precision (round-trip exact), so R fits the same numbers the package
fits.  ``tests/test_lmm.py`` imports :func:`build_tables` and :func:`csv_bytes`
to check that the committed files are still what the package produces.

The sleepstudy CSV (``data/lmm_sleepstudy.csv``) is written by ``lmm.R``
itself, from lme4.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

import rp2pr_eval as rp
from rp2pr_eval.estimators.prepare import prepare, trust_values

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"

SIMULATION = dict(seed=31, n_pairs=20, n_treated_pairs=8, volume_median=80, volume_clip=(40, 160))
OUTCOMES = ("active_treatment", "days_referral_to_treatment")
COLUMNS = ["trust_id", "pair_id", "arm", "treated", "period", "post", "value", "weight"]


def file_name(outcome: str) -> str:
    return f"lmm_{outcome}.csv"


def simulate() -> pd.DataFrame:
    """The fixed data set (the call in the module docstring)."""
    return rp.simulate_nlca(**SIMULATION)


def build_tables(patients: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One trust × period table per outcome in :data:`OUTCOMES`, as ``mixed_linear`` builds it."""
    tables = {}
    for outcome in OUTCOMES:
        prep = prepare(patients, outcome, design=None, cluster="pair_id", estimator="mixed_linear")
        panel = trust_values(prep, "period")
        panel = panel.assign(
            treated=panel["treated"].astype(int),
            post=(panel["period"] == "post").astype(int),
        )
        tables[outcome] = panel[COLUMNS].reset_index(drop=True)
    return tables


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The CSV text of a table as written."""
    return frame.to_csv(index=False, na_rep="NA", lineterminator="\n").encode()


def main() -> None:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    for outcome, frame in build_tables(simulate()).items():
        path = DATA_DIR / file_name(outcome)
        path.write_bytes(csv_bytes(frame))
        print(f"wrote {path.relative_to(HERE.parents[1])} ({len(frame)} rows)")


if __name__ == "__main__":
    main()
