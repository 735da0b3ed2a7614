"""ICCs: the moment variance components against R (lme4 REML on balanced data, one-way aov), the latent
ICCs against glmer, unbiasedness on data with known components, and rp.icc end to end."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rp2pr_eval as rp
from rp2pr_eval.errors import DataError, ParameterError
from rp2pr_eval.inference.icc import ICC_COLUMNS, icc_generator_settings
from rp2pr_eval.models.glmm import fit_glmm_logit
from rp2pr_eval.models.variance_components import moment_variance_components

REF_DIR = Path(__file__).parent / "reference"
REF = json.loads((REF_DIR / "icc_reference.json").read_text())


def _units(d: pd.DataFrame) -> pd.DataFrame:
    d = d.assign(tp=d["trust_id"] + ":" + d["post"].astype(str), cell=d["treated"] * 2 + d["post"])
    return (d.groupby("tp", sort=True)
            .agg(n=("y", "size"), s=("y", "sum"), trust=("trust_id", "first"), pair=("pair_id", "first"),
                 cell=("cell", "first"))
            .reset_index())


@pytest.mark.reference
@pytest.mark.parametrize("model", ["trust", "pair", "nested"])
def test_moment_components_equal_lmer_reml_on_balanced_data(model):
    """Balanced data: ANOVA estimators = REML (Searle et al. 1992 §6.7); lme4 1.1-31 via tests/reference/icc.R."""
    u = _units(pd.read_csv(REF_DIR / "data" / "icc_balanced.csv"))
    fixed = np.eye(4)[u["cell"].to_numpy()]
    groupings = {"trust": {"trust_id": u["trust"]}, "pair": {"pair_id": u["pair"]},
                 "nested": {"trust_id": u["trust"], "trust_period": np.arange(len(u))}}[model]
    vc = moment_variance_components(u["n"], u["s"], u["s"], fixed=fixed, groupings=groupings)
    ref = REF["balanced_reml"][model]
    assert set(vc.components) == set(ref)
    for name, value in ref.items():
        assert vc.components[name] == pytest.approx(value, rel=2e-5), name


@pytest.mark.reference
@pytest.mark.parametrize("level", ["trust", "pair"])
def test_oneway_anova_icc_equals_r_aov_unequal_sizes(level):
    """(MSB - MSW)/(MSB + (n0-1)MSW) from R's summary(aov()) with unequal cluster sizes (ICCbin 'aov')."""
    u = _units(pd.read_csv(REF_DIR / "data" / "icc_unbalanced.csv"))
    vc = moment_variance_components(u["n"], u["s"], u["s"], fixed=np.ones(len(u)), groupings={level: u[level]})
    ref = REF["unbalanced_oneway_aov"][level]
    assert vc.share([level]) == pytest.approx(ref["icc"], rel=1e-10)
    assert vc.components[level] == pytest.approx(ref["sigma2_between"], rel=1e-10)
    assert vc.components["residual"] == pytest.approx(ref["sigma2_within"], rel=1e-10)


@pytest.mark.reference
@pytest.mark.parametrize("groups", ["trust_id", "pair_id", "trust_period"])
def test_latent_icc_equals_glmer(groups):
    """sigma^2/(sigma^2 + pi^2/3) from glmer(y ~ treated*post + (1|g), nAGQ = 25)."""
    d = pd.read_csv(REF_DIR / "data" / "icc_unbalanced.csv")
    d["trust_period"] = d["trust_id"] + ":" + d["post"].astype(str)
    X = np.column_stack([np.ones(len(d)), d["treated"], d["post"], d["treated"] * d["post"]])
    fit = fit_glmm_logit(X, d["y"].to_numpy(float), d[groups].to_numpy(), n_quad=25)
    s2 = fit.sd ** 2
    ref = REF["unbalanced_glmer_nagq25"][groups]
    assert s2 / (s2 + math.pi ** 2 / 3) == pytest.approx(ref["icc"], abs=2e-5)
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-4)


def _known_components(rng, n_pairs=30, sd=(0.04, 0.06, 0.03), base=0.4):
    """Units (trust x period) of a linear-probability model with known pair, trust and trust-period SDs."""
    a = rng.normal(0, sd[0], n_pairs)
    treated = np.zeros(n_pairs, dtype=int)
    treated[rng.choice(n_pairs, n_pairs // 3, replace=False)] = 1
    rows = []
    for p in range(n_pairs):
        for t in range(2):
            b = rng.normal(0, sd[1])
            for post in (0, 1):
                m = int(rng.integers(40, 400))
                prob = base + 0.05 * post + 0.05 * treated[p] * post + a[p] + b + rng.normal(0, sd[2])
                rows.append((p, 2 * p + t, treated[p] * 2 + post, m, rng.binomial(m, prob)))
    u = np.array(rows)
    return u[:, 0], u[:, 1], u[:, 2], u[:, 3].astype(float), u[:, 4].astype(float)


@pytest.mark.simulation
def test_moment_components_unbiased_with_known_truth():
    """Mean of 150 seeded estimates within 3 MC SE of the planted pair, trust and trust-period variances."""
    rng = np.random.default_rng(2026)
    est = []
    for _ in range(150):
        pair, trust, cell, n, s = _known_components(rng)
        vc = moment_variance_components(n, s, s, fixed=np.eye(4)[cell],
                                        groupings={"pair": pair, "trust": trust, "tp": np.arange(len(n))})
        est.append([vc.components["pair"], vc.components["trust"], vc.components["tp"]])
    est = np.array(est)
    mean, mcse = est.mean(axis=0), est.std(axis=0, ddof=1) / math.sqrt(len(est))
    truth = np.array([0.04, 0.06, 0.03]) ** 2
    assert np.all(np.abs(mean - truth) < 3 * mcse), (mean, mcse, truth)
    assert np.all(mcse < truth / 3)  # the check has power: MC SE well below the components


def test_moment_components_reject_bad_input():
    n, s = np.array([10.0, 10.0]), np.array([3.0, 4.0])
    with pytest.raises(DataError, match="at least 2 groups"):
        moment_variance_components(n, s, s, fixed=np.ones(2), groupings={"g": np.array([1, 1])})
    with pytest.raises(DataError, match="positive number"):
        moment_variance_components(np.array([0.0, 1.0]), s, s, fixed=np.ones(2), groupings={"g": np.array([1, 2])})
    with pytest.raises(DataError, match="singular"):
        # a grouping identical to the fixed cells leaves nothing to estimate
        moment_variance_components(np.array([10.0, 12, 9, 11]), np.array([3.0, 5, 2, 6]), np.array([3.0, 5, 2, 6]),
                                   fixed=np.eye(2)[[0, 0, 1, 1]], groupings={"g": np.array([0, 0, 1, 1])})


@pytest.fixture(scope="module")
def small_icc(small_patients):
    return rp.icc(small_patients, "active_treatment", n_boot=49, seed=3, n_quad=1)


def test_icc_frame_shape_and_values(small_icc, small_patients):
    f = small_icc
    assert list(f.columns) == list(ICC_COLUMNS)
    assert list(zip(f["level"], f["scale"])) == [
        ("trust", "latent"), ("trust", "proportion"), ("pair", "latent"), ("pair", "proportion"),
        ("within-period", "latent"), ("within-period", "proportion"), ("between-period", "proportion")]
    assert (f["quantity"] == np.where(f["level"] == "between-period", "cluster_autocorrelation", "icc")).all()
    assert f[["icc", "ci_low", "ci_high"]].notna().all().all()
    assert ((f["ci_low"] <= f["icc"]) & (f["icc"] <= f["ci_high"])).all()
    assert f.loc[f["level"] == "pair", "n_clusters"].tolist() == [12, 12]
    # the latent trust row is the GLMM's sigma transformed
    e = rp.mixed_logistic(small_patients, "active_treatment", groups="trust_id", n_quad=1)
    s2 = e.details["re_sd"] ** 2
    assert f.loc[0, "icc"] == pytest.approx(s2 / (s2 + math.pi ** 2 / 3), rel=1e-12)


def test_icc_bootstrap_is_seeded(small_patients, small_icc):
    again = rp.icc(small_patients, "active_treatment", n_boot=49, seed=3, scales=["proportion"])
    other = rp.icc(small_patients, "active_treatment", n_boot=49, seed=4, scales=["proportion"])
    prop = small_icc[small_icc["scale"] == "proportion"].reset_index(drop=True)
    pd.testing.assert_frame_equal(again, prop)
    assert not np.allclose(other["ci_low"], prop["ci_low"])


def test_icc_rejects_bad_options(small_patients):
    with pytest.raises(ValueError, match="scales"):
        rp.icc(small_patients, "active_treatment", scales=["logit"])
    with pytest.raises(ParameterError, match="n_boot"):
        rp.icc(small_patients, "active_treatment", n_boot=-1)
    with pytest.raises(DataError, match="binary"):
        rp.icc(small_patients, "days_referral_to_treatment", scales=["proportion"], n_boot=0)


@pytest.mark.fixture
def test_generator_settings_invert_the_ar1_algebra():
    """With yearly AR(1) phi = 0.7 and 2008-09 vs 2012-13, r = phi^3 (1 + phi) / 2 (lags 3, 4, 4, 5) and c_pp = (1 + phi) / 2."""
    phi, sd = 0.7, 0.3
    c_pp = (1 + phi) / 2
    rho_w = sd ** 2 * c_pp / (sd ** 2 * c_pp + math.pi ** 2 / 3)
    table = pd.DataFrame({"outcome": "active_treatment", "level": ["within-period", "between-period"],
                          "scale": ["latent", "proportion"], "icc": [rho_w, phi ** 3 * (1 + phi) / 2]})
    got = icc_generator_settings(table)
    assert got["trust_autocorrelation"] == pytest.approx(phi, abs=1e-9)
    assert got["trust_sd"]["active_treatment"] == pytest.approx(sd, abs=1e-9)
    with pytest.raises(ParameterError, match="no finite"):
        icc_generator_settings(table.iloc[:1])


@pytest.mark.simulation
def test_latent_icc_recovers_planted_logit_variance():
    """Logit-scale trust x period intercepts with SD 0.5 (ICC 0.0706): mean GLMM ICC over 20 seeds within 3 MC SE."""
    rng = np.random.default_rng(7)
    sd = 0.5
    truth = sd ** 2 / (sd ** 2 + math.pi ** 2 / 3)
    est = []
    for _ in range(20):
        k = 160
        cell = np.tile([0, 1, 2, 3], k // 4)
        m = rng.integers(100, 400, k).astype(float)
        eta = -0.5 + 0.2 * (cell >= 2) + 0.1 * (cell % 2) + rng.normal(0, sd, k)
        s = rng.binomial(m.astype(int), 1 / (1 + np.exp(-eta))).astype(float)
        X = np.column_stack([np.ones(k), cell >= 2, cell % 2, (cell >= 2) * (cell % 2)]).astype(float)
        fit = fit_glmm_logit(X, s, np.arange(k), trials=m, n_quad=25)
        est.append(fit.sd ** 2 / (fit.sd ** 2 + math.pi ** 2 / 3))
    est = np.array(est)
    mcse = est.std(ddof=1) / math.sqrt(len(est))
    assert abs(est.mean() - truth) < 3 * mcse and mcse < truth / 10, (est.mean(), mcse, truth)


def test_power_simulation_takes_iccs():
    """power_simulation(icc=...) plants the generator settings that reproduce the given ICCs."""
    phi, sd = 0.5, 0.4
    c_pp = (1 + phi) / 2
    table = pd.DataFrame({"outcome": "active_treatment", "level": ["within-period", "between-period"],
                          "scale": ["latent", "proportion"],
                          "icc": [sd ** 2 * c_pp / (sd ** 2 * c_pp + math.pi ** 2 / 3), phi ** 3 * (1 + phi) / 2]})
    res = rp.power_simulation(outcome="active_treatment", effects=[0.0, 0.3], n_sims=2, icc=table, backend="serial",
                              simulate_kwargs={"volume_median": 40, "volume_clip": (20, 80)})
    kwargs = res.simulate_kwargs
    assert kwargs["trust_autocorrelation"] == pytest.approx(phi, abs=1e-9)
    assert kwargs["trust_sd"]["active_treatment"] == pytest.approx(sd, abs=1e-9)
    assert kwargs["volume_median"] == 40


@pytest.mark.equivalence
def test_icc_from_a_trust_panel_equals_the_patient_path(small_patients, small_icc):
    """rp.icc(trust panel) (issue 14): the proportion scale and the pair bootstrap number for number; the latent
    scale to 1e-9 (the same binomial cells, but the panel's cells carry log C(n, y) constants that the patients'
    Bernoulli rows do not, and the optimiser sees the objective with them: differences ~1e-10)."""
    panel = rp.trust_panel(small_patients, "active_treatment", by="audit_year")
    got = rp.icc(panel, "active_treatment", n_boot=49, seed=3, n_quad=1)
    want = small_icc
    pd.testing.assert_frame_equal(got.drop(columns=["icc", "ci_low", "ci_high"]),
                                  want.drop(columns=["icc", "ci_low", "ci_high"]))
    prop = (want["scale"] == "proportion").to_numpy()
    for col in ("icc", "ci_low", "ci_high"):
        np.testing.assert_array_equal(got.loc[prop, col].to_numpy(), want.loc[prop, col].to_numpy())
        np.testing.assert_allclose(got.loc[~prop, col].to_numpy(), want.loc[~prop, col].to_numpy(), rtol=0, atol=1e-9)
    with pytest.raises(DataError, match="covariates need the patient table"):
        rp.icc(panel, "active_treatment", covariates=["age"], n_boot=0)


@pytest.mark.equivalence
def test_power_planned_from_a_trust_panel_equals_the_patient_path(small_patients, small_icc):
    """power_simulation(icc=rp.icc(panel)) = power_simulation(icc=rp.icc(patients)): the same trials and rejections,
    the trust SD to 1e-8 (the latent ICC's ~1e-10 times d sigma / d rho = sigma / (2 rho (1 - rho)) ~ 20 here) and the
    trials' numbers to 1e-9 (the outcomes are the same draws; only the truth's risk difference moves with sigma)."""
    panel = rp.trust_panel(small_patients, "active_treatment", by="audit_year")
    from_panel = rp.icc(panel, "active_treatment", n_boot=0, n_quad=1)
    kw = dict(outcome="active_treatment", effects=[0.0, 0.4], n_sims=3, backend="serial", seed=2,
              simulate_kwargs={"volume_median": 40, "volume_clip": (20, 80)})
    a = rp.power_simulation(icc=small_icc, **kw)
    b = rp.power_simulation(icc=from_panel, **kw)
    assert a.simulate_kwargs["trust_sd"]["active_treatment"] == pytest.approx(
        b.simulate_kwargs["trust_sd"]["active_treatment"], abs=1e-8)
    assert a.simulate_kwargs["trust_autocorrelation"] == b.simulate_kwargs["trust_autocorrelation"]
    assert (a.simulations["reject"].to_numpy() == b.simulations["reject"].to_numpy()).all()
    for col in ("estimate", "se", "p_value", "risk_difference"):
        np.testing.assert_allclose(a.simulations[col].to_numpy(), b.simulations[col].to_numpy(), rtol=0, atol=1e-9)
