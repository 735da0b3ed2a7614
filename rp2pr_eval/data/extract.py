"""Import a raw extract (the audit's field names and codes) with an allocation list into a contract table.

:func:`import_extract` reads a mapping file (:mod:`rp2pr_eval.data.mapping`), checks it, checks that
every raw field it names is in the extract (from the header alone) and that the allocation list is a
valid pair design, then reads the extract and turns it into the patient table of DATA_CONTRACT §1,
validated by :func:`~rp2pr_eval.data.validate.validate_patients`.  :func:`import_with_quality` also
returns the data-quality frames (:mod:`rp2pr_eval.data.quality`) that the CLI writes under disclosure
control.

Nothing is guessed: a raw code the mapping does not name is an error (never silently missing); so is
a blank in a coded field the mapping does not cover (``null:`` in its codes), a date that does not
parse, a number that is not one, a trust of the extract missing from the allocation or the reverse.
Every problem names the raw field, the code and how many rows carry it, and one import reports the
problems of all fields at once.  Rows are left out only where the mapping says so (``drop``), each
reason counted in the quality report.  Outcome values outside the registry's eligible group (e.g.
resection for a patient without NSCLC) become missing, as the contract requires; the completeness
table counts eligible patients only.

The output has fixed types: text columns ``str``; ``audit_year``, ``age``, ``imd_quintile``,
``bronchoscopy`` and ``died`` ``int64``; ``performance_status`` and binary outcomes nullable
``Int64``; days ``float64`` — the types :func:`rp2pr_eval.simulate_nlca` returns, so importing the
generator's raw extract gives back its table exactly.  Columns come in the order: contract columns,
then further ``columns`` and ``extra_columns`` as the mapping lists them, then outcomes in registry
order (``died`` after ``survival_days``).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rp2pr_eval._options import IncompletePairs, check_option
from rp2pr_eval.data.contract import COLUMN_RULES, REQUIRED_COLUMNS
from rp2pr_eval.data.convert import apply_codes, dates, describe_counts, infer_values, numbers, text_codes
from rp2pr_eval.data.mapping import Codes, ExtractMapping, FieldRule, load_mapping
from rp2pr_eval.data.quality import ImportQuality, quality_frames
from rp2pr_eval.data.readers import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, read_columns, read_table
from rp2pr_eval.data.validate import validate_patients
from rp2pr_eval.errors import DataError, ParameterError
from rp2pr_eval.study.design import StudyDesign, resolve_design
from rp2pr_eval.study.outcomes import OUTCOMES

_MAX_PROBLEMS = 12


@dataclass(frozen=True, slots=True, eq=False)
class ImportResult:
    """What an import gives: the validated patient table, its data-quality frames and the mapping used."""

    patients: pd.DataFrame
    quality: ImportQuality
    mapping: ExtractMapping


def _raise(problems: list[str], what: str) -> None:
    if problems:
        shown = problems[:_MAX_PROBLEMS]
        more = f" | … and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        count = f"{len(problems)} problems: " if len(problems) > 1 else ""
        raise DataError(f"{what}: {count}" + " | ".join(shown) + more)


def _trusts_text(names: list[str], counts: list[int] | None = None, limit: int = 10) -> str:
    parts = [f"{n} ({c:,} patients)" if counts is not None else str(n)
             for n, c in zip(names, counts if counts is not None else names)]
    return ", ".join(parts[:limit]) + (f", … ({len(parts)} in all)" if len(parts) > limit else "")


# --------------------------------------------------------------------------------------------- allocation


def _coded_text(series: pd.Series, codes: Codes | None, *, field: str, target: str, problems: list[str]) -> np.ndarray:
    """Text values of an identifier or label field (object array, None where blank), through codes if any."""
    if codes is not None:
        values, blank = apply_codes(series, codes, field=field, target=target, problems=problems)
        values[blank] = None
        return values
    if pd.api.types.is_string_dtype(series.dtype) and not pd.api.types.is_object_dtype(series.dtype):
        text = series.str.strip().to_numpy(dtype=object, na_value=None)
        text[text == ""] = None
        return text
    idx, texts = text_codes(series)
    lookup = np.empty(len(texts) + 1, dtype=object)
    lookup[:-1] = texts
    lookup[-1] = None
    return lookup[idx]


def read_allocation(mapping: ExtractMapping, design: StudyDesign, *,
                    incomplete_pairs: IncompletePairs | None = None) -> pd.DataFrame:
    """The allocation list as ``trust_id, pair_id, arm, trust_code`` (one row per trust), checked as a pair design.

    ``incomplete_pairs`` (``"drop"`` or ``"keep"``) accepts a pair with one trust; the default
    (``None``) refuses it, naming the pair, the trust and how to choose.  The frame still holds
    such a pair's trust (:func:`import_with_quality` drops its patients under ``"drop"``).

    Raises
    ------
    DataError
        A mapped column missing, a blank or unmapped code, a trust listed twice, a pair with more than
        two trusts (or one, unless ``incomplete_pairs`` is set), or a pair with trusts in two arms (each
        naming the file, trusts and pairs).
    """
    path = mapping.allocation
    name = f"allocation {path.name}"
    columns = read_columns(path)
    cols = mapping.allocation_columns
    missing = [f"{c!r} (for {target})" for target, c in cols.items() if c not in columns]
    if missing:
        raise DataError(f"{name}: column(s) {', '.join(missing)} not found; it has {', '.join(columns[:20])} "
                        "(map them with allocation_columns)")
    raw = read_table(path, columns=list(dict.fromkeys(cols.values())), all_text=True, max_rows=100_000)
    problems: list[str] = []
    out = {}
    for target in ("trust_id", "pair_id", "arm"):
        before = len(problems)
        values = _coded_text(raw[cols[target]], mapping.allocation_codes.get(target), field=cols[target],
                             target=target, problems=problems)
        blank = pd.isna(values)
        if blank.any() and len(problems) == before:
            rows = ", ".join(str(i + 2) for i in np.flatnonzero(blank)[:5])
            problems.append(f"column {cols[target]!r} (-> {target}) is blank in {int(blank.sum())} row(s) (file line(s) {rows})")
        out[target] = values
    _raise(problems, name)
    trust_code = _coded_text(raw[cols["trust_id"]], None, field=cols["trust_id"], target="trust_id", problems=problems)
    frame = pd.DataFrame({"trust_id": out["trust_id"], "pair_id": out["pair_id"], "arm": out["arm"],
                          "trust_code": trust_code})
    bad_arm = ~frame["arm"].isin(design.arms)
    if bad_arm.any():
        counts = frame.loc[bad_arm, "arm"].value_counts()
        raise DataError(f"{name}: arm value(s) {describe_counts(list(counts.index), counts.tolist())} are not the "
                        f"design's arms {list(design.arms)}; map them with codes.arm")
    dup = frame["trust_id"].duplicated(keep=False)
    if dup.any():
        raise DataError(f"{name}: trust(s) {_trusts_text(sorted(frame.loc[dup, 'trust_id'].unique()))} are listed "
                        "more than once; expected one row per trust")
    sizes = frame.groupby("pair_id", sort=True)["trust_id"].agg(list)
    odd = sizes[sizes.map(len) > 2]
    if len(odd):
        desc = [f"{p} ({len(t)} trusts: {', '.join(t)})" for p, t in odd.items()]
        raise DataError(f"{name}: pair(s) {', '.join(desc[:10])} hold more than two trusts; expected two "
                        "trusts per pair")
    single = sizes[sizes.map(len) == 1]
    if len(single) and incomplete_pairs is None:
        desc = [f"{p} (only trust {t[0]})" for p, t in single.items()]
        raise DataError(f"{name}: pair(s) {', '.join(desc[:10])} have one trust; choose in the mapping "
                        "incomplete_pairs: drop (leave the pair's patients out) or incomplete_pairs: keep (keep it "
                        "as a one-trust cluster), or pass incomplete_pairs= (docs/METHODS.md, pairs that lost a trust)")
    arms = frame.groupby("pair_id", sort=True)["arm"].nunique()
    mixed = arms[arms > 1].index
    if len(mixed):
        desc = []
        for p in mixed[:10]:
            rows = frame.loc[frame["pair_id"] == p]
            desc.append(f"{p} ({', '.join(f'{t}: {a}' for t, a in zip(rows['trust_id'], rows['arm']))})")
        raise DataError(f"{name}: pair(s) {'; '.join(desc)} have trusts in two arms; both trusts of a pair must "
                        "be in the same arm")
    return frame.sort_values("trust_id", kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------- the import


def _resolve_mapping(mapping: object) -> ExtractMapping:
    if isinstance(mapping, ExtractMapping):
        return mapping
    if isinstance(mapping, (str, Path)):
        return load_mapping(mapping)
    raise ParameterError(f"mapping must be the path of a mapping YAML file or an ExtractMapping, got "
                         f"{type(mapping).__name__}")


def _audit_year(raw: pd.DataFrame, mapping: ExtractMapping, problems: list[str]) -> np.ndarray:
    rule = mapping.audit_year
    series = raw[rule.field]
    if rule.from_date:
        when = dates(series, rule.date_format, field=rule.field, target="audit_year", problems=problems)
        if problems:
            return np.zeros(len(raw), dtype=np.int64)
        blank = when.isna().to_numpy()
        if blank.any():
            problems.append(f"field {rule.field!r} (-> audit_year) is blank in {int(blank.sum()):,} rows; "
                            "every patient needs the date first seen")
            return np.zeros(len(raw), dtype=np.int64)
        year = when.dt.year.to_numpy(dtype=np.int64)
        if rule.year == "financial":  # April–March, named by its first year
            year = year - (when.dt.month.to_numpy() < 4)
        return year
    values = numbers(series, field=rule.field, target="audit_year", problems=problems)
    if problems:
        return np.zeros(len(raw), dtype=np.int64)
    blank = np.isnan(values)
    if blank.any():
        problems.append(f"field {rule.field!r} (-> audit_year) is blank in {int(blank.sum()):,} rows")
    frac = ~blank & (values != np.round(values))
    if frac.any():
        problems.append(f"field {rule.field!r} (-> audit_year) has non-integer years in {int(frac.sum()):,} rows")
    return np.where(blank, 0, values).astype(np.int64)


def _drop(keep: np.ndarray, mask: np.ndarray, reason: str, dropped: list[tuple[str, int]]) -> np.ndarray:
    hit = keep & mask
    if hit.any():
        dropped.append((reason, int(hit.sum())))
    return keep & ~mask


def _column(target: str, rule: FieldRule, series: pd.Series, problems: list[str]) -> object:
    """One contract column from its raw field, typed and checked against the contract rule."""
    contract = COLUMN_RULES[target]
    where = f"field {rule.field!r} (-> {target})"
    before = len(problems)
    if contract.kind in ("string", "category"):
        values = _coded_text(series, rule.codes, field=rule.field, target=target, problems=problems)
        if len(problems) > before:  # unmapped codes: reported; their rows are not "blank" too
            return pd.array(values, dtype="str")
        missing = pd.isna(values)
        if missing.any() and not contract.nullable:
            problems.append(f"{where} is blank in {int(missing.sum()):,} rows; expected {contract.expected}")
        if contract.kind == "category":
            present = pd.Series(values[~missing], dtype=object)
            bad = present[~present.isin(contract.values)].value_counts()
            if len(bad):
                problems.append(f"{where}: value(s) {describe_counts([str(v) for v in bad.index], bad.tolist())} are "
                                f"not {contract.expected}; map them with codes.{target}")
        return pd.array(values, dtype="str")
    if rule.codes is not None:
        values, blank = apply_codes(series, rule.codes, field=rule.field, target=target, problems=problems,
                                    as_float=True)
        if blank.any():
            problems.append(f"{where} is blank in {int(blank.sum()):,} rows and codes.{target} has no entry for a "
                            "blank (add null: VALUE, e.g. null: null to keep them missing)")
    else:
        values = numbers(series, field=rule.field, target=target, problems=problems)
    if len(problems) > before:
        return np.zeros(len(values), dtype=np.int64)
    missing = np.isnan(values)
    if missing.any() and not contract.nullable:
        problems.append(f"{where} is blank in {int(missing.sum()):,} rows; expected {contract.expected}")
    present = values[~missing]
    if contract.kind == "int":
        lo, hi = contract.values
        bad = (present != np.round(present)) | (present < lo) | (present > hi)
    else:  # binary
        bad = ~np.isin(present, (0.0, 1.0))
    if bad.any():
        vals, counts = np.unique(present[bad], return_counts=True)
        problems.append(f"{where}: value(s) {describe_counts([_num(v) for v in vals], counts.tolist())} are not "
                        f"{contract.expected}" + ("" if rule.codes is not None else f"; map them with codes.{target}"))
    whole = np.where(missing, 0, values).astype(np.int64) if not bad.any() else np.zeros(len(values), dtype=np.int64)
    if contract.nullable:
        out = pd.array(whole, dtype="Int64")
        out[missing] = pd.NA
        return out
    return whole


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _outcome(name: str, mapping: ExtractMapping, raw: pd.DataFrame, made: dict, problems: list[str]
             ) -> tuple[np.ndarray, np.ndarray, str]:
    """(values as floats with NaN, rows blank in a coded field without a null entry, description)."""
    rule = mapping.outcomes[name]
    target = name
    if rule.kind == "field":
        series = raw[rule.field]
        if rule.codes is not None:
            values, blank = apply_codes(series, rule.codes, field=rule.field, target=target, problems=problems,
                                        as_float=True)
            return values, blank, rule.field
        values = numbers(series, field=rule.field, target=target, problems=problems)
        return values, np.zeros(len(values), dtype=bool), rule.field
    if rule.kind == "days_between":
        start = dates(raw[rule.start], rule.date_format, field=rule.start, target=target, problems=problems)
        end = dates(raw[rule.end], rule.date_format, field=rule.end, target=target, problems=problems)
        days = ((end - start).dt.days).to_numpy(dtype=float, na_value=np.nan)
        negative = days < 0
        if negative.any():
            problems.append(f"fields {rule.start!r} -> {rule.end!r} (-> {target}): the end date is before the start "
                            f"date in {int(negative.sum()):,} rows")
        return days, np.zeros(len(days), dtype=bool), f"days from {rule.start} to {rule.end}"
    source = made[rule.of]
    values = np.where(np.isnan(source), np.nan, (source <= rule.threshold).astype(float))
    return values, np.zeros(len(values), dtype=bool), f"{rule.of} <= {rule.threshold:g}"


def import_with_quality(
    mapping: str | Path | ExtractMapping,
    *,
    design: StudyDesign | None = None,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    incomplete_pairs: IncompletePairs | None = None,
) -> ImportResult:
    """Import a raw extract as :func:`import_extract` does, and return the data-quality frames with it.

    Returns
    -------
    ImportResult
        ``patients`` (the validated contract table), ``quality`` (:class:`ImportQuality`: rows read,
        dropped with the reason and kept; completeness by field, trust and year; codes seen per field;
        trusts per pair and arm) and ``mapping``.
    """
    start_time = time.perf_counter()
    check_option("incomplete_pairs", incomplete_pairs, IncompletePairs, allow_none=True)
    design = resolve_design(design)
    mapping = _resolve_mapping(mapping)
    name = f"{mapping.source.name}"
    if incomplete_pairs is None:
        incomplete_pairs = mapping.incomplete_pairs

    # 1. everything that can be checked before the data are read
    available = set(read_columns(mapping.source, max_bytes=max_bytes))
    missing = {f: where for f, where in mapping.source_fields().items() if f not in available}
    if missing:
        listed = "; ".join(f"{f!r} ({', '.join(w)})" for f, w in missing.items())
        shown = ", ".join(sorted(available)[:30]) + (" …" if len(available) > 30 else "")
        raise DataError(f"{name}: field(s) named in {mapping.name} not found in the extract: {listed}; the extract "
                        f"has {shown}")
    allocation = read_allocation(mapping, design, incomplete_pairs=incomplete_pairs)
    sizes = allocation["pair_id"].value_counts()
    single_pairs = sorted(sizes.index[sizes == 1])
    single_trusts = allocation.loc[allocation["pair_id"].isin(single_pairs)]
    if incomplete_pairs == "drop" and single_pairs:
        allocation = allocation.loc[~allocation["pair_id"].isin(single_pairs)].reset_index(drop=True)

    # 2. read the fields the mapping uses
    raw = read_table(mapping.source, columns=list(mapping.source_fields()), all_text=True, max_rows=max_rows,
                     max_bytes=max_bytes)
    n_read = len(raw)
    problems: list[str] = []
    keep = np.ones(n_read, dtype=bool)
    dropped: list[tuple[str, int]] = []
    for field, codes in mapping.drop.rows_where.items():
        idx, texts = text_codes(raw[field])
        for code in codes:
            hit = (idx < 0) if code == "" else (idx == (texts.index(code) if code in texts else -2))
            keep = _drop(keep, hit, f"{field} is {'blank' if code == '' else repr(code)} (drop.rows_where)", dropped)

    year = _audit_year(raw, mapping, problems)
    _raise(problems, name)
    outside = keep & ~np.isin(year, design.years)
    if outside.any():
        vals, counts = np.unique(year[outside], return_counts=True)
        if mapping.drop.years_outside_design:
            for v, c in zip(vals, counts):
                keep = _drop(keep, year == v, f"audit year {v} outside the design {design.years[0]}–{design.years[-1]}",
                             dropped)
        else:
            raise DataError(f"{name}: audit_year (from {mapping.audit_year.field!r}) is outside the design years "
                            f"{design.years[0]}–{design.years[-1]} in {describe_counts([str(v) for v in vals], counts.tolist())}; "
                            "set drop: {years_outside_design: true} to leave them out, or use a design that covers them")

    trust_rule = mapping.columns["trust_id"]
    trust = _coded_text(raw[trust_rule.field], trust_rule.codes, field=trust_rule.field, target="trust_id",
                        problems=problems)
    _raise(problems, name)
    trust_raw = _coded_text(raw[trust_rule.field], None, field=trust_rule.field, target="trust_id", problems=problems)
    blank = pd.isna(trust) & keep
    if blank.any():
        raise DataError(f"{name}: field {trust_rule.field!r} (-> trust_id) is blank in {int(blank.sum()):,} rows; "
                        "every patient needs the trust first seen")
    trust_s = pd.Series(trust, dtype=object)
    if incomplete_pairs == "drop":
        for t, p in zip(single_trusts["trust_id"], single_trusts["pair_id"]):
            keep = _drop(keep, (trust_s == t).to_numpy(), f"trust {t}: pair {p} has one trust "
                         "(incomplete_pairs: drop)", dropped)
    listed = set(allocation["trust_id"])
    unknown = keep & ~trust_s.isin(listed).to_numpy()
    if unknown.any():
        counts = pd.Series(trust_raw[unknown]).value_counts().sort_index()
        mapped = dict(zip(trust_raw[unknown], trust[unknown]))
        label = [f"{c}" + (f" (-> {mapped[c]})" if mapped[c] != c else "") for c in counts.index]
        if mapping.drop.trusts_not_in_allocation:
            for code, lab in zip(counts.index, label):
                keep = _drop(keep, trust_raw == code, f"trust {lab} not in the allocation", dropped)
        else:
            raise DataError(f"{name}: trust(s) {_trusts_text(label, counts.tolist())} of field {trust_rule.field!r} are "
                            f"not in the allocation {mapping.allocation.name}; add them, or set drop: "
                            "{trusts_not_in_allocation: true} to leave their patients out")
    present = set(trust_s[keep])
    absent = allocation.loc[~allocation["trust_id"].isin(present)]
    if len(absent):
        label = [f"{c}" + (f" (-> {t})" if c != t else "") for c, t in zip(absent["trust_code"], absent["trust_id"])]
        raise DataError(f"{name}: trust(s) {_trusts_text(label)} of the allocation {mapping.allocation.name} have no "
                        f"patients in the extract (field {trust_rule.field!r}); every allocated trust needs patients")
    n_kept = int(keep.sum())
    if n_kept == 0:
        raise DataError(f"{name}: no rows left after the drop rules ({'; '.join(r for r, _ in dropped)})")
    if n_kept < n_read:
        raw = raw.loc[keep].reset_index(drop=True)
        year = year[keep]
        trust = trust[keep]

    # 3. the columns
    out: dict[str, object] = {}
    for target in REQUIRED_COLUMNS:
        if target == "pair_id" or target == "arm":
            continue
        if target == "audit_year":
            out[target] = year
        elif target == "trust_id":
            out[target] = pd.array(trust, dtype="str")
        else:
            out[target] = _column(target, mapping.columns[target], raw[mapping.columns[target].field], problems)
    for target, rule in mapping.columns.items():
        if target not in out:
            out[target] = _column(target, rule, raw[rule.field], problems)
    for target, rule in mapping.extra_columns.items():
        series = raw[rule.field]
        if rule.codes is not None:
            coded, blank = apply_codes(series, rule.codes, field=rule.field, target=target, problems=problems)
            if blank.any():
                problems.append(f"field {rule.field!r} (-> {target}) is blank in {int(blank.sum()):,} rows and its codes "
                                "have no entry for a blank (add null: VALUE)")
            out[target] = infer_values(coded, what=f"extra_columns.{target}", problems=problems)
        else:
            idx, texts = text_codes(series)
            parsed = pd.to_numeric(pd.Series(texts, dtype=object), errors="coerce")
            if texts and parsed.notna().all():
                vals = np.append(parsed.to_numpy(dtype=float), np.nan)[idx]
                obj = np.array([None if np.isnan(v) else (int(v) if float(v).is_integer() else float(v)) for v in vals],
                               dtype=object)
                out[target] = infer_values(obj, what=f"extra_columns.{target}", problems=problems)
            else:
                out[target] = pd.array(np.array(texts + [None], dtype=object)[idx], dtype="str")
    _raise(problems, name)
    frame = pd.DataFrame(out)
    frame.insert(REQUIRED_COLUMNS.index("pair_id"), "pair_id",
                 pd.array(frame["trust_id"].map(dict(zip(allocation["trust_id"], allocation["pair_id"]))).to_numpy(dtype=object), dtype="str"))
    frame.insert(REQUIRED_COLUMNS.index("arm"), "arm",
                 pd.array(frame["trust_id"].map(dict(zip(allocation["trust_id"], allocation["arm"]))).to_numpy(dtype=object), dtype="str"))

    # 4. outcomes, then their eligible groups
    made: dict[str, np.ndarray] = {}
    blanks: dict[str, np.ndarray] = {}
    described: dict[str, str] = {}
    order = [n for n in mapping.outcomes if mapping.outcomes[n].kind != "at_most"] + \
            [n for n in mapping.outcomes if mapping.outcomes[n].kind == "at_most"]
    for name_ in order:
        made[name_], blanks[name_], described[name_] = _outcome(name_, mapping, raw, made, problems)
    _raise(problems, name)
    eligible: dict[str, np.ndarray] = {}
    work = frame.copy()
    for name_ in made:
        work[name_] = made[name_]
    for name_ in order:
        entry = OUTCOMES.get(name_)
        ok = np.ones(len(frame), dtype=bool) if entry is None else entry.eligible(work).to_numpy(dtype=bool)
        eligible[name_] = ok
        rule = mapping.outcomes[name_]
        bad_blank = blanks[name_] & ok
        if bad_blank.any():
            problems.append(f"field {rule.field!r} (-> {name_}) is blank in {int(bad_blank.sum()):,} rows of its eligible "
                            f"group and its codes have no entry for a blank (add null: VALUE, e.g. null: 0)")
        values = np.where(ok, made[name_], np.nan)
        is_binary = name_ == "died" or (entry is not None and entry.kind == "binary")
        if is_binary:
            present = values[~np.isnan(values)]
            bad = ~np.isin(present, (0.0, 1.0))
            if bad.any():
                vals, counts = np.unique(present[bad], return_counts=True)
                problems.append(f"{described[name_]} (-> {name_}): value(s) {describe_counts([_num(v) for v in vals], counts.tolist())} "
                                "are not 0/1; map them with codes")
        elif (values[~np.isnan(values)] < 0).any():
            problems.append(f"{described[name_]} (-> {name_}): negative values in {int((values < 0).sum()):,} rows")
        if name_ in ("died", "survival_days") and np.isnan(values).any():
            problems.append(f"{described[name_]} (-> {name_}) is blank in {int(np.isnan(values).sum()):,} rows; "
                            "survival needs a value for every patient")
        made[name_] = values
        work[name_] = values
    _raise(problems, name)
    for name_ in [n for n in OUTCOMES if n in made] + (["died"] if "died" in made else []):
        values = made[name_]
        entry = OUTCOMES.get(name_)
        if name_ == "died":
            frame[name_] = values.astype(np.int64)
        elif entry.kind == "binary":
            arr = pd.array(np.where(np.isnan(values), 0, values).astype(np.int64), dtype="Int64")
            arr[np.isnan(values)] = pd.NA
            frame[name_] = arr
        else:
            frame[name_] = values

    # 5. the contract, and the quality report
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            validate_patients(frame, design=design, missing_period="warn", incomplete_pairs=incomplete_pairs)
    except DataError as exc:
        raise DataError(f"{name}: the imported table breaks the data contract: {exc}") from None
    for w in caught:
        warnings.warn(f"{name}: {w.message}", w.category, stacklevel=2)
    quality = quality_frames(frame, raw, mapping, allocation, n_read=n_read, dropped=dropped,
                             eligible=eligible, described=described, seconds=time.perf_counter() - start_time)
    return ImportResult(patients=frame, quality=quality, mapping=mapping)


def import_extract(
    mapping: str | Path | ExtractMapping,
    *,
    design: StudyDesign | None = None,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    incomplete_pairs: IncompletePairs | None = None,
) -> pd.DataFrame:
    """Turn a raw extract and an allocation list into a validated patient table, as a mapping file says.

    Parameters
    ----------
    mapping
        Path of the mapping YAML (format, a complete example and every error: ``docs/methods/import.md``),
        or an :class:`~rp2pr_eval.data.mapping.ExtractMapping`.  Paths in it resolve relative to its folder.
    design
        Study design (years, arm labels); ``None`` for the default design.
    max_rows, max_bytes
        Bounds on the extract (rows; file size, decompressed for ``.csv.gz``); ``None``: no bound.
    incomplete_pairs
        A pair of the allocation list with one trust (a merger, a withdrawal): ``"drop"`` leaves its
        patients out (a row of the quality report says so), ``"keep"`` keeps it as a one-trust cluster
        (as the estimators' ``incomplete_pairs="keep"``).  ``None`` (default): the mapping's
        ``incomplete_pairs`` key, and if that is unset such a pair is an error naming it and its trust.

    Returns
    -------
    pandas.DataFrame
        The patient table (DATA_CONTRACT §1), validated, with the column types listed in the module
        docstring; ``pair_id`` and ``arm`` from the allocation list.

    Raises
    ------
    ParameterError
        The mapping file is invalid (unknown key, wrong type, unknown column or outcome, invalid value
        of a code, missing file).
    DataError
        A field named in the mapping is not in the extract; a raw code is not mapped; a blank is not
        covered; a date does not parse; the allocation is not a valid pair design; a trust is in the
        extract but not in the allocation or the reverse; the file is corrupt, empty, of another type
        or over a bound; or the result breaks the data contract.  Each message names the raw field,
        the code and how many rows carry it.

    Notes
    -----
    Equivalent by hand in R: ``read.csv`` + ``dplyr::recode`` per field + ``dplyr::left_join`` of the
    allocation + checks; in Stata ``import delimited``, ``recode``, ``merge m:1 trust using allocation,
    assert(match)``.  The import is one call and its checks are exhaustive and named.
    """
    return import_with_quality(mapping, design=design, max_rows=max_rows, max_bytes=max_bytes,
                               incomplete_pairs=incomplete_pairs).patients


__all__ = ["ImportResult", "import_extract", "import_with_quality", "read_allocation"]
