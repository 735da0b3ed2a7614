"""Synthetic NLCA-like data with a known, stored truth (no real patient data)."""
from rp2pr_eval.synthetic.generator import (
    SimulatedTrial,
    pair_labels,
    simulate_nlca,
    trust_labels,
)
from rp2pr_eval.synthetic.raw import RawExtract, write_raw_extract

__all__ = ["RawExtract", "SimulatedTrial", "pair_labels", "simulate_nlca", "trust_labels", "write_raw_extract"]
