"""The file tracker: which source file is loaded into which Delta table, and how far it got.

A file moves pending -> processing -> completed | failed. The Delta log is the truth: the
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

from collections.abc import Iterable, Mapping, Sequence
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
    """A discovered file to track: where it is and what its sidecar says."""

    file_path: str
    file_size: int | None = None
    modified_time: str | None = None
    checksum: str | None = None


@dataclass(frozen=True)
class FileRecord:
    """One (target table, source file) row of the tracker."""

    file_path: str
    target_table: str
    file_size: int | None
    modified_time: str | None
    checksum: str | None
    sequence: int | None
    status: str
    batch_id: str | None
    delta_version: int | None
    owner_token: str | None
    started_at: str | None
    ended_at: str | None
    error: str | None
    retry_count: int
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class OrphanedFile:
    """A `processing` file whose owner can no longer finish it, and why."""

    record: FileRecord
    reason: str
    lock: LockRecord | None = None  # the owner's lock when its row remains (stale)
    stale_reason: str | None = None  # why that lock is stale


_GUARD = "EXISTS (SELECT 1 FROM locks WHERE locks.token = ?)"


class Files:
    """The `files` table: the file tracker."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def register(
        self,
        target: str,
        entries: Sequence[FileEntry],
        *,
        known_sequences: Mapping[str, int] | None = None,
        floor: int = 0,
    ) -> list[FileRecord]:
        """Add discovered files as pending, numbered in the given (window) order.

        A file the Delta log already names keeps the sequence the log gave it; a new file
        gets the next number above every sequence known to the tracker or to the log
        (`floor` is the table's application-transaction version). Rows already present
        keep their status; a file not yet loaded whose checksum changed (re-extracted)
        gets its new size and checksum. Returns every record of `target` by sequence.
        """
        known = dict(known_sequences or {})
        stamp = clock.now_iso()
        with self.db.transaction() as tx:
            # sequence numbers of one target table are assigned one transaction at a time
            self.db.serialize(tx, f"files:{target}")
            rows = tx.execute("SELECT * FROM files WHERE target_table = ?", (target,)).fetchall()
            existing = {r["file_path"]: r for r in rows}
            top = max([floor, *known.values(), *(int(r["sequence"] or 0) for r in rows)], default=0)
            for entry in entries:
                path = entry.file_path
                row = existing.get(path)
                if row is None:
                    if path in known:
                        sequence = known[path]
                    else:
                        top += 1
                        sequence = top
                    tx.execute(
                        "INSERT INTO files (file_path, target_table, file_size, modified_time, "
                        "checksum, sequence, status, retry_count, created_at, updated_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?) "
                        "ON CONFLICT (target_table, file_path) DO NOTHING",
                        (
                            path,
                            target,
                            entry.file_size,
                            entry.modified_time,
                            entry.checksum,
                            sequence,
                            FILE_PENDING,
                            stamp,
                            stamp,
                        ),
                    )
                elif row["status"] in (FILE_PENDING, FILE_FAILED) and (
                    row["checksum"] != entry.checksum
                ):
                    tx.execute(
                        "UPDATE files SET checksum = ?, file_size = ?, modified_time = ?, "
                        "updated_at = ? WHERE target_table = ? AND file_path = ?",
                        (
                            entry.checksum,
                            entry.file_size,
                            entry.modified_time,
                            stamp,
                            target,
                            path,
                        ),
                    )
            out = tx.execute(
                "SELECT * FROM files WHERE target_table = ? ORDER BY sequence, file_path",
                (target,),
            ).fetchall()
        return rows_as(FileRecord, out)

    def find(self, target: str | None = None, status: str | None = None) -> list[FileRecord]:
        """Tracker rows, optionally of one target table and/or one status, by sequence."""
        sql = "SELECT * FROM files WHERE 1 = 1"
        params: list[Any] = []
        if target is not None:
            sql += " AND target_table = ?"
            params.append(target)
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        sql += " ORDER BY target_table, sequence, file_path"
        with self.db.transaction() as tx:
            return rows_as(FileRecord, tx.execute(sql, params).fetchall())

    def get(self, target: str, path: str) -> FileRecord | None:
        """One tracker row, or None."""
        with self.db.transaction() as tx:
            row = tx.execute(
                "SELECT * FROM files WHERE target_table = ? AND file_path = ?", (target, path)
            ).fetchone()
        return record_from_row(FileRecord, row) if row else None

    def claim(self, target: str, path: str, token: str) -> bool:
        """pending/failed -> processing, owned by `token` (which must hold a lock)."""
        stamp = clock.now_iso()
        with self.db.transaction() as tx:
            n = tx.execute(
                "UPDATE files SET status = ?, owner_token = ?, started_at = ?, ended_at = NULL, "
                "updated_at = ? WHERE target_table = ? AND file_path = ? AND status IN (?, ?) "
                f"AND {_GUARD}",
                (
                    FILE_PROCESSING,
                    token,
                    stamp,
                    stamp,
                    target,
                    path,
                    FILE_PENDING,
                    FILE_FAILED,
                    token,
                ),
            ).rowcount
        return bool(n == 1)

    def complete(
        self,
        target: str,
        path: str,
        token: str,
        *,
        delta_version: int | None,
        batch_id: str | None,
    ) -> bool:
        """processing -> completed, only by the owner while its lock is held."""
        return self._finish_owned(
            target,
            path,
            token,
            "status = ?, delta_version = ?, batch_id = ?, error = NULL",
            (FILE_COMPLETED, delta_version, batch_id),
        )

    def fail(self, target: str, path: str, token: str, error: str) -> bool:
        """processing -> failed with the error, retry count + 1 (owner only)."""
        return self._finish_owned(
            target,
            path,
            token,
            "status = ?, error = ?, retry_count = retry_count + 1",
            (FILE_FAILED, error[:2000]),
        )

    def _finish_owned(
        self, target: str, path: str, token: str, assignments: str, values: tuple[Any, ...]
    ) -> bool:
        """End a `processing` file: only its owner, and only while the owner's lock holds."""
        stamp = clock.now_iso()
        with self.db.transaction() as tx:
            n = tx.execute(
                f"UPDATE files SET {assignments}, ended_at = ?, owner_token = NULL, "
                "updated_at = ? WHERE target_table = ? AND file_path = ? AND status = ? "
                f"AND owner_token = ? AND {_GUARD}",
                (*values, stamp, stamp, target, path, FILE_PROCESSING, token, token),
            ).rowcount
        return bool(n == 1)

    def record_committed(
        self,
        target: str,
        path: str,
        *,
        checksum: str | None,
        sequence: int | None,
        delta_version: int | None,
        batch_id: str | None,
    ) -> None:
        """Mark a file completed because the Delta log says it is in (reconciliation)."""
        stamp = clock.now_iso()
        with self.db.transaction() as tx:
            n = tx.execute(
                "UPDATE files SET status = ?, checksum = COALESCE(?, checksum), "
                "sequence = COALESCE(?, sequence), delta_version = ?, batch_id = ?, "
                "owner_token = NULL, error = NULL, ended_at = COALESCE(ended_at, ?), "
                "updated_at = ? WHERE target_table = ? AND file_path = ?",
                (
                    FILE_COMPLETED,
                    checksum,
                    sequence,
                    delta_version,
                    batch_id,
                    stamp,
                    stamp,
                    target,
                    path,
                ),
            ).rowcount
            if n == 0:
                # Another process may insert the same row first (PostgreSQL, read
                # committed): then its row stands, and it says the same thing.
                tx.execute(
                    "INSERT INTO files (file_path, target_table, checksum, sequence, status, "
                    "batch_id, delta_version, ended_at, retry_count, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?) "
                    "ON CONFLICT (target_table, file_path) DO UPDATE SET status = excluded.status, "
                    "delta_version = excluded.delta_version, batch_id = excluded.batch_id, "
                    "updated_at = excluded.updated_at",
                    (
                        path,
                        target,
                        checksum,
                        sequence,
                        FILE_COMPLETED,
                        batch_id,
                        delta_version,
                        stamp,
                        stamp,
                        stamp,
                    ),
                )

    def _orphans(self, tx: Tx, target: str | None) -> list[OrphanedFile]:
        """The orphaned `processing` rows (of one target, or all), read inside `tx`."""
        sql = "SELECT * FROM files WHERE status = ?"
        params: list[Any] = [FILE_PROCESSING]
        if target is not None:
            sql += " AND target_table = ?"
            params.append(target)
        rows = tx.execute(sql + " ORDER BY target_table, sequence, file_path", params).fetchall()
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
                    "UPDATE files SET status = ?, owner_token = NULL, updated_at = ? "
                    f"WHERE target_table = ? AND file_path = ? AND status = ? AND {owner}",
                    (
                        FILE_PENDING,
                        stamp,
                        rec.target_table,
                        rec.file_path,
                        FILE_PROCESSING,
                        *(() if rec.owner_token is None else (rec.owner_token,)),
                    ),
                ).rowcount
                if n == 1:
                    released.append(orphan)
        return released

    def set_pending(self, target: str, paths: Iterable[str]) -> int:
        """Put files back to pending (a tracker entry with no commit); returns how many."""
        stamp = clock.now_iso()
        n = 0
        with self.db.transaction() as tx:
            for path in paths:
                n += tx.execute(
                    "UPDATE files SET status = ?, delta_version = NULL, owner_token = NULL, "
                    "updated_at = ? WHERE target_table = ? AND file_path = ?",
                    (FILE_PENDING, stamp, target, path),
                ).rowcount
        return n

    def reset_failed(self, target: str | None = None) -> int:
        """Failed files back to pending with a fresh retry budget; returns how many."""
        sql = "UPDATE files SET status = ?, retry_count = 0, error = NULL, updated_at = ? "
        sql += "WHERE status = ?"
        params: list[Any] = [FILE_PENDING, clock.now_iso(), FILE_FAILED]
        if target is not None:
            sql += " AND target_table = ?"
            params.append(target)
        with self.db.transaction() as tx:
            return int(tx.execute(sql, params).rowcount)

    def forget(self, target: str | None = None) -> int:
        """Delete tracker rows (of one table, or all); the Delta log re-derives them."""
        sql = "DELETE FROM files"
        params: list[Any] = []
        if target is not None:
            sql += " WHERE target_table = ?"
            params.append(target)
        with self.db.transaction() as tx:
            return int(tx.execute(sql, params).rowcount)

    def counts(self, target: str | None = None) -> dict[str, int]:
        """How many tracked files are in each status."""
        sql = "SELECT status, COUNT(*) AS n FROM files"
        params: list[Any] = []
        if target is not None:
            sql += " WHERE target_table = ?"
            params.append(target)
        sql += " GROUP BY status"
        with self.db.transaction() as tx:
            rows = tx.execute(sql, params).fetchall()
        counts = dict.fromkeys(FILE_STATUSES, 0)
        counts.update({r["status"]: int(r["n"]) for r in rows})
        return counts
