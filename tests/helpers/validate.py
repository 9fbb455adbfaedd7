"""Validation test data: Delta tables of events with planted problems, and configs."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

T0 = datetime(2025, 1, 31, tzinfo=UTC)
STATUSES = ["new", "paid", "shipped", "cancelled"]


def events(rows: int, *, seed: int = 1, first_id: int = 1) -> pa.Table:
    """`rows` events; ~5% NULLs, some out-of-range amounts, bad statuses and emails, and
    ids repeated now and then (deterministic for a seed)."""
    rng = random.Random(seed)

    def maybe(value: Any, p: float = 0.05) -> Any:
        return None if rng.random() < p else value

    ids = [
        first_id + i if rng.random() > 0.02 else first_id + rng.randrange(max(1, i + 1))
        for i in range(rows)
    ]
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "customer_id": pa.array([maybe(rng.randrange(1, 60)) for _ in range(rows)], pa.int64()),
            "amount": pa.array(
                [maybe(round(rng.uniform(-5, 1100), 2)) for _ in range(rows)], pa.float64()
            ),
            "status": pa.array(
                [
                    maybe(rng.choice([*STATUSES, "bogus"] if rng.random() < 0.1 else STATUSES))
                    for _ in range(rows)
                ]
            ),
            "email": pa.array(
                [
                    maybe(f"u{i}@ex.com" if rng.random() > 0.05 else f"u{i} at ex")
                    for i in range(rows)
                ]
            ),
            "quantity": pa.array([maybe(rng.randrange(0, 9)) for _ in range(rows)], pa.int32()),
            "created_at": pa.array(
                [T0 - timedelta(minutes=rng.randrange(0, 5000)) for _ in range(rows)],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )


def customers(n: int = 50) -> pa.Table:
    return pa.table({"customer_id": pa.array(range(1, n + 1), pa.int64())})


RULES: list[dict[str, Any]] = [
    {"name": "id_present", "type": "completeness", "column": "id"},
    {"name": "customer_present", "type": "completeness", "column": "customer_id", "mostly": 0.9},
    {"name": "amount_range", "type": "range", "column": "amount", "min": 0, "max": 1000},
    {"name": "status_known", "type": "allowed_values", "column": "status", "values": STATUSES},
    {"name": "email_format", "type": "regex", "column": "email", "pattern": "^[^@ ]+@[^@ ]+$"},
    {
        "name": "status_len",
        "type": "length",
        "column": "status",
        "min": 3,
        "max": 7,
        "severity": "warn",
    },
    {
        "name": "qty_rule",
        "type": "sql_predicate",
        "expression": "quantity > 0 OR status = 'cancelled'",
    },
    {"name": "rows", "type": "row_count", "min": 1},
    {
        "name": "mean_amount",
        "type": "statistic",
        "statistic": "mean",
        "column": "amount",
        "min": 0,
        "max": 1000,
    },
    {
        "name": "sd_amount",
        "type": "statistic",
        "statistic": "stddev",
        "column": "amount",
        "max": 1000,
    },
    {"name": "sum_qty", "type": "statistic", "statistic": "sum", "column": "quantity", "min": 0},
    {
        "name": "max_amount",
        "type": "statistic",
        "statistic": "max",
        "column": "amount",
        "max": 2000,
    },
    {"name": "min_qty", "type": "statistic", "statistic": "min", "column": "quantity", "min": 0},
    {
        "name": "median",
        "type": "statistic",
        "statistic": "quantile",
        "quantile": 0.5,
        "column": "amount",
        "max": 900,
    },
    {"name": "id_unique", "type": "uniqueness", "columns": ["id"]},
    {
        "name": "pair_unique",
        "type": "uniqueness",
        "columns": ["id", "status"],
        "filter": "quantity > 2",
    },
    {
        "name": "customer_exists",
        "type": "referential",
        "column": "customer_id",
        "reference": {"table": "customers", "column": "customer_id"},
    },
    {
        "name": "fresh",
        "type": "freshness",
        "column": "created_at",
        "max_age": "4d",
        "reference_time": T0.isoformat(),
    },
    {
        "name": "big_paid",
        "type": "sql_query",
        "query": "SELECT * FROM {table} WHERE status = 'paid' AND amount > 990",
    },
    {
        "name": "dup_status",
        "type": "sql_query",
        "query": "SELECT status, count(*) AS n FROM {table} GROUP BY status "
        "HAVING count(*) > 1000000",
    },
    {"name": "shape", "type": "schema", "columns": {"id": "int64", "amount": "double"}},
]


def write_delta(path: Path, data: pa.Table, mode: str = "error") -> None:
    from deltalake import write_deltalake

    write_deltalake(str(path), data, mode=mode)  # type: ignore[call-overload]


def project(
    folder: Path,
    rules: list[dict[str, Any]] | None = None,
    *,
    events_path: Path | None = None,
    customers_path: Path | None = None,
    extra: dict[str, Any] | None = None,
    table: dict[str, Any] | None = None,
) -> Path:
    """An onceflow.yml whose `src.events` table is the Delta table at `events_path`
    (scope table) with `rules`, and `src.customers` the one at `customers_path`."""
    folder.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "pipeline": "v",
        "state": "sqlite:///state.db",
        "warehouse": "./warehouse",
        "lake": "./lake",
        "sources": {"src": {"url": "sqlite:///src.db"}},
        "tables": [
            {
                "source": "src",
                "table": "events",
                "load": {"strategy": "overwrite", "target": str(events_path or folder / "events")},
                "rules": RULES if rules is None else rules,
                **(table or {}),
            },
            {
                "source": "src",
                "table": "customers",
                "load": {
                    "strategy": "overwrite",
                    "target": str(customers_path or folder / "customers"),
                },
            },
        ],
        **(extra or {}),
    }
    path = folder / "onceflow.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
