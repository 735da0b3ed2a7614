"""One outcome, every estimator: what the outcome notebook and the batch runner call.

:func:`analyse_outcome` runs each requested estimator that applies to the
outcome's kind (binary, continuous, time to event), records what was skipped
and why, and keeps the small frames figures need (event study, randomisation
histogram, trust random effects, and, disclosure-controlled under the design's
policy, the arm × year rates of the trends figure and the trust × period panel
of the funnel plot: :mod:`rp2pr_eval.presentation.panels`).  :class:`OutcomeAnalysis`
saves to and loads from a results folder, so figures and the summary can be
regenerated without refitting.
"""
from __future__ import annotations

import time
import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from rp2pr_eval.estimators.did import (
    ancova,
    did_aggregate,
    did_cox,
    did_logistic,
    did_twfe,
    event_study,
)
from rp2pr_eval.estimators.gee import gee_logistic_with_fallback
from rp2pr_eval.estimators.mixed_linear import mixed_linear
from rp2pr_eval.estimators.mixed_logistic import mixed_logistic
from rp2pr_eval.inference.design_based import (
    randomisation_effect,
    randomisation_test,
    wild_cluster_bootstrap,
)
from rp2pr_eval.data.panel import is_trust_panel
from rp2pr_eval.results.outcome import OutcomeAnalysis
from rp2pr_eval.study.design import StudyDesign, resolve_design
from rp2pr_eval.study.outcomes import CASE_MIX, OUTCOMES, resolve_outcome

#: Every estimator step, in report order (the primary analysis first).
ESTIMATORS: tuple[str, ...] = (
    "ancova", "did_aggregate", "did_twfe", "mixed_linear", "did_logistic", "mixed_logistic", "gee_logistic",
    "did_cox", "event_study", "randomisation_test", "wild_cluster_bootstrap",
)
#: Estimators that need the patient table (not applicable to a trust panel).
PATIENT_LEVEL: frozenset[str] = frozenset({"did_logistic", "mixed_logistic", "gee_logistic", "did_cox"})
_KINDS = {
    "binary": set(ESTIMATORS) - {"did_cox"},
    "continuous": {"ancova", "did_aggregate", "did_twfe", "mixed_linear", "event_study", "randomisation_test",
                   "wild_cluster_bootstrap"},
    "time_to_event": {"did_cox"},
}


def _histogram(draws: np.ndarray, bins: int = 60) -> dict[str, list[float]]:
    counts, edges = np.histogram(draws, bins=bins)
    return {"counts": counts.tolist(), "edges": edges.tolist()}


def analyse_outcome(
    patients: pd.DataFrame,
    outcome: str,
    *,
    design: StudyDesign | None = None,
    estimators: Sequence[str] | None = None,
    cluster: str = "pair_id",
    vcov: str = "CR2",
    weights: str | None = "denominator",
    covariates: Sequence[str] | None = tuple(CASE_MIX),
    ri_draws: int = 10_000,
    ri_statistic: str = "estimate",
    boot_draws: int = 9_999,
    boot_weights: str = "rademacher",
    n_quad: int = 25,
    glmm_random: Sequence[str] | None = ("pair_id", "trust_id", "trust_id:period"),
    glmm_method: str = "laplace",
    gee_vcov: str = "mancl_derouen",
    gee_cov_struct: str = "block_exchangeable",
    level: float = 0.95,
    seed: int = 1,
    incomplete_pairs: str | None = None,
    rates: str = "crude",
) -> OutcomeAnalysis:
    """Run every requested estimator that applies to ``outcome`` (see :data:`ESTIMATORS`).

    Estimators that do not apply to the outcome's kind are skipped with the
    reason recorded; an estimator that fails on these data (e.g. separation)
    is recorded in ``skipped`` with its error message rather than stopping the
    others.  The randomisation test and the wild bootstrap use the ANCOVA
    (primary) specification; the randomisation draws are seeded by ``seed`` so
    all outcomes share the same re-randomisations (Romano–Wolf).

    ``patients`` may be a trust panel (``rp2pr-eval run --panel``): the trust-level estimators, the
    randomisation test and the wild bootstrap run on it (the same numbers as from the patients); the
    patient-level models, and every estimator of a continuous outcome, are recorded in ``skipped`` as
    "not applicable to a trust panel" with the reason.  ``incomplete_pairs`` goes to every estimator,
    ``rates`` to the trust-level ones (docs/METHODS.md).

    ``mixed_logistic`` fits the nested GLMM with random intercepts ``glmm_random`` (default pair,
    trust, trust × period; ``method=glmm_method``, between–within t reference, see docs/METHODS.md);
    an empty ``glmm_random`` fits the trust-only GLMM by AGHQ with ``n_quad`` nodes.
    ``gee_logistic`` fits the working correlation ``gee_cov_struct`` (default block exchangeable: trust ×
    period blocks within pairs, Li, Turner & Preisser 2018) with the ``gee_vcov`` sandwich
    (:func:`rp2pr_eval.estimators.gee.gee_logistic_with_fallback`).
    """
    design = resolve_design(design)
    from_panel = is_trust_panel(patients)          # rp2pr-eval run --panel: trust-level estimators only
    entry = OUTCOMES[outcome] if from_panel and outcome in OUTCOMES else resolve_outcome(patients, outcome)
    wanted = list(ESTIMATORS if estimators is None else estimators)
    unknown = [e for e in wanted if e not in ESTIMATORS]
    if unknown:
        raise ValueError(f"unknown estimator(s) {unknown}; expected names from {', '.join(ESTIMATORS)}")
    covariates = list(covariates) if covariates is not None else None
    result = OutcomeAnalysis(outcome=entry.name, label=entry.label, kind=entry.kind, effects={})
    common = dict(design=design, cluster=cluster, incomplete_pairs=incomplete_pairs)
    # trust-level estimators, RI and bootstrap: crude or case-mix-adjusted rates (binary outcomes; others as they are)
    trust = dict(rates=rates if entry.kind == "binary" else "crude")
    steps = {
        "ancova": lambda: ancova(patients, outcome, vcov=vcov, weights=weights, level=level, **common, **trust),
        "did_aggregate": lambda: did_aggregate(patients, outcome, vcov=vcov, weights=weights, level=level, **common,
                                               **trust),
        "did_twfe": lambda: did_twfe(patients, outcome, vcov="CR1" if vcov == "CR3" else vcov, weights=weights,
                                     level=level, **common, **trust),
        "mixed_linear": lambda: mixed_linear(patients, outcome, level=level, **common, **trust),
        "did_logistic": lambda: did_logistic(patients, outcome, covariates=covariates, level=level, **common),
        "mixed_logistic": lambda: (
            mixed_logistic(patients, outcome, covariates=covariates, random=list(glmm_random), method=glmm_method,
                           level=level, **common) if glmm_random else
            mixed_logistic(patients, outcome, covariates=covariates, n_quad=n_quad, level=level, **common)),
        "gee_logistic": lambda: gee_logistic_with_fallback(patients, outcome, covariates=covariates, vcov=gee_vcov,
                                                           cov_struct=gee_cov_struct, level=level, **common),
        "did_cox": lambda: did_cox(patients, outcome, covariates=covariates, level=level, **common),
        "wild_cluster_bootstrap": lambda: wild_cluster_bootstrap(patients, outcome, "ancova", boot_draws,
                                                                 weights=boot_weights, seed=seed,
                                                                 regression_weights=weights, level=level, **common,
                                                                 **trust),
    }
    for name in wanted:
        if name not in _KINDS[entry.kind]:
            result.skipped[name] = f"does not apply to {entry.kind} outcomes"
            continue
        if from_panel and (entry.kind != "binary" or name in PATIENT_LEVEL):
            result.skipped[name] = ("not applicable to a trust panel: " + (
                "it carries numerator/denominator counts only, not the patients' values of a "
                f"{entry.kind} outcome" if entry.kind != "binary" else
                "a patient-level model needs the patient table (case mix per patient)"))
            continue
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("default")
                if name == "event_study":
                    result.event_study = event_study(patients, outcome, vcov=vcov, weights=weights, level=level,
                                                     **common, **trust)
                elif name == "randomisation_test":
                    primary = result.effects.get("ancova") or ancova(patients, outcome, vcov=vcov, weights=weights,
                                                                      level=level, **common, **trust)
                    ri = randomisation_test(patients, outcome, "ancova", ri_draws, seed, statistic=ri_statistic,
                                            weights=weights, level=level, **common, **trust)
                    result.effects["randomisation_test"] = randomisation_effect(ri, primary).with_details(
                        step="randomisation_test")
                    result.randomisation = {"observed": ri.observed_statistic, "p_value": ri.p_value,
                                            "mc_se": ri.mc_se, "n_draws": ri.n_draws, "exact": ri.exact,
                                            "statistic": ri.statistic, "estimator": "ancova",
                                            "histogram": _histogram(np.asarray(ri.draws))}
                    result.ri_draws = np.asarray(ri.draws)
                else:
                    effect = steps[name]().with_details(step=name)
                    result.effects[name] = effect
                    if name == "mixed_logistic":
                        result.trust_effects = pd.DataFrame(effect.details.get("trust_effects", []))
        except (ValueError, np.linalg.LinAlgError) as exc:  # DataError is a ValueError
            result.skipped[name] = f"not estimable on these data: {str(exc).splitlines()[0]}"
        result.timings[name] = time.perf_counter() - start
    if entry.kind == "binary":
        from rp2pr_eval.data.panel import trust_panel
        from rp2pr_eval.presentation.disclosure import policy_for_design
        from rp2pr_eval.presentation.panels import protected_funnel_panel, protected_trends

        # What the figures need, disclosure-controlled here so that the saved results are safe to send
        # (the figures are redrawn from them without refitting): arm-year rates, not trust-year counts.
        policy = policy_for_design(design)
        if from_panel:
            from rp2pr_eval.data.panel import panel_by_period

            by_year = patients.loc[patients["outcome"] == outcome].reset_index(drop=True)
            by_period = panel_by_period(by_year, design=design)
        else:
            by_year = trust_panel(patients, outcome, by="audit_year", design=design, validate=False)
            by_period = trust_panel(patients, outcome, by="period", design=design, validate=False)
        result.trends = protected_trends(by_year, policy, level=level)
        result.panel_period = protected_funnel_panel(by_period, policy)
    return result
