"""Publication tables and their export under disclosure control.

- :func:`table_one`: baseline characteristics by arm and period (Table 1).
- :func:`results_table`: effects across outcomes and estimators.
- :func:`national_table`: national rates per outcome and audit year against
  the STUDY.md reference values.
- :func:`export_table`: CSV, LaTeX, Markdown and HTML, byte-for-byte
  deterministic, with disclosure control (DATA_CONTRACT.md §5, STUDY.md §5).

The tables of counts are built tidy first (numbers stay numbers); the wide
display frames are strings made by the formatters at the end of each builder.
Effects are formatted only by :func:`rp2pr_eval.results.format_frame`.

A frame that has been through disclosure control carries
``frame.attrs["disclosure"] = {"status": "protected", "policy": {...},
"count_columns": [...], "columns": [...]}``; a frame built with
``protect=False`` carries ``{"status": "unprotected"}`` and is refused by
:func:`export_table`. See docs/methods/tables.md.

Modules, lowest first: :mod:`.marking` (the disclosure policy and mark of a
table, the protected cells the builders share), :mod:`.table_one`,
:mod:`.results`, :mod:`.national`, :mod:`.export` (the writers).
"""
from __future__ import annotations

# The option aliases (ExportFormat, TableLayout, ResultsLayout, GroupKey) and ALL, MISSING stay importable from
# here as before the split; __all__ is the same list as then.
from rp2pr_eval.presentation.tables.export import ExportFormat, export_table
from rp2pr_eval.presentation.tables.marking import TableLayout, disclosure_policy, mark_protected
from rp2pr_eval.presentation.tables.national import NATIONAL_COLUMNS, national_table
from rp2pr_eval.presentation.tables.results import ResultsLayout, results_table
from rp2pr_eval.presentation.tables.table_one import ALL, MISSING, TABLE_ONE_COLUMNS, GroupKey, table_one

__all__ = [
    "NATIONAL_COLUMNS",
    "TABLE_ONE_COLUMNS",
    "disclosure_policy",
    "export_table",
    "mark_protected",
    "national_table",
    "results_table",
    "table_one",
]
