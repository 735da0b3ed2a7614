"""Nested random intercepts as a tree: the sparse Hessian algebra, the Laplace likelihood and nested AGHQ.

Used by :func:`rp2pr_eval.models.glmm_nested.fit_glmm_nested`. Levels are ordered outermost
first (e.g. pair, trust, trust × period); every node of level ``l`` has exactly one parent
at level ``l - 1``, and the rows are sorted by their deepest node (the *leaf*).

Why by hand: no Python library fits a frequentist logistic GLMM with several random terms
(statsmodels has only variational Bayes); lme4 uses a general sparse Cholesky factor. For
nested terms the Hessian of the penalised log-likelihood over the random effects,
``H = Z'WZ + Lambda^-1``, links a node only to its ancestors, and eliminating the tree
from the leaves up creates no fill-in: each node ``j`` keeps one pivot ``D_j`` and one
multiplier ``r_j`` (the same for all its ancestors). With ``W_j`` the sum of the
binomial weights ``n p (1 - p)`` over the rows of a leaf and ``s_l = 1 / sigma_l^2``::

    Wt_leaf = W_leaf,  D_j = Wt_j + s_l(j),  r_j = Wt_j / D_j,
    Wt_j   = sum over children c of Wt_c * s_c / D_c,
    log det H = sum_j log D_j.

So the factorisation, solves with ``H``, the diagonal of ``H^-1`` and the leaf leverages
``z' H^-1 z`` (``z`` the indicator of a leaf's chain of ancestors) are a few bincounts per
level: O(rows + nodes) per likelihood evaluation.

The exact gradient of the Laplace approximation (including the dependence of the
conditional modes and of ``log det H`` on the parameters) is in :meth:`LaplaceObjective.__call__`.
Nested adaptive quadrature (:class:`NestedAghqObjective`) changes variables along the same
factorisation, ``u_j = u_hat_j - r_j * sum_ancestors (u_a - u_hat_a) + z / sqrt(D_j)``, so the
integral over each node, given its ancestors, is centred on the conditional mode of the
Gaussian (Laplace) approximation with its conditional SD; the integral is then evaluated
level by level (the inner integrals are products over children), as in Rabe-Hesketh,
Skrondal & Pickles (2005).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy import special

from rp2pr_eval.errors import DataError
from rp2pr_eval.models.glmm_data import GlmmData, mv, tmv
from rp2pr_eval.models.glmm_likelihood import EXP_CLIP

__all__ = ["Adaptation", "Factor", "LaplaceObjective", "NestedAghqObjective", "Tree", "build_tree", "factorize",
           "inverse_diagonals", "schur_information", "solve"]


@dataclass(frozen=True, slots=True)
class Tree:
    """Nested grouping: ``n_nodes[l]`` nodes at level ``l`` (outermost first).

    ``parent[l]`` (``l >= 1``) maps each node of level ``l`` to its parent at level ``l - 1``;
    ``leaf_anc[l]`` maps each leaf (deepest node) to its ancestor at level ``l``;
    ``labels[l]`` are the group labels of level ``l``; ``top_of[l]`` maps each node of level
    ``l`` to its top-level ancestor.
    """

    n_nodes: tuple[int, ...]
    parent: tuple[np.ndarray | None, ...]
    leaf_anc: tuple[np.ndarray, ...]
    labels: tuple[np.ndarray, ...]
    top_of: tuple[np.ndarray, ...]

    @property
    def depth(self) -> int:
        return len(self.n_nodes)

    def up(self, values: np.ndarray, level: int) -> np.ndarray:
        """Sum node values of ``level`` into their parents (level - 1)."""
        return np.bincount(self.parent[level], weights=values, minlength=self.n_nodes[level - 1])

    def from_leaves(self, leaf_values: np.ndarray, level: int) -> np.ndarray:
        """Sum leaf values into their ancestors at ``level``."""
        if level == self.depth - 1:
            return leaf_values
        return np.bincount(self.leaf_anc[level], weights=leaf_values, minlength=self.n_nodes[level])

    def to_leaves(self, node_values: list[np.ndarray]) -> np.ndarray:
        """Sum over each leaf's chain of the node values (one array per level)."""
        out = np.zeros(self.n_nodes[-1])
        for lev, v in enumerate(node_values):
            out += v[self.leaf_anc[lev]]
        return out


def build_tree(codes: list[np.ndarray], labels: list[np.ndarray], terms: list[str]) -> tuple[Tree, np.ndarray]:
    """Tree from per-row integer codes per level (outermost first); returns it and the leaf code per row.

    Raises DataError when a group of an inner term lies in more than one group of an outer
    term (the terms are crossed, not nested).
    """
    depth = len(codes)
    n_nodes = tuple(len(lab) for lab in labels)
    parent: list[np.ndarray | None] = [None]
    for lev in range(1, depth):
        child, par = codes[lev], codes[lev - 1]
        p = np.full(n_nodes[lev], -1, dtype=np.int64)
        p[child] = par
        clash = p[child] != par
        if clash.any():
            i = int(np.flatnonzero(clash)[0])
            raise DataError(
                f"random-effect terms are not nested: group {labels[lev][child[i]]!r} of {terms[lev]!r} "
                f"lies in more than one group of {terms[lev - 1]!r} (e.g. {labels[lev - 1][p[child[i]]]!r} "
                f"and {labels[lev - 1][par[i]]!r}); only nested terms (each inside one group of the term "
                "before it) are supported"
            )
        parent.append(p)
    leaf_anc = [np.arange(n_nodes[-1])]
    for lev in range(depth - 1, 0, -1):
        leaf_anc.insert(0, parent[lev][leaf_anc[0]])
    top_of = [np.arange(n_nodes[0])]
    for lev in range(1, depth):
        top_of.append(top_of[lev - 1][parent[lev]])
    tree = Tree(n_nodes=n_nodes, parent=tuple(parent), leaf_anc=tuple(leaf_anc), labels=tuple(labels),
                top_of=tuple(top_of))
    return tree, codes[-1]


@dataclass(frozen=True, slots=True)
class Factor:
    """Tree LDL' factor of H: pivots ``D`` and multipliers ``r`` per level."""

    D: list[np.ndarray]
    r: list[np.ndarray]


def factorize(tree: Tree, W_leaf: np.ndarray, s: np.ndarray) -> Factor:
    m = tree.depth
    D: list[np.ndarray] = [np.empty(0)] * m
    r: list[np.ndarray] = [np.empty(0)] * m
    Wt = W_leaf
    for lev in range(m - 1, -1, -1):
        D[lev] = Wt + s[lev]
        r[lev] = Wt / D[lev]
        if lev > 0:
            Wt = tree.up(Wt * s[lev] / D[lev], lev)
    return Factor(D=D, r=r)


def solve(tree: Tree, f: Factor, g: list[np.ndarray]) -> list[np.ndarray]:
    """x = H^-1 g (g and x: one array per level)."""
    m = tree.depth
    gt: list[np.ndarray] = [np.empty(0)] * m
    passed = None
    for lev in range(m - 1, -1, -1):
        gt[lev] = g[lev] - passed if passed is not None else g[lev].copy()
        P = f.r[lev] * gt[lev] + (passed if passed is not None else 0.0)
        passed = tree.up(P, lev) if lev > 0 else None
    x: list[np.ndarray] = [np.empty(0)] * m
    x[0] = gt[0] / f.D[0]
    A = np.zeros(tree.n_nodes[0])
    for lev in range(1, m):
        A = (A + x[lev - 1])[tree.parent[lev]]
        x[lev] = gt[lev] / f.D[lev] - f.r[lev] * A
    return x


def inverse_diagonals(tree: Tree, f: Factor) -> tuple[list[np.ndarray], np.ndarray]:
    """diag(H^-1) per level and the leaf leverages z' H^-1 z."""
    Q = [1.0 / f.D[0]]
    hinv = [1.0 / f.D[0]]
    for lev in range(1, tree.depth):
        Qp = Q[lev - 1][tree.parent[lev]]
        Q.append(1.0 / f.D[lev] + (1.0 - f.r[lev]) ** 2 * Qp)
        hinv.append(1.0 / f.D[lev] + f.r[lev] ** 2 * Qp)
    return hinv, Q[-1]


def schur_information(tree: Tree, d: GlmmData, fac: Factor, w: np.ndarray, XtWX: np.ndarray) -> np.ndarray:
    """X'WX - (Z'WX)' H^-1 (Z'WX): the information for beta with the random effects profiled out (PIRLS)."""
    idx, ptr = d.S.indices, d.S.indptr
    C_leaf = np.asarray(sp.csr_matrix((w[idx], idx, ptr), shape=d.S.shape) @ d.X)
    C = [np.column_stack([tree.from_leaves(C_leaf[:, c], lv) for c in range(C_leaf.shape[1])])
         for lv in range(tree.depth)]
    out = XtWX.copy()
    for c in range(C_leaf.shape[1]):
        x = solve(tree, fac, [C[lv][:, c] for lv in range(tree.depth)])
        out[:, c] -= sum(C[lv].T @ x[lv] for lv in range(tree.depth))
    return 0.5 * (out + out.T)


class LaplaceObjective:
    """Laplace-approximate marginal log-likelihood over theta = (beta, log sigma_1..m), with its exact gradient."""

    def __init__(self, d: GlmmData, tree: Tree) -> None:
        self.d, self.tree = d, tree
        self.k, self.m = d.X.shape[1], tree.depth
        self.u = [np.zeros(n) for n in tree.n_nodes]  # warm start of the conditional modes
        self.seg_succ = d.S @ d.succ
        self.n_eval = 0
        self.n_pirls = 0

    def copy(self) -> "LaplaceObjective":
        new = LaplaceObjective.__new__(LaplaceObjective)
        new.d, new.tree, new.k, new.m, new.seg_succ = self.d, self.tree, self.k, self.m, self.seg_succ
        new.u = [v.copy() for v in self.u]
        new.n_eval = new.n_pirls = 0
        return new

    def _rows(self, e: np.ndarray, off_leaf: np.ndarray, with_f: bool):
        d = self.d
        t = e + off_leaf[d.gidx]
        f = float(np.einsum("i,i->", d.succ, t)) if with_f else 0.0  # einsum: threaded BLAS dot is slow on shared cores
        np.minimum(t, EXP_CLIP, out=t)
        np.exp(t, out=t)
        t += 1.0  # 1 + e^eta
        q = 1.0 / t  # 1 - p
        if with_f:
            np.log(t, out=t)  # softplus(eta)
            f -= float(np.einsum("i,i->", d.trials, t))
        res = self.seg_succ - d.S @ (d.trials * (1.0 - q))
        w = d.trials * q * (1.0 - q)
        return f, res, w, q

    def modes(self, e: np.ndarray, s: np.ndarray, u0: list[np.ndarray] | None = None):
        """Conditional modes by Newton's method on the penalised log-likelihood (concave), step halving."""
        tree, d = self.tree, self.d
        u = [v.copy() for v in (self.u if u0 is None else u0)]

        def penalised(u_):
            off = tree.to_leaves(u_)
            f, res, w, q = self._rows(e, off, True)
            pen = 0.5 * sum(float(s[lv] * (u_[lv] @ u_[lv])) for lv in range(self.m))
            return f - pen, res, w, q

        obj, res, w, q = penalised(u)
        for _ in range(100):
            self.n_pirls += 1
            fac = factorize(tree, d.S @ w, s)
            g = [tree.from_leaves(res, lv) - s[lv] * u[lv] for lv in range(self.m)]
            step = solve(tree, fac, g)
            dec = sum(float(a @ b) for a, b in zip(g, step))
            if dec < 1e-20 * max(1.0, abs(obj)) or dec < 1e-18:
                break
            t = 1.0
            for _half in range(50):
                u_new = [a + t * b for a, b in zip(u, step)]
                out = penalised(u_new)
                if out[0] >= obj - 1e-12 * abs(obj):
                    break
                t *= 0.5
            u = u_new
            obj, res, w, q = out
            if dec < 1e-12:
                break
        fac = factorize(tree, d.S @ w, s)
        return u, obj, fac, w, q

    def __call__(self, theta: np.ndarray, grad: bool = True, keep: bool = True, u0=None):
        self.n_eval += 1
        d, tree, k, m = self.d, self.tree, self.k, self.m
        beta, tau = theta[:k], np.asarray(theta[k:], dtype=float)
        s = np.exp(-2.0 * tau)
        e = mv(d.X, beta)
        u, pen_obj, fac, w, q = self.modes(e, s, u0)
        if keep:
            self.u = u
        q_l = np.array(tree.n_nodes, dtype=float)
        logdet = sum(float(np.sum(np.log(D))) for D in fac.D)
        ll = pen_obj - float(q_l @ tau) - 0.5 * logdet + d.const
        if not grad:
            return ll
        hinv, v_leaf = inverse_diagonals(tree, fac)
        p = 1.0 - q
        a = w * (1.0 - 2.0 * p) * v_leaf[d.gidx]
        a_leaf = d.S @ a
        mvec = solve(tree, fac, [tree.from_leaves(a_leaf, lv) for lv in range(m)])
        M_leaf = tree.to_leaves(mvec)
        # X'(y - n p) - (X'a - (Z'WX)' m) / 2, with (Z'WX)' m = X' (w * (Z m)): one pass over X
        g_beta = tmv(d.X, d.succ - d.trials * p - 0.5 * a + 0.5 * w * M_leaf[d.gidx])
        g_tau = np.array([
            s[lv] * float(np.sum(u[lv] ** 2 + hinv[lv] - mvec[lv] * u[lv])) - q_l[lv] for lv in range(m)
        ])
        return ll, np.concatenate([g_beta, g_tau])

    def top_scores(self, theta: np.ndarray) -> np.ndarray:
        """Per-top-level-group gradient contributions (rows: top groups), from the same formulas."""
        d, tree, k, m = self.d, self.tree, self.k, self.m
        beta, tau = theta[:k], np.asarray(theta[k:], dtype=float)
        s = np.exp(-2.0 * tau)
        e = mv(d.X, beta)
        u, _, fac, w, q = self.modes(e, s)
        hinv, v_leaf = inverse_diagonals(tree, fac)
        p = 1.0 - q
        a = w * (1.0 - 2.0 * p) * v_leaf[d.gidx]
        mvec = solve(tree, fac, [tree.from_leaves(d.S @ a, lv) for lv in range(m)])
        M_leaf = tree.to_leaves(mvec)
        top_leaf = tree.leaf_anc[0]
        top_row = top_leaf[d.gidx]
        G = tree.n_nodes[0]
        rowpart = d.X * ((d.succ - d.trials * p) - 0.5 * a)[:, None]
        to_top = sp.csr_matrix((np.ones(len(top_row)), (top_row, np.arange(len(top_row)))), shape=(G, len(top_row)))
        sc_beta = np.asarray(to_top @ rowpart)
        idx, ptr = d.S.indices, d.S.indptr
        A_leaf = np.asarray(sp.csr_matrix((w[idx], idx, ptr), shape=d.S.shape) @ d.X)
        leaf_to_top = sp.csr_matrix((np.ones(len(top_leaf)), (top_leaf, np.arange(len(top_leaf)))),
                                    shape=(G, len(top_leaf)))
        sc_beta += np.asarray(leaf_to_top @ (0.5 * M_leaf[:, None] * A_leaf))
        sc_tau = np.zeros((G, m))
        for lv in range(m):
            node_top = tree.top_of[lv]
            contrib = s[lv] * (u[lv] ** 2 + hinv[lv] - mvec[lv] * u[lv]) - 1.0
            sc_tau[:, lv] = np.bincount(node_top, weights=contrib, minlength=G)
        return np.hstack([sc_beta, sc_tau])


@dataclass(frozen=True, slots=True)
class Adaptation:
    """Where the nested quadrature is centred and scaled: modes and tree factor at some theta."""

    u: list[np.ndarray]
    fac: Factor


class NestedAghqObjective:
    """Nested adaptive Gauss–Hermite log-likelihood, nodes fixed by an :class:`Adaptation`.

    ``n_quad[l]`` nodes at level ``l``; a leaf's rows are evaluated at all
    ``prod(n_quad)`` paths of node choices along its chain. The gradient is the exact
    gradient of the quadrature sum with the node positions held fixed (posterior-weighted
    complete-data scores); :func:`rp2pr_eval.models.glmm_nested.fit_glmm_nested` re-adapts
    the nodes at every iterate.
    """

    _CHUNK_ELEMENTS = 1 << 18

    def __init__(self, d: GlmmData, tree: Tree, n_quad: tuple[int, ...]) -> None:
        self.d, self.tree, self.n_quad = d, tree, n_quad
        self.k, self.m = d.X.shape[1], tree.depth
        self.rules = []
        for K in n_quad:
            z, wq = np.polynomial.hermite_e.hermegauss(K)
            self.rules.append((z, np.log(wq / math.sqrt(2.0 * math.pi)) + 0.5 * z * z))
        self.n_paths = [int(np.prod(n_quad[: lv + 1])) for lv in range(self.m)]
        starts = np.flatnonzero(np.r_[True, d.gidx[1:] != d.gidx[:-1]])
        self.leaf_start = starts
        ends = np.r_[starts[1:], len(d.gidx)]
        per = max(1, self._CHUNK_ELEMENTS // self.n_paths[-1])
        blocks, a = [], 0
        while a < len(starts):  # blocks of whole leaves, about `per` rows each
            b = a
            while b < len(starts) and (ends[b] - starts[a] <= per or b == a):
                b += 1
            blocks.append((a, b, int(starts[a]), int(ends[b - 1])))
            a = b
        self.blocks = blocks
        self.children = [None] + [
            sp.csr_matrix((np.ones(tree.n_nodes[lv]), (tree.parent[lv], np.arange(tree.n_nodes[lv]))),
                          shape=(tree.n_nodes[lv - 1], tree.n_nodes[lv]))
            for lv in range(1, self.m)
        ]
        self.seg_succ = d.S @ d.succ
        self.n_eval = 0

    def _positions(self, ad: Adaptation):
        """Node positions U[l] (nodes x paths) and leaf offsets (sum of the chain's U)."""
        tree, fac = self.tree, ad.fac
        U, cum, off = [], None, None
        for lv in range(self.m):
            z, _ = self.rules[lv]
            sd = 1.0 / np.sqrt(fac.D[lv])
            if lv == 0:
                Ul = ad.u[0][:, None] + sd[:, None] * z[None, :]
                cum = Ul - ad.u[0][:, None]
                off = Ul
            else:
                par = tree.parent[lv]
                cp = cum[par]
                c = ad.u[lv][:, None] - fac.r[lv][:, None] * cp
                Ul = (c[:, :, None] + (sd[:, None] * z[None, :])[:, None, :]).reshape(len(par), -1)
                cum = (cp[:, :, None] + (Ul.reshape(len(par), cp.shape[1], -1) - ad.u[lv][:, None, None])).reshape(
                    len(par), -1)
                off = (off[par][:, :, None] + Ul.reshape(len(par), cp.shape[1], -1)).reshape(len(par), -1)
            U.append(Ul)
        return U, off

    def _leaf_points(self, off: np.ndarray):
        """Where the rows are evaluated: every path offset, or Chebyshev points and interpolation weights.

        A leaf's log-likelihood is an analytic function of its offset o,
        g(o) = sum_i [y_i (e_i + o) - n_i log(1 + e^(e_i + o))], with singularities at distance pi
        from the real line. On the leaf's interval [a, b] of path offsets (half-width r), interpolation
        at N Chebyshev points errs by about rho^-N, rho = pi / r + sqrt((pi / r)^2 + 1) (Trefethen 2013,
        Thm 8.2); N is chosen so that rho^-N <= 1e-15 (at most 32). When N is not below the number
        of paths, the rows are evaluated at every path (exact). Returns the points (leaves x N) and
        the barycentric interpolation matrix B (leaves x paths x N), or (off, None).
        """
        P = off.shape[1]
        lo, hi = off.min(axis=1), off.max(axis=1)
        half = np.maximum(0.5 * (hi - lo), 1e-3)
        r = float(half.max())
        rho = math.pi / r + math.sqrt((math.pi / r) ** 2 + 1.0)
        N = max(6, int(math.ceil(15.0 * math.log(10.0) / math.log(rho))))
        if N >= P or N > 32:
            return off, None
        j = np.arange(N)
        x = np.cos(np.pi * (j + 0.5) / N)
        bw = (-1.0) ** j * np.sin(np.pi * (j + 0.5) / N)
        mid = 0.5 * (hi + lo)
        pts = mid[:, None] + half[:, None] * x[None, :]
        t = (off - mid[:, None]) / half[:, None]  # in [-1, 1]
        diff = t[:, :, None] - x[None, None, :]
        diff = np.where(np.abs(diff) < 1e-14, 1e-14, diff)
        B = bw[None, None, :] / diff
        B /= B.sum(axis=2, keepdims=True)
        return pts, B

    def __call__(self, theta: np.ndarray, ad: Adaptation, grad: bool = True):
        self.n_eval += 1
        d, tree, k, m = self.d, self.tree, self.k, self.m
        beta, tau = theta[:k], np.asarray(theta[k:], dtype=float)
        s = np.exp(-2.0 * tau)
        e = mv(d.X, beta)
        U, off = self._positions(ad)
        pts, B = self._leaf_points(off)
        LLp = np.empty(pts.shape)
        keep_p = B is not None and grad
        Pq = np.empty((len(e), pts.shape[1])) if keep_p else None
        ye = d.S @ (d.succ * e)
        for a, b, ra, rb in self.blocks:
            E = e[ra:rb, None] + pts[d.gidx[ra:rb]]
            np.minimum(E, EXP_CLIP, out=E)
            np.exp(E, out=E)
            E += 1.0
            if keep_p:
                np.divide(1.0, E, out=Pq[ra:rb])  # 1 - p, kept for the gradient
            np.log(E, out=E)  # softplus
            if not d.bernoulli:
                E *= d.trials[ra:rb, None]
            LLp[a:b] = np.add.reduceat(E, self.leaf_start[a:b] - ra, axis=0)
        LLp = ye[:, None] + self.seg_succ[:, None] * pts - LLp
        LL = LLp if B is None else np.einsum("lpc,lc->lp", B, LLp)
        # node log-integrands, bottom-up
        A: list[np.ndarray] = [np.empty(0)] * m
        lse_child = None
        for lv in range(m - 1, -1, -1):
            _, logw = self.rules[lv]
            Ul = U[lv]
            base = LL if lv == m - 1 else lse_child
            npre = self.n_paths[lv - 1] if lv > 0 else 1
            Kl = self.n_quad[lv]
            Al = base + 0.5 * math.log(s[lv]) - 0.5 * s[lv] * Ul * Ul - 0.5 * np.log(ad.fac.D[lv])[:, None]
            Al = (Al.reshape(len(Ul), npre, Kl) + logw[None, None, :])
            A[lv] = Al
            lse = special.logsumexp(Al, axis=2)  # (nodes, npre)
            if lv > 0:
                lse_child = np.asarray(self.children[lv] @ lse)
            else:
                ll = float(np.sum(lse)) + d.const
        if not grad:
            return ll
        # posterior path weights, top-down
        Pi = [np.empty(0)] * m
        for lv in range(m):
            Al = A[lv]
            cond = np.exp(Al - special.logsumexp(Al, axis=2, keepdims=True))
            if lv == 0:
                Pi[0] = cond.reshape(len(Al), -1)
            else:
                Pi[lv] = (Pi[lv - 1][tree.parent[lv]][:, :, None] * cond).reshape(len(Al), -1)
        g_tau = np.array([float(np.sum(Pi[lv] * (s[lv] * U[lv] * U[lv] - 1.0))) for lv in range(m)])
        pbar = np.empty(len(e))
        PL = Pi[-1]
        if B is None:  # rows at every path
            for a, b, ra, rb in self.blocks:
                E = e[ra:rb, None] + pts[d.gidx[ra:rb]]
                pbar[ra:rb] = np.einsum("ij,ij->i", special.expit(E), PL[d.gidx[ra:rb]])
        else:  # rows at the interpolation points, path weights carried to them
            Wc = np.einsum("lp,lpc->lc", PL, B)
            pbar = 1.0 - np.einsum("ij,ij->i", Pq, Wc[d.gidx])
        g_beta = tmv(d.X, d.succ - d.trials * pbar)
        return ll, np.concatenate([g_beta, g_tau])
