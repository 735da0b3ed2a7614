"""The run's report as one PDF (``report.pdf``), for journals and ethics committees.

Built with matplotlib's :class:`~matplotlib.backends.backend_pdf.PdfPages` (already a dependency;
no browser or HTML engine needed): A4 pages of text — the design paragraph, the headline sentences
(with the generator's truth for synthetic data), the primary table — then one page per saved
figure (the PNGs the run wrote, each with its caption). It reads what :func:`write_report_pdf`'s
run folder holds (manifest, results, figures), exactly as the HTML page does, and never fits.
No global state is touched: figures are :class:`matplotlib.figure.Figure` objects outside pyplot.
"""
from __future__ import annotations

import html
import json
import re
import textwrap
from pathlib import Path

A4 = (8.27, 11.69)
_WRAP = 95


def _plain(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def report_text(run_dir: str | Path) -> dict:
    """The text blocks of the report (title, design, headlines, notes, primary rows) from the run folder."""
    from rp2pr_eval.presentation.report import load_summary
    from rp2pr_eval.presentation.report_content import truth_text
    from rp2pr_eval.presentation.report_html import design_paragraph, truth_words, headline_sentence

    run_dir = Path(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    params = manifest["parameters"]
    outcomes = [o for o in params["outcomes"] if (run_dir / "results" / f"{o}.json").exists()]
    summary = load_summary(run_dir / "results", outcomes, params["primary_outcomes"])
    truth = manifest.get("truth")
    holm = {e.outcome: e.details["p_adjusted"] for e in summary.primary_holm}
    headlines = [headline_sentence(e, holm.get(e.outcome))
                 + (f" — generator's truth {truth_words(truth, e)}" if truth else "") for e in summary.primary]
    notes = []
    if truth is not None:
        notes.append("These data are synthetic. Some estimates will look significant by chance alone even where the "
                      "generator's true effect is zero; read them against the stored truth, not as findings.")
    rows = []
    for e in summary.primary:
        rd = e.scale == "risk_difference"
        k = 100 if rd else 1
        rows.append((e.outcome, f"{k * e.estimate:+.1f}", f"{k * e.ci_low:.1f} to {k * e.ci_high:.1f}",
                     f"{holm.get(e.outcome, float('nan')):.3f}",
                     truth_text(truth, e.outcome, e.scale) if truth else ""))
    # the data's SHA-256 names the PDF, not the run id: a rerun of the same data and parameters then writes
    # the same bytes (rp2pr-eval rerun compares report.pdf byte for byte)
    return {"data_sha": str(manifest.get("data_sha256", ""))[:16], "design": _plain(design_paragraph(manifest, summary, run_dir)),
            "headlines": headlines, "notes": notes, "rows": rows, "truth": truth is not None}


def _figure_pages(run_dir: Path) -> list[tuple[Path, str]]:
    from rp2pr_eval.presentation.report_html import FIGURE_KINDS
    from rp2pr_eval.study.outcomes import OUTCOMES

    figures = run_dir / "figures"
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    pages = [(figures / "forest.png", "All outcomes, four estimators"),
             (figures / "primary_trends.png", "Primary indicators: rates by arm and audit year")]
    for o in manifest["parameters"]["outcomes"]:
        label = OUTCOMES[o].display_label if o in OUTCOMES else o
        for kind, caption in FIGURE_KINDS + (("sensitivity", "Parallel-trends sensitivity"),
                                              ("leave_one_pair_out", "Leave one pair out")):
            pages.append((figures / f"{o}_{kind}.png", f"{label}: {caption}"))
    pages += [(p, "Flow of trusts and patients") for p in sorted(figures.glob("flow*.png"))]
    return [(p, c) for p, c in pages if p.is_file()]


def write_report_pdf(run_dir: str | Path, *, title: str = "ILCOP evaluation run") -> Path:
    """Write ``<run_dir>/report.pdf`` (see the module docstring); returns its path."""
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    from rp2pr_eval.study.outcomes import OUTCOMES

    run_dir = Path(run_dir)
    text = report_text(run_dir)
    out = run_dir / "report.pdf"
    tmp = run_dir / ".report.pdf.partial"
    with PdfPages(tmp, metadata={"Title": title, "Subject": f"data SHA-256 {text['data_sha']}…",
                                 "Creator": "rp2pr_eval", "CreationDate": None}) as pdf:
        fig = Figure(figsize=A4)
        y = 0.95

        def line(s: str, *, size: float = 9.5, weight: str = "normal", gap: float = 0.0) -> None:
            nonlocal y
            for piece in textwrap.wrap(s, _WRAP) or [""]:
                fig.text(0.07, y, piece, fontsize=size, weight=weight, va="top", family="DejaVu Sans")
                y -= 0.0175 * size / 9.5
            y -= gap

        line(title, size=16, weight="bold", gap=0.01)
        line(f"Data SHA-256 {text['data_sha']}…", gap=0.015)
        line("Design", size=12, weight="bold", gap=0.004)
        line(text["design"], gap=0.015)
        line("Headline findings", size=12, weight="bold", gap=0.004)
        for h in text["headlines"]:
            line("• " + h, gap=0.004)
        for n in text["notes"]:
            y -= 0.008
            line(n, size=9, gap=0.004)
        y -= 0.01
        line("Primary indicators (ANCOVA; risk differences in percentage points)", size=12, weight="bold", gap=0.006)
        head = ["Indicator", "Estimate", "95% CI", "Holm p"] + (["True effect"] if text["truth"] else [])
        xs = [0.07, 0.50, 0.62, 0.78, 0.88]
        for j, h in enumerate(head):
            fig.text(xs[j], y, h, fontsize=9, weight="bold", va="top")
        y -= 0.02
        for outcome, est, ci, p, tr in text["rows"]:
            label = OUTCOMES[outcome].label if outcome in OUTCOMES else outcome
            for j, cell in enumerate([label, est, ci, p, tr][:len(head)]):
                fig.text(xs[j], y, cell, fontsize=9, va="top")
            y -= 0.018
        pdf.savefig(fig)
        for path, caption in _figure_pages(run_dir):
            fig = Figure(figsize=A4)
            image = imread(path)
            h, w = image.shape[:2]
            width = 0.86
            height = min(0.8, width * (h / w) * A4[0] / A4[1])
            ax = fig.add_axes((0.07, 0.9 - height, width, height))
            ax.imshow(image, interpolation="lanczos")
            ax.set_axis_off()
            fig.text(0.07, 0.95, caption, fontsize=11, weight="bold", va="top")
            fig.text(0.07, 0.88 - height, f"figures/{path.stem} (.png, .svg, .pdf)", fontsize=8, color="#555",
                     va="top")
            pdf.savefig(fig)
    tmp.replace(out)
    return out


__all__ = ["report_text", "write_report_pdf"]
