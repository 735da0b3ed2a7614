"""Front ends of design-based inference and multiplicity: equivalence, fixtures, seeded size/FWER."""
from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

import rp2pr_eval as rp
from rp2pr_eval.inference.multiplicity import romano_wolf
from rp2pr_eval.results.effect import Effect


@pytest.mark.equivalence
@pytest.mark.parametrize("estimator", ["did_aggregate", "ancova", "did_twfe"])
def test_vectorised_ri_equals_refit_path_draw_for_draw(small_patients, estimator):
    fast = rp.randomisation_test(small_patients, "cns_seen", estimator, n_draws=25, seed=3, ci=False)
    fn = {"did_aggregate": rp.did_aggregate, "ancova": rp.ancova, "did_twfe": rp.did_twfe}[estimator]
    slow = rp.randomisation_test(small_patients, "cns_seen", lambda p, o, **k: fn(p, o, **k), n_draws=25, seed=3)
    np.testing.assert_allclose(fast.draws, slow.draws, rtol=1e-9, atol=1e-12)
    assert fast.observed_statistic == pytest.approx(slow.observed_statistic, rel=1e-10)
    assert fast.p_value == slow.p_value and not fast.exact


@pytest.mark.equivalence
def test_studentised_ri_equals_refit_with_cr1(small_patients):
    fast = rp.randomisation_test(small_patients, "cns_seen", "did_aggregate", n_draws=15, seed=4, statistic="t",
                                 vcov="CR1", ci=False)
    slow = rp.randomisation_test(small_patients, "cns_seen",
                                 lambda p, o, **k: rp.did_aggregate(p, o, vcov="CR1", **k), n_draws=15, seed=4,
                                 statistic="t")
    np.testing.assert_allclose(fast.draws, slow.draws, rtol=1e-8)


@pytest.mark.fixture
def test_exact_enumeration_on_a_small_design():
    """6 pairs, 2 treated: C(6, 2) = 15 assignments, all enumerated; p is the exact share."""
    df = rp.simulate_nlca(seed=8, n_pairs=6, n_treated_pairs=2, volume_median=40, volume_clip=(20, 80))
    r = rp.randomisation_test(df, "active_treatment", "did_aggregate", n_draws=100, seed=1, ci=False)
    assert r.exact and r.n_draws == 15
    share = np.mean(np.abs(r.draws) >= abs(r.observed_statistic) * (1 - 1e-9))
    assert r.p_value == pytest.approx(share)
    # the observed assignment is one of the 15: its statistic appears among the draws
    assert np.isclose(r.draws, r.observed_statistic).any()


@pytest.mark.fixture
def test_same_seed_shares_assignments_across_outcomes(small_patients):
    a = rp.randomisation_test(small_patients, "cns_seen", n_draws=200, seed=9, ci=False)
    b = rp.randomisation_test(small_patients, "active_treatment", n_draws=200, seed=9, ci=False)
    c = rp.randomisation_test(small_patients, "cns_seen", n_draws=200, seed=9, ci=False)
    np.testing.assert_array_equal(a.draws, c.draws)
    assert not np.allclose(a.draws, b.draws)


@pytest.mark.simulation
def test_ri_and_wild_size_at_the_ilcop_design():
    """120 null ILCOP-shaped trials (volumes reduced): RI and WCR rejection at 5 % within MC limits."""
    rng = np.random.default_rng(77)
    rej_ri = rej_wild = 0
    reps = 120
    for _ in range(reps):
        df = rp.simulate_nlca(seed=rng, volume_median=40, volume_clip=(20, 100))
        rej_ri += rp.randomisation_test(df, "active_treatment", n_draws=199, seed=rng, ci=False).p_value <= 0.05
        rej_wild += rp.wild_cluster_bootstrap(df, "active_treatment", n_boot=199, seed=rng).p_value <= 0.05
    # binomial(120, .05): 99 % interval ≈ [1, 13]
    assert 1 <= rej_ri <= 13, rej_ri
    assert 1 <= rej_wild <= 13, rej_wild


@pytest.mark.fixture
def test_wild_bootstrap_front_end(small_patients):
    e = rp.wild_cluster_bootstrap(small_patients, "active_treatment", n_boot=999, weights="webb", seed=2)
    ref = rp.did_aggregate(small_patients, "active_treatment", vcov="CR1")
    assert e.estimate == pytest.approx(ref.estimate) and e.se == pytest.approx(ref.se)
    assert e.ci_low < e.estimate < e.ci_high and 0 < e.p_value <= 1
    assert e.details["boot_weights"] == "webb" and e.n_clusters == 12
    with pytest.raises(ValueError, match="weights='normal' is not valid"):
        rp.wild_cluster_bootstrap(small_patients, "active_treatment", weights="normal")
    with pytest.raises(ValueError, match="supports did_aggregate, ancova, did_twfe, did_logistic, gee_logistic"):
        rp.wild_cluster_bootstrap(small_patients, "active_treatment", rp.mixed_logistic)
    wcu = rp.wild_cluster_bootstrap(small_patients, "active_treatment", n_boot=999, weights="webb", seed=2, null=False)
    assert wcu.estimate == e.estimate and wcu.se == e.se and wcu.vcov.startswith("WCU")
    assert wcu.details["null_imposed"] is False and e.details["null_imposed"] is True
    assert wcu.p_value != e.p_value and wcu.ci_low < wcu.estimate < wcu.ci_high
    with pytest.raises(ValueError, match="null must be True"):
        rp.wild_cluster_bootstrap(small_patients, "active_treatment", null="no")


# ---------------------------------------------------------------- multiplicity
def _effects(ps):
    return [Effect(outcome=f"o{i}", estimator="ancova", estimand="x", scale="risk_difference", estimate=0.01 * i,
                   se=0.01, ci_low=0, ci_high=0, p_value=p, df=20, n_obs=80, n_trusts=80, n_clusters=40,
                   cluster="pair_id", vcov="CR2") for i, p in enumerate(ps)]


@pytest.mark.equivalence
@pytest.mark.parametrize("method", ["holm", "fdr_bh"])
def test_holm_and_bh_equal_statsmodels(method):
    ps = [0.001, 0.04, 0.03, 0.2, 0.012, 0.5]
    out = rp.adjust_pvalues(_effects(ps), method=method)
    expected = multipletests(ps, method=method)[1]
    assert [e.details["p_adjusted"] for e in out] == pytest.approx(list(expected))
    assert all(e.details["adjust_method"] == method for e in out)
    assert out[0].p_value == 0.001  # raw p kept


@pytest.mark.fixture
def test_romano_wolf_by_hand():
    obs = np.array([3.0, 1.0])
    draws = np.array([[0.5, 0.2], [3.5, 0.1], [0.1, 2.0], [0.2, 0.3]])
    # step 1 (|T|=3): max over both columns ≥ 3 in 1 of 4 draws → (1+1)/5
    # step 2 (|T|=1): column 2 alone ≥ 1 in 1 draw → (1+1)/5, monotone max → .4
    np.testing.assert_allclose(romano_wolf(obs, draws), [0.4, 0.4])
    with pytest.raises(ValueError, match="method='romano_wolf' needs null_draws"):
        rp.adjust_pvalues(_effects([0.1, 0.2]), method="romano_wolf")


@pytest.mark.simulation
def test_romano_wolf_controls_familywise_error():
    """Six correlated null statistics (ρ = 0.5), 400 families × 999 draws: FWER ≤ 5 % + MC error."""
    rng = np.random.default_rng(5)
    m, B, reps = 6, 999, 400
    cov = 0.5 * np.ones((m, m)) + 0.5 * np.eye(m)
    L = np.linalg.cholesky(cov)
    errors_rw = errors_none = 0
    for _ in range(reps):
        obs = L @ rng.standard_normal(m)
        draws = rng.standard_normal((B, m)) @ L.T
        p = romano_wolf(obs, draws)
        errors_rw += (p <= 0.05).any()
        raw = (1 + (np.abs(draws) >= np.abs(obs)).sum(axis=0)) / (B + 1)
        errors_none += (raw <= 0.05).any()
    assert errors_rw / reps <= 0.05 + 2.6 * np.sqrt(0.05 * 0.95 / reps)
    assert errors_none / reps > 0.12   # unadjusted FWER is far above 5 %
