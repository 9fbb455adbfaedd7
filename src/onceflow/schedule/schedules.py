"""Schedules as an operator handles them: list, pause, resume, trigger now.

These are what `onceflow schedule list|pause|resume|trigger` call.

* A pause is a flag on the schedule's cursor row in the state store, not in the config:
  every scheduler sharing the store sees it at its next pass, and the cursor's
  conditional move refuses to advance past it (no pass records a tick once the pause
  has committed). Runs already queued still run: a pause is about the schedule's future
  ticks; one queued day is cancelled with `onceflow runs cancel`.
* On resume the ticks missed while paused follow the schedule's `catch_up:` policy, as
  after downtime (Airflow's unpause with catchup); `skip_missed=True` drops them instead
  (Dagster's stopped schedule), by moving the cursor to now.
* A trigger records one run of the schedule for a data date as a `manual` run under the
  schedule key `NAME:manual`, so it is idempotent per (schedule, date), never the same
  row as a tick of the cron, and alone in its batch (a failed nightly window never
  blocks it, nor it them); it waits for earlier windows sharing its tables like any run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from onceflow.clock import now
from onceflow.config import Config, ScheduleConfig
from onceflow.errors import ConfigError, StateError
from onceflow.schedule.cron import Tick
from onceflow.schedule.scheduler import (
    calculator,
    cursor_start,
    next_tick_of,
    queue_runs,
    run_spec,
    shared_store,
)
from onceflow.state import ScheduledRunRecord, Store, open_store
from onceflow.state.scheduled_runs import SCHEDULED
from onceflow.windows import parse_run_date, window_for

log = logging.getLogger(__name__)

MANUAL = "manual"
#: How far back `trigger` looks for the schedule's latest complete window, widening in
#: steps so that a minutely cron reads two days of ticks, not years (a yearly cron's
#: last tick is up to a year back; 29 February's up to eight).
LOOKBACK_DAYS = (2, 9, 40, 400, 3000)


def manual_key(name: str) -> str:
    """The schedule key of a schedule's triggered runs: `nightly:manual` (a configured
    schedule name cannot hold ':', so no cron tick shares its rows)."""
    return f"{name}:{MANUAL}"


@dataclass(frozen=True)
class ScheduleInfo:
    """One schedule at a glance: what it is, whether it is paused, its next tick, and
    its last run (of its own ticks)."""

    pipeline: str
    schedule: str
    cron: str
    timezone: str
    tenant: str
    paused_at: str | None
    pause_reason: str | None
    #: the next tick the scheduler will record; None while paused
    next_tick: Tick | None
    last_run: ScheduledRunRecord | None

    @property
    def paused(self) -> bool:
        """True while the schedule is paused."""
        return self.paused_at is not None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, as `schedule list --json` prints it."""
        tick, last = self.next_tick, self.last_run
        return {
            "pipeline": self.pipeline,
            "schedule": self.schedule,
            "cron": self.cron,
            "timezone": self.timezone,
            "tenant": self.tenant,
            "paused": self.paused,
            "paused_at": self.paused_at,
            "pause_reason": self.pause_reason,
            "next_tick_local": None if tick is None else tick.local.isoformat(),
            "next_tick_utc": None if tick is None else tick.at.isoformat(),
            "next_run_date": None if tick is None else tick.run_date.isoformat(),
            "last_run": None
            if last is None
            else {
                "run_id": last.id,
                "state": last.state,
                "run_date": last.run_date,
                "tick": last.tick,
                "ended_at": last.ended_at,
            },
        }


@dataclass(frozen=True)
class PauseChange:
    """What `pause_schedule` or `resume_schedule` found and did."""

    pipeline: str
    schedule: str
    paused: bool
    #: False when it already was as asked (paused twice, resumed while active)
    changed: bool
    paused_at: str | None = None
    reason: str | None = None
    #: on a resume: how the missed ticks are handled (`catch_up: latest`, `skipped`)
    missed: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(vars(self))


@dataclass(frozen=True)
class TriggerReport:
    """The run a trigger queued, or found recorded by an earlier trigger of the date."""

    run: ScheduledRunRecord
    created: bool
    #: the schedule is paused: its ticks are not recorded, this run runs all the same
    paused: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"created": self.created, "paused": self.paused, **self.run.as_dict()}


def list_schedules(
    configs: Sequence[Config], *, at: datetime | None = None, store: Store | None = None
) -> list[ScheduleInfo]:
    """Every schedule of the configs, in config order: cron, zone, paused or not, the
    next tick (after `at`, default now) and the last run of its own ticks."""
    own = store is None
    store = store or shared_store(list(configs), read_only=True)
    moment = at or now()
    try:
        pauses = {(r.pipeline, r.schedule): r for r in store.scheduled_runs.paused()}
        out = []
        for config in configs:
            for schedule in config.schedules:
                pause = pauses.get((config.pipeline, schedule.name))
                last = store.scheduled_runs.find(
                    pipeline=config.pipeline, schedule=schedule.name, limit=1, newest_first=True
                )
                out.append(
                    ScheduleInfo(
                        pipeline=config.pipeline,
                        schedule=schedule.name,
                        cron=schedule.cron,
                        timezone=config.schedule_zone(schedule).key,
                        tenant=schedule.tenant,
                        paused_at=None if pause is None else pause.paused_at,
                        pause_reason=None if pause is None else pause.pause_reason,
                        next_tick=None
                        if pause is not None
                        else next_tick_of(config, schedule, moment),
                        last_run=last[0] if last else None,
                    )
                )
        return out
    finally:
        if own:
            store.close()


def pause_schedule(
    config: Config, name: str, *, reason: str | None = None, store: Store | None = None
) -> PauseChange:
    """Pause schedule `name`: no scheduler records its ticks until it is resumed; runs
    already queued still run. Pausing a paused schedule changes nothing."""
    schedule = config.schedule(name)
    own = store is None
    store = store or open_store(config.state_url)
    try:
        row, changed = store.scheduled_runs.pause(
            config.pipeline, name, start=cursor_start(schedule, now()), reason=reason
        )
    finally:
        if own:
            store.close()
    if changed:
        log.info("schedule %s/%s paused", config.pipeline, name)
    return PauseChange(config.pipeline, name, True, changed, row.paused_at, row.pause_reason, None)


def resume_schedule(
    config: Config,
    name: str,
    *,
    skip_missed: bool = False,
    at: datetime | None = None,
    store: Store | None = None,
) -> PauseChange:
    """Resume schedule `name`. The ticks it missed while paused follow its catch-up
    policy at the next pass, as after downtime; with `skip_missed`, none of them is
    recorded (its cursor moves to `at`, default now). Resuming an active schedule
    changes nothing."""
    schedule = config.schedule(name)
    own = store is None
    store = store or open_store(config.state_url)
    try:
        skip_to = (at or now()).astimezone(UTC).isoformat() if skip_missed else None
        row, changed = store.scheduled_runs.resume(config.pipeline, name, skip_to=skip_to)
    finally:
        if own:
            store.close()
    missed = None
    if changed:
        missed = "skipped" if skip_missed else f"catch_up: {_policy_text(schedule)}"
        log.info("schedule %s/%s resumed; missed ticks: %s", config.pipeline, name, missed)
    paused_at = None if row is None else row.paused_at
    return PauseChange(config.pipeline, name, False, changed, paused_at, None, missed)


def trigger_schedule(
    config: Config,
    name: str,
    *,
    run_date: str | date | None = None,
    store: Store | None = None,
) -> TriggerReport:
    """Queue one run of schedule `name` now for `run_date` (default: the latest complete
    window its ticks process), with the schedule's tables, tenant, priority, retry
    policy and max_runtime. Idempotent per (schedule, date): a second trigger of the
    date queues nothing and returns the run the first made, in whatever state it is
    (`onceflow runs retry ID` runs a failed or cancelled one again). A date whose window
    has not ended is refused: the run could only fail as partial."""
    schedule = config.schedule(name)
    moment = now()
    if run_date is None:
        day = latest_complete_date(config, schedule, moment)
    else:
        day = parse_run_date(run_date, config.zone, option="--date")
    window = window_for(day, config.zone)
    if window.end.astimezone(UTC) > moment:
        raise ConfigError(
            f"--date {day}: its window ends at {window.end.isoformat()}, in the future; a "
            "trigger runs a complete day (the schedule runs this one once it ends)",
            field="date",
        )
    tick = Tick(window.start.astimezone(UTC), window.start, day, window)
    key = manual_key(name)
    spec = run_spec(
        config, schedule, tick, kind=MANUAL, batch=f"{MANUAL}:{name}:{day}", schedule_key=key
    )
    own = store is None
    store = store or open_store(config.state_url)
    try:
        runs = store.scheduled_runs
        created = runs.create([spec], reason=f"triggered by hand (schedule {name})")
        run = runs.get(created[0]) if created else runs.get_by_tick(config.pipeline, key, spec.tick)
        if run is None:  # a purge between the two statements
            raise StateError(f"the triggered run of {name} {day} is gone (purged?); try again")
        if run.state == SCHEDULED:
            # queued here; a trigger killed before this left it SCHEDULED, and the next
            # trigger of the date (or a scheduler's pass) queues it
            queue_runs(store, [run], reason="triggered by hand")
            run = runs.get(run.id) or run
        paused = runs.cursor_row(config.pipeline, name)
    finally:
        if own:
            store.close()
    log.info(
        "schedule %s/%s triggered for %s: run %s (%s)",
        config.pipeline,
        name,
        day,
        run.id,
        "queued" if created else f"exists, {run.state}",
    )
    return TriggerReport(run, bool(created), paused is not None and paused.paused)


def latest_complete_date(config: Config, schedule: ScheduleConfig, at: datetime) -> date:
    """The run date of the schedule's latest tick at or before `at` whose window has
    ended: what its last tick processed (or, for a `same_day` window still open, the
    tick before)."""
    calc = calculator(config, schedule)
    for days in LOOKBACK_DAYS:
        done = [
            t.run_date
            for t in calc.ticks(at - timedelta(days=days), until=at)
            if t.window.end <= at
        ]
        if done:
            return max(done)
    raise ConfigError(
        f"schedule {schedule.name}: no tick in the last {LOOKBACK_DAYS[-1]} days processed "
        "a complete window; give --date",
        field="date",
    )


def _policy_text(schedule: ScheduleConfig) -> str:
    policy = schedule.catch_up_policy
    return f"{{max: {policy}}}" if isinstance(policy, int) else str(policy)
