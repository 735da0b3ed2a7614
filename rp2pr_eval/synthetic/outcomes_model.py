"""The outcome model of the synthetic NLCA generator: calibrated logits per outcome, planted effects,
waiting times and survival, given the case-mix and the pre-drawn random numbers (:mod:`.generator`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy.special import expit, logit

from rp2pr_eval.study.outcomes import OUTCOMES

HISTOLOGY_PROBS = {"NSCLC": 0.53, "SCLC": 0.11, "other": 0.36}
#: Case-mix log odds ratios (STUDY.md §3; [E] where the notes give none).
#: Keys: PS2, PS34, AGE75, AGE80, MALE, ST2, ST3, ST4, IMD5.
CASE_MIX_EFFECTS: dict[str, dict[str, float]] = {
    "mdt_discussed": {"AGE80": -0.5, "PS34": -0.5},
    "histo_confirmed": {"PS2": -0.4, "PS34": -1.0, "AGE75": -0.3, "AGE80": -0.8},
    "active_treatment": {"PS2": -1.05, "PS34": -2.5, "AGE80": -1.05, "ST4": -0.7, "IMD5": -0.16},
    "nsclc_resection": {"AGE80": np.log(0.22), "MALE": np.log(0.78), "ST2": np.log(0.43),
                        "ST3": np.log(0.04), "ST4": np.log(0.01), "PS2": -1.0, "PS34": -2.5},
    "sclc_chemo": {"PS2": -0.5, "PS34": -1.5, "AGE80": -0.9},
    "cns_seen": {"AGE80": -0.2},
    "cns_at_diagnosis": {"AGE80": -0.2},
    "ct_before_bronch": {},
    "stage_recorded": {"AGE80": -0.3, "PS34": -0.3},
    "ps_recorded": {"AGE80": -0.2},
}
#: The case-mix indicators, in the bit order of the packed pattern the generator groups patients by.
CASE_MIX_BITS = ("PS2", "PS34", "AGE75", "AGE80", "MALE", "ST2", "ST3", "ST4", "IMD5")
#: Log hazard ratios for survival [E], surgery HR 0.41 [S].
SURVIVAL_EFFECTS = {"PS2": 0.4, "PS34": 0.9, "ST2": 0.3, "ST3": 0.7, "ST4": 1.3, "AGE80": 0.3, "resection": np.log(0.41)}

__all__ = ["CASE_MIX_BITS", "CASE_MIX_EFFECTS", "HISTOLOGY_PROBS", "SURVIVAL_EFFECTS", "OutcomeDraws", "anchor_logit",
           "artefact_rate", "calibrate_intercepts", "case_mix_eta", "generate_outcomes"]

@dataclass(frozen=True, slots=True)
class OutcomeDraws:
    """Every random number of one simulated dataset, drawn once (so passes with and without effects agree)."""

    uniforms: dict[str, np.ndarray]
    trust_u: dict[str, np.ndarray]      # outcome -> (n_trusts, n_years) trust effects on the model scale
    log_days_noise: np.ndarray
    survival_e: np.ndarray              # Exp(1) draws
    entry_fraction: np.ndarray          # position of first-seen date within the audit year


def anchor_logit(entry_national: Mapping[int, float], years: np.ndarray, *, scale: str = "logit") -> np.ndarray:
    """Targets per year, linear on the logit (or log) scale through the registry's two anchor years."""
    (y0, v0), (y1, v1) = sorted(entry_national.items())
    f = logit if scale == "logit" else np.log
    a0, a1 = f(v0), f(v1)
    return a0 + (a1 - a0) * (years - y0) / (y1 - y0)


def calibrate_intercepts(eta: np.ndarray, year: np.ndarray, targets: np.ndarray, count: np.ndarray,
               recorded: np.ndarray | None = None) -> np.ndarray:
    """α per year so that the mean of recorded × expit(α + η) over the eligible patients equals the target rate.

    Patients are grouped in keys sharing η: ``eta``, ``year`` per key, ``count``
    eligible patients per key and ``recorded`` the number of them with the
    field recorded (``None``: all).  Safeguarded Newton iterations for all
    years at once (bisection inside the bracket whenever a Newton step would
    leave it), to machine precision.  The target is capped at 0.999 × the
    recorded share (the attainable maximum).  Years without eligible patients get α = 0.
    """
    n_years = len(targets)
    occupied = count > 0
    e, yj = eta[occupied], year[occupied]
    w = (count if recorded is None else recorded)[occupied].astype(float)
    n_y = np.bincount(yj, weights=count[occupied].astype(float), minlength=n_years)
    has = n_y > 0
    safe = np.where(has, n_y, 1.0)
    ceiling = np.bincount(yj, weights=w, minlength=n_years) / safe
    goal = np.minimum(np.asarray(targets, dtype=float), np.where(has, ceiling, 1.0) * 0.999)
    share = np.clip(goal / np.where(ceiling > 0, ceiling, 1.0), 1e-12, 1 - 1e-12)
    mean_eta = np.bincount(yj, weights=e * count[occupied], minlength=n_years) / safe
    alpha = np.clip(logit(share) - mean_eta, -40.0, 40.0)
    lo, hi = np.full(n_years, -40.0), np.full(n_years, 40.0)
    for _ in range(200):
        p = expit(alpha[yj] + e)
        f = np.bincount(yj, weights=w * p, minlength=n_years) / safe - goal
        slope = np.bincount(yj, weights=w * p * (1.0 - p), minlength=n_years) / safe
        hi = np.where(f > 0, np.minimum(hi, alpha), hi)
        lo = np.where(f < 0, np.maximum(lo, alpha), lo)
        with np.errstate(divide="ignore", invalid="ignore"):
            new = alpha - f / slope
        bad = ~np.isfinite(new) | (new <= lo) | (new >= hi)
        new = np.where(bad, 0.5 * (lo + hi), new)
        step = np.abs(new - alpha)[has]
        alpha = new
        if step.size == 0 or step.max() < 1e-9:  # Newton: the error after a step s is O(s²) ≈ 1e-18
            break
    return np.where(has, alpha, 0.0)


def case_mix_eta(spec: Mapping[str, float], x: Mapping[str, np.ndarray]) -> np.ndarray:
    eta = np.zeros_like(x["AGE80"], dtype=float)
    for key, beta in spec.items():
        eta = eta + beta * x[key]
    return eta


def artefact_rate(years: np.ndarray, r2009: float, r2012: float) -> np.ndarray:
    """Missing-field share per year, logit-linear through 2009 and 2012."""
    return expit(anchor_logit({2009: r2009, 2012: r2012}, years.astype(float)))


def generate_outcomes(p: dict, d: OutcomeDraws, *, effect_weight: np.ndarray, effects: Mapping[str, float],
              alphas: dict | None, baseline: dict | None = None, wanted: frozenset[str] | None = None) -> dict:
    """Generate the outcomes (all, or those in ``wanted``) given the case-mix and the pre-drawn random numbers.

    Outcomes not wanted are skipped; the others do not change because every
    random number was drawn beforehand.
    """

    def want(name: str) -> bool:
        return wanted is None or name in wanted

    ti, yi, years, x = p["trust_idx"], p["year_idx"], p["years"], p["x"]
    n = len(ti)
    calibrate = alphas is None
    alphas = {} if alphas is None else alphas
    yrs = years.astype(float)
    y: dict[str, np.ndarray] = {}
    probs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # name -> (p1, p0, eligible mask)
    treat_missing = d.uniforms["treatment_recorded"] < artefact_rate(years, 0.11, 0.06)[yi]
    cns_missing = d.uniforms["cns_recorded"] < artefact_rate(years, 0.30, 0.15)[yi]
    recorded = {"active_treatment": ~treat_missing, "nsclc_resection": ~treat_missing,
                "sclc_chemo": ~treat_missing, "cns_at_diagnosis": ~cns_missing}
    bronch = d.uniforms["bronchoscopy"] < expit(logit(0.5) - 1.0 * x["PS34"])

    cell = p["cell"]
    n_years = len(years)
    year_of_cell = np.tile(np.arange(n_years), p["n_trusts"])

    def binary(name: str, mask: np.ndarray | None) -> np.ndarray:
        # Patients of one trust-year cell with the same case-mix indicators share η, so η, the calibration
        # and the probabilities are computed per (cell, pattern) key — the same floating-point operations as
        # per patient, on far fewer values — and gathered.  ``mask`` None: every patient is eligible.
        entry = OUTCOMES[name]
        spec = CASE_MIX_EFFECTS[name]
        m = len(spec)
        lut = np.zeros(1 << len(CASE_MIX_BITS), dtype=np.int64)   # all indicators' pattern -> this outcome's
        for j, cov in enumerate(spec):
            lut |= ((np.arange(len(lut)) >> CASE_MIX_BITS.index(cov)) & 1) << j
        code = (cell << m) | lut[p["case_mix_bits"]]
        patterns = np.arange(1 << m)
        case_mix = np.zeros(len(patterns))
        for j, beta in enumerate(spec.values()):
            case_mix = case_mix + beta * ((patterns >> j) & 1).astype(float)
        eta = case_mix[None, :] + d.trust_u[name].ravel()[:, None]          # (cells, patterns)
        rec = recorded.get(name)
        if calibrate:
            targets = expit(anchor_logit(entry.national, yrs))
            eligible = code if mask is None else code[mask]
            count = np.bincount(eligible, minlength=eta.size)
            rec_count = None
            if rec is not None:
                rec_count = np.bincount(code[rec if mask is None else mask & rec], minlength=eta.size)
            alphas[name] = calibrate_intercepts(eta.ravel(), np.repeat(year_of_cell, len(patterns)), targets, count, rec_count)
        eta0 = alphas[name][year_of_cell][:, None] + eta
        p0 = expit(eta0).ravel()[code]
        effect = effects.get(name, 0.0)
        p1 = p0 if effect == 0.0 else expit(eta0 + effect * effect_weight[:, None]).ravel()[code]
        if rec is not None:
            p0 = p0 * rec
            p1 = p0 if effect == 0.0 else p1 * rec
        probs[name] = (p1, p0, np.ones(n, dtype=bool) if mask is None else mask)
        out = (d.uniforms[name] < p1).astype(float)
        if mask is not None:
            out[~mask] = np.nan
        return out

    everyone = None
    for name in ("mdt_discussed", "histo_confirmed", "stage_recorded", "ps_recorded"):
        if want(name):
            y[name] = binary(name, everyone)
    histology = None
    if want("histo_confirmed"):
        # histology: confirmed patients get NSCLC/SCLC/other-confirmed; unconfirmed are "other"
        share = np.array([HISTOLOGY_PROBS["NSCLC"], HISTOLOGY_PROBS["SCLC"]]) / 0.74
        u = d.uniforms["histology"]
        confirmed = y["histo_confirmed"] == 1
        histology = np.where(confirmed & (u < share[0]), 0, np.where(confirmed & (u < share.sum()), 1, 2))
    for name, mask in (("active_treatment", everyone), ("nsclc_resection", histology == 0),
                       ("sclc_chemo", histology == 1), ("cns_seen", everyone), ("cns_at_diagnosis", everyone),
                       ("ct_before_bronch", bronch)):
        if want(name):
            y[name] = binary(name, mask)

    days_mask = None
    if want("days_referral_to_treatment"):
        # waiting times among the treated with a referral date
        treated = y["active_treatment"] == 1
        has_referral = d.uniforms["referral"] >= 0.07
        days_mask = treated & has_referral
        sicker = ((x["ST4"] == 1) | (x["PS34"] == 1)).astype(float)
        log_days = np.log(0.85) * sicker + d.trust_u["days_referral_to_treatment"][ti, yi] + 0.48 * d.log_days_noise
        if calibrate:
            targets = anchor_logit(OUTCOMES["days_referral_to_treatment"].national, yrs, scale="log")
            base_mask = (baseline or {}).get("days_mask", days_mask)
            alphas["days"] = np.array([
                t - np.median(log_days[base_mask & (yi == j)]) if (base_mask & (yi == j)).any() else 0.0
                for j, t in enumerate(targets)
            ])
        log_days = log_days + alphas["days"][yi] + effects.get("days_referral_to_treatment", 0.0) * effect_weight[cell]
        days = np.where(days_mask, np.round(np.exp(log_days)), np.nan)
        y["days_referral_to_treatment"] = days
        y["treated_within_62d"] = np.where(days_mask, (days <= 62).astype(float), np.nan)

    if want("survival_days"):
        # survival: Weibull PH, median calibrated per year with no intervention
        k = 0.8
        eta_s = case_mix_eta({kk: v for kk, v in SURVIVAL_EFFECTS.items() if kk != "resection"}, x)
        eta_s = eta_s + d.trust_u["survival_days"][ti, yi]
        resected = np.nan_to_num(y["nsclc_resection"]) if baseline is None else np.nan_to_num(baseline["y"]["nsclc_resection"])
        scaled = (d.survival_e * np.exp(-(eta_s + SURVIVAL_EFFECTS["resection"] * resected))) ** (1.0 / k)
        if calibrate:
            med = np.exp(anchor_logit(OUTCOMES["survival_days"].national, yrs, scale="log"))
            alphas["survival"] = np.array([m / np.median(scaled[yi == j]) if (yi == j).any() else 1.0 for j, m in enumerate(med)])
        final_resected = np.nan_to_num(y["nsclc_resection"])
        lam = alphas["survival"][yi]
        t = lam * (d.survival_e * np.exp(-(eta_s + SURVIVAL_EFFECTS["resection"] * final_resected
                                           + effects.get("survival_days", 0.0) * effect_weight[cell]))) ** (1.0 / k)
        entry_day = d.entry_fraction * 365.0
        follow_up = (years[-1] + 2 - years[yi]) * 365.0 - entry_day
        y["survival_days"] = np.floor(np.minimum(t, follow_up))
        y["died"] = (t <= follow_up).astype(float)

    def risk_difference(select: np.ndarray) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name, (p1, p0, mask) in probs.items():
            sel = select & mask
            out[name] = float(np.mean(p1[sel] - p0[sel])) if sel.any() else None
        return out

    return {"y": y, "alphas": alphas, "histology": histology, "bronchoscopy": bronch,
            "treatment_recorded": ~treat_missing, "cns_recorded": ~cns_missing, "days_mask": days_mask,
            "risk_difference": risk_difference}
