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
  decimal(19, s), s the session's currency digits (lc_monetary), exactly; a `money[]`
  becomes a list of them.
- `oid` comes as an int32, so an oid above 2^31 - 1 is negative (4294967295 -> -1): it
  becomes the int64 of the same unsigned 32 bits, in an `oid[]` too. `regproc`, which the
  driver also passes as its oid, is read as its text (the function's name), as the other
  reg* types are.
- `month_day_nano_interval` inside a list (`interval[]`) becomes a list of the interval
  struct above, as a column of it does.
- `infinity`/`-infinity` timestamps and dates come as out-of-range int64/int32 values
  (the driver's offset to 1970 wraps around): they are clamped to 9999-12-31
  23:59:59.999999 and 0001-01-01, the range every reader holds, keeping their order.
- A finite timestamp or date outside the years 1..9999 (PostgreSQL holds 4713 BC ..
  294276 AD) is refused, naming the column and a value: Python, Spark and delta-rs fail
  on it later, and the driver wraps a timestamp after ~292277 AD around to ~290279 BC.
- `numeric(p,s)` with a negative scale, or a scale above its precision (PostgreSQL 15),
  becomes the decimal that holds its values; above 76 digits, exact text.
- Unconstrained `numeric` NaN/Infinity come as `nan`/`inf`, in a scalar or in a
  `numeric[]`: they become PostgreSQL's own text, `NaN`/`Infinity`/`-Infinity`.
- Types the driver does not decode (timetz, inet, cidr, macaddr, xml, ranges, geometric
  types, ...) come as their binary wire format: the reader asks the server for their text
  instead (`pg_text_columns`).
- Composite types (and arrays of them) are read as their text too: the driver decodes
  them into structs whose fields bypass every fix here (money as cents, an oid wrapped,
  numeric NaN as `nan`, infinity wrapped, a multi-dimensional array flattened), and a
  field's array dimensions cannot be checked from its decoded value at all.
- A `numeric(p,s)` NaN or ±Infinity has no decimal value: ConversionError names the column.

Anywhere: an integer read as a boolean (MySQL `tinyint(1)`, SQLite `BOOLEAN`) must be 0 or
1; any other value is refused, naming the column (as true it would be changed silently).
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


class _Refusal(Exception):
    """A value the column's type cannot hold exactly; `explain` words it for the column."""

    def explain(self, name: str) -> str:
        """Why column `name` refuses the value, and the fix (each kind words its own)."""
        return f"column {name!r} holds {self.args[0]}, which its type cannot hold exactly"


_PG_TYPE = b"POSTGRESQL:type"
# money is an int64 count of the currency's smallest unit: 19 digits hold every value
PG_MONEY_PRECISION = 19
# What the driver makes of +/-infinity: PostgreSQL's sentinels (INT64/INT32 max and min)
# plus its offset from 2000-01-01 to 1970-01-01, which wraps around; a driver that kept
# the plain sentinels would give those. No finite PostgreSQL value is this far out.
_TS_OFFSET, _DATE_OFFSET = 946_684_800_000_000, 10_957
_I64_MIN, _I64_MAX, _I32_MIN, _I32_MAX = -(2**63), 2**63 - 1, -(2**31), 2**31 - 1
PG_INFINITY = {
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
PG_INFINITY["timestamptz"] = PG_INFINITY["timestamp"]


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


def _composite(data_type: pa.DataType) -> bool:
    """A struct (a PostgreSQL composite or record), or a list of them at any depth."""
    if pa.types.is_struct(data_type):
        return True
    return pa.types.is_list(data_type) and _composite(data_type.value_type)


# passed by the driver as its oid (an int32), where the other reg* types come undecoded
# and so as their text: read as text too, the function's name as PostgreSQL prints it
_PG_TEXT_TYPES = ("regproc", "_regproc")


def pg_text_columns(schema: pa.Schema) -> list[str]:
    """The columns read as the server's text instead of the driver's decoding: the types
    it passes as their binary wire format (timetz, inet, cidr, macaddr, xml, ..., or arrays
    of them), composite types and arrays of them (the struct the driver makes skips every
    check and fix of this module), and regproc."""
    return [
        field.name
        for field in schema
        if _undecoded(field)
        or (pg_type(field) is not None and _composite(field.type))
        or pg_type(field) in _PG_TEXT_TYPES
    ]


def pg_array_columns(schema: pa.Schema) -> list[str]:
    """The columns holding PostgreSQL arrays the driver decodes into lists (int[], ...)."""
    return [
        field.name
        for field in schema
        if (pg_type(field) or "").startswith("_") and pa.types.is_list(field.type)
    ]


def pg_overrides(schema: pa.Schema, money_scale: int) -> dict[str, pa.DataType]:
    """money columns as decimal(19, money_scale), money[] as lists of it: the driver
    gives a count of cents."""
    money = pa.decimal128(PG_MONEY_PRECISION, money_scale)
    out: dict[str, pa.DataType] = {}
    for field in schema:
        if pg_type(field) == "money":
            out[field.name] = money
        elif pg_type(field) == "_money" and pa.types.is_list(field.type):
            out[field.name] = pa.list_(pa.field(field.type.value_field.name, money))
    return out


INTERVAL_STRUCT = pa.struct(
    [("months", pa.int32()), ("days", pa.int32()), ("nanoseconds", pa.int64())]
)
_KEPT_EXTENSIONS = ("arrow.uuid", "arrow.json")


def _pg_oid(field: pa.Field) -> pa.DataType | None:
    """oid (an unsigned 32-bit number the driver gives as int32) as int64, in a list too."""
    kind = pg_type(field)
    if kind == "oid":
        return pa.int64()
    if kind == "_oid" and pa.types.is_list(field.type):
        return pa.list_(pa.field(field.type.value_field.name, pa.int64()))
    return None


def _pg_numeric(field: pa.Field) -> pa.DataType | None:
    meta = field.metadata or {}
    if meta.get(b"POSTGRESQL:type") != b"numeric":
        return None
    return pg_numeric_type(int(meta.get(b"POSTGRESQL:typmod", b"-1")))


def pg_numeric_type(typmod: int) -> pa.DataType:
    """The Arrow type of a PostgreSQL numeric of this typmod (-1: unconstrained)."""
    if typmod < 4:
        return pa.string()  # unconstrained numeric: no exact fixed type exists
    # PostgreSQL 15 stores the scale as 11 signed bits: numeric(5,-2) rounds to hundreds
    # (12300, up to 7 digits), numeric(3,5) holds 0.00123 (5 digits, all decimals)
    precision = ((typmod - 4) >> 16) & 0xFFFF
    scale = (((typmod - 4) & 0x7FF) ^ 0x400) - 0x400
    if scale < 0:
        precision, scale = precision - scale, 0
    precision = max(precision, scale)
    if precision > _DECIMAL_MAX_PRECISION:
        return pa.string()  # no Arrow decimal holds it: exact text, as unconstrained
    return decimal_type(precision, scale)


_DECIMAL_MAX_PRECISION = 76  # decimal256


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
    if pa.types.is_list(data_type) and pa.types.is_interval(data_type.value_type):
        return pa.list_(pa.field(data_type.value_field.name, INTERVAL_STRUCT))  # interval[]
    return data_type


def target_schema(schema: pa.Schema, overrides: dict[str, pa.DataType] | None = None) -> pa.Schema:
    """The schema written to Parquet: overrides first, PostgreSQL numerics and oids, plain
    types."""
    overrides = overrides or {}
    out = []
    for field in schema:
        wanted = (
            overrides.get(field.name) or _pg_numeric(field) or _pg_oid(field) or _plain(field.type)
        )
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


def _list_values(column: pa.Array, wanted: pa.DataType, convert: _Step) -> pa.Array:
    """A list column as the list type `wanted`, its values `convert`ed: its offsets and
    nulls are kept as they are (a sliced list too), only the values are new."""
    validity, offsets = column.buffers()[:2]
    return pa.Array.from_buffers(
        wanted,
        len(column),
        [validity, offsets],
        null_count=column.null_count,
        offset=column.offset,
        children=[convert(column.values)],
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
    if (
        pa.types.is_list(column.type)
        and pa.types.is_interval(column.type.value_type)
        and pa.types.is_list(wanted)
        and wanted.value_type == INTERVAL_STRUCT
    ):
        return _list_values(column, wanted, _interval_struct)
    if pa.types.is_integer(column.type) and pa.types.is_boolean(wanted):
        _zero_or_one(column)  # Arrow's cast makes any non-zero integer true
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
    return call_function("cast", [column], CastOptions.safe(wanted))


def _money(column: pa.Array, wanted: pa.DataType) -> pa.Array:
    """A count of the currency's smallest unit (1234) as the decimal it is (12.34): the
    same 128-bit integer under the wanted scale, zero-copy after the cast."""
    whole = _cast(column, pa.decimal128(wanted.precision, 0))
    return whole.view(wanted)


def _oid(column: pa.Array) -> pa.Array:
    """The driver's int32 oids as the unsigned numbers they are (-1 -> 4294967295), in
    int64: the same 32 bits read unsigned (a view), then widened."""
    return _cast(column.view(pa.uint32()), pa.int64())


def _civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day count from 1970-01-01 in the proleptic Gregorian
    calendar, for any year (datetime stops at 1..9999); year 0 is 1 BC."""
    z = days + 719_468  # http://howardhinnant.github.io/date_algorithms.html#civil_from_days
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, doy - (153 * mp + 2) // 5 + 1


# PostgreSQL's first timestamp (4713-01-01 BC) in microseconds from 1970: a driver value
# below it is a timestamp after ~292277 AD whose offset to 1970 wrapped around int64
_PG_FIRST_TICKS = -210_866_803_200_000_000


def pg_value_text(value: int, kind: str) -> str:
    """A driver's date (days) or timestamp (microseconds) value as PostgreSQL prints it."""
    _int_type, plus, minus, _high, _low = PG_INFINITY[kind]
    if value in plus or value in minus:
        return "infinity" if value in plus else "-infinity"
    days, micros = value, 0
    if kind != "date":
        if value < _PG_FIRST_TICKS:
            value += 2**64
        days, micros = divmod(value, 86_400_000_000)
    year, month, day = _civil(days)
    text = f"{year if year > 0 else 1 - year:04d}-{month:02d}-{day:02d}"
    if kind != "date":
        seconds, fraction = divmod(micros, 1_000_000)
        text += f" {seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        text += f".{fraction:06d}" if fraction else ""
        text += "+00" if kind == "timestamptz" else ""
    return text + (" BC" if year <= 0 else "")


class OutOfRange(_Refusal):
    """A date or timestamp outside the years 1..9999."""

    def __init__(self, value: str, kind: str, in_array: bool) -> None:
        super().__init__(value)
        self.value, self.kind, self.in_array = value, kind, in_array

    def explain(self, name: str) -> str:
        sql = sql_name(name)
        if self.in_array:
            fix = f"`{sql}::text AS {sql}` (the array's exact text)"
        else:
            low, high = ("'0001-01-01'", "'10000-01-01'")
            if self.kind == "timestamptz":
                low, high = ("'0001-01-01 00:00+00'", "'10000-01-01 00:00+00'")
            fix = (
                f"`CASE WHEN {sql} >= {low} AND {sql} < {high} THEN {sql} END AS {sql}`, "
                f"or `{sql}::text AS {sql}` for the exact text"
            )
        kind, where = (f"{self.kind}[]", " in an array") if self.in_array else (self.kind, "")
        return (
            f"column {name!r} ({kind}) holds {self.value}{where}, outside the years "
            "0001..9999 that Python, Spark and Delta readers hold (once loaded, every later "
            "load of the table would fail). Extract the table with a query that filters "
            f"such rows out or maps the value, e.g. {fix}"
        )


def sql_name(name: str) -> str:
    """A column name as it would be written in a query: quoted unless plain lowercase."""
    plain = name.isidentifier() and name.isascii() and name == name.lower()
    return name if plain else '"' + name.replace('"', '""') + '"'


def _finite(column: pa.Array, kind: str) -> pa.Array:
    """PostgreSQL's +/-infinity clamped to 9999-12-31 23:59:59.999999 / 0001-01-01; any
    other value outside those years refused (OutOfRange)."""
    from pyarrow._compute import call_function

    int_type, plus, minus, high, low = PG_INFINITY[kind]
    if column.null_count == len(column):
        return column
    ticks = column.view(int_type)
    bounds = call_function("min_max", [ticks])
    if low <= bounds["min"].as_py() and bounds["max"].as_py() <= high:
        return column  # the common case: one pass and no copy
    from pyarrow._compute import SetLookupOptions

    for sentinels, clamped in ((plus, high), (minus, low)):
        hit = call_function("is_in", [ticks], SetLookupOptions(pa.array(sentinels, int_type)))
        ticks = call_function("if_else", [hit, pa.scalar(clamped, int_type), ticks])
    _in_range(ticks, kind, in_array=False)
    return ticks.view(column.type)


def _in_range(ticks: pa.Array, kind: str, in_array: bool) -> None:
    """Refuse the most distant value outside the years 1..9999, if any (OutOfRange)."""
    from pyarrow._compute import call_function

    _int_type, _plus, _minus, high, low = PG_INFINITY[kind]
    if ticks.null_count == len(ticks):
        return
    bounds = call_function("min_max", [ticks])
    first, last = bounds["min"].as_py(), bounds["max"].as_py()
    if first < low or last > high:
        raise OutOfRange(pg_value_text(first if first < low else last, kind), kind, in_array)


def _finite_elements(column: pa.Array, kind: str) -> pa.Array:
    """An array of dates or timestamps: each element in the years 1..9999, infinity
    included (only a column's own infinity is clamped), else refused (OutOfRange)."""
    int_type = PG_INFINITY[kind][0]
    _in_range(column.flatten().view(int_type), kind, in_array=True)
    return column


class _NotBoolean(_Refusal):
    """An integer read as a boolean that is neither 0 nor 1."""

    def explain(self, name: str) -> str:
        sql = sql_name(name)
        return (
            f"column {name!r} is read as a boolean (MySQL/MariaDB tinyint(1) or BOOLEAN, "
            f"SQLite BOOLEAN) but holds {self.args[0]}, neither 0 nor 1, which true would "
            "change. Extract the table with a query that reads it as an integer, e.g. "
            f"`CAST({sql} AS SIGNED) AS {sql}` (MySQL/MariaDB) or "
            f"`CAST({sql} AS INTEGER) AS {sql}` (SQLite)"
        )


def _zero_or_one(column: pa.Array) -> None:
    """Refuse an integer column read as a boolean unless each value is 0 or 1: one pass."""
    from pyarrow._compute import call_function

    if column.null_count == len(column):
        return
    bounds = call_function("min_max", [column])
    first, last = bounds["min"].as_py(), bounds["max"].as_py()
    if first < 0 or last > 1:
        raise _NotBoolean(first if first < 0 else last)


# What the driver prints for an unconstrained numeric's special values, and PostgreSQL's text
_PG_NUMERIC_SPECIALS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _numeric_text(column: pa.Array) -> pa.Array:
    """numeric text with the driver's `nan`/`inf`/`-inf` as PostgreSQL prints them."""
    from pyarrow._compute import SetLookupOptions, call_function

    if _is_extension(column.type):
        column = column.storage
    specials = pa.array(list(_PG_NUMERIC_SPECIALS), pa.string())
    hit = call_function("is_in", [column], SetLookupOptions(specials))
    if not call_function("any", [hit]).as_py():
        return column
    for driver, text in _PG_NUMERIC_SPECIALS.items():
        same = call_function("equal", [column, pa.scalar(driver, pa.string())])
        column = call_function("if_else", [same, pa.scalar(text, pa.string()), column])
    return column


def _numeric_text_elements(column: pa.Array) -> pa.Array:
    """A numeric[] column with each element's `nan`/`inf`/`-inf` as PostgreSQL prints it."""
    values = _numeric_text(column.values)
    if values is column.values:
        return column
    wanted = pa.list_(pa.field(column.type.value_field.name, values.type))
    return _list_values(column, wanted, lambda _values: values)


def _step(field: pa.Field, wanted: pa.DataType) -> _Step:
    """How one column of `field` becomes `wanted`; ConversionError names it on failure."""
    kind = pg_type(field)
    element = kind[1:] if kind and kind.startswith("_") else None

    def convert(column: pa.Array) -> pa.Array:
        if kind == "money" and pa.types.is_decimal(wanted):
            return _money(column, wanted)
        if kind == "_money" and pa.types.is_list(wanted):
            return _list_values(column, wanted, lambda cents: _money(cents, wanted.value_type))
        if kind == "oid" and wanted == pa.int64():
            return _oid(column)
        if kind == "_oid" and pa.types.is_list(wanted):
            return _list_values(column, wanted, _oid)
        if kind in PG_INFINITY:
            column = _finite(column, kind)
        elif element in PG_INFINITY and pa.types.is_list(column.type):
            column = _finite_elements(column, element)
        elif kind == "numeric" and wanted == pa.string():
            column = _numeric_text(column)
        elif element == "numeric" and pa.types.is_list(column.type):
            column = _numeric_text_elements(column)
        return _convert(column, wanted)

    def step(column: pa.Array) -> pa.Array:
        try:
            return convert(column)
        except _Refusal as refusal:
            raise ConversionError(refusal.explain(field.name), column=field.name) from None
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


def cast_column(name: str, column: pa.Array, wanted: pa.DataType) -> pa.Array:
    """One column of values (no PostgreSQL type) as `wanted`, exactly or ConversionError."""
    return _step(pa.field(name, column.type), wanted)(column)


def make_caster(source: pa.Schema, target: pa.Schema) -> Caster:
    """A function that casts batches of `source` into `target` (zero-copy where equal);
    ConversionError, naming the column, for values its type cannot hold."""
    steps = [_step(field, want.type) for field, want in zip(source, target, strict=True)]

    def cast(batch: pa.RecordBatch) -> pa.RecordBatch:
        columns = [step(column) for step, column in zip(steps, batch.columns, strict=True)]
        return pa.RecordBatch.from_arrays(columns, schema=target)

    return cast
