"""Audit of rendered tables and text: visible counts in the suppressed range.

:func:`check_disclosure` checks one exported frame against a policy (the
count columns named, or inferred). :func:`small_counts_in_table` and
:func:`small_counts_in_text` are the rules the run-folder audit
(:mod:`rp2pr_eval.pipeline.audit`) applies to every table and every piece
of prose it finds, whatever the columns are called.

**The rule for tables.** A cell is taken for a count of people, and flagged
when it lies in 1..k-1, if it is a whole number (an integer, a whole float
such as ``3.0``, a digit string such as ``"3"`` or ``"1,204"``, or the count
of an ``"n (pct%)"`` cell) in a column that is not exempt. A column is
exempt when a word of its header names something that is not a count of
people: a model estimate or its uncertainty (estimate, se, ci, lower,
upper, p, df, statistic, odds, hazard, ratio, tau, icc …), a percentage or
rate (its numerator and denominator are what is protected), a year,
period or id, a count of trusts, pairs or clusters, or a setting (seed,
draws, level …); see :data:`EXEMPT_WORDS`. A row is exempt when the first
word of its label is one of those (``"Trusts, n"``). Where a row has a
percentage column and a denominator column (``n``, ``denominator``,
``patients``, ``total``), the numerator the two imply, and the denominator
minus it, are checked too. Under a rounding policy, a count in a column
named as a count (``n``, ``count``, ``deaths`` … :data:`COUNT_WORDS`) must
also be a multiple of the base.

**The rule for prose** (text, Markdown, notebook streams, SVG text, HTML
outside tables): a number tied to people, ``n = 3``, ``3 patients``, ``3 of
40 deaths``, ``3 died``.

Trade-offs (false positives and misses): a small whole number in an
unexempt column that is not a count of people (a median of 3 days, a
category code 2 in a column named ``code2``) is flagged; rename the column
(e.g. ``median_days``) or leave such tables out of the run folder. A count
written in prose without a word for people (``3 of them``) is missed, and
so is a count embedded in a string cell that is not ``"n"`` or ``"n (pct)"``
(``"3/40"``). Images are not read.
"""
from __future__ import annotations

import math
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rp2pr_eval.presentation.disclosure.policy import DisclosurePolicy, is_int, parse_number

#: Header words that make a column exempt: not a count of people.
EXEMPT_WORDS: frozenset[str] = frozenset("""
estimate estimates est coef coefficient coefficients beta b se sd std stderr ci lower upper low high lcl ucl
p pvalue pval padj adj adjusted holm romano wolf fdr bh q value df dof t z stat statistic statistics chi2 f
or hr rr irr odds hazard ratio ratios log logit loglik likelihood aic bic tau tau2 phi rho icc sigma variance var
weight weights level alpha power mde effect effects mcse coverage bias rmse mse rejection rejections draws draw
ndraws n_draws sims nsims n_sims simulations threshold jobs workers threads digits decimals
seed seeds boot bootstrap iteration iterations iter percent pct proportion proportions share rate rates prop
year years audit_year period periods id ids trust_id pair_id patient_id trust trusts n_trusts pair pairs n_pairs
cluster clusters n_clusters rank order index version code page schema quad n_quad seconds time timing
""".split())
#: Header words that name a count of people (rounding is checked in these).
COUNT_WORDS: frozenset[str] = frozenset("""
n count counts number numerator denominator patients patient people persons individuals events deaths died
cases admissions episodes survivors men women total totals missing present
""".split())
#: Header words of a denominator column (with a percentage in the same row).
DENOMINATOR_WORDS: frozenset[str] = frozenset({"n", "denominator", "patients", "total", "people", "persons"})
_PERCENT_WORDS = frozenset({"percent", "pct", "proportion", "share", "rate", "prop", "%"})
_ROW_EXEMPT = frozenset({"trust", "trusts", "pair", "pairs", "cluster", "clusters", "year", "years", "period",
                         "seed", "draws", "version"})
_DIGITS = re.compile(r"^\d{1,3}(,\d{3})+$|^\d+$")
_N_PCT = re.compile(r"^(\d{1,3}(?:,\d{3})+|\d+)\s*\(\s*(\d+(?:\.\d+)?)\s*%?\s*\)$")
_WORD = re.compile(r"[a-z0-9]+|%")
_PEOPLE = (r"patients?|people|persons?|individuals?|deaths?|died|cases?|men|women|survivors?|admissions?|"
           r"episodes?|records?|events?|respondents?|children|adults?")
_PROSE = [
    re.compile(r"(?<![\w.])[nN]\s*[=:]\s*(\d{1,3}(?:,\d{3})+|\d+)(?![\d.])"),
    re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(?:\s+of\s+(?:the\s+)?(?:\d{1,3}(?:,\d{3})+|\d+))?\s+"
               r"(?:(?:[a-z]+\s+)?(?:" + _PEOPLE + r"))\b", re.IGNORECASE),
]


def header_words(header: object) -> list[str]:
    """The lower-case words of a column header (``"ci_low"`` → ``["ci", "low", "ci_low"]``)."""
    text = " ".join(str(p) for p in header) if isinstance(header, tuple) else str(header)
    text = text.lower()
    words = _WORD.findall(text)
    whole = re.sub(r"[^a-z0-9_%]+", "_", text).strip("_")
    return words + ([whole] if whole and whole not in words else [])


def column_kind(header: object) -> str:
    """``"exempt"``, ``"percent"``, ``"count"`` (named as a count) or ``"audit"`` (whole numbers are counts)."""
    words = header_words(header)
    if any(w in _PERCENT_WORDS for w in words):
        return "percent"
    if any(w in EXEMPT_WORDS for w in words):
        return "exempt"
    if any(w in COUNT_WORDS for w in words):
        return "count"
    return "audit"


def cell_count(value: object, symbols: frozenset[str] | set[str]) -> int | None:
    """The count a rendered cell shows (integer, whole float, digit string, ``"n (pct%)"``), or None."""
    if value is None or isinstance(value, (bool, np.bool_)) or value is pd.NA:
        return None
    if is_int(value):
        return int(value) if value >= 0 else None
    if isinstance(value, (float, np.floating)):
        if math.isfinite(value) and value >= 0 and float(value).is_integer() and value < 2**53:
            return int(value)
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text or text in symbols or len(text) > 40:
            return None
        if _DIGITS.match(text):
            return int(text.replace(",", ""))
        match = _N_PCT.match(text)
        if match:
            return int(match.group(1).replace(",", ""))
        number = parse_number(text) if re.fullmatch(r"\d+\.0+", text) else None
        if number is not None:
            return int(number)
    return None


def _number(value: object) -> float | None:
    if isinstance(value, (bool, np.bool_)) or value is None or value is pd.NA:
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, str):
        text = value.strip().rstrip("%").strip()
        if len(text) > 40:
            return None
        number = parse_number(text)
        return number if number is not None and math.isfinite(number) else None
    return None


@dataclass(frozen=True, slots=True)
class Finding:
    """A visible count in the suppressed range: where, what, and why it is taken for a count."""

    row: object
    column: object
    count: int
    reason: str

    def message(self, policy: DisclosurePolicy) -> str:
        k = policy.threshold
        row = self.row if not isinstance(self.row, str) else self.row[:40]
        column = str(self.column)[:40]
        return (f"row {row!r}, column {column!r}: {self.reason} {self.count} is in the suppressed range "
                f"1-{k - 1}")


def _row_numbers(header: object, column: np.ndarray, symbols: frozenset[str]) -> bool:
    """An unnamed column numbering the rows 0, 1, 2, … or 1, 2, 3, … (a printed index)."""
    if str(header).strip().lower() not in ("", "none", "index", "unnamed: 0", "#"):
        return False
    counts = [cell_count(v, symbols) for v in column]
    if not counts or any(c is None for c in counts):
        return False
    return counts == list(range(counts[0], counts[0] + len(counts))) and counts[0] in (0, 1)


def _fractional(column: np.ndarray) -> bool:
    """Some value of the column is a number that is not whole (so the column holds no counts)."""
    for v in column:
        number = _number(v)
        if number is not None and not float(number).is_integer():
            return True
    return False


def small_counts_in_table(frame: pd.DataFrame, policy: DisclosurePolicy, *, label_columns: int | None = None
                          ) -> list[Finding]:
    """Counts in the suppressed range that a rendered table shows (the rule in the module docstring).

    Parameters
    ----------
    frame : pandas.DataFrame
        The table as rendered (numbers or strings); its index is ignored
        (reset it first if it holds data).
    policy : DisclosurePolicy
    label_columns : int, optional
        How many leading columns hold row labels (default: the leading
        columns with no count in them).

    Returns
    -------
    list of Finding
    """
    symbols = policy.symbols
    k = policy.threshold
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        return []
    columns = list(frame.columns)
    kinds = [column_kind(c) for c in columns]
    values = frame.to_numpy(dtype=object)
    numbering = [j for j, kind in enumerate(kinds) if kind == "audit" and _row_numbers(columns[j], values[:, j], symbols)]
    for j, kind in enumerate(kinds):
        if j in numbering or (kind == "audit" and _fractional(values[:, j])):
            kinds[j] = "exempt"   # row numbers, or a column of measurements (counts are whole numbers)
    if label_columns is None:
        label_columns = 0
        for j in range(len(columns)):
            if j not in numbering and any(cell_count(v, symbols) is not None for v in values[:, j]):
                break
            label_columns += 1
    found: list[Finding] = []
    percent_cols = [j for j, kind in enumerate(kinds) if kind == "percent"]
    scales = {j: _percent_scale(columns[j], values[:, j]) for j in percent_cols}
    den_cols = [j for j, c in enumerate(columns) if any(w in DENOMINATOR_WORDS for w in header_words(c))
                and kinds[j] in ("count", "audit")]
    for i in range(values.shape[0]):
        label = next((str(values[i, j]) for j in range(label_columns) if j not in numbering
                      and isinstance(values[i, j], str) and values[i, j].strip()), None)
        if label is not None and (header_words(label)[:1] or [""])[0] in _ROW_EXEMPT:
            continue
        row_label = label if label is not None else i
        for j, kind in enumerate(kinds):
            if j < label_columns or kind in ("exempt", "percent"):
                continue
            n = cell_count(values[i, j], symbols)
            if n is None:
                continue
            if 1 <= n < k:
                found.append(Finding(row_label, columns[j], n, "count"))
            elif kind == "count" and policy.rounding and n % policy.rounding:
                found.append(Finding(row_label, columns[j], n, f"count not rounded to {policy.rounding}:"))
        for jp in percent_cols:
            pct = _number(values[i, jp])
            if pct is None:
                continue
            half = _half_step(values[i, jp])
            for jd in den_cols:
                den = cell_count(values[i, jd], symbols)
                if den is None or den <= 0:
                    continue
                low = (pct - half) * den / scales[jp]
                high = (pct + half) * den / scales[jp]
                candidates = range(math.ceil(low - 1e-9), math.floor(high + 1e-9) + 1)
                if len(candidates) != 1:
                    continue   # the percentage, as shown, does not pin its numerator
                num = candidates[0]
                for what, count in (("numerator", num), ("complement", den - num)):
                    if 1 <= count < k:
                        found.append(Finding(row_label, columns[jp], count,
                                             f"{what} implied by the percentage and {columns[jd]!r}:"))
    return found


def _percent_scale(header: object, column: np.ndarray) -> float:
    """100 for a percentage (named so, or a value above 1), 1 for a proportion."""
    words = header_words(header)
    if any(w in ("percent", "pct", "%") for w in words):
        return 100.0
    numbers = [x for x in (_number(v) for v in column) if x is not None]
    return 100.0 if numbers and max(numbers) > 1 + 1e-9 else 1.0


def _half_step(value: object) -> float:
    """Half the last shown digit of a rendered number (0 for an unrounded float)."""
    if isinstance(value, str):
        text = value.strip().rstrip("%").strip()
        decimals = len(text.split(".")[1]) if "." in text else 0
        return 0.5 * 10.0 ** -decimals
    return 1e-9


def small_counts_in_text(text: str, policy: DisclosurePolicy) -> list[tuple[int, int, str]]:
    """Counts of people in prose (``n = 3``, ``3 patients``): (line number, count, phrase) in 1..k-1."""
    out = []
    k = policy.threshold
    for number, line in enumerate(text.splitlines(), start=1):
        if len(line) > 100_000:
            line = line[:100_000]
        for pattern in _PROSE:
            for match in pattern.finditer(line):
                n = int(match.group(1).replace(",", ""))
                if 1 <= n < k:
                    out.append((number, n, match.group(0)[:60]))
    return out


_STRICT_DIGITS = _DIGITS


def _as_count(value: object, symbols: frozenset[str] | set[str], strict: bool) -> int | None:
    """The count a rendered cell shows, or None (symbol, missing, not a count)."""
    if value is None or isinstance(value, (bool, np.bool_)) or value is pd.NA:
        return None
    if is_int(value):
        return int(value) if value >= 0 else None
    if isinstance(value, (float, np.floating)):
        if strict and math.isfinite(value) and value >= 0 and float(value).is_integer():
            return int(value)
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text or text in symbols:
            return None
        if _STRICT_DIGITS.match(text):
            return int(text.replace(",", ""))
        if strict:
            number = parse_number(text)
            if number is not None and math.isfinite(number) and number >= 0 and number.is_integer():
                return int(number)
    return None


def _looks_like_counts(column: pd.Series, symbols: frozenset[str] | set[str]) -> bool:
    found = False
    for value in column:
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            continue
        if isinstance(value, str) and value.strip() in symbols:
            continue
        if _as_count(value, symbols, strict=False) is None:
            return False
        found = True
    return found


def check_disclosure(
    df_rendered: pd.DataFrame,
    *,
    policy: DisclosurePolicy,
    count_columns: Sequence[Hashable] | None = None,
) -> list[str]:
    """List the disclosure-rule violations of a rendered (exported) table.

    A violation is a visible count in the suppressed range
    1..``policy.threshold``-1, or, under a rounding policy, a visible count
    that is not a multiple of the rounding base. Symbols and missing values
    are skipped. Secondary suppression is not audited here (it needs the
    table's structure; :func:`suppress_counts` guarantees it).

    Parameters
    ----------
    df_rendered : pandas.DataFrame
        The table as exported (numbers, symbol strings, or the same read back
        from CSV, where counts may be digit strings).
    policy : DisclosurePolicy
        The policy the table must satisfy.
    count_columns : sequence of labels, optional
        The columns to audit. Default: every column whose visible values are
        all whole numbers stored as integers or digit strings (floats, such as
        percentages, are skipped). The inference can flag a column of small
        integers that are not counts (a period number); pass the count
        columns for a precise audit. Named columns are audited whatever their
        type, floats with whole values included.

    Returns
    -------
    list of str
        One message per violating cell, naming its row and column; empty if
        the table passes.

    References
    ----------
    NHS Digital (2018), HES/ECDS disclosure control methodology; STUDY.md §5.
    """
    if not isinstance(df_rendered, pd.DataFrame):
        raise ValueError(f"check_disclosure: df_rendered must be a pandas DataFrame, got {type(df_rendered).__name__}")
    if not isinstance(policy, DisclosurePolicy):
        raise ValueError(f"check_disclosure: policy must be a DisclosurePolicy, got {type(policy).__name__}")
    symbols = set(policy.symbols)
    if count_columns is None:
        strict = False
        cols = [c for c in df_rendered.columns if _looks_like_counts(df_rendered[c], symbols)]
    else:
        strict = True
        cols = list(count_columns)
        missing = [c for c in cols if c not in df_rendered.columns]
        if missing:
            raise ValueError(f"check_disclosure: count column(s) {missing} not in the table")
    k = policy.threshold
    found: list[str] = []
    for col in cols:
        for label, value in df_rendered[col].items():
            n = _as_count(value, symbols, strict)
            if n is None:
                continue
            if 1 <= n < k:
                found.append(
                    f"row {label!r}, column {col!r}: count {n} is shown, but counts 1-{k - 1} must be "
                    f"suppressed under {policy.preset!r}"
                )
            elif policy.rounding is not None and n % policy.rounding:
                found.append(
                    f"row {label!r}, column {col!r}: count {n} is not rounded to a multiple of "
                    f"{policy.rounding} as {policy.preset!r} requires"
                )
    return found



__all__ = [
    "COUNT_WORDS",
    "DENOMINATOR_WORDS",
    "EXEMPT_WORDS",
    "Finding",
    "cell_count",
    "check_disclosure",
    "column_kind",
    "header_words",
    "small_counts_in_table",
    "small_counts_in_text",
]
