"""A source column whose type was widened: its values are cast to the table's type when
each one fits exactly, or the table's column takes a type holding both (`load.widen`)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from onceflow.errors import LoadError
from onceflow.warehouse import conform_batch, widenings
from onceflow.warehouse.schema import wider_type

NARROW = pa.schema([("a", pa.int32()), ("n", pa.decimal128(10, 2))])


def _wide(a: list[int], n: list[str]) -> pa.Table:
    return pa.table(
        {
            "a": pa.array(a, pa.int64()),
            "n": pa.array([Decimal(v) for v in n], pa.decimal128(14, 4)),
        }
    )


def test_wider_values_that_fit_take_the_tables_types() -> None:
    batch, added = conform_batch(_wide([1, -(2**31)], ["12.3400", "-0.5000"]), NARROW, "f")
    assert batch.schema == NARROW and added == []
    assert batch.column("n").to_pylist() == [Decimal("12.34"), Decimal("-0.50")]


@pytest.mark.parametrize(
    ("a", "n", "column", "value"),
    [
        ([1, 2**40], ["1", "2"], "a", "1099511627776"),
        ([1], ["1.2345"], "n", "Decimal('1.2345')"),  # a scale digit would be lost
        ([1], ["123456789.5"], "n", "Decimal('123456789.5000')"),  # too many digits
    ],
)
def test_a_value_that_does_not_fit_names_the_column_the_value_and_the_fix(
    a: list[int], n: list[str], column: str, value: str
) -> None:
    with pytest.raises(LoadError) as refused:
        conform_batch(_wide(a, n), NARROW, "src/t/202501/02/p_20250102.parquet")
    message = str(refused.value)
    assert message.startswith("src/t/202501/02/p_20250102.parquet: column ")
    assert f"column {column!r}" in message and value in message
    assert "the table is unchanged" in message and "`load: {widen: true}`" in message
    assert "\n" not in message


def test_a_value_past_the_first_slice_is_found_and_named() -> None:
    values = [1] * 10_000 + [2**33]
    with pytest.raises(LoadError, match="8589934592"):
        conform_batch(_wide(values, ["1"] * len(values)), NARROW, "f")


def test_a_double_fits_a_float_only_when_it_survives_the_round_trip() -> None:
    table = pa.schema([("x", pa.float32())])
    ok, _ = conform_batch(pa.table({"x": [1.5, float("nan"), None]}), table, "f")
    assert ok.schema.field("x").type == pa.float32() and ok.column("x").null_count == 1
    with pytest.raises(LoadError, match=r"column 'x' .* \(0\.1;"):
        conform_batch(pa.table({"x": [1.5, 0.1]}), table, "f")  # a safe cast would round


def test_a_timestamp_fits_a_date_only_at_midnight() -> None:
    table = pa.schema([("d", pa.date32())])
    midnight = pa.table({"d": pa.array([dt.datetime(2025, 1, 2)], pa.timestamp("us"))})
    assert conform_batch(midnight, table, "f")[0].column("d").to_pylist() == [dt.date(2025, 1, 2)]
    noon = pa.table({"d": pa.array([dt.datetime(2025, 1, 2, 12)], pa.timestamp("us"))})
    with pytest.raises(LoadError, match="column 'd'"):
        conform_batch(noon, table, "f")


def test_with_widen_the_batch_keeps_the_type_the_table_is_widened_to() -> None:
    batch = _wide([2**40], ["1.2345"])
    conformed, _ = conform_batch(batch, NARROW, "f", widen=True)
    assert conformed.schema == batch.schema
    assert widenings(NARROW, conformed.schema) == {
        "a": pa.int64(),
        "n": pa.decimal128(14, 4),
    }
    assert widenings(NARROW, NARROW) == {}


@pytest.mark.parametrize(
    ("table", "file", "wider"),
    [
        (pa.int8(), pa.int16(), pa.int16()),
        (pa.float32(), pa.float64(), pa.float64()),
        (pa.decimal128(10, 2), pa.decimal128(9, 4), pa.decimal128(12, 4)),  # holds both
        (pa.int32(), pa.decimal128(12, 2), pa.decimal128(12, 2)),
        (pa.int64(), pa.decimal128(12, 2), pa.decimal128(22, 2)),
        (pa.decimal128(10, 2), pa.int64(), pa.decimal128(22, 2)),
        (pa.int32(), pa.float64(), pa.float64()),
        (pa.date32(), pa.timestamp("us"), pa.timestamp("us")),
        (pa.int64(), pa.float64(), None),  # no Delta type holds every int64 and double
        (pa.int64(), pa.int32(), None),  # nothing to widen
    ],
)
def test_the_wider_type_holds_every_value_of_both(
    table: pa.DataType, file: pa.DataType, wider: pa.DataType | None
) -> None:
    assert wider_type(table, file) == wider


def test_widen_without_a_type_holding_both_still_checks_values() -> None:
    table = pa.schema([("v", pa.int64()), ("s", pa.string())])
    with pytest.raises(LoadError, match="No Delta type holds both int64 and double"):
        conform_batch(pa.table({"v": [1.5]}), table, "f", widen=True)
    fits, _ = conform_batch(pa.table({"v": [2.0]}), table, "f", widen=True)
    assert fits.column("v").to_pylist() == [2]


def test_a_decimal_into_a_decimal_text_column_is_its_exact_text() -> None:
    """numeric(50,10) made the column text; after `TYPE numeric(30,10)` the file's
    decimal128 used to be refused as number -> text."""
    table = pa.schema([("n", pa.string())])
    values = [Decimal("1.5"), Decimal("0E-10"), Decimal("-0.0000000001"), None]
    batch, _ = conform_batch(pa.table({"n": pa.array(values, pa.decimal128(30, 10))}), table, "f")
    assert batch.column("n").to_pylist() == [
        "1.5000000000",
        "0.0000000000",  # as the wide decimals are written, never Arrow's "0E-10"
        "-0.0000000001",
        None,
    ]


def _wide_decimals(values: list[str]) -> pa.Table:
    return pa.table({"n": pa.array([Decimal(v) for v in values], pa.decimal256(40, 2))})


def test_a_decimal_past_38_digits_goes_into_the_tables_decimal_when_each_value_fits() -> None:
    table = pa.schema([("n", pa.decimal128(20, 2))])
    batch, _ = conform_batch(_wide_decimals(["12.50", "-0.01"]), table, "f")
    assert batch.schema == table
    assert batch.column("n").to_pylist() == [Decimal("12.50"), Decimal("-0.01")]
    huge = "1" + "0" * 30 + ".00"
    with pytest.raises(LoadError) as refused:
        conform_batch(_wide_decimals(["1.00", huge]), table, "f")
    message = str(refused.value)
    assert "column 'n'" in message and huge in message
    assert "`load: {widen: true}`" in message and "exact decimal text" in message


def test_with_widen_a_decimal_past_38_digits_widens_the_table_column_to_its_text() -> None:
    table = pa.schema([("n", pa.decimal128(20, 2))])
    huge = "1" + "0" * 30 + ".00"
    batch, _ = conform_batch(_wide_decimals([huge, "0.50"]), table, "f", widen=True)
    assert batch.column("n").to_pylist() == [huge, "0.50"]
    assert widenings(table, batch.schema) == {"n": pa.string()}  # what the loader asks
    assert widenings(table, _wide_decimals([huge]).schema) == {"n": pa.string()}


@pytest.mark.parametrize(
    ("table", "file", "wider"),
    [
        (pa.decimal128(20, 2), pa.decimal256(40, 2), pa.string()),
        (pa.decimal128(30, 2), pa.decimal128(30, 10), pa.decimal128(38, 10)),  # 28 + 10 fit
        (pa.decimal128(36, 2), pa.decimal128(30, 10), pa.string()),  # 34 + 10 do not
        (pa.int64(), pa.decimal256(45, 5), pa.string()),
        (pa.string(), pa.decimal128(30, 10), None),  # already text: nothing to widen
    ],
    ids=str,
)
def test_past_38_digits_the_type_holding_both_is_the_decimal_text(
    table: pa.DataType, file: pa.DataType, wider: pa.DataType | None
) -> None:
    assert wider_type(table, file) == wider
