"""Trust panels: one row per trust × time cell for one outcome (DATA_CONTRACT §2)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from rp2pr_eval._options import PanelBy, check_option
from rp2pr_eval.data.contract import PERIODS
from rp2pr_eval.data.validate import validate_patients
from rp2pr_eval.errors import DataError
from rp2pr_eval.study.design import StudyDesign, resolve_design
from rp2pr_eval.study.outcomes import Outcome, resolve_outcome


def is_trust_panel(frame: object) -> bool:
    """True if ``frame`` is a trust panel (DATA_CONTRACT §2: ``numerator``, ``denominator``, ``outcome``
    columns, no ``patient_id``) rather than a patient table."""
    if not isinstance(frame, pd.DataFrame):
        return False
    columns = set(frame.columns)
    return {"numerator", "denominator", "outcome"} <= columns and "patient_id" not in columns


def analysis_mask(patients: pd.DataFrame, entry: Outcome) -> tuple[np.ndarray, dict[str, int]]:
    """Rows of eligible patients with a recorded outcome, and how many rows were dropped and why."""
    eligible = entry.eligible(patients).to_numpy(dtype=bool)
    present = np.ones(len(patients), dtype=bool)
    for col in entry.columns:
        present &= patients[col].notna().to_numpy()
    keep = eligible & present
    dropped = {
        "ineligible": int((~eligible).sum()),
        "missing_outcome": int((eligible & ~present).sum()),
    }
    return keep, dropped


def analysis_rows(patients: pd.DataFrame, entry: Outcome) -> tuple[pd.DataFrame, dict[str, int]]:
    """Eligible patients with a recorded outcome, and how many rows were dropped and why."""
    keep, dropped = analysis_mask(patients, entry)
    return patients.loc[keep], dropped


def trust_panel(
    patients: pd.DataFrame,
    outcome: str,
    by: str = "period",
    *,
    design: StudyDesign | None = None,
    validate: bool = True,
) -> pd.DataFrame:
    """Aggregate a patient table to one row per trust × period (or audit year).

    Parameters
    ----------
    patients
        Patient table (DATA_CONTRACT §1).
    outcome
        Registry name, or any 0/1 or numeric column (then all patients are eligible).
    by
        ``"period"`` (``pre``, ``during``, ``post`` by the design) or ``"audit_year"``.
    design
        Study design; ``None`` for the default.
    validate
        Validate the patient table first (default).

    Returns
    -------
    pandas.DataFrame
        ``trust_id, pair_id, arm, <by>, outcome`` and, for binary outcomes,
        ``numerator, denominator, rate``; for continuous outcomes ``n, mean,
        median, mean_log`` (``mean_log`` = mean of log(1 + days)); for time to
        event ``n, events, person_days``.  Cells without eligible patients are
        absent (never zero).  ``attrs["n_dropped"]`` counts the patients left
        out (ineligible, missing outcome).
    """
    check_option("by", by, PanelBy)
    design = resolve_design(design)
    if validate:
        validate_patients(patients, design=design, missing_period="ignore",
                      incomplete_pairs="keep")  # descriptive: a pair that lost a trust is shown as it is
    entry = resolve_outcome(patients, outcome)
    rows, dropped = analysis_rows(patients, entry)
    if rows.empty:
        raise DataError(f"outcome {outcome!r}: no eligible patients with a recorded value ({entry.eligible_group})")
    keys = ["trust_id", "pair_id", "arm"]
    if by == "period":
        period = rows["audit_year"].map(design.period_map())
        rows = rows.assign(period=pd.Categorical(period, categories=list(PERIODS), ordered=True))
    time = by
    y = pd.to_numeric(rows[entry.name]).astype(float)
    work = rows[keys + [time]].assign(_y=y.to_numpy())
    grouped = work.groupby(keys + [time], sort=True, observed=True)["_y"]
    if entry.kind == "binary":
        out = grouped.agg(numerator="sum", denominator="size").reset_index()
        out["numerator"] = out["numerator"].round().astype("int64")
        out["denominator"] = out["denominator"].astype("int64")
        out["rate"] = out["numerator"] / out["denominator"]
    elif entry.kind == "continuous":
        work = work.assign(_log=np.log1p(work["_y"].to_numpy()))
        g = work.groupby(keys + [time], sort=True, observed=True)
        out = g.agg(n=("_y", "size"), mean=("_y", "mean"), median=("_y", "median"), mean_log=("_log", "mean")).reset_index()
        out["n"] = out["n"].astype("int64")
    else:
        work = work.assign(_event=pd.to_numeric(rows[entry.event_column]).to_numpy(dtype=float))
        g = work.groupby(keys + [time], sort=True, observed=True)
        out = g.agg(n=("_y", "size"), events=("_event", "sum"), person_days=("_y", "sum")).reset_index()
        out["n"] = out["n"].astype("int64")
        out["events"] = out["events"].round().astype("int64")
    out.insert(len(keys) + 1, "outcome", entry.name)
    out = out.sort_values(keys[:1] + [time], kind="stable").reset_index(drop=True)
    out.attrs["n_dropped"] = dropped
    out.attrs["kind"] = entry.kind
    return out


def panel_by_period(panel: pd.DataFrame, *, design: StudyDesign | None = None) -> pd.DataFrame:
    """Sum a trust panel by audit year (DATA_CONTRACT §2) to one row per trust × period × outcome.

    What :func:`trust_panel` with ``by="period"`` returns from the patients, built from the counts of a
    loaded panel (for the funnel plot of a trust-panel run): ``trust_id, pair_id, arm, period, outcome,
    numerator, denominator, rate``, ``period`` categorical pre/during/post, sorted by trust and period.
    """
    design = resolve_design(design)
    if "audit_year" not in panel.columns:
        raise DataError("panel_by_period needs a trust panel by audit_year; it has no 'audit_year' column")
    period = pd.Categorical(panel["audit_year"].map(design.period_map()), categories=list(PERIODS), ordered=True)
    keys = ["trust_id", "pair_id", "arm", "period", "outcome"]
    work = panel[["trust_id", "pair_id", "arm", "outcome", "numerator", "denominator"]].assign(period=period)
    out = work.groupby(keys, sort=True, observed=True)[["numerator", "denominator"]].sum().reset_index()
    out["numerator"] = out["numerator"].astype("int64")
    out["denominator"] = out["denominator"].astype("int64")
    out["rate"] = out["numerator"] / out["denominator"]
    return out.sort_values(["outcome", "trust_id", "period"], kind="stable").reset_index(drop=True)
