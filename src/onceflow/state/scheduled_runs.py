"""Scheduled runs: one row per (pipeline, schedule, tick), a state machine with history.

    SCHEDULED -> PENDING -> RUNNING -> COMPLETED | FAILED
    FAILED -> PENDING            a retry (or a backfill's --reprocess failed)
    RUNNING -> PENDING           requeued: its lease expired, or it waits for an earlier window
    COMPLETED | CANCELLED -> PENDING   reprocessed (backfill --reprocess all)
    SCHEDULED | PENDING | RUNNING | FAILED -> CANCELLED

A tick is stored as its UTC instant and the unique key (pipeline, schedule, tick) makes
recording a tick idempotent: any number of schedulers insert it, one row results. Every
transition is one conditional update (`... WHERE id = ? AND state = ?`), so of two
racing writers exactly one wins; an illegal transition is refused before any SQL, and
every transition is kept in `scheduled_run_history` with its time, worker and error.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from onceflow.clock import now_iso
from onceflow.errors import TransitionError
from onceflow.redact import redact
from onceflow.state.db import Database, Tx, record_from_row, rows_as
from onceflow.state.queue import job_problem

SCHEDULED = "SCHEDULED"
PENDING = "PENDING"
RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
RUN_STATES = (SCHEDULED, PENDING, RUNNING, COMPLETED, FAILED, CANCELLED)

TRANSITIONS: dict[str, frozenset[str]] = {
    SCHEDULED: frozenset({PENDING, CANCELLED}),
    PENDING: frozenset({RUNNING, CANCELLED}),
    RUNNING: frozenset({COMPLETED, FAILED, PENDING, CANCELLED}),
    FAILED: frozenset({PENDING, CANCELLED}),
    COMPLETED: frozenset({PENDING}),
    CANCELLED: frozenset({PENDING}),
}
# Columns a transition may set besides the state (never built from user input).
_SETTABLE = frozenset(
    {
        "worker",
        "job_id",
        "error",
        "error_type",
        "error_types",
        "waiting_on",
        "next_attempt_at",
        "started_at",
        "ended_at",
        "force_reprocess",
        "priority",
        "duration_seconds",
        "pipeline_logging_id",
    }
)

SQL = {
    "insert": (
        "INSERT INTO scheduled_runs (id, pipeline, schedule, tick, kind, batch, tenant, "
        "priority, run_date, window_start, window_end, tables, state, retry_policy, "
        "max_runtime_seconds, force_reprocess, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (pipeline, schedule, tick) DO NOTHING RETURNING id"
    ),
    "history": (
        "INSERT INTO scheduled_run_history (run_id, from_state, to_state, at, worker, error, "
        "reason) VALUES (?, ?, ?, ?, ?, ?, ?)"
    ),
    "transition": "UPDATE scheduled_runs SET {sets} WHERE id = ? AND state = ?",
    # the rows are locked first, in id order, skipping rows another transaction holds:
    # two passes queueing overlapping runs in different orders deadlocked (PostgreSQL);
    # a skipped row is being moved by the other, or stays for the next pass. {lock} is
    # the backend's skip_locked (empty on SQLite, whose write lock is already serial)
    "transition_many": (
        "UPDATE scheduled_runs SET state = ?, updated_at = ? WHERE id IN ("
        "SELECT id FROM scheduled_runs WHERE state = ? AND id IN ({ids}) ORDER BY id {lock}"
        ") AND state = ? RETURNING id"
    ),
    "set_job": "UPDATE scheduled_runs SET job_id = ? WHERE id = ?",
    "set_next_attempt": (
        "UPDATE scheduled_runs SET next_attempt_at = ?, updated_at = ? "
        "WHERE id = ? AND state = 'PENDING'"
    ),
    "get": "SELECT * FROM scheduled_runs WHERE id = ?",
    "get_key": "SELECT * FROM scheduled_runs WHERE pipeline = ? AND schedule = ? AND tick = ?",
    "find": "SELECT * FROM scheduled_runs {where} ORDER BY tick {order}, id {order} LIMIT ?",
    "history_of": "SELECT * FROM scheduled_run_history WHERE run_id = ? ORDER BY id",
    "due": "SELECT * FROM scheduled_runs WHERE state = 'SCHEDULED' AND tick <= ? ORDER BY tick",
    "cursor": "SELECT last_tick FROM schedule_cursors WHERE pipeline = ? AND schedule = ?",
    "cursor_init": (
        "INSERT INTO schedule_cursors (pipeline, schedule, last_tick, updated_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (pipeline, schedule) DO NOTHING"
    ),
    # a paused schedule's cursor does not move: a pause committed first makes this
    # update match nothing (PostgreSQL re-reads the row it waited for), and the
    # scheduler records nothing; a pause waiting on the row comes after the ticks
    "cursor_advance": (
        "UPDATE schedule_cursors SET last_tick = ?, updated_at = ? "
        "WHERE pipeline = ? AND schedule = ? AND last_tick = ? AND paused_at IS NULL"
    ),
    "cursor_row": (
        "SELECT pipeline, schedule, last_tick, paused_at, pause_reason FROM schedule_cursors "
        "WHERE pipeline = ? AND schedule = ?"
    ),
    "paused": (
        "SELECT pipeline, schedule, last_tick, paused_at, pause_reason FROM schedule_cursors "
        "WHERE paused_at IS NOT NULL ORDER BY pipeline, schedule"
    ),
    "pause": (
        "UPDATE schedule_cursors SET paused_at = ?, pause_reason = ?, updated_at = ? "
        "WHERE pipeline = ? AND schedule = ? AND paused_at IS NULL"
    ),
    "resume": (
        "UPDATE schedule_cursors SET paused_at = NULL, pause_reason = NULL, last_tick = ?, "
        "updated_at = ? WHERE pipeline = ? AND schedule = ? AND paused_at IS NOT NULL"
    ),
    # --- purging: finished runs that ended before a cutoff, none with a live job ---
    "finished_before": (
        "SELECT * FROM scheduled_runs r WHERE r.state IN ('COMPLETED', 'CANCELLED', 'FAILED') "
        "AND COALESCE(r.ended_at, r.updated_at) < ? AND r.id > ? AND r.pipeline IN ({pipelines}) "
        "AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.id "
        "AND j.state IN ('queued', 'claimed')) ORDER BY r.id LIMIT ?"
    ),
    "latest_of": (
        "SELECT id FROM scheduled_runs WHERE pipeline = ? AND schedule = ? "
        "ORDER BY tick DESC LIMIT 1"
    ),
    # a later window of the batch that a purge keeps: not finished, ended after the
    # cutoff, or its schedule's latest run (the blocking rule reads the earlier failure)
    # a later window that may still run: not finished, or failed or cancelled since the
    # cutoff (a retry of it reads its blockers). A COMPLETED one cannot be blocked again,
    # and one as old as the cutoff is as old as its blockers: a schedule's latest run kept
    # for `schedule list` alone does not keep a finished batch's failed windows for ever
    "later_kept": (
        "SELECT id FROM scheduled_runs WHERE pipeline = ? AND schedule = ? AND batch = ? "
        "AND batch <> '' AND run_date > ? AND (state NOT IN ('COMPLETED', 'CANCELLED', "
        "'FAILED') OR (state <> 'COMPLETED' AND COALESCE(ended_at, updated_at) >= ?)) LIMIT 1"
    ),
    "delete_finished": (
        "DELETE FROM scheduled_runs WHERE id IN ({ids}) "
        "AND state IN ('COMPLETED', 'CANCELLED', 'FAILED') "
        "AND COALESCE(ended_at, updated_at) < ? RETURNING id"
    ),
    "delete_history": "DELETE FROM scheduled_run_history WHERE run_id IN ({ids})",
    "count_history": "SELECT COUNT(*) AS n FROM scheduled_run_history WHERE run_id IN ({ids})",
    # an earlier window still to load, of any schedule (a nightly run must not load past
    # a backfill's day still extracting), or one of its own schedule's not queued yet, or
    # one that failed for good in its own batch (a failure elsewhere never blocks; runs
    # recorded through the API before they had a batch of their own have '': none).
    # {sharing} keeps the runs that share a table with it: filtered after a LIMIT, 50
    # runs of another table's backfill hid an earlier window of its own table, which
    # then loaded after the later one. Failed ones first: they block for good
    "earlier": (
        "SELECT * FROM scheduled_runs WHERE pipeline = ? AND run_date < ? AND id <> ? "
        "AND (state IN ('PENDING', 'RUNNING') OR (schedule = ? AND state = 'SCHEDULED') "
        "OR (schedule = ? AND state = 'FAILED' AND batch = ? AND batch <> '')){sharing} "
        "ORDER BY CASE WHEN state = 'FAILED' THEN 0 ELSE 1 END, run_date, id "
        "LIMIT ? OFFSET ?"
    ),
    # the next later window of the schedule that waits for an earlier one to load
    "next_waiting": (
        "SELECT * FROM scheduled_runs WHERE pipeline = ? AND run_date > ? "
        "AND state = 'PENDING' AND waiting_on IS NOT NULL ORDER BY run_date LIMIT 1"
    ),
    # PENDING runs without a live job since before a cutoff: nothing would ever run them
    # (a row edited by hand); the scheduler queues a job for each. The cutoff leaves the
    # seed's caller the moment between its SCHEDULED -> PENDING and its own enqueue
    "orphans": (
        "SELECT * FROM scheduled_runs r WHERE r.state = 'PENDING' AND r.updated_at < ? "
        "AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.id "
        "AND j.state IN ('queued', 'claimed')) ORDER BY tick, id LIMIT ?"
    ),
    "counts": (
        "SELECT state, COUNT(*) AS n FROM scheduled_runs {where} GROUP BY state ORDER BY state"
    ),
    "last_in_state": (
        "SELECT * FROM scheduled_runs WHERE state = ? {filter} ORDER BY ended_at DESC LIMIT 1"
    ),
    # the latest failure, retried or not: a run failed then retried to success is no
    # longer FAILED, but its failure happened (and the queue counts its failed job)
    "last_failure": (
        "SELECT h.* FROM scheduled_run_history h JOIN scheduled_runs r ON r.id = h.run_id "
        "WHERE h.to_state = 'FAILED' {filter} ORDER BY h.id DESC LIMIT 1"
    ),
    "tenants": "SELECT DISTINCT tenant FROM scheduled_runs ORDER BY tenant",
    "by_dates": (
        "SELECT * FROM scheduled_runs WHERE pipeline = ? AND schedule = ? AND run_date IN ({dates})"
    ),
}


@dataclass(frozen=True)
class RunSpec:
    """A scheduled run to record: a tick of a schedule (or a backfill's data date)."""

    pipeline: str
    schedule: str
    tick: str
    run_date: str
    window_start: str
    window_end: str
    kind: str = "scheduled"
    batch: str = ""
    tenant: str = "default"
    priority: int = 5
    tables: Sequence[str] | None = None
    retry_policy: str | None = None
    max_runtime_seconds: float | None = None
    force_reprocess: bool = False

    def __post_init__(self) -> None:
        # what its job will need: a row that cannot be queued would stall the scheduler
        problem = job_problem(self.pipeline, self.tenant, self.priority)
        if problem:
            raise ValueError(problem)


@dataclass(frozen=True)
class ScheduledRunRecord:
    """One scheduled run and where it stands."""

    id: str
    pipeline: str
    schedule: str
    tick: str
    kind: str
    batch: str
    tenant: str
    priority: int
    run_date: str
    window_start: str
    window_end: str
    tables: str | None
    state: str
    attempt: int
    retry_policy: str | None
    max_runtime_seconds: float | None
    force_reprocess: bool
    next_attempt_at: str | None
    worker: str | None
    job_id: int | None
    error: str | None
    error_type: str | None
    waiting_on: str | None
    created_at: str
    started_at: str | None
    ended_at: str | None
    updated_at: str
    # schema version 6; defaults keep records built from older rows valid
    duration_seconds: float | None = None
    pipeline_logging_id: str | None = None
    # schema version 7: every type name of the error (JSON), for the retry policy
    error_types: str | None = None
    # not stored: a RUNNING run whose job's lease ran out (ISO instant), as `runs list`
    # finds it; its worker is gone, and the next scheduler or worker pass requeues it
    lease_expired_at: str | None = None

    # --- the seed's names (its `x_meta_scheduled_runs` columns) of fields kept here

    @property
    def run_id(self) -> str:
        """The seed's name of `id`."""
        return self.id

    @property
    def scheduled_time(self) -> str:
        """The seed's name of `tick`: the UTC instant the run is scheduled at (ISO)."""
        return self.tick

    @property
    def tenant_id(self) -> str:
        """The seed's name of `tenant`."""
        return self.tenant

    @property
    def status(self) -> str:
        """The seed's name of `state` (SCHEDULED, PENDING, RUNNING, ...)."""
        return self.state

    def seed_fields(self) -> dict[str, str]:
        """The seed's names with their values, as `get_run_status` adds them."""
        return {
            "run_id": self.run_id,
            "scheduled_time": self.scheduled_time,
            "tenant_id": self.tenant_id,
            "status": self.status,
        }

    @property
    def error_names(self) -> tuple[str, ...]:
        """The type names of the run's last error (its class, bases, `TransientError`),
        or its `error_type` alone for a run recorded before they were kept."""
        if self.error_types:
            return tuple(json.loads(self.error_types))
        return (self.error_type,) if self.error_type else ()

    @property
    def table_list(self) -> list[str] | None:
        """The run's tables (None: all of the pipeline's)."""
        return None if self.tables is None else list(json.loads(self.tables))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form; `run_id` beside `id`, the name every command's JSON gives a
        scheduled run's id (`runs retry`, `schedule list`'s `last_run`)."""
        names = list(self.error_names) if self.error_types else None
        return {**vars(self), "run_id": self.id, "tables": self.table_list, "error_types": names}


@dataclass(frozen=True)
class CursorRecord:
    """A schedule's cursor row: the last tick handled, and whether it is paused."""

    pipeline: str
    schedule: str
    last_tick: str
    paused_at: str | None
    pause_reason: str | None

    @property
    def paused(self) -> bool:
        """True while the schedule is paused (no tick is recorded)."""
        return self.paused_at is not None


@dataclass(frozen=True)
class TransitionRecord:
    """One transition of a run, as kept in its history."""

    id: int
    run_id: str
    from_state: str | None
    to_state: str
    at: str
    worker: str | None
    error: str | None
    reason: str | None


def check_transition(run_id: str, from_state: str, to_state: str) -> None:
    """TransitionError unless `from_state -> to_state` is in the state machine."""
    if to_state not in TRANSITIONS.get(from_state, frozenset()):
        allowed = ", ".join(sorted(TRANSITIONS.get(from_state, frozenset()))) or "none"
        raise TransitionError(
            f"scheduled run {run_id}: illegal transition {from_state} -> {to_state} "
            f"(from {from_state} only: {allowed})",
            run_id=run_id,
        )


class ScheduledRuns:
    """The `scheduled_runs`, `scheduled_run_history` and `schedule_cursors` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @contextmanager
    def _tx(self, tx: Tx | None) -> Iterator[Tx]:
        if tx is not None:
            yield tx
        else:
            with self.db.transaction() as own:
                yield own

    # --- recording ticks ----------------------------------------------------------------

    def create(
        self,
        specs: Sequence[RunSpec],
        *,
        state: str = SCHEDULED,
        reason: str = "tick recorded",
        tx: Tx | None = None,
    ) -> list[str]:
        """Record runs; a (pipeline, schedule, tick) already recorded is left as it is.
        Returns the ids of the runs this call created."""
        at = now_iso()
        created: list[str] = []
        with self._tx(tx) as t:
            for s in specs:
                tables = None if s.tables is None else json.dumps(list(s.tables))
                row = t.execute(
                    SQL["insert"],
                    (
                        uuid.uuid4().hex,
                        s.pipeline,
                        s.schedule,
                        s.tick,
                        s.kind,
                        s.batch,
                        s.tenant,
                        s.priority,
                        s.run_date,
                        s.window_start,
                        s.window_end,
                        tables,
                        state,
                        s.retry_policy,
                        s.max_runtime_seconds,
                        int(s.force_reprocess),
                        at,
                        at,
                    ),
                ).fetchone()
                if row is not None:
                    created.append(str(row["id"]))
            t.executemany(
                SQL["history"], [(rid, None, state, at, None, None, reason) for rid in created]
            )
        return created

    def cursor(self, pipeline: str, schedule: str, *, start: str, tx: Tx | None = None) -> str:
        """The last tick a schedule's scheduler handled (created at `start` if new)."""
        with self._tx(tx) as t:
            t.execute(SQL["cursor_init"], (pipeline, schedule, start, now_iso()))
            row = t.execute(SQL["cursor"], (pipeline, schedule)).fetchone()
        assert row is not None
        return str(row["last_tick"])

    def advance_cursor(self, pipeline: str, schedule: str, old: str, new: str, *, tx: Tx) -> bool:
        """Move a schedule's cursor from `old` to `new`; False when another scheduler
        moved it first, or the schedule is paused (the caller's transaction must then
        record nothing)."""
        n = tx.execute(SQL["cursor_advance"], (new, now_iso(), pipeline, schedule, old)).rowcount
        return bool(n == 1)

    # --- pausing ------------------------------------------------------------------------

    def cursor_row(
        self, pipeline: str, schedule: str, *, tx: Tx | None = None
    ) -> CursorRecord | None:
        """A schedule's cursor row (None before a scheduler or a pause first saw it)."""
        with self._tx(tx) as t:
            row = t.execute(SQL["cursor_row"], (pipeline, schedule)).fetchone()
        return record_from_row(CursorRecord, row) if row else None

    def paused(self) -> list[CursorRecord]:
        """Every paused schedule, by pipeline and schedule."""
        with self.db.transaction() as t:
            return rows_as(CursorRecord, t.execute(SQL["paused"]).fetchall())

    def pause(
        self,
        pipeline: str,
        schedule: str,
        *,
        start: str,
        reason: str | None = None,
        tx: Tx | None = None,
    ) -> tuple[CursorRecord, bool]:
        """Pause a schedule: its cursor stops (created at `start` if new, as a scheduler
        would). Returns the row and whether this call paused it (False: it was paused)."""
        with self._tx(tx) as t:
            t.execute(SQL["cursor_init"], (pipeline, schedule, start, now_iso()))
            # to the second: it is shown to operators, and nothing orders pauses by it
            paused_at = datetime.now(UTC).replace(microsecond=0).isoformat()
            note = None if reason is None else redact(reason)
            changed = t.execute(
                SQL["pause"], (paused_at, note, now_iso(), pipeline, schedule)
            ).rowcount
            row = self.cursor_row(pipeline, schedule, tx=t)
        assert row is not None
        return row, changed == 1

    def resume(
        self, pipeline: str, schedule: str, *, skip_to: str | None = None, tx: Tx | None = None
    ) -> tuple[CursorRecord | None, bool]:
        """Resume a paused schedule; with `skip_to` (a UTC instant, ISO) its cursor moves
        there, never back, so the ticks missed while paused are never recorded. Returns
        the row and whether this call resumed it (False: it was not paused)."""
        with self._tx(tx) as t:
            row = self.cursor_row(pipeline, schedule, tx=t)
            if row is None or not row.paused:
                return row, False
            last = row.last_tick
            if skip_to is not None and datetime.fromisoformat(skip_to) > datetime.fromisoformat(
                last
            ):
                last = skip_to
            t.execute(SQL["resume"], (last, now_iso(), pipeline, schedule))
            return self.cursor_row(pipeline, schedule, tx=t), True

    # --- transitions --------------------------------------------------------------------

    def transition(
        self,
        run_id: str,
        from_state: str,
        to_state: str,
        *,
        worker: str | None = None,
        error: str | None = None,
        reason: str | None = None,
        values: dict[str, Any] | None = None,
        undo_start: bool = False,
        tx: Tx | None = None,
    ) -> None:
        """Move a run from `from_state` to `to_state` with one conditional update, and
        keep the transition in its history; TransitionError when it is illegal or the
        run is no longer in `from_state`. `attempt` counts the starts (-> RUNNING);
        `undo_start` takes back the last one (a run that only found it must wait)."""
        check_transition(run_id, from_state, to_state)
        at = now_iso()
        sets = {"state": to_state, "updated_at": at, **(values or {})}
        if to_state == COMPLETED:
            # a run that completed after a failed attempt is not in error: the failure
            # stays in its history, not on the run (runs list, status --tenant)
            sets = {"error": None, "error_type": None, "error_types": None, **sets}
        unknown = set(sets) - _SETTABLE - {"state", "updated_at"}
        if unknown:
            raise ValueError(f"cannot set {sorted(unknown)} in a transition")
        if error is not None:
            error = redact(error)
            sets["error"] = error
        if worker is not None:
            sets["worker"] = worker
        assignments = [f"{k} = ?" for k in sets]
        if to_state == RUNNING:
            assignments.append("attempt = attempt + 1")  # `attempt` counts the starts
        elif undo_start and from_state == RUNNING:
            assignments.append("attempt = attempt - 1")
        sql = SQL["transition"].format(sets=", ".join(assignments))
        with self._tx(tx) as t:
            n = t.execute(sql, (*sets.values(), run_id, from_state)).rowcount
            if n != 1:
                row = t.execute(SQL["get"], (run_id,)).fetchone()
                now_state = row["state"] if row else "absent"
                raise TransitionError(
                    f"scheduled run {run_id}: cannot go {from_state} -> {to_state}: it is "
                    f"{now_state} now",
                    run_id=run_id,
                )
            t.execute(SQL["history"], (run_id, from_state, to_state, at, worker, error, reason))

    def transition_many(
        self,
        run_ids: Sequence[str],
        from_state: str,
        to_state: str,
        *,
        reason: str | None = None,
        tx: Tx | None = None,
    ) -> list[str]:
        """Move every listed run still in `from_state` to `to_state` with one conditional
        update (history kept); returns the ids that moved: a run another process moved
        first, or is moving now (its row locked), is left out, not an error."""
        check_transition("*", from_state, to_state)
        if not run_ids:
            return []
        at = now_iso()
        with self._tx(tx) as t:
            sql = SQL["transition_many"].format(
                ids=", ".join("?" * len(run_ids)), lock=self.db.skip_locked
            )
            rows = t.execute(sql, (to_state, at, from_state, *run_ids, from_state)).fetchall()
            moved = [str(r["id"]) for r in rows]
            t.executemany(
                SQL["history"], [(i, from_state, to_state, at, None, None, reason) for i in moved]
            )
        return moved

    def set_job(self, run_id: str, job_id: int, *, tx: Tx | None = None) -> None:
        """Record which job runs a run (its current one)."""
        with self._tx(tx) as t:
            t.execute(SQL["set_job"], (job_id, run_id))

    def set_next_attempt(self, run_id: str, at: str, *, tx: Tx | None = None) -> None:
        """Record when a PENDING run's retry is due (its job was rescheduled);
        TransitionError when the run is no longer PENDING."""
        with self._tx(tx) as t:
            if t.execute(SQL["set_next_attempt"], (at, now_iso(), run_id)).rowcount != 1:
                raise TransitionError(
                    f"scheduled run {run_id}: its retry cannot be moved: it is no longer PENDING",
                    run_id=run_id,
                )

    # --- reading ------------------------------------------------------------------------

    def get(self, run_id: str, *, tx: Tx | None = None) -> ScheduledRunRecord | None:
        """The run with this id, or None."""
        with self._tx(tx) as t:
            row = t.execute(SQL["get"], (run_id,)).fetchone()
        return record_from_row(ScheduledRunRecord, row) if row else None

    def get_by_tick(self, pipeline: str, schedule: str, tick: str) -> ScheduledRunRecord | None:
        """The run of a (pipeline, schedule, tick), or None."""
        with self.db.transaction() as t:
            row = t.execute(SQL["get_key"], (pipeline, schedule, tick)).fetchone()
        return record_from_row(ScheduledRunRecord, row) if row else None

    def find(
        self,
        *,
        state: str | None = None,
        tenant: str | None = None,
        pipeline: str | None = None,
        schedule: str | None = None,
        run_date: str | None = None,
        limit: int = 1000,
        newest_first: bool = False,
    ) -> list[ScheduledRunRecord]:
        """Runs, oldest tick first (or newest), filtered by any of state, tenant, pipeline,
        schedule, run date."""
        conds, params = _filters(
            state=state, tenant=tenant, pipeline=pipeline, schedule=schedule, run_date=run_date
        )
        where = f"WHERE {' AND '.join(conds)}" if conds else ""
        sql = SQL["find"].format(where=where, order="DESC" if newest_first else "ASC")
        with self.db.transaction() as t:
            rows = t.execute(sql, (*params, limit)).fetchall()
        return rows_as(ScheduledRunRecord, rows)

    def history(self, run_id: str, *, tx: Tx | None = None) -> list[TransitionRecord]:
        """Every transition of a run, in order."""
        with self._tx(tx) as t:
            return rows_as(TransitionRecord, t.execute(SQL["history_of"], (run_id,)).fetchall())

    def due(self, at: str) -> list[ScheduledRunRecord]:
        """SCHEDULED runs whose tick is at or before `at` (their job is not queued yet)."""
        with self.db.transaction() as t:
            return rows_as(ScheduledRunRecord, t.execute(SQL["due"], (at,)).fetchall())

    def earlier_unfinished(
        self, run: ScheduledRunRecord, *, page: int = 50
    ) -> Iterator[ScheduledRunRecord]:
        """Runs of the pipeline with an earlier run date still to load that share a table
        with `run` (a run of all tables shares every one): queued or running of any
        schedule, not queued yet of the run's own; or failed in the run's batch (a
        backfill, a catch-up). Failed ones first, then by run date; read `page` rows at a
        time, so a caller that stops at the first one it wants reads no more."""
        sharing, shared = _sharing(run.table_list)
        sql = SQL["earlier"].format(sharing=sharing)
        key = (run.pipeline, run.run_date, run.id, run.schedule, run.schedule, run.batch)
        offset = 0
        while True:
            with self.db.transaction() as t:
                rows = t.execute(sql, (*key, *shared, page, offset)).fetchall()
            yield from rows_as(ScheduledRunRecord, rows)
            if len(rows) < page:
                return
            offset += page

    def next_waiting(
        self, run: ScheduledRunRecord, *, tx: Tx | None = None
    ) -> ScheduledRunRecord | None:
        """The first later window of `run`'s pipeline waiting for an earlier one, if any."""
        with self._tx(tx) as t:
            rows = t.execute(SQL["next_waiting"], (run.pipeline, run.run_date)).fetchall()
        found = rows_as(ScheduledRunRecord, rows)
        return found[0] if found else None

    def orphans(self, *, before: str | None = None, limit: int = 500) -> list[ScheduledRunRecord]:
        """PENDING runs with no queued or claimed job of theirs (nothing would run them),
        made PENDING (or last changed) before `before` (an ISO instant; default now)."""
        cutoff = before or now_iso()
        with self.db.transaction() as t:
            rows = t.execute(SQL["orphans"], (cutoff, limit)).fetchall()
        return rows_as(ScheduledRunRecord, rows)

    def by_dates(
        self, pipeline: str, schedule: str, run_dates: Sequence[str]
    ) -> list[ScheduledRunRecord]:
        """The runs of these run dates of a schedule."""
        out: list[ScheduledRunRecord] = []
        with self.db.transaction() as t:
            for lo in range(0, len(run_dates), 500):
                chunk = list(run_dates[lo : lo + 500])
                sql = SQL["by_dates"].format(dates=", ".join("?" * len(chunk)))
                out += rows_as(
                    ScheduledRunRecord, t.execute(sql, (pipeline, schedule, *chunk)).fetchall()
                )
        return out

    def counts(self, *, tenant: str | None = None, pipeline: str | None = None) -> dict[str, int]:
        """How many runs are in each state."""
        conds, params = _filters(tenant=tenant, pipeline=pipeline)
        where = f"WHERE {' AND '.join(conds)}" if conds else ""
        with self.db.transaction() as t:
            rows = t.execute(SQL["counts"].format(where=where), params).fetchall()
        out = dict.fromkeys(RUN_STATES, 0)
        out.update({str(r["state"]): int(r["n"]) for r in rows})
        return out

    def tenants(self) -> list[str]:
        """Every tenant with a run recorded, in order."""
        with self.db.transaction() as t:
            return [str(r["tenant"]) for r in t.execute(SQL["tenants"]).fetchall()]

    def last_in_state(
        self, state: str, *, tenant: str | None = None, pipeline: str | None = None
    ) -> ScheduledRunRecord | None:
        """The run that most recently ended in `state` (COMPLETED or FAILED)."""
        conds, params = _filters(tenant=tenant, pipeline=pipeline)
        flt = "".join(f" AND {c}" for c in conds)
        with self.db.transaction() as t:
            row = t.execute(SQL["last_in_state"].format(filter=flt), (state, *params)).fetchone()
        return record_from_row(ScheduledRunRecord, row) if row else None

    def last_failure(
        self, *, tenant: str | None = None, pipeline: str | None = None
    ) -> tuple[ScheduledRunRecord, TransitionRecord] | None:
        """The most recent failure (a transition to FAILED, whether the run was retried
        since or not) and its run, or None."""
        conds, params = _filters(tenant=tenant, pipeline=pipeline)
        flt = "".join(f" AND r.{c}" for c in conds)
        with self.db.transaction() as t:
            row = t.execute(SQL["last_failure"].format(filter=flt), params).fetchone()
            if row is None:
                return None
            step = record_from_row(TransitionRecord, row)
            found = t.execute(SQL["get"], (step.run_id,)).fetchone()
        return (record_from_row(ScheduledRunRecord, found), step) if found else None

    # --- purging ------------------------------------------------------------------------

    def finished_before(
        self,
        before: str,
        *,
        pipelines: Sequence[str],
        after: str = "",
        limit: int = 500,
        tx: Tx | None = None,
    ) -> list[ScheduledRunRecord]:
        """Up to `limit` runs of `pipelines` that are COMPLETED, CANCELLED or FAILED, ended
        before `before` (ISO UTC; their last update when no end was recorded) and have no
        queued or claimed job, by id after `after` (a purge pages through them)."""
        if not pipelines:
            return []
        sql = SQL["finished_before"].format(pipelines=", ".join("?" * len(pipelines)))
        with self._tx(tx) as t:
            rows = t.execute(sql, (before, after, *pipelines, limit)).fetchall()
        return rows_as(ScheduledRunRecord, rows)

    def latest_of(self, pipeline: str, schedule: str, *, tx: Tx | None = None) -> str | None:
        """The id of a schedule's (or a schedule key's) run with the latest tick."""
        with self._tx(tx) as t:
            row = t.execute(SQL["latest_of"], (pipeline, schedule)).fetchone()
        return None if row is None else str(row["id"])

    def later_window_kept(
        self, run: ScheduledRunRecord, before: str, *, tx: Tx | None = None
    ) -> bool:
        """Whether a later window of `run`'s batch that may still run stays after a purge
        of the runs that ended before `before`: one not finished, or failed or cancelled
        since then (a retry of it reads its blockers)."""
        params = (run.pipeline, run.schedule, run.batch, run.run_date, before)
        with self._tx(tx) as t:
            return t.execute(SQL["later_kept"], params).fetchone() is not None

    def history_count(self, run_ids: Sequence[str], *, tx: Tx | None = None) -> int:
        """How many transitions the runs' histories hold."""
        if not run_ids:
            return 0
        with self._tx(tx) as t:
            sql = SQL["count_history"].format(ids=", ".join("?" * len(run_ids)))
            row = t.execute(sql, tuple(run_ids)).fetchone()
        return int(row["n"]) if row else 0

    def delete_finished(
        self, run_ids: Sequence[str], *, before: str, tx: Tx | None = None
    ) -> tuple[list[str], int]:
        """Delete those of the runs still finished and ended before `before`, with their
        history (a run requeued meanwhile stays). Returns the ids deleted and how many
        transitions went with them."""
        if not run_ids:
            return [], 0
        marks = ", ".join("?" * len(run_ids))
        with self._tx(tx) as t:
            rows = t.execute(
                SQL["delete_finished"].format(ids=marks), (*run_ids, before)
            ).fetchall()
            gone = [str(r["id"]) for r in rows]
            if not gone:
                return [], 0
            history = t.execute(
                SQL["delete_history"].format(ids=", ".join("?" * len(gone))), tuple(gone)
            ).rowcount
        return gone, int(history)


def _filters(**values: str | None) -> tuple[list[str], list[str]]:
    conds, params = [], []
    for column, value in values.items():
        if value is not None:
            conds.append(f"{column} = ?")
            params.append(value)
    return conds, params


def _sharing(tables: Sequence[str] | None) -> tuple[str, list[str]]:
    """The condition (and its parameters) that a run's `tables` share one of `tables`:
    any run of all tables (NULL) does, and a list that holds one of them as a JSON
    string (`"orders"`, quotes included, so `orders_archive` is not `orders`)."""
    if tables is None:
        return "", []
    likes = [" OR tables LIKE ? ESCAPE '!'"] * len(tables)
    patterns = [f"%{_like_literal(json.dumps(name))}%" for name in tables]
    return f" AND (tables IS NULL{''.join(likes)})", patterns


def _like_literal(text: str) -> str:
    """`text` matched literally by LIKE ... ESCAPE '!' (a table name may hold `_`)."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")
