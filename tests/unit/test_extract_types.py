"""What the PostgreSQL driver gets wrong, set right from the Arrow it returns."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from onceflow.extract.types import (
    INTERVAL_STRUCT,
    ConversionError,
    make_caster,
    pg_overrides,
    pg_text_columns,
    target_schema,
)


def _pg(name: str, arrow: pa.DataType, kind: str, **meta: str) -> pa.Field:
    return pa.field(name, arrow, metadata={"POSTGRESQL:type": kind, **meta})


def _cast(fields: list[pa.Field], arrays: list[pa.Array], overrides=None) -> pa.RecordBatch:
    source = pa.schema(fields)
    batch = pa.RecordBatch.from_arrays(arrays, schema=source)
    return make_caster(source, target_schema(source, overrides))(batch)


def test_columns_the_driver_does_not_decode_are_found_for_a_text_read():
    opaque = pa.field("x", pa.binary(), metadata={"POSTGRESQL:type": "inet"})
    schema = pa.schema(
        [
            opaque,
            _pg("raw", pa.binary(), "bytea"),
            _pg("n", pa.int32(), "int4"),
            pa.field("ips", pa.list_(opaque)),
            pa.field("blobs", pa.list_(_pg("item", pa.binary(), "bytea"))),
            pa.field("plain", pa.binary()),  # not from PostgreSQL: left alone
        ]
    )
    assert pg_text_columns(schema) == ["x", "ips"]


def test_money_counts_of_cents_become_decimals_with_the_currencys_scale():
    field = _pg("m", pa.int64(), "money")
    overrides = pg_overrides(pa.schema([field, _pg("n", pa.int64(), "int8")]), money_scale=2)
    assert overrides == {"m": pa.decimal128(19, 2)}
    cents = pa.array([1234, -(2**63), 2**63 - 1, 0, None], pa.int64())
    got = _cast([field], [cents], overrides).column(0).to_pylist()
    assert got == [
        Decimal("12.34"),
        Decimal("-92233720368547758.08"),
        Decimal("92233720368547758.07"),
        Decimal("0.00"),
        None,
    ]


def test_money_arrays_become_lists_of_the_same_decimals():
    field = _pg("ms", pa.list_(_pg("item", pa.int64(), "money")), "_money")
    overrides = pg_overrides(pa.schema([field]), money_scale=2)
    assert overrides["ms"].value_type == pa.decimal128(19, 2)
    cents = pa.array([[0], [1234, -1, None], None, [], [2**63 - 1]], field.type)
    got = _cast([field], [cents.slice(1)], overrides).column(0)  # a slice keeps its rows
    assert got.to_pylist() == [
        [Decimal("12.34"), Decimal("-0.01"), None],
        None,
        [],
        [Decimal("92233720368547758.07")],
    ]


def test_oids_are_the_unsigned_numbers_the_driver_gave_as_int32():
    oid = _pg("o", pa.int32(), "oid")
    oids = _pg("os", pa.list_(_pg("item", pa.int32(), "oid")), "_oid")
    schema = target_schema(pa.schema([oid, oids]))
    assert schema.field("o").type == pa.int64()
    assert schema.field("os").type.value_type == pa.int64()
    got = _cast(
        [oid, oids],
        [
            pa.array([-1, -(2**31), 7, None], pa.int32()),
            pa.array([[-1, 1], None, [], [None]], pa.list_(pa.int32())),
        ],
    )
    assert got.column(0).to_pylist() == [4294967295, 2147483648, 7, None]
    assert got.column(1).to_pylist() == [[4294967295, 1], None, [], [None]]


def test_interval_arrays_become_lists_of_the_interval_struct():
    field = _pg("spans", pa.list_(pa.month_day_nano_interval()), "_interval")
    assert target_schema(pa.schema([field])).field("spans").type.value_type == INTERVAL_STRUCT
    values = [[(1, 2, 3), None], None, [], [(-1, 0, -1000)]]
    spans = pa.array(values, field.type).slice(1)
    got = _cast([field], [spans]).column(0).to_pylist()
    assert got == [None, [], [{"months": -1, "days": 0, "nanoseconds": -1000}]]


def test_composites_and_regproc_are_read_as_text():
    item = pa.struct([("label", pa.string()), ("amount", pa.int64())])
    schema = pa.schema(
        [
            _pg("it", item, "item"),
            _pg("its", pa.list_(item), "_item"),
            _pg("r", pa.struct([("oid", pa.int32())]), "record"),
            _pg("fn", pa.int32(), "regproc"),
            _pg("fns", pa.list_(pa.int32()), "_regproc"),
            _pg("n", pa.int32(), "int4"),
            _pg("ns", pa.list_(pa.int32()), "_int4"),
            pa.field("plain", item),  # not from PostgreSQL: left alone
        ]
    )
    assert pg_text_columns(schema) == ["it", "its", "r", "fn", "fns"]


# what the driver returns for +/-infinity: the sentinel plus the 2000 -> 1970 offset, wrapped
TS_PLUS, TS_MINUS = -9222425352054775809, -9222425352054775808
DATE_PLUS, DATE_MINUS = -2147472692, -2147472691


@pytest.mark.parametrize("kind", ["timestamp", "timestamptz"])
def test_infinite_timestamps_are_clamped_to_the_range_readers_hold(kind):
    tz = "UTC" if kind == "timestamptz" else None
    noon = 1_737_633_600_000_000  # 2025-01-23 12:00 UTC
    ticks = pa.array([TS_PLUS, TS_MINUS, noon, None, 2**63 - 1, -(2**63)], pa.int64())
    field = _pg("t", pa.timestamp("us", tz=tz), kind)
    got = _cast([field], [ticks.view(field.type)]).column(0).to_pylist()
    last, first = datetime(9999, 12, 31, 23, 59, 59, 999999), datetime(1, 1, 1)
    if tz:
        last, first = last.replace(tzinfo=UTC), first.replace(tzinfo=UTC)
    noon_at = datetime(2025, 1, 23, 12, tzinfo=UTC if tz else None)
    assert got == [last, first, noon_at, None, last, first]


def test_infinite_dates_are_clamped_and_finite_ones_untouched():
    field = _pg("d", pa.date32(), "date")
    days = pa.array([DATE_PLUS, DATE_MINUS, 20_111, None], pa.int32()).view(pa.date32())
    got = _cast([field], [days]).column(0).to_pylist()
    assert got == [date(9999, 12, 31), date(1, 1, 1), date(2025, 1, 23), None]
    finite = pa.array([20_111, None], pa.int32()).view(pa.date32())
    same = _cast([field], [finite]).column(0)
    assert same.buffers()[1].address == finite.buffers()[1].address  # no copy


def test_a_numeric_nan_names_its_column_and_the_fix():
    field = _pg("score", pa.string(), "numeric", **{"POSTGRESQL:typmod": str((10 << 16) + 2 + 4)})
    with pytest.raises(ConversionError) as caught:
        _cast([field], [pa.array(["1.50", "nan", None])])
    message = str(caught.value)
    assert message.startswith("column 'score' (numeric with a precision) holds NaN or Infinity")
    assert "NULLIF(score, 'NaN')" in message and "\n" not in message


def test_any_other_value_that_does_not_convert_names_its_column():
    field = pa.field("amount", pa.string())
    source = pa.schema([field])
    caster = make_caster(source, pa.schema([pa.field("amount", pa.decimal128(5, 2))]))
    with pytest.raises(ConversionError, match=r"^column 'amount' holds 123456.78, which has"):
        caster(pa.RecordBatch.from_arrays([pa.array(["123456.78"])], schema=source))


def _typmod(precision: int, scale: int) -> str:
    """PostgreSQL 15's numeric typmod: the scale in 11 signed bits, plus VARHDRSZ."""
    return str(((precision << 16) | (scale & 0x7FF)) + 4)


@pytest.mark.parametrize(
    ("precision", "scale", "wanted"),
    [
        (10, 2, pa.decimal128(10, 2)),
        (5, -2, pa.decimal128(7, 0)),  # 9999900 at most
        (3, 5, pa.decimal128(5, 5)),  # 0.00999 at most
        (38, -1, pa.decimal256(39, 0)),
        (1000, 2, pa.string()),  # no Arrow decimal holds 1000 digits: exact text
    ],
)
def test_numeric_typmods_become_the_decimal_that_holds_every_value(precision, scale, wanted):
    field = _pg("n", pa.string(), "numeric", **{"POSTGRESQL:typmod": _typmod(precision, scale)})
    assert target_schema(pa.schema([field])).field("n").type == wanted


def test_unconstrained_numeric_special_values_are_the_servers_text():
    field = _pg("n", pa.string(), "numeric", **{"POSTGRESQL:typmod": "-1"})
    got = _cast([field], [pa.array(["nan", "inf", "-inf", "1.5", None])]).column(0)
    assert got.to_pylist() == ["NaN", "Infinity", "-Infinity", "1.5", None]


# microseconds (days) from 1970 of values PostgreSQL holds and no reader of the lake does
YEAR_10000 = 253_402_300_800_000_000
BC_1 = -62_167_219_200_000_000  # 0001-01-01 BC (year 0)
WRAPPED_MAX = -9_222_426_057_709_551_617  # 294276-12-31 23:59:59.999999, wrapped by the driver


@pytest.mark.parametrize(
    ("kind", "value", "shown"),
    [
        ("timestamp", YEAR_10000, "10000-01-01 00:00:00"),
        ("timestamp", BC_1, "0001-01-01 00:00:00 BC"),
        ("timestamp", BC_1 - 1, "0002-12-31 23:59:59.999999 BC"),
        ("timestamptz", WRAPPED_MAX, "294276-12-31 23:59:59.999999+00"),
        ("date", 2_932_897, "10000-01-01"),
        ("date", -735_160, "0044-03-15 BC"),
    ],
)
def test_dates_and_timestamps_beyond_years_1_to_9999_are_refused_as_the_server_prints_them(
    kind, value, shown
):
    arrow = pa.date32() if kind == "date" else pa.timestamp("us", "UTC" if "tz" in kind else None)
    raw = pa.array([0, value, None], pa.int32() if kind == "date" else pa.int64())
    field = _pg("when", arrow, kind)
    with pytest.raises(ConversionError) as caught:
        _cast([field], [raw.view(arrow)])
    message = str(caught.value)
    assert message.startswith(f"column 'when' ({kind}) holds {shown}, outside the years 0001")
    assert "CASE WHEN" in message and "\n" not in message


def test_the_last_values_readers_hold_pass_without_a_copy():
    field = _pg("t", pa.timestamp("us"), "timestamp")
    edges = pa.array([-62_135_596_800_000_000, YEAR_10000 - 1], pa.int64()).view(field.type)
    got = _cast([field], [edges]).column(0)
    assert got.to_pylist() == [datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999)]
    assert got.buffers()[1].address == edges.buffers()[1].address


def test_an_infinite_date_in_an_array_is_refused():
    field = _pg("days", pa.list_(pa.date32()), "_date")
    days = pa.array([[20_111], [20_111, DATE_PLUS], None], pa.list_(pa.int32()))
    with pytest.raises(ConversionError, match=r"^column 'days' \(date\[\]\) holds infinity in"):
        _cast([field], [days.cast(pa.list_(pa.date32()))])
    fine = pa.array([[20_111], None], pa.list_(pa.date32()))
    assert _cast([field], [fine]).column(0).to_pylist() == [[date(2025, 1, 23)], None]


@pytest.mark.parametrize(
    ("values", "shown"), [([0, 1, 5], 5), ([1, -1, None], -1), ([200, 0], 200)]
)
def test_an_integer_read_as_a_boolean_must_be_0_or_1(values, shown):
    field = pa.field("flag", pa.uint8() if shown == 200 else pa.int8())
    with pytest.raises(ConversionError) as caught:
        _cast([field], [pa.array(values, field.type)], {"flag": pa.bool_()})
    assert str(caught.value).startswith(
        f"column 'flag' is read as a boolean (MySQL/MariaDB tinyint(1) or BOOLEAN, SQLite "
        f"BOOLEAN) but holds {shown}, neither 0 nor 1"
    )
    ok = _cast([field], [pa.array([1, 0, None], field.type)], {"flag": pa.bool_()})
    assert ok.column(0).to_pylist() == [True, False, None]


def test_a_mysql_query_through_sqlalchemy_is_typed_by_its_field_flags():
    """PyMySQL's field packets carry the UNSIGNED flag (32) and the charset (63: binary);
    a driver without them gets only the types the description decides, its integers
    left to their values (an unsigned one declared int64 would overflow)."""
    from types import SimpleNamespace

    from onceflow.extract.readers.sa_mysql import mysql_declared

    description = [
        ("b", 8, None, 20, 20, 0, True),
        ("n", 246, None, 13, 13, 3, True),
        ("v", 253, None, 4, 4, 0, True),
        ("d", 10, None, 10, 10, 0, True),
    ]
    fields = [
        SimpleNamespace(flags=f, charsetnr=c) for f, c in [(32, 63), (32, 63), (128, 63), (128, 63)]
    ]
    pymysql = SimpleNamespace(description=description, _result=SimpleNamespace(fields=fields))
    assert mysql_declared(pymysql) == {
        "b": pa.uint64(),
        "n": pa.decimal128(12, 3),
        "v": pa.binary(),
        "d": pa.date32(),
    }
    assert mysql_declared(SimpleNamespace(description=description)) == {"d": pa.date32()}


def test_an_integer_past_int64_through_sqlalchemy_fails_naming_its_column():
    """With no declared type, 2**64-1 raised an OverflowError naming no column."""
    from onceflow.extract.readers.sqlalchemy import _sa_array

    with pytest.raises(ConversionError, match="column 'b' comes through SQLAlchemy"):
        _sa_array("b", [2**64 - 1], None, "mysql")
