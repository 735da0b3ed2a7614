"""Method-of-moments (ANOVA) variance components from unit-aggregated data.

Model: ``y = C β + Σ_m Z_m b_m + e`` with fixed effects ``C`` and random
intercepts ``b_m ~ (0, σ²_m)`` for each grouping ``m`` (nested or crossed),
``e ~ (0, σ²_e)``, everything independent.  Every column of ``C`` and every
grouping is constant within *units* (e.g. a cluster × period cell), so the
estimator needs only per-unit sizes ``n_u``, sums ``Σy`` and sums of squares
``Σy²`` — for a 0/1 outcome ``Σy² = Σy``, so a patient table of any size
reduces to a few hundred numbers.

Estimator (Henderson's method with the fixed effects swept out exactly;
Searle, Casella & McCulloch 1992, ch. 5): with ``M_C`` the annihilator of
``C`` and ``P_m`` the projection on grouping ``m``'s indicators, the quadratic
forms ``Q_0 = y'M_C y`` and ``Q_m = ‖P_m M_C y‖²`` have expectations linear in
the components,

.. math:: E Q_k = σ²_e \\operatorname{tr}(A_k) + Σ_m σ²_m \\operatorname{tr}(Z_m' A_k Z_m),

with ``A_0 = M_C``, ``A_k = M_C P_k M_C``.  Equating ``Q`` to its expectation
gives one linear system whose solution is unbiased for the components (it may
be negative).  With one grouping and ``C`` a column of ones this is the
classical one-way ANOVA estimator for unequal cluster sizes (Searle 1971;
for binary data Fleiss 1981 ch. 13, ``ICCbin::iccbin(method = "aov")``); with
nested groupings it is the unbalanced nested ANOVA.  All traces are computed in
the unit space with ``W = diag(n_u)``: for unit-constant subspaces the patient
level projections are ``Π_H = H (H'WH)⁺ H'W`` on unit vectors (weighted group
means for a grouping, so no ``U x U`` matrix is formed), and ``tr(Z' A Z)``
is a weighted Frobenius norm.

Written by hand: statsmodels' ``MixedLM`` estimates variance components by
(RE)ML on patient rows (minutes at 40,000 rows with nested groupings) and no
maintained Python package provides the unbalanced ANOVA estimator.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from rp2pr_eval.errors import DataError

__all__ = ["VarianceComponents", "moment_variance_components"]


@dataclass(frozen=True, slots=True)
class VarianceComponents:
    """Moment estimates of the variance components (``components`` keyed by grouping name and ``"residual"``).

    ``components`` are the unbiased solutions (may be negative); use
    :meth:`share` for proportions of the total with negative components set to 0.
    """

    components: dict
    n_obs: int
    n_groups: dict

    def truncated(self) -> dict:
        """Components with negative values set to 0 (the usual convention for ICCs)."""
        return {k: max(float(v), 0.0) for k, v in self.components.items()}

    def share(self, names) -> float:
        """``Σ_{m ∈ names} σ²_m / Σ_all σ²`` from the truncated components (NaN if the total is 0)."""
        comp = self.truncated()
        total = sum(comp.values())
        if total <= 0.0:
            return float("nan")
        return float(sum(comp[n] for n in names) / total)


class _GroupProjector:
    """``Π_G V`` for an indicator grouping: W-weighted group means, broadcast back to units (no U x U matrix)."""

    def __init__(self, codes, w):
        _, inv = np.unique(codes, return_inverse=True)
        self.codes = inv.reshape(-1)
        self.k = int(self.codes.max()) + 1
        self.w = w
        self.wg = np.bincount(self.codes, weights=w, minlength=self.k)

    def __call__(self, V):
        V2 = V[:, None] if V.ndim == 1 else V
        sums = np.zeros((self.k, V2.shape[1]))
        np.add.at(sums, self.codes, self.w[:, None] * V2)
        out = (sums / self.wg[:, None])[self.codes]
        return out[:, 0] if V.ndim == 1 else out

    def indicators(self):
        Z = np.zeros((len(self.codes), self.k))
        Z[np.arange(len(self.codes)), self.codes] = 1.0
        return Z


class _FixedProjector:
    """``Π_C V = C (C'WC)⁺ C'W V`` for a fixed-effect design with few columns."""

    def __init__(self, C, w):
        self.C, self.w = C, w
        self.G = np.linalg.pinv(np.einsum("ui,u,uj->ij", C, w, C), hermitian=True)
        self.rank = int(np.linalg.matrix_rank(np.einsum("ui,u,uj->ij", C, w, C), hermitian=True))

    def __call__(self, V):
        V2 = V[:, None] if V.ndim == 1 else V
        coef = self.G @ np.einsum("vj,v,vc->jc", self.C, self.w, V2)     # (q, c)
        out = np.einsum("uj,jc->uc", self.C, coef)
        return out[:, 0] if V.ndim == 1 else out

    def trace_with(self, proj) -> float:
        """``tr(Π_proj Π_C) = tr((C'WC)⁺ C'W Π_proj C)``."""
        PC = proj(self.C)
        return float(np.trace(self.G @ np.einsum("uj,u,ui->ji", self.C, self.w, PC)))


def moment_variance_components(
    n,
    total,
    total_sq,
    *,
    fixed,
    groupings: Mapping[str, np.ndarray],
) -> VarianceComponents:
    r"""ANOVA (method-of-moments) estimates of random-intercept variance components from unit summaries.

    Parameters
    ----------
    n, total, total_sq : array_like, shape (U,)
        Per unit: number of observations, ``Σ y`` and ``Σ y²``.
    fixed : array_like, shape (U, q)
        Fixed-effect design, constant within units (e.g. indicators of the
        arm × period cells); it need not have full rank.
    groupings : mapping of name to array_like, shape (U,)
        Labels of each random-intercept grouping per unit (a grouping must be
        constant within a unit: units are its finest level).

    Returns
    -------
    VarianceComponents

    Raises
    ------
    DataError
        Non-positive sizes, non-finite sums, fewer than 2 groups in a grouping,
        or a singular system (a grouping collinear with the fixed effects or
        with another grouping).

    Notes
    -----
    See the module docstring.  R: for one grouping and ``fixed`` a column of
    ones, ``summary(aov(y ~ factor(g)))`` gives the mean squares and
    ``(MSB - MSW) / n0`` the cluster component, ``n0 = (N - Σn_g²/N)/(k-1)``.

    References
    ----------
    Searle SR, Casella G, McCulloch CE (1992). Variance Components. Wiley, ch. 5.
    Fleiss JL (1981). Statistical Methods for Rates and Proportions, 2nd ed., ch. 13.
    """
    n = np.asarray(n, dtype=float)
    s = np.asarray(total, dtype=float)
    ss = np.asarray(total_sq, dtype=float)
    if n.ndim != 1 or s.shape != n.shape or ss.shape != n.shape:
        raise DataError(f"n, total and total_sq must be 1-D arrays of one length; got {n.shape}, {s.shape}, {ss.shape}")
    if not (np.all(np.isfinite(n)) and np.all(n > 0)):
        raise DataError("n: every unit needs a positive number of observations")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(ss))):
        raise DataError("total, total_sq: missing or non-finite unit sums")
    C = np.asarray(fixed, dtype=float)
    if C.ndim == 1:
        C = C[:, None]
    if C.shape[0] != len(n):
        raise DataError(f"fixed: expected {len(n)} rows (one per unit), got {C.shape[0]}")
    if not groupings:
        raise DataError("groupings: at least one random-intercept grouping is needed")
    U, N = len(n), float(n.sum())
    ybar = s / n
    Pc = _FixedProjector(C, n)
    names = list(groupings)
    Pg, Z = {}, {}
    for name in names:
        codes = np.asarray(groupings[name])
        if codes.shape != (U,):
            raise DataError(f"groupings[{name!r}]: expected one label per unit ({U}), got shape {codes.shape}")
        Pg[name] = _GroupProjector(codes, n)
        if Pg[name].k < 2:
            raise DataError(f"groupings[{name!r}]: a variance component needs at least 2 groups")
        Z[name] = Pg[name].indicators()

    def wnorm2(v):
        v2 = v[:, None] if v.ndim == 1 else v
        return float(np.einsum("u,uc,uc->", n, v2, v2))

    r = ybar - Pc(ybar)                                  # M_C y, unit part
    McZ = {m: Z[m] - Pc(Z[m]) for m in names}
    # Q_0 = y'M_C y = Σy² - ‖P_C y‖²;  Q_k = ‖P_k M_C y‖² = ‖Π_k r‖²_W
    q = [float(ss.sum()) - wnorm2(Pc(ybar))] + [wnorm2(Pg[k](r)) for k in names]
    T = np.zeros((len(names) + 1, len(names) + 1))
    T[0, 0] = N - Pc.rank
    for j, m in enumerate(names, start=1):
        T[0, j] = wnorm2(McZ[m])
    for i, k in enumerate(names, start=1):
        T[i, 0] = Pg[k].k - Pc.trace_with(Pg[k])
        for j, m in enumerate(names, start=1):
            T[i, j] = wnorm2(Pg[k](McZ[m]))
    if np.linalg.cond(T) > 1e12:
        raise DataError("the moment equations are singular: a grouping is collinear with the fixed effects "
                        f"or with another grouping ({', '.join(names)})")
    sol = np.linalg.solve(T, np.asarray(q))
    comps = {m: float(sol[j]) for j, m in enumerate(names, start=1)}
    comps["residual"] = float(sol[0])
    return VarianceComponents(components=comps, n_obs=int(round(N)),
                              n_groups={m: Pg[m].k for m in names})
