"""The mapping file of an extract import: which raw field and code becomes which contract column and value.

A mapping is YAML (format and a complete example: ``docs/methods/import.md``); :func:`load_mapping`
reads it into a frozen :class:`ExtractMapping` and checks everything that can be checked without
reading the data: unknown keys (at every level), types, contract columns and registry outcomes by
name, code values against the contract (``sex`` must become ``F``/``M``…), date formats, the rules
deriving outcomes, the columns an outcome's eligible group needs, and that the files exist.  Every
problem is a :class:`~rp2pr_eval.errors.ParameterError` naming the mapping file and the key.

Codes are matched as text: a YAML key ``1`` matches a raw ``1`` (or a Stata ``1.0``), ``1A`` matches
``1A``; the YAML key ``null`` (or ``~``) stands for a blank raw value; the value ``null`` means
"missing" in the contract table.  A YAML boolean key (``yes``, ``no``, ``true``, ``on`` …, which
PyYAML reads as booleans) is refused: quote it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import yaml

from rp2pr_eval.data.contract import COLUMN_RULES
from rp2pr_eval.data.readers import file_format
from rp2pr_eval.errors import DataError, ParameterError
from rp2pr_eval.study.outcomes import OUTCOMES

#: Top-level keys of a mapping file and what each holds.
MAPPING_KEYS: Mapping[str, str] = MappingProxyType({
    "source": "the extract file (CSV, CSV.gz, Parquet, .dta, .sas7bdat, .xpt, .xlsx), relative to the mapping",
    "allocation": "the allocation list, one row per trust (trust, pair, arm), relative to the mapping",
    "allocation_columns": "contract name (trust_id, pair_id, arm) -> column of the allocation list",
    "columns": "contract column -> raw field",
    "audit_year": "a raw field holding the year, or {from_date, format, year: calendar | financial}",
    "codes": "contract column -> {raw code: contract value}; the key null is a blank raw value",
    "outcomes": "registry outcome -> {from, codes} | {days_between: [start, end], format} | {at_most, of}",
    "extra_columns": "further columns to keep: name -> raw field or {from, codes}",
    "drop": "rows to leave out on purpose: years_outside_design, trusts_not_in_allocation, rows_where",
    "date_format": "default strptime format of date fields (default %Y-%m-%d)",
    "incomplete_pairs": "a pair of the allocation with one trust: drop (leave its patients out) or keep "
                        "(a one-trust cluster); unset: an error",
    "description": "free text",
})
REQUIRED_KEYS = ("source", "allocation", "columns", "audit_year")
#: Contract columns that come from a raw field (``pair_id``/``arm`` come from the allocation,
#: ``audit_year`` from its own key, outcomes from ``outcomes``).
FIELD_COLUMNS = ("patient_id", "trust_id", "age", "sex", "performance_status", "stage", "histology",
                 "imd_quintile", "bronchoscopy")
REQUIRED_FIELD_COLUMNS = ("patient_id", "trust_id", "age", "sex", "performance_status", "stage", "histology",
                          "imd_quintile")
ALLOCATION_COLUMNS = ("trust_id", "pair_id", "arm")
#: What ``outcomes`` may name: the registry outcomes and ``died`` (the event column of survival).
OUTCOME_TARGETS = tuple(OUTCOMES) + ("died",)
DEFAULT_DATE_FORMAT = "%Y-%m-%d"
_RULE_KEYS = {"from": "a raw field", "codes": "its codes", "days_between": "[start field, end field]",
              "format": "date format of days_between", "at_most": "a threshold (days)", "of": "the outcome it applies to"}
_DROP_KEYS = ("years_outside_design", "trusts_not_in_allocation", "rows_where")
_YEAR_KEYS = ("from_date", "format", "year")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: Marks a codes table without an entry for blank raw values.
UNSET: Any = _Unset()


@dataclass(frozen=True, slots=True)
class Codes:
    """Raw code (as text) → contract value (``None`` = missing); ``blank`` is the value of a blank raw field."""

    table: Mapping[str, Any]
    blank: Any = UNSET

    @property
    def maps_blank(self) -> bool:
        return self.blank is not UNSET

    def shown(self) -> str:
        keys = [repr(k) for k in self.table] + (["null (blank)"] if self.maps_blank else [])
        return ", ".join(keys[:12]) + (f", … ({len(keys)} in all)" if len(keys) > 12 else "")


@dataclass(frozen=True, slots=True)
class FieldRule:
    """A column taken from one raw field, through its codes if any."""

    target: str
    field: str
    codes: Codes | None = None


@dataclass(frozen=True, slots=True)
class OutcomeRule:
    """How one outcome is made: ``kind`` ``"field"`` (``field`` + ``codes``), ``"days_between"``
    (``start``, ``end``, ``date_format``) or ``"at_most"`` (1 if outcome ``of`` ≤ ``threshold``)."""

    target: str
    kind: str
    field: str | None = None
    codes: Codes | None = None
    start: str | None = None
    end: str | None = None
    date_format: str | None = None
    of: str | None = None
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class YearRule:
    """``audit_year`` from a year field (``field``) or from a date (``from_date``, ``date_format``, ``year``)."""

    field: str
    from_date: bool = False
    date_format: str | None = None
    year: str = "calendar"


@dataclass(frozen=True, slots=True)
class DropRules:
    """Rows an import leaves out on purpose (each counted, with its reason, in the quality report)."""

    years_outside_design: bool = False
    trusts_not_in_allocation: bool = False
    rows_where: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExtractMapping:
    """A validated mapping file (see the module docstring and ``docs/methods/import.md``)."""

    path: Path | None
    source: Path
    allocation: Path
    allocation_columns: Mapping[str, str]
    columns: Mapping[str, FieldRule]
    audit_year: YearRule
    allocation_codes: Mapping[str, Codes]
    outcomes: Mapping[str, OutcomeRule]
    extra_columns: Mapping[str, FieldRule]
    drop: DropRules
    date_format: str
    description: str | None = None
    incomplete_pairs: str | None = None

    @property
    def name(self) -> str:
        """How errors name the mapping: its file, or ``mapping`` for one built in Python."""
        return str(self.path) if self.path is not None else "mapping"

    def source_fields(self) -> dict[str, list[str]]:
        """Raw field → the mapping keys that read it (for the check that every field exists)."""
        out: dict[str, list[str]] = {}

        def add(name: str | None, where: str) -> None:
            if name is not None:
                out.setdefault(name, []).append(where)

        for target, rule in self.columns.items():
            add(rule.field, f"columns.{target}")
        add(self.audit_year.field, "audit_year" + (".from_date" if self.audit_year.from_date else ""))
        for target, rule in self.outcomes.items():
            add(rule.field, f"outcomes.{target}.from")
            add(rule.start, f"outcomes.{target}.days_between")
            add(rule.end, f"outcomes.{target}.days_between")
        for target, rule in self.extra_columns.items():
            add(rule.field, f"extra_columns.{target}")
        for name in self.drop.rows_where:
            add(name, "drop.rows_where")
        return out


# ---------------------------------------------------------------------------------------------- parsing


class _Where:
    """Names the mapping file and a key in messages."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, message: str) -> ParameterError:
        return ParameterError(f"{self.source}: {key}: {message}")


def code_text(value: object) -> str:
    """A raw code as the text codes are matched on: whole numbers without a decimal point, text stripped."""
    if isinstance(value, bool):
        raise TypeError("boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value.strip()
    raise TypeError(type(value).__name__)


def _check_value(target: str, value: object, where: _Where, key: str, *, kind: str) -> object:
    """A code's contract value, checked against the target column's rule."""
    if kind == "extra":
        if value is None or (isinstance(value, (int, float, str)) and not isinstance(value, bool)):
            return value
        raise where.error(key, f"value {value!r} must be a number, text or null")
    if kind == "outcome":
        entry = OUTCOMES.get(target)
        if target == "died" or (entry is not None and entry.kind == "binary"):
            nullable = target != "died"
            if (value is None and nullable) or (isinstance(value, int) and not isinstance(value, bool) and value in (0, 1)):
                return value
            raise where.error(key, f"value {value!r} is not valid for {target!r}; expected 0, 1"
                                   + (" or null" if nullable else ""))
        if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0):
            return None if value is None else float(value)
        raise where.error(key, f"value {value!r} is not valid for {target!r}; expected a non-negative number or null")
    rule = COLUMN_RULES[target]
    if value is None:
        if rule.nullable:
            return None
        raise where.error(key, f"value null (missing) is not allowed for {target!r}; expected {rule.expected}")
    if rule.kind in ("string", "category"):
        if not isinstance(value, str) or not value.strip():
            raise where.error(key, f"value {value!r} for {target!r} must be non-empty text (quote it)")
        if rule.kind == "category" and target != "arm" and value not in rule.values:
            raise where.error(key, f"value {value!r} is not valid for {target!r}; expected {rule.expected}")
        return value
    if rule.kind == "int":
        lo, hi = rule.values
        if isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi:
            return value
        raise where.error(key, f"value {value!r} is not valid for {target!r}; expected {rule.expected}")
    if rule.kind == "binary":
        if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
            return value
        raise where.error(key, f"value {value!r} is not valid for {target!r}; expected 0 or 1")
    raise where.error(key, f"{target!r} cannot take coded values")  # pragma: no cover - no such column is mapped


def _codes(raw: object, target: str, where: _Where, key: str, *, kind: str) -> Codes:
    if not isinstance(raw, dict) or not raw:
        raise where.error(key, f"expected a mapping of raw code -> {target} value, got {raw!r}")
    table: dict[str, Any] = {}
    blank: Any = UNSET
    for code, value in raw.items():
        if code is None:
            blank = _check_value(target, value, where, f"{key}[null]", kind=kind)
            continue
        try:
            text = code_text(code)
        except TypeError as exc:
            hint = " (YAML reads yes/no/true/false/on/off as booleans: quote the code)" if str(exc) == "boolean" else ""
            raise where.error(key, f"code {code!r} must be text or a number{hint}") from None
        if not text:
            raise where.error(key, "an empty code; write null for a blank raw value")
        if text in table:
            raise where.error(key, f"code {text!r} appears twice")
        table[text] = _check_value(target, value, where, f"{key}[{text!r}]", kind=kind)
    return Codes(table=MappingProxyType(table), blank=blank)


def _field_name(value: object, where: _Where, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise where.error(key, f"expected the name of a raw field, got {value!r}")
    return value.strip()


def _date_format(value: object, where: _Where, key: str) -> str:
    if not isinstance(value, str) or "%" not in value:
        raise where.error(key, f"expected a strptime date format such as '%d/%m/%Y', got {value!r}")
    probe = dt.datetime(2012, 11, 23)
    try:
        back = dt.datetime.strptime(probe.strftime(value), value)
    except ValueError as exc:
        raise where.error(key, f"{value!r} is not a usable date format ({exc})") from None
    if back.date() != probe.date():
        raise where.error(key, f"{value!r} does not hold day, month and year (a date written with it cannot be read back)")
    return value


def _unknown(raw: Mapping, valid, where: _Where, key: str) -> None:
    bad = [k for k in raw if k not in valid]
    if bad:
        raise where.error(key, f"unknown key {bad[0]!r}; valid keys are {', '.join(valid)}")


def _bool(value: object, where: _Where, key: str) -> bool:
    if not isinstance(value, bool):
        raise where.error(key, f"expected true or false, got {value!r}")
    return value


def _path(value: object, base: Path, where: _Where, key: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise where.error(key, f"expected a file path, got {value!r}")
    path = Path(value)
    path = path if path.is_absolute() else base / path
    try:
        file_format(path)
    except DataError as exc:
        raise where.error(key, str(exc)) from None
    if not path.is_file():
        raise where.error(key, f"file {value!r} not found (looked for {path})")
    return path


def _outcome_rule(name: str, raw: object, where: _Where, date_format: str) -> OutcomeRule:
    key = f"outcomes.{name}"
    if name not in OUTCOME_TARGETS:
        raise where.error(key, f"unknown outcome {name!r}; expected one of {', '.join(OUTCOME_TARGETS)}")
    if isinstance(raw, str):
        raw = {"from": raw}
    if not isinstance(raw, dict):
        raise where.error(key, f"expected {{from: FIELD, codes: ...}}, {{days_between: [START, END]}} or "
                               f"{{at_most: DAYS, of: OUTCOME}}, got {raw!r}")
    _unknown(raw, tuple(_RULE_KEYS), where, key)
    forms = [k for k in ("from", "days_between", "at_most") if k in raw]
    if len(forms) != 1:
        raise where.error(key, "give exactly one of 'from', 'days_between' or 'at_most'"
                               + (f" (found {', '.join(forms)})" if forms else ""))
    kind = OUTCOMES[name].kind if name in OUTCOMES else "binary"
    form = forms[0]
    allowed = {"from": ("from", "codes"), "days_between": ("days_between", "format"), "at_most": ("at_most", "of")}[form]
    extra = [k for k in raw if k not in allowed]
    if extra:
        raise where.error(key, f"key {extra[0]!r} does not go with {form!r} (which takes {', '.join(allowed)})")
    if form == "from":
        codes = _codes(raw["codes"], name, where, f"{key}.codes", kind="outcome") if "codes" in raw else None
        return OutcomeRule(name, "field", field=_field_name(raw["from"], where, f"{key}.from"), codes=codes)
    if form == "days_between":
        if kind not in ("continuous", "time_to_event"):
            raise where.error(key, f"days_between makes a number of days; {name!r} is a {kind} outcome "
                                   "(use from/codes, or at_most)")
        pair = raw["days_between"]
        if not isinstance(pair, list) or len(pair) != 2:
            raise where.error(f"{key}.days_between", f"expected [START_FIELD, END_FIELD], got {pair!r}")
        fmt = _date_format(raw["format"], where, f"{key}.format") if "format" in raw else date_format
        return OutcomeRule(name, "days_between", start=_field_name(pair[0], where, f"{key}.days_between"),
                           end=_field_name(pair[1], where, f"{key}.days_between"), date_format=fmt)
    if kind != "binary" or name == "died":
        raise where.error(key, f"at_most makes a 0/1 outcome; {name!r} is not a binary registry outcome")
    threshold = raw["at_most"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise where.error(f"{key}.at_most", f"expected a number of days, got {threshold!r}")
    of = raw.get("of")
    if of not in OUTCOMES or OUTCOMES[of].kind != "continuous":
        valid = [n for n, e in OUTCOMES.items() if e.kind == "continuous"]
        raise where.error(f"{key}.of", f"expected a continuous outcome ({', '.join(valid)}), got {of!r}")
    return OutcomeRule(name, "at_most", of=of, threshold=float(threshold))


def _field_rule(target: str, raw: object, where: _Where, key: str, codes_raw: object | None, *, kind: str) -> FieldRule:
    if isinstance(raw, dict):
        _unknown(raw, ("from", "codes"), where, key)
        if "from" not in raw:
            raise where.error(key, "expected {from: FIELD, codes: {...}}")
        if codes_raw is not None and "codes" in raw:
            raise where.error(key, f"codes given twice (here and in codes.{target})")
        codes_raw = raw.get("codes", codes_raw)
        raw = raw["from"]
    field_name = _field_name(raw, where, key)
    codes = None if codes_raw is None else _codes(codes_raw, target, where, f"codes.{target}" if kind == "column"
                                                  else f"{key}.codes", kind=kind)
    return FieldRule(target, field_name, codes)


def parse_mapping(raw: object, *, base: Path, source: str = "mapping", path: Path | None = None) -> ExtractMapping:
    """Check a mapping held as a dict (what the YAML file holds) and build the :class:`ExtractMapping`.

    ``base`` is the folder relative paths resolve against; ``source`` names the mapping in errors.
    """
    where = _Where(source)
    if not isinstance(raw, dict):
        raise ParameterError(f"{source}: expected a mapping with keys {', '.join(REQUIRED_KEYS)}, got "
                             f"{type(raw).__name__}")
    _unknown(raw, tuple(MAPPING_KEYS), where, "mapping")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise ParameterError(f"{source}: required key(s) {', '.join(missing)} missing; a mapping needs "
                             f"{', '.join(REQUIRED_KEYS)} (see docs/methods/import.md)")
    date_format = _date_format(raw["date_format"], where, "date_format") if "date_format" in raw else DEFAULT_DATE_FORMAT
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise where.error("description", "expected text")
    source_path = _path(raw["source"], base, where, "source")
    allocation = _path(raw["allocation"], base, where, "allocation")

    codes_raw = raw.get("codes") or {}
    if not isinstance(codes_raw, dict):
        raise where.error("codes", f"expected contract column -> {{raw code: value}}, got {codes_raw!r}")
    codable = FIELD_COLUMNS + ("pair_id", "arm")
    for target in codes_raw:
        if target not in codable:
            hint = ""
            if target in OUTCOME_TARGETS:
                hint = f" (an outcome's codes go under outcomes.{target}.codes)"
            elif target == "audit_year":
                hint = " (audit_year is a year field or a date)"
            raise where.error("codes", f"unknown column {target!r}{hint}; codes apply to {', '.join(codable)}")

    columns_raw = raw["columns"]
    if not isinstance(columns_raw, dict):
        raise where.error("columns", f"expected contract column -> raw field, got {columns_raw!r}")
    columns: dict[str, FieldRule] = {}
    for target, value in columns_raw.items():
        if target not in FIELD_COLUMNS:
            if target in ("pair_id", "arm"):
                raise where.error("columns", f"{target!r} comes from the allocation list (allocation_columns), "
                                             "not from the extract")
            if target == "audit_year":
                raise where.error("columns", "audit_year has its own key (audit_year: FIELD or {from_date: ...})")
            if target in OUTCOME_TARGETS:
                raise where.error("columns", f"{target!r} is an outcome: map it under outcomes")
            raise where.error("columns", f"unknown contract column {target!r}; expected one of {', '.join(FIELD_COLUMNS)} "
                                         "(further columns go under extra_columns)")
        if isinstance(value, dict):
            raise where.error(f"columns.{target}", "expected a raw field name (codes go under codes)")
        columns[target] = _field_rule(target, value, where, f"columns.{target}", codes_raw.get(target), kind="column")
    missing = [c for c in REQUIRED_FIELD_COLUMNS if c not in columns]
    if missing:
        raise where.error("columns", f"required contract column(s) {', '.join(missing)} not mapped")

    alloc_raw = raw.get("allocation_columns") or {}
    if not isinstance(alloc_raw, dict):
        raise where.error("allocation_columns", f"expected contract name -> allocation column, got {alloc_raw!r}")
    _unknown(alloc_raw, ALLOCATION_COLUMNS, where, "allocation_columns")
    allocation_columns = {c: _field_name(alloc_raw.get(c, c), where, f"allocation_columns.{c}") for c in ALLOCATION_COLUMNS}
    allocation_codes = {c: _codes(codes_raw[c], c, where, f"codes.{c}", kind="column")
                        for c in ALLOCATION_COLUMNS if c in codes_raw}
    if "trust_id" in columns and columns["trust_id"].codes is not None:
        allocation_codes["trust_id"] = columns["trust_id"].codes

    year_raw = raw["audit_year"]
    if isinstance(year_raw, str):
        audit_year = YearRule(_field_name(year_raw, where, "audit_year"))
    elif isinstance(year_raw, dict):
        _unknown(year_raw, _YEAR_KEYS, where, "audit_year")
        if "from_date" not in year_raw:
            raise where.error("audit_year", "expected {from_date: FIELD, format: ..., year: calendar | financial}")
        year = year_raw.get("year", "calendar")
        if year not in ("calendar", "financial"):
            raise where.error("audit_year.year", f"{year!r} is not valid; expected 'calendar' or 'financial' "
                                                 "(April–March, named by its first year)")
        fmt = _date_format(year_raw["format"], where, "audit_year.format") if "format" in year_raw else date_format
        audit_year = YearRule(_field_name(year_raw["from_date"], where, "audit_year.from_date"), from_date=True,
                              date_format=fmt, year=year)
    else:
        raise where.error("audit_year", f"expected a raw field or {{from_date, format, year}}, got {year_raw!r}")

    outcomes_raw = raw.get("outcomes") or {}
    if not isinstance(outcomes_raw, dict):
        raise where.error("outcomes", f"expected registry outcome -> rule, got {outcomes_raw!r}")
    outcomes = {name: _outcome_rule(name, rule, where, date_format) for name, rule in outcomes_raw.items()}
    for name, rule in outcomes.items():
        if rule.kind == "at_most" and rule.of not in outcomes:
            raise where.error(f"outcomes.{name}.of", f"{rule.of!r} is not mapped under outcomes")
    if ("survival_days" in outcomes) != ("died" in outcomes):
        raise where.error("outcomes", "survival needs both 'survival_days' and 'died' (its event indicator)")
    mapped = set(columns) | set(outcomes)
    for name in outcomes:
        if name in OUTCOMES:
            need = [c for c in OUTCOMES[name].requires if c not in mapped]
            if need:
                raise where.error(f"outcomes.{name}", f"its eligible group ({OUTCOMES[name].eligible_group}) needs "
                                                      f"{', '.join(need)}, which the mapping does not make")

    extra_raw = raw.get("extra_columns") or {}
    if not isinstance(extra_raw, dict):
        raise where.error("extra_columns", f"expected name -> raw field or {{from, codes}}, got {extra_raw!r}")
    extra: dict[str, FieldRule] = {}
    for name, value in extra_raw.items():
        if not isinstance(name, str) or not name.strip():
            raise where.error("extra_columns", f"column name {name!r} must be text")
        if name in COLUMN_RULES or name in OUTCOME_TARGETS or name in ("pair_id", "arm", "audit_year"):
            raise where.error(f"extra_columns.{name}", f"{name!r} is a contract column or an outcome; map it under "
                                                       "columns or outcomes")
        extra[name] = _field_rule(name, value, where, f"extra_columns.{name}", None, kind="extra")

    drop_raw = raw.get("drop") or {}
    if not isinstance(drop_raw, dict):
        raise where.error("drop", f"expected a mapping with keys {', '.join(_DROP_KEYS)}, got {drop_raw!r}")
    _unknown(drop_raw, _DROP_KEYS, where, "drop")
    rows_where_raw = drop_raw.get("rows_where") or {}
    if not isinstance(rows_where_raw, dict):
        raise where.error("drop.rows_where", f"expected raw field -> [codes], got {rows_where_raw!r}")
    rows_where: dict[str, tuple[str, ...]] = {}
    for name, values in rows_where_raw.items():
        name = _field_name(name, where, "drop.rows_where")
        if not isinstance(values, list) or not values:
            raise where.error(f"drop.rows_where.{name}", f"expected a list of raw codes, got {values!r}")
        try:
            rows_where[name] = tuple("" if v is None else code_text(v) for v in values)
        except TypeError:
            raise where.error(f"drop.rows_where.{name}", "codes must be text or numbers (quote yes/no)") from None
    drop = DropRules(
        years_outside_design=_bool(drop_raw.get("years_outside_design", False), where, "drop.years_outside_design"),
        trusts_not_in_allocation=_bool(drop_raw.get("trusts_not_in_allocation", False), where,
                                       "drop.trusts_not_in_allocation"),
        rows_where=MappingProxyType(rows_where),
    )
    incomplete_pairs = raw.get("incomplete_pairs")
    if incomplete_pairs is not None and incomplete_pairs not in ("drop", "keep"):
        raise where.error("incomplete_pairs", f"{str(incomplete_pairs)[:40]!r} is not valid; expected 'drop' (leave the "
                                              "pair's patients out) or 'keep' (keep it as a one-trust cluster)")
    return ExtractMapping(
        path=path, source=source_path, allocation=allocation,
        allocation_columns=MappingProxyType(allocation_columns), columns=MappingProxyType(columns),
        audit_year=audit_year, allocation_codes=MappingProxyType(allocation_codes),
        outcomes=MappingProxyType(outcomes), extra_columns=MappingProxyType(extra), drop=drop,
        date_format=date_format, description=description, incomplete_pairs=incomplete_pairs,
    )


def load_mapping(path: str | Path) -> ExtractMapping:
    """Read and check a mapping YAML file (paths in it resolve relative to its folder).

    Raises
    ------
    ParameterError
        The file is missing or not YAML, or any key is unknown, of the wrong type, or names a column,
        outcome, value or file that does not exist (the message names the file and the key).
    """
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"{path}: mapping file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ParameterError(f"{path}: not UTF-8 text; expected a YAML mapping file") from None
    except yaml.YAMLError as exc:
        raise ParameterError(f"{path}: not valid YAML ({' '.join(str(exc).split())[:200]})") from None
    if raw is None:
        raise ParameterError(f"{path}: the mapping file is empty; it needs {', '.join(REQUIRED_KEYS)}")
    return parse_mapping(raw, base=path.resolve().parent, source=str(path), path=path)


__all__ = ["Codes", "DropRules", "ExtractMapping", "FieldRule", "MAPPING_KEYS", "OutcomeRule", "UNSET", "YearRule",
           "code_text", "load_mapping", "parse_mapping"]
