"""Extraction from SQLite: declared types, windows on wall-time text, quoting, generic reader."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tests.helpers.extract import read, result, run, sqlite_source

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
    return sqlite_source(tmp_path, script)


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
    assert "column 'amount' holds 10000000000, which has more integer digits than its " in (
        failed.error
    )
    assert "DECIMAL(12,2) holds" in failed.error


def _sqlite_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _same_number(text: str | None, value: Any) -> bool:
    """Whether extracted text is exactly the value sqlite3 returns: an integer's digits, a
    real's shortest decimal (the one that reads back as the same double)."""
    if value is None or isinstance(value, str):
        return text == value
    if isinstance(value, int):
        return text == str(value)
    return text is not None and Decimal(text) == Decimal(repr(value)) and float(text) == value


def test_a_real_in_a_decimal_column_is_its_shortest_decimal_and_never_rounded(tmp_path):
    url = _database(
        tmp_path,
        "CREATE TABLE m (id INTEGER, amount DECIMAL(12,4));"
        "INSERT INTO m VALUES (1, 0.1), (2, 2.0001), (3, 1e-4), (4, 5), (5, NULL),"
        " (6, -12345678.9999), (7, 0.30000000000000004 - 0.00000000000000004);",
    )
    data = read(run(tmp_path, {"lite": url}, [{"source": "lite", "table": "m"}]), "lite.m")
    got = dict(zip(data["id"].to_pylist(), data["amount"].to_pylist(), strict=True))
    for key, value in _sqlite_rows(url, "SELECT id, amount FROM m"):
        assert got[key] == (None if value is None else Decimal(repr(value))), key
    assert got[1] == Decimal("0.1000") and got[4] == Decimal("5.0000")

    # (literal, as the message shows it, declared type, why, fix)
    refused = [
        ("2.00005", "2.00005", "DECIMAL(12,4)", "more decimal places", "round(amount, 4)"),
        ("1e-05", "0.00001", "DECIMAL(12,4)", "more decimal places", "round(amount, 4)"),
        ("12.345", "12.345", "DECIMAL(10,2)", "more decimal places", "round(amount, 2)"),
        ("1.005", "1.005", "DECIMAL(10,2)", "more decimal places", "round(amount, 2)"),
        ("123456789.5", "123456789.5", "DECIMAL(10,2)", "more integer", "larger precision"),
        ("'abc'", "'abc'", "DECIMAL(10,2)", "no number", "declare the column TEXT"),
    ]
    for i, (value, shown, declared, why, fix) in enumerate(refused):
        folder = tmp_path / f"bad{i}"
        folder.mkdir()
        bad = _database(
            folder,
            f"CREATE TABLE m (id INTEGER, amount {declared});"
            f"INSERT INTO m VALUES (1, 1), (2, {value}), (3, NULL);",
        )
        failed = result(run(folder, {"lite": bad}, [{"source": "lite", "table": "m"}]), "lite.m")
        assert failed.action == "failed", value
        assert failed.error.startswith(f"lite.m: column 'amount' holds {shown}, which "), (
            failed.error
        )
        assert why in failed.error and declared in failed.error and fix in failed.error


def test_untyped_and_numeric_columns_holding_several_storage_classes_keep_every_value(
    tmp_path,
):
    import random
    import struct

    rng = random.Random(7)
    reals = [
        round(rng.uniform(-1, 1) * 10 ** rng.randint(-8, 12), rng.randint(0, 9)) for _ in range(300)
    ]
    reals += [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(300)]
    reals = [r for r in reals if r == r and abs(r) != float("inf")]
    reals += [0.1, 0.30000000000000004, 1e-05, 3.14159265358979, 1e20, 100.0, -0.5]
    path = tmp_path / "source.db"
    conn = sqlite3.connect(path)
    # no declared type, NUMERIC, and columns whose first 1500 rows (past the first batch
    # of 1000) are NULL, which the driver would type int64 and then fail on
    conn.execute("CREATE TABLE m (id INTEGER, ints, small, big, words NUMERIC, late, blobs)")
    rows: list[tuple[Any, ...]] = [(i, None, None, None, None, None, None) for i in range(1500)]
    for i, r in enumerate(reals, start=1500):
        rows.append((i, i, r if i % 2 else i, r if i % 2 else 12345678901234567, None, r, b"\x00"))
    words = ["abc", 1, 2.5, 12345678901234567, "", 3.14159265358979]
    for i, w in enumerate(words, start=len(rows)):
        rows.append((i, -(2**63), 2**53, -(2**63), w, None, None))
    conn.executemany("INSERT INTO m VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    url = f"sqlite:///{path}"

    summary = run(
        tmp_path,
        {"lite": url},
        [
            {"source": "lite", "table": "m", "extract": {"batch_rows": 1000}},
            {
                "source": "lite",
                "name": "q",
                "query": "SELECT id, big, big * 1 AS times_one, words || '' AS glued FROM m",
                "extract": {"batch_rows": 1000},
            },
        ],
    )
    data = read(summary, "lite.m").sort_by("id")
    assert data.schema == pa.schema(
        [
            ("id", pa.int64()),
            ("ints", pa.int64()),  # integers only
            ("small", pa.float64()),  # integers a double holds exactly, and reals
            ("big", pa.string()),  # 12345678901234567 and reals: exact text
            ("words", pa.string()),  # text and numbers
            ("late", pa.float64()),  # reals after 1500 NULLs
            ("blobs", pa.binary()),
        ]
    )
    got = {row["id"]: row for row in data.to_pylist()}
    expected = _sqlite_rows(url, "SELECT id, ints, small, big, words, late, blobs FROM m")
    assert len(got) == len(expected)
    for key, ints, small, big, word, late, blob in expected:
        row = got[key]
        assert row["ints"] == ints and row["blobs"] == blob, key
        assert row["small"] == small and row["late"] == late, key
        assert _same_number(row["big"], big), (key, row["big"], big)
        assert _same_number(row["words"], word), (key, row["words"], word)

    query = {row["id"]: row for row in read(summary, "lite.q").to_pylist()}
    for key, big, times_one, glued in _sqlite_rows(
        url, "SELECT id, big, big * 1, words || '' FROM m"
    ):
        assert _same_number(query[key]["big"], big), key
        assert _same_number(query[key]["times_one"], times_one), key
        assert query[key]["glued"] == glued, key


def test_a_column_mixing_blobs_with_other_values_is_refused_by_name(tmp_path):
    url = _database(
        tmp_path,
        "CREATE TABLE m (id INTEGER, anything); INSERT INTO m VALUES (1, 1), (2, x'00ff');",
    )
    failed = result(run(tmp_path, {"lite": url}, [{"source": "lite", "table": "m"}]), "lite.m")
    assert failed.action == "failed"
    assert failed.error.startswith("lite.m: column 'anything' holds BLOBs and other values")
    assert "hex(anything)" in failed.error


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


@pytest.mark.parametrize("reader", ["auto", "sqlalchemy"])
def test_a_query_returning_two_columns_of_one_name_is_refused_naming_them(tmp_path, reader):
    """A file with two `id` columns could never be loaded; wrapped in a subquery (to
    window it), SQLite renamed the second `id:1`, a name no one chose, which the lake
    kept. Both fail naming the columns and the fix."""
    url = _database(
        tmp_path,
        "CREATE TABLE z (id INTEGER, ts TEXT);INSERT INTO z VALUES (1, '2025-01-23 10:00:00');",
    )
    join = "FROM z a JOIN z b ON a.id = b.id"
    tables = [
        {"source": "lite", "name": "full", "query": f"SELECT a.id, b.id, a.ts {join}"},
        {
            "source": "lite",
            "name": "windowed",
            "query": f"SELECT a.*, b.* {join}",
            "extract": {"mode": "incremental", "cursor": "ts"},
        },
    ]
    summary = run(tmp_path, {"lite": {"url": url, "reader": reader}}, tables)
    for name, repeated in (("full", "'id'"), ("windowed", "'id', 'ts'")):
        failed = result(summary, f"lite.{name}")
        assert failed.action == "failed", name
        assert failed.error.startswith(
            f"lite.{name}: the query returns more than one column named {repeated}: "
        ), failed.error


def test_through_sqlalchemy_decimals_and_fixes_are_sqlites_own(tmp_path):
    """Through `reader: sqlalchemy` DECIMAL(20,0) was a double (the native reader:
    decimal128(20,0)); a TIMESTAMP holding '...Z' failed with no fix, and the fix for
    values Arrow has no type for named MySQL's and PostgreSQL's casts."""
    url = sqlite_source(
        tmp_path,
        "CREATE TABLE d (id INTEGER, n DECIMAL(20,0)); INSERT INTO d VALUES (1, 5), (2, NULL);"
        "CREATE TABLE z (id INTEGER, ts TIMESTAMP);"
        "INSERT INTO z VALUES (1, '2025-01-01T10:00:00Z');"
        "CREATE TABLE m (id INTEGER, v); INSERT INTO m VALUES (1, 1), (2, 'a');",
    )
    source = {"url": url, "reader": "sqlalchemy"}
    tables = [{"source": "s", "table": t} for t in ("d", "z")]
    tables.append({"source": "s", "name": "mixed", "query": "SELECT id, v FROM m"})
    summary = run(tmp_path, {"s": source}, tables)
    assert read(summary, "s.d").schema.field("n").type == pa.decimal128(20, 0)
    assert "strftime('%Y-%m-%d %H:%M:%f', \"ts\")" in result(summary, "s.z").error
    mixed = result(summary, "s.mixed").error
    assert mixed.endswith("e.g. `CAST(v AS TEXT) AS v`"), mixed
