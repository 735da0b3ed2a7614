"""The package's one table renderer: a frame of display strings to text, HTML, Markdown or LaTeX.

Numbers become text in exactly two places, both calling :func:`render_table` for the layout:
:func:`format_coefficients` here (a general model's coefficient table) and
``rp2pr_eval.results.effect.format_frame`` (the study's tidy effect rows, with percentage points).
``summary()``, ``__repr__`` and ``_repr_html_`` of every result go through them; nothing prints.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from rp2pr_eval._options import check_option

__all__ = ["TABLE_FORMATS", "format_coefficients", "format_p", "render_table"]

#: Output formats of :func:`render_table`.
TABLE_FORMATS = ("text", "html", "markdown", "latex")


def format_p(p: float) -> str:
    """A p-value for display: ``<0.001`` below 0.001, else three decimals; empty when missing."""
    if pd.isna(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def render_table(shown: pd.DataFrame, *, fmt: str = "text", title: str | None = None) -> str:
    """Lay out a frame of display strings as ``text``, ``html``, ``markdown`` or ``latex``.

    ``shown`` is already formatted (every cell a string); ``title`` heads the table. Returns the
    string; never prints.
    """
    if fmt == "text":
        body = shown.to_string(index=False)
        return f"{title}\n{body}" if title else body
    if fmt == "html":
        head = f"<p><b>{title}</b></p>" if title else ""
        return head + shown.to_html(index=False, border=0)
    if fmt == "markdown":
        header = "| " + " | ".join(shown.columns) + " |\n|" + "---|" * len(shown.columns) + "\n"
        rows = "".join("| " + " | ".join(map(str, r)) + " |\n" for r in shown.itertuples(index=False))
        return (f"**{title}**\n\n" if title else "") + header + rows
    if fmt == "latex":
        return shown.to_latex(index=False, escape=True, caption=title)
    check_option("fmt", fmt, TABLE_FORMATS)
    raise AssertionError("unreachable")  # pragma: no cover


def format_coefficients(frame: pd.DataFrame, *, digits: int = 4) -> pd.DataFrame:
    """Display strings for a coefficient table from :meth:`ModelResult.to_frame`.

    Columns ``term, estimate, se, statistic, df, p_value, ci_low, ci_high`` become ``term,
    estimate, se, t|z, df, p, CI``; ``df`` shows ``normal`` for a normal reference.
    """
    if isinstance(digits, bool) or not isinstance(digits, (int, np.integer)) or digits < 0:
        raise ValueError(f"digits must be a non-negative integer, got {digits!r}")

    def num(v) -> str:
        return "" if pd.isna(v) else f"{v:.{digits}f}"

    out = pd.DataFrame(index=frame.index)
    out["term"] = frame["term"].astype(str)
    out["estimate"] = [num(v) for v in frame["estimate"]]
    out["se"] = [num(v) for v in frame["se"]]
    stat_name = "t" if np.isfinite(frame["df"].to_numpy(dtype=float)).any() else "z"
    out[stat_name] = [num(v) for v in frame["statistic"]]
    out["df"] = ["normal" if not np.isfinite(v) else f"{v:.1f}" for v in frame["df"]]
    out["p"] = [format_p(p) for p in frame["p_value"]]
    out["CI"] = [f"[{num(lo)}, {num(hi)}]" for lo, hi in zip(frame["ci_low"], frame["ci_high"])]
    return out
