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

from rp2pr_eval.data.panel import analysis_mask
from rp2pr_eval.data.validate import validate_patients
from rp2pr_eval.errors import DataError
from rp2pr_eval.study.design import StudyDesign, resolve_design
from rp2pr_eval.study.outcomes import CATEGORICAL_COLUMNS, Outcome, resolve_outcome

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
    trust_level_only: bool = False,
) -> Prepared:
    """Validate and select the rows an estimator analyses (see module docstring).

    ``trust_level_only=True`` keeps only the identifier, year, outcome and
    cluster columns in ``rows`` (what trust-level estimators read), which
    avoids copying every column of a large table.
    """
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
    columns = None
    if trust_level_only:
        columns = list(dict.fromkeys(["trust_id", "pair_id", "arm", "audit_year", *entry.columns,
                                      *([cluster] if cluster is not None else [])]))
    keep, dropped = analysis_mask(patients, entry)
    year = patients["audit_year"].to_numpy()
    period_code = np.where(np.isin(year, design.pre_years), 0, np.where(np.isin(year, design.post_years), 2, 1))
    during = keep & (period_code == 1)
    if not keep_during:
        dropped["during_years"] = int(during.sum())
        keep = keep & ~during
    else:
        dropped["during_years"] = 0
    rows = patients.loc[keep] if columns is None else patients.loc[keep, columns]
    trust_codes, trusts = pd.factorize(patients["trust_id"], sort=False)
    row_codes = trust_codes[keep]
    row_period = period_code[keep]
    rows = rows.assign(
        period=np.array(["pre", "during", "post"], dtype=object)[row_period],
        post=(row_period == 2).astype(float),
        treated=(rows["arm"] == design.intervention_arm).to_numpy().astype(float),
    )
    if rows.empty:
        raise DataError(f"{estimator}: outcome {outcome!r} has no eligible patients with a recorded value")
    _check_periods(trusts, row_codes, row_period, design, outcome, estimator)
    if cluster is not None:
        c_codes, c_labels = pd.factorize(rows[cluster], sort=False)
        if (c_codes < 0).any():
            raise DataError(f"cluster column {cluster!r} has missing values; expected a label for every trust")
        combos = np.unique(row_codes.astype(np.int64) * len(c_labels) + c_codes)
        per_trust = np.bincount(combos // len(c_labels), minlength=len(trusts))
        varying = trusts[per_trust > 1]
        if len(varying):
            raise DataError(f"cluster column {cluster!r} varies within trust(s) {', '.join(map(str, varying[:_SHOW]))}; "
                            "expected a trust-level clustering column such as 'pair_id' or 'trust_id'")
        n_clusters = len(c_labels)
        if n_clusters < 2:
            raise DataError(f"cluster={cluster!r} gives {n_clusters} cluster; cluster-robust inference needs at least 2")
    for arm in design.arms:
        if not (rows["arm"] == arm).any():
            raise DataError(f"{estimator}: no eligible {outcome!r} patients in the {arm} arm")
    return Prepared(entry=entry, rows=rows, n_dropped=dropped, design=design, cluster=cluster)


def _check_periods(trusts, row_codes, row_period, design, outcome, estimator) -> None:
    """Every trust of the table (``trusts``; ``row_codes`` per analysis row) has pre (0) and post (2) rows."""
    for code, period, years in ((0, "pre", design.pre_years), (2, "post", design.post_years)):
        present = np.bincount(row_codes[row_period == code], minlength=len(trusts)) > 0
        missing = list(trusts[~present])
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
    median (``"median"``), ``weight`` = number of patients.  Rows are sorted by
    trust and ``by``; the trust-level columns (pair, arm, treatment, cluster)
    are constant within a trust (:func:`prepare` checked it).  Grouping uses
    integer codes of the two keys, so this takes about a millisecond.
    """
    entry = prep.entry
    if entry.kind != "binary" and summary not in ("mean_log", "median"):
        raise ValueError(f"summary={summary!r} is not valid; expected 'mean_log' or 'median'")
    rows = prep.rows
    y = pd.to_numeric(rows[entry.name]).to_numpy(dtype=float)
    keys = ["trust_id", "pair_id", "arm", "treated", by]
    if prep.cluster is not None and prep.cluster not in keys:
        keys = keys + [prep.cluster]
    t_code, _ = pd.factorize(rows["trust_id"], sort=True)
    b_code, b_labels = pd.factorize(rows[by], sort=True)
    key = t_code.astype(np.int64) * len(b_labels) + b_code
    _, first, values = aggregate_cells(key, y, entry.kind, summary)
    out = rows[keys].iloc[first].reset_index(drop=True)
    for name, column in values.items():
        out[name] = column
    check_trust_variation(out, by, entry.name)
    return out


def check_trust_variation(values: pd.DataFrame, by: str, outcome: str) -> None:
    """Refuse trust values with no variation between trusts in any arm × ``by`` cell.

    Then every trust-level model fits exactly (residuals 0) and reports an estimate with a standard
    error of ~1e-17 — a number that means nothing (e.g. an outcome separated by arm). A DataError
    makes the estimator "not estimable on these data" with this reason instead.
    """
    v = values["value"].to_numpy(dtype=float)
    if len(v) == 0:
        return
    cell = values.groupby(["treated", by], observed=True, sort=False).ngroup().to_numpy()
    spread = np.zeros(cell.max() + 1)
    np.maximum.at(spread, cell, v)
    low = np.full(cell.max() + 1, np.inf)
    np.minimum.at(low, cell, v)
    scale = max(1.0, float(np.nanmax(np.abs(v))))
    if np.all(spread - low <= 1e-12 * scale):
        raise DataError(f"outcome {outcome!r} takes the same value in every trust of each arm × {by} cell "
                        "(e.g. separated by arm): no variation between trusts, so no standard error can be "
                        "estimated")


def aggregate_cells(key: np.ndarray, y: np.ndarray, kind: str, summary: str = "mean_log"
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Per-cell values of :func:`trust_values` for integer cell keys: (sorted cells, first row of each, columns).

    Binary: ``numerator``, ``denominator``, ``value`` (rate), ``weight``;
    continuous: ``value`` (mean of log(1 + y), or median), ``n``, ``weight``.
    """
    cells, first, cell = np.unique(key, return_index=True, return_inverse=True)
    size = np.bincount(cell, minlength=len(cells)).astype(np.int64)
    if kind == "binary":
        numerator = np.bincount(cell, weights=y, minlength=len(cells))
        return cells, first, {"numerator": numerator, "denominator": size, "value": numerator / size,
                              "weight": size.astype(float)}
    values = np.log1p(y) if summary == "mean_log" else y
    g = pd.Series(values).groupby(cell, sort=True)
    value = (g.mean() if summary == "mean_log" else g.median()).to_numpy()
    return cells, first, {"value": value, "n": size, "weight": size.astype(float)}


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


def patient_design(prep: Prepared, covariates: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    """Patient-level design matrix: intercept, treated, post, treated:post and the covariates."""
    rows = prep.rows
    T, P = rows["treated"].to_numpy(dtype=float), rows["post"].to_numpy(dtype=float)
    C, cn = covariate_matrix(rows, covariates)
    X = np.column_stack([np.ones(len(rows)), T, P, T * P, C])
    return X, ["intercept", "treated", "post", "treated:post", *cn]


def check_cells(prep: Prepared, y: np.ndarray) -> None:
    """Refuse outcomes with no variation in an arm × period cell (the log odds ratio is not identified)."""
    cells = pd.DataFrame({"arm": prep.rows["arm"].to_numpy(), "period": prep.rows["period"].to_numpy(), "y": y})
    m = cells.groupby(["arm", "period"], observed=True)["y"].mean()
    flat = m[(m == 0) | (m == 1)]
    if len(flat):
        where = ", ".join(f"{a}/{p} (all {int(v)})" for (a, p), v in flat.items())
        raise DataError(f"outcome {prep.entry.name!r} has no variation in arm × period cell(s) {where}; "
                        "the log odds ratio is not identified (separation)")
