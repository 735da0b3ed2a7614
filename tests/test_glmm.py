"""Tests for rp2pr_eval.mixed.glmm (random-intercept logistic GLMM by AGHQ).

Reference values come from lme4 and are committed in
``tests/reference/glmm_reference.json``; they were made by ``Rscript
tests/reference/glmm.R`` (R 4.2.2, lme4 1.1-31; versions recorded in the JSON)
with the calls::

    glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
          family = binomial, data = cbpp, nAGQ = 1 or 25)
    glmer(y ~ treat + post + treat:post + age10 + female + ps_high + (1 | group),
          family = binomial, data = glmm_data, nAGQ = 1 or 25)

both with ``glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12,
optCtrl = list(rhoend = 1e-10))``. R is not needed to run these tests.
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special

from rp2pr_eval.errors import DataError
from rp2pr_eval.models.glmm import (
    GlmmBoundaryWarning,
    GlmmConvergenceWarning,
    AghqObjective,
    prepare_data,
    fit_glmm_logit,
    fit_glmm_logit_vb,
)

REF_DIR = Path(__file__).parent / "reference"
REF = json.loads((REF_DIR / "glmm_reference.json").read_text())


def _cbpp():
    cb = pd.read_csv(REF_DIR / "data" / "cbpp.csv", dtype={"herd": str, "period": str})
    periods = {f"period{p}": (cb["period"] == str(p)).astype(float) for p in (2, 3, 4)}
    X = pd.DataFrame({"(Intercept)": 1.0} | periods)
    return X, cb["incidence"].to_numpy(float), cb["herd"].to_numpy(object), cb["size"].to_numpy(float)


def _synthetic():
    d = pd.read_csv(REF_DIR / "data" / "glmm_data.csv.gz", dtype={"group": str})
    X = pd.DataFrame(
        {
            "(Intercept)": 1.0,
            "treat": d["treat"],
            "post": d["post"],
            "age10": (d["age"] - 70) / 10,
            "female": d["female"],
            "ps_high": d["ps_high"],
            "treat:post": d["treat"] * d["post"],
        }
    ).astype(float)
    return X, d["y"].to_numpy(float), d["group"].to_numpy(object), None


DATASETS = {"cbpp": _cbpp(), "synthetic": _synthetic()}


@pytest.fixture(
    scope="module", params=[("cbpp", 1), ("cbpp", 25), ("synthetic", 1), ("synthetic", 25)], ids=str
)
def fitted(request):
    name, q = request.param
    X, y, g, trials = DATASETS[name]
    fit = fit_glmm_logit(X, y, g, trials=trials, n_quad=q, profile_ci=True)
    return name, q, fit, REF[name][f"nAGQ{q}"]


# ----------------------------------------------------------------- lme4 references


@pytest.mark.reference
def test_fixed_effects_match_lme4(fitted):
    _, _, fit, ref = fitted
    assert fit.converged
    expected = np.array([ref["fixef"][n] for n in fit.names])
    np.testing.assert_allclose(fit.beta, expected, rtol=0, atol=1e-3)


@pytest.mark.reference
def test_standard_errors_match_lme4(fitted):
    _, _, fit, ref = fitted
    expected = np.array([ref["se"][n] for n in fit.names])
    np.testing.assert_allclose(fit.se, expected, rtol=0.02)


@pytest.mark.reference
def test_random_intercept_sd_matches_lme4(fitted):
    _, _, fit, ref = fitted
    assert fit.sd == pytest.approx(ref["re_sd"], abs=0.01)
    assert fit.n_obs == ref["nobs"]
    assert fit.n_groups == ref["ngroups"]


@pytest.mark.reference
def test_loglik_matches_lme4(fitted):
    """nAGQ = 1: logLik() is the full Laplace log-likelihood. nAGQ > 1: lme4 builds
    the AGQ deviance from deviance residuals, so logLik() = loglik - loglik_saturated."""
    _, q, fit, ref = fitted
    reported = fit.loglik if q == 1 else fit.loglik - fit.loglik_saturated
    assert reported == pytest.approx(ref["logLik"], abs=1e-3)


@pytest.mark.reference
def test_conditional_modes_match_lme4(fitted):
    _, _, fit, ref = fitted
    order = {label: i for i, label in enumerate(ref["ranef"]["labels"])}
    idx = [order[str(label)] for label in fit.group_labels]
    np.testing.assert_allclose(fit.modes, np.array(ref["ranef"]["mode"])[idx], atol=1e-3)
    np.testing.assert_allclose(fit.mode_se, np.array(ref["ranef"]["cond_sd"])[idx], atol=1e-3)


@pytest.mark.reference
def test_profile_interval_for_sd_matches_lme4(fitted):
    _, _, fit, ref = fitted
    assert fit.sd_ci_method == "profile"
    assert fit.sd_ci_low == pytest.approx(ref["sd_profile_ci95"][0], abs=5e-3)
    assert fit.sd_ci_high == pytest.approx(ref["sd_profile_ci95"][1], abs=5e-3)


@pytest.mark.reference
def test_glm_boundary_matches_r_glm():
    """With sigma forced to the boundary the fit is R's glm(); checked via the GLM reference."""
    X, y, g, _ = DATASETS["synthetic"]
    ref = REF["synthetic"]["glm"]
    # one group per row pair is not possible here; instead every row in one of two
    # groups defined by a column already in X (treat), which absorbs any group effect
    groups = X["treat"].to_numpy()
    with pytest.warns(GlmmBoundaryWarning, match="estimated as 0"):
        fit = fit_glmm_logit(X, y, groups)
    assert fit.boundary and fit.sd == 0.0
    np.testing.assert_allclose(fit.beta, [ref["fixef"][n] for n in fit.names], atol=1e-6)
    np.testing.assert_allclose(fit.se, [ref["se"][n] for n in fit.names], rtol=1e-5)
    assert fit.loglik == pytest.approx(ref["logLik"], abs=1e-6)


# --------------------------------------------------------- hand-checkable fixtures


def _exact_marginal_loglik(X, y, g, trials, beta, sd):
    """sum_j log integral prod_i Binom(y | n, expit(x'beta + b)) N(b; 0, sd^2) db by quad."""
    total = 0.0
    eta = X @ beta
    for label in np.unique(g):
        i = g == label

        def integrand(b, i=i):
            p_eta = eta[i] + b
            ll = np.sum(
                special.gammaln(trials[i] + 1)
                - special.gammaln(y[i] + 1)
                - special.gammaln(trials[i] - y[i] + 1)
                + y[i] * p_eta
                - trials[i] * np.logaddexp(0, p_eta)
            )
            return math.exp(ll - b * b / (2 * sd * sd)) / (sd * math.sqrt(2 * math.pi))

        val, _ = integrate.quad(integrand, -12 * sd, 12 * sd, epsabs=0, epsrel=1e-12, limit=200)
        total += math.log(val)
    return total


@pytest.mark.fixture
def test_aghq_equals_direct_numerical_integration():
    """25-node AGHQ reproduces the marginal likelihood integrated by scipy.integrate.quad."""
    X, y, g, trials = DATASETS["cbpp"]
    Xa = X.to_numpy()
    beta, sd = np.array([-1.4, -1.0, -1.1, -1.6]), 0.65
    exact = _exact_marginal_loglik(Xa, y, g, trials, beta, sd)
    obj = AghqObjective(prepare_data(Xa, y, g, trials, None), 25)
    assert obj(np.append(beta, math.log(sd)), grad=False) == pytest.approx(exact, abs=1e-8)
    # the Laplace approximation is close but not equal
    lap = AghqObjective(prepare_data(Xa, y, g, trials, None), 1)(np.append(beta, math.log(sd)), grad=False)
    assert 1e-4 < abs(lap - exact) < 0.5


@pytest.mark.fixture
def test_laplace_loglik_formula_at_the_estimate():
    """n_quad = 1: l = sum_j [log p(y_j | b_j) - b_j^2 / (2 sd^2) - log(sd / s_j)], s_j = mode_se."""
    X, y, g, trials = DATASETS["cbpp"]
    fit = fit_glmm_logit(X, y, g, trials=trials, n_quad=1)
    Xa = X.to_numpy()
    b = dict(zip(fit.group_labels, fit.modes))
    eta = Xa @ fit.beta + np.array([b[label] for label in g])
    cond = np.sum(
        special.gammaln(trials + 1) - special.gammaln(y + 1) - special.gammaln(trials - y + 1)
        + y * eta - trials * np.logaddexp(0, eta)
    )
    laplace = cond - np.sum(fit.modes**2) / (2 * fit.sd**2) - np.sum(np.log(fit.sd / fit.mode_se))
    assert fit.loglik == pytest.approx(laplace, abs=1e-8)


@pytest.mark.fixture
@pytest.mark.parametrize("n_quad", [1, 7, 25])
def test_analytic_gradient_matches_finite_differences(n_quad):
    X, y, g, trials = DATASETS["cbpp"]
    obj = AghqObjective(prepare_data(X, y, g, trials, None), n_quad)
    theta = np.array([-1.2, -0.8, -1.3, -1.4, math.log(0.5)])
    _, grad = obj(theta)
    h = 1e-6
    numeric = np.array(
        [(obj(theta + h * e, grad=False) - obj(theta - h * e, grad=False)) / (2 * h) for e in np.eye(5)]
    )
    np.testing.assert_allclose(grad, numeric, atol=2e-6)
    assert np.max(np.abs(grad)) > 1  # not at the optimum: the check has teeth


@pytest.mark.fixture
def test_binomial_rows_equal_expanded_bernoulli_rows():
    """Successes out of trials and the same data as 0/1 rows give the same fit; the
    log-likelihoods differ exactly by the binomial constants sum log C(n, y)."""
    X, y, g, trials = DATASETS["cbpp"]
    Xa = X.to_numpy()
    idx = np.arange(len(y))
    rows = np.concatenate([np.repeat(idx, y.astype(int)), np.repeat(idx, (trials - y).astype(int))])
    yb = np.concatenate([np.ones(int(y.sum())), np.zeros(int((trials - y).sum()))])
    grouped = fit_glmm_logit(Xa, y, g, trials=trials, n_quad=9)
    expanded = fit_glmm_logit(Xa[rows], yb, g[rows], n_quad=9)
    np.testing.assert_allclose(expanded.beta, grouped.beta, atol=1e-6)
    np.testing.assert_allclose(expanded.se, grouped.se, rtol=1e-4)
    assert expanded.sd == pytest.approx(grouped.sd, abs=1e-6)
    log_choose = np.sum(special.gammaln(trials + 1) - special.gammaln(y + 1) - special.gammaln(trials - y + 1))
    assert grouped.loglik - expanded.loglik == pytest.approx(log_choose, abs=1e-6)
    assert expanded.n_obs == int(trials.sum()) and grouped.n_obs == len(y)


@pytest.mark.fixture
def test_group_labels_of_any_type_and_row_order_do_not_matter():
    X, y, g, _ = DATASETS["synthetic"]
    base = fit_glmm_logit(X, y, g, n_quad=5)
    as_int = np.array([int(s[1:]) for s in g])
    as_tuple = [("trust", int(s[1:])) for s in g]
    perm = np.random.default_rng(7).permutation(len(y))
    for groups, order in ((as_int, slice(None)), (as_tuple, slice(None)), (g, perm)):
        groups_arr = np.empty(len(y), dtype=object)
        groups_arr[:] = list(groups)
        fit = fit_glmm_logit(X.iloc[order], y[order], groups_arr[order], n_quad=5)
        np.testing.assert_allclose(fit.beta, base.beta, atol=1e-6)
        assert fit.sd == pytest.approx(base.sd, abs=1e-6)
        assert fit.loglik == pytest.approx(base.loglik, abs=1e-6)
    assert list(base.group_labels[:3]) == ["T01", "T02", "T03"]
    assert base.names == tuple(X.columns)


@pytest.mark.fixture
def test_result_helpers():
    X, y, g, trials = DATASETS["cbpp"]
    fit = fit_glmm_logit(X, y, g, trials=trials)
    frame = fit.to_frame()
    assert list(frame["term"]) == list(fit.names)
    np.testing.assert_allclose(frame["z"], fit.beta / fit.se)
    assert fit.coefficients["period2"] == (pytest.approx(fit.beta[1]), pytest.approx(fit.se[1]))
    assert fit.vcov.shape == (5, 5)
    assert fit.log_sd_se == pytest.approx(math.sqrt(fit.vcov[4, 4]))
    z = 1.959963984540054
    assert fit.sd_ci_low == pytest.approx(fit.sd * math.exp(-z * fit.log_sd_se))
    assert fit.sd_ci_method == "wald-log"


# ------------------------------------------------------------ statsmodels equivalence


@pytest.mark.equivalence
def test_boundary_fit_equals_statsmodels_glm():
    """sigma estimated at 0: beta and SEs are the ordinary logistic regression's."""
    import statsmodels.api as sm

    rng = np.random.default_rng(11)
    n, G = 2000, 25
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x])
    y = rng.binomial(1, special.expit(-0.3 + 0.6 * x)).astype(float)
    g = rng.integers(0, G, n)
    with pytest.warns(GlmmBoundaryWarning, match="standard error of log\\(sd\\) does not exist"):
        fit = fit_glmm_logit(X, y, g, n_quad=5)
    glm = sm.GLM(y, X, family=sm.families.Binomial()).fit()
    assert fit.boundary and fit.sd == 0.0 and math.isnan(fit.log_sd_se)
    np.testing.assert_allclose(fit.beta, glm.params, atol=1e-7)
    np.testing.assert_allclose(fit.se, glm.bse, rtol=1e-6)
    assert fit.loglik == pytest.approx(glm.llf, abs=1e-6)
    np.testing.assert_array_equal(fit.modes, 0.0)


@pytest.mark.equivalence
def test_vb_wrapper_agrees_roughly_with_ml():
    """statsmodels' variational Bayes: posterior means near the ML estimates."""
    X, y, g, _ = DATASETS["synthetic"]
    ml = fit_glmm_logit(X, y, g)
    vb = fit_glmm_logit_vb(X, y, g)
    assert vb.names == ml.names
    np.testing.assert_allclose(vb.beta, ml.beta, atol=0.05)
    assert vb.sd == pytest.approx(ml.sd, abs=0.1)
    assert vb.sd_ci_low < vb.sd < vb.sd_ci_high
    assert len(vb.modes) == ml.n_groups
    assert np.corrcoef(vb.modes, ml.modes)[0, 1] > 0.95


# -------------------------------------------------------------------- simulation


@pytest.mark.simulation
def test_known_truth_recovered():
    rng = np.random.default_rng(2024)
    G = 60
    sizes = rng.integers(150, 450, G)
    g = np.repeat(np.arange(G), sizes)
    n = g.size
    treat = (np.arange(G) % 2)[g].astype(float)
    post = rng.binomial(1, 0.5, n).astype(float)
    age10 = rng.normal(0.2, 0.9, n)
    X = np.column_stack([np.ones(n), treat, post, treat * post, age10])
    beta = np.array([-0.4, 0.2, 0.1, 0.3, -0.35])
    sd = 0.5
    b = rng.normal(0, sd, G)
    y = rng.binomial(1, special.expit(X @ beta + b[g])).astype(float)
    fit = fit_glmm_logit(X, y, g, n_quad=15)
    assert fit.converged
    assert np.all(np.abs(fit.beta - beta) < 3 * fit.se)
    assert abs(math.log(fit.sd) - math.log(sd)) < 3 * fit.log_sd_se
    # the conditional modes track the simulated intercepts
    assert np.corrcoef(fit.modes, b)[0, 1] > 0.9


# ------------------------------------------------------------- validation errors


def _small():
    rng = np.random.default_rng(5)
    n = 400
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x])
    g = rng.integers(0, 10, n)
    y = rng.binomial(1, special.expit(-0.2 + 0.5 * x + rng.normal(0, 0.5, 10)[g])).astype(float)
    return X, y, g


@pytest.mark.fixture
@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda X, y, g: (np.where(np.arange(len(y))[:, None] == 3, np.nan, X), y, g), "X has 2 missing"),
        (lambda X, y, g: (X, np.where(np.arange(len(y)) == 7, np.nan, y), g), "y has 1 missing"),
        (lambda X, y, g: (X, np.where(np.arange(len(y)) == 7, 2.0, y), g), "y must be 0/1"),
        (lambda X, y, g: (X, y, np.where(np.arange(len(y)) == 2, None, g.astype(object))), "missing labels"),
        (lambda X, y, g: (X, y, np.zeros(len(y))), "at least 2 groups"),
        (lambda X, y, g: (X, np.zeros(len(y)), g), "no events"),
        (lambda X, y, g: (X, np.ones(len(y)), g), "every trial is an event"),
        (lambda X, y, g: (X, y[:-1], g), "y has 399 values"),
        (lambda X, y, g: (np.column_stack([X, 2 * X[:, 1] - 3]), y, g), r"column\(s\) \['x2'\]"),
        (lambda X, y, g: (np.column_stack([X, np.zeros(len(y))]), y, g), "all zero"),
    ],
    ids=["nan-X", "nan-y", "y-not-binary", "missing-group", "one-group", "all-zero", "all-one",
         "length", "rank-deficient", "zero-column"],
)
def test_bad_data_raise_data_error(mutate, match):
    X, y, g = _small()
    Xb, yb, gb = mutate(X, y, g)
    with pytest.raises(DataError, match=match):
        fit_glmm_logit(Xb, yb, gb)


@pytest.mark.fixture
def test_rank_deficiency_names_the_columns():
    X, y, g = _small()
    Xd = pd.DataFrame(
        {"const": X[:, 0], "age": X[:, 1], "age_copy": X[:, 1] * 1.0, "other": np.arange(len(y)) % 3}
    )
    with pytest.raises(DataError, match=r"rank 3 of 4 columns\): column\(s\) \['age_copy'\]"):
        fit_glmm_logit(Xd, y, g)


@pytest.mark.fixture
def test_separation_raises_data_error():
    X, y, g = _small()
    flag = (np.arange(len(y)) % 9 == 0).astype(float)
    y_sep = np.where(flag == 1, 0.0, y)  # nobody with flag = 1 has the outcome
    with pytest.raises(DataError, match=r"separated.*\['flag'\]"):
        fit_glmm_logit(np.column_stack([X, flag]), y_sep, g, names=["(Intercept)", "x", "flag"])


@pytest.mark.fixture
def test_binomial_rows_are_checked():
    X, y, g = _small()
    trials = np.full(len(y), 3.0)
    with pytest.raises(DataError, match="between 0 and trials"):
        fit_glmm_logit(X, np.where(np.arange(len(y)) == 0, 4.0, y), g, trials=trials)
    with pytest.raises(DataError, match="positive whole numbers"):
        fit_glmm_logit(X, y, g, trials=np.where(np.arange(len(y)) == 0, 0.5, trials))


@pytest.mark.fixture
def test_bad_options_raise_value_error():
    X, y, g = _small()
    with pytest.raises(ValueError, match="n_quad=0"):
        fit_glmm_logit(X, y, g, n_quad=0)
    with pytest.raises(ValueError, match="names has 3 entries"):
        fit_glmm_logit(X, y, g, names=["a", "b", "c"])
    with pytest.raises(ValueError, match="start must hold 3"):
        fit_glmm_logit(X, y, g, start=[0.0, 0.0])
    with pytest.raises(NotImplementedError, match="nested"):
        fit_glmm_logit(X, y, (g // 2, g))


# ----------------------------------------------------------------------- warnings


@pytest.mark.fixture
def test_non_convergence_warns_and_flags():
    X, y, g = _small()
    with pytest.warns(GlmmConvergenceWarning, match="did not converge.*largest gradient component"):
        fit = fit_glmm_logit(X, y, g, max_iter=1)
    assert not fit.converged
    assert fit.grad_norm > 1e-3
    assert "max_iter=1" in fit.message
    # from a poor start the information there is not even positive definite: no SEs
    with pytest.warns(GlmmConvergenceWarning, match="not positive definite"):
        bad = fit_glmm_logit(X, y, g, max_iter=1, start=[1.0, -1.0, math.log(3.0)])
    assert not bad.converged and np.isnan(bad.se).all()


@pytest.mark.fixture
def test_unbounded_sd_warns():
    """Every group all 0 or all 1 and no covariates: the likelihood rises with sigma."""
    g = np.repeat(np.arange(12), 20)
    y = (g % 2).astype(float)
    with pytest.warns(GlmmConvergenceWarning, match="upper limit"):
        fit = fit_glmm_logit(np.ones((len(y), 1)), y, g, n_quad=25)
    assert not fit.converged
    assert fit.sd == pytest.approx(100.0)
    with pytest.warns(GlmmConvergenceWarning, match="separated by their outcomes"):
        lap = fit_glmm_logit(np.ones((len(y), 1)), y, g, n_quad=1)
    assert not lap.converged and lap.sd > 10


@pytest.mark.fixture
def test_converged_fit_emits_no_warning():
    X, y, g = _small()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_glmm_logit(X, y, g)
    assert fit.converged and not fit.boundary and fit.sd > 0


@pytest.mark.fixture
def test_identical_rows_are_aggregated_without_changing_the_fit(monkeypatch):
    """Rows with the same group and covariates are collapsed into binomial rows."""
    from rp2pr_eval.models import glmm_data as glmm

    rng = np.random.default_rng(21)
    n, G = 6000, 30
    g = rng.integers(0, G, n)
    a = rng.integers(0, 3, n)
    X = np.column_stack([np.ones(n), a == 1, a == 2, rng.integers(0, 2, n)]).astype(float)
    y = rng.binomial(1, special.expit(X @ [-0.5, 0.3, -0.4, 0.2] + rng.normal(0, 0.4, G)[g])).astype(float)
    assert len(prepare_data(X, y, g, None, None).succ) <= 12 * G
    agg = fit_glmm_logit(X, y, g, n_quad=9)
    monkeypatch.setattr(glmm, "aggregate_rows", lambda *rows: rows)
    assert len(prepare_data(X, y, g, None, None).succ) == n
    raw = fit_glmm_logit(X, y, g, n_quad=9)
    np.testing.assert_allclose(agg.beta, raw.beta, atol=1e-7)
    np.testing.assert_allclose(agg.se, raw.se, rtol=1e-5)
    assert agg.loglik == pytest.approx(raw.loglik, abs=1e-7)
    assert agg.n_obs == raw.n_obs == n


@pytest.mark.fixture
def test_profile_upper_limit_at_the_boundary():
    """At sigma = 0 the profile interval is [0, u] with l_p(u) = l_glm - chi2_1(0.95) / 2."""
    from scipy import linalg

    from rp2pr_eval.models.glmm_optim import profile_beta

    rng = np.random.default_rng(3)
    n, G = 3000, 30
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x])
    y = rng.binomial(1, special.expit(-0.5 + 0.5 * x)).astype(float)
    g = rng.integers(0, G, n)
    with pytest.warns(GlmmBoundaryWarning):
        fit = fit_glmm_logit(X, y, g, n_quad=5, profile_ci=True)
    assert fit.sd_ci_low == 0.0 and 0.01 < fit.sd_ci_high < 1.0
    obj = AghqObjective(prepare_data(X, y, g, None, None), 5)
    info = np.linalg.inv(fit.vcov[:2, :2])
    ll_p, _ = profile_beta(obj, fit.beta.copy(), math.log(fit.sd_ci_high), linalg.cho_factor(info))
    assert ll_p == pytest.approx(fit.loglik - 1.920729410347062, abs=1e-5)
