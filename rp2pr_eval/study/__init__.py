"""The study: its design (years, arms, pairs, disclosure policy) and the outcome registry."""
from rp2pr_eval.study.design import StudyDesign, resolve_design
from rp2pr_eval.study.outcomes import (
    CASE_MIX,
    OUTCOMES,
    PRIMARY_OUTCOMES,
    Outcome,
    resolve_outcome,
)

__all__ = ["CASE_MIX", "OUTCOMES", "Outcome", "PRIMARY_OUTCOMES", "StudyDesign", "resolve_design", "resolve_outcome"]
