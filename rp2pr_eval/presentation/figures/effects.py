"""Plots of estimated effects: the event study and the forest plot.

Both read tidy frames (see API.md: one row per estimate) and never fit.
Risk differences are shown in percentage points; log odds (hazard) ratios
are exponentiated and drawn on a log axis.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rp2pr_eval._options import check_option
from rp2pr_eval.errors import DataError
from rp2pr_eval.presentation.figures._common import (
    FigureSize,
    ForestScale,
    check_labels,
    format_number,
    format_p,
    log_ticks,
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
    ratio: bool = False,
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
    ratio : bool
        The estimates are log ratios (e.g. of geometric mean waiting times): draw
        ``exp`` of them on a log axis, reference line at 1, labelled as a ratio
        (overrides ``scale_pp``).

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
    mult = 100.0 if scale_pp and not ratio else 1.0
    move = np.exp if ratio else (lambda v: mult * v)
    null = 1.0 if ratio else 0.0
    rows = frame.loc[~is_ref].sort_values("year")
    x = rows["year"].to_numpy(dtype=float)
    y = move(rows["estimate"].to_numpy(dtype=float))
    yerr = np.vstack([y - move(rows["ci_low"].to_numpy(dtype=float)), move(rows["ci_high"].to_numpy(dtype=float)) - y])

    ax = new_axes(ax)
    during = frame.loc[frame["period"].astype(str) == "during", "year"]
    if not during.empty:
        ax.axvspan(during.min() - 0.5, during.max() + 0.5, color=WINDOW_COLOUR, lw=0, zorder=0,
                   gid="intervention-window", label="Intervention period")
    ax.axhline(null, color=NEUTRAL_COLOUR, lw=0.6, ls="--", gid="zero-line", zorder=1)
    ax.errorbar(x, y, yerr=yerr, fmt="o", color=SERIES_COLOURS[0], ms=4, elinewidth=0.9, capsize=0,
                gid="event-study-estimates", label="Estimate", zorder=3)
    ax.plot([reference_year], [null], ls="", marker="o", ms=4, mfc="white", mec=SERIES_COLOURS[0],
            gid="event-study-reference", label=f"Reference ({reference_year})", zorder=4)
    ax.annotate("ref.", (reference_year, null), xytext=(0, -9), textcoords="offset points", ha="center",
                va="top", fontsize="small")
    if ratio:
        log_ticks(ax, axis="y")
    years = np.sort(np.unique(np.append(frame["year"].to_numpy(dtype=float), reference_year))).astype(int)
    ax.set_xticks(years, labels=[str(v) for v in years])
    ax.set_xlabel("Audit year (first seen)")
    if ratio:
        ax.set_ylabel(f"Ratio vs {reference_year} (intervention / control)")
    else:
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
    "ratio": _ForestScale("log_ratio", np.exp, 1.0, True, "Ratio of geometric means (intervention / control)", 2),
    "days": _ForestScale("days", lambda v: v, 0.0, False, "Difference (days)", 1),
}


def _forest_positions(outcomes: pd.Series, *, step: float = _ROW_STEP, block: float = 0.0) -> np.ndarray:
    """y position of each row: outcomes top to bottom in order of first appearance.

    Rows of one outcome are ``step`` apart; consecutive outcomes are separated by
    ``_GROUP_GAP`` and each outcome block is at least ``block`` tall.
    """
    order = list(pd.unique(outcomes))
    y = np.empty(len(outcomes))
    top = 0.0
    codes = outcomes.to_numpy()
    for name in order:
        idx = np.flatnonzero(codes == name)
        y[idx] = top - step * np.arange(idx.size)
        top -= max(step * idx.size, block) + _GROUP_GAP
    return y - y.min()


#: In a compact forest (``text_for=``) the estimators of an outcome are this many rows apart...
_COMPACT_STEP = 0.42
#: ...and each outcome block is at least this many rows tall (two lines of a wrapped label).
_COMPACT_BLOCK = 1.9


def _compact_units(n_rows: int, n_outcomes: int) -> float:
    return n_outcomes * _COMPACT_BLOCK + _GROUP_GAP * max(n_outcomes - 1, 0) + 1.4 * _ROW_STEP


#: Row pitch of the forest plot in points: 1.45 times the 8 pt text, so rows of text never touch.
FOREST_ROW_PT = 11.6
#: Points above the rows (the bold header) and below them (x axis, its ticks and label).
_FOREST_TOP_PT = 14.0
_FOREST_BOTTOM_PT = 30.0


def forest_height(n_rows: int, n_outcomes: int, *, compact: bool = False) -> float:
    """Height in inches of a forest panel of ``n_rows`` estimates in ``n_outcomes`` blocks.

    The text rows are :data:`FOREST_ROW_PT` apart, with a gap of 0.6 rows between
    outcome blocks, plus room for the header and the x axis: the figure grows with
    the rows instead of squeezing them. ``compact=True`` is the layout of
    ``plot_forest(text_for=...)``: one text line per outcome, its estimators
    dodged within a block of 1.9 rows (11 outcomes × 4 estimators: 4.2 in).
    """
    if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 1:
        raise ValueError(f"forest_height: n_rows={n_rows!r} is not valid; expected a positive integer")
    if compact:
        units = _compact_units(int(n_rows), int(n_outcomes))
    else:
        units = n_rows + _GROUP_GAP * max(int(n_outcomes) - 1, 0) + 1.4 * _ROW_STEP
    return (units * FOREST_ROW_PT + _FOREST_TOP_PT + _FOREST_BOTTOM_PT) / 72.0


def plot_forest(
    effects_frame: pd.DataFrame,
    *,
    scale: ForestScale = "risk_difference",
    ax: Axes | None = None,
    labels: Mapping[str, str] | None = None,
    show_p: bool = True,
    estimator_labels: Mapping[str, str] | None = None,
    level: float = 0.95,
    wrap: int | None = None,
    legend: bool = True,
    text_for: str | None = None,
    estimator_order: Sequence[str] | None = None,
    text_column: bool = True,
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

    A new figure (``ax=None``) is as tall as its rows need
    (:func:`forest_height`, rows :data:`FOREST_ROW_PT` apart); on a given Axes
    the caller sizes the figure. For many outcomes and scales, use
    :func:`forest_figure`, which stacks one panel per scale.

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
        Estimator name → legend label; default the registry's
        :data:`rp2pr_eval.study.outcomes.ESTIMATOR_LABELS` (a name not in it is shown as is).
    level : float
        Confidence level of the intervals, used only in the column header.
    wrap : int, optional
        Wrap outcome labels at this many characters (narrow figures).
    legend : bool
        Draw the estimator legend above the axes (when there are several estimators).
    text_for : str, optional
        Compact layout for many estimators: each outcome gets one line of text, for
        this estimator (e.g. ``"ancova"``; an outcome without it: its first row), and
        its other estimators are drawn as markers just below it, without text
        (their numbers belong in a table). ``None``: a text line for every row.
    estimator_order : sequence of str, optional
        Estimators in the order that fixes their marker and colour (so that several
        panels of one figure agree); default their order in the frame.
    text_column : bool
        Draw the right-hand text column (``False`` for narrow figures: the numbers
        then belong in a table beside the figure).

    Returns
    -------
    matplotlib.axes.Axes
        The Axes; the text column is a secondary y axis on its right.
    """
    import textwrap

    from rp2pr_eval.study.outcomes import ESTIMATOR_LABELS

    func = "plot_forest"
    check_option("scale", scale, ForestScale)
    check_labels(labels, func=func)
    check_labels(estimator_labels, func=func)
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"{func}: level={level!r} is not valid; expected a number strictly between 0 and 1")
    if wrap is not None and (isinstance(wrap, bool) or not isinstance(wrap, int) or wrap < 8):
        raise ValueError(f"{func}: wrap={wrap!r} is not valid; expected None or a number of characters >= 8")
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
    names_of = ESTIMATOR_LABELS if estimator_labels is None else estimator_labels
    est = spec.transform(rows["estimate"].to_numpy(dtype=float))
    low = spec.transform(rows["ci_low"].to_numpy(dtype=float))
    high = spec.transform(rows["ci_high"].to_numpy(dtype=float))
    outcome_names = rows["outcome"].astype(str)
    if text_for is None:
        y = _forest_positions(outcome_names)
        text_rows = np.arange(len(rows))
    else:
        if not isinstance(text_for, str):
            raise ValueError(f"{func}: text_for={text_for!r} is not valid; expected an estimator name or None")
        first = rows["estimator"].astype(str) == text_for
        order = np.lexsort((np.arange(len(rows)), ~first.to_numpy(), pd.Categorical(
            outcome_names, categories=list(pd.unique(outcome_names))).codes))
        rows = rows.iloc[order].reset_index(drop=True)
        est, low, high = est[order], low[order], high[order]
        outcome_names = rows["outcome"].astype(str)
        y = _forest_positions(outcome_names, step=_COMPACT_STEP, block=_COMPACT_BLOCK)
        text_rows = np.flatnonzero(~outcome_names.duplicated().to_numpy())

    if ax is None:
        from rp2pr_eval.presentation.figures.canvas import new_figure
        from rp2pr_eval.presentation.figures.style import figure_size

        width, _ = figure_size("double")
        n_out = int(rows["outcome"].nunique())
        extra = 0.35 if legend and rows["estimator"].nunique() > 1 else 0.0
        height = forest_height(len(rows), n_out, compact=text_for is not None)
        ax = new_figure(figsize=(width, height + extra)).add_subplot()
    ax.axvline(spec.null, color=NEUTRAL_COLOUR, lw=0.6, ls="--", gid="null-line", zorder=1)
    estimators = list(pd.unique(rows["estimator"].astype(str)))
    order = [str(e) for e in estimator_order] if estimator_order is not None else []
    order += [e for e in estimators if e not in order]
    for estimator in estimators:
        k = order.index(estimator)
        sel = (rows["estimator"].astype(str) == estimator).to_numpy()
        shown = str(names_of.get(estimator, estimator))
        ax.errorbar(est[sel], y[sel], xerr=np.vstack([est[sel] - low[sel], high[sel] - est[sel]]),
                    fmt=_MARKERS[k % len(_MARKERS)], color=SERIES_COLOURS[k % len(SERIES_COLOURS)], ms=3.5,
                    elinewidth=0.9, capsize=0, gid=f"forest-{estimator}", label=shown, zorder=3)
    if spec.log_axis:
        # the plotting area is about a third of the figure's width; ~2 labels per inch fit
        log_ticks(ax, max_ticks=max(3, round(2.2 * 0.35 * ax.figure.get_figwidth())))
    elif ax.figure.get_figwidth() < 4:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]))
    ax.set_xlabel(spec.axis_label)

    # Outcome labels on the left, one per outcome block (compact: level with its text line).
    centres, names = [], []
    for name in pd.unique(outcome_names):
        ys = y[(outcome_names == name).to_numpy()]
        centres.append(float(ys.mean()) if text_for is None else float(ys.max()) + 0.4 * _ROW_STEP)
        label = _row_label(name, rows, labels)
        names.append(textwrap.fill(label, wrap, break_long_words=False) if wrap is not None else label)
    ax.set_yticks(centres, labels=names)
    if text_for is not None:         # first line level with the text line, further lines down the block
        for tick_label in ax.get_yticklabels():
            tick_label.set_verticalalignment("top")
    ax.tick_params(axis="y", length=0)
    ax.spines["left"].set_visible(False)

    # Text column on the right, as tick labels of a secondary axis so that
    # constrained layout and tight bounding boxes make room for it.
    header_y = float(y.max()) + 1.2 * _ROW_STEP
    ax.set_ylim(-0.8 * _ROW_STEP, header_y + 0.7 * _ROW_STEP)
    if legend and len(estimators) > 1:
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=min(len(estimators), 2),
                  handletextpad=0.3, columnspacing=1.0, borderaxespad=0.2)
    if not text_column:
        return ax
    shown_rows = rows.iloc[text_rows].reset_index(drop=True)
    texts, header = _forest_text(shown_rows, est[text_rows], low[text_rows], high[text_rows], spec.decimals,
                                 show_p, level)
    side = ax.secondary_yaxis("right")
    side.set_yticks([*y[text_rows], header_y], labels=[*texts, header])
    side.tick_params(axis="y", length=0)
    side.spines["right"].set_visible(False)
    for tick_label in side.get_yticklabels():
        tick_label.set_fontfamily("monospace")
    side.get_yticklabels()[-1].set_fontweight("bold")
    return ax


#: Panels of :func:`forest_figure`, top to bottom: (forest scale, Effect scale, panel title).
FOREST_PANELS = (
    ("risk_difference", "risk_difference", "Binary indicators"),
    ("ratio", "log_ratio", "Waiting times"),
    ("hazard_ratio", "log_hazard_ratio", "Survival"),
    ("days", "days", "Waiting times (days)"),
)


def forest_figure(
    effects_frame: pd.DataFrame,
    *,
    labels: Mapping[str, str] | None = None,
    estimator_labels: Mapping[str, str] | None = None,
    size: FigureSize = "double",
    show_p: bool | None = None,
    level: float = 0.95,
    text_for: str | None = "ancova",
):
    """Forest plot of every outcome, one panel per scale, sized for print; returns the Figure.

    Binary indicators (risk differences, percentage points), waiting times (ratio of
    geometric means, log axis) and survival (hazard ratio, log axis) each get their own
    panel on their own scale, stacked with heights in proportion to their rows, so
    each scale's axis fits its estimates. One legend above all panels names the
    estimators in words (:data:`rp2pr_eval.study.outcomes.ESTIMATOR_LABELS`). At 85 mm
    (``size="single"``) the outcome labels wrap and the text column is left out (the
    numbers go in the table beside it); the height grows with the rows
    (:func:`forest_height`) up to a page.

    Parameters
    ----------
    effects_frame : pandas.DataFrame
        Tidy effects as for :func:`plot_forest` (rows on other scales are left out).
    labels, estimator_labels : dict, optional
        As for :func:`plot_forest`.
    size : {"single", "double", "full"}
        85 mm or 170 mm wide.
    show_p : bool, optional
        p-value columns of the text column (170 mm only); default yes.
    level : float
        Confidence level (column header).
    text_for : str, optional
        The estimator whose numbers the text column shows (default the primary,
        ANCOVA); the others are drawn as markers below it (see :func:`plot_forest`).
        ``None``: a text line for every estimate (tall).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from rp2pr_eval.presentation.figures.canvas import new_figure
    from rp2pr_eval.presentation.figures.style import MAX_HEIGHT_MM, MM_PER_INCH, figure_size
    from rp2pr_eval.study.outcomes import ESTIMATOR_LABELS

    func = "forest_figure"
    check_option("size", size, FigureSize)
    require_columns(effects_frame, ["outcome", "estimator", "scale", "estimate", "ci_low", "ci_high"],
                    name="effects_frame", func=func)
    narrow = size == "single"
    if show_p is None:
        show_p = not narrow
    panels = [(scale, frame_scale, title) for scale, frame_scale, title in FOREST_PANELS
              if (effects_frame["scale"].astype(str) == frame_scale).any()]
    if not panels:
        raise DataError(f"{func}: effects_frame has no rows on a forest scale "
                        f"({', '.join(s for _, s, _ in FOREST_PANELS)})")
    counts = [effects_frame.loc[effects_frame["scale"].astype(str) == fs] for _, fs, _ in panels]
    heights = [forest_height(len(c), int(c["outcome"].nunique()), compact=True) + 0.2 for c in counts]
    width, _ = figure_size(size)
    total = min(sum(heights) + 0.45, MAX_HEIGHT_MM / MM_PER_INCH)
    fig = new_figure(figsize=(width, total))
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=heights)[:, 0]
    wrap = 22 if size == "single" else 34
    names_of = ESTIMATOR_LABELS if estimator_labels is None else estimator_labels
    handles: dict[str, object] = {}
    order = list(pd.unique(effects_frame["estimator"].astype(str)))
    for ax, (scale, _, title), rows in zip(axes, panels, counts):
        plot_forest(rows, scale=scale, ax=ax, labels=labels, show_p=show_p, estimator_labels=names_of,
                    level=level, wrap=wrap, legend=False, text_for=text_for, estimator_order=order,
                    text_column=not narrow)
        if narrow:
            import textwrap

            ax.set_xlabel(textwrap.fill(ax.get_xlabel(), 26))
        ax.set_title(title, loc="left", fontweight="bold", fontsize="medium")
        for handle, name in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(name, handle)
    fig.legend(list(handles.values()), list(handles), loc="outside upper center",
               ncols=min(len(handles), 2 if size == "single" else 3), handletextpad=0.3, columnspacing=1.2)
    return fig


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
