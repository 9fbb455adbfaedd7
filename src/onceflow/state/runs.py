"""Pipeline runs: one row per (pipeline, run date), its status and progress counts.

A run is `running` from `begin` until `finish` recounts its tables from their
extractions: `completed` when every table is, else `failed`. A whole run (`onceflow run`:
extract, load, validate) is `loading` from the end of its extraction until its load and
validation end (`loading`, then `finish` or `fail`): a kill there leaves it `loading`,
never `completed`, since the load and its rules have not finished. `onceflow extract`
alone ends at `completed`. A run whose load or
validation failed is set `failed` with `fail`, though every extraction completed; an
extraction alone does not undo that verdict (`finish(keep_failed=True)`): only a load
that succeeds does. A run only flagged for re-extraction before it ever ran
(`force_reprocess_table` of a window the lake holds but the store forgot) is `pending`
(`register`) until its first `begin`.

`restart_count` counts resumptions: a `begin` of a run that had not completed (left
`running` or `loading` by a crash, or `failed`). Rerunning a completed run (an idempotent rerun that
skips everything, or a forced re-extraction) is not a restart: the count is for watching
how often runs break, and reruns would drown it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from onceflow.clock import now_iso
from onceflow.errors import StateError
from onceflow.state.db import Database, Tx, record_from_row, rows_as

RUN_RUNNING = "running"
RUN_COMPLETED = "completed"
RUN_FAILED = "failed"
RUN_PENDING = "pending"
#: Extracted; its load and validation have not finished (or were killed).
RUN_LOADING = "loading"

_GET = "SELECT * FROM pipeline_runs WHERE run_id = ?"
_BEGIN = (
    "INSERT INTO pipeline_runs (run_id, pipeline, run_date, window_start, window_end, status, "
    "started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    # One upsert, so concurrent starters of the same run never collide on the key.
    "ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, "
    # a restart resumes a run that had not completed; rerunning a completed one is not
    "restart_count = pipeline_runs.restart_count + CASE WHEN pipeline_runs.status IN "
    f"('{RUN_RUNNING}', '{RUN_LOADING}', '{RUN_FAILED}') THEN 1 ELSE 0 END, ended_at = NULL, "
    "updated_at = excluded.updated_at"
)
_REGISTER = (
    "INSERT INTO pipeline_runs (run_id, pipeline, run_date, window_start, window_end, status, "
    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING"
)
_MOVE_WINDOW = (
    "UPDATE pipeline_runs SET window_start = ?, window_end = ?, updated_at = ? WHERE run_id = ?",
    # every table is extracted again in the new window: a kill before a table's turn
    # leaves it flagged, so the next run re-extracts it rather than skip an old file
    "UPDATE extractions SET window_start = ?, window_end = ?, status = 'pending', "
    "force_reprocess = 1, updated_at = ? WHERE run_id = ?",
)
_COUNT_TABLES = (
    "SELECT COUNT(*) AS total, "
    "SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END) AS completed, "
    "SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed "
    "FROM extractions WHERE run_id = ?"
)
_FINISH = (
    "UPDATE pipeline_runs SET status = ?, ended_at = ?, total_tables = ?, "
    "completed_tables = ?, failed_tables = ?, updated_at = ? WHERE run_id = ?"
)
_SET_STATUS = "UPDATE pipeline_runs SET status = ?, updated_at = ? WHERE run_id = ?"
_DELETE = (
    "DELETE FROM extractions WHERE run_id = ?",
    "DELETE FROM pipeline_runs WHERE run_id = ?",
)


@dataclass(frozen=True)
class RunRecord:
    """One pipeline run: (pipeline, run date) and its progress."""

    run_id: str
    pipeline: str
    run_date: str
    window_start: str
    window_end: str
    status: str
    started_at: str | None
    ended_at: str | None
    total_tables: int
    completed_tables: int
    failed_tables: int
    restart_count: int
    updated_at: str

    @property
    def completion_rate(self) -> float:
        """Completed tables as a percentage of all tables of the run."""
        return 100.0 * self.completed_tables / self.total_tables if self.total_tables else 0.0


class Runs:
    """The `pipeline_runs` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _read(tx: Tx, run_id: str) -> RunRecord:
        row = tx.execute(_GET, (run_id,)).fetchone()
        if row is None:
            raise StateError(f"run {run_id} is not in the state store")
        return record_from_row(RunRecord, row)

    def begin(
        self, run_id: str, pipeline: str, run_date: str, window: tuple[str, str]
    ) -> RunRecord:
        """Start (or restart, counting it) a run; returns its record."""
        now = now_iso()
        with self.db.transaction() as tx:
            tx.execute(
                _BEGIN, (run_id, pipeline, run_date, window[0], window[1], RUN_RUNNING, now, now)
            )
            return self._read(tx, run_id)

    def register(
        self, run_id: str, pipeline: str, run_date: str, window: tuple[str, str]
    ) -> RunRecord:
        """Record a run that has not started (`pending`), unless it exists; its record.
        Its first `begin` is a start, not a restart."""
        with self.db.transaction() as tx:
            tx.execute(
                _REGISTER,
                (run_id, pipeline, run_date, window[0], window[1], RUN_PENDING, now_iso()),
            )
            return self._read(tx, run_id)

    def move_window(self, run_id: str, window: tuple[str, str]) -> RunRecord:
        """Give a run another window (the config's time zone changed) and flag every one
        of its tables for re-extraction in it, in one transaction."""
        now = now_iso()
        with self.db.transaction() as tx:
            for sql in _MOVE_WINDOW:
                tx.execute(sql, (window[0], window[1], now, run_id))
            return self._read(tx, run_id)

    def finish(self, run_id: str, *, keep_failed: bool = False) -> RunRecord:
        """Recount the run's tables from its extractions and set its final status.

        `keep_failed`: the run stays failed even when every extraction completed (a later
        step, its load or validation, failed it, and has not succeeded since).
        """
        now = now_iso()
        with self.db.transaction() as tx:
            counts = tx.execute(_COUNT_TABLES, (run_id,)).fetchone() or {}
            total, done, failed = (
                int(counts.get(k) or 0) for k in ("total", "completed", "failed")
            )
            complete = total and done == total and not keep_failed
            status = RUN_COMPLETED if complete else RUN_FAILED
            tx.execute(_FINISH, (status, now, total, done, failed, now, run_id))
            return self._read(tx, run_id)

    def fail(self, run_id: str, *, only_if: str | None = None) -> RunRecord | None:
        """Set a run failed (its extractions may all be complete: a load failed).

        With `only_if`, only a run in that status changes; None when it was not.
        """
        sql, params = _SET_STATUS, [RUN_FAILED, now_iso(), run_id]
        if only_if is not None:
            sql += " AND status = ?"
            params.append(only_if)
        with self.db.transaction() as tx:
            changed = tx.execute(sql, params).rowcount
            if only_if is not None and not changed:
                return None
            return self._read(tx, run_id)

    def loading(self, run_id: str) -> RunRecord | None:
        """A completed extraction whose load and validation start now: `loading` until
        `finish` or `fail`. Only a `completed` run changes; None otherwise."""
        with self.db.transaction() as tx:
            changed = tx.execute(
                _SET_STATUS + " AND status = ?", (RUN_LOADING, now_iso(), run_id, RUN_COMPLETED)
            ).rowcount
            return self._read(tx, run_id) if changed else None

    def get(self, run_id: str) -> RunRecord | None:
        """The run with this id, or None."""
        with self.db.transaction() as tx:
            row = tx.execute(_GET, (run_id,)).fetchone()
        return record_from_row(RunRecord, row) if row else None

    def find(self, pipeline: str | None = None, limit: int = 50) -> list[RunRecord]:
        """The most recent runs first."""
        sql = "SELECT * FROM pipeline_runs"
        params: list[Any] = []
        if pipeline:
            sql += " WHERE pipeline = ?"
            params.append(pipeline)
        sql += " ORDER BY run_date DESC, updated_at DESC LIMIT ?"
        with self.db.transaction() as tx:
            return rows_as(RunRecord, tx.execute(sql, (*params, limit)).fetchall())

    def of_dates(self, pipeline: str, dates: list[str] | None = None) -> list[RunRecord]:
        """The pipeline's runs of these run dates (all its runs when None), by date: the
        windows that the windows of consecutive dates must tile with."""
        sql, params = "SELECT * FROM pipeline_runs WHERE pipeline = ?", [pipeline]
        if dates is not None:
            if not dates:
                return []
            sql += f" AND run_date IN ({', '.join('?' for _ in dates)})"
            params.extend(dates)
        sql += " ORDER BY run_date, run_id"
        with self.db.transaction() as tx:
            return rows_as(RunRecord, tx.execute(sql, params).fetchall())

    def delete(self, run_id: str) -> int:
        """Forget a run and its extractions (the files stay); returns rows removed."""
        with self.db.transaction() as tx:
            return sum(int(tx.execute(sql, (run_id,)).rowcount) for sql in _DELETE)
