"""The data-check tables of ``00_data_checks``, under the design's disclosure policy.

:mod:`rp2pr_eval.data.describe` (``rp.summary``) gives the exact numbers for
internal use; these are the versions an executed notebook may show:

* :func:`design_table` — trusts, pairs and patients of each arm by audit
  year, with totals;
* :func:`volume_table` — patients per trust-year by audit year: trusts,
  patients, median, quartiles, minimum and maximum;
* :func:`completeness_table` — the share of patients with each case-mix and
  recording field present, by audit year.

The patients of each arm and year, their totals, and the present and
missing patients of each field are one linked system
(:func:`rp2pr_eval.presentation.disclosure.protect_linked`): the year totals
appear in all three tables, so a total one table hides is hidden in every
table, and a share whose present or missing count is in 1..k-1 is withheld.
The order statistics of trust-year volumes are counts of one (unnamed)
trust-year each: shown as the primary symbol when in 1..k-1 (and rounded
under a rounding policy). Numbers of trusts and pairs are not counts of
patients and are shown. National rates: :func:`rp2pr_eval.tables.national_table`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from rp2pr_eval.data.validate import validate_patients
from rp2pr_eval.presentation.disclosure.linked import LinkedCounts, protect_linked
from rp2pr_eval.presentation.disclosure.policy import DisclosurePolicy, policy_for_design
from rp2pr_eval.presentation.disclosure.suppression import TOTAL_LABEL, round_counts
from rp2pr_eval.study.design import StudyDesign, resolve_design

#: Fields of :func:`completeness_table` (present: a recorded value, or 1 for the recording flags).
COMPLETENESS_FIELDS = ("performance_status", "stage", "treatment_recorded", "cns_recorded")


def _policy(policy: DisclosurePolicy | None, design: StudyDesign) -> DisclosurePolicy:
    if policy is None:
        return policy_for_design(design)
    if not isinstance(policy, DisclosurePolicy):
        raise ValueError(f"policy must be a DisclosurePolicy or None, got {type(policy).__name__}")
    return policy


class _Years:
    """The linked counts of the three tables and their protection."""

    def __init__(self, patients: pd.DataFrame, design: StudyDesign, policy: DisclosurePolicy):
        validate_patients(patients, design=design, missing_period="ignore",
                      incomplete_pairs="keep")  # descriptive: a pair that lost a trust is shown as it is
        self.policy = policy
        self.arms = list(design.arms)
        self.years = sorted(int(y) for y in pd.unique(patients["audit_year"]))
        self.fields = [f for f in COMPLETENESS_FIELDS if f in patients.columns]
        arm = patients["arm"].astype(str).to_numpy()
        year = patients["audit_year"].to_numpy()
        values: list[int] = []
        self.index: dict[tuple, int] = {}
        cost: list[float] = []
        bounds_low: list[float] = []
        eqs: list[tuple[list[int], list[float]]] = []
        k = policy.threshold
        big = 1e12

        def add(key: tuple, value: int, c: float, low: float | None = None) -> None:
            self.index[key] = len(values)
            values.append(int(value))
            cost.append(c)
            bounds_low.append(np.nan if low is None else low)

        cells = {(a, y): int(np.sum((arm == a) & (year == y))) for a in self.arms for y in self.years}
        for a in self.arms:
            for y in self.years:
                add(("p", a, y), cells[a, y], float(cells[a, y]))
            add(("p", a, TOTAL_LABEL), sum(cells[a, y] for y in self.years), big + 1)
        for y in self.years:
            add(("p", TOTAL_LABEL, y), sum(cells[a, y] for a in self.arms), big + 2)
        add(("p", TOTAL_LABEL, TOTAL_LABEL), len(patients), big + 3)
        for a in self.arms:
            eqs.append(([self.index[("p", a, TOTAL_LABEL)]] + [self.index[("p", a, y)] for y in self.years],
                        [1.0] + [-1.0] * len(self.years)))
        for y in [*self.years, TOTAL_LABEL]:
            eqs.append(([self.index[("p", TOTAL_LABEL, y)]] + [self.index[("p", a, y)] for a in self.arms],
                        [1.0] + [-1.0] * len(self.arms)))
        eqs.append(([self.index[("p", TOTAL_LABEL, TOTAL_LABEL)]] + [self.index[("p", TOTAL_LABEL, y)]
                                                                     for y in self.years],
                    [1.0] + [-1.0] * len(self.years)))
        for f in self.fields:
            present = self._present(patients, f)
            for y in self.years:
                p = int(np.sum(present & (year == y)))
                total = values[self.index[("p", TOTAL_LABEL, y)]]
                # a withheld share shows one symbol for both counts: the reader knows only that they are >= 0
                add(("present", f, y), p, float(p), 0.0)
                add(("missing", f, y), total - p, float(total - p), 0.0)
                eqs.append(([self.index[("p", TOTAL_LABEL, y)], self.index[("present", f, y)],
                             self.index[("missing", f, y)]], [1.0, -1.0, -1.0]))
        vals = np.array(values, dtype=np.int64)
        low = np.array(bounds_low)
        distinct = policy.symbol != policy.secondary_symbol
        p_low = np.where(np.isnan(low), 1.0, low)
        p_high = np.where(np.isnan(low), float(k - 1), np.inf)
        s_low = np.where(np.isnan(low), float(k) if distinct else 1.0, low)
        lc = LinkedCounts(values=vals, equations=eqs, published=np.ones(vals.size, dtype=bool),
                          cost=np.array(cost), primary_bounds=(p_low, p_high), secondary_bounds=(s_low, np.full(vals.size, np.inf)))
        self.values = vals
        self.primary = (vals >= 1) & (vals < k)
        if policy.secondary:
            self.primary, self.suppressed = protect_linked(lc, policy, primary=self.primary)
        else:
            self.suppressed = self.primary.copy()
        self.shown = round_counts(vals, policy.rounding)

    @staticmethod
    def _present(patients: pd.DataFrame, field: str) -> np.ndarray:
        if field in ("performance_status", "stage"):
            return patients[field].notna().to_numpy()
        return (pd.to_numeric(patients[field], errors="coerce") == 1).to_numpy()

    def count(self, key: tuple) -> object:
        """The count as shown: a number, or the policy's symbol."""
        i = self.index[key]
        if self.suppressed[i]:
            return self.policy.symbol if self.primary[i] else self.policy.secondary_symbol
        return int(self.shown[i])

    def hidden(self, key: tuple) -> bool:
        return bool(self.suppressed[self.index[key]])


def _column(values: list) -> pd.Series:
    if any(isinstance(v, str) for v in values):
        return pd.Series(values, dtype=object)
    return pd.Series(values)


def design_table(patients: pd.DataFrame, *, design: StudyDesign | None = None,
                 policy: DisclosurePolicy | None = None) -> pd.DataFrame:
    """Trusts, pairs and patients of each arm by audit year, with totals, disclosure-controlled.

    Parameters
    ----------
    patients : pandas.DataFrame
        Patient table (DATA_CONTRACT.md §1); validated first.
    design : StudyDesign, optional
        Arms and the disclosure policy; ``None``: the default design.
    policy : DisclosurePolicy, optional
        Overrides the design's policy.

    Returns
    -------
    pandas.DataFrame
        Index: the arms and ``"Total"``; columns ``trusts``, ``pairs``, one per
        audit year and ``"Total"`` (patients). Suppressed counts hold the
        policy's symbols; see the module docstring for the rule.
    """
    design = resolve_design(design)
    years = _Years(patients, design, _policy(policy, design))
    trusts = patients.drop_duplicates("trust_id")
    rows = []
    for a in [*years.arms, TOTAL_LABEL]:
        sel = trusts if a == TOTAL_LABEL else trusts[trusts["arm"].astype(str) == a]
        row = {"trusts": int(len(sel)), "pairs": int(sel["pair_id"].nunique())}
        for y in [*years.years, TOTAL_LABEL]:
            row[str(y)] = years.count(("p", a, y))
        rows.append(row)
    frame = pd.DataFrame(rows, index=pd.Index([*years.arms, TOTAL_LABEL], name="arm"))
    return pd.DataFrame({c: _column(frame[c].tolist()) for c in frame.columns}).set_index(frame.index)


def _order_statistic(value: float, policy: DisclosurePolicy) -> object:
    if 0 < value < policy.threshold:
        return policy.symbol
    if policy.rounding is not None and policy.rounding > 1 and value > 0:
        return float(round_counts(np.array([int(round(value))]), policy.rounding)[0])
    return float(value)


def volume_table(patients: pd.DataFrame, *, design: StudyDesign | None = None,
                 policy: DisclosurePolicy | None = None) -> pd.DataFrame:
    """Patients per trust-year by audit year, disclosure-controlled (no trust is named).

    Returns
    -------
    pandas.DataFrame
        Index ``audit_year``; columns ``trusts``, ``patients`` (the year's
        total, hidden exactly where :func:`design_table` hides it), and the
        ``median``, ``q1``, ``q3``, ``min`` and ``max`` of the trusts'
        patients that year: each a count of one trust-year (or the mean of
        two), shown as the primary symbol when below k.
    """
    design = resolve_design(design)
    pol = _policy(policy, design)
    years = _Years(patients, design, pol)
    per = patients.groupby(["audit_year", "trust_id"], observed=True).size()
    rows = []
    for y in years.years:
        n = per.xs(y, level="audit_year").to_numpy(dtype=float)
        q1, med, q3 = np.quantile(n, [0.25, 0.5, 0.75])
        rows.append({"trusts": int(n.size), "patients": years.count(("p", TOTAL_LABEL, y)),
                     **{name: _order_statistic(v, pol) for name, v in
                        (("median", med), ("q1", q1), ("q3", q3), ("min", n.min()), ("max", n.max()))}})
    frame = pd.DataFrame(rows)
    out = pd.DataFrame({c: _column(frame[c].tolist()) for c in frame.columns})
    out.index = pd.Index(years.years, name="audit_year")
    return out


def completeness_table(patients: pd.DataFrame, *, design: StudyDesign | None = None,
                       policy: DisclosurePolicy | None = None) -> pd.DataFrame:
    """Percentage of patients with each case-mix or recording field present, by audit year, disclosure-controlled.

    Returns
    -------
    pandas.DataFrame
        Index ``audit_year``; ``patients`` (hidden exactly where
        :func:`design_table` hides it) and one column per field of
        :data:`COMPLETENESS_FIELDS` in the data: the percentage present,
        withheld (``policy.secondary_symbol``) when the present or the missing
        patients number 1..k-1 or the protection of another count needs it.
        Under a rounding policy the percentage is computed from the rounded
        counts.
    """
    design = resolve_design(design)
    pol = _policy(policy, design)
    years = _Years(patients, design, pol)
    rows = []
    for y in years.years:
        row: dict[str, object] = {"patients": years.count(("p", TOTAL_LABEL, y))}
        total_hidden = years.hidden(("p", TOTAL_LABEL, y))
        for f in years.fields:
            if total_hidden or years.hidden(("present", f, y)) or years.hidden(("missing", f, y)):
                row[f] = pol.secondary_symbol
                continue
            p = years.shown[years.index[("present", f, y)]]
            n = years.shown[years.index[("p", TOTAL_LABEL, y)]]
            row[f] = 100.0 * p / n if n > 0 else np.nan
        rows.append(row)
    frame = pd.DataFrame(rows)
    out = pd.DataFrame({c: _column(frame[c].tolist()) for c in frame.columns})
    out.index = pd.Index(years.years, name="audit_year")
    return out


__all__ = ["COMPLETENESS_FIELDS", "completeness_table", "design_table", "volume_table"]
