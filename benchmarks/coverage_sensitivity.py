"""Monte Carlo coverage of the parallel-trends sensitivity sets at bound 0 under exact parallel trends.

    python benchmarks/coverage_sensitivity.py --normal-reps 4000 --trials 200

Two designs:

* normal model: β̂ ~ N(0, Σ) with Σ the CR2-by-pair covariance of the bundled data's event study
  (active treatment), δ = 0, target the 2012–13 average; coverage of θ = 0 at M̄ = 0 / M = 0;
* whole trials: ``rp.simulate_nlca(seed=s)`` with no planted effect (parallel trends hold by
  randomisation), ``rp.event_study`` (CR2 by pair, 40 pairs), ``rp.parallel_trends_sensitivity``
  with its defaults (``small_sample="t"``): does the set at bound 0 contain the true θ = 0?
  (Because the generator's trust effects are AR(1) and pairs share shocks, this also tests the
  CR2 covariance with 40 clusters.)

Prints coverage with its Monte Carlo SE and the seconds per analysis.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rp2pr_eval as rp  # noqa: E402
from rp2pr_eval.inference import honest_did as hd  # noqa: E402

CASES = (("relative_magnitudes", "C-LF"), ("relative_magnitudes", "conditional"),
         ("smoothness", "FLCI"), ("smoothness", "conditional"))


def _report(name: str, hits: list[bool], seconds: float) -> None:
    p = float(np.mean(hits))
    se = math.sqrt(p * (1 - p) / len(hits))
    print(f"  {name:44s} coverage {p:.4f} (MC SE {se:.4f}, n = {len(hits)}), {seconds / len(hits) * 1000:.1f} ms each")


def normal_model(reps: int, seed: int) -> None:
    root = Path(__file__).resolve().parents[1]
    es = rp.event_study(rp.load_patients(root / "data" / "synthetic" / "nlca_patients.csv.gz"), "active_treatment")
    V, _ = es.covariance()
    L = np.linalg.cholesky(V)
    l = np.array([0, 0, 0.5, 0.5])
    print(f"normal model, Σ from the bundled event study, {reps} draws")
    for restriction, method in CASES:
        rng = np.random.default_rng(seed)
        t0 = time.perf_counter()
        hits = [hd.contains_zero(L @ rng.standard_normal(5), V, 1, l, restriction=restriction, m=0.0, method=method,
                                 n_sims=1000, seed=0) for _ in range(reps)]
        _report(f"{restriction} {method}", hits, time.perf_counter() - t0)


def trials(n: int, seed: int) -> None:
    print(f"whole ILCOP trials without effect, {n} trials")
    hits = {case: [] for case in CASES}
    wald = []
    t_total = 0.0
    for i in range(n):
        patients = rp.simulate_nlca(seed=seed + i)
        es = rp.event_study(patients, "active_treatment")
        t0 = time.perf_counter()
        for restriction, method in CASES:
            res = rp.parallel_trends_sensitivity(es, restriction, m=[0.0], method=method, breakdown=False)
            hits[(restriction, method)].append(res.ci_low[0] <= 0 <= res.ci_high[0])
        t_total += time.perf_counter() - t0
        wald.append(res.original_ci_low <= 0 <= res.original_ci_high)
    for case, h in hits.items():
        _report(f"{case[0]} {case[1]} (small_sample='t')", h, t_total / len(CASES))
    _report("event-study Wald interval of the average", wald, 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--normal-reps", type=int, default=4000)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.normal_reps:
        normal_model(args.normal_reps, args.seed)
    if args.trials:
        trials(args.trials, 1000 * args.seed)


if __name__ == "__main__":
    main()
