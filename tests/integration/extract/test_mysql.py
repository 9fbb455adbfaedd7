"""Extraction from a real MariaDB server: exact types, windows, quoting."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from tests.helpers.extract import f32, read, result, run

pytestmark = pytest.mark.mysql

NY = ZoneInfo("America/New_York")


def _db(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _exec(mysql_admin, db: str, *statements: str, rows: list | None = None) -> list:
    with mysql_admin.cursor() as cur:
        cur.execute(f"USE `{db}`")
        cur.execute("SET time_zone = '+00:00'")
        out: list = []
        for sql in statements:
            if rows is not None:
                cur.executemany(sql, rows)
            else:
                cur.execute(sql)
            out = list(cur.fetchall())
            if cur.description:
                names = [d[0] for d in cur.description]
                out = [dict(zip(names, row, strict=True)) for row in out]
        return out


TYPES_DDL = """
CREATE TABLE every_type (
  id int PRIMARY KEY, tiny tinyint, small smallint, normal int, big bigint,
  ubig bigint unsigned, money decimal(12,2), umoney decimal(10,3) unsigned,
  whole decimal(5,0), wide decimal(30,15), widest decimal(65,30),
  single float, doubled double, body text, label varchar(40), day date,
  wall datetime(6), instant timestamp(6) NULL, flag boolean, doc json,
  raw varbinary(16), big_blob blob
) CHARACTER SET utf8mb4"""
TYPES_ROWS = """
INSERT INTO every_type VALUES
 (1, -128, -32768, 2147483647, 9223372036854775807, 18446744073709551615, 1234567890.12,
  1234567.125, 99999, 123456789012345.123456789012345,
  12345678901234567890123456789012345.123456789012345678901234567890,
  1.1, 2.718281828459045, 'Ødegaard — 東京 🚀', 'naïve ☃', '2025-01-23',
  '2025-01-23 12:34:56.789012', '2025-01-23 12:34:56.789012', true, '{"a": [1, 2], "ü": null}',
  x'00ff10', x'deadbeef'),
 (2, 127, 32767, -2147483648, -9223372036854775808, 0, -9999999999.99, 0, -99999,
  -0.000000000000001, -1, -0.5, 1e300, '', ' ', '1000-01-01', '1000-01-01 00:00:00',
  '1970-01-01 00:00:01', false, '[]', x'', x''),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL)"""


def test_every_type_round_trips_exactly(mysql_admin, mysql_db, tmp_path):
    db = _db(mysql_db)
    _exec(mysql_admin, db, TYPES_DDL, TYPES_ROWS)

    summary = run(tmp_path, {"maria": mysql_db}, [{"source": "maria", "table": "every_type"}])
    data = read(summary, "maria.every_type")
    expected_types = {
        "id": pa.int32(),
        "tiny": pa.int8(),
        "small": pa.int16(),
        "normal": pa.int32(),
        "big": pa.int64(),
        "ubig": pa.uint64(),
        "money": pa.decimal128(12, 2),
        "umoney": pa.decimal128(10, 3),
        "whole": pa.decimal128(5, 0),
        "wide": pa.decimal128(30, 15),
        "widest": pa.decimal256(65, 30),
        "single": pa.float32(),
        "doubled": pa.float64(),
        "body": pa.string(),
        "label": pa.string(),
        "day": pa.date32(),
        "wall": pa.timestamp("us"),
        "instant": pa.timestamp("us", tz="UTC"),
        "flag": pa.bool_(),
        "doc": pa.string(),  # MariaDB JSON is LONGTEXT on the wire: no JSON type to keep
        "raw": pa.binary(),
        "big_blob": pa.binary(),
    }
    for name, wanted in expected_types.items():
        assert data.schema.field(name).type == wanted, name

    got = sorted(data.to_pylist(), key=lambda r: r["id"])
    want = _exec(mysql_admin, db, "SELECT * FROM every_type ORDER BY id")
    assert len(got) == len(want) == 3
    for g, w in zip(got, want, strict=True):
        for name in (
            "id",
            "tiny",
            "small",
            "normal",
            "big",
            "ubig",
            "money",
            "umoney",
            "whole",
            "wide",
            "widest",
            "doubled",
            "body",
            "label",
            "day",
            "wall",
            "raw",
            "big_blob",
        ):
            assert g[name] == w[name], (name, g[name], w[name])
        assert g["single"] == (None if w["single"] is None else f32(w["single"]))
        assert g["flag"] == (None if w["flag"] is None else bool(w["flag"]))
        assert g["doc"] == w["doc"]
        # the session above runs in UTC: TIMESTAMP comes back as naive UTC
        assert g["instant"] == (None if w["instant"] is None else w["instant"].replace(tzinfo=UTC))
    first, second, nulls = got
    assert first["money"] == Decimal("1234567890.12")
    assert first["wide"] == Decimal("123456789012345.123456789012345")
    assert first["widest"] == Decimal(
        "12345678901234567890123456789012345.123456789012345678901234567890"
    )
    assert first["body"] == "Ødegaard — 東京 🚀"
    assert first["instant"] == datetime(2025, 1, 23, 12, 34, 56, 789012, tzinfo=UTC)
    assert json.loads(first["doc"]) == {"a": [1, 2], "ü": None}
    assert first["flag"] is True and second["flag"] is False
    assert second["raw"] == b"" and second["body"] == ""
    assert all(v is None for k, v in nulls.items() if k != "id")


def _window_rows(day: date) -> tuple[list[tuple], set[int]]:
    start = datetime(day.year, day.month, day.day, tzinfo=NY)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=NY)
    tiny = timedelta(microseconds=1)
    instants = [
        (1, start),
        (2, start - tiny),
        (3, end - tiny),
        (4, end),
        (5, start + (end - start) / 2),
        (6, end.astimezone(UTC) - timedelta(hours=1)),  # in the NY day, next UTC day
        (7, start.astimezone(UTC).replace(hour=0)),  # UTC midnight: the NY day before
    ]
    included = {i for i, at in instants if start <= at < end}
    rows = [
        (i, at.astimezone(UTC).replace(tzinfo=None), at.astimezone(NY).replace(tzinfo=None))
        for i, at in instants
    ]
    return rows, included


@pytest.mark.parametrize("day", [date(2025, 1, 23), date(2025, 3, 9), date(2025, 11, 2)], ids=str)
@pytest.mark.parametrize("cursor", ["at", "wall"])
def test_incremental_window_in_new_york(mysql_admin, mysql_db, tmp_path, day, cursor):
    db = _db(mysql_db)
    rows, included = _window_rows(day)
    _exec(mysql_admin, db, "CREATE TABLE events (id int, at timestamp(6) NULL, wall datetime(6))")
    _exec(mysql_admin, db, "INSERT INTO events VALUES (%s, %s, %s)", rows=rows)
    summary = run(
        tmp_path,
        {"maria": mysql_db},
        [
            {
                "source": "maria",
                "table": "events",
                "extract": {"mode": "incremental", "cursor": cursor},
            }
        ],
        date=day.isoformat(),
        timezone="America/New_York",
    )
    assert set(read(summary, "maria.events").column("id").to_pylist()) == included
    res = result(summary, "maria.events")
    hours = {date(2025, 3, 9): 23, date(2025, 11, 2): 25}.get(day, 24)
    span = datetime.fromisoformat(res.window_end) - datetime.fromisoformat(res.window_start)
    assert span == timedelta(hours=hours)


def test_custom_queries_and_percent_signs(mysql_admin, mysql_db, tmp_path):
    db = _db(mysql_db)
    rows, included = _window_rows(date(2025, 11, 2))
    _exec(mysql_admin, db, "CREATE TABLE events (id int, at timestamp(6) NULL, wall datetime(6))")
    _exec(mysql_admin, db, "INSERT INTO events VALUES (%s, %s, %s)", rows=rows)
    marked = (
        "SELECT id, CONCAT(id, '%') AS pct, wall FROM events "
        "WHERE wall >= :window_start AND wall < :window_end AND 'a:b' <> '%s'"
    )
    summary = run(
        tmp_path,
        {"maria": mysql_db},
        [
            {
                "source": "maria",
                "name": "marked",
                "query": marked,
                "extract": {"mode": "incremental", "cursor": "wall"},
            },
            {
                "source": "maria",
                "name": "wrapped",
                "query": "SELECT id, at FROM events;",
                "extract": {"mode": "incremental", "cursor": "at"},
            },
            {"source": "maria", "name": "plain", "query": "SELECT id FROM events WHERE id < 100"},
        ],
        date="2025-11-02",
        timezone="America/New_York",
    )
    assert summary.ok, [r.error for r in summary.results]
    marked_rows = read(summary, "maria.marked").sort_by("id")
    assert marked_rows.column("id").to_pylist() == sorted(included)
    assert marked_rows.column("pct").to_pylist() == [f"{i}%" for i in sorted(included)]
    assert set(read(summary, "maria.wrapped").column("id").to_pylist()) == included
    assert read(summary, "maria.plain").num_rows == len(rows)


def test_a_marker_query_that_does_not_return_its_cursor_is_refused_not_windowed_hours_off(
    mysql_admin, mysql_db, tmp_path
):
    """The markers are bound by the cursor's type; unreturned, a TIMESTAMP cursor was bound
    as New York wall time against the session's UTC: the window moved 5 hours, exit 0."""
    db = _db(mysql_db)
    rows, included = _window_rows(date(2025, 11, 2))
    _exec(mysql_admin, db, "CREATE TABLE events (id int, at timestamp(6) NULL, wall datetime(6))")
    _exec(mysql_admin, db, "INSERT INTO events VALUES (%s, %s, %s)", rows=rows)
    where = "WHERE at >= :window_start AND at < :window_end"
    summary = run(
        tmp_path,
        {"maria": mysql_db},
        [
            {
                "source": "maria",
                "name": name,
                "query": f"SELECT {columns} FROM events {where}",
                "extract": {"mode": "incremental", "cursor": "at"},
            }
            for name, columns in (("hidden", "id, wall"), ("returned", "id, at"))
        ],
        date="2025-11-02",
        timezone="America/New_York",
    )
    hidden = result(summary, "maria.hidden")
    assert hidden.action == "failed" and not summary.ok
    assert hidden.error.startswith(
        "maria.hidden: the query places :window_start/:window_end itself but does not return "
        "its cursor column 'at' (it returns id, wall)"
    ), hidden.error
    assert set(read(summary, "maria.returned").column("id").to_pylist()) == included


@pytest.mark.parametrize("cursor", ["at", "wall"])
def test_the_sqlalchemy_reader_windows_and_reads_timestamps_as_the_native_one(
    mysql_admin, mysql_db, tmp_path, cursor
):
    """The SQLAlchemy reader bound the window as wall time in the server's session zone:
    a TIMESTAMP window ran hours off in New York, and rows went missing with exit 0."""
    db = _db(mysql_db)
    rows, included = _window_rows(date(2025, 11, 2))
    _exec(mysql_admin, db, "CREATE TABLE events (id int, at timestamp(6) NULL, wall datetime(6))")
    _exec(mysql_admin, db, "INSERT INTO events VALUES (%s, %s, %s)", rows=rows)
    url = mysql_db.replace("mysql://", "mysql+pymysql://")
    extract = {"mode": "incremental", "cursor": cursor}
    marked = f"SELECT id, at FROM events WHERE {cursor} >= :window_start AND {cursor} < :window_end"
    tables = [
        {"source": source, "table": "events", "extract": extract} for source in ("cx", "sa")
    ] + [{"source": "sa", "name": "marked", "query": marked, "extract": extract}]
    summary = run(
        tmp_path,
        {"cx": mysql_db, "sa": {"url": url, "reader": "sqlalchemy"}},
        tables,
        date="2025-11-02",
        timezone="America/New_York",
    )
    native = read(summary, "cx.events").sort_by("id")
    alchemy = read(summary, "sa.events").sort_by("id")
    assert set(native.column("id").to_pylist()) == included
    assert alchemy.column("id").to_pylist() == native.column("id").to_pylist()
    assert alchemy.schema.field("at").type == native.schema.field("at").type
    assert alchemy.column("at").to_pylist() == native.column("at").to_pylist()
    if cursor == "at":
        assert set(read(summary, "sa.marked").column("id").to_pylist()) == included
    else:  # the query does not return its cursor: refused, as by the native reader
        assert "does not return its cursor column 'wall'" in result(summary, "sa.marked").error


def test_a_full_mode_query_with_markers_has_no_cursor_to_return_and_reads_its_window(
    mysql_admin, mysql_db, tmp_path
):
    """`mode: full` takes no `cursor:`: its markers stay wall time, for DATETIME columns."""
    db = _db(mysql_db)
    _exec(mysql_admin, db, "CREATE TABLE ev (id int, dt datetime(6), note text)")
    _exec(
        mysql_admin,
        db,
        "INSERT INTO ev VALUES (%s, %s, %s)",
        rows=[
            (1, "2025-11-01 23:59:59", "a"),
            (2, "2025-11-02 00:00:00", "b"),
            (3, "2025-11-02 23:59:59", "c"),
            (4, "2025-11-03 00:00:00", "d"),
        ],
    )
    query = "select id, note from ev where dt >= :window_start and dt < :window_end"
    summary = run(
        tmp_path,
        {"maria": mysql_db},
        [{"source": "maria", "name": "marked", "query": query, "extract": {"mode": "full"}}],
        date="2025-11-02",
    )
    assert summary.ok, [r.error for r in summary.results]
    assert sorted(read(summary, "maria.marked").column("id").to_pylist()) == [2, 3]


@pytest.mark.parametrize("evil", ["x`; drop table y; --", 'x"; drop table y; --'])
def test_hostile_identifiers_are_data(mysql_admin, mysql_db, tmp_path, evil):
    db = _db(mysql_db)
    quoted = "`" + evil.replace("`", "``") + "`"
    column = "c`; drop table y; --"
    _exec(
        mysql_admin,
        db,
        "CREATE TABLE y (id int)",
        "INSERT INTO y VALUES (1), (2)",
        f"CREATE TABLE {quoted} (id int, `c``; drop table y; --` date)",
        f"INSERT INTO {quoted} VALUES (7, '2025-01-23'), (8, '2025-01-24')",
    )
    summary = run(
        tmp_path,
        {"maria": mysql_db},
        [
            {"source": "maria", "table": evil},
            {
                "source": "maria",
                "table": evil,
                "name": "evil_incremental",
                "extract": {"mode": "incremental", "cursor": column},
            },
            {"source": "maria", "table": "y"},
        ],
    )
    assert summary.ok, [r.error for r in summary.results]
    evil_rows = read(summary, f"maria.{evil}")
    assert evil_rows.column("id").to_pylist() == [7, 8]
    assert evil_rows.schema.names == ["id", column]
    assert read(summary, "maria.evil_incremental").column("id").to_pylist() == [7]
    assert _exec(mysql_admin, db, "SELECT count(*) AS n FROM y") == [{"n": 2}]


@pytest.mark.parametrize("encoded", [True, False], ids=["encoded", "raw"])
def test_credentials_with_url_reserved_characters(mysql_admin, mysql_db, tmp_path, encoded):
    """A password with URL-reserved characters works, percent-encoded or written raw as
    secret stores generate it ('@' then '#': a strict parser took 'corpnet' for the host,
    retried it as a transient error and printed it), and never shows."""
    from urllib.parse import quote

    database = mysql_db.rsplit("/", 1)[1]
    user, password = f"u_{database[-8:]}", "p@ss:w/rd#1" if encoded else "Tr0b@corpnet#24?x"
    with mysql_admin.cursor() as cur:
        cur.execute(f"CREATE TABLE `{database}`.t (id INT)")
        cur.execute(f"INSERT INTO `{database}`.t VALUES (1), (2)")
        cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
        cur.execute(f"GRANT SELECT ON `{database}`.* TO '{user}'@'%'")
    try:
        written = quote(password, safe="") if encoded else password
        url = f"mysql://{user}:{written}@127.0.0.1:3306/{database}"
        summary = run(tmp_path, {"my": url}, [{"source": "my", "table": "t"}])
        assert read(summary, "my.t").column("id").to_pylist() == [1, 2]
        sidecar = next(tmp_path.rglob("*_metadata.json")).read_text()
        assert password not in sidecar and quote(password, safe="") not in sidecar
        assert "corpnet" not in sidecar
    finally:
        with mysql_admin.cursor() as cur:
            cur.execute(f"DROP USER '{user}'@'%'")


LAX_DATES_DDL = """
CREATE TABLE lax_dates (
  id int PRIMARY KEY, day date, wall datetime(6), instant timestamp(6) NULL DEFAULT NULL
)"""
LAX_DATES_ROWS = """
INSERT INTO lax_dates VALUES
 (1, '2025-01-23', '2025-01-23 12:34:56.5', '2025-01-23 12:34:56.5'),
 (2, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00'),
 (3, '2025-00-00', '2025-05-00 10:00:00', NULL),
 (4, '2025-02-31', '2025-02-30 10:00:00', NULL),
 (5, '0000-01-01', '1000-01-01 00:00:00', '1970-01-01 00:00:01'),
 (6, NULL, NULL, NULL)"""


def test_zero_partial_and_invalid_dates_become_null(mysql_admin, mysql_db, tmp_path):
    """MySQL keeps `0000-00-00`, `2025-00-00` and (ALLOW_INVALID_DATES) `2025-02-31` under a
    lax sql_mode; none is a date, and ConnectorX panicked on each: they come out NULL,
    as JDBC's zeroDateTimeBehavior=convertToNull has them, and the table extracts. So
    does year 0 (`0000-01-01`), which Python cannot hold."""
    db = _db(mysql_db)
    _exec(
        mysql_admin,
        db,
        "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'",
        LAX_DATES_DDL,
        LAX_DATES_ROWS,
    )
    summary = run(tmp_path, {"maria": mysql_db}, [{"source": "maria", "table": "lax_dates"}])
    data = read(summary, "maria.lax_dates").sort_by("id")
    assert data.schema.field("day").type == pa.date32()
    assert data.schema.field("wall").type == pa.timestamp("us")
    assert data.schema.field("instant").type == pa.timestamp("us", tz="UTC")
    rows = {r["id"]: r for r in data.to_pylist()}
    assert rows[1] == {
        "id": 1,
        "day": date(2025, 1, 23),
        "wall": datetime(2025, 1, 23, 12, 34, 56, 500000),
        "instant": datetime(2025, 1, 23, 12, 34, 56, 500000, tzinfo=UTC),
    }
    for i in (2, 3, 4, 6):
        assert rows[i] == {"id": i, "day": None, "wall": None, "instant": None}, i
    assert rows[5]["day"] is None  # year 0: no Python (or Spark) reader holds it
    assert rows[5]["wall"] == datetime(1000, 1, 1)
    assert rows[5]["instant"] == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)


def test_time_beyond_a_day_is_read_as_text(mysql_admin, mysql_db, tmp_path):
    """MySQL TIME is a duration from -838:59:59 to 838:59:59, not a time of day: it is
    kept as the server's text, which holds every value (ConnectorX panicked outside 0-24 h)."""
    db = _db(mysql_db)
    _exec(
        mysql_admin,
        db,
        "CREATE TABLE spans (id int, t time, t6 time(6))",
        "INSERT INTO spans VALUES (1, '12:34:56', '12:34:56.5'), (2, '838:59:59', "
        "'-838:59:59.000000'), (3, '-01:00:00', '-00:00:00.25'), (4, '00:00:00', NULL)",
    )
    summary = run(tmp_path, {"maria": mysql_db}, [{"source": "maria", "table": "spans"}])
    data = read(summary, "maria.spans").sort_by("id")
    assert data.schema.field("t").type == pa.string()
    assert data.schema.field("t6").type == pa.string()
    assert data.column("t").to_pylist() == ["12:34:56", "838:59:59", "-01:00:00", "00:00:00"]
    assert data.column("t6").to_pylist() == [
        "12:34:56.500000",
        "-838:59:59.000000",
        "-00:00:00.250000",
        None,
    ]


def test_spatial_columns_are_read_as_well_known_binary(mysql_admin, mysql_db, tmp_path):
    """ConnectorX panicked on MYSQL_TYPE_GEOMETRY (a Rust backtrace, the table failed):
    a spatial column is read as standard WKB, what GeoParquet, Spark and DuckDB's spatial
    extension read (the server's own format has the SRID in front)."""
    db = _db(mysql_db)
    _exec(
        mysql_admin,
        db,
        "CREATE TABLE shapes (id int, g point, p polygon, x geometry)",
        "INSERT INTO shapes VALUES (1, ST_GeomFromText('POINT(1 2)', 4326), "
        "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'), NULL), "
        "(2, NULL, NULL, ST_GeomFromText('LINESTRING(0 0,3 4)'))",
    )
    expected = _exec(
        mysql_admin,
        db,
        "SELECT id, ST_AsBinary(g) AS g, ST_AsBinary(p) AS p, ST_AsBinary(x) AS x "
        "FROM shapes ORDER BY id",
    )
    summary = run(tmp_path, {"maria": mysql_db}, [{"source": "maria", "table": "shapes"}])
    data = read(summary, "maria.shapes").sort_by("id")
    assert [data.schema.field(c).type for c in "gpx"] == [pa.binary()] * 3
    assert data.to_pylist() == expected
    # little-endian WKB point (type 1) at x=1, y=2
    assert data.column("g")[0].as_py() == bytes.fromhex("0101000000") + struct_xy(1.0, 2.0)


def struct_xy(x: float, y: float) -> bytes:
    import struct

    return struct.pack("<dd", x, y)


def test_decimals_beyond_eighteen_integer_digits_round_trip_exactly(
    mysql_admin, mysql_db, tmp_path
):
    """ConnectorX rescales every DECIMAL to 10 places in a 96-bit decimal and panicked
    on 19+ integer digits; such columns are read as exact text and cast back."""
    db = _db(mysql_db)
    _exec(
        mysql_admin,
        db,
        "CREATE TABLE wide (id int, a decimal(25,2), b decimal(20,0) unsigned, "
        "c decimal(21,2), d decimal(28,10), e decimal(19,0))",
        "INSERT INTO wide VALUES (1, 12345678901234567890.12, 99999999999999999999, "
        "9999999999999999999.99, 999999999999999999.9999999999, -9999999999999999999), "
        "(2, -0.01, 0, -9999999999999999999.99, -999999999999999999.9999999999, 0)",
    )
    summary = run(tmp_path, {"maria": mysql_db}, [{"source": "maria", "table": "wide"}])
    data = read(summary, "maria.wide").sort_by("id")
    assert [data.schema.field(n).type for n in "abcde"] == [
        pa.decimal128(25, 2),
        pa.decimal128(20, 0),
        pa.decimal128(21, 2),
        pa.decimal128(28, 10),
        pa.decimal128(19, 0),
    ]
    first, second = data.to_pylist()
    assert first["a"] == Decimal("12345678901234567890.12")
    assert first["b"] == Decimal("99999999999999999999")
    assert first["c"] == Decimal("9999999999999999999.99")
    assert first["d"] == Decimal("999999999999999999.9999999999")
    assert first["e"] == Decimal("-9999999999999999999")
    assert (second["a"], second["c"]) == (Decimal("-0.01"), Decimal("-9999999999999999999.99"))
    assert second["d"] == Decimal("-999999999999999999.9999999999")


def test_a_driver_panic_fails_only_its_table_in_one_line(
    mysql_admin, mysql_db, tmp_path, monkeypatch
):
    """A ConnectorX panic is a BaseException (pyo3_runtime.PanicException): it used to end
    the whole run. It now fails its table with one line; the other tables extract."""
    from onceflow.extract.readers import MysqlReader

    db = _db(mysql_db)
    _exec(
        mysql_admin,
        db,
        "SET SESSION sql_mode = ''",
        "CREATE TABLE zd_date (id int, v date)",
        "INSERT INTO zd_date VALUES (1, '0000-00-00')",
        "CREATE TABLE fine (id int)",
        "INSERT INTO fine VALUES (1), (2)",
    )
    # read every column as it is, as onceflow did before: ConnectorX panics on the zero date
    monkeypatch.setattr(MysqlReader, "_select", staticmethod(lambda sql, _cols, _reads: sql))
    summary = run(
        tmp_path,
        {"maria": mysql_db},
        [{"source": "maria", "table": "zd_date"}, {"source": "maria", "table": "fine"}],
    )
    failed = result(summary, "maria.zd_date")
    assert failed.action == "failed"
    assert failed.attempts == 1  # a panic is not transient: no retry
    assert failed.error.startswith("maria.zd_date: the source driver failed (a panic): ")
    assert "0000-00-00" in failed.error and "\n" not in failed.error
    assert read(summary, "maria.fine").column("id").to_pylist() == [1, 2]
    assert summary.run.status == "failed"


def test_a_tinyint_1_other_than_0_or_1_fails_its_table_naming_the_value(
    mysql_admin, mysql_db, tmp_path
):
    """tinyint(1) (MariaDB's BOOLEAN) is read as a boolean, but its 1 is only a display
    width: 5, -1 and unsigned 200 became true silently. A table holding one fails with
    one line naming the column, the value and the cast; 0/1 columns stay booleans."""
    db = _db(mysql_db)
    _exec(
        mysql_admin,
        db,
        "CREATE TABLE flags (id int, flag boolean, t1 tinyint(1), t1u tinyint(1) unsigned)",
        "CREATE TABLE signed_flags (id int, t1 tinyint(1))",
        "CREATE TABLE unsigned_flags (id int, t1u tinyint(1) unsigned)",
        "INSERT INTO flags VALUES (1, 1, 0, 1), (2, 0, 1, 0), (3, NULL, NULL, NULL)",
        "INSERT INTO signed_flags VALUES (1, 1), (2, 5), (3, -1)",
        "INSERT INTO unsigned_flags VALUES (1, 0), (2, 200)",
    )
    summary = run(
        tmp_path,
        {"maria": mysql_db},
        [
            {"source": "maria", "table": "flags"},
            {"source": "maria", "table": "signed_flags"},
            {"source": "maria", "table": "unsigned_flags"},
            {
                "source": "maria",
                "name": "as_integers",
                "query": "SELECT id, CAST(t1 AS SIGNED) AS t1 FROM signed_flags",
            },
        ],
    )
    flags = read(summary, "maria.flags").sort_by("id")
    for name in ("flag", "t1", "t1u"):
        assert flags.schema.field(name).type == pa.bool_(), name
    assert flags.column("flag").to_pylist() == [True, False, None]
    assert flags.column("t1").to_pylist() == [False, True, None]
    for table, shown in (("signed_flags", -1), ("unsigned_flags", 200)):
        failed = result(summary, f"maria.{table}")
        assert failed.action == "failed" and failed.attempts == 1
        column = "t1u" if table.startswith("unsigned") else "t1"
        assert failed.error.startswith(f"maria.{table}: column '{column}' is read as a boolean "), (
            failed.error
        )
        assert f"holds {shown}, neither 0 nor 1" in failed.error
        assert f"CAST({column} AS SIGNED) AS {column}" in failed.error
        assert "\n" not in failed.error
    integers = read(summary, "maria.as_integers").sort_by("id")
    assert integers.column("t1").to_pylist() == [1, 5, -1]


@pytest.mark.parametrize("reader", ["auto", "sqlalchemy"])
def test_a_query_returning_two_columns_of_one_name_is_refused_naming_them(
    mysql_admin, mysql_db, tmp_path, reader
):
    """MariaDB refused onceflow's probe with `Duplicate column name 'id'` (1060), with no
    fix: the table fails with the same line as on the other databases."""
    _exec(
        mysql_admin,
        _db(mysql_db),
        "CREATE TABLE zoo (id int, ts datetime)",
        "INSERT INTO zoo VALUES (1, '2025-01-23 12:00')",
    )
    url = mysql_db if reader == "auto" else mysql_db.replace("mysql://", "mysql+pymysql://")
    join = "FROM zoo a JOIN zoo b ON a.id = b.id"
    tables = [
        {"source": "m", "name": "full", "query": f"SELECT a.id, b.id, a.ts {join}"},
        {
            "source": "m",
            "name": "windowed",
            "query": f"SELECT a.*, b.* {join}",
            "extract": {"mode": "incremental", "cursor": "ts"},
        },
    ]
    summary = run(tmp_path, {"m": {"url": url, "reader": reader}}, tables)
    for name in ("full", "windowed"):
        failed = result(summary, f"m.{name}")
        assert failed.action == "failed" and failed.attempts == 1, name
        assert failed.error.startswith(
            f"m.{name}: the query returns more than one column named 'id': the lake's file "
            "needs one name per column. Give each its own name with AS, e.g. "
            "`select a.id, b.id AS b_id ...`"
        ), failed.error


def test_through_sqlalchemy_a_time_column_fails_naming_it_and_the_fix(
    mysql_admin, mysql_db, tmp_path
):
    """Through `reader: sqlalchemy` a TIME came as a duration: extracted "completed",
    then every load failed (`Invalid data type for Delta Lake: Duration`) naming no
    column. It fails its extraction naming the column; the fix extracts it as the native
    reader does."""
    _exec(
        mysql_admin,
        _db(mysql_db),
        "CREATE TABLE spans (id int, tm time(6))",
        "INSERT INTO spans VALUES (1, '838:59:59'), (2, '-00:00:01.5')",
    )
    source = {"url": mysql_db.replace("mysql://", "mysql+pymysql://"), "reader": "sqlalchemy"}
    tables = [
        {"source": "m", "table": "spans"},
        {"source": "m", "name": "as_text", "query": "SELECT id, CAST(tm AS CHAR) AS tm FROM spans"},
    ]
    summary = run(tmp_path, {"m": source}, tables)
    failed = result(summary, "m.spans")
    assert failed.action == "failed"
    assert failed.error.startswith("m.spans: column 'tm' comes through SQLAlchemy as durations")
    assert failed.error.endswith("e.g. `CAST(tm AS CHAR) AS tm`")
    fixed = read(summary, "m.as_text").sort_by("id")
    assert fixed.column("tm").to_pylist() == ["838:59:59.000000", "-00:00:01.500000"]


def test_through_sqlalchemy_unsigned_integers_and_zero_dates_read_as_the_native_reader(
    mysql_admin, mysql_db, tmp_path
):
    """Through `reader: sqlalchemy` tinyint unsigned 255 failed ("cannot convert its
    values to int8"), int/bigint unsigned were signed types, and a zero or invalid date
    failed naming no column (PyMySQL gives its text): now uint8..uint64 and NULL."""
    _exec(
        mysql_admin,
        _db(mysql_db),
        "SET SESSION sql_mode = ''",
        "CREATE TABLE u (id int, tu tinyint unsigned, su smallint unsigned, "
        "mu mediumint unsigned, iu int unsigned, bu bigint unsigned, d date, dt datetime)",
        "INSERT INTO u VALUES (1, 255, 65535, 16777215, 4294967295, 18446744073709551615, "
        "'0000-00-00', '2024-02-31 10:00:00'), (2, 0, 0, 0, 0, 0, '2024-01-01', "
        "'2024-01-01 10:00:00'), (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    source = {"url": mysql_db.replace("mysql://", "mysql+pymysql://"), "reader": "sqlalchemy"}
    summary = run(
        tmp_path,
        {"cx": mysql_db, "sa": source},
        [{"source": s, "table": "u"} for s in ("cx", "sa")],
    )
    native, generic = read(summary, "cx.u").sort_by("id"), read(summary, "sa.u").sort_by("id")
    assert generic.schema.types == native.schema.types
    assert generic.to_pylist() == native.to_pylist()
    assert generic.schema.field("bu").type == pa.uint64()
    assert generic.column("d").to_pylist() == [None, date(2024, 1, 1), None]


def test_through_sqlalchemy_a_query_is_typed_as_its_table_and_the_native_reader(
    mysql_admin, mysql_db, tmp_path
):
    """Through `reader: sqlalchemy` a `query:` was typed from its values where a `table:`
    got its declared types: bigint unsigned 18446744073709551615 failed with an
    OverflowError naming no column, tinyint/int unsigned were int64, and a date column
    whose rows all held zero dates was a string column ('0000-00-00'), with one real date
    a date column. The server's description of the result now types it."""
    _exec(
        mysql_admin,
        _db(mysql_db),
        "SET SESSION sql_mode = ''",
        "CREATE TABLE u (id int, a tinyint unsigned, b bigint unsigned, c int unsigned, "
        "m mediumint unsigned, s smallint, d date, e datetime, n decimal(12,3) unsigned, "
        "w decimal(30,5), f float, t varchar(5), v varbinary(4), j json)",
        "INSERT INTO u VALUES (1, 255, 18446744073709551615, 4294967295, 16777215, -5, "
        "'0000-00-00', '0000-00-00 00:00:00', 123456789.125, -1.5, 0.5, 'x', x'00ff', '[1]'), "
        "(2, 0, 0, 0, 0, 0, '0000-00-00', '0000-00-00 00:00:00', NULL, NULL, NULL, NULL, "
        "NULL, NULL), (3, NULL, NULL, NULL, NULL, NULL, '2024-01-01', '2024-01-01 10:00:00', "
        "NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    source = {"url": mysql_db.replace("mysql://", "mysql+pymysql://"), "reader": "sqlalchemy"}
    zero = "SELECT id, d, e FROM u WHERE id < 3"
    summary = run(
        tmp_path,
        {"cx": mysql_db, "sa": source},
        [
            {"source": "sa", "table": "u"},
            {"source": "sa", "name": "q", "query": "SELECT * FROM u"},
            {"source": "cx", "name": "q", "query": "SELECT * FROM u"},
            {"source": "sa", "name": "zero", "query": zero},
            {"source": "cx", "name": "zero", "query": zero},
        ],
    )
    table, query = read(summary, "sa.u").sort_by("id"), read(summary, "sa.q").sort_by("id")
    native = read(summary, "cx.q").sort_by("id")
    assert query.schema == table.schema
    assert query.to_pylist() == table.to_pylist()
    # but FLOAT, a double through SQLAlchemy (table or query), float32 natively
    assert query.drop_columns(["f"]).schema == native.drop_columns(["f"]).schema
    assert query.drop_columns(["f"]).to_pylist() == native.drop_columns(["f"]).to_pylist()
    assert [query.schema.field(c).type for c in "abcm"] == [
        pa.uint8(),
        pa.uint64(),
        pa.uint32(),
        pa.uint32(),
    ]
    assert query.column("b").to_pylist() == [18446744073709551615, 0, None]
    assert query.column("d").to_pylist() == [None, None, date(2024, 1, 1)]
    zeros, native_zeros = read(summary, "sa.zero"), read(summary, "cx.zero")
    assert zeros.schema.field("d").type == pa.date32()
    assert zeros.schema.field("e").type == pa.timestamp("us")
    assert zeros.schema == native_zeros.schema
    assert zeros.column("d").to_pylist() == [None, None]


def test_through_sqlalchemy_a_spatial_table_reads_without_a_warning(
    mysql_admin, mysql_db, tmp_path
):
    """SQLAlchemy does not know MySQL's spatial types: reflecting them printed `SAWarning:
    Did not recognize type 'geometry'` to stderr, though the column is read as bytes."""
    import warnings

    _exec(
        mysql_admin,
        _db(mysql_db),
        "CREATE TABLE shapes (id int, g geometry, c geometrycollection, p point)",
        "INSERT INTO shapes VALUES (1, ST_GeomFromText('POINT(1 2)'), NULL, NULL)",
    )
    source = {"url": mysql_db.replace("mysql://", "mysql+pymysql://"), "reader": "sqlalchemy"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = run(tmp_path, {"sa": source}, [{"source": "sa", "table": "shapes"}])
    assert [str(w.message) for w in caught] == []
    data = read(summary, "sa.shapes")
    assert data.schema.field("g").type == pa.binary()
