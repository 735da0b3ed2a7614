"""The trial's flow diagram (CONSORT extension for cluster randomised trials), drawn from the flow counts.

Reads the frame of :func:`rp2pr_eval.data.flow.flow_counts` (never the patients), shows patient
counts after disclosure control (:func:`rp2pr_eval.presentation.flow.flow_table`, the design's
policy by default) and returns the Figure.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rp2pr_eval.presentation.disclosure import DisclosurePolicy
from rp2pr_eval.presentation.figures.style import (
    ARM_COLOURS,
    ARM_LABELS,
    NEUTRAL_COLOUR,
    SMALL_FONT_PT,
    figure_size,
)
from rp2pr_eval.presentation.flow import flow_table, load_flow
from rp2pr_eval.study.design import StudyDesign, resolve_design
from rp2pr_eval.study.outcomes import OUTCOMES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_flow_diagram"]


def _fmt(value) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "–"
    if isinstance(value, str):
        return value
    return f"{int(value):,}"


def _trusts(value) -> str:
    """An organisation count as words ("80 trusts"), never as ``n = 80``, which reads as a count of people."""
    one = not isinstance(value, str) and value is not None and not pd.isna(value) and int(value) == 1
    return f"{_fmt(value)} trust" + ("" if one else "s")


def _years(years) -> str:
    years = list(years)
    if not years:
        return ""
    return f"{years[0]}" if len(years) == 1 else f"{years[0]}–{str(years[-1])[-2:]}"


def _analysed_lines(stage, arm: str, periods: dict) -> list[str]:
    """The text of one arm's "Analysed" box: patients by period, then exclusions."""
    lines = ["Analysed"]
    excluded = []
    for per in ("pre", "during", "post"):
        a = stage("analysed", arm, per)
        if a is None or not periods[per]:
            continue
        what = "event study only" if per == "during" else "analysed"
        lines.append(f"{per.capitalize()} ({_years(periods[per])}): {_fmt(a['trusts'])} trusts, "
                     f"{_fmt(a['patients'])} patients ({what})")
        if pd.notna(a["excluded_trusts"]) and a["excluded_trusts"]:
            lines.append(f"  trusts without eligible patients: {_fmt(a['excluded_trusts'])}")
        if a["excluded_patients"] is not None and not (isinstance(a["excluded_patients"], float)
                                                       and pd.isna(a["excluded_patients"])):
            excluded.append(f"{per}: {_fmt(a['ineligible_patients'])} not eligible, "
                            f"{_fmt(a['missing_outcome_patients'])} not recorded")
    if excluded:
        lines.append("Patients excluded")
        lines.extend(f"  {e}" for e in excluded)
    return lines


def plot_flow_diagram(flow: pd.DataFrame, *, design: StudyDesign | None = None,
                      policy: DisclosurePolicy | None = None, fig: Figure | None = None,
                      title: str | None = "Flow of trusts and patients", outcome: str | None = None) -> Figure:
    """CONSORT-style flow: invited → agreed → eligible and paired → randomised by arm → analysed.

    Parameters
    ----------
    flow : pandas.DataFrame, list of dict or mapping
        :func:`rp2pr_eval.data.flow.flow_counts` output (or its ``to_dict(orient="records")``), or the
        protected table of :func:`rp2pr_eval.presentation.flow.flow_table` /
        :func:`~rp2pr_eval.presentation.flow.load_flow` (the run's saved ``results/flow.json``,
        also accepted parsed), which is drawn as it is.
    design : StudyDesign, optional
        Gives the period years in the labels and the default disclosure policy.
    policy : DisclosurePolicy, optional
        Disclosure policy for the patient counts (default: the design's).
    fig : matplotlib.figure.Figure, optional
        Figure to draw on (a new 170 mm wide figure when ``None``).
    title : str or None
        Figure title.
    outcome : str, optional
        Outcome named in the title (default: ``flow.attrs["outcome"]``, absent from saved records).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from rp2pr_eval.presentation.figures.canvas import new_figure

    design = resolve_design(design)
    if isinstance(flow, Mapping):
        flow = load_flow(flow)
    elif not isinstance(flow, pd.DataFrame):
        flow = pd.DataFrame(list(flow))
    table = flow_table(flow, design=design, policy=policy)

    def stage(name: str, arm: str = "all", period: str = "") -> pd.Series | None:
        sel = table[(table["stage"] == name) & (table["arm"] == arm) & (table["period"] == period)]
        return None if sel.empty else sel.iloc[0]

    periods = {"pre": design.pre_years, "during": design.during_years, "post": design.post_years}
    analysed = {arm: _analysed_lines(stage, arm, periods) for arm in (design.intervention_arm, design.control_arm)}
    longest = max(len(lines) for lines in analysed.values())
    box_mm = 3.4 * longest + 4.0           # the longest "Analysed" box: about 3.4 mm a line, plus padding
    if fig is None:
        # tall enough for that box below the arms, and no taller
        height_mm = max(115.0, box_mm / 0.27)
        fig = new_figure(figsize=figure_size("double", aspect=height_mm / 170.0))
    # Vertical layout in axes fractions: the "Analysed" boxes take what their lines need at the
    # foot, the arms sit above them, and the four stages share the rest evenly.
    foot = min(0.45, box_mm / (fig.get_size_inches()[1] * 25.4))
    y_result = 0.03 + foot
    y_arms = y_result + 0.10
    ys = list(np.linspace(0.95, y_arms + 0.17, 4))
    ax = fig.add_subplot(1, 1, 1)
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)

    box = dict(boxstyle="round,pad=0.4", fc="white", ec=NEUTRAL_COLOUR, lw=0.7)
    side = dict(boxstyle="round,pad=0.35", fc="#F4F4F4", ec=NEUTRAL_COLOUR, lw=0.5)

    def text(x, y, s, style=box, **kw):
        kw.setdefault("va", "center")
        kw.setdefault("fontsize", "small")
        return ax.text(x, y, s, ha="center", bbox=style, **kw)

    def connect(source, target, lw=0.7):
        """An arrow between two boxes, from edge to edge (clipped by both boxes' outlines)."""
        ax.annotate("", xy=(0.5, 0.5), xycoords=target, xytext=(0.5, 0.5), textcoords=source,
                    arrowprops=dict(arrowstyle="-|>", lw=lw, color=NEUTRAL_COLOUR, shrinkA=1, shrinkB=1,
                                    patchA=source.get_bbox_patch(), patchB=target.get_bbox_patch()))

    def branch(y, target):
        """An arrow from the main column at height ``y`` to the edge of a side box."""
        ax.annotate("", xy=(0.0, 0.5), xycoords=target, xytext=(0.5, y), textcoords="data",
                    arrowprops=dict(arrowstyle="-|>", lw=0.5, color=NEUTRAL_COLOUR, shrinkA=0, shrinkB=2,
                                    patchB=target.get_bbox_patch()))

    inv, agr, eli, par = stage("invited"), stage("agreed"), stage("eligible"), stage("paired")
    main = [text(0.5, ys[0], f"Invited\n{_trusts(inv['trusts'])}"),
            text(0.5, ys[1], f"Agreed to take part\n{_trusts(agr['trusts'])}"),
            text(0.5, ys[2], f"With enough NLCA baseline data\n{_trusts(eli['trusts'])}"),
            text(0.5, ys[3], f"Paired on contrasting baselines\n{_trusts(par['trusts'])} in {_fmt(par['pairs'])} pairs")]
    for a, b in zip(main, main[1:]):
        connect(a, b)
    branch((ys[0] + ys[1]) / 2, text(0.84, (ys[0] + ys[1]) / 2, f"Declined\n{_trusts(agr['excluded_trusts'])}",
                                     style=side))
    branch((ys[1] + ys[2]) / 2, text(0.84, (ys[1] + ys[2]) / 2,
                                     f"Insufficient baseline data\n{_trusts(eli['excluded_trusts'])}", style=side))
    if pd.notna(par["excluded_trusts"]) and par["excluded_trusts"]:
        branch((ys[2] + ys[3]) / 2, text(0.84, (ys[2] + ys[3]) / 2, f"Not in the data\n{_trusts(par['excluded_trusts'])}",
                                         style=side))
    ax.text(0.5, (ys[3] + y_arms) / 2, "Randomised: whole pairs", ha="center", va="center", fontsize="small", style="italic",
            bbox=dict(boxstyle="square,pad=0.2", fc="white", ec="none"), zorder=5)
    for x, arm in ((0.25, design.intervention_arm), (0.75, design.control_arm)):
        r = stage("randomised", arm)
        colour = ARM_COLOURS.get(arm, NEUTRAL_COLOUR)
        arm_box = text(x, y_arms, f"{ARM_LABELS.get(arm, arm)}\n{_fmt(r['pairs'])} pairs, {_fmt(r['trusts'])} trusts",
                       style=dict(box, ec=colour, lw=1.2))
        connect(main[3], arm_box)
        result = text(x, y_result, "\n".join(analysed[arm]), va="top", fontsize=SMALL_FONT_PT, linespacing=1.35,
                      style=dict(box, ec=colour))
        connect(arm_box, result)
    outcome = flow.attrs.get("outcome") if outcome is None else outcome
    entry = OUTCOMES.get(outcome) if outcome else None
    if title:
        fig.suptitle(title + (f": {entry.label if entry else outcome}" if outcome else ""))
    return fig
