"""Benchmark the resampling cores on ILCOP-sized trust panels.

Run:  python benchmarks/bench_resampling.py  [--repeat 7] [--loop-draws 200] [--blas-default]

Designs (simulated, weighted by trust-period denominators, 40 pair clusters):
* DiD aggregate: 80 trusts × (pre, post) = 160 rows; rate ~ 1 + treated + post + treated:post.
* TWFE: 80 trusts × 4 audit years = 320 rows; rate ~ treat_post + trust FE + year FE
  (84 absorbed columns, rank 83).

Each timing is the median (and minimum) of ``--repeat`` runs after one warm-up run.
The reference is a loop of statsmodels WLS refits (one per draw) timed on
``--loop-draws`` draws and extrapolated linearly to the full number of draws.
Timings on a shared machine vary; compare the minimum column.

BLAS runs single-threaded unless ``--blas-default`` is given (or a thread count
is already set in the environment): these matrices are tiny, threads cannot
help them, and on a busy machine multi-threaded OpenBLAS spends its time
waiting (3–20× slower here).  Parallelism belongs one level up (outcomes,
replicates), one BLAS thread per worker.
"""
from __future__ import annotations

import os
import sys

if "--blas-default" not in sys.argv:  # must happen before numpy is imported
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import statsmodels.api as sm  # noqa: E402
from _common import timed  # noqa: E402

from rp2pr_eval.models.randomisation import (
    assignment_map,
    batched_wls_coef,
    batched_wls_stat,
    pair_assignments,
    randomisation_test_linear,
)
from rp2pr_eval.models.wild import bootstrap_weights, wild_cluster_bootstrap_linear

N_PAIRS, N_TREATED = 40, 15


def simulate(seed: int = 1, n_periods: int = 2):
    rng = np.random.default_rng(seed)
    n_trusts = 2 * N_PAIRS
    trust = np.repeat(np.arange(n_trusts), n_periods)
    pair = trust // 2
    period = np.tile(np.arange(n_periods), n_trusts)
    post = (period >= n_periods // 2).astype(float)
    obs = np.zeros(N_PAIRS, dtype=np.int8)
    obs[rng.choice(N_PAIRS, N_TREATED, replace=False)] = 1
    volume = np.clip(np.round(rng.lognormal(np.log(210), 0.5, n_trusts)), 60, 750)
    denom = np.round(volume[trust] * rng.uniform(0.9, 1.1, trust.size))
    p = np.clip(0.58 + rng.normal(0, 0.04, N_PAIRS)[pair] + 0.05 * rng.standard_t(4, n_trusts)[trust]
                + 0.015 * period, 0.05, 0.95)
    rate = rng.binomial(denom.astype(int), p) / denom
    return dict(y=rate, w=denom, pair=pair, trust=trust, period=period, post=post, obs=obs)




def loop_ri(d, X_of, A, cov):
    for a in A:
        fit = sm.WLS(d["y"], X_of(a), weights=d["w"])
        fit.fit(cov_type="cluster", cov_kwds={"groups": d["pair"]}) if cov else fit.fit()


def loop_wild(X, d, V):
    """The textbook WCR loop: restricted fit, then one statsmodels WLS + CR1 per draw."""
    Xr = X[:, :3]
    fitted_r = sm.WLS(d["y"], Xr, weights=d["w"]).fit().fittedvalues
    resid_r = d["y"] - fitted_r
    for v in V:
        y_star = fitted_r + v[d["pair"]] * resid_r
        sm.WLS(y_star, X, weights=d["w"]).fit(cov_type="cluster", cov_kwds={"groups": d["pair"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--loop-draws", type=int, default=200)
    parser.add_argument("--draws", type=int, default=10_000)
    parser.add_argument("--blas-default", action="store_true", help="keep the BLAS library's own thread count")
    args = parser.parse_args()
    R, L, D = args.repeat, args.loop_draws, args.draws

    did = simulate(1, 2)
    tw = simulate(2, 4)
    Xf = np.column_stack([np.ones(160), did["post"]])
    did_maps = np.stack([assignment_map(did["pair"], N_PAIRS), assignment_map(did["pair"], N_PAIRS, did["post"])])

    def did_builder(a):
        t = a[:, did["pair"]].astype(float)
        return np.stack([t, t * did["post"]], axis=2)

    tw_map = assignment_map(tw["pair"], N_PAIRS, tw["post"])
    absorb = [tw["trust"], tw["period"]]
    A, _ = pair_assignments(N_PAIRS, N_TREATED, D, rng=3)
    X_did = np.column_stack([Xf, did["obs"][did["pair"]], did["obs"][did["pair"]] * did["post"]])
    fe = np.hstack([np.eye(80)[tw["trust"]], np.eye(4)[tw["period"]][:, 1:]])
    B = D - 1

    rows = []

    def add(task, n_rows, n_draws, fn, ref=None):
        med, best = timed(fn, R)
        rows.append((task, n_rows, n_draws, med, best, ref))

    # ---------------------------------------------------------------- wild bootstrap
    V = bootstrap_weights(N_PAIRS, L, rng=1)
    t0 = time.perf_counter()
    loop_wild(X_did, did, V)
    wild_ref = (time.perf_counter() - t0) * B / L
    add("WCR bootstrap-t + CI (Rademacher)", 160, B,
        lambda: wild_cluster_bootstrap_linear(X_did, did["y"], coef_index=3, cluster=did["pair"], weights=did["w"],
                                              n_boot=B, seed=1), wild_ref)
    add("WCR bootstrap-t, no CI", 160, B,
        lambda: wild_cluster_bootstrap_linear(X_did, did["y"], coef_index=3, cluster=did["pair"], weights=did["w"],
                                              n_boot=B, seed=1, ci=False), wild_ref)
    add("WCR bootstrap-t + CI (Webb)", 160, B,
        lambda: wild_cluster_bootstrap_linear(X_did, did["y"], coef_index=3, cluster=did["pair"], weights=did["w"],
                                              n_boot=B, boot_weights="webb", seed=1), wild_ref)

    # ---------------------------------------------------------------- randomisation: DiD aggregate
    def x_did(a):
        return np.column_stack([Xf, a[did["pair"]], a[did["pair"]] * did["post"]])

    t0 = time.perf_counter()
    loop_ri(did, x_did, A[:L], cov=False)
    ri_coef_ref = (time.perf_counter() - t0) * D / L
    t0 = time.perf_counter()
    loop_ri(did, x_did, A[:L], cov=True)
    ri_cr1_ref = (time.perf_counter() - t0) * D / L
    add("RI DiD coef, linear maps", 160, D,
        lambda: batched_wls_coef(did["y"], Xf, did_maps, A, coef_index=3, weights=did["w"]), ri_coef_ref)
    add("RI DiD coef, callable builder", 160, D,
        lambda: batched_wls_coef(did["y"], Xf, did_builder, A, coef_index=3, weights=did["w"]), ri_coef_ref)
    add("RI DiD CR1 t", 160, D,
        lambda: batched_wls_stat(did["y"], Xf, did_maps, A, coef_index=3, weights=did["w"], cluster=did["pair"]),
        ri_cr1_ref)
    add("RI DiD CR2 t", 160, D,
        lambda: batched_wls_stat(did["y"], Xf, did_maps, A, coef_index=3, weights=did["w"], cluster=did["pair"],
                                 vcov="CR2"), None)
    add("RI DiD test + CI (estimate)", 160, D,
        lambda: randomisation_test_linear(did["y"], Xf, did_maps, did["obs"], coef_index=3, n_draws=D, seed=3,
                                          weights=did["w"]), ri_coef_ref)
    add("RI DiD test + CI (CR1 t)", 160, D,
        lambda: randomisation_test_linear(did["y"], Xf, did_maps, did["obs"], coef_index=3, n_draws=D, seed=3,
                                          weights=did["w"], statistic="t", cluster=did["pair"]), ri_cr1_ref)

    # ---------------------------------------------------------------- randomisation: TWFE
    def x_tw(a):
        return np.column_stack([a[tw["pair"]] * tw["post"], fe])

    t0 = time.perf_counter()
    loop_ri(tw, x_tw, A[:L], cov=False)
    tw_coef_ref = (time.perf_counter() - t0) * D / L
    t0 = time.perf_counter()
    loop_ri(tw, x_tw, A[:L], cov=True)
    tw_cr1_ref = (time.perf_counter() - t0) * D / L
    add("RI TWFE coef (84 FE absorbed), maps", 320, D,
        lambda: batched_wls_coef(tw["y"], None, tw_map, A, coef_index=0, weights=tw["w"], absorb=absorb), tw_coef_ref)
    add("RI TWFE coef, callable builder", 320, D,
        lambda: batched_wls_coef(tw["y"], None, lambda a: a[:, tw["pair"]] * tw["post"], A, coef_index=0,
                                 weights=tw["w"], absorb=absorb), tw_coef_ref)
    add("RI TWFE CR1 t", 320, D,
        lambda: batched_wls_stat(tw["y"], None, tw_map, A, coef_index=0, weights=tw["w"], absorb=absorb,
                                 cluster=tw["pair"]), tw_cr1_ref)
    add("RI TWFE CR2 t", 320, D,
        lambda: batched_wls_stat(tw["y"], None, tw_map, A, coef_index=0, weights=tw["w"], absorb=absorb,
                                 cluster=tw["pair"], vcov="CR2"), None)
    add("RI TWFE test + CI (estimate)", 320, D,
        lambda: randomisation_test_linear(tw["y"], None, tw_map, tw["obs"], coef_index=0, n_draws=D, seed=3,
                                          weights=tw["w"], absorb=absorb), tw_coef_ref)

    threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or "default"
    print(f"bench_resampling: {os.cpu_count()} CPUs, BLAS threads {threads}, repeat {R}, "
          f"loop reference from {L} draws (statsmodels WLS refits, extrapolated)")
    head = f"{'task':40s} {'rows':>5s} {'draws':>6s} {'median s':>9s} {'min s':>8s} {'µs/draw':>8s} " \
           f"{'loop s (extrap.)':>17s} {'speed-up':>9s}"
    print(head)
    print("-" * len(head))
    for task, n_rows, n_draws, med, best, ref in rows:
        ref_s = f"{ref:17.1f}" if ref is not None else f"{'—':>17s}"
        speed = f"{ref / med:8.0f}×" if ref is not None else f"{'—':>9s}"
        print(f"{task:40s} {n_rows:5d} {n_draws:6d} {med:9.4f} {best:8.4f} {1e6 * med / n_draws:8.1f} {ref_s} {speed}")


if __name__ == "__main__":
    main()
