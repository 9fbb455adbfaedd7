"""A SQLite state store SQLite cannot write says why: a full disk, a read-only mount,
no permission; its own words ("disk I/O error", "unable to open database file") do not."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

import onceflow.state.sqlite as sqlite_store
from onceflow.errors import StateError
from onceflow.state import open_store
from onceflow.state.sqlite import SqliteDatabase


def _db(tmp_path: Path) -> SqliteDatabase:
    return SqliteDatabase(f"sqlite:///{tmp_path / 'state.db'}")


def test_a_full_disk_under_the_store_is_named_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        sqlite_store.shutil, "disk_usage", lambda _p: SimpleNamespace(free=2048, total=1, used=1)
    )
    text = _db(tmp_path)._problem("cannot open", sqlite3.OperationalError("disk I/O error"))
    assert text.endswith(
        "disk I/O error: the disk holding it is full (2 KiB free); free space there, then "
        "run the command again (nothing was half-written: SQLite rolls the transaction back)"
    )


def test_a_read_only_store_folder_is_named_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.statvfs

    def read_only(path: str | os.PathLike[str]) -> object:
        found = real(path)
        fields = {n: getattr(found, n) for n in dir(found) if n.startswith("f_")}
        return SimpleNamespace(**{**fields, "f_flag": found.f_flag | os.ST_RDONLY})

    monkeypatch.setattr(sqlite_store.os, "statvfs", read_only)
    error = sqlite3.OperationalError("attempt to write a readonly database")
    text = _db(tmp_path)._problem("cannot use", error)
    assert f"its folder {tmp_path} is on a read-only file system; mount it read-write" in text
    assert "point `state:` at a writable place" in text


def test_another_sqlite_error_gets_no_made_up_cause(tmp_path: Path) -> None:
    text = _db(tmp_path)._problem("cannot use", sqlite3.OperationalError("no such table: x"))
    assert text.endswith("no such table: x")


def test_a_full_store_says_so_and_keeps_what_was_committed(tmp_path: Path) -> None:
    # `max_page_count` gives SQLite's own SQLITE_FULL ("database or disk is full"), after
    # which SQLite has rolled the whole transaction back, as on a full disk: a second
    # ROLLBACK then raised "no transaction is active" in place of the real error.
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    store.runs.begin("r1", "p", "2025-01-23", ("a", "b"))
    conn = store.db.connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StateError) as caught:
        store.runs.begin("r2", "p", "2025-01-24", ("a" * 200_000, "b"))
    assert "database or disk is full: the disk holding it is full" in str(caught.value)
    assert not conn.in_transaction

    conn.execute(f"PRAGMA max_page_count = {pages * 1000}")
    assert [r.run_id for r in store.runs.find()] == ["r1"]
    store.runs.begin("r3", "p", "2025-01-25", ("a", "b"))
    assert {r.run_id for r in store.runs.find()} == {"r1", "r3"}


def test_a_failure_after_sqlite_rolled_back_surfaces_unchanged(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with pytest.raises(RuntimeError, match="the real failure"), db.transaction() as tx:
        tx.execute("ROLLBACK")  # what SQLite does by itself on SQLITE_FULL or an I/O error
        raise RuntimeError("the real failure")
    with db.transaction() as tx:
        assert tx.execute("SELECT 1 AS one").fetchone() == {"one": 1}
