"""Simulation-based power (rp2pr_eval.inference.power).

* fixtures: the MDE interpolation on hand-made power curves and the analytic
  MDE against printed t/z quantiles;
* simulation: size at a planted effect of 0 and power at a large effect;
* equivalence: the fast linear_specs + wls path against the public estimators;
* reproducibility: same seed → identical result, whatever the backend
  (serial, joblib/loky, dask.distributed on a loopback LocalCluster), the
  number of workers or the chunking;
* bad options raise ParameterError naming the option.

Small trials (``volume_median`` 20–40) keep the whole module well under a minute
of CPU; the dask cluster only ever listens on 127.0.0.1.
"""
from __future__ import annotations

import functools
import json
import math

import numpy as np
import pandas as pd
import pytest

import rp2pr_eval as rp
from rp2pr_eval.errors import DataError, ParameterError
from rp2pr_eval.inference.power import (
    POWER_COLUMNS,
    MinimumDetectableEffect,
    PowerResult,
    interpolate_mde,
    mde_analytic,
    power_simulation,
)

TINY = {"volume_median": 20, "volume_clip": (10, 40)}
SMALL = {"volume_median": 40, "volume_clip": (20, 80)}
REF_ARGS = dict(design=None, outcome="active_treatment", effects=(0.0, 0.6), n_sims=4, seed=7, simulate_kwargs=TINY)


def assert_same_result(a: PowerResult, b: PowerResult) -> None:
    pd.testing.assert_frame_equal(a.frame, b.frame, check_exact=True)
    pd.testing.assert_frame_equal(a.simulations, b.simulations, check_exact=True)
    assert a.mde == b.mde


@pytest.fixture(scope="module")
def reference() -> PowerResult:
    """A tiny serial run every backend must reproduce exactly."""
    return power_simulation(**REF_ARGS, backend="serial")


def _trial(seed: int, n_sims: int, i: int, effect: float, kwargs: dict) -> pd.DataFrame:
    """Trial i as power_simulation simulates it (common random numbers)."""
    child = np.random.SeedSequence(seed).spawn(n_sims)[i]
    return rp.simulate_nlca(seed=np.random.default_rng(child), effects={"active_treatment": effect}, **kwargs)


# --------------------------------------------------------------------------- fixtures: MDE
@pytest.mark.fixture
def test_mde_interpolates_first_crossing():
    # power crosses 0.8 halfway between 0.2 (0.7) and 0.3 (0.9): MDE 0.25, RD halfway between 0.04 and 0.06
    m = interpolate_mde([0.0, 0.1, 0.2, 0.3], [0.05, 0.4, 0.7, 0.9], [0.0, 0.02, 0.04, 0.06])
    assert m.effect == pytest.approx(0.25, abs=1e-12)
    assert m.risk_difference == pytest.approx(0.05, abs=1e-12)
    assert m.bracket == (0.2, 0.3)
    assert "interpolation" in m.note
    # the grid order does not matter
    assert interpolate_mde([0.3, 0.0, 0.2, 0.1], [0.9, 0.05, 0.7, 0.4], [0.06, 0.0, 0.04, 0.02]) == m
    # 90 % target: exactly at the last grid point
    assert interpolate_mde([0.0, 0.1, 0.2, 0.3], [0.05, 0.4, 0.7, 0.9], target_power=0.9).effect == pytest.approx(0.3)


@pytest.mark.fixture
def test_mde_first_crossing_despite_monte_carlo_wiggle():
    # power 0.82 at 0.2 then 0.79 at 0.3 (noise): the first crossing, (0.1, 0.6) → (0.2, 0.82), is used
    m = interpolate_mde([0.0, 0.1, 0.2, 0.3], [0.05, 0.6, 0.82, 0.79])
    assert m.effect == pytest.approx(0.1 + (0.8 - 0.6) / (0.82 - 0.6) * 0.1, abs=1e-12)
    assert m.risk_difference is None


@pytest.mark.fixture
def test_mde_negative_effects():
    # shorter waits: effects ≤ 0, power rises as the effect becomes more negative
    m = interpolate_mde([0.0, -0.1, -0.2], [0.05, 0.5, 0.9])
    assert m.effect == pytest.approx(-0.1 - 0.75 * 0.1, abs=1e-12)
    assert m.bracket == (-0.1, -0.2)


@pytest.mark.fixture
def test_mde_not_reached_and_reached_at_start():
    m = interpolate_mde([0.0, 0.1, 0.2], [0.05, 0.3, 0.6], [0.0, 0.01, 0.02])
    assert m.effect is None and m.risk_difference is None and m.bracket is None
    assert "not reached" in m.note and "0.600" in m.note
    m = interpolate_mde([0.1, 0.2], [0.85, 0.95], [0.01, 0.02])
    assert m.effect == 0.1 and m.risk_difference == 0.01 and "at most" in m.note
    m = interpolate_mde([-0.2, 0.0, 0.1, 0.2], [0.99, 0.05, 0.5, 0.9])
    assert m.effect == pytest.approx(0.175) and "both signs" in m.note


@pytest.mark.fixture
def test_mde_analytic_against_printed_quantiles():
    # z: 1.959964 + 0.841621 = 2.801585
    assert mde_analytic(1.0) == pytest.approx(2.801585, abs=1e-6)
    assert mde_analytic(0.02) == pytest.approx(0.0560317, abs=1e-7)
    # t(20), printed tables to 3 decimals: 2.086 + 0.860
    assert mde_analytic(1.0, df=20) == pytest.approx(2.946, abs=6e-4)
    # α = 0.01, 90 % power, normal: 2.575829 + 1.281552
    assert mde_analytic(0.5, alpha=0.01, power=0.9) == pytest.approx(0.5 * 3.857381, abs=1e-6)
    np.testing.assert_allclose(mde_analytic(np.array([1.0, 2.0]), df=np.inf), [2.801585, 5.603170], atol=1e-5)


# --------------------------------------------------------------------------- simulation: size and power
@pytest.mark.simulation
def test_size_at_null_within_monte_carlo_limits():
    res = power_simulation(None, "active_treatment", (0.0,), 200, "ancova", seed=2024, simulate_kwargs=TINY,
                           backend="local", n_jobs=2)
    row = res.frame.iloc[0]
    # nominal 0.05, MC SE 0.015 at 200 trials
    assert 0.015 <= row["power"] <= 0.10
    assert row["n_sims"] == 200 and row["n_failed"] == 0
    assert row["power_mcse"] == pytest.approx(math.sqrt(row["power"] * (1 - row["power"]) / 200))
    assert row["risk_difference"] == 0.0  # nothing planted → true RD exactly 0
    assert abs(row["mean_estimate"]) < 3 * row["empirical_se"] / math.sqrt(200)
    assert 0.8 < row["mean_model_se"] / row["empirical_se"] < 1.25
    assert 0.90 <= row["coverage"] <= 0.985


@pytest.mark.simulation
def test_power_near_one_at_large_effect():
    res = power_simulation(None, "active_treatment", (0.0, 1.0), 20, "ancova", seed=3, simulate_kwargs=TINY,
                           backend="serial")
    big = res.frame.set_index("effect").loc[1.0]
    assert big["power"] >= 0.95
    assert 0.10 < big["risk_difference"] < 0.17  # logit +1 at ~50–60 % active treatment
    assert big["mean_estimate"] == pytest.approx(big["risk_difference"], abs=3 * big["empirical_se"] / math.sqrt(20))
    # the MDE lies inside the grid and below the large effect
    assert res.mde.effect is not None and 0.0 < res.mde.effect < 1.0
    assert 0.0 < res.mde.risk_difference < big["risk_difference"]
    assert res.mde.analytic == pytest.approx(
        mde_analytic(res.frame["mean_model_se"].iloc[0], float(np.median(res.simulations["df"][:20]))))


# --------------------------------------------------------------------------- equivalence with the public estimators
@pytest.mark.equivalence
@pytest.mark.parametrize("estimator", ["ancova", "did_aggregate", "did_twfe"])
def test_fast_path_equals_public_estimator(reference, estimator):
    res = power_simulation(**{**REF_ARGS, "n_sims": 2, "effects": (0.6,)}, estimator=estimator, backend="serial",
                           alpha=0.1)
    fn = {"ancova": rp.ancova, "did_aggregate": rp.did_aggregate, "did_twfe": rp.did_twfe}[estimator]
    for i in range(2):
        patients = _trial(7, 2, i, 0.6, TINY)
        e = fn(patients, "active_treatment", vcov="CR2", level=0.9)
        row = res.simulations.iloc[i]
        for key in ("estimate", "se", "p_value", "ci_low", "ci_high", "df"):
            assert row[key] == pytest.approx(getattr(e, key), rel=1e-10, abs=1e-14), key
        assert row["reject"] == float(e.p_value < 0.1)
        assert row["risk_difference"] == patients.attrs["truth"]["risk_difference"]["active_treatment"]
        assert row["target"] == row["risk_difference"]


ARRAY_CASES = [
    ("active_treatment", "ancova", dict(vcov="CR2", cluster="pair_id", weights="denominator"), SMALL),
    ("nsclc_resection", "did_aggregate", dict(vcov="CR1", cluster="trust_id", weights=None), SMALL),
    ("days_referral_to_treatment", "did_twfe", dict(vcov="CR3", cluster=None, weights="denominator"), SMALL),
    ("days_referral_to_treatment", "ancova", dict(vcov="CR1", cluster="pair_id", weights=None), SMALL),
    ("ct_before_bronch", "did_twfe", dict(vcov="CR2", cluster="pair_id", weights=None), SMALL),
    ("sclc_chemo", "ancova", dict(vcov="CR2", cluster="pair_id", weights="denominator"), TINY),  # trusts without SCLC
]


@pytest.mark.equivalence
@pytest.mark.parametrize(("outcome", "estimator", "options", "volumes"), ARRAY_CASES,
                         ids=[f"{o}-{e}" for o, e, _, _ in ARRAY_CASES])
def test_array_path_equals_patient_table_path(outcome, estimator, options, volumes):
    """String estimators simulate only the outcome and aggregate arrays; the numbers equal the patient-table path."""
    from rp2pr_eval.inference import power as pw
    from rp2pr_eval.synthetic.generator import (
        GeneratorSettings,
        SimulatedTrial,
        simulate_arrays,
    )

    cfg, _ = pw.validate_config(None, outcome, (0.3,), 2, estimator, seed=1, alpha=0.05, target_power=0.8,
                          common_random_numbers=True, simulate_kwargs=volumes, **options)
    failures = 0
    for seed in range(4):
        effects = {outcome: 0.3}
        trial = simulate_arrays(np.random.default_rng(seed), cfg.design, effects, GeneratorSettings(**volumes), outcomes=(outcome,))
        assert isinstance(trial, SimulatedTrial) and set(trial.outcomes["y"]) < set(rp.OUTCOMES)
        frame = rp.simulate_nlca(seed=np.random.default_rng(seed), effects=effects, **volumes)
        fast, slow = pw._analyse(trial, 0, seed, 0.3, cfg), pw._analyse(frame, 0, seed, 0.3, cfg)
        assert bool(fast["error"]) == bool(slow["error"]), (fast["error"], slow["error"])
        failures += bool(fast["error"])
        for key in ("risk_difference", "estimate", "se", "df", "p_value", "ci_low", "ci_high", "reject", "covered"):
            assert fast[key] == pytest.approx(slow[key], rel=1e-12, abs=1e-15, nan_ok=True), key
    if outcome == "sclc_chemo":
        assert failures > 0  # the failure path is exercised too
    else:
        assert failures == 0


@pytest.mark.fixture
def test_trial_panel_names_trusts_without_data():
    from rp2pr_eval.inference.power import _trial_panel
    from rp2pr_eval.synthetic.generator import GeneratorSettings, simulate_arrays

    design = rp.StudyDesign()
    trial = simulate_arrays(3, design, {}, GeneratorSettings(**SMALL), outcomes=("active_treatment",))
    assert len(_trial_panel(trial, "active_treatment", "period", design)) == 2 * 80
    y = trial.outcomes["y"]["active_treatment"]
    y[(trial.trust_idx == 4) & np.isin(trial.years[trial.year_idx], design.post_years)] = np.nan
    with pytest.raises(DataError, match=r"trust\(s\) T005 have no eligible 'active_treatment' patients in the post years"):
        _trial_panel(trial, "active_treatment", "period", design)


@pytest.mark.equivalence
def test_callable_estimator_matches_string_path(reference):
    res = power_simulation(**REF_ARGS, estimator=functools.partial(rp.ancova, vcov="CR2"), backend="serial")
    assert res.estimator == "ancova" and res.vcov is None
    pd.testing.assert_frame_equal(res.frame, reference.frame, check_exact=False, rtol=1e-10, atol=1e-14)
    assert res.mde.effect == pytest.approx(reference.mde.effect, rel=1e-10)


# --------------------------------------------------------------------------- reproducibility across backends
@pytest.mark.fixture
def test_same_seed_identical_and_other_seed_differs(reference):
    again = power_simulation(**REF_ARGS, backend="serial", chunk_size=3)
    assert_same_result(reference, again)
    other = power_simulation(**{**REF_ARGS, "seed": 8}, backend="serial")
    assert not np.array_equal(other.simulations["estimate"], reference.simulations["estimate"])


@pytest.mark.fixture
def test_common_random_numbers_share_the_trial(reference):
    sims = reference.simulations
    a, b = sims[sims["effect_index"] == 0], sims[sims["effect_index"] == 1]
    # same trial, same randomisation: the larger planted effect raises every trial's estimate
    assert (b["estimate"].to_numpy() > a["estimate"].to_numpy()).all()
    indep = power_simulation(**REF_ARGS, backend="serial", common_random_numbers=False)
    ia = indep.simulations[indep.simulations["effect_index"] == 0]
    assert np.array_equal(ia["estimate"], a["estimate"]) is False


@pytest.mark.fixture
def test_local_backend_identical_to_serial(reference):
    local = power_simulation(**REF_ARGS, backend="local", n_jobs=2, chunk_size=3)
    assert_same_result(reference, local)
    assert local.timing["backend"] == "local" and local.timing["workers"] == 2


@pytest.mark.fixture
def test_dask_backend_identical_to_serial(reference):
    distributed = pytest.importorskip("distributed")
    # in-process worker, but over TCP on the loopback interface so the address-string path is exercised too
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, host="127.0.0.1",
                                  protocol="tcp://", dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            res = power_simulation(**REF_ARGS, backend="dask", client=client, chunk_size=3, progress=True)
            assert_same_result(reference, res)
            assert client.status == "running"  # a Client passed in is left open
        # a scheduler address string: connected to and closed by power_simulation
        res = power_simulation(**REF_ARGS, backend="dask", client=cluster.scheduler_address)
        assert_same_result(reference, res)


@pytest.mark.slow
@pytest.mark.fixture
def test_dask_backend_own_local_cluster(reference):
    pytest.importorskip("distributed")
    res = power_simulation(**REF_ARGS, backend="dask")  # starts and closes a 2-process LocalCluster on 127.0.0.1
    assert_same_result(reference, res)


# --------------------------------------------------------------------------- result object
@pytest.mark.fixture
def test_result_json_round_trip_and_summary(reference):
    payload = json.loads(json.dumps(reference.to_dict(), allow_nan=False))
    back = PowerResult.from_dict(payload)
    assert_same_result(reference, back)
    assert back.simulate_kwargs == TINY and back.design == reference.design
    assert list(reference.frame.columns) == list(POWER_COLUMNS)
    assert len(reference.simulations) == 8
    text = reference.summary()
    assert isinstance(text, str) and "MDE at 80 % power" in text and "ancova" in text
    assert repr(reference) == text
    assert reference._repr_html_().startswith("<p><b>Simulated power")
    with pytest.raises(ValueError):
        PowerResult.from_dict({"schema": "something else"})
    m = MinimumDetectableEffect(0.8, None, None, None, None, "x")
    assert MinimumDetectableEffect.from_dict(json.loads(json.dumps(m.to_dict()))) == m


def _always_fails(patients, outcome):
    raise DataError("no events")


def _not_an_effect(patients, outcome):
    return 0.1


@pytest.mark.fixture
def test_failed_analyses_are_counted_not_fatal():
    res = power_simulation(None, "active_treatment", (0.0, 0.5), 2, _always_fails, simulate_kwargs=TINY,
                           backend="serial")
    assert res.frame["n_failed"].tolist() == [2, 2] and res.frame["n_sims"].tolist() == [0, 0]
    assert res.frame["power"].isna().all() and res.mde.effect is None
    assert res.simulations["error"].str.contains("DataError: no events").all()
    with pytest.raises(ParameterError, match="estimator must return an Effect"):
        power_simulation(None, "active_treatment", (0.0,), 2, _not_an_effect, simulate_kwargs=TINY,
                         backend="serial")


# --------------------------------------------------------------------------- bad options
BAD = [
    ("estimator", dict(estimator="did_logistic")),
    ("estimator", dict(estimator=3)),
    ("backend", dict(backend="gpu")),
    ("vcov", dict(vcov="HC0")),
    ("cluster", dict(cluster="region")),
    ("weights", dict(weights="patients")),
    ("alpha", dict(alpha=1.5)),
    ("alpha", dict(alpha=True)),
    ("target_power", dict(target_power=0)),
    ("n_sims", dict(n_sims=1)),
    ("n_sims", dict(n_sims=10.0)),
    ("effects", dict(effects=())),
    ("effects", dict(effects=(0.1, 0.1))),
    ("effects", dict(effects=(0.0, float("nan")))),
    ("effects", dict(effects="0.3")),
    ("seed", dict(seed=-1)),
    ("seed", dict(seed=1.5)),
    ("simulate_kwargs", dict(simulate_kwargs={"seed": 1})),
    ("simulate_kwargs", dict(simulate_kwargs={"volumes": 1})),
    ("simulate_kwargs", dict(simulate_kwargs=[("volume_median", 20)])),
    ("n_jobs", dict(n_jobs=0)),
    ("chunk_size", dict(chunk_size=0)),
    ("client", dict(client="tcp://127.0.0.1:1", backend="local")),
    ("outcome", dict(outcome="treated_within_62d")),
    ("outcome", dict(outcome="no_such_outcome")),
    ("survival_days", dict(outcome="survival_days")),
    ("common_random_numbers", dict(common_random_numbers="yes")),
    ("progress", dict(progress=1)),
    ("design", dict(design="2008-2013")),
]


@pytest.mark.fixture
@pytest.mark.parametrize(("name", "kwargs"), BAD, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD)])
def test_bad_options_raise_parameter_error(name, kwargs):
    args = {"n_sims": 2, "backend": "serial", **kwargs}
    with pytest.raises(ParameterError, match=name):
        power_simulation(**args)


@pytest.mark.fixture
def test_bad_client_type_and_analytic_arguments():
    with pytest.raises(ParameterError, match="client"):
        power_simulation(n_sims=2, backend="dask", client=42, simulate_kwargs=TINY)
    with pytest.raises(ParameterError, match="se"):
        mde_analytic(-1.0)
    with pytest.raises(ParameterError, match="df"):
        mde_analytic(1.0, df=0)
    with pytest.raises(ParameterError, match="alpha"):
        mde_analytic(1.0, alpha=0)
    with pytest.raises(ParameterError, match="power"):
        mde_analytic(1.0, power=1.2)
    with pytest.raises(ParameterError, match="target_power"):
        interpolate_mde([0, 1], [0.1, 0.9], target_power=2)
    with pytest.raises(ParameterError, match="same"):
        interpolate_mde([0, 1], [0.1])


@pytest.mark.equivalence
@pytest.mark.parametrize("design", [rp.StudyDesign(intervention_arm="ILCOP", control_arm="usual care"),
                                    rp.StudyDesign(pairing_indicators=("died", "active_treatment"))],
                         ids=["arm-labels", "died-pairing"])
def test_fast_and_callable_paths_agree_for_other_designs(design):
    """Design arm labels and a non-registry pairing indicator behave the same on both paths."""
    args = dict(design=design, outcome="active_treatment", effects=(0.3,), n_sims=3, seed=5,
                simulate_kwargs=SMALL, backend="serial")
    fast = power_simulation(**args, estimator="ancova")
    slow = power_simulation(**args, estimator=functools.partial(rp.ancova, design=design, vcov="CR2"))
    assert fast.frame["n_failed"].tolist() == slow.frame["n_failed"].tolist() == [0]
    for key in ("estimate", "se", "p_value", "risk_difference"):
        np.testing.assert_allclose(fast.simulations[key], slow.simulations[key], rtol=1e-10)
