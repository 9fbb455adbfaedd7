"""The state store interface and the SQL both backends share.

SQL here is written with `?` placeholders; a backend rewrites them for its driver.
The store is an index of what happened: sidecars and Delta logs are the truth.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from onceflow.errors import StateError
from onceflow.state.files import FileTrackerMixin
from onceflow.state.locks import LockMixin
from onceflow.state.migrations import LATEST_VERSION, MIGRATIONS

Row = dict[str, Any]

RUN_RUNNING = "running"
RUN_COMPLETED = "completed"
RUN_FAILED = "failed"

PENDING = "pending"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
EXTRACTION_STATUSES = (PENDING, RUNNING, COMPLETED, FAILED)


def utcnow() -> str:
    """Now, as the ISO-8601 UTC string the store keeps."""
    return datetime.now(UTC).isoformat()


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


def _record(cls: type[Any], row: Row) -> Any:
    names = {f.name for f in fields(cls)}
    values = {k: v for k, v in row.items() if k in names}
    if "force_reprocess" in values:
        values["force_reprocess"] = bool(values["force_reprocess"])
    return cls(**values)


class Tx(ABC):
    """A cursor inside a transaction, returning rows as dicts."""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Tx: ...

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    @abstractmethod
    def fetchall(self) -> list[Row]: ...

    @property
    @abstractmethod
    def rowcount(self) -> int: ...

    def fetchone(self) -> Row | None:
        """The first row of the last statement, or None."""
        rows = self.fetchall()
        return rows[0] if rows else None


class StateStore(FileTrackerMixin, LockMixin, ABC):
    """One interface over SQLite and PostgreSQL for runs, extractions, files and locks."""

    backend: str = ""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()

    # -- connection and transactions (backend specific) ---------------------------------

    @abstractmethod
    def transaction(self) -> Any:
        """Context manager: a write transaction (serialised against other writers)."""

    @abstractmethod
    def _schema_lock(self, tx: Tx) -> None:
        """Serialise migrations across processes."""

    @abstractmethod
    def close(self) -> None:
        """Close this thread's connection."""

    @abstractmethod
    def drop_all(self) -> None:
        """Drop every onceflow table (tests and `reset-state --all`)."""

    # -- schema ------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The schema version of the store (0 when empty)."""
        with self.transaction() as tx:
            return self._version(tx)

    def _version(self, tx: Tx) -> int:
        tx.execute("CREATE TABLE IF NOT EXISTS onceflow_schema (version INTEGER NOT NULL)")
        row = tx.execute("SELECT MAX(version) AS v FROM onceflow_schema").fetchone()
        return int(row["v"]) if row and row["v"] is not None else 0

    def migrate(self, target: int = LATEST_VERSION) -> int:
        """Apply the migrations up to `target`; returns the resulting version."""
        with self.transaction() as tx:
            self._schema_lock(tx)
            current = self._version(tx)
            if current > LATEST_VERSION:
                raise StateError(
                    f"the state store has schema version {current}, newer than this onceflow "
                    f"understands ({LATEST_VERSION}); upgrade onceflow"
                )
            for version, _title, statements in MIGRATIONS:
                if current < version <= target:
                    for statement in statements:
                        tx.execute(statement)
                    tx.execute("INSERT INTO onceflow_schema (version) VALUES (?)", (version,))
                    current = version
            return current

    # -- pipeline runs -----------------------------------------------------------------

    def begin_run(
        self, run_id: str, pipeline: str, run_date: str, window: tuple[str, str]
    ) -> RunRecord:
        """Start (or restart, counting it) a run; returns its record."""
        now = utcnow()
        with self.transaction() as tx:
            # One upsert, so concurrent starters of the same run never collide on the key.
            tx.execute(
                "INSERT INTO pipeline_runs (run_id, pipeline, run_date, window_start, "
                "window_end, status, started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, "
                "restart_count = pipeline_runs.restart_count + 1, ended_at = NULL, "
                "updated_at = excluded.updated_at",
                (run_id, pipeline, run_date, window[0], window[1], RUN_RUNNING, now, now),
            )
            row = tx.execute("SELECT * FROM pipeline_runs WHERE run_id = ?", (run_id,)).fetchone()
        assert row is not None
        return _record(RunRecord, row)  # type: ignore[no-any-return]

    def finish_run(self, run_id: str) -> RunRecord:
        """Recount the run's tables from its extractions and set its final status."""
        now = utcnow()
        with self.transaction() as tx:
            counts = tx.execute(
                "SELECT COUNT(*) AS total, "
                "SUM(CASE WHEN status = ? THEN 1 ELSE 0 END) AS completed, "
                "SUM(CASE WHEN status = ? THEN 1 ELSE 0 END) AS failed "
                "FROM extractions WHERE run_id = ?",
                (COMPLETED, FAILED, run_id),
            ).fetchone()
            assert counts is not None
            total, done, failed = (int(counts[k] or 0) for k in ("total", "completed", "failed"))
            status = RUN_COMPLETED if total and done == total else RUN_FAILED
            tx.execute(
                "UPDATE pipeline_runs SET status = ?, ended_at = ?, total_tables = ?, "
                "completed_tables = ?, failed_tables = ?, updated_at = ? WHERE run_id = ?",
                (status, now, total, done, failed, now, run_id),
            )
            row = tx.execute("SELECT * FROM pipeline_runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise StateError(f"run {run_id} is not in the state store")
        return _record(RunRecord, row)  # type: ignore[no-any-return]

    def mark_run_failed(self, run_id: str) -> RunRecord:
        """Set a run's status to failed (its extractions may all be complete: a load failed)."""
        with self.transaction() as tx:
            tx.execute(
                "UPDATE pipeline_runs SET status = ?, updated_at = ? WHERE run_id = ?",
                (RUN_FAILED, utcnow(), run_id),
            )
            row = tx.execute("SELECT * FROM pipeline_runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise StateError(f"run {run_id} is not in the state store")
        return _record(RunRecord, row)  # type: ignore[no-any-return]

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run with this id, or None."""
        with self.transaction() as tx:
            row = tx.execute("SELECT * FROM pipeline_runs WHERE run_id = ?", (run_id,)).fetchone()
        return _record(RunRecord, row) if row else None

    def runs(self, pipeline: str | None = None, limit: int = 50) -> list[RunRecord]:
        """The most recent runs first."""
        sql = "SELECT * FROM pipeline_runs"
        params: tuple[Any, ...] = ()
        if pipeline:
            sql += " WHERE pipeline = ?"
            params = (pipeline,)
        sql += " ORDER BY run_date DESC, updated_at DESC LIMIT ?"
        with self.transaction() as tx:
            rows = tx.execute(sql, (*params, limit)).fetchall()
        return [_record(RunRecord, r) for r in rows]

    def delete_run(self, run_id: str) -> int:
        """Forget a run and its extractions (the files stay); returns rows removed."""
        with self.transaction() as tx:
            n = tx.execute("DELETE FROM extractions WHERE run_id = ?", (run_id,)).rowcount
            n += tx.execute("DELETE FROM pipeline_runs WHERE run_id = ?", (run_id,)).rowcount
        return int(n)

    # -- extractions -------------------------------------------------------------------

    def extractions(self, run_id: str) -> dict[str, ExtractionRecord]:
        """Every extraction of a run, by table key."""
        with self.transaction() as tx:
            rows = tx.execute("SELECT * FROM extractions WHERE run_id = ?", (run_id,)).fetchall()
        return {r["table_key"]: _record(ExtractionRecord, r) for r in rows}

    def ensure_extractions(self, run_id: str, entries: Sequence[dict[str, Any]]) -> None:
        """Create pending rows for tables of the run not seen before (others unchanged)."""
        now = utcnow()
        with self.transaction() as tx:
            tx.executemany(
                "INSERT INTO extractions (run_id, table_key, source, table_name, mode, "
                "window_start, window_end, status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id, table_key) DO NOTHING",
                [
                    (
                        run_id,
                        e["table_key"],
                        e["source"],
                        e["table_name"],
                        e["mode"],
                        e["window_start"],
                        e["window_end"],
                        PENDING,
                        now,
                    )
                    for e in entries
                ],
            )

    def mark_running(self, run_id: str, table_key: str, window: tuple[str, str]) -> None:
        """An attempt at a table starts: running, attempts + 1, window recorded."""
        now = utcnow()
        with self.transaction() as tx:
            tx.execute(
                "UPDATE extractions SET status = ?, attempts = attempts + 1, error = NULL, "
                "window_start = ?, window_end = ?, started_at = ?, ended_at = NULL, "
                "updated_at = ? WHERE run_id = ? AND table_key = ?",
                (RUNNING, window[0], window[1], now, now, run_id, table_key),
            )

    def mark_completed(self, run_id: str, results: Sequence[dict[str, Any]]) -> None:
        """Record finished (or skipped) extractions in one transaction."""
        now = utcnow()
        with self.transaction() as tx:
            tx.executemany(
                "UPDATE extractions SET status = ?, record_count = ?, file_path = ?, "
                "file_size = ?, checksum = ?, window_start = ?, window_end = ?, "
                "started_at = COALESCE(?, started_at), ended_at = COALESCE(?, ended_at), "
                "duration_seconds = COALESCE(?, duration_seconds), error = NULL, "
                "force_reprocess = 0, last_action = ?, updated_at = ? "
                "WHERE run_id = ? AND table_key = ?",
                [
                    (
                        COMPLETED,
                        r["record_count"],
                        r["file_path"],
                        r["file_size"],
                        r["checksum"],
                        r["window_start"],
                        r["window_end"],
                        r.get("started_at"),
                        r.get("ended_at"),
                        r.get("duration_seconds"),
                        r["action"],
                        now,
                        run_id,
                        r["table_key"],
                    )
                    for r in results
                ],
            )

    def mark_failed(self, run_id: str, table_key: str, error: str) -> None:
        """An attempt failed; the error is kept for reports (already redacted)."""
        now = utcnow()
        with self.transaction() as tx:
            tx.execute(
                "UPDATE extractions SET status = ?, error = ?, ended_at = ?, last_action = ?, "
                "updated_at = ? WHERE run_id = ? AND table_key = ?",
                (FAILED, error, now, "failed", now, run_id, table_key),
            )

    def force_reprocess(self, run_id: str, table_key: str) -> bool:
        """Flag a table of a run for re-extraction; False when the run has no such table."""
        now = utcnow()
        with self.transaction() as tx:
            n = tx.execute(
                "UPDATE extractions SET force_reprocess = 1, status = ?, updated_at = ? "
                "WHERE run_id = ? AND table_key = ?",
                (PENDING, now, run_id, table_key),
            ).rowcount
        return bool(n > 0)

    def reset_failed(self, run_id: str | None = None) -> int:
        """Put failed extractions (of one run, or all) back to pending; returns how many."""
        now = utcnow()
        sql = "UPDATE extractions SET status = ?, updated_at = ? WHERE status = ?"
        params: tuple[Any, ...] = (PENDING, now, FAILED)
        if run_id:
            sql += " AND run_id = ?"
            params += (run_id,)
        with self.transaction() as tx:
            return int(tx.execute(sql, params).rowcount)

    def status_counts(self, run_id: str) -> dict[str, int]:
        """How many extractions of the run are in each status."""
        with self.transaction() as tx:
            rows = tx.execute(
                "SELECT status, COUNT(*) AS n FROM extractions WHERE run_id = ? GROUP BY status",
                (run_id,),
            ).fetchall()
        counts = dict.fromkeys(EXTRACTION_STATUSES, 0)
        counts.update({r["status"]: int(r["n"]) for r in rows})
        return counts


def open_store(url: str, *, migrate: bool = True) -> StateStore:
    """Open the state store at `url` (sqlite:///path or postgresql://...), migrated."""
    store: StateStore
    if url.startswith("sqlite:"):
        from onceflow.state.sqlite import SqliteStore

        store = SqliteStore(url)
    elif url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres"):
        from onceflow.state.postgres import PostgresStore

        store = PostgresStore(url)
    else:
        raise StateError(
            f"state: unsupported state store URL {url.split(':', 1)[0]!r}; "
            "use sqlite:///path/state.db or postgresql://user@host/db"
        )
    if migrate:
        store.migrate()
    return store
