r"""The job queue: a durable priority queue with leases, fenced by a token per claim.

    queued --claim--> claimed --complete--> completed
                         |  \--fail------> failed
                         |   \--release--> queued (run_after later: a deferral)
                         \--lease expired (requeue_expired)--> queued
    queued | claimed --cancel/revoke--> cancelled | failed

Priority 1 is the highest; within a priority jobs leave in enqueue order (FIFO by id).
A claim takes up to `limit` due jobs atomically (one `FOR UPDATE SKIP LOCKED` statement
on PostgreSQL, one short write transaction on SQLite), stamping each with the worker,
a fresh token and a lease expiry. Every later write for a job names its token and
matches only while the job is still claimed with it: once a lease expired and the job
was requeued (its token cleared) or claimed again (a new token), nothing the old holder
sends counts (LeaseLostError). Times are seconds since the epoch, from each process's
clock (keep the machines' clocks in sync, as for the locks' leases).

An enqueue may carry an idempotency key: one job per (tenant, key) for as long as the job
row is kept (a unique index), so a client that enqueues again after a timeout gets the
first job's id back, whatever became of that job, and nothing is queued twice. Only
`onceflow runs purge` removes finished jobs, and with them their keys.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

from onceflow.errors import ConfigError, LeaseLostError, StateError
from onceflow.state.db import Database, Listener, Tx, rows_as

log = logging.getLogger(__name__)

QUEUED = "queued"
CLAIMED = "claimed"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
JOB_STATES = (QUEUED, CLAIMED, COMPLETED, FAILED, CANCELLED)
CHANNEL = "onceflow_jobs"
DEFAULT_LEASE_SECONDS = 30.0

# Every statement of the queue, by name (the way procrastinate keeps its queries.sql).
SQL = {
    "enqueue": (
        "INSERT INTO jobs (pipeline, tenant, priority, run_id, payload, state, enqueued_at, "
        "run_after, idempotency_key) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?)"
    ),
    # a key already used by the tenant inserts nothing and returns no row (the conflict
    # target names the partial index, as PostgreSQL and SQLite both require); a
    # concurrent insert of the key waits for the first to commit (PostgreSQL) or for the
    # write lock (SQLite), so exactly one job is made
    "enqueue_returning": (
        "INSERT INTO jobs (pipeline, tenant, priority, run_id, payload, state, enqueued_at, "
        "run_after, idempotency_key) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?) "
        "ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL "
        "DO NOTHING RETURNING id"
    ),
    "by_key": "SELECT * FROM jobs WHERE tenant = ? AND idempotency_key = ?",
    # {filter} is empty or `AND pipeline IN (?, ...)`; {lock} is the backend's skip_locked.
    "claim": (
        "WITH picked AS (SELECT id FROM jobs WHERE state = 'queued' AND run_after <= ? "
        "{filter} ORDER BY priority, id LIMIT ? {lock}) "
        "UPDATE jobs SET state = 'claimed', worker = ?, token = ?, claimed_at = ?, "
        "heartbeat_at = ?, lease_expires_at = ?, attempts = attempts + 1 "
        "WHERE id IN (SELECT id FROM picked) RETURNING *"
    ),
    "heartbeat": (
        "UPDATE jobs SET heartbeat_at = ?, lease_expires_at = ? "
        "WHERE state = 'claimed' AND token = ? AND id IN ({ids}) RETURNING id"
    ),
    "complete": (
        "UPDATE jobs SET state = 'completed', finished_at = ?, lease_expires_at = NULL "
        "WHERE id = ? AND token = ? AND state = 'claimed'"
    ),
    "complete_many": (
        "UPDATE jobs SET state = 'completed', finished_at = ?, lease_expires_at = NULL "
        "WHERE state = 'claimed' AND token = ? AND id IN ({ids}) RETURNING id"
    ),
    "fail": (
        "UPDATE jobs SET state = 'failed', finished_at = ?, error = ?, lease_expires_at = NULL "
        "WHERE id = ? AND token = ? AND state = 'claimed'"
    ),
    "release": (
        "UPDATE jobs SET state = 'queued', run_after = ?, worker = NULL, token = NULL, "
        "lease_expires_at = NULL, error = ? WHERE id = ? AND token = ? AND state = 'claimed'"
    ),
    "reschedule": "UPDATE jobs SET run_after = ? WHERE id = ? AND state = 'queued'",
    "holds": "SELECT id FROM jobs WHERE id = ? AND token = ? AND state = 'claimed'",
    "requeue_expired": (
        "UPDATE jobs SET state = 'queued', run_after = ?, worker = NULL, token = NULL, "
        "lease_expires_at = NULL, error = ? "
        "WHERE state = 'claimed' AND lease_expires_at < ? RETURNING *"
    ),
    "revoke": (
        "UPDATE jobs SET state = ?, finished_at = ?, error = ?, token = NULL, "
        "lease_expires_at = NULL WHERE id = ? AND state IN ('queued', 'claimed') RETURNING *"
    ),
    # --- purging: finished jobs only, never a queued or claimed one ---
    "count_of_runs": (
        "SELECT COUNT(*) AS n FROM jobs WHERE run_id IN ({ids}) "
        "AND state IN ('completed', 'failed', 'cancelled')"
    ),
    "delete_of_runs": (
        "DELETE FROM jobs WHERE run_id IN ({ids}) AND state IN ('completed', 'failed', 'cancelled')"
    ),
    # a job no run needs: none (QueueManager.enqueue's), or a run no longer kept
    "unowned_finished": (
        "SELECT id FROM jobs j WHERE j.state IN ('completed', 'failed', 'cancelled') "
        "AND j.finished_at < ? AND j.id > ? AND j.pipeline IN ({pipelines}) AND (j.run_id IS NULL "
        "OR NOT EXISTS (SELECT 1 FROM scheduled_runs r WHERE r.id = j.run_id)) "
        "ORDER BY j.id LIMIT ?"
    ),
    "delete_ids": "DELETE FROM jobs WHERE id IN ({ids})",
    "get": "SELECT * FROM jobs WHERE id = ?",
    "live_of_run": "SELECT * FROM jobs WHERE run_id = ? AND state IN ('queued', 'claimed')",
    # jobs QueueManager.enqueue's callers queued (no run linked): the seed's pattern 1
    # enqueues its own job for the run it made PENDING
    "unlinked_live": (
        "SELECT * FROM jobs WHERE run_id IS NULL AND pipeline = ? AND tenant = ? "
        "AND state IN ('queued', 'claimed') ORDER BY id"
    ),
    "length": "SELECT COUNT(*) AS n FROM jobs WHERE state = ? {filter}",
    "tenants": "SELECT DISTINCT tenant FROM jobs ORDER BY tenant",
    "status": (
        "SELECT tenant, "
        "SUM(CASE WHEN state = 'queued' THEN 1 ELSE 0 END) AS queued, "
        "SUM(CASE WHEN state = 'queued' AND run_after <= ? THEN 1 ELSE 0 END) AS due, "
        "SUM(CASE WHEN state = 'claimed' THEN 1 ELSE 0 END) AS running, "
        "SUM(CASE WHEN state = 'completed' THEN 1 ELSE 0 END) AS completed, "
        "SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END) AS failed, "
        "AVG(CASE WHEN state = 'queued' AND run_after <= ? THEN ? - run_after END) "
        "AS avg_wait_seconds, "
        "MAX(CASE WHEN state = 'queued' AND run_after <= ? THEN ? - run_after END) "
        "AS max_wait_seconds, "
        # a job given back after its claim (a wait, a cancel) has a run_after later than
        # that claim: its start wait is not known, rather than negative
        "AVG(CASE WHEN claimed_at >= run_after THEN claimed_at - run_after END) "
        "AS avg_start_wait_seconds, "
        "MAX(CASE WHEN claimed_at >= run_after THEN claimed_at - run_after END) "
        "AS max_start_wait_seconds "
        "FROM jobs {where} GROUP BY tenant ORDER BY tenant"
    ),
}


MAX_KEY_LENGTH = 255


def key_problem(key: object) -> str | None:
    """What is wrong with an idempotency key, or None: it is non-empty text of at most
    255 characters (a UUID, `tenant:pipeline:date`, the seed's row id)."""
    if not isinstance(key, str) or not key.strip():
        return f"idempotency_key must be non-empty text, got {key!r}"
    if len(key) > MAX_KEY_LENGTH:
        return f"idempotency_key is {len(key)} characters long; at most {MAX_KEY_LENGTH}"
    return None


def job_problem(pipeline: object, tenant: object, priority: object) -> str | None:
    """What is wrong with a job's pipeline, tenant or priority, or None: a priority is a
    whole number from 1 to 10 (not 2.5, which would be stored as 2; not True, which
    would be 1), a tenant and a pipeline are non-empty text."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        return f"priority must be a whole number from 1 (highest) to 10, got {priority!r}"
    if not 1 <= priority <= 10:
        return f"priority must be between 1 (highest) and 10, got {priority}"
    for name, value in (("tenant", tenant), ("pipeline", pipeline)):
        if not isinstance(value, str) or not value.strip():
            return f"{name} must be non-empty text, got {value!r}"
    return None


@dataclass(frozen=True)
class JobSpec:
    """A job to enqueue: which pipeline runs it, its payload, priority and tenant."""

    pipeline: str
    payload: dict[str, Any] | None = None
    priority: int = 5
    tenant: str = "default"
    run_id: str | None = None
    run_after: float | None = None
    #: Makes the enqueue idempotent: the tenant's first job with this key is the only one
    #: (`Queue.enqueue` returns its id to every later enqueue with the key).
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        problem = job_problem(self.pipeline, self.tenant, self.priority)
        if problem is None and self.idempotency_key is not None:
            problem = key_problem(self.idempotency_key)
        if problem:
            raise ValueError(problem)

    @property
    def payload_json(self) -> str | None:
        """The payload as the row keeps it."""
        return None if self.payload is None else json.dumps(self.payload, sort_keys=True)

    def row(self, at: float) -> tuple[Any, ...]:
        """The values of the enqueue statement."""
        due = at if self.run_after is None else self.run_after
        return (
            self.pipeline,
            self.tenant,
            self.priority,
            self.run_id,
            self.payload_json,
            at,
            due,
            self.idempotency_key,
        )


# The seed's names of a job's fields (its `x_meta_pipeline_queue` columns and its
# callers' `item["..."]`), each onceflow's field of the same value.
JOB_SEED_NAMES = {
    "queue_id": "id",
    "status": "state",
    "created_at": "enqueued_at",
    "tenant_id": "tenant",
    "worker_id": "worker",
    "config": "payload",
    "row_id": "idempotency_key",
}


@dataclass(frozen=True)
class Job:
    """A job row; `token` is the fencing token of its current claim.

    The seed's callers read a dequeued item by key (`item["priority"]`, `item["queue_id"]`)
    and under its own names (`queue_id`, `status`, `created_at`, `tenant_id`,
    `worker_id`, `config`: `JOB_SEED_NAMES`): both work, as attributes and as keys, beside
    onceflow's fields. A job stays a frozen dataclass; `job["nosuch"]` is a KeyError.
    """

    id: int
    pipeline: str
    tenant: str
    priority: int
    run_id: str | None
    payload_json: str | None
    state: str
    enqueued_at: float
    run_after: float
    claimed_at: float | None
    worker: str | None
    token: str | None
    heartbeat_at: float | None
    lease_expires_at: float | None
    attempts: int
    error: str | None
    finished_at: float | None
    # schema version 8; the default keeps records built from older rows valid
    idempotency_key: str | None = None

    @property
    def payload(self) -> dict[str, Any] | None:
        """The job's payload (JSON in the row)."""
        return None if self.payload_json is None else dict(json.loads(self.payload_json))

    @property
    def queue_id(self) -> int:
        """The seed's name of `id`."""
        return self.id

    @property
    def status(self) -> str:
        """The seed's name of `state` (`queued`, `claimed`, `completed`, ...)."""
        return self.state

    @property
    def created_at(self) -> float:
        """The seed's name of `enqueued_at` (seconds since the epoch)."""
        return self.enqueued_at

    @property
    def tenant_id(self) -> str:
        """The seed's name of `tenant`."""
        return self.tenant

    @property
    def worker_id(self) -> str | None:
        """The seed's name of `worker`: who claimed the job last."""
        return self.worker

    @property
    def config(self) -> dict[str, Any] | None:
        """The seed's name of `payload`: `enqueue(tenant_id, config)` keeps the config."""
        return self.payload

    @property
    def row_id(self) -> str | None:
        """The seed's name of `idempotency_key` (its `insert_rows_json(..., row_ids=)`)."""
        return self.idempotency_key

    def keys(self) -> list[str]:
        """Every key a job answers to: its fields, `payload`, and the seed's names."""
        return [*(f.name for f in fields(self)), "payload", *JOB_SEED_NAMES]

    def __getitem__(self, key: str) -> Any:
        # only the listed names: `job["__class__"]` or a method name is no field
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def get(self, key: str, default: Any = None) -> Any:
        """`job[key]`, or `default` for a key a job does not have (as a dict's `get`)."""
        return self[key] if key in self.keys() else default


def _jobs(rows: list[dict[str, Any]]) -> list[Job]:
    for row in rows:
        row["payload_json"] = row.get("payload")
    return sorted(rows_as(Job, rows), key=lambda j: (j.priority, j.id))


def _marks(n: int) -> str:
    return ", ".join("?" * n)


@dataclass(frozen=True)
class TenantQueueStatus:
    """Queue figures of one tenant (waits in seconds; None when nothing waited).
    `TenantQueueStatus.empty(tenant)` is a tenant with no jobs."""

    tenant: str
    queued: int
    due: int
    running: int
    completed: int
    failed: int
    avg_wait_seconds: float | None
    max_wait_seconds: float | None
    avg_start_wait_seconds: float | None
    max_start_wait_seconds: float | None

    @classmethod
    def empty(cls, tenant: str) -> TenantQueueStatus:
        """The figures of a tenant without jobs: zero counts, no waits."""
        return cls(tenant, 0, 0, 0, 0, 0, None, None, None, None)


class Queue:
    """The `jobs` table."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._local = threading.local()

    @contextmanager
    def _tx(self, tx: Tx | None) -> Iterator[Tx]:
        if tx is not None:
            yield tx
        else:
            with self.db.transaction() as own:
                yield own

    # --- enqueue --------------------------------------------------------------------

    def enqueue(self, spec: JobSpec, *, tx: Tx | None = None) -> int:
        """Add one job; returns its id. Listeners are woken when the transaction commits.

        With `spec.idempotency_key`, idempotent: when the tenant already has a job with
        that key, in any state, nothing is queued and that job's id is returned (a
        retry after a timeout). The earlier job must be the same request (pipeline,
        priority, payload, run): a key reused for another one is refused with
        ConfigError, as it would silently drop that request."""
        with self._tx(tx) as t:
            row = t.execute(SQL["enqueue_returning"], spec.row(time.time())).fetchone()
            if row is None:
                return self._existing(t, spec)
            self.db.notify(t, CHANNEL, spec.pipeline)
        return int(row["id"])

    def _existing(self, t: Tx, spec: JobSpec) -> int:
        """The job an enqueue found under its key (its insert did nothing)."""
        found = _jobs(t.execute(SQL["by_key"], (spec.tenant, spec.idempotency_key)).fetchall())
        if not found:  # only a unique key skips the insert: `runs purge` removed its job since
            raise StateError(
                f"enqueue: idempotency key {spec.idempotency_key!r} of tenant {spec.tenant} "
                "matched a job that is gone; try again"
            )
        job = found[0]
        theirs = (job.pipeline, job.priority, job.payload_json, job.run_id)
        if theirs != (spec.pipeline, spec.priority, spec.payload_json, spec.run_id):
            raise ConfigError(
                f"enqueue: idempotency key {spec.idempotency_key!r} of tenant {spec.tenant} "
                f"was used by job {job.id} (pipeline {job.pipeline}, priority {job.priority}) "
                "for another request; a key names one job: give this one its own key",
                field="idempotency_key",
            )
        log.info(
            "enqueue: tenant %s key %r is job %d (%s); nothing queued",
            spec.tenant,
            spec.idempotency_key,
            job.id,
            job.state,
        )
        return job.id

    def enqueue_many(self, specs: Sequence[JobSpec], *, tx: Tx | None = None) -> int:
        """Add many jobs in one transaction (one wake-up); returns how many. Jobs with an
        idempotency key go one by one through `enqueue`, which says what each became."""
        keyed = [s for s in specs if s.idempotency_key is not None]
        if keyed:
            raise ValueError(
                f"enqueue_many: {len(keyed)} job(s) have an idempotency key; enqueue them "
                "with enqueue(), which returns the id each key stands for"
            )
        at = time.time()
        with self._tx(tx) as t:
            t.executemany(SQL["enqueue"], [s.row(at) for s in specs])
            if specs:
                self.db.notify(t, CHANNEL, specs[0].pipeline)
        return len(specs)

    # --- claim and lease --------------------------------------------------------------

    def claim(
        self,
        worker: str,
        *,
        limit: int = 1,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        pipelines: Sequence[str] | None = None,
        complete: Sequence[Job] = (),
    ) -> list[Job]:
        """Claim up to `limit` due jobs (of `pipelines` only, when given), highest
        priority first, FIFO within a priority; each gets a token and a lease.

        `complete` - the jobs this worker just finished - are marked completed in the same
        transaction (one commit, one WAL flush, instead of two): if any of them is no
        longer held (LeaseLostError), nothing is completed and nothing claimed."""
        if complete:
            with self.db.transaction() as t:
                self._complete_many(t, complete)
                return self._claim(t, worker, limit, lease_seconds, pipelines)
        with self.db.statement() as t:
            return self._claim(t, worker, limit, lease_seconds, pipelines)

    def _claim(
        self,
        t: Tx,
        worker: str,
        limit: int,
        lease_seconds: float,
        pipelines: Sequence[str] | None,
    ) -> list[Job]:
        at = time.time()
        flt = f"AND pipeline IN ({_marks(len(pipelines))})" if pipelines else ""
        sql = SQL["claim"].format(filter=flt, lock=self.db.skip_locked)
        params = (
            at,
            *(pipelines or ()),
            limit,
            worker,
            uuid.uuid4().hex,
            at,
            at,
            at + lease_seconds,
        )
        return _jobs(t.execute(sql, params).fetchall())

    def heartbeat(
        self, jobs: Sequence[Job], *, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> set[int]:
        """Extend the leases of `jobs`; returns the ids no longer held (lost leases)."""
        at = time.time()
        kept: set[int] = set()
        by_token: dict[str, list[int]] = {}
        for job in jobs:
            by_token.setdefault(job.token or "", []).append(job.id)
        with self.db.transaction() as t:
            for token, ids in by_token.items():
                sql = SQL["heartbeat"].format(ids=_marks(len(ids)))
                rows = t.execute(sql, (at, at + lease_seconds, token, *ids)).fetchall()
                kept.update(int(r["id"]) for r in rows)
        return {j.id for j in jobs} - kept

    def holds(self, job_id: int, token: str, *, tx: Tx | None = None) -> bool:
        """True while `token` is the job's current claim."""
        with self._tx(tx) as t:
            return t.execute(SQL["holds"], (job_id, token)).fetchone() is not None

    def check(self, job_id: int, token: str, *, tx: Tx | None = None) -> None:
        """LeaseLostError unless `token` still holds the job."""
        if not self.holds(job_id, token, tx=tx):
            raise LeaseLostError(
                f"job {job_id}: lease lost (expired or revoked, maybe claimed again); "
                "this worker's result is discarded",
                job_id=job_id,
            )

    def _fenced(self, sql: str, params: Sequence[Any], job_id: int, tx: Tx | None) -> None:
        if tx is None:
            with self.db.statement() as t:
                n = t.execute(sql, params).rowcount
        else:
            n = tx.execute(sql, params).rowcount
        if n != 1:
            raise LeaseLostError(
                f"job {job_id}: lease lost (expired or revoked, maybe claimed again); "
                "this worker's result is refused",
                job_id=job_id,
            )

    # --- finishing ----------------------------------------------------------------------

    def complete(self, job_id: int, token: str, *, tx: Tx | None = None) -> None:
        """Mark a claimed job completed; LeaseLostError when `token` no longer holds it."""
        self._fenced(SQL["complete"], (time.time(), job_id, token), job_id, tx)

    def complete_many(self, jobs: Sequence[Job]) -> int:
        """Complete claimed jobs, one statement per claim (token), all or none:
        LeaseLostError names the jobs whose lease was lost, and none is completed."""
        with self.db.transaction() as t:
            return self._complete_many(t, jobs)

    def _complete_many(self, t: Tx, jobs: Sequence[Job]) -> int:
        by_token: dict[str, list[int]] = {}
        for job in jobs:
            by_token.setdefault(job.token or "", []).append(job.id)
        done: list[int] = []
        at = time.time()
        for token, ids in by_token.items():
            sql = SQL["complete_many"].format(ids=_marks(len(ids)))
            done += [int(r["id"]) for r in t.execute(sql, (at, token, *ids)).fetchall()]
        if len(done) != len(jobs):
            lost = sorted({j.id for j in jobs} - set(done))
            # raising rolls the transaction back: the batch is completed whole or not at all
            raise LeaseLostError(
                f"jobs {lost}: lease lost before completion; their results are refused",
                job_id=lost[0] if lost else None,
            )
        return len(done)

    def fail(self, job_id: int, token: str, error: str, *, tx: Tx | None = None) -> None:
        """Mark a claimed job failed with its error message (fenced like `complete`)."""
        self._fenced(SQL["fail"], (time.time(), error, job_id, token), job_id, tx)

    def release(
        self,
        job_id: int,
        token: str,
        *,
        run_after: float | None = None,
        note: str | None = None,
        tx: Tx | None = None,
    ) -> None:
        """Put a claimed job back in the queue, due at `run_after` (fenced)."""
        due = time.time() if run_after is None else run_after
        self._fenced(SQL["release"], (due, note, job_id, token), job_id, tx)

    def reschedule(self, job_id: int, run_after: float, *, tx: Tx | None = None) -> bool:
        """Move a queued job's due time; False when it is no longer queued (claimed or
        ended meanwhile: a job already started is not moved)."""
        with self._tx(tx) as t:
            return bool(t.execute(SQL["reschedule"], (run_after, job_id)).rowcount == 1)

    def requeue_expired(self, *, tx: Tx | None = None) -> list[Job]:
        """Jobs whose lease expired go back to the queue (their tokens are cleared, so
        their old holders are fenced); returns them."""
        at = time.time()
        with self._tx(tx) as t:
            rows = t.execute(SQL["requeue_expired"], (at, "lease expired; requeued", at)).fetchall()
            if rows:
                self.db.notify(t, CHANNEL, "requeued")
        return _jobs(rows)

    def revoke(
        self, job_id: int, error: str, *, state: str = FAILED, tx: Tx | None = None
    ) -> Job | None:
        """End a queued or claimed job whoever holds it (`failed` or `cancelled`); its
        holder's token is fenced. Returns the job, or None when it had already ended."""
        with self._tx(tx) as t:
            rows = t.execute(SQL["revoke"], (state, time.time(), error, job_id)).fetchall()
        jobs = _jobs(rows)
        return jobs[0] if jobs else None

    # --- purging ----------------------------------------------------------------------

    def finished_of_runs(
        self, run_ids: Sequence[str], *, delete: bool = False, tx: Tx | None = None
    ) -> int:
        """How many finished jobs the runs have; deleted too with `delete`."""
        if not run_ids:
            return 0
        sql = SQL["delete_of_runs" if delete else "count_of_runs"].format(ids=_marks(len(run_ids)))
        with self._tx(tx) as t:
            cursor = t.execute(sql, tuple(run_ids))
            if delete:
                return int(cursor.rowcount)
            row = cursor.fetchone()
        return int(row["n"]) if row else 0

    def unowned_finished(
        self,
        before: float,
        *,
        pipelines: Sequence[str],
        after: int = 0,
        limit: int = 1000,
        tx: Tx | None = None,
    ) -> list[int]:
        """Up to `limit` ids (above `after`, in order) of finished jobs of `pipelines` that
        ended before `before` (seconds since the epoch) and that no scheduled run has:
        enqueued without one (`QueueManager.enqueue`), or their run was purged."""
        if not pipelines:
            return []
        sql = SQL["unowned_finished"].format(pipelines=_marks(len(pipelines)))
        with self._tx(tx) as t:
            rows = t.execute(sql, (before, after, *pipelines, limit)).fetchall()
        return [int(r["id"]) for r in rows]

    def delete_finished(self, job_ids: Sequence[int], *, tx: Tx | None = None) -> int:
        """Delete those of the jobs that have finished (a queued or claimed one stays);
        their idempotency keys are free again. Returns how many."""
        if not job_ids:
            return 0
        sql = SQL["delete_ids"].format(ids=_marks(len(job_ids)))
        sql += " AND state IN ('completed', 'failed', 'cancelled')"
        with self._tx(tx) as t:
            return int(t.execute(sql, tuple(job_ids)).rowcount)

    # --- reading ----------------------------------------------------------------------

    def get(self, job_id: int, *, tx: Tx | None = None) -> Job | None:
        """The job with this id, or None."""
        with self._tx(tx) as t:
            jobs = _jobs(t.execute(SQL["get"], (job_id,)).fetchall())
        return jobs[0] if jobs else None

    def live_job_of_run(self, run_id: str, *, tx: Tx | None = None) -> Job | None:
        """The queued or claimed job of a scheduled run, or None."""
        with self._tx(tx) as t:
            jobs = _jobs(t.execute(SQL["live_of_run"], (run_id,)).fetchall())
        return jobs[0] if jobs else None

    def unlinked_live_jobs(self, pipeline: str, tenant: str) -> list[Job]:
        """The queued or claimed jobs of a pipeline and tenant that no run is linked to
        (queued by `QueueManager.enqueue`'s callers, as the seed's pattern 1 does)."""
        with self.db.transaction() as t:
            return _jobs(t.execute(SQL["unlinked_live"], (pipeline, tenant)).fetchall())

    def length(
        self, *, pipeline: str | None = None, tenant: str | None = None, state: str = QUEUED
    ) -> int:
        """How many jobs are queued (due or not), or in another `state` (`claimed`)."""
        conds: list[str] = []
        params: list[str] = [state]
        for column, value in (("pipeline", pipeline), ("tenant", tenant)):
            if value is not None:
                conds.append(f"AND {column} = ?")
                params.append(value)
        with self.db.transaction() as t:
            row = t.execute(SQL["length"].format(filter=" ".join(conds)), params).fetchone()
        return int(row["n"]) if row else 0

    def tenants(self) -> list[str]:
        """Every tenant with a job in the queue (in any state), in order."""
        with self.db.transaction() as t:
            return [str(r["tenant"]) for r in t.execute(SQL["tenants"]).fetchall()]

    def status(self, *, tenant: str | None = None) -> list[TenantQueueStatus]:
        """Per tenant: queued, due, running, completed and failed jobs; the average and
        maximum wait of due jobs so far, and of claimed jobs before their start."""
        at = time.time()
        where, params = ("WHERE tenant = ?", [tenant]) if tenant is not None else ("", [])
        with self.db.transaction() as t:
            rows = t.execute(
                SQL["status"].format(where=where), (at, at, at, at, at, *params)
            ).fetchall()
        return rows_as(TenantQueueStatus, rows)

    # --- waiting ----------------------------------------------------------------------

    def listen(self) -> Listener:
        """Start listening for enqueued jobs in this thread (before the first claim, so
        that no wake-up between that claim and the first wait is missed)."""
        listener: Listener | None = getattr(self._local, "listener", None)
        if listener is None:
            listener = self.db.listener(CHANNEL)
            self._local.listener = listener
        return listener

    def wait_for_jobs(self, timeout: float) -> bool:
        """Block until a job may have been enqueued (NOTIFY on PostgreSQL, a commit on
        SQLite) or `timeout` seconds passed; True when woken. Claim again either way."""
        return self.listen().wait(timeout)

    def close_listener(self) -> None:
        """Stop listening (this thread's listener)."""
        listener: Listener | None = getattr(self._local, "listener", None)
        if listener is not None:
            self._local.listener = None
            listener.close()
