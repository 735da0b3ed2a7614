"""Effects across outcomes and estimators as a display table (:func:`results_table`).

Outcomes in registry order under their registry labels, estimators in order of
appearance; every number is formatted by :func:`rp2pr_eval.results.format_frame`
(the package's one renderer). Effects are model output, not counts of
patients: no disclosure control applies.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import numpy as np
import pandas as pd
from pandas.api.types import is_numeric_dtype

from rp2pr_eval._options import check_option
from rp2pr_eval.results.effect import Effect, effects_table, format_frame
from rp2pr_eval.study.outcomes import OUTCOMES

ResultsLayout = Literal["long", "wide"]

_REQUIRED_EFFECT_COLUMNS = ("outcome", "estimator", "scale", "estimate", "ci_low", "ci_high", "p_value")
_SCALE_LABELS = {
    "log_odds_ratio": "log OR", "log_hazard_ratio": "log HR", "log_ratio": "log ratio",
    "odds_ratio": "OR", "hazard_ratio": "HR",
}


def _effects_frame(effects_or_frame: object) -> pd.DataFrame:
    if isinstance(effects_or_frame, pd.DataFrame):
        frame = effects_or_frame.copy()
    elif isinstance(effects_or_frame, Effect):
        frame = effects_table([effects_or_frame])
    elif isinstance(effects_or_frame, (str, bytes)) or not isinstance(effects_or_frame, Iterable):
        raise ValueError(f"results_table needs Effects or a tidy effects frame, got {type(effects_or_frame).__name__}")
    else:
        frame = effects_table(effects_or_frame)  # TypeError for non-Effects
    if frame.empty:
        raise ValueError("results_table: no effects to tabulate")
    missing = [c for c in _REQUIRED_EFFECT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"results_table: the frame lacks column(s) {missing}; a tidy effects frame has {list(_REQUIRED_EFFECT_COLUMNS)}")
    for col in ("estimate", "ci_low", "ci_high", "p_value"):
        if not is_numeric_dtype(frame[col].dtype):
            raise ValueError(f"results_table: column {col!r} must be numeric; it has dtype {frame[col].dtype}")
    for col in ("se", "df"):
        if col not in frame.columns:
            frame[col] = np.nan
    return frame.reset_index(drop=True)


def _scale_label(scale: str, outcome: str, scale_pp: bool) -> str:
    if scale == "risk_difference":
        return "pp" if scale_pp else "proportion"
    if scale == "days":
        return OUTCOMES[outcome].unit if outcome in OUTCOMES else "days"
    return _SCALE_LABELS.get(scale, scale)


def results_table(
    effects_or_frame: Effect | Iterable[Effect] | pd.DataFrame,
    *,
    labels: Mapping[str, str] | None = None,
    scale_pp: bool = True,
    p_adjusted: bool = True,
    layout: ResultsLayout = "long",
    digits: int | None = None,
) -> pd.DataFrame:
    """Effects across outcomes and estimators as a display table.

    Outcomes come in registry order (:data:`rp2pr_eval.OUTCOMES`; others
    after them, in order of appearance) under their registry labels;
    estimators in order of appearance. Each effect shows
    ``estimate [CI]`` and its p-value, and the adjusted p-value when the
    effects carry one (:func:`adjust_pvalues` stores ``p_adjusted``). The
    numbers are formatted by :func:`rp2pr_eval.results.format_frame`.

    Parameters
    ----------
    effects_or_frame : Effect, iterable of Effect, or pandas.DataFrame
        Effects, or their tidy frame (:func:`rp2pr_eval.effects_table`;
        needs ``outcome, estimator, scale, estimate, ci_low, ci_high,
        p_value``).
    labels : mapping, optional
        Display names for outcomes and estimators, overriding the registry
        labels (e.g. ``{"did_aggregate": "DiD, trust-period rates"}``).
    scale_pp : bool
        Risk differences in percentage points (default) or as proportions.
    p_adjusted : bool
        Show the adjusted p-value column when present (default).
    layout : {"long", "wide"}
        ``"long"``: one row per outcome and estimator (grouped by outcome),
        columns ``Outcome, Estimator, Scale, Estimate [95% CI], p`` (and
        ``p adj.``). ``"wide"``: one row per outcome and scale, one
        ``estimate [CI]`` and ``p`` column per estimator.
    digits : int, optional
        Decimals of estimates and limits; default 2 with ``scale_pp``, else
        3. p-values always have 3 decimals (or show ``<0.001``).

    Returns
    -------
    pandas.DataFrame
        Strings, ready for :func:`export_table`. Model estimates and
        confidence intervals need no disclosure control (STUDY.md §5).

    Raises
    ------
    ValueError
        No effects, missing or non-numeric columns, the same outcome,
        estimator and scale twice, mixed confidence levels, invalid options.
    """
    check_option("layout", layout, ResultsLayout)
    for name, value in (("scale_pp", scale_pp), ("p_adjusted", p_adjusted)):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {value!r}")
    if digits is None:
        digits = 2 if scale_pp else 3
    if not isinstance(digits, int) or isinstance(digits, bool) or digits < 0:
        raise ValueError(f"digits must be a non-negative integer or None, got {digits!r}")
    if labels is not None and (not isinstance(labels, Mapping)
                               or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())):
        raise ValueError("labels must be a mapping of outcome or estimator names to display strings")
    labels = dict(labels or {})
    frame = _effects_frame(effects_or_frame)

    keys = list(zip(frame["outcome"], frame["estimator"], frame["scale"]))
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(
            f"results_table: more than one effect for (outcome, estimator, scale) {dup[:3]}; give them distinct "
            "estimator names (e.g. dataclasses.replace(effect, estimator='did_aggregate (CR1)'))"
        )
    level = 0.95
    if "level" in frame.columns:
        levels = pd.unique(frame["level"].dropna())
        if len(levels) > 1:
            raise ValueError(f"results_table: effects have different confidence levels {sorted(levels.tolist())}")
        if len(levels):
            level = float(levels[0])
    registry = {name: i for i, name in enumerate(OUTCOMES)}
    extra = {o: len(registry) + i for i, o in enumerate(pd.unique(frame["outcome"])) if o not in registry}
    est_rank = {e: i for i, e in enumerate(pd.unique(frame["estimator"]))}
    frame["_o"] = frame["outcome"].map(lambda o: registry.get(o, extra.get(o)))
    frame["_e"] = frame["estimator"].map(est_rank)
    frame = frame.sort_values(["_o", "_e"], kind="stable").reset_index(drop=True)

    shown = format_frame(frame, digits=digits, scale_pp=scale_pp)
    ci_head = f"Estimate [{100 * level:g}% CI]"
    has_adj = p_adjusted and "p adj." in shown.columns and frame["p_adjusted"].notna().any()
    adj_head = "p adj."
    if has_adj and "adjust_method" in frame.columns:
        methods = pd.unique(frame["adjust_method"].dropna())
        if len(methods) == 1:
            adj_head = f"p adj. ({methods[0]})"
    long = pd.DataFrame({
        "Outcome": [labels.get(o, OUTCOMES[o].label if o in OUTCOMES else o) for o in frame["outcome"]],
        "Estimator": [labels.get(e, e) for e in frame["estimator"]],
        "Scale": [_scale_label(s, o, scale_pp) for s, o in zip(frame["scale"], frame["outcome"])],
        ci_head: (shown["estimate"] + " " + shown["95% CI"]).to_numpy(),
        "p": shown["p"].to_numpy(),
    }, dtype=object)
    if has_adj:
        long[adj_head] = shown["p adj."].to_numpy()
    if layout == "long":
        return long
    stats = [ci_head, "p"] + ([adj_head] if has_adj else [])
    rows = long[["Outcome", "Scale"]].drop_duplicates().reset_index(drop=True)
    wide = rows.copy()
    for est in pd.unique(long["Estimator"]):
        part = long[long["Estimator"] == est]
        merged = rows.merge(part, on=["Outcome", "Scale"], how="left")
        for stat in stats:
            wide[f"{est}: {stat}"] = merged[stat].fillna("").to_numpy()
    return wide.astype(object)


__all__ = ["ResultsLayout", "results_table"]
