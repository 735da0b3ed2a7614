"""Difference in differences, ANCOVA and event studies at trust level (patient-level DiD: :mod:`.patient_did`).

Linear trust-level estimators (:func:`did_aggregate`, :func:`did_twfe`,
:func:`ancova`, :func:`event_study`) are weighted least squares with the
cluster-robust variance of :mod:`rp2pr_eval.models.linear` (CR1, CR2 with
Satterthwaite df, CR3), clustered on ``pair_id`` by default.  Each also exposes
its :class:`LinearSpec` (outcome, weights, design as a function of the
treatment assignment), which the randomisation test and the wild cluster
bootstrap use without refitting.

Patient-level :func:`did_logistic` and :func:`did_cox` live in
:mod:`rp2pr_eval.estimators.patient_did` and are re-exported here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from rp2pr_eval._arrays import sorted_codes
from rp2pr_eval._options import IncompletePairs, RatesType, VcovType, WeightsType, check_level, check_option
from rp2pr_eval.errors import DataError
from rp2pr_eval.estimators.patient_did import did_cox, did_logistic, marginal_risk_difference
from rp2pr_eval.estimators.prepare import (
    Prepared,
    prepare,
    scale_of,
    trust_values,
)
from rp2pr_eval.models.linear import LinearFit, wald_test, wls
from rp2pr_eval.results.effect import Effect
from rp2pr_eval.results.event_study import EventStudy
from rp2pr_eval.study.design import StudyDesign, resolve_design

__all__ = ["LINEAR_ESTIMATORS", "LinearSpec", "ancova", "did_aggregate", "did_cox", "did_logistic", "did_twfe",
           "event_study", "linear_spec", "linear_specs", "marginal_risk_difference", "spec_from_panel"]

# --------------------------------------------------------------------------- linear specs
LINEAR_ESTIMATORS_DEFAULT = ("did_aggregate", "ancova", "did_twfe")

@dataclass(frozen=True, slots=True, eq=False)
class LinearSpec:
    """A trust-level linear estimator as data: everything needed to refit it under another assignment.

    The design is ``[fixed, scales[c] × T for each c, absorb]`` where ``T`` is the
    treatment indicator of each row's randomisation unit (pair): the
    assignment enters only through the ``treat`` columns, so the randomisation
    test and the wild bootstrap can recompute the estimator for thousands of
    assignments without refitting (:mod:`rp2pr_eval.models.randomisation`).
    """

    estimator: str
    outcome: str
    y: np.ndarray
    weights: np.ndarray | None
    fixed: np.ndarray                # (n, p) assignment-free columns
    fixed_names: tuple[str, ...]
    scales: np.ndarray               # (q, n): treatment column c = scales[c] * T
    treat_names: tuple[str, ...]
    coef_name: str
    unit: np.ndarray                 # randomisation unit (pair) per row, integer codes
    unit_labels: np.ndarray
    unit_assignment: np.ndarray      # observed 0/1 per unit
    trust: np.ndarray                # trust codes per row
    cluster: np.ndarray | None       # cluster codes per row
    absorb: np.ndarray | None = field(default=None, repr=False)
    absorb_names: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return self.fixed_names + self.treat_names + self.absorb_names

    @property
    def coef_index(self) -> int:
        return self.names.index(self.coef_name)

    @property
    def treated(self) -> np.ndarray:
        """Treatment indicator per row under the observed assignment."""
        return self.unit_assignment[self.unit].astype(float)

    @property
    def effect_exposure(self) -> np.ndarray:
        """Rows' exposure to the effect under the observed assignment (column ``coef_name``)."""
        return self.scales[self.treat_names.index(self.coef_name)] * self.treated if self.coef_name in self.treat_names else np.zeros(len(self.y))

    def design(self, T: np.ndarray) -> np.ndarray:
        """Design matrix for a per-row treatment indicator ``T`` (n,)."""
        T = np.asarray(T, dtype=float)
        blocks = [self.fixed, (self.scales * T[None, :]).T]
        if self.absorb is not None:
            blocks.append(self.absorb)
        return np.column_stack(blocks)

    @property
    def X(self) -> np.ndarray:
        return self.design(self.treated)

    def treat_maps(self) -> np.ndarray:
        """Linear maps (q, n, n_units) from a unit assignment to the treatment columns."""
        n_units = len(self.unit_labels)
        out = np.zeros((len(self.scales), len(self.y), n_units))
        rows = np.arange(len(self.y))
        for c, scale in enumerate(self.scales):
            out[c, rows, self.unit] = scale
        return out


def _units(frame: pd.DataFrame, design: StudyDesign) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair codes per row, pair labels (sorted) and the observed assignment per pair."""
    codes, labels = sorted_codes(frame["pair_id"])
    treated = np.zeros(len(labels))
    treated[codes] = (frame["arm"].to_numpy(dtype=object) == design.intervention_arm).astype(float)
    return codes, labels, treated


def _check_common(vcov, weights, level) -> None:
    check_option("vcov", vcov, VcovType)
    check_option("weights", weights, WeightsType, allow_none=True)
    check_level(level)


def _effect_from_fit(fit: LinearFit, term: str, *, prep: Prepared, estimator: str, estimand: str, scale: str,
                     n_obs: int, level: float, vcov: str, extra: dict | None = None,
                     n_trusts: int | None = None) -> Effect:
    t = fit.t_test(term, level=level)
    coefs = {n: (float(b), float(s)) for n, b, s in zip(fit.names, fit.coef, fit.se) if not n.startswith(("trust[", "year["))}
    details = {"coefficients": coefs, "n_dropped": prep.n_dropped, **prep.notes(), **(extra or {})}
    return Effect(
        outcome=prep.entry.name, estimator=estimator, estimand=estimand, scale=scale,
        estimate=t["estimate"], se=t["se"], ci_low=t["ci_low"], ci_high=t["ci_high"], p_value=t["p_value"],
        df=t["df"], n_obs=n_obs, n_trusts=prep.n_trusts if n_trusts is None else n_trusts, n_clusters=fit.n_clusters if prep.cluster else None,
        cluster=prep.cluster, vcov=vcov, level=level, details=details,
    )


# --------------------------------------------------------------------------- did_aggregate
def _aggregate_spec(prep: Prepared, weights: str | None, summary: str, estimator: str,
                    panel: pd.DataFrame | None = None) -> tuple[LinearSpec, pd.DataFrame]:
    panel = trust_values(prep, "period", summary=summary) if panel is None else panel
    post = (panel["period"].to_numpy(dtype=object) == "post").astype(float)
    unit, labels, assignment = _units(panel, prep.design)
    spec = LinearSpec(
        estimator=estimator, outcome=prep.entry.name, y=panel["value"].to_numpy(dtype=float),
        weights=panel["weight"].to_numpy(dtype=float) if weights == "denominator" else None,
        fixed=np.column_stack([np.ones(len(panel)), post]), fixed_names=("intercept", "post"),
        scales=np.vstack([np.ones(len(panel)), post]), treat_names=("treated", "treated:post"),
        coef_name="treated:post", unit=unit, unit_labels=labels, unit_assignment=assignment,
        trust=sorted_codes(panel["trust_id"])[0], cluster=prep.cluster_codes(panel),
    )
    return spec, panel


def did_aggregate(
    patients: pd.DataFrame,
    outcome: str,
    *,
    design: StudyDesign | None = None,
    cluster: str | None = "pair_id",
    weights: str | None = "denominator",
    vcov: str = "CR2",
    summary: str = "mean_log",
    level: float = 0.95,
    incomplete_pairs: IncompletePairs | None = None,
    rates: RatesType = "crude",
) -> Effect:
    r"""Aggregate difference in differences on trust × period (pre/post) values.

    Estimand: the difference in differences of proportions (intervention −
    control, post − pre), on the risk-difference scale (a proportion, not
    percent).  For continuous outcomes (waiting times) the trust values are the
    mean of log(1 + days) (``summary="mean_log"``: a ratio of geometric means on
    the log scale) or the median (``"median"``: days).

    Model (weighted least squares, one row per trust × period, during years left out)

    .. math:: \bar y_{tp} = \beta_0 + \beta_1 T_t + \beta_2 \text{post}_p + \delta\, T_t \text{post}_p + e_{tp}

    with weights = the cell's patients (``weights="denominator"``) or none.
    The estimate is :math:`\hat\delta`; its variance is cluster-robust by
    ``cluster`` (CR2 with Satterthwaite df by default).

    Parameters
    ----------
    patients, outcome
        Patient table and a registry name (or 0/1 / numeric column).
    design
        Study design (``None``: the default 2008–09 / 2010–11 / 2012–13).
    cluster
        ``"pair_id"`` (default; the unit of randomisation), ``"trust_id"`` or ``None``.
    weights
        ``"denominator"`` or ``None``.
    vcov
        ``"CR1"``, ``"CR2"`` or ``"CR3"``.
    summary
        Continuous outcomes only: ``"mean_log"`` or ``"median"``.
    level
        Confidence level.
    incomplete_pairs
        A pair with one trust left: ``None`` (default) refuses it; ``"keep"`` keeps it as a one-trust
        cluster (variance) and randomisation unit; ``"drop"`` leaves the pair out, noted in
        ``details["incomplete_pairs"]`` and counted in ``details["n_dropped"]`` (docs/METHODS.md).
    rates
        ``"crude"`` (default) or ``"adjusted"``: the case-mix-adjusted (indirectly standardised) trust
        rates of :func:`~rp2pr_eval.estimators.case_mix.case_mix_adjusted_rates` (model on
        :data:`rp2pr_eval.CASE_MIX`, fitted on the pre years) in place of the crude rates; binary
        outcomes and patient tables only.

    ``patients`` may also be a trust panel (``trust_id, pair_id, arm, audit_year, outcome, numerator,
    denominator``, as :func:`rp2pr_eval.trust_panel` with ``by="audit_year"`` or
    :func:`rp2pr_eval.load_panel` gives): the same numbers as from the patients (binary outcomes only;
    a panel carries no waiting times).  The same holds for :func:`ancova`, :func:`did_twfe`,
    :func:`event_study` and :func:`~rp2pr_eval.mixed_linear`, with the same two options.

    Returns
    -------
    Effect

    References
    ----------
    Bertrand, Duflo & Mullainathan (2004) QJE 119:249; Pustejovsky & Tipton (2018) JBES 36:672.
    R: ``lm(rate ~ treated * post, weights = denominator)`` + ``clubSandwich::coef_test(vcov = "CR2", cluster = pair_id)``.
    """
    _check_common(vcov, weights, level)
    prep = prepare(patients, outcome, design=design, cluster=cluster, estimator="did_aggregate", trust_level_only=True,
                   panel_ok=True, incomplete_pairs=incomplete_pairs, rates=rates)
    spec, panel = _aggregate_spec(prep, weights, summary, "did_aggregate")
    fit = wls(spec.X, spec.y, weights=spec.weights, cluster=spec.cluster, vcov=vcov, names=spec.names,
              df_terms=[spec.coef_name])
    scale = scale_of(prep.entry, summary)
    estimand = {"risk_difference": "difference in differences of proportions",
                "log_ratio": "difference in differences of mean log(1 + days) (log ratio of geometric means)",
                "days": "difference in differences of trust median days"}[scale]
    return _effect_from_fit(fit, "treated:post", prep=prep, estimator="did_aggregate", estimand=estimand,
                            scale=scale, n_obs=len(panel), level=level, vcov=vcov,
                            extra={"weights": weights, "n_patients": prep.n_patients})


# --------------------------------------------------------------------------- ancova
def _ancova_spec(prep: Prepared, weights: str | None, summary: str,
                 panel: pd.DataFrame | None = None) -> tuple[LinearSpec, pd.DataFrame]:
    panel = trust_values(prep, "period", summary=summary) if panel is None else panel
    # one row per trust (sorted): its pre value, post value and post weight, its first row's trust columns
    t_code, t_labels = sorted_codes(panel["trust_id"])
    period = panel["period"].to_numpy(dtype=object)
    value, weight = panel["value"].to_numpy(dtype=float), panel["weight"].to_numpy(dtype=float)
    by_period = {}
    for label in ("pre", "post"):
        rows = np.flatnonzero(period == label)
        if len(np.unique(t_code[rows])) < len(rows):
            raise DataError(f"ancova: more than one {label!r} row for a trust in the trust values; expected one "
                            "row per trust and period")
        by_period[label] = rows
    pre, post_value, post_weight = np.full(len(t_labels), np.nan), np.full(len(t_labels), np.nan), np.full(len(t_labels), np.nan)
    pre[t_code[by_period["pre"]]] = value[by_period["pre"]]
    post_value[t_code[by_period["post"]]] = value[by_period["post"]]
    post_weight[t_code[by_period["post"]]] = weight[by_period["post"]]
    frame = panel.iloc[np.unique(t_code, return_index=True)[1]]
    unit, labels, assignment = _units(frame, prep.design)
    spec = LinearSpec(
        estimator="ancova", outcome=prep.entry.name, y=post_value,
        weights=post_weight if weights == "denominator" else None,
        fixed=np.column_stack([np.ones(len(frame)), pre]),
        fixed_names=("intercept", "baseline"), scales=np.ones((1, len(frame))), treat_names=("treated",),
        coef_name="treated", unit=unit, unit_labels=labels, unit_assignment=assignment,
        trust=np.arange(len(t_labels)), cluster=prep.cluster_codes(frame),
    )
    return spec, frame


def ancova(
    patients: pd.DataFrame,
    outcome: str,
    *,
    design: StudyDesign | None = None,
    cluster: str | None = "pair_id",
    weights: str | None = "denominator",
    vcov: str = "CR2",
    summary: str = "mean_log",
    level: float = 0.95,
    incomplete_pairs: IncompletePairs | None = None,
    rates: RatesType = "crude",
) -> Effect:
    r"""Trust-level ANCOVA: post-period value on arm and baseline (pre-period) value — the primary analysis.

    Estimand: the baseline-adjusted difference in post-period proportions
    (intervention − control), risk-difference scale.

    .. math:: \bar y_{t,\text{post}} = \beta_0 + \tau T_t + \gamma\, \bar y_{t,\text{pre}} + e_t

    weighted by the post-period denominator (``weights="denominator"``), CR2 by
    pair with Satterthwaite df.  DiD is this model with γ fixed at 1; ANCOVA
    has variance factor 1 − ρ² against DiD's 2(1 − ρ) and guards against the
    regression to the mean that pairing on contrasting baselines invites.

    ``patients`` may be a trust panel; ``incomplete_pairs`` and ``rates`` as in :func:`did_aggregate`.

    References
    ----------
    McKenzie (2012) J Dev Econ 99:210; Leyrat et al. (2018) Int J Epidemiol 47:321.
    R: ``lm(post ~ treated + pre, weights = n_post)`` + ``clubSandwich::coef_test(vcov = "CR2", cluster = pair_id)``.
    """
    _check_common(vcov, weights, level)
    prep = prepare(patients, outcome, design=design, cluster=cluster, estimator="ancova", trust_level_only=True,
                   panel_ok=True, incomplete_pairs=incomplete_pairs, rates=rates)
    spec, frame = _ancova_spec(prep, weights, summary)
    fit = wls(spec.X, spec.y, weights=spec.weights, cluster=spec.cluster, vcov=vcov, names=spec.names,
              df_terms=[spec.coef_name])
    scale = scale_of(prep.entry, summary)
    estimand = {"risk_difference": "baseline-adjusted difference in post-period proportions",
                "log_ratio": "baseline-adjusted difference in post-period mean log(1 + days)",
                "days": "baseline-adjusted difference in post-period trust median days"}[scale]
    return _effect_from_fit(fit, "treated", prep=prep, estimator="ancova", estimand=estimand, scale=scale,
                            n_obs=len(frame), level=level, vcov=vcov,
                            extra={"weights": weights, "baseline_slope": float(fit.coef[fit.names.index("baseline")]),
                                   "n_patients": prep.n_patients})


# --------------------------------------------------------------------------- did_twfe
def _dummies(codes: np.ndarray, prefix: str, labels, *, drop_first: bool) -> tuple[np.ndarray, list[str]]:
    k = int(codes.max()) + 1
    D = np.zeros((len(codes), k))
    D[np.arange(len(codes)), codes] = 1.0
    names = [f"{prefix}[{lab}]" for lab in labels]
    if drop_first:
        return D[:, 1:], names[1:]
    return D, names


def _twfe_spec(prep: Prepared, weights: str | None, summary: str,
               panel: pd.DataFrame | None = None) -> tuple[LinearSpec, pd.DataFrame]:
    panel = trust_values(prep, "audit_year", summary=summary) if panel is None else panel
    post = np.isin(panel["audit_year"], prep.design.post_years).astype(float)
    tcode, tlabels = sorted_codes(panel["trust_id"])
    ycode, ylabels = sorted_codes(panel["audit_year"])
    TD, tn = _dummies(tcode, "trust", tlabels, drop_first=False)
    YD, yn = _dummies(ycode, "year", ylabels, drop_first=True)
    unit, labels, assignment = _units(panel, prep.design)
    spec = LinearSpec(
        estimator="did_twfe", outcome=prep.entry.name, y=panel["value"].to_numpy(dtype=float),
        weights=panel["weight"].to_numpy(dtype=float) if weights == "denominator" else None,
        fixed=np.empty((len(panel), 0)), fixed_names=(), scales=post[None, :], treat_names=("treated:post",),
        coef_name="treated:post", unit=unit, unit_labels=labels, unit_assignment=assignment, trust=tcode,
        cluster=prep.cluster_codes(panel), absorb=np.column_stack([TD, YD]), absorb_names=(*tn, *yn),
    )
    return spec, panel


def did_twfe(
    patients: pd.DataFrame,
    outcome: str,
    *,
    design: StudyDesign | None = None,
    cluster: str | None = "pair_id",
    weights: str | None = "denominator",
    vcov: str = "CR1",
    summary: str = "mean_log",
    level: float = 0.95,
    incomplete_pairs: IncompletePairs | None = None,
    rates: RatesType = "crude",
) -> Effect:
    r"""Two-way fixed-effects DiD on trust × audit-year values (during years left out).

    .. math:: \bar y_{ty} = \alpha_t + \lambda_y + \delta\, T_t\, \text{post}_y + e_{ty}

    Weighted least squares on the explicit trust and year dummy design
    (:func:`~rp2pr_eval.models.linear.wls`, the engine of
    :func:`rp2pr_eval.models.cluster_ols`), so CR1/CR2/CR3 are the package's
    single implementation.  Degrees-of-freedom convention for CR1: the factor
    G/(G−1)·(N−1)/(N−K) with K counting every estimated coefficient including
    the absorbed trust and year effects (as R ``sandwich::vcovCL(lm(y ~ factor(trust) +
    factor(year) + D), type = "HC1")`` and Stata ``regress ... i.trust i.year,
    vce(cluster pair)``), reference t(G − 1).  This equals linearmodels
    ``PanelOLS(entity_effects=True, time_effects=True).fit(cov_type="clustered",
    debiased=True, group_debias=True)`` to rounding (checked in
    ``tests/test_did.py``, no longer on every call).

    ``patients`` may be a trust panel by audit year; ``incomplete_pairs`` and ``rates`` as in
    :func:`did_aggregate`.

    References
    ----------
    Angrist & Pischke (2009) ch. 5; Cameron & Miller (2015) J Hum Resour 50:317.
    """
    _check_common(vcov, weights, level)
    prep = prepare(patients, outcome, design=design, cluster=cluster, estimator="did_twfe", trust_level_only=True,
                   panel_ok=True, incomplete_pairs=incomplete_pairs, rates=rates)
    spec, panel = _twfe_spec(prep, weights, summary)
    fit = wls(spec.X, spec.y, weights=spec.weights, cluster=spec.cluster, vcov=vcov, names=spec.names,
              df_terms=[spec.coef_name])
    scale = scale_of(prep.entry, summary)
    return _effect_from_fit(fit, "treated:post", prep=prep, estimator="did_twfe",
                            estimand="two-way fixed-effects difference in differences", scale=scale,
                            n_obs=len(panel), level=level, vcov=vcov,
                            extra={"weights": weights, "n_patients": prep.n_patients})


# --------------------------------------------------------------------------- event study
def event_study(
    patients: pd.DataFrame,
    outcome: str,
    *,
    reference_year: int | None = None,
    design: StudyDesign | None = None,
    cluster: str | None = "pair_id",
    weights: str | None = "denominator",
    vcov: str = "CR2",
    summary: str = "mean_log",
    level: float = 0.95,
    incomplete_pairs: IncompletePairs | None = None,
    rates: RatesType = "crude",
) -> EventStudy:
    r"""Event study: intervention − control difference in each audit year relative to ``reference_year``.

    .. math:: \bar y_{ty} = \alpha_t + \lambda_y + \sum_{s \ne r} \delta_s\, T_t\, 1[y = s] + e_{ty}

    on trust × audit-year values of every design year (during years included),
    weighted by denominators, CR2 by pair.  The pre-trend test is the joint
    Wald test that all pre-period δ_s are zero, HTZ small-sample corrected
    (clubSandwich ``Wald_test(test = "HTZ")``); with one pre-period coefficient
    it equals the Satterthwaite t test squared.

    ``reference_year`` defaults to the last pre year.  ``patients`` may be a trust panel by audit
    year; ``incomplete_pairs`` and ``rates`` as in :func:`did_aggregate`.
    """
    _check_common(vcov, weights, level)
    prep = prepare(patients, outcome, design=design, cluster=cluster, keep_during=True, estimator="event_study",
                   panel_ok=True, incomplete_pairs=incomplete_pairs, rates=rates)
    des = prep.design
    ref = des.pre_years[-1] if reference_year is None else reference_year
    if ref not in des.years:
        raise ValueError(f"reference_year={ref} is not a design year {list(des.years)}")
    panel = trust_values(prep, "audit_year", summary=summary)
    audit_year = panel["audit_year"].to_numpy()
    years = [int(y) for y in des.years if (audit_year == y).any()]
    if ref not in years:
        raise DataError(f"event_study: no data in reference year {ref}")
    tcode, tlabels = sorted_codes(panel["trust_id"])
    ycode, ylabels = sorted_codes(panel["audit_year"])
    TD, tn = _dummies(tcode, "trust", tlabels, drop_first=False)
    YD, yn = _dummies(ycode, "year", ylabels, drop_first=True)
    treated = panel["treated"].to_numpy(dtype=float)
    effect_years = [y for y in years if y != ref]
    E = np.column_stack([treated * (audit_year == y) for y in effect_years])
    names = [f"treated:{y}" for y in effect_years]
    X = np.column_stack([E, TD, YD])
    w = panel["weight"].to_numpy(dtype=float) if weights == "denominator" else None
    fit = wls(X, panel["value"].to_numpy(dtype=float), weights=w, cluster=prep.cluster_codes(panel), vcov=vcov,
              names=names + tn + yn, df_terms=names)  # (the df of the 85 fixed effects are never read)
    scale = scale_of(prep.entry, summary)
    effects = []
    n_trusts = prep.n_trusts
    for y, name in zip(effect_years, names):
        e = _effect_from_fit(fit, name, prep=prep, estimator="event_study",
                             estimand=f"intervention − control difference in {y} relative to {ref}", scale=scale,
                             n_obs=len(panel), level=level, vcov=vcov, n_trusts=n_trusts,
                             extra={"year": int(y), "period": des.period_of(y), "reference_year": int(ref)})
        effects.append(e)
    pre_idx = [i for i, y in enumerate(effect_years) if y in des.pre_years]
    if pre_idx:
        R = np.zeros((len(pre_idx), X.shape[1]))
        R[np.arange(len(pre_idx)), pre_idx] = 1.0
        wt = wald_test(fit, R, test="HTZ" if vcov == "CR2" else "naive-F")
        stat, dfn, dfd, p, test = wt.statistic, wt.df_num, wt.df_den, wt.p_value, wt.test
    else:
        stat = dfn = dfd = p = float("nan")
        test = "none (no pre-period year besides the reference)"
    return EventStudy(outcome=prep.entry.name, reference_year=int(ref), effects=tuple(effects),
                      years=tuple(years), periods=tuple(des.period_of(y) for y in years),
                      pretrend_statistic=float(stat), pretrend_df_num=float(dfn), pretrend_df_den=float(dfd),
                      pretrend_p=float(p), pretrend_test=str(test),
                      vcov=tuple(tuple(float(v) for v in row) for row in fit.vcov[:len(names), :len(names)]),
                      vcov_years=tuple(int(y) for y in effect_years))


# --------------------------------------------------------------------------- patient-level logistic


# --------------------------------------------------------------------------- Cox


# --------------------------------------------------------------------------- specs for resampling
def linear_spec(
    patients: pd.DataFrame,
    outcome: str,
    estimator: str | Callable = "did_aggregate",
    *,
    design: StudyDesign | None = None,
    cluster: str | None = "pair_id",
    weights: str | None = "denominator",
    summary: str = "mean_log",
    incomplete_pairs: IncompletePairs | None = None,
    rates: RatesType = "crude",
) -> LinearSpec:
    """The :class:`LinearSpec` of ``did_aggregate``, ``ancova`` or ``did_twfe`` for resampling inference.

    ``patients`` may be a trust panel; ``incomplete_pairs`` and ``rates`` as for the estimators.
    """
    name = estimator if isinstance(estimator, str) else getattr(estimator, "__name__", str(estimator))
    if name not in LINEAR_ESTIMATORS_DEFAULT:
        raise ValueError(f"estimator {name!r} has no linear spec; expected one of {', '.join(LINEAR_ESTIMATORS_DEFAULT)}")
    return linear_specs(patients, outcome, (name,), design=design, cluster=cluster, weights=weights,
                        summary=summary, incomplete_pairs=incomplete_pairs, rates=rates)[name]


def linear_specs(
    patients: pd.DataFrame,
    outcome: str,
    estimators: Sequence[str] = LINEAR_ESTIMATORS_DEFAULT,
    *,
    design: StudyDesign | None = None,
    cluster: str | None = "pair_id",
    weights: str | None = "denominator",
    summary: str = "mean_log",
    incomplete_pairs: IncompletePairs | None = None,
    rates: RatesType = "crude",
) -> dict[str, LinearSpec]:
    """Several :class:`LinearSpec` from one validation pass (for simulation studies)."""
    check_option("weights", weights, WeightsType, allow_none=True)
    prep = prepare(patients, outcome, design=design, cluster=cluster,
                   estimator=estimators[0] if len(estimators) == 1 else "linear_specs", trust_level_only=True,
                   panel_ok=True, incomplete_pairs=incomplete_pairs, rates=rates)
    unknown = [e for e in estimators if e not in LINEAR_ESTIMATORS_DEFAULT]
    if unknown:
        raise ValueError(f"no linear spec for {unknown}; expected names from {', '.join(LINEAR_ESTIMATORS_DEFAULT)}")
    return {name: _build_spec(name, prep, weights, summary) for name in estimators}


def _build_spec(estimator: str, prep: Prepared, weights: str | None, summary: str,
                panel: pd.DataFrame | None = None) -> LinearSpec:
    """The spec builder of one linear estimator (``panel``: trust values already aggregated)."""
    if estimator == "did_aggregate":
        return _aggregate_spec(prep, weights, summary, "did_aggregate", panel)[0]
    if estimator == "ancova":
        return _ancova_spec(prep, weights, summary, panel)[0]
    if estimator == "did_twfe":
        return _twfe_spec(prep, weights, summary, panel)[0]
    raise ValueError(f"no linear spec for {estimator!r}; expected one of {', '.join(LINEAR_ESTIMATORS_DEFAULT)}")


def spec_from_panel(
    panel: pd.DataFrame,
    outcome: str,
    estimator: str,
    *,
    design: StudyDesign | None = None,
    cluster: str | None = "pair_id",
    weights: str | None = "denominator",
    summary: str = "mean_log",
) -> LinearSpec:
    """The :class:`LinearSpec` of a linear estimator from its trust values (no patient table).

    ``panel`` is what the estimator aggregates the patient table to (the
    internal ``trust_values`` layout: one row per trust × ``period`` for
    ``did_aggregate``/``ancova``, per trust × ``audit_year`` of the pre and post
    years for ``did_twfe``; columns ``trust_id``, ``pair_id``, ``arm``,
    ``treated``, the time column, ``value`` and ``weight``), for callers that
    build it directly such as the power simulation.  It does not validate its
    input: on a patient table use :func:`linear_specs`.
    """
    from rp2pr_eval.study.outcomes import OUTCOMES

    prep = Prepared(entry=OUTCOMES[outcome], rows=panel.iloc[:0], n_dropped={}, design=resolve_design(design),
                    cluster=cluster)
    return _build_spec(estimator, prep, weights, summary, panel)


LINEAR_ESTIMATORS = LINEAR_ESTIMATORS_DEFAULT
