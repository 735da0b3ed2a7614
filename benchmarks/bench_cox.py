"""Benchmark: statsmodels PHReg vs fit_cox (Efron and Breslow ties, with and without clusters).

Run:  python benchmarks/bench_cox.py [--repeats 5] [--sm-repeats 1] [--no-statsmodels]

Seeded simulated patient-level survival data shaped like ILCOP: 85,000
patients in 40 clusters (trust pairs, 15 treated), 18 covariates (cluster-level
treatment, period, treatment x period, 6 continuous and 9 binary case-mix
columns), Weibull proportional hazards with a cluster frailty, administrative
censoring after 1-4 years, times floored to whole days (~1,500 unique times,
many ties). "statsmodels" is ``PHReg(time, X, status=died, ties=...).fit()``
and ``.fit(groups=pair)``; "fit_cox" is ``rp2pr_eval.models.cox.fit_cox``.
Timings are wall-clock seconds (best and median of the repeats) and the best
process CPU seconds (all threads; a guide when the machine is shared); nothing
is asserted. The last columns compare the two: largest absolute coefficient
difference and largest relative SE difference. With ``ties="efron"`` and
clusters the SEs differ by design: statsmodels forms the robust variance from
Breslow-type score residuals, fit_cox from Efron-weighted ones as R's coxph.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from statsmodels.duration.hazard_regression import PHReg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import time_it  # noqa: E402

from rp2pr_eval.models.cox import fit_cox

N_OBS = 85_000
N_CLUSTERS = 40
P = 18


def simulate(n_obs: int, n_clusters: int, seed: int):
    """Times (whole days), event indicator, design (n, 18) and cluster labels."""
    rng = np.random.default_rng(seed)
    sizes = rng.multinomial(n_obs, rng.dirichlet(np.full(n_clusters, 20.0)))
    g = np.repeat(np.arange(n_clusters), sizes)
    treat_c = np.zeros(n_clusters)
    treat_c[rng.permutation(n_clusters)[:15]] = 1.0
    treat = treat_c[g]
    post = rng.integers(0, 2, n_obs).astype(float)
    cont = rng.standard_normal((n_obs, 6))
    binary = (rng.random((n_obs, 9)) < rng.uniform(0.1, 0.6, 9)).astype(float)
    X = np.column_stack([treat, post, treat * post, cont, binary])
    beta = np.concatenate([[0.05, -0.05, -0.15], rng.normal(0.0, 0.25, P - 3)])
    lp = X @ beta + rng.normal(0.0, 0.2, n_clusters)[g]
    shape, median = 0.8, 300.0
    scale = median / np.log(2.0) ** (1.0 / shape)
    t_event = scale * (rng.exponential(size=n_obs) / np.exp(lp)) ** (1.0 / shape)
    t_cens = rng.uniform(365.0, 4 * 365.0, n_obs)
    died = (t_event <= t_cens).astype(float)
    time_days = np.floor(np.minimum(t_event, t_cens))
    return time_days, died, X, g


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="repeats of fit_cox")
    parser.add_argument("--sm-repeats", type=int, default=1, help="repeats of statsmodels PHReg")
    parser.add_argument("--no-statsmodels", action="store_true", help="time fit_cox only")
    args = parser.parse_args(argv)

    t, died, X, g = simulate(N_OBS, N_CLUSTERS, seed=20240612)
    print(
        f"Cox PH: {N_OBS:,} rows, {N_CLUSTERS} clusters, p = {P}, {int(died.sum()):,} events, "
        f"{np.unique(t).size:,} unique times ({np.unique(t[died == 1]).size:,} with events)"
    )
    rows = []
    for ties in ("efron", "breslow"):
        for clustered in (False, True):
            groups = g if clustered else None
            label = f"{ties}, {'robust' if clustered else 'model-based'}"
            best, med, cpu, fit = time_it(lambda: fit_cox(t, died, X, groups=groups, ties=ties), args.repeats)
            rows.append((label, "fit_cox", fit.n_iter, best, med, cpu, "", ""))
            if args.no_statsmodels:
                continue

            def sm_fit():
                model = PHReg(t, X, status=died, ties=ties)
                return model.fit() if groups is None else model.fit(groups=groups)

            best_sm, med_sm, cpu_sm, res = time_it(sm_fit, args.sm_repeats)
            dcoef = float(np.max(np.abs(np.asarray(res.params) - fit.coef)))
            dse = float(np.max(np.abs(np.asarray(res.bse) / fit.se - 1.0)))
            rows.append((label, "statsmodels PHReg", "", best_sm, med_sm, cpu_sm, f"{dcoef:.1e}", f"{dse:.1e}"))

    header = ("ties, variance", "method", "iter", "best s", "median s", "cpu s", "max|dcoef|", "max rel dSE")
    widths = [24, 18, 4, 8, 8, 8, 10, 11]
    print(f"repeats: fit_cox {args.repeats}, statsmodels {args.sm_repeats}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for label, method, n_iter, best, med, cpu, dcoef, dse in rows:
        cells = (label, method, str(n_iter), f"{best:.3f}", f"{med:.3f}", f"{cpu:.3f}", dcoef, dse)
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths)))


if __name__ == "__main__":
    main()
