"""A small scheduled project for the schedule tests: a SQLite source with one row batch
per day, an onceflow.yml with schedules, lake and warehouse in the test's folder."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from onceflow.config import Config, load_config


def make_source(path: Path, first: date, days: int, rows_per_day: int = 5) -> None:
    """`events(id, amount, updated_at)` with `rows_per_day` rows on each of `days` days."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, amount REAL, updated_at TEXT)"
    )
    rows = []
    for d in range(days):
        day = first + timedelta(days=d)
        for i in range(rows_per_day):
            rows.append((d * 1000 + i, float(i), f"{day} {10 + i:02d}:00:00"))
    conn.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?)", rows)
    conn.commit()
    conn.close()


def make_project(
    folder: Path,
    state_url: str,
    schedules: list[dict[str, Any]] | None = None,
    *,
    pipeline: str = "sched",
    first: date = date(2025, 1, 1),
    days: int = 10,
    table: str = "events",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the project; returns the path of its onceflow.yml."""
    folder.mkdir(parents=True, exist_ok=True)
    make_source(folder / "source.db", first, days)
    data: dict[str, Any] = {
        "pipeline": pipeline,
        "state": state_url,
        "lake": "./lake",
        "warehouse": "./warehouse",
        "timezone": "UTC",
        "workers": 1,
        "lock_ttl_minutes": 0.25,
        "sources": {"src": {"url": "sqlite:///source.db"}},
        "tables": [
            {
                "source": "src",
                "table": table,
                "name": "events",
                "extract": {"mode": "incremental", "cursor": "updated_at"},
                "load": {"strategy": "append"},
            }
        ],
        "schedules": schedules or [],
        **(extra or {}),
    }
    path = folder / "onceflow.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def project_config(folder: Path, state_url: str, **kw: Any) -> Config:
    """make_project, then its Config."""
    return load_config(make_project(folder, state_url, **kw))


def delta_windows(config: Config) -> list[str]:
    """The run dates of the files committed to the events table, in commit order."""
    from deltalake import DeltaTable

    table = DeltaTable(str(Path(config.resolve(config.warehouse)) / "src" / "events"))
    out = []
    for entry in reversed(table.history()):
        meta = entry.get("onceflow.file") or entry.get("userMetadata") or ""
        out.append(str(meta))
    return out
