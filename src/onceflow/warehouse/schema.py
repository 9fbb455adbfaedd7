"""One rule for what a file's column types may bring into an existing Delta table.

A column may be written into the table's column when no value can be lost: a narrower
integer of compatible signedness, a narrower float, a decimal whose scale and integer
digits both fit, the same string/binary family, dates into dates, and timestamps that
agree on having a time zone. A new column is added (nullable). Anything else is an
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

    An incompatible type change raises LoadError (before anything is written); a new
    column must be nullable. Table columns the batch lacks are left to the caller.
    """
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
