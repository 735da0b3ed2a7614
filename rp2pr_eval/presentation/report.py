"""Figures and summaries of a run, made from saved results only (never refits).

* :func:`outcome_figures` draws and saves one outcome's figures from an
  :class:`~rp2pr_eval.pipeline.analysis.OutcomeAnalysis` (loaded or fresh);
* :func:`load_summary` gathers every outcome's results, applies multiplicity
  control across the primary indicators and writes the headline sentences;
* :func:`regenerate_figures` redraws every figure of a run folder (the
  ``rp2pr-eval figures`` command), the referee's figures and the flow diagram included
  (:mod:`rp2pr_eval.presentation.referee`);
* :func:`write_index` writes the run's ``index.html``.
"""
from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from rp2pr_eval.inference.multiplicity import adjust_pvalues
from rp2pr_eval.inference.validity import PValueStanding, effect_standing
from rp2pr_eval.results.effect import Effect, effects_table
from rp2pr_eval.results.outcome import OutcomeAnalysis
from rp2pr_eval.study.outcomes import OUTCOMES

LABELS = {name: o.label for name, o in OUTCOMES.items()}


def outcome_figures(analysis: OutcomeAnalysis, figures_dir: str | Path | None = None, *,
                    design_during: Sequence[int] = (2010, 2011), size: str | None = None) -> dict[str, object]:
    """Draw (and save as PNG/PDF/SVG when ``figures_dir`` is given) one outcome's figures.

    Returns ``{"trends", "event_study", "funnel", "randomisation", "caterpillar"}``
    → Figure or ``None`` where the outcome has no such result. The figures are made
    outside pyplot (:class:`~rp2pr_eval.presentation.figures.DisplayFigure`): the
    backend and ``rcParams`` are left alone, and a notebook cell that returns one of
    them shows it inline, once. ``size``: ``"single"`` (85 mm) or ``"double"`` (170 mm)
    for every figure; default 85 mm, the funnel plots (two panels) 170 mm.

    Units: risk differences in percentage points; a randomisation test of the t
    statistic is labelled as such; waiting times (estimated as log ratios of geometric
    means) are drawn as ratios on a log axis.
    """
    from rp2pr_eval.presentation import figures as fg

    out: dict[str, object] = dict.fromkeys(("trends", "event_study", "funnel", "randomisation", "caterpillar"))
    name = analysis.outcome
    one = size or "single"
    with fg.style(size=one):
        trends = analysis.trends if analysis.trends is not None else analysis.panel_year
        if trends is not None and _drawable_trends(trends):
            ax = fg.plot_trends(trends, labels=LABELS, during_years=tuple(design_during), outcome=name)
            _note_withheld(ax, _withheld(trends), "arm-years")
            out["trends"] = ax.figure
        if analysis.event_study is not None:
            es = analysis.event_study
            ax = fg.plot_event_study(es.to_frame(), pretrend_p=es.pretrend_p, reference_year=es.reference_year,
                                     label=analysis.label, scale_pp=analysis.kind == "binary",
                                     ratio=_effect_scale(analysis) == "log_ratio")
            out["event_study"] = ax.figure
        if analysis.randomisation is not None:
            r = analysis.randomisation
            draws = analysis.ri_draws
            if draws is None:  # rebuild from the saved histogram
                h = r["histogram"]
                mids = (np.asarray(h["edges"][:-1]) + np.asarray(h["edges"][1:])) / 2
                draws = np.repeat(mids, h["counts"])
            observed, draws, xlabel, log_x = _randomisation_units(analysis, float(r["observed"]), np.asarray(draws))
            ax = fg.plot_randomisation(observed, draws, p_value=r["p_value"], label=xlabel, log_scale=log_x)
            out["randomisation"] = ax.figure
        if analysis.trust_effects is not None and len(analysis.trust_effects):
            ax = fg.plot_caterpillar(analysis.trust_effects)
            out["caterpillar"] = ax.figure
    panel = analysis.panel_period
    if panel is not None:
        shown = panel[~_withheld_mask(panel)]
        periods = [p for p in ("pre", "post") if _funnel_drawable(shown[shown["period"].astype(str) == p])]
        if periods:
            with fg.style(size=size or "double"):
                fig = fg.plot_funnel(shown, labels=LABELS, periods=periods)
                for ax, period in zip(fig.axes, periods):
                    _note_withheld(ax, _withheld(panel[panel["period"].astype(str) == period]), "trusts")
                out["funnel"] = fig
    if figures_dir is not None:
        figures_dir = Path(figures_dir)
        for kind, fig in out.items():
            if fig is not None:
                fg.save_figure(fig, figures_dir / f"{name}_{kind}")
    return out


def _effect_scale(analysis: OutcomeAnalysis) -> str | None:
    main = analysis.effects.get("ancova") or next(iter(analysis.effects.values()), None)
    return None if main is None else main.scale


def _randomisation_units(analysis: OutcomeAnalysis, observed: float, draws: np.ndarray):
    """The randomisation statistic in the units of the other figures, and its axis label."""
    from rp2pr_eval.study.outcomes import ESTIMATOR_LABELS

    r = analysis.randomisation
    estimator = ESTIMATOR_LABELS.get(r.get("estimator", "ancova"), r.get("estimator", "ancova"))
    estimator = estimator.replace(" (primary)", "")
    if r.get("statistic") == "t":
        return observed, draws, f"{estimator} t statistic\n(estimate / standard error)", False
    scale = _effect_scale(analysis)
    if scale == "risk_difference":
        return 100 * observed, 100 * draws, f"{estimator} risk difference\n(percentage points)", False
    if scale in ("log_ratio", "log_odds_ratio", "log_hazard_ratio"):
        what = {"log_ratio": "ratio of geometric means", "log_odds_ratio": "odds ratio",
                "log_hazard_ratio": "hazard ratio"}[scale]
        return float(np.exp(observed)), np.exp(draws), f"{estimator} {what}\n(intervention / control)", True
    return observed, draws, f"{estimator} estimate", False


def _withheld_mask(frame: pd.DataFrame) -> np.ndarray:
    if "withheld" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return frame["withheld"].fillna(True).astype(bool).to_numpy()


def _withheld(frame: pd.DataFrame) -> int:
    return int(_withheld_mask(frame).sum())


def _funnel_drawable(rows: pd.DataFrame) -> bool:
    """At least two trusts and a pooled rate strictly between 0 and 1 (what the limits need)."""
    if len(rows) < 2:
        return False
    total = float(rows["denominator"].sum())
    return total > 0 and 0 < float(rows["numerator"].sum()) / total < 1


def _drawable_trends(frame: pd.DataFrame) -> bool:
    if "rate" in frame.columns and "trust_id" not in frame.columns:
        return bool(pd.to_numeric(frame["rate"], errors="coerce").notna().any())
    return len(frame) > 0


def _note_withheld(ax, count: int, what: str) -> None:
    """Say under the axes how many points disclosure control left out (none: no note)."""
    if count:
        ax.set_xlabel(f"{ax.get_xlabel()}\n(not shown, small counts: {count} {what})")


@dataclass
class SummaryReport:
    """All outcomes together: tidy effects, multiplicity-adjusted primary table, headline sentences."""

    effects: pd.DataFrame
    primary: list[Effect]
    primary_holm: list[Effect]
    primary_romano_wolf: list[Effect] | None
    headlines: list[str]
    #: Primary outcomes of the run's parameters that have no primary (ANCOVA) result in this run.
    missing_primary: list[str] = field(default_factory=list)
    #: Outcomes asked for whose results are not in the results folder.
    missing_results: list[str] = field(default_factory=list)
    #: (outcome, estimator step, reason) of every requested estimator that could not be estimated.
    not_estimable: list[tuple[str, str, str]] = field(default_factory=list)
    #: (outcome, estimator) -> the standing of that p-value in the validation study
    #: (:mod:`rp2pr_eval.inference.validity`): "validated", or "descriptive" with the reason.
    standing: dict[tuple[str, str], PValueStanding] = field(default_factory=dict)

    def adjusted_table(self) -> pd.DataFrame:
        """Primary indicators (ANCOVA): raw, Holm- and Romano–Wolf-adjusted p-values."""
        frame = effects_table(self.primary_holm)
        frame.insert(1, "label", frame["outcome"].map(LABELS))
        frame["p_holm"] = [e.details["p_adjusted"] for e in self.primary_holm]
        if self.primary_romano_wolf is not None:
            frame["p_romano_wolf"] = [e.details["p_adjusted"] for e in self.primary_romano_wolf]
        return frame.drop(columns=[c for c in ("p_adjusted", "adjust_method") if c in frame])

    def forest(self, *, scale: str | None = None, size: str = "double"):
        """The forest plot of the run: every outcome, the four main estimators (and Cox for survival).

        ``scale=None`` (default) stacks one panel per scale (:func:`~rp2pr_eval.presentation.figures.forest_figure`:
        risk differences, waiting-time ratios, hazard ratios); a forest scale name draws that scale alone.
        """
        from rp2pr_eval.presentation import figures as fg

        keep = ["ancova", "did_aggregate", "did_twfe", "mixed_linear", "did_cox"]
        frame = self.effects[self.effects["estimator"].isin(keep)] if len(self.effects) else self.effects
        with fg.style(size=size):
            if not len(frame):
                fig = fg.new_figure()
                ax = fig.add_subplot()
                ax.set_axis_off()
                ax.text(0.5, 0.5, "No estimates in this run", ha="center", va="center")
                return fig
            frame = self._with_holm(frame.reset_index(drop=True))
            if scale is None:
                return fg.forest_figure(frame, labels=LABELS, size=size)
            ax = fg.plot_forest(frame.reset_index(drop=True), scale=scale, labels=LABELS)
        return ax.figure

    def _with_holm(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Add the Holm-adjusted p of each primary ANCOVA estimate (NaN elsewhere)."""
        holm = {e.outcome: e.details["p_adjusted"] for e in self.primary_holm}
        out = frame.copy()
        primary = out["estimator"].eq("ancova") & out["outcome"].isin(list(holm))
        out["p_adjusted"] = np.where(primary, out["outcome"].map(holm), np.nan).astype(float)
        out["adjust_method"] = "holm" if holm else None
        return out

    def headline_markdown(self) -> str:
        return "\n".join(f"- {h}" for h in self.headlines)


def _headline(e: Effect, p_adj: float | None) -> str:
    label = LABELS.get(e.outcome, e.outcome)
    if e.scale == "risk_difference":
        est = f"{100 * e.estimate:+.1f} percentage points (95% CI {100 * e.ci_low:.1f} to {100 * e.ci_high:.1f})"
    else:
        est = f"{e.estimate:+.3f} on the {e.scale.replace('_', ' ')} scale (95% CI {e.ci_low:.3f} to {e.ci_high:.3f})"
    adj = "" if p_adj is None else f", Holm-adjusted p = {p_adj:.3f}"
    verdict = ("evidence of a difference" if (p_adj if p_adj is not None else e.p_value) < 0.05
               else "no clear evidence of a difference")
    return f"{label}: {est}, p = {e.p_value:.3f}{adj} — {verdict} between arms after the intervention."


def load_summary(results_dir: str | Path, outcomes: Sequence[str], primary_outcomes: Sequence[str]) -> SummaryReport:
    """Read every outcome's saved results and build the summary (Holm and Romano–Wolf across the primaries).

    Any subset of outcomes works: outcomes without results and primary outcomes without a primary
    (ANCOVA) estimate are listed in ``missing_results`` / ``missing_primary`` and named in the
    headlines, and the multiplicity adjustment runs over the primary outcomes that are present.
    """
    results_dir = Path(results_dir)
    analyses = {o: OutcomeAnalysis.load(results_dir, o) for o in outcomes if (results_dir / f"{o}.json").exists()}
    missing = [o for o in outcomes if o not in analyses]
    effects = effects_table([e for a in analyses.values() for e in a.effects.values()])
    standing = {(e.outcome, e.estimator): effect_standing(e) for a in analyses.values() for e in a.effects.values()}
    present = [o for o in primary_outcomes if o in analyses and "ancova" in analyses[o].effects]
    absent = [o for o in primary_outcomes if o not in present]
    primary = [analyses[o].effects["ancova"] for o in present]
    holm = adjust_pvalues(primary, method="holm") if primary else []
    rw = None
    draws = [analyses[o].ri_draws for o in present]
    if primary and all(d is not None for d in draws) and len({len(d) for d in draws}) == 1:
        obs = [analyses[o].randomisation["observed"] for o in present]
        scaled = np.column_stack(draws)
        # studentise by the randomisation SD so outcomes on different scales compete fairly
        sd = scaled.std(axis=0, ddof=1)
        rw = adjust_pvalues(primary, method="romano_wolf", null_draws=scaled / sd, observed=np.asarray(obs) / sd)
    heads = [_headline(e, h.details["p_adjusted"]) for e, h in zip(primary, holm)]
    for o in outcomes:
        if o in present or o not in analyses:
            continue
        a = analyses[o]
        main = a.effects.get("ancova") or a.effects.get("did_cox")
        if main is not None:
            heads.append(_headline(main, None))
    failed = [(o, step, reason) for o, a in analyses.items() for step, reason in a.skipped.items()
              if reason.startswith("not estimable")]
    if failed:
        listed = "; ".join(f"{step} for {LABELS.get(o, o)} ({reason.split(': ', 1)[-1][:120]})"
                           for o, step, reason in failed[:8])
        more = f"; and {len(failed) - 8} more" if len(failed) > 8 else ""
        heads.insert(0, f"Not estimable in this run ({len(failed)}): {listed}{more}.")
    if absent:
        heads.append("Primary indicators without a primary result in this run (not part of the multiplicity "
                      f"adjustment): {', '.join(LABELS.get(o, o) for o in absent)}.")
    if missing:
        heads.append(f"Outcomes without saved results: {', '.join(LABELS.get(o, o) for o in missing)}.")
    return SummaryReport(effects=effects, primary=primary, primary_holm=holm, primary_romano_wolf=rw, headlines=heads,
                         missing_primary=absent, missing_results=missing, not_estimable=failed, standing=standing)


def _redraw_outcome(results_dir: Path, figures_dir: Path, outcome: str, during: Sequence[int]) -> list[Path]:
    from rp2pr_eval.presentation.referee import redraw_outcome_referee_figures

    figs = outcome_figures(OutcomeAnalysis.load(results_dir, outcome), figures_dir, design_during=during)
    return ([figures_dir / f"{outcome}_{k}.svg" for k, f in figs.items() if f is not None]
            + redraw_outcome_referee_figures(results_dir, figures_dir, outcome))


def regenerate_figures(run_dir: str | Path, *, n_jobs: int = -1) -> list[Path]:
    """Redraw every figure of a run from its saved results (no model is fitted), outcomes in parallel."""
    from joblib import Parallel, delayed

    run_dir = Path(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    config = manifest["parameters"]
    results_dir, figures_dir = run_dir / "results", run_dir / "figures"
    during = config["design"]["during_years"]
    outcomes = [o for o in config["outcomes"] if (results_dir / f"{o}.json").exists()]
    if not outcomes and not (results_dir / "power.json").exists():
        raise FileNotFoundError(f"{results_dir}: no saved results to draw figures from")
    if n_jobs == 1:
        parts = [_redraw_outcome(results_dir, figures_dir, o, during) for o in outcomes]
    else:
        parts = Parallel(n_jobs=n_jobs)(delayed(_redraw_outcome)(results_dir, figures_dir, o, during) for o in outcomes)
    written: list[Path] = [p for part in parts for p in part]
    from rp2pr_eval.presentation.referee import redraw_referee_figures
    from rp2pr_eval.study.design import StudyDesign

    written += redraw_referee_figures(results_dir, figures_dir, [], design=StudyDesign.from_dict(config["design"]))
    summary = load_summary(results_dir, outcomes, config["primary_outcomes"])
    from rp2pr_eval.presentation.figures import save_figure

    save_figure(summary.forest(), figures_dir / "forest")
    written.append(figures_dir / "forest.svg")
    trends = primary_trends_figure(results_dir, [o for o in config["primary_outcomes"] if o in config["outcomes"]],
                                   during=during)
    if trends is not None:
        save_figure(trends, figures_dir / "primary_trends")
        written.append(figures_dir / "primary_trends.svg")
    return written


def primary_trends_figure(results_dir: str | Path, outcomes: Sequence[str], *, during: Sequence[int] = (2010, 2011),
                          size: str = "double"):
    """Small multiples of the rates by arm and year of ``outcomes``, from the saved (disclosure-controlled) trends.

    What ``01_descriptives`` draws from the patients (:func:`primary_trends_from_patients`),
    redrawn from the saved results by ``rp2pr-eval figures`` (the same bytes: both draw the
    protected arm-year rates; withheld arm-years are not drawn). ``None`` when no outcome has
    saved trends.
    """
    results_dir = Path(results_dir)
    panels = {}
    for o in outcomes:
        if not (results_dir / f"{o}.json").exists():
            continue
        a = OutcomeAnalysis.load(results_dir, o)
        trends = a.trends if a.trends is not None else a.panel_year
        if trends is not None and _drawable_trends(trends):
            panels[o] = trends
    return _trends_grid(panels, during, size) if panels else None


def primary_trends_from_patients(patients: pd.DataFrame, outcomes: Sequence[str], *, design=None,
                                 level: float = 0.95, size: str = "double", among: Sequence[str] | None = None):
    """The primary-trends figure from the patient table: protected arm-year rates of each binary outcome.

    Disclosure control as in the saved results (:func:`rp2pr_eval.presentation.panels.protected_trends`
    with the design's policy), so the figure equals :func:`primary_trends_figure` of the run.
    ``among``: keep only these outcomes (the run's); ``None`` when no binary outcome is left.
    """
    from rp2pr_eval.data.describe import trend_panels
    from rp2pr_eval.presentation.disclosure import policy_for_design
    from rp2pr_eval.presentation.panels import protected_trends
    from rp2pr_eval.study.design import resolve_design

    design = resolve_design(design)
    policy = policy_for_design(design)
    binary = [o for o in outcomes if o in OUTCOMES and OUTCOMES[o].kind == "binary"
              and (among is None or o in among)]
    if not binary:
        return None
    panels = {o: protected_trends(panel, policy, level=level)
              for o, panel in trend_panels(patients, binary, design=design).items()}
    return _trends_grid(panels, design.during_years, size)


@dataclass(frozen=True)
class NoFigure:
    """Stands in for a figure that cannot be drawn on these data; a notebook shows the reason."""

    reason: str

    def __repr__(self) -> str:
        return self.reason

    def _repr_markdown_(self) -> str:
        return f"*{self.reason}*"


def save_primary_trends(patients: pd.DataFrame, outcomes: Sequence[str], figures_dir: str | Path, *, design=None,
                        among: Sequence[str] | None = None, size: str = "double"):
    """Draw :func:`primary_trends_from_patients` and save it as ``figures_dir/primary_trends.{png,pdf,svg}``.

    Returns the figure, or a :class:`NoFigure` saying why nothing was drawn (no binary primary
    outcome among the run's outcomes, as in a survival-only or waiting-time-only run); nothing is
    saved then, as ``rp2pr-eval figures`` draws nothing for such a run.
    """
    from rp2pr_eval.presentation.figures import save_figure

    fig = primary_trends_from_patients(patients, outcomes, design=design, size=size, among=among)
    if fig is None:
        kept = [o for o in outcomes if among is None or o in among]
        if not kept:
            return NoFigure("No trends figure: no primary outcome is among this run's outcomes.")
        return NoFigure(f"No trends figure: the primary outcomes of this run ({', '.join(kept)}) are not binary "
                        "indicators, so there are no rates by arm and year to draw.")
    save_figure(fig, Path(figures_dir) / "primary_trends")
    return fig


def _trends_grid(panels, during, size):
    from rp2pr_eval.presentation import figures as fg

    with fg.style(size=size):
        return fg.plot_trends_grid(panels, labels=LABELS, during_years=tuple(during), size=size)


def write_index(run_dir: str | Path, *, title: str = "ILCOP evaluation run") -> Path:
    """Write a plain ``index.html``: forest plot, primary table, links (the run's report page is
    :func:`rp2pr_eval.presentation.report_html.write_report`)."""
    run_dir = Path(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{padding:2px 8px;border-bottom:1px solid #ddd}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p>Run <code>{html.escape(str(manifest.get('run_id', run_dir.name)))}</code>; data SHA-256 <code>{manifest['data_sha256'][:16]}…</code>; "
             f"package {html.escape(manifest['versions'].get('rp2pr_eval', '?'))}. Synthetic data only.</p>"]
    if (run_dir / "figures" / "forest.svg").exists():
        parts.append("<h2>Effects across outcomes</h2><img src='figures/forest.svg' alt='forest plot' style='max-width:100%'>")
    table = run_dir / "tables" / "primary_results.html"
    if table.exists():
        parts.append("<h2>Primary indicators (ANCOVA, Holm and Romano–Wolf adjusted)</h2>")
        parts.append(table.read_text(encoding="utf-8"))
    parts.append("<h2>Notebooks</h2><ul>")
    for nb in manifest["notebooks"]:
        status = nb["status"]
        link = nb.get("html") or nb.get("ipynb")
        parts.append(f"<li><a href='{html.escape(link)}'>{html.escape(nb['name'])}</a> — {status}, "
                     f"{nb['seconds']:.1f} s</li>")
    parts.append("</ul><h2>Tables</h2><ul>")
    for path in sorted((run_dir / "tables").glob("*.html")):
        parts.append(f"<li><a href='tables/{path.name}'>{path.stem}</a></li>")
    parts.append("</ul><h2>Figures</h2><ul>")
    for path in sorted((run_dir / "figures").glob("*.svg")):
        parts.append(f"<li><a href='figures/{path.name}'>{path.stem}</a></li>")
    parts.append("</ul></body></html>\n")
    out = run_dir / "index.html"
    out.write_text("\n".join(parts), encoding="utf-8")
    return out


def headlines_markdown(summary: SummaryReport):
    """The headline sentences as Markdown for a notebook."""
    text = summary.headline_markdown()
    try:
        from IPython.display import Markdown

        return Markdown(text)
    except ImportError:  # pragma: no cover
        return text


def save_power(power, output_dir: str | Path) -> Path:
    """Write a power result: ``output_dir/results/power.json`` without timings, timings apart.

    The result file holds what the simulation found (``to_dict()`` with ``timing`` emptied), so a
    rerun of the same run gives the same bytes; the wall and CPU seconds go to
    ``output_dir/timings/power.json``, which the runner moves into the run's manifest.
    """
    from dataclasses import replace

    output_dir = Path(output_dir)
    (output_dir / "results").mkdir(parents=True, exist_ok=True)
    path = output_dir / "results" / "power.json"
    path.write_text(json.dumps(replace(power, timing={}).to_dict(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    (output_dir / "timings").mkdir(parents=True, exist_ok=True)
    (output_dir / "timings" / "power.json").write_text(
        json.dumps(power.timing, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def primary_display_table(summary: SummaryReport) -> pd.DataFrame:
    """The primary table as co-authors read it: labels, the scale in words, risk differences in percentage
    points (odds, hazard and waiting-time ratios exponentiated), raw, Holm and Romano–Wolf p, trusts and pairs.

    Strings, formatted once here; model estimates and organisation counts need no disclosure control.
    """
    import math

    from rp2pr_eval.presentation.report_content import estimator_label
    from rp2pr_eval.study.outcomes import SCALE_LABELS

    def p_text(p) -> str:
        return "" if p is None or not math.isfinite(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")

    rw = {e.outcome: e.details["p_adjusted"] for e in (summary.primary_romano_wolf or [])}
    rows = []
    for e in summary.primary_holm:
        if e.scale == "risk_difference":
            est, lo, hi = (f"{100 * v:+.1f}" for v in (e.estimate, e.ci_low, e.ci_high))
        elif e.scale.startswith("log_"):
            est, lo, hi = (f"{math.exp(v):.2f}" for v in (e.estimate, e.ci_low, e.ci_high))
        else:
            est, lo, hi = (f"{v:+.2f}" for v in (e.estimate, e.ci_low, e.ci_high))
        rows.append({"Indicator": LABELS.get(e.outcome, e.outcome), "Estimator": estimator_label(e.estimator),
                     "Scale": SCALE_LABELS.get(e.scale, e.scale), "Estimate": est,
                     f"{100 * e.level:g}% CI": f"{lo} to {hi}", "p": p_text(e.p_value),
                     "p (Holm)": p_text(e.details["p_adjusted"]),
                     **({"p (Romano–Wolf)": p_text(rw.get(e.outcome))} if rw else {}),
                     "Trusts": str(e.n_trusts), "Pairs": str(e.n_clusters)})
    return pd.DataFrame(rows, dtype=object)


def export_summary_tables(summary: SummaryReport, tables_dir: str | Path) -> list[Path]:
    """Export the primary table (ANCOVA with Holm and Romano–Wolf p) and the table of every estimate.

    Both under registry labels with units (:func:`primary_display_table`; estimators in words through
    :func:`rp2pr_eval.presentation.report_content.estimator_label`). Model estimates are exempt from
    disclosure control; the frames hold no patient counts.
    """
    from rp2pr_eval.presentation.report_content import estimator_label
    from rp2pr_eval.presentation.tables import export_table, results_table

    tables_dir = Path(tables_dir)
    written = export_table(primary_display_table(summary), tables_dir / "primary_results",
                           caption="Primary indicators: ANCOVA with multiplicity control (risk differences in "
                                   "percentage points)")
    if len(summary.effects):                       # nothing estimable: the headline says why; no empty table
        names = {e: estimator_label(e) for e in pd.unique(summary.effects["estimator"])}
        written += export_table(results_table(summary.effects, labels=names), tables_dir / "all_results",
                                caption="All estimates")
    return written
