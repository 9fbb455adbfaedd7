"""Lease locks' contract, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from onceflow.errors import LockError, StateError
from onceflow.state import Lease, Store


def test_lock_is_exclusive_and_names_the_holder(store: Store) -> None:
    token = store.locks.acquire("pipeline:p", ttl=60)
    with pytest.raises(LockError, match=r"held by pid \d+ on "):
        store.locks.acquire("pipeline:p", timeout=0.2, poll=0.05)
    assert store.locks.heartbeat("pipeline:p", token)
    assert store.locks.holds("pipeline:p", token)
    assert store.locks.release("pipeline:p", token)
    assert not store.locks.release("pipeline:p", token)
    assert store.locks.acquire("pipeline:p")


def test_expired_lock_is_stale_and_taken_over(store: Store) -> None:
    old = store.locks.acquire("pipeline:p", ttl=0.05)
    time.sleep(0.1)
    holder = store.locks.holder("pipeline:p")
    assert holder.stale_reason() is not None
    new = store.locks.acquire("pipeline:p")
    assert new != old
    assert not store.locks.heartbeat("pipeline:p", old)
    with pytest.raises(LockError, match="lost lock"):
        store.locks.check("pipeline:p", old)


def test_lock_of_a_dead_process_is_stale(store: Store) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    store.locks.acquire("pipeline:p", ttl=600)
    with store.transaction() as tx:  # pretend the dead child held it
        tx.execute("UPDATE locks SET pid = ? WHERE name = ?", (proc.pid, "pipeline:p"))
    holder = store.locks.holder("pipeline:p")
    assert "no longer running" in (holder.stale_reason() or "")
    assert store.locks.acquire("pipeline:p") != holder.token


def test_recycled_pid_is_stale(store: Store) -> None:
    store.locks.acquire("pipeline:p", ttl=600)
    with store.transaction() as tx:  # our pid, but a different start time: a recycled pid
        tx.execute(
            "UPDATE locks SET process_start = process_start - 1000 WHERE name = ?", ("pipeline:p",)
        )
    assert "another process" in (store.locks.holder("pipeline:p").stale_reason() or "")
    far = datetime.now(UTC) + timedelta(hours=1)
    assert store.locks.holder("pipeline:p").stale_reason(far) is not None
    assert os.getpid() == store.locks.holder("pipeline:p").pid


def test_lease_heartbeats_and_releases(store: Store) -> None:
    with Lease(store, "load:x", ttl=1.5) as lease:
        time.sleep(1.0)
        lease.check()
        first = store.locks.holder("load:x").expires_at
        time.sleep(0.8)
        assert store.locks.holder("load:x").expires_at > first
        lease.check()
    assert store.locks.holder("load:x") is None


def test_process_start_agrees_with_psutil_and_a_zombie_is_gone() -> None:
    import psutil

    from onceflow.state.locks import process_start

    assert process_start(os.getpid()) == pytest.approx(psutil.Process().create_time(), abs=0.02)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert process_start(proc.pid) == pytest.approx(
            psutil.Process(proc.pid).create_time(), abs=0.02
        )
        proc.kill()
        deadline = time.monotonic() + 10  # killed, not yet reaped: a zombie holds no lock
        while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert process_start(proc.pid) is None
    finally:
        proc.kill()
        proc.wait()
    assert process_start(proc.pid) is None


def test_a_heartbeat_after_expiry_loses_the_lease_even_if_nobody_took_it(store: Store) -> None:
    # a holder paused past its lease must stop: a contender may have judged it stale
    token = store.locks.acquire("pipeline:p", ttl=0.05)
    time.sleep(0.1)
    assert not store.locks.heartbeat("pipeline:p", token)
    with pytest.raises(LockError, match="lost lock"):
        store.locks.check("pipeline:p", token)
    assert store.locks.acquire("pipeline:p") != token


def _lose_first_race(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first `try_acquire` loses a race (an insert or takeover beaten by another
    contender): it knows no holder. The calls after it are the real ones."""
    real = store.locks.try_acquire
    calls: list[str] = []

    def racing(name: str, *, ttl: float = 120.0) -> tuple[str | None, object]:
        calls.append(name)
        return (None, None) if len(calls) == 1 else real(name, ttl=ttl)

    monkeypatch.setattr(store.locks, "try_acquire", racing)


def test_a_refusal_after_a_lost_race_takes_the_lock_when_the_winner_is_gone(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It refused naming `another process`: the winner had released before it looked."""
    _lose_first_race(store, monkeypatch)
    token = store.locks.acquire("pipeline:p", timeout=0)
    assert store.locks.holds("pipeline:p", token)


def test_a_refusal_after_a_lost_race_names_the_winner(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.locks.acquire("pipeline:p", ttl=60)
    _lose_first_race(store, monkeypatch)
    with pytest.raises(LockError, match=rf"held by pid {os.getpid()} on "):
        store.locks.acquire("pipeline:p", timeout=0)


def test_a_wait_for_a_lock_is_logged_once_naming_the_holder(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    store.locks.acquire("pipeline:p", ttl=60)
    with caplog.at_level(logging.INFO, logger="onceflow.state.locks"), pytest.raises(LockError):
        store.locks.acquire("pipeline:p", timeout=0.3, poll=0.05)
    waits = [r.getMessage() for r in caplog.records if "waiting up to" in r.getMessage()]
    assert len(waits) == 1, waits
    assert waits[0].startswith(
        f"waiting up to 0.3 s for lock 'pipeline:p' held by pid {os.getpid()} on "
    )
    # no wait, no line
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="onceflow.state.locks"), pytest.raises(LockError):
        store.locks.acquire("pipeline:p", timeout=0)
    assert not [r for r in caplog.records if "waiting up to" in r.getMessage()]


def _failing_heartbeats(
    store: Store, monkeypatch: pytest.MonkeyPatch, error: Exception, *, renew: bool, times: int
) -> list[bool]:
    """The lease's next `times` heartbeats raise `error` (after renewing the lease when
    `renew`: the update committed, its reply lost); the calls, True for each failed one."""
    real = store.locks.heartbeat
    calls: list[bool] = []

    def beat(name: str, token: str, *, ttl: float = 120.0) -> bool:
        failing = len(calls) < times
        calls.append(failing)
        if not failing:
            return real(name, token, ttl=ttl)
        if renew:
            real(name, token, ttl=ttl)
        raise error

    monkeypatch.setattr(store.locks, "heartbeat", beat)
    return calls


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_failed_heartbeats_are_logged_once_redacted_and_their_recovery_too(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # they were swallowed without a word: a store cut off for a while left no trace
    cut = StateError("state: PostgreSQL store failed: server at postgresql://app:s3cret@db/x")
    calls = _failing_heartbeats(store, monkeypatch, cut, renew=True, times=3)
    with (
        caplog.at_level(logging.WARNING, logger="onceflow.state.lease"),
        Lease(store, "load:x", ttl=1.5) as lease,
    ):
        _wait_for(lambda: len(calls) >= 2)
        assert lease.failure is not None and "app:***@db" in lease.failure
        _wait_for(lambda: lease.failure is None)  # the fourth beat renewed it
        assert len(calls) >= 4
        lease.check()
    said = [r.getMessage() for r in caplog.records if r.name == "onceflow.state.lease"]
    assert len(said) == 2, said
    assert said[0].startswith("lock 'load:x': heartbeat failed, trying again every 0.5 s")
    assert said[0].endswith("server at postgresql://app:***@db/x") and "s3cret" not in said[0]
    assert said[1].startswith("lock 'load:x': heartbeat renewed the lease again, after 3 failed")


def test_a_lease_that_ran_out_while_heartbeats_failed_says_why_not_who(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # it said "now held by pid <this process>": its own expired row
    bug = RuntimeError("no such column: heartbeet_at")
    _failing_heartbeats(store, monkeypatch, bug, renew=False, times=1000)
    with (
        caplog.at_level(logging.WARNING, logger="onceflow.state.lease"),
        Lease(store, "load:x", ttl=1.5) as lease,
    ):
        _wait_for(lambda: store.locks.time_left("load:x", lease.token) == 0)
        with pytest.raises(LockError) as lost:
            lease.check()
    message = str(lost.value)
    assert re.fullmatch(
        r"lost lock 'load:x': its lease could not be renewed for \d+\.\d s: the last "
        r"heartbeat failed: RuntimeError: no such column: heartbeet_at; stopping",
        message,
    ), message
    failed = [r for r in caplog.records if "heartbeat failed" in r.getMessage()]
    assert len(failed) == 1  # one a streak, not one a beat


def test_a_lease_taken_over_after_failed_heartbeats_names_the_new_holder_and_the_cause(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    cut = StateError("state: PostgreSQL store failed: connection lost")
    _failing_heartbeats(store, monkeypatch, cut, renew=False, times=1000)
    with Lease(store, "load:x", ttl=1.5) as lease:
        _wait_for(lambda: store.locks.time_left("load:x", lease.token) == 0)
        successor = store.locks.acquire("load:x")
        with pytest.raises(LockError) as lost:
            lease.check()
    message = str(lost.value)
    assert message.startswith(
        "lost lock 'load:x' (lease expired or broken; the last heartbeat failed: state: "
        "PostgreSQL store failed: connection lost); it is now held by pid "
    ), message
    assert store.locks.holds("load:x", successor)


def test_a_lease_whose_row_was_removed_says_so_not_broken_by_another_process(
    store: Store,
) -> None:
    with Lease(store, "load:x", ttl=1.5) as lease:
        store.locks.force_release("load:x")  # force-unlock
        _wait_for(lambda: lease.lost)
        with pytest.raises(LockError) as lost:
            lease.check()
    message = str(lost.value)
    assert re.fullmatch(
        r"lost lock 'load:x': its lease could not be renewed for \d+\.\d s: its row was "
        r"removed \(force-unlock, or a contender that found it stale\); stopping",
        message,
    ), message


def test_a_check_of_an_expired_lease_without_failed_heartbeats_says_none_came_in_time(
    store: Store,
) -> None:
    token = store.locks.acquire("pipeline:p", ttl=0.05)
    time.sleep(0.1)
    with pytest.raises(LockError) as lost:
        store.locks.check("pipeline:p", token)
    message = str(lost.value)
    assert re.fullmatch(
        r"lost lock 'pipeline:p': its lease could not be renewed for \d+\.\d s: no heartbeat "
        r"in time \(was this process paused or starved\?\); stopping",
        message,
    ), message
