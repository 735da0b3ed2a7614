"""Benchmark the public design-based front ends on the bundled synthetic audit (issue targets).

Run:  python benchmarks/bench_design_based.py  [--repeat 9] [--loop-draws 100] [--outcome active_treatment]

Times what an analyst calls, end to end, on ``data/synthetic/nlca_patients.csv.gz``
(about 126,000 patients, 40 pairs, 15 treated):

* ``randomisation_test(patients, outcome, estimator, n_draws=10_000)`` — validation of
  the patient table, aggregation to trust values, 10,000 re-randomisations of 15 of
  the 40 pairs, the p-value and the interval by test inversion (the default);
  target ≤ 0.1 s;
* ``wild_cluster_bootstrap(patients, outcome, estimator, n_boot=9_999)`` — restricted
  wild cluster bootstrap-t by pair with the interval by test inversion; target ≤ 0.25 s.

The reference is the loop the issue names: one statsmodels WLS refit of the same
trust-level regression per draw (timed on ``--loop-draws`` draws, extrapolated to
10,000), starting from the same trust values; the speed-up column divides that by
the front end's median.  Each timing is the median (and minimum) of ``--repeat`` runs
after a warm-up; the load average is printed because the machine is shared.
"""
from __future__ import annotations

import os
import sys

if "--blas-default" not in sys.argv:  # must happen before numpy is imported
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import statsmodels.api as sm  # noqa: E402
from _common import load, timed  # noqa: E402

import rp2pr_eval as rp  # noqa: E402
from rp2pr_eval.estimators.did import linear_spec
from rp2pr_eval.models.randomisation import pair_assignments

ROOT = Path(__file__).resolve().parents[1]
ESTIMATORS = {"did_aggregate": rp.did_aggregate, "ancova": rp.ancova, "did_twfe": rp.did_twfe}




def refit_loop_seconds(patients, outcome: str, estimator: str, draws: int) -> float:
    """Seconds for 10,000 statsmodels WLS refits under re-randomised pair assignments (extrapolated)."""
    spec = linear_spec(patients, outcome, estimator)
    assignments = pair_assignments(len(spec.unit_labels), int(spec.unit_assignment.sum()), draws, rng=1)[0]
    t0 = time.perf_counter()
    for a in assignments:
        X = spec.design(np.asarray(a, dtype=float)[spec.unit])
        sm.WLS(spec.y, X, weights=spec.weights if spec.weights is not None else 1.0).fit()
    return (time.perf_counter() - t0) / draws * 10_000




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--loop-draws", type=int, default=100)
    ap.add_argument("--outcome", default="active_treatment")
    ap.add_argument("--blas-default", action="store_true")
    args = ap.parse_args()

    patients = rp.load_patients(ROOT / "data" / "synthetic" / "nlca_patients.csv.gz")
    print(f"bench_design_based: bundled data ({len(patients):,} patients), outcome {args.outcome}, "
          f"{os.cpu_count()} CPUs, repeat {args.repeat}; load average before: {load()}")
    header = f"{'call':58s} {'median s':>9s} {'min s':>8s} {'target s':>9s} {'loop s':>8s} {'speed-up':>9s}"
    print(header)
    print("-" * len(header))
    for name, fn in ESTIMATORS.items():
        loop = refit_loop_seconds(patients, args.outcome, name, args.loop_draws)
        for label, call, target in (
            (f"randomisation_test({name}, 10,000 draws, + CI)",
             lambda fn=fn: rp.randomisation_test(patients, args.outcome, estimator=fn, n_draws=10_000, seed=1), 0.1),
            (f"randomisation_test({name}, 10,000 draws, no CI)",
             lambda fn=fn: rp.randomisation_test(patients, args.outcome, estimator=fn, n_draws=10_000, seed=1,
                                                 ci=False), 0.1),
            (f"wild_cluster_bootstrap({name}, 9,999 draws, + CI)",
             lambda fn=fn: rp.wild_cluster_bootstrap(patients, args.outcome, estimator=fn, n_boot=9_999, seed=1), 0.25),
        ):
            med, lo = timed(call, args.repeat)
            print(f"{label:58s} {med:9.4f} {lo:8.4f} {target:9.2f} {loop:8.1f} {loop / med:8.0f}×")
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
