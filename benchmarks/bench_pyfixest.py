"""The study's trust-level estimators side by side with pyfixest's ``feols`` on the same trust-year panel.

Run with ``make bench-pyfixest`` (creates ``.venv-bench``: the locked packages, the project and
pyfixest, which is not a dependency of the package). For each estimator the script times

* ``rp2pr_eval``: the public estimator on the bundled patient table (validation, aggregation to
  trust values, fit, Effect) — what a user calls;
* ``rp (panel)``: the public estimator on the trust × year panel (``rp.trust_panel``: numerator and
  denominator per trust and year, the published-figures path) — the study layer given the same
  aggregated data as feols, validation of the panel included;
* ``rp (fit)``: the same model on the already aggregated panel through the general layer
  (``models.cluster_ols`` with a formula), i.e. the like-for-like comparison with feols;
* ``pyfixest``: ``pf.feols`` on the same panel with the same weights and CRV1/CRV3 clustering by pair
  (CR2 does not exist in pyfixest: its CR1 is timed, which is cheaper than CR2).

and checks that the point estimates agree. Median of ``REPEAT`` calls after one warm-up, milliseconds
(``python benchmarks/bench_pyfixest.py 40`` for 40 calls: the machine may be shared, and the BLAS
threads of the 90-column fixed-effects fits make single calls noisy under load).

Last measured (2 shared cores, load ≈ 1.2, median of 30, ms), rp (panel) on main before issue 15's numpy
panel path → after, with pyfixest in the same run as the "after": did_aggregate 16.1 → 8.3 (feols 15.7),
ancova 23.4 → 10.6 (14.5), did_twfe 20.1 → 12.6 (22.0), event_study 36.1 → 24.9 (26.1).
"""
from __future__ import annotations

import sys
import warnings

import numpy as np

from _common import load, timed

import rp2pr_eval as rp
from rp2pr_eval import models
from rp2pr_eval.estimators.prepare import prepare, trust_values
from rp2pr_eval.paths import bundled_data

REPEAT = int(sys.argv[1]) if len(sys.argv) > 1 else 15
OUTCOME = "active_treatment"


def main() -> int:
    import pyfixest as pf

    patients = rp.load_patients(bundled_data())
    design = rp.StudyDesign()
    prep = prepare(patients, OUTCOME, design=None, cluster="pair_id", estimator="bench", trust_level_only=True)
    period = trust_values(prep, "period").assign(post=lambda d: (d["period"] == "post").astype(float))
    year = trust_values(prep, "audit_year")
    year = year.assign(treat_post=year["treated"] * np.isin(year["audit_year"], design.post_years))
    year["trust"] = year["trust_id"].astype(str)
    wide = period.pivot(index="trust_id", columns="period", values="value")
    ancova_panel = (period[period["period"] == "post"].set_index("trust_id")
                    .assign(baseline=wide["pre"]).reset_index())
    event = trust_values(prepare(patients, OUTCOME, design=None, cluster="pair_id", keep_during=True,
                                 estimator="bench"), "audit_year")
    for y in design.years:
        if y != design.pre_years[-1]:
            event[f"t{y}"] = event["treated"] * (event["audit_year"] == y)
    event["trust"] = event["trust_id"].astype(str)
    ev_terms = " + ".join(f"t{y}" for y in design.years if y != design.pre_years[-1])

    panel = rp.trust_panel(patients, OUTCOME, by="audit_year")
    on_panel = {"did_aggregate": lambda: rp.did_aggregate(panel, OUTCOME, vcov="CR2"),
                "ancova": lambda: rp.ancova(panel, OUTCOME, vcov="CR2"),
                "did_twfe": lambda: rp.did_twfe(panel, OUTCOME, vcov="CR1"),
                "event_study": lambda: rp.event_study(panel, OUTCOME, vcov="CR2")}
    rows = []
    cases = [
        ("did_aggregate", lambda: rp.did_aggregate(patients, OUTCOME, vcov="CR2"),
         lambda: models.cluster_ols("value ~ treated * post", period, cluster="pair_id", weights="weight", vcov="CR2"),
         lambda: pf.feols("value ~ treated * post", data=period, weights="weight", vcov={"CRV1": "pair_id"}),
         "treated:post"),
        ("ancova", lambda: rp.ancova(patients, OUTCOME, vcov="CR2"),
         lambda: models.cluster_ols("value ~ treated + baseline", ancova_panel, cluster="pair_id", weights="weight",
                                    vcov="CR2"),
         lambda: pf.feols("value ~ treated + baseline", data=ancova_panel, weights="weight", vcov={"CRV1": "pair_id"}),
         "treated"),
        ("did_twfe", lambda: rp.did_twfe(patients, OUTCOME, vcov="CR1"),
         lambda: models.cluster_ols("value ~ 0 + treat_post + C(trust) + C(audit_year)", year, cluster="pair_id",
                                    weights="weight", vcov="CR1"),
         lambda: pf.feols("value ~ treat_post | trust + audit_year", data=year, weights="weight",
                          vcov={"CRV1": "pair_id"}),
         "treat_post"),
        ("event_study", lambda: rp.event_study(patients, OUTCOME, vcov="CR2"),
         lambda: models.cluster_ols(f"value ~ 0 + {ev_terms} + C(trust) + C(audit_year)", event, cluster="pair_id",
                                    weights="weight", vcov="CR2"),
         lambda: pf.feols(f"value ~ {ev_terms} | trust + audit_year", data=event, weights="weight",
                          vcov={"CRV1": "pair_id"}),
         None),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, ours, ours_fit, theirs, term in cases:
            t_ours = timed(ours, REPEAT)[0] * 1e3
            t_panel = timed(on_panel[name], REPEAT)[0] * 1e3
            t_fit = timed(ours_fit, REPEAT)[0] * 1e3
            t_pf = timed(theirs, REPEAT)[0] * 1e3
            agree = ""
            if term is not None:
                diff = abs(float(ours_fit().params[term]) - float(theirs().coef()[term]))
                agree = f"{diff:.1e}"
            rows.append((name, t_ours, t_panel, t_fit, t_pf, agree))
    print(f"trust-level estimators vs pyfixest {pf.__version__} feols, outcome {OUTCOME}, median of {REPEAT} "
          f"(ms); load {load()}")
    print(f"{'estimator':<14}{'rp2pr_eval':>12}{'rp (panel)':>12}{'rp (fit)':>10}{'pyfixest':>10}  |Δ estimate|")
    for name, a, b, c, d, agree in rows:
        print(f"{name:<14}{a:>12.1f}{b:>12.1f}{c:>10.1f}{d:>10.1f}  {agree}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
