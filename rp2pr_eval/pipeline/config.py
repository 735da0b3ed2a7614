"""Run parameters: one resolution, used by the runner, by Papermill and by JupyterLab's Run All.

A **parameter folder** is self-contained:

* ``run.yaml`` — the run (data, notebooks, outcomes, seed, draws), the base analysis settings and the
  settings of the referee's checks (``sensitivity``: :class:`SensitivitySettings`);
* ``design.yaml`` — the study design (:class:`~rp2pr_eval.study.design.StudyDesign`);
* ``outcomes/<name>.yaml`` — settings of one outcome, layered over the base (base under per-outcome).

Every relative path inside ``run.yaml`` (``data``, ``design``, ``out``) is relative to **the folder
that holds run.yaml**, never to the working directory, so a copied or moved parameter folder means
the same thing wherever the command is started (``design`` defaults to the folder's own
``design.yaml``; ``out`` defaults to :func:`rp2pr_eval.paths.default_output_root`). Paths given on
the command line (``--data``, ``--out``) are relative to the working directory, as usual for a command.

Everything is validated **before any notebook starts**: unknown keys, wrong types and unknown
outcomes raise one :class:`~rp2pr_eval.errors.ParameterError` naming the file and the key
(Papermill itself only warns about unknown parameters and turns ``-p outcome 010`` into the integer
10). :func:`load_run_config` also reads a *resolved* parameter file — the ``run_parameters.json``
the runner hands to its notebooks, or a run's ``manifest.json`` — so a notebook executed by the
runner, the same notebook run alone with Papermill, and a rerun from a manifest all see the same
settings (:mod:`rp2pr_eval.pipeline.notebook`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping


from rp2pr_eval._options import BootWeights, GeeVcov, IncompletePairs, RatesType, RIStatistic, VcovType
from rp2pr_eval.errors import ParameterError
from rp2pr_eval.files import MAX_PARAMETER_BYTES, read_yaml, short_repr
from rp2pr_eval.pipeline.analysis import ESTIMATORS
from rp2pr_eval.pipeline.referee import INFLUENCE_ESTIMATORS, REFEREE_CHECKS
from rp2pr_eval.study.design import StudyDesign
from rp2pr_eval.study.outcomes import CASE_MIX, OUTCOMES, PRIMARY_OUTCOMES

NOTEBOOKS: tuple[str, ...] = ("00_data_checks", "01_descriptives", "10_outcome_analysis", "20_summary", "30_power")


def _read_yaml(path: Path) -> dict[str, Any]:
    return read_yaml(path, what="parameter file")


def _type_ok(value: Any, typ: Any) -> bool:
    if typ is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if typ is str:
        return isinstance(value, str)
    if typ is bool:
        return isinstance(value, bool)
    if typ == "str_list":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if typ == "float_list":
        return isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if typ == "str_or_none":
        return value is None or isinstance(value, str)
    if typ == "float_list_or_none":
        return value is None or _type_ok(value, "float_list")
    raise AssertionError(typ)  # programming error, not user input


def _check_mapping(values: Mapping[str, Any], spec: Mapping[str, Any], source: str, section: str = "") -> None:
    prefix = f"{section}." if section else ""
    unknown = sorted(set(values) - set(spec))
    if unknown:
        raise ParameterError(f"{source}: unknown key {prefix}{short_repr(unknown[0])}; valid keys are {', '.join(sorted(spec))}")
    for key, value in values.items():
        typ = spec[key]
        if isinstance(typ, tuple):  # allowed values
            if value not in typ:
                raise ParameterError(f"{source}: key {prefix}{short_repr(key)} = {short_repr(value)} is not valid; expected one of {list(typ)}")
        elif not _type_ok(value, typ):
            expected = {"str_list": "a list of strings", "float_list": "a list of numbers",
                        "str_or_none": "a string or null", "float_list_or_none": "a list of numbers or null"}.get(typ, getattr(typ, "__name__", str(typ)))
            raise ParameterError(f"{source}: key {prefix}{short_repr(key)} must be {expected}, got {type(value).__name__} {short_repr(value)}")


@dataclass(frozen=True, slots=True)
class AnalysisSettings:
    """Estimator settings for one outcome (the notebook parameters of ``10_outcome_analysis``)."""

    estimators: tuple[str, ...] = ESTIMATORS
    cluster: str = "pair_id"
    vcov: str = "CR2"
    weights: str | None = "denominator"
    covariates: tuple[str, ...] = tuple(CASE_MIX)
    ri_draws: int = 10_000
    ri_statistic: str = "estimate"
    boot_draws: int = 9_999
    boot_weights: str = "rademacher"
    n_quad: int = 25
    glmm_random: tuple[str, ...] = ("pair_id", "trust_id", "trust_id:period")
    glmm_method: str = "laplace"
    gee_vcov: str = "mancl_derouen"
    #: working correlation of the batch's GEE: "block_exchangeable" (trust × period blocks) or "exchangeable"
    gee_cov_struct: str = "block_exchangeable"
    level: float = 0.95
    #: a pair with one trust: None (refuse), "keep" or "drop" (docs/METHODS.md)
    incomplete_pairs: str | None = None
    #: trust-level estimators on "crude" or case-mix-"adjusted" rates
    rates: str = "crude"

    def to_parameters(self) -> dict[str, Any]:
        """JSON-native notebook parameters."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def merged(self, overrides: Mapping[str, Any]) -> "AnalysisSettings":
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
        return replace(self, **values)


_ANALYSIS_SPEC: dict[str, Any] = {
    "estimators": "str_list", "cluster": ("pair_id", "trust_id"), "vcov": tuple(VcovType.__args__),
    "weights": ("denominator", None), "covariates": "str_list", "ri_draws": int,
    "ri_statistic": tuple(RIStatistic.__args__), "boot_draws": int, "boot_weights": tuple(BootWeights.__args__),
    "n_quad": int, "glmm_random": "str_list", "glmm_method": ("laplace", "aghq"),
    "gee_vcov": tuple(GeeVcov.__args__), "gee_cov_struct": ("block_exchangeable", "exchangeable"), "level": float,
    "incomplete_pairs": (*IncompletePairs.__args__, None), "rates": tuple(RatesType.__args__),
}


def _check_analysis(values: Mapping[str, Any], source: str, section: str) -> None:
    _check_mapping(values, _ANALYSIS_SPEC, source, section)
    unknown = [e for e in values.get("estimators", []) if e not in ESTIMATORS]
    if unknown:
        raise ParameterError(f"{source}: key {section}.estimators has unknown estimator {short_repr(unknown[0])}; "
                             f"expected names from {', '.join(ESTIMATORS)}")
    for key in ("ri_draws", "boot_draws", "n_quad"):
        if key in values and values[key] < 1:
            raise ParameterError(f"{source}: key {section}.{key} must be ≥ 1, got {values[key]}")
    if "level" in values and not 0 < values["level"] < 1:
        raise ParameterError(f"{source}: key {section}.level must be in (0, 1), got {values['level']}")


@dataclass(frozen=True, slots=True)
class PowerSettings:
    n_sims: int = 200
    effects: tuple[float, ...] = (0.0, 0.15, 0.3, 0.45)
    estimator: str = "ancova"
    outcome: str = "active_treatment"
    backend: str = "serial"
    #: plan from the run's own data: the generator's trust SD and autocorrelation of ``outcome`` from
    #: ``rp.icc`` of the patients or, in ``rp2pr-eval run --panel``, of the trust panel (same numbers)
    plan_from_data: bool = False


@dataclass(frozen=True, slots=True)
class SensitivitySettings:
    """Settings of the referee's checks in ``10_outcome_analysis`` (``sensitivity:`` in ``run.yaml``).

    The keyword options of :func:`rp2pr_eval.pipeline.referee.add_referee_checks` (with the outcome's
    ``level`` and ``cluster``); see ``docs/methods/sensitivity.md``.
    """

    checks: tuple[str, ...] = REFEREE_CHECKS
    m_relative_magnitudes: tuple[float, ...] | None = None
    m_smoothness: tuple[float, ...] | None = None
    n_sims: int = 1000
    grid_points: int = 1000
    effect_modification_draws: int = 2000
    estimator: str = "ancova"
    placebo_outcomes: tuple[str, ...] = ()

    def to_parameters(self) -> dict[str, Any]:
        """JSON-native options."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_values(cls, values: Mapping[str, Any], source: str, section: str = "sensitivity") -> "SensitivitySettings":
        """Validated settings from a mapping (the YAML section or a resolved parameter file)."""
        if not isinstance(values, Mapping):
            raise ParameterError(f"{source}: key {section!r} must be a mapping, got {type(values).__name__}")
        _check_mapping(values, _SENSITIVITY_SPEC, source, section)
        bad = [c for c in values.get("checks", []) if c not in REFEREE_CHECKS]
        if bad:
            raise ParameterError(f"{source}: key {section}.checks has unknown check {short_repr(bad[0])}; "
                                 f"expected names from {', '.join(REFEREE_CHECKS)}")
        _check_outcomes(list(values.get("placebo_outcomes", [])), source, f"{section}.placebo_outcomes")
        for key, low in (("n_sims", 100), ("grid_points", 10), ("effect_modification_draws", 100)):
            if key in values and values[key] < low:
                raise ParameterError(f"{source}: key {section}.{key} must be ≥ {low}, got {values[key]}")
        for key in ("m_relative_magnitudes", "m_smoothness"):
            bounds = values.get(key)
            if bounds is not None and (not bounds or any(not math.isfinite(v) or v < 0 for v in bounds)):
                raise ParameterError(f"{source}: key {section}.{key} must be null or a non-empty list of "
                                     f"non-negative numbers, got {short_repr(bounds)}")
        return cls(**{k: tuple(float(x) for x in v) if k.startswith("m_") and v is not None
                      else tuple(v) if isinstance(v, list) else v for k, v in values.items()})


_SENSITIVITY_SPEC: dict[str, Any] = {
    "checks": "str_list", "m_relative_magnitudes": "float_list_or_none", "m_smoothness": "float_list_or_none",
    "n_sims": int, "grid_points": int, "effect_modification_draws": int, "estimator": tuple(INFLUENCE_ESTIMATORS),
    "placebo_outcomes": "str_list",
}


@dataclass(frozen=True, slots=True)
class RunConfig:
    """A whole run, validated: what ``rp2pr-eval run`` executes."""

    params_dir: str
    data: str
    design: StudyDesign
    design_path: str = "parameters/design.yaml"
    out: str = "outputs"
    seed: int = 20100401
    jobs: int = 2
    notebooks: tuple[str, ...] = NOTEBOOKS
    outcomes: tuple[str, ...] = tuple(OUTCOMES)
    primary_outcomes: tuple[str, ...] = PRIMARY_OUTCOMES
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    outcome_settings: Mapping[str, AnalysisSettings] = field(default_factory=dict)
    power: PowerSettings = field(default_factory=PowerSettings)
    #: ``"patients"`` (a patient table) or ``"panel"`` (a trust panel: ``rp2pr-eval run --panel``)
    data_kind: str = "patients"
    sensitivity: SensitivitySettings = field(default_factory=SensitivitySettings)

    def settings_for(self, outcome: str) -> AnalysisSettings:
        return self.outcome_settings.get(outcome, self.analysis)

    @property
    def incomplete_pairs(self) -> str | None:
        """What loading the data accepts: ``"keep"``/``"drop"`` if any outcome's settings choose it, else ``None``."""
        chosen = {s.incomplete_pairs for s in (self.analysis, *self.outcome_settings.values())} - {None}
        return sorted(chosen)[0] if chosen else None

    def to_dict(self) -> dict[str, Any]:
        """Everything resolved, JSON-native (for the manifest)."""
        return {
            "params_dir": self.params_dir, "data": self.data, "design": self.design.to_dict(),
            "design_path": self.design_path, "out": self.out,
            "seed": self.seed, "jobs": self.jobs, "notebooks": list(self.notebooks), "outcomes": list(self.outcomes),
            "primary_outcomes": list(self.primary_outcomes), "analysis": self.analysis.to_parameters(),
            "outcome_settings": {k: v.to_parameters() for k, v in self.outcome_settings.items()},
            "power": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.power).items()},
            "data_kind": self.data_kind,
            "sensitivity": self.sensitivity.to_parameters(),
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "resolved parameters") -> "RunConfig":
        """Inverse of :meth:`to_dict` (every section validated as in the YAML files)."""
        if not isinstance(values, Mapping):
            raise ParameterError(f"{source}: expected a mapping of run parameters, got {type(values).__name__}")
        known = {"params_dir", "data", "design", "design_path", "out", "seed", "jobs", "notebooks", "outcomes",
                 "primary_outcomes", "analysis", "outcome_settings", "power"}
        optional = {"sensitivity", "data_kind"}   # absent from manifests of runs made before they existed
        unknown = sorted(set(values) - known - optional)
        missing = sorted(known - set(values))
        if unknown or missing:
            raise ParameterError(f"{source}: not a resolved parameter set "
                                 f"({'unknown key ' + repr(unknown[0]) if unknown else 'missing key ' + repr(missing[0])})")
        design = StudyDesign.from_dict(dict(values["design"]), source=f"{source}: design")
        for key in ("notebooks", "outcomes", "primary_outcomes"):
            if not _type_ok(values[key], "str_list"):
                raise ParameterError(f"{source}: key {short_repr(key)} must be a list of strings")
        bad = [n for n in values["notebooks"] if n not in NOTEBOOKS]
        if bad:
            raise ParameterError(f"{source}: key 'notebooks' has unknown notebook {short_repr(bad[0])}")
        _check_outcomes(list(values["outcomes"]), source, "outcomes")
        _check_outcomes(list(values["primary_outcomes"]), source, "primary_outcomes")
        _check_analysis(values["analysis"], source, "analysis")
        base = AnalysisSettings().merged(values["analysis"])
        per_outcome = {}
        for name, settings in dict(values["outcome_settings"]).items():
            _check_outcomes([name], source, "outcome_settings")
            _check_analysis(settings, source, f"outcome_settings.{name}")
            per_outcome[name] = AnalysisSettings().merged(settings)
        _check_mapping(values["power"], _POWER_SPEC, source, "power")
        _check_power(values["power"], source)
        power = PowerSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in values["power"].items()})
        for key in ("seed", "jobs"):
            if not _type_ok(values[key], int):
                raise ParameterError(f"{source}: key {short_repr(key)} must be int")
        for key in ("params_dir", "data", "design_path", "out"):
            if not isinstance(values[key], str):
                raise ParameterError(f"{source}: key {short_repr(key)} must be a path")
        return cls(params_dir=values["params_dir"], data=values["data"], design=design,
                   design_path=values["design_path"], out=values["out"], seed=values["seed"], jobs=values["jobs"],
                   notebooks=tuple(values["notebooks"]), outcomes=tuple(values["outcomes"]),
                   primary_outcomes=tuple(values["primary_outcomes"]), analysis=base, outcome_settings=per_outcome,
                   power=power, data_kind=_data_kind(values.get("data_kind", "patients"), source),
                   sensitivity=SensitivitySettings.from_values(values.get("sensitivity", {}), source))

    def with_overrides(self, **kwargs: Any) -> "RunConfig":
        """Command-line overrides (``--data``, ``--out``, ``--jobs``, ``--seed``, ``--outcome``)."""
        values = {k: v for k, v in kwargs.items() if v is not None}
        if "outcomes" in values:
            _check_outcomes(list(values["outcomes"]), "--outcome", "outcome")
            values["outcomes"] = tuple(values["outcomes"])
        if "jobs" in values and values["jobs"] < 1:
            raise ParameterError(f"--jobs must be ≥ 1, got {values['jobs']}")
        if "data_kind" in values:
            _data_kind(values["data_kind"], "--panel")
        if "seed" in values and not 0 <= values["seed"] < 2**63:
            raise ParameterError(f"--seed must be a non-negative integer, got {values['seed']}")
        return replace(self, **values)


def _data_kind(value: object, source: str) -> str:
    if value not in ("patients", "panel"):
        raise ParameterError(f"{source}: data_kind must be 'patients' or 'panel', got {short_repr(value)}")
    return str(value)


def _check_outcomes(names: list[str], source: str, key: str) -> None:
    unknown = [n for n in names if n not in OUTCOMES]
    if unknown:
        raise ParameterError(f"{source}: key {short_repr(key)} has unknown outcome {short_repr(unknown[0])}; "
                             f"expected names from {', '.join(OUTCOMES)}")


_RUN_SPEC: dict[str, Any] = {
    "data": str, "design": str, "out": str, "seed": int, "jobs": int, "notebooks": "str_list",
    "outcomes": "str_list", "primary_outcomes": "str_list", "analysis": dict, "power": dict, "sensitivity": dict,
}
_POWER_SPEC: dict[str, Any] = {"n_sims": int, "effects": "float_list", "estimator": ("ancova", "did_aggregate", "did_twfe"),
                               "outcome": str, "backend": ("serial", "local", "dask"), "plan_from_data": bool}


def _check_power(values: Mapping[str, Any], source: str) -> None:
    import math

    if "n_sims" in values and values["n_sims"] < 2:
        raise ParameterError(f"{source}: key power.n_sims must be ≥ 2, got {values['n_sims']}")
    if "effects" in values and (not values["effects"] or not all(math.isfinite(v) for v in values["effects"])):
        raise ParameterError(f"{source}: key power.effects must be a non-empty list of finite numbers")
    if "outcome" in values and OUTCOMES[values["outcome"]].kind == "time_to_event":
        raise ParameterError(f"{source}: key power.outcome {values['outcome']!r} is a time-to-event outcome; the power "
                             "simulation's estimators (ancova, did_aggregate, did_twfe) need a binary or continuous one")


def load_run_config(params: str | Path | None = None, *, run_file: str = "run.yaml") -> RunConfig:
    """Read and validate a parameter folder (or a resolved parameter JSON) into a :class:`RunConfig`.

    Parameters
    ----------
    params : str or pathlib.Path, optional
        A parameter folder holding ``run.yaml`` (its ``design.yaml`` and ``outcomes/*.yaml`` are read
        too), or a JSON file written by the runner (``run_parameters.json``) or a run's
        ``manifest.json`` (its ``parameters`` entry). ``None``: the project's ``parameters/``
        (:func:`rp2pr_eval.paths.parameters_dir`).
    run_file : str
        Name of the run file inside the folder.

    Returns
    -------
    RunConfig
        With absolute ``data``, ``design_path`` and ``out`` paths.

    Raises
    ------
    ParameterError
        Naming the file and the key of the first problem.
    """
    from rp2pr_eval import paths

    params = paths.parameters_dir() if params is None else Path(params)
    if params.is_file() and params.suffix == ".json":
        return _load_resolved(params)
    if not params.is_dir():
        raise ParameterError(f"{params}: parameter folder not found")
    folder = params.resolve()
    run_path = folder / run_file
    raw = _read_yaml(run_path)
    source = str(run_path)
    for key, value in raw.items():
        if key in _RUN_SPEC and _RUN_SPEC[key] is dict and not isinstance(value, dict):
            raise ParameterError(f"{source}: key {short_repr(key)} must be a mapping, got {type(value).__name__}")
    _check_mapping({k: v for k, v in raw.items() if _RUN_SPEC.get(k) is not dict},
                   {k: v for k, v in _RUN_SPEC.items() if v is not dict}, source)
    if "data" not in raw:
        raise ParameterError(f"{source}: key 'data' (the patient table) is required")
    design_path = _relative_to(folder, raw.get("design", "design.yaml"))
    design = StudyDesign.from_yaml(design_path)
    notebooks = raw.get("notebooks", list(NOTEBOOKS))
    bad = [n for n in notebooks if n not in NOTEBOOKS]
    if bad:
        raise ParameterError(f"{source}: key 'notebooks' has unknown notebook {short_repr(bad[0])}; expected {list(NOTEBOOKS)}")
    outcomes = raw.get("outcomes", list(OUTCOMES))
    _check_outcomes(outcomes, source, "outcomes")
    primary = raw.get("primary_outcomes", list(PRIMARY_OUTCOMES))
    _check_outcomes(primary, source, "primary_outcomes")
    analysis_raw = raw.get("analysis", {})
    _check_analysis(analysis_raw, source, "analysis")
    base = AnalysisSettings().merged(analysis_raw)
    per_outcome: dict[str, AnalysisSettings] = {}
    outcome_dir = folder / "outcomes"
    if outcome_dir.is_dir():
        for path in sorted(outcome_dir.glob("*.yaml")):
            name = path.stem
            if name not in OUTCOMES:
                raise ParameterError(f"{path}: file name {short_repr(name)} is not an outcome; expected one of {', '.join(OUTCOMES)}")
            values = _read_yaml(path)
            _check_analysis(values, str(path), "")
            per_outcome[name] = base.merged(values)
    power_raw = raw.get("power", {})
    _check_mapping(power_raw, _POWER_SPEC, source, "power")
    if "outcome" in power_raw:
        _check_outcomes([power_raw["outcome"]], source, "power.outcome")
    power = PowerSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in power_raw.items()})
    _check_power(power_raw, source)
    if raw.get("jobs", 2) < 1:
        raise ParameterError(f"{source}: key 'jobs' must be ≥ 1")
    if not 0 <= raw.get("seed", 0) < 2**63:
        raise ParameterError(f"{source}: key 'seed' must be a non-negative integer, got {raw['seed']}")
    sensitivity = SensitivitySettings.from_values(raw.get("sensitivity") or {}, source)
    out = _relative_to(folder, raw["out"]) if "out" in raw else paths.default_output_root()
    return RunConfig(
        params_dir=str(folder), data=str(_relative_to(folder, raw["data"])), design=design,
        design_path=str(design_path), out=str(out),
        seed=raw.get("seed", 20100401), jobs=raw.get("jobs", 2), notebooks=tuple(notebooks),
        outcomes=tuple(outcomes), primary_outcomes=tuple(primary), analysis=base, outcome_settings=per_outcome,
        power=power, sensitivity=sensitivity,
    )


def _relative_to(folder: Path, value: str) -> Path:
    """``value`` resolved against the parameter folder unless absolute (``~`` expanded)."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else (folder / path).resolve()


def _load_resolved(path: Path) -> RunConfig:
    """A resolved parameter file: the runner's ``run_parameters.json`` or a run's ``manifest.json``."""
    import json

    try:
        if path.stat().st_size > MAX_PARAMETER_BYTES:
            raise ParameterError(f"{path}: parameter file is over 1 MiB")
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ParameterError(f"{path}: not a readable parameter file ({type(exc).__name__})") from None
    if isinstance(values, dict) and "parameters" in values and "run_id" in values:   # a manifest or the runner's file
        values = values["parameters"]
    return RunConfig.from_dict(values, source=str(path))
