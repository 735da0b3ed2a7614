"""Trust-level analysis from a trust panel, pairs that lost a trust, and case-mix-adjusted rates (issue 14).

* Panel path = patient path: every trust-level estimator, the randomisation test, the wild bootstrap,
  the multiplicity adjustment and the figures' inputs give the same numbers from
  ``rp.trust_panel(patients, outcome, by="audit_year")`` (in memory or through CSV and
  ``rp.load_panel``) as from the patients — to 1e-12, in fact to the last bit (same integer counts).
* ``incomplete_pairs``: ``"drop"`` equals the estimator on the data without the pair; ``"keep"`` equals
  the WLS on the 79 trusts with the one-trust pair as its own cluster and re-randomisation unit.
* ``rates="adjusted"`` equals the same model fitted by hand on the adjusted rates of
  ``rp.case_mix_adjusted_rates``.
"""
from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest

import rp2pr_eval as rp

BINARY = [n for n, e in rp.OUTCOMES.items() if e.kind == "binary"]
FIELDS = ("estimate", "se", "ci_low", "ci_high", "p_value", "df", "n_obs", "n_trusts", "n_clusters")
TRUST_LEVEL = (rp.ancova, rp.did_aggregate, rp.did_twfe, rp.mixed_linear)


def _largest_difference(a: rp.Effect, b: rp.Effect) -> float:
    out = 0.0
    for field in FIELDS:
        x, y = getattr(a, field), getattr(b, field)
        if x is None or y is None:
            assert x is y, field
            continue
        out = max(out, abs(float(x) - float(y)))
    return out


def _stack(patients: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([rp.trust_panel(patients, o, by="audit_year") for o in BINARY], ignore_index=True)


def _via_csv(panel: pd.DataFrame, folder) -> pd.DataFrame:
    path = folder / "trust_panel.csv"
    panel.drop(columns="rate").to_csv(path, index=False)       # published figures: counts only
    return rp.load_panel(path)


@pytest.fixture(scope="module")
def stacked_panel(ilcop_patients):
    return _stack(ilcop_patients)


@pytest.fixture(scope="module")
def small_stacked(small_patients):
    return _stack(small_patients)


@pytest.fixture(scope="module")
def csv_panel(stacked_panel, tmp_path_factory):
    return _via_csv(stacked_panel, tmp_path_factory.mktemp("panel"))


def largest_panel_difference(patients: pd.DataFrame, panel: pd.DataFrame) -> float:
    """Largest |patient path − panel path| over every binary outcome, trust-level estimator and Effect field."""
    worst = 0.0
    for outcome in BINARY:
        for f in TRUST_LEVEL:
            a, b = f(patients, outcome), f(panel, outcome)
            assert a.details["n_patients" if "n_patients" in a.details else "weights"] == \
                b.details["n_patients" if "n_patients" in a.details else "weights"]
            worst = max(worst, _largest_difference(a, b))
        es_a, es_b = rp.event_study(patients, outcome), rp.event_study(panel, outcome)
        assert es_a.years == es_b.years
        for x, y in zip(es_a.effects, es_b.effects):
            worst = max(worst, _largest_difference(x, y))
        worst = max(worst, abs(es_a.pretrend_p - es_b.pretrend_p), abs(es_a.pretrend_statistic - es_b.pretrend_statistic),
                    float(np.max(np.abs(np.asarray(es_a.vcov) - np.asarray(es_b.vcov)))))
    return worst


# --------------------------------------------------------------------------- panel = patients
@pytest.mark.equivalence
def test_every_trust_level_estimator_gives_the_patient_numbers_from_a_panel(small_patients, tmp_path):
    """All binary outcomes × the five trust-level estimators, panel read back from CSV: difference ≤ 1e-12."""
    worst = largest_panel_difference(small_patients, _via_csv(_stack(small_patients), tmp_path))
    assert worst <= 1e-12, worst


@pytest.mark.equivalence
@pytest.mark.slow
def test_every_trust_level_estimator_gives_the_patient_numbers_from_a_panel_ilcop_scale(ilcop_patients, csv_panel):
    worst = largest_panel_difference(ilcop_patients, csv_panel)
    assert worst <= 1e-12, worst


@pytest.mark.equivalence
def test_panel_details(csv_panel):
    e = rp.ancova(csv_panel, "active_treatment")
    assert e.details["data"] == "trust panel"
    assert e.details["n_patients"] == int(csv_panel.loc[csv_panel["outcome"] == "active_treatment"]
                                         .query("audit_year in [2008, 2009, 2012, 2013]")["denominator"].sum())


@pytest.mark.equivalence
def test_randomisation_bootstrap_and_multiplicity_from_a_panel(small_patients, small_stacked):
    effects_p, effects_q, draws_p, draws_q = [], [], [], []
    for outcome in ("active_treatment", "cns_seen", "histo_confirmed"):
        for est in ("ancova", "did_aggregate", "did_twfe"):
            r_p = rp.randomisation_test(small_patients, outcome, est, 500, seed=4)
            r_q = rp.randomisation_test(small_stacked, outcome, est, 500, seed=4)
            assert r_p.p_value == r_q.p_value and r_p.ci_low == pytest.approx(r_q.ci_low, abs=1e-12)
            np.testing.assert_allclose(r_p.draws, r_q.draws, rtol=0, atol=1e-12)
        w_p = rp.wild_cluster_bootstrap(small_patients, outcome, "ancova", 499, seed=2)
        w_q = rp.wild_cluster_bootstrap(small_stacked, outcome, "ancova", 499, seed=2)
        assert _largest_difference(w_p, w_q) <= 1e-12
        effects_p.append(rp.ancova(small_patients, outcome))
        effects_q.append(rp.ancova(small_stacked, outcome))
        draws_p.append(rp.randomisation_test(small_patients, outcome, "ancova", 500, seed=4).draws)
        draws_q.append(rp.randomisation_test(small_stacked, outcome, "ancova", 500, seed=4).draws)
    # a refitted (non-linear-spec) trust-level estimator re-randomises the panel too
    m_p = rp.randomisation_test(small_patients, "active_treatment", rp.mixed_linear, 20, seed=3)
    m_q = rp.randomisation_test(small_stacked, "active_treatment", rp.mixed_linear, 20, seed=3)
    np.testing.assert_allclose(m_p.draws, m_q.draws, rtol=0, atol=1e-12)
    for method in ("holm", "fdr_bh"):
        a = [e.details["p_adjusted"] for e in rp.adjust_pvalues(effects_p, method)]
        b = [e.details["p_adjusted"] for e in rp.adjust_pvalues(effects_q, method)]
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    a = rp.adjust_pvalues(effects_p, "romano_wolf", null_draws=np.column_stack(draws_p))
    b = rp.adjust_pvalues(effects_q, "romano_wolf", null_draws=np.column_stack(draws_q))
    assert [e.details["p_adjusted"] for e in a] == [e.details["p_adjusted"] for e in b]


@pytest.mark.equivalence
def test_figures_read_a_loaded_panel_as_they_read_the_patients_panel(ilcop_patients, csv_panel):
    from rp2pr_eval.data.panel import panel_by_period

    own = rp.trust_panel(ilcop_patients, "active_treatment", by="audit_year")
    loaded = csv_panel.loc[csv_panel["outcome"] == "active_treatment"].reset_index(drop=True)
    pd.testing.assert_frame_equal(rp.figures.trend_rates(own), rp.figures.trend_rates(loaded))
    by_period = rp.trust_panel(ilcop_patients, "active_treatment", by="period")
    derived = panel_by_period(loaded)
    pd.testing.assert_frame_equal(by_period[["trust_id", "numerator", "denominator", "rate"]].reset_index(drop=True),
                                  derived[["trust_id", "numerator", "denominator", "rate"]].reset_index(drop=True))
    assert (by_period["period"].astype(str).to_numpy() == derived["period"].astype(str).to_numpy()).all()
    fig = rp.figures.plot_funnel(derived.loc[derived["outcome"] == "active_treatment"])
    assert len(fig.axes) >= 2


def test_panel_refusals_name_what_is_wrong(ilcop_patients, stacked_panel):
    with pytest.raises(rp.DataError, match="did_logistic is a patient-level model"):
        rp.did_logistic(stacked_panel, "active_treatment")
    with pytest.raises(rp.DataError, match="continuous outcome; a trust panel carries numerator/denominator"):
        rp.ancova(stacked_panel, "days_referral_to_treatment")
    with pytest.raises(rp.DataError, match=r"no rows for outcome 'active_treatment'; it holds \['cns_seen'\]"):
        rp.ancova(stacked_panel.loc[stacked_panel["outcome"] == "cns_seen"], "active_treatment")
    by_period = rp.trust_panel(ilcop_patients, "active_treatment", by="period")
    assert rp.ancova(by_period, "active_treatment").estimate == rp.ancova(ilcop_patients, "active_treatment").estimate
    with pytest.raises(rp.DataError, match="no 'audit_year' column"):
        rp.did_twfe(by_period, "active_treatment")
    with pytest.raises(rp.DataError, match="rates='adjusted' needs the patient table"):
        rp.ancova(stacked_panel, "active_treatment", rates="adjusted")
    gap = stacked_panel.loc[~((stacked_panel["trust_id"] == "T001") & (stacked_panel["audit_year"] >= 2012))]
    with pytest.raises(rp.DataError, match="T001 have no eligible 'active_treatment' patients in the post years"):
        rp.ancova(gap, "active_treatment")
    with pytest.raises(ValueError, match="rates='raw' is not valid; expected one of 'crude', 'adjusted'"):
        rp.ancova(ilcop_patients, "active_treatment", rates="raw")


def test_load_panel_validates(tmp_path, stacked_panel):
    bad = stacked_panel.copy()
    bad.loc[3, "numerator"] = bad.loc[3, "denominator"] + 1
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(rp.DataError, match=r"bad\.csv: trust panel needs 0 ≤ numerator ≤ denominator"):
        rp.load_panel(path)
    path = tmp_path / "no_outcome.csv"
    stacked_panel.drop(columns="outcome").to_csv(path, index=False)
    with pytest.raises(rp.DataError, match=r"lacks column\(s\) \['outcome'\]"):
        rp.load_panel(path)


# --------------------------------------------------------------------------- incomplete pairs
def _lose_a_trust(patients: pd.DataFrame, pair: str) -> tuple[pd.DataFrame, str]:
    trust = sorted(patients.loc[patients["pair_id"] == pair, "trust_id"].unique())[0]
    return patients.loc[patients["trust_id"] != trust].reset_index(drop=True), trust


def test_a_pair_with_one_trust_is_refused_by_default_with_the_choice(ilcop_patients):
    lost, trust = _lose_a_trust(ilcop_patients, "P07")
    with pytest.raises(rp.DataError, match=r"P07 \(1 trust: .*incomplete_pairs='keep'.*incomplete_pairs='drop'"):
        rp.ancova(lost, "active_treatment")
    assert rp.validate_patients(lost, incomplete_pairs="keep") is lost
    with pytest.raises(ValueError, match="incomplete_pairs='all' is not valid; expected one of 'drop', 'keep'"):
        rp.ancova(lost, "active_treatment", incomplete_pairs="all")


@pytest.mark.fixture
def test_drop_equals_the_estimate_on_the_remaining_39_pairs(ilcop_patients):
    lost, _ = _lose_a_trust(ilcop_patients, "P07")
    direct = ilcop_patients.loc[ilcop_patients["pair_id"] != "P07"]
    panel = rp.trust_panel(lost, "active_treatment", by="audit_year", validate=False)
    for f in (*TRUST_LEVEL, rp.did_logistic):
        e = f(lost, "active_treatment", incomplete_pairs="drop")
        assert _largest_difference(e, f(direct, "active_treatment")) <= 1e-12, f.__name__
        assert e.details["incomplete_pairs"]["pairs"] == ["P07"]
        if f is not rp.did_logistic:
            assert _largest_difference(e, f(panel, "active_treatment", incomplete_pairs="drop")) <= 1e-12
    e = rp.ancova(lost, "active_treatment", incomplete_pairs="drop")
    assert e.n_clusters == 39 and e.n_trusts == 78
    assert e.details["n_dropped"]["incomplete_pairs"] == int((lost["pair_id"] == "P07").sum())
    r = rp.randomisation_test(lost, "active_treatment", "ancova", 300, seed=5, incomplete_pairs="drop")
    d = rp.randomisation_test(direct, "active_treatment", "ancova", 300, seed=5)
    assert r.p_value == d.p_value and np.array_equal(r.draws, d.draws)


@pytest.mark.fixture
def test_keep_is_a_one_trust_cluster_in_the_variance(ilcop_patients):
    lost, trust = _lose_a_trust(ilcop_patients, "P07")
    e = rp.ancova(lost, "active_treatment", incomplete_pairs="keep")
    assert (e.n_trusts, e.n_clusters) == (79, 40)
    assert "one-trust clusters" in e.details["incomplete_pairs"]["note"]
    # by hand: trust rates, WLS post ~ treated + pre, CR2 by pair with P07 a cluster of one trust
    p = rp.trust_panel(lost, "active_treatment", by="period", validate=False)
    wide = p.pivot(index="trust_id", columns="period", values="rate").reset_index()
    n_post = p.loc[p["period"] == "post"].set_index("trust_id")["denominator"]
    frame = p.drop_duplicates("trust_id")[["trust_id", "pair_id", "arm"]].merge(wide, on="trust_id")
    frame = frame.assign(treated=(frame["arm"] == "intervention").astype(float),
                         w=frame["trust_id"].map(n_post).astype(float))
    X = np.column_stack([np.ones(len(frame)), frame["pre"], frame["treated"]])
    fit = rp.models.cluster_ols(frame["post"].to_numpy(), X, cluster=frame["pair_id"].to_numpy(),
                                weights=frame["w"].to_numpy(), vcov="CR2", names=["intercept", "baseline", "treated"])
    assert e.estimate == pytest.approx(float(fit.params["treated"]), abs=1e-12)
    assert e.se == pytest.approx(float(fit.bse["treated"]), abs=1e-12)
    assert e.df == pytest.approx(float(fit.df["treated"]), abs=1e-9)
    panel = rp.trust_panel(lost, "active_treatment", by="audit_year", validate=False)
    assert _largest_difference(e, rp.ancova(panel, "active_treatment", incomplete_pairs="keep")) <= 1e-12


@pytest.mark.fixture
def test_keep_counts_the_pair_in_the_re_randomisation(small_patients):
    """12 pairs, 4 treated: exact enumeration of C(12, 4) = 495 assignments when kept, C(11, k) when dropped."""
    lost, _ = _lose_a_trust(small_patients, "P03")
    k_left = int(lost.loc[lost["pair_id"] != "P03"].drop_duplicates("pair_id")["arm"].eq("intervention").sum())
    keep = rp.randomisation_test(lost, "active_treatment", "ancova", 10_000, incomplete_pairs="keep")
    drop = rp.randomisation_test(lost, "active_treatment", "ancova", 10_000, incomplete_pairs="drop")
    assert keep.exact and keep.n_draws == math.comb(12, 4) == 495
    assert drop.exact and drop.n_draws == math.comb(11, k_left)
    boot = rp.wild_cluster_bootstrap(lost, "active_treatment", "ancova", 199, incomplete_pairs="keep")
    assert boot.n_clusters == 12


# --------------------------------------------------------------------------- case-mix-adjusted rates
@pytest.mark.fixture
def test_adjusted_rates_equal_the_models_fitted_by_hand(small_patients):
    outcome = "active_treatment"
    cm = rp.case_mix_adjusted_rates(small_patients, outcome, by="period")
    t = cm.table.assign(period=cm.table["period"].astype(str))
    t = t.loc[t["period"] != "during"]
    # ANCOVA on adjusted rates
    wide = t.pivot(index="trust_id", columns="period", values="adjusted_rate")
    n_post = t.loc[t["period"] == "post"].set_index("trust_id")["denominator"].astype(float)
    trusts = t.drop_duplicates("trust_id").set_index("trust_id").loc[wide.index]
    X = np.column_stack([np.ones(len(wide)), wide["pre"], (trusts["arm"] == "intervention").astype(float)])
    fit = rp.models.cluster_ols(wide["post"].to_numpy(), X, cluster=trusts["pair_id"].to_numpy(),
                                weights=n_post.loc[wide.index].to_numpy(), vcov="CR2",
                                names=["intercept", "baseline", "treated"])
    e = rp.ancova(small_patients, outcome, rates="adjusted")
    assert e.estimate == pytest.approx(float(fit.params["treated"]), abs=1e-12)
    assert e.se == pytest.approx(float(fit.bse["treated"]), abs=1e-12)
    assert e.details["rates"] == "adjusted" and e.details["reference_rate"] == pytest.approx(cm.reference_rate)
    assert abs(e.estimate - rp.ancova(small_patients, outcome).estimate) > 1e-4    # not the crude estimate
    # aggregate DiD on adjusted rates
    T = (t["arm"] == "intervention").to_numpy(float)
    P = (t["period"] == "post").to_numpy(float)
    Xd = np.column_stack([np.ones(len(t)), P, T, T * P])
    fit = rp.models.cluster_ols(t["adjusted_rate"].to_numpy(), Xd, cluster=t["pair_id"].to_numpy(),
                                weights=t["denominator"].to_numpy(float), vcov="CR2",
                                names=["intercept", "post", "treated", "treated:post"])
    d = rp.did_aggregate(small_patients, outcome, rates="adjusted")
    assert d.estimate == pytest.approx(float(fit.params["treated:post"]), abs=1e-12)
    assert d.se == pytest.approx(float(fit.bse["treated:post"]), abs=1e-12)
    # TWFE on adjusted audit-year rates
    y = rp.case_mix_adjusted_rates(small_patients, outcome, by="audit_year").table
    y = y.loc[~y["audit_year"].isin([2010, 2011])].reset_index(drop=True)
    D = ((y["arm"] == "intervention") & y["audit_year"].isin([2012, 2013])).to_numpy(float)
    TD = pd.get_dummies(y["trust_id"]).to_numpy(float)
    YD = pd.get_dummies(y["audit_year"]).to_numpy(float)[:, 1:]
    fit = rp.models.cluster_ols(y["adjusted_rate"].to_numpy(), np.column_stack([D, TD, YD]),
                                cluster=y["pair_id"].to_numpy(), weights=y["denominator"].to_numpy(float), vcov="CR1")
    tw = rp.did_twfe(small_patients, outcome, rates="adjusted")
    assert tw.estimate == pytest.approx(float(np.asarray(fit.params)[0]), abs=1e-12)
    assert tw.se == pytest.approx(float(np.asarray(fit.bse)[0]), abs=1e-12)
    with pytest.raises(rp.DataError, match="rates='adjusted' needs a binary outcome"):
        rp.ancova(small_patients, "days_referral_to_treatment", rates="adjusted")


# --------------------------------------------------------------------------- run options
def test_analyse_outcome_passes_incomplete_pairs_and_rates(small_patients):
    lost, _ = _lose_a_trust(small_patients, "P03")
    analysis = rp.analyse_outcome(lost, "active_treatment", estimators=["ancova", "did_logistic", "randomisation_test"],
                                  incomplete_pairs="keep", rates="adjusted", ri_draws=99)
    direct = rp.ancova(lost, "active_treatment", incomplete_pairs="keep", rates="adjusted")
    assert analysis.effects["ancova"].estimate == direct.estimate and analysis.effects["ancova"].se == direct.se
    assert analysis.effects["did_logistic"].details["incomplete_pairs"]["option"] == "keep"
    assert analysis.effects["randomisation_test"].details["rates"] == "adjusted"
    days = rp.analyse_outcome(lost, "days_referral_to_treatment", estimators=["ancova"], incomplete_pairs="drop",
                              rates="adjusted")
    assert days.effects["ancova"].details["rates"] == "crude"      # adjusted rates are for binary outcomes


def test_run_parameters_take_incomplete_pairs_and_rates(tmp_path):
    from rp2pr_eval.pipeline.config import load_run_config

    from rp2pr_eval import paths

    params = tmp_path / "p"
    shutil.copytree(paths.PACKAGE_DIR.parent / "parameters", params)
    text = (params / "run.yaml").read_text()
    (params / "run.yaml").write_text(text.replace("incomplete_pairs: null", "incomplete_pairs: drop")
                                     .replace("rates: crude", "rates: adjusted")
                                     .replace("data: ../data/synthetic/nlca_patients.csv.gz",
                                              f"data: {paths.PACKAGE_DIR.parent / 'data/synthetic/nlca_patients.csv.gz'}"))
    config = load_run_config(params)
    assert config.analysis.incomplete_pairs == "drop" and config.analysis.rates == "adjusted"
    assert config.incomplete_pairs == "drop"
    assert config.settings_for("active_treatment").to_parameters()["rates"] == "adjusted"
    (params / "run.yaml").write_text(text.replace("rates: crude", "rates: smoothed")
                                     .replace("data: ../data/synthetic/nlca_patients.csv.gz",
                                              f"data: {paths.PACKAGE_DIR.parent / 'data/synthetic/nlca_patients.csv.gz'}"))
    with pytest.raises(rp.ParameterError, match=r"analysis\.'rates' = 'smoothed' is not valid; expected one of \['crude', 'adjusted'\]"):
        load_run_config(params)
