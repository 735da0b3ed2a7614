"""The run's report as one PDF (``report.pdf``), for journals and ethics committees.

Built with matplotlib's :class:`~matplotlib.backends.backend_pdf.PdfPages` and pypdf (no browser or
HTML engine needed): A4 pages of text — the design paragraph, the headline sentences (with the
generator's truth for synthetic data), the primary table, then the sections of the report page:
"Methods in brief" (:data:`~rp2pr_eval.presentation.report_content.METHODS_IN_BRIEF`), "Data quality"
(:func:`~rp2pr_eval.presentation.report_content.data_quality`) and "Referee's checks" (one paragraph
per outcome from :func:`~rp2pr_eval.presentation.referee.sensitivity_table`) — text flowing over as
many pages as it needs — then one page per saved figure with its caption. A figure's page holds the
figure's own PDF (``figures/<name>.pdf``, vector, placed as a form XObject by pypdf: matplotlib cannot
embed another PDF, and nothing is re-drawn); a figure the run saved only as PNG is placed as its
pixels. It reads what :func:`write_report_pdf`'s run folder holds (manifest, results, figures),
exactly as the HTML page does, and never fits. No global state is touched: figures are
:class:`matplotlib.figure.Figure` objects outside pyplot.
"""
from __future__ import annotations

import html
import json
import re
import textwrap
from pathlib import Path

import numpy as np

from rp2pr_eval.presentation.report_content import number_text

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
                                              ("effect_modification", "Change against baseline rate"),
                                              ("leave_one_pair_out", "Leave one pair out")):
            pages.append((figures / f"{o}_{kind}.png", f"{label}: {caption}"))
    pages += [(p, "Flow of trusts and patients") for p in sorted(figures.glob("flow*.png"))]
    return [(p, c) for p, c in pages if p.is_file()]


class _TextPages:
    """A4 text pages: lines written top down, a new page when the next block would not fit."""

    TOP, BOTTOM, LEFT = 0.95, 0.06, 0.07

    def __init__(self, pdf) -> None:
        self.pdf, self.fig, self.y, self.pages = pdf, None, self.TOP, 0

    def _page(self) -> None:
        from matplotlib.figure import Figure

        self.flush()
        self.fig, self.y = Figure(figsize=A4), self.TOP

    def flush(self) -> None:
        if self.fig is not None:
            self.pdf.savefig(self.fig)
            self.pages += 1
            self.fig = None

    def need(self, height: float) -> None:
        """Start a new page unless ``height`` (figure fraction) still fits on this one."""
        if self.fig is None or self.y - height < self.BOTTOM:
            self._page()

    def line(self, s: str, *, size: float = 9.5, weight: str = "normal", gap: float = 0.0, indent: float = 0.0,
             wrap: int = _WRAP) -> None:
        pieces = textwrap.wrap(s, wrap) or [""]
        step = 0.0175 * size / 9.5
        self.need(step * min(len(pieces), 3))
        for piece in pieces:
            self.need(step)
            self.fig.text(self.LEFT + indent, self.y, piece, fontsize=size, weight=weight, va="top",
                          family="DejaVu Sans")
            self.y -= step
        self.y -= gap

    def heading(self, s: str) -> None:
        self.need(0.09)                       # a heading never ends a page
        self.line(s, size=12, weight="bold", gap=0.004)

    def row(self, cells, xs, *, size: float = 9, weight: str = "normal", step: float = 0.018) -> None:
        self.need(step)
        for x, cell in zip(xs, cells):
            self.fig.text(x, self.y, cell, fontsize=size, weight=weight, va="top", family="DejaVu Sans")
        self.y -= step


def _fmt(value, fmt: str = "{:+.1f}") -> str:
    """:func:`number_text` with a minus sign for print."""
    return number_text(value, fmt).replace("-", "−")


def referee_paragraphs(run_dir: str | Path) -> list[tuple[str, str]]:
    """The referee's checks as ``(outcome label and scale, sentence)`` per outcome with saved checks."""
    from rp2pr_eval.presentation.referee import sensitivity_summary, sensitivity_table

    results = Path(run_dir) / "results"
    if not results.is_dir():
        return []
    summary = sensitivity_summary(results)
    if not len(summary):
        return []
    out = []
    for r in sensitivity_table(summary).to_dict(orient="records"):
        ratio = r["Scale"] != "percentage points"
        num = "{:.2f}" if ratio else "{:+.1f}"
        unit = "" if ratio else " pp"
        parts = [f"breakdown M̄ = {_fmt(r['Breakdown M̄ (relative magnitudes)'], '{:.2f}')}, M = "
                 f"{_fmt(r['Breakdown M (smoothness; pp per year, log scale per year for ratios)'], '{:.2f}')}"
                 + ("" if ratio else " pp per year")]
        em = r["Effect modification (pp per 10 pp of baseline rate)"]
        if _fmt(em) != "—":
            parts.append(f"effect modification {_fmt(em)} pp per 10 pp of baseline rate "
                         f"({_fmt(r['Effect modification: lower CI limit'])} to "
                         f"{_fmt(r['Effect modification: upper CI limit'])}; randomisation p = "
                         f"{_fmt(r['Effect modification: randomisation p'], '{:.2f}')})")
        if _fmt(r["Leave one pair out: lowest"]) != "—":
            parts.append(f"leave one pair out, {r['Leave one pair out: estimator']}: "
                         f"{_fmt(r['Leave one pair out: lowest'], num)} (without "
                         f"{r['Leave one pair out: pair left out for the lowest']}) to "
                         f"{_fmt(r['Leave one pair out: highest'], num)} (without "
                         f"{r['Leave one pair out: pair left out for the highest']}), all pairs "
                         f"{_fmt(r['Leave one pair out: all pairs'], num)}{unit}")
        for name in ("Placebo in time", "Placebo outcome"):
            if _fmt(r[name]) != "—":
                parts.append(f"{name.lower()} {_fmt(r[name], num)}{unit} ({_fmt(r[name + ': lower CI limit'], num)} "
                             f"to {_fmt(r[name + ': upper CI limit'], num)}; p = {_fmt(r[name + ': p'], '{:.3f}')})")
        sentence = "; ".join(parts) + "."
        if r["Checks not run (why)"]:
            sentence += f" Not run: {r['Checks not run (why)']}."
        out.append((f"{r['Outcome']} ({r['Scale']})", sentence[0].upper() + sentence[1:]))
    return out


def _sections(pages: _TextPages, run_dir: Path) -> None:
    """Methods in brief, data quality and the referee's checks, as on the report page."""
    from rp2pr_eval.presentation.report_content import (
        DATA_CHECKS_TEXT,
        METHODS_IN_BRIEF,
        NO_NOTES_TEXT,
        data_quality,
    )

    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    pages.heading("Methods in brief")
    for family, text, detail in METHODS_IN_BRIEF:
        pages.line(family, size=9.5, weight="bold")
        pages.line(f"{text} Details: docs/methods/{detail}.", size=9, indent=0.02, wrap=_WRAP - 4, gap=0.006)
    pages.line("The full methods registry (estimands, formulas, defaults, references and the equivalent R or Stata "
               "calls): docs/METHODS.md of the rp2pr_eval repository, copied into this run as docs/METHODS.html.",
               size=9, gap=0.015)
    facts = data_quality(run_dir, manifest)
    pages.heading("Data quality")
    if facts["rows"]:
        xs = [0.07, 0.30, 0.45, 0.60]
        pages.row(["Patients analysed", *facts["periods"]], xs, weight="bold")
        for arm, cells in facts["rows"]:
            pages.row([arm, *("withheld" if v is None else f"{v:,}" for v in cells)], xs)
        pages.y -= 0.008
    for note in facts["notes"] or [NO_NOTES_TEXT]:
        pages.line(("• " + note) if facts["notes"] else note, size=9, gap=0.003)
    if facts["checks"]:
        pages.line(f"{DATA_CHECKS_TEXT}: {facts['checks'][1]}.", size=9)
    pages.y -= 0.015
    paragraphs = referee_paragraphs(run_dir)
    if paragraphs:
        pages.heading("Referee's checks")
        pages.line("Breakdown values: the smallest violation of parallel trends at which the 95 % robust set of the "
                   "event study's post-period effect includes no effect (Rambachan & Roth 2023; 0: it does under "
                   "exact parallel trends). Effect modification: arm × baseline-rate interaction of the ANCOVA (CR2 "
                   "by pair), to be read with regression to the mean in mind. Leave one pair out: the primary "
                   "estimate with each pair left out. Placebo in time: the intervention moved back into the "
                   "pre-period years. Details: docs/methods/sensitivity.md.", size=9, gap=0.01)
        for title, sentence in paragraphs:
            pages.line(title, size=9.5, weight="bold")
            pages.line(sentence, size=9, indent=0.02, wrap=_WRAP - 4, gap=0.008)
    pages.flush()


def write_report_pdf(run_dir: str | Path, *, title: str = "ILCOP evaluation run") -> Path:
    """Write ``<run_dir>/report.pdf`` (see the module docstring); returns its path."""
    import io

    from matplotlib.backends.backend_pdf import PdfPages

    from rp2pr_eval.study.outcomes import OUTCOMES

    run_dir = Path(run_dir)
    text = report_text(run_dir)
    out = run_dir / "report.pdf"
    tmp = run_dir / ".report.pdf.partial"
    pages_pdf = io.BytesIO()
    placed: list[tuple[int, object, tuple[float, float, float]]] = []   # page, figure's PDF page, (x, y, width) pt
    with PdfPages(pages_pdf, metadata={"Title": title, "Subject": f"data SHA-256 {text['data_sha']}…",
                                       "Creator": "rp2pr_eval", "CreationDate": None}) as pdf:
        pages = _TextPages(pdf)
        pages.line(title, size=16, weight="bold", gap=0.01)
        pages.line(f"Data SHA-256 {text['data_sha']}…", gap=0.015)
        pages.heading("Design")
        pages.line(text["design"], gap=0.015)
        pages.heading("Headline findings")
        for h in text["headlines"]:
            pages.line("• " + h, gap=0.004)
        for n in text["notes"]:
            pages.y -= 0.008
            pages.line(n, size=9, gap=0.004)
        pages.y -= 0.01
        pages.heading("Primary indicators (ANCOVA; risk differences in percentage points)")
        head = ["Indicator", "Estimate", "95% CI", "Holm p"] + (["True effect"] if text["truth"] else [])
        xs = [0.07, 0.50, 0.62, 0.78, 0.88]
        pages.row(head, xs, weight="bold", step=0.02)
        for outcome, est, ci, p, tr in text["rows"]:
            label = OUTCOMES[outcome].label if outcome in OUTCOMES else outcome
            pages.row([label, est, ci, p, tr][:len(head)], xs)
        pages.flush()                          # the sections start on a page of their own
        _sections(pages, run_dir)
        for path, caption in _figure_pages(run_dir):
            vector, placement = _figure_page(pdf, path, caption)
            if vector is not None:
                placed.append((pdf.get_pagecount() - 1, vector, placement))
    _place_vector_figures(pages_pdf, placed, tmp)
    tmp.replace(out)
    return out


#: Width of a figure on its page (fraction of A4), and the most height it may take.
_FIGURE_WIDTH, _FIGURE_HEIGHT = 0.86, 0.8


def _figure_page(pdf, path: Path, caption: str):
    """One A4 page for a figure: its caption, and either room for the figure's own (vector) PDF —
    returned with its page as (page, (x, y, width) in points), placed by :func:`_place_vector_figures` —
    or, where the run has no readable PDF of the figure, its PNG's pixels as they are: (None, None)."""
    from matplotlib.figure import Figure

    vector = _pdf_first_page(path.with_suffix(".pdf"))
    is_vector = vector is not None
    if is_vector:
        size = (float(vector.mediabox.width), float(vector.mediabox.height))
    else:
        from PIL import Image

        with Image.open(path) as png:          # 8-bit pixels as they are (imread would make floats)
            image = np.asarray(png.convert("RGB"))
        size = (image.shape[1], image.shape[0])
    w, h = size
    height = min(_FIGURE_HEIGHT, _FIGURE_WIDTH * (h / w) * A4[0] / A4[1])
    width = height * (w / h) * A4[1] / A4[0]
    fig = Figure(figsize=A4)
    fig.text(0.07, 0.95, caption, fontsize=11, weight="bold", va="top")
    fig.text(0.07, 0.88 - height, f"figures/{path.stem} (.png, .svg, .pdf)", fontsize=8, color="#555", va="top")
    if is_vector:
        pdf.savefig(fig)
        return vector, (0.07 * A4[0] * 72, (0.9 - height) * A4[1] * 72, width * A4[0] * 72)
    ax = fig.add_axes((0.07, 0.9 - height, width, height))
    ax.imshow(image, interpolation="none")     # the PNG's own pixels, unresampled (the viewer scales them)
    ax.set_axis_off()
    pdf.savefig(fig)
    return None, None


def _pdf_first_page(path: Path):
    """The first page of a figure's PDF (read once, placed later); ``None`` if there is none or it is unreadable."""
    if not path.is_file():
        return None
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        page = PdfReader(path).pages[0]
        float(page.mediabox.width), float(page.mediabox.height)
        return page
    except (PyPdfError, OSError, ValueError, IndexError, KeyError):
        return None


def _place_vector_figures(pages_pdf, placed, target: Path) -> None:
    """Draw each figure's own PDF page, scaled, onto its captioned page and write the document to ``target``.

    The figures stay vector graphics (text, lines and points as in ``figures/*.pdf``): the report is
    sharp at any zoom and about a third of the size of one holding 300-dpi pixels. Each figure page
    becomes a form XObject drawn with one ``cm … Do`` on its page, so no content stream is parsed or
    re-encoded (embedding ~100 PNGs took 10 s of every run; pypdf's ``merge_transformed_page``, which
    parses both pages' content, 8 s).
    """
    from pypdf import PdfReader, PdfWriter, Transformation
    from pypdf.generic import ArrayObject, DictionaryObject, FloatObject, NameObject, StreamObject

    writer = PdfWriter(clone_from=PdfReader(pages_pdf))
    for k, (index, figure, (x, y, width)) in enumerate(placed):
        scale = width / float(figure.mediabox.width)
        page = writer.pages[index]
        content = figure.get("/Contents")
        content = None if content is None else content.get_object()
        if not isinstance(content, StreamObject) or content.indirect_reference is None:
            # not one content stream (not what matplotlib writes): let pypdf merge the page
            page.merge_transformed_page(figure, Transformation().scale(scale).translate(x, y))
            continue
        content.update({NameObject("/Type"): NameObject("/XObject"), NameObject("/Subtype"): NameObject("/Form"),
                        NameObject("/BBox"): ArrayObject(FloatObject(v) for v in figure.mediabox),
                        NameObject("/Resources"): figure["/Resources"]})
        form = content.clone(writer)           # the form, its fonts and images, copied into the report
        resources = page["/Resources"].get_object()
        if "/XObject" not in resources:
            resources[NameObject("/XObject")] = DictionaryObject()
        name = NameObject(f"/Rp2prFigure{k}")
        resources["/XObject"].get_object()[name] = form.indirect_reference
        drawing = page.get_contents()
        drawing.set_data(drawing.get_data() + f"\nq {scale:.6f} 0 0 {scale:.6f} {x:.3f} {y:.3f} cm {name} Do Q\n".encode())
        page.replace_contents(drawing)
    with open(target, "wb") as fh:
        writer.write(fh)


__all__ = ["referee_paragraphs", "report_text", "write_report_pdf"]
