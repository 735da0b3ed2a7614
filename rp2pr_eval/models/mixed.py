"""Mixed models from a formula: ``glmm_logit`` (random-intercept logit, AGHQ/Laplace) and ``lmm`` (REML/ML).

Engines: :func:`rp2pr_eval.models.glmm.fit_glmm_logit` (maximum likelihood by adaptive
Gauss–Hermite quadrature, as lme4's ``glmer(nAGQ = n)``) and
:func:`rp2pr_eval.models.linear_mixed.fit_lmm` (statsmodels ``MixedLM`` with prior weights).

Random-effect terms are named by their grouping column, ``random_sd = {"herd": 0.64}``; a random
slope of ``x`` within ``g`` is ``"x|g"``. ``groups=`` takes one column today; the shape of
``groups`` (a list of terms) and of ``random_sd`` (one entry per term) is the one nested terms
(``["pair_id", "trust_id", "trust_id:period"]``) will use, so adding them changes no signature.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rp2pr_eval._options import check_level
from rp2pr_eval.errors import DataError
from rp2pr_eval.models.formula import model_frame
from rp2pr_eval.models.glmm import fit_glmm_logit
from rp2pr_eval.models.linear_mixed import fit_lmm
from rp2pr_eval.models.result import ModelResult

__all__ = ["glmm_logit", "lmm"]


def _one_grouping_term(groups, model: str):
    """The single grouping column (or array) of ``groups``; nested terms are refused in words."""
    if isinstance(groups, (list, tuple)):
        if len(groups) != 1:
            raise ValueError(f"{model}: groups={list(groups)!r} asks for {len(groups)} random-effect terms; "
                             "one grouping term is supported (nested terms are planned)")
        groups = groups[0]
    if groups is None:
        raise ValueError(f"{model}: groups= is required (the column that defines the random intercept)")
    return groups, groups if isinstance(groups, str) else "groups"


def glmm_logit(
    formula,
    data=None,
    *,
    groups,
    trials=None,
    n_quad: int = 25,
    names=None,
    profile_ci: bool = False,
    level: float = 0.95,
) -> ModelResult:
    r"""Random-intercept logistic regression by maximum likelihood (AGHQ; ``n_quad=1``: Laplace).

    Model: :math:`y_{ij} \mid b_j \sim \mathrm{Binomial}(n_{ij}, p_{ij})`,
    :math:`\operatorname{logit} p_{ij} = x_{ij}'\beta + b_j`, :math:`b_j \sim N(0, \sigma^2)`,
    the marginal likelihood approximated per group by ``n_quad``-node adaptive Gauss–Hermite
    quadrature; standard errors from the observed information (normal reference).

    Parameters
    ----------
    formula, data
        ``"successes ~ x1 + x2"`` (0/1 outcomes, or successes out of ``trials``) and the DataFrame;
        or ``(y, X)`` arrays.
    groups
        The grouping column (or one label per row) of the random intercept; a one-element list
        is accepted (the form nested terms will take).
    trials
        Column (or array) of binomial trials; ``None``: Bernoulli rows.
    n_quad
        Quadrature nodes, 1 (Laplace) to 100; 25 matches ``glmer(nAGQ = 25)``.
    profile_ci
        Profile-likelihood interval for σ (``info["sd_ci"]``) instead of Wald on the log scale.
    level
        Confidence level.

    Returns
    -------
    ModelResult
        ``random_sd = {group term: σ}``; ``info``: ``loglik``, ``converged``, ``sd_ci``,
        ``boundary``, ``modes`` (conditional modes by group label) …

    Examples
    --------
    lme4's cbpp (``docs/models.md``)::

        models.glmm_logit("incidence ~ period", data=cbpp, groups="herd", trials="size", n_quad=25)

    R: ``lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), family = binomial,
    data = cbpp, nAGQ = 25)``.

    References
    ----------
    Pinheiro & Bates (1995) JCGS 4:12; Bates et al. (2015) J Stat Softw 67(1).
    """
    check_level(level)
    column, term = _one_grouping_term(groups, "glmm_logit")
    mf = model_frame(formula, data, extra={"groups": column, "trials": trials}, names=names, model="glmm_logit")
    fit = fit_glmm_logit(mf.X, mf.y, mf.extra["groups"], trials=mf.extra.get("trials"), n_quad=n_quad,
                         names=mf.names, level=level, profile_ci=profile_ci)
    k = len(fit.names)
    return ModelResult(
        model="glmm_logit", names=fit.names, coef=fit.beta, se=fit.se, vcov=np.asarray(fit.vcov)[:k, :k],
        dof=np.inf, nobs=fit.n_obs, vcov_type="observed information" + (" (Laplace)" if n_quad == 1 else
                                                                         f" (AGHQ, {n_quad} nodes)"),
        n_groups=fit.n_groups, formula=mf.formula, level=level, random_sd={term: fit.sd},
        info={"loglik": fit.loglik, "converged": fit.converged, "boundary": fit.boundary,
              "sd_ci": (fit.sd_ci_low, fit.sd_ci_high), "sd_ci_method": fit.sd_ci_method,
              "log_sd_se": fit.log_sd_se, "n_quad": fit.n_quad, "message": fit.message,
              "modes": dict(zip(fit.group_labels.tolist(), fit.modes.tolist())), "n_dropped": mf.n_dropped},
        fit=fit,
    )


def lmm(
    formula,
    data=None,
    *,
    groups,
    random_slopes: Sequence[str] | None = None,
    reml: bool = True,
    weights=None,
    names=None,
    level: float = 0.95,
) -> ModelResult:
    r"""Linear mixed model with a random intercept (and optional random slopes) per group, REML or ML.

    Model: :math:`y_{ij} = x_{ij}'\beta + z_{ij}'u_j + e_{ij}`, :math:`u_j \sim N(0, \Sigma)`
    (unstructured: intercept and each slope in ``random_slopes``, with their correlations),
    :math:`e_{ij} \sim N(0, \sigma^2 / w_{ij})`; fitted by statsmodels ``MixedLM``. Standard errors
    model-based, normal reference (lme4 reports no df; ``df`` is ``inf``).

    Parameters
    ----------
    formula, data
        ``"y ~ x1 + x2"`` and the DataFrame; or ``(y, X)`` arrays.
    groups
        Grouping column (or labels); a one-element list is accepted.
    random_slopes
        Columns of ``data`` with a random slope within ``groups`` (numeric columns).
    reml
        REML (default) or maximum likelihood.
    weights
        Column (or array) of positive precision weights (residual variance σ²/w).
    level
        Confidence level.

    Returns
    -------
    ModelResult
        ``random_sd = {"g": SD of the intercepts, "x|g": SD of the slopes of x, ...}``; ``info``:
        ``residual_sd``, ``random_cov`` (the covariance matrix, rows/columns in that order),
        ``random_corr``, ``loglik``, ``converged``, ``boundary``.

    Examples
    --------
    lme4's sleepstudy (``docs/models.md``)::

        models.lmm("Reaction ~ Days", data=sleepstudy, groups="Subject", random_slopes=["Days"], reml=True)

    R: ``lme4::lmer(Reaction ~ Days + (Days | Subject), data = sleepstudy, REML = TRUE)``.

    References
    ----------
    Laird & Ware (1982) Biometrics 38:963; Bates et al. (2015) J Stat Softw 67(1).
    """
    check_level(level)
    if not isinstance(reml, bool):
        raise ValueError(f"reml must be True or False, got {reml!r}")
    column, term = _one_grouping_term(groups, "lmm")
    slopes = list(random_slopes or [])
    if isinstance(random_slopes, str):
        raise TypeError("random_slopes must be a list of column names, e.g. ['Days']")
    extra = {"groups": column, "weights": weights, **{f"slope:{s}": s for s in slopes}}
    if slopes and not isinstance(formula, str):
        raise TypeError("lmm: random_slopes name columns, which needs the formula interface (formula, data)")
    mf = model_frame(formula, data, extra=extra, names=names, model="lmm")
    Z = [np.ones(mf.nobs)]
    for s in slopes:
        try:
            Z.append(np.asarray(mf.extra[f"slope:{s}"], dtype=float))
        except (TypeError, ValueError):
            raise DataError(f"lmm: random slope column {s!r} must be numeric") from None
    w = mf.extra.get("weights")
    if w is not None and not (np.all(np.isfinite(np.asarray(w, dtype=float))) and np.all(np.asarray(w, float) > 0)):
        raise DataError("lmm: weights must be positive and finite")
    fit = fit_lmm(mf.X, mf.y, mf.extra["groups"], Z=np.column_stack(Z), weights=w, reml=reml, names=mf.names)
    re_names = [term] + [f"{s}|{term}" for s in slopes]
    sd = np.sqrt(np.clip(np.diag(fit.cov_re), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = fit.cov_re / np.outer(sd, sd)
    return ModelResult(
        model="lmm", names=fit.names, coef=fit.beta, se=np.sqrt(np.diag(fit.vcov)), vcov=fit.vcov, dof=np.inf,
        nobs=fit.n_obs, vcov_type="model-based (REML)" if reml else "model-based (ML)", n_groups=fit.n_groups,
        formula=mf.formula, level=level, random_sd=dict(zip(re_names, sd.tolist())),
        info={"residual_sd": fit.residual_sd, "random_cov": fit.cov_re.tolist(), "random_corr": corr.tolist(),
              "random_terms": re_names, "loglik": fit.loglik, "reml": reml, "converged": fit.converged,
              "boundary": fit.boundary, "n_dropped": mf.n_dropped},
        fit=fit,
    )
