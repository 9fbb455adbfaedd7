"""DuckDB helpers: one in-process database, private cursors, and SQL text builders."""

from __future__ import annotations

import contextlib
import datetime
import decimal
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from onceflow.locations import local_root

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

# Parquet writers leave NaN out of a float column's min/max (the format says so), and
# DuckDB takes min/max for every value unless told otherwise: `x > 90` skipped a row group
# of [NaN, 5.0] whole, and its NaN row with it (a custom query passed, the quarantine
# missed rows, an appended NaN duplicate went unseen). With it, DuckDB still prunes where
# NaN cannot match (`x < 5`, `x = 5`). duckdb/duckdb#16962, #25521.
NAN_SAFE = ", can_have_nan = true"

_database: duckdb.DuckDBPyConnection | None = None
_database_lock = threading.Lock()


@contextlib.contextmanager
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    """A private DuckDB connection (its own views and temp tables) with UTC as time zone.

    A cursor of one in-process database: a new database costs 25-45 ms per load here, a
    cursor under 1 ms. Closing it drops its temp tables.
    """
    global _database
    with _database_lock:  # creating cursors is not thread-safe
        if _database is None:
            _database = _connect()
        con = _database.cursor()
    try:
        con.execute("SET TimeZone = 'UTC'")
        yield con
    finally:
        con.close()


def prepare() -> None:
    """Start creating the in-process database on a thread, if there is none yet.

    `duckdb.connect()` takes ~20 ms with the GIL released: started before the caller's
    own Python work (compiling rules), it is ready when the first `duck()` wants it. A
    failure here is left for that `duck()`, which connects itself and raises.
    """
    if _database is None:
        threading.Thread(target=_create, name="onceflow-duckdb", daemon=True).start()


def _create() -> None:
    global _database
    with _database_lock:
        if _database is None:
            with contextlib.suppress(Exception):
                _database = _connect()


def _connect() -> duckdb.DuckDBPyConnection:
    """The in-process database; a rule's own `read_parquet` is NaN-safe too where DuckDB
    has the setting (2.0 on; onceflow's own scans say `can_have_nan`, from 1.3)."""
    import duckdb

    database = duckdb.connect()
    with contextlib.suppress(duckdb.Error):
        database.execute("SET GLOBAL parquet_can_have_nan = true")
    return database


def q(name: str) -> str:
    """A column name quoted for DuckDB (double quotes)."""
    return '"' + name.replace('"', '""') + '"'


def row_ids(n: int) -> pa.Array:
    """0, 1, ..., n-1 as int64 (vectorized; no Python loop)."""
    # imported here: a validation reads through DuckDB alone and need not load Arrow
    import pyarrow as pa
    import pyarrow.compute as pc

    if n == 0:
        return pa.array([], pa.int64())
    return pc.indices_nonzero(pa.repeat(pa.scalar(True), n)).cast(pa.int64())


def scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    """The first value of the first row of `sql`, or None."""
    rows = con.execute(f"SELECT * FROM ({sql}) LIMIT 1").fetchall()
    return rows[0][0] if rows else None


def null_safe_equal(left: Sequence[str], right: Sequence[str]) -> str:
    """SQL: every left column IS NOT DISTINCT FROM its right column (TRUE if none)."""
    parts = [f"{a} IS NOT DISTINCT FROM {b}" for a, b in zip(left, right, strict=True)]
    return " AND ".join(parts) or "TRUE"


def describe_key(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """The first row of `sql` as `v1, v2` (an example key for an error message): text
    quoted, times and dates in ISO 8601, numbers as written."""
    rows = con.execute(f"SELECT * FROM ({sql}) LIMIT 1").fetchall()
    return ", ".join(_shown(v) for v in rows[0]) if rows else "?"


def _shown(value: Any) -> str:
    # a user reads this, not Python: repr() gave datetime.datetime(2025, 2, 1, 8, 0,
    # tzinfo=zoneinfo.ZoneInfo(key='UTC')) and Decimal('1.50')
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return repr(value)


def parquet_scan(dt: Any) -> str | None:
    """A DuckDB table expression reading the snapshot's Parquet files directly, or None
    when only a Delta reader gives the right rows.

    DuckDB streams the files into a query ~1.5x faster than reading them into Arrow
    first, but it sees plain Parquet: that is the table only when it is local, has no
    partition columns (their values are not in the files), needs reader version 1 (no
    column mapping, no deletion vectors) and no path looks like a glob. Columns added
    later are NULL in older files (``union_by_name``); folders are never partitions.
    """
    if local_root(str(dt.table_uri)) is None:
        return None
    if dt.protocol().min_reader_version != 1 or dt.metadata().partition_columns:
        return None
    # delta-rs lists local files percent-encoded, with or without file://
    paths = [unquote(uri.removeprefix("file://")) for uri in dt.file_uris()]
    if not paths or any(char in path for path in paths for char in "*?[{"):
        return None  # DuckDB would take those characters for a glob
    listed = ", ".join("'" + path.replace("'", "''") + "'" for path in paths)
    return f"read_parquet([{listed}], hive_partitioning = false, union_by_name = true{NAN_SAFE})"
