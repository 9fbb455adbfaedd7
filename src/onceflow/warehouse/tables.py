"""Delta tables: where they live, one way to open them, and reads through the snapshot.

Every read goes through a table's snapshot, never a glob of its folder: a killed writer
leaves data files that no commit references, and only the log says which files count.
"""

from __future__ import annotations

import contextlib
import errno
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    # imported where used: with pandas installed, pyarrow.dataset imports it (0.85 s), which
    # a validation answered from the cache never needs (goal: < 1 s for the command)
    import pyarrow.dataset

from onceflow.errors import LoadError, plain_message, unopenable_table
from onceflow.locations import local_root, table_location


def table_uri(warehouse: str, target: str) -> str:
    """Where a target table lives: a URI or absolute path as given, else under warehouse.

    Databricks `dbfs:/x` becomes the FUSE path `/dbfs/x` (delta-rs has no dbfs scheme);
    a Unity Catalog volume (`/Volumes/<catalog>/<schema>/<volume>/...`) is a local path.
    """
    return table_location(warehouse, target)


def snapshot_dataset(dt: Any) -> pa.dataset.Dataset:
    """The table's current snapshot as a pyarrow dataset (never a glob of the folder).

    A local table is read through Arrow's own filesystem: delta-rs's Python filesystem
    handler, called from Arrow's I/O threads, aborts the interpreter at exit now and then
    ("terminate called without an active exception", delta-rs #2184), and is slower.
    """
    import pyarrow.fs as pafs

    schema = arrow_schema(dt)  # without extension tags an older onceflow let in
    root = local_root(str(dt.table_uri))
    if root is None:
        dataset: pa.dataset.Dataset = dt.to_pyarrow_dataset(schema=schema)
        return dataset
    local = pafs.SubTreeFileSystem(root, pafs.LocalFileSystem())
    dataset = dt.to_pyarrow_dataset(filesystem=local, schema=schema)
    return dataset


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


def read_snapshot(dt: Any, columns: list[str] | None = None, filter: Any = None) -> pa.Table:
    """Columns of a table's current snapshot (`dt` is a DeltaTable or its snapshot dataset)."""
    import pyarrow.dataset

    dataset = dt if isinstance(dt, pyarrow.dataset.Dataset) else snapshot_dataset(dt)
    table: pa.Table = dataset.to_table(columns=columns, filter=filter)
    return table


def one_line(text: str) -> str:
    """A delta-rs error message on one line: without colours and its `↳` cause chain."""
    parts = [p.strip().lstrip("↳").strip() for p in plain_message(text).splitlines()]
    return ": ".join(p for p in parts if p)


def _os_words(code: int, *words: str) -> re.Pattern[str]:
    """The ways delta-rs (through object_store and Arrow) says errno `code`: DeltaError or
    OSError text, `(os error 28)`, Rust's Debug form `Os { code: 20, kind: NotADirectory,
    ... }`, `[errno 13]`, rarely the errno's name; `words` are its strerror text."""
    name = errno.errorcode.get(code, f"E{code}")
    said = "|".join(re.escape(w) for w in words)
    return re.compile(
        rf"{said}|os error {code}\b|errno {code}\b|\bOs \{{ code: {code}\b|\b{name}\b", re.I
    )


#: What of the machine a write can run into, with the words that say it. Each is fixed
#: where the table lives, not in the data, so it is not the file's failure. EDQUOT is a
#: full disk too (a quota is one); EPERM is what an immutable flag (`chattr +i`), CIFS or
#: a FUSE mount answer where a plain folder says EACCES; ENOTDIR a file where a folder of
#: the table's path should be, EISDIR a folder where the table writes a file. The first
#: found in this order names the problem: a quota's "os error 122" is no permission's.
_MACHINE_PROBLEMS: tuple[tuple[int, re.Pattern[str], str], ...] = tuple(
    (code, _os_words(code, *words), problem)
    for code, words, problem in (
        (errno.ENOSPC, ("No space left on device",), "disk full"),
        (errno.EDQUOT, ("Disk quota exceeded", "QuotaExceeded"), "disk quota exceeded"),
        (errno.EROFS, ("Read-only file system",), "read-only file system"),
        (errno.EACCES, ("Permission denied",), "no permission"),
        (errno.EPERM, ("Operation not permitted",), "not permitted"),
        (errno.ENOTDIR, ("Not a directory", "NotADirectory"), "not a folder"),
        (errno.EISDIR, ("Is a directory", "IsADirectory"), "a folder in the way"),
    )
)

#: `write_problem`'s coarser words, which its callers (the quarantine) map to a fix
_COARSE = {"disk quota exceeded": "disk full", "not permitted": "no permission"}


def write_problem(error: BaseException) -> str | None:
    """What of the machine a failed Delta write ran into, in a few words (`disk full`,
    `read-only file system`, `no permission`), or None for anything else: those are
    fixed where the table lives, not in the data. A quota is a full disk, EPERM (an
    immutable folder) no permission; a file or folder in the way of the table's path is
    None here (`write_problem_cause` names it)."""
    found = write_problem_cause(error)
    if found is None:
        return None
    problem = _COARSE.get(found[0], found[0])
    return problem if problem in ("disk full", "read-only file system", "no permission") else None


def write_problem_cause(error: BaseException) -> tuple[str, BaseException] | None:
    """What of the machine a failed Delta write ran into and the error of the chain that
    says it: `disk full`, `disk quota exceeded`, `read-only file system`, `no permission`
    (EACCES), `not permitted` (EPERM), `not a folder` (ENOTDIR), `a folder in the way`
    (EISDIR); None for anything else. The chain is read whole (the error, what it was
    raised from or during): pyarrow's writer, closed after an ENOSPC, raises a
    RuntimeError ("file metadata is only available after writer close") over the OSError
    that says what happened."""
    chain: list[BaseException] = []
    at: BaseException | None = error
    while at is not None and len(chain) < 8 and all(at is not e for e in chain):
        chain.append(at)
        at = at.__cause__ or at.__context__
    for code, pattern, problem in _MACHINE_PROBLEMS:
        for cause in chain:
            if getattr(cause, "errno", None) == code or pattern.search(plain_message(str(cause))):
                return problem, cause
    return None


def open_table(uri: str, storage_options: dict[str, str] | None = None) -> Any:
    """The DeltaTable at `uri`, or None when there is no table yet.

    A path that cannot be read as a table (a file in its place, no permission) raises
    LoadError with delta-rs's reason on one line.
    """
    from deltalake import DeltaTable

    try:
        if not DeltaTable.is_deltatable(uri, storage_options):
            return None
        return DeltaTable(uri, storage_options=storage_options)
    except Exception as error:  # delta-rs raises OSError, DeltaError...
        found = write_problem_cause(error)
        if found is not None:
            # the machine's (a folder it may not read, a file in the way), not the log's:
            # fixed where the table lives, so it does not use up a file's retries
            said = one_line(str(found[1]))[:300]
            raise LoadError(
                f"{uri}: cannot open the Delta table: {found[0]} ({said}); fix that where "
                "the table lives, then load again: the table is unchanged",
                environment=True,
            ) from None
        raise LoadError(unopenable_table(uri, one_line(str(error)))) from None


def create_table(
    uri: str,
    data: pa.Table,
    *,
    storage_options: dict[str, str] | None = None,
    commit_properties: Any = None,
) -> int:
    """Create the table at `uri` with `data` as its first commit; its version.

    A table created meanwhile by someone else is an error, never appended to: the caller
    planned against no table.
    """
    from deltalake import write_deltalake

    write_deltalake(
        uri,
        data,
        mode="error",
        commit_properties=commit_properties,
        storage_options=storage_options,
    )
    created = open_table(uri, storage_options)
    assert created is not None
    return int(created.version())


_EXTENSION_KEYS = ("ARROW:extension:name", "ARROW:extension:metadata")


def _untagged(fields: list[dict[str, Any]], tags: dict[str, str], prefix: str = "") -> None:
    """Remove Arrow's extension tags from Delta schema fields (nested ones too, in place),
    noting in `tags` each tagged column and its extension name."""
    for field in fields:
        meta = field.get("metadata") or {}
        if "ARROW:extension:name" in meta:
            tags[prefix + field["name"]] = meta["ARROW:extension:name"]
        field["metadata"] = {k: v for k, v in meta.items() if k not in _EXTENSION_KEYS}
        kind = field.get("type")
        while isinstance(kind, dict):  # arrays and maps of structs hold fields too
            if kind.get("type") == "struct":
                _untagged(kind["fields"], tags, prefix + field["name"] + ".")
                break
            kind = kind.get("elementType") or kind.get("valueType")


def arrow_schema(dt: Any) -> pa.Schema:
    """The table's schema as a pyarrow schema, without Arrow extension types.

    An older onceflow let extension types (PostgreSQL `uuid`, `json`) into a
    table: delta-rs stored their storage type (binary, string) with the extension's name
    in the column's metadata. Arrow reads a json-tagged string back, so the tag is just
    dropped here; a uuid tag on binary it refuses (`Invalid storage type for UuidType:
    binary`), in the table's schema and in every data file delta-rs wrote, so such a
    table is refused with the way out: a rebuild from the lake, which now loads uuid
    as its text.
    """
    from deltalake import Schema

    raw = json.loads(dt.schema().to_json())
    tags: dict[str, str] = {}
    _untagged(raw["fields"], tags)
    if not tags:
        return pa.schema(dt.schema().to_arrow())
    unreadable = sorted(name for name, tag in tags.items() if tag == "arrow.uuid")
    if unreadable:
        uri = str(dt.table_uri)
        raise LoadError(_uuid_table_message(local_root(uri) or uri, unreadable))
    return pa.schema(Schema.from_json(json.dumps(raw)).to_arrow())


def _uuid_table_message(uri: str, columns: list[str]) -> str:
    names = ", ".join(repr(c) for c in columns)
    return (
        f"{uri}: column(s) {names} hold PostgreSQL uuid values as 16-byte binary tagged as "
        "Arrow's uuid type, as an older onceflow loaded them; Arrow refuses to read that "
        "tag on Delta's binary (`Invalid storage type for UuidType: binary`), in the "
        "table's schema and in its data files. Rebuild the table from the lake, which "
        "loads uuid as its text (`a0eebc99-9c0b-...`): delete the table's folder and run "
        "`onceflow load --tables TABLE`"
    )


def commit_infos(dt: Any, first: int, last: int) -> list[dict[str, Any]] | None:
    """The commitInfo of versions first..last, newest first, read from a local log.

    Read from the commit files by version number: `history(limit=n)` on a table object
    that storage has moved past numbers the newest commits from the object's own version.
    None when the table is not local or a commit file is gone (checkpointed and cleaned).
    """
    root = local_root(str(dt.table_uri))
    return None if root is None else log_commit_infos(root, first, last)


def log_commit_infos(root: str | Path, first: int, last: int) -> list[dict[str, Any]] | None:
    """`commit_infos` of the local table at `root` (a folder): None when a commit file of
    first..last is gone. Takes no table object, so a later read needs no open table."""
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


def widen_table(dt: Any, types: dict[str, pa.DataType], commit_properties: Any) -> int:
    """Rewrite the table with `types` for some of its columns, as one overwrite commit;
    returns its version.

    delta-rs 1.6 has no type widening (the protocol's `typeWidening` feature changes a
    type without rewriting: it refuses the `delta.enableTypeWidening` property, and a
    merge of schemas refuses `decimal(10,2)` -> `decimal(14,4)`), so every row is read
    through the snapshot and written again with the wider types, streamed a batch at a
    time. The values, the audit columns and the file markers (application transactions
    live in the snapshot, not in the data files) are unchanged; the old versions stay
    readable until vacuumed, and a `RESTORE` to one of them restores its types too.
    Committed against `dt`'s snapshot: `commit_properties` should refuse to rebase
    (max_commit_retries=0), so a concurrent commit fails as a conflict. A kill leaves the
    narrow table and unreferenced data files, which `fix-inconsistencies` removes.
    """
    from deltalake import write_deltalake

    from onceflow.warehouse.schema import widen_column

    current = arrow_schema(dt)
    schema = pa.schema([f.with_type(types.get(f.name, f.type)) for f in current])
    dataset = snapshot_dataset(dt)
    # one row group at a time: the dataset's own scan (`dataset.to_batches`) reads ahead
    # of a slower consumer such as this write without bound (apache/arrow#39808): 1.5 GB
    # of Arrow memory for a 10M-row table against 0.2 GB this way (bench/RESULTS.md, Load)
    batches = (
        pa.RecordBatch.from_arrays(
            [widen_column(b.column(i), f.type) for i, f in enumerate(schema)], schema=schema
        )
        for fragment in dataset.get_fragments()
        for part in fragment.split_by_row_group()
        for b in part.to_batches(schema=dataset.schema, columns=schema.names)
    )
    write_deltalake(
        dt,
        pa.RecordBatchReader.from_batches(schema, batches),
        mode="overwrite",
        schema_mode="overwrite",
        commit_properties=commit_properties,
    )
    dt.update_incremental()
    return int(dt.version())
