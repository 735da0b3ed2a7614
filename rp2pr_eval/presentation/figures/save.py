"""Deterministic figure files: the same figure always gives the same bytes.

Matplotlib stamps PDFs with a creation date and SVGs with a date and random
element ids; both break byte-for-byte reproducibility (and make every rerun a
spurious change under version control). :func:`save_figure` removes the dates,
fixes the producer/software strings and the SVG id salt.

One more source of change remains in SVG: matplotlib names each clip path by a
hash of its rectangle written at full float precision, and constrained layout
moves axes by ~1e-14 between draws, so saving the same figure twice can give
different clip ids (the drawn coordinates, written to 6 decimals, do not
change). The clip ids are therefore renumbered in order of appearance.

The layout itself is the last source. Constrained (and tight) layout is a
fixed-point iteration: each draw starts from the positions the previous draw
left, so the first save of a new figure and a second save of the same figure
place the axes up to ~1e-4 of the figure width apart (matplotlib 3.11 on a
85 mm figure: different PNG pixels and PDF coordinates). :func:`save_figure`
therefore settles the layout before writing: it draws at the output
resolution until no axes moves by more than 1e-12, rounds every axes position
to 1e-7 of the figure (0.0002 px at 300 dpi on a 170 mm figure) and holds the
layout fixed while the files are written, then restores the figure's layout
engine. Every save of a figure, first or later, in this process or another,
then starts from the same geometry.
"""
from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rp2pr_eval._options import check_option
from rp2pr_eval.presentation.figures._common import ImageFormat

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CREATOR = "rp2pr_eval"
SVG_HASHSALT = "rp2pr_eval"

_METADATA: dict[str, dict[str, str | None]] = {
    "pdf": {"Creator": CREATOR, "Producer": None, "CreationDate": None, "ModDate": None},
    "svg": {"Creator": CREATOR, "Date": None},
    "png": {"Software": CREATOR},
}

#: Layout passes before giving up on convergence (a pass is cheap: no rendering).
_MAX_LAYOUT_PASSES = 50
#: Axes positions (figure fractions) are rounded to this many decimals once the layout has settled.
_POSITION_DECIMALS = 7

# matplotlib's clip-path ids: "p" + 10 hex digits, defined by id="..." and used by url(#...).
_SVG_CLIP_ID = re.compile(r'(?<=id=")p[0-9a-f]{10}(?=")|(?<=url\(#)p[0-9a-f]{10}(?=\))')


def _renumber_svg_clip_ids(svg: str) -> str:
    """Replace hashed clip-path ids by ``clip0, clip1, ...`` in order of first appearance."""
    names: dict[str, str] = {}

    def rename(match: re.Match[str]) -> str:
        return names.setdefault(match.group(0), f"clip{len(names)}")

    return _SVG_CLIP_ID.sub(rename, svg)


def _axes_positions(fig: Figure) -> list[tuple[float, ...]]:
    return [tuple(float(v) for v in ax.get_position().bounds) for ax in fig.get_axes()]


@contextlib.contextmanager
def _settled_layout(fig: Figure, dpi: int) -> Iterator[None]:
    """Run the figure's layout engine to its fixed point at ``dpi``, then hold it fixed.

    Inside the block the figure has no active layout engine and every axes
    sits at its settled, rounded position; on exit the original engine and
    each axes' ``in_layout`` flag are restored, so the figure behaves as
    before (e.g. when it is shown inline afterwards).
    """
    engine = fig.get_layout_engine()
    if engine is None or type(engine).__name__ == "PlaceHolderLayoutEngine":
        yield
        return
    old_dpi = fig.dpi
    fig.set_dpi(dpi)
    try:
        previous = None
        for _ in range(_MAX_LAYOUT_PASSES):
            fig.draw_without_rendering()
            current = _axes_positions(fig)
            if previous is not None and len(current) == len(previous) and all(
                    abs(a - b) <= 1e-12 for pa, pb in zip(current, previous) for a, b in zip(pa, pb)):
                break
            previous = current
    finally:
        fig.set_dpi(old_dpi)
    axes = fig.get_axes()
    in_layout = [ax.get_in_layout() for ax in axes]
    fig.set_layout_engine("none")
    try:
        for ax in axes:
            ax.set_position([round(v, _POSITION_DECIMALS) for v in ax.get_position().bounds])
        yield
    finally:
        fig.set_layout_engine(engine)
        for ax, flag in zip(axes, in_layout):
            ax.set_in_layout(flag)


def save_figure(
    fig: Figure,
    path_stem: str | Path,
    *,
    formats: Sequence[ImageFormat] = ("png", "pdf", "svg"),
    dpi: int = 300,
) -> list[Path]:
    """Save ``fig`` in several formats with reproducible bytes.

    Two saves of the same figure (in one run or in two runs with the same
    library versions) give byte-identical files: the PDF has no creation or
    modification date and no producer string, the SVG has no date and its
    element ids come from a fixed ``svg.hashsalt``, and the PNG's software
    tag is fixed; the layout is settled to its fixed point before writing
    (see the module docstring), so the first and any later save agree. PDF text is embedded as TrueType (Type 42) so it stays
    editable. The figure is saved at its own size (no ``bbox_inches="tight"``),
    so journal widths set by :func:`rp2pr_eval.presentation.figures.figure_size` are kept.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure to save (e.g. ``ax.figure`` for a plot function's Axes).
    path_stem : str or pathlib.Path
        Path without extension; ``".png"``, ``".pdf"``, ``".svg"`` are
        appended. Missing parent directories are created.
    formats : sequence of {"png", "pdf", "svg"}
        Formats to write, in order.
    dpi : int
        Resolution of the PNG (and of any raster content in PDF/SVG).

    Returns
    -------
    list of pathlib.Path
        The files written, in the order of ``formats``.

    Raises
    ------
    ValueError
        If a format is not supported, ``formats`` is empty, ``dpi`` is not a
        positive integer, or ``path_stem`` already ends in one of the
        extensions.
    """
    from matplotlib.figure import Figure as _Figure

    if not isinstance(fig, _Figure):
        raise ValueError(f"save_figure: fig must be a matplotlib Figure, got {type(fig).__name__}")
    if isinstance(formats, str):
        raise ValueError(f"save_figure: formats must be a sequence such as ('png', 'pdf'), got the string {formats!r}")
    formats = list(formats)
    if not formats:
        raise ValueError("save_figure: formats is empty; expected one or more of 'png', 'pdf', 'svg'")
    for fmt in formats:
        check_option("formats", fmt, ImageFormat)
    if isinstance(dpi, bool) or not isinstance(dpi, int) or dpi <= 0:
        raise ValueError(f"save_figure: dpi={dpi!r} is not valid; expected a positive integer")
    stem = Path(path_stem)
    if stem.suffix.lower().lstrip(".") in _METADATA:
        raise ValueError(
            f"save_figure: path_stem {str(stem)!r} ends in an extension; pass the path without it "
            f"(the extensions come from formats)"
        )

    import matplotlib as mpl

    stem.parent.mkdir(parents=True, exist_ok=True)
    from rp2pr_eval.presentation.figures.canvas import DisplayFigure

    written = []
    png = None
    rc = {"svg.hashsalt": SVG_HASHSALT, "pdf.fonttype": 42, "ps.fonttype": 42}
    with mpl.rc_context(rc), _settled_layout(fig, dpi):
        for fmt in formats:
            path = stem.parent / f"{stem.name}.{fmt}"
            if fmt == "svg":
                buffer = io.StringIO()
                fig.savefig(buffer, format=fmt, dpi=dpi, metadata=dict(_METADATA[fmt]))
                path.write_text(_renumber_svg_clip_ids(buffer.getvalue()), encoding="utf-8", newline="")
            elif fmt == "png":
                raw = io.BytesIO()
                fig.savefig(raw, format=fmt, dpi=dpi, metadata=dict(_METADATA[fmt]))
                png = raw.getvalue()
                path.write_bytes(png)
            else:
                fig.savefig(path, format=fmt, dpi=dpi, metadata=dict(_METADATA[fmt]))
            written.append(path)
    if png is not None and isinstance(fig, DisplayFigure):
        fig.remember_saved_png(png, dpi)      # shown inline from this PNG until the figure changes
    return written
