"""Multiplicity control across outcomes: Holm, Benjamini–Hochberg and Romano–Wolf step-down.

Holm and BH come from statsmodels ``multipletests``.  Romano–Wolf is written
here because it needs the *joint* null draws of the test statistics across
outcomes (the same re-randomisations or bootstrap weights for every outcome),
which :func:`rp2pr_eval.randomisation_test` and
:func:`rp2pr_eval.wild_cluster_bootstrap` can share; no library offers it on
such draws.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from rp2pr_eval._options import AdjustMethod, check_option
from rp2pr_eval.results.effect import Effect


def romano_wolf(observed: np.ndarray, null_draws: np.ndarray) -> np.ndarray:
    r"""Romano–Wolf step-down adjusted p-values from joint null draws.

    Parameters
    ----------
    observed : array, shape (m,)
        Observed statistics T_j (signed; the test is two-sided on |T_j|).
    null_draws : array, shape (B, m)
        Joint draws of the statistics under the null (same resample b for every j).

    Notes
    -----
    Order hypotheses by |T| decreasing: (1), …, (m).  For step k,
    :math:`p_{(k)} = (1 + \#\{b: \max_{j \ge k} |T^*_{b,(j)}| \ge |T_{(k)}|\}) / (B + 1)`,
    then enforce monotonicity :math:`\tilde p_{(k)} = \max(\tilde p_{(k-1)}, p_{(k)})`.
    Controls the family-wise error rate asymptotically (Romano & Wolf 2005,
    Econometrica 73:1237; Clarke, Romano & Wolf 2020, Stata J 20:812 — Stata ``rwolf``).
    """
    t = np.abs(np.asarray(observed, dtype=float))
    draws = np.abs(np.asarray(null_draws, dtype=float))
    if draws.ndim != 2 or draws.shape[1] != t.shape[0]:
        raise ValueError(f"null_draws must have shape (B, {t.shape[0]}), got {draws.shape}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(draws))):
        raise ValueError("observed statistics and null draws must be finite")
    order = np.argsort(-t, kind="stable")
    B = draws.shape[0]
    # running max over the remaining hypotheses: max over columns order[k:], for every b
    tail_max = np.maximum.accumulate(draws[:, order[::-1]], axis=1)[:, ::-1]
    p_step = (1.0 + (tail_max >= t[order][None, :]).sum(axis=0)) / (B + 1.0)
    p_sorted = np.maximum.accumulate(p_step)
    out = np.empty_like(p_sorted)
    out[order] = np.minimum(p_sorted, 1.0)
    return out


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
        from statsmodels.stats.multitest import multipletests

        adjusted = multipletests(p, alpha=alpha, method=method)[1]
    else:
        if null_draws is None:
            raise ValueError("method='romano_wolf' needs null_draws (B × m joint null draws of the statistics)")
        obs = np.array([e.estimate for e in effects]) if observed is None else np.asarray(observed, dtype=float)
        adjusted = romano_wolf(obs, null_draws)
    family = [f"{e.outcome}/{e.estimator}" for e in effects]
    return [replace(e, details={**e.details, "p_adjusted": float(a), "adjust_method": method,
                                "adjust_family": family, "adjust_alpha": alpha})
            for e, a in zip(effects, adjusted)]
