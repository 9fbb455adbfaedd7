"""Source readers: each streams a ReadSpec as Arrow record batches in bounded memory.

Chosen per dialect by measurement (bench/RESULTS.md): ADBC for PostgreSQL (binary COPY,
bound parameters) and SQLite, ConnectorX for MySQL/MariaDB after a pymysql preflight
(fast credential and schema errors, declared types), SQLAlchemy for anything else.
"""

from __future__ import annotations

import contextlib
import logging
import re
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import pyarrow as pa

from onceflow.config import SourceConfig
from onceflow.errors import SourceError, is_panic
from onceflow.extract import early
from onceflow.extract.classify import classify
from onceflow.extract.sql import (
    SETTING_PREFIX,
    ReadSpec,
    bound_values,
    build_select,
    has_markers,
    null_cursor_count,
    pg_cursor_types,
    quote_ident,
    sqlite_cursor_audit,
    to_positional,
    to_session_settings,
    to_sqlalchemy,
    without_window,
)
from onceflow.extract.types import (
    ConversionError,
    cast_column,
    decimal_type,
    make_caster,
    pg_array_columns,
    pg_overrides,
    pg_text_columns,
    sql_name,
    target_schema,
)

log = logging.getLogger(__name__)


def _naive_wall(value: datetime, zone: ZoneInfo) -> datetime:
    return value.astimezone(zone).replace(tzinfo=None)


def _ascii_lower(name: str) -> str:
    """A name as SQLite compares names: A-Z folded, every other letter as it is."""
    return name.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _same_name(dialect: str) -> Callable[[str, str], bool]:
    """How `dialect` matches a quoted column name: SQLite folds ASCII letters, MySQL and
    MariaDB every letter's case; PostgreSQL and Oracle keep a quoted name exact."""
    if dialect == "sqlite":
        return lambda a, b: _ascii_lower(a) == _ascii_lower(b)
    if dialect in ("mysql", "mariadb"):
        return lambda a, b: a.casefold() == b.casefold()
    return lambda a, b: a == b


def _check_cursor(spec: ReadSpec, columns: list[str], where: str, dialect: str) -> None:
    """Refuse a window on a cursor column that the rows do not have.

    SQLite takes a double-quoted name that matches no column for a string literal, so
    `"updatd_at" >= ?` would silently select nothing instead of failing. A name matches a
    column as the database matches it (SQLite: `TS` is the column `ts`).
    """
    if not (spec.cursor and spec.window):
        return
    same = _same_name(dialect)
    if any(same(spec.cursor, column) for column in columns):
        return
    if spec.query and has_markers(spec.query, dialect):
        return  # the query applies the window itself, on whatever column it likes
    raise SourceError(
        f"{where}: column not found: cursor column {spec.cursor!r} is not among the "
        f"columns ({', '.join(columns)})"
    )


# How each dialect turns unix epoch seconds into the time a window compares with, for
# the message that refuses a numeric cursor: `{c}` is the column, `{zone}` the pipeline's
# zone. A naive cursor is compared as wall time in that zone. MySQL's session runs in UTC:
# to a named zone only CONVERT_TZ converts, and only with the server's time zone tables,
# which a default server lacks (no other form without them follows a zone's DST); SQLite
# knows only UTC and the process's own zone (`localtime`).
_EPOCH_TO_TIME = {
    "postgresql": ("to_timestamp({c})", ""),
    "mysql": (
        "CONVERT_TZ(FROM_UNIXTIME({c}), '+00:00', '{zone}')",
        "; CONVERT_TZ needs the server's time zone tables (load them with "
        "mysql_tzinfo_to_sql): without them it gives NULL, every row a NULL cursor",
    ),
    "sqlite": (
        "datetime({c}, 'unixepoch', 'localtime')",
        " and run onceflow with TZ={zone} (SQLite's localtime is the process's zone)",
    ),
}
_EPOCH_TO_TIME_UTC = {
    "mysql": ("FROM_UNIXTIME({c})", ""),
    "sqlite": ("datetime({c}, 'unixepoch')", ""),
}


def _as_time(dialect: str, column: str, zone: ZoneInfo) -> tuple[str, str]:
    """The SQL expression that reads epoch seconds in `column` as a time in `zone`, and
    what else it needs."""
    forms = _EPOCH_TO_TIME_UTC if str(zone) in ("UTC", "Etc/UTC") else {}
    form, note = forms.get(dialect) or _EPOCH_TO_TIME.get(dialect, ("<{c} as a timestamp>", ""))
    name = quote_ident(column, "`" if dialect == "mysql" else '"')
    return form.format(c=name, zone=zone), note.format(zone=zone)


# text written year first or day first, and a GLOB that matches the same: a fix converts
# only the rows written so, leaving ISO 8601 rows (and any other form) as they are
_D = "[0-9]"
_YEAR_FIRST = (re.compile(r"^\d{4}[/.]\d{2}[/.]\d{2}"), f"{_D * 4}[/.]{_D * 2}[/.]{_D * 2}*")
_DAY_FIRST = (re.compile(r"^\d{2}[/.-]\d{2}[/.-]\d{4}"), f"{_D * 2}[/.-]{_D * 2}[/.-]{_D * 4}*")


def _sqlite_iso(column: str, example: object) -> tuple[str, str]:
    """A SQLite expression that turns text written like `example` into ISO 8601 text
    (the rest as it is), and what to check about it."""
    c = quote_ident(column)
    text = example if isinstance(example, str) else ""
    if _YEAR_FIRST[0].match(text):  # 2025/03/30 10:00
        convert = f"substr({c}, 1, 4) || '-' || substr({c}, 6, 2) || '-' || substr({c}, 9)"
        return f"CASE WHEN {c} GLOB '{_YEAR_FIRST[1]}' THEN {convert} ELSE {c} END", ""
    if _DAY_FIRST[0].match(text):  # 30.03.2025 10:00
        convert = (
            f"substr({c}, 7, 4) || '-' || substr({c}, 4, 2) || '-' || substr({c}, 1, 2) "
            f"|| substr({c}, 11)"
        )
        return (
            f"CASE WHEN {c} GLOB '{_DAY_FIRST[1]}' THEN {convert} ELSE {c} END",
            " (that reads it day first: for month first swap the (4, 2) and the (1, 2))",
        )
    return f"<{c} as YYYY-MM-DD HH:MM:SS text>", ""


class Reader(ABC):
    """Streams the rows of one ReadSpec from one source."""

    def __init__(self, source: SourceConfig, url: str, zone: ZoneInfo, where: str) -> None:
        self.source = source
        self.url = url
        self.zone = zone
        self.where = where
        #: rows whose cursor is in no window (NULL, ...), counted before the rows are
        #: read; None when not counted (a full extract, a query placing the window itself)
        self.null_cursor_rows: int | None = None

    def _not_a_time(self, spec: ReadSpec, kind: str) -> SourceError:
        """The refusal of a cursor column whose type `kind` is no date or time."""
        assert spec.cursor
        alias = f"{spec.cursor}_at"
        convert, needs = _as_time(self.source.dialect, spec.cursor, self.zone)
        where = spec.table or "(<your query>) q"
        return SourceError(
            f"{self.where}: cursor column {spec.cursor!r} is {kind}, not a date or time: "
            "onceflow's windows are 24-hour time windows, and no such value falls in one. "
            "If it holds unix epoch seconds, extract it through a query that converts it: "
            f"`query: select *, {convert} AS {alias} from {where}` with `cursor: {alias}` "
            f"(and a `name:`){needs}; see docs/sources-and-types.md, Cursor columns"
        )

    def _counted(self, spec: ReadSpec, count: int, what: str = "NULL", hint: str = "") -> None:
        """Record the rows whose cursor is in no window; refuse them unless the table's
        `null_cursor` is `skip`. `hint`: a likelier cause than the data, when known."""
        self.null_cursor_rows = count
        if count and spec.null_cursor != "skip":
            raise SourceError(
                f"{self.where}: {count:,} row(s) have a {what} cursor {spec.cursor!r}: they "
                "are in no window and would never be extracted. Give them a value in the "
                "source, or set `null_cursor: skip` under the table's `extract:` to "
                f"extract without them (a warning counts them every run){hint}"
            )

    def _sqlite_counted(self, spec: ReadSpec, row: Sequence[Any]) -> None:
        """Judge the counts of `sqlite_cursor_audit`: numbers and text that is not an ISO
        8601 time are refused (no `null_cursor` setting skips them: they are not missing, they
        are written in a form the window cannot read), NULLs are counted."""
        nulls, numbers, other, example = row
        if numbers:
            raise self._not_a_time(spec, f"a number in {numbers:,} row(s)")
        if other:
            assert spec.cursor
            alias = f"{spec.cursor}_at"
            convert, needs = _sqlite_iso(spec.cursor, example)
            shown = repr(example) if len(repr(example)) <= 60 else repr(example)[:56] + "...'"
            raise SourceError(
                f"{self.where}: cursor column {spec.cursor!r} holds {other:,} value(s) that "
                f"are not ISO 8601 dates or times (e.g. {shown}): SQLite compares them as "
                "text with the window's days (YYYY-MM-DD), so they fall in no window, or in "
                "a wrong one. Extract it through a query that converts them: `query: select "
                f"*, {convert} AS {alias} from {spec.table or '(<your query>) q'}` with "
                f"`cursor: {alias}` (and a `name:`){needs}; see docs/sources-and-types.md, "
                "Cursor columns"
            )
        self._counted(spec, int(nulls))

    @abstractmethod
    def batches(self, spec: ReadSpec) -> Iterator[pa.RecordBatch]:
        """Yield batches with one stable, exact schema; SourceError on failure."""

    def _window_values(self, spec: ReadSpec) -> dict[str, datetime]:
        if spec.window is None:
            return {}
        return {"window_start": spec.window.start, "window_end": spec.window.end}


def _stream(
    reader: Any,
    where: str,
    overrides: dict[str, pa.DataType] | None = None,
    when_empty: dict[str, pa.DataType] | None = None,
    fixes: dict[str, str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """The reader's batches cast to their target schema; with no row, one empty batch.

    `when_empty` gives the types of a result without rows, for a driver that types columns
    from their values and so has nothing to go on (SQLite: every column int64). `fixes`:
    what to do when a column's values do not convert, added to its error.
    """
    schema = target_schema(reader.schema, overrides)
    cast = make_caster(reader.schema, schema)
    got_any = False
    for batch in reader:
        if batch.num_rows:
            got_any = True
            try:
                converted = cast(batch)
            except ConversionError as error:
                fix = (fixes or {}).get(error.column or "")
                raise SourceError(f"{where}: {error}" + (f". {fix}" if fix else "")) from None
            yield converted
    if not got_any:
        if when_empty:
            schema = target_schema(reader.schema, {**when_empty, **(overrides or {})})
        yield pa.RecordBatch.from_pylist([], schema=schema)


def _text(value: str) -> pa.Array:
    """A one-value string array, built from buffers: pa.array() and pa.scalar() import
    pandas to check their argument (0.25 s, a third of a small window's extraction)."""
    data = value.encode()
    offsets = struct.pack("<ii", 0, len(data))
    return pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


@contextlib.contextmanager
def _adbc_query(
    conn: Any, sql: str, parameters: Sequence[str] = ()
) -> Iterator[pa.RecordBatchReader]:
    """Run `sql` on a low-level ADBC connection, its parameters bound as text; the result
    streams while the block runs (ADBC: a statement outlives its stream). The driver
    manager's DB-API module imports pyarrow.dataset: ~0.3 s of every extraction, which a
    small window cannot afford."""
    import adbc_driver_manager._lib as adbc

    statement = adbc.AdbcStatement(conn)
    statement.set_sql_query(sql)
    if parameters:
        batch = pa.record_batch(
            [_text(value) for value in parameters],
            names=[str(i) for i in range(len(parameters))],
        )
        array, schema = adbc.ArrowArrayHandle(), adbc.ArrowSchemaHandle()
        batch._export_to_c(array.address, schema.address)
        statement.bind(array, schema)
    try:
        stream, _rows = statement.execute_query()
        reader = pa.RecordBatchReader._import_from_c(stream.address)
        try:
            yield reader
        finally:
            reader.close()
    finally:
        statement.close()


def _adbc_schema(conn: Any, sql: str) -> pa.Schema:
    """The schema of `sql`'s result, described by the server without running it."""
    import adbc_driver_manager._lib as adbc

    statement = adbc.AdbcStatement(conn)
    try:
        statement.set_sql_query(sql)
        handle = statement.execute_schema()  # kept: freeing it releases the schema
        return pa.Schema._import_from_c(handle.address)
    finally:
        statement.close()


def _text_select(sql: str, columns: list[str], text: list[str], arrays: list[str]) -> str:
    """`sql` with the `text` columns read as PostgreSQL's text output of their values, and
    the dimensions of each of the `arrays` appended (`_OneDimensional` checks them)."""
    cols = [
        f"CAST(q.{quote_ident(n)} AS text) AS {quote_ident(n)}"
        if n in text
        else f"q.{quote_ident(n)}"
        for n in columns
    ]
    cols += [
        f"array_ndims(q.{quote_ident(n)}) AS {quote_ident(f'onceflow ndims {i}')}"
        for i, n in enumerate(arrays)
    ]
    return f"SELECT {', '.join(cols)} FROM ({sql}) q"


class _OneDimensional:
    """A PostgreSQL read with the `array_ndims` of each array column appended: the
    driver flattens a multi-dimensional array ({{1,2},{3,4}} -> [1,2,3,4]) and a column's
    declared dimensions are not enforced, so each batch's are checked (one pass over an
    int32 column), then dropped. The array's shape cannot be read as nested lists: the
    column's type would depend on its values."""

    def __init__(self, reader: pa.RecordBatchReader, arrays: list[str], where: str) -> None:
        self.reader, self.arrays, self.where = reader, arrays, where
        self.width = len(reader.schema) - len(arrays)
        self.schema = pa.schema(list(reader.schema)[: self.width], reader.schema.metadata)

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        from pyarrow._compute import call_function

        for batch in self.reader:
            for name, dims in zip(self.arrays, batch.columns[self.width :], strict=True):
                most = call_function("max", [dims]).as_py()
                if most is not None and most > 1:
                    sql = sql_name(name)
                    raise SourceError(
                        f"{self.where}: column {name!r} holds a {most}-dimensional array, which "
                        "the driver would flatten to one list ({{1,2},{3,4}} -> [1,2,3,4]). "
                        f"Extract the table with a query that reads it as text, e.g. "
                        f"`{sql}::text AS {sql}`, or that unnests it"
                    )
            yield pa.RecordBatch.from_arrays(batch.columns[: self.width], schema=self.schema)


# the cursor values in no window besides NULL, by dialect (`{c}`: the column), and what
# to call them: PostgreSQL's +-infinity is before or after any window; MySQL's zero date
# (`0000-00-00`, and any date before 1000-01-01) reads as NULL (in a NOT NULL column
# MySQL also matches it with IS NULL)
_NO_WINDOW = {
    "postgresql": ("{c} = '-infinity' OR {c} = 'infinity'", "NULL or infinite"),
    "mysql": ("{c} < '1000-01-01'", "NULL or zero-date"),
}
# PostgreSQL: a window compares its cursor with two instants: these types are times
_PG_TIMES = ("date", "timestamp without time zone", "timestamp with time zone")


def _pg_not_a_time(kinds: list[str]) -> str | None:
    """None when the cursor's type (`pg_cursor_types`: a domain, then the types under it)
    is a time, else how to name the type in its refusal."""
    if kinds[-1] in _PG_TIMES:
        return None
    if len(kinds) > 1:
        return f"of type {kinds[0]} (a domain over {kinds[-1]})"
    return f"of type {kinds[0]}"


class PostgresReader(Reader):
    """ADBC libpq driver: binary COPY, streamed; window values bound into session settings."""

    def batches(self, spec: ReadSpec) -> Iterator[pa.RecordBatch]:
        sql, names = build_select(spec, '"', "postgresql")
        # ISO-8601 text with its UTC offset, cast to timestamptz in the SQL: binding a
        # datetime makes the ADBC driver switch the session to UTC, which would shift the
        # window of a naive timestamp (or date) cursor. The values go into session
        # settings so that the query itself has no parameters and streams through COPY.
        values = [v.isoformat() for v in bound_values(names, self._window_values(spec))]
        opened = early.take(self.url)  # opened while the command started, if it was
        try:
            database, conn = opened or early.open_connection(self.url)
        except Exception as error:
            raise classify(error, self.where) from None
        try:
            # The window is two instants (timestamptz); a naive timestamp or date
            # cursor compares with them as wall time in the session's (pipeline's) zone.
            settings = ["set_config('TimeZone', $1, false)"]
            settings += [
                f"set_config('{SETTING_PREFIX}{name}', ${i}, false)"
                for i, name in enumerate(names, start=2)
            ]
            # and the digits of the session's currency (lc_monetary), which the driver
            # drops from money values: one query still
            settings.append("scale(CAST(0 AS money)::numeric)")
            with _adbc_query(conn, "SELECT " + ", ".join(settings), (str(self.zone), *values)) as r:
                money_scale = int(r.read_all().column(len(settings) - 1)[0].as_py())
            if spec.audits_cursor:
                self._audit_cursor(conn, spec)
            # the result is described first (not run: a COPY closed unread is drained
            # whole by the next query): columns the driver does not decode are asked for
            # as text, arrays with their dimensions
            described = _adbc_schema(conn, to_session_settings(sql))
            text = pg_text_columns(described)
            arrays = [n for n in pg_array_columns(described) if n not in text]
            if text or arrays:
                sql = _text_select(sql, described.names, text, arrays)
            with _adbc_query(conn, to_session_settings(sql)) as reader:
                rows = _OneDimensional(reader, arrays, self.where) if arrays else reader
                yield from _stream(rows, self.where, pg_overrides(rows.schema, money_scale))
        except SourceError:
            raise
        except Exception as error:
            raise classify(error, self.where) from None
        finally:
            with contextlib.suppress(Exception):
                conn.close()
            with contextlib.suppress(Exception):
                database.close()

    def _audit_cursor(self, conn: Any, spec: ReadSpec) -> None:
        """Refuse a cursor that is no date or time (PostgreSQL would fail the window's
        query with `operator does not exist: bigint >= timestamp with time zone`), then
        count its rows in no window: NULL, or +-infinity, which is before or after any."""
        with _adbc_query(conn, pg_cursor_types(spec)) as r:
            kinds = [str(kind) for kind in r.read_all().column(0).to_pylist()]
        if (refused := _pg_not_a_time(kinds)) is not None:
            raise self._not_a_time(spec, refused)
        also, what = _NO_WINDOW["postgresql"]
        with _adbc_query(conn, null_cursor_count(spec, '"', also)) as r:
            self._counted(spec, int(r.read_all().column(0)[0].as_py()), what)


_SQLITE_DECIMAL = re.compile(r"^\s*(?:DECIMAL|NUMERIC)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")


def _sqlite_type(declared: str) -> pa.DataType | None:
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


def _sqlite_affinity(declared: str) -> pa.DataType | None:
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


def _sqlite_declared(path: str, sql: str) -> dict[str, str]:
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


def _sqlite_types(
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
        if table and (wanted := _sqlite_type(kind)) is not None:
            overrides[column] = wanted
            continue
        affinity = _sqlite_affinity(kind)
        if affinity is None:
            continue
        when_empty[column] = affinity
        index = driver.get_field_index(column)
        if affinity in _NEVER_INTEGER and index >= 0 and driver.field(index).type == pa.int64():
            overrides[column] = affinity
    return overrides, when_empty


def sqlite_bound(value: datetime, zone: ZoneInfo, where: str) -> str:
    """A window bound as the text a SQLite cursor's text is compared with.

    SQLite has no date type: a DATE or TIMESTAMP column holds text ('2025-03-30',
    '2025-03-30 08:00:00', '2025-03-30T08:00:00.5'), compared character by character. A
    window bound is the first instant of a day in the pipeline's zone, so it is bound as
    that day's date alone: every text of that date, with or without a time and whichever
    separator, sorts at or after it, and every text of an earlier date before it, so
    `cursor >= 'D1' AND cursor < 'D2'` holds exactly the texts of dates D1 <= date < D2,
    and an index on the cursor serves it as a plain range. Its midnight with a time
    ('D1 00:00:00') would be after the date alone ('D1'), which would fall into the day
    before; and a 'T' sorts after a ' ', so no text with a time is right for both.
    """
    wall = _naive_wall(value, zone)
    day = wall.date()
    # the day's first instant: midnight, or the end of a DST gap that swallows it (fold=0)
    first = datetime(day.year, day.month, day.day, tzinfo=zone)
    if first.astimezone(UTC) != value.astimezone(UTC):
        # onceflow's windows are days; a bound within a day has no text that is right for
        # both separators, so it is refused rather than compared wrongly
        raise SourceError(
            f"{where}: window bound {value.isoformat()} is not the start of a day in {zone}"
        )
    return day.isoformat()


def _sqlite_fixes(table: str | None, overrides: dict[str, pa.DataType]) -> dict[str, str]:
    """The fix for each column read as a date or timestamp from its declared type, when
    its text is not one ('2025-01-01T10:00:00Z', '+02:00', '2025-1-5'): SQLite keeps
    whatever text was written. A query's columns keep their stored types (`_sqlite_types`),
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


# A column whose declared type does not settle its values' storage class (none, or
# NUMERIC affinity), or a DECIMAL(p,s) read as a decimal, is read "split": its storage
# class and its value of each class in columns of their own, none of them ever NULL. The
# driver types a column from its first batch and then converts what follows (an integer
# beyond 2**53 to a rounded double, a real to 15 or 6 digits of text) or fails on it
# (an int64 column, NULL through its first batch, meeting a real); a split column gives
# it one class per driver column, typed from the first row.
_CLASSES = ("integer", "real", "text", "blob")
_NULL, _REAL, _BLOB = 0, 2, 4
_CLASS_CODE = (
    "CASE typeof({c}) WHEN 'null' THEN 0 WHEN 'integer' THEN 1 WHEN 'real' THEN 2 "
    "WHEN 'text' THEN 3 ELSE 4 END"
)
_AS_REAL = "CASE WHEN typeof({c}) IN ('integer', 'real') THEN CAST({c} AS REAL) ELSE 0.0 END"
_AS_TEXT = "CASE WHEN typeof({c}) IN ('integer', 'text') THEN CAST({c} AS TEXT) ELSE '' END"
_AS_BLOB = "CASE WHEN typeof({c}) = 'blob' THEN {c} ELSE x'' END"
# every integer of magnitude up to 2**53 is exactly a double
_EXACT_IN_DOUBLE = 2**53


def _sqlite_unsettled(declared: dict[str, str], table: bool) -> list[str]:
    """The columns whose storage classes decide their type: no declared type, or NUMERIC
    affinity (`NUMERIC`, `DECIMAL`, a query's `DECIMAL(p,s)`), where no declaration is
    applied."""
    return [
        column
        for column, kind in declared.items()
        if _sqlite_affinity(kind) is None and not (table and _sqlite_type(kind) is not None)
    ]


def _sqlite_classes(cur: Any, sql: str, values: list[str], columns: list[str]) -> list[Any]:
    """For each column, whether it holds integers, reals, text, blobs, and integers a
    double cannot hold: one aggregate pass over the result (in the read's transaction)."""
    parts = []
    for column in columns:
        c = f"q.{quote_ident(column)}"
        parts += [f"max(typeof({c}) = '{kind}')" for kind in _CLASSES]
        parts.append(
            f"max(typeof({c}) = 'integer' AND ({c} > {_EXACT_IN_DOUBLE} "
            f"OR {c} < -{_EXACT_IN_DOUBLE}))"
        )
    cur.execute(f"SELECT {', '.join(parts)} FROM ({sql}) AS q", parameters=values or None)
    row = cur.fetchone() or ()
    return [bool(v) for v in row]


def _sqlite_choice(where: str, column: str, found: Sequence[bool]) -> pa.DataType | None:
    """The type that holds every value of a column exactly, from the storage classes it
    holds; None for int64 (or no value), which the driver reads as it is."""
    integer, real, text, blob, big = found
    if blob and (integer or real or text):
        raise SourceError(
            f"{where}: column {column!r} holds BLOBs and other values (no declared type, "
            "or NUMERIC), which no one type holds exactly; extract the table with a "
            f"`query:` that reads it as one kind, e.g. hex({column}) or "
            f"CAST({column} AS TEXT)"
        )
    if blob:
        return pa.binary()
    if text or (real and big):
        # numbers as their exact text: an integer's digits, a real's shortest round trip
        return pa.string()
    if real:
        return pa.float64()
    return None


def _int64_scalar(value: int) -> Any:
    """An int64 scalar without pa.scalar(), which imports pandas (see _text)."""
    data = pa.py_buffer(struct.pack("<q", value))
    return pa.Array.from_buffers(pa.int64(), 1, [None, data])[0]


class _Joined:
    """The driver's batches with each split column joined back into one column."""

    def __init__(
        self,
        reader: pa.RecordBatchReader,
        layout: list[tuple[str, pa.DataType | None]],
        where: str,
    ) -> None:
        self._reader = reader
        self._where = where
        self._layout = layout
        self.schema = pa.schema(
            [
                (name, reader.schema.field(self._index(i)).type if wanted is None else wanted)
                for i, (name, wanted) in enumerate(layout)
            ]
        )
        self._null, self._real, self._blob = (_int64_scalar(v) for v in (_NULL, _REAL, _BLOB))

    def _index(self, position: int) -> int:
        return sum(1 if w is None else _width(w) for _, w in self._layout[:position])

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for batch in self._reader:
            yield self._join(batch)

    def _join(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        from pyarrow._compute import call_function

        columns, at = [], 0
        for name, wanted in self._layout:
            if wanted is None:
                columns.append(batch.column(at))
                at += 1
                continue
            parts = [batch.column(i) for i in range(at, at + _width(wanted))]
            at += len(parts)
            kind = parts[0]
            if pa.types.is_binary(wanted) or pa.types.is_floating(wanted):
                value = parts[1]
            else:
                # only a DECIMAL(p,s) column is read as text with a blob in it
                if call_function("any", [call_function("equal", [kind, self._blob])]).as_py():
                    raise SourceError(
                        f"{self._where}: column {name!r} holds a BLOB, which no decimal "
                        f"holds; extract the table with a `query:` that reads it as one "
                        f"kind, e.g. hex({name}), or declare the column BLOB"
                    )
                real = call_function("equal", [kind, self._real])
                value = parts[2]
                if call_function("any", [real]).as_py():
                    value = call_function("if_else", [real, parts[1].cast(pa.string()), value])
            null = call_function("equal", [kind, self._null])
            if call_function("any", [null]).as_py():
                value = call_function("if_else", [null, pa.nulls(1, value.type)[0], value])
            columns.append(value)
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)


def _width(wanted: pa.DataType) -> int:
    """How many driver columns a split column takes: class, then double and/or text."""
    return 3 if pa.types.is_string(wanted) else 2


def _split_select(sql: str, layout: list[tuple[str, pa.DataType | None]]) -> str:
    """`sql` with its split columns read as their class, double and text (or blob)."""
    out = []
    for name, wanted in layout:
        c = f"q.{quote_ident(name)}"
        if wanted is None:
            out.append(c)
            continue
        out.append(_CLASS_CODE.format(c=c))
        if not pa.types.is_binary(wanted):
            out.append(_AS_REAL.format(c=c))
        if pa.types.is_binary(wanted):
            out.append(_AS_BLOB.format(c=c))
        elif not pa.types.is_floating(wanted):
            out.append(_AS_TEXT.format(c=c))
    return f"SELECT {', '.join(out)} FROM ({sql}) AS q"


class SqliteReader(Reader):
    """ADBC SQLite driver; a window is compared with a cursor's text by date (`sqlite_bound`).

    A table's declared types are applied: DECIMAL(p,s)/NUMERIC(p,s) -> decimal(p,s),
    BOOLEAN -> bool, TIMESTAMP/DATETIME -> timestamp (naive wall time), DATE -> date.
    A column without a type or with NUMERIC affinity takes the type that holds every
    storage class it holds (one aggregate pass first); it and a DECIMAL(p,s) are read
    split by storage class, so the driver converts none of their values. The driver types
    the other columns from their values; where it saw none (an empty window, a column
    NULL throughout), the declared type's affinity decides, so an empty window's file has
    the schema a window with rows would have.
    """

    def batches(self, spec: ReadSpec) -> Iterator[pa.RecordBatch]:
        import adbc_driver_sqlite.dbapi as adbc_sqlite

        path = self.url.split(":///", 1)[1] if ":///" in self.url else self.url
        if not Path(path).is_file():
            raise SourceError(f"{self.where}: SQLite database {path} not found")
        sql, names = build_select(spec, '"', "sqlite")
        window = bound_values(names, self._window_values(spec))
        values = [sqlite_bound(v, self.zone, self.where) for v in window]
        try:
            conn = adbc_sqlite.connect(path)
        except Exception as error:
            raise classify(error, self.where) from None
        try:
            with conn.cursor() as cur:
                cur.adbc_statement.set_options(
                    **{"adbc.sqlite.query.batch_rows": str(spec.batch_rows)}
                )
                declared = _sqlite_declared(path, sql)
                if spec.audits_cursor:
                    self._audit_cursor(path, spec, declared)
                positional = to_positional(sql, "qmark", dialect="sqlite")
                layout = self._layout(cur, positional, values, declared, spec)
                read = sql if layout is None else _split_select(sql, layout)
                cur.execute(
                    to_positional(read, "qmark", dialect="sqlite"), parameters=values or None
                )
                reader: Any = cur.fetch_record_batch()
                if layout is not None:
                    reader = _Joined(reader, layout, self.where)
                _check_cursor(spec, reader.schema.names, self.where, "sqlite")
                overrides, when_empty = _sqlite_types(
                    declared, reader.schema, table=spec.table is not None
                )
                fixes = _sqlite_fixes(spec.table, overrides)
                yield from _stream(reader, self.where, overrides, when_empty, fixes)
        except SourceError:
            raise
        except Exception as error:
            raise classify(error, self.where) from None
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def _layout(
        self, cur: Any, sql: str, values: list[str], declared: dict[str, str], spec: ReadSpec
    ) -> list[tuple[str, pa.DataType | None]] | None:
        """How each result column is read: None as the driver reads it, else the type
        its split read gives (a DECIMAL(p,s) as text, for an exact cast). None overall
        when every column is read as it is: the table is then read once."""
        table = spec.table is not None
        unsettled = _sqlite_unsettled(declared, table)
        found = _sqlite_classes(cur, sql, values, unsettled) if unsettled else []
        chosen = {
            column: _sqlite_choice(self.where, column, found[5 * i : 5 * i + 5])
            for i, column in enumerate(unsettled)
        }
        for column, kind in declared.items():
            if table and pa.types.is_decimal(_sqlite_type(kind) or pa.null()):
                chosen[column] = pa.string()
        if not any(chosen.values()):
            return None
        return [(column, chosen.get(column)) for column in declared]

    def _audit_cursor(self, path: str, spec: ReadSpec, declared: dict[str, str]) -> None:
        """Refuse a cursor declared as a number (unix epoch seconds: SQLite orders every
        number before every text, so no window holds one) or a blob, and a cursor whose
        values are numbers or text that is not an ISO 8601 time; then count its NULLs. SQLite
        has no date type: times are text (ISO 8601), in a column declared DATE, DATETIME,
        TIMESTAMP, TEXT or nothing. One pass over the column (not served by an index, as
        a count of NULLs alone would be: SQLite sources are small)."""
        import sqlite3

        assert spec.cursor
        # SQLite matches names in any letter case (A-Z), as `_check_cursor` does
        kind = next((k for c, k in declared.items() if c.lower() == spec.cursor.lower()), "")
        if _sqlite_affinity(kind) in (pa.int64(), pa.float64(), pa.binary()):
            raise self._not_a_time(spec, f"declared {kind}")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute(sqlite_cursor_audit(spec)).fetchone()
        finally:
            conn.close()
        self._sqlite_counted(spec, row)


# pymysql field type codes
_MYSQL_DECIMAL = {0, 246}
_MYSQL_TINY = 1
_MYSQL_TIMESTAMP = 7
_MYSQL_DATES = {7, 10, 12, 14}  # TIMESTAMP, DATE, DATETIME, NEWDATE
_MYSQL_TIME = 11
_MYSQL_JSON = 245
_MYSQL_UNSIGNED_FLAG = 32
# the types a cursor column may wrongly be, by field type code, for its refusal
_MYSQL_TYPE_NAMES = {
    **dict.fromkeys((0, 246), "decimal"),
    1: "tinyint",
    2: "smallint",
    3: "int",
    4: "float",
    5: "double",
    8: "bigint",
    9: "mediumint",
    11: "time",
    13: "year",
    16: "bit",
    245: "json",
    **dict.fromkeys((15, 253, 254), "varchar or char"),
    **dict.fromkeys((249, 250, 251, 252), "text or blob"),
}
# ConnectorX reads a DECIMAL as a 96-bit decimal rescaled to 10 places (at most ~7.9e28,
# so 18 integer digits are always safe, 19 only sometimes) and panics on a value beyond it
_CX_DECIMAL_SCALE = 10
_CX_DECIMAL_INTEGER_DIGITS = 18


def _mysql_read(column: str, kind: str) -> str:
    """The select expression that reads a column of the query `q` as onceflow wants it.

    `text`: the server's text of the value (exact, cast back to the declared decimal, or a
    TIME, which spans -838:59:59 to 838:59:59: not a time of day). `date`: NULL for a date
    that is no date (`0000-00-00`, `2025-00-00`, `2025-02-31` under ALLOW_INVALID_DATES),
    which MySQL keeps under a lax sql_mode and which ConnectorX panics on, and for year 0
    (`0000-01-01`, below MySQL's supported 1000-01-01), which no Python or Spark reader
    can hold.
    """
    name = quote_ident(column, "`")
    if kind == "text":
        return f"CAST(q.{name} AS CHAR) AS {name}"
    assert kind == "date"
    return (
        f"CASE WHEN YEAR(q.{name}) > 0 AND MONTH(q.{name}) > 0 AND DAYOFMONTH(q.{name}) > 0 AND "
        f"DAYOFMONTH(q.{name}) <= DAYOFMONTH(LAST_DAY(q.{name})) THEN q.{name} END AS {name}"
    )


class MysqlReader(Reader):
    """pymysql preflight (errors, declared types), then ConnectorX streams Arrow batches.

    The session runs in UTC, so TIMESTAMP columns are exact instants; DATETIME columns are
    wall time in the pipeline's zone. Parameters are bound by pymysql's escaping, the same
    binding pymysql itself performs on every query.
    """

    def _connect(self) -> Any:
        import pymysql

        url = urlsplit(self.url)
        try:
            return pymysql.connect(
                host=url.hostname or "localhost",
                port=url.port or 3306,
                user=unquote(url.username or ""),
                password=unquote(url.password or ""),
                database=unquote(url.path.lstrip("/")) or None,
                connect_timeout=10,
                init_command="SET time_zone = '+00:00'",
            )
        except Exception as error:
            raise classify(error, self.where) from None

    def batches(self, spec: ReadSpec) -> Iterator[pa.RecordBatch]:
        import connectorx as cx

        sql, names = build_select(spec, "`", "mysql")
        window = self._window_values(spec)
        # Where onceflow applies the window, the probe also reads the cursor column by its
        # name, so the server resolves it as it does in the WHERE (any letter case): its
        # type decides how the window is bound. A query with markers may window on a
        # column it does not return; its cursor is looked for among the result's names.
        marked = bool(spec.query and has_markers(spec.query, "mysql"))
        by_server = bool(spec.cursor and spec.window and not marked)
        cursor = f", onceflow_probe.{quote_ident(spec.cursor or '', '`')}" if by_server else ""
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                probe = (
                    f"SELECT onceflow_probe.*{cursor} FROM "
                    f"({to_positional(sql, 'format', dialect='mysql')}) onceflow_probe LIMIT 0"
                )
                probe_values = [self._bind(v, None) for v in bound_values(names, window)]
                cur.execute(probe, probe_values)
                description = list(cur.description or ())
                fields = list(getattr(getattr(cur, "_result", None), "fields", None) or [])
                if by_server:
                    cursor_type = description.pop()[1]
                    fields = fields[:-1]
                else:
                    cursor_type = self._cursor_type(description, spec.cursor)
                values = [self._bind(v, cursor_type) for v in bound_values(names, window)]
                overrides, reads = self._overrides(description, fields)
                columns = [d[0] for d in description]
                if spec.audits_cursor:  # after the probe's description is read
                    self._audit_cursor(cur, spec, cursor_type)
                final = cur.mogrify(
                    to_positional(self._select(sql, columns, reads), "format", dialect="mysql"),
                    values,
                )
        except SourceError:
            raise
        except Exception as error:
            raise classify(error, self.where) from None
        finally:
            with contextlib.suppress(Exception):
                conn.close()
        # ConnectorX wants the plain scheme; the rest of the URL (still percent-encoded) as is.
        # (urllib rather than SQLAlchemy: its import alone costs 0.18 s of every command.)
        parts = urlsplit(self.url)
        url = f"mysql://{parts.netloc}{parts.path}"
        try:
            reader = cx.read_sql(
                url,
                final,
                return_type="arrow_stream",
                batch_size=spec.batch_rows,
                pre_execution_query=["SET time_zone = '+00:00'"],
            )
            yield from _stream(reader, self.where, overrides)
        except SourceError:
            raise
        except BaseException as error:
            # ConnectorX panics on a value it cannot convert; a panic is a BaseException,
            # which would otherwise end the whole run, not just fail this table
            if not (isinstance(error, Exception) or is_panic(error)):
                raise
            raise classify(error, self.where) from None

    @staticmethod
    def _cursor_type(description: Sequence[Any], cursor: str | None) -> int | None:
        """The type code of the result column named `cursor`, in any letter case (MySQL's
        names are case-insensitive); an exact match first. None if there is none."""
        if not cursor:
            return None
        same = _same_name("mysql")
        for exact in (True, False):
            for column in description:
                if column[0] == cursor if exact else same(column[0], cursor):
                    return int(column[1])
        return None

    def _audit_cursor(self, cur: Any, spec: ReadSpec, cursor_type: int | None) -> None:
        """Refuse a cursor that is no date or time (MySQL would compare a number with the
        window's text and select nothing, without an error), then count its rows in no
        window: NULL, or a zero date (`0000-00-00`; in a NOT NULL column MySQL also
        matches it with IS NULL) or any date before 1000-01-01, read as NULL."""
        if cursor_type is None:
            return  # not among the columns: the window's query names the missing column
        if cursor_type not in _MYSQL_DATES:
            kind = _MYSQL_TYPE_NAMES.get(cursor_type, f"code {cursor_type}")
            raise self._not_a_time(spec, f"of type {kind}")
        also, what = _NO_WINDOW["mysql"]
        cur.execute(
            to_positional(null_cursor_count(spec, "`", also), "format", dialect="mysql"), ()
        )
        count = int(cur.fetchone()[0])
        self._counted(spec, count, what, self._no_zone_tables(cur, spec) if count else "")

    @staticmethod
    def _no_zone_tables(cur: Any, spec: ReadSpec) -> str:
        """Why a query's CONVERT_TZ cursor is NULL when the server has no time zone tables
        (the default): to a named zone it gives NULL for every row; '' otherwise."""
        if not (spec.query and "convert_tz" in spec.query.lower()):
            return ""
        cur.execute("SELECT CONVERT_TZ('2000-01-01 00:00:00', '+00:00', 'UTC') IS NULL")
        if not cur.fetchone()[0]:
            return ""
        return (
            "; but first: this server has no time zone tables, so the query's CONVERT_TZ "
            "to a named zone gives NULL for every row: load them with mysql_tzinfo_to_sql"
        )

    def _bind(self, value: datetime, cursor_type: int | None) -> datetime:
        if cursor_type == _MYSQL_TIMESTAMP:
            return value.astimezone(UTC).replace(tzinfo=None)
        return _naive_wall(value, self.zone)

    @staticmethod
    def _decimal_precision(length: int, scale: int, flags: int | None) -> int:
        """DECIMAL(p,s) from its column length, which counts the sign and the point."""
        unsigned = flags is not None and bool(flags & _MYSQL_UNSIGNED_FLAG)
        return max(1, length - (1 if scale > 0 else 0) - (0 if unsigned else 1))

    @staticmethod
    def _select(sql: str, columns: list[str], reads: dict[str, str]) -> str:
        """The query that reads each column as `_overrides` asks (`_mysql_read`)."""
        if not reads:
            return sql
        cols = ", ".join(
            _mysql_read(n, reads[n]) if n in reads else f"q.{quote_ident(n, '`')}" for n in columns
        )
        return f"SELECT {cols} FROM ({sql}) q"

    @classmethod
    def _overrides(
        cls, description: Any, fields: Any = ()
    ) -> tuple[dict[str, pa.DataType], dict[str, str]]:
        """The Arrow type of each column whose ConnectorX type is not exact, and how to
        read the columns ConnectorX cannot read as they are (`_mysql_read`)."""
        overrides: dict[str, pa.DataType] = {}
        reads: dict[str, str] = {}
        flags = [getattr(f, "flags", None) for f in fields] or [None] * len(description)
        for (name, code, _disp, length, _prec, scale, _null), flag in zip(
            description, flags, strict=True
        ):
            if code in _MYSQL_DECIMAL and length is not None:
                s = int(scale or 0)
                p = cls._decimal_precision(int(length), s, flag)
                overrides[name] = decimal_type(p, s)
                if s > _CX_DECIMAL_SCALE or p - s > _CX_DECIMAL_INTEGER_DIGITS:
                    reads[name] = "text"  # beyond what ConnectorX holds: exact as text
            elif code == _MYSQL_TINY and length == 1:
                overrides[name] = pa.bool_()
            elif code == _MYSQL_TIME:
                overrides[name] = pa.string()
                reads[name] = "text"
            elif code in _MYSQL_DATES:
                reads[name] = "date"
                if code == _MYSQL_TIMESTAMP:
                    overrides[name] = pa.timestamp("us", tz="UTC")
            elif code == _MYSQL_JSON:
                overrides[name] = pa.json_(pa.string())
        return overrides, reads


_SA_TYPES: list[tuple[str, pa.DataType]] = [
    ("BIGINT", pa.int64()),
    ("SMALLINT", pa.int16()),
    ("TINYINT", pa.int8()),
    ("INTEGER", pa.int32()),
    ("BOOLEAN", pa.bool_()),
    ("DOUBLE", pa.float64()),
    ("REAL", pa.float32()),
    ("FLOAT", pa.float64()),
    ("DATE", pa.date32()),
    ("BLOB", pa.binary()),
    ("BINARY", pa.binary()),
    ("BYTEA", pa.binary()),
    ("JSON", pa.json_(pa.string())),
]
# SQLite stores every integer in 64 bits and every real in a double.
_SA_SQLITE_TYPES = {"INTEGER": pa.int64(), "SMALLINT": pa.int64(), "REAL": pa.float64()}


def _sa_array(name: str, values: list[Any], declared: pa.DataType | None) -> pa.Array:
    """A column of Python values as its declared type (a driver may give floats for a
    decimal, e.g. SQLite): built directly, else inferred and cast (ConversionError for
    a value the type cannot hold, such as 2 in a BOOLEAN column)."""
    try:
        return pa.array(values, type=declared)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        if declared is None:
            raise
        return cast_column(name, pa.array(values), declared)


def _sa_base(kind: Any) -> Any:
    """A reflected column type, a PostgreSQL domain (over a domain...) as the type under
    it: the server compares and returns its values as that type's."""
    from sqlalchemy.dialects.postgresql import DOMAIN

    while isinstance(kind, DOMAIN):
        kind = kind.data_type
    return kind


class SqlAlchemyReader(Reader):
    """Any SQLAlchemy URL (Oracle through oracledb): a server-side cursor, columns to Arrow."""

    def batches(self, spec: ReadSpec) -> Iterator[pa.RecordBatch]:
        import sqlalchemy as sa

        try:
            engine = sa.create_engine(self.url)
        except Exception as error:
            raise classify(error, self.where) from None
        quote = engine.dialect.identifier_preparer.initial_quote
        dialect = engine.dialect.name
        sql, names = build_select(spec, quote, dialect)
        postgres = dialect == "postgresql"
        # PostgreSQL: the window is two instants, naive cursors compare as wall time in the
        # session's zone. SQLite: dates as text (`sqlite_bound`). Elsewhere: naive wall
        # time in the pipeline's zone (portable).
        params = {n: self._param(v, dialect) for n, v in self._window_values(spec).items()}
        try:
            with engine.connect() as conn:
                if postgres:
                    conn.execute(
                        sa.text("SELECT set_config('TimeZone', :tz, false)"), {"tz": str(self.zone)}
                    )
                declared = self._declared(conn, spec) if spec.table else {}
                if spec.audits_cursor:
                    self._audit_cursor(conn, spec)
                result = conn.execution_options(
                    stream_results=True, yield_per=spec.batch_rows
                ).execute(sa.text(to_sqlalchemy(sql, dialect)), {k: params[k] for k in names})
                columns = list(result.keys())
                _check_cursor(spec, columns, self.where, dialect)
                schema: pa.Schema | None = None
                for rows in result.partitions(spec.batch_rows):
                    arrays = [
                        _sa_array(name, list(col), declared.get(name))
                        for name, col in zip(columns, zip(*rows, strict=True), strict=True)
                    ]
                    batch = pa.RecordBatch.from_arrays(arrays, names=columns)
                    if schema is None:
                        schema = batch.schema
                    elif batch.schema != schema:
                        batch = batch.cast(schema)
                    yield batch
                if schema is None:
                    fields = [pa.field(c, declared.get(c, pa.string())) for c in columns]
                    yield pa.RecordBatch.from_pylist([], schema=pa.schema(fields))
        except SourceError:
            raise
        except ConversionError as error:
            raise SourceError(f"{self.where}: {error}") from None
        except Exception as error:
            raise classify(error, self.where) from None
        finally:
            engine.dispose()

    def _param(self, value: datetime, dialect: str) -> datetime | str:
        if dialect == "postgresql":
            return value
        if dialect == "sqlite":
            return sqlite_bound(value, self.zone, self.where)
        return _naive_wall(value, self.zone)

    def _audit_cursor(self, conn: Any, spec: ReadSpec) -> None:
        """Refuse a cursor that is no date or time and count its rows in no window, as
        the dialect's own reader does: PostgreSQL asks the server for the type (a domain
        is judged by its base type) and counts +-infinity, MySQL counts zero dates,
        SQLite refuses numbers and text that is not an ISO 8601 time; elsewhere a table's
        declared type is judged and NULLs are counted."""
        import sqlalchemy as sa

        dialect = "mysql" if conn.dialect.name == "mariadb" else conn.dialect.name

        def scalars(sql: str) -> list[Any]:
            return list(conn.execute(sa.text(to_sqlalchemy(sql, dialect))).one())

        def column(sql: str) -> list[Any]:
            return list(conn.execute(sa.text(to_sqlalchemy(sql, dialect))).scalars())

        if dialect == "postgresql":
            if (refused := _pg_not_a_time(column(pg_cursor_types(spec)))) is not None:
                raise self._not_a_time(spec, refused)
        elif spec.table:
            schema, _, name = spec.table.rpartition(".")
            table = sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=conn)
            found = table.columns.get(spec.cursor or "")
            kind = None if found is None else found.type
            text = (sa.String, sa.types.NullType) if dialect == "sqlite" else ()
            if kind is not None and not isinstance(kind, (sa.Date, sa.DateTime, *text)):
                raise self._not_a_time(spec, f"of type {kind}")
        if dialect == "sqlite":
            self._sqlite_counted(spec, scalars(sqlite_cursor_audit(spec)))
            return
        also, what = _NO_WINDOW.get(dialect, ("", "NULL"))
        quote = conn.dialect.identifier_preparer.initial_quote
        self._counted(spec, int(scalars(null_cursor_count(spec, quote, also))[0]), what)

    @staticmethod
    def _declared(conn: Any, spec: ReadSpec) -> dict[str, pa.DataType]:
        import sqlalchemy as sa

        assert spec.table
        schema, _, name = spec.table.rpartition(".")
        table = sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=conn)
        out: dict[str, pa.DataType] = {}
        for column in table.columns:
            declared = _sa_base(column.type)
            kind = type(declared).__name__.upper()
            if isinstance(declared, sa.Numeric) and not isinstance(declared, sa.Float):
                p, s = declared.precision, declared.scale
                if p is not None and (s or 0) > 0:
                    out[column.name] = decimal_type(p, s or 0)
                    continue
            if isinstance(declared, sa.DateTime):
                tz = "UTC" if declared.timezone else None
                out[column.name] = pa.timestamp("us", tz=tz)
                continue
            for label, arrow_type in _SA_TYPES:
                if label in kind:
                    if conn.dialect.name == "sqlite":
                        arrow_type = _SA_SQLITE_TYPES.get(label, arrow_type)
                    out[column.name] = arrow_type
                    break
            else:
                if isinstance(declared, sa.String):
                    out[column.name] = pa.string()
        return out


def make_reader(source: SourceConfig, url: str, zone: ZoneInfo, where: str) -> Reader:
    """The reader for a source: its `reader:` setting, or the fastest for its dialect."""
    choice = source.resolved_reader
    if choice == "sqlalchemy":
        problem = source.driver_problem()  # else: "No module named 'MySQLdb'", no fix
        if problem:
            raise SourceError(f"{where}: {problem}")
        return SqlAlchemyReader(source, url, zone, where)
    if source.dialect == "postgresql":
        return PostgresReader(source, url, zone, where)
    if source.dialect == "sqlite":
        return SqliteReader(source, url, zone, where)
    if source.dialect == "mysql":
        return MysqlReader(source, url, zone, where)
    raise SourceError(
        f"{where}: reader {choice!r} does not support {source.dialect}; use reader: sqlalchemy"
    )
