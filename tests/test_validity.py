"""The standing of each p-value (issue 16 item 6) agrees with the committed validation table."""
from __future__ import annotations

from pathlib import Path

import pytest

from rp2pr_eval.inference.validity import p_value_standing, standing_table

DOC = Path(__file__).resolve().parents[1] / "docs" / "methods" / "validation.md"

#: entry -> (row label in docs/methods/validation.md, table kind). "trust": size in cell 1, coverage in 3
#: (the first table, 200 + 200 trials); "patient": a row per drift setting, size in cell 2, coverage (null) in 4.
ROWS = {
    ("ancova", "CR2"): ("ancova, CR2 by pair (primary)", "trust"),
    ("did_aggregate", "CR2"): ("did_aggregate, CR2 by pair", "trust"),
    ("did_aggregate", "CR1"): ("did_aggregate, CR1 by pair", "trust"),
    ("did_twfe", "CR1"): ("did_twfe, CR1 by pair", "trust"),
    ("did_twfe", "CR2"): ("did_twfe, CR1 by pair", "trust"),
    ("ancova+wild", "WCR bootstrap-t"): ("ancova, wild cluster bootstrap (Rademacher, 399)", "trust"),
    ("ancova+RI", "randomisation (499 draws)"): ("ancova, randomisation test (499)", "trust"),
    ("did_logistic", "CR1"): ("did_logistic, CR1 by pair, t(39)", "patient"),
    ("did_logistic+score_bootstrap", "restricted score bootstrap (rademacher, 399)"):
        ("did_logistic, score wild bootstrap by pair (399)", "patient"),
    ("gee_logistic", "robust"): ("GEE block exchangeable, robust †", "patient"),
    ("gee_logistic", "mancl_derouen"): ("**GEE block exchangeable, Mancl–DeRouen** (batch default)", "patient"),
    ("gee_logistic", "kauermann_carroll"): ("GEE block exchangeable, Kauermann–Carroll", "patient"),
    ("gee_logistic", "fay_graubard"): ("GEE block exchangeable, Fay–Graubard", "patient"),
    ("mixed_logistic", "ML (Laplace), CR3 by pair_id, t(G-1)"):
        ("**nested GLMM, CR3 by pair, t(39)** (batch default)", "patient"),
}


def _cells(line: str) -> list[str]:
    return [c.strip().strip("*") for c in line.strip().strip("|").split("|")]


def _documented(label: str, kind: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"| {label} |"))
    if kind == "trust":
        c = _cells(lines[at])
        return (float(c[1]),), (float(c[3]),)
    on, off = _cells(lines[at]), _cells(lines[at + 1])
    assert on[1] == "on" and off[1] == "off", (on, off)
    return (float(on[2]), float(off[2])), (float(on[4]), float(off[4]))


@pytest.mark.fixture
@pytest.mark.parametrize("key", sorted(ROWS))
def test_standing_numbers_are_those_of_the_validation_table(key):
    standing = p_value_standing(*key)
    size, coverage = _documented(*ROWS[key])
    assert standing.size == size and standing.coverage == coverage, (key, standing, size, coverage)
    inside = all(0.03 <= s <= 0.07 for s in size) and all(0.93 <= c <= 0.97 for c in coverage)
    assert standing.standing == ("validated" if inside else "descriptive")


@pytest.mark.fixture
def test_did_logistic_cr1_is_descriptive_and_says_what_to_quote_instead():
    s = p_value_standing("did_logistic", "CR1")
    assert s.descriptive and "0.072 / 0.077" in s.reason and "score wild bootstrap" in s.reason
    assert not p_value_standing("did_logistic+score_bootstrap", "restricted score bootstrap (webb, 999)").descriptive
    assert not p_value_standing("mixed_logistic", "ML (Laplace), CR3 by pair_id, t(G-1)").descriptive
    # the GLMM's model-based SE was not the validated default: not given the validated standing by mistake
    assert p_value_standing("mixed_logistic", "ML (Laplace), model-based").descriptive


@pytest.mark.fixture
def test_methods_outside_the_study_are_descriptive_with_a_reason():
    for estimator, vcov in (("mixed_linear", "model-based (REML)"), ("did_cox", "robust"),
                            ("gee_logistic+score_bootstrap", "restricted score bootstrap"), ("ancova", "HC1")):
        s = p_value_standing(estimator, vcov)
        assert s.descriptive and s.size is None and "not in the validation study" in s.reason, s
    with pytest.raises(ValueError, match="estimator must be a string"):
        p_value_standing(None)  # type: ignore[arg-type]
    assert {s.estimator for s in standing_table()} >= {"ancova", "did_logistic", "gee_logistic", "mixed_logistic"}
