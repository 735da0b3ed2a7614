"""Patient-level difference in differences: logistic (:func:`did_logistic`) and Cox (:func:`did_cox`).

Thin front ends: prepare the patient rows and the design (:mod:`~rp2pr_eval.estimators.prepare`),
fit (statsmodels ``GLM`` with the CR1 sandwich; :func:`rp2pr_eval.models.cox.fit_cox`), wrap an
:class:`~rp2pr_eval.results.Effect`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from rp2pr_eval._options import IncompletePairs, check_level, check_option
from rp2pr_eval.errors import DataError
from rp2pr_eval.estimators.prepare import check_cells, patient_design, prepare
from rp2pr_eval.results.effect import Effect
from rp2pr_eval.study.design import StudyDesign

def marginal_risk_difference(X: np.ndarray, beta: np.ndarray, vcov: np.ndarray, *, term_index: int,
                             target: np.ndarray) -> tuple[float, float]:
    r"""Standardised risk difference and its delta-method SE.

    RD = mean over target rows of expit(x_i β) − expit(x_i β − β_j x_ij), i.e. the
    average effect of switching the treated:post term off among the target
    (post-period intervention) patients; gradient
    g = mean[p1(1−p1) x_i − p0(1−p0) x_i^0], var = g' V g.
    """
    Xt = X[target]
    X0 = Xt.copy()
    X0[:, term_index] = 0.0
    p1, p0 = expit(Xt @ beta), expit(X0 @ beta)
    rd = float(np.mean(p1 - p0))
    g = (p1 * (1 - p1)) @ Xt / len(Xt) - (p0 * (1 - p0)) @ X0 / len(Xt)
    return rd, float(np.sqrt(g @ vcov @ g))


def did_logistic(
    patients: pd.DataFrame,
    outcome: str,
    *,
    covariates: Sequence[str] | None = None,
    design: StudyDesign | None = None,
    cluster: str | None = "pair_id",
    vcov: str = "CR1",
    level: float = 0.95,
    incomplete_pairs: IncompletePairs | None = None,
) -> Effect:
    r"""Patient-level logistic DiD with case-mix adjustment and a cluster-robust sandwich.

    .. math:: \operatorname{logit} P(y_i = 1) = \beta_0 + \beta_1 T_i + \beta_2 \text{post}_i + \delta\, T_i \text{post}_i + x_i'\gamma

    fitted by maximum likelihood (statsmodels ``GLM``, Binomial); the variance is
    the CR1 sandwich by ``cluster`` (G/(G−1)·(N−1)/(N−K), as R
    ``sandwich::vcovCL(glm, type = "HC1")``) with a t(G − 1) reference.  The
    estimate is the treated:post log odds ratio (conditional on case-mix);
    ``details["odds_ratio"]`` holds exp(δ) with its interval and
    ``details["risk_difference"]`` the marginal, standardised risk difference among
    post-period intervention patients with a delta-method SE
    (:func:`marginal_risk_difference`).

    ``covariates`` defaults to none; pass ``rp.CASE_MIX`` for case-mix
    adjustment (missing performance status/stage are their own level).

    ``incomplete_pairs``: a pair with one trust is refused (``None``), kept as a one-trust cluster
    (``"keep"``) or left out with a note (``"drop"``), as in :func:`rp2pr_eval.did_aggregate`.
    """
    check_option("vcov", vcov, ("CR1",))
    check_level(level)
    from statsmodels.genmod import families
    from statsmodels.genmod.generalized_linear_model import GLM   # not statsmodels.api: 0.7 s of imports

    prep = prepare(patients, outcome, design=design, cluster=cluster, kinds=("binary",), estimator="did_logistic",
                   incomplete_pairs=incomplete_pairs)
    y = pd.to_numeric(prep.rows[prep.entry.name]).to_numpy(dtype=float)
    X, names = patient_design(prep, covariates)
    check_cells(prep, y)
    model = GLM(y, X, family=families.Binomial())
    groups = prep.cluster_codes()
    if groups is not None:
        res = model.fit(cov_type="cluster", cov_kwds={"groups": groups, "use_correction": True, "df_correction": True})
        df = float(len(np.unique(groups)) - 1)
    else:
        res = model.fit(cov_type="HC1")
        df = None
    beta, V = np.asarray(res.params), np.asarray(res.cov_params())
    if not np.all(np.isfinite(V)):
        raise DataError(f"did_logistic: the fit for {outcome!r} is singular (check separation or collinear covariates)")
    _check_separation(names, beta, np.asarray(res.fittedvalues), outcome)
    j = names.index("treated:post")
    est, se = float(beta[j]), float(np.sqrt(V[j, j]))
    dist = stats.norm if df is None else stats.t(df)
    q = float(dist.ppf(0.5 + level / 2))
    p = float(2 * dist.sf(abs(est / se)))
    target = (prep.rows["treated"].to_numpy() == 1) & (prep.rows["post"].to_numpy() == 1)
    rd, rd_se = marginal_risk_difference(X, beta, V, term_index=j, target=target)
    details = {
        **prep.notes(),
        "coefficients": {n: (float(b), float(s)) for n, b, s in zip(names, beta, np.sqrt(np.diag(V)))},
        "odds_ratio": {"estimate": float(np.exp(est)), "ci_low": float(np.exp(est - q * se)), "ci_high": float(np.exp(est + q * se))},
        "risk_difference": {"estimate": rd, "se": rd_se, "ci_low": rd - q * rd_se, "ci_high": rd + q * rd_se},
        "covariates": list(covariates or []),
        "log_likelihood": float(res.llf),
        "converged": bool(res.converged),
        "n_dropped": prep.n_dropped,
    }
    return Effect(outcome=prep.entry.name, estimator="did_logistic",
                  estimand="treated:post log odds ratio (conditional on case-mix)", scale="log_odds_ratio",
                  estimate=est, se=se, ci_low=est - q * se, ci_high=est + q * se, p_value=p, df=df,
                  n_obs=len(y), n_trusts=prep.n_trusts, n_clusters=None if groups is None else int(df + 1),
                  cluster=prep.cluster, vcov=vcov, level=level, details=details)


def _check_separation(names: Sequence[str], beta: np.ndarray, mu: np.ndarray, outcome: str) -> None:
    """Refuse a logistic fit whose likelihood has no finite maximum (fitted probabilities at 0 or 1).

    A covariate that determines the outcome (e.g. a missing performance status when the outcome is
    ``ps_recorded``) drives its coefficient to ±∞; statsmodels then stops at a large value with a
    meaningless SE.  That is never reported as a number.
    """
    extreme = (mu < 1e-8) | (mu > 1 - 1e-8)
    big = [n for n, b in zip(names, beta) if abs(b) > 15]
    if extreme.mean() > 1e-3 or big:
        raise DataError(f"outcome {outcome!r} is (quasi-)separated by the covariates {big or ''}: "
                        f"{int(extreme.sum())} fitted probabilities are 0 or 1; remove the covariate that "
                        "determines the outcome (e.g. performance_status for ps_recorded)")


def did_cox(
    patients: pd.DataFrame,
    outcome: str = "survival_days",
    *,
    covariates: Sequence[str] | None = None,
    design: StudyDesign | None = None,
    cluster: str | None = "pair_id",
    level: float = 0.95,
    incomplete_pairs: IncompletePairs | None = None,
) -> Effect:
    r"""Cox proportional-hazards DiD for survival from first seen.

    .. math:: h_i(t) = h_0(t) \exp(\beta_1 T_i + \beta_2 \text{post}_i + \delta\, T_i \text{post}_i + x_i'\gamma)

    Fitted by :func:`rp2pr_eval.models.cox.fit_cox` (Newton–Raphson on the
    Efron partial likelihood, vectorised; statsmodels ``PHReg`` takes 30–40 s
    here and builds its robust variance from Breslow-type score residuals),
    with the Lin–Wei robust sandwich of score residuals summed by ``cluster``
    — exactly R ``coxph(..., ties = "efron", cluster = pair_id)``, normal
    reference.  The estimate is the treated:post log hazard ratio (negative =
    longer survival).

    ``incomplete_pairs``: a pair with one trust is refused (``None``), kept as a one-trust cluster
    (``"keep"``) or left out with a note (``"drop"``), as in :func:`rp2pr_eval.did_aggregate`.
    """
    check_level(level)
    from rp2pr_eval.models.cox import fit_cox

    prep = prepare(patients, outcome, design=design, cluster=cluster, kinds=("time_to_event",), estimator="did_cox",
                   incomplete_pairs=incomplete_pairs)
    rows = prep.rows
    time = pd.to_numeric(rows[prep.entry.name]).to_numpy(dtype=float)
    status = pd.to_numeric(rows[prep.entry.event_column]).to_numpy(dtype=float)
    X, names = patient_design(prep, covariates)
    X, names = X[:, 1:], names[1:]  # no intercept in a Cox model
    groups = prep.cluster_codes()
    fit = fit_cox(time, status, X, groups=groups, ties="efron", names=names)
    beta, se_all = np.asarray(fit.coef), np.asarray(fit.se)
    j = names.index("treated:post")
    est, se = float(beta[j]), float(se_all[j])
    q = float(stats.norm.ppf(0.5 + level / 2))
    p = float(2 * stats.norm.sf(abs(est / se)))
    details = {
        **prep.notes(),
        "coefficients": {n: (float(b), float(s)) for n, b, s in zip(names, beta, se_all)},
        "hazard_ratio": {"estimate": float(np.exp(est)), "ci_low": float(np.exp(est - q * se)), "ci_high": float(np.exp(est + q * se))},
        "covariates": list(covariates or []),
        "n_events": int(status.sum()),
        "log_likelihood": float(fit.loglik),
        "converged": bool(fit.converged),
        "n_dropped": prep.n_dropped,
    }
    return Effect(outcome=prep.entry.name, estimator="did_cox", estimand="treated:post log hazard ratio",
                  scale="log_hazard_ratio", estimate=est, se=se, ci_low=est - q * se, ci_high=est + q * se,
                  p_value=p, df=None, n_obs=len(time), n_trusts=prep.n_trusts,
                  n_clusters=None if groups is None else int(groups.max() + 1), cluster=prep.cluster,
                  vcov="model" if groups is None else "robust", level=level, details=details)
