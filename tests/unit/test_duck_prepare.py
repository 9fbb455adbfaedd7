"""The in-process DuckDB database can start on a thread before the first cursor wants it."""

from __future__ import annotations

import contextlib
import threading

import duckdb
import pytest

from onceflow.warehouse import duck as duck_module


@pytest.fixture
def no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(duck_module, "_database", None)


def _wait_for_prepare() -> None:
    for thread in threading.enumerate():
        if thread.name == "onceflow-duckdb":
            thread.join(10)


def test_a_prepared_database_is_the_one_cursors_use(no_database):
    duck_module.prepare()
    _wait_for_prepare()
    prepared = duck_module._database
    assert prepared is not None
    with duck_module.duck() as con:
        assert con.execute("SELECT current_setting('TimeZone')").fetchone() == ("UTC",)
    assert duck_module._database is prepared
    duck_module.prepare()  # nothing more to start
    assert not any(t.name == "onceflow-duckdb" for t in threading.enumerate())


def test_a_cursor_asked_for_at_once_waits_for_the_database_or_makes_it(no_database):
    duck_module.prepare()
    with duck_module.duck() as con:  # whichever thread connected, there is one database
        assert con.execute("SELECT 41 + 1").fetchone() == (42,)
    _wait_for_prepare()
    first = duck_module._database
    with duck_module.duck():
        assert duck_module._database is first


def test_a_failed_start_leaves_the_connect_and_its_error_to_the_cursor(no_database, monkeypatch):
    calls: list[int] = []

    def failing_connect(*args: object, **kwargs: object) -> None:
        calls.append(1)
        raise duckdb.IOException("no memory for a database")

    monkeypatch.setattr(duckdb, "connect", failing_connect)
    duck_module.prepare()
    _wait_for_prepare()
    assert duck_module._database is None
    with pytest.raises(duckdb.IOException, match="no memory"), contextlib.ExitStack() as stack:
        stack.enter_context(duck_module.duck())  # the cursor's own connect raises
    assert len(calls) == 2
