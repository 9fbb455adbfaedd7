"""An incremental window without rows: its file has the schema a window with rows has.

SQLite's driver types columns from their values, so an empty window used to come out
all int64; its load then created the Delta table with those types and every later
window failed to load. PostgreSQL and MariaDB declare their types with the result.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from onceflow import Pipeline
from onceflow.warehouse import AUDIT_COLUMNS, read_table
from tests.helpers.extract import make_config, read, run

EMPTY_DAY, DAY = "2025-01-22", "2025-01-23"
# order_id, customer_id, amount, currency, note (NULL in every row), price, updated_at
ROWS = [
    (1, 17, 403.1, "EUR", None, "19.99", "2025-01-23 10:44:44"),
    (2, 73, 378.25, "USD", None, "0.01", "2025-01-23 02:44:29"),
    (3, 73, 12.5, "EUR", None, "1234.50", "2025-01-23 23:59:59"),
]


def _sqlite_source(tmp_path: Path) -> str:
    path = tmp_path / "shop.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL,"
        " amount REAL NOT NULL, currency TEXT NOT NULL, note VARCHAR(200),"
        " price DECIMAL(10,2), updated_at TEXT NOT NULL)"
    )
    conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)", ROWS)
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def _postgres_source(request: pytest.FixtureRequest) -> str:
    admin = request.getfixturevalue("pg_admin")
    schema = request.getfixturevalue("pg_schema")
    admin.execute(
        f'CREATE TABLE "{schema}".orders (order_id int PRIMARY KEY, customer_id int NOT NULL,'
        " amount double precision NOT NULL, currency varchar(3) NOT NULL, note text,"
        " price numeric(10,2), updated_at timestamp NOT NULL)"
    )
    with admin.cursor() as cur:
        cur.executemany(f'INSERT INTO "{schema}".orders VALUES (%s,%s,%s,%s,%s,%s,%s)', ROWS)
    return str(request.getfixturevalue("pg_url"))


def _mysql_source(request: pytest.FixtureRequest) -> str:
    admin = request.getfixturevalue("mysql_admin")
    url = str(request.getfixturevalue("mysql_db"))
    db = url.rsplit("/", 1)[1]
    with admin.cursor() as cur:
        cur.execute(
            f"CREATE TABLE `{db}`.orders (order_id int PRIMARY KEY, customer_id int NOT NULL,"
            " amount double NOT NULL, currency varchar(3) NOT NULL, note text,"
            " price decimal(10,2), updated_at datetime NOT NULL)"
        )
        cur.executemany(f"INSERT INTO `{db}`.orders VALUES (%s,%s,%s,%s,%s,%s,%s)", ROWS)
    return url


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def orders_source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(source URL, table name) of an `orders` table whose rows are all on DAY."""
    if request.param == "sqlite":
        yield _sqlite_source(tmp_path), "orders"
    elif request.param == "postgresql":
        yield _postgres_source(request), f"{request.getfixturevalue('pg_schema')}.orders"
    else:
        yield _mysql_source(request), "orders"


def _pipeline(project: Path, url: str, table: str) -> Pipeline:
    tables = [
        {
            "source": "shop",
            "table": table,
            "name": "orders",
            "extract": {"mode": "incremental", "cursor": "updated_at"},
            "load": {"strategy": "append"},
        }
    ]
    return Pipeline(make_config(project, {"shop": url}, tables, pipeline="shop"))


def _data(pipeline: Pipeline) -> pa.Table:
    """The Delta table without its audit columns, in key order."""
    uri = pipeline.config.resolve_target(pipeline.config.tables[0].target)
    table = read_table(uri)
    return table.drop_columns([c for c in AUDIT_COLUMNS if c in table.column_names]).sort_by(
        "order_id"
    )


def test_empty_first_window_then_rows_load_like_a_clean_run(orders_source, tmp_path):
    url, table = orders_source
    pipeline = _pipeline(tmp_path / "empty_first", url, table)
    empty = pipeline.run(EMPTY_DAY)
    assert empty.ok and empty.results[0].record_count == 0
    full = pipeline.run(DAY)
    assert full.ok, full.error
    assert full.results[0].record_count == len(ROWS)

    empty_file, rows_file = (pq.read_schema(r.results[0].file_path) for r in (empty, full))
    assert empty_file == rows_file

    clean = _pipeline(tmp_path / "clean", url, table)
    assert clean.run(DAY).ok
    got, want = _data(pipeline), _data(clean)
    assert got.schema == want.schema
    assert got.to_pylist() == want.to_pylist()
    assert [r["note"] for r in got.to_pylist()] == [None, None, None]

    report = pipeline.validate_consistency()
    assert report["consistent"], report


def _rows_of(tmp_path: Path, url: str, spec: dict[str, Any], date: str) -> pa.Table:
    key = f"lite.{spec.get('name') or spec['table']}"
    return read(run(tmp_path / date, {"lite": url}, [{"source": "lite", **spec}], date=date), key)


@pytest.mark.parametrize(
    "spec",
    [
        {"table": "orders", "extract": {"mode": "incremental", "cursor": "updated_at"}},
        {
            "name": "eur_orders",
            "query": "SELECT order_id, amount, currency, note, updated_at FROM orders"
            " WHERE currency = 'EUR' AND updated_at >= :window_start"
            " AND updated_at < :window_end",
        },
    ],
    ids=["table", "query"],
)
def test_sqlite_empty_window_has_the_schema_of_a_window_with_rows(tmp_path, spec):
    url = _sqlite_source(tmp_path)
    empty = _rows_of(tmp_path, url, spec, EMPTY_DAY)
    rows = _rows_of(tmp_path, url, spec, DAY)
    assert empty.num_rows == 0 and rows.num_rows > 0
    assert empty.schema == rows.schema
    assert rows.schema.field("currency").type == pa.string()
    assert rows.schema.field("amount").type == pa.float64()


def test_sqlite_column_null_in_every_row_keeps_its_declared_type(tmp_path):
    url = _sqlite_source(tmp_path)
    spec = {"table": "orders", "extract": {"mode": "incremental", "cursor": "updated_at"}}
    rows = _rows_of(tmp_path, url, spec, DAY)
    assert rows.column("note").null_count == rows.num_rows
    assert rows.schema.field("note").type == pa.string()


@pytest.mark.parametrize(
    ("declared", "wanted"),
    [
        ("INTEGER", pa.int64()),
        ("BIGINT", pa.int64()),
        ("TEXT", pa.string()),
        ("NVARCHAR(20)", pa.string()),
        ("CLOB", pa.string()),
        ("BLOB", pa.binary()),
        ("REAL", pa.float64()),
        ("DOUBLE PRECISION", pa.float64()),
        ("FLOAT", pa.float64()),
        ("DECIMAL(8,3)", pa.decimal128(8, 3)),
        ("BOOLEAN", pa.bool_()),
        ("TIMESTAMP", pa.timestamp("us")),
        ("DATE", pa.date32()),
    ],
)
def test_sqlite_empty_window_column_type_follows_the_declaration(tmp_path, declared, wanted):
    url = _sqlite_source(tmp_path)
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    conn.execute(f"CREATE TABLE t (updated_at TEXT, v {declared})")
    conn.commit()
    conn.close()
    spec = {"table": "t", "extract": {"mode": "incremental", "cursor": "updated_at"}}
    assert _rows_of(tmp_path, url, spec, EMPTY_DAY).schema.field("v").type == wanted


def test_table_created_by_an_all_int64_empty_window_says_how_to_rebuild_it(tmp_path, monkeypatch):
    from onceflow.extract.readers import sqlite

    url = _sqlite_source(tmp_path)
    pipeline = _pipeline(tmp_path / "project", url, "orders")
    # the extractor before the fix: no declared types, so the empty window is all int64
    with monkeypatch.context() as old:
        old.setattr(sqlite, "sqlite_result_types", lambda *_a, **_k: ({}, {}))
        old.setattr(sqlite.SqliteReader, "_layout", lambda *_a, **_k: None)
        assert pipeline.run(EMPTY_DAY).ok
    uri = pipeline.config.resolve_target(pipeline.config.tables[0].target)
    assert read_table(uri).schema.field("currency").type == pa.int64()

    failed = pipeline.run(DAY)
    assert not failed.ok and failed.error is not None
    message = failed.error[1]
    assert "currency: table has int64, file has string" in message
    assert "Every column of the table is int64" in message
    assert "--force-reprocess" in message and "onceflow load" in message

    # the repair the message gives
    assert pipeline.extract(EMPTY_DAY, force_reprocess=True).ok
    shutil.rmtree(uri)
    repaired = pipeline.run(DAY)
    assert repaired.ok, repaired.error
    assert repaired.run.status == "completed"

    clean = _pipeline(tmp_path / "clean", url, "orders")
    assert clean.run(DAY).ok
    assert _data(pipeline) == _data(clean)
    report = pipeline.validate_consistency()
    assert report["consistent"], report
