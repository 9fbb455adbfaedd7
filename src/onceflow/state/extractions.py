"""Extractions: one row per table of a run, pending -> running -> completed | failed.

`force` flags a table for re-extraction on the next run (it goes back to pending);
`ensure(force=True)` flags every table a forced extraction is about to extract, so a
plain rerun resumes one killed part-way; `mark_corrupt` flags a table whose committed
file a load proved damaged (checksum mismatch), so the next run extracts it again.
`complete` clears a table's flag once its new file is committed. `reset_failed` puts
failed tables back to pending. Errors are stored already redacted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from onceflow.clock import now_iso
from onceflow.state.db import Database, rows_as

PENDING = "pending"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
EXTRACTION_STATUSES = (PENDING, RUNNING, COMPLETED, FAILED)

_ENSURE = (
    "INSERT INTO extractions (run_id, table_key, source, table_name, mode, window_start, "
    "window_end, status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id, table_key) DO NOTHING"
)
_START = (
    "UPDATE extractions SET status = ?, attempts = attempts + 1, error = NULL, "
    "window_start = ?, window_end = ?, started_at = ?, ended_at = NULL, "
    "updated_at = ? WHERE run_id = ? AND table_key = ?"
)
_COMPLETE = (
    "UPDATE extractions SET status = ?, record_count = ?, file_path = ?, "
    "file_size = ?, checksum = ?, window_start = ?, window_end = ?, "
    "started_at = COALESCE(?, started_at), ended_at = COALESCE(?, ended_at), "
    "duration_seconds = COALESCE(?, duration_seconds), error = NULL, "
    "force_reprocess = 0, last_action = ?, null_cursor_rows = ?, updated_at = ? "
    "WHERE run_id = ? AND table_key = ?"
)
_FAIL = (
    "UPDATE extractions SET status = ?, error = ?, ended_at = ?, last_action = ?, "
    "updated_at = ? WHERE run_id = ? AND table_key = ?"
)
_FORCE = (
    "UPDATE extractions SET force_reprocess = 1, status = ?, updated_at = ? "
    "WHERE run_id = ? AND table_key = ?"
)
# only the commit proven bad: a completed extraction of exactly that checksum (a
# re-extraction under way is `running`, one finished since has another checksum)
_CORRUPT = (
    "UPDATE extractions SET force_reprocess = 1, status = ?, error = ?, last_action = ?, "
    "updated_at = ? WHERE run_id = ? AND table_key = ? AND status = ? AND checksum = ?"
)


@dataclass(frozen=True)
class ExtractionEntry:
    """A table registered in a run before its first attempt."""

    table_key: str
    source: str
    table_name: str
    mode: str
    window_start: str
    window_end: str


@dataclass(frozen=True)
class ExtractionOutcome:
    """A finished (extracted or skipped) table, as the store records it."""

    table_key: str
    action: str
    record_count: int | None
    file_path: str
    file_size: int | None
    checksum: str | None
    window_start: str
    window_end: str
    started_at: str | None = None
    ended_at: str | None = None
    duration_seconds: float | None = None
    #: rows left out because their cursor is in no window (`extract.null_cursor: skip`)
    null_cursor_rows: int | None = None


@dataclass(frozen=True)
class ExtractionRecord:
    """One table's extraction within a run."""

    run_id: str
    table_key: str
    source: str
    table_name: str
    mode: str
    window_start: str | None
    window_end: str | None
    status: str
    attempts: int
    record_count: int | None
    file_path: str | None
    file_size: int | None
    checksum: str | None
    error: str | None
    started_at: str | None
    ended_at: str | None
    duration_seconds: float | None
    force_reprocess: bool
    updated_at: str
    last_action: str | None = None
    null_cursor_rows: int | None = None


class Extractions:
    """The `extractions` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def of_run(self, run_id: str) -> dict[str, ExtractionRecord]:
        """Every extraction of a run, by table key."""
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT * FROM extractions WHERE run_id = ?", (run_id,)).fetchall()
        return {r.table_key: r for r in rows_as(ExtractionRecord, rows)}

    def ensure(
        self, run_id: str, entries: Sequence[ExtractionEntry], *, force: bool = False
    ) -> None:
        """Create pending rows for tables of the run not seen before (others unchanged);
        `force` also flags every entry's table for re-extraction, in the same transaction."""
        now = now_iso()
        with self.db.transaction() as tx:
            tx.executemany(
                _ENSURE,
                [
                    (
                        run_id,
                        e.table_key,
                        e.source,
                        e.table_name,
                        e.mode,
                        e.window_start,
                        e.window_end,
                        PENDING,
                        now,
                    )
                    for e in entries
                ],
            )
            if force:
                tx.executemany(_FORCE, [(PENDING, now, run_id, e.table_key) for e in entries])

    def start(self, run_id: str, table_key: str, window: tuple[str, str]) -> None:
        """An attempt at a table starts: running, attempts + 1, window recorded."""
        now = now_iso()
        with self.db.transaction() as tx:
            tx.execute(_START, (RUNNING, window[0], window[1], now, now, run_id, table_key))

    def complete(self, run_id: str, outcomes: Sequence[ExtractionOutcome]) -> None:
        """Record finished (or skipped) extractions in one transaction."""
        now = now_iso()
        with self.db.transaction() as tx:
            tx.executemany(
                _COMPLETE,
                [
                    (
                        COMPLETED,
                        o.record_count,
                        o.file_path,
                        o.file_size,
                        o.checksum,
                        o.window_start,
                        o.window_end,
                        o.started_at,
                        o.ended_at,
                        o.duration_seconds,
                        o.action,
                        o.null_cursor_rows,
                        now,
                        run_id,
                        o.table_key,
                    )
                    for o in outcomes
                ],
            )

    def fail(
        self, run_id: str, table_key: str, error: str, *, only_attempt: int | None = None
    ) -> bool:
        """An attempt failed; the error is kept for reports (already redacted). With
        `only_attempt`, only while that attempt is still `running`: a repair that judged it
        interrupted never fails a later attempt, nor one that completed since. False when
        nothing changed."""
        now = now_iso()
        sql = _FAIL
        params: list[Any] = [FAILED, error, now, "failed", now, run_id, table_key]
        if only_attempt is not None:
            sql += " AND status = ? AND attempts = ?"
            params += [RUNNING, only_attempt]
        with self.db.transaction() as tx:
            n = tx.execute(sql, params).rowcount
        return bool(n > 0)

    def force(self, run_id: str, table_key: str) -> bool:
        """Flag a table of a run for re-extraction; False when the run has no such table."""
        with self.db.transaction() as tx:
            n = tx.execute(_FORCE, (PENDING, now_iso(), run_id, table_key)).rowcount
        return bool(n > 0)

    def mark_corrupt(self, run_id: str, table_key: str, checksum: str, error: str) -> bool:
        """Record that a completed extraction's committed file (its sidecar's `checksum`)
        was proven damaged (a load found other bytes): flagged for re-extraction as
        `force` does, with the error kept and `last_action` `corrupt`, so the next
        extraction of the run extracts it again without `--verify deep`. Nothing changes
        unless the extraction is completed with that checksum (False then)."""
        now = now_iso()
        with self.db.transaction() as tx:
            n = tx.execute(
                _CORRUPT,
                (PENDING, error, "corrupt", now, run_id, table_key, COMPLETED, checksum),
            ).rowcount
        return bool(n > 0)

    def reset_failed(self, run_id: str | None = None) -> int:
        """Put failed extractions (of one run, or all) back to pending; returns how many."""
        sql = "UPDATE extractions SET status = ?, updated_at = ? WHERE status = ?"
        params: list[Any] = [PENDING, now_iso(), FAILED]
        if run_id:
            sql += " AND run_id = ?"
            params.append(run_id)
        with self.db.transaction() as tx:
            return int(tx.execute(sql, params).rowcount)

    def unfinished(self, pipeline: str, table_key: str) -> list[ExtractionRecord]:
        """A table's extractions of this pipeline that are not completed, oldest window
        first: a failed, pending or running window the table's later loads wait for."""
        with self.db.transaction() as tx:
            rows = tx.execute(
                "SELECT e.* FROM extractions e JOIN pipeline_runs r ON r.run_id = e.run_id "
                "WHERE r.pipeline = ? AND e.table_key = ? AND e.status <> ? "
                "ORDER BY e.window_start, e.run_id",
                (pipeline, table_key, COMPLETED),
            ).fetchall()
        return rows_as(ExtractionRecord, rows)

    def counts(self, run_id: str) -> dict[str, int]:
        """How many extractions of the run are in each status."""
        with self.db.transaction() as tx:
            rows = tx.execute(
                "SELECT status, COUNT(*) AS n FROM extractions WHERE run_id = ? GROUP BY status",
                (run_id,),
            ).fetchall()
        counts = dict.fromkeys(EXTRACTION_STATUSES, 0)
        counts.update({r["status"]: int(r["n"]) for r in rows})
        return counts
