"""Benchmark: statsmodels' plain GEE vs fit_gee_logit (own Fisher scoring, robust + Mancl–DeRouen).

Run:  python benchmarks/bench_gee.py [--repeats 3]

Three datasets, exchangeable working correlation:

* seeded simulated patient-level data with a random-intercept logit, ~80k
  rows in 40 clusters and ~390k rows in 78 clusters, 15 design columns
  (intercept, cluster-level treatment, period, treatment x period and 11
  patient-level covariates): a GEE solution exists and both fits find it;
* the bundled synthetic audit (``data/synthetic/nlca_patients.csv.gz``,
  ``active_treatment``, 83,888 patients in 40 pair clusters of 1,044–3,709,
  19 columns with raw age): the exchangeable GEE has no solution there (see
  the ``gee_core`` module docstring). statsmodels drifts until its
  coefficients overflow (NaN); fit_gee_logit notices rho running away and
  refits with rho held at its one-step value (with a warning). Its time
  includes that diagnosis and the refit.

"statsmodels GEE" is ``GEE(...).fit(ddof_scale=0)`` with its default robust
covariance only (no bias correction: statsmodels' ``cov_type="bias_reduced"``
forms dense n_i x n_i matrices, infeasible at n_i ~ 2,000-5,000). Timings are
wall-clock seconds (best and median of ``--repeats`` runs) and the best process
CPU seconds (all threads; the better guide when the machine is shared);
nothing is asserted.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import statsmodels.api as sm
from scipy import special
from statsmodels.genmod.cov_struct import Exchangeable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import time_it  # noqa: E402

from rp2pr_eval.errors import DataError
from rp2pr_eval.models.gee import fit_gee_logit

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


def bundled():
    """The reproduction case: bundled audit, active_treatment, case-mix design, pair clusters."""
    import rp2pr_eval as rp
    from rp2pr_eval.estimators.prepare import patient_design, prepare

    df = rp.load_patients(ROOT / "data" / "synthetic" / "nlca_patients.csv.gz")
    prep = prepare(df, "active_treatment", design=None, cluster="pair_id", kinds=("binary",))
    X, _ = patient_design(prep, rp.CASE_MIX)
    y = prep.rows["active_treatment"].to_numpy(float)
    return X, y, np.asarray(prep.cluster_codes())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    datasets = [
        ("sim", *simulate(80_000, 40, seed=20240611)),
        ("sim", *simulate(390_000, 78, seed=20240611)),
        ("bundled", *bundled()),
    ]
    rows = []
    for label, X, y, g in datasets:
        j = 3  # treatment x period

        def sm_fit():
            model = sm.GEE(y, X, groups=g, family=sm.families.Binomial(), cov_struct=Exchangeable())
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return model.fit(ddof_scale=0)

        def core_fit():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the one-step fallback is reported in the note
                    return fit_gee_logit(X, y, g, cov_struct="exchangeable", vcov="mancl_derouen")
            except DataError as exc:
                return exc

        best_sm, med_sm, cpu_sm, res = time_it(sm_fit, args.repeats)
        best_core, med_core, cpu_core, fit = time_it(core_fit, args.repeats)
        n_iter_sm = len(res.fit_history["params"])
        sm_ok = bool(res.converged) and np.all(np.isfinite(res.params))
        sm_note = (
            f"rho {float(res.cov_struct.dep_params):.4f}"
            if sm_ok
            else f"not converged (rho {float(res.cov_struct.dep_params):.3g}, "
            f"{int(np.sum(~np.isfinite(res.params)))} NaN coef)"
        )
        rows.append((len(y), int(np.max(g)) + 1, label, "statsmodels GEE (robust only)", str(n_iter_sm),
                     best_sm, med_sm, cpu_sm, sm_note, ""))
        if isinstance(fit, DataError):
            runaway = "keeps growing" in str(fit)
            note = "DataError: " + ("rho runs away, no solution" if runaway else str(fit)[:36])
            ratio, n_iter = "", "-"
        else:
            note = f"rho {fit.working_corr:.4f}" + ("" if fit.rho_method == "iterated" else f" ({fit.rho_method})")
            if sm_ok:
                dcoef = float(np.max(np.abs(np.asarray(res.params) - fit.coef)))
                se_sm = np.sqrt(np.diag(res.cov_robust))
                drob = float(np.max(np.abs(se_sm / np.sqrt(np.diag(fit.vcov_robust)) - 1)))
                note += f"; vs sm {dcoef:.1e} / {drob:.1e}"
            ratio = f"{fit.se[j] / np.sqrt(fit.vcov_robust[j, j]):.4f}"
            n_iter = str(fit.n_iter)
        rows.append((len(y), int(np.max(g)) + 1, label, "fit_gee_logit (robust + MD)", n_iter,
                     best_core, med_core, cpu_core, note, ratio))

    header = ("rows", "G", "data", "method", "iter", "best s", "median s", "cpu s",
              "result (max|dcoef| / max rel dSE)", "SE MD/LZ trt:post")
    widths = [9, 4, 8, 30, 4, 7, 8, 7, 48, 17]
    print(f"logistic GEE, exchangeable, repeats = {args.repeats}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for n_obs, n_clusters, label, method, n_iter, best, med, cpu, note, ratio in rows:
        cells = (f"{n_obs:,}", str(n_clusters), label, method, n_iter,
                 f"{best:.3f}", f"{med:.3f}", f"{cpu:.3f}", note, ratio)
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths)))


if __name__ == "__main__":
    main()
