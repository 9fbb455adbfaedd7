"""The MySQL/MariaDB reader: a pymysql preflight (fast credential and schema errors,
declared types, the cursor's audit), then ConnectorX streams Arrow batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from onceflow.errors import SourceError, is_panic
from onceflow.extract.classify import classify
from onceflow.extract.readers.base import Reader, cast_batches, classified, naive_wall, same_name
from onceflow.extract.readers.cursors import NO_WINDOW
from onceflow.extract.sql import (
    ReadSpec,
    bound_values,
    build_select,
    has_markers,
    null_cursor_count,
    quote_ident,
    to_positional,
)
from onceflow.extract.types import decimal_type

# pymysql field type codes
MYSQL_DECIMAL = {0, 246}
_MYSQL_TINY = 1
MYSQL_TIMESTAMP = 7
_MYSQL_DATES = {7, 10, 12, 14}  # TIMESTAMP, DATE, DATETIME, NEWDATE
_MYSQL_TIME = 11
MYSQL_JSON = 245
_MYSQL_GEOMETRY = 255
MYSQL_UNSIGNED_FLAG = 32
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
# of those, the ones that may hold a time written out (or epoch digits) as text
_MYSQL_TEXTS = {15, 249, 250, 251, 252, 253, 254}
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
    can hold. `wkb`: a spatial value as standard Well-Known Binary (what GeoParquet, Spark
    and DuckDB's spatial extension read; ConnectorX panics on the server's own format).
    """
    name = quote_ident(column, "`")
    if kind == "text":
        return f"CAST(q.{name} AS CHAR) AS {name}"
    if kind == "wkb":
        return f"ST_AsBinary(q.{name}) AS {name}"
    assert kind == "date"
    return (
        f"CASE WHEN YEAR(q.{name}) > 0 AND MONTH(q.{name}) > 0 AND DAYOFMONTH(q.{name}) > 0 AND "
        f"DAYOFMONTH(q.{name}) <= DAYOFMONTH(LAST_DAY(q.{name})) THEN q.{name} END AS {name}"
    )


def cursor_not_returned(where: str, spec: ReadSpec, columns: list[str]) -> SourceError:
    """A query placing the window's markers itself whose `cursor` it does not return:
    the markers' type is unknown. Bound as wall time, a TIMESTAMP column (compared
    in the session's UTC) would be windowed hours off, with no error."""
    return SourceError(
        f"{where}: the query places :window_start/:window_end itself but does not "
        f"return its cursor column {spec.cursor!r} (it returns {', '.join(columns[:8])}"
        f"{', ...' if len(columns) > 8 else ''}). On MySQL/MariaDB the window is bound "
        "by the cursor's type (a TIMESTAMP as the UTC instant, a DATETIME as wall time), "
        f"so return it from the query, e.g. `select ..., {spec.cursor} from ...`, under "
        "the name `cursor:` gives"
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
        """The rows through ConnectorX, after a pymysql probe (`LIMIT 0`) for the declared
        types and the cursor's type, which decides how the window is bound."""
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
        with classified(self.where, conn.close), conn.cursor() as cur:
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
                # a `mode: full` query with markers has no cursor: its markers are wall
                # time, right for the DATETIME columns they are meant for
                if marked and window and spec.cursor and cursor_type is None:
                    raise cursor_not_returned(self.where, spec, [d[0] for d in description])
            values = [self._bind(v, cursor_type) for v in bound_values(names, window)]
            overrides, reads = self._overrides(description, fields)
            columns = [d[0] for d in description]
            if spec.audits_cursor:  # after the probe's description is read
                self._audit_cursor(cur, spec, cursor_type)
            final = cur.mogrify(
                to_positional(self._select(sql, columns, reads), "format", dialect="mysql"),
                values,
            )
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
            yield from cast_batches(reader, self.where, overrides)
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
        same = same_name("mysql")
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
            raise self._not_a_time(spec, f"of type {kind}", text=cursor_type in _MYSQL_TEXTS)
        also, what = NO_WINDOW["mysql"]
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
        if cursor_type == MYSQL_TIMESTAMP:
            return value.astimezone(UTC).replace(tzinfo=None)
        return naive_wall(value, self.zone)

    @staticmethod
    def _decimal_precision(length: int, scale: int, flags: int | None) -> int:
        """DECIMAL(p,s) from its column length, which counts the sign and the point."""
        unsigned = flags is not None and bool(flags & MYSQL_UNSIGNED_FLAG)
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
            if code in MYSQL_DECIMAL and length is not None:
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
                if code == MYSQL_TIMESTAMP:
                    overrides[name] = pa.timestamp("us", tz="UTC")
            elif code == MYSQL_JSON:
                overrides[name] = pa.json_(pa.string())
            elif code == _MYSQL_GEOMETRY:
                overrides[name] = pa.binary()
                reads[name] = "wkb"
        return overrides, reads
