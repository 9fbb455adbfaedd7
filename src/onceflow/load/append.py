"""append: one file's rows added to the table with audit columns, as one commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa


def with_audit_columns(
    batch: pa.Table, *, source_file: str, load_time: datetime, batch_id: str
) -> pa.Table:
    """The batch plus `_source_file`, `_load_timestamp` (UTC, us) and `_batch_id`."""
    n = batch.num_rows
    for name in ("_source_file", "_load_timestamp", "_batch_id"):
        if name in batch.column_names:
            batch = batch.drop_columns([name])
    return (
        batch.append_column("_source_file", pa.array([source_file] * n, pa.string()))
        .append_column("_load_timestamp", pa.array([load_time] * n, pa.timestamp("us", tz="UTC")))
        .append_column("_batch_id", pa.array([batch_id] * n, pa.string()))
    )


def write(table: Any, batch: pa.Table, *, mode: str, commit_properties: Any) -> None:
    """One Delta write: `table` is a DeltaTable (so a concurrent commit is a conflict) or
    the URI of a table to create. New nullable columns are added (schema_mode=merge)."""
    from deltalake import write_deltalake

    if isinstance(table, str):
        # creating the table: "error" if someone else created it since we looked, so the
        # loader reloads and checks the log instead of appending to an unchecked snapshot
        mode = "error"

    write_deltalake(  # type: ignore[call-overload]
        table,
        batch,
        mode=mode,
        schema_mode="merge",
        commit_properties=commit_properties,
    )


def apply_append(
    table: Any,
    batch: pa.Table,
    *,
    source_file: str,
    load_time: datetime,
    batch_id: str,
    commit_properties: Any,
) -> None:
    """Append one file's rows (with audit columns) as one commit."""
    write(
        table,
        with_audit_columns(batch, source_file=source_file, load_time=load_time, batch_id=batch_id),
        mode="append",
        commit_properties=commit_properties,
    )
