"""Reports and repairs of extraction state: summary, report, reset, force, window checks."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Any

from onceflow.config import Config
from onceflow.errors import StateError
from onceflow.pipeline import RunContext, extraction_entry, run_context
from onceflow.pipeline_load import list_locks, load_status, reset_load_state
from onceflow.state import RunRecord, StateStore, open_store


def _store(config: Config, store: StateStore | None) -> StateStore:
    return store or open_store(config.state_url)


def _resolve_run(
    config: Config, store: StateStore, run_date: str | date | None, run_id: str | None
) -> RunRecord:
    """The run named by --run-id or --date, else the pipeline's latest run."""
    if run_id is None and run_date is None:
        runs = store.runs(config.pipeline, limit=1)
        if not runs:
            raise StateError(f"no runs of pipeline {config.pipeline!r} yet; run `onceflow run`")
        return runs[0]
    ctx = run_context(config, run_date, run_id)
    run = store.get_run(ctx.run_id)
    if run is None:
        raise StateError(f"run {ctx.run_id} is not in the state store")
    return run


def get_extraction_summary(
    config: Config,
    run_date: str | date | None = None,
    *,
    run_id: str | None = None,
    store: StateStore | None = None,
) -> dict[str, Any]:
    """Status breakdown of a run's extractions, with the run's progress figures."""
    store = _store(config, store)
    run = _resolve_run(config, store, run_date, run_id)
    counts = store.status_counts(run.run_id)
    extractions = store.extractions(run.run_id)
    return {
        "run_id": run.run_id,
        "pipeline": run.pipeline,
        "run_date": run.run_date,
        "status": run.status,
        "window_start": run.window_start,
        "window_end": run.window_end,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "restart_count": run.restart_count,
        "total_tables": len(extractions),
        "status_counts": counts,
        "completion_rate": round(100.0 * counts["completed"] / len(extractions), 2)
        if extractions
        else 0.0,
        "total_records": sum(
            e.record_count or 0 for e in extractions.values() if e.status == "completed"
        ),
        "failed_tables": sorted(k for k, e in extractions.items() if e.status == "failed"),
    }


def create_extraction_report(
    config: Config,
    run_date: str | date | None = None,
    *,
    run_id: str | None = None,
    store: StateStore | None = None,
) -> dict[str, Any]:
    """The summary plus every table's extraction record and the window check."""
    store = _store(config, store)
    summary = get_extraction_summary(config, run_date, run_id=run_id, store=store)
    rid = summary["run_id"]
    tables = [asdict(e) for e in sorted(store.extractions(rid).values(), key=lambda e: e.table_key)]
    return {
        **summary,
        "tables": tables,
        "window_consistency": validate_window_consistency(config, run_id=rid, store=store),
    }


def status_report(
    config: Config,
    run_date: str | date | None = None,
    *,
    run_id: str | None = None,
    store: StateStore | None = None,
) -> dict[str, Any]:
    """`onceflow status`: the run's extraction report plus each table's load status."""
    store = _store(config, store)
    report = create_extraction_report(config, run_date, run_id=run_id, store=store)
    locks = [
        {"name": lock.name, "holder": lock.describe(), "stale": stale}
        for lock, stale in list_locks(config, store)
    ]
    return {**report, "load": load_status(config, store=store), "locks": locks}


def validate_window_consistency(
    config: Config,
    run_date: str | date | None = None,
    *,
    run_id: str | None = None,
    store: StateStore | None = None,
) -> dict[str, Any]:
    """Every extraction of a run whose window differs from the run's window."""
    store = _store(config, store)
    run = _resolve_run(config, store, run_date, run_id)
    expected = (run.window_start, run.window_end)
    drift = [
        {"table_key": e.table_key, "window_start": e.window_start, "window_end": e.window_end}
        for e in store.extractions(run.run_id).values()
        if e.window_start is not None and (e.window_start, e.window_end) != expected
    ]
    return {
        "run_id": run.run_id,
        "consistent": not drift,
        "expected_window": list(expected),
        "inconsistent": drift,
    }


def reset_failed_extractions(
    config: Config,
    run_date: str | date | None = None,
    *,
    run_id: str | None = None,
    all_runs: bool = False,
    store: StateStore | None = None,
) -> int:
    """Put failed extractions back to pending (of one run, or all); returns how many."""
    store = _store(config, store)
    if all_runs:
        return store.reset_failed(None)
    return store.reset_failed(_resolve_run(config, store, run_date, run_id).run_id)


def force_reprocess_table(
    config: Config,
    key: str,
    run_date: str | date | None = None,
    *,
    run_id: str | None = None,
    store: StateStore | None = None,
) -> bool:
    """Flag one table of a run for re-extraction on the next run; False if not in the run."""
    store = _store(config, store)
    table = config.table(key)
    ctx: RunContext = run_context(config, run_date, run_id)
    if store.get_run(ctx.run_id) is None:
        store.begin_run(ctx.run_id, config.pipeline, ctx.run_date.isoformat(), ctx.window.iso())
        store.finish_run(ctx.run_id)
    store.ensure_extractions(ctx.run_id, [extraction_entry(table, ctx)])
    return store.force_reprocess(ctx.run_id, table.key)


def reset_state(
    config: Config,
    run_date: str | date | None = None,
    *,
    run_id: str | None = None,
    failed: bool = False,
    table: str | None = None,
    store: StateStore | None = None,
) -> dict[str, Any]:
    """--failed: failed extractions and loads -> pending; --table T: re-extract T;
    neither: forget the run's state and the load tracker (re-derived from the Delta logs)."""
    store = _store(config, store)
    if failed:
        n = reset_failed_extractions(config, run_date, run_id=run_id, store=store)
        files = reset_load_state(config, failed_only=True, store=store)
        return {"action": "reset_failed", "count": n, "load_files": files}
    if table:
        forced = force_reprocess_table(config, table, run_date, run_id=run_id, store=store)
        return {"action": "force_reprocess", "table": config.table(table).key, "count": int(forced)}
    run = _resolve_run(config, store, run_date, run_id)
    removed = store.delete_run(run.run_id)
    # The tracker is an index of the Delta logs: the next load re-derives it.
    files = reset_load_state(config, store=store)
    return {"action": "forget_run", "run_id": run.run_id, "count": removed, "load_files": files}
