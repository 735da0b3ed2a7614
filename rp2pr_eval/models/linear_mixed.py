"""Linear mixed model by REML or ML: the array core behind :func:`rp2pr_eval.models.lmm`.

statsmodels ``MixedLM`` does the fitting (a well-kept library: no hand-written optimiser here);
this module adds what the package needs around it:

* prior (precision) weights, which ``MixedLM`` lacks: the model
  :math:`y_i = x_i'\\beta + z_i'u_{g(i)} + e_i`, :math:`e_i \\sim N(0, \\sigma^2/w_i)`, is fitted on
  rows scaled by :math:`\\sqrt{w_i}` (``y``, ``X`` and the random-effects design ``Z`` alike), which
  has the same likelihood up to the Jacobian :math:`\\tfrac12\\sum\\log w_i`, added back;
* a standardised response (statsmodels' optimiser fails with a singular matrix when var(y) is tiny
  relative to its mean, e.g. mean log days 3.75 with SD 0.2); estimates are transformed back
  exactly (the centre goes into the intercept column, so centring is used only when ``X`` has one);
* a fallback to Powell's method when the default optimiser hits a singular matrix, and the
  boundary and convergence diagnostics as fields instead of warnings.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from rp2pr_eval.errors import DataError

__all__ = ["LmmFit", "fit_lmm"]


@dataclass(frozen=True, slots=True, eq=False)
class LmmFit:
    """Result of :func:`fit_lmm` (data units; arrays are plain numpy).

    ``beta``/``vcov`` fixed effects and their model-based covariance (the fixed-effect block of
    the inverse information); ``cov_re`` the random-effects covariance (q × q), ``residual_sd``
    σ, ``loglik`` the (REML or ML) log-likelihood of the original data, ``converged``,
    ``boundary`` (statsmodels warned of a boundary, or a variance ≤ 1e-10), ``n_groups``.
    """

    names: tuple[str, ...]
    beta: np.ndarray
    vcov: np.ndarray
    cov_re: np.ndarray
    residual_sd: float
    loglik: float
    reml: bool
    converged: bool
    boundary: bool
    n_obs: int
    n_groups: int
    group_codes: np.ndarray


def fit_lmm(X, y, groups, *, Z=None, weights=None, reml: bool = True, names=None) -> LmmFit:
    """Fit ``y = Xβ + Z u_g + e`` with ``u_g ~ N(0, Σ)`` per group and ``e ~ N(0, σ²/w)``.

    Parameters
    ----------
    X : ndarray (n, k)
        Fixed-effects design (with an intercept column of ones if wanted).
    y : ndarray (n,)
        Response.
    groups : array (n,)
        Group labels; codes follow the sorted labels.
    Z : ndarray (n, q), optional
        Random-effects design; default a random intercept (a column of ones).
    weights : ndarray (n,), optional
        Positive precision weights (rescaled to mean 1; results do not depend on their scale).
    reml : bool
        REML (default) or maximum likelihood.

    Raises
    ------
    DataError
        A singular fit (non-finite covariance of the fixed effects), fewer than 2 groups.
    """
    import pandas as pd
    from statsmodels.regression.mixed_linear_model import MixedLM   # not statsmodels.api: 0.7 s of imports

    X = np.asarray(X, dtype=float)
    y_raw = np.asarray(y, dtype=float)
    n, k = X.shape
    names_t = tuple(names) if names is not None else tuple(f"x{j}" for j in range(k))
    codes = pd.factorize(np.asarray(groups), sort=True)[0]
    if (codes < 0).any():
        raise DataError("lmm: groups has missing labels")
    n_groups = int(codes.max() + 1)
    if n_groups < 2:
        raise DataError(f"lmm: a random effect needs at least 2 groups; got {n_groups}")
    ones = np.flatnonzero(np.all(X == 1.0, axis=0))
    centre = float(y_raw.mean()) if ones.size else 0.0
    spread = float(y_raw.std()) or 1.0
    y_std = (y_raw - centre) / spread
    Zm = np.ones((n, 1)) if Z is None else np.asarray(Z, dtype=float).reshape(n, -1)
    log_jacobian = 0.0
    Xf, yf = X, y_std
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        sw = np.sqrt(w / w.mean())
        Xf, yf, Zm = X * sw[:, None], y_std * sw, Zm * sw[:, None]
        log_jacobian = float(np.log(sw).sum())  # the scaled data's likelihood omits +½Σlog w
    model = MixedLM(yf, Xf, groups=codes, exog_re=Zm)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = model.fit(reml=reml)           # statsmodels' default optimiser (BFGS)
        except np.linalg.LinAlgError:
            res = model.fit(reml=reml, method="powell")
    boundary = any("boundary" in str(w_.message).lower() for w_ in caught)
    beta = np.asarray(res.fe_params) * spread
    if ones.size:
        beta[ones[0]] += centre
    V = np.asarray(res.cov_params())[:k, :k] * spread**2
    if not np.all(np.isfinite(V)):
        raise DataError("lmm: singular fit (non-finite covariance of the fixed effects)")
    cov_re = np.asarray(res.cov_re) * spread**2
    n_eff = n - k if reml else n
    loglik = float(res.llf) - n_eff * np.log(spread) + log_jacobian
    boundary = boundary or bool(np.any(np.diag(cov_re) <= 1e-10))
    return LmmFit(names=names_t, beta=beta, vcov=V, cov_re=cov_re, residual_sd=float(np.sqrt(res.scale)) * spread,
                  loglik=loglik, reml=bool(reml), converged=bool(res.converged), boundary=boundary, n_obs=n,
                  n_groups=n_groups, group_codes=codes)
