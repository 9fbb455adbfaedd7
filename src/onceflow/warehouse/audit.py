"""The audit columns every loaded row carries: which file, when, and in which batch."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from onceflow.config import AUDIT_COLUMN_NAMES

# the names are the config's, which refuses them as the names of configured columns
SOURCE_FILE, LOAD_TIMESTAMP, BATCH_ID = AUDIT_COLUMN_NAMES
AUDIT_FIELDS = (
    pa.field(SOURCE_FILE, pa.string()),
    pa.field(LOAD_TIMESTAMP, pa.timestamp("us", tz="UTC")),
    pa.field(BATCH_ID, pa.string()),
)
AUDIT_COLUMNS = tuple(f.name for f in AUDIT_FIELDS)


def with_audit_columns(
    batch: pa.Table,
    *,
    source_file: str,
    load_time: datetime,
    batch_id: str,
    dictionary: bool = False,
) -> pa.Table:
    """The batch plus `_source_file`, `_load_timestamp` (UTC, us) and `_batch_id`.

    With ``dictionary`` each constant is a one-entry dictionary column: Parquet's
    dictionary encoding then costs nothing, where a million repeated values would each be
    copied and hashed (the Parquet file is the same; only the Arrow layout differs).
    """
    n = batch.num_rows
    batch = batch.drop_columns([f.name for f in AUDIT_FIELDS if f.name in batch.column_names])
    zeros = pa.repeat(pa.scalar(0, pa.int32()), n) if dictionary else None
    for field, value in zip(AUDIT_FIELDS, (source_file, load_time, batch_id), strict=True):
        if zeros is not None:
            column = pa.DictionaryArray.from_arrays(zeros, pa.array([value], field.type))
            batch = batch.append_column(field.name, column)
        else:
            batch = batch.append_column(field, pa.repeat(pa.scalar(value, field.type), n))
    return batch


def audited_schema(schema: pa.Schema) -> pa.Schema:
    """The schema `with_audit_columns` gives a batch of this schema (plain types)."""
    return pa.schema([f for f in schema if f.name not in AUDIT_COLUMNS] + list(AUDIT_FIELDS))
