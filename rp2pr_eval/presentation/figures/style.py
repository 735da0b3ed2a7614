"""Publication style: journal figure sizes, fonts and the colour-blind-safe arm palette.

The style is a context manager (as seaborn's ``axes_style``): importing this
module changes nothing, and leaving the ``with`` block restores every
``matplotlib.rcParams`` entry it touched.

The palette is Okabe & Ito's (2008) colour-universal-design set. Arms are
shown by colour *and* marker shape, so figures survive greyscale printing and
colour-vision deficiency.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from types import MappingProxyType

from rp2pr_eval._options import check_option
from rp2pr_eval.presentation.figures._common import FigureSize

MM_PER_INCH = 25.4

#: Okabe–Ito colours (black, orange, sky blue, bluish green, yellow, blue, vermillion, reddish purple).
OKABE_ITO = MappingProxyType(
    {
        "black": "#000000",
        "orange": "#E69F00",
        "sky_blue": "#56B4E9",
        "bluish_green": "#009E73",
        "yellow": "#F0E442",
        "blue": "#0072B2",
        "vermillion": "#D55E00",
        "reddish_purple": "#CC79A7",
    }
)

#: Colour of each arm, used by every plot in :mod:`rp2pr_eval.presentation.figures`.
ARM_COLOURS = MappingProxyType(
    {"intervention": OKABE_ITO["vermillion"], "control": OKABE_ITO["blue"]}
)

#: Marker of each arm (redundant with colour on purpose).
ARM_MARKERS = MappingProxyType({"intervention": "o", "control": "s"})

#: Display names of the arms.
ARM_LABELS = MappingProxyType({"intervention": "Intervention", "control": "Control"})

#: Neutral colours: national series and reference lines; the intervention-window shading.
NEUTRAL_COLOUR = "#404040"
WINDOW_COLOUR = "#E8E8E8"

#: Colours for series that are not arms (estimators, limits), arm colours excluded.
SERIES_COLOURS = (
    OKABE_ITO["black"],
    OKABE_ITO["bluish_green"],
    OKABE_ITO["reddish_purple"],
    OKABE_ITO["orange"],
    OKABE_ITO["sky_blue"],
)

#: Figure widths in millimetres: a journal single column, a double column (full
#: text width), and a full page (text width, taller default aspect).
WIDTHS_MM = MappingProxyType({"single": 85.0, "double": 170.0, "full": 170.0})

#: Default height / width ratio of each size.
DEFAULT_ASPECT = MappingProxyType({"single": 0.8, "double": 0.45, "full": 1.25})

#: Tallest figure that fits a page of text (mm).
MAX_HEIGHT_MM = 225.0

#: Preferred sans-serif fonts, first available wins (Liberation Sans and Nimbus Sans
#: are metric-compatible with Arial and Helvetica).
SANS_SERIF = ("Arial", "Helvetica", "Liberation Sans", "Nimbus Sans", "DejaVu Sans")

BASE_FONT_PT = 8.0
TITLE_FONT_PT = 9.0
#: Size of secondary text (legends, dense tick labels) at print size.
SMALL_FONT_PT = 7.0
#: No text of a saved figure is smaller than this at its print width (85 or 170 mm); tests check it.
MIN_FONT_PT = 6.5


def figure_size(size: FigureSize = "single", aspect: float | None = None) -> tuple[float, float]:
    """Width and height in inches of a journal figure.

    Parameters
    ----------
    size : {"single", "double", "full"}
        ``"single"``: one column, 85 mm wide; ``"double"``: two columns
        (the text width), 170 mm; ``"full"``: a full-page figure, 170 mm wide
        and by default 1.25 times as tall.
    aspect : float, optional
        Height divided by width. ``None`` uses the size's default (0.8 single,
        0.45 double, 1.25 full). The height is capped at 225 mm (a page of text).

    Returns
    -------
    tuple of float
        ``(width, height)`` in inches, ready for ``figsize=``.

    Raises
    ------
    ValueError
        If ``size`` is not one of the three sizes or ``aspect`` is not positive.
    """
    check_option("size", size, FigureSize)
    if aspect is None:
        aspect = DEFAULT_ASPECT[size]
    if not isinstance(aspect, (int, float)) or not math.isfinite(aspect) or aspect <= 0:
        raise ValueError(f"aspect={aspect!r} is not valid; expected a positive number (height / width)")
    width_mm = WIDTHS_MM[size]
    height_mm = min(width_mm * float(aspect), MAX_HEIGHT_MM)
    return width_mm / MM_PER_INCH, height_mm / MM_PER_INCH


def style_rc(*, size: FigureSize = "single", font_scale: float = 1.0) -> dict[str, object]:
    """The ``rcParams`` entries that :func:`style` sets (a fresh dict each call).

    Parameters
    ----------
    size : {"single", "double", "full"}
        Default figure size, see :func:`figure_size`.
    font_scale : float
        Multiplies every font size (base 8 pt, titles 9 pt).

    Returns
    -------
    dict
        ``rcParams`` keys and values.
    """
    check_option("size", size, FigureSize)
    if not isinstance(font_scale, (int, float)) or not math.isfinite(font_scale) or font_scale <= 0:
        raise ValueError(f"font_scale={font_scale!r} is not valid; expected a positive number")
    from cycler import cycler

    base = BASE_FONT_PT * font_scale
    title = TITLE_FONT_PT * font_scale
    colours = [ARM_COLOURS["intervention"], ARM_COLOURS["control"], *SERIES_COLOURS]
    return {
        "figure.figsize": figure_size(size),
        "figure.constrained_layout.use": True,
        "font.family": [_first_available_font(), "sans-serif"],
        "font.sans-serif": list(SANS_SERIF),
        "font.size": base,
        "axes.titlesize": title,
        "figure.titlesize": title,
        "axes.labelsize": base,
        "xtick.labelsize": base,
        "ytick.labelsize": base,
        "legend.fontsize": base,
        "legend.title_fontsize": base,
        "mathtext.default": "regular",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.linewidth": 0.6,
        "axes.prop_cycle": cycler(color=colours),
        "grid.linewidth": 0.4,
        "lines.linewidth": 1.0,
        "lines.markersize": 4.0,
        "patch.linewidth": 0.6,
        "xtick.major.width": 0.6,
        "ytick.major.width": 0.6,
        "xtick.major.size": 3.0,
        "ytick.major.size": 3.0,
        "legend.frameon": False,
        "savefig.dpi": 300,
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
    }


def _first_available_font() -> str:
    """The first installed font of :data:`SANS_SERIF`.

    Naming the font itself (not the generic "sans-serif") keeps text in that
    font when a figure made inside :func:`style` is saved outside it.
    """
    from matplotlib import font_manager

    installed = {entry.name for entry in font_manager.fontManager.ttflist}
    for name in SANS_SERIF:
        if name in installed:
            return name
    return "sans-serif"


@contextlib.contextmanager
def style(*, size: FigureSize = "single", font_scale: float = 1.0) -> Iterator[dict[str, object]]:
    """Context manager applying the publication style to figures made inside it.

    Sets a journal figure size, sans-serif 8–9 pt fonts, no top or right spines,
    thin lines, the Okabe–Ito colour cycle (arm colours first, see
    :data:`ARM_COLOURS`), 300 dpi output and TrueType-embedded PDF text.
    Every ``rcParams`` entry is restored on exit, also after an exception.

    Parameters
    ----------
    size : {"single", "double", "full"}
        Default figure size: 85 mm, 170 mm, or a 170 mm full page
        (see :func:`figure_size`).
    font_scale : float
        Multiplies every font size.

    Yields
    ------
    dict
        The ``rcParams`` entries in force.

    Examples
    --------
    >>> from rp2pr_eval.presentation.figures import style, plot_forest
    >>> with style(size="double"):                      # doctest: +SKIP
    ...     ax = plot_forest(effects, scale="odds_ratio")
    """
    import matplotlib as mpl

    rc = style_rc(size=size, font_scale=font_scale)
    with mpl.rc_context(rc):
        yield rc
