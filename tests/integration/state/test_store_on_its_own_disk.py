"""The SQLite state store on a disk of its own (a real tmpfs; root only, else skipped): one
that fills up says the disk is full, with its fix, and what was committed stays; one
mounted read-only still serves the commands that only read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from onceflow.errors import StateError
from onceflow.state import open_store
from tests.helpers.cli import run_cli
from tests.helpers.mounts import fill, remount, tmpfs


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


def test_reading_commands_work_on_a_store_whose_folder_is_mounted_read_only(
    demo: Path, tmp_path: Path
):
    with tmpfs(tmp_path / "disk", "8m") as disk:
        config = demo / "onceflow.yml"
        config.write_text(
            config.read_text().replace(
                "state: sqlite:///.onceflow/state.db", f"state: sqlite:///{disk / 'state.db'}"
            )
        )
        assert run_cli("run", "--date", "2025-01-22", cwd=demo).returncode == 0
        before = json.loads(run_cli("status", "--json", cwd=demo).stdout)
        remount(disk, "ro")
        try:
            shown = run_cli("status", "--json", cwd=demo)
            assert shown.returncode == 0, shown.stderr
            assert json.loads(shown.stdout) == before
            checked = run_cli("validate-consistency", cwd=demo)
            assert checked.returncode == 0, checked.stderr
            assert run_cli("validate-windows", "--date", "2025-01-22", cwd=demo).returncode == 0
            for command in (("runs", "list"), ("schedule", "list")):
                listed = run_cli(*command, cwd=demo)
                assert listed.returncode == 0, (command, listed.stderr)
            refused = run_cli("run", "--date", "2025-01-23", cwd=demo)
            assert refused.returncode == 1
            assert f"its folder {disk} is on a read-only file system" in refused.stderr
            assert sorted(p.name for p in disk.iterdir()) == ["state.db"]
        finally:
            remount(disk, "rw")
        assert run_cli("run", "--date", "2025-01-23", cwd=demo).returncode == 0


def test_a_read_only_store_with_commits_only_in_its_journal_is_refused_not_read_stale(
    tmp_path: Path,
):
    with tmpfs(tmp_path / "disk", "8m") as disk:
        url = f"sqlite:///{disk / 'state.db'}"
        with open_store(url) as store:
            store.runs.begin("r1", "p", "2025-01-23", ("a", "b"))
            # what a process killed on a machine that then lost its -shm leaves: the run
            # committed in the -wal only
            conn = store.db.connection()
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            store.runs.begin("r2", "p", "2025-01-24", ("a", "b"))
            for suffix in ("", "-wal"):
                shutil.copy(f"{disk / 'state.db'}{suffix}", f"{disk / 'copy.db'}{suffix}")
        remount(disk, "ro")
        try:
            with pytest.raises(StateError) as caught:
                open_store(f"sqlite:///{disk / 'copy.db'}", read_only=True)
            assert "its journal copy.db-wal holds commits not yet in the file" in str(caught.value)
            assert "mount it read-write once" in str(caught.value)
        finally:
            remount(disk, "rw")
        with open_store(f"sqlite:///{disk / 'copy.db'}") as store:
            assert {r.run_id for r in store.runs.find()} == {"r1", "r2"}
