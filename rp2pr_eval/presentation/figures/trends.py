"""Rates by audit year and arm, with confidence intervals and the intervention window."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from rp2pr_eval._options import check_option
from rp2pr_eval.errors import DataError
from rp2pr_eval.presentation.figures._common import (
    ARMS,
    FigureSize,
    TrendCI,
    TrendCluster,
    check_arms,
    check_labels,
    new_axes,
    outcome_label,
    require_columns,
    single_outcome,
)
from rp2pr_eval.presentation.figures.style import (
    ARM_COLOURS,
    ARM_LABELS,
    ARM_MARKERS,
    NEUTRAL_COLOUR,
    WINDOW_COLOUR,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_DODGE = 0.08


def _cluster_ci(group: pd.DataFrame, cluster: str, level: float) -> tuple[float, float, float, int]:
    """Pooled rate and its cluster-robust (linearised ratio) SE and CI."""
    den_total = group["denominator"].sum()
    rate = group["numerator"].sum() / den_total
    resid = (group["numerator"] - rate * group["denominator"]).groupby(group[cluster], observed=True).sum()
    n_clusters = int(resid.size)
    if n_clusters < 2:
        return rate, np.nan, np.nan, n_clusters
    se = np.sqrt(n_clusters / (n_clusters - 1) * np.sum(resid.to_numpy() ** 2)) / den_total
    half = stats.t.ppf((1 + level) / 2, n_clusters - 1) * se
    return rate, se, half, n_clusters


def _wilson(x: float, n: float, level: float) -> tuple[float, float]:
    z = stats.norm.ppf((1 + level) / 2)
    centre = (x + z**2 / 2) / (n + z**2)
    half = z / (n + z**2) * np.sqrt(x * (n - x) / n + z**2 / 4)
    return centre - half, centre + half


def trend_rates(
    panel_by_year: pd.DataFrame,
    *,
    ci: TrendCI = "cluster",
    cluster: TrendCluster = "pair_id",
    level: float = 0.95,
) -> pd.DataFrame:
    """Pooled rate of each arm and audit year with a confidence interval.

    The pooled rate is ``R = Σ numerator / Σ denominator`` over the arm's
    trusts (the denominator-weighted mean of trust rates).

    ``ci="cluster"`` (default): cluster-robust interval across clusters.
    ``R`` is a ratio estimator; its linearised sandwich variance is
    ``G/(G−1) · Σ_g (Σ_{i∈g} (numerator_i − R·denominator_i))² / (Σ denominator)²``
    over the ``G`` clusters of that arm-year, and the interval is
    ``R ± t_{G−1} · SE`` clipped to [0, 1]. This is the denominator-weighted
    across-trust standard error of trust rates; it carries the between-trust
    variation that patient-level binomial intervals ignore. Clusters are pairs
    by default (the unit of randomisation, as in every estimator of the
    package); ``cluster="trust_id"`` gives the across-trust version.

    ``ci="wilson"``: Wilson score interval on the pooled counts, which treats
    patients as independent and is too narrow when trusts differ.

    Parameters
    ----------
    panel_by_year : pandas.DataFrame
        Trust panel by audit year for one outcome: ``trust_id, arm,
        audit_year, numerator, denominator`` (and ``pair_id`` when clustering
        by pair).
    ci : {"cluster", "wilson"}
        Interval method.
    cluster : {"pair_id", "trust_id"}
        Cluster column for ``ci="cluster"``.
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        One row per arm and year: ``arm, audit_year, numerator, denominator,
        rate, se, ci_low, ci_high, n_trusts, n_clusters`` (``se`` and
        ``n_clusters`` are NaN / 0 for Wilson intervals).
    """
    func = "trend_rates"
    check_option("ci", ci, TrendCI)
    check_option("cluster", cluster, TrendCluster)
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"{func}: level={level!r} is not valid; expected a number strictly between 0 and 1")
    required = ["trust_id", "arm", "audit_year", "numerator", "denominator"]
    if ci == "cluster":
        required.append(cluster)
    require_columns(panel_by_year, required, name="panel_by_year", func=func)
    check_arms(panel_by_year, name="panel_by_year", func=func)
    num = panel_by_year["numerator"].to_numpy(dtype=float)
    den = panel_by_year["denominator"].to_numpy(dtype=float)
    if np.any(~np.isfinite(den)) or np.any(den <= 0) or np.any(num < 0) or np.any(num > den):
        raise DataError(f"{func}: panel_by_year needs 0 <= numerator <= denominator and denominator > 0")

    rows = []
    frame = panel_by_year.assign(arm=panel_by_year["arm"].astype(str))
    for (arm, year), group in frame.groupby(["arm", "audit_year"], sort=True):
        x, n = float(group["numerator"].sum()), float(group["denominator"].sum())
        if ci == "cluster":
            rate, se, half, n_clusters = _cluster_ci(group, cluster, level)
            low, high = max(rate - half, 0.0), min(rate + half, 1.0)
        else:
            rate, se, n_clusters = x / n, np.nan, 0
            low, high = _wilson(x, n, level)
        rows.append(
            {
                "arm": arm,
                "audit_year": int(year),
                "numerator": x,
                "denominator": n,
                "rate": rate,
                "se": se,
                "ci_low": low,
                "ci_high": high,
                "n_trusts": int(group["trust_id"].nunique()),
                "n_clusters": n_clusters,
            }
        )
    return pd.DataFrame(rows)


def _is_rates(frame: pd.DataFrame) -> bool:
    """A frame of pooled rates (arm, audit_year, rate, ci_low, ci_high) rather than a trust panel."""
    cols = set(frame.columns)
    return {"arm", "audit_year", "rate", "ci_low", "ci_high"} <= cols and "trust_id" not in cols


def plot_trends(
    panel_by_year: pd.DataFrame,
    *,
    ax: Axes | None = None,
    during_years: Sequence[int] | None = (2010, 2011),
    national: pd.DataFrame | None = None,
    labels: Mapping[str, str] | None = None,
    outcome: str | None = None,
    ci: TrendCI = "cluster",
    cluster: TrendCluster = "pair_id",
    level: float = 0.95,
) -> Axes:
    """Rate by audit year and arm with confidence intervals.

    Draws the pooled rate of each arm (Σ numerator / Σ denominator, in %)
    per audit year with its interval (see :func:`trend_rates` for the
    methods; by default cluster-robust across pairs with a ``t_{G−1}``
    reference), arms dodged slightly apart, the intervention window shaded,
    and optionally a national series.

    Parameters
    ----------
    panel_by_year : pandas.DataFrame
        Trust panel by audit year: ``trust_id, pair_id, arm, audit_year,
        numerator, denominator`` (and ``outcome``); or rates already pooled,
        ``arm, audit_year, rate, ci_low, ci_high`` and no ``trust_id`` (what
        :func:`trend_rates` returns, or the disclosure-controlled rates a run
        saves, :func:`rp2pr_eval.presentation.panels.protected_trends`, where
        a withheld arm-year is NaN and not drawn; ``ci`` and ``cluster`` are
        then ignored).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure when ``None``.
    during_years : sequence of int, optional
        Audit years of the intervention, shaded from the first minus 0.5 to
        the last plus 0.5; ``None`` for no shading.
    national : pandas.DataFrame, optional
        National series with columns ``year, rate`` (proportions), drawn as a
        dashed grey line; rows of other outcomes are dropped when it has an
        ``outcome`` column.
    labels : dict, optional
        Outcome name → label for the y axis.
    outcome : str, optional
        Which outcome to draw when the panel holds several.
    ci : {"cluster", "wilson"}
        Interval method.
    cluster : {"pair_id", "trust_id"}
        Cluster column for ``ci="cluster"``.
    level : float
        Confidence level.

    Returns
    -------
    matplotlib.axes.Axes
    """
    func = "plot_trends"
    check_labels(labels, func=func)
    if _is_rates(panel_by_year):
        data, name = single_outcome(panel_by_year, outcome, name="panel_by_year", func=func)
        check_arms(data, name="panel_by_year", func=func)
        rates = data
    else:
        require_columns(panel_by_year, ["trust_id", "arm", "audit_year", "numerator", "denominator"],
                        name="panel_by_year", func=func)
        data, name = single_outcome(panel_by_year, outcome, name="panel_by_year", func=func)
        rates = trend_rates(data, ci=ci, cluster=cluster, level=level)
    if during_years is not None:
        if isinstance(during_years, (str, bytes)) or not isinstance(during_years, Sequence) or not during_years:
            raise ValueError(f"{func}: during_years={during_years!r} is not valid; expected years such as (2010, 2011) or None")
    national_rows = None
    if national is not None:
        require_columns(national, ["year", "rate"], name="national", func=func)
        national_rows = national
        if "outcome" in national.columns and name is not None:
            national_rows = national.loc[national["outcome"].astype(str) == name]
        national_rows = national_rows.sort_values("year")

    ax = new_axes(ax)
    if during_years is not None:
        ax.axvspan(min(during_years) - 0.5, max(during_years) + 0.5, color=WINDOW_COLOUR, lw=0, zorder=0,
                   gid="intervention-window",
                   label=f"Intervention period ({min(during_years)}\u2013{max(during_years)})")
    if national_rows is not None and not national_rows.empty:
        ax.plot(national_rows["year"].to_numpy(dtype=float), 100 * national_rows["rate"].to_numpy(dtype=float),
                color=NEUTRAL_COLOUR, ls="--", lw=0.9, gid="national", label="National", zorder=1)
    for offset, arm in zip((-_DODGE, _DODGE), ARMS):
        cur = rates.loc[rates["arm"] == arm].sort_values("audit_year")
        if cur.empty:
            continue
        y = 100 * cur["rate"].to_numpy()
        yerr = np.vstack([y - 100 * cur["ci_low"].to_numpy(), 100 * cur["ci_high"].to_numpy() - y])
        ax.errorbar(cur["audit_year"].to_numpy(dtype=float) + offset, y, yerr=yerr, color=ARM_COLOURS[arm],
                    marker=ARM_MARKERS[arm], ms=4, lw=1.0, elinewidth=0.8, capsize=0, gid=f"trend-{arm}",
                    label=ARM_LABELS[arm], zorder=2)
    years = np.sort(rates["audit_year"].unique())
    _year_ticks(ax, years)
    ax.set_xlabel("Audit year (first seen)")
    ax.set_ylabel(f"{outcome_label(name, labels, default='Rate')} (%)")
    # Above the axes, not inside: a legend inside covers the points or their intervals.
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=3 if ax.figure.get_figwidth() > 4 else 1,
              borderaxespad=0.2, handlelength=1.6, columnspacing=1.0)
    return ax


def _year_ticks(ax: Axes, years: np.ndarray, *, every: int = 1) -> None:
    """A tick at every audit year, labelled every ``every`` years (all years when ``every`` is 1)."""
    years = [int(y) for y in years]
    ax.set_xticks(years, labels=[str(y) if (y - years[0]) % every == 0 else "" for y in years])


def plot_trends_grid(
    panels: Mapping[str, pd.DataFrame],
    *,
    labels: Mapping[str, str] | None = None,
    during_years: Sequence[int] | None = (2010, 2011),
    ncols: int | None = None,
    ci: TrendCI = "cluster",
    size: FigureSize = "double",
):
    """Small multiples of :func:`plot_trends`, one panel per outcome; returns the Figure.

    Each panel is titled with the outcome's label (wrapped to the panel's width) and
    has the rate in % on its y axis; the audit years are ticked every year and labelled
    every other year (panels a third of a page wide cannot hold six four-digit years);
    one legend for all panels sits below the grid, where it covers no data. The
    height grows with the number of rows (about 52 mm per row), capped at a page.

    Parameters
    ----------
    panels : mapping of str to pandas.DataFrame
        Outcome name → trust panel by audit year, or the pooled (protected) rates
        that :func:`plot_trends` accepts.
    labels : dict, optional
        Outcome name → panel title.
    during_years : sequence of int, optional
        Intervention years to shade.
    ncols : int, optional
        Panels per row; default 3 for ``size="double"``/``"full"``, 2 for ``"single"``.
    ci : {"cluster", "wilson"}
        Interval method for trust panels.
    size : {"single", "double", "full"}
        Figure width: 85 mm (single) or 170 mm.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import textwrap

    from rp2pr_eval.presentation.figures.canvas import new_figure
    from rp2pr_eval.presentation.figures.style import MAX_HEIGHT_MM, MM_PER_INCH, figure_size

    func = "plot_trends_grid"
    check_option("size", size, FigureSize)
    if not isinstance(panels, Mapping) or not panels:
        raise ValueError(f"{func}: panels must be a non-empty mapping outcome → trust panel by audit year")
    if ncols is None:
        ncols = 2 if size == "single" else 3
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"{func}: ncols={ncols!r} is not valid; expected a positive integer")
    n = len(panels)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    width, _ = figure_size(size)
    height = min(52.0 * nrows + 14.0, MAX_HEIGHT_MM) / MM_PER_INCH
    fig = new_figure(figsize=(width, height))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    chars = max(12, int(width * 72 / ncols / 5.2))       # characters per title line at 8-9 pt
    for ax, (name, panel) in zip(axes.ravel(), panels.items()):
        plot_trends(panel, ax=ax, labels=labels, during_years=during_years, outcome=name, ci=ci)
        ax.get_legend().remove()
        ax.set_title(textwrap.fill(outcome_label(name, labels), chars), fontsize="medium")
        ax.set_ylabel("Rate (%)")
        ax.set_xlabel("")
        ticks = [int(t) for t in ax.get_xticks()]
        _year_ticks(ax, np.asarray(ticks), every=2)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    for row in axes:
        for ax in row[1:]:
            ax.set_ylabel("")
    flat = axes.ravel()
    for i, ax in enumerate(flat[:n]):            # year label under the lowest panel of each column
        if i + ncols >= n:
            ax.set_xlabel("Audit year (first seen)")
    handles, names = flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=2 if size == "single" else len(names),
               handlelength=1.6, columnspacing=1.2)
    return fig
