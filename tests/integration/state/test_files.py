"""The file tracker's contract, on SQLite and PostgreSQL."""

from __future__ import annotations

from onceflow.state import FileEntry, Store

T = "warehouse/orders"


def _entries(n: int) -> list[FileEntry]:
    return [FileEntry(f"/lake/f{i:02d}.parquet", 10 + i, None, f"c{i}") for i in range(n)]


def test_register_assigns_sequences_in_order_and_is_idempotent(store: Store) -> None:
    records = store.files.register(T, _entries(3))
    assert [(r.file_path, r.sequence, r.status) for r in records] == [
        ("/lake/f00.parquet", 1, "pending"),
        ("/lake/f01.parquet", 2, "pending"),
        ("/lake/f02.parquet", 3, "pending"),
    ]
    again = store.files.register(T, _entries(4))
    assert [r.sequence for r in again] == [1, 2, 3, 4]


def test_register_respects_log_sequences_and_floor(store: Store) -> None:
    records = store.files.register(
        T, _entries(3), known_sequences={"/lake/f00.parquet": 7}, floor=9
    )
    assert {r.file_path: r.sequence for r in records} == {
        "/lake/f00.parquet": 7,
        "/lake/f01.parquet": 10,
        "/lake/f02.parquet": 11,
    }


def test_claim_complete_fail_are_guarded_by_the_lock_token(store: Store) -> None:
    store.files.register(T, _entries(2))
    token = store.locks.acquire("load:t")
    assert not store.files.claim(T, "/lake/f00.parquet", "not-a-lock-token")
    assert store.files.claim(T, "/lake/f00.parquet", token)
    assert not store.files.claim(T, "/lake/f00.parquet", token)  # already processing
    assert store.files.complete(T, "/lake/f00.parquet", token, delta_version=0, batch_id="b")
    assert store.files.claim(T, "/lake/f01.parquet", token)
    assert store.files.fail(T, "/lake/f01.parquet", token, "boom")
    failed = store.files.get(T, "/lake/f01.parquet")
    assert failed.status == "failed" and failed.retry_count == 1 and failed.error == "boom"
    done = store.files.get(T, "/lake/f00.parquet")
    assert done.status == "completed" and done.delta_version == 0
    # a loader whose lock was broken cannot record anything any more
    assert store.files.claim(T, "/lake/f01.parquet", token)
    store.locks.force_release("load:t")
    assert not store.files.complete(T, "/lake/f01.parquet", token, delta_version=1, batch_id="b")
    assert store.files.counts(T) == {
        "pending": 0,
        "processing": 1,
        "completed": 1,
        "failed": 0,
    }


def test_orphaned_processing_goes_back_to_pending(store: Store) -> None:
    store.files.register(T, _entries(2))
    token = store.locks.acquire("load:t")
    store.files.claim(T, "/lake/f00.parquet", token)
    assert store.files.orphans() == []
    store.locks.force_release("load:t")
    assert [o.record.file_path for o in store.files.orphans()] == ["/lake/f00.parquet"]
    released = store.files.release_orphans(T)
    assert [o.record.file_path for o in released] == ["/lake/f00.parquet"]
    assert store.files.get(T, "/lake/f00.parquet").status == "pending"


def test_record_committed_file_inserts_or_updates(store: Store) -> None:
    store.files.record_committed(
        T, "/lake/x.parquet", checksum="c", sequence=5, delta_version=3, batch_id="b"
    )
    record = store.files.get(T, "/lake/x.parquet")
    assert (record.status, record.sequence, record.delta_version) == ("completed", 5, 3)
    assert store.files.reset_failed() == 0
    assert store.files.forget(T) == 1
