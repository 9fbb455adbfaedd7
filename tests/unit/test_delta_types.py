"""Columns of a type Delta cannot store take the Delta type that holds every value."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from onceflow.warehouse.schema import conform_batch, delta_type, to_delta_types


@pytest.mark.parametrize(
    ("arrow", "delta"),
    [
        (pa.decimal256(50, 10), pa.string()),
        (pa.decimal256(65, 30), pa.string()),
        (pa.decimal256(38, 2), pa.decimal128(38, 2)),
        (pa.decimal128(38, 10), pa.decimal128(38, 10)),
        (pa.time64("us"), pa.string()),
        (pa.time32("s"), pa.string()),
        (pa.uint8(), pa.int16()),
        (pa.uint16(), pa.int32()),
        (pa.uint32(), pa.int64()),
        (pa.uint64(), pa.decimal128(20, 0)),
        (pa.int64(), pa.int64()),
        (pa.timestamp("us", tz="UTC"), pa.timestamp("us", tz="UTC")),
        (pa.string(), pa.string()),
    ],
    ids=str,
)
def test_each_type_delta_lacks_maps_to_one_that_holds_every_value(arrow, delta):
    assert delta_type(arrow) == delta


def test_times_of_day_become_fixed_width_text_with_the_units_digits():
    day = 86_400
    table = pa.table(
        {
            "us": pa.array([0, 45_296_789_012, day * 10**6, None], pa.time64("us")),
            "ns": pa.array([1, 45_296_789_012_345, day * 10**9, None], pa.time64("ns")),
            "ms": pa.array([1, 45_296_789, day * 10**3, None], pa.time32("ms")),
            "s": pa.array([0, 45_296, day, None], pa.time32("s")),
        }
    )
    got = to_delta_types(table).to_pydict()
    # PostgreSQL's 24:00:00 too, which Arrow's own cast writes as "<value out of range>"
    assert got == {
        "us": ["00:00:00.000000", "12:34:56.789012", "24:00:00.000000", None],
        "ns": ["00:00:00.000000001", "12:34:56.789012345", "24:00:00.000000000", None],
        "ms": ["00:00:00.001", "12:34:56.789", "24:00:00.000", None],
        "s": ["00:00:00", "12:34:56", "24:00:00", None],
    }


def test_wide_decimals_become_plain_exact_text_with_their_scale():
    values = [
        Decimal("12345678901234567890123456789012345.123456789012345678901234567890"),
        Decimal("0E-30"),
        Decimal("-1E-30"),
        Decimal("-0.5"),
        None,
    ]
    chunks = [
        pa.array(values[:2], pa.decimal256(65, 30)),
        pa.array(values[2:], pa.decimal256(65, 30)),
    ]
    got = to_delta_types(pa.table({"d": pa.chunked_array(chunks)})).column("d").to_pylist()
    assert got == [
        "12345678901234567890123456789012345.123456789012345678901234567890",
        "0." + "0" * 30,  # not Arrow's "0E-30"
        "-0." + "0" * 29 + "1",
        "-0.500000000000000000000000000000",
        None,
    ]
    assert [None if v is None else Decimal(v) for v in got] == values


def test_unsigned_integers_keep_their_largest_values():
    table = pa.table(
        {
            "u8": pa.array([255, 0], pa.uint8()),
            "u16": pa.array([65_535, 0], pa.uint16()),
            "u32": pa.array([4_294_967_295, 0], pa.uint32()),
            "u64": pa.array([18_446_744_073_709_551_615, 0], pa.uint64()),
        }
    )
    got = to_delta_types(table).to_pydict()
    assert got == {
        "u8": [255, 0],
        "u16": [65_535, 0],
        "u32": [4_294_967_295, 0],
        "u64": [Decimal(18_446_744_073_709_551_615), Decimal(0)],
    }


def test_a_table_of_these_types_is_created_and_appended_to(tmp_path: Path):
    """The first file creates the table (delta-rs refused time64 and decimal256 and failed
    on unsigned values past the signed maximum); the next one appends to it."""
    uri = str(tmp_path / "t")
    file = pa.table(
        {
            "t": pa.array([45_296_000_000], pa.time64("us")),
            "d": pa.array([Decimal("1.5")], pa.decimal256(50, 10)),
            "u": pa.array([18_446_744_073_709_551_615], pa.uint64()),
            "b": pa.array([255], pa.uint8()),
        }
    )
    for _ in range(2):
        table = DeltaTable(uri) if (tmp_path / "t").exists() else None
        target = None if table is None else pa.schema(table.schema().to_arrow())
        batch, _new = conform_batch(file, target, "file")
        write_deltalake(uri, batch, mode="append")
    rows = DeltaTable(uri).to_pyarrow_table().to_pylist()
    assert rows == 2 * [
        {"t": "12:34:56.000000", "d": "1.5000000000", "u": Decimal(2**64 - 1), "b": 255}
    ]
