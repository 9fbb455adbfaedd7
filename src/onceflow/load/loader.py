"""Load one table: bring it to a clean, in-order load of its lake files, one commit each.

Protocol for one table (the caller holds the table's lease lock, `load:<table uri>`):
1. Read what the table holds (`markers.read_markers`: one application transaction per
   lake file) and reconcile the tracker from it: a file the table holds is completed, a
   completed file it does not hold goes back to pending (a kill between commit and
   tracker update, a rewind, a dropped table), an orphaned `processing` row is released.
   When another writer's RESTORE left the markers stale (a Delta restore keeps
   application transactions), its correction is committed first (`correct_restores`).
2. Register the lake's files (identity, path, checksum, window) in the tracker.
3. Plan (`plan.plan_table`): which files to load, replace, or replay after a rewind.
4. Apply each step as one commit whose markers (the file's transaction, its checksum)
   are part of the commit itself. Before each commit the table is re-read: a file that
   is held meanwhile is skipped; a commit conflict reloads and checks again. The tracker
   is updated after the commit. A column the source widened is cast to the table's type
   value by value, or, with `load.widen`, the table is first rewritten with the wider
   type in a commit of its own that holds no file (`_widen`); an overwrite takes the
   file's schema in its one commit.
5. A failed file (unreadable, damaged, checksum mismatch, incompatible schema, a
   strategy error) stops the table: later files wait. It is retried on later loads up to
   `max_file_retries` times, and at once when its lake file changes (re-extraction).
   A checksum mismatch of an extracted file flags its extraction in the state store, so
   the next run extracts it again (`_proven_damaged`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from onceflow.config import LoadConfig
from onceflow.errors import (
    GateError,
    LoadError,
    LockError,
    OnceflowError,
    error_names,
    is_panic,
)
from onceflow.faults import crashpoint
from onceflow.lake import SourceFile, file_checksum, layout_day, read_sidecar
from onceflow.load.append import apply_append, replace_file_rows
from onceflow.load.merge import apply_merge
from onceflow.load.overwrite import apply_overwrite
from onceflow.load.plan import Plan, Rewind, Step, plan_table
from onceflow.load.scd2 import Scd2Outcome, apply_scd2
from onceflow.load.settings import (
    Settings,
    creation_metadata,
    kept,
    read_record,
    write_record,
)
from onceflow.redact import redact
from onceflow.state import FileEntry, Store
from onceflow.state.files import FILE_COMPLETED, FILE_FAILED, FileRecord, FileState
from onceflow.warehouse import (
    AUDIT_COLUMNS,
    arrow_schema,
    checkpoint_if_due,
    conform_batch,
    markers,
    one_line,
    open_table,
    widen_table,
    widenings,
    with_audit_columns,
    write_problem_cause,
)
from onceflow.windows import make_run_id

log = logging.getLogger(__name__)

#: Called once per file after it is read and its schema checked, before any commit; it
#: raises LoadError (e.g. onceflow.errors.GateError) to fail the file (the pre-load gate).
Gate = Callable[["LoadTarget", SourceFile, pa.Table], None]


CONFLICT_RETRIES = 5


@dataclass(frozen=True)
class LoadTarget:
    """A Delta table to load: report key, display name, location, strategy, pipeline."""

    key: str
    target: str
    uri: str
    cfg: LoadConfig
    pipeline: str = ""
    #: Loaded with `load --path`: its files are not extracted, so no extract repairs them.
    standalone: bool = False
    #: The pipeline's time zone: an SCD2 table's naive `validity_column` is wall time in it.
    timezone: str = "UTC"
    #: Record `cfg`'s settings in a table that records none (onceflow.load.settings).
    #: False for a standalone load given no strategy into a table created before the
    #: record: what it was loaded with is unknown, and a default is no record of it.
    record: bool = True

    @property
    def lock_name(self) -> str:
        """The table's lease lock: by location, so only writers of one table contend."""
        return f"load:{self.uri}"


@dataclass
class FileOutcome:
    """What happened to one file: loaded, replaced, replayed, skipped (held already),
    unchanged (nothing to change; markers committed), superseded, failed, waiting, or
    uncommitted (a data file no complete sidecar commits: not loaded, `error` says why).

    `rows` is the file's row count (read from the lake), not what the table gained: the
    table's rows the file inserted, updated (merge), deleted (merge's `delete_column`;
    scd2's deletion versions, `hard_deletes: new_record`) and closed (scd2: current
    versions ended, by a change or a deletion) say that, and are None for a file not
    applied."""

    file_id: str
    path: str
    action: str
    rows: int | None = None
    rows_skipped: int | None = None
    version: int | None = None
    error: str | None = None
    inserted: int | None = None
    updated: int | None = None
    deleted: int | None = None
    closed: int | None = None


#: What a file did to its table's rows (FileOutcome), in the order they are reported.
CHANGES = ("inserted", "updated", "deleted", "closed")


def rows_note(rows: int, changes: dict[str, int]) -> str:
    """`3 rows read; 1 inserted, 1 closed`: the files' rows, then what the table gained
    (the two differ for merge and scd2, where a row may change nothing or close a
    version, and a missing key delete or close one)."""
    done = [f"{changes[name]:,} {name}" for name in CHANGES if changes.get(name)]
    if not done:
        return f"{rows:,} rows read" + ("; no row changed" if rows else "")
    return f"{rows:,} rows read; {', '.join(done)}"


ACTIONS = (
    "loaded",
    "replaced",
    "replayed",
    "skipped",
    "unchanged",
    "superseded",
    "failed",
    "waiting",
    "uncommitted",
)


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
    rewound: list[str] = field(default_factory=list)
    waiting: str | None = None
    uncommitted: str | None = None
    #: What is wrong without keeping the table from being what its lake says (a file the
    #: table holds whose data file the lake lost): reported, not a failure.
    warnings: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0
    #: A failure's type names for a retry policy (`onceflow.errors.error_names`).
    error_types: tuple[str, ...] = ()
    #: Where the settings came from when not from the command or config: the table's
    #: record (a standalone load given no strategy), or none at all (the default).
    settings_note: str | None = None

    @property
    def ok(self) -> bool:
        """True when every file is in the table: nothing failed, nothing waits, and no
        data file of the table lacks its commit (an extraction running or interrupted)."""
        return self.error is None and self.waiting is None and self.uncommitted is None

    def counts(self) -> dict[str, int]:
        """Files per action."""
        out = dict.fromkeys(ACTIONS, 0)
        for f in self.files:
            out[f.action] = out.get(f.action, 0) + 1
        return out

    @property
    def rows(self) -> int:
        """Rows of the files this load read and applied (their row counts, not rows
        written: `changes` says what the table gained)."""
        applied = ("loaded", "replaced", "replayed", "unchanged")
        return sum(f.rows or 0 for f in self.files if f.action in applied)

    def changes(self) -> dict[str, int]:
        """The table's rows this load inserted, updated, deleted and closed (`CHANGES`)."""
        return {name: sum(getattr(f, name) or 0 for f in self.files) for name in CHANGES}

    def rows_note(self) -> str:
        """`3 rows read; 1 inserted, 1 closed` (`rows_note`)."""
        return rows_note(self.rows, self.changes())

    @property
    def rows_skipped(self) -> int:
        """Rows the strategy dropped (SCD2 late rows under `late_rows: skip`)."""
        return sum(f.rows_skipped or 0 for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data.update(
            counts=self.counts(),
            rows=self.rows,
            rows_skipped=self.rows_skipped,
            changes=self.changes(),
        )
        return data


def reconcile(
    store: Store,
    tgt: LoadTarget,
    held: markers.TableMarkers,
    tracked: Mapping[str, FileState] | None = None,
) -> list[str]:
    """Bring the tracker in line with what the table holds (the truth); returns the
    changes, one note per file. `tracked`: the table's tracker rows (`Files.states`),
    when the caller read them."""
    return _reconcile(store, tgt, held, tracked).notes()


@dataclass(frozen=True)
class _Reconciled:
    """What `_reconcile` changed. `rederived`: files the table holds that the tracker had
    no row for (after `reset-state --yes`, in a new store, at a moved table's new place):
    recorded completed, nothing disagreed. `repairs`: notes of rows that disagreed with
    the table, corrected."""

    rederived: list[str]
    repairs: list[str]

    def notes(self) -> list[str]:
        """Every change, one note per file (`validate-consistency --fix` lists each)."""
        held = [f"{f}: the table holds it; tracker marked completed" for f in self.rederived]
        return held + self.repairs


def _reconcile(
    store: Store,
    tgt: LoadTarget,
    held: markers.TableMarkers,
    tracked: Mapping[str, FileState] | None = None,
) -> _Reconciled:
    notes = []
    rederived = []
    if tracked is None:
        tracked = store.files.states(tgt.uri)
    for file_id in held.held_ids():
        rec = tracked.get(file_id)
        if (
            rec is not None
            and held.holds(file_id, rec.checksum)
            and rec.status == FILE_COMPLETED
            and rec.loaded_checksum == rec.checksum
        ):
            continue  # the usual case, decided without the log's history
        # a row to repair takes its commit's metadata, from the log's history
        commit = held.commits.get(file_id)
        checksum = commit.checksum if commit else None
        if rec is not None and held.holds(file_id, rec.checksum):
            checksum = rec.checksum
        if rec is None or rec.status != FILE_COMPLETED or rec.loaded_checksum != checksum:
            store.files.record_loaded(
                tgt.uri,
                file_id,
                pipeline=tgt.pipeline,
                table_key=tgt.key,
                checksum=checksum,
                delta_version=commit.version if commit else None,
                batch_id=commit.batch_id if commit else None,
            )
            if rec is None:
                rederived.append(file_id)
            elif rec.status != FILE_COMPLETED:
                notes.append(f"{file_id}: the table holds it; tracker marked completed")
    gone = [
        r.file_id
        for r in tracked.values()
        if r.status == FILE_COMPLETED and not held.held.get(r.file_id)
    ]
    if gone:
        store.files.record_unloaded(tgt.uri, gone)
        notes += [
            f"{f}: tracker said completed but the table does not hold it; back to pending"
            for f in gone
        ]
    for orphan in store.files.release_orphans(tgt.uri):
        notes.append(
            f"{orphan.record.file_id}: processing by a loader that is gone; back to pending"
        )
    return _Reconciled(rederived, notes)


def repair_command(tgt: LoadTarget, source: SourceFile) -> str | None:
    """The command that extracts a lake file's window again, or None (not extracted)."""
    if tgt.standalone or source.day is None:
        return None
    # the file's name is its run id (`<run id>.parquet`): an extraction under another id
    # would write another file, and this one would still fail
    run_id = PurePosixPath(source.file_id).stem
    named = "" if run_id == make_run_id(tgt.pipeline, source.day) else f" --run-id {run_id}"
    return f"onceflow extract --date {source.day} --tables {tgt.key}{named} --force-reprocess"


def _bad_rows_fix(tgt: LoadTarget, source: SourceFile) -> str:
    """How to repair a file whose rows a keyed strategy refuses (a NULL key, one key
    twice with nothing to order them), as the end of an error sentence: the lake file is
    what the source held, so the source is corrected and the window extracted again."""
    command = repair_command(tgt, source)
    if command is None:
        return "correct those rows in the file, then load"
    return f"correct those rows at the source, then re-extract the window (`{command}`) and load"


def _refusal_fix(tgt: LoadTarget, source: SourceFile, error: GateError) -> str:
    """How to repair a file the pre-load rules refused, as the end of an error sentence.
    The gate judges the lake file, so a corrected source changes nothing until the window
    is extracted again; a rule that could not run (or is wrong) is fixed in the config."""
    rule = "fix the rule in the config (its error says why it cannot run), then load"
    if error.rule_errors_only:
        return rule
    command = repair_command(tgt, source)
    data = (
        "correct those rows at the source, then re-extract the window "
        f"(`{command}`: loading again gates this same file, whatever the source holds now) "
        "and load"
        if command
        else "deliver a corrected file in its place, then load"
    )
    return (
        f"{data}; or, if the rule is what is wrong, fix or relax it (its `mostly` or "
        "`max_failing`, or `severity: warn`), then load"
    )


def repair_hint(tgt: LoadTarget, source: SourceFile) -> str:
    """How to repair a damaged lake file, as the end of an error sentence."""
    command = repair_command(tgt, source)
    if command is None:
        return "put the file back as it was delivered, then load"
    return f"re-extract its window (`{command}`), then load"


def _mismatch(source: SourceFile, checksum: str, fix: str) -> LoadError:
    # `checksum` in the context marks the proof of damage (`_proven_damaged` records it)
    return LoadError(
        f"{source.file_id}: checksum {checksum[:16]}... does not match its sidecar "
        f"({str(source.checksum)[:16]}...): the file changed after extraction; the table is "
        f"unchanged. To repair it, {fix}",
        checksum=checksum,
    )


def _proven_damaged(
    store: Store, tgt: LoadTarget, source: SourceFile, error: LoadError
) -> LoadError:
    """Record a checksum mismatch in the state store as the proof that the extraction's
    committed file is damaged, and return the error saying the next run repairs it.

    The extract step skips a committed file whose size matches its sidecar without
    reading it (the default `--verify`: a stat per table), so a file damaged in place at
    the same size would be skipped, and its load fail, on every run until someone ran
    `--verify deep` or `--force-reprocess`. The load reads every byte anyway, so its
    mismatch is the proof a deep verify would find: the extraction is flagged for
    re-extraction (`Extractions.mark_corrupt`), the way `fix-inconsistencies` flags a
    wrong sidecar, and the next `run` or `extract` of the date extracts it again. Only
    the commit whose checksum was refused is flagged, and only while its extraction is
    completed: one being re-extracted now (`running`) or re-extracted since (another
    checksum) is left alone, so a file read while it was being replaced flags nothing.
    Any other error, and a file no extraction wrote (`load --path`), is returned as is."""
    found = error.context.get("checksum")
    command = repair_command(tgt, source)
    if not isinstance(found, str) or command is None or not source.checksum:
        return error
    run_id = source.run_id or PurePosixPath(source.file_id).stem
    problem = str(error).partition(". To repair it, ")[0]
    if not store.extractions.mark_corrupt(run_id, tgt.key, source.checksum, redact(problem)):
        return error
    log.warning(
        "%s: %s is damaged (checksum mismatch); its extraction in run %s is flagged: the "
        "next run or extract of %s extracts it again",
        tgt.key,
        source.file_id,
        run_id,
        source.day,
    )
    return LoadError(
        f"{problem}. To repair it, run again: the damage is recorded, so the next "
        f"`onceflow run --date {source.day}` extracts its window again (from the source "
        "as it is now, as --force-reprocess does) and loads it, and `onceflow extract` of "
        f"that date re-extracts it too; or re-extract it at once (`{command}`), then load",
        checksum=found,
    )


def _unreadable(source: SourceFile, error: BaseException) -> LoadError:
    return LoadError(
        f"{source.file_id}: not a readable Parquet file ({str(error).strip()[:200]}); "
        "the table is unchanged"
    )


def _count_mismatch(source: SourceFile, rows: int, fix: str) -> LoadError | None:
    """A file whose rows are not the number its sidecar says: the sidecar is the file's
    commit marker and the checksum it names matched, so the sidecar itself was changed
    after extraction (edited by hand), and what else in it (its window) holds is unknown."""
    if source.record_count is None or source.record_count == rows:
        return None
    return LoadError(
        f"{source.file_id}: its sidecar says {source.record_count:,} rows, the file holds "
        f"{rows:,}: the sidecar was changed after extraction; the table is unchanged. To "
        f"repair it, {fix}"
    )


def _read_verified(source: SourceFile, fix: str) -> tuple[pa.Table, str]:
    """Read a file once: its checksum must match the sidecar's, it must be Parquet, and
    hold the rows its sidecar counts. `fix` ends the error of a damaged file
    (`repair_hint`)."""
    try:
        data = Path(source.path).read_bytes()
    except OSError as error:
        raise LoadError(f"{source.file_id}: cannot read the file ({error.strerror})") from None
    checksum = hashlib.sha256(data).hexdigest()
    if source.checksum and checksum != source.checksum:
        raise _mismatch(source, checksum, fix)
    try:
        table = pq.read_table(pa.BufferReader(data))
    except Exception as error:  # pyarrow raises ArrowInvalid, OSError...
        raise _unreadable(source, error) from None
    miscounted = _count_mismatch(source, table.num_rows, fix)
    if miscounted is not None:
        raise miscounted
    return table, checksum


def _verify(source: SourceFile, fix: str) -> pa.Schema:
    """What `_read_verified` checks, without keeping the rows: the checksum (streamed) and
    the Parquet footer, whose schema it returns and whose row count must be the sidecar's.
    A file whose bytes are the ones its sidecar names is the file its extraction wrote."""
    try:
        checksum = file_checksum(Path(source.path))
        if source.checksum and checksum != source.checksum:
            raise _mismatch(source, checksum, fix)
        with pq.ParquetFile(source.path) as footer:
            schema, rows = footer.schema_arrow, footer.metadata.num_rows
    except OSError as error:
        raise LoadError(
            f"{source.file_id}: cannot read the file ({error.strerror or error})"
        ) from None
    except LoadError:
        raise
    except Exception as error:  # pyarrow raises ArrowInvalid on a bad footer
        raise _unreadable(source, error) from None
    miscounted = _count_mismatch(source, rows, fix)
    if miscounted is not None:
        raise miscounted
    return schema


def snapshot_instant(source: SourceFile) -> datetime:
    """The instant a file's rows were read from the source (its sidecar says), else the
    file's modification time: the validity of SCD2 versions without a business time."""
    for value in (source.snapshot_at, source.modified_time):
        if value:
            moment = datetime.fromisoformat(value)
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    raise LoadError(f"{source.file_id}: no snapshot instant (no sidecar, no modification time)")


def read_instants(files: Iterable[SourceFile]) -> dict[str, datetime]:
    """The snapshot instant of each file that has one, by file id: an SCD2 file older
    than the newest read its table holds is a replay, whose absences may be late."""
    out: dict[str, datetime] = {}
    for source in files:
        try:
            out[source.file_id] = snapshot_instant(source)
        except (LoadError, ValueError):  # no instant: it cannot have made a version
            continue
    return out


def windowed_extract(source: SourceFile) -> bool:
    """Whether a file is one window of an incremental extract (its sidecar says
    `is_full_extract: false`): the rows whose cursor moved in that window, which changed
    after the rows of the windows before it, whenever each was read. Anything else (a
    full extract, a sidecar that does not say, a file without one) is a read of the
    whole table, valid as of when it was read."""
    config = (read_sidecar(Path(source.path)) or {}).get("table_config")
    return isinstance(config, dict) and config.get("is_full_extract") is False


@dataclass
class _Applied:
    version: int | None
    changed: bool
    rows_skipped: int | None = None
    #: The table's rows the commit inserted, updated, deleted, closed (`CHANGES`).
    changes: dict[str, int] = field(default_factory=dict)


def _apply(
    tgt: LoadTarget,
    dt: Any,
    step: Step,
    batch: pa.Table,
    applied: markers.Applied,
    props: Any,
    reads: Mapping[str, datetime] | None = None,
) -> _Applied:
    """One commit of one file with the table's strategy. `reads`: the snapshot instants
    of the files the table holds (scd2: whether the file is older than the newest)."""
    source, strategy = step.file, tgt.cfg.strategy
    load_time = datetime.now(UTC)
    if step.kind == "replace":
        before = int(dt.version())
        replace_file_rows(
            dt,
            batch,
            source_file=source.file_id,
            load_time=load_time,
            batch_id=applied.batch_id,
            commit_properties=props,
        )
        # the file's old rows go too; how many is not counted (a scan for a number)
        return _Applied(before + 1, True, changes={"inserted": batch.num_rows})
    if strategy in ("append", "overwrite"):
        apply = apply_append if strategy == "append" else apply_overwrite
        # no commit retries: a commit that succeeds is exactly the snapshot's next version
        previous = None if dt is None else int(dt.version())
        apply(
            dt if dt is not None else tgt.uri,
            batch,
            source_file=source.file_id,
            load_time=load_time,
            batch_id=applied.batch_id,
            commit_properties=props,
        )
        made = previous + 1 if previous is not None else int(open_table(tgt.uri).version())
        return _Applied(made, True, changes={"inserted": batch.num_rows})
    batch = with_audit_columns(
        batch, source_file=source.file_id, load_time=load_time, batch_id=applied.batch_id
    )
    if strategy == "scd2":
        outcome: Scd2Outcome = apply_scd2(
            tgt.uri,
            batch,
            tgt.cfg,
            as_of=snapshot_instant(source),
            commit_properties=props,
            table=dt,
            create_empty=True,
            # deletion versions (hard_deletes: new_record) belong to the file that found
            # the key gone, not to the version they end
            audit=dict(
                zip(AUDIT_COLUMNS, (source.file_id, load_time, applied.batch_id), strict=True)
            ),
            zone=tgt.timezone,
            windowed=windowed_extract(source),
            reads=reads,
        )
        changes = {
            "inserted": outcome.inserted,
            "closed": outcome.closed,
            # the deletion versions of `hard_deletes: new_record`: rows inserted, but
            # counted apart from the new versions of the file's rows
            "deleted": outcome.deleted,
        }
        return _Applied(outcome.version, outcome.version is not None, outcome.rows_skipped, changes)
    merged = apply_merge(
        tgt.uri, batch, tgt.cfg, commit_properties=props, table=dt, create_empty=True
    )
    changes = {"inserted": merged.inserted, "updated": merged.updated, "deleted": merged.deleted}
    return _Applied(merged.version, merged.version is not None, changes=changes)


def _is_conflict(error: BaseException) -> bool:
    from deltalake.exceptions import CommitFailedError

    return isinstance(error, CommitFailedError)


#: What a write that met the machine (warehouse.write_problem_cause) says, `{table}` being
#: "the Delta table /its/uri", and the fix; none of them is the file's fault
_MACHINE_FIXES: dict[str, tuple[str, str]] = {
    "disk full": ("disk full while writing {table}", "free space on its disk"),
    "disk quota exceeded": (
        "disk quota exceeded while writing {table}",
        "free space or raise this user's quota",
    ),
    "read-only file system": (
        "{table} is on a read-only file system",
        "mount it read-write (or set `warehouse:` to a writable place)",
    ),
    "no permission": ("no permission to write {table}", "give this user write access to it"),
    "not permitted": (
        "writing {table} is not permitted",
        "lift what forbids it (an immutable flag: `lsattr -d`, `chattr -i`; the rules of a "
        "CIFS or FUSE mount)",
    ),
    "not a folder": (
        "a file stands where a folder of the path of {table} should be",
        "move that file away (or set `warehouse:` to a folder)",
    ),
    "a folder in the way": (
        "a folder stands where {table} writes a file",
        "move that folder away",
    ),
}


def _delta_error(file_id: str, error: BaseException, uri: str = "") -> LoadError:
    text = redact(one_line(str(error)))[:300]
    found = write_problem_cause(error)
    if found is not None:
        problem, cause = found
        said = redact(one_line(str(cause)))[:300]
        what, fix = _MACHINE_FIXES[problem]
        what = what.format(table=f"the Delta table {uri}" if uri else "the Delta table")
        return LoadError(
            f"{file_id}: {what} ({said}); {fix}, then load again: the table is unchanged",
            environment=True,
        )
    if "cast" in text.lower() or "schema" in text.lower():
        return LoadError(f"{file_id}: incompatible schema ({text}); the table is unchanged")
    return LoadError(
        f"{file_id}: Delta write failed ({type(error).__name__}: {text}); the table is unchanged"
    )


def _held_now(tgt: LoadTarget, source: SourceFile) -> tuple[Any, markers.TableMarkers]:
    dt = open_table(tgt.uri)
    held = markers.read_markers(dt, [source.file_id])
    if held.restores:  # after this load's start (it corrects the log first): plan again
        raise LoadError(
            f"{source.file_id}: {held.restores[-1].describe()}, during this load; load "
            "again, which takes it into account: the table is unchanged by this file"
        )
    return dt, held


def apply_step(
    store: Store,
    tgt: LoadTarget,
    step: Step,
    *,
    token: str,
    check_lock: Callable[[], None],
    force: bool = False,
    gate: Gate | None = None,
    instants: Mapping[str, datetime] | None = None,
) -> FileOutcome:
    """Apply one planned step as one commit (or skip it when the table holds it now,
    unless `force`: a repair that re-applies a file the table already holds). `gate`
    sees the file's rows before the commit and fails the file by raising LoadError.
    `instants`: the snapshot instants of the table's lake files (`read_instants`), of
    which scd2 is given those the table holds."""
    source = step.file
    batch_id = markers.batch_id_for(source.file_id, source.checksum)
    applied = markers.Applied(source.file_id, source.checksum, batch_id, source.window_start)
    if not store.files.claim(tgt.uri, source.file_id, token):
        current = store.files.get(tgt.uri, source.file_id)
        raise LockError(
            f"{source.file_id}: could not claim it (status "
            f"{current.status if current else 'missing'}); another loader?"
        )
    if step.kind == "fail":
        own = step.says_repair or "re-extract" in step.reason
        fix = "" if own else f". To repair it, {repair_hint(tgt, source)}"
        raise LoadError(f"{source.file_id}: {step.reason}; the table is unchanged{fix}")
    for _attempt in range(CONFLICT_RETRIES):
        dt, now = _held_now(tgt, source)
        if now.holds(source.file_id, source.checksum) and not force:
            _complete(store, tgt, source, token, None, batch_id, None, None)
            return FileOutcome(source.file_id, source.path, "skipped")
        if step.kind == "markers":
            # a superseded file (overwrite): none of its rows are written, so it is not
            # read; its types or damage cannot keep the table from saying it holds it
            batch, checksum = pa.table({}), source.checksum
        else:
            try:
                batch, checksum = _read_verified(source, repair_hint(tgt, source))
            except LoadError as error:
                raise _proven_damaged(store, tgt, source, error) from None
        batch, wider = _conform(tgt, dt, step, batch)
        if gate is not None and step.kind != "markers":
            gate(tgt, source, batch)
        # the commit that creates the table records its settings, atomically with it
        # (the table property follows in a commit of its own: onceflow.load.settings)
        created = creation_metadata(Settings.of(tgt.cfg)) if dt is None else None
        props = markers.commit_properties(applied, verified=now.version, extra=created)
        check_lock()
        try:
            if wider:
                dt = _widen(tgt, dt, wider, source.file_id)
            if step.kind == "markers":
                version = markers.commit_markers(dt, props) if dt is not None else None
                result = _Applied(version, False)
            else:
                held = now.held_ids() if instants else []
                reads = {f: instants[f] for f in held if instants and f in instants}
                result = _apply(tgt, dt, step, batch, applied, props, reads)
                if not result.changed and dt is not None:
                    # nothing to change still commits the file's markers: the table then
                    # says it holds the file, so it is never applied again out of order
                    result.version = markers.commit_markers(dt, props)
        except OnceflowError:
            raise
        except Exception as error:
            if _is_conflict(error) or (dt is None and open_table(tgt.uri) is not None):
                log.info(
                    "%s: commit conflict on %s; reloading and checking again",
                    tgt.key,
                    source.file_id,
                )
                continue
            raise _delta_error(source.file_id, error, tgt.uri) from None
        except BaseException as error:
            # a delta-rs panic (a BaseException, see is_panic) fails this file like any
            # write error, instead of ending the whole run with a traceback
            if not is_panic(error):
                raise
            raise _delta_error(source.file_id, error, tgt.uri) from None
        crashpoint("after_delta_commit")
        rows = None if step.kind == "markers" else batch.num_rows
        _complete(
            store,
            tgt,
            source,
            token,
            result.version,
            batch_id,
            rows,
            result.rows_skipped,
            checksum,
        )
        action = _action(step, result)
        return FileOutcome(
            source.file_id,
            source.path,
            action,
            rows=rows,
            rows_skipped=result.rows_skipped,
            version=result.version,
            inserted=result.changes.get("inserted", 0),
            updated=result.changes.get("updated", 0),
            deleted=result.changes.get("deleted", 0),
            closed=result.changes.get("closed", 0),
        )
    raise LoadError(
        f"{source.file_id}: {CONFLICT_RETRIES} commit conflicts in a row; "
        "another writer keeps committing to the table"
    )


def reload_file(
    store: Store,
    tgt: LoadTarget,
    file: SourceFile,
    *,
    token: str,
    check_lock: Callable[[], None],
    reason: str,
) -> FileOutcome:
    """Reload one lake file the table already holds: its rows in the table replaced by
    the file's, in one commit, as a re-extraction of its window would (fix-inconsistencies
    repairs a file loaded twice this way). The caller holds the table's lock (`token`,
    and `check_lock`, called before the commit, raises once it is lost); `reason` is
    what the tracker and a failure say. The one way in from outside the load step, so
    the loader's plan and steps stay its own."""
    return apply_step(
        store, tgt, Step("replace", file, reason), token=token, check_lock=check_lock, force=True
    )


def _refuse_audit_names(tgt: LoadTarget, source: SourceFile, schema: pa.Schema) -> None:
    """Refuse a file with a column named like an audit column (`_source_file`,
    `_load_timestamp`, `_batch_id`): every strategy writes those on each row it loads, so
    the source's values would be replaced without a word (and a merge would not compare
    them). Only the file says its columns, so a config cannot be checked for it ahead."""
    clash = [name for name in AUDIT_COLUMNS if name in schema.names]
    if not clash:
        return
    names = ", ".join(map(repr, clash))
    command = repair_command(tgt, source)
    if command is None:
        fix = "rename the column(s) in the file, then load"
    else:
        fix = (
            "rename the column(s) in the extraction, with a `query:` for the table "
            f"(`SELECT {clash[0]} AS {clash[0].lstrip('_')}, ...`), then re-extract the "
            f"window (`{command}`) and load"
        )
    raise LoadError(
        f"{source.file_id}: the file has column(s) {names}, which onceflow writes on every "
        f"loaded row (its audit columns: {', '.join(AUDIT_COLUMNS)}), so the file's values "
        f"would be overwritten; the table is unchanged. To repair it, {fix}"
    )


def _conform(
    tgt: LoadTarget, dt: Any, step: Step, batch: pa.Table
) -> tuple[pa.Table, dict[str, pa.DataType]]:
    """The file's rows in the types they are written with, and the table's columns that
    must be widened first (`load.widen`). One schema rule for every strategy: refuse a
    lossy type, cast what fits (`warehouse.conform_batch`); two steps need less of it.
    A column named like an audit column is refused first (`_refuse_audit_names`)."""
    source = step.file
    if step.kind == "markers":  # a superseded file: nothing of it is written
        return batch, {}
    _refuse_audit_names(tgt, source, batch.schema)
    table_schema = arrow_schema(dt) if dt is not None else None
    if tgt.cfg.strategy == "overwrite" and step.kind == "load":
        # the file replaces the whole table, schema included (overwrite.py)
        batch, _ = conform_batch(batch, None, source.file_id)
        if table_schema is not None and _data_schema(table_schema) != _data_schema(batch.schema):
            log.info("%s: %s replaces the table's schema", tgt.key, source.file_id)
        return batch, {}
    batch, added = conform_batch(batch, table_schema, source.file_id, widen=tgt.cfg.widen)
    stored = [c for c in added if c != tgt.cfg.delete_column]  # the delete flag is not stored
    if stored and table_schema is not None:
        log.info("%s: new columns %s added to %s", tgt.key, ", ".join(stored), tgt.uri)
    return batch, widenings(table_schema, batch.schema) if tgt.cfg.widen else {}


def _data_schema(schema: pa.Schema) -> list[tuple[str, pa.DataType]]:
    return [(f.name, f.type) for f in schema if f.name not in AUDIT_COLUMNS]


def _widen(tgt: LoadTarget, dt: Any, types: dict[str, pa.DataType], file_id: str) -> Any:
    """Rewrite the table with wider column types, in its own commit, before the file's.

    A commit of its own because a merge or an scd2 step cannot also change types; a kill
    between the two leaves a table whose values are unchanged and which holds the same
    files, so the rerun finds the file not held and loads it into the wider columns.
    """
    changes = ", ".join(f"{name} -> {kind}" for name, kind in types.items())
    log.warning(
        "%s: widening %s for %s (load.widen): rewriting %s in one commit",
        tgt.key,
        changes,
        file_id,
        tgt.uri,
    )
    version = widen_table(dt, types, markers.widen_properties(types))
    crashpoint("after_widen")
    log.info("%s: widened to version %s", tgt.key, version)
    return open_table(tgt.uri)


def _action(step: Step, result: _Applied) -> str:
    if step.kind == "markers":
        return "superseded"
    if step.kind == "replace":
        return "replaced"
    if step.reason == "replay":
        return "replayed"
    return "loaded" if result.changed else "unchanged"


def _complete(
    store: Store,
    tgt: LoadTarget,
    source: SourceFile,
    token: str,
    version: int | None,
    batch_id: str,
    rows: int | None,
    rows_skipped: int | None,
    checksum: str | None = None,
) -> None:
    if not store.files.complete(
        tgt.uri,
        source.file_id,
        token,
        checksum=checksum or source.checksum,
        delta_version=version,
        batch_id=batch_id,
        rows_loaded=rows,
        rows_skipped=rows_skipped,
    ):
        raise LockError(
            f"{source.file_id}: committed as version {version}, but the lock was lost before "
            "the tracker was updated; the next load reconciles it"
        )


def correct_restores(
    tgt: LoadTarget,
    dt: Any,
    held: markers.TableMarkers,
    *,
    check_lock: Callable[[], None] | None = None,
) -> str | None:
    """Make the table's log say what it holds after other writers' RESTOREs (which roll
    the data back but not onceflow's markers), in one empty commit; returns the note
    (None when the restores changed no file the table holds).

    The files a restore took back are then undone, as after onceflow's own rewind, so
    this load applies them again (an append table's rows once: they are not in it).
    Committed against `dt`'s snapshot without retries: a concurrent commit fails it,
    and the next load reads the log again."""
    restores = "; ".join(r.describe() for r in held.restores)
    undone = sorted(f for f, code in held.repairs.items() if not code)
    if check_lock is not None:
        check_lock()
    markers.commit_markers(dt, markers.repair_properties(held))
    if not held.repairs:  # restored to a version with the same files: only checked
        log.info("%s: %s, which changed no file it holds; noted in the log", tgt.key, restores)
        return None
    note = (
        f"{restores}: it took back {len(undone)} file(s) onceflow had loaded"
        f"{' (' + ', '.join(undone) + ')' if undone else ''}; the table's markers now "
        "say so, and this load applies them again"
    )
    log.warning("%s: %s", tgt.key, note)
    return note


def rewind_table(tgt: LoadTarget, rewind: Rewind, *, check_lock: Callable[[], None]) -> int:
    """Take the table back before the files it must apply again, in one commit that also
    marks them as not held. Returns the new version."""
    from deltalake import write_deltalake

    dt = open_table(tgt.uri)
    props = markers.commit_properties(undone=rewind.undone)
    check_lock()
    log.warning(
        "%s: rewinding %s to %s to apply %d file(s) again in window order (%s)",
        tgt.key,
        tgt.uri,
        "an empty table" if rewind.to_version < 0 else f"version {rewind.to_version}",
        len(rewind.undone),
        rewind.reason,
    )
    if rewind.to_version >= 0:
        try:
            dt.restore(rewind.to_version, commit_properties=props)
            crashpoint("after_rewind")
            return int(open_table(tgt.uri).version())
        except Exception as error:
            if _is_conflict(error):
                raise
            # the old version's data files were vacuumed: rebuild from empty instead
            log.warning(
                "%s: cannot restore version %s (%s); rewinding to empty",
                tgt.key,
                rewind.to_version,
                one_line(str(error))[:200],
            )
            raise _NeedsEmpty() from None
    empty = arrow_schema(dt).empty_table()
    write_deltalake(dt, empty, mode="overwrite", commit_properties=props)
    crashpoint("after_rewind")
    return int(open_table(tgt.uri).version())


class _NeedsEmpty(Exception):
    """A restore was impossible: plan again with a rewind to empty."""


def load_table(
    store: Store,
    tgt: LoadTarget,
    files: list[SourceFile],
    *,
    token: str,
    check_lock: Callable[[], None],
    limit: datetime | None = None,
    wait_from: datetime | None = None,
    wait_reason: str | None = None,
    gate: Gate | None = None,
) -> TableLoadResult:
    """Load the files of one table (the caller holds `tgt.lock_name` with `token`).

    Files whose window ends after `limit` are not brought in, unless the table holds them
    already (a replay then keeps them in place).
    """
    started = time.monotonic()
    result = TableLoadResult(tgt.key, tgt.target, tgt.uri, tgt.cfg.strategy)
    try:
        prepared = _prepare(
            store, tgt, files, result, wait_from, wait_reason, limit=limit, check_lock=check_lock
        )
        plan = prepared.plan
        _warn_lost(tgt, plan, result)
        if tgt.cfg.strategy == "overwrite":
            _warn_name_order(tgt, plan, files, result)
        blocked = (
            _check_replay(store, tgt, plan, gate, prepared.dt) if plan.rewind is not None else None
        )
        if plan.blocked is not None:
            blocked = _unreplayable(tgt, plan)
        if blocked is not None:
            _refuse(store, tgt, plan, blocked, result, token, limit)
            return result
        if plan.rewind is not None:
            try:
                rewind_table(tgt, plan.rewind, check_lock=check_lock)
            except _NeedsEmpty:
                rewind = plan.rewind
                forced = Rewind(-1, rewind.undone, rewind.reason, rewind.cause)
                prepared = _prepare(
                    store,
                    tgt,
                    files,
                    result,
                    wait_from,
                    wait_reason,
                    limit=limit,
                    force_empty=forced,
                    check_lock=check_lock,
                )
                plan = prepared.plan
                # a rebuild re-applies every file: each must pass before the table is emptied
                blocked = (
                    _check_replay(store, tgt, plan, gate, prepared.dt) if plan.rewind else None
                )
                if plan.blocked is not None:
                    blocked = _unreplayable(tgt, plan)
                if blocked is not None:
                    _refuse(store, tgt, plan, blocked, result, token, limit)
                    return result
                rewind_table(tgt, plan.rewind or forced, check_lock=check_lock)
            result.rewound = list(plan.rewind.undone) if plan.rewind else []
            _warn_name_order(tgt, plan, files, result)
            store.files.record_unloaded(tgt.uri, result.rewound)
    except OnceflowError as error:
        result.error = redact(str(error))
        result.error_types = error_names(error)
        result.files += _not_loaded(store, tgt, files, limit, result.error)
        return result
    except Exception as error:
        reason = redact(one_line(str(error)))[:300]
        result.error = f"{tgt.uri}: cannot read or rewind the Delta table ({reason})"
        result.error_types = error_names(error)
        result.files += _not_loaded(store, tgt, files, limit, result.error)
        return result
    # files of later windows than `limit` are out of this load's scope: those the table
    # holds stay in place, uncounted (a `load --date` before them did not skip them)
    result.files += [
        FileOutcome(f.file_id, f.path, "skipped")
        for f in plan.skipped
        if limit is None or _within(f, limit)
    ]
    _run_steps(store, tgt, plan, result, token=token, check_lock=check_lock, gate=gate)
    if plan.waiting:  # reported even after a failure: they are not loaded either
        result.files += [FileOutcome(f.file_id, f.path, "waiting") for f in plan.waiting]
        result.waiting = (
            f"{len(plan.waiting)} file(s) from {plan.waiting[0].file_id} wait: {plan.wait_reason}"
        )
    # a load that tried no commit reads the table it planned from; any other, the table
    # as its commits left it (opened once, for the settings record and the checkpoint)
    quiet = not plan.steps and plan.rewind is None and not prepared.committed
    latest = _record_settings(tgt, check_lock, prepared.dt if quiet else _OPEN)
    if any(
        f.action in ("loaded", "replaced", "replayed", "unchanged", "superseded")
        for f in result.files
    ):
        try:
            checkpoint_if_due(open_table(tgt.uri) if latest is None else latest)
        except BaseException as error:  # delta-rs panics are BaseExceptions
            if isinstance(error, KeyboardInterrupt | SystemExit):
                raise
            # the commits are in; a checkpoint only speeds reads
            log.warning("%s: no checkpoint written (%s)", tgt.key, redact(str(error))[:200])
    result.duration_seconds = round(time.monotonic() - started, 3)
    return result


def _refuse_other_settings(tgt: LoadTarget, dt: Any) -> None:
    """Refuse a load whose strategy or key is not the one the table was created with.

    `load` refuses it before any table is locked (onceflow.load.api); this is the check
    under the lock, for a table another loader created meanwhile, and for callers of the
    loader itself."""
    record = read_record(dt)
    if record is None or not record.settings.differs(Settings.of(tgt.cfg)):
        return
    raise LoadError(
        f"{tgt.key}: loading with {Settings.of(tgt.cfg).describe()}, but "
        f"{kept(tgt.target, record.settings)}; load with those, into a new table, or move "
        f"{tgt.uri} away and load again; the table is unchanged"
    )


#: `_record_settings` opens the table itself.
_OPEN = object()


def _record_settings(tgt: LoadTarget, check_lock: Callable[[], None], dt: Any = _OPEN) -> Any:
    """Write the table's settings as its table property when it does not hold them: just
    created (its creating commit says them), restored to before the property (a rewind
    to version 0), or created before the record (from `tgt.cfg`, unless `tgt.record` is
    False). Not a failure when it cannot: the load is done, and the next one tries again.

    `dt`: the table as it is now (None: there is none), else it is opened. Returns it
    when nothing was written to it, else None (read it again to see the record)."""
    try:
        if dt is _OPEN:
            dt = open_table(tgt.uri)
        record = read_record(dt)
        if dt is None or (record is not None and record.in_property):
            return dt
        if record is None and not tgt.record:
            return dt
        settings = record.settings if record is not None else Settings.of(tgt.cfg)
        check_lock()
        write_record(dt, settings)
    except Exception as error:  # a lost lock or a concurrent commit too: the files are in
        log.warning(
            "%s: its settings (%s) are not recorded in the table yet (%s); the next load "
            "records them",
            tgt.key,
            Settings.of(tgt.cfg).describe(),
            redact(one_line(str(error)))[:200],
            extra={"table": tgt.key},
        )
        return None
    why = "as its creating commit says" if record is not None else "it recorded none"
    log.info(
        "%s: recorded %s in the table's properties (%s)",
        tgt.key,
        settings.describe(),
        why,
        extra={"table": tgt.key},
    )
    return None


def _not_loaded(
    store: Store, tgt: LoadTarget, files: list[SourceFile], limit: datetime | None, error: str
) -> list[FileOutcome]:
    """The files a load that could not start (its table cannot be opened or rewound)
    leaves out, counted failed with the reason: every file in scope but those the tracker
    says the table holds as they are. Only counted: the tracker is not told, since the
    file itself is not at fault and loads as soon as its table can be opened."""
    try:
        done = {
            r.file_id: r.loaded_checksum
            for r in store.files.states(tgt.uri).values()
            if r.status == FILE_COMPLETED
        }
    except OnceflowError:  # the store failed: the error says so; no file can be counted
        return []
    return [
        FileOutcome(f.file_id, f.path, "failed", error=error)
        for f in files
        if (limit is None or _within(f, limit))
        and (f.file_id not in done or (f.checksum and done[f.file_id] not in (None, f.checksum)))
    ]


def _warn_lost(tgt: LoadTarget, plan: Plan, result: TableLoadResult) -> None:
    """Warn of files the table holds whose data file the lake lost.

    The table is right (it holds their rows) and later windows load on top of them, so
    they fail nothing; but the lake no longer describes the table: a rebuild from it, or
    a replay over one of them (a late or re-extracted earlier window), would lose their
    rows. So they are named, with their repair, in the load's report, in `status` and in
    `validate-consistency`."""
    for file in plan.lost:
        note = (
            f"{file.file_id}: the table holds it, but {file.problem}: the table is unchanged, "
            "and a rebuild from the lake or a replay over this window would lose its rows"
        )
        result.warnings.append(note)
        log.warning("%s: %s", tgt.key, note)


def _warn_name_order(
    tgt: LoadTarget, plan: Plan, files: list[SourceFile], result: TableLoadResult
) -> None:
    """Warn of new files of a `load --path` folder that sort before files the table holds.

    A folder's files have no windows: they are applied in name order (`name_order`), so
    that the same files always give the same table. A file delivered after the others but
    named to sort before them is then not the newest: a merge or scd2 table is rewound and
    the files it sorts before are applied again after it (their rows win), an overwrite
    table keeps the last file by name. Both are what a clean load of the folder gives, but
    rarely what the sender meant, so the load says so. Config tables order by window, and
    a late window is what a rewind is for: nothing to say."""
    if not tgt.standalone:
        return
    if tgt.cfg.strategy == "overwrite":
        last = max(files, key=lambda f: f.order, default=None)
        if last is None or last not in plan.skipped:
            return  # no file the table holds comes last: a new file is the content
        late = [(s.file, [last.file_id]) for s in plan.steps if s.kind == "markers"]
        what = "a new or re-delivered file"
        effect = (
            "and an overwrite table holds the last of them, so its rows are not loaded "
            "(it is only marked superseded)"
        )
    elif plan.rewind is not None and plan.rewind.cause not in plan.rewind.undone:
        cause = next((f for f in files if f.file_id == plan.rewind.cause), None)
        if cause is None:
            return
        after = [
            f.file_id for f in files if f.file_id in plan.rewind.undone and f.order > cause.order
        ]
        late = [(cause, after)] if after else []
        what = "a new file"
        effect = (
            "so the table was rewound and those are applied again after it: where they "
            "have the same keys, their rows win"
        )
    else:
        return
    for file, held in late:
        named = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
        note = (
            f"{file.file_id}: {what} that sorts before {len(held)} file(s) the table "
            f"holds ({named}); `load --path` applies a folder's files in name order (numbers "
            f"in names compared as numbers), {effect}. If it is the newer delivery, rename "
            "it to sort after them and load again, and name later deliveries so that they "
            "sort after earlier ones (a sequence number, an ISO date)"
        )
        result.warnings.append(note)
        log.warning("%s: %s", tgt.key, note)


def _within(file: SourceFile, limit: datetime) -> bool:
    if not file.window_end:
        return True
    return datetime.fromisoformat(file.window_end).astimezone(UTC) <= limit


@dataclass
class _Prepared:
    """A table's plan, and the table it was made from (`dt`, None: no table yet), opened
    once under the table's lock: the checks before any commit read it again, not this."""

    plan: Plan
    dt: Any
    #: Whether preparing committed to the table (another writer's restore, corrected).
    committed: bool = False


def _prepare(
    store: Store,
    tgt: LoadTarget,
    files: list[SourceFile],
    result: TableLoadResult,
    wait_from: datetime | None,
    wait_reason: str | None,
    *,
    limit: datetime | None = None,
    force_empty: Rewind | None = None,
    check_lock: Callable[[], None] | None = None,
) -> _Prepared:
    dt = open_table(tgt.uri)
    _refuse_other_settings(tgt, dt)
    held = markers.read_markers(dt, [f.file_id for f in files])
    committed = bool(held.restores)
    if held.restores:
        note = correct_restores(tgt, dt, held, check_lock=check_lock)
        result.reconciled += [note] if note else []
        held = markers.read_markers(dt, [f.file_id for f in files])
    if limit is not None:
        # a file the table holds stays in scope (it is kept in place), and so does one a
        # rewind took back and no replay applied again yet (its transaction is there, 0):
        # a replay in progress is finished by any load, whatever its date, or the table
        # would stay behind where it was with nothing saying so
        files = [f for f in files if _within(f, limit) or f.file_id in held.held]
    # one read of the table's tracker rows, in brief: they grow by a row per window
    tracked = store.files.states(tgt.uri)
    done = _reconcile(store, tgt, held, tracked)
    if done.rederived:
        # the documented recovery, nothing wrong: one line for the table, where a warning
        # per file was 5,554 lines after 111 days of 50 tables
        note = (
            f"re-derived {len(done.rederived)} file(s) from the Delta log: the table holds "
            "them and the tracker had no row for them (a reset or new state store); marked "
            "completed"
        )
        log.info("%s: %s", tgt.key, note, extra={"table": tgt.key, "action": "rederived"})
        result.reconciled.append(note)
    for note in done.repairs:  # the tracker disagreed with the table
        log.warning("%s: %s", tgt.key, note)
    result.reconciled += done.repairs
    entries = [
        FileEntry(f.file_id, f.path, f.window_start, f.size, f.modified_time, f.checksum)
        for f in files
    ]
    # a row that would change only in its time is not written again: the lake's files
    # are all registered on every load, and most were registered as they are already
    changed = [
        e
        for e in entries
        if (state := tracked.get(e.file_id)) is None or state.registers(e, tgt.key, tgt.pipeline)
    ]
    if changed:
        store.files.register(tgt.uri, tgt.key, tgt.pipeline, changed)
    if force_empty is not None:
        held = held.without_commits()
    plan = plan_table(tgt.cfg.strategy, files, held, wait_from=wait_from, wait_reason=wait_reason)
    return _Prepared(plan, dt, committed)


@dataclass(frozen=True)
class _Blocked:
    """A replay that must not start: the file that fails for it, and why.

    `attempted`: the file itself was tried (its own damage or refusal), so the failure
    counts against its retry budget; a late file blocked by another file was not tried.
    `tried`: False when the file is failed already and out of retries (not failed again).
    """

    step: Step
    message: str
    error: LoadError
    attempted: bool = True
    tried: bool = True


def _check_replay(
    store: Store, tgt: LoadTarget, plan: Plan, gate: Gate | None, dt: Any
) -> _Blocked | None:
    """Before a rewind: can the replay re-apply every file it takes back?

    A rewind undoes windows the table holds; if one of them then cannot be applied again
    (damaged in the lake, refused, out of retries), the table would be left behind where
    it was. So each file up to the last one the rewind undoes is checked first, as its
    load will check it: not failed for good, its checksum matches its sidecar, its footer
    and schema fit. Files after that are new windows beyond everything the table held:
    their failure leaves the table no further back, so they fail in their turn. This reads
    the replayed files once more (streamed, a hash and a footer), a small cost next to
    re-applying them. `gate` (the pre-load rules) sees every file of the replay, as it
    did: its results are cached by file checksum, so the replay's own calls run no query.
    `dt`: the table the plan was made from (its schema is what the files must fit).
    """
    assert plan.rewind is not None
    undone = set(plan.rewind.undone)
    needed = [i for i, s in enumerate(plan.steps) if s.file.file_id in undone]
    last = max(needed, default=-1)
    records = store.files.get_many(tgt.uri, [s.file.file_id for s in plan.steps])
    table_schema = arrow_schema(dt) if dt is not None else None
    for index, step in enumerate(plan.steps):
        if step.kind == "markers" or (index > last and gate is None):
            continue
        source = step.file
        fix = repair_hint(tgt, source)
        try:
            if step.kind == "fail":
                raise LoadError(f"{source.file_id}: {step.reason}. To repair it, {fix}")
            given_up = _given_up(tgt, step, records.get(source.file_id))
            if given_up is not None:
                return _blame(plan, step, LoadError(given_up), tried=False)
            if gate is None:
                schema = _verify(source, fix)
                _refuse_audit_names(tgt, source, schema)
                conform_batch(
                    schema.empty_table(), table_schema, source.file_id, widen=tgt.cfg.widen
                )
                continue
            batch, _checksum = _read_verified(source, fix)
            _refuse_audit_names(tgt, source, batch.schema)
            batch, _added = conform_batch(batch, table_schema, source.file_id, widen=tgt.cfg.widen)
            gate(tgt, source, batch)
        except GateError as error:
            again = error.attempt and _refused_before(records.get(source.file_id), source)
            refused = GateError(
                f"{error}{REFUSED_AGAIN if again else ''}. To repair it, "
                f"{_refusal_fix(tgt, source, error)}",
                table=error.table,
                rules=error.rules,
                attempt=error.attempt and not again,
                rule_errors_only=error.rule_errors_only,
            )
            return _blame(plan, step, refused)
        except LoadError as error:
            if index > last:
                continue  # a new window after the replay: it fails in its own turn
            return _blame(plan, step, _proven_damaged(store, tgt, source, error))
    return None


def _blame(plan: Plan, step: Step, error: LoadError, *, tried: bool = True) -> _Blocked:
    """Who fails for a replay that cannot start: the file itself when it is the one that
    needs the replay or a new window, else the file that needs it (the late or
    re-extracted window), naming the file the table holds that blocks it. The message
    ends with the repair (`repair_hint`), after saying that nothing was rewound."""
    assert plan.rewind is not None
    text = redact(str(error)).replace("; the table is unchanged", "")
    problem, _, fix = text.partition(". To repair it, ")
    fix = f" To repair it, {fix}" if fix else ""
    kept = "the table is left as it was (no rewind)"
    cause = next((s for s in plan.steps if s.file.file_id == plan.rewind.cause), None)
    blocker = step.file.file_id
    if cause is None or cause is step or blocker not in plan.rewind.undone:
        # an unchanged refusal (or one by rules that cannot run) spends no retry
        attempted = not isinstance(error, GateError) or error.attempt
        return _Blocked(step, f"{problem}; {kept}.{fix}", error, attempted, tried)
    message = (
        f"{cause.file.file_id}: not loaded, and {kept}: its replay must apply {blocker} "
        f"again, which cannot be: {problem.removeprefix(f'{blocker}: ')}.{fix}"
    )
    return _Blocked(cause, message, error, attempted=False)


def _unreplayable(tgt: LoadTarget, plan: Plan) -> _Blocked:
    """The failure of a replay that needs files the lake cannot give again, per case:
    a data file that is gone, or one whose sidecar is unreadable (the file is there, but
    whether it is its window's commit is unknown). The late or re-extracted file fails
    (not tried: its retries are not spent); the repair re-extracts each blocking window
    (or, for a file that is gone, puts it back)."""
    assert plan.blocked is not None
    cause, missing = plan.blocked.cause, plan.blocked.missing
    broken = {s.file.file_id: s.file for s in plan.steps if s.file.sidecar_unreadable}
    problems, commands = [], []
    for file_id in missing:
        seen = broken.get(file_id)
        if seen is not None:
            problems.append(
                f"{file_id}: its sidecar is unreadable (the data file is there, but whether "
                "it is the window's committed extract is unknown)"
            )
        else:
            problems.append(f"{file_id}: its data file is no longer in the lake")
        day = seen.day if seen is not None else layout_day(Path(file_id))
        if not tgt.standalone and day is not None:
            command = f"onceflow extract --date {day} --tables {tgt.key} --force-reprocess"
            commands.append(f"`{command}`")
    gone = len(missing) > len(broken.keys() & set(missing))
    if commands:
        fix = f"re-extract {'its window' if len(commands) == 1 else 'their windows'} ("
        fix += "; ".join(commands) + ")"
        fix += ", or put the file back in the lake as it was," if gone else ""
        fix += " then load"
    else:
        fix = "put the files back in the lake as they were, or load into a new table"
    message = (
        f"{cause.file_id}: not loaded, and the table is left as it was (no rewind): its "
        f"replay ({plan.blocked.reason}) must apply again {len(missing)} file(s) the table "
        f"holds, which cannot be: {'; '.join(problems)}. To repair it, {fix}"
    )
    step = next((s for s in plan.steps if s.file is cause), Step("load", cause, "new"))
    error = LoadError(message)
    return _Blocked(step, message, error, attempted=False)


def _refuse(
    store: Store,
    tgt: LoadTarget,
    plan: Plan,
    blocked: _Blocked,
    result: TableLoadResult,
    token: str,
    limit: datetime | None = None,
) -> None:
    """A replay that must not start: one file fails, the rest of the replay stays as it
    is (files the table holds are `skipped`, others wait, a damaged one fails by its own
    name); nothing is rewound or committed. Every file of the table is counted: those
    before the replay (`skipped`) and those waiting behind a gap too."""
    step, message = blocked.step, blocked.message
    if blocked.tried and store.files.claim(tgt.uri, step.file.file_id, token):
        store.files.fail(tgt.uri, step.file.file_id, token, message, attempt=blocked.attempted)
    result.files.append(FileOutcome(step.file.file_id, step.file.path, "failed", error=message))
    result.files += [
        FileOutcome(f.file_id, f.path, "skipped")
        for f in plan.skipped
        if limit is None or _within(f, limit)
    ]
    records = store.files.get_many(tgt.uri, [s.file.file_id for s in plan.steps])
    waiting = 0
    for other in plan.steps:
        if other is step or other.kind == "markers":
            continue
        if other.kind == "fail":  # damaged: it fails by its own name, as in any load
            fail = f"{other.file.file_id}: {other.reason}; the table is unchanged"
            if store.files.claim(tgt.uri, other.file.file_id, token):
                store.files.fail(tgt.uri, other.file.file_id, token, fail)
            result.files.append(
                FileOutcome(other.file.file_id, other.file.path, "failed", error=fail)
            )
            continue
        rec = records.get(other.file.file_id)
        held = rec is not None and rec.status == FILE_COMPLETED
        held = held and rec is not None and rec.loaded_checksum == other.file.checksum
        waiting += not held
        action = "skipped" if held else "waiting"
        result.files.append(FileOutcome(other.file.file_id, other.file.path, action))
    result.files += [FileOutcome(f.file_id, f.path, "waiting") for f in plan.waiting]
    waiting += len(plan.waiting)
    result.error = message + (f" ({waiting} other file(s) of the replay wait)" if waiting else "")
    result.error_types = error_names(blocked.error)
    log.error("%s: %s", tgt.key, message, extra={"table": tgt.key, "action": "failed"})


#: Said of a file the gate refused before: a refusal is about the file, which has not
#: changed, so only the first one is an attempt.
REFUSED_AGAIN = (
    "; the gate refused this same file before (what its rules read besides it, such as a "
    "referential rule's other table, changed since): no retry is spent"
)


def _refused_before(rec: FileRecord | None, file: SourceFile) -> bool:
    """The gate refused this very file (same checksum) the last time it was tried: a
    refusal again, however its rules' other inputs (a referential rule's reference, a
    freshness rule's clock) moved since, spends no retry. Only a new file (a re-extract)
    or a rule change can make it pass, and neither is a retry of the same file; counting
    them used up `max_file_retries` on a late-arriving dimension, one run a day."""
    return (
        rec is not None
        and rec.status == FILE_FAILED
        and rec.checksum == file.checksum
        and "pre-load rules refused the file" in (rec.error or "")
    )


def _given_up(tgt: LoadTarget, step: Step, rec: FileRecord | None) -> str | None:
    """Why a file is not tried again: it failed `max_file_retries` times already, and its
    lake file has not changed since (a change resets the count; see Files.register)."""
    if (
        rec is None
        # a superseded file's markers need nothing of the file: what failed before
        # (loading its rows) is not what is asked of it now
        or step.kind == "markers"
        or rec.status != FILE_FAILED
        or rec.checksum != step.file.checksum
        or rec.retry_count <= tgt.cfg.max_file_retries
    ):
        return None
    command = repair_command(tgt, step.file)
    redo = (
        f"; or re-extract its window (`{command}`): the new file starts a fresh retry budget"
        if command
        else ""
    )
    return (
        f"{step.file.file_id}: gave up after {rec.retry_count} failed attempts "
        f"(max_file_retries {tgt.cfg.max_file_retries}); last error: {rec.error}. "
        f"Fix the cause, then `onceflow reset-state --failed` retries this file{redo}"
    )


def _run_steps(
    store: Store,
    tgt: LoadTarget,
    plan: Plan,
    result: TableLoadResult,
    *,
    token: str,
    check_lock: Callable[[], None],
    gate: Gate | None = None,
) -> None:
    records = store.files.get_many(tgt.uri, [s.file.file_id for s in plan.steps])
    # only scd2 compares snapshot instants (`apply_step`)
    instants = (
        read_instants([*plan.skipped, *(s.file for s in plan.steps)])
        if tgt.cfg.strategy == "scd2"
        else None
    )
    for step in plan.steps:
        rec = records.get(step.file.file_id)
        given_up = _given_up(tgt, step, rec)
        if given_up is not None:
            result.files.append(
                FileOutcome(
                    step.file.file_id,
                    step.file.path,
                    "failed",
                    error=rec.error if rec is not None else None,
                )
            )
            result.error = given_up + _wait_behind(result, plan, step)
            break
        try:
            outcome = apply_step(
                store, tgt, step, token=token, check_lock=check_lock, gate=gate, instants=instants
            )
        except LockError as error:
            result.error = str(error)
            result.error_types = error_names(error)
            break
        except Exception as error:
            # an error no step foresaw (a library's, on a type no one mapped) fails this
            # file like a known one, the table unchanged: the other tables still load and
            # the run is failed, instead of the whole command ending mid-run
            failure = (
                error
                if isinstance(error, OnceflowError)
                else LoadError(
                    f"{step.file.file_id}: unexpected {type(error).__name__}: "
                    f"{one_line(str(error))[:300]}; the table is unchanged"
                )
            )
            if failure is not error:
                log.debug("%s: unexpected load error", tgt.key, exc_info=True)
            message = redact(str(failure))
            if result.rewound:
                message = _stopped_replay(message, result, plan, step)
            if isinstance(failure, OnceflowError) and failure.context.get("bad_rows"):
                message += f". To repair it, {_bad_rows_fix(tgt, step.file)}"
            again = isinstance(failure, GateError) and failure.attempt
            again = again and _refused_before(records.get(step.file.file_id), step.file)
            if again:
                message += REFUSED_AGAIN
            if isinstance(failure, GateError):
                message += f". To repair it, {_refusal_fix(tgt, step.file, failure)}"
            # a full disk or an unwritable table is not the file's fault: it does not
            # use up the file's retries, so freeing space and loading again is the fix;
            # nor does the gate refusing an unchanged file again (GateError.attempt, or
            # refused before under other inputs of its rules: `_refused_before`)
            environment = isinstance(failure, OnceflowError) and failure.context.get("environment")
            attempt = not environment and not again
            attempt = attempt and (not isinstance(failure, GateError) or failure.attempt)
            store.files.fail(tgt.uri, step.file.file_id, token, message, attempt=attempt)
            result.files.append(
                FileOutcome(step.file.file_id, step.file.path, "failed", error=message)
            )
            result.error = message + _wait_behind(result, plan, step)
            result.error_types = error_names(failure)
            log.error("%s: %s", tgt.key, message, extra={"table": tgt.key, "action": "failed"})
            break
        result.files.append(outcome)
        log.info(
            "%s: %s %s%s",
            tgt.key,
            outcome.action,
            outcome.file_id,
            _outcome_detail(outcome),
            extra={"table": tgt.key, "action": outcome.action, "rows": outcome.rows},
        )


def _wait_behind(result: TableLoadResult, plan: Plan, step: Step) -> str:
    """The files planned after `step`, which failed, reported `waiting` (by name and in
    the counts, as the text says); the note that ends the table's error."""
    later = plan.steps[plan.steps.index(step) + 1 :]
    result.files += [FileOutcome(s.file.file_id, s.file.path, "waiting") for s in later]
    return f" ({len(later)} later file(s) of the table wait)" if later else ""


def _outcome_detail(outcome: FileOutcome) -> str:
    """` (N rows read; M inserted, version V)` of a file's log line, saying only what is known: a
    superseded file writes no rows (only its markers), a skipped one no version."""
    changes = {name: getattr(outcome, name) or 0 for name in CHANGES}
    parts = [] if outcome.rows is None else [rows_note(outcome.rows, changes)]
    version = f"version {outcome.version}"
    if outcome.action == "superseded":
        parts.append("a later window replaces it: no rows written")
        version = f"its markers in version {outcome.version}"
    if outcome.version is not None:
        parts.append(version)
    return f" ({', '.join(parts)})" if parts else ""


def _stopped_replay(message: str, result: TableLoadResult, plan: Plan, step: Step) -> str:
    """The truth about a replay that stopped at a file after its rewind (checked ahead, so
    an I/O error, a strategy's refusal): the table is not unchanged, it was taken back.
    The rewind's commit marked the files it undid as not held, so the next load plans
    them as new windows after what the table holds, and finishes the replay."""
    undone = set(result.rewound)
    behind = [
        s.file.file_id
        for s in plan.steps[plan.steps.index(step) :]
        if s.file.file_id in undone and s.kind != "markers"
    ]
    text = message.replace("; the table is unchanged", "")
    return (
        f"{text}; the replay stopped here: the table was rewound to apply "
        f"{len(result.rewound)} file(s) again and no longer holds {len(behind)} file(s) it "
        f"held ({', '.join(behind[:3])}{', ...' if len(behind) > 3 else ''}); "
        "the next load finishes the replay from this file once it loads"
    )
