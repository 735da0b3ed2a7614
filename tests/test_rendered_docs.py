"""Every table of every registry page (docs/*.md, docs/methods/*.md) renders as an HTML table.

The run copies the registry into its docs/ folder rendered by mistune
(:func:`rp2pr_eval.presentation.report_content.render_markdown`). A ``|`` inside a code span of a
table row (``(1|pair_id)``) splits the cell in GFM, so the row gets too many cells and the whole
table fell back to a paragraph of raw pipes in docs/METHODS.html.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from rp2pr_eval.presentation.report_content import escape_table_code_pipes, render_markdown
from tests.conftest import ROOT

pytestmark = pytest.mark.fixture

PAGES = sorted(ROOT.glob("docs/*.md")) + sorted(ROOT.glob("docs/methods/*.md"))


class _Tables(HTMLParser):
    """Tables as lists of rows of cell texts, the cells' text outside code spans, and every paragraph's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.paragraphs: list[str] = []
        self.prose: list[str] = []
        self._cell: list[str] | None = None
        self._prose: list[str] = []
        self._para: list[str] | None = None
        self._code = 0

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell, self._prose = [], []
        elif tag == "code":
            self._code += 1
        elif tag == "p":
            self._para = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self.prose.append("".join(self._prose).strip())
            self._cell = None
        elif tag == "code":
            self._code -= 1
        elif tag == "p" and self._para is not None:
            self.paragraphs.append("".join(self._para))
            self._para = None

    def handle_data(self, data):
        for part in (self._cell, self._para):
            if part is not None:
                part.append(data)
        if self._cell is not None and not self._code:
            self._prose.append(data)


def _markdown_tables(text: str) -> int:
    """Number of Markdown tables (a row of pipes followed by a delimiter row)."""
    lines = text.splitlines()
    return sum(1 for a, b in zip(lines, lines[1:])
               if a.lstrip().startswith("|") and re.fullmatch(r"\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*", b))


def test_the_pages_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert "docs/METHODS.md" in names and any(n.startswith("docs/methods/") for n in names)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_table_renders_with_the_header_number_of_cells(page):
    text = page.read_text(encoding="utf-8")
    parsed = _Tables()
    parsed.feed(render_markdown(text))
    assert len(parsed.tables) == _markdown_tables(text), "a Markdown table did not render as an HTML table"
    for table in parsed.tables:
        header = len(table[0])
        for row in table[1:]:
            assert len(row) == header, f"row of {len(row)} cells under a header of {header}: {row[:2]}"
    # a cell holding the rest of a split row: a free-standing pipe in its text outside code spans
    stray = [cell for cell in parsed.prose if " | " in f" {cell} "]
    assert not stray, stray[:1]
    raw = [p for p in parsed.paragraphs if p.lstrip().startswith("|")]
    assert not raw, f"raw table text in a paragraph: {raw[0][:120]}"


def test_the_registry_table_keeps_the_formula_pipes():
    """The mixed-model formulas of docs/METHODS.md show ``(1 | trust_id)`` in their cells, without the backslash."""
    parsed = _Tables()
    parsed.feed(render_markdown((ROOT / "docs" / "METHODS.md").read_text(encoding="utf-8")))
    cells = [c for table in parsed.tables for row in table for c in row]
    assert any("(1 | trust_id)" in c for c in cells) and not any("\\|" in c for c in cells)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_sources_escape_pipes_in_table_code_spans(page):
    """GitHub renders the Markdown itself (GFM): the source must escape them too, not only the renderer."""
    text = page.read_text(encoding="utf-8")
    assert escape_table_code_pipes(text) == text
