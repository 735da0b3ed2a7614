"""Figures that belong to nobody's pyplot state, yet show themselves in a notebook.

Every plot of :mod:`rp2pr_eval.presentation.figures` draws on a
:class:`DisplayFigure` made by :func:`new_figure` (unless given an Axes):

* it is a plain :class:`matplotlib.figure.Figure`, not created through
  ``pyplot``, so it is never registered with pyplot's figure manager: no
  backend is chosen or switched, nothing needs ``plt.close``, and the
  notebook backends' end-of-cell "show every open figure" hook never sees it
  (a cell that returns a figure therefore shows it exactly once, where a
  pyplot figure returned by a cell is shown twice);
* it has ``_repr_png_``, so IPython and Jupyter display it inline as a PNG
  when a cell returns it, whatever backend the kernel runs (a bare
  ``Figure`` prints as ``<Figure size …>`` unless pyplot's inline support
  happens to be active). Where the inline formatter is registered it takes
  precedence over ``_repr_png_``, so the figure is still shown once.

Nothing here changes ``matplotlib.rcParams`` or the backend; this module
imports matplotlib at module level and is itself imported only inside the
plotting functions, so ``import rp2pr_eval`` stays light.
"""
from __future__ import annotations

import io
from typing import Any

from matplotlib.figure import Figure

#: Resolution of the inline PNG (the files written by ``save_figure`` use their own, 300 dpi by default).
DISPLAY_DPI = 144


class DisplayFigure(Figure):
    """A :class:`matplotlib.figure.Figure` that Jupyter shows inline as a PNG (``_repr_png_``).

    A figure just written by :func:`~rp2pr_eval.presentation.figures.save_figure` is shown from the PNG
    written (scaled to the display resolution) instead of being drawn a fifth time; any change to the
    figure after the save (every matplotlib setter marks the figure stale) makes it draw afresh.
    """

    _saved_png: tuple[bytes, int] | None = None

    def remember_saved_png(self, png: bytes, dpi: int) -> None:
        """Keep the PNG just written at ``dpi`` for the inline display (called by ``save_figure``)."""
        self._saved_png = (png, dpi)
        self.stale = False

    def _repr_png_(self) -> bytes:
        if self._saved_png is not None and not self.stale:
            return _scaled_png(*self._saved_png, DISPLAY_DPI)
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=DISPLAY_DPI, facecolor="white")
        return buffer.getvalue()


def _scaled_png(png: bytes, dpi: int, to_dpi: int) -> bytes:
    """The PNG resampled from ``dpi`` to ``to_dpi`` (Lanczos), for the inline display."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        size = (max(1, round(image.width * to_dpi / dpi)), max(1, round(image.height * to_dpi / dpi)))
        out = io.BytesIO()
        image.resize(size, Image.Resampling.LANCZOS).save(out, format="PNG")
    return out.getvalue()


def new_figure(*, figsize: tuple[float, float] | None = None, layout: str | None = "constrained",
               **kwargs: Any) -> DisplayFigure:
    """A new :class:`DisplayFigure` outside pyplot (size from ``rcParams`` when ``figsize`` is ``None``).

    Parameters
    ----------
    figsize : (float, float), optional
        Width and height in inches; default ``rcParams["figure.figsize"]`` (set by
        :func:`rp2pr_eval.presentation.figures.style`).
    layout : str or None
        Layout engine, constrained by default.
    **kwargs
        Passed to :class:`matplotlib.figure.Figure`.

    Returns
    -------
    DisplayFigure
    """
    return DisplayFigure(figsize=figsize, layout=layout, **kwargs)
