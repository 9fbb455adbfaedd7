"""The window's SQL on each dialect: a cursor named in another letter case, and marker text
inside string literals, quoted names and comments."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tests.helpers.extract import read, result, run

BERLIN = ZoneInfo("Europe/Berlin")
# Berlin instants around the 23-hour day 2025-03-30: ids 2, 3, 4 are in its window
INSTANTS = [
    (1, datetime(2025, 3, 29, 23, 59, 59, 999999, tzinfo=BERLIN)),
    (2, datetime(2025, 3, 30, tzinfo=BERLIN)),
    (3, datetime(2025, 3, 30, 3, 30, tzinfo=BERLIN)),
    (4, datetime(2025, 3, 30, 23, 59, 59, 999999, tzinfo=BERLIN)),
    (5, datetime(2025, 3, 31, tzinfo=BERLIN)),
]
IN_WINDOW = [2, 3, 4]
# a query whose string literal, quoted alias and comment hold marker text
LITERAL = "':window_end'"


def _ids(summary, key: str) -> list[int]:
    return sorted(read(summary, key).column("id").to_pylist())


@pytest.mark.mysql
def test_mysql_timestamp_cursor_in_another_case_is_bound_as_an_instant(
    mysql_admin, mysql_db, tmp_path
):
    db = mysql_db.rsplit("/", 1)[1]
    with mysql_admin.cursor() as cur:
        cur.execute(f"USE `{db}`")
        cur.execute("SET time_zone = '+00:00'")
        cur.execute("CREATE TABLE w (id int, tz timestamp(6) NULL)")
        cur.executemany(
            "INSERT INTO w VALUES (%s, %s)",
            [(i, at.astimezone(UTC).replace(tzinfo=None)) for i, at in INSTANTS],
        )
    incremental = {"mode": "incremental", "cursor": "TZ"}
    summary = run(
        tmp_path,
        {"maria": mysql_db},
        [
            {"source": "maria", "table": "w", "extract": incremental},
            {
                "source": "maria",
                "name": "aliased",
                "query": "SELECT id, tz AS Tz FROM w",
                "extract": {"mode": "incremental", "cursor": "tz"},
            },
            {
                "source": "maria",
                "name": "marked",
                "query": f"SELECT id, tz, {LITERAL} AS `:window_start` FROM w -- :window_end\n"
                "WHERE tz >= :window_start /* :window_end */ AND tz < :window_end",
                "extract": incremental,
            },
        ],
        date="2025-03-30",
        timezone="Europe/Berlin",
    )
    assert summary.ok, [r.error for r in summary.results]
    assert _ids(summary, "maria.w") == IN_WINDOW
    assert _ids(summary, "maria.aliased") == IN_WINDOW
    marked = read(summary, "maria.marked").sort_by("id")
    assert marked.column("id").to_pylist() == IN_WINDOW
    assert marked.column(":window_start").to_pylist() == [":window_end"] * 3


@pytest.mark.postgres
def test_postgres_cursor_name_is_exact_and_markers_in_literals_are_text(
    pg_admin, pg_schema, pg_url, tmp_path
):
    table = f'"{pg_schema}".w'
    pg_admin.execute(f'CREATE TABLE {table} (id int, tz timestamptz, "Mixed" timestamptz)')
    with pg_admin.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {table} VALUES (%s, %s, %s)", [(i, a, a) for i, a in INSTANTS]
        )
    summary = run(
        tmp_path,
        {"pg": pg_url},
        [
            {
                "source": "pg",
                "table": f"{pg_schema}.w",
                "name": "mixed",
                "extract": {"mode": "incremental", "cursor": "Mixed"},
            },
            {
                "source": "pg",
                "table": f"{pg_schema}.w",
                "name": "folded",
                "extract": {"mode": "incremental", "cursor": "mixed"},
            },
            {
                "source": "pg",
                "name": "marked",
                "query": f"SELECT id, {LITERAL} AS lit, $$:window_start$$ AS d FROM {table} "
                "WHERE tz >= :window_start AND tz < :window_end -- :window_end",
                "extract": {"mode": "incremental", "cursor": "tz"},
            },
        ],
        date="2025-03-30",
        timezone="Europe/Berlin",
    )
    # onceflow quotes the cursor, and PostgreSQL matches a quoted name exactly
    assert _ids(summary, "pg.mixed") == IN_WINDOW
    folded = result(summary, "pg.folded")
    assert folded.action == "failed"
    assert 'column "mixed" does not exist' in folded.error
    marked = read(summary, "pg.marked").sort_by("id")
    assert marked.column("id").to_pylist() == IN_WINDOW
    assert marked.column("lit").to_pylist() == [":window_end"] * 3
    assert marked.column("d").to_pylist() == [":window_start"] * 3


@pytest.mark.parametrize("reader", ["native", "sqlalchemy"])
def test_sqlite_cursor_in_another_case_and_markers_in_literals(tmp_path, reader):
    path = tmp_path / "source.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE w (id INTEGER, ts TIMESTAMP)")
    conn.executemany(
        "INSERT INTO w VALUES (?, ?)",
        [(i, at.replace(tzinfo=None).isoformat(sep=" ")) for i, at in INSTANTS],
    )
    conn.commit()
    conn.close()
    url = f"sqlite:///{path}"
    summary = run(
        tmp_path,
        {"lite": url if reader == "native" else {"url": url, "reader": reader}},
        [
            {"source": "lite", "table": "w", "extract": {"mode": "incremental", "cursor": "TS"}},
            {
                "source": "lite",
                "name": "marked",
                "query": f"SELECT id, {LITERAL} AS [:window_start] FROM w /* :window_end */ "
                "WHERE ts >= :window_start AND ts < :window_end",
                "extract": {"mode": "incremental", "cursor": "ts"},
            },
        ],
        date="2025-03-30",
        timezone="Europe/Berlin",
    )
    assert summary.ok, [r.error for r in summary.results]
    assert _ids(summary, "lite.w") == IN_WINDOW
    marked = read(summary, "lite.marked").sort_by("id")
    assert marked.column("id").to_pylist() == IN_WINDOW
    assert marked.column(":window_start").to_pylist() == [":window_end"] * 3
