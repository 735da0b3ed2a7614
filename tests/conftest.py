"""Shared fixtures: small seeded synthetic datasets (generated once per session)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import rp2pr_eval as rp

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "data" / "synthetic" / "nlca_patients.csv.gz"


@pytest.fixture(scope="session")
def small_patients() -> pd.DataFrame:
    """A small ILCOP-shaped trial: 12 pairs (4 treated), ~60 patients per trust-year."""
    return rp.simulate_nlca(seed=11, n_pairs=12, n_treated_pairs=4, volume_median=60, volume_clip=(30, 120))


@pytest.fixture(scope="session")
def ilcop_patients() -> pd.DataFrame:
    """One full ILCOP-scale dataset with planted effects."""
    return rp.simulate_nlca(seed=5, effects={"active_treatment": 0.3, "cns_seen": 0.4})


@pytest.fixture(scope="session")
def bundled_patients() -> pd.DataFrame:
    return rp.load_patients(BUNDLED)


@pytest.fixture()
def patients(small_patients) -> pd.DataFrame:
    """A fresh copy a test may modify."""
    return small_patients.copy()
