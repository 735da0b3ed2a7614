"""Effect modification by baseline, leave one pair out, placebo checks, the flow diagram and their figures."""
from __future__ import annotations

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest

import rp2pr_eval as rp
from rp2pr_eval.inference.effect_modification import baseline_change_frame
from rp2pr_eval.presentation.disclosure import DisclosurePolicy
from rp2pr_eval.presentation.flow import flow_table

matplotlib.use("Agg", force=False)


@pytest.fixture(scope="module")
def modification(bundled_patients):
    return rp.effect_modification(bundled_patients, "active_treatment", n_draws=2000)


@pytest.fixture(scope="module")
def lopo(small_patients):
    return rp.leave_one_pair_out(small_patients, "active_treatment")


# --------------------------------------------------------------------------- effect modification
@pytest.mark.equivalence
def test_interaction_ancova_equals_statsmodels(bundled_patients, modification):
    import statsmodels.formula.api as smf

    interaction, _ = modification
    f = baseline_change_frame(bundled_patients, "active_treatment")
    f["x"] = (f["baseline"] - f["baseline"].mean()) / 0.1
    fit = smf.wls("post ~ treated * x", data=f, weights=f["n_post"]).fit()
    assert interaction.estimate == pytest.approx(fit.params["treated:x"], abs=1e-12)
    assert interaction.details["effect_at_mean_baseline"]["estimate"] == pytest.approx(fit.params["treated"], abs=1e-12)
    assert interaction.n_clusters == 40 and interaction.vcov == "CR2"


@pytest.mark.fixture
def test_within_pair_contrast_by_hand(bundled_patients, modification):
    _, within = modification
    f = baseline_change_frame(bundled_patients, "active_treatment")
    rows = []
    for pair, g in f.groupby("pair_id"):
        g = g.sort_values("baseline")
        rows.append((g["treated"].iloc[0], g["change"].iloc[0] - g["change"].iloc[1]))
    d = pd.DataFrame(rows, columns=["treated", "contrast"])
    means = d.groupby("treated")["contrast"].mean()
    assert within.estimate == pytest.approx(means[1] - means[0], abs=1e-14)
    assert within.details["control_mean_contrast"] == pytest.approx(means[0], abs=1e-14)
    # HC2 with one row per pair: Var = s1²/n1 + s0²/n0 exactly (unequal-variance two-sample SE)
    s = d.groupby("treated")["contrast"].agg(["var", "size"])
    assert within.se == pytest.approx(np.sqrt((s["var"] / s["size"]).sum()), rel=1e-10)


def test_regression_to_the_mean_shows_in_the_control_arm(modification):
    """Pairs contrast their baselines, so the low trust 'improves more' in control pairs too."""
    interaction, within = modification
    assert within.details["control_mean_contrast"] > 0.02
    assert interaction.details["baseline_slope_control"] < 1        # post regresses towards the mean
    assert within.details["n_pairs"] == 40


@pytest.mark.simulation
def test_randomisation_p_is_uniform_under_the_sharp_null():
    """Relabelling which pairs are 'intervention' in a trial without effect: RI p-values near uniform."""
    ps = []
    for seed in range(12):
        patients = rp.simulate_nlca(seed=100 + seed, n_pairs=16, n_treated_pairs=6, volume_median=60,
                                    volume_clip=(30, 120))
        a, b = rp.effect_modification(patients, "active_treatment", n_draws=500, seed=seed)
        ps += [a.details["ri_p_value"], b.details["ri_p_value"]]
    assert 0.25 < float(np.mean(ps)) < 0.75 and min(ps) > 1 / 501


def test_effect_modification_round_trips_and_refuses_bad_input(bundled_patients, modification):
    for e in modification:
        assert rp.Effect.from_dict(json.loads(json.dumps(e.to_dict()))) == e
    with pytest.raises(ValueError, match="binary"):
        rp.effect_modification(bundled_patients, "days_referral_to_treatment")
    with pytest.raises(ValueError, match="n_draws"):
        rp.effect_modification(bundled_patients, "active_treatment", n_draws=10)


def test_planted_modification_is_recovered():
    """A larger effect for lower-baseline trusts gives a negative interaction (synthetic truth)."""
    patients = rp.simulate_nlca(seed=8, volume_median=300, volume_clip=(200, 500))
    f = baseline_change_frame(patients, "active_treatment")
    low = f.loc[f["low_in_pair"] & (f["treated"] == 1), "trust_id"]
    post = patients["audit_year"].isin([2012, 2013]).to_numpy()
    rng = np.random.default_rng(0)
    flip = patients["trust_id"].isin(low).to_numpy() & post & (patients["active_treatment"] == 0).to_numpy()
    flip &= rng.random(len(patients)) < 0.35            # ≈ +14 pp for the weaker intervention trusts only
    planted = patients.assign(active_treatment=np.where(flip, 1, patients["active_treatment"]))
    a, b = rp.effect_modification(planted, "active_treatment", n_draws=1000)
    assert a.estimate < 0 and a.ci_high < 0
    assert b.estimate > 0.08 and b.ci_low > 0


# --------------------------------------------------------------------------- leave one pair out, placebo
def test_leave_one_pair_out_rows_and_shifts(small_patients, lopo):
    pairs = sorted(small_patients["pair_id"].unique())
    assert sorted(lopo["pair_id"]) == pairs and len(lopo) == 12
    full = rp.ancova(small_patients, "active_treatment")
    assert np.allclose(lopo["full_estimate"], full.estimate)
    pair = lopo["pair_id"].iloc[0]
    direct = rp.ancova(small_patients[small_patients["pair_id"] != pair], "active_treatment")
    assert lopo["estimate"].iloc[0] == pytest.approx(direct.estimate, abs=1e-14)
    assert lopo["shift"].iloc[0] == pytest.approx(direct.estimate - full.estimate, abs=1e-14)
    assert list(lopo["rank"]) == list(range(1, 13))
    assert np.all(np.diff(lopo["shift"].abs()) <= 1e-15)          # largest shifts first


def test_leave_one_pair_out_other_estimator(small_patients):
    frame = rp.leave_one_pair_out(small_patients, "active_treatment", rp.did_aggregate)
    assert set(frame["estimator"]) == {"did_aggregate"} and len(frame) == 12


def test_placebo_in_time_uses_only_pre_years(bundled_patients):
    e = rp.placebo_in_time(bundled_patients, "active_treatment")
    direct = rp.ancova(bundled_patients[bundled_patients["audit_year"].isin([2008, 2009])], "active_treatment",
                       design=rp.StudyDesign(pre_years=(2008,), during_years=(), post_years=(2009,)))
    assert e.estimate == pytest.approx(direct.estimate, abs=1e-15)
    assert e.estimator == "ancova+placebo_in_time"
    assert e.details["placebo_design"] == {"pre_years": [2008], "during_years": [], "post_years": [2009]}


def test_placebo_in_time_refuses_when_the_design_is_too_short(bundled_patients):
    with pytest.raises(rp.ParameterError, match="at least 3 pre-period years for gap=1"):
        rp.placebo_in_time(bundled_patients, "active_treatment", gap=1)
    one = rp.StudyDesign(pre_years=(2009,), during_years=(2010, 2011), post_years=(2012, 2013))
    with pytest.raises(rp.ParameterError, match="one pre year no placebo"):
        rp.placebo_in_time(bundled_patients, "active_treatment", design=one)


def test_placebo_in_time_with_a_gap():
    design = rp.StudyDesign(pre_years=(2008, 2009, 2010), during_years=(2011,), post_years=(2012, 2013))
    patients = rp.simulate_nlca(seed=4, design=design, n_pairs=12, n_treated_pairs=4, volume_median=60,
                                volume_clip=(30, 120))
    e = rp.placebo_in_time(patients, "active_treatment", design=design, gap=1)
    assert e.details["placebo_design"] == {"pre_years": [2008], "during_years": [2009], "post_years": [2010]}


def test_placebo_outcome_is_labelled(small_patients):
    e = rp.placebo_outcome(small_patients, "ps_recorded")
    base = rp.ancova(small_patients, "ps_recorded")
    assert e.estimator == "ancova+placebo_outcome" and e.estimate == base.estimate and "placebo" in e.details


# --------------------------------------------------------------------------- flow diagram
def test_flow_counts(bundled_patients):
    f = rp.flow_counts(bundled_patients, "nsclc_resection")
    by = {(r.stage, r.arm, r.period): r for r in f.itertuples()}
    assert by[("invited", "all", "")].trusts == 156 and by[("agreed", "all", "")].excluded_trusts == 64
    assert by[("eligible", "all", "")].excluded_trusts == 12
    assert (by[("paired", "all", "")].pairs, by[("paired", "all", "")].trusts) == (40, 80)
    assert (by[("randomised", "intervention", "")].pairs, by[("randomised", "intervention", "")].trusts) == (15, 30)
    assert (by[("randomised", "control", "")].pairs, by[("randomised", "control", "")].trusts) == (25, 50)
    p = bundled_patients
    pre_int = p[(p["arm"] == "intervention") & p["audit_year"].isin([2008, 2009])]
    nsclc = (pre_int["histology"] == "NSCLC") & pre_int["nsclc_resection"].notna()
    cell = by[("analysed", "intervention", "pre")]
    assert cell.patients == int(nsclc.sum())
    assert cell.ineligible_patients == int((pre_int["histology"] != "NSCLC").sum())
    assert cell.patients + cell.excluded_patients == len(pre_int)
    assert sum(r.patients for k, r in by.items() if k[0] == "analysed") + \
        sum(r.excluded_patients for k, r in by.items() if k[0] == "analysed") == len(p)


def test_flow_counts_notes_fewer_trusts_than_eligible(small_patients):
    f = rp.flow_counts(small_patients)
    assert f.attrs["notes"] == ["the design lists 80 eligible trusts but the data hold 24"]
    assert int(f.loc[f["stage"] == "paired", "excluded_trusts"].iloc[0]) == 56


def test_flow_table_is_disclosure_controlled(small_patients):
    f = rp.flow_counts(small_patients, "sclc_chemo")
    f.loc[6, "patients"] = 3                       # small counts, as a subset of a real extract could give
    f.loc[7, "missing_outcome_patients"] = 2
    t = flow_table(f)                              # the design's policy: threshold 5
    assert isinstance(t.loc[6, "patients"], str) and isinstance(t.loc[7, "missing_outcome_patients"], str)
    assert t.loc[8, "patients"] == f.loc[8, "patients"]       # large counts shown as they are
    assert t.loc[0, "trusts"] == 156 and t.loc[0, "patients"] is None
    rounded = flow_table(f, policy=DisclosurePolicy.from_preset("nhsd_2018"))
    shown = [v for col in ("patients", "ineligible_patients") for v in rounded[col]
             if isinstance(v, (int, np.integer))]
    assert shown and all(v % 5 == 0 for v in shown)


def test_design_flow_counts_are_validated(tmp_path):
    path = tmp_path / "design.yaml"
    path.write_text("trusts_invited: 50\ntrusts_accepted: 92\n")
    with pytest.raises(rp.ParameterError, match="must not increase"):
        rp.StudyDesign.from_yaml(path)
    path.write_text("trusts_invited: many\n")
    with pytest.raises(rp.ParameterError, match="trusts_invited"):
        rp.StudyDesign.from_yaml(path)
    assert rp.StudyDesign(trusts_invited=None).trusts_invited is None


# --------------------------------------------------------------------------- figures (draw saved results)
def test_figures_draw_from_saved_results(tmp_path, bundled_patients, modification, lopo):
    import matplotlib.pyplot as plt

    es = rp.event_study(bundled_patients, "active_treatment")
    sens = rp.parallel_trends_sensitivity(es, breakdown=False)
    saved = json.loads(json.dumps(sens.to_dict()))
    before = dict(matplotlib.rcParams)
    with rp.figures.style(size="single"):
        ax = rp.figures.plot_sensitivity(saved)
        assert {"robust-sets", "original-ci", "zero-line"} <= {c.get_gid() for c in ax.collections + ax.lines}
        assert ax.get_ylabel() == "Effect (percentage points)" and "Any anti-cancer treatment" in ax.get_title()
        paths = rp.figures.save_figure(ax.figure, tmp_path / "sens", formats=("png", "pdf", "svg"))
        assert all(p.stat().st_size > 0 for p in paths)
        ax2 = rp.figures.plot_effect_modification(json.loads(json.dumps(modification[0].to_dict())))
        assert {"fit-control", "fit-intervention"} <= {ln.get_gid() for ln in ax2.lines}
        ax3 = rp.figures.plot_leave_one_pair_out(lopo.to_dict(orient="records"))
        assert len(ax3.get_yticklabels()) == 12
        saved_flow = json.loads(rp.flow_counts(bundled_patients, "active_treatment").to_json(orient="records"))
        fig = rp.figures.plot_flow_diagram(saved_flow, outcome="active_treatment")
        assert fig._suptitle.get_text() == "Flow of trusts and patients: Any anti-cancer treatment"
        texts = " ".join(t.get_text() for t in fig.axes[0].texts)
        assert "Invited\n156 trusts" in texts and "15 pairs, 30 trusts" in texts and "25 pairs, 50 trusts" in texts
    plt.close("all")
    assert dict(matplotlib.rcParams) == before


def test_figure_inputs_are_checked(lopo):
    with pytest.raises(ValueError, match="ParallelTrendsSensitivity"):
        rp.figures.plot_sensitivity([1, 2])
    with pytest.raises(ValueError, match="effect_modification"):
        rp.figures.plot_effect_modification(_dummy_effect())
    with pytest.raises(ValueError, match="n_named"):
        rp.figures.plot_leave_one_pair_out(lopo, n_named=-1)


def _dummy_effect():
    return rp.Effect(outcome="x", estimator="ancova", estimand="e", scale="risk_difference", estimate=0.0, se=1.0,
                     ci_low=-1.0, ci_high=1.0, p_value=1.0, df=None, n_obs=1, n_trusts=1, n_clusters=None,
                     cluster=None, vcov="CR2")
