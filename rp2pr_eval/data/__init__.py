"""Data layer: the contract, loading, validation and trust panels."""
from ..errors import DataError
from .contract import REQUIRED_COLUMNS
from .io import load_patients, save_patients, truth_path
from .panel import analysis_rows, trust_panel
from .validate import PeriodCoverageWarning, trusts_missing_period, validate_panel, validate_patients

__all__ = [
    "DataError", "REQUIRED_COLUMNS", "load_patients", "save_patients", "truth_path", "analysis_rows",
    "trust_panel", "PeriodCoverageWarning", "trusts_missing_period", "validate_panel", "validate_patients",
]
