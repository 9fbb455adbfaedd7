"""The schedule step's public API: the scheduler, workers, backfills, previews and status,
and the seed's four parts under their own names:

    PipelineStateManager   run state: create, transition, query scheduled runs
    QueueManager           the queue: enqueue, dequeue (claim), mark completed/failed
    ScheduleCalculator     schedule calculation (onceflow.schedule.cron)
    RetryManager           retry policy: should_retry, calculate_retry_time, schedule_retry

Each takes an open state store; the functions below take configs, like the other steps.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import monotonic
from typing import Any, overload
from uuid import UUID
from zoneinfo import ZoneInfo

from onceflow.clock import now, now_iso
from onceflow.config import (
    Config,
    ScheduleConfig,
    ScheduleRetryConfig,
    as_config,
    require_tables,
)
from onceflow.errors import (
    ConfigError,
    LeaseLostError,
    StateError,
    TransitionError,
    error_names,
    names_of,
)
from onceflow.redact import redact
from onceflow.rules import quarantines_rows
from onceflow.schedule.cron import ScheduleCalculator, Tick, dst_changes, fires_every_day
from onceflow.schedule.retry import RetryPolicy, error_type_of, failures_since_reprocess
from onceflow.schedule.runs import check_tenant, lease_judged
from onceflow.schedule.scheduler import (
    DEFAULT_GRACE,
    PassReport,
    Scheduler,
    calculator,
    callers_job,
    cancel_run,
    cursor_start,
    enqueue_run,
    keep_by_policy,
    next_tick_of,
    queue_runs,
    run_spec,
    shared_store,
    shared_url,
)
from onceflow.schedule.worker import OUTAGE_SECONDS, Worker, WorkerReport
from onceflow.state import (
    RUN_STATES,
    Job,
    JobSpec,
    RunSpec,
    ScheduledRunRecord,
    Store,
    TenantQueueStatus,
    open_store,
)
from onceflow.state.queue import CLAIMED as QUEUE_CLAIMED
from onceflow.state.scheduled_runs import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    SCHEDULED,
    TransitionRecord,
)
from onceflow.windows import parse_run_date, window_for

log = logging.getLogger(__name__)

# A retry policy as callers hold one: onceflow's, a schedule's `retry:` section, or the
# seed's mapping ({"max_retries": 3, "backoff_multiplier": 2, "retry_on_errors": [...]}).
RetryConfigLike = RetryPolicy | ScheduleRetryConfig | Mapping[str, Any]

BACKFILL = "backfill"
REPROCESS = ("none", "failed", "all")


# =========================================================================== functions


def run_scheduler(
    configs: Sequence[Config],
    *,
    once: bool = False,
    interval: float = 5.0,
    stop: threading.Event | None = None,
    store: Store | None = None,
) -> PassReport:
    """Turn due ticks into queued runs: one pass with `once`, else until `stop` is set."""
    scheduler = Scheduler(configs, store)
    if once:
        return scheduler.run_once()
    return scheduler.run_forever(stop or threading.Event(), interval=interval)


def run_worker(
    configs: Sequence[Config],
    *,
    concurrency: int = 1,
    lease_seconds: float = 30.0,
    until_idle: bool = False,
    max_jobs: int | None = None,
    stop: threading.Event | None = None,
    store: Store | None = None,
) -> WorkerReport:
    """Run queued runs of these pipelines until `stop` is set (or idle, with `until_idle`)."""
    worker = Worker(configs, store, concurrency=concurrency, lease_seconds=lease_seconds)
    return worker.run(stop, until_idle=until_idle, max_jobs=max_jobs)


def up(
    configs: Sequence[Config],
    *,
    concurrency: int = 2,
    lease_seconds: float = 30.0,
    until_idle: bool = False,
    interval: float = 5.0,
    stop: threading.Event | None = None,
    store: Store | None = None,
) -> dict[str, Any]:
    """A scheduler and workers in one process (the single-machine default). With
    `until_idle`, stop once every due tick is queued and nothing is queued or running."""
    stop = stop or threading.Event()
    with ExitStack() as owned:
        if store is None:  # opened here (when reachable), so closed here
            store = owned.enter_context(_store_when_reachable(configs, stop, interval, until_idle))
        scheduler = Scheduler(configs, store)
        total = scheduler.run_once()  # due ticks (a catch-up) are queued before workers look

        stopped_by: list[StateError] = []

        def passes() -> None:
            # the summary counts every pass, not the first alone (a long `up` records most
            # of its ticks later)
            try:
                total.add(scheduler.run_forever(stop, interval=interval))
            except StateError as error:  # a newer onceflow migrated the store: stop it all
                stopped_by.append(error)
                stop.set()

        thread = threading.Thread(target=passes, daemon=True)
        thread.start()
        worker = Worker(configs, store, concurrency=concurrency, lease_seconds=lease_seconds)

        told: set[str] = set()

        def nothing_due() -> bool:
            # a due run the scheduler cannot queue (a bad row) would keep it busy forever:
            # it is reported instead, as `scheduler --once` does
            if [
                r
                for r in store.scheduled_runs.due(now_iso())
                if r.pipeline in scheduler.pipelines and r.id not in scheduler.unqueueable
            ]:
                return False
            # a PENDING run with no job is queued by a pass once its grace is over (its
            # caller may be about to queue it): stopping first left it unrun, with exit 0
            waiting = [
                r
                for r in store.scheduled_runs.orphans()
                if r.pipeline in scheduler.pipelines and callers_job(store, r) is None
            ]
            for run in waiting:
                if run.id not in told:
                    told.add(run.id)
                    log.info(
                        "run %s (%s %s) is PENDING with no job: waiting up to %ds for its "
                        "caller to queue one, then a scheduler pass queues it",
                        run.id,
                        run.pipeline,
                        run.run_date,
                        scheduler.orphan_grace.total_seconds(),
                    )
            return not waiting

        try:
            report = worker.run(stop, until_idle=until_idle, idle_check=nothing_due)
        finally:
            stop.set()
            thread.join(timeout=30)
        if stopped_by:
            raise stopped_by[0]
        # a run failed by a scheduler pass (its worker lost once too often) is a failure of
        # this process as much as one its worker recorded
        report.failed += len(total.lost)
        report.failures += total.lost
        return {
            "scheduler": {**total.as_dict(), "skipped": scheduler.skipped},
            "worker": report.as_dict(),
        }


def _store_when_reachable(
    configs: Sequence[Config], stop: threading.Event, interval: float, until_idle: bool
) -> Store:
    """The shared store, waited for as a running `up` waits out an outage (one line every
    `interval` s), as `scheduler` and `worker` wait at start. A store that cannot be (a
    database or role that does not exist, a newer schema) raises at once, and with
    `until_idle` one away for OUTAGE_SECONDS does, as `worker --until-idle` gives up."""
    url = shared_url(list(configs))
    since = monotonic()
    while True:
        try:
            return open_store(url)
        except StateError as error:
            waited = monotonic() - since
            if error.permanent or stop.is_set() or (until_idle and waited >= OUTAGE_SECONDS):
                raise
            log.warning("up: the state store is away (%s); retrying in %.0fs", error, interval)
            stop.wait(interval)


def still_queued(configs: Sequence[Config], store: Store | None = None) -> int:
    """How many runs of the configs' pipelines are still to run (SCHEDULED or PENDING):
    what an interrupted `up` or `worker` leaves for the next one."""
    store = store or shared_store(list(configs))
    total = 0
    for config in configs:
        counts = store.scheduled_runs.counts(pipeline=config.pipeline)
        total += counts.get(SCHEDULED, 0) + counts.get(PENDING, 0)
    return total


def preview(
    config: Config, name: str, *, start: datetime | str | None = None, count: int = 10
) -> list[Tick]:
    """The next `count` ticks of schedule `name` after `start` (default now): local time,
    UTC instant and window, so that DST changes can be seen before they happen."""
    schedule = config.schedule(name)
    moment = _instant(start, config, schedule) if start is not None else now()
    return calculator(config, schedule).preview(moment, count)


def coverage_gaps(config: Config, name: str | None = None) -> list[str]:
    """A warning per schedule (or schedule `name`) whose ticks leave days out while its
    tables include incremental ones: a tick processes one day's window (Airflow's data
    interval would span the time since the previous tick), so a weekly cron extracts one
    day in seven and the other six are never read. And one per schedule whose `start:`
    lies so far back that its catch-up policy (`latest` by default) would leave ticks
    since then out when a scheduler first sees it."""
    warnings = []
    for schedule in [config.schedule(name)] if name is not None else config.schedules:
        keys = schedule.tables or [t.key for t in config.tables]
        windowed = [k for k in keys if config.table(k).extract.mode == "incremental"]
        calc = calculator(config, schedule)
        skipped = _skipped_days(calc) if windowed else None
        if skipped is not None:
            first, then, change = skipped
            where = f" at the DST change of {change}" if change else ""
            backfill = (
                f"onceflow backfill --schedule {schedule.name} "
                f"--from {first + timedelta(days=1)} --to {then - timedelta(days=1)}"
            )
            # a cron that already names every day skips one only at a DST change: telling
            # it to "use a daily cron" (as the Nuuk midnight gap once did) is no help
            advice = (
                f"the cron already fires every day: backfill them ({backfill})"
                if fires_every_day(calc.cron)
                else f"use a daily cron, or backfill them ({backfill})"
            )
            warnings.append(
                f"schedule {schedule.name}: each tick processes one day, and its ticks skip "
                f"days{where} (the day of {first}, then {then}): the incremental table(s) "
                f"{', '.join(windowed)} never extract the days between; {advice}"
            )
        missed = _missed_since_start(config, schedule, windowed) if windowed else None
        if missed:
            warnings.append(missed)
    return warnings


#: How many of a schedule's next tick days, and how many of its zone's next DST changes,
#: `coverage_gaps` reads.
COVERAGE_DAYS = 15
COVERAGE_DST_CHANGES = 2


def _skipped_days(calc: ScheduleCalculator) -> tuple[date, date, str] | None:
    """The first two consecutive run dates of a schedule with days between them, and the
    DST change they straddle ("" for none), or None. Read over its next COVERAGE_DAYS tick
    days, then around each of its zone's next DST changes: a schedule whose ticks skip a
    day only there (its ticks all in a spring-forward gap) shows nothing in the days
    after now, and would lose that day in silence."""
    at = now()
    spans = [(at, COVERAGE_DAYS, "")]
    for change in dst_changes(calc.zone, at, COVERAGE_DST_CHANGES):
        local = change.astimezone(calc.zone)
        spans.append((change - timedelta(days=2), 5, f"{local.date()} in {calc.zone.key}"))
    for start, days, where in spans:
        dates = calc.run_dates(start, days)
        for a, b in itertools.pairwise(dates):
            if (b - a).days > 1:
                return a, b, where
    return None


def check_config(config: Config | str | Path | Mapping[str, Any] | None = None) -> list[str]:
    """`onceflow check`: validate a config (a Config, the path of an onceflow.yml, default
    ./onceflow.yml, or its mapping) without connecting to any source. Raises ConfigError
    on what `check` refuses: a bad field or reference, no tables, a source whose `${VAR}`
    is not set or whose driver is not installed. Returns the warnings it prints: a rule
    that cannot mean what it says (`onceflow.validate.rule_warnings`: uniqueness on
    an scd2 table's key, which every closed version repeats); a table with `quarantine:
    true` none of whose rules could ever quarantine a row (`quarantine_warnings`); a
    schedule whose ticks leave days out, or whose past `start:` its catch-up policy would
    not run (`coverage_gaps`). A table or column missing at the source is found by its
    extraction, not here."""
    from onceflow.pipeline import config_warnings

    cfg = require_tables(as_config(config))
    cfg.check_sources()
    return (
        config_warnings(cfg)
        + quarantine_warnings(cfg)
        + (coverage_gaps(cfg) if cfg.schedules else [])
    )


def quarantine_warnings(config: Config) -> list[str]:
    """`check`'s warning for each table with `quarantine: true` none of whose rules could
    ever put a row in it (`rules.quarantines_rows`): valid, but a no-op most likely not
    meant (a `warn` rule, or uniqueness alone, quarantines nothing)."""
    return [
        f"table {table.key}: quarantine: true, but none of its rules is a row-level "
        "error-severity post-load rule (completeness, range, allowed_values, regex, "
        "length, sql_predicate), so its quarantine table stays empty; add one, or drop "
        "`quarantine: true`"
        for table in config.tables
        if table.quarantine and not any(quarantines_rows(r) for r in table.rules)
    ]


#: How many ticks since a past `start:` `check` counts at most.
START_TICKS = 5000


def _missed_since_start(
    config: Config, schedule: ScheduleConfig, windowed: Sequence[str]
) -> str | None:
    """What a schedule's first pass would leave out of the ticks since its past `start:`
    by its catch-up policy, or None. Read from the config alone: a scheduler that has
    already passed since `start:` left them out then (and said so)."""
    policy = schedule.catch_up_policy
    if schedule.start is None or policy == "all":
        return None
    at = now()
    after = datetime.fromisoformat(cursor_start(schedule, at))
    # counted up to a bound: `check` must stay quick (a minutely cron: 5 s per 100 000)
    due = list(calculator(config, schedule).ticks(after, until=at, limit=START_TICKS + 1))
    kept = keep_by_policy(due, policy, at, DEFAULT_GRACE)
    left = [t for t in due if t not in kept]
    if not left:
        return None
    first, last = left[0].run_date.isoformat(), left[-1].run_date.isoformat()
    shown = f"{{max: {policy}}}" if isinstance(policy, int) else policy
    if len(due) > START_TICKS:
        return (
            f"schedule {schedule.name}: start: {schedule.start.isoformat()} is past and "
            f"catch_up is {shown}: unless a scheduler already ran it, its first pass leaves "
            f"out more than {START_TICKS} ticks since, and the incremental table(s) "
            f"{', '.join(windowed)} never extract their run dates from {first}; set "
            "catch_up: all to run them, or a later start:"
        )
    return (
        f"schedule {schedule.name}: start: {schedule.start.isoformat()} is past and catch_up "
        f"is {shown}: unless a scheduler already ran it, its first pass records "
        f"{len(kept)} of the {len(due)} ticks since, and the incremental table(s) "
        f"{', '.join(windowed)} never extract run dates {first} .. {last}; set "
        f"catch_up: all to run them, or onceflow backfill --schedule {schedule.name} "
        f"--from {first} --to {last}"
    )


def _instant(value: datetime | str, config: Config, schedule: ScheduleConfig) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(
                f"--from: invalid time {value!r}; expected ISO 8601, e.g. 2025-03-08 or "
                "2025-03-08T12:00:00-05:00",
                field="from",
            ) from None
    if moment.tzinfo is None:
        moment = _local_instant(moment, config.schedule_zone(schedule))
    return moment


def _local_instant(naive: datetime, zone: ZoneInfo) -> datetime:
    """A local wall-clock time as an instant. A time in a spring-forward gap (02:30 in New
    York on 2025-03-09) does not exist: the wall clock jumps from the gap's start to its
    end, so every time after it is at or after the end (03:00 EDT), as a fixed-time tick
    in the gap fires at the end. It is taken as the instant just before the end, so that
    what is listed after it starts with a tick at the end itself (`datetime` alone would
    read 02:30 with the offset before the change, 03:30 EDT, and skip the 03:00 tick)."""
    aware = naive.replace(tzinfo=zone)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive:
        return aware
    moved = naive.replace(second=0, microsecond=0)  # gaps are whole minutes
    for _ in range(24 * 60):
        moved += timedelta(minutes=1)
        end = moved.replace(tzinfo=zone)
        if end.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == moved:
            # in UTC: aware arithmetic in the zone is wall-clock arithmetic, back in the gap
            return end.astimezone(UTC) - timedelta(microseconds=1)
    return aware  # no zone has a day-long gap; kept as Python reads it


@dataclass
class BackfillReport:
    """What a backfill did, by data date."""

    pipeline: str
    created: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "pipeline": self.pipeline,
            "created": self.created,
            "requeued": self.requeued,
            "unchanged": self.unchanged,
        }


def backfill(
    config: Config,
    start: str | date,
    end: str | date,
    *,
    schedule: str | None = None,
    reprocess: str = "none",
    store: Store | None = None,
) -> BackfillReport:
    """Queue one run per data date from `start` to `end` inclusive, idempotently: a date
    already backfilled is left alone, unless `reprocess` is `failed` (failed dates are
    queued again) or `all` (every date not queued or running is run again, re-extracted,
    the ones recorded by this call included).

    Settings (tables, tenant, priority, retry, max_runtime) come from `schedule`, or the
    config's only schedule, or the defaults when it has none; with several, `schedule`
    must name one (ConfigError). Backfill runs form their own sequence
    (schedule `backfill`): a table loads their windows in date order.
    """
    if reprocess not in REPROCESS:
        raise ConfigError(
            f"--reprocess: expected none, failed or all, got {reprocess!r}", field="reprocess"
        )
    first = parse_run_date(start, config.zone, option="--from")
    last = parse_run_date(end, config.zone, option="--to")
    if last < first:
        raise ConfigError(f"--to {last} is before --from {first}", field="to")
    if (last - first).days > 36_600:
        raise ConfigError("--from/--to: at most 100 years at once", field="from")
    ends = window_for(last, config.zone).end
    if ends.astimezone(UTC) > now():
        raise ConfigError(
            f"--to {last}: its window ends at {ends.isoformat()}, in the future; a backfill "
            "runs complete days (the schedule runs the others once they end)",
            field="to",
        )
    settings = _backfill_settings(config, schedule)
    store = store or open_store(config.state_url)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    batch = f"backfill:{first}..{last}"
    specs = []
    for day in days:
        window = window_for(day, config.zone)
        tick = Tick(window.start.astimezone(UTC), window.start, day, window)
        specs.append(
            run_spec(
                config,
                settings,
                tick,
                kind=BACKFILL,
                batch=batch,
                schedule_key=BACKFILL,
                # `all` re-extracts every date, the ones backfilled for the first time too
                # (a date the nightly schedule ran is skipped as extracted otherwise)
                force_reprocess=reprocess == "all",
            )
        )
    report = BackfillReport(config.pipeline)
    runs = store.scheduled_runs
    for lo in range(0, len(specs), 500):
        created = set(runs.create(specs[lo : lo + 500], reason=f"backfill {first}..{last}"))
        # queued in date order: FIFO then hands the earliest windows out first
        new_runs = sorted(
            (r for r in (runs.get(i) for i in created) if r is not None), key=lambda r: r.run_date
        )
        queue_runs(store, new_runs, reason=f"backfill {first}..{last}")
        report.created += sorted(r.run_date for r in new_runs)
    wanted = {FAILED} if reprocess == "failed" else {FAILED, COMPLETED, CANCELLED}
    existing = runs.by_dates(config.pipeline, BACKFILL, [d.isoformat() for d in days])
    for run in sorted(existing, key=lambda r: r.run_date):
        if run.run_date in report.created:
            continue
        if reprocess == "none" or run.state not in wanted:
            report.unchanged.append(run.run_date)
            continue
        try:
            with store.transaction() as tx:
                enqueue_run(
                    store,
                    run,
                    run.state,
                    tx=tx,
                    reason=f"reprocess ({reprocess}) by backfill {first}..{last}",
                    values={"force_reprocess": int(reprocess == "all"), "error": None},
                )
            report.requeued.append(run.run_date)
        except TransitionError:
            report.unchanged.append(run.run_date)  # its state moved meanwhile
    log.info(
        "backfill %s %s..%s: %d queued, %d requeued, %d unchanged",
        config.pipeline,
        first,
        last,
        len(report.created),
        len(report.requeued),
        len(report.unchanged),
    )
    return report


def _backfill_settings(config: Config, name: str | None) -> ScheduleConfig:
    if name is not None:
        return config.schedule(name)
    if len(config.schedules) == 1:
        return config.schedules[0]
    if config.schedules:
        # their tables, tenant, priority and retries may differ: picking built-in defaults
        # silently would backfill other tables, for another tenant, than any of them
        names = ", ".join(s.name for s in config.schedules)
        raise ConfigError(
            f"--schedule: the config has {len(config.schedules)} schedules ({names}); name "
            "the one whose tables, tenant, priority and retries the backfill takes",
            field="schedule",
        )
    return ScheduleConfig(name="defaults", cron="0 0 * * *")  # its settings only


def tenant_status(
    configs: Sequence[Config],
    tenant: str,
    *,
    store: Store | None = None,
    known_only: bool = True,
) -> dict[str, Any]:
    """The seed's per-customer summary: runs by state, last success, last failure, next
    run, runs waiting (and why), and the tenant's queue figures (zeros without jobs).

    A tenant with no run, no job and no schedule in `configs` is refused with
    ConfigError naming the known ones: a mistyped `--tenant` would otherwise look like
    a healthy tenant with nothing to do. `known_only=False` answers with zeros instead
    (the seed's `get_customer_pipeline_status`, for a customer onboarded before its
    first run)."""
    store = store or shared_store(list(configs))
    runs = store.scheduled_runs
    counts = runs.counts(tenant=tenant)
    queue = store.queue.status(tenant=tenant)
    if known_only and not any(counts.values()) and not queue:
        check_tenant(configs, tenant, store)
    ok = runs.last_in_state(COMPLETED, tenant=tenant)
    # the latest failure, also of a run retried since (to success or not): "last failure:
    # none" beside a queue line of "1 failed" read as a contradiction
    failure = runs.last_failure(tenant=tenant)
    # a paused schedule records no tick: its next one is no next run
    paused = {(r.pipeline, r.schedule) for r in runs.paused()}
    upcoming = [
        (next_tick_of(c, s, now()), c.pipeline, s.name)
        for c in configs
        for s in c.schedules
        if s.tenant == tenant and (c.pipeline, s.name) not in paused
    ]
    nxt = min(upcoming, key=lambda u: u[0].at) if upcoming else None
    queue = store.queue.status(tenant=tenant)
    waiting = [
        {"run_id": r.id, "pipeline": r.pipeline, "run_date": r.run_date, "waiting_on": r.waiting_on}
        for r in runs.find(state=PENDING, tenant=tenant)
        if r.waiting_on
    ]
    # RUNNING on a lease that ran out: its worker is gone; until a pass requeues it,
    # "1 running" alone would read as work going on
    stalled = [
        {"run_id": r.id, "pipeline": r.pipeline, "run_date": r.run_date, "since": expired}
        for r in runs.find(state=RUNNING, tenant=tenant)
        if (expired := lease_judged(store, r).lease_expired_at)
    ]
    return {
        "tenant": tenant,
        "counts": counts,
        "lease_expired": stalled,
        "last_success": _brief(ok),
        "last_failure": None if failure is None else _failure_brief(*failure),
        "next_run": None
        if nxt is None
        else {"pipeline": nxt[1], "schedule": nxt[2], **nxt[0].as_dict()},
        "waiting": waiting,
        "queue": vars(queue[0] if queue else TenantQueueStatus.empty(tenant)),
    }


def _failure_brief(run: ScheduledRunRecord, step: TransitionRecord) -> dict[str, Any]:
    """A failure as `_brief` says a run, from its transition: the run may have been
    retried since, its own error and end time being the retry's. Its error type is the
    run's while it is FAILED, or was recorded after this failure (a retried run keeps
    its last failure's type)."""
    brief = _brief(run) or {}
    return {
        **brief,
        "ended_at": step.at,
        "error": step.error,
        "error_type": run.error_type,
        "state_now": run.state,
    }


def _brief(run: ScheduledRunRecord | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "run_id": run.id,
        "pipeline": run.pipeline,
        "schedule": run.schedule,
        "run_date": run.run_date,
        "ended_at": run.ended_at,
        "error": run.error,
        "error_type": run.error_type,
    }


# ================================================================== the seed's classes


class PipelineStateManager:
    """Scheduled-run state (the seed's PipelineStateManager) over a state store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create_scheduled_run(
        self,
        tenant_id: str,
        pipeline: str,
        scheduled_time: datetime,
        *,
        schedule: str = "manual",
        run_date: date | None = None,
        zone: str = "UTC",
        priority: int = 5,
        retry: RetryPolicy | None = None,
    ) -> str:
        """Record a SCHEDULED run of `pipeline` at `scheduled_time` (its tick); returns
        its id. Idempotent: a run is unique per (pipeline, schedule, tick), so a second
        call for the same tick (a caller retrying after a timeout) records nothing and
        returns the existing run's id, whatever state it is in now, and the seed's
        `run_id = create_scheduled_run(...); transition_state(run_id, ...)` holds on a
        retry. A call whose tenant or window differ from the recorded run's is no retry
        but a clash: ConfigError, naming both, and nothing changes."""
        at = _aware(scheduled_time, "create_scheduled_run", "scheduled_time")
        day = run_date or (at.date() - timedelta(days=1))
        start, end = window_for(day, zone).iso()
        spec = RunSpec(
            pipeline=pipeline,
            schedule=schedule,
            tick=at.isoformat(),
            run_date=day.isoformat(),
            window_start=start,
            window_end=end,
            tenant=tenant_id,
            priority=priority,
            retry_policy=(retry or RetryPolicy()).to_json(),
            # its own batch, as a cron tick's: two runs recorded days apart are not one
            # catch-up, so a failure of one never blocks the other
            batch=at.isoformat(),
        )
        created = self.store.scheduled_runs.create([spec])
        if created:
            return created[0]
        # recorded before (this caller's earlier try, or another's): the unique key makes
        # the insert a no-op, and the row it kept is read back, committed by then
        run = self.store.scheduled_runs.get_by_tick(pipeline, schedule, spec.tick)
        if run is None:  # a row deleted by hand between the two statements
            raise StateError(
                f"scheduled run of {pipeline} {schedule} {spec.tick} was recorded and is "
                "gone (deleted by hand?); try again"
            )
        theirs = (run.tenant, run.run_date, run.window_start, run.window_end)
        if theirs != (spec.tenant, spec.run_date, spec.window_start, spec.window_end):
            raise ConfigError(
                f"create_scheduled_run: {pipeline} {schedule} {spec.tick} is already recorded "
                f"(run {run.id}) for tenant {run.tenant}, data date {run.run_date}; this call "
                f"asks tenant {spec.tenant}, data date {spec.run_date}: a run is unique per "
                "(pipeline, schedule, tick), give another schedule= for a second run",
                field="tenant_id" if run.tenant != spec.tenant else "run_date",
            )
        log.debug("create_scheduled_run: %s %s %s exists: run %s", pipeline, schedule, at, run.id)
        return run.id

    def transition_state(
        self,
        run_id: str,
        from_state: str,
        to_state: str,
        *,
        worker: str | None = None,
        error: str | None = None,
    ) -> None:
        """One conditional transition (TransitionError when illegal or stale), with what
        it means for the run's job in the same transaction:

        * to PENDING from FAILED, COMPLETED, CANCELLED or RUNNING (a requeue by hand):
          a job is queued for it (a job it still had is cancelled first), so a worker
          runs it. SCHEDULED -> PENDING queues none: the seed's caller enqueues its own
          job next (a scheduler serving the pipeline queues one for a PENDING run that
          has none);
        * to CANCELLED: its queued or claimed job is cancelled; a worker running it
          stops before its load and drops it (see docs/schedule.md, Cancelling)."""
        if to_state == PENDING and from_state != SCHEDULED:
            run = self._get(run_id)
            with self.store.transaction() as tx:
                enqueue_run(
                    self.store,
                    run,
                    from_state,
                    tx=tx,
                    reason="requeued by hand (transition_state)",
                    values={"waiting_on": None},
                )
            return
        if to_state == CANCELLED:
            cancel_run(self.store, run_id, from_state, worker=worker, error=error)
            return
        self.store.scheduled_runs.transition(
            run_id, from_state, to_state, worker=worker, error=error
        )

    def get_pipelines_by_state(
        self, state: str, tenant_id: str | None = None
    ) -> list[ScheduledRunRecord]:
        """Runs in `state` (of one tenant, when given)."""
        if state not in RUN_STATES:
            raise ValueError(f"unknown state {state!r}; states: {', '.join(RUN_STATES)}")
        return self.store.scheduled_runs.find(state=state, tenant=tenant_id)

    def get_yet_to_run_pipelines(self, at: datetime | None = None) -> list[ScheduledRunRecord]:
        """SCHEDULED runs whose tick is due (their job is not queued yet)."""
        moment = _aware(at, "get_yet_to_run_pipelines", "at") if at is not None else now()
        return self.store.scheduled_runs.due(moment.isoformat())

    def mark_as_running(
        self,
        run_id: str,
        pipeline_logging_id: str | UUID | None = None,
        *,
        worker: str | None = None,
    ) -> None:
        """PENDING -> RUNNING. `pipeline_logging_id` is the seed's second argument: the id
        under which the caller logs this execution, kept with the run and shown by
        `get_run_status`; `worker` names who runs it (keyword only)."""
        values: dict[str, Any] = {"started_at": now_iso()}
        if pipeline_logging_id is not None:
            values["pipeline_logging_id"] = str(pipeline_logging_id)
        self.store.scheduled_runs.transition(run_id, PENDING, RUNNING, worker=worker, values=values)

    def mark_as_completed(
        self,
        run_id: str,
        duration: float | timedelta | None = None,
        *,
        worker: str | None = None,
    ) -> None:
        """RUNNING -> COMPLETED. `duration` is the seed's second argument: how long the run
        took, in seconds (or a timedelta), as the caller measured it; without it, the time
        since the run was marked running. `worker` is keyword only."""
        run = self._get(run_id)
        ended = now()
        seconds = _seconds(duration) if duration is not None else _elapsed(run, ended)
        self.store.scheduled_runs.transition(
            run_id,
            RUNNING,
            COMPLETED,
            worker=worker,
            values={"ended_at": ended.isoformat(), "duration_seconds": seconds},
        )

    def mark_as_failed(
        self,
        run_id: str,
        error: str | BaseException,
        *,
        should_retry: bool = False,
        retry_at: datetime | None = None,
    ) -> bool:
        """RUNNING -> FAILED, keeping the error's type (an exception's class, or the
        `Name:` its message starts with) for the retry policy; with `should_retry`,
        FAILED -> PENDING and a job due at `retry_at` (default: the run's retry policy's
        next delay), if the run's policy allows one more: its failures within
        `max_retries` and its error type retryable. Otherwise the run stays FAILED and a
        warning says why. True when a retry was queued. `RetryManager.schedule_retry`
        may still move that retry."""
        run = self._get(run_id)
        ended = now()
        message = str(error) if isinstance(error, str) else f"{type(error).__name__}: {error}"
        if retry_at is not None:  # refused before anything is recorded
            retry_at = _aware(retry_at, "mark_as_failed", "retry_at")
        due: datetime | None = None
        if should_retry:
            # the caller's wish is bounded by the run's budget: the seed's pattern 2 calls
            # this on every failure, so an unbounded retry here would never stop
            policy = RetryPolicy.from_json(run.retry_policy)
            history = self.store.scheduled_runs.history(run_id)
            # judged by the type names it is recorded with (a message's `Name:`), as
            # RetryManager.should_retry judges the recorded run
            failures, due = policy.next_retry(history, _names(error) or error)
            if due is None:
                spent = failures > policy.max_retries
                log.warning(
                    "scheduled run %s failed and is not retried: %s",
                    run_id,
                    f"its retry budget is spent ({failures} failures, max_retries "
                    f"{policy.max_retries})"
                    if spent
                    else f"its error type ({error_type_of(error) or 'none named'}) is not "
                    "retried under its policy",
                )
        with self.store.transaction() as tx:
            self.store.scheduled_runs.transition(
                run_id,
                RUNNING,
                FAILED,
                error=message,
                values={
                    "ended_at": ended.isoformat(),
                    "duration_seconds": _elapsed(run, ended),
                    "error_type": error_type_of(error),
                    "error_types": json.dumps(_names(error)),
                    "next_attempt_at": None,  # a retry queued below sets its own
                },
                tx=tx,
            )
            if due is not None:
                due = retry_at or due
                enqueue_run(
                    self.store,
                    run,
                    FAILED,
                    tx=tx,
                    reason="retry",
                    run_after=due.timestamp(),
                    values={"next_attempt_at": due.isoformat()},
                )
        return due is not None

    def get_run_status(self, run_id: str) -> dict[str, Any]:
        """A run with its transition history; `duration_seconds` and
        `pipeline_logging_id` among its fields (None until recorded). The seed's names
        are there too, with the same values: `run_id` (`id`), `scheduled_time` (`tick`),
        `tenant_id` (`tenant`), `status` (`state`); `created_at` is one name for both."""
        run = self._get(run_id)
        return {
            **run.as_dict(),
            **run.seed_fields(),
            "history": [vars(h) for h in self.store.scheduled_runs.history(run_id)],
        }

    def get_customer_pipeline_status(
        self, tenant_id: str, configs: Sequence[Config] = ()
    ) -> dict[str, Any]:
        """The per-tenant summary (`onceflow status --tenant`); a tenant with no runs or
        jobs yet has zeros (a customer onboarded before its first run), where
        `tenant_status` refuses a tenant it does not know."""
        return tenant_status(configs, tenant_id, store=self.store, known_only=False)

    def _get(self, run_id: str) -> ScheduledRunRecord:
        run = self.store.scheduled_runs.get(run_id)
        if run is None:
            raise TransitionError(
                f"scheduled run {run_id} is not in the state store", run_id=run_id
            )
        return run


class QueueManager:
    """The job queue (the seed's QueueManager) over a state store."""

    def __init__(self, store: Store, *, lease_seconds: float = 30.0) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        # the claims this manager's `dequeue` made, by job id: the seed finishes a job by
        # its id (`mark_completed(queue_id)`), and only the claim's token may finish it
        # (the fence of Queue.complete). The async wrapper calls from worker threads.
        self._claims: dict[int, Job] = {}
        self._claims_lock = threading.Lock()

    def enqueue(
        self,
        tenant_id: str,
        pipeline: str | Mapping[str, Any],
        payload: Mapping[str, Any] | None = None,
        priority: int = 5,
        *,
        idempotency_key: str | None = None,
        row_id: str | None = None,
    ) -> int:
        """Add a job with a priority (1 highest .. 10); returns its id.

        `pipeline` is a pipeline name, or the seed's pipeline config (a mapping): its
        `pipeline` key names the pipeline (else `pipeline_name`, `name`, `config_id`, in
        that order) and the config is the job's payload, its secrets masked as everywhere
        in the state store. ConfigError when the config names no pipeline or holds a value
        JSON cannot keep.

        `idempotency_key` (or `row_id`, the seed's name: its `row_ids`) makes the enqueue
        idempotent: the tenant's first job with the key is its only one, and every later
        enqueue with it - a retry after a timeout - returns that job's id and queues
        nothing, whether the job is still queued or has run since. A key names one job
        for good: to queue the same work again, give a new key. ConfigError when the key
        was used for a different job (pipeline, priority or payload).
        """
        if row_id is not None and idempotency_key is not None and row_id != idempotency_key:
            raise TypeError("enqueue: row_id is the seed's name of idempotency_key; give one")
        key = idempotency_key if idempotency_key is not None else row_id
        body: dict[str, Any] | None
        if isinstance(pipeline, Mapping):
            if payload is not None:
                raise TypeError(
                    "enqueue(tenant_id, config): the config is the job's payload; "
                    "do not give a payload as well"
                )
            name = _pipeline_of(pipeline)
            body = _stored_config(pipeline)
        elif isinstance(pipeline, str):
            name, body = pipeline, (None if payload is None else dict(payload))
        else:
            raise TypeError(
                "enqueue: the second argument is a pipeline name or a pipeline config "
                f"mapping, got {type(pipeline).__name__}"
            )
        return self.store.queue.enqueue(
            JobSpec(
                pipeline=name,
                payload=body,
                priority=priority,
                tenant=tenant_id,
                idempotency_key=key,
            )
        )

    @overload
    def dequeue(
        self, worker_id: str, *, limit: None = None, pipelines: Sequence[str] | None = None
    ) -> Job | None: ...

    @overload
    def dequeue(
        self, worker_id: str, *, limit: int, pipelines: Sequence[str] | None = None
    ) -> list[Job]: ...

    def dequeue(
        self, worker_id: str, *, limit: int | None = None, pipelines: Sequence[str] | None = None
    ) -> Job | list[Job] | None:
        """Claim the next job atomically with a lease (heartbeat it with `heartbeat`): the
        job or None, as the seed's `item = dequeue(worker_id)`; with `limit`, a list of up
        to that many."""
        jobs = self.store.queue.claim(
            worker_id, limit=limit or 1, lease_seconds=self.lease_seconds, pipelines=pipelines
        )
        with self._claims_lock:
            self._claims.update((job.id, job) for job in jobs)
        if limit is not None:
            return jobs
        return jobs[0] if jobs else None

    def heartbeat(self, jobs: Sequence[Job]) -> set[int]:
        """Extend the leases; returns the ids whose lease was lost."""
        lost = self.store.queue.heartbeat(jobs, lease_seconds=self.lease_seconds)
        for job_id in lost:
            self._forget(job_id)
        return lost

    def mark_completed(self, job: Job | int) -> None:
        """Complete a claimed job: the item `dequeue` returned, or its id (the seed's
        `queue_id`) when this manager's `dequeue` claimed it (StateError otherwise).
        LeaseLostError when its lease was lost."""
        claim = self._claim_of(job, "mark_completed")
        with self._finishing(claim.id):
            self.store.queue.complete(claim.id, claim.token or "")

    def mark_failed(self, job: Job | int, error: str) -> None:
        """Fail a claimed job with an error message; the job is given as to
        `mark_completed` (LeaseLostError as there)."""
        claim = self._claim_of(job, "mark_failed")
        with self._finishing(claim.id):
            self.store.queue.fail(claim.id, claim.token or "", error)

    def _claim_of(self, job: Job | int, verb: str) -> Job:
        """The claim a job id or item stands for. Only a claim's token finishes its job,
        and this manager knows the tokens of its own claims only: an id claimed by another
        manager (another worker process) is refused, not finished with a token read
        from the store, which would defeat the fence against a lost lease."""
        if isinstance(job, Job):
            return job
        if isinstance(job, bool) or not isinstance(job, int):
            raise TypeError(
                f"{verb}: give the item dequeue returned or its queue id (an int), "
                f"got {type(job).__name__}"
            )
        with self._claims_lock:
            claim = self._claims.get(job)
        if claim is not None:
            return claim
        stored = self.store.queue.get(job)
        if stored is None:
            raise StateError(f"{verb}: there is no job {job} in the queue", job_id=job)
        if stored.state == QUEUE_CLAIMED:
            held = f"claimed by worker {stored.worker} through another QueueManager"
        else:
            held = f"{stored.state}, not claimed"
        raise StateError(
            f"{verb}: job {job} is {held}; a job is finished by the manager whose dequeue "
            "claimed it (give it the item dequeue returned, or its queue_id)",
            job_id=job,
        )

    @contextmanager
    def _finishing(self, job_id: int) -> Iterator[None]:
        """Forget a claim once it is finished or its lease is lost (it can do nothing
        more); a store that failed otherwise (unreachable) keeps it for a retry."""
        try:
            yield
        except LeaseLostError:
            self._forget(job_id)
            raise
        self._forget(job_id)

    def _forget(self, job_id: int) -> None:
        with self._claims_lock:
            self._claims.pop(job_id, None)

    def get_queue_length(self, tenant_id: str | None = None) -> int:
        """Jobs waiting in the queue."""
        return self.store.queue.length(tenant=tenant_id)

    def get_queue_status(self, tenant_id: str | None = None) -> list[TenantQueueStatus]:
        """Per tenant: counts and average/maximum waits."""
        return self.store.queue.status(tenant=tenant_id)


class RetryManager:
    """Retries of scheduled runs (the seed's RetryManager) over a state store.

    The seed passes a BigQuery client to `should_retry` and `schedule_retry`; onceflow
    keeps runs in its state store (this manager's `store`), so that argument is accepted
    for the seed's calls and not used. `retry_config` (a RetryPolicy, a schedule's
    `retry:` section or a mapping with the seed's keys) is the policy of the calls that
    are given none and name no run: `calculate_retry_time(attempt=1)`.
    """

    def __init__(self, store: Store, *, retry_config: RetryConfigLike | None = None) -> None:
        self.store = store
        self.default_policy = RetryPolicy.of(retry_config) if retry_config is not None else None

    @staticmethod
    def policy(config: ScheduleRetryConfig | None = None) -> RetryPolicy:
        """The policy of a `retry:` section (defaults without one)."""
        return RetryPolicy.from_config(config) if config is not None else RetryPolicy()

    def should_retry(
        self,
        run_id: str,
        retry_config: RetryConfigLike | BaseException | str | None = None,
        client: object = None,
        *,
        error: BaseException | str | None = None,
    ) -> bool:
        """Whether a failed run may be retried: its failures so far within `max_retries`,
        and its error's type retryable (`retry_on_errors`).

        The policy is `retry_config` (the seed's second argument), else the one stored
        with the run. `client` is the seed's BigQuery client: accepted, not used (see the
        class). The error is `error`, else the run's recorded error type. For onceflow's
        older call `should_retry(run_id, error)`, an exception or an error type name in
        second place is taken as the error. The run is FAILED, or PENDING with the retry
        `mark_as_failed(..., should_retry=True)` queued and not started yet (the seed
        calls this after that); a False for such a run is logged, as its retry stays
        queued until cancelled."""
        del client  # the seed's BigQuery client: the state store replaces it
        if isinstance(retry_config, BaseException | str):
            error, retry_config = retry_config, None
        run, queued = self._retryable(run_id)
        policy = self._policy(run, retry_config)
        failures = failures_since_reprocess(self.store.scheduled_runs.history(run_id))
        kind: BaseException | str | tuple[str, ...]
        if error is not None:
            kind = error
        elif run.error_types:
            kind = run.error_names
        else:
            kind = run.error_type or _typed(run.error) or "Error"
        answer = policy.should_retry(max(1, failures), kind)
        if queued is not None and not answer:
            log.warning(
                "scheduled run %s: not retryable under this policy, but its retry is already "
                "queued (job %d, by mark_as_failed(should_retry=True)); cancel it with "
                "transition_state(run_id, 'PENDING', 'CANCELLED') if it must not run",
                run_id,
                queued.id,
            )
        return answer

    def calculate_retry_time(
        self,
        run_id: str | None = None,
        *,
        attempt: int | None = None,
        retry_config: RetryConfigLike | None = None,
    ) -> datetime:
        """When a retry is due, counted from now: retry number `attempt` (1 for the
        first: 1, 2, 4 ... minutes by default), else the failed run's next one.

        The policy is `retry_config`, else the run's stored one (with `run_id`), else this
        manager's `retry_config`, else the defaults. The seed's call is
        `calculate_retry_time(attempt=1)`."""
        if attempt is not None and attempt < 1:
            raise ValueError(f"attempt counts retries from 1, got {attempt}")
        if run_id is None:
            if attempt is None:
                raise TypeError("calculate_retry_time: give a run_id or attempt=")
            policy = (
                RetryPolicy.of(retry_config)
                if retry_config is not None
                else self.default_policy or RetryPolicy()
            )
            return policy.calculate_retry_time(attempt)
        run, _queued = self._retryable(run_id)
        if attempt is None:
            attempt = max(1, failures_since_reprocess(self.store.scheduled_runs.history(run_id)))
        return self._policy(run, retry_config).calculate_retry_time(attempt)

    def schedule_retry(self, run_id: str, retry_time: datetime, client: object = None) -> int:
        """Retry a failed run at `retry_time`, durably: FAILED -> PENDING with a job due
        then; returns the job id. A run whose retry `mark_as_failed(...,
        should_retry=True)` already queued keeps that one job, moved to `retry_time`.
        `client` is the seed's BigQuery client: accepted, not used (see the class)."""
        del client  # the seed's BigQuery client: the state store replaces it
        run, queued = self._retryable(run_id)
        due = _aware(retry_time, "schedule_retry", "retry_time")
        with self.store.transaction() as tx:
            if queued is not None:
                if not self.store.queue.reschedule(queued.id, due.timestamp(), tx=tx):
                    raise TransitionError(
                        f"scheduled run {run_id}: its retry (job {queued.id}) started "
                        "meanwhile; it is not moved",
                        run_id=run_id,
                    )
                self.store.scheduled_runs.set_next_attempt(run_id, due.isoformat(), tx=tx)
                return queued.id
            return enqueue_run(
                self.store,
                run,
                FAILED,
                tx=tx,
                reason="retry",
                run_after=due.timestamp(),
                values={"next_attempt_at": due.isoformat()},
            )

    def _policy(self, run: ScheduledRunRecord, config: RetryConfigLike | None) -> RetryPolicy:
        return (
            RetryPolicy.of(config)
            if config is not None
            else RetryPolicy.from_json(run.retry_policy)
        )

    def _retryable(self, run_id: str) -> tuple[ScheduledRunRecord, Job | None]:
        """The run, FAILED; or PENDING with its retry queued and not started (with that
        job). TransitionError otherwise."""
        run = self.store.scheduled_runs.get(run_id)
        if run is not None and run.state == FAILED:
            return run, None
        if run is not None and run.state == PENDING and run.next_attempt_at:
            job = self.store.queue.live_job_of_run(run_id)
            history = self.store.scheduled_runs.history(run_id)
            if job is not None and job.state == "queued" and history[-1].from_state == FAILED:
                return run, job
        state = run.state if run else "absent"
        raise TransitionError(
            f"scheduled run {run_id} is {state}, not FAILED (nor waiting for its retry)",
            run_id=run_id,
        )


# ============================================================================= helpers

# The keys that may name a pipeline in the seed's config, in the order they are tried:
# `config_id` last, as create_scheduled_run(tenant_id, config_id, ...) takes it for one.
PIPELINE_KEYS = ("pipeline", "pipeline_name", "name", "config_id")
# Keys whose values are secrets wherever they appear in a config stored as a payload.
_SECRET_KEY = re.compile(r"(?i)(password|passwd|pwd|secret|token|api_?key|private_?key|credential)")


def _pipeline_of(config: Mapping[str, Any]) -> str:
    for key in PIPELINE_KEYS:
        value = config.get(key)
        if isinstance(value, str) and value.strip():
            return value
    raise ConfigError(
        "enqueue(tenant_id, config): the config names no pipeline; give it a "
        f"{' / '.join(repr(k) for k in PIPELINE_KEYS)} key with the pipeline's name",
        field="config.pipeline",
    )


def _stored_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as JSON keeps it, secrets masked: a payload outlives the call in the
    state store, which never holds a secret (a worker takes credentials from its own
    config); dates become ISO text."""

    def plain(value: Any, where: str) -> Any:
        if isinstance(value, Mapping):
            return {
                str(k): "***"
                if _SECRET_KEY.search(str(k)) and v is not None
                else plain(v, f"{where}.{k}")
                for k, v in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, date | time):
            return value.isoformat()
        if value is None or isinstance(value, bool | int | float):
            return value
        raise ConfigError(
            f"enqueue(tenant_id, config): {where} is a {type(value).__name__}, which the "
            "queue cannot keep (JSON: mappings, lists, text, numbers, booleans, dates)",
            field=where,
        )

    return dict(plain(config, "config"))


def _seconds(duration: float | timedelta) -> float:
    if isinstance(duration, timedelta):
        seconds = duration.total_seconds()
    elif isinstance(duration, int | float) and not isinstance(duration, bool):
        seconds = float(duration)
    else:
        raise TypeError(
            "mark_as_completed(run_id, duration): duration is in seconds (a number or a "
            f"timedelta), got {duration!r}; give the worker as worker=..."
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be a finite number of seconds >= 0, got {duration!r}")
    return seconds


def _elapsed(run: ScheduledRunRecord, ended: datetime) -> float | None:
    """Seconds since the run was marked running (None when it never was)."""
    if not run.started_at:
        return None
    return round(max(0.0, (ended - datetime.fromisoformat(run.started_at)).total_seconds()), 3)


def _aware(value: object, call: str, name: str) -> datetime:
    """An aware datetime argument as its UTC instant. A naive one has no instant: Python
    would read it in the host's zone, so the same call recorded another tick on a server
    in Tokyo than on one in UTC. The seed's calls pass aware times (its
    `calculate_next_run` and `calculate_retry_time` return UTC instants)."""
    if not isinstance(value, datetime):
        raise TypeError(f"{call}: {name} is a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{call}: {name} {value.isoformat()} has no time zone; give an aware datetime "
            "(datetime(..., tzinfo=UTC), calculate_next_run(cron, zone), or "
            ".replace(tzinfo=ZoneInfo(...)))"
        )
    return value.astimezone(UTC)


def _typed(message: str | None) -> str | None:
    return error_type_of(message) if message else None


def _names(error: str | BaseException) -> list[str]:
    """Every type name of an error given as an exception or as a `Name: ...` message."""
    if isinstance(error, BaseException):
        return list(error_names(error))
    kind = error_type_of(error)
    return list(names_of(kind)) if kind else []
