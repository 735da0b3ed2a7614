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
"""
from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rp2pr_eval._options import check_option
from rp2pr_eval.figures._common import ImageFormat

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CREATOR = "rp2pr_eval"
SVG_HASHSALT = "rp2pr_eval"

_METADATA: dict[str, dict[str, str | None]] = {
    "pdf": {"Creator": CREATOR, "Producer": None, "CreationDate": None, "ModDate": None},
    "svg": {"Creator": CREATOR, "Date": None},
    "png": {"Software": CREATOR},
}

# matplotlib's clip-path ids: "p" + 10 hex digits, defined by id="..." and used by url(#...).
_SVG_CLIP_ID = re.compile(r'(?<=id=")p[0-9a-f]{10}(?=")|(?<=url\(#)p[0-9a-f]{10}(?=\))')


def _renumber_svg_clip_ids(svg: str) -> str:
    """Replace hashed clip-path ids by ``clip0, clip1, ...`` in order of first appearance."""
    names: dict[str, str] = {}

    def rename(match: re.Match[str]) -> str:
        return names.setdefault(match.group(0), f"clip{len(names)}")

    return _SVG_CLIP_ID.sub(rename, svg)


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
    tag is fixed. PDF text is embedded as TrueType (Type 42) so it stays
    editable. The figure is saved at its own size (no ``bbox_inches="tight"``),
    so journal widths set by :func:`rp2pr_eval.figures.figure_size` are kept.

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
    written = []
    rc = {"svg.hashsalt": SVG_HASHSALT, "pdf.fonttype": 42, "ps.fonttype": 42}
    with mpl.rc_context(rc):
        for fmt in formats:
            path = stem.parent / f"{stem.name}.{fmt}"
            if fmt == "svg":
                buffer = io.StringIO()
                fig.savefig(buffer, format=fmt, dpi=dpi, metadata=dict(_METADATA[fmt]))
                path.write_text(_renumber_svg_clip_ids(buffer.getvalue()), encoding="utf-8", newline="")
            else:
                fig.savefig(path, format=fmt, dpi=dpi, metadata=dict(_METADATA[fmt]))
            written.append(path)
    return written
