"""The file tracker: which lake file is loaded into which Delta table, and how far it got.

Rows are keyed by the table's location (its URI) and the file's identity (its path within
the lake), never by an absolute file path or a table name alone: a moved project is the
same lake, and two pipelines sharing one store never share a row unless they share a table.

A file moves pending -> processing -> completed | failed; a completed file goes back to
processing when its lake file changed or a replay re-applies it. `checksum` is the lake
file's, `loaded_checksum` the one the table holds. The Delta table is the truth: the
loader reconciles this index from it at start (see onceflow.load.loader), so the tracker
being one step behind a commit (a kill between the two) never loads a file twice.

Guarded writes (claim, complete, fail) only succeed while the loader's lock token is still
in the `locks` table, so a loader that lost its lease cannot overwrite a newer owner's work.

A `processing` row is orphaned when its owner can no longer finish it: the owner's lock row
is gone, or it is still there but stale (lease expired, or its pid on this host is dead or
recycled; see LockRecord.stale_reason). Releasing an orphan of a stale owner also deletes
that owner's lock, so the guard above stops the owner should it come back to life.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from onceflow import clock
from onceflow.state.db import Database, Tx, record_from_row, rows_as
from onceflow.state.locks import LockRecord

FILE_PENDING = "pending"
FILE_PROCESSING = "processing"
FILE_COMPLETED = "completed"
FILE_FAILED = "failed"
FILE_STATUSES = (FILE_PENDING, FILE_PROCESSING, FILE_COMPLETED, FILE_FAILED)


@dataclass(frozen=True)
class FileEntry:
    """A discovered lake file to track."""

    file_id: str
    file_path: str
    window_start: str | None = None
    file_size: int | None = None
    modified_time: str | None = None
    checksum: str | None = None


@dataclass(frozen=True)
class FileRecord:
    """One (table, lake file) row of the tracker."""

    target_uri: str
    file_id: str
    pipeline: str
    table_key: str
    file_path: str | None
    window_start: str | None
    file_size: int | None
    modified_time: str | None
    checksum: str | None
    loaded_checksum: str | None
    status: str
    batch_id: str | None
    delta_version: int | None
    owner_token: str | None
    started_at: str | None
    ended_at: str | None
    error: str | None
    retry_count: int
    rows_loaded: int | None
    rows_skipped: int | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class FileState:
    """What a load compares of one tracker row (`Files.states`): its status, the lake
    file's checksum and the one the table holds, and what `register` records of the lake."""

    file_id: str
    status: str
    checksum: str | None
    loaded_checksum: str | None
    pipeline: str
    table_key: str
    file_path: str | None
    window_start: str | None
    file_size: int | None
    modified_time: str | None

    def registers(self, entry: FileEntry, table_key: str, pipeline: str) -> bool:
        """Whether `register` of `entry` would change this row (not only its time)."""
        return (
            self.pipeline,
            self.table_key,
            self.file_path,
            self.window_start,
            self.file_size,
            self.modified_time,
            self.checksum,
        ) != (
            pipeline,
            table_key,
            entry.file_path,
            entry.window_start,
            entry.file_size,
            entry.modified_time,
            entry.checksum,
        )


_STATE_COLUMNS = (
    "file_id, status, checksum, loaded_checksum, pipeline, table_key, file_path, "
    "window_start, file_size, modified_time"
)
#: How many file ids one `IN (...)` list holds (SQLite allows 32766 parameters).
_IDS_PER_QUERY = 500


@dataclass(frozen=True)
class OrphanedFile:
    """A `processing` file whose owner can no longer finish it, and why."""

    record: FileRecord
    reason: str
    lock: LockRecord | None = None  # the owner's lock when its row remains (stale)
    stale_reason: str | None = None  # why that lock is stale


_GUARD = "EXISTS (SELECT 1 FROM locks WHERE locks.token = ?)"
_KEY = "target_uri = ? AND file_id = ?"
_ORDER = " ORDER BY target_uri, window_start, file_id"
_REGISTER = (
    "INSERT INTO load_files (target_uri, file_id, pipeline, table_key, file_path, "
    "window_start, file_size, modified_time, checksum, status, retry_count, created_at, "
    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?) "
    "ON CONFLICT (target_uri, file_id) DO UPDATE SET pipeline = excluded.pipeline, "
    "table_key = excluded.table_key, file_path = excluded.file_path, "
    "window_start = excluded.window_start, file_size = excluded.file_size, "
    "modified_time = excluded.modified_time, checksum = excluded.checksum, "
    # A file whose lake file changed gets a fresh retry budget: a new checksum, and also a
    # new size or modification time, since a correct re-extraction of a file damaged in
    # place has the checksum its sidecar always had (only the bytes on disk were wrong).
    "retry_count = CASE WHEN COALESCE(load_files.checksum, '') <> COALESCE(excluded.checksum, '') "
    "OR COALESCE(load_files.file_size, -1) <> COALESCE(excluded.file_size, -1) "
    "OR COALESCE(load_files.modified_time, '') <> COALESCE(excluded.modified_time, '') "
    "THEN 0 ELSE load_files.retry_count END, updated_at = excluded.updated_at"
)
_CLAIM = (
    f"UPDATE load_files SET status = ?, owner_token = ?, started_at = ?, ended_at = NULL, "
    f"updated_at = ? WHERE {_KEY} AND status <> ? AND {_GUARD}"
)
_FINISH = (
    "UPDATE load_files SET {assignments}, ended_at = ?, owner_token = NULL, updated_at = ? "
    f"WHERE {_KEY} AND status = ? AND owner_token = ? AND {_GUARD}"
)
_RECORD_LOADED = (
    "INSERT INTO load_files (target_uri, file_id, pipeline, table_key, status, "
    "loaded_checksum, checksum, delta_version, batch_id, ended_at, retry_count, created_at, "
    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?) "
    "ON CONFLICT (target_uri, file_id) DO UPDATE SET status = excluded.status, "
    "loaded_checksum = excluded.loaded_checksum, delta_version = excluded.delta_version, "
    "batch_id = excluded.batch_id, owner_token = NULL, error = NULL, "
    "ended_at = COALESCE(load_files.ended_at, excluded.ended_at), "
    "updated_at = excluded.updated_at"
)
_RECORD_UNLOADED = (
    f"UPDATE load_files SET status = ?, loaded_checksum = NULL, delta_version = NULL, "
    f"owner_token = NULL, updated_at = ? WHERE {_KEY}"
)


def _records_of(tx: Tx, target: str, file_ids: Iterable[str]) -> list[FileRecord]:
    """The rows of these files of one table (those tracked), read inside `tx`."""
    wanted = sorted(set(file_ids))
    out: list[FileRecord] = []
    for at in range(0, len(wanted), _IDS_PER_QUERY):
        chunk = wanted[at : at + _IDS_PER_QUERY]
        marks = ", ".join("?" * len(chunk))
        rows = tx.execute(
            f"SELECT * FROM load_files WHERE target_uri = ? AND file_id IN ({marks})",
            (target, *chunk),
        ).fetchall()
        out += rows_as(FileRecord, rows)
    return out


def _in_order(record: FileRecord) -> tuple[str, str, str]:
    """The tracker's order (`_ORDER`): by table, window, identity (no window first)."""
    return record.target_uri, record.window_start or "", record.file_id


class Files:
    """The `load_files` table: the file tracker."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def register(
        self, target: str, table_key: str, pipeline: str, entries: Sequence[FileEntry]
    ) -> dict[str, FileRecord]:
        """Record what the lake holds now (new files pending; others keep their status)
        and return the records of these files by file identity (not the table's other
        rows: a caller registers what changed, and a table's rows only grow)."""
        stamp = clock.now_iso()
        with self.db.transaction() as tx:
            tx.executemany(
                _REGISTER,
                [
                    (
                        target,
                        e.file_id,
                        pipeline,
                        table_key,
                        e.file_path,
                        e.window_start,
                        e.file_size,
                        e.modified_time,
                        e.checksum,
                        FILE_PENDING,
                        stamp,
                        stamp,
                    )
                    for e in entries
                ],
            )
            records = _records_of(tx, target, [e.file_id for e in entries])
        return {r.file_id: r for r in sorted(records, key=_in_order)}

    def find(
        self,
        target: str | None = None,
        status: str | None = None,
        *,
        pipeline: str | None = None,
    ) -> list[FileRecord]:
        """Tracker rows, optionally of one table, one status and/or one pipeline."""
        sql = "SELECT * FROM load_files WHERE 1 = 1"
        params: list[Any] = []
        for column, value in (("target_uri", target), ("status", status), ("pipeline", pipeline)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        with self.db.transaction() as tx:
            return rows_as(FileRecord, tx.execute(sql + _ORDER, params).fetchall())

    def states(self, target: str) -> dict[str, FileState]:
        """Every row of one table in brief (`FileState`), by file identity: what a load
        compares with what the table holds and what the lake holds, without building a
        whole record per row (a table's rows grow by one per window, for good)."""
        with self.db.transaction() as tx:
            rows = tx.execute(
                f"SELECT {_STATE_COLUMNS} FROM load_files WHERE target_uri = ?", (target,)
            ).fetchall()
        return {
            r["file_id"]: FileState(
                r["file_id"],
                r["status"],
                r["checksum"],
                r["loaded_checksum"],
                r["pipeline"],
                r["table_key"],
                r["file_path"],
                r["window_start"],
                None if r["file_size"] is None else int(r["file_size"]),
                r["modified_time"],
            )
            for r in rows
        }

    def get_many(self, target: str, file_ids: Iterable[str]) -> dict[str, FileRecord]:
        """The rows of these files of one table (those tracked), by file identity."""
        with self.db.transaction() as tx:
            return {r.file_id: r for r in _records_of(tx, target, file_ids)}

    def failed_among(self, paths: Iterable[str]) -> list[FileRecord]:
        """The failed rows of these lake files (by absolute path), e.g. a run's files."""
        wanted = {os.path.abspath(p) for p in paths if p}
        if not wanted:
            return []
        return [
            r
            for r in self.find(status=FILE_FAILED)
            if r.file_path and os.path.abspath(r.file_path) in wanted
        ]

    def get(self, target: str, file_id: str) -> FileRecord | None:
        """One tracker row, or None."""
        with self.db.transaction() as tx:
            row = tx.execute(f"SELECT * FROM load_files WHERE {_KEY}", (target, file_id)).fetchone()
        return record_from_row(FileRecord, row) if row else None

    def claim(self, target: str, file_id: str, token: str) -> bool:
        """Any status but processing -> processing, owned by `token` (which must hold a lock)."""
        stamp = clock.now_iso()
        with self.db.transaction() as tx:
            n = tx.execute(
                _CLAIM,
                (FILE_PROCESSING, token, stamp, stamp, target, file_id, FILE_PROCESSING, token),
            ).rowcount
        return bool(n == 1)

    def complete(
        self,
        target: str,
        file_id: str,
        token: str,
        *,
        checksum: str | None,
        delta_version: int | None,
        batch_id: str | None,
        rows_loaded: int | None = None,
        rows_skipped: int | None = None,
    ) -> bool:
        """processing -> completed, the table now holding `checksum` (owner only)."""
        return self._finish_owned(
            target,
            file_id,
            token,
            "status = ?, loaded_checksum = ?, delta_version = ?, batch_id = ?, error = NULL, "
            "rows_loaded = ?, rows_skipped = ?",
            (FILE_COMPLETED, checksum, delta_version, batch_id, rows_loaded, rows_skipped),
        )

    def fail(
        self, target: str, file_id: str, token: str, error: str, *, attempt: bool = True
    ) -> bool:
        """processing -> failed with the error, retry count + 1 (owner only).

        `attempt=False`: the file was not tried (another file blocks it), so its retry
        budget is left as it is. A file that was loaded before keeps its
        `loaded_checksum`: the table still holds it.
        """
        return self._finish_owned(
            target,
            file_id,
            token,
            "status = ?, error = ?, retry_count = retry_count + ?",
            (FILE_FAILED, error[:2000], 1 if attempt else 0),
        )

    def _finish_owned(
        self, target: str, file_id: str, token: str, assignments: str, values: tuple[Any, ...]
    ) -> bool:
        """End a `processing` file: only its owner, and only while the owner's lock holds."""
        stamp = clock.now_iso()
        with self.db.transaction() as tx:
            n = tx.execute(
                _FINISH.format(assignments=assignments),
                (*values, stamp, stamp, target, file_id, FILE_PROCESSING, token, token),
            ).rowcount
        return bool(n == 1)

    def record_loaded(
        self,
        target: str,
        file_id: str,
        *,
        pipeline: str,
        table_key: str,
        checksum: str | None,
        delta_version: int | None,
        batch_id: str | None,
    ) -> None:
        """Mark a file completed because the Delta table says it holds it (reconciliation)."""
        stamp = clock.now_iso()
        with self.db.transaction() as tx:
            tx.execute(
                _RECORD_LOADED,
                (
                    target,
                    file_id,
                    pipeline,
                    table_key,
                    FILE_COMPLETED,
                    checksum,
                    checksum,
                    delta_version,
                    batch_id,
                    stamp,
                    stamp,
                    stamp,
                ),
            )

    def record_unloaded(self, target: str, file_ids: Iterable[str]) -> int:
        """Files the Delta table does not hold (any more) back to pending; returns how many."""
        stamp = clock.now_iso()
        with self.db.transaction() as tx:
            return sum(
                int(tx.execute(_RECORD_UNLOADED, (FILE_PENDING, stamp, target, f)).rowcount)
                for f in file_ids
            )

    def _orphans(self, tx: Tx, target: str | None) -> list[OrphanedFile]:
        """The orphaned `processing` rows (of one target, or all), read inside `tx`."""
        sql = "SELECT * FROM load_files WHERE status = ?"
        params: list[Any] = [FILE_PROCESSING]
        if target is not None:
            sql += " AND target_uri = ?"
            params.append(target)
        rows = tx.execute(sql + _ORDER, params).fetchall()
        if not rows:
            return []
        # Lock rows are few (one per running loader), so one read beats a join: the stale
        # test needs the whole row in Python anyway (pid, host, boot id, start time).
        locks = {
            r.token: r for r in rows_as(LockRecord, tx.execute("SELECT * FROM locks").fetchall())
        }
        moment = clock.now()
        verdicts: dict[str, str | None] = {}
        out = []
        for row in rows:
            rec = record_from_row(FileRecord, row)
            token = rec.owner_token
            holder = locks.get(token) if token is not None else None
            if token is None:
                out.append(OrphanedFile(rec, "it has no owner"))
            elif holder is None:
                out.append(OrphanedFile(rec, "its loader's lock is gone"))
            else:
                if token not in verdicts:  # one process lookup per lock, not per file
                    verdicts[token] = holder.stale_reason(moment)
                stale = verdicts[token]
                if stale is not None:
                    reason = f"its loader's lock {holder.name} is stale: {stale}"
                    out.append(OrphanedFile(rec, reason, holder, stale))
        return out

    def orphans(self, target: str | None = None) -> list[OrphanedFile]:
        """Orphaned `processing` rows with the reason (read only)."""
        with self.db.transaction() as tx:
            return self._orphans(tx, target)

    def release_orphans(self, target: str | None = None) -> list[OrphanedFile]:
        """Orphaned `processing` rows -> pending, deleting their owners' stale locks.

        A stale owner's lock is deleted only if it is still the lease judged stale (same
        token and expiry, as in a takeover): an owner that heartbeat meanwhile is alive,
        and keeps both its lock and its files. Returns the rows put back to pending.
        """
        stamp = clock.now_iso()
        released: list[OrphanedFile] = []
        with self.db.transaction() as tx:
            dropped: dict[str, bool] = {}
            for orphan in self._orphans(tx, target):
                rec, holder = orphan.record, orphan.lock
                if holder is not None:
                    if holder.token not in dropped:
                        dropped[holder.token] = (
                            tx.execute(
                                "DELETE FROM locks WHERE name = ? AND token = ? AND expires_at = ?",
                                (holder.name, holder.token, holder.expires_at),
                            ).rowcount
                            == 1
                        )
                    if not dropped[holder.token]:
                        continue
                # Only the row as judged: same status and owner (PostgreSQL runs this
                # read committed, so a row may have moved since the select).
                owner = "owner_token IS NULL" if rec.owner_token is None else "owner_token = ?"
                n = tx.execute(
                    "UPDATE load_files SET status = ?, owner_token = NULL, updated_at = ? "
                    f"WHERE {_KEY} AND status = ? AND {owner}",
                    (
                        FILE_PENDING,
                        stamp,
                        rec.target_uri,
                        rec.file_id,
                        FILE_PROCESSING,
                        *(() if rec.owner_token is None else (rec.owner_token,)),
                    ),
                ).rowcount
                if n == 1:
                    released.append(orphan)
        return released

    def reset_failed(self, target: str | None = None) -> int:
        """Failed files back to pending with a fresh retry budget; returns how many."""
        sql = "UPDATE load_files SET status = ?, retry_count = 0, error = NULL, updated_at = ? "
        sql += "WHERE status = ?"
        params: list[Any] = [FILE_PENDING, clock.now_iso(), FILE_FAILED]
        if target is not None:
            sql += " AND target_uri = ?"
            params.append(target)
        with self.db.transaction() as tx:
            return int(tx.execute(sql, params).rowcount)

    def forget(self, target: str | None = None) -> int:
        """Delete tracker rows (of one table, or all); the Delta log re-derives them."""
        sql = "DELETE FROM load_files"
        params: list[Any] = []
        if target is not None:
            sql += " WHERE target_uri = ?"
            params.append(target)
        with self.db.transaction() as tx:
            return int(tx.execute(sql, params).rowcount)

    def counts(self, target: str | None = None) -> dict[str, int]:
        """How many tracked files are in each status."""
        sql = "SELECT status, COUNT(*) AS n FROM load_files"
        params: list[Any] = []
        if target is not None:
            sql += " WHERE target_uri = ?"
            params.append(target)
        sql += " GROUP BY status"
        with self.db.transaction() as tx:
            rows = tx.execute(sql, params).fetchall()
        counts = dict.fromkeys(FILE_STATUSES, 0)
        counts.update({r["status"]: int(r["n"]) for r in rows})
        return counts
