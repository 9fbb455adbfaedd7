"""Delta markers, the log view and schema compatibility."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from onceflow import warehouse
from onceflow.errors import LoadError
from onceflow.load import markers


def test_commit_markers_round_trip_through_the_log(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    assert warehouse.open_table(uri) is None
    assert markers.read_log(None, "app").txn_version == 0
    for seq, name in enumerate(["a.parquet", "b.parquet"], start=1):
        props = markers.commit_properties(
            path=f"/lake/{name}",
            checksum=f"c{seq}",
            batch_id=markers.batch_id_for(name, f"c{seq}"),
            sequence=seq,
            app="app",
        )
        write_deltalake(uri, pa.table({"x": [seq]}), mode="append", commit_properties=props)
    view = markers.read_log(DeltaTable(uri), "app")
    assert view.txn_version == 2 and view.version == 1 and view.oldest_version == 0
    assert view.files["/lake/b.parquet"].sequence == 2
    assert view.files["/lake/a.parquet"].version == 0
    assert view.has("/lake/a.parquet", "c1") and not view.has("/lake/a.parquet", "other")
    assert markers.find_commit(uri, "b-c2") == 1


def test_batch_id_is_deterministic() -> None:
    assert markers.batch_id_for("/x/p_20250101.parquet", "abcdef0123456789") == (
        "p_20250101-abcdef012345"
    )


@pytest.mark.parametrize(
    ("table", "file", "ok"),
    [
        (pa.int64(), pa.int32(), True),
        (pa.int32(), pa.int64(), False),
        (pa.float64(), pa.float32(), True),
        (pa.int64(), pa.string(), False),
        (pa.string(), pa.large_string(), True),
        (pa.decimal128(12, 2), pa.decimal128(10, 2), True),
        (pa.decimal128(12, 2), pa.decimal128(12, 4), False),
        (pa.timestamp("us"), pa.timestamp("ns"), True),
        (pa.timestamp("us", "UTC"), pa.timestamp("us"), False),
    ],
)
def test_schema_compatibility(table: pa.DataType, file: pa.DataType, ok: bool) -> None:
    current = pa.schema([("c", table)])
    incoming = pa.schema([("c", file), ("new", pa.string())])
    if ok:
        assert warehouse.check_schema(current, incoming, "f.parquet") == ["new"]
    else:
        with pytest.raises(LoadError, match="incompatible type change"):
            warehouse.check_schema(current, incoming, "f.parquet")


def test_log_view_reads_only_new_commits_and_notices_a_recreated_table(tmp_path) -> None:
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    uri = str(tmp_path / "t")

    def commit(n: int, mode: str = "append") -> None:
        props = markers.commit_properties(
            path=f"/lake/f{n}.parquet", checksum=f"c{n}", batch_id=f"b{n}", sequence=n, app="a"
        )
        write_deltalake(uri, pa.table({"x": [n]}), mode=mode, commit_properties=props)

    commit(1)
    commit(2)
    first = markers.read_log(DeltaTable(uri), "a")
    assert set(first.files) == {"/lake/f1.parquet", "/lake/f2.parquet"}
    commit(3)
    table = DeltaTable(uri)
    calls: list[object] = []
    real = table.history
    table.history = lambda limit=None: calls.append(limit) or real(limit)  # type: ignore[method-assign]
    view = markers.read_log(table, "a")
    assert calls == []  # only the one new commit file was read, not the history
    assert set(view.files) == {f"/lake/f{n}.parquet" for n in (1, 2, 3)}
    assert view.txn_version == 3
    import shutil

    shutil.rmtree(uri)
    for n in (7, 8, 9):  # a new table at the same path, at the same version number
        commit(n)
    again = markers.read_log(DeltaTable(uri), "a")
    assert set(again.files) == {f"/lake/f{n}.parquet" for n in (7, 8, 9)}


def test_log_view_numbers_commits_right_when_storage_moved_past_the_table_object(tmp_path):
    """history(limit) on a stale object numbers the newest commits from the object's own
    version; the view reads commit files by number instead."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    uri = str(tmp_path / "t")

    def commit(n: int) -> None:
        props = markers.commit_properties(
            path=f"/lake/f{n}.parquet", checksum=f"c{n}", batch_id=f"b{n}", sequence=n, app="a"
        )
        write_deltalake(uri, pa.table({"x": [n]}), mode="append", commit_properties=props)

    for n in range(4):
        commit(n)  # versions 0..3
    markers.read_log(DeltaTable(uri), "a")  # cache at version 3
    stale = DeltaTable(uri, version=3)
    commit(4)
    commit(5)
    fresh = DeltaTable(uri)
    view = markers.read_log(fresh, "a")
    assert {p: f.version for p, f in view.files.items()} == {
        f"/lake/f{n}.parquet": n for n in range(6)
    }
    assert view.oldest_version == 0
    assert markers.read_log(stale, "a").version == 3


def test_table_uri_maps_databricks_paths_and_keeps_volumes_and_uris() -> None:
    assert warehouse.table_uri("dbfs:/mnt/wh", "shop/orders") == "/dbfs/mnt/wh/shop/orders"
    assert warehouse.table_uri("/w", "dbfs:/mnt/t") == "/dbfs/mnt/t"
    volume = "/Volumes/main/raw/lake/warehouse"
    assert warehouse.table_uri(volume, "shop/orders") == f"{volume}/shop/orders"
    assert warehouse.table_uri("/w", "s3://bucket/t") == "s3://bucket/t"
    assert warehouse.table_uri("/w", "/abs/t") == "/abs/t"


def test_a_checkpoint_is_written_every_ten_commits_and_keeps_the_markers(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    log_dir = tmp_path / "t" / "_delta_log"
    written = []
    for seq in range(1, 24):
        props = markers.commit_properties(
            path=f"/lake/f{seq}.parquet",
            checksum=f"c{seq}",
            batch_id=f"b{seq}",
            sequence=seq,
            app="app",
        )
        write_deltalake(uri, pa.table({"x": [seq]}), mode="append", commit_properties=props)
        if warehouse.checkpoint_if_due(DeltaTable(uri)):
            written.append(DeltaTable(uri).version())
    assert written == [9, 19]  # versions 0..9 are ten commits
    assert sorted(p.name for p in log_dir.glob("*.checkpoint.parquet")) == [
        f"{9:020d}.checkpoint.parquet",
        f"{19:020d}.checkpoint.parquet",
    ]
    table = DeltaTable(uri)
    assert table.transaction_version("app") == 23
    markers._views.clear()
    view = markers.read_log(table, "app")
    assert view.has("/lake/f1.parquet", "c1") and view.has("/lake/f23.parquet", "c23")
    assert warehouse.read_table(uri).num_rows == 23


def test_no_checkpoint_for_a_missing_or_remote_table() -> None:
    assert not warehouse.checkpoint_if_due(None)
