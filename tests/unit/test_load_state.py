"""File tracker and lease locks: the contract, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from onceflow.errors import LockError
from onceflow.state.locks import Lease

T = "warehouse/orders"


def _entries(n: int) -> list[dict[str, Any]]:
    return [
        {"file_path": f"/lake/f{i:02d}.parquet", "file_size": 10 + i, "checksum": f"c{i}"}
        for i in range(n)
    ]


def test_register_assigns_sequences_in_order_and_is_idempotent(store: Any) -> None:
    records = store.register_files(T, _entries(3))
    assert [(r.file_path, r.sequence, r.status) for r in records] == [
        ("/lake/f00.parquet", 1, "pending"),
        ("/lake/f01.parquet", 2, "pending"),
        ("/lake/f02.parquet", 3, "pending"),
    ]
    again = store.register_files(T, _entries(4))
    assert [r.sequence for r in again] == [1, 2, 3, 4]


def test_register_respects_log_sequences_and_floor(store: Any) -> None:
    records = store.register_files(
        T, _entries(3), known_sequences={"/lake/f00.parquet": 7}, floor=9
    )
    assert {r.file_path: r.sequence for r in records} == {
        "/lake/f00.parquet": 7,
        "/lake/f01.parquet": 10,
        "/lake/f02.parquet": 11,
    }


def test_claim_complete_fail_are_guarded_by_the_lock_token(store: Any) -> None:
    store.register_files(T, _entries(2))
    token = store.acquire_lock("load:t")
    assert not store.claim_file(T, "/lake/f00.parquet", "not-a-lock-token")
    assert store.claim_file(T, "/lake/f00.parquet", token)
    assert not store.claim_file(T, "/lake/f00.parquet", token)  # already processing
    assert store.complete_file(T, "/lake/f00.parquet", token, delta_version=0, batch_id="b")
    assert store.claim_file(T, "/lake/f01.parquet", token)
    assert store.fail_file(T, "/lake/f01.parquet", token, "boom")
    failed = store.get_file(T, "/lake/f01.parquet")
    assert failed.status == "failed" and failed.retry_count == 1 and failed.error == "boom"
    done = store.get_file(T, "/lake/f00.parquet")
    assert done.status == "completed" and done.delta_version == 0
    # a loader whose lock was broken cannot record anything any more
    assert store.claim_file(T, "/lake/f01.parquet", token)
    store.force_release_lock("load:t")
    assert not store.complete_file(T, "/lake/f01.parquet", token, delta_version=1, batch_id="b")
    assert store.file_status_counts(T) == {
        "pending": 0,
        "processing": 1,
        "completed": 1,
        "failed": 0,
    }


def test_orphaned_processing_goes_back_to_pending(store: Any) -> None:
    store.register_files(T, _entries(2))
    token = store.acquire_lock("load:t")
    store.claim_file(T, "/lake/f00.parquet", token)
    assert store.orphaned_files() == []
    store.force_release_lock("load:t")
    assert [f.file_path for f in store.orphaned_files()] == ["/lake/f00.parquet"]
    released = store.release_orphaned_files(T)
    assert [f.file_path for f in released] == ["/lake/f00.parquet"]
    assert store.get_file(T, "/lake/f00.parquet").status == "pending"


def test_record_committed_file_inserts_or_updates(store: Any) -> None:
    store.record_committed_file(
        T, "/lake/x.parquet", checksum="c", sequence=5, delta_version=3, batch_id="b"
    )
    record = store.get_file(T, "/lake/x.parquet")
    assert (record.status, record.sequence, record.delta_version) == ("completed", 5, 3)
    assert store.reset_failed_files() == 0
    assert store.forget_files(T) == 1


def test_lock_is_exclusive_and_names_the_holder(store: Any) -> None:
    token = store.acquire_lock("pipeline:p", ttl=60)
    with pytest.raises(LockError, match=r"held by pid \d+ on "):
        store.acquire_lock("pipeline:p", timeout=0.2, poll=0.05)
    assert store.heartbeat_lock("pipeline:p", token)
    assert store.holds_lock("pipeline:p", token)
    assert store.release_lock("pipeline:p", token)
    assert not store.release_lock("pipeline:p", token)
    assert store.acquire_lock("pipeline:p")


def test_expired_lock_is_stale_and_taken_over(store: Any) -> None:
    old = store.acquire_lock("pipeline:p", ttl=0.05)
    import time

    time.sleep(0.1)
    holder = store.lock_holder("pipeline:p")
    assert holder.stale_reason() is not None
    new = store.acquire_lock("pipeline:p")
    assert new != old
    assert not store.heartbeat_lock("pipeline:p", old)
    with pytest.raises(LockError, match="lost lock"):
        store.check_lock("pipeline:p", old)


def test_lock_of_a_dead_process_is_stale(store: Any) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    store.acquire_lock("pipeline:p", ttl=600)
    with store.transaction() as tx:  # pretend the dead child held it
        tx.execute("UPDATE locks SET pid = ? WHERE name = ?", (proc.pid, "pipeline:p"))
    holder = store.lock_holder("pipeline:p")
    assert "no longer running" in (holder.stale_reason() or "")
    assert store.acquire_lock("pipeline:p") != holder.token


def test_recycled_pid_is_stale(store: Any) -> None:
    store.acquire_lock("pipeline:p", ttl=600)
    with store.transaction() as tx:  # our pid, but a different start time: a recycled pid
        tx.execute(
            "UPDATE locks SET process_start = process_start - 1000 WHERE name = ?", ("pipeline:p",)
        )
    assert "another process" in (store.lock_holder("pipeline:p").stale_reason() or "")
    far = datetime.now(UTC) + timedelta(hours=1)
    assert store.lock_holder("pipeline:p").stale_reason(far) is not None
    assert os.getpid() == store.lock_holder("pipeline:p").pid


def test_lease_heartbeats_and_releases(store: Any) -> None:
    with Lease(store, "load:x", ttl=1.5) as lease:
        import time

        time.sleep(1.0)
        lease.check()
        first = store.lock_holder("load:x").expires_at
        time.sleep(0.8)
        assert store.lock_holder("load:x").expires_at > first
        lease.check()
    assert store.lock_holder("load:x") is None
