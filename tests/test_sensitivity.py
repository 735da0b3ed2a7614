"""Parallel-trends sensitivity: the EventStudy covariance, the front end, hand-checkable cases and coverage."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

import rp2pr_eval as rp
from rp2pr_eval.inference import honest_did as hd
from rp2pr_eval.inference.sensitivity import ParallelTrendsSensitivity


@pytest.fixture(scope="module")
def bundled_es(bundled_patients):
    return rp.event_study(bundled_patients, "active_treatment")


@pytest.fixture(scope="module")
def strong_es():
    """A trial with a large planted effect, so the sets exclude 0 at small bounds."""
    patients = rp.simulate_nlca(seed=3, effects={"active_treatment": 0.8})
    return rp.event_study(patients, "active_treatment")


def _arrays(es):
    V, years = es.covariance()
    beta = np.array([e.estimate for e in es.effects])
    return beta, V, years


# --------------------------------------------------------------------------- EventStudy covariance
def test_event_study_carries_its_covariance(bundled_es):
    beta, V, years = _arrays(bundled_es)
    assert years == (2008, 2010, 2011, 2012, 2013)
    assert np.allclose(np.sqrt(np.diag(V)), [e.se for e in bundled_es.effects], rtol=1e-12)
    assert np.allclose(V, V.T) and np.all(np.linalg.eigvalsh(V) > 0)
    assert abs(V[3, 4]) > 0                       # the years are correlated: the off-diagonal matters
    back = rp.EventStudy.from_dict(json.loads(json.dumps(bundled_es.to_dict())))
    assert back == bundled_es


def test_event_study_saved_without_covariance_still_loads(bundled_es):
    d = bundled_es.to_dict()
    del d["vcov"], d["vcov_years"]
    old = rp.EventStudy.from_dict(d)
    assert old.vcov is None
    with pytest.raises(ValueError, match="no covariance"):
        rp.parallel_trends_sensitivity(old)


# --------------------------------------------------------------------------- hand-checkable cases
@pytest.mark.fixture
def test_flci_with_one_pre_period_is_the_extrapolated_trend(bundled_es):
    """K = 1: v_pre is fixed by 'no bias from a linear trend': θ̂ = l'β_post + (Σ t l_t)·β_2008."""
    beta, V, _ = _arrays(bundled_es)
    l = np.array([0, 0, 0.5, 0.5])
    f = hd.flci(beta, V, 1, l, 0.0)
    # event times relative to 2009: 2010 → 1, …, 2013 → 4; the average of 3 and 4 is 3.5
    assert f.estimate == pytest.approx(0.5 * (beta[3] + beta[4]) + 3.5 * beta[0], abs=1e-14)
    v = np.array([3.5, 0, 0, 0.5, 0.5])
    assert f.half_length == pytest.approx(1.959963984540054 * math.sqrt(v @ V @ v), rel=1e-12)
    # with M > 0 the worst-case bias adds M·Σ|ψ|: ψ are the weights on the second differences
    t, H = hd._sd_bias_map(1, 4)
    assert hd.flci(beta, V, 1, l, 0.01).worst_case_bias == pytest.approx(0.01 * np.abs(H.T @ v).sum(), rel=1e-12)


@pytest.mark.fixture
def test_relative_magnitudes_identified_set_by_hand():
    """One pre-period difference d: each post difference is within M̄|d|, so θ = τ_2 lies in β_2 ∓ 2M̄|d|."""
    beta = np.array([-0.02, 0.0, 0.10])         # δ_{-1} = −0.02 (Δ_0 = 0.02), post β_1, β_2
    lo, hi = hd.rm_identified_set(beta, 1, np.array([0.0, 1.0]), 1.5)
    assert (lo, hi) == pytest.approx((0.10 - 2 * 1.5 * 0.02, 0.10 + 2 * 1.5 * 0.02), abs=1e-12)


def test_sets_are_nested_in_the_bound(bundled_es):
    for restriction in ("relative_magnitudes", "smoothness"):
        frame = rp.parallel_trends_sensitivity(bundled_es, restriction, breakdown=False).to_frame()
        assert np.all(np.diff(frame["ci_low"]) <= 1e-12) and np.all(np.diff(frame["ci_high"]) >= -1e-12)


def test_lp_path_equals_vertex_enumeration(bundled_es):
    beta, V, _ = _arrays(bundled_es)
    l = np.array([0, 0, 0.5, 0.5])
    for restriction, method, m in (("relative_magnitudes", "C-LF", 0.5), ("relative_magnitudes", "conditional", 1.0),
                                   ("smoothness", "conditional", 0.005)):
        kw = dict(restriction=restriction, m=m, method=method, grid_points=25, n_sims=150, seed=3)
        a = hd.honest_interval(beta, V, 1, l, **kw)
        b = hd.honest_interval(beta, V, 1, l, max_bases=0, **kw)
        assert a.details["dual_vertices"] == "enumerated" and b.details["dual_vertices"] == "linear programs"
        assert (b.ci_low, b.ci_high) == pytest.approx((a.ci_low, a.ci_high), abs=1e-7)


# --------------------------------------------------------------------------- the front end
def test_front_end_on_the_bundled_data(bundled_es):
    res = rp.parallel_trends_sensitivity(bundled_es, "relative_magnitudes", m=[0, 0.5, 1, 2])
    frame = res.to_frame()
    assert list(frame.columns[:3]) == ["m", "ci_low", "ci_high"] and len(frame) == 4
    assert res.target == "average of 2012–2013" and res.target_weights == (0, 0, 0.5, 0.5)
    assert res.pre_years == (2008,) and res.post_years == (2010, 2011, 2012, 2013)
    # the event study's own 2012–13 average is not significant, so the set includes 0 already at M̄ = 0
    assert res.original_ci_low < 0 < res.original_ci_high and res.breakdown == 0.0
    # small_sample="t": the Wald interval uses the event study's Satterthwaite t quantile
    est = 0.5 * (bundled_es.effects[3].estimate + bundled_es.effects[4].estimate)
    assert res.estimate == pytest.approx(est, abs=1e-15)
    assert res.variance_inflation > 1 and res.df == pytest.approx(min(e.df for e in bundled_es.effects))
    back = ParallelTrendsSensitivity.from_dict(json.loads(json.dumps(res.to_dict())))
    assert back == res


def test_breakdown_value_is_where_the_set_reaches_zero(strong_es):
    for restriction in ("relative_magnitudes", "smoothness"):
        res = rp.parallel_trends_sensitivity(strong_es, restriction, target=2012)
        assert 0 < res.breakdown < math.inf, restriction
        below, above = res.breakdown * 0.97, res.breakdown * 1.03
        sets = rp.parallel_trends_sensitivity(strong_es, restriction, target=2012, m=[below, above],
                                              breakdown=False).to_frame()
        assert list(sets["includes_zero"]) == [False, True]


def test_infinite_breakdown_round_trips(bundled_es):
    res = rp.parallel_trends_sensitivity(bundled_es, breakdown=False)
    res = dataclasses.replace(res, breakdown=math.inf)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["breakdown"] == "inf" and ParallelTrendsSensitivity.from_dict(d).breakdown == math.inf


@pytest.mark.parametrize("kwargs, message", [
    ({"restriction": "linear"}, "restriction"),
    ({"restriction": "relative_magnitudes", "method": "FLCI"}, "not available"),
    ({"m": [-1.0]}, "non-negative"),
    ({"target": 2009}, "not event-study years after"),
    ({"target": "last"}, "target"),
    ({"level": 95}, "level"),
    ({"n_sims": 10}, "n_sims"),
])
def test_bad_options_are_refused(bundled_es, kwargs, message):
    with pytest.raises(ValueError, match=message):
        rp.parallel_trends_sensitivity(bundled_es, **kwargs)


def test_reference_year_must_be_the_last_pre_year(bundled_patients):
    es = rp.event_study(bundled_patients, "active_treatment", reference_year=2008)
    with pytest.raises(ValueError, match="reference_year=2009"):
        rp.parallel_trends_sensitivity(es)


# --------------------------------------------------------------------------- coverage under parallel trends
def _coverage(V, n_reps, seed, restriction, method):
    """Share of draws β̂ ~ N(0, V) (exact parallel trends, θ = 0) whose set at bound 0 contains θ."""
    rng = np.random.default_rng(seed)
    L = np.linalg.cholesky(V)
    l = np.array([0, 0, 0.5, 0.5])
    hits = [hd.contains_zero(L @ rng.standard_normal(5), V, 1, l, restriction=restriction, m=0.0, method=method,
                             n_sims=500, seed=1) for _ in range(n_reps)]
    return float(np.mean(hits))


@pytest.mark.simulation
@pytest.mark.parametrize("restriction, method", [("relative_magnitudes", "C-LF"), ("relative_magnitudes", "conditional"),
                                                 ("smoothness", "FLCI")])
def test_coverage_at_zero_bound_small(bundled_es, restriction, method):
    V, _ = bundled_es.covariance()
    cov = _coverage(V, 300, 20, restriction, method)
    assert cov >= 0.95 - 2.5 * math.sqrt(0.95 * 0.05 / 300)       # MC SE 0.013


@pytest.mark.simulation
@pytest.mark.slow
@pytest.mark.parametrize("restriction, method", [("relative_magnitudes", "C-LF"), ("smoothness", "FLCI")])
def test_coverage_at_zero_bound_large(bundled_es, restriction, method):
    V, _ = bundled_es.covariance()
    cov = _coverage(V, 4000, 21, restriction, method)
    assert cov >= 0.95 - 2.5 * math.sqrt(0.95 * 0.05 / 4000)      # MC SE 0.0034
