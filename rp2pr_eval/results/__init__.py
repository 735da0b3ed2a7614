"""Results: the ``Effect`` of one estimate, the event study, the referee's checks, and what one outcome's analysis saved.

Results are frozen and JSON round-trip without loss; one renderer formats them (text, HTML, Markdown,
LaTeX).
"""
from rp2pr_eval.results.effect import (
    TIDY_COLUMNS,
    Effect,
    effects_table,
    format_frame,
    load_effects,
    render,
    save_effects,
)
from rp2pr_eval.results.event_study import EventStudy
from rp2pr_eval.results.outcome import OutcomeAnalysis
from rp2pr_eval.results.sensitivity import ParallelTrendsSensitivity, SensitivityChecks

__all__ = ["TIDY_COLUMNS", "Effect", "EventStudy", "OutcomeAnalysis", "ParallelTrendsSensitivity", "SensitivityChecks",
           "effects_table", "format_frame", "load_effects", "render", "save_effects"]
