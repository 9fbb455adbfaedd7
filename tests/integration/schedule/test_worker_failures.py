"""How a worker reports and records failures: a run with a failed table still loads the
healthy ones, names every failed table, and a worker lost again and again spends the
run's retry budget instead of being requeued for ever."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from onceflow.config import Config
from onceflow.schedule import Scheduler, Worker
from onceflow.state import Store

NOW = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)


def nightly(**kw: object) -> dict[str, object]:
    return {"name": "nightly", "cron": "0 2 * * *", "start": "2025-01-05T00:00:00+00:00", **kw}


def table(name: str, source_table: str) -> dict[str, Any]:
    return {
        "source": "src",
        "table": source_table,
        "name": name,
        "extract": {"mode": "incremental", "cursor": "updated_at"},
        "load": {"strategy": "append"},
    }


def with_missing_tables(project: Callable[..., Config], *missing: str) -> Config:
    """The events table, and one table per name whose source table does not exist."""
    tables = [table("events", "events"), *(table(m, m) for m in missing)]
    return project(
        schedules=[nightly(catch_up={"max": 1}, retry={"max_retries": 0})],
        extra={"tables": tables},
    )


def test_a_failed_extraction_still_loads_the_tables_that_were_extracted(
    store: Store, project: Callable[..., Config]
) -> None:
    config = with_missing_tables(project, "missing")
    Scheduler([config], store).run_once(NOW)
    report = Worker([config], store).run(until_idle=True)
    assert (report.completed, report.failed) == (0, 1)
    (run,) = store.scheduled_runs.find()
    # the run is failed (its retry re-extracts only what failed) ...
    assert run.state == "FAILED" and run.error_type == "ExtractError"
    # ... and the healthy table is loaded, as `onceflow run` loads it
    events = Path(config.resolve(config.warehouse)) / "src" / "events"
    assert (events / "_delta_log").is_dir()


def test_a_runs_error_names_every_failed_table(
    store: Store, project: Callable[..., Config]
) -> None:
    config = with_missing_tables(project, "missing_a", "missing_b")
    Scheduler([config], store).run_once(NOW)
    report = Worker([config], store).run(until_idle=True)
    (run,) = store.scheduled_runs.find()
    assert run.state == "FAILED" and run.error_type == "ExtractError"
    assert run.error is not None
    first, _, rest = run.error.partition("; and 1 more: ")
    assert "src.missing_a" in first  # the first error in full
    assert rest == "src.missing_b (ExtractError)"
    assert "ExtractError" in json.loads(run.error_types or "[]")
    assert "src.missing_b (ExtractError)" in report.failures[0]

