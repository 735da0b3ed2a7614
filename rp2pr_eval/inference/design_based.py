"""Data-frame front ends of design-based inference: pair re-randomisation and the wild cluster bootstrap.

The array-level cores (:mod:`.randomisation`, :mod:`.wild`) do the work; this
module turns a patient table and an estimator into their inputs through the
estimator's :class:`~rp2pr_eval.estimators.did.LinearSpec`, and the results into
package objects.  Linear estimators (``did_aggregate``, ``ancova``,
``did_twfe``) are recomputed for all draws without refitting; any other
estimator goes through a generic path that refits it for each re-randomisation
(in parallel with joblib).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from rp2pr_eval._options import BootWeights, IncompletePairs, RatesType, RIStatistic, check_option
from rp2pr_eval.estimators.did import LINEAR_ESTIMATORS, linear_spec
from rp2pr_eval.estimators.gee import gee_logistic
from rp2pr_eval.estimators.patient_did import did_logistic
from rp2pr_eval.estimators.prepare import data_outcome, one_trust_pairs, patient_design, prepare, scale_of
from rp2pr_eval.models.randomisation import (
    RandomisationResult,
    pair_assignments,
    randomisation_pvalue,
    randomisation_test_linear,
)
from rp2pr_eval.models.score_bootstrap import score_bootstrap_logit
from rp2pr_eval.models.wild import bootstrap_weights, wild_cluster_bootstrap_linear
from rp2pr_eval.results.effect import Effect
from rp2pr_eval.study.design import StudyDesign, resolve_design


def _estimator_name(estimator) -> str:
    return estimator if isinstance(estimator, str) else getattr(estimator, "__name__", repr(estimator))


def randomisation_test(
    patients: pd.DataFrame,
    outcome: str,
    estimator: Callable | str = "did_aggregate",
    n_draws: int = 10_000,
    seed: int | np.random.Generator | None = 1,
    *,
    design: StudyDesign | None = None,
    cluster: str | None = "pair_id",
    weights: str | None = "denominator",
    statistic: str = "estimate",
    vcov: str = "CR1",
    ci: bool = True,
    level: float = 0.95,
    n_jobs: int = 1,
    incomplete_pairs: IncompletePairs | None = None,
    rates: RatesType = "crude",
) -> RandomisationResult:
    r"""Randomisation test of no intervention effect, re-randomising pairs exactly as the trial did.

    The pair structure and the number of treated pairs are read from the data
    (ILCOP: 15 of 40 pairs, both trusts of a pair together).  For each of
    ``n_draws`` re-randomisations (all :math:`\binom{40}{15}` assignments when
    that is ≤ ``n_draws``: exact enumeration) the estimator's statistic is
    recomputed; the two-sided p-value is
    :math:`(1 + \#\{|T^*| \ge |T|\}) / (1 + D)` for Monte Carlo draws (the exact
    share when enumerated), with Monte Carlo SE :math:`\sqrt{p(1-p)/D}`.

    Parameters
    ----------
    estimator
        ``did_aggregate`` (default), ``ancova`` or ``did_twfe`` (function or
        name) — computed for all draws at once, no refitting — or any other
        estimator ``f(patients, outcome, *, design=..., cluster=...) -> Effect``
        (refitted per draw; parallel over ``n_jobs`` processes).
    statistic
        ``"estimate"`` (the coefficient) or ``"t"`` (studentised with the
        ``vcov`` cluster-robust SE: ``CR1`` or ``CR2``), which is robust to
        heteroskedasticity between arms when the sharp null fails.
    seed
        Seed of the assignment draws: the same seed gives the same
        re-randomisations for every outcome (joint draws for Romano–Wolf).
    ci
        Also the interval inverting the test under a constant additive effect
        (linear estimators only).
    incomplete_pairs
        As for the estimators: ``"keep"`` re-randomises a one-trust pair as a unit like any other (the
        pair still counts in the 15-of-40 draw); ``"drop"`` leaves it out, so the draws assign the
        observed number of treated pairs among the remaining ones.
    rates
        ``"crude"`` or ``"adjusted"`` (case-mix-adjusted trust rates), as for the estimators.

    ``patients`` may be a trust panel (linear estimators, or a refitted trust-level estimator).

    Returns
    -------
    RandomisationResult
        ``observed_statistic``, ``draws``, ``p_value``, ``mc_se``, ``exact``,
        ``ci_low``/``ci_high``.

    References
    ----------
    Fisher (1935); Rosenbaum (2002) Observational Studies; Young (2019) QJE 134:557.
    Stata: ``ritest``; R: ``ri2::conduct_ri(declare_ra(clusters = pair_id, m = 15))``.
    """
    check_option("statistic", statistic, RIStatistic)
    if not isinstance(n_draws, (int, np.integer)) or n_draws < 1:
        raise ValueError(f"n_draws must be a positive integer, got {n_draws!r}")
    name = _estimator_name(estimator)
    if name in LINEAR_ESTIMATORS:
        spec = linear_spec(patients, outcome, name, design=design, cluster=cluster, weights=weights,
                           incomplete_pairs=incomplete_pairs, rates=rates)
        p = spec.fixed.shape[1]
        coef_index = p + spec.treat_names.index(spec.coef_name)
        res = randomisation_test_linear(
            spec.y, spec.fixed if p else None, spec.treat_maps(), spec.unit_assignment,
            coef_index=coef_index, n_draws=int(n_draws), seed=seed, weights=spec.weights, absorb=spec.absorb,
            statistic=statistic, cluster=spec.cluster, vcov=vcov, level=level, ci=ci,
        )
        return replace(res, outcome=outcome, estimator=name)
    if not callable(estimator):
        raise ValueError(f"estimator {name!r} is not a function or one of {', '.join(LINEAR_ESTIMATORS)}")
    check_option("incomplete_pairs", incomplete_pairs, IncompletePairs, allow_none=True)
    check_option("rates", rates, RatesType)
    options = {k: v for k, v in (("incomplete_pairs", incomplete_pairs), ("rates", rates))
               if v is not None and not (k == "rates" and v == "crude")}
    if incomplete_pairs == "drop":
        incomplete = one_trust_pairs(patients)
        if incomplete:
            patients = patients.loc[~patients["pair_id"].isin(incomplete).to_numpy()]
    return _refit_randomisation(patients, outcome, estimator, int(n_draws), seed, design=design, cluster=cluster,
                                statistic=statistic, level=level, n_jobs=n_jobs, options=options)


def _relabel(patients: pd.DataFrame, pair_labels: np.ndarray, assignment: np.ndarray, design: StudyDesign) -> pd.DataFrame:
    arm_of_pair = dict(zip(pair_labels, np.where(assignment == 1, design.intervention_arm, design.control_arm)))
    return patients.assign(arm=patients["pair_id"].map(arm_of_pair).to_numpy())


def _refit_statistic(patients, outcome, estimator, design, cluster, statistic, pair_labels, assignment, options=None):
    e = estimator(_relabel(patients, pair_labels, assignment, design), outcome, design=design, cluster=cluster,
                  **(options or {}))
    return e.estimate if statistic == "estimate" else e.estimate / e.se


def _refit_randomisation(patients, outcome, estimator, n_draws, seed, *, design, cluster, statistic, level, n_jobs,
                         options=None):
    design = resolve_design(design)
    observed = estimator(patients, outcome, design=design, cluster=cluster, **(options or {}))
    if not isinstance(observed, Effect):
        raise TypeError(f"estimator {_estimator_name(estimator)} must return an Effect")
    pairs = patients.drop_duplicates("pair_id")[["pair_id", "arm"]].sort_values("pair_id")
    labels = pairs["pair_id"].to_numpy()
    obs = (pairs["arm"] == design.intervention_arm).to_numpy().astype(int)
    assignments, exact = pair_assignments(len(labels), int(obs.sum()), n_draws, rng=seed, observed=obs)
    if n_jobs == 1:
        draws = [_refit_statistic(patients, outcome, estimator, design, cluster, statistic, labels, a, options)
                 for a in assignments]
    else:
        from joblib import Parallel, delayed

        draws = Parallel(n_jobs=n_jobs)(delayed(_refit_statistic)(patients, outcome, estimator, design, cluster,
                                                                   statistic, labels, a, options) for a in assignments)
    draws = np.asarray(draws, dtype=float)
    t_obs = observed.estimate if statistic == "estimate" else observed.estimate / observed.se
    p, se = randomisation_pvalue(t_obs, draws, exact=exact)
    draws.setflags(write=False)
    return RandomisationResult(estimate=observed.estimate, statistic=statistic, observed_statistic=float(t_obs),
                               p_value=p, mc_se=se, ci_low=float("nan"), ci_high=float("nan"), level=level,
                               n_draws=len(draws), exact=exact, draws=draws, outcome=outcome,
                               estimator=_estimator_name(estimator))


def randomisation_effect(result: RandomisationResult, effect: Effect) -> Effect:
    """The estimator's Effect with the randomisation p-value and interval (``estimator`` suffixed ``+RI``)."""
    return replace(effect, estimator=f"{effect.estimator}+RI", p_value=result.p_value,
                   ci_low=result.ci_low, ci_high=result.ci_high, se=effect.se, df=None,
                   vcov=f"randomisation ({result.n_draws} {'assignments' if result.exact else 'draws'})",
                   details={**effect.details, "ri_statistic": result.statistic, "ri_mc_se": result.mc_se,
                            "ri_exact": result.exact, "ri_n_draws": result.n_draws,
                            "ri_observed_statistic": result.observed_statistic})


def wild_cluster_bootstrap(
    patients: pd.DataFrame,
    outcome: str,
    estimator: Callable | str = "did_aggregate",
    n_boot: int = 9_999,
    *,
    weights: str = "rademacher",
    null: bool = True,
    seed: int | np.random.Generator | None = 1,
    design: StudyDesign | None = None,
    cluster: str = "pair_id",
    regression_weights: str | None = "denominator",
    weight_matrix: np.ndarray | None = None,
    level: float = 0.95,
    covariates: Sequence[str] | None = None,
    cov_struct: str = "exchangeable",
    incomplete_pairs: IncompletePairs | None = None,
    rates: RatesType = "crude",
) -> Effect:
    r"""Wild cluster bootstrap-t by pair (restricted, WCR, by default), with a confidence interval by test inversion.

    Imposes the null (treated:post = 0), draws cluster-level weights
    (``weights``: Rademacher ±1, Mammen two-point, Webb six-point), and refers
    the CR1 t statistic to its bootstrap distribution; all ``n_boot`` draws are
    a few matrix products (Roodman et al. 2019).  The interval collects the
    h0 not rejected at ``1 − level``.

    Rademacher weights suit ILCOP: 40 pairs give 2^40 distinct draws and 15
    treated pairs is not "few treated clusters".  Prefer ``weights="webb"``
    when there are fewer than about 12 clusters (Rademacher then has only 2^G
    distinct draws and a lumpy p-value) or very few treated clusters
    (Webb 2023; MacKinnon & Webb 2018).

    Parameters
    ----------
    weights
        Bootstrap weight distribution (the regression weights are ``regression_weights``).
    null
        ``True`` (default): restricted bootstrap (WCR), which has the better
        size with few clusters (Cameron, Gelbach & Miller 2008; MacKinnon &
        Webb 2018).  ``False``: unrestricted (WCU) — draws from the unrestricted
        residuals, t* centred at the estimate, symmetric percentile-t interval
        (see :func:`~rp2pr_eval.models.wild.wild_cluster_bootstrap_linear`).
    weight_matrix
        (n_boot, G) weights to share across outcomes (columns in sorted cluster order).
    incomplete_pairs, rates
        As for the estimators (a kept one-trust pair is one bootstrap cluster).

    ``patients`` may be a trust panel.

    Returns
    -------
    Effect
        ``estimate`` and CR1 ``se`` of the estimator, bootstrap ``p_value`` and
        interval; ``details`` hold the t statistic, the equal-tailed p, the
        weight type and number of draws.

    References
    ----------
    Cameron, Gelbach & Miller (2008) REStat 90:414; Roodman, MacKinnon, Nielsen & Webb (2019) Stata J 19:4;
    Webb (2023) Can J Econ. Stata ``boottest``; R ``fwildclusterboot::boottest``.

    **Patient-level logistic estimators** (``did_logistic``, ``gee_logistic``): the restricted
    *score* bootstrap of Kline & Santos (2012) — the model is fitted once under the null
    (treated:post = 0; the GEE's working correlation held at its estimate), the pair-level scores
    are perturbed with the same weights, and the cluster-robust score statistic is referred to its
    bootstrap distribution; the interval inverts the test (one restricted fit per trial value).
    ``covariates`` (e.g. ``rp.CASE_MIX``) and, for the GEE, ``cov_struct`` are passed to the
    estimator; ``null=False`` is not available.  ``estimate`` and ``se`` are the estimator's
    (CR1 for ``did_logistic``, its sandwich for ``gee_logistic``); see
    :func:`rp2pr_eval.models.score_bootstrap.score_bootstrap_logit`.
    """
    check_option("weights", weights, BootWeights)
    if not isinstance(null, bool):
        raise ValueError(f"null must be True (restricted, WCR) or False (unrestricted, WCU), got {null!r}")
    if cluster is None:
        raise ValueError("the wild cluster bootstrap needs a cluster column, e.g. 'pair_id'")
    name = _estimator_name(estimator)
    if name in SCORE_ESTIMATORS:
        if not null:
            raise ValueError("the score bootstrap of did_logistic / gee_logistic is restricted only (null=True)")
        if incomplete_pairs is not None or rates != "crude":
            raise ValueError("the score bootstrap of did_logistic / gee_logistic takes neither incomplete_pairs nor "
                             "rates='adjusted' (patient-level models adjust for case mix through covariates)")
        return _score_bootstrap(patients, outcome, name, n_boot=n_boot, weights=weights, seed=seed, design=design,
                                cluster=cluster, weight_matrix=weight_matrix, level=level, covariates=covariates,
                                cov_struct=cov_struct)
    if name not in LINEAR_ESTIMATORS:
        raise ValueError(f"wild_cluster_bootstrap supports {', '.join(LINEAR_ESTIMATORS + SCORE_ESTIMATORS)}, "
                         f"not {name!r}")
    spec = linear_spec(patients, outcome, name, design=design, cluster=cluster, weights=regression_weights,
                       incomplete_pairs=incomplete_pairs, rates=rates)
    res = wild_cluster_bootstrap_linear(spec.X, spec.y, coef_index=spec.coef_index, cluster=spec.cluster,
                                        weights=spec.weights, n_boot=n_boot, boot_weights=weights,
                                        weight_matrix=weight_matrix, seed=seed, level=level, ci=True, null=null)
    n_clusters = int(res.n_clusters)
    variant = "WCR" if null else "WCU"
    return Effect(
        outcome=outcome, estimator=f"{name}+wild", estimand=f"{name} estimate, wild cluster bootstrap-t inference",
        scale=scale_of(data_outcome(patients, outcome), "mean_log"),
        estimate=res.estimate, se=res.se, ci_low=res.ci_low, ci_high=res.ci_high, p_value=res.p_value, df=None,
        n_obs=len(spec.y), n_trusts=int(spec.trust.max() + 1), n_clusters=n_clusters, cluster=cluster,
        vcov=f"{variant} bootstrap-t ({weights}, {res.n_boot})", level=level,
        details={"t_stat": res.t_stat, "p_value_equal_tail": res.p_value_equal_tail, "n_boot": res.n_boot,
                 "boot_weights": weights, "h0": res.h0, "regression_weights": regression_weights,
                 "null_imposed": null, "rates": rates,
                 **({"incomplete_pairs": incomplete_pairs} if incomplete_pairs is not None else {})},
    )


#: Patient-level logistic estimators bootstrapped by the score bootstrap.
SCORE_ESTIMATORS = ("did_logistic", "gee_logistic")


def _score_bootstrap(patients, outcome, name, *, n_boot, weights, seed, design, cluster, weight_matrix, level,
                     covariates, cov_struct) -> Effect:
    if name == "did_logistic":
        effect = did_logistic(patients, outcome, covariates=covariates, design=design, cluster=cluster, level=level)
        struct, corr = "independence", None
    else:
        effect = gee_logistic(patients, outcome, covariates=covariates, design=design, cluster=cluster,
                              cov_struct=cov_struct, level=level)
        struct = effect.details["cov_struct"]
        corr = {"independence": None, "exchangeable": effect.details["working_corr"],
                "block_exchangeable": (effect.details["working_corr"], effect.details["working_corr_between"])}[struct]
    prep = prepare(patients, outcome, design=design, cluster=cluster, kinds=("binary",), estimator=name)
    y = pd.to_numeric(prep.rows[prep.entry.name]).to_numpy(dtype=float)
    X, names = patient_design(prep, covariates)
    start = np.array([effect.details["coefficients"][n][0] for n in names])
    blocks = None
    if struct == "block_exchangeable":
        blocks = (prep.rows["trust_id"].astype(str) + "/" + prep.rows["period"].astype(str)).to_numpy()
    res = score_bootstrap_logit(X, y, prep.rows[cluster].to_numpy(), coef_index=names.index("treated:post"),
                                start=start, se=effect.se, cov_struct=struct, working_corr=corr, blocks=blocks,
                                n_boot=n_boot, boot_weights=weights, weight_matrix=weight_matrix, seed=seed,
                                level=level)
    return replace(
        effect, estimator=f"{name}+score_bootstrap", df=None, p_value=res.p_value, ci_low=res.ci_low,
        ci_high=res.ci_high, vcov=f"restricted score bootstrap ({weights}, {res.n_boot})",
        details={**effect.details, "score_stat": res.score_stat, "p_value_equal_tail": res.p_value_equal_tail,
                 "n_boot": res.n_boot, "boot_weights": weights, "h0": res.h0, "null_imposed": True,
                 "se_method": effect.vcov, "infeasible_nulls": res.infeasible_nulls})


def shared_bootstrap_weights(n_clusters: int, n_boot: int = 9_999, kind: str = "rademacher", *, seed=1) -> np.ndarray:
    """One (n_boot, G) weight matrix to pass as ``weight_matrix`` to every outcome's bootstrap."""
    check_option("kind", kind, BootWeights)
    return bootstrap_weights(n_clusters, n_boot, kind, rng=np.random.default_rng(seed))
