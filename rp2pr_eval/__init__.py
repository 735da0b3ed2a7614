"""rp2pr_eval: statistical evaluation of the Improving Lung Cancer Outcomes Project (ILCOP).

The public names below are the stable face of the package (see docs/API in
shared/design/API.md); internals may move.
"""
from . import report, summary, tables
from .analysis import ESTIMATORS, OutcomeAnalysis, analyse_outcome
from .data import DataError, PeriodCoverageWarning, load_patients, save_patients, trust_panel, validate_panel, validate_patients
from .design import StudyDesign
from .did import EventStudy, ancova, did_aggregate, did_cox, did_logistic, did_twfe, event_study
from .errors import ParameterError
from .gee import gee_logistic, gee_logistic_with_fallback
from .mixed import mixed_linear, mixed_logistic
from .inference.design_based import randomisation_test, shared_bootstrap_weights, wild_cluster_bootstrap
from .inference.multiplicity import adjust_pvalues
from .inference.power import PowerResult, power_simulation
from .inference.randomisation import RandomisationResult
from .outcomes import CASE_MIX, OUTCOMES, PRIMARY_OUTCOMES, Outcome
from .results import Effect, effects_table, load_effects, save_effects
from .synthetic import simulate_nlca

__all__ = [
    "Effect", "EventStudy", "ancova", "did_aggregate", "did_cox", "did_logistic", "did_twfe", "effects_table",
    "event_study", "load_effects", "save_effects", "gee_logistic", "gee_logistic_with_fallback", "randomisation_test", "shared_bootstrap_weights",
    "wild_cluster_bootstrap", "adjust_pvalues", "RandomisationResult", "mixed_linear", "mixed_logistic",
    "ESTIMATORS", "OutcomeAnalysis", "analyse_outcome", "PowerResult", "power_simulation",
    "CASE_MIX", "DataError", "OUTCOMES", "Outcome", "PRIMARY_OUTCOMES", "ParameterError", "PeriodCoverageWarning",
    "StudyDesign", "load_patients", "save_patients", "simulate_nlca", "trust_panel", "validate_panel",
    "validate_patients",
]
