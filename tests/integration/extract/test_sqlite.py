"""Extraction from SQLite: declared types, windows on wall-time text, quoting, generic reader."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from tests.helpers.extract import read, result, run

SIMPLE = """
CREATE TABLE simple (id INTEGER PRIMARY KEY, qty INTEGER, price DECIMAL(12,2), name TEXT,
                     created TIMESTAMP, day DATE, score REAL, raw BLOB, flag BOOLEAN);
INSERT INTO simple VALUES
 (1, 10, 19.99, 'Ødegaard — 東京 🚀', '2025-01-23 00:00:00', '2025-01-23', 1.5, x'00ff', 1),
 (2, -3, 0.01, '', '2025-01-23 23:59:59.999999', '2025-01-23', -0.25, x'', 0),
 (3, NULL, NULL, NULL, '2025-01-24 00:00:00', NULL, NULL, NULL, NULL),
 (4, 9223372036854775807, 1234567890.12, 'x', '2025-01-22 23:59:59', '2025-01-22', 2.0,
  x'01', 1);
"""


def _database(tmp_path: Path, script: str = SIMPLE) -> str:
    path = tmp_path / "source.db"
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def test_declared_types_round_trip(tmp_path):
    url = _database(tmp_path)
    data = read(
        run(tmp_path, {"lite": url}, [{"source": "lite", "table": "simple"}]), "lite.simple"
    ).sort_by("id")
    assert data.schema == pa.schema(
        [
            ("id", pa.int64()),
            ("qty", pa.int64()),
            ("price", pa.decimal128(12, 2)),
            ("name", pa.string()),
            ("created", pa.timestamp("us")),
            ("day", pa.date32()),
            ("score", pa.float64()),
            ("raw", pa.binary()),
            ("flag", pa.bool_()),
        ]
    )
    rows = data.to_pylist()
    assert rows[0] == {
        "id": 1,
        "qty": 10,
        "price": Decimal("19.99"),
        "name": "Ødegaard — 東京 🚀",
        "created": datetime(2025, 1, 23),
        "day": datetime(2025, 1, 23).date(),
        "score": 1.5,
        "raw": b"\x00\xff",
        "flag": True,
    }
    assert rows[3]["qty"] == 9223372036854775807
    assert rows[3]["price"] == Decimal("1234567890.12")
    assert rows[1]["created"] == datetime(2025, 1, 23, 23, 59, 59, 999999)
    assert all(rows[2][k] is None for k in ("qty", "price", "name", "day", "score", "raw", "flag"))


@pytest.mark.parametrize("mode", ["full", "incremental"])
def test_sqlalchemy_reader_matches_native(tmp_path, mode):
    url = _database(tmp_path)
    extract_cfg = {"mode": "incremental", "cursor": "created"} if mode != "full" else {}
    summary = run(
        tmp_path,
        {"native": url, "generic": {"url": url, "reader": "sqlalchemy"}},
        [{"source": s, "table": "simple", "extract": extract_cfg} for s in ("native", "generic")],
        timezone="America/New_York",
    )
    native = read(summary, "native.simple").sort_by("id")
    generic = read(summary, "generic.simple").sort_by("id")
    assert generic.schema == native.schema
    assert generic.to_pylist() == native.to_pylist()
    assert native.column("id").to_pylist() == ([1, 2, 3, 4] if mode == "full" else [1, 2])


def test_window_boundaries_on_wall_time_text(tmp_path):
    url = _database(
        tmp_path,
        """
        CREATE TABLE events (id INTEGER, at TEXT);
        INSERT INTO events VALUES (1, '2025-03-09 00:00:00'), (2, '2025-03-08 23:59:59.999999'),
          (3, '2025-03-09 23:59:59.999999'), (4, '2025-03-10 00:00:00'),
          (5, '2025-03-09 02:30:00'), (6, '2025-03-09T12:00:00');
    """,
    )
    summary = run(
        tmp_path,
        {"lite": url},
        [
            {
                "source": "lite",
                "table": "events",
                "extract": {"mode": "incremental", "cursor": "at"},
            },
            {
                "source": "lite",
                "name": "marked",
                "query": "SELECT id FROM events WHERE at >= :window_start AND at < :window_end",
                "extract": {"mode": "incremental", "cursor": "at"},
            },
        ],
        date="2025-03-09",
        timezone="America/New_York",
    )
    assert sorted(read(summary, "lite.events").column("id").to_pylist()) == [1, 3, 5, 6]
    assert sorted(read(summary, "lite.marked").column("id").to_pylist()) == [1, 3, 5, 6]


def test_hostile_identifiers_are_data(tmp_path):
    url = _database(
        tmp_path,
        """
        CREATE TABLE y (id INTEGER); INSERT INTO y VALUES (1), (2);
        CREATE TABLE "x""; drop table y; --" (id INTEGER, "c""; drop table y; --" TEXT);
        INSERT INTO "x""; drop table y; --" VALUES (7, '2025-01-23 01:00:00'),
          (8, '2025-01-24 01:00:00');
    """,
    )
    evil = 'x"; drop table y; --'
    summary = run(
        tmp_path,
        {"lite": url, "gen": {"url": url, "reader": "sqlalchemy"}},
        [
            {"source": "lite", "table": evil},
            {
                "source": "lite",
                "table": evil,
                "name": "evil_incremental",
                "extract": {"mode": "incremental", "cursor": 'c"; drop table y; --'},
            },
            {"source": "gen", "table": evil},
        ],
    )
    assert summary.ok, [r.error for r in summary.results]
    assert read(summary, f"lite.{evil}").column("id").to_pylist() == [7, 8]
    assert read(summary, "lite.evil_incremental").column("id").to_pylist() == [7]
    assert read(summary, f"gen.{evil}").column("id").to_pylist() == [7, 8]
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    assert conn.execute("SELECT count(*) FROM y").fetchone() == (2,)
    conn.close()


def test_generic_reader_keeps_colons_in_identifiers(tmp_path):
    url = _database(
        tmp_path,
        """
        CREATE TABLE "a:b" (id INTEGER, "t:x" TEXT); INSERT INTO "a:b" VALUES (1, '12:30');
    """,
    )
    summary = run(
        tmp_path,
        {"lite": {"url": url, "reader": "sqlalchemy"}},
        [
            {"source": "lite", "table": "a:b"},
            {
                "source": "lite",
                "name": "q",
                "query": 'SELECT id, "t:x" AS t, \'10:00\' AS ten FROM "a:b"',
            },
        ],
    )
    assert summary.ok, [r.error for r in summary.results]
    assert read(summary, "lite.a:b").to_pylist() == [{"id": 1, "t:x": "12:30"}]
    assert read(summary, "lite.q").to_pylist() == [{"id": 1, "t": "12:30", "ten": "10:00"}]


def test_a_panic_in_any_reader_fails_only_its_table(tmp_path, monkeypatch):
    """A Rust panic (pyo3_runtime.PanicException) derives from BaseException: raised by
    any reader, it fails that table with one line instead of ending the run."""
    from onceflow.extract import extractor

    panic = type("PanicException", (BaseException,), {"__module__": "pyo3_runtime"})
    real = extractor.make_reader

    class Panicking:
        def batches(self, spec):
            yield from ()
            raise panic("boom\nStack backtrace:\n   0: <unknown>")

    def make_reader(source, url, zone, where):
        return Panicking() if where == "lite.broken" else real(source, url, zone, where)

    monkeypatch.setattr(extractor, "make_reader", make_reader)
    url = _database(tmp_path)
    summary = run(
        tmp_path,
        {"lite": url},
        [
            {"source": "lite", "table": "simple", "name": "broken"},
            {"source": "lite", "table": "simple"},
        ],
    )
    broken = next(r for r in summary.results if r.table_key == "lite.broken")
    assert (broken.action, broken.error) == ("failed", "lite.broken: PanicException: boom")
    assert read(summary, "lite.simple").num_rows == 4
    assert summary.run.status == "failed"


def test_a_decimal_column_of_whole_numbers_is_extracted_and_an_overflow_named(tmp_path):
    # SQLite hands whole numbers of a DECIMAL column over as integers
    url = _database(
        tmp_path,
        "CREATE TABLE w (id INTEGER, amount DECIMAL(12,2));"
        "INSERT INTO w VALUES (1, 5), (2, 7), (3, NULL);",
    )
    data = read(run(tmp_path, {"lite": url}, [{"source": "lite", "table": "w"}]), "lite.w")
    assert data.schema.field("amount").type == pa.decimal128(12, 2)
    assert data.sort_by("id")["amount"].to_pylist() == [Decimal("5.00"), Decimal("7.00"), None]
    (tmp_path / "big").mkdir()
    too_big = _database(
        tmp_path / "big",
        "CREATE TABLE w (id INTEGER, amount DECIMAL(12,2)); INSERT INTO w VALUES (1, 10000000000);",
    )
    summary = run(tmp_path / "big", {"lite": too_big}, [{"source": "lite", "table": "w"}])
    failed = result(summary, "lite.w")
    assert failed.action == "failed"
    assert "column 'amount': cannot convert its values to decimal128(12, 2)" in failed.error
    assert "does not fit in precision 12" in failed.error


@pytest.mark.parametrize("reader", ["native", "sqlalchemy"])
def test_a_boolean_other_than_0_or_1_fails_its_table_naming_the_value(tmp_path, reader):
    """SQLite stores a BOOLEAN column's values as they come: 2 became true silently. The
    table fails with one line naming the column, the value and the cast that reads it."""
    url = _database(
        tmp_path,
        "CREATE TABLE flags (id INTEGER, flag BOOLEAN);"
        "INSERT INTO flags VALUES (1, 1), (2, 0), (3, NULL), (4, 2);",
    )
    source = {"url": url} if reader == "native" else {"url": url, "reader": reader}
    summary = run(
        tmp_path,
        {"lite": source},
        [
            {"source": "lite", "table": "flags"},
            {
                "source": "lite",
                "name": "as_integers",
                "query": "SELECT id, CAST(flag AS INTEGER) AS flag FROM flags",
            },
        ],
    )
    failed = result(summary, "lite.flags")
    assert failed.action == "failed" and failed.attempts == 1
    assert failed.error.startswith("lite.flags: column 'flag' is read as a boolean "), failed.error
    assert "holds 2, neither 0 nor 1" in failed.error and "\n" not in failed.error
    assert "CAST(flag AS INTEGER) AS flag" in failed.error
    integers = read(summary, "lite.as_integers").sort_by("id")
    assert integers.column("flag").to_pylist() == [1, 0, None, 2]
