"""The file tracker's contract, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import astuple

from onceflow.state import FileEntry, Store

T = "/warehouse/src/orders"


def _entries(n: int, checksum: str = "c") -> list[FileEntry]:
    return [
        FileEntry(
            f"src/orders/202501/{i + 1:02d}/p.parquet",
            f"/lake/src/orders/202501/{i + 1:02d}/p.parquet",
            f"2025-01-{i + 1:02d}T00:00:00+00:00",
            10 + i,
            None,
            f"{checksum}{i}",
        )
        for i in range(n)
    ]


def _id(i: int) -> str:
    return f"src/orders/202501/{i + 1:02d}/p.parquet"


def test_register_records_the_lake_and_keeps_statuses(store: Store) -> None:
    records = store.files.register(T, "src.orders", "p", _entries(3))
    assert [(r.file_id, r.status, r.window_start[:10]) for r in records.values()] == [
        (_id(0), "pending", "2025-01-01"),
        (_id(1), "pending", "2025-01-02"),
        (_id(2), "pending", "2025-01-03"),
    ]
    token = store.locks.acquire(f"load:{T}")
    assert store.files.claim(T, _id(0), token)
    assert store.files.complete(T, _id(0), token, checksum="c0", delta_version=0, batch_id="b")
    again = store.files.register(T, "src.orders", "p", _entries(4, checksum="x"))
    assert again[_id(0)].status == "completed"  # the lake changed; the table did not
    assert again[_id(0)].checksum == "x0" and again[_id(0)].loaded_checksum == "c0"
    assert again[_id(3)].status == "pending"


def test_rows_are_keyed_by_table_location_so_two_pipelines_never_share_one(store: Store) -> None:
    store.files.register("/a/warehouse/src/orders", "src.orders", "a", _entries(1))
    store.files.register("/b/warehouse/src/orders", "src.orders", "b", _entries(1))
    assert len(store.files.find()) == 2
    assert [r.pipeline for r in store.files.find(pipeline="b")] == ["b"]


def test_claim_complete_fail_are_guarded_by_the_lock_token(store: Store) -> None:
    store.files.register(T, "src.orders", "p", _entries(2))
    token = store.locks.acquire("load:t")
    assert not store.files.claim(T, _id(0), "not-a-lock-token")
    assert store.files.claim(T, _id(0), token)
    assert not store.files.claim(T, _id(0), token)  # already processing
    assert store.files.complete(T, _id(0), token, checksum="c0", delta_version=0, batch_id="b")
    assert store.files.claim(T, _id(1), token)
    assert store.files.fail(T, _id(1), token, "boom")
    failed = store.files.get(T, _id(1))
    assert failed is not None
    assert failed.status == "failed" and failed.retry_count == 1 and failed.error == "boom"
    done = store.files.get(T, _id(0))
    assert done is not None and done.status == "completed" and done.delta_version == 0
    # a loader whose lock was broken cannot record anything any more
    assert store.files.claim(T, _id(1), token)
    store.locks.force_release("load:t")
    assert not store.files.complete(T, _id(1), token, checksum="c1", delta_version=1, batch_id="b")
    assert store.files.counts(T) == {"pending": 0, "processing": 1, "completed": 1, "failed": 0}


def test_a_changed_lake_file_gets_a_fresh_retry_budget(store: Store) -> None:
    store.files.register(T, "src.orders", "p", _entries(1))
    token = store.locks.acquire("load:t")
    for _ in range(3):
        assert store.files.claim(T, _id(0), token)
        assert store.files.fail(T, _id(0), token, "bad")
    assert store.files.get(T, _id(0)).retry_count == 3
    store.files.register(T, "src.orders", "p", _entries(1))  # same content
    assert store.files.get(T, _id(0)).retry_count == 3
    store.files.register(T, "src.orders", "p", _entries(1, checksum="new"))  # re-extracted
    assert store.files.get(T, _id(0)).retry_count == 0


def test_orphaned_processing_goes_back_to_pending(store: Store) -> None:
    store.files.register(T, "src.orders", "p", _entries(2))
    token = store.locks.acquire("load:t")
    store.files.claim(T, _id(0), token)
    assert store.files.orphans() == []
    store.locks.force_release("load:t")
    assert [o.record.file_id for o in store.files.orphans()] == [_id(0)]
    released = store.files.release_orphans(T)
    assert [o.record.file_id for o in released] == [_id(0)]
    assert store.files.get(T, _id(0)).status == "pending"


def test_record_loaded_and_unloaded_follow_the_table(store: Store) -> None:
    store.files.record_loaded(
        T,
        _id(5),
        pipeline="p",
        table_key="src.orders",
        checksum="c",
        delta_version=3,
        batch_id="b",
    )
    record = store.files.get(T, _id(5))
    assert record is not None
    assert (record.status, record.loaded_checksum, record.delta_version) == ("completed", "c", 3)
    assert store.files.record_unloaded(T, [_id(5)]) == 1
    record = store.files.get(T, _id(5))
    assert record is not None and (record.status, record.loaded_checksum) == ("pending", None)
    assert store.files.reset_failed() == 0
    assert store.files.forget(T) == 1


def test_failed_among_finds_the_failed_rows_of_given_lake_paths(store: Store) -> None:
    store.files.register(T, "src.orders", "p", _entries(3))
    token = store.locks.acquire(f"load:{T}")
    for i in (0, 1):
        assert store.files.claim(T, _id(i), token)
    store.files.fail(T, _id(0), token, "checksum differs")
    assert store.files.complete(T, _id(1), token, checksum="c1", delta_version=0, batch_id="b")
    paths = [f"/lake/src/orders/202501/{d:02d}/p.parquet" for d in (1, 2, 3)]
    assert [r.file_id for r in store.files.failed_among(paths)] == [_id(0)]
    assert store.files.failed_among(paths[1:]) == []
    assert store.files.failed_among([]) == []


def test_register_returns_the_rows_it_registered_not_the_whole_table(store: Store) -> None:
    store.files.register(T, "src.orders", "p", _entries(3))
    again = store.files.register(T, "src.orders", "p", _entries(4)[3:])
    assert list(again) == [_id(3)] and again[_id(3)].status == "pending"
    assert len(store.files.find(T)) == 4


def test_states_say_in_brief_what_a_load_compares_of_each_row(store: Store) -> None:
    entries = _entries(2)
    store.files.register(T, "src.orders", "p", entries)
    store.files.register("/other/table", "src.orders", "p", _entries(1))
    token = store.locks.acquire(f"load:{T}")
    assert store.files.claim(T, _id(0), token)
    assert store.files.complete(T, _id(0), token, checksum="c0", delta_version=0, batch_id="b")
    states = store.files.states(T)
    assert sorted(states) == [_id(0), _id(1)]
    done, new = states[_id(0)], states[_id(1)]
    assert (done.status, done.checksum, done.loaded_checksum) == ("completed", "c0", "c0")
    assert (new.status, new.loaded_checksum, new.file_size) == ("pending", None, 11)
    # a row registers again only when the lake file or where it belongs changed
    assert not done.registers(entries[0], "src.orders", "p")
    assert done.registers(entries[0], "src.orders", "q")
    moved = FileEntry(_id(0), "/elsewhere/p.parquet", *astuple(entries[0])[2:])
    assert done.registers(moved, "src.orders", "p")
    assert new.registers(_entries(2, checksum="x")[1], "src.orders", "p")
    assert store.files.states("/no/table") == {}


def test_get_many_reads_the_rows_of_the_files_asked_for(store: Store) -> None:
    store.files.register(T, "src.orders", "p", _entries(3))
    got = store.files.get_many(T, [_id(2), _id(0), "not/tracked.parquet", _id(0)])
    assert sorted(got) == [_id(0), _id(2)]
    assert got[_id(2)].file_path == "/lake/src/orders/202501/03/p.parquet"
    assert store.files.get_many(T, []) == {}
    many = [FileEntry(f"src/orders/x/{i}.parquet", f"/x/{i}.parquet") for i in range(1200)]
    store.files.register(T, "src.orders", "p", many)  # more ids than one query takes
    assert len(store.files.get_many(T, [e.file_id for e in many])) == 1200
