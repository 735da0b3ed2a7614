"""Random-intercept logistic GLMM by maximum likelihood (adaptive Gauss–Hermite quadrature).

Python has no accurate frequentist logistic GLMM: statsmodels offers only
``BinomialBayesMixedGLM`` (variational Bayes or a Laplace-type posterior mode, with
priors), so this module implements the maximum-likelihood fit that lme4's
``glmer(..., nAGQ = n_quad)`` computes in R, with numpy and scipy only.

Model
-----
For row ``i`` of group ``j`` with ``n_ij`` trials (1 for patient-level 0/1 data)::

    y_ij | b_j ~ Binomial(n_ij, p_ij),   logit(p_ij) = x_ij' beta + b_j,   b_j ~ N(0, sigma^2)

Public functions: :func:`fit_glmm_logit` (maximum likelihood, AGHQ or Laplace) and
:func:`fit_glmm_logit_vb` (statsmodels' variational Bayes, for comparison only; in
:mod:`~rp2pr_eval.models.glmm_vb`). The data preparation is :mod:`~rp2pr_eval.models.glmm_data`,
the likelihood :mod:`~rp2pr_eval.models.glmm_likelihood`, the optimisation helpers
:mod:`~rp2pr_eval.models.glmm_optim`.
The package estimator ``mixed_logistic`` wraps these array-level functions.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import linalg, optimize, stats

from rp2pr_eval.models.glmm_data import GlmmData, mv, prepare_data, tmv
from rp2pr_eval.models.glmm_likelihood import SD_MAX, SD_MIN, AghqObjective, GlmStart, check_separation, glm_start
from rp2pr_eval.models.glmm_optim import num_hessian, preconditioner, profile_sd, step_halving
from rp2pr_eval.models.glmm_vb import GlmmVbFit, fit_glmm_logit_vb

__all__ = [
    "GlmmBoundaryWarning",
    "GlmmConvergenceWarning",
    "GlmmFit",
    "GlmmVbFit",
    "fit_glmm_logit",
    "fit_glmm_logit_vb",
]



class GlmmConvergenceWarning(RuntimeWarning):
    """The optimiser stopped before the convergence criterion was met."""


class GlmmBoundaryWarning(RuntimeWarning):
    """The random-intercept SD was estimated at its boundary, zero."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class GlmmFit:
    """Maximum-likelihood fit of a random-intercept logistic GLMM.

    Attributes
    ----------
    names : tuple of str
        Fixed-effect names, in the order of the columns of ``X``.
    beta : ndarray, shape (k,)
        Fixed effects (log odds scale).
    vcov : ndarray, shape (k + 1, k + 1)
        Inverse observed information of (beta, log sd): the inverse of the negative
        numerical Hessian of the (approximate) marginal log-likelihood. At the
        boundary (``sd == 0``) the beta block is the ordinary logistic regression
        covariance and the log-sd row and column are NaN.
    se : ndarray, shape (k,)
        Standard errors of ``beta``.
    sd : float
        Random-intercept standard deviation sigma.
    log_sd_se : float
        Standard error of log(sigma) (NaN at the boundary).
    sd_ci_low, sd_ci_high : float
        Confidence interval for sigma at ``level``: Wald on the log scale, or the
        profile-likelihood interval when ``profile_ci=True`` (see ``sd_ci_method``).
    loglik : float
        Marginal log-likelihood including the binomial normalising constants
        (log C(n, y)); equals R's ``logLik()`` for ``nAGQ = 1``.
    loglik_saturated : float
        Log-likelihood of the saturated binomial model (0 for 0/1 rows). For
        ``nAGQ > 1`` lme4 reports ``logLik() == loglik - loglik_saturated``
        (its AGQ deviance is built from deviance residuals).
    n_obs, n_groups, n_quad : int
        Rows, groups, and quadrature nodes (1 = Laplace).
    converged : bool
        Whether the Newton decrement met ``tol`` with a negative-definite Hessian.
    n_iter : int
        Outer iterations (quasi-Newton plus Newton polishing steps).
    grad_norm : float
        Largest absolute gradient component of the log-likelihood over
        (beta, log sd) at the returned estimate.
    message : str
        What happened, in words.
    group_labels : ndarray
        Group labels (sorted when sortable), aligned with ``modes``.
    modes : ndarray
        Conditional modes of the random intercepts b_j at the estimates.
    mode_se : ndarray
        Conditional SDs of b_j from the curvature at the mode,
        ``(sum_i n_ij p_ij (1 - p_ij) + 1 / sigma^2) ** -0.5`` (lme4's ``condVar``).
    level : float
        Confidence level of ``sd_ci_low`` and ``sd_ci_high``.
    sd_ci_method : str
        ``"wald-log"``, ``"profile"``, or ``"none"`` (boundary fit without a profile).
    boundary : bool
        True when sigma was estimated at 0.
    """

    names: tuple[str, ...]
    beta: np.ndarray
    vcov: np.ndarray
    se: np.ndarray
    sd: float
    log_sd_se: float
    sd_ci_low: float
    sd_ci_high: float
    loglik: float
    loglik_saturated: float
    n_obs: int
    n_groups: int
    n_quad: int
    converged: bool
    n_iter: int
    grad_norm: float
    message: str
    group_labels: np.ndarray
    modes: np.ndarray
    mode_se: np.ndarray
    level: float = 0.95
    sd_ci_method: str = "wald-log"
    boundary: bool = False

    @property
    def coefficients(self) -> dict[str, tuple[float, float]]:
        """``{name: (estimate, se)}`` for the fixed effects."""
        return {n: (float(b), float(s)) for n, b, s in zip(self.names, self.beta, self.se)}

    def to_frame(self) -> pd.DataFrame:
        """Fixed effects as a tidy frame: term, estimate, se, z, p_value, ci_low, ci_high."""
        z = self.beta / self.se
        q = stats.norm.ppf(0.5 + self.level / 2)
        return pd.DataFrame(
            {
                "term": list(self.names),
                "estimate": self.beta,
                "se": self.se,
                "z": z,
                "p_value": 2 * stats.norm.sf(np.abs(z)),
                "ci_low": self.beta - q * self.se,
                "ci_high": self.beta + q * self.se,
            }
        )


# ------------------------------------------------------------------ data preparation


# ------------------------------------------------------------------- GLM start values


# Tall matrix-vector products go through einsum, and the weighted cross-product in
# row blocks: OpenBLAS's threaded gemv on a tall 80k x 15 matrix was 10-20 times
# slower than a single-threaded loop when the two cores were shared.


# ----------------------------------------------------------------- the likelihood


# ---------------------------------------------------------------------- the fit


def fit_glmm_logit(
    X,
    y,
    groups,
    *,
    trials=None,
    n_quad: int = 25,
    names=None,
    start=None,
    tol: float = 1e-8,
    max_iter: int = 200,
    level: float = 0.95,
    profile_ci: bool = False,
) -> GlmmFit:
    r"""Fit a random-intercept logistic GLMM by maximum likelihood.

    Model: for row :math:`i` of group :math:`j`,
    :math:`y_{ij} \mid b_j \sim \mathrm{Binomial}(n_{ij}, p_{ij})`,
    :math:`\operatorname{logit} p_{ij} = x_{ij}'\beta + b_j`,
    :math:`b_j \sim N(0, \sigma^2)` independently.

    Likelihood as implemented: the marginal log-likelihood
    :math:`\ell(\beta, \sigma) = \sum_j \log \int f_j(b)\,db`, with
    :math:`f_j(b) = \prod_i \binom{n_{ij}}{y_{ij}} p_{ij}(b)^{y_{ij}}
    (1-p_{ij}(b))^{n_{ij}-y_{ij}}\,\phi(b; 0, \sigma^2)`,
    is approximated per group by adaptive Gauss–Hermite quadrature (Liu & Pierce
    1994; Pinheiro & Bates 1995), exactly as lme4's ``glmer(nAGQ = n_quad)``:
    with :math:`\hat b_j` the mode of :math:`\log f_j` and
    :math:`s_j = (\sum_i n_{ij}\hat p_{ij}(1-\hat p_{ij}) + \sigma^{-2})^{-1/2}`,

    .. math::
        \int f_j(b)\,db \approx \sqrt{2\pi}\, s_j \sum_{k=1}^{K} \omega_k
        e^{z_k^2/2} f_j(\hat b_j + s_j z_k),

    where :math:`(z_k, \omega_k)` is the K-point Gauss–Hermite rule for the standard
    normal density (``numpy.polynomial.hermite_e.hermegauss``, weights divided by
    :math:`\sqrt{2\pi}`). ``n_quad = 1`` (:math:`z=0`, :math:`\omega=1`) is the
    Laplace approximation. The binomial constants :math:`\log\binom{n}{y}` are included.

    Data handling: rows are sorted by group; rows with identical group and
    covariates are collapsed into binomial rows when that at least halves the data
    (the constants are kept from the original rows, so nothing changes).

    Maximisation: start from the ordinary logistic regression (IRLS); maximise over
    :math:`(\beta, \log\sigma)` with L-BFGS-B and the exact analytic gradient of the
    quadrature approximation (posterior-weighted node scores plus the terms from
    the dependence of :math:`\hat b_j` and :math:`s_j` on the parameters), in
    coordinates preconditioned by the logistic-regression information; then polish
    with Newton steps on the observed information. The conditional modes are found
    by a vectorised Newton iteration over all groups at once.

    Standard errors: the inverse of the observed information, i.e. of minus the
    Hessian of the approximate marginal log-likelihood over :math:`(\beta, \log\sigma)`,
    computed by central differences of the analytic gradient (2(k + 1) gradient
    evaluations, run on two threads). The interval for
    :math:`\sigma` is Wald on the log scale, or the profile-likelihood interval
    (``profile_ci=True``).

    Parameters
    ----------
    X : array-like or DataFrame, shape (n, k)
        Fixed-effects design including the intercept column (not added here).
        A DataFrame supplies ``names``.
    y : array-like, shape (n,)
        0/1 outcomes, or successes out of ``trials``.
    groups : array-like, shape (n,)
        Group labels of any hashable type (random intercept per label).
    trials : array-like, shape (n,), optional
        Binomial trials per row (default 1: Bernoulli rows).
    n_quad : int
        Gauss–Hermite nodes per group (1 = Laplace), at most 100. Default 25.
    names : sequence of str, optional
        Fixed-effect names (default: DataFrame columns or ``x0, x1, ...``).
    start : array-like, shape (k + 1,), optional
        Starting (beta, log sigma); default the logistic-regression fit and a
        one-step score estimate of sigma.
    tol : float
        Convergence when the Newton decrement :math:`g'(-H)^{-1}g` (about twice
        the remaining gain in log-likelihood) is at most ``tol``.
    max_iter : int
        Maximum quasi-Newton iterations.
    level : float
        Confidence level of the interval for sigma.
    profile_ci : bool
        Compute the profile-likelihood interval for sigma (slower: refits beta
        on a grid of sigma values) instead of the Wald interval on the log scale.

    Returns
    -------
    GlmmFit

    Raises
    ------
    DataError
        Missing or non-finite values, y outside 0/1 (or 0..trials), fewer than two
        groups, no events or only events, rank-deficient X (the columns are named),
        or (quasi-)complete separation.

    Warns
    -----
    GlmmBoundaryWarning
        sigma estimated at 0: the fit is the ordinary logistic regression, ``sd`` is 0,
        and no standard error for log(sigma) exists. Declared when the optimum found
        has sigma < 1e-3, or when the score for sigma^2 at 0,
        :math:`\tfrac12\sum_j[(\sum_i r_{ij})^2 - \sum_i w_{ij}]` with GLM residuals
        and weights, is <= 0 and the optimum is no better than the logistic
        regression (by 1e-6 in log-likelihood).
    GlmmConvergenceWarning
        The convergence criterion was not met (``converged=False``); the gradient
        norm is reported.

    Notes
    -----
    R equivalent (lme4)::

        glmer(cbind(y, trials - y) ~ x1 + ... + (1 | group), family = binomial,
              nAGQ = n_quad)

    ``loglik`` equals R's ``logLik()`` for ``nAGQ = 1``; for ``nAGQ > 1`` lme4 reports
    ``loglik - loglik_saturated`` (the same for 0/1 data, where the saturated
    log-likelihood is 0). Only a single scalar random intercept is supported
    (as for lme4's ``nAGQ > 1``); nested random effects are not implemented.

    References
    ----------
    Liu, Q. and Pierce, D. A. (1994). A note on Gauss–Hermite quadrature.
    Biometrika 81, 624–629.
    Pinheiro, J. C. and Bates, D. M. (1995). Approximations to the log-likelihood
    function in the nonlinear mixed-effects model. J. Comput. Graph. Stat. 4, 12–35.
    Bates, D., Mächler, M., Bolker, B. and Walker, S. (2015). Fitting linear
    mixed-effects models using lme4. J. Stat. Softw. 67(1), 1–48.
    Konis, K. (2007). Linear programming algorithms for detecting separated data in
    binary logistic regression models. DPhil thesis, University of Oxford.
    """
    if isinstance(n_quad, bool) or not isinstance(n_quad, (int, np.integer)) or not 1 <= n_quad <= 100:
        raise ValueError(f"n_quad={n_quad!r} is not valid; expected an integer from 1 to 100")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol={tol!r} is not valid; expected a positive number")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter={max_iter!r} is not valid; expected a positive integer")
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"level={level!r} is not valid; expected a number between 0 and 1")

    d = prepare_data(X, y, groups, trials, names)
    k = d.X.shape[1]
    glm = glm_start(d)
    check_separation(d, glm)
    obj = AghqObjective(d, int(n_quad))

    # score for sigma^2 at sigma = 0 and a one-step estimate of sigma
    r = d.S @ (d.succ - d.trials * glm.mu)
    hw = d.S @ (d.trials * glm.mu * (1 - glm.mu))
    U = 0.5 * float(np.sum(r * r - hw))
    sd0 = math.sqrt(max(U / (0.5 * float(np.sum(hw * hw))), 0.0))
    sd0 = min(max(sd0, 0.1), 5.0)
    if start is None:
        theta0 = np.append(glm.beta, math.log(sd0))
    else:
        theta0 = np.asarray(start, dtype=float).ravel()
        if theta0.shape != (k + 1,) or not np.isfinite(theta0).all():
            raise ValueError(f"start must hold {k + 1} finite numbers (beta then log sd); got {start!r}")

    # preconditioning: theta = T @ u, with T built from an approximate information
    # (the PIRLS information for beta at the start, a normal-theory one for log sigma)
    T, Tinv = preconditioner(d, glm, sd0)
    u0 = Tinv @ theta0
    ll_glm = glm.loglik
    scale = abs(ll_glm) + 1.0
    cache: dict[str, object] = {}

    def evaluate(theta_: np.ndarray) -> tuple[float, np.ndarray]:
        if "theta" in cache and np.array_equal(cache["theta"], theta_):
            return cache["ll"], cache["gr"]  # type: ignore[return-value]
        ll_, gr_ = obj(theta_)
        cache.update(theta=theta_.copy(), ll=ll_, gr=gr_, b=obj.b.copy())
        return ll_, gr_

    def fun(u_: np.ndarray) -> tuple[float, np.ndarray]:
        ll_, gr_ = evaluate(T @ u_)
        return -ll_ / scale, -(T.T @ gr_) / scale

    tau_lo, tau_hi = math.log(SD_MIN), math.log(SD_MAX)
    c = Tinv[k, k]
    bounds = [(None, None)] * k + [(c * tau_lo, c * tau_hi)]
    u0[k] = min(max(u0[k], c * tau_lo), c * tau_hi)
    with np.errstate(over="ignore", under="ignore"):
        res = optimize.minimize(
            fun,
            u0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": int(max_iter), "ftol": 1e-14, "gtol": 1e-5 / scale, "maxcor": 20},
        )
    n_iter = int(res.nit)
    theta = T @ res.x
    ll, gr = evaluate(theta)
    sd_hat = math.exp(theta[k])

    # ---- boundary: sigma -> 0 (the likelihood is no larger than the GLM's)
    near_lower = theta[k] <= tau_lo + 1e-3 or sd_hat < 1e-3
    if near_lower or (U <= 0 and ll - ll_glm < 1e-6):
        return _boundary_fit(d, glm, obj, n_iter, level, profile_ci, U)

    # ---- Newton polishing on the observed information (chord steps; the Hessian is
    # recomputed only after a step longer than 0.1 in standard-error units)
    Hu = num_hessian(obj, theta, T, cache["b"])  # type: ignore[arg-type]
    converged = False
    message = ""
    while theta[k] < tau_hi - 1e-3:
        gu = T.T @ gr
        try:
            cho = linalg.cho_factor(-Hu)
        except linalg.LinAlgError:
            message = (
                "the observed information is not positive definite at the final estimate "
                f"(sd = {math.exp(theta[k]):.3g})"
            )
            if theta[k] > math.log(10.0):
                message += (
                    "; the likelihood is nearly flat in a large SD: groups may be separated "
                    "by their outcomes"
                )
            break
        step = linalg.cho_solve(cho, gu)
        decrement = float(gu @ step)
        if decrement <= tol:
            converged = True
            break
        if n_iter >= max_iter:
            message = (
                f"max_iter={max_iter} iterations reached with Newton decrement "
                f"{decrement:.3g} > tol={tol:g}"
            )
            break
        direction = T @ step

        def candidate(t):
            theta_new = theta + t * direction
            theta_new[k] = min(theta_new[k], tau_hi)
            return theta_new

        found = step_halving(
            candidate, lambda th: obj(th, grad=False, b0=cache["b"], keep=False) >= ll - 1e-12 * scale, 40)  # type: ignore[arg-type]
        if found is None:
            message = "the line search failed to increase the log-likelihood"
            break
        t, theta = found
        ll, gr = evaluate(theta)
        n_iter += 1
        if theta[k] >= tau_hi - 1e-3:
            break
        if t * math.sqrt(decrement) > 0.1:
            Hu = num_hessian(obj, theta, T, cache["b"])  # type: ignore[arg-type]

    if theta[k] >= tau_hi - 1e-3:
        converged = False
        message = (
            f"the random-intercept SD reached the upper limit {SD_MAX:g}: the likelihood keeps "
            "increasing with the SD (groups nearly separated by their outcomes)"
        )

    # ---- final quantities at theta
    b_hat = np.asarray(cache["b"]).copy()
    grad_norm = float(np.max(np.abs(gr)))
    try:
        V = T @ linalg.inv(-Hu) @ T.T
        V = 0.5 * (V + V.T)
        if not np.all(np.diag(V) > 0):
            raise linalg.LinAlgError
    except (linalg.LinAlgError, ValueError):
        V = np.full((k + 1, k + 1), np.nan)
        converged = False
        message = message or "the observed information is singular"
    beta = theta[:k].copy()
    sd = math.exp(theta[k])
    se = np.sqrt(np.diag(V)[:k])
    log_sd_se = float(math.sqrt(V[k, k])) if np.isfinite(V[k, k]) else float("nan")
    zq = float(stats.norm.ppf(0.5 + level / 2))
    ci_lo, ci_hi = sd * math.exp(-zq * log_sd_se), sd * math.exp(zq * log_sd_se)
    method = "wald-log"

    _, h, _, _ = obj.modes(mv(d.X, beta), math.exp(-2 * theta[k]), b_hat)
    mode_se = 1.0 / np.sqrt(h)

    if converged:
        message = (
            f"converged: Newton decrement <= {tol:g} after {n_iter} iterations "
            f"({obj.n_eval} likelihood evaluations)"
        )
        if profile_ci:
            Tb_inv = linalg.inv(T[:k, :k])
            info_beta = -(Tb_inv.T @ Hu[:k, :k] @ Tb_inv)  # -d2 l / d beta2
            ci_lo, ci_hi = profile_sd(obj, beta, theta[k], ll, info_beta, level, step=zq * log_sd_se)
            method = "profile"
    else:
        warnings.warn(
            f"fit_glmm_logit did not converge ({message}); largest gradient component "
            f"{grad_norm:.3g}. Estimates are unreliable: try other start values or check the data.",
            GlmmConvergenceWarning,
            stacklevel=2,
        )
    return GlmmFit(
        names=d.names,
        beta=beta,
        vcov=V,
        se=se,
        sd=sd,
        log_sd_se=log_sd_se,
        sd_ci_low=ci_lo,
        sd_ci_high=ci_hi,
        loglik=ll,
        loglik_saturated=d.ll_saturated,
        n_obs=d.n_obs,
        n_groups=d.n_groups,
        n_quad=int(n_quad),
        converged=converged,
        n_iter=n_iter,
        grad_norm=grad_norm,
        message=message,
        group_labels=d.labels,
        modes=b_hat,
        mode_se=mode_se,
        level=level,
        sd_ci_method=method,
        boundary=False,
    )


def _boundary_fit(
    d: GlmmData, glm: GlmStart, obj: AghqObjective, n_iter: int, level: float, profile_ci: bool, U: float
) -> GlmmFit:
    """The sigma = 0 result: the logistic regression, with a warning."""
    k = d.X.shape[1]
    V = np.full((k + 1, k + 1), np.nan)
    V[:k, :k] = linalg.inv(glm.info)
    se = np.sqrt(np.diag(V)[:k])
    gr = tmv(d.X, d.succ - d.trials * glm.mu)
    upper = float("nan")
    if profile_ci:
        _, upper = profile_sd(
            obj, glm.beta, math.log(SD_MIN), glm.loglik, glm.info, level, step=1.0, lower_search=False
        )
    message = (
        "boundary: the random-intercept SD is estimated as 0 (the likelihood is largest at "
        f"sigma = 0; score for sigma^2 at 0 = {U:.3g}); the fit is the ordinary logistic "
        "regression, the standard error of log(sd) does not exist and a Wald interval for "
        "the SD is not reliable"
        + ("; sd_ci_high is the profile-likelihood upper limit" if profile_ci else "")
    )
    warnings.warn(message, GlmmBoundaryWarning, stacklevel=3)
    return GlmmFit(
        names=d.names,
        beta=glm.beta.copy(),
        vcov=V,
        se=se,
        sd=0.0,
        log_sd_se=float("nan"),
        sd_ci_low=0.0,
        sd_ci_high=upper,
        loglik=glm.loglik,
        loglik_saturated=d.ll_saturated,
        n_obs=d.n_obs,
        n_groups=d.n_groups,
        n_quad=obj.z.size,
        converged=glm.converged,
        n_iter=n_iter,
        grad_norm=float(np.max(np.abs(gr))),
        message=message,
        group_labels=d.labels,
        modes=np.zeros(d.n_groups),
        mode_se=np.zeros(d.n_groups),
        level=level,
        sd_ci_method="profile" if profile_ci else "none",
        boundary=True,
    )


# ------------------------------------------------------------- variational Bayes


