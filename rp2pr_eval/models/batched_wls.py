"""One weighted linear model for many treatment assignments at once (Frisch–Waugh–Lovell, batched).

The engine of randomisation inference (:mod:`rp2pr_eval.models.randomisation`): the coefficient, and its
CR1/CR2 cluster-robust SE, for every draw without refitting.
"""
from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rp2pr_eval._options import check_option
from rp2pr_eval.errors import DataError
from rp2pr_eval.models.randomisation_design import (
    CHUNK_ELEMENTS,
    absorb_columns,
    as_matrix,
    check_assignments,
    response,
)
from rp2pr_eval.models.wild import cluster_codes

__all__ = ["BatchedStatistic", "BatchedWLS", "batched_wls_coef", "batched_wls_stat"]

_RI_VCOV = ("CR1", "CR2")
_WORKING_MODELS = ("identity", "inverse_weights")
_EIG_TOL = 1e-12  # pseudo-inverse square root: eigenvalues ≤ 1e-12 dropped (clubSandwich matrix_power)
Builder = Callable[[np.ndarray], np.ndarray]

@dataclass(frozen=True, slots=True)
class BatchedStatistic:
    """Per-draw coefficient, cluster-robust standard error and t statistic.

    ``t = (coef - h0) / se``; draws whose design is singular hold ``nan``.
    """

    coef: np.ndarray = field(repr=False, compare=False)
    se: np.ndarray = field(repr=False, compare=False)
    t: np.ndarray = field(repr=False, compare=False)
    vcov: str
    h0: float
    n_clusters: int


class BatchedWLS:
    """A weighted linear model prepared once for many assignments.

    Columns: ``F`` = [absorb, X_fixed without the focus column] is
    assignment-free and partialled out once (orthonormal basis ``Q`` of
    ``W^{1/2}F`` by SVD, so collinear fixed effects are fine); the *focus
    block* ``Z_d`` = [the coefficient's column if it is in X_fixed, the
    builder's columns] changes with the draw.  By Frisch–Waugh–Lovell the
    coefficients of ``Z_d`` are ``(Z̃_d'Z̃_d)^{-1} Z̃_d'ỹ`` with
    ``Z̃_d = M_Q W^{1/2}Z_d`` and ``ỹ = M_Q W^{1/2}y``, and the residuals are
    those of the full model; the cluster-robust variance of the coefficient
    is built from ``h_d = Z̃_d (Z̃_d'Z̃_d)^{-1} e_j`` (the row of
    ``(X'WX)^{-1}X'W^{1/2}`` for the coefficient) and those residuals.

    With linear maps the focus block is ``Z̃_d[:, c] = M̃_c ã_d`` with
    ``M̃_c = M_Q W^{1/2} L_c`` precomputed and ``ã_d`` the assignment (with a
    trailing 1 carrying a constant focus column), so coefficients need only
    unit-space quadratic forms ``ã_d' (M̃_c'M̃_e) ã_d`` — no per-row work.
    """

    def __init__(self, n_obs, X_fixed, treat_cols_builder, *, weights, absorb, coef_index, cluster,
                 vcov, working_model, small_sample, chunk_size) -> None:
        self.n_obs = n = n_obs
        Xf = np.zeros((n, 0)) if X_fixed is None else as_matrix("X_fixed", X_fixed, n)
        self.weighted = weights is not None
        if weights is None:
            w = np.ones(n)
        else:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != (n,):
                raise DataError(f"weights must be 1-D with {n} rows; got shape {w.shape}")
            bad = ~(np.isfinite(w) & (w > 0))
            if bad.any():
                rows = np.nonzero(bad)[0][:5].tolist()
                raise DataError(f"weights must be positive and finite (rows {rows})")
            w = w / w.mean()  # results do not depend on the scale of the weights
        self.w = w
        self.sw = sw = np.sqrt(w)

        p = Xf.shape[1]
        j = operator.index(coef_index)
        if j < 0:
            raise ValueError(f"coef_index={coef_index} must be non-negative (columns are [X_fixed, builder columns])")
        self.coef_index, self.n_fixed_cols = j, p
        const_raw = None
        if j < p:  # focus on an assignment-free column: move it into the per-draw block
            const_raw = Xf[:, j] * sw
            Xf = np.delete(Xf, j, axis=1)
        self.has_const = const_raw is not None

        F = np.hstack([absorb_columns(absorb, n), Xf]) * sw[:, None]
        if F.shape[1]:
            U, sv, _ = np.linalg.svd(F, full_matrices=False)
            tol = sv.max(initial=0.0) * max(F.shape) * np.finfo(float).eps
            self.Q = U[:, sv > tol]
        else:
            self.Q = np.zeros((n, 0))
        self.rank_f = self.Q.shape[1]
        self.const = None if const_raw is None else self._resid(const_raw)
        self.const_raw_sq = None if const_raw is None else float(const_raw @ const_raw)

        if callable(treat_cols_builder):
            self.builder, self.maps, self.n_var = treat_cols_builder, None, None
        else:
            maps = np.asarray(treat_cols_builder, dtype=np.float64)
            if maps.ndim == 2:
                maps = maps[None]
            if maps.ndim != 3 or maps.shape[1] != n or not np.isfinite(maps).all():
                raise DataError(
                    f"treat_cols_builder must be a callable or finite linear maps of shape (q, {n}, n_units); "
                    f"got shape {maps.shape}"
                )
            self.builder, self.n_var, self.n_units = None, maps.shape[0], maps.shape[2]
            q, u1 = self.q_focus, self.n_units + self.has_const
            raw = np.zeros((q, n, u1))                     # W^{1/2} [const | L_c], in augmented units
            if self.has_const:
                raw[0, :, -1] = const_raw
            raw[self.has_const:, :, :self.n_units] = maps * sw[None, :, None]
            self.maps_raw = raw
            self.maps = np.stack([self._resid(m) for m in raw])                       # M̃_c
            flat = self.maps.transpose(1, 0, 2).reshape(n, q * u1)
            self.unit_gram = (flat.T @ flat).reshape(q, u1, q, u1).transpose(0, 2, 1, 3)   # M̃_a'M̃_b
            # Row-level columns: one GEMM M̃ ã (N·U per column and draw) or, when every
            # row of the raw maps has at most one non-zero (treatment of a row's own
            # pair), a gather followed by residualising (N + f·U + N·f) — whichever is cheaper.
            nonzero = raw != 0
            f = self.rank_f
            self.gather = bool((nonzero.sum(axis=2) <= 1).all()) and n + f * u1 + n * f < n * u1
            if self.gather:
                self.gather_idx = nonzero.argmax(axis=2)                                 # (q, N)
                self.gather_val = np.take_along_axis(raw, self.gather_idx[:, :, None], axis=2)[:, :, 0]
                self.QtM = np.einsum("nf,qnu->qfu", self.Q, raw)
        if self.n_var is not None and j >= p + self.n_var:
            raise ValueError(f"coef_index={coef_index} is out of range for {p + self.n_var} columns")
        self.jz = 0 if self.has_const else j - p

        self.vcov, self.small_sample, self.n_clusters = vcov, small_sample, 0
        if vcov is not None:
            check_option("vcov", vcov, _RI_VCOV)
            check_option("working_model", working_model, _WORKING_MODELS)
            self.working_model = working_model if self.weighted else "inverse_weights"  # same when unweighted
            codes, g = cluster_codes(cluster, n)
            if g < 2:
                raise DataError("cluster-robust statistics need at least 2 clusters; got 1")
            self.n_clusters = g
            sizes = np.bincount(codes, minlength=g)
            self.order = np.argsort(codes, kind="stable")
            self.seg_starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            if vcov == "CR2":
                QwQ = self.Q.T @ (self.Q * w[:, None])
                self.size_groups = []
                for size in np.unique(sizes):
                    members = np.nonzero(sizes == size)[0]
                    rows = self.order[self.seg_starts[members][:, None] + np.arange(size)[None, :]]
                    Qg = self.Q[rows]                                              # (G_s, s, f)
                    fixed_h = Qg @ Qg.transpose(0, 2, 1)
                    fixed_c = Qg @ QwQ @ Qg.transpose(0, 2, 1)
                    self.size_groups.append((members, rows, fixed_h, fixed_c))
                if self.maps is not None and self.working_model == "identity":
                    self.maps_w = np.stack([self._proj(m * w[:, None]) for m in self.maps])  # QQ'W M̃_c
        self.chunk_size = None if chunk_size is None else max(1, operator.index(chunk_size))

    @property
    def q_focus(self) -> int:
        return (self.n_var or 0) + self.has_const

    def _resid(self, M: np.ndarray) -> np.ndarray:
        """``M - Q(Q'M)`` for ``M`` of shape ``(N, …)``."""
        return M if self.rank_f == 0 else M - self._proj(M)

    def _proj(self, M: np.ndarray) -> np.ndarray:
        """``Q(Q'M)`` for ``M`` of shape ``(N, …)``."""
        flat = M.reshape(self.n_obs, -1)
        return (self.Q @ (self.Q.T @ flat)).reshape(M.shape)

    def small_sample_factor(self) -> float:
        if self.vcov != "CR1" or not self.small_sample:
            return 1.0
        g, n, k = self.n_clusters, self.n_obs, self.rank_f + self.q_focus
        if n <= k:
            raise DataError(f"{n} rows cannot identify {k} coefficients with residual variation")
        return (g / (g - 1.0)) * ((n - 1.0) / (n - k))

    def _chunk(self, n_resp: int, scores: bool) -> int:
        """Draws per chunk: each working array stays near ``CHUNK_ELEMENTS`` (cache-sized)."""
        if self.chunk_size is not None:
            return self.chunk_size
        if not scores and self.maps is not None:
            per_draw = self.maps.shape[2] * 4
        else:
            per_draw = self.n_obs * max(self.q_focus, n_resp, 1)
            if self.vcov == "CR2":
                per_draw = sum(len(m) * r.shape[1] ** 2 for m, r, _, _ in self.size_groups) * 4
        return max(16, CHUNK_ELEMENTS // per_draw)

    def _augment(self, a: np.ndarray) -> np.ndarray:
        af = a.astype(np.float64)
        return np.hstack([af, np.ones((af.shape[0], 1))]) if self.has_const else af

    def _rows(self, a: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        """Residualised focus columns ``(q, N, d)`` and a function giving raw squared norms for some draws."""
        d = a.shape[0]
        if self.maps is not None:
            at = self._augment(a)
            q, u1 = self.maps.shape[0], self.maps.shape[2]
            if self.gather:
                atT = np.ascontiguousarray(at.T)
                Zc = np.empty((q, self.n_obs, d))
                for c in range(q):
                    np.multiply(atT[self.gather_idx[c]], self.gather_val[c][:, None], out=Zc[c])
                    if self.rank_f:
                        Zc[c] -= self.Q @ (self.QtM[c] @ atT)
            else:
                Zc = (self.maps.reshape(q * self.n_obs, u1) @ at.T).reshape(q, self.n_obs, d)

            def raw_sq(idx: np.ndarray) -> np.ndarray:
                zr = self.maps_raw @ at[idx].T                                   # (q, N, k)
                return np.einsum("qnk,qnk->kq", zr, zr)
            return Zc, raw_sq
        Z = np.asarray(self.builder(a), dtype=np.float64)
        if Z.ndim == 2:
            Z = Z[:, :, None]
        if Z.ndim != 3 or Z.shape[:2] != (d, self.n_obs):
            raise DataError(
                f"treat_cols_builder returned shape {Z.shape}; expected ({d}, {self.n_obs}, q) for {d} draws"
            )
        if not np.isfinite(Z).all():
            raise DataError("treat_cols_builder returned missing or infinite values")
        if self.n_var is None:
            self.n_var = Z.shape[2]
            if self.coef_index >= self.n_fixed_cols + self.n_var:
                raise ValueError(
                    f"coef_index={self.coef_index} is out of range for {self.n_fixed_cols + self.n_var} columns"
                )
        elif Z.shape[2] != self.n_var:
            raise DataError(f"treat_cols_builder returned {Z.shape[2]} columns, earlier {self.n_var}")
        Zraw = Z.transpose(2, 1, 0) * self.sw[None, :, None]                     # (q, N, d)
        Zc = np.empty((self.q_focus, self.n_obs, d))
        if self.has_const:
            Zc[0] = self.const[:, None]
        Zc[self.has_const:] = Zraw
        if self.rank_f:
            flat = Zc[self.has_const:].transpose(1, 0, 2).reshape(self.n_obs, -1)
            Zc[self.has_const:] -= (self.Q @ (self.Q.T @ flat)).reshape(self.n_obs, -1, d).transpose(1, 0, 2)

        def raw_sq(idx: np.ndarray) -> np.ndarray:
            out = np.einsum("qnk,qnk->kq", Zraw[:, :, idx], Zraw[:, :, idx])
            return np.hstack([np.full((len(idx), 1), self.const_raw_sq), out]) if self.has_const else out
        return Zc, raw_sq

    def run(self, Y: np.ndarray, assignments: np.ndarray, *, scores: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Coefficient ``(D, r)`` for each response column and, if ``scores``,
        the meat ``(D, r, r)`` = Σ_g s_g s_g' of the cluster scores (CR1 without
        its small-sample factor, or CR2)."""
        Yt = self._resid(Y * self.sw[:, None])                                   # (N, r)
        r = Yt.shape[1]
        a_all = check_assignments(assignments)
        if self.maps is not None and a_all.shape[1] != self.n_units:
            raise DataError(f"assignments have {a_all.shape[1]} units but the linear maps expect {self.n_units}")
        D = a_all.shape[0]
        coef = np.empty((D, r))
        meat = np.empty((D, r, r)) if scores else None
        unit_path = self.maps is not None and not scores
        if unit_path:  # one GEMM per chunk: [ã K_{c1c2} for c1 ≤ c2 | ã M̃_c'ỹ]
            q, u1 = self.maps.shape[0], self.maps.shape[2]
            pairs = [(c1, c2) for c1 in range(q) for c2 in range(c1, q)]
            stacked = np.hstack([self.unit_gram[c1, c2] for c1, c2 in pairs]
                                + [np.einsum("qnu,nr->uqr", self.maps, Yt).reshape(u1, q * r)])
        chunk = self._chunk(r, scores)
        for start in range(0, D, chunk):
            a = a_all[start:start + chunk]
            d = a.shape[0]
            if unit_path:
                at = self._augment(a)
                prod = at @ stacked
                quad = np.einsum("dpu,du->dp", prod[:, :len(pairs) * u1].reshape(d, len(pairs), u1), at)
                gram = np.empty((d, q, q))
                for p_, (c1, c2) in enumerate(pairs):
                    gram[:, c1, c2] = gram[:, c2, c1] = quad[:, p_]
                cross = prod[:, len(pairs) * u1:].reshape(d, q, r)

                def raw_sq(idx, at=at):
                    zr = self.maps_raw @ at[idx].T
                    return np.einsum("qnk,qnk->kq", zr, zr)
            else:
                Zc, raw_sq = self._rows(a)
                q = Zc.shape[0]
                gram = np.empty((d, q, q))
                for c1 in range(q):
                    for c2 in range(c1, q):
                        gram[:, c1, c2] = gram[:, c2, c1] = np.einsum("nd,nd->d", Zc[c1], Zc[c2])
                cross = np.stack([(Yt.T @ Zc[c]).T for c in range(q)], axis=1)   # (d, q, r)
            if not self.jz < q:
                raise ValueError(f"coef_index={self.coef_index} is out of range")
            singular = _singular(gram, raw_sq)
            if singular.any():
                gram[singular] = np.eye(q)
            ginv = np.linalg.inv(gram)                                           # (d, q, q)
            gamma = ginv @ cross                                                 # (d, q, r)
            coef[start:start + d] = gamma[:, self.jz, :]
            if scores:
                beta = ginv[:, :, self.jz]                                       # (d, q)
                h = Zc[0] * beta[:, 0]                                           # (N, d)
                E = np.empty((self.n_obs, d, r))
                for k in range(r):
                    E[:, :, k] = Yt[:, k:k + 1] - Zc[0] * gamma[:, 0, k]
                for c in range(1, q):
                    h += Zc[c] * beta[:, c]
                    for k in range(r):
                        E[:, :, k] -= Zc[c] * gamma[:, c, k]
                if self.vcov == "CR1":
                    u = (h[:, :, None] * E)[self.order]
                    s = np.add.reduceat(u, self.seg_starts, axis=0)              # (G, d, r)
                else:
                    s = self._cr2_scores(a, Zc, ginv, h, E)
                meat[start:start + d] = np.einsum("gdr,gds->drs", s, s)
                meat[start:start + d][singular] = np.nan
            coef[start:start + d][singular] = np.nan
        return coef, meat

    def _cr2_scores(self, a, Zc, ginv, h, E) -> np.ndarray:
        """Bell–McCaffrey adjusted scores for every cluster and draw (see :func:`batched_wls_stat`)."""
        d, r = E.shape[1], E.shape[2]
        identity = self.working_model == "identity"
        if identity:
            if self.maps is not None:
                at = self._augment(a)
                q, u1 = self.maps_w.shape[0], self.maps_w.shape[2]
                Zw = (self.maps_w.reshape(q * self.n_obs, u1) @ at.T).reshape(q, self.n_obs, d)
            else:
                Zw = np.stack([self._proj(z * self.w[:, None]) for z in Zc])     # QQ'W Z̃
            S = np.einsum("and,n,bnd->dab", Zc, self.w, Zc)                      # Z̃'W Z̃
            mid = ginv @ S @ ginv
        out = np.empty((self.n_clusters, d, r))
        for members, rows, fixed_h, fixed_c in self.size_groups:
            Zg = Zc[:, rows, :].transpose(3, 1, 2, 0)                            # (d, G_s, s, q)
            ZgT = Zg.transpose(0, 1, 3, 2)
            H = fixed_h[None] + Zg @ ginv[:, None] @ ZgT                         # weighted-space H̃_gg
            wg = self.w[rows]                                                    # (G_s, s)
            swg = np.sqrt(wg)
            if identity:
                Zwg = Zw[:, rows, :].transpose(3, 1, 2, 0)
                cross = Zwg @ ginv[:, None] @ ZgT
                C = fixed_c[None] + cross + cross.transpose(0, 1, 3, 2) + Zg @ mid[:, None] @ ZgT
                HW = H * (swg[:, None, :] / swg[:, :, None])                     # W^{-1/2} H̃ W^{1/2}
                B = np.eye(rows.shape[1]) - HW - HW.transpose(0, 1, 3, 2) + C / swg[:, :, None] / swg[:, None, :]
                left, right = swg, 1.0 / swg                                     # score = h'W^{1/2} B^{-1/2} W^{-1/2} ẽ
            else:
                B = (np.eye(rows.shape[1]) - H) / wg[:, :, None] / wg[:, None, :]   # W^{-1}(I - H̃)W^{-1}
                left, right = np.ones_like(wg), 1.0 / wg                         # score = h'B^{-1/2} W^{-1} ẽ
            B = (B + B.transpose(0, 1, 3, 2)) / 2.0
            lam, vec = np.linalg.eigh(B)
            inv_sqrt = np.where(lam > _EIG_TOL, 1.0 / np.sqrt(np.where(lam > _EIG_TOL, lam, 1.0)), 0.0)
            hg = h[rows].transpose(2, 0, 1) * left[None]                         # (d, G_s, s)
            eg = E[rows].transpose(2, 0, 1, 3) * right[None, :, :, None]         # (d, G_s, s, r)
            vh = np.einsum("dgsk,dgs->dgk", vec, hg) * inv_sqrt
            ve = np.einsum("dgsk,dgsr->dgkr", vec, eg)
            out[members] = np.einsum("dgk,dgkr->gdr", vh, ve)
        return out


def _singular(gram: np.ndarray, raw_sq: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Draws whose focus block is (numerically) collinear with itself or the fixed columns.

    A column is lost when its residual norm is ≤ 1e-10 of its raw norm; the
    raw norms are computed only for draws whose residual norm is suspiciously
    small (≤ 1e-6 of the median over the chunk), which keeps this cheap.
    """
    d, q, _ = gram.shape
    diag = np.einsum("dqq->dq", gram)
    typical = np.median(diag, axis=0)
    cand = np.nonzero((diag <= 1e-6 * typical).any(axis=1) | (diag <= 0).any(axis=1))[0]
    singular = np.zeros(d, dtype=bool)
    if cand.size:
        singular[cand] = (diag[cand] <= 1e-10 * raw_sq(cand)).any(axis=1)
    if q == 2:  # smallest eigenvalue of the 2 × 2 correlation matrix is 1 - |r|
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = np.abs(gram[:, 0, 1]) / np.sqrt(diag[:, 0] * diag[:, 1])
        singular |= ~(1.0 - corr >= 1e-10)
    elif q > 2:
        scale = np.sqrt(np.where(diag > 0, diag, 1.0))
        corr = gram / scale[:, :, None] / scale[:, None, :]
        singular |= np.linalg.eigvalsh(corr)[:, 0] < 1e-10
    return singular


def batched_wls_coef(
    y: np.ndarray,
    X_fixed: np.ndarray | None,
    treat_cols_builder: Builder | np.ndarray,
    assignments: np.ndarray,
    *,
    coef_index: int,
    weights: np.ndarray | None = None,
    absorb: np.ndarray | Sequence[np.ndarray] | None = None,
    chunk_size: int | None = None,
) -> np.ndarray:
    r"""One WLS coefficient for every assignment, in one batched computation.

    For draw ``d`` the model is ``y = X_fixed β + Z_d γ + A δ + ε`` fitted by
    WLS with ``weights``, where ``Z_d`` (the assignment-dependent columns)
    comes from ``treat_cols_builder`` and ``A`` (``absorb``) is partialled out.

    Method: Frisch–Waugh–Lovell.  ``F = [A, X_fixed]`` is assignment-free:
    an orthonormal basis ``Q`` of ``W^{1/2}F`` is computed once (SVD; collinear
    fixed effects are allowed), and ``ỹ = (I - QQ')W^{1/2}y``.  Per draw only
    the focus block is residualised, ``Z̃_d = (I - QQ')W^{1/2}Z_d`` — one
    ``(N × f)·(f × D q)`` matrix product for all draws, or none when
    ``treat_cols_builder`` is given as linear maps (then
    ``Z̃_d = [(I - QQ')W^{1/2}L_c] a_d`` with the bracket precomputed) — and

    .. math:: \hat γ_d = (\tilde Z_d'\tilde Z_d)^{-1}\tilde Z_d'\tilde y,

    a batch of ``q × q`` inverses.  If ``coef_index`` points at a column of
    ``X_fixed`` that column is moved into the focus block, so any coefficient
    can be asked for.  Draws are processed in chunks keeping working memory
    near 64 MB per array.

    Parameters
    ----------
    y
        Response ``(N,)``.
    X_fixed
        Assignment-free columns ``(N, p)`` whose coefficients may be of
        interest (e.g. intercept and ``post``); ``None`` for none.
    treat_cols_builder
        Either a callable taking an assignment block ``(d, n_units)`` (0/1
        ``int8``) and returning the assignment-dependent columns ``(d, N, q)``
        (or ``(d, N)`` when ``q = 1``), or linear maps ``(q, N, n_units)`` /
        ``(N, n_units)`` with column ``c`` of draw ``d`` equal to ``L_c @ a_d``
        (build them with :func:`assignment_map`; faster).
    assignments
        0/1 matrix ``(D, n_units)``, e.g. from :func:`pair_assignments`.
    coef_index
        Index of the coefficient in the column order ``[X_fixed, Z]``.
    weights
        Positive analytic weights ``(N,)`` (trust-period denominators) or ``None``.
    absorb
        Nuisance columns partialled out once: an array ``(N, a)``, or a list
        of 1-D label arrays, each expanded to a full set of indicators (e.g.
        ``[trust_id, audit_year]`` for two-way fixed effects).  Their
        coefficients are not available.
    chunk_size
        Draws per chunk; ``None`` chooses from a memory budget.

    Returns
    -------
    numpy.ndarray
        ``(D,)`` coefficients; ``nan`` for a draw whose design is singular.

    References
    ----------
    Frisch R, Waugh FV (1933); Lovell MC (1963). Seasonal adjustment of
    economic time series. JASA 58:993–1010.
    """
    ya, n = response(y)
    prob = BatchedWLS(
        n, X_fixed, treat_cols_builder, weights=weights, absorb=absorb, coef_index=coef_index,
        cluster=None, vcov=None, working_model=None, small_sample=False, chunk_size=chunk_size,
    )
    coef, _ = prob.run(ya[:, None], assignments, scores=False)
    return coef[:, 0]


def batched_wls_stat(
    y: np.ndarray,
    X_fixed: np.ndarray | None,
    treat_cols_builder: Builder | np.ndarray,
    assignments: np.ndarray,
    *,
    coef_index: int,
    cluster: np.ndarray,
    weights: np.ndarray | None = None,
    absorb: np.ndarray | Sequence[np.ndarray] | None = None,
    vcov: str = "CR1",
    working_model: str = "identity",
    small_sample: bool = True,
    h0: float = 0.0,
    chunk_size: int | None = None,
) -> BatchedStatistic:
    r"""Coefficient, cluster-robust SE and t statistic for every assignment, batched.

    The model and arguments are those of :func:`batched_wls_coef`.  With
    ``h_d = Z̃_d (Z̃_d'Z̃_d)^{-1} e_j`` (the coefficient's row of
    ``(X'WX)^{-1}X'W^{1/2}`` in the full model, by FWL) and full-model
    residuals ``e_d = ỹ - Z̃_d γ̂_d`` in the weighted space:

    * ``"CR1"``: ``se_d² = m Σ_g (h_{dg}' e_{dg})²`` with
      ``m = G/(G-1)·(N-1)/(N-K)`` (``K`` = rank of ``[absorb, X_fixed]`` + number
      of focus columns; ``m = 1`` if ``small_sample=False``).  ``m`` is the
      same for every draw, so randomisation p-values do not depend on it.
    * ``"CR2"`` (Bell & McCaffrey 2002, in the form of Pustejovsky & Tipton
      2018, exactly as ``variance.wls(..., vcov="CR2", working_model=...)``):
      per cluster the weighted hat block ``H̃_gg = Q_gQ_g' +
      Z̃_dg(Z̃_d'Z̃_d)^{-1}Z̃_dg'`` is formed for all draws at once, then

      - ``working_model="identity"`` (default; clubSandwich's default for
        ``lm``): ``B_g = I - H_gg - H_gg' + X_g M X'W²X M X_g'`` (original-scale
        ``H = XMX'W``; the last term needs ``QQ'WZ̃_d`` and ``Z̃_d'WZ̃_d`` per
        draw) and score ``h_g'W_g^{1/2} B_g^{-1/2} W_g^{-1/2} e_g``;
      - ``"inverse_weights"``: ``B_g = W_g^{-1}(I - H̃_gg)W_g^{-1}`` and score
        ``h_g' B_g^{-1/2} W_g^{-1} e_g`` (unweighted, both are
        ``h_g'(I - H_gg)^{-1/2} e_g``);

      ``se_d² = Σ_g score_g²``.  ``B^{-1/2}`` is the pseudo-inverse square root
      from batched ``numpy.linalg.eigh`` (eigenvalues ≤ 1e-12 dropped), as
      needed when fixed effects are nested in clusters.  One small
      eigendecomposition per draw and cluster makes CR2 about 10–60× slower
      than CR1.

    ``t_d = (coef_d - h0) / se_d``.

    Returns
    -------
    BatchedStatistic

    References
    ----------
    Liang K-Y, Zeger SL (1986). Biometrika 73:13–22.
    Bell RM, McCaffrey DF (2002). Bias reduction in standard errors for linear
    regression with multi-stage samples. Survey Methodology 28:169–181.
    Pustejovsky JE, Tipton E (2018). Small-sample methods for cluster-robust
    variance estimation and hypothesis testing in fixed effects models. JBES 36:672–683.
    """
    ya, n = response(y)
    prob = BatchedWLS(
        n, X_fixed, treat_cols_builder, weights=weights, absorb=absorb, coef_index=coef_index,
        cluster=cluster, vcov=vcov, working_model=working_model, small_sample=small_sample,
        chunk_size=chunk_size,
    )
    coef, meat = prob.run(ya[:, None], assignments, scores=True)
    m = prob.small_sample_factor()
    se = np.sqrt(m * meat[:, 0, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (coef[:, 0] - h0) / se
    return BatchedStatistic(coef=coef[:, 0], se=se, t=t, vcov=vcov, h0=float(h0), n_clusters=prob.n_clusters)
