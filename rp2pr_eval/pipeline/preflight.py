"""Checks a run makes before any kernel starts: slips that would otherwise surface as silent losses.

:func:`preflight` takes the validated parameters and the validated patient table and refuses, each
with one line naming the parameter file and key:

* an allocation that disagrees with the design (arm labels swapped, the wrong number of
  intervention pairs: :func:`rp2pr_eval.data.validate.check_allocation`);
* an outcome whose column(s) are not in the data;
* a covariate that is not a column of the data, or that is the outcome itself (a misspelt
  covariate used to drop the patient-level estimators quietly while the run exited 0).

Estimator names, outcome names, seeds and the power settings are checked when the parameters are
read (:mod:`rp2pr_eval.pipeline.config`).
"""
from __future__ import annotations

import pandas as pd

from rp2pr_eval.data.validate import check_allocation
from rp2pr_eval.errors import DataError, ParameterError
from rp2pr_eval.files import short_repr
from rp2pr_eval.pipeline.config import RunConfig
from rp2pr_eval.study.outcomes import OUTCOMES


def preflight(config: RunConfig, patients: pd.DataFrame) -> None:
    """Refuse a run whose parameters do not fit its data (see the module docstring).

    Raises
    ------
    DataError
        The allocation in the data disagrees with the design.
    ParameterError
        An outcome or covariate named in the parameters is not in the data.
    """
    try:
        check_allocation(patients, design=config.design)
    except DataError as exc:
        raise DataError(f"{config.data}: {exc} ({config.design_path})") from None
    columns = set(patients.columns)
    for outcome in config.outcomes:
        entry = OUTCOMES[outcome]
        missing = [c for c in (*entry.columns, *entry.requires) if c not in columns]
        if missing:
            raise ParameterError(f"{config.params_dir}/run.yaml: outcome {outcome!r} needs column(s) "
                                 f"{', '.join(map(repr, missing))}, which the data {config.data} does not have")
        settings = config.settings_for(outcome)
        source = (f"{config.params_dir}/outcomes/{outcome}.yaml" if outcome in config.outcome_settings
                  else f"{config.params_dir}/run.yaml (analysis.covariates)")
        unknown = [c for c in settings.covariates if c not in columns]
        if unknown:
            raise ParameterError(f"{source}: covariate {short_repr(unknown[0])} for {outcome!r} is not a column of "
                                 f"the data; columns include {', '.join(sorted(columns)[:12])} …")
        if outcome in settings.covariates or any(c in settings.covariates for c in entry.columns):
            raise ParameterError(f"{source}: the outcome {outcome!r} is also a covariate")


def preflight_panel(config: RunConfig, panel: pd.DataFrame) -> None:
    """:func:`preflight` for a trust panel (``rp2pr-eval run --panel``): allocation, and every binary outcome
    of the run present in the panel's ``outcome`` column (continuous outcomes are recorded as not applicable)."""
    try:
        check_allocation(panel, design=config.design)
    except DataError as exc:
        raise DataError(f"{config.data}: {exc} ({config.design_path})") from None
    held = set(panel["outcome"].astype(str))
    missing = [o for o in config.outcomes if OUTCOMES[o].kind == "binary" and o not in held]
    if missing:
        raise ParameterError(f"{config.params_dir}/run.yaml: outcome(s) {', '.join(map(repr, missing))} are not in "
                             f"the trust panel {config.data} (it holds {', '.join(sorted(held))}); "
                             "add them to the panel or choose outcomes with --outcome")


__all__ = ["preflight", "preflight_panel"]
