"""A SQLite result's Arrow types: from its columns' declared types (what storage alone
would lose) and their affinity, and the fix to name when a column's text is no date.
"""

from __future__ import annotations

import logging
import re

import pyarrow as pa

from onceflow.extract.sql import quote_ident, without_window
from onceflow.extract.types import decimal_type

log = logging.getLogger(__name__)


_SQLITE_DECIMAL = re.compile(r"^\s*(?:DECIMAL|NUMERIC)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")


def sqlite_type(declared: str) -> pa.DataType | None:
    """The Arrow type a column's declared type asks for, where storage alone would lose it."""
    kind = declared.upper()
    if m := _SQLITE_DECIMAL.match(kind):
        return decimal_type(int(m.group(1)), int(m.group(2) or 0))
    if "BOOL" in kind:
        return pa.bool_()
    if "TIMESTAMP" in kind or "DATETIME" in kind:
        return pa.timestamp("us")
    if kind.strip() == "DATE":
        return pa.date32()
    return None


def sqlite_affinity(declared: str) -> pa.DataType | None:
    """The Arrow type of the values a column's declared type lets SQLite store, by its
    affinity rules (https://sqlite.org/datatype3.html, 3.1, in their order), where the
    affinity decides it: INTEGER -> int64, TEXT -> string, BLOB -> binary, REAL ->
    double. NUMERIC affinity, or no declared type, stores whatever the value is: None."""
    kind = declared.upper()
    if "INT" in kind:
        return pa.int64()
    if "CHAR" in kind or "CLOB" in kind or "TEXT" in kind:
        return pa.string()
    if "BLOB" in kind:
        return pa.binary()
    if "REAL" in kind or "FLOA" in kind or "DOUB" in kind:
        return pa.float64()
    return None


# Affinities under which a column never holds an integer (TEXT turns numbers into text,
# REAL into doubles): an int64 from the driver there means it saw no value in the column.
_NEVER_INTEGER = (pa.string(), pa.float64())


def sqlite_declared(path: str, sql: str) -> dict[str, str]:
    """Each result column's declared type: a column read straight from a table has its
    table's declaration, an expression none (''). Read from a temporary view of the
    query (its window markers as NULL), which SQLite describes as it would a table;
    {} when SQLite cannot make one: the types are then the driver's alone."""
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.execute(f"CREATE TEMP VIEW onceflow_probe AS {without_window(sql, 'sqlite')}")
        rows = conn.execute(
            "SELECT name, type FROM pragma_table_info('onceflow_probe', 'temp')"
        ).fetchall()
    except sqlite3.Error as error:
        log.debug("no declared types for %s: %s", sql, error)
        return {}
    finally:
        conn.close()
    return {str(column): str(declared or "") for column, declared in rows}


def sqlite_result_types(
    declared: dict[str, str], driver: pa.Schema, table: bool
) -> tuple[dict[str, pa.DataType], dict[str, pa.DataType]]:
    """The overrides of a SQLite result, and the types of an empty one.

    A table's declarations that storage alone would lose (decimals stored as REAL,
    timestamps as TEXT, booleans as INTEGER) are applied; a query keeps its columns'
    stored types, as it always has (a loaded table's types depend on them). The driver
    types columns from their values, so a column without a value in its first batch (or
    any row) comes out int64: the affinity then gives the type that values would have.
    """
    overrides: dict[str, pa.DataType] = {}
    when_empty: dict[str, pa.DataType] = {}
    for column, kind in declared.items():
        if table and (wanted := sqlite_type(kind)) is not None:
            overrides[column] = wanted
            continue
        affinity = sqlite_affinity(kind)
        if affinity is None:
            continue
        when_empty[column] = affinity
        index = driver.get_field_index(column)
        if affinity in _NEVER_INTEGER and index >= 0 and driver.field(index).type == pa.int64():
            overrides[column] = affinity
    return overrides, when_empty


def sqlite_fixes(table: str | None, overrides: dict[str, pa.DataType]) -> dict[str, str]:
    """The fix for each column read as a date or timestamp from its declared type, when
    its text is not one ('2025-01-01T10:00:00Z', '+02:00', '2025-1-5'): SQLite keeps
    whatever text was written. A query's columns keep their stored types (`sqlite_result_types`),
    so a query reads that text as it is."""
    fixes: dict[str, str] = {}
    for column, kind in overrides.items():
        if kind == pa.date32():
            form = "a DATE as 'YYYY-MM-DD'"
            convert = ""
        elif kind == pa.timestamp("us"):
            form = "a TIMESTAMP as 'YYYY-MM-DD HH:MM:SS[.ffffff]' wall time without a zone"
            convert = (
                f", or convert it there, e.g. `strftime('%Y-%m-%d %H:%M:%f', {quote_ident(column)})"
                f" AS {quote_ident(column)}` (SQLite turns 'Z' and '+02:00' into UTC, to the "
                "millisecond)"
            )
        else:
            continue
        fixes[column] = (
            f"SQLite keeps the text written into a column, and onceflow reads {form}: declare "
            f"column {column!r} of table {table!r} TEXT, or extract the table with a `query:` "
            f"(e.g. `SELECT * FROM {quote_ident(table or '')}`), whose columns are read as "
            f"the text they hold{convert}"
        )
    return fixes
