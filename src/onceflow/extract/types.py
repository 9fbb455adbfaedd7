"""Make Arrow types exact: declared decimal precision/scale, plain storage for extensions."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

Caster = Callable[[pa.RecordBatch], pa.RecordBatch]


def _pg_numeric(field: pa.Field) -> pa.DataType | None:
    meta = field.metadata or {}
    if meta.get(b"POSTGRESQL:type") != b"numeric":
        return None
    typmod = int(meta.get(b"POSTGRESQL:typmod", b"-1"))
    if typmod < 4:
        return pa.string()  # unconstrained numeric: no exact fixed type exists
    precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
    return decimal_type(precision, scale)


def decimal_type(precision: int, scale: int) -> pa.DataType:
    """decimal128 where it fits, else decimal256."""
    return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)


def target_schema(schema: pa.Schema, overrides: dict[str, pa.DataType] | None = None) -> pa.Schema:
    """The schema written to Parquet: overrides first, PostgreSQL numerics, no extensions."""
    overrides = overrides or {}
    out = []
    for field in schema:
        wanted = overrides.get(field.name) or _pg_numeric(field)
        if wanted is None:
            wanted = field.type.storage_type if isinstance(field.type, pa.ExtensionType) else field.type
            if pa.types.is_large_binary(wanted):
                wanted = pa.binary()
            elif pa.types.is_large_string(wanted):
                wanted = pa.string()
        out.append(pa.field(field.name, wanted, nullable=True))
    return pa.schema(out)


def make_caster(source: pa.Schema, target: pa.Schema) -> Caster:
    """A function that casts batches of `source` into `target` (identity when equal)."""
    def cast(batch: pa.RecordBatch) -> pa.RecordBatch:
        columns = []
        for column, field in zip(batch.columns, target, strict=True):
            if isinstance(column.type, pa.ExtensionType):
                column = column.storage
            if column.type != field.type:
                column = column.cast(field.type, safe=True)
            columns.append(column)
        return pa.RecordBatch.from_arrays(columns, schema=target)

    return cast
