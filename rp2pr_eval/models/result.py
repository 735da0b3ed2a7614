"""The one result shape every general model returns: :class:`ModelResult`.

The attributes an analyst knows from statsmodels and linearmodels — ``params``, ``bse``,
``tvalues``, ``pvalues``, ``conf_int()``, ``cov_params``, ``nobs``, ``summary()`` — indexed by the
formula's term names (``treated:post``), plus ``df`` (degrees of freedom of each coefficient's
reference t distribution, ``inf`` for normal), ``random_sd`` (mixed models: ``{term: SD}``) and
``to_frame()`` (one tidy row per coefficient). Resampling tests (wild bootstrap, randomisation)
return the same shape for their one coefficient, with the p-value and interval they computed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from rp2pr_eval._options import check_level
from rp2pr_eval.models.render import format_coefficients, render_table

__all__ = ["ModelResult"]


def _readonly(a, shape=None) -> np.ndarray:
    out = np.array(a, dtype=float)
    if shape is not None:
        out = out.reshape(shape)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, slots=True, eq=False)
class ModelResult:
    """A fitted general model (frozen; equality is identity, as the arrays have no single truth value).

    Parameters
    ----------
    model : str
        The function that fitted it, e.g. ``"cluster_ols"``.
    names : tuple of str
        Coefficient names (the formula's term names).
    coef, se : ndarray, shape (k,)
        Estimates and standard errors.
    vcov : ndarray, shape (k, k)
        Covariance matrix of the estimates (of the type ``vcov_type``).
    dof : ndarray, shape (k,)
        Degrees of freedom of each coefficient's reference t distribution (``inf``: normal).
    nobs : int
        Rows used.
    vcov_type : str
        What ``vcov`` is, e.g. ``"CR2"``, ``"mancl_derouen"``, ``"observed information"``.
    n_groups : int or None
        Clusters or groups (``None`` when the model has none).
    formula : str or None
        The formula (``None`` when fitted from arrays).
    level : float
        Default confidence level of :meth:`conf_int` and :meth:`to_frame`.
    random_sd : dict or None
        Mixed models: SD of each random-effect term, ``{term: SD}`` (e.g. ``{"herd": 0.64}``).
    pvalue_override, ci_override, tvalue_override : ndarray or None
        Resampling results: the p-values, ``(k, 2)`` interval at ``level`` and test statistics
        (e.g. against a null value other than 0) the method computed (then ``conf_int`` is
        available at ``level`` only).
    info : dict
        Model-specific facts (log-likelihood, convergence, working correlation, n_dropped …).
    fit : object
        The engine's own fit (e.g. :class:`~rp2pr_eval.models.linear.LinearFit`), for its extra
        methods; not part of the shape.
    """

    model: str
    names: tuple[str, ...]
    coef: np.ndarray
    se: np.ndarray
    vcov: np.ndarray
    dof: np.ndarray
    nobs: int
    vcov_type: str
    n_groups: int | None = None
    formula: str | None = None
    level: float = 0.95
    random_sd: dict[str, float] | None = None
    pvalue_override: np.ndarray | None = field(default=None, repr=False)
    ci_override: np.ndarray | None = field(default=None, repr=False)
    tvalue_override: np.ndarray | None = field(default=None, repr=False)
    info: dict[str, Any] = field(default_factory=dict, repr=False)
    fit: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        k = len(self.names)
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "coef", _readonly(self.coef, (k,)))
        object.__setattr__(self, "se", _readonly(self.se, (k,)))
        object.__setattr__(self, "vcov", _readonly(self.vcov, (k, k)))
        object.__setattr__(self, "dof", _readonly(np.broadcast_to(np.asarray(self.dof, dtype=float), (k,))))
        if self.pvalue_override is not None:
            object.__setattr__(self, "pvalue_override", _readonly(self.pvalue_override, (k,)))
        if self.ci_override is not None:
            object.__setattr__(self, "ci_override", _readonly(self.ci_override, (k, 2)))
        if self.tvalue_override is not None:
            object.__setattr__(self, "tvalue_override", _readonly(self.tvalue_override, (k,)))
        if self.random_sd is not None:
            object.__setattr__(self, "random_sd", {str(t): float(v) for t, v in self.random_sd.items()})
        check_level(self.level)

    # ------------------------------------------------------------------ the shared shape
    @property
    def params(self) -> pd.Series:
        """Estimates, indexed by term name."""
        return pd.Series(self.coef, index=list(self.names), name="params")

    @property
    def bse(self) -> pd.Series:
        """Standard errors, indexed by term name."""
        return pd.Series(self.se, index=list(self.names), name="bse")

    @property
    def df(self) -> pd.Series:
        """Degrees of freedom of each coefficient's reference t distribution (``inf``: normal)."""
        return pd.Series(self.dof, index=list(self.names), name="df")

    @property
    def tvalues(self) -> pd.Series:
        """Wald statistics ``params / bse`` (t or z by ``df``), or the resampling test's statistic."""
        if self.tvalue_override is not None:
            return pd.Series(self.tvalue_override, index=list(self.names), name="tvalues")
        with np.errstate(divide="ignore", invalid="ignore"):
            return pd.Series(self.coef / self.se, index=list(self.names), name="tvalues")

    @property
    def pvalues(self) -> pd.Series:
        """Two-sided p-values (t with ``df``, normal where ``df`` is infinite, or the resampling p-value)."""
        if self.pvalue_override is not None:
            return pd.Series(self.pvalue_override, index=list(self.names), name="pvalues")
        t = np.abs(self.tvalues.to_numpy())
        p = np.where(np.isinf(self.dof), 2 * stats.norm.sf(t), 2 * stats.t.sf(t, np.where(np.isinf(self.dof), 1.0,
                                                                                             self.dof)))
        return pd.Series(p, index=list(self.names), name="pvalues")

    @property
    def cov_params(self) -> pd.DataFrame:
        """Covariance matrix of the estimates, rows and columns labelled by term."""
        return pd.DataFrame(self.vcov, index=list(self.names), columns=list(self.names))

    def conf_int(self, level: float | None = None) -> pd.DataFrame:
        """Confidence intervals, columns ``ci_low`` and ``ci_high``, one row per term.

        ``estimate ± q · se`` with ``q`` the ``(1 + level)/2`` quantile of t(``df``) (normal when
        ``df`` is infinite); resampling results give the interval they computed, at their ``level``.
        """
        level = self.level if level is None else level
        check_level(level)
        if self.ci_override is not None:
            if level != self.level:
                raise ValueError(f"{self.model}: the interval was computed at level={self.level}; "
                                 "refit with level=... for another")
            ci = self.ci_override
        else:
            dof = np.where(np.isinf(self.dof), np.inf, self.dof)
            q = np.where(np.isinf(dof), stats.norm.ppf(0.5 + level / 2),
                         stats.t.ppf(0.5 + level / 2, np.where(np.isinf(dof), 1.0, dof)))
            ci = np.column_stack([self.coef - q * self.se, self.coef + q * self.se])
        return pd.DataFrame(ci, index=list(self.names), columns=["ci_low", "ci_high"])

    def to_frame(self, level: float | None = None) -> pd.DataFrame:
        """One tidy row per coefficient: ``term, estimate, se, statistic, df, p_value, ci_low, ci_high``."""
        ci = self.conf_int(level)
        return pd.DataFrame({
            "term": list(self.names), "estimate": self.coef, "se": self.se,
            "statistic": self.tvalues.to_numpy(), "df": self.dof, "p_value": self.pvalues.to_numpy(),
            "ci_low": ci["ci_low"].to_numpy(), "ci_high": ci["ci_high"].to_numpy(),
        })

    # ------------------------------------------------------------------ display
    def _title(self) -> str:
        groups = f", {self.n_groups} groups/clusters" if self.n_groups is not None else ""
        head = f"{self.model}: {self.formula}" if self.formula else self.model
        text = f"{head} — {self.nobs} obs{groups}, vcov {self.vcov_type}"
        if self.random_sd:
            text += "; random SD " + ", ".join(f"{t} {v:.4g}" for t, v in self.random_sd.items())
        return text

    def summary(self, fmt: str = "text", *, digits: int = 4) -> str:
        """The coefficient table as ``text``, ``html``, ``markdown`` or ``latex`` (returns it; never prints)."""
        return render_table(format_coefficients(self.to_frame(), digits=digits), fmt=fmt, title=self._title())

    def __repr__(self) -> str:
        return self.summary("text")

    def _repr_html_(self) -> str:
        return self.summary("html")
