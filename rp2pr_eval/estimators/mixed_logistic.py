"""``mixed_logistic``: patient-level random-intercept logistic DiD (AGHQ maximum likelihood).

The likelihood, its maximisation and the standard errors live in
:mod:`rp2pr_eval.models.glmm`; this module builds the design from a patient
table and returns an :class:`~rp2pr_eval.results.Effect` whose details carry
the random-intercept SD, log-likelihood, convergence diagnostics, the
conditional modes of trust effects (for caterpillar plots) and the marginal
risk difference.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from rp2pr_eval._options import GlmmMethod, IncompletePairs, check_level, check_option
from rp2pr_eval.estimators.prepare import check_cells, patient_design, prepare
from rp2pr_eval.models.glmm import fit_glmm_logit, fit_glmm_logit_vb
from rp2pr_eval.results.effect import Effect
from rp2pr_eval.study.design import StudyDesign


def _conditional_rd(X, beta, vcov, j, target, b) -> tuple[float, float]:
    """Risk difference among target patients, conditional on their trusts' modes b, delta-method SE over β."""
    Xt = X[target]
    X0 = Xt.copy()
    X0[:, j] = 0.0
    p1, p0 = expit(Xt @ beta + b), expit(X0 @ beta + b)
    g = (p1 * (1 - p1)) @ Xt / len(Xt) - (p0 * (1 - p0)) @ X0 / len(Xt)
    return float(np.mean(p1 - p0)), float(np.sqrt(g @ vcov @ g))


def mixed_logistic(
    patients: pd.DataFrame,
    outcome: str,
    *,
    covariates: Sequence[str] | None = None,
    design: StudyDesign | None = None,
    cluster: str | None = "pair_id",
    groups: str = "trust_id",
    method: str = "aghq",
    n_quad: int = 25,
    level: float = 0.95,
    incomplete_pairs: IncompletePairs | None = None,
) -> Effect:
    r"""Random-intercept logistic DiD fitted by maximum likelihood (adaptive Gauss–Hermite quadrature).

    .. math:: \operatorname{logit} P(y_{i} = 1 \mid u_{t}) = \beta_0 + \beta_1 T_i + \beta_2 \text{post}_i
              + \delta\, T_i \text{post}_i + x_i'\gamma + u_{t[i]},\quad u_t \sim N(0, \sigma^2)

    ``method="aghq"`` maximises the marginal likelihood with ``n_quad``-node
    adaptive Gauss–Hermite quadrature (``n_quad=1`` is the Laplace
    approximation; 25 matches lme4 ``glmer(nAGQ = 25)``); standard errors from
    the observed information.  ``method="vb"`` is statsmodels'
    ``BinomialBayesMixedGLM`` variational Bayes, for comparison only (its SEs
    are posterior SDs and understate ML SEs).

    The estimate is the treated:post log odds ratio conditional on the trust
    effect; reference distribution normal (model-based, as ``glmer``) —
    with 80 trusts but 40 randomised pairs, uncorrected GLMM tests can
    over-reject (Leyrat et al. 2018); ``validate-methods`` reports the size.
    ``cluster`` is not used by the model (only checked).

    ``details``: ``re_sd`` with its interval, ``log_likelihood``, ``converged``,
    ``grad_norm``, ``odds_ratio``, ``risk_difference`` (average over post-period
    intervention patients of the predicted risk with and without the effect,
    at their trusts' conditional modes; delta-method SE over β),
    ``trust_effects`` (records ``trust_id, arm, mode, se, ci_low, ci_high``).

    ``incomplete_pairs``: a pair with one trust is refused (``None``), kept as a one-trust cluster
    (``"keep"``) or left out with a note (``"drop"``), as in :func:`rp2pr_eval.did_aggregate`.

    References
    ----------
    Pinheiro & Bates (1995) JCGS 4:12; Bates et al. (2015) J Stat Softw 67(1);
    R: ``lme4::glmer(y ~ treated * post + ... + (1 | trust_id), family = binomial, nAGQ = 25)``.
    """
    check_option("method", method, GlmmMethod)
    if groups != "trust_id" and groups not in patients.columns:
        raise ValueError(f"groups={groups!r} is not a column of the patient table")
    if not isinstance(n_quad, (int, np.integer)) or n_quad < 1:
        raise ValueError(f"n_quad must be a positive integer, got {n_quad!r}")
    check_level(level)
    prep = prepare(patients, outcome, design=design, cluster=cluster, kinds=("binary",), estimator="mixed_logistic",
                   incomplete_pairs=incomplete_pairs)
    rows = prep.rows
    y = pd.to_numeric(rows[prep.entry.name]).to_numpy(dtype=float)
    check_cells(prep, y)
    X, names = patient_design(prep, covariates)
    g = rows[groups].to_numpy()
    j = names.index("treated:post")
    z = float(stats.norm.ppf(0.5 + level / 2))
    target = (rows["treated"].to_numpy() == 1) & (rows["post"].to_numpy() == 1)
    arm_of = rows.drop_duplicates(groups).set_index(groups)["arm"]
    if method == "aghq":
        fit = fit_glmm_logit(X, y, g, n_quad=int(n_quad), names=names, level=level)
        beta, V = np.asarray(fit.beta), np.asarray(fit.vcov)[: len(names), : len(names)]
        extra = {"re_sd_ci_low": float(fit.sd_ci_low), "re_sd_ci_high": float(fit.sd_ci_high),
                 "log_likelihood": float(fit.loglik), "converged": bool(fit.converged), "grad_norm": float(fit.grad_norm),
                 "n_iter": int(fit.n_iter), "boundary": bool(fit.boundary), "message": fit.message, "n_quad": int(n_quad)}
    else:
        fit = fit_glmm_logit_vb(X, y, g, names=names)
        beta = np.asarray(fit.beta)
        V = np.diag(np.asarray(fit.se) ** 2)
        extra = {"re_sd_ci_low": float(fit.sd_ci_low), "re_sd_ci_high": float(fit.sd_ci_high), "message": fit.message}
    se_all = np.sqrt(np.diag(V))
    est, se = float(beta[j]), float(se_all[j])
    labels = np.asarray(fit.group_labels)
    modes, mode_se = np.asarray(fit.modes, dtype=float), np.asarray(fit.mode_se, dtype=float)
    mode_of = dict(zip(labels, modes))
    b = np.array([mode_of[v] for v in g[target]])
    rd, rd_se = _conditional_rd(X, beta, V, j, target, b)
    trust_effects = [{"trust_id": str(t), "arm": str(arm_of.get(t, "")), "mode": float(m), "se": float(s),
                      "ci_low": float(m - z * s), "ci_high": float(m + z * s)} for t, m, s in zip(labels, modes, mode_se)]
    details = {
        **prep.notes(),
        "coefficients": {n: (float(b_), float(s_)) for n, b_, s_ in zip(names, beta, se_all)},
        "re_sd": float(fit.sd), "groups": groups, "method": method,
        "odds_ratio": {"estimate": float(np.exp(est)), "ci_low": float(np.exp(est - z * se)), "ci_high": float(np.exp(est + z * se))},
        "risk_difference": {"estimate": rd, "se": rd_se, "ci_low": rd - z * rd_se, "ci_high": rd + z * rd_se},
        "trust_effects": trust_effects, "covariates": list(covariates or []), "n_dropped": prep.n_dropped, **extra,
    }
    return Effect(outcome=prep.entry.name, estimator="mixed_logistic",
                  estimand="treated:post log odds ratio conditional on the trust effect", scale="log_odds_ratio",
                  estimate=est, se=se, ci_low=est - z * se, ci_high=est + z * se,
                  p_value=float(2 * stats.norm.sf(abs(est / se))), df=None, n_obs=len(y), n_trusts=prep.n_trusts,
                  n_clusters=None, cluster=None, vcov="observed information (ML, AGHQ)" if method == "aghq" else "VB posterior",
                  level=level, details=details)
