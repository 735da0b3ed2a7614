"""The referee's checks of one outcome, as the outcome notebook and the batch run call them.

:func:`add_referee_checks` takes an :class:`~rp2pr_eval.results.outcome.OutcomeAnalysis` (from
:func:`~rp2pr_eval.pipeline.analysis.analyse_outcome`) and the patients, runs every requested check
that applies to the outcome, and returns a copy of the analysis holding them in ``sensitivity``
(:class:`~rp2pr_eval.results.sensitivity.SensitivityChecks`), which ``save()`` writes to
``<outcome>.extras.json`` so the figures and the summary table are redrawn without refitting:

* ``parallel_trends`` — :func:`rp2pr_eval.parallel_trends_sensitivity` of the saved event study under
  relative magnitudes (C-LF) and smoothness (FLCI), with the breakdown values (binary and continuous
  outcomes; needs the event study);
* ``effect_modification`` — :func:`rp2pr_eval.effect_modification` (binary outcomes), with the
  randomisation test's draws set by ``effect_modification_draws``; the per-trust points the figure
  draws are kept under the design's disclosure control (a trust whose pre- or post-period cell is
  withheld from the funnel panel is withheld here too);
* ``leave_one_pair_out`` — :func:`rp2pr_eval.leave_one_pair_out` of the primary estimator (model
  estimates, one per pair);
* ``placebo_in_time`` — :func:`rp2pr_eval.placebo_in_time` (needs two or more pre years);
* ``placebo_outcome`` — :func:`rp2pr_eval.placebo_outcome` when the outcome is one the run names as
  unaffected by ILCOP (``placebo_outcomes``).

A check that does not apply, or cannot be estimated on these data, is recorded in
``sensitivity.skipped`` with the reason, as ``analyse_outcome`` does for estimators.  Settings come
from the ``sensitivity`` section of ``run.yaml`` (:class:`~rp2pr_eval.pipeline.config.SensitivitySettings`;
:attr:`~rp2pr_eval.pipeline.notebook.NotebookSetup.sensitivity_options`).  Methods:
``docs/methods/sensitivity.md``.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd

from rp2pr_eval.data.panel import is_trust_panel
from rp2pr_eval.errors import ParameterError
from rp2pr_eval.estimators.did import ancova, did_aggregate, did_twfe
from rp2pr_eval.inference.effect_modification import effect_modification
from rp2pr_eval.inference.influence import leave_one_pair_out, placebo_in_time, placebo_outcome
from rp2pr_eval.inference.sensitivity import parallel_trends_sensitivity
from rp2pr_eval.results.outcome import OutcomeAnalysis
from rp2pr_eval.results.sensitivity import RESTRICTIONS, SensitivityChecks
from rp2pr_eval.study.design import StudyDesign, resolve_design
from rp2pr_eval.study.outcomes import OUTCOMES, resolve_outcome

__all__ = ["INFLUENCE_ESTIMATORS", "REFEREE_CHECKS", "add_referee_checks"]

#: Checks a run can request (``sensitivity.checks`` in ``run.yaml``); ``placebo_outcome`` runs for the
#: outcomes named in ``placebo_outcomes``.
REFEREE_CHECKS: tuple[str, ...] = ("parallel_trends", "effect_modification", "leave_one_pair_out", "placebo_in_time",
                                   "placebo_outcome")
#: Estimators the leave-one-pair-out, placebo-in-time and placebo-outcome checks can refit.
INFLUENCE_ESTIMATORS = {"ancova": ancova, "did_aggregate": did_aggregate, "did_twfe": did_twfe}
_KINDS = {"parallel_trends": ("binary", "continuous"), "effect_modification": ("binary",),
          "leave_one_pair_out": ("binary", "continuous"), "placebo_in_time": ("binary", "continuous"),
          "placebo_outcome": ("binary", "continuous")}


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ParameterError(f"{name} must be an integer ≥ {low}, got {value!r}")
    return int(value)


def _bounds(name: str, value: Sequence[float] | None) -> list[float] | None:
    if value is None:
        return None
    values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else None
    if not values or not all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and np.isfinite(v)
                             and v >= 0 for v in values):
        raise ParameterError(f"{name} must be null or a non-empty list of non-negative numbers, got {value!r}")
    return [float(v) for v in values]


def protected_baseline_points(points: pd.DataFrame, withheld_trusts: set) -> pd.DataFrame:
    """Per-trust effect-modification points with the rates of ``withheld_trusts`` blanked (``withheld`` True).

    The counts (``n_pre``, ``n_post``) are dropped: the figure needs rates only, and the trust ×
    period counts are published (where not small) in the funnel panel.
    """
    out = points.drop(columns=["n_pre", "n_post"], errors="ignore").copy()
    out["withheld"] = out["trust_id"].astype(str).isin({str(t) for t in withheld_trusts}).to_numpy(dtype=bool)
    for col in ("baseline", "post", "change"):
        out[col] = out[col].astype(float).where(~out["withheld"], np.nan)
    out["low_in_pair"] = out["low_in_pair"].astype(bool)
    return out.reset_index(drop=True)


def _withheld_trusts(analysis: OutcomeAnalysis, patients: pd.DataFrame, outcome: str, design: StudyDesign) -> set:
    panel = analysis.panel_period
    if panel is None:
        from rp2pr_eval.data.panel import trust_panel
        from rp2pr_eval.presentation.disclosure import policy_for_design
        from rp2pr_eval.presentation.panels import protected_funnel_panel

        by_period = trust_panel(patients, outcome, by="period", design=design, validate=False)
        panel = protected_funnel_panel(by_period, policy_for_design(design))
    if "withheld" not in panel.columns:
        return set()
    mask = panel["withheld"].fillna(True).astype(bool)
    return set(panel.loc[mask, "trust_id"].astype(str))


def add_referee_checks(
    analysis: OutcomeAnalysis,
    patients: pd.DataFrame,
    *,
    design: StudyDesign | None = None,
    checks: Sequence[str] | None = None,
    m_relative_magnitudes: Sequence[float] | None = None,
    m_smoothness: Sequence[float] | None = None,
    n_sims: int = 1000,
    grid_points: int = 1000,
    effect_modification_draws: int = 2000,
    estimator: str = "ancova",
    placebo_outcomes: Sequence[str] = (),
    cluster: str = "pair_id",
    level: float = 0.95,
    seed: int = 1,
) -> OutcomeAnalysis:
    """Run the referee's checks of ``analysis.outcome`` and return the analysis with them in ``sensitivity``.

    Parameters
    ----------
    analysis
        The outcome's :class:`~rp2pr_eval.results.outcome.OutcomeAnalysis` (its event study feeds the
        parallel-trends sensitivity; its funnel panel gives the disclosure control of the
        effect-modification points).  Not modified.
    patients
        The patient table the analysis was fitted on.
    design
        Study design (``None``: the default ILCOP design).
    checks
        Which of :data:`REFEREE_CHECKS` to run (``None``: all; ``placebo_outcome`` only for an
        outcome in ``placebo_outcomes``).
    m_relative_magnitudes, m_smoothness
        Bounds M̄ and M of the sensitivity sets (``None``: the defaults of
        :func:`rp2pr_eval.parallel_trends_sensitivity`).
    n_sims, grid_points
        Simulation draws of the C-LF critical value and the test-inversion grid.
    effect_modification_draws
        Re-randomisations of the effect-modification randomisation test (≥ 100).
    estimator
        Primary estimator refitted by leave one pair out and the placebos: one of
        :data:`INFLUENCE_ESTIMATORS`.
    placebo_outcomes
        Outcomes named as unaffected by ILCOP: for these the placebo-outcome check runs.
    cluster, level, seed
        Clustering of the refits, confidence level, and the seed of the randomisation test and of
        the C-LF draws.

    Returns
    -------
    OutcomeAnalysis
        A copy with ``sensitivity`` set (:class:`~rp2pr_eval.results.sensitivity.SensitivityChecks`);
        ``sensitivity.timings`` holds the seconds of each check.

    Notes
    -----
    R: ``HonestDiD::createSensitivityResults_relativeMagnitudes`` / ``createSensitivityResults``,
    ``lm`` with ``clubSandwich::coef_test`` and ``ri2::conduct_ri``, a loop of
    ``update(fit, subset = pair_id != p)``; see ``docs/methods/sensitivity.md``.
    """
    if not isinstance(analysis, OutcomeAnalysis):
        raise TypeError(f"analysis must be an OutcomeAnalysis (rp.analyse_outcome(...)), got {type(analysis).__name__}")
    design = resolve_design(design)
    wanted = list(REFEREE_CHECKS if checks is None else checks)
    unknown = [c for c in wanted if c not in REFEREE_CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; expected names from {', '.join(REFEREE_CHECKS)}")
    if estimator not in INFLUENCE_ESTIMATORS:
        raise ValueError(f"estimator={estimator!r} is not valid; expected one of {', '.join(INFLUENCE_ESTIMATORS)}")
    if isinstance(placebo_outcomes, str):
        raise ParameterError(f"placebo_outcomes must be a list of outcome names, got the string {placebo_outcomes!r}")
    n_sims = _check_int("n_sims", n_sims, 100)
    grid_points = _check_int("grid_points", grid_points, 10)
    effect_modification_draws = _check_int("effect_modification_draws", effect_modification_draws, 100)
    bounds = {"relative_magnitudes": _bounds("m_relative_magnitudes", m_relative_magnitudes),
              "smoothness": _bounds("m_smoothness", m_smoothness)}
    outcome = analysis.outcome
    from_panel = is_trust_panel(patients)          # rp2pr-eval run --panel: the trust-level checks only
    entry = OUTCOMES[outcome] if from_panel and outcome in OUTCOMES else resolve_outcome(patients, outcome)
    fit = INFLUENCE_ESTIMATORS[estimator]
    settings = {"checks": wanted, "m_relative_magnitudes": bounds["relative_magnitudes"],
                "m_smoothness": bounds["smoothness"], "n_sims": n_sims, "grid_points": grid_points,
                "effect_modification_draws": effect_modification_draws, "estimator": estimator,
                "placebo_outcomes": list(placebo_outcomes), "cluster": cluster, "level": level, "seed": seed}
    parts: dict[str, Any] = {"parallel_trends": {}, "effect_modification": (), "baseline_points": None,
                             "leave_one_pair_out": None, "placebo_in_time": None, "placebo_outcome": None}
    skipped: dict[str, str] = {}
    timings: dict[str, float] = {}

    def parallel_trends() -> None:
        es = analysis.event_study
        if es is None:
            reason = analysis.skipped.get("event_study", "not requested")
            raise _Skip(f"needs the event study, which was not run ({reason})")
        for restriction in RESTRICTIONS:
            parts["parallel_trends"][restriction] = parallel_trends_sensitivity(
                es, restriction, m=bounds[restriction], level=level, n_sims=n_sims, grid_points=grid_points,
                seed=seed)

    def modification() -> None:
        interaction, within = effect_modification(patients, outcome, design=design, n_draws=effect_modification_draws,
                                                  seed=seed, level=level)
        points = pd.DataFrame(interaction.details["points"])
        parts["baseline_points"] = protected_baseline_points(
            points, _withheld_trusts(analysis, patients, outcome, design))
        details = {k: v for k, v in interaction.details.items() if k != "points"}
        parts["effect_modification"] = (dataclasses.replace(interaction, details=details), within)

    def lopo() -> None:
        parts["leave_one_pair_out"] = leave_one_pair_out(patients, outcome, fit, design=design, cluster=cluster)

    def placebo_time() -> None:
        try:
            parts["placebo_in_time"] = placebo_in_time(patients, outcome, fit, design=design, cluster=cluster)
        except ParameterError as exc:          # too few pre years: the design allows no placebo in time
            raise _Skip(f"does not apply to this design: {str(exc).splitlines()[0]}") from None

    def placebo_unaffected() -> None:
        if outcome not in placebo_outcomes:
            raise _Skip("not requested (the run names this outcome in no placebo_outcomes)")
        parts["placebo_outcome"] = placebo_outcome(patients, outcome, fit, design=design, cluster=cluster)

    steps = {"parallel_trends": parallel_trends, "effect_modification": modification, "leave_one_pair_out": lopo,
             "placebo_in_time": placebo_time, "placebo_outcome": placebo_unaffected}
    for name in REFEREE_CHECKS:
        if name not in wanted:
            skipped[name] = "not requested"
            continue
        if entry.kind not in _KINDS[name]:
            skipped[name] = f"does not apply to {entry.kind} outcomes"
            continue
        if from_panel and entry.kind != "binary":
            skipped[name] = ("not applicable to a trust panel: it carries numerator/denominator counts only, not "
                             f"the patients' values of a {entry.kind} outcome")
            continue
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("default")
                steps[name]()
        except _Skip as exc:
            skipped[name] = str(exc)
        except (ValueError, np.linalg.LinAlgError) as exc:  # DataError is a ValueError
            skipped[name] = f"not estimable on these data: {str(exc).splitlines()[0]}"
        timings[name] = time.perf_counter() - start
    primary = analysis.effects.get(estimator)          # the scale the refits share with the primary estimate
    scale = primary.scale if primary is not None else ("risk_difference" if entry.kind == "binary" else "log_ratio")
    checks_result = SensitivityChecks(outcome=outcome, scale=scale, skipped=skipped, settings=settings,
                                      timings=timings, **parts)
    return dataclasses.replace(analysis, sensitivity=checks_result)


class _Skip(Exception):
    """A check that does not apply here; the message is the reason recorded in ``skipped``."""
