"""``mixed_linear`` (random-intercept LMM, REML) and statsmodels ``MixedLM`` against lme4 ``lmer``.

Reference values: ``tests/reference/lmm_reference.json``, written by ::

    .venv/bin/python tests/reference/make_lmm_data.py   # trust x period tables (package code)
    Rscript tests/reference/lmm.R                        # lme4 / lmerTest fits

(R 4.2.2, lme4 1.1-31, lmerTest 3.1-3, pbkrtest 0.5-2; versions and the SHA-256
of every data file are in the JSON provenance).  R is not needed to run these
tests.  The R calls are ::

    lmer(Reaction ~ Days + (1 | Subject), data = sleepstudy, REML = TRUE)
    lmer(value ~ treated * post + (1 | trust_id), data = panel, REML = TRUE)
    lmer(value ~ treated * post + (1 | trust_id), data = panel, REML = TRUE,
         weights = weight / mean(weight))

with ``panel`` the trust x period table of ``active_treatment`` (rates) or of
``days_referral_to_treatment`` (mean log(1 + days)) from
``rp.simulate_nlca(seed=31, n_pairs=20, n_treated_pairs=8, volume_median=80,
volume_clip=(40, 160))``, built by ``prepare`` + ``trust_values(prep, "period")``
as ``mixed_linear`` builds it (80 rows, 40 trusts).  ``mixed_linear`` is run
here on the patient table through the public API;
:func:`test_committed_data_is_current` checks that the committed tables are
still what the package builds.

Tolerance (the issue's): 1e-4 absolute for every compared quantity; the
treated:post estimate and SE and the two SDs are also held to 1e-4 relative.

Conventions established here
----------------------------
* REML log-likelihood: statsmodels' ``MixedLMResults.llf`` with ``reml=True``
  and lme4's ``logLik(fit, REML = TRUE)`` are the same function,
  -1/2 [log|V| + log|X'V^-1 X| + r'V^-1 r + (n - p) log 2 pi] (no log|X'X| term);
  on sleepstudy they agree to 1e-11 with no constant to adjust for.
* Prior weights: lme4's REML log-likelihood of a weighted fit is that of the
  stated model y ~ N(X beta, sigma_u^2 ZZ' + sigma^2 W^-1), which contains
  -1/2 log|W^-1| = +1/2 sum(log w) (checked in R by ``logLik_direct``).
  ``mixed_linear(weights="denominator")`` fits the sqrt(w)-scaled data and adds
  the Jacobian +1/2 sum(log w), w = weight / mean(weight), back (without it the
  value was 3.539 / 4.208 too high for the two outcomes here).
* Standard errors: lme4's ``vcov`` is (X'V^-1 X)^-1 at the REML estimates.
  statsmodels' ``cov_params`` inverts the joint observed Hessian over the
  fixed effects and the variance parameters; its fixed-by-variance block is
  zero for the balanced unweighted panels but not for the weighted fits, where
  the package's SEs differ from (X'V^-1 X)^-1 at its own estimates by up to
  2.6e-4 relative (``treated``, active_treatment) and 9.8e-4 relative
  (intercept, days_referral_to_treatment); all within 1e-4 absolute, and
  4.9e-5 / 2.6e-5 relative for treated:post.
* Degrees of freedom: the package uses between-within, N - n_trusts - 2 = 38.
  lmerTest's Satterthwaite df for treated:post is 38 for both unweighted fits
  (balanced: the two rules coincide) but 40.80 (active_treatment) and 42.07
  (days_referral_to_treatment) for the weighted fits.  Kenward-Roger (pbkrtest)
  is recorded for the unweighted fits only, because pbkrtest ignores prior
  weights.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rp2pr_eval as rp

pytestmark = pytest.mark.reference

REF_DIR = Path(__file__).parent / "reference"
ATOL = 1e-4
RTOL = 1e-4
OUTCOMES = ("active_treatment", "days_referral_to_treatment")
WEIGHTS = {"unweighted": None, "weighted": "denominator"}
PKG_NAMES = {"(Intercept)": "intercept", "treated": "treated", "post": "post", "treated:post": "treated:post"}
BW_DF = 38.0  # 80 trust-periods - 40 trusts - 2 within-trust fixed effects


def _load_data_module():
    spec = importlib.util.spec_from_file_location("make_lmm_data", REF_DIR / "make_lmm_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DATA = _load_data_module()


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads((REF_DIR / "lmm_reference.json").read_text())


@pytest.fixture(scope="module")
def patients() -> pd.DataFrame:
    return DATA.simulate()


@pytest.fixture(scope="module")
def fits(patients) -> dict:
    out = {}
    for outcome in OUTCOMES:
        for key, weights in WEIGHTS.items():
            out[outcome, key] = rp.mixed_linear(patients, outcome, weights=weights)
    return out


def _panel(outcome: str) -> pd.DataFrame:
    return pd.read_csv(REF_DIR / "data" / DATA.file_name(outcome), dtype={"trust_id": str, "pair_id": str})


def _design(panel: pd.DataFrame, weighted: bool):
    T, P = panel["treated"].to_numpy(float), panel["post"].to_numpy(float)
    X = np.column_stack([np.ones(len(panel)), T, P, T * P])
    g = pd.factorize(panel["trust_id"], sort=True)[0]
    Z = (g[:, None] == np.arange(g.max() + 1)).astype(float)
    w = panel["weight"].to_numpy(float) if weighted else np.ones(len(panel))
    return panel["value"].to_numpy(float), X, Z, w / w.mean()


def _gls_cov(X, Z, w, re_sd, residual_sd):
    V = re_sd**2 * Z @ Z.T + np.diag(residual_sd**2 / w)
    return np.linalg.inv(X.T @ np.linalg.solve(V, X))


def _satterthwaite_df(y, X, Z, w, re_sd, residual_sd, c):
    """Satterthwaite df for c'beta at given REML estimates, with the observed REML Hessian
    over (sigma_u^2, sigma^2) (df is invariant to the variance parametrisation at the optimum),
    as lmerTest computes it."""
    G = [Z @ Z.T, np.diag(1.0 / w)]
    V = re_sd**2 * G[0] + residual_sd**2 * G[1]
    Vi = np.linalg.inv(V)
    C = np.linalg.inv(X.T @ Vi @ X)
    P = Vi - Vi @ X @ C @ X.T @ Vi
    Py = P @ y
    H = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            H[i, j] = 0.5 * np.trace(P @ G[i] @ P @ G[j]) - Py @ G[i] @ P @ G[j] @ Py
    A = np.linalg.inv(-H)
    grad = np.array([c @ C @ X.T @ Vi @ Gi @ Vi @ X @ C @ c for Gi in G])
    return float(2 * (c @ C @ c) ** 2 / (grad @ A @ grad))


# --------------------------------------------------------------------------- the data
def test_committed_data_is_current(ref, patients):
    """The committed tables are byte for byte what the package builds now, and what R read."""
    fresh = DATA.build_tables(patients)
    by_name = {d["name"]: d for d in ref["provenance"]["data"]}
    for outcome in OUTCOMES:
        path = REF_DIR / "data" / DATA.file_name(outcome)
        meta = by_name[outcome]
        assert meta["path"] == f"tests/reference/data/{DATA.file_name(outcome)}"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == meta["sha256"], f"{path.name} changed since R read it"
        assert path.read_bytes() == DATA.csv_bytes(fresh[outcome]), f"{path.name} is no longer what the package builds"
    sleep = REF_DIR / "data" / "lmm_sleepstudy.csv"
    assert hashlib.sha256(sleep.read_bytes()).hexdigest() == by_name["sleepstudy"]["sha256"]


# --------------------------------------------------------------------------- sleepstudy
def test_sleepstudy_statsmodels_matches_lmer(ref):
    """statsmodels ``MixedLM(Reaction ~ Days, groups=Subject).fit(reml=True)`` = lmer to 1e-4.

    The REML log-likelihoods are compared with no adjustment: both packages use
    -1/2[log|V| + log|X'V^-1X| + r'V^-1r + (n-p) log 2pi] (observed difference 1.5e-11).
    """
    import statsmodels.api as sm

    r = ref["sleepstudy"]
    d = pd.read_csv(REF_DIR / "data" / "lmm_sleepstudy.csv", dtype={"Subject": str})
    assert len(d) == r["nobs"] == 180 and d["Subject"].nunique() == r["ngroups"] == 18
    X = pd.DataFrame({"(Intercept)": 1.0, "Days": d["Days"].astype(float)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.MixedLM(d["Reaction"], X, groups=d["Subject"]).fit(reml=True)
    assert res.converged
    names = list(r["fixef"])
    fe = res.fe_params[names].to_numpy()
    se = res.bse_fe[names].to_numpy()
    re_sd = float(np.sqrt(res.cov_re.iloc[0, 0]))
    resid_sd = float(np.sqrt(res.scale))
    np.testing.assert_allclose(fe, [r["fixef"][n] for n in names], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(se, [r["se"][n] for n in names], rtol=RTOL, atol=ATOL)
    assert re_sd == pytest.approx(r["re_sd"], rel=RTOL, abs=ATOL)
    assert resid_sd == pytest.approx(r["residual_sd"], rel=RTOL, abs=ATOL)
    assert res.llf == pytest.approx(r["logLik"], rel=0, abs=ATOL)
    assert r["logLik"] == pytest.approx(r["logLik_direct"], abs=1e-8)


def test_satterthwaite_helper_reproduces_lmertest_on_sleepstudy(ref):
    """The Python Satterthwaite df used below gives lmerTest's 22.81 / 161 on sleepstudy."""
    r = ref["sleepstudy"]
    d = pd.read_csv(REF_DIR / "data" / "lmm_sleepstudy.csv", dtype={"Subject": str})
    X = np.column_stack([np.ones(len(d)), d["Days"].to_numpy(float)])
    g = pd.factorize(d["Subject"], sort=True)[0]
    Z = (g[:, None] == np.arange(g.max() + 1)).astype(float)
    y, w = d["Reaction"].to_numpy(float), np.ones(len(d))
    for j, name in enumerate(r["fixef"]):
        c = np.eye(2)[j]
        got = _satterthwaite_df(y, X, Z, w, r["re_sd"], r["residual_sd"], c)
        assert got == pytest.approx(r["df_satterthwaite"][name], rel=RTOL)


# --------------------------------------------------------------------------- mixed_linear
@pytest.mark.parametrize("weighting", list(WEIGHTS))
@pytest.mark.parametrize("outcome", OUTCOMES)
def test_mixed_linear_matches_lmer(ref, fits, outcome, weighting):
    """treated:post estimate and SE, RE SD and residual SD: 1e-4 absolute and relative."""
    eff, r = fits[outcome, weighting], ref[outcome][weighting]
    d = eff.details
    assert d["converged"] and not d["boundary"]
    assert eff.n_obs == r["nobs"] == 80 and eff.n_trusts == r["ngroups"] == 40
    for got, want in [
        (eff.estimate, r["fixef"]["treated:post"]),
        (eff.se, r["se"]["treated:post"]),
        (d["re_sd"], r["re_sd"]),
        (d["residual_sd"], r["residual_sd"]),
    ]:
        assert got == pytest.approx(want, rel=RTOL, abs=ATOL)
        assert abs(got - want) <= ATOL


@pytest.mark.parametrize("weighting", list(WEIGHTS))
@pytest.mark.parametrize("outcome", OUTCOMES)
def test_mixed_linear_all_coefficients_match_lmer(ref, fits, outcome, weighting):
    """Every fixed effect and SE to 1e-4 absolute (weighted SEs differ by up to 9.8e-4 relative:
    statsmodels' joint-Hessian covariance, see the module docstring)."""
    d, r = fits[outcome, weighting].details, ref[outcome][weighting]
    for rname, pname in PKG_NAMES.items():
        b, s = d["coefficients"][pname]
        assert b == pytest.approx(r["fixef"][rname], rel=0, abs=ATOL)
        assert s == pytest.approx(r["se"][rname], rel=0, abs=ATOL)


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_unweighted_log_likelihood_matches_lmer(ref, fits, outcome):
    got = fits[outcome, "unweighted"].details["log_likelihood"]
    assert got == pytest.approx(ref[outcome]["unweighted"]["logLik"], rel=0, abs=ATOL)


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_weighted_log_likelihood_matches_lmer(ref, fits, outcome):
    got = fits[outcome, "weighted"].details["log_likelihood"]
    assert got == pytest.approx(ref[outcome]["weighted"]["logLik"], rel=0, abs=ATOL)


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_weighted_log_likelihood_after_weight_jacobian(ref, fits, outcome):
    """The weight Jacobian 1/2 sum(log w), w = weight / mean(weight), is what the sqrt(w)-scaled fit omits;
    mixed_linear adds it back, so its log-likelihood minus that term is the scaled-data value."""
    r = ref[outcome]["weighted"]
    _, _, _, w = _design(_panel(outcome), weighted=True)
    assert float(np.sum(np.log(w))) == pytest.approx(r["sum_log_weights"], abs=1e-10)
    got = fits[outcome, "weighted"].details["log_likelihood"]
    assert got - 0.5 * r["sum_log_weights"] == pytest.approx(r["logLik"] - 0.5 * r["sum_log_weights"], rel=0, abs=ATOL)
    assert abs(0.5 * r["sum_log_weights"]) > 1.0  # the term matters (3.5–4.2 here)
    assert r["logLik"] == pytest.approx(r["logLik_direct"], abs=1e-8)


@pytest.mark.parametrize("weighting", list(WEIGHTS))
@pytest.mark.parametrize("outcome", OUTCOMES)
def test_lme4_se_is_gls_at_package_estimates(ref, fits, outcome, weighting):
    """(X'V^-1X)^-1 at the package's own variance components reproduces lme4's SEs to 1e-5 relative,
    so the residual SE differences of the weighted fits come from statsmodels' covariance formula."""
    d, r = fits[outcome, weighting].details, ref[outcome][weighting]
    _, X, Z, w = _design(_panel(outcome), weighted=weighting == "weighted")
    se = np.sqrt(np.diag(_gls_cov(X, Z, w, d["re_sd"], d["residual_sd"])))
    np.testing.assert_allclose(se, [r["se"][n] for n in PKG_NAMES], rtol=1e-5, atol=0)


# --------------------------------------------------------------------------- degrees of freedom
@pytest.mark.parametrize("weighting", list(WEIGHTS))
@pytest.mark.parametrize("outcome", OUTCOMES)
def test_df_between_within_vs_satterthwaite(ref, fits, outcome, weighting):
    """The package's df is between-within (38).  lmerTest's Satterthwaite df for treated:post is
    38 for the balanced unweighted panels (the rules coincide) and 40.80 / 42.07 for the weighted
    ones (not asserted equal to BW).  The Python Satterthwaite computation reproduces lmerTest at
    lme4's estimates, and at the package's estimates gives the df a Satterthwaite option would use."""
    eff, r = fits[outcome, weighting], ref[outcome][weighting]
    assert eff.df == BW_DF and eff.details["df_method"] == "between-within"
    sat = r["df_satterthwaite"]["treated:post"]
    y, X, Z, w = _design(_panel(outcome), weighted=weighting == "weighted")
    c = np.array([0.0, 0.0, 0.0, 1.0])
    assert _satterthwaite_df(y, X, Z, w, r["re_sd"], r["residual_sd"], c) == pytest.approx(sat, rel=RTOL)
    d = eff.details
    assert _satterthwaite_df(y, X, Z, w, d["re_sd"], d["residual_sd"], c) == pytest.approx(sat, rel=1e-3)
    if weighting == "unweighted":
        assert sat == pytest.approx(BW_DF, abs=1e-5)
        assert r["df_kenward_roger"]["treated:post"] == pytest.approx(BW_DF, abs=1e-8)
    else:
        assert sat > BW_DF + 2  # 40.80 (active_treatment), 42.07 (days_referral_to_treatment)
