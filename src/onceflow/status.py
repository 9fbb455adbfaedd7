"""`onceflow status` and `onceflow reset-state`: one view and one reset across the steps."""

from __future__ import annotations

from datetime import date
from typing import Any

from onceflow.config import Config
from onceflow.consistency import list_locks
from onceflow.extract import (
    create_extraction_report,
    force_reprocess_table,
    reset_failed_extractions,
    resolve_run,
)
from onceflow.load import load_status, reset_load_state
from onceflow.state import Store, open_store
from onceflow.validate import reset_validation_state, validation_status


def status_report(
    config: Config,
    run_date: str | date | None = None,
    *,
    run_id: str | None = None,
    store: Store | None = None,
) -> dict[str, Any]:
    """A run's extraction report plus each table's load status, each table's last
    validation and the pipeline's locks."""
    store = store or open_store(config.state_url)
    report = create_extraction_report(config, run_date, run_id=run_id, store=store)
    locks = [
        {"name": lock.name, "holder": lock.describe(), "stale": stale}
        for lock, stale in list_locks(config, store)
    ]
    return {
        **report,
        "load": load_status(config, store=store),
        "validation": validation_status(config, store=store),
        "locks": locks,
    }


def reset_state(
    config: Config,
    run_date: str | date | None = None,
    *,
    run_id: str | None = None,
    failed: bool = False,
    table: str | None = None,
    validation: bool = False,
    rule: str | None = None,
    store: Store | None = None,
) -> dict[str, Any]:
    """--failed: failed extractions and loads -> pending; --table T: re-extract T;
    --validation [--table T] [--rule R]: forget stored rule results (all, a table's, one
    rule's), so they run again; none: forget the run's state and the load tracker
    (re-derived from the Delta logs)."""
    store = store or open_store(config.state_url)
    if validation:
        n = reset_validation_state(config, table=table, rule=rule, store=store)
        scope = {"table": config.table(table).key} if table else {}
        return {
            "action": "reset_validation",
            **scope,
            **({"rule": rule} if rule else {}),
            "count": n,
        }
    if failed:
        n = reset_failed_extractions(config, run_date, run_id=run_id, store=store)
        files = reset_load_state(config, failed_only=True, store=store)
        return {"action": "reset_failed", "count": n, "load_files": files}
    if table:
        forced = force_reprocess_table(config, table, run_date, run_id=run_id, store=store)
        return {"action": "force_reprocess", "table": config.table(table).key, "count": int(forced)}
    run = resolve_run(config, store, run_date, run_id)
    removed = store.runs.delete(run.run_id)
    # The tracker is an index of the Delta logs: the next load re-derives it.
    files = reset_load_state(config, store=store)
    return {"action": "forget_run", "run_id": run.run_id, "count": removed, "load_files": files}
