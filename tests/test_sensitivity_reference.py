"""The parallel-trends sensitivity core against HonestDiD's own results (Rambachan & Roth 2023).

Reference values: ``tests/reference/honestdid_reference.json``, written by
``Rscript tests/reference/honestdid.R /path/to/HonestDiD`` (R 4.2.2) from the HonestDiD repository
at commit 6813f02: the knitr cache of its README (full-precision C-LF and FLCI results with their
exact inputs: the Medicaid-expansion TWFE event study and its Sun–Abraham version), the
Benzarti–Carloni and Lovenheim–Willen event studies of its data/ with the numbers its vignette
prints, and full-precision R results on the Benzarti–Carloni data recorded by the Julia port's
tests.  The R package itself does not install here (CVXR, lpSolveAPI, TruncatedNormal), and
pytest never runs R.

What is compared, and how closely:

* conditional (ARP) sets — deterministic: equal to 1e-9;
* C-LF sets — R simulates the least-favourable critical value from ``set.seed(0)``; given R's own
  standard normal stream (reproduced below from R's Mersenne-Twister and inversion; checked
  against ``rnorm`` output) and the grid of the HonestDiD release that made the README, the sets
  are equal to 1e-12;
* FLCI — R simulates the folded-normal quantile with 10⁶ draws; with the exact quantile (the
  package's) the endpoints agree to 6e-5, and with R's simulated quantile to 1e-6 for M > 0 (slow test)
  (at M = 0 R's endpoint carries its solver's error, ~5e-5);
* printed vignette/README digits — within half a unit of the last printed digit plus those
  tolerances; for Lovenheim–Willen (printed by an older release that searched the FLCI's
  standard deviation over a 100-point grid) the half-length agrees to the printed digits and
  the centre to 0.02 (the optimum is flat along the weights).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import ndtri

from rp2pr_eval.inference import honest_did as hd

REF = json.loads((Path(__file__).parent / "reference" / "honestdid_reference.json").read_text())
CASES = {c["name"]: c for c in REF["cases"]}
pytestmark = pytest.mark.reference


def r_rnorm(n: int, seed: int = 0) -> np.ndarray:
    """R's ``set.seed(seed); rnorm(n)`` (Mersenne-Twister, inversion with two uniforms)."""
    s = seed & 0xFFFFFFFF
    for _ in range(50):                       # R's initial scrambling
        s = (69069 * s + 1) & 0xFFFFFFFF
    key = []
    for _ in range(625):                      # dummy[0] (mti, reset to 624) and mt[0..623]
        s = (69069 * s + 1) & 0xFFFFFFFF
        key.append(s)
    bg = np.random.MT19937(0)
    bg.state = {"bit_generator": "MT19937", "state": {"key": np.array(key[1:], dtype=np.uint32), "pos": 624}}
    u = bg.random_raw(2 * n).astype(np.float64) * 2.3283064365386963e-10
    u = np.where(u <= 0, 0.5 * 2.328306437080797e-10, u)
    big = 134217728.0
    return ndtri((np.floor(big * u[0::2]) + u[1::2]) / big)


def r_draws(m: int, n: int = 1000) -> np.ndarray:
    """``set.seed(0); matrix(rnorm(n * m), n, byrow = TRUE)``: what mvtnorm::rmvnorm starts from."""
    return r_rnorm(n * m).reshape(n, m)


def arrays(case):
    return (np.array(case["betahat"], dtype=float), np.array(case["sigma"], dtype=float), case["n_pre"],
            np.array(case["l_vec"], dtype=float))


def rows(case):
    r = case["r"]
    return list(zip(np.atleast_1d(r["m"]), np.atleast_1d(r["lb"]), np.atleast_1d(r["ub"])))


def test_r_normal_stream_is_reproduced():
    assert np.max(np.abs(r_rnorm(20) - np.array(REF["rnorm_seed0_head"]))) < 1e-13


@pytest.mark.parametrize("name", ["bc_sd_conditional", "bc_sd_conditional_gp200", "bc_rm_conditional"])
def test_conditional_sets_equal_r(name):
    case = CASES[name]
    b, S, K, l = arrays(case)
    sd = np.sqrt(l @ S[K:, K:] @ l)
    for m, lb, ub in rows(case):
        grid = (-20 * sd, 20 * sd) if case["restriction"] == "relative_magnitudes" else None
        r = hd.honest_interval(b, S, K, l, restriction=case["restriction"], m=float(m), method="conditional",
                               grid_points=case["grid_points"], grid=grid, refine=False)
        assert r.ci_low == pytest.approx(lb, abs=1e-9) and r.ci_high == pytest.approx(ub, abs=1e-9)


def test_conditional_average_target_equals_r_on_its_grid():
    # R's upper end is its grid's edge (0.853 = the identified set at 0 + 20 sd): the set is open there
    case = CASES["bc_sd_conditional_average"]
    b, S, K, l = arrays(case)
    (m, lb, ub), = rows(case)
    r = hd.honest_interval(b, S, K, l, restriction="smoothness", m=m, method="conditional", grid_points=100,
                           grid=(-ub, ub), refine=False)
    assert r.ci_low == pytest.approx(lb, abs=1e-9) and r.ci_high == pytest.approx(ub, abs=1e-12)
    assert r.open_ended


@pytest.mark.parametrize("name", ["medicaid_rm_clf", "medicaid_rm_clf_average", "sunab_rm_clf"])
def test_conditional_least_favourable_sets_equal_r_given_its_draws(name):
    case = CASES[name]
    b, S, K, l = arrays(case)
    draws = {2 * case["n_post"]: r_draws(2 * case["n_post"])}
    for m, lb, ub in rows(case):
        r = hd.honest_interval(b, S, K, l, restriction="relative_magnitudes", m=float(m), method="C-LF",
                               grid_points=case["grid_points"], refine=False, lf_draws=draws)
        assert r.ci_low == pytest.approx(lb, abs=1e-12) and r.ci_high == pytest.approx(ub, abs=1e-12)


def test_conditional_least_favourable_printed_digits():
    case = CASES["medicaid_rm_clf"]
    b, S, K, l = arrays(case)
    draws = {4: r_draws(4)}
    for (m, _, _), lb, ub in zip(rows(case), case["printed"]["lb"], case["printed"]["ub"]):
        r = hd.honest_interval(b, S, K, l, restriction="relative_magnitudes", m=float(m), method="C-LF",
                               refine=False, lf_draws=draws)
        assert float(f"{r.ci_low:.3g}") == lb and float(f"{r.ci_high:.3g}") == ub


def test_original_interval_equals_r():
    for name in ("medicaid_rm_clf_average", "sunab_rm_clf", "bc_flci"):
        case = CASES[name]
        b, S, K, l = arrays(case)
        est, se = l @ b[K:], np.sqrt(l @ S[K:, K:] @ l)
        lo, hi = est - 1.959963984540054 * se, est + 1.959963984540054 * se
        assert lo == pytest.approx(np.atleast_1d(case["original"]["lb"])[0], abs=1e-12)
        assert hi == pytest.approx(np.atleast_1d(case["original"]["ub"])[0], abs=1e-12)


@pytest.mark.parametrize("name", ["medicaid_sd_flci", "bc_flci"])
def test_flci_equals_r_up_to_its_simulated_quantile(name):
    case = CASES[name]
    b, S, K, l = arrays(case)
    for m, lb, ub in rows(case):
        f = hd.flci(b, S, K, l, float(m))
        assert f.estimate - f.half_length == pytest.approx(lb, abs=6e-5)
        assert f.estimate + f.half_length == pytest.approx(ub, abs=6e-5)


@pytest.mark.slow
def test_flci_equals_r_with_its_simulated_quantile(monkeypatch):
    """With R's 10⁶-draw folded-normal quantile the optimiser lands on R's interval to 1e-6 (M > 0).

    Slow (≈ 6 min): the simulated quantile is a step function of its argument, so SLSQP needs
    many evaluations of a 10⁶-draw quantile.
    """
    z = r_rnorm(10**6)
    monkeypatch.setattr(hd, "folded_normal_quantile", lambda p, t: float(np.quantile(np.abs(z + abs(t)), p)))
    for name in ("medicaid_sd_flci", "bc_flci"):
        case = CASES[name]
        b, S, K, l = arrays(case)
        for m, lb, ub in rows(case):
            if m == 0:
                continue
            f = hd.flci(b, S, K, l, float(m))
            assert f.estimate - f.half_length == pytest.approx(lb, abs=1e-6)
            assert f.estimate + f.half_length == pytest.approx(ub, abs=1e-6)
    case = CASES["bc_flci"]
    b, S, K, l = arrays(case)
    for m, half in zip(case["r"]["m"][1:], case["r"]["half_length"][1:]):
        assert hd.flci(b, S, K, l, float(m)).half_length == pytest.approx(half, abs=1e-6)


def _printed_tolerance(value: float) -> float:
    text = f"{value:.3g}"
    decimals = len(text.split(".")[1]) if "." in text else 0
    return 0.5 * 10 ** (-decimals)


@pytest.mark.parametrize("key", ["medicaid_sd_flci", "medicaid_control_sd_flci"])
def test_flci_printed_digits(key):
    case = CASES[key]
    b, S, K, l = arrays(case)
    printed = case.get("printed", case["r"])
    for (m, _, _), lb, ub in zip(rows(case), printed["lb"], printed["ub"]):
        f = hd.flci(b, S, K, l, float(m))
        assert abs(f.estimate - f.half_length - lb) <= _printed_tolerance(lb) + 6e-5
        assert abs(f.estimate + f.half_length - ub) <= _printed_tolerance(ub) + 6e-5


def test_flci_lovenheim_willen_vignette():
    case = CASES["lw_sd_flci"]
    b, S, K, l = arrays(case)
    for m, lb, ub in rows(case):
        f = hd.flci(b, S, K, l, float(m))
        assert f.converged
        assert abs(f.half_length - (ub - lb) / 2) <= 0.5 * (_printed_tolerance(lb) + _printed_tolerance(ub)) + 1e-3
        assert abs(f.estimate - (ub + lb) / 2) <= 0.02
