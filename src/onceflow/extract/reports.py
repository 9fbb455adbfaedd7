"""Reports and repairs of extraction state: summary, report, window check, reset, force."""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

from onceflow.config import Config
from onceflow.errors import StateError
from onceflow.extract.api import (
    RunContext,
    check_same_run,
    extraction_entry,
    make_job,
    run_context,
    run_rewindowed,
)
from onceflow.extract.extractor import check_committed, needs_extraction
from onceflow.lake import read_sidecar
from onceflow.state import RunRecord, Store, open_store
from onceflow.windows import StoredWindow, broken_seams, make_run_id

log = logging.getLogger(__name__)


def find_run(
    config: Config, store: Store, run_date: str | date | None, run_id: str | None
) -> RunRecord | None:
    """The run named by --run-id or --date (StateError when the store lacks it), else the
    pipeline's latest run, or None when it has none: a store of standalone loads
    (`load --path`) tracks files and tables but has no extraction run."""
    if run_id is None and run_date is None:
        runs = store.runs.find(config.pipeline, limit=1)
        return runs[0] if runs else None
    ctx = run_context(config, run_date, run_id, store)
    run = store.runs.get(ctx.run_id)
    if run is None:
        if run_id is not None:
            _refuse_scheduled_id(config, store, run_id)
        raise StateError(f"run {ctx.run_id} is not in the state store")
    if run_date is not None and run.run_date != ctx.run_date.isoformat():
        # a run id names one window: showing or resetting another date's run under the
        # date asked for would answer a question nobody asked
        raise StateError(
            f"--run-id {ctx.run_id} is the run of {run.run_date}, not of {ctx.run_date}; "
            "give --run-id or --date alone",
            run_id=ctx.run_id,
        )
    return run


def _refuse_scheduled_id(config: Config, store: Store, run_id: str) -> None:
    """StateError when `run_id` is a scheduled run's (`onceflow runs list` shows those):
    it is no pipeline run id, and saying "not in the state store" would send the user
    looking for a run that exists. The pipeline run of its date is named, not shown in
    its place: one date's pipeline run serves every scheduled run of that date (the
    nightly one and a backfill's), whose own state may differ (cancelled, failed)."""
    scheduled = store.scheduled_runs.get(run_id)
    if scheduled is None:
        return
    day = date.fromisoformat(scheduled.run_date)
    mine = scheduled.pipeline == config.pipeline
    other = "" if mine else f" with {scheduled.pipeline}'s config"
    pipeline_run = make_run_id(scheduled.pipeline, day)
    if mine and store.runs.get(pipeline_run) is None:
        theirs = f"its date's pipeline run {pipeline_run} has not started yet"
    else:
        theirs = (
            f"the pipeline run of its date is {pipeline_run} "
            f"(`onceflow status --date {day}`{other})"
        )
    raise StateError(
        f"--run-id {run_id} is a scheduled run ({scheduled.pipeline}/{scheduled.schedule}, "
        f"data date {day}, {scheduled.state}), not a pipeline run: `onceflow runs show "
        f"{run_id}` shows it; {theirs}",
        run_id=run_id,
    )


def resolve_run(
    config: Config, store: Store, run_date: str | date | None, run_id: str | None
) -> RunRecord:
    """The run named by --run-id or --date, else the pipeline's latest run."""
    run = find_run(config, store, run_date, run_id)
    if run is None:
        raise StateError(f"no runs of pipeline {config.pipeline!r} yet; run `onceflow run`")
    return run


def get_extraction_summary(
    config: Config,
    run_date: str | date | None = None,
    *,
    run_id: str | None = None,
    store: Store | None = None,
) -> dict[str, Any]:
    """Status breakdown of a run's extractions, with the run's progress figures."""
    store = store or open_store(config.state_url)
    run = resolve_run(config, store, run_date, run_id)
    counts = store.extractions.counts(run.run_id)
    extractions = store.extractions.of_run(run.run_id)
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
        "completion_rate": _rate(counts["completed"], len(extractions)),
        "total_records": sum(
            e.record_count or 0 for e in extractions.values() if e.status == "completed"
        ),
        "failed_tables": sorted(k for k, e in extractions.items() if e.status == "failed"),
    }


def _rate(done: int, total: int) -> float:
    """`done` of `total` as a percent to 2 decimals, but never 0 or 100 unless exact: a
    run of 100,000 tables with one failed is not 100.0 % complete."""
    if not total:
        return 0.0
    exact = 100.0 * done / total
    shown = round(exact, 2)
    return exact if shown in (0.0, 100.0) and 0 < done < total else shown


def create_extraction_report(
    config: Config,
    run_date: str | date | None = None,
    *,
    run_id: str | None = None,
    store: Store | None = None,
) -> dict[str, Any]:
    """The summary plus every table's extraction record and the window check."""
    store = store or open_store(config.state_url)
    summary = get_extraction_summary(config, run_date, run_id=run_id, store=store)
    rid = summary["run_id"]
    records = sorted(store.extractions.of_run(rid).values(), key=lambda e: e.table_key)
    return {
        **summary,
        "tables": [{**asdict(e), "partial": _partial(e.file_path)} for e in records],
        "window_consistency": validate_window_consistency(config, run_id=rid, store=store),
    }


def _partial(file_path: str | None) -> bool:
    """Whether the extraction's file holds a window that had not ended (`--allow-partial`):
    every run extracts it again until it has, so `completed` alone would overstate it."""
    if not file_path:
        return False
    sidecar = read_sidecar(Path(file_path))
    return bool(sidecar and sidecar.get("partial") is True)


def validate_window_consistency(
    config: Config,
    run_date: str | date | None = None,
    *,
    run_id: str | None = None,
    store: Store | None = None,
) -> dict[str, Any]:
    """Every extraction of a run whose window differs from the run's window, and every
    seam between the pipeline's stored runs of consecutive dates whose windows do not
    tile (`seams`: a gap, whose rows are in no window, or an overlap, whose rows are in
    two; the config's `timezone` changed between them). With no date or run id and no
    run at all (standalone loads only) there is nothing to differ: consistent, with
    `run_id` and `expected_window` None."""
    store = store or open_store(config.state_url)
    seams = [
        s.as_dict()
        for s in broken_seams(
            [
                StoredWindow.of(r.run_id, r.run_date, r.window_start, r.window_end)
                for r in store.runs.of_dates(config.pipeline)
            ]
        )
    ]
    run = find_run(config, store, run_date, run_id)
    if run is None:
        return {
            "run_id": None,
            "consistent": not seams,
            "expected_window": None,
            "inconsistent": [],
            "seams": seams,
        }
    expected = (run.window_start, run.window_end)
    drift = [
        {"table_key": e.table_key, "window_start": e.window_start, "window_end": e.window_end}
        for e in store.extractions.of_run(run.run_id).values()
        if e.window_start is not None and (e.window_start, e.window_end) != expected
    ]
    return {
        "run_id": run.run_id,
        "consistent": not drift and not seams,
        "expected_window": list(expected),
        "inconsistent": drift,
        "seams": seams,
    }


def reset_failed_extractions(
    config: Config,
    run_date: str | date | None = None,
    *,
    run_id: str | None = None,
    all_runs: bool = False,
    store: Store | None = None,
) -> int:
    """Put failed extractions back to pending (of one run, or all); returns how many
    (0 when the pipeline has no run and none was named)."""
    store = store or open_store(config.state_url)
    if all_runs:
        # this pipeline's runs only: a shared state store holds other pipelines' too
        return sum(
            store.extractions.reset_failed(r.run_id) for r in store.runs.of_dates(config.pipeline)
        )
    run = find_run(config, store, run_date, run_id)
    return 0 if run is None else store.extractions.reset_failed(run.run_id)


def force_reprocess_table(
    config: Config,
    key: str,
    run_date: str | date | None = None,
    *,
    run_id: str | None = None,
    store: Store | None = None,
) -> bool:
    """Flag one table of a run for re-extraction on the next run; True when flagged.

    A run the store does not know has not run: its first run extracts the table anyway,
    so nothing is flagged or recorded (False, said in the log): a run invented here would
    show as failed, hold a table the others wait for, and make its first real run look
    like a restart. Unless the lake holds a committed file of the table for that run (the
    store forgot a run that did happen: `reset-state --yes`, a new store): that file would
    be skipped, so the run is recorded `pending` (not started) with the table flagged."""
    store = store or open_store(config.state_url)
    table = config.table(key)
    ctx: RunContext = run_context(config, run_date, run_id, store)
    run = check_same_run(config, store, ctx)
    if run is None:
        if run_id is not None:  # a scheduled run's id names no pipeline run to flag
            _refuse_scheduled_id(config, store, run_id)
        job = make_job(config, ctx, table)
        if needs_extraction(job, check_committed(job)):
            log.info(
                "%s: run %s (%s) has not run: nothing to reprocess; its first run extracts it",
                table.key,
                ctx.run_id,
                ctx.run_date.isoformat(),
            )
            return False
        run = store.runs.register(
            ctx.run_id, config.pipeline, ctx.run_date.isoformat(), ctx.window.iso()
        )
    known = list(store.extractions.of_run(ctx.run_id))
    run_rewindowed(config, run, ctx, [table], known, force=False)
    store.extractions.ensure(ctx.run_id, [extraction_entry(table, ctx)])
    return store.extractions.force(ctx.run_id, table.key)
