"""The SQLite state store on a disk of its own that fills up: the command says the disk is
full, with its fix, and what was committed stays (a real tmpfs; root only, else skipped)."""

from __future__ import annotations

from pathlib import Path

import pytest

from onceflow.errors import StateError
from onceflow.state import open_store
from tests.helpers.mounts import fill, tmpfs


def test_a_disk_that_fills_at_commit_is_named_and_the_committed_runs_stay(tmp_path: Path):
    with tmpfs(tmp_path / "disk", "1m") as disk:
        url = f"sqlite:///{disk / 'state.db'}"
        with open_store(url) as store:
            store.runs.begin("r1", "p", "2025-01-23", ("a", "b"))
        filler = fill(disk, leave=40 * 1024)
        with open_store(url) as store:
            # ~200 KB stays in SQLite's page cache until COMMIT writes it to the WAL,
            # which finds the disk full; SQLite has rolled back by then
            with pytest.raises(StateError) as caught:
                store.runs.begin("r2", "p", "2025-01-24", ("a" * 200_000, "b"))
            message = str(caught.value)
            assert message.startswith(f"state: cannot commit to the SQLite store {disk}")
            assert "database or disk is full: the disk holding it is full (" in message
            assert "KiB free); free space there, then run the command again" in message
            filler.unlink()
            assert [r.run_id for r in store.runs.find()] == ["r1"]
            store.runs.begin("r3", "p", "2025-01-25", ("a", "b"))
        with open_store(url) as store:
            assert {r.run_id for r in store.runs.find()} == {"r1", "r3"}
