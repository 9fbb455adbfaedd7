"""One rule for what a file's column types may bring into an existing Delta table.

First, a file's columns of a type Delta has no place for take the Delta type that holds
every value exactly (`delta_type`): the lake keeps the source's richer type, the table
stores this one, whether it is created or appended to.

- decimal with more than 38 digits (decimal256) -> string: the exact decimal text
  (Delta's decimal stops at 38 digits; a double would round);
- time of day (time32/time64) -> string `HH:MM:SS[.fff...]`, the fraction's digits
  those of the unit (PostgreSQL's `24:00:00` included): Delta has no time type, and
  fixed-width text sorts as the times do;
- unsigned integers -> the next wider signed integer, uint64 -> decimal(20,0): Delta's
  integers are signed (delta-rs stored uint8..uint64 as the signed type of the same
  width and failed on every value above its maximum).

Then a column may be written into the table's column when no value can be lost: a
narrower integer of compatible signedness, a narrower float, a decimal whose scale and
integer digits both fit, the same string/binary family, dates into dates, and timestamps
that agree on having a time zone. A new column is added (nullable). Anything else is an
incompatible type change, refused before anything is written.
"""

from __future__ import annotations

import pyarrow as pa

from onceflow.errors import LoadError
from onceflow.warehouse.audit import AUDIT_COLUMNS


def _norm(t: pa.DataType) -> pa.DataType:
    if isinstance(t, pa.BaseExtensionType):  # arrow.json, arrow.uuid: Delta keeps the storage
        t = t.storage_type
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    return t


MAX_DELTA_DECIMAL_DIGITS = 38
_WIDER_SIGNED = {8: pa.int16(), 16: pa.int32(), 32: pa.int64(), 64: pa.decimal128(20, 0)}
_TIME_FRACTION_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}


def delta_type(t: pa.DataType) -> pa.DataType:
    """The type a file column of type `t` is stored as in Delta (module docstring)."""
    if pa.types.is_decimal(t):
        if t.precision > MAX_DELTA_DECIMAL_DIGITS:
            return pa.string()
        return pa.decimal128(t.precision, t.scale)  # a decimal256 that fits
    if pa.types.is_time(t):
        return pa.string()
    if pa.types.is_unsigned_integer(t):
        return _WIDER_SIGNED[t.bit_width]
    return t


def _time_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Times of day as `HH:MM:SS[.fff]` text, computed rather than cast: Arrow's cast
    writes `<value out of range: ...>` for PostgreSQL's `24:00:00`."""
    import pyarrow.compute as pc

    digits = _TIME_FRACTION_DIGITS[column.type.unit]
    per_second = 10**digits
    ticks = column.cast(pa.int32() if pa.types.is_time32(column.type) else pa.int64())
    ticks = ticks.cast(pa.int64())
    seconds = pc.divide(ticks, per_second)  # integer division: a time is never negative

    def padded(values: pa.ChunkedArray, width: int) -> pa.ChunkedArray:
        return pc.utf8_lpad(values.cast(pa.string()), width=width, padding="0")

    hours = pc.divide(seconds, 3600)
    minutes = pc.divide(pc.subtract(seconds, pc.multiply(hours, 3600)), 60)
    secs = pc.subtract(seconds, pc.add(pc.multiply(hours, 3600), pc.multiply(minutes, 60)))
    parts = [padded(hours, 2), padded(minutes, 2), padded(secs, 2)]
    text = pc.binary_join_element_wise(*parts, ":")
    if digits:
        fraction = pc.subtract(ticks, pc.multiply(seconds, per_second))
        text = pc.binary_join_element_wise(text, padded(fraction, digits), ".")
    return text


def _decimal_text(column: pa.ChunkedArray) -> pa.Array:
    """Decimals as plain exact text with every digit of their scale (`0.0000000000`).
    Arrow writes a value below 1e-6 in scientific notation (`0E-10`), as Java's
    BigDecimal.toString does; those few are rewritten in Python."""
    from decimal import Decimal

    import pyarrow.compute as pc

    text = column.cast(pa.string()).combine_chunks()
    scientific = pc.fill_null(pc.match_substring(text, "E"), False)
    if not pc.any(scientific).as_py():
        return text
    plain = [format(Decimal(v), "f") for v in pc.filter(text, scientific).to_pylist()]
    return pc.replace_with_mask(text, scientific, pa.array(plain, pa.string()))


def to_delta_types(batch: pa.Table) -> pa.Table:
    """The batch with each column in its Delta type (`delta_type`), exactly."""
    for index, field in enumerate(batch.schema):
        want = delta_type(field.type)
        if want == field.type:
            continue
        column = batch.column(index)
        if pa.types.is_time(field.type):
            converted: pa.Array | pa.ChunkedArray = _time_text(column)
        elif pa.types.is_decimal(field.type) and want == pa.string():
            converted = _decimal_text(column)
        else:
            converted = column.cast(want)
        batch = batch.set_column(index, field.with_type(want), converted)
    return batch


def _int_fits(src: pa.DataType, dst: pa.DataType) -> bool:
    s_signed, d_signed = pa.types.is_signed_integer(src), pa.types.is_signed_integer(dst)
    if s_signed and not d_signed:
        return False
    if s_signed == d_signed:
        return bool(src.bit_width <= dst.bit_width)
    return bool(src.bit_width < dst.bit_width)  # unsigned into a wider signed


def compatible(src: pa.DataType, dst: pa.DataType) -> bool:
    """Whether a file column of type ``src`` can be written losslessly into ``dst``."""
    src, dst = _norm(src), _norm(dst)
    if src == dst or pa.types.is_null(src):
        return True
    if pa.types.is_integer(src) and pa.types.is_integer(dst):
        return _int_fits(src, dst)
    if pa.types.is_floating(src) and pa.types.is_floating(dst):
        return bool(src.bit_width <= dst.bit_width)
    if pa.types.is_timestamp(src) and pa.types.is_timestamp(dst):
        return (src.tz is None) == (dst.tz is None)
    if pa.types.is_date(src) and pa.types.is_date(dst):
        return True
    if pa.types.is_decimal(src) and pa.types.is_decimal(dst):
        return bool(
            dst.scale >= src.scale and dst.precision - dst.scale >= src.precision - src.scale
        )
    return False


def check_schema(table_schema: pa.Schema | None, file_schema: pa.Schema, path: str) -> list[str]:
    """LoadError naming every column whose type cannot go into the table; returns new columns."""
    if table_schema is None:
        return []
    problems = []
    added = []
    for field in file_schema:
        index = table_schema.get_field_index(field.name)
        if index < 0:
            added.append(field.name)
            continue
        current = table_schema.field(index)
        if not compatible(field.type, current.type):
            problems.append(f"{field.name}: table has {current.type}, file has {field.type}")
    if problems:
        raise LoadError(
            f"{path}: incompatible type change ({'; '.join(problems)}); the table is "
            f"unchanged. {_fix_hint(table_schema)}"
        )
    return added


def _fix_hint(table_schema: pa.Schema) -> str:
    """How to repair the table: a table whose columns are all int64 is most likely the
    one an empty SQLite window created before onceflow typed it by its declarations (the
    driver types columns from values, and with none says int64 for every one)."""
    data = [f for f in table_schema if f.name not in AUDIT_COLUMNS]
    if data and all(pa.types.is_int64(f.type) for f in data):
        return (
            "Every column of the table is int64, as an empty SQLite window used to be "
            "typed: if its first load was one, re-extract the table's empty windows "
            "(`onceflow extract --date DATE --tables TABLE --force-reprocess`), delete "
            "the table's folder and run `onceflow load`, which rebuilds it from the lake"
        )
    return "Migrate the table's column or cast the source column"


def conform_batch(
    batch: pa.Table, target: pa.Schema | None, where: str
) -> tuple[pa.Table, list[str]]:
    """Cast the batch's columns to the table's types; return it and its new columns.

    Columns of a type Delta cannot store first take their Delta type (`to_delta_types`),
    for a new table as for an existing one. An incompatible type change raises LoadError
    (before anything is written); a new column must be nullable. Table columns the batch
    lacks are left to the caller.
    """
    batch = to_delta_types(batch)
    if target is None:
        return batch, []
    check_schema(target, batch.schema, where)
    new: list[str] = []
    arrays, fields = [], []
    for field in batch.schema:
        column = batch.column(field.name)
        index = target.get_field_index(field.name)
        if index < 0:
            new.append(field.name)
            arrays.append(column)
            fields.append(field.with_nullable(True))
            continue
        want = target.field(index).type
        if isinstance(column.type, pa.BaseExtensionType) and not isinstance(
            want, pa.BaseExtensionType
        ):
            column = pa.chunked_array(
                [chunk.storage for chunk in column.chunks], column.type.storage_type
            )
        if column.type != want:
            try:
                column = column.cast(want)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                raise LoadError(
                    f"{where}: column {field.name!r}: cannot convert {field.type} to the "
                    f"table's {want} ({error}); the table is unchanged"
                ) from None
        arrays.append(column)
        fields.append(pa.field(field.name, want, nullable=True))
    return pa.table(arrays, schema=pa.schema(fields)), new
