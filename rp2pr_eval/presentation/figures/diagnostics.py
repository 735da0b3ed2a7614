"""Diagnostic plots: trust random effects (caterpillar) and randomisation distributions."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rp2pr_eval.errors import DataError
from rp2pr_eval.presentation.figures._common import (
    ARMS,
    check_arms,
    format_p,
    log_ticks,
    new_axes,
    require_columns,
)
from rp2pr_eval.presentation.figures.style import (
    ARM_COLOURS,
    ARM_LABELS,
    ARM_MARKERS,
    NEUTRAL_COLOUR,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_HIST_COLOUR = "#B8B8B8"


def plot_caterpillar(frame: pd.DataFrame, *, ax: Axes | None = None, sort: bool = True) -> Axes:
    """Caterpillar plot of trust random intercepts (conditional modes) with intervals.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per trust: ``trust_id, arm, mode, ci_low, ci_high`` (log-odds
        scale; ``se`` may be present).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure when ``None``.
    sort : bool
        Order trusts by their mode (ascending, ties by ``trust_id``);
        otherwise keep the frame's order.

    Returns
    -------
    matplotlib.axes.Axes
        Trusts on the x axis (rank), modes and intervals on the y axis,
        coloured and shaped by arm.
    """
    func = "plot_caterpillar"
    require_columns(frame, ["trust_id", "arm", "mode", "ci_low", "ci_high"], name="frame", func=func)
    check_arms(frame, name="frame", func=func)
    if frame["trust_id"].duplicated().any():
        raise DataError(f"{func}: column 'trust_id' of frame has duplicates; expected one row per trust")
    data = frame.sort_values(["mode", "trust_id"], kind="stable") if sort else frame
    data = data.reset_index(drop=True)
    x = np.arange(len(data), dtype=float)
    y = data["mode"].to_numpy(dtype=float)
    yerr = np.vstack([y - data["ci_low"].to_numpy(dtype=float), data["ci_high"].to_numpy(dtype=float) - y])

    ax = new_axes(ax)
    ax.axhline(0.0, color=NEUTRAL_COLOUR, lw=0.6, ls="--", gid="zero-line", zorder=1)
    for arm in ARMS:
        sel = (data["arm"].astype(str) == arm).to_numpy()
        if sel.any():
            ax.errorbar(x[sel], y[sel], yerr=yerr[:, sel], fmt=ARM_MARKERS[arm], color=ARM_COLOURS[arm], ms=3,
                        elinewidth=0.7, capsize=0, gid=f"caterpillar-{arm}", label=ARM_LABELS[arm], zorder=3)
    ax.set_xticks([])
    ax.set_xlim(-1, len(data))
    ax.set_xlabel("Trusts, ranked by conditional mode" if sort else "Trusts")
    ax.set_ylabel("Trust random intercept (log odds)")
    ax.legend(loc="upper left")
    return ax


def plot_randomisation(
    observed: float,
    draws: object,
    *,
    p_value: float | None = None,
    ax: Axes | None = None,
    label: str | None = None,
    log_scale: bool = False,
) -> Axes:
    """Histogram of a randomisation (permutation) distribution with the observed statistic.

    The p-value is shown as given (the figure does not recompute it, so it
    is the one the randomisation test reported); nothing is annotated when
    ``p_value`` is ``None``.

    Parameters
    ----------
    observed : float
        The statistic for the actual allocation.
    draws : array-like of float
        The statistic under each re-randomisation.
    p_value : float, optional
        The test's p-value.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure when ``None``.
    label : str, optional
        x-axis label (the statistic and its unit); default ``"Statistic"``.
    log_scale : bool
        A ratio statistic (positive ``observed`` and ``draws``, e.g. a ratio of geometric means): log
        x axis with plain ratio ticks (0.9, 1, 1.1), not powers of ten.

    Returns
    -------
    matplotlib.axes.Axes
    """
    func = "plot_randomisation"
    if isinstance(observed, bool) or not isinstance(observed, (int, float, np.floating)) or not math.isfinite(observed):
        raise ValueError(f"{func}: observed={observed!r} is not valid; expected a finite number")
    try:
        values = np.asarray(draws, dtype=float).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"{func}: draws must be an array of numbers") from None
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"{func}: draws must be a non-empty array of finite numbers")
    if log_scale and (observed <= 0 or np.any(values <= 0)):
        raise ValueError(f"{func}: log_scale=True needs a positive statistic (a ratio); got values <= 0")
    if p_value is not None and (
        isinstance(p_value, bool) or not isinstance(p_value, (int, float, np.floating)) or not 0 <= p_value <= 1
    ):
        raise ValueError(f"{func}: p_value={p_value!r} is not valid; expected a number in [0, 1] or None")

    ax = new_axes(ax)
    counts, _, _ = ax.hist(values, bins="auto", color=_HIST_COLOUR, edgecolor="white", linewidth=0.3, gid="null-distribution",
            label=f"Re-randomisations (n = {values.size:,})")
    ax.axvline(float(observed), color=ARM_COLOURS["intervention"], lw=1.2, gid="observed-line", label="Observed")
    # Legend and p-value above the plotting area (left and right), where they cover no bars.
    if p_value is not None:
        ax.text(1.0, 1.02, f"p = {format_p(p_value)}" if p_value >= 0.001 else "p < 0.001",
                transform=ax.transAxes, ha="right", va="bottom", gid="p-value")
    ax.set_ylim(0, 1.05 * float(np.max(counts)))
    if log_scale:
        log_ticks(ax, max_ticks=6)
    ax.set_xlabel(label if label is not None else "Statistic")
    ax.set_ylabel("Number of re-randomisations")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), borderaxespad=0.2, ncols=1)
    return ax
