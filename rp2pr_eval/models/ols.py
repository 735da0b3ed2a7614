"""``cluster_ols``: OLS/WLS from a formula (or arrays) with heteroskedasticity- or cluster-robust variance.

The engine is :func:`rp2pr_eval.models.linear.wls` (one implementation of HC1–HC3 and CR1–CR3,
Satterthwaite degrees of freedom and HTZ Wald tests); this module is its formula front end.
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from rp2pr_eval._options import check_level, check_option
from rp2pr_eval.models.formula import model_frame
from rp2pr_eval.models.linear import LinearFit, WaldTest, WaldTestType, WorkingModel, wls
from rp2pr_eval.models.linear import wald_test as linear_wald_test
from rp2pr_eval.models.result import ModelResult

__all__ = ["OlsVcov", "cluster_ols", "wald_test"]

#: Variance types of :func:`cluster_ols`: HC* without clusters, CR* with one cluster variable.
OlsVcov = Literal["HC1", "HC2", "HC3", "CR1", "CR2", "CR3"]


def cluster_ols(
    formula,
    data=None,
    *,
    cluster=None,
    weights=None,
    vcov: str = "CR2",
    working_model: str = "identity",
    names=None,
    level: float = 0.95,
) -> ModelResult:
    r"""Least squares (OLS, or WLS with analytic weights) with a robust covariance matrix.

    Estimator :math:`\hat\beta = (X'WX)^{-1}X'Wy` and sandwich covariance
    :math:`V = M[\sum_j X_j'W_jA_je_je_j'A_j'W_jX_j]M`, :math:`M = (X'WX)^{-1}`, where the
    adjustment :math:`A_j` is (``docs/methods/variance.md``):

    * ``"CR1"``: :math:`\sqrt{G/(G-1)\cdot(N-1)/(N-K)}\,I` (Stata's ``vce(cluster)``), df ``G - 1``;
    * ``"CR2"``: Bell–McCaffrey bias-reduced linearisation, df by Satterthwaite (Pustejovsky &
      Tipton 2018), exactly as clubSandwich ``coef_test(vcov = "CR2", test = "Satterthwaite")``;
    * ``"CR3"``: the clubSandwich jackknife :math:`(I - H_{jj})^{-1}`, df ``G - 1``;
    * ``"HC1"``, ``"HC2"``, ``"HC3"``: the same with every row its own cluster (no ``cluster``),
      as ``sandwich::vcovHC(type = ...)``; df ``N - K``.

    Parameters
    ----------
    formula, data
        A formula (formulaic syntax: ``"y ~ x + C(g)"``, ``a:b`` interactions, ``a*b``) and the
        DataFrame; or ``(y, X)`` arrays (``X`` a design matrix including any intercept).
    cluster
        Column name (formula path) or one label per row; required for ``CR*``, not allowed for ``HC*``.
    weights
        Column name or array of positive analytic weights (``None``: OLS).
    vcov
        ``"CR1"``, ``"CR2"`` (default), ``"CR3"``, ``"HC1"``, ``"HC2"`` or ``"HC3"``.
    working_model
        CR2/HC2 working model: ``"identity"`` (clubSandwich's default for ``lm``, weighted or not)
        or ``"inverse_weights"`` (clubSandwich ``inverse_var = TRUE``; the weighted HC2 of
        ``sandwich`` and statsmodels).
    names
        Array path: coefficient names (default the DataFrame's columns or ``x0, x1, ...``).
    level
        Default confidence level of ``conf_int()`` and ``to_frame()``.

    Returns
    -------
    ModelResult
        ``params``, ``bse``, ``df``, ``pvalues``, ``conf_int()``, ``cov_params`` …; ``fit`` is the
        :class:`~rp2pr_eval.models.linear.LinearFit` (for :func:`wald_test`).

    Raises
    ------
    DataError
        Missing columns, non-positive weights, fewer than 2 clusters, a rank-deficient design
        (the collinear columns are named), CR3 undefined.
    ValueError
        An unknown ``vcov``, or ``cluster`` given for ``HC*`` / missing for ``CR*``.

    Examples
    --------
    clubSandwich's MortalityRates example (``docs/models.md``)::

        models.cluster_ols("mrate ~ 0 + legal + beertaxa + C(state) + C(year)", data=deaths,
                           cluster="state", weights="pop", vcov="CR2")

    R: ``clubSandwich::coef_test(lm(mrate ~ 0 + legal + beertaxa + factor(state) + factor(year),
    weights = pop, data = deaths), vcov = "CR2", cluster = deaths$state)``.

    References
    ----------
    Bell & McCaffrey (2002) Survey Methodology 28:169; Pustejovsky & Tipton (2018) JBES 36:672;
    Cameron & Miller (2015) J Hum Resour 50:317; MacKinnon & White (1985) J Econometrics 29:305.
    """
    check_option("vcov", vcov, OlsVcov)
    check_option("working_model", working_model, WorkingModel)
    check_level(level)
    heteroskedastic = vcov.startswith("HC")
    if heteroskedastic and cluster is not None:
        raise ValueError(f"vcov={vcov!r} has no clusters; use 'CR{vcov[2]}' with cluster={cluster!r}")
    if not heteroskedastic and cluster is None:
        raise ValueError(f"vcov={vcov!r} needs cluster= (a column or one label per row); "
                         f"use 'HC{vcov[2]}' without clusters")
    mf = model_frame(formula, data, extra={"cluster": cluster, "weights": weights}, names=names,
                     model="cluster_ols")
    engine_vcov = "CR" + vcov[2]
    fit = wls(mf.X, mf.y, weights=mf.extra.get("weights"), cluster=mf.extra.get("cluster"), vcov=engine_vcov,
              names=mf.names, working_model=working_model)
    dof = np.full(len(fit.names), float(fit.n_obs - len(fit.names))) if heteroskedastic else fit.df
    return ModelResult(
        model="cluster_ols", names=fit.names, coef=fit.coef, se=fit.se, vcov=fit.vcov, dof=dof, nobs=fit.n_obs,
        vcov_type=vcov, n_groups=fit.n_clusters, formula=mf.formula, level=level,
        info={"n_dropped": mf.n_dropped, "working_model": working_model,
              "df_method": {"CR2": "Satterthwaite", "CR1": "G - 1", "CR3": "G - 1"}.get(vcov, "N - K")},
        fit=fit,
    )


def wald_test(result: ModelResult | LinearFit, R, r=None, *, test: WaldTestType = "HTZ") -> WaldTest:
    """Wald test of ``R β = r`` for a :func:`cluster_ols` result (or a ``LinearFit``).

    ``R`` is a ``(q, k)`` matrix or a list of term names (then ``R`` selects those coefficients);
    ``test`` is ``"HTZ"`` (Hotelling T² approximation, clubSandwich ``Wald_test(test = "HTZ")``),
    ``"chi-sq"`` or ``"naive-F"``. See :func:`rp2pr_eval.models.linear.wald_test`.
    """
    fit = result.fit if isinstance(result, ModelResult) else result
    if not isinstance(fit, LinearFit):
        raise ValueError("wald_test needs a result of cluster_ols (or a LinearFit from wls)")
    return linear_wald_test(fit, R, r, test=test)
