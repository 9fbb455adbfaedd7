"""The schedule step's public API: the scheduler, workers, backfills, previews, tenant
status and the config check, as functions that take configs, like the other steps.

The seed's managers, which take an open state store, are `managers.py`'s.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from time import monotonic
from typing import Any
from zoneinfo import ZoneInfo

from onceflow.clock import now, now_iso
from onceflow.config import (
    Config,
    ScheduleConfig,
    as_config,
    require_tables,
)
from onceflow.errors import ConfigError, StateError, TransitionError
from onceflow.rules import quarantines_rows
from onceflow.schedule.cron import ScheduleCalculator, Tick, dst_changes, fires_every_day
from onceflow.schedule.runs import check_tenant, lease_judged
from onceflow.schedule.scheduler import (
    DEFAULT_GRACE,
    PassReport,
    Scheduler,
    calculator,
    callers_job,
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
from onceflow.state import ScheduledRunRecord, Store, TenantQueueStatus, open_store
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
