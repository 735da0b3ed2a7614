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
:func:`fit_glmm_logit_vb` (statsmodels' variational Bayes, for comparison only).
The package estimator ``mixed_logistic`` wraps these array-level functions.
"""
from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import linalg, optimize, special, stats

from rp2pr_eval.errors import DataError

__all__ = [
    "GlmmBoundaryWarning",
    "GlmmConvergenceWarning",
    "GlmmFit",
    "GlmmVbFit",
    "fit_glmm_logit",
    "fit_glmm_logit_vb",
]

_SD_MIN = 1e-4  # lower bound for sigma inside the optimiser (the boundary is handled apart)
_SD_MAX = 1e2  # upper bound: reaching it means the likelihood increases without limit
_EXP_CLIP = 700.0  # exp(700) is finite; linear predictors beyond it are meaningless
_N_THREADS = max(1, min(2, os.cpu_count() or 1))  # threads for the numerical Hessian


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


# ------------------------------------------------------------------ data preparation


@dataclass(frozen=True, slots=True)
class _Data:
    X: np.ndarray  # (m, k) rows sorted by group (possibly aggregated)
    succ: np.ndarray  # (m,) successes
    trials: np.ndarray  # (m,) trials
    gidx: np.ndarray  # (m,) group code, sorted
    S: sp.csr_matrix  # (G, m) group indicator for segment sums
    n_groups: int
    n_obs: int
    const: float  # sum of log C(n, y) over the original rows
    ll_saturated: float
    names: tuple[str, ...]
    labels: np.ndarray
    bernoulli: bool


def _as_matrix(X: object, names: object) -> tuple[np.ndarray, tuple[str, ...]]:
    if isinstance(X, pd.DataFrame):
        cols = tuple(str(c) for c in X.columns)
        bad = [
            c for c in X.columns
            if not (pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c]))
        ]
        if bad:
            raise DataError(f"X columns {bad} are not numeric; encode them as indicators first")
        arr = X.to_numpy(dtype=float, na_value=np.nan)
    else:
        cols = None
        try:
            arr = np.asarray(X, dtype=float)
        except (TypeError, ValueError) as exc:
            raise DataError(f"X must be a numeric array: {exc}") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"X must be two-dimensional (rows x columns); got {arr.ndim} dimensions")
    if arr.shape[1] == 0:
        raise DataError("X has no columns; include at least an intercept column of ones")
    if names is None:
        names = cols if cols is not None else tuple(f"x{j}" for j in range(arr.shape[1]))
    names = tuple(str(s) for s in names)
    if len(names) != arr.shape[1]:
        raise DataError(f"names has {len(names)} entries but X has {arr.shape[1]} columns")
    if len(set(names)) != len(names):
        dup = sorted({s for s in names if names.count(s) > 1})
        raise DataError(f"names must be unique; repeated: {dup}")
    return np.ascontiguousarray(arr), names


def _first_rows(mask: np.ndarray, at_most: int = 5) -> list[int]:
    return np.flatnonzero(mask)[:at_most].tolist()


def _prepare(X, y, groups, trials, names) -> _Data:
    Xa, names = _as_matrix(X, names)
    n = Xa.shape[0]
    if n == 0:
        raise DataError("no rows: X, y and groups are empty")
    try:
        ya = np.asarray(y, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise DataError(f"y must be numeric: {exc}") from None
    if ya.shape[0] != n:
        raise DataError(f"y has {ya.shape[0]} values but X has {n} rows")
    garr = _group_values(groups, n)

    bad = ~np.isfinite(Xa)
    if bad.any():
        cols = [names[j] for j in np.flatnonzero(bad.any(axis=0))]
        raise DataError(
            f"X has {int(bad.sum())} missing or non-finite values in column(s) {cols} "
            f"(first rows {_first_rows(bad.any(axis=1))}); drop or impute them first"
        )
    if not np.isfinite(ya).all():
        raise DataError(
            f"y has {int((~np.isfinite(ya)).sum())} missing or non-finite values "
            f"(first rows {_first_rows(~np.isfinite(ya))})"
        )
    if trials is None:
        na = np.ones(n)
        off = (ya != 0) & (ya != 1)
        if off.any():
            raise DataError(
                f"y must be 0/1 when trials is None; found {np.unique(ya[off])[:5].tolist()} "
                f"(first rows {_first_rows(off)}); pass trials= for binomial rows"
            )
    else:
        try:
            na = np.asarray(trials, dtype=float).ravel()
        except (TypeError, ValueError) as exc:
            raise DataError(f"trials must be numeric: {exc}") from None
        if na.shape[0] != n:
            raise DataError(f"trials has {na.shape[0]} values but X has {n} rows")
        off = ~np.isfinite(na) | (na < 1) | (np.abs(na - np.round(na)) > 1e-8)
        if off.any():
            raise DataError(
                f"trials must be positive whole numbers (first offending rows {_first_rows(off)})"
            )
        off = (ya < 0) | (ya > na) | (np.abs(ya - np.round(ya)) > 1e-8)
        if off.any():
            raise DataError(
                f"y must be whole numbers of successes between 0 and trials "
                f"(first offending rows {_first_rows(off)})"
            )
        na = np.round(na)
        ya = np.round(ya)

    codes, labels = _factorize(garr)
    if (codes < 0).any():
        raise DataError(
            f"groups has {int((codes < 0).sum())} missing labels (first rows {_first_rows(codes < 0)})"
        )
    G = len(labels)
    if G < 2:
        raise DataError(f"a random intercept needs at least 2 groups; groups has {G} distinct label(s)")
    if ya.sum() == 0:
        raise DataError("the outcome has no events (every y is 0): the model cannot be estimated")
    if ya.sum() == na.sum():
        raise DataError("every trial is an event (y == trials in every row): the model cannot be estimated")

    _check_rank(Xa, names)

    const = float(np.sum(special.gammaln(na + 1) - special.gammaln(ya + 1) - special.gammaln(na - ya + 1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = ya / na
        sat = special.xlogy(ya, p) + special.xlogy(na - ya, 1 - p)
    ll_sat = const + float(sat.sum())

    order = np.argsort(codes, kind="stable")
    gs, Xs, ys, ns = codes[order], Xa[order], ya[order], na[order]
    gs, Xs, ys, ns = _aggregate(gs, Xs, ys, ns)
    m = len(gs)
    S = sp.csr_matrix((np.ones(m), (gs, np.arange(m))), shape=(G, m))
    return _Data(
        X=np.ascontiguousarray(Xs),
        succ=ys,
        trials=ns,
        gidx=gs,
        S=S,
        n_groups=G,
        n_obs=n,
        const=const,
        ll_saturated=ll_sat,
        names=names,
        labels=labels,
        bernoulli=bool(np.all(ns == 1)),
    )


def _group_values(groups, n: int) -> np.ndarray:
    """One label per row as a 1-D array (labels may be any hashable, tuples included)."""
    if (
        isinstance(groups, tuple)
        and len(groups) == 2
        and n != 2
        and all(hasattr(gg, "__len__") and not isinstance(gg, str) and len(gg) == n for gg in groups)
    ):
        raise NotImplementedError(
            "nested random intercepts (groups=(outer, inner)) are not implemented; "
            "pass one grouping variable"
        )
    if isinstance(groups, (pd.Series, pd.Index)):
        values = groups.to_numpy()
    elif isinstance(groups, np.ndarray):
        if groups.ndim != 1:
            raise NotImplementedError(
                f"groups must be one label per row (1-D); got a {groups.ndim}-D array. "
                "Nested random intercepts are not implemented"
            )
        values = groups
    else:
        try:
            items = list(groups)
        except TypeError:
            raise DataError(
                f"groups must be a sequence of labels, one per row; got {type(groups).__name__}"
            ) from None
        values = np.empty(len(items), dtype=object)
        values[:] = items
    if len(values) != n:
        raise DataError(f"groups has {len(values)} values but X has {n} rows")
    return values


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    try:
        codes, uniques = pd.factorize(values, sort=True)
    except TypeError:  # labels of mixed, unorderable types
        codes, uniques = pd.factorize(values, sort=False)
    labels = np.empty(len(uniques), dtype=object)
    labels[:] = list(uniques)
    return np.asarray(codes, dtype=np.int64), labels


def _check_rank(X: np.ndarray, names: tuple[str, ...]) -> None:
    """Raise DataError naming the columns of X that are linear combinations of others.

    Fast path: eigenvalues of the column-normalised cross-product matrix. When that
    is nearly singular, columns are taken in order (as R's ``lm`` does) and a column
    is reported when it lies in the span of the earlier columns kept.
    """
    norms = np.sqrt(np.einsum("ij,ij->j", X, X))
    zero = norms == 0
    if zero.any():
        raise DataError(f"X column(s) {[names[j] for j in np.flatnonzero(zero)]} are all zero")
    C = _gram(X / norms, np.ones(len(X)))
    ev = linalg.eigvalsh(C)
    if ev[0] > 1e-11 * ev[-1]:
        return
    kept: list[int] = []
    problems = []
    for j in range(C.shape[0]):
        if kept:
            L = linalg.cholesky(C[np.ix_(kept, kept)], lower=True)
            c = linalg.solve_triangular(L, C[kept, j], lower=True)
            resid = C[j, j] - c @ c
            if resid < 1e-9 * C[j, j]:
                coef = linalg.solve_triangular(L.T, c, lower=False)
                used = [names[kept[i]] for i in np.flatnonzero(np.abs(coef) > 1e-6)]
                problems.append(f"{names[j]!r} = combination of {used}")
                continue
        kept.append(j)
    if problems:
        dropped = [names[j] for j in range(C.shape[0]) if j not in kept]
        raise DataError(
            f"X is rank deficient (rank {len(kept)} of {C.shape[0]} columns): column(s) {dropped} "
            f"are linear combinations of earlier columns ({'; '.join(problems)}); drop them"
        )


def _aggregate(g, X, y, n):
    """Collapse identical (group, x) rows into binomial rows when that halves the rows."""
    m = len(g)
    if m < 1000:
        return g, X, y, n
    frame = pd.DataFrame(X)
    if frame.nunique().max() > m // 4:
        return g, X, y, n
    frame.insert(0, "_g", g)
    key = frame.groupby(list(frame.columns), sort=True).ngroup().to_numpy()
    n_keys = int(key.max()) + 1
    if n_keys > m // 2:
        return g, X, y, n
    first = np.full(n_keys, -1, dtype=np.int64)
    first[key[::-1]] = np.arange(m)[::-1]
    ya = np.bincount(key, weights=y, minlength=n_keys)
    na = np.bincount(key, weights=n, minlength=n_keys)
    ga, Xa = g[first], X[first]
    order = np.argsort(ga, kind="stable")
    return ga[order], Xa[order], ya[order], na[order]


# ------------------------------------------------------------------- GLM start values


# Tall matrix-vector products go through einsum, and the weighted cross-product in
# row blocks: OpenBLAS's threaded gemv on a tall 80k x 15 matrix was 10-20 times
# slower than a single-threaded loop when the two cores were shared.


def _mv(X: np.ndarray, v: np.ndarray) -> np.ndarray:
    """X @ v."""
    return np.einsum("ij,j->i", X, v)


def _tmv(X: np.ndarray, v: np.ndarray) -> np.ndarray:
    """X.T @ v."""
    return np.einsum("ij,i->j", X, v)


def _gram(X: np.ndarray, w: np.ndarray, block: int = 4096) -> np.ndarray:
    """X' diag(w) X, accumulated over row blocks."""
    out = np.zeros((X.shape[1], X.shape[1]))
    for a in range(0, X.shape[0], block):
        Xa = X[a : a + block]
        out += (Xa.T * w[a : a + block]) @ Xa
    return 0.5 * (out + out.T)


@dataclass(frozen=True, slots=True)
class _Glm:
    beta: np.ndarray
    info: np.ndarray
    loglik: float
    eta: np.ndarray
    mu: np.ndarray
    converged: bool


def _softplus(e: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, e)


def _glm_fit(d: _Data, max_iter: int = 60) -> _Glm:
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
        info = _gram(X, w)
        rhs = _tmv(X, w * eta + (y - n * mu))  # X'W z with working response z
        try:
            beta_new = linalg.solve(info, rhs, assume_a="pos")
        except (linalg.LinAlgError, ValueError):
            beta_new = linalg.lstsq(info, rhs)[0]
        step = beta_new - beta
        for _half in range(30):
            eta_new = _mv(X, beta + step)
            ll_new = float(np.sum(y * eta_new - n * _softplus(eta_new)))
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
    info = _gram(X, w)
    return _Glm(beta=beta, info=info, loglik=ll_old + d.const, eta=eta, mu=mu, converged=converged)


def _check_separation(d: _Data, glm: _Glm) -> None:
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


# ----------------------------------------------------------------- the likelihood


class _Objective:
    """Adaptive Gauss–Hermite marginal log-likelihood and its exact gradient.

    The parameter vector is theta = (beta, tau) with tau = log(sigma). Rows are
    sorted by group; the rows x nodes work is done in cache-sized chunks that never
    straddle two groups, so each chunk adds its group's node positions by
    broadcasting. ``copy()`` gives an evaluator with its own buffers (for threads).
    """

    _CHUNK_ELEMENTS = 32_768

    def __init__(self, d: _Data, n_quad: int) -> None:
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

    def copy(self) -> "_Objective":
        new = object.__new__(_Objective)
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
        np.minimum(t, _EXP_CLIP, out=t)
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
        eta = _mv(X, beta)
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
            if eta_max[c] + Bq_max[j] > _EXP_CLIP:
                np.minimum(Ec, _EXP_CLIP, out=Ec)
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
        g_beta = _tmv(X, y - n + n * qbar)
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

    d = _prepare(X, y, groups, trials, names)
    k = d.X.shape[1]
    glm = _glm_fit(d)
    _check_separation(d, glm)
    obj = _Objective(d, int(n_quad))

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
    T, Tinv = _preconditioner(d, glm, sd0)
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

    tau_lo, tau_hi = math.log(_SD_MIN), math.log(_SD_MAX)
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
    Hu = _num_hessian(obj, theta, T, cache["b"])  # type: ignore[arg-type]
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
        t = 1.0
        for _half in range(40):
            theta_new = theta + t * (T @ step)
            theta_new[k] = min(theta_new[k], tau_hi)
            ll_new = obj(theta_new, grad=False, b0=cache["b"], keep=False)  # type: ignore[arg-type]
            if ll_new >= ll - 1e-12 * scale:
                break
            t *= 0.5
        else:
            message = "the line search failed to increase the log-likelihood"
            break
        theta = theta_new
        ll, gr = evaluate(theta)
        n_iter += 1
        if theta[k] >= tau_hi - 1e-3:
            break
        if t * math.sqrt(decrement) > 0.1:
            Hu = _num_hessian(obj, theta, T, cache["b"])  # type: ignore[arg-type]

    if theta[k] >= tau_hi - 1e-3:
        converged = False
        message = (
            f"the random-intercept SD reached the upper limit {_SD_MAX:g}: the likelihood keeps "
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

    _, h, _, _ = obj.modes(_mv(d.X, beta), math.exp(-2 * theta[k]), b_hat)
    mode_se = 1.0 / np.sqrt(h)

    if converged:
        message = (
            f"converged: Newton decrement <= {tol:g} after {n_iter} iterations "
            f"({obj.n_eval} likelihood evaluations)"
        )
        if profile_ci:
            Tb_inv = linalg.inv(T[:k, :k])
            info_beta = -(Tb_inv.T @ Hu[:k, :k] @ Tb_inv)  # -d2 l / d beta2
            ci_lo, ci_hi = _profile_sd(obj, beta, theta[k], ll, info_beta, level, step=zq * log_sd_se)
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


def _preconditioner(d: _Data, glm: _Glm, sd0: float) -> tuple[np.ndarray, np.ndarray]:
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


def _num_hessian(
    obj: _Objective, theta: np.ndarray, T: np.ndarray, b0: np.ndarray, h: float = 1e-4
) -> np.ndarray:
    """Hessian of the log-likelihood in the preconditioned coordinates u (theta = T u).

    Central differences of the analytic gradient, step ``h`` along each column of T
    (about 1e-4 standard errors). The 2p gradient evaluations are independent and
    run on up to two threads (numpy releases the GIL in the row x node passes).
    """
    p = len(theta)
    jobs = [(j, sign) for j in range(p) for sign in (1.0, -1.0)]
    n_threads = min(_N_THREADS, len(jobs))

    def run(evaluator: _Objective, part: list[tuple[int, float]]) -> dict[tuple[int, float], np.ndarray]:
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


def _profile_beta(obj: _Objective, beta: np.ndarray, tau: float, cho) -> tuple[float, np.ndarray]:
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


def _profile_sd(
    obj: _Objective,
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
        ll, warm["beta"] = _profile_beta(obj, warm["beta"], tau, cho)
        return ll - (ll_hat - crit)

    tau_max, tau_min = math.log(_SD_MAX), math.log(_SD_MIN)
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


def _boundary_fit(
    d: _Data, glm: _Glm, obj: _Objective, n_iter: int, level: float, profile_ci: bool, U: float
) -> GlmmFit:
    """The sigma = 0 result: the logistic regression, with a warning."""
    k = d.X.shape[1]
    V = np.full((k + 1, k + 1), np.nan)
    V[:k, :k] = linalg.inv(glm.info)
    se = np.sqrt(np.diag(V)[:k])
    gr = _tmv(d.X, d.succ - d.trials * glm.mu)
    upper = float("nan")
    if profile_ci:
        _, upper = _profile_sd(
            obj, glm.beta, math.log(_SD_MIN), glm.loglik, glm.info, level, step=1.0, lower_search=False
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

    d = _prepare(X, y, groups, trials, names)
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
