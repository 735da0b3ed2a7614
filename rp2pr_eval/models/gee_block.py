"""Block (nested) exchangeable working correlation for the logistic GEE, on block and cluster sums.

Within cluster ``i`` the rows fall into blocks ``b`` (e.g. trust × period within a pair, or period
within a trust); the working correlation of two rows is ``α0`` in the same block and ``α1`` in
different blocks of the cluster (Li, Turner & Preisser 2018, "block exchangeable"; with blocks = periods
of a cluster it is their within-period and between-period correlation):

.. math:: R_i = (1-α_0) I + (α_0-α_1) \\textstyle\\sum_b \\mathbf 1_b\\mathbf 1_b^\\top + α_1 \\mathbf 1\\mathbf 1^\\top .

Its inverse is explicit.  With ``a = 1-α0``, ``d = α0-α1``, block sizes ``m_b``,
``c_b = d/(a + d m_b)``, ``w_b = 1/(a + d m_b)`` and
``κ_i = α1/(1 + α1 Σ_{b∈i} m_b w_b)``,

.. math:: R_i^{-1} = \\frac1a\\Big(I - \\sum_b c_b \\mathbf 1_b\\mathbf 1_b^\\top\\Big)
          - κ_i \\Big(\\sum_b w_b \\mathbf 1_b\\Big)\\Big(\\sum_b w_b \\mathbf 1_b\\Big)^\\top,

so the estimating function, the information and both sandwiches need only block sums of
``X̃ = A^{1/2}X`` and of the Pearson residuals: ``O(N p)`` per update, no ``n_i × n_i`` matrix.
``R_i`` is positive definite iff ``a > 0``, ``a + d m_b > 0`` for every block and
``1 + α1 Σ_b m_b w_b > 0``.

The correlations are geepack's moment estimators (no degrees-of-freedom corrections):
``φ = Σe²/N``, ``α0 = Σ_b Σ_{j<k∈b} e_j e_k / (φ Σ_b m_b(m_b-1)/2)``,
``α1 = Σ_i Σ_{j,k in different blocks of i} e_j e_k / (φ · #such pairs)`` — what
``geepack::geeglm(corstr = "userdefined", zcor = ...)`` computes with a two-column indicator ``zcor``
(checked in tests/test_gee_block.py against tests/reference/gee_block.R).

Written here (not statsmodels' ``Nested`` covariance structure): statsmodels forms ``n_i × n_i``
matrices per cluster (pair clusters hold 1,000–3,700 patients) and estimates nested variance
components, not this correlation.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import sparse, special

from rp2pr_eval.errors import DataError
from rp2pr_eval.models.gee_solver import (
    GeeConvergenceWarning,
    check_separation,
    halved_step,
    logit_start,
    scoring_step,
)

__all__ = ["BlockLayout", "BlockMoments", "block_summaries", "fit_block", "fit_block_beta"]


class BlockLayout:
    """Rows sorted by cluster, then block: block ``b`` occupies ``bounds[b]:bounds[b+1]`` and lies in cluster ``cluster_of[b]``."""

    __slots__ = ("X", "y", "m", "bounds", "codes", "cluster_of", "n_clusters", "n_obs", "pairs0", "pairs1", "_cols")

    def __init__(self, X, y, block_sizes, cluster_of_block):
        self.X, self.y = X, y
        self.m = np.asarray(block_sizes, dtype=float)
        self.bounds = np.concatenate(([0], np.cumsum(block_sizes)))
        self.codes = np.repeat(np.arange(len(self.m)), block_sizes)
        self.cluster_of = np.asarray(cluster_of_block)
        self.n_clusters = int(self.cluster_of.max()) + 1
        self.n_obs = len(y)
        n_i = np.bincount(self.cluster_of, weights=self.m, minlength=self.n_clusters)
        sq_i = np.bincount(self.cluster_of, weights=self.m ** 2, minlength=self.n_clusters)
        self.pairs0 = float(np.sum(self.m * (self.m - 1.0))) / 2.0
        self.pairs1 = float(np.sum(n_i ** 2 - sq_i)) / 2.0
        self._cols = np.arange(self.n_obs)

    def block_sums(self, v):
        return np.bincount(self.codes, weights=v, minlength=len(self.m))

    def to_cluster(self, v):
        """Sum block values ``(B,)`` or ``(B, p)`` to clusters."""
        if v.ndim == 1:
            return np.bincount(self.cluster_of, weights=v, minlength=self.n_clusters)
        out = np.zeros((self.n_clusters, v.shape[1]))
        np.add.at(out, self.cluster_of, v)
        return out

    def weighted_block_sums(self, w):
        W = sparse.csr_matrix((w, self._cols, self.bounds), shape=(len(self.m), self.n_obs))
        return np.asarray(W @ self.X)


def _weights(lay, alphas):
    a0, a1 = alphas
    a, d = 1.0 - a0, a0 - a1
    denom = a + d * lay.m
    if a <= 0.0 or np.any(denom <= 0.0):
        return None
    w = 1.0 / denom
    c = d * w
    tot = 1.0 + a1 * lay.to_cluster(lay.m * w)
    if np.any(tot <= 0.0):
        return None
    kappa = a1 / tot
    return a, c, w, kappa


def check_alphas(lay, alphas):
    """Raise DataError unless the block exchangeable working correlation is positive definite."""
    if not np.all(np.isfinite(alphas)):
        raise DataError("block exchangeable GEE: the working correlations are undefined (no block or cluster "
                        "with two rows, or non-finite residuals); use cov_struct='independence'")
    if _weights(lay, alphas) is None:
        raise DataError(f"block exchangeable GEE: working correlations alpha0={alphas[0]:.6g}, alpha1={alphas[1]:.6g} "
                        "give a working correlation matrix that is not positive definite; use "
                        "cov_struct='exchangeable' or 'independence'")


class BlockMoments:
    """Block sums at one ``beta`` (the block analogue of :class:`~rp2pr_eval.models.gee_solver.ClusterMoments`)."""

    __slots__ = ("lay", "mu", "sa", "t", "E", "e2", "xte", "_gram")

    def __init__(self, lay, beta):
        mu = special.expit(np.einsum("ij,j->i", lay.X, beta))
        sa = np.sqrt(mu * (1.0 - mu))
        r = lay.y - mu
        with np.errstate(divide="ignore", invalid="ignore"):
            e = r / sa
        self.lay, self.mu, self.sa = lay, mu, sa
        self.t = lay.weighted_block_sums(sa)
        self.E = lay.block_sums(e)
        self.e2 = lay.block_sums(e * e)
        self.xte = np.einsum("ij,i->j", lay.X, r)
        self._gram = None

    def finite(self) -> bool:
        return bool(np.isfinite(self.xte).all() and np.isfinite(self.e2).all())

    def rho(self) -> tuple[float, float]:
        lay = self.lay
        phi = float(self.e2.sum()) / lay.n_obs
        within = float(np.sum(self.E ** 2 - self.e2)) / 2.0
        Ei = lay.to_cluster(self.E)
        between = float(np.sum(Ei ** 2) - np.sum(self.E ** 2)) / 2.0
        a0 = within / (phi * lay.pairs0) if lay.pairs0 > 0 else np.nan
        a1 = between / (phi * lay.pairs1) if lay.pairs1 > 0 else np.nan
        return float(a0), float(a1)

    def _parts(self, alphas):
        wts = _weights(self.lay, alphas)
        if wts is None:
            raise DataError("block exchangeable GEE: the working correlation is not positive definite")
        return wts

    def score(self, alphas) -> np.ndarray:
        a, c, w, kappa = self._parts(alphas)
        lay = self.lay
        U = lay.to_cluster(self.t * w[:, None])          # (G, p)
        Ew = lay.to_cluster(self.E * w)                   # (G,)
        return (self.xte - self.t.T @ (c * self.E)) / a - U.T @ (kappa * Ew)

    def info(self, alphas) -> np.ndarray:
        a, c, w, kappa = self._parts(alphas)
        lay = self.lay
        if self._gram is None:
            xt = lay.X * self.sa[:, None]
            self._gram = xt.T @ xt
        U = lay.to_cluster(self.t * w[:, None])
        return (self._gram - (self.t * c[:, None]).T @ self.t) / a - (U * kappa[:, None]).T @ U


def fit_block_beta(lay, max_iter, tol, fixed_alphas=None):
    """Fisher scoring with the moment estimators of (α0, α1) refreshed at every update.

    Returns ``(beta, alphas, converged, n_iter, norm, stalled)`` as
    :func:`~rp2pr_eval.models.gee_solver.fit_gee_beta` (``alphas`` a pair).  ``fixed_alphas`` holds them fixed.
    """
    beta = logit_start(lay.X, lay.y)
    mom = BlockMoments(lay, beta)
    check_separation(mom.mu)
    n_iter, converged, stalled, norm = 0, False, False, np.inf
    while True:
        alphas = tuple(fixed_alphas) if fixed_alphas is not None else mom.rho()
        check_alphas(lay, alphas)
        solver, step, norm2 = scoring_step(
            mom, alphas, "block exchangeable GEE: the information matrix is singular at the current estimates; "
                         "the covariates are probably collinear or the outcome (quasi-)separated")
        norm = np.sqrt(max(norm2, 0.0))
        converged = norm < tol
        if n_iter >= max_iter:
            break
        halved = halved_step(lambda b: BlockMoments(lay, b), beta, step, alphas, solver, norm2)
        if halved is None:
            stalled = not converged
            break
        lam, mom = halved
        beta = beta + lam * step
        n_iter += 1
        if converged:
            if fixed_alphas is None:
                alphas = mom.rho()
                check_alphas(lay, alphas)
            break
    check_separation(mom.mu)
    return beta, alphas, converged, n_iter, norm, stalled


def block_summaries(lay, beta, alphas):
    """Per-cluster ``B_i = D_i'V_i^{-1}D_i`` (G, p, p) and ``s_i = D_i'V_i^{-1}(y_i - mu_i)`` (G, p)."""
    mom = BlockMoments(lay, beta)
    a, c, w, kappa = mom._parts(alphas)
    p = lay.X.shape[1]
    G = lay.n_clusters
    xt = lay.X * mom.sa[:, None]
    e = (lay.y - mom.mu) / mom.sa
    B = np.empty((G, p, p))
    s = np.empty((G, p))
    first_block = np.searchsorted(lay.cluster_of, np.arange(G + 1))
    for g in range(G):
        b0, b1 = first_block[g], first_block[g + 1]
        lo, hi = lay.bounds[b0], lay.bounds[b1]
        xg = xt[lo:hi]
        tb, Eb, cb, wb = mom.t[b0:b1], mom.E[b0:b1], c[b0:b1], w[b0:b1]
        Ug = wb @ tb
        B[g] = (xg.T @ xg - (tb * cb[:, None]).T @ tb) / a - kappa[g] * np.outer(Ug, Ug)
        s[g] = (np.einsum("ij,i->j", xg, e[lo:hi]) - tb.T @ (cb * Eb)) / a - kappa[g] * Ug * float(wb @ Eb)
    return B, s


def fit_block(lay, rho, max_iter, tol):
    """Block exchangeable fit with the ``rho`` option: ``"iterate"`` (falling back to one-step), ``"one-step"``
    or a fixed pair ``(alpha0, alpha1)``; returns fit_block_beta's tuple plus ``rho_method``."""
    if isinstance(rho, str) and rho in ("iterate", "one-step"):
        if rho == "iterate":
            reason = None
            try:
                out = fit_block_beta(lay, max_iter, tol)
                if out[2]:
                    return (*out, "iterated")
                reason = "the iteration did not converge"
            except DataError as exc:
                reason = str(exc).split(";")[0]
        fixed = BlockMoments(lay, fit_block_beta(lay, max_iter, tol, fixed_alphas=(0.0, 0.0))[0]).rho()
        if rho == "iterate":
            warnings.warn(
                f"block exchangeable GEE: no joint solution of the estimating equations and the moment estimators "
                f"({reason}); alpha0, alpha1 are held at their one-step estimates {fixed[0]:.4g}, {fixed[1]:.4g} "
                "(moment estimators at the independence fit), which keeps beta and the sandwich valid; pass "
                "rho='one-step' to ask for this directly",
                GeeConvergenceWarning, stacklevel=4)
        return (*fit_block_beta(lay, max_iter, tol, fixed_alphas=fixed),
                "one-step" if rho == "one-step" else "one-step (no joint solution)")
    if isinstance(rho, (tuple, list)) and len(rho) == 2 and all(
            isinstance(v, (int, float, np.floating)) and not isinstance(v, bool) and np.isfinite(v) for v in rho):
        return (*fit_block_beta(lay, max_iter, tol, fixed_alphas=(float(rho[0]), float(rho[1]))), "fixed")
    raise ValueError(f"rho={rho!r} is not valid for block_exchangeable; expected 'iterate', 'one-step' or a pair "
                     "(alpha0, alpha1) of finite numbers")
