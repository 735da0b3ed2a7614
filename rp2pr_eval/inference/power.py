"""Simulation-based power and minimum detectable effects for ILCOP-shaped trials.

:func:`power_simulation` simulates whole pair-randomised trials with
:func:`rp2pr_eval.simulate_nlca` at each planted effect of a grid, analyses each
trial with a trust-level estimator (ANCOVA by default) and reports, per planted
effect, the rejection rate of the two-sided test at ``alpha`` (power; the size
at a planted effect of 0) with its Monte Carlo standard error, the mean
estimate, the empirical and mean model standard errors, and the coverage of
the confidence intervals.  The minimum detectable effect (MDE) at the target
power is read off the simulated power curve by linear interpolation
(:func:`interpolate_mde`); :func:`mde_analytic` gives the textbook
``(t_{1-α/2} + t_{power})·SE`` for comparison.

Work is split into independent tasks (one simulated trial each), grouped into
chunks and run serially, on local cores (joblib/loky) or on a
``dask.distributed`` cluster.  Every trial draws from its own child of
``numpy.random.SeedSequence(seed)``, so the result is the same, number for
number, whatever the backend, the number of workers or the chunking.

The method is written out in ``docs/methods/power.md``.

References
----------
Arnold, B. F., Hogan, D. R., Colford, J. M. & Hubbard, A. E. (2011). Simulation
methods to estimate design power: an overview for applied research. *BMC
Medical Research Methodology* 11, 94.
Hemming, K., Kasza, J., Hooper, R., Forbes, A. & Taljaard, M. (2020). A
tutorial on sample size calculation for multiple-period cluster randomized
parallel, cross-over and stepped-wedge trials using the Shiny CRT Calculator.
*International Journal of Epidemiology* 49(3), 979–995.
Morris, T. P., White, I. R. & Crowther, M. J. (2019). Using simulation studies
to evaluate statistical methods. *Statistics in Medicine* 38(11), 2074–2102.
"""
from __future__ import annotations

import functools
import inspect
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from rp2pr_eval._options import VcovType, WeightsType, check_option
from rp2pr_eval.errors import DataError, ParameterError
from rp2pr_eval.estimators.prepare import aggregate_cells
from rp2pr_eval.models.linear import wls
from rp2pr_eval.results.effect import json_safe, to_native
from rp2pr_eval.study.design import StudyDesign, resolve_design
from rp2pr_eval.study.outcomes import OUTCOMES
from rp2pr_eval.synthetic.generator import (
    GeneratorSettings,
    SimulatedTrial,
    pair_labels,
    simulate_arrays,
    simulate_nlca,
    trust_labels,
)

__all__ = [
    "PowerResult",
    "MinimumDetectableEffect",
    "power_simulation",
    "interpolate_mde",
    "mde_analytic",
]

# Local option aliases (candidates for rp2pr_eval/_options.py).
PowerEstimator = Literal["ancova", "did_aggregate", "did_twfe"]
PowerBackend = Literal["local", "serial", "dask"]
PowerCluster = Literal["pair_id", "trust_id"]

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
_FRAME_DTYPES = {c: ("int64" if c in ("n_sims", "n_failed") else "float64") for c in POWER_COLUMNS}
_RESERVED_SIMULATE = ("seed", "design", "effects")
_CAUGHT = (DataError, np.linalg.LinAlgError)  # a trial whose analysis fails is counted, not fatal
SCHEMA = "rp2pr_eval.power"
SCHEMA_VERSION = 1


# --------------------------------------------------------------------------- results
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
                out[name] = _frame_to_records(value)
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
        kw["frame"] = _records_to_frame(kw["frame"], _FRAME_DTYPES)
        kw["simulations"] = _records_to_frame(kw["simulations"], SIMULATION_COLUMNS)
        kw["mde"] = MinimumDetectableEffect.from_dict(kw["mde"])
        kw["simulate_kwargs"] = _restore_tuples(kw.get("simulate_kwargs") or {})
        return cls(**kw)

    # ------------------------------------------------------------------ display
    def summary(self, fmt: str = "text") -> str:
        """The power table with its header and MDE as ``"text"`` or ``"html"`` (returns a string)."""
        return _render(self, fmt)

    def __repr__(self) -> str:
        return _render(self, "text")

    def _repr_html_(self) -> str:
        return _render(self, "html")


# --------------------------------------------------------------------------- analytic MDE
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
    _check_probability("alpha", alpha)
    _check_probability("power", power)
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


# --------------------------------------------------------------------------- MDE from a curve
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
    _check_probability("target_power", target_power)
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
        return MinimumDetectableEffect(target_power, float(x[0]), _finite_or_none(rd[0]), None, None,
                                       "; ".join(notes))
    frac = (target_power - p[i - 1]) / (p[i] - p[i - 1])
    eff = float(x[i - 1] + frac * (x[i] - x[i - 1]))
    rd_mde = _finite_or_none(rd[i - 1] + frac * (rd[i] - rd[i - 1]))
    notes.append(f"linear interpolation of power between effects {x[i - 1]:g} (power {p[i - 1]:.3f}) "
                 f"and {x[i]:g} (power {p[i]:.3f})")
    return MinimumDetectableEffect(target_power, eff, rd_mde, (float(x[i - 1]), float(x[i])), None,
                                   "; ".join(notes))


# --------------------------------------------------------------------------- main entry
def power_simulation(
    design: StudyDesign | None = None,
    outcome: str = "active_treatment",
    effects: Sequence[float] = (0.0, 0.15, 0.3, 0.45),
    n_sims: int = 200,
    estimator: str | Callable = "ancova",
    *,
    seed: int = 1,
    alpha: float = 0.05,
    vcov: str = "CR2",
    cluster: str | None = "pair_id",
    weights: str | None = "denominator",
    target_power: float = 0.8,
    common_random_numbers: bool = True,
    simulate_kwargs: Mapping[str, Any] | None = None,
    backend: str = "local",
    n_jobs: int | None = None,
    client: Any = None,
    chunk_size: int | None = None,
    progress: bool = False,
) -> PowerResult:
    r"""Power of an ILCOP analysis by simulating whole pair-randomised trials.

    Estimand: the probability that the two-sided level-``alpha`` test of the
    intervention effect rejects, as a function of the planted intervention
    effect, for trials of the ILCOP design (40 pairs of trusts, 15 randomised
    to the intervention, pre/during/post audit years) generated by
    :func:`rp2pr_eval.simulate_nlca`.  At a planted effect of 0 it is the
    test's size.  Alongside: the minimum detectable effect at ``target_power``.

    For each planted effect δ in ``effects`` and each trial i = 1..``n_sims``:

    1. simulate a trial, ``simulate_nlca(seed=<child i>, design=design,
       effects={outcome: δ}, **simulate_kwargs)`` — δ is a conditional log odds
       ratio for binary outcomes and a log ratio for
       ``days_referral_to_treatment`` (negative = faster), in the post years
       (ramping up over the during years);
    2. analyse it with ``estimator`` and record the estimate, its SE and df,
       the p-value, the ``1 − alpha`` interval, whether the test rejects
       (p < alpha), and the trial's true marginal risk difference among
       post-period intervention patients (``truth["risk_difference"]``);
    3. summarise per δ: power = rejections / analysed trials with Monte Carlo
       SE √(p(1−p)/n), mean estimate, bias against the truth on the
       estimator's scale (the trial's true risk difference for risk-difference
       estimators, δ for estimators on the planted scale), empirical SE,
       mean model SE and coverage.

    Parameters
    ----------
    design
        Study design (``None``: 2008–09 / 2010–11 / 2012–13, 15 of 40 pairs treated).
    outcome
        Registry name of a plantable outcome (any binary outcome or
        ``days_referral_to_treatment``; ``survival_days`` with a callable estimator).
    effects
        Grid of planted effects on the model scale (distinct, finite).
    n_sims
        Simulated trials per planted effect (≥ 2).
    estimator
        ``"ancova"`` (the primary analysis), ``"did_aggregate"`` or
        ``"did_twfe"`` — fitted through :func:`rp2pr_eval.estimators.did.linear_specs` and
        :func:`~rp2pr_eval.models.linear.wls` with ``vcov``, ``cluster``
        and ``weights`` (the same numbers as :func:`rp2pr_eval.ancova` etc.) —
        or any callable ``(patients, outcome) -> Effect`` (e.g.
        ``functools.partial(rp.did_logistic, covariates=rp.CASE_MIX)``; slower,
        and it carries its own options).  Callables must be picklable for the
        ``"local"`` and ``"dask"`` backends (module-level functions and partials are).
    seed
        Non-negative integer; trial i uses child i of
        ``numpy.random.SeedSequence(seed)``.  Same seed → identical result.
    alpha
        Two-sided test size; intervals are at level ``1 − alpha``.
    vcov, cluster, weights
        Options of the string estimators: ``"CR1"``/``"CR2"``/``"CR3"``;
        ``"pair_id"`` (the randomisation unit), ``"trust_id"`` or ``None``;
        ``"denominator"`` or ``None``.
    target_power
        Power at which the MDE is read off (default 0.8).
    common_random_numbers
        If true (default), trial i re-uses the same random numbers at every
        planted effect (same trusts, pairs, randomisation and uniforms; only
        the planted effect differs), which makes the power curve smooth in δ
        and the MDE more precise.  If false every (δ, i) gets its own child seed.
    simulate_kwargs
        Further keyword arguments of :func:`~rp2pr_eval.simulate_nlca`
        (e.g. ``{"volume_median": 40, "volume_clip": (20, 80)}``); not ``seed``,
        ``design`` or ``effects``.
    backend
        ``"local"`` (joblib/loky processes on this machine, ``n_jobs`` workers,
        default all cores), ``"serial"`` (in this process) or ``"dask"``
        (chunks submitted to a ``dask.distributed`` cluster).
    n_jobs
        Workers for ``"local"`` (default: all cores) and for the
        ``LocalCluster`` started by ``"dask"`` when no ``client`` is given (default 2).
    client
        ``"dask"`` only: a ``distributed.Client`` (left open) or a scheduler
        address string (connected to and closed afterwards).  ``None``: start
        ``LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
        host="127.0.0.1")`` and close it afterwards.
    chunk_size
        Trials per task sent to a worker (default: enough chunks for about four
        per worker, at most 25 trials each).  Does not change the result.
    progress
        Show a tqdm progress bar (per completed chunk).

    Returns
    -------
    PowerResult

    Raises
    ------
    ParameterError
        An invalid option (the message names it).

    Notes
    -----
    A trial whose analysis raises :class:`~rp2pr_eval.DataError` (e.g. an
    outcome with no events in an arm) is counted in ``n_failed`` and left out
    of the summaries; other exceptions propagate.

    String estimators take a fast path: the generator simulates only the
    analysed outcome (with what it depends on, and the pairing indicators at
    baseline) from the same random numbers as :func:`simulate_nlca`, and the
    trial is aggregated from arrays straight to the trust values the
    estimator regresses — no patient frame is assembled or re-validated.  The
    records are those of the public estimator on ``simulate_nlca``'s frame
    for the same seed (tested to 1e-12, failures included).  About 60–70 ms
    of CPU per ILCOP-sized trial; callables receive the full patient table
    (≈ 0.25 s per trial plus the estimator).

    References
    ----------
    Arnold et al. (2011) BMC Med Res Methodol 11:94; Hemming et al. (2020) Int
    J Epidemiol 49:979; Morris, White & Crowther (2019) Stat Med 38:2074.
    """
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    cfg, grid = _validate(design, outcome, effects, n_sims, estimator, seed=seed, alpha=alpha, vcov=vcov,
                          cluster=cluster, weights=weights, target_power=target_power,
                          common_random_numbers=common_random_numbers, simulate_kwargs=simulate_kwargs)
    _check("backend", backend, PowerBackend)
    _check_jobs(n_jobs)
    if chunk_size is not None and not (_is_int(chunk_size) and chunk_size >= 1):
        raise ParameterError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    if not isinstance(progress, bool):
        raise ParameterError(f"progress must be True or False, got {progress!r}")
    if client is not None and backend != "dask":
        raise ParameterError(f"client is only used with backend='dask' (backend={backend!r})")

    tasks = _tasks(grid, n_sims, seed, common_random_numbers)
    if backend == "serial":
        workers = 1
    elif backend == "local":
        workers = _cpu_count() if n_jobs is None else int(n_jobs)
    else:
        workers = 2 if n_jobs is None else int(n_jobs)
    size = chunk_size if chunk_size is not None else max(1, min(25, math.ceil(len(tasks) / (4 * workers))))
    chunks = [tasks[i:i + size] for i in range(0, len(tasks), size)]

    from tqdm.auto import tqdm

    bar = tqdm(total=len(tasks), disable=not progress, desc=f"power {cfg.outcome}/{cfg.estimator_name}",
               unit="trial")
    try:
        if backend == "serial":
            outputs = []
            for chunk in chunks:
                outputs.append(_run_chunk(chunk, cfg))
                bar.update(len(chunk))
        elif backend == "local":
            outputs = _run_local(chunks, cfg, workers, bar)
        else:
            outputs = _run_dask(chunks, cfg, client, workers, bar)
    finally:
        bar.close()

    records = [r for out in outputs for r in out["records"]]
    sims = _simulations_frame(records)
    frame = _summarise(sims, grid)
    mde = _mde(frame, sims, cfg, target_power)
    timing = {
        "backend": backend, "workers": int(workers), "chunks": len(chunks), "chunk_size": int(size),
        "wall_seconds": time.perf_counter() - t_wall,
        "cpu_seconds_main": time.process_time() - t_cpu,
        "cpu_seconds_workers": float(sum(o["cpu_total"] for o in outputs)) if backend != "serial" else 0.0,
        "cpu_seconds_simulate": float(sum(o["cpu_simulate"] for o in outputs)),
        "cpu_seconds_analyse": float(sum(o["cpu_analyse"] for o in outputs)),
    }
    return PowerResult(
        frame=frame, mde=mde, simulations=sims, outcome=cfg.outcome, estimator=cfg.estimator_name,
        scale=cfg.scale, effect_scale=cfg.effect_scale, alpha=float(alpha), target_power=float(target_power),
        n_sims=int(n_sims), seed=int(seed), vcov=cfg.vcov, cluster=cfg.cluster, weights=cfg.weights,
        common_random_numbers=bool(common_random_numbers), design=cfg.design.to_dict(),
        simulate_kwargs=to_native(dict(cfg.simulate_kwargs)), timing=timing,
    )


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True, slots=True)
class _Config:
    """What every worker needs (picklable)."""

    outcome: str
    estimator: str | Callable
    estimator_name: str
    design: StudyDesign
    vcov: str | None
    cluster: str | None
    weights: str | None
    alpha: float
    simulate_kwargs: dict
    scale: str
    effect_scale: str


def _validate(design, outcome, effects, n_sims, estimator, *, seed, alpha, vcov, cluster, weights, target_power,
              common_random_numbers, simulate_kwargs) -> tuple[_Config, tuple[float, ...]]:
    try:
        design = resolve_design(design)
    except TypeError as exc:
        raise ParameterError(f"design: {exc}") from None
    plantable = [n for n, e in OUTCOMES.items() if e.derived_from is None and n != "treated_within_62d"]
    if not isinstance(outcome, str) or outcome not in plantable:
        raise ParameterError(f"outcome={outcome!r} is not a plantable outcome; expected one of {', '.join(plantable)}")
    entry = OUTCOMES[outcome]
    grid = _check_effects(effects)
    if not (_is_int(n_sims) and n_sims >= 2):
        raise ParameterError(f"n_sims must be an integer ≥ 2, got {n_sims!r}")
    if not (_is_int(seed) and seed >= 0):
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
    _check_probability("alpha", alpha)
    _check_probability("target_power", target_power)
    if not isinstance(common_random_numbers, bool):
        raise ParameterError(f"common_random_numbers must be True or False, got {common_random_numbers!r}")
    kwargs = _check_simulate_kwargs(simulate_kwargs)
    if callable(estimator) and not isinstance(estimator, str):
        name = _callable_name(estimator)
        return _Config(outcome=outcome, estimator=estimator, estimator_name=name, design=design, vcov=None,
                       cluster=None, weights=None, alpha=float(alpha), simulate_kwargs=kwargs,
                       scale="from the estimator", effect_scale=_effect_scale(entry)), grid
    _check("estimator", estimator, PowerEstimator)
    _check("vcov", vcov, VcovType)
    _check("cluster", cluster, PowerCluster, allow_none=True)
    _check("weights", weights, WeightsType, allow_none=True)
    if entry.kind == "time_to_event":
        raise ParameterError(f"estimator={estimator!r} does not handle the time-to-event outcome {outcome!r}; "
                             "pass a callable estimator such as rp2pr_eval.did_cox")
    scale = "risk_difference" if entry.kind == "binary" else "log_ratio"
    return _Config(outcome=outcome, estimator=estimator, estimator_name=estimator, design=design, vcov=vcov,
                   cluster=cluster, weights=weights, alpha=float(alpha), simulate_kwargs=kwargs, scale=scale,
                   effect_scale=_effect_scale(entry)), grid


def _effect_scale(entry) -> str:
    return {"binary": "log_odds_ratio", "continuous": "log_ratio", "time_to_event": "log_hazard_ratio"}[entry.kind]


def _check(name: str, value, allowed, *, allow_none: bool = False) -> None:
    """:func:`check_option`, re-raised as ParameterError (the message names the option)."""
    try:
        check_option(name, value, allowed, allow_none=allow_none)
    except (ValueError, TypeError) as exc:  # TypeError: unhashable values
        raise ParameterError(str(exc) if isinstance(exc, ValueError) else f"{name}={value!r} is not valid") from None


def _check_probability(name: str, value) -> None:
    if not (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and 0 < float(value) < 1):
        raise ParameterError(f"{name} must be a number in (0, 1), got {value!r}")


def _check_effects(effects) -> tuple[float, ...]:
    if isinstance(effects, (str, bytes, Mapping)) or not isinstance(effects, (Sequence, np.ndarray)):
        raise ParameterError(f"effects must be a sequence of numbers, got {effects!r}")
    out = []
    for v in effects:
        if not (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                and np.isfinite(v)):
            raise ParameterError(f"effects must hold finite numbers, got {v!r}")
        out.append(float(v))
    if not out:
        raise ParameterError("effects must hold at least one planted effect")
    if len(set(out)) != len(out):
        raise ParameterError(f"effects must be distinct, got {out}")
    return tuple(out)


def _check_simulate_kwargs(simulate_kwargs) -> dict:
    if simulate_kwargs is None:
        return {}
    if not isinstance(simulate_kwargs, Mapping):
        raise ParameterError(f"simulate_kwargs must be a dict or None, got {type(simulate_kwargs).__name__}")
    reserved = [k for k in simulate_kwargs if k in _RESERVED_SIMULATE]
    if reserved:
        raise ParameterError(f"simulate_kwargs must not set {reserved}: power_simulation sets seed, design and effects")
    allowed = [p.name for p in inspect.signature(simulate_nlca).parameters.values()
               if p.kind == inspect.Parameter.KEYWORD_ONLY]
    unknown = [k for k in simulate_kwargs if k not in allowed]
    if unknown:
        raise ParameterError(f"simulate_kwargs: unknown argument(s) {unknown}; simulate_nlca takes {', '.join(allowed)}")
    return dict(simulate_kwargs)


def _check_jobs(n_jobs) -> None:
    if n_jobs is not None and not (_is_int(n_jobs) and n_jobs >= 1):
        raise ParameterError(f"n_jobs must be a positive integer or None (all cores), got {n_jobs!r}")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _callable_name(fn) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__name__", type(fn).__name__)


def _cpu_count() -> int:
    from joblib import cpu_count

    return max(1, int(cpu_count()))


def _tasks(grid, n_sims, seed, crn) -> list[tuple[int, int, float, np.random.SeedSequence]]:
    """(effect index, trial, effect, child seed) in a fixed order; the seed depends only on (index, trial)."""
    root = np.random.SeedSequence(seed)
    if crn:
        children = root.spawn(n_sims)
        return [(e, i, eff, children[i]) for e, eff in enumerate(grid) for i in range(n_sims)]
    per_effect = [c.spawn(n_sims) for c in root.spawn(len(grid))]
    return [(e, i, eff, per_effect[e][i]) for e, eff in enumerate(grid) for i in range(n_sims)]


# --------------------------------------------------------------------------- workers
def _run_chunk(chunk, cfg: _Config) -> dict:
    """Simulate and analyse the trials of one chunk; returns records and CPU seconds.

    String estimators take the fast path: only the analysed outcome (and what
    it depends on) is simulated, with the same random numbers as
    :func:`simulate_nlca`, and aggregated straight to the trust values the
    estimator regresses (:func:`_trial_panel`); callables get the full patient table.
    """
    c0 = time.process_time()
    records, sim_cpu, fit_cpu = [], 0.0, 0.0
    settings = GeneratorSettings(**cfg.simulate_kwargs)
    for e_idx, i, effect, child in chunk:
        s0 = time.process_time()
        rng = np.random.default_rng(child)
        if isinstance(cfg.estimator, str):
            data = simulate_arrays(rng, cfg.design, {cfg.outcome: effect}, settings, outcomes=(cfg.outcome,))
        else:
            data = simulate_nlca(seed=rng, design=cfg.design, effects={cfg.outcome: effect}, **cfg.simulate_kwargs)
        s1 = time.process_time()
        records.append(_analyse(data, e_idx, i, effect, cfg))
        s2 = time.process_time()
        sim_cpu += s1 - s0
        fit_cpu += s2 - s1
    return {"records": records, "cpu_simulate": sim_cpu, "cpu_analyse": fit_cpu,
            "cpu_total": time.process_time() - c0, "pid": os.getpid()}


def _analyse(data: SimulatedTrial | pd.DataFrame, e_idx: int, i: int, effect: float, cfg: _Config) -> dict:
    truth = data.truth if isinstance(data, SimulatedTrial) else (data.attrs.get("truth") or {})
    rd = (truth.get("risk_difference") or {}).get(cfg.outcome)
    rd = float("nan") if rd is None else float(rd)
    rec = {"effect_index": e_idx, "sim": i, "effect": effect, "risk_difference": rd, "target": float("nan"),
           "estimate": float("nan"), "se": float("nan"), "df": float("nan"), "p_value": float("nan"),
           "ci_low": float("nan"), "ci_high": float("nan"), "reject": float("nan"), "covered": float("nan"),
           "error": ""}
    level = 1.0 - cfg.alpha
    try:
        if isinstance(cfg.estimator, str):
            res = _fit_linear(data, cfg, level)
            scale = cfg.scale
        else:
            eff = cfg.estimator(data, cfg.outcome)
            res = _from_effect(eff, level)
            scale = str(getattr(eff, "scale", ""))
    except _CAUGHT as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"[:300]
        return rec
    if scale == "risk_difference":
        target = rd
    elif scale == cfg.effect_scale:
        target = float(effect)
    else:
        target = float("nan")
    rec.update(res)
    rec["target"] = target
    if np.isfinite(res["p_value"]):
        rec["reject"] = float(res["p_value"] < cfg.alpha)
        if np.isfinite(target):
            rec["covered"] = float(res["ci_low"] <= target <= res["ci_high"])
    else:
        rec["error"] = "no finite p-value (zero standard error)"
    return rec


def _fit_linear(data: SimulatedTrial | pd.DataFrame, cfg: _Config, level: float) -> dict:
    """Estimate, SE, df, p and interval of a linear estimator on a simulated trial (arrays) or patient table."""
    from rp2pr_eval.estimators.did import linear_specs, spec_from_panel

    if isinstance(data, SimulatedTrial):
        by = "audit_year" if cfg.estimator == "did_twfe" else "period"
        spec = spec_from_panel(_trial_panel(data, cfg.outcome, by, cfg.design), cfg.outcome, cfg.estimator,
                                design=cfg.design, cluster=cfg.cluster, weights=cfg.weights)
    else:
        spec = linear_specs(data, cfg.outcome, (cfg.estimator,), design=cfg.design,
                            cluster=cfg.cluster, weights=cfg.weights)[cfg.estimator]
    fit = wls(spec.X, spec.y, weights=spec.weights, cluster=spec.cluster, vcov=cfg.vcov, names=spec.names)
    t = fit.t_test(spec.coef_index, level=level)
    return {k: float(t[k]) for k in ("estimate", "se", "df", "p_value", "ci_low", "ci_high")}


def _trial_panel(trial: SimulatedTrial, outcome: str, by: str, design: StudyDesign) -> pd.DataFrame:
    """Trust values of one outcome of a simulated trial, as the estimators aggregate its patient table.

    Eligible patients with a recorded value in the pre and post years, one row
    per trust × ``period`` (``"post"`` before ``"pre"``, text order) or per trust
    × ``audit_year``, sorted by trust: the layout and numbers of
    :func:`rp2pr_eval.estimators.prepare.trust_values` on the assembled frame (tested).

    Raises
    ------
    DataError
        A trust has no eligible patients in the pre or the post years (as the estimators do).
    """
    y = trial.outcomes["y"][outcome]
    years = trial.years
    pre, post = np.isin(years, design.pre_years), np.isin(years, design.post_years)
    ti, yi = trial.trust_idx, trial.year_idx
    keep = ~np.isnan(y) & (pre | post)[yi]
    n_trusts = len(trial.pair_of_trust)
    for name, in_period in (("pre", pre), ("post", post)):
        present = np.bincount(ti[keep & in_period[yi]], minlength=n_trusts) > 0
        if not present.all():
            missing = trust_labels(n_trusts)[~present]
            raise DataError(f"trust(s) {', '.join(missing[:5])} have no eligible {outcome!r} patients in the {name} years")
    if by == "period":
        by_code, by_labels = pre.astype(np.int64)[yi], np.array(["post", "pre"], dtype=object)
    else:
        by_code, by_labels = yi, years.astype(np.int64)
    n_by = len(by_labels)
    cells, _, values = aggregate_cells(ti[keep].astype(np.int64) * n_by + by_code[keep], y[keep],
                                       OUTCOMES[outcome].kind)
    t, b = np.divmod(cells, n_by)
    treated = trial.treated_trust[t]
    frame = pd.DataFrame({
        "trust_id": trust_labels(n_trusts)[t],
        "pair_id": pair_labels(int(trial.pair_of_trust.max()) + 1)[trial.pair_of_trust[t]],
        "arm": np.where(treated, design.intervention_arm, design.control_arm),
        "treated": treated.astype(float),
        by: by_labels[b],
    })
    for name, column in values.items():
        frame[name] = column
    return frame


def _from_effect(eff, level: float) -> dict:
    """Estimate, SE, df and p of an Effect, with the interval recomputed at ``level`` from the same reference."""
    missing = [a for a in ("estimate", "se", "p_value", "df") if not hasattr(eff, a)]
    if missing:
        raise ParameterError(f"estimator must return an Effect; the returned {type(eff).__name__} lacks {missing}")
    est, se = float(eff.estimate), float(eff.se)
    df = float("inf") if eff.df is None else float(eff.df)
    dist = stats.norm if math.isinf(df) else stats.t(df)
    q = float(dist.ppf(0.5 + level / 2))
    return {"estimate": est, "se": se, "df": df, "p_value": float(eff.p_value), "ci_low": est - q * se,
            "ci_high": est + q * se}


# --------------------------------------------------------------------------- backends
def _run_local(chunks, cfg, workers, bar) -> list[dict]:
    from joblib import Parallel, delayed

    n = max(1, min(workers, len(chunks)))
    out = []
    par = Parallel(n_jobs=n, backend="loky", return_as="generator_unordered")
    for res in par(delayed(_run_chunk)(c, cfg) for c in chunks):
        out.append(res)
        bar.update(len(res["records"]))
    return out


def _run_dask(chunks, cfg, client, workers, bar) -> list[dict]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise ParameterError("backend='dask' needs dask.distributed installed") from exc
    own_cluster = own_client = None
    if client is None:
        own_cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None)
        dc = own_client = Client(own_cluster)
    elif isinstance(client, str):
        dc = own_client = Client(client)
    elif isinstance(client, Client):
        dc = client
    else:
        raise ParameterError(f"client must be a distributed.Client, a scheduler address string or None, "
                             f"got {type(client).__name__}")
    futures = []
    try:
        futures = [dc.submit(_run_chunk, c, cfg, pure=False) for c in chunks]
        out = []
        for fut in as_completed(futures):
            res = fut.result()
            out.append(res)
            bar.update(len(res["records"]))
        return out
    finally:
        for fut in futures:
            if not fut.done():
                fut.cancel()
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            own_cluster.close()


# --------------------------------------------------------------------------- summaries
def _simulations_frame(records: list[dict]) -> pd.DataFrame:
    sims = pd.DataFrame.from_records(records, columns=list(SIMULATION_COLUMNS))
    sims = sims.sort_values(["effect_index", "sim"], kind="stable").reset_index(drop=True)
    return sims.astype(SIMULATION_COLUMNS)


def _summarise(sims: pd.DataFrame, grid) -> pd.DataFrame:
    rows = []
    for e_idx, effect in enumerate(grid):
        s = sims[sims["effect_index"] == e_idx]
        ok = s["reject"].notna().to_numpy()
        a = s[ok]
        n = int(ok.sum())
        p = float(a["reject"].mean()) if n else float("nan")
        est = a["estimate"].to_numpy()
        rows.append({
            "effect": float(effect),
            "risk_difference": _nanmean(s["risk_difference"].to_numpy()),
            "power": p,
            "power_mcse": math.sqrt(p * (1 - p) / n) if n else float("nan"),
            "mean_estimate": float(est.mean()) if n else float("nan"),
            "bias": _nanmean(est - a["target"].to_numpy()),
            "empirical_se": float(est.std(ddof=1)) if n > 1 else float("nan"),
            "mean_model_se": float(a["se"].mean()) if n else float("nan"),
            "coverage": _nanmean(a["covered"].to_numpy()),
            "n_sims": n,
            "n_failed": int(len(s) - n),
        })
    return pd.DataFrame(rows, columns=list(POWER_COLUMNS)).astype(_FRAME_DTYPES)


def _mde(frame: pd.DataFrame, sims: pd.DataFrame, cfg: _Config, target_power: float) -> MinimumDetectableEffect:
    m = interpolate_mde(frame["effect"], frame["power"], frame["risk_difference"], target_power=target_power)
    j = int(np.argmin(np.abs(frame["effect"].to_numpy())))
    se = frame["mean_model_se"].iloc[j]
    df = sims.loc[(sims["effect_index"] == j) & sims["reject"].notna(), "df"]
    analytic = None
    if np.isfinite(se) and len(df):
        med = float(np.median(df))
        analytic = mde_analytic(float(se), None if not np.isfinite(med) else med, cfg.alpha, target_power)
    note = m.note
    if analytic is not None:
        note += (f"; analytic (t_(1-α/2) + t_power)·SE on the {cfg.scale} scale with the mean model SE "
                 f"at effect {frame['effect'].iloc[j]:g}")
    return MinimumDetectableEffect(m.target_power, m.effect, m.risk_difference, m.bracket, analytic, note)


def _nanmean(a: np.ndarray) -> float:
    a = np.asarray(a, dtype=float)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else float("nan")


def _finite_or_none(v) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None


# --------------------------------------------------------------------------- JSON helpers
def _restore_tuples(kwargs: Mapping[str, Any]) -> dict:
    """``volume_clip`` is a tuple in simulate_nlca; JSON made it a list."""
    return {k: tuple(v) if k == "volume_clip" and isinstance(v, list) else v for k, v in kwargs.items()}


def _frame_to_records(frame: pd.DataFrame) -> dict:
    return {"columns": list(frame.columns),
            "data": [[json_safe(to_native(v)) for v in row] for row in frame.itertuples(index=False, name=None)]}


def _records_to_frame(payload: Mapping[str, Any], dtypes: Mapping[str, str]) -> pd.DataFrame:
    cols = list(payload["columns"])
    frame = pd.DataFrame(payload["data"], columns=cols)
    for c in cols:
        kind = dtypes.get(c)
        if kind == "float64":
            frame[c] = pd.to_numeric(frame[c], errors="raise").astype("float64")
        elif kind is not None:
            frame[c] = frame[c].astype(kind)
    return frame


# --------------------------------------------------------------------------- rendering
def _render(res: PowerResult, fmt: str) -> str:
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
