"""Make Arrow types exact and writable: declared decimal precision/scale, plain storage.

- PostgreSQL `numeric(p,s)` becomes decimal128/256(p,s); unconstrained `numeric` has no
  exact fixed type, so it is kept as its exact decimal text (string).
- Extension types become their storage, except `arrow.uuid` and `arrow.json`, which
  Parquet stores natively with their UUID and JSON logical types (a raw ADBC write keeps
  them too; readers of the lake then know a JSON column from text).
- `month_day_nano_interval` (PostgreSQL `interval`), which Parquet cannot store, becomes
  struct<months: int32, days: int32, nanoseconds: int64> (exact, no per-row Python).
- large_string/large_binary become string/binary.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

Caster = Callable[[pa.RecordBatch], pa.RecordBatch]

INTERVAL_STRUCT = pa.struct(
    [("months", pa.int32()), ("days", pa.int32()), ("nanoseconds", pa.int64())]
)
_KEPT_EXTENSIONS = ("arrow.uuid", "arrow.json")


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


def _is_extension(data_type: pa.DataType) -> bool:
    return isinstance(data_type, pa.BaseExtensionType)


def _plain(data_type: pa.DataType) -> pa.DataType:
    """The type written to Parquet for a reader's type without an override."""
    if _is_extension(data_type):
        if data_type.extension_name in _KEPT_EXTENSIONS:
            return data_type
        data_type = data_type.storage_type
    if pa.types.is_large_binary(data_type):
        return pa.binary()
    if pa.types.is_large_string(data_type):
        return pa.string()
    if pa.types.is_interval(data_type):
        return INTERVAL_STRUCT
    return data_type


def target_schema(schema: pa.Schema, overrides: dict[str, pa.DataType] | None = None) -> pa.Schema:
    """The schema written to Parquet: overrides first, PostgreSQL numerics, plain types."""
    overrides = overrides or {}
    out = []
    for field in schema:
        wanted = overrides.get(field.name) or _pg_numeric(field) or _plain(field.type)
        out.append(pa.field(field.name, wanted, nullable=True))
    return pa.schema(out)


def _interval_struct(column: pa.Array) -> pa.Array:
    """month_day_nano values (int32 months, int32 days, int64 ns, packed) as a struct."""
    import pyarrow.compute as pc  # only here: its import costs ~50 ms of every extraction

    n, offset, data = len(column), column.offset, column.buffers()[1]
    int32s = pa.Array.from_buffers(pa.int32(), 4 * (offset + n), [None, data]).slice(4 * offset)
    int64s = pa.Array.from_buffers(pa.int64(), 2 * (offset + n), [None, data]).slice(2 * offset)
    quads = pa.FixedSizeListArray.from_arrays(int32s, 4)
    pairs = pa.FixedSizeListArray.from_arrays(int64s, 2)
    return pa.StructArray.from_arrays(
        [pc.list_element(quads, 0), pc.list_element(quads, 1), pc.list_element(pairs, 1)],
        fields=list(INTERVAL_STRUCT),
        mask=column.is_null() if column.null_count else None,
    )


def _convert(column: pa.Array, wanted: pa.DataType) -> pa.Array:
    if column.type == wanted:
        return column
    if _is_extension(column.type):
        column = column.storage
        if column.type == wanted:
            return column
    if pa.types.is_interval(column.type) and wanted == INTERVAL_STRUCT:
        return _interval_struct(column)
    if _is_extension(wanted):
        return pa.ExtensionArray.from_storage(wanted, _convert(column, wanted.storage_type))
    return _cast(column, wanted)


def _cast(column: pa.Array, wanted: pa.DataType) -> pa.Array:
    """`column.cast(wanted, safe=True)` without importing pyarrow.compute, which builds a
    Python wrapper for each of its ~300 kernels on import (~35 ms of every extraction,
    for the one kernel a numeric column needs); pyarrow.compute.cast makes this call."""
    try:
        from pyarrow._compute import CastOptions, call_function
    except ImportError:  # pragma: no cover - a pyarrow that moved its internals
        return column.cast(wanted, safe=True)
    return call_function("cast", [column], CastOptions.safe(wanted))  # type: ignore[no-any-return]


def make_caster(source: pa.Schema, target: pa.Schema) -> Caster:
    """A function that casts batches of `source` into `target` (zero-copy where equal)."""

    def cast(batch: pa.RecordBatch) -> pa.RecordBatch:
        columns = [
            _convert(column, field.type)
            for column, field in zip(batch.columns, target, strict=True)
        ]
        return pa.RecordBatch.from_arrays(columns, schema=target)

    return cast
