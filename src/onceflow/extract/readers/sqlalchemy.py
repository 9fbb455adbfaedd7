"""The generic reader: any SQLAlchemy URL (Oracle through oracledb), a server-side cursor,
its rows turned into Arrow columns of the table's declared types.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from onceflow.errors import SourceError
from onceflow.extract.classify import classify
from onceflow.extract.readers.base import (
    Reader,
    check_cursor,
    distinct_columns,
    naive_wall,
    sqlite_distinct_columns,
)
from onceflow.extract.readers.cursors import NO_WINDOW, is_pg_text, pg_not_a_time
from onceflow.extract.readers.mysql import MYSQL_TIMESTAMP, MysqlReader, cursor_not_returned
from onceflow.extract.readers.sa_mysql import mysql_declared
from onceflow.extract.readers.sa_postgres import (
    has_markers,
    pg_declared,
    register_loaders,
    resolve,
)
from onceflow.extract.readers.sqlite import sqlite_bound
from onceflow.extract.readers.sqlite_types import sqlite_fixes
from onceflow.extract.sql import (
    ReadSpec,
    build_select,
    columns_probe,
    null_cursor_count,
    pg_cursor_types,
    sqlite_cursor_audit,
    table_parts,
    to_sqlalchemy,
)
from onceflow.extract.types import ConversionError, cast_column, decimal_type, sql_name

_SA_TYPES: list[tuple[str, pa.DataType]] = [
    ("BIGINT", pa.int64()),
    ("SMALLINT", pa.int16()),
    ("TINYINT", pa.int8()),
    ("INTEGER", pa.int32()),
    ("MEDIUMINT", pa.int32()),
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
# MySQL/MariaDB unsigned integers, as the native reader reads them (MEDIUMINT: 24 bits)
_SA_UNSIGNED = {
    "BIGINT": pa.uint64(),
    "SMALLINT": pa.uint16(),
    "TINYINT": pa.uint8(),
    "INTEGER": pa.uint32(),
    "MEDIUMINT": pa.uint32(),
}
# the text PyMySQL gives for a date it cannot parse (a zero or invalid date)
_ZERO_DATE = re.compile(r"\d{4}-\d\d-\d\d")
# SQLAlchemy's warning on reflecting a MySQL/MariaDB spatial column
_SPATIAL_UNKNOWN = (
    r"Did not recognize type '(geometry|point|linestring|polygon|multipoint|multilinestring"
    r"|multipolygon|geometrycollection|geomcollection)'"
)
# SQLite stores every integer in 64 bits and every real in a double.
_SA_SQLITE_TYPES = {
    "INTEGER": pa.int64(),
    "SMALLINT": pa.int64(),
    "MEDIUMINT": pa.int64(),
    "REAL": pa.float64(),
}


def _sa_array(
    name: str, values: list[Any], declared: pa.DataType | None, dialect: str = ""
) -> pa.Array:
    """A column of Python values as its declared type (a driver may give floats for a
    decimal, e.g. SQLite): built directly, else inferred and cast (ConversionError for
    a value the type cannot hold, such as 2 in a BOOLEAN column, and for values Arrow
    holds no type of, or only a duration: see `_unheld`). Only a column that fails to
    build is looked at again: PostgreSQL's markers (`sa_postgres`) resolved, MySQL's
    zero and invalid dates (which PyMySQL gives as their text) read as NULL."""
    try:
        array = pa.array(values, type=declared)
    except (pa.ArrowTypeError, pa.ArrowInvalid, OverflowError) as error:
        # OverflowError: an integer past int64 where no type is declared (a driver
        # without MySQL's UNSIGNED flag), which named no column
        if dialect == "postgresql" and has_markers(values):
            values, built = resolve(name, values)
            if built is not None:
                return pa.array(values, type=pa.int64()).cast(built)
            return _sa_array(name, values, declared)
        if dialect in ("mysql", "mariadb") and _zero_dates(values, declared):
            # as the native reader and JDBC's zeroDateTimeBehavior=convertToNull
            return _sa_array(name, [None if isinstance(v, str) else v for v in values], declared)
        if declared is None or isinstance(error, OverflowError):
            detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ConversionError(
                _unheld(name, f"values Arrow has no type for ({detail})", dialect), name
            ) from None
        array = cast_column(name, pa.array(values), declared)
    if pa.types.is_duration(array.type):
        # a MySQL TIME (-838:59:59..838:59:59) or a PostgreSQL interval, whose months
        # psycopg counts as 30 days: Delta holds no duration, and its load named nothing
        what = "durations (a MySQL TIME; a PostgreSQL interval, its months counted as 30 days)"
        raise ConversionError(_unheld(name, f"{what}, which no Delta table holds", dialect), name)
    return array


def _zero_dates(values: list[Any], declared: pa.DataType | None) -> bool:
    """Whether a MySQL date column holds text: PyMySQL gives a date it cannot parse
    (`0000-00-00`, `2024-02-31` under a lax sql_mode) as its text."""
    temporal = declared is not None and pa.types.is_temporal(declared)
    if not temporal and not any(isinstance(v, date) for v in values):
        return False
    return any(isinstance(v, str) and _ZERO_DATE.match(v) for v in values)


def _unheld(name: str, what: str, dialect: str = "") -> str:
    """Why column `name`, as the SQLAlchemy driver gives it, cannot be extracted, and the
    fix: the native reader, or a query reading it as text in the source's own SQL."""
    sql = sql_name(name)
    head = f"column {name!r} comes through SQLAlchemy as {what}. Extract it with "
    if dialect == "sqlite":
        return head + f"a query reading it as text, e.g. `CAST({sql} AS TEXT) AS {sql}`"
    if dialect in ("mysql", "mariadb"):
        return (
            head
            + f"`reader: auto`, or a query reading it as text, e.g. `CAST({sql} AS CHAR) AS {sql}`"
        )
    if dialect == "postgresql":
        return head + f"`reader: auto`, or a query reading it as text, e.g. `{sql}::text AS {sql}`"
    return head + (
        "`reader: auto` (MySQL/MariaDB, PostgreSQL), or with a query reading it as text, e.g. "
        f"`CAST({sql} AS CHAR) AS {sql}` (MySQL/MariaDB) or `{sql}::text AS {sql}` "
        "(PostgreSQL)"
    )


def _sa_base(kind: Any) -> Any:
    """A reflected column type, a PostgreSQL domain (over a domain...) as the type under
    it: the server compares and returns its values as that type's."""
    from sqlalchemy.dialects.postgresql import DOMAIN

    while isinstance(kind, DOMAIN):
        kind = kind.data_type
    return kind


def _reflected(conn: Any, name: str) -> Any:
    """The table a `table:` name names, reflected (its parts as `table_parts` reads them).
    SQLAlchemy's warning for a MySQL spatial type it does not know is kept off stderr:
    the column is read as the server's bytes, which the docs describe."""
    import sqlalchemy as sa

    *schema, table = table_parts(name)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _SPATIAL_UNKNOWN, sa.exc.SAWarning)
        return sa.Table(table, sa.MetaData(), schema=".".join(schema) or None, autoload_with=conn)


class SqlAlchemyReader(Reader):
    """Any SQLAlchemy URL (Oracle through oracledb): a server-side cursor, columns to Arrow."""

    def batches(self, spec: ReadSpec) -> Iterator[pa.RecordBatch]:
        """The rows through a SQLAlchemy server-side cursor, `spec.batch_rows` at a time, typed
        by the declared types where the dialect gives them."""
        import sqlalchemy as sa

        try:
            engine = sa.create_engine(self.url)
        except Exception as error:
            raise classify(error, self.where) from None
        quote = engine.dialect.identifier_preparer.initial_quote
        dialect = engine.dialect.name
        sql, names = build_select(spec, quote, dialect)
        postgres = dialect == "postgresql"
        mysql = dialect in ("mysql", "mariadb")
        # PostgreSQL: the window is two instants, naive cursors compare as wall time in the
        # session's zone. SQLite: dates as text (`sqlite_bound`). MySQL: by the cursor's
        # type, as the native reader (`_mysql_window`). Elsewhere: naive wall time in the
        # pipeline's zone (portable).
        window = self._window_values(spec)
        params = {n: self._param(v, dialect) for n, v in window.items()}
        declared: dict[str, pa.DataType] = {}
        try:
            with engine.connect() as conn:
                if postgres:
                    register_loaders(conn)
                    conn.execute(
                        sa.text("SELECT set_config('TimeZone', :tz, false)"), {"tz": str(self.zone)}
                    )
                instants: set[str] = set()
                if mysql:
                    instants, params = self._mysql_window(conn, spec, sql, names, window)
                declared.update(self._declared(conn, spec) if spec.table else {})
                for name in instants:  # read in the session's UTC: instants
                    declared[name] = pa.timestamp("us", tz="UTC")
                try:
                    if spec.audits_cursor:
                        self._audit_cursor(conn, spec)
                    result = conn.execution_options(
                        stream_results=True, yield_per=spec.batch_rows
                    ).execute(sa.text(to_sqlalchemy(sql, dialect)), {k: params[k] for k in names})
                except Exception as error:
                    if postgres:
                        self._ambiguous_cursor(conn, spec, error, params)
                    raise
                columns = list(result.keys())
                if postgres:  # the server's own types: a query's columns, and typmods
                    declared.update(pg_declared(result.cursor.description))
                elif mysql and spec.query:  # a table's are reflected: a query's, as its
                    declared.update(mysql_declared(result.cursor))
                try:
                    distinct_columns(columns, self.where)
                    if dialect == "sqlite" and spec.query:
                        sqlite_distinct_columns(columns, self.where)
                    check_cursor(spec, columns, self.where, dialect)
                except SourceError:
                    result.close()  # a server-side cursor left open warns when collected
                    raise
                schema: pa.Schema | None = None
                try:
                    for rows in result.partitions(spec.batch_rows):
                        arrays = [
                            _sa_array(name, list(col), declared.get(name), dialect)
                            for name, col in zip(columns, zip(*rows, strict=True), strict=True)
                        ]
                        batch = pa.RecordBatch.from_arrays(arrays, names=columns)
                        if schema is None:
                            schema = batch.schema
                        elif batch.schema != schema:
                            batch = batch.cast(schema)
                        yield batch
                finally:
                    # closed here too when the consumer stops early (the generator closed
                    # at a `yield`): a server-side cursor left open warns when collected
                    result.close()
                if schema is None:
                    fields = [pa.field(c, declared.get(c, pa.string())) for c in columns]
                    yield pa.RecordBatch.from_pylist([], schema=pa.schema(fields))
        except SourceError:
            raise
        except ConversionError as error:
            # a SQLite date or timestamp holding other text: the native reader's fix
            fix = (
                sqlite_fixes(spec.table, {error.column: declared[error.column]})
                if (dialect == "sqlite" and error.column in declared)
                else {}
            )
            also = f". {fix[error.column]}" if error.column in fix else ""
            raise SourceError(f"{self.where}: {error}{also}") from None
        except Exception as error:
            raise classify(error, self.where) from None
        finally:
            engine.dispose()

    def _ambiguous_cursor(
        self, conn: Any, spec: ReadSpec, error: Exception, params: dict[str, Any]
    ) -> None:
        """PostgreSQL: a query returning two columns of its cursor's name fails where
        onceflow names the cursor (`column reference "ts" is ambiguous`); its names,
        described from the query alone, are refused as any other query's
        (`distinct_columns`). Any other failure is left as it is."""
        import sqlalchemy as sa

        if not (spec.query and "is ambiguous" in str(error)):
            return
        conn.rollback()  # the failed statement aborted the transaction
        query, names = build_select(ReadSpec(None, spec.query, None, None), '"', "postgresql")
        probe = f"SELECT * FROM ({to_sqlalchemy(query, 'postgresql')}\n) onceflow_q LIMIT 0"
        described = conn.execute(sa.text(probe), {k: params[k] for k in names})
        distinct_columns(list(described.keys()), self.where)

    def _mysql_window(
        self,
        conn: Any,
        spec: ReadSpec,
        sql: str,
        names: list[str],
        window: dict[str, datetime],
    ) -> tuple[set[str], dict[str, Any]]:
        """MySQL/MariaDB as the native reader has it: the session in UTC, so TIMESTAMP
        columns read as instants; the window bound by the cursor's type, a TIMESTAMP as
        the UTC instant and a DATETIME as wall time (bound as wall time, a TIMESTAMP
        window ran hours off, with exit 0). Returns the TIMESTAMP columns and the bound
        values, from a probe that reads no row."""
        import sqlalchemy as sa

        conn.execute(sa.text("SET time_zone = '+00:00'"))
        wall = {n: naive_wall(v, self.zone) for n, v in window.items()}
        probe = f"SELECT * FROM ({to_sqlalchemy(sql, conn.dialect.name)}) onceflow_probe LIMIT 0"
        result = conn.execute(sa.text(probe), {k: wall[k] for k in names})
        description = list(result.cursor.description or ())
        result.close()
        instants = {str(d[0]) for d in description if int(d[1]) == MYSQL_TIMESTAMP}
        cursor_type = MysqlReader._cursor_type(description, spec.cursor)
        if window and spec.cursor and cursor_type is None and spec.query:
            raise cursor_not_returned(self.where, spec, [str(d[0]) for d in description])
        if cursor_type != MYSQL_TIMESTAMP:
            return instants, wall
        return instants, {n: v.astimezone(UTC).replace(tzinfo=None) for n, v in window.items()}

    def _param(self, value: datetime, dialect: str) -> datetime | str:
        if dialect == "postgresql":
            return value
        if dialect == "sqlite":
            return sqlite_bound(value, self.zone, self.where)
        return naive_wall(value, self.zone)

    def _audit_cursor(self, conn: Any, spec: ReadSpec) -> None:
        """Refuse a cursor that is no date or time and count its rows in no window, as
        the dialect's own reader does: PostgreSQL asks the server for the type (a domain
        is judged by its base type) and counts +-infinity, MySQL counts zero dates,
        SQLite refuses a cursor that is no column, then numbers and text that is not an
        ISO 8601 time; elsewhere a table's declared type is judged and NULLs are counted."""
        import sqlalchemy as sa

        dialect = "mysql" if conn.dialect.name == "mariadb" else conn.dialect.name

        def scalars(sql: str) -> list[Any]:
            return list(conn.execute(sa.text(to_sqlalchemy(sql, dialect))).one())

        def column(sql: str) -> list[Any]:
            return list(conn.execute(sa.text(to_sqlalchemy(sql, dialect))).scalars())

        if dialect == "sqlite":
            # SQLite reads a double-quoted name that is no column as its text, so the
            # audit below would judge the text `updatd_at` in every row: refused first
            probe = conn.execute(sa.text(to_sqlalchemy(columns_probe(spec), dialect)))
            names = list(probe.keys())
            probe.close()
            check_cursor(spec, names, self.where, dialect)
        if dialect == "postgresql":
            kinds = column(pg_cursor_types(spec))
            if (refused := pg_not_a_time(kinds)) is not None:
                raise self._not_a_time(spec, refused, text=is_pg_text(kinds))
        elif spec.table:
            table = _reflected(conn, spec.table)
            found = table.columns.get(spec.cursor or "")
            kind = None if found is None else found.type
            text = (sa.String, sa.types.NullType) if dialect == "sqlite" else ()
            if kind is not None and not isinstance(kind, (sa.Date, sa.DateTime, *text)):
                raise self._not_a_time(spec, f"of type {kind}", isinstance(kind, sa.String))
        if dialect == "sqlite":
            self._sqlite_counted(spec, scalars(sqlite_cursor_audit(spec)))
            return
        also, what = NO_WINDOW.get(dialect, ("", "NULL"))
        quote = conn.dialect.identifier_preparer.initial_quote
        self._counted(spec, int(scalars(null_cursor_count(spec, quote, also))[0]), what)

    @staticmethod
    def _declared(conn: Any, spec: ReadSpec) -> dict[str, pa.DataType]:
        import sqlalchemy as sa

        assert spec.table
        table = _reflected(conn, spec.table)
        out: dict[str, pa.DataType] = {}
        for column in table.columns:
            declared = _sa_base(column.type)
            kind = type(declared).__name__.upper()
            if isinstance(declared, sa.Numeric) and not isinstance(declared, sa.Float):
                p, s = declared.precision, declared.scale or 0
                if p is not None:  # a negative scale (PostgreSQL 15) rounds to tens...
                    p, s = (p - s, 0) if s < 0 else (max(p, s), s)
                    out[column.name] = decimal_type(p, s)
                    continue
            if isinstance(declared, sa.DateTime):
                tz = "UTC" if declared.timezone else None
                out[column.name] = pa.timestamp("us", tz=tz)
                continue
            for label, arrow_type in _SA_TYPES:
                if label in kind:
                    if conn.dialect.name == "sqlite":
                        arrow_type = _SA_SQLITE_TYPES.get(label, arrow_type)
                    elif getattr(declared, "unsigned", False):  # MySQL: as the native reader
                        arrow_type = _SA_UNSIGNED.get(label, arrow_type)
                    out[column.name] = arrow_type
                    break
            else:
                if isinstance(declared, sa.String):
                    out[column.name] = pa.string()
        return out
