"""validate-methods: seeded Monte Carlo size/coverage/power of the cheap methods, backends, CLI, failures.

The full study (every method at full ILCOP volumes) is too slow for ``make test``;
``docs/methods/validation.md`` gives its command and results.
"""
from __future__ import annotations

import argparse
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import rp2pr_eval as rp
from rp2pr_eval.cli import main as cli_main
from rp2pr_eval.errors import ParameterError
from rp2pr_eval.inference import method_study as val

pytestmark = pytest.mark.simulation

SMALL = val.SMALL_SIMULATE_KWARGS
VALID = ("did_aggregate_cr2_pair", "ancova_cr2_pair", "ancova_wild", "ancova_ri")  # canonical order
TINY = dict(effect_reps=2, methods=("did_aggregate_cr1_trust", "ancova_cr2_pair", "ancova_wild", "ancova_ri"),
            seed=7, simulate_kwargs=SMALL, n_draws=99, n_boot=99)


def _parser() -> argparse.ArgumentParser:
    from rp2pr_eval import cli

    return cli.build_parser()


@pytest.fixture(scope="module")
def tiny_serial() -> tuple[pd.DataFrame, pd.DataFrame]:
    reps = val.run_replicates(4, backend="serial", **TINY)
    return reps, val.summarise(reps)


# ---------------------------------------------------------------- the seeded Monte Carlo check
def test_size_coverage_and_power_of_the_valid_cheap_methods():
    """80 null + 40 effect ILCOP trials (reduced volumes): the methods that claim validity hold size.

    Size ≤ 0.05 + 2.6 · √(0.05 · 0.95 / 80) ≈ 0.113 (one-sided 99.5 % MC limit); not absurdly
    conservative: the mean null p-value is within 0.5 ± 3 · √(1/12/80) of a uniform's; 95 % CI coverage
    of the truth ≥ 0.90 over all 120 runs (2.5 MC SEs below 0.95) and, in the 40 effect runs alone (truth =
    the stored risk difference), ≥ 0.95 − 2.6 · √(0.05 · 0.95 / 40) ≈ 0.86; power under a 0.3 logit effect > size.
    """
    reps = val.run_replicates(80, effect_reps=40, methods=VALID, seed=2024, backend="serial",
                              simulate_kwargs=SMALL, n_draws=499, n_boot=399)
    s = val.summarise(reps).set_index("method")
    assert list(s.index) == list(VALID)
    assert (s["failures"] == 0).all() and (s["n_null"] == 80).all() and (s["n_effect"] == 40).all()
    limit = 0.05 + 2.6 * math.sqrt(0.05 * 0.95 / 80)
    null = reps[reps["scenario"] == "no_effect"]
    for m in VALID:
        assert s.loc[m, "size"] <= limit, (m, s.loc[m, "size"])
        mean_p = null.loc[null["method"] == m, "p_value"].mean()
        assert abs(mean_p - 0.5) <= 3 * math.sqrt(1 / 12 / 80), (m, mean_p)
        pooled = (s.loc[m, "coverage"] * 40 + s.loc[m, "coverage_null"] * 80) / 120
        assert pooled >= 0.90, (m, pooled)
        assert s.loc[m, "coverage"] >= 0.95 - 2.6 * math.sqrt(0.05 * 0.95 / 40), (m, s.loc[m, "coverage"])
        assert s.loc[m, "power"] > s.loc[m, "size"], m
        assert s.loc[m, "size_mcse"] == pytest.approx(math.sqrt(s.loc[m, "size"] * (1 - s.loc[m, "size"]) / 80))
    # ANCOVA estimates are on the risk-difference scale and centred on the stored truth
    assert abs(s.loc["ancova_cr2_pair", "bias"]) < 3 * s.loc["ancova_cr2_pair", "bias_mcse"] + 1e-3


# ---------------------------------------------------------------- arithmetic of the summary
@pytest.mark.fixture
def test_summary_arithmetic_by_hand():
    rows = []
    for i, (p, lo, hi) in enumerate([(0.01, -1, 1), (0.2, 0.5, 1), (0.5, -1, 1), (0.04, -1, 1)]):
        rows.append({"rep": i, "scenario": "no_effect", "method": "ancova_cr2_pair", "estimate": 0.1 * i, "se": 1.0,
                     "ci_low": lo, "ci_high": hi, "p_value": p, "df": 10.0, "truth": 0.0, "ok": True, "error": "",
                     "seconds": 0.0})
    for i, (est, p) in enumerate([(0.3, 0.01), (0.5, 0.2)]):
        rows.append({"rep": i, "scenario": "effect", "method": "ancova_cr2_pair", "estimate": est, "se": 0.1,
                     "ci_low": est - 0.15, "ci_high": est + 0.15, "p_value": p, "df": 10.0, "truth": 0.4,
                     "ok": True, "error": "", "seconds": 0.0})
    rows.append({**rows[-1], "rep": 2, "ok": False, "estimate": math.nan, "error": "DataError: boom"})
    rows = [{"rd_estimate": math.nan, "rd_ci_low": math.nan, "rd_ci_high": math.nan, "truth_rd": 0.0, **r}
            for r in rows]
    s = val.summarise(pd.DataFrame(rows)).iloc[0]
    assert s["size"] == 0.5 and s["size_mcse"] == pytest.approx(math.sqrt(0.25 / 4))
    assert s["coverage_null"] == 0.75                       # the second interval (0.5, 1) misses 0
    assert s["coverage"] == 1.0 and s["n_effect"] == 2      # both effect intervals hold 0.4; the failure is out
    assert s["bias"] == pytest.approx(0.0) and s["emp_se"] == pytest.approx(np.std([0.3, 0.5], ddof=1))
    assert s["power"] == 0.5 and s["failures"] == 1 and s["first_error"] == "DataError: boom"
    assert math.isnan(s["coverage_rd"]) and math.isnan(s["bias_rd"])   # no marginal risk difference reported
    assert "| ancova, CR2 by pair, Satterthwaite | RD | 0.500 |" in val.render_markdown(val.summarise(pd.DataFrame(rows)))


# ---------------------------------------------------------------- fast path = public estimators
@pytest.mark.equivalence
def test_replicate_equals_the_public_estimators():
    """One replicate's rows equal did_aggregate / ancova / did_twfe / randomisation_test / wild_cluster_bootstrap."""
    methods = val.CHEAP_METHODS
    reps = val.run_replicates(1, effect_reps=0, methods=methods, seed=5, backend="serial", simulate_kwargs=SMALL,
                              n_draws=99, n_boot=99).set_index("method")
    child = np.random.SeedSequence(5).spawn(1)[0]
    data_ss, ri_ss, boot_ss = np.random.SeedSequence(child.entropy, spawn_key=child.spawn_key).spawn(3)
    df = rp.simulate_nlca(seed=np.random.default_rng(data_ss), effects={}, **SMALL)
    o = "active_treatment"
    public = {
        "did_aggregate_cr1_pair": rp.did_aggregate(df, o, vcov="CR1"),
        "did_aggregate_cr1_trust": rp.did_aggregate(df, o, vcov="CR1", cluster="trust_id"),
        "did_aggregate_cr2_pair": rp.did_aggregate(df, o, vcov="CR2"),
        "did_aggregate_cr2_trust": rp.did_aggregate(df, o, vcov="CR2", cluster="trust_id"),
        "ancova_cr2_pair": rp.ancova(df, o, vcov="CR2"),
        "did_twfe_cr1_pair": rp.did_twfe(df, o, vcov="CR1"),
        "ancova_wild": rp.wild_cluster_bootstrap(df, o, "ancova", n_boot=99, seed=np.random.default_rng(boot_ss)),
    }
    for m, e in public.items():
        r = reps.loc[m]
        np.testing.assert_allclose([r.estimate, r.se, r.ci_low, r.ci_high, r.p_value],
                                   [e.estimate, e.se, e.ci_low, e.ci_high, e.p_value], rtol=1e-8, err_msg=m)
    ri = rp.randomisation_test(df, o, "ancova", n_draws=99, seed=np.random.default_rng(ri_ss))
    r = reps.loc["ancova_ri"]
    np.testing.assert_allclose([r.estimate, r.p_value, r.ci_low, r.ci_high],
                               [ri.estimate, ri.p_value, ri.ci_low, ri.ci_high], rtol=1e-8)
    assert (reps["truth"] == 0).all()


@pytest.mark.equivalence
def test_patient_level_rows_equal_the_public_estimators():
    """The score bootstrap and the four block-GEE rows of one replicate equal rp.wild_cluster_bootstrap and
    gee_logistic(cov_struct="block_exchangeable", vcov=...) on the replicate's data; drift off = constant trust
    effects and no pair shocks."""
    from rp2pr_eval.estimators.gee import gee_logistic

    methods = ("did_logistic_score_wild", *val._GEE_BLOCK_SE)
    kw = {**SMALL, **val.NO_DRIFT_SIMULATE_KWARGS}
    reps = val.run_replicates(1, effect_reps=0, methods=methods, seed=5, backend="serial", simulate_kwargs=kw,
                              n_draws=99, n_boot=99).set_index("method")
    child = np.random.SeedSequence(5).spawn(1)[0]
    data_ss, _, boot_ss = np.random.SeedSequence(child.entropy, spawn_key=child.spawn_key).spawn(3)
    df = rp.simulate_nlca(seed=np.random.default_rng(data_ss), effects={}, **kw)
    o, cm = "active_treatment", list(rp.CASE_MIX)
    score = rp.wild_cluster_bootstrap(df, o, "did_logistic", 99, seed=np.random.default_rng(boot_ss), covariates=cm)
    r = reps.loc["did_logistic_score_wild"]
    np.testing.assert_allclose([r.estimate, r.p_value, r.ci_low, r.ci_high],
                               [score.estimate, score.p_value, score.ci_low, score.ci_high], rtol=1e-10)
    for m, vcov in (("gee_block_robust", "robust"), ("gee_block_mancl_derouen", "mancl_derouen"),
                    ("gee_block_kauermann_carroll", "kauermann_carroll"), ("gee_block_fay_graubard", "fay_graubard")):
        e = gee_logistic(df, o, covariates=cm, cov_struct="block_exchangeable", vcov=vcov)
        r = reps.loc[m]
        np.testing.assert_allclose([r.estimate, r.se, r.ci_low, r.ci_high, r.p_value],
                                   [e.estimate, e.se, e.ci_low, e.ci_high, e.p_value], rtol=1e-9, err_msg=m)
        assert not r.fallback
    settings = df.attrs["truth"]["settings"]
    assert settings["trust_autocorrelation"] == 1.0 and settings["pair_shock"] == 0.0


@pytest.mark.fixture
def test_no_drift_holds_each_trust_effect_constant_over_the_years():
    """trust_autocorrelation=1: the AR(1) trust effects do not move between years (drift off)."""
    from rp2pr_eval.synthetic import generator

    innov = np.random.default_rng(3).standard_normal((5, 6))
    flat = generator._ar1(innov, 1.0)
    assert np.array_equal(flat, np.repeat(innov[:, :1], 6, axis=1))
    assert not np.allclose(generator._ar1(innov, 0.7), flat)
    with pytest.raises(ParameterError, match=r"trust_autocorrelation must be in \[0, 1\]"):
        rp.simulate_nlca(seed=1, trust_autocorrelation=1.2)


@pytest.mark.fixture
def test_gee_is_fitted_once_for_both_sandwiches(monkeypatch):
    """The robust row reuses the Mancl–DeRouen fit: same estimate, details["se_robust"], t(G − p)."""
    calls = []

    def fake_gee(patients, outcome, **kwargs):
        calls.append(kwargs["vcov"])
        return SimpleNamespace(estimate=0.2, se=0.12, ci_low=0.2 - 0.12 * 2.08, ci_high=0.2 + 0.12 * 2.08,
                               p_value=0.11, df=21.0, details={"se_robust": 0.1, "converged": True,
                               "risk_difference": {"estimate": 0.03, "ci_low": -0.01, "ci_high": 0.07}})

    monkeypatch.setattr("rp2pr_eval.estimators.gee.gee_logistic", fake_gee)
    truths = {"risk_difference": 0.04, "log_odds_ratio": 0.3}
    rows = {r["method"]: r for r in val._patient_rows(None, "active_treatment", ["gee_robust", "gee_mancl_derouen"],
                                                      truths)}
    assert calls == ["mancl_derouen"]
    robust, md = rows["gee_robust"], rows["gee_mancl_derouen"]
    q = stats.t.ppf(0.975, 21)
    assert robust["se"] == 0.1 and robust["df"] == 21 and robust["ci_low"] == pytest.approx(0.2 - q * 0.1)
    assert robust["p_value"] == pytest.approx(2 * stats.t.sf(2.0, 21)) and math.isnan(robust["rd_estimate"])
    assert md["se"] == 0.12 and md["p_value"] == 0.11 and md["rd_estimate"] == 0.03
    assert robust["truth"] == md["truth"] == 0.3 and md["truth_rd"] == 0.04


@pytest.mark.slow
@pytest.mark.equivalence
def test_gee_robust_row_equals_a_robust_fit():
    """With the real gee_logistic: the robust row equals gee_logistic(vcov="robust") (slow: two GEE fits)."""
    df = rp.simulate_nlca(seed=3, **SMALL)  # 40 pairs: G − p = 21 df with the case-mix
    truths = {"risk_difference": 0.0, "log_odds_ratio": 0.0}
    (row,) = val._patient_rows(df, "active_treatment", ["gee_robust"], truths)
    e = rp.gee_logistic(df, "active_treatment", covariates=rp.CASE_MIX, vcov="robust")
    assert row["ok"], row["error"]
    np.testing.assert_allclose([row["estimate"], row["se"], row["ci_low"], row["ci_high"], row["p_value"], row["df"]],
                               [e.estimate, e.se, e.ci_low, e.ci_high, e.p_value, e.df], rtol=1e-9)


# ---------------------------------------------------------------- backends and reproducibility
def test_serial_and_local_backends_give_identical_tables(tiny_serial):
    reps_serial, summary_serial = tiny_serial
    reps_local = val.run_replicates(4, backend="local", n_jobs=2, **TINY)
    cols = [c for c in reps_serial.columns if c != "seconds"]
    pd.testing.assert_frame_equal(reps_local[cols], reps_serial[cols], check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(val.summarise(reps_local), summary_serial, check_exact=False, rtol=1e-12)


def test_dask_backend_equals_serial(tiny_serial):
    pytest.importorskip("distributed")
    _, summary_serial = tiny_serial
    summary_dask = val.validate_methods(4, backend="dask", n_jobs=1, **TINY)
    pd.testing.assert_frame_equal(summary_dask, summary_serial, check_exact=False, rtol=1e-12)


def test_other_seed_gives_other_results(tiny_serial):
    reps_serial, _ = tiny_serial
    other = val.run_replicates(4, backend="serial", **{**TINY, "seed": 8})
    assert not np.allclose(other["estimate"], reps_serial["estimate"])


# ---------------------------------------------------------------- command line
def test_cli_writes_csv_and_markdown(tmp_path, capsys, tiny_serial):
    _, summary_serial = tiny_serial
    args = _parser().parse_args(["validate-methods", "--reps", "4", "--effect-reps", "2", "--small", "--seed", "7",
                                 "--methods", ",".join(TINY["methods"]), "--ri-draws", "99", "--boot-draws", "99",
                                 "--backend", "serial", "--out", str(tmp_path / "v"), "--quiet"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    csv, md = tmp_path / "v" / "validation.csv", tmp_path / "v" / "validation.md"
    assert csv.is_file() and md.is_file() and (tmp_path / "v" / "replicates.csv").is_file()
    table = pd.read_csv(csv, keep_default_na=False, na_values=[""])
    np.testing.assert_allclose(table[["size", "coverage", "bias", "power"]].to_numpy(float),
                               summary_serial[["size", "coverage", "bias", "power"]].to_numpy(float), rtol=1e-12)
    assert list(table["method"]) == list(summary_serial["method"])
    # scenario labels survive a default CSV round trip ("null" would be read as a missing value)
    assert set(pd.read_csv(tmp_path / "v" / "replicates.csv")["scenario"]) == {"no_effect", "effect"}
    assert "| method | scale | size | MC SE | coverage |" in out and "| method | scale |" in md.read_text()


def test_cli_drift_off_changes_the_generator(tmp_path, capsys, tiny_serial):
    """--drift off: the same seeds without trust x period drift, so other numbers; the settings say so."""
    _, summary_serial = tiny_serial
    args = _parser().parse_args(["validate-methods", "--reps", "4", "--effect-reps", "2", "--small", "--seed", "7",
                                 "--methods", ",".join(TINY["methods"]), "--ri-draws", "99", "--boot-draws", "99",
                                 "--backend", "serial", "--out", str(tmp_path / "v"), "--quiet", "--drift", "off"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "'trust_autocorrelation': 1.0, 'pair_shock': 0.0" in out
    table = pd.read_csv(tmp_path / "v" / "validation.csv")
    assert not np.allclose(table["bias"].to_numpy(float), summary_serial["bias"].to_numpy(float))
    assert "fallbacks" in table.columns


def test_cli_small_defaults_to_cheap_methods():
    args = _parser().parse_args(["validate-methods", "--reps", "2", "--small"])
    assert val.parse_methods(args.methods, args.small) == val.CHEAP_METHODS
    assert val.parse_methods("cheap,mixed_logistic", False) == (*val.CHEAP_METHODS, "mixed_logistic")
    assert args.backend == "local" and args.effect == 0.3 and args.outcome == "active_treatment"


@pytest.mark.fixture
@pytest.mark.parametrize("argv, flag", [
    (["--reps", "0"], "--reps"),
    (["--reps", "2", "--jobs", "0"], "--jobs"),
    (["--reps", "2", "--outcome", "survival_days"], "--outcome"),
    (["--reps", "2", "--methods", "magic"], "--methods"),
    (["--reps", "2", "--scheduler", "tcp://127.0.0.1:8786"], "--scheduler"),
])
def test_cli_errors_name_the_option(argv, flag, capsys, tmp_path):
    assert cli_main(["validate-methods", *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rp2pr-eval: error:") and flag in err and "Traceback" not in err


@pytest.mark.fixture
def test_registered_in_the_package_cli(capsys):
    """`rp2pr-eval validate-methods` parses through the package CLI and reports errors as one line."""
    from rp2pr_eval import cli

    assert cli.main(["validate-methods", "--reps", "3", "--effect-reps", "-1"]) == 2
    assert "--effect-reps must be ≥ 0" in capsys.readouterr().err
    assert cli.main(["validate-methods", "--reps", "2", "--backend", "spark"]) == 2   # argparse choices


# ---------------------------------------------------------------- API errors and failures
@pytest.mark.fixture
@pytest.mark.parametrize("kwargs, match", [
    ({"reps": 0}, "reps must be an integer"),
    ({"reps": 2, "outcome": "days_referral_to_treatment"}, "outcome='days_referral_to_treatment' is not valid"),
    ({"reps": 2, "methods": ["nope"]}, "methods: unknown"),
    ({"reps": 2, "methods": "ancova_ri"}, "methods must be a list"),
    ({"reps": 2, "backend": "spark"}, "backend='spark' is not valid"),
    ({"reps": 2, "client": object()}, "client is only used with backend='dask'"),
    ({"reps": 2, "simulate_kwargs": {"bogus": 1}}, r"simulate_kwargs: unknown key\(s\) \['bogus'\]"),
    ({"reps": 2, "effect": float("nan")}, "effect must be a finite number"),
    ({"reps": 2, "n_jobs": 0}, "n_jobs must be an integer"),
])
def test_parameter_errors(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        val.validate_methods(**kwargs)


@pytest.mark.fixture
def test_a_failing_estimator_is_counted_not_fatal(monkeypatch):
    def broken(*args, **kwargs):
        raise rp.DataError("GEE did not converge on a large cluster")

    monkeypatch.setattr("rp2pr_eval.estimators.gee.gee_logistic", broken)
    summary = val.validate_methods(2, effect_reps=1, methods=("ancova_cr2_pair", "gee_robust", "gee_mancl_derouen"),
                                   backend="serial", simulate_kwargs=SMALL).set_index("method")
    assert summary.loc["ancova_cr2_pair", "failures"] == 0
    for m in ("gee_robust", "gee_mancl_derouen"):
        assert summary.loc[m, "failures"] == 3 and summary.loc[m, "n_null"] == 0
        assert "did not converge on a large cluster" in summary.loc[m, "first_error"]
        assert math.isnan(summary.loc[m, "size"])
    assert "| – |" in val.render_markdown(summary.reset_index())
