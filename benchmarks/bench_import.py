"""Time the extract import: the bundled raw extract (125,925 patients) and a 500,000-row extract.

Run from the repository root::

    .venv/bin/python benchmarks/bench_import.py

The 500k-row extract is simulated (``simulate_nlca(seed=500, n_pairs=160, n_treated_pairs=60)``: 320
trusts, six audit years) and written with :func:`rp2pr_eval.write_raw_extract` into a temporary folder.
Each import is timed end to end (mapping checks, header, allocation, reading the CSV.gz, every
conversion, the contract validation and the quality frames), and the check that it gives the
generator's table back is made once.  Also timed: ``case_mix_adjusted_rates`` on the bundled data.
The peer is a hand-written pandas conversion of the same extract (``read_csv`` + ``map`` per field +
``merge`` of the allocation), without any of the checks, to show what the checks cost.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load, time_it  # noqa: E402

import rp2pr_eval as rp  # noqa: E402
from rp2pr_eval.paths import project_root  # noqa: E402

RAW = project_root() / "data" / "synthetic" / "raw"


def by_hand(folder: Path) -> pd.DataFrame:
    """The peer: the same extract converted with plain pandas and no checks."""
    raw = pd.read_csv(folder / "nlca_extract.csv.gz", dtype=str, keep_default_na=False, na_values=[""],
                      engine="pyarrow")
    alloc = pd.read_csv(folder / "allocation.csv", dtype=str)
    out = pd.DataFrame({"patient_id": raw["PATIENT_ID"], "trust_code": raw["TRUST_CODE"],
                        "audit_year": pd.to_datetime(raw["DATE_FIRST_SEEN"], format="%d/%m/%Y").dt.year,
                        "age": raw["AGE"].astype(int), "sex": raw["SEX"].map({"1": "M", "2": "F"})})
    for field in ("MDT_DISCUSSED", "ANY_TREATMENT", "SURGERY", "CHEMOTHERAPY", "CNS_SEEN", "CNS_AT_DIAGNOSIS"):
        out[field.lower()] = raw[field].map({"1": 1, "2": 0})
    return out.merge(alloc, left_on="trust_code", right_on="TRUST_CODE", how="left")


def main() -> None:
    print(f"load average at start: {load()}")
    best, median, cpu, result = time_it(lambda: rp.import_with_quality(RAW / "mapping.yaml"), 3)
    print(f"bundled raw extract ({result.quality.n_kept:,} rows): best {best:.2f} s, median {median:.2f} s, "
          f"CPU {cpu:.2f} s")
    best, median, _, _ = time_it(lambda: by_hand(RAW), 3)
    print(f"  peer (pandas by hand, no checks): best {best:.2f} s, median {median:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        big = rp.simulate_nlca(seed=500, n_pairs=160, n_treated_pairs=60)
        files = rp.write_raw_extract(big, tmp)
        print(f"500k extract: {len(big):,} rows, {big['trust_id'].nunique()} trusts, "
              f"{files.extract.stat().st_size / 1024**2:.1f} MiB gzipped (made in {time.perf_counter() - t0:.1f} s)")
        best, median, cpu, result = time_it(lambda: rp.import_with_quality(files.mapping), 3)
        pd.testing.assert_frame_equal(result.patients, big)
        print(f"500k-row extract: best {best:.2f} s, median {median:.2f} s, CPU {cpu:.2f} s (round trip exact)")
        best, median, _, _ = time_it(lambda: by_hand(Path(tmp)), 3)
        print(f"  peer (pandas by hand, no checks): best {best:.2f} s, median {median:.2f} s")
    bundled = rp.load_patients(project_root() / "data" / "synthetic" / "nlca_patients.csv.gz")
    best, median, _, _ = time_it(lambda: rp.case_mix_adjusted_rates(bundled, "active_treatment"), 3)
    print(f"case_mix_adjusted_rates(bundled, 'active_treatment'): best {best:.2f} s, median {median:.2f} s")
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
