"""The flow table for export: :func:`rp2pr_eval.data.flow.flow_counts` through disclosure control."""
from __future__ import annotations

import pandas as pd

from rp2pr_eval.data.flow import FLOW_COLUMNS
from rp2pr_eval.errors import DataError
from rp2pr_eval.presentation.disclosure import DisclosurePolicy, protect_table
from rp2pr_eval.presentation.tables import disclosure_policy
from rp2pr_eval.study.design import StudyDesign

__all__ = ["PATIENT_COUNT_COLUMNS", "flow_table"]

#: Counts of individuals (patients): protected.  Trust and pair counts describe organisations, not
#: people, and are published in the trial reports; they pass through.
PATIENT_COUNT_COLUMNS = ("patients", "excluded_patients", "ineligible_patients", "missing_outcome_patients")


def flow_table(flow: pd.DataFrame, *, design: StudyDesign | None = None,
               policy: DisclosurePolicy | None = None) -> pd.DataFrame:
    """The flow counts ready to export: patient counts disclosure-controlled (``design.disclosure``).

    Rows are boxes of the flow diagram, not cells of an additive table, so no margins are added
    (``margins=None``): each patient count is protected on its own (small counts suppressed; with
    ``nhsd_2018`` every count rounded to 5).  Missing counts (a box that has none) stay empty.
    """
    missing = [c for c in FLOW_COLUMNS if c not in getattr(flow, "columns", ())]
    if missing:
        raise DataError(f"flow_table: flow is missing column(s) {missing}; pass rp2pr_eval.data.flow.flow_counts(...)")
    policy = disclosure_policy(design) if policy is None else policy
    frame = flow.copy()
    present = {c: frame[c].notna() for c in PATIENT_COUNT_COLUMNS}
    filled = frame.assign(**{c: frame[c].fillna(0).astype(int) for c in PATIENT_COUNT_COLUMNS})
    protected = protect_table(filled, policy=policy, count_columns=list(PATIENT_COUNT_COLUMNS), margins=None)
    for c in PATIENT_COUNT_COLUMNS:
        protected[c] = protected[c].astype(object).where(present[c], None)
    protected.attrs = {**flow.attrs, **protected.attrs}
    return protected
