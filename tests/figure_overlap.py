"""Overlap checker for figures: text on text, text on other panels, legends on data, text off the page.

Used by tests/test_figure_layout.py; reusable on any matplotlib Figure::

    from figure_overlap import overlap_findings
    assert overlap_findings(fig) == []

The figure is drawn with the Agg renderer (attached to the figure, not through pyplot, so the
backend is left alone) at its own size, and every visible, non-empty text artist is collected:
tick labels of ticks inside the view, axis labels, offset texts, titles, legend texts, annotations,
figure texts (suptitle, supxlabel). Findings:

* ``text/text``: two texts whose boxes overlap by more than ``tolerance_px`` in both directions
  (texts of one legend are exempt from each other: the legend lays them out);
* ``text/axes``: a text of one panel reaching into the plotting area of another panel;
* ``text/legend``: a text outside a legend reaching into that legend's box;
* ``legend/data``: a legend box covering a marker, an error bar or a histogram bar of its axes;
* ``clipped``: a text reaching outside the figure.
"""
from __future__ import annotations

import itertools

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.text import Text


def _overlap(a, b, tol: float) -> bool:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w > tol and h > tol


def _visible(artist) -> bool:
    while artist is not None:
        if not artist.get_visible():
            return False
        artist = getattr(artist, "axes", None) if not isinstance(artist, Axes) else getattr(artist, "_parent_axes", None)
    return True


def _all_axes(fig) -> list[Axes]:
    out = []
    for ax in fig.get_axes():
        out.append(ax)
        out.extend(ax.child_axes)
    return [ax for ax in out if ax.get_visible()]


def collect_texts(fig, renderer) -> list[tuple[Text, object, str]]:
    """(text, owner, kind) for every visible non-empty text; owner is its Axes, Legend or the Figure."""
    found: list[tuple[Text, object, str]] = []
    tick_labels: set[int] = set()
    for ax in _all_axes(fig):
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            span = max(hi - lo, 1e-300)
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                for label in (tick.label1, tick.label2):
                    tick_labels.add(id(label))
                loc = tick.get_loc()
                if loc is None or not (lo - 1e-9 * span <= loc <= hi + 1e-9 * span) or not tick.get_visible():
                    continue
                for label in (tick.label1, tick.label2):
                    if label.get_visible() and label.get_text().strip():
                        found.append((label, ax, "tick label"))
    legends = [lg for lg in fig.findobj(Legend) if lg.get_visible()]
    in_legend = {id(t): lg for lg in legends for t in lg.get_texts()}
    for lg in legends:
        title = lg.get_title()
        in_legend[id(title)] = lg
    for text in fig.findobj(Text):
        if id(text) in tick_labels or not text.get_visible() or not text.get_text().strip():
            continue
        if id(text) in in_legend:
            found.append((text, in_legend[id(text)], "legend text"))
            continue
        if text.axes is not None and not _visible(text.axes):
            continue
        owner = text.axes if text.axes is not None else fig
        found.append((text, owner, "text"))
    unique, seen = [], set()
    for item in found:
        if id(item[0]) not in seen:
            seen.add(id(item[0]))
            unique.append(item)
    return unique


def _data_points(ax: Axes) -> np.ndarray:
    """Display coordinates of the markers, error-bar segments and histogram bars of ``ax``."""
    pts = []
    for line in ax.lines:
        if not line.get_visible() or line.get_marker() in (None, "", "None", " "):
            continue
        xy = np.column_stack([line.get_xdata(orig=False), line.get_ydata(orig=False)]).astype(float)
        xy = xy[np.all(np.isfinite(xy), axis=1)]
        if len(xy):
            pts.append(line.get_transform().transform(xy))
    for coll in ax.collections:
        if isinstance(coll, LineCollection) and coll.get_visible():
            for seg in coll.get_segments():
                seg = np.asarray(seg, dtype=float)
                if len(seg) >= 2:
                    t = np.linspace(0, 1, 9)[:, None]
                    dense = seg[0] + t * (seg[-1] - seg[0])
                    pts.append(coll.get_transform().transform(dense))
    for patch in ax.patches:
        if isinstance(patch, Rectangle) and patch.get_visible() and patch.get_height() > 0 \
                and "window" not in str(patch.get_gid()):     # shading of a period is background, not data
            b = patch.get_window_extent()
            if b.width > 0 and b.height > 0:
                pts.append(np.array([[b.x0 + b.width / 2, b.y1]]))
    if not pts:
        return np.empty((0, 2))
    return np.vstack(pts)


def overlap_findings(fig, *, tolerance_px: float = 0.5) -> list[str]:
    """Every overlap in ``fig`` as a one-line description (empty list: a clean figure)."""
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = collect_texts(fig, renderer)
    boxes = [t.get_window_extent(renderer) for t, _, _ in texts]
    findings: list[str] = []
    page = fig.bbox
    for (t, owner, kind), b in zip(texts, boxes):
        if b.x0 < page.x0 - tolerance_px or b.y0 < page.y0 - tolerance_px or b.x1 > page.x1 + tolerance_px \
                or b.y1 > page.y1 + tolerance_px:
            findings.append(f"clipped: {kind} {t.get_text()!r}")
    for (i, (ti, oi, ki)), (j, (tj, oj, kj)) in itertools.combinations(enumerate(texts), 2):
        if isinstance(oi, Legend) and oi is oj:
            continue
        if _overlap(boxes[i], boxes[j], tolerance_px):
            findings.append(f"text/text: {ki} {ti.get_text()!r} and {kj} {tj.get_text()!r}")
    axes = [ax for ax in _all_axes(fig) if ax.axison and ax not in [a for p in fig.get_axes() for a in p.child_axes]]
    for (t, owner, kind), b in zip(texts, boxes):
        home = owner.axes if isinstance(owner, Legend) else owner
        home = getattr(home, "_parent_axes", None) or home
        for ax in axes:
            if ax is home:
                continue
            if _overlap(b, ax.bbox, tolerance_px):
                findings.append(f"text/axes: {kind} {t.get_text()!r} reaches into another panel")
    legends = [lg for lg in fig.findobj(Legend) if lg.get_visible()]
    for lg in legends:
        lb = lg.get_window_extent(renderer)
        for (t, owner, kind), b in zip(texts, boxes):
            if owner is lg:
                continue
            if _overlap(b, lb, tolerance_px):
                findings.append(f"text/legend: {kind} {t.get_text()!r} runs into a legend")
        ax = lg.axes
        if ax is not None and isinstance(lg.parent, Axes):
            pts = _data_points(ax)
            inside = (pts[:, 0] > lb.x0) & (pts[:, 0] < lb.x1) & (pts[:, 1] > lb.y0) & (pts[:, 1] < lb.y1)
            if inside.any():
                findings.append(f"legend/data: a legend covers {int(inside.sum())} data point(s)")
    return findings


def small_text_findings(fig, *, min_pt: float = 6.5) -> list[str]:
    """Every visible text smaller than ``min_pt`` points at the figure's own (print) size.

    The figures are saved at their print width (85 or 170 mm, no ``bbox_inches="tight"``), so a
    text's font size in points is its printed size.
    """
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [f"small text: {kind} {t.get_text()!r} at {t.get_fontsize():.2f} pt"
            for t, _, kind in collect_texts(fig, renderer) if t.get_fontsize() < min_pt - 1e-9]
