"""Intra-cluster correlations of a binary outcome: trust, pair, within-period and the cluster autocorrelation.

:func:`icc` reports what CONSORT's cluster extension asks for and what the
next trial's sample size needs, each with a 95 % interval, on two scales:

* **latent** (logit) scale, from random-intercept logistic models fitted by
  :func:`rp2pr_eval.mixed_logistic` (fixed effects treated, post,
  treated:post and any ``covariates``):
  :math:`\\rho = \\sigma^2_u / (\\sigma^2_u + \\pi^2/3)` (Snijders & Bosker
  2012 §17.3), the interval by transforming the GLMM's interval for
  :math:`\\sigma_u`;
* **proportion** scale, the ANOVA (method-of-moments) estimator for unequal
  cluster sizes (:func:`rp2pr_eval.models.variance_components.moment_variance_components`;
  Fleiss 1981; Searle, Casella & McCulloch 1992) after sweeping out the
  arm × period cell means, the interval a percentile cluster bootstrap that
  resamples pairs within arm (seeded) — the pairs, not the trusts, are the
  independent units of this design.

Levels (rows):

``trust``
    patients of the same trust, periods pooled: one random intercept per
    trust (latent: ``groups="trust_id"``; proportion: one-way ANOVA with
    trust clusters).
``pair``
    patients of the same pair of trusts (either trust): one random intercept
    per pair.  This is the ICC for a design that randomises pairs; the
    correlation of patients of the two *different* trusts of a pair
    (:math:`\\sigma^2_{pair}` in a pair + trust model) needs the nested GLMM.
``within-period``
    patients of the same trust in the same period (pre or post):
    latent: one random intercept per trust × period; proportion: the nested
    trust + trust × period moment model, :math:`(\\sigma^2_T + \\sigma^2_{TP}) / \\sigma^2_{tot}`.
``between-period``
    the *cluster autocorrelation* (Hooper et al. 2016; Girling & Hemming
    2016): :math:`r = \\sigma^2_T / (\\sigma^2_T + \\sigma^2_{TP})`, the
    correlation of a trust's true pre and post rates, i.e. the between-period
    ICC :math:`\\sigma^2_T / \\sigma^2_{tot}` divided by the within-period ICC;
    the ``quantity`` column says ``cluster_autocorrelation``.  Proportion scale
    only: to first order (delta method) variance components on the two
    scales differ by one common factor, so the ratio is the same.

The analysis rows are those of the before–after estimators (eligible patients
of the pre and post years; the during years are left out).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from rp2pr_eval._options import check_level, check_option
from rp2pr_eval.errors import DataError, ParameterError
from rp2pr_eval.data.panel import is_trust_panel
from rp2pr_eval.estimators.mixed_logistic import mixed_logistic
from rp2pr_eval.estimators.prepare import prepare
from rp2pr_eval.models.glmm import fit_glmm_logit
from rp2pr_eval.models.variance_components import moment_variance_components
from rp2pr_eval.study.design import StudyDesign, resolve_design

__all__ = ["ICC_COLUMNS", "icc", "icc_generator_settings", "simulate_kwargs_with_icc"]

#: Columns of the frame :func:`icc` returns (the first five are the public contract).
ICC_COLUMNS = ("outcome", "level", "scale", "quantity", "icc", "ci_low", "ci_high", "n_clusters", "method")

_LEVELS = ("trust", "pair", "within-period", "between-period")
_SCALES = ("latent", "proportion")
_LOGISTIC_VAR = math.pi ** 2 / 3.0


def _latent(sd: float) -> float:
    v = sd * sd
    return v / (v + _LOGISTIC_VAR)


def _unit_table(rows: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """One row per trust × period: n, Σy, pair, arm cell (treated, post)."""
    y = pd.to_numeric(rows[outcome]).to_numpy(dtype=float)
    frame = pd.DataFrame({"trust_id": rows["trust_id"].to_numpy(), "period": rows["period"].to_numpy(),
                          "pair_id": rows["pair_id"].to_numpy(), "treated": rows["treated"].to_numpy(),
                          "post": rows["post"].to_numpy(), "y": y})
    units = (frame.groupby(["trust_id", "period"], sort=True, observed=True)
             .agg(n=("y", "size"), s=("y", "sum"), pair_id=("pair_id", "first"), treated=("treated", "first"),
                  post=("post", "first"))
             .reset_index())
    return units


def _panel_unit_table(rows: pd.DataFrame) -> pd.DataFrame:
    """:func:`_unit_table` from trust-panel rows (trust × audit year counts of the pre and post years)."""
    frame = pd.DataFrame({"trust_id": rows["trust_id"].to_numpy(), "period": rows["period"].to_numpy(),
                          "pair_id": rows["pair_id"].to_numpy(), "treated": rows["treated"].to_numpy(),
                          "post": rows["post"].to_numpy(),
                          "numerator": pd.to_numeric(rows["numerator"]).to_numpy(dtype=float),
                          "denominator": pd.to_numeric(rows["denominator"]).to_numpy(dtype=float)})
    return (frame.groupby(["trust_id", "period"], sort=True, observed=True)
            .agg(n=("denominator", "sum"), s=("numerator", "sum"), pair_id=("pair_id", "first"),
                 treated=("treated", "first"), post=("post", "first"))
            .reset_index())


def _panel_latent(units: pd.DataFrame, *, n_quad: int, level: float, counts: dict) -> list[dict]:
    """Latent-scale rows from trust × period counts: the GLMMs fitted to binomial rows.

    With no case mix the patient-level model's covariates (intercept, treated, post, treated:post)
    are constant within a trust × period, so its likelihood is that of the binomial counts of the
    (group, covariates) cells. The rows are built as :func:`rp2pr_eval.models.glmm.fit_glmm_logit`
    collapses patient rows (sorted by group, then covariates), so the fit is the patient-level fit's
    number for number whenever that collapse applies (at least 1,000 analysed patients); below
    that the patient path keeps Bernoulli rows and the two agree to the optimiser's tolerance.
    """
    cells = units.groupby(["treated", "post"], observed=True)[["s", "n"]].sum()
    flat = cells[(cells["s"] == 0) | (cells["s"] == cells["n"])]
    if len(flat):
        raise DataError("icc: the outcome has no variation in arm × period cell(s) "
                        f"{', '.join(f'treated={int(t)}/post={int(p)}' for t, p in flat.index)}; the latent-scale "
                        "models are not identified (separation)")
    t, p = units["treated"].to_numpy(dtype=float), units["post"].to_numpy(dtype=float)
    base = pd.DataFrame({"x0": np.ones(len(units)), "x1": t, "x2": p, "x3": t * p,
                         "s": units["s"].to_numpy(float), "n": units["n"].to_numpy(float)})
    labels = {"trust": units["trust_id"].astype(str).to_numpy(), "pair": units["pair_id"].astype(str).to_numpy(),
              "within-period": (units["trust_id"].astype(str) + ":" + units["period"].astype(str)).to_numpy()}
    what = {"trust": "trust_id", "pair": "pair_id", "within-period": "trust x period"}
    out = []
    for lev, g in labels.items():
        cells = (base.assign(g=g).groupby(["g", "x0", "x1", "x2", "x3"], sort=True, observed=True)[["s", "n"]]
                 .sum().reset_index())
        X = cells[["x0", "x1", "x2", "x3"]].to_numpy(dtype=float)
        try:
            fit = fit_glmm_logit(X, cells["s"].to_numpy(float), cells["g"].to_numpy(), trials=cells["n"].to_numpy(float),
                                 n_quad=n_quad, names=["intercept", "treated", "post", "treated:post"], level=level)
        except DataError as exc:
            raise DataError(f"icc: the latent-scale {lev} model could not be fitted: {exc}") from exc
        out.append({"level": lev, "scale": "latent", "quantity": "icc", "icc": _latent(float(fit.sd)),
                    "ci_low": _latent(float(fit.sd_ci_low)), "ci_high": _latent(float(fit.sd_ci_high)),
                    "n_clusters": counts[lev],
                    "method": f"GLMM random intercept for {what[lev]} (AGHQ {n_quad}), sigma^2/(sigma^2+pi^2/3)"})
    return out


def _proportion_iccs(n, s, cell, trust, pair) -> dict:
    """Proportion-scale ICCs (truncated at 0) from trust × period units (arrays, one entry per unit)."""
    fixed = np.zeros((len(n), 4))
    fixed[np.arange(len(n)), cell] = 1.0
    one = {}
    for level, codes in (("trust", trust), ("pair", pair)):
        vc = moment_variance_components(n, s, s, fixed=fixed, groupings={level: codes})
        one[level] = vc.share([level])
    nested = moment_variance_components(n, s, s, fixed=fixed,
                                        groupings={"trust": trust, "trust_period": np.arange(len(n))})
    comp = nested.truncated()
    one["within-period"] = nested.share(["trust", "trust_period"])
    between = comp["trust"] + comp["trust_period"]
    one["between-period"] = comp["trust"] / between if between > 0 else float("nan")
    return one


class _UnitArrays:
    """Trust × period units as arrays, with each pair's unit indices for the pair bootstrap."""

    def __init__(self, units: pd.DataFrame):
        self.n = units["n"].to_numpy(float)
        self.s = units["s"].to_numpy(float)
        self.cell = (units["treated"].to_numpy() * 2 + units["post"].to_numpy()).astype(int)
        self.trust = pd.factorize(units["trust_id"])[0]
        self.pair = pd.factorize(units["pair_id"])[0]
        self.n_trusts = int(self.trust.max()) + 1
        pair_arm = np.zeros(self.pair.max() + 1, dtype=int)
        pair_arm[self.pair] = units["treated"].to_numpy().astype(int)
        self.pairs_by_arm = [np.flatnonzero(pair_arm == a) for a in (0, 1)]
        self.rows_of_pair = [np.flatnonzero(self.pair == k) for k in range(len(pair_arm))]

    def point(self) -> dict:
        return _proportion_iccs(self.n, self.s, self.cell, self.trust, self.pair)

    def replicate(self, rng: np.random.Generator) -> dict:
        """Resample pairs with replacement within arm; each draw of a pair is a distinct pair (and trusts)."""
        chosen = np.concatenate([rng.choice(p, size=len(p), replace=True) for p in self.pairs_by_arm])
        idx = np.concatenate([self.rows_of_pair[k] for k in chosen])
        copy = np.repeat(np.arange(len(chosen)), [len(self.rows_of_pair[k]) for k in chosen])
        return _proportion_iccs(self.n[idx], self.s[idx], self.cell[idx],
                                copy * self.n_trusts + self.trust[idx], copy)


def icc(
    patients: pd.DataFrame,
    outcome: str,
    *,
    design: StudyDesign | None = None,
    covariates: Sequence[str] | None = None,
    scales: Sequence[str] = _SCALES,
    n_boot: int = 999,
    seed: int | np.random.Generator | None = 1,
    n_quad: int = 25,
    level: float = 0.95,
) -> pd.DataFrame:
    r"""Intra-cluster correlations of a binary outcome by trust, pair, trust × period and between periods, with CIs.

    Parameters
    ----------
    patients, outcome
        Patient table (data contract) and a binary outcome (registry name or a
        0/1 column).
    design
        Study design; ``None`` for the defaults.  Pre and post years are used.
    covariates
        Case-mix columns added to the latent-scale models (adjusted ICCs);
        ``None`` (default) for the unadjusted ICCs usually reported.  The
        proportion scale is always unadjusted for case mix.
    scales
        Any of ``"latent"``, ``"proportion"``.
    n_boot
        Pair-bootstrap replicates for the proportion-scale intervals (0 for
        none: ``ci_low``/``ci_high`` NaN).
    seed
        Seed or ``numpy.random.Generator`` of the bootstrap.
    n_quad
        Quadrature nodes of the latent-scale GLMMs (1 = Laplace).
    level
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        Columns ``outcome, level, scale, quantity, icc, ci_low, ci_high,
        n_clusters, method``: rows (trust, pair, within-period) × (latent,
        proportion) and (between-period, proportion), whose ``quantity`` is
        ``cluster_autocorrelation``; the others are ``icc``.

    Notes
    -----
    Definitions, estimators and intervals: module docstring and
    ``docs/methods/icc.md``.  Proportion-scale estimates are truncated at 0
    (a negative moment estimate means no detectable clustering).  Design
    effect for planning: :math:`1 + (\bar m - 1)\rho` per period for a parallel
    design, :math:`(1 + (\bar m - 1)\rho)(1 - r^2)` for a before–after
    (ANCOVA) analysis with cluster autocorrelation :math:`r` (Hooper et al.
    2016; Teerenstra et al. 2012).  :func:`icc_generator_settings` turns the
    result into inputs of :func:`rp2pr_eval.power_simulation`.

    References
    ----------
    Fleiss JL (1981) Statistical Methods for Rates and Proportions, ch. 13;
    Searle SR, Casella G, McCulloch CE (1992) Variance Components, ch. 5;
    Snijders TAB, Bosker RJ (2012) Multilevel Analysis, 2nd ed., §17.3;
    Hooper R, Teerenstra S, de Hoop E, Eldridge S (2016) Stat Med 35:4718;
    Girling AJ, Hemming K (2016) Stat Med 35:2149;
    Campbell MK, Piaggio G, Elbourne DR, Altman DG (2012) BMJ 345:e5661 (CONSORT cluster extension).
    R: ``lme4::glmer(y ~ treated * post + (1 | trust_id), family = binomial)`` then
    ``VarCorr``; ``ICCbin::iccbin(trust_id, y, method = "aov")`` for the one-way proportion scale.
    """
    check_level(level)
    scales = tuple(scales) if not isinstance(scales, str) else (scales,)
    if not scales:
        raise ParameterError("scales: name at least one of 'latent', 'proportion'")
    for sc in scales:
        check_option("scales", sc, _SCALES)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise ParameterError(f"n_boot must be a non-negative integer, got {n_boot!r}")
    if isinstance(n_quad, bool) or not isinstance(n_quad, (int, np.integer)) or n_quad < 1:
        raise ParameterError(f"n_quad must be a positive integer, got {n_quad!r}")
    design = resolve_design(design)
    from_panel = is_trust_panel(patients)
    if from_panel and covariates:
        raise DataError("icc: covariates need the patient table; a trust panel (numerator/denominator per trust) "
                        "carries no case mix — use covariates=None")
    prep = prepare(patients, outcome, design=design, cluster="pair_id", kinds=("binary",), estimator="icc",
                   panel_ok=from_panel)
    name = prep.entry.name
    units = _panel_unit_table(prep.rows) if from_panel else _unit_table(prep.rows, name)
    n_trusts, n_pairs = units["trust_id"].nunique(), units["pair_id"].nunique()
    counts = {"trust": n_trusts, "pair": n_pairs, "within-period": len(units), "between-period": n_trusts}
    out = []
    if "latent" in scales and from_panel:
        out += _panel_latent(units, n_quad=int(n_quad), level=level, counts=counts)
    elif "latent" in scales:
        tp_col = "__trust_period__"
        year = patients["audit_year"].to_numpy()
        period = np.where(np.isin(year, design.pre_years), "pre", np.where(np.isin(year, design.post_years),
                                                                           "post", "during"))
        with_tp = patients.assign(**{tp_col: patients["trust_id"].astype(str).to_numpy() + ":" + period})
        for lev, groups in (("trust", "trust_id"), ("pair", "pair_id"), ("within-period", tp_col)):
            try:
                e = mixed_logistic(with_tp, outcome, covariates=covariates, design=design, groups=groups,
                                   n_quad=int(n_quad), level=level)
            except DataError as exc:
                raise DataError(f"icc: the latent-scale {lev} model could not be fitted: {exc}") from exc
            d = e.details
            out.append({"level": lev, "scale": "latent", "quantity": "icc", "icc": _latent(d["re_sd"]),
                        "ci_low": _latent(d["re_sd_ci_low"]), "ci_high": _latent(d["re_sd_ci_high"]),
                        "n_clusters": counts[lev],
                        "method": f"GLMM random intercept for {groups if lev != 'within-period' else 'trust x period'}"
                                  f" (AGHQ {n_quad}), sigma^2/(sigma^2+pi^2/3)"})
    if "proportion" in scales:
        arrays = _UnitArrays(units)
        point = arrays.point()
        lows = {k: math.nan for k in point}
        highs = dict(lows)
        if n_boot > 0:
            rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
            draws = {k: [] for k in point}
            for _ in range(int(n_boot)):
                try:
                    rep = arrays.replicate(rng)
                except DataError:
                    continue
                for k, v in rep.items():
                    draws[k].append(v)
            alpha = 1.0 - level
            for k, v in draws.items():
                arr = np.asarray(v, dtype=float)
                arr = arr[np.isfinite(arr)]
                if len(arr) >= 0.9 * n_boot and len(arr) > 1:
                    lows[k], highs[k] = (float(q) for q in np.quantile(arr, [alpha / 2, 1 - alpha / 2]))
        for lev in _LEVELS:
            quantity = "cluster_autocorrelation" if lev == "between-period" else "icc"
            model = {"trust": "one-way ANOVA, trust clusters", "pair": "one-way ANOVA, pair clusters",
                     "within-period": "nested ANOVA trust + trust x period",
                     "between-period": "nested ANOVA: s2_trust/(s2_trust + s2_trust_period)"}[lev]
            out.append({"level": lev, "scale": "proportion", "quantity": quantity, "icc": float(point[lev]),
                        "ci_low": lows[lev], "ci_high": highs[lev], "n_clusters": counts[lev],
                        "method": f"{model}, arm x period means removed; pair bootstrap ({n_boot}) percentile CI"})
    frame = pd.DataFrame(out)
    frame.insert(0, "outcome", name)
    order = {lev: i for i, lev in enumerate(_LEVELS)}
    frame = frame.sort_values(["level", "scale"], key=lambda c: c.map(order) if c.name == "level" else c,
                              kind="stable").reset_index(drop=True)
    return frame[list(ICC_COLUMNS)]


def _period_years(design: StudyDesign) -> tuple[list[int], list[int]]:
    return list(design.pre_years), list(design.post_years)


def icc_generator_settings(icc_table: pd.DataFrame, outcome: str | None = None, *,
                           design: StudyDesign | None = None) -> dict:
    r"""Generator settings (``simulate_kwargs`` of :func:`rp2pr_eval.power_simulation`) matching estimated ICCs.

    The generator's trust effects are AR(1) across audit years with
    correlation :math:`\phi` and SD :math:`\sigma` on the logit scale.  For
    patients of one trust the average covariance of their effects is
    :math:`\sigma^2 \bar c_{pp}` within a period and :math:`\sigma^2 \bar c_{pq}`
    between the pre and post periods, :math:`\bar c` the mean of
    :math:`\phi^{|s-t|}` over the pairs of years (equal yearly volumes).  The
    function solves :math:`\bar c_{pq}/\bar c_{pp} = r` (the cluster
    autocorrelation, ``between-period`` row) for :math:`\phi` and
    :math:`\sigma^2 \bar c_{pp} = \pi^2/3 \cdot \rho_w/(1-\rho_w)` (the
    latent within-period ICC) for :math:`\sigma`.  The pair shocks and the
    trusts' case-mix shifts of the generator add to these (use
    ``icc(..., covariates=rp.CASE_MIX)`` for ICCs net of case mix).

    Parameters
    ----------
    icc_table
        A frame from :func:`icc` (needs the latent within-period and the
        between-period rows of ``outcome``).
    outcome
        Which outcome's rows (default: the only one in the table).
    design
        Design whose pre and post years define the periods.

    Returns
    -------
    dict
        ``{"trust_sd": {outcome: σ}, "trust_autocorrelation": φ}``.
    """
    from scipy import optimize

    if not isinstance(icc_table, pd.DataFrame) or not {"outcome", "level", "scale", "icc"} <= set(icc_table.columns):
        raise ParameterError("icc_table must be a frame returned by rp2pr_eval.icc (columns outcome, level, scale, icc)")
    names = list(dict.fromkeys(icc_table["outcome"]))
    if outcome is None:
        if len(names) != 1:
            raise ParameterError(f"icc_table holds outcomes {names}; pass outcome=")
        outcome = names[0]
    elif outcome not in names:
        raise ParameterError(f"outcome={outcome!r} is not in icc_table (it holds {names})")
    rows = icc_table[icc_table["outcome"] == outcome]

    def pick(level, scale):
        sel = rows[(rows["level"] == level) & (rows["scale"] == scale)]["icc"]
        if sel.empty or not np.isfinite(sel.iloc[0]):
            raise ParameterError(f"icc_table has no finite {scale} {level} ICC for {outcome!r}")
        return float(sel.iloc[0])

    rho_w = pick("within-period", "latent")
    r = pick("between-period", "proportion")
    if not 0.0 <= rho_w < 1.0:
        raise ParameterError(f"within-period latent ICC {rho_w} must be in [0, 1)")
    pre, post = _period_years(resolve_design(design))

    def cbar(a, b, phi):
        return float(np.mean([phi ** abs(s - t) for s in a for t in b]))

    def ratio(phi):
        return cbar(pre, post, phi) / (0.5 * (cbar(pre, pre, phi) + cbar(post, post, phi)))

    hi = 1.0 - 1e-9
    r = min(max(r, 0.0), ratio(hi))
    phi = 0.0 if r <= 0.0 else float(optimize.brentq(lambda x: ratio(x) - r, 1e-12, hi))
    within = 0.5 * (cbar(pre, pre, phi) + cbar(post, post, phi))
    sd = math.sqrt(_LOGISTIC_VAR * rho_w / (1.0 - rho_w) / within)
    return {"trust_sd": {outcome: sd}, "trust_autocorrelation": phi}


def simulate_kwargs_with_icc(icc_table: pd.DataFrame, outcome: str, *, design: StudyDesign | None = None,
                             simulate_kwargs=None) -> dict:
    """``simulate_kwargs`` completed with :func:`icc_generator_settings` (the caller's entries take precedence)."""
    if simulate_kwargs is not None and not isinstance(simulate_kwargs, dict):
        simulate_kwargs = dict(simulate_kwargs)
    given = dict(simulate_kwargs or {})
    settings = icc_generator_settings(icc_table, outcome, design=design)
    trust_sd = {**settings["trust_sd"], **dict(given.get("trust_sd") or {})}
    return {**settings, **given, "trust_sd": trust_sd}
