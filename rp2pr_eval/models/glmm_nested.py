"""Logistic GLMM with nested random intercepts (e.g. pair / trust / trust × period): Laplace and nested AGHQ.

Model, for row ``i`` with groups ``g_1(i) ⊃ g_2(i) ⊃ ... ⊃ g_m(i)`` (outermost first)::

    y_i | u ~ Binomial(n_i, p_i),  logit p_i = x_i' beta + u_1[g_1(i)] + ... + u_m[g_m(i)],
    u_l[j] ~ N(0, sigma_l^2) independently.

``method="laplace"`` maximises the Laplace approximation of the marginal likelihood, the
quantity lme4's ``glmer(..., nAGQ = 1)`` maximises; ``method="aghq"`` maximises a nested
adaptive Gauss–Hermite approximation with ``n_quad[l]`` nodes at level ``l``, integrated
level by level (lme4 cannot do this for more than one term; Stata's ``melogit`` can).
The tree algebra and both likelihoods are in :mod:`rp2pr_eval.models.glmm_tree`.

Written here because no Python package fits this model by maximum likelihood (statsmodels'
``BinomialBayesMixedGLM`` is variational Bayes); see that module for the algorithm.

Length: a little over 600 lines because the fit (optimiser, boundary refits, AGHQ iterations),
its frozen result and the cluster-robust covariance built from the fit's pair scores belong
together; the likelihood algebra is already apart in :mod:`~rp2pr_eval.models.glmm_tree`.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import linalg, optimize

from rp2pr_eval.errors import DataError
from rp2pr_eval.models.glmm import GlmmBoundaryWarning, GlmmConvergenceWarning
from rp2pr_eval.models.glmm_data import GlmmData, factorize_labels, gram_blocked, group_values, mv, prepare_data
from rp2pr_eval.models.glmm_likelihood import SD_MAX, SD_MIN, check_separation, glm_start
from rp2pr_eval.models.glmm_optim import step_halving
from rp2pr_eval.models.glmm_tree import (
    Adaptation,
    LaplaceObjective,
    NestedAghqObjective,
    build_tree,
    inverse_diagonals,
    schur_information,
)

__all__ = ["NestedGlmmFit", "cluster_robust_vcov", "fit_glmm_nested"]

BOUNDARY_SD = 1e-3  # an SD below this at the optimum is a boundary (singular) fit: refitted at 0
NEAR_ZERO_SD = 0.05  # an SD below this when Newton's method fails to converge: also refitted at 0


@dataclass(frozen=True, slots=True)
class NestedGlmmFit:
    """Maximum-likelihood fit of a logistic GLMM with nested random intercepts.

    Attributes
    ----------
    names : tuple of str
        Fixed-effect names.
    beta, se : ndarray
        Fixed effects (log odds) and their standard errors (inverse observed information).
    vcov : ndarray, shape (k + m, k + m)
        Inverse observed information of (beta, log sd of each term); rows and columns of
        terms at the boundary are NaN (their SD is fixed at 0 in the final fit).
    terms : tuple of str
        Random-effect terms, outermost first.
    sd : dict
        ``{term: sigma}``; 0 for a term at the boundary.
    log_sd_se : dict
        ``{term: SE of log sigma}`` (NaN at the boundary).
    loglik : float
        Approximate marginal log-likelihood (Laplace: equals R's ``logLik()`` for ``nAGQ = 1``).
    method : str
        ``"laplace"`` or ``"aghq"``.
    n_quad : tuple of int
        Quadrature nodes per term (all 1 for Laplace).
    n_obs : int
    n_groups : dict
        ``{term: number of groups}``.
    converged : bool
    n_iter : int
    grad_norm : float
        Largest absolute gradient component at the estimate (free parameters).
    message : str
    singular : bool
        True when at least one SD is estimated at 0 (lme4: ``isSingular()``).
    boundary_terms : tuple of str
        Terms whose SD is 0.
    modes : dict
        ``{term: DataFrame(group, mode, sd)}``: conditional modes of the random intercepts and
        their conditional SDs (square roots of the diagonal of the inverse Hessian of the
        penalised log-likelihood, lme4's ``condVar``).
    cluster_scores : ndarray or None
        Laplace only: the gradient of the log-likelihood split into the contributions of the groups
        of the outermost term (e.g. pairs; the likelihood factorises over them), rows = groups (in
        the order of ``modes[terms[0]]``), columns = (beta, free log sds); they sum to the gradient.
    cluster_hessians : ndarray or None
        Laplace only: each group's contribution to the Hessian over the same parameters (forward
        differences of its scores), shape (groups, p, p); they sum to the Hessian.
    """

    names: tuple[str, ...]
    beta: np.ndarray
    se: np.ndarray
    vcov: np.ndarray
    terms: tuple[str, ...]
    sd: dict
    log_sd_se: dict
    loglik: float
    method: str
    n_quad: tuple[int, ...]
    n_obs: int
    n_groups: dict
    converged: bool
    n_iter: int
    grad_norm: float
    message: str
    singular: bool
    boundary_terms: tuple[str, ...]
    modes: dict = field(repr=False)
    cluster_scores: np.ndarray | None = field(default=None, repr=False)
    cluster_hessians: np.ndarray | None = field(default=None, repr=False)

    @property
    def coefficients(self) -> dict[str, tuple[float, float]]:
        """``{name: (estimate, se)}`` for the fixed effects."""
        return {n: (float(b), float(s)) for n, b, s in zip(self.names, self.beta, self.se)}


def _hessian(grad, theta: np.ndarray, T: np.ndarray, h: float = 1e-4, g0: np.ndarray | None = None) -> np.ndarray:
    """Hessian in u = T^-1 theta by differences of the analytic gradient along the columns of T.

    Central differences, or forward differences from ``g0`` (the gradient at ``theta``) when it is
    given: half the gradient evaluations, with an error of order ``h`` (steps of 1e-4 standard
    errors: relative errors of about 1e-5 in the standard errors, checked against central
    differences in the tests).
    """
    p = len(theta)
    H = np.empty((p, p))
    for j in range(p):
        gp = grad(theta + h * T[:, j])
        if g0 is None:
            H[:, j] = T.T @ (gp - grad(theta - h * T[:, j])) / (2 * h)
        else:
            H[:, j] = T.T @ (gp - g0) / h
    return 0.5 * (H + H.T)


def _preconditioner(d: GlmmData, tree, beta0: np.ndarray, sd0: np.ndarray) -> np.ndarray:
    """T with theta = T u so that the Hessian in u is close to -I at the start.

    beta block: inverse Cholesky factor of the information for beta with the random effects
    profiled out (X'WX - (Z'WX)' H^-1 Z'WX at the conditional modes, PIRLS); log-sigma block:
    1 / sqrt(2 sum_j (sigma^2 / (sigma^2 + 1 / D_j))^2), the normal-theory information.
    """
    k, m = d.X.shape[1], tree.depth
    s = 1.0 / sd0**2
    lap = LaplaceObjective(d, tree)
    e = mv(d.X, beta0)
    _, _, fac, w, _ = lap.modes(e, s)
    info = schur_information(tree, d, fac, w, gram_blocked(d.X, w))
    T = np.zeros((k + m, k + m))
    try:
        Lc = linalg.cholesky(info, lower=True)
        T[:k, :k] = linalg.solve_triangular(Lc, np.eye(k), lower=True, trans="T")
    except linalg.LinAlgError:
        T[:k, :k] = np.diag(1.0 / np.sqrt(np.maximum(np.diag(info), 1e-8)))
    for lv in range(m):
        ratio = sd0[lv] ** 2 / (sd0[lv] ** 2 + 1.0 / fac.D[lv])
        T[k + lv, k + lv] = 1.0 / math.sqrt(max(2.0 * float(np.sum(ratio**2)), 1.0))
    return T


def _laplace(d, tree, theta0, T, tol, max_iter):
    """Maximise the Laplace likelihood: L-BFGS-B in preconditioned coordinates, then Newton polishing."""
    k, m = d.X.shape[1], tree.depth
    obj = LaplaceObjective(d, tree)
    Tinv = linalg.inv(T)
    scale = 1.0 + abs(obj(theta0, grad=False))
    cache: dict = {}

    def evaluate(theta):
        if "theta" in cache and np.array_equal(cache["theta"], theta):
            return cache["ll"], cache["gr"]
        ll, gr = obj(theta)
        cache.update(theta=theta.copy(), ll=ll, gr=gr)
        return ll, gr

    # L-BFGS-B over (u, sigma) with beta = T_b u: the SDs themselves (not their logs), so that an SD
    # whose likelihood is largest at 0 reaches its bound in a few steps (l is even in sigma, about
    # quadratic near 0), as lme4 optimises theta >= 0
    Tb = T[:k, :k]
    c = np.exp(theta0[k:]) * np.diag(T)[k:]  # sigma = c v: unit curvature in v at the start

    def theta_of(v):
        return np.concatenate([Tb @ v[:k], np.log(c * v[k:])])

    def fun(v):
        ll, gr = evaluate(theta_of(v))
        return -ll / scale, -np.concatenate([Tb.T @ gr[:k], gr[k:] / v[k:]]) / scale

    bounds = [(None, None)] * k + [(SD_MIN / cl, SD_MAX / cl) for cl in c]
    v0 = np.concatenate([linalg.solve(Tb, theta0[:k]), np.exp(theta0[k:]) / c])
    with np.errstate(over="ignore", under="ignore"):
        res = optimize.minimize(fun, v0, jac=True, method="L-BFGS-B", bounds=bounds,
                                options={"maxiter": int(max_iter), "ftol": 1e-15, "gtol": 1e-7, "maxcor": 20})
    theta = theta_of(res.x)
    n_iter = int(res.nit)
    ll, gr = evaluate(theta)
    if np.any(theta[k:] < math.log(BOUNDARY_SD)):
        return theta, ll, gr, None, obj, False, "boundary", n_iter
    hi = math.log(SD_MAX)
    u_keep = [v.copy() for v in obj.u]

    def grad_at(th):
        return obj(th, keep=False, u0=u_keep)[1]

    Hu = _hessian(grad_at, theta, T, g0=gr)
    converged, message = False, ""
    for it in range(51):
        if it == 50:
            message = "50 Newton steps without meeting the convergence criterion"
            break
        gu = T.T @ gr
        try:
            cho = linalg.cho_factor(-Hu)
        except linalg.LinAlgError:
            message = "the observed information is not positive definite at the final estimate"
            break
        step = linalg.cho_solve(cho, gu)
        dec = float(gu @ step)
        if dec <= tol:
            converged = True
            break
        direction = T @ step

        def candidate(t):
            th_new = theta + t * direction
            th_new[k:] = np.minimum(th_new[k:], hi)
            return th_new

        found = step_halving(candidate, lambda th: obj(th, grad=False, keep=False, u0=u_keep) >= ll - 1e-12 * scale, 40)
        if found is None:
            message = "the line search failed to increase the log-likelihood"
            break
        t, theta = found
        ll, gr = evaluate(theta)
        u_keep = [v.copy() for v in obj.u]
        n_iter += 1
        if t * math.sqrt(dec) > 0.1:
            Hu = _hessian(grad_at, theta, T, g0=gr)
    if np.any(theta[k:] >= hi - 1e-3):
        converged = False
        message = f"a random-intercept SD reached the upper limit {SD_MAX:g}: the likelihood keeps increasing"
    H = Tinv.T @ Hu @ Tinv
    return theta, ll, gr, H, obj, converged, message, n_iter


def _aghq(d, tree, lap: LaplaceObjective, theta, H_lap, n_quad, tol, max_iter):
    """Maximise the nested AGHQ likelihood, re-adapting the nodes at every iterate (chord Newton steps)."""
    k = d.X.shape[1]
    aq = NestedAghqObjective(d, tree, n_quad)

    def adapt(th):
        s = np.exp(-2.0 * th[k:])
        u, _, fac, _, _ = lap.modes(mv(d.X, th[:k]), s)
        lap.u = u
        return Adaptation(u=u, fac=fac)

    try:
        cho = linalg.cho_factor(-H_lap)
    except linalg.LinAlgError:
        return theta, float("nan"), np.full(len(theta), np.nan), None, False, "Laplace information not positive definite", 0
    ad = adapt(theta)
    ll, gr = aq(theta, ad)
    converged, message, n_iter = False, "", 0
    for n_iter in range(1, max_iter + 1):
        step = linalg.cho_solve(cho, gr)
        dec = float(gr @ step)
        if dec <= tol:
            converged = True
            break

        def candidate(t):
            th_new = theta + t * step
            ad_new = adapt(th_new)
            return th_new, ad_new, aq(th_new, ad_new, grad=False)

        found = step_halving(candidate, lambda trial: trial[2] >= ll - 1e-10 * (1 + abs(ll)), 30)
        if found is None:
            message = "the line search failed to increase the log-likelihood"
            break
        theta, ad, _ = found[1]
        ll, gr = aq(theta, ad)
    else:
        message = f"max_iter={max_iter} iterations reached"
    p = len(theta)
    T = np.eye(p)
    h = 1e-4
    try:
        sd_scale = np.sqrt(np.diag(linalg.cho_solve(cho, np.eye(p))))
        T = np.diag(sd_scale)
    except (linalg.LinAlgError, ValueError):
        pass
    Hu = _hessian(lambda th: aq(th, ad)[1], theta, T, h=h, g0=gr)
    Tinv = np.diag(1.0 / np.diag(T))
    H = Tinv.T @ Hu @ Tinv
    return theta, ll, gr, H, converged, message, n_iter


def _regroup(d: GlmmData, tree, codes, active, m_all) -> GlmmData:
    """The prepared rows of the full tree regrouped by the deepest active term (rows sorted by it)."""
    if active[-1] == m_all - 1:
        return d
    # deepest active code of each full leaf: every row of a full leaf shares it (nesting)
    leaf_full = d.gidx
    full_codes = codes[-1]
    order_rows = np.argsort(full_codes, kind="stable")
    rep = order_rows[np.searchsorted(full_codes[order_rows], np.arange(int(full_codes.max()) + 1))]
    new_of_full = codes[active[-1]][rep]
    g = new_of_full[leaf_full]
    order = np.argsort(g, kind="stable")
    g = g[order]
    m = len(g)
    S = sp.csr_matrix((np.ones(m), (g, np.arange(m))), shape=(tree.n_nodes[-1], m))
    return dataclasses.replace(d, X=np.ascontiguousarray(d.X[order]), succ=d.succ[order], trials=d.trials[order],
                               gidx=g, S=S, n_groups=tree.n_nodes[-1], labels=tree.labels[-1])


def _as_levels(groups, n: int, terms):
    if isinstance(groups, pd.DataFrame):
        cols = [groups[c] for c in groups.columns]
        terms = list(groups.columns) if terms is None else list(terms)
    else:
        if isinstance(groups, (str, bytes)) or not isinstance(groups, (list, tuple)):
            raise DataError("groups must be a list of label arrays (one per term, outermost first) or a DataFrame")
        cols = list(groups)
        terms = [f"g{j}" for j in range(len(cols))] if terms is None else list(terms)
    if not cols:
        raise DataError("groups is empty: give at least one random-intercept term")
    if len(terms) != len(cols):
        raise DataError(f"terms has {len(terms)} names but groups has {len(cols)} terms")
    if len(set(terms)) != len(terms):
        raise DataError(f"term names must be unique; got {terms}")
    return [group_values(c, n) for c in cols], [str(t) for t in terms]


def fit_glmm_nested(
    X,
    y,
    groups,
    *,
    terms=None,
    trials=None,
    method: str = "laplace",
    n_quad=5,
    names=None,
    tol: float = 1e-8,
    max_iter: int = 500,
) -> NestedGlmmFit:
    r"""Fit a logistic GLMM with nested random intercepts by maximum likelihood.

    Model: :math:`\operatorname{logit} P(y_i = 1 \mid u) = x_i'\beta + \sum_{l=1}^m u_{l, g_l(i)}`,
    :math:`u_{l,j} \sim N(0, \sigma_l^2)`, the groups of term :math:`l + 1` nested in those of term
    :math:`l` (each inside exactly one).

    Likelihood. ``method="laplace"``: the Laplace approximation
    :math:`\ell = \log p(y \mid \hat u) - \tfrac12 \sum_{l,j} \hat u_{l,j}^2 / \sigma_l^2
    - \sum_l q_l \log \sigma_l - \tfrac12 \log\det H`, :math:`H = Z'WZ + \Lambda^{-1}` at the joint
    conditional mode :math:`\hat u` (found by Newton's method), as lme4's ``nAGQ = 1``; ``log det H``
    and all solves use the tree factorisation of :mod:`~rp2pr_eval.models.glmm_tree` (no fill-in for
    nested terms). ``method="aghq"``: nested adaptive Gauss–Hermite quadrature, ``n_quad`` nodes per
    term (an int for all, or one per term), each node's integral centred at its conditional mode given
    its ancestors and scaled by its conditional SD (from the same factorisation), evaluated level by
    level (Rabe-Hesketh, Skrondal & Pickles 2005); with one node per term it equals the Laplace value.

    Maximisation. Laplace: L-BFGS-B over :math:`(\beta, \log\sigma)` with the exact analytic gradient
    (including :math:`d\hat u/d\theta` and :math:`d \log\det H / d\theta`), then Newton steps on the
    observed information. AGHQ: from the Laplace fit, chord-Newton steps with the gradient of the
    quadrature sum at nodes adapted at each iterate (Rabe-Hesketh et al. 2005), until the Newton
    decrement is below ``tol``.

    Standard errors: inverse of minus the Hessian of the approximate log-likelihood over
    :math:`(\beta, \log\sigma)`, by central differences of the analytic gradient (lme4 uses a
    finite-difference Hessian of its deviance the same way).

    Boundary (singular) fits: a term whose SD goes below 1e-3 is fixed at SD 0 and the model refitted
    without it (repeatedly); ``singular`` is True, ``boundary_terms`` names the terms, and a
    :class:`~rp2pr_eval.models.glmm.GlmmBoundaryWarning` says so, as lme4's "boundary (singular) fit"
    message does. The standard errors are then those of the reduced model.

    Parameters
    ----------
    X : array-like or DataFrame, shape (n, k)
        Fixed-effects design including the intercept.
    y : array-like
        0/1 outcomes, or successes out of ``trials``.
    groups : list of array-like, or DataFrame
        One label array per random-intercept term, outermost first (e.g. pair, trust, trust × period).
    terms : list of str, optional
        Term names (default: DataFrame columns or ``g0, g1, ...``).
    trials : array-like, optional
        Binomial trials per row.
    method : {"laplace", "aghq"}
    n_quad : int or sequence of int
        AGHQ nodes per term (ignored for Laplace); default 5 per term.
    names : sequence of str, optional
        Fixed-effect names.
    tol : float
        Convergence when the Newton decrement is at most ``tol``.
    max_iter : int
        Iteration limit.

    Returns
    -------
    NestedGlmmFit

    Raises
    ------
    DataError
        Bad data (see :func:`rp2pr_eval.models.glmm.fit_glmm_logit`), a term with fewer than two groups,
        or terms that are not nested.

    Notes
    -----
    R equivalent (Laplace)::

        lme4::glmer(y ~ x1 + ... + (1 | pair) + (1 | trust) + (1 | trust:period), family = binomial,
                    nAGQ = 1)

    Stata equivalent (AGHQ): ``melogit y x1 ... || pair: || trust: || trustperiod:, intpoints(5)``.

    References
    ----------
    Bates, D., Mächler, M., Bolker, B. and Walker, S. (2015). Fitting linear mixed-effects models using
    lme4. J. Stat. Softw. 67(1). Rabe-Hesketh, S., Skrondal, A. and Pickles, A. (2005). Maximum
    likelihood estimation of limited and discrete dependent variable models with nested random effects.
    J. Econometrics 128, 301–323. Pinheiro, J. C. and Chao, E. C. (2006). Efficient Laplacian and
    adaptive Gaussian quadrature algorithms for multilevel generalized linear mixed models. JCGS 15, 58–81.
    """
    if method not in ("laplace", "aghq"):
        raise ValueError(f"method={method!r} is not valid; expected one of 'laplace', 'aghq'")
    if not (isinstance(tol, (int, float)) and not isinstance(tol, bool) and tol > 0):
        raise ValueError(f"tol={tol!r} is not valid; expected a positive number")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter={max_iter!r} is not valid; expected a positive integer")
    n = len(X)
    levels, terms = _as_levels(groups, n, terms)
    m_all = len(levels)
    nq = (n_quad,) * m_all if isinstance(n_quad, (int, np.integer)) and not isinstance(n_quad, bool) else tuple(n_quad)
    if len(nq) != m_all or not all(isinstance(q, (int, np.integer)) and not isinstance(q, bool) and 1 <= q <= 30
                                   for q in nq):
        raise ValueError(f"n_quad={n_quad!r} is not valid; expected an integer from 1 to 30, or one per term "
                         f"({m_all} terms)")
    codes, labels = [], []
    for term, vals in zip(terms, levels):
        c, lab = factorize_labels(vals)
        if (c < 0).any():
            raise DataError(f"term {term!r} has {int((c < 0).sum())} missing group labels")
        if len(lab) < 2:
            raise DataError(f"term {term!r} has {len(lab)} group(s); a random intercept needs at least 2")
        codes.append(c)
        labels.append(lab)
    tree, leaf = build_tree(codes, labels, terms)  # checks nesting of all terms
    d_full = prepare_data(X, y, leaf, trials, names)
    glm = glm_start(d_full, cross=gram_blocked)
    check_separation(d_full, glm)
    k = d_full.X.shape[1]
    active = list(range(m_all))
    boundary: list[str] = []
    while True:
        tree, leaf = build_tree([codes[i] for i in active], [labels[i] for i in active], [terms[i] for i in active])
        d = _regroup(d_full, tree, codes, active, m_all)
        if not boundary:
            theta0 = np.concatenate([glm.beta, np.full(len(active), math.log(0.3))])
        else:  # warm start from the fit that found the boundary
            theta0 = np.concatenate([theta[:k], theta[k:][[j for j in range(len(keep)) if keep[j]]]])
        T = _preconditioner(d, tree, theta0[:k], np.exp(theta0[k:]))
        theta, ll, gr, H, lap, converged, message, n_iter = _laplace(d, tree, theta0, T, tol, max_iter)
        low = [j for j, lv in enumerate(active) if theta[k + j] < math.log(BOUNDARY_SD)]
        if not low and H is not None and not converged:
            # the likelihood is flat in a small SD (even in sigma, so ~ quadratic at 0): L-BFGS stops short
            # of the boundary, and the information in log sigma is not positive there or Newton's
            # method crawls towards 0: the SD is 0
            near = [j for j in range(len(active)) if theta[k + j] < math.log(NEAR_ZERO_SD)]
            if near:
                low = [min(near, key=lambda j: theta[k + j])]
        if not low:
            break
        boundary.extend(terms[active[j]] for j in low)
        keep = [j not in low for j in range(len(active))]
        active = [lv for j, lv in enumerate(active) if j not in low]
        if not active:
            return _glm_fit(d, glm, terms, labels, boundary, method, nq, n_iter)
    scores = None
    if method == "aghq":
        nq_active = tuple(nq[i] for i in active)
        theta, ll, gr, H, converged, message, it2 = _aghq(d, tree, lap, theta, H, nq_active, tol, max_iter)
        n_iter += it2
    else:
        T_se = np.diag(np.sqrt(np.maximum(np.diag(linalg.pinv(-H)), 1e-12))) if H is not None else np.eye(len(theta))
        scores = _cluster_scores(lap, theta, T_se, codes[active[0]], codes[0], len(labels[0]))
    return _result(d, tree, lap, theta, ll, gr, H, terms, active, boundary, labels, method, nq, converged,
                   message, n_iter, scores, tol)


def cluster_robust_vcov(fit: NestedGlmmFit, kind: str = "CR3") -> np.ndarray:
    r"""Cluster-robust covariance of a Laplace fit, by the groups of its outermost term (e.g. pairs).

    With :math:`U_g` and :math:`A_g = -\partial U_g / \partial\theta'` group :math:`g`'s score and
    information contributions (``fit.cluster_scores``, ``fit.cluster_hessians``; parameters beta and
    the free log SDs) and :math:`A = \sum_g A_g`:

    * ``"CR1"``: :math:`A^{-1} \{G/(G-1) \sum_g U_g U_g'\} A^{-1}` (sandwich);
    * ``"CR3"``: :math:`\frac{G-1}{G}\sum_g (A - A_g)^{-1} U_g U_g' (A - A_g)^{-1}`, the jackknife of the
      one-step leave-one-group-out estimates :math:`\hat\theta_{(-g)} = \hat\theta + (A - A_g)^{-1} U_g`
      (which drop the group's score; the M-estimator analogue of CR3, Bell & McCaffrey 2002;
      Mancl & DeRouen 2001 for GEE).

    Returns the (k + m) x (k + m) matrix laid out as ``fit.vcov`` (NaN for boundary terms).
    """
    if kind not in ("CR1", "CR3"):
        raise ValueError(f"kind={kind!r} is not valid; expected one of 'CR1', 'CR3'")
    if fit.cluster_scores is None or fit.cluster_hessians is None:
        raise ValueError("cluster-robust covariance needs a Laplace fit with at least one random term "
                         f"(method={fit.method!r})")
    U, Hg = fit.cluster_scores, fit.cluster_hessians
    G, p = U.shape
    A_g = -Hg
    A = A_g.sum(axis=0)
    if kind == "CR1":
        Ai = linalg.inv(A)
        V = Ai @ (G / (G - 1) * (U.T @ U)) @ Ai
    else:
        V = np.zeros((p, p))
        for g in range(G):
            step = linalg.solve(A - A_g[g], U[g])
            V += np.outer(step, step)
        V *= (G - 1) / G
    k = len(fit.names)
    free = list(range(k)) + [k + j for j, t in enumerate(fit.terms) if t not in fit.boundary_terms]
    out = np.full((k + len(fit.terms),) * 2, np.nan)
    out[np.ix_(free, free)] = 0.5 * (V + V.T)
    return out


def _cluster_scores(lap: LaplaceObjective, theta, T, top_codes, outer_codes, n_outer, h: float = 1e-4):
    """Scores and Hessian contributions per group of the outermost term (sums over its top-level nodes).

    The Laplace likelihood factorises over the top-level groups of the fitted tree; when the outermost
    term is at the boundary those are its subgroups, summed here to the outermost term's groups.
    """
    outer_of_top = np.zeros(int(top_codes.max()) + 1, dtype=np.int64)
    outer_of_top[top_codes] = outer_codes
    agg = sp.csr_matrix((np.ones(len(outer_of_top)), (outer_of_top, np.arange(len(outer_of_top)))),
                        shape=(n_outer, len(outer_of_top)))
    U = np.asarray(agg @ lap.top_scores(theta))
    p = len(theta)
    Tinv = linalg.inv(T)
    dU = np.empty((n_outer, p, p))  # d U_g / d u_j, then to theta coordinates
    for j in range(p):
        dU[:, :, j] = (np.asarray(agg @ lap.top_scores(theta + h * T[:, j])) - U) / h
    Hg = np.einsum("gij,jk->gik", dU, Tinv)
    return U, 0.5 * (Hg + Hg.transpose(0, 2, 1))


def _result(d, tree, lap, theta, ll, gr, H, terms, active, boundary, labels, method, nq, converged, message,
            n_iter, scores, tol):
    k, m_all = d.X.shape[1], len(terms)
    p = len(theta)
    try:
        Vf = linalg.inv(-H)
        Vf = 0.5 * (Vf + Vf.T)
        if not np.all(np.diag(Vf) > 0):
            raise linalg.LinAlgError
    except (linalg.LinAlgError, ValueError, TypeError):
        Vf = np.full((p, p), np.nan)
        converged = False
        message = message or "the observed information is singular"
    pos = list(range(k)) + [k + i for i in active]
    V = np.full((k + m_all, k + m_all), np.nan)
    V[np.ix_(pos, pos)] = Vf
    sd = {t: 0.0 for t in terms}
    log_sd_se = {t: float("nan") for t in terms}
    for j, lv in enumerate(active):
        sd[terms[lv]] = float(math.exp(theta[k + j]))
        log_sd_se[terms[lv]] = float(math.sqrt(Vf[k + j, k + j])) if np.isfinite(Vf[k + j, k + j]) else float("nan")
    s = np.exp(-2.0 * theta[k:])
    u, _, fac, _, _ = lap.modes(mv(d.X, theta[:k]), s)
    hinv, _ = inverse_diagonals(tree, fac)
    modes = {}
    for lv, t in enumerate(terms):
        if lv in active:
            j = active.index(lv)
            modes[t] = pd.DataFrame({"group": tree.labels[j], "mode": u[j], "sd": np.sqrt(hinv[j])})
        else:
            modes[t] = pd.DataFrame({"group": labels[lv], "mode": 0.0, "sd": 0.0})
    if converged:
        message = f"converged ({method}): Newton decrement <= {tol:g} after {n_iter} iterations"
    else:
        warnings.warn(f"fit_glmm_nested did not converge ({message}); largest gradient component "
                      f"{float(np.max(np.abs(gr))):.3g}", GlmmConvergenceWarning, stacklevel=3)
    if boundary:
        note = (f"boundary (singular) fit: the SD of {boundary} is estimated as 0; those terms are fixed at 0 "
                "and the model refitted without them (lme4: isSingular() is TRUE)")
        message = f"{message}; {note}"
        warnings.warn(note, GlmmBoundaryWarning, stacklevel=3)
    return NestedGlmmFit(
        names=d.names, beta=theta[:k].copy(), se=np.sqrt(np.diag(V)[:k]), vcov=V, terms=tuple(terms), sd=sd,
        log_sd_se=log_sd_se, loglik=float(ll), method=method,
        n_quad=tuple(int(q) for q in nq) if method == "aghq" else (1,) * m_all, n_obs=d.n_obs,
        n_groups={t: len(labels[lv]) for lv, t in enumerate(terms)}, converged=bool(converged), n_iter=int(n_iter),
        grad_norm=float(np.max(np.abs(gr))), message=message, singular=bool(boundary),
        boundary_terms=tuple(boundary), modes=modes,
        cluster_scores=None if scores is None else scores[0],
        cluster_hessians=None if scores is None else scores[1],
    )


def _glm_fit(d, glm, terms, labels, boundary, method, nq, n_iter) -> NestedGlmmFit:
    """Every SD at 0: the ordinary logistic regression."""
    k, m_all = d.X.shape[1], len(terms)
    V = np.full((k + m_all, k + m_all), np.nan)
    V[:k, :k] = linalg.inv(glm.info)
    note = (f"boundary (singular) fit: every random-intercept SD ({list(terms)}) is estimated as 0; "
            "the fit is the ordinary logistic regression")
    warnings.warn(note, GlmmBoundaryWarning, stacklevel=3)
    return NestedGlmmFit(
        names=d.names, beta=glm.beta.copy(), se=np.sqrt(np.diag(V)[:k]), vcov=V, terms=tuple(terms),
        sd={t: 0.0 for t in terms}, log_sd_se={t: float("nan") for t in terms}, loglik=float(glm.loglik),
        method=method, n_quad=tuple(int(q) for q in nq) if method == "aghq" else (1,) * m_all, n_obs=d.n_obs,
        n_groups={t: len(labels[lv]) for lv, t in enumerate(terms)}, converged=bool(glm.converged),
        n_iter=int(n_iter), grad_norm=float("nan"), message=note, singular=True, boundary_terms=tuple(terms),
        modes={t: pd.DataFrame({"group": labels[lv], "mode": 0.0, "sd": 0.0}) for lv, t in enumerate(terms)},
        cluster_scores=None, cluster_hessians=None,
    )
