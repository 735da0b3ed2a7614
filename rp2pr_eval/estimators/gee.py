"""``gee_logistic``: patient-level logistic GEE DiD with small-sample (Mancl–DeRouen) inference.

The fitting and both sandwiches live in :mod:`rp2pr_eval.models.gee`; this module
turns a patient table into the design (treated, post, treated:post, case-mix)
and the result into an :class:`~rp2pr_eval.results.Effect`.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from rp2pr_eval._options import GeeCovStruct, GeeVcov, IncompletePairs, check_level, check_option
from rp2pr_eval.errors import DataError
from rp2pr_eval.estimators.patient_did import marginal_risk_difference
from rp2pr_eval.estimators.prepare import check_cells, patient_design, prepare
from rp2pr_eval.models.gee import GeeConvergenceWarning, fit_gee_logit
from rp2pr_eval.results.effect import Effect
from rp2pr_eval.study.design import StudyDesign


def gee_logistic(
    patients: pd.DataFrame,
    outcome: str,
    *,
    covariates: Sequence[str] | None = None,
    design: StudyDesign | None = None,
    cluster: str | None = "pair_id",
    cov_struct: str = "exchangeable",
    vcov: str = "mancl_derouen",
    rho: str | float = "iterate",
    level: float = 0.95,
    incomplete_pairs: IncompletePairs | None = None,
) -> Effect:
    r"""Population-averaged logistic DiD by GEE, clustered on the pair, with the Mancl–DeRouen sandwich.

    .. math:: \operatorname{logit} E(y_i) = \beta_0 + \beta_1 T_i + \beta_2 \text{post}_i + \delta\, T_i\text{post}_i + x_i'\gamma

    Working correlation exchangeable (default) or independence within
    ``cluster``.  ``vcov="mancl_derouen"`` (default: 40 clusters is few) uses
    the bias-corrected sandwich of Mancl & DeRouen (2001); ``"robust"`` the
    Liang–Zeger sandwich.  Reference distribution t(G − p), p the number of
    mean-model parameters.  The estimate is the treated:post population-averaged
    log odds ratio; ``details["odds_ratio"]`` and the marginal standardised
    ``details["risk_difference"]`` (delta method) as for ``did_logistic``.

    ``rho`` (exchangeable only): ``"iterate"`` (default) solves the estimating
    equations and the moment estimator of the correlation jointly, as geepack
    does.  With pair clusters of thousands of patients that joint solution
    often does not exist (the correlation grows at every update; see
    docs/methods/gee.md); the fit then holds ρ at its one-step estimate (the
    moment estimator at the independence fit) and warns
    (:class:`~rp2pr_eval.models.gee.GeeConvergenceWarning`) — still a valid GEE
    with a valid sandwich, recorded in ``details["rho_method"]``.
    ``"one-step"`` asks for that estimate directly; a number fixes ρ.

    ``cov_struct="block_exchangeable"``: blocks are trust × period within the cluster; correlation α0
    between patients of the same trust and period, α1 between other patients of the cluster (Li,
    Turner & Preisser 2018); ``rho`` is ``"iterate"`` (one-step α's, with a warning, when the
    iteration has no solution), ``"one-step"`` or a pair ``(α0, α1)``.  ``details`` then hold
    ``working_corr`` (α0) and ``working_corr_between`` (α1).

    ``vcov``: ``"mancl_derouen"`` (default), ``"kauermann_carroll"`` (Kauermann & Carroll 2001),
    ``"fay_graubard"`` (Fay & Graubard 2001, bound 0.75) or ``"robust"``; all four SEs are in
    ``details`` (``se_robust``, ``se_mancl_derouen``, ``se_kauermann_carroll``, ``se_fay_graubard``).
    The reference distribution is t(G − p) for every one, as Li & Redden (2015) recommend for
    bias-corrected sandwiches with few clusters (KC when cluster sizes vary little, FG otherwise).

    ``incomplete_pairs``: a pair with one trust is refused (``None``), kept as a one-trust cluster
    (``"keep"``) or left out with a note (``"drop"``), as in :func:`rp2pr_eval.did_aggregate`.

    References
    ----------
    Liang & Zeger (1986) Biometrika 73:13; Mancl & DeRouen (2001) Biometrics 57:126;
    Kauermann & Carroll (2001) JASA 96:1387; Fay & Graubard (2001) Biometrics 57:1198;
    Li & Redden (2015) Stat Med 34:281; Li, Turner & Preisser (2018) Biometrics 74:1450;
    Leyrat et al. (2018) Int J Epidemiol 47:321.
    R: ``geepack::geeglm(y ~ treated * post + ..., id = pair_id, corstr = "exchangeable")`` with
    ``geesmv::GEE.var.md``.
    """
    check_option("cov_struct", cov_struct, GeeCovStruct)
    check_option("vcov", vcov, GeeVcov)
    if cluster is None:
        raise ValueError("gee_logistic needs a cluster column (e.g. 'pair_id' or 'trust_id'); cluster=None is not a GEE")
    check_level(level)
    prep = prepare(patients, outcome, design=design, cluster=cluster, kinds=("binary",), estimator="gee_logistic",
                   incomplete_pairs=incomplete_pairs)
    y = pd.to_numeric(prep.rows[prep.entry.name]).to_numpy(dtype=float)
    check_cells(prep, y)
    X, names = patient_design(prep, covariates)
    groups = prep.cluster_codes()
    cells = (prep.rows["arm"].astype(str) + "/" + prep.rows["period"].astype(str)).to_numpy()
    blocks = None
    if cov_struct == "block_exchangeable":
        blocks = (prep.rows["trust_id"].astype(str) + "/" + prep.rows["period"].astype(str)).to_numpy()
    fit = fit_gee_logit(X, y, groups, cov_struct=cov_struct, vcov=vcov, names=names, cells=cells, rho=rho,
                        blocks=blocks)
    j = names.index("treated:post")
    est, se, df = float(fit.coef[j]), float(fit.se[j]), float(fit.df)
    if df < 1:
        raise DataError(f"gee_logistic: {fit.n_clusters} clusters leave no degrees of freedom for {len(names)} parameters")
    dist = stats.t(df)
    q = float(dist.ppf(0.5 + level / 2))
    target = (prep.rows["treated"].to_numpy() == 1) & (prep.rows["post"].to_numpy() == 1)
    rd, rd_se = marginal_risk_difference(X, fit.coef, fit.vcov, term_index=j, target=target)
    details = {
        **prep.notes(),
        "coefficients": {n: (float(b), float(s)) for n, b, s in zip(names, fit.coef, fit.se)},
        "odds_ratio": {"estimate": float(np.exp(est)), "ci_low": float(np.exp(est - q * se)),
                       "ci_high": float(np.exp(est + q * se))},
        "risk_difference": {"estimate": rd, "se": rd_se, "ci_low": rd - q * rd_se, "ci_high": rd + q * rd_se},
        "se_robust": float(np.sqrt(fit.vcov_robust[j, j])),
        "se_mancl_derouen": float(np.sqrt(fit.vcov_mancl_derouen[j, j])),
        "se_kauermann_carroll": float(np.sqrt(fit.vcov_kauermann_carroll[j, j])),
        "se_fay_graubard": float(np.sqrt(fit.vcov_fay_graubard[j, j])),
        "working_corr": float(fit.working_corr),
        "working_corr_between": fit.working_corr_between,
        "rho_method": fit.rho_method,
        "cov_struct": cov_struct,
        "converged": bool(fit.converged),
        "covariates": list(covariates or []),
        "n_dropped": prep.n_dropped,
    }
    return Effect(outcome=prep.entry.name, estimator="gee_logistic",
                  estimand="treated:post population-averaged log odds ratio", scale="log_odds_ratio",
                  estimate=est, se=se, ci_low=est - q * se, ci_high=est + q * se,
                  p_value=float(2 * dist.sf(abs(est / se))), df=df, n_obs=len(y), n_trusts=prep.n_trusts,
                  n_clusters=fit.n_clusters, cluster=cluster, vcov=vcov, level=level, details=details)


def gee_logistic_with_fallback(patients: pd.DataFrame, outcome: str, *, cov_struct: str = "exchangeable",
                               **kwargs) -> Effect:
    """:func:`gee_logistic` as the batch runs it, falling back to the independence working model when needed.

    ``cov_struct="exchangeable"`` (default, as validated in docs/methods/validation.md): the iterated ρ, or
    independence when that has no solution (the working correlation runs away with pair clusters of
    thousands of patients; the public function would hold ρ at its one-step value) or stalls.
    ``cov_struct="block_exchangeable"``: trust × period blocks within pairs with α0, α1 iterated, or held at
    their one-step estimates when the iteration has no solution (a valid GEE: nothing falls back for that
    reason); independence only if the block fit fails outright (a working correlation that is not positive
    definite, separation).  The reason of a fallback is recorded in ``details["fallback"]``.  Used by the
    batch and by ``validate-methods``, whose Monte Carlo properties are those of this rule."""
    check_option("cov_struct", cov_struct, ("exchangeable", "block_exchangeable"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GeeConvergenceWarning)  # handled below by the fallback
            effect = gee_logistic(patients, outcome, cov_struct=cov_struct, **kwargs)
        if not effect.details.get("converged", True):
            reason = f"{cov_struct} GEE did not converge"
        elif cov_struct == "exchangeable" and effect.details.get("rho_method") == "one-step (no joint solution)":
            reason = ("exchangeable failed: the working correlation keeps growing with every update "
                      "(no joint solution of the estimating equations and the moment estimator of rho)")
        else:
            return effect
    except DataError as exc:
        reason = f"{cov_struct} failed: {str(exc).splitlines()[0][:200]}"
    return gee_logistic(patients, outcome, cov_struct="independence", **kwargs).with_details(fallback=reason)
