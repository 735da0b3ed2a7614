"""Results: the frozen :class:`Effect`, its tidy row, rendering, and lossless JSON.

One tidy row schema serves every estimator (:data:`TIDY_COLUMNS`), so tables,
figures, the batch aggregator and multiplicity adjustment work on any result.
Numbers stay numbers in frames; formatting happens only in :func:`render`
(the study's columns, percentage points) over the package's one table layout
:func:`rp2pr_eval.models.render.render_table`, which ``__repr__``,
``_repr_html_``, :meth:`Effect.summary` and exported tables all use.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from rp2pr_eval.models.render import format_p, render_table

TIDY_COLUMNS: tuple[str, ...] = (
    "outcome", "estimator", "estimand", "scale", "estimate", "se", "ci_low", "ci_high", "p_value",
    "df", "n_obs", "n_trusts", "n_clusters", "cluster", "vcov",
)
_FLOAT_FIELDS = ("estimate", "se", "ci_low", "ci_high", "p_value")
SCHEMA_VERSION = 1


def to_native(obj: Any) -> Any:
    """Recursively convert to JSON-native Python (tuples kept; numpy → Python)."""
    if isinstance(obj, Mapping):
        return {str(k): to_native(v) for k, v in obj.items()}
    if isinstance(obj, (list, np.ndarray)):
        return [to_native(v) for v in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    if isinstance(obj, tuple):
        return tuple(to_native(v) for v in obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj


def json_safe(obj: Any) -> Any:
    """JSON-safe: NaN/inf → None, tuples → lists."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


@dataclass(frozen=True, slots=True)
class Effect:
    """One estimate with its uncertainty and what was used to get it.

    Attributes
    ----------
    outcome, estimator : str
        Registry name (or column) and the function that produced the estimate.
    estimand, scale : str
        The target in words and the scale (``risk_difference``, ``log_odds_ratio``,
        ``log_ratio``, ``days``, ``log_hazard_ratio``).
    estimate, se, ci_low, ci_high, p_value : float
        Point estimate, standard error, confidence interval at ``level`` and
        two-sided p-value (H0: 0 on this scale).
    df : float or None
        Degrees of freedom of the reference t distribution; ``None`` = normal.
    n_obs, n_trusts, n_clusters : int
        Rows of the analysis data, trusts, clusters (``None`` without clustering).
    cluster, vcov : str or None
        Clustering column and variance estimator.
    level : float
        Confidence level of the interval.
    details : dict
        Estimator-specific extras, JSON-native: ``coefficients`` ({term:
        (estimate, se)}), ``n_dropped``, ``odds_ratio``, ``risk_difference``,
        ``re_sd``, ``log_likelihood`` … where they apply.
    """

    outcome: str
    estimator: str
    estimand: str
    scale: str
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    df: float | None
    n_obs: int
    n_trusts: int
    n_clusters: int | None
    cluster: str | None
    vcov: str | None
    level: float = 0.95
    details: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name in _FLOAT_FIELDS:
            object.__setattr__(self, name, _float(getattr(self, name)))
        if self.df is not None:
            df = float(self.df)
            object.__setattr__(self, "df", None if math.isinf(df) else df)
        for name in ("n_obs", "n_trusts"):
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.n_clusters is not None:
            object.__setattr__(self, "n_clusters", int(self.n_clusters))
        object.__setattr__(self, "details", _normalise_details(self.details))

    # ------------------------------------------------------------------ conversion
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN and infinities become ``None``; tuples become lists)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return json_safe(to_native(out))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Effect":
        """Inverse of :meth:`to_dict`."""
        names = {f.name for f in fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"Effect.from_dict: unknown field(s) {sorted(unknown)}")
        kwargs = dict(values)
        kwargs["details"] = dict(kwargs.get("details") or {})
        return cls(**kwargs)

    def to_frame(self) -> pd.DataFrame:
        """One tidy row (:data:`TIDY_COLUMNS` plus ``level``)."""
        row = {c: getattr(self, c) for c in TIDY_COLUMNS}
        row["df"] = np.nan if self.df is None else self.df
        row["level"] = self.level
        for key in ("p_adjusted", "adjust_method"):
            if key in self.details:
                row[key] = self.details[key]
        return pd.DataFrame([row])

    def with_details(self, **extra: Any) -> "Effect":
        """A copy with ``details`` updated."""
        return replace(self, details={**self.details, **extra})

    # ------------------------------------------------------------------ display
    def summary(self, fmt: str = "text") -> str:
        """The effect rendered as text, HTML, Markdown or LaTeX (returns a string; never prints)."""
        return render(self.to_frame(), fmt=fmt, title=_title(self))

    def __repr__(self) -> str:
        return self.summary("text")

    def _repr_html_(self) -> str:
        return self.summary("html")


def _normalise_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-native details (NaN → None, tuples → lists) with ``coefficients`` values as tuples.

    Normalising on construction makes ``Effect.from_dict(e.to_dict()) == e``.
    """
    out = json_safe(to_native(dict(details)))
    if isinstance(out.get("coefficients"), dict):
        out["coefficients"] = {k: tuple(v) for k, v in out["coefficients"].items()}
    return out


def _title(effect: Effect) -> str:
    clusters = f"{effect.n_clusters} clusters on {effect.cluster}" if effect.cluster else "no clustering"
    df = f", t({effect.df:.1f})" if effect.df is not None else ", normal"
    return (f"{effect.estimator}: {effect.outcome} — {effect.estimand} [{effect.scale}]; "
            f"{effect.n_obs} obs, {effect.n_trusts} trusts, {clusters}, vcov {effect.vcov}{df}")


# ---------------------------------------------------------------------- tables
def effects_table(effects: Iterable[Effect]) -> pd.DataFrame:
    """Tidy frame with one row per Effect (columns :data:`TIDY_COLUMNS` + ``level``, adjusted p if present)."""
    effects = list(effects)
    if not effects:
        return pd.DataFrame(columns=list(TIDY_COLUMNS) + ["level"])
    bad = [type(e).__name__ for e in effects if not isinstance(e, Effect)]
    if bad:
        raise TypeError(f"effects_table needs Effect objects, got {bad[:3]}")
    return pd.concat([e.to_frame() for e in effects], ignore_index=True)


_SCALE_UNITS = {"risk_difference": ("pp", 100.0), "days": ("days", 1.0)}


def format_frame(frame: pd.DataFrame, *, digits: int = 3, scale_pp: bool = True) -> pd.DataFrame:
    """Format a tidy effects frame for display (strings); the only place numbers become text.

    Risk differences are shown in percentage points (x 100) unless
    ``scale_pp=False``, which shows them as proportions.
    """
    if not isinstance(scale_pp, (bool, np.bool_)):
        raise ValueError(f"scale_pp must be True or False, got {scale_pp!r}")
    units = _SCALE_UNITS if scale_pp else {**_SCALE_UNITS, "risk_difference": ("proportion", 1.0)}
    out = pd.DataFrame(index=frame.index)
    for col in ("outcome", "estimator", "scale"):
        if col in frame:
            out[col] = frame[col].astype(str)
    def num(v, d=digits):
        return "" if pd.isna(v) else f"{v:.{d}f}"
    mult = frame["scale"].map(lambda s: units.get(s, ("", 1.0))[1]) if "scale" in frame else 1.0
    out["estimate"] = [num(v * m) for v, m in zip(frame["estimate"], mult)]
    out["95% CI"] = [f"[{num(lo * m)}, {num(hi * m)}]" for lo, hi, m in zip(frame["ci_low"], frame["ci_high"], mult)]
    out["se"] = [num(v * m) for v, m in zip(frame["se"], mult)]
    out["p"] = [format_p(p) for p in frame["p_value"]]
    if "p_adjusted" in frame:
        out["p adj."] = [format_p(p) for p in frame["p_adjusted"]]
    for col, title in (("p_holm", "p (Holm)"), ("p_romano_wolf", "p (Romano–Wolf)")):
        if col in frame:
            out[title] = [format_p(p) for p in frame[col]]
    out["df"] = ["normal" if pd.isna(v) else f"{v:.1f}" for v in frame["df"]]
    for col in ("n_obs", "n_clusters", "vcov"):
        if col in frame:
            out[col] = ["" if pd.isna(v) else str(int(v)) if isinstance(v, (int, float, np.integer, np.floating)) else str(v)
                        for v in frame[col]]
    return out


def render(frame: pd.DataFrame, *, fmt: str = "text", title: str | None = None, digits: int = 3,
           scale_pp: bool = True) -> str:
    """Render a tidy effects frame as ``text``, ``html``, ``markdown`` or ``latex``.

    Risk differences are shown in percentage points (``scale_pp=False``: as proportions).
    """
    return render_table(format_frame(frame, digits=digits, scale_pp=scale_pp), fmt=fmt, title=title)


# ---------------------------------------------------------------------- JSON
def save_effects(effects: Effect | Sequence[Effect], path: str | Path) -> Path:
    """Write Effects to JSON (deterministic: sorted keys, fixed indentation)."""
    if isinstance(effects, Effect):
        effects = [effects]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"schema": "rp2pr_eval.effects", "version": SCHEMA_VERSION, "effects": [e.to_dict() for e in effects]}
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
    return path


def load_effects(path: str | Path) -> list[Effect]:
    """Read Effects written by :func:`save_effects`."""
    path = Path(path)
    payload = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(payload, dict) or payload.get("schema") != "rp2pr_eval.effects":
        raise ValueError(f"{path}: not an rp2pr_eval effects file")
    return [Effect.from_dict(d) for d in payload["effects"]]
