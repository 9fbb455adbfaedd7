"""The markers each load commit carries, and reading them back from the Delta log.

Each file's commit carries custom metadata (onceflow.file, onceflow.checksum,
onceflow.batch_id, onceflow.sequence) and an application transaction (app id of the
target table, version = the file's sequence). delta-rs records the transaction but does
not enforce it, so the loader reads both before writing and skips what is already in.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onceflow.warehouse import commit_infos, open_table

META_FILE = "onceflow.file"
META_CHECKSUM = "onceflow.checksum"
META_BATCH = "onceflow.batch_id"
META_SEQUENCE = "onceflow.sequence"


def commit_markers(dt: Any, commit_properties: Any) -> int:
    """An empty commit that carries a file's markers and application transaction.

    Committed against `dt`'s snapshot without retries: if another writer committed since,
    it fails as a conflict and the loader reloads and checks again. So a commit that
    succeeds is exactly the snapshot's next version (read after it, the table may already
    be further on).
    """
    version = int(dt.version()) + 1
    dt.create_write_transaction(
        [], mode="append", schema=dt.schema(), commit_properties=commit_properties
    )
    dt.update_incremental()
    return version


def app_id(target: str) -> str:
    """The application id of a target table's file loads in the Delta log."""
    return f"onceflow.load:{target}"


def batch_id_for(path: str, checksum: str | None) -> str:
    """A deterministic batch id for one file: its stem and the start of its checksum."""
    return f"{Path(path).stem}-{(checksum or 'nochecksum')[:12]}"


def commit_properties(
    *,
    path: str,
    checksum: str | None,
    batch_id: str,
    sequence: int,
    app: str,
    max_commit_retries: int | None = 0,
) -> Any:
    """The CommitProperties of one file's commit: its markers and its app transaction.

    max_commit_retries=0: when another writer committed since our snapshot, fail instead
    of silently rebasing, so the loader reloads and checks again whether the file is in.
    """
    from deltalake import CommitProperties, Transaction

    return CommitProperties(
        custom_metadata={
            META_FILE: path,
            META_CHECKSUM: checksum or "",
            META_BATCH: batch_id,
            META_SEQUENCE: str(sequence),
        },
        app_transactions=[Transaction(app_id=app, version=sequence)],
        max_commit_retries=max_commit_retries,
    )


@dataclass(frozen=True)
class LoggedFile:
    """A file load found in a Delta table's commit log."""

    path: str
    checksum: str | None
    batch_id: str | None
    sequence: int | None
    version: int


@dataclass(frozen=True)
class LogView:
    """What the log says about file loads: by path, the txn version, the oldest version."""

    files: dict[str, LoggedFile]
    txn_version: int
    oldest_version: int
    version: int

    def has(self, path: str, checksum: str | None) -> bool:
        """True when the log names this file (with this checksum, when both are known)."""
        logged = self.files.get(path)
        if logged is None:
            return False
        return not (checksum and logged.checksum and logged.checksum != checksum)


def _logged(entry: dict[str, Any]) -> LoggedFile | None:
    path = entry.get(META_FILE)
    if not path:
        return None
    sequence = entry.get(META_SEQUENCE)
    return LoggedFile(
        path=str(path),
        checksum=entry.get(META_CHECKSUM) or None,
        batch_id=entry.get(META_BATCH),
        version=int(entry.get("version", -1)),
        sequence=int(sequence) if sequence not in (None, "") else None,
    )


# The last view read per (table URI, app id): a load reads the log once, then only the
# commits made since, instead of the whole history again for every file.
_views: dict[tuple[str, str], LogView] = {}  # (uri#table id, app id) -> view
_views_lock = threading.Lock()


def read_log(dt: Any, app: str) -> LogView:
    """The file loads recorded in `dt`'s log (an empty view when dt is None)."""
    if dt is None:
        return LogView({}, 0, 0, -1)
    # The table id is new whenever a table is re-created at the same path.
    key = (f"{dt.table_uri}#{dt.metadata().id}", app)
    version = dt.version()
    with _views_lock:
        cached = _views.get(key)
    if cached is not None and cached.version == version:
        return cached
    newer = commit_infos(dt, cached.version + 1, version) if cached is not None else None
    if cached is not None and cached.version < version and newer is not None:
        entries = newer
        files, oldest = dict(cached.files), cached.oldest_version
    else:  # first read, or the table was re-created: read it all
        entries = commit_infos(dt, 0, version) or dt.history()
        files, oldest = {}, version
    fresh: dict[str, LoggedFile] = {}
    for entry in entries:  # newest first: keep the newest commit of a path
        oldest = min(oldest, int(entry.get("version", oldest)))
        if (logged := _logged(entry)) is not None:
            fresh.setdefault(logged.path, logged)
    files.update(fresh)
    view = LogView(files, int(dt.transaction_version(app) or 0), oldest, version)
    with _views_lock:
        _views[key] = view
    return view


def find_commit(uri: str, batch_id: str) -> int | None:
    """The version whose commit carries this batch id (recent commits first)."""
    dt = open_table(uri)
    if dt is None:
        return None
    for entry in dt.history(limit=50):
        if entry.get(META_BATCH) == batch_id:
            return int(entry["version"])
    return None
