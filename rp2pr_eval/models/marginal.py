"""``gee_logit``: logistic GEE from a formula, with the robust and Mancl–DeRouen sandwiches.

Engine: :func:`rp2pr_eval.models.gee.fit_gee_logit` (Fisher scoring on cluster sums, geepack's
moment estimator of the exchangeable correlation, both sandwiches from p × p cluster summaries).
"""
from __future__ import annotations

from rp2pr_eval._options import GeeCovStruct, GeeVcov, check_level, check_option
from rp2pr_eval.models.formula import model_frame
from rp2pr_eval.models.gee import fit_gee_logit
from rp2pr_eval.models.result import ModelResult

__all__ = ["gee_logit"]


def gee_logit(
    formula,
    data=None,
    *,
    groups,
    cov_struct: str = "exchangeable",
    vcov: str = "mancl_derouen",
    rho: str | float | tuple = "iterate",
    blocks=None,
    names=None,
    level: float = 0.95,
) -> ModelResult:
    r"""Population-averaged logistic regression by GEE, with a small-sample sandwich.

    :math:`\operatorname{logit} E(y_{ij}) = x_{ij}'\beta`, working correlation exchangeable or
    independence within ``groups``; ``vcov="mancl_derouen"`` (default) is the bias-corrected
    sandwich of Mancl & DeRouen (2001), ``"robust"`` the Liang–Zeger sandwich (geepack
    ``std.err = "san.se"``). Reference distribution t(G − p), G clusters and p coefficients.

    Parameters
    ----------
    formula, data
        ``"y ~ x1 + x2"`` (0/1 outcome) and the DataFrame; or ``(y, X)`` arrays.
    groups
        Cluster column (or one label per row).
    cov_struct
        ``"exchangeable"``, ``"independence"`` or ``"block_exchangeable"`` (within-block
        ``alpha0``, between-block ``alpha1``; needs ``blocks``).
    vcov
        ``"mancl_derouen"``, ``"robust"``, ``"kauermann_carroll"`` or ``"fay_graubard"`` (all are
        always computed; ``info`` holds the standard errors of each).
    blocks
        Block column (or labels) within ``groups`` for ``cov_struct="block_exchangeable"``.
    rho
        Exchangeable only: ``"iterate"`` (geepack's alternation; held at its one-step value with a
        warning when the alternation has no fixed point), ``"one-step"``, or a fixed number.
    level
        Confidence level.

    Returns
    -------
    ModelResult
        ``info``: ``working_corr``, ``rho_method``, ``converged``, ``se_robust``,
        ``se_mancl_derouen``.

    Examples
    --------
    geepack's ohio (``docs/models.md``)::

        models.gee_logit("resp ~ age + smoke + age:smoke", data=ohio, groups="id", vcov="robust")

    R: ``geepack::geeglm(resp ~ age + smoke + age:smoke, id = id, data = ohio, family = binomial,
    corstr = "exchangeable")``; Mancl–DeRouen: ``geesmv::GEE.var.md``.

    References
    ----------
    Liang & Zeger (1986) Biometrika 73:13; Mancl & DeRouen (2001) Biometrics 57:126;
    Halekoh, Højsgaard & Yan (2006) J Stat Softw 15(2).
    """
    check_option("cov_struct", cov_struct, GeeCovStruct)
    check_option("vcov", vcov, GeeVcov)
    check_level(level)
    extra = {"groups": groups} if blocks is None else {"groups": groups, "blocks": blocks}
    mf = model_frame(formula, data, extra=extra, names=names, model="gee_logit")
    fit = fit_gee_logit(mf.X, mf.y, mf.extra["groups"], cov_struct=cov_struct, vcov=vcov, names=mf.names, rho=rho,
                        blocks=mf.extra.get("blocks"))
    return ModelResult(
        model="gee_logit", names=fit.names, coef=fit.coef, se=fit.se, vcov=fit.vcov, dof=float(fit.df),
        nobs=fit.n_obs, vcov_type=vcov, n_groups=fit.n_clusters, formula=mf.formula, level=level,
        info={"working_corr": fit.working_corr, "rho_method": fit.rho_method, "cov_struct": cov_struct,
              "converged": fit.converged, "n_iter": fit.n_iter,
              "se_robust": dict(zip(fit.names, map(float, (fit.vcov_robust.diagonal()) ** 0.5))),
              "se_mancl_derouen": dict(zip(fit.names, map(float, (fit.vcov_mancl_derouen.diagonal()) ** 0.5))),
              "se_kauermann_carroll": dict(zip(fit.names, map(float, fit.vcov_kauermann_carroll.diagonal() ** 0.5))),
              "se_fay_graubard": dict(zip(fit.names, map(float, fit.vcov_fay_graubard.diagonal() ** 0.5))),
              "working_corr_between": fit.working_corr_between,
              "n_dropped": mf.n_dropped},
        fit=fit,
    )
