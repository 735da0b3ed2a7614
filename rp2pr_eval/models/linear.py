"""Cluster-robust variance for linear models, written once for every linear estimator.

:func:`wls` fits ordinary or weighted least squares and returns a :class:`LinearFit`
with a cluster-robust covariance matrix (``"CR1"``, ``"CR2"`` or ``"CR3"``) and the
degrees of freedom of the reference *t* distribution for each coefficient.
:func:`cluster_vcov` gives the covariance matrix alone for given residuals;
:func:`satterthwaite_df` and :func:`wald_test` give small-sample tests of one or
several linear combinations.

Notation (the formulas are written out in ``docs/methods/variance.md``):
``X`` is the n×k design, ``W = diag(w)`` the analytic weights rescaled to mean 1
(results do not depend on the scale of the weights), ``M = (X'WX)^{-1}``,
``e = y - Xβ`` the raw residuals, ``H = X M X'W`` the hat matrix, and ``X_j``,
``W_j``, ``e_j``, ``H_jj`` the rows/blocks of cluster ``j`` (j = 1..G). Every
variant has the form::

    V = M [ Σ_j X_j' W_j A_j e_j e_j' A_j' W_j X_j ] M

with the cluster adjustment matrix ``A_j``:

* ``"CR1"``: ``A_j = sqrt(c) I``, ``c = G/(G-1) · (N-1)/(N-K)`` (Stata's default;
  R ``sandwich::vcovCL(type = "HC1")``; clubSandwich ``"CR1S"``).
* ``"CR2"``: Bell–McCaffrey bias-reduced linearisation, as clubSandwich
  ``vcovCR(type = "CR2")``: ``A_j = D_j' (B_j^+)^{1/2} D_j`` with ``Φ_j = D_j'D_j`` the
  working model and ``B_j = D_j [(I-H) Φ (I-H)']_jj D_j'``. ``(B_j^+)^{1/2}`` is the
  pseudo-inverse square root (eigenvalues ≤ 1e-12 set to zero, as clubSandwich's
  ``matrix_power``). The working model is ``Φ = I`` by default, which is
  clubSandwich's default for ``lm`` fits with *and without* weights (unweighted it
  reduces to ``A_j = (I - H_jj)^{-1/2}``); ``working_model="inverse_weights"`` uses
  ``Φ = W^{-1}`` (clubSandwich ``inverse_var = TRUE``).
* ``"CR3"``: ``A_j = (I - H_jj)^{-1}``, i.e. ``V = Σ_j (β̂_(j) - β̂)(β̂_(j) - β̂)'`` with
  ``β̂_(j)`` the fit without cluster ``j``: the clubSandwich jackknife, *without*
  the classic ``(G-1)/G`` factor and centred at ``β̂`` rather than the mean of the
  ``β̂_(j)``.

``cluster=None`` treats every observation as its own cluster, which gives HC1, HC2
and HC3 (for weighted fits the HC2 of ``sandwich::vcovHC`` and statsmodels is
``working_model="inverse_weights"``).

References
----------
Bell, R. M. & McCaffrey, D. F. (2002). Bias reduction in standard errors for linear
regression with multi-stage samples. *Survey Methodology* 28(2), 169–181.
Pustejovsky, J. E. & Tipton, E. (2018). Small-sample methods for cluster-robust
variance estimation and hypothesis testing in fixed effects models. *Journal of
Business & Economic Statistics* 36(4), 672–683.
Cameron, A. C. & Miller, D. L. (2015). A practitioner's guide to cluster-robust
inference. *Journal of Human Resources* 50(2), 317–372.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from rp2pr_eval._options import VcovType, check_option
from rp2pr_eval.errors import DataError
from rp2pr_eval.models.linear_checks import (
    ClusterGroups,
    as_constraints,
    as_design,
    as_groups,
    as_vector,
    as_weights,
    check_level,
    qr_full_rank,
    readonly,
)

__all__ = [
    "LinearFit",
    "WaldTest",
    "wls",
    "cluster_vcov",
    "satterthwaite_df",
    "wald_test",
]

# Local option aliases (candidates for rp2pr_eval/_options.py).
WorkingModel = Literal["identity", "inverse_weights"]
WaldTestType = Literal["HTZ", "chi-sq", "naive-F"]

_EIG_TOL = 1e-12  # clubSandwich matrix_power: eigenvalues <= 1e-12 are set to zero
_CR3_TOL = 1e-10  # smallest eigenvalue of I - H_jj for which the jackknife is defined
_CHUNK = 4_000_000  # max elements of the G×G arrays built at once for the df


# --------------------------------------------------------------------------- results
@dataclass(frozen=True, slots=True, eq=False)
class LinearFit:
    """A least-squares fit with cluster-robust covariance.

    Attributes
    ----------
    names : tuple of str
        Column names of ``X``.
    coef, se : ndarray, shape (k,)
        Estimates and standard errors (``sqrt(diag(vcov))``).
    vcov : ndarray, shape (k, k)
        Cluster-robust covariance matrix of type ``vcov_type``.
    df : ndarray, shape (k,)
        Degrees of freedom of the reference t distribution of each coefficient
        (Satterthwaite for ``"CR2"``; ``G - 1`` for ``"CR1"``/``"CR3"`` with
        clusters, ``N - K`` without; ``np.inf`` means normal). For a fit made with
        ``wls(..., df_terms=...)`` the other coefficients' Satterthwaite df are
        computed when ``df`` is first read (the same numbers, bit for bit).
    resid : ndarray, shape (n,)
        Raw residuals ``y - X β`` (not multiplied by the weights).
    n_obs, n_clusters : int, int or None
        Observations and clusters (``None`` when ``cluster=None``).
    vcov_type : str
        ``"CR1"``, ``"CR2"`` or ``"CR3"``.
    working_model : str
        CR2 working model, ``"identity"`` or ``"inverse_weights"``.

    Notes
    -----
    Equality is identity (``eq=False``): fits hold arrays. The arrays are read-only.
    """

    names: tuple[str, ...]
    coef: np.ndarray
    vcov: np.ndarray
    se: np.ndarray
    resid: np.ndarray = field(repr=False)
    n_obs: int
    n_clusters: int | None
    vcov_type: str
    working_model: str = "identity"
    _state: _State | None = field(default=None, repr=False)
    _df: np.ndarray | None = field(default=None, repr=False)  # None: not computed yet (df_terms)
    _df_terms: dict = field(default_factory=dict, repr=False)  # {index: df} of the df_terms

    @property
    def df(self) -> np.ndarray:
        """Degrees of freedom of each coefficient (see the class docstring)."""
        if self._df is None:  # memoised on first use: the fit is immutable
            object.__setattr__(self, "_df", readonly(_satterthwaite(self._state, np.eye(len(self.names)))))
        return self._df

    def index(self, index_or_name: int | str) -> int:
        """Position of a coefficient given by position or name."""
        if isinstance(index_or_name, str):
            if index_or_name not in self.names:
                raise ValueError(f"unknown coefficient {index_or_name!r}; have {list(self.names)}")
            return self.names.index(index_or_name)
        i = int(index_or_name)
        if not -len(self.names) <= i < len(self.names):
            raise ValueError(f"coefficient index {i} out of range for {len(self.names)} coefficients")
        return i % len(self.names)

    def t_test(self, index_or_name: int | str, *, h0: float = 0.0, level: float = 0.95) -> dict:
        """Two-sided t test and confidence interval for one coefficient.

        ``t = (β_i - h0) / se_i`` referred to t(``df_i``) (normal when ``df_i`` is
        infinite); the interval is ``β_i ± q · se_i`` with ``q`` the ``(1+level)/2``
        quantile. Returns a dict with ``estimate, se, t, df, p_value, ci_low, ci_high``.
        """
        check_level(level)
        i = self.index(index_or_name)
        df = float(self._df_terms[i]) if self._df is None and i in self._df_terms else float(self.df[i])
        est, se = float(self.coef[i]), float(self.se[i])
        t = (est - h0) / se if se > 0 else np.nan
        # (unfrozen calls: freezing a scipy distribution costs ~0.7 ms, more than the rest of the test)
        if np.isinf(df):
            q = float(stats.norm.ppf(0.5 + level / 2))
            p = float(2 * stats.norm.sf(abs(t))) if np.isfinite(t) else np.nan
        else:
            q = float(stats.t.ppf(0.5 + level / 2, df))
            p = float(2 * stats.t.sf(abs(t), df)) if np.isfinite(t) else np.nan
        return {"estimate": est, "se": se, "t": float(t), "df": df, "p_value": p,
                "ci_low": est - q * se, "ci_high": est + q * se}

    def to_frame(self, *, level: float = 0.95) -> pd.DataFrame:
        """One tidy row per coefficient (``term, estimate, se, t, df, p_value, ci_low, ci_high``)."""
        rows = [{"term": n, **self.t_test(i, level=level)} for i, n in enumerate(self.names)]
        return pd.DataFrame(rows)


@dataclass(frozen=True, slots=True)
class WaldTest:
    """Result of :func:`wald_test`: ``F ~ F(df_num, df_den)`` (``df_den = inf``: chi-square/q)."""

    statistic: float
    df_num: int
    df_den: float
    p_value: float
    test: str
    delta: float = 1.0  # HTZ multiplier: statistic = delta * Q / q


@dataclass(frozen=True, slots=True, eq=False)
class _State:
    """What the degrees-of-freedom calculations need (raw row order)."""

    X: np.ndarray  # (n, k)
    w: np.ndarray  # (n,) weights scaled to mean 1
    phi: np.ndarray  # (n,) diagonal working model Φ
    infl: np.ndarray  # (n, k) rows of Q_j = A_j' W_j X_j M, so V = Σ_j (Q_j'e_j)(Q_j'e_j)'
    bread: np.ndarray  # M = (X'WX)^{-1}
    omega: np.ndarray  # M X'WΦWX M
    groups: ClusterGroups
    naive_df: float
    blocks: dict = field(default_factory=dict)  # the two (n, 2k) blocks of _p_arrays, formed on first use

    def p_blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """``[XΩ - WΦXM, -XM]`` and ``[X, WΦX]``, whose cluster cross products with ``p`` give ``P``."""
        if not self.blocks:
            X = self.X
            XM = X @ self.bread
            wphi = (self.w * self.phi)[:, None]
            self.blocks["left"] = np.hstack([X @ self.omega - wphi * XM, -XM])
            self.blocks["right"] = np.hstack([X, wphi * X])
        return self.blocks["left"], self.blocks["right"]


# --------------------------------------------------------------------------- public
def wls(X, y, *, weights=None, cluster=None, vcov: VcovType = "CR2", names: Sequence[str] | None = None,
        working_model: WorkingModel = "identity", df_terms: Sequence[str] | None = None) -> LinearFit:
    """Weighted least squares with cluster-robust covariance.

    Estimator: ``β = (X'WX)^{-1} X'Wy`` (computed by QR of ``W^{1/2}X``), with
    covariance ``V = M [Σ_j X_j'W_j A_j e_j e_j' A_j' W_j X_j] M``, ``M = (X'WX)^{-1}``,
    and ``A_j`` as in the module docstring for ``vcov`` = ``"CR1"``, ``"CR2"``,
    ``"CR3"``. Degrees of freedom: Satterthwaite (Pustejovsky & Tipton 2018, as
    clubSandwich ``coef_test(test = "Satterthwaite")``) for ``"CR2"``; ``G - 1`` for
    ``"CR1"`` and ``"CR3"`` with clusters and ``N - K`` with ``cluster=None``.

    Parameters
    ----------
    X : array-like or DataFrame, shape (n, k)
        Design matrix including the intercept column if wanted. A DataFrame
        supplies ``names`` when ``names`` is None.
    y : array-like, shape (n,)
        Outcome.
    weights : array-like, shape (n,), optional
        Positive analytic (precision) weights; ``None`` for OLS.
    cluster : array-like, shape (n,), optional
        Cluster labels (any hashable); ``None``: each observation its own cluster.
    vcov : {"CR1", "CR2", "CR3"}
        Variance type.
    names : sequence of str, optional
        Coefficient names; default ``x0, x1, ...`` or the DataFrame columns.
    working_model : {"identity", "inverse_weights"}
        CR2 working model Φ: ``I`` (clubSandwich default for ``lm``, weighted or
        not) or ``W^{-1}`` (clubSandwich ``inverse_var = TRUE``). Same without weights.
    df_terms : sequence of str, optional
        ``"CR2"``: the coefficients whose Satterthwaite df are computed with the fit
        (default all); the others' when ``fit.df`` is first read. A fixed-effects
        design whose caller tests 5 of 90 coefficients then skips most of the df
        work; every df is the number the full computation gives, bit for bit (each
        coefficient's G×G matrix ``P`` is the same product of the same arrays).

    Returns
    -------
    LinearFit

    Raises
    ------
    DataError
        Bad shapes, NaN/inf, non-positive weights, missing cluster labels, fewer
        than 2 clusters, N <= K, rank-deficient X (the message names the collinear
        columns), or CR3 undefined because deleting a cluster leaves X rank deficient.
    ValueError
        Unknown ``vcov`` or ``working_model``, wrong number of names.

    References
    ----------
    Bell & McCaffrey (2002); Pustejovsky & Tipton (2018); Cameron & Miller (2015).
    R: ``clubSandwich::vcovCR(lm(...), cluster, type = "CR2")``, ``coef_test``.
    """
    check_option("vcov", vcov, VcovType)
    check_option("working_model", working_model, WorkingModel)
    Xa, names_ = as_design(X, names)
    n, k = Xa.shape
    ya = as_vector(y, "y", n)
    w = as_weights(weights, n)
    groups = as_groups(cluster, n)

    sw = np.sqrt(w)
    q, r = qr_full_rank(Xa * sw[:, None], names_)
    rinv = np.linalg.inv(r)  # numpy LAPACK: scipy's separate BLAS pool is slow on tiny matrices
    coef = rinv @ (q.T @ (ya * sw))
    resid = ya - Xa @ coef
    bread = rinv @ rinv.T

    state = _cr_state(Xa, w, bread, groups, vcov, working_model, weights is None, cluster is not None)
    V = _vcov_from_state(state, resid)
    df, df_some = None, {}
    if vcov != "CR2":
        df = readonly(np.full(k, state.naive_df))
    elif df_terms is None:
        df = readonly(_satterthwaite(state, np.eye(k)))
    else:
        terms = [df_terms] if isinstance(df_terms, str) else list(df_terms)
        unknown = [t for t in terms if t not in names_]
        if unknown:
            raise ValueError(f"df_terms: unknown coefficient(s) {unknown}; have {list(names_)}")
        index = sorted({names_.index(t) for t in terms})
        df_some = dict(zip(index, _satterthwaite(state, np.eye(k), rows=index)[index].tolist()))
    return LinearFit(
        names=names_, coef=readonly(coef), vcov=readonly(V), se=readonly(np.sqrt(np.diag(V))),
        resid=readonly(resid), n_obs=n, n_clusters=None if cluster is None else groups.n_groups,
        vcov_type=vcov, working_model=working_model, _state=state, _df=df, _df_terms=df_some)



def cluster_vcov(X, resid, *, weights=None, cluster=None, vcov: VcovType = "CR2",
                 working_model: WorkingModel = "identity") -> np.ndarray:
    """Cluster-robust covariance matrix of WLS coefficients for given residuals.

    ``V = M [Σ_j X_j'W_j A_j e_j e_j' A_j' W_j X_j] M`` with ``M = (X'WX)^{-1}`` and
    ``A_j`` for ``vcov`` as in :func:`wls` (same arguments and checks). ``resid`` are
    the raw residuals ``y - Xβ`` of the WLS fit; other residuals give the
    corresponding sandwich (e.g. restricted residuals for score-type variances).

    Returns
    -------
    ndarray, shape (k, k)

    References
    ----------
    Pustejovsky & Tipton (2018); Cameron & Miller (2015).
    """
    check_option("vcov", vcov, VcovType)
    check_option("working_model", working_model, WorkingModel)
    Xa, names_ = as_design(X, None)
    n = Xa.shape[0]
    e = as_vector(resid, "resid", n)
    w = as_weights(weights, n)
    groups = as_groups(cluster, n)
    _, r = qr_full_rank(Xa * np.sqrt(w)[:, None], names_)
    rinv = np.linalg.inv(r)
    state = _cr_state(Xa, w, rinv @ rinv.T, groups, vcov, working_model, weights is None,
                      cluster is not None)
    return _vcov_from_state(state, e)


def satterthwaite_df(fit: LinearFit, contrasts=None) -> np.ndarray:
    """Satterthwaite degrees of freedom for linear combinations ``c'β``.

    As clubSandwich ``coef_test(test = "Satterthwaite")`` (Pustejovsky & Tipton
    2018, eq. 11; Bell & McCaffrey 2002): with ``p_j = Q_j c`` (``Q_j = A_j'W_jX_jM``,
    so ``c'Vc = Σ_j (p_j'e_j)²``) and the working-model residual covariance
    ``Σ = (I-H) Φ (I-H)'``, let ``P_jk = p_j' Σ_jk p_k`` (G×G). Then
    ``df = 2 E²/Var = (tr P)² / ||P||_F²``.

    Parameters
    ----------
    fit : LinearFit
        From :func:`wls` (any ``vcov_type``; the df reflects its adjustment matrices).
    contrasts : array-like, shape (m, k) or (k,), optional
        Rows are the combinations ``c``; default: each coefficient.

    Returns
    -------
    ndarray, shape (m,)
    """
    state = _require_state(fit)
    k = len(fit.names)
    L = np.eye(k) if contrasts is None else as_constraints(contrasts, fit.names)
    return _satterthwaite(state, L)


def wald_test(fit: LinearFit, R, r=None, *, test: WaldTestType = "HTZ") -> WaldTest:
    """Wald test of ``R β = r`` with small-sample reference distributions.

    ``Q = (Rβ - r)' (R V R')^{-1} (Rβ - r)`` with ``q`` = rows of ``R``.

    * ``"HTZ"`` (default): the Hotelling T² approximation of Pustejovsky & Tipton
      (2018), as clubSandwich ``Wald_test(test = "HTZ")``: with ``P^{st}_{jk}`` the
      covariance of the cluster terms of contrasts ``s, t`` under the working
      model, ``Ω_st = tr P^{st}``, ``B^{st} = Σ (Ω^{-1/2})_{ss'} P^{s't'} (Ω^{-1/2})_{t't}``,
      ``ν = q(q+1) / Σ_{s,t} [⟨B^{st}, B^{ts}⟩ + ⟨B^{ss}, B^{tt}⟩]``; then
      ``F = (ν - q + 1)/(ν q) · Q ~ F(q, ν - q + 1)`` (p is NaN when ``ν - q + 1 <= 0``).
      For ``q = 1`` it is the Satterthwaite t test squared.
    * ``"chi-sq"``: ``F = Q/q``, ``Q ~ χ²(q)`` (``df_den = inf``).
    * ``"naive-F"``: ``F = Q/q ~ F(q, G - 1)`` (``N - K`` when ``cluster=None``).

    Parameters
    ----------
    fit : LinearFit
    R : array-like (q, k) or (k,), or sequence of coefficient names
        Constraint matrix; names select coefficients (``R`` rows of the identity).
    r : array-like (q,), optional
        Null values; default zeros.
    test : {"HTZ", "chi-sq", "naive-F"}

    Returns
    -------
    WaldTest

    References
    ----------
    Pustejovsky & Tipton (2018), section 3.2; Tipton & Pustejovsky (2015),
    *J. Educ. Behav. Stat.* 40(6), 604–634.
    """
    check_option("test", test, WaldTestType)
    state = _require_state(fit)
    C = as_constraints(R, fit.names)
    q = C.shape[0]
    if np.linalg.matrix_rank(C) < q:
        raise ValueError(f"the {q} rows of R are linearly dependent")
    rr = np.zeros(q) if r is None else as_vector(r, "r", q)
    d = C @ fit.coef - rr
    CVC = C @ fit.vcov @ C.T
    try:
        Q = float(d @ np.linalg.solve(CVC, d))
    except np.linalg.LinAlgError as exc:
        raise ValueError("R V R' is singular: the constraints are linearly dependent "
                         "or not identified by the covariance matrix") from exc
    if test == "chi-sq":
        return WaldTest(Q / q, q, np.inf, float(stats.chi2.sf(Q, q)), test)
    if test == "naive-F":
        dfd = state.naive_df
        return WaldTest(Q / q, q, dfd, float(stats.f.sf(Q / q, q, dfd)), test)
    P = _p_arrays(state, C.T, all_terms=True)  # (q, q, G, G)
    Omega = np.einsum("stjj->st", P)
    On = _sym_power(Omega, -0.5)
    B = np.einsum("ab,bcjk,cd->adjk", On, P, On, optimize=True)
    total = np.einsum("stjk,tsjk->", B, B) + np.einsum("ssjk,ttjk->", B, B)
    nu = q * (q + 1) / total
    delta = max((nu - q + 1) / nu, 0.0)
    dfd = nu - q + 1
    F = delta * Q / q
    p = float(stats.f.sf(F, q, dfd)) if dfd > 0 else np.nan
    return WaldTest(float(F), q, float(dfd), p, test, float(delta))


# --------------------------------------------------------------------------- core
def _cr_state(X, w, bread, groups, vcov, working_model, unweighted, clustered) -> _State:
    """Adjustment-weighted influence rows ``Q_j = A_j' W_j X_j M`` and what the df need."""
    n, k = X.shape
    G = groups.n_groups
    phi = np.ones(n) if working_model == "identity" else 1.0 / w
    omega = bread @ ((X * (w * w * phi)[:, None]).T @ X) @ bread
    naive_df = float(G - 1) if clustered else float(n - k)
    WXM = (X * w[:, None]) @ bread  # rows w_t x_t' M
    if vcov == "CR1":
        c = G / (G - 1) * (n - 1) / (n - k)
        infl = np.sqrt(c) * WXM
    else:
        infl = np.empty((n, k))
        for cl, rows in groups.blocks:
            Xb, wb = X[rows], w[rows]  # (m, s, k), (m, s)
            XMX = Xb @ bread @ np.swapaxes(Xb, 1, 2)
            IH = np.eye(rows.shape[1]) - XMX * wb[:, None, :]  # I - H_jj
            if vcov == "CR3":
                At = np.swapaxes(_cr3_inverse(IH, wb, groups.labels[cl]), 1, 2)
            else:
                At = _cr2_adjust(IH, Xb, wb, phi[rows], omega, working_model, unweighted)
            infl[rows] = At @ WXM[rows]  # A_j' (W_j X_j M); A_j symmetric for CR2
    return _State(X=X, w=w, phi=phi, infl=infl, bread=bread, omega=omega, groups=groups,
                  naive_df=naive_df)


def _cr2_adjust(IH, Xb, wb, phib, omega, working_model, unweighted):
    """CR2 ``A_j = D' (B^+)^{1/2} D`` for a stack of equal-size clusters (clubSandwich ``CR2``)."""
    if unweighted or working_model == "inverse_weights":
        # B = D (I - H_jj) Φ_j D'   (clubSandwich inverse_var = TRUE branch)
        d = np.sqrt(phib)
        Bm = d[:, :, None] * IH * (phib * d)[:, None, :]
    else:
        # Φ = I: B = [(I-H)(I-H)']_jj = I - H_jj - H_jj' + X_j M X'W²X M X_j'
        Bm = IH + np.swapaxes(IH, 1, 2) - np.eye(IH.shape[1]) + Xb @ omega @ np.swapaxes(Xb, 1, 2)
        d = np.ones_like(wb)
    Bm = (Bm + np.swapaxes(Bm, 1, 2)) / 2
    root = _sym_power(Bm, -0.5)
    return d[:, :, None] * root * d[:, None, :]


def _cr3_inverse(IH, wb, labels):
    """``(I - H_jj)^{-1}`` for a stack of clusters, via the symmetric ``I - W^{1/2}X_jMX_j'W^{1/2}``."""
    sw = np.sqrt(wb)
    S = sw[:, :, None] * IH / sw[:, None, :]
    S = (S + np.swapaxes(S, 1, 2)) / 2
    vals, vecs = np.linalg.eigh(S)
    bad = vals[:, 0] < _CR3_TOL
    if bad.any():
        shown = ", ".join(repr(x) for x in labels[bad][:5])
        raise DataError(
            "vcov='CR3' (jackknife) is undefined: deleting cluster(s) " + shown
            + " leaves the design rank deficient (e.g. a cluster fixed effect or a "
            "cluster alone in a level of a covariate); use 'CR2' or 'CR1'")
    Sinv = (vecs / vals[:, None, :]) @ np.swapaxes(vecs, 1, 2)
    return Sinv * sw[:, None, :] / sw[:, :, None]  # W^{-1/2} S^{-1} W^{1/2}


def _vcov_from_state(state: _State, e: np.ndarray) -> np.ndarray:
    u = state.groups.sum(state.infl * e[:, None])  # (G, k): rows M X_j'W_j A_j e_j
    V = u.T @ u
    return (V + V.T) / 2


def _p_arrays(state: _State, L: np.ndarray, *, all_terms: bool, keep: np.ndarray | None = None) -> np.ndarray:
    """Working-model covariances of the cluster terms of the contrasts in ``L`` (k×q).

    ``P^{st}_{jk} = δ_jk Σ_{t∈j} φ p^s p^t - a^s_j' M b^t_k - b^s_j' M a^t_k + a^s_j' Ω a^t_k``
    with ``p = Q L``, ``a_j = X_j'p_j``, ``b_j = X_j'W_jΦ_j p_j``. Returns (q, G, G)
    (only s = t) or (q, q, G, G). ``keep`` (only s = t): return ``P^{ss}`` of these
    contrasts only; the cluster cross products are still formed for all ``q``, so each
    kept ``P^{ss}`` is the same matrix product of the same numbers as without ``keep``.
    """
    g = state.groups
    p = state.infl @ L  # (n, q)
    # P = (a Ω - b M) a' - (a M) b': left rows [a_jΩ - b_jM, -a_jM], right rows [a_j, b_j]
    left_block, right_block = state.p_blocks()
    left = g.cross(p, left_block)  # (G, q, 2k)
    right = g.cross(p, right_block)
    G, q, _ = left.shape
    j = np.arange(G)
    if all_terms:
        # one (qG × qG) product: rows (s, j), columns (t, m)
        P = left.transpose(1, 0, 2).reshape(q * G, -1) @ right.transpose(1, 0, 2).reshape(q * G, -1).T
        P = P.reshape(q, G, q, G).transpose(0, 2, 1, 3).copy()
        P[:, :, j, j] += np.moveaxis(g.cross(p, p * state.phi[:, None]), 0, -1)
        return P
    if keep is None:
        P = left.transpose(1, 0, 2) @ right.transpose(1, 2, 0)  # (q, G, G)
        P[:, j, j] += g.sum(p * p * state.phi[:, None]).T
        return P
    P = left[:, keep, :].transpose(1, 0, 2) @ right[:, keep, :].transpose(1, 2, 0)  # (len(keep), G, G)
    P[:, j, j] += g.sum(p * p * state.phi[:, None])[:, keep].T
    return P


def _satterthwaite(state: _State, C: np.ndarray, rows: Sequence[int] | None = None) -> np.ndarray:
    """df = (tr P)² / ||P||²_F for each row of C, in chunks to bound memory.

    ``rows``: only these rows of ``C`` (the others are NaN), computed in the same chunks as
    without ``rows`` so that each is the same number.
    """
    G = state.groups.n_groups
    step = max(1, _CHUNK // (G * G))
    if rows is None:
        out = np.empty(C.shape[0])
        for start in range(0, C.shape[0], step):
            P = _p_arrays(state, C[start:start + step].T, all_terms=False)
            tr = np.einsum("sjj->s", P)
            with np.errstate(invalid="ignore", divide="ignore"):  # a zero contrast gives NaN
                out[start:start + step] = tr**2 / np.einsum("sjk,sjk->s", P, P)
        return out
    out = np.full(C.shape[0], np.nan)
    wanted = np.unique(np.asarray(rows, dtype=np.intp))
    for start in range(0, C.shape[0], step):
        chunk = C[start:start + step]
        keep = wanted[(wanted >= start) & (wanted < start + step)] - start
        if not len(keep):
            continue
        # numpy's einsum sums a stack of one G×G matrix in another order than a stack of several: keep a
        # second matrix when the full computation's chunk has several, so that each df is the same number
        stack = keep if len(keep) > 1 or len(chunk) == 1 else np.array([keep[0], (keep[0] + 1) % len(chunk)])
        P = _p_arrays(state, chunk.T, all_terms=False, keep=stack)
        tr = np.einsum("sjj->s", P)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start + keep] = (tr**2 / np.einsum("sjk,sjk->s", P, P))[:len(keep)]
    return out


def _sym_power(A: np.ndarray, power: float) -> np.ndarray:
    """Symmetric matrix power with eigenvalues <= 1e-12 set to zero (clubSandwich ``matrix_power``)."""
    vals, vecs = np.linalg.eigh(A)
    keep = vals > _EIG_TOL
    vp = np.where(keep, np.where(keep, vals, 1.0) ** power, 0.0)
    return (vecs * vp[..., None, :]) @ np.swapaxes(vecs, -1, -2)


# --------------------------------------------------------------------------- checks


def _require_state(fit: LinearFit) -> _State:
    if not isinstance(fit, LinearFit) or fit._state is None:
        raise ValueError("fit must be a LinearFit returned by wls()")
    return fit._state


