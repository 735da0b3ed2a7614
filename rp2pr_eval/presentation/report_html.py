"""The run's report page, ``index.html``: a page a statistician can hand to co-authors.

Sections, in order: the design in one paragraph; the headline findings as sentences; the
primary table (labels and units); the forest plot and the primary trends; one section per
outcome with its figures inline (PNG, each a link to its SVG and PDF); sections other code
adds (:func:`extra_sections`); disclosure status; provenance (package version, lock hash,
data hash, seeds, git commit) from the run's manifest; links to the notebooks and tables.

Self-contained: every link is relative to the run folder and nothing is fetched from the
network, so the folder opens as copied or unzipped on another machine. The run is named by
the manifest's ``run_id``, never by the folder it was assembled in (``.<run-id>.partial``).
"""
from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

from rp2pr_eval.inference.validity import PValueStanding
from rp2pr_eval.presentation.report import LABELS, load_summary
from rp2pr_eval.presentation.report_content import (data_quality_html, estimator_label, methods_html, number_text,
                                                    patients_sentence, truth_text)
from rp2pr_eval.results.effect import Effect
from rp2pr_eval.study.outcomes import ESTIMATOR_LABELS, OUTCOMES

_STYLE = ("body{font-family:sans-serif;max-width:62em;margin:2em auto;line-height:1.45;color:#222}"
          "table{border-collapse:collapse;margin:0.5em 0}td,th{padding:2px 8px;border-bottom:1px solid #ddd;"
          "text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
          "figure{margin:1em 0}figure img{max-width:100%;height:auto}figcaption{font-size:90%;color:#555}"
          ".note{background:#f6f6f6;padding:0.5em 1em;border-left:3px solid #999}")
#: The per-outcome figure kinds the page (and report.pdf) show, with their captions.
FIGURE_KINDS = (("trends", "Rates by arm and audit year"), ("event_study", "Event study"),
                 ("funnel", "Funnel plots"), ("randomisation", "Randomisation distribution"),
                 ("caterpillar", "Trust random effects"))


def extra_sections(run_dir: str | Path) -> str:
    """HTML of the report sections read from what the run saved (``""`` when there are none).

    The referee's checks of every outcome (:func:`rp2pr_eval.presentation.referee.sensitivity_summary`
    of ``results/``: breakdown values of the parallel-trends sensitivity, effect modification by
    baseline, the leave-one-pair-out range, the placebo in time) as a table with their figures, and
    the flow diagram saved as ``figures/flow*.png``.
    """
    from rp2pr_eval.presentation.referee import sensitivity_summary

    run_dir = Path(run_dir)
    parts = []
    flows = sorted((run_dir / "figures").glob("flow*.png")) if (run_dir / "figures").is_dir() else []
    if flows:
        parts.append("<h2>Flow of trusts and patients</h2>")
        parts.extend(_figure(run_dir, f.with_suffix(""), f.stem.replace("_", " ")) for f in flows)
    summary = sensitivity_summary(run_dir / "results") if (run_dir / "results").is_dir() else None
    if summary is not None and len(summary):
        parts.append(_referee_section(run_dir, summary))
    return "\n".join(parts)


def _number(value, scale: float, fmt: str = "{:+.1f}") -> str:
    return number_text(value, fmt, scale)


def _as_shown(summary):
    """Waiting times (and other log scales) as ratios, as the figures and tables/sensitivity.* show them: the
    estimate columns of those rows replaced by the display values of ``sensitivity_table`` (pp rows unchanged)."""
    from rp2pr_eval.presentation.referee import SENSITIVITY_TABLE_COLUMNS, sensitivity_table

    shown = sensitivity_table(summary)
    out = summary.copy()
    ratio = out["scale"].astype(str).str.startswith("log_").to_numpy()
    for header, column, how in SENSITIVITY_TABLE_COLUMNS:
        if how == "effect" and ratio.any():
            out.loc[ratio, column] = shown.loc[ratio, header].to_numpy()
    out.loc[ratio, "scale"] = "ratio"
    return out


def _referee_section(run_dir: Path, summary) -> str:
    """The referee's checks: one row per outcome, then each outcome's figures."""
    rows = []
    summary = _as_shown(summary)
    for r in summary.itertuples(index=False):
        pp = r.scale == "risk_difference"
        k, unit = (100.0, " pp") if pp else (1.0, "")
        fmt = "{:.2f}" if r.scale == "ratio" else "{:+.1f}"          # waiting times as ratios

        def num(value, k=k, fmt=fmt):
            return _number(value, k, fmt)

        em = "—" if num(r.effect_modification) == "—" else (
            f"{num(r.effect_modification)}{unit} ({num(r.effect_modification_ci_low)} to "
            f"{num(r.effect_modification_ci_high)}; randomisation p = {html.escape(_p(r.effect_modification_ri_p))})")
        lopo = "—" if num(r.lopo_min) == "—" else (
            f"{num(r.lopo_min)} (without {html.escape(str(r.lopo_min_pair))}) to {num(r.lopo_max)} "
            f"(without {html.escape(str(r.lopo_max_pair))}); all pairs {num(r.lopo_full)}{unit}")
        placebo = "—" if num(r.placebo_in_time) == "—" else (
            f"{num(r.placebo_in_time)}{unit} ({num(r.placebo_in_time_ci_low)} to "
            f"{num(r.placebo_in_time_ci_high)}; p = {html.escape(_p(r.placebo_in_time_p))})")
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in (
            html.escape(str(r.label)), _number(r.breakdown_relative_magnitudes, 1.0, "{:.2f}"),
            _number(r.breakdown_smoothness, k, "{:.2f}") + (unit if _number(r.breakdown_smoothness, k) not in
                                                             ("—", "none found") else ""),
            em, lopo, placebo)) + "</tr>")
    head = ("<tr><th>Outcome</th><th>Breakdown M̄ (relative magnitudes)</th><th>Breakdown M (smoothness)</th>"
            "<th>Effect modification per 10 pp of baseline rate</th><th>Leave one pair out: range</th>"
            "<th>Placebo in time</th></tr>")
    out = ["<h2>Referee's checks</h2>",
           "<p>Breakdown values: the smallest violation of parallel trends at which the 95 % robust set of the "
           "event study's post-period effect includes 0 (Rambachan &amp; Roth 2023; 0: it does under exact "
           "parallel trends). Effect modification: arm × baseline-rate interaction of the ANCOVA (CR2 by pair); "
           "read it with regression to the mean in mind (docs/methods/sensitivity.md). Leave one pair out: the "
           "primary estimate with each of the 40 pairs left out. Placebo in time: the intervention moved back "
           "into the pre-period years. Risk differences in percentage points (pp); waiting times as ratios "
           "(intervention / control), as in the figures.</p>",
           f"<table>{head}{''.join(rows)}</table>"]
    for r in summary.itertuples(index=False):
        for kind, caption in (("sensitivity", "parallel-trends sensitivity"),
                              ("effect_modification", "change against baseline rate"),
                              ("leave_one_pair_out", "leave one pair out")):
            stem = run_dir / "figures" / f"{r.outcome}_{kind}"
            if stem.with_suffix(".png").is_file():
                out.append(_figure(run_dir, stem, f"{r.label}: {caption}"))
    return "\n".join(out)


def headline_sentence(effect: Effect, p_holm: float | None = None) -> str:
    """E.g. ``"Any anti-cancer treatment: +5.0 percentage points (95 % CI 2.5 to 7.5; Holm p = 0.003)"``."""
    label = LABELS.get(effect.outcome, effect.outcome)
    level = f"{100 * effect.level:g} %" if getattr(effect, "level", None) else "95 %"
    if effect.scale == "risk_difference":
        est = (f"{100 * effect.estimate:+.1f} percentage points ({level} CI {100 * effect.ci_low:.1f} to "
               f"{100 * effect.ci_high:.1f}")
    elif effect.scale.startswith("log_"):
        what = {"log_ratio": "ratio of geometric means", "log_odds_ratio": "odds ratio",
                "log_hazard_ratio": "hazard ratio"}.get(effect.scale, "ratio")
        est = (f"{what} {math.exp(effect.estimate):.2f} ({level} CI {math.exp(effect.ci_low):.2f} to "
               f"{math.exp(effect.ci_high):.2f}")
    else:
        est = f"{effect.estimate:+.2f} ({level} CI {effect.ci_low:.2f} to {effect.ci_high:.2f}"
    value = p_holm if p_holm is not None else effect.p_value
    shown = _p(value)
    p = ("Holm p" if p_holm is not None else "p") + (f" {shown}" if shown.startswith("<") else f" = {shown}")
    # a minus sign, not a hyphen, for negative numbers in running text
    return re.sub(r"(?<![\w.])-(?=\d)", "\u2212", f"{label}: {est}; {p})")


def truth_words(truth: dict | None, effect: Effect) -> str:
    """The stored truth of a headline estimate in the sentence's unit (``"+4.4 percentage points"``)."""
    text = truth_text(truth, effect.outcome, effect.scale)
    if text == "—":
        return "not stored on this scale"
    return f"{text} percentage points" if effect.scale == "risk_difference" else text


def _p(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _print_width(png: Path) -> str:
    """``" width='N'"``: the figure's print width in CSS pixels (96 per inch) from the PNG's size and dpi, so
    an 85 mm figure shows at 85 mm, not stretched to the page; ``""`` where the PNG does not say."""
    try:
        from PIL import Image

        with Image.open(png) as im:
            dpi = float((im.info.get("dpi") or (0, 0))[0])
            return f" width='{round(im.size[0] / dpi * 96)}'" if dpi > 0 else ""
    except (OSError, ValueError, ImportError):
        return ""


def _figure(run_dir: Path, stem: Path, caption: str) -> str:
    rel = stem.relative_to(run_dir).as_posix()
    links = " · ".join(f"<a href='{html.escape(rel)}.{ext}'>{ext.upper()}</a>"
                       for ext in ("svg", "pdf") if (stem.parent / f"{stem.name}.{ext}").exists())
    return (f"<figure><a href='{html.escape(rel)}.png'><img src='{html.escape(rel)}.png'"
            f"{_print_width(stem.with_suffix('.png'))} alt='{html.escape(caption)}'>"
            f"</a><figcaption>{html.escape(caption)}{' — ' + links if links else ''}</figcaption></figure>")


def design_paragraph(manifest: dict, summary, run_dir: Path) -> str:
    """The design in one paragraph (HTML): trusts, pairs, arms, periods, primary analysis, patients analysed."""
    d = manifest["parameters"]["design"]
    years = lambda ys: f"{min(ys)}–{max(ys)}" if ys else "none"  # noqa: E731
    trusts = pairs = None
    for e in summary.primary:
        trusts, pairs = e.n_trusts, e.n_clusters
        break
    n_treated = d.get("n_treated_pairs")
    size = (f"{trusts} NHS trusts in {pairs} pairs" if trusts else "NHS trusts in pairs")
    arms = (f"{n_treated} pairs ({2 * n_treated} trusts) randomised to the intervention and "
            f"{pairs - n_treated} pairs ({2 * (pairs - n_treated)} trusts) to control, both trusts of a pair "
            "in the same arm" if trusts and n_treated else "whole pairs randomised to intervention or control")
    return (f"<p>Controlled before–after study with pair-randomised clusters: {size}; {arms}. Periods: before "
            f"{years(d['pre_years'])}, during (intervention, event study only) {years(d['during_years'])}, after "
            f"{years(d['post_years'])}. Outcomes are patient-level National Lung Cancer Audit indicators aggregated "
            f"to trusts; the primary analysis is a trust-level ANCOVA with CR2 standard errors clustered by "
            f"{html.escape(str(d.get('cluster', 'pair_id')))}; Holm control across the "
            f"{len(manifest['parameters']['primary_outcomes'])} primary indicators. "
            f"{html.escape(patients_sentence(run_dir))} Methods: Methods in brief, and the registry in docs/METHODS.html of the run folder.</p>")


def write_report(run_dir: str | Path, *, title: str = "ILCOP evaluation run") -> Path:
    """Write ``<run_dir>/index.html`` (see the module docstring); returns its path."""
    run_dir = Path(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    params = manifest["parameters"]
    results = run_dir / "results"
    outcomes = [o for o in params["outcomes"] if (results / f"{o}.json").exists()]
    summary = load_summary(results, outcomes, params["primary_outcomes"])
    run_id = str(manifest.get("run_id", ""))
    truth = manifest.get("truth")
    synthetic = truth is not None or "synthetic" in str(manifest.get("data", "")).lower()
    p = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
         f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
         f"<p>Run <code>{html.escape(run_id)}</code>, started {html.escape(str(manifest.get('started', '')))}."
         + (" <strong>Synthetic data</strong>: no real patient is in these results." if synthetic else "") + "</p>",
         "<h2>Design</h2>", design_paragraph(manifest, summary, run_dir), "<h2>Headline findings</h2><ul>"]
    holm = {e.outcome: e.details["p_adjusted"] for e in summary.primary_holm}
    for e in summary.primary:
        stored = f" — generator's truth {truth_words(truth, e)}" if truth else ""
        p.append(f"<li>{html.escape(headline_sentence(e, holm.get(e.outcome)) + stored)}</li>")
    p.append("</ul>")
    others = [h for h in summary.headlines if h.startswith(("Not estimable", "Primary indicators without",
                                                             "Outcomes without"))]
    p.extend(f"<p class='note'>{html.escape(h)}</p>" for h in others)
    if synthetic:
        p.append("<p class='note'>These data are synthetic. With six primary indicators and many secondary ones, "
                 "some estimates will look significant by chance alone even where the generator's true effect is "
                 "zero; read them against the stored truth of the generator, not as findings."
                 + (" The truth column gives the generator's value on each estimate's scale: for risk differences "
                    "the true marginal difference among post-period intervention patients, for odds, hazard and "
                    "waiting-time ratios the planted (conditional) effect." if truth else
                    " The run recorded no truth (the data came without the generator's truth file).") + "</p>")
    truth_head = "<th>True effect (generator)</th>" if truth else ""
    p.append("<h2>Primary indicators</h2><table><tr><th>Indicator</th><th>Estimator</th>"
             f"<th>Difference (percentage points)</th><th>95 % CI</th><th>p</th><th>Holm p</th>{truth_head}</tr>")
    for e in summary.primary:
        rd = e.scale == "risk_difference"
        k = 100 if rd else 1
        p.append(f"<tr><td>{html.escape(OUTCOMES[e.outcome].label if e.outcome in OUTCOMES else e.outcome)}</td>"
                 f"<td>{html.escape(ESTIMATOR_LABELS.get(e.estimator, e.estimator))}</td>"
                 f"<td class='n'>{k * e.estimate:+.1f}</td><td class='n'>{k * e.ci_low:.1f} to {k * e.ci_high:.1f}</td>"
                 f"<td class='n'>{html.escape(_p(e.p_value))}</td><td class='n'>{html.escape(_p(holm.get(e.outcome)))}</td>"
                 + (f"<td class='n'>{truth_text(truth, e.outcome, e.scale)}</td>" if truth else "") + "</tr>")
    p.append("</table>")
    figures = run_dir / "figures"
    for stem, caption in (("forest", "All outcomes, four estimators (numbers: ANCOVA, the primary analysis)"),
                          ("primary_trends", "Primary indicators: rates by arm and audit year")):
        if (figures / f"{stem}.png").exists():
            p.append(_figure(run_dir, figures / stem, caption))
    p.append("<h2>Outcomes</h2>")
    for o in outcomes:
        label = OUTCOMES[o].display_label if o in OUTCOMES else o
        p.append(f"<h3 id='{html.escape(o)}'>{html.escape(label)}</h3>")
        main = summary.effects[(summary.effects["outcome"] == o)]
        if len(main):
            p.append(f"<table><tr><th>Estimator</th><th>Estimate</th><th>95 % CI</th><th>p</th>{truth_head}</tr>")
            notes = []
            for row in main.itertuples():
                standing = summary.standing.get((o, row.estimator))
                fmt = _row_numbers(row, standing)
                stored = (f"<td class='n'>{truth_text(truth, o, str(row.scale))}</td>" if truth else "")
                p.append(f"<tr><td>{html.escape(estimator_label(row.estimator))}</td>{fmt}{stored}</tr>")
                if standing is not None and standing.descriptive:
                    notes.append(f"{estimator_label(row.estimator)}: {standing.reason}.")
            p.append("</table>")
            if notes:
                p.append("<p class='note'>† Descriptive p-value, not a test to quote: " + html.escape(" ".join(notes))
                         + "</p>")
        for kind, caption in FIGURE_KINDS:
            if (figures / f"{o}_{kind}.png").exists():
                p.append(_figure(run_dir, figures / f"{o}_{kind}", caption))
    extra = extra_sections(run_dir)
    if extra:
        p.append(extra)
    p.append(methods_html(run_dir))
    p.append(standing_html(summary, run_dir))
    p.append(data_quality_html(run_dir, manifest))
    audit = manifest.get("audit", [])
    p.append("<h2>Disclosure control</h2><p>"
             + (f"The audit of the run folder found {len(audit)} issue(s); see the manifest." if audit else
                f"Counts below {params['design'].get('disclosure_threshold', 'the threshold')} are withheld "
                f"({html.escape(str(params['design'].get('disclosure', '')))} policy); the audit of the run folder "
                "found no disclosure issue.") + "</p>")
    env = manifest.get("environment", {})
    versions = manifest.get("versions", {})
    p.append("<h2>Provenance</h2><table>")
    for key, value in (("rp2pr_eval", versions.get("rp2pr_eval", "?")), ("git commit", manifest.get("git_commit")),
                       ("lock file SHA-256", env.get("lock_sha256")), ("matches lock", env.get("matches_lock")),
                       ("data SHA-256", manifest.get("data_sha256")),
                       ("seeds", ", ".join(f"{k} {v}" for k, v in manifest.get("seeds", {}).items()))):
        p.append(f"<tr><th>{html.escape(key)}</th><td><code>{html.escape(str(value))}</code></td></tr>")
    p.append("</table>")
    p.append("<h2>Notebooks and tables</h2><ul>")
    for nb in manifest.get("notebooks", []):
        link = nb.get("html") or nb.get("ipynb")
        if link and (run_dir / link).exists():
            p.append(f"<li><a href='{html.escape(link)}'>{html.escape(notebook_title(nb['name']))}</a> "
                     f"(<code>{html.escape(nb['name'])}</code>) — {html.escape(nb['status'])}</li>")
    for path in sorted((run_dir / "tables").glob("*.html")) if (run_dir / "tables").is_dir() else []:
        p.append(f"<li><a href='tables/{html.escape(path.name)}'>{html.escape(path.stem.replace('_', ' '))}</a></li>")
    p.append("</ul></body></html>\n")
    out = run_dir / "index.html"
    out.write_text("\n".join(p), encoding="utf-8")
    return out


_NOTEBOOK_TITLES = {"00_data_checks": "Data checks", "01_descriptives": "Descriptive tables and flow",
                    "10_outcome_analysis": "Outcome analysis", "20_summary": "Summary across outcomes",
                    "30_power": "Power for the next trial"}


def notebook_title(name: str) -> str:
    """A notebook job's name in words: ``10_outcome_analysis__cns_seen`` -> "Outcome analysis: Seen by …"."""
    template, _, outcome = name.partition("__")
    title = _NOTEBOOK_TITLES.get(template, template)
    if outcome:
        title += ": " + (OUTCOMES[outcome].label if outcome in OUTCOMES else outcome)
    return title


def standing_html(summary, run_dir: str | Path) -> str:
    """"Which p-values to quote": the validation standing of every estimator in the run (issue 16)."""
    seen: dict[tuple[str, str], PValueStanding] = {}
    for (_, estimator), standing in summary.standing.items():
        seen.setdefault((estimator, standing.inference), standing)
    if not seen:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(estimator_label(name))}</td><td>{html.escape(st.inference)}</td>"
        f"<td>{'validated' if not st.descriptive else '<strong>descriptive</strong>'}</td>"
        f"<td>{html.escape(st.reason)}</td></tr>" for (name, _), st in seen.items())
    page = Path(run_dir) / "docs" / "methods" / "validation.html"
    study = ("<a href='docs/methods/validation.html'>the Monte Carlo study of methods</a>" if page.is_file()
             else "the Monte Carlo study of methods (docs/methods/validation.md of the rp2pr_eval repository)")
    return (f"<h2>Which p-values to quote</h2><p>In {study}, each method ran on data generated at full "
            "ILCOP volumes (40 pairs, 15 intervention). "
            "A p-value is <em>validated</em> when its test rejected a true null in 3–7 % of trials at 5 % and its "
            "95 % interval covered in 93–97 %; otherwise, or when the method was not in the study, it is "
            "<em>descriptive</em> (marked † in the tables above): read the estimate and interval, do not quote the "
            "p-value as a test.</p><table><tr><th>Estimator</th><th>Inference</th><th>Standing</th>"
            f"<th>Evidence</th></tr>{rows}</table>")


def _p_cell(p_value, standing: PValueStanding | None) -> str:
    if standing is None or not standing.descriptive:
        return f"<td class='n'>{html.escape(_p(p_value))}</td>"
    return (f"<td class='n' title='{html.escape(standing.reason, quote=True)}'>{html.escape(_p(p_value))} "
            "† descriptive</td>")


def _row_numbers(row, standing: PValueStanding | None = None) -> str:
    scale = str(row.scale)
    if scale == "risk_difference":
        e, lo, hi, unit = 100 * row.estimate, 100 * row.ci_low, 100 * row.ci_high, " pp"
        return (f"<td class='n'>{e:+.1f}{unit}</td><td class='n'>{lo:.1f} to {hi:.1f}</td>"
                + _p_cell(row.p_value, standing))
    if scale.startswith("log_"):
        e, lo, hi = (math.exp(v) for v in (row.estimate, row.ci_low, row.ci_high))
        what = {"log_ratio": "ratio", "log_odds_ratio": "OR", "log_hazard_ratio": "HR"}.get(scale, "ratio")
        return (f"<td class='n'>{what} {e:.2f}</td><td class='n'>{lo:.2f} to {hi:.2f}</td>"
                + _p_cell(row.p_value, standing))
    return (f"<td class='n'>{row.estimate:+.2f}</td><td class='n'>{row.ci_low:.2f} to {row.ci_high:.2f}</td>"
            + _p_cell(row.p_value, standing))
