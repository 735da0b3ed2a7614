"""Results of the power simulation: :class:`PowerResult` (JSON round trip, rendering), the minimum
detectable effect, analytic and interpolated (:func:`mde_analytic`, :func:`interpolate_mde`).

The simulation itself is :func:`rp2pr_eval.inference.power.power_simulation`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from rp2pr_eval.errors import ParameterError
from rp2pr_eval.inference.power_config import check_probability
from rp2pr_eval.results.effect import json_safe, to_native

__all__ = ["POWER_COLUMNS", "SCHEMA", "SCHEMA_VERSION", "SIMULATION_COLUMNS", "MinimumDetectableEffect", "PowerResult",
           "finite_or_none", "frame_dtypes", "interpolate_mde", "mde_analytic"]

#: Columns of :attr:`PowerResult.frame`, in order.
POWER_COLUMNS: tuple[str, ...] = (
    "effect", "risk_difference", "power", "power_mcse", "mean_estimate", "bias", "empirical_se",
    "mean_model_se", "coverage", "n_sims", "n_failed",
)


#: Columns of :attr:`PowerResult.simulations` (one row per simulated trial) and their dtypes.
SIMULATION_COLUMNS: dict[str, str] = {
    "effect_index": "int64", "sim": "int64", "effect": "float64", "risk_difference": "float64",
    "target": "float64", "estimate": "float64", "se": "float64", "df": "float64", "p_value": "float64",
    "ci_low": "float64", "ci_high": "float64", "reject": "float64", "covered": "float64", "error": "str",
}


frame_dtypes = {c: ("int64" if c in ("n_sims", "n_failed") else "float64") for c in POWER_COLUMNS}


SCHEMA = "rp2pr_eval.power"


SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class MinimumDetectableEffect:
    """Minimum detectable effect read off a power curve.

    Attributes
    ----------
    target_power : float
        The power the MDE is defined for (0.8 by default).
    effect : float or None
        Planted effect on the model scale (log odds ratio for binary outcomes,
        log ratio for waiting times) at which the interpolated power reaches
        ``target_power``; ``None`` when the grid does not reach it.
    risk_difference : float or None
        The same point on the true marginal risk-difference scale (interpolated
        between the grid's mean true risk differences); ``None`` when not
        reached or the outcome has no risk difference.
    bracket : tuple of float or None
        The two grid effects between which the curve crosses ``target_power``.
    analytic : float or None
        :func:`mde_analytic` on the estimator's scale from the mean model SE and
        median degrees of freedom at the grid's smallest absolute effect, for
        comparison with ``risk_difference`` (ANCOVA/DiD estimate risk differences).
    note : str
        How the value was obtained, or why it is missing.
    """

    target_power: float
    effect: float | None
    risk_difference: float | None
    bracket: tuple[float, float] | None
    analytic: float | None
    note: str

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["bracket"] = None if self.bracket is None else list(self.bracket)
        return json_safe(to_native(out))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "MinimumDetectableEffect":
        kw = dict(values)
        kw["bracket"] = None if kw.get("bracket") is None else tuple(float(v) for v in kw["bracket"])
        return cls(**kw)


@dataclass(frozen=True, slots=True, eq=False)
class PowerResult:
    """Result of :func:`power_simulation`.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per planted effect (:data:`POWER_COLUMNS`): ``effect`` (model
        scale), ``risk_difference`` (true marginal risk difference among
        post-period intervention patients, mean over trials), ``power``
        (rejection rate at ``alpha``; the size at effect 0), ``power_mcse``
        (√(p(1−p)/n)), ``mean_estimate``, ``bias`` (mean of estimate − truth on
        the estimator's scale), ``empirical_se`` (SD of the estimates),
        ``mean_model_se``, ``coverage`` (of the 1 − alpha intervals),
        ``n_sims`` (analysed trials) and ``n_failed`` (trials whose analysis
        raised a DataError; left out of the other columns).
    mde : MinimumDetectableEffect
        Interpolated minimum detectable effect at ``target_power``.
    simulations : pandas.DataFrame
        One row per simulated trial (:data:`SIMULATION_COLUMNS`).
    outcome, estimator, scale, effect_scale : str
        Outcome, estimator name, scale of the estimates and of the planted effects.
    alpha, target_power : float
    n_sims, seed : int
    vcov, cluster, weights : str or None
        Options of the string estimators (``None`` for a callable estimator).
    common_random_numbers : bool
        Whether trial ``i`` re-used the same random numbers at every planted effect.
    design, simulate_kwargs : dict
        The study design and extra :func:`~rp2pr_eval.simulate_nlca` arguments.
    timing : dict
        Wall and CPU seconds, backend and workers (not part of the result's
        identity: compare ``frame``, ``simulations`` and ``mde``).
    """

    frame: pd.DataFrame = field(repr=False)
    mde: MinimumDetectableEffect
    simulations: pd.DataFrame = field(repr=False)
    outcome: str
    estimator: str
    scale: str
    effect_scale: str
    alpha: float
    target_power: float
    n_sims: int
    seed: int
    vcov: str | None
    cluster: str | None
    weights: str | None
    common_random_numbers: bool
    design: dict = field(repr=False)
    simulate_kwargs: dict = field(repr=False)
    timing: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ conversion
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN → ``None``, tuples → lists); inverse of :meth:`from_dict`."""
        out: dict[str, Any] = {"schema": SCHEMA, "version": SCHEMA_VERSION}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, pd.DataFrame):
                out[name] = frame_to_records(value)
            elif isinstance(value, MinimumDetectableEffect):
                out[name] = value.to_dict()
            else:
                out[name] = json_safe(to_native(value))
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "PowerResult":
        """Rebuild a result written by :meth:`to_dict` (e.g. after a JSON round trip)."""
        if values.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} dict (schema={values.get('schema')!r})")
        kw = {k: v for k, v in values.items() if k not in ("schema", "version")}
        unknown = set(kw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"PowerResult.from_dict: unknown field(s) {sorted(unknown)}")
        kw["frame"] = records_to_frame(kw["frame"], frame_dtypes)
        kw["simulations"] = records_to_frame(kw["simulations"], SIMULATION_COLUMNS)
        kw["mde"] = MinimumDetectableEffect.from_dict(kw["mde"])
        kw["simulate_kwargs"] = restore_tuples(kw.get("simulate_kwargs") or {})
        return cls(**kw)

    # ------------------------------------------------------------------ display
    def summary(self, fmt: str = "text") -> str:
        """The power table with its header and MDE as ``"text"`` or ``"html"`` (returns a string)."""
        return render_power(self, fmt)

    def __repr__(self) -> str:
        return render_power(self, "text")

    def _repr_html_(self) -> str:
        return render_power(self, "html")


def mde_analytic(se, df: float | None = None, alpha: float = 0.05, power: float = 0.8):
    r"""Analytic minimum detectable effect of a two-sided t (or z) test.

    .. math:: \text{MDE} = \left(t_{1-\alpha/2,\,\nu} + t_{\text{power},\,\nu}\right)\, \text{SE}

    the smallest true effect that a two-sided level-``alpha`` test with
    standard error ``SE`` and ``ν`` degrees of freedom rejects with probability
    ``power`` (ignoring the negligible chance of rejecting in the wrong
    direction).  With ``df=None`` (or infinite) the normal quantiles are used:
    for α = 0.05 and 80 % power the familiar 2.80·SE.

    Parameters
    ----------
    se : float or array-like
        Standard error(s) of the estimator under the design, on the scale of
        the effect (e.g. risk difference for ANCOVA of trust proportions).
    df : float, optional
        Degrees of freedom of the reference t distribution (e.g. the CR2
        Satterthwaite df, or G − 1); ``None`` for normal.
    alpha : float
        Two-sided test size.
    power : float
        Target power.

    Returns
    -------
    float or ndarray
        Same shape as ``se``.

    References
    ----------
    Bloom, H. S. (1995). Minimum detectable effects: a simple way to report the
    statistical power of experimental designs. *Evaluation Review* 19(5), 547–556.
    Hemming et al. (2020), *Int J Epidemiol* 49(3), 979–995.
    """
    check_probability("alpha", alpha)
    check_probability("power", power)
    se_a = np.asarray(se, dtype=float)
    if not (np.all(np.isfinite(se_a)) and np.all(se_a >= 0)):
        raise ParameterError(f"se must be finite and non-negative, got {se!r}")
    if df is not None and not (isinstance(df, (int, float, np.integer, np.floating)) and not isinstance(df, bool)
                               and df > 0):
        raise ParameterError(f"df must be a positive number or None, got {df!r}")
    dist = stats.norm if df is None or math.isinf(df) else stats.t(float(df))
    mult = float(dist.ppf(1 - alpha / 2) + dist.ppf(power))
    out = mult * se_a
    return float(out) if out.ndim == 0 else out


def interpolate_mde(effects, power, risk_difference=None, *, target_power: float = 0.8) -> MinimumDetectableEffect:
    """Minimum detectable effect by linear interpolation of a simulated power curve.

    The grid is ordered by effect size in the direction of the effects (all
    effects ≥ 0: increasing; all ≤ 0: decreasing, e.g. shorter waits); with
    effects of both signs only the non-negative side is used (noted).  The MDE
    is the first crossing of ``target_power``: with ``x₀ < x₁`` adjacent grid
    points where power goes from below to at-or-above the target,
    ``MDE = x₀ + (target − p₀)(x₁ − x₀)/(p₁ − p₀)``.  The risk-difference MDE
    interpolates ``risk_difference`` with the same weights.  When even the
    largest effect falls short, the MDE is ``None`` and the note says so; when
    the smallest effect already reaches the target, the MDE is that effect and
    the note says it is an upper bound.

    Parameters
    ----------
    effects, power : sequence of float
        Grid of planted effects and the simulated power at each.
    risk_difference : sequence of float, optional
        True (mean) risk difference at each grid effect.
    target_power : float
        Target power (default 0.8).

    Returns
    -------
    MinimumDetectableEffect
        With ``analytic=None`` (:func:`power_simulation` fills it in).
    """
    check_probability("target_power", target_power)
    x = np.asarray(effects, dtype=float)
    p = np.asarray(power, dtype=float)
    rd = np.full(x.shape, np.nan) if risk_difference is None else np.asarray(risk_difference, dtype=float)
    if x.ndim != 1 or p.shape != x.shape or rd.shape != x.shape or x.size == 0:
        raise ParameterError("effects, power (and risk_difference) must be 1-d sequences of the same, non-zero length")
    if not np.all(np.isfinite(x)):
        raise ParameterError("effects must be finite")
    notes = []
    if np.all(x <= 0) and np.any(x < 0):
        sign = -1.0
    else:
        sign = 1.0
        if np.any(x < 0):
            notes.append("effects of both signs: MDE computed over the non-negative effects")
            keep = x >= 0
            x, p, rd = x[keep], p[keep], rd[keep]
    order = np.argsort(sign * x, kind="stable")
    x, p, rd = x[order], p[order], rd[order]
    ok = np.isfinite(p)
    x, p, rd = x[ok], p[ok], rd[ok]
    if x.size == 0:
        return MinimumDetectableEffect(target_power, None, None, None, None, "no finite power in the grid")
    hit = np.flatnonzero(p >= target_power)
    pct = f"{100 * target_power:g} %"
    if hit.size == 0:
        j = int(np.argmax(p))
        notes.append(f"{pct} power not reached in the grid (highest power {p[j]:.3f} at effect {x[j]:g}); "
                     "extend the grid")
        return MinimumDetectableEffect(target_power, None, None, None, None, "; ".join(notes))
    i = int(hit[0])
    if i == 0:
        notes.append(f"{pct} power already reached at the smallest effect in the grid ({x[0]:g}); "
                     "the MDE is at most this")
        return MinimumDetectableEffect(target_power, float(x[0]), finite_or_none(rd[0]), None, None,
                                       "; ".join(notes))
    frac = (target_power - p[i - 1]) / (p[i] - p[i - 1])
    eff = float(x[i - 1] + frac * (x[i] - x[i - 1]))
    rd_mde = finite_or_none(rd[i - 1] + frac * (rd[i] - rd[i - 1]))
    notes.append(f"linear interpolation of power between effects {x[i - 1]:g} (power {p[i - 1]:.3f}) "
                 f"and {x[i]:g} (power {p[i]:.3f})")
    return MinimumDetectableEffect(target_power, eff, rd_mde, (float(x[i - 1]), float(x[i])), None,
                                   "; ".join(notes))


def finite_or_none(v) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None


def restore_tuples(kwargs: Mapping[str, Any]) -> dict:
    """``volume_clip`` is a tuple in simulate_nlca; JSON made it a list."""
    return {k: tuple(v) if k == "volume_clip" and isinstance(v, list) else v for k, v in kwargs.items()}


def frame_to_records(frame: pd.DataFrame) -> dict:
    return {"columns": list(frame.columns),
            "data": [[json_safe(to_native(v)) for v in row] for row in frame.itertuples(index=False, name=None)]}


def records_to_frame(payload: Mapping[str, Any], dtypes: Mapping[str, str]) -> pd.DataFrame:
    cols = list(payload["columns"])
    frame = pd.DataFrame(payload["data"], columns=cols)
    for c in cols:
        kind = dtypes.get(c)
        if kind == "float64":
            frame[c] = pd.to_numeric(frame[c], errors="raise").astype("float64")
        elif kind is not None:
            frame[c] = frame[c].astype(kind)
    return frame


def render_power(res: PowerResult, fmt: str) -> str:
    """The one renderer behind ``summary``, ``__repr__`` and ``_repr_html_``."""
    if fmt not in ("text", "html"):
        raise ParameterError(f"fmt={fmt!r} is not valid; expected 'text' or 'html'")
    pp = res.scale == "risk_difference"
    f = res.frame
    est_unit = " (pp)" if pp else ""

    def num(v, d=3, mult=1.0):
        return "" if not np.isfinite(v) else f"{v * mult:.{d}f}"

    shown = pd.DataFrame({
        f"effect ({res.effect_scale})": [num(v) for v in f["effect"]],
        "true RD (pp)": [num(v, 2, 100) for v in f["risk_difference"]],
        "power": [num(v) for v in f["power"]],
        "MC SE": [num(v) for v in f["power_mcse"]],
        f"mean est.{est_unit}": [num(v, 2 if pp else 3, 100 if pp else 1) for v in f["mean_estimate"]],
        f"bias{est_unit}": [num(v, 2 if pp else 3, 100 if pp else 1) for v in f["bias"]],
        f"emp. SE{est_unit}": [num(v, 2 if pp else 3, 100 if pp else 1) for v in f["empirical_se"]],
        f"model SE{est_unit}": [num(v, 2 if pp else 3, 100 if pp else 1) for v in f["mean_model_se"]],
        "coverage": [num(v) for v in f["coverage"]],
        "n": [str(int(v)) for v in f["n_sims"]],
        "failed": [str(int(v)) for v in f["n_failed"]],
    })
    opts = (f"vcov {res.vcov}, cluster {res.cluster}, weights {res.weights}" if res.vcov is not None
            else "options of the callable")
    title = (f"Simulated power: {res.outcome}, {res.estimator} ({opts}); two-sided α = {res.alpha:g}; "
             f"{res.n_sims} trials per effect, seed {res.seed}"
             + (", common random numbers" if res.common_random_numbers else ""))
    m = res.mde
    pct = f"{100 * m.target_power:g} %"
    if m.effect is None:
        mde_line = f"MDE at {pct} power: not reached — {m.note}"
    else:
        rd = "" if m.risk_difference is None else f" = {100 * m.risk_difference:.2f} pp risk difference"
        mde_line = f"MDE at {pct} power: {m.effect:.3f} ({res.effect_scale}){rd} — {m.note}"
    if m.analytic is not None:
        mult, unit = (100.0, " pp") if pp else (1.0, "")
        mde_line += f". Analytic MDE: {m.analytic * mult:.2f}{unit}"
    if fmt == "text":
        return f"{title}\n{shown.to_string(index=False)}\n{mde_line}"
    return f"<p><b>{title}</b></p>{shown.to_html(index=False, border=0)}<p>{mde_line}</p>"
