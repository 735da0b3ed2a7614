"""Benchmark simulation-based power: ILCOP-sized trials (default volumes) for one planted effect.

Run:  python benchmarks/bench_power.py  [--sims 1000] [--effect 0.3] [--estimator ancova]
                                        [--backend local] [--n-jobs N] [--profile 5] [--progress]

Times ``power_simulation`` (``--sims`` trials of the default ILCOP design: 40
pairs, ~210 patients per trust-year, about 130,000 patients per trial) and
reports wall time, CPU time (this process and the workers, measured inside the
workers per chunk), how CPU splits between ``simulate_nlca`` and the analysis,
and the power table.  Other people share this machine: the load average is
printed before and after, and "CPU seconds / workers" is the wall time the run
would take on idle cores.

``--profile N`` (default 5, 0 to skip) then profiles N trials in this process
with cProfile and shows where ``simulate_nlca`` and the analysis spend their time.

BLAS runs single-threaded (unless ``--blas-default``): the matrices are tiny and
the parallelism belongs to the trials.
"""
from __future__ import annotations

import os
import sys

if "--blas-default" not in sys.argv:  # must happen before numpy is imported
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import cProfile  # noqa: E402
import pstats  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from _common import load  # noqa: E402

from rp2pr_eval import simulate_nlca
from rp2pr_eval.inference.power import _fit_linear, power_simulation
from rp2pr_eval.inference.power_config import validate_config as _validate
from rp2pr_eval.synthetic.generator import GeneratorSettings, simulate_arrays

# Functions of rp2pr_eval whose cumulative time is reported (file suffix, function name).
SIM_PHASES = [
    ("synthetic.py", "simulate_arrays"),
    ("synthetic.py", "_outcomes"),
    ("synthetic.py", "binary"),
    ("synthetic.py", "_calibrate"),
    ("synthetic.py", "_tilted_choice"),
    ("synthetic.py", "_form_pairs"),
    ("synthetic.py", "_ar1"),
]
FIT_PHASES = [
    ("power.py", "_fit_linear"),
    ("power.py", "_trial_panel"),
    ("_prepare.py", "aggregate_cells"),
    ("did.py", "_spec_from_panel"),
    ("variance.py", "wls"),
]




def phase_table(stats: pstats.Stats, phases, n: int, total_key) -> None:
    raw = stats.stats  # {(file, line, func): (cc, nc, tt, ct, callers)}
    cum: dict[tuple[str, str], tuple[float, float, int]] = {}
    for (file, _line, func), (_cc, nc, tt, ct, _callers) in raw.items():
        for suffix, name in phases:
            if func == name and file.endswith(suffix):
                c0, t0, n0 = cum.get((suffix, name), (0.0, 0.0, 0))
                cum[(suffix, name)] = (c0 + ct, t0 + tt, n0 + nc)
    total = cum.get(total_key, (float("nan"),))[0]
    print(f"    {'function':34s} {'calls/trial':>11s} {'cum ms/trial':>12s} {'own ms/trial':>12s} {'share':>6s}")
    for key in phases:
        if key in cum:
            ct, tt, nc = cum[key]
            print(f"    {key[1] + ' (' + key[0] + ')':34s} {nc / n:11.1f} {1000 * ct / n:12.1f} {1000 * tt / n:12.1f} "
                  f"{100 * ct / total:5.0f}%")


def top_own_time(stats: pstats.Stats, n: int, k: int = 12) -> None:
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:k]
    print(f"    {'own time (tottime), top ' + str(k):60s} {'ms/trial':>9s}")
    for (file, line, func), (_cc, _nc, tt, _ct, _callers) in rows:
        where = f"{os.path.basename(file)}:{line}({func})"
        print(f"    {where[:60]:60s} {1000 * tt / n:9.1f}")


def profile(n: int, estimator: str, effect: float) -> None:
    cfg, _ = _validate(None, "active_treatment", (effect,), 2, estimator, seed=1, alpha=0.05, vcov="CR2",
                       cluster="pair_id", weights="denominator", target_power=0.8, common_random_numbers=True,
                       simulate_kwargs=None)
    simulate_nlca(seed=0)  # warm-up (imports, caches)
    children = np.random.SeedSequence(12345).spawn(n)
    c0 = time.process_time()
    for c in children:
        simulate_nlca(seed=np.random.default_rng(c), effects={"active_treatment": effect})
    full = (time.process_time() - c0) / n
    print(f"\nsimulate_nlca (all 13 outcomes, assembled frame): {1000 * full:.0f} ms CPU per trial")
    settings = GeneratorSettings()
    prof = cProfile.Profile()
    t0, c0 = time.perf_counter(), time.process_time()
    prof.enable()
    trials = [simulate_arrays(np.random.default_rng(c), None, {"active_treatment": effect}, settings,
                        outcomes=("active_treatment",)) for c in children]
    prof.disable()
    t1, c1 = time.perf_counter(), time.process_time()
    n_pat = np.mean([len(t.trust_idx) for t in trials])
    print(f"Profile of the power path's generator (active_treatment only, arrays), {n} trials in this process "
          f"({n_pat:,.0f} patients each): {1000 * (t1 - t0) / n:.0f} ms wall, {1000 * (c1 - c0) / n:.0f} ms CPU "
          "per trial (profiler overhead included)")
    st = pstats.Stats(prof)
    phase_table(st, SIM_PHASES, n, ("synthetic.py", "simulate_arrays"))
    top_own_time(st, n)

    prof = cProfile.Profile()
    t0, c0 = time.perf_counter(), time.process_time()
    prof.enable()
    for trial in trials:
        _fit_linear(trial, cfg, 0.95)
    prof.disable()
    t1, c1 = time.perf_counter(), time.process_time()
    print(f"\nProfile of the analysis ({estimator}: trust values from the arrays + wls): {1000 * (t1 - t0) / n:.0f} ms wall, "
          f"{1000 * (c1 - c0) / n:.0f} ms CPU per trial")
    st = pstats.Stats(prof)
    phase_table(st, FIT_PHASES, n, ("power.py", "_fit_linear"))
    top_own_time(st, n, 8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sims", type=int, default=1000, help="simulated trials (default 1000)")
    ap.add_argument("--effect", type=float, default=0.3, help="planted log odds ratio (default 0.3)")
    ap.add_argument("--estimator", default="ancova", choices=["ancova", "did_aggregate", "did_twfe"])
    ap.add_argument("--backend", default="local", choices=["local", "serial", "dask"])
    ap.add_argument("--n-jobs", type=int, default=None, help="workers (default: all cores)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", type=int, default=5, help="trials to profile in-process (0: skip)")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--blas-default", action="store_true", help="leave BLAS threading alone")
    args = ap.parse_args()

    print(f"bench_power: {args.sims} ILCOP trials (default volumes), effect {args.effect} on active_treatment, "
          f"{args.estimator}, backend {args.backend}, {os.cpu_count()} cores; load average before: {load()}")
    res = power_simulation(None, "active_treatment", (args.effect,), args.sims, args.estimator, seed=args.seed,
                           backend=args.backend, n_jobs=args.n_jobs, progress=args.progress)
    t = res.timing
    cpu_workers = t["cpu_seconds_workers"] if args.backend != "serial" else t["cpu_seconds_main"]
    cpu_total = cpu_workers + (t["cpu_seconds_main"] if args.backend != "serial" else 0.0)
    per = cpu_total / args.sims
    print(f"load average after: {load()}")
    print(f"\nwall {t['wall_seconds']:.1f} s for {args.sims} trials ({args.sims / t['wall_seconds']:.1f} trials/s); "
          f"workers {t['workers']}, {t['chunks']} chunks of {t['chunk_size']}")
    print(f"CPU  {cpu_total:.1f} s in all (workers {cpu_workers:.1f} s, this process {t['cpu_seconds_main']:.1f} s); "
          f"{1000 * per:.0f} ms CPU per trial; CPU/wall = {cpu_total / t['wall_seconds']:.2f} cores")
    sim, fit = t["cpu_seconds_simulate"], t["cpu_seconds_analyse"]
    print(f"     simulate_nlca {sim:.1f} s ({100 * sim / (sim + fit):.0f} %, {1000 * sim / args.sims:.0f} ms/trial); "
          f"analysis {fit:.1f} s ({100 * fit / (sim + fit):.0f} %, {1000 * fit / args.sims:.0f} ms/trial)")
    w = t["workers"]
    print(f"on {w} idle cores this would take about {cpu_total / w:.0f} s; 1,000 trials ≈ {1000 * per / w:.0f} s "
          f"(target 60 s for 1,000 needs ≤ {60_000 * w / 1000:.0f} ms CPU per trial)")
    print()
    print(res.summary())
    if args.profile > 0:
        profile(args.profile, args.estimator, args.effect)


if __name__ == "__main__":
    main()
