"""Rules -> SQL, through sqlglot, in the engine's dialect: the one place SQL is built.

Each rule compiles to a `Plan`: named aggregate expressions (its metrics) that go into the
table's one fused aggregate query, the condition of a failing row (for samples and the
quarantine), and for uniqueness, referential and custom-query rules the separate query
they need. Expressions are sqlglot trees; `render` turns them into the engine's dialect,
so a Spark engine needs no change here.

Metrics (their names are the keys of a rule's partial state, see `metrics.py`):
    rows       rows in the rule's scope (its filter)
    evaluated  rows the rule judges: non-NULL ones (all rows for completeness)
    failing    rows that fail
    n, sum, min, max, mean, m2, quantile   a statistic's parts (m2 = var_pop * n)
    newest     the newest value (freshness)

User SQL (filters, predicates, queries) is parsed with sqlglot first: a syntax error, or
a column the table does not have, makes that rule `error` before anything runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from typing import Any

from sqlglot import Dialect, exp, parse_one
from sqlglot.errors import SqlglotError

from onceflow.rules import (
    AllowedValues,
    AnyRule,
    Completeness,
    Freshness,
    Length,
    Range,
    Referential,
    Regex,
    RowCount,
    Schema,
    SqlPredicate,
    SqlQuery,
    Statistic,
    Uniqueness,
)

TABLE_TOKEN = "__onceflow_table__"


class CompileError(Exception):
    """The rule cannot run on this table (bad SQL, unknown column): its outcome is error."""


@dataclass
class Plan:
    """What one rule needs from the engine."""

    rule: AnyRule
    aggregates: dict[str, exp.Expression] = field(default_factory=dict)
    scope: exp.Expression | None = None  # the rule's filter
    failing: exp.Expression | None = None  # the condition of a failing row
    separate: str | None = None  # unique | referential | query | schema
    query: exp.Expression | None = None  # sql_query: the parsed query on TABLE_TOKEN
    row_local: bool = False  # sql_query: a plain filter of the table (its count merges)
    # aggregates taken on the appended rows only in an incremental run (a quantile's
    # neighbourhood among the new values, see `quantile_band_query`)
    new_aggregates: dict[str, exp.Expression] = field(default_factory=dict)


def column(name: str) -> exp.Column:
    """A quoted column reference."""
    return exp.column(name, quoted=True)


def _and(*parts: exp.Expression | None) -> Any:
    kept = [p for p in parts if p is not None]
    if not kept:
        return None
    out: Any = kept[0]
    for part in kept[1:]:
        out = exp.and_(out, part)
    return out


def _filtered(aggregate: exp.Expression, condition: exp.Expression | None) -> Any:
    if condition is None:
        return aggregate
    return exp.Filter(this=aggregate, expression=exp.Where(this=condition))


def _count(condition: exp.Expression | None = None) -> Any:
    return _filtered(exp.Count(this=exp.Star()), condition)


def load_dialect(dialect: str) -> None:
    """Import the dialect's module now (sqlglot loads it on first use, ~25 ms)."""
    Dialect.get_or_raise(dialect)


def parse_sql(text: str, dialect: str, what: str) -> Any:
    """A user's SQL fragment as a tree; CompileError (one line) when it does not parse."""
    if what in ("filter", "expression") and "{table}" in text:
        raise CompileError(
            f"the {what} {_shown(text)} names {{table}}, but it is a condition on each row; "
            "a query over the table is a sql_query"
        )
    try:
        tree = parse_one(text, read=dialect)
    except SqlglotError as error:  # ParseError, and TokenError (an unclosed quote)
        detail = str(error).splitlines()[0] if str(error) else "syntax error"
        raise CompileError(f"bad SQL in {what} {_shown(text)}: {_readable(detail)}") from None
    if tree is None:
        raise CompileError(f"bad SQL in {what}: empty")
    return tree


def check_syntax(rule: AnyRule, syntax_error: Callable[[str], str | None]) -> None:
    """CompileError when the engine's own parser refuses a rule's SQL (`syntax_error`,
    the engine's): sqlglot reads some text the engine refuses as another valid rule
    (`v > > 200` as the bit shift `v >> 200`), which would then run and give an answer to
    a question nobody asked."""

    def condition(text: str) -> str:
        # a newline before ")": a trailing `-- comment` would swallow it; a trailing ";"
        # ends the text for sqlglot, as for the engine
        return f"SELECT 1 WHERE ({text.strip().rstrip(';')}\n)"

    written: list[tuple[str, str, str]] = []
    if rule.filter:
        written.append(("filter", rule.filter, condition(rule.filter)))
    if isinstance(rule, SqlPredicate):
        written.append(("expression", rule.expression, condition(rule.expression)))
    if isinstance(rule, SqlQuery):
        written.append(("query", rule.query, rule.query.replace("{table}", TABLE_TOKEN)))
    for what, text, probe in written:
        detail = syntax_error(probe)
        if detail is not None:
            raise CompileError(f"bad SQL in {what} {_shown(text)}: {detail}")


_NODE_CLASS = re.compile(r"<class '(?:[\w.]+\.)?(\w+)'>")
_MISSING = re.compile(r"Required keyword: '(\w+)' missing for (\w+)")
_TOKEN = re.compile(
    r"<Token token_type: TokenType\.\w+, text: (.*?), line: (\d+), col: (\d+)[^>]*>"
)


def _readable(detail: str) -> str:
    """sqlglot's message in the user's terms, not its classes and tokens."""
    detail = _NODE_CLASS.sub(r"\1", detail)
    detail = _MISSING.sub(
        lambda m: (
            f"an incomplete expression ({m[2]} has no {m[1]}: something is missing "
            "after an operator or keyword)"
        ),
        detail,
    )
    return _TOKEN.sub(lambda m: f"'{m[1]}' (line {m[2]}, column {m[3]})", detail)


def _shown(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= 80 else text[:77] + "...")


#: DuckDB aggregates sqlglot parses as plain functions.
_MORE_AGGREGATES = frozenset(
    {"count_star", "fsum", "sumkahan", "kahan_sum", "favg", "product", "histogram", "mode"}
)


def _aggregate(node: Any) -> bool:
    if isinstance(node, exp.AggFunc | exp.Window):
        return True
    return isinstance(node, exp.Anonymous) and str(node.name).lower() in _MORE_AGGREGATES


def row_level(tree: Any, text: str, what: str, dialect: str) -> Any:
    """`tree` when it can be judged row by row; CompileError naming an aggregate or
    window function in it (fused with the other rules' aggregates, it would fail as
    "aggregate function calls cannot be nested", which says nothing of the rule)."""
    found = next(
        (  # inside a subquery, an aggregate is that query's: `x > (SELECT avg(x) ...)` is fine
            node
            for node in tree.walk()
            if _aggregate(node) and node.find_ancestor(exp.Select) is None
        ),
        None,
    )
    if found is not None:
        kind = "a window function" if isinstance(found, exp.Window) else "an aggregate"
        name = _written_name(text, dialect, window=isinstance(found, exp.Window))
        name = name or found.sql(dialect=dialect)
        raise CompileError(
            f"the {what} {_shown(text)} holds {kind} ({name}), but it is judged row by row; "
            "use a sql_query that returns the failing rows, or a row_count or statistic rule"
        )
    return tree


def _written_name(text: str, dialect: str, *, window: bool) -> str | None:
    """The aggregate or window function as the user wrote it (`string_agg`), where
    sqlglot would print its own spelling (`LISTAGG`)."""
    if window:
        over = re.search(r"(?i)\b([A-Za-z_]\w*)\s*\([^()]*\)\s*over\b", text)
        return f"{over[1]}(...) OVER (...)" if over else None
    for match in re.finditer(r"\b([A-Za-z_]\w*)\s*\(", text):
        try:
            call = parse_one(f"{match[1]}(x)", read=dialect)
        except SqlglotError:
            continue
        if call is not None and _aggregate(call):
            return match[1]
    return None


def check_columns(
    names: Iterable[str | tuple[str, bool]],
    schema: dict[str, str],
    what: str,
    clashes: Collection[str] = frozenset(),
) -> None:
    """Each named column is in the table, in its exact case: the engine would bind `ID`
    to `id` (its names are case-insensitive), which for a table with both is the wrong
    column. A name from SQL text as (name, quoted): unquoted, its case is free, as SQL
    has it; a name of two columns that differ only in case is refused either way."""
    folded = {c.lower(): c for c in schema}
    clashing = {c.lower(): c for c in clashes}
    for item in names:
        name, exact = (item, True) if isinstance(item, str) else item
        if name.lower() in clashing:
            others = sorted(c for c in clashes if c.lower() == name.lower() and c != name)
            raise CompileError(
                f"column {name!r} in {what} cannot be told apart from "
                f"{', '.join(map(repr, others))} (the engine's column names are "
                "case-insensitive: it reads one of them under another name); rename one "
                "of them in the source"
            )
        if name in schema or (not exact and name.lower() in folded):
            continue
        if name.lower() in folded:
            raise CompileError(
                f"unknown column {name!r} in {what} (did you mean {folded[name.lower()]!r}? "
                "column names are matched in their exact case)"
            )
        listed = ", ".join(list(schema)[:20]) + (", ..." if len(schema) > 20 else "")
        raise CompileError(f"unknown column {name!r} in {what} (columns: {listed})")


# what a predicate's top may be that gives a number or text, never a truth value
_VALUES = (exp.Literal, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.DPipe, exp.Neg)


def _a_condition(tree: Any, text: str, schema: dict[str, str]) -> None:
    """Refuse a predicate that is a number or text, not a condition: the engine would
    cast `x` or `i - 1` to a boolean (non-zero is true) and judge that, where PostgreSQL
    refuses a WHERE that is no boolean. What cannot be told without the engine (a
    function's value) is left to it."""
    kind = None
    if isinstance(tree, _VALUES):
        kind = "a number or text"
    elif isinstance(tree, exp.Column) and not tree.table:
        found = {c.lower(): t for c, t in schema.items()}.get(tree.name.lower())
        if found is not None and found.upper() != "BOOLEAN":
            kind = f"the {found} column {tree.name!r}"
    if kind is not None:
        raise CompileError(
            f"expression {_shown(text)} is {kind}, not a condition: a row passes where the "
            "expression is true; write one, e.g. `x <> 0` or `x IS NOT NULL`"
        )


def column_type(name: str, schema: dict[str, str]) -> str:
    """A column's type in the engine's names (the column is known to exist)."""
    return schema[name]


_NUMERIC = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "REAL", "DOUBLE", "DECIMAL", "NUMERIC",
    "INT", "VARINT", "BIGNUM",
)  # fmt: skip


def _untyped(kind: str) -> bool:
    """A column of only NULLs read from pandas has DuckDB's type NULL: no values, any type."""
    return kind.strip('"').upper() == "NULL"


def _textual(kind: str, *, list_ok: bool = False) -> bool:
    """A type a regex or a length applies to: text (an ENUM, a pandas category, and a
    UUID, read as their text), and for a length also a list, whose length is its element
    count."""
    if _untyped(kind) or family(kind) in ("text", "UUID"):
        return True
    return list_ok and kind.strip('"').endswith("]")


_INTEGRAL = frozenset((*_NUMERIC[:10], "INT", "VARINT", "BIGNUM"))


def _integral(kind: str) -> bool:
    """An integer type, of any width."""
    return kind.strip('"').upper() in _INTEGRAL


def is_decimal(kind: str) -> bool:
    """A fixed-point type, whose quantile DuckDB would cut to the column's scale."""
    return kind.upper().startswith(("DECIMAL", "NUMERIC"))


def _referenced(tree: exp.Expression) -> list[tuple[str, bool]]:
    """The table's columns a row-level condition names, each with whether it is quoted
    (a subquery's are its own)."""
    return [
        (c.name, bool(c.this.args.get("quoted")))
        for c in tree.find_all(exp.Column)
        if c.name and not c.table and c.find_ancestor(exp.Select) is None
    ]


def family(kind: str) -> str:
    """The kind of values a type holds, as far as comparing them goes: number, text,
    boolean or date-time; any other type is its own (a UUID is not text)."""
    upper = kind.strip('"').upper()
    if upper.startswith("INTERVAL"):
        return upper
    if upper.startswith(_NUMERIC):
        return "number"
    if upper.startswith(("VARCHAR", "CHAR", "BPCHAR", "TEXT", "STRING", "ENUM")):
        return "text"  # an ENUM is a pandas categorical, text the engine compares as text
    if upper in ("BOOLEAN", "BOOL"):
        return "boolean"
    if upper.startswith(("DATE", "TIMESTAMP", "TIME")):
        return "date-time"
    return upper


def _value_family(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, int | float) else "text"


_FIX = {
    "text": "quote them: YAML reads 01 as the number 1 and yes as true",
    "number": "write them as numbers, without quotes",
    "boolean": "write them as true or false, without quotes",
    "date-time": "write them as quoted ISO text ('2025-01-31', '2025-01-31T12:00:00+00:00')",
}


def _check_values(rule: Range | AllowedValues, kind: str) -> None:
    """The rule's values are of the column's kind: the engine would convert one to the
    other (VARCHAR '01' = 1, BIGINT 2 = '02'), which passes what an exact comparison
    fails, or errors on the first value it cannot convert."""
    column_family = family(kind)
    if _untyped(kind):
        return
    given = list(rule.values) if isinstance(rule, AllowedValues) else [rule.min, rule.max]

    def fits(value: Any) -> bool:
        kind_of = _value_family(value)
        # a date, a time or a UUID is written as text, and read by the engine as one
        return kind_of == column_family or (
            kind_of == "text" and column_family in ("date-time", "UUID")
        )

    wrong = [v for v in given if v is not None and not fits(v)]
    if not wrong:
        return
    shown = ", ".join(_shown_value(v) for v in wrong[:5]) + (", ..." if len(wrong) > 5 else "")
    plural = {"number": "numbers", "boolean": "booleans"}
    kinds = sorted({plural.get(f, f) for f in map(_value_family, wrong)})
    what = "the values" if isinstance(rule, AllowedValues) else "the bounds"
    fix = _FIX.get(column_family, f"a {kind} column takes no {' or '.join(kinds)} values here")
    if isinstance(rule, Range) and column_family == "text":  # a quoted bound is a date
        fix = "a range compares numbers, dates or times: load the column as one"
    raise CompileError(
        f"column {rule.column!r} is {kind} but {what} {shown} are {' and '.join(kinds)}, "
        f"which the engine would convert implicitly; {fix}"
    )


def _shown_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value)


def check_keys(rule: Referential, kind: str, reference_kind: str) -> None:
    """A referential rule's two columns hold values of one kind (numbers of any width
    compare exactly; VARCHAR '01' = BIGINT 1 would be a conversion)."""
    if _untyped(kind) or _untyped(reference_kind) or family(kind) == family(reference_kind):
        return
    ref = rule.reference
    raise CompileError(
        f"column {rule.column!r} is {kind} and the reference column {ref.column!r} of "
        f"{ref.table!r} is {reference_kind}: the engine would convert one to the other "
        "('01', ' 1' and '1.0' would all find 1); make the types match in the source, or "
        "write a sql_query with an explicit cast"
    )


def _in_utc(value: Any, kind: str) -> Any:
    """A text value for a column of `kind`; on a DATE or a TIMESTAMP without a time zone
    (whose values are UTC), an ISO timestamp with a UTC offset becomes that moment in
    UTC without one: the engine would drop the offset and read 03:00+05:00 as 03:00."""
    upper = kind.strip('"').upper()
    naive = upper == "DATE" or (
        upper.startswith("TIMESTAMP") and "TIME ZONE" not in upper and upper != "TIMESTAMPTZ"
    )
    if not isinstance(value, str) or not naive:
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:  # not ISO: the engine reads it, or says why not
        return value
    if moment.tzinfo is None:
        return value
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def _has_time(bound: Any) -> bool:
    """A string bound with a time of day (not just a date)."""
    return isinstance(bound, str) and len(bound.strip()) > 10


# The widest DECIMAL of DuckDB (and of Spark).
_DECIMAL_DIGITS = 38
_DECIMAL = re.compile(r"(?:DECIMAL|NUMERIC)\(\s*(\d+)\s*,\s*(\d+)\s*\)", re.IGNORECASE)


def _in_column_type(
    bound: Any, kind: str, *, upper: bool, inclusive: bool
) -> tuple[exp.Expression, bool]:
    """A range bound as a literal, and whether the comparison includes it.

    On a DECIMAL(p,s) column a number bound becomes a DECIMAL(p,s) literal of the same
    meaning: compared with a DOUBLE, the column's values are cast to doubles, and
    12345678901234567890.12 on a DECIMAL(38,2) met `max: 12345678901234567890.11` (both
    the same double). A float bound is the decimal its repr writes (YAML's 0.7 is 0.7,
    as for a statistic). A bound finer than the column's scale is rounded inwards and the
    comparison made inclusive, exactly: a value of scale 2 is < 0.105 when <= 0.10 and
    > 0.105 when >= 0.11. A bound beyond the type's largest value is clamped to it, with
    a comparison every value meets (max 1e40: <= the largest) or none does (min 1e40:
    > the largest). The literal in the column's own type costs no cast of its values."""
    if isinstance(bound, float) and math.isfinite(bound) and _integral(kind):
        # compared with a DOUBLE the column's values would be cast to doubles, and above
        # 2**53 two neighbours are one double: 9007199254740993 met `max:
        # 9007199254740992.0`. An integer literal keeps the comparison exact.
        written = Decimal(repr(bound))
        whole = int(written.to_integral_value(ROUND_FLOOR if upper else ROUND_CEILING))
        return value_literal(whole), inclusive or whole != written
    match = _DECIMAL.fullmatch(kind.strip().strip('"'))
    if (
        match is None
        or isinstance(bound, bool)
        or not isinstance(bound, int | float)
        or (isinstance(bound, float) and not math.isfinite(bound))
    ):
        return value_literal(bound), inclusive
    width, scale = int(match.group(1)), int(match.group(2))
    with localcontext() as context:
        context.prec = 2 * _DECIMAL_DIGITS  # a quantized bound below has at most 2 x 38 digits
        written = Decimal(repr(bound)) if isinstance(bound, float) else Decimal(bound)
        step = Decimal(1).scaleb(-scale)
        largest = Decimal(10) ** (width - scale) - step
        if abs(written) > largest:
            # every value lies within +-largest: the side of the bound decides for all
            every = (written > 0) == upper
            edge, inclusive = (largest if written > 0 else -largest), every
        else:
            edge = written.quantize(step, rounding=ROUND_FLOOR if upper else ROUND_CEILING)
            inclusive = inclusive or edge != written
    cast = exp.DataType.build(f"DECIMAL({width}, {scale})")
    return exp.cast(exp.Literal.string(format(edge, "f")), cast), inclusive


def _condition(rule: AnyRule, col: exp.Expression, kind: str = "") -> exp.Expression:
    """The condition a non-NULL value must meet (NULL when the value is NULL)."""
    if isinstance(rule, Range):
        parts: list[Any] = []
        cls: Any
        low, high = _in_utc(rule.min, kind), _in_utc(rule.max, kind)
        if kind.upper() == "DATE" and (_has_time(low) or _has_time(high)):
            # the engine would cast the bound to a DATE and drop its time of day: compare
            # the date as its midnight instead
            col = exp.cast(col, exp.DataType.Type.TIMESTAMP)
        if low is not None:
            bound, inclusive = _in_column_type(low, kind, upper=False, inclusive=rule.inclusive)
            cls = exp.GTE if inclusive else exp.GT
            parts.append(cls(this=col.copy(), expression=bound))
        if high is not None:
            bound, inclusive = _in_column_type(high, kind, upper=True, inclusive=rule.inclusive)
            cls = exp.LTE if inclusive else exp.LT
            parts.append(cls(this=col.copy(), expression=bound))
        return exp.paren(_and(*parts))
    if isinstance(rule, AllowedValues):
        listed = [_in_utc(v, kind) for v in rule.values]
        if kind.upper() == "DATE" and any(_has_time(v) for v in listed):
            # as for a range: `'2024-01-01 12:00'` must not allow the date 2024-01-01
            col = exp.cast(col, exp.DataType.Type.TIMESTAMP)
        return exp.In(this=col, expressions=[value_literal(v) for v in listed])
    if isinstance(rule, Regex):
        return exp.RegexpLike(this=col, expression=value_literal(rule.pattern))
    if isinstance(rule, Length):
        length = exp.Length(this=col)
        parts = []
        if rule.min is not None:
            parts.append(exp.GTE(this=length.copy(), expression=value_literal(rule.min)))
        if rule.max is not None:
            parts.append(exp.LTE(this=length.copy(), expression=value_literal(rule.max)))
        return exp.paren(_and(*parts))
    raise AssertionError(type(rule).__name__)


def compile_rule(
    rule: AnyRule, schema: dict[str, str], dialect: str, clashes: Collection[str] = frozenset()
) -> Plan:
    """The plan of one rule on a table with `schema`; CompileError when it cannot run.

    `clashes`: the source's column names that differ from another only in case (the
    engine's `case_clashes`), which no rule can name."""
    if isinstance(rule, Schema):  # a missing column is its finding, one it cannot read not
        folded = {c.lower() for c in clashes}
        unreadable = [c for c in rule.columns if c.lower() in folded]
        check_columns(unreadable, schema, "the rule", clashes)
    else:
        check_columns(rule.columns_used, schema, "the rule", clashes)
    scope: Any = None
    if rule.filter:
        scope = row_level(parse_sql(rule.filter, dialect, "filter"), rule.filter, "filter", dialect)
        check_columns(_referenced(scope), schema, "filter", clashes)
        scope = exp.paren(scope)
    plan = Plan(rule, scope=scope)
    plan.aggregates["rows"] = _count(scope)
    if isinstance(rule, Completeness):
        plan.failing = exp.Is(this=column(rule.column), expression=exp.Null())
        # rows - non-NULL values rather than a filtered count: the engine computes each
        # distinct aggregate once, and other rules on the column need COUNT(column) too
        plan.aggregates["failing"] = exp.Sub(
            this=_count(scope), expression=_filtered(exp.Count(this=column(rule.column)), scope)
        )
    elif isinstance(rule, Range | AllowedValues | Regex | Length | SqlPredicate):
        ok: Any
        if isinstance(rule, SqlPredicate):
            text = rule.expression
            tree = parse_sql(text, dialect, "expression")
            ok = exp.paren(row_level(tree, text, "expression", dialect))
            check_columns(_referenced(ok), schema, "expression", clashes)
            _a_condition(tree, text, schema)
            plan.aggregates["evaluated"] = _filtered(exp.Count(this=ok.copy()), scope)
        else:
            kind = column_type(rule.column, schema)
            if isinstance(rule, Range | AllowedValues):
                _check_values(rule, kind)
            elif not _textual(kind, list_ok=isinstance(rule, Length)):
                what = "a regex" if isinstance(rule, Regex) else "a length"
                raise CompileError(
                    f"{what} rule needs a text column; {rule.column!r} is {kind} (bound a "
                    "number or a date with a range, or write a sql_predicate with "
                    f'CAST("{rule.column}" AS VARCHAR))'
                )
            ok = _condition(rule, column(rule.column), kind)
            plan.aggregates["evaluated"] = _filtered(exp.Count(this=column(rule.column)), scope)
        plan.failing = exp.Not(this=ok)
        plan.aggregates["failing"] = _count(_and(scope, plan.failing))
    elif isinstance(rule, Statistic):
        kind = column_type(rule.column, schema)
        if not kind.upper().startswith(_NUMERIC) and not _untyped(kind):
            raise CompileError(
                f"a statistic needs a numeric column; {rule.column!r} is {kind} (for dates "
                "and times use freshness or range)"
            )
        _statistic(plan, rule, scope, kind)
    elif isinstance(rule, Freshness):
        kind = column_type(rule.column, schema)
        if not kind.upper().startswith(("DATE", "TIMESTAMP")) and not _untyped(kind):
            # the newest of text or numbers is not a moment: an `error`, not a `fail`
            raise CompileError(
                f"freshness needs a date or timestamp column; {rule.column!r} is {kind} "
                "(load it as a timestamp, e.g. cast it in the source query)"
            )
        col = column(rule.column)
        plan.aggregates["n"] = _filtered(exp.Count(this=col.copy()), scope)
        plan.aggregates["newest"] = _filtered(exp.Max(this=col), scope)
    elif isinstance(rule, Uniqueness):
        if len(rule.columns) == 1:  # the same count as below, without a filter to evaluate
            evaluated = _filtered(exp.Count(this=column(rule.columns[0])), scope)
        else:
            keys = [
                exp.Not(this=exp.Is(this=column(c), expression=exp.Null())) for c in rule.columns
            ]
            evaluated = _count(_and(scope, *keys))
        plan.aggregates["evaluated"] = evaluated
        plan.separate = "unique"
    elif isinstance(rule, Referential):
        plan.aggregates["evaluated"] = _filtered(exp.Count(this=column(rule.column)), scope)
        plan.separate = "referential"
    elif isinstance(rule, SqlQuery):
        text = rule.query.replace("{table}", TABLE_TOKEN)
        plan.query = parse_sql(text, dialect, "query")
        plan.row_local = _row_local(plan.query)
        plan.separate = "query"
    elif isinstance(rule, Schema):
        plan.aggregates.clear()
        plan.separate = "schema"
    elif not isinstance(rule, RowCount):  # pragma: no cover - every type is handled
        raise CompileError(f"rule type {rule.type_name} has no compiler")
    # a row count needs only the `rows` aggregate every plan has
    return plan


def _statistic(plan: Plan, rule: Statistic, scope: exp.Expression | None, column_kind: str) -> None:
    col = column(rule.column)
    plan.aggregates["n"] = _filtered(exp.Count(this=col.copy()), scope)
    kind = rule.statistic
    if kind in ("mean", "sum"):
        plan.aggregates["sum"] = _filtered(exp.Sum(this=col), scope)
    elif kind == "min":
        plan.aggregates["min"] = _filtered(exp.Min(this=col), scope)
    elif kind == "max":
        plan.aggregates["max"] = _filtered(exp.Max(this=col), scope)
    elif kind == "stddev":
        as_double = exp.cast(col, exp.DataType.Type.DOUBLE)
        plan.aggregates["mean"] = _filtered(exp.Avg(this=as_double.copy()), scope)
        # each aggregate filtered: a FILTER after the product would bind to COUNT alone
        plan.aggregates["m2"] = exp.Mul(
            this=_filtered(exp.VariancePop(this=as_double), scope),
            expression=_filtered(exp.Count(this=col.copy()), scope),
        )
    else:  # quantile: needs every value; an incremental run narrows it to a band
        # a DECIMAL's would come back cut to the column's scale (0.01 and 0.02 -> 0.01):
        # interpolate in DOUBLE, as PostgreSQL's percentile_cont and pandas do
        value = _as_double(col) if is_decimal(column_kind) else col.copy()
        plan.aggregates["quantile"] = _filtered(
            exp.PercentileCont(this=value, expression=value_literal(rule.quantile)), scope
        )
        q = rule.quantile
        assert q is not None  # the rule's model requires it for a quantile
        near = [max(0.0, q - NEAR), min(1.0, q + NEAR)]
        plan.new_aggregates["near"] = _filtered(
            exp.PercentileDisc(
                this=_as_double(col),
                expression=exp.Array(expressions=[value_literal(q) for q in near]),
            ),
            scope,
        )


# the new values' quantiles at q -/+ NEAR bound the band an incremental quantile reads
NEAR = 0.0002


def _as_double(value: exp.Expression) -> exp.Expression:
    return exp.cast(value.copy(), exp.DataType.Type.DOUBLE)


def _double(value: float) -> exp.Expression:
    # through text, so that every finite double (1e300, 1e-300) reaches the engine as is
    return exp.cast(exp.Literal.string(repr(float(value))), exp.DataType.Type.DOUBLE)


def quantile_band_query(
    rel: str,
    rule: Statistic,
    scope: exp.Expression | None,
    band: tuple[Any, Any],
    ranks: tuple[int, int],
    fraction: float,
    keep: int = 0,
    kind: str = "",
) -> exp.Select:
    """The exact quantile of `rel` from the values inside `band` only (DuckDB), and the
    `keep` values on each side of its ranks (`window`, for `quantile_window_new`).

    An exact quantile has no mergeable summary, but after an append it is close to the
    old one: the quantile of old + new rows lies between the old rows' and the new rows'
    quantiles. So the values of the band [low, high] (the column compared with two
    numbers in its own order: a contiguous run of the sorted column) are sorted, `below`
    counts the values under it, and the values at 0-based ranks `ranks` (the floor and
    ceiling of (n - 1) * q) are picked from the band and interpolated at `fraction` by
    the engine's own quantile_cont over those two values: the same interpolation, on the
    same operands, as quantile_cont over the whole column. The caller checks that both
    ranks fall inside the band (below <= rank < below + inside) and otherwise runs the
    full quantile. One scan of one column, and a sort of the band instead of the column.
    """
    col = column(rule.column)
    low, high = (value_literal(b) for b in band)
    below = _filtered(
        exp.Count(this=exp.Star()), _and(scope, exp.LT(this=col.copy(), expression=low))
    )
    inside = _and(scope, exp.GTE(this=col.copy(), expression=low.copy()))
    values = exp.Anonymous(
        this="LIST_SORT",
        expressions=[_filtered(exp.Anonymous(this="LIST", expressions=[col.copy()]), inside)],
    )
    # the upper bound as a WHERE: the Parquet reader applies it while decoding
    scan = (
        exp.select(below.as_("below", quoted=True), values.as_("band", quoted=True))
        .from_(relation(rel))
        .where(exp.LTE(this=col.copy(), expression=high))
    )

    def pick(rank: int) -> exp.Expression:
        index = exp.Sub(this=value_literal(rank + 1), expression=column("below"))
        return exp.Anonymous(this="LIST_EXTRACT", expressions=[column("band"), index])

    low_value, high_value = pick(ranks[0]), pick(ranks[1])
    if is_decimal(kind):  # as the whole column's quantile does (see `_statistic`)
        low_value, high_value = _as_double(low_value), _as_double(high_value)
    interpolated = _interpolated(low_value, high_value, fraction)
    # the `keep` values on each side of the ranks: the window a later run starts from
    # (1-based and inclusive; a start below 1 would count from the end)
    first = exp.Anonymous(
        this="GREATEST",
        expressions=[
            exp.Sub(this=value_literal(ranks[0] + 1 - keep), expression=column("below")),
            value_literal(1),
        ],
    )
    last = exp.Sub(this=value_literal(ranks[1] + 1 + keep), expression=column("below"))
    window = exp.Anonymous(this="LIST_SLICE", expressions=[column("band"), first, last])
    return exp.select(
        column("below").as_("below", quoted=True),
        exp.Anonymous(this="LEN", expressions=[column("band")]).as_("inside", quoted=True),
        interpolated.as_("quantile", quoted=True),
        window.as_("window", quoted=True),
    ).from_(scan.subquery("s"))


def quantile_window_new(
    rule: Statistic, scope: exp.Expression | None, low: Any, high: Any
) -> dict[str, exp.Expression]:
    """The new rows' part of a stored quantile window [low, high]: how many fall below it
    and which fall inside (aggregates for the fused query on the new rows)."""
    col = column(rule.column)
    inside = _and(
        scope,
        exp.GTE(this=col.copy(), expression=value_literal(low)),
        exp.LTE(this=col.copy(), expression=value_literal(high)),
    )
    return {
        "win_below": _count(_and(scope, exp.LT(this=col.copy(), expression=value_literal(low)))),
        "win_inside": _filtered(exp.Anonymous(this="LIST", expressions=[col.copy()]), inside),
    }


def interpolate_query(low: Any, high: Any, kind: str, fraction: float) -> exp.Select:
    """The engine's own quantile_cont interpolation between two values of the column's
    type `kind`: the arithmetic a quantile over the whole column does (DuckDB)."""
    to = exp.DataType.build(kind, dialect="duckdb")
    low_value: exp.Expression = exp.cast(value_literal(low), to)
    high_value: exp.Expression = exp.cast(value_literal(high), to.copy())
    if is_decimal(kind):  # as the whole column's quantile does (see `_statistic`)
        low_value, high_value = _as_double(low_value), _as_double(high_value)
    return exp.select(_interpolated(low_value, high_value, fraction).as_("quantile", quoted=True))


def _interpolated(low: exp.Expression, high: exp.Expression, fraction: float) -> Any:
    """DuckDB's quantile_cont over the two values around a quantile's rank, at `fraction`
    between them: the same operands and arithmetic as over the whole column."""
    two = exp.Anonymous(this="LIST_VALUE", expressions=[low, high])
    return exp.Anonymous(
        this="LIST_AGGREGATE",
        expressions=[two, exp.Literal.string("quantile_cont"), _double(fraction)],
    )


def value_literal(value: Any) -> Any:
    """A rule's or a column's value as a literal: the one way a value enters the SQL.

    A float goes through text, so that every finite double is exact and NaN and the
    infinities stay numbers: `exp.convert` renders NaN as NULL (`x IN (1.0, NULL)` never
    fails) and an infinity as a bare identifier (`x <= inf` binds to a column "inf").
    """
    if isinstance(value, float):
        return _double(value)
    return exp.convert(value)


def _row_local(query: exp.Expression) -> bool:
    """True when the query only filters rows of the table (its count is additive over
    appended files): one SELECT from the table, no aggregate, join, window, DISTINCT,
    GROUP BY, LIMIT or subquery."""
    if not isinstance(query, exp.Select) or query.args.get("joins"):
        return False
    modifiers = ("group", "having", "limit", "distinct", "qualify", "with", "with_", "offset")
    if any(query.args.get(k) for k in modifiers):
        return False
    source = query.args.get("from_") or query.args.get("from")
    if source is None or not isinstance(source.this, exp.Table) or source.this.name != TABLE_TOKEN:
        return False
    if any(True for _ in query.find_all(exp.AggFunc, exp.Window, exp.Subquery)):
        return False
    return len(list(query.find_all(exp.Select))) == 1


def relation(name: str) -> exp.Table:
    """A registered relation by name."""
    return exp.to_table(name, quoted=True)


def render(tree: exp.Expression, dialect: str) -> str:
    """SQL text in the engine's dialect."""
    return tree.sql(dialect=dialect)


def fused_query(rel: str, aggregates: Sequence[tuple[str, exp.Expression]]) -> exp.Select:
    """One aggregate query computing every (alias, aggregate) over `rel`."""
    return exp.select(*[e.as_(alias, quoted=True) for alias, e in aggregates]).from_(relation(rel))


def samples_query(
    rel: str, scope: exp.Expression | None, failing: exp.Expression, limit: int
) -> exp.Select:
    """Up to `limit` failing rows (their NULL-judged rows are not failing)."""
    where = _and(scope, failing)
    return exp.select("*").from_(relation(rel)).where(where).limit(limit)


def _not_null_keys(columns: Sequence[str]) -> list[exp.Expression]:
    return [exp.Not(this=exp.Is(this=column(c), expression=exp.Null())) for c in columns]


# The row count of a key group: a name no user column takes (a key column may be "n").
KEY_ROWS = "__onceflow_rows"


def _key_groups(rel: str, rule: Uniqueness, scope: exp.Expression | None) -> exp.Select:
    keys = [column(c) for c in rule.columns]
    where = _and(scope, *_not_null_keys(rule.columns))
    select = exp.select(*keys, exp.Count(this=exp.Star()).as_(KEY_ROWS, quoted=True)).from_(
        relation(rel)
    )
    if where is not None:
        select = select.where(where)
    return select.group_by(*[k.copy() for k in keys])


def unique_query(rel: str, rule: Uniqueness, scope: exp.Expression | None) -> exp.Select:
    """Distinct duplicated keys and the rows that carry them (every row of such a key)."""
    groups = _key_groups(rel, rule, scope).having(
        exp.GT(this=exp.Count(this=exp.Star()), expression=value_literal(1))
    )
    return exp.select(
        exp.Count(this=exp.Star()).as_("dup_values", quoted=True),
        exp.Coalesce(this=exp.Sum(this=column(KEY_ROWS)), expressions=[value_literal(0)]).as_(
            "dup_rows", quoted=True
        ),
    ).from_(groups.subquery("d"))


def unique_samples_query(
    rel: str, rule: Uniqueness, scope: exp.Expression | None, limit: int
) -> exp.Select:
    """Up to `limit` duplicated keys with their row counts, most repeated first, then by
    key: the same samples every run (a resumed report equals an uninterrupted one)."""
    order = [exp.Ordered(this=column(KEY_ROWS), desc=True)]
    order += [exp.Ordered(this=column(c), nulls_first=False) for c in rule.columns]
    return (
        _key_groups(rel, rule, scope)
        .having(exp.GT(this=exp.Count(this=exp.Star()), expression=value_literal(1)))
        .order_by(*order)
        .limit(limit)
    )


def key_bounds_query(new: str, rule: Uniqueness, scope: exp.Expression | None) -> exp.Select:
    """The smallest and largest value of each key column among the new rows."""
    where = _and(scope, *_not_null_keys(rule.columns))
    select = exp.select(
        *[
            agg(this=column(c)).as_(f"{kind}_{i}", quoted=True)
            for i, c in enumerate(rule.columns)
            for kind, agg in (("lo", exp.Min), ("hi", exp.Max))
        ]
    ).from_(relation(new))
    return select.where(where) if where is not None else select


def unique_delta_query(
    rel: str,
    new: str,
    rule: Uniqueness,
    scope: exp.Expression | None,
    bounds: dict[str, tuple[Any, Any]] | None = None,
) -> exp.Select:
    """How the duplicate counts change when the rows of `new` (already part of `rel`)
    are added: only the keys of the new rows are looked up in the whole table.

    For a new key k with c_new rows in `new` and c_tot in `rel` (c_old = c_tot - c_new):
    dup_rows grows by [c_tot > 1] c_tot - [c_old > 1] c_old, dup_values by
    [c_tot > 1] - [c_old > 1].

    `bounds` (each key column's smallest and largest new value) adds range conditions
    that no row sharing a key with a new row can fail, and that the Parquet reader turns
    into skipped row groups (min/max statistics): new ids above every old one skip all
    the old files.
    """
    names = list(rule.columns)
    new_keys = _key_groups(new, rule, scope).subquery("k")
    table_keys: Any = _key_groups(rel, rule, scope)
    table_keys = table_keys.where(
        exp.In(
            this=exp.Tuple(expressions=[column(c) for c in names]),
            query=exp.select(*[column(c) for c in names]).from_(new_keys.copy()).subquery(),
        )
        if len(names) > 1
        else exp.In(
            this=column(names[0]),
            query=exp.select(column(names[0])).from_(new_keys.copy()).subquery(),
        ),
        append=True,
    )
    for name, (low, high) in (bounds or {}).items():
        table_keys = table_keys.where(
            exp.Between(this=column(name), low=value_literal(low), high=value_literal(high)),
            append=True,
        )
    table_keys = table_keys.subquery("t")
    on = _and(
        *[
            exp.EQ(
                this=exp.column(c, table="k", quoted=True),
                expression=exp.column(c, table="t", quoted=True),
            )
            for c in names
        ]
    )
    tot = exp.column(KEY_ROWS, table="t", quoted=True)
    old = exp.Sub(this=tot.copy(), expression=exp.column(KEY_ROWS, table="k", quoted=True))

    def when(cond: exp.Expression, value: exp.Expression) -> exp.Expression:
        return exp.Sum(this=exp.Case(ifs=[exp.If(this=cond, true=value)], default=value_literal(0)))

    one = value_literal(1)
    return (
        exp.select(
            exp.Sub(
                this=when(exp.GT(this=tot.copy(), expression=one.copy()), tot.copy()),
                expression=when(exp.GT(this=old.copy(), expression=one.copy()), old.copy()),
            ).as_("dup_rows", quoted=True),
            exp.Sub(
                this=when(exp.GT(this=tot.copy(), expression=one.copy()), one.copy()),
                expression=when(exp.GT(this=old.copy(), expression=one.copy()), one.copy()),
            ).as_("dup_values", quoted=True),
        )
        .from_(new_keys)
        .join(table_keys, on=on)
    )


def _orphans(
    rel: str, rule: Referential, ref: str, scope: exp.Expression | None
) -> tuple[exp.Select, exp.Expression]:
    values = exp.select("*").from_(relation(rel))
    where = _and(scope, exp.Not(this=exp.Is(this=column(rule.column), expression=exp.Null())))
    values = values.where(where)
    keys = exp.select(column(rule.reference.column).as_("__ref_key", quoted=True)).from_(
        relation(ref)
    )
    on = exp.EQ(
        this=exp.column(rule.column, table="e", quoted=True),
        expression=exp.column("__ref_key", table="r", quoted=True),
    )
    select = (
        exp.select("*")
        .from_(values.subquery("e"))
        .join(keys.subquery("r"), on=on, join_type="anti")
    )
    return select, on


def referential_query(
    rel: str, rule: Referential, ref: str, scope: exp.Expression | None
) -> exp.Select:
    """How many (non-NULL) values are absent from the reference column."""
    select, _on = _orphans(rel, rule, ref, scope)
    return exp.select(exp.Count(this=exp.Star()).as_("failing", quoted=True)).from_(
        select.subquery("o")
    )


def referential_samples_query(
    rel: str, rule: Referential, ref: str, scope: exp.Expression | None, limit: int
) -> exp.Select:
    """Up to `limit` rows whose value is absent from the reference column."""
    select, _on = _orphans(rel, rule, ref, scope)
    return select.limit(limit)


def _bind_table(query: exp.Expression, rel: str, scope: exp.Expression | None) -> exp.Expression:
    """The custom query with {table} as `rel` (its rows in the rule's scope)."""
    source: exp.Expression = relation(rel)
    if scope is not None:
        source = exp.select("*").from_(relation(rel)).where(scope.copy()).subquery(TABLE_TOKEN)

    def swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and node.name == TABLE_TOKEN and not node.args.get("db"):
            replacement = source.copy()
            alias = node.args.get("alias")
            if alias is not None:
                replacement.set("alias", alias.copy())
            elif isinstance(replacement, exp.Table):
                replacement.set("alias", exp.TableAlias(this=exp.to_identifier(TABLE_TOKEN)))
            return replacement
        return node

    return query.copy().transform(swap)


def custom_count_query(plan: Plan, rel: str) -> exp.Select:
    """How many rows the custom query returns."""
    assert plan.query is not None
    bound = _bind_table(plan.query, rel, plan.scope)
    return exp.select(exp.Count(this=exp.Star()).as_("failing", quoted=True)).from_(
        exp.Subquery(this=bound, alias=exp.TableAlias(this=exp.to_identifier("q")))
    )


def custom_samples_query(plan: Plan, rel: str, limit: int) -> exp.Select:
    """Up to `limit` rows the custom query returns."""
    assert plan.query is not None
    bound = _bind_table(plan.query, rel, plan.scope)
    return (
        exp.select("*")
        .from_(exp.Subquery(this=bound, alias=exp.TableAlias(this=exp.to_identifier("q"))))
        .limit(limit)
    )


def quarantine_query(rel: str, plans: Sequence[Plan]) -> exp.Select:
    """Every row failing at least one of the plans' rules, with `_failed_rules` (the names)."""
    chosen = [p for p in plans if p.failing is not None]
    conditions: list[exp.Expression] = [_and(p.scope, p.failing) for p in chosen]
    # rule names have no comma (see onceflow.rules): the list is split from one string,
    # which every dialect can build (a CASE per rule; CONCAT_WS skips the NULLs)
    labels = [
        exp.Case(ifs=[exp.If(this=c.copy(), true=value_literal(p.rule.name))])
        for p, c in zip(chosen, conditions, strict=True)
    ]
    # CONCAT_WS as written: sqlglot's generic ConcatWs adds NULL guards around it
    joined = exp.Anonymous(this="CONCAT_WS", expressions=[value_literal(","), *labels])
    names = exp.Split(this=joined, expression=value_literal(","))
    any_failing: Any = conditions[0]
    for c in conditions[1:]:
        any_failing = exp.or_(any_failing, c)
    return (
        exp.select(exp.Star(), names.as_("_failed_rules", quoted=True))
        .from_(relation(rel))
        .where(any_failing)
    )
