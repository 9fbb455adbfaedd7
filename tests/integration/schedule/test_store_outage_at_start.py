"""A worker or scheduler started while its PostgreSQL store cannot be reached waits for
it, as its running loop waits out a later outage, instead of exiting 1: the store's
port is closed at start-up and opens (a forwarder to the real server) two seconds later."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from onceflow.errors import StateError
from onceflow.schedule import Scheduler, Worker
from onceflow.schedule import worker as worker_module
from onceflow.state import open_store
from tests.helpers.netns import Forwarder
from tests.helpers.schedule import project_config
from tests.helpers.servers import PG_BASE, pg_state_url, unique

NOW = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
NIGHTLY = {"name": "nightly", "cron": "0 2 * * *", "start": "2025-01-05T00:00:00+00:00"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def schema(pg_admin: object) -> Iterator[str]:
    """A migrated store's schema on the real server."""
    name = unique("of_late")
    pg_admin.execute(f'CREATE SCHEMA "{name}"')  # type: ignore[attr-defined]
    open_store(pg_state_url(name)).close()
    yield name
    pg_admin.execute(f'DROP SCHEMA "{name}" CASCADE')  # type: ignore[attr-defined]


@pytest.fixture
def late_port() -> Iterator[tuple[int, Forwarder]]:
    """A port nothing listens on, that forwards to PostgreSQL two seconds from now."""
    port, forwarder = free_port(), Forwarder()
    opens = threading.Timer(2.0, forwarder.listen, args=("127.0.0.1", port))
    opens.start()
    yield port, forwarder
    opens.cancel()
    forwarder.close()


def through(port: int, schema: str) -> str:
    return pg_state_url(schema).replace("127.0.0.1:5432", f"127.0.0.1:{port}", 1)


def test_a_worker_started_before_its_store_is_reachable_waits_and_runs_the_queue(
    schema: str,
    late_port: tuple[int, Forwarder],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert "127.0.0.1:5432" in PG_BASE
    port, _ = late_port
    config = project_config(tmp_path / "project", through(port, schema), schedules=[NIGHTLY])
    with open_store(pg_state_url(schema)) as direct:
        Scheduler([config], direct).run_once(NOW)
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    report = Worker([config], poll_seconds=0.2).run(until_idle=True)
    assert report.completed == 1 and report.lost == 0
    assert time.monotonic() - started >= 1.5  # it did wait for the port
    assert "cannot claim: state: cannot connect to PostgreSQL store" in caplog.text


def test_a_scheduler_started_before_its_store_is_reachable_retries_its_pass(
    schema: str,
    late_port: tuple[int, Forwarder],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, _ = late_port
    config = project_config(tmp_path / "project", through(port, schema), schedules=[NIGHTLY])
    caplog.set_level(logging.ERROR)
    stop = threading.Event()
    scheduler = Scheduler([config])  # opens nothing yet
    passes = threading.Thread(target=scheduler.run_forever, args=(stop,), kwargs={"interval": 0.3})
    passes.start()
    try:
        with open_store(pg_state_url(schema)) as direct:
            deadline = time.monotonic() + 30
            while not direct.scheduled_runs.find() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert direct.scheduled_runs.find(), "no tick recorded once the store was back"
    finally:
        stop.set()
        passes.join(timeout=30)
    assert "scheduler pass failed (state: cannot connect to PostgreSQL store" in caplog.text


def test_a_worker_until_idle_whose_store_never_comes_gives_up_after_the_outage_budget(
    schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "OUTAGE_SECONDS", 1.0)
    config = project_config(tmp_path / "project", through(free_port(), schema), schedules=[NIGHTLY])
    started = time.monotonic()
    with pytest.raises(StateError, match="cannot connect"):
        Worker([config], poll_seconds=0.1).run(until_idle=True)
    assert 1.0 <= time.monotonic() - started < 10


@pytest.mark.parametrize("wrong", ["database", "role"])
def test_a_worker_or_scheduler_whose_store_url_names_no_database_or_role_stops_at_once(
    tmp_path: Path, wrong: str
) -> None:
    """Waiting would not create them: a config to fix, said at start (exit 1 with one
    line), not retried every poll for ever like an outage."""
    from urllib.parse import urlsplit

    base = urlsplit(PG_BASE)
    if wrong == "database":
        url = base._replace(path=f"/{unique('of_nodb')}").geturl()
    else:
        url = base._replace(netloc=f"{unique('of_norole')}@{base.hostname}:{base.port}").geturl()
    config = project_config(tmp_path / "project", url, schedules=[NIGHTLY])
    started = time.monotonic()
    with pytest.raises(StateError, match="does not exist") as worker_stopped:
        Worker([config], poll_seconds=0.1).run()
    assert worker_stopped.value.permanent
    with pytest.raises(StateError, match="does not exist"):
        Scheduler([config]).run_forever(threading.Event(), interval=0.1)
    assert time.monotonic() - started < 10


def test_up_started_before_its_store_is_reachable_waits_for_it(
    schema: str, late_port: tuple[int, Forwarder], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As `scheduler` and `worker` do: it exited 1 when the store was away at start."""
    from onceflow.schedule import up

    port, _ = late_port
    config = project_config(tmp_path / "project", through(port, schema), schedules=[NIGHTLY])
    caplog.set_level(logging.WARNING)
    summary = up([config], until_idle=True, interval=0.3)
    assert "up: the state store is away" in caplog.text
    assert summary["worker"]["failed"] == 0


@pytest.mark.parametrize(
    "query",
    ["sslmode=bogus", "options=-cwork_mem%3Dlots", "options=-csearch_path%3Dof_no_such_schema"],
    ids=["bad-sslmode", "bad-setting", "missing-schema"],
)
def test_a_store_url_whose_settings_are_refused_stops_the_worker_at_once(
    tmp_path: Path, query: str
) -> None:
    """libpq or the server refuses the URL itself: a config to fix, not an outage (the
    worker waited for ever, `the state store is away`)."""
    url = f"{PG_BASE}?{query}"
    config = project_config(tmp_path / "project", url, schedules=[NIGHTLY])
    started = time.monotonic()
    with pytest.raises(StateError) as stopped:
        Worker([config], poll_seconds=0.1).run()
    assert stopped.value.permanent
    assert time.monotonic() - started < 10
