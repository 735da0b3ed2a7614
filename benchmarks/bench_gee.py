"""Benchmark: statsmodels' plain GEE vs fit_gee_logit (robust + Mancl–DeRouen).

Run:  python benchmarks/bench_gee.py [--repeats 3]

Seeded simulated patient-level data shaped like ILCOP: ~80k rows in 40
clusters (pairs) and ~390k rows in 78 clusters, 15 design columns (intercept,
cluster-level treatment, period, treatment x period and 11 patient-level
covariates), exchangeable working correlation. "statsmodels GEE" is
``GEE(...).fit(ddof_scale=0)`` with its default robust covariance only (no
bias correction: statsmodels' ``cov_type="bias_reduced"`` forms dense
n_i x n_i matrices, infeasible at n_i ~ 2,000-5,000). Timings are wall-clock
seconds (best and median of ``--repeats`` runs) and the best process CPU
seconds (all threads; a guide when the machine is shared); nothing is asserted.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import statsmodels.api as sm
from scipy import special
from statsmodels.genmod.cov_struct import Exchangeable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rp2pr_eval.gee_core import fit_gee_logit  # noqa: E402

P = 15


def simulate(n_obs: int, n_clusters: int, seed: int):
    """Patient-level design, cluster labels and outcome (rows sorted by cluster)."""
    rng = np.random.default_rng(seed)
    sizes = rng.multinomial(n_obs, rng.dirichlet(np.full(n_clusters, 20.0)))
    g = np.repeat(np.arange(n_clusters), sizes)
    treat_c = np.zeros(n_clusters)
    treat_c[rng.permutation(n_clusters)[: round(0.375 * n_clusters)]] = 1.0
    treat = treat_c[g]
    post = rng.integers(0, 2, n_obs).astype(float)
    cont = rng.standard_normal((n_obs, 5))
    binary = (rng.random((n_obs, 6)) < rng.uniform(0.1, 0.6, 6)).astype(float)
    X = np.column_stack([np.ones(n_obs), treat, post, treat * post, cont, binary])
    beta = np.concatenate([[-0.3, 0.1, 0.05, 0.3], rng.normal(0.0, 0.2, P - 4)])
    u = rng.normal(0.0, 0.3, n_clusters)
    y = (rng.random(n_obs) < special.expit(X @ beta + u[g])).astype(float)
    return X, y, g


def time_it(fn, repeats: int):
    """Best and median wall-clock seconds, best process CPU seconds, last result."""
    times, cpu, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(times), statistics.median(times), min(cpu), out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    rows = []
    for n_obs, n_clusters in [(80_000, 40), (390_000, 78)]:
        X, y, g = simulate(n_obs, n_clusters, seed=20240611)

        def sm_fit():
            model = sm.GEE(y, X, groups=g, family=sm.families.Binomial(), cov_struct=Exchangeable())
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return model.fit(ddof_scale=0)

        def core_fit():
            return fit_gee_logit(X, y, g, cov_struct="exchangeable", vcov="mancl_derouen")

        best_sm, med_sm, cpu_sm, res = time_it(sm_fit, args.repeats)
        best_core, med_core, cpu_core, fit = time_it(core_fit, args.repeats)
        dcoef = float(np.max(np.abs(np.asarray(res.params) - fit.coef)))
        se_sm = np.sqrt(np.diag(res.cov_robust))
        drob = float(np.max(np.abs(se_sm / np.sqrt(np.diag(fit.vcov_robust)) - 1)))
        j = 3  # treatment x period
        n_iter_sm = len(res.fit_history["params"])
        label = "statsmodels GEE (robust only)"
        rows.append((n_obs, n_clusters, label, n_iter_sm, best_sm, med_sm, cpu_sm, "", ""))
        rows.append(
            (
                n_obs,
                n_clusters,
                "fit_gee_logit (robust + MD)",
                fit.n_iter,
                best_core,
                med_core,
                cpu_core,
                f"{dcoef:.1e} / {drob:.1e}",
                f"{fit.se[j] / np.sqrt(fit.vcov_robust[j, j]):.4f}",
            )
        )

    header = (
        "rows", "G", "method", "iter", "best s", "median s", "cpu s",
        "max|dcoef| / max rel dSE", "SE MD/LZ trt:post",
    )
    widths = [9, 4, 31, 4, 7, 8, 7, 26, 17]
    print(f"logistic GEE, exchangeable, p = {P}, repeats = {args.repeats}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for n_obs, n_clusters, method, n_iter, best, med, cpu, diff, ratio in rows:
        cells = (
            f"{n_obs:,}", str(n_clusters), method, str(n_iter),
            f"{best:.3f}", f"{med:.3f}", f"{cpu:.3f}", diff, ratio,
        )
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths)))


if __name__ == "__main__":
    main()
