"""Synthetic NLCA-like data with a known, stored truth (no real patient data)."""
from rp2pr_eval.synthetic.generator import (
    SimulatedTrial,
    pair_labels,
    simulate_nlca,
    trust_labels,
)

__all__ = ["SimulatedTrial", "pair_labels", "simulate_nlca", "trust_labels"]
