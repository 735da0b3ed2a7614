"""``mixed_linear``: linear mixed model on trust × period values (REML).

Thin: the trust × period values, then :func:`rp2pr_eval.models.linear_mixed.fit_lmm` (statsmodels
``MixedLM`` with prior weights, the engine of :func:`rp2pr_eval.models.lmm`), then the
between–within degrees of freedom and an :class:`~rp2pr_eval.results.Effect`.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from rp2pr_eval._options import IncompletePairs, RatesType, WeightsType, check_level, check_option
from rp2pr_eval.errors import DataError
from rp2pr_eval.estimators.prepare import prepare, scale_of, trust_values
from rp2pr_eval.models.linear_mixed import fit_lmm
from rp2pr_eval.results.effect import Effect
from rp2pr_eval.study.design import StudyDesign


def mixed_linear(
    patients: pd.DataFrame,
    outcome: str,
    *,
    design: StudyDesign | None = None,
    cluster: str | None = "pair_id",
    weights: str | None = None,
    summary: str = "mean_log",
    level: float = 0.95,
    incomplete_pairs: IncompletePairs | None = None,
    rates: RatesType = "crude",
) -> Effect:
    r"""Random-intercept linear mixed model for trust × period values, REML.

    .. math:: \bar y_{tp} = \beta_0 + \beta_1 T_t + \beta_2\,\text{post}_p + \delta\, T_t\,\text{post}_p + u_t + e_{tp},
              \quad u_t \sim N(0, \sigma_u^2),\ e_{tp} \sim N(0, \sigma^2 / w_{tp})

    fitted by statsmodels ``MixedLM`` (REML) through :func:`~rp2pr_eval.models.linear_mixed.fit_lmm`.  ``weights="denominator"`` makes
    the residual variance inversely proportional to the cell's patients
    (statsmodels has no prior weights for ``MixedLM``; the model is fitted on
    :math:`\sqrt{w}`-scaled data with the random-effect design scaled alike,
    which is the same likelihood once the Jacobian ½Σlog w is added back); ``None`` (default) is the unweighted model,
    which matches R ``lmer(rate ~ treated * post + (1 | trust_id))``.

    Degrees of freedom for the treated:post test: the between–within rule
    (SAS ``DDFM=BW``): treated:post varies within trusts, so it gets the
    within-trust residual df N − n_trusts − (p − p_between), where p_between
    counts the trust-level fixed effects (intercept, treated).  With two
    periods per trust this equals n_trusts − 2.  Inference is model-based;
    ``cluster`` is only used to check the design (the pair-level dependence is
    not modelled: use the cluster-robust estimators for the primary analysis).

    ``details`` holds the variance components (``re_sd`` = σ_u, ``residual_sd``),
    the REML log-likelihood and convergence.

    ``patients`` may be a trust panel; ``incomplete_pairs`` and ``rates`` as in
    :func:`~rp2pr_eval.did_aggregate`.

    References
    ----------
    Laird & Ware (1982) Biometrics 38:963; Schluchter & Elashoff (1990) on BW df.
    R: ``lme4::lmer(rate ~ treated * post + (1 | trust_id), REML = TRUE)``.
    """
    check_option("weights", weights, WeightsType, allow_none=True)
    check_level(level)
    prep = prepare(patients, outcome, design=design, cluster=cluster, estimator="mixed_linear", panel_ok=True,
                   incomplete_pairs=incomplete_pairs, rates=rates)
    panel = trust_values(prep, "period", summary=summary)
    T = panel["treated"].to_numpy(dtype=float)
    P = (panel["period"] == "post").to_numpy(dtype=float)
    X = np.column_stack([np.ones(len(panel)), T, P, T * P])
    names = ["intercept", "treated", "post", "treated:post"]
    groups = pd.factorize(panel["trust_id"], sort=True)[0]
    w = panel["weight"].to_numpy(dtype=float) if weights == "denominator" else None
    fit = fit_lmm(X, panel["value"].to_numpy(dtype=float), groups, weights=w, reml=True, names=names)
    if not fit.converged:
        warnings.warn(f"mixed_linear: REML fit for {outcome!r} did not converge; estimates are unreliable",
                      RuntimeWarning, stacklevel=2)
    beta, V = fit.beta, fit.vcov
    se_all = np.sqrt(np.diag(V))
    j = names.index("treated:post")
    n_trusts = int(groups.max() + 1)
    df = float(len(panel) - n_trusts - (len(names) - 2))
    if df < 1:
        raise DataError("mixed_linear: too few trust-period rows for the between–within degrees of freedom")
    dist = stats.t(df)
    q = float(dist.ppf(0.5 + level / 2))
    est, se = float(beta[j]), float(se_all[j])
    re_var = float(fit.cov_re.ravel()[0])
    details = {
        "coefficients": {n: (float(b), float(s)) for n, b, s in zip(names, beta, se_all)},
        "re_sd": float(np.sqrt(max(re_var, 0.0))),
        "residual_sd": fit.residual_sd,
        "log_likelihood": fit.loglik,
        "reml": True,
        "converged": fit.converged,
        "boundary": fit.boundary,
        "weights": weights,
        "df_method": "between-within",
        "n_dropped": prep.n_dropped,
        **prep.notes(),
    }
    return Effect(outcome=prep.entry.name, estimator="mixed_linear",
                  estimand="treated:post difference in differences (random trust intercepts)",
                  scale=scale_of(prep.entry, summary), estimate=est, se=se, ci_low=est - q * se, ci_high=est + q * se,
                  p_value=float(2 * dist.sf(abs(est / se))), df=df, n_obs=len(panel), n_trusts=n_trusts,
                  n_clusters=None, cluster=None, vcov="model-based (REML)", level=level, details=details)
