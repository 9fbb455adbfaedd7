"""Data in memory is fingerprinted by its logical content: equal rows hash alike however
they are held (a slice of a bigger table, a data frame), and any changed value changes it."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from onceflow.validate.arrow_hash import memory_fingerprint, table_hash


def _table() -> pa.Table:
    n = 20
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "name": pa.array([None if i % 7 == 3 else f"n{i}" * (i % 3) for i in range(n)]),
            "big": pa.array([f"v{i}" for i in range(n)], pa.large_string()),
            "flag": pa.array([None if i % 5 == 0 else i % 2 == 0 for i in range(n)]),
            "amount": pa.array([Decimal(i) / 4 for i in range(n)], pa.decimal128(12, 2)),
            "tags": pa.array([[i, i + 1] if i % 4 else None for i in range(n)]),
            "kind": pa.array([("a", "b", "c")[i % 3] for i in range(n)]).dictionary_encode(),
            "point": pa.array([{"x": i, "y": str(i)} for i in range(n)]),
        }
    )


def _fresh(table: pa.Table) -> pa.Table:
    """The same rows built again from Python values: new buffers, offset 0."""
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        values = column.to_pylist()
        if pa.types.is_dictionary(column.type):
            columns[name] = pa.array(values, column.type.value_type).dictionary_encode()
        else:
            columns[name] = pa.array(values, column.type)
    return pa.table(columns)


def test_equal_data_has_one_fingerprint() -> None:
    table = _table()
    first = memory_fingerprint(table)
    assert first is not None and first.startswith("memory:")
    assert memory_fingerprint(_fresh(table)) == first


def test_a_table_over_a_numpy_array_changed_in_place_is_another_fingerprint() -> None:
    import numpy as np

    values = np.arange(1, 1001)
    table = pa.table({"amount": values})  # no copy: the table reads the array's memory
    first = memory_fingerprint(table)
    values[:10] = -5  # the "same" table object now holds other data
    assert memory_fingerprint(table) != first


@pytest.mark.parametrize("column", ["id", "name", "big", "flag", "amount", "tags", "kind", "point"])
def test_one_changed_value_changes_the_fingerprint(column):
    table = _table()
    values = table.column(column).to_pylist()
    values[11] = values[12] if values[12] != values[11] else None
    changed = _fresh(table.set_column(table.column_names.index(column), column, [values]))
    assert table_hash(changed) != table_hash(table)


def test_a_null_differs_from_a_value_and_a_renamed_or_retyped_column_differs():
    base = pa.table({"x": pa.array([1, 2, 3], pa.int64())})
    assert table_hash(pa.table({"x": pa.array([1, None, 3], pa.int64())})) != table_hash(base)
    assert table_hash(pa.table({"y": pa.array([1, 2, 3], pa.int64())})) != table_hash(base)
    assert table_hash(pa.table({"x": pa.array([1, 2, 3], pa.int32())})) != table_hash(base)


@pytest.mark.parametrize(("offset", "length"), [(0, 5), (3, 5), (8, 8), (1, 19), (9, 0)])
def test_a_sliced_table_fingerprints_by_its_own_rows_not_its_parents_buffers(offset, length):
    table = _table()
    part = table.slice(offset, length)
    assert table_hash(part) == table_hash(_fresh(part))
    # the same buffers at another offset are other rows
    if length:
        assert table_hash(part) != table_hash(table.slice(offset + 1, length))


def test_frames_and_batches_fingerprint_by_their_rows_and_readers_are_not_hashed():
    pd = pytest.importorskip("pandas")
    table = pa.table({"a": [1, 2, 3], "b": ["x", None, "z"]})
    assert memory_fingerprint(table.to_batches()[0]) == memory_fingerprint(table)
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", None, "z"]})
    assert memory_fingerprint(frame) == memory_fingerprint(frame.copy()) is not None
    assert memory_fingerprint(frame.set_axis([7, 8, 9])) == memory_fingerprint(frame)  # no index
    assert memory_fingerprint(frame.assign(a=[1, 2, 4])) != memory_fingerprint(frame)
    # hashing would read a dataset, or consume a reader: not cached
    assert memory_fingerprint(ds.dataset(table)) is None
    assert memory_fingerprint(pa.RecordBatchReader.from_batches(table.schema, [])) is None


def test_hashing_columns_in_threads_gives_what_one_thread_gives(monkeypatch):
    import onceflow.validate.arrow_hash as arrow_hash

    n = 200_000
    table = pa.table({"a": pa.array(range(n)), "b": pa.array([str(i % 97) for i in range(n)])})
    threaded = table_hash(table)
    monkeypatch.setattr(arrow_hash, "_PARALLEL_ROWS", n + 1)
    assert table_hash(table) == threaded
