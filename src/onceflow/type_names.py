"""Column type names as a `schema` rule declares them, matched with an engine's types.

A declared type is an engine spelling (`BIGINT`, `DECIMAL(12,2)`, `NUMERIC(12,2)`,
`TIMESTAMP WITH TIME ZONE`, `VARCHAR(20)`), an Arrow one (`int64`, `decimal128(12, 2)`,
`large_string`, `date32`, `timestamp[us]`, `timestamp[us, tz=UTC]`) or a short alias
(`string`, `timestamptz`). Each becomes one canonical DuckDB type, or a family of them:

- bare `decimal`/`numeric` matches any precision and scale;
- bare `timestamp` matches a naive timestamp of any unit (the same data read from Arrow
  is TIMESTAMP_NS, from Delta TIMESTAMP: one declaration must judge both alike), while
  `timestamp[ns]` or `TIMESTAMP_NS` asks for that unit;
- a length (`VARCHAR(20)`, `CHAR(3)`) is not a type in DuckDB or Arrow: any text matches.

Integer aliases follow Arrow (`int8` is one byte), not PostgreSQL (`int8` is eight): the
docs say so. A name that is none of these is refused when the config is read (`known`),
so that a typo is a config error, not a failing check of good data.
"""

from __future__ import annotations

import re

_NAIVE_TIMESTAMPS = frozenset({"TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"})
_UNITS = {"s": "TIMESTAMP_S", "ms": "TIMESTAMP_MS", "us": "TIMESTAMP", "ns": "TIMESTAMP_NS"}
_TZ = "TIMESTAMP WITH TIME ZONE"

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
    **dict.fromkeys(("timestamp", "datetime", "timestamp without time zone"), "TIMESTAMP*"),
    "timestamp_ns": "TIMESTAMP_NS",
    "timestamp_ms": "TIMESTAMP_MS",
    "timestamp_s": "TIMESTAMP_S",
    "timestamp_us": "TIMESTAMP",
    **dict.fromkeys(("timestamptz", "timestamp with time zone"), _TZ),
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
_NESTED = re.compile(r"^(list|large_list|struct|map|union|array)\s*[<(]|\[\d*\]$", re.IGNORECASE)
_CALL = re.compile(r"^(?P<name>[a-z_ 0-9]+?)\s*[(\[](?P<args>[^()\[\]]*)[)\]]$")


def canonical(declared: str) -> str | None:
    """The DuckDB type a declared name means (`DECIMAL*`, `TIMESTAMP*`: any of that
    family), or None when it is no type known here."""
    text = " ".join(declared.strip().lower().split())
    if text in _SIMPLE:
        return _SIMPLE[text]
    if _NESTED.search(text):
        return " ".join(declared.upper().split())  # compared as written, spaces aside
    call = _CALL.match(text)
    if call is None:
        return None
    name, args = call["name"].strip(), [a.strip() for a in call["args"].split(",")]
    if name in ("decimal", "numeric", "decimal128", "decimal256") and _digits(args, 1, 2):
        return f"DECIMAL({int(args[0])},{int(args[1]) if len(args) > 1 else 0})"
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


def known(declared: str) -> bool:
    """Whether `declared` names a type a `schema` rule can check."""
    return canonical(declared) is not None


def same_type(declared: str, actual: str) -> bool:
    """Whether a column of the engine's type `actual` is of the `declared` type."""
    want = canonical(declared)
    got = " ".join(actual.upper().split())
    if want is None:
        return False
    if want == "DECIMAL*":
        return got.startswith("DECIMAL")
    if want == "TIMESTAMP*":
        return got in _NAIVE_TIMESTAMPS
    if want == "VARCHAR":  # DuckDB may show a declared length: VARCHAR(20)
        return got == "VARCHAR" or got.startswith("VARCHAR(")
    return want.replace(" ", "") == got.replace(" ", "")


__all__ = ["canonical", "known", "same_type"]
