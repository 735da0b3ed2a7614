"""Write the fixed data set behind ``tests/reference/case_mix_reference.json``.

Run from the repository root (R is then run on what this writes)::

    .venv/bin/python tests/reference/make_case_mix_data.py
    Rscript tests/reference/case_mix.R

The data are one seeded draw of the package generator with strong trust case-mix shifts,

    rp.simulate_nlca(seed=404, n_pairs=6, n_treated_pairs=2, volume_median=60, volume_clip=(30, 120),
                     casemix_sd=0.6)

(12 trusts, about 4,300 patients): the columns ``case_mix_adjusted_rates`` reads, missing values
left empty.
"""
from __future__ import annotations

from pathlib import Path

import rp2pr_eval as rp
from rp2pr_eval.data.io import gzip_bytes

OUT = Path(__file__).resolve().parent / "data" / "case_mix_patients.csv.gz"
COLUMNS = ["patient_id", "trust_id", "pair_id", "arm", "audit_year", "age", "sex", "performance_status", "stage",
           "histology", "imd_quintile", "active_treatment", "nsclc_resection"]


def make() -> None:
    patients = rp.simulate_nlca(seed=404, n_pairs=6, n_treated_pairs=2, volume_median=60, volume_clip=(30, 120),
                                casemix_sd=0.6)
    text = patients[COLUMNS].to_csv(index=False, lineterminator="\n", na_rep="")
    OUT.write_bytes(gzip_bytes(text.encode("utf-8")))


if __name__ == "__main__":
    make()
