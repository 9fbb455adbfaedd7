"""What a Delta table says about the lake files it holds: the truth the loader trusts.

The loader writes this format and reads it; validate-consistency and fix-inconsistencies
read it too, so it lives here, below the steps, and neither reads the other's internals.

Each lake file a table holds is an application transaction in the table's snapshot:
app id `onceflow.file:<identity>` (the file's path within the lake), version = a code of
the file's checksum (`checksum_code`), 0 = not held (that format is
`onceflow.warehouse.held`, which other steps look a file up with). Transactions are part of the
snapshot: they survive checkpoints and log clean-up, and each commit that loads, replaces
or rewinds files sets them in the same atomic commit as the data. So "does the table hold
this file, with this content?" is one lookup, and a kill at any instant leaves data and
markers in agreement.

Each commit also carries custom metadata naming what it did (`onceflow.file`,
`onceflow.checksum`, `onceflow.batch_id`, `onceflow.window_start`; a rewind names the
files it undid in `onceflow.rewind`, a widening of columns their new types in
`onceflow.widen`). Those say *when* a file was applied (the version a rewind restores
to) and make the history readable; they age out with the log.

Another writer's RESTORE (delta-rs `DeltaTable.restore`, Spark's `RESTORE TABLE`) rolls
the data back but not the application transactions, so the markers would still say the
table holds the files it took back. A RESTORE commit whose commitInfo carries no
`onceflow.` key is another writer's: the markers right after it are those of the version
it restored (themselves read the same way), the files held before it and not then are
undone (0, as a rewind leaves them), and the transactions of later commits apply on top.
The loader writes that correction into the log before anything else (`repair_properties`:
one empty commit, `onceflow.external_restore`), so only restores after the last checked
point need it. That point is the transaction `onceflow.verified` every loader commit
carries (the version its markers were read at): a read scans only the commitInfo of
later versions for restores, never the whole history.

A restore by time names no version: a local table's is worked out from its log as
delta-rs works it out, and checked (`onceflow.warehouse.restore_time`; the correction
commit records it, so a later read does not depend on the log's times). Where it cannot
be known for sure (a Spark restore by time, a remote table, times that do not settle it),
the table is refused, naming why and the fix.

Where each file was last applied (`TableMarkers.commits`: the version a rewind restores
to, the metadata a rebuilt tracker row takes) needs every commit the log keeps, which
grows by one per loaded file. A load that only adds windows after what the table holds
needs none of it, so it is read from the log when first asked for, not with the markers:
the markers themselves come from the newest checkpoint and the commits after it, and the
restores from the commits after the verified version.

Tables written before identities were kept (markers with an absolute `onceflow.file`
and no per-file transaction) are read too: the identity is the path's last five parts.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from onceflow.errors import LoadError
from onceflow.lake.paths import LAYOUT_DEPTH
from onceflow.warehouse import local_root, log_commit_infos, restore_time
from onceflow.warehouse.held import APP_PREFIX as APP_PREFIX
from onceflow.warehouse.held import app_id as app_id
from onceflow.warehouse.held import batch_id_for as batch_id_for
from onceflow.warehouse.held import checksum_code as checksum_code

META_FILE = "onceflow.file"
META_CHECKSUM = "onceflow.checksum"
META_BATCH = "onceflow.batch_id"
META_WINDOW = "onceflow.window_start"
META_REWIND = "onceflow.rewind"
META_WIDEN = "onceflow.widen"
META_EXTERNAL = "onceflow.external_restore"
#: The version up to which a loader commit checked the log for other writers' restores.
VERIFIED_APP = "onceflow.verified"
_OWN_PREFIX = "onceflow."
LAKE_DEPTH = LAYOUT_DEPTH  # <source>/<table>/<yyyymm>/<dd>/<run_id>.parquet


@dataclass(frozen=True)
class Applied:
    """A lake file as one commit applies it."""

    file_id: str
    checksum: str | None
    batch_id: str
    window_start: str | None = None


def commit_properties(
    applied: Applied | None = None,
    *,
    undone: Iterable[str] = (),
    max_commit_retries: int | None = 0,
    verified: int = -1,
    extra: Mapping[str, str] | None = None,
) -> Any:
    """The CommitProperties of one commit: the file it applies and the files it undoes
    (and `extra` commit metadata: the settings of the commit that creates the table).

    max_commit_retries=0: when another writer committed since our snapshot, fail instead
    of silently rebasing, so the loader reloads and checks again whether the file is in.
    `verified`: the version the markers this commit relies on were read at, with no
    other writer's restore left to correct (see the module docstring); -1 records none.
    """
    from deltalake import CommitProperties, Transaction

    undone = sorted(set(undone))
    metadata: dict[str, str] = dict(extra or {})
    transactions = [Transaction(app_id=app_id(f), version=0) for f in undone]
    if undone:
        metadata[META_REWIND] = json.dumps(undone)
    if applied is not None:
        metadata.update(
            {
                META_FILE: applied.file_id,
                META_CHECKSUM: applied.checksum or "",
                META_BATCH: applied.batch_id,
                META_WINDOW: applied.window_start or "",
            }
        )
        version = checksum_code(applied.checksum)
        transactions.append(Transaction(app_id=app_id(applied.file_id), version=version))
    if verified >= 0:
        transactions.append(Transaction(app_id=VERIFIED_APP, version=verified))
    return CommitProperties(
        custom_metadata=metadata,
        app_transactions=transactions,
        max_commit_retries=max_commit_retries,
    )


def widen_properties(types: Mapping[str, Any]) -> Any:
    """The CommitProperties of a commit that only widens columns (`load.widen`): it names
    the new types and no file (it holds no file; the file that needed it is the next
    commit), and refuses to rebase over a concurrent commit, like every loader commit."""
    from deltalake import CommitProperties

    return CommitProperties(
        custom_metadata={META_WIDEN: json.dumps({k: str(v) for k, v in types.items()})},
        max_commit_retries=0,
    )


def commit_markers(dt: Any, commit_properties: Any) -> int:
    """An empty commit that carries only markers (a file that changed nothing).

    Committed against `dt`'s snapshot without retries: if another writer committed since,
    it fails as a conflict and the loader reloads and checks again. So a commit that
    succeeds is exactly the snapshot's next version.
    """
    version = int(dt.version()) + 1
    dt.create_write_transaction(
        [], mode="append", schema=dt.schema(), commit_properties=commit_properties
    )
    dt.update_incremental()
    return version


@dataclass(frozen=True)
class Commit:
    """The newest commit that applied a file: its version and the file's checksum then."""

    file_id: str
    checksum: str | None
    batch_id: str | None
    window_start: str | None
    version: int


@dataclass(frozen=True)
class ExternalRestore:
    """A RESTORE commit another writer made (no `onceflow.` metadata): version `version`
    brought back the data of `to_version` (None: not known, `unresolved` says why).

    A restore by time (`at`: the time it asked for, as text) names no version: a local
    table's is worked out from its log (`onceflow.warehouse.restore_time`), or a
    correction commit recorded it already; `at_ms` is the time when delta-rs wrote it."""

    version: int
    to_version: int | None
    at: str | None = None
    at_ms: int | None = None
    read_version: int | None = None
    unresolved: str = ""

    def describe(self) -> str:
        """One phrase for messages: what the commit did."""
        if self.to_version is not None:
            target = f"version {self.to_version}" + (f" (by time, {self.at})" if self.at else "")
        elif self.at is not None:
            target = f"the time {self.at}"
        else:
            target = "an older version"
        return f"version {self.version} is a RESTORE to {target} by another writer"


class History:
    """The newest commit that applied each file (`Commit`), and the oldest version the
    log still holds: read once, when first asked for (`read`), or given (`known`).

    The read walks every commit file the log keeps; only a rewind's plan, a tracker row
    rebuilt from the table, and a table with markers from before identities need it."""

    def __init__(self, read: Callable[[], tuple[dict[str, Commit], int]]) -> None:
        self._read: Callable[[], tuple[dict[str, Commit], int]] | None = read
        self._value: tuple[dict[str, Commit], int] | None = None
        self._lock = threading.Lock()

    @classmethod
    def known(cls, commits: dict[str, Commit], oldest: int) -> History:
        """A history already read."""
        history = cls(lambda: (commits, oldest))
        history.get()
        return history

    @property
    def loaded(self) -> bool:
        """Whether the log was read for it already."""
        return self._value is not None

    def get(self) -> tuple[dict[str, Commit], int]:
        """The commits by file, and the oldest version the log holds (read now if not yet)."""
        with self._lock:
            if self._value is None:
                assert self._read is not None
                self._value, self._read = self._read(), None
            return self._value


@dataclass(frozen=True)
class TableMarkers:
    """What a table says about lake files: which it holds (by checksum code) and where
    in its log each was last applied (`commits`, read from the log when first asked for).

    `restores`: other writers' RESTOREs the log's own transactions do not reflect yet;
    `held` is then already corrected for them, and `repairs` are the transactions
    (file -> code) the loader writes to make the log say the same (`repair_properties`).
    """

    held: dict[str, int]
    history: History
    version: int
    verified: int = -1
    restores: tuple[ExternalRestore, ...] = ()
    repairs: dict[str, int] = field(default_factory=dict)

    @property
    def commits(self) -> dict[str, Commit]:
        """The newest commit that applied each file the log still names."""
        return self.history.get()[0]

    @property
    def oldest_version(self) -> int:
        """The oldest version whose commit the log still holds."""
        return self.history.get()[1]

    def holds(self, file_id: str, checksum: str | None) -> bool:
        """True when the table holds this file with this content."""
        return self.held.get(file_id, 0) == checksum_code(checksum)

    def held_ids(self) -> list[str]:
        """Every file the table holds."""
        return sorted(f for f, code in self.held.items() if code)

    def without_commits(self) -> TableMarkers:
        """The same files held, and no commit known for any of them: a plan from these
        rewinds to an empty table (a restore of the version it wanted was impossible)."""
        return TableMarkers(self.held, History(lambda: ({}, self.oldest_version)), self.version)


_EMPTY = TableMarkers({}, History.known({}, 0), -1)
# The last markers read per table: a load reads the log once, then only what is newer.
_cache: dict[str, TableMarkers] = {}
_cache_lock = threading.Lock()


def _legacy_id(path: str) -> str:
    parts = Path(path).parts
    return "/".join(parts[-LAKE_DEPTH:]) if len(parts) >= LAKE_DEPTH else path


def _apply_commit_info(info: Mapping[str, Any], version: int, commits: dict[str, Commit]) -> None:
    file_id = info.get(META_FILE)
    if not file_id:
        return
    file_id = str(file_id)
    if file_id.startswith("/") or META_WINDOW not in info:  # written before identities
        file_id = _legacy_id(file_id)
    commits[file_id] = Commit(
        file_id=file_id,
        checksum=info.get(META_CHECKSUM) or None,
        batch_id=info.get(META_BATCH),
        window_start=info.get(META_WINDOW) or None,
        version=version,
    )


def _take(txn: Mapping[str, Any] | None, state: dict[str, int]) -> None:
    """Apply one transaction action to `state` (app id -> version), onceflow's only."""
    if txn and str(txn.get("appId", "")).startswith(_OWN_PREFIX):
        state[str(txn["appId"])] = int(txn["version"])


def _files(state: Mapping[str, int]) -> dict[str, int]:
    """The file markers among a table's onceflow transactions, by file identity."""
    return {k[len(APP_PREFIX) :]: v for k, v in state.items() if k.startswith(APP_PREFIX)}


def _checkpoint_transactions(root: Path, upto: int) -> tuple[int, dict[str, int]]:
    """The last checkpoint at or below `upto`, and the onceflow transactions it holds
    (app id -> version)."""
    best = -1
    parts: list[Path] = []
    for path in (root / "_delta_log").glob("*.checkpoint*.parquet"):
        try:
            version = int(path.name.split(".", 1)[0])
        except ValueError:
            continue
        if version <= upto and version >= best:
            if version > best:
                parts = []
            best = version
            parts.append(path)
    state: dict[str, int] = {}
    for path in sorted(parts):
        # one row per action: most are the table's data files, with no transaction
        column = pq.read_table(path, columns=["txn"]).column("txn").drop_null()
        for txn in column.to_pylist():
            _take(txn, state)
    return best, state


def _log_transactions(root: Path, first: int, last: int, state: dict[str, int]) -> bool:
    """Apply the transactions of commits first..last to `state`; False when one of those
    commit files is gone (cleaned up after a checkpoint)."""
    for number in range(first, last + 1):
        try:
            lines = (root / "_delta_log" / f"{number:020d}.json").read_text("utf-8").splitlines()
        except OSError:
            return False
        for line in lines:
            if '"txn"' in line:
                _take(json.loads(line).get("txn"), state)
    return True


def _state_at(root: Path, version: int) -> dict[str, int] | None:
    """The onceflow transactions of the table as of `version` (its raw log, uncorrected);
    None when the log no longer holds what that needs."""
    start, state = _checkpoint_transactions(root, version)
    return state if _log_transactions(root, start + 1, version, state) else None


def external_restore(info: Mapping[str, Any]) -> ExternalRestore | None:
    """The RESTORE another writer made, when `info` (a commitInfo with its `version`) is one.

    onceflow's own rewinds are restores too; every commit onceflow writes names what it
    did under an `onceflow.` key, so a RESTORE without one is not ours. A restore by time
    comes back with no version (`resolve_restores` works it out for a local table)."""
    if str(info.get("operation", "")).upper() != "RESTORE":
        return None
    if any(str(key).startswith(_OWN_PREFIX) for key in info):
        return None
    params = info.get("operationParameters") or {}
    read = info.get("readVersion")
    read_version = read if isinstance(read, int) else None
    try:
        to_version: int | None = int(str(params.get("version")))
    except (TypeError, ValueError):  # by time: no version named
        to_version = None
    if to_version is not None:
        return ExternalRestore(int(info["version"]), to_version, read_version=read_version)
    at_ms, at = restore_time.requested_time(params)
    if at_ms is not None:  # delta-rs: resolvable from a local log
        why = "its commit names a time, not a version, and a remote log is not read for it"
    elif at is not None:
        why = (
            "its commit names a local time without its time zone (Spark's `RESTORE TABLE ... "
            "TIMESTAMP AS OF`), so the version it chose cannot be worked out"
        )
    else:
        why = "its commit does not name the version it restored"
    return ExternalRestore(int(info["version"]), None, at, at_ms, read_version, why)


def resolve_restores(
    root: Path | None, infos: Iterable[Mapping[str, Any]]
) -> list[ExternalRestore]:
    """Other writers' restores among `infos` (commitInfos, any order), oldest first, those
    by time with the version they restored where it is known for sure: recorded by an
    onceflow correction commit among `infos`, or else worked out from the local log at
    `root` (`onceflow.warehouse.restore_time`; None: a remote table, not worked out)."""
    infos = sorted(infos, key=lambda i: int(i["version"]))
    recorded: dict[int, int] = {}
    for info in infos:
        try:
            described = json.loads(str(info.get(META_EXTERNAL) or "[]"))
        except ValueError:
            continue
        for entry in described if isinstance(described, list) else ():
            if isinstance(entry, dict) and isinstance(entry.get("restored"), int):
                recorded[int(entry["version"])] = int(entry["restored"])
    restores = []
    for restore in map(external_restore, infos):
        if restore is None:
            continue
        at_ms = restore.at_ms
        if restore.to_version is None and at_ms is not None:
            if restore.version in recorded:
                restore = replace(restore, to_version=recorded[restore.version], unresolved="")
            elif root is not None:
                found = restore_time.resolve(root, restore.version, at_ms, restore.read_version)
                if isinstance(found, int):
                    restore = replace(restore, to_version=found, unresolved="")
                else:
                    restore = replace(restore, unresolved=found)
        restores.append(restore)
    return restores


def _unknowable(uri: str, restore: ExternalRestore, why: str, *, again: bool = False) -> LoadError:
    """`again`: restoring once more, by version number, would let onceflow follow it (a
    restore by time whose version cannot be known for sure); otherwise only a rebuild does."""
    redo = (
        "restore it again naming the version number (`DeltaTable(uri).restore(N)`, "
        "`RESTORE TABLE t TO VERSION AS OF N`), or rebuild"
        if again
        else "rebuild"
    )
    return LoadError(
        f"{uri}: {restore.describe()}, and {why}, so onceflow cannot tell which lake files "
        f"the table holds; {redo} it from the lake: move the table's folder away and run "
        "`onceflow load`"
    )


def _why_unnamed(restore: ExternalRestore) -> str:
    """Why a restore's version is not known (or not one a restore can bring back)."""
    if restore.to_version is None:
        return restore.unresolved or "its commit does not name the version it restored"
    return f"version {restore.to_version} is not one before it"


def _corrected(
    root: Path, uri: str, version: int, restores: list[ExternalRestore]
) -> dict[str, int]:
    """The file markers as of `version`, corrected for the restores among `restores`
    after the version its log last verified (see the module docstring)."""
    state = _state_at(root, version)
    if state is None:
        raise _unknowable(
            uri, restores[-1], f"its log no longer holds the commits that make version {version}"
        )
    verified = state.get(VERIFIED_APP, -1)
    pending = [r for r in restores if verified < r.version <= version]
    if not pending:
        return _files(state)
    last = pending[-1]
    if last.to_version is None or not 0 <= last.to_version < last.version:
        raise _unknowable(uri, last, _why_unnamed(last), again=True)
    before = _state_at(root, last.version)
    if before is None:
        raise _unknowable(
            uri, last, f"its log no longer holds the commits that make version {last.version}"
        )
    held = _corrected(root, uri, last.to_version, restores)
    # what the restore took back is undone, as a rewind leaves it: any load finishes it
    held.update({f: 0 for f, code in _files(before).items() if code and not held.get(f)})
    # then what later commits set (read as a difference: their commit files may be
    # gone behind a later checkpoint; none of them is a loader's, which verifies first)
    now, then = _files(state), _files(before)
    held.update({f: code for f, code in now.items() if then.get(f) != code})
    return held


def _first_commit(root: Path, version: int) -> int:
    """The oldest commit file still in the log (older ones were cleaned up)."""
    numbers = []
    for path in (root / "_delta_log").glob("*.json"):
        stem = path.name.removesuffix(".json")
        if stem.isdigit() and int(stem) <= version:
            numbers.append(int(stem))
    numbers.sort()
    first = version
    for number in reversed(numbers):  # the contiguous run that ends at `version`
        if number != first:
            break
        first -= 1
    return first + 1


def _commits(
    infos: list[dict[str, Any]], commits: dict[str, Commit], restores: list[ExternalRestore]
) -> tuple[dict[str, Commit], int]:
    """The newest commit that applied each file, from `infos` (newest first) over
    `commits`, and the oldest version seen. After another writer's restore to version M
    the table holds what it held at M, so the commits are those of M again."""
    targets = {r.to_version for r in restores}
    by_version = {r.version: r for r in restores}
    saved: dict[int, dict[str, Commit]] = {}
    oldest = -1
    for info in reversed(infos):  # oldest first: newer commits override
        number = int(info["version"])
        oldest = number if oldest < 0 else min(oldest, number)
        restore = by_version.get(number)
        if restore is None:
            _apply_commit_info(info, number, commits)
        elif restore.to_version in saved:
            commits = dict(saved[restore.to_version])
        else:  # restored to before the log kept: only what is older stays
            bound = -1 if restore.to_version is None else restore.to_version
            commits = {f: c for f, c in commits.items() if c.version <= bound}
        if number in targets:
            saved[number] = dict(commits)
    return commits, oldest


def _repairs(raw: Mapping[str, int], held: Mapping[str, int]) -> dict[str, int]:
    """The transactions that make the log say `held` where it says `raw`."""
    return {f: held.get(f, 0) for f in sorted({*raw, *held}) if held.get(f, 0) != raw.get(f, 0)}


def _identity_era(root: Path, number: int) -> bool:
    """Whether commit `number` was written by an onceflow that knows files by identity:
    it sets a file's transaction (`onceflow.file:`) or the verified version. Markers and
    identities came in one release, so no commit after such a one is a marker from before
    identities (a commit naming a file without its transaction, `_legacy_id`), unless an
    older onceflow wrote to the table again, which cannot read its markers anyway."""
    try:
        lines = (root / "_delta_log" / f"{number:020d}.json").read_text("utf-8").splitlines()
    except OSError:
        return False
    for line in lines:
        if '"txn"' in line:
            app = str((json.loads(line).get("txn") or {}).get("appId", ""))
            if app.startswith(APP_PREFIX) or app == VERIFIED_APP:
                return True
    return False


def _walk(root: Path, version: int) -> tuple[dict[str, Commit], int]:
    """Every commit the log keeps up to `version`: the newest that applied each file, and
    the oldest version kept (see `_commits`)."""
    infos = log_commit_infos(root, _first_commit(root, version), version) or []
    restores = resolve_restores(root, infos)
    commits, oldest = _commits(infos, {}, restores)
    return commits, version if oldest < 0 else oldest


def _read_local(
    root: Path, dt: Any, cached: TableMarkers | None, *, whole: bool = False
) -> TableMarkers | None:
    """Markers from a local table's log files: the newest checkpoint, then the commits.

    Restores are looked for only in the commits after the verified version, and where
    each file was applied is left to be read when asked for (`History`), unless the log
    may hold markers from before identities (`_identity_era`) or an unverified restore,
    whose corrections need the whole log (`whole`)."""
    version = int(dt.version())
    incremental = (
        not whole and cached is not None and cached.version <= version and not cached.restores
    )
    if cached is not None and incremental:
        start, state = cached.version + 1, {app_id(f): code for f, code in cached.held.items()}
        if cached.verified >= 0:
            state[VERIFIED_APP] = cached.verified
    else:
        start, state = _checkpoint_transactions(root, version)
        start += 1
    if not _log_transactions(root, start, version, state):
        return None
    held, verified = _files(state), state.get(VERIFIED_APP, -1)
    kept = first = start
    if not incremental:
        kept = first = _first_commit(root, version)
        if not whole and verified >= 0 and _identity_era(root, kept):
            first = max(kept, verified + 1)
    infos = log_commit_infos(root, first, version) or []
    restores = resolve_restores(root, infos)
    pending = tuple(r for r in restores if r.version > verified)
    if pending and (incremental or first > kept):
        # a new restore: its target may be older than what was read
        return _read_local(root, dt, None, whole=True)
    if cached is not None and incremental and cached.history.loaded:
        commits, oldest = _commits(infos, dict(cached.commits), restores)
        oldest = min(version if oldest < 0 else oldest, cached.oldest_version)
        history = History.known(commits, oldest)
    elif first > kept or incremental:  # the infos read are not the whole log
        history = History(lambda: _walk(root, version))
    else:
        commits, oldest = _commits(infos, {}, restores)
        history = History.known(commits, version if oldest < 0 else oldest)
    repairs: dict[str, int] = {}
    if pending:
        corrected = _corrected(root, str(dt.table_uri), version, restores)
        held, repairs = corrected, _repairs(held, corrected)
    return TableMarkers(held, history, version, verified, pending, repairs)


def _read_remote(dt: Any, file_ids: Iterable[str]) -> TableMarkers:
    """Markers of a remote table: one transaction lookup per file asked about."""
    file_ids = list(file_ids)
    # only files with a transaction: a 0 (undone by a rewind, not applied again yet) is
    # not the same as never held (a replay in progress must be finished)
    versions = {f: dt.transaction_version(app_id(f)) for f in file_ids}
    held = {f: int(v) for f, v in versions.items() if v is not None}
    infos = [i for i in dt.history() if "version" in i]
    restores = resolve_restores(None, infos)
    commits, oldest = _commits(infos, {}, restores)
    version = int(dt.version())
    verified = dt.transaction_version(VERIFIED_APP)
    verified = -1 if verified is None else int(verified)
    pending = tuple(r for r in restores if r.version > verified)
    repairs: dict[str, int] = {}
    if pending:
        corrected = _corrected_remote(dt, held, file_ids, pending, restores)
        held, repairs = corrected, _repairs(held, corrected)
    oldest = version if oldest < 0 else oldest
    return TableMarkers(held, History.known(commits, oldest), version, verified, pending, repairs)


def _corrected_remote(
    dt: Any,
    held: dict[str, int],
    file_ids: list[str],
    pending: tuple[ExternalRestore, ...],
    restores: list[ExternalRestore],
) -> dict[str, int]:
    """A remote table's markers corrected for one restore since its last verified load
    (more, or one to a version itself restored since, is refused: a remote log is not
    read commit by commit here)."""
    from deltalake import DeltaTable

    uri = str(dt.table_uri)
    last = pending[-1]
    if last.to_version is None or not 0 <= last.to_version < last.version:
        raise _unknowable(uri, last, _why_unnamed(last), again=True)
    if len(pending) > 1:
        raise _unknowable(uri, last, f"{pending[0].describe()} too (a remote table)")
    then = DeltaTable(uri, version=last.to_version)
    then_verified = then.transaction_version(VERIFIED_APP)
    then_verified = -1 if then_verified is None else int(then_verified)
    if any(then_verified < r.version <= last.to_version for r in restores):
        raise _unknowable(uri, last, "the version it restored was itself restored")
    corrected = dict(held)
    for file_id in file_ids:
        code = then.transaction_version(app_id(file_id))
        if code is not None:
            corrected[file_id] = int(code)
        elif corrected.get(file_id):
            corrected[file_id] = 0  # taken back by the restore
    return corrected


def repair_properties(markers: TableMarkers) -> Any:
    """The CommitProperties of the empty commit that makes a table's log say what it
    holds after other writers' restores: the corrected file transactions, the restores
    it accounts for (`onceflow.external_restore`), and the version it verified."""
    from deltalake import CommitProperties, Transaction

    # a restore by time's resolved version is kept here: a later read takes it from this
    # record (`resolve_restores`), not from times the log may since have lost
    described = [
        {"version": r.version, "restored": r.to_version, **({"at": r.at} if r.at else {})}
        for r in markers.restores
    ]
    transactions = [Transaction(app_id=app_id(f), version=v) for f, v in markers.repairs.items()]
    transactions.append(Transaction(app_id=VERIFIED_APP, version=markers.version))
    return CommitProperties(
        custom_metadata={META_EXTERNAL: json.dumps(described)},
        app_transactions=transactions,
        max_commit_retries=0,
    )


def read_markers(dt: Any, file_ids: Iterable[str] = ()) -> TableMarkers:
    """What `dt` says about lake files (empty when there is no table).

    Local tables are read from their log (incrementally, cached by table id and version);
    a remote table answers for `file_ids` only. A file known only from a legacy marker
    (a commit naming it, no transaction) counts as held with that commit's checksum.
    """
    if dt is None:
        return _EMPTY
    root = local_root(str(dt.table_uri))
    key = f"{dt.table_uri}#{dt.metadata().id}"  # a new id whenever a table is re-created
    markers: TableMarkers | None = None
    if root is not None:
        with _cache_lock:
            cached = _cache.get(key)
        if cached is not None and cached.version == int(dt.version()):
            return cached
        markers = _read_local(Path(root), dt, cached)
        if markers is None and cached is not None:
            markers = _read_local(Path(root), dt, None)
    if markers is None:
        markers = _read_remote(dt, file_ids)
    # a history left unread is of a log from after identities (`_identity_era`): it names
    # no file without its transaction, so there is no legacy marker to take from it
    for file_id, commit in markers.commits.items() if markers.history.loaded else ():
        if file_id not in markers.held and commit.window_start is None:
            markers.held[file_id] = checksum_code(commit.checksum)  # a legacy marker
    if root is not None:
        with _cache_lock:
            _cache[key] = markers
    return markers


def forget_cached_markers() -> None:
    """Drop every cached read, as a new process starts: for a test that rewrites a log
    behind the loader's back, and bench/load.py's cold read of a log."""
    with _cache_lock:
        _cache.clear()
    restore_time.forget_resolved()
