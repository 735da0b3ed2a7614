"""Synthetic NLCA-like patient data with a known truth (STUDY.md §3).

No real patient data exist in this project: every analysis runs on data made
here.  The generator follows the study notes:

* trusts' annual volumes are lognormal (median 210, sdlog 0.5, clipped 60–750),
  with year-to-year noise (CV 0.08) and national growth (6 % a year);
* case-mix (age band, sex, performance status, stage, histology, IMD quintile)
  with trust-level shifts; older patients have worse performance status;
* each outcome follows ``logit P = α_year + case-mix + u_trust,year +
  effect × intervention × post``; the trust effects ``u`` are heavy-tailed
  (scaled t, 4 df), autocorrelated across years (AR(1), ρ = 0.7) and share a
  common "team quality" factor across outcomes (correlation 0.3);
* the year effects ``α_year`` are calibrated so that national rates follow the
  registry's 2009 and 2012 values (logit-linear between and beyond them),
  *before* the intervention effect is added, so the planted effect is a
  conditional log odds ratio on top of the national trend;
* recording artefacts: the nurse-specialist-at-diagnosis field is missing for
  30 % (2009) falling to 15 % (2012) of patients and the treatment fields for
  11 % falling to 6 %, both counted as "no"; stage and performance status are
  missing where ``stage_recorded``/``ps_recorded`` is 0;
* waiting times are log-normal (sd 0.48, trust SD 0.2, "sicker quicker":
  stage IV or PS 3–4 15 % faster); survival is Weibull (shape 0.8) with
  medians 191 d (2008) → 221 d (2012), surgery HR 0.41, and administrative
  censoring at the end of the year after the last audit year;
* pairs are formed as ILCOP formed them: trusts are ranked on a composite of
  the pairing indicators at baseline (pre years) and the i-th strongest is
  paired with the i-th trust of the weaker half; then ``n_treated_pairs`` of
  the pairs are randomised to the intervention.

The planted truth travels with the data in ``frame.attrs["truth"]`` (and a
JSON sidecar when saved with :func:`rp2pr_eval.save_patients`), including the
true marginal risk difference among post-period intervention patients.

Written here rather than taken from a library: no package simulates
audit-shaped, pair-randomised patient data with these features.

Implementation: every random number is drawn up front in a fixed order, so
simulating a subset of the outcomes (``simulate_arrays(..., outcomes=...)``, used by
the power simulation) gives exactly the columns the full table has for the
same seed.  Patients of one trust-year with the same case-mix indicators share
the linear predictor, so each binary outcome's predictor, year calibration
(safeguarded Newton, all years at once) and probabilities are computed per
(trust-year, pattern) key and gathered per patient.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import metadata
from typing import Mapping

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from rp2pr_eval.data.truth import Truth
from rp2pr_eval.errors import ParameterError
from rp2pr_eval.study.design import StudyDesign, resolve_design
from rp2pr_eval.study.outcomes import OUTCOMES
from rp2pr_eval.synthetic.outcomes_model import (
    CASE_MIX_BITS,
    CASE_MIX_EFFECTS,  # re-exported: the generator's public constants
    HISTOLOGY_PROBS,
    SURVIVAL_EFFECTS,
    OutcomeDraws,
    generate_outcomes,
)

AGE_BANDS = ((18, 59), (60, 64), (65, 69), (70, 74), (75, 79), (80, 84), (85, 95))
AGE_PROBS = (0.13, 0.11, 0.16, 0.17, 0.17, 0.14, 0.12)
IMD_PROBS = (0.14, 0.18, 0.20, 0.22, 0.26)
STAGE_PROBS = (0.16, 0.07, 0.25, 0.52)
PS_PROBS = (0.18, 0.30, 0.22, 0.20, 0.10)


_BINARY_ORDER = ("mdt_discussed", "histo_confirmed", "stage_recorded", "ps_recorded", "active_treatment",
                 "nsclc_resection", "sclc_chemo", "cns_seen", "cns_at_diagnosis", "ct_before_bronch")
_PLANTABLE = _BINARY_ORDER + ("days_referral_to_treatment", "survival_days")
_SCALES = {name: "log_odds_ratio" for name in _BINARY_ORDER}
_SCALES |= {"days_referral_to_treatment": "log_ratio", "survival_days": "log_hazard_ratio"}


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0):
        raise ParameterError(f"seed must be a non-negative integer, a numpy Generator or None, got {seed!r}")
    return np.random.default_rng(seed)


def _scaled_t(rng: np.random.Generator, size, df: float) -> np.ndarray:
    """Student-t draws scaled to unit variance (df > 2)."""
    return rng.standard_t(df, size=size) / np.sqrt(df / (df - 2.0))


def _ar1(innov: np.ndarray, rho: float) -> np.ndarray:
    """Stationary AR(1) across the last axis from unit-variance innovations."""
    out = np.empty_like(innov)
    out[..., 0] = innov[..., 0]
    c = np.sqrt(1.0 - rho**2)
    for j in range(1, innov.shape[-1]):
        out[..., j] = rho * out[..., j - 1] + c * innov[..., j]
    return out


def _tilted_choice(rng: np.random.Generator, probs, tilt: np.ndarray, trust_idx: np.ndarray) -> np.ndarray:
    """Categorical draws per patient whose log odds are tilted by the trust's ``tilt`` × standardised category index.

    ``tilt`` holds one value per trust and ``trust_idx`` each patient's trust;
    the cumulative weights are computed per trust and compared column by column.
    """
    probs = np.asarray(probs, dtype=float)
    k = np.arange(len(probs), dtype=float)
    z = (k - (k * probs).sum()) / np.sqrt(((k - (k * probs).sum()) ** 2 * probs).sum())
    logits = np.log(probs)[None, :] + tilt[:, None] * z[None, :]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    cum = np.ascontiguousarray(np.cumsum(p, axis=1).T)  # (k, n_trusts)
    u = rng.random(len(trust_idx)) * cum[-1][trust_idx]
    out = np.zeros(len(trust_idx), dtype=np.int64)
    for row in cum:
        out += u > row[trust_idx]
    return out


def simulate_nlca(
    seed: int | np.random.Generator | None = None,
    design: StudyDesign | None = None,
    effects: Mapping[str, float] | None = None,
    *,
    n_pairs: int = 40,
    n_treated_pairs: int | None = None,
    ramp: bool = True,
    volume_median: float = 210.0,
    volume_sdlog: float = 0.5,
    volume_clip: tuple[float, float] = (60.0, 750.0),
    volume_cv: float = 0.08,
    volume_growth: float = 0.06,
    trust_sd: Mapping[str, float] | None = None,
    trust_autocorrelation: float = 0.7,
    trust_df: float = 4.0,
    outcome_correlation: float = 0.3,
    casemix_sd: float = 0.25,
    pair_shock: float = 0.5,
) -> pd.DataFrame:
    """Simulate an ILCOP-shaped, pair-randomised NLCA patient table with a planted effect.

    Parameters
    ----------
    seed
        Integer seed or ``numpy.random.Generator``; the same seed gives an
        identical frame.  Global random state is never touched.
    design
        Study design (years of each period); ``None`` for the default
        (2008–2013).  Every design year is simulated.
    effects
        Planted intervention effects in post years: ``{outcome: value}`` on the
        log-odds scale for binary outcomes, log scale for
        ``days_referral_to_treatment`` (negative = faster), log hazard for
        ``survival_days``.  Outcomes not named get 0.
    n_pairs, n_treated_pairs
        Number of pairs (two trusts each) and how many are randomised to the
        intervention (default: the design's, 15).
    ramp
        If true, the effect ramps up linearly over the during years
        (k / (n_during + 1) of the full effect in the k-th during year).
    volume_median, volume_sdlog, volume_clip, volume_cv, volume_growth
        Trust volumes per audit year (see module docstring).
    trust_sd
        Overrides of the registry's between-trust SDs, ``{outcome: sd}``.
    trust_autocorrelation, trust_df, outcome_correlation, casemix_sd
        Trust-effect AR(1) correlation across years (1: effects constant over the years, no
        trust × period drift), t degrees of freedom,
        correlation of trust effects across outcomes, and SD of trusts'
        case-mix shifts (logit scale).
    pair_shock
        Shocks shared by the two trusts of a pair in the during and post years
        (reciprocal visits, shared networks), with SD ``pair_shock`` × the
        outcome's trust SD, independent across years and outcomes.  They make
        outcomes within a pair correlated after baseline, which is why
        inference clusters on the pair.  Pre years carry none, so pairing is
        unaffected.

    Returns
    -------
    pandas.DataFrame
        One row per patient (DATA_CONTRACT §1) with all 13 outcomes plus
        ``bronchoscopy``, ``treatment_recorded`` and ``cns_recorded``;
        ``attrs["truth"]`` holds the planted effects, their scales, the true
        marginal risk differences, the pair assignment and the settings.

    References
    ----------
    STUDY.md §2–3 of this project; Russell et al., Br J Cancer 2014;110:1936–42.
    """
    settings = GeneratorSettings(
        n_pairs=n_pairs, n_treated_pairs=n_treated_pairs, ramp=ramp, volume_median=volume_median,
        volume_sdlog=volume_sdlog, volume_clip=volume_clip, volume_cv=volume_cv, volume_growth=volume_growth,
        trust_sd=trust_sd, trust_autocorrelation=trust_autocorrelation, trust_df=trust_df,
        outcome_correlation=outcome_correlation, casemix_sd=casemix_sd, pair_shock=pair_shock,
    )
    trial = simulate_arrays(seed, design, effects, settings)
    frame = _assemble(trial.patients, trial.outcomes, trial.pair_of_trust, trial.treated_trust, trial.design)
    frame.attrs["truth"] = Truth(trial.truth)
    return frame


@dataclass(frozen=True, slots=True)
class GeneratorSettings:
    """The generator's keyword options (those of :func:`simulate_nlca` after ``effects``)."""

    n_pairs: int = 40
    n_treated_pairs: int | None = None
    ramp: bool = True
    volume_median: float = 210.0
    volume_sdlog: float = 0.5
    volume_clip: tuple[float, float] = (60.0, 750.0)
    volume_cv: float = 0.08
    volume_growth: float = 0.06
    trust_sd: Mapping[str, float] | None = None
    trust_autocorrelation: float = 0.7
    trust_df: float = 4.0
    outcome_correlation: float = 0.3
    casemix_sd: float = 0.25
    pair_shock: float = 0.5


@dataclass(frozen=True, slots=True)
class SimulatedTrial:
    """One simulated trial as arrays (what :func:`simulate_nlca` assembles into a frame).

    ``outcomes["y"][name]`` holds outcome ``name`` per patient (NaN where not
    eligible) for the outcomes simulated; ``trust_idx``/``year_idx`` index
    ``pair_of_trust``/``treated_trust`` and ``years``.
    """

    patients: dict
    outcomes: dict
    pair_of_trust: np.ndarray
    treated_trust: np.ndarray
    design: StudyDesign
    truth: dict = field(repr=False)

    @property
    def trust_idx(self) -> np.ndarray:
        return self.patients["trust_idx"]

    @property
    def year_idx(self) -> np.ndarray:
        return self.patients["year_idx"]

    @property
    def years(self) -> np.ndarray:
        return self.patients["years"]


#: Outcomes each outcome's simulation reads (histology comes from histo_confirmed).
_NEEDS = {
    "nsclc_resection": ("histo_confirmed",),
    "sclc_chemo": ("histo_confirmed",),
    "days_referral_to_treatment": ("active_treatment",),
    "treated_within_62d": ("days_referral_to_treatment",),
    "survival_days": ("nsclc_resection",),
    "died": ("survival_days",),                 # generated with survival_days (a possible pairing indicator)
}


def _closure(names) -> frozenset[str]:
    out: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in out:
            out.add(name)
            todo.extend(_NEEDS.get(name, ()))
    return frozenset(out)


def simulate_arrays(seed, design: StudyDesign | None, effects: Mapping[str, float] | None, settings: GeneratorSettings,
              outcomes: tuple[str, ...] | None = None) -> SimulatedTrial:
    """The generator behind :func:`simulate_nlca`.

    ``outcomes`` limits the outcomes simulated to these (and those they
    depend on, and the design's pairing indicators in the baseline pass).
    Every random number is drawn as in the full simulation, so the outcomes
    simulated are exactly those :func:`simulate_nlca` returns for the same seed.
    """
    s = settings
    n_pairs, n_treated_pairs, ramp = s.n_pairs, s.n_treated_pairs, s.ramp
    volume_median, volume_sdlog, volume_clip = s.volume_median, s.volume_sdlog, s.volume_clip
    volume_cv, volume_growth, trust_sd = s.volume_cv, s.volume_growth, s.trust_sd
    trust_autocorrelation, trust_df = s.trust_autocorrelation, s.trust_df
    outcome_correlation, casemix_sd, pair_shock = s.outcome_correlation, s.casemix_sd, s.pair_shock
    design = resolve_design(design)
    rng = _rng(seed)
    n_treated_pairs = design.n_treated_pairs if n_treated_pairs is None else n_treated_pairs
    effects = dict(effects or {})
    _check_args(effects, n_pairs, n_treated_pairs, trust_sd, trust_autocorrelation, trust_df,
                outcome_correlation, volume_clip)
    if not (np.isfinite(pair_shock) and pair_shock >= 0):
        raise ParameterError(f"pair_shock must be ≥ 0, got {pair_shock!r}")
    sds = {name: entry.trust_sd for name, entry in OUTCOMES.items()} | dict(trust_sd or {})
    years = np.asarray(design.years)
    n_trusts, n_years = 2 * n_pairs, len(years)

    # ---- volumes and patients
    base = np.clip(volume_median * np.exp(volume_sdlog * rng.standard_normal(n_trusts)), *volume_clip)
    growth = (1.0 + volume_growth) ** (years - years[0])
    counts = np.maximum(1, np.round(base[:, None] * growth[None, :] * np.exp(volume_cv * rng.standard_normal((n_trusts, n_years))))).astype(int)
    trust_idx = np.repeat(np.repeat(np.arange(n_trusts), n_years), counts.ravel())
    year_idx = np.repeat(np.tile(np.arange(n_years), n_trusts), counts.ravel())
    n = len(trust_idx)

    # ---- case-mix with trust shifts
    shifts = casemix_sd * rng.standard_normal((n_trusts, 4))
    band = _tilted_choice(rng, AGE_PROBS, shifts[:, 0], trust_idx)
    lo = np.array([b[0] for b in AGE_BANDS])[band]
    hi = np.array([b[1] for b in AGE_BANDS])[band]
    age = lo + np.floor(rng.random(n) * (hi - lo + 1)).astype(int)
    male = (rng.random(n) < expit(logit(0.55) + 0.4 * shifts[trust_idx, 1])).astype(int)
    imd = 1 + _tilted_choice(rng, IMD_PROBS, 2.0 * shifts[:, 2], trust_idx)
    stage = _tilted_choice(rng, STAGE_PROBS, shifts[:, 3], trust_idx)
    latent_ps = 0.035 * (age - 72) + rng.standard_normal(n)
    cuts = np.quantile(latent_ps, np.cumsum(PS_PROBS)[:-1])
    ps = np.searchsorted(cuts, latent_ps)
    x = {
        "PS2": (ps == 2).astype(float), "PS34": (ps >= 3).astype(float),
        "AGE75": ((age >= 75) & (age < 80)).astype(float), "AGE80": (age >= 80).astype(float),
        "MALE": male.astype(float), "ST2": (stage == 1).astype(float), "ST3": (stage == 2).astype(float),
        "ST4": (stage == 3).astype(float), "IMD5": (imd == 5).astype(float),
    }

    # ---- random numbers for outcomes, drawn once
    names = tuple(OUTCOMES)
    common = _ar1(_scaled_t(rng, (n_trusts, n_years), trust_df), trust_autocorrelation)
    trust_u = {}
    for name in names:
        own = _ar1(_scaled_t(rng, (n_trusts, n_years), trust_df), trust_autocorrelation)
        sign = -1.0 if name == "survival_days" else 1.0
        trust_u[name] = sds[name] * (sign * np.sqrt(outcome_correlation) * common + np.sqrt(1 - outcome_correlation) * own)
    uniforms = {k: rng.random(n) for k in _BINARY_ORDER + ("histology", "bronchoscopy", "treatment_recorded",
                                                          "cns_recorded", "referral")}
    draws = OutcomeDraws(uniforms=uniforms, trust_u=trust_u, log_days_noise=rng.standard_normal(n),
                   survival_e=rng.exponential(size=n), entry_fraction=rng.random(n))
    pair_z = rng.standard_normal((len(names), n_pairs, n_years))

    bits = np.zeros(n, dtype=np.int64)
    for j, key in enumerate(CASE_MIX_BITS):
        bits |= (x[key] == 1).astype(np.int64) << j
    patients = dict(trust_idx=trust_idx, year_idx=year_idx, cell=trust_idx * n_years + year_idx, n_trusts=n_trusts,
                    years=years, x=x, case_mix_bits=bits, age=age, ps=ps, stage=stage, imd=imd)
    # first pass: no intervention, calibrates the year effects and gives baselines for pairing
    null_treat = np.zeros(n_trusts * n_years)
    if outcomes is None:
        wanted_first = wanted_second = None
    else:
        unknown = [o for o in outcomes if o not in OUTCOMES]
        if unknown:
            raise ParameterError(f"outcomes: unknown outcome(s) {unknown}; expected names from {', '.join(OUTCOMES)}")
        wanted_second = _closure(outcomes)
        wanted_first = _closure(set(outcomes) | set(design.pairing_indicators))
    first = generate_outcomes(patients, draws, effect_weight=null_treat, effects={}, alphas=None, wanted=wanted_first)
    pair_of_trust, treated_pairs = _form_pairs(first["y"], trust_idx, year_idx, years, design, n_pairs,
                                               n_treated_pairs, rng)
    treated_trust = np.isin(pair_of_trust, treated_pairs)
    after = ~np.isin(years, design.pre_years)
    for k, name in enumerate(names):  # pair shocks in during/post years (pairing used pre years only)
        draws.trust_u[name] += pair_shock * sds[name] * pair_z[k][pair_of_trust] * after[None, :]
    weight = _effect_weights(years, design, ramp)
    effect_weight = (treated_trust[:, None] * weight[None, :]).ravel()  # per trust × year cell
    second = generate_outcomes(patients, draws, effect_weight=effect_weight, effects=effects, alphas=first["alphas"],
                       baseline=first, wanted=wanted_second)
    post = np.isin(years[year_idx], design.post_years)
    truth = {
        "generator": "rp2pr_eval.synthetic.simulate_nlca",
        "package_version": _version(),
        "seed": int(seed) if isinstance(seed, (int, np.integer)) else None,
        "effects": {name: float(effects.get(name, 0.0)) for name in _PLANTABLE},
        "scale": dict(_SCALES),
        "ramp": bool(ramp),
        "risk_difference": second["risk_difference"](treated_trust[trust_idx] & post),
        "design": design.to_dict(),
        "n_pairs": int(n_pairs),
        "n_treated_pairs": int(n_treated_pairs),
        "pairs": {f"P{p + 1:02d}": ("intervention" if p in set(treated_pairs) else "control") for p in range(n_pairs)},
        "settings": {
            "volume_median": volume_median, "volume_sdlog": volume_sdlog, "volume_clip": list(volume_clip),
            "volume_cv": volume_cv, "volume_growth": volume_growth, "trust_sd": {k: float(v) for k, v in sds.items()},
            "trust_autocorrelation": trust_autocorrelation, "trust_df": trust_df,
            "outcome_correlation": outcome_correlation, "casemix_sd": casemix_sd, "pair_shock": pair_shock,
        },
    }
    return SimulatedTrial(patients=patients, outcomes=second, pair_of_trust=pair_of_trust,
                          treated_trust=treated_trust, design=design, truth=truth)


@functools.lru_cache(maxsize=1)
def _version() -> str:
    try:
        return metadata.version("rp2pr_eval")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _check_args(effects, n_pairs, n_treated_pairs, trust_sd, rho, df, corr, clip) -> None:
    for name, value in effects.items():
        if name == "treated_within_62d":
            raise ParameterError(
                "effects: 'treated_within_62d' is derived from 'days_referral_to_treatment'; plant the effect there (log scale)"
            )
        if name not in _PLANTABLE:
            raise ParameterError(f"effects: unknown outcome {name!r}; expected one of {', '.join(_PLANTABLE)}")
        if not isinstance(value, (int, float, np.floating, np.integer)) or isinstance(value, bool) or not np.isfinite(value):
            raise ParameterError(f"effects[{name!r}] must be a finite number, got {value!r}")
    if not isinstance(n_pairs, (int, np.integer)) or n_pairs < 2:
        raise ParameterError(f"n_pairs must be an integer ≥ 2, got {n_pairs!r}")
    if not isinstance(n_treated_pairs, (int, np.integer)) or not 1 <= n_treated_pairs < n_pairs:
        raise ParameterError(f"n_treated_pairs must be an integer between 1 and n_pairs − 1 = {n_pairs - 1}, got {n_treated_pairs!r}")
    for name, value in (trust_sd or {}).items():
        if name not in OUTCOMES or name == "treated_within_62d":
            raise ParameterError(f"trust_sd: unknown or derived outcome {name!r}")
        if not np.isfinite(value) or value < 0:
            raise ParameterError(f"trust_sd[{name!r}] must be ≥ 0, got {value!r}")
    if not 0 <= rho <= 1:
        raise ParameterError(f"trust_autocorrelation must be in [0, 1], got {rho!r}")
    if not df > 2:
        raise ParameterError(f"trust_df must be > 2 (finite variance), got {df!r}")
    if not 0 <= corr <= 1:
        raise ParameterError(f"outcome_correlation must be in [0, 1], got {corr!r}")
    if not (0 < clip[0] < clip[1]):
        raise ParameterError(f"volume_clip must be (low, high) with 0 < low < high, got {clip!r}")


def _effect_weights(years: np.ndarray, design: StudyDesign, ramp: bool) -> np.ndarray:
    w = np.zeros(len(years))
    n_during = len(design.during_years)
    for j, year in enumerate(years):
        if year in design.post_years:
            w[j] = 1.0
        elif year in design.during_years and ramp:
            w[j] = (design.during_years.index(year) + 1) / (n_during + 1)
    return w


def _form_pairs(y: dict, trust_idx, year_idx, years, design: StudyDesign, n_pairs: int, n_treated: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pair trusts with contrasting baselines on the pairing indicators, then randomise pairs."""
    n_trusts = 2 * n_pairs
    pre = np.isin(years[year_idx], design.pre_years)
    scores = np.zeros(n_trusts)
    for name in design.pairing_indicators:
        if name not in y:
            raise ParameterError(f"design.pairing_indicators: {name!r} is not a simulated binary outcome")
        v = y[name]
        ok = pre & ~np.isnan(v)
        num = np.bincount(trust_idx[ok], weights=v[ok], minlength=n_trusts)
        den = np.bincount(trust_idx[ok], minlength=n_trusts)
        rate = (num + 0.5) / (den + 1.0)
        z = logit(rate)
        scores += (z - z.mean()) / (z.std() or 1.0)
    order = np.argsort(-scores, kind="stable")           # strongest first
    strong, weak = order[:n_pairs], order[n_pairs:]
    pair_labels = rng.permutation(n_pairs)                 # pair ids carry no information
    pair_of_trust = np.empty(n_trusts, dtype=int)
    pair_of_trust[strong] = pair_labels
    pair_of_trust[weak] = pair_labels
    treated_pairs = np.sort(rng.choice(n_pairs, size=n_treated, replace=False))
    return pair_of_trust, treated_pairs


def trust_labels(n_trusts: int) -> np.ndarray:
    """The generator's trust identifiers: T001, T002, … (zero-padded so text order is numeric order)."""
    width = max(3, len(str(n_trusts)))
    return np.array([f"T{t + 1:0{width}d}" for t in range(n_trusts)])


def pair_labels(n_pairs: int) -> np.ndarray:
    """The generator's pair identifiers: P01, P02, …"""
    return np.array([f"P{q + 1:02d}" for q in range(n_pairs)])


def _assemble(p: dict, o: dict, pair_of_trust, treated_trust, design: StudyDesign) -> pd.DataFrame:
    ti, yi, years = p["trust_idx"], p["year_idx"], p["years"]
    n = len(ti)
    trust_ids = trust_labels(len(pair_of_trust))
    pair_ids = pair_labels(pair_of_trust.max() + 1)
    y = o["y"]
    stage_labels = np.array(["I", "II", "III", "IV"], dtype=object)
    stage = np.where(y["stage_recorded"] == 1, stage_labels[p["stage"]], None)
    ps = pd.array(np.where(y["ps_recorded"] == 1, p["ps"], -1), dtype="Int64")
    ps[ps == -1] = pd.NA
    frame = pd.DataFrame({
        "patient_id": [f"N{i + 1:07d}" for i in range(n)],
        "trust_id": trust_ids[ti],
        "pair_id": pair_ids[pair_of_trust[ti]],
        "arm": np.where(treated_trust[ti], design.intervention_arm, design.control_arm),
        "audit_year": years[yi].astype("int64"),
        "age": p["age"].astype("int64"),
        "sex": np.where(p["x"]["MALE"] == 1, "M", "F"),
        "performance_status": ps,
        "stage": pd.array(stage, dtype="str"),
        "histology": np.array(["NSCLC", "SCLC", "other"])[o["histology"]],
        "imd_quintile": p["imd"].astype("int64"),
        "bronchoscopy": o["bronchoscopy"].astype("int64"),
        "treatment_recorded": o["treatment_recorded"].astype("int64"),
        "cns_recorded": o["cns_recorded"].astype("int64"),
    })
    for name in OUTCOMES:
        v = y[name]
        if OUTCOMES[name].kind == "binary":
            frame[name] = pd.array(np.where(np.isnan(v), -1, v).astype("int64"), dtype="Int64")
            frame.loc[np.isnan(v), name] = pd.NA
        else:
            frame[name] = v
    frame["died"] = y["died"].astype("int64")
    frame["survival_days"] = y["survival_days"]
    return frame

