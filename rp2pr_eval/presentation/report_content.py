"""What the report page says besides the estimates: patients analysed, the stored truth, methods, data quality.

Every function reads what the run saved (``manifest.json``, ``results/flow.json``), never the data
folder and never a model fit, so the page and its PDF can be rebuilt from a copied run folder:

* :func:`patients_analysed` — the analysed patients of the run's flow record (counts already under
  the run's disclosure control; no total is formed where a cell is withheld, since the total and the
  other cells would give the withheld count back);
* :func:`truth_value` — the generator's stored truth on an estimate's scale, from the truth the run
  recorded in its manifest (:func:`rp2pr_eval.pipeline.batch.truth_record` writes it there);
* :func:`estimator_label` — estimator names in words, including the resampling variants
  (``ancova+RI``);
* :data:`METHODS_IN_BRIEF` and :func:`copy_methods` — a few sentences per estimator family, and the
  methods registry (``docs/METHODS.md`` and ``docs/methods/*.md``) rendered to HTML into the run
  folder's ``docs/`` with mistune (the Markdown renderer nbconvert already uses), so its links work
  offline (:func:`render_markdown`: GFM tables, with ``|`` inside a table's code spans escaped as GFM
  requires and shown without the backslash mistune would keep);
* :func:`data_quality_html` — the data-quality section: analysed patients by arm and period, the
  flow's notes, estimators that were not estimable or not applicable, and a link to the data-checks
  notebook.
"""
from __future__ import annotations

import functools
import html
import json
import math
import re
from pathlib import Path

from rp2pr_eval import paths
from rp2pr_eval.study.outcomes import ESTIMATOR_LABELS

#: Resampling variants of an estimator in the summary (``"ancova+RI"``) and how they read.
_VARIANTS = {"RI": "randomisation inference", "wild": "wild cluster bootstrap"}


def number_text(value, fmt: str = "{:+.1f}", scale: float = 1.0) -> str:
    """A report number: ``fmt`` of ``value * scale``; "—" where missing, "none found" where infinite."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "—"
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return "none found"
    return fmt.format(value * scale)


def estimator_label(name: str) -> str:
    """``"ancova"`` → ``"ANCOVA (primary)"``; ``"ancova+RI"`` → ``"ANCOVA, randomisation inference"``."""
    base, _, variant = str(name).partition("+")
    label = ESTIMATOR_LABELS.get(base, base)
    if not variant:
        return label
    return f"{label.replace(' (primary)', '')}, {_VARIANTS.get(variant, variant)}"


def read_flow(run_dir: str | Path) -> dict | None:
    """The run's saved flow record (``results/flow.json``), or ``None`` where the run has none."""
    path = Path(run_dir) / "results" / "flow.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def patients_analysed(run_dir: str | Path) -> dict | None:
    """Analysed patients by arm and period from the saved flow record.

    Returns ``{"cells": {(arm, period): n or None}, "total": n or None, "before_after": n or None,
    "during": n or None}``; a total is ``None`` where one of its cells is withheld (``None`` in the flow).
    ``None`` when the run saved no flow record (e.g. a trust-panel run).
    """
    flow = read_flow(run_dir)
    if not flow:
        return None
    cells = {(r["arm"], r["period"]): r.get("patients") for r in flow.get("rows", []) if r.get("stage") == "analysed"}
    if not cells:
        return None

    def total(periods) -> int | None:
        values = [v for (_, period), v in cells.items() if period in periods]
        return None if not values or any(v is None for v in values) else int(sum(values))

    return {"cells": cells, "total": total({"pre", "during", "post"}), "before_after": total({"pre", "post"}),
            "during": total({"during"}), "arm_totals": {
                arm: (None if any(cells.get((arm, p)) is None for p in ("pre", "post"))
                      else int(cells[(arm, "pre")] + cells[(arm, "post")]))
                for arm in dict.fromkeys(a for a, _ in cells) if (arm, "pre") in cells and (arm, "post") in cells}}


def patients_sentence(run_dir: str | Path) -> str:
    """E.g. ``"Patients analysed: 8,761 in the before and after years (intervention 2,799; control 5,962) and
    3,746 in the during years (event study only)."``; ``""`` without a flow record."""
    counts = patients_analysed(run_dir)
    if counts is None:
        return ""
    if counts["before_after"] is None:
        return ("Patients analysed: by arm and period in the flow table below (a total is not shown because a "
                "cell is withheld under the disclosure policy).")
    arms = "; ".join(f"{arm} {n:,}" for arm, n in counts["arm_totals"].items() if n is not None)
    during = (f" and {counts['during']:,} in the during years (event study only)" if counts["during"] is not None
              else "")
    return f"Patients analysed: {counts['before_after']:,} in the before and after years ({arms}){during}."


def truth_value(truth: dict | None, outcome: str, scale: str) -> float | None:
    """The stored truth of ``outcome`` on an estimate's ``scale`` (``None`` where none applies).

    ``risk_difference``: the true marginal risk difference among post-period intervention patients;
    ``log_odds_ratio`` / ``log_ratio`` / ``log_hazard_ratio``: the planted effect where the generator
    planted it on that scale (a conditional log odds ratio for binary outcomes, the log ratio of
    waiting times, the log hazard ratio of survival). Estimates on other scales (e.g. differences
    of trust medians in days) have no stored truth.
    """
    if not truth:
        return None
    if scale == "risk_difference":
        value = (truth.get("risk_difference") or {}).get(outcome)
    elif (truth.get("scale") or {}).get(outcome) == scale:
        value = (truth.get("effects") or {}).get(outcome)
    else:
        value = None
    return None if value is None or not math.isfinite(float(value)) else float(value)


def truth_text(truth: dict | None, outcome: str, scale: str) -> str:
    """The stored truth as the page shows it: ``"+4.4"`` (percentage points), ``"1.35"`` (a ratio), ``"—"``."""
    value = truth_value(truth, outcome, scale)
    if value is None:
        return "—"
    if scale == "risk_difference":
        return "0.0" if value == 0 else f"{100 * value:+.1f}"
    if scale.startswith("log_"):
        return f"{math.exp(value):.2f}"
    return f"{value:+.2f}"


#: The methods in brief: (family, sentences, the registry page that details it).
METHODS_IN_BRIEF: tuple[tuple[str, str, str], ...] = (
    ("ANCOVA (primary)", "Trust-level weighted regression of each trust's post-period rate on its arm and its "
     "pre-period rate (weights: post-period patients), so regression to the mean within pairs is adjusted for. "
     "CR2 standard errors clustered by pair with Satterthwaite degrees of freedom; Holm and Romano–Wolf "
     "control across the primary indicators.", "variance.md"),
    ("Difference in differences", "The intervention − control difference of the before–after change: on trust × "
     "period rates (weighted by patients) and as a two-way fixed-effects regression on trust × audit-year rates, "
     "both clustered by pair (CR2 / CR1 with t(G − 1)). The during years are left out of the contrast.",
     "variance.md"),
    ("Mixed models", "A linear mixed model with random trust intercepts (REML) on trust × period rates, and for "
     "binary outcomes a logistic mixed model on patients with nested pair, trust and trust × period intercepts "
     "(Laplace, CR3 standard errors by pair); the logistic DiD (case-mix adjusted, CR1 by pair) and the logistic "
     "GEE (Mancl–DeRouen) give conditional and population-averaged odds ratios.", "glmm_nested.md"),
    ("Survival", "A Cox proportional-hazards model with treated × post on patients (Efron ties) and the Lin–Wei "
     "robust variance clustered by pair; the effect is a hazard ratio.", "cox.md"),
    ("Event study", "Two-way fixed effects with one intervention − control difference per audit year against the "
     "last pre-intervention year; the pre-period coefficients test parallel trends, and the Rambachan–Roth "
     "sensitivity gives how large a violation would overturn the result.", "sensitivity.md"),
    ("Design-based inference", "Randomisation inference re-randomises whole pairs as the trial did (exact or "
     "seeded draws); the restricted wild cluster bootstrap-t by pair gives a second small-sample p-value and "
     "interval.", "resampling.md"),
    ("Disclosure control", "Counts of patients from 1 to the threshold − 1 are shown as a symbol and other counts "
     "withheld where a small one could be worked out from totals; model estimates need no control.",
     "disclosure.md"),
)


def docs_dir() -> Path | None:
    """The methods registry's folder (``docs/`` of a source checkout or of the installed bundle), if present."""
    for root in (paths.PACKAGE_DIR.parent, paths.PACKAGE_DIR / "_bundle"):
        if (root / "docs" / "METHODS.md").is_file():
            return root / "docs"
    return None


_PAGE = ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title><style>"
         "body{{font-family:sans-serif;max-width:70em;margin:2em auto;line-height:1.4}}table{{border-collapse:"
         "collapse;font-size:90%}}td,th{{border:1px solid #ddd;padding:2px 6px;vertical-align:top}}"
         "code{{font-size:90%}}</style></head><body>{body}</body></html>\n")


_CODE_SPAN = re.compile(r"`[^`\n]*`")
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")
_TABLE = re.compile(r"<table>.*?</table>", re.S)
_CODE = re.compile(r"<code>(.*?)</code>", re.S)


def escape_table_code_pipes(markdown: str) -> str:
    """Escape ``|`` inside code spans of Markdown table rows as ``\\|`` (as GFM requires).

    In GFM a ``|`` splits a table cell even inside a code span (``(1|pair_id)``), so the row gets
    too many cells and the table falls apart; the registry writes them as ``\\|`` and this makes sure
    of it (an escaped pipe is left alone).
    """
    lines = markdown.split("\n")
    for i, line in enumerate(lines):
        if line.lstrip().startswith("|"):
            lines[i] = _CODE_SPAN.sub(lambda m: _UNESCAPED_PIPE.sub(r"\\|", m.group(0)), line)
    return "\n".join(lines)


def _unescape_table_code_pipes(body: str) -> str:
    """mistune keeps the backslash of ``\\|`` inside a table's code spans, where GFM shows ``|``: drop it."""
    return _TABLE.sub(lambda t: _CODE.sub(lambda c: "<code>" + c.group(1).replace("\\|", "|") + "</code>",
                                          t.group(0)), body)


def render_markdown(markdown: str) -> str:
    """A registry page's Markdown as HTML (mistune with GFM tables; ``|`` in a table's code spans kept)."""
    import mistune

    render = mistune.create_markdown(plugins=["table"])
    return _unescape_table_code_pipes(render(escape_table_code_pipes(markdown)))


@functools.lru_cache(maxsize=1)
def rendered_methods() -> dict[str, str]:
    """The methods registry rendered to HTML: ``{"docs/METHODS.html": text, "docs/methods/x.html": …}``.

    Links between the pages (``methods/x.md``) point to the rendered pages. Empty where the registry
    is not installed. The run's audit recognises these exact texts as the package's own
    documentation (its example counts are not results; :mod:`rp2pr_eval.pipeline.audit`).
    """
    source = docs_dir()
    if source is None:
        return {}
    out = {}
    for page in [source / "METHODS.md"] + sorted((source / "methods").glob("*.md")):
        body = render_markdown(page.read_text(encoding="utf-8"))
        body = re.sub(r"href=\"((?:methods/)?[A-Za-z0-9_]+)\.md(#[^\"]*)?\"",
                      lambda m: f"href=\"{m.group(1)}.html{m.group(2) or ''}\"", body)
        rel = "docs/" + page.relative_to(source).with_suffix(".html").as_posix()
        out[rel] = _PAGE.format(title=html.escape(page.stem), body=body)
    return out


def copy_methods(run_dir: str | Path) -> Path | None:
    """Write :func:`rendered_methods` under ``<run_dir>/docs/`` so the registry's links work offline.

    Returns the path of ``docs/METHODS.html``, or ``None`` where the registry is not installed (the
    page then names it).
    """
    pages = rendered_methods()
    if not pages:
        return None
    for rel, text in pages.items():
        out = Path(run_dir) / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return Path(run_dir) / "docs" / "METHODS.html"


def methods_html(run_dir: str | Path) -> str:
    """The "Methods in brief" section, linking the rendered registry copied into the run folder."""
    run_dir = Path(run_dir)
    registry = copy_methods(run_dir)
    out = ["<h2>Methods in brief</h2><dl>"]
    for family, text, detail in METHODS_IN_BRIEF:
        page = run_dir / "docs" / "methods" / detail.replace(".md", ".html")
        link = f" <a href='docs/methods/{html.escape(page.name)}'>Details</a>." if page.is_file() else ""
        out.append(f"<dt><strong>{html.escape(family)}</strong></dt><dd>{html.escape(text)}{link}</dd>")
    out.append("</dl>")
    out.append("<p>The full methods registry (estimands, formulas, defaults, references and the equivalent R or "
               "Stata calls): " + ("<a href='docs/METHODS.html'>docs/METHODS.html</a>, a copy of docs/METHODS.md "
                                   "of the rp2pr_eval repository." if registry else
                                   "docs/METHODS.md of the rp2pr_eval repository.") + "</p>")
    return "\n".join(out)


def data_quality(run_dir: str | Path, manifest: dict) -> dict:
    """The data-quality facts of the run (see the module docstring), for the page and the PDF alike.

    Returns ``{"periods": [...], "rows": [(arm, [n or None per period]), ...], "notes": [...],
    "checks": (name, html path) or None}``; ``rows`` is empty without a flow record, a withheld cell is
    ``None``.
    """
    run_dir = Path(run_dir)
    counts = patients_analysed(run_dir)
    flow = read_flow(run_dir) or {}
    periods: list[str] = []
    rows: list[tuple[str, list]] = []
    if counts is not None:
        arms = list(dict.fromkeys(a for a, _ in counts["cells"]))
        periods = [p for p in ("pre", "during", "post") if any(q == p for _, q in counts["cells"])]
        rows = [(arm, [counts["cells"].get((arm, p)) for p in periods]) for arm in arms]
    notes = [str(n) for n in flow.get("notes", [])]
    for key, what in (("not_estimable", "Not estimable"), ("not_applicable", "Not applicable")):
        for item in manifest.get(key) or []:
            notes.append(f"{what}: {item}")
    failed = [n["name"] for n in manifest.get("notebooks", []) if n.get("status") != "ok"]
    if failed:
        notes.append("Notebooks that failed: " + ", ".join(failed))
    checks = next((n for n in manifest.get("notebooks", []) if n.get("template") == "00_data_checks"), None)
    found = (checks["name"], checks["html"]) if checks and checks.get("html") and (run_dir / checks["html"]).is_file() \
        else None
    return {"periods": periods, "rows": rows, "notes": notes, "checks": found}


#: What the data-checks notebook holds, as the page and the PDF say it.
DATA_CHECKS_TEXT = ("The data checks against the data contract and the national audit figures (completeness by audit "
                    "year, patients per trust, national rates), under the same disclosure control")
#: Said where the run has no data-quality note.
NO_NOTES_TEXT = "No notes: every requested estimator was estimable and every notebook ran."


def data_quality_html(run_dir: str | Path, manifest: dict) -> str:
    """The "Data quality" section from what the run saved (see the module docstring)."""
    facts = data_quality(run_dir, manifest)
    out = ["<h2>Data quality</h2>"]
    if facts["rows"]:
        symbol = "withheld"
        out.append("<table><tr><th>Patients analysed</th>" + "".join(
            f"<th>{html.escape(p)}</th>" for p in facts["periods"]) + "</tr>")
        for arm, cells in facts["rows"]:
            out.append(f"<tr><td>{html.escape(arm)}</td>" + "".join(
                f"<td class='n'>{symbol if v is None else f'{v:,}'}</td>" for v in cells) + "</tr>")
        out.append("</table>")
    if facts["notes"]:
        out.append("<ul>" + "".join(f"<li>{html.escape(str(n))}</li>" for n in facts["notes"]) + "</ul>")
    else:
        out.append(f"<p>{NO_NOTES_TEXT}</p>")
    if facts["checks"]:
        name, page = facts["checks"]
        out.append(f"<p>{DATA_CHECKS_TEXT}: <a href='{html.escape(page)}'>{html.escape(name)}</a>.</p>")
    return "\n".join(out)


__all__ = ["DATA_CHECKS_TEXT", "METHODS_IN_BRIEF", "NO_NOTES_TEXT", "copy_methods", "data_quality", "data_quality_html", "docs_dir", "escape_table_code_pipes",
           "estimator_label", "methods_html", "patients_analysed", "patients_sentence", "read_flow", "render_markdown",
           "rendered_methods", "truth_text", "truth_value"]
