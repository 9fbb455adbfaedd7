"""Schedules as an operator handles them (`onceflow schedule list|pause|resume|trigger`),
on both stores: a pause stops the ticks of every scheduler sharing the store and is said
by each pass; on resume the missed ticks follow the catch-up policy (or are skipped);
a trigger queues one manual run per (schedule, date); the list shows it all."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from onceflow.clock import now
from onceflow.config import Config
from onceflow.errors import ConfigError
from onceflow.schedule import (
    Scheduler,
    Worker,
    list_schedules,
    pause_schedule,
    resume_schedule,
    trigger_schedule,
)
from onceflow.schedule.scheduler import calculator
from onceflow.state import Store

NOW = datetime(2025, 1, 10, 12, 0, tzinfo=UTC)


def nightly(**kw: object) -> dict[str, object]:
    return {"name": "nightly", "cron": "0 2 * * *", "start": "2025-01-05T00:00:00+00:00", **kw}


def test_a_paused_schedule_records_no_ticks_and_every_pass_says_so(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[nightly(), {"name": "hourly", "cron": "0 * * * *"}])
    first = pause_schedule(config, "nightly", reason="source migration", store=store)
    assert (first.paused, first.changed, first.reason) == (True, True, "source migration")
    again = pause_schedule(config, "nightly", store=store)
    assert (again.changed, again.paused_at) == (False, first.paused_at)

    # two schedulers sharing the store: neither records a tick of the paused schedule
    for scheduler in (Scheduler([config], store), Scheduler([config], store)):
        report = scheduler.run_once(NOW)
        assert report.paused == [f"sched/nightly since {first.paused_at} (source migration)"]
        assert report.errors == []
    assert {r.schedule for r in store.scheduled_runs.find()} <= {"hourly"}
    assert [r.schedule for r in store.scheduled_runs.paused()] == ["nightly"]


def test_runs_queued_before_the_pause_still_run(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[nightly(catch_up="all")])
    Scheduler([config], store).run_once(datetime(2025, 1, 6, 3, 0, tzinfo=UTC))
    queued = store.scheduled_runs.find()
    assert [r.state for r in queued] == ["PENDING", "PENDING"]
    pause_schedule(config, "nightly", store=store)
    assert Worker([config], store, poll_seconds=0.05).run(until_idle=True).completed == 2


@pytest.mark.parametrize(
    ("policy", "dates"),
    [
        ("latest", ["2025-01-09"]),
        ("none", []),
        ("all", [f"2025-01-0{d}" for d in range(6, 10)]),
    ],
)
def test_on_resume_missed_ticks_follow_the_catch_up_policy_as_after_downtime(
    store: Store, project: Callable[..., Config], policy: str, dates: list[str]
) -> None:
    config = project(schedules=[nightly(catch_up=policy, start="2025-01-06T00:00:00+00:00")])
    Scheduler([config], store).run_once(datetime(2025, 1, 6, 2, 0, 10, tzinfo=UTC))  # on time
    before = [r.run_date for r in store.scheduled_runs.find()]
    assert before == ["2025-01-05"]
    pause_schedule(config, "nightly", store=store)
    Scheduler([config], store).run_once(datetime(2025, 1, 8, 12, 0, tzinfo=UTC))  # paused
    change = resume_schedule(config, "nightly", store=store)
    assert (change.paused, change.changed, change.missed) == (False, True, f"catch_up: {policy}")
    report = Scheduler([config], store).run_once(NOW)
    assert report.paused == []
    assert [r.run_date for r in store.scheduled_runs.find()] == before + dates


def test_resume_with_skip_missed_records_none_of_the_missed_ticks(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[nightly(catch_up="all")])
    pause_schedule(config, "nightly", store=store)
    change = resume_schedule(config, "nightly", skip_missed=True, at=NOW, store=store)
    assert change.missed == "skipped"
    assert Scheduler([config], store).run_once(NOW).recorded == 0
    # the next tick after the resume is recorded as usual
    on_time = Scheduler([config], store).run_once(datetime(2025, 1, 11, 2, 0, 5, tzinfo=UTC))
    assert on_time.recorded == 1
    assert [r.run_date for r in store.scheduled_runs.find()] == ["2025-01-10"]
    assert resume_schedule(config, "nightly", store=store).changed is False


def test_a_pause_of_an_unknown_schedule_names_the_known_ones(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[nightly()])
    with pytest.raises(ConfigError, match=r"'weekly' is not in the config \(schedules: nightly"):
        pause_schedule(config, "weekly", store=store)


def test_a_pause_committed_during_a_pass_stops_its_cursor(
    store: Store, project: Callable[..., Config]
) -> None:
    """The cursor's conditional move refuses a paused schedule: a pass that read the
    pauses before the pause committed still records nothing after it."""
    config = project(schedules=[nightly(catch_up="all")])
    scheduler = Scheduler([config], store)
    real = store.scheduled_runs.paused
    calls = []

    def paused_after_the_read() -> list[object]:
        found = real()
        calls.append(1)
        pause_schedule(config, "nightly", store=store)  # lands after the pass read them
        return found  # type: ignore[return-value]

    store.scheduled_runs.paused = paused_after_the_read  # type: ignore[method-assign]
    report = scheduler.run_once(NOW)
    assert calls and report.recorded == 0 and store.scheduled_runs.find() == []
    assert len(report.paused) == 1 and report.paused[0].startswith("sched/nightly since")


def test_trigger_queues_one_manual_run_with_the_schedules_settings(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(
        schedules=[
            nightly(tenant="acme", priority=2, tables=["src.events"], retry={"max_retries": 1})
        ]
    )
    report = trigger_schedule(config, "nightly", run_date="2025-01-03", store=store)
    run = report.run
    assert report.created and not report.paused
    assert (run.schedule, run.kind, run.run_date, run.state) == (
        "nightly:manual",
        "manual",
        "2025-01-03",
        "PENDING",
    )
    assert (run.tenant, run.priority, run.table_list) == ("acme", 2, ["src.events"])
    assert '"max_retries": 1' in (run.retry_policy or "")
    assert store.queue.live_job_of_run(run.id) is not None

    # the same date again: the same run, nothing queued
    again = trigger_schedule(config, "nightly", run_date=date(2025, 1, 3), store=store)
    assert (again.created, again.run.id) == (False, run.id)
    assert store.queue.length() == 1
    assert Worker([config], store, poll_seconds=0.05).run(until_idle=True).completed == 1
    done = trigger_schedule(config, "nightly", run_date="2025-01-03", store=store)
    assert (done.created, done.run.state) == (False, "COMPLETED")


def test_trigger_defaults_to_the_latest_complete_window_and_refuses_an_open_one(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[{"name": "nightly", "cron": "0 2 * * *"}])
    report = trigger_schedule(config, "nightly", store=store)
    moment = now()
    ticks = list(
        calculator(config, config.schedule("nightly")).ticks(
            moment - timedelta(days=2), until=moment
        )
    )
    assert report.run.run_date == ticks[-1].run_date.isoformat()  # what the last tick did
    today = moment.date().isoformat()
    with pytest.raises(ConfigError, match=rf"--date {today}: its window ends at .*in the future"):
        trigger_schedule(config, "nightly", run_date=today, store=store)
    assert len(store.scheduled_runs.find()) == 1


def test_trigger_of_a_same_day_schedule_defaults_to_a_window_that_has_ended(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[{"name": "intraday", "cron": "*/5 * * * *", "window": "same_day"}])
    run = trigger_schedule(config, "intraday", store=store).run
    assert run.run_date == (now().date() - timedelta(days=1)).isoformat()


def test_trigger_runs_on_a_paused_schedule_and_says_it_is_paused(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[nightly()])
    pause_schedule(config, "nightly", store=store)
    report = trigger_schedule(config, "nightly", run_date="2025-01-03", store=store)
    assert report.created and report.paused and report.run.state == "PENDING"


def test_a_manual_run_is_not_blocked_by_a_failed_nightly_window(
    store: Store, project: Callable[..., Config], broken: set[str]
) -> None:
    config = project(schedules=[nightly(catch_up="all", retry={"max_retries": 0})])
    Scheduler([config], store).run_once(datetime(2025, 1, 7, 3, 0, tzinfo=UTC))
    broken.add("2025-01-04")
    Worker([config], store, poll_seconds=0.05).run(until_idle=True)
    states = {r.run_date: r.error_type for r in store.scheduled_runs.find()}
    assert states["2025-01-05"] == "BlockedRunError"  # the nightly batch is blocked
    broken.clear()
    run = trigger_schedule(config, "nightly", run_date="2025-01-05", store=store).run
    assert Worker([config], store, poll_seconds=0.05).run(until_idle=True).completed == 1
    assert store.scheduled_runs.get(run.id).state == "COMPLETED"  # type: ignore[union-attr]


def test_list_shows_each_schedule_paused_or_active_its_next_tick_and_last_run(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(
        schedules=[
            nightly(timezone="America/New_York"),
            {"name": "hourly", "cron": "0 * * * *"},
        ]
    )
    Scheduler([config], store).run_once(NOW)
    pause_schedule(config, "hourly", reason="noisy", store=store)
    nightly_info, hourly_info = list_schedules([config], at=NOW, store=store)
    assert (nightly_info.schedule, nightly_info.timezone, nightly_info.paused) == (
        "nightly",
        "America/New_York",
        False,
    )
    assert nightly_info.next_tick is not None
    assert nightly_info.next_tick.local.isoformat() == "2025-01-11T02:00:00-05:00"
    assert nightly_info.next_tick.at.isoformat() == "2025-01-11T07:00:00+00:00"
    assert nightly_info.last_run is not None
    assert (nightly_info.last_run.run_date, nightly_info.last_run.state) == (
        "2025-01-09",
        "PENDING",
    )
    data = hourly_info.as_dict()
    assert (data["paused"], data["pause_reason"], data["next_tick_utc"]) == (True, "noisy", None)
    assert nightly_info.as_dict()["last_run"]["state"] == "PENDING"


def test_the_next_tick_of_a_schedule_that_starts_later_is_its_first_tick_not_tomorrows(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[nightly(start="2025-03-01T00:00:00+00:00")])
    (info,) = list_schedules([config], at=NOW, store=store)
    assert info.next_tick is not None
    assert info.next_tick.at.isoformat() == "2025-03-01T02:00:00+00:00"  # not 2025-01-11
    assert Scheduler([config], store).run_once(NOW).recorded == 0
