"""Block exchangeable GEE and the Kauermann–Carroll / Fay–Graubard sandwiches.

Reference: tests/reference/gee_block.R (geepack 1.3 ``geeglm(corstr = "userdefined", zcor = ...)``
with a two-column same-block / different-block indicator, and dense hand formulas of the MD, KC
(geesmv ``GEE.var.kc``) and FG (``GEE.var.fg``) sandwiches at geepack's estimates).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rp2pr_eval as rp
from rp2pr_eval import models
from rp2pr_eval.models.gee import GeeConvergenceWarning, fit_gee_logit
from rp2pr_eval.models.gee_solver import sandwich_set

REF_DIR = Path(__file__).parent / "reference"
REF = json.loads((REF_DIR / "gee_block_reference.json").read_text())


@pytest.fixture(scope="module")
def data():
    return pd.read_csv(REF_DIR / "data" / "gee_block_data.csv")


def _X(d):
    return np.column_stack([np.ones(len(d)), d["treat"], d["post"], d["treat"] * d["post"], d["x"]])


@pytest.fixture(scope="module")
def fit(data):
    return fit_gee_logit(_X(data), data["y"], data["cluster"], cov_struct="block_exchangeable", blocks=data["block"],
                         tol=1e-12)


@pytest.mark.reference
def test_block_exchangeable_matches_geepack_userdefined(fit):
    assert fit.rho_method == "iterated" and fit.converged
    np.testing.assert_allclose(fit.coef, REF["coef"], rtol=0, atol=1e-10)
    assert fit.working_corr == pytest.approx(REF["alpha_within"], abs=1e-10)
    assert fit.working_corr_between == pytest.approx(REF["alpha_between"], abs=1e-10)
    np.testing.assert_allclose(fit.vcov_robust, REF["vcov_robust_geepack"], rtol=1e-8, atol=1e-14)


@pytest.mark.reference
@pytest.mark.parametrize("which", ["mancl_derouen", "kauermann_carroll", "fay_graubard"])
def test_bias_corrected_sandwiches_match_dense_r_formulas(fit, which):
    np.testing.assert_allclose(getattr(fit, f"vcov_{which}"), REF[f"vcov_{which}_hand"], rtol=1e-8, atol=1e-14)


@pytest.mark.reference
@pytest.mark.parametrize("which", ["kauermann_carroll", "fay_graubard"])
def test_vcov_option_selects_the_correction(data, fit, which):
    other = fit_gee_logit(_X(data), data["y"], data["cluster"], cov_struct="block_exchangeable",
                          blocks=data["block"], tol=1e-12, vcov=which)
    np.testing.assert_allclose(other.se, np.sqrt(np.diag(REF[f"vcov_{which}_hand"])), rtol=1e-8)
    # ordering of the corrections on these data: robust < FG, KC < MD
    se = {k: np.sqrt(np.diag(getattr(fit, f"vcov_{k}"))) for k in ("robust", "kauermann_carroll", "mancl_derouen")}
    assert np.all(se["robust"] < se["kauermann_carroll"]) and np.all(se["kauermann_carroll"] < se["mancl_derouen"])


def test_block_exchangeable_reduces_to_exchangeable(data):
    """alpha0 = alpha1 = rho is the exchangeable working correlation (same beta and sandwiches at that rho)."""
    X, y, g = _X(data), data["y"], data["cluster"]
    rho = 0.04
    blk = fit_gee_logit(X, y, g, cov_struct="block_exchangeable", blocks=data["block"], rho=(rho, rho), tol=1e-12)
    exc = fit_gee_logit(X, y, g, cov_struct="exchangeable", rho=rho, tol=1e-12)
    np.testing.assert_allclose(blk.coef, exc.coef, atol=1e-10)
    np.testing.assert_allclose(blk.vcov_mancl_derouen, exc.vcov_mancl_derouen, rtol=1e-8)
    np.testing.assert_allclose(blk.vcov_kauermann_carroll, exc.vcov_kauermann_carroll, rtol=1e-8)


def test_sandwich_set_kc_matches_dense_matrix_power():
    """(I - H)^{-1/2} on n x n matrices vs the p x p identity f(I - H) -> f(I - B C) used here."""
    from scipy import linalg

    rng = np.random.default_rng(0)
    Xs = [rng.normal(size=(int(rng.integers(3, 8)), 3)) for _ in range(12)]
    rs = [rng.normal(size=len(x)) for x in Xs]
    B = np.array([x.T @ x for x in Xs])
    s = np.array([x.T @ r for x, r in zip(Xs, rs)])
    _, md, kc, _, _ = sandwich_set(B, s)
    C = np.linalg.inv(B.sum(0))
    meat_md, meat_kc = np.zeros((3, 3)), np.zeros((3, 3))
    for x, r in zip(Xs, rs):
        IH = np.eye(len(x)) - x @ C @ x.T
        a = x.T @ np.linalg.solve(IH, r)
        b = x.T @ linalg.fractional_matrix_power(IH, -0.5).real @ r
        meat_md += np.outer(a, a)
        meat_kc += np.outer(b, b)
    np.testing.assert_allclose(md, C @ meat_md @ C, rtol=1e-10)
    np.testing.assert_allclose(kc, C @ meat_kc @ C, rtol=1e-10)


def test_block_options_are_checked(data):
    X, y, g = _X(data), data["y"], data["cluster"]
    with pytest.raises(ValueError, match="needs blocks"):
        fit_gee_logit(X, y, g, cov_struct="block_exchangeable")
    with pytest.raises(ValueError, match="rho="):
        fit_gee_logit(X, y, g, cov_struct="block_exchangeable", blocks=data["block"], rho=0.1)
    with pytest.raises(rp.DataError, match="not positive definite"):
        fit_gee_logit(X, y, g, cov_struct="block_exchangeable", blocks=data["block"], rho=(0.2, 0.5))
    with pytest.raises(ValueError, match="vcov"):
        fit_gee_logit(X, y, g, vcov="CR2")


def test_formula_interface_takes_blocks(data, fit):
    res = models.gee_logit("y ~ treat + post + x + treat:post", data=data, groups="cluster", blocks="block",
                           cov_struct="block_exchangeable", vcov="kauermann_carroll")
    np.testing.assert_allclose(res.coef, fit.coef[[0, 1, 2, 4, 3]], atol=1e-7)
    assert res.info["working_corr_between"] == pytest.approx(fit.working_corr_between, abs=1e-7)


@pytest.mark.simulation
def test_ilcop_volume_block_fit_uses_one_step_when_no_joint_solution():
    """Full ILCOP volume (seed 5): the iterated alphas have no solution; the fit holds the one-step alphas,
    converges in beta, and gee_logistic reports it (trust x period blocks within pairs)."""
    df = rp.simulate_nlca(seed=5, effects={"active_treatment": 0.3})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        e = rp.gee_logistic(df, "active_treatment", covariates=rp.CASE_MIX, cov_struct="block_exchangeable")
    d = e.details
    assert d["converged"] and np.isfinite(e.se)
    assert 0.0 < d["working_corr_between"] < d["working_corr"] < 0.05
    if d["rho_method"] != "iterated":
        assert d["rho_method"] == "one-step (no joint solution)"
        assert any(issubclass(w.category, GeeConvergenceWarning) for w in caught)
    one = rp.gee_logistic(df, "active_treatment", covariates=rp.CASE_MIX, cov_struct="block_exchangeable",
                          rho="one-step")
    assert one.details["rho_method"] == "one-step"
    assert e.df == e.n_clusters - len(d["coefficients"])
    assert d["se_robust"] < d["se_fay_graubard"] and d["se_kauermann_carroll"] < d["se_mancl_derouen"]


def test_batch_rule_with_block_exchangeable_does_not_fall_back(small_patients):
    from rp2pr_eval.estimators.gee import gee_logistic_with_fallback

    e = gee_logistic_with_fallback(small_patients, "active_treatment", cov_struct="block_exchangeable")
    assert e.details["cov_struct"] == "block_exchangeable" and "fallback" not in e.details
    with pytest.raises(ValueError, match="cov_struct"):
        gee_logistic_with_fallback(small_patients, "active_treatment", cov_struct="independence")


def test_the_batch_fits_block_exchangeable_by_default(small_patients):
    """analyse_outcome (the batch) uses the block-exchangeable GEE unless gee_cov_struct says otherwise."""
    from rp2pr_eval.estimators.gee import gee_logistic_with_fallback

    batch = rp.analyse_outcome(small_patients, "active_treatment", estimators=["gee_logistic"],
                               covariates=["age"]).effects["gee_logistic"]      # 12 pairs: few parameters
    direct = gee_logistic_with_fallback(small_patients, "active_treatment", cov_struct="block_exchangeable",
                                        covariates=["age"])
    assert batch.details["cov_struct"] == "block_exchangeable"
    assert (batch.estimate, batch.se) == (direct.estimate, direct.se)
    old = rp.analyse_outcome(small_patients, "active_treatment", estimators=["gee_logistic"], covariates=["age"],
                             gee_cov_struct="exchangeable").effects["gee_logistic"]
    assert old.details["cov_struct"] in ("exchangeable", "independence") and old.estimate != batch.estimate
