"""The Delta side of exactly-once: table location, the markers each commit carries, and
reading them back from the log.

Each file's commit carries custom metadata (onceflow.file, onceflow.checksum,
onceflow.batch_id, onceflow.sequence) and an application transaction (app id of the
target table, version = the file's sequence). delta-rs records the transaction but does
not enforce it, so the loader reads both before writing and skips what is already in.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.dataset

from onceflow.errors import LoadError
from onceflow.extract.paths import normalize_lake_path

META_FILE = "onceflow.file"
META_CHECKSUM = "onceflow.checksum"
META_BATCH = "onceflow.batch_id"
META_SEQUENCE = "onceflow.sequence"
AUDIT_COLUMNS = ("_source_file", "_load_timestamp", "_batch_id")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def table_uri(warehouse: str, target: str) -> str:
    """Where a target table lives: a URI or absolute path as given, else under warehouse.

    Databricks `dbfs:/x` becomes the FUSE path `/dbfs/x` (delta-rs has no dbfs scheme);
    a Unity Catalog volume (`/Volumes/<catalog>/<schema>/<volume>/...`) is a local path.
    """
    if "://" in target or target.startswith("/") or target.startswith("dbfs:"):
        return normalize_lake_path(target)
    return str(Path(normalize_lake_path(warehouse)) / target)


def local_root(uri: str) -> str | None:
    """The folder of a table on the local filesystem, or None for a remote table.

    delta-rs reports local tables as percent-encoded ``file://`` URIs
    (``file:///lake/my%20table/``), so the prefix alone is not the path.
    """
    if uri.startswith("file://"):
        return unquote(uri.removeprefix("file://")).rstrip("/") or "/"
    if "://" in uri:
        return None
    return uri.rstrip("/") or "/"


def snapshot_dataset(dt: Any) -> pa.dataset.Dataset:
    """The table's current snapshot as a pyarrow dataset (never a glob of the folder).

    A local table is read through Arrow's own filesystem: delta-rs's Python filesystem
    handler, called from Arrow's I/O threads, aborts the interpreter at exit now and then
    ("terminate called without an active exception", delta-rs #2184), and is slower.
    """
    import pyarrow.fs as pafs

    root = local_root(str(dt.table_uri))
    if root is None:
        dataset: pa.dataset.Dataset = dt.to_pyarrow_dataset()
        return dataset
    local = pafs.SubTreeFileSystem(root, pafs.LocalFileSystem())
    dataset = dt.to_pyarrow_dataset(filesystem=local)
    return dataset


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


CHECKPOINT_EVERY = 10


def checkpoint_if_due(dt: Any, every: int = CHECKPOINT_EVERY) -> bool:
    """Write a checkpoint when the local table's log has `every` commits past the last one.

    One commit per file makes long logs; opening a table replays every commit since its
    last checkpoint (delta-rs checkpoints every 100 by default): 25 JSON commits take
    ~15 ms to open, a checkpoint and a few commits ~5 ms. Written atomically (temp file,
    rename), so a kill leaves the previous checkpoint in use. Remote tables keep
    delta-rs's own rhythm.
    """
    root = None if dt is None else local_root(str(dt.table_uri))
    if root is None:
        return False
    last = -1
    with contextlib.suppress(OSError, ValueError, TypeError):
        hint = json.loads((Path(root) / "_delta_log" / "_last_checkpoint").read_text("utf-8"))
        last = int(hint["version"])
    if dt.version() - last < every:
        return False
    dt.create_checkpoint()
    return True


def read_table(uri: str, columns: list[str] | None = None) -> pa.Table:
    """The current rows of the Delta table at `uri` (its snapshot, not its folder)."""
    from deltalake import DeltaTable

    table: pa.Table = snapshot_dataset(DeltaTable(uri)).to_table(columns=columns)
    return table


def app_id(target: str) -> str:
    """The application id of a target table's file loads in the Delta log."""
    return f"onceflow.load:{target}"


def one_line(text: str) -> str:
    """A delta-rs error message on one line: without colours and its `↳` cause chain."""
    text = _ANSI.sub("", text)
    parts = [p.strip().lstrip("↳").strip() for p in text.splitlines()]
    return ": ".join(p for p in parts if p)


def open_table(uri: str) -> Any:
    """The DeltaTable at `uri`, or None when there is no table yet.

    A path that cannot be read as a table (a file in its place, no permission) raises
    LoadError with delta-rs's reason on one line.
    """
    from deltalake import DeltaTable

    try:
        if not DeltaTable.is_deltatable(uri):
            return None
        return DeltaTable(uri)
    except Exception as error:  # delta-rs raises OSError, DeltaError...
        raise LoadError(f"{uri}: cannot open the Delta table ({one_line(str(error))})") from None


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


def _commit_infos(dt: Any, first: int, last: int) -> list[dict[str, Any]] | None:
    """The commitInfo of versions first..last, newest first, read from a local log.

    Read from the commit files by version number: `history(limit=n)` on a table object
    that storage has moved past numbers the newest commits from the object's own version.
    None when the table is not local or a commit file is gone (checkpointed and cleaned).
    """
    root = local_root(str(dt.table_uri))
    if root is None:
        return None
    log_dir = Path(root) / "_delta_log"
    out: list[dict[str, Any]] = []
    for number in range(last, first - 1, -1):
        try:
            lines = (log_dir / f"{number:020d}.json").read_text(encoding="utf-8").splitlines()
        except OSError:
            return None
        info: dict[str, Any] = {}
        for line in lines:
            if '"commitInfo"' in line:
                info = dict(json.loads(line).get("commitInfo") or {})
                break
        out.append({**info, "version": number})
    return out


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
    newer = _commit_infos(dt, cached.version + 1, version) if cached is not None else None
    if cached is not None and cached.version < version and newer is not None:
        entries = newer
        files, oldest = dict(cached.files), cached.oldest_version
    else:  # first read, or the table was re-created: read it all
        entries = _commit_infos(dt, 0, version) or dt.history()
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


def arrow_schema(dt: Any) -> pa.Schema:
    """The table's schema as a pyarrow schema."""
    return pa.schema(dt.schema().to_arrow())


def _family(t: pa.DataType) -> str:
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "binary"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp_tz" if t.tz else "timestamp"
    return str(t)


def _compatible(table_type: pa.DataType, file_type: pa.DataType) -> bool:
    if table_type.equals(file_type):
        return True
    fam = _family(table_type)
    if fam != _family(file_type):
        return False
    if fam == "integer":
        return bool(file_type.bit_width <= table_type.bit_width)
    if fam == "float":
        return bool(file_type.bit_width <= table_type.bit_width)
    if fam == "decimal":
        return bool(
            file_type.scale == table_type.scale and file_type.precision <= table_type.precision
        )
    return fam in ("string", "binary", "boolean", "date", "timestamp", "timestamp_tz")


def check_schema(table_schema: pa.Schema | None, file_schema: pa.Schema, path: str) -> list[str]:
    """LoadError on a column whose type cannot go into the table; returns new columns."""
    if table_schema is None:
        return []
    existing = {f.name: f for f in table_schema}
    problems = []
    added = []
    for field in file_schema:
        current = existing.get(field.name)
        if current is None:
            added.append(field.name)
        elif not _compatible(current.type, field.type):
            problems.append(f"{field.name}: table has {current.type}, file has {field.type}")
    if problems:
        raise LoadError(
            f"{path}: incompatible type change ({'; '.join(problems)}); the table is "
            "unchanged. Migrate the table's column or cast the source column"
        )
    return added
