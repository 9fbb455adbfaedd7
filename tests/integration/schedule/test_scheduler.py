"""The scheduler on both stores: due ticks become one run each, catch-up policies, runs
left SCHEDULED by a crash are queued by the next pass, stuck runs fail."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from onceflow.config import Config
from onceflow.errors import LeaseLostError
from onceflow.schedule import Scheduler, Worker
from onceflow.schedule.scheduler import CHUNK, fail_stuck, missed_line
from onceflow.state import Store

NOW = datetime(2025, 1, 10, 12, 0, tzinfo=UTC)


def nightly(**kw: object) -> dict[str, object]:
    return {"name": "nightly", "cron": "0 2 * * *", "start": "2025-01-05T00:00:00+00:00", **kw}


def never_due() -> dict[str, object]:
    """A schedule with no tick for the real clock of a test: one that starts in 2999 (a
    nightly tick at 02:00 UTC fired inside a test of `up` run at 01:59:52)."""
    return nightly(catch_up="none", start="2999-01-01T00:00:00+00:00")


def test_due_ticks_become_one_queued_run_each(store: Store, project: Callable[..., Config]) -> None:
    config = project(schedules=[nightly(catch_up="all", tenant="acme", priority=2)])
    scheduler = Scheduler([config], store)
    report = scheduler.run_once(NOW)
    assert (report.recorded, report.queued) == (6, 6)  # Jan 5..10 at 02:00
    runs = store.scheduled_runs.find(pipeline="sched")
    assert [r.run_date for r in runs] == [f"2025-01-0{d}" for d in range(4, 10)]
    assert {r.state for r in runs} == {"PENDING"} and {r.tenant for r in runs} == {"acme"}
    assert runs[0].tick == "2025-01-05T02:00:00+00:00" and runs[0].kind == "catch-up"
    assert store.queue.length(tenant="acme") == 6
    jobs = store.queue.claim("w", limit=10)
    assert {j.priority for j in jobs} == {2} and {j.run_id for j in jobs} == {r.id for r in runs}
    again = scheduler.run_once(NOW)
    assert (again.recorded, again.queued) == (0, 0)


@pytest.mark.parametrize(
    ("policy", "dates"),
    [
        ("none", []),
        ("latest", ["2025-01-09"]),
        ({"max": 3}, ["2025-01-07", "2025-01-08", "2025-01-09"]),
        ("all", [f"2025-01-0{d}" for d in range(4, 10)]),
    ],
)
def test_catch_up_policy_after_downtime(
    store: Store, project: Callable[..., Config], policy: object, dates: list[str]
) -> None:
    config = project(schedules=[nightly(catch_up=policy)])
    Scheduler([config], store).run_once(NOW)
    assert [r.run_date for r in store.scheduled_runs.find()] == dates
    # the cursor moved past the skipped ticks: an on-time pass adds only the next tick
    Scheduler([config], store).run_once(datetime(2025, 1, 11, 2, 0, 30, tzinfo=UTC))
    assert store.scheduled_runs.find()[-1:][0].run_date == "2025-01-10"


@pytest.mark.parametrize(
    ("policy", "shown", "count", "last"),
    [
        ("none", "none", 6, "2025-01-09"),
        ("latest", "latest", 5, "2025-01-08"),
        ({"max": 3}, "{max: 3}", 3, "2025-01-06"),
    ],
)
def test_missed_ticks_a_policy_leaves_out_are_counted_and_said(
    store: Store,
    project: Callable[..., Config],
    caplog: pytest.LogCaptureFixture,
    policy: object,
    shown: str,
    count: int,
    last: str,
) -> None:
    config = project(schedules=[nightly(catch_up=policy)])
    report = Scheduler([config], store).run_once(NOW)
    backfill = f"onceflow backfill --schedule nightly --from 2025-01-04 --to {last}"
    assert report.missed == [
        {
            "pipeline": "sched",
            "schedule": "nightly",
            "catch_up": shown,
            "count": count,
            "first_run_date": "2025-01-04",
            "last_run_date": last,
            "backfill": backfill,
        }
    ]
    assert report.skipped_ticks == count and report.as_dict()["skipped_ticks"] == count
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert f"sched/nightly: {count} missed tick(s) not run by catch_up {shown}" in warning.message
    assert backfill in warning.message
    # said once: the cursor moved past them, the next pass leaves nothing out
    assert Scheduler([config], store).run_once(NOW).missed == []


def test_catch_up_max_above_the_chunk_size_records_all_n_most_recent_ticks(
    store: Store, project: Callable[..., Config], caplog: pytest.LogCaptureFixture
) -> None:
    # 800 hourly ticks missed, {max: 700}: more than one transaction's CHUNK (500) of
    # them is kept; all 700 are recorded and only the 100 oldest are said to be missed
    assert CHUNK < 700
    start = (NOW - timedelta(hours=799)).isoformat()
    hourly = {"name": "hourly", "cron": "0 * * * *", "catch_up": {"max": 700}, "start": start}
    config = project(schedules=[hourly])
    report = Scheduler([config], store).run_once(NOW)
    assert report.recorded == 700
    ticks = [r.tick for r in store.scheduled_runs.find(pipeline="sched")]
    expected = [(NOW - timedelta(hours=h)).isoformat() for h in range(699, -1, -1)]
    assert sorted(ticks) == expected
    (missed,) = report.missed
    assert missed["count"] == 100 and missed["catch_up"] == "{max: 700}"
    warnings = [r.message for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"scheduler: {missed_line(missed)}"]
    assert "100 missed tick(s)" in warnings[0]
    assert Scheduler([config], store).run_once(NOW).recorded == 0


def test_catch_up_all_leaves_no_tick_out(store: Store, project: Callable[..., Config]) -> None:
    config = project(schedules=[nightly(catch_up="all")])
    report = Scheduler([config], store).run_once(NOW)
    assert (report.recorded, report.missed, report.skipped_ticks) == (6, [], 0)


def test_an_on_time_tick_runs_under_catch_up_none(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[nightly(catch_up="none")])
    Scheduler([config], store).run_once(NOW)  # the downtime's ticks are skipped
    report = Scheduler([config], store).run_once(datetime(2025, 1, 11, 2, 0, 20, tzinfo=UTC))
    assert report.recorded == 1
    (run,) = store.scheduled_runs.find()
    assert run.run_date == "2025-01-10" and run.kind == "scheduled"


def test_runs_left_scheduled_are_queued_by_the_next_pass(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[nightly(catch_up="all")])
    scheduler = Scheduler([config], store)
    assert scheduler.record_ticks(NOW) == 6  # as if killed before queueing
    assert {r.state for r in store.scheduled_runs.find()} == {"SCHEDULED"}
    assert store.queue.length() == 0
    assert Scheduler([config], store).run_once(NOW).queued == 6
    assert {r.state for r in store.scheduled_runs.find()} == {"PENDING"}
    assert store.queue.length() == 6


def test_a_schedule_seen_first_starts_now(store: Store, project: Callable[..., Config]) -> None:
    config = project(schedules=[{"name": "hourly", "cron": "0 * * * *", "catch_up": "all"}])
    scheduler = Scheduler([config], store)
    # 90 s after the 12:00 tick: missed before the schedule was seen, so not run
    assert scheduler.run_once(NOW + timedelta(seconds=90)).recorded == 0
    tick = scheduler.next_ticks(NOW + timedelta(seconds=90))["sched/hourly"]
    assert tick.at == NOW + timedelta(hours=1)


def test_a_tick_within_the_grace_runs_on_a_schedules_first_pass(
    store: Store, project: Callable[..., Config]
) -> None:
    # a scheduler first started at 12:00:30 runs the 12:00 tick, as one running since
    # before would have: a tick 30 s old is not missed
    config = project(schedules=[{"name": "hourly", "cron": "0 * * * *", "catch_up": "none"}])
    report = Scheduler([config], store).run_once(NOW + timedelta(seconds=30))
    assert report.recorded == 1
    (run,) = store.scheduled_runs.find(pipeline="sched")
    assert run.tick == NOW.isoformat()


def test_a_run_past_its_max_runtime_is_failed_and_its_lease_revoked(
    store: Store, project: Callable[..., Config]
) -> None:
    retry = {"max_retries": 0}
    config = project(schedules=[nightly(catch_up="latest", max_runtime="1s", retry=retry)])
    Scheduler([config], store).run_once(NOW)
    (job,) = store.queue.claim("w1", lease_seconds=60)
    (run,) = store.scheduled_runs.find()
    store.scheduled_runs.transition(
        run.id, "PENDING", "RUNNING", worker="w1", values={"started_at": NOW.isoformat()}
    )
    assert fail_stuck(store, ["other"]) == []
    time.sleep(0.05)
    assert fail_stuck(store, ["sched"]) == [run.id]
    failed = store.scheduled_runs.get(run.id)
    assert failed is not None and failed.state == "FAILED"
    assert failed.error_type == "StuckRunError" and "past max_runtime" in (failed.error or "")
    with pytest.raises(LeaseLostError):
        store.queue.complete(job.id, job.token or "")
    # the worker whose result is refused says revoked, not lost: no lease expired
    worker = Worker([config], store, worker_id="w1")
    assert worker._dropped(job, failed, LeaseLostError("lease lost", job_id=job.id)) == "revoked"


def test_a_revoked_run_is_not_counted_lost_when_another_slot_started_its_retry(
    store: Store, project: Callable[..., Config]
) -> None:
    # `up --concurrency 2`: one worker id, two slots. The run of slot 1 passes its
    # max_runtime, is failed and retried; slot 2 claims the retry and starts it; then
    # slot 1's late result is refused
    config = project(schedules=[nightly(catch_up="latest", max_runtime="1s")])
    Scheduler([config], store).run_once(NOW)
    (job,) = store.queue.claim("w1", lease_seconds=60)
    (run,) = store.scheduled_runs.find()
    store.scheduled_runs.transition(
        run.id, "PENDING", "RUNNING", worker="w1", values={"started_at": NOW.isoformat()}
    )
    time.sleep(0.05)
    assert Scheduler([config], store).run_once(NOW).stuck == [run.id]
    retry_job = store.queue.live_job_of_run(run.id)
    assert retry_job is not None and store.queue.reschedule(retry_job.id, 0.0)
    (again,) = store.queue.claim("w1", lease_seconds=60)
    store.scheduled_runs.transition(run.id, "PENDING", "RUNNING", worker="w1")
    now_run = store.scheduled_runs.get(run.id)
    assert now_run is not None
    worker = Worker([config], store, worker_id="w1")
    lost = LeaseLostError("lease lost", job_id=job.id)
    assert worker._dropped(job, now_run, lost) == "revoked"
    # the retry's own slot, refused now, lost its lease indeed: nothing stuck since
    assert worker._dropped(again, now_run, lost) == "lost"


@pytest.mark.parametrize(
    ("retry", "retried"),
    [
        ({}, True),  # the default policy retries everything but a ConfigError
        ({"retry_on": ["StuckRunError"]}, True),
        ({"retry_on": ["OnceflowError"]}, True),
        ({"retry_on": ["TransientError"]}, False),
    ],
)
def test_a_stuck_run_is_retried_when_its_policy_says_so(
    store: Store, project: Callable[..., Config], retry: dict[str, object], retried: bool
) -> None:
    schedule = nightly(catch_up="latest", max_runtime="1s", retry=retry)
    config = project(schedules=[schedule])
    Scheduler([config], store).run_once(NOW)
    (job,) = store.queue.claim("w1", lease_seconds=60)
    (run,) = store.scheduled_runs.find()
    store.scheduled_runs.transition(
        run.id, "PENDING", "RUNNING", worker="w1", values={"started_at": NOW.isoformat()}
    )
    before = time.time()
    assert Scheduler([config], store).run_once(NOW).stuck == [run.id]
    after = store.scheduled_runs.get(run.id)
    assert after is not None and after.error_type == "StuckRunError"
    retry_job = store.queue.live_job_of_run(run.id)
    if not retried:
        assert after.state == "FAILED" and retry_job is None
        return
    assert after.state == "PENDING" and after.next_attempt_at
    assert retry_job is not None and retry_job.id != job.id
    assert abs(retry_job.run_after - before - 60) < 2  # retry 1: one minute
    steps = [(h.from_state, h.to_state) for h in store.scheduled_runs.history(run.id)][-2:]
    assert steps == [("RUNNING", "FAILED"), ("FAILED", "PENDING")]
    with pytest.raises(LeaseLostError):  # the stuck worker's outcome is still refused
        store.queue.complete(job.id, job.token or "")


def test_a_bad_row_is_skipped_and_reported_and_the_others_are_queued(
    store: Store, project: Callable[..., Config]
) -> None:
    from onceflow import PipelineStateManager, QueueManager

    config = project(schedules=[nightly(catch_up="latest")])
    states = PipelineStateManager(store)
    with pytest.raises(ValueError, match=r"priority must be between 1 .* got 99"):
        states.create_scheduled_run("default", "sched", NOW, priority=99)
    with pytest.raises(ValueError, match="tenant must be non-empty"):
        states.create_scheduled_run("", "sched", NOW)
    with pytest.raises(ValueError, match=r"got 2\.5"):
        QueueManager(store).enqueue("default", "sched", priority=2.5)  # type: ignore[arg-type]
    # a row written around the API (an older release, a hand edit)
    bad = states.create_scheduled_run("default", "sched", NOW - timedelta(minutes=1))
    with store.transaction() as tx:
        tx.execute("UPDATE scheduled_runs SET priority = 99 WHERE id = ?", (bad,))
    scheduler = Scheduler([config], store)
    report = scheduler.run_once(NOW)
    assert report.queued == 1  # the nightly tick
    assert len(report.errors) == 1 and bad in report.errors[0]
    assert "priority must be between 1 (highest) and 10, got 99" in report.errors[0]
    again = scheduler.run_once(NOW)
    assert again.errors == report.errors and again.queued == 0  # still skipped, still said
    bad_run = store.scheduled_runs.get(bad or "")
    assert bad_run is not None and bad_run.state == "SCHEDULED"


def test_up_until_idle_reports_a_row_it_cannot_queue_instead_of_waiting_for_it(
    store: Store, project: Callable[..., Config]
) -> None:
    from onceflow import PipelineStateManager
    from onceflow.schedule import up

    config = project(schedules=[never_due()])
    bad = PipelineStateManager(store).create_scheduled_run(
        "default", "sched", datetime.now(UTC) - timedelta(minutes=1)
    )
    with store.transaction() as tx:  # an earlier day of the backfill below: not waited for
        tx.execute(
            "UPDATE scheduled_runs SET priority = 99, schedule = 'backfill', "
            "run_date = '2025-01-01' WHERE id = ?",
            (bad,),
        )
    from onceflow.schedule import backfill

    backfill(config, "2025-01-02", "2025-01-03", store=store)
    stop = threading.Event()
    watchdog = threading.Timer(60, stop.set)  # the bug: it would wait forever
    watchdog.start()
    started = time.monotonic()
    try:
        done = up([config], until_idle=True, interval=0.2, stop=stop, store=store)
    finally:
        watchdog.cancel()
    assert time.monotonic() - started < 30, "it waited for a run it can never queue"
    skipped = done["scheduler"]["skipped"]
    assert len(skipped) == 1 and f"scheduled run {bad}" in skipped[0]
    assert done["worker"]["completed"] == 2  # not held back by the bad earlier day


def test_up_until_idle_waits_for_a_pending_run_with_no_job_and_runs_it(
    store: Store, project: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed's caller made its run PENDING and died before it queued a job: a pass
    queues one after the orphan grace, but `up --until-idle` stopped first, exit 0,
    leaving the run PENDING for ever."""
    from onceflow import PipelineStateManager
    from onceflow.schedule import scheduler as scheduler_module
    from onceflow.schedule import up

    monkeypatch.setattr(scheduler_module, "ORPHAN_GRACE", timedelta(seconds=1))
    config = project(schedules=[never_due()])
    states = PipelineStateManager(store)
    run_id = states.create_scheduled_run("default", "sched", datetime.now(UTC))
    states.transition_state(run_id, "SCHEDULED", "PENDING")
    done = up([config], until_idle=True, interval=0.2, store=store)
    assert done["worker"]["completed"] == 1
    run = store.scheduled_runs.get(run_id)
    assert run is not None and run.state == "COMPLETED"


def test_a_schedule_that_fails_does_not_stop_the_others(
    store: Store, project: Callable[..., Config]
) -> None:
    from onceflow.config import ScheduleConfig

    config = project(schedules=[nightly(catch_up="latest")])
    # a schedule that got past the config checks (an older release's config object)
    never = ScheduleConfig.model_construct(name="never", cron="0 2 30 2 *")
    broken = config.model_copy(update={"schedules": [never, *config.schedules]})
    scheduler = Scheduler([broken], store)
    report = scheduler.run_once(NOW)
    assert (report.recorded, report.queued) == (1, 1)
    assert len(report.errors) == 1 and report.errors[0].startswith("sched/never: ")
    assert set(scheduler.next_ticks(NOW)) == {"sched/nightly"}
    total = scheduler.run_forever(threading.Event(), interval=0.01, max_passes=2)
    assert total.errors and all(e.startswith("sched/never: ") for e in total.errors)


def test_up_reports_the_ticks_of_every_scheduler_pass_not_the_first_alone(
    store: Store, project: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    from onceflow.schedule import PassReport, up

    config = project(schedules=[nightly(catch_up="none")])

    def later_passes(self: Scheduler, stop: threading.Event, **kw: object) -> PassReport:
        stop.wait(5)
        return PassReport(recorded=3, queued=3, paused=["sched/nightly since then"])

    monkeypatch.setattr(Scheduler, "run_forever", later_passes)
    done = up([config], until_idle=True, interval=0.2, store=store)
    assert done["scheduler"]["recorded"] >= 3 and done["scheduler"]["queued"] >= 3
    assert done["scheduler"]["paused"] == ["sched/nightly since then"]


# PostgreSQL only: SQLite has no row locks (its write transactions are serial)
@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_queueing_skips_a_run_another_transaction_holds_instead_of_waiting_for_it(
    store: Store, project: Callable[..., Config]
) -> None:
    # waiting for a row another pass holds, in whatever order the server scans the rows,
    # is how two passes queueing overlapping runs deadlocked on PostgreSQL: rows are now
    # locked in id order, skipping those held (the holder queues them, or the next pass)
    from onceflow.schedule.scheduler import queue_runs
    from onceflow.state import open_store

    config = project(schedules=[nightly(catch_up="all")])
    Scheduler([config], store).record_ticks(NOW)
    runs = store.scheduled_runs.due(NOW.isoformat())
    held, others = runs[0], runs[1:]
    assert others
    holder = open_store(store.url)
    done: list[int] = []

    class RolledBack(Exception):
        """Ends the holder's transaction with a rollback, as a pass that failed would."""

    with pytest.raises(RolledBack), holder.transaction() as tx:
        # another pass in the middle of moving `held`, then rolled back
        holder.scheduled_runs.transition_many([held.id], "SCHEDULED", "PENDING", tx=tx)
        mover = threading.Thread(target=lambda: done.append(queue_runs(store, runs)))
        mover.start()
        mover.join(timeout=20)
        raise RolledBack
    holder.close()
    assert done == [len(others)]  # it did not wait for the held row
    again = store.scheduled_runs.get(held.id)
    assert again is not None and again.state == "SCHEDULED"
    assert queue_runs(store, [again]) == 1  # the next pass queues it


def test_a_deadlock_is_a_conflict_that_is_tried_again(store: Store) -> None:
    from onceflow.errors import StateError
    from onceflow.state.db import retry_conflicts

    calls: list[int] = []

    def work() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise StateError("rolled back", conflict=True)
        return "done"

    assert retry_conflicts(work) == "done" and len(calls) == 3
    with pytest.raises(StateError, match="unreachable"):  # any other error is raised
        retry_conflicts(lambda: (_ for _ in ()).throw(StateError("unreachable")))
    if store.db.backend != "postgresql":
        return
    # a real deadlock: each of two transactions holds a row the other wants
    from onceflow.state import open_store

    store.locks.acquire("a")
    store.locks.acquire("b")
    other = open_store(store.url)
    raised: list[BaseException] = []
    both = threading.Barrier(2)

    def cross(s: Store, first: str, second: str) -> None:
        try:
            with s.transaction() as tx:
                tx.execute("SELECT name FROM locks WHERE name = ? FOR UPDATE", (first,))
                both.wait()
                tx.execute("SELECT name FROM locks WHERE name = ? FOR UPDATE", (second,))
        except BaseException as error:
            raised.append(error)

    threads = [
        threading.Thread(target=cross, args=(store, "a", "b")),
        threading.Thread(target=cross, args=(other, "b", "a")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    other.close()
    assert len(raised) == 1 and isinstance(raised[0], StateError)
    assert raised[0].context.get("conflict") is True  # so retry_conflicts tries it again
