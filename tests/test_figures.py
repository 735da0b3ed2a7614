"""Tests of rp2pr_eval.figures: each plot draws what it claims; funnel limits by hand.

Plots are checked through the artists they create (points, error-bar segments,
limit lines, tick labels), never by comparing images. Numbers of
``funnel_limits`` / ``estimate_tau2`` / ``trend_rates`` are checked against
the formulas written out by hand in the tests.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import matplotlib

matplotlib.use("Agg", force=True)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy import stats  # noqa: E402

from rp2pr_eval.study.outcomes import ESTIMATOR_LABELS  # noqa: E402

from rp2pr_eval.presentation.figures import (
    ARM_COLOURS,
    estimate_tau2,
    figure_size,
    funnel_limits,
    plot_caterpillar,
    plot_event_study,
    plot_forest,
    plot_funnel,
    plot_randomisation,
    plot_trends,
    save_figure,
    style,
    trend_rates,
)

LABELS = {"active_treatment": "Any anti-cancer treatment", "nsclc_resection": "Surgical resection in NSCLC"}


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def _no_show_and_close(monkeypatch):
    """Any call of plt.show() or Figure.show() fails the test; figures are closed after."""

    def _fail(*args, **kwargs):
        raise AssertionError("a plot function called show()")

    monkeypatch.setattr(plt, "show", _fail)
    monkeypatch.setattr(Figure, "show", _fail)
    yield
    plt.close("all")


def _synthetic_panels(seed: int = 11, logit_sd: float = 0.3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """80 trusts (40 pairs, 30 intervention), 2008–2013: panels by audit year and by period."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(80):
        arm = "intervention" if i < 30 else "control"
        u = rng.normal(0.0, logit_sd)
        n0 = int(np.clip(rng.lognormal(np.log(210), 0.5), 60, 750))
        for year in range(2008, 2014):
            p = 1 / (1 + np.exp(-(0.33 + 0.06 * (year - 2009) + u)))
            n = int(round(n0 * 1.05 ** (year - 2008)))
            rows.append(
                {
                    "trust_id": f"T{i:02d}",
                    "pair_id": f"P{i // 2:02d}",
                    "arm": arm,
                    "audit_year": year,
                    "outcome": "active_treatment",
                    "numerator": int(rng.binomial(n, p)),
                    "denominator": n,
                }
            )
    by_year = pd.DataFrame(rows)
    by_year["rate"] = by_year["numerator"] / by_year["denominator"]
    period = np.select(
        [by_year["audit_year"] <= 2009, by_year["audit_year"] <= 2011], ["pre", "during"], default="post"
    )
    by_period = (
        by_year.assign(period=period)
        .groupby(["trust_id", "pair_id", "arm", "period", "outcome"], as_index=False)[["numerator", "denominator"]]
        .sum()
    )
    by_period["rate"] = by_period["numerator"] / by_period["denominator"]
    return by_year, by_period


@pytest.fixture(scope="module")
def panels():
    return _synthetic_panels()


@pytest.fixture
def effects():
    """Tidy effects frame: two outcomes, risk differences and log odds ratios."""
    rows = []
    specs = [
        ("active_treatment", "ancova", "risk_difference", 0.012, 0.010, 0.21, 0.42),
        ("active_treatment", "did_aggregate", "risk_difference", -0.004, 0.011, 0.72, 0.72),
        ("nsclc_resection", "ancova", "risk_difference", 0.031, 0.014, 0.0004, 0.0012),
        ("active_treatment", "did_logistic", "log_odds_ratio", 0.10, 0.05, 0.045, 0.09),
        ("nsclc_resection", "did_logistic", "log_odds_ratio", -0.20, 0.08, 0.012, 0.036),
    ]
    for outcome, estimator, scale, est, se, p, padj in specs:
        rows.append(
            {
                "outcome": outcome, "estimator": estimator, "estimand": "did", "scale": scale,
                "estimate": est, "se": se, "ci_low": est - 1.96 * se, "ci_high": est + 1.96 * se,
                "p_value": p, "df": 39.0, "n_obs": 160, "n_trusts": 80, "n_clusters": 40,
                "cluster": "pair_id", "vcov": "CR2", "p_adjusted": padj, "adjust_method": "holm",
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture
def event_frame():
    est = [0.004, 0.0, 0.010, 0.020, 0.015, 0.022]
    se = [0.010, np.nan, 0.010, 0.011, 0.012, 0.012]
    frame = pd.DataFrame({"year": range(2008, 2014), "estimate": est, "se": se})
    frame["ci_low"] = frame["estimate"] - 1.96 * frame["se"]
    frame["ci_high"] = frame["estimate"] + 1.96 * frame["se"]
    frame["p_value"] = [0.69, np.nan, 0.32, 0.07, 0.21, 0.07]
    frame["period"] = ["pre", "pre", "during", "during", "post", "post"]
    return frame


def _errorbar_segments(ax, label=None) -> list[np.ndarray]:
    """Segments of the error bars of the ErrorbarContainers of ax (those with ``label``)."""
    segments = []
    for container in ax.containers:
        if isinstance(container, ErrorbarContainer) and (label is None or container.get_label() == label):
            for collection in container.lines[2]:
                segments.extend(collection.get_segments())
    return segments


def _line(ax, gid):
    found = [line for line in ax.lines if line.get_gid() == gid]
    assert len(found) == 1, f"expected one line with gid {gid!r}, found {len(found)}"
    return found[0]


# --------------------------------------------------------------------------- style
@pytest.mark.fixture
def test_figure_size_is_journal_width():
    width, height = figure_size("single")
    assert width == pytest.approx(85 / 25.4)
    assert height == pytest.approx(0.8 * 85 / 25.4)
    assert figure_size("double", 0.5) == pytest.approx((170 / 25.4, 85 / 25.4))
    assert figure_size("full", 10)[1] == pytest.approx(225 / 25.4)  # capped at a page


@pytest.mark.fixture
def _rc_snapshot() -> dict:
    """rcParams without 'backend' (reading it may resolve the backend)."""
    return {key: matplotlib.rcParams[key] for key in matplotlib.rcParams if key != "backend"}


@pytest.mark.fixture
def test_style_sets_and_restores_rcparams():
    before = _rc_snapshot()
    with style(size="double", font_scale=1.125):
        assert matplotlib.rcParams["axes.spines.top"] is False
        assert matplotlib.rcParams["axes.spines.right"] is False
        assert matplotlib.rcParams["font.size"] == pytest.approx(9.0)
        assert tuple(matplotlib.rcParams["figure.figsize"]) == pytest.approx(figure_size("double"))
        cycle = [c.lower() for c in matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]]
        assert cycle[:2] == [ARM_COLOURS["intervention"].lower(), ARM_COLOURS["control"].lower()]
    assert _rc_snapshot() == before


@pytest.mark.fixture
def test_style_restores_rcparams_after_exception():
    before = _rc_snapshot()
    with pytest.raises(RuntimeError):
        with style():
            raise RuntimeError("boom")
    assert _rc_snapshot() == before


@pytest.mark.fixture
def test_style_rejects_invalid_options():
    with pytest.raises(ValueError, match="'single', 'double', 'full'"):
        with style(size="a4"):
            pass
    with pytest.raises(ValueError, match="font_scale"):
        with style(font_scale=0):
            pass


@pytest.mark.fixture
def test_import_changes_no_rcparams():
    code = textwrap.dedent(
        """
        import sys
        import matplotlib
        def snapshot():
            return {k: matplotlib.rcParams[k] for k in matplotlib.rcParams if k != "backend"}
        before = snapshot()
        import rp2pr_eval.presentation.figures
        assert snapshot() == before
        assert "matplotlib.pyplot" not in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- funnel limits
@pytest.mark.fixture
def test_funnel_limits_exact_by_hand():
    # Binomial(2, 0.5): F(0) = 0.25, F(1) = 0.75, F(2) = 1.
    # level 0.4: q = 0.3 -> r = 1, alpha = (0.75 - 0.3) / 0.5 = 0.9, limit (1 - 0.9)/2 = 0.05
    #            q = 0.7 -> r = 1, alpha = (0.75 - 0.7) / 0.5 = 0.1, limit (1 - 0.1)/2 = 0.45
    # level 0.95: q = 0.975 -> r = 2, alpha = (1 - 0.975)/0.25 = 0.1, limit 1.9/2 = 0.95
    #             q = 0.025 -> r = 0, alpha = 0.9, limit -0.45 -> clipped to 0
    out = funnel_limits(0.5, 2, levels=(0.4, 0.95))
    assert out["level"].tolist() == [0.4, 0.95]
    assert out["lower"].tolist() == pytest.approx([0.05, 0.0])
    assert out["upper"].tolist() == pytest.approx([0.45, 0.95])
    assert set(out["method"]) == {"exact"}


@pytest.mark.fixture
@pytest.mark.parametrize("p0", [0.14, 0.582, 0.95])
def test_funnel_limits_exact_match_interpolated_binomial_quantiles(p0):
    n = np.array([25, 60, 137, 210, 750])
    out = funnel_limits(p0, n)
    for level in (0.95, 0.998):
        cur = out.loc[out["level"] == level]
        for q, column in (((1 - level) / 2, "lower"), ((1 + level) / 2, "upper")):
            r = stats.binom.ppf(q, n, p0)
            alpha = (stats.binom.cdf(r, n, p0) - q) / (stats.binom.cdf(r, n, p0) - stats.binom.cdf(r - 1, n, p0))
            expected = np.clip((r - alpha) / n, 0, 1)
            np.testing.assert_allclose(cur[column].to_numpy(), expected, rtol=1e-12)


@pytest.mark.fixture
def test_funnel_limits_normal_and_overdispersed_by_hand():
    z95 = 1.959963984540054
    # p0(1-p0)/n = 0.24/100 = 0.0024; + tau2 0.0025 = 0.0049 -> sd 0.07
    out = funnel_limits(0.6, [100], levels=(0.95,), tau2=0.0025)
    assert out["lower"].iloc[0] == pytest.approx(0.6 - z95 * 0.07, abs=1e-12)
    assert out["upper"].iloc[0] == pytest.approx(0.6 + z95 * 0.07, abs=1e-12)
    assert out["method"].iloc[0] == "normal"  # tau2 > 0 always gives the additive normal limits
    plain = funnel_limits(0.6, [100, 400], levels=(0.998,), method="normal")
    z998 = stats.norm.ppf(0.999)
    np.testing.assert_allclose(plain["upper"], 0.6 + z998 * np.sqrt(0.24 / np.array([100, 400])))
    np.testing.assert_allclose(plain["lower"], 0.6 - z998 * np.sqrt(0.24 / np.array([100, 400])))


@pytest.mark.fixture
def test_funnel_limits_reject_invalid_input():
    with pytest.raises(ValueError, match="p0"):
        funnel_limits(1.2, 100)
    with pytest.raises(ValueError, match="'exact', 'normal'"):
        funnel_limits(0.5, 100, method="poisson")
    with pytest.raises(ValueError, match="tau2"):
        funnel_limits(0.5, 100, tau2=-0.1)
    with pytest.raises(ValueError, match="whole-number"):
        funnel_limits(0.5, 100.5)
    with pytest.raises(ValueError, match="level"):
        funnel_limits(0.5, 100, levels=(95,))


# --------------------------------------------------------------------------- tau2
@pytest.mark.fixture
def test_estimate_tau2_by_hand():
    # p0 = 0.5, n = 100: s = 0.05, w = 400; rates 0.4..0.7 -> z = -2, 0, 2, 4.
    rates, ns = [0.4, 0.5, 0.6, 0.7], [100] * 4
    raw = estimate_tau2(rates, ns, 0.5, winsorize=0.0)
    # phi = (4 + 0 + 4 + 16)/4 = 6; tau2 = (4*6 - 3) / (1600 - 4*400^2/1600) = 21/1200
    assert raw.phi == pytest.approx(6.0)
    assert raw.tau2 == pytest.approx(21 / 1200)
    assert raw.n_units == 4
    # 25% winsorised: linear-interpolation quantiles of z are -0.5 and 2.5 -> z = -0.5, 0, 2, 2.5
    # phi = (0.25 + 0 + 4 + 6.25)/4 = 2.625; tau2 = (10.5 - 3) / 1200
    wins = estimate_tau2(rates, ns, 0.5, winsorize=0.25)
    assert wins.phi == pytest.approx(2.625)
    assert wins.tau2 == pytest.approx(7.5 / 1200)
    # under-dispersed: I*phi <= I - 1 -> 0
    assert estimate_tau2([0.5, 0.5, 0.5], [100] * 3, 0.5).tau2 == 0.0


@pytest.mark.fixture
def test_estimate_tau2_rejects_invalid_input():
    with pytest.raises(ValueError, match="ns has 2"):
        estimate_tau2([0.1, 0.2, 0.3], [10, 10], 0.2)
    with pytest.raises(ValueError, match="winsorize"):
        estimate_tau2([0.1, 0.2, 0.3], [10, 10, 10], 0.2, winsorize=0.5)
    with pytest.raises(ValueError, match="tau2"):
        funnel_limits(0.2, 10, tau2=estimate_tau2([0.1, 0.2, 0.3], [10, 10, 10], 0.2))


def _simulate_tau2(rng, *, sd_prop: float, winsorize: float, reps: int = 200) -> np.ndarray:
    out = np.empty(reps)
    for r in range(reps):
        n = np.clip(np.round(rng.lognormal(np.log(210), 0.5, 80)), 60, 750).astype(int)
        p = np.clip(0.6 + rng.normal(0.0, sd_prop, 80), 0.01, 0.99) if sd_prop > 0 else np.full(80, 0.6)
        out[r] = estimate_tau2(rng.binomial(n, p) / n, n, 0.6, winsorize=winsorize).tau2
    return out


@pytest.mark.simulation
def test_estimate_tau2_is_zero_on_average_for_binomial_data():
    draws = _simulate_tau2(np.random.default_rng(20240601), sd_prop=0.0, winsorize=0.1)
    assert np.median(draws) == 0.0
    assert draws.mean() < 5e-5  # vs 4.9e-3 for the over-dispersed scenario below


@pytest.mark.simulation
def test_estimate_tau2_is_positive_for_overdispersed_data():
    rng = np.random.default_rng(20240602)
    winsorised = _simulate_tau2(rng, sd_prop=0.07, winsorize=0.1)
    assert np.all(winsorised > 0)
    # Without winsorisation the moment estimator is close to unbiased for tau2 = 0.0049;
    # 10% winsorisation shrinks phi (about 0.69 under the binomial) and so tau2.
    raw = _simulate_tau2(rng, sd_prop=0.07, winsorize=0.0)
    assert raw.mean() == pytest.approx(0.07**2, rel=0.15)
    assert winsorised.mean() < raw.mean()


# --------------------------------------------------------------------------- trends
@pytest.mark.fixture
def test_trend_rates_cluster_and_wilson_by_hand():
    panel = pd.DataFrame(
        {
            "trust_id": ["T1", "T2", "T3", "T4"],
            "pair_id": ["P1", "P1", "P2", "P2"],
            "arm": "intervention",
            "audit_year": 2008,
            "numerator": [30, 20, 45, 60],
            "denominator": [50, 50, 100, 100],
        }
    )
    out = trend_rates(panel).iloc[0]
    rate = 155 / 300
    # pair residuals: 50 - 100R and 105 - 200R (= -/+ 5/3); V = 2/(2-1) * 2 * (5/3)^2 / 300^2
    se = np.sqrt(2 * 2 * (5 / 3) ** 2) / 300
    half = stats.t.ppf(0.975, 1) * se
    assert out["rate"] == pytest.approx(rate)
    assert out["se"] == pytest.approx(se)
    assert out["ci_low"] == pytest.approx(rate - half)
    assert out["ci_high"] == pytest.approx(min(rate + half, 1.0))
    assert (out["n_trusts"], out["n_clusters"]) == (4, 2)
    by_trust = trend_rates(panel, cluster="trust_id").iloc[0]
    resid = np.array([30, 20, 45, 60]) - rate * np.array([50, 50, 100, 100])
    assert by_trust["se"] == pytest.approx(np.sqrt(4 / 3 * np.sum(resid**2)) / 300)
    wilson = trend_rates(panel, ci="wilson").iloc[0]
    z = stats.norm.ppf(0.975)
    centre = (155 + z**2 / 2) / (300 + z**2)
    half_w = z / (300 + z**2) * np.sqrt(155 * 145 / 300 + z**2 / 4)
    assert (wilson["ci_low"], wilson["ci_high"]) == pytest.approx((centre - half_w, centre + half_w))


@pytest.mark.fixture
def test_plot_trends_draws_pooled_rates_window_and_national(panels):
    by_year, _ = panels
    national = pd.DataFrame({"year": range(2008, 2014), "rate": [0.57, 0.582, 0.59, 0.60, 0.61, 0.615]})
    ax = plot_trends(by_year, national=national, labels=LABELS)
    assert ax.get_ylabel() == "Any anti-cancer treatment (%)"
    pooled = by_year.groupby(["arm", "audit_year"])[["numerator", "denominator"]].sum()
    for arm, label in (("intervention", "Intervention"), ("control", "Control")):
        (container,) = [c for c in ax.containers if c.get_label() == label]
        line = container.lines[0]
        expected = 100 * (pooled.loc[arm, "numerator"] / pooled.loc[arm, "denominator"]).to_numpy()
        np.testing.assert_allclose(line.get_ydata(), expected)
        assert line.get_color().lower() == ARM_COLOURS[arm].lower()
        assert len(_errorbar_segments(ax, label)) == 6  # one CI per year
    (window,) = [p for p in ax.patches if p.get_gid() == "intervention-window"]
    assert (window.get_x(), window.get_x() + window.get_width()) == pytest.approx((2009.5, 2011.5))
    np.testing.assert_allclose(_line(ax, "national").get_ydata(), 100 * national["rate"].to_numpy())


@pytest.mark.fixture
def test_plot_trends_errors_name_the_problem(panels):
    by_year, _ = panels
    with pytest.raises(ValueError, match="'denominator'"):
        plot_trends(by_year.drop(columns="denominator"))
    with pytest.raises(ValueError, match="'cluster', 'wilson'"):
        plot_trends(by_year, ci="bootstrap")
    two = pd.concat([by_year, by_year.assign(outcome="nsclc_resection")])
    with pytest.raises(ValueError, match="several outcomes"):
        plot_trends(two)
    ax = plot_trends(two, outcome="nsclc_resection", labels=LABELS)
    assert ax.get_ylabel() == "Surgical resection in NSCLC (%)"


# --------------------------------------------------------------------------- event study
@pytest.mark.fixture
def test_plot_event_study_draws_years_reference_and_window(event_frame):
    ax = plot_event_study(event_frame, pretrend_p=0.4123, label="Any anti-cancer treatment")
    segments = _errorbar_segments(ax, "Estimate")
    assert len(segments) == len(event_frame) - 1  # every year but the reference
    (container,) = [c for c in ax.containers if c.get_label() == "Estimate"]
    not_ref = event_frame.loc[event_frame["year"] != 2009]
    np.testing.assert_allclose(container.lines[0].get_ydata(), 100 * not_ref["estimate"])  # percentage points
    np.testing.assert_allclose([s[:, 1].min() for s in segments], 100 * not_ref["ci_low"])
    ref = _line(ax, "event-study-reference")
    assert list(ref.get_xdata()) == [2009] and list(ref.get_ydata()) == [0.0]
    assert _line(ax, "zero-line").get_ydata()[0] == 0.0
    (window,) = [p for p in ax.patches if p.get_gid() == "intervention-window"]
    assert (window.get_x(), window.get_x() + window.get_width()) == pytest.approx((2009.5, 2011.5))
    assert "pre-trend test p = 0.412" in ax.get_title()
    assert ax.get_title().startswith("Any anti-cancer treatment")
    assert "percentage points" in ax.get_ylabel()


@pytest.mark.fixture
def test_plot_event_study_checks_reference_row(event_frame):
    with pytest.raises(ValueError, match="reference_year=2010"):
        plot_event_study(event_frame, reference_year=2010)
    with pytest.raises(ValueError, match="'period'"):
        plot_event_study(event_frame.drop(columns="period"))
    ax = plot_event_study(event_frame, scale_pp=False)
    (container,) = [c for c in ax.containers if c.get_label() == "Estimate"]
    np.testing.assert_allclose(container.lines[0].get_ydata(), event_frame.loc[event_frame["year"] != 2009, "estimate"])
    assert ax.get_title() == ""


# --------------------------------------------------------------------------- forest
def _right_column(ax) -> list[str]:
    ax.figure.canvas.draw()
    (side,) = ax.child_axes
    return [t.get_text() for t in side.get_yticklabels()]


@pytest.mark.fixture
def test_plot_forest_risk_difference(effects):
    ax = plot_forest(effects, labels=LABELS)
    rd = effects.loc[effects["scale"] == "risk_difference"]
    segments = []
    for estimator in rd["estimator"].unique():   # legend labels are the registry's words, not code names
        segments += _errorbar_segments(ax, ESTIMATOR_LABELS.get(estimator, estimator))
    assert {c.get_label() for c in ax.containers} == {"ANCOVA (primary)", "Difference in differences"}
    assert len(segments) == len(rd)  # one CI per row
    x_points = np.concatenate([c.lines[0].get_xdata() for c in ax.containers])
    np.testing.assert_allclose(np.sort(x_points), np.sort(100 * rd["estimate"].to_numpy()))
    assert [t.get_text() for t in ax.get_yticklabels()] == [LABELS["active_treatment"], LABELS["nsclc_resection"]]
    assert _line(ax, "null-line").get_xdata()[0] == 0.0
    assert ax.get_xscale() == "linear" and "percentage points" in ax.get_xlabel()
    texts = _right_column(ax)
    assert texts[-1].startswith("Estimate [95% CI]") and "p adj. (holm)" in texts[-1]
    assert texts[0].split()[0] == "1.2" and texts[0].split()[-2:] == ["0.210", "0.420"]
    assert "<0.001" in texts[2] and "0.001" in texts[2]  # raw and Holm-adjusted p of resection


@pytest.mark.fixture
def test_plot_forest_odds_ratio_on_log_axis(effects):
    ax = plot_forest(effects, scale="odds_ratio", show_p=False)
    lor = effects.loc[effects["scale"] == "log_odds_ratio"]
    assert ax.get_xscale() == "log"
    (container,) = ax.containers
    np.testing.assert_allclose(container.lines[0].get_xdata(), np.exp(lor["estimate"]))
    (segments,) = [container.lines[2][0].get_segments()]
    np.testing.assert_allclose([s[:, 0].max() for s in segments], np.exp(lor["ci_high"]))
    assert _line(ax, "null-line").get_xdata()[0] == 1.0
    texts = _right_column(ax)
    assert texts[0].startswith("1.11 [")  # exp(0.10) = 1.105
    assert all(" p" not in t for t in texts)
    # without the labels mapping, the outcome names are used
    assert [t.get_text() for t in ax.get_yticklabels()] == ["active_treatment", "nsclc_resection"]


@pytest.mark.fixture
def test_plot_forest_errors_name_the_problem(effects):
    with pytest.raises(ValueError, match="'ci_high'"):
        plot_forest(effects.drop(columns="ci_high"))
    with pytest.raises(ValueError, match="'log_hazard_ratio'"):
        plot_forest(effects, scale="hazard_ratio")
    with pytest.raises(ValueError, match="'risk_difference', 'odds_ratio'"):
        plot_forest(effects, scale="percent")


# --------------------------------------------------------------------------- funnel
@pytest.mark.fixture
def test_plot_funnel_binomial_limits_and_points(panels):
    _, by_period = panels
    fig = plot_funnel(by_period, overdispersion=False, labels=LABELS)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig.get_suptitle() == LABELS["active_treatment"]
    for ax, period in zip(fig.axes, ("pre", "post")):
        rows = by_period.loc[by_period["period"] == period]
        offsets = [c.get_offsets() for c in ax.collections if str(c.get_gid()).startswith("funnel-points-")]
        assert sum(len(o) for o in offsets) == len(rows) == 80  # one point per trust
        p0 = rows["numerator"].sum() / rows["denominator"].sum()
        assert _line(ax, "funnel-target").get_ydata()[0] == pytest.approx(100 * p0)
        for level in (0.95, 0.998):
            for side in ("lower", "upper"):
                line = _line(ax, f"funnel-binomial-{side}-{level:g}")
                n = line.get_xdata()
                expected = funnel_limits(p0, n, levels=(level,))[side].to_numpy()
                np.testing.assert_allclose(line.get_ydata(), 100 * expected)
        # a chosen n, by the interpolation formula: 99.8% upper limit at n = 200 if on the grid
        line = _line(ax, "funnel-binomial-upper-0.998")
        n = line.get_xdata()[len(line.get_xdata()) // 2]
        r = stats.binom.ppf(0.999, n, p0)
        alpha = (stats.binom.cdf(r, n, p0) - 0.999) / stats.binom.pmf(r, n, p0)
        assert line.get_ydata()[len(line.get_xdata()) // 2] == pytest.approx(100 * (r - alpha) / n)
        assert not [line for line in ax.lines if str(line.get_gid()).startswith("funnel-overdispersed")]


@pytest.mark.fixture
def test_plot_funnel_overdispersed_limits_use_estimated_tau2(panels):
    _, by_period = panels
    fig = plot_funnel(by_period, periods=("post",), national_rate=0.6)
    (ax,) = fig.axes
    rows = by_period.loc[by_period["period"] == "post"]
    od = estimate_tau2(rows["rate"], rows["denominator"], 0.6)
    assert od.tau2 > 0
    line = _line(ax, "funnel-overdispersed-upper-0.95")
    n = line.get_xdata()
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(line.get_ydata(), 100 * np.clip(0.6 + z * np.sqrt(0.24 / n + od.tau2), 0, 1))
    _line(ax, "funnel-binomial-upper-0.998")  # the unadjusted limits are kept for comparison
    assert "\u03c4 =" in ax.get_title() and "\u03c6 =" in ax.get_title()
    legend_texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("Binomial limits" in t for t in legend_texts)
    colours = {c.get_gid(): c.get_facecolor()[0][:3] for c in ax.collections}
    assert colours["funnel-points-intervention"] == pytest.approx(matplotlib.colors.to_rgb(ARM_COLOURS["intervention"]))


@pytest.mark.fixture
def test_plot_funnel_errors_name_the_problem(panels):
    by_year, by_period = panels
    with pytest.raises(ValueError, match="'period'"):
        plot_funnel(by_year)
    with pytest.raises(ValueError, match="'pre', 'during', 'post'"):
        plot_funnel(by_period, periods=("baseline",))
    with pytest.raises(ValueError, match="more than once"):
        plot_funnel(pd.concat([by_period, by_period]))


# --------------------------------------------------------------------------- caterpillar and randomisation
@pytest.mark.fixture
def test_plot_caterpillar_sorted_with_arm_colours():
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {"trust_id": [f"T{i:02d}" for i in range(80)], "arm": ["intervention"] * 30 + ["control"] * 50,
         "mode": rng.normal(0, 0.3, 80), "se": 0.1}
    )
    frame["ci_low"], frame["ci_high"] = frame["mode"] - 0.2, frame["mode"] + 0.2
    ax = plot_caterpillar(frame)
    points = []
    for arm, label in (("intervention", "Intervention"), ("control", "Control")):
        (container,) = [c for c in ax.containers if c.get_label() == label]
        assert container.lines[0].get_color().lower() == ARM_COLOURS[arm].lower()
        assert len(container.lines[2][0].get_segments()) == (frame["arm"] == arm).sum()
        points.append(np.column_stack([container.lines[0].get_xdata(), container.lines[0].get_ydata()]))
    points = np.concatenate(points)
    points = points[np.argsort(points[:, 0])]
    assert len(points) == 80
    np.testing.assert_allclose(points[:, 1], np.sort(frame["mode"]))  # ranked by mode


@pytest.mark.fixture
def test_plot_randomisation_histogram_line_and_p():
    draws = np.random.default_rng(6).normal(0, 1, 2000)
    ax = plot_randomisation(1.8, draws, p_value=0.0712, label="DiD (percentage points)")
    assert sum(p.get_height() for p in ax.patches) == 2000
    assert list(_line(ax, "observed-line").get_xdata()) == [1.8, 1.8]
    (ptext,) = [t for t in ax.texts if t.get_gid() == "p-value"]
    assert ptext.get_text() == "p = 0.071"
    assert ax.get_xlabel() == "DiD (percentage points)"
    ax2 = plot_randomisation(0.5, draws)
    assert not [t for t in ax2.texts if t.get_gid() == "p-value"]
    with pytest.raises(ValueError, match="draws"):
        plot_randomisation(0.5, [np.nan, 1.0])


@pytest.mark.fixture
def test_plot_randomisation_of_a_ratio_has_plain_ratio_ticks():
    """Waiting times: the ratio of geometric means on a log axis labelled 0.9, 1, 1.1 (not 9 x 10^-1, 10^0)."""
    draws = np.exp(np.random.default_rng(6).normal(0, 0.05, 4000))
    ax = plot_randomisation(1.002, draws, p_value=0.98, label="ratio", log_scale=True)
    assert ax.get_xscale() == "log"
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert "1" in ticks and "0.9" in ticks and not any("10^" in t or "times" in t for t in ticks), ticks
    assert not [t for t in ax.get_xticklabels(minor=True) if t.get_text()]
    with pytest.raises(ValueError, match="positive statistic"):
        plot_randomisation(-0.1, draws - 1, log_scale=True)


@pytest.mark.fixture
def test_plots_draw_on_the_given_axes(panels, effects, event_frame):
    by_year, _ = panels
    fig, axes = plt.subplots(1, 3)
    assert plot_trends(by_year, ax=axes[0]) is axes[0]
    assert plot_forest(effects, ax=axes[1]) is axes[1]
    assert plot_event_study(event_frame, ax=axes[2]) is axes[2]
    assert len(plt.get_fignums()) == 1  # no extra figure was created


# --------------------------------------------------------------------------- saving
def _build_figure():
    with style(size="single"):
        fig, ax = plt.subplots()
        ax.plot([2008, 2013], [0.55, 0.63], color=ARM_COLOURS["control"], label="Control")
        ax.fill_between([2009.5, 2011.5], 0.5, 0.7, color="0.9")
        ax.set_title("Determinism \u2212 \u03c4")
        ax.legend()
    return fig


@pytest.mark.fixture
def test_save_figure_is_byte_identical(tmp_path):
    fig = _build_figure()
    first = save_figure(fig, tmp_path / "a" / "figure")
    second = save_figure(fig, tmp_path / "b" / "figure")
    rebuilt = save_figure(_build_figure(), tmp_path / "c" / "figure")
    assert [p.name for p in first] == ["figure.png", "figure.pdf", "figure.svg"]
    for a, b, c in zip(first, second, rebuilt):
        assert a.exists() and a.stat().st_size > 0
        assert a.read_bytes() == b.read_bytes() == c.read_bytes(), a.suffix
    assert b"CreationDate" not in first[1].read_bytes()
    assert b"<dc:date>" not in first[2].read_bytes()


_BUILD_AND_SAVE = textwrap.dedent("""
    import sys, matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rp2pr_eval.presentation.figures import save_figure, style
    from rp2pr_eval.presentation.figures.style import ARM_COLOURS
    with style(size="single"):
        fig, ax = plt.subplots()
        ax.plot([2008, 2013], [0.55, 0.63], color=ARM_COLOURS["control"], label="Control")
        ax.fill_between([2009.5, 2011.5], 0.5, 0.7, color="0.9")
        ax.set_title("Determinism \\u2212 \\u03c4")
        ax.legend()
    save_figure(fig, sys.argv[1])
""")


@pytest.mark.fixture
def test_save_figure_is_byte_identical_across_processes_and_after_display(tmp_path):
    """A new process, and a figure first drawn for display at another dpi, give the same bytes.

    Fails without the layout settling in save_figure: constrained layout moves the
    axes a little on every draw, so the first save of a figure differed from later ones.
    """
    subprocess.run([sys.executable, "-c", _BUILD_AND_SAVE, str(tmp_path / "p" / "figure")], check=True)
    displayed = _build_figure()
    displayed.set_dpi(72)
    displayed.canvas.draw()            # what an inline display does before any save
    displayed.set_dpi(100)
    here = save_figure(displayed, tmp_path / "h" / "figure")
    for path in here:
        assert path.read_bytes() == (tmp_path / "p" / path.name).read_bytes(), path.suffix


@pytest.mark.fixture
def test_a_saved_figure_is_shown_from_its_png_until_it_changes(tmp_path):
    """The inline display of a figure just saved is the saved PNG scaled to the display resolution
    (no fifth drawing); any change afterwards draws the figure afresh, so the display is never stale."""
    import io

    from PIL import Image

    from rp2pr_eval.presentation.figures.canvas import DISPLAY_DPI, new_figure

    with style(size="single"):
        fig = new_figure()
        ax = fig.add_subplot()
        ax.plot([2008, 2013], [0.55, 0.63], color=ARM_COLOURS["control"])
        ax.set_title("before")
    (png_path,) = save_figure(fig, tmp_path / "figure", formats=("png",))
    saved = Image.open(png_path)
    shown = fig._repr_png_()
    scaled = saved.resize((round(saved.width * DISPLAY_DPI / 300), round(saved.height * DISPLAY_DPI / 300)),
                          Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(shown))), np.asarray(scaled))   # from the file
    ax.set_title("after")
    changed = fig._repr_png_()
    assert changed != shown and Image.open(io.BytesIO(changed)).size == scaled.size
    fresh = io.BytesIO()
    fig.savefig(fresh, format="png", dpi=DISPLAY_DPI, facecolor="white")
    assert changed == fresh.getvalue()                     # drawn again, with the new title


@pytest.mark.fixture
def test_save_figure_restores_the_layout_engine(tmp_path):
    fig = _build_figure()
    engine = fig.get_layout_engine()
    flags = [ax.get_in_layout() for ax in fig.get_axes()]
    save_figure(fig, tmp_path / "figure", formats=("png",))
    assert fig.get_layout_engine() is engine
    assert [ax.get_in_layout() for ax in fig.get_axes()] == flags
    with style(size="single"):
        plain, ax = plt.subplots(layout="none")
        ax.plot([0, 1])
    first = save_figure(plain, tmp_path / "plain1", formats=("png", "pdf"))
    second = save_figure(plain, tmp_path / "plain2", formats=("png", "pdf"))
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


@pytest.mark.fixture
def test_save_figure_rejects_invalid_options(tmp_path):
    fig = _build_figure()
    with pytest.raises(ValueError, match="extension"):
        save_figure(fig, tmp_path / "figure.png")
    with pytest.raises(ValueError, match="'png', 'pdf', 'svg'"):
        save_figure(fig, tmp_path / "figure", formats=("tiff",))
    with pytest.raises(ValueError, match="dpi"):
        save_figure(fig, tmp_path / "figure", dpi=0)
    assert save_figure(fig, tmp_path / "only", formats=("svg",)) == [tmp_path / "only.svg"]


@pytest.mark.fixture
def test_plot_forest_uses_label_column_when_no_mapping(effects):
    labelled = effects.assign(label=effects["outcome"].map({"active_treatment": "Treated", "nsclc_resection": "Resected"}))
    ax = plot_forest(labelled)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Treated", "Resected"]
    ax = plot_forest(labelled, labels={"active_treatment": "From mapping"})
    assert [t.get_text() for t in ax.get_yticklabels()] == ["From mapping", "Resected"]
