"""Purging finished runs and jobs (`onceflow runs purge`) on both stores: a dry run by
default; with yes, old finished runs go with their history and jobs, in batches; what
the scheduler and workers still read stays (unfinished runs, live jobs, each schedule's
latest run, a failed window whose batch still has a later window); a purged job's
idempotency key is free again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from onceflow import PipelineStateManager, QueueManager
from onceflow.clock import now
from onceflow.config import Config
from onceflow.errors import ConfigError
from onceflow.schedule import Scheduler, Worker, backfill, purge_runs
from onceflow.schedule.purge import BLOCKER, LATEST
from onceflow.state import Store

NO_RETRY = {"name": "nightly", "cron": "0 2 * * *", "retry": {"max_retries": 0}}


def _age(store: Store, days: float, run_ids: list[str]) -> None:
    """Make the runs (and their finished jobs) have ended `days` ago."""
    at = now() - timedelta(days=days)
    with store.transaction() as tx:
        for run_id in run_ids:
            tx.execute(
                "UPDATE scheduled_runs SET ended_at = ? WHERE id = ?", (at.isoformat(), run_id)
            )
            tx.execute(
                "UPDATE jobs SET finished_at = ? WHERE run_id = ? AND finished_at IS NOT NULL",
                (at.timestamp(), run_id),
            )


def _by_date(store: Store) -> dict[str, str]:
    return {r.run_date: r.id for r in store.scheduled_runs.find()}


def _count(store: Store, table: str) -> int:
    with store.transaction() as tx:
        row = tx.execute(f"SELECT COUNT(*) AS n FROM {table}").fetchone()
    return int(row["n"])


def test_a_purge_is_a_dry_run_unless_yes_then_deletes_old_finished_runs_history_and_jobs(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[NO_RETRY])
    backfill(config, "2025-01-02", "2025-01-05", store=store)
    assert Worker([config], store, poll_seconds=0.05).run(until_idle=True).completed == 4
    done = _by_date(store)
    _age(store, 40, list(done.values()))
    backfill(config, "2025-01-06", "2025-01-06", store=store)  # PENDING, the latest
    history, jobs = _count(store, "scheduled_run_history"), _count(store, "jobs")

    dry = purge_runs([config], 30, store=store)
    assert (dry.deleted, dry.runs, dry.jobs, dry.other_jobs) == (False, {"COMPLETED": 4}, 4, 0)
    assert dry.history == 16  # SCHEDULED, PENDING, RUNNING, COMPLETED each
    assert (_count(store, "scheduled_run_history"), _count(store, "jobs")) == (history, jobs)
    assert len(store.scheduled_runs.find()) == 5

    report = purge_runs([config], 30, yes=True, store=store)
    assert (report.deleted, report.runs, report.history, report.jobs) == (
        True,
        {"COMPLETED": 4},
        16,
        4,
    )
    (left,) = store.scheduled_runs.find()
    assert (left.run_date, left.state) == ("2025-01-06", "PENDING")
    assert store.queue.live_job_of_run(left.id) is not None
    assert _count(store, "scheduled_run_history") == history - 16
    assert all(store.scheduled_runs.history(i) == [] for i in done.values())
    assert purge_runs([config], 30, yes=True, store=store).total_runs == 0  # nothing left


def test_runs_younger_than_the_cutoff_and_unfinished_runs_stay(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[NO_RETRY])
    backfill(config, "2025-01-02", "2025-01-05", store=store)
    Worker([config], store, poll_seconds=0.05).run(max_jobs=2)
    ids = _by_date(store)
    _age(store, 10, [ids["2025-01-02"]])
    _age(store, 40, [ids["2025-01-03"]])
    store.queue.claim("w", limit=1)  # 01-04's job is claimed, 01-05's queued
    report = purge_runs([config], 30, yes=True, store=store)
    assert (report.runs, report.kept) == ({"COMPLETED": 1}, {})
    assert sorted(_by_date(store)) == ["2025-01-02", "2025-01-04", "2025-01-05"]


def test_the_latest_run_of_each_schedule_stays(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(
        schedules=[{**NO_RETRY, "catch_up": "all", "start": "2025-01-05T00:00:00+00:00"}]
    )
    Scheduler([config], store).run_once(datetime(2025, 1, 9, 3, 0, tzinfo=UTC))
    assert Worker([config], store, poll_seconds=0.05).run(until_idle=True).completed == 5
    _age(store, 40, list(_by_date(store).values()))
    report = purge_runs([config], 30, yes=True, batch_size=2, store=store)
    assert (report.runs, report.kept) == ({"COMPLETED": 4}, {LATEST: 1})
    assert list(_by_date(store)) == ["2025-01-08"]
    # the cursor is a row of its own: no purged tick is recorded again
    assert Scheduler([config], store).run_once(datetime(2025, 1, 9, 3, 0, tzinfo=UTC)).recorded == 0


def _failed_batch(config: Config, store: Store, broken: set[str]) -> dict[str, str]:
    """A backfill of 2025-01-02..04 whose first window fails (no retry), failing the two
    after it as blocked; its run ids by date."""
    backfill(config, "2025-01-02", "2025-01-04", store=store)
    broken.add("2025-01-02")
    assert Worker([config], store, poll_seconds=0.05).run(until_idle=True).failed == 3
    return _by_date(store)


def test_a_failed_window_stays_while_its_batch_has_a_later_window_and_goes_after(
    store: Store, project: Callable[..., Config], broken: set[str]
) -> None:
    config = project(schedules=[NO_RETRY])
    ids = _failed_batch(config, store, broken)
    PipelineStateManager(store).transition_state(ids["2025-01-04"], "FAILED", "PENDING")
    _age(store, 40, list(ids.values()))

    report = purge_runs([config], 30, yes=True, store=store)
    assert (report.total_runs, report.kept) == (0, {BLOCKER: 2})
    # the blocking rule still sees the failed window: the later one fails as blocked
    broken.clear()
    Worker([config], store, poll_seconds=0.05).run(until_idle=True)
    later = store.scheduled_runs.get(ids["2025-01-04"])
    assert later is not None and later.error_type == "BlockedRunError"

    # the batch has finished and a newer run is its key's latest: the batch goes
    backfill(config, "2025-01-08", "2025-01-08", store=store)
    Worker([config], store, poll_seconds=0.05).run(until_idle=True)
    _age(store, 40, list(_by_date(store).values()))
    report = purge_runs([config], 30, yes=True, store=store)
    assert (report.runs, report.kept) == ({"FAILED": 3}, {LATEST: 1})
    assert list(_by_date(store)) == ["2025-01-08"]


def test_an_old_finished_batch_goes_but_its_latest_window_even_when_every_window_failed(
    store: Store, project: Callable[..., Config], broken: set[str]
) -> None:
    config = project(schedules=[NO_RETRY])
    ids = _failed_batch(config, store, broken)
    _age(store, 40, list(ids.values()))
    # the last window stays as its key's latest run (`schedule list`); it keeps no
    # blocker as old as itself, so the failed windows before it go
    report = purge_runs([config], 30, yes=True, store=store)
    assert (report.runs, report.kept) == ({"FAILED": 2}, {LATEST: 1})
    assert list(_by_date(store)) == ["2025-01-04"]


def test_a_purged_jobs_idempotency_key_is_free_and_a_live_keyed_job_stays(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[NO_RETRY])
    queue = QueueManager(store)
    first = queue.enqueue("acme", {"pipeline": "sched"}, idempotency_key="2025-01-09")
    waiting = queue.enqueue("acme", {"pipeline": "sched"}, idempotency_key="2025-01-10")
    job = queue.dequeue("w")
    assert job is not None and job.id == first
    queue.mark_completed(job)
    with store.transaction() as tx:
        tx.execute(
            "UPDATE jobs SET finished_at = ? WHERE id = ?", (now().timestamp() - 40 * 86400, first)
        )
    assert queue.enqueue("acme", {"pipeline": "sched"}, idempotency_key="2025-01-09") == first

    assert purge_runs([config], 30, store=store).other_jobs == 1  # dry run
    assert purge_runs([config], 30, yes=True, store=store).other_jobs == 1
    assert store.queue.get(first) is None and store.queue.get(waiting) is not None
    again = queue.enqueue("acme", {"pipeline": "sched"}, idempotency_key="2025-01-09")
    assert again != first  # the key names a new job now


def test_a_run_requeued_after_it_was_selected_is_not_deleted(
    store: Store, project: Callable[..., Config], broken: set[str]
) -> None:
    config = project(schedules=[NO_RETRY])
    backfill(config, "2025-01-02", "2025-01-02", store=store)
    broken.add("2025-01-02")
    Worker([config], store, poll_seconds=0.05).run(until_idle=True)
    (run_id,) = _by_date(store).values()
    _age(store, 40, [run_id])
    before = (now() - timedelta(days=30)).isoformat()
    (selected,) = store.scheduled_runs.finished_before(before, pipelines=["sched"])
    PipelineStateManager(store).transition_state(run_id, "FAILED", "PENDING")
    assert store.scheduled_runs.delete_finished([selected.id], before=before) == ([], 0)
    assert store.scheduled_runs.get(run_id).state == "PENDING"  # type: ignore[union-attr]


def test_a_purge_of_other_pipelines_leaves_these_alone_and_bad_ages_are_refused(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[NO_RETRY])
    backfill(config, "2025-01-02", "2025-01-03", store=store)
    Worker([config], store, poll_seconds=0.05).run(until_idle=True)
    _age(store, 40, list(_by_date(store).values()))
    other = config.model_copy(update={"pipeline": "other"})
    assert purge_runs([other], 30, yes=True, store=store).total_runs == 0
    assert len(store.scheduled_runs.find()) == 2
    for days in (0, -1):
        with pytest.raises(ConfigError, match="--older-than: expected a number of days above 0"):
            purge_runs([config], days, store=store)


def test_a_cutoff_given_in_another_zone_is_the_same_instant(
    store: Store, project: Callable[..., Config]
) -> None:
    """The store compares its UTC times as text: a cutoff written with New York's offset
    (12:00-05:00, 17:00 UTC) kept a run that ended at 15:00 UTC, before it."""
    from zoneinfo import ZoneInfo

    config = project(schedules=[NO_RETRY])
    backfill(config, "2025-01-02", "2025-01-03", store=store)
    assert Worker([config], store, poll_seconds=0.05).run(until_idle=True).completed == 2
    ids = _by_date(store)
    with store.transaction() as tx:
        tx.execute(
            "UPDATE scheduled_runs SET ended_at = ? WHERE id = ?",
            ("2025-01-30T15:00:00+00:00", ids["2025-01-02"]),
        )
    at = datetime(2025, 3, 1, 12, 0, tzinfo=ZoneInfo("America/New_York"))
    report = purge_runs([config], 30, yes=True, at=at, store=store)
    assert report.runs == {"COMPLETED": 1}
    assert sorted(_by_date(store)) == ["2025-01-03"]
    assert report.before == "2025-01-30T17:00:00+00:00"
