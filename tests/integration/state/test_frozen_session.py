"""A worker frozen (SIGSTOP, a swapped-out VM) or cut off in the middle of a transaction
on the shared PostgreSQL store: the server ends its session after a bounded idle time, so
the row locks it held stop blocking every other worker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from onceflow.errors import StateError
from onceflow.state import Store, open_store
from onceflow.state import postgres as pg_backend
from tests.helpers.servers import pg_state_url


@pytest.fixture
def url(pg_schema: str, monkeypatch: pytest.MonkeyPatch) -> str:
    # a second instead of a minute: the behaviour, not the value, is under test
    monkeypatch.setattr(pg_backend, "IDLE_IN_TRANSACTION_SECONDS", 1)
    return pg_state_url(pg_schema)


@pytest.fixture
def shared_store(url: str) -> Iterator[Store]:
    store = open_store(url)
    yield store
    store.close()


def test_every_session_bounds_idle_transactions_and_keeps_server_side_keepalives(
    shared_store: Store,
) -> None:
    with shared_store.transaction() as tx:
        rows = tx.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('idle_in_transaction_session_timeout', 'tcp_keepalives_idle', "
            "'tcp_keepalives_interval', 'tcp_keepalives_count')"
        ).fetchall()
    settings = {r["name"]: r["setting"] for r in rows}
    assert settings == {
        "idle_in_transaction_session_timeout": "1000",
        "tcp_keepalives_idle": "30",
        "tcp_keepalives_interval": "10",
        "tcp_keepalives_count": "3",
    }


def test_a_session_frozen_mid_transaction_is_ended_and_no_longer_blocks_others(
    shared_store: Store, url: str
) -> None:
    token = shared_store.locks.acquire("load:t", ttl=60)
    frozen = open_store(url)  # the worker that locks the row, then goes silent
    released: list[bool] = []
    other = threading.Thread(
        target=lambda: released.append(shared_store.locks.release("load:t", token))
    )
    started = time.monotonic()
    try:
        with (
            pytest.raises(StateError, match="idle-in-transaction timeout"),
            frozen.transaction() as tx,
        ):
            tx.execute("SELECT * FROM locks WHERE name = 'load:t' FOR UPDATE")
            other.start()
            other.join(timeout=20)
            assert not other.is_alive(), "the frozen session still blocks the others"
            # woken up, the frozen worker finds its session ended: a StateError, as for a
            # cut connection, which its write loops try again on a new one
            tx.execute("SELECT 1")
        assert released == [True]
        assert time.monotonic() - started < 15
        assert frozen.locks.holder("load:t") is None  # and it reconnects
    finally:
        if other.is_alive():
            other.join()
        frozen.close()
