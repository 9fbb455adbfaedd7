"""Scheduled runs as an operator sees them: list, one run in detail, retry, cancel.

These are what `onceflow runs ...` calls. Retrying mirrors Airflow's *clear*: a run that
failed for good (or was cancelled) is queued again with a fresh retry budget, and the
later windows of its batch that failed (blocked by it, `BlockedRunError`, or of the same
cause) are queued with it, so that the batch finishes in date order in one command.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from onceflow.config import Config
from onceflow.errors import ConfigError, TransitionError
from onceflow.schedule.scheduler import cancel_run, enqueue_run, shared_store
from onceflow.schedule.schedules import MANUAL
from onceflow.state import Store
from onceflow.state.scheduled_runs import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    RUN_STATES,
    RUNNING,
    SCHEDULED,
    ScheduledRunRecord,
)
from onceflow.windows import parse_run_date

log = logging.getLogger(__name__)

#: States a run can be retried from: it ended without its data (a completed run has it).
RETRYABLE = (FAILED, CANCELLED)
#: States a run can be cancelled from: it has not ended yet, or failed and may be retried.
CANCELLABLE = (SCHEDULED, PENDING, RUNNING, FAILED)


def check_tenant(configs: Sequence[Config], tenant: str, store: Store) -> None:
    """ConfigError naming the known tenants unless `tenant` has a run or a job, or a
    schedule of `configs` names it (its first tick has not come yet)."""
    configured = {s.tenant for c in configs for s in c.schedules}
    if tenant in configured:
        return
    recorded = set(store.scheduled_runs.tenants()) | set(store.queue.tenants())
    if tenant in recorded:
        return
    known = sorted(configured | recorded)
    raise ConfigError(
        f"--tenant {tenant!r}: no scheduled run, job or schedule has this tenant; known "
        f"tenants: {', '.join(known) if known else 'none yet'}",
        field="tenant",
    )


def _check_schedule(configs: Sequence[Config], schedule: str, store: Store) -> None:
    """ConfigError naming the known schedules unless `schedule` is one of `configs`',
    `backfill`, `manual` (`create_scheduled_run`'s) or has runs (a schedule removed
    from the config keeps its runs)."""
    name = schedule.split(":", 1)[0]
    configured = {s.name for c in configs for s in c.schedules}
    if name in configured | {"backfill", MANUAL}:
        return
    for config in configs:
        for key in (schedule, f"{schedule}:{MANUAL}"):
            if store.scheduled_runs.find(pipeline=config.pipeline, schedule=key, limit=1):
                return
    known = ", ".join(sorted(configured)) or "none"
    raise ConfigError(
        f"--schedule {schedule!r}: no schedule of the config and no run has this name; "
        f"schedules: {known} (and backfill, manual)",
        field="schedule",
    )


@dataclass
class RetryReport:
    """What `retry_run` queued: the run, then the later failed windows of its batch."""

    run_id: str
    requeued: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"run_id": self.run_id, "requeued": self.requeued}


def list_runs(
    configs: Sequence[Config],
    *,
    state: str | None = None,
    schedule: str | None = None,
    tenant: str | None = None,
    run_date: str | date | None = None,
    limit: int = 20,
    store: Store | None = None,
) -> list[ScheduledRunRecord]:
    """The pipelines' scheduled runs, newest tick first, filtered by state, schedule
    (`backfill` for backfill runs; a schedule's name covers its triggered runs,
    `NAME:manual`), tenant and run date (YYYY-MM-DD, `today`, `yesterday`); at most
    `limit`."""
    if state is not None and state.upper() not in RUN_STATES:
        raise ConfigError(
            f"--state: unknown state {state!r}; states: {', '.join(RUN_STATES)}", field="state"
        )
    if limit < 1:
        raise ConfigError(f"--limit: expected at least 1, got {limit}", field="limit")
    day = (
        None
        if run_date is None or not configs
        else parse_run_date(run_date, configs[0].zone, option="--date").isoformat()
    )
    own = store is None
    store = store or shared_store(list(configs), read_only=True)
    try:
        # a schedule's name covers its triggered runs too (their key is NAME:manual)
        keys: list[str | None] = [schedule]
        if schedule is not None and ":" not in schedule:
            keys.append(f"{schedule}:{MANUAL}")
        found: list[ScheduledRunRecord] = []
        for config in configs:
            for key in keys:
                found += store.scheduled_runs.find(
                    state=None if state is None else state.upper(),
                    tenant=tenant,
                    pipeline=config.pipeline,
                    schedule=key,
                    run_date=day,
                    limit=limit,
                    newest_first=True,
                )
        if not found:
            # a mistyped --tenant or --schedule would otherwise read as "nothing there"
            if tenant is not None:
                check_tenant(configs, tenant, store)
            if schedule is not None:
                _check_schedule(configs, schedule, store)
        found.sort(key=lambda r: (r.tick, r.id), reverse=True)
        return [lease_judged(store, r) for r in found[:limit]]
    finally:
        if own:
            store.close()


def lease_judged(store: Store, run: ScheduledRunRecord) -> ScheduledRunRecord:
    """`run` with `lease_expired_at` set when it is RUNNING on a job whose lease ran out:
    its worker was killed or cut off, and until a scheduler or worker pass requeues it,
    RUNNING alone would read as work going on."""
    if run.state != RUNNING or run.job_id is None:
        return run
    job = store.queue.get(run.job_id)
    expiry = None if job is None or job.state != "claimed" else job.lease_expires_at
    if expiry is None or expiry >= time.time():
        return run
    return replace(run, lease_expired_at=datetime.fromtimestamp(expiry, UTC).isoformat())


def run_details(
    configs: Sequence[Config], run_id: str, *, store: Store | None = None
) -> dict[str, Any]:
    """One run: its fields, its transition history and its queue job (None without one)."""
    own = store is None
    store = store or shared_store(list(configs), read_only=True)
    try:
        run = _run(store, run_id)
        # a queued run's job is set on the run only once a worker starts it
        job = store.queue.live_job_of_run(run.id) or (
            store.queue.get(run.job_id) if run.job_id is not None else None
        )
        return {
            **run.as_dict(),
            "history": [vars(h) for h in store.scheduled_runs.history(run_id)],
            "job": None if job is None else _job_dict(job),
        }
    finally:
        if own:
            store.close()


def retry_run(configs: Sequence[Config], run_id: str, *, store: Store | None = None) -> RetryReport:
    """Queue a run that failed for good or was cancelled again, with a fresh retry
    budget, and with it the later windows of its batch (a catch-up, a backfill) that
    failed: blocked by it, or on their own, usually of the same cause.

    A run with an earlier window of its batch still FAILED is refused, naming that
    window: retried alone it would only be blocked again. A completed run is refused
    too: its data is loaded (`backfill --reprocess all` extracts a date again).
    """
    own = store is None
    store = store or shared_store(list(configs))
    try:
        run = _run(store, run_id)
        _check_retryable(store, run)
        chain = [run, *_later_failed(store, run)]
        report = RetryReport(run.id)
        # one transaction: a second operator's retry of the same batch gets
        # TransitionError and changes nothing, rather than half the chain
        with store.transaction() as tx:
            for one in chain:
                enqueue_run(
                    store,
                    one,
                    one.state,
                    tx=tx,
                    # "reprocess" restarts the retry budget (retry.failures_since_reprocess)
                    reason="reprocess (retry) by hand"
                    if one is run
                    else f"reprocess (retry) with the earlier window's run {run.id}",
                    values={"error": None, "waiting_on": None},
                )
                report.requeued.append(
                    {"run_id": one.id, "run_date": one.run_date, "was": one.state}
                )
        log.info("scheduled run %s: queued again by hand, %d run(s)", run.id, len(chain))
        return report
    finally:
        if own:
            store.close()


def cancel_scheduled_run(
    configs: Sequence[Config], run_id: str, *, store: Store | None = None
) -> str:
    """Cancel a run that has not completed, and end its job; returns the state it was
    in. A worker running it drops it before its load (docs/schedule.md, Cancelling)."""
    own = store is None
    store = store or shared_store(list(configs))
    try:
        run = _run(store, run_id)
        if run.state not in CANCELLABLE:
            raise TransitionError(
                f"scheduled run {run.id} ({run.pipeline} {run.run_date}) is {run.state}: "
                f"only a run that is {', '.join(CANCELLABLE)} can be cancelled",
                run_id=run.id,
            )
        cancel_run(store, run.id, run.state, error="cancelled by hand")
        return run.state
    finally:
        if own:
            store.close()


def redo_command(schedule: str, run_date: str) -> str:
    """The command that extracts and loads a completed run's date again, with its
    schedule's tables, tenant and priority (a backfill's runs have none of their own)."""
    name = schedule.split(":", 1)[0]  # a trigger's key is NAME:manual
    settings = "" if name == "backfill" else f" --schedule {name}"
    return f"onceflow backfill --from {run_date} --to {run_date}{settings} --reprocess all"


def _run(store: Store, run_id: str) -> ScheduledRunRecord:
    run = store.scheduled_runs.get(run_id)
    if run is None:
        raise TransitionError(
            f"scheduled run {run_id} is not in the state store (onceflow runs list shows the runs)",
            run_id=run_id,
        )
    return run


def _check_retryable(store: Store, run: ScheduledRunRecord) -> None:
    where = f"scheduled run {run.id} ({run.pipeline} {run.schedule} {run.run_date})"
    if run.state == COMPLETED:
        raise TransitionError(
            f"{where} completed: its data is loaded; to extract and load its date again, "
            f"{redo_command(run.schedule, run.run_date)}",
            run_id=run.id,
        )
    if run.state in (SCHEDULED, PENDING, RUNNING):
        raise TransitionError(
            f"{where} is {run.state}: it will run (or is running); nothing to retry",
            run_id=run.id,
        )
    # failed ones come first, so the first row says whether one is failed
    first = next(iter(store.scheduled_runs.earlier_unfinished(run, page=1)), None)
    if (
        first is not None
        and first.state == FAILED
        and first.schedule == run.schedule
        and first.batch == run.batch
        and first.batch
    ):
        raise TransitionError(
            f"{where}: the earlier window {first.run_date} of its batch (run {first.id}) is "
            f"still FAILED, and would block it again: retry that run (onceflow runs retry "
            f"{first.id}); it queues the later failed windows of the batch with it",
            run_id=run.id,
        )


def _later_failed(store: Store, run: ScheduledRunRecord) -> list[ScheduledRunRecord]:
    """The later windows of `run`'s batch that failed (as blocked by it, or on their
    own, usually of the same cause), in date order."""
    later = store.scheduled_runs.find(
        state=FAILED, pipeline=run.pipeline, schedule=run.schedule, limit=100_000
    )
    return sorted(
        (r for r in later if run.batch and r.batch == run.batch and r.run_date > run.run_date),
        key=lambda r: r.run_date,
    )


def _job_dict(job: Any) -> dict[str, Any]:
    return {
        "id": job.id,
        "state": job.state,
        "priority": job.priority,
        "tenant": job.tenant,
        "run_after": job.run_after,
        "attempts": job.attempts,
        "worker": job.worker,
        "lease_expires_at": job.lease_expires_at,
        "error": job.error,
    }
