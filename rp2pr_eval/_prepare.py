"""Shared preparation for the estimators: analysis rows, trust-level values, covariate matrices.

Every estimator goes through :func:`prepare`, which validates the patient
table, keeps the outcome's eligible patients with a recorded value, labels
periods, leaves out what the estimator does not use and counts it, checks that
every trust has data in both periods, and checks the clustering column.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .data.panel import analysis_rows
from .data.validate import validate_patients
from .design import StudyDesign, resolve_design
from .errors import DataError
from .outcomes import CATEGORICAL_COLUMNS, Outcome, resolve_outcome

_SHOW = 5


@dataclass(frozen=True, slots=True)
class Prepared:
    """Analysis rows of one outcome with ``period``, ``post`` and ``treated`` columns."""

    entry: Outcome
    rows: pd.DataFrame
    n_dropped: dict[str, int]
    design: StudyDesign
    cluster: str | None

    @property
    def n_trusts(self) -> int:
        return int(self.rows["trust_id"].nunique())

    def cluster_codes(self, frame: pd.DataFrame | None = None) -> np.ndarray | None:
        frame = self.rows if frame is None else frame
        if self.cluster is None:
            return None
        return pd.factorize(frame[self.cluster], sort=True)[0]


def prepare(
    patients: pd.DataFrame,
    outcome: str,
    *,
    design: StudyDesign | None,
    cluster: str | None,
    kinds: Sequence[str] = ("binary", "continuous"),
    keep_during: bool = False,
    estimator: str = "estimator",
) -> Prepared:
    """Validate and select the rows an estimator analyses (see module docstring)."""
    design = resolve_design(design)
    validate_patients(patients, design=design, missing_period="ignore")
    entry = resolve_outcome(patients, outcome)
    if entry.kind not in kinds:
        raise DataError(f"{estimator} does not handle {entry.kind} outcomes such as {outcome!r}; "
                        f"it needs a {' or '.join(kinds)} outcome")
    if cluster is not None:
        if not isinstance(cluster, str):
            raise TypeError(f"cluster must be a column name or None, got {cluster!r}")
        if cluster not in patients.columns:
            raise DataError(f"cluster column {cluster!r} is not in the patient table")
    rows, dropped = analysis_rows(patients, entry)
    period = rows["audit_year"].map(design.period_map())
    during = (period == "during").to_numpy()
    if not keep_during and during.any():
        rows, period = rows.loc[~during], period[~during]
        dropped["during_years"] = int(during.sum())
    else:
        dropped["during_years"] = 0
    rows = rows.assign(
        period=period.to_numpy(),
        post=(period == "post").to_numpy().astype(float),
        treated=(rows["arm"] == design.intervention_arm).to_numpy().astype(float),
    )
    if rows.empty:
        raise DataError(f"{estimator}: outcome {outcome!r} has no eligible patients with a recorded value")
    _check_periods(patients, rows, design, outcome, estimator)
    if cluster is not None:
        per_trust = rows.groupby("trust_id", observed=True)[cluster].nunique()
        varying = per_trust.index[per_trust > 1]
        if len(varying):
            raise DataError(f"cluster column {cluster!r} varies within trust(s) {', '.join(map(str, varying[:_SHOW]))}; "
                            "expected a trust-level clustering column such as 'pair_id' or 'trust_id'")
        n_clusters = rows[cluster].nunique()
        if n_clusters < 2:
            raise DataError(f"cluster={cluster!r} gives {n_clusters} cluster; cluster-robust inference needs at least 2")
    for arm in design.arms:
        if not (rows["arm"] == arm).any():
            raise DataError(f"{estimator}: no eligible {outcome!r} patients in the {arm} arm")
    return Prepared(entry=entry, rows=rows, n_dropped=dropped, design=design, cluster=cluster)


def _check_periods(patients, rows, design, outcome, estimator) -> None:
    trusts = pd.unique(patients["trust_id"].to_numpy())
    row_trust, row_period = rows["trust_id"].to_numpy(), rows["period"].to_numpy()
    for period, years in (("pre", design.pre_years), ("post", design.post_years)):
        present = pd.unique(row_trust[row_period == period])
        missing = trusts[~np.isin(trusts, present)].tolist()
        if missing:
            shown = ", ".join(map(str, missing[:_SHOW])) + (f", … ({len(missing)} in all)" if len(missing) > _SHOW else "")
            raise DataError(
                f"{estimator}: trust(s) {shown} have no eligible {outcome!r} patients in the {period} years "
                f"{list(years)}; every trust needs pre and post data (drop the pair or use another outcome)"
            )


def trust_values(prep: Prepared, by: str, *, summary: str = "mean_log") -> pd.DataFrame:
    """One row per trust × ``by`` (``period`` or ``audit_year``) with ``value`` and ``weight``.

    Binary outcomes: ``value`` = rate, ``weight`` = denominator.  Continuous
    outcomes: ``value`` = mean of log(1 + days) (``summary="mean_log"``) or the
    median (``"median"``), ``weight`` = number of patients.
    """
    entry = prep.entry
    y = pd.to_numeric(prep.rows[entry.name]).to_numpy(dtype=float)
    keys = ["trust_id", "pair_id", "arm", "treated", by]
    work = prep.rows[keys].assign(_y=y)
    if prep.cluster is not None and prep.cluster not in keys:
        work[prep.cluster] = prep.rows[prep.cluster].to_numpy()
        keys = keys + [prep.cluster]
    if entry.kind == "binary":
        g = work.groupby(keys, sort=True, observed=True)["_y"]
        out = g.agg(numerator="sum", denominator="size").reset_index()
        out["value"] = out["numerator"] / out["denominator"]
        out["weight"] = out["denominator"].astype(float)
    else:
        if summary not in ("mean_log", "median"):
            raise ValueError(f"summary={summary!r} is not valid; expected 'mean_log' or 'median'")
        if summary == "mean_log":
            work["_y"] = np.log1p(work["_y"].to_numpy())
            agg = "mean"
        else:
            agg = "median"
        g = work.groupby(keys, sort=True, observed=True)["_y"]
        out = g.agg(value=agg, n="size").reset_index()
        out["weight"] = out["n"].astype(float)
    return out.sort_values(["trust_id", by], kind="stable").reset_index(drop=True)


def scale_of(entry: Outcome, summary: str) -> str:
    if entry.kind == "binary":
        return "risk_difference"
    return "log_ratio" if summary == "mean_log" else "days"


def covariate_matrix(frame: pd.DataFrame, covariates: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    """Design columns for case-mix covariates.

    Numeric columns enter as they are (missing values are an error);
    categorical columns — text/category dtype, or a contract-categorical column
    such as ``performance_status`` or ``imd_quintile`` — enter as indicators
    with the first (sorted) level as reference, and a missing value is its own
    level ``"missing"``.  Levels that never occur are dropped.
    """
    if covariates is None:
        return np.empty((len(frame), 0)), []
    if isinstance(covariates, str):
        raise TypeError("covariates must be a list of column names, not a single string")
    blocks, names = [], []
    for col in covariates:
        if col not in frame.columns:
            raise DataError(f"covariate {col!r} is not a column of the patient table")
        s = frame[col]
        categorical = (col in CATEGORICAL_COLUMNS or not pd.api.types.is_numeric_dtype(s.dtype)
                       or pd.api.types.is_bool_dtype(s.dtype))
        if categorical:
            labels = s.astype("string").fillna("missing").to_numpy(dtype=object)
            levels = sorted(set(labels) - {"missing"}) + (["missing"] if "missing" in set(labels) else [])
            if len(levels) < 2:
                continue
            for level in levels[1:]:
                blocks.append((labels == level).astype(float))
                names.append(f"{col}[{level}]")
        else:
            values = pd.to_numeric(s).to_numpy(dtype=float, na_value=np.nan)
            if np.isnan(values).any():
                raise DataError(f"numeric covariate {col!r} has {int(np.isnan(values).sum())} missing values; "
                                "impute or drop them before the analysis, or pass it as a categorical column")
            blocks.append(values)
            names.append(col)
    if not blocks:
        return np.empty((len(frame), 0)), []
    return np.column_stack(blocks), names
