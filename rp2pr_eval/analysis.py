"""One outcome, every estimator: what the outcome notebook and the batch runner call.

:func:`analyse_outcome` runs each requested estimator that applies to the
outcome's kind (binary, continuous, time to event), records what was skipped
and why, and keeps the small frames figures need (trust panels, event study,
randomisation histogram, trust random effects).  :class:`OutcomeAnalysis`
saves to and loads from a results folder, so figures and the summary can be
regenerated without refitting.
"""
from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .design import StudyDesign, resolve_design
from .did import EventStudy, ancova, did_aggregate, did_cox, did_logistic, did_twfe, event_study
from .gee import gee_logistic_with_fallback
from .inference.design_based import randomisation_effect, randomisation_test, wild_cluster_bootstrap
from .mixed import mixed_linear, mixed_logistic
from .outcomes import CASE_MIX, resolve_outcome
from .results import Effect, _json_safe, _native, effects_table, load_effects, save_effects

#: Every estimator step, in report order (the primary analysis first).
ESTIMATORS: tuple[str, ...] = (
    "ancova", "did_aggregate", "did_twfe", "mixed_linear", "did_logistic", "mixed_logistic", "gee_logistic",
    "did_cox", "event_study", "randomisation_test", "wild_cluster_bootstrap",
)
_KINDS = {
    "binary": set(ESTIMATORS) - {"did_cox"},
    "continuous": {"ancova", "did_aggregate", "did_twfe", "mixed_linear", "event_study", "randomisation_test",
                   "wild_cluster_bootstrap"},
    "time_to_event": {"did_cox"},
}


@dataclass
class OutcomeAnalysis:
    """Results of :func:`analyse_outcome` for one outcome (effects plus the frames figures need)."""

    outcome: str
    label: str
    kind: str
    effects: dict[str, Effect]
    event_study: EventStudy | None = None
    randomisation: dict[str, Any] | None = None
    trust_effects: pd.DataFrame | None = None
    panel_year: pd.DataFrame | None = None
    panel_period: pd.DataFrame | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    ri_draws: np.ndarray | None = field(default=None, repr=False)

    # ------------------------------------------------------------ display
    def show(self, name: str):
        """The Effect (or event study) of one step, or a sentence saying why it was not run."""
        if name == "event_study" and self.event_study is not None:
            return self.event_study
        if name in self.effects:
            return self.effects[name]
        reason = self.skipped.get(name, "not requested")
        try:
            from IPython.display import Markdown

            return Markdown(f"*{name}: {reason}.*")
        except ImportError:  # pragma: no cover
            return f"{name}: {reason}."

    def table(self) -> pd.DataFrame:
        """Tidy effects table of every estimate for this outcome."""
        return effects_table(self.effects.values())

    # ------------------------------------------------------------ persistence
    def save(self, results_dir: str | Path) -> Path:
        """Write ``<outcome>.json`` (effects), ``<outcome>.extras.json`` and ``<outcome>.ri_draws.npy``."""
        results_dir = Path(results_dir)
        results_dir.mkdir(parents=True, exist_ok=True)
        path = save_effects(list(self.effects.values()), results_dir / f"{self.outcome}.json")
        extras = {
            "outcome": self.outcome, "label": self.label, "kind": self.kind,
            "event_study": None if self.event_study is None else self.event_study.to_dict(),
            "randomisation": self.randomisation,
            "trust_effects": None if self.trust_effects is None else self.trust_effects.to_dict(orient="records"),
            "panel_year": None if self.panel_year is None else _records(self.panel_year),
            "panel_period": None if self.panel_period is None else _records(self.panel_period),
            "skipped": self.skipped,
        }
        (results_dir / f"{self.outcome}.extras.json").write_text(
            json.dumps(_json_safe(_native(extras)), indent=1, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
        if self.ri_draws is not None:
            np.save(results_dir / f"{self.outcome}.ri_draws.npy", np.asarray(self.ri_draws, dtype=float))
        return path

    @classmethod
    def load(cls, results_dir: str | Path, outcome: str) -> "OutcomeAnalysis":
        """Read what :meth:`save` wrote (no refitting)."""
        results_dir = Path(results_dir)
        effects = {e.details.get("step", e.estimator): e for e in load_effects(results_dir / f"{outcome}.json")}
        extras = json.loads((results_dir / f"{outcome}.extras.json").read_text(encoding="utf-8"))
        draws_path = results_dir / f"{outcome}.ri_draws.npy"
        return cls(
            outcome=outcome, label=extras["label"], kind=extras["kind"], effects=effects,
            event_study=None if extras["event_study"] is None else EventStudy.from_dict(extras["event_study"]),
            randomisation=extras["randomisation"],
            trust_effects=None if extras["trust_effects"] is None else pd.DataFrame(extras["trust_effects"]),
            panel_year=None if extras["panel_year"] is None else pd.DataFrame(extras["panel_year"]),
            panel_period=None if extras["panel_period"] is None else pd.DataFrame(extras["panel_period"]),
            skipped=extras["skipped"], ri_draws=np.load(draws_path) if draws_path.exists() else None,
        )


def _records(frame: pd.DataFrame) -> list[dict]:
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype) or out[col].dtype == object:
            out[col] = out[col].astype(str)
    return out.to_dict(orient="records")


def _histogram(draws: np.ndarray, bins: int = 60) -> dict[str, list[float]]:
    counts, edges = np.histogram(draws, bins=bins)
    return {"counts": counts.tolist(), "edges": edges.tolist()}


def analyse_outcome(
    patients: pd.DataFrame,
    outcome: str,
    *,
    design: StudyDesign | None = None,
    estimators: Sequence[str] | None = None,
    cluster: str = "pair_id",
    vcov: str = "CR2",
    weights: str | None = "denominator",
    covariates: Sequence[str] | None = tuple(CASE_MIX),
    ri_draws: int = 10_000,
    ri_statistic: str = "estimate",
    boot_draws: int = 9_999,
    boot_weights: str = "rademacher",
    n_quad: int = 25,
    gee_vcov: str = "mancl_derouen",
    level: float = 0.95,
    seed: int = 1,
) -> OutcomeAnalysis:
    """Run every requested estimator that applies to ``outcome`` (see :data:`ESTIMATORS`).

    Estimators that do not apply to the outcome's kind are skipped with the
    reason recorded; an estimator that fails on these data (e.g. separation)
    is recorded in ``skipped`` with its error message rather than stopping the
    others.  The randomisation test and the wild bootstrap use the ANCOVA
    (primary) specification; the randomisation draws are seeded by ``seed`` so
    all outcomes share the same re-randomisations (Romano–Wolf).
    """
    design = resolve_design(design)
    entry = resolve_outcome(patients, outcome)
    wanted = list(ESTIMATORS if estimators is None else estimators)
    unknown = [e for e in wanted if e not in ESTIMATORS]
    if unknown:
        raise ValueError(f"unknown estimator(s) {unknown}; expected names from {', '.join(ESTIMATORS)}")
    covariates = list(covariates) if covariates is not None else None
    result = OutcomeAnalysis(outcome=entry.name, label=entry.label, kind=entry.kind, effects={})
    common = dict(design=design, cluster=cluster)
    steps = {
        "ancova": lambda: ancova(patients, outcome, vcov=vcov, weights=weights, level=level, **common),
        "did_aggregate": lambda: did_aggregate(patients, outcome, vcov=vcov, weights=weights, level=level, **common),
        "did_twfe": lambda: did_twfe(patients, outcome, vcov="CR1" if vcov == "CR3" else vcov, weights=weights,
                                     level=level, **common),
        "mixed_linear": lambda: mixed_linear(patients, outcome, level=level, **common),
        "did_logistic": lambda: did_logistic(patients, outcome, covariates=covariates, level=level, **common),
        "mixed_logistic": lambda: mixed_logistic(patients, outcome, covariates=covariates, n_quad=n_quad,
                                                 level=level, **common),
        "gee_logistic": lambda: gee_logistic_with_fallback(patients, outcome, covariates=covariates, vcov=gee_vcov,
                                                   level=level, **common),
        "did_cox": lambda: did_cox(patients, outcome, covariates=covariates, level=level, **common),
        "wild_cluster_bootstrap": lambda: wild_cluster_bootstrap(patients, outcome, "ancova", boot_draws,
                                                                 weights=boot_weights, seed=seed,
                                                                 regression_weights=weights, level=level, **common),
    }
    for name in wanted:
        if name not in _KINDS[entry.kind]:
            result.skipped[name] = f"does not apply to {entry.kind} outcomes"
            continue
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("default")
                if name == "event_study":
                    result.event_study = event_study(patients, outcome, vcov=vcov, weights=weights, level=level,
                                                     **common)
                elif name == "randomisation_test":
                    primary = result.effects.get("ancova") or ancova(patients, outcome, vcov=vcov, weights=weights,
                                                                      level=level, **common)
                    ri = randomisation_test(patients, outcome, "ancova", ri_draws, seed, statistic=ri_statistic,
                                            weights=weights, level=level, **common)
                    result.effects["randomisation_test"] = randomisation_effect(ri, primary).with_details(
                        step="randomisation_test")
                    result.randomisation = {"observed": ri.observed_statistic, "p_value": ri.p_value,
                                            "mc_se": ri.mc_se, "n_draws": ri.n_draws, "exact": ri.exact,
                                            "statistic": ri.statistic, "estimator": "ancova",
                                            "histogram": _histogram(np.asarray(ri.draws))}
                    result.ri_draws = np.asarray(ri.draws)
                else:
                    effect = steps[name]().with_details(step=name)
                    result.effects[name] = effect
                    if name == "mixed_logistic":
                        result.trust_effects = pd.DataFrame(effect.details.get("trust_effects", []))
        except (ValueError, np.linalg.LinAlgError) as exc:  # DataError is a ValueError
            result.skipped[name] = f"not estimable on these data: {str(exc).splitlines()[0]}"
        result.timings[name] = time.perf_counter() - start
    if entry.kind == "binary":
        from .data.panel import trust_panel

        result.panel_year = trust_panel(patients, outcome, by="audit_year", design=design, validate=False)
        result.panel_period = trust_panel(patients, outcome, by="period", design=design, validate=False)
    return result
