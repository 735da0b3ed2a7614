"""Figures for the referee's checks: parallel-trends sensitivity, effect modification by baseline, leave one pair out.

Each draws a *saved* result and never fits: :func:`plot_sensitivity` a
:class:`~rp2pr_eval.inference.sensitivity.ParallelTrendsSensitivity` (or its ``to_dict()``),
:func:`plot_effect_modification` the interaction Effect of
:func:`~rp2pr_eval.inference.effect_modification.effect_modification` (or its ``to_dict()``; the
per-trust points and coefficients travel in its details), :func:`plot_leave_one_pair_out` the frame
of :func:`~rp2pr_eval.inference.influence.leave_one_pair_out` (or its records).  Risk differences
are drawn in percentage points; labels come from the outcome registry.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rp2pr_eval.errors import DataError
from rp2pr_eval.presentation.figures._common import format_number, new_axes, require_columns
from rp2pr_eval.presentation.figures.style import (
    ARM_COLOURS,
    ARM_LABELS,
    ARM_MARKERS,
    NEUTRAL_COLOUR,
    SERIES_COLOURS,
    WINDOW_COLOUR,
)
from rp2pr_eval.results.effect import Effect
from rp2pr_eval.study.outcomes import OUTCOMES

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_effect_modification", "plot_leave_one_pair_out", "plot_sensitivity"]


def _label(outcome: str | None, label: str | None) -> str:
    if label is not None:
        return str(label)
    entry = OUTCOMES.get(outcome) if outcome is not None else None
    return entry.label if entry is not None else str(outcome or "")


def _multiplier(scale: str) -> tuple[float, str]:
    return (100.0, "percentage points") if scale == "risk_difference" else (1.0, scale.replace("_", " "))


# --------------------------------------------------------------------------- sensitivity
def plot_sensitivity(result, *, ax: Axes | None = None, label: str | None = None, show_breakdown: bool = True) -> Axes:
    """Robust confidence sets against the bound (M̄ or M), the event study's own interval at the left.

    Parameters
    ----------
    result : ParallelTrendsSensitivity or dict
        A saved :func:`rp2pr_eval.parallel_trends_sensitivity` result (``to_dict()`` accepted).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure when ``None``.
    label : str, optional
        Title (default: the registry label of the outcome and the target).
    show_breakdown : bool
        Mark the breakdown value with a dotted line.

    Returns
    -------
    matplotlib.axes.Axes
    """
    from rp2pr_eval.inference.sensitivity import ParallelTrendsSensitivity

    if isinstance(result, Mapping):
        result = ParallelTrendsSensitivity.from_dict(result)
    if not isinstance(result, ParallelTrendsSensitivity):
        raise ValueError(f"plot_sensitivity: result must be a ParallelTrendsSensitivity or its dict, "
                         f"got {type(result).__name__}")
    mult, unit = _multiplier(result.scale)
    m = np.array(result.m, dtype=float)
    bound_mult = mult if result.restriction == "smoothness" else 1.0   # M is on the estimates' scale
    x = m * bound_mult
    step = float(np.min(np.diff(x))) if len(x) > 1 and np.all(np.diff(x) > 0) else (x[0] if x[0] > 0 else 1.0)
    x_orig = x.min() - step
    lo, hi = mult * np.array(result.ci_low, dtype=float), mult * np.array(result.ci_high, dtype=float)
    ax = new_axes(ax)
    ax.axhline(0.0, color=NEUTRAL_COLOUR, lw=0.6, ls="--", zorder=1, gid="zero-line")
    ax.vlines(x, lo, hi, color=SERIES_COLOURS[0], lw=1.6, zorder=3, gid="robust-sets",
              label=f"Robust {result.level:.0%} set ({result.method})")
    ax.plot(x, lo, ls="", marker="_", color=SERIES_COLOURS[0], ms=6, zorder=3)
    ax.plot(x, hi, ls="", marker="_", color=SERIES_COLOURS[0], ms=6, zorder=3)
    ax.vlines([x_orig], [mult * result.original_ci_low], [mult * result.original_ci_high], color=SERIES_COLOURS[1],
              lw=1.6, zorder=3, gid="original-ci", label=f"Original {result.level:.0%} CI")
    ax.plot([x_orig], [mult * result.estimate], ls="", marker="o", color=SERIES_COLOURS[1], ms=3.5, zorder=4)
    if show_breakdown and math.isfinite(result.breakdown) and result.breakdown > 0:
        xb = result.breakdown * bound_mult
        if xb <= x.max() + step:
            ax.axvline(xb, color=SERIES_COLOURS[2], lw=0.8, ls=":", gid="breakdown",
                       label=f"Breakdown {result.bound_name} = {result.breakdown:.3g}")
    ticks = list(x)
    ax.set_xticks([x_orig] + ticks, labels=["Orig."] + [format_number(v, 2 if bound_mult == 1 else 2) for v in ticks])
    bound = {"relative_magnitudes": "M̄ (relative-magnitude bound)",
             "smoothness": "M (change in slope, pp per year)" if mult == 100 else "M (change in slope per year)"}
    ax.set_xlabel(bound[result.restriction])
    ax.set_ylabel(f"Effect ({unit})")
    ax.set_title(f"{_label(result.outcome, label)}: {result.target}")
    ax.legend(loc="upper left", fontsize="small")
    return ax


# --------------------------------------------------------------------------- effect modification
def plot_effect_modification(effect, *, ax: Axes | None = None, label: str | None = None) -> Axes:
    """Post − pre change against baseline rate by arm, with the interaction ANCOVA's fitted lines.

    Points are trusts (filled: the lower-baseline trust of its pair; hollow: the higher); lines
    are the fitted change ``β0 + γx + T(τ + φx) − baseline`` of the saved model over each arm's
    baseline range.  Both arms' lines slope down — regression to the mean — so only a difference
    between the arms' slopes is effect modification.

    Parameters
    ----------
    effect : Effect or dict
        The ``effect_modification_interaction`` Effect (``details["points"]`` and the coefficients).
    """
    if isinstance(effect, Mapping):
        effect = Effect.from_dict(effect)
    if not isinstance(effect, Effect) or "points" not in effect.details:
        raise ValueError("plot_effect_modification: pass the first Effect of rp.effect_modification (or its dict)")
    pts = pd.DataFrame(effect.details["points"])
    require_columns(pts, ["arm", "baseline", "change", "low_in_pair"], name="details['points']",
                    func="plot_effect_modification")
    coef = {k: v[0] for k, v in effect.details["coefficients"].items()}
    mean, unit = effect.details["baseline_mean"], effect.details["baseline_unit"]
    ax = new_axes(ax)
    ax.axhline(0.0, color=NEUTRAL_COLOUR, lw=0.6, ls="--", zorder=1)
    for arm in ("control", "intervention"):
        sub = pts[pts["arm"] == arm]
        if sub.empty:
            continue
        colour, marker = ARM_COLOURS[arm], ARM_MARKERS[arm]
        low = sub["low_in_pair"].astype(bool)
        ax.scatter(100 * sub.loc[low, "baseline"], 100 * sub.loc[low, "change"], s=14, marker=marker, color=colour,
                   zorder=3, label=f"{ARM_LABELS[arm]}: lower baseline in pair", gid=f"points-{arm}-low")
        ax.scatter(100 * sub.loc[~low, "baseline"], 100 * sub.loc[~low, "change"], s=14, marker=marker,
                   facecolors="white", edgecolors=colour, zorder=3, label=f"{ARM_LABELS[arm]}: higher baseline",
                   gid=f"points-{arm}-high")
        b = np.linspace(sub["baseline"].min(), sub["baseline"].max(), 50)
        xx = (b - mean) / unit
        T = 1.0 if arm == "intervention" else 0.0
        fitted = coef["intercept"] + coef["baseline_10pp"] * xx + T * (coef["treated"] + coef["treated:baseline_10pp"] * xx)
        ax.plot(100 * b, 100 * (fitted - b), color=colour, lw=1.2, zorder=2, gid=f"fit-{arm}")
    ax.set_xlabel("Baseline (pre-period) rate (%)")
    ax.set_ylabel("Change, post − pre (pp)")
    ax.set_title(f"{_label(effect.outcome, label)}\ninteraction {format_number(100 * effect.estimate, 1)} pp per 10 pp "
                 f"baseline\nCR2 p = {effect.p_value:.2f}; randomisation p = {effect.details['ri_p_value']:.2f}")
    ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, handletextpad=0.2,
              columnspacing=0.8)
    return ax


# --------------------------------------------------------------------------- leave one pair out
def plot_leave_one_pair_out(frame, *, ax: Axes | None = None, label: str | None = None, n_named: int = 5,
                            scale: str = "risk_difference") -> Axes:
    """Each pair's leave-one-out estimate with its CI, against the full-data estimate and CI (shaded).

    Rows are pairs sorted by their estimate; the ``n_named`` largest shifts are labelled in bold.

    Parameters
    ----------
    frame : pandas.DataFrame or list of dict
        :func:`rp2pr_eval.leave_one_pair_out` output (or ``frame.to_dict(orient="records")``).
    scale : str
        Scale of the estimates (``"risk_difference"``: drawn in percentage points; any other
        scale, e.g. ``"log_ratio"``, as it is).
    """
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(list(frame))
    require_columns(frame, ["pair_id", "arm", "estimate", "ci_low", "ci_high", "shift", "full_estimate",
                            "full_ci_low", "full_ci_high", "outcome"], name="frame", func="plot_leave_one_pair_out")
    if isinstance(n_named, bool) or not isinstance(n_named, int) or n_named < 0:
        raise ValueError(f"n_named must be a non-negative integer, got {n_named!r}")
    if frame["outcome"].nunique() != 1:
        raise DataError("plot_leave_one_pair_out: the frame holds several outcomes; pass one")
    mult, unit = _multiplier(scale)
    digits = 2 if mult == 100 else 3
    f = frame.sort_values("estimate", kind="mergesort").reset_index(drop=True)
    y = np.arange(len(f))
    ax = new_axes(ax)
    full = f.iloc[0]
    ax.axvspan(mult * full["full_ci_low"], mult * full["full_ci_high"], color=WINDOW_COLOUR, lw=0, zorder=0,
               label="Full-data 95% CI")
    ax.axvline(mult * full["full_estimate"], color=NEUTRAL_COLOUR, lw=0.8, zorder=1, label="Full-data estimate")
    ax.axvline(0.0, color=NEUTRAL_COLOUR, lw=0.5, ls="--", zorder=1)
    for arm in ("intervention", "control"):
        sel = (f["arm"] == arm).to_numpy()
        if not sel.any():
            continue
        ax.hlines(y[sel], mult * f.loc[sel, "ci_low"], mult * f.loc[sel, "ci_high"], color=ARM_COLOURS[arm], lw=0.7,
                  zorder=2)
        ax.plot(mult * f.loc[sel, "estimate"], y[sel], ls="", marker=ARM_MARKERS[arm], ms=3, color=ARM_COLOURS[arm],
                zorder=3, label=f"Left out: {ARM_LABELS[arm].lower()} pair")
    named = set(f["shift"].abs().sort_values(ascending=False).index[:n_named])
    ax.set_yticks(y, labels=f["pair_id"].astype(str))
    for i, tick in enumerate(ax.get_yticklabels()):
        tick.set_fontsize(5.5)
        if i in named:
            tick.set_fontweight("bold")
    ax.set_ylim(-0.8, len(f) - 0.2)
    ax.set_xlabel(f"Estimate without the pair ({unit})")
    ax.set_ylabel("Pair left out")
    est = f["estimate"]
    ax.set_title(f"{_label(full['outcome'], label)}: leave one pair out\nrange "
                 f"{format_number(mult * est.min(), digits)} to {format_number(mult * est.max(), digits)}"
                 f"{' pp' if mult == 100 else ''} (full {format_number(mult * full['full_estimate'], digits)})")
    ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=2, handletextpad=0.3,
              columnspacing=0.8)
    return ax
