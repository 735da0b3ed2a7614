"""Multiplicity adjustment of plain p-values and of joint null draws: Holm, Benjamini–Hochberg, Romano–Wolf.

Holm and BH come from statsmodels ``multipletests``.  Romano–Wolf is written here because it
needs the *joint* null draws of the test statistics (the same resamples for every hypothesis,
e.g. shared bootstrap weights or re-randomisations), which no library takes as input.
The study's front end on ``Effect`` objects is :func:`rp2pr_eval.inference.multiplicity.adjust_pvalues`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from rp2pr_eval._options import AdjustMethod, check_option

__all__ = ["adjust_pvalues", "romano_wolf"]


def romano_wolf(observed, null_draws) -> np.ndarray:
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


def adjust_pvalues(pvalues=None, method: str = "holm", *, null_draws=None, observed=None, alpha: float = 0.05):
    """Adjusted p-values for a family of hypotheses.

    Parameters
    ----------
    pvalues : array-like or pandas Series, shape (m,)
        The unadjusted p-values (``"holm"``, ``"fdr_bh"``); not used by ``"romano_wolf"`` (may be None).
    method : {"holm", "fdr_bh", "romano_wolf"}
        Holm (family-wise error), Benjamini–Hochberg (false discovery rate) or Romano–Wolf
        step-down (family-wise error using the dependence in ``null_draws``).
    null_draws, observed
        Romano–Wolf: joint null draws of the statistics, shape (B, m), and the observed statistics (m,).
    alpha
        Passed to statsmodels ``multipletests``; the adjusted p-values do not depend on it.

    Returns
    -------
    ndarray, or a Series with the index of ``pvalues`` (or of ``observed``) when that is a Series.

    References
    ----------
    Holm (1979) Scand J Stat 6:65; Benjamini & Hochberg (1995) JRSS B 57:289; Romano & Wolf (2005).
    R: ``p.adjust(p, "holm")``, ``p.adjust(p, "BH")``; Stata: ``rwolf``.
    """
    check_option("method", method, AdjustMethod)
    if method == "romano_wolf":
        if null_draws is None or observed is None:
            raise ValueError("method='romano_wolf' needs observed (m,) and null_draws (B × m joint null draws)")
        out = romano_wolf(observed, null_draws)
        return pd.Series(out, index=observed.index) if isinstance(observed, pd.Series) else out
    if pvalues is None:
        raise ValueError(f"method={method!r} needs pvalues")
    p = np.asarray(pvalues, dtype=float).reshape(-1)
    if np.isnan(p).any():
        raise ValueError(f"cannot adjust: {int(np.isnan(p).sum())} missing p-value(s) at positions "
                         f"{np.flatnonzero(np.isnan(p))[:5].tolist()}")
    if ((p < 0) | (p > 1)).any():
        raise ValueError("p-values must lie in [0, 1]")
    from statsmodels.stats.multitest import multipletests

    out = multipletests(p, alpha=alpha, method=method)[1]
    return pd.Series(out, index=pvalues.index) if isinstance(pvalues, pd.Series) else out
