"""Benchmark rp2pr_eval.models.glmm on ILCOP-sized simulated data.

Run from the repository root::

    python benchmarks/bench_glmm.py               # both sizes (VB on the 80k case only)
    python benchmarks/bench_glmm.py --quick       # the 80k-row case only
    python benchmarks/bench_glmm.py --vb-large    # also VB on 390k rows (several minutes)

Simulates patient-level data with numpy (seeded): trust-level treatment,
patient-level post period, continuous age and categorical case mix (14 columns
plus the intercept), a random trust intercept with SD 0.3. Times
``fit_glmm_logit`` (n_quad = 1 and 25) and the variational-Bayes wrapper, and
prints the wall and CPU time, the fitted SD, the treat:post estimate and its SE,
and convergence. The 1-minute load average is printed too: on a shared machine
wall times grow with the load.
Targets: n_quad = 25 on about 80k rows / 80 groups in <= 2 s, and about 390k
rows / 156 groups in <= 15 s, on a 2-core machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np

from rp2pr_eval.models.glmm import fit_glmm_logit, fit_glmm_logit_vb

NAMES = (
    "(Intercept)", "treat", "post", "treat:post", "age10", "female",
    "stage2", "stage3", "stage4", "ps1", "ps2", "ps34", "comorb1", "comorb2", "deprivation",
)


def simulate(n_groups: int, mean_size: int, seed: int, sd: float = 0.3):
    """Return X (n x 15), y (n,), groups (n,) and the true (beta, sd)."""
    rng = np.random.default_rng(seed)
    sizes = np.maximum(50, rng.gamma(4.0, mean_size / 4.0, n_groups).round().astype(int))
    g = np.repeat(np.arange(n_groups), sizes)
    n = g.size
    treat_g = rng.permutation(np.arange(n_groups) % 2)
    treat = treat_g[g].astype(float)
    post = rng.binomial(1, 0.5, n).astype(float)
    age10 = (rng.normal(72, 9, n) - 70) / 10
    female = rng.binomial(1, 0.47, n).astype(float)
    stage = rng.choice(4, n, p=[0.15, 0.15, 0.3, 0.4])
    ps = rng.choice(4, n, p=[0.3, 0.3, 0.2, 0.2])
    comorb = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    dep = rng.integers(1, 6, n).astype(float)
    X = np.column_stack(
        [np.ones(n), treat, post, treat * post, age10, female]
        + [(stage == s).astype(float) for s in (1, 2, 3)]
        + [(ps == s).astype(float) for s in (1, 2, 3)]
        + [(comorb == s).astype(float) for s in (1, 2)]
        + [(dep - 3) / 2]
    )
    beta = np.array([0.8, 0.1, 0.1, 0.25, -0.3, 0.05, -0.2, -0.6, -1.2, -0.3, -0.9, -1.8, -0.2, -0.4, -0.1])
    b = rng.normal(0, sd, n_groups)
    y = rng.binomial(1, 1 / (1 + np.exp(-(X @ beta + b[g])))).astype(float)
    labels = np.array([f"RX{j:03d}" for j in range(n_groups)], dtype=object)
    return X, y, labels[g], beta, sd


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the 80k-row case")
    parser.add_argument("--vb-large", action="store_true", help="also time VB on the 390k-row case")
    args = parser.parse_args()
    cases = [("80 trusts", 80, 1000, 1)]
    if not args.quick:
        cases.append(("156 trusts", 156, 2500, 2))
    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    header = (
        f"{'data':<12}{'rows':>9}{'groups':>8}  {'method':<15}{'wall s':>8}{'cpu s':>8}"
        f"{'sd':>8}{'treat:post':>12}{'se':>8}  converged"
    )
    print(header)
    print("-" * len(header))
    for label, G, size, seed in cases:
        X, y, groups, beta, sd = simulate(G, size, seed)
        runs = [
            ("AGHQ n_quad=1", lambda: fit_glmm_logit(X, y, groups, n_quad=1, names=NAMES)),
            ("AGHQ n_quad=25", lambda: fit_glmm_logit(X, y, groups, n_quad=25, names=NAMES)),
        ]
        if G == 80 or args.vb_large:
            runs.append(("VB (statsmod.)", lambda: fit_glmm_logit_vb(X, y, groups, names=NAMES)))
        for method, run in runs:
            wall, cpu, fit = timed(run)
            conv = getattr(fit, "converged", "n/a")
            print(
                f"{label:<12}{len(y):>9}{G:>8}  {method:<15}{wall:>8.2f}{cpu:>8.2f}{fit.sd:>8.3f}"
                f"{fit.beta[3]:>12.4f}{fit.se[3]:>8.4f}  {conv}   (load {os.getloadavg()[0]:.1f})"
            )
        print(f"{'':<12}{'truth':>9}{'':>8}  {'':<15}{'':>16}{sd:>8.3f}{beta[3]:>12.4f}")


if __name__ == "__main__":
    main()
