r"""Parallel-trends sensitivity of an event study (Rambachan & Roth 2023): the study-level front end.

:func:`parallel_trends_sensitivity` takes a fitted :class:`~rp2pr_eval.results.EventStudy` — its
per-year coefficients *and* their covariance (CR2 by pair by default) — and returns confidence sets
for the target effect under bounds on how far the post-reference violation of parallel trends can
depart from what the pre-period shows, plus the breakdown value of the bound.  The arithmetic is
in :mod:`rp2pr_eval.inference.honest_did`; this module chooses the coefficients, the target and the
defaults, and stores the result so figures and reports redraw it without refitting.

With ILCOP's default design (pre 2008–2009, reference 2009) there is **one** pre-period coefficient
(2008 − 2009): relative magnitudes bound every post-reference year-to-year change of the
differential trend by M̄ times that one change, and smoothness bounds the change in its slope by M
(so M = 0 extrapolates the 2008→2009 line).  One pre-period coefficient says little about the
shape of a violation, which is why these bounds — not the pre-trend test — carry the argument.
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from rp2pr_eval._options import SensitivityMethod, SensitivityRestriction, SmallSample, check_level, check_option
from rp2pr_eval.inference import honest_did
from rp2pr_eval.results.event_study import EventStudy
from rp2pr_eval.results.sensitivity import ParallelTrendsSensitivity

__all__ = ["ParallelTrendsSensitivity", "parallel_trends_sensitivity"]

_DEFAULT_METHOD = {"relative_magnitudes": "C-LF", "smoothness": "FLCI"}
_ALLOWED_METHODS = {"relative_magnitudes": ("C-LF", "conditional"), "smoothness": ("FLCI", "conditional", "C-LF")}


def _event_study_arrays(es: EventStudy) -> tuple[np.ndarray, np.ndarray, list[int], list[int], dict[int, float]]:
    if not isinstance(es, EventStudy):
        raise TypeError(f"event_study_result must be an EventStudy (rp.event_study(...)), got {type(es).__name__}")
    V, vyears = es.covariance()
    by_year = {int(e.details["year"]): e for e in es.effects}
    if sorted(by_year) != sorted(vyears):
        raise ValueError("the EventStudy's covariance years do not match its per-year effects")
    ref = int(es.reference_year)
    pre = sorted(y for y in vyears if y < ref)
    post = sorted(y for y in vyears if y > ref)
    period = dict(zip(es.years, es.periods))
    pre_years = [y for y in es.years if period.get(y) == "pre"]
    if not pre or any(period.get(y) == "pre" for y in post):
        hint = f"reference_year={max(pre_years)}" if pre_years else "a reference year with earlier years"
        raise ValueError(f"reference year {ref} is not the last of two or more pre-period years: the sensitivity "
                         f"needs pre-period coefficients before it; refit the event study with {hint}")
    if not post:
        raise ValueError(f"the event study has no coefficient after its reference year {ref}")
    order = [vyears.index(y) for y in pre + post]
    beta = np.array([by_year[y].estimate for y in pre + post], dtype=float)
    dfs = {y: (math.inf if by_year[y].df is None else float(by_year[y].df)) for y in pre + post}
    return beta, V[np.ix_(order, order)], pre, post, dfs


def _target_weights(target, post: list[int], period: Mapping[int, str]) -> tuple[str, np.ndarray]:
    post_period = [y for y in post if period.get(y) == "post"]
    if isinstance(target, str):
        check_option("target", target, ("average", "first"))
        if not post_period:
            raise ValueError("the event study has no post-period year; name the target year(s) explicitly")
        chosen = {y: 1.0 / len(post_period) for y in post_period} if target == "average" else {post_period[0]: 1.0}
        label = (f"average of {post_period[0]}–{post_period[-1]}" if target == "average" and len(post_period) > 1
                 else f"{next(iter(chosen))}")
    elif isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        chosen, label = {int(target): 1.0}, f"{int(target)}"
    elif isinstance(target, Mapping):
        chosen = {int(k): float(v) for k, v in target.items()}
        label = ", ".join(f"{w:g}×{y}" for y, w in chosen.items())
    else:
        raise ValueError(f"target must be 'average', 'first', a year or a mapping year → weight, got {target!r}")
    bad = sorted(set(chosen) - set(post))
    if bad:
        raise ValueError(f"target year(s) {bad} are not event-study years after the reference year; have {post}")
    if not any(w != 0 for w in chosen.values()) or not all(math.isfinite(w) for w in chosen.values()):
        raise ValueError(f"target weights must be finite and not all zero, got {chosen}")
    return label, np.array([chosen.get(y, 0.0) for y in post], dtype=float)


def _default_m(restriction: str, beta: np.ndarray, sigma: np.ndarray, n_pre: int, alpha: float) -> np.ndarray:
    if restriction == "relative_magnitudes":
        return np.linspace(0.0, 2.0, 9)
    if n_pre == 1:
        upper = math.sqrt(sigma[0, 0])
    else:   # HonestDiD's DeltaSD_upperBound_Mpre: one-sided bound on the largest pre-period second difference
        A = _pre_second_differences(n_pre)
        d = A @ beta[:n_pre]
        se = np.sqrt(np.einsum("ij,jk,ik->i", A, sigma[:n_pre, :n_pre], A))
        upper = float(np.max(np.abs(d) + stats.norm.ppf(1 - alpha) * se))
    return np.linspace(0.0, upper, 9)


def _pre_second_differences(n_pre: int) -> np.ndarray:
    """Second differences among δ_{-K}, …, δ_{-1}, δ_0 = 0 (the last involves the reference)."""
    rows = []
    for r in range(n_pre - 1):
        row = np.zeros(n_pre + 1)
        row[r:r + 3] = (1.0, -2.0, 1.0)
        rows.append(row[:n_pre])
    return np.array(rows)


def parallel_trends_sensitivity(
    event_study_result: EventStudy,
    restriction: str = "relative_magnitudes",
    m: Sequence[float] | None = None,
    level: float = 0.95,
    *,
    target: str | int | Mapping[int, float] = "average",
    method: str | None = None,
    small_sample: str = "t",
    breakdown: bool = True,
    grid_points: int = 1000,
    n_sims: int = 1000,
    seed: int | None = 0,
) -> ParallelTrendsSensitivity:
    r"""Confidence sets for the intervention effect when parallel trends may fail (Rambachan & Roth 2023).

    Estimand: :math:`\theta = \sum_y w_y \tau_y`, the target combination of post-reference effects
    (default: the average of the design's post years, 2012–2013), with the event-study coefficient
    of year *y* equal to :math:`\tau_y + \delta_y` where :math:`\delta` is the differential trend
    (the violation of parallel trends; :math:`\delta_{ref} = 0`).  Under

    * ``restriction="relative_magnitudes"``: :math:`|\delta_{y} - \delta_{y-1}| \le \bar M \max_{pre}
      |\delta_s - \delta_{s-1}|` for every post-reference year (M̄ = 1: no bigger than the worst
      pre-period change);
    * ``restriction="smoothness"``: :math:`|(\delta_{y+1} - \delta_y) - (\delta_y - \delta_{y-1})| \le M`
      (M = 0: the pre-period linear trend continues; M is on the estimates' scale, e.g. 0.01 =
      one percentage point per year per year for a risk difference),

    the returned sets cover θ with probability ≥ ``level`` (uniformly, asymptotically).  Methods:
    ``"C-LF"`` (default for relative magnitudes) and ``"conditional"`` — the conditional(-least-
    favourable hybrid) moment-inequality tests of Andrews, Roth & Pakes inverted over a grid;
    ``"FLCI"`` (default for smoothness) — the optimal fixed-length interval.  See
    :mod:`rp2pr_eval.inference.honest_did` and ``docs/methods/sensitivity.md``.

    Parameters
    ----------
    event_study_result
        :func:`rp2pr_eval.event_study` result; it must hold the covariance matrix (``vcov``), and its
        reference year must be the last pre-period year.  Pre-period coefficients are the years
        before it, "post" coefficients every year after it (during and post years).
    restriction
        ``"relative_magnitudes"`` or ``"smoothness"``.
    m
        Bounds to report (M̄ or M, non-negative).  Default: M̄ = 0, 0.25, …, 2; M from 0 to
        HonestDiD's default upper value (the SE of the 2008 coefficient with one pre-period
        coefficient), 9 values.
    level
        Confidence level of the sets (and of the breakdown value).
    target
        ``"average"`` (the post years of the design, equally weighted), ``"first"`` (the first
        post year), a year, or a mapping year → weight.
    method
        ``None`` (the paper's recommendation above), ``"C-LF"``, ``"conditional"`` or ``"FLCI"``
        (smoothness only).
    small_sample
        ``"t"`` (default): the covariance is multiplied by :math:`(t_{1-\alpha/2,\nu}/z_{1-\alpha/2})^2`,
        ν the smallest Satterthwaite df of the event-study coefficients, so that at M = 0 the
        Wald interval equals the event study's own CR2 t interval — a conservative approximation
        for 40 pairs (HonestDiD assumes normality).  ``"normal"``: HonestDiD's convention.
    breakdown
        Also search the breakdown value (bisection on the bound, relative precision 1e-4).
    grid_points, n_sims, seed
        Test-inversion grid size (endpoints are then refined by bisection), simulation draws
        and seed of the least-favourable critical value (``"C-LF"``; the same draws for every
        bound, so the family of sets is smooth in the bound).

    Returns
    -------
    ParallelTrendsSensitivity
        ``to_frame()``: one row per bound (``m, ci_low, ci_high, includes_zero, …``);
        ``breakdown``; ``to_dict()``/``from_dict()`` round-trip through JSON.

    References
    ----------
    Rambachan & Roth (2023) Rev Econ Stud 90:2555; Andrews, Roth & Pakes (2023) Rev Econ Stud 90:2763.
    R: ``HonestDiD::createSensitivityResults_relativeMagnitudes(betahat, sigma, numPrePeriods,
    numPostPeriods, Mbarvec, l_vec)`` and ``HonestDiD::createSensitivityResults(..., Mvec)``;
    Stata: ``honestdid, pre() post() mvec()``.
    """
    start = time.perf_counter()
    check_option("restriction", restriction, SensitivityRestriction)
    check_level(level)
    check_option("small_sample", small_sample, SmallSample)
    method = _DEFAULT_METHOD[restriction] if method is None else method
    check_option("method", method, SensitivityMethod)
    if method not in _ALLOWED_METHODS[restriction]:
        raise ValueError(f"method={method!r} is not available for restriction={restriction!r}; "
                         f"expected one of {', '.join(map(repr, _ALLOWED_METHODS[restriction]))}")
    for name, value, low in (("grid_points", grid_points, 10), ("n_sims", n_sims, 100)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer ≥ {low}, got {value!r}")
    if not isinstance(breakdown, bool):
        raise ValueError(f"breakdown must be True or False, got {breakdown!r}")
    beta, sigma, pre, post, dfs = _event_study_arrays(event_study_result)
    period = dict(zip(event_study_result.years, event_study_result.periods))
    label, l_vec = _target_weights(target, post, period)
    alpha = 1.0 - level
    z = stats.norm.ppf(1 - alpha / 2)
    df = min(dfs.values())
    if small_sample == "t" and math.isfinite(df):
        inflation = float((stats.t.ppf(1 - alpha / 2, df) / z) ** 2)
    else:
        inflation, df = 1.0, (None if not math.isfinite(df) else df)
    sigma = sigma * inflation
    n_pre = len(pre)
    if m is None:
        bounds = _default_m(restriction, beta, sigma, n_pre, alpha)
    else:
        bounds = np.atleast_1d(np.asarray(m, dtype=float))
        if bounds.ndim != 1 or len(bounds) == 0 or not np.all(np.isfinite(bounds)) or np.any(bounds < 0):
            raise ValueError(f"m must be a non-empty list of non-negative finite numbers, got {m!r}")
    estimate = float(l_vec @ beta[n_pre:])
    se = float(math.sqrt(l_vec @ sigma[n_pre:, n_pre:] @ l_vec))
    common = dict(restriction=restriction, method=method, alpha=alpha)
    sets = [honest_did.honest_interval(beta, sigma, n_pre, l_vec, m=float(b), grid_points=int(grid_points),
                                       n_sims=int(n_sims), seed=seed, **common) for b in bounds]
    if breakdown:
        def includes_zero(b: float) -> bool:
            return honest_did.contains_zero(beta, sigma, n_pre, l_vec, m=b, n_sims=int(n_sims), seed=seed, **common)

        start_bound = 1.0 if restriction == "relative_magnitudes" else max(se, 1e-12)
        breakdown_value = honest_did.breakdown_value(includes_zero, start=start_bound)
    else:
        breakdown_value = float("nan")
    details = {"dual_vertices": sorted({s.details.get("dual_vertices", "") for s in sets} - {""}),
               "event_study_pretrend_p": float(event_study_result.pretrend_p)}
    if method == "FLCI":
        details["flci_weights"] = {f"{s.m:g}": s.details["weights"] for s in sets}
    scale = event_study_result.effects[0].scale if event_study_result.effects else ""
    return ParallelTrendsSensitivity(
        outcome=event_study_result.outcome, restriction=restriction, method=method, target=label,
        target_years=tuple(post), target_weights=tuple(float(w) for w in l_vec),
        reference_year=int(event_study_result.reference_year), pre_years=tuple(pre), post_years=tuple(post),
        level=float(level), m=tuple(float(b) for b in bounds), ci_low=tuple(float(s.ci_low) for s in sets),
        ci_high=tuple(float(s.ci_high) for s in sets), open_ended=tuple(bool(s.open_ended) for s in sets),
        breakdown=float(breakdown_value), estimate=estimate, se=se,
        original_ci_low=estimate - z * se, original_ci_high=estimate + z * se, scale=scale,
        small_sample=small_sample, variance_inflation=inflation, df=df, n_sims=int(n_sims), seed=seed,
        grid_points=int(grid_points), seconds=time.perf_counter() - start, details=details,
    )
