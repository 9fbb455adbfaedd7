"""Transient source errors are retried with backoff; permanent ones fail at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from onceflow.config import config_from_dict
from onceflow.extract import extract
from onceflow.state import open_store

MARKER = "onceflow_retry_marker"


def _config(tmp_path: Path, pg_url: str, table: dict[str, Any], attempts: int = 3) -> Any:
    return config_from_dict(
        {
            "pipeline": "retry",
            "state": f"sqlite:///{tmp_path / 'state.db'}",
            "lake": str(tmp_path / "lake"),
            "retry": {"max_attempts": attempts, "backoff_seconds": 0.05},
            "sources": {"pg": {"url": pg_url}},
            "tables": [table],
        }
    )


def _terminate_once(admin: Any, stop: threading.Event, killed: list[int]) -> None:
    while not stop.is_set() and not killed:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid() "
            "AND state = 'active'",
            (f"%{MARKER}%",),
        ).fetchall()
        for (pid,) in rows:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            killed.append(pid)
        time.sleep(0.02)


def test_connection_killed_mid_query_is_retried_and_succeeds(
    tmp_path: Path, pg_admin: Any, pg_schema: str, pg_url: str
) -> None:
    pg_admin.execute(f"CREATE TABLE {pg_schema}.t AS SELECT g AS id FROM generate_series(1, 500) g")
    query = f"SELECT t.id, (SELECT 1 FROM pg_sleep(1)) AS slept FROM {pg_schema}.t t /* {MARKER} */"
    config = _config(tmp_path, pg_url, {"source": "pg", "name": "slow", "query": query})
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_terminate_once, args=(pg_admin, stop, killed))
    killer.start()
    try:
        summary = extract(config, "2025-01-23")
    finally:
        stop.set()
        killer.join()
    assert killed, "the test never saw the extraction query to terminate it"
    [result] = summary.results
    assert result.action == "extracted", result.error
    assert result.attempts == 2
    assert pq.read_table(result.file_path).num_rows == 500
    record = open_store(config.state_url).extractions.of_run(summary.run.run_id)["pg.slow"]
    assert (record.status, record.attempts) == ("completed", 2)


def test_missing_table_fails_at_once_without_retries(
    tmp_path: Path, pg_schema: str, pg_url: str
) -> None:
    config = _config(tmp_path, pg_url, {"source": "pg", "table": f"{pg_schema}.absent"}, 5)
    started = time.perf_counter()
    [result] = extract(config, "2025-01-23").results
    assert result.action == "failed"
    assert result.attempts == 1
    assert "table not found" in (result.error or "")
    assert time.perf_counter() - started < 5
