"""Delta markers, the log view and schema compatibility."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from onceflow import warehouse
from onceflow.errors import LoadError
from onceflow.warehouse import markers


def _commit(uri: str, n: int, mode: str = "append", window: str = "2025-01-01") -> None:
    applied = markers.Applied(f"s/t/202501/{n:02d}/p_{n}.parquet", f"{n:064x}", f"b{n}", window)
    props = markers.commit_properties(applied)
    write_deltalake(uri, pa.table({"x": [n]}), mode=mode, commit_properties=props)


def _id(n: int) -> str:
    return f"s/t/202501/{n:02d}/p_{n}.parquet"


def test_each_committed_file_is_held_by_its_checksum_in_the_snapshot(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    assert warehouse.open_table(uri) is None
    assert markers.read_markers(None).held == {}
    _commit(uri, 1)
    _commit(uri, 2)
    held = markers.read_markers(DeltaTable(uri))
    assert held.version == 1 and held.oldest_version == 0
    assert held.holds(_id(1), f"{1:064x}") and not held.holds(_id(1), f"{9:064x}")
    assert held.commits[_id(2)].version == 1 and held.commits[_id(2)].batch_id == "b2"
    assert held.held_ids() == [_id(1), _id(2)]
    assert DeltaTable(uri).transaction_version(markers.app_id(_id(2))) == markers.checksum_code(
        f"{2:064x}"
    )


def test_a_rewind_commit_marks_the_files_it_undoes_as_not_held(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    for n in (1, 2, 3):
        _commit(uri, n)
    DeltaTable(uri).restore(0, commit_properties=markers.commit_properties(undone=[_id(2), _id(3)]))
    held = markers.read_markers(DeltaTable(uri))
    assert held.held_ids() == [_id(1)]
    assert warehouse.read_table(uri).column("x").to_pylist() == [1]


def test_markers_of_a_table_written_before_identities_are_read_from_its_commits(
    tmp_path: Path,
) -> None:
    from deltalake import CommitProperties, Transaction

    uri = str(tmp_path / "t")
    legacy = CommitProperties(
        custom_metadata={
            "onceflow.file": "/old/place/lake/s/t/202501/01/p_1.parquet",
            "onceflow.checksum": f"{1:064x}",
            "onceflow.batch_id": "p_1-000",
            "onceflow.sequence": "1",
        },
        app_transactions=[Transaction(app_id="onceflow.load:s/t", version=1)],
    )
    write_deltalake(uri, pa.table({"x": [1]}), commit_properties=legacy)
    held = markers.read_markers(DeltaTable(uri))
    assert held.holds(_id(1), f"{1:064x}")


def test_batch_id_is_deterministic() -> None:
    assert markers.batch_id_for("/x/p_20250101.parquet", "abcdef0123456789") == (
        "p_20250101-abcdef012345"
    )


@pytest.mark.parametrize(
    ("table", "file", "rule"),
    [
        (pa.int64(), pa.int32(), "lossless"),
        (pa.int32(), pa.int64(), "by value"),  # ALTER ... TYPE bigint at the source
        (pa.float64(), pa.float32(), "lossless"),
        (pa.float32(), pa.float64(), "by value"),
        (pa.int64(), pa.string(), "refused"),
        (pa.string(), pa.large_string(), "lossless"),
        (pa.decimal128(12, 2), pa.decimal128(10, 2), "lossless"),
        (pa.decimal128(12, 2), pa.decimal128(12, 4), "by value"),
        (pa.int32(), pa.decimal128(12, 0), "by value"),
        (pa.date32(), pa.timestamp("us"), "by value"),
        (pa.date32(), pa.timestamp("us", "UTC"), "refused"),  # an instant is not a day
        (pa.timestamp("us"), pa.timestamp("ns"), "lossless"),
        (pa.timestamp("us", "UTC"), pa.timestamp("us"), "refused"),
    ],
)
def test_a_files_type_change_is_lossless_checked_value_by_value_or_refused(
    table: pa.DataType, file: pa.DataType, rule: str
) -> None:
    current = pa.schema([("c", table)])
    incoming = pa.schema([("c", file), ("new", pa.string())])
    assert warehouse.compatible(file, table) == (rule == "lossless")
    if rule == "refused":
        with pytest.raises(LoadError, match="incompatible type change"):
            warehouse.check_schema(current, incoming, "f.parquet")
    else:  # "by value": conform_batch checks each value
        assert warehouse.check_schema(current, incoming, "f.parquet") == ["new"]


def test_markers_are_read_incrementally_and_a_recreated_table_is_noticed(tmp_path) -> None:
    import shutil

    uri = str(tmp_path / "t")
    _commit(uri, 1)
    _commit(uri, 2)
    first = markers.read_markers(DeltaTable(uri))
    assert first.held_ids() == [_id(1), _id(2)]
    _commit(uri, 3)
    table = DeltaTable(uri)
    calls: list[object] = []
    real = table.history
    table.history = lambda limit=None: calls.append(limit) or real(limit)  # type: ignore[method-assign]
    view = markers.read_markers(table)
    assert calls == []  # only the one new commit file was read, not the history
    assert view.held_ids() == [_id(n) for n in (1, 2, 3)]
    shutil.rmtree(uri)
    for n in (7, 8, 9):  # a new table at the same path, at the same version numbers
        _commit(uri, n)
    assert markers.read_markers(DeltaTable(uri)).held_ids() == [_id(n) for n in (7, 8, 9)]


def test_markers_number_commits_right_when_storage_moved_past_the_table_object(tmp_path):
    uri = str(tmp_path / "t")
    for n in range(4):
        _commit(uri, n)  # versions 0..3
    markers.read_markers(DeltaTable(uri))  # cache at version 3
    stale = DeltaTable(uri, version=3)
    _commit(uri, 4)
    _commit(uri, 5)
    view = markers.read_markers(DeltaTable(uri))
    assert {f: c.version for f, c in view.commits.items()} == {_id(n): n for n in range(6)}
    assert view.oldest_version == 0
    assert markers.read_markers(stale).version == 3


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
    for n in range(1, 24):
        _commit(uri, n)
        if warehouse.checkpoint_if_due(DeltaTable(uri)):
            written.append(DeltaTable(uri).version())
    assert written == [9, 19]  # versions 0..9 are ten commits
    assert sorted(p.name for p in log_dir.glob("*.checkpoint.parquet")) == [
        f"{9:020d}.checkpoint.parquet",
        f"{19:020d}.checkpoint.parquet",
    ]
    markers.forget_cached_markers()
    # the commits the checkpoint covers are gone: the held files come from the checkpoint
    for number in range(0, 20):
        (log_dir / f"{number:020d}.json").unlink()
    held = markers.read_markers(DeltaTable(uri))
    assert held.held_ids() == sorted(_id(n) for n in range(1, 24))
    assert held.oldest_version == 20
    assert warehouse.read_table(uri).num_rows == 23


def test_no_checkpoint_for_a_missing_or_remote_table() -> None:
    assert not warehouse.checkpoint_if_due(None)


def test_a_refused_file_into_an_all_int64_table_says_how_to_rebuild_it() -> None:
    audit = [("_source_file", pa.string()), ("_batch_id", pa.string())]
    incoming = pa.schema([("id", pa.int64()), ("name", pa.string())])
    all_int = pa.schema([("id", pa.int64()), ("name", pa.int64()), *audit])
    with pytest.raises(LoadError, match="Every column of the table is int64") as refused:
        warehouse.check_schema(all_int, incoming, "f.parquet")
    assert "empty SQLite window" in str(refused.value)
    mixed = pa.schema([("id", pa.int64()), ("name", pa.float64()), *audit])
    with pytest.raises(LoadError, match="a `query:` that casts the column") as refused:
        warehouse.check_schema(mixed, incoming, "f.parquet")
    assert "SQLite" not in str(refused.value)


def _loader_commit(uri: str, n: int, *, verified: int = -1) -> None:
    """A commit as the loader makes it: the file's markers, and the version its markers
    were read at (`onceflow.verified`), with no rebase over a concurrent commit."""
    applied = markers.Applied(_id(n), f"{n:064x}", f"b{n}", "2025-01-01")
    props = markers.commit_properties(applied, verified=verified)
    write_deltalake(uri, pa.table({"x": [n]}), mode="append", commit_properties=props)


def _commit_files_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the table's commit files (`_delta_log/<version>.json`) that Python reads."""
    read: list[str] = []
    real = Path.read_text

    def counting(self: Path, *args: object, **kwargs: object) -> str:
        if self.parent.name == "_delta_log" and self.suffix == ".json":
            read.append(self.name)
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", counting)
    return read


def test_markers_of_a_long_log_read_only_its_tail_and_its_history_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(tmp_path / "t")
    for n in range(40):  # one commit per file, each verified up to the version before it
        _loader_commit(uri, n, verified=n - 1)
    markers.forget_cached_markers()  # a new process: nothing cached
    read = _commit_files_read(monkeypatch)
    view = markers.read_markers(DeltaTable(uri))
    assert view.held_ids() == sorted(_id(n) for n in range(40))
    assert view.version == 39 and view.verified == 38
    # the commits a checkpoint-less log needs for the markers (all 40 here, as delta-rs
    # replays them too), and the one commit after the verified version for restores: the
    # commit metadata of the other 39 are not parsed again for where each file was applied
    assert len(read) <= 40 + 2, read
    assert not view.history.loaded
    read.clear()
    assert view.commits[_id(3)].version == 3 and view.oldest_version == 0  # read when asked
    assert view.history.loaded and len(read) == 40
    whole = markers._read_local(tmp_path / "t", DeltaTable(uri), None, whole=True)
    assert whole is not None and whole.commits == view.commits


def test_markers_after_a_checkpoint_read_the_commits_after_it_not_the_whole_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(tmp_path / "t")
    for n in range(45):
        _loader_commit(uri, n, verified=n - 1)
        warehouse.checkpoint_if_due(DeltaTable(uri))  # as each load ends
    markers.forget_cached_markers()
    read = _commit_files_read(monkeypatch)
    view = markers.read_markers(DeltaTable(uri))
    assert view.held_ids() == sorted(_id(n) for n in range(45))
    # the checkpoint at 39 holds the markers of 0..39: only 40..44 and the oldest commit
    # (whether the log may hold markers from before identities) are read
    assert set(read) == {f"{n:020d}.json" for n in (0, 40, 41, 42, 43, 44)}, read


def _assert_same_as_whole_read(uri: str) -> None:
    markers.forget_cached_markers()
    fast = markers.read_markers(DeltaTable(uri))
    whole = markers._read_local(Path(uri), DeltaTable(uri), None, whole=True)
    assert whole is not None
    assert (fast.held, fast.version, fast.verified, fast.restores, fast.repairs) == (
        whole.held,
        whole.version,
        whole.verified,
        whole.restores,
        whole.repairs,
    )
    assert (fast.commits, fast.oldest_version) == (whole.commits, whole.oldest_version)


def test_markers_read_from_the_tail_equal_a_read_of_the_whole_log(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    for n in range(12):
        _loader_commit(uri, n, verified=n - 1)
    _assert_same_as_whole_read(uri)
    # onceflow's own rewind: a restore naming what it undoes
    DeltaTable(uri).restore(8, commit_properties=markers.commit_properties(undone=[_id(9)]))
    _assert_same_as_whole_read(uri)
    _loader_commit(uri, 20, verified=12)
    _assert_same_as_whole_read(uri)
    # another writer's RESTORE after the verified version: found from the tail alone
    DeltaTable(uri).restore(5)
    restored = markers.read_markers(DeltaTable(uri))
    assert restored.restores and restored.repairs
    _assert_same_as_whole_read(uri)
    # the loader's correction, and more files
    dt = DeltaTable(uri)
    markers.commit_markers(dt, markers.repair_properties(markers.read_markers(dt)))
    for n in range(21, 25):
        _loader_commit(uri, n, verified=DeltaTable(uri).version())
    _assert_same_as_whole_read(uri)
    # a restore by another writer to a version that was itself a restore's (14)
    DeltaTable(uri).restore(14)
    _assert_same_as_whole_read(uri)
    dt = DeltaTable(uri)
    markers.commit_markers(dt, markers.repair_properties(markers.read_markers(dt)))
    # then a checkpoint, and the commits before it cleaned from the log
    for n in range(25, 40):
        _loader_commit(uri, n, verified=DeltaTable(uri).version())
        warehouse.checkpoint_if_due(DeltaTable(uri))
    _assert_same_as_whole_read(uri)
    for number in range(0, 20):
        (Path(uri) / "_delta_log" / f"{number:020d}.json").unlink()
    _assert_same_as_whole_read(uri)


def test_an_unverified_log_is_read_whole(tmp_path: Path) -> None:
    """A table with commits before the verified version existed (or before identities)
    is read as before: every commit it keeps, with its history."""
    uri = str(tmp_path / "t")
    for n in range(5):
        _commit(uri, n)
    markers.forget_cached_markers()
    view = markers.read_markers(DeltaTable(uri))
    assert view.history.loaded and view.verified == -1
    assert view.commits[_id(4)].version == 4
