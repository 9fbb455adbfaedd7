"""Data-quality rule declarations: one pydantic model per rule type, discriminated on `type`.

A table's `rules:` in onceflow.yml (or a list of dicts or models given to
`onceflow.Validator`) is a list of these. They only describe a check; the validate step
compiles them into SQL (`onceflow.validate`). Every rule has a name unique in its table, a
severity (`error` by default, or `warn`), an optional row `filter` (a SQL condition), a
`stage` (`post_load`, on the loaded table, or `pre_load`, on each extracted file before
it is loaded) and, for rules that count failing rows, a threshold: `mostly` (the minimum
passing fraction of the rows the rule evaluates) or `max_failing` (a count; 0 when
neither is given).

A bad rule is refused with one line naming the table and the rule (`rule_list`), e.g.
`table shop.orders, rule 'email_ok': threshold out of range: mostly must be between 0
and 1 (a fraction of passing rows), got 1.5`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from onceflow.durations import duration_seconds
from onceflow.errors import did_you_mean, field_problem, first_problem
from onceflow.type_names import known

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")

# a number with an exponent as YAML 1.2 writes it; PyYAML reads YAML 1.1, where `1e6`
# (no dot) and `2.5e1` (no sign in the exponent) are text, and `2.5e+1` a float
_EXPONENT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+")


def _yaml12_number(value: Any) -> Any:
    """A bound YAML 1.1 left as text though YAML 1.2 (and JSON) reads it as a number
    (`max: 1e6`), as that number: refused, it asked for a number written without quotes,
    which it was. Text of any other form is left to the field's own checks."""
    if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
        number = float(value)
        # 1e400 is no double (inf): a bound no value can pass, or every value meets
        if math.isfinite(number):
            return int(number) if number.is_integer() and abs(number) < 2**53 else number
    return value


Number = Annotated[float | int, BeforeValidator(_yaml12_number)]
# a str bound is a date or timestamp literal (cast by the engine)
Bound = Annotated[float | int | str, BeforeValidator(_yaml12_number)]
Count = Annotated[int, BeforeValidator(_yaml12_number)]  # 1e6 rows: an exact float, an int


class _Rule(BaseModel):
    """What every rule has: name, severity, filter, stage and (row-counting rules) a threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: True when the rule counts failing rows, so that `mostly`/`max_failing` apply.
    COUNTS_ROWS: ClassVar[bool] = True

    name: str
    severity: Literal["error", "warn"] = "error"
    filter: str | None = None
    stage: Literal["post_load", "pre_load"] = "post_load"
    mostly: float | None = None
    max_failing: int | None = None
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"rule name {value!r}: use letters, digits, '_', '.' or '-' "
                "(it keys the rule's results)"
            )
        return value

    @field_validator("mostly", mode="before")
    @classmethod
    def _a_fraction(cls, value: Any) -> Any:
        if isinstance(value, bool):  # YAML's `true` would pass as 1.0
            raise ValueError(
                f"a fraction of passing rows between 0 and 1, got {str(value).lower()}"
            )
        return value

    @field_validator("min", "max", mode="before", check_fields=False)
    @classmethod
    def _bound_not_a_flag(cls, value: Any) -> Any:
        if isinstance(value, bool):  # YAML's `true` would be taken for 1
            raise ValueError(f"a bound is a number or a date, not {str(value).lower()}")
        return value

    @field_validator("max_failing", mode="before")
    @classmethod
    def _a_count(cls, value: Any) -> Any:
        value = _yaml12_number(value)  # `max_failing: 1e3`, as `row_count` takes it
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            shown = str(value).lower() if isinstance(value, bool) else repr(value)
            raise ValueError(f"a count of failing rows (a whole number), got {shown}")
        return value

    @model_validator(mode="after")
    def _threshold(self) -> _Rule:
        if self.mostly is not None and not 0 <= self.mostly <= 1:
            raise ValueError(
                "threshold out of range: mostly must be between 0 and 1 (a fraction of "
                f"passing rows), got {self.mostly:g}"
            )
        if self.max_failing is not None and self.max_failing < 0:
            raise ValueError(
                f"threshold out of range: max_failing must be 0 or more, got {self.max_failing}"
            )
        if self.mostly is not None and self.max_failing is not None:
            raise ValueError("give either mostly or max_failing, not both")
        if not self.COUNTS_ROWS and (self.mostly is not None or self.max_failing is not None):
            raise ValueError(
                f"a {self.type_name} rule checks one value, not rows: mostly/max_failing do "
                "not apply (use min/max)"
            )
        return self

    @property
    def type_name(self) -> str:
        """The rule's `type`."""
        return str(getattr(self, "type", ""))

    @property
    def columns_used(self) -> list[str]:
        """The columns the rule names directly (checked against the table before running)."""
        return []

    @property
    def sql_texts(self) -> list[str]:
        """The SQL the rule's author wrote (its filter, expression or query)."""
        return [self.filter] if self.filter else []

    @property
    def volatile(self) -> bool:
        """Whether the rule's answer depends on more than the data: its SQL reads the
        clock (`now()`, `current_date`), draws random numbers or reads files of its own
        (`read_parquet(...)`, `FROM 'x.parquet'`). Such a rule runs every time: a stored
        result, or one merged from it, would be an answer about another moment or file."""
        return any(_volatile_sql(text) for text in self.sql_texts)

    def definition_hash(self, *extra: object, without: Iterable[str] = ()) -> str:
        """A hash of everything that decides the rule's result (not its description).

        `extra` adds the engine and settings that change results (samples, engine name);
        `without` names more fields left out (the validator's cache: those it re-judges).
        """
        body = self.model_dump(mode="json", exclude={"description", *without})
        text = json.dumps([body, [str(e) for e in extra]], sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


# Functions whose value is not a function of the row: the clock, random numbers, and
# table functions that read files (whose content no fingerprint of the table covers).
# `age(x)` with one argument is measured from now; with two it is not, but a rule that
# runs every time is only slower, where a cached clock reading is wrong.
_VOLATILE_NAMES = frozenset(
    {
        *("now", "today", "age", "get_current_time", "get_current_timestamp"),
        *("transaction_timestamp", "statement_timestamp", "current_localtime"),
        *("current_localtimestamp", "current_date", "current_time", "current_timestamp"),
        *("localtime", "localtimestamp", "clock_timestamp", "timeofday", "epoch_ms_now"),
        *("random", "setseed", "uuid", "uuidv4", "uuidv7", "gen_random_uuid"),
        *("read_parquet", "parquet_scan", "read_csv", "read_csv_auto", "read_json"),
        *("read_json_auto", "read_ndjson", "read_ndjson_auto", "read_text", "read_blob"),
        *("delta_scan", "iceberg_scan", "glob", "sniff_csv", "read_xlsx", "st_read"),
    }
)
# a call: a name, bare or double-quoted, then "("
_CALL = re.compile(r'(?:"((?:[^"]|"")+)"|\b([A-Za-z_][A-Za-z0-9_]*))\s*\(')
# the clock words SQL lets one write without parentheses
_VOLATILE_WORD = re.compile(
    r"(?i)\b(?:current_date|current_time|current_timestamp|localtime|localtimestamp)\b"
)
_FROM_A_PATH = re.compile(r"(?i)\b(?:from|join)\s+'")
_STRING = re.compile(r"'(?:[^']|'')*'")
_IDENTIFIER = re.compile(r'"(?:[^"]|"")*"')


@functools.cache
def _volatile_sql(text: str) -> bool:
    if _FROM_A_PATH.search(text):  # DuckDB reads a quoted path in FROM as a file
        return True
    code = _STRING.sub("''", text)  # 'now()' in a string literal is no call
    for quoted, bare in _CALL.findall(code):
        if (quoted.replace('""', '"') or bare).lower() in _VOLATILE_NAMES:
            return True
    # a column named "today" is no clock word
    return bool(_VOLATILE_WORD.search(_IDENTIFIER.sub('""', code)))


def _named(value: str) -> str:
    """A column (or table) name that names something: '' (or only spaces) would pass
    `check` and fail when the rule runs, as a column no table has."""
    if not value.strip():
        raise ValueError(f"{value!r} names no column: give the column's name")
    return value


class _ColumnRule(_Rule):
    column: str

    @field_validator("column")
    @classmethod
    def _a_column(cls, value: str) -> str:
        return _named(value)

    @property
    def columns_used(self) -> list[str]:
        return [self.column]


def _need_a_bound(rule: Any, what: str = "min or max") -> None:
    """At least one bound; no NaN (it compares false with everything: a NaN min would
    pass every value, a NaN max fail them all); min not above max (every row would fail,
    and the report would blame the data for the rule)."""
    low, high = getattr(rule, "min", None), getattr(rule, "max", None)
    if low is None and high is None:
        raise ValueError(f"a {rule.type} rule needs {what}")
    for side, bound in (("min", low), ("max", high)):
        if isinstance(bound, float) and math.isnan(bound):
            raise ValueError(f"{side} is NaN, which no value can be compared with; give a number")
        if isinstance(bound, str):
            try:
                datetime.fromisoformat(bound)
            except ValueError:
                raise ValueError(
                    f"{side} {bound!r} is neither a number nor a date or timestamp literal "
                    "(2025-01-31, 2025-01-31T12:00:00+00:00); write a number without quotes"
                ) from None
    pair = _comparable(low, high)
    if pair is not None and pair[0] > pair[1]:
        raise ValueError(f"min ({low}) is above max ({high}): no value could pass; swap them")


def _comparable(low: Any, high: Any) -> tuple[Any, Any] | None:
    """The two bounds as values of one ordered kind (numbers, or date/timestamp
    literals), or None when they cannot be ordered here (one missing, mixed kinds)."""
    if low is None or high is None:
        return None
    if isinstance(low, int | float) and isinstance(high, int | float):
        return low, high
    if isinstance(low, str) and isinstance(high, str):
        try:
            first, second = datetime.fromisoformat(low), datetime.fromisoformat(high)
        except ValueError:
            return None
        if (first.tzinfo is None) != (second.tzinfo is None):
            return None
        return first, second
    return None


class Completeness(_ColumnRule):
    """The column is not NULL (NULLs are what this rule counts)."""

    type: Literal["completeness"] = "completeness"


class Uniqueness(_Rule):
    """No two rows share the key (one column or a composite); rows with a NULL key part
    are not compared (SQL's UNIQUE)."""

    type: Literal["uniqueness"] = "uniqueness"
    columns: list[str] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _one_column(cls, data: Any) -> Any:
        if isinstance(data, dict) and "column" in data and "columns" not in data:
            data = {**data, "columns": [data["column"]]}
            del data["column"]
        return data

    @field_validator("columns")
    @classmethod
    def _each_a_column(cls, value: list[str]) -> list[str]:
        return [_named(column) for column in value]

    @property
    def columns_used(self) -> list[str]:
        return list(self.columns)


class Range(_ColumnRule):
    """min <= value <= max (strict when `inclusive: false`); either bound may be left out."""

    type: Literal["range"] = "range"
    min: Bound | None = None
    max: Bound | None = None
    inclusive: bool = True

    @model_validator(mode="after")
    def _bounds(self) -> Range:
        _need_a_bound(self)
        pair = _comparable(self.min, self.max)
        if not self.inclusive and pair is not None and pair[0] == pair[1]:
            raise ValueError(
                f"min and max are both {self.min} with inclusive: false: no value could pass"
            )
        return self


class AllowedValues(_ColumnRule):
    """The value is one of `values`."""

    type: Literal["allowed_values"] = "allowed_values"
    values: list[str | int | float | bool] = Field(min_length=1)

    @field_validator("values", mode="before")
    @classmethod
    def _null_is_not_judged(cls, value: Any) -> Any:
        # `[a, b, null]` says NULL is fine, which it is: a row-level rule ignores NULLs
        # (a completeness rule forbids them), so the null asks for nothing more
        if isinstance(value, list) and None in value:
            kept = [v for v in value if v is not None]
            if not kept:
                raise ValueError("give at least one value that is not null")
            return kept
        return value


def _re2_problem(pattern: str) -> str | None:
    """Why RE2 (DuckDB's regex engine) refuses `pattern`: None when it compiles, "" when
    DuckDB cannot be asked."""
    try:
        import duckdb
    except ImportError:  # pragma: no cover - a dependency
        return ""
    try:
        duckdb.execute("SELECT regexp_matches('', ?)", [pattern]).fetchall()
    except duckdb.Error as error:
        return str(error).removeprefix("Invalid Input Error: ").splitlines()[0]
    return None


class Regex(_ColumnRule):
    """The (text) value matches `pattern` anywhere (anchor it with ^...$ to match whole)."""

    type: Literal["regex"] = "regex"
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as error:
            # RE2, which runs the rule, has syntax Python lacks (\pL, \p{Han}, \z): only
            # a pattern RE2 refuses too is bad. Asked only here, as importing DuckDB
            # costs 0.2-0.5 s, too much for every config read
            re2 = _re2_problem(value)
            if re2 is not None:
                raise ValueError(f"bad regex {value!r}: {re2 or error}") from None
        return value


class Length(_ColumnRule):
    """min <= length of the text value <= max (characters)."""

    type: Literal["length"] = "length"
    min: Count | None = Field(None, ge=0)
    max: Count | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> Length:
        _need_a_bound(self)
        return self


class RowCount(_Rule):
    """min <= number of rows (after `filter`) <= max."""

    COUNTS_ROWS: ClassVar[bool] = False
    type: Literal["row_count"] = "row_count"
    min: Count | None = Field(None, ge=0)
    max: Count | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> RowCount:
        _need_a_bound(self)
        return self


def parse_duration(value: str | float | int) -> float:
    """`48h`, `30m`, `2d`, `1d12h`, `90s`, `1w` or a number of seconds -> seconds (see
    onceflow.durations)."""
    return duration_seconds(value, bare=1, bare_name="seconds")


class Freshness(_ColumnRule):
    """The newest value of a timestamp column is at most `max_age` old, measured from
    `reference_time`, else the run's window end, else now."""

    COUNTS_ROWS: ClassVar[bool] = False
    type: Literal["freshness"] = "freshness"
    max_age: str | float
    reference_time: datetime | None = None

    @field_validator("max_age")
    @classmethod
    def _duration(cls, value: str | float) -> str | float:
        parse_duration(value)
        return value

    @property
    def max_age_seconds(self) -> float:
        """`max_age` in seconds."""
        return parse_duration(self.max_age)


class Reference(BaseModel):
    """The other side of a referential rule: a config table (key or name) or a path."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    table: str
    column: str

    @field_validator("column")
    @classmethod
    def _a_column(cls, value: str) -> str:
        return _named(value)

    @field_validator("table")
    @classmethod
    def _a_table(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(f"{value!r} names no table: give a table of the config, or a path")
        return value


class Referential(_ColumnRule):
    """Every (non-NULL) value is present in the reference table's column."""

    type: Literal["referential"] = "referential"
    reference: Reference


class Schema(_Rule):
    """The columns are present with the expected types (None: any type); with
    `allow_extra: false`, no other columns (the audit columns `_source_file`,
    `_load_timestamp`, `_batch_id` are always allowed)."""

    COUNTS_ROWS: ClassVar[bool] = False
    type: Literal["schema"] = "schema"
    columns: dict[str, str | None] = Field(min_length=1)
    allow_extra: bool = True

    @model_validator(mode="after")
    def _no_filter(self) -> Schema:
        if self.filter is not None:
            raise ValueError(
                "a schema rule checks the table's columns, not rows: filter does not apply"
            )
        return self

    @field_validator("columns")
    @classmethod
    def _known_types(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        for column, declared in value.items():
            _named(column)
            if declared is not None and not known(declared):
                raise ValueError(
                    f"column {column!r}: unknown type {declared!r} (use an engine type such "
                    "as BIGINT, DECIMAL(12,2), VARCHAR, TIMESTAMP WITH TIME ZONE, or an Arrow "
                    "one such as int64, decimal128(12, 2), string, timestamp[us]; null for "
                    "any type)"
                )
        return value


class Statistic(_ColumnRule):
    """A statistic of the column's non-NULL values lies within [min, max]."""

    COUNTS_ROWS: ClassVar[bool] = False
    type: Literal["statistic"] = "statistic"
    statistic: Literal["mean", "min", "max", "sum", "stddev", "quantile"]
    quantile: float | None = None
    min: Number | None = None
    max: Number | None = None

    @model_validator(mode="after")
    def _quantile(self) -> Statistic:
        _need_a_bound(self)
        if self.statistic == "quantile":
            if self.quantile is None or not 0 <= self.quantile <= 1:
                raise ValueError("statistic quantile needs `quantile:` between 0 and 1")
        elif self.quantile is not None:
            raise ValueError("`quantile:` goes with `statistic: quantile`")
        return self


class SqlPredicate(_Rule):
    """A row-level SQL condition every row must meet (rows where it is NULL are ignored)."""

    type: Literal["sql_predicate"] = "sql_predicate"
    expression: str = Field(min_length=1)

    @property
    def sql_texts(self) -> list[str]:
        return [*super().sql_texts, self.expression]


class SqlQuery(_Rule):
    """A SQL query over `{table}` that returns the failing rows."""

    type: Literal["sql_query"] = "sql_query"
    query: str = Field(min_length=1)

    @property
    def sql_texts(self) -> list[str]:
        return [*super().sql_texts, self.query]

    @field_validator("query")
    @classmethod
    def _placeholder(cls, value: str) -> str:
        if "{table}" not in value:
            raise ValueError("a sql_query names the table as {table}, e.g. SELECT * FROM {table}")
        return value


RULE_TYPES: dict[str, type[_Rule]] = {
    "completeness": Completeness,
    "uniqueness": Uniqueness,
    "range": Range,
    "allowed_values": AllowedValues,
    "regex": Regex,
    "length": Length,
    "row_count": RowCount,
    "freshness": Freshness,
    "referential": Referential,
    "schema": Schema,
    "statistic": Statistic,
    "sql_predicate": SqlPredicate,
    "sql_query": SqlQuery,
}

Rule = Annotated[
    Completeness
    | Uniqueness
    | Range
    | AllowedValues
    | Regex
    | Length
    | RowCount
    | Freshness
    | Referential
    | Schema
    | Statistic
    | SqlPredicate
    | SqlQuery,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Rule] = TypeAdapter(Rule)


def _problem(error: ValidationError) -> str:
    first = first_problem(error.errors())
    loc = ".".join(str(p) for p in first["loc"] if not isinstance(p, int))
    loc = loc.split(".", 1)[1] if "." in loc else ("" if loc in RULE_TYPES else loc)
    if first["type"] == "extra_forbidden":
        kind = RULE_TYPES.get(str(first["loc"][0]))
        known = [
            key
            for name, info in (kind.model_fields.items() if kind else ())
            for key in (name, info.alias)
            if key
        ]
        hint = did_you_mean(loc.rsplit(".", 1)[-1], known)
        message = f"unknown field{hint}; check its spelling against docs/validate.md"
    else:
        message = field_problem(first)
    return f"{loc}: {message}" if loc else message


def parse_rule(data: Mapping[str, Any] | _Rule, table: str) -> _Rule:
    """One rule from a mapping (or a rule model); ValueError naming table and rule."""
    if isinstance(data, _Rule):
        return data
    if not isinstance(data, Mapping):
        raise ValueError(f"table {table}: a rule is a mapping with name and type, got {data!r}")
    name = data.get("name")
    where = f"table {table}, rule {name!r}" if name else f"table {table}, a rule without a name"
    if "rule_type" in data:  # the seed's name for `type`
        if "type" in data:
            raise ValueError(f"{where}: give `type:` or `rule_type:`, not both")
        data = {("type" if k == "rule_type" else k): v for k, v in data.items()}
    kind = data.get("type")
    if kind not in RULE_TYPES:
        known = ", ".join(sorted(RULE_TYPES))
        what = f"unknown rule type {kind!r}" if kind else "no `type:`"
        raise ValueError(f"{where}: {what} (types: {known})")
    if not name:
        raise ValueError(f"{where}: every rule needs a `name:` (unique in its table)")
    try:
        return _ADAPTER.validate_python(dict(data))
    except ValidationError as error:
        raise ValueError(f"{where}: {_problem(error)}") from None


def rule_list(items: Iterable[Mapping[str, Any] | _Rule], table: str) -> list[_Rule]:
    """Rules of one table, each checked, names unique; ValueError naming table and rule."""
    rules: list[_Rule] = []
    seen: set[str] = set()
    for item in items:
        rule = parse_rule(item, table)
        if rule.name in seen:
            raise ValueError(
                f"table {table}, rule {rule.name!r}: duplicate rule name (names key results; "
                "rename one)"
            )
        seen.add(rule.name)
        rules.append(rule)
    return rules


#: Any rule, as code that handles every type sees it.
AnyRule = _Rule

#: The rule types one row fails on its own, so `quarantine: true` can keep their failing rows.
ROW_LEVEL: tuple[type[_Rule], ...] = (
    Completeness,
    Range,
    AllowedValues,
    Regex,
    Length,
    SqlPredicate,
)


def quarantines_rows(rule: _Rule) -> bool:
    """Whether a table's quarantine keeps this rule's failing rows: a row-level rule of
    error severity run after the load, whatever its threshold (a rule that passes with
    `mostly` still names its failing rows). Warn rules, the pre-load gate (it refuses
    whole files) and rules no single row fails (uniqueness, referential, sql_query,
    row_count, freshness, statistic, schema) do not. The one definition of it: the
    quarantine pass selects by it, and `check` warns of a quarantine no rule feeds."""
    return isinstance(rule, ROW_LEVEL) and rule.severity == "error" and rule.stage == "post_load"


__all__ = [
    "ROW_LEVEL",
    "RULE_TYPES",
    "AllowedValues",
    "AnyRule",
    "Completeness",
    "Freshness",
    "Length",
    "Range",
    "Reference",
    "Referential",
    "Regex",
    "RowCount",
    "Rule",
    "Schema",
    "SqlPredicate",
    "SqlQuery",
    "Statistic",
    "Uniqueness",
    "parse_duration",
    "parse_rule",
    "quarantines_rows",
    "rule_list",
]
