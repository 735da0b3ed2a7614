"""Monte Carlo validation of every estimator × inference method at the ILCOP design (``validate-methods``).

Each replicate simulates one ILCOP-shaped trial (:func:`rp2pr_eval.simulate_nlca`:
80 trusts, 40 pairs, 15 pairs randomised to the intervention) with no effect
(the *null* scenario) and, from the same random numbers, with a planted
effect on the logit scale (the *effect* scenario), then runs every method
of :data:`METHODS` on both.  Per method the summary gives the empirical size
at 5 % (null runs), the coverage of the 95 % interval of the truth, the bias,
the power (effect runs), Monte Carlo SEs and the number of failures
(Morris, White & Crowther 2019).  ``docs/methods/validation.md`` describes
the design of the study and how the truth is defined on each scale.

Reproducibility: replicate ``i`` draws everything (data, re-randomisations,
bootstrap weights) from child ``i`` of ``numpy.random.SeedSequence(seed)``,
so the results do not depend on the backend (``serial``, ``local`` = joblib
loky processes, ``dask``) or on the number of workers.

Length: a little over 600 lines: the registry of methods, the replicate runner (one fit per
estimator, shared by the methods that differ only in inference), the backends and the summary
are one study; splitting them would scatter the method ids the summary depends on.
"""
from __future__ import annotations

import inspect
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence, get_args

import numpy as np
import pandas as pd

from rp2pr_eval.errors import DataError, ParameterError

__all__ = ["METHODS", "ALL_METHODS", "CHEAP_METHODS", "SMALL_SIMULATE_KWARGS", "NO_DRIFT_SIMULATE_KWARGS", "Method", "validate_methods",
           "run_replicates", "summarise", "render_markdown", "write_outputs", "parse_methods"]

Backend = Literal["local", "serial", "dask"]
ALPHA = 0.05
LEVEL = 0.95
#: Reduced volumes for quick runs (``--small``): ≈ 40 patients per trust-year instead of ≈ 210.
#: Random-intercept terms of the nested GLMM (the batch default; :func:`rp2pr_eval.mixed_logistic`).
NESTED_RANDOM: tuple[str, ...] = ("pair_id", "trust_id", "trust_id:period")
SMALL_SIMULATE_KWARGS: dict[str, Any] = {"volume_median": 40.0, "volume_clip": (20.0, 100.0)}


@dataclass(frozen=True, slots=True)
class Method:
    """One estimator × inference combination of the study."""

    id: str
    label: str
    estimator: str
    inference: str
    scale: Literal["risk_difference", "log_odds_ratio"]
    cheap: bool             # trust-level: seconds per replicate at full volume
    claims_nominal: bool    # the method is meant to give a valid 5 % test with 40 pairs


METHODS: dict[str, Method] = {m.id: m for m in (
    Method("did_aggregate_cr1_pair", "did_aggregate, CR1 by pair, t(G−1)", "did_aggregate", "CR1 pair",
           "risk_difference", True, True),
    Method("did_aggregate_cr1_trust", "did_aggregate, CR1 by trust, t(G−1)", "did_aggregate", "CR1 trust",
           "risk_difference", True, False),
    Method("did_aggregate_cr2_pair", "did_aggregate, CR2 by pair, Satterthwaite", "did_aggregate", "CR2 pair",
           "risk_difference", True, True),
    Method("did_aggregate_cr2_trust", "did_aggregate, CR2 by trust, Satterthwaite", "did_aggregate", "CR2 trust",
           "risk_difference", True, False),
    Method("ancova_cr2_pair", "ancova, CR2 by pair, Satterthwaite", "ancova", "CR2 pair",
           "risk_difference", True, True),
    Method("did_twfe_cr1_pair", "did_twfe, CR1 by pair, t(G−1)", "did_twfe", "CR1 pair",
           "risk_difference", True, True),
    Method("ancova_wild", "ancova, wild cluster bootstrap-t by pair (Rademacher)", "ancova", "WCR Rademacher",
           "risk_difference", True, True),
    Method("ancova_ri", "ancova, randomisation test (estimate)", "ancova", "randomisation",
           "risk_difference", True, True),
    Method("mixed_logistic", "mixed_logistic (GLMM, AGHQ), normal", "mixed_logistic", "model-based, normal",
           "log_odds_ratio", False, False),
    Method("mixed_logistic_nested", "mixed_logistic nested (pair/trust/trust×period, Laplace), CR3 by pair, t(G−1)",
           "mixed_logistic", "CR3 pair (jackknife)", "log_odds_ratio", False, True),
    Method("mixed_logistic_nested_model", "mixed_logistic nested (Laplace), model-based, between-within t(G−2)",
           "mixed_logistic", "model-based, between-within t", "log_odds_ratio", False, False),
    Method("gee_robust", "gee_logistic exchangeable (else independence), robust, t(G−p)", "gee_logistic", "robust sandwich",
           "log_odds_ratio", False, False),
    Method("gee_mancl_derouen", "gee_logistic exchangeable (else independence), Mancl–DeRouen, t(G−p)", "gee_logistic",
           "Mancl–DeRouen", "log_odds_ratio", False, True),
    Method("did_logistic_cr1_pair", "did_logistic, CR1 by pair, t(G−1)", "did_logistic", "CR1 pair",
           "log_odds_ratio", False, True),
    Method("did_logistic_score_wild", "did_logistic, restricted score wild bootstrap by pair (Rademacher)",
           "did_logistic", "score WCR Rademacher", "log_odds_ratio", False, True),
    Method("gee_block_robust", "gee_logistic block exchangeable (trust × period), robust, t(G−p)", "gee_logistic",
           "robust sandwich", "log_odds_ratio", False, False),
    Method("gee_block_mancl_derouen", "gee_logistic block exchangeable, Mancl–DeRouen, t(G−p) (batch default)",
           "gee_logistic", "Mancl–DeRouen", "log_odds_ratio", False, True),
    Method("gee_block_kauermann_carroll", "gee_logistic block exchangeable, Kauermann–Carroll, t(G−p)",
           "gee_logistic", "Kauermann–Carroll", "log_odds_ratio", False, True),
    Method("gee_block_fay_graubard", "gee_logistic block exchangeable, Fay–Graubard, t(G−p)", "gee_logistic",
           "Fay–Graubard", "log_odds_ratio", False, True),
)}
#: The block-exchangeable GEE rows, all from one fit, and the SE in ``details`` each reads.
_GEE_BLOCK_SE: dict[str, str] = {"gee_block_robust": "se_robust", "gee_block_mancl_derouen": "se_mancl_derouen",
                                 "gee_block_kauermann_carroll": "se_kauermann_carroll",
                                 "gee_block_fay_graubard": "se_fay_graubard"}
#: ``drift="off"``: trust effects constant over the years and no pair shocks (no trust × period drift).
NO_DRIFT_SIMULATE_KWARGS: dict[str, Any] = {"trust_autocorrelation": 1.0, "pair_shock": 0.0}
ALL_METHODS: tuple[str, ...] = tuple(METHODS)
CHEAP_METHODS: tuple[str, ...] = tuple(k for k, m in METHODS.items() if m.cheap)

_REPLICATE_COLUMNS = ["rep", "scenario", "method", "estimate", "se", "ci_low", "ci_high", "p_value", "df", "truth",
                      "rd_estimate", "rd_ci_low", "rd_ci_high", "truth_rd", "ok", "fallback", "error", "seconds"]
_SUMMARY_COLUMNS = ["method", "label", "estimator", "inference", "scale", "claims_nominal", "size", "size_mcse",
                    "coverage", "coverage_mcse", "coverage_null", "bias", "bias_mcse", "emp_se", "model_se",
                    "power", "power_mcse", "n_null", "n_effect", "failures", "fallbacks", "coverage_rd", "bias_rd",
                    "first_error"]


# --------------------------------------------------------------------------- one replicate
def _seed_parts(state: tuple[int, tuple[int, ...]]) -> tuple[np.random.SeedSequence, ...]:
    """Data, randomisation and bootstrap seeds of one replicate (rebuilt: the result never depends on state)."""
    entropy, key = state
    return tuple(np.random.SeedSequence(entropy, spawn_key=key).spawn(3))


def _row(method: str, t: Mapping[str, float] | None, truths: Mapping[str, float], error: str = "",
         seconds: float = 0.0, fallback: bool = False) -> dict:
    """One result row; ``truth`` on the method's scale, ``truth_rd`` the stored risk difference; ``fallback``:
    the fit fell back to another working model (GEE: independence), which is not a failure but is counted."""
    t = t or {}
    keys = ("estimate", "se", "ci_low", "ci_high", "p_value", "df", "rd_estimate", "rd_ci_low", "rd_ci_high")
    row = {k: float(t[k]) if t.get(k) is not None else math.nan for k in keys}
    ok = not error and all(math.isfinite(row[k]) for k in ("estimate", "p_value", "ci_low", "ci_high"))
    if not error and not ok:
        error = "non-finite estimate, p-value or interval"
    return {"method": method, **row, "truth": truths[METHODS[method].scale], "truth_rd": truths["risk_difference"],
            "ok": ok, "fallback": bool(fallback), "error": error, "seconds": seconds}


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def _linear_rows(patients, outcome, wanted, truths, ri_seed, boot_seed, n_draws, n_boot) -> list[dict]:
    """Every trust-level method from one :func:`linear_specs` pass (no refitting for RI and wild)."""
    from rp2pr_eval.estimators.did import linear_specs
    from rp2pr_eval.models.linear import wls
    from rp2pr_eval.models.randomisation import randomisation_test_linear
    from rp2pr_eval.models.wild import wild_cluster_bootstrap_linear

    need = sorted({METHODS[m].estimator for m in wanted})
    try:
        specs = linear_specs(patients, outcome, need, cluster="pair_id")
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, never fatal
        return [_row(m, None, truths, _failure(exc)) for m in wanted]
    rows = []
    for m in wanted:
        spec = specs[METHODS[m].estimator]
        start = time.perf_counter()
        try:
            if m == "ancova_ri":
                p = spec.fixed.shape[1]
                r = randomisation_test_linear(
                    spec.y, spec.fixed if p else None, spec.treat_maps(), spec.unit_assignment,
                    coef_index=p + spec.treat_names.index(spec.coef_name), n_draws=n_draws,
                    seed=np.random.default_rng(ri_seed), weights=spec.weights, absorb=spec.absorb,
                    statistic="estimate", cluster=spec.cluster, vcov="CR1", level=LEVEL, ci=True)
                t = {"estimate": r.estimate, "p_value": r.p_value, "ci_low": r.ci_low, "ci_high": r.ci_high}
            elif m == "ancova_wild":
                r = wild_cluster_bootstrap_linear(
                    spec.X, spec.y, coef_index=spec.coef_index, cluster=spec.cluster, weights=spec.weights,
                    n_boot=n_boot, boot_weights="rademacher", seed=np.random.default_rng(boot_seed), level=LEVEL,
                    ci=True)
                t = {"estimate": r.estimate, "se": r.se, "p_value": r.p_value, "ci_low": r.ci_low,
                     "ci_high": r.ci_high}
            else:
                vcov, by = METHODS[m].inference.split()
                cluster = spec.cluster if by == "pair" else spec.trust
                t = wls(spec.X, spec.y, weights=spec.weights, cluster=cluster, vcov=vcov,
                        names=spec.names).t_test(spec.coef_name, level=LEVEL)
            rows.append(_row(m, t, truths, seconds=time.perf_counter() - start))
        except Exception as exc:  # noqa: BLE001
            rows.append(_row(m, None, truths, _failure(exc), time.perf_counter() - start))
    return rows


def _effect_dict(e, *, with_rd: bool = True) -> dict:
    """Numbers of an Effect (and its marginal risk difference from ``details``); non-convergence is a failure."""
    if e.details.get("converged") is False:
        raise DataError("the fit did not converge")
    out = {"estimate": e.estimate, "se": e.se, "ci_low": e.ci_low, "ci_high": e.ci_high, "p_value": e.p_value,
           "df": e.df}
    rd = e.details.get("risk_difference")
    if with_rd and isinstance(rd, Mapping):
        out |= {"rd_estimate": rd.get("estimate"), "rd_ci_low": rd.get("ci_low"), "rd_ci_high": rd.get("ci_high")}
    return out


def _from_se(estimate: float, se: float, df: float) -> dict:
    """t test and interval from an estimate, an SE and t df (GEE's second sandwich from the same fit)."""
    from scipy import stats

    q = float(stats.t.ppf(0.5 + LEVEL / 2, df))
    return {"estimate": estimate, "se": se, "ci_low": estimate - q * se, "ci_high": estimate + q * se,
            "p_value": float(2 * stats.t.sf(abs(estimate / se), df)), "df": df}


def _patient_rows(patients, outcome, wanted, truths) -> list[dict]:
    """Patient-level logistic methods (case-mix adjusted); GEE is fitted once for both sandwiches."""
    from rp2pr_eval.estimators.did import did_logistic
    from rp2pr_eval.estimators.gee import gee_logistic_with_fallback
    from rp2pr_eval.estimators.mixed_logistic import mixed_logistic
    from rp2pr_eval.study.outcomes import CASE_MIX

    rows = []
    if "did_logistic_cr1_pair" in wanted:
        start = time.perf_counter()
        try:
            e = did_logistic(patients, outcome, covariates=CASE_MIX, cluster="pair_id", vcov="CR1")
            rows.append(_row("did_logistic_cr1_pair", _effect_dict(e), truths, seconds=time.perf_counter() - start))
        except Exception as exc:  # noqa: BLE001
            rows.append(_row("did_logistic_cr1_pair", None, truths, _failure(exc), time.perf_counter() - start))
    if "mixed_logistic" in wanted:
        start = time.perf_counter()
        try:
            e = mixed_logistic(patients, outcome, covariates=CASE_MIX, method="aghq")
            rows.append(_row("mixed_logistic", _effect_dict(e), truths, seconds=time.perf_counter() - start))
        except Exception as exc:  # noqa: BLE001
            rows.append(_row("mixed_logistic", None, truths, _failure(exc), time.perf_counter() - start))
    nested = [m for m in ("mixed_logistic_nested", "mixed_logistic_nested_model") if m in wanted]
    if nested:  # one fit for both: the CR3 SE (the default) comes with the model-based one
        start = time.perf_counter()
        try:
            e = mixed_logistic(patients, outcome, covariates=CASE_MIX, random=list(NESTED_RANDOM), method="laplace",
                               vcov="model")
            seconds = time.perf_counter() - start
            model = _effect_dict(e)  # raises when the fit did not converge: both rows are failures
            if "mixed_logistic_nested" in wanted:
                t = _from_se(e.estimate, e.details["robust_se"]["CR3"], e.n_clusters - 1)
                rows.append(_row("mixed_logistic_nested", t, truths, seconds=seconds))
            if "mixed_logistic_nested_model" in wanted:
                rows.append(_row("mixed_logistic_nested_model", model, truths, seconds=seconds))
        except Exception as exc:  # noqa: BLE001
            rows += [_row(m, None, truths, _failure(exc), time.perf_counter() - start) for m in nested]
    gee = [m for m in ("gee_robust", "gee_mancl_derouen") if m in wanted]
    if gee:
        start = time.perf_counter()
        try:
            e = gee_logistic_with_fallback(patients, outcome, covariates=CASE_MIX, cluster="pair_id",
                                           vcov="mancl_derouen")
            md = _effect_dict(e)  # its risk difference uses the Mancl–DeRouen covariance; the robust row has none
            robust = _from_se(e.estimate, float(e.details["se_robust"]), float(e.df))
            seconds = time.perf_counter() - start
            results = {"gee_robust": robust, "gee_mancl_derouen": md}
            fell = "fallback" in e.details
            rows += [_row(m, results[m], truths, seconds=seconds / len(gee), fallback=fell) for m in gee]
        except Exception as exc:  # noqa: BLE001
            seconds = time.perf_counter() - start
            rows += [_row(m, None, truths, _failure(exc), seconds / len(gee)) for m in gee]
    block = [m for m in _GEE_BLOCK_SE if m in wanted]
    if block:  # one block-exchangeable fit (the batch's rule) gives every correction
        start = time.perf_counter()
        try:
            e = gee_logistic_with_fallback(patients, outcome, covariates=CASE_MIX, cluster="pair_id",
                                           cov_struct="block_exchangeable", vcov="mancl_derouen")
            _effect_dict(e)
            seconds = (time.perf_counter() - start) / len(block)
            fell = "fallback" in e.details
            for m in block:
                t = _from_se(e.estimate, float(e.details[_GEE_BLOCK_SE[m]]), float(e.df))
                if m == "gee_block_mancl_derouen":
                    t = _effect_dict(e)      # with its marginal risk difference
                rows.append(_row(m, t, truths, seconds=seconds, fallback=fell))
        except Exception as exc:  # noqa: BLE001
            seconds = (time.perf_counter() - start) / len(block)
            rows += [_row(m, None, truths, _failure(exc), seconds) for m in block]
    return rows


def _score_rows(patients, outcome, wanted, truths, boot_seed, n_boot) -> list[dict]:
    """The restricted score wild bootstrap of did_logistic (Kline & Santos 2012), as rp.wild_cluster_bootstrap."""
    from rp2pr_eval.inference.design_based import wild_cluster_bootstrap
    from rp2pr_eval.study.outcomes import CASE_MIX

    if "did_logistic_score_wild" not in wanted:
        return []
    start = time.perf_counter()
    try:
        e = wild_cluster_bootstrap(patients, outcome, "did_logistic", n_boot, weights="rademacher",
                                   seed=np.random.default_rng(boot_seed), covariates=list(CASE_MIX), level=LEVEL)
        t = {"estimate": e.estimate, "se": e.se, "ci_low": e.ci_low, "ci_high": e.ci_high, "p_value": e.p_value}
        return [_row("did_logistic_score_wild", t, truths, seconds=time.perf_counter() - start)]
    except Exception as exc:  # noqa: BLE001
        return [_row("did_logistic_score_wild", None, truths, _failure(exc), time.perf_counter() - start)]


def _scenario_rows(patients, outcome, wanted, ri_seed, boot_seed, n_draws, n_boot) -> list[dict]:
    truth = patients.attrs["truth"]
    rd = truth["risk_difference"].get(outcome)
    truths = {"risk_difference": math.nan if rd is None else float(rd),
              "log_odds_ratio": float(truth["effects"].get(outcome, math.nan))}
    linear = [m for m in wanted if METHODS[m].cheap]
    patient = [m for m in wanted if not METHODS[m].cheap]
    rows = []
    if linear:
        rows += _linear_rows(patients, outcome, linear, truths, ri_seed, boot_seed, n_draws, n_boot)
    if patient:
        rows += _patient_rows(patients, outcome, patient, truths)
        rows += _score_rows(patients, outcome, patient, truths, boot_seed, n_boot)
    order = {m: i for i, m in enumerate(wanted)}
    return sorted(rows, key=lambda r: order[r["method"]])


def _one_replicate(rep: int, state: tuple[int, tuple[int, ...]], *, outcome: str, effect: float,
                   methods: tuple[str, ...], simulate_kwargs: dict, run_null: bool, run_effect: bool,
                   n_draws: int, n_boot: int) -> list[dict]:
    """All methods on replicate ``rep``: null and/or effect scenario from the same random numbers."""
    from rp2pr_eval.synthetic.generator import simulate_nlca

    data_seed, ri_seed, boot_seed = _seed_parts(state)
    out = []
    scenarios = [("no_effect", {})] * run_null + [("effect", {outcome: effect})] * run_effect
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter from statsmodels; failures are recorded instead
        for scenario, effects in scenarios:
            try:
                patients = simulate_nlca(seed=np.random.default_rng(data_seed), effects=effects, **simulate_kwargs)
            except Exception as exc:  # noqa: BLE001
                nan = {"risk_difference": math.nan, "log_odds_ratio": math.nan}
                rows = [_row(m, None, nan, "simulation failed: " + _failure(exc)) for m in methods]
            else:
                rows = _scenario_rows(patients, outcome, methods, ri_seed, boot_seed, n_draws, n_boot)
            out += [{"rep": rep, "scenario": scenario, **r} for r in rows]
    return out


# --------------------------------------------------------------------------- running
def _check_args(reps, effect_reps, effect, outcome, methods, backend, n_jobs, client, simulate_kwargs, n_draws,
                n_boot) -> tuple[int, int, tuple[str, ...], dict]:
    from rp2pr_eval.study.outcomes import OUTCOMES
    from rp2pr_eval.synthetic.generator import simulate_nlca

    def positive_int(name, value, minimum=1):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ParameterError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
        return int(value)

    reps = positive_int("reps", reps)
    effect_reps = reps if effect_reps is None else positive_int("effect_reps", effect_reps, 0)
    n_draws, n_boot = positive_int("n_draws", n_draws, 19), positive_int("n_boot", n_boot, 19)
    if isinstance(effect, bool) or not isinstance(effect, (int, float, np.floating)) or not math.isfinite(effect):
        raise ParameterError(f"effect must be a finite number (log odds ratio), got {effect!r}")
    binary = [k for k, v in OUTCOMES.items() if v.kind == "binary"]
    if outcome not in binary:
        raise ParameterError(f"outcome={outcome!r} is not valid; expected a binary registry outcome: {', '.join(binary)}")
    if methods is None:
        methods = ALL_METHODS
    elif isinstance(methods, str):
        raise ParameterError(f"methods must be a list of method ids, got the string {methods!r}")
    methods = tuple(dict.fromkeys(methods))
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ParameterError(f"methods: unknown {unknown or 'empty list'}; expected ids from {', '.join(METHODS)}")
    methods = tuple(m for m in ALL_METHODS if m in methods)  # canonical order
    if backend not in get_args(Backend):
        raise ParameterError(f"backend={backend!r} is not valid; expected one of {', '.join(get_args(Backend))}")
    if n_jobs is not None:
        positive_int("n_jobs", n_jobs)
    if client is not None and backend != "dask":
        raise ParameterError(f"client is only used with backend='dask', not backend={backend!r}")
    kw = dict(simulate_kwargs or {})
    allowed = {n for n, p in inspect.signature(simulate_nlca).parameters.items() if p.kind is p.KEYWORD_ONLY}
    bad = sorted(set(kw) - allowed)
    if bad:
        raise ParameterError(f"simulate_kwargs: unknown key(s) {bad}; expected keywords of simulate_nlca: "
                             f"{', '.join(sorted(allowed))}")
    if "volume_clip" in kw:
        kw["volume_clip"] = tuple(kw["volume_clip"])
    return reps, effect_reps, methods, kw


def _run_tasks(fn: Callable, tasks: list[dict], *, backend: str, n_jobs: int, client, scheduler: str | None,
               progress: bool) -> list:
    """Run ``fn(**task)`` for every task and return the results in task order."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(tasks), desc="validate-methods", unit="rep", disable=not progress, file=sys.stderr)
    try:
        if backend == "serial" or (backend == "local" and n_jobs == 1):
            results = []
            for task in tasks:
                results.append(fn(**task))
                bar.update()
            return results
        if backend == "local":
            from joblib import Parallel, delayed

            gen = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator")(delayed(fn)(**t) for t in tasks)
            results = []
            for r in gen:
                results.append(r)
                bar.update()
            return results
        return _run_dask(fn, tasks, n_jobs=n_jobs, client=client, scheduler=scheduler, bar=bar)
    finally:
        bar.close()


def _run_dask(fn, tasks, *, n_jobs, client, scheduler, bar) -> list:
    from distributed import Client, LocalCluster, as_completed

    own_cluster = own_client = None
    try:
        if client is None:
            if scheduler is not None:
                client = own_client = Client(scheduler)
            else:
                own_cluster = LocalCluster(host="127.0.0.1", n_workers=n_jobs, threads_per_worker=1,
                                           dashboard_address=None, processes=True)
                client = own_client = Client(own_cluster)
        futures = [client.submit(fn, pure=False, **t) for t in tasks]
        for _ in as_completed(futures):
            bar.update()
        return client.gather(futures)
    finally:
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            own_cluster.close()


def run_replicates(
    reps: int,
    *,
    effect: float = 0.3,
    outcome: str = "active_treatment",
    methods: Sequence[str] | None = None,
    seed: int = 1,
    backend: str = "local",
    n_jobs: int | None = None,
    client=None,
    scheduler: str | None = None,
    simulate_kwargs: Mapping[str, Any] | None = None,
    effect_reps: int | None = None,
    n_draws: int = 499,
    n_boot: int = 399,
    progress: bool = False,
) -> pd.DataFrame:
    """One row per replicate × scenario × method; arguments as :func:`validate_methods`.

    Columns ``rep, scenario`` (``"no_effect"`` — not "null", which CSV readers turn into a missing value —
    or ``"effect"``), ``method, estimate, se, ci_low, ci_high, p_value, df, truth`` (on the method's
    scale), ``rd_estimate, rd_ci_low, rd_ci_high`` (logistic methods' marginal risk difference),
    ``truth_rd``, ``ok, error, seconds``.  ``seconds`` is wall time and the only column that depends on
    the machine and backend.
    """
    reps, effect_reps, methods, kw = _check_args(reps, effect_reps, effect, outcome, methods, backend, n_jobs,
                                                 client, simulate_kwargs, n_draws, n_boot)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
    if scheduler is not None and backend != "dask":
        raise ParameterError(f"scheduler is only used with backend='dask', not backend={backend!r}")
    n_tasks = max(reps, effect_reps)
    children = np.random.SeedSequence(int(seed)).spawn(n_tasks)
    tasks = [dict(rep=i, state=(c.entropy, tuple(c.spawn_key)), outcome=outcome, effect=float(effect),
                  methods=methods, simulate_kwargs=kw, run_null=i < reps, run_effect=i < effect_reps,
                  n_draws=int(n_draws), n_boot=int(n_boot)) for i, c in enumerate(children)]
    if n_jobs is None:
        from joblib import (
            cpu_count,  # respects CPU affinity and cgroup quotas, unlike os.cpu_count
        )

        n_jobs = max(1, min(cpu_count(), n_tasks))
    jobs = int(n_jobs)
    results = _run_tasks(_one_replicate, tasks, backend=backend, n_jobs=jobs, client=client, scheduler=scheduler,
                         progress=progress)
    frame = pd.DataFrame([r for rows in results for r in rows], columns=_REPLICATE_COLUMNS)
    frame.attrs["settings"] = {"reps": reps, "effect_reps": effect_reps, "effect": float(effect), "outcome": outcome,
                               "methods": list(methods), "seed": int(seed), "n_draws": int(n_draws),
                               "n_boot": int(n_boot), "simulate_kwargs": {k: list(v) if isinstance(v, tuple) else v
                                                                          for k, v in kw.items()}}
    return frame


# --------------------------------------------------------------------------- summary
def _rate(x: np.ndarray) -> tuple[float, float]:
    """Proportion and its Monte Carlo SE sqrt(p(1 − p)/n) (NaN when n = 0)."""
    n = len(x)
    if n == 0:
        return math.nan, math.nan
    p = float(np.mean(x))
    return p, math.sqrt(p * (1 - p) / n)


def summarise(replicates: pd.DataFrame) -> pd.DataFrame:
    """Performance per method (Morris, White & Crowther 2019): one row per method, numbers only.

    ``size`` = share of null runs with p ≤ 0.05; ``coverage`` = share of effect
    runs whose 95 % interval holds the truth (null runs when there are none;
    ``coverage_null`` always from the null runs); ``bias`` = mean(estimate −
    truth) over effect runs (null runs when there are none) with ``bias_mcse`` =
    SD/√n; ``emp_se`` = SD of the estimates and ``model_se`` the mean reported SE
    in the same runs; ``power`` = share of effect runs with p ≤ 0.05; every
    ``*_mcse`` is √(p(1 − p)/n).  Failed fits are left out of every measure and
    counted in ``failures``.  For the logistic methods, ``coverage_rd`` and
    ``bias_rd`` judge their marginal risk difference (``details["risk_difference"]``)
    against the stored risk difference in the same runs — the like-for-like check
    of those methods, whose log odds ratios are attenuated relative to the planted
    conditional value (NaN for methods without one).
    """
    rows = []
    for m in [m for m in ALL_METHODS if m in set(replicates["method"])]:
        meta = METHODS[m]
        d = replicates[replicates["method"] == m]
        ok = d[d["ok"].astype(bool)]
        null, eff = ok[ok["scenario"] == "no_effect"], ok[ok["scenario"] == "effect"]
        size, size_se = _rate((null["p_value"] <= ALPHA).to_numpy())
        power, power_se = _rate((eff["p_value"] <= ALPHA).to_numpy())

        def covered(x):
            return ((x["ci_low"] <= x["truth"]) & (x["truth"] <= x["ci_high"])).to_numpy()

        cov_null, _ = _rate(covered(null))
        main = eff if len(eff) else null
        cov, cov_se = _rate(covered(main))
        err = (main["estimate"] - main["truth"]).to_numpy()
        bias = float(np.mean(err)) if len(err) else math.nan
        bias_se = float(np.std(err, ddof=1) / math.sqrt(len(err))) if len(err) > 1 else math.nan
        emp_se = float(np.std(main["estimate"], ddof=1)) if len(main) > 1 else math.nan
        model_se = float(main["se"].mean()) if main["se"].notna().any() else math.nan
        rd = main[np.isfinite(main["rd_estimate"].to_numpy(dtype=float))]
        cov_rd = _rate(((rd["rd_ci_low"] <= rd["truth_rd"]) & (rd["truth_rd"] <= rd["rd_ci_high"])).to_numpy())[0]
        bias_rd = float(np.mean(rd["rd_estimate"] - rd["truth_rd"])) if len(rd) else math.nan
        errors = d.loc[~d["ok"].astype(bool), "error"]
        rows.append({
            "method": m, "label": meta.label, "estimator": meta.estimator, "inference": meta.inference,
            "scale": meta.scale, "claims_nominal": meta.claims_nominal, "size": size, "size_mcse": size_se,
            "coverage": cov, "coverage_mcse": cov_se, "coverage_null": cov_null, "bias": bias, "bias_mcse": bias_se,
            "emp_se": emp_se, "model_se": model_se, "power": power, "power_mcse": power_se,
            "n_null": int(len(null)), "n_effect": int(len(eff)), "failures": int(len(d) - len(ok)),
            "fallbacks": int(ok["fallback"].astype(bool).sum()) if "fallback" in ok else 0,
            "coverage_rd": cov_rd, "bias_rd": bias_rd,
            "first_error": str(errors.iloc[0]) if len(errors) else "",
        })
    out = pd.DataFrame(rows, columns=_SUMMARY_COLUMNS)
    out.attrs["settings"] = dict(replicates.attrs.get("settings", {}))
    return out


def _fmt(x: float, digits: int) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def render_markdown(summary: pd.DataFrame) -> str:
    """The Markdown table of :func:`summarise` (method × size, MC SE, coverage, bias, power, n, failures)."""
    s = summary.attrs.get("settings", {})
    lines = []
    if s:
        kw = s.get("simulate_kwargs") or {}
        lines += [f"Monte Carlo validation at the ILCOP design: outcome `{s['outcome']}`, {s['reps']} null and "
                  f"{s['effect_reps']} effect replicates (planted effect {s['effect']:g} on the logit scale), "
                  f"seed {s['seed']}, randomisation test {s['n_draws']} draws, wild bootstrap {s['n_boot']} draws"
                  + (f", simulate_kwargs {kw}" if kw else "") + ".", ""]
    head = ["method", "scale", "size", "MC SE", "coverage", "MC SE", "bias", "power", "n (null/effect)", "failures",
            "fallbacks"]
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for r in summary.itertuples(index=False):
        scale = "RD" if r.scale == "risk_difference" else "log OR"
        lines.append("| " + " | ".join([
            r.label + ("" if r.claims_nominal else " †"), scale, _fmt(r.size, 3), _fmt(r.size_mcse, 3),
            _fmt(r.coverage, 3), _fmt(r.coverage_mcse, 3), _fmt(r.bias, 4), _fmt(r.power, 3),
            f"{r.n_null}/{r.n_effect}", str(r.failures), str(getattr(r, "fallbacks", 0))]) + " |")
    lines += ["", "size: rejection rate at 5 % under the null; coverage: the 95 % interval holds the truth in the "
              "effect runs; bias: mean (estimate − truth) in the effect runs; MC SE = √(p(1 − p)/n). Truth: the "
              "stored risk difference for RD methods; the planted conditional log odds ratio for log OR methods, "
              "which all estimate an attenuated value on the recorded outcome (GEE and did_logistic also a "
              "population-averaged one): judge them by size, and by coverage_rd in validation.csv. "
              "† not expected to hold size with 40 pairs (wrong clustering level or model-based variance). "
              "fallbacks: fits that fell back to the independence working model (GEE), counted, not failures."]
    return "\n".join(lines) + "\n"


def write_outputs(summary: pd.DataFrame, out: str | Path, *, replicates: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write ``validation.csv`` and ``validation.md`` (and ``replicates.csv`` if given) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "validation.csv", "md": out / "validation.md"}
    summary.to_csv(paths["csv"], index=False)
    paths["md"].write_text("# Validation of methods\n\n" + render_markdown(summary), encoding="utf-8")
    if replicates is not None:
        paths["replicates"] = out / "replicates.csv"
        replicates.to_csv(paths["replicates"], index=False)
    return paths


def validate_methods(
    reps: int,
    *,
    effect: float = 0.3,
    outcome: str = "active_treatment",
    methods: Sequence[str] | None = None,
    seed: int = 1,
    backend: str = "local",
    n_jobs: int | None = None,
    client=None,
    simulate_kwargs: Mapping[str, Any] | None = None,
    progress: bool = False,
    effect_reps: int | None = None,
    n_draws: int = 499,
    n_boot: int = 399,
) -> pd.DataFrame:
    """Monte Carlo size, coverage, bias and power of every estimator × inference method at the ILCOP design.

    Parameters
    ----------
    reps
        Null replicates (no effect).
    effect
        Planted intervention effect for ``outcome`` on the logit scale in the effect replicates.
    outcome
        A binary registry outcome (default ``"active_treatment"``).
    methods
        Method ids from :data:`METHODS` (default all; :data:`CHEAP_METHODS` for the trust-level ones).
    seed
        Root of ``numpy.random.SeedSequence``; replicate ``i`` uses its child ``i``.
    backend
        ``"local"`` (joblib loky processes), ``"serial"`` or ``"dask"``; results are identical.
    n_jobs
        Workers for ``"local"`` and for a new dask ``LocalCluster`` (default: the CPU count).
    client
        A ``distributed.Client`` to use with ``backend="dask"`` (default: a new LocalCluster on 127.0.0.1).
    simulate_kwargs
        Extra keywords for :func:`rp2pr_eval.simulate_nlca` (e.g. :data:`SMALL_SIMULATE_KWARGS`).
    progress
        Show a tqdm progress bar on stderr.
    effect_reps
        Effect replicates (default ``reps``); replicate ``i`` of both scenarios shares its random numbers.
    n_draws, n_boot
        Re-randomisations of the randomisation test and draws of the wild bootstrap per replicate.

    Returns
    -------
    pandas.DataFrame
        One row per method, columns as :func:`summarise`; ``attrs["settings"]`` records the call.

    References
    ----------
    Morris, White & Crowther (2019) Stat Med 38:2074; Leyrat et al. (2018) Int J Epidemiol 47:321.
    """
    reps_frame = run_replicates(reps, effect=effect, outcome=outcome, methods=methods, seed=seed, backend=backend,
                                n_jobs=n_jobs, client=client, simulate_kwargs=simulate_kwargs,
                                effect_reps=effect_reps, n_draws=n_draws, n_boot=n_boot, progress=progress)
    return summarise(reps_frame)


def parse_methods(text: str | None, small: bool) -> tuple[str, ...]:
    """Method ids from a comma-separated list of ids, 'cheap' and 'all' (``None``: all; with ``small``: cheap)."""
    if text is None:
        return CHEAP_METHODS if small else ALL_METHODS
    items = [t.strip() for t in text.split(",") if t.strip()]
    out: list[str] = []
    for item in items:
        if item == "all":
            out += ALL_METHODS
        elif item == "cheap":
            out += CHEAP_METHODS
        elif item in METHODS:
            out.append(item)
        else:
            raise ParameterError(f"--methods: unknown method {item!r}; expected 'all', 'cheap' or ids from "
                                 f"{', '.join(METHODS)}")
    if not out:
        raise ParameterError("--methods: no method given")
    return tuple(dict.fromkeys(out))
