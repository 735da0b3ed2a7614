"""Resampling inference for one coefficient of a linear model, from a formula: wild cluster bootstrap, randomisation.

Engines: :func:`rp2pr_eval.models.wild.wild_cluster_bootstrap_linear` (all draws at once, Roodman
et al. 2019) and :func:`rp2pr_eval.models.randomisation.randomisation_test_linear` (batched WLS
over re-randomisations). Both return a :class:`~rp2pr_eval.models.result.ModelResult` for the
one coefficient, whose ``pvalues`` and ``conf_int()`` are the resampling p-value and interval.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from rp2pr_eval._options import BootWeights, RIStatistic, check_level, check_option
from rp2pr_eval.errors import DataError
from rp2pr_eval.models.formula import model_frame
from rp2pr_eval.models.randomisation import randomisation_test_linear
from rp2pr_eval.models.result import ModelResult
from rp2pr_eval.models.wild import cluster_codes, wild_cluster_bootstrap_linear

__all__ = ["randomisation_test", "wild_cluster_bootstrap"]

#: Full enumeration of Rademacher weights is used up to this many clusters (2**12 = 4096 draws).
MAX_ENUMERATED_CLUSTERS = 12


def _param_index(names, param, model) -> int:
    if param not in names:
        raise ValueError(f"{model}: param={param!r} is not a coefficient; have {list(names)}")
    return list(names).index(param)


def wild_cluster_bootstrap(
    formula,
    data=None,
    *,
    param: str,
    cluster,
    weights=None,
    n_boot: int = 9_999,
    boot_weights: str = "rademacher",
    null: bool = True,
    h0: float = 0.0,
    full_enumeration: bool | None = None,
    seed: int | np.random.Generator | None = None,
    names=None,
    level: float = 0.95,
) -> ModelResult:
    r"""Wild cluster bootstrap-t test and interval for one coefficient of a linear model (WCR by default).

    Imposes :math:`\beta_{param} = h_0` (``null=True``; ``False``: unrestricted WCU), multiplies the
    residuals by cluster-level weights, and refers the CR1 t statistic to its bootstrap
    distribution; the interval inverts the symmetric test. ``full_enumeration=None`` enumerates
    all :math:`2^G` Rademacher sign vectors when :math:`2^G \le` ``n_boot`` (as Stata ``boottest``),
    which makes the result exact and free of simulation error.

    Parameters
    ----------
    formula, data
        ``"y ~ x1 + x2"`` and the DataFrame; or ``(y, X)`` arrays.
    param
        The coefficient tested (a term name, e.g. ``"treated:post"``).
    cluster
        Cluster column (or labels).
    weights
        Analytic regression weights (column or array), ``None`` for OLS.
    n_boot, boot_weights
        Draws and weight distribution (``"rademacher"``, ``"webb"``, ``"mammen"``).
    null, h0
        Restricted (WCR) or unrestricted (WCU) bootstrap, and the null value.
    full_enumeration
        ``None`` (default): enumerate when Rademacher and :math:`2^G \le` ``n_boot``; ``True``:
        always (Rademacher, at most 12 clusters); ``False``: never.
    seed
        Seed or ``numpy.random.Generator`` of the weights.
    level
        Confidence level of the interval.

    Returns
    -------
    ModelResult
        One coefficient: estimate, CR1 ``bse``, bootstrap ``pvalues`` and ``conf_int()``;
        ``info``: ``t_stat``, ``p_value_equal_tail``, ``t_draws``, ``n_boot``, ``enumerated``.

    Examples
    --------
    ``docs/models.md``: Petersen's (2009) simulated panel (sandwich's PetersenCL), clustered by year::

        models.wild_cluster_bootstrap("y ~ x", data=petersen, param="x", cluster="year")

    Stata: ``regress y x, vce(cluster year)`` then ``boottest x, reps(9999)``; R:
    ``fwildclusterboot::boottest(lm(y ~ x, petersen), param = "x", clustid = "year", B = 9999)``.

    References
    ----------
    Cameron, Gelbach & Miller (2008) REStat 90:414; Roodman, MacKinnon, Nielsen & Webb (2019)
    Stata J 19:4; Webb (2023) Can J Econ 56:839.
    """
    check_option("boot_weights", boot_weights, BootWeights)
    check_level(level)
    if cluster is None:
        raise ValueError("wild_cluster_bootstrap needs cluster= (a column or one label per row)")
    mf = model_frame(formula, data, extra={"cluster": cluster, "weights": weights}, names=names,
                     model="wild_cluster_bootstrap")
    j = _param_index(mf.names, param, "wild_cluster_bootstrap")
    _, n_clusters = cluster_codes(mf.extra["cluster"], mf.nobs)
    enumerate_all = (boot_weights == "rademacher" and 2**n_clusters <= n_boot) if full_enumeration is None \
        else bool(full_enumeration)
    weight_matrix = None
    if enumerate_all:
        if boot_weights != "rademacher" or n_clusters > MAX_ENUMERATED_CLUSTERS:
            raise ValueError("full_enumeration needs Rademacher weights and at most "
                             f"{MAX_ENUMERATED_CLUSTERS} clusters; got {boot_weights!r} with {n_clusters}")
        weight_matrix = np.array(list(itertools.product((1.0, -1.0), repeat=n_clusters)))
    res = wild_cluster_bootstrap_linear(
        mf.X, mf.y, coef_index=j, cluster=mf.extra["cluster"], weights=mf.extra.get("weights"), h0=h0,
        n_boot=n_boot, boot_weights=boot_weights, weight_matrix=weight_matrix, seed=seed, level=level, ci=True,
        null=null)
    return ModelResult(
        model="wild_cluster_bootstrap", names=(param,), coef=[res.estimate], se=[res.se], vcov=[[res.se**2]],
        dof=np.inf, nobs=mf.nobs, vcov_type=f"{'WCR' if null else 'WCU'} bootstrap-t ({boot_weights}, {res.n_boot})",
        n_groups=res.n_clusters, formula=mf.formula, level=level, pvalue_override=[res.p_value],
        ci_override=[[res.ci_low, res.ci_high]], tvalue_override=[res.t_stat],
        info={"t_stat": res.t_stat, "p_value_equal_tail": res.p_value_equal_tail, "t_draws": res.t_draws,
              "n_boot": res.n_boot, "enumerated": enumerate_all, "h0": res.h0, "null_imposed": null,
              "n_dropped": mf.n_dropped},
        fit=res,
    )


def randomisation_test(
    formula,
    data,
    *,
    param: str,
    treatment: str,
    units: str | None = None,
    n_draws: int = 10_000,
    seed: int | np.random.Generator | None = None,
    weights=None,
    cluster=None,
    statistic: str = "estimate",
    vcov: str = "CR1",
    ci: bool = True,
    level: float = 0.95,
) -> ModelResult:
    r"""Randomisation test (and interval) for one coefficient, re-randomising ``treatment`` over ``units``.

    Assignment mechanism: complete randomisation of the units — the observed number of treated
    units is kept and every choice of that many units is equally likely (cluster randomisation
    when ``units`` is a cluster column; exact enumeration when there are at most ``n_draws``
    assignments, Monte Carlo otherwise, p-value :math:`(1 + \#\{|T^*| \ge |T|\})/(1 + D)`). The
    design may depend on the assignment only linearly through ``treatment`` (``treatment``,
    ``treatment:post``, ``C(g):treatment`` …), which lets every draw be computed without refitting.
    The interval inverts the test under a constant additive effect.

    Parameters
    ----------
    formula, data
        ``"y ~ treated * post"`` and the DataFrame (the formula path only: the assignment is
        re-applied to ``data[treatment]``).
    param
        The coefficient whose statistic is recomputed (e.g. ``"treated:post"``).
    treatment
        The 0/1 column that was randomised (constant within each unit).
    units
        Column of randomisation units (default: each row).
    statistic
        ``"estimate"`` or ``"t"`` (studentised by the ``vcov`` cluster-robust SE; needs ``cluster``).
    weights, cluster, vcov
        Regression weights; clustering and ``"CR1"``/``"CR2"`` for ``statistic="t"``.

    Returns
    -------
    ModelResult
        One coefficient with the randomisation p-value and interval; ``info``: ``draws``,
        ``exact``, ``n_draws``, ``mc_se``, ``observed_statistic``.

    Examples
    --------
    ``docs/models.md``: Student's sleep data treated as two independent groups of ten::

        models.randomisation_test("extra ~ treated", data=sleep, param="treated", treatment="treated",
                                  n_draws=200_000)

    R: ``ri2::conduct_ri(extra ~ treated, declaration = declare_ra(N = 20, m = 10), data = sleep)``.

    References
    ----------
    Fisher (1935); Rosenbaum (2002) Observational Studies; Young (2019) QJE 134:557;
    Phipson & Smyth (2010) Stat Appl Genet Mol Biol 9:39.
    """
    check_option("statistic", statistic, RIStatistic)
    check_level(level)
    if not isinstance(formula, str) or not isinstance(data, pd.DataFrame):
        raise TypeError("randomisation_test needs a formula and a DataFrame (the assignment is re-applied to it)")
    if treatment not in data.columns:
        raise DataError(f"randomisation_test: treatment={treatment!r} is not a column of data")
    extra = {"weights": weights, "cluster": cluster, "units": units, "treatment": treatment}
    mf = model_frame(formula, data, extra=extra, model="randomisation_test")
    j = _param_index(mf.names, param, "randomisation_test")
    T = pd.to_numeric(pd.Series(mf.extra["treatment"]), errors="coerce").to_numpy(dtype=float)
    if not np.isin(T, (0.0, 1.0)).all():
        raise DataError(f"randomisation_test: treatment column {treatment!r} must be 0/1")
    used = data.reset_index(drop=True).iloc[mf.rows]
    designs = [model_frame(formula, used.assign(**{treatment: float(v)}), model="randomisation_test").X
               for v in (0.0, 1.0)]
    scale = designs[1] - designs[0]
    dependent = np.flatnonzero(np.any(scale != 0, axis=0))
    if np.any(designs[0][:, dependent] != 0) or not np.allclose(mf.X, designs[0] + T[:, None] * scale):
        raise ValueError(f"randomisation_test: the design must depend on {treatment!r} linearly through columns "
                         "that are 0 for untreated rows (e.g. treated, treated:post)")
    if j not in dependent:
        raise ValueError(f"randomisation_test: param={param!r} does not depend on the treatment {treatment!r}")
    fixed = np.setdiff1d(np.arange(len(mf.names)), dependent)
    unit_labels = mf.extra["units"] if units is not None else np.arange(mf.nobs)
    unit_codes, n_units = cluster_codes(unit_labels, mf.nobs)
    assignment = np.zeros(n_units)
    assignment[unit_codes] = T
    varying = np.flatnonzero(np.bincount(unit_codes, weights=T, minlength=n_units)
                             % np.bincount(unit_codes, minlength=n_units) != 0)
    if varying.size:
        raise DataError(f"randomisation_test: {treatment!r} varies within {varying.size} unit(s) of {units!r}")
    maps = np.zeros((len(dependent), mf.nobs, n_units))
    for c, col in enumerate(dependent):
        maps[c, np.arange(mf.nobs), unit_codes] = scale[:, col]
    coef_index = len(fixed) + list(dependent).index(j)
    res = randomisation_test_linear(
        mf.y, mf.X[:, fixed] if fixed.size else None, maps, assignment.astype(np.int8), coef_index=coef_index,
        n_draws=int(n_draws), seed=seed, weights=mf.extra.get("weights"), statistic=statistic,
        cluster=mf.extra.get("cluster"), vcov=vcov, level=level, ci=ci)
    return ModelResult(
        model="randomisation_test", names=(param,), coef=[res.estimate], se=[np.nan], vcov=[[np.nan]], dof=np.inf,
        nobs=mf.nobs, vcov_type=f"randomisation ({res.n_draws} {'assignments' if res.exact else 'draws'})",
        n_groups=n_units, formula=mf.formula, level=level, pvalue_override=[res.p_value],
        ci_override=[[res.ci_low, res.ci_high]], tvalue_override=[res.observed_statistic],
        info={"draws": res.draws, "exact": res.exact, "n_draws": res.n_draws, "mc_se": res.mc_se,
              "statistic": statistic, "observed_statistic": res.observed_statistic, "n_dropped": mf.n_dropped},
        fit=res,
    )
