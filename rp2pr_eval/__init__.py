"""rp2pr_eval: statistical evaluation of the Improving Lung Cancer Outcomes Project (ILCOP).

The names below are the stable face of the package (``docs/API.md``); internals may move. The package
is layered, each layer importing only those above it in this list:

* ``errors``, ``paths`` and option checks — the foundation;
* :mod:`rp2pr_eval.models` — general models, no study knowledge;
* :mod:`rp2pr_eval.study` (design, outcome registry), :mod:`rp2pr_eval.data` (contract, readers,
  validation, trust panels, descriptives), :mod:`rp2pr_eval.synthetic` (the generator);
* :mod:`rp2pr_eval.results` — ``Effect`` and the saved results of an analysis;
* :mod:`rp2pr_eval.estimators` — the study's estimators (patients in, ``Effect`` out);
* :mod:`rp2pr_eval.inference` — design-based inference, multiplicity, power, the Monte Carlo study;
* :mod:`rp2pr_eval.presentation` — figures, tables, disclosure control, the report (never fits);
* :mod:`rp2pr_eval.pipeline` — parameters, the per-outcome analysis, the batch runner, audit, reruns;
* ``rp2pr_eval.cli`` — the ``rp2pr-eval`` command.
"""
from rp2pr_eval import models
from rp2pr_eval.data import (
    DataError,
    ExtractMapping,
    ImportQuality,
    ImportResult,
    PeriodCoverageWarning,
    import_extract,
    import_with_quality,
    load_mapping,
    load_panel,
    load_patients,
    save_patients,
    trust_panel,
    validate_panel,
    validate_patients,
)
from rp2pr_eval.data import describe as summary
from rp2pr_eval.errors import ParameterError
from rp2pr_eval.estimators import (
    ancova,
    did_aggregate,
    did_cox,
    did_logistic,
    did_twfe,
    event_study,
    gee_logistic,
    gee_logistic_with_fallback,
    mixed_linear,
    mixed_logistic,
)
from rp2pr_eval.estimators.case_mix import CaseMixRates, case_mix_adjusted_rates
from rp2pr_eval.data.flow import flow_counts
from rp2pr_eval.inference.design_based import randomisation_test, shared_bootstrap_weights, wild_cluster_bootstrap
from rp2pr_eval.inference.effect_modification import effect_modification
from rp2pr_eval.inference.icc import icc, icc_generator_settings
from rp2pr_eval.inference.influence import leave_one_pair_out, placebo_in_time, placebo_outcome
from rp2pr_eval.inference.multiplicity import adjust_pvalues
from rp2pr_eval.inference.power import PowerResult, power_simulation
from rp2pr_eval.inference.sensitivity import ParallelTrendsSensitivity, parallel_trends_sensitivity
from rp2pr_eval.models.randomisation import RandomisationResult
from rp2pr_eval.pipeline.analysis import ESTIMATORS, analyse_outcome
from rp2pr_eval.pipeline.referee import add_referee_checks
from rp2pr_eval.presentation import figures, referee, report, tables
from rp2pr_eval.presentation.referee import sensitivity_summary
from rp2pr_eval.presentation.quality import quality_tables, write_quality_report
from rp2pr_eval.results import (
    Effect,
    EventStudy,
    OutcomeAnalysis,
    SensitivityChecks,
    effects_table,
    load_effects,
    save_effects,
)
from rp2pr_eval.study import outcomes
from rp2pr_eval.study.design import StudyDesign
from rp2pr_eval.study.outcomes import CASE_MIX, OUTCOMES, PRIMARY_OUTCOMES, Outcome
from rp2pr_eval.synthetic import RawExtract, simulate_nlca, write_raw_extract

__all__ = [
    "CASE_MIX", "CaseMixRates", "DataError", "ESTIMATORS", "Effect", "EventStudy", "ExtractMapping",
    "ImportQuality", "ImportResult", "OUTCOMES", "Outcome", "OutcomeAnalysis", "PRIMARY_OUTCOMES",
    "ParallelTrendsSensitivity", "ParameterError", "PeriodCoverageWarning", "PowerResult",
    "RandomisationResult", "RawExtract", "SensitivityChecks", "StudyDesign", "add_referee_checks",
    "adjust_pvalues", "analyse_outcome", "ancova", "case_mix_adjusted_rates", "did_aggregate", "did_cox",
    "did_logistic", "did_twfe", "effect_modification", "effects_table", "event_study", "figures", "flow_counts",
    "gee_logistic", "gee_logistic_with_fallback", "icc", "icc_generator_settings", "import_extract",
    "import_with_quality", "leave_one_pair_out", "load_effects", "load_mapping", "load_panel", "load_patients",
    "mixed_linear", "mixed_logistic", "models", "outcomes", "parallel_trends_sensitivity", "placebo_in_time",
    "placebo_outcome", "power_simulation", "quality_tables", "randomisation_test", "referee", "report",
    "save_effects", "save_patients", "sensitivity_summary", "shared_bootstrap_weights", "simulate_nlca",
    "summary", "tables", "trust_panel", "validate_panel", "validate_patients", "wild_cluster_bootstrap",
    "write_quality_report", "write_raw_extract",
]
