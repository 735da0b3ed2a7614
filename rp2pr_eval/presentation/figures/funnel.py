"""Funnel plots of trust rates (Spiegelhalter 2005) with an over-dispersion allowance.

:func:`funnel_limits` gives control limits around a target proportion ``p0``:
exact binomial limits (with Spiegelhalter's interpolation between the discrete
binomial quantiles) when there is no over-dispersion, and additive
random-effects limits ``p0 ± z·sqrt(p0(1−p0)/n + τ²)`` when ``τ² > 0``.
:func:`estimate_tau2` estimates ``τ²`` (and the multiplicative factor ``φ``)
from winsorised z-scores. :func:`plot_funnel` draws one panel per period.
The formulas and references are in ``docs/methods/funnel.md``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from rp2pr_eval._options import check_option
from rp2pr_eval.errors import DataError
from rp2pr_eval.presentation.figures._common import (
    ARMS,
    PERIODS,
    FunnelMethod,
    check_arms,
    check_labels,
    format_number,
    outcome_label,
    require_columns,
    single_outcome,
)
from rp2pr_eval.presentation.figures.style import (
    ARM_COLOURS,
    ARM_LABELS,
    ARM_MARKERS,
    NEUTRAL_COLOUR,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Line style of each default control-limit level.
_LEVEL_STYLES = {0.95: "--", 0.998: "-"}
_BINOMIAL_REFERENCE_COLOUR = "#9A9A9A"


@dataclass(frozen=True, slots=True)
class Overdispersion:
    """Over-dispersion of unit proportions around a target (Spiegelhalter 2005).

    Attributes
    ----------
    tau2 : float
        Additive between-unit variance on the proportion scale (0 when the
        data show no over-dispersion).
    phi : float
        Multiplicative over-dispersion factor: the mean of the squared
        winsorised z-scores (1 expected under the binomial).
    n_units : int
        Number of units (trusts).
    p0 : float
        Target proportion the z-scores were computed around.
    winsorize : float
        Fraction winsorised at each end of the z-scores.
    """

    tau2: float
    phi: float
    n_units: int
    p0: float
    winsorize: float

    @property
    def tau(self) -> float:
        """Between-unit standard deviation on the proportion scale, ``sqrt(tau2)``."""
        return math.sqrt(self.tau2)


def _check_p0(p0: object, *, func: str) -> float:
    if isinstance(p0, bool) or not isinstance(p0, (int, float, np.floating)) or not 0 < float(p0) < 1:
        raise ValueError(f"{func}: p0={p0!r} is not valid; expected a proportion strictly between 0 and 1")
    return float(p0)


def _check_levels(levels: object, *, func: str) -> tuple[float, ...]:
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or len(levels) == 0:
        raise ValueError(f"{func}: levels={levels!r} is not valid; expected a sequence such as (0.95, 0.998)")
    out = []
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0 < level < 1:
            raise ValueError(f"{func}: level {level!r} is not valid; expected a number strictly between 0 and 1")
        out.append(float(level))
    return tuple(out)


def _exact_limit(q: float, n: np.ndarray, p0: float) -> np.ndarray:
    """Spiegelhalter's interpolated binomial quantile ``(r_q − α)/n``, clipped to [0, 1]."""
    r = stats.binom.ppf(q, n, p0)
    cdf_r = stats.binom.cdf(r, n, p0)
    pmf_r = stats.binom.pmf(r, n, p0)  # = F(r) − F(r − 1)
    alpha = (cdf_r - q) / pmf_r
    return np.clip((r - alpha) / n, 0.0, 1.0)


def funnel_limits(
    p0: float,
    n: object,
    *,
    levels: Sequence[float] = (0.95, 0.998),
    tau2: float = 0.0,
    method: FunnelMethod = "exact",
) -> pd.DataFrame:
    """Funnel-plot control limits for a proportion (Spiegelhalter 2005).

    With ``tau2 == 0`` and ``method="exact"``, the limits are the binomial
    quantiles of ``Binomial(n, p0)``, made continuous in ``n`` by
    Spiegelhalter's interpolation: with ``q`` the tail probability
    (``(1 − level)/2`` or ``(1 + level)/2``), ``r_q`` the smallest ``r`` with
    ``F(r) ≥ q`` and ``α = (F(r_q) − q) / (F(r_q) − F(r_q − 1))``, the limit
    is ``(r_q − α) / n``. With ``method="normal"`` they are
    ``p0 ± z·sqrt(p0(1 − p0)/n)``. With ``tau2 > 0`` they are always the
    additive over-dispersion limits ``p0 ± z·sqrt(p0(1 − p0)/n + tau2)``
    (``method`` is then ignored), ``z`` the standard normal
    ``(1 + level)/2`` quantile. Limits are clipped to ``[0, 1]``.

    Parameters
    ----------
    p0 : float
        Target proportion (e.g. the national rate), strictly between 0 and 1.
    n : int or array-like of int
        Denominators (patients). Whole numbers for ``method="exact"``.
    levels : sequence of float
        Two-sided coverage of each pair of limits: 0.95 (≈ 2 SD) and 0.998
        (≈ 3 SD) by default.
    tau2 : float
        Additive between-unit variance on the proportion scale, e.g.
        ``estimate_tau2(...).tau2``.
    method : {"exact", "normal"}
        Binomial limits when ``tau2 == 0``.

    Returns
    -------
    pandas.DataFrame
        One row per level and ``n`` (levels in the order given, ``n`` in input
        order): ``n, level, lower, upper, method, tau2``; ``method`` is the
        method used (``"normal"`` whenever ``tau2 > 0``).

    Raises
    ------
    ValueError
        If ``p0`` is not in (0, 1), ``n`` is not positive (or not whole for
        the exact method), a level is not in (0, 1), ``tau2`` is negative or
        ``method`` is unknown.

    References
    ----------
    Spiegelhalter DJ. Funnel plots for comparing institutional performance.
    Stat Med 2005;24:1185–1202 (appendix A.1.1 for the interpolation).
    """
    func = "funnel_limits"
    p0 = _check_p0(p0, func=func)
    check_option("method", method, FunnelMethod)
    levels = _check_levels(levels, func=func)
    if isinstance(tau2, bool) or not isinstance(tau2, (int, float, np.floating)) or not math.isfinite(tau2) or tau2 < 0:
        hint = " (pass estimate_tau2(...).tau2, not the result object)" if isinstance(tau2, Overdispersion) else ""
        raise ValueError(f"{func}: tau2={tau2!r} is not valid; expected a non-negative number{hint}")
    try:
        n_arr = np.atleast_1d(np.asarray(n, dtype=float))
    except (TypeError, ValueError):
        raise ValueError(f"{func}: n must be a number or array of numbers, got {n!r}") from None
    if n_arr.ndim != 1 or n_arr.size == 0 or not np.all(np.isfinite(n_arr)) or np.any(n_arr <= 0):
        raise ValueError(f"{func}: n must hold positive finite denominators, got {n!r}")
    used = "normal" if tau2 > 0 else method
    if used == "exact" and np.any(n_arr != np.round(n_arr)):
        raise ValueError(f"{func}: method='exact' needs whole-number denominators n")

    frames = []
    for level in levels:
        q_low, q_high = (1 - level) / 2, (1 + level) / 2
        if used == "exact":
            lower, upper = _exact_limit(q_low, n_arr, p0), _exact_limit(q_high, n_arr, p0)
        else:
            half = stats.norm.ppf(q_high) * np.sqrt(p0 * (1 - p0) / n_arr + tau2)
            lower, upper = np.clip(p0 - half, 0.0, 1.0), np.clip(p0 + half, 0.0, 1.0)
        frames.append(
            pd.DataFrame(
                {"n": n_arr, "level": level, "lower": lower, "upper": upper, "method": used, "tau2": float(tau2)}
            )
        )
    return pd.concat(frames, ignore_index=True)


def estimate_tau2(rates: object, ns: object, p0: float, *, winsorize: float = 0.1) -> Overdispersion:
    """Estimate over-dispersion of unit proportions around ``p0`` (Spiegelhalter 2005, 2012).

    z-scores ``z_i = (y_i − p0) / s_i`` with ``s_i = sqrt(p0(1 − p0)/n_i)`` are
    winsorised (values below the ``winsorize`` quantile set to it, above the
    ``1 − winsorize`` quantile likewise; quantiles by linear interpolation).
    Then ``φ = mean(z_w²)`` and, with weights ``w_i = 1/s_i²`` and ``I`` units,
    the DerSimonian–Laird-type moment estimate

    ``τ² = (I·φ − (I − 1)) / (Σw − Σw²/Σw)``, set to 0 when ``I·φ ≤ I − 1``.

    Parameters
    ----------
    rates : array-like of float
        Unit proportions ``y_i`` (numerator / denominator), in [0, 1].
    ns : array-like
        Unit denominators ``n_i`` (> 0), same length as ``rates``.
    p0 : float
        Target proportion, strictly between 0 and 1.
    winsorize : float
        Fraction winsorised at each end, in [0, 0.5); 0.1 as Spiegelhalter
        recommends, 0 for none.

    Returns
    -------
    Overdispersion
        ``tau2``, ``phi``, ``n_units``, ``p0``, ``winsorize``.

    Raises
    ------
    ValueError
        If the inputs have different lengths, fewer than two units, rates
        outside [0, 1], non-positive denominators, or invalid ``p0``/``winsorize``.

    References
    ----------
    Spiegelhalter DJ. Stat Med 2005;24:1185–1202.
    Spiegelhalter DJ, Sherlaw-Johnson C, Bardsley M, et al. Statistical methods
    for healthcare regulation: rating, screening and surveillance.
    J R Stat Soc A 2012;175:1–47.
    """
    func = "estimate_tau2"
    p0 = _check_p0(p0, func=func)
    if isinstance(winsorize, bool) or not isinstance(winsorize, (int, float)) or not 0 <= winsorize < 0.5:
        raise ValueError(f"{func}: winsorize={winsorize!r} is not valid; expected a fraction in [0, 0.5)")
    try:
        y = np.asarray(rates, dtype=float).ravel()
        n = np.asarray(ns, dtype=float).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"{func}: rates and ns must be arrays of numbers") from None
    if y.size != n.size:
        raise ValueError(f"{func}: rates has {y.size} values but ns has {n.size}; expected one per unit")
    if y.size < 2:
        raise ValueError(f"{func}: {y.size} unit(s); expected at least two")
    if not np.all(np.isfinite(y)) or np.any((y < 0) | (y > 1)):
        raise ValueError(f"{func}: rates must be finite proportions in [0, 1]")
    if not np.all(np.isfinite(n)) or np.any(n <= 0):
        raise ValueError(f"{func}: ns must be positive finite denominators")

    s2 = p0 * (1 - p0) / n
    z = (y - p0) / np.sqrt(s2)
    if winsorize > 0:
        low, high = np.quantile(z, [winsorize, 1 - winsorize])
        z = np.clip(z, low, high)
    units = y.size
    phi = float(np.mean(z**2))
    w = 1 / s2
    excess = units * phi - (units - 1)
    tau2 = float(excess / (w.sum() - (w**2).sum() / w.sum())) if excess > 0 else 0.0
    return Overdispersion(tau2=tau2, phi=phi, n_units=int(units), p0=p0, winsorize=float(winsorize))


def _limit_grid(denominators: np.ndarray) -> np.ndarray:
    """Whole-number denominators spanning the data, dense where the funnel bends."""
    low = max(1, int(math.floor(0.8 * denominators.min())))
    high = int(math.ceil(1.1 * denominators.max()))
    return np.unique(np.round(np.geomspace(low, max(high, low + 1), 240)))


def _national_rate(national_rate: object, period: str, *, func: str) -> float | None:
    if national_rate is None:
        return None
    if isinstance(national_rate, Mapping):
        if period not in national_rate:
            raise ValueError(f"{func}: national_rate has no entry for period {period!r}")
        return _check_p0(national_rate[period], func=func)
    return _check_p0(national_rate, func=func)


def plot_funnel(
    panel: pd.DataFrame,
    *,
    periods: Sequence[str] = ("pre", "post"),
    overdispersion: bool = True,
    national_rate: float | Mapping[str, float] | None = None,
    labels: Mapping[str, str] | None = None,
    outcome: str | None = None,
    levels: Sequence[float] = (0.95, 0.998),
    winsorize: float = 0.1,
    rate_column: str | None = None,
    target_column: str | None = None,
) -> Figure:
    """Funnel plot of trust rates against denominators, one panel per period.

    Each panel shows the trusts' rates (``numerator/denominator``, in %) against
    their denominators, coloured and shaped by arm, around the target ``p0``
    with 95% (dashed) and 99.8% (solid) limits. The target is
    ``national_rate`` when given, else the pooled rate of the plotted trusts
    in that period (Σ numerator / Σ denominator).

    With ``overdispersion=True``, ``τ²`` is estimated per panel by
    :func:`estimate_tau2`; when it is positive the main limits are the
    additive over-dispersion limits and the exact binomial limits are kept as
    thin grey dotted lines for comparison (both in the legend); the panel title
    gives ``τ`` (percentage points) and ``φ``. When ``τ² = 0`` only the
    binomial limits are drawn. Each panel also reports how many trusts fall
    outside the outer limits that are drawn as main lines.

    Parameters
    ----------
    panel : pandas.DataFrame
        Trust panel by period: ``trust_id, arm, period, numerator,
        denominator`` (and ``outcome``), one row per trust and period.
    periods : sequence of {"pre", "during", "post"}
        One panel per period, left to right.
    overdispersion : bool
        Estimate ``τ²`` and draw over-dispersion-adjusted limits.
    national_rate : float or dict, optional
        Target proportion, one for all periods or ``{period: rate}``.
    labels : dict, optional
        Outcome name → label for the figure title and y axis.
    outcome : str, optional
        Which outcome to draw when ``panel`` holds several.
    levels : sequence of float
        Two-sided coverages of the limits.
    winsorize : float
        Winsorisation fraction of :func:`estimate_tau2`.
    rate_column : str, optional
        Plot this column (a proportion) instead of ``numerator/denominator``, e.g. the
        ``adjusted_rate`` of :func:`rp2pr_eval.case_mix_adjusted_rates` (see
        :func:`plot_adjusted_funnel`); the limits stay those of a proportion with the row's
        denominator.
    target_column : str, optional
        Take the target ``p0`` of each period from this column (constant within the period) when
        ``national_rate`` is not given.

    Returns
    -------
    matplotlib.figure.Figure
        The figure; its Axes are ``fig.axes`` in the order of ``periods``.

    Raises
    ------
    ValueError
        ``DataError`` for a missing column, unknown arm, duplicated trust,
        or a period absent from the panel; ``ValueError`` for invalid options.
    """
    func = "plot_funnel"
    required = ["trust_id", "arm", "period", "numerator", "denominator"]
    required += [c for c in (rate_column, target_column) if c is not None]
    require_columns(panel, required, name="panel", func=func)
    check_arms(panel, name="panel", func=func)
    check_labels(labels, func=func)
    if isinstance(periods, str) or not isinstance(periods, Sequence) or len(periods) == 0:
        raise ValueError(f"{func}: periods={periods!r} is not valid; expected a sequence such as ('pre', 'post')")
    for period in periods:
        check_option("periods", period, PERIODS)
    levels = _check_levels(levels, func=func)
    data, name = single_outcome(panel, outcome, name="panel", func=func)
    num = data["numerator"].to_numpy(dtype=float)
    den = data["denominator"].to_numpy(dtype=float)
    if np.any(~np.isfinite(den)) or np.any(den <= 0) or np.any(num < 0) or np.any(num > den):
        raise DataError(f"{func}: panel needs 0 <= numerator <= denominator and denominator > 0")
    label = outcome_label(name, labels, default="Rate")

    from matplotlib.lines import Line2D

    from rp2pr_eval.presentation.figures.canvas import new_figure

    fig = new_figure()
    axes = fig.subplots(1, len(periods), sharey=True, squeeze=False)
    axes = axes[0]
    drew_reference = False
    for ax, period in zip(axes, periods):
        rows = data.loc[data["period"].astype(str) == period]
        if rows.empty:
            raise DataError(f"{func}: period {period!r} has no rows in panel")
        dup = rows["trust_id"].duplicated()
        if dup.any():
            raise DataError(
                f"{func}: trust(s) {', '.join(map(str, rows.loc[dup, 'trust_id'].unique()[:5]))} appear "
                f"more than once in period {period!r}; expected one row per trust and period"
            )
        n = rows["denominator"].to_numpy(dtype=float)
        rate = rows["numerator"].to_numpy(dtype=float) / n
        if rate_column is not None:
            rate = rows[rate_column].to_numpy(dtype=float)
            bad = ~np.isfinite(rate) | (rate < 0) | (rate > 1)
            if bad.any():
                raise DataError(f"{func}: column {rate_column!r} must hold proportions in [0, 1]; trust(s) "
                                f"{', '.join(map(str, rows.loc[bad, 'trust_id'].unique()[:5]))} in period {period!r} do not")
        p0 = _national_rate(national_rate, period, func=func)
        if p0 is None and target_column is not None:
            targets = rows[target_column].unique()
            if len(targets) != 1:
                raise DataError(f"{func}: column {target_column!r} must be constant within period {period!r}")
            p0 = _check_p0(float(targets[0]), func=func)
        if p0 is None:
            p0 = float(rows["numerator"].sum() / rows["denominator"].sum())
        od = estimate_tau2(rate, n, p0, winsorize=winsorize) if overdispersion else None
        tau2 = od.tau2 if od is not None else 0.0

        grid = _limit_grid(n)
        binomial = funnel_limits(p0, grid, levels=levels)
        main = funnel_limits(p0, grid, levels=levels, tau2=tau2) if tau2 > 0 else binomial
        kind = "overdispersed" if tau2 > 0 else "binomial"
        for level in levels:
            ls = _LEVEL_STYLES.get(level, "-.")
            cur = main.loc[main["level"] == level]
            for side in ("lower", "upper"):
                ax.plot(grid, 100 * cur[side].to_numpy(), color=NEUTRAL_COLOUR, ls=ls, lw=0.8,
                        gid=f"funnel-{kind}-{side}-{level:g}", zorder=1)
            if tau2 > 0:
                ref = binomial.loc[binomial["level"] == level]
                for side in ("lower", "upper"):
                    ax.plot(grid, 100 * ref[side].to_numpy(), color=_BINOMIAL_REFERENCE_COLOUR, ls=":",
                            lw=0.6, gid=f"funnel-binomial-{side}-{level:g}", zorder=1)
                drew_reference = True
        ax.axhline(100 * p0, color=NEUTRAL_COLOUR, lw=0.6, gid="funnel-target", zorder=1)

        for arm in ARMS:
            sel = (rows["arm"].astype(str) == arm).to_numpy()
            if sel.any():
                ax.scatter(n[sel], 100 * rate[sel], s=14, color=ARM_COLOURS[arm], marker=ARM_MARKERS[arm],
                           edgecolors="white", linewidths=0.3, gid=f"funnel-points-{arm}", zorder=3,
                           label=ARM_LABELS[arm])

        outer = max(levels)
        at_trusts = funnel_limits(p0, n, levels=(outer,), tau2=tau2)
        outside = int(np.sum((rate < at_trusts["lower"].to_numpy()) | (rate > at_trusts["upper"].to_numpy())))
        ax.text(0.98, 0.02, f"Outside {100 * outer:g}% limits: {outside}/{rate.size}", transform=ax.transAxes,
                ha="right", va="bottom", fontsize="small")
        title = period.capitalize()
        if od is not None:
            title += f"\n\u03c4 = {format_number(100 * od.tau, 1)} pp, \u03c6 = {format_number(od.phi, 2)}"
        ax.set_title(title)
        ax.set_xlabel("Patients (denominator)")
    axes[0].set_ylabel(f"{label} (%)")
    fig.suptitle(label)

    handles = [
        Line2D([], [], ls="", marker=ARM_MARKERS[arm], color=ARM_COLOURS[arm], label=ARM_LABELS[arm])
        for arm in ARMS
    ]
    handles.append(Line2D([], [], color=NEUTRAL_COLOUR, lw=0.6, label="Target"))
    suffix = " (\u03c4\u00b2-adjusted where \u03c4 > 0)" if drew_reference else " (binomial)"
    for level in levels:
        handles.append(Line2D([], [], color=NEUTRAL_COLOUR, lw=0.8, ls=_LEVEL_STYLES.get(level, "-."),
                              label=f"{100 * level:g}% limits{suffix}"))
    if drew_reference:
        handles.append(Line2D([], [], color=_BINOMIAL_REFERENCE_COLOUR, lw=0.6, ls=":",
                              label="Binomial limits (no over-dispersion allowance)"))
    # two columns at most: three long entries side by side are wider than a page column
    fig.legend(handles=handles, loc="outside lower center", ncols=2 if fig.get_figwidth() > 4 else 1)
    return fig


def plot_adjusted_funnel(
    rates: object,
    *,
    periods: Sequence[str] = ("pre", "post"),
    overdispersion: bool = True,
    labels: Mapping[str, str] | None = None,
    levels: Sequence[float] = (0.95, 0.998),
    winsorize: float = 0.1,
) -> Figure:
    """Funnel plot of case-mix-adjusted (indirectly standardised) trust rates, one panel per period.

    ``rates`` is what :func:`rp2pr_eval.case_mix_adjusted_rates` returns (or its ``table``). Each
    trust's adjusted rate ``O/E × r_ref`` is drawn against its patients around the national adjusted
    rate of the period, with the limits of a proportion of that denominator, as the National Lung
    Cancer Audit draws them (:func:`plot_funnel` with ``rate_column="adjusted_rate"``); the figure
    computes nothing but the limits. The crude funnel of the same trusts is ``plot_funnel(rates.table)``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    table = getattr(rates, "table", rates)
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"plot_adjusted_funnel: rates must be a CaseMixRates or its table, got {type(rates).__name__}")
    fig = plot_funnel(table, periods=periods, overdispersion=overdispersion, labels=labels, levels=levels,
                      winsorize=winsorize, rate_column="adjusted_rate", target_column="national_adjusted_rate")
    name = str(table["outcome"].iloc[0]) if "outcome" in table.columns and len(table) else None
    label = outcome_label(name, labels, default="Rate")
    fig.axes[0].set_ylabel("Case-mix adjusted rate (%)")
    fig.suptitle(f"{label}, adjusted for case mix")
    return fig
