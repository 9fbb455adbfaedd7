"""How a worker reports and records failures: a run with a failed table still loads the
healthy ones, names every failed table, and a worker lost again and again spends the
run's retry budget instead of being requeued for ever."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from onceflow.config import Config
from onceflow.schedule import Scheduler, Worker
from onceflow.schedule.scheduler import requeue_expired
from onceflow.schedule.worker import WorkerReport
from onceflow.state import Job, Store

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


def lose_the_worker(store: Store) -> None:
    """A worker claims the run's job, starts the run, and dies: its lease expires."""
    (job,) = store.queue.claim("doomed", lease_seconds=0.05)
    assert job.run_id is not None
    store.scheduled_runs.transition(job.run_id, "PENDING", "RUNNING", worker="doomed")
    time.sleep(0.1)
    assert requeue_expired(store) == 1


def test_a_run_whose_worker_dies_every_time_fails_once_its_retries_are_spent(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[nightly(catch_up={"max": 1}, retry={"max_retries": 1})])
    Scheduler([config], store).run_once(NOW)
    lose_the_worker(store)
    (run,) = store.scheduled_runs.find()
    assert run.state == "PENDING"  # one loss: requeued, as the budget allows one retry
    lose_the_worker(store)
    (run,) = store.scheduled_runs.find()
    assert run.state == "FAILED" and run.error_type == "WorkerLostError"
    assert "its worker was lost 2 time(s)" in (run.error or "")
    assert run.next_attempt_at is None
    assert store.queue.live_job_of_run(run.id) is None  # not requeued: nothing claims it
    assert store.queue.claim("next") == []
    steps = [(h.from_state, h.to_state) for h in store.scheduled_runs.history(run.id)]
    assert steps[-2:] == [("PENDING", "RUNNING"), ("RUNNING", "FAILED")]


def test_a_single_lost_worker_is_requeued_and_the_run_completes_once(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[nightly(catch_up={"max": 1}, retry={"max_retries": 1})])
    Scheduler([config], store).run_once(NOW)
    lose_the_worker(store)
    report = Worker([config], store).run(until_idle=True)
    assert (report.completed, report.failed) == (1, 0)
    (run,) = store.scheduled_runs.find()
    assert run.state == "COMPLETED" and run.error is None


def test_a_lost_worker_spends_the_budget_a_later_failure_counts_from(
    store: Store, project: Callable[..., Config]
) -> None:
    # one retry allowed: the lost worker took it, so the real failure that follows is final
    config = project(
        schedules=[nightly(catch_up={"max": 1}, retry={"max_retries": 1})],
        extra={"tables": [table("missing", "missing")]},
    )
    Scheduler([config], store).run_once(NOW)
    lose_the_worker(store)
    report = Worker([config], store).run(until_idle=True)
    assert (report.failed, report.retried) == (1, 0)


def test_a_heartbeat_racing_a_jobs_end_does_not_mark_its_next_claim_lost(
    store: Store, project: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = project(schedules=[nightly(catch_up={"max": 1})])
    Scheduler([config], store).run_once(NOW)
    worker = Worker([config], store, lease_seconds=0.03)
    (first,) = store.queue.claim(worker.worker_id, lease_seconds=30)
    worker._active[first.id] = first
    beating = threading.Event()
    monkeypatch.setattr(worker, "execute", lambda job: "deferred")

    def heartbeat(jobs: list[Job], lease_seconds: float) -> set[int]:
        # the race: while the heartbeat is on its way, the job is given back to the queue
        # and its thread ends (its cleanup runs before the heartbeat's answer is seen)
        store.queue.release(first.id, first.token or "", run_after=time.time())
        worker._run_job(first)
        beating.set()
        return {first.id}  # the server no longer knows that token

    monkeypatch.setattr(store.queue, "heartbeat", heartbeat)
    worker._heartbeat(beating)
    # the same worker claims the job again, with a new token: that lease is not lost
    (again,) = store.queue.claim(worker.worker_id, lease_seconds=30)
    assert again.id == first.id and again.token != first.token
    worker._active[again.id] = again
    worker.check(again)  # LeaseLostError before: the stale loss was keyed by job id


def test_a_run_failed_for_good_after_a_retry_has_no_next_attempt(
    store: Store, project: Callable[..., Config]
) -> None:
    fast = {"max_retries": 1, "backoff_base_minutes": 0.001, "max_delay_minutes": 1}
    config = project(
        schedules=[nightly(catch_up={"max": 1}, retry=fast)],
        extra={"tables": [table("missing", "missing")]},
    )
    Scheduler([config], store).run_once(NOW)
    report = Worker([config], store).run(until_idle=True)
    assert (report.retried, report.failed) == (1, 1)
    (run,) = store.scheduled_runs.find()
    # `runs show` printed the spent retry's time as a `next attempt`
    assert run.state == "FAILED" and run.next_attempt_at is None


def held_on_another_machine(store: Store, name: str, seconds: float) -> None:
    """The lock `name` as a worker SIGKILLed mid-load on another machine leaves it: its
    pid cannot be judged from here, so it is held until its lease ends `seconds` from now."""
    from datetime import timedelta

    from onceflow.clock import now

    moment = now()
    with store.db.transaction() as tx:
        tx.execute(
            "INSERT INTO locks (name, token, pid, host, boot_id, process_start, acquired_at, "
            "heartbeat_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                name,
                "dead-token",
                26599,
                "mach0-elsewhere",
                None,
                None,
                moment.isoformat(),
                moment.isoformat(),
                (moment + timedelta(seconds=seconds)).isoformat(),
            ),
        )


def test_a_load_lock_held_by_a_killed_worker_on_another_machine_defers_the_run_without_a_retry(
    store: Store, project: Callable[..., Config]
) -> None:
    from onceflow.load.api import config_targets
    from onceflow.schedule import backfill

    retry = {"max_retries": 3, "retry_on": ["TimeoutError"]}
    config = project(schedules=[nightly(retry=retry)])
    (target,) = config_targets(config)
    held_on_another_machine(store, target.lock_name, 3.0)
    backfill(config, "2025-01-02", "2025-01-03", store=store)
    # it waits a moment for the lock, then gives the run back until the dead lease ends
    worker = Worker([config], store, poll_seconds=0.05, lock_timeout=0.2)
    report = worker.run(until_idle=True)
    assert (report.completed, report.failed, report.retried) == (2, 0, 0)
    assert report.deferred >= 1
    runs = store.scheduled_runs.find()
    assert {r.state for r in runs} == {"COMPLETED"}
    assert all(r.attempt == 1 for r in runs)  # waiting for the lock was no attempt
    first = min(runs, key=lambda r: r.run_date)
    reasons = [h.reason or "" for h in store.scheduled_runs.history(first.id)]
    assert any("waiting for a lock" in r and "mach0-elsewhere" in r for r in reasons)


def store_away_for(monkeypatch: pytest.MonkeyPatch, store: Store, reads: int | None) -> None:
    """The store refuses a run's history `reads` times (None: for good), as during an
    outage: the first read of a failure's write."""
    from onceflow.errors import StateError

    real = store.scheduled_runs.history
    left = [reads]

    def history(run_id: str, **kw: Any) -> Any:
        if left[0] is None or left[0] > 0:
            if left[0] is not None:
                left[0] -= 1
            raise StateError("state: PostgreSQL store failed: server closed the connection")
        return real(run_id, **kw)

    monkeypatch.setattr(store.scheduled_runs, "history", history)


def _failing_run_with_store_away(
    store: Store, project: Callable[..., Config], monkeypatch: pytest.MonkeyPatch, calls: int | None
) -> WorkerReport:
    """One worker pass over a run that fails (a missing table) while the store is away for
    `calls` history reads (None: for good), with no real sleeps."""
    from onceflow.schedule import worker as worker_module

    monkeypatch.setattr(worker_module.time, "sleep", lambda _: None)
    config = with_missing_tables(project, "missing")
    Scheduler([config], store).run_once(NOW)
    store_away_for(monkeypatch, store, calls)
    return Worker([config], store).run(max_jobs=1)


def test_a_failure_recorded_while_the_store_comes_back_is_retried_not_a_crashed_thread(
    store: Store,
    project: Callable[..., Config],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    report = _failing_run_with_store_away(store, project, monkeypatch, 2)
    assert (report.failed, report.lost) == (1, 0)
    (run,) = store.scheduled_runs.find()
    assert run.state == "FAILED" and run.error_type == "ExtractError"
    assert "crashed the worker thread" not in caplog.text


def test_a_failure_the_store_never_takes_is_counted_lost_not_a_crashed_thread(
    store: Store,
    project: Callable[..., Config],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    report = _failing_run_with_store_away(store, project, monkeypatch, None)
    # nothing recorded: its lease expires and the run is requeued, as for a killed worker
    assert (report.failed, report.lost) == (0, 1)
    assert "crashed the worker thread" not in caplog.text
    assert "outcome not recorded, the state store is away" in caplog.text
    (run,) = store.scheduled_runs.find()
    assert run.state == "RUNNING"


def test_a_scheduler_pass_failed_by_a_store_outage_logs_one_line_without_a_traceback(
    store: Store,
    project: Callable[..., Config],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from onceflow.errors import StateError

    config = project(schedules=[nightly()])
    scheduler = Scheduler([config], store)

    def away(*_: object) -> None:
        raise StateError("state: cannot connect to PostgreSQL store: connection refused")

    monkeypatch.setattr(scheduler, "run_once", away)
    caplog.set_level("INFO")
    scheduler.run_forever(threading.Event(), interval=0.01, max_passes=3)
    failed = [r for r in caplog.records if "scheduler pass failed" in r.getMessage()]
    assert len(failed) == 3
    assert not any(r.exc_info for r in failed)
    assert "connection refused" in failed[0].getMessage()


def reply_lost_once(monkeypatch: pytest.MonkeyPatch, store: Store, verb: str) -> list[int]:
    """The first transaction that ends a job with `verb` (complete, fail, release)
    commits, then its reply is lost: the connection error a worker sees when the server
    took the COMMIT and the network dropped its answer. Returns the count of drops."""
    from contextlib import contextmanager

    from onceflow.errors import StateError

    real_tx, real_verb = store.transaction, getattr(store.queue, verb)
    armed, dropped = [False], [0]

    def ending(*args: Any, **kw: Any) -> Any:
        out = real_verb(*args, **kw)  # a retry that matches no row raises before arming
        armed[0] = not dropped[0]
        return out

    @contextmanager
    def transaction() -> Any:
        with real_tx() as tx:
            yield tx
        if armed[0]:  # committed: only the reply is lost
            armed[0], dropped[0] = False, dropped[0] + 1
            raise StateError(
                "state: PostgreSQL store failed: consuming input failed: server closed "
                "the connection unexpectedly"
            )

    monkeypatch.setattr(store.queue, verb, ending)
    monkeypatch.setattr(store, "transaction", transaction)
    return dropped


def test_a_completion_whose_commit_reply_was_lost_is_counted_completed_not_lost(
    store: Store,
    project: Callable[..., Config],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from onceflow.schedule import worker as worker_module

    monkeypatch.setattr(worker_module.time, "sleep", lambda _: None)
    config = project(schedules=[nightly(catch_up={"max": 1})])
    Scheduler([config], store).run_once(NOW)
    dropped = reply_lost_once(monkeypatch, store, "complete")
    caplog.set_level("INFO")
    report = Worker([config], store).run(max_jobs=1)
    assert dropped == [1]
    assert (report.completed, report.lost) == (1, 0)
    assert "only its reply was lost" in caplog.text and "refused" not in caplog.text
    (run,) = store.scheduled_runs.find()
    assert run.state == "COMPLETED"
    assert [h.to_state for h in store.scheduled_runs.history(run.id)].count("COMPLETED") == 1


def test_a_failure_for_good_whose_commit_reply_was_lost_is_reported_failed(
    store: Store, project: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    from onceflow.schedule import worker as worker_module

    monkeypatch.setattr(worker_module.time, "sleep", lambda _: None)
    config = with_missing_tables(project, "missing")
    Scheduler([config], store).run_once(NOW)
    dropped = reply_lost_once(monkeypatch, store, "fail")
    report = Worker([config], store).run(max_jobs=1)
    assert dropped == [1]
    # failed for good: counted and named, so `worker` prints `failed:` and exits 1
    assert (report.failed, report.lost, report.retried) == (1, 0, 0)
    assert len(report.failures) == 1 and "src.missing" in report.failures[0]
    (run,) = store.scheduled_runs.find()
    assert run.state == "FAILED"


def test_a_retried_failure_whose_commit_reply_was_lost_queues_one_retry_counted_once(
    store: Store, project: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    from onceflow.schedule import worker as worker_module

    monkeypatch.setattr(worker_module.time, "sleep", lambda _: None)
    tables = [table("events", "events"), table("missing", "missing")]
    config = project(
        schedules=[nightly(catch_up={"max": 1}, retry={"max_retries": 2})],
        extra={"tables": tables},
    )
    Scheduler([config], store).run_once(NOW)
    dropped = reply_lost_once(monkeypatch, store, "fail")
    report = Worker([config], store).run(max_jobs=1)
    assert dropped == [1]
    assert (report.failed, report.lost, report.retried) == (0, 0, 1)
    (run,) = store.scheduled_runs.find()
    assert run.state == "PENDING"
    reasons = [h.reason for h in store.scheduled_runs.history(run.id) if h.to_state == "PENDING"]
    assert reasons[-1] == "retry 1 of 2"  # the committed try's count, not one more


def test_a_deferral_whose_commit_reply_was_lost_is_counted_deferred_not_lost(
    store: Store, project: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    from onceflow.errors import LockError
    from onceflow.schedule import worker as worker_module

    monkeypatch.setattr(worker_module.time, "sleep", lambda _: None)

    def locked(*_: object, **__: object) -> Any:
        raise LockError("held by another run (by the test)")

    monkeypatch.setattr(worker_module, "run_window", locked)
    config = project(schedules=[nightly(catch_up={"max": 1})])
    Scheduler([config], store).run_once(NOW)
    dropped = reply_lost_once(monkeypatch, store, "release")
    report = Worker([config], store).run(max_jobs=1)
    assert dropped == [1]
    assert (report.deferred, report.lost) == (1, 0)
    (run,) = store.scheduled_runs.find()
    assert run.state == "PENDING"


def test_a_worker_until_idle_rides_out_a_connection_dropped_by_its_idle_check(
    store: Store,
    project: Callable[..., Config],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from onceflow.errors import StateError

    config = project(schedules=[nightly(catch_up={"max": 1})])
    Scheduler([config], store).run_once(NOW)
    real, calls = store.queue.length, [0]

    def length(**kw: Any) -> int:
        calls[0] += 1
        if calls[0] == 1:
            raise StateError(
                "state: PostgreSQL store failed: consuming input failed: server closed the "
                "connection unexpectedly"
            )
        return real(**kw)

    monkeypatch.setattr(store.queue, "length", length)
    report = Worker([config], store, poll_seconds=0.05).run(until_idle=True)
    assert (report.completed, report.lost) == (1, 0)
    assert "cannot tell whether it is idle" in caplog.text
