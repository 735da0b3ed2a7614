"""Figures for the referee's checks: parallel-trends sensitivity, effect modification by baseline, leave one pair out.

Each draws a *saved* result and never fits: :func:`plot_sensitivity` a
:class:`~rp2pr_eval.inference.sensitivity.ParallelTrendsSensitivity` (or its ``to_dict()``),
:func:`plot_effect_modification` the interaction Effect of
:func:`~rp2pr_eval.inference.effect_modification.effect_modification` (or its ``to_dict()``; the
per-trust points and coefficients travel in its details), :func:`plot_leave_one_pair_out` the frame
of :func:`~rp2pr_eval.inference.influence.leave_one_pair_out` (or its records).

Scales are shown as everywhere else in the package: risk differences in percentage points, log
ratios (waiting times), log odds ratios and log hazard ratios exponentiated to a ratio, an odds
ratio or a hazard ratio (HR) on a log axis with ratio ticks and a reference line at 1.  Labels come
from the outcome registry, estimator names in words (:data:`rp2pr_eval.study.outcomes.ESTIMATOR_LABELS`).
Every text is at least :data:`~rp2pr_eval.presentation.figures.style.MIN_FONT_PT` at the figure's
print width inside :func:`~rp2pr_eval.presentation.figures.style.style` (legends and the pair
labels at :data:`~rp2pr_eval.presentation.figures.style.SMALL_FONT_PT`).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rp2pr_eval.errors import DataError
from rp2pr_eval.presentation.figures._common import format_number, log_ticks, new_axes, require_columns
from rp2pr_eval.presentation.figures.style import (
    ARM_COLOURS,
    ARM_LABELS,
    ARM_MARKERS,
    NEUTRAL_COLOUR,
    SERIES_COLOURS,
    SMALL_FONT_PT,
    WINDOW_COLOUR,
)
from rp2pr_eval.results.effect import Effect
from rp2pr_eval.study.outcomes import ESTIMATOR_LABELS, OUTCOMES

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["EffectScale", "effect_scale", "lopo_height", "plot_effect_modification", "plot_leave_one_pair_out",
           "plot_sensitivity"]


def _label(outcome: str | None, label: str | None) -> str:
    if label is not None:
        return str(label)
    entry = OUTCOMES.get(outcome) if outcome is not None else None
    return entry.label if entry is not None else str(outcome or "")


@dataclass(frozen=True)
class EffectScale:
    """How estimates on one scale of :class:`~rp2pr_eval.results.effect.Effect` are shown.

    ``show`` maps an estimate (or a CI limit) to what is drawn; ``null`` is the no-effect value
    drawn as the reference line; ``log`` draws a log axis with ratio ticks; ``unit`` is the scale
    in words (``"percentage points"``, ``"ratio"``, ``"odds ratio"``, ``"hazard ratio"``);
    ``axis`` the axis label; ``short`` the unit after a number in a title (``" pp"``) and
    ``prefix`` before it (``"HR "``).
    """

    scale: str
    show: Callable[[np.ndarray], np.ndarray]
    null: float
    log: bool
    unit: str
    axis: str
    short: str
    prefix: str
    decimals: int

    def text(self, value: float, *, signed: bool = False) -> str:
        """``value`` (on the estimates' scale) as a title shows it, e.g. ``"+1.2 pp"``, ``"1.03"``, ``"HR 0.95"``."""
        shown = float(self.show(np.asarray(value, dtype=float)))
        number = format_number(shown, self.decimals)
        if signed and not self.log and math.isfinite(shown) and shown > 0:
            number = "+" + number
        return f"{self.prefix}{number}{self.short}"


def effect_scale(scale: str) -> EffectScale:
    """The :class:`EffectScale` of ``scale`` (``risk_difference``, ``log_ratio``, ``log_odds_ratio``,
    ``log_hazard_ratio``; any other scale, e.g. ``days``, is drawn as it is)."""
    if scale == "risk_difference":
        return EffectScale(scale, lambda v: 100.0 * np.asarray(v, dtype=float), 0.0, False, "percentage points",
                           "Risk difference (percentage points)", " pp", "", 1)
    if scale == "log_ratio":
        return EffectScale(scale, np.exp, 1.0, True, "ratio", "Ratio (intervention / control)", "", "", 2)
    if scale == "log_odds_ratio":
        return EffectScale(scale, np.exp, 1.0, True, "odds ratio", "Odds ratio", "", "OR ", 2)
    if scale == "log_hazard_ratio":
        return EffectScale(scale, np.exp, 1.0, True, "hazard ratio", "Hazard ratio (HR)", "", "HR ", 2)
    words = str(scale).replace("_", " ")
    return EffectScale(str(scale), lambda v: np.asarray(v, dtype=float), 0.0, False, words,
                       f"Difference ({words})", f" {words}", "", 2)


def _ratio_axis(ax: Axes, axis: str, values: np.ndarray, *, max_ticks: int) -> None:
    """Log axis spanning ``values`` (and 1) with ratio ticks."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite) & (finite > 0)]
    lo, hi = (min(finite.min(), 1.0), max(finite.max(), 1.0)) if finite.size else (0.5, 2.0)
    pad = (hi / lo) ** 0.06
    (ax.set_xlim if axis == "x" else ax.set_ylim)(lo / pad, hi * pad)
    log_ticks(ax, axis=axis, max_ticks=max_ticks)


def _bound_ticks(x: np.ndarray) -> list[str]:
    """Tick labels of the bounds with as few decimals as keep neighbouring values apart (at most 4)."""
    for decimals in range(0, 5):
        labels = [format_number(v, decimals) for v in x]
        if len(set(labels)) == len(labels):
            return labels
    return labels


def _legend_below(ax: Axes, *, drop_pt: float, ncol: int, title: str | None = None) -> None:
    """The legend centred under the axes, ``drop_pt`` points below its bottom edge (clear of the tick
    labels and the x label whatever the axes' height; constrained layout makes room for it)."""
    from matplotlib.transforms import offset_copy

    anchor = offset_copy(ax.transAxes, fig=ax.figure, y=-drop_pt, units="points")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=anchor, ncol=ncol,
              fontsize=SMALL_FONT_PT, title=title, title_fontsize=SMALL_FONT_PT, handletextpad=0.4,
              columnspacing=1.0)


# --------------------------------------------------------------------------- sensitivity
def plot_sensitivity(result, *, ax: Axes | None = None, label: str | None = None, show_breakdown: bool = True,
                     legend: bool = True) -> Axes:
    """Robust confidence sets against the bound (M̄ or M), the event study's own interval at the left.

    Risk differences are drawn in percentage points; log ratios (waiting times), log odds ratios
    and log hazard ratios as ratios on a log axis with the reference line at 1.

    Parameters
    ----------
    result : ParallelTrendsSensitivity or dict
        A saved :func:`rp2pr_eval.parallel_trends_sensitivity` result (``to_dict()`` accepted).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure when ``None``.
    label : str, optional
        Outcome label of the title (default: the registry label of the outcome).
    show_breakdown : bool
        Mark the breakdown value with a dotted line.
    legend : bool
        Draw the legend below the axes (``False``: the caller draws one legend for several panels
        from the handles of ``ax``).

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
    shown = effect_scale(result.scale)
    m = np.array(result.m, dtype=float)
    pp = result.scale == "risk_difference"
    bound_mult = 100.0 if (result.restriction == "smoothness" and pp) else 1.0   # M is on the estimates' scale
    x = m * bound_mult
    step = float(np.min(np.diff(x))) if len(x) > 1 and np.all(np.diff(x) > 0) else (x[0] if x[0] > 0 else 1.0)
    x_orig = x.min() - 1.6 * step                     # the event study's own CI, set apart at the left
    lo, hi = shown.show(np.array(result.ci_low, dtype=float)), shown.show(np.array(result.ci_high, dtype=float))
    olo, ohi = shown.show(result.original_ci_low), shown.show(result.original_ci_high)
    ax = new_axes(ax)
    ax.axhline(shown.null, color=NEUTRAL_COLOUR, lw=0.6, ls="--", zorder=1, gid="zero-line")
    ax.vlines(x, lo, hi, color=SERIES_COLOURS[0], lw=1.6, zorder=3, gid="robust-sets",
              label=f"Robust {result.level:.0%} set")
    ax.plot(x, lo, ls="", marker="_", color=SERIES_COLOURS[0], ms=6, zorder=3)
    ax.plot(x, hi, ls="", marker="_", color=SERIES_COLOURS[0], ms=6, zorder=3)
    ax.vlines([x_orig], [olo], [ohi], color=SERIES_COLOURS[1], lw=1.6, zorder=3, gid="original-ci",
              label=f"Event study's {result.level:.0%} CI")
    ax.plot([x_orig], [shown.show(result.estimate)], ls="", marker="o", color=SERIES_COLOURS[1], ms=3.5, zorder=4)
    breakdown = ""
    if math.isfinite(result.breakdown):
        breakdown = f"breakdown {result.bound_name} = {format_number(result.breakdown * bound_mult, 2)}"
    elif result.breakdown == math.inf:
        breakdown = f"no breakdown up to {result.bound_name} = {format_number(x.max(), 2)}"
    if show_breakdown and math.isfinite(result.breakdown) and result.breakdown > 0:
        xb = result.breakdown * bound_mult
        if xb <= x.max() + step:
            ax.axvline(xb, color=SERIES_COLOURS[2], lw=0.8, ls=":", gid="breakdown", label="Breakdown value")
    if shown.log:
        _ratio_axis(ax, "y", np.concatenate([lo, hi, [olo, ohi]]), max_ticks=10)
    labels = _bound_ticks(x)
    if len(x) > 6:                                   # every other bound labelled, so the labels never touch
        labels = [t if i % 2 == 0 else "" for i, t in enumerate(labels)]
    ax.set_xticks([x_orig] + list(x), labels=["Event\nstudy"] + labels)
    if result.restriction == "relative_magnitudes":
        ax.set_xlabel("M̄ (relative-magnitude bound)")
    elif pp:
        ax.set_xlabel("M (change in slope, pp per year)")
    elif shown.log:
        ax.set_xlabel(f"M (change in slope of the log {shown.unit} per year)")
    else:
        ax.set_xlabel("M (change in slope per year)")
    ax.set_ylabel(f"Effect: {shown.axis[0].lower()}{shown.axis[1:]}" if shown.log else f"Effect ({shown.unit})")
    kind = "Relative magnitudes" if result.restriction == "relative_magnitudes" else "Smoothness"
    ax.set_title(f"{_label(result.outcome, label)}: {result.target}\n{kind} ({result.method})"
                 + (f"; {breakdown}" if breakdown else ""))
    if legend:
        _legend_below(ax, drop_pt=40.0, ncol=2)
    return ax


# --------------------------------------------------------------------------- effect modification
def plot_effect_modification(effect, *, ax: Axes | None = None, label: str | None = None) -> Axes:
    """Post − pre change against baseline rate by arm, with the interaction ANCOVA's fitted lines.

    Points are trusts (filled: the lower-baseline trust of its pair; hollow: the higher); lines
    are the fitted change ``β0 + γx + T(τ + φx) − baseline`` of the saved model over each arm's
    baseline range.  Both arms' lines slope down — regression to the mean — so only a difference
    between the arms' slopes is effect modification.  Rates and changes in percentage points.

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
                   zorder=3, label=f"{ARM_LABELS[arm]}, lower", gid=f"points-{arm}-low")
        ax.scatter(100 * sub.loc[~low, "baseline"], 100 * sub.loc[~low, "change"], s=14, marker=marker,
                   facecolors="white", edgecolors=colour, zorder=3, label=f"{ARM_LABELS[arm]}, higher",
                   gid=f"points-{arm}-high")
        b = np.linspace(sub["baseline"].min(), sub["baseline"].max(), 50)
        xx = (b - mean) / unit
        T = 1.0 if arm == "intervention" else 0.0
        fitted = coef["intercept"] + coef["baseline_10pp"] * xx + T * (coef["treated"] + coef["treated:baseline_10pp"] * xx)
        ax.plot(100 * b, 100 * (fitted - b), color=colour, lw=1.2, zorder=2, gid=f"fit-{arm}")
    ax.set_xlabel("Baseline (pre-period) rate (%)")
    ax.set_ylabel("Change, post − pre (percentage points)")
    ax.set_title(f"{_label(effect.outcome, label)}\ninteraction {format_number(100 * effect.estimate, 1)} pp per "
                 f"10 pp of baseline\np = {effect.p_value:.2f} (CR2); randomisation p = "
                 f"{effect.details['ri_p_value']:.2f}")
    _legend_below(ax, drop_pt=26.0, ncol=2, title="Trust (baseline rate within its pair)")
    return ax


# --------------------------------------------------------------------------- leave one pair out
#: Vertical distance between the pairs' rows of the leave-one-pair-out figure (points).
LOPO_ROW_PT = 9.0
_LOPO_MARGIN_PT = 130.0          # title (3 lines), x label, legend (2 rows)


def lopo_height(n_pairs: int) -> float:
    """Height (inches) of a leave-one-pair-out figure with ``n_pairs`` rows (:data:`LOPO_ROW_PT` apart)."""
    return (n_pairs * LOPO_ROW_PT + _LOPO_MARGIN_PT) / 72.0


def plot_leave_one_pair_out(frame, *, ax: Axes | None = None, label: str | None = None, n_named: int = 5,
                            scale: str = "risk_difference") -> Axes:
    """Each pair's leave-one-out estimate with its CI, against the full-data estimate and CI (shaded).

    Rows are pairs sorted by their estimate; the ``n_named`` largest shifts are labelled in bold.
    A new figure (``ax=None``) is as tall as its rows need (:func:`lopo_height`).

    Parameters
    ----------
    frame : pandas.DataFrame or list of dict
        :func:`rp2pr_eval.leave_one_pair_out` output (or ``frame.to_dict(orient="records")``).
    scale : str
        Scale of the estimates: ``"risk_difference"`` is drawn in percentage points, ``"log_ratio"``
        (waiting times), ``"log_odds_ratio"`` and ``"log_hazard_ratio"`` as ratios on a log axis
        with the reference line at 1; any other scale as it is.
    """
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(list(frame))
    require_columns(frame, ["pair_id", "arm", "estimate", "ci_low", "ci_high", "shift", "full_estimate",
                            "full_ci_low", "full_ci_high", "outcome"], name="frame", func="plot_leave_one_pair_out")
    if isinstance(n_named, bool) or not isinstance(n_named, int) or n_named < 0:
        raise ValueError(f"n_named must be a non-negative integer, got {n_named!r}")
    if frame["outcome"].nunique() != 1:
        raise DataError("plot_leave_one_pair_out: the frame holds several outcomes; pass one")
    shown = effect_scale(scale)
    f = frame.sort_values("estimate", kind="mergesort").reset_index(drop=True)
    y = np.arange(len(f))
    if ax is None:
        from matplotlib import rcParams

        ax = new_axes(None)
        ax.figure.set_size_inches(rcParams["figure.figsize"][0], lopo_height(len(f)))
    full = f.iloc[0]
    ax.axvspan(shown.show(full["full_ci_low"]), shown.show(full["full_ci_high"]), color=WINDOW_COLOUR, lw=0, zorder=0,
               label="All pairs: 95% CI", gid="full-ci-window")
    ax.axvline(shown.show(full["full_estimate"]), color=NEUTRAL_COLOUR, lw=0.8, zorder=1, label="All pairs: estimate")
    ax.axvline(shown.null, color=NEUTRAL_COLOUR, lw=0.5, ls="--", zorder=1)
    for arm in ("intervention", "control"):
        sel = (f["arm"] == arm).to_numpy()
        if not sel.any():
            continue
        ax.hlines(y[sel], shown.show(f.loc[sel, "ci_low"]), shown.show(f.loc[sel, "ci_high"]), color=ARM_COLOURS[arm],
                  lw=0.7, zorder=2)
        article = "an" if arm == "intervention" else "a"
        ax.plot(shown.show(f.loc[sel, "estimate"]), y[sel], ls="", marker=ARM_MARKERS[arm], ms=3,
                color=ARM_COLOURS[arm], zorder=3, label=f"Without {article} {ARM_LABELS[arm].lower()} pair")
    named = set(f["shift"].abs().sort_values(ascending=False).index[:n_named])
    ax.set_yticks(y, labels=f["pair_id"].astype(str))
    for i, tick in enumerate(ax.get_yticklabels()):
        tick.set_fontsize(SMALL_FONT_PT)
        if i in named:
            tick.set_fontweight("bold")
    ax.set_ylim(-0.8, len(f) - 0.2)
    if shown.log:
        _ratio_axis(ax, "x", np.concatenate([shown.show(f["ci_low"]), shown.show(f["ci_high"]),
                                             shown.show(f[["full_ci_low", "full_ci_high"]].iloc[0])]), max_ticks=6)
    ax.set_xlabel(f"{shown.axis}, pair left out")
    ax.set_ylabel("Pair left out (bold: largest shifts)")
    est = f["estimate"]
    estimator = "Leave one pair out"
    if "estimator" in f.columns and f["estimator"].nunique() == 1:
        estimator = f"{ESTIMATOR_LABELS.get(str(full['estimator']), str(full['estimator']))}, each pair left out"
    ax.set_title(f"{_label(full['outcome'], label)}\n{estimator}\nrange {shown.text(est.min(), signed=True)} to "
                 f"{shown.text(est.max(), signed=True)} (all pairs {shown.text(full['full_estimate'], signed=True)})")
    _legend_below(ax, drop_pt=30.0, ncol=2)
    return ax
