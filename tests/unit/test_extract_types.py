"""What the PostgreSQL driver gets wrong, set right from the Arrow it returns."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from onceflow.extract.types import (
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
