"""The trial's flow (CONSORT extension for cluster randomised trials): counts from the design file and the data.

:func:`flow_counts` returns one tidy frame, stage by stage: trusts invited → agreed → eligible
(enough baseline audit data) — these three from the design (``parameters/design.yaml``:
``trusts_invited``, ``trusts_accepted``, ``trusts_eligible``) — then paired and randomised by arm
(pairs and trusts, from the data), and analysed: trusts and patients per arm and period, with
the patients left out and why (outside the outcome's eligible group, outcome not recorded, during
years left out of the before–after contrasts, audit years outside the design).  Counts only; the
figure (:func:`rp2pr_eval.presentation.figures.plot_flow_diagram`) and the exported table
(:func:`rp2pr_eval.presentation.flow.flow_table`, disclosure-controlled) read this frame.

Reference: Campbell, Piaggio, Elbourne & Altman (2012) BMJ 345:e5661 (CONSORT 2010 statement:
extension to cluster randomised trials), item 13 and the flow diagram.
"""
from __future__ import annotations

import pandas as pd

from rp2pr_eval.data.panel import analysis_mask
from rp2pr_eval.data.validate import validate_patients
from rp2pr_eval.errors import DataError
from rp2pr_eval.study.design import StudyDesign, resolve_design
from rp2pr_eval.study.outcomes import resolve_outcome

__all__ = ["COUNT_COLUMNS", "FLOW_COLUMNS", "flow_counts"]

FLOW_COLUMNS = ("stage", "arm", "period", "pairs", "trusts", "patients", "excluded_trusts", "excluded_patients",
                "ineligible_patients", "missing_outcome_patients", "reason")
COUNT_COLUMNS = ("pairs", "trusts", "patients", "excluded_trusts", "excluded_patients", "ineligible_patients",
                 "missing_outcome_patients")


def _row(stage, arm="all", period="", pairs=None, trusts=None, patients=None, excluded_trusts=None,
         excluded_patients=None, ineligible=None, missing=None, reason=""):
    # counts only in count columns: ``reason`` is free text and is never disclosure-controlled
    return {"stage": stage, "arm": arm, "period": period, "pairs": pairs, "trusts": trusts, "patients": patients,
            "excluded_trusts": excluded_trusts, "excluded_patients": excluded_patients,
            "ineligible_patients": ineligible, "missing_outcome_patients": missing, "reason": reason}


def flow_counts(patients: pd.DataFrame, outcome: str | None = None, *, design: StudyDesign | None = None,
                validate: bool = True) -> pd.DataFrame:
    """Counts for the flow diagram, one row per box.

    Parameters
    ----------
    patients
        Patient table (DATA_CONTRACT §1).
    outcome
        When given, the "analysed" rows count the patients in that outcome's analysis and the
        exclusions say why the others are left out; otherwise every patient in a design year counts.
    design
        Study design with the recruitment counts (``None``: the default, ILCOP's 156 → 92 → 80).
    validate
        Validate the patient table first.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`FLOW_COLUMNS` (counts as nullable integers): stages ``invited``,
        ``agreed``, ``eligible``, ``paired``, ``randomised`` (one row per arm), ``analysed`` (one row
        per arm × period ``pre``/``during``/``post``, the during rows marked as left out of the
        before–after contrasts) and ``outside design`` when the data hold other years.
        ``attrs["notes"]`` lists inconsistencies (e.g. fewer trusts in the data than eligible).
    """
    design = resolve_design(design)
    if validate:
        validate_patients(patients, design=design, missing_period="ignore",
                      incomplete_pairs="keep")  # descriptive: a pair that lost a trust is shown as it is
    for col in ("trust_id", "pair_id", "arm", "audit_year"):
        if col not in patients.columns:
            raise DataError(f"flow_counts: the patient table has no {col!r} column")
    notes: list[str] = []
    rows = []
    inv, acc, eli = design.trusts_invited, design.trusts_accepted, design.trusts_eligible
    rows.append(_row("invited", trusts=inv))
    rows.append(_row("agreed", trusts=acc, excluded_trusts=None if inv is None or acc is None else inv - acc,
                     reason="declined"))
    rows.append(_row("eligible", trusts=eli, excluded_trusts=None if acc is None or eli is None else acc - eli,
                     reason="insufficient NLCA baseline data"))
    trusts = patients.drop_duplicates("trust_id")[["trust_id", "pair_id", "arm"]].assign(arm=lambda f: f["arm"].astype(str))
    n_trusts, n_pairs = len(trusts), trusts["pair_id"].nunique()
    missing = None if eli is None else eli - n_trusts
    if missing:
        notes.append(f"the design lists {eli} eligible trusts but the data hold {n_trusts}")
    rows.append(_row("paired", pairs=n_pairs, trusts=n_trusts, excluded_trusts=missing if missing else None,
                     reason="eligible but not in the data" if missing else "paired on contrasting baselines"))
    for arm in design.arms:
        t = trusts[trusts["arm"] == arm]
        rows.append(_row("randomised", arm=arm, pairs=t["pair_id"].nunique(), trusts=len(t),
                         reason="whole pairs randomised"))
    period = patients["audit_year"].map(design.period_map())
    arm_col = patients["arm"].astype(str)
    if outcome is not None:
        entry = resolve_outcome(patients, outcome)
        keep, _ = analysis_mask(patients, entry)
        eligible = entry.eligible(patients).to_numpy(dtype=bool)
        keep_s = pd.Series(keep, index=patients.index)
        eligible_s = pd.Series(eligible, index=patients.index)
    for arm in design.arms:
        arm_trusts = set(trusts.loc[trusts["arm"] == arm, "trust_id"])
        for per in ("pre", "during", "post"):
            in_cell = (arm_col == arm) & (period == per)
            if outcome is None:
                analysed = in_cell
                n_ineligible = n_missing = 0
            else:
                analysed = in_cell & keep_s
                n_ineligible = int((in_cell & ~eligible_s).sum())
                n_missing = int((in_cell & eligible_s & ~keep_s).sum())
            cell_trusts = set(patients.loc[analysed, "trust_id"])
            reasons = []
            if outcome is not None:
                reasons.append(f"excluded: outside the eligible group ({entry.eligible_group}) or outcome not recorded")
            if per == "during":
                reasons.append("during years left out of the before–after contrasts (kept for the event study)")
            rows.append(_row("analysed", arm=arm, period=per, trusts=len(cell_trusts), patients=int(analysed.sum()),
                             excluded_trusts=len(arm_trusts - cell_trusts),
                             excluded_patients=n_ineligible + n_missing if outcome is not None else None,
                             ineligible=n_ineligible if outcome is not None else None,
                             missing=n_missing if outcome is not None else None, reason="; ".join(reasons)))
    outside = period.isna()
    if outside.any():
        rows.append(_row("outside design", patients=int(outside.sum()), excluded_patients=int(outside.sum()),
                         reason="audit years outside the design"))
    frame = pd.DataFrame(rows, columns=list(FLOW_COLUMNS))
    for col in COUNT_COLUMNS:
        frame[col] = frame[col].astype("Int64")
    frame.attrs["notes"] = notes
    frame.attrs["outcome"] = outcome
    return frame
