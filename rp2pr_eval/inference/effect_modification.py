r"""Effect modification by baseline performance: did the weaker trust of a pair gain more from ILCOP?

ILCOP paired trusts on *contrasting* baselines (one stronger, one weaker team per pair, STUDY.md §1),
so "did the low performer improve more?" is the first question a clinician asks.  Two estimators,
each with CR2-by-pair inference and the randomisation test that re-randomises 15 of the 40 pairs
as the trial did:

* :func:`effect_modification` ``[0]`` — **interaction ANCOVA**: the primary ANCOVA with an arm ×
  baseline interaction, trust level, weights = post-period denominators,

  .. math:: \bar y_{t,post} = \beta_0 + \tau T_t + \gamma x_t + \phi\, T_t x_t + e_t,
     \qquad x_t = (\bar y_{t,pre} - \bar{\bar y}_{pre}) / 0.1,

  so τ is the effect at the average baseline and φ (the estimate) the change in the effect per
  10 percentage points higher baseline rate; φ < 0 means lower-baseline trusts gained more.
* ``[1]`` — **within-pair contrast**: in each pair, the change (post − pre) of the trust with the
  lower baseline minus that of the higher; the estimate is its mean in intervention pairs minus
  its mean in control pairs (one row per pair; CR2 = HC2 with Satterthwaite df, as each pair is
  its own cluster).

**Regression to the mean.**  A trust that looked weak at baseline was, partly, unlucky in the
baseline years; its next results drift back up whatever anyone does.  Because ILCOP *chose* pairs
with contrasting baselines, the low member of every pair is expected to "improve more" than the
high member in *both* arms.  The naive reading — "in intervention pairs the weaker trusts improved
by x points more than their partners, so the intervention helped the weak" — is therefore wrong:
that within-arm contrast is mostly regression to the mean (``details["control_mean_contrast"]``
shows its size in the control arm).  Only the *difference between arms* of the contrast (``[1]``)
or of the baseline slope (``[0]``) is evidence of effect modification, and measurement error in the
baseline still biases the slope γ (and so x's interaction) towards zero.  The randomisation test
is of the sharp null of no effect for any trust, under which φ and the contrast difference are 0;
a small p-value says the intervention had some effect that differs with baseline or not at all —
read it with the CR2 test of φ.

References: Barnett, van der Pols & Dobson (2005) Int J Epidemiol 34:215 (regression to the mean and how
to deal with it); Senn (2011) Significance 8:124 (Galton and regression to the mean).  R: ``lm(post ~ treated * I((pre - mean(pre)) / 0.1),
weights = n_post)`` + ``clubSandwich::coef_test(vcov = "CR2", cluster = pair_id)``; Stata
``regress post i.treated##c.x [aw = n_post], vce(cluster pair_id)`` + ``ritest``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from rp2pr_eval._options import check_level
from rp2pr_eval.data.panel import is_trust_panel, panel_by_period, trust_panel
from rp2pr_eval.errors import DataError
from rp2pr_eval.models.linear import wls
from rp2pr_eval.models.randomisation import assignment_map, randomisation_test_linear
from rp2pr_eval.results.effect import Effect
from rp2pr_eval.study.design import StudyDesign, resolve_design
from rp2pr_eval.study.outcomes import OUTCOMES, resolve_outcome

__all__ = ["effect_modification", "baseline_change_frame"]

BASELINE_UNIT = 0.1   # the interaction is per 10 percentage points of baseline rate


def baseline_change_frame(patients: pd.DataFrame, outcome: str, *, design: StudyDesign | None = None) -> pd.DataFrame:
    """One row per trust: ``trust_id, pair_id, arm, treated, baseline, post, change, n_pre, n_post, low_in_pair``.

    ``baseline`` and ``post`` are the trust's pre- and post-period proportions (during years left
    out), ``change = post − baseline``; ``low_in_pair`` marks the pair member with the lower baseline
    (ties: the first trust id).  Binary outcomes only.
    """
    design = resolve_design(design)
    if is_trust_panel(patients):               # rp2pr-eval run --panel: published trust × year counts
        if outcome not in set(patients["outcome"].astype(str)):
            raise DataError(f"effect_modification: the trust panel has no rows for outcome {outcome!r}")
        entry = OUTCOMES[outcome] if outcome in OUTCOMES else None
        if entry is not None and entry.kind != "binary":
            raise ValueError(f"effect_modification supports binary outcomes; {outcome!r} is {entry.kind}")
        panel = panel_by_period(patients.loc[patients["outcome"] == outcome].reset_index(drop=True), design=design)
    else:
        entry = resolve_outcome(patients, outcome)
        if entry.kind != "binary":
            raise ValueError(f"effect_modification supports binary outcomes; {outcome!r} is {entry.kind}")
        panel = trust_panel(patients, outcome, by="period", design=design)
    wide = panel.pivot(index="trust_id", columns="period", values=["numerator", "denominator"])
    missing = [t for t in wide.index if any(pd.isna(wide.loc[t, ("denominator", p)]) for p in ("pre", "post"))
               ] if {"pre", "post"} <= set(panel["period"]) else list(wide.index)
    if missing:
        raise DataError(f"effect_modification: trust(s) {', '.join(map(str, missing[:5]))} have no eligible patients "
                        f"in the pre or the post period for {outcome!r}")
    ids = panel.drop_duplicates("trust_id").set_index("trust_id")[["pair_id", "arm"]].loc[wide.index]
    frame = pd.DataFrame({
        "trust_id": wide.index, "pair_id": ids["pair_id"].to_numpy(), "arm": ids["arm"].astype(str).to_numpy(),
        "n_pre": wide[("denominator", "pre")].to_numpy(dtype=float),
        "n_post": wide[("denominator", "post")].to_numpy(dtype=float),
    })
    frame["baseline"] = wide[("numerator", "pre")].to_numpy(dtype=float) / frame["n_pre"]
    frame["post"] = wide[("numerator", "post")].to_numpy(dtype=float) / frame["n_post"]
    frame["change"] = frame["post"] - frame["baseline"]
    frame["treated"] = (frame["arm"] == design.intervention_arm).astype(int)
    frame = frame.sort_values(["pair_id", "baseline", "trust_id"], kind="mergesort").reset_index(drop=True)
    frame["low_in_pair"] = ~frame.duplicated("pair_id", keep="first")
    return frame


def _effect(fit, term: str, *, outcome: str, estimator: str, estimand: str, n_obs: int, n_trusts: int,
            level: float, ri, details: dict) -> Effect:
    t = fit.t_test(term, level=level)
    return Effect(
        outcome=outcome, estimator=estimator, estimand=estimand, scale="risk_difference",
        estimate=t["estimate"], se=t["se"], ci_low=t["ci_low"], ci_high=t["ci_high"], p_value=t["p_value"],
        df=t["df"], n_obs=n_obs, n_trusts=n_trusts, n_clusters=fit.n_clusters, cluster="pair_id", vcov="CR2",
        level=level,
        details={**details, "coefficients": {n: (float(b), float(s)) for n, b, s in zip(fit.names, fit.coef, fit.se)},
                 "ri_p_value": ri.p_value, "ri_mc_se": ri.mc_se, "ri_n_draws": ri.n_draws, "ri_exact": ri.exact,
                 "ri_ci_low": ri.ci_low, "ri_ci_high": ri.ci_high,
                 "ri_null": "sharp null of no effect for any trust (15 of 40 pairs re-randomised)"},
    )


def effect_modification(
    patients: pd.DataFrame,
    outcome: str,
    *,
    design: StudyDesign | None = None,
    weights: str | None = "denominator",
    n_draws: int = 10_000,
    seed: int | np.random.Generator | None = 1,
    level: float = 0.95,
) -> tuple[Effect, Effect]:
    r"""Effect modification by baseline rate: the interaction ANCOVA and the within-pair low-vs-high contrast.

    See the module docstring for the two models, and what regression to the mean does to a naive
    reading.  Inference: CR2 by pair with Satterthwaite df (``p_value``, ``ci_low``/``ci_high``) and
    the randomisation test re-randomising whole pairs as the trial did (``details["ri_p_value"]``,
    its Monte Carlo SE and the interval inverting it under a constant additive modification).

    Parameters
    ----------
    patients, outcome
        Patient table and a binary outcome (registry name or 0/1 column).
    design
        Study design (``None``: pre 2008–09, post 2012–13).
    weights
        Interaction ANCOVA: ``"denominator"`` (post-period patients, as the primary ANCOVA) or ``None``.
        The within-pair contrast weights pairs equally.
    n_draws, seed
        Re-randomisations (Monte Carlo; exact when C(40, 15) ≤ n_draws) and their seed.
    level
        Confidence level.

    Returns
    -------
    (Effect, Effect)
        ``estimator="effect_modification_interaction"``: φ, the change in the baseline-adjusted
        effect per 10 percentage points higher baseline rate (``details``: ``effect_at_mean_baseline``,
        ``baseline_mean``, ``points`` — the per-trust values the figure draws — and the coefficients);
        ``estimator="effect_modification_within_pair"``: the between-arm difference in the mean
        within-pair (low − high baseline) change (``details``: the intervention and control means
        of the contrast, the latter being regression to the mean).
    """
    check_level(level)
    if weights not in ("denominator", None):
        raise ValueError(f"weights={weights!r} is not valid; expected one of 'denominator', None")
    if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 100:
        raise ValueError(f"n_draws must be an integer ≥ 100, got {n_draws!r}")
    design = resolve_design(design)
    name = outcome if is_trust_panel(patients) else resolve_outcome(patients, outcome).name
    frame = baseline_change_frame(patients, outcome, design=design)
    pair_codes, pair_labels = pd.factorize(frame["pair_id"], sort=True)
    n_units = len(pair_labels)
    assignment = np.zeros(n_units)
    assignment[pair_codes] = frame["treated"].to_numpy(dtype=float)
    if assignment.sum() in (0, n_units):
        raise DataError("effect_modification: both arms must be present")

    # (a) interaction ANCOVA
    base_mean = float(frame["baseline"].mean())
    x = (frame["baseline"].to_numpy() - base_mean) / BASELINE_UNIT
    T = frame["treated"].to_numpy(dtype=float)
    y = frame["post"].to_numpy(dtype=float)
    w = frame["n_post"].to_numpy(dtype=float) if weights == "denominator" else None
    names = ["intercept", "baseline_10pp", "treated", "treated:baseline_10pp"]
    fit = wls(np.column_stack([np.ones(len(y)), x, T, T * x]), y, weights=w, cluster=pair_codes, vcov="CR2",
              names=names)
    maps = np.stack([assignment_map(pair_codes, n_units), assignment_map(pair_codes, n_units, x)])
    ri_a = randomisation_test_linear(y, np.column_stack([np.ones(len(y)), x]), maps, assignment, coef_index=3,
                                     n_draws=int(n_draws), seed=seed, weights=w, level=level)
    tau = fit.t_test("treated", level=level)
    points = frame[["trust_id", "pair_id", "arm", "baseline", "post", "change", "n_pre", "n_post", "low_in_pair"]]
    interaction = _effect(
        fit, "treated:baseline_10pp", outcome=name, estimator="effect_modification_interaction",
        estimand="change in the baseline-adjusted effect per 10 percentage points higher baseline rate",
        n_obs=len(frame), n_trusts=len(frame), level=level, ri=ri_a,
        details={"baseline_mean": base_mean, "baseline_unit": BASELINE_UNIT, "weights": weights,
                 "effect_at_mean_baseline": {k: tau[k] for k in ("estimate", "se", "ci_low", "ci_high", "p_value", "df")},
                 "baseline_slope_control": float(fit.coef[1] / BASELINE_UNIT),
                 "points": points.assign(low_in_pair=points["low_in_pair"].astype(bool)).to_dict(orient="records")},
    )

    # (b) within-pair contrast: (change of the low-baseline trust) − (change of the high one)
    counts = frame.groupby("pair_id")["trust_id"].transform("size")
    if (counts != 2).any():
        bad = frame.loc[counts != 2, "pair_id"].unique()[:5]
        raise DataError(f"effect_modification: pair(s) {', '.join(map(str, bad))} do not have exactly two trusts "
                        f"with pre- and post-period data")
    low = frame[frame["low_in_pair"]].set_index("pair_id")
    high = frame[~frame["low_in_pair"]].set_index("pair_id").loc[low.index]
    D = (low["change"] - high["change"]).to_numpy(dtype=float)
    Tp = low["treated"].to_numpy(dtype=float)
    units = pd.Index(pair_labels).get_indexer(low.index)
    pfit = wls(np.column_stack([np.ones(len(D)), Tp]), D, cluster=units, vcov="CR2", names=["intercept", "treated"])
    ri_b = randomisation_test_linear(D, np.ones((len(D), 1)), assignment_map(units, n_units)[None], assignment,
                                     coef_index=1, n_draws=int(n_draws), seed=seed, level=level)
    within = _effect(
        pfit, "treated", outcome=name, estimator="effect_modification_within_pair",
        estimand="intervention − control difference in the within-pair (low − high baseline) post − pre change",
        n_obs=len(D), n_trusts=len(frame), level=level, ri=ri_b,
        details={"intervention_mean_contrast": float(D[Tp == 1].mean()), "control_mean_contrast": float(D[Tp == 0].mean()),
                 "mean_baseline_gap": float((high["baseline"] - low["baseline"]).mean()), "n_pairs": int(len(D))},
    )
    return interaction, within
