"""Make Arrow types exact and writable: declared decimal precision/scale, plain storage.

- PostgreSQL `numeric(p,s)` becomes decimal128/256(p,s); unconstrained `numeric` has no
  exact fixed type, so it is kept as its exact decimal text (string).
- Extension types become their storage, except `arrow.uuid` and `arrow.json`, which
  Parquet stores natively with their UUID and JSON logical types (a raw ADBC write keeps
  them too; readers of the lake then know a JSON column from text).
- `month_day_nano_interval` (PostgreSQL `interval`), which Parquet cannot store, becomes
  struct<months: int32, days: int32, nanoseconds: int64> (exact, no per-row Python).
- large_string/large_binary become string/binary.

PostgreSQL values the ADBC driver gets wrong are set right here (`pg_*` below):
- `money` comes as an int64 count of cents (`12.34` -> 1234): it becomes
  decimal(19, s), s the session's currency digits (lc_monetary), exactly.
- `infinity`/`-infinity` timestamps and dates come as out-of-range int64/int32 values
  (the driver's offset to 1970 wraps around): they are clamped to 9999-12-31
  23:59:59.999999 and 0001-01-01, the range every reader holds, keeping their order.
- Types the driver does not decode (timetz, inet, cidr, macaddr, xml, ranges, geometric
  types, ...) come as their binary wire format: the reader asks the server for their text
  instead (`pg_text_columns`).
- A `numeric(p,s)` NaN or ±Infinity has no decimal value: ConversionError names the column.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

Caster = Callable[[pa.RecordBatch], pa.RecordBatch]
_Step = Callable[[pa.Array], pa.Array]


class ConversionError(ValueError):
    """A column's values cannot be converted to its type; the message names the column."""

    def __init__(self, message: str, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column


_PG_TYPE = b"POSTGRESQL:type"
# money is an int64 count of the currency's smallest unit: 19 digits hold every value
PG_MONEY_PRECISION = 19
# What the driver makes of +/-infinity: PostgreSQL's sentinels (INT64/INT32 max and min)
# plus its offset from 2000-01-01 to 1970-01-01, which wraps around; a driver that kept
# the plain sentinels would give those. No finite PostgreSQL value is this far out.
_TS_OFFSET, _DATE_OFFSET = 946_684_800_000_000, 10_957
_I64_MIN, _I64_MAX, _I32_MIN, _I32_MAX = -(2**63), 2**63 - 1, -(2**31), 2**31 - 1
_PG_INFINITY = {
    # type: (int type, +infinity values, -infinity values, clamped +inf, clamped -inf)
    "timestamp": (
        pa.int64(),
        (_I64_MAX, _I64_MIN + _TS_OFFSET - 1),
        (_I64_MIN, _I64_MIN + _TS_OFFSET),
        253_402_300_799_999_999,  # 9999-12-31 23:59:59.999999
        -62_135_596_800_000_000,  # 0001-01-01 00:00:00
    ),
    "date": (
        pa.int32(),
        (_I32_MAX, _I32_MIN + _DATE_OFFSET - 1),
        (_I32_MIN, _I32_MIN + _DATE_OFFSET),
        2_932_896,  # 9999-12-31
        -719_162,  # 0001-01-01
    ),
}
_PG_INFINITY["timestamptz"] = _PG_INFINITY["timestamp"]


def pg_type(field: pa.Field) -> str | None:
    """The PostgreSQL type name the ADBC driver gives a result column, if any."""
    name = (field.metadata or {}).get(_PG_TYPE)
    return None if name is None else name.decode()


def _undecoded(field: pa.Field) -> bool:
    storage = field.type.storage_type if _is_extension(field.type) else field.type
    if pa.types.is_binary(storage):
        return pg_type(field) not in (None, "bytea")
    # an array of such values (inet[]) holds them as its elements
    return any(_undecoded(storage.field(i)) for i in range(storage.num_fields))


def pg_text_columns(schema: pa.Schema) -> list[str]:
    """The columns the driver passes as PostgreSQL's binary wire format, not decoded
    (timetz, inet, cidr, macaddr, xml, ..., or arrays of them): the reader reads them as
    the server's text instead."""
    return [field.name for field in schema if _undecoded(field)]


def pg_overrides(schema: pa.Schema, money_scale: int) -> dict[str, pa.DataType]:
    """money columns as decimal(19, money_scale): the driver gives a count of cents."""
    return {
        field.name: pa.decimal128(PG_MONEY_PRECISION, money_scale)
        for field in schema
        if pg_type(field) == "money"
    }


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
    if pa.types.is_integer(column.type) and pa.types.is_decimal(wanted):
        # Arrow refuses int64 -> decimal(12,2) by type (an int64 may need 19 digits), though
        # SQLite hands whole numbers of a DECIMAL(12,2) column over as integers: widen
        # first, then the safe cast checks each value against the wanted precision
        wide = (
            pa.decimal128(38, wanted.scale)
            if wanted.scale <= 19
            else pa.decimal256(76, wanted.scale)
        )
        column = _cast(column, wide)
    elif pa.types.is_floating(column.type) and pa.types.is_decimal(wanted):
        # Arrow's float -> decimal cast rounds to the scale (2.00005 -> 2.0000) and is not
        # correctly rounded; the shortest text that reads back as the same double (0.1,
        # not 0.1000000000000000055...) is the value meant, and text -> decimal refuses
        # any digit the scale would lose
        column = _cast(column, pa.string())
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


def _money(column: pa.Array, wanted: pa.DataType) -> pa.Array:
    """A count of the currency's smallest unit (1234) as the decimal it is (12.34): the
    same 128-bit integer under the wanted scale, zero-copy after the cast."""
    whole = _cast(column, pa.decimal128(wanted.precision, 0))
    return whole.view(wanted)


def _finite(column: pa.Array, kind: str) -> pa.Array:
    """PostgreSQL's +/-infinity clamped to 9999-12-31 23:59:59.999999 / 0001-01-01."""
    from pyarrow._compute import call_function

    int_type, plus, minus, high, low = _PG_INFINITY[kind]
    if column.null_count == len(column):
        return column
    ticks = column.view(int_type)
    bounds = call_function("min_max", [ticks])
    every = (*plus, *minus)
    below, above = max(v for v in every if v < 0), max(every)
    if below < bounds["min"].as_py() and bounds["max"].as_py() < above:
        return column  # no sentinel: the common case, one pass and no copy
    from pyarrow._compute import SetLookupOptions

    for sentinels, clamped in ((plus, high), (minus, low)):
        hit = call_function("is_in", [ticks], SetLookupOptions(pa.array(sentinels, int_type)))
        ticks = call_function("if_else", [hit, pa.scalar(clamped, int_type), ticks])
    return ticks.view(column.type)  # type: ignore[no-any-return]


def _step(field: pa.Field, wanted: pa.DataType) -> _Step:
    """How one column of `field` becomes `wanted`; ConversionError names it on failure."""
    kind = pg_type(field)

    def convert(column: pa.Array) -> pa.Array:
        if kind == "money" and pa.types.is_decimal(wanted):
            return _money(column, wanted)
        if kind in _PG_INFINITY:
            column = _finite(column, kind)
        return _convert(column, wanted)

    def step(column: pa.Array) -> pa.Array:
        try:
            return convert(column)
        except (pa.ArrowInvalid, OverflowError) as error:
            message = _conversion_message(field, kind, wanted, error, column)
            raise ConversionError(message, column=field.name) from None

    return step


def inexact_decimal(name: str, values: pa.Array, wanted: pa.DataType) -> str | None:
    """Why column `name` cannot become the decimal `wanted`, naming its first value that
    the decimal cannot hold exactly (more fractional digits than its scale, more integer
    digits than its precision leaves, no number at all), and the fix; None when every value
    fits. Per value, in Python: only called once a cast has failed."""
    from decimal import Decimal, InvalidOperation

    text = values if pa.types.is_string(values.type) else _cast(values, pa.string())
    declared = f"DECIMAL({wanted.precision},{wanted.scale})"
    whole_digits = wanted.precision - wanted.scale
    for value in text.to_pylist():
        if value is None:
            continue
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite():
            return (
                f"column {name!r} holds {value!r}, which is no number its {declared} can "
                "hold. Extract the table with a `query:` that maps such values (e.g. CASE "
                f"WHEN typeof({name}) = 'text' THEN NULL ELSE {name} END), or declare the "
                "column TEXT"
            )
        exponent = number.normalize().as_tuple().exponent
        assert isinstance(exponent, int)  # finite
        if -exponent > wanted.scale:
            return (
                f"column {name!r} holds {value}, which has more decimal places than its "
                f"{declared} holds, and onceflow does not round (SQLite does not enforce a "
                "declared scale). Declare the column with a larger scale, or REAL, or "
                "extract the table with a `query:` that rounds it on purpose, e.g. "
                f"round({name}, {wanted.scale})"
            )
        if number and number.adjusted() >= whole_digits:
            return (
                f"column {name!r} holds {value}, which has more integer digits than its "
                f"{declared} holds (SQLite does not enforce a declared precision). Declare "
                "the column with a larger precision, or REAL"
            )
    return None


def _conversion_message(
    field: pa.Field,
    kind: str | None,
    wanted: pa.DataType,
    error: Exception,
    column: pa.Array | None = None,
) -> str:
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    message = f"column {field.name!r}: cannot convert its values to {wanted} ({detail})"
    if (
        column is not None
        and pa.types.is_decimal(wanted)
        and (pa.types.is_floating(column.type) or pa.types.is_string(column.type))
        and (why := inexact_decimal(field.name, column, wanted)) is not None
    ):
        message = why
    if kind == "numeric" and any(word in detail.lower() for word in ("nan", "inf")):
        message = (
            f"column {field.name!r} (numeric with a precision) holds NaN or Infinity, which "
            f"no decimal can hold ({detail}). Extract the table with a query that maps them, "
            f"e.g. `NULLIF({field.name}, 'NaN')`, or declare the column `numeric` without a "
            "precision (read as exact text) or `double precision`"
        )
    return message


def make_caster(source: pa.Schema, target: pa.Schema) -> Caster:
    """A function that casts batches of `source` into `target` (zero-copy where equal);
    ConversionError, naming the column, for values its type cannot hold."""
    steps = [_step(field, want.type) for field, want in zip(source, target, strict=True)]

    def cast(batch: pa.RecordBatch) -> pa.RecordBatch:
        columns = [step(column) for step, column in zip(steps, batch.columns, strict=True)]
        return pa.RecordBatch.from_arrays(columns, schema=target)

    return cast
