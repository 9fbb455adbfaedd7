"""An incremental table's cursor: a column that is no date or time is refused by name,
and rows whose cursor is in no window (NULL, a zero date, +-infinity) are counted and
fail the table, or are left out with `null_cursor: skip` and reported."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from onceflow.lake import sidecar_path
from onceflow.state import open_store
from tests.helpers.extract import read, result, run

DAY = "2025-01-23"


def _sqlite(tmp_path: Path, script: str) -> str:
    path = tmp_path / "source.db"
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


EVENTS = """
CREATE TABLE ev (id INTEGER, ep INTEGER, ts TIMESTAMP, t TEXT, loose);
INSERT INTO ev VALUES
 (1, 1737590400, '2025-01-23 00:00:00', '2025-01-23 08:00:00', '2025-01-23 09:00:00'),
 (2, 1737633600, '2025-01-23 12:00:00', '2025-01-23T12:00:00', 1737633600),
 (3, NULL, NULL, NULL, NULL),
 (4, 1737676800, '2025-01-24 00:00:00', '2025-01-24 00:00:00', '2025-01-24 00:00:00');
"""


def _incremental(cursor: str, **extract: str) -> dict:
    return {
        "source": "lite",
        "table": "ev",
        "name": f"ev_{cursor}",
        "extract": {"mode": "incremental", "cursor": cursor, **extract},
    }


def test_sqlite_integer_cursor_is_refused_with_the_converting_query(tmp_path):
    """An INTEGER-declared cursor (unix seconds) used to select nothing and succeed."""
    url = _sqlite(tmp_path, EVENTS)
    summary = run(tmp_path, {"lite": url}, [_incremental("ep"), _incremental("t")])
    failed = result(summary, "lite.ev_ep")
    assert failed.action == "failed"
    assert "cursor column 'ep' is declared INTEGER, not a date or time" in failed.error
    assert "datetime(\"ep\", 'unixepoch') AS ep_at" in failed.error
    assert "\n" not in failed.error
    # the other table goes on (and fails for its own NULL row, by default)
    assert result(summary, "lite.ev_t").action == "failed"


def test_sqlite_numbers_in_an_undeclared_cursor_are_refused(tmp_path):
    """SQLite orders every number before every text: a number is in no window."""
    url = _sqlite(tmp_path, EVENTS)
    summary = run(tmp_path, {"lite": url}, [_incremental("loose", null_cursor="skip")])
    error = result(summary, "lite.ev_loose").error
    assert "cursor column 'loose' is a number in 1 row(s), not a date or time" in error


def test_null_cursor_rows_fail_the_table_by_default(tmp_path):
    url = _sqlite(tmp_path, EVENTS)
    summary = run(tmp_path, {"lite": url}, [_incremental("ts")])
    failed = result(summary, "lite.ev_ts")
    assert failed.action == "failed" and not summary.ok
    assert "1 row(s) have a NULL cursor 'ts'" in failed.error
    assert "`null_cursor: skip`" in failed.error
    assert not Path(failed.file_path).exists()  # nothing half-done in the lake


def test_null_cursor_skip_extracts_the_window_and_records_the_count(tmp_path):
    url = _sqlite(tmp_path, EVENTS)
    tables = [_incremental("ts", null_cursor="skip"), _incremental("t", null_cursor="skip")]
    summary = run(tmp_path, {"lite": url}, tables)
    assert summary.ok
    assert sorted(read(summary, "lite.ev_ts").column("id").to_pylist()) == [1, 2]
    # ISO text with either separator falls in the window; the next midnight does not
    assert sorted(read(summary, "lite.ev_t").column("id").to_pylist()) == [1, 2]
    done = result(summary, "lite.ev_ts")
    assert done.null_cursor_rows == 1
    sidecar = json.loads(sidecar_path(Path(done.file_path)).read_text())
    assert sidecar["null_cursor_rows"] == 1
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        record = store.extractions.of_run(summary.run.run_id)["lite.ev_ts"]
    finally:
        store.close()
    assert record.null_cursor_rows == 1
    # a rerun skips the committed window and still reports what it left out
    again = run(tmp_path, {"lite": url}, tables)
    assert result(again, "lite.ev_ts").action == "skipped"
    assert result(again, "lite.ev_ts").null_cursor_rows == 1


def test_a_full_extract_and_a_query_with_markers_are_not_audited(tmp_path):
    url = _sqlite(tmp_path, EVENTS)
    query = "select * from ev where ts >= :window_start and ts < :window_end"
    tables = [
        {"source": "lite", "table": "ev", "name": "all"},
        {
            "source": "lite",
            "name": "q",
            "query": query,
            "extract": {"mode": "incremental", "cursor": "ep"},
        },
    ]
    summary = run(tmp_path, {"lite": url}, tables)
    assert summary.ok
    assert result(summary, "lite.all").null_cursor_rows is None
    assert sorted(read(summary, "lite.q").column("id").to_pylist()) == [1, 2]


def test_sqlalchemy_reader_refuses_and_counts_too(tmp_path):
    url = _sqlite(tmp_path, EVENTS)
    source = {"lite": {"url": url, "reader": "sqlalchemy"}}
    summary = run(tmp_path, source, [_incremental("ep"), _incremental("ts")])
    assert "cursor column 'ep' is of type INTEGER" in result(summary, "lite.ev_ep").error
    assert "1 row(s) have a NULL cursor 'ts'" in result(summary, "lite.ev_ts").error


@pytest.mark.postgres
def test_postgres_bigint_cursor_is_refused_and_null_and_infinity_counted(
    pg_admin, pg_schema, pg_url, tmp_path
):
    """PostgreSQL failed with `operator does not exist: bigint >= timestamp with time zone`."""
    pg_admin.execute(f'CREATE TABLE "{pg_schema}".ev (id int, ep bigint, ts timestamptz, d date)')
    pg_admin.execute(
        f"""INSERT INTO "{pg_schema}".ev VALUES
        (1, 1737633600, '2025-01-23 12:00+00', '2025-01-23'),
        (2, NULL, NULL, NULL),
        (3, 1, 'infinity', '-infinity'),
        (4, 2, '-infinity', 'infinity')"""
    )

    def table(cursor: str, **extract: str) -> dict:
        return {
            "source": "pg",
            "table": f"{pg_schema}.ev",
            "name": f"ev_{cursor}",
            "extract": {"mode": "incremental", "cursor": cursor, **extract},
        }

    summary = run(
        tmp_path, {"pg": pg_url}, [table("ep"), table("ts"), table("d", null_cursor="skip")]
    )
    error = result(summary, "pg.ev_ep").error
    assert "cursor column 'ep' is of type bigint, not a date or time" in error
    assert 'to_timestamp("ep") AS ep_at' in error
    assert "operator does not exist" not in error
    assert "3 row(s) have a NULL or infinite cursor 'ts'" in result(summary, "pg.ev_ts").error
    assert read(summary, "pg.ev_d").column("id").to_pylist() == [1]
    assert result(summary, "pg.ev_d").null_cursor_rows == 3
    # the documented fix extracts the window
    fixed = {
        "source": "pg",
        "name": "ev_at",
        "query": f'select *, to_timestamp(ep) AS ep_at from "{pg_schema}".ev',
        "extract": {"mode": "incremental", "cursor": "ep_at", "null_cursor": "skip"},
    }
    summary = run(tmp_path, {"pg": pg_url}, [fixed])
    assert read(summary, "pg.ev_at").column("id").to_pylist() == [1]


@pytest.mark.mysql
def test_mariadb_bigint_cursor_is_refused_and_zero_dates_counted(mysql_admin, mysql_db, tmp_path):
    """MariaDB compared the bigint with the window's text and selected nothing, with no
    error; a zero date is in no window (and IS NULL matches it only in a NOT NULL column)."""
    db = mysql_db.rsplit("/", 1)[1]
    with mysql_admin.cursor() as cur:
        cur.execute(f"USE `{db}`")
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute(
            "CREATE TABLE ev (id int, ep bigint, wall datetime NOT NULL, loose datetime NULL, "
            "KEY (wall))"
        )
        cur.execute(
            "INSERT INTO ev VALUES (1, 1737633600, '2025-01-23 12:00', '2025-01-23 12:00'),"
            "(2, 0, '0000-00-00 00:00:00', '0000-00-00 00:00:00'),"
            "(3, NULL, '2025-01-23 13:00', NULL)"
        )

    def table(cursor: str, **extract: str) -> dict:
        return {
            "source": "maria",
            "table": "ev",
            "name": f"ev_{cursor}",
            "extract": {"mode": "incremental", "cursor": cursor, **extract},
        }

    tables = [table("ep"), table("wall"), table("loose", null_cursor="skip")]
    summary = run(tmp_path, {"maria": mysql_db}, tables)
    error = result(summary, "maria.ev_ep").error
    assert "cursor column 'ep' is of type bigint, not a date or time" in error
    assert "FROM_UNIXTIME(`ep`) AS ep_at" in error  # the pipeline's zone is UTC
    wall = result(summary, "maria.ev_wall").error
    assert "1 row(s) have a NULL or zero-date cursor 'wall'" in wall
    assert sorted(read(summary, "maria.ev_loose").column("id").to_pylist()) == [1]
    assert result(summary, "maria.ev_loose").null_cursor_rows == 2
