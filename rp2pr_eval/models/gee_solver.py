"""The logistic GEE solver: Fisher scoring on cluster sums, the exchangeable rho, and both sandwiches.

The algorithm and its conventions are described in :mod:`rp2pr_eval.models.gee` (the public
:func:`~rp2pr_eval.models.gee.fit_gee_logit`, its checks and result); this module holds the
iteration (:func:`fit_with_rho`), the per-cluster moments and :func:`sandwiches`.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg, sparse, special
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from rp2pr_eval.errors import DataError

__all__ = ["ClusterLayout", "ClusterMoments", "GeeConvergenceWarning", "InfoSolver", "RhoRunaway", "check_separation", "cluster_summaries",
           "fit_gee_beta", "fit_with_rho", "halved_step", "logit_start", "one_step_rho", "sandwich_set", "sandwiches",
           "scoring_step"]

#: Fitted probabilities closer than this to 0 or 1 signal (quasi-)separation.
_SEPARATION_EPS = 1e-10


class GeeConvergenceWarning(ConvergenceWarning):
    """The GEE iteration stopped before convergence, or the MD correction is undefined."""


class ClusterLayout:
    """Rows sorted by cluster: cluster ``g`` occupies ``bounds[g]:bounds[g+1]``."""

    __slots__ = ("X", "y", "sizes", "bounds", "codes", "n_obs", "n_pairs", "_cols")

    def __init__(self, X, y, sizes):
        self.X, self.y, self.sizes = X, y, sizes.astype(float)
        self.bounds = np.concatenate(([0], np.cumsum(sizes)))
        self.codes = np.repeat(np.arange(len(sizes)), sizes)
        self.n_obs = len(y)
        self.n_pairs = float(np.sum(self.sizes * (self.sizes - 1.0))) / 2.0
        self._cols = np.arange(self.n_obs)

    def cluster_sums(self, v):
        return np.bincount(self.codes, weights=v, minlength=len(self.sizes))

    def weighted_cluster_sums(self, w):
        """``(G, p)`` matrix of ``sum_j w_ij x_ij`` (a sparse ``G x N`` product, ``O(N p)``)."""
        W = sparse.csr_matrix((w, self._cols, self.bounds), shape=(len(self.sizes), self.n_obs))
        return np.asarray(W @ self.X)


def _matvec(X, b):
    # einsum rather than X @ b (and for long dot products): multithreaded
    # OpenBLAS gemv/ddot cost 5-30x the CPU time of numpy's single-threaded
    # loops at N ~ 1e5, more on a loaded machine. Matrix products (X~'X~)
    # still go to BLAS.
    return np.einsum("ij,j->i", X, b)


def _rmatvec(X, r):
    return np.einsum("ij,i->j", X, r)


class ClusterMoments:
    """Per-cluster quantities at one ``beta``.

    ``t`` (G x p) and ``E``, ``e2`` (G) are cluster sums of ``X~ = A^{1/2} X``,
    of the Pearson residuals ``e`` and of ``e^2``; ``xte = X~' e = X'(y - mu)``.
    Everything the estimating function, the Fisher information and the moment
    estimators need is a cluster sum, so no ``n_i x n_i`` matrix is formed.
    The moments cost ``O(N p)``; :meth:`info` adds ``X~' X~`` (``O(N p^2)``),
    needed only once a step is accepted.
    """

    __slots__ = ("lay", "mu", "sa", "t", "E", "e2", "xte", "_gram")

    def __init__(self, lay, beta):
        mu = special.expit(_matvec(lay.X, beta))
        sa = np.sqrt(mu * (1.0 - mu))
        r = lay.y - mu
        with np.errstate(divide="ignore", invalid="ignore"):
            e = r / sa
        self.lay, self.mu, self.sa = lay, mu, sa
        self.t = lay.weighted_cluster_sums(sa)
        self.E = lay.cluster_sums(e)
        self.e2 = lay.cluster_sums(e * e)
        self.xte = _rmatvec(lay.X, r)
        self._gram = None

    def finite(self) -> bool:
        return bool(np.isfinite(self.xte).all() and np.isfinite(self.e2).all())

    def rho(self) -> float:
        """geepack's moment estimator: phi = sum e^2 / N, rho = sum_{j<k} e_j e_k / (phi * #pairs)."""
        if self.lay.n_pairs == 0.0:
            return np.nan
        phi = float(self.e2.sum()) / self.lay.n_obs
        cross = float(np.sum(self.E * self.E - self.e2)) / 2.0
        return cross / (phi * self.lay.n_pairs)

    def _c(self, rho):
        return rho / (1.0 + (self.lay.sizes - 1.0) * rho)

    def score(self, rho) -> np.ndarray:
        """Estimating function sum_i D_i' V_i^{-1} (y_i - mu_i) (Sherman–Morrison)."""
        if rho == 0.0:
            return self.xte.copy()
        return (self.xte - self.t.T @ (self._c(rho) * self.E)) / (1.0 - rho)

    def info(self, rho) -> np.ndarray:
        """Fisher information sum_i D_i' V_i^{-1} D_i."""
        if self._gram is None:
            xt = self.lay.X * self.sa[:, None]
            self._gram = xt.T @ xt
        if rho == 0.0:
            return self._gram.copy()
        return (self._gram - (self.t * self._c(rho)[:, None]).T @ self.t) / (1.0 - rho)


class InfoSolver:
    """Cholesky of a (Jacobi-equilibrated) information matrix; ``solve`` and the decrement norm."""

    __slots__ = ("d", "cf")

    def __init__(self, info):
        d = np.diag(info)
        if not np.all(np.isfinite(info)) or np.any(d <= 0.0):
            raise linalg.LinAlgError("information matrix not positive definite")
        self.d = 1.0 / np.sqrt(d)
        self.cf = linalg.cho_factor(info * self.d[:, None] * self.d[None, :])

    def solve(self, u):
        return self.d * linalg.cho_solve(self.cf, self.d * u)

    def norm2(self, u) -> float:
        """``u' I^{-1} u``: the squared Newton decrement of a score ``u``."""
        return float(u @ self.solve(u))


#: Step-halving: at most this many halvings of a Fisher-scoring step.
_MAX_HALVINGS = 30


def scoring_step(mom, corr, singular_message: str):
    """One Fisher-scoring direction at the moments ``mom`` and the working correlation ``corr``.

    ``mom`` is a :class:`ClusterMoments` (``corr`` = rho) or a
    :class:`~rp2pr_eval.models.gee_block.BlockMoments` (``corr`` = (α0, α1)). Returns
    ``(solver, step, norm2)``: the :class:`InfoSolver` of the information, the step ``I^{-1}U`` and the
    squared decrement ``U' I^{-1} U``. A singular information raises DataError with ``singular_message``.
    """
    u = mom.score(corr)
    try:
        solver = InfoSolver(mom.info(corr))
    except (linalg.LinAlgError, ValueError) as exc:
        raise DataError(singular_message) from exc
    step = solver.solve(u)
    return solver, step, float(u @ step)


def halved_step(moments_at, beta, step, corr, solver: InfoSolver, norm2: float):
    """Step-halving on the decrement norm: the first ``lam`` in 1, 1/2, … (at most 30 halvings) whose
    moments ``moments_at(beta + lam * step)`` are finite with a smaller decrement norm (in the metric of
    ``solver``, at ``corr``) than ``norm2``. Returns ``(lam, moments)``, or ``None`` when no halved step
    reduces the norm (the iterate is at the floating-point floor, or the direction is useless).
    """
    lam = 1.0
    for _ in range(_MAX_HALVINGS + 1):
        cand = moments_at(beta + lam * step)
        if cand.finite():
            uc = cand.score(corr)
            if np.all(np.isfinite(uc)) and solver.norm2(uc) < norm2:
                return lam, cand
        lam /= 2.0
    return None


def fit_gee_beta(X, y, sizes, cov_struct, max_iter, tol, _trace=None, _fixed_rho=None):
    """Fit beta (and the exchangeable rho) by our own Fisher scoring.

    Rows must be sorted by cluster. Returns ``(beta, rho, converged, n_iter,
    norm, stalled)``, ``norm`` being the last scaled estimating-function norm
    ``sqrt(U' I^{-1} U)`` (see :func:`fit_gee_logit`, Notes) and ``stalled``
    true if the iteration stopped because no halved step reduced it. Raises
    DataError on separation, on an inadmissible rho, and when the alternation
    between beta and rho runs away (no fixed point; see the module docstring).

    Private hooks for tests and diagnostics: ``_fixed_rho`` holds the
    exchangeable rho fixed (no moment update; solves ``U(beta; rho) = 0``),
    ``_trace`` (a list) receives ``(n_iter, rho, norm, beta)`` per iteration.
    """
    lay = ClusterLayout(X, y, sizes)
    n_max = int(sizes.max())
    exchangeable = cov_struct == "exchangeable"

    beta = logit_start(X, y)
    mom = ClusterMoments(lay, beta)
    check_separation(mom.mu)

    n_iter, converged, stalled, norm = 0, False, False, np.inf
    rho_path: list[float] = []
    while True:
        if _fixed_rho is not None:
            rho = float(_fixed_rho)
        else:
            rho = mom.rho() if exchangeable else 0.0
        if exchangeable:
            _check_rho(rho, n_max, rho_path)
            rho_path.append(rho)
        solver, step, norm2 = scoring_step(
            mom, rho,
            "GEE: the information matrix sum_i D_i' V_i^-1 D_i is singular at the current "
            "estimates; the covariates are probably collinear within the fitted "
            "probabilities or the outcome is (quasi-)separated")
        norm = np.sqrt(max(norm2, 0.0))
        if _trace is not None:
            _trace.append((n_iter, rho, norm, beta.copy()))
        converged = norm < tol
        if n_iter >= max_iter:
            break
        if exchangeable and not converged and _fixed_rho is None:
            _check_runaway(rho_path)
        # Step-halving on the decrement norm (in the metric of the current
        # information, at the current rho) of the estimating function. Once
        # converged, the step already computed is still taken (its size is
        # ~tol model-based SEs) and rho refreshed: a free extra iteration.
        halved = halved_step(lambda b: ClusterMoments(lay, b), beta, step, rho, solver, norm2)
        if halved is None:
            stalled = not converged
            break
        lam, mom = halved
        beta = beta + lam * step
        n_iter += 1
        if converged:
            if exchangeable and _fixed_rho is None:
                rho = mom.rho()
                _check_rho(rho, n_max, rho_path)
            break

    check_separation(mom.mu)
    return beta, (rho if exchangeable else 0.0), converged, n_iter, norm, stalled


class RhoRunaway(DataError):
    """The exchangeable alternation has no fixed point (rho keeps growing)."""


def one_step_rho(X, y, sizes) -> float:
    """The moment estimator of rho at the independence (GLM) fit: the first rho of the alternation."""
    beta0 = fit_gee_beta(X, y, sizes, "independence", 100, 1e-10)[0]
    return float(ClusterMoments(ClusterLayout(X, y, sizes), beta0).rho())


def fit_with_rho(X, y, sizes, cov_struct, max_iter, tol, rho):
    """fit_gee_beta with the ``rho`` option of :func:`fit_gee_logit`; returns its tuple plus ``rho_method``."""
    if isinstance(rho, str):
        if rho not in ("iterate", "one-step"):
            raise ValueError(f"rho={rho!r} is not valid; expected 'iterate', 'one-step' or a number")
    elif isinstance(rho, bool) or not isinstance(rho, (int, float, np.floating)) or not np.isfinite(rho):
        raise ValueError(f"rho={rho!r} is not valid; expected 'iterate', 'one-step' or a finite number")
    if cov_struct != "exchangeable":
        return (*fit_gee_beta(X, y, sizes, cov_struct, max_iter, tol), "none")
    if rho == "iterate":
        try:
            return (*fit_gee_beta(X, y, sizes, cov_struct, max_iter, tol), "iterated")
        except RhoRunaway as exc:
            fixed = one_step_rho(X, y, sizes)
            warnings.warn(
                f"{str(exc).split('; use cov_struct')[0]}; rho is held at its one-step estimate {fixed:.4g} "
                "(moment estimator at the independence fit), which keeps beta and the sandwich valid; "
                "pass rho='one-step' to ask for this directly or cov_struct='independence'",
                GeeConvergenceWarning,
                stacklevel=3,
            )
            return (*fit_gee_beta(X, y, sizes, cov_struct, max_iter, tol, _fixed_rho=fixed),
                    "one-step (no joint solution)")
    if rho == "one-step":
        fixed, method = one_step_rho(X, y, sizes), "one-step"
    else:
        fixed, method = float(rho), "fixed"
    _check_rho(fixed, int(sizes.max()), [])
    return (*fit_gee_beta(X, y, sizes, cov_struct, max_iter, tol, _fixed_rho=fixed), method)


def _check_rho(rho, n_max, path):
    if np.isnan(rho):
        raise DataError(
            "the exchangeable correlation rho is undefined: no cluster has two or more rows "
            "(or the residuals are not finite); use cov_struct='independence'"
        )
    if rho <= -1.0 / max(n_max - 1, 1) or rho >= 1.0:
        if rho < 0.0:
            raise DataError(
                f"the estimated exchangeable correlation rho={rho:.6g} is not inside "
                f"(-1/(n_max-1), 1) with n_max={n_max}: the working correlation is "
                "singular or not positive definite (the outcome is negatively "
                "correlated within clusters); use cov_struct='independence'"
            )
        raise DataError(
            f"the estimated exchangeable correlation reached rho={rho:.6g} >= 1 "
            f"(path {_fmt_path(path)}): the exchangeable GEE has no solution here; "
            "use cov_struct='independence'"
        )


#: Run-away test of the beta/rho alternation (see _check_runaway).
_RUNAWAY_WINDOW = 6


_RUNAWAY_FACTOR = 3.0


def _check_runaway(path):
    """Raise DataError when rho is running away: no fixed point is being approached.

    The alternation beta -> rho(beta) -> beta is a fixed-point iteration in
    rho. Near a fixed point its increments shrink geometrically; when the
    profile map rho -> rho_hat(beta(rho)) lies above the diagonal they do not,
    and rho grows until the fit breaks down (statsmodels overflows to NaN).
    We stop when, over the last ``_RUNAWAY_WINDOW`` updates, rho rose every
    time with non-shrinking increments (the last above 1% of rho, so
    rounding noise near a fixed point cannot trigger it) and ended more than
    ``_RUNAWAY_FACTOR`` times its first (independence-residual) value.
    """
    w = _RUNAWAY_WINDOW
    if len(path) < w + 2:
        return
    r = np.asarray(path)
    inc = np.diff(r[-(w + 1):])
    if (
        np.all(inc > 0.0)
        and np.all(inc[1:] >= inc[:-1])
        and inc[-1] > 0.01 * r[-1]
        and r[0] > 0.0
        and r[-1] > _RUNAWAY_FACTOR * r[0]
    ):
        raise RhoRunaway(
            "exchangeable GEE: the working correlation keeps growing with every "
            f"update (rho path {_fmt_path(path)}); the estimating equations for beta and "
            "the moment estimator of rho have no joint solution near the data's "
            "correlation (typical with clusters of thousands of patients, see "
            "docs/methods/gee.md); use cov_struct='independence'"
        )


def _fmt_path(path):
    if len(path) <= 6:
        return ", ".join(f"{r:.4g}" for r in path)
    return ", ".join(f"{r:.4g}" for r in path[:3]) + ", ..., " + ", ".join(f"{r:.4g}" for r in path[-3:])


def check_separation(mu):
    n_extreme = int(np.sum(~((mu >= _SEPARATION_EPS) & (mu <= 1.0 - _SEPARATION_EPS))))
    if n_extreme:
        raise DataError(
            f"GEE: {n_extreme} fitted probabilities are numerically 0 or 1 (or undefined); the "
            "outcome is probably (quasi-)separated by the covariates (e.g. a category or design "
            "cell in which every outcome is 0 or 1), and finite estimates do not exist"
        )


def logit_start(X, y, max_iter=50):
    """Starting values: the independence logistic MLE by Newton–Raphson.

    Newton steps (equilibrated Cholesky, ``O(N p^2)`` each) with step-halving
    on the log-likelihood, which is concave, so the iteration cannot diverge.
    A step is accepted if the log-likelihood does not fall by more than its
    rounding error (near the optimum the gain, half the squared Newton
    decrement, is below it). Stops when the squared Newton decrement is below
    1e-18 (the step is ~1e-9 standard errors; the GEE iteration polishes it),
    when no step is accepted, or after ``max_iter`` steps. Under separation
    the coefficients grow by ~1 per step and the fitted probabilities reach 0
    or 1 (detected by the caller).
    """
    beta = np.zeros(X.shape[1])
    eta = np.zeros(X.shape[0])
    loglik = _loglik(y, eta)
    for _ in range(max_iter):
        mu = special.expit(eta)
        u = _rmatvec(X, y - mu)
        xw = X * np.sqrt(mu * (1.0 - mu))[:, None]
        try:
            solver = InfoSolver(xw.T @ xw)
        except (linalg.LinAlgError, ValueError):
            break
        step = solver.solve(u)
        if not u @ step > 1e-18:
            break
        slack = 1e-12 * (1.0 + abs(loglik))
        lam = 1.0
        for _ in range(_MAX_HALVINGS + 1):
            eta_c = _matvec(X, beta + lam * step)
            ll_c = _loglik(y, eta_c)
            if ll_c >= loglik - slack:
                break
            lam /= 2.0
        else:
            break
        beta, eta, loglik = beta + lam * step, eta_c, ll_c
    return beta


def _loglik(y, eta):
    softplus = np.maximum(eta, 0.0) + np.log1p(np.exp(-np.abs(eta)))  # log(1 + e^eta)
    return float(np.einsum("i,i->", y, eta) - softplus.sum())


def cluster_summaries(X, y, beta, rho, bounds):
    """Per-cluster ``B_i = D_i'V_i^{-1}D_i`` (G, p, p) and ``s_i = D_i'V_i^{-1}(y_i - mu_i)`` (G, p), exchangeable rho.

    Rows must be sorted by cluster, cluster ``g`` occupying ``bounds[g]:bounds[g+1]``.
    """
    p = X.shape[1]
    n_clusters = len(bounds) - 1
    mu = special.expit(_matvec(X, beta))
    a = mu * (1.0 - mu)
    sa = np.sqrt(a)
    e = (y - mu) / sa  # Pearson residuals
    Xt = X * sa[:, None]  # A^{1/2} X

    B_g = np.empty((n_clusters, p, p))
    s_g = np.empty((n_clusters, p))
    for g in range(n_clusters):
        lo, hi = bounds[g], bounds[g + 1]
        xg, eg = Xt[lo:hi], e[lo:hi]
        xtx = xg.T @ xg
        xte = np.einsum("ij,i->j", xg, eg)
        if rho != 0.0:
            c = rho / (1.0 + (hi - lo - 1) * rho)
            t = xg.sum(axis=0)
            xtx -= c * np.outer(t, t)
            xte -= c * t * eg.sum()
            xtx /= 1.0 - rho
            xte /= 1.0 - rho
        B_g[g] = xtx
        s_g[g] = xte

    return B_g, s_g


def sandwiches(X, y, beta, rho, bounds, *, all_corrections=False):
    """Robust and Mancl–DeRouen covariances from per-cluster p x p summaries.

    Rows must be sorted by cluster, cluster ``g`` occupying
    ``bounds[g]:bounds[g+1]``. Returns (vcov_robust, vcov_md, max_leverage), or with
    ``all_corrections`` :func:`sandwich_set`'s (robust, md, kc, fg, max_leverage).
    """
    B_g, s_g = cluster_summaries(X, y, beta, rho, bounds)
    out = sandwich_set(B_g, s_g)
    if all_corrections:
        return out
    return out[0], out[1], out[4]


#: Fay & Graubard (2001) bound on the leverage diagonal.
FG_BOUND = 0.75


def sandwich_set(B_g, s_g):
    """Robust (Liang–Zeger), Mancl–DeRouen, Kauermann–Carroll and Fay–Graubard covariances from cluster summaries.

    ``B_g`` (G, p, p) holds ``B_i = D_i'V_i^{-1}D_i`` and ``s_g`` (G, p) ``s_i = D_i'V_i^{-1} r_i``;
    ``C = (Σ B_i)^{-1}``.  Each covariance is ``C (Σ u_i u_i') C`` with ``u_i = f(I - B_i C) s_i``:
    ``f = 1`` (robust), ``(.)^{-1}`` (Mancl & DeRouen 2001), ``(.)^{-1/2}`` (Kauermann & Carroll
    2001) — because ``H_ii = D_i C D_i' V_i^{-1}`` has rank ≤ p, ``D_i'V_i^{-1} f(I - H_ii) r_i =
    f(I - B_i C) s_i`` for any matrix function ``f`` — and, for Fay & Graubard (2001),
    ``u_i = diag{(1 - min(0.75, [B_i C]_jj))^{-1/2}} s_i`` (geesmv ``GEE.var.fg``).  The
    ``-1/2`` power uses the symmetric ``S_i = C^{1/2} B_i C^{1/2}``: ``B_i C = C^{-1/2} S_i C^{1/2}``.
    Returns ``(robust, md, kc, fg, max_leverage)``.
    """
    p = s_g.shape[1]
    bread = B_g.sum(axis=0)
    bread = (bread + bread.T) / 2.0
    try:
        C = linalg.cho_solve(linalg.cho_factor(bread), np.eye(p))
    except linalg.LinAlgError as exc:  # pragma: no cover - rank checked earlier
        raise DataError("the GEE bread matrix sum_i D_i' V_i^-1 D_i is singular") from exc
    C = (C + C.T) / 2.0

    vc_robust = C @ (s_g.T @ s_g) @ C
    # Cluster leverages: eigenvalues of B_i C (real, in [0, 1]).
    M = B_g @ C  # (G, p, p)
    evals_c, evecs_c = np.linalg.eigh(C)
    C_half = (evecs_c * np.sqrt(np.maximum(evals_c, 0.0))) @ evecs_c.T
    C_half_inv = (evecs_c / np.sqrt(np.maximum(evals_c, 1e-300))) @ evecs_c.T
    S = C_half @ B_g @ C_half                       # symmetric, eigenvalues = leverages
    S = (S + np.swapaxes(S, 1, 2)) / 2.0
    lev, vecs = np.linalg.eigh(S)
    max_lev = float(np.max(lev))
    I_M = np.eye(p)[None, :, :] - M
    with np.errstate(all="ignore"):
        try:
            u = np.linalg.solve(I_M, s_g[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            u = np.full_like(s_g, np.nan)
            max_lev = np.inf
        # B C = C^{-1/2} S C^{1/2}, so (I - B C)^{-1/2} = C^{-1/2} (I - S)^{-1/2} C^{1/2}
        inv_sqrt = np.where(lev < 1.0, 1.0 / np.sqrt(np.maximum(1.0 - lev, 0.0)), np.nan)
        z = np.einsum("ij,gj->gi", C_half, s_g)
        z = np.einsum("gji,gj->gi", vecs, z) * inv_sqrt
        z = np.einsum("gij,gj->gi", vecs, z)
        u_kc = np.einsum("ij,gj->gi", C_half_inv, z)
    vc_md = C @ (u.T @ u) @ C
    vc_kc = C @ (u_kc.T @ u_kc) @ C
    diag = np.einsum("gjj->gj", M)
    u_fg = s_g / np.sqrt(1.0 - np.minimum(FG_BOUND, diag))
    vc_fg = C @ (u_fg.T @ u_fg) @ C
    return _sym(vc_robust), _sym(vc_md), _sym(vc_kc), _sym(vc_fg), max_lev


def _sym(m):
    return (m + m.T) / 2.0
