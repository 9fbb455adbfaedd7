"""A SQLite store opened for a command that only reads (`status`, `validate-consistency`)
writes nothing, waits for no writer, leaves no journal files, and is never upgraded where
it cannot be written. (Read-only mounts themselves: integration/state.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from onceflow.errors import StateError
from onceflow.state import open_store
from onceflow.state.migrations import LATEST_VERSION
from onceflow.state.sqlite import SqliteDatabase

WINDOW = ("2025-01-23T00:00:00+00:00", "2025-01-24T00:00:00+00:00")


def _store_with_a_run(path: Path) -> str:
    url = f"sqlite:///{path}"
    with open_store(url) as store:
        store.runs.begin("r", "p", "2025-01-23", WINDOW)
    return url


def test_a_read_only_store_leaves_the_file_as_it_was_and_no_journal(tmp_path: Path) -> None:
    url = _store_with_a_run(tmp_path / "state.db")
    before = (tmp_path / "state.db").read_bytes()
    with open_store(url, read_only=True) as reader:
        assert [r.run_id for r in reader.runs.find()] == ["r"]
        with pytest.raises(StateError, match="attempt to write a readonly database"):
            reader.runs.delete("r")
    assert (tmp_path / "state.db").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]


def test_a_reader_does_not_wait_for_a_writer(tmp_path: Path) -> None:
    url = _store_with_a_run(tmp_path / "state.db")
    writer = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM pipeline_runs")
    try:
        with open_store(url, read_only=True) as reader:
            # the snapshot before the writer's uncommitted delete, at once (a write
            # transaction would wait up to 60 s for the writer's lock)
            assert [r.run_id for r in reader.runs.find()] == ["r"]
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_missing_store_opened_read_only_where_it_can_be_written_starts_as_before(
    tmp_path: Path,
) -> None:
    with open_store(f"sqlite:///{tmp_path / 'state.db'}", read_only=True) as reader:
        assert reader.schema_version() == LATEST_VERSION
        assert reader.runs.find() == []


def test_an_older_store_that_cannot_be_written_is_not_upgraded_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with open_store(url, migrate=False) as old:
        old.migrate(target=LATEST_VERSION - 1)
    monkeypatch.setattr(
        SqliteDatabase,
        "unwritable",
        lambda self: f"its folder {tmp_path} is on a read-only file system",
    )
    with pytest.raises(StateError) as caught:
        open_store(url, read_only=True)
    assert str(caught.value) == (
        f"state: the state store has schema version {LATEST_VERSION - 1}, older than this "
        f"onceflow's ({LATEST_VERSION}), and cannot be upgraded: its folder {tmp_path} is on "
        "a read-only file system. Run a command that writes (`onceflow run`) once where it "
        "can be written, or read it with the onceflow that wrote it"
    )
    monkeypatch.undo()
    with open_store(url, migrate=False) as store:
        assert store.schema_version() == LATEST_VERSION - 1
