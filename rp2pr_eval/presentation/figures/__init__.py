"""Publication figures for ILCOP: they read saved results and tidy frames, never fit.

Matplotlib is imported inside the functions, so importing this subpackage
changes no ``rcParams`` and loads no backend. Every plot takes ``ax=None``
(a new figure when omitted), returns its Axes (``plot_funnel``: the Figure)
and never calls ``plt.show()``. Wrap plotting in ``with style(size=...)``
for journal sizes and fonts, and write files with :func:`save_figure`.
"""
from rp2pr_eval.presentation.figures.diagnostics import (
    plot_caterpillar,
    plot_randomisation,
)
from rp2pr_eval.presentation.figures.effects import forest_figure, forest_height, plot_event_study, plot_forest
from rp2pr_eval.presentation.figures.flow import plot_flow_diagram
from rp2pr_eval.presentation.figures.funnel import (
    Overdispersion,
    estimate_tau2,
    funnel_limits,
    plot_adjusted_funnel,
    plot_funnel,
)
from rp2pr_eval.presentation.figures.referee import (
    plot_effect_modification,
    plot_leave_one_pair_out,
    plot_sensitivity,
)
from rp2pr_eval.presentation.figures.save import save_figure
from rp2pr_eval.presentation.figures.style import (
    ARM_COLOURS,
    ARM_LABELS,
    ARM_MARKERS,
    OKABE_ITO,
    figure_size,
    style,
)
from rp2pr_eval.presentation.figures.trends import (
    plot_trends,
    plot_trends_grid,
    trend_rates,
)



def __getattr__(name: str):
    """``DisplayFigure`` and ``new_figure`` on first use: their module imports matplotlib (0.35 s), which
    ``import rp2pr_eval`` should not pay for in a kernel that never draws."""
    if name in ("DisplayFigure", "new_figure"):
        from rp2pr_eval.presentation.figures import canvas

        return getattr(canvas, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ARM_COLOURS",
    "ARM_LABELS",
    "ARM_MARKERS",
    "DisplayFigure",
    "OKABE_ITO",
    "Overdispersion",
    "estimate_tau2",
    "figure_size",
    "forest_figure",
    "forest_height",
    "funnel_limits",
    "new_figure",
    "plot_adjusted_funnel",
    "plot_caterpillar",
    "plot_effect_modification",
    "plot_event_study",
    "plot_flow_diagram",
    "plot_forest",
    "plot_funnel",
    "plot_leave_one_pair_out",
    "plot_randomisation",
    "plot_sensitivity",
    "plot_trends",
    "plot_trends_grid",
    "save_figure",
    "style",
    "trend_rates",
]
