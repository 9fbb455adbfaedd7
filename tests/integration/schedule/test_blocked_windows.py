"""A window that failed for good blocks the later windows of its batch: they fail at once
naming it (no endless waiting), run again once it is requeued; waiting is no attempt;
a PENDING run without a job gets one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from onceflow import PipelineStateManager
from onceflow.config import Config
from onceflow.schedule import Scheduler, Worker, backfill
from onceflow.state import Store

NO_RETRY = {"name": "nightly", "cron": "0 2 * * *", "retry": {"max_retries": 0}}
NOW = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)


def test_a_window_that_failed_for_good_blocks_the_later_ones_which_name_it(
    store: Store, project: Callable[..., Config], broken: set[str]
) -> None:
    config = project(schedules=[NO_RETRY])
    backfill(config, "2025-01-02", "2025-01-05", store=store)
    broken.add("2025-01-03")
    report = Worker([config], store, poll_seconds=0.05).run(until_idle=True)
    assert (report.completed, report.failed) == (1, 3)  # and it came back: idle
    runs = {r.run_date: r for r in store.scheduled_runs.find()}
    assert [runs[d].state for d in sorted(runs)] == ["COMPLETED", "FAILED", "FAILED", "FAILED"]
    assert runs["2025-01-03"].error_type == "SourceError"
    for later in ("2025-01-04", "2025-01-05"):
        run = runs[later]
        assert run.error_type == "BlockedRunError" and run.attempt == 1
        assert f"earlier window 2025-01-03 of backfill (run {runs['2025-01-03'].id}) failed" in (
            run.error or ""
        )
        assert "--reprocess failed" in (run.error or "")
    assert any("BlockedRunError" in line and "2025-01-04" in line for line in report.failures)
    assert store.queue.length() == 0
    # the cause fixed, requeueing the failed dates runs them in order
    broken.clear()
    again = backfill(config, "2025-01-02", "2025-01-05", reprocess="failed", store=store)
    assert again.requeued == ["2025-01-03", "2025-01-04", "2025-01-05"]
    assert Worker([config], store, poll_seconds=0.05).run(until_idle=True).failed == 0
    assert {r.state for r in store.scheduled_runs.find()} == {"COMPLETED"}


def test_waiting_for_an_earlier_window_is_not_an_attempt(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project()
    backfill(config, "2025-01-02", "2025-01-03", store=store)
    (held,) = store.queue.claim("slow-worker", limit=1)  # Jan 2 is taken, not finished
    worker = Worker([config], store, poll_seconds=0.05)
    assert worker.run(max_jobs=1).deferred == 1  # extracted, then waits
    later = next(r for r in store.scheduled_runs.find() if r.run_date == "2025-01-03")
    assert later.state == "PENDING" and later.attempt == 0 and later.waiting_on
    steps = len(store.scheduled_runs.history(later.id))
    # claimed again while Jan 2 still runs: given back without a start
    job = store.queue.live_job_of_run(later.id)
    assert job is not None
    store.queue.reschedule(job.id, 0)
    assert Worker([config], store).run(max_jobs=1).deferred == 1
    again = store.scheduled_runs.get(later.id)
    assert again is not None and again.attempt == 0
    assert len(store.scheduled_runs.history(later.id)) == steps  # no RUNNING <-> PENDING churn
    store.queue.release(held.id, held.token or "")
    assert Worker([config], store, poll_seconds=0.05).run(until_idle=True).completed == 2
    done = store.scheduled_runs.get(later.id)
    assert done is not None and done.state == "COMPLETED" and done.attempt == 1


def test_a_pending_run_without_a_job_gets_one(
    store: Store, project: Callable[..., Config], broken: set[str]
) -> None:
    config = project(schedules=[NO_RETRY])
    backfill(config, "2025-01-02", "2025-01-03", store=store)
    broken.add("2025-01-02")
    Worker([config], store, poll_seconds=0.05).run(until_idle=True)
    first, second = store.scheduled_runs.find()
    assert (first.state, second.state) == ("FAILED", "FAILED")
    broken.clear()
    # by hand through the API: FAILED -> PENDING queues its job
    PipelineStateManager(store).transition_state(first.id, "FAILED", "PENDING")
    job = store.queue.live_job_of_run(first.id)
    assert job is not None and job.run_id == first.id
    # by the store alone (no job): a scheduler pass repairs it once it has been so for
    # the orphan grace (a minute by default: the seed's caller enqueues right after)
    store.scheduled_runs.transition(second.id, "FAILED", "PENDING")
    assert store.queue.live_job_of_run(second.id) is None
    assert Scheduler([config], store).run_once(NOW).repaired == []
    no_grace = timedelta(0)
    assert Scheduler([config], store, orphan_grace=no_grace).run_once(NOW).repaired == [second.id]
    assert Scheduler([config], store, orphan_grace=no_grace).run_once(NOW).repaired == []
    assert Worker([config], store, poll_seconds=0.05).run(until_idle=True).completed == 2


def test_runs_of_another_table_ahead_do_not_hide_an_earlier_window_of_its_own(
    store: Store, project: Callable[..., Config]
) -> None:
    from onceflow.state import RunSpec

    config = project(schedules=[NO_RETRY])

    def spec(day: str, tables: list[str], batch: str) -> RunSpec:
        return RunSpec(
            pipeline=config.pipeline,
            schedule="nightly",
            tick=f"{day}T02:00:00+00:00",
            run_date=day,
            window_start=f"{day}T00:00:00+00:00",
            window_end=f"{day}T23:59:59+00:00",
            tables=tables,
            batch=batch,
            kind="backfill",
        )

    runs = store.scheduled_runs
    # a backfill of another table: 60 earlier days queued, more than a page of rows
    days = [f"2024-{m:02d}-{d:02d}" for m in (10, 11) for d in range(1, 31)]
    for run_id in runs.create([spec(day, ["other"], "b1") for day in days]):
        runs.transition(run_id, "SCHEDULED", "PENDING")
    first, second = runs.create([spec(d, ["events"], "b2") for d in ("2025-01-02", "2025-01-03")])
    runs.transition(first, "SCHEDULED", "PENDING")
    later = runs.get(second)
    assert later is not None
    worker = Worker([config], store)
    earlier = worker.earlier(later)
    assert earlier is not None and earlier.id == first
    assert "2025-01-02" in (worker.blocker(later) or "")


def test_a_run_the_seeds_caller_queued_a_job_for_gets_no_second_job(
    store: Store, project: Callable[..., Config]
) -> None:
    from onceflow import QueueManager

    config = project(schedules=[NO_RETRY])
    states, queue = PipelineStateManager(store), QueueManager(store)
    no_grace = timedelta(0)

    def pending(day: int) -> str:
        tick = datetime(2025, 1, day, 2, tzinfo=UTC)
        run_id = states.create_scheduled_run("default", config.pipeline, tick)
        states.transition_state(run_id, "SCHEDULED", "PENDING")  # queues none
        return run_id

    # the seed's pattern 1, its job naming the run in its payload: a pass (with no
    # grace even) leaves the run to it, and the caller's worker runs it
    named = pending(2)
    queue.enqueue("default", {"pipeline": config.pipeline, "run_id": named}, priority=5)
    assert Scheduler([config], store, orphan_grace=no_grace).run_once(NOW).repaired == []
    assert store.queue.length() == 1
    item = queue.dequeue("worker-001")
    assert item is not None and item.run_id is None
    states.mark_as_running(named, "log-1")
    # the seed's job as the seed writes it (its config alone): may be the run's, so no
    # second job while it lives
    plain = pending(3)
    assert Scheduler([config], store).run_once(NOW).repaired == []  # within the grace
    queue.enqueue("default", {"pipeline": config.pipeline}, priority=5)
    assert Scheduler([config], store, orphan_grace=no_grace).run_once(NOW).repaired == []
    # a job of the caller naming another run is not this run's; and once the caller's
    # plain job ended without running its run, the pass queues that run's own job
    other = pending(4)
    queue.enqueue("default", {"pipeline": config.pipeline, "run_id": "another-run"})
    for job in store.queue.claim("worker-001", limit=5):
        if "run_id" not in (job.payload or {}):
            store.queue.complete(job.id, job.token or "")
    passed = Scheduler([config], store, orphan_grace=no_grace).run_once(NOW)
    assert passed.repaired == [plain, other]
