"""Randomisation inference for pair-randomised designs: the array-level core.

ILCOP randomised whole pairs: 15 of 40 pairs to intervention, both trusts of a
pair in the same arm.  Randomisation inference re-draws that assignment,
recomputes the statistic for every draw and compares the observed statistic
with the resulting randomisation distribution (Fisher's sharp null of no
effect for any trust; Rosenbaum 2002; Young 2019).

This module and the two below it hold the pieces the data-frame front ends
(``rp.randomisation_test``, :func:`rp2pr_eval.models.randomisation_test`) are built from
(:mod:`.randomisation_design`: assignments and checks; :mod:`.batched_wls`: the batched solver):

* :func:`pair_assignments` — re-randomisations of the units (pairs), exact
  enumeration or Monte Carlo;
* :func:`batched_wls_coef` / :func:`batched_wls_stat` — the coefficient (and
  cluster-robust t statistic) of a weighted linear model for *all* draws in
  one batched computation;
* :func:`randomisation_pvalue` and :func:`invert_randomisation_test` — the
  two-sided p-value and the confidence interval under a constant additive effect;
* :func:`randomisation_test_linear` — all of the above in one call.

The batched solver covers any linear estimator whose design matrix depends on
the assignment only through a few columns ``Z_d`` (e.g. ``treated`` and
``treated × post``), with assignment-free columns ``X_fixed`` and nuisance
columns ``absorb`` (e.g. trust and year fixed effects) partialled out once by
Frisch–Waugh–Lovell.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rp2pr_eval._options import RIStatistic, check_option
from rp2pr_eval.errors import DataError
from rp2pr_eval.models.batched_wls import BatchedStatistic, BatchedWLS, batched_wls_coef, batched_wls_stat
from rp2pr_eval.models.randomisation_design import assignment_map, check_assignments, pair_assignments, response
from rp2pr_eval.models.wild import invert_symmetric_test

__all__ = [
    "BatchedStatistic",
    "RandomisationResult",
    "assignment_map",
    "batched_wls_coef",
    "batched_wls_stat",
    "invert_randomisation_test",
    "pair_assignments",
    "randomisation_pvalue",
    "randomisation_test_linear",
]

# Ties: a draw counts as at least as extreme when |T*| ≥ |T| (1 - 1e-9), so
# rounding noise between two computations of the same value never breaks a tie.
_TIE_RTOL = 1e-9

Builder = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- assignments


# --------------------------------------------------------------------------- batched WLS


# --------------------------------------------------------------------------- p-values and intervals
def randomisation_pvalue(observed: float, draws: np.ndarray, *, exact: bool) -> tuple[float, float]:
    """Two-sided randomisation p-value and its Monte Carlo standard error.

    ``p = #{d : |T_d| ≥ |T|} / D`` when the draws enumerate every assignment
    (``exact=True``; the observed assignment is among them, so ``p ≥ 1/D``),
    and ``p = (1 + #{d : |T_d| ≥ |T|}) / (1 + D)`` for ``D`` Monte Carlo draws,
    the observed statistic counting as one draw (Phipson & Smyth 2010), which
    keeps the test's size at most the nominal level.  Ties count as extreme
    (``|T_d| ≥ |T|·(1 - 1e-9)``).  MC standard error ``√(p(1-p)/D)``; 0 when exact.

    Parameters
    ----------
    observed
        Observed statistic ``T``.
    draws
        Statistics ``T_d`` of the re-randomised assignments.
    exact
        Whether the draws enumerate every assignment (from :func:`pair_assignments`).

    Returns
    -------
    (p_value, mc_se)

    References
    ----------
    Phipson B, Smyth GK (2010). Permutation p-values should never be zero.
    Statistical Applications in Genetics and Molecular Biology 9:39.
    """
    t_obs = float(observed)
    t = np.asarray(draws, dtype=np.float64).reshape(-1)
    if not math.isfinite(t_obs):
        raise DataError(f"observed statistic is not finite ({t_obs})")
    if t.size == 0:
        raise DataError("no randomisation draws")
    if not np.isfinite(t).all():
        raise DataError(
            f"{int((~np.isfinite(t)).sum())} of {t.size} draws have no finite statistic "
            "(singular design for those assignments)"
        )
    count = int(np.count_nonzero(np.abs(t) >= abs(t_obs) * (1.0 - _TIE_RTOL)))
    n = t.size
    p = count / n if exact else (1.0 + count) / (1.0 + n)
    return p, (0.0 if exact else math.sqrt(p * (1.0 - p) / n))


def _prepare_inversion(
    y, X_fixed, treat_cols_builder, assignments, observed_assignment, *, coef_index, weights, absorb,
    statistic, cluster, vcov, working_model, small_sample, chunk_size,
):
    check_option("statistic", statistic, RIStatistic)
    ya, n = response(y)
    studentise = statistic == "t"
    if studentise and cluster is None:
        raise ValueError("statistic='t' needs cluster labels")
    prob = BatchedWLS(
        n, X_fixed, treat_cols_builder, weights=weights, absorb=absorb, coef_index=coef_index,
        cluster=cluster if studentise else None, vcov=vcov if studentise else None,
        working_model=working_model, small_sample=small_sample, chunk_size=chunk_size,
    )
    obs = check_assignments(observed_assignment)
    if obs.shape[0] != 1:
        raise DataError("observed_assignment must be a single assignment")
    if prob.has_const:
        raise ValueError("test inversion needs coef_index to point at an assignment-dependent column")
    if prob.maps is not None:
        z_obs = prob.maps_raw[prob.jz, :, :prob.n_units] @ obs[0].astype(np.float64) / prob.sw
    else:
        Z = np.asarray(prob.builder(obs), dtype=np.float64)
        z_obs = (Z if Z.ndim == 2 else Z[:, :, prob.jz])[0]
    Y = np.column_stack([ya, z_obs])
    c_obs, m_obs = prob.run(Y, obs, scores=studentise)
    c_draw, m_draw = prob.run(Y, assignments, scores=studentise)
    if not np.isfinite(c_obs).all():
        raise DataError("the observed assignment gives a singular design")
    factor = prob.small_sample_factor() if studentise else 1.0
    if studentise:  # T(τ) = (β̂ - τ)/se: the interval's half-width is a few se
        scale = math.sqrt(factor * float(m_obs[0, 0, 0]))
    else:  # the null draws of the estimate spread like the estimator does
        scale = float(np.nanstd(c_draw[:, 0] - c_obs[0, 0] * c_draw[:, 1]))

    def stat(coef, meat, tau):
        est = coef[:, 0] - tau * coef[:, 1]
        if not studentise:
            return est
        var = factor * (meat[:, 0, 0] - 2.0 * tau * meat[:, 0, 1] + tau * tau * meat[:, 1, 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            return est / np.sqrt(np.maximum(var, 0.0))

    return prob, c_obs, m_obs, c_draw, m_draw, stat, scale


def invert_randomisation_test(
    y: np.ndarray,
    X_fixed: np.ndarray | None,
    treat_cols_builder: Builder | np.ndarray,
    assignments: np.ndarray,
    observed_assignment: np.ndarray,
    *,
    exact: bool,
    coef_index: int,
    weights: np.ndarray | None = None,
    absorb: np.ndarray | Sequence[np.ndarray] | None = None,
    statistic: str = "estimate",
    cluster: np.ndarray | None = None,
    vcov: str = "CR1",
    working_model: str = "identity",
    small_sample: bool = True,
    level: float = 0.95,
    chunk_size: int | None = None,
) -> tuple[float, float]:
    r"""Confidence interval by inverting the randomisation test under a constant additive effect.

    Under ``H0(τ)``: every trust's outcome in the treated state exceeds its
    control outcome by ``τ`` (a sharp null).  The untreated outcomes are then
    known, ``y0(τ) = y - τ z_obs`` with ``z_obs`` the observed effect column
    (the ``coef_index`` column under the observed assignment, e.g.
    treatment × post), and the test of ``τ`` is the randomisation test of no
    effect on ``y0(τ)``.  The interval is ``{τ : p(τ) ≥ 1 - level}``.

    Because WLS is linear in the response, the statistic for every draw is
    affine (estimate) or a ratio of an affine function and the square root
    of a quadratic (t) in ``τ``: with ``c_d = coef_d(y)``,
    ``c^z_d = coef_d(z_obs)`` and the cluster-score cross-products of the two
    responses computed once (one batched run with two response columns),

    .. math:: T_d(τ) = c_d - τ c^z_d, \qquad
              t_d(τ) = \frac{c_d - τ c^z_d}{\sqrt{m(S^{yy}_d - 2τ S^{yz}_d + τ^2 S^{zz}_d)}},

    so each trial ``τ`` costs ``O(D)``.  For the observed assignment
    ``c^z = 1``, so ``T(τ) = β̂ - τ``.  ``p(τ) ≥ α`` exactly when ``|T(τ)|`` is at
    most the ``k``-th largest ``|T_d(τ)|`` (``k = ⌈αD⌉`` exact, ``⌈α(D+1)⌉ - 1``
    Monte Carlo), a continuous condition whose two roots either side of
    ``β̂`` are found by bracketing and Brent's method.  The interval is
    ``(-inf, inf)`` when even the most extreme statistic cannot reach
    ``p < α`` (e.g. too few distinct assignments).

    Parameters
    ----------
    y, X_fixed, treat_cols_builder, assignments, coef_index, weights, absorb, chunk_size
        As in :func:`batched_wls_coef`; ``coef_index`` must be an
        assignment-dependent column.
    observed_assignment
        The observed 0/1 unit assignment ``(n_units,)``.
    exact
        Whether ``assignments`` enumerates all assignments (from :func:`pair_assignments`).
    statistic
        ``"estimate"`` (the coefficient) or ``"t"`` (studentised with ``vcov``).
    cluster, vcov, working_model, small_sample
        Clustering and variance for ``statistic="t"`` (see :func:`batched_wls_stat`).
    level
        Confidence level.

    Returns
    -------
    (ci_low, ci_high)

    References
    ----------
    Rosenbaum PR (2002). Observational Studies, 2nd ed., ch. 2. Springer.
    Imbens GW, Rubin DB (2015). Causal Inference, ch. 5. Cambridge UP.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r} must be strictly between 0 and 1")
    _, c_obs, m_obs, c_draw, m_draw, stat, scale = _prepare_inversion(
        y, X_fixed, treat_cols_builder, assignments, observed_assignment, coef_index=coef_index,
        weights=weights, absorb=absorb, statistic=statistic, cluster=cluster, vcov=vcov,
        working_model=working_model, small_sample=small_sample, chunk_size=chunk_size,
    )
    return _invert_from_parts(c_obs, m_obs, c_draw, m_draw, stat, scale, exact=exact, level=level)


def _invert_from_parts(c_obs, m_obs, c_draw, m_draw, stat, scale, *, exact, level):
    if not np.isfinite(c_draw).all():
        raise DataError(f"{int((~np.isfinite(c_draw[:, 0])).sum())} draws have a singular design")
    n = c_draw.shape[0]
    alpha = 1.0 - level
    k = int(math.ceil(alpha * n - 1e-9)) if exact else int(math.ceil(alpha * (n + 1) - 1e-9)) - 1
    estimate = float(c_obs[0, 0])
    width = 2.0 * scale if scale > 0 and math.isfinite(scale) else max(abs(estimate), 1.0)
    return invert_symmetric_test(
        lambda tau: abs(float(stat(c_obs, m_obs, tau)[0])),
        lambda tau: stat(c_draw, m_draw, tau),
        k=k,
        estimate=estimate,
        width=width,
    )


@dataclass(frozen=True, slots=True)
class RandomisationResult:
    """Result of a randomisation test of no effect on one coefficient.

    Attributes
    ----------
    estimate
        Observed coefficient.
    statistic
        ``"estimate"`` or ``"t"``; ``observed_statistic`` is its observed value.
    p_value, mc_se
        Two-sided p-value (see :func:`randomisation_pvalue`) and its Monte Carlo SE.
    ci_low, ci_high, level
        Interval from :func:`invert_randomisation_test` (``nan`` if not requested).
    n_draws, exact
        Number of assignments used; whether they are all assignments.
    draws
        The statistic for every drawn assignment, in row order.
    """

    estimate: float
    statistic: str
    observed_statistic: float
    p_value: float
    mc_se: float
    ci_low: float
    ci_high: float
    level: float
    n_draws: int
    exact: bool
    draws: np.ndarray = field(repr=False, compare=False)
    outcome: str = ""
    estimator: str = ""


def randomisation_test_linear(
    y: np.ndarray,
    X_fixed: np.ndarray | None,
    treat_cols_builder: Builder | np.ndarray,
    observed_assignment: np.ndarray,
    *,
    coef_index: int,
    n_draws: int = 10_000,
    seed: int | np.random.Generator | None = None,
    weights: np.ndarray | None = None,
    absorb: np.ndarray | Sequence[np.ndarray] | None = None,
    statistic: str = "estimate",
    cluster: np.ndarray | None = None,
    vcov: str = "CR1",
    working_model: str = "identity",
    small_sample: bool = True,
    level: float = 0.95,
    ci: bool = True,
    chunk_size: int | None = None,
) -> RandomisationResult:
    """Randomisation test (and interval) for one coefficient of a linear model.

    Re-randomises as the study did — ``sum(observed_assignment)`` of
    ``len(observed_assignment)`` units (pairs) treated, via
    :func:`pair_assignments` (exact when ``C(n, k) ≤ n_draws``) — computes the
    statistic for all draws with the batched solver, the p-value with
    :func:`randomisation_pvalue` and, if ``ci``, the interval with
    :func:`invert_randomisation_test` (same draws).  Arguments as there.

    Returns
    -------
    RandomisationResult
        ``draws`` holds the statistic at τ = 0 for every drawn assignment.

    Notes
    -----
    Equivalent calls (docs/methods/resampling.md §3): Stata
    ``ritest treated _b[1.treated#1.post], reps(10000) cluster(pair_id):
    regress rate i.treated##i.post [aw=denominator]``; R ``ri2::conduct_ri``
    with ``declare_ra(clusters = pair_id, m = 15)``.

    References
    ----------
    Rosenbaum PR (2002). Observational Studies, 2nd ed. Springer.
    Young A (2019). Channeling Fisher. Quarterly Journal of Economics 134:557–598.
    Phipson B, Smyth GK (2010). Permutation p-values should never be zero.
    Statistical Applications in Genetics and Molecular Biology 9:39.
    """
    obs = check_assignments(observed_assignment)
    if obs.shape[0] != 1:
        raise DataError("observed_assignment must be a single assignment")
    assignments, exact = pair_assignments(
        obs.shape[1], int(obs.sum()), n_draws, rng=seed, observed=obs[0]
    )
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r} must be strictly between 0 and 1")
    _, c_obs, m_obs, c_draw, m_draw, stat, scale = _prepare_inversion(
        y, X_fixed, treat_cols_builder, assignments, obs[0], coef_index=coef_index,
        weights=weights, absorb=absorb, statistic=statistic, cluster=cluster, vcov=vcov,
        working_model=working_model, small_sample=small_sample, chunk_size=chunk_size,
    )
    draws = stat(c_draw, m_draw, 0.0)
    t_obs = float(stat(c_obs, m_obs, 0.0)[0])
    p, se = randomisation_pvalue(t_obs, draws, exact=exact)
    lo = hi = math.nan
    if ci:
        lo, hi = _invert_from_parts(c_obs, m_obs, c_draw, m_draw, stat, scale, exact=exact, level=level)
    draws.setflags(write=False)
    return RandomisationResult(
        estimate=float(c_obs[0, 0]), statistic=statistic, observed_statistic=t_obs, p_value=p, mc_se=se,
        ci_low=float(lo), ci_high=float(hi), level=float(level), n_draws=int(draws.shape[0]), exact=exact,
        draws=draws,
    )
