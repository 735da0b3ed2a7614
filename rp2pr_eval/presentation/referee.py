"""The referee's checks and the flow diagram of a run, drawn and tabulated from saved results only (never fits).

* :func:`referee_figures` draws (and saves) one outcome's sensitivity, effect-modification and
  leave-one-pair-out figures from its :class:`~rp2pr_eval.results.outcome.OutcomeAnalysis`
  (``sensitivity``, loaded or fresh);
* :func:`flow_figure` draws the flow diagram from the saved flow record (``results/flow.json``,
  written by :func:`~rp2pr_eval.presentation.flow.save_flow`, re-exported here with
  :func:`~rp2pr_eval.presentation.flow.load_flow`);
* :func:`sensitivity_summary` is the table of every outcome's checks — breakdown values,
  effect-modification estimate with its interval, leave-one-pair-out range and largest shift,
  placebo results — that the report shows (code names, numbers on the estimates' scale, for
  analysts); :func:`sensitivity_table` is its reader's version (labelled columns with units,
  outcome labels, estimator and scale in words, risk differences in percentage points and log
  ratios as ratios), which :func:`export_sensitivity_summary` writes to
  ``tables/sensitivity.{csv,tex,md,html}`` (model estimates only: no counts);
* :func:`redraw_referee_figures` redraws all of them for ``rp2pr-eval figures``.

Methods: ``docs/methods/sensitivity.md``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from rp2pr_eval.presentation.flow import FLOW_FILE, load_flow, save_flow
from rp2pr_eval.results.outcome import OutcomeAnalysis
from rp2pr_eval.study.design import StudyDesign
from rp2pr_eval.study.outcomes import OUTCOMES

__all__ = ["FIGURE_KINDS", "SENSITIVITY_COLUMNS", "SENSITIVITY_TABLE_COLUMNS", "export_sensitivity_summary",
           "flow_figure", "load_flow", "redraw_outcome_referee_figures", "redraw_referee_figures", "referee_figures",
           "save_flow", "sensitivity_summary", "sensitivity_table"]

#: Figures of :func:`referee_figures`, saved as ``<outcome>_<kind>.{png,pdf,svg}``.
FIGURE_KINDS: tuple[str, ...] = ("sensitivity", "effect_modification", "leave_one_pair_out")
#: Columns of :func:`sensitivity_summary`, in order.
SENSITIVITY_COLUMNS: tuple[str, ...] = (
    "outcome", "label", "scale", "sensitivity_target", "breakdown_relative_magnitudes", "breakdown_smoothness",
    "effect_modification", "effect_modification_ci_low", "effect_modification_ci_high", "effect_modification_p",
    "effect_modification_ri_p", "within_pair", "within_pair_ci_low", "within_pair_ci_high", "within_pair_ri_p",
    "lopo_estimator", "lopo_full", "lopo_min", "lopo_max", "lopo_min_pair", "lopo_max_pair", "lopo_largest_shift_pair",
    "lopo_largest_shift", "lopo_jackknife_se", "placebo_in_time", "placebo_in_time_ci_low", "placebo_in_time_ci_high",
    "placebo_in_time_p", "placebo_outcome", "placebo_outcome_ci_low", "placebo_outcome_ci_high", "placebo_outcome_p",
    "not_run",
)


def _close(figures: dict) -> None:
    """Nothing to close: the figures are outside pyplot (DisplayFigure), so none lingers or shows twice."""
    del figures


def referee_figures(analysis: OutcomeAnalysis, figures_dir: str | Path | None = None, *,
                    close: bool = True) -> dict[str, object]:
    """Draw (and save as PNG/PDF/SVG when ``figures_dir`` is given) one outcome's referee figures.

    Returns ``{"sensitivity", "effect_modification", "leave_one_pair_out"}`` → Figure, or ``None``
    where the outcome has no such result (check not run or not applicable).  ``sensitivity`` has one
    panel per restriction (relative magnitudes, smoothness); the effect-modification figure draws
    the disclosure-controlled per-trust points and says how many were withheld.  ``close=True``
    (default, as :func:`rp2pr_eval.presentation.report.outcome_figures`) closes the figures after
    saving, so a notebook shows each once, where it is displayed.
    """
    from rp2pr_eval.presentation import figures as fg

    if not isinstance(analysis, OutcomeAnalysis):
        raise TypeError(f"analysis must be an OutcomeAnalysis, got {type(analysis).__name__}")
    out: dict[str, object] = dict.fromkeys(FIGURE_KINDS)
    checks = analysis.sensitivity
    if checks is not None:
        label = analysis.label
        if checks.parallel_trends:
            out["sensitivity"] = _sensitivity_figure(list(checks.parallel_trends.values()), label)
        interaction = checks.interaction_with_points()
        if interaction is not None and interaction.details.get("points"):
            with fg.style(size="single"):
                ax = fg.plot_effect_modification(interaction, label=label)
                ax.figure.set_size_inches(fg.figure_size("single", aspect=1.0))   # room for the legend below
                withheld = int(interaction.details.get("points_withheld", 0))
                if withheld:
                    ax.set_xlabel(f"{ax.get_xlabel()}\n(not shown, small counts: {withheld} trusts)")
            out["effect_modification"] = ax.figure
        if checks.leave_one_pair_out is not None and len(checks.leave_one_pair_out):
            with fg.style(size="single"):       # 85 mm wide, as tall as the 40 pairs' rows need
                ax = fg.plot_leave_one_pair_out(checks.leave_one_pair_out, label=label, scale=checks.scale)
            out["leave_one_pair_out"] = ax.figure
    if figures_dir is not None:
        for kind, fig in out.items():
            if fig is not None:
                fg.save_figure(fig, Path(figures_dir) / f"{analysis.outcome}_{kind}")
    if close:
        _close(out)
    return out


def _sensitivity_figure(results: list, label: str):
    """Both restrictions side by side at 170 mm: the outcome and target as the figure's title, one legend."""
    from rp2pr_eval.presentation import figures as fg
    from rp2pr_eval.presentation.figures.style import SMALL_FONT_PT

    with fg.style(size="double"):
        fig = fg.new_figure(figsize=fg.figure_size("double", aspect=0.5))   # outside pyplot
        axes = fig.subplots(1, len(results), squeeze=False)[0]
        handles: dict[str, object] = {}
        for ax, result in zip(axes, results):
            fg.plot_sensitivity(result, ax=ax, label=label, legend=False)
            ax.set_title(ax.get_title().split("\n", 1)[-1])          # the panel: restriction and breakdown
            for handle, text in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(text, handle)
        fig.suptitle(f"{label}: {results[0].target}")
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=len(handles),
                   fontsize=SMALL_FONT_PT)
    return fig


def flow_figure(flow, figures_dir: str | Path | None = None, *, design: StudyDesign | None = None,
                close: bool = True):
    """The flow diagram from the saved flow record (a results folder, ``flow.json`` or the protected table).

    Saved as ``<figures_dir>/flow_diagram.{png,pdf,svg}`` when ``figures_dir`` is given; returns the
    Figure (closed unless ``close=False``).
    """
    from rp2pr_eval.presentation import figures as fg

    table = flow if isinstance(flow, pd.DataFrame) else load_flow(flow)
    with fg.style(size="double"):
        fig = fg.plot_flow_diagram(table, design=design)
    if figures_dir is not None:
        fg.save_figure(fig, Path(figures_dir) / "flow_diagram")
    if close:
        _close({"flow": fig})
    return fig


def _effect_columns(prefix: str, effect, *, ri: bool = False, p: bool = True) -> dict[str, float]:
    if effect is None:
        values = {prefix: np.nan, f"{prefix}_ci_low": np.nan, f"{prefix}_ci_high": np.nan}
        if p:
            values[f"{prefix}_p"] = np.nan
        if ri:
            values[f"{prefix}_ri_p"] = np.nan
        return values
    values = {prefix: effect.estimate, f"{prefix}_ci_low": effect.ci_low, f"{prefix}_ci_high": effect.ci_high}
    if p:
        values[f"{prefix}_p"] = effect.p_value
    if ri:
        ri_p = effect.details.get("ri_p_value")
        values[f"{prefix}_ri_p"] = np.nan if ri_p is None else float(ri_p)
    return values


def _row(analysis: OutcomeAnalysis) -> dict[str, object]:
    checks = analysis.sensitivity
    entry = OUTCOMES.get(analysis.outcome)
    row: dict[str, object] = {"outcome": analysis.outcome, "label": entry.label if entry else analysis.label,
                              "scale": checks.scale}
    pt = checks.parallel_trends
    first = next(iter(pt.values()), None)
    row["sensitivity_target"] = first.target if first is not None else ""
    for restriction in ("relative_magnitudes", "smoothness"):
        result = pt.get(restriction)
        row[f"breakdown_{restriction}"] = result.breakdown if result is not None else np.nan
    row.update(_effect_columns("effect_modification", checks.effect_modification_effect("interaction"), ri=True))
    row.update(_effect_columns("within_pair", checks.effect_modification_effect("within_pair"), ri=True, p=False))
    lopo = checks.leave_one_pair_out_summary(n_largest=1)
    if lopo is None:
        row.update({"lopo_estimator": "", "lopo_full": np.nan, "lopo_min": np.nan, "lopo_max": np.nan,
                    "lopo_min_pair": "", "lopo_max_pair": "", "lopo_largest_shift_pair": "",
                    "lopo_largest_shift": np.nan, "lopo_jackknife_se": np.nan})
    else:
        pair, shift = lopo["largest"][0]
        row.update({"lopo_estimator": lopo["estimator"], "lopo_full": lopo["full_estimate"], "lopo_min": lopo["min"],
                    "lopo_max": lopo["max"], "lopo_min_pair": lopo["min_pair"], "lopo_max_pair": lopo["max_pair"],
                    "lopo_largest_shift_pair": pair, "lopo_largest_shift": shift,
                    "lopo_jackknife_se": lopo["jackknife_se"]})
    row.update(_effect_columns("placebo_in_time", checks.placebo_in_time))
    row.update(_effect_columns("placebo_outcome", checks.placebo_outcome))
    row["not_run"] = "; ".join(f"{k}: {v}" for k, v in checks.skipped.items()
                               if not v.startswith("not requested"))
    return row


def sensitivity_summary(results_dir: str | Path, outcomes: Sequence[str] | None = None) -> pd.DataFrame:
    """Every outcome's referee checks in one frame, read from saved results (no refitting).

    One row per outcome with saved checks (outcomes without results, or saved without the checks,
    are left out), columns :data:`SENSITIVITY_COLUMNS`:

    * ``breakdown_relative_magnitudes`` (M̄) and ``breakdown_smoothness`` (M, on the estimates'
      scale) — the smallest bound at which the 95 % robust set for ``sensitivity_target`` includes
      0 (0: it does under exact parallel trends; ``inf``: no bound found);
    * ``effect_modification`` — the interaction (change in the effect per 10 percentage points of
      baseline rate) with its CR2 interval, CR2 p and randomisation p; ``within_pair`` — the
      between-arm difference of the within-pair (low − high baseline) change;
    * ``lopo_min``/``lopo_max`` — the range of the leave-one-pair-out estimates (``lopo_full``: all
      pairs), the pairs giving them, and the largest shift;
    * ``placebo_in_time`` and ``placebo_outcome`` estimates with intervals and p-values;
    * ``not_run`` — checks that did not apply or could not be estimated, and why.

    Numbers stay numbers, on the scale of the estimates (``scale``: risk differences as
    proportions); format with :func:`rp2pr_eval.results.format_frame` or the table exporter.

    Parameters
    ----------
    results_dir
        A run's ``results/`` folder (or any folder :meth:`OutcomeAnalysis.save` wrote to).
    outcomes
        Outcomes in the order wanted (default: every ``<outcome>.extras.json`` in the folder,
        in registry order).
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"{results_dir}: results folder not found")
    if outcomes is None:
        saved = {p.name.removesuffix(".extras.json") for p in results_dir.glob("*.extras.json")}
        outcomes = [o for o in OUTCOMES if o in saved] + sorted(saved - set(OUTCOMES))
    elif isinstance(outcomes, str):
        raise ValueError(f"outcomes must be a list of outcome names, got the string {outcomes!r}")
    rows = []
    for outcome in outcomes:
        if not (results_dir / f"{outcome}.json").exists() or not (results_dir / f"{outcome}.extras.json").exists():
            continue
        analysis = OutcomeAnalysis.load(results_dir, outcome)
        if analysis.sensitivity is not None:
            rows.append(_row(analysis))
    frame = pd.DataFrame(rows, columns=list(SENSITIVITY_COLUMNS))
    for col in SENSITIVITY_COLUMNS:
        if col not in ("outcome", "label", "scale", "sensitivity_target", "lopo_estimator", "lopo_min_pair",
                       "lopo_max_pair", "lopo_largest_shift_pair", "not_run"):
            frame[col] = frame[col].astype(float)
    return frame


#: The reader's table of :func:`sensitivity_table`: its column, the :data:`SENSITIVITY_COLUMNS` column it
#: shows, and how a number is shown (``"effect"``: on the display scale of the row, risk differences in
#: percentage points and log ratios as ratios; ``"pp"``: ×100 on the risk-difference scale, as is on a log
#: scale; ``None``: as it is).
SENSITIVITY_TABLE_COLUMNS: tuple[tuple[str, str, str | None], ...] = (
    ("Outcome", "label", None),
    ("Scale", "scale", None),
    ("Sensitivity target", "sensitivity_target", None),
    ("Breakdown M̄ (relative magnitudes)", "breakdown_relative_magnitudes", None),
    ("Breakdown M (smoothness; pp per year, log scale per year for ratios)", "breakdown_smoothness", "pp"),
    ("Effect modification (pp per 10 pp of baseline rate)", "effect_modification", "effect"),
    ("Effect modification: lower CI limit", "effect_modification_ci_low", "effect"),
    ("Effect modification: upper CI limit", "effect_modification_ci_high", "effect"),
    ("Effect modification: p (CR2)", "effect_modification_p", None),
    ("Effect modification: randomisation p", "effect_modification_ri_p", None),
    ("Within-pair difference (pp)", "within_pair", "effect"),
    ("Within-pair difference: lower CI limit", "within_pair_ci_low", "effect"),
    ("Within-pair difference: upper CI limit", "within_pair_ci_high", "effect"),
    ("Within-pair difference: randomisation p", "within_pair_ri_p", None),
    ("Leave one pair out: estimator", "lopo_estimator", None),
    ("Leave one pair out: all pairs", "lopo_full", "effect"),
    ("Leave one pair out: lowest", "lopo_min", "effect"),
    ("Leave one pair out: pair left out for the lowest", "lopo_min_pair", None),
    ("Leave one pair out: highest", "lopo_max", "effect"),
    ("Leave one pair out: pair left out for the highest", "lopo_max_pair", None),
    ("Leave one pair out: pair of the largest shift", "lopo_largest_shift_pair", None),
    ("Leave one pair out: largest shift (pp; for ratios, ratio to the all-pairs ratio)", "lopo_largest_shift",
     "effect"),
    ("Leave one pair out: jackknife SE (pp; log scale for ratios)", "lopo_jackknife_se", "pp"),
    ("Placebo in time", "placebo_in_time", "effect"),
    ("Placebo in time: lower CI limit", "placebo_in_time_ci_low", "effect"),
    ("Placebo in time: upper CI limit", "placebo_in_time_ci_high", "effect"),
    ("Placebo in time: p", "placebo_in_time_p", None),
    ("Placebo outcome", "placebo_outcome", "effect"),
    ("Placebo outcome: lower CI limit", "placebo_outcome_ci_low", "effect"),
    ("Placebo outcome: upper CI limit", "placebo_outcome_ci_high", "effect"),
    ("Placebo outcome: p", "placebo_outcome_p", None),
    ("Checks not run (why)", "not_run", None),
)

#: The referee's checks in words (the ``not_run`` column names them).
CHECK_LABELS = {"parallel_trends": "Parallel-trends sensitivity", "effect_modification": "Effect modification",
                "leave_one_pair_out": "Leave one pair out", "placebo_in_time": "Placebo in time",
                "placebo_outcome": "Placebo outcome"}


def _checks_in_words(text: object) -> str:
    """``"effect_modification: does not apply …; …"`` with each check's name in words."""
    if not isinstance(text, str) or not text:
        return ""
    parts = []
    for part in text.split("; "):
        name, sep, reason = part.partition(": ")
        parts.append(f"{CHECK_LABELS.get(name, name)}{sep}{reason}")
    return "; ".join(parts)


_SENSITIVITY_CAPTION = (
    "Referee's checks: parallel-trends breakdown values, effect modification by baseline, leave one pair out, "
    "placebo checks. Estimates in the units of the Scale column: risk differences in percentage points (pp), "
    "waiting times as ratios of geometric means (intervention / control), odds and hazard ratios as ratios; "
    "breakdown M and the jackknife SE of ratios on the log scale; inf: no breakdown value found.")


def sensitivity_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The reader's version of :func:`sensitivity_summary`: labelled columns, units, names in words.

    Column headers say what each number is and its unit (:data:`SENSITIVITY_TABLE_COLUMNS`); the
    outcome is its registry label, the scale in words (``"percentage points"``, ``"ratio"``, ``"odds
    ratio"``, ``"hazard ratio"``), the leave-one-pair-out estimator and the checks not run in words
    (``"ANCOVA (primary)"``, ``"Effect modification: does not apply …"``).
    Estimates are on each row's display scale — risk differences ×100 (percentage points), log
    ratios, log odds ratios and log hazard ratios exponentiated — and stay numbers (floats; format
    them where they are shown).

    Parameters
    ----------
    summary
        A frame of :func:`sensitivity_summary` (columns :data:`SENSITIVITY_COLUMNS`).
    """
    from rp2pr_eval.presentation.figures.referee import effect_scale
    from rp2pr_eval.presentation.report_content import estimator_label

    if not isinstance(summary, pd.DataFrame):
        raise TypeError(f"summary must be the DataFrame of sensitivity_summary(), got {type(summary).__name__}")
    missing = [c for c in SENSITIVITY_COLUMNS if c not in summary.columns]
    if missing:
        raise ValueError(f"summary is missing column(s) {', '.join(missing)}; pass the frame of sensitivity_summary()")
    scales = summary["scale"].astype(str)
    out = {}
    for header, column, how in SENSITIVITY_TABLE_COLUMNS:
        values = summary[column]
        if column == "scale":
            values = scales.map(lambda s: effect_scale(s).unit)
        elif column == "not_run":
            values = values.map(_checks_in_words)
        elif column == "lopo_estimator":
            values = values.map(lambda e: estimator_label(e) if isinstance(e, str) and e else "")
        elif how is not None:
            numbers = values.astype(float).to_numpy()
            shown = []
            for value, scale in zip(numbers, scales):
                if how == "effect":
                    shown.append(float(effect_scale(scale).show(value)))
                else:
                    shown.append(100.0 * value if scale == "risk_difference" else float(value))
            values = pd.Series(shown, index=summary.index, dtype=float)
        out[header] = values.to_numpy()
    return pd.DataFrame(out, index=range(len(summary)))


def export_sensitivity_summary(results_dir: str | Path, tables_dir: str | Path,
                               outcomes: Sequence[str] | None = None) -> list[Path]:
    """Write :func:`sensitivity_table` of :func:`sensitivity_summary` to ``<tables_dir>/sensitivity.{csv,tex,md,html}``.

    Labelled columns with units, estimates on each row's display scale (numbers in the CSV). Model
    estimates only (no counts of patients), so exempt from disclosure control (the exporter still
    refuses a frame that looks like patient records); an infinite breakdown value is written as
    ``inf``.  Returns the files written (none when no outcome has saved checks).
    """
    from rp2pr_eval.presentation.tables import export_table

    frame = sensitivity_summary(results_dir, outcomes)
    if not len(frame):
        return []
    table = sensitivity_table(frame)
    numbers = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    return export_table(table, Path(tables_dir) / "sensitivity", exempt_columns=numbers, digits=4,
                        caption=_SENSITIVITY_CAPTION)


def redraw_referee_figures(results_dir: str | Path, figures_dir: str | Path, outcomes: Sequence[str], *,
                           design: StudyDesign | None = None) -> list[Path]:
    """Redraw the referee figures of ``outcomes`` and the flow diagram from saved results (SVG paths written)."""
    results_dir, figures_dir = Path(results_dir), Path(figures_dir)
    written: list[Path] = []
    for outcome in outcomes:
        written += redraw_outcome_referee_figures(results_dir, figures_dir, outcome)
    if (results_dir / FLOW_FILE).exists():
        flow_figure(results_dir, figures_dir, design=design)
        written.append(figures_dir / "flow_diagram.svg")
    return written


def redraw_outcome_referee_figures(results_dir: str | Path, figures_dir: str | Path, outcome: str) -> list[Path]:
    """One outcome's referee figures from its saved results (SVG paths written; none without saved checks)."""
    analysis = OutcomeAnalysis.load(Path(results_dir), outcome)
    if analysis.sensitivity is None:
        return []
    figs = referee_figures(analysis, figures_dir)
    return [Path(figures_dir) / f"{outcome}_{k}.svg" for k, f in figs.items() if f is not None]
