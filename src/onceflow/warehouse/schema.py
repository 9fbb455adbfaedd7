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
- extension types -> never themselves: `arrow.uuid` -> its text as PostgreSQL prints it
  (`a0eebc99-9c0b-...`), `arrow.json` and the driver's `arrow.opaque` numeric text -> their
  text. delta-rs stores an extension's storage type but keeps its name in the column's
  metadata, and Arrow refuses a uuid name on binary: the table's own schema then fails.
- lists, structs and maps -> the same, element by element, at any depth.

Then a column may be written into the table's column when no value can be lost: a
narrower integer of compatible signedness, a narrower float, a decimal whose scale and
integer digits both fit, the same string/binary family, dates into dates, and timestamps
that agree on having a time zone. A new column is added (nullable).

A source column whose type was widened (`ALTER ... TYPE bigint`, `numeric(10,2)` ->
`numeric(14,4)`, `real` -> `double precision`, `date` -> `timestamp`) is no longer
lossless for every value, but it is for the values at hand when each one survives the
cast to the table's type and back: numbers into numbers (integer, float, decimal), and
naive timestamps or dates into dates or naive timestamps. Such a column is cast value by
value (`cast_exact`); a value that does not fit fails the file, naming the column and the
value. With the table's `load.widen` the table takes the wider type instead (`widenings`;
the loader rewrites the table once, in its own commit). Decimals crossing 38 digits
follow the same rule: a decimal goes into a text column (the decimal text of more than 38
digits) as that same exact text, a decimal of more than 38 digits into a table decimal
value by value, and the type holding both, past 38 digits, is the decimal text. Anything
else (another number into text, a time zone gained or lost) is an incompatible type
change, refused before anything is written.
"""

from __future__ import annotations

from typing import TypeAlias

import pyarrow as pa

from onceflow.errors import LoadError
from onceflow.warehouse.audit import AUDIT_COLUMNS


def _norm(t: pa.DataType) -> pa.DataType:
    """The type as the comparison sees it: an extension type as its Delta type, the
    large and view variants as the plain ones, and nested types through their children
    (a list's element name, nullability and metadata do not matter to a value)."""
    if isinstance(t, pa.BaseExtensionType):
        return _norm(delta_type(t))
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if _is_list(t):
        return pa.list_(pa.field("element", _norm(t.value_type)))
    if pa.types.is_map(t):
        return pa.map_(_norm(t.key_type), _norm(t.item_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _norm(f.type)) for f in t])
    return t


def _is_list(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_list_view(t)
        or pa.types.is_large_list_view(t)
        or pa.types.is_fixed_size_list(t)
    )


MAX_DELTA_DECIMAL_DIGITS = 38
_Column: TypeAlias = pa.Array | pa.ChunkedArray
_WIDER_SIGNED = {8: pa.int16(), 16: pa.int32(), 32: pa.int64(), 64: pa.decimal128(20, 0)}
_TIME_FRACTION_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}


UUID_EXTENSION = "arrow.uuid"


def delta_type(t: pa.DataType) -> pa.DataType:
    """The type a file column of type `t` is stored as in Delta (module docstring), through
    lists, structs and maps. A type Delta holds as it is comes back as the same object."""
    if isinstance(t, pa.BaseExtensionType):
        # never the extension itself: delta-rs stores its storage type but keeps the
        # extension's name in the column's metadata, and Arrow then refuses the table's
        # own schema (a uuid tag on Delta's binary)
        if t.extension_name == UUID_EXTENSION:
            return pa.string()
        return delta_type(t.storage_type)  # arrow.json, arrow.opaque (numeric[]): text
    if pa.types.is_decimal(t):
        if t.precision > MAX_DELTA_DECIMAL_DIGITS:
            return pa.string()
        return pa.decimal128(t.precision, t.scale)  # a decimal256 that fits
    if pa.types.is_time(t):
        return pa.string()
    if pa.types.is_unsigned_integer(t):
        return _WIDER_SIGNED[t.bit_width]
    return _nested_delta_type(t)


def _plain_field(name: str, t: pa.DataType) -> pa.Field:
    """A child field of a converted nested type: without the source's metadata (the
    driver's `POSTGRESQL:type`), which would otherwise travel into the Delta schema."""
    return pa.field(name, t, nullable=True)


def _nested_delta_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        element = delta_type(t.value_type)
        if element == t.value_type:
            return t
        if pa.types.is_large_list(t):
            return pa.large_list(_plain_field(t.value_field.name, element))
        return pa.list_(_plain_field(t.value_field.name, element))
    if pa.types.is_map(t):
        key, item = delta_type(t.key_type), delta_type(t.item_type)
        if key == t.key_type and item == t.item_type:
            return t
        return pa.map_(key, _plain_field(t.item_field.name, item))
    if pa.types.is_struct(t):
        children = [delta_type(f.type) for f in t]
        if all(c == f.type for c, f in zip(children, t, strict=True)):
            return t
        return pa.struct([_plain_field(f.name, c) for f, c in zip(t, children, strict=True)])
    return t


def _time_text(column: _Column) -> _Column:
    """Times of day as `HH:MM:SS[.fff]` text, computed rather than cast: Arrow's cast
    writes `<value out of range: ...>` for PostgreSQL's `24:00:00`."""
    import pyarrow.compute as pc

    digits = _TIME_FRACTION_DIGITS[column.type.unit]
    per_second = 10**digits
    ticks = column.cast(pa.int32() if pa.types.is_time32(column.type) else pa.int64())
    ticks = ticks.cast(pa.int64())
    seconds = pc.divide(ticks, per_second)  # integer division: a time is never negative

    def padded(values: _Column, width: int) -> _Column:
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


def _decimal_text(column: _Column) -> pa.Array:
    """Decimals as plain exact text with every digit of their scale (`0.0000000000`).
    Arrow writes a value below 1e-6 in scientific notation (`0E-10`), as Java's
    BigDecimal.toString does; those few are rewritten in Python."""
    from decimal import Decimal

    import pyarrow.compute as pc

    text = column.cast(pa.string())
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    scientific = pc.fill_null(pc.match_substring(text, "E"), False)
    if not pc.any(scientific).as_py():
        return text
    plain = [format(Decimal(v), "f") for v in pc.filter(text, scientific).to_pylist()]
    return pc.replace_with_mask(text, scientific, pa.array(plain, pa.string()))


def _uuid_text(array: pa.Array) -> pa.Array:
    """UUIDs (16 bytes each) as PostgreSQL prints them, `a0eebc99-9c0b-4ef8-bb6d-...`:
    each byte is looked up as its two hex digits, then joined in the 8-4-4-4-12 groups,
    all in Arrow (no Python per value)."""
    import pyarrow.compute as pc

    storage = array.storage if isinstance(array, pa.ExtensionArray) else array
    n = len(storage)
    if n == 0:
        return pa.array([], pa.string())
    data = storage.buffers()[1]
    width = storage.type.byte_width
    raw = pa.Array.from_buffers(pa.uint8(), width * (storage.offset + n), [None, data])
    raw = raw.slice(width * storage.offset, width * n)
    digits = pc.take(pa.array([f"{i:02x}" for i in range(256)], pa.string()), raw)
    rows = pa.FixedSizeListArray.from_arrays(digits, width).cast(pa.list_(pa.string()))
    hex_digits = pc.binary_join(rows, "")
    groups = [
        pc.utf8_slice_codeunits(hex_digits, start, stop)
        for start, stop in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))
    ]
    text = pc.binary_join_element_wise(*groups, "-")
    if storage.null_count:
        text = pc.if_else(storage.is_null(), pa.scalar(None, pa.string()), text)
    return text


def _to_delta_array(array: pa.Array, want: pa.DataType) -> pa.Array:
    """One chunk in its Delta type `want` (`delta_type(array.type)`), nested ones by
    converting their children and keeping their offsets and nulls."""
    if array.type == want:
        return array
    if isinstance(array, pa.ExtensionArray):
        if array.type.extension_name == UUID_EXTENSION:
            return _uuid_text(array)
        return _to_delta_array(array.storage, want)
    if pa.types.is_time(array.type):
        return _time_text(array)
    if pa.types.is_decimal(array.type) and want == pa.string():
        return _decimal_text(array)
    mask = array.is_null() if array.null_count else None
    if pa.types.is_list(want) or pa.types.is_large_list(want):
        offsets, (values,) = _rebased(array.offsets, array.values)
        values = _to_delta_array(values, want.value_type)
        kind = pa.LargeListArray if pa.types.is_large_list(want) else pa.ListArray
        return kind.from_arrays(offsets, values, type=want, mask=mask)
    if pa.types.is_map(want):
        offsets, (keys, items) = _rebased(array.offsets, array.keys, array.items)
        keys = _to_delta_array(keys, want.key_type)
        items = _to_delta_array(items, want.item_type)
        return pa.MapArray.from_arrays(offsets, keys, items, type=want, mask=mask)
    if pa.types.is_struct(want):
        children = [_to_delta_array(array.field(i), f.type) for i, f in enumerate(want)]
        return pa.StructArray.from_arrays(children, fields=list(want), mask=mask)
    return array.cast(want)


def _rebased(offsets: pa.Array, *children: pa.Array) -> tuple[pa.Array, list[pa.Array]]:
    """A (sliced) list's offsets from 0 and the part of its children they reach: Arrow
    builds a list from offsets and a null mask only when the offsets are no slice."""
    import pyarrow.compute as pc

    first, last = offsets[0].as_py(), offsets[len(offsets) - 1].as_py()
    return pc.subtract(offsets, first), [c.slice(first, last - first) for c in children]


def to_delta_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column in its Delta type (`delta_type`), exactly; the same object when Delta
    holds its type as it is."""
    want = delta_type(column.type)
    if want == column.type:
        return column
    return pa.chunked_array([_to_delta_array(chunk, want) for chunk in column.chunks], want)


def to_delta_types(batch: pa.Table) -> pa.Table:
    """The batch with each column in its Delta type (`delta_type`), exactly. A converted
    column's field loses its metadata: an extension type's name in it would make
    delta-rs tag the Delta column with it (module docstring)."""
    for index, field in enumerate(batch.schema):
        column = to_delta_column(batch.column(index))
        if column is batch.column(index) and not _extension_metadata(field):
            continue
        batch = batch.set_column(index, pa.field(field.name, column.type, field.nullable), column)
    return batch


def _extension_metadata(field: pa.Field) -> bool:
    return any(key.startswith(b"ARROW:extension:") for key in field.metadata or {})


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
    # a decimal's exact text: how a table stores decimals of more than 38 digits, so a
    # source column narrowed to 38 or fewer keeps loading into it
    return bool(pa.types.is_decimal(src) and dst == pa.string())


def _numeric(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _calendar(t: pa.DataType) -> bool:
    return bool(pa.types.is_date(t) or (pa.types.is_timestamp(t) and t.tz is None))


def castable_by_value(src: pa.DataType, dst: pa.DataType) -> bool:
    """Whether a file column of type ``src`` that ``compatible`` refuses may still go
    into ``dst`` when each of its values survives the cast (a type widened at the source:
    module docstring). A time zone gained or lost changes what a value means: refused."""
    src, dst = _norm(src), _norm(dst)
    return (_numeric(src) and _numeric(dst)) or (_calendar(src) and _calendar(dst))


# Digits left of the point of a decimal that holds every value of an integer type: the
# Delta protocol's type widening (and Spark's LongDecimal) take 20 for a long.
_INT_DIGITS = {8: 3, 16: 5, 32: 10, 64: 20}


def wider_type(table: pa.DataType, file: pa.DataType) -> pa.DataType | None:
    """The type holding every value of both (the table's column widened for the file's),
    or None when there is none Delta can store exactly (int64 and double)."""
    if compatible(file, table):
        return None  # nothing to widen
    if compatible(table, file):
        return delta_type(file)  # a decimal of more than 38 digits: its exact text
    if pa.types.is_decimal(table) and pa.types.is_decimal(file):
        scale = max(table.scale, file.scale)
        whole = max(table.precision - table.scale, file.precision - file.scale)
        return _decimal_or_text(whole, scale)
    if pa.types.is_integer(table) and pa.types.is_decimal(file):
        whole = max(_INT_DIGITS[table.bit_width], file.precision - file.scale)
        return _decimal_or_text(whole, file.scale)
    if pa.types.is_decimal(table) and pa.types.is_integer(file):
        whole = max(table.precision - table.scale, _INT_DIGITS[file.bit_width])
        return _decimal_or_text(whole, table.scale)
    if pa.types.is_integer(table) and table.bit_width <= 32 and pa.types.is_float64(file):
        return file  # a double holds every int32 exactly (not every int64)
    if pa.types.is_date(table) and pa.types.is_timestamp(file) and file.tz is None:
        return file  # a date is its midnight
    return None


def _decimal_or_text(whole: int, scale: int) -> pa.DataType:
    """The decimal with these digits, or past Delta's 38 its exact text (as `delta_type`
    stores such a decimal): text holds every value of both exactly, only no longer as a
    number."""
    if whole + scale <= MAX_DELTA_DECIMAL_DIGITS:
        return pa.decimal128(whole + scale, scale)
    return pa.string()


def widenings(table_schema: pa.Schema | None, file_schema: pa.Schema) -> dict[str, pa.DataType]:
    """The table's columns that must take a wider type to hold the file's (its Delta
    types, see `to_delta_types`) losslessly: `load.widen` rewrites them."""
    if table_schema is None:
        return {}
    out = {}
    for field in file_schema:
        index = table_schema.get_field_index(field.name)
        if index < 0:
            continue
        table = table_schema.field(index).type
        # after `conform_batch` widened it, a decimal column is already the decimal text
        # the table column must become: it was a decimal, no other text gets this far
        as_text = pa.types.is_decimal(table) and _norm(field.type) == pa.string()
        if not (castable_by_value(field.type, table) or as_text):
            continue
        wider = wider_type(table, field.type)
        if wider is not None:
            out[field.name] = wider
    return out


def _survives(values: pa.Array, want: pa.DataType) -> bool:
    """True when every value of `values` is cast to `want` and back unchanged: a safe
    cast alone rounds a double into a float and truncates a timestamp into a date."""
    import pyarrow.compute as pc

    try:
        back = values.cast(want).cast(values.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False  # a cast Arrow refuses (an overflow, no such cast): it does not fit
    same = pc.equal(values, back)
    if pa.types.is_floating(values.type):  # NaN is not equal to itself, but it fits
        same = pc.or_kleene(same, pc.and_(pc.is_nan(values), pc.is_nan(back)))
    return bool(pc.all(pc.fill_null(same, True)).as_py())


def _first_misfit(column: pa.ChunkedArray, want: pa.DataType) -> object:
    """A value of `column` that `want` cannot hold (the error path only: slices of 4096,
    then one value at a time inside the first slice that fails)."""
    for chunk in column.chunks:
        for start in range(0, len(chunk), 4096):
            part = chunk.slice(start, 4096)
            if _survives(part, want):
                continue
            for i in range(len(part)):
                if not _survives(part.slice(i, 1), want):
                    return part[i].as_py()
    return None


def cast_exact(
    column: pa.ChunkedArray, want: pa.DataType, where: str, name: str, hint: str | None = None
) -> pa.ChunkedArray:
    """`column` cast to the table's narrower type `want`, or LoadError naming the column
    and a value that does not fit, and the fix (`hint`, else `load.widen` or a cast at
    the source)."""
    if all(_survives(chunk, want) for chunk in column.chunks):
        return column.cast(want)
    value = _first_misfit(column, want)
    raise LoadError(
        f"{where}: column {name!r} holds a value the table's {want} cannot hold exactly "
        f"({value!r}; the file has {column.type}); the table is unchanged. "
        f"{hint or _widen_hint(want, column.type)}"
    )


def _widen_hint(table: pa.DataType, file: pa.DataType) -> str:
    wider = wider_type(table, file)
    if wider == pa.string():
        return (
            "Set `load: {widen: true}` for the table to widen the column to its values' "
            f"exact decimal text (Delta's decimal holds at most {MAX_DELTA_DECIMAL_DIGITS} "
            "digits; the table is rewritten once, in one commit), or cast the column in "
            "the table's `query:` to keep its type"
        )
    if wider is not None:
        return (
            "Set `load: {widen: true}` for the table to widen the column to the source's "
            "type (the table is rewritten once, in one commit), or cast the column in the "
            "table's `query:` to keep its type"
        )
    return (
        f"No Delta type holds both {table} and {file} exactly: cast the column in the "
        "table's `query:` (e.g. `SELECT ..., CAST(col AS <type>) AS col FROM ...`), or "
        "load into a new `load.target` after re-extracting the earlier windows"
    )


def check_schema(table_schema: pa.Schema | None, file_schema: pa.Schema, path: str) -> list[str]:
    """LoadError naming every column whose type cannot go into the table; returns new
    columns. A type the table holds only value by value (`castable_by_value`) passes here:
    `conform_batch` checks its values."""
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
        if not compatible(field.type, current.type) and not castable_by_value(
            field.type, current.type
        ):
            problems.append(f"{field.name}: table has {current.type}, file has {field.type}")
    if problems:
        raise LoadError(
            f"{path}: incompatible type change ({'; '.join(problems)}); the table is "
            f"unchanged. {_fix_hint(table_schema)}"
        )
    return added


def _all_int64_hint(table_schema: pa.Schema) -> str | None:
    """A table whose columns are all int64 is most likely the one an empty SQLite window
    created before onceflow typed it by its declarations (the driver types columns from
    values, and with none says int64 for every one): widening it would keep it wrong."""
    data = [f for f in table_schema if f.name not in AUDIT_COLUMNS]
    if data and all(pa.types.is_int64(f.type) for f in data):
        return (
            "Every column of the table is int64, as an empty SQLite window used to be "
            "typed: if its first load was one, re-extract the table's empty windows "
            "(`onceflow extract --date DATE --tables TABLE --force-reprocess`), delete "
            "the table's folder and run `onceflow load`, which rebuilds it from the lake"
        )
    return None


def _fix_hint(table_schema: pa.Schema) -> str:
    """How to repair a table refusing an incompatible type change."""
    if (hint := _all_int64_hint(table_schema)) is not None:
        return hint
    # what exists: a query that casts at the source; or, for a change the table should
    # follow, files that all have the new type and a rebuild from the lake
    return (
        "Keep the table's type with a `query:` that casts the column (`CAST(col AS ...)`), "
        "or re-extract the earlier windows with the new type (`onceflow extract --date "
        "DATE --tables TABLE --force-reprocess`), delete the table's folder and run "
        "`onceflow load` to rebuild it (an overwrite table takes the new type by itself)"
    )


def _checked_type(t: pa.DataType) -> pa.DataType:
    """What the schema rule compares for a file column: its Delta type, but a decimal
    stays one, wider than 38 digits too. Going into a table decimal it is cast value
    by value from its own exact values (its text would not compare back equal:
    Arrow writes `1E-10`); into a text column it becomes its exact text."""
    return t if pa.types.is_decimal(t) else delta_type(t)


def _fit(
    column: pa.ChunkedArray, want: pa.DataType, where: str, name: str, hint: str | None
) -> pa.ChunkedArray:
    """A file column in the table column's type `want`, exactly, or LoadError."""
    if pa.types.is_decimal(column.type) and want == pa.string():
        # the decimal text a column of more than 38 digits is stored as (`delta_type`)
        return pa.chunked_array([_decimal_text(chunk) for chunk in column.chunks], want)
    if not (pa.types.is_decimal(column.type) and _numeric(want)):
        column = to_delta_column(column)
    if column.type == want:
        return column
    if not compatible(column.type, want):
        return cast_exact(column, want, where, name, hint)
    try:
        return column.cast(want)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise LoadError(
            f"{where}: column {name!r}: cannot convert {column.type} to the "
            f"table's {want} ({error}); the table is unchanged"
        ) from None


def conform_batch(
    batch: pa.Table, target: pa.Schema | None, where: str, *, widen: bool = False
) -> tuple[pa.Table, list[str]]:
    """Cast the batch's columns to the table's types; return it and its new columns.

    Columns of a type Delta cannot store first take their Delta type (`to_delta_types`),
    for a new table as for an existing one. An incompatible type change raises LoadError
    (before anything is written); a new column must be nullable. A column of a type the
    table holds only value by value is cast exactly (`cast_exact`), or with ``widen`` kept
    in the type the widened table column will have (`widenings`; the caller widens the
    table before writing). A decimal goes into a text column as its exact text, and a
    decimal of more than 38 digits into a table decimal value by value (`_checked_type`).
    Table columns the batch lacks are left to the caller.
    """
    if target is None:
        return to_delta_types(batch), []
    checked = pa.schema([pa.field(f.name, _checked_type(f.type)) for f in batch.schema])
    check_schema(target, checked, where)
    wider = widenings(target, checked) if widen else {}
    hint = _all_int64_hint(target)
    new: list[str] = []
    arrays, fields = [], []
    for field in batch.schema:
        column = batch.column(field.name)
        index = target.get_field_index(field.name)
        if index < 0:
            new.append(field.name)
            column = to_delta_column(column)
            arrays.append(column)
            fields.append(pa.field(field.name, column.type, nullable=True))
            continue
        want = wider.get(field.name, target.field(index).type)
        arrays.append(_fit(column, want, where, field.name, hint))
        fields.append(pa.field(field.name, want, nullable=True))
    return pa.table(arrays, schema=pa.schema(fields)), new


def widen_column(column: pa.Array, want: pa.DataType) -> pa.Array:
    """A table column in the wider type `widenings` chose: a decimal widened to text
    (no Delta decimal holds both) is written as `to_delta_types` writes wide decimals."""
    if pa.types.is_decimal(column.type) and want == pa.string():
        return _decimal_text(column)
    return column.cast(want)
