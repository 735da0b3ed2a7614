"""Optimisation helpers of :func:`rp2pr_eval.models.glmm.fit_glmm_logit`: preconditioning, the numerical
Hessian of the AGHQ log-likelihood, the profile-likelihood interval for the random-intercept SD, and the
step-halving line search of the Newton polishing (shared with :mod:`rp2pr_eval.models.glmm_nested`)."""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
from scipy import linalg, optimize, stats

from rp2pr_eval.models.glmm_data import GlmmData
from rp2pr_eval.models.glmm_likelihood import SD_MAX, SD_MIN, AghqObjective, GlmStart

__all__ = ["N_THREADS", "num_hessian", "preconditioner", "profile_beta", "profile_sd", "step_halving"]

N_THREADS = max(1, min(2, os.cpu_count() or 1))  # threads for the numerical Hessian


def step_halving(candidate, accept, n_halvings: int):
    """Step-halving line search: the first ``t`` in 1, 1/2, 1/4, … (``n_halvings`` tries) with ``accept(candidate(t))``.

    ``candidate(t)`` builds the trial point of step length ``t`` (e.g. ``theta + t * direction``, clamped);
    ``accept`` says whether it does not decrease the log-likelihood (within the caller's tolerance).
    Returns ``(t, candidate(t))``, or ``None`` when no tried step is accepted (the caller reports "the
    line search failed to increase the log-likelihood").
    """
    t = 1.0
    for _ in range(n_halvings):
        trial = candidate(t)
        if accept(trial):
            return t, trial
        t *= 0.5
    return None


def preconditioner(d: GlmmData, glm: GlmStart, sd0: float) -> tuple[np.ndarray, np.ndarray]:
    """T and its inverse so that the Hessian in u = T^-1 theta is close to -I.

    beta block: Cholesky factor of the PIRLS information at the GLM fit,
    X'WX - sum_j a_j a_j' / (H_j + 1/sigma0^2) with a_j = sum_i w_ij x_ij;
    log-sigma block: sqrt(sum_j 2 (sigma0^2 / (sigma0^2 + 1/H_j))^2).
    """
    k = d.X.shape[1]
    w = d.trials * glm.mu * (1 - glm.mu)
    hw = d.S @ w
    Sw = sp.csr_matrix((w[d.S.indices], d.S.indices, d.S.indptr), shape=d.S.shape)
    a = np.asarray(Sw @ d.X)
    info = glm.info - (a.T / (hw + 1.0 / sd0**2)) @ a
    info = 0.5 * (info + info.T)
    try:
        Lc = linalg.cholesky(info, lower=True)
    except linalg.LinAlgError:
        try:
            Lc = linalg.cholesky(glm.info, lower=True)
        except linalg.LinAlgError:
            Lc = np.diag(np.sqrt(np.maximum(np.diag(glm.info), 1e-8)))
    v = 1.0 / np.maximum(hw, 1e-12)
    c = math.sqrt(max(float(np.sum(2.0 * (sd0**2 / (sd0**2 + v)) ** 2)), 1.0))
    T = np.zeros((k + 1, k + 1))
    T[:k, :k] = linalg.solve_triangular(Lc, np.eye(k), lower=True, trans="T")
    T[k, k] = 1.0 / c
    Tinv = np.zeros_like(T)
    Tinv[:k, :k] = Lc.T
    Tinv[k, k] = c
    return T, Tinv


def num_hessian(
    obj: AghqObjective, theta: np.ndarray, T: np.ndarray, b0: np.ndarray, h: float = 1e-4
) -> np.ndarray:
    """Hessian of the log-likelihood in the preconditioned coordinates u (theta = T u).

    Central differences of the analytic gradient, step ``h`` along each column of T
    (about 1e-4 standard errors). The 2p gradient evaluations are independent and
    run on up to two threads (numpy releases the GIL in the row x node passes).
    """
    p = len(theta)
    jobs = [(j, sign) for j in range(p) for sign in (1.0, -1.0)]
    n_threads = min(N_THREADS, len(jobs))

    def run(evaluator: AghqObjective, part: list[tuple[int, float]]) -> dict[tuple[int, float], np.ndarray]:
        out = {}
        for j, sign in part:
            _, g = evaluator(theta + sign * h * T[:, j], b0=b0, keep=False)
            out[(j, sign)] = g
        return out

    if n_threads > 1:
        parts = [jobs[i::n_threads] for i in range(n_threads)]
        evaluators = [obj] + [obj.copy() for _ in range(n_threads - 1)]
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            results: dict[tuple[int, float], np.ndarray] = {}
            for r in pool.map(run, evaluators, parts):
                results.update(r)
        obj.n_eval += sum(e.n_eval for e in evaluators[1:])
    else:
        results = run(obj, jobs)
    H = np.empty((p, p))
    for j in range(p):
        H[:, j] = T.T @ (results[(j, 1.0)] - results[(j, -1.0)]) / (2 * h)
    return 0.5 * (H + H.T)


def profile_beta(obj: AghqObjective, beta: np.ndarray, tau: float, cho) -> tuple[float, np.ndarray]:
    """max over beta of the log-likelihood at fixed tau = log(sigma) (chord Newton steps)."""
    k = len(beta)
    ll, gr = obj(np.append(beta, tau))
    for _ in range(100):
        step = linalg.cho_solve(cho, gr[:k])
        if float(gr[:k] @ step) < 1e-10:
            break
        t = 1.0
        for _half in range(30):
            ll_new, gr_new = obj(np.append(beta + t * step, tau))
            if ll_new >= ll - 1e-10:
                break
            t *= 0.5
        beta, ll, gr = beta + t * step, ll_new, gr_new
    return ll, beta


def profile_sd(
    obj: AghqObjective,
    beta_hat: np.ndarray,
    tau_hat: float,
    ll_hat: float,
    info_beta: np.ndarray,
    level: float,
    step: float,
    lower_search: bool = True,
) -> tuple[float, float]:
    """Profile-likelihood interval {sigma : 2 (l_hat - l_p(sigma)) <= chi2_1(level)}.

    ``l_p(sigma)`` maximises the (approximate) log-likelihood over beta at fixed
    sigma. The limits are bracketed in steps of ``step`` on the log scale from
    ``tau_hat`` and found with Brent's method. The lower limit is 0 when the
    profile stays above the cut-off down to sigma = 1e-4 (or when ``lower_search``
    is False, at the boundary).
    """
    crit = 0.5 * float(stats.chi2.ppf(level, 1))
    cho = linalg.cho_factor(info_beta)
    warm = {"beta": beta_hat.copy()}

    def excess(tau: float) -> float:
        ll, warm["beta"] = profile_beta(obj, warm["beta"], tau, cho)
        return ll - (ll_hat - crit)

    tau_max, tau_min = math.log(SD_MAX), math.log(SD_MIN)
    limits = []
    for direction in (+1.0, -1.0):
        if direction < 0 and not lower_search:
            limits.append(0.0)
            continue
        warm["beta"] = beta_hat.copy()
        inner, outer, f_outer = tau_hat, tau_hat, 1.0
        while f_outer > 0:
            inner, outer = outer, outer + direction * step
            if not tau_min <= outer <= tau_max:
                break
            f_outer = excess(outer)
        if f_outer > 0:  # never crossed the cut-off inside [1e-4, 100]
            limits.append(0.0 if direction < 0 else float("nan"))
        else:
            a, b = sorted((inner, outer))
            limits.append(math.exp(optimize.brentq(excess, a, b, xtol=1e-7)))
    return limits[1], limits[0]
