"""The seed's scheduled-run managers (seed 004), each over an open state store:

    PipelineStateManager   run state: create, transition, query scheduled runs
    QueueManager           the queue: enqueue, dequeue (claim), mark completed/failed
    RetryManager           retry policy: should_retry, calculate_retry_time, schedule_retry

The seed's fourth part, `ScheduleCalculator`, is cron.py's; the awaitable forms of these
three are aio.py's. They are here, not in `onceflow.seeds` beside the other seeds'
classes: they queue, requeue and cancel runs with the scheduler's own verbs
(`enqueue_run`, `cancel_run`) and judge retries by its policy, and `onceflow.schedule`
exports them (docs/python-api.md), so in seeds/ the two packages would import each other.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, overload
from uuid import UUID

from onceflow.clock import now, now_iso
from onceflow.config import Config, ScheduleRetryConfig
from onceflow.errors import (
    ConfigError,
    LeaseLostError,
    StateError,
    TransitionError,
    error_names,
    names_of,
)
from onceflow.redact import redact
from onceflow.schedule.api import tenant_status
from onceflow.schedule.retry import RetryPolicy, error_type_of, failures_since_reprocess
from onceflow.schedule.scheduler import cancel_run, enqueue_run
from onceflow.state import (
    RUN_STATES,
    Job,
    JobSpec,
    RunSpec,
    ScheduledRunRecord,
    Store,
    TenantQueueStatus,
)
from onceflow.state.queue import CLAIMED as QUEUE_CLAIMED
from onceflow.state.scheduled_runs import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    SCHEDULED,
)
from onceflow.windows import window_for

log = logging.getLogger(__name__)

# A retry policy as callers hold one: onceflow's, a schedule's `retry:` section, or the
# seed's mapping ({"max_retries": 3, "backoff_multiplier": 2, "retry_on_errors": [...]}).
RetryConfigLike = RetryPolicy | ScheduleRetryConfig | Mapping[str, Any]


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
