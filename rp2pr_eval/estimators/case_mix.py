"""Case-mix-adjusted trust rates by indirect standardisation: the audit's own way of comparing trusts.

A patient-level logistic model of the outcome on case mix (default :data:`rp2pr_eval.CASE_MIX`: age,
sex, performance status, stage, deprivation) is fitted on every trust's eligible patients in the
reference years (default: the design's pre years).  Each patient's fitted probability is the chance
of the outcome for a patient like them at the reference performance of the whole country; summed
over a trust and period they give the **expected** count ``E``.  With ``O`` the observed count,

* ``O/E`` is the observed/expected ratio (indirectly standardised ratio), with an exact Poisson
  (Garwood) or Byar confidence interval for ``O`` divided by ``E`` (``E`` treated as fixed);
* the **indirectly standardised (adjusted) rate** is ``O/E × r_ref``, ``r_ref`` the observed rate
  of the fitting population, with the same interval scaled by ``r_ref``;
* ``national_adjusted_rate`` is ``(ΣO/ΣE) × r_ref`` over all trusts of the period: the target of a
  funnel plot of the adjusted rates (in the reference period it is the national crude rate, since
  a logistic model with an intercept reproduces the observed total: ΣE = ΣO).

The table also holds ``numerator``/``denominator`` (crude), so :func:`rp2pr_eval.figures.plot_funnel`
draws the crude funnel from it and :func:`rp2pr_eval.figures.plot_adjusted_funnel` the adjusted one.
Details, the interval formulas and references: ``docs/methods/case_mix.md``.

The model is statsmodels' ``GLM`` (Binomial, logit link) on an explicit design matrix whose
categorical levels are fixed by the fitting population (so the model predicts the other years with
the same columns); a level that only appears outside the reference years is an error naming it.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from rp2pr_eval._options import IncompletePairs, PanelBy, PoissonCI, check_level, check_option
from rp2pr_eval.data.contract import PERIODS
from rp2pr_eval.data.panel import analysis_mask
from rp2pr_eval.data.validate import validate_patients
from rp2pr_eval.errors import DataError, ParameterError
from rp2pr_eval.study.design import StudyDesign, resolve_design
from rp2pr_eval.study.outcomes import CASE_MIX, CATEGORICAL_COLUMNS, resolve_outcome

_MISSING = "missing"


@dataclass(frozen=True, slots=True, eq=False)
class CaseMixRates:
    """Observed, expected and indirectly standardised rates per trust and period (or audit year).

    Attributes
    ----------
    outcome, covariates, fit_years, by, level, ci_method
        What was adjusted, for what, on which years, by which time unit, the CI level and method.
    reference_rate
        ``r_ref``: the observed rate of the patients the model was fitted on.
    n_fit
        Patients in the fit.
    coefficients
        ``{term: (estimate, se)}`` of the case-mix model (log odds; ``intercept`` first).
    n_dropped
        Patients left out of the table and why (``ineligible``, ``missing_outcome``).
    table
        One row per trust × period: ``trust_id, pair_id, arm, <by>, outcome, numerator, denominator,
        crude_rate, expected, oe_ratio, oe_ci_low, oe_ci_high, adjusted_rate, adjusted_ci_low,
        adjusted_ci_high, national_rate, national_adjusted_rate`` (rates as proportions).
    """

    outcome: str
    covariates: tuple[str, ...]
    fit_years: tuple[int, ...]
    by: str
    level: float
    ci_method: str
    reference_rate: float
    n_fit: int
    coefficients: dict[str, tuple[float, float]] = field(repr=False)
    n_dropped: dict[str, int] = field(repr=False)
    table: pd.DataFrame = field(repr=False)

    def to_frame(self) -> pd.DataFrame:
        """A copy of :attr:`table`."""
        return self.table.copy()


def poisson_ci(observed: np.ndarray, level: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Confidence limits for a Poisson mean given observed counts: exact (Garwood 1936) or Byar's approximation.

    Exact: ``[χ²(α/2; 2O)/2, χ²(1−α/2; 2O+2)/2]`` (lower 0 when O = 0).  Byar:
    ``O(1 − 1/(9O) − z/(3√O))³`` and ``(O+1)(1 − 1/(9(O+1)) + z/(3√(O+1)))³`` (Breslow & Day 1987, §2.3).
    """
    o = np.asarray(observed, dtype=float)
    alpha = 1 - level
    if method == "exact":
        with np.errstate(invalid="ignore"):
            low = np.where(o > 0, stats.chi2.ppf(alpha / 2, 2 * o) / 2, 0.0)
        high = stats.chi2.ppf(1 - alpha / 2, 2 * o + 2) / 2
        return low, high
    z = stats.norm.ppf(1 - alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        low = np.where(o > 0, o * (1 - 1 / (9 * o) - z / (3 * np.sqrt(o))) ** 3, 0.0)
    high = (o + 1) * (1 - 1 / (9 * (o + 1)) + z / (3 * np.sqrt(o + 1))) ** 3
    return np.maximum(low, 0.0), high


def _level_key(label: str) -> tuple:
    """Numeric labels in numeric order (2 before 10), then text in text order."""
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


def _encode(frame: pd.DataFrame, covariates: Sequence[str], fit: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Design matrix for every row with levels fixed by the ``fit`` rows (first level the reference)."""
    blocks, names = [np.ones(len(frame))], ["intercept"]
    for col in covariates:
        s = frame[col]
        categorical = (col in CATEGORICAL_COLUMNS or not pd.api.types.is_numeric_dtype(s.dtype)
                       or pd.api.types.is_bool_dtype(s.dtype))
        if not categorical:
            values = pd.to_numeric(s).to_numpy(dtype=float, na_value=np.nan)
            if np.isnan(values).any():
                raise DataError(f"case-mix covariate {col!r} has {int(np.isnan(values).sum())} missing values among the "
                                "eligible patients; impute them or pass a categorical column (missing is then a level)")
            blocks.append(values)
            names.append(col)
            continue
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            values = pd.to_numeric(s).to_numpy(dtype=float, na_value=np.nan)   # a PS of 1.0 read from CSV is level "1"
            whole = np.isfinite(values) & (values == np.round(values))
            labels = np.where(np.isnan(values), _MISSING, np.where(whole, np.nan_to_num(values).astype(np.int64).astype(str),
                                                                   values.astype(str))).astype(object)
        else:
            labels = s.astype("string").fillna(_MISSING).to_numpy(dtype=object)
        seen = set(labels[fit])
        levels = sorted(seen - {_MISSING}, key=_level_key) + ([_MISSING] if _MISSING in seen else [])
        unseen = pd.Series(labels[~fit & ~np.isin(labels, levels)]).value_counts()
        if len(unseen):
            shown = ", ".join(f"{v!r} ({n} patients)" for v, n in unseen.items())
            raise DataError(f"case-mix covariate {col!r} has level(s) {shown} that never occur in the reference years; "
                            "the model cannot predict them (merge the level, or fit on years that have it)")
        for level in levels[1:]:
            blocks.append((labels == level).astype(float))
            names.append(f"{col}[{level}]")
    return np.column_stack(blocks), names


def _fit_years(fit_years: object, design: StudyDesign, present: set[int]) -> tuple[int, ...]:
    if fit_years is None:
        years = tuple(design.pre_years)
    elif isinstance(fit_years, (int, np.integer)) and not isinstance(fit_years, bool):
        years = (int(fit_years),)
    elif isinstance(fit_years, (list, tuple)) and fit_years and all(
            isinstance(y, (int, np.integer)) and not isinstance(y, bool) for y in fit_years):
        years = tuple(int(y) for y in fit_years)
    else:
        raise ParameterError(f"fit_years must be None (the design's pre years), a year or a list of years, got {fit_years!r}")
    absent = [y for y in years if y not in present]
    if absent:
        raise ParameterError(f"fit_years {absent} have no eligible patients; the data hold years {sorted(present)}")
    return years


def case_mix_adjusted_rates(
    patients: pd.DataFrame,
    outcome: str,
    *,
    covariates: Sequence[str] | None = None,
    fit_years: int | Sequence[int] | None = None,
    by: PanelBy = "period",
    design: StudyDesign | None = None,
    level: float = 0.95,
    ci_method: PoissonCI = "exact",
    incomplete_pairs: IncompletePairs | None = "keep",
) -> CaseMixRates:
    """Case-mix-adjusted (indirectly standardised) rates of a binary outcome per trust and period.

    Estimand: for trust *t* in period *p*, the ratio of its observed count to the count expected if its
    patients had the outcome with the probability a patient of the same case mix had in the reference
    population (all trusts, ``fit_years``): ``O/E``, and the adjusted rate ``O/E × r_ref``.

    Formula: ``logit P(y = 1 | x) = x'β`` fitted by maximum likelihood on the reference rows;
    ``E_tp = Σ_{i ∈ t,p} expit(x_i'β̂)``; CI for ``O/E`` = Poisson limits for ``O`` (exact or Byar) / ``E``.

    Parameters
    ----------
    patients
        Patient table (DATA_CONTRACT §1).
    outcome
        A binary registry outcome (or any 0/1 column); its eligible group is applied.
    covariates
        Case-mix columns (default :data:`rp2pr_eval.CASE_MIX`): numeric ones enter linearly,
        categorical ones (and ``performance_status``, ``imd_quintile``) as indicators, a missing value
        its own level.
    fit_years
        Audit year(s) the model is fitted on; ``None``: the design's pre years.
    by
        ``"period"`` (pre, during, post) or ``"audit_year"``.
    design
        Study design (``None``: the default).
    level
        Confidence level of the intervals.
    ci_method
        ``"exact"`` (Garwood's chi-square limits, conservative) or ``"byar"``.
    incomplete_pairs
        ``"keep"`` (default: per-trust rates are descriptive, a pair that lost a trust is shown as it is),
        ``"drop"`` (accepted; the estimators drop such pairs before calling this) or ``None`` (refused).

    Returns
    -------
    CaseMixRates
        ``.table`` (one row per trust × period) and the model's facts.

    Raises
    ------
    DataError
        Not a binary outcome, a covariate with missing numeric values or a level absent from the
        reference years, or a model that does not converge (e.g. perfect separation).
    ParameterError, ValueError
        Invalid ``fit_years``, ``by``, ``level`` or ``ci_method``.

    References
    ----------
    National Lung Cancer Audit annual reports (Royal College of Physicians / HQIP), methods: case-mix
    adjusted trust rates from a patient-level logistic model, funnel plots of adjusted rates.
    Breslow NE, Day NE. Statistical Methods in Cancer Research II. IARC 1987 (indirect
    standardisation, SMR limits). Spiegelhalter DJ. Funnel plots for comparing institutional
    performance. Stat Med 2005;24:1185–1202.

    Notes
    -----
    R: ``fit <- glm(y ~ age + sex + factor(ps) + factor(stage) + factor(imd), binomial, data = pre)``;
    ``E <- tapply(predict(fit, newdata = all, type = "response"), list(trust, period), sum)``;
    ``poisson.test(O)$conf.int / E``.  Stata: ``logistic y age i.sex i.ps i.stage i.imd if pre``,
    ``predict p``, ``collapse (sum) O=y E=p, by(trust period)``, ``cii means ..., poisson exact``.
    """
    check_option("by", by, PanelBy)
    check_option("ci_method", ci_method, PoissonCI)
    check_level(level)
    design = resolve_design(design)
    validate_patients(patients, design=design, missing_period="ignore", incomplete_pairs=incomplete_pairs)
    entry = resolve_outcome(patients, outcome)
    if entry.kind != "binary":
        raise DataError(f"case_mix_adjusted_rates needs a binary outcome; {outcome!r} is {entry.kind}")
    covariates = tuple(CASE_MIX if covariates is None else covariates)
    if isinstance(covariates, str) or any(not isinstance(c, str) for c in covariates):
        raise TypeError("covariates must be a list of column names")
    missing = [c for c in covariates if c not in patients.columns]
    if missing:
        raise DataError(f"case-mix covariate(s) {missing} are not columns of the patient table")

    keep, dropped = analysis_mask(patients, entry)
    rows = patients.loc[keep, ["trust_id", "pair_id", "arm", "audit_year", entry.name, *covariates]]
    year = rows["audit_year"].to_numpy()
    years = _fit_years(fit_years, design, set(np.unique(year).tolist()))
    fit = np.isin(year, years)
    y = pd.to_numeric(rows[entry.name]).to_numpy(dtype=float)
    X, names = _encode(rows, covariates, fit)
    if len(np.unique(y[fit])) < 2:
        raise DataError(f"outcome {outcome!r} does not vary in the reference years {list(years)}; no model can be fitted")

    from statsmodels.genmod import families
    from statsmodels.genmod.generalized_linear_model import GLM   # not statsmodels.api: 0.7 s of imports
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            result = GLM(y[fit], X[fit], family=families.Binomial()).fit()
        except (PerfectSeparationWarning, ConvergenceWarning, np.linalg.LinAlgError) as exc:
            raise DataError(f"the case-mix model of {outcome!r} on {list(covariates)} could not be fitted "
                            f"({str(exc).splitlines()[0]}); drop or merge sparse covariate levels") from None
    beta = np.asarray(result.params)
    if not np.all(np.isfinite(beta)):
        raise DataError(f"the case-mix model of {outcome!r} gave non-finite coefficients; drop or merge sparse levels")
    p = 1 / (1 + np.exp(-(X @ beta)))
    reference_rate = float(y[fit].mean())

    if by == "period":
        time = rows["audit_year"].map(design.period_map())
        time = pd.Categorical(time, categories=list(PERIODS), ordered=True)
    else:
        time = year
    work = pd.DataFrame({"trust_id": rows["trust_id"].to_numpy(), "pair_id": rows["pair_id"].to_numpy(),
                         "arm": rows["arm"].to_numpy(), by: time, "_y": y, "_p": p})
    grouped = work.groupby(["trust_id", "pair_id", "arm", by], sort=True, observed=True)
    table = grouped.agg(numerator=("_y", "sum"), denominator=("_y", "size"), expected=("_p", "sum")).reset_index()
    table.insert(4, "outcome", entry.name)
    table["numerator"] = table["numerator"].round().astype("int64")
    table["denominator"] = table["denominator"].astype("int64")
    o, e = table["numerator"].to_numpy(dtype=float), table["expected"].to_numpy()
    low, high = poisson_ci(o, level, ci_method)
    table["crude_rate"] = o / table["denominator"].to_numpy()
    table["oe_ratio"] = o / e
    table["oe_ci_low"], table["oe_ci_high"] = low / e, high / e
    table["adjusted_rate"] = table["oe_ratio"] * reference_rate
    table["adjusted_ci_low"] = table["oe_ci_low"] * reference_rate
    table["adjusted_ci_high"] = table["oe_ci_high"] * reference_rate
    national = table.groupby(by, observed=True)[["numerator", "denominator", "expected"]].transform("sum")
    table["national_rate"] = national["numerator"] / national["denominator"]
    table["national_adjusted_rate"] = national["numerator"] / national["expected"] * reference_rate
    table = table.sort_values(["trust_id", by], kind="stable").reset_index(drop=True)
    bse = np.asarray(result.bse)
    return CaseMixRates(
        outcome=entry.name, covariates=covariates, fit_years=years, by=by, level=level, ci_method=ci_method,
        reference_rate=reference_rate, n_fit=int(fit.sum()),
        coefficients={n: (float(b), float(s)) for n, b, s in zip(names, beta, bse)},
        n_dropped=dict(dropped), table=table,
    )


__all__ = ["CaseMixRates", "case_mix_adjusted_rates", "poisson_ci"]
