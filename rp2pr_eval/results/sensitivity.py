"""Saved results of the referee's checks: parallel-trends sensitivity sets and everything one outcome's checks produced.

:class:`ParallelTrendsSensitivity` is the frozen result of
:func:`rp2pr_eval.parallel_trends_sensitivity` (it lives here, with the other result types, so that
figures and the results folder read it without the inference layer).  :class:`SensitivityChecks`
gathers one outcome's checks — the sensitivity sets under both restrictions, the two
effect-modification Effects, the leave-one-pair-out frame, the placebo results and what was skipped
and why — as :func:`rp2pr_eval.pipeline.referee.add_referee_checks` builds them; it round-trips
through JSON (:meth:`SensitivityChecks.to_dict` / :meth:`SensitivityChecks.from_dict`) inside
``<outcome>.extras.json`` (:class:`~rp2pr_eval.results.outcome.OutcomeAnalysis`), so figures and
the summary table are redrawn without refitting.  Nothing here fits a model.  See
``docs/methods/sensitivity.md``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rp2pr_eval.results.effect import Effect, json_safe, to_native

__all__ = ["CHECKS", "ParallelTrendsSensitivity", "SensitivityChecks"]

_BOUND_NAME = {"relative_magnitudes": "M̄", "smoothness": "M"}
#: The referee's checks of one outcome, in report order.
CHECKS: tuple[str, ...] = ("parallel_trends", "effect_modification", "leave_one_pair_out", "placebo_in_time",
                           "placebo_outcome")
#: Restrictions of the parallel-trends sensitivity, in report order.
RESTRICTIONS: tuple[str, ...] = ("relative_magnitudes", "smoothness")
_EFFECT_MODIFICATION = ("effect_modification_interaction", "effect_modification_within_pair")


def _float(x) -> float:
    return float("nan") if x is None else float(x)


@dataclass(frozen=True, slots=True)
class ParallelTrendsSensitivity:
    """Robust confidence sets for one target under a family of bounds, and the breakdown value.

    ``m`` are the bounds (M̄ for relative magnitudes, M for smoothness, the latter on the scale of
    the estimates, e.g. a proportion); ``ci_low``/``ci_high`` the hull of each set (NaN when
    empty); ``breakdown`` the smallest bound at which the ``level`` set includes 0 (0 when it does
    under exact parallel trends, ``inf`` when no bound up to the search limit makes it so).
    ``estimate``/``original_ci_*`` are the target's event-study estimate and its Wald interval.
    """

    outcome: str
    restriction: str
    method: str
    target: str
    target_years: tuple[int, ...]
    target_weights: tuple[float, ...]
    reference_year: int
    pre_years: tuple[int, ...]
    post_years: tuple[int, ...]
    level: float
    m: tuple[float, ...]
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    open_ended: tuple[bool, ...]
    breakdown: float
    estimate: float
    se: float
    original_ci_low: float
    original_ci_high: float
    scale: str
    small_sample: str
    variance_inflation: float
    df: float | None
    n_sims: int
    seed: int | None
    grid_points: int
    seconds: float = field(default=float("nan"), compare=False)
    details: dict = field(default_factory=dict, compare=False)

    @property
    def bound_name(self) -> str:
        """``"M̄"`` (relative magnitudes) or ``"M"`` (smoothness)."""
        return _BOUND_NAME[self.restriction]

    def to_frame(self) -> pd.DataFrame:
        """One row per bound: ``m, ci_low, ci_high, includes_zero, open_ended, method, restriction, target, outcome``."""
        lo, hi = np.array(self.ci_low, dtype=float), np.array(self.ci_high, dtype=float)
        return pd.DataFrame({
            "m": np.array(self.m, dtype=float), "ci_low": lo, "ci_high": hi,
            "includes_zero": (lo <= 0) & (hi >= 0), "open_ended": np.array(self.open_ended, dtype=bool),
            "method": self.method, "restriction": self.restriction, "target": self.target, "outcome": self.outcome,
        })

    def to_dict(self) -> dict:
        """JSON-safe dict (NaN → None; an infinite breakdown → ``"inf"``)."""
        out = {name: to_native(getattr(self, name)) for name in self.__slots__}
        out["breakdown"] = "inf" if math.isinf(self.breakdown) else self.breakdown
        return json_safe(out)

    @classmethod
    def from_dict(cls, d: Mapping) -> "ParallelTrendsSensitivity":
        d = dict(d)
        for key in ("target_years", "pre_years", "post_years"):
            d[key] = tuple(int(v) for v in d[key])
        for key in ("target_weights", "m", "ci_low", "ci_high"):
            d[key] = tuple(_float(v) for v in d[key])
        d["open_ended"] = tuple(bool(v) for v in d["open_ended"])
        d["breakdown"] = math.inf if d["breakdown"] == "inf" else _float(d["breakdown"])
        for key in ("estimate", "se", "original_ci_low", "original_ci_high", "variance_inflation", "level", "seconds"):
            d[key] = _float(d.get(key))
        d["df"] = None if d.get("df") is None else float(d["df"])
        return cls(**d)

    def summary(self) -> str:
        """Plain-text table (no formatting inside the frame)."""
        head = (f"parallel-trends sensitivity: {self.outcome}, {self.target}; {self.restriction} ({self.method}), "
                f"{self.level:.0%} sets; breakdown {self.bound_name} = "
                f"{'none found' if math.isinf(self.breakdown) else f'{self.breakdown:.4g}'}; original "
                f"[{self.original_ci_low:.4g}, {self.original_ci_high:.4g}]")
        return head + "\n" + self.to_frame()[["m", "ci_low", "ci_high", "includes_zero"]].to_string(index=False)

    def __repr__(self) -> str:
        return self.summary()


@dataclass(frozen=True, eq=False)
class SensitivityChecks:
    """The referee's checks of one outcome (see :func:`rp2pr_eval.pipeline.referee.add_referee_checks`).

    Attributes
    ----------
    outcome : str
        Registry name.
    scale : str
        Scale of the primary estimates (``risk_difference``: shown in percentage points).
    parallel_trends : mapping of str to ParallelTrendsSensitivity
        The event study's sensitivity sets by restriction (``"relative_magnitudes"``, ``"smoothness"``).
    effect_modification : tuple of Effect
        ``(interaction, within_pair)`` of :func:`rp2pr_eval.effect_modification`; the interaction
        Effect is saved without its per-trust points (they are in ``baseline_points``).
    baseline_points : pandas.DataFrame or None
        Per trust: ``trust_id, pair_id, arm, baseline, post, change, low_in_pair, withheld`` — what the
        effect-modification figure draws, with the rates of trusts whose pre- or post-period counts
        are small withheld (NaN, ``withheld`` True) under the design's disclosure policy.
    leave_one_pair_out : pandas.DataFrame or None
        :func:`rp2pr_eval.leave_one_pair_out` (model estimates, one row per pair), without timings.
    placebo_in_time, placebo_outcome : Effect or None
        :func:`rp2pr_eval.placebo_in_time`; :func:`rp2pr_eval.placebo_outcome` when the outcome is
        one the run names as unaffected (``sensitivity.placebo_outcomes`` in ``run.yaml``).
    skipped : mapping of str to str
        Checks not run, and why (does not apply, not estimable, not requested).
    settings : mapping
        What the checks ran with (draws, bounds, estimator), JSON-native.
    timings : mapping of str to float
        Seconds per check (not saved: results must reproduce to the byte; the runner keeps them in
        the manifest).
    """

    outcome: str
    scale: str = "risk_difference"
    parallel_trends: Mapping[str, ParallelTrendsSensitivity] = field(default_factory=dict)
    effect_modification: tuple[Effect, ...] = ()
    baseline_points: pd.DataFrame | None = None
    leave_one_pair_out: pd.DataFrame | None = None
    placebo_in_time: Effect | None = None
    placebo_outcome: Effect | None = None
    skipped: Mapping[str, str] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)

    # ------------------------------------------------------------ access
    def effect_modification_effect(self, which: str = "interaction") -> Effect | None:
        """The ``"interaction"`` or ``"within_pair"`` Effect (``None`` when not run)."""
        name = f"effect_modification_{which}"
        if name not in _EFFECT_MODIFICATION:
            raise ValueError(f"which={which!r} is not valid; expected one of 'interaction', 'within_pair'")
        return next((e for e in self.effect_modification if e.estimator == name), None)

    def interaction_with_points(self) -> Effect | None:
        """The interaction Effect with the (disclosure-controlled, shown) per-trust points the figure draws."""
        effect = self.effect_modification_effect("interaction")
        if effect is None or self.baseline_points is None:
            return effect
        pts = self.baseline_points
        shown = pts[~pts["withheld"].astype(bool)] if "withheld" in pts.columns else pts
        return effect.with_details(points=shown.drop(columns=["withheld"], errors="ignore").to_dict(orient="records"),
                                   points_withheld=int(len(pts) - len(shown)))

    def leave_one_pair_out_summary(self, n_largest: int = 3) -> dict[str, Any] | None:
        """Range of the leave-one-pair-out estimates and the pairs whose removal shifts the estimate most.

        Keys: ``min, max`` (estimates), ``min_pair, max_pair``, ``full_estimate``, ``jackknife_se``,
        ``largest`` (list of ``(pair_id, shift)``, largest |shift| first), ``estimator``.
        """
        frame = self.leave_one_pair_out
        if frame is None or not len(frame):
            return None
        order = frame["shift"].abs().sort_values(ascending=False, kind="mergesort").index
        lo, hi = frame["estimate"].idxmin(), frame["estimate"].idxmax()
        return {"min": float(frame.loc[lo, "estimate"]), "max": float(frame.loc[hi, "estimate"]),
                "min_pair": str(frame.loc[lo, "pair_id"]), "max_pair": str(frame.loc[hi, "pair_id"]),
                "full_estimate": float(frame["full_estimate"].iloc[0]),
                "jackknife_se": float(frame["jackknife_se"].iloc[0]),
                "largest": [(str(frame.loc[i, "pair_id"]), float(frame.loc[i, "shift"])) for i in order[:n_largest]],
                "estimator": str(frame["estimator"].iloc[0])}

    def show(self, name: str):
        """One check for a notebook: the sensitivity sets, an Effect, a sentence, or why it was not run.

        ``name``: ``"parallel_trends_relative_magnitudes"``, ``"parallel_trends_smoothness"``,
        ``"effect_modification_interaction"``, ``"effect_modification_within_pair"``,
        ``"leave_one_pair_out"``, ``"placebo_in_time"`` or ``"placebo_outcome"``.
        """
        valid = ([f"parallel_trends_{r}" for r in RESTRICTIONS] + list(_EFFECT_MODIFICATION)
                 + ["leave_one_pair_out", "placebo_in_time", "placebo_outcome"])
        if name not in valid:
            raise ValueError(f"{name!r} is not a referee check; expected one of {', '.join(valid)}")
        found: Any = None
        if name.startswith("parallel_trends_"):
            found = self.parallel_trends.get(name.removeprefix("parallel_trends_"))
            check = "parallel_trends"
        elif name in _EFFECT_MODIFICATION:
            found = self.effect_modification_effect(name.removeprefix("effect_modification_"))
            check = "effect_modification"
        elif name == "leave_one_pair_out":
            s = self.leave_one_pair_out_summary()
            check = name
            if s is not None:
                found = _markdown(_lopo_sentence(self.outcome, s, self.scale))
        else:
            found, check = getattr(self, name), name
        if found is not None:
            return found
        reason = self.skipped.get(check, "not requested")
        return _markdown(f"*{name}: {reason}.*")

    # ------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the model output (the per-trust ``baseline_points`` and ``timings`` are not in it)."""
        lopo = None
        if self.leave_one_pair_out is not None:
            lopo = _records(self.leave_one_pair_out.drop(columns=["seconds"], errors="ignore"))
        em = []
        for e in self.effect_modification:
            details = {k: v for k, v in e.details.items() if k not in ("points", "points_withheld")}
            em.append(Effect.from_dict({**e.to_dict(), "details": details}).to_dict())
        out = {
            "outcome": self.outcome, "scale": self.scale,
            "parallel_trends": {r: _without_seconds(s) for r, s in self.parallel_trends.items()},
            "effect_modification": em,
            "leave_one_pair_out": lopo,
            "placebo_in_time": None if self.placebo_in_time is None else self.placebo_in_time.to_dict(),
            "placebo_outcome": None if self.placebo_outcome is None else self.placebo_outcome.to_dict(),
            "skipped": dict(self.skipped),
            "settings": dict(self.settings),
        }
        return json_safe(to_native(out))

    def points_records(self) -> list[dict] | None:
        """``baseline_points`` as JSON-safe records (saved apart from the model output: they are audited)."""
        return None if self.baseline_points is None else json_safe(to_native(_records(self.baseline_points)))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], points: list[dict] | None = None) -> "SensitivityChecks":
        """Inverse of :meth:`to_dict` (with :meth:`points_records` as ``points``)."""
        if not isinstance(d, Mapping) or "outcome" not in d:
            raise ValueError("SensitivityChecks.from_dict: expected the dict of SensitivityChecks.to_dict()")
        lopo = d.get("leave_one_pair_out")
        return cls(
            outcome=str(d["outcome"]), scale=str(d.get("scale", "risk_difference")),
            parallel_trends={r: ParallelTrendsSensitivity.from_dict(s) for r, s in (d.get("parallel_trends") or {}).items()},
            effect_modification=tuple(Effect.from_dict(e) for e in d.get("effect_modification") or ()),
            baseline_points=None if points is None else _points_frame(points),
            leave_one_pair_out=None if lopo is None else _ordered(pd.DataFrame(lopo), LOPO_COLUMNS),
            placebo_in_time=None if d.get("placebo_in_time") is None else Effect.from_dict(d["placebo_in_time"]),
            placebo_outcome=None if d.get("placebo_outcome") is None else Effect.from_dict(d["placebo_outcome"]),
            skipped=dict(d.get("skipped") or {}), settings=dict(d.get("settings") or {}),
        )


def _without_seconds(result: ParallelTrendsSensitivity) -> dict:
    d = result.to_dict()
    d["seconds"] = None          # a timing, not a result: saved results reproduce to the byte
    return d


def _records(frame: pd.DataFrame) -> list[dict]:
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype) or out[col].dtype == object or \
                pd.api.types.is_string_dtype(out[col].dtype):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out.to_dict(orient="records")


_FLOAT_COLUMNS = ("estimate", "se", "ci_low", "ci_high", "p_value", "shift", "shift_in_se", "full_estimate",
                  "full_se", "full_ci_low", "full_ci_high", "jackknife_se", "baseline", "post", "change")


def _float_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """JSON ``null`` back to NaN in the numeric columns."""
    for col in _FLOAT_COLUMNS:
        if col in frame.columns:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    return frame


#: Columns of ``baseline_points`` and of the saved leave-one-pair-out frame, in order (JSON keys are saved sorted).
POINT_COLUMNS = ("trust_id", "pair_id", "arm", "baseline", "post", "change", "low_in_pair", "withheld")
LOPO_COLUMNS = ("pair_id", "arm", "estimate", "se", "ci_low", "ci_high", "p_value", "shift", "shift_in_se", "rank",
                "full_estimate", "full_se", "full_ci_low", "full_ci_high", "jackknife_se", "outcome", "estimator")


def _ordered(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    return _float_frame(frame[[c for c in columns if c in frame.columns] + [c for c in frame.columns if c not in columns]])


def _points_frame(points: list[dict]) -> pd.DataFrame:
    frame = _ordered(pd.DataFrame(list(points)), POINT_COLUMNS)
    for col in ("low_in_pair", "withheld"):
        if col in frame.columns:
            frame[col] = frame[col].astype(bool)
    return frame


def _lopo_sentence(outcome: str, s: Mapping[str, Any], scale: str) -> str:
    mult, unit, digits = (100.0, "percentage points", 2) if scale == "risk_difference" else (1.0, scale.replace("_", " "), 4)

    def num(v: float, sign: str = "") -> str:
        return f"{mult * v:{sign}.{digits}f}"

    largest = ", ".join(f"{p} ({num(shift, '+')})" for p, shift in s["largest"])
    return (f"**Leave one pair out** ({s['estimator']}, {outcome}): without any one pair the estimate ranges from "
            f"{num(s['min'])} (without {s['min_pair']}) to {num(s['max'])} (without {s['max_pair']}), "
            f"{unit}; full data {num(s['full_estimate'])}, jackknife SE over pairs {num(s['jackknife_se'])}. "
            f"Largest shifts (pair, shift): {largest}.")


def _markdown(text: str):
    try:
        from IPython.display import Markdown

        return Markdown(text)
    except ImportError:  # pragma: no cover
        return text
