"""Statistical disclosure control for everything that leaves the analysis.

Exported tables (CSV/LaTeX/HTML, the report, executed notebooks) and the
saved results figures are drawn from must not show small counts, nor let a
reader work a small count out from the totals, the bounds the symbols give,
or the same counts in another table. Model estimates and confidence
intervals are exempt. Nothing here changes its input: every function returns
new frames. Numbers stay numbers: only a column that holds a suppression
symbol becomes ``object`` dtype.

Modules:

* :mod:`.policy` — :class:`DisclosurePolicy`, the presets of STUDY.md §5 and
  :func:`policy_for_design`;
* :mod:`.linked` — the interval audit and secondary suppression for counts
  tied by linear equations (:func:`protect_linked`);
* :mod:`.suppression` — :func:`suppress_counts` on a two-way table with its
  totals, :func:`interval_audit`;
* :mod:`.protect` — :func:`protect_table`: counts with their percentages and
  means;
* :mod:`.check` — :func:`check_disclosure` and the rules the run-folder audit
  applies to any table or text.

The guarantee and its limits: docs/methods/disclosure.md.
"""
from rp2pr_eval.presentation.disclosure.check import (
    Finding,
    cell_count,
    check_disclosure,
    column_kind,
    small_counts_in_table,
    small_counts_in_text,
)
from rp2pr_eval.presentation.disclosure.linked import (
    LinkedCounts,
    exposed_cells,
    feasible_ranges,
    protect_linked,
)
from rp2pr_eval.presentation.disclosure.policy import DisclosurePolicy, policy_for_design
from rp2pr_eval.presentation.disclosure.protect import protect_table
from rp2pr_eval.presentation.disclosure.suppression import (
    TOTAL_LABEL,
    SuppressedTable,
    TableMargins,
    interval_audit,
    suppress_counts,
)

__all__ = [
    "TOTAL_LABEL",
    "DisclosurePolicy",
    "Finding",
    "LinkedCounts",
    "SuppressedTable",
    "TableMargins",
    "cell_count",
    "check_disclosure",
    "column_kind",
    "exposed_cells",
    "feasible_ranges",
    "interval_audit",
    "policy_for_design",
    "protect_linked",
    "protect_table",
    "small_counts_in_table",
    "small_counts_in_text",
    "suppress_counts",
]
