"""Everything one outcome's analysis produced, saved to and loaded from a results folder.

Figures, tables and the report read these files; nothing here fits a model.
What is saved must be safe to send: model output (effects, the event study, the
randomisation draws, trust random effects, the referee's checks of ``sensitivity``) and, for the
figures, the disclosure-controlled ``trends`` and ``panel_period`` frames that
:func:`rp2pr_eval.pipeline.analysis.analyse_outcome` builds (no trust-year counts) and the
disclosure-controlled per-trust points of the effect-modification figure (``sensitivity_points``).
Results saved before a part existed load with that part ``None``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rp2pr_eval.results.effect import (
    Effect,
    effects_table,
    json_safe,
    load_effects,
    save_effects,
    to_native,
)
from rp2pr_eval.results.event_study import EventStudy
from rp2pr_eval.results.sensitivity import SensitivityChecks

#: ``schema`` of ``<outcome>.extras.json`` (the run-folder audit knows which of its parts are model output).
EXTRAS_SCHEMA = "rp2pr_eval.outcome_extras"


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
    #: Exact trust × year panel of an older run (new runs keep ``trends`` instead and save no trust-year counts).
    panel_year: pd.DataFrame | None = None
    #: Trust × period panel for the funnel plot, small trust-periods withheld (``withheld`` column).
    panel_period: pd.DataFrame | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    ri_draws: np.ndarray | None = field(default=None, repr=False)
    #: Arm × year pooled rates with intervals for the trends figure, small arm-years withheld.
    trends: pd.DataFrame | None = None
    #: The referee's checks (parallel-trends sensitivity, effect modification, leave one pair out, placebos):
    #: :func:`rp2pr_eval.pipeline.referee.add_referee_checks`; ``None`` when not run (and in older results).
    sensitivity: SensitivityChecks | None = None

    # ------------------------------------------------------------ display
    def show(self, name: str):
        """The Effect (or event study, or referee check) of one step, or a sentence saying why it was not run.

        Referee checks (``"parallel_trends_relative_magnitudes"``, ``"effect_modification_interaction"``,
        ``"leave_one_pair_out"``, …: :meth:`SensitivityChecks.show`) need :attr:`sensitivity`.
        """
        if name == "event_study" and self.event_study is not None:
            return self.event_study
        if name in _REFEREE_NAMES:
            if self.sensitivity is not None:
                return self.sensitivity.show(name)
            return _markdown(f"*{name}: the referee's checks were not run.*")
        if name in self.effects:
            return self.effects[name]
        reason = self.skipped.get(name, "not requested")
        return _markdown(f"*{name}: {reason}.*")

    def table(self) -> pd.DataFrame:
        """Tidy effects table of every estimate for this outcome."""
        return effects_table(self.effects.values())

    # ------------------------------------------------------------ persistence
    def save(self, results_dir: str | Path, *, timings_dir: str | Path | None = None) -> Path:
        """Write ``<outcome>.json`` (effects), ``<outcome>.extras.json`` and ``<outcome>.ri_draws.npy``.

        With ``timings_dir``, the seconds of each estimator and referee check go to
        ``<timings_dir>/<outcome>.json`` (timings are kept out of the results, which reproduce to the
        byte; the batch runner moves them into the run's manifest).
        """
        results_dir = Path(results_dir)
        results_dir.mkdir(parents=True, exist_ok=True)
        path = save_effects(list(self.effects.values()), results_dir / f"{self.outcome}.json")
        extras = {
            "schema": EXTRAS_SCHEMA,
            "outcome": self.outcome, "label": self.label, "kind": self.kind,
            "event_study": None if self.event_study is None else self.event_study.to_dict(),
            "randomisation": self.randomisation,
            "trust_effects": None if self.trust_effects is None else self.trust_effects.to_dict(orient="records"),
            "panel_year": None if self.panel_year is None else _records(self.panel_year),
            "panel_period": None if self.panel_period is None else _records(self.panel_period),
            "trends": None if self.trends is None else _records(self.trends),
            "skipped": self.skipped,
        }
        if self.sensitivity is not None:   # keys absent otherwise: files of runs without the checks are unchanged
            extras["sensitivity"] = self.sensitivity.to_dict()
            extras["sensitivity_points"] = self.sensitivity.points_records()
        (results_dir / f"{self.outcome}.extras.json").write_text(
            json.dumps(json_safe(to_native(extras)), indent=1, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
        if self.ri_draws is not None:
            np.save(results_dir / f"{self.outcome}.ri_draws.npy", np.asarray(self.ri_draws, dtype=float))
        if timings_dir is not None:
            timings = {"estimators": dict(self.timings),
                       "referee_checks": {} if self.sensitivity is None else dict(self.sensitivity.timings)}
            Path(timings_dir).mkdir(parents=True, exist_ok=True)
            (Path(timings_dir) / f"{self.outcome}.json").write_text(
                json.dumps(json_safe(to_native(timings)), indent=1, sort_keys=True) + "\n", encoding="utf-8")
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
            trends=None if extras.get("trends") is None else pd.DataFrame(extras["trends"]),
            sensitivity=None if extras.get("sensitivity") is None else SensitivityChecks.from_dict(
                extras["sensitivity"], extras.get("sensitivity_points")),
            skipped=extras["skipped"], ri_draws=np.load(draws_path) if draws_path.exists() else None,
        )


_REFEREE_NAMES = frozenset({
    "parallel_trends_relative_magnitudes", "parallel_trends_smoothness", "effect_modification_interaction",
    "effect_modification_within_pair", "leave_one_pair_out", "placebo_in_time", "placebo_outcome"})


def _markdown(text: str):
    try:
        from IPython.display import Markdown

        return Markdown(text)
    except ImportError:  # pragma: no cover
        return text.strip("*")


def _records(frame: pd.DataFrame) -> list[dict]:
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype) or out[col].dtype == object:
            out[col] = out[col].astype(str)
    return out.to_dict(orient="records")
