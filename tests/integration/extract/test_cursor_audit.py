"""An incremental table's cursor: a column that is no date or time is refused by name,
and rows whose cursor is in no window (NULL, a zero date, +-infinity) are counted and
fail the table, or are left out with `null_cursor: skip` and reported."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest

from onceflow.lake import sidecar_path
from onceflow.state import open_store
from tests.helpers.extract import read, result, run, sqlite_source

DAY = "2025-01-23"


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
    url = sqlite_source(tmp_path, EVENTS)
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
    url = sqlite_source(tmp_path, EVENTS)
    summary = run(tmp_path, {"lite": url}, [_incremental("loose", null_cursor="skip")])
    error = result(summary, "lite.ev_loose").error
    assert "cursor column 'loose' is a number in 1 row(s), not a date or time" in error


def test_null_cursor_rows_fail_the_table_by_default(tmp_path):
    url = sqlite_source(tmp_path, EVENTS)
    summary = run(tmp_path, {"lite": url}, [_incremental("ts")])
    failed = result(summary, "lite.ev_ts")
    assert failed.action == "failed" and not summary.ok
    assert "1 row(s) have a NULL cursor 'ts'" in failed.error
    assert "`null_cursor: skip`" in failed.error
    assert not Path(failed.file_path).exists()  # nothing half-done in the lake


def test_null_cursor_skip_extracts_the_window_and_records_the_count(tmp_path):
    url = sqlite_source(tmp_path, EVENTS)
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
    url = sqlite_source(tmp_path, EVENTS)
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
    url = sqlite_source(tmp_path, EVENTS)
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


NOT_ISO = """
CREATE TABLE w (id INTEGER, t TEXT, d DATE);
INSERT INTO w VALUES
 (1, '2025-01-23 10:00', '2025-01-23'),
 (2, '2025/01/23 11:00', '2025-01-23'),
 (3, '23.01.2025', '2025-01-23'),
 (4, NULL, '2025-01-23');
"""


@pytest.mark.parametrize("reader", ["auto", "sqlalchemy"])
def test_sqlite_text_that_is_no_iso_time_is_refused_with_count_example_and_fix(tmp_path, reader):
    """'2025/01/23 11:00' and '23.01.2025' compare as text outside every window: the run
    extracted row 1 alone and exited 0, with nothing counted."""
    url = sqlite_source(tmp_path, NOT_ISO)
    source = {"lite": {"url": url, "reader": reader}}
    table = {
        "source": "lite",
        "table": "w",
        "extract": {"mode": "incremental", "cursor": "t", "null_cursor": "skip"},
    }
    summary = run(tmp_path, source, [table])
    failed = result(summary, "lite.w")
    assert failed.action == "failed" and not summary.ok
    error = failed.error
    assert "cursor column 't' holds 2 value(s) that are not ISO 8601 dates or times" in error
    assert "(e.g. '2025/01/23 11:00')" in error
    assert "\n" not in error
    # the suggested query, pasted, converts that form; the other form is then named,
    # with a query to wrap around the first
    query = error.split("`query: ")[1].split("` with `cursor")[0]
    fixed = {
        "source": "lite",
        "name": "w_at",
        "query": query,
        "extract": {"mode": "incremental", "cursor": "t_at", "null_cursor": "skip"},
    }
    error = result(run(tmp_path, source, [fixed]), "lite.w_at").error
    assert "holds 1 value(s)" in error and "(e.g. '23.01.2025')" in error
    assert "day first" in error
    wrapped = error.split("`query: ")[1].split("` with `cursor")[0]
    both = {
        **fixed,
        "name": "w_both",
        "query": wrapped.replace("(<your query>)", f"({query})"),
        "extract": {"mode": "incremental", "cursor": "t_at_at", "null_cursor": "skip"},
    }
    summary = run(tmp_path, source, [both])
    assert sorted(read(summary, "lite.w_both").column("id").to_pylist()) == [1, 2, 3]
    assert result(summary, "lite.w_both").null_cursor_rows == 1


def test_sqlite_iso_text_of_every_form_passes_the_check(tmp_path):
    """Date alone, a `T`, fractions and an offset all begin with the date their window
    reads: none is refused."""
    url = sqlite_source(
        tmp_path,
        "CREATE TABLE w (id INTEGER, t TEXT);"
        "INSERT INTO w VALUES (1, '2025-01-23'), (2, '2025-01-23T05:00:00.5'),"
        " (3, '2025-01-23 23:59:59+01:00'), (4, '2025-01-24');",
    )
    summary = run(tmp_path, {"lite": url}, [_incremental_on("w", "t")])
    assert sorted(read(summary, "lite.w").column("id").to_pylist()) == [1, 2, 3]


def _incremental_on(table: str, cursor: str, source: str = "lite", **extract: str) -> dict:
    return {
        "source": source,
        "table": table,
        "extract": {"mode": "incremental", "cursor": cursor, **extract},
    }


@pytest.mark.postgres
@pytest.mark.parametrize("reader", ["auto", "sqlalchemy"])
def test_postgres_domain_over_a_time_is_a_time_cursor(
    pg_admin, pg_schema, pg_url, tmp_path, reader
):
    """A domain over timestamptz was refused as "not a date or time", with a
    `to_timestamp` fix that fails when pasted; a domain is judged by its base type."""
    s = pg_schema
    pg_admin.execute(
        f'CREATE DOMAIN "{s}".tsd AS timestamptz; CREATE DOMAIN "{s}".tsd2 AS "{s}".tsd;'
        f'CREATE DOMAIN "{s}".dd AS date; CREATE DOMAIN "{s}".epd AS bigint;'
        f'CREATE TABLE "{s}".dm (id int, ts "{s}".tsd, ts2 "{s}".tsd2, d "{s}".dd, ep "{s}".epd)'
    )
    pg_admin.execute(
        f"""INSERT INTO "{s}".dm VALUES
        (1, '2025-01-23 12:00+00', '2025-01-23 12:00+00', '2025-01-23', 1737633600),
        (2, 'infinity', NULL, '-infinity', NULL),
        (3, '2025-01-24 12:00+00', '2025-01-24 12:00+00', '2025-01-24', 1)"""
    )
    url = pg_url if reader == "auto" else pg_url.replace("postgresql://", "postgresql+psycopg://")
    source = {"pg": {"url": url, "reader": reader}}

    def table(cursor: str) -> dict:
        return {
            "source": "pg",
            "table": f"{s}.dm",
            "name": f"dm_{cursor}",
            "extract": {"mode": "incremental", "cursor": cursor, "null_cursor": "skip"},
        }

    summary = run(tmp_path, source, [table(c) for c in ("ts", "ts2", "d", "ep")])
    for cursor in ("ts", "ts2", "d"):
        assert read(summary, f"pg.dm_{cursor}").column("id").to_pylist() == [1], cursor
        assert result(summary, f"pg.dm_{cursor}").null_cursor_rows == 1, cursor
    assert read(summary, "pg.dm_ts").schema.field("ts").type == pa.timestamp("us", tz="UTC")
    error = result(summary, "pg.dm_ep").error
    assert f"cursor column 'ep' is of type {s}.epd (a domain over bigint)" in error
    # its fix, pasted, extracts the window
    convert = error.split("`query: select *, ")[1].split(" AS ep_at")[0]
    fixed = {
        "source": "pg",
        "name": "dm_at",
        "query": f'select *, {convert} AS ep_at from "{s}".dm',
        "extract": {"mode": "incremental", "cursor": "ep_at", "null_cursor": "skip"},
    }
    assert read(run(tmp_path, source, [fixed]), "pg.dm_at").column("id").to_pylist() == [1]


@pytest.mark.postgres
def test_sqlalchemy_on_postgres_counts_infinity_as_the_native_reader_does(
    pg_admin, pg_schema, pg_url, tmp_path
):
    """Through SQLAlchemy only NULLs were counted: `skip` reported 1 row left out while
    the infinite one was in no window too."""
    pg_admin.execute(f'CREATE TABLE "{pg_schema}".w (id int, ts timestamp)')
    pg_admin.execute(
        f"INSERT INTO \"{pg_schema}\".w VALUES (1, '2025-01-23 12:00'), (2, NULL), "
        "(3, 'infinity'), (4, '-infinity')"
    )
    url = pg_url.replace("postgresql://", "postgresql+psycopg://")
    source = {"pg": {"url": url, "reader": "sqlalchemy"}}
    tables = [
        _incremental_on(f"{pg_schema}.w", "ts", "pg", null_cursor="skip"),
        {**_incremental_on(f"{pg_schema}.w", "ts", "pg"), "name": "strict"},
    ]
    summary = run(tmp_path, source, tables)
    assert read(summary, f"pg.{pg_schema}.w").column("id").to_pylist() == [1]
    assert result(summary, f"pg.{pg_schema}.w").null_cursor_rows == 3
    error = result(summary, "pg.strict").error
    assert "3 row(s) have a NULL or infinite cursor 'ts'" in error


@pytest.mark.mysql
def test_sqlalchemy_on_mariadb_counts_zero_dates_as_the_native_reader_does(
    mysql_admin, mysql_db, tmp_path
):
    db = mysql_db.rsplit("/", 1)[1]
    with mysql_admin.cursor() as cur:
        cur.execute(f"USE `{db}`")
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("CREATE TABLE w (id int, dt datetime NULL)")
        cur.execute(
            "INSERT INTO w VALUES (1, '2025-01-23 12:00'), (2, NULL), (3, '0000-00-00 00:00:00')"
        )
    url = mysql_db.replace("mysql://", "mysql+pymysql://")
    source = {"maria": {"url": url, "reader": "sqlalchemy"}}
    tables = [
        _incremental_on("w", "dt", "maria", null_cursor="skip"),
        {**_incremental_on("w", "dt", "maria"), "name": "strict"},
    ]
    summary = run(tmp_path, source, tables)
    assert read(summary, "maria.w").column("id").to_pylist() == [1]
    assert result(summary, "maria.w").null_cursor_rows == 2
    error = result(summary, "maria.strict").error
    assert "2 row(s) have a NULL or zero-date cursor 'dt'" in error


@pytest.mark.mysql
def test_mariadb_epoch_fix_for_a_named_zone_names_the_time_zone_tables(
    mysql_admin, mysql_db, tmp_path
):
    """The CONVERT_TZ query the refusal suggests gives NULL on a server without time zone
    tables (the default): pasted as is, every row was a NULL cursor, and the refusal
    pointed at the data."""
    db = mysql_db.rsplit("/", 1)[1]
    with mysql_admin.cursor() as cur:
        cur.execute(f"USE `{db}`")
        cur.execute("CREATE TABLE w (id int, ep bigint)")
        cur.execute("INSERT INTO w VALUES (1, 1737633600), (2, 1737676800)")
        cur.execute("SELECT CONVERT_TZ('2000-01-01', '+00:00', 'Europe/Berlin') IS NULL")
        no_tables = bool(cur.fetchone()[0])
    source = {"maria": mysql_db}
    summary = run(tmp_path, source, [_incremental_on("w", "ep", "maria")], timezone="Europe/Berlin")
    error = result(summary, "maria.w").error
    assert "CONVERT_TZ(FROM_UNIXTIME(`ep`), '+00:00', 'Europe/Berlin') AS ep_at" in error
    assert "needs the server's time zone tables (load them with mysql_tzinfo_to_sql)" in error
    if not no_tables:
        pytest.skip("this server has time zone tables: the pasted query works")
    query = error.split("`query: ")[1].split("` with `cursor")[0]
    fixed = {
        "source": "maria",
        "name": "w_at",
        "query": query,
        "extract": {"mode": "incremental", "cursor": "ep_at"},
    }
    error = result(run(tmp_path, source, [fixed], timezone="Europe/Berlin"), "maria.w_at").error
    assert "2 row(s) have a NULL or zero-date cursor 'ep_at'" in error
    assert "this server has no time zone tables" in error
    assert "mysql_tzinfo_to_sql" in error


@pytest.mark.postgres
@pytest.mark.parametrize("reader", ["auto", "sqlalchemy"])
def test_a_postgres_text_cursor_is_offered_the_iso_cast_and_the_epoch_form(
    pg_admin, pg_schema, pg_url, tmp_path, reader
):
    """A text cursor's refusal offered only `to_timestamp("s")`, which PostgreSQL refuses
    for text, and which is wrong for ISO 8601 text: both fixes are offered, and each,
    pasted, extracts the window of the text it is meant for."""
    pg_admin.execute(f'CREATE TABLE "{pg_schema}".tx (id int, s text, ep varchar(12))')
    pg_admin.execute(
        f"""INSERT INTO "{pg_schema}".tx VALUES
        (1, '2025-01-23 10:00:00', '1737633600'), (2, '2025-01-24 10:00:00', '1737720000')"""
    )
    url = pg_url if reader == "auto" else pg_url.replace("postgresql://", "postgresql+psycopg://")
    source = {"pg": {"url": url, "reader": reader}}

    def table(cursor: str) -> dict:
        incremental = {"mode": "incremental", "cursor": cursor}
        return {"source": "pg", "table": f"{pg_schema}.tx", "name": cursor, "extract": incremental}

    summary = run(tmp_path, source, [table("s"), table("ep")])
    iso = result(summary, "pg.s").error
    assert "cursor column 's' is of type text, not a date or time" in iso
    assert f'`query: select *, CAST("s" AS timestamp) AS s_at from {pg_schema}.tx`' in iso
    assert 'convert it with to_timestamp(CAST("s" AS double precision)) instead' in iso
    epoch = result(summary, "pg.ep").error
    assert "is of type character varying" in epoch
    assert 'to_timestamp(CAST("ep" AS double precision))' in epoch
    fixes = [
        {
            "source": "pg",
            "name": "iso",
            "query": f'select *, CAST("s" AS timestamp) AS s_at from "{pg_schema}".tx',
            "extract": {"mode": "incremental", "cursor": "s_at"},
        },
        {
            "source": "pg",
            "name": "epoch",
            "query": (
                'select *, to_timestamp(CAST("ep" AS double precision)) AS ep_at '
                f'from "{pg_schema}".tx'
            ),
            "extract": {"mode": "incremental", "cursor": "ep_at"},
        },
    ]
    summary = run(tmp_path, source, fixes, timezone="UTC")
    assert read(summary, "pg.iso").column("id").to_pylist() == [1]
    assert read(summary, "pg.epoch").column("id").to_pylist() == [1]


@pytest.mark.mysql
def test_a_mariadb_varchar_cursor_is_offered_the_iso_cast_and_the_epoch_form(
    mysql_admin, mysql_db, tmp_path
):
    """A varchar cursor's only suggested fix was FROM_UNIXTIME(label), which turns
    '2025-01-23 10:00:00' into 1970 without an error: the ISO cast comes first."""
    db = mysql_db.rsplit("/", 1)[1]
    with mysql_admin.cursor() as cur:
        cur.execute(f"USE `{db}`")
        cur.execute("CREATE TABLE tx (id int, label varchar(30))")
        cur.execute(
            "INSERT INTO tx VALUES (1, '2025-01-23 10:00:00.5'), (2, '2025-01-24 10:00:00')"
        )
    incremental = {"mode": "incremental", "cursor": "label"}
    summary = run(
        tmp_path, {"m": mysql_db}, [{"source": "m", "table": "tx", **{"extract": incremental}}]
    )
    error = result(summary, "m.tx").error
    assert "cursor column 'label' is of type varchar or char, not a date or time" in error
    assert "`query: select *, CAST(`label` AS DATETIME(6)) AS label_at from tx`" in error
    assert "if it holds unix epoch seconds, convert it with FROM_UNIXTIME(`label`)" in error
    fixed = {
        "source": "m",
        "name": "iso",
        "query": "select *, CAST(`label` AS DATETIME(6)) AS label_at from tx",
        "extract": {"mode": "incremental", "cursor": "label_at"},
    }
    data = read(run(tmp_path, {"m": mysql_db}, [fixed]), "m.iso")
    assert data.column("id").to_pylist() == [1]
    assert data.column("label_at").to_pylist() == [datetime(2025, 1, 23, 10, 0, 0, 500000)]


# Two tables of one shape, one with rows and one without, for a misspelt cursor
TYPO = """
CREATE TABLE full_t (id INTEGER PRIMARY KEY, name TEXT, updated_at TIMESTAMP);
INSERT INTO full_t VALUES (1, 'a', '2025-01-23 10:00:00'), (2, 'b', '2025-01-24 10:00:00');
CREATE TABLE empty_t (id INTEGER PRIMARY KEY, name TEXT, updated_at TIMESTAMP);
"""


@pytest.mark.parametrize("reader", ["auto", "sqlalchemy"])
def test_sqlite_misspelt_cursor_is_refused_by_name_with_the_columns_there_are(tmp_path, reader):
    """SQLite reads `"updated_atx"`, no column, as the text 'updated_atx': a table with
    rows was refused as bad data ("holds 2 value(s) that are not ISO 8601 ... (e.g.
    'updated_atx')") with a conversion query that could not work. The table, the query
    and the empty table now fail alike, naming the column, its table and the columns."""
    url = sqlite_source(tmp_path, TYPO)
    source = {"lite": {"url": url, "reader": reader}}
    typo = {"mode": "incremental", "cursor": "updated_atx"}
    good = {"mode": "incremental", "cursor": "UPDATED_AT"}
    tables = [
        {"source": "lite", "table": "full_t", "extract": typo},
        {"source": "lite", "table": "empty_t", "extract": typo},
        {"source": "lite", "name": "q", "query": "select * from full_t", "extract": typo},
        {"source": "lite", "table": "full_t", "name": "good", "extract": good},
    ]
    summary = run(tmp_path, source, tables)
    assert not summary.ok
    for key, of in (
        ("lite.full_t", "a column of full_t"),
        ("lite.empty_t", "a column of empty_t"),
        ("lite.q", "a column the query returns"),
    ):
        failed = result(summary, key)
        assert failed.action == "failed", key
        assert failed.error == (
            f"{key}: column not found: cursor column 'updated_atx' is not {of} "
            "(columns: id, name, updated_at); did you mean 'updated_at'?"
        )
    # a name in another letter case is the column, as SQLite matches it
    assert read(summary, "lite.good").column("id").to_pylist() == [1]


def test_sqlite_misspelt_cursor_of_a_wide_table_lists_some_columns_and_the_close_one(tmp_path):
    columns = ", ".join(f"c{i:02d} TEXT" for i in range(40))
    url = sqlite_source(tmp_path, f"CREATE TABLE wide ({columns}, changed_on TEXT);")
    summary = run(tmp_path, {"lite": url}, [_incremental_on("wide", "changed_no")])
    error = result(summary, "lite.wide").error
    shown = ", ".join(f"c{i:02d}" for i in range(20))
    assert f"(columns: {shown}, ... (21 more)); did you mean 'changed_on'?" in error
