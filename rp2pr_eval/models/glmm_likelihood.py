"""The likelihood of the random-intercept logistic GLMM: GLM start values, separation check, AGHQ objective.

Used by :func:`rp2pr_eval.models.glmm.fit_glmm_logit`, which maximises :class:`AghqObjective`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy import linalg, optimize, special

from rp2pr_eval.errors import DataError
from rp2pr_eval.models.glmm_data import GlmmData, gram, mv, tmv

SD_MIN = 1e-4  # lower bound for sigma inside the optimiser (the boundary is handled apart)
SD_MAX = 1e2  # upper bound: reaching it means the likelihood increases without limit

__all__ = ["SD_MAX", "SD_MIN", "EXP_CLIP", "AghqObjective", "GlmStart", "check_separation", "glm_start", "softplus"]

EXP_CLIP = 700.0  # exp(700) is finite; linear predictors beyond it are meaningless


@dataclass(frozen=True, slots=True)
class GlmStart:
    beta: np.ndarray
    info: np.ndarray
    loglik: float
    eta: np.ndarray
    mu: np.ndarray
    converged: bool


def softplus(e: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, e)


def glm_start(d: GlmmData, max_iter: int = 60, cross=gram) -> GlmStart:
    """Logistic regression by IRLS; ``cross(X, w)`` computes X' diag(w) X (default :func:`gram`)."""
    X, y, n = d.X, d.succ, d.trials
    k = X.shape[1]
    p0 = y.sum() / n.sum()
    beta = np.zeros(k)
    eta = np.full(len(y), math.log(p0 / (1 - p0)))
    # IRLS (Newton-Raphson) from the overall proportion, with step halving
    ll_old = -np.inf
    converged = False
    for _ in range(max_iter):
        mu = special.expit(eta)
        w = n * mu * (1 - mu)
        info = cross(X, w)
        rhs = tmv(X, w * eta + (y - n * mu))  # X'W z with working response z
        try:
            beta_new = linalg.solve(info, rhs, assume_a="pos")
        except (linalg.LinAlgError, ValueError):
            beta_new = linalg.lstsq(info, rhs)[0]
        step = beta_new - beta
        for _half in range(30):
            eta_new = mv(X, beta + step)
            ll_new = float(np.sum(y * eta_new - n * softplus(eta_new)))
            if ll_new >= ll_old - 1e-10 * abs(ll_old) or not np.isfinite(ll_old):
                break
            step = step / 2
        beta = beta + step
        eta = eta_new
        if abs(ll_new - ll_old) < 1e-11 * (abs(ll_new) + 1):
            converged = True
            ll_old = ll_new
            break
        ll_old = ll_new
    mu = special.expit(eta)
    w = n * mu * (1 - mu)
    info = cross(X, w)
    return GlmStart(beta=beta, info=info, loglik=ll_old + d.const, eta=eta, mu=mu, converged=converged)


def check_separation(d: GlmmData, glm: GlmStart) -> None:
    """Raise DataError if a linear combination of X separates events from non-events.

    Cheap signals from the GLM fit trigger the linear-programming check of
    Konis (2007): maximise sum_i s_i x_i'b subject to s_i x_i'b >= 0 (rows with all
    events s = +1, no events s = -1), x_i'b = 0 for mixed rows, |b| <= 1.
    A positive optimum means (quasi-)complete separation.
    """
    extreme = np.minimum(glm.mu, 1 - glm.mu) < 1e-9
    if glm.converged and not extreme.any():
        return
    X = d.X / np.abs(d.X).max(axis=0)
    pos = d.succ == d.trials
    neg = d.succ == 0
    mixed = ~(pos | neg)
    s = np.where(pos, 1.0, -1.0)
    pure = ~mixed
    A_ub = -(s[pure, None] * X[pure])
    c = A_ub.sum(axis=0)
    res = optimize.linprog(
        c,
        A_ub=A_ub,
        b_ub=np.zeros(A_ub.shape[0]),
        A_eq=X[mixed] if mixed.any() else None,
        b_eq=np.zeros(int(mixed.sum())) if mixed.any() else None,
        bounds=[(-1, 1)] * X.shape[1],
        method="highs",
    )
    if res.status == 0 and -res.fun > 1e-7 * max(1.0, float(np.abs(c).sum())):
        cols = [d.names[j] for j in np.flatnonzero(np.abs(res.x) > 1e-6)]
        raise DataError(
            "the outcome is (quasi-)completely separated by the fixed effects: a linear "
            f"combination of column(s) {cols} predicts it perfectly for some rows, so the "
            "maximum-likelihood estimates do not exist; combine sparse categories or drop "
            "the column(s)"
        )


class AghqObjective:
    """Adaptive Gauss–Hermite marginal log-likelihood and its exact gradient.

    The parameter vector is theta = (beta, tau) with tau = log(sigma). Rows are
    sorted by group; the rows x nodes work is done in cache-sized chunks that never
    straddle two groups, so each chunk adds its group's node positions by
    broadcasting. ``copy()`` gives an evaluator with its own buffers (for threads).
    """

    _CHUNK_ELEMENTS = 32_768

    def __init__(self, d: GlmmData, n_quad: int) -> None:
        self.d = d
        self.k = d.X.shape[1]
        z, w = np.polynomial.hermite_e.hermegauss(n_quad)
        w = w / math.sqrt(2.0 * math.pi)
        self.z = z
        self.K = n_quad
        self.logw = np.log(w) + 0.5 * z * z  # log(omega_k) + z_k^2 / 2
        self.b = np.zeros(d.n_groups)  # warm start for the conditional modes
        self.seg_succ = d.S @ d.succ
        self.seg_trials = d.S @ d.trials
        self.n_eval = 0
        starts = np.flatnonzero(np.r_[True, d.gidx[1:] != d.gidx[:-1]])
        ends = np.r_[starts[1:], len(d.gidx)]
        size = max(1, self._CHUNK_ELEMENTS // n_quad)
        self.chunks = [
            (int(d.gidx[a]), int(c), int(min(c + size, e)))
            for a, e in zip(starts, ends)
            for c in range(a, e, size)
        ]
        self.chunk_starts = np.array([a for _, a, _ in self.chunks])
        self._alloc()

    def _alloc(self) -> None:
        m = len(self.d.gidx)
        size = max(1, self._CHUNK_ELEMENTS // self.K)
        self.buf = np.empty((min(size, m), self.K))
        self.rbuf = np.empty((m, self.K))  # 1 - p_ik at the nodes, kept for the gradient
        self.ones = np.ones(m)

    def copy(self) -> "AghqObjective":
        new = object.__new__(AghqObjective)
        shared = ("d", "k", "z", "K", "logw", "seg_succ", "seg_trials", "chunks", "chunk_starts")
        for name in shared:
            setattr(new, name, getattr(self, name))
        new.b = self.b.copy()
        new.n_eval = 0
        new._alloc()
        return new

    # conditional modes --------------------------------------------------------
    def _state(self, eta: np.ndarray, b: np.ndarray, is2: float, with_f: bool):
        d = self.d
        S, n = d.S, d.trials
        t = eta + b[d.gidx]
        np.minimum(t, EXP_CLIP, out=t)
        np.exp(t, out=t)
        t += 1.0  # 1 + e^eta
        q = 1.0 / t  # 1 - p
        f = None
        if with_f:
            np.log(t, out=t)  # softplus
            f = self.seg_succ * b - S @ (t if d.bernoulli else n * t) - 0.5 * is2 * b * b
        w = q - q * q  # p (1 - p)
        if d.bernoulli:
            r = self.seg_succ - self.seg_trials + S @ q - is2 * b
        else:
            r = self.seg_succ - self.seg_trials + S @ (n * q) - is2 * b
            w *= n
        return f, r, S @ w + is2, q, w

    def modes(self, eta: np.ndarray, is2: float, b0: np.ndarray | None = None):
        """Newton–Raphson for all conditional modes at once (step halving for long steps).

        Maximises h_j(b) = sum_i [y_ij b - n_ij log(1 + e^(eta_ij + b))] - b^2 / (2 sigma^2),
        which is concave. Returns the modes, the curvature
        H_j = sum_i n_ij p_ij (1 - p_ij) + 1 / sigma^2 at the mode, and 1 - p and
        w = n p (1 - p) at the mode.
        """
        b = (self.b if b0 is None else b0).copy()
        f, r, h, q, w = self._state(eta, b, is2, with_f=False)
        for _ in range(200):
            step = r / h
            big = np.max(np.abs(step))
            if big < 1e-10:
                break
            if big > 0.5:  # far from the mode: safeguard with the objective
                if f is None:
                    f = self._state(eta, b, is2, with_f=True)[0]
                for _half in range(60):
                    b_new = b + step
                    out = self._state(eta, b_new, is2, with_f=True)
                    worse = ~(out[0] >= f - 1e-11 * (1.0 + np.abs(f)))
                    if not worse.any():
                        break
                    step = np.where(worse, 0.5 * step, step)
                b, (f, r, h, q, w) = b_new, out
            else:  # Newton converges quadratically from here (h_j is concave and smooth)
                b = b + step
                f, r, h, q, w = self._state(eta, b, is2, with_f=False)
        return b, h, q, w

    # value and gradient --------------------------------------------------------
    def __call__(self, theta: np.ndarray, grad: bool = True, b0: np.ndarray | None = None, keep: bool = True):
        """Log-likelihood (and its gradient over theta) at theta."""
        self.n_eval += 1
        d = self.d
        S, y, n, X = d.S, d.succ, d.trials, d.X
        k, K, G = self.k, self.K, d.n_groups
        beta, tau = theta[:k], float(theta[k])
        is2 = math.exp(-2.0 * tau)
        eta = mv(X, beta)
        b, h, q0, w0 = self.modes(eta, is2, b0)
        if keep:
            self.b = b
        s = 1.0 / np.sqrt(h)
        Bq = b[:, None] + s[:, None] * self.z[None, :]  # (G, K) node positions
        # one pass over rows x nodes: sum_i n_i log(1 + e^(eta_i + B_jk)) and sum_i n_i (1 - p_ik)
        eta_max = np.maximum.reduceat(eta, self.chunk_starts)
        Bq_max = Bq.max(axis=1)
        Lsp = np.zeros((G, K))
        Nq = np.zeros((G, K)) if grad else None
        wt = self.ones if d.bernoulli else n
        buf, rbuf = self.buf, self.rbuf
        for c, (j, a, e) in enumerate(self.chunks):
            Ec = buf[: e - a]
            np.add(eta[a:e, None], Bq[j], out=Ec)
            if eta_max[c] + Bq_max[j] > EXP_CLIP:
                np.minimum(Ec, EXP_CLIP, out=Ec)
            np.exp(Ec, out=Ec)
            Ec += 1.0
            if grad:
                rc = rbuf[a:e]
                np.divide(1.0, Ec, out=rc)  # 1 - p
                Nq[j] += wt[a:e] @ rc
            np.log(Ec, out=Ec)
            Lsp[j] += wt[a:e] @ Ec
        # sum_i y_i (eta_i + B_jk) = sum_i y_i eta_i + B_jk sum_i y_i
        L = (S @ (y * eta))[:, None] + self.seg_succ[:, None] * Bq - Lsp
        A = self.logw[None, :] + L - 0.5 * is2 * Bq * Bq
        lse = special.logsumexp(A, axis=1)
        ll = float(np.sum(np.log(s) - tau + lse)) + d.const
        if not grad:
            return ll
        P = np.exp(A - lse[:, None])  # posterior weights of the nodes (G, K)
        # d/db log f_j at each node: sum_i (y_i - n_i p_ik) - B_jk / sigma^2
        gprime = (self.seg_succ - self.seg_trials)[:, None] + Nq - is2 * Bq
        qbar = np.empty(len(y))  # sum_k P_jk (1 - p_ik)
        for j, a, e in self.chunks:
            np.dot(rbuf[a:e], P[j], out=qbar[a:e])
        g_beta = tmv(X, y - n + n * qbar)
        g_tau = float(np.sum(P * Bq * Bq)) * is2 - G
        # the nodes move with theta: d b_hat / d theta and d log s / d theta
        w1 = w0 * (2.0 * q0 - 1.0)  # w (1 - 2p)
        idx, ptr = S.indices, S.indptr
        Sxw = np.asarray(sp.csr_matrix((w0[idx], idx, ptr), shape=S.shape) @ X)
        Sxw1 = np.asarray(sp.csr_matrix((w1[idx], idx, ptr), shape=S.shape) @ X)
        H1 = S @ w1
        db_dbeta = -Sxw / h[:, None]
        db_dtau = 2.0 * b * is2 / h
        dlogs_dbeta = -0.5 * (Sxw1 + H1[:, None] * db_dbeta) / h[:, None]
        dlogs_dtau = -0.5 * (H1 * db_dtau - 2.0 * is2) / h
        c0 = np.sum(P * gprime, axis=1)
        c1 = np.sum(P * gprime * self.z[None, :], axis=1) * s
        g_beta = g_beta + np.sum(dlogs_dbeta * (1.0 + c1)[:, None] + c0[:, None] * db_dbeta, axis=0)
        g_tau = g_tau + float(np.sum(dlogs_dtau * (1.0 + c1) + c0 * db_dtau))
        return ll, np.append(g_beta, g_tau)
