"""Lease locks' contract, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from onceflow.errors import LockError, StateError
from onceflow.state import Lease, Store, open_store
from tests.helpers.state import in_thread


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


# --- try_acquire, time_left, release_if_unchanged: the lease verbs themselves -------------


def _set(store: Store, name: str, **columns: object) -> None:
    """Rewrite a lock row's columns, as another holder (or time) would have left them."""
    sets = ", ".join(f"{column} = ?" for column in columns)
    with store.transaction() as tx:
        tx.execute(f"UPDATE locks SET {sets} WHERE name = ?", (*columns.values(), name))


def _ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


def test_try_acquire_takes_a_free_lock_as_this_process_with_utc_times(store: Store) -> None:
    from onceflow.state.locks import boot_id, host_name, process_start

    token, holder = store.locks.try_acquire("pipeline:p", ttl=60)
    assert token is not None and holder is None
    row = store.locks.holder("pipeline:p")
    assert row is not None and row.token == token
    assert (row.pid, row.host, row.boot_id) == (os.getpid(), host_name(), boot_id())
    assert row.process_start == pytest.approx(process_start(os.getpid()), abs=0.01)
    times = [datetime.fromisoformat(t) for t in (row.acquired_at, row.heartbeat_at, row.expires_at)]
    assert all(t.utcoffset() == timedelta(0) for t in times)
    assert times[0] == times[1] and times[2] - times[0] == timedelta(seconds=60)
    # another name is another lock
    assert store.locks.try_acquire("pipeline:q")[0] not in (None, token)


def test_try_acquire_refuses_a_live_lease_naming_its_holder_and_changes_nothing(
    store: Store,
) -> None:
    token, _ = store.locks.try_acquire("pipeline:p", ttl=60)
    before = store.locks.holder("pipeline:p")
    assert store.locks.try_acquire("pipeline:p") == (None, before)
    assert store.locks.holder("pipeline:p") == before and store.locks.holds("pipeline:p", token)


def test_try_acquire_takes_over_an_expired_lease_and_fences_its_old_holder(store: Store) -> None:
    old, _ = store.locks.try_acquire("pipeline:p", ttl=60)
    _set(store, "pipeline:p", expires_at=_ago(1))
    new, holder = store.locks.try_acquire("pipeline:p", ttl=60)
    assert new is not None and new != old and holder is None
    assert store.locks.holds("pipeline:p", new) and not store.locks.holds("pipeline:p", old)
    assert not store.locks.heartbeat("pipeline:p", old)
    assert not store.locks.release("pipeline:p", old)


def test_a_live_lease_of_another_host_is_refused_whatever_its_pid_until_it_expires(
    store: Store,
) -> None:
    # its pid means nothing here: only its lease can say that it is gone
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    store.locks.try_acquire("pipeline:p", ttl=60)
    _set(store, "pipeline:p", host="elsewhere.invalid", pid=proc.pid, boot_id="other-boot")
    token, holder = store.locks.try_acquire("pipeline:p")
    assert token is None and holder is not None and holder.host == "elsewhere.invalid"
    _set(store, "pipeline:p", expires_at=_ago(1))
    token, holder = store.locks.try_acquire("pipeline:p")
    assert token is not None and holder is None
    assert store.locks.holder("pipeline:p").host != "elsewhere.invalid"


def test_a_live_lease_taken_before_this_host_rebooted_is_taken_over(store: Store) -> None:
    from onceflow.state.locks import boot_id

    if boot_id() is None:
        pytest.skip("this machine has no boot id")
    old, _ = store.locks.try_acquire("pipeline:p", ttl=60)
    _set(store, "pipeline:p", boot_id="a-boot-before-this-one")
    new, holder = store.locks.try_acquire("pipeline:p")
    assert new is not None and new != old and holder is None


def test_a_lease_is_judged_by_its_instant_whatever_offset_it_was_written_in(
    store: Store,
) -> None:
    # written as text: an instant in -10:00 sorts before now in UTC, one in +10:00 after
    token, _ = store.locks.try_acquire("pipeline:p", ttl=60)
    west, east = timezone(timedelta(hours=-10)), timezone(timedelta(hours=10))
    live = (datetime.now(UTC) + timedelta(seconds=30)).astimezone(west).isoformat()
    _set(store, "pipeline:p", expires_at=live)
    refused, holder = store.locks.try_acquire("pipeline:p")
    assert refused is None and holder is not None and holder.expires_at == live
    assert 25 < store.locks.time_left("pipeline:p", token or "") <= 30
    expired = (datetime.now(UTC) - timedelta(seconds=1)).astimezone(east).isoformat()
    _set(store, "pipeline:p", expires_at=expired)
    assert store.locks.time_left("pipeline:p", token or "") == 0
    new, holder = store.locks.try_acquire("pipeline:p")
    assert new is not None and holder is None


def test_time_left_is_the_rest_of_our_own_live_lease_and_zero_otherwise(store: Store) -> None:
    token = store.locks.acquire("pipeline:p", ttl=60)
    assert 55 < store.locks.time_left("pipeline:p", token) <= 60
    assert store.locks.time_left("pipeline:p", "not-our-token") == 0
    assert store.locks.time_left("pipeline:q", token) == 0  # no such lock
    assert store.locks.heartbeat("pipeline:p", token, ttl=600)
    assert 595 < store.locks.time_left("pipeline:p", token) <= 600
    _set(store, "pipeline:p", expires_at=_ago(1))
    assert store.locks.time_left("pipeline:p", token) == 0  # expired, though still its row
    store.locks.force_release("pipeline:p")
    assert store.locks.time_left("pipeline:p", token) == 0


def test_release_if_unchanged_deletes_exactly_the_lease_judged_stale(store: Store) -> None:
    store.locks.try_acquire("pipeline:p", ttl=60)
    _set(store, "pipeline:p", expires_at=_ago(1))
    stale = store.locks.holder("pipeline:p")
    assert stale is not None and stale.stale_reason() is not None
    # the same lock with another token, or another expiry, is not the one judged
    assert not store.locks.release_if_unchanged(replace(stale, token="another-token"))
    assert not store.locks.release_if_unchanged(replace(stale, expires_at=_ago(2)))
    assert store.locks.holder("pipeline:p") == stale
    assert store.locks.release_if_unchanged(stale)
    assert store.locks.holder("pipeline:p") is None
    assert not store.locks.release_if_unchanged(stale)  # nothing left to release


def test_release_if_unchanged_keeps_a_lease_its_holder_heartbeat_since(store: Store) -> None:
    token = store.locks.acquire("pipeline:p", ttl=60)
    seen = store.locks.holder("pipeline:p")
    assert seen is not None
    assert store.locks.heartbeat("pipeline:p", token, ttl=60)
    assert not store.locks.release_if_unchanged(seen)
    assert store.locks.holds("pipeline:p", token)


def test_release_if_unchanged_after_a_takeover_releases_nothing(store: Store) -> None:
    store.locks.try_acquire("pipeline:p", ttl=60)
    _set(store, "pipeline:p", expires_at=_ago(1))
    stale = store.locks.holder("pipeline:p")
    assert stale is not None
    new, _ = store.locks.try_acquire("pipeline:p", ttl=60)
    assert new is not None
    assert not store.locks.release_if_unchanged(stale)
    assert store.locks.holds("pipeline:p", new)


# --- contenders on two connections at once ------------------------------------------------


class _RollBack(Exception):
    """Ends a contender's transaction with a rollback."""


@contextmanager
def _contender(
    store: Store, sql: str, params: Sequence[object], *, commit: bool = True
) -> Iterator[int | None]:
    """Another contender's transaction on a connection of its own, that ran `sql` and is
    kept open for the block, then committed (or rolled back); yields its PostgreSQL
    backend pid (None on SQLite)."""
    other = open_store(store.url)
    try:
        with contextlib.suppress(_RollBack), other.transaction() as tx:
            tx.execute(sql, params)
            row = None
            if store.backend == "postgresql":
                row = tx.execute("SELECT pg_backend_pid() AS pid").fetchone()
            yield None if row is None else int(row["pid"])
            if not commit:
                raise _RollBack
    finally:
        other.close()


def _wait_until_blocked(
    request: pytest.FixtureRequest, thread: threading.Thread, blocker: int | None
) -> None:
    """Return once `thread` waits for the contender: on PostgreSQL, for the row or key the
    contender's transaction holds (pg_blocking_pids); on SQLite, for its write lock, where
    there is nothing to watch but that it has not finished."""
    if blocker is None:
        time.sleep(0.1)
        assert thread.is_alive(), "it did not wait for the contender's write lock"
        return
    admin = request.getfixturevalue("pg_admin")
    deadline = time.monotonic() + 10
    while not admin.execute(
        "SELECT 1 FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", (blocker,)
    ).fetchone():
        assert thread.is_alive(), "it finished without waiting for the contender"
        assert time.monotonic() < deadline, "it never waited for the contender"
        time.sleep(0.005)


def _live_row(name: str, token: str) -> tuple[object, ...]:
    """A lock row's values for a live holder: this process, a lease of a minute."""
    from onceflow.state.locks import boot_id, host_name, process_start

    now = datetime.now(UTC)
    return (
        name,
        token,
        os.getpid(),
        host_name(),
        boot_id(),
        process_start(os.getpid()),
        now.isoformat(),
        now.isoformat(),
        (now + timedelta(seconds=60)).isoformat(),
    )


_INSERT = (
    "INSERT INTO locks (name, token, pid, host, boot_id, process_start, acquired_at, "
    "heartbeat_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_TAKEOVER = (
    "UPDATE locks SET token = ?, expires_at = ? WHERE name = ? AND token = ? AND expires_at = ?"
)


@pytest.mark.parametrize("state", ["free", "stale"])
def test_racing_try_acquires_have_exactly_one_winner(store: Store, state: str) -> None:
    names = [f"pipeline:{i}" for i in range(15)]
    if state == "stale":
        for name in names:
            store.locks.try_acquire(name, ttl=60)
            _set(store, name, expires_at=_ago(1))
    barrier = threading.Barrier(4)
    tokens: dict[str, list[str]] = {name: [] for name in names}

    def contend() -> None:
        try:
            for name in names:
                barrier.wait(timeout=10)
                token, _ = store.locks.try_acquire(name, ttl=60)
                if token is not None:
                    tokens[name].append(token)
        finally:
            store.close()

    threads = [threading.Thread(target=contend) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert {name: len(won) for name, won in tokens.items()} == dict.fromkeys(names, 1)
    assert all(store.locks.holds(name, won[0]) for name, won in tokens.items())


@pytest.mark.parametrize("commit", [True, False], ids=["committed", "rolled-back"])
def test_a_try_acquire_waiting_on_a_contenders_insert_wins_only_if_it_rolls_back(
    store: Store, request: pytest.FixtureRequest, commit: bool
) -> None:
    with _contender(store, _INSERT, _live_row("pipeline:p", "theirs"), commit=commit) as pid:
        thread, out = in_thread(store, lambda: store.locks.try_acquire("pipeline:p"))
        _wait_until_blocked(request, thread, pid)
    thread.join(timeout=10)
    ((token, holder),) = out  # type: ignore[misc]
    if not commit:
        assert token is not None and holder is None
        assert store.locks.holds("pipeline:p", token)
        return
    assert token is None
    # PostgreSQL: its insert found the row only on conflict, so it knows no holder
    # (`acquire` looks again); SQLite: it read the row after the contender's commit
    assert holder is None if store.backend == "postgresql" else holder.token == "theirs"
    assert store.locks.holder("pipeline:p").token == "theirs"


def test_a_takeover_waiting_on_a_contenders_takeover_loses_to_it(
    store: Store, request: pytest.FixtureRequest
) -> None:
    store.locks.try_acquire("pipeline:p", ttl=60)
    _set(store, "pipeline:p", expires_at=_ago(1))
    stale = store.locks.holder("pipeline:p")
    assert stale is not None
    later = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    params = ("theirs", later, "pipeline:p", stale.token, stale.expires_at)
    with _contender(store, _TAKEOVER, params) as pid:
        thread, out = in_thread(store, lambda: store.locks.try_acquire("pipeline:p"))
        _wait_until_blocked(request, thread, pid)
    thread.join(timeout=10)
    ((token, holder),) = out  # type: ignore[misc]
    assert token is None
    assert holder is None if store.backend == "postgresql" else holder.token == "theirs"
    assert store.locks.holder("pipeline:p").token == "theirs"


def test_release_if_unchanged_waiting_on_a_takeover_releases_nothing(
    store: Store, request: pytest.FixtureRequest
) -> None:
    store.locks.try_acquire("pipeline:p", ttl=60)
    _set(store, "pipeline:p", expires_at=_ago(1))
    stale = store.locks.holder("pipeline:p")
    assert stale is not None
    later = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    params = ("theirs", later, "pipeline:p", stale.token, stale.expires_at)
    with _contender(store, _TAKEOVER, params) as pid:
        thread, out = in_thread(store, lambda: store.locks.release_if_unchanged(stale))
        _wait_until_blocked(request, thread, pid)
    thread.join(timeout=10)
    assert out == [False]
    assert store.locks.holder("pipeline:p").token == "theirs"


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
