"""Retention: delete the scheduled runs and jobs that finished long ago.

What `onceflow runs purge` calls. The run and job tables otherwise grow by a row or more
per tick forever (Procrastinate's job retention, Airflow's `db clean`). A purge deletes,
for the given pipelines:

* scheduled runs COMPLETED, CANCELLED or FAILED (a FAILED run has no retry pending: a
  pending retry is a PENDING run with a job) that ended more than N days ago, with their
  transition history and their finished jobs;
* finished jobs that ended more than N days ago and that no kept run has (the seed's
  `QueueManager.enqueue` jobs, which have no run). Deleting a job frees its idempotency
  key: an enqueue with that key afterwards makes a new job.

It never deletes a SCHEDULED, PENDING or RUNNING run, nor a queued or claimed job, and
it keeps two kinds of finished run the scheduler or the worker still read:

* the latest run (by tick) of every schedule key: `schedule list` shows it as the last
  run. (The scheduler's cursor is a row of its own, which a purge never touches, so a
  purge never makes a tick be recorded again.)
* a FAILED run with a later window of its batch that may still run (one not finished, or
  one failed or cancelled since the cutoff): the blocking rule (a failed earlier window
  fails the later ones of its batch) and `runs retry`'s refusal read it. A completed
  later window cannot be blocked again, and a schedule's latest run, kept for `schedule
  list`, keeps no blockers once it is as old as they are (else a finished backfill's
  failed windows would stay for ever).

It works in batches of `batch_size` runs, each one transaction that deletes a run only
if it is still finished and old (a run requeued meanwhile stays), so a purge of millions
of rows never holds a long lock, and an interrupted purge leaves whole runs behind.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from onceflow.clock import now
from onceflow.config import Config
from onceflow.errors import ConfigError
from onceflow.schedule.scheduler import shared_store
from onceflow.state import ScheduledRunRecord, Store, Tx
from onceflow.state.scheduled_runs import FAILED

log = logging.getLogger(__name__)

BATCH_SIZE = 500
#: Why a finished, old run was kept (PurgeReport.kept's keys).
LATEST = "latest run of its schedule"
BLOCKER = "failed window of a batch with a later window kept"


@dataclass
class PurgeReport:
    """What a purge deleted, or would delete (`deleted` False: a dry run)."""

    older_than_days: float
    before: str
    deleted: bool
    runs: dict[str, int] = field(default_factory=dict)
    history: int = 0
    jobs: int = 0
    #: finished jobs no run has (enqueued without one, or their run is gone)
    other_jobs: int = 0
    kept: dict[str, int] = field(default_factory=dict)

    @property
    def total_runs(self) -> int:
        """How many runs went (or would go)."""
        return sum(self.runs.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**vars(self), "total_runs": self.total_runs}


def purge_runs(
    configs: Sequence[Config],
    older_than_days: float,
    *,
    yes: bool = False,
    at: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    store: Store | None = None,
) -> PurgeReport:
    """Delete the pipelines' finished runs (with their history and jobs) and finished
    jobs that ended more than `older_than_days` before `at` (default now), keeping what
    the scheduler and workers still read (see the module's docstring). Without `yes`, a
    dry run: nothing is deleted and the report counts what would be."""
    if not older_than_days > 0:
        raise ConfigError(
            f"--older-than: expected a number of days above 0 (0.5 is 12 hours), got "
            f"{older_than_days:g}",
            field="older_than",
        )
    if batch_size < 1:
        raise ConfigError(f"batch_size: expected at least 1, got {batch_size}")
    # in UTC, as the store writes its times: they are compared as text, and an `at` in
    # New York (-05:00) kept runs that ended up to five hours before the cutoff. (UTC
    # first: days of 24 hours, not of a local clock that a DST change moves)
    cutoff = (at or now()).astimezone(UTC) - timedelta(days=older_than_days)
    before = cutoff.isoformat()
    pipelines = [c.pipeline for c in configs]
    own = store is None
    store = store or shared_store(list(configs))
    report = PurgeReport(older_than_days, before, yes)
    runs: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    try:
        after = ""
        latest: dict[tuple[str, str], str | None] = {}
        while True:
            with store.transaction() as tx:
                page = store.scheduled_runs.finished_before(
                    before, pipelines=pipelines, after=after, limit=batch_size, tx=tx
                )
                if not page:
                    break
                after = page[-1].id
                going = _going(store, page, before, latest, kept, tx)
                ids = [r.id for r in going]
                if yes:
                    report.jobs += store.queue.finished_of_runs(ids, delete=True, tx=tx)
                    gone, history = store.scheduled_runs.delete_finished(ids, before=before, tx=tx)
                    report.history += history
                    deleted = set(gone)  # a run requeued meanwhile stayed
                    runs.update(r.state for r in going if r.id in deleted)
                else:
                    report.jobs += store.queue.finished_of_runs(ids, tx=tx)
                    report.history += store.scheduled_runs.history_count(ids, tx=tx)
                    runs.update(r.state for r in going)
        report.other_jobs = _other_jobs(store, cutoff.timestamp(), pipelines, yes, batch_size)
    finally:
        if own:
            store.close()
    report.runs = dict(sorted(runs.items()))
    report.kept = dict(kept)
    log.info(
        "purge (%s) of runs ended before %s: %d run(s), %d transition(s), %d job(s) of "
        "theirs, %d other job(s); kept %s",
        "deleted" if yes else "dry run",
        before,
        report.total_runs,
        report.history,
        report.jobs,
        report.other_jobs,
        report.kept or "none",
    )
    return report


def _going(
    store: Store,
    page: list[ScheduledRunRecord],
    before: str,
    latest: dict[tuple[str, str], str | None],
    kept: Counter[str],
    tx: Tx,
) -> list[ScheduledRunRecord]:
    """The runs of a page that go: not their schedule's latest, and not a failed window
    whose batch keeps a later one. Counts the others in `kept` by reason."""
    going = []
    for run in page:
        key = (run.pipeline, run.schedule)
        if key not in latest:
            latest[key] = store.scheduled_runs.latest_of(*key, tx=tx)
        if run.id == latest[key]:
            kept[LATEST] += 1
        elif run.state == FAILED and store.scheduled_runs.later_window_kept(run, before, tx=tx):
            kept[BLOCKER] += 1
        else:
            going.append(run)
    return going


def _other_jobs(
    store: Store, before: float, pipelines: Sequence[str], delete: bool, batch_size: int
) -> int:
    """Finished jobs no run has, ended before `before`: counted, or deleted in batches."""
    total = 0
    after = 0
    while True:
        with store.transaction() as tx:
            ids = store.queue.unowned_finished(
                before, pipelines=pipelines, after=after, limit=batch_size, tx=tx
            )
            if not ids:
                return total
            after = ids[-1]
            total += store.queue.delete_finished(ids, tx=tx) if delete else len(ids)
