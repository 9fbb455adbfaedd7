"""Columns of a type Delta cannot store take the Delta type that holds every value."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from onceflow.errors import LoadError
from onceflow.warehouse import arrow_schema, read_table, snapshot_dataset
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


_UUID = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"


def _uuids(values: list[str | None]) -> pa.Array:
    storage = pa.array([None if v is None else UUID(v).bytes for v in values], pa.binary(16))
    return pa.ExtensionArray.from_storage(pa.uuid(), storage)


def test_uuids_become_their_canonical_lowercase_hyphenated_text():
    other = str(uuid4())
    column = pa.chunked_array([_uuids([_UUID, None]), _uuids([other]).slice(0)])
    got = to_delta_types(pa.table({"u": column}))
    assert got.schema == pa.schema([("u", pa.string())])  # no extension tag left
    assert got.column("u").to_pylist() == [_UUID, None, other]
    assert to_delta_types(pa.table({"u": _uuids([other, _UUID]).slice(1)})).to_pydict() == {
        "u": [_UUID]
    }


def _numeric_text() -> pa.DataType:
    return pa.opaque(pa.string(), type_name="numeric", vendor_name="PostgreSQL")


@pytest.mark.parametrize(
    ("arrow", "delta"),
    [
        (pa.uuid(), pa.string()),
        (pa.json_(), pa.string()),
        (pa.list_(pa.json_()), pa.list_(pa.string())),
        (pa.large_list(pa.uuid()), pa.large_list(pa.string())),
        (pa.list_(_numeric_text()), pa.list_(pa.string())),
        (pa.list_(pa.decimal256(50, 2)), pa.list_(pa.string())),
        (
            pa.struct([("u", pa.uuid()), ("n", pa.uint8())]),
            pa.struct([("u", pa.string()), ("n", pa.int16())]),
        ),
        (pa.map_(pa.string(), pa.json_()), pa.map_(pa.string(), pa.string())),
        (pa.list_(pa.int32()), pa.list_(pa.int32())),
    ],
    ids=str,
)
def test_extension_and_delta_lacking_types_convert_inside_nested_types(arrow, delta):
    assert delta_type(arrow) == delta


def test_arrays_of_json_numeric_and_uuid_become_arrays_of_their_text():
    """PostgreSQL jsonb[], numeric[] and uuid[] as the driver gives them, nulls and a
    slice included."""
    json_values = pa.ExtensionArray.from_storage(pa.json_(), pa.array(['{"a": 1}', "[]"]))
    numbers = pa.ExtensionArray.from_storage(_numeric_text(), pa.array(["1.5", "0.00000001"]))
    nulls = pa.array([False, True, False])
    table = pa.table(
        {
            "ja": pa.ListArray.from_arrays([0, 1, 1, 2], json_values, mask=nulls),
            "na": pa.ListArray.from_arrays([0, 2, 2, 2], numbers, mask=nulls),
            "ua": pa.ListArray.from_arrays([0, 1, 1, 1], _uuids([_UUID]), mask=nulls),
        }
    )
    got = to_delta_types(table)
    assert all(not isinstance(f.type.value_type, pa.BaseExtensionType) for f in got.schema)
    assert got.to_pydict() == {
        "ja": [['{"a": 1}'], None, ["[]"]],
        "na": [["1.5", "0.00000001"], None, []],
        "ua": [[_UUID], None, []],
    }
    assert to_delta_types(table.slice(1)).column("ja").to_pylist() == [None, ["[]"]]


def test_a_second_file_of_nested_extension_types_goes_into_the_table_the_first_created(
    tmp_path: Path,
):
    """The second file used to be refused: `table has list<element: string>, file has
    list<element: extension<arrow.json>>` (only a top-level extension was unwrapped)."""
    uri = str(tmp_path / "t")
    json_values = pa.ExtensionArray.from_storage(pa.json_(), pa.array(["{}"]))
    file = pa.table(
        {
            "ja": pa.ListArray.from_arrays([0, 1], json_values),
            "u": _uuids([_UUID]),
            "j": json_values,
        }
    )
    for _ in range(2):
        table = DeltaTable(uri) if (tmp_path / "t").exists() else None
        target = None if table is None else arrow_schema(table)
        batch, _new = conform_batch(file, target, "file")
        write_deltalake(uri, batch, mode="append")
    assert read_table(uri).to_pylist() == 2 * [{"ja": ["{}"], "u": _UUID, "j": "{}"}]
    schema = json.loads(DeltaTable(uri).schema().to_json())
    assert all(f["metadata"] == {} for f in schema["fields"])  # no extension tag in Delta


def test_a_table_an_older_onceflow_tagged_as_json_reads_as_text(tmp_path: Path):
    uri = str(tmp_path / "t")
    tagged = pa.ExtensionArray.from_storage(pa.json_(), pa.array(['{"a": 1}', None]))
    write_deltalake(uri, pa.table({"id": [1, 2], "j": tagged}))  # what onceflow used to write
    assert arrow_schema(DeltaTable(uri)) == pa.schema([("id", pa.int64()), ("j", pa.string())])
    assert read_table(uri).to_pydict() == {"id": [1, 2], "j": ['{"a": 1}', None]}


def test_a_table_an_older_onceflow_tagged_as_uuid_is_refused_with_the_rebuild(tmp_path: Path):
    """Arrow refuses a uuid tag on Delta's binary in the schema and in every data file:
    reading fails with the way out instead of `Invalid storage type for UuidType`."""
    uri = str(tmp_path / "t")
    write_deltalake(uri, pa.table({"id": [1], "u": _uuids([_UUID])}))
    with pytest.raises(LoadError, match=r"'u'.*delete the table's folder and run `onceflow load"):
        read_table(uri)
    with pytest.raises(LoadError, match="Rebuild the table from the lake"):
        snapshot_dataset(DeltaTable(uri))
