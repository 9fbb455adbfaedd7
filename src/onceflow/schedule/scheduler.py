"""The scheduler: due ticks become scheduled runs, and due runs become queued jobs.

One pass, safe to run in any number of processes at once:

1. For each schedule, read its cursor (the last tick handled), compute the ticks due
   since then, apply the catch-up policy, and in one transaction move the cursor from
   the value read (a conditional update: a racing scheduler that moved it first makes
   this one record nothing and start over) and record the ticks as SCHEDULED runs
   (unique per (pipeline, schedule, tick): a tick recorded twice is one run). A paused
   schedule's cursor does not move (the conditional update requires it active): it
   records nothing, and the pass lists it in `PassReport.paused`.
2. Queue every SCHEDULED run whose tick is due: SCHEDULED -> PENDING and its job in one
   transaction. A scheduler killed between 1 and 2 left SCHEDULED runs; the next pass
   of any scheduler queues them (crash point `scheduler_after_tick`).
3. Requeue jobs whose lease expired (a killed or cut-off worker): RUNNING -> PENDING.
4. Fail runs RUNNING past their `max_runtime`, revoking their job's lease.

Catch-up: ticks older than `grace` are missed ticks; `none` drops them, `latest` keeps
the most recent due tick, `{max: N}` the N most recent (contiguous windows), `all`
every one. A schedule seen for the first time starts at `start:` when given, else now.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from onceflow.clock import now, now_iso
from onceflow.config import Config, ScheduleConfig
from onceflow.errors import ConfigError, StateError, TransitionError
from onceflow.faults import crashpoint
from onceflow.schedule.cron import ScheduleCalculator, Tick
from onceflow.schedule.retry import (
    WORKER_LOST,
    RetryPolicy,
    failures_since_reprocess,
    lost_since_reprocess,
)
from onceflow.state import Job, JobSpec, RunSpec, ScheduledRunRecord, Store, Tx, open_store
from onceflow.state.db import retry_conflicts
from onceflow.state.queue import CANCELLED as CANCELLED_JOB
from onceflow.state.scheduled_runs import (
    CANCELLED,
    FAILED,
    PENDING,
    RUNNING,
    SCHEDULED,
    CursorRecord,
)
from onceflow.state.store import SCHEMA_CHECK_SECONDS

log = logging.getLogger(__name__)

DEFAULT_GRACE = timedelta(seconds=60)
# How long a PENDING run may have no job before a pass queues one: the seed's pattern 1
# makes a run PENDING, then enqueues its own job, and a pass in between must not queue
# a second one
ORPHAN_GRACE = timedelta(seconds=60)
CHUNK = 500  # ticks per transaction: a long catch-up advances in steps other passes see


@dataclass
class PassReport:
    """What one scheduler pass did."""

    recorded: int = 0
    queued: int = 0
    requeued: int = 0
    stuck: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    #: What this pass skipped, one line each: a schedule it could not compute, a run it
    #: could not queue (a bad row). The other schedules and runs went on.
    errors: list[str] = field(default_factory=list)
    #: The paused schedules this pass recorded no tick for, one line each
    #: (`pipeline/schedule since 2026-11-30T13:05:32+00:00 (reason)`): said, not
    #: silently skipped.
    paused: list[str] = field(default_factory=list)
    #: Runs this pass failed because their worker was lost once more than their retry
    #: budget allows (`WorkerLostError`), one line each.
    lost: list[str] = field(default_factory=list)
    #: Missed ticks a schedule's catch-up policy (`latest`, `none`, `{max: N}`) did not
    #: record, per schedule: `pipeline`, `schedule`, `catch_up`, `count`, the first and
    #: last run date left out and the `backfill` command that runs them. Not a failure
    #: (the policy said so), but never silent: a skipped tick is a day not extracted.
    missed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def skipped_ticks(self) -> int:
        """How many missed ticks the catch-up policies left out."""
        return sum(int(m["count"]) for m in self.missed)

    def add(self, other: PassReport) -> None:
        """Sum another pass into this one (a schedule paused for many passes once)."""
        self.recorded += other.recorded
        self.queued += other.queued
        self.requeued += other.requeued
        self.stuck += other.stuck
        self.repaired += other.repaired
        self.errors += other.errors
        self.lost += other.lost
        self.paused += [p for p in other.paused if p not in self.paused]
        self.missed += other.missed

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**vars(self), "skipped_ticks": self.skipped_ticks}


def missed_line(missed: Mapping[str, Any]) -> str:
    """One line for a schedule's missed ticks left out by its catch-up policy."""
    count, first, last = missed["count"], missed["first_run_date"], missed["last_run_date"]
    dates = first if first == last else f"{first} .. {last}"
    return (
        f"{missed['pipeline']}/{missed['schedule']}: {count} missed tick(s) not run by "
        f"catch_up {missed['catch_up']} (run dates {dates}); to run them: "
        f"{missed['backfill']}"
    )


def calculator(config: Config, schedule: ScheduleConfig) -> ScheduleCalculator:
    """The tick calculator of a schedule (its zone; windows in the pipeline's zone)."""
    return ScheduleCalculator(
        schedule.cron,
        config.schedule_zone(schedule),
        window_days_before=schedule.window_days_before,
        window_zone=config.zone,
    )


def cursor_start(schedule: ScheduleConfig, at: datetime, grace: timedelta = DEFAULT_GRACE) -> str:
    """Where a schedule seen for the first time starts (its cursor's first value): just
    before its `start:` when given, else `grace` before `at`: a tick that recent is not
    missed (the catch-up rule), so a scheduler first started at 02:00:30 runs the 02:00
    tick, as one running since before would have."""
    first = (schedule.start - timedelta(seconds=1)) if schedule.start else at - grace
    return first.astimezone(UTC).isoformat()


def next_tick_of(config: Config, schedule: ScheduleConfig, at: datetime) -> Tick:
    """The schedule's next tick after `at`, never before its `start:` (no tick before it
    is ever recorded)."""
    if schedule.start is not None:
        at = max(at, schedule.start - timedelta(seconds=1))
    return calculator(config, schedule).next_tick(at)


def paused_line(row: CursorRecord) -> str:
    """How a pass and the CLI name a paused schedule."""
    why = f" ({row.pause_reason})" if row.pause_reason else ""
    return f"{row.pipeline}/{row.schedule} since {row.paused_at}{why}"


def run_spec(
    config: Config,
    schedule: ScheduleConfig,
    tick: Tick,
    *,
    kind: str = "scheduled",
    batch: str = "",
    schedule_key: str | None = None,
    force_reprocess: bool = False,
) -> RunSpec:
    """The scheduled run of a tick."""
    start, end = tick.window.iso()
    return RunSpec(
        pipeline=config.pipeline,
        schedule=schedule_key or schedule.name,
        tick=tick.at.isoformat(),
        run_date=tick.run_date.isoformat(),
        window_start=start,
        window_end=end,
        kind=kind,
        batch=batch or tick.at.isoformat(),
        tenant=schedule.tenant,
        priority=schedule.priority,
        tables=[config.table(t).key for t in schedule.tables] if schedule.tables else None,
        retry_policy=RetryPolicy.from_config(schedule.retry).to_json(),
        max_runtime_seconds=schedule.max_runtime_seconds,
        force_reprocess=force_reprocess,
    )


def keep_by_policy(
    ticks: list[Tick], policy: str | int, at: datetime, grace: timedelta
) -> list[Tick]:
    """The due ticks a catch-up policy runs (ticks in time order)."""
    if policy == "all":
        return ticks
    if policy == "none":
        return [t for t in ticks if at - t.at <= grace]
    if policy == "latest":
        return ticks[-1:]
    return ticks[-int(policy) :]


def shared_store(configs: Sequence[Config], *, read_only: bool = False) -> Store:
    """The one state store of several pipelines' configs (a scheduler or worker serves
    pipelines that share their state store); `read_only` for the calls that only read,
    which then work on a read-only store."""
    return open_store(shared_url(configs), read_only=read_only)


def shared_url(configs: Sequence[Config]) -> str:
    """The state URL the configs share; ConfigError when they do not share one."""
    if not configs:
        raise ConfigError("give at least one config (--config onceflow.yml)")
    urls = {c.state_url for c in configs}
    if len(urls) > 1:
        raise ConfigError(
            "--config: these configs keep their state in different stores; run one "
            "scheduler or worker per state store",
            field="state",
        )
    names = [c.pipeline for c in configs]
    if len(set(names)) != len(names):
        raise ConfigError("--config: two configs have the same pipeline name", field="pipeline")
    return configs[0].state_url


def job_of(run: ScheduledRunRecord, run_after: float | None = None) -> JobSpec:
    """The queue job of a scheduled run, due at `run_after` (default now) but never
    before its window ends: a window still open (`window: same_day`, a schedule zone
    ahead of the pipeline's) would only fail as partial, so its job waits for the end."""
    ends = datetime.fromisoformat(run.window_end).timestamp()
    if ends > time.time():
        run_after = max(run_after or 0.0, ends)
    return JobSpec(
        pipeline=run.pipeline,
        payload={"run_id": run.id},
        priority=run.priority,
        tenant=run.tenant,
        run_id=run.id,
        run_after=run_after,
    )


def enqueue_run(
    store: Store,
    run: ScheduledRunRecord,
    from_state: str,
    *,
    tx: Tx,
    reason: str,
    run_after: float | None = None,
    values: dict[str, Any] | None = None,
) -> int:
    """Move a run to PENDING and queue its job, in the caller's transaction. The
    conditional transition comes first: of two processes queueing the same run, the
    second gets TransitionError before it inserts a job. A job the run still has (a
    run marked running by hand while its job waited) is cancelled: one live job a run."""
    store.scheduled_runs.transition(
        run.id, from_state, PENDING, reason=reason, values=values or {}, tx=tx
    )
    old = store.queue.live_job_of_run(run.id, tx=tx)
    if old is not None:
        store.queue.revoke(old.id, f"superseded: {reason}", state=CANCELLED_JOB, tx=tx)
    job_id = store.queue.enqueue(job_of(run, run_after), tx=tx)
    store.scheduled_runs.set_job(run.id, job_id, tx=tx)
    return job_id


def enqueue_retry(
    store: Store, run: ScheduledRunRecord, *, tx: Tx, failures: int, of: int, due: datetime
) -> int:
    """Queue a FAILED run's retry number `failures` (of `of`), due at `due`."""
    return enqueue_run(
        store,
        run,
        FAILED,
        tx=tx,
        reason=f"retry {failures} of {of}",
        run_after=due.timestamp(),
        values={"next_attempt_at": due.isoformat()},
    )


def wake_next_waiting(store: Store, run: ScheduledRunRecord, tx: Tx) -> None:
    """Make the next later window waiting for `run` (deferred: `waiting_on` set) due now,
    in the transaction that ends `run` (completed, failed, cancelled). Waiting jobs poll
    with a backoff of up to two minutes, so this is what keeps a backfill moving."""
    waiting = store.scheduled_runs.next_waiting(run, tx=tx)
    if waiting is not None and waiting.job_id is not None:
        store.queue.reschedule(waiting.job_id, time.time(), tx=tx)


def cancel_run(
    store: Store,
    run_id: str,
    from_state: str,
    *,
    worker: str | None = None,
    error: str | None = None,
) -> None:
    """Cancel a run and end its job in one transaction: a queued job is never claimed,
    and a claimed one's token is fenced, so its worker records nothing more for it and
    drops it before its load (what it already committed stays: see the docs).

    A cancel replaces the run's outcome: the error and error types of a failure it
    cancels are cleared (its history keeps them), and `error` is the cancel's note, if
    any; else `runs list` would show a cancelled run as `BlockedRunError: cancelled by
    hand`, and the retry policy would judge it by a failure it no longer has."""
    with store.transaction() as tx:
        store.scheduled_runs.transition(
            run_id,
            from_state,
            CANCELLED,
            worker=worker,
            error=error,  # redacted, and kept in the history, when given
            reason="cancelled",
            values={
                "ended_at": now_iso(),
                "waiting_on": None,
                "error": None,
                "error_type": None,
                "error_types": None,
            },
            tx=tx,
        )
        job = store.queue.live_job_of_run(run_id, tx=tx)
        if job is not None:
            store.queue.revoke(job.id, "its run was cancelled", state=CANCELLED_JOB, tx=tx)
        run = store.scheduled_runs.get(run_id, tx=tx)
        if run is not None:
            # a later window waiting for this one goes on now, not at its next poll
            wake_next_waiting(store, run, tx)
    log.info("scheduled run %s: cancelled (was %s)", run_id, from_state)


def queue_runs(
    store: Store,
    runs: Sequence[ScheduledRunRecord],
    *,
    reason: str = "due",
    skipped: list[str] | None = None,
    skipped_ids: set[str] | None = None,
) -> int:
    """SCHEDULED -> PENDING with a queued job, 200 runs per transaction (one conditional
    update each); runs another process queued first are left out. A run whose job
    cannot be made (a bad priority or tenant written around the API) is left SCHEDULED
    and described in `skipped`: one bad row does not hold the others back. Returns how
    many this call queued."""
    good: list[tuple[ScheduledRunRecord, JobSpec]] = []
    for run in runs:
        try:
            good.append((run, job_of(run)))
        except ValueError as error:
            if skipped_ids is not None:
                skipped_ids.add(run.id)
            if skipped is not None:
                skipped.append(
                    f"scheduled run {run.id} ({run.pipeline} {run.schedule} {run.tick}) "
                    f"cannot be queued: {error}"
                )
    queued = 0
    for lo in range(0, len(good), 200):
        chunk = {r.id: job for r, job in good[lo : lo + 200]}

        def move(chunk: dict[str, JobSpec] = chunk) -> list[str]:
            with store.transaction() as tx:
                moved = set(
                    store.scheduled_runs.transition_many(
                        list(chunk), SCHEDULED, PENDING, reason=reason, tx=tx
                    )
                )
                # in the runs' order (FIFO within a priority: earlier ticks first); the
                # worker records the job id when it starts the run
                store.queue.enqueue_many([job for i, job in chunk.items() if i in moved], tx=tx)
            return list(moved)

        # a deadlock with another scheduler's pass rolled the chunk back: do it again
        queued += len(retry_conflicts(move))
    return queued


def requeue_expired(store: Store, failed: list[str] | None = None) -> int:
    """Jobs whose lease expired go back to the queue and their runs RUNNING -> PENDING,
    in one transaction; the old holders' tokens are fenced. Returns how many.

    A lost worker is a failed attempt (`WorkerLostError`), spent against the run's retry
    budget like any failure, whatever its `retry_on` (the run did not raise it: its worker
    died, most often killed out of memory): while the budget allows, the run is requeued
    at once (its lease already made it wait); once spent, the run is FAILED, its job
    ended, instead of being requeued for ever with a worker that dies every time; a line
    for each such run is added to `failed`."""

    def requeue() -> tuple[list[Job], list[str | None]]:
        with store.transaction() as tx:
            jobs = store.queue.requeue_expired(tx=tx)
            lost = []
            for job in jobs:
                if job.run_id is None:
                    continue
                run = store.scheduled_runs.get(job.run_id, tx=tx)
                if run is not None and run.state == RUNNING:
                    lost.append(_worker_lost(store, run, job.id, tx=tx))
        return jobs, lost

    jobs, lost = retry_conflicts(requeue)
    for job in jobs:
        log.warning("job %s (run %s): lease expired; back in the queue", job.id, job.run_id)
    for line in lost:
        if line:
            log.error("%s", line)
            if failed is not None:
                failed.append(line)
    return len(jobs)


WORKER_LOST_NAMES = (WORKER_LOST, "OnceflowError", "Exception")


def _worker_lost(store: Store, run: ScheduledRunRecord, job_id: int, *, tx: Tx) -> str | None:
    """Record a RUNNING run's lost worker: requeued while its retry budget allows, else
    FAILED (returns what to log then)."""
    history = store.scheduled_runs.history(run.id, tx=tx)
    policy = RetryPolicy.from_json(run.retry_policy)
    failures = failures_since_reprocess(history) + 1
    times = lost_since_reprocess(history) + 1
    what = f"lease of job {job_id} expired (worker gone or cut off)"
    values: dict[str, Any] = {
        "worker": None,
        "error_type": WORKER_LOST,
        "error_types": json.dumps(WORKER_LOST_NAMES),
    }
    if failures <= policy.max_retries:
        store.scheduled_runs.transition(
            run.id,
            RUNNING,
            PENDING,
            error=f"{WORKER_LOST}: {what}",
            reason=f"{what}; requeued (attempt {failures} of {policy.max_retries + 1} lost)",
            values=values,
            tx=tx,
        )
        return None
    message = (
        f"{WORKER_LOST}: its worker was lost {times} time(s): its job's lease expired each "
        "time (likely killed for lack of memory, crashed, or cut off from the database); "
        f"its retries are spent (max_retries {policy.max_retries}), so it is not requeued: "
        f"onceflow runs retry {run.id} runs it again"
    )
    store.scheduled_runs.transition(
        run.id,
        RUNNING,
        FAILED,
        error=message,
        reason=f"{what}; retries spent",
        values={**values, "ended_at": now_iso(), "next_attempt_at": None},
        tx=tx,
    )
    store.queue.revoke(job_id, message, tx=tx)
    # the next window waiting for this one learns it is blocked now, not at its next poll
    wake_next_waiting(store, run, tx)
    return f"{run.pipeline} {run.schedule} {run.run_date} (run {run.id}): {message}"


STUCK_NAMES = ("StuckRunError", "OnceflowError", "Exception")


def fail_stuck(store: Store, pipelines: Sequence[str] | None = None) -> list[str]:
    """Runs RUNNING past their max_runtime: reported, failed, and their job's lease
    revoked (the worker's later writes are refused); then retried like any failure when
    the run's policy says so (StuckRunError). Returns their ids.

    A retry cannot overlap the stuck attempt's writes: that worker still holds the run's
    lock while it runs, so the retry waits for the lock (deferred) until it ends."""
    moment = now()
    stuck = []
    for run in store.scheduled_runs.find(state=RUNNING, limit=100_000):
        if pipelines is not None and run.pipeline not in pipelines:
            continue
        if not run.started_at or run.max_runtime_seconds is None:
            continue
        ran = (moment - datetime.fromisoformat(run.started_at)).total_seconds()
        if ran <= run.max_runtime_seconds:
            continue
        message = (
            f"stuck: RUNNING for {ran:.0f}s, past max_runtime {run.max_runtime_seconds:.0f}s; "
            f"worker {run.worker}'s lease revoked"
        )
        policy = RetryPolicy.from_json(run.retry_policy)
        failures, due = policy.next_retry(store.scheduled_runs.history(run.id), STUCK_NAMES)
        try:
            with store.transaction() as tx:
                job = store.queue.live_job_of_run(run.id, tx=tx)
                if job is not None:
                    store.queue.revoke(job.id, message, tx=tx)
                store.scheduled_runs.transition(
                    run.id,
                    RUNNING,
                    FAILED,
                    error=message,
                    values={
                        "error_type": "StuckRunError",
                        "error_types": json.dumps(STUCK_NAMES),
                        "ended_at": now_iso(),
                        "next_attempt_at": None,  # a retry queued below sets its own
                    },
                    tx=tx,
                )
                if due is not None:
                    enqueue_retry(
                        store, run, tx=tx, failures=failures, of=policy.max_retries, due=due
                    )
        except TransitionError:
            continue  # it finished meanwhile
        retry = f"; retry {failures} of {policy.max_retries} at {due.isoformat()}" if due else ""
        log.error(
            "scheduled run %s (%s %s): %s%s", run.id, run.pipeline, run.run_date, message, retry
        )
        stuck.append(run.id)
    return stuck


def repair_orphans(
    store: Store,
    pipelines: Sequence[str] | None = None,
    *,
    grace: timedelta = ORPHAN_GRACE,
) -> list[str]:
    """Queue a job for every PENDING run that has had none for `grace` (a row edited by
    hand left it so: nothing would ever run it). Returns their ids. A run with a job
    its API caller queued (`QueueManager.enqueue`, no run linked: the seed's pattern 1)
    has one: it is left to that caller, as a second job would run it twice."""
    repaired = []
    before = (now() - grace).isoformat()
    for run in store.scheduled_runs.orphans(before=before):
        if pipelines is not None and run.pipeline not in pipelines:
            continue
        callers = callers_job(store, run)
        if callers is not None:
            log.debug("run %s: left to job %d, queued by its caller", run.id, callers.id)
            continue
        try:
            with store.transaction() as tx:
                job_id = store.queue.enqueue(job_of(run), tx=tx)
                store.scheduled_runs.set_job(run.id, job_id, tx=tx)
        except Exception as error:  # another scheduler queued it first (one live job per run)
            log.debug("run %s: not repaired here: %s", run.id, error)
            continue
        log.warning(
            "scheduled run %s (%s %s %s) was PENDING with no job: queued job %d",
            run.id,
            run.pipeline,
            run.schedule,
            run.run_date,
            job_id,
        )
        repaired.append(run.id)
    return repaired


def callers_job(store: Store, run: ScheduledRunRecord) -> Job | None:
    """The live job an API caller queued for `run`, if any: a job of its pipeline and
    tenant with no run linked whose payload names the run (`{"run_id": ...}`), or names
    none (the seed's `enqueue(tenant_id, config)` carries its config alone, so it may be
    this run's: waiting for it to end costs a delay, a second job a second run)."""
    for job in store.queue.unlinked_live_jobs(run.pipeline, run.tenant):
        try:
            named = (job.payload or {}).get("run_id")
        except (TypeError, ValueError):  # a payload that is not a JSON object names no run
            named = None
        if named is None or str(named) == run.id:
            return job
    return None


class Scheduler:
    """Turns the due ticks of the given pipelines' schedules into queued runs."""

    def __init__(
        self,
        configs: Sequence[Config],
        store: Store | None = None,
        *,
        grace: timedelta = DEFAULT_GRACE,
        orphan_grace: timedelta | None = None,
    ) -> None:
        self.configs = list(configs)
        self._url = shared_url(self.configs)
        # opened at its first use, not here: a store that cannot be reached when the
        # scheduler starts is an outage like any later one, which `run_forever` logs
        # and tries again after `interval` (a lost reply of the start-up migration too:
        # migrating again is a no-op)
        self._store = store
        self._owns_store = store is None  # opened here, so closed here (`close`)
        self.grace = grace
        self.orphan_grace = ORPHAN_GRACE if orphan_grace is None else orphan_grace
        self._reported: set[str] = set()
        #: `pipeline/schedule` of the schedules the last pass found paused
        self._paused: set[str] = set()
        self._said_paused: set[str] = set()
        #: Due runs this process could not queue (bad rows): `up --until-idle` does not
        #: wait for them, it reports them
        self.unqueueable: set[str] = set()
        #: When (monotonic) the store's schema version was last read: opening it reads it
        self._schema_read = time.monotonic()

    @property
    def store(self) -> Store:
        """The state store, opened (and migrated) at its first use; StateError while it
        cannot be reached, and the next use tries again."""
        if self._store is None:
            self._store = open_store(self._url)
        return self._store

    def check_schema(self) -> None:
        """Stop (the permanent StateError) once a newer onceflow has migrated the store
        under this long-running scheduler, read at most every SCHEMA_CHECK_SECONDS:
        opening the store refuses a newer schema, but this process may outlive that."""
        if self._store is None or time.monotonic() - self._schema_read < SCHEMA_CHECK_SECONDS:
            return  # not opened yet (opening it checks), or read less than a minute ago
        self._schema_read = time.monotonic()
        self._store.refuse_newer_schema()

    @property
    def pipelines(self) -> list[str]:
        """The pipelines this scheduler serves."""
        return [c.pipeline for c in self.configs]

    def record_ticks(
        self,
        at: datetime | None = None,
        errors: list[str] | None = None,
        paused: list[str] | None = None,
        missed: list[dict[str, Any]] | None = None,
    ) -> int:
        """Record the due ticks of every schedule (catch-up policy applied); returns how
        many runs this call created. A schedule that fails is logged and described in
        `errors`, and the others go on; a state store outage (StateError) stops the pass.
        A paused schedule records nothing and is described in `paused`: its cursor stays,
        so on resume its missed ticks follow its catch-up policy, as after downtime.
        Missed ticks a policy leaves out are logged (a warning) and described in `missed`."""
        moment = at or now()
        stopped = {(r.pipeline, r.schedule): r for r in self.store.scheduled_runs.paused()}
        self._paused = set()
        created = 0
        for config in self.configs:
            for schedule in config.schedules:
                key = (config.pipeline, schedule.name)
                try:
                    row = stopped.get(key)
                    if row is None:
                        n = self._record(config, schedule, moment, missed)
                        if n is not None:
                            created += n
                            continue
                        # paused since this pass read the pauses: say so all the same
                        row = self.store.scheduled_runs.cursor_row(*key)
                    if row is not None:
                        self._note_paused(paused, row)
                except StateError:
                    raise
                except Exception as error:
                    self._skip(errors, f"{config.pipeline}/{schedule.name}", error)
        return created

    def _note_paused(self, paused: list[str] | None, row: CursorRecord) -> None:
        self._paused.add(f"{row.pipeline}/{row.schedule}")
        text = paused_line(row)
        if paused is not None:
            paused.append(text)
        if text not in self._said_paused:  # once per process: it repeats every pass
            self._said_paused.add(text)
            log.info("scheduler: paused: %s: no ticks recorded until it is resumed", text)

    @property
    def skipped(self) -> list[str]:
        """What this process's passes had to skip so far (each once)."""
        return sorted(self._reported)

    def _skip(self, errors: list[str] | None, what: str, error: Exception | str) -> None:
        detail = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        text = f"{what}: {' '.join(str(detail).split())}"
        if errors is not None:
            errors.append(text)
        if text not in self._reported:  # once per process: it repeats every pass
            self._reported.add(text)
            log.error("scheduler: skipped %s", text)

    def _record(
        self,
        config: Config,
        schedule: ScheduleConfig,
        at: datetime,
        missed: list[dict[str, Any]] | None = None,
    ) -> int | None:
        """Record one schedule's due ticks, at most CHUNK per transaction, each
        transaction moving the cursor from the value it read (optimistic: a scheduler
        that lost the race re-reads the cursor and goes on from there). None when the
        schedule was paused meanwhile (its cursor refuses to move)."""
        runs = self.store.scheduled_runs
        calc = calculator(config, schedule)
        start = cursor_start(schedule, at, self.grace)
        policy = schedule.catch_up_policy
        created = 0
        batch: str | None = None
        while True:
            cursor = runs.cursor(config.pipeline, schedule.name, start=start)
            after = datetime.fromisoformat(cursor)
            if policy == "all":
                # only the next chunk is needed: a long catch-up is written step by step
                due = list(calc.ticks(after, until=at, limit=CHUNK))
                kept, more = due, len(due) >= CHUNK
            else:
                due = list(calc.ticks(after, until=at))
                chosen = keep_by_policy(due, policy, at, self.grace)
                # written CHUNK at a time from the oldest kept, as `all` is: the cursor
                # stops at the last tick written, so the next loop (which finds only
                # kept ticks after it, fewer than `{max: N}`) writes the rest; cutting
                # to the newest CHUNK lost the older kept ones and called them missed
                kept, more = chosen[:CHUNK], len(chosen) > CHUNK
                if more:
                    due = [t for t in due if t.at <= kept[-1].at]
            if not due:
                return created
            catch_up = len(kept) > 1 or any(at - t.at > self.grace for t in kept)
            if batch is None:
                batch = f"catch-up:{kept[0].at.isoformat()}" if catch_up and kept else ""
            kind = "catch-up" if catch_up else "scheduled"
            with self.store.transaction() as tx:
                # the cursor moves to the last due tick, kept or not
                new = due[-1].at.isoformat()
                if not runs.advance_cursor(config.pipeline, schedule.name, cursor, new, tx=tx):
                    row = runs.cursor_row(config.pipeline, schedule.name, tx=tx)
                    if row is not None and row.paused:
                        return created or None  # paused meanwhile: None says so
                    continue  # another scheduler moved it: read it again
                specs = [run_spec(config, schedule, t, kind=kind, batch=batch) for t in kept]
                created += len(runs.create(specs, tx=tx))
            # said once the cursor moved past them: a pass that lost the race skipped none
            written = {t.at for t in kept}
            left_out = [t for t in due if t.at not in written]
            if left_out:
                self._note_missed(config, schedule, left_out, missed)
            crashpoint("scheduler_after_tick")
            if not more:
                return created

    def _note_missed(
        self,
        config: Config,
        schedule: ScheduleConfig,
        left_out: list[Tick],
        missed: list[dict[str, Any]] | None,
    ) -> None:
        first, last = left_out[0].run_date.isoformat(), left_out[-1].run_date.isoformat()
        policy = schedule.catch_up_policy
        entry = {
            "pipeline": config.pipeline,
            "schedule": schedule.name,
            "catch_up": f"{{max: {policy}}}" if isinstance(policy, int) else policy,
            "count": len(left_out),
            "first_run_date": first,
            "last_run_date": last,
            "backfill": f"onceflow backfill --schedule {schedule.name} --from {first} --to {last}",
        }
        if missed is not None:
            missed.append(entry)
        log.warning("scheduler: %s", missed_line(entry))

    def queue_due(self, at: datetime | None = None, errors: list[str] | None = None) -> int:
        """Queue the SCHEDULED runs whose tick is due; returns how many this call queued.
        A run that cannot be queued (a bad row) is skipped, logged and put in `errors`."""
        moment = (at or now()).astimezone(UTC).isoformat()
        due = [r for r in self.store.scheduled_runs.due(moment) if r.pipeline in self.pipelines]
        skipped: list[str] = []
        queued = queue_runs(self.store, due, skipped=skipped, skipped_ids=self.unqueueable)
        for text in skipped:
            self._skip(errors, "a due run", text)
        return queued

    def run_once(self, at: datetime | None = None) -> PassReport:
        """One pass: record due ticks, queue due runs, requeue expired jobs, fail stuck
        runs, queue PENDING runs without a job. What it had to skip is in `errors`."""
        self.check_schema()
        report = PassReport()
        report.recorded = self.record_ticks(at, report.errors, report.paused, report.missed)
        report.queued = self.queue_due(at, report.errors)
        report.requeued = requeue_expired(self.store, report.lost)
        report.stuck = fail_stuck(self.store, self.pipelines)
        report.repaired = repair_orphans(self.store, self.pipelines, grace=self.orphan_grace)
        if report.recorded or report.queued or report.requeued or report.stuck:
            log.info(
                "scheduler: %d tick(s) recorded, %d run(s) queued, %d job(s) requeued, "
                "%d stuck run(s) failed",
                report.recorded,
                report.queued,
                report.requeued,
                len(report.stuck),
            )
        return report

    def next_ticks(self, at: datetime | None = None) -> dict[str, Tick]:
        """The next tick of every schedule, by `pipeline/schedule`."""
        moment = at or now()
        ticks = {}
        for c in self.configs:
            for s in c.schedules:
                if f"{c.pipeline}/{s.name}" in self._paused:
                    continue  # no tick of it is recorded: nothing to wake up for
                try:
                    ticks[f"{c.pipeline}/{s.name}"] = next_tick_of(c, s, moment)
                except Exception as error:  # reported by the pass; the others still count
                    self._skip(None, f"{c.pipeline}/{s.name}", error)
        return ticks

    def close(self) -> None:
        """Close the state store this scheduler opened itself (one given to it is the
        caller's)."""
        if self._owns_store and self._store is not None:
            self._store.close()
            self._store = None

    def run_forever(
        self, stop: threading.Event, *, interval: float = 5.0, max_passes: int | None = None
    ) -> PassReport:
        """Pass every `interval` seconds (sooner when a tick is due) until `stop` is set;
        then close the store it opened itself."""
        try:
            return self._run_forever(stop, interval, max_passes)
        finally:
            self.close()

    def _run_forever(
        self, stop: threading.Event, interval: float, max_passes: int | None
    ) -> PassReport:
        total = PassReport()
        passes = 0
        while not stop.is_set():
            try:
                total.add(self.run_once())
            except StateError as error:
                if error.permanent and (self._store is None or "newer_schema" in error.context):
                    # never opened, and waiting will not open it: a config to fix; or a
                    # newer onceflow migrated it: this one must not write to it any more
                    raise
                # a store outage: one line a pass (the traceback with --debug), not a
                # traceback every 5 s for as long as it lasts
                log.error(
                    "scheduler pass failed (%s); retrying in %.0fs",
                    error,
                    interval,
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
            except Exception:  # a bug: its traceback, and the next pass tries again
                log.exception("scheduler pass failed; retrying in %.0fs", interval)
            passes += 1
            if max_passes is not None and passes >= max_passes:
                break
            wait = interval
            upcoming = self.next_ticks().values()
            if upcoming:
                until = min(t.at for t in upcoming) - now()
                wait = max(0.05, min(interval, until.total_seconds() + 0.01))
            stop.wait(wait)
        return total
