"""Plots of estimated effects: the event study and the forest plot.

Both read tidy frames (see API.md: one row per estimate) and never fit.
Risk differences are shown in percentage points; log odds (hazard) ratios
are exponentiated and drawn on a log axis.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rp2pr_eval._options import check_option
from rp2pr_eval.errors import DataError
from rp2pr_eval.presentation.figures._common import (
    ForestScale,
    check_labels,
    format_number,
    format_p,
    new_axes,
    require_columns,
)
from rp2pr_eval.presentation.figures.style import (
    NEUTRAL_COLOUR,
    SERIES_COLOURS,
    WINDOW_COLOUR,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")
_ROW_STEP = 1.0
_GROUP_GAP = 0.6


# --------------------------------------------------------------------------- event study
def plot_event_study(
    frame: pd.DataFrame,
    *,
    pretrend_p: float | None = None,
    ax: Axes | None = None,
    reference_year: int = 2009,
    label: str | None = None,
    scale_pp: bool = True,
) -> Axes:
    """Event-study plot: per-year effects with confidence intervals.

    Each year's estimate (intervention − control gap relative to the
    reference year) is a point with its CI bar; the reference year is drawn
    as a hollow point at 0 without a bar and marked "ref."; a zero line;
    the years whose ``period`` is ``"during"`` shaded; the joint pre-trend
    test p-value in the title.

    Parameters
    ----------
    frame : pandas.DataFrame
        ``year, estimate, ci_low, ci_high, period`` (``se``, ``p_value``
        may be present); the reference year's row, if present, has estimate 0.
    pretrend_p : float, optional
        p-value of the joint pre-trend test, shown in the title.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure when ``None``.
    reference_year : int
        The omitted year (estimate 0 by construction). Drawn at 0 even if the
        frame has no row for it.
    label : str, optional
        Outcome label, the first line of the title.
    scale_pp : bool
        Multiply estimates by 100 (risk differences as percentage points).

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        ``DataError`` for missing columns, duplicated years or a non-zero
        reference-year estimate; ``ValueError`` for an invalid ``pretrend_p``.
    """
    func = "plot_event_study"
    require_columns(frame, ["year", "estimate", "ci_low", "ci_high", "period"], name="frame", func=func)
    if pretrend_p is not None and (
        isinstance(pretrend_p, bool) or not isinstance(pretrend_p, (int, float, np.floating))
        or not 0 <= pretrend_p <= 1
    ):
        raise ValueError(f"{func}: pretrend_p={pretrend_p!r} is not valid; expected a p-value in [0, 1] or None")
    if frame["year"].duplicated().any():
        raise DataError(f"{func}: column 'year' of frame has duplicated years; expected one row per year")
    is_ref = frame["year"] == reference_year
    ref_est = frame.loc[is_ref, "estimate"].to_numpy(dtype=float)
    if ref_est.size and not (ref_est[0] == 0 or abs(ref_est[0]) < 1e-12):
        raise DataError(
            f"{func}: the reference_year={reference_year} row has estimate {ref_est[0]!r}; expected 0 "
            f"(is reference_year right?)"
        )
    mult = 100.0 if scale_pp else 1.0
    rows = frame.loc[~is_ref].sort_values("year")
    x = rows["year"].to_numpy(dtype=float)
    y = mult * rows["estimate"].to_numpy(dtype=float)
    yerr = np.vstack([y - mult * rows["ci_low"].to_numpy(dtype=float), mult * rows["ci_high"].to_numpy(dtype=float) - y])

    ax = new_axes(ax)
    during = frame.loc[frame["period"].astype(str) == "during", "year"]
    if not during.empty:
        ax.axvspan(during.min() - 0.5, during.max() + 0.5, color=WINDOW_COLOUR, lw=0, zorder=0,
                   gid="intervention-window", label="Intervention period")
    ax.axhline(0.0, color=NEUTRAL_COLOUR, lw=0.6, ls="--", gid="zero-line", zorder=1)
    ax.errorbar(x, y, yerr=yerr, fmt="o", color=SERIES_COLOURS[0], ms=4, elinewidth=0.9, capsize=0,
                gid="event-study-estimates", label="Estimate", zorder=3)
    ax.plot([reference_year], [0.0], ls="", marker="o", ms=4, mfc="white", mec=SERIES_COLOURS[0],
            gid="event-study-reference", label=f"Reference ({reference_year})", zorder=4)
    ax.annotate("ref.", (reference_year, 0.0), xytext=(0, -9), textcoords="offset points", ha="center",
                va="top", fontsize="small")
    years = np.sort(np.unique(np.append(frame["year"].to_numpy(dtype=float), reference_year))).astype(int)
    ax.set_xticks(years, labels=[str(v) for v in years])
    ax.set_xlabel("Audit year (first seen)")
    unit = " (percentage points)" if scale_pp else ""
    ax.set_ylabel(f"Difference vs {reference_year}{unit}")
    title = [label] if label is not None else []
    if pretrend_p is not None:
        title.append(f"Joint pre-trend test p = {format_p(pretrend_p)}")
    if title:
        ax.set_title("\n".join(title))
    return ax


# --------------------------------------------------------------------------- forest plot
@dataclass(frozen=True)
class _ForestScale:
    frame_scale: str
    transform: Callable[[np.ndarray], np.ndarray]
    null: float
    log_axis: bool
    axis_label: str
    decimals: int


_FOREST_SCALES: dict[str, _ForestScale] = {
    "risk_difference": _ForestScale("risk_difference", lambda v: 100 * v, 0.0, False,
                                    "Risk difference (percentage points)", 1),
    "odds_ratio": _ForestScale("log_odds_ratio", np.exp, 1.0, True, "Odds ratio", 2),
    "hazard_ratio": _ForestScale("log_hazard_ratio", np.exp, 1.0, True, "Hazard ratio", 2),
    "ratio": _ForestScale("log_ratio", np.exp, 1.0, True, "Ratio", 2),
    "days": _ForestScale("days", lambda v: v, 0.0, False, "Difference (days)", 1),
}


def _forest_positions(outcomes: pd.Series) -> np.ndarray:
    """y position of each row: outcomes top to bottom in order of first appearance."""
    order = list(pd.unique(outcomes))
    y = np.empty(len(outcomes))
    top = 0.0
    codes = outcomes.to_numpy()
    for name in order:
        idx = np.flatnonzero(codes == name)
        y[idx] = top - _ROW_STEP * np.arange(idx.size)
        top -= _ROW_STEP * idx.size + _GROUP_GAP
    return y - y.min()


def plot_forest(
    effects_frame: pd.DataFrame,
    *,
    scale: ForestScale = "risk_difference",
    ax: Axes | None = None,
    labels: Mapping[str, str] | None = None,
    show_p: bool = True,
    estimator_labels: Mapping[str, str] | None = None,
    level: float = 0.95,
) -> Axes:
    """Forest plot: outcomes as rows, estimators as dodged marker shapes.

    Rows of ``effects_frame`` whose ``scale`` matches the chosen scale are
    drawn (others are left out by design): ``"risk_difference"`` rows in
    percentage points with a null line at 0; ``"odds_ratio"`` draws the
    ``log_odds_ratio`` rows exponentiated on a log axis with a null line at 1
    (``"hazard_ratio"`` and ``"ratio"`` likewise for ``log_hazard_ratio`` and
    ``log_ratio``; ``"days"`` as is). Outcomes keep their order of first
    appearance, top to bottom; an outcome's rows are stacked in frame order.
    A right-hand column gives each row's estimate [CI], the raw p-value and,
    if the frame has ``p_adjusted``, the adjusted p-value (headed by the
    method when ``adjust_method`` holds a single value).

    Parameters
    ----------
    effects_frame : pandas.DataFrame
        Tidy effects: ``outcome, estimator, scale, estimate, ci_low,
        ci_high`` and ``p_value`` (when ``show_p``); optionally
        ``p_adjusted``, ``adjust_method``, ``label``.
    scale : {"risk_difference", "odds_ratio", "hazard_ratio", "ratio", "days"}
        Which estimates to draw, and how.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure when ``None``.
    labels : dict, optional
        Outcome name → label. Falls back to the frame's ``label`` column,
        then to the outcome name.
    show_p : bool
        Add the p-value column(s).
    estimator_labels : dict, optional
        Estimator name → legend label (default: the name).
    level : float
        Confidence level of the intervals, used only in the column header.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes; the text column is a secondary y axis on its right.
    """
    func = "plot_forest"
    check_option("scale", scale, ForestScale)
    check_labels(labels, func=func)
    check_labels(estimator_labels, func=func)
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"{func}: level={level!r} is not valid; expected a number strictly between 0 and 1")
    required = ["outcome", "estimator", "scale", "estimate", "ci_low", "ci_high"] + (["p_value"] if show_p else [])
    require_columns(effects_frame, required, name="effects_frame", func=func)
    spec = _FOREST_SCALES[scale]
    rows = effects_frame.loc[effects_frame["scale"].astype(str) == spec.frame_scale].reset_index(drop=True)
    if rows.empty:
        present = ", ".join(sorted(map(str, effects_frame["scale"].unique())))
        raise DataError(
            f"{func}: effects_frame has no rows with scale {spec.frame_scale!r} (needed for scale={scale!r}); "
            f"it holds {present}"
        )
    est = spec.transform(rows["estimate"].to_numpy(dtype=float))
    low = spec.transform(rows["ci_low"].to_numpy(dtype=float))
    high = spec.transform(rows["ci_high"].to_numpy(dtype=float))
    y = _forest_positions(rows["outcome"].astype(str))

    ax = new_axes(ax)
    ax.axvline(spec.null, color=NEUTRAL_COLOUR, lw=0.6, ls="--", gid="null-line", zorder=1)
    estimators = list(pd.unique(rows["estimator"].astype(str)))
    for k, estimator in enumerate(estimators):
        sel = (rows["estimator"].astype(str) == estimator).to_numpy()
        shown = estimator if estimator_labels is None else str(estimator_labels.get(estimator, estimator))
        ax.errorbar(est[sel], y[sel], xerr=np.vstack([est[sel] - low[sel], high[sel] - est[sel]]),
                    fmt=_MARKERS[k % len(_MARKERS)], color=SERIES_COLOURS[k % len(SERIES_COLOURS)], ms=4,
                    elinewidth=0.9, capsize=0, gid=f"forest-{estimator}", label=shown, zorder=3)
    if spec.log_axis:
        _log_ticks(ax)
    ax.set_xlabel(spec.axis_label)

    # Outcome labels on the left, one per outcome block.
    outcome_names = rows["outcome"].astype(str)
    centres, names = [], []
    for name in pd.unique(outcome_names):
        centres.append(float(y[(outcome_names == name).to_numpy()].mean()))
        names.append(_row_label(name, rows, labels))
    ax.set_yticks(centres, labels=names)
    ax.tick_params(axis="y", length=0)
    ax.spines["left"].set_visible(False)

    # Text column on the right, as tick labels of a secondary axis so that
    # constrained layout and tight bounding boxes make room for it.
    header_y = float(y.max()) + _ROW_STEP
    texts, header = _forest_text(rows, est, low, high, spec.decimals, show_p, level)
    side = ax.secondary_yaxis("right")
    side.set_yticks([*y, header_y], labels=[*texts, header])
    side.tick_params(axis="y", length=0)
    side.spines["right"].set_visible(False)
    for tick_label in side.get_yticklabels():
        tick_label.set_fontfamily("monospace")
    side.get_yticklabels()[-1].set_fontweight("bold")
    ax.set_ylim(-0.8 * _ROW_STEP, header_y + 0.6 * _ROW_STEP)
    if len(estimators) > 1:
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=min(len(estimators), 3),
                  handletextpad=0.3, columnspacing=1.0)
    return ax


def _row_label(name: str, rows: pd.DataFrame, labels: Mapping[str, str] | None) -> str:
    if labels is not None and name in labels:
        return str(labels[name])
    if "label" in rows.columns:
        given = rows.loc[rows["outcome"].astype(str) == name, "label"].dropna()
        if not given.empty:
            return str(given.iloc[0])
    return name


def _forest_text(
    rows: pd.DataFrame,
    est: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    decimals: int,
    show_p: bool,
    level: float,
) -> tuple[list[str], str]:
    """The right-hand column: per-row text and the header, aligned for a monospace font."""
    parts = [[format_number(v, decimals) for v in values] for values in (est, low, high)]
    widths = [max(len(t) for t in column) for column in parts]
    cells = [
        f"{e.rjust(widths[0])} [{lo.rjust(widths[1])}, {hi.rjust(widths[2])}]"
        for e, lo, hi in zip(*parts)
    ]
    header_ci = f"Estimate [{100 * level:g}% CI]"
    width = max(len(header_ci), *(len(c) for c in cells))
    columns = [[c.ljust(width) for c in cells]]
    header = [header_ci.ljust(width)]
    if show_p:
        columns.append([format_p(p).rjust(6) for p in rows["p_value"]])
        header.append("p".rjust(6))
        if "p_adjusted" in rows.columns:
            method = ""
            if "adjust_method" in rows.columns:
                methods = rows["adjust_method"].dropna().astype(str).unique()
                method = f" ({methods[0]})" if methods.size == 1 else ""
            head = f"p adj.{method}"
            columns.append([format_p(p).rjust(max(6, len(head))) for p in rows["p_adjusted"]])
            header.append(head.rjust(6))
    texts = ["  ".join(parts) for parts in zip(*columns)]
    return texts, "  ".join(header)


_LOG_TICK_TIERS = (
    (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100),
    (0.1, 0.2, 0.25, 0.33, 0.5, 0.67, 0.8, 1, 1.25, 1.5, 2, 3, 4, 5, 10),
    (0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2),
    tuple(np.round(np.arange(0.5, 2.0001, 0.05), 2)),
)


def _log_ticks(ax: Axes) -> None:
    """Log x axis with plain-number ticks: the coarsest set giving 4 to 8 ticks in view."""
    from matplotlib.ticker import (
        FixedLocator,
        FuncFormatter,
        NullFormatter,
        NullLocator,
    )

    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    chosen: tuple[float, ...] = ()
    for tier in _LOG_TICK_TIERS:
        inside = tuple(t for t in tier if lo <= t <= hi)
        if len(inside) > 8 and len(chosen) >= 2:
            break
        chosen = inside if len(inside) > len(chosen) else chosen
        if len(inside) >= 4:
            break
    ax.xaxis.set_major_locator(FixedLocator(chosen))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
