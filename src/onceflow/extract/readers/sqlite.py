"""The SQLite reader: ADBC's SQLite driver, a window compared with the cursor's text by
date (`sqlite_bound`), declared types applied, unsettled columns read split.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from onceflow.errors import SourceError
from onceflow.extract.classify import classify
from onceflow.extract.readers.base import (
    Reader,
    cast_batches,
    check_cursor,
    classified,
    naive_wall,
    sqlite_distinct_columns,
)
from onceflow.extract.readers.sqlite_split import (
    JoinedColumns,
    split_select,
    sqlite_choice,
    sqlite_classes,
    sqlite_unsettled,
)
from onceflow.extract.readers.sqlite_types import (
    sqlite_affinity,
    sqlite_declared,
    sqlite_fixes,
    sqlite_result_types,
    sqlite_type,
)
from onceflow.extract.sql import (
    ReadSpec,
    bound_values,
    build_select,
    columns_probe,
    sqlite_cursor_audit,
    to_positional,
)


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
    wall = naive_wall(value, zone)
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
        """The rows through ADBC, typed by the declared types; a column whose storage classes
        decide its type is read split and joined back (`sqlite_split`)."""
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
        with classified(self.where, conn.close), conn.cursor() as cur:
            cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(spec.batch_rows)})
            declared = sqlite_declared(path, sql)
            if spec.audits_cursor:
                self._audit_cursor(path, spec, declared)
            positional = to_positional(sql, "qmark", dialect="sqlite")
            layout = self._layout(cur, positional, values, declared, spec)
            read = sql if layout is None else split_select(sql, layout)
            cur.execute(to_positional(read, "qmark", dialect="sqlite"), parameters=values or None)
            reader: Any = cur.fetch_record_batch()
            if layout is not None:
                reader = JoinedColumns(reader, layout, self.where)
            if spec.query:
                sqlite_distinct_columns(reader.schema.names, self.where)
            check_cursor(spec, reader.schema.names, self.where, "sqlite")
            overrides, when_empty = sqlite_result_types(
                declared, reader.schema, table=spec.table is not None
            )
            fixes = sqlite_fixes(spec.table, overrides)
            yield from cast_batches(reader, self.where, overrides, when_empty, fixes)

    def _layout(
        self, cur: Any, sql: str, values: list[str], declared: dict[str, str], spec: ReadSpec
    ) -> list[tuple[str, pa.DataType | None]] | None:
        """How each result column is read: None as the driver reads it, else the type
        its split read gives (a DECIMAL(p,s) as text, for an exact cast). None overall
        when every column is read as it is: the table is then read once."""
        table = spec.table is not None
        unsettled = sqlite_unsettled(declared, table)
        found = sqlite_classes(cur, sql, values, unsettled) if unsettled else []
        chosen = {
            column: sqlite_choice(self.where, column, found[5 * i : 5 * i + 5])
            for i, column in enumerate(unsettled)
        }
        for column, kind in declared.items():
            if table and pa.types.is_decimal(sqlite_type(kind) or pa.null()):
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
        a count of NULLs alone would be: SQLite sources are small). First, a cursor that
        is no column is refused by name: SQLite would read it as text (`check_cursor`)."""
        import sqlite3

        assert spec.cursor
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            names = [d[0] for d in conn.execute(columns_probe(spec)).description]
            check_cursor(spec, names, self.where, "sqlite")
            # SQLite matches names in any letter case (A-Z), as `check_cursor` does
            cursor = spec.cursor.lower()
            kind = next((k for c, k in declared.items() if c.lower() == cursor), "")
            if sqlite_affinity(kind) in (pa.int64(), pa.float64(), pa.binary()):
                raise self._not_a_time(spec, f"declared {kind}")
            row = conn.execute(sqlite_cursor_audit(spec)).fetchone()
        finally:
            conn.close()
        self._sqlite_counted(spec, row)
