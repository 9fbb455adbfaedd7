"""Workers on both stores: a run end to end, retries with backoff that survive restarts,
non-retryable errors, fenced late completions, window order per table, backfills."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from onceflow.config import Config
from onceflow.schedule import Scheduler, Worker, backfill, tenant_status
from onceflow.schedule.scheduler import cancel_run
from onceflow.schedule.worker import MAX_DEFER_SECONDS, MAX_WAIT_SECONDS
from onceflow.state import Store
from onceflow.state.queue import Job
from onceflow.state.scheduled_runs import ScheduledRunRecord

NOW = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
RETRY_FAST = {"max_retries": 1, "backoff_base_minutes": 0.02, "max_delay_minutes": 1}


def nightly(**kw: object) -> dict[str, object]:
    return {"name": "nightly", "cron": "0 2 * * *", "start": "2025-01-05T00:00:00+00:00", **kw}


def loaded_dates(config: Config) -> list[str]:
    """The run dates of the files committed to the events table, in commit order."""
    from deltalake import DeltaTable

    table = DeltaTable(str(Path(config.resolve(config.warehouse)) / "src" / "events"))
    dates = []
    for entry in sorted(table.history(), key=lambda e: int(e["version"])):
        path = str(entry.get("onceflow.file") or "")
        if path:
            parts = Path(path).parts
            dates.append(f"{parts[-3][:4]}-{parts[-3][4:]}-{parts[-2]}")
    return dates


def test_a_scheduled_run_completes_end_to_end(store: Store, project: Callable[..., Config]) -> None:
    config = project(schedules=[nightly(catch_up="all", tenant="acme")])
    Scheduler([config], store).run_once(NOW)
    report = Worker([config], store, concurrency=2).run(until_idle=True)
    assert (report.completed, report.failed, report.lost) == (2, 0, 0)
    runs = store.scheduled_runs.find()
    assert [(r.run_date, r.state) for r in runs] == [
        ("2025-01-04", "COMPLETED"),
        ("2025-01-05", "COMPLETED"),  # maybe after waiting for the 4th to load
    ]
    steps = [(h.from_state, h.to_state) for h in store.scheduled_runs.history(runs[0].id)]
    assert steps == [
        (None, "SCHEDULED"),
        ("SCHEDULED", "PENDING"),
        ("PENDING", "RUNNING"),
        ("RUNNING", "COMPLETED"),
    ]
    assert sorted(loaded_dates(config)) == ["2025-01-04", "2025-01-05"]
    assert all(r.duration_seconds is not None and r.duration_seconds >= 0 for r in runs)
    status = tenant_status([config], "acme", store=store)
    assert status["counts"]["COMPLETED"] == 2
    assert status["last_success"]["run_date"] == "2025-01-05"
    assert status["last_failure"] is None and status["next_run"]["schedule"] == "nightly"


def test_a_failed_run_is_retried_after_its_backoff_even_after_a_restart(
    store: Store, project: Callable[..., Config]
) -> None:
    # the table does not exist: every attempt fails with ExtractError
    config = project(schedules=[nightly(catch_up="latest", retry=RETRY_FAST)], table="missing")
    Scheduler([config], store).run_once(NOW)
    first = Worker([config], store)
    failed_at = time.time()
    assert first.run(max_jobs=1).retried == 1
    (run,) = store.scheduled_runs.find()
    assert run.state == "PENDING" and run.error_type == "ExtractError" and run.next_attempt_at
    job = store.queue.live_job_of_run(run.id)
    assert job is not None
    assert abs((job.run_after - failed_at) - 0.02 * 60) < 1.0  # the policy's delay, +/- 1 s
    assert store.queue.claim("too-early") == []
    # a new worker (every process restarted) picks the retry up once it is due
    time.sleep(max(0.0, job.run_after - time.time()) + 0.05)
    second = Worker([config], store).run(max_jobs=1)
    assert second.failed == 1  # max_retries 1: the second failure is final
    steps = [(h.from_state, h.to_state) for h in store.scheduled_runs.history(run.id)][2:]
    assert steps == [
        ("PENDING", "RUNNING"),
        ("RUNNING", "FAILED"),
        ("FAILED", "PENDING"),
        ("PENDING", "RUNNING"),
        ("RUNNING", "FAILED"),
    ]
    final = store.scheduled_runs.get(run.id)
    assert final is not None and final.state == "FAILED" and "missing" in (final.error or "")
    assert final.duration_seconds is not None  # a failed run's duration is kept too


def test_a_non_retryable_error_fails_at_once(store: Store, project: Callable[..., Config]) -> None:
    retry = {**RETRY_FAST, "max_retries": 5, "retry_on": ["TransientError"]}
    config = project(schedules=[nightly(catch_up="latest", retry=retry)], table="missing")
    Scheduler([config], store).run_once(NOW)
    assert Worker([config], store).run(max_jobs=1).failed == 1
    (run,) = store.scheduled_runs.find()
    assert run.state == "FAILED" and store.queue.length() == 0


def test_a_worker_whose_lease_expired_cannot_record_anything(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[nightly(catch_up="latest")])
    Scheduler([config], store).run_once(NOW)
    (stale,) = store.queue.claim("paused-worker", lease_seconds=0.2)
    time.sleep(0.3)
    assert Scheduler([config], store).run_once(NOW).requeued == 1
    assert Worker([config], store, worker_id="alive").run(max_jobs=1).completed == 1
    # the paused worker comes back and runs its old claim: nothing it does counts
    assert Worker([config], store, worker_id="paused-worker").execute(stale) == "lost"
    (run,) = store.scheduled_runs.find()
    assert run.state == "COMPLETED" and run.worker == "alive"
    assert [h.worker for h in store.scheduled_runs.history(run.id) if h.to_state == "RUNNING"] == [
        "alive"
    ]
    assert loaded_dates(config) == ["2025-01-05"]  # loaded once


def test_runs_list_and_tenant_status_say_a_running_run_whose_worker_lease_ran_out(
    store: Store, project: Callable[..., Config]
) -> None:
    """A SIGKILLed worker's run read RUNNING in `runs list` until some pass requeued it,
    as if work went on."""
    from onceflow.schedule import list_runs

    config = project(schedules=[nightly(catch_up="latest")])
    Scheduler([config], store).run_once(NOW)
    (job,) = store.queue.claim("killed-worker", lease_seconds=0.2)
    (run,) = store.scheduled_runs.find()
    store.scheduled_runs.transition(run.id, run.state, "RUNNING", worker="killed-worker")
    store.scheduled_runs.set_job(run.id, job.id)
    (fresh,) = list_runs([config], store=store)
    assert fresh.state == "RUNNING" and fresh.lease_expired_at is None  # still leased
    time.sleep(0.3)
    (dead,) = list_runs([config], store=store)
    assert dead.state == "RUNNING" and dead.lease_expired_at is not None
    assert dead.as_dict()["lease_expired_at"] == dead.lease_expired_at
    (stalled,) = tenant_status([config], "default", store=store)["lease_expired"]
    assert stalled["run_id"] == run.id and stalled["since"] == dead.lease_expired_at
    assert Scheduler([config], store).run_once(NOW).requeued == 1
    (requeued,) = list_runs([config], store=store)
    assert requeued.lease_expired_at is None
    assert tenant_status([config], "default", store=store)["lease_expired"] == []


def test_a_later_window_waits_for_an_earlier_one_and_says_so(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project()
    report = backfill(config, "2025-01-02", "2025-01-04", store=store)
    assert report.created == ["2025-01-02", "2025-01-03", "2025-01-04"]
    held = store.queue.claim("slow-worker", limit=1)  # Jan 2 is taken and not finished
    assert held[0].run_id == store.scheduled_runs.find()[0].id
    worker = Worker([config], store, worker_id="fast")
    assert worker.run(max_jobs=2).deferred == 2
    waiting = [r for r in store.scheduled_runs.find() if r.waiting_on]
    assert [r.run_date for r in waiting] == ["2025-01-03", "2025-01-04"]
    assert "waiting for the earlier window 2025-01-02" in (waiting[0].waiting_on or "")
    status = tenant_status([config], "default", store=store)
    assert [w["run_date"] for w in status["waiting"]] == ["2025-01-03", "2025-01-04"]
    # the slow worker gives its job back; everything then runs, loading in date order
    store.queue.release(held[0].id, held[0].token or "")
    Worker([config], store, concurrency=3).run(until_idle=True)
    assert {r.state for r in store.scheduled_runs.find()} == {"COMPLETED"}
    assert loaded_dates(config) == ["2025-01-02", "2025-01-03", "2025-01-04"]


def test_a_nightly_run_waits_for_a_backfills_earlier_day_still_to_load(
    store: Store, project: Callable[..., Config]
) -> None:
    # the 02:00 nightly run fires while a backfill is running: it must not load its own
    # day (and the backfill's extracted later days) past a backfill day still extracting
    nightly = {"name": "nightly", "cron": "0 2 * * *", "start": "2025-01-05T00:00:00+00:00"}
    config = project(schedules=[{**nightly, "catch_up": "latest"}])
    backfill(config, "2025-01-02", "2025-01-03", store=store)
    held = store.queue.claim("slow-worker", limit=1)  # Jan 2 is taken and not finished
    Scheduler([config], store).run_once(datetime(2025, 1, 5, 2, 0, 30, tzinfo=UTC))
    report = Worker([config], store, worker_id="fast").run(max_jobs=2)
    assert report.deferred == 2 and report.completed == 0  # Jan 3 and the nightly Jan 4
    waiting = {r.run_date: r.waiting_on or "" for r in store.scheduled_runs.find()}
    assert "waiting for the earlier window 2025-01-02" in waiting["2025-01-04"]
    store.queue.release(held[0].id, held[0].token or "")
    Worker([config], store, concurrency=3).run(until_idle=True)
    assert {r.state for r in store.scheduled_runs.find()} == {"COMPLETED"}
    assert loaded_dates(config) == ["2025-01-02", "2025-01-03", "2025-01-04"]


def _second_day_waiting(store: Store, config: Config) -> tuple[list[Job], ScheduledRunRecord]:
    """A two-day backfill whose first day a slow worker holds and whose second day a fast
    worker has deferred: (the held claim, the waiting run, its job id set)."""
    backfill(config, "2025-01-02", "2025-01-03", store=store)
    held = store.queue.claim("slow-worker", limit=1)
    assert Worker([config], store, worker_id="fast").run(max_jobs=1).deferred == 1
    (waiting,) = [r for r in store.scheduled_runs.find() if r.waiting_on]
    assert waiting.job_id is not None
    return held, waiting


def test_a_window_that_completes_wakes_the_next_one_waiting_for_it(
    store: Store, project: Callable[..., Config]
) -> None:
    # a waiting window polls with a backoff of up to MAX_WAIT_SECONDS; the window it waits
    # for makes it due as soon as it is done, so a backfill is not mostly waiting
    config = project()
    held, waiting = _second_day_waiting(store, config)
    store.queue.reschedule(waiting.job_id, time.time() + 3600)  # as if at the backoff's end
    store.queue.release(held[0].id, held[0].token or "")
    assert Worker([config], store).run(max_jobs=1).completed == 1  # Jan 2
    job = store.queue.get(waiting.job_id)
    assert job is not None and job.run_after <= time.time()
    Worker([config], store).run(until_idle=True)
    assert loaded_dates(config) == ["2025-01-02", "2025-01-03"]


def test_a_window_waiting_for_an_earlier_one_polls_ever_less_often_and_logs_once(
    store: Store, project: Callable[..., Config], caplog: pytest.LogCaptureFixture
) -> None:
    # its wait ends when the earlier window's outcome wakes it: polling it every 10 s made
    # a 734-day backfill 23,756 deferrals, an INFO line each
    config = project()
    backfill(config, "2025-01-02", "2025-01-03", store=store)
    held = store.queue.claim("slow-worker", limit=1)
    caplog.set_level(logging.DEBUG, logger="onceflow.schedule.worker")
    delays = []
    for _ in range(10):
        assert Worker([config], store, worker_id="fast").run(max_jobs=1).deferred == 1
        (waiting,) = [r for r in store.scheduled_runs.find() if r.waiting_on]
        assert waiting.job_id is not None
        job = store.queue.get(waiting.job_id)
        assert job is not None
        delays.append(job.run_after - time.time())
        store.queue.reschedule(waiting.job_id, 0.0)  # as if at the backoff's end
    assert delays[0] < 1 and max(delays) > MAX_DEFER_SECONDS
    assert max(delays) <= MAX_WAIT_SECONDS
    deferrals = [r for r in caplog.records if "waiting for the earlier window" in r.getMessage()]
    assert [r.levelname for r in deferrals] == ["INFO"] + ["DEBUG"] * 9
    (run,) = [r for r in store.scheduled_runs.find() if r.waiting_on]
    assert run.attempt == 0  # waiting is no attempt of the run
    store.queue.release(held[0].id, held[0].token or "")
    Worker([config], store).run(until_idle=True)
    assert loaded_dates(config) == ["2025-01-02", "2025-01-03"]


def test_a_cancelled_window_wakes_the_next_one_waiting_for_it(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project()
    held, waiting = _second_day_waiting(store, config)
    assert held[0].run_id is not None
    store.queue.reschedule(waiting.job_id, time.time() + 3600)  # as if in a long backoff
    cancel_run(store, held[0].run_id, "PENDING")
    job = store.queue.get(waiting.job_id)
    assert job is not None and job.run_after <= time.time()
    assert Worker([config], store).run(until_idle=True).completed == 1
    assert loaded_dates(config) == ["2025-01-03"]


def test_backfill_is_idempotent_and_reprocess_failed_requeues_only_failed_dates(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project()
    first = backfill(config, "2025-01-01", "2025-01-03", store=store)
    assert first.created == ["2025-01-01", "2025-01-02", "2025-01-03"]
    again = backfill(config, "2025-01-01", "2025-01-03", store=store)
    assert (again.created, again.requeued) == ([], [])
    assert store.queue.length() == 3
    jobs = store.queue.claim("w", limit=3)
    runs = {r.id: r for r in store.scheduled_runs.find()}
    for job in jobs:
        run = runs[job.run_id or ""]
        store.scheduled_runs.transition(run.id, "PENDING", "RUNNING")
        end = "FAILED" if run.run_date == "2025-01-02" else "COMPLETED"
        store.scheduled_runs.transition(run.id, "RUNNING", end)
        store.queue.complete(job.id, job.token or "")
    failed = backfill(config, "2025-01-01", "2025-01-03", reprocess="failed", store=store)
    assert (failed.created, failed.requeued) == ([], ["2025-01-02"])
    assert store.queue.length() == 1
    everything = backfill(config, "2025-01-01", "2025-01-03", reprocess="all", store=store)
    assert everything.requeued == ["2025-01-01", "2025-01-03"]  # 02 is already queued
    redo = next(r for r in store.scheduled_runs.find() if r.run_date == "2025-01-01")
    assert redo.state == "PENDING" and redo.force_reprocess


def test_a_worker_claims_only_its_own_pipelines_jobs(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project()
    backfill(config, "2025-01-01", "2025-01-01", store=store)
    other = config.model_copy(update={"pipeline": "other"})
    assert Worker([other], store).run(until_idle=True).claimed == 0
    assert store.queue.length() == 1


@pytest.mark.parametrize("reprocess", ["sometimes"])
def test_backfill_refuses_bad_input(
    store: Store, project: Callable[..., Config], reprocess: str
) -> None:
    from onceflow.errors import ConfigError

    config = project()
    with pytest.raises(ConfigError, match="--reprocess: expected none, failed or all"):
        backfill(config, "2025-01-01", "2025-01-02", reprocess=reprocess, store=store)
    with pytest.raises(ConfigError, match="--to 2025-01-01 is before --from 2025-01-02"):
        backfill(config, "2025-01-02", "2025-01-01", store=store)


def test_runs_of_different_dates_do_not_wait_for_each_other(
    store: Store, project: Callable[..., Config]
) -> None:
    from onceflow.pipeline import run_lock_name
    from onceflow.state import Lease

    config = project()
    backfill(config, "2025-01-05", "2025-01-05", store=store)
    # another worker is running Jan 6 (it holds that run's lock): Jan 5 goes ahead
    with Lease(store, run_lock_name(config, "sched_20250106"), ttl=30):
        assert Worker([config], store).run(max_jobs=1).completed == 1


def test_a_whole_pipeline_command_holding_the_pipeline_lock_defers_a_run(
    store: Store, project: Callable[..., Config]
) -> None:
    from onceflow.state import Lease

    config = project()
    backfill(config, "2025-01-05", "2025-01-05", store=store)
    with Lease(store, config.pipeline_lock_name, ttl=30):
        assert Worker([config], store).run(max_jobs=1).deferred == 1
    (run,) = store.scheduled_runs.find()
    assert run.state == "PENDING" and "whole-pipeline command" in (run.waiting_on or "")


def test_backfill_of_a_config_with_several_schedules_must_name_one(
    store: Store, project: Callable[..., Config]
) -> None:
    from onceflow.errors import ConfigError

    hourly = {"name": "hourly", "cron": "0 * * * *", "tenant": "zeta"}
    config = project(schedules=[nightly(tenant="acme"), hourly])
    with pytest.raises(ConfigError, match=r"2 schedules \(nightly, hourly\); name the one"):
        backfill(config, "2025-01-01", "2025-01-02", store=store)
    assert store.scheduled_runs.find() == []  # nothing recorded
    report = backfill(config, "2025-01-01", "2025-01-02", schedule="nightly", store=store)
    assert len(report.created) == 2
    assert {r.tenant for r in store.scheduled_runs.find()} == {"acme"}


def test_a_run_whose_rules_fail_is_failed_without_retries_and_holds_no_window_back(
    store: Store, project: Callable[..., Config]
) -> None:
    """`onceflow run` exits 1 when an error-severity rule fails: a scheduled run of it is
    failed too (it was counted completed), at once (a retry would judge the same loaded
    data with the same rules), and the next window, whose load it does not hold, runs."""
    table = {
        "source": "src",
        "table": "events",
        "name": "events",
        "extract": {"mode": "incremental", "cursor": "updated_at"},
        "load": {"strategy": "append"},
        "rules": [{"name": "small", "type": "range", "column": "amount", "max": 2}],
    }
    config = project(
        schedules=[nightly(catch_up="all", retry=RETRY_FAST, tenant="acme")],
        extra={"tables": [table]},
    )
    Scheduler([config], store).run_once(NOW)
    report = Worker([config], store).run(until_idle=True)
    assert (report.completed, report.failed, report.retried) == (0, 2, 0)
    runs = store.scheduled_runs.find()
    assert [(r.run_date, r.state, r.error_type) for r in runs] == [
        ("2025-01-04", "FAILED", "ValidateError"),
        ("2025-01-05", "FAILED", "ValidateError"),
    ]
    assert "src.events: validation failed: small fail" in (runs[0].error or "")
    assert sorted(loaded_dates(config)) == ["2025-01-04", "2025-01-05"]  # both loaded
    status = tenant_status([config], "acme", store=store)
    assert status["last_failure"]["run_date"] == "2025-01-05"
