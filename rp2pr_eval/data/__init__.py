"""Data layer: the contract, loading, importing raw extracts, validation and trust panels."""
from rp2pr_eval.data.contract import REQUIRED_COLUMNS
from rp2pr_eval.data.extract import ImportResult, import_extract, import_with_quality
from rp2pr_eval.data.io import load_panel, load_patients, save_patients, truth_path
from rp2pr_eval.data.mapping import ExtractMapping, load_mapping
from rp2pr_eval.data.quality import ImportQuality
from rp2pr_eval.data.panel import analysis_rows, is_trust_panel, trust_panel
from rp2pr_eval.data.validate import (
    PeriodCoverageWarning,
    trusts_missing_period,
    validate_panel,
    validate_patients,
)
from rp2pr_eval.errors import DataError

__all__ = [
    "DataError", "ExtractMapping", "ImportQuality", "ImportResult", "REQUIRED_COLUMNS", "import_extract",
    "import_with_quality", "load_mapping", "load_panel", "load_patients", "is_trust_panel", "save_patients", "truth_path", "analysis_rows",
    "trust_panel", "PeriodCoverageWarning", "trusts_missing_period", "validate_panel", "validate_patients",
]
