"""A re-extraction over a committed file: the commit stands until the new file is whole,
and a re-extraction that reads the same bytes leaves the commit as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from onceflow.extract import extract
from onceflow.lake import sidecar_path
from tests.helpers.extract import make_config, result

DAY = "2025-01-23"
TABLES = [{"source": "s", "table": "orders", "extract": {"mode": "full"}}]


def _source(path: Path, rows: int = 3) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE IF EXISTS orders")
        conn.execute("CREATE TABLE orders (id INTEGER, amount REAL)")
        conn.executemany("INSERT INTO orders VALUES (?, ?)", [(i, i * 1.5) for i in range(rows)])
    conn.close()
    return f"sqlite:///{path}"


def _committed(tmp_path: Path, url: str) -> tuple[object, Path, bytes, bytes]:
    config = make_config(tmp_path, {"s": url}, TABLES)
    first = result(extract(config, DAY), "s.orders")
    assert first.action == "extracted", first.error
    data = Path(first.file_path)
    return config, data, data.read_bytes(), sidecar_path(data).read_bytes()


def test_a_forced_reextraction_whose_source_is_gone_leaves_the_commit_intact(tmp_path):
    db = tmp_path / "src.db"
    config, data, content, sidecar = _committed(tmp_path, _source(db))
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE orders")
    conn.close()

    again = result(extract(config, DAY, force_reprocess=True), "s.orders")

    assert again.action == "failed" and "orders" in (again.error or "")
    assert data.read_bytes() == content
    assert sidecar_path(data).read_bytes() == sidecar
    assert sorted(p.name for p in data.parent.iterdir()) == [
        data.name,
        sidecar_path(data).name,
    ]


@pytest.mark.mysql
def test_a_forced_reextraction_with_a_wrong_password_leaves_the_commit_intact(
    tmp_path, mysql_admin, mysql_db
):
    name = mysql_db.rsplit("/", 1)[1]
    with mysql_admin.cursor() as cur:
        cur.execute(f"CREATE TABLE `{name}`.orders (id int, amount double)")
        cur.execute(f"INSERT INTO `{name}`.orders VALUES (1, 1.5), (2, 3.0)")
    _config, data, content, sidecar = _committed(tmp_path, mysql_db)
    bad = make_config(
        tmp_path,
        {"s": mysql_db.replace("root@", "root:not-the-password@")},
        TABLES,
    )

    again = result(extract(bad, DAY, force_reprocess=True), "s.orders")

    assert again.action == "failed"
    assert data.read_bytes() == content
    assert sidecar_path(data).read_bytes() == sidecar


def test_an_unchanged_reextraction_keeps_the_commit_and_its_snapshot_instant(tmp_path):
    config, data, content, sidecar = _committed(tmp_path, _source(tmp_path / "src.db"))

    again = result(extract(config, DAY, force_reprocess=True), "s.orders")

    assert again.action == "extracted", again.error
    assert "whose commit stands" in (again.reason or "")
    assert data.read_bytes() == content
    # the sidecar, snapshot_at included, is the one the table was loaded with
    assert sidecar_path(data).read_bytes() == sidecar
    assert sorted(p.name for p in data.parent.iterdir()) == [
        data.name,
        sidecar_path(data).name,
    ]


def test_an_unchanged_reextraction_repairs_a_file_damaged_in_place(tmp_path):
    config, data, content, sidecar = _committed(tmp_path, _source(tmp_path / "src.db"))
    damaged = bytearray(content)
    damaged[len(damaged) // 2] ^= 0xFF
    data.write_bytes(bytes(damaged))

    again = result(extract(config, DAY, verify="deep"), "s.orders")

    assert (again.action, again.error) == ("extracted", None)
    assert data.read_bytes() == content
    assert sidecar_path(data).read_bytes() == sidecar


def test_a_changed_reextraction_replaces_the_file_and_its_commit(tmp_path):
    import json

    db = tmp_path / "src.db"
    config, data, content, sidecar = _committed(tmp_path, _source(db))
    _source(db, rows=5)

    again = result(extract(config, DAY, force_reprocess=True), "s.orders")

    assert (again.action, again.reason, again.record_count) == ("extracted", "forced", 5)
    old, new = json.loads(sidecar), json.loads(sidecar_path(data).read_bytes())
    assert new["checksum"] == again.checksum != old["checksum"]
    assert new["snapshot_at"] > old["snapshot_at"]
    assert data.read_bytes() != content
