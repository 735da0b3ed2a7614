"""Every figure kind, drawn on the bundled data at 85 mm and 170 mm, has no overlapping or clipped text.

The checker (tests/figure_overlap.py) compares the boxes of every text artist (tick labels,
axis labels, titles, legend texts, annotations) with each other, with the other panels'
plotting areas and with the legends, and every legend with the data of its axes. It finds
87 overlapping text pairs in the forest plot as it was drawn before issue 18 (44 rows in a
fixed 6.7 × 3.0 in figure) — the test below keeps that old layout as the check's own check.
"""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
from figure_overlap import overlap_findings, small_text_findings

import rp2pr_eval as rp
from rp2pr_eval.presentation import figures as fg
from rp2pr_eval.presentation.figures.style import MIN_FONT_PT
from rp2pr_eval.presentation.report import LABELS
from rp2pr_eval.results.effect import effects_table
from rp2pr_eval.study.outcomes import OUTCOMES

MAIN = ["ancova", "did_aggregate", "did_twfe", "mixed_linear"]
SIZES = ("single", "double")


@pytest.fixture(scope="module")
def bundled_analyses(bundled_patients):
    """Per-outcome analyses of the bundled data: the four main estimators (Cox for survival)."""
    out = {}
    for name in OUTCOMES:
        wanted = ["did_cox"] if name == "survival_days" else MAIN
        if name in ("active_treatment", "days_referral_to_treatment"):
            wanted = wanted + ["event_study", "randomisation_test"]
        if name == "active_treatment":
            wanted = wanted + ["mixed_logistic"]
        out[name] = rp.analyse_outcome(bundled_patients, name, estimators=wanted, ri_draws=199, seed=3)
    return out


@pytest.fixture(scope="module")
def bundled_effects(bundled_analyses):
    return effects_table([e for a in bundled_analyses.values() for e in a.effects.values()])


def _assert_clean(fig, what):
    found = overlap_findings(fig) + small_text_findings(fig, min_pt=MIN_FONT_PT)
    assert found == [], f"{what}: {len(found)} finding(s): " + "; ".join(found[:6])


@pytest.mark.fixture
def test_the_checker_fails_on_the_old_forest_plot(bundled_effects):
    """The pre-issue-18 forest: all 44 risk-difference rows squeezed into 6.7 × 3.0 in."""
    rows = bundled_effects[bundled_effects["estimator"].isin(MAIN) & (bundled_effects["scale"] == "risk_difference")]
    assert len(rows) == 44
    with fg.style(size="double"):
        fig = fg.new_figure(figsize=(170 / 25.4, 3.0))
        fg.plot_forest(rows.reset_index(drop=True), ax=fig.add_subplot(), labels=LABELS, estimator_labels={})
    found = overlap_findings(fig)
    assert sum(f.startswith("text/text") for f in found) >= 40, found[:3]


@pytest.mark.fixture
@pytest.mark.parametrize("size", SIZES)
def test_forest_figure_fits(bundled_effects, size):
    frame = bundled_effects[bundled_effects["estimator"].isin(MAIN + ["did_cox"])].reset_index(drop=True)
    with fg.style(size=size):
        fig = fg.forest_figure(frame, labels=LABELS, size=size)
    width, height = fig.get_size_inches() * 25.4
    assert width == pytest.approx(85 if size == "single" else 170)
    assert 150 < height <= 225                            # grows with the rows, capped at a page
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles == ["Binary indicators", "Waiting times", "Survival"]   # continuous outcomes apart
    assert fig.axes[1].get_xscale() == "log" and "Ratio" in fig.axes[1].get_xlabel()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:2] == ["ANCOVA (primary)", "Difference in differences"] and "did_twfe" not in legend
    _assert_clean(fig, f"forest at {size}")


@pytest.mark.fixture
@pytest.mark.parametrize("size", SIZES)
def test_primary_trends_grid_fits(bundled_analyses, size):
    panels = {o: bundled_analyses[o].trends for o in rp.PRIMARY_OUTCOMES if bundled_analyses[o].trends is not None}
    assert len(panels) == 6
    with fg.style(size=size):
        fig = fg.plot_trends_grid(panels, labels=LABELS, size=size)
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    _assert_clean(fig, f"primary trends at {size}")


@pytest.mark.fixture
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("outcome", ["active_treatment", "days_referral_to_treatment"])
def test_outcome_figures_fit(bundled_analyses, size, outcome):
    analysis = bundled_analyses[outcome]
    with fg.style(size=size):
        figs = rp.report.outcome_figures(analysis, None, size=size)
    drawn = {k: f for k, f in figs.items() if f is not None}
    expected = {"trends", "event_study", "randomisation", "funnel", "caterpillar"} if outcome == "active_treatment" \
        else {"event_study", "randomisation"}
    assert set(drawn) == expected
    for kind, fig in drawn.items():
        assert fig.get_size_inches()[0] * 25.4 == pytest.approx(85 if size == "single" else 170), kind
        _assert_clean(fig, f"{outcome} {kind} at {size}")


@pytest.mark.fixture
def test_randomisation_and_event_study_units(bundled_analyses):
    binary = rp.report.outcome_figures(bundled_analyses["active_treatment"], None)
    assert "percentage points" in binary["randomisation"].axes[0].get_xlabel()
    assert "percentage points" in binary["event_study"].axes[0].get_ylabel()
    wait = rp.report.outcome_figures(bundled_analyses["days_referral_to_treatment"], None)
    assert "ratio" in wait["randomisation"].axes[0].get_xlabel().lower()
    assert "ratio" in wait["event_study"].axes[0].get_ylabel().lower()
    assert "days)" not in wait["event_study"].axes[0].get_ylabel()


@pytest.mark.fixture
def test_plotting_leaves_backend_and_rcparams_alone(bundled_analyses, bundled_effects):
    backend = matplotlib.get_backend()
    before = {k: v for k, v in matplotlib.rcParams.items() if k != "backend"}
    import matplotlib.pyplot as plt
    open_before = plt.get_fignums()
    figs = rp.report.outcome_figures(bundled_analyses["active_treatment"], None)
    fg.forest_figure(bundled_effects)
    after = {k: v for k, v in matplotlib.rcParams.items() if k != "backend"}
    assert matplotlib.get_backend() == backend
    assert [k for k in before if not _same(before[k], after[k])] == []
    assert plt.get_fignums() == open_before            # nothing registered with pyplot
    assert all(isinstance(f, fg.DisplayFigure) for f in figs.values() if f is not None)
    png = figs["trends"]._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def _same(a, b) -> bool:
    try:
        return bool(np.all(a == b)) if not isinstance(a, (list, tuple)) else list(a) == list(b)
    except (TypeError, ValueError):
        return a is b or str(a) == str(b)


@pytest.mark.fixture
def test_importing_the_package_changes_no_global_state():
    import subprocess
    import sys

    # rcParams["backend"] is read last: reading it resolves the backend (and imports pyplot)
    code = ("import sys, matplotlib; r = {k: str(matplotlib.rcParams[k]) for k in matplotlib.rcParams if k != 'backend'};"
            "import rp2pr_eval, rp2pr_eval.presentation.figures as fg, rp2pr_eval.presentation.report;"
            "from rp2pr_eval.presentation.figures import canvas;"
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported';"
            "changed = [k for k in r if str(matplotlib.rcParams[k]) != r[k]];"
            "assert not changed, changed")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.fixture
def test_save_primary_trends_saves_the_figure_or_says_why_not(small_patients, tmp_path):
    """01_descriptives' trends cell: the figure and its three files, or a reason and no files."""
    fig = rp.report.save_primary_trends(small_patients, rp.PRIMARY_OUTCOMES, tmp_path, among=["active_treatment"])
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) >= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["primary_trends.pdf", "primary_trends.png",
                                                        "primary_trends.svg"]
    out = tmp_path / "none"
    none = rp.report.save_primary_trends(small_patients, rp.PRIMARY_OUTCOMES, out,
                                         among=["days_referral_to_treatment", "survival_days"])
    assert isinstance(none, rp.report.NoFigure)
    assert none._repr_markdown_() == "*No trends figure: no primary outcome is among this run's outcomes.*"
    assert not out.exists()


@pytest.mark.fixture
def test_flow_diagram_arrows_join_the_boxes_and_cross_no_text(bundled_patients):
    """Every arrow of the flow diagram starts and ends at a box's outline: it enters no box (before, the
    lines to the arms crossed "80 trusts in 40 pairs") and its head touches the box it points to
    (before, the arrows to the exclusion boxes stopped ~15 mm short). No text overlaps."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.path import Path as MplPath

    from rp2pr_eval.data.flow import flow_counts
    from rp2pr_eval.presentation.figures.flow import plot_flow_diagram

    fig = plot_flow_diagram(flow_counts(bundled_patients))
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    boxes = [t.get_bbox_patch().get_window_extent(renderer) for t in ax.texts
             if t.get_bbox_patch() is not None and t.get_text()]
    arrows = [t.arrow_patch for t in ax.texts if getattr(t, "arrow_patch", None) is not None]
    assert len(arrows) >= 9
    for arrow in arrows:
        path = arrow.get_path()
        points = np.array([v for v, code in zip(path.vertices, path.codes) if code != MplPath.CLOSEPOLY])
        for b in boxes:
            inside = (points[:, 0] > b.x0 + 1) & (points[:, 0] < b.x1 - 1) & (points[:, 1] > b.y0 + 1) & (points[:, 1] < b.y1 - 1)
            assert not inside.any(), (points, b)
        near = [b for b in boxes if any(b.x0 - 4 <= x <= b.x1 + 4 and b.y0 - 4 <= y <= b.y1 + 4 for x, y in points)]
        assert near, f"an arrow ending at {points[-1]} touches no box"
    _assert_clean(fig, "flow diagram")
    height_mm = fig.get_size_inches()[1] * 25.4
    lowest = min(b.y0 for b in boxes) / fig.dpi * 25.4
    assert lowest < 0.06 * height_mm, f"{lowest:.0f} mm of empty space at the foot of a {height_mm:.0f} mm figure"


@pytest.fixture(scope="module")
def bundled_referee_figures(bundled_analyses, bundled_patients):
    """The referee figures of a binary and a waiting-time outcome of the bundled data, as a run draws them."""
    from rp2pr_eval.pipeline.referee import add_referee_checks
    from rp2pr_eval.presentation.referee import referee_figures

    out = {}
    for name in ("active_treatment", "days_referral_to_treatment"):
        checked = add_referee_checks(bundled_analyses[name], bundled_patients, n_sims=200, grid_points=200,
                                     effect_modification_draws=199, checks=["parallel_trends", "effect_modification",
                                                                             "leave_one_pair_out"], seed=5)
        out[name] = referee_figures(checked)
    return out


@pytest.mark.fixture
@pytest.mark.parametrize("outcome", ["active_treatment", "days_referral_to_treatment"])
def test_referee_figures_fit_at_print_size(bundled_referee_figures, outcome):
    """No overlapping or clipped text and no text under 6.5 pt at the saved widths (sensitivity 170 mm,
    the others 85 mm); the leave-one-pair-out figure grows with its 40 rows."""
    figs = {k: f for k, f in bundled_referee_figures[outcome].items() if f is not None}
    expected = {"sensitivity", "effect_modification", "leave_one_pair_out"} if outcome == "active_treatment" \
        else {"sensitivity", "leave_one_pair_out"}              # effect modification: binary outcomes only
    assert set(figs) == expected
    widths = {"sensitivity": 170, "effect_modification": 85, "leave_one_pair_out": 85}
    for kind, fig in figs.items():
        assert fig.get_size_inches()[0] * 25.4 == pytest.approx(widths[kind]), kind
        _assert_clean(fig, f"{outcome} {kind}")
    lopo = figs["leave_one_pair_out"]
    assert len(lopo.axes[0].get_yticklabels()) == 40
    assert 160 < lopo.get_size_inches()[1] * 25.4 <= 225
    assert "ANCOVA (primary)" in lopo.axes[0].get_title()


@pytest.mark.fixture
def test_referee_figures_show_waiting_times_as_ratios(bundled_referee_figures):
    """Log ratios are drawn as ratios: log axis with ratio ticks around 1, a reference line at 1."""
    wait = bundled_referee_figures["days_referral_to_treatment"]
    ax = wait["leave_one_pair_out"].axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel().startswith("Ratio (intervention / control)")
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert "1" in ticks and "log" not in ax.get_xlabel()
    assert any(list(line.get_xdata()) == [1.0, 1.0] for line in ax.lines)
    points = np.concatenate([line.get_xdata() for line in ax.lines if len(line.get_xdata()) > 2])
    assert 0.8 < points.min() and points.max() < 1.25            # ratios near 1, not log ratios near 0
    for panel in wait["sensitivity"].axes:
        assert panel.get_yscale() == "log" and "ratio" in panel.get_ylabel()
        assert any(list(line.get_ydata()) == [1.0, 1.0] for line in panel.lines)
    binary = bundled_referee_figures["active_treatment"]
    assert binary["leave_one_pair_out"].axes[0].get_xlabel().startswith("Risk difference (percentage points)")
    assert all("percentage points" in panel.get_ylabel() for panel in binary["sensitivity"].axes)
    assert " pp" in binary["leave_one_pair_out"].axes[0].get_title()


@pytest.mark.fixture
def test_flow_diagram_fits_at_print_size(bundled_patients, tmp_path):
    """The flow diagram the referee module draws (170 mm): the analysed boxes were 5.55 pt (x-small)."""
    from rp2pr_eval.presentation.referee import flow_figure, save_flow

    table = save_flow(rp.flow_counts(bundled_patients, "active_treatment"), tmp_path)
    fig = flow_figure(table)
    assert fig.get_size_inches()[0] * 25.4 == pytest.approx(170)
    _assert_clean(fig, "flow diagram")
