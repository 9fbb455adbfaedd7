"""Load one table: its files in window order, each exactly once, each one Delta commit.

Protocol for one table (the caller holds the table's lease lock):
1. Reconcile the tracker from the Delta log: a commit the tracker does not know is marked
   completed (a kill between commit and tracker update); a completed entry whose commit is
   gone from a log that still covers its version goes back to pending; a `processing`
   entry whose owner's lock is gone or stale (expired, dead pid) goes back to pending.
2. Register discovered files; new ones get the next sequence numbers, in window order.
3. For each file by sequence: skip when the log already has it (app-transaction version
   >= its sequence, or a commit whose metadata names the file and checksum); else claim
   it, verify its checksum against the sidecar, read it, check the schema, and write one
   commit carrying the file's markers. A commit conflict (someone committed since our
   snapshot) reloads the table and checks again. The tracker is updated after the commit.
4. A failed file stops the table: later files must not overtake it (window order, and the
   app-transaction version is only a valid "already loaded" test when loads are in order).
   It is retried on the next load, up to `max_file_retries` times.

merge and scd2 may find nothing to change (apply_* returns None): the file is then one
empty commit carrying only its markers (markers.commit_markers), so the log names every
loaded file and a rebuilt tracker never reloads it after newer files. Trackers written
before that hold such files as completed with delta_version NULL; reconciliation still
accepts "completed, no commit" for those strategies.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from onceflow.config import LoadConfig
from onceflow.errors import LoadError, LockError, OnceflowError
from onceflow.faults import crashpoint
from onceflow.lake import SourceFile
from onceflow.load import markers
from onceflow.load.append import apply_append
from onceflow.load.merge import apply_merge
from onceflow.load.overwrite import apply_overwrite
from onceflow.load.scd2 import apply_scd2
from onceflow.redact import redact
from onceflow.state import FileEntry, Store
from onceflow.state.files import FILE_COMPLETED, FILE_FAILED, FileRecord
from onceflow.warehouse import (
    arrow_schema,
    checkpoint_if_due,
    conform_batch,
    one_line,
    open_table,
    with_audit_columns,
)

log = logging.getLogger("onceflow.load")

#: Called once per file after it is read and its schema checked, before any commit; it
#: raises LoadError (e.g. onceflow.errors.GateError) to fail the file (the pre-load gate).
Gate = Callable[["LoadTarget", SourceFile, pa.Table], None]

CONFLICT_RETRIES = 5
# strategies whose older trackers may hold completed files without a commit (see above)
NO_COMMIT_STRATEGIES = ("merge", "scd2")


@dataclass(frozen=True)
class LoadTarget:
    """A Delta table to load: report key, tracker/app-id name, location, strategy."""

    key: str
    target: str
    uri: str
    cfg: LoadConfig
    app: str | None = None  # the app id, when not derived from `target`

    @property
    def app_id(self) -> str:
        return self.app or markers.app_id(self.target)

    @property
    def lock_name(self) -> str:
        return f"load:{self.target}"


@dataclass
class FileOutcome:
    """What happened to one file: loaded, skipped (already in), unchanged, failed."""

    path: str
    action: str
    sequence: int | None = None
    rows: int | None = None
    version: int | None = None
    error: str | None = None


@dataclass
class TableLoadResult:
    """The outcome of loading one table."""

    key: str
    target: str
    uri: str
    strategy: str
    files: list[FileOutcome] = field(default_factory=list)
    error: str | None = None
    reconciled: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def counts(self) -> dict[str, int]:
        out = {"loaded": 0, "skipped": 0, "unchanged": 0, "failed": 0}
        for f in self.files:
            out[f.action] = out.get(f.action, 0) + 1
        return out

    @property
    def rows(self) -> int:
        return sum(f.rows or 0 for f in self.files if f.action == "loaded")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["counts"] = self.counts()
        data["rows"] = self.rows
        return data


def reconcile(store: Store, tgt: LoadTarget, view: markers.LogView) -> list[str]:
    """Bring the tracker in line with the Delta log (the truth); returns what changed."""
    notes = []
    tracked = {r.file_path: r for r in store.files.find(tgt.target)}
    for path, logged in view.files.items():
        rec = tracked.get(path)
        if rec is None or rec.status != FILE_COMPLETED or rec.delta_version != logged.version:
            store.files.record_committed(
                tgt.target,
                path,
                checksum=logged.checksum,
                sequence=logged.sequence,
                delta_version=logged.version,
                batch_id=logged.batch_id,
            )
            notes.append(
                f"{path}: in the Delta log (version {logged.version}); tracker marked completed"
            )
    for rec in tracked.values():
        if (
            rec.status == FILE_COMPLETED
            and rec.delta_version is not None
            and rec.file_path not in view.files
            and rec.delta_version >= view.oldest_version
        ):
            store.files.set_pending(tgt.target, [rec.file_path])
            notes.append(
                f"{rec.file_path}: tracker said completed but no commit has it; back to pending"
            )
    for orphan in store.files.release_orphans(tgt.target):
        notes.append(
            f"{orphan.record.file_path}: processing by a loader that is gone; back to pending"
        )
    return notes


def _read_verified(source: SourceFile) -> tuple[pa.Table, str]:
    """Read a file once: its checksum must match the sidecar's, and it must be Parquet."""
    try:
        data = Path(source.path).read_bytes()
    except OSError as error:
        raise LoadError(f"{source.path}: cannot read the file ({error.strerror})") from None
    checksum = hashlib.sha256(data).hexdigest()
    if source.checksum and checksum != source.checksum:
        raise LoadError(
            f"{source.path}: checksum {checksum[:16]}... does not match its sidecar "
            f"({source.checksum[:16]}...): the file changed after extraction; the table is "
            "unchanged. Re-extract it (`onceflow extract --force-reprocess`)"
        )
    try:
        table = pq.read_table(pa.BufferReader(data))
    except Exception as error:  # pyarrow raises ArrowInvalid, OSError...
        raise LoadError(
            f"{source.path}: not a readable Parquet file ({str(error).strip()[:200]}); "
            "the table is unchanged"
        ) from None
    return table, checksum


def _apply(
    tgt: LoadTarget,
    dt: Any,
    batch: pa.Table,
    *,
    path: str,
    batch_id: str,
    props: Any,
    load_time: datetime,
) -> int | None:
    """One commit of one file with the table's strategy; the new version, or None when
    the strategy found nothing to change (merge and scd2)."""
    strategy = tgt.cfg.strategy
    if strategy in ("append", "overwrite"):
        apply = apply_append if strategy == "append" else apply_overwrite
        # no commit retries: a commit that succeeds is exactly the snapshot's next version
        before = None if dt is None else int(dt.version())
        apply(
            dt if dt is not None else tgt.uri,
            batch,
            source_file=path,
            load_time=load_time,
            batch_id=batch_id,
            commit_properties=props,
        )
        if before is not None:
            return before + 1
        return markers.find_commit(tgt.uri, batch_id)
    batch = with_audit_columns(batch, source_file=path, load_time=load_time, batch_id=batch_id)
    if strategy == "scd2":
        return apply_scd2(
            tgt.uri,
            batch,
            tgt.cfg,
            load_time=load_time,
            commit_properties=props,
            table=dt,
            create_empty=True,
        )
    return apply_merge(
        tgt.uri, batch, tgt.cfg, commit_properties=props, table=dt, create_empty=True
    )


def _is_conflict(error: BaseException) -> bool:
    from deltalake.exceptions import CommitFailedError

    return isinstance(error, CommitFailedError)


def _delta_error(path: str, error: Exception) -> LoadError:
    text = redact(one_line(str(error)))[:300]
    if "cast" in text.lower() or "schema" in text.lower():
        return LoadError(f"{path}: incompatible schema ({text}); the table is unchanged")
    return LoadError(
        f"{path}: Delta write failed ({type(error).__name__}: {text}); the table is unchanged"
    )


def load_file(
    store: Store,
    tgt: LoadTarget,
    rec: FileRecord,
    source: SourceFile,
    *,
    token: str,
    check_lock: Callable[[], None],
    gate: Gate | None = None,
) -> FileOutcome:
    """Load one claimed-or-claimable file as one commit (or skip it when it is in)."""
    seq = int(rec.sequence or 0)
    batch_id = markers.batch_id_for(source.path, source.checksum)
    for _attempt in range(CONFLICT_RETRIES):
        dt = open_table(tgt.uri)
        view = markers.read_log(dt, tgt.app_id)
        logged = view.files.get(source.path)
        if view.has(source.path, source.checksum) or (view.txn_version >= seq > 0):
            store.files.record_committed(
                tgt.target,
                source.path,
                checksum=source.checksum,
                sequence=seq,
                delta_version=logged.version if logged else None,
                batch_id=logged.batch_id if logged else batch_id,
            )
            return FileOutcome(
                source.path, "skipped", seq, version=logged.version if logged else None
            )
        if rec.status != "processing" and not store.files.claim(tgt.target, source.path, token):
            current = store.files.get(tgt.target, source.path)
            raise LockError(
                f"{source.path}: could not claim it (status "
                f"{current.status if current else 'missing'}); another loader?"
            )
        rec = FileRecord(**{**asdict(rec), "status": "processing"})
        batch, checksum = _read_verified(source)
        table_schema = arrow_schema(dt) if dt is not None else None
        # one schema rule for every strategy: refuse a lossy type, widen what fits
        batch, added = conform_batch(batch, table_schema, source.path)
        if added and table_schema is not None:
            log.info("%s: new columns %s added to %s", tgt.key, ", ".join(added), tgt.uri)
        if gate is not None:
            gate(tgt, source, batch)
        props = markers.commit_properties(
            path=source.path, checksum=checksum, batch_id=batch_id, sequence=seq, app=tgt.app_id
        )
        check_lock()
        try:
            version = _apply(
                tgt,
                dt,
                batch,
                path=source.path,
                batch_id=batch_id,
                props=props,
                load_time=datetime.now(UTC),
            )
            changed = version is not None
            if not changed and dt is not None:
                # Nothing to change still commits the file's markers: the log stays the
                # record of every loaded file, so a lost tracker never reloads this file
                # after later ones (which would bring back values they replaced).
                version = markers.commit_markers(dt, props)
        except OnceflowError:
            raise
        except Exception as error:
            if _is_conflict(error) or (dt is None and open_table(tgt.uri) is not None):
                log.info(
                    "%s: commit conflict on %s; reloading the table and checking again",
                    tgt.key,
                    source.path,
                )
                continue
            raise _delta_error(source.path, error) from None
        crashpoint("after_delta_commit")
        if not store.files.complete(
            tgt.target, source.path, token, delta_version=version, batch_id=batch_id
        ):
            raise LockError(
                f"{source.path}: committed as version {version}, but the lock was "
                "lost before the tracker was updated; the next load reconciles it"
            )
        return FileOutcome(
            source.path,
            "loaded" if changed else "unchanged",
            seq,
            rows=batch.num_rows,
            version=version,
        )
    raise LoadError(
        f"{source.path}: {CONFLICT_RETRIES} commit conflicts in a row; "
        "another writer keeps committing to the table"
    )


def load_table(
    store: Store,
    tgt: LoadTarget,
    files: list[SourceFile],
    *,
    token: str,
    check_lock: Callable[[], None],
    gate: Gate | None = None,
) -> TableLoadResult:
    """Load the files of one table (the caller holds `tgt.lock_name` with `token`)."""
    started = time.monotonic()
    result = TableLoadResult(tgt.key, tgt.target, tgt.uri, tgt.cfg.strategy)
    try:
        view = markers.read_log(open_table(tgt.uri), tgt.app_id)
        result.reconciled = reconcile(store, tgt, view)
        for note in result.reconciled:
            log.warning("%s: %s", tgt.key, note)
        known = {p: f.sequence for p, f in view.files.items() if f.sequence is not None}
        records = store.files.register(
            tgt.target,
            [FileEntry(f.path, f.size, f.modified_time, f.checksum) for f in files],
            known_sequences=known,
            floor=view.txn_version,
        )
    except OnceflowError as error:
        result.error = str(error)
        return result
    except Exception as error:
        result.error = (
            f"{tgt.uri}: cannot read the Delta table ({redact(one_line(str(error)))[:300]})"
        )
        return result
    by_path = {f.path: f for f in files}
    for rec in records:
        source = by_path.get(rec.file_path)
        if rec.status == FILE_COMPLETED:
            if source is not None:
                result.files.append(
                    FileOutcome(rec.file_path, "skipped", rec.sequence, version=rec.delta_version)
                )
            continue
        if source is None:
            # a pending file of an earlier discovery that is no longer committed in the lake
            result.error = (
                f"{rec.file_path}: tracked as {rec.status} but no longer a "
                "committed file in the lake; later files wait. Re-extract it or "
                "`onceflow reset-state` the table's files"
            )
            break
        if rec.status == FILE_FAILED and rec.retry_count > tgt.cfg.max_file_retries:
            result.error = (
                f"{rec.file_path}: gave up after {rec.retry_count} failed attempts "
                f"(max_file_retries {tgt.cfg.max_file_retries}); last error: "
                f"{rec.error}. Fix it, then `onceflow reset-state --failed`"
            )
            result.files.append(FileOutcome(rec.file_path, "failed", rec.sequence, error=rec.error))
            break
        try:
            outcome = load_file(
                store, tgt, rec, source, token=token, check_lock=check_lock, gate=gate
            )
        except LockError as error:
            result.error = str(error)
            break
        except OnceflowError as error:
            message = redact(str(error))
            store.files.fail(tgt.target, rec.file_path, token, message)
            result.files.append(FileOutcome(rec.file_path, "failed", rec.sequence, error=message))
            result.error = message
            log.error("%s: %s", tgt.key, message, extra={"table": tgt.key, "action": "failed"})
            break
        result.files.append(outcome)
        log.info(
            "%s: %s %s (%s rows, version %s)",
            tgt.key,
            outcome.action,
            outcome.path,
            outcome.rows,
            outcome.version,
            extra={"table": tgt.key, "action": outcome.action, "rows": outcome.rows},
        )
    if any(f.action in ("loaded", "unchanged") for f in result.files):
        try:
            checkpoint_if_due(open_table(tgt.uri))
        except BaseException as error:  # delta-rs panics are BaseExceptions
            if isinstance(error, KeyboardInterrupt | SystemExit):
                raise
            # the commits are in; a checkpoint only speeds reads
            log.warning("%s: no checkpoint written (%s)", tgt.key, redact(str(error))[:200])
    result.duration_seconds = round(time.monotonic() - started, 3)
    return result
