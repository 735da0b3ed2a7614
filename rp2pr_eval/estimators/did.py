"""Difference in differences, ANCOVA and event studies at trust level; patient-level logistic and Cox DiD.

Linear trust-level estimators (:func:`did_aggregate`, :func:`did_twfe`,
:func:`ancova`, :func:`event_study`) are weighted least squares with the
cluster-robust variance of :mod:`rp2pr_eval.models.linear` (CR1, CR2 with
Satterthwaite df, CR3), clustered on ``pair_id`` by default.  Each also exposes
its :class:`LinearSpec` (outcome, weights, design as a function of the
treatment assignment), which the randomisation test and the wild cluster
bootstrap use without refitting.

Patient-level :func:`did_logistic` (statsmodels GLM) and :func:`did_cox`
(statsmodels PHReg) use cluster-robust sandwich variances.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from rp2pr_eval._options import VcovType, WeightsType, check_level, check_option
from rp2pr_eval.errors import DataError
from rp2pr_eval.estimators.prepare import (
    Prepared,
    check_cells,
    patient_design,
    prepare,
    scale_of,
    trust_values,
)
from rp2pr_eval.models.linear import LinearFit, wald_test, wls
from rp2pr_eval.results.effect import Effect
from rp2pr_eval.results.event_study import EventStudy
from rp2pr_eval.study.design import StudyDesign, resolve_design

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
    codes, labels = pd.factorize(frame["pair_id"], sort=True)
    treated = np.zeros(len(labels))
    treated[codes] = (frame["arm"] == design.intervention_arm).to_numpy(dtype=float)
    return codes, np.asarray(labels), treated


def _check_common(vcov, weights, level) -> None:
    check_option("vcov", vcov, VcovType)
    check_option("weights", weights, WeightsType, allow_none=True)
    check_level(level)


def _effect_from_fit(fit: LinearFit, term: str, *, prep: Prepared, estimator: str, estimand: str, scale: str,
                     n_obs: int, level: float, vcov: str, extra: dict | None = None) -> Effect:
    t = fit.t_test(term, level=level)
    coefs = {n: (float(b), float(s)) for n, b, s in zip(fit.names, fit.coef, fit.se) if not n.startswith(("trust[", "year["))}
    details = {"coefficients": coefs, "n_dropped": prep.n_dropped, **(extra or {})}
    return Effect(
        outcome=prep.entry.name, estimator=estimator, estimand=estimand, scale=scale,
        estimate=t["estimate"], se=t["se"], ci_low=t["ci_low"], ci_high=t["ci_high"], p_value=t["p_value"],
        df=t["df"], n_obs=n_obs, n_trusts=prep.n_trusts, n_clusters=fit.n_clusters if prep.cluster else None,
        cluster=prep.cluster, vcov=vcov, level=level, details=details,
    )


# --------------------------------------------------------------------------- did_aggregate
def _aggregate_spec(prep: Prepared, weights: str | None, summary: str, estimator: str,
                    panel: pd.DataFrame | None = None) -> tuple[LinearSpec, pd.DataFrame]:
    panel = trust_values(prep, "period", summary=summary) if panel is None else panel
    post = (panel["period"] == "post").to_numpy(dtype=float)
    unit, labels, assignment = _units(panel, prep.design)
    spec = LinearSpec(
        estimator=estimator, outcome=prep.entry.name, y=panel["value"].to_numpy(dtype=float),
        weights=panel["weight"].to_numpy(dtype=float) if weights == "denominator" else None,
        fixed=np.column_stack([np.ones(len(panel)), post]), fixed_names=("intercept", "post"),
        scales=np.vstack([np.ones(len(panel)), post]), treat_names=("treated", "treated:post"),
        coef_name="treated:post", unit=unit, unit_labels=labels, unit_assignment=assignment,
        trust=pd.factorize(panel["trust_id"], sort=True)[0], cluster=prep.cluster_codes(panel),
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

    Returns
    -------
    Effect

    References
    ----------
    Bertrand, Duflo & Mullainathan (2004) QJE 119:249; Pustejovsky & Tipton (2018) JBES 36:672.
    R: ``lm(rate ~ treated * post, weights = denominator)`` + ``clubSandwich::coef_test(vcov = "CR2", cluster = pair_id)``.
    """
    _check_common(vcov, weights, level)
    prep = prepare(patients, outcome, design=design, cluster=cluster, estimator="did_aggregate", trust_level_only=True)
    spec, panel = _aggregate_spec(prep, weights, summary, "did_aggregate")
    fit = wls(spec.X, spec.y, weights=spec.weights, cluster=spec.cluster, vcov=vcov, names=spec.names)
    scale = scale_of(prep.entry, summary)
    estimand = {"risk_difference": "difference in differences of proportions",
                "log_ratio": "difference in differences of mean log(1 + days) (log ratio of geometric means)",
                "days": "difference in differences of trust median days"}[scale]
    return _effect_from_fit(fit, "treated:post", prep=prep, estimator="did_aggregate", estimand=estimand,
                            scale=scale, n_obs=len(panel), level=level, vcov=vcov,
                            extra={"weights": weights, "n_patients": int(len(prep.rows))})


# --------------------------------------------------------------------------- ancova
def _ancova_spec(prep: Prepared, weights: str | None, summary: str,
                 panel: pd.DataFrame | None = None) -> tuple[LinearSpec, pd.DataFrame]:
    panel = trust_values(prep, "period", summary=summary) if panel is None else panel
    wide = panel.pivot(index="trust_id", columns="period", values="value")
    wts = panel.pivot(index="trust_id", columns="period", values="weight")
    trusts = panel.drop_duplicates("trust_id").set_index("trust_id").loc[wide.index]
    frame = trusts.assign(pre=wide["pre"], post_value=wide["post"], weight=wts["post"]).reset_index()
    unit, labels, assignment = _units(frame, prep.design)
    spec = LinearSpec(
        estimator="ancova", outcome=prep.entry.name, y=frame["post_value"].to_numpy(dtype=float),
        weights=frame["weight"].to_numpy(dtype=float) if weights == "denominator" else None,
        fixed=np.column_stack([np.ones(len(frame)), frame["pre"].to_numpy(dtype=float)]),
        fixed_names=("intercept", "baseline"), scales=np.ones((1, len(frame))), treat_names=("treated",),
        coef_name="treated", unit=unit, unit_labels=labels, unit_assignment=assignment,
        trust=pd.factorize(frame["trust_id"], sort=True)[0], cluster=prep.cluster_codes(frame),
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
) -> Effect:
    r"""Trust-level ANCOVA: post-period value on arm and baseline (pre-period) value — the primary analysis.

    Estimand: the baseline-adjusted difference in post-period proportions
    (intervention − control), risk-difference scale.

    .. math:: \bar y_{t,\text{post}} = \beta_0 + \tau T_t + \gamma\, \bar y_{t,\text{pre}} + e_t

    weighted by the post-period denominator (``weights="denominator"``), CR2 by
    pair with Satterthwaite df.  DiD is this model with γ fixed at 1; ANCOVA
    has variance factor 1 − ρ² against DiD's 2(1 − ρ) and guards against the
    regression to the mean that pairing on contrasting baselines invites.

    References
    ----------
    McKenzie (2012) J Dev Econ 99:210; Leyrat et al. (2018) Int J Epidemiol 47:321.
    R: ``lm(post ~ treated + pre, weights = n_post)`` + ``clubSandwich::coef_test(vcov = "CR2", cluster = pair_id)``.
    """
    _check_common(vcov, weights, level)
    prep = prepare(patients, outcome, design=design, cluster=cluster, estimator="ancova", trust_level_only=True)
    spec, frame = _ancova_spec(prep, weights, summary)
    fit = wls(spec.X, spec.y, weights=spec.weights, cluster=spec.cluster, vcov=vcov, names=spec.names)
    scale = scale_of(prep.entry, summary)
    estimand = {"risk_difference": "baseline-adjusted difference in post-period proportions",
                "log_ratio": "baseline-adjusted difference in post-period mean log(1 + days)",
                "days": "baseline-adjusted difference in post-period trust median days"}[scale]
    return _effect_from_fit(fit, "treated", prep=prep, estimator="ancova", estimand=estimand, scale=scale,
                            n_obs=len(frame), level=level, vcov=vcov,
                            extra={"weights": weights, "baseline_slope": float(fit.coef[fit.names.index("baseline")]),
                                   "n_patients": int(len(prep.rows))})


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
    tcode, tlabels = pd.factorize(panel["trust_id"], sort=True)
    ycode, ylabels = pd.factorize(panel["audit_year"], sort=True)
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
) -> Effect:
    r"""Two-way fixed-effects DiD on trust × audit-year values (during years left out).

    .. math:: \bar y_{ty} = \alpha_t + \lambda_y + \delta\, T_t\, \text{post}_y + e_{ty}

    The point estimate comes from linearmodels ``PanelOLS`` (entity and time
    effects, weights); the variance from :func:`~rp2pr_eval.models.linear.wls`
    on the explicit dummy design, so CR1/CR2/CR3 are the package's single
    implementation.  Degrees-of-freedom convention for CR1: the factor
    G/(G−1)·(N−1)/(N−K) with K counting every estimated coefficient including
    the absorbed trust and year effects (as R ``sandwich::vcovCL(lm(y ~ factor(trust) +
    factor(year) + D), type = "HC1")`` and Stata ``regress ... i.trust i.year,
    vce(cluster pair)``), reference t(G − 1).  This equals linearmodels'
    ``fit(cov_type="clustered", debiased=True, group_debias=True)`` exactly
    (checked on every fit and stored in ``details["linearmodels_se"]``).

    References
    ----------
    Angrist & Pischke (2009) ch. 5; Cameron & Miller (2015) J Hum Resour 50:317.
    """
    _check_common(vcov, weights, level)
    prep = prepare(patients, outcome, design=design, cluster=cluster, estimator="did_twfe", trust_level_only=True)
    spec, panel = _twfe_spec(prep, weights, summary)
    fit = wls(spec.X, spec.y, weights=spec.weights, cluster=spec.cluster, vcov=vcov, names=spec.names)
    lm = _panelols(panel, spec)
    if not np.isclose(lm["estimate"], fit.coef[0], rtol=1e-7, atol=1e-10):
        raise RuntimeError(f"did_twfe: PanelOLS ({lm['estimate']}) and the dummy regression ({fit.coef[0]}) disagree")
    scale = scale_of(prep.entry, summary)
    return _effect_from_fit(fit, "treated:post", prep=prep, estimator="did_twfe",
                            estimand="two-way fixed-effects difference in differences", scale=scale,
                            n_obs=len(panel), level=level, vcov=vcov,
                            extra={"weights": weights, "linearmodels_se": lm["se"], "n_patients": int(len(prep.rows))})


def _panelols(panel: pd.DataFrame, spec: LinearSpec) -> dict[str, float]:
    from linearmodels.panel import PanelOLS

    idx = pd.MultiIndex.from_arrays([panel["trust_id"].astype(str), panel["audit_year"].astype(int)])
    y = pd.Series(spec.y, index=idx, name="y")
    X = pd.DataFrame({"treated:post": spec.effect_exposure}, index=idx)
    w = None if spec.weights is None else pd.Series(spec.weights, index=idx)
    model = PanelOLS(y, X, entity_effects=True, time_effects=True, weights=w)
    if spec.cluster is not None:
        res = model.fit(cov_type="clustered", clusters=pd.DataFrame({"c": spec.cluster}, index=idx),
                        debiased=True, group_debias=True)
    else:
        res = model.fit(cov_type="robust", debiased=True)
    return {"estimate": float(res.params.iloc[0]), "se": float(res.std_errors.iloc[0])}


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
) -> EventStudy:
    r"""Event study: intervention − control difference in each audit year relative to ``reference_year``.

    .. math:: \bar y_{ty} = \alpha_t + \lambda_y + \sum_{s \ne r} \delta_s\, T_t\, 1[y = s] + e_{ty}

    on trust × audit-year values of every design year (during years included),
    weighted by denominators, CR2 by pair.  The pre-trend test is the joint
    Wald test that all pre-period δ_s are zero, HTZ small-sample corrected
    (clubSandwich ``Wald_test(test = "HTZ")``); with one pre-period coefficient
    it equals the Satterthwaite t test squared.

    ``reference_year`` defaults to the last pre year.
    """
    _check_common(vcov, weights, level)
    prep = prepare(patients, outcome, design=design, cluster=cluster, keep_during=True, estimator="event_study")
    des = prep.design
    ref = des.pre_years[-1] if reference_year is None else reference_year
    if ref not in des.years:
        raise ValueError(f"reference_year={ref} is not a design year {list(des.years)}")
    panel = trust_values(prep, "audit_year", summary=summary)
    years = [int(y) for y in des.years if (panel["audit_year"] == y).any()]
    if ref not in years:
        raise DataError(f"event_study: no data in reference year {ref}")
    tcode, tlabels = pd.factorize(panel["trust_id"], sort=True)
    ycode, ylabels = pd.factorize(panel["audit_year"], sort=True)
    TD, tn = _dummies(tcode, "trust", tlabels, drop_first=False)
    YD, yn = _dummies(ycode, "year", ylabels, drop_first=True)
    treated = panel["treated"].to_numpy(dtype=float)
    effect_years = [y for y in years if y != ref]
    E = np.column_stack([treated * (panel["audit_year"].to_numpy() == y) for y in effect_years])
    names = [f"treated:{y}" for y in effect_years]
    X = np.column_stack([E, TD, YD])
    w = panel["weight"].to_numpy(dtype=float) if weights == "denominator" else None
    fit = wls(X, panel["value"].to_numpy(dtype=float), weights=w, cluster=prep.cluster_codes(panel), vcov=vcov,
              names=names + tn + yn)
    scale = scale_of(prep.entry, summary)
    effects = []
    for y, name in zip(effect_years, names):
        e = _effect_from_fit(fit, name, prep=prep, estimator="event_study",
                             estimand=f"intervention − control difference in {y} relative to {ref}", scale=scale,
                             n_obs=len(panel), level=level, vcov=vcov,
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
def marginal_risk_difference(X: np.ndarray, beta: np.ndarray, vcov: np.ndarray, *, term_index: int,
                             target: np.ndarray) -> tuple[float, float]:
    r"""Standardised risk difference and its delta-method SE.

    RD = mean over target rows of expit(x_i β) − expit(x_i β − β_j x_ij), i.e. the
    average effect of switching the treated:post term off among the target
    (post-period intervention) patients; gradient
    g = mean[p1(1−p1) x_i − p0(1−p0) x_i^0], var = g' V g.
    """
    Xt = X[target]
    X0 = Xt.copy()
    X0[:, term_index] = 0.0
    p1, p0 = expit(Xt @ beta), expit(X0 @ beta)
    rd = float(np.mean(p1 - p0))
    g = (p1 * (1 - p1)) @ Xt / len(Xt) - (p0 * (1 - p0)) @ X0 / len(Xt)
    return rd, float(np.sqrt(g @ vcov @ g))


def did_logistic(
    patients: pd.DataFrame,
    outcome: str,
    *,
    covariates: Sequence[str] | None = None,
    design: StudyDesign | None = None,
    cluster: str | None = "pair_id",
    vcov: str = "CR1",
    level: float = 0.95,
) -> Effect:
    r"""Patient-level logistic DiD with case-mix adjustment and a cluster-robust sandwich.

    .. math:: \operatorname{logit} P(y_i = 1) = \beta_0 + \beta_1 T_i + \beta_2 \text{post}_i + \delta\, T_i \text{post}_i + x_i'\gamma

    fitted by maximum likelihood (statsmodels ``GLM``, Binomial); the variance is
    the CR1 sandwich by ``cluster`` (G/(G−1)·(N−1)/(N−K), as R
    ``sandwich::vcovCL(glm, type = "HC1")``) with a t(G − 1) reference.  The
    estimate is the treated:post log odds ratio (conditional on case-mix);
    ``details["odds_ratio"]`` holds exp(δ) with its interval and
    ``details["risk_difference"]`` the marginal, standardised risk difference among
    post-period intervention patients with a delta-method SE
    (:func:`marginal_risk_difference`).

    ``covariates`` defaults to none; pass ``rp.CASE_MIX`` for case-mix
    adjustment (missing performance status/stage are their own level).
    """
    check_option("vcov", vcov, ("CR1",))
    check_level(level)
    import statsmodels.api as sm

    prep = prepare(patients, outcome, design=design, cluster=cluster, kinds=("binary",), estimator="did_logistic")
    y = pd.to_numeric(prep.rows[prep.entry.name]).to_numpy(dtype=float)
    X, names = patient_design(prep, covariates)
    check_cells(prep, y)
    model = sm.GLM(y, X, family=sm.families.Binomial())
    groups = prep.cluster_codes()
    if groups is not None:
        res = model.fit(cov_type="cluster", cov_kwds={"groups": groups, "use_correction": True, "df_correction": True})
        df = float(len(np.unique(groups)) - 1)
    else:
        res = model.fit(cov_type="HC1")
        df = None
    beta, V = np.asarray(res.params), np.asarray(res.cov_params())
    if not np.all(np.isfinite(V)):
        raise DataError(f"did_logistic: the fit for {outcome!r} is singular (check separation or collinear covariates)")
    _check_separation(names, beta, np.asarray(res.fittedvalues), outcome)
    j = names.index("treated:post")
    est, se = float(beta[j]), float(np.sqrt(V[j, j]))
    dist = stats.norm if df is None else stats.t(df)
    q = float(dist.ppf(0.5 + level / 2))
    p = float(2 * dist.sf(abs(est / se)))
    target = (prep.rows["treated"].to_numpy() == 1) & (prep.rows["post"].to_numpy() == 1)
    rd, rd_se = marginal_risk_difference(X, beta, V, term_index=j, target=target)
    details = {
        "coefficients": {n: (float(b), float(s)) for n, b, s in zip(names, beta, np.sqrt(np.diag(V)))},
        "odds_ratio": {"estimate": float(np.exp(est)), "ci_low": float(np.exp(est - q * se)), "ci_high": float(np.exp(est + q * se))},
        "risk_difference": {"estimate": rd, "se": rd_se, "ci_low": rd - q * rd_se, "ci_high": rd + q * rd_se},
        "covariates": list(covariates or []),
        "log_likelihood": float(res.llf),
        "converged": bool(res.converged),
        "n_dropped": prep.n_dropped,
    }
    return Effect(outcome=prep.entry.name, estimator="did_logistic",
                  estimand="treated:post log odds ratio (conditional on case-mix)", scale="log_odds_ratio",
                  estimate=est, se=se, ci_low=est - q * se, ci_high=est + q * se, p_value=p, df=df,
                  n_obs=len(y), n_trusts=prep.n_trusts, n_clusters=None if groups is None else int(df + 1),
                  cluster=prep.cluster, vcov=vcov, level=level, details=details)


def _check_separation(names: Sequence[str], beta: np.ndarray, mu: np.ndarray, outcome: str) -> None:
    """Refuse a logistic fit whose likelihood has no finite maximum (fitted probabilities at 0 or 1).

    A covariate that determines the outcome (e.g. a missing performance status when the outcome is
    ``ps_recorded``) drives its coefficient to ±∞; statsmodels then stops at a large value with a
    meaningless SE.  That is never reported as a number.
    """
    extreme = (mu < 1e-8) | (mu > 1 - 1e-8)
    big = [n for n, b in zip(names, beta) if abs(b) > 15]
    if extreme.mean() > 1e-3 or big:
        raise DataError(f"outcome {outcome!r} is (quasi-)separated by the covariates {big or ''}: "
                        f"{int(extreme.sum())} fitted probabilities are 0 or 1; remove the covariate that "
                        "determines the outcome (e.g. performance_status for ps_recorded)")


# --------------------------------------------------------------------------- Cox
def did_cox(
    patients: pd.DataFrame,
    outcome: str = "survival_days",
    *,
    covariates: Sequence[str] | None = None,
    design: StudyDesign | None = None,
    cluster: str | None = "pair_id",
    level: float = 0.95,
) -> Effect:
    r"""Cox proportional-hazards DiD for survival from first seen.

    .. math:: h_i(t) = h_0(t) \exp(\beta_1 T_i + \beta_2 \text{post}_i + \delta\, T_i \text{post}_i + x_i'\gamma)

    Fitted by :func:`rp2pr_eval.models.cox.fit_cox` (Newton–Raphson on the
    Efron partial likelihood, vectorised; statsmodels ``PHReg`` takes 30–40 s
    here and builds its robust variance from Breslow-type score residuals),
    with the Lin–Wei robust sandwich of score residuals summed by ``cluster``
    — exactly R ``coxph(..., ties = "efron", cluster = pair_id)``, normal
    reference.  The estimate is the treated:post log hazard ratio (negative =
    longer survival).
    """
    check_level(level)
    from rp2pr_eval.models.cox import fit_cox

    prep = prepare(patients, outcome, design=design, cluster=cluster, kinds=("time_to_event",), estimator="did_cox")
    rows = prep.rows
    time = pd.to_numeric(rows[prep.entry.name]).to_numpy(dtype=float)
    status = pd.to_numeric(rows[prep.entry.event_column]).to_numpy(dtype=float)
    X, names = patient_design(prep, covariates)
    X, names = X[:, 1:], names[1:]  # no intercept in a Cox model
    groups = prep.cluster_codes()
    fit = fit_cox(time, status, X, groups=groups, ties="efron", names=names)
    beta, se_all = np.asarray(fit.coef), np.asarray(fit.se)
    j = names.index("treated:post")
    est, se = float(beta[j]), float(se_all[j])
    q = float(stats.norm.ppf(0.5 + level / 2))
    p = float(2 * stats.norm.sf(abs(est / se)))
    details = {
        "coefficients": {n: (float(b), float(s)) for n, b, s in zip(names, beta, se_all)},
        "hazard_ratio": {"estimate": float(np.exp(est)), "ci_low": float(np.exp(est - q * se)), "ci_high": float(np.exp(est + q * se))},
        "covariates": list(covariates or []),
        "n_events": int(status.sum()),
        "log_likelihood": float(fit.loglik),
        "converged": bool(fit.converged),
        "n_dropped": prep.n_dropped,
    }
    return Effect(outcome=prep.entry.name, estimator="did_cox", estimand="treated:post log hazard ratio",
                  scale="log_hazard_ratio", estimate=est, se=se, ci_low=est - q * se, ci_high=est + q * se,
                  p_value=p, df=None, n_obs=len(time), n_trusts=prep.n_trusts,
                  n_clusters=None if groups is None else int(groups.max() + 1), cluster=prep.cluster,
                  vcov="model" if groups is None else "robust", level=level, details=details)


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
) -> LinearSpec:
    """The :class:`LinearSpec` of ``did_aggregate``, ``ancova`` or ``did_twfe`` for resampling inference."""
    name = estimator if isinstance(estimator, str) else getattr(estimator, "__name__", str(estimator))
    if name not in LINEAR_ESTIMATORS_DEFAULT:
        raise ValueError(f"estimator {name!r} has no linear spec; expected one of {', '.join(LINEAR_ESTIMATORS_DEFAULT)}")
    return linear_specs(patients, outcome, (name,), design=design, cluster=cluster, weights=weights,
                        summary=summary)[name]


def linear_specs(
    patients: pd.DataFrame,
    outcome: str,
    estimators: Sequence[str] = LINEAR_ESTIMATORS_DEFAULT,
    *,
    design: StudyDesign | None = None,
    cluster: str | None = "pair_id",
    weights: str | None = "denominator",
    summary: str = "mean_log",
) -> dict[str, LinearSpec]:
    """Several :class:`LinearSpec` from one validation pass (for simulation studies)."""
    check_option("weights", weights, WeightsType, allow_none=True)
    prep = prepare(patients, outcome, design=design, cluster=cluster,
                   estimator=estimators[0] if len(estimators) == 1 else "linear_specs", trust_level_only=True)
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
