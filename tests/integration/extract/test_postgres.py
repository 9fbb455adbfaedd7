"""Extraction from a real PostgreSQL server: exact types, windows, quoting, streaming."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers.cli import run_python
from tests.helpers.extract import f32, read, result, run

pytestmark = pytest.mark.postgres

NY = ZoneInfo("America/New_York")

TYPES_DDL = """
CREATE TABLE {t} (
  id int PRIMARY KEY, small smallint, normal integer, big bigint,
  money numeric(12,2), wide numeric(30,15), huge numeric(50,20), free numeric,
  single real, double double precision,
  body text, label varchar(40), day date, wall timestamp, instant timestamptz,
  flag boolean, doc json, docb jsonb, raw bytea, ident uuid, span interval
)"""
TYPES_ROWS = """
INSERT INTO {t} VALUES
 (1, -32768, 2147483647, 9223372036854775807, 1234567890.12,
  123456789012345.123456789012345, 123456789012345678901234567890.12345678901234567890,
  3.14159265358979323846264338327950288,
  1.1, 2.718281828459045, 'Ødegaard — 東京 🚀', 'naïve ☃', '2025-01-23',
  '2025-01-23 12:34:56.789012', '2025-01-23 12:34:56.789012+05:30', true,
  '{{"a": [1, 2], "ü": null}}', '{{"b": "東京"}}', '\\x00ff10',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '1 mon 2 days 3.5 seconds'),
 (2, 32767, -2147483648, -9223372036854775808, -9999999999.99,
  -0.000000000000001, -1, -0.5, -0.0, 1e300, '', ' ', '0001-01-01',
  '1970-01-01 00:00:00', '2038-01-19 03:14:08+00', false, '[]', '{{}}', '\\x', NULL,
  '-1 days'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL)
"""


def _pg_rows(pg_admin, table: str) -> list[dict]:
    cur = pg_admin.execute(f"SELECT * FROM {table} ORDER BY id")
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_every_type_round_trips_exactly(pg_admin, pg_schema, pg_url, tmp_path):
    table = f'"{pg_schema}".types'
    pg_admin.execute(TYPES_DDL.format(t=table))
    pg_admin.execute(TYPES_ROWS.format(t=table))

    summary = run(tmp_path, {"pg": pg_url}, [{"source": "pg", "table": f"{pg_schema}.types"}])
    data = read(summary, f"pg.{pg_schema}.types")

    schema = data.schema
    expected_types = {
        "id": pa.int32(),
        "small": pa.int16(),
        "normal": pa.int32(),
        "big": pa.int64(),
        "money": pa.decimal128(12, 2),
        "wide": pa.decimal128(30, 15),
        "huge": pa.decimal256(50, 20),
        "free": pa.string(),  # documented: unconstrained numeric is kept as exact text
        "single": pa.float32(),
        "double": pa.float64(),
        "body": pa.string(),
        "label": pa.string(),
        "day": pa.date32(),
        "wall": pa.timestamp("us"),
        "instant": pa.timestamp("us", tz="UTC"),
        "flag": pa.bool_(),
        "doc": pa.json_(pa.string()),  # Parquet JSON logical type (issue 8)
        "docb": pa.json_(pa.string()),  # Parquet JSON logical type (issue 8)
        "raw": pa.binary(),
        "span": pa.struct(
            [("months", pa.int32()), ("days", pa.int32()), ("nanoseconds", pa.int64())]
        ),
    }
    for name, wanted in expected_types.items():
        assert schema.field(name).type == wanted, name
    assert schema.field("ident").type.extension_name == "arrow.uuid"

    got = sorted(data.to_pylist(), key=lambda r: r["id"])
    want = _pg_rows(pg_admin, table)
    assert len(got) == len(want) == 3
    for g, w in zip(got, want, strict=True):
        for name in (
            "id",
            "small",
            "normal",
            "big",
            "money",
            "wide",
            "huge",
            "double",
            "body",
            "label",
            "day",
            "wall",
            "instant",
            "flag",
            "raw",
            "ident",
        ):
            assert g[name] == w[name], (name, g[name], w[name])
        assert g["single"] == (None if w["single"] is None else f32(w["single"]))
        for name in ("doc", "docb"):
            assert (None if g[name] is None else json.loads(g[name])) == w[name]
        assert g["free"] == (None if w["free"] is None else str(w["free"]))
    first, second, nulls = got
    assert first["money"] == Decimal("1234567890.12")
    assert first["wide"] == Decimal("123456789012345.123456789012345")
    assert first["huge"] == Decimal("123456789012345678901234567890.12345678901234567890")
    assert first["free"] == "3.14159265358979323846264338327950288"
    assert first["body"] == "Ødegaard — 東京 🚀"
    assert first["instant"] == datetime(2025, 1, 23, 7, 4, 56, 789012, tzinfo=UTC)
    assert first["wall"] == datetime(2025, 1, 23, 12, 34, 56, 789012)
    assert first["ident"] == UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    assert first["span"] == {"months": 1, "days": 2, "nanoseconds": 3_500_000_000}
    assert second["span"] == {"months": 0, "days": -1, "nanoseconds": 0}
    assert second["raw"] == b"" and second["body"] == ""
    assert all(v is None for k, v in nulls.items() if k != "id")


def _window_table(pg_admin, schema: str) -> str:
    table = f'"{schema}".events'
    pg_admin.execute(f"CREATE TABLE {table} (id int, at timestamptz, wall timestamp)")
    return table


def _insert(pg_admin, table: str, rows: list[tuple[int, datetime]]) -> None:
    """Rows whose `at` is the instant and `wall` its wall time in New York."""
    with pg_admin.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {table} VALUES (%s, %s, %s)",
            [(i, at, at.astimezone(NY).replace(tzinfo=None)) for i, at in rows],
        )


# (run date, window start and end in New York, window hours)
DST_DAYS = [
    (date(2025, 1, 23), 24),
    (date(2025, 3, 9), 23),  # spring forward
    (date(2025, 11, 2), 25),  # fall back
]


def _boundary_rows(day: date) -> tuple[list[tuple[int, datetime]], set[int]]:
    start = datetime(day.year, day.month, day.day, tzinfo=NY)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=NY)
    tiny = timedelta(microseconds=1)
    rows = [
        (1, start),  # exactly at the start: included
        (2, start - tiny),  # just before: excluded
        (3, end - tiny),  # last microsecond: included
        (4, end),  # exactly at the end: excluded
        (5, start + (end - start) / 2),  # the middle: included
        (6, start.astimezone(UTC).replace(hour=0, minute=0)),  # UTC midnight
        (7, end.astimezone(UTC) - timedelta(hours=1)),  # in NY day, next UTC day
    ]
    included = {i for i, at in rows if start <= at < end}
    assert {1, 3, 5, 7} <= included and not {2, 4} & included
    return rows, included


@pytest.mark.parametrize(("day", "hours"), DST_DAYS, ids=lambda v: str(v))
@pytest.mark.parametrize("cursor", ["at", "wall"])
def test_incremental_window_in_new_york(pg_admin, pg_schema, pg_url, tmp_path, day, hours, cursor):
    table = _window_table(pg_admin, pg_schema)
    rows, included = _boundary_rows(day)
    _insert(pg_admin, table, rows)

    summary = run(
        tmp_path,
        {"pg": pg_url},
        [
            {
                "source": "pg",
                "table": f"{pg_schema}.events",
                "extract": {"mode": "incremental", "cursor": cursor},
            }
        ],
        date=day.isoformat(),
        timezone="America/New_York",
    )
    res = result(summary, f"pg.{pg_schema}.events")
    ids = set(read(summary, res.table_key).column("id").to_pylist())
    assert ids == included
    start, end = datetime.fromisoformat(res.window_start), datetime.fromisoformat(res.window_end)
    assert (end - start) == timedelta(hours=hours)
    assert start.astimezone(NY).replace(tzinfo=None) == datetime(day.year, day.month, day.day)


def test_window_is_bound_not_formatted(pg_admin, pg_schema, pg_url, tmp_path, monkeypatch):
    from onceflow.extract.readers import postgres

    seen: list[str] = []
    real = postgres.to_session_settings

    def spy(sql: str, *args, **kwargs) -> str:
        out = real(sql, *args, **kwargs)
        seen.append(out)
        return out

    monkeypatch.setattr(postgres, "to_session_settings", spy)
    table = _window_table(pg_admin, pg_schema)
    rows, included = _boundary_rows(date(2025, 1, 23))
    _insert(pg_admin, table, rows)
    summary = run(
        tmp_path,
        {"pg": pg_url},
        [
            {
                "source": "pg",
                "table": f"{pg_schema}.events",
                "extract": {"mode": "incremental", "cursor": "at"},
            }
        ],
        timezone="America/New_York",
    )
    assert set(read(summary, f"pg.{pg_schema}.events").column("id").to_pylist()) == included
    query = seen[-1]
    # The values are bound into session settings by a parameterised set_config call;
    # the query text holds neither a value nor a parameter, so it can stream via COPY.
    assert "current_setting('onceflow.window_start')" in query
    assert "current_setting('onceflow.window_end')" in query
    assert "2025" not in query and "$1" not in query


def test_large_window_streams_in_several_batches(pg_admin, pg_schema, pg_url):
    """A parameterised query would come back as one buffered batch; ours streams."""
    from zoneinfo import ZoneInfo

    from onceflow.config import SourceConfig
    from onceflow.extract.readers import PostgresReader
    from onceflow.extract.sql import ReadSpec
    from onceflow.windows import window_for

    pg_admin.execute(
        f"CREATE TABLE {pg_schema}.wide AS SELECT g AS id, repeat('x', 200) AS pad, "
        "timestamptz '2025-01-23 00:00:00+00' + g * interval '100 ms' AS at "
        "FROM generate_series(1, 200000) g"
    )
    reader = PostgresReader(SourceConfig(url=pg_url), pg_url, ZoneInfo("UTC"), "pg.wide")
    spec = ReadSpec(f"{pg_schema}.wide", None, "at", window_for(date(2025, 1, 23)))
    sizes = [batch.num_rows for batch in reader.batches(spec)]
    assert sum(sizes) == 200000
    assert len(sizes) > 1


def test_custom_query_with_and_without_markers(pg_admin, pg_schema, pg_url, tmp_path):
    table = _window_table(pg_admin, pg_schema)
    rows, included = _boundary_rows(date(2025, 3, 9))
    _insert(pg_admin, table, rows)
    marked = (
        f"SELECT id, id::text AS label, at FROM {table} "
        "WHERE at >= :window_start AND at < :window_end ORDER BY id"
    )
    wrapped = f"SELECT id, at, wall FROM {table} WHERE id <> 99;"
    summary = run(
        tmp_path,
        {"pg": pg_url},
        [
            {
                "source": "pg",
                "name": "marked",
                "query": marked,
                "extract": {"mode": "incremental", "cursor": "at"},
            },
            {"source": "pg", "name": "marked_full", "query": marked},
            {
                "source": "pg",
                "name": "wrapped",
                "query": wrapped,
                "extract": {"mode": "incremental", "cursor": "wall"},
            },
            {"source": "pg", "name": "plain", "query": wrapped},
        ],
        date="2025-03-09",
        timezone="America/New_York",
    )
    assert summary.ok, [r.error for r in summary.results]
    marked_rows = read(summary, "pg.marked")
    assert marked_rows.column("id").to_pylist() == sorted(included)
    assert marked_rows.column("label").to_pylist() == [str(i) for i in sorted(included)]
    # the markers are bound from the run's window even in full mode
    assert set(read(summary, "pg.marked_full").column("id").to_pylist()) == included
    assert set(read(summary, "pg.wrapped").column("id").to_pylist()) == included
    assert set(read(summary, "pg.plain").column("id").to_pylist()) == {i for i, _ in rows}


def test_hostile_identifiers_are_data(pg_admin, pg_schema, pg_url, tmp_path):
    evil = 'x"; drop table y; --'
    evil_column = 'c"; drop table y; --'
    pg_admin.execute(f'CREATE TABLE "{pg_schema}".y (id int)')
    pg_admin.execute(f'INSERT INTO "{pg_schema}".y VALUES (1), (2)')
    pg_admin.execute(
        f'CREATE TABLE "{pg_schema}"."x""; drop table y; --" (id int, "c""; drop table y; --" date)'
    )
    pg_admin.execute(
        f'INSERT INTO "{pg_schema}"."x""; drop table y; --" VALUES (7, \'2025-01-23\'), '
        "(8, '2025-01-24')"
    )
    summary = run(
        tmp_path,
        {"pg": pg_url},
        [
            {"source": "pg", "table": f"{pg_schema}.{evil}"},
            {
                "source": "pg",
                "table": f"{pg_schema}.{evil}",
                "name": "evil_incremental",
                "extract": {"mode": "incremental", "cursor": evil_column},
            },
            {"source": "pg", "table": f"{pg_schema}.y"},
        ],
    )
    assert summary.ok, [r.error for r in summary.results]
    evil_rows = read(summary, f"pg.{pg_schema}.{evil}")
    assert evil_rows.column("id").to_pylist() == [7, 8]
    assert evil_rows.schema.names == ["id", evil_column]
    assert read(summary, "pg.evil_incremental").column("id").to_pylist() == [7]
    assert read(summary, f"pg.{pg_schema}.y").num_rows == 2
    count = pg_admin.execute(f'SELECT count(*) FROM "{pg_schema}".y').fetchone()[0]
    assert count == 2


SIMPLE_DDL = """
CREATE TABLE {t} (id bigint, qty integer, price numeric(12,2), name text,
                  created timestamp, changed timestamptz)"""
SIMPLE_ROWS = """
INSERT INTO {t} VALUES
 (1, 10, 19.99, 'Zoë', '2025-01-23 00:00:00', '2025-01-23 05:00:00+00'),
 (2, -3, 0.01, '東京', '2025-01-23 23:59:59.999999', '2025-01-24 04:59:59.999999+00'),
 (3, NULL, NULL, NULL, '2025-01-24 00:00:00', '2025-01-24 05:00:00+00'),
 (4, 0, 1000000000.00, '', '2025-01-22 23:59:59', '2025-01-23 04:59:59+00')"""


@pytest.mark.parametrize("mode", ["full", "created", "changed"])
def test_sqlalchemy_reader_matches_native(pg_admin, pg_schema, pg_url, tmp_path, mode):
    pg_admin.execute(SIMPLE_DDL.format(t=f'"{pg_schema}".simple'))
    pg_admin.execute(SIMPLE_ROWS.format(t=f'"{pg_schema}".simple'))
    extract_cfg = {"mode": "full"} if mode == "full" else {"mode": "incremental", "cursor": mode}
    sa_url = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
    summary = run(
        tmp_path,
        {"native": pg_url, "generic": {"url": sa_url, "reader": "sqlalchemy"}},
        [
            {"source": s, "table": f"{pg_schema}.simple", "extract": extract_cfg}
            for s in ("native", "generic")
        ],
        timezone="America/New_York",
    )
    native = read(summary, f"native.{pg_schema}.simple").sort_by("id")
    generic = read(summary, f"generic.{pg_schema}.simple").sort_by("id")
    assert generic.schema == native.schema
    assert generic.to_pylist() == native.to_pylist()
    expected = {"full": [1, 2, 3, 4], "created": [1, 2], "changed": [1, 2]}[mode]
    assert native.column("id").to_pylist() == expected
    assert native.schema.field("price").type == pa.decimal128(12, 2)


MEMORY_SCRIPT = """
import sys
from onceflow.config import config_from_dict
from onceflow.extract import extract
lake, state, url, table = sys.argv[1:5]
cfg = config_from_dict({"state": state, "lake": lake, "sources": {"pg": {"url": url}},
                        "tables": [{"source": "pg", "table": table}]})
summary = extract(cfg, "2025-01-23")
result = summary.results[0]
assert result.action == "extracted", result.error
print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")))
print(result.file_path)
"""


@pytest.mark.slow
def test_streams_two_million_rows_in_bounded_memory(pg_admin, pg_schema, pg_url, tmp_path):
    rows = 2_000_000
    table = f'"{pg_schema}".big'
    pg_admin.execute(
        f"CREATE UNLOGGED TABLE {table} (id bigint, at timestamptz, "
        "amount numeric(12,2), note text)"
    )
    pg_admin.execute(
        f"INSERT INTO {table} SELECT g, timestamptz '2025-01-23' + g * interval '1 ms', "
        f"(g % 100000) / 100.0, 'row ' || g FROM generate_series(1, {rows}) g"
    )
    done = run_python(
        MEMORY_SCRIPT,
        str(tmp_path / "lake"),
        f"sqlite:///{tmp_path / 'state.db'}",
        pg_url,
        f"{pg_schema}.big",
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # the child's own peak (VmHWM, its address space's high-water mark): Linux carries the
    # pre-exec high-water mark into ru_maxrss, and a child spawned (vfork) from pytest
    # would report pytest's own RSS, which grows over a long run (534 MiB in one CI run)
    peak_mib = int(done.stdout.strip().splitlines()[-2]) / 1024
    path = Path(done.stdout.strip().splitlines()[-1])
    assert pq.ParquetFile(path).metadata.num_rows == rows
    assert peak_mib < 400, f"peak RSS {peak_mib:.0f} MiB"


def test_json_columns_keep_the_parquet_json_logical_type(
    pg_url: str, pg_schema: str, tmp_path
) -> None:
    # issue 8: json/jsonb were written as plain strings, losing the annotation a raw ADBC
    # write keeps; a reader of the lake must know a JSON column from text
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{pg_schema}".docs (id int, doc json, docb jsonb)')
        conn.execute(f"""INSERT INTO "{pg_schema}".docs VALUES (1, '{{"a": 1}}', '[1, 2]')""")
    summary = run(tmp_path, {"pg": pg_url}, [{"source": "pg", "table": f"{pg_schema}.docs"}])
    path = Path(result(summary, f"pg.{pg_schema}.docs").file_path)
    parquet = pq.ParquetFile(path).schema
    assert str(parquet.column(1).logical_type) == "JSON"
    assert str(parquet.column(2).logical_type) == "JSON"


STARTUP_SCRIPT = """
import sys
from onceflow.cli import main
try:
    main(sys.argv[1:])
except SystemExit as done:
    assert not done.code, done.code
heavy = sorted(
    name
    for name in (
        "pandas", "psutil", "duckdb", "deltalake", "pyarrow.compute", "onceflow.rules",
        "tenacity", "click", "onceflow.state.queue", "onceflow.state.scheduled_runs",
        "onceflow.state.rules",
    )
    if name in sys.modules
)
print("heavy:" + ",".join(heavy))
"""


def test_a_small_window_extraction_imports_nothing_it_does_not_use(
    pg_admin, pg_schema, pg_url, tmp_path
):
    # issue 8: pa.array() imports pandas to inspect its argument (0.25 s) and psutil costs
    # ~25 ms, pyarrow.compute ~35 ms for the one cast a numeric column needs, the rule
    # models ~25 ms for a config without rules: on a small window, start-up is most of
    # the command's time; tenacity (~5 ms) loads only when a first attempt fails, click
    # (~7 ms) only when typer uses it, the state repositories only when used (~10 ms)
    pg_admin.execute(f'CREATE TABLE "{pg_schema}".small (id int, at timestamptz, n numeric(8,2))')
    pg_admin.execute(
        f"INSERT INTO \"{pg_schema}\".small SELECT g, timestamptz '2025-01-23 00:00Z' + g * "
        "interval '1 minute', g / 7.0 FROM generate_series(1, 100) g"
    )
    (tmp_path / "onceflow.yml").write_text(
        f"state: sqlite:///{tmp_path / 'state.db'}\nlake: {tmp_path / 'lake'}\ntimezone: UTC\n"
        f"sources: {{pg: {{url: '{pg_url}'}}}}\n"
        f"tables: [{{source: pg, table: {pg_schema}.small, "
        "extract: {mode: incremental, cursor: at}}]\n"
    )
    done = run_python(
        STARTUP_SCRIPT,
        "extract",
        "--config",
        str(tmp_path / "onceflow.yml"),
        "--date",
        "2025-01-23",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "heavy:"
    (written,) = (tmp_path / "lake").rglob("*.parquet")
    numbers = pq.read_table(written).column("n")
    assert numbers.type == pa.decimal128(8, 2)  # the cast ran, through pyarrow's kernel
    assert numbers.to_pylist()[:3] == [Decimal("0.14"), Decimal("0.29"), Decimal("0.43")]


def _backends(pg_admin, app: str) -> int:
    row = pg_admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)
    ).fetchone()
    return int(row[0])


def _backends_once_closed(pg_admin, app: str, within: float = 10.0) -> int:
    """The server's backends of `app` once the ones a client closed have gone: a backend
    exits after it reads the client's Terminate, a moment after close() returns, later
    on a busy machine."""
    deadline = time.monotonic() + within
    while (n := _backends(pg_admin, app)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return n


def test_the_reader_takes_the_connection_opened_early_and_an_unused_one_is_closed(
    pg_admin, pg_schema, pg_url, tmp_path, monkeypatch
):
    # issue 8: the extract command opens its connection while the extractor loads
    from onceflow.extract import early, extract
    from tests.helpers.extract import make_config, unique_name

    pg_admin.execute(f'CREATE TABLE "{pg_schema}".t (id int)')
    pg_admin.execute(f'INSERT INTO "{pg_schema}".t SELECT generate_series(1, 10)')
    app = unique_name("early")
    url = pg_url + ("&" if "?" in pg_url else "?") + f"application_name={app}"
    config = make_config(tmp_path, {"pg": url}, [{"source": "pg", "table": f"{pg_schema}.t"}])
    early.connect_early(config)
    early._pending[url].result(timeout=30)  # opened in its thread
    assert _backends(pg_admin, app) == 1

    def refuse(url: str) -> None:
        raise AssertionError("the reader opened a second connection")

    monkeypatch.setattr(early, "open_connection", refuse)
    first = extract(config, "2025-01-23")
    assert result(first, f"pg.{pg_schema}.t").record_count == 10
    monkeypatch.undo()
    # already committed: no table reads, and the early connection is closed, not leaked
    early.connect_early(config)
    early._pending[url].result(timeout=30)  # opened (one still opening: the test below)
    again = extract(config, "2025-01-23")
    assert result(again, f"pg.{pg_schema}.t").action == "skipped"
    assert not early._pending and _backends_once_closed(pg_admin, app) == 0


def test_an_early_connection_that_failed_leaves_the_error_to_the_reader(
    pg_schema, pg_url, tmp_path
):
    from onceflow.extract import early, extract
    from tests.helpers.extract import make_config

    bad = pg_url.rsplit("/", 1)[0] + "/no_such_database_for_onceflow"
    config = make_config(tmp_path, {"pg": bad}, [{"source": "pg", "table": f"{pg_schema}.t"}])
    early.connect_early(config)
    summary = extract(config, "2025-01-23")
    failed = result(summary, f"pg.{pg_schema}.t")
    assert failed.action == "failed"
    assert "no_such_database_for_onceflow" in failed.error and "does not exist" in failed.error
    assert not early._pending


def test_an_extraction_refused_at_once_closes_the_early_connection(
    pg_admin, pg_schema, pg_url, tmp_path
):
    from onceflow.errors import ConfigError
    from onceflow.extract import early, extract
    from tests.helpers.extract import make_config, unique_name

    pg_admin.execute(f'CREATE TABLE "{pg_schema}".t (id int)')
    app = unique_name("early")
    url = pg_url + ("&" if "?" in pg_url else "?") + f"application_name={app}"
    config = make_config(tmp_path, {"pg": url}, [{"source": "pg", "table": f"{pg_schema}.t"}])
    early.connect_early(config)
    early._pending[url].result(timeout=30)  # opened
    with pytest.raises(ConfigError, match="allow-partial"):
        extract(config, "today")  # an unfinished window, refused before any read
    assert not early._pending and _backends_once_closed(pg_admin, app) == 0


def test_a_run_with_nothing_to_read_does_not_wait_for_the_early_connection(
    pg_admin, pg_schema, pg_url, tmp_path, monkeypatch
):
    # an unreachable source must not hold up a run that reads nothing from it
    import threading
    import time

    from onceflow.extract import early, extract
    from tests.helpers.extract import make_config, unique_name

    pg_admin.execute(f'CREATE TABLE "{pg_schema}".t (id int)')
    app = unique_name("early")
    url = pg_url + ("&" if "?" in pg_url else "?") + f"application_name={app}"
    config = make_config(tmp_path, {"pg": url}, [{"source": "pg", "table": f"{pg_schema}.t"}])
    extract(config, "2025-01-23")  # committed: the next run skips it
    hanging = threading.Event()
    opened = early.open_connection
    monkeypatch.setattr(early, "open_connection", lambda url: (hanging.wait(30), opened(url))[1])
    early.connect_early(config)
    opening = early._pending[url]
    started = time.monotonic()
    again = extract(config, "2025-01-23")
    assert time.monotonic() - started < 10
    assert result(again, f"pg.{pg_schema}.t").action == "skipped" and not early._pending
    hanging.set()  # the connection opens now, and its callback closes it
    opening.result(timeout=30)
    assert _backends_once_closed(pg_admin, app) == 0


def test_money_is_an_exact_decimal_with_the_currencys_digits(pg_admin, pg_schema, pg_url, tmp_path):
    """The driver gives money as a count of cents (12.34 -> 1234): it becomes
    decimal(19, s), s the session's currency digits (2 here), every value exact."""
    table = f'"{pg_schema}".prices'
    pg_admin.execute(f"CREATE TABLE {table} (id int, price money)")
    pg_admin.execute(
        f"INSERT INTO {table} VALUES (1, 12.34), (2, '-92233720368547758.08'), "
        "(3, '92233720368547758.07'), (4, 0), (5, NULL)"
    )
    summary = run(tmp_path, {"pg": pg_url}, [{"source": "pg", "table": f"{pg_schema}.prices"}])
    data = read(summary, f"pg.{pg_schema}.prices").sort_by("id")
    assert data.schema.field("price").type == pa.decimal128(19, 2)
    assert data.column("price").to_pylist() == [
        Decimal("12.34"),
        Decimal("-92233720368547758.08"),
        Decimal("92233720368547758.07"),
        Decimal("0.00"),
        None,
    ]


UNDECODED = {
    # column: (declared type, a value); read back as PostgreSQL's text of the value
    "tz": ("timetz", "12:34:56.5+05:30"),
    "ip": ("inet", "10.1.2.3/8"),
    "net": ("cidr", "10.0.0.0/8"),
    "mac": ("macaddr", "08:00:2b:01:02:03"),
    "mac8": ("macaddr8", "08:00:2b:01:02:03:04:05"),
    "doc": ("xml", "<a ü='1'>x</a>"),
    "pt": ("point", "(1.5,-2)"),
    "span": ("int4range", "[1,5)"),
    "bits": ("bit varying(8)", "1011"),
    "words": ("tsvector", "'a' 'fat' 'rat'"),
    "mood": ("{schema}.mood", "happy"),
    "ips": ("inet[]", "{10.0.0.1,::1}"),
}


@pytest.mark.parametrize("window", [False, True], ids=["full", "incremental"])
def test_types_the_driver_does_not_decode_are_read_as_text(
    pg_admin, pg_schema, pg_url, tmp_path, window
):
    """timetz, inet, cidr, macaddr, xml, ranges, geometric, enum types...: the driver
    passes their binary wire format through; they are read as the server's text."""
    pg_admin.execute(f"CREATE TYPE \"{pg_schema}\".mood AS ENUM ('sad', 'happy')")
    table = f'"{pg_schema}".odd'
    columns = ", ".join(
        f"{name} {kind.format(schema=pg_schema)}" for name, (kind, _) in UNDECODED.items()
    )
    pg_admin.execute(f"CREATE TABLE {table} (id int, at timestamptz, raw bytea, {columns})")
    values = [value for _, value in UNDECODED.values()]
    with pg_admin.cursor() as cur:
        marks = ", ".join(f"%s::{kind.format(schema=pg_schema)}" for kind, _ in UNDECODED.values())
        cur.execute(
            f"INSERT INTO {table} VALUES (1, '2025-01-23 12:00+00', '\\x00ff', {marks})", values
        )
        cur.execute(f"INSERT INTO {table} (id, at) VALUES (2, '2025-01-23 13:00+00')")
    spec: dict = {"source": "pg", "table": f"{pg_schema}.odd"}
    if window:
        spec["extract"] = {"mode": "incremental", "cursor": "at"}
    data = read(run(tmp_path, {"pg": pg_url}, [spec]), f"pg.{pg_schema}.odd").sort_by("id")
    want = pg_admin.execute(
        f"SELECT {', '.join(f'{n}::text' for n in UNDECODED)} FROM {table} WHERE id = 1"
    ).fetchone()
    for name, expected in zip(UNDECODED, want, strict=True):
        assert data.schema.field(name).type == pa.string(), name
        assert data.column(name).to_pylist() == [expected, None], name
    assert data.column("raw").to_pylist() == [b"\x00\xff", None]  # bytea stays binary


def test_infinite_timestamps_and_dates_are_clamped_to_the_range_readers_hold(
    pg_admin, pg_schema, pg_url, tmp_path
):
    """'infinity' and '-infinity' came out as wrapped-around values no reader could
    hold; they become 9999-12-31 23:59:59.999999 and 0001-01-01, in order with the rest."""
    table = f'"{pg_schema}".spans'
    pg_admin.execute(f"CREATE TABLE {table} (id int, wall timestamp, at timestamptz, day date)")
    pg_admin.execute(
        f"INSERT INTO {table} VALUES (1, 'infinity', 'infinity', 'infinity'), "
        "(2, '-infinity', '-infinity', '-infinity'), "
        "(3, '2025-01-23 12:00', '2025-01-23 12:00+00', '2025-01-23'), "
        "(4, '0001-01-01', '0001-01-01 00:00+00', '0001-01-01'), (5, NULL, NULL, NULL)"
    )
    summary = run(tmp_path, {"pg": pg_url}, [{"source": "pg", "table": f"{pg_schema}.spans"}])
    data = read(summary, f"pg.{pg_schema}.spans").sort_by("id")
    rows = data.slice(0, 4).to_pylist()
    last, first = datetime(9999, 12, 31, 23, 59, 59, 999999), datetime(1, 1, 1)
    assert rows == [
        {"id": 1, "wall": last, "at": last.replace(tzinfo=UTC), "day": date(9999, 12, 31)},
        {"id": 2, "wall": first, "at": first.replace(tzinfo=UTC), "day": date(1, 1, 1)},
        {
            "id": 3,
            "wall": datetime(2025, 1, 23, 12),
            "at": datetime(2025, 1, 23, 12, tzinfo=UTC),
            "day": date(2025, 1, 23),
        },
        {"id": 4, "wall": first, "at": first.replace(tzinfo=UTC), "day": date(1, 1, 1)},
    ]
    assert data.column("wall")[4].as_py() is None


def test_numeric_nan_fails_the_table_naming_the_column_and_the_fix(
    pg_admin, pg_schema, pg_url, tmp_path
):
    """numeric(10,2) may hold NaN, which no decimal can: the table fails with one line
    that names the column and how to extract it; the documented query works."""
    table = f'"{pg_schema}".scores'
    pg_admin.execute(f"CREATE TABLE {table} (id int, score numeric(10,2))")
    pg_admin.execute(f"INSERT INTO {table} VALUES (1, 1.5), (2, 'NaN'), (3, NULL)")
    summary = run(
        tmp_path,
        {"pg": pg_url},
        [
            {"source": "pg", "table": f"{pg_schema}.scores"},
            {
                "source": "pg",
                "name": "mapped",
                "query": f"SELECT id, NULLIF(score, 'NaN') AS score FROM {table}",
            },
        ],
    )
    failed = result(summary, f"pg.{pg_schema}.scores")
    assert failed.action == "failed" and failed.attempts == 1
    assert failed.error.startswith(f"pg.{pg_schema}.scores: column 'score' ")
    assert "NaN" in failed.error and "NULLIF(score, 'NaN')" in failed.error
    assert "\n" not in failed.error
    mapped = read(summary, "pg.mapped").sort_by("id")
    assert mapped.column("score").to_pylist() == [Decimal("1.50"), None, None]


# (declared type, value) PostgreSQL holds but no Python, Spark or Delta reader does, and
# the value as the error names it; 294276 AD is where the driver wrapped around to BC
BEYOND_READERS = [
    ("date", "0044-03-15 BC", "0044-03-15 BC"),
    ("date", "20000-01-01", "20000-01-01"),
    ("date", "4713-01-01 BC", "4713-01-01 BC"),
    ("timestamp", "0001-12-31 23:59:59.999999 BC", "0001-12-31 23:59:59.999999 BC"),
    ("timestamp", "10000-01-01 00:00:00", "10000-01-01 00:00:00"),
    ("timestamptz", "294276-12-31 23:59:59.999999+00", "294276-12-31 23:59:59.999999+00"),
    ("timestamptz", "292278-01-01 00:00:00+00", "292278-01-01 00:00:00+00"),
    ("date[]", "{2025-01-23,infinity}", "infinity in an array"),
]


def test_dates_and_timestamps_outside_years_1_to_9999_fail_their_table_naming_the_value(
    pg_admin, pg_schema, pg_url, tmp_path
):
    """Years beyond 1..9999 were extracted (the largest timestamps wrapped to 290279 BC)
    and loaded once, after which every load of the table failed: each table fails at
    extraction with one line naming the column, the value and the query that fixes it,
    which then extracts the table."""
    tables, queries = [], []
    for i, (kind, value, _) in enumerate(BEYOND_READERS):
        table = f'"{pg_schema}".t{i}'
        pg_admin.execute(f"CREATE TABLE {table} (id int, v {kind})")
        pg_admin.execute(
            f"INSERT INTO {table} VALUES (1, NULL), (2, %s), (3, NULL)",
            (value,),
        )
        tables.append({"source": "pg", "table": f"{pg_schema}.t{i}"})
        low, high = "'0001-01-01 00:00+00'", "'10000-01-01 00:00+00'"
        mapped = (
            "v::text"
            if kind.endswith("[]")
            else (f"CASE WHEN v >= {low} AND v < {high} THEN v END")
        )
        queries.append(
            {"source": "pg", "name": f"q{i}", "query": f"SELECT id, {mapped} AS v FROM {table}"}
        )
    summary = run(tmp_path, {"pg": pg_url}, tables + queries)
    for i, (kind, _, shown) in enumerate(BEYOND_READERS):
        failed = result(summary, f"pg.{pg_schema}.t{i}")
        assert failed.action == "failed" and failed.attempts == 1, (kind, shown)
        assert failed.error.startswith(
            f"pg.{pg_schema}.t{i}: column 'v' ({kind}) holds {shown}, outside the years"
        ), failed.error
        assert "\n" not in failed.error
        fixed = read(summary, f"pg.q{i}").sort_by("id").column("v").to_pylist()
        if kind.endswith("[]"):
            assert fixed == [None, "{2025-01-23,infinity}", None]
        else:
            assert fixed == [None, None, None]


def test_a_multi_dimensional_array_fails_its_table_naming_the_column_and_the_fix(
    pg_admin, pg_schema, pg_url, tmp_path
):
    """The driver flattened {{1,2},{3,4}} to [1,2,3,4]; PostgreSQL does not enforce an
    array column's declared dimensions, so a 1-D int[] column is checked too. One-
    dimensional arrays still extract as lists, and the documented ::text query works."""
    table = f'"{pg_schema}".grids'
    pg_admin.execute(f"CREATE TABLE {table} (id int, flat int[], grid int[][], tags text[])")
    pg_admin.execute(
        f"INSERT INTO {table} VALUES (1, '{{1,NULL}}', '{{7}}', '{{a,b}}'), "
        "(2, '{}', NULL, '{}'), (3, NULL, '{{1,2},{3,4}}', NULL)"
    )
    ok = f'"{pg_schema}".lines'
    pg_admin.execute(f"CREATE TABLE {ok} AS SELECT id, flat, tags FROM {table}")
    summary = run(
        tmp_path,
        {"pg": pg_url},
        [
            {"source": "pg", "table": f"{pg_schema}.grids"},
            {"source": "pg", "table": f"{pg_schema}.lines"},
            {
                "source": "pg",
                "name": "as_text",
                "query": f"SELECT id, flat, grid::text AS grid FROM {table}",
            },
        ],
    )
    failed = result(summary, f"pg.{pg_schema}.grids")
    assert failed.action == "failed" and failed.attempts == 1
    assert failed.error.startswith(
        f"pg.{pg_schema}.grids: column 'grid' holds a 2-dimensional array"
    ), failed.error
    assert "grid::text AS grid" in failed.error and "\n" not in failed.error
    lines = read(summary, f"pg.{pg_schema}.lines").sort_by("id")
    assert lines.schema.names == ["id", "flat", "tags"]
    assert lines.column("flat").to_pylist() == [[1, None], [], None]
    assert lines.column("tags").to_pylist() == [["a", "b"], [], None]
    text = read(summary, "pg.as_text").sort_by("id")
    assert text.column("grid").to_pylist() == ["{7}", None, "{{1,2},{3,4}}"]
    assert text.column("flat").to_pylist() == [[1, None], [], None]


def test_numeric_with_a_negative_scale_or_a_scale_above_its_precision_is_exact(
    pg_admin, pg_schema, pg_url, tmp_path
):
    """PostgreSQL 15's numeric(5,-2) (rounded to hundreds) and numeric(3,5) (below 0.01)
    failed with decimal128(5, 2046) and an unnamed Parquet error: they become the decimals
    that hold every value, decimal(7,0) and decimal(5,5), exact at their limits."""
    table = f'"{pg_schema}".scaled'
    pg_admin.execute(f"CREATE TABLE {table} (id int, hundreds numeric(5,-2), tiny numeric(3,5))")
    pg_admin.execute(
        f"INSERT INTO {table} VALUES (1, 9999900, 0.00999), (2, -9999900, -0.00999), "
        "(3, 12345, 0.00001), (4, 0, 0), (5, NULL, NULL)"
    )
    summary = run(tmp_path, {"pg": pg_url}, [{"source": "pg", "table": f"{pg_schema}.scaled"}])
    data = read(summary, f"pg.{pg_schema}.scaled").sort_by("id")
    assert data.schema.field("hundreds").type == pa.decimal128(7, 0)
    assert data.schema.field("tiny").type == pa.decimal128(5, 5)
    got = [(r["hundreds"], r["tiny"]) for r in data.to_pylist()]
    want = pg_admin.execute(f"SELECT hundreds, tiny FROM {table} ORDER BY id").fetchall()
    assert got == [tuple(row) for row in want]
    assert got[2] == (Decimal("12300"), Decimal("0.00001"))


def test_unconstrained_numeric_nan_and_infinity_keep_postgresqls_text(
    pg_admin, pg_schema, pg_url, tmp_path
):
    """The driver printed NaN as 'nan' and Infinity as 'inf': the text is PostgreSQL's."""
    table = f'"{pg_schema}".free'
    pg_admin.execute(f"CREATE TABLE {table} (id int, n numeric)")
    pg_admin.execute(
        f"INSERT INTO {table} VALUES (1, 'NaN'), (2, 'Infinity'), (3, '-Infinity'), "
        "(4, 1.50), (5, NULL)"
    )
    summary = run(tmp_path, {"pg": pg_url}, [{"source": "pg", "table": f"{pg_schema}.free"}])
    data = read(summary, f"pg.{pg_schema}.free").sort_by("id")
    want = [row[0] for row in pg_admin.execute(f"SELECT n::text FROM {table} ORDER BY id")]
    assert data.column("n").to_pylist() == want == ["NaN", "Infinity", "-Infinity", "1.50", None]


def test_nan_and_infinity_inside_a_numeric_array_keep_postgresqls_text(
    pg_admin, pg_schema, pg_url, tmp_path
):
    """A numeric[]'s elements came as the driver's 'nan' and 'inf', unlike a numeric's."""
    table = f'"{pg_schema}".free_arrays'
    pg_admin.execute(f"CREATE TABLE {table} (id int, n numeric[], fixed numeric(6,2)[])")
    pg_admin.execute(
        f"INSERT INTO {table} VALUES (1, '{{1.5,NaN,NULL,Infinity,-Infinity}}', '{{1.25}}'), "
        "(2, '{}', '{3.50,NULL}'), (3, NULL, NULL), (4, '{2}', '{-0.10}')"
    )
    summary = run(tmp_path, {"pg": pg_url}, [{"source": "pg", "table": f"{pg_schema}.free_arrays"}])
    data = read(summary, f"pg.{pg_schema}.free_arrays").sort_by("id")
    assert data.column("n").to_pylist() == [
        ["1.5", "NaN", None, "Infinity", "-Infinity"],
        [],
        None,
        ["2"],
    ]
    assert data.column("fixed").to_pylist() == [["1.25"], ["3.50", None], None, ["-0.10"]]


@pytest.mark.parametrize("window", [False, True], ids=["full", "incremental"])
def test_money_in_an_array_is_a_list_of_exact_decimals(
    pg_admin, pg_schema, pg_url, tmp_path, window
):
    """A money[]'s elements came as counts of cents (12.34 -> 1234) with no warning,
    unlike a money column's: each is the decimal(19, s) a money column gives."""
    table = f'"{pg_schema}".wallets'
    pg_admin.execute(f"CREATE TABLE {table} (id int, at timestamptz, coins money[])")
    pg_admin.execute(
        f"INSERT INTO {table} VALUES (1, '2025-01-23 12:00+00', '{{12.34,-0.01,NULL}}'), "
        "(2, '2025-01-23 13:00+00', '{}'), (3, '2025-01-23 14:00+00', NULL), "
        "(4, '2025-01-23 15:00+00', '{-92233720368547758.08,92233720368547758.07}')"
    )
    spec: dict = {"source": "pg", "table": f"{pg_schema}.wallets"}
    if window:
        spec["extract"] = {"mode": "incremental", "cursor": "at"}
    data = read(run(tmp_path, {"pg": pg_url}, [spec]), f"pg.{pg_schema}.wallets").sort_by("id")
    assert data.schema.field("coins").type.value_type == pa.decimal128(19, 2)
    assert data.column("coins").to_pylist() == [
        [Decimal("12.34"), Decimal("-0.01"), None],
        [],
        None,
        [Decimal("-92233720368547758.08"), Decimal("92233720368547758.07")],
    ]


def test_oids_above_2_to_the_31_stay_positive_as_int64(pg_admin, pg_schema, pg_url, tmp_path):
    """The driver decodes oid as int32: 4294967295 came out as -1, in an oid[] too. An
    oid is the int64 of its unsigned 32 bits; regproc (passed as its oid too) is its
    text, the function's name, as regclass and the other reg* types are."""
    table = f'"{pg_schema}".oids'
    pg_admin.execute(f"CREATE TABLE {table} (id int, o oid, os oid[], fn regproc)")
    pg_admin.execute(
        f"INSERT INTO {table} VALUES (1, 4294967295, '{{4294967295,1,NULL}}', 'now'), "
        "(2, 2147483648, '{}', NULL), (3, 0, NULL, NULL), (4, NULL, NULL, NULL)"
    )
    summary = run(tmp_path, {"pg": pg_url}, [{"source": "pg", "table": f"{pg_schema}.oids"}])
    data = read(summary, f"pg.{pg_schema}.oids").sort_by("id")
    assert data.schema.field("o").type == pa.int64()
    assert data.schema.field("os").type.value_type == pa.int64()
    assert data.column("o").to_pylist() == [4294967295, 2147483648, 0, None]
    assert data.column("os").to_pylist() == [[4294967295, 1, None], [], None, None]
    assert data.column("fn").to_pylist() == ["now", None, None, None]


def test_interval_arrays_are_lists_of_the_interval_struct(pg_admin, pg_schema, pg_url, tmp_path):
    """An interval[] failed its table with an Arrow error naming no column
    (`Unhandled type ... month_day_nano_interval`): its elements are the struct an
    interval column is, months, days and nanoseconds, exactly."""
    table = f'"{pg_schema}".spans'
    pg_admin.execute(f"CREATE TABLE {table} (id int, span interval, spans interval[])")
    pg_admin.execute(
        f"INSERT INTO {table} VALUES "
        "(1, '1 year 2 mons 3 days 04:05:06.789', "
        '\'{"1 day","-1 mon +1 day -00:00:00.000001",NULL}\'), '
        "(2, '-178000000 years', '{}'), (3, NULL, NULL)"
    )
    summary = run(tmp_path, {"pg": pg_url}, [{"source": "pg", "table": f"{pg_schema}.spans"}])
    data = read(summary, f"pg.{pg_schema}.spans").sort_by("id")
    interval = pa.struct(
        [("months", pa.int32()), ("days", pa.int32()), ("nanoseconds", pa.int64())]
    )
    assert data.schema.field("span").type == interval
    assert data.schema.field("spans").type.value_type == interval
    assert data.column("span").to_pylist()[:2] == [
        {"months": 14, "days": 3, "nanoseconds": 14_706_789_000_000},
        {"months": -178000000 * 12, "days": 0, "nanoseconds": 0},
    ]
    assert data.column("spans").to_pylist() == [
        [
            {"months": 0, "days": 1, "nanoseconds": 0},
            {"months": -1, "days": 1, "nanoseconds": -1000},
            None,
        ],
        [],
        None,
    ]


def test_composite_values_are_read_as_postgresqls_text(pg_admin, pg_schema, pg_url, tmp_path):
    """A composite was a struct whose fields skipped every check a column gets: money as
    cents, 2-D arrays flattened, NaN as 'nan', infinite timestamps wrapped (the lake then
    held values no load could read). A composite, an array of them and an anonymous
    record are PostgreSQL's exact text of the value, the text `::text` gives."""
    s = pg_schema
    pg_admin.execute(
        f'CREATE TYPE "{s}".item AS (label text, amount money, grid int[], n numeric(6,2), '
        "free numeric, at timestamptz, day date, o oid, span interval, ip inet)"
    )
    pg_admin.execute(f'CREATE TABLE "{s}".orders (id int, it "{s}".item, its "{s}".item[])')
    pg_admin.execute(
        f"""INSERT INTO "{s}".orders VALUES
        (1, ROW('a "b", c', 12.34, '{{{{1,2}},{{3,4}}}}', 'NaN', 'Infinity', 'infinity',
                '-infinity', 4294967295, '1 day', '10.0.0.1'),
            ARRAY[ROW('x', 1, '{{1}}', 1.5, -1, '2025-01-23 12:00+00', '2025-01-23', 1,
                      '-1 mon', NULL)::"{s}".item]),
        (2, ROW(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), '{{}}'),
        (3, NULL, NULL)"""
    )
    tables = [
        {"source": "pg", "table": f"{s}.orders"},
        {
            "source": "pg",
            "name": "records",
            "query": f'SELECT id, ROW(id, (it).label) AS r FROM "{s}".orders',
        },
    ]
    summary = run(tmp_path, {"pg": pg_url}, tables, timezone="UTC")
    data = read(summary, f"pg.{s}.orders").sort_by("id")
    assert data.schema.field("it").type == pa.string()
    assert data.schema.field("its").type == pa.string()
    pg_admin.execute("SET TimeZone = 'UTC'")
    want = pg_admin.execute(f'SELECT it::text, its::text FROM "{s}".orders ORDER BY id').fetchall()
    assert data.select(["it", "its"]).to_pylist() == [{"it": a, "its": b} for a, b in want]
    first = data.column("it")[0].as_py()
    assert '"{{1,2},{3,4}}",NaN,Infinity,infinity,-infinity,4294967295' in first
    assert "12.34" in first  # money as the server prints it (lc_monetary: `$12.34`)
    records = read(summary, "pg.records").sort_by("id")
    assert records.column("r").to_pylist() == ['(1,"a ""b"", c")', "(2,)", "(3,)"]


@pytest.mark.parametrize("reader", ["auto", "sqlalchemy"])
def test_a_query_returning_two_columns_of_one_name_is_refused_naming_them(
    pg_admin, pg_schema, pg_url, tmp_path, reader
):
    """`select a.id, b.id ...` extracted "completed" into a file no load could read
    (`Multiple matches for FieldRef.Name(id)`); with a column read as text, or a window
    on the repeated cursor, PostgreSQL refused onceflow's wrapper (`column reference "id"
    is ambiguous`). Each now fails naming the columns and the fix; aliased, it extracts."""
    table = f'"{pg_schema}".zoo'
    pg_admin.execute(f"CREATE TABLE {table} (id int, ts timestamp, ip inet)")
    pg_admin.execute(f"INSERT INTO {table} VALUES (1, '2025-01-23 12:00', '10.0.0.1')")
    url = pg_url if reader == "auto" else pg_url.replace("postgresql://", "postgresql+psycopg://")
    join = f"FROM {table} a JOIN {table} b ON a.id = b.id"

    def query(name: str, select: str, **extract: str) -> dict:
        return {
            "source": "pg",
            "name": name,
            "query": f"SELECT {select} {join}",
            "extract": extract,
        }

    tables = [
        query("plain", "a.id, b.id, a.ts", mode="full"),
        query("as_text", "a.id, b.id, a.ip", mode="full"),
        query("cursor", "a.*, b.*", mode="incremental", cursor="ts"),
        query("aliased", "a.id, b.id AS b_id, a.ts", mode="full"),
    ]
    summary = run(tmp_path, {"pg": {"url": url, "reader": reader}}, tables)
    for name, repeated in (("plain", "'id'"), ("as_text", "'id'"), ("cursor", "'id', 'ts', 'ip'")):
        failed = result(summary, f"pg.{name}")
        assert failed.action == "failed" and failed.attempts == 1, name
        assert failed.error == (
            f"pg.{name}: the query returns more than one column named {repeated}: the lake's "
            "file needs one name per column. Give each its own name with AS, e.g. "
            "`select a.id, b.id AS b_id ...`"
        )
    assert read(summary, "pg.aliased").schema.names == ["id", "b_id", "ts"]


@pytest.mark.parametrize("reader", ["auto", "sqlalchemy"])
def test_a_table_whose_name_holds_a_dot_is_named_with_quotes(
    pg_admin, pg_schema, pg_url, tmp_path, reader
):
    """`table: 'schema."we.ird"'` was split at every dot, into three quoted names
    (the second `"we`), so such a table could not be named at all: a quoted part is one
    name."""
    pg_admin.execute(f'CREATE TABLE "{pg_schema}"."we.ird" (id int, ts timestamp)')
    pg_admin.execute(
        f"""INSERT INTO "{pg_schema}"."we.ird" VALUES (1, '2025-01-23 10:00'),
        (2, '2025-01-24 10:00')"""
    )
    url = pg_url if reader == "auto" else pg_url.replace("postgresql://", "postgresql+psycopg://")
    tables = [
        {"source": "pg", "table": f'{pg_schema}."we.ird"', "name": "full"},
        {
            "source": "pg",
            "table": f'"{pg_schema}"."we.ird"',
            "name": "windowed",
            "extract": {"mode": "incremental", "cursor": "ts"},
        },
    ]
    summary = run(tmp_path, {"pg": {"url": url, "reader": reader}}, tables)
    assert sorted(read(summary, "pg.full").column("id").to_pylist()) == [1, 2]
    assert read(summary, "pg.windowed").column("id").to_pylist() == [1]


def test_through_sqlalchemy_an_interval_or_an_inet_fails_naming_the_column(
    pg_admin, pg_schema, pg_url, tmp_path
):
    """Through `reader: sqlalchemy` psycopg gives an interval as a duration that counts
    a month as 30 days ('1 mon' -> 30 days), which the lake kept and no Delta load could
    read, and an inet as an object Arrow has no type for (an error naming no column):
    each fails naming its column and the fix."""
    table = f'"{pg_schema}".net'
    pg_admin.execute(f"CREATE TABLE {table} (id int, span interval, ip inet)")
    pg_admin.execute(f"INSERT INTO {table} VALUES (1, '1 mon', '10.0.0.1')")
    url = pg_url.replace("postgresql://", "postgresql+psycopg://")
    tables = [
        {"source": "pg", "name": name, "query": f"SELECT id, {name} FROM {table}"}
        for name in ("span", "ip")
    ]
    summary = run(tmp_path, {"pg": {"url": url, "reader": "sqlalchemy"}}, tables)
    span, ip = result(summary, "pg.span").error, result(summary, "pg.ip").error
    assert span.startswith("pg.span: column 'span' comes through SQLAlchemy as durations")
    assert ip.startswith("pg.ip: column 'ip' comes through SQLAlchemy as values Arrow has no")
    assert ip.endswith("`reader: auto`, or a query reading it as text, e.g. `ip::text AS ip`")


@pytest.mark.parametrize("reader", ["auto", "sqlalchemy"])
def test_a_table_or_query_without_columns_fails_its_table_and_the_others_extract(
    pg_admin, pg_schema, pg_url, tmp_path, reader
):
    """`CREATE TABLE t()` holds rows the driver counts (num_rows 2, no column); a Parquet
    file holds rows only in columns, so it was written with 0 rows and the table reported
    extracted, its rows lost. It now fails naming the table and the fix, at once (no
    retry), and the run's other tables extract."""
    pg_admin.execute(f'CREATE TABLE "{pg_schema}".nocols ()')
    pg_admin.execute(f'INSERT INTO "{pg_schema}".nocols DEFAULT VALUES')
    pg_admin.execute(f'INSERT INTO "{pg_schema}".nocols DEFAULT VALUES')
    pg_admin.execute(f'CREATE TABLE "{pg_schema}".fine (id int)')
    pg_admin.execute(f'INSERT INTO "{pg_schema}".fine VALUES (1)')
    url = pg_url if reader == "auto" else pg_url.replace("postgresql://", "postgresql+psycopg://")
    tables = [
        {"source": "pg", "table": f"{pg_schema}.nocols", "extract": {"mode": "full"}},
        {
            "source": "pg",
            "name": "bare",
            "query": f'SELECT FROM "{pg_schema}".fine',
            "extract": {"mode": "full"},
        },
        {"source": "pg", "table": f"{pg_schema}.fine", "extract": {"mode": "full"}},
    ]
    summary = run(tmp_path, {"pg": {"url": url, "reader": reader}}, tables)

    table = result(summary, f"pg.{pg_schema}.nocols")
    assert table.action == "failed" and table.attempts == 1
    assert table.error == (
        f"pg.{pg_schema}.nocols: the source table {pg_schema}.nocols has no columns: "
        "select at least one column"
    )
    query = result(summary, "pg.bare")
    assert query.action == "failed" and query.attempts == 1
    assert query.error == "pg.bare: the query returns no columns: select at least one column"
    assert not Path(table.file_path).exists() and not Path(query.file_path).exists()
    assert read(summary, f"pg.{pg_schema}.fine").num_rows == 1


def _native_and_sqlalchemy(pg_url, tmp_path, table: str, timezone: str = "UTC", **extract):
    """One table extracted by the native reader and by `reader: sqlalchemy`, as a table
    and as a query (whose types come from the result alone)."""
    url = pg_url.replace("postgresql://", "postgresql+psycopg://")
    sources = {"native": pg_url, "sa": {"url": url, "reader": "sqlalchemy"}}
    cfg = {"mode": "full", **extract}
    tables = [{"source": s, "table": table, "extract": cfg} for s in sources]
    tables.append({"source": "sa", "name": "q", "query": f"SELECT * FROM {table}", "extract": cfg})
    return run(tmp_path, sources, tables, timezone=timezone)


def _same_as_native(summary, table: str) -> pa.Table:
    native = read(summary, f"native.{table}").sort_by("id")
    for key in (f"sa.{table}", "sa.q"):
        generic = read(summary, key).sort_by("id")
        # the types (the native reader's fields also carry PostgreSQL's type names)
        assert [(f.name, f.type) for f in generic.schema] == [
            (f.name, f.type) for f in native.schema
        ], key
        assert generic.to_pylist() == native.to_pylist(), key
    return native


def test_through_sqlalchemy_json_is_the_servers_text_as_the_native_reader(
    pg_admin, pg_schema, pg_url, tmp_path
):
    """psycopg parsed JSON into Python objects: '"hello"' landed as `hello` (not JSON),
    JSON null as SQL NULL, 1.0000000000000000001 as 1, an object failed. Each is now
    the server's text, as the native reader gives it."""
    table = f"{pg_schema}.docs"
    pg_admin.execute(f"CREATE TABLE {table} (id int, j json, jb jsonb)")
    pg_admin.execute(
        f"""INSERT INTO {table} VALUES (1, '"hello"', '"hello"'), (2, 'null', 'null'),
        (3, NULL, NULL), (4, '1.0000000000000000001', '1.0000000000000000001'),
        (5, '{{"a": {{"b": [1, 2.50]}}}}', '{{"a": {{"b": [1, 2.50]}}}}')"""
    )
    native = _same_as_native(_native_and_sqlalchemy(pg_url, tmp_path, table), table)
    # an array of jsonb: a list of each element's text (the native reader's elements
    # are tagged JSON, which Arrow cannot build from Python values; both load as text)
    pg_admin.execute(f"ALTER TABLE {table} ADD jbs jsonb[]")
    pg_admin.execute(f"""UPDATE {table} SET jbs = ARRAY['null', '{{"a": 1.0}}']::jsonb[]""")
    url = pg_url.replace("postgresql://", "postgresql+psycopg://")
    again = run(
        tmp_path / "again",
        {"sa": {"url": url, "reader": "sqlalchemy"}},
        [{"source": "sa", "table": table}],
    )
    assert read(again, f"sa.{table}").column("jbs")[0].as_py() == ["null", '{"a": 1.0}']
    assert native.column("j").to_pylist() == [
        '"hello"',
        "null",
        None,
        "1.0000000000000000001",
        '{"a": {"b": [1, 2.50]}}',
    ]
    assert native.column("jb").to_pylist()[3] == "1.0000000000000000001"


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "America/New_York"])
def test_through_sqlalchemy_timetz_keeps_its_offset_and_edge_times_load_as_native(
    pg_admin, pg_schema, pg_url, tmp_path, zone
):
    """psycopg dropped a timetz's offset (12:34:56.789012+05:30 -> 12:34:56.789012) and
    failed, naming no column, on infinity, time 24:00:00 and a timestamptz whose text in
    the session's zone is past 9999 (east of UTC) or BC (west of it)."""
    table = f"{pg_schema}.times"
    pg_admin.execute(
        f"CREATE TABLE {table} (id int, tz timetz, t time, d date, ts timestamp, tstz timestamptz)"
    )
    pg_admin.execute(
        f"""INSERT INTO {table} VALUES
        (1, '12:34:56.789012+05:30', '24:00:00', 'infinity', 'infinity', 'infinity'),
        (2, '00:00:00-12', '00:00:00', '-infinity', '-infinity', '-infinity'),
        (3, NULL, '23:59:59.999999', '2024-02-29', '2024-02-29 12:00',
         '9999-12-31 23:59:59.999999+00'),
        (4, NULL, NULL, NULL, NULL, '0001-01-01 00:00:00+00')"""
    )
    native = _same_as_native(_native_and_sqlalchemy(pg_url, tmp_path, table, zone), table)
    assert native.column("tz").to_pylist() == ["12:34:56.789012+05:30", "00:00:00-12", None, None]
    assert native.column("tstz").cast(pa.int64()).to_pylist()[2:] == [
        253_402_300_799_999_999,
        -62_135_596_800_000_000,
    ]


def test_through_sqlalchemy_numerics_take_their_declared_type(
    pg_admin, pg_schema, pg_url, tmp_path
):
    """numeric(p,0) was typed from its first batch (decimal128(1,0)) and a later batch
    failed; numeric(5,-2) failed at the Parquet write; unconstrained numeric was a
    value-dependent decimal256 and NaN raised: now decimal128(p,0), decimal(7,0) and
    PostgreSQL's exact text, as the native reader."""
    table = f"{pg_schema}.nums"
    pg_admin.execute(
        f"CREATE TABLE {table} (id int, whole numeric(20,0), neg numeric(5,-2), "
        "free numeric, money numeric(12,2))"
    )
    pg_admin.execute(
        f"""INSERT INTO {table} VALUES (1, 1, 100, 0.0000000000, 1.50),
        (2, 12345678901234567890, 9999900, 'NaN', -9999999999.99),
        (3, NULL, NULL, 'Infinity', NULL), (4, 0, 0, 123456789012345678901234567890.5, 0)"""
    )
    native = _same_as_native(_native_and_sqlalchemy(pg_url, tmp_path, table), table)
    assert native.schema.field("whole").type == pa.decimal128(20, 0)
    assert native.schema.field("neg").type == pa.decimal128(7, 0)
    assert native.column("free").to_pylist() == [
        "0.0000000000",
        "NaN",
        "Infinity",
        "123456789012345678901234567890.5",
    ]


@pytest.mark.parametrize(
    ("kind", "value", "shown"),
    [
        ("date", "0044-03-15 BC", "0044-03-15 BC"),
        ("timestamp", "10000-01-01", "10000-01-01 00:00:00"),
    ],
)
def test_through_sqlalchemy_a_date_outside_years_1_to_9999_fails_naming_the_column(
    pg_admin, pg_schema, pg_url, tmp_path, kind, value, shown
):
    """psycopg's DataError named no column; the refusal is the native reader's."""
    table = f"{pg_schema}.far"
    pg_admin.execute(f"CREATE TABLE {table} (id int, at {kind})")
    pg_admin.execute(f"INSERT INTO {table} VALUES (1, '{value}')")
    summary = _native_and_sqlalchemy(pg_url, tmp_path, table)
    error = result(summary, f"sa.{table}").error
    assert error.startswith(f"sa.{table}: column 'at' ({kind}) holds {shown}"), error
    assert "CASE WHEN at >= '0001-01-01'" in error
