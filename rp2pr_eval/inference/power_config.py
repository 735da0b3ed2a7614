"""Validated configuration of :func:`rp2pr_eval.inference.power.power_simulation` and its task list."""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rp2pr_eval._options import VcovType, WeightsType, check_option
from rp2pr_eval.errors import ParameterError
from rp2pr_eval.study.design import StudyDesign, resolve_design
from rp2pr_eval.study.outcomes import OUTCOMES
from rp2pr_eval.synthetic.generator import simulate_nlca

# Local option aliases (candidates for rp2pr_eval/_options.py).
PowerEstimator = Literal["ancova", "did_aggregate", "did_twfe"]
PowerBackend = Literal["local", "serial", "dask"]
PowerCluster = Literal["pair_id", "trust_id"]

__all__ = ["PowerBackend", "PowerCluster", "PowerConfig", "PowerEstimator", "check_choice", "check_probability", "is_int", "build_tasks", "check_jobs", "cpu_count", "validate_config"]

_RESERVED_SIMULATE = ("seed", "design", "effects")


@dataclass(frozen=True, slots=True)
class PowerConfig:
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


def validate_config(design, outcome, effects, n_sims, estimator, *, seed, alpha, vcov, cluster, weights, target_power,
              common_random_numbers, simulate_kwargs) -> tuple[PowerConfig, tuple[float, ...]]:
    try:
        design = resolve_design(design)
    except TypeError as exc:
        raise ParameterError(f"design: {exc}") from None
    plantable = [n for n, e in OUTCOMES.items() if e.derived_from is None and n != "treated_within_62d"]
    if not isinstance(outcome, str) or outcome not in plantable:
        raise ParameterError(f"outcome={outcome!r} is not a plantable outcome; expected one of {', '.join(plantable)}")
    entry = OUTCOMES[outcome]
    grid = _check_effects(effects)
    if not (is_int(n_sims) and n_sims >= 2):
        raise ParameterError(f"n_sims must be an integer ≥ 2, got {n_sims!r}")
    if not (is_int(seed) and seed >= 0):
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
    check_probability("alpha", alpha)
    check_probability("target_power", target_power)
    if not isinstance(common_random_numbers, bool):
        raise ParameterError(f"common_random_numbers must be True or False, got {common_random_numbers!r}")
    kwargs = _check_simulate_kwargs(simulate_kwargs)
    if callable(estimator) and not isinstance(estimator, str):
        name = callable_name(estimator)
        return PowerConfig(outcome=outcome, estimator=estimator, estimator_name=name, design=design, vcov=None,
                       cluster=None, weights=None, alpha=float(alpha), simulate_kwargs=kwargs,
                       scale="from the estimator", effect_scale=effect_scale(entry)), grid
    check_choice("estimator", estimator, PowerEstimator)
    check_choice("vcov", vcov, VcovType)
    check_choice("cluster", cluster, PowerCluster, allow_none=True)
    check_choice("weights", weights, WeightsType, allow_none=True)
    if entry.kind == "time_to_event":
        raise ParameterError(f"estimator={estimator!r} does not handle the time-to-event outcome {outcome!r}; "
                             "pass a callable estimator such as rp2pr_eval.did_cox")
    scale = "risk_difference" if entry.kind == "binary" else "log_ratio"
    return PowerConfig(outcome=outcome, estimator=estimator, estimator_name=estimator, design=design, vcov=vcov,
                   cluster=cluster, weights=weights, alpha=float(alpha), simulate_kwargs=kwargs, scale=scale,
                   effect_scale=effect_scale(entry)), grid


def effect_scale(entry) -> str:
    return {"binary": "log_odds_ratio", "continuous": "log_ratio", "time_to_event": "log_hazard_ratio"}[entry.kind]


def check_choice(name: str, value, allowed, *, allow_none: bool = False) -> None:
    """:func:`check_option`, re-raised as ParameterError (the message names the option)."""
    try:
        check_option(name, value, allowed, allow_none=allow_none)
    except (ValueError, TypeError) as exc:  # TypeError: unhashable values
        raise ParameterError(str(exc) if isinstance(exc, ValueError) else f"{name}={value!r} is not valid") from None


def check_probability(name: str, value) -> None:
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


def check_jobs(n_jobs) -> None:
    if n_jobs is not None and not (is_int(n_jobs) and n_jobs >= 1):
        raise ParameterError(f"n_jobs must be a positive integer or None (all cores), got {n_jobs!r}")


def is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def callable_name(fn) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__name__", type(fn).__name__)


def cpu_count() -> int:
    from joblib import cpu_count

    return max(1, int(cpu_count()))


def build_tasks(grid, n_sims, seed, crn) -> list[tuple[int, int, float, np.random.SeedSequence]]:
    """(effect index, trial, effect, child seed) in a fixed order; the seed depends only on (index, trial)."""
    root = np.random.SeedSequence(seed)
    if crn:
        children = root.spawn(n_sims)
        return [(e, i, eff, children[i]) for e, eff in enumerate(grid) for i in range(n_sims)]
    per_effect = [c.spawn(n_sims) for c in root.spawn(len(grid))]
    return [(e, i, eff, per_effect[e][i]) for e, eff in enumerate(grid) for i in range(n_sims)]
