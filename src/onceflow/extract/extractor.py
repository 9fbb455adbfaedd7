"""Extract one table for one run: skip when committed, else stream, hash, fsync, rename."""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

from onceflow.config import RetryConfig, SourceConfig, TableConfig
from onceflow.errors import (
    ExtractError,
    LockError,
    OnceflowError,
    SourceError,
    error_names,
    is_panic,
    plain_message,
)
from onceflow.extract.prefetch import prefetch
from onceflow.extract.readers import make_reader
from onceflow.extract.sql import ReadSpec
from onceflow.faults import crashpoint
from onceflow.lake.atomic import CHECKSUM_ALGORITHM, commit, new_temp
from onceflow.lake.paths import output_path
from onceflow.lake.sidecar import (
    SELECTION_FIELDS,
    Verdict,
    read_sidecar,
    remove_sidecar,
    verify,
    write_sidecar,
)
from onceflow.redact import redact
from onceflow.state import ExtractionOutcome
from onceflow.version import __version__
from onceflow.windows import Window

if TYPE_CHECKING:
    from tenacity import RetryCallState

log = logging.getLogger(__name__)

# Batches are gathered into row groups of about this size: big enough for fast scans,
# small enough that memory stays bounded whatever the table's size.
ROW_GROUP_BYTES = 48 << 20
ROW_GROUP_ROWS = 1_000_000
WRITE_BUFFER_BYTES = 8 << 20


# How `early_commit`'s reason begins, so that `is_early_commit` knows it.
EARLY_COMMIT = "the file was committed as complete at "


@dataclass(frozen=True)
class TableJob:
    """Everything needed to extract one table for one run."""

    table: TableConfig
    source: SourceConfig
    source_url: str
    run_id: str
    run_date: date
    window: Window
    lake: str
    zone: ZoneInfo
    compression: str = "snappy"
    retry: RetryConfig = field(default_factory=RetryConfig)
    deep_verify: bool = False
    force: bool = False
    #: Why a forced job re-extracts, as its result's reason says.
    force_reason: str = "forced"
    partial: bool = False  # the window has not settled: the sidecar says so
    #: When the window settles by this host's clock (its end + `settle`); None: not given.
    settles_at: datetime | None = None
    # Raises LockError when the pipeline lock was lost: called before each commit, so a
    # process paused past its lease (SIGSTOP) cannot overwrite what its successor wrote.
    check_lock: Callable[[], None] | None = None

    @property
    def key(self) -> str:
        """The table's key, `<source>.<name>` (`TableConfig.key`)."""
        return self.table.key

    @property
    def target(self) -> Path:
        """Where the run's file of this table goes in the lake (`lake.output_path`)."""
        return output_path(
            self.lake, self.table.source, self.table.display_name, self.run_date, self.run_id
        )

    @property
    def window_iso(self) -> tuple[str, str]:
        """The window's start and end as ISO 8601 text, as the state store keeps them."""
        return self.window.iso()


@dataclass
class ExtractionResult:
    """What happened to one table: skipped, extracted or failed."""

    table_key: str
    action: str
    file_path: str
    window_start: str
    window_end: str
    record_count: int | None = None
    file_size: int | None = None
    checksum: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    duration_seconds: float | None = None
    error: str | None = None
    reason: str | None = None
    attempts: int = 0
    #: A failure's type names for a retry policy (`onceflow.errors.error_names`).
    error_types: tuple[str, ...] = ()
    #: Rows whose cursor is in no window (NULL...), left out under `null_cursor: skip`;
    #: None when not counted (a full extract, a query that places the window itself).
    null_cursor_rows: int | None = None
    #: The committed file holds a window that had not ended (or settled) when it was read:
    #: extracted under `allow_partial`, its sidecar says `partial: true`, and every run
    #: extracts it again until the window has ended; `completed` alone would overstate it.
    partial: bool = False

    def as_state(self) -> ExtractionOutcome:
        """What the state store records of a finished table."""
        return ExtractionOutcome(
            table_key=self.table_key,
            action=self.action,
            record_count=self.record_count,
            file_path=self.file_path,
            file_size=self.file_size,
            checksum=self.checksum,
            window_start=self.window_start,
            window_end=self.window_end,
            started_at=self.started_at,
            ended_at=self.ended_at,
            duration_seconds=self.duration_seconds,
            null_cursor_rows=self.null_cursor_rows,
        )


def check_committed(job: TableJob) -> Verdict:
    """Whether the table's file for this run is committed and intact (a partial window's
    file never is: it is extracted again, until its window has ended)."""
    verdict = verify(
        job.target,
        job.run_id,
        job.window_iso,
        deep=job.deep_verify,
        table_config=_table_config(job),
    )
    if verdict.complete and (verdict.sidecar or {}).get("partial") is True:
        return Verdict(False, "the committed file holds a partial window", verdict.sidecar)
    unsettled = early_commit(job, verdict)
    if unsettled is not None:
        return Verdict(False, unsettled, verdict.sidecar)
    return verdict


def early_commit(job: TableJob, verdict: Verdict) -> str | None:
    """Why the committed file `verdict` found cannot be trusted as complete, or None.

    A file committed `partial: false` while the window has not settled by this host's
    clock was committed by a clock ahead of this one: a clock stepped back since (NTP,
    a VM restored), or a worker on another host sharing the store; or under a shorter
    `settle` than the config's now (raised since the commit). Rows committed into
    the window since are in no file; skipped as complete, they would be lost without a
    word. Treated as partial instead: extracted again (under --allow-partial) by every
    run until the window has settled."""
    sidecar = verdict.sidecar or {}
    if not (verdict.complete and job.partial):
        return None
    settles = f" {job.settles_at.isoformat()}" if job.settles_at is not None else ""
    return (
        f"{EARLY_COMMIT}{sidecar.get('end_time', '?')}, but by this host's clock the window "
        f"settles only at{settles}: a clock stepped back, another host's clock is ahead, "
        "or `settle` was raised since the commit; treated as partial, extracted again "
        "until the window has settled"
    )


def is_early_commit(verdict: Verdict) -> bool:
    """Whether `check_committed` refused a file as committed before its window settled
    by this host's clock (`early_commit`)."""
    return not verdict.complete and verdict.reason.startswith(EARLY_COMMIT)


@dataclass(frozen=True)
class OtherCommit:
    """A committed lake file of the job's table for the job's window under another run id."""

    path: Path
    run_id: str


def other_commits(job: TableJob) -> list[OtherCommit]:
    """The committed files of the job's table whose sidecar gives the job's window (the
    same instants) under another run id: the window is already in the lake. A second
    file of it would be loaded too (the loader loads every committed file), its rows
    twice. Only the run date's folder can hold one: a file's folder is its run date."""
    folder = job.target.parent
    if not folder.is_dir():
        return []
    wanted = tuple(datetime.fromisoformat(x) for x in job.window_iso)
    found: list[OtherCommit] = []
    for path in sorted(folder.glob("*.parquet")):
        if path.name == job.target.name:
            continue
        sidecar = read_sidecar(path) or {}
        run_id = sidecar.get("run_id")
        if sidecar.get("extraction_complete") is not True or not isinstance(run_id, str):
            continue
        if run_id == job.run_id:
            continue
        try:
            window = tuple(
                datetime.fromisoformat(str(sidecar.get(k))) for k in ("window_start", "window_end")
            )
        except ValueError:
            continue
        if window == wanted:
            found.append(OtherCommit(path, run_id))
    return found


def needs_extraction(job: TableJob, verdict: Verdict) -> bool:
    """Whether a run extracts the table rather than reuse its committed file (`verdict`,
    from check_committed): no intact file for the window, or forced. The one decision
    that `extract`, `extract_table` and `is_extraction_needed` make."""
    return job.force or not verdict.complete


def skipped_result(job: TableJob, verdict: Verdict) -> ExtractionResult:
    """The result of a table whose committed file is reused."""
    sidecar = verdict.sidecar or {}
    return ExtractionResult(
        table_key=job.key,
        action="skipped",
        file_path=str(job.target),
        window_start=job.window_iso[0],
        window_end=job.window_iso[1],
        record_count=sidecar.get("record_count"),
        file_size=sidecar.get("file_size_bytes"),
        checksum=sidecar.get("checksum"),
        reason="already extracted",
        null_cursor_rows=sidecar.get("null_cursor_rows"),
        partial=sidecar.get("partial") is True,
    )


def _table_config(job: TableJob) -> dict[str, Any]:
    table = job.table
    return {
        "source_name": table.source,
        "table_name": table.display_name,
        "table": table.table,
        "query": redact(table.query) if table.query else None,
        "is_full_extract": table.extract.mode == "full",
        "mode": table.extract.mode,
        "cursor": table.extract.cursor,
        "dialect": job.source.dialect,
    }


def _schema_doc(schema: pa.Schema) -> list[dict[str, Any]]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


@dataclass(frozen=True)
class _Written:
    rows: int
    size: int
    checksum: str
    schema: pa.Schema
    snapshot_at: datetime
    #: The committed sidecar of the same bytes, when the file was extracted again with
    #: the content it had: that commit stands (see `_same_commit`).
    kept: dict[str, Any] | None = None
    #: The reader's count of rows in no window (`Reader.null_cursor_rows`).
    null_cursor_rows: int | None = None


def _same_commit(job: TableJob, checksum: str, size: int) -> dict[str, Any] | None:
    """The target's committed sidecar when it commits exactly these bytes for this run,
    window and selection, else None.

    A re-extraction that reads what the lake already holds changes nothing the table is
    a function of, so the commit stands as it was, `snapshot_at` included: a new instant
    would not be what the table was loaded with (the load skips a file whose checksum it
    holds), and a rebuild from the lake would then give other SCD2 validity.
    """
    sidecar = read_sidecar(job.target)
    if sidecar is None or sidecar.get("extraction_complete") is not True:
        return None
    recorded = sidecar.get("table_config") or {}
    wanted = _table_config(job)
    same = (
        sidecar.get("checksum") == checksum
        and sidecar.get("file_size_bytes") == size
        and sidecar.get("run_id") == job.run_id
        and (sidecar.get("window_start"), sidecar.get("window_end")) == job.window_iso
        and all(recorded.get(f) == wanted.get(f) for f in SELECTION_FIELDS)
    )
    return sidecar if same else None


def _write(job: TableJob, spec: ReadSpec) -> _Written:
    """Stream the source into a temp file, hashing as written; fsync and rename it."""
    target = job.target
    reader = make_reader(job.source, job.source_url, job.zone, job.key)
    batches = reader.batches(spec)
    # The rows are the source's committed data as of about this instant: the query is sent
    # by the first read below (PostgreSQL takes the statement's snapshot when it starts).
    snapshot_at = datetime.now(UTC)
    try:
        first = next(batches)
    except StopIteration:  # pragma: no cover - readers always yield at least one batch
        raise ExtractError(f"{job.key}: the reader returned no schema") from None
    if not first.schema:
        _close(batches)  # nothing of it can be written: the source connection goes now
        raise _no_columns(job)
    try:
        temp = new_temp(target)
    except OSError as error:
        _close(batches)  # the source connection is open; nothing will read from it now
        raise _io_error(job, error) from None
    prefetching = False
    rows = 0
    try:
        raw = pa.PythonFile(temp, mode="w")
        sink = pa.BufferedOutputStream(raw, buffer_size=WRITE_BUFFER_BYTES)
        compression = None if job.compression == "none" else job.compression
        writer = pq.ParquetWriter(sink, first.schema, compression=compression)
        pending: list[pa.RecordBatch] = []
        pending_bytes = 0
        pending_rows = 0

        def flush() -> None:
            nonlocal pending, pending_bytes, pending_rows
            if pending:
                writer.write_table(
                    pa.Table.from_batches(pending, schema=first.schema),
                    row_group_size=max(pending_rows, 1),
                )
                crashpoint("during_write", job.key)
            pending, pending_bytes, pending_rows = [], 0, 0

        prefetching = True  # from here the prefetch thread owns and closes `batches`
        for batch in _chain(first, prefetch(batches, depth=1)):
            if batch.num_rows == 0:
                continue
            pending.append(batch)
            pending_bytes += batch.nbytes
            pending_rows += batch.num_rows
            rows += batch.num_rows
            if pending_bytes >= ROW_GROUP_BYTES or pending_rows >= ROW_GROUP_ROWS:
                flush()
        flush()
        writer.close()
        sink.close()
        if job.check_lock is not None:
            job.check_lock()
        kept = _same_commit(job, temp.hexdigest, temp.size)
        if kept is None:
            # The old commit stood while the new data was read and written: a source that
            # fails, a full disk, a kill before here leave it whole. It is withdrawn only
            # now, durably, right before its file is replaced.
            remove_sidecar(target)
            crashpoint("before_data_rename", job.key)
        temp.close()  # the fsync first: no slow step between the last check and the rename
        if job.check_lock is not None:
            # the last check, right before the rename (with half the lease left at least,
            # see Lease.check): a lock lost while paused above stops here, nothing renamed
            job.check_lock()
        # The same bytes are renamed into place under their standing sidecar too: that
        # repairs a file damaged in place, and the sidecar is never wrong for it.
        commit(temp, target)
    except BaseException as error:
        temp.abandon()
        if not prefetching:
            _close(batches)
        if isinstance(error, OSError):
            raise _io_error(job, error) from None
        raise
    if job.check_lock is not None:
        try:
            job.check_lock()
        except LockError as error:
            _lost_after_rename(job, temp.hexdigest, temp.size, error)
    return _Written(
        rows, temp.size, temp.hexdigest, first.schema, snapshot_at, kept, reader.null_cursor_rows
    )


def _no_columns(job: TableJob) -> ExtractError:
    """The refusal of a result without columns (PostgreSQL's `CREATE TABLE t()`, or
    `select from t`): its rows are there (the driver counts them) but a Parquet file holds
    rows only in columns, so the file would say 0 rows and the table would be reported
    extracted with its rows lost. Not a source error: retrying reads the same nothing."""
    table = job.table
    if table.table:
        return ExtractError(
            f"{job.key}: the source table {table.table} has no columns: select at least one column"
        )
    return ExtractError(f"{job.key}: the query returns no columns: select at least one column")


def _lost_after_rename(job: TableJob, checksum: str, size: int, error: LockError) -> None:
    """Raise the LockError of a lock found lost right after this process renamed its file
    into place: it was paused between its last check and the rename, long enough for a
    successor to take the lock over and perhaps commit this file already.

    A rename cannot be undone: the successor's bytes are gone. So its commit is withdrawn
    unless the sidecar describes exactly the bytes now in place (the successor read the
    same rows): the sidecar is removed, and the next `run` or `extract` of that date
    finds no commit and extracts the file again (a size check alone would miss a
    replacement of the same size). A successor that commits after this removal leaves a
    sidecar that `validate-consistency` (or `--verify deep`) finds wrong."""
    target = job.target
    sidecar = read_sidecar(target)
    mine = (
        sidecar is not None
        and sidecar.get("checksum") == checksum
        and sidecar.get("file_size_bytes") == size
    )
    if sidecar is not None and not mine:
        remove_sidecar(target)
        done = (
            "it may have replaced a successor's committed file with other rows: that "
            "commit is withdrawn (its sidecar removed), so the next run of that date "
            "extracts the file again"
        )
    elif sidecar is None:
        # a successor between its own rename and its sidecar would commit the bytes in
        # place, ours or its own: validate-consistency finds a sidecar that is wrong
        done = "no commit stands for it now; the next run of that date extracts the file again"
    else:
        done = "the bytes it renamed are those the successor committed: nothing is lost"
    message = (
        f"{job.key}: the lock was lost while this process renamed its file into place "
        f"({target}): {done}. {error}"
    )
    log.error("%s", message, extra={"table": job.key, "action": "lost"})
    raise LockError(message, lock=error.lock) from error


def _close(batches: Any) -> None:
    """Close a reader's generator, which closes its connection."""
    close = getattr(batches, "close", None)
    if callable(close):
        close()


def _chain(first: pa.RecordBatch, rest: Any) -> Any:
    yield first
    yield from rest


def _io_error(job: TableJob, error: OSError) -> ExtractError:
    if error.errno == errno.ENOSPC:
        return ExtractError(f"{job.key}: disk full while writing {job.target.parent}")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST):
        return ExtractError(
            f"{job.key}: cannot write to lake folder {job.target.parent}: {error.strerror}"
        )
    return ExtractError(f"{job.key}: writing {job.target} failed: {error.strerror or error}")


def _read_spec(job: TableJob) -> ReadSpec:
    table = job.table
    return ReadSpec(
        table=table.table,
        query=table.query,
        cursor=table.extract.cursor if table.extract.mode == "incremental" else None,
        window=job.window,  # also binds :window_start/:window_end in a full-mode query
        batch_rows=table.extract.batch_rows,
        null_cursor=table.extract.null_cursor,
    )


def _with_retries(job: TableJob, attempt: Callable[[], _Written]) -> _Written:
    """Run `attempt`, retrying transient source errors with exponential backoff (the
    config's `retry`): `backoff_seconds * 2**(n-1)` after failed attempt n, at most
    `max_backoff_seconds`.

    The first attempt runs without tenacity: almost every extraction succeeds at once,
    and importing it costs ~5 ms of a small window's start-up.
    """
    try:
        return attempt()
    except SourceError as error:
        if not error.transient or job.retry.max_attempts <= 1:
            raise
        _before_retry(job, 1, error)
    time.sleep(_backoff(job.retry, 1))

    from tenacity import Retrying, retry_if_exception, stop_after_attempt

    def wait(state: RetryCallState) -> float:
        return _backoff(job.retry, state.attempt_number + 1)

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        _before_retry(job, state.attempt_number + 1, error)

    retrying = Retrying(
        stop=stop_after_attempt(job.retry.max_attempts - 1),
        wait=wait,
        retry=retry_if_exception(lambda e: isinstance(e, SourceError) and e.transient),
        reraise=True,
        before_sleep=before_sleep,
    )
    return retrying(attempt)


def _backoff(retry: RetryConfig, failed_attempt: int) -> float:
    """Seconds to wait after failed attempt `failed_attempt` (1-based)."""
    return float(min(retry.backoff_seconds * 2 ** (failed_attempt - 1), retry.max_backoff_seconds))


def _before_retry(job: TableJob, failed_attempt: int, error: BaseException | None) -> None:
    log.warning(
        "%s: attempt %d failed, retrying: %s", job.key, failed_attempt, error if error else ""
    )


def _sidecar(
    job: TableJob, written: _Written, started: datetime, ended: datetime, duration: float
) -> dict[str, Any]:
    """The commit marker's content: what was written, from where, for which window."""
    window_start, window_end = job.window_iso
    return {
        "output_path": str(job.target),
        "record_count": written.rows,
        "start_time": started.isoformat(),
        "end_time": ended.isoformat(),
        "duration_seconds": duration,
        "file_size_bytes": written.size,
        "checksum": written.checksum,
        "checksum_algorithm": CHECKSUM_ALGORITHM,
        "table_config": _table_config(job),
        "extraction_complete": True,
        "run_id": job.run_id,
        "run_date": job.run_date.isoformat(),
        "window_start": window_start,
        "window_end": window_end,
        "snapshot_at": written.snapshot_at.isoformat(),
        "partial": job.partial,
        "null_cursor_rows": written.null_cursor_rows,
        "schema": _schema_doc(written.schema),
        "onceflow_version": __version__,
    }


def _failure(job: TableJob, error: BaseException) -> str:
    """A table's failure as one redacted line."""
    if isinstance(error, OnceflowError):
        return redact(str(error))
    if isinstance(error, OSError):
        return redact(str(_io_error(job, error)))
    log.debug("unexpected error extracting %s", job.key, exc_info=True)
    text = plain_message(str(error)).strip().splitlines() or [""]
    return redact(f"{job.key}: {type(error).__name__}: {text[0]}")


def extract_table(
    job: TableJob, on_attempt: Callable[[int], None] | None = None
) -> ExtractionResult:
    """Extract one table (or skip it when committed); never raises for a table failure,
    only LockError: a run that lost its lock stops, nothing more is written."""
    window_start, window_end = job.window_iso
    base: dict[str, Any] = dict(
        table_key=job.key,
        file_path=str(job.target),
        window_start=window_start,
        window_end=window_end,
    )
    verdict = check_committed(job)
    if not needs_extraction(job, verdict):
        return skipped_result(job, verdict)
    reason = job.force_reason if job.force else verdict.reason
    spec = _read_spec(job)
    started = datetime.now(UTC)
    clock = time.perf_counter()
    attempts = 0

    def attempt() -> _Written:
        nonlocal attempts
        attempts += 1
        if on_attempt:
            on_attempt(attempts)
        return _write(job, spec)

    try:
        # the old sidecar stays until the new file is whole (`_write`)
        written = _with_retries(job, attempt)
        crashpoint("after_data_rename", job.key)
        ended = datetime.now(UTC)
        duration = round(time.perf_counter() - clock, 6)
        if job.check_lock is not None:
            job.check_lock()
        kept = written.kept
        if (
            kept is None
            or (kept.get("partial") is True) != job.partial
            or kept.get("null_cursor_rows") != written.null_cursor_rows
        ):
            content = _sidecar(job, written, started, ended, duration)
            if kept is not None:
                # the same rows as the committed (partial) file: they were read then
                content["snapshot_at"] = kept.get("snapshot_at", content["snapshot_at"])
            write_sidecar(job.target, content)
        else:
            reason = f"{reason}; same content as the committed file, whose commit stands"
        crashpoint("after_sidecar", job.key)
    except LockError:
        raise
    except BaseException as error:  # an unexpected bug must fail this table, not the run
        # a Rust panic (PyO3) is a BaseException: it fails the table too; an interrupt,
        # an exit and a generator's close still end the run
        if not (isinstance(error, Exception) or is_panic(error)):
            raise
        return ExtractionResult(
            **base,
            action="failed",
            error=_failure(job, error),
            error_types=error_names(error),
            reason=reason,
            attempts=attempts,
            started_at=started.isoformat(),
            ended_at=datetime.now(UTC).isoformat(),
        )
    return ExtractionResult(
        **base,
        action="extracted",
        record_count=written.rows,
        file_size=written.size,
        checksum=written.checksum,
        started_at=started.isoformat(),
        ended_at=ended.isoformat(),
        duration_seconds=duration,
        reason=reason,
        attempts=attempts,
        null_cursor_rows=written.null_cursor_rows,
        partial=job.partial,  # what its sidecar says, written now or standing
    )
