"""A SQLite state store SQLite cannot write says why: a full disk, a read-only mount,
no permission; its own words ("disk I/O error", "unable to open database file") do not."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

import onceflow.state.sqlite as sqlite_store
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
