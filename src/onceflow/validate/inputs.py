"""What a validation reads, and its data fingerprint.

An input is a Delta table (read through its snapshot, never a glob of its folder), Parquet
files (a file, a folder, a glob), or data in memory (an Arrow table or dataset, a pandas
or polars data frame). Its fingerprint keys cached results:

    delta:<table id>@<version>[#<hash of batch ids>]   a Delta snapshot (scope run: its batches)
    parquet:<sha256 of the files' paths, checksums,    Parquet files (sidecar checksums when
             sizes and modification times>             there, else computed)
    file:<checksum>                                     one extracted file (the pre-load gate)
    memory:<hash of the schema and the rows' buffers>   an Arrow table or batch, a pandas
                                                       or polars frame, a batch reader
                                                       or scanner (read into a table:
                                                       the rules scan it several times)
                                                       (`arrow_hash`)
    None                                                an Arrow dataset (hashing would
                                                       read it), or no state store: not
                                                       cached

Arrow (0.1-0.2 s to import) is loaded only where data must pass through it (data in
memory, or a Delta table whose files are not plain Parquet): a fingerprint needs delta-rs
alone, a local Delta table is read by DuckDB's own Parquet reader, so a validation answered
from the cache stays well under a second as a whole command and a full one pays no Arrow.

`added_since(version)` reads the Delta log from `version` on and returns the data files
added, or None unless every commit since only added files (appends, and onceflow's marker
commits): then an incremental validation merges metrics of just those files.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from onceflow.errors import OnceflowError, ValidateError, plain_message, unopenable_table
from onceflow.lake import discover_path
from onceflow.locations import local_root
from onceflow.validate.engines.base import Engine


@dataclass
class Input:
    """Data to validate, how to register it in an engine, and its fingerprint."""

    label: str
    kind: str  # delta | parquet | memory
    fingerprint: str | None
    data: Any = None  # memory: the Arrow object; delta: the DeltaTable
    files: list[str] = field(default_factory=list)  # parquet
    source_id: str | None = None  # delta: the table id
    version: int | None = None  # delta: the snapshot version
    batch_ids: tuple[str, ...] | None = None  # delta, scope run: only these batches

    def register(self, engine: Engine, name: str) -> None:
        """Make the input queryable as `name` (this run's batches only, for scope run)."""

        if self.kind == "parquet":
            engine.register_parquet(name, self.files)
            return
        if self.kind == "memory":
            engine.register_arrow(name, self.data)
            return
        if self.batch_ids is None:
            self._register_snapshot(engine, name)
            return
        self._register_snapshot(engine, self.snapshot_name(name))
        if self.batch_ids:
            ids = ", ".join("'" + b.replace("'", "''") + "'" for b in self.batch_ids)
            where = f"_batch_id IN ({ids})"
        else:
            where = "FALSE"
        engine.create_view(name, f'SELECT * FROM "{self.snapshot_name(name)}" WHERE {where}')

    def snapshot_name(self, name: str) -> str:
        """The name under which `register(engine, name)` makes the whole snapshot
        queryable (a scope-run input's `name` is only its batches)."""
        return f"{name}__snapshot" if self.batch_ids is not None else name

    def _register_snapshot(self, engine: Engine, name: str) -> None:
        """The snapshot's data files (from its log, never a glob of the folder) through
        the engine's own Parquet reader: 5.2 s where the Arrow dataset took 7.1 s for the
        benchmark's 15 checks on 10M rows (bench/RESULTS.md). A table whose files do not
        hold its rows as they are (deletion vectors, column mapping, partition values,
        remote storage) is read through delta-rs's dataset instead."""
        files = self.snapshot_files()
        if files:
            engine.register_parquet(name, files, union_by_name=True)
            return
        from onceflow.warehouse import snapshot_dataset  # Arrow, only where needed

        dataset = snapshot_dataset(self.data)
        # no data file (every row deleted, or a table created empty): its columns, no rows
        engine.register_arrow(name, dataset.schema.empty_table() if files == [] else dataset)

    def snapshot_files(self) -> list[str] | None:
        """Local paths of the snapshot's data files, when reading them as plain Parquet
        gives exactly the table's rows; else None."""
        dt = self.data
        if local_root(str(dt.table_uri)) is None or dt.metadata().partition_columns:
            return None
        protocol = dt.protocol()
        features = set(protocol.reader_features or [])
        if protocol.min_reader_version == 2 or features & {"deletionVectors", "columnMapping"}:
            return None  # reader version 2 is column mapping
        paths = []
        for uri in dt.file_uris():
            # delta-rs lists a local table's files percent-encoded, with or without
            # file:// (`/wh/my%20warehouse/t/part-0.parquet`): DuckDB wants the path
            # itself. A URI with another scheme is not local: read through delta-rs.
            if "://" in uri and not uri.startswith("file://"):
                return None
            path = unquote(uri.removeprefix("file://"))
            if any(char in path for char in "*?[{"):
                return None  # DuckDB would take those characters for a glob
            paths.append(path)
        return paths

    def added_since(self, version: int) -> list[str] | None:
        """Data files added by the commits after `version`, when those commits only added
        files; None otherwise (a remove, a schema or protocol change, a missing commit
        file, a remote or partitioned table, a scope-run input)."""
        if self.kind != "delta" or self.batch_ids is not None or self.version is None:
            return None
        if version >= self.version:
            return None
        root = local_root(str(self.data.table_uri))
        if root is None or self.data.metadata().partition_columns:
            return None
        added: list[str] = []
        for number in range(version + 1, self.version + 1):
            path = Path(root) / "_delta_log" / f"{number:020d}.json"
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError:
                return None
            for line in lines:
                if not line.strip():
                    continue
                action = json.loads(line)
                if "add" in action:
                    added.append(os.path.join(root, unquote(action["add"]["path"])))
                elif any(k in action for k in ("remove", "metaData", "protocol", "cdc")):
                    return None
        return added

    def register_files(self, engine: Engine, name: str, files: list[str]) -> None:
        """Make some of a Delta table's data files queryable as `name` (as the snapshot
        is read; a column added later reads as NULL in older files)."""
        if self.snapshot_files() is not None:
            engine.register_parquet(name, files, union_by_name=True)
            return
        import pyarrow.dataset as ds

        from onceflow.warehouse import snapshot_dataset

        schema = snapshot_dataset(self.data).schema
        engine.register_arrow(name, ds.dataset(files, schema=schema, format="parquet"))


def open_delta(uri: str) -> Any:
    """onceflow.warehouse.open_table without importing the warehouse package (see the
    module doc): the DeltaTable at `uri`, None when there is none, ValidateError when
    it cannot be read."""
    if os.path.isfile(uri):  # a Delta table is a folder; delta-rs fails walking a file
        return None
    from deltalake import DeltaTable

    try:
        if not DeltaTable.is_deltatable(uri):
            return None
        return DeltaTable(uri)
    except Exception as error:  # delta-rs raises OSError, DeltaError...
        # whole: unopenable_table shortens delta-kernel's words, then cuts them
        text = " ".join(plain_message(str(error)).replace("↳", ":").split())
        raise ValidateError(unopenable_table(uri, text)) from None


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:40]


def delta_input(
    uri: str, *, batch_ids: tuple[str, ...] | None = None, label: str = "", table: Any = None
) -> Input:
    """The Delta table at `uri` (`table`, when the caller opened it); ValidateError when
    there is none."""
    dt = table if table is not None else open_delta(uri)
    if dt is None:
        raise ValidateError(f"no Delta table at {uri} (load it first, or check the path)")
    table_id = str(dt.metadata().id)
    version = int(dt.version())
    fingerprint = f"delta:{table_id}@{version}"
    if batch_ids is not None:
        fingerprint += "#" + _digest(sorted(batch_ids))
    return Input(
        label=label or uri,
        kind="delta",
        fingerprint=fingerprint,
        data=dt,
        source_id=table_id,
        version=version,
        batch_ids=batch_ids,
    )


def parquet_input(pattern: str) -> Input:
    """Parquet files of a file, folder or glob (committed ones, when they have sidecars)."""
    try:
        files = discover_path(pattern)
    except OnceflowError as error:
        raise ValidateError(str(error).replace("--path ", "")) from None
    if not files:
        raise ValidateError(f"{pattern}: no Parquet files to validate")
    damaged = [f for f in files if f.problem]
    if damaged:
        # its sidecar's checksum no longer describes its bytes: judging it would vouch for
        # data the loader refuses, and the checksum would key a stale cached answer
        more = f" (and {len(damaged) - 1} more damaged file(s))" if len(damaged) > 1 else ""
        raise ValidateError(
            f"{damaged[0].path}: {damaged[0].problem}{more}; re-extract it, or remove its "
            "sidecar (<name>_metadata.json) to judge the file as it is"
        )
    # a sidecar's checksum is trusted, not recomputed (that would read every byte again):
    # the size and modification time show a file replaced since, as the loader's own
    # checksum check does at load
    parts = sorted(f"{f.path}:{f.checksum}:{f.size}:{f.modified_time}" for f in files)
    return Input(
        label=pattern,
        kind="parquet",
        fingerprint="parquet:" + _digest(parts),
        files=[f.path for f in files],
    )


def memory_input(
    data: Any, *, fingerprint: str | None = None, label: str = "", hashed: bool = True
) -> Input:
    """Data in memory: an Arrow table/dataset, a batch reader or scanner (read once
    into a table), a pandas or polars (lazy) frame. Its fingerprint is `fingerprint`
    when given, else (`hashed`) the hash of its content."""
    module = type(data).__module__
    if module.startswith("polars"):
        if hasattr(data, "collect"):  # a LazyFrame: its result, as DuckDB cannot scan the plan
            data = data.collect()
        data = data.to_arrow()
        label = label or "polars data frame"
    elif module.startswith("pandas"):
        label = label or "pandas data frame"
    elif module.startswith("pyarrow"):
        data = _read_once(data, label)
    if fingerprint is None and hashed and data is not None:
        from onceflow.validate.arrow_hash import memory_fingerprint

        fingerprint = memory_fingerprint(data)
    return Input(label=label or "Arrow data", kind="memory", fingerprint=fingerprint, data=data)


def _read_once(data: Any, label: str) -> Any:
    """A stream that can be read only once (a RecordBatchReader, a Scanner), read into a
    table; other Arrow data as it is.

    The rules query their data several times (the fused aggregates, then uniqueness,
    samples, a retry): a stream scanned by the first query is empty, or an error, for
    the next, so rules after the first failed "already consumed" and failing rules had
    no samples. Reading it whole is what its user expects of a validation; data larger
    than memory is given as a dataset (scanned again by each query) or a path."""
    import pyarrow as pa

    dataset = sys.modules.get("pyarrow.dataset")  # loaded already when `data` is a Scanner
    try:
        if isinstance(data, pa.RecordBatchReader):
            return data.read_all()
        if dataset is not None and isinstance(data, dataset.Scanner):
            return data.to_table()
    except (pa.ArrowException, OSError) as error:
        what = label or type(data).__name__
        raise ValidateError(f"{what}: cannot read the {type(data).__name__} ({error})") from None
    return data


def resolve_input(
    data: Any, *, batch_ids: tuple[str, ...] | None = None, hashed: bool = True
) -> Input:
    """An Input from a path (Delta table, Parquet file/folder/glob) or data in memory
    (hashed for its fingerprint unless `hashed` is False: nothing will be cached)."""
    if isinstance(data, Input):
        return data
    if isinstance(data, str | os.PathLike):
        path = os.fspath(data)
        opened = open_delta(path)
        if opened is not None:
            return delta_input(path, batch_ids=batch_ids, table=opened)
        if os.path.isdir(path) or os.path.isfile(path) or any(c in path for c in "*?["):
            return parquet_input(path)
        raise ValidateError(f"{path}: no such Delta table or Parquet file")
    module = type(data).__module__
    if module.startswith(("pyarrow", "pandas", "polars")):
        return memory_input(data, hashed=hashed)
    raise ValidateError(
        f"cannot validate a {type(data).__name__}: give a Delta table or Parquet path, an "
        "Arrow table, or a pandas or polars data frame"
    )
