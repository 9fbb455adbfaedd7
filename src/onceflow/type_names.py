"""Column type names as a `schema` rule declares them, matched with an engine's types.

A declared type is an engine spelling (`BIGINT`, `DECIMAL(12,2)`, `NUMERIC(12,2)`,
`TIMESTAMP WITH TIME ZONE`, `VARCHAR(20)`), an Arrow one (`int64`, `decimal128(12, 2)`,
`large_string`, `date32`, `timestamp[us]`, `timestamp[us, tz=UTC]`) or a short alias
(`string`, `timestamptz`). Each becomes one canonical DuckDB type, or a family of them:

- bare `decimal`/`numeric` matches any precision and scale;
- bare `timestamp` matches a naive timestamp of any unit (the same data read from Arrow
  is TIMESTAMP_NS, from Delta TIMESTAMP: one declaration must judge both alike), while
  `timestamp[ns]` or `TIMESTAMP_NS` asks for that unit;
- a length (`VARCHAR(20)`, `CHAR(3)`) is not a type in DuckDB or Arrow: any text matches;
- a zoned timestamp (`timestamp[ns, tz=America/New_York]`, `timestamptz`) is DuckDB's one
  TIMESTAMP WITH TIME ZONE, an instant in microseconds: its unit and zone are not
  compared, as Delta keeps no zone per column and the engine none per value.

Integer aliases follow Arrow (`int8` is one byte), not PostgreSQL (`int8` is eight): the
docs say so. A name that is none of these is refused when the config is read (`known`),
so that a typo is a config error, not a failing check of good data.
"""

from __future__ import annotations

import re
from typing import Any

_NAIVE_TIMESTAMPS = frozenset({"TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"})
_UNITS = {"s": "TIMESTAMP_S", "ms": "TIMESTAMP_MS", "us": "TIMESTAMP", "ns": "TIMESTAMP_NS"}
_TZ = "TIMESTAMP WITH TIME ZONE"
# DuckDB 2.0 reads a nanosecond zoned column (Arrow, Parquet) as TIMESTAMPTZ_NS: still zoned
_ZONED = frozenset({_TZ, "TIMESTAMPTZ_NS"})

#: Lower-case spelling (whitespace collapsed) -> DuckDB type.
_SIMPLE = {
    **dict.fromkeys(("int8", "tinyint", "int1"), "TINYINT"),
    **dict.fromkeys(("int16", "smallint", "int2", "short"), "SMALLINT"),
    **dict.fromkeys(("int32", "int", "integer", "int4", "signed"), "INTEGER"),
    **dict.fromkeys(("int64", "bigint", "long"), "BIGINT"),
    **dict.fromkeys(("hugeint", "int128"), "HUGEINT"),
    **dict.fromkeys(("uint8", "utinyint"), "UTINYINT"),
    **dict.fromkeys(("uint16", "usmallint"), "USMALLINT"),
    **dict.fromkeys(("uint32", "uinteger"), "UINTEGER"),
    **dict.fromkeys(("uint64", "ubigint"), "UBIGINT"),
    "uhugeint": "UHUGEINT",
    **dict.fromkeys(("float32", "float", "real", "float4"), "FLOAT"),
    **dict.fromkeys(("float64", "double", "float8", "double precision"), "DOUBLE"),
    **dict.fromkeys(
        (
            *("string", "text", "varchar", "utf8", "large_string", "large_utf8", "str"),
            *("char", "bpchar", "character varying", "character", "nvarchar", "string_view"),
        ),
        "VARCHAR",
    ),
    **dict.fromkeys(("bool", "boolean", "logical"), "BOOLEAN"),
    **dict.fromkeys(("date", "date32", "date64"), "DATE"),
    **dict.fromkeys(("time", "time32", "time64", "time without time zone"), "TIME"),
    **dict.fromkeys(("timetz", "time with time zone"), "TIME WITH TIME ZONE"),
    # timestamp_ntz: Delta's and Spark's name of a naive timestamp
    **dict.fromkeys(
        ("timestamp", "datetime", "timestamp without time zone", "timestamp_ntz"), "TIMESTAMP*"
    ),
    "timestamp_ns": "TIMESTAMP_NS",
    "timestamp_ms": "TIMESTAMP_MS",
    "timestamp_s": "TIMESTAMP_S",
    "timestamp_us": "TIMESTAMP",
    **dict.fromkeys(("timestamptz", "timestamp with time zone"), _TZ),
    "timestamptz_ns": "TIMESTAMPTZ_NS",
    **dict.fromkeys(
        ("binary", "large_binary", "bytes", "blob", "bytea", "varbinary", "binary_view"),
        "BLOB",
    ),
    **dict.fromkeys(("decimal", "numeric", "decimal128", "decimal256"), "DECIMAL*"),
    "interval": "INTERVAL",
    "uuid": "UUID",
    "json": "JSON",
}
#: Spellings that take a length in parentheses, which no engine here keeps.
_SIZED = {"varchar", "char", "character varying", "character", "nvarchar", "bpchar"}
_SIZED |= {"varbinary", "binary"}
_CALL = re.compile(r"^(?P<name>[a-z_ 0-9]+?)\s*[(\[](?P<args>[^()\[\]]*)[)\]]$")
_LIST = re.compile(r"^(?:list|large_list|array|fixed_size_list)\s*<(?P<inner>.*)>$", re.I | re.S)
_STRUCT = re.compile(r"^struct\s*(?:<(?P<arrow>.*)>|\((?P<duck>.*)\))$", re.I | re.S)
_MAP = re.compile(r"^map\s*(?:<(?P<arrow>.*)>|\((?P<duck>.*)\))$", re.I | re.S)
_ARRAY = re.compile(r"^(?P<inner>.*\S)\s*\[\d*\]$", re.S)
#: DuckDB's decimals hold at most 38 digits.
MAX_DECIMAL_DIGITS = 38

# A type as a tree: ("scalar", canonical name), ("list", item), ("map", key, value), or
# ("struct", ((field name, type), ...)). Nested types are compared part by part, so a
# family (`decimal`, `timestamp`) inside a list matches as it does outside.
Tree = tuple[Any, ...]


def canonical(declared: str) -> str | None:
    """The DuckDB type a declared scalar name means (`DECIMAL*`, `TIMESTAMP*`: any of
    that family), or None when it is no scalar type known here."""
    text = " ".join(declared.strip().lower().split())
    if text in _SIMPLE:
        return _SIMPLE[text]
    call = _CALL.match(text)
    if call is None:
        return None
    name, args = call["name"].strip(), [a.strip() for a in call["args"].split(",")]
    if name in ("decimal", "numeric", "decimal128", "decimal256") and _digits(args, 1, 2):
        precision, scale = int(args[0]), int(args[1]) if len(args) > 1 else 0
        if not 1 <= precision <= MAX_DECIMAL_DIGITS or scale > precision:
            return None
        return f"DECIMAL({precision},{scale})"
    if name in _SIZED and _digits(args, 1, 1):
        return _SIMPLE[name]
    if name == "timestamp":  # Arrow: timestamp[us] or timestamp[us, tz=UTC]
        unit = _UNITS.get(args[0])
        zoned = len(args) == 2 and args[1].startswith("tz=")
        if unit is not None and len(args) == 1:
            return unit
        if unit is not None and zoned:
            return _TZ
        return None
    if name in ("time32", "time64") and len(args) == 1 and args[0] in _UNITS:
        return "TIME"
    return None


def _digits(args: list[str], least: int, most: int) -> bool:
    return least <= len(args) <= most and all(a.isdigit() for a in args)


def _split(text: str) -> list[str]:
    """`text` split at its top-level commas (not those inside <>, () or [])."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "<([":
            depth += 1
        elif char in ">)]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def _field(text: str, arrow: bool, engine: bool) -> tuple[str, Tree] | None:
    """A struct field: Arrow's `name: type`, DuckDB's `name TYPE` (either name quoted)."""
    if text.startswith('"'):
        end = text.find('"', 1)
        name, rest = text[1:end], text[end + 1 :].lstrip()
    else:
        name, _, rest = text.partition(":" if arrow else " ")
        name = name.strip()
    rest = rest.lstrip(":").strip()
    kind = parse(rest, engine=engine) if name and rest else None
    return None if kind is None else (name.lower(), kind)


def parse(declared: str, *, engine: bool = False) -> Tree | None:
    """A declared type as a tree (see `Tree`), or None when it is not one. With
    `engine`, a type as the engine names a column: its scalars are taken as written
    (the engine's TIMESTAMP is that type, where a declared `timestamp` is a family)."""
    text = declared.strip()
    if (found := _LIST.match(text)) is not None:
        inner = found["inner"].strip()
        if ":" in inner.split("<")[0]:  # Arrow may name the item: list<item: int64>
            inner = inner.split(":", 1)[1]
        item = parse(inner, engine=engine)
        return None if item is None else ("list", item)
    if (found := _ARRAY.match(text)) is not None:
        item = parse(found["inner"], engine=engine)
        return None if item is None else ("list", item)
    if (found := _STRUCT.match(text)) is not None:
        arrow = found["arrow"] is not None
        body = found["arrow"] if arrow else found["duck"]
        fields = [_field(f, arrow, engine) for f in _split(body)]
        if not fields or any(f is None for f in fields):
            return None
        return ("struct", tuple(fields))
    if (found := _MAP.match(text)) is not None:
        parts = [parse(p, engine=engine) for p in _split(found["arrow"] or found["duck"] or "")]
        if len(parts) != 2 or parts[0] is None or parts[1] is None:
            return None
        return ("map", parts[0], parts[1])
    if engine:
        return ("scalar", " ".join(text.upper().split()))
    scalar = canonical(text)
    return None if scalar is None else ("scalar", scalar)


def known(declared: str) -> bool:
    """Whether `declared` names a type a `schema` rule can check."""
    return parse(declared) is not None


def same_type(declared: str, actual: str) -> bool:
    """Whether a column of the engine's type `actual` is of the `declared` type."""
    want, got = parse(declared), _engine_tree(actual)
    return want is not None and got is not None and _same(want, got)


def _engine_tree(actual: str) -> Tree | None:
    """The engine's type as a tree; what it does not parse (`UNION(...)`) stays whole."""
    return parse(actual, engine=True) or ("scalar", " ".join(actual.upper().split()))


def _same(want: Tree, got: Tree) -> bool:
    if want[0] != got[0]:
        return False
    if want[0] == "list":
        return _same(want[1], got[1])
    if want[0] == "map":
        return _same(want[1], got[1]) and _same(want[2], got[2])
    if want[0] == "struct":
        return len(want[1]) == len(got[1]) and all(
            w[0] == g[0] and _same(w[1], g[1]) for w, g in zip(want[1], got[1], strict=True)
        )
    return _same_scalar(want[1], got[1])


def _same_scalar(want: str, got: str) -> bool:
    if want == "DECIMAL*":
        return got.startswith("DECIMAL")
    if want == "TIMESTAMP*":
        return got in _NAIVE_TIMESTAMPS
    if want == _TZ:
        return got in _ZONED
    if want == "VARCHAR":  # DuckDB may show a declared length: VARCHAR(20)
        return got == "VARCHAR" or got.startswith("VARCHAR(")
    return want.replace(" ", "") == got.replace(" ", "")


__all__ = ["MAX_DECIMAL_DIGITS", "canonical", "known", "parse", "same_type"]
