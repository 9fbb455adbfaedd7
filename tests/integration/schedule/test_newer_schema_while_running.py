"""A worker or scheduler of this onceflow that is running when a newer onceflow migrates
the store stops, with the permanent "newer than this onceflow understands" error, instead
of writing on into a schema it does not know (the refusal at start alone missed it)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from onceflow.config import Config
from onceflow.errors import StateError
from onceflow.schedule import Scheduler, Worker
from onceflow.schedule import scheduler as scheduler_module
from onceflow.schedule import worker as worker_module
from onceflow.state import Store
from onceflow.state.migrations import LATEST_VERSION

NOW = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
NEWER = "newer than this onceflow understands"


def nightly() -> dict[str, object]:
    return {"name": "nightly", "cron": "0 2 * * *", "start": "2025-01-05T00:00:00+00:00"}


def migrate_to_a_newer_schema(store: Store) -> None:
    """What a newer onceflow's migration leaves: a higher version in onceflow_schema."""
    with store.transaction() as tx:
        tx.execute("INSERT INTO onceflow_schema (version) VALUES (?)", (LATEST_VERSION + 1,))


def test_the_store_says_when_its_schema_became_newer(store: Store) -> None:
    store.refuse_newer_schema()  # this onceflow's schema: nothing to say
    migrate_to_a_newer_schema(store)
    with pytest.raises(StateError, match=NEWER) as raised:
        store.refuse_newer_schema()
    assert raised.value.permanent


def test_a_running_worker_stops_once_a_newer_onceflow_migrated_the_store(
    store: Store, project: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "SCHEMA_CHECK_SECONDS", 0.2)
    config = project(schedules=[nightly()])
    worker = Worker([config], store, poll_seconds=0.05)
    stop = threading.Event()
    raised: list[BaseException] = []

    def work() -> None:
        try:
            worker.run(stop)
        except BaseException as error:
            raised.append(error)
        finally:
            store.close()  # this thread's connection and listener

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        thread.join(0.5)
        assert thread.is_alive() and not raised  # this onceflow's schema: it works on
        migrate_to_a_newer_schema(store)
        thread.join(10)
    finally:
        stop.set()
        thread.join(10)
    assert len(raised) == 1 and isinstance(raised[0], StateError)
    assert NEWER in str(raised[0]) and raised[0].permanent


def test_a_running_scheduler_stops_once_a_newer_onceflow_migrated_the_store(
    store: Store, project: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler_module, "SCHEMA_CHECK_SECONDS", 0.0)
    config = project(schedules=[nightly()])
    scheduler = Scheduler([config], store)
    scheduler.run_once(NOW)  # this onceflow's schema: a pass as usual
    migrate_to_a_newer_schema(store)
    with pytest.raises(StateError, match=NEWER):
        scheduler.run_forever(threading.Event(), interval=0.01, max_passes=3)


def test_up_stops_once_a_newer_onceflow_migrated_the_store(
    store: Store, project: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    from onceflow.schedule import up

    monkeypatch.setattr(scheduler_module, "SCHEMA_CHECK_SECONDS", 0.0)
    monkeypatch.setattr(worker_module, "SCHEMA_CHECK_SECONDS", 0.0)
    config = project(schedules=[nightly()])
    stop = threading.Event()
    threading.Timer(0.5, migrate_to_a_newer_schema, args=(store,)).start()
    with pytest.raises(StateError, match=NEWER):
        up([config], interval=0.1, stop=stop, store=store)
