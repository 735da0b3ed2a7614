"""Multiplicity control across outcomes: the study's front end on ``Effect`` objects.

The numeric core (Holm and BH through statsmodels, Romano–Wolf step-down on joint null draws)
is :mod:`rp2pr_eval.models.multiplicity`; this module adjusts a family of Effects — whose joint
null draws :func:`rp2pr_eval.randomisation_test` and :func:`rp2pr_eval.wild_cluster_bootstrap`
can share — and records the adjustment in each Effect's details.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from rp2pr_eval._options import AdjustMethod, check_option
from rp2pr_eval.models.multiplicity import adjust_pvalues as adjust_plain_pvalues
from rp2pr_eval.models.multiplicity import romano_wolf
from rp2pr_eval.results.effect import Effect

__all__ = ["adjust_pvalues", "romano_wolf"]


def adjust_pvalues(
    effects: Sequence[Effect],
    method: str = "holm",
    *,
    null_draws: np.ndarray | None = None,
    observed: np.ndarray | None = None,
    alpha: float = 0.05,
) -> list[Effect]:
    """Adjust the p-values of a family of Effects; returns new Effects with ``details["p_adjusted"]``.

    Parameters
    ----------
    effects
        The family (e.g. one primary estimate per primary indicator).
    method
        ``"holm"`` (family-wise error), ``"fdr_bh"`` (false discovery rate) or
        ``"romano_wolf"`` (family-wise error using the joint dependence; needs
        ``null_draws``).
    null_draws, observed
        Romano–Wolf only: joint null draws of the statistics, shape (B, m), in
        the order of ``effects`` — e.g. ``np.column_stack([r.draws for r in
        randomisation_results])`` from draws that share assignments — and the
        observed statistics (default: the Effects' estimates).
    alpha
        Recorded with the result (``details["adjust_alpha"]``); adjusted p-values do not depend on it.

    References
    ----------
    Holm (1979) Scand J Stat 6:65; Benjamini & Hochberg (1995) JRSS B 57:289; Romano & Wolf (2005).
    R: ``p.adjust(p, "holm")``, ``p.adjust(p, "BH")``; Stata: ``rwolf``.
    """
    check_option("method", method, AdjustMethod)
    effects = list(effects)
    if not effects:
        return []
    bad = [type(e).__name__ for e in effects if not isinstance(e, Effect)]
    if bad:
        raise TypeError(f"adjust_pvalues needs Effect objects, got {bad[:3]}")
    p = np.array([e.p_value for e in effects], dtype=float)
    if method in ("holm", "fdr_bh"):
        if np.isnan(p).any():
            missing = [f"{e.outcome}/{e.estimator}" for e in effects if np.isnan(e.p_value)]
            raise ValueError(f"cannot adjust: missing p-values for {missing}")
        adjusted = adjust_plain_pvalues(p, method, alpha=alpha)
    else:
        if null_draws is None:
            raise ValueError("method='romano_wolf' needs null_draws (B × m joint null draws of the statistics)")
        obs = np.array([e.estimate for e in effects]) if observed is None else np.asarray(observed, dtype=float)
        adjusted = adjust_plain_pvalues(None, method, observed=obs, null_draws=null_draws)
    family = [f"{e.outcome}/{e.estimator}" for e in effects]
    return [replace(e, details={**e.details, "p_adjusted": float(a), "adjust_method": method,
                                "adjust_family": family, "adjust_alpha": alpha})
            for e, a in zip(effects, adjusted)]
