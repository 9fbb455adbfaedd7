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
from collections.abc import Iterator, Sequence
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
    quote_ident,
    to_positional,
    to_session_settings,
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


def _check_cursor(spec: ReadSpec, columns: list[str], where: str) -> None:
    """Refuse a window on a cursor column that the rows do not have.

    SQLite takes a double-quoted name that matches no column for a string literal, so
    `"updatd_at" >= ?` would silently select nothing instead of failing.
    """
    if not (spec.cursor and spec.window) or spec.cursor in columns:
        return
    if spec.query and has_markers(spec.query):
        return  # the query applies the window itself, on whatever column it likes
    raise SourceError(
        f"{where}: column not found: cursor column {spec.cursor!r} is not among the "
        f"columns ({', '.join(columns)})"
    )


class Reader(ABC):
    """Streams the rows of one ReadSpec from one source."""

    def __init__(self, source: SourceConfig, url: str, zone: ZoneInfo, where: str) -> None:
        self.source = source
        self.url = url
        self.zone = zone
        self.where = where

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
) -> Iterator[pa.RecordBatch]:
    """The reader's batches cast to their target schema; with no row, one empty batch.

    `when_empty` gives the types of a result without rows, for a driver that types columns
    from their values and so has nothing to go on (SQLite: every column int64).
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
                raise SourceError(f"{where}: {error}") from None
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


class PostgresReader(Reader):
    """ADBC libpq driver: binary COPY, streamed; window values bound into session settings."""

    def batches(self, spec: ReadSpec) -> Iterator[pa.RecordBatch]:
        sql, names = build_select(spec, '"')
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
        conn.execute(f"CREATE TEMP VIEW onceflow_probe AS {without_window(sql)}")
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


class SqliteReader(Reader):
    """ADBC SQLite driver; timestamps are compared as 'YYYY-MM-DD HH:MM:SS' wall-time text.

    A table's declared types are applied: DECIMAL(p,s)/NUMERIC(p,s) -> decimal(p,s),
    BOOLEAN -> bool, TIMESTAMP/DATETIME -> timestamp (naive wall time), DATE -> date.
    The driver types the other columns from their values; where it saw none (an empty
    window, a column NULL throughout), the declared type's affinity decides, so an empty
    window's file has the schema a window with rows would have.
    """

    def batches(self, spec: ReadSpec) -> Iterator[pa.RecordBatch]:
        import adbc_driver_sqlite.dbapi as adbc_sqlite

        path = self.url.split(":///", 1)[1] if ":///" in self.url else self.url
        if not Path(path).is_file():
            raise SourceError(f"{self.where}: SQLite database {path} not found")
        sql, names = build_select(spec, '"')
        values = [
            _naive_wall(v, self.zone).isoformat(sep=" ")
            for v in bound_values(names, self._window_values(spec))
        ]
        try:
            conn = adbc_sqlite.connect(path)
        except Exception as error:
            raise classify(error, self.where) from None
        try:
            with conn.cursor() as cur:
                cur.adbc_statement.set_options(
                    **{"adbc.sqlite.query.batch_rows": str(spec.batch_rows)}
                )
                cur.execute(to_positional(sql, "qmark"), parameters=values or None)
                declared = _sqlite_declared(path, sql)
                reader = cur.fetch_record_batch()
                _check_cursor(spec, reader.schema.names, self.where)
                overrides, when_empty = _sqlite_types(
                    declared, reader.schema, table=spec.table is not None
                )
                yield from _stream(reader, self.where, overrides, when_empty)
        except SourceError:
            raise
        except Exception as error:
            raise classify(error, self.where) from None
        finally:
            with contextlib.suppress(Exception):
                conn.close()


# pymysql field type codes
_MYSQL_DECIMAL = {0, 246}
_MYSQL_TINY = 1
_MYSQL_TIMESTAMP = 7
_MYSQL_DATES = {7, 10, 12, 14}  # TIMESTAMP, DATE, DATETIME, NEWDATE
_MYSQL_TIME = 11
_MYSQL_JSON = 245
_MYSQL_UNSIGNED_FLAG = 32
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

        sql, names = build_select(spec, "`")
        window = self._window_values(spec)
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                probe = f"SELECT * FROM ({to_positional(sql, 'format')}) onceflow_probe LIMIT 0"
                probe_values = [self._bind(v, None) for v in bound_values(names, window)]
                cur.execute(probe, probe_values)
                description = cur.description or ()
                types = {d[0]: d for d in description}
                cursor_type = types.get(spec.cursor or "", (None, None))[1]
                values = [self._bind(v, cursor_type) for v in bound_values(names, window)]
                fields = getattr(getattr(cur, "_result", None), "fields", None) or []
                overrides, reads = self._overrides(description, fields)
                final = cur.mogrify(
                    to_positional(self._select(sql, list(types), reads), "format"), values
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
# A colon that is not one of our window markers: escaped, so that sa.text() keeps it.
_SA_COLON = re.compile(r":(?!(?:window_start|window_end)\b)")


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


class SqlAlchemyReader(Reader):
    """Any SQLAlchemy URL (Oracle through oracledb): a server-side cursor, columns to Arrow."""

    def batches(self, spec: ReadSpec) -> Iterator[pa.RecordBatch]:
        import sqlalchemy as sa

        try:
            engine = sa.create_engine(self.url)
        except Exception as error:
            raise classify(error, self.where) from None
        quote = engine.dialect.identifier_preparer.initial_quote
        sql, names = build_select(spec, quote)
        postgres = engine.dialect.name == "postgresql"
        # PostgreSQL: the window is two instants, naive cursors compare as wall time in the
        # session's zone. Elsewhere: naive wall time in the pipeline's zone (portable).
        params = {
            n: v if postgres else _naive_wall(v, self.zone)
            for n, v in self._window_values(spec).items()
        }
        try:
            with engine.connect() as conn:
                if postgres:
                    conn.execute(
                        sa.text("SELECT set_config('TimeZone', :tz, false)"), {"tz": str(self.zone)}
                    )
                declared = self._declared(conn, spec) if spec.table else {}
                result = conn.execution_options(
                    stream_results=True, yield_per=spec.batch_rows
                ).execute(sa.text(_SA_COLON.sub(r"\\:", sql)), {k: params[k] for k in names})
                columns = list(result.keys())
                _check_cursor(spec, columns, self.where)
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

    @staticmethod
    def _declared(conn: Any, spec: ReadSpec) -> dict[str, pa.DataType]:
        import sqlalchemy as sa

        assert spec.table
        schema, _, name = spec.table.rpartition(".")
        table = sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=conn)
        out: dict[str, pa.DataType] = {}
        for column in table.columns:
            kind = type(column.type).__name__.upper()
            if isinstance(column.type, sa.Numeric) and not isinstance(column.type, sa.Float):
                p, s = column.type.precision, column.type.scale
                if p is not None and (s or 0) > 0:
                    out[column.name] = decimal_type(p, s or 0)
                    continue
            if isinstance(column.type, sa.DateTime):
                tz = "UTC" if column.type.timezone else None
                out[column.name] = pa.timestamp("us", tz=tz)
                continue
            for label, arrow_type in _SA_TYPES:
                if label in kind:
                    if conn.dialect.name == "sqlite":
                        arrow_type = _SA_SQLITE_TYPES.get(label, arrow_type)
                    out[column.name] = arrow_type
                    break
            else:
                if isinstance(column.type, sa.String):
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
