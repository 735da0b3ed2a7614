"""Everything one outcome's analysis produced, saved to and loaded from a results folder.

Figures, tables and the report read these files; nothing here fits a model.
What is saved must be safe to send: model output (effects, the event study, the
randomisation draws, trust random effects) and, for the figures, the
disclosure-controlled ``trends`` and ``panel_period`` frames that
:func:`rp2pr_eval.pipeline.analysis.analyse_outcome` builds (no trust-year counts).
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
        (results_dir / f"{self.outcome}.extras.json").write_text(
            json.dumps(json_safe(to_native(extras)), indent=1, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
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
            trends=None if extras.get("trends") is None else pd.DataFrame(extras["trends"]),
            skipped=extras["skipped"], ri_draws=np.load(draws_path) if draws_path.exists() else None,
        )


def _records(frame: pd.DataFrame) -> list[dict]:
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype) or out[col].dtype == object:
            out[col] = out[col].astype(str)
    return out.to_dict(orient="records")
