"""``mixed_linear``: linear mixed model on trust × period values (statsmodels ``MixedLM``, REML)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from rp2pr_eval._options import WeightsType, check_level, check_option
from rp2pr_eval.errors import DataError
from rp2pr_eval.estimators.prepare import prepare, scale_of, trust_values
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
) -> Effect:
    r"""Random-intercept linear mixed model for trust × period values, REML.

    .. math:: \bar y_{tp} = \beta_0 + \beta_1 T_t + \beta_2\,\text{post}_p + \delta\, T_t\,\text{post}_p + u_t + e_{tp},
              \quad u_t \sim N(0, \sigma_u^2),\ e_{tp} \sim N(0, \sigma^2 / w_{tp})

    fitted by statsmodels ``MixedLM`` (REML).  ``weights="denominator"`` makes
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

    References
    ----------
    Laird & Ware (1982) Biometrics 38:963; Schluchter & Elashoff (1990) on BW df.
    R: ``lme4::lmer(rate ~ treated * post + (1 | trust_id), REML = TRUE)``.
    """
    check_option("weights", weights, WeightsType, allow_none=True)
    check_level(level)
    import statsmodels.api as sm

    prep = prepare(patients, outcome, design=design, cluster=cluster, estimator="mixed_linear")
    panel = trust_values(prep, "period", summary=summary)
    T = panel["treated"].to_numpy(dtype=float)
    P = (panel["period"] == "post").to_numpy(dtype=float)
    X = np.column_stack([np.ones(len(panel)), T, P, T * P])
    names = ["intercept", "treated", "post", "treated:post"]
    y_raw = panel["value"].to_numpy(dtype=float)
    # standardise the response: statsmodels' optimiser fails (singular matrix) when var(y) is tiny
    # relative to its mean (e.g. mean log days 3.75, SD 0.2); estimates are transformed back exactly.
    centre, spread = float(y_raw.mean()), float(y_raw.std()) or 1.0
    y = (y_raw - centre) / spread
    groups = pd.factorize(panel["trust_id"], sort=True)[0]
    Z = np.ones((len(panel), 1))
    log_jacobian = 0.0
    if weights == "denominator":
        sw = np.sqrt(panel["weight"].to_numpy(dtype=float) / panel["weight"].mean())
        X, y, Z = X * sw[:, None], y * sw, Z * sw[:, None]
        log_jacobian = float(np.log(sw).sum())  # the scaled data's likelihood omits +½Σlog w
    model = sm.MixedLM(y, X, groups=groups, exog_re=Z)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = model.fit(reml=True)           # statsmodels' default optimiser (BFGS)
        except np.linalg.LinAlgError:
            res = model.fit(reml=True, method="powell")
    boundary = any("boundary" in str(w.message).lower() for w in caught)
    converged = bool(res.converged)
    if not converged:
        warnings.warn(f"mixed_linear: REML fit for {outcome!r} did not converge; estimates are unreliable",
                      RuntimeWarning, stacklevel=2)
    beta = np.asarray(res.fe_params) * spread
    beta[0] += centre
    V = np.asarray(res.cov_params())[: len(names), : len(names)] * spread**2
    if not np.all(np.isfinite(V)):
        raise DataError(f"mixed_linear: singular fit for {outcome!r} (non-finite covariance)")
    se_all = np.sqrt(np.diag(V))
    j = names.index("treated:post")
    n_trusts = int(groups.max() + 1)
    df = float(len(panel) - n_trusts - (len(names) - 2))
    if df < 1:
        raise DataError("mixed_linear: too few trust-period rows for the between–within degrees of freedom")
    dist = stats.t(df)
    q = float(dist.ppf(0.5 + level / 2))
    est, se = float(beta[j]), float(se_all[j])
    re_var = float(np.asarray(res.cov_re).ravel()[0]) * spread**2
    details = {
        "coefficients": {n: (float(b), float(s)) for n, b, s in zip(names, beta, se_all)},
        "re_sd": float(np.sqrt(max(re_var, 0.0))),
        "residual_sd": float(np.sqrt(res.scale)) * spread,
        "log_likelihood": float(res.llf) - (len(panel) - len(names)) * np.log(spread) + log_jacobian,
        "reml": True,
        "converged": converged,
        "boundary": boundary or re_var <= 1e-10,
        "weights": weights,
        "df_method": "between-within",
        "n_dropped": prep.n_dropped,
    }
    return Effect(outcome=prep.entry.name, estimator="mixed_linear",
                  estimand="treated:post difference in differences (random trust intercepts)",
                  scale=scale_of(prep.entry, summary), estimate=est, se=se, ci_low=est - q * se, ci_high=est + q * se,
                  p_value=float(2 * dist.sf(abs(est / se))), df=df, n_obs=len(panel), n_trusts=n_trusts,
                  n_clusters=None, cluster=None, vcov="model-based (REML)", level=level, details=details)
