"""A lease is checked with time to spare, and an expired one is never revived (SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from onceflow.errors import LockError
from onceflow.state import Lease, Store, open_store


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        yield store


def _expire_in(store: Store, name: str, seconds: float) -> None:
    when = (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()
    with store.transaction() as tx:
        tx.execute("UPDATE locks SET expires_at = ? WHERE name = ?", (when, name))


def test_a_heartbeat_does_not_revive_an_expired_lease_nobody_took(sqlite_store: Store) -> None:
    token = sqlite_store.locks.acquire("pipeline:p", ttl=60)
    _expire_in(sqlite_store, "pipeline:p", -1)
    assert not sqlite_store.locks.heartbeat("pipeline:p", token, ttl=60)
    with pytest.raises(LockError, match="lost lock"):
        sqlite_store.locks.check("pipeline:p", token)
    assert sqlite_store.locks.acquire("pipeline:p") != token  # free for a successor


def test_a_heartbeat_extends_a_live_lease(sqlite_store: Store) -> None:
    token = sqlite_store.locks.acquire("pipeline:p", ttl=60)
    _expire_in(sqlite_store, "pipeline:p", 5)
    assert sqlite_store.locks.heartbeat("pipeline:p", token, ttl=60)
    assert sqlite_store.locks.time_left("pipeline:p", token) > 55


def test_a_check_renews_a_lease_with_less_than_half_its_ttl_left(sqlite_store: Store) -> None:
    with Lease(sqlite_store, "pipeline:p", ttl=60) as lease:
        _expire_in(sqlite_store, "pipeline:p", 20)  # the heartbeat fell behind
        lease.check()
        assert sqlite_store.locks.time_left("pipeline:p", lease.token) > 55


def test_a_check_leaves_a_lease_with_more_than_half_its_ttl_left(sqlite_store: Store) -> None:
    with Lease(sqlite_store, "pipeline:p", ttl=60) as lease:
        _expire_in(sqlite_store, "pipeline:p", 40)
        before = sqlite_store.locks.holder("pipeline:p")
        lease.check()
        assert sqlite_store.locks.holder("pipeline:p") == before


def test_a_check_of_an_expired_lease_raises_and_does_not_renew_it(sqlite_store: Store) -> None:
    with Lease(sqlite_store, "pipeline:p", ttl=60) as lease:
        _expire_in(sqlite_store, "pipeline:p", -0.5)  # paused past its expiry
        with pytest.raises(LockError, match="lost lock 'pipeline:p'"):
            lease.check()
        assert lease.lost
        assert sqlite_store.locks.time_left("pipeline:p", lease.token) == 0
    # a lost lease is not released on exit (it may be a successor's): it is taken over
    assert sqlite_store.locks.holder("pipeline:p") is not None
