"""Restricted score (wild cluster) bootstrap for one coefficient of a logistic GLM or GEE (Kline & Santos 2012).

Array-level core behind ``rp.wild_cluster_bootstrap(patients, outcome, rp.did_logistic | rp.gee_logistic)``.
Nothing is refitted per draw: the model is fitted once under the null ``β_j = h`` (restricted
estimate ``β̃``, working correlation held at the value given), and the bootstrap perturbs the
cluster scores ``s_g = D_g'V_g^{-1}(y_g - μ̃_g)`` with cluster weights ``v_g``.

With ``B_g = D_g'V_g^{-1}D_g``, ``H = Σ_g B_g``, ``a = H^{-1}e_j``, ``c_g = a's_g``,
``r_g = H^{-1}B_g a`` and ``M_{gh} = r_g's_h``, a draw ``v`` gives the one-step bootstrap estimate
``β*_j - h = a'Σ_g v_g s_g = Σ_g v_g c_g`` and the cluster-robust variance of it from the
re-centred bootstrap scores ``s*_g = v_g s_g - B_g H^{-1}Σ_h v_h s_h``:

.. math:: t^*(v) = \\frac{\\sum_g v_g c_g}{\\sqrt{\\sum_g (v_g c_g - \\sum_h M_{gh} v_h)^2}} .

The observed statistic is the same function at ``v = 1`` — the cluster-robust score (LM) statistic
of ``β_j = h`` — so the test is exact in the sense of Kline & Santos: under the null the
observed scores are one draw of the perturbed scores' distribution up to the weights.  For a linear
model (``s_g = X_g'ũ_g``, ``B_g = X_g'X_g``) the algebra is exactly the restricted wild cluster
bootstrap-t of :func:`~rp2pr_eval.models.wild.wild_cluster_bootstrap_linear` (Kline & Santos 2012,
§3; tests/test_score_bootstrap.py checks this draw for draw), which is why the same weights
(Rademacher, Webb, Mammen) and the same shared weight matrices are used.

The confidence interval inverts the test: the bounds are the ``h`` where the symmetric p-value
crosses ``1 - level`` (:func:`~rp2pr_eval.models.wild.invert_symmetric_test`), each ``h``
costing one restricted fit (a few Newton steps from the previous one) and ``O(B G^2)``.

Written here: no Python package implements the score bootstrap (R ``fwildclusterboot`` and Stata
``boottest`` do for ML models; ``boottest`` after ``logit`` is the equivalent call).

References
----------
Kline P, Santos A (2012). A score based approach to wild bootstrap inference. Journal of
Econometric Methods 1:23–41.
Roodman D, MacKinnon JG, Nielsen MØ, Webb MD (2019). Fast and wild: bootstrap inference in Stata
using boottest. Stata Journal 19:4–60 (§3.4, the score bootstrap).
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np
from scipy import linalg, stats

from rp2pr_eval._arrays import check_design
from rp2pr_eval._options import BootWeights, check_option
from rp2pr_eval.errors import DataError
from rp2pr_eval.models.gee_block import BlockLayout, BlockMoments, block_summaries, check_alphas
from rp2pr_eval.models.gee_solver import ClusterLayout, ClusterMoments, check_separation, cluster_summaries
from rp2pr_eval.models.wild import (
    BootstrapTestResult,
    as_rng,
    bootstrap_weights,
    cluster_codes,
    invert_symmetric_test,
)

__all__ = ["ScoreBootstrapResult", "score_bootstrap_logit", "score_t_draws"]

_TIE_RTOL = 1e-9


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoreBootstrapResult(BootstrapTestResult):
    """Result of :func:`score_bootstrap_logit`: the score statistic, its bootstrap p-values and the inverted CI.

    The fields of :class:`~rp2pr_eval.models.wild.BootstrapTestResult` (``t_draws`` are bootstrap score
    statistics) and ``score_stat``, the observed score statistic under ``β_j = h0``;
    ``infeasible_nulls``, the number of values ``h`` tried while inverting the test at which the
    restricted model could not be fitted (fitted probabilities numerically 0 or 1, no convergence): they
    are counted as rejected, and a bound that lies where the fits stop being possible is reported as
    unbounded (``±inf``) rather than as a false limit.
    """

    score_stat: float
    infeasible_nulls: int = 0


#: The statistic given to a null the restricted model cannot be fitted under: far above any draw (finite,
#: so that the inversion's tie checks stay meaningful).
_REJECTED = 1e300


def score_t_draws(s_g: np.ndarray, B_g: np.ndarray, j: int, V: np.ndarray) -> tuple[float, np.ndarray]:
    """The observed score statistic (``v = 1``) and the bootstrap statistics for the rows of ``V`` (B, G).

    ``s_g`` (G, p) cluster scores and ``B_g`` (G, p, p) cluster information at the restricted fit.
    Formula: module docstring.
    """
    H = B_g.sum(axis=0)
    H = (H + H.T) / 2.0
    Hinv = linalg.cho_solve(linalg.cho_factor(H), np.eye(H.shape[0]))
    a = Hinv[:, j]
    c = s_g @ a
    R = np.einsum("ij,gjk,k->gi", Hinv, B_g, a)       # r_g = H^{-1} B_g a
    MT = (R @ s_g.T).T                                 # MT[h, g] = M_gh = r_g's_h

    def t_of(W):
        num = W @ c
        Q = W * c - W @ MT
        den = np.sqrt(np.einsum("bg,bg->b", Q, Q))
        with np.errstate(divide="ignore", invalid="ignore"):
            t = num / den
        return np.where(np.isnan(t), 0.0, t)

    t_obs = float(t_of(np.ones((1, len(c))))[0])
    return t_obs, t_of(V)


class _Restricted:
    """Restricted fits ``β_j = h`` at a fixed working correlation, warm-started and cached by ``h``."""

    def __init__(self, X, y, codes, j, cov_struct, working_corr, blocks, start):
        order = np.lexsort((codes,)) if blocks is None else np.lexsort((blocks, codes))
        self.X, self.y = X[order], y[order]
        codes = codes[order]
        self.j, self.cov_struct = j, cov_struct
        n_clusters = int(codes.max()) + 1
        if cov_struct == "block_exchangeable":
            b = blocks[order]
            key = codes.astype(np.int64) * (int(b.max()) + 1) + b
            starts = np.concatenate(([0], np.flatnonzero(np.diff(key)) + 1))
            sizes = np.diff(np.concatenate((starts, [len(key)])))
            self.lay = BlockLayout(self.X, self.y, sizes, codes[starts])
            self.alpha = (float(working_corr[0]), float(working_corr[1]))
            check_alphas(self.lay, self.alpha)
        else:
            sizes = np.bincount(codes, minlength=n_clusters)
            self.lay = ClusterLayout(self.X, self.y, sizes)
            self.alpha = 0.0 if cov_struct == "independence" else float(working_corr)
            self.bounds = np.concatenate(([0], np.cumsum(sizes)))
        self.beta = np.asarray(start, dtype=float).copy()
        self.cache: dict[float, tuple[float, np.ndarray]] = {}

    def _moments(self, beta):
        return BlockMoments(self.lay, beta) if self.cov_struct == "block_exchangeable" else ClusterMoments(self.lay, beta)

    def fit(self, h: float, tol: float = 1e-10, max_iter: int = 50) -> np.ndarray:
        beta = self.beta.copy()
        beta[self.j] = h
        nu = np.array([k for k in range(len(beta)) if k != self.j])
        for _ in range(max_iter):
            mom = self._moments(beta)
            u = mom.score(self.alpha)[nu]
            info = mom.info(self.alpha)[np.ix_(nu, nu)]
            try:
                cf = linalg.cho_factor(info)
            except linalg.LinAlgError as exc:
                raise DataError("score bootstrap: the restricted information matrix is singular") from exc
            step = linalg.cho_solve(cf, u)
            norm2 = float(u @ step)
            if norm2 < tol ** 2:
                break
            lam = 1.0
            for _ in range(30):
                cand = beta.copy()
                cand[nu] += lam * step
                uc = self._moments(cand).score(self.alpha)[nu]
                if np.all(np.isfinite(uc)) and float(uc @ linalg.cho_solve(cf, uc)) < norm2:
                    break
                lam /= 2.0
            else:
                break
            beta = cand
        else:
            raise DataError(f"score bootstrap: the restricted fit at h={h:.6g} did not converge")
        check_separation(self._moments(beta).mu)
        self.beta = beta
        return beta

    def summaries(self, beta):
        if self.cov_struct == "block_exchangeable":
            return block_summaries(self.lay, beta, self.alpha)
        return cluster_summaries(self.X, self.y, beta, self.alpha, self.bounds)


def score_bootstrap_logit(
    X,
    y,
    groups,
    *,
    coef_index: int,
    start,
    se: float,
    h0: float = 0.0,
    cov_struct: str = "independence",
    working_corr=None,
    blocks=None,
    n_boot: int = 9999,
    boot_weights: str = "rademacher",
    weight_matrix: np.ndarray | None = None,
    seed: int | np.random.Generator | None = None,
    level: float = 0.95,
    ci: bool = True,
) -> ScoreBootstrapResult:
    r"""Restricted score wild cluster bootstrap test of ``β_j = h0`` (and CI) for a logistic GLM or GEE.

    Parameters
    ----------
    X, y, groups
        Design ``(N, p)`` with the intercept, 0/1 outcome, cluster labels (weight-matrix columns
        follow the sorted unique labels, as :func:`~rp2pr_eval.models.wild.wild_cluster_bootstrap_linear`).
    coef_index
        Column of ``X`` whose coefficient is tested.
    start
        Unrestricted estimates (warm start of the restricted fits; also where the CI search starts).
    se
        A standard error of ``β_j`` (e.g. CR1), only to scale the CI search.
    cov_struct, working_corr, blocks
        ``"independence"`` (the logistic GLM, as ``did_logistic``), ``"exchangeable"`` (``working_corr``
        a number) or ``"block_exchangeable"`` (a pair and ``blocks`` labels); the working correlation
        is held fixed.
    n_boot, boot_weights, weight_matrix, seed
        As :func:`~rp2pr_eval.models.wild.wild_cluster_bootstrap_linear`.
    level, ci
        Confidence level; whether to invert the test for an interval.

    Returns
    -------
    ScoreBootstrapResult

    Notes
    -----
    Formula and references: module docstring.  Stata: ``logit y x ..., vce(cluster pair)`` then
    ``boottest x, reps(9999) weighttype(rademacher)`` (its score bootstrap after ML estimation).
    """
    check_option("boot_weights", boot_weights, BootWeights)
    check_option("cov_struct", cov_struct, ("independence", "exchangeable", "block_exchangeable"))
    Xa, _ = check_design(X, None)
    n_obs, p = Xa.shape
    ya = np.asarray(y, dtype=float)
    if ya.shape != (n_obs,) or not np.all(np.isin(ya, (0.0, 1.0))):
        raise DataError(f"y: expected {n_obs} values coded 0/1")
    j = operator.index(coef_index) % p
    codes, n_clusters = cluster_codes(groups, n_obs)
    if n_clusters < 2:
        raise DataError("the score bootstrap needs at least 2 clusters")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r} must be strictly between 0 and 1")
    b_codes = None
    if cov_struct == "block_exchangeable":
        if blocks is None:
            raise ValueError("cov_struct='block_exchangeable' needs blocks=")
        b_codes = np.unique(np.asarray(blocks), return_inverse=True)[1].reshape(-1)
    if cov_struct != "independence" and working_corr is None:
        raise ValueError(f"cov_struct={cov_struct!r} needs working_corr= (held fixed in the restricted fits)")
    if weight_matrix is None:
        n_boot = operator.index(n_boot)
        if n_boot < 1:
            raise ValueError(f"n_boot={n_boot} must be positive")
        V = bootstrap_weights(n_clusters, n_boot, boot_weights, rng=as_rng(seed))
    else:
        V = np.asarray(weight_matrix, dtype=float)
        if V.ndim != 2 or V.shape[1] != n_clusters or not np.isfinite(V).all():
            raise ValueError(f"weight_matrix must be a finite (n_boot, {n_clusters}) array; got shape {V.shape}")
        n_boot = V.shape[0]
    restricted = _Restricted(Xa, ya, codes, j, cov_struct, working_corr, b_codes, start)

    def at(h: float) -> tuple[float, np.ndarray]:
        key = float(h)
        if key not in restricted.cache:
            beta = restricted.fit(key)
            B_g, s_g = restricted.summaries(beta)
            restricted.cache[key] = score_t_draws(s_g, B_g, j, V)
        return restricted.cache[key]

    t_obs, t_draws = at(h0)
    tol = _TIE_RTOL * abs(t_obs)
    p_sym = float(np.mean(np.abs(t_draws) >= abs(t_obs) - tol))
    p_eq = min(1.0, 2.0 * min(float(np.mean(t_draws <= t_obs + tol)), float(np.mean(t_draws >= t_obs - tol))))
    ci_low = ci_high = math.nan
    failed: list[float] = []

    def at_or_rejected(h: float) -> tuple[float, np.ndarray]:
        """``at(h)``; a null the restricted model cannot be fitted under is rejected (counted in ``failed``)."""
        try:
            return at(h)
        except DataError:
            failed.append(float(h))
            return _REJECTED, np.zeros(V.shape[0])

    if ci:
        k = int(math.ceil((1.0 - level) * n_boot - 1e-9))
        crit = float(stats.t.ppf(1.0 - (1.0 - level) / 2.0, n_clusters - 1))
        estimate = float(np.asarray(start, dtype=float)[j])
        width = crit * float(se)
        ci_low, ci_high = invert_symmetric_test(lambda h: abs(at_or_rejected(h)[0]),
                                                lambda h: at_or_rejected(h)[1], k=k, estimate=estimate, width=width)
        # A bound found at the edge of the fittable region is where the fits stop, not where the test
        # starts to reject: report that side as unbounded.
        near = 1e-3 * width
        if failed and math.isfinite(ci_low) and min(abs(f - ci_low) for f in failed) <= near:
            ci_low = -math.inf
        if failed and math.isfinite(ci_high) and min(abs(f - ci_high) for f in failed) <= near:
            ci_high = math.inf
    t_draws = np.array(t_draws)
    t_draws.setflags(write=False)
    return ScoreBootstrapResult(h0=float(h0), score_stat=t_obs, p_value=p_sym, p_value_equal_tail=p_eq,
                                ci_low=float(ci_low), ci_high=float(ci_high), level=float(level), n_boot=int(n_boot),
                                boot_weights=boot_weights, n_clusters=n_clusters, t_draws=t_draws,
                                infeasible_nulls=len(failed))
