"""Randomisation-inference core (rp2pr_eval.inference.randomisation).

References are per-draw refits with ``numpy.linalg.lstsq`` on the full design
(fixed effects as explicit dummy columns), statsmodels' cluster-robust WLS, and
the package's own ``variance.wls`` for CR2 — all one draw at a time.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import statsmodels.api as sm

from rp2pr_eval.errors import DataError
from rp2pr_eval.models.randomisation import (
    assignment_map,
    batched_wls_coef,
    batched_wls_stat,
    invert_randomisation_test,
    pair_assignments,
    randomisation_pvalue,
    randomisation_test_linear,
)


# --------------------------------------------------------------------------- designs
def did_panel(seed: int, *, n_pairs: int = 40, n_treated: int = 15, effect: float = 0.0):
    """Trust × period rates (pre/post), two trusts per pair; returns a dict of arrays."""
    rng = np.random.default_rng(seed)
    pair = np.repeat(np.arange(n_pairs), 4)
    trust = np.repeat(np.arange(2 * n_pairs), 2)
    post = np.tile([0.0, 1.0], 2 * n_pairs)
    obs = np.zeros(n_pairs, dtype=np.int8)
    obs[rng.choice(n_pairs, n_treated, replace=False)] = 1
    denom = np.clip(np.round(rng.lognormal(np.log(210), 0.5, 2 * n_pairs)), 60, 750)[trust]
    p = np.clip(0.58 + rng.normal(0, 0.04, n_pairs)[pair] + 0.05 * rng.standard_t(4, 2 * n_pairs)[trust]
                + 0.02 * post + effect * obs[pair] * post, 0.05, 0.95)
    y = rng.binomial(denom.astype(int), p) / denom
    return dict(y=y, pair=pair, trust=trust, post=post, obs=obs, w=denom,
                X_fixed=np.column_stack([np.ones_like(post), post]))


def did_builder(pair, post):
    def build(a):
        treated = a[:, pair].astype(float)
        return np.stack([treated, treated * post], axis=2)
    return build


def did_maps(pair, post, n_pairs):
    return np.stack([assignment_map(pair, n_pairs), assignment_map(pair, n_pairs, post)])


def twfe_panel(seed: int, *, n_pairs: int = 12, n_treated: int = 4, n_years: int = 4):
    rng = np.random.default_rng(seed)
    n_trusts = 2 * n_pairs
    trust = np.repeat(np.arange(n_trusts), n_years)
    pair = trust // 2
    year = np.tile(np.arange(n_years), n_trusts)
    post = (year >= n_years // 2).astype(float)
    obs = np.zeros(n_pairs, dtype=np.int8)
    obs[rng.choice(n_pairs, n_treated, replace=False)] = 1
    y = rng.normal(0, 0.05, n_trusts)[trust] + 0.01 * year + rng.normal(0, 0.03, trust.size)
    w = rng.integers(60, 700, trust.size).astype(float)
    return dict(y=y, pair=pair, trust=trust, year=year, post=post, obs=obs, w=w)


def lstsq_coef(X, y, w, j):
    sw = np.sqrt(w)
    return np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)[0][j]


# --------------------------------------------------------------------------- assignments
@pytest.mark.fixture
def test_exact_enumeration_small_design():
    A, exact = pair_assignments(6, 2, 100, rng=None)
    assert exact and A.shape == (15, 6) and A.dtype == np.int8
    expected = [tuple(int(i in c) for i in range(6)) for c in itertools.combinations(range(6), 2)]
    assert [tuple(row) for row in A] == expected              # all 15, lexicographic, no repeats
    # exactly as many draws as assignments is still exact; one fewer is Monte Carlo
    assert pair_assignments(6, 2, 15, rng=1)[1] is True
    A_mc, exact_mc = pair_assignments(6, 2, 14, rng=1)
    assert not exact_mc and A_mc.shape == (14, 6) and set(A_mc.sum(axis=1)) == {2}


@pytest.mark.simulation
def test_monte_carlo_draws_are_uniform():
    A, exact = pair_assignments(40, 15, 20_000, rng=3)
    assert not exact and A.shape == (20_000, 40)
    assert np.all(A.sum(axis=1) == 15)
    # each pair treated with probability 15/40; each of the 40 shares within 4.5 SE
    share = A.mean(axis=0)
    se = math.sqrt(15 / 40 * 25 / 40 / 20_000)
    assert np.all(np.abs(share - 15 / 40) < 4.5 * se)
    # pairs are drawn without replacement within an assignment: P(both of two pairs) = 15·14/(40·39)
    both = np.mean(A[:, 0] & A[:, 1])
    assert abs(both - 15 * 14 / (40 * 39)) < 4.5 * math.sqrt(0.135 * 0.865 / 20_000)
    np.testing.assert_array_equal(A, pair_assignments(40, 15, 20_000, rng=np.random.default_rng(3))[0])


@pytest.mark.fixture
def test_observed_assignment_is_checked():
    with pytest.raises(DataError, match="15 treated"):
        pair_assignments(40, 15, 10, rng=1, observed=np.r_[np.ones(16), np.zeros(24)])
    with pytest.raises(DataError, match="length 40"):
        pair_assignments(40, 15, 10, rng=1, observed=np.ones(15))
    with pytest.raises(ValueError, match="n_treated"):
        pair_assignments(4, 5, 10, rng=1)


# --------------------------------------------------------------------------- hand-computed distribution
def six_pair_panel():
    """6 pairs, 2 trusts × (pre, post) each; pair p's trusts change by (p+1) ± 0.5."""
    pair = np.repeat(np.arange(6), 4)
    post = np.tile([0.0, 1.0], 12)
    trust_offset = np.tile([0.0, 0.0, 1.0, 1.0], 6)            # second trust sits higher
    jitter = np.tile([-0.5, 0.5], 12) * np.where(trust_offset == 0, 1, -1)   # changes p+1 ∓ 0.5
    y = 10.0 + 2.0 * trust_offset + pair * 0.3 + post * (pair + 1.0) + post * jitter
    return pair, post, y


@pytest.mark.fixture
def test_hand_computed_permutation_distribution():
    """Balanced, unweighted DiD = mean change of treated pairs − mean change of control pairs.

    Pair changes are 1..6, so for treated pairs {i, j} the estimate is
    (Δi + Δj)/2 − (21 − Δi − Δj)/4 = (3(Δi + Δj) − 21)/4; in lexicographic order of
    the 15 assignments:
    """
    expected = [-3.0, -2.25, -1.5, -0.75, 0.0, -1.5, -0.75, 0.0, 0.75, 0.0, 0.75, 1.5, 1.5, 2.25, 3.0]
    pair, post, y = six_pair_panel()
    A, exact = pair_assignments(6, 2, 1000, rng=None)
    Xf = np.column_stack([np.ones_like(post), post])
    for builder in (did_builder(pair, post), did_maps(pair, post, 6)):
        draws = batched_wls_coef(y, Xf, builder, A, coef_index=3)
        np.testing.assert_allclose(draws, expected, atol=1e-12)
    # observed: pairs 5 and 6 treated (estimate 3); |T| ≥ 3 for {1,2} and {5,6}: p = 2/15
    observed = np.array([0, 0, 0, 0, 1, 1])
    res = randomisation_test_linear(y, Xf, did_maps(pair, post, 6), observed, coef_index=3, n_draws=1000)
    assert res.exact and res.n_draws == 15
    assert res.estimate == pytest.approx(3.0)
    assert res.p_value == pytest.approx(2 / 15) and res.mc_se == 0.0
    # the smallest attainable p is 1/15 > 0.05: no effect size can be rejected at 5%
    assert res.ci_low == -math.inf and res.ci_high == math.inf


@pytest.mark.fixture
def test_pvalue_plus_one_correction():
    draws = np.array([-3.0, 1.0, 2.0, 0.5, -2.5])           # |T*| ≥ 2: three draws
    p, se = randomisation_pvalue(2.0, draws, exact=True)
    assert p == pytest.approx(3 / 5) and se == 0.0
    p, se = randomisation_pvalue(2.0, draws, exact=False)
    assert p == pytest.approx(4 / 6) and se == pytest.approx(math.sqrt(4 / 6 * 2 / 6 / 5))
    p, _ = randomisation_pvalue(-10.0, draws, exact=False)
    assert p == pytest.approx(1 / 6)                           # never 0 with Monte Carlo draws
    # a draw equal to the observed value up to rounding counts as a tie
    p, _ = randomisation_pvalue(2.0 + 1e-14, draws, exact=True)
    assert p == pytest.approx(3 / 5)
    with pytest.raises(DataError, match="no finite statistic"):
        randomisation_pvalue(1.0, np.array([np.nan, 1.0]), exact=False)


# --------------------------------------------------------------------------- batched = per-draw refits
@pytest.mark.equivalence
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind", ["callable", "maps"])
@pytest.mark.parametrize("coef_index", [3, 2, 1])
def test_batched_coefficients_equal_lstsq_refits(weighted, kind, coef_index):
    d = did_panel(1, effect=0.02)
    A, _ = pair_assignments(40, 15, 60, rng=2)
    w = d["w"] if weighted else np.ones_like(d["y"])
    builder = did_builder(d["pair"], d["post"]) if kind == "callable" else did_maps(d["pair"], d["post"], 40)
    got = batched_wls_coef(d["y"], d["X_fixed"], builder, A, coef_index=coef_index,
                           weights=d["w"] if weighted else None, chunk_size=17)
    build = did_builder(d["pair"], d["post"])
    ref = [lstsq_coef(np.column_stack([d["X_fixed"], build(a[None])[0]]), d["y"], w, coef_index) for a in A]
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-13)


@pytest.mark.equivalence
@pytest.mark.parametrize("kind", ["callable", "maps"])
@pytest.mark.parametrize("absorb_as", ["labels", "matrix"])
def test_batched_twfe_with_absorbed_fixed_effects(kind, absorb_as):
    d = twfe_panel(3)
    A, _ = pair_assignments(12, 4, 40, rng=4)
    trust_d = np.eye(24)[d["trust"]]
    year_d = np.eye(4)[d["year"]]
    absorb = [d["trust"], d["year"]] if absorb_as == "labels" else np.hstack([trust_d, year_d])  # collinear: fine
    if kind == "callable":
        def builder(a):
            return (a[:, d["pair"]] * d["post"])[:, :, None]
    else:
        builder = assignment_map(d["pair"], 12, d["post"])
    got = batched_wls_coef(d["y"], None, builder, A, coef_index=0, weights=d["w"], absorb=absorb)
    full_fe = np.hstack([trust_d, year_d[:, 1:]])
    ref = [lstsq_coef(np.column_stack([a[d["pair"]] * d["post"], full_fe]), d["y"], d["w"], 0) for a in A]
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-13)


@pytest.mark.equivalence
@pytest.mark.parametrize("kind", ["callable", "maps"])
def test_batched_cr1_t_equals_statsmodels(kind):
    d = did_panel(5, effect=0.03)
    A, _ = pair_assignments(40, 15, 12, rng=6)
    builder = did_builder(d["pair"], d["post"]) if kind == "callable" else did_maps(d["pair"], d["post"], 40)
    st = batched_wls_stat(d["y"], d["X_fixed"], builder, A, coef_index=3, weights=d["w"], cluster=d["pair"],
                          h0=0.01, chunk_size=5)
    build = did_builder(d["pair"], d["post"])
    for i, a in enumerate(A):
        X = np.column_stack([d["X_fixed"], build(a[None])[0]])
        fit = sm.WLS(d["y"], X, weights=d["w"]).fit(cov_type="cluster", cov_kwds={"groups": d["pair"]})
        assert st.coef[i] == pytest.approx(fit.params[3], rel=1e-10)
        assert st.se[i] == pytest.approx(fit.bse[3], rel=1e-10)
        assert st.t[i] == pytest.approx((fit.params[3] - 0.01) / fit.bse[3], rel=1e-9)


@pytest.mark.equivalence
def test_batched_cr1_with_absorbed_fixed_effects_equals_statsmodels():
    d = twfe_panel(7)
    A, _ = pair_assignments(12, 4, 8, rng=8)
    st = batched_wls_stat(d["y"], None, assignment_map(d["pair"], 12, d["post"]), A, coef_index=0,
                          weights=d["w"], absorb=[d["trust"], d["year"]], cluster=d["pair"])
    full_fe = np.hstack([np.eye(24)[d["trust"]], np.eye(4)[d["year"]][:, 1:]])
    for i, a in enumerate(A):
        X = np.column_stack([a[d["pair"]] * d["post"], full_fe])
        fit = sm.WLS(d["y"], X, weights=d["w"]).fit(cov_type="cluster", cov_kwds={"groups": d["pair"]})
        assert st.se[i] == pytest.approx(fit.bse[0], rel=1e-8)   # K counts the absorbed effects, as statsmodels


@pytest.mark.equivalence
@pytest.mark.parametrize("working_model", ["identity", "inverse_weights"])
@pytest.mark.parametrize("design", ["did", "twfe"])
def test_batched_cr2_equals_variance_wls(working_model, design):
    variance = pytest.importorskip("rp2pr_eval.models.linear")
    if design == "did":
        d = did_panel(9, effect=0.02)
        A, _ = pair_assignments(40, 15, 6, rng=10)
        builder, kw, j = did_maps(d["pair"], d["post"], 40), dict(), 3
        build = did_builder(d["pair"], d["post"])

        def design_matrix(a):
            return np.column_stack([d["X_fixed"], build(a[None])[0]])
        Xf = d["X_fixed"]
    else:  # trust fixed effects nested in pair clusters: I - H_gg is singular (pseudo-inverse root)
        d = twfe_panel(11)
        A, _ = pair_assignments(12, 4, 6, rng=12)
        builder, kw, j, Xf = assignment_map(d["pair"], 12, d["post"]), dict(absorb=[d["trust"], d["year"]]), 0, None
        full_fe = np.hstack([np.eye(24)[d["trust"]], np.eye(4)[d["year"]][:, 1:]])

        def design_matrix(a):
            return np.column_stack([a[d["pair"]] * d["post"], full_fe])
    st = batched_wls_stat(d["y"], Xf, builder, A, coef_index=j, weights=d["w"], cluster=d["pair"], vcov="CR2",
                          working_model=working_model, **kw)
    for i, a in enumerate(A):
        fit = variance.wls(design_matrix(a), d["y"], weights=d["w"], cluster=d["pair"], vcov="CR2",
                           working_model=working_model)
        assert st.coef[i] == pytest.approx(fit.coef[j], rel=1e-9)
        assert st.se[i] == pytest.approx(fit.se[j], rel=1e-7)


@pytest.mark.fixture
def test_singular_draws_are_nan_and_rejected_by_pvalue():
    d = did_panel(13)
    A, _ = pair_assignments(40, 15, 5, rng=14)
    A = np.vstack([A, np.zeros((1, 40), dtype=np.int8)])     # nobody treated: treated column is all 0
    for builder in (did_maps(d["pair"], d["post"], 40), did_builder(d["pair"], d["post"])):
        c = batched_wls_coef(d["y"], d["X_fixed"], builder, A, coef_index=3)
        assert np.isfinite(c[:5]).all() and np.isnan(c[5])
    with pytest.raises(DataError, match="no finite statistic"):
        randomisation_pvalue(0.1, c, exact=False)


@pytest.mark.fixture
def test_bad_inputs():
    d = did_panel(15)
    A, _ = pair_assignments(40, 15, 5, rng=1)
    maps = did_maps(d["pair"], d["post"], 40)
    with pytest.raises(DataError, match="0/1"):
        batched_wls_coef(d["y"], d["X_fixed"], maps, A * 2, coef_index=3)
    with pytest.raises(DataError, match="units"):
        batched_wls_coef(d["y"], d["X_fixed"], maps, A[:, :30], coef_index=3)
    with pytest.raises(DataError, match="weights must be positive"):
        batched_wls_coef(d["y"], d["X_fixed"], maps, A, coef_index=3, weights=-d["w"])
    y = d["y"].copy()
    y[0] = np.inf
    with pytest.raises(DataError, match="y has missing"):
        batched_wls_coef(y, d["X_fixed"], maps, A, coef_index=3)
    with pytest.raises(ValueError, match="out of range"):
        batched_wls_coef(d["y"], d["X_fixed"], maps, A, coef_index=4)
    with pytest.raises(ValueError, match="out of range"):
        batched_wls_coef(d["y"], d["X_fixed"], did_builder(d["pair"], d["post"]), A, coef_index=4)
    with pytest.raises(ValueError, match="vcov"):
        batched_wls_stat(d["y"], d["X_fixed"], maps, A, coef_index=3, cluster=d["pair"], vcov="CR3")
    with pytest.raises(ValueError, match="statistic"):
        randomisation_test_linear(d["y"], d["X_fixed"], maps, d["obs"], coef_index=3, statistic="z")


# --------------------------------------------------------------------------- test inversion
def p_by_shifting(d, maps, A, exact, tau, *, statistic="estimate"):
    """p(τ) the slow way: shift y by τ·(observed treat × post), recompute everything."""
    z_obs = d["obs"][d["pair"]] * d["post"]
    y_tau = d["y"] - tau * z_obs
    if statistic == "estimate":
        draws = batched_wls_coef(y_tau, d["X_fixed"], maps, A, coef_index=3, weights=d["w"])
        obs = batched_wls_coef(y_tau, d["X_fixed"], maps, d["obs"][None], coef_index=3, weights=d["w"])[0]
    else:
        draws = batched_wls_stat(y_tau, d["X_fixed"], maps, A, coef_index=3, weights=d["w"], cluster=d["pair"]).t
        obs = batched_wls_stat(y_tau, d["X_fixed"], maps, d["obs"][None], coef_index=3, weights=d["w"],
                               cluster=d["pair"]).t[0]
    return randomisation_pvalue(obs, draws, exact=exact)[0]


@pytest.mark.fixture
@pytest.mark.parametrize("statistic", ["estimate", "t"])
def test_ci_bounds_are_where_p_crosses_one_minus_level(statistic):
    d = did_panel(17, effect=0.04)
    maps = did_maps(d["pair"], d["post"], 40)
    A, exact = pair_assignments(40, 15, 999, rng=18)
    lo, hi = invert_randomisation_test(d["y"], d["X_fixed"], maps, A, d["obs"], exact=exact, coef_index=3,
                                       weights=d["w"], statistic=statistic, cluster=d["pair"])
    est = batched_wls_coef(d["y"], d["X_fixed"], maps, d["obs"][None], coef_index=3, weights=d["w"])[0]
    assert lo < est < hi
    eps = 1e-7 * (hi - lo)
    for bound, inside in ((lo, lo + eps), (hi, hi - eps)):
        outside = 2 * bound - inside
        assert p_by_shifting(d, maps, A, exact, inside, statistic=statistic) >= 0.05
        assert p_by_shifting(d, maps, A, exact, outside, statistic=statistic) < 0.05
    # the one-call front end gives the same interval
    res = randomisation_test_linear(d["y"], d["X_fixed"], maps, d["obs"], coef_index=3, n_draws=999, seed=18,
                                    weights=d["w"], statistic=statistic, cluster=d["pair"])
    assert (res.ci_low, res.ci_high) == pytest.approx((lo, hi), abs=1e-12)
    assert res.p_value == pytest.approx(p_by_shifting(d, maps, A, exact, 0.0, statistic=statistic))


@pytest.mark.fixture
def test_exact_ci_on_small_design():
    """Exact enumeration (C(10, 4) = 210 assignments): bounds where the exact p crosses 0.10."""
    d = did_panel(19, n_pairs=10, n_treated=4, effect=0.05)
    maps = did_maps(d["pair"], d["post"], 10)
    A, exact = pair_assignments(10, 4, 10_000, rng=None)
    assert exact and A.shape[0] == 210
    lo, hi = invert_randomisation_test(d["y"], d["X_fixed"], maps, A, d["obs"], exact=True, coef_index=3,
                                       weights=d["w"], level=0.90)
    eps = 1e-7 * (hi - lo)
    assert p_by_shifting(d, maps, A, True, lo + eps) >= 0.10 > p_by_shifting(d, maps, A, True, lo - eps)
    assert p_by_shifting(d, maps, A, True, hi - eps) >= 0.10 > p_by_shifting(d, maps, A, True, hi + eps)


# --------------------------------------------------------------------------- size
@pytest.mark.simulation
def test_size_under_the_sharp_null():
    """200 seeded ILCOP-shaped datasets with no effect, 199 Monte Carlo re-randomisations each.

    Randomisation tests are exact under the sharp null, so the 5% rejection rate
    must be within the binomial 99.9% range (it may be below 5% only through the
    +1 correction and discreteness).  The CR1-studentised statistic is checked too.
    """
    reps, n_draws = 200, 199
    rej = {"estimate": 0, "t": 0}
    for rep in range(reps):
        d = did_panel(2000 + rep)
        maps = did_maps(d["pair"], d["post"], 40)
        for statistic in rej:
            res = randomisation_test_linear(d["y"], d["X_fixed"], maps, d["obs"], coef_index=3, n_draws=n_draws,
                                            seed=rep, weights=d["w"], statistic=statistic, cluster=d["pair"],
                                            ci=statistic == "estimate")
            rej[statistic] += res.p_value <= 0.05
            if statistic == "estimate":
                assert (res.ci_low <= 0.0 <= res.ci_high) == (res.p_value >= 0.05)
    half = 3.3 * math.sqrt(0.05 * 0.95 / reps)
    for statistic, count in rej.items():
        assert 0.05 - half < count / reps < 0.05 + half, (statistic, count / reps)
