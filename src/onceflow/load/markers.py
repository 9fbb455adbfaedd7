"""What a Delta table says about the lake files it holds: the truth the loader trusts.

Each lake file a table holds is an application transaction in the table's snapshot:
app id `onceflow.file:<identity>` (the file's path within the lake), version = a code of
the file's checksum (`checksum_code`), 0 = not held. Transactions are part of the
snapshot: they survive checkpoints and log clean-up, and each commit that loads, replaces
or rewinds files sets them in the same atomic commit as the data. So "does the table hold
this file, with this content?" is one lookup, and a kill at any instant leaves data and
markers in agreement.

Each commit also carries custom metadata naming what it did (`onceflow.file`,
`onceflow.checksum`, `onceflow.batch_id`, `onceflow.window_start`; a rewind names the
files it undid in `onceflow.rewind`, a widening of columns their new types in
`onceflow.widen`). Those say *when* a file was applied (the version a rewind restores
to) and make the history readable; they age out with the log.

Tables written before identities were kept (markers with an absolute `onceflow.file`
and no per-file transaction) are read too: the identity is the path's last five parts.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from onceflow.warehouse import commit_infos, local_root

APP_PREFIX = "onceflow.file:"
META_FILE = "onceflow.file"
META_CHECKSUM = "onceflow.checksum"
META_BATCH = "onceflow.batch_id"
META_WINDOW = "onceflow.window_start"
META_REWIND = "onceflow.rewind"
META_WIDEN = "onceflow.widen"
_LAKE_DEPTH = 5  # <source>/<table>/<yyyymm>/<dd>/<run_id>.parquet


def checksum_code(checksum: str | None) -> int:
    """A file's checksum as a positive transaction version (0 is 'not held'): 60 bits of
    a hash of it, so any checksum text maps to a number that fits Delta's long."""
    digest = hashlib.sha256((checksum or "").encode("utf-8")).hexdigest()
    return int(digest[:15], 16) or 1


def app_id(file_id: str) -> str:
    """The application id under which a table records one lake file."""
    return APP_PREFIX + file_id


def batch_id_for(file_id: str, checksum: str | None) -> str:
    """A deterministic batch id for one file: its stem and the start of its checksum."""
    return f"{Path(file_id).stem}-{(checksum or 'nochecksum')[:12]}"


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
) -> Any:
    """The CommitProperties of one commit: the file it applies and the files it undoes.

    max_commit_retries=0: when another writer committed since our snapshot, fail instead
    of silently rebasing, so the loader reloads and checks again whether the file is in.
    """
    from deltalake import CommitProperties, Transaction

    undone = sorted(set(undone))
    metadata: dict[str, str] = {}
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
class TableMarkers:
    """What a table says about lake files: which it holds (by checksum code) and where
    in its log each was last applied."""

    held: dict[str, int]
    commits: dict[str, Commit]
    oldest_version: int
    version: int

    def holds(self, file_id: str, checksum: str | None) -> bool:
        """True when the table holds this file with this content."""
        return self.held.get(file_id, 0) == checksum_code(checksum)

    def held_ids(self) -> list[str]:
        """Every file the table holds."""
        return sorted(f for f, code in self.held.items() if code)

    def undone_ids(self) -> list[str]:
        """Files a rewind took back (their transaction says 0) and no commit has applied
        again since: a replay in progress, which any load must finish."""
        return sorted(f for f, code in self.held.items() if not code)


_EMPTY = TableMarkers({}, {}, 0, -1)
# The last markers read per table: a load reads the log once, then only what is newer.
_cache: dict[str, TableMarkers] = {}
_cache_lock = threading.Lock()


def _legacy_id(path: str) -> str:
    parts = Path(path).parts
    return "/".join(parts[-_LAKE_DEPTH:]) if len(parts) >= _LAKE_DEPTH else path


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


def _checkpoint_transactions(root: Path, upto: int) -> tuple[int, dict[str, int]]:
    """The last checkpoint at or below `upto`, and the file transactions it holds."""
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
    held: dict[str, int] = {}
    for path in sorted(parts):
        column = pq.read_table(path, columns=["txn"]).column("txn")
        for txn in column.to_pylist():
            if txn and str(txn.get("appId", "")).startswith(APP_PREFIX):
                held[txn["appId"][len(APP_PREFIX) :]] = int(txn["version"])
    return best, held


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


def _read_local(root: Path, dt: Any, cached: TableMarkers | None) -> TableMarkers | None:
    """Markers from a local table's log files: the newest checkpoint, then the commits."""
    version = int(dt.version())
    if cached is not None and cached.version <= version:
        start, held, commits = cached.version + 1, dict(cached.held), dict(cached.commits)
        oldest = cached.oldest_version
    else:
        start, held = _checkpoint_transactions(root, version)
        start += 1
        commits, oldest = {}, version
    for number in range(start, version + 1):
        try:
            lines = (root / "_delta_log" / f"{number:020d}.json").read_text("utf-8").splitlines()
        except OSError:
            return None
        for line in lines:
            action = json.loads(line)
            txn = action.get("txn")
            if txn and str(txn.get("appId", "")).startswith(APP_PREFIX):
                held[txn["appId"][len(APP_PREFIX) :]] = int(txn["version"])
    first = start if cached is not None else _first_commit(root, version)
    infos = commit_infos(dt, first, version)
    if infos is not None:
        for info in reversed(infos):  # oldest first: newer commits override
            oldest = min(oldest, int(info["version"]))
            _apply_commit_info(info, int(info["version"]), commits)
    return TableMarkers(held, commits, oldest, version)


def _read_remote(dt: Any, file_ids: Iterable[str]) -> TableMarkers:
    """Markers of a remote table: one transaction lookup per file asked about."""
    # only files with a transaction: a 0 (undone by a rewind, not applied again yet) is
    # not the same as never held (a replay in progress must be finished)
    versions = {f: dt.transaction_version(app_id(f)) for f in file_ids}
    held = {f: int(v) for f, v in versions.items() if v is not None}
    commits: dict[str, Commit] = {}
    oldest = int(dt.version())
    for info in reversed(dt.history()):
        oldest = min(oldest, int(info.get("version", oldest)))
        _apply_commit_info(info, int(info.get("version", -1)), commits)
    return TableMarkers(held, commits, oldest, int(dt.version()))


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
    for file_id, commit in markers.commits.items():
        if file_id not in markers.held and commit.window_start is None:
            markers.held[file_id] = checksum_code(commit.checksum)  # a legacy marker
    if root is not None:
        with _cache_lock:
            _cache[key] = markers
    return markers


def forget_cached_markers() -> None:
    """Drop every cached read (tests that rewrite a log behind the loader's back)."""
    with _cache_lock:
        _cache.clear()
