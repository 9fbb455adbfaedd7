"""`onceflow status` and `onceflow reset-state`: one view and one reset across the steps."""

from __future__ import annotations

from datetime import date
from typing import Any

from onceflow.config import Config
from onceflow.consistency import list_locks, pipeline_at_rest
from onceflow.errors import ConfigError
from onceflow.extract import (
    create_extraction_report,
    find_run,
    force_reprocess_table,
    reset_failed_extractions,
    run_context,
)
from onceflow.load import load_status, reset_load_state
from onceflow.state import LockRecord, Store, open_store
from onceflow.validate import reset_validation_state, validation_status


def status_report(
    config: Config,
    run_date: str | date | None = None,
    *,
    run_id: str | None = None,
    problems: bool = False,
    store: Store | None = None,
) -> dict[str, Any]:
    """A run's extraction report plus each table's load status, each table's last
    validation and the pipeline's locks, with a count summary of the loads
    (`load_summary`) and of the validations (`validation_summary`).

    Without a date or run id, the latest run's; a pipeline with no run (a folder of
    standalone loads, `load --path`) has no run section: `run_id` is None, `tables`
    empty, and the loads, validations and locks are reported all the same.

    `problems`: `tables`, `load` and `validation` list only the tables with a problem
    (`has_problem`); the counts and summaries still count every table."""
    store = store or open_store(config.state_url)
    if find_run(config, store, run_date, run_id) is None:
        report = _no_run(config)
    else:
        report = create_extraction_report(config, run_date, run_id=run_id, store=store)
    locks = [lock_entry(lock, stale) for lock, stale in list_locks(config, store)]
    loads = load_status(config, store=store)
    validations = validation_status(config, store=store)
    out = {
        **report,
        "load": loads,
        "load_summary": _load_summary(loads),
        "validation": validations,
        "validation_summary": validation_summary(validations),
        "locks": locks,
        "problems_only": problems,
    }
    if problems:
        for section, kind in (
            ("tables", "extraction"),
            ("load", "load"),
            ("validation", "validation"),
        ):
            out[section] = [row for row in out[section] if has_problem(kind, row)]
    return out


#: Validation statuses that are no problem: every rule held (a `warn` is a rule that did
#: not hold, at warn severity: shown)
_VALIDATION_OK = ("passed",)


def has_problem(kind: str, row: dict[str, Any]) -> bool:
    """Whether a row of a status report's section (`kind`: `extraction`, `load` or
    `validation`) shows a problem: an extraction not completed; a load with failed,
    damaged or uncommitted files, a config whose settings are not the table's, a wait,
    skipped late rows, an unreadable table or a stale lock; a validation not passed."""
    if kind == "extraction":
        return bool(row["status"] != "completed" or row.get("error"))
    if kind == "load":
        return bool(
            row["failed_files"]
            or row["damaged_files"]
            or row["uncommitted_files"]
            or row.get("settings_conflict")
            or row["waiting"]
            or row["rows_skipped"]
            or row["error"]
            or row.get("lock_stale")
        )
    return row["status"] not in _VALIDATION_OK


def _load_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The load section in counts: its tables, those with a problem, and the tracked
    files of all of them by status."""
    files: dict[str, int] = {}
    for row in rows:
        for state, n in row["files"].items():
            files[state] = files.get(state, 0) + n
    problems = sum(1 for row in rows if has_problem("load", row))
    return {"tables": len(rows), "with_problems": problems, "files": files}


def validation_summary(rows: list[dict[str, Any]]) -> dict[str, int]:
    """The validation section in counts: tables by the status of their last validation
    (`never validated` too, for a rules-only config's tables)."""
    counts = dict.fromkeys(("passed", "warn", "failed", "error", "skipped"), 0)
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def lock_entry(lock: LockRecord, stale: str | None) -> dict[str, Any]:
    """A lock as `status --json` shows it: `name`, `holder` (a sentence) and `stale` (why,
    or None), plus the fields of seed 002's lock file, so that its monitoring reads them
    unchanged: `lock_name`, `pid`, `hostname`, `acquired_at` and `timeout_at` (when the
    lease runs out unless the holder heartbeats: onceflow's leases are renewed, so it
    moves), and `heartbeat_at`."""
    return {
        "name": lock.name,
        "holder": lock.describe(),
        "stale": stale,
        "lock_name": lock.name,
        "pid": lock.pid,
        "hostname": lock.host,
        "acquired_at": lock.acquired_at,
        "heartbeat_at": lock.heartbeat_at,
        "timeout_at": lock.expires_at,
    }


def _no_run(config: Config) -> dict[str, Any]:
    """The extraction part of a status report for a pipeline that has no run: the keys
    of `create_extraction_report`, empty."""
    return {
        "run_id": None,
        "pipeline": config.pipeline,
        "run_date": None,
        "status": None,
        "window_start": None,
        "window_end": None,
        "started_at": None,
        "ended_at": None,
        "restart_count": 0,
        "total_tables": 0,
        "status_counts": {"pending": 0, "running": 0, "completed": 0, "failed": 0},
        "completion_rate": 0.0,
        "total_records": 0,
        "failed_tables": [],
        "tables": [],
        "window_consistency": {
            "run_id": None,
            "consistent": True,
            "expected_window": None,
            "inconsistent": [],
        },
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
    lock_timeout: float = 0.0,
    store: Store | None = None,
) -> dict[str, Any]:
    """--failed: failed extractions and loads -> pending; --table T: re-extract T;
    --validation [--table T] [--rule R]: forget stored rule results (all, a table's, one
    rule's), so they run again; none: forget the run's state and the load tracker
    (re-derived from the Delta logs). A pipeline with no run (standalone loads) resets
    only its load tracker: `run_id` None, `count` 0.

    Every form holds the pipeline lock, with no run of the pipeline live, and its tables'
    load locks: a run or a load going on would write over the reset, or fail on a run
    it no longer finds. It waits up to `lock_timeout` seconds for them, then raises
    LockError naming the holder."""
    store = store or open_store(config.state_url)
    if lock_timeout < 0:
        raise ConfigError("--lock-timeout: must be 0 or more seconds", field="lock_timeout")
    with pipeline_at_rest(config, store, timeout=lock_timeout, tables=True):
        return _reset(config, run_date, run_id, failed, table, validation, rule, store)


def _reset_failed_of_every_run(config: Config, store: Store) -> list[dict[str, Any]]:
    """The failed extractions of every run of the pipeline back to pending: each run that
    had any (`run_id`, `run_date`, `count`), oldest run first.

    Without --date, "reset the failed ones" means all of them, as it does for the failed
    load files (the tracker's, whatever their run): the latest run alone would leave an
    older run's failed table failed, the run with it, while the command said 0 (a cron's
    retry, a later date run by hand, make the failed run no longer the latest)."""
    reset = []
    for run in store.runs.of_dates(config.pipeline):
        if store.extractions.counts(run.run_id).get("failed"):
            n = store.extractions.reset_failed(run.run_id)
            if n:
                reset.append({"run_id": run.run_id, "run_date": run.run_date, "count": n})
    return reset


def _reset(
    config: Config,
    run_date: str | date | None,
    run_id: str | None,
    failed: bool,
    table: str | None,
    validation: bool,
    rule: str | None,
    store: Store,
) -> dict[str, Any]:
    """`reset_state`'s work, under its locks."""
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
        files = reset_load_state(config, failed_only=True, store=store)
        if run_date is None and run_id is None:
            runs = _reset_failed_of_every_run(config, store)
            return {
                "action": "reset_failed",
                "count": sum(r["count"] for r in runs),
                "runs": runs,
                "load_files": files,
            }
        n = reset_failed_extractions(config, run_date, run_id=run_id, store=store)
        return {"action": "reset_failed", "count": n, "load_files": files}
    if table:
        forced = force_reprocess_table(config, table, run_date, run_id=run_id, store=store)
        rid = run_context(config, run_date, run_id, store).run_id
        return {
            "action": "force_reprocess",
            "table": config.table(table).key,
            "count": int(forced),
            "run_id": rid,
            # False: the run has not run, so there was nothing to reprocess
            "ran": store.runs.get(rid) is not None,
        }
    run = find_run(config, store, run_date, run_id)
    removed = 0 if run is None else store.runs.delete(run.run_id)
    # The tracker is an index of the Delta logs: the next load re-derives it.
    files = reset_load_state(config, store=store)
    return {
        "action": "forget_run",
        "run_id": None if run is None else run.run_id,
        "count": removed,
        "load_files": files,
    }
