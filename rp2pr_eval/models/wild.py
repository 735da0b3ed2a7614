"""Restricted wild cluster bootstrap-t (WCR) for one coefficient of a linear model.

Array-level core: ``X``, ``y``, cluster labels and optional analytic weights in,
a :class:`WildBootstrapResult` out.  The data-frame front end
(``rp.wild_cluster_bootstrap``) builds the trust panel and calls
:func:`wild_cluster_bootstrap_linear`.

All bootstrap draws are computed together, following Roodman, MacKinnon,
Nielsen & Webb (2019): everything the bootstrap t statistic needs is reduced to
cluster-level quantities once (a ``G``-vector and a ``G × G`` matrix, each
linear in the null value), so the ``B`` draws cost a few ``(B × G)·(G × G)``
matrix products and a confidence interval by test inversion costs ``O(B)`` per
trial null value.  No Python loop runs over draws.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats

from rp2pr_eval._options import BootWeights, check_option
from rp2pr_eval.errors import DataError

__all__ = ["BootstrapTestResult", "WildBootstrapResult", "bootstrap_weights", "wild_cluster_bootstrap_linear"]

# Rows of the (B × G) weight matrix handled at once: keeps each working array
# (chunk × G float64) near 8 MB whatever n_boot is.
_CHUNK_ELEMENTS = 1 << 20

_TIE_RTOL = 1e-9  # |t*| ≥ |t|·(1 - 1e-9) counts as at least as extreme

_WEBB_VALUES = np.array(
    [-math.sqrt(1.5), -1.0, -math.sqrt(0.5), math.sqrt(0.5), 1.0, math.sqrt(1.5)]
)
_SQRT5 = math.sqrt(5.0)
_MAMMEN_LOW = -(_SQRT5 - 1.0) / 2.0           # ≈ -0.618
_MAMMEN_HIGH = (_SQRT5 + 1.0) / 2.0           # ≈ 1.618
_MAMMEN_P_LOW = (_SQRT5 + 1.0) / (2.0 * _SQRT5)  # ≈ 0.724


@dataclass(frozen=True, slots=True, kw_only=True)
class BootstrapTestResult:
    """What every restricted wild cluster bootstrap test of ``β_j = h0`` reports (keyword-only fields).

    The common part of :class:`WildBootstrapResult` (bootstrap-t of a linear model) and
    :class:`~rp2pr_eval.models.score_bootstrap.ScoreBootstrapResult` (score bootstrap of a logit).

    Attributes
    ----------
    p_value
        Symmetric two-sided bootstrap p-value, share of draws with ``|t*| ≥ |t|``.
    p_value_equal_tail
        Equal-tailed two-sided p-value, ``2·min(P*(t* ≤ t), P*(t* ≥ t))``, capped at 1.
    ci_low, ci_high
        Confidence interval at ``level`` by inverting the symmetric test
        (``nan`` when not requested, ``±inf`` when the set is unbounded).
    level
        Confidence level of the interval.
    n_boot, boot_weights, h0, n_clusters
        Number of draws, weight distribution, null value, number of clusters.
    t_draws
        The ``n_boot`` bootstrap statistics under ``β_j = h0``, in the row
        order of the weight matrix (for Romano–Wolf step-down adjustment).
    """

    p_value: float
    p_value_equal_tail: float
    ci_low: float
    ci_high: float
    level: float
    n_boot: int
    boot_weights: str
    h0: float
    n_clusters: int
    t_draws: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class WildBootstrapResult(BootstrapTestResult):
    """Result of a restricted wild cluster bootstrap-t test of ``β_j = h0`` (:func:`wild_cluster_bootstrap_linear`).

    The fields of :class:`BootstrapTestResult` (``t_draws`` are bootstrap t statistics) and:

    Attributes
    ----------
    estimate, se
        WLS/OLS estimate of ``β_j`` and its CR1 cluster-robust standard error
        (CR0 when ``small_sample=False``).
    t_stat
        ``(estimate - h0) / se``.
    """

    estimate: float
    se: float
    t_stat: float


def as_rng(rng: object) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)  # type: ignore[arg-type]


def bootstrap_weights(
    n_clusters: int,
    n_boot: int,
    kind: str = "rademacher",
    *,
    rng: np.random.Generator | int | None,
) -> np.ndarray:
    """Draw an ``(n_boot, n_clusters)`` matrix of wild bootstrap weights.

    Parameters
    ----------
    n_clusters
        Number of clusters ``G`` (columns).
    n_boot
        Number of bootstrap draws ``B`` (rows).
    kind
        ``"rademacher"``: ±1 with probability 1/2 each.
        ``"mammen"``: the two-point distribution of Mammen (1993),
        ``-(√5-1)/2`` with probability ``(√5+1)/(2√5)`` and ``(√5+1)/2``
        otherwise (mean 0, variance 1, third moment 1).
        ``"webb"``: Webb's (2023) six-point distribution, ``±√(1/2), ±1,
        ±√(3/2)`` with probability 1/6 each (mean 0, variance 1).
    rng
        A ``numpy.random.Generator`` or a seed for ``numpy.random.default_rng``;
        the global random state is never used.

    Returns
    -------
    numpy.ndarray
        ``float64`` array of shape ``(n_boot, n_clusters)``.

    Notes
    -----
    Rademacher weights give only ``2**G`` distinct draws (``2**(G-1)`` distinct
    ``|t*|`` values), so with fewer than about 12 clusters the bootstrap
    distribution is coarse and p-values cannot be computed finely; Webb's
    six-point weights give ``6**G`` and are preferred there (Webb 2023).  With
    the 40 ILCOP pairs, ``2**40`` is ample and Rademacher (the default of
    Stata ``boottest`` and R ``fwildclusterboot``) is the usual choice.

    References
    ----------
    Mammen E (1993). Bootstrap and wild bootstrap for high dimensional linear
    models. Annals of Statistics 21:255–285.
    Webb MD (2023). Reworking wild bootstrap-based inference for clustered
    errors. Canadian Journal of Economics 56:839–858 (working paper 2014).
    """
    check_option("kind", kind, BootWeights)
    n_clusters = operator.index(n_clusters)
    n_boot = operator.index(n_boot)
    if n_clusters < 1 or n_boot < 1:
        raise ValueError(f"n_clusters and n_boot must be positive; got {n_clusters} and {n_boot}")
    gen = as_rng(rng)
    size = (n_boot, n_clusters)
    if kind == "rademacher":
        return gen.integers(0, 2, size=size).astype(np.float64) * 2.0 - 1.0
    if kind == "webb":
        return _WEBB_VALUES[gen.integers(0, 6, size=size)]
    low = gen.random(size) < _MAMMEN_P_LOW
    return np.where(low, _MAMMEN_LOW, _MAMMEN_HIGH)


def cluster_codes(cluster: object, n_obs: int) -> tuple[np.ndarray, int]:
    """Integer codes 0..G-1 in sorted order of the labels."""
    labels = np.asarray(cluster)
    if labels.ndim != 1 or labels.shape[0] != n_obs:
        raise DataError(f"cluster must be a 1-D array of length {n_obs}; got shape {labels.shape}")
    if labels.dtype.kind == "f" and np.isnan(labels).any():
        raise DataError(f"cluster has {int(np.isnan(labels).sum())} missing labels")
    if labels.dtype == object:
        bad = np.nonzero(pd.isna(labels))[0]
        if bad.size:
            raise DataError(f"cluster has {bad.size} missing labels (rows {bad[:5].tolist()})")
    try:
        _, codes = np.unique(labels, return_inverse=True)
    except TypeError as exc:  # mixed label types cannot be sorted
        raise DataError(f"cluster labels cannot be ordered: {exc}") from None
    return codes.reshape(-1), int(codes.max()) + 1


def _validate_xy(X: object, y: object, weights: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    Xa = np.asarray(X, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if Xa.ndim != 2:
        raise DataError(f"X must be 2-D (rows × columns); got shape {Xa.shape}")
    if ya.ndim != 1 or ya.shape[0] != Xa.shape[0]:
        raise DataError(f"y must be 1-D with {Xa.shape[0]} rows; got shape {ya.shape}")
    for name, arr in (("X", Xa), ("y", ya)):
        bad = ~np.isfinite(arr)
        if bad.any():
            rows = np.unique(np.nonzero(bad)[0])[:5].tolist()
            raise DataError(f"{name} has missing or infinite values (rows {rows})")
    if weights is None:
        wa = np.ones(Xa.shape[0])
    else:
        wa = np.asarray(weights, dtype=np.float64)
        if wa.shape != ya.shape:
            raise DataError(f"weights must be 1-D with {ya.shape[0]} rows; got shape {wa.shape}")
        bad = ~(np.isfinite(wa) & (wa > 0))
        if bad.any():
            rows = np.nonzero(bad)[0][:5].tolist()
            raise DataError(f"weights must be positive and finite (rows {rows}: {wa[rows].tolist()})")
    return Xa, ya, wa


def _two_sided_p(t_obs: float, t_draws: np.ndarray) -> tuple[float, float]:
    """Symmetric and equal-tailed p-values; draws within a relative 1e-9 of ``t`` count as ties
    (so a draw equal to ``t`` up to rounding, e.g. the all-ones weight vector, always counts)."""
    tol = _TIE_RTOL * abs(t_obs)
    sym = float(np.mean(np.abs(t_draws) >= abs(t_obs) - tol))
    eq = 2.0 * min(float(np.mean(t_draws <= t_obs + tol)), float(np.mean(t_draws >= t_obs - tol)))
    return sym, min(1.0, eq)


def wild_cluster_bootstrap_linear(
    X: np.ndarray,
    y: np.ndarray,
    *,
    coef_index: int,
    cluster: np.ndarray,
    weights: np.ndarray | None = None,
    h0: float = 0.0,
    n_boot: int = 9999,
    boot_weights: str = "rademacher",
    weight_matrix: np.ndarray | None = None,
    seed: int | np.random.Generator | None = None,
    level: float = 0.95,
    ci: bool = True,
    small_sample: bool = True,
    null: bool = True,
) -> WildBootstrapResult:
    r"""Wild cluster bootstrap-t test and confidence interval for one coefficient (restricted by default).

    Method (WCR, Cameron, Gelbach & Miller 2008; vectorised as in Roodman et
    al. 2019).  Work in the weighted space ``X̃ = W^{1/2}X``, ``ỹ = W^{1/2}y``
    (``W`` = diag(weights)); ``A = (X̃'X̃)^{-1}``, ``a = A e_j``.

    1. Unrestricted fit ``β̂ = A X̃'ỹ``, residuals ``û``; CR1 variance
       ``V = m · A (Σ_g X̃_g'û_g û_g'X̃_g) A`` with
       ``m = G/(G-1) · (N-1)/(N-K)`` (``m = 1`` if ``small_sample=False``);
       ``t = (β̂_j - h0) / √V_jj``.
    2. Restricted fit imposing ``β_j = h0``: ``ũ = M_{-j}(ỹ - h0·x̃_j)``
       (``M_{-j}`` the annihilator of the other columns).
    3. Draw ``b`` sets ``y* = X̃β̃ + v_{b,g(i)} ũ_i`` with cluster-level weights
       ``v_{bg}``.  With ``S_g = X̃_g'ũ_g``, ``c_g = a'S_g``,
       ``r_g = A X̃_g'X̃_g a`` and ``M_{gh} = r_g'S_h``:

       .. math::

          β^*_{bj} - h_0 = \sum_g v_{bg} c_g, \qquad
          \widehat V^*_{b,jj} = m \sum_g \Big(v_{bg} c_g - \sum_h v_{bh} M_{gh}\Big)^2,

       so ``t*_b = (β*_bj - h0)/√V*_b,jj`` for all ``b`` is ``(B×G)``
       arithmetic plus one ``(B×G)·(G×G)`` product — the same statistic as
       refitting WLS on each bootstrap sample (the equivalence test checks this
       draw for draw).
    4. p-values: symmetric ``P*(|t*| ≥ |t|)`` and equal-tailed
       ``2·min(P*(t* ≤ t), P*(t* ≥ t))``; draws within a relative 1e-9 of
       ``t`` count as ties (at least as extreme).
    5. Confidence interval: ``ũ``, ``c`` and ``M`` are affine in ``h0``, so
       ``t*_b(h)`` is a ratio of an affine function and the square root of a
       quadratic in ``h``: five ``B``-vectors hold everything, so each trial
       ``h`` costs ``O(B)``, and the same weight matrix is reused for every ``h``.  The bounds solve
       ``|t(h)| = |t*|_{(k)}(h)`` (the ``k``-th largest ``|t*(h)|``,
       ``k = ⌈(1-level)·B⌉``), a continuous function whose roots are exactly
       where the symmetric p-value crosses ``1 - level``; each is found with
       :func:`scipy.optimize.brentq`, bracketed outward from ``β̂`` starting at
       the CR1 interval with ``t_{G-1}`` critical value, doubling the width
       until the bracket holds.  If ``p(h)`` is not monotone on a side the
       root found is one crossing in the bracket (as ``boottest``).

    Parameters
    ----------
    X, y
        Design matrix ``(N, K)`` (include the intercept) and response ``(N,)``.
    coef_index
        Column of ``X`` whose coefficient is tested.
    cluster
        Cluster labels ``(N,)``; weight-matrix columns follow the sorted unique labels.
    weights
        Positive analytic (WLS) weights, e.g. trust-period denominators; ``None`` for OLS.
    h0
        Null value of the coefficient.
    n_boot
        Number of bootstrap draws ``B`` (ignored when ``weight_matrix`` is given).
    boot_weights
        ``"rademacher"`` (default), ``"webb"`` or ``"mammen"``; see
        :func:`bootstrap_weights`.  Prefer ``"webb"`` with fewer than about
        12 clusters, where Rademacher has only ``2**G`` distinct draws.  With
        few *treated* clusters every wild bootstrap can mislead (over- or
        under-rejecting; MacKinnon & Webb 2018): ILCOP has 15 treated and 25
        control pairs, well clear of that regime.
    weight_matrix
        Optional ``(B, G)`` weights to use instead of drawing, so several
        outcomes share the same draws (joint resampling for Romano–Wolf).
        ``boot_weights`` is then only recorded as the label.
    seed
        Seed or ``numpy.random.Generator`` for the weights.
    level
        Confidence level of the interval.
    ci
        Compute the confidence interval by test inversion.
    small_sample
        Apply the CR1 factor ``m`` (it changes ``se`` but not the p-values
        or interval, which are invariant to a common scale).
    null
        ``True`` (default): restricted bootstrap (WCR), steps 2–5 above.
        ``False``: unrestricted bootstrap (WCU): the draws use the unrestricted
        residuals, ``y* = X̃β̂ + v_{b,g(i)} û_i``, and ``t*_b = (β*_bj − β̂_j)/√V*_b,jj``
        (the same algebra with ``ũ`` replaced by ``û``).  Its distribution does
        not depend on ``h0``, so the interval is the symmetric percentile-t
        interval ``β̂ ∓ |t*|_{(k)}·se``, which is also where the symmetric
        p-value crosses ``1 − level``.  WCR has the better size with few
        clusters; WCU is what ``boottest ..., nonull`` and
        ``fwildclusterboot::boottest(impose_null = FALSE)`` compute.

    Returns
    -------
    WildBootstrapResult

    Notes
    -----
    Equivalent calls: Stata ``regress y x..., vce(cluster pair)`` then
    ``boottest x, reps(9999) weighttype(rademacher)`` (``boottest`` default is
    WCR with symmetric p-value and CR1 bootstrap t); R
    ``fwildclusterboot::boottest(fit, param = "x", clustid = "pair", B = 9999,
    type = "rademacher", impose_null = TRUE, p_val_type = "two-tailed")``.
    Unlike ``boottest`` this function does not switch to full enumeration when
    ``2**G ≤ B``.

    References
    ----------
    Cameron AC, Gelbach JB, Miller DL (2008). Bootstrap-based improvements for
    inference with clustered errors. Review of Economics and Statistics 90:414–427.
    Roodman D, MacKinnon JG, Nielsen MØ, Webb MD (2019). Fast and wild:
    bootstrap inference in Stata using boottest. Stata Journal 19:4–60.
    MacKinnon JG, Webb MD (2018). The wild bootstrap for few (treated)
    clusters. Econometrics Journal 21:114–135.
    Webb MD (2023). Reworking wild bootstrap-based inference for clustered
    errors. Canadian Journal of Economics 56:839–858.
    """
    check_option("boot_weights", boot_weights, BootWeights)
    Xa, ya, wa = _validate_xy(X, y, weights)
    n_obs, n_cols = Xa.shape
    j = operator.index(coef_index)
    if not -n_cols <= j < n_cols:
        raise ValueError(f"coef_index={coef_index} is out of range for {n_cols} columns")
    j %= n_cols
    codes, n_clusters = cluster_codes(cluster, n_obs)
    if n_clusters < 2:
        raise DataError("wild cluster bootstrap needs at least 2 clusters; got 1")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r} must be strictly between 0 and 1")
    h0 = float(h0)
    if not math.isfinite(h0):
        raise ValueError(f"h0={h0!r} must be finite")
    if n_obs <= n_cols:
        raise DataError(f"{n_obs} rows cannot identify {n_cols} coefficients with residual variation")

    sw = np.sqrt(wa)
    Xw = Xa * sw[:, None]
    yw = ya * sw
    # One SVD gives the rank check, A = (X̃'X̃)^{-1} and the fit; no other LAPACK call.
    U, sv, Vt = np.linalg.svd(Xw, full_matrices=False)
    if sv[-1] <= sv[0] * max(Xw.shape) * np.finfo(float).eps:
        raise DataError(f"X (after weighting) is rank deficient: rank < {n_cols} columns")
    A = (Vt.T / sv**2) @ Vt
    a = A[:, j]
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=n_clusters))[:-1]])

    def cluster_sum(rows: np.ndarray) -> np.ndarray:
        """Σ over the rows of each cluster, (N, …) -> (G, …)."""
        return np.add.reduceat(rows[order], starts, axis=0)

    # 1. unrestricted fit and CR1 variance
    beta = Vt.T @ ((U.T @ yw) / sv)
    u_hat = yw - Xw @ beta
    xa = Xw @ a                                                # X̃A e_j
    score_hat = cluster_sum(xa * u_hat)                        # (G,) a'X̃_g'û_g
    m = (n_clusters / (n_clusters - 1.0)) * ((n_obs - 1.0) / (n_obs - n_cols)) if small_sample else 1.0
    se = math.sqrt(m * float(score_hat @ score_hat))
    estimate = float(beta[j])

    # 2. restricted residuals, affine in the null value: ũ(h) = u0 + (h - h0)·u1.
    # FWL: M_{-j} x̃_j = X̃ a / a_j, so M_{-j} v = M v + β̂_j(v) · X̃ a / a_j.
    if null:
        u1 = -xa / a[j]
        u0 = u_hat - (estimate - h0) * u1
    else:  # WCU: unrestricted residuals, centred at the estimate; nothing depends on h0
        u1 = np.zeros_like(u_hat)
        u0 = u_hat

    # 3. cluster-level quantities
    S0 = cluster_sum(Xw * u0[:, None])                         # (G, K)
    S1 = cluster_sum(Xw * u1[:, None])
    c0, c1 = S0 @ a, S1 @ a                                    # (G,)
    lam_a = cluster_sum(Xw * xa[:, None])                      # rows Λ_g a = X̃_g'X̃_g a, (G, K)
    R = lam_a @ A                                              # rows r_g' = (A Λ_g a)'
    M0T = S0 @ R.T                                             # M(h0)' so V @ M0T = Σ_h v_h M_gh
    M1T = S1 @ R.T

    if weight_matrix is None:
        n_boot = operator.index(n_boot)
        if n_boot < 1:
            raise ValueError(f"n_boot={n_boot} must be positive")
        gen = as_rng(seed)
        chunk = max(1, _CHUNK_ELEMENTS // n_clusters)
        chunks = (
            bootstrap_weights(n_clusters, min(chunk, n_boot - start), boot_weights, rng=gen)
            for start in range(0, n_boot, chunk)
        )
    else:
        V_all = np.asarray(weight_matrix, dtype=np.float64)
        if V_all.ndim != 2 or V_all.shape[1] != n_clusters or V_all.shape[0] < 1:
            raise ValueError(
                f"weight_matrix must have shape (n_boot, {n_clusters}) (one column per cluster); got {V_all.shape}"
            )
        if not np.isfinite(V_all).all():
            raise ValueError("weight_matrix has missing or infinite values")
        n_boot = V_all.shape[0]
        chunk = max(1, _CHUNK_ELEMENTS // n_clusters)
        chunks = (V_all[start:start + chunk] for start in range(0, n_boot, chunk))

    num0 = np.empty(n_boot)
    num1 = np.empty(n_boot)
    q00 = np.empty(n_boot)
    q01 = np.empty(n_boot)
    q11 = np.empty(n_boot)
    start = 0
    for V in chunks:
        stop = start + V.shape[0]
        num0[start:stop] = V @ c0
        num1[start:stop] = V @ c1
        Q0 = V * c0 - V @ M0T
        Q1 = V * c1 - V @ M1T
        q00[start:stop] = np.einsum("bg,bg->b", Q0, Q0)
        q01[start:stop] = np.einsum("bg,bg->b", Q0, Q1)
        q11[start:stop] = np.einsum("bg,bg->b", Q1, Q1)
        start = stop

    def t_star(delta: float) -> np.ndarray:
        num = num0 + delta * num1
        var = m * np.maximum(q00 + delta * (2.0 * q01 + delta * q11), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = num / np.sqrt(var)
        return np.where(np.isnan(t), 0.0, t)

    t_draws = t_star(0.0)
    t_draws.setflags(write=False)
    if se > 0:
        t_stat = (estimate - h0) / se
    else:  # a perfect fit: no residual variation at all
        t_stat = 0.0 if estimate == h0 else math.copysign(math.inf, estimate - h0)
    p_sym, p_eq = _two_sided_p(t_stat, t_draws)

    ci_low = ci_high = math.nan
    k = int(math.ceil((1.0 - level) * n_boot - 1e-9))
    if ci and not null:
        abs_sorted = np.sort(np.abs(t_draws))[::-1]
        q = float(abs_sorted[k - 1]) if 1 <= k <= n_boot else math.inf
        ci_low, ci_high = estimate - q * se, estimate + q * se
    elif ci:
        crit = float(stats.t.ppf(1.0 - (1.0 - level) / 2.0, n_clusters - 1))
        ci_low, ci_high = invert_symmetric_test(
            lambda h: abs(estimate - h) / se,
            lambda h: t_star(h - h0),
            k=k,
            estimate=estimate,
            width=crit * se,
        )
    return WildBootstrapResult(
        estimate=estimate,
        se=se,
        t_stat=float(t_stat),
        p_value=p_sym,
        p_value_equal_tail=p_eq,
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        level=float(level),
        n_boot=int(n_boot),
        boot_weights=boot_weights,
        h0=h0,
        n_clusters=n_clusters,
        t_draws=t_draws,
    )


def invert_symmetric_test(abs_stat_obs, stat_draws_at, *, k, estimate, width, max_doublings=40):
    """Bounds of ``{h : #{b : |T*_b(h)| ≥ |T(h)|} ≥ k}`` on each side of ``estimate``.

    ``abs_stat_obs(h)`` is the observed ``|T(h)|`` and ``stat_draws_at(h)`` the
    draws ``T*(h)``, both continuous in ``h``.  Draws identical to the observed
    statistic as functions of ``h`` (the observed assignment among enumerated
    re-randomisations, or an all-ones wild weight vector; detected by equality
    at four probe points) always count, so they are set aside and ``k`` is
    reduced by their number.  For the other draws the condition holds exactly
    where ``g(h) = |T(h)| - |T*|_{(k)}(h) ≤ 0`` with ``|T*|_{(k)}`` their
    ``k``-th largest value, so each bound is a root of the continuous ``g``:
    bracketed outward from the estimate (where ``T = 0``) starting at
    ``estimate ± width`` and doubling, then refined by Brent's method.  A side
    whose bracket never closes is unbounded (``±inf``).  Shared by the wild
    bootstrap and randomisation inference.
    """
    if not (width > 0 and math.isfinite(width)):
        return -math.inf, math.inf
    same = None
    for x in estimate + width * np.array([-2.9, -1.3, 0.7, 2.3]):
        obs = abs_stat_obs(x)
        close = np.abs(np.abs(stat_draws_at(x)) - obs) <= 1e-9 * max(obs, 1e-300)
        same = close if same is None else same & close
    k -= int(same.sum())
    if k < 1:
        return -math.inf, math.inf
    keep = ~same if same.any() else slice(None)

    def g(h: float) -> float:
        draws = np.abs(stat_draws_at(h)[keep])
        pos = draws.shape[0] - k
        return abs_stat_obs(h) - float(np.partition(draws, pos)[pos])

    bounds = []
    for sign in (-1.0, 1.0):
        inner = estimate
        step = width
        outer = estimate + sign * step
        found = False
        for _ in range(max_doublings):
            if g(outer) > 0:
                found = True
                break
            inner = outer
            step *= 2.0
            outer = estimate + sign * step
        if not found:
            bounds.append(sign * math.inf)
            continue
        if g(inner) > 0:  # only at the estimate itself, when every draw is 0
            bounds.append(inner)
            continue
        lo, hi = (outer, inner) if sign < 0 else (inner, outer)
        bounds.append(optimize.brentq(g, lo, hi, xtol=1e-12 * width, rtol=4 * np.finfo(float).eps))
    return bounds[0], bounds[1]
