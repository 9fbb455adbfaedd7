"""Seed 002's loader examples, as written, on onceflow's `DataProcessor`: the lock
(`process_all_tables()` takes it; `with processor.pipeline_lock:` holds it for your own
work) and the idempotency test whose totals must be true."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from onceflow import DataProcessor, Pipeline
from onceflow.config import config_from_dict
from onceflow.errors import LockError


def _config(tmp_path: Path) -> dict[str, Any]:
    """The seed's spelling (`table_name`, `loading_strategy`, `primary_keys`...) with
    onceflow's source and folders; extracted for two days first."""
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE customers (customer_id INTEGER, name TEXT, email TEXT)")
        conn.execute("CREATE TABLE transactions (id INTEGER, amount REAL)")
        conn.executemany("INSERT INTO customers VALUES (?, ?, ?)", [(1, "a", "a@x"), (2, "b", "")])
        conn.executemany("INSERT INTO transactions VALUES (?, ?)", [(1, 9.5), (2, 3.0)])
    return {
        "pipeline": "shop",
        "state": f"sqlite:///{tmp_path / 'state.db'}",
        "lake": str(tmp_path / "lake"),
        "warehouse": str(tmp_path / "warehouse"),
        "sources": {"shop": {"url": f"sqlite:///{db}"}},
        "tables": [
            {
                "source": "shop",
                "table_name": "customers",
                "loading_strategy": "scd2",
                "primary_keys": ["customer_id"],
                "tracking_columns": ["name", "email"],
                "scd2_effective_date_column": "effective_date",
                "scd2_end_date_column": "end_date",
                "scd2_current_flag_column": "is_current",
            },
            {"source": "shop", "table_name": "transactions", "loading_strategy": "append"},
        ],
        "retry_attempts": 3,
    }


def _extract_two_days(config: dict[str, Any]) -> None:
    extracting = Pipeline(config_from_dict(config))
    for day in ("2025-01-22", "2025-01-23"):
        assert extracting.extract(day).ok


def test_seed_002_process_all_tables_is_idempotent_with_true_totals(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _extract_two_days(config)

    processor = DataProcessor(config)
    result = processor.process_all_tables()  # Uses lock by default
    assert result["success"] is True
    assert result["total_files_discovered"] == 4  # 2 tables x 2 days
    assert result["total_files_processed"] == 4
    assert result["failed_tables"] == [] and result["total_files_failed"] == 0

    # Run the same pipeline multiple times
    results = []
    for _i in range(3):
        result = processor.process_all_tables()
        results.append(result)

    # 1. Same files discovered each time
    assert all(r["total_files_discovered"] == results[0]["total_files_discovered"] for r in results)
    # 2. Decreasing files processed (already completed files skipped)
    processed_counts = [r["total_files_processed"] for r in results]
    assert processed_counts[1] <= processed_counts[0]
    assert processed_counts[2] <= processed_counts[1]
    assert processed_counts == [0, 0, 0]  # all four were loaded by the first call
    assert [r["total_files_skipped"] for r in results] == [4, 4, 4]
    # 3. Final data state is identical: each day's transactions once
    loads = processor.last_summary
    assert loads is not None and loads.ok


def test_seed_002_pipeline_lock_keeps_runs_out_and_lets_the_processor_in(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _extract_two_days(config)
    processor = DataProcessor(config)
    other = DataProcessor(config)

    # Manual lock management
    with processor.pipeline_lock:
        # Your processing logic here
        with pytest.raises(LockError, match=r"pipeline:shop"):
            other.process_all_tables()  # another processor waits (lock_timeout=0: refused)
        with pytest.raises(LockError):
            Pipeline(other.config).extract("2025-01-23", tables=["shop.transactions"])
        result = processor.process_all_tables()  # under the lock it holds
        assert result["total_files_processed"] == 4
    assert other.process_all_tables()["total_files_processed"] == 0  # released
    assert processor.pipeline.store.locks.holder("pipeline:shop") is None
