"""Low-level ADBC statements: a query's result streamed, or its schema described, without
the driver manager's DB-API module (its pyarrow.dataset import costs ~0.3 s).
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa


def _text(value: str) -> pa.Array:
    """A one-value string array, built from buffers: pa.array() and pa.scalar() import
    pandas to check their argument (0.25 s, a third of a small window's extraction)."""
    data = value.encode()
    offsets = struct.pack("<ii", 0, len(data))
    return pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


@contextlib.contextmanager
def adbc_query(
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


def adbc_schema(conn: Any, sql: str) -> pa.Schema:
    """The schema of `sql`'s result, described by the server without running it."""
    import adbc_driver_manager._lib as adbc

    statement = adbc.AdbcStatement(conn)
    try:
        statement.set_sql_query(sql)
        handle = statement.execute_schema()  # kept: freeing it releases the schema
        return pa.Schema._import_from_c(handle.address)
    finally:
        statement.close()
