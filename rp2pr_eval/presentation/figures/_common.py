"""Helpers shared by the figure modules: option types, input checks, formatting.

Nothing here imports matplotlib at module level; the figure modules import it
inside their functions so that ``import rp2pr_eval`` stays light and never
touches ``matplotlib.rcParams``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from rp2pr_eval.errors import DataError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FigureSize = Literal["single", "double", "full"]
ForestScale = Literal["risk_difference", "odds_ratio", "hazard_ratio", "ratio", "days"]
FunnelMethod = Literal["exact", "normal"]
TrendCI = Literal["cluster", "wilson"]
TrendCluster = Literal["pair_id", "trust_id"]
ImageFormat = Literal["png", "pdf", "svg"]

ARMS = ("intervention", "control")
PERIODS = ("pre", "during", "post")
MINUS = "\u2212"


def require_columns(frame: object, columns: Iterable[str], *, name: str, func: str) -> None:
    """Raise ``DataError`` (a ``ValueError``) unless ``frame`` is a DataFrame with ``columns``.

    Parameters
    ----------
    frame : object
        The object passed by the user.
    columns : iterable of str
        Required column names.
    name : str
        The argument's name, used in the message.
    func : str
        The calling function's name, used in the message.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{func}: {name} must be a pandas DataFrame, got {type(frame).__name__}")
    columns = list(columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{func}: {name} is missing column(s) {', '.join(repr(c) for c in missing)}; "
            f"expected columns {', '.join(columns)}"
        )
    if frame.empty:
        raise DataError(f"{func}: {name} has no rows")


def check_arms(frame: pd.DataFrame, *, name: str, func: str) -> None:
    """Raise ``DataError`` if the ``arm`` column holds values other than the two arms."""
    bad = sorted(set(frame["arm"].astype(str)) - set(ARMS))
    if bad:
        raise DataError(
            f"{func}: column 'arm' of {name} has value(s) {', '.join(repr(b) for b in bad[:5])}; "
            f"expected 'intervention' or 'control'"
        )


def single_outcome(frame: pd.DataFrame, outcome: str | None, *, name: str, func: str) -> tuple[pd.DataFrame, str | None]:
    """Select one outcome from a frame that may hold several.

    Returns the rows of that outcome and its name (``None`` when the frame has no
    ``outcome`` column). Raises ``DataError`` when the frame holds several outcomes
    and none was chosen, or when the chosen outcome is absent.
    """
    if "outcome" not in frame.columns:
        return frame, outcome
    present = list(pd.unique(frame["outcome"].astype(str)))
    if outcome is None:
        if len(present) > 1:
            raise DataError(
                f"{func}: {name} holds several outcomes ({', '.join(present[:6])}); "
                f"choose one with outcome=..."
            )
        return frame, present[0]
    if outcome not in present:
        raise DataError(
            f"{func}: outcome {outcome!r} is not in {name}; it holds {', '.join(present[:6])}"
        )
    return frame.loc[frame["outcome"].astype(str) == outcome], outcome


def outcome_label(outcome: str | None, labels: Mapping[str, str] | None, default: str = "") -> str:
    """The display label of ``outcome``: ``labels[outcome]`` if given, else the name."""
    if outcome is None:
        return default
    if labels is not None and outcome in labels:
        return str(labels[outcome])
    return str(outcome)


def check_labels(labels: object, *, func: str) -> None:
    """Raise ``ValueError`` unless ``labels`` is ``None`` or a mapping."""
    if labels is not None and not isinstance(labels, Mapping):
        raise ValueError(
            f"{func}: labels must be a dict mapping outcome name to label, got {type(labels).__name__}"
        )


def format_p(p: float | None) -> str:
    """Format a p-value for a figure: three decimals, ``<0.001`` below, a dash if missing."""
    if p is None or not math.isfinite(float(p)):
        return "\u2013"
    p = float(p)
    if p < 0.001:
        return "<0.001"
    return f"{p:.3f}"


def format_number(x: float, decimals: int) -> str:
    """Format a number with a typographic minus sign; a dash if missing."""
    if x is None or not math.isfinite(float(x)):
        return "\u2013"
    text = f"{float(x):.{decimals}f}"
    if text.startswith("-") and float(text) == 0.0:
        text = text[1:]
    return text.replace("-", MINUS)


def new_axes(ax: Axes | None) -> Axes:
    """Return ``ax``, or the Axes of a new :class:`~rp2pr_eval.presentation.figures.canvas.DisplayFigure`.

    The new figure is made outside pyplot (constrained layout), so it shows inline once when a
    notebook cell returns it and leaves pyplot's state and the backend alone.
    """
    if ax is not None:
        return ax
    from rp2pr_eval.presentation.figures.canvas import new_figure

    return new_figure().add_subplot()


#: Candidate ticks of a log (ratio) axis, coarsest first; :func:`log_ticks` takes the first tier giving enough.
LOG_TICK_TIERS = (
    (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100),
    (0.1, 0.2, 0.25, 0.33, 0.5, 0.67, 0.8, 1, 1.25, 1.5, 2, 3, 4, 5, 10),
    (0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2),
    tuple(np.round(np.arange(0.5, 2.0001, 0.05), 2)),
)


def log_ticks(ax: Axes, *, max_ticks: int = 8, axis: str = "x") -> None:
    """Log axis (x or y) with plain-number ratio ticks: the coarsest set giving 4 (or ``max_ticks``) to ``max_ticks`` ticks."""
    from matplotlib.ticker import (
        FixedLocator,
        FuncFormatter,
        NullFormatter,
        NullLocator,
    )

    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
    chosen: tuple[float, ...] = ()
    for tier in LOG_TICK_TIERS:
        inside = tuple(t for t in tier if lo <= t <= hi)
        if len(inside) > max_ticks and len(chosen) >= 2:
            break
        chosen = inside if len(inside) > len(chosen) else chosen
        if len(inside) >= min(4, max_ticks):
            break
    if len(chosen) > max_ticks:         # thin to every k-th tick, keeping the null value 1 where shown
        k = -(-len(chosen) // max_ticks)
        anchor = chosen.index(1) if 1 in chosen else 0
        chosen = tuple(t for i, t in enumerate(chosen) if (i - anchor) % k == 0)
    target.set_major_locator(FixedLocator(chosen))
    target.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    target.set_minor_locator(NullLocator())
    target.set_minor_formatter(NullFormatter())
