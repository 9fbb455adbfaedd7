"""Helpers shared by the extraction integration tests: run a config, read what it wrote."""

from __future__ import annotations

import json
import sqlite3
import struct
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from onceflow import Pipeline
from onceflow.config import config_from_dict
from onceflow.extract import ExtractSummary, extract
from onceflow.lake import sidecar_path


def sqlite_source(tmp_path: Path, script: str) -> str:
    """A SQLite database `source.db` in `tmp_path` made by `script`; its URL."""
    path = tmp_path / "source.db"
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def make_config(
    tmp_path: Path, sources: dict[str, str], tables: list[dict[str, Any]], **extra: Any
) -> Any:
    """A config with a SQLite state store and a lake in tmp_path; fast retries."""
    return config_from_dict(
        {
            "state": f"sqlite:///{tmp_path / 'state.db'}",
            "lake": str(tmp_path / "lake"),
            "retry": {"max_attempts": 2, "backoff_seconds": 0, "max_backoff_seconds": 0},
            "sources": {
                name: {"url": url} if isinstance(url, str) else url for name, url in sources.items()
            },
            "tables": tables,
            **extra,
        },
        base_dir=str(tmp_path),
    )


def run(
    tmp_path: Path,
    sources: dict[str, Any],
    tables: list[dict[str, Any]],
    date: str = "2025-01-23",
    **extra: Any,
) -> ExtractSummary:
    """Extract every table of a config for one run date."""
    return extract(make_config(tmp_path, sources, tables, **extra), date)


def result(summary: ExtractSummary, key: str) -> Any:
    """The result of one table key."""
    return next(r for r in summary.results if r.table_key == key)


def read(summary: ExtractSummary, key: str) -> pa.Table:
    """The committed Parquet file of one table, after checking its sidecar."""
    res = result(summary, key)
    assert res.action == "extracted", res.error
    path = Path(res.file_path)
    sidecar = json.loads(sidecar_path(path).read_text())
    assert sidecar["extraction_complete"] is True
    assert sidecar["record_count"] == res.record_count
    return pq.read_table(path)


def f32(value: float) -> float:
    """A float rounded through float32, as a REAL/FLOAT column stores it."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    """Write a config file (JSON is valid YAML)."""
    path.write_text(json.dumps(data))
    return path


def unique_name(prefix: str) -> str:
    """A unique lower-case name (users, roles)."""
    import uuid

    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def shop_pipeline(tmp_path: Path, **extra: Any) -> Pipeline:
    """A pipeline of two small tables in tmp_path/shop.db (orders: incremental on
    updated_at; customers: full); `extra` config keys (e.g. timezone) on top."""
    db = tmp_path / "shop.db"
    if not db.exists():
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE orders (id INTEGER, updated_at TEXT)")
            conn.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
            conn.execute("INSERT INTO orders VALUES (1, '2025-01-23 10:00:00')")
            conn.execute("INSERT INTO customers VALUES (1, 'a')")
        conn.close()
    tables = [
        {
            "source": "shop",
            "table": "orders",
            "extract": {"mode": "incremental", "cursor": "updated_at"},
        },
        {"source": "shop", "table": "customers"},
    ]
    return Pipeline(make_config(tmp_path, {"shop": f"sqlite:///{db}"}, tables, **extra))
