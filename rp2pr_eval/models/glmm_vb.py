"""Variational-Bayes random-intercept logistic GLMM (statsmodels), for comparison with the ML fit only."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from rp2pr_eval.models.glmm_data import prepare_data

__all__ = ["GlmmVbFit", "fit_glmm_logit_vb"]

@dataclass(frozen=True, slots=True)
class GlmmVbFit:
    """Variational-Bayes fit (statsmodels ``BinomialBayesMixedGLM.fit_vb``).

    ``beta``/``se`` are posterior means/SDs of the fixed effects, ``sd`` is
    ``exp`` of the posterior mean of log(sigma), and ``sd_ci_low``/``sd_ci_high``
    an approximate 95% posterior interval. Not maximum likelihood; for comparison only.
    """

    names: tuple[str, ...]
    beta: np.ndarray
    se: np.ndarray
    sd: float
    log_sd_sd: float
    sd_ci_low: float
    sd_ci_high: float
    n_obs: int
    n_groups: int
    group_labels: np.ndarray
    modes: np.ndarray
    mode_se: np.ndarray
    message: str


def fit_glmm_logit_vb(
    X, y, groups, *, trials=None, names=None, fe_p: float = 2.0, vcp_p: float = 0.5
) -> GlmmVbFit:
    """Variational-Bayes random-intercept logistic GLMM (statsmodels), for comparison only.

    Wraps ``statsmodels.genmod.bayes_mixed_glm.BinomialBayesMixedGLM(...).fit_vb()``
    (mean-field Gaussian variational approximation). Same model as
    :func:`fit_glmm_logit`, but with priors: beta_j ~ N(0, fe_p^2) and
    log(sigma) ~ N(0, vcp_p^2) (statsmodels' defaults). The results are posterior
    summaries, not maximum-likelihood estimates, and the posterior SDs of a
    mean-field approximation are typically too small. Binomial rows (``trials``)
    are expanded into 0/1 rows.

    References
    ----------
    Blei, D. M., Kucukelbir, A. and McAuliffe, J. D. (2017). Variational inference:
    a review for statisticians. J. Am. Stat. Assoc. 112, 859–877.
    """
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    d = prepare_data(X, y, groups, trials, names)
    Xs, ys, ns, gs = d.X, d.succ, d.trials, d.gidx
    if not d.bernoulli:
        reps_pos = ys.astype(np.int64)
        reps_neg = (ns - ys).astype(np.int64)
        rows = np.arange(len(ys))
        idx = np.concatenate([np.repeat(rows, reps_pos), np.repeat(rows, reps_neg)])
        yy = np.concatenate([np.ones(reps_pos.sum()), np.zeros(reps_neg.sum())])
        Xs, ys, gs = Xs[idx], yy, gs[idx]
    m = len(ys)
    Z = sp.csr_matrix((np.ones(m), (np.arange(m), gs)), shape=(m, d.n_groups))
    model = BinomialBayesMixedGLM(ys, Xs, Z, np.zeros(d.n_groups, dtype=int), vcp_p=vcp_p, fe_p=fe_p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = model.fit_vb()
    k = Xs.shape[1]
    fe_mean, fe_sd = np.asarray(res.fe_mean), np.asarray(res.fe_sd)
    vcp_mean, vcp_sd = float(res.vcp_mean[0]), float(res.vcp_sd[0])
    return GlmmVbFit(
        names=d.names,
        beta=fe_mean[:k],
        se=fe_sd[:k],
        sd=math.exp(vcp_mean),
        log_sd_sd=vcp_sd,
        sd_ci_low=math.exp(vcp_mean - 1.959963984540054 * vcp_sd),
        sd_ci_high=math.exp(vcp_mean + 1.959963984540054 * vcp_sd),
        n_obs=d.n_obs,
        n_groups=d.n_groups,
        group_labels=d.labels,
        modes=np.asarray(res.vc_mean),
        mode_se=np.asarray(res.vc_sd),
        message=(
            "variational Bayes (statsmodels BinomialBayesMixedGLM.fit_vb): "
            "posterior means and SDs, not maximum likelihood"
        ),
    )
