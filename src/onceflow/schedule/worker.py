"""Workers: claim queued runs of their pipelines, run them, and record the outcome once.

A worker process claims up to `concurrency` jobs at once (only of the pipelines whose
configs it was given), runs each in a thread through `onceflow.pipeline.run_window`,
and heartbeats all their leases from one thread every third of the lease. Every record
it makes for a job (start, completion, failure, deferral) is one transaction that
first matches the job's token, so a worker whose lease expired - killed, paused, or cut
off from the database while another worker took the job over - records nothing: its
late completion is refused (LeaseLostError), and the data it might still write is
guarded by the pipeline's own leases (run lock, load locks), as for any run.

Outcomes: COMPLETED; FAILED, then PENDING again after the retry policy's backoff when
the error is retryable and retries are left (the retry is a queued job due later, so it
survives restarts); or back to PENDING without counting a failure when the run must
wait - for an earlier window of its backfill or catch-up to load first (window order
per table), for a whole-pipeline command holding the pipeline lock, or for a table's load
lock another run holds (a worker killed mid-load on another machine holds it until its
lease ends).

SIGTERM (the CLI sets `stop`): stop claiming, finish the current jobs, exit. SIGKILL:
the leases expire and any scheduler or worker requeues the jobs.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from onceflow.clock import now_iso
from onceflow.config import Config
from onceflow.errors import (
    LeaseLostError,
    LockError,
    StateError,
    TransitionError,
    error_names,
    names_of,
    typed_error,
)
from onceflow.faults import crashpoint
from onceflow.pipeline import RunSummary, run_window
from onceflow.redact import redact
from onceflow.schedule.retry import RetryPolicy
from onceflow.schedule.scheduler import (
    enqueue_retry,
    requeue_expired,
    shared_url,
    wake_next_waiting,
)
from onceflow.state import Job, ScheduledRunRecord, Store, Tx, open_store
from onceflow.state.queue import DEFAULT_LEASE_SECONDS, job_problem
from onceflow.state.scheduled_runs import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    SCHEDULED,
    TransitionRecord,
)
from onceflow.state.store import SCHEMA_CHECK_SECONDS

log = logging.getLogger(__name__)

REAP_SECONDS = 5.0  # how often an idle worker requeues jobs of expired leases
RECORD_TRIES = 6  # an outcome's write, tried again over ~16 s when the database was away
#: How long a worker that is to end on its own (`--until-idle`) waits for a store that is
#: away before it counts it lost for good and exits 1: the outage an outcome's write
#: rides out (RECORD_TRIES). A worker that runs until stopped waits for as long as it
#: takes, its claims tried again every poll.
OUTAGE_SECONDS = 16.0
#: The longest pause between two claims of a job waiting for a lock: nothing wakes it
#: when the lock is released, so it polls.
MAX_DEFER_SECONDS = 10.0
#: The longest pause between two claims of a job waiting for an earlier window: that
#: window's outcome (completed, failed, cancelled) makes the next waiting job due at
#: once, so the poll is only a safety net. Capped at 10 s like a lock wait, a backfill of
#: 734 days made 23,756 deferrals (every waiting window claimed every 10 s while the
#: ones before it ran: pending windows x duration / 10 s).
MAX_WAIT_SECONDS = 120.0


@dataclass
class WorkerReport:
    """What a worker did, by outcome."""

    claimed: int = 0
    completed: int = 0
    failed: int = 0
    retried: int = 0
    deferred: int = 0
    lost: int = 0
    #: Runs cancelled while this worker held them: dropped, not a failure.
    cancelled: int = 0
    #: Runs a scheduler failed for running past their `max_runtime` while this worker
    #: held them (their lease revoked): the scheduler counts and retries them.
    revoked: int = 0
    #: One line per run that failed for good: which, and why (`worker` prints them).
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**vars(self), "failures": list(self.failures)}


# The error type of a run whose tables extracted and loaded but whose error-severity
# rules failed or could not run: failed without retries, and no later window waits for it.
VALIDATION_FAILED = "ValidateError"


def failure_of(summary: RunSummary) -> tuple[str, tuple[str, ...], str] | None:
    """(error type, every type name, message) of a failed run, or None. The type is the
    first failed table's step (`ExtractError`, `LoadError`, `ValidateError`: an
    error-severity rule failed or could not run); the message is its error in
    full, then `and N more: key (Type), ...` naming every other failed table (a run's
    one error field must not hide the second broken table until the first is fixed).
    The names are every failed table's: its step, its own error's class, bases and
    transient marker, so that `retry_on: [TransientError]` or `[OSError]` matches a
    table that failed with one."""
    error = summary.error
    if error is None:
        return None
    kind, message = error
    failed: list[tuple[str, str, tuple[str, ...]]] = [
        (r.table_key, "ExtractError", tuple(r.error_types))
        for r in summary.results
        if r.action == "failed"
    ]
    extract_failed = {key for key, _, _ in failed}
    if summary.load is not None:
        # a table whose extraction failed is reported once, by that failure
        failed += [
            (t.key, "LoadError", tuple(t.error_types))
            for t in summary.load.results
            if not t.ok and t.key not in extract_failed
        ]
    done = {key for key, _, _ in failed}
    failed += [
        (key, VALIDATION_FAILED, ()) for key, _ in summary.validation_problems() if key not in done
    ]
    names: list[str] = []
    for _, step, causes in failed:
        names += [*causes, *names_of(step)]
    names += names_of(kind)
    others = [f"{key} ({step})" for key, step, _ in failed[1:]]
    if others:
        message = f"{message}; and {len(others)} more: {', '.join(others)}"
    return kind, tuple(dict.fromkeys(names)), message


def lock_wait_of(summary: RunSummary) -> str | None:
    """Why a failed run only waits for another holder's lock, or None: every table that
    failed, failed to load on a LockError (a load lock held by another run, often a killed
    one on another machine whose lease has not expired yet), its extraction committed and
    nothing else wrong. Such a run is deferred, not failed: its retry would spend the
    budget on waiting (and `retry_on: [TimeoutError]` would not retry it at all), and its
    later windows would be blocked for good."""
    if summary.error is None or summary.load is None:
        return None
    if any(r.action == "failed" for r in summary.results):
        return None
    failed = [t for t in summary.load.results if not t.ok]
    if not failed or any(t.error is None or "LockError" not in t.error_types for t in failed):
        return None
    locked = {t.key for t in failed}
    if any(key not in locked for key, _ in summary.validation_problems()):
        return None
    return "; ".join(f"{t.key}: {t.error}" for t in failed)


def _waiting_text(earlier: ScheduledRunRecord) -> str:
    return (
        f"waiting for the earlier window {earlier.run_date} ({earlier.state}) of "
        f"{earlier.schedule} to load first"
    )


def _defer_delay(job: Job, cap: float = MAX_DEFER_SECONDS) -> float:
    """0.5 s, doubling with each claim of the job, at most `cap`."""
    return float(min(cap, 0.5 * 2 ** min(job.attempts - 1, 8)))


def settled_at(config: Config, run: ScheduledRunRecord) -> float:
    """When the run's window has settled (its end plus the config's `settle`): before
    then its extraction is refused, as for a window that has not ended."""
    ends = datetime.fromisoformat(run.window_end).timestamp()
    return ends + config.settle_seconds


def _lease(job: Job) -> tuple[int, str]:
    """A claim of a job: its id and the token that claim stamped."""
    return job.id, job.token or ""


def default_worker_id() -> str:
    """host:pid, as stored with each claim and transition."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """Runs queued scheduled runs of the given pipelines."""

    def __init__(
        self,
        configs: Sequence[Config],
        store: Store | None = None,
        *,
        concurrency: int = 1,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        poll_seconds: float = 1.0,
        lock_timeout: float | None = None,
        worker_id: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.configs = {c.pipeline: c for c in configs}
        self._url = shared_url(list(configs))
        # opened at its first use, in the loop: a store that cannot be reached at start-up
        # (or loses the start-up migration's reply) is an outage like a later one, which
        # the loop's claims ride out (see OUTAGE_SECONDS)
        self._store = store
        self._owns_store = store is None  # opened here, so closed when `run` ends
        #: Since when (monotonic) the idle check has found the store away, or None
        self._away_since: float | None = None
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        # how long a run waits for a lock before it is given back to the queue (deferred,
        # no retry spent): a killed holder's lock on another machine lasts up to its
        # lock_ttl_minutes, and the slot is better used meanwhile
        self.lock_timeout = lease_seconds * 1.5 if lock_timeout is None else lock_timeout
        self.worker_id = worker_id or default_worker_id()
        self.report = WorkerReport()
        self._active: dict[int, Job] = {}
        #: Leases the heartbeat found lost, by (job id, token): a claim of the same job
        #: later has a new token, which a stale loss must not touch
        self._lost: set[tuple[int, str]] = set()
        self._guard = threading.Lock()
        self._slot = threading.Event()

    @property
    def store(self) -> Store:
        """The state store, opened (and migrated) at its first use; StateError while it
        cannot be reached, and the next use tries again. The loop's thread uses it first:
        the heartbeat and the jobs' threads only once a job was claimed through it."""
        if self._store is None:
            self._store = open_store(self._url)
        return self._store

    # --- the loop -----------------------------------------------------------------------

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        until_idle: bool = False,
        max_jobs: int | None = None,
        idle_check: Callable[[], bool] | None = None,
    ) -> WorkerReport:
        """Claim and run jobs until `stop` is set (then finish the current ones), or with
        `until_idle` until nothing of its pipelines is queued or running (and
        `idle_check()`, when given, agrees), or after `max_jobs` claims."""
        stop = stop or threading.Event()
        self._open_or_wait()
        beating = threading.Event()
        heart = threading.Thread(target=self._heartbeat, args=(beating,), daemon=True)
        heart.start()
        pipelines = sorted(self.configs)
        last_reap = 0.0
        schema_read = time.monotonic()  # opening the store read it
        try:
            self._listen()
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="job") as pool:
                while not stop.is_set():
                    if time.monotonic() - last_reap > REAP_SECONDS:
                        last_reap = time.monotonic()
                        self._reap()
                    if time.monotonic() - schema_read > SCHEMA_CHECK_SECONDS:
                        schema_read = time.monotonic()
                        self._check_schema()
                    free = self.concurrency - len(self._active)
                    if max_jobs is not None:
                        free = min(free, max_jobs - self.report.claimed)
                    jobs = self._claim(pipelines, free) if free > 0 else []
                    for job in jobs:
                        with self._guard:
                            self._active[job.id] = job
                        pool.submit(self._run_job, job)
                    if jobs:
                        continue
                    if (
                        max_jobs is not None
                        and self.report.claimed >= max_jobs
                        and not self._active
                    ):
                        break
                    if until_idle and not self._active and self._idle(pipelines, idle_check):
                        break
                    if free > 0:
                        self._wait_for_jobs()
                    else:
                        self._slot.wait(self.poll_seconds)
                        self._slot.clear()
                log.info(
                    "worker %s: stopping; finishing %d job(s)", self.worker_id, len(self._active)
                )
        finally:
            beating.set()
            heart.join(timeout=5)
            if self._owns_store and self._store is not None:
                # its connections, the listener's too: not left to the garbage collector
                self._store.close()
                self._store = None
        return self.report

    def _open_or_wait(self) -> None:
        """Open the store once before the loop: a store that cannot be (a database or
        role that does not exist, a schema newer than this onceflow) stops the worker at
        once, with its one line; one that is away is waited for by the loop."""
        try:
            self.store  # noqa: B018 - opens and migrates it
        except StateError as error:
            if error.permanent:
                raise
            log.warning("worker %s: the state store is away (%s); waiting", self.worker_id, error)

    def _check_schema(self) -> None:
        """Stop claiming (the permanent StateError; the jobs running finish first) once a
        newer onceflow has migrated the store under this long-running worker: opening the
        store refuses a newer schema, but this process may outlive that. A store that is
        away is the claims' to wait out."""
        if self._store is None:
            return  # not opened yet: opening it checks
        try:
            self._store.refuse_newer_schema()
        except StateError as error:
            if error.permanent:
                log.error("worker %s: stopping: %s", self.worker_id, error)
                raise
            log.warning("worker %s: cannot read the schema version: %s", self.worker_id, error)

    def _listen(self) -> None:
        try:
            self.store.queue.listen()
        except StateError as error:  # the first wait for jobs listens again
            log.warning("worker %s: cannot listen for new jobs: %s", self.worker_id, error)

    def _claim(self, pipelines: list[str], free: int) -> list[Job]:
        try:
            jobs = self.store.queue.claim(
                self.worker_id, limit=free, lease_seconds=self.lease_seconds, pipelines=pipelines
            )
        except StateError as error:  # the database is away: wait and claim again
            log.warning("worker %s: cannot claim: %s", self.worker_id, error)
            time.sleep(self.poll_seconds)
            return []
        self._away_since = None
        if jobs:
            self.report.claimed += len(jobs)
            crashpoint("worker_after_claim")
        return jobs

    def _wait_for_jobs(self) -> None:
        try:
            self.store.queue.wait_for_jobs(self.poll_seconds)
        except StateError:
            if self._store is not None:  # else never opened: nothing listens
                self._store.queue.close_listener()
            time.sleep(self.poll_seconds)

    def _reap(self) -> None:
        lost: list[str] = []
        try:
            requeue_expired(self.store, lost)
        except StateError as error:
            log.warning("worker %s: cannot requeue expired jobs: %s", self.worker_id, error)
        if lost:  # runs whose workers kept dying: failed here, so reported here
            with self._guard:
                self.report.failed += len(lost)
                self.report.failures += lost

    def _idle(self, pipelines: list[str], idle_check: Callable[[], bool] | None) -> bool:
        """Whether nothing of `pipelines` is queued or running (and `idle_check()` agrees).
        Not idle while the store is away: the loop claims again, and only a store away
        for longer than OUTAGE_SECONDS ends the worker (its StateError, exit 1)."""
        try:
            # claimed jobs count as running: a killed worker's come back once their
            # lease expires
            busy = sum(
                self.store.queue.length(pipeline=p, state=s)
                for p in pipelines
                for s in ("queued", "claimed")
            )
            idle = busy == 0 and (idle_check is None or idle_check())
        except StateError as error:
            now = time.monotonic()
            if self._away_since is None:
                self._away_since = now
            if now - self._away_since >= OUTAGE_SECONDS:
                raise
            log.warning(
                "worker %s: cannot tell whether it is idle (%s); trying again",
                self.worker_id,
                error,
            )
            return False
        self._away_since = None
        return idle

    def _heartbeat(self, done: threading.Event) -> None:
        while not done.wait(self.lease_seconds / 3):
            with self._guard:
                jobs = [j for j in self._active.values() if _lease(j) not in self._lost]
            if not jobs:
                continue
            try:
                lost = self.store.queue.heartbeat(jobs, lease_seconds=self.lease_seconds)
            except StateError as error:  # cut off: the leases run out; nothing to do here
                log.warning("worker %s: heartbeat failed: %s", self.worker_id, error)
                continue
            self._note_lost(jobs, lost)

    def _note_lost(self, sent: Sequence[Job], lost: set[int]) -> None:
        """Remember the leases a heartbeat found lost, by the token it sent: the job may
        have ended (completed, deferred) while the heartbeat was on its way, and even
        been claimed again by this worker with a new token, which is not lost."""
        if not lost:
            return
        leases = {_lease(j) for j in sent if j.id in lost}
        with self._guard:
            current = {_lease(j) for j in self._active.values()}
            still = leases & current
            self._lost |= still
        if still:
            log.warning(
                "worker %s: lost the lease of job(s) %s",
                self.worker_id,
                sorted(job_id for job_id, _ in still),
            )

    def _run_job(self, job: Job) -> None:
        try:
            outcome = self.execute(job)
            with self._guard:
                setattr(self.report, outcome, getattr(self.report, outcome) + 1)
        except StateError as error:
            # the store stayed away through every try of the outcome's write: nothing is
            # recorded, the job's lease expires and a scheduler or worker requeues the run
            log.warning(
                "worker %s: job %s: outcome not recorded, the state store is away (%s); "
                "its lease will expire and the run be requeued",
                self.worker_id,
                job.id,
                error,
            )
            with self._guard:
                self.report.lost += 1
        except Exception:
            log.exception("worker %s: job %s crashed the worker thread", self.worker_id, job.id)
        finally:
            with self._guard:
                if self._active.get(job.id) is job:
                    del self._active[job.id]
                self._lost.discard(_lease(job))
            self._slot.set()

    # --- one job ------------------------------------------------------------------------

    def check(self, job: Job) -> None:
        """LeaseLostError when this worker no longer holds `job` (call before writing)."""
        if _lease(job) in self._lost:
            raise LeaseLostError(f"job {job.id}: lease lost", job_id=job.id)
        self.store.queue.check(job.id, job.token or "")

    def execute(self, job: Job) -> str:
        """Run one claimed job; returns the outcome (a WorkerReport field name)."""
        token = job.token or ""
        config = self.configs.get(job.pipeline)
        run = self.store.scheduled_runs.get(job.run_id) if job.run_id else None
        if config is None or run is None:
            return self._refuse(job, f"job {job.id} is not a scheduled run of {job.pipeline}")
        earlier = self.earlier(run)
        if run.waiting_on and earlier is not None and earlier.state != FAILED:
            # deferred before (its extraction is committed) and still waiting: back to the
            # queue without starting it, so that waiting is not counted as an attempt
            return self._wait(job, run, _waiting_text(earlier), cap=MAX_WAIT_SECONDS)
        settles = settled_at(config, run)
        if settles > time.time():
            # the window has ended less than `settle` ago: the run would be refused (as
            # one that has not ended) and burn its retries; it waits, no attempt counted
            return self._wait(
                job, run, f"waiting for its window to settle ({config.settle})", settles
            )
        try:
            with self.store.transaction() as tx:
                self.store.queue.check(job.id, token, tx=tx)
                self.store.scheduled_runs.transition(
                    run.id,
                    PENDING,
                    RUNNING,
                    worker=self.worker_id,
                    values={"started_at": now_iso(), "waiting_on": None, "job_id": job.id},
                    tx=tx,
                )
        except LeaseLostError as error:
            return self._dropped(job, run, error)
        except TransitionError as error:
            now_run = self.store.scheduled_runs.get(run.id)
            if now_run is not None and now_run.state == CANCELLED:
                # cancelled before its job was ended (by an older onceflow): end it here
                self.store.queue.revoke(job.id, "its run was cancelled", state="cancelled")
                return self._dropped(job, run, error)
            return self._refuse(job, str(error))
        crashpoint("worker_after_start")
        started = time.monotonic()  # the run's duration: immune to wall-clock steps
        if earlier is not None and earlier.state == FAILED:
            return self._block(job, run, earlier)
        log.info(
            "worker %s: run %s %s %s started",
            self.worker_id,
            run.pipeline,
            run.schedule,
            run.run_date,
        )
        try:
            summary = run_window(
                config,
                run.run_date,
                tables=run.table_list,
                force_reprocess=run.force_reprocess,
                lease_ttl=self.lease_seconds,
                lock_timeout=self.lock_timeout,
                may_load=lambda: self.blocker(run),
                check=lambda: self.check(job),
                store=self.store,
            )
        except LeaseLostError as error:
            return self._dropped(job, run, error)
        except LockError as error:
            return self._defer(job, run, f"waiting for a lock: {error}")
        except Exception as error:
            elapsed = time.monotonic() - started
            return self._fail(
                job, run, error_names(error), type(error).__name__, str(error), elapsed
            )
        crashpoint("worker_before_complete")
        if summary.deferred:
            earlier = self.earlier(run)
            if earlier is not None and earlier.state == FAILED:  # it failed meanwhile
                return self._block(job, run, earlier)
            return self._defer(job, run, summary.deferred, cap=MAX_WAIT_SECONDS)
        locked = lock_wait_of(summary)
        if locked is not None:
            return self._defer(job, run, f"waiting for a lock: {locked}")
        failure = failure_of(summary)
        elapsed = time.monotonic() - started
        if failure is None:
            return self._complete(job, run, elapsed)
        kind, names, message = failure
        return self._fail(job, run, names, kind, message, elapsed)

    def earlier(self, run: ScheduledRunRecord) -> ScheduledRunRecord | None:
        """The earlier window `run` must let load first, sharing a table: queued or running
        (of any schedule: a nightly run waits for a backfill's earlier day), or failed in
        the same batch. A failed one comes first: it blocks `run` for good, where the
        others only delay it."""
        for other in self.store.scheduled_runs.earlier_unfinished(run):
            # a row the scheduler can never queue (a bad priority written around the API)
            # is reported by it, not waited for by every later window
            if other.state == SCHEDULED and (
                job_problem(other.pipeline, other.tenant, other.priority) is not None
            ):
                continue
            # a run failed by its rules alone loaded its window: it holds nothing back
            if other.state == FAILED and other.error_type == VALIDATION_FAILED:
                continue
            return other
        return None

    def blocker(self, run: ScheduledRunRecord) -> str | None:
        """Why `run` may not load yet (an earlier window comes first), or None."""
        earlier = self.earlier(run)
        return None if earlier is None else _waiting_text(earlier)

    def _write(self, record: Callable[[Tx], None], landed: Callable[[], bool]) -> None:
        """Run an outcome's transaction; when the database was away (a connection cut, then
        restored) try again on a fresh connection, for about 16 s. The write is fenced by
        the job's token, so trying again never records anything twice.

        A try that failed on the connection may still have committed: the server took the
        COMMIT and only its reply was lost. The next try then matches no claimed row
        (LeaseLostError), and `landed()` tells that case apart from a lease really lost:
        the outcome is in the store, by this claim, and is counted as recorded."""
        for attempt in range(RECORD_TRIES):
            try:
                with self.store.transaction() as tx:
                    record(tx)
                return
            except (LeaseLostError, TransitionError) as error:
                if attempt > 0 and self._landed(landed):
                    log.info(
                        "worker %s: the outcome's earlier try was committed, only its "
                        "reply was lost (the retry found %s); recorded once",
                        self.worker_id,
                        type(error).__name__,
                    )
                    return
                raise
            except StateError as error:
                if attempt == RECORD_TRIES - 1:
                    raise
                log.warning("worker %s: cannot record (%s); trying again", self.worker_id, error)
                self.store.db.forget_connection()
                time.sleep(min(8.0, 0.5 * 2**attempt))

    def _landed(self, landed: Callable[[], bool]) -> bool:
        """`landed()`, read on a fresh connection; False when the store is away again (the
        run is then counted lost, as before: its outcome may or may not be recorded)."""
        try:
            return landed()
        except StateError as error:
            log.warning("worker %s: cannot read the outcome back: %s", self.worker_id, error)
            return False

    def _ended_by_me(self, job: Job, state: str) -> Callable[[], bool]:
        """Whether this claim ended `job` in `state` (completed, failed): its token is this
        claim's alone and is kept on an ended job, and the job's end and the run's
        transition are one transaction, so the run's outcome is recorded too. A lease
        lost to expiry or a revoke clears the token, and a new claim has its own."""

        def landed() -> bool:
            now = self.store.queue.get(job.id)
            return now is not None and now.state == state and now.token == job.token

        return landed

    def _deferred_by_me(self, job: Job, run: ScheduledRunRecord, reason: str) -> Callable[[], bool]:
        """Whether this claim's deferral is in the run's history: a release clears the
        job's token, so the run's first transition after this claim's start tells."""

        def landed() -> bool:
            after = self._since_my_start(job, run)
            return bool(after) and (
                after[0].from_state == RUNNING
                and after[0].to_state == PENDING
                and after[0].worker == self.worker_id
                and after[0].reason == reason
            )

        return landed

    def _complete(self, job: Job, run: ScheduledRunRecord, duration: float) -> str:
        def record(tx: Tx) -> None:
            self.store.queue.complete(job.id, job.token or "", tx=tx)
            self.store.scheduled_runs.transition(
                run.id,
                RUNNING,
                COMPLETED,
                worker=self.worker_id,
                values={
                    "ended_at": now_iso(),
                    "waiting_on": None,
                    "next_attempt_at": None,
                    "duration_seconds": round(duration, 3),
                },
                tx=tx,
            )
            self._wake_next(run, tx)

        try:
            self._write(record, self._ended_by_me(job, "completed"))
        except (LeaseLostError, TransitionError) as error:
            return self._dropped(job, run, error)
        log.info(
            "worker %s: run %s %s %s completed",
            self.worker_id,
            run.pipeline,
            run.schedule,
            run.run_date,
        )
        return "completed"

    def _fail(
        self,
        job: Job,
        run: ScheduledRunRecord,
        names: tuple[str, ...],
        kind: str,
        message: str,
        duration: float,
    ) -> str:
        message = redact(message)
        policy = RetryPolicy.from_json(run.retry_policy)
        failures = 0
        due: datetime | None = None

        def record(tx: Tx) -> None:
            nonlocal failures, due
            # read in the write's own transaction, so that a store outage here is tried
            # again with the write (it crashed the job's thread, nothing recorded)
            history = self.store.scheduled_runs.history(run.id, tx=tx)
            tried, then = policy.next_retry(history, names)
            if kind == VALIDATION_FAILED:
                # its window is loaded; a retry would judge the same data with the same
                # rules (from the cache) and fail again: failed at once, for a person
                then = None
            self.store.queue.fail(job.id, job.token or "", message, tx=tx)
            # kept only past the fence: a try after one whose COMMIT landed (its reply
            # lost) reads that failure in the history and would count one too many
            failures, due = tried, then
            self.store.scheduled_runs.transition(
                run.id,
                RUNNING,
                FAILED,
                worker=self.worker_id,
                error=message,
                values={
                    "error_type": kind,
                    "error_types": json.dumps(names),
                    "ended_at": now_iso(),
                    "duration_seconds": round(duration, 3),
                    # the last retry's time: a retry queued below sets its own
                    "next_attempt_at": None,
                },
                tx=tx,
            )
            if due is not None:
                enqueue_retry(
                    self.store, run, tx=tx, failures=failures, of=policy.max_retries, due=due
                )
            else:  # failed for good: the next window learns it is blocked now
                self._wake_next(run, tx)

        try:
            self._write(record, self._ended_by_me(job, "failed"))
        except (LeaseLostError, TransitionError) as lost:
            return self._dropped(job, run, lost)
        if due is not None:
            log.warning(
                "worker %s: run %s %s failed (%s: %s); retry %d of %d at %s",
                self.worker_id,
                run.pipeline,
                run.run_date,
                kind,
                message,
                failures,
                policy.max_retries,
                due.isoformat(),
            )
            return "retried"
        log.error(
            "worker %s: run %s %s failed (%s: %s)%s",
            self.worker_id,
            run.pipeline,
            run.run_date,
            kind,
            message,
            "" if policy.is_retryable(names) else " - not retryable",
        )
        with self._guard:
            self.report.failures.append(
                f"{run.pipeline} {run.schedule} {run.run_date} (run {run.id}): {kind}: {message}"
            )
        return "failed"

    def _block(self, job: Job, run: ScheduledRunRecord, blocker: ScheduledRunRecord) -> str:
        """Fail a run whose earlier window failed for good (no retry pending: it is
        FAILED, not PENDING): waiting cannot heal it, and it names the window to fix.
        Requeueing the blocker's batch (`backfill --reprocess failed`) runs both again."""
        current = self.store.scheduled_runs.get(blocker.id)
        if current is None or current.state != FAILED:
            # requeued (`runs retry`) or purged since it was read: wait for it instead
            state = "gone" if current is None else current.state
            return self._defer(
                job,
                run,
                f"waiting for the earlier window {blocker.run_date} ({state}) of "
                f"{blocker.schedule} to load first",
                cap=MAX_WAIT_SECONDS,
            )
        cause = f" ({typed_error(blocker.error_type, blocker.error)})" if blocker.error else ""
        message = (
            f"blocked: the earlier window {blocker.run_date} of {blocker.schedule} (run "
            f"{blocker.id}) failed{cause}; a table loads its windows in order, so this one "
            f"waits for its fix: once the cause is fixed, onceflow runs retry {blocker.id} "
            "queues both (a backfill: onceflow backfill --reprocess failed)"
        )
        return self._fail(
            job,
            run,
            ("BlockedRunError", "OnceflowError", "Exception"),
            "BlockedRunError",
            message,
            0.0,
        )

    def _wait(
        self,
        job: Job,
        run: ScheduledRunRecord,
        reason: str,
        until: float | None = None,
        *,
        cap: float = MAX_DEFER_SECONDS,
    ) -> str:
        """Give a claimed job back without starting its run (it stays PENDING), due again
        after a backoff of at most `cap`, or at `until`."""
        delay = _defer_delay(job, cap) if until is None else max(0.0, until - time.time())
        try:
            self.store.queue.release(
                job.id, job.token or "", run_after=time.time() + delay, note=reason
            )
        except LeaseLostError as error:
            return self._dropped(job, run, error)
        self._recheck(job, run, cap)
        return self._deferred(job, run, reason, delay)

    def _recheck(self, job: Job, run: ScheduledRunRecord, cap: float) -> None:
        """After a wait for an earlier window, due the job now if that window ended
        meanwhile: its outcome's wake found the job still claimed here (a queued job
        alone is rescheduled), and would otherwise be lost for up to MAX_WAIT_SECONDS."""
        if cap < MAX_WAIT_SECONDS:
            return
        earlier = self.earlier(run)
        if earlier is None or earlier.state == FAILED:
            self.store.queue.reschedule(job.id, time.time())

    def _deferred(self, job: Job, run: ScheduledRunRecord, reason: str, delay: float) -> str:
        # the first deferral of a job at INFO, the polls after it at DEBUG: a backfill's
        # waiting windows logged a line each every few seconds
        log.log(
            logging.INFO if job.attempts <= 1 else logging.DEBUG,
            "worker %s: run %s %s: %s (again in %.1fs)",
            self.worker_id,
            run.pipeline,
            run.run_date,
            reason,
            delay,
        )
        return "deferred"

    def _defer(
        self, job: Job, run: ScheduledRunRecord, reason: str, *, cap: float = MAX_DEFER_SECONDS
    ) -> str:
        delay = _defer_delay(job, cap)

        def record(tx: Tx) -> None:
            self.store.queue.release(
                job.id, job.token or "", run_after=time.time() + delay, note=reason, tx=tx
            )
            self.store.scheduled_runs.transition(
                run.id,
                RUNNING,
                PENDING,
                worker=self.worker_id,
                reason=reason,
                values={"waiting_on": reason},
                undo_start=True,  # waiting is no attempt: `attempt` counts real tries
                tx=tx,
            )

        try:
            self._write(record, self._deferred_by_me(job, run, reason))
        except (LeaseLostError, TransitionError) as error:
            return self._dropped(job, run, error)
        self._recheck(job, run, cap)
        return self._deferred(job, run, reason, delay)

    def _wake_next(self, run: ScheduledRunRecord, tx: Tx) -> None:
        """Make the next window waiting for `run` due now: it polls with a backoff of up
        to MAX_WAIT_SECONDS, so without this a backfill of 31 days spent most of its
        time waiting (4.5 min for 9 s of work)."""
        wake_next_waiting(self.store, run, tx)

    def _dropped(self, job: Job, run: ScheduledRunRecord, error: Exception) -> str:
        """The outcome of a job this worker may no longer write for: `cancelled` when its
        run was cancelled (dropped quietly: the canceller ended the job), else `lost`
        (its lease expired and another worker may hold it)."""
        after = self._since_my_start(job, run)
        if any(step.to_state == CANCELLED for step in after):
            log.info(
                "worker %s: run %s %s %s was cancelled; dropped",
                self.worker_id,
                run.pipeline,
                run.schedule,
                run.run_date,
            )
            return "cancelled"
        if any(
            step.to_state == FAILED and (step.error or "").startswith("stuck:") for step in after
        ):
            # not a lost lease: a scheduler failed the run for its max_runtime (and
            # retries it by its policy); this attempt's late result is refused
            log.warning(
                "worker %s: run %s %s %s ran past its max_runtime; its lease was revoked and "
                "this attempt's result is not recorded",
                self.worker_id,
                run.pipeline,
                run.schedule,
                run.run_date,
            )
            return "revoked"
        log.warning(
            "worker %s: record of run %s refused, nothing recorded (%s)",
            self.worker_id,
            run.id,
            error,
        )
        return "lost"

    def _since_my_start(self, job: Job, run: ScheduledRunRecord) -> list[TransitionRecord]:
        """The run's transitions after this worker started it for `job`: a cancel or a
        stuck run's failure there is why its result is refused (it may be queued again
        since, by `runs retry` or a retry, which is no lost lease of this worker's). That
        start is this worker's first after the job's claim: the worker's last start alone
        was the retry another of its slots had begun meanwhile (`up`, --concurrency 2),
        after which nothing was stuck, so a revoked lease was counted lost."""
        history = self.store.scheduled_runs.history(run.id)
        claimed = job.claimed_at if job.claimed_at is not None else 0.0
        started = [
            i
            for i, step in enumerate(history)
            if step.to_state == RUNNING
            and step.worker == self.worker_id
            # the same clock (this process's) stamped both; a millisecond of slack
            and datetime.fromisoformat(step.at).timestamp() >= claimed - 0.001
        ]
        return history[started[0] + 1 :] if started else history[-1:]

    def _refuse(self, job: Job, message: str) -> str:
        try:
            self.store.queue.fail(job.id, job.token or "", message)
        except LeaseLostError:
            return "lost"
        log.error("worker %s: %s", self.worker_id, message)
        with self._guard:
            self.report.failures.append(message)
        return "failed"
