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
    """A :class:`matplotlib.figure.Figure` that Jupyter shows inline as a PNG (``_repr_png_``)."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=DISPLAY_DPI, facecolor="white")
        return buffer.getvalue()


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
