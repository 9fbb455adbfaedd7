"""The PostgreSQL reader: ADBC's libpq driver, binary COPY streamed, the window bound into
session settings; columns the driver does not decode (and composites) read as text,
arrays checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from onceflow.errors import SourceError
from onceflow.extract import early
from onceflow.extract.classify import classify
from onceflow.extract.readers.adbc import adbc_query, adbc_schema
from onceflow.extract.readers.base import Reader, cast_batches, classified, distinct_columns
from onceflow.extract.readers.cursors import NO_WINDOW, is_pg_text, pg_not_a_time
from onceflow.extract.sql import (
    SETTING_PREFIX,
    ReadSpec,
    bound_values,
    build_select,
    null_cursor_count,
    pg_cursor_types,
    quote_ident,
    to_session_settings,
)
from onceflow.extract.types import pg_array_columns, pg_overrides, pg_text_columns, sql_name


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
        """The rows through ADBC (binary COPY), the window in session settings; columns the
        driver does not decode are read as text, arrays with their dimensions."""
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
        with classified(self.where, conn.close, database.close):
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
            with adbc_query(conn, "SELECT " + ", ".join(settings), (str(self.zone), *values)) as r:
                money_scale = int(r.read_all().column(len(settings) - 1)[0].as_py())
            try:
                if spec.audits_cursor:
                    self._audit_cursor(conn, spec)
                # the result is described first (not run: a COPY closed unread is drained
                # whole by the next query): columns the driver does not decode are asked
                # for as text, arrays with their dimensions
                described = adbc_schema(conn, to_session_settings(sql))
            except Exception as error:
                self._ambiguous_cursor(conn, spec, error)
                raise
            distinct_columns(described.names, self.where)
            text = pg_text_columns(described)
            arrays = [n for n in pg_array_columns(described) if n not in text]
            if text or arrays:
                sql = _text_select(sql, described.names, text, arrays)
            with adbc_query(conn, to_session_settings(sql)) as reader:
                rows = _OneDimensional(reader, arrays, self.where) if arrays else reader
                yield from cast_batches(rows, self.where, pg_overrides(rows.schema, money_scale))

    def _ambiguous_cursor(self, conn: Any, spec: ReadSpec, error: Exception) -> None:
        """A query returning two columns of its cursor's name fails where onceflow names
        the cursor (`column reference "ts" is ambiguous`): refuse its repeated names as
        any other query's (`distinct_columns`); any other failure is left as it is."""
        if spec.query and "is ambiguous" in str(error):
            query = spec.query.strip().rstrip(";")
            distinct_columns(adbc_schema(conn, to_session_settings(query)).names, self.where)

    def _audit_cursor(self, conn: Any, spec: ReadSpec) -> None:
        """Refuse a cursor that is no date or time (PostgreSQL would fail the window's
        query with `operator does not exist: bigint >= timestamp with time zone`), then
        count its rows in no window: NULL, or +-infinity, which is before or after any."""
        with adbc_query(conn, pg_cursor_types(spec)) as r:
            kinds = [str(kind) for kind in r.read_all().column(0).to_pylist()]
        if (refused := pg_not_a_time(kinds)) is not None:
            raise self._not_a_time(spec, refused, text=is_pg_text(kinds))
        also, what = NO_WINDOW["postgresql"]
        with adbc_query(conn, null_cursor_count(spec, '"', also)) as r:
            self._counted(spec, int(r.read_all().column(0)[0].as_py()), what)
