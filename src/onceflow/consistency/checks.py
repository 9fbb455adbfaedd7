"""validate-consistency: compare the index (the state store) with the truth (sidecars,
Delta logs, the files on disk).

Checks: orphaned `processing` file records (their loader's lock is gone, or still there but
stale: lease expired, pid dead or recycled), tables whose files failed to load although
their run is marked completed, every other file that failed to load, stale locks, files a
table holds that the tracker does not know and tracker entries for files the table does
not hold, lake files whose content differs from what the table holds (re-extracted, not
loaded yet), committed lake files whose data no longer matches their sidecar (by size;
by checksum too for files the table does not hold yet), append tables holding one file's rows twice,
tracker rows of tables that no longer exist, sidecars that disagree with the extraction
state (or, by record count, with their Parquet footer), extractions left `running` by
a process that is gone, tables that cannot be opened (a damaged log file) or read
(reported each with its fix, the other tables still checked),
temp files left by a crash, lake data files no sidecar commits (an interrupted
extraction's output: `run`, `load` and `status` report them too) and Delta data files no
commit references (including delta-rs `*.parquet#N` temp files), the last three only when
older than a safe age (default 1 hour) so a running writer's files are never touched.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from onceflow.config import Config
from onceflow.errors import ConfigError, LoadError
from onceflow.lake import (
    TEMP_MARKER,
    SourceFile,
    TableScan,
    Uncommitted,
    discover_table_files,
    file_checksum,
    inspect_sidecar,
    layout_day,
    scan_table_files,
    table_folder,
)
from onceflow.load import LoadTarget, config_targets, tracked_targets
from onceflow.state import ExtractionRecord, RunRecord, Store, open_store
from onceflow.state.files import FILE_COMPLETED, FILE_FAILED, FileRecord
from onceflow.state.locks import LockRecord
from onceflow.warehouse import open_table, snapshot_dataset
from onceflow.warehouse.duck import duck
from onceflow.warehouse.markers import TableMarkers, checksum_code, read_markers

DEFAULT_SAFE_AGE_SECONDS = 3600.0


#: How the text report and the JSON `summary` name each kind of issue.
ISSUE_LABELS = {
    "orphaned_processing": "Orphaned processing record",
    "commit_not_tracked": "File the table holds that the tracker does not know",
    "tracked_without_commit": "Tracker entry for a file the table does not hold",
    "lake_file_changed": "Lake file differs from the version the table holds",
    "damaged_lake_file": "Committed lake file whose data or sidecar was damaged",
    "file_loaded_twice": "Table holds one file's rows twice",
    "tracked_table_gone": "Tracker rows of a table that no longer exists",
    "completed_with_failed_files": "Table marked as completed but has failed files",
    "failed_files": "Table has files that failed to load",
    "stale_lock": "Stale lock",
    "uncommitted_delta_file": "Delta data file no commit references",
    "sidecar_mismatch": "Sidecar disagrees with the state",
    "interrupted_extraction": "Extraction left running by a process that is gone",
    "temp_file": "Temp file left by an interrupted write",
    "unreadable_table": "Table that cannot be opened or read",
    "uncommitted_lake_file": "Lake data file no sidecar commits",
    "load_in_progress": "Load in progress",
    "held_file_gone": "Table holds a file no longer in the lake",
    "external_restore": "Table restored by another writer",
}
#: Not an inconsistency: a live loader is between a step and its tracker update. Listed
#: apart (`in_progress`), never counted.
IN_PROGRESS = "load_in_progress"
#: Kinds that are about the file tracker (its own section of the report).
FILE_TRACKER_KINDS = (
    "orphaned_processing",
    "commit_not_tracked",
    "tracked_without_commit",
    "tracked_table_gone",
)
#: Kinds that never make a table inconsistent: they are about the pipeline or the lake.
NON_TABLE_KINDS = ("stale_lock", "temp_file")


@dataclass(frozen=True)
class Issue:
    """One inconsistency: its kind, what it is about, and what is wrong.

    `table` is the table it concerns (a config table key, or a tracker target not in the
    config), so the report can group per table; `extra` adds kind-specific JSON keys.
    """

    kind: str
    subject: str
    detail: str
    table: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """The one-line headline of the text report."""
        if self.kind == "completed_with_failed_files":
            n = int(self.extra.get("failed_files", 0))
            return f"Table marked as completed but has {n} failed file{'s' if n != 1 else ''}"
        if self.kind == "failed_files":
            n = int(self.extra.get("failed_files", 0))
            return f"Table has {n} file{'s' if n != 1 else ''} that failed to load"
        return f"{ISSUE_LABELS.get(self.kind, self.kind)}: {self.subject}"

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: kind, subject, detail (as always), plus table, summary, extra."""
        return {
            "kind": self.kind,
            "subject": self.subject,
            "detail": self.detail,
            "table": self.table,
            "summary": self.summary(),
            **self.extra,
        }


def config_load_targets(config: Config, store: Store) -> list[LoadTarget]:
    """The load targets of every config table; without config tables (standalone loads),
    the tables the tracker knows of this pipeline."""
    return config_targets(config) if config.tables else tracked_targets(store, config.pipeline)


#: Each config table's lake scan by its key: validate-consistency scans a folder once
#: for all its checks (a damaged file's warning is logged by the scan, once, not per check)
Scans = Mapping[str, TableScan]


def lake_scans(config: Config) -> dict[str, TableScan]:
    """One scan of each config table's lake folder."""
    lake = config.resolve(config.lake)
    return {t.key: scan_table_files(lake, t.source, t.display_name) for t in config.tables}


def _scan(config: Config, key: str, scans: Scans | None) -> TableScan:
    if scans is not None and key in scans:
        return scans[key]
    table = config.table(key)
    return scan_table_files(config.resolve(config.lake), table.source, table.display_name)


def lake_files(config: Config, tgt: LoadTarget, scans: Scans | None = None) -> list[SourceFile]:
    """The committed lake files of a config table (none for a standalone load's table)."""
    if not config.tables:
        return []
    if scans is None:
        table = config.table(tgt.key)
        return discover_table_files(config.resolve(config.lake), table.source, table.display_name)
    return list(_scan(config, tgt.key, scans).files)


def _live_loader(store: Store, tgt: LoadTarget) -> LockRecord | None:
    """The table's loader, when one holds its lock and is alive (not stale)."""
    holder = store.locks.holder(tgt.lock_name)
    return holder if holder is not None and holder.stale_reason() is None else None


def table_vs_tracker(store: Store, tgt: LoadTarget, files: list[SourceFile]) -> list[Issue]:
    """What the table holds against the tracker, and against the lake's current files.

    A live loader of the table is between two steps of its protocol, each of which the
    tracker follows (a commit, then its tracker update; a rewind, then the files it undid
    back to pending): what differs because of it is `load_in_progress`, not an
    inconsistency. Once its holder is gone (a stale lock), the same states are reported
    as inconsistencies, with the orphaned records and the stale lock."""
    held = read_markers(open_table(tgt.uri), [f.file_id for f in files])
    loader = _live_loader(store, tgt)
    tracked = {r.file_id: r for r in store.files.find(tgt.uri)}
    extra = {"target": tgt.target, "uri": tgt.uri}
    issues = [external_restore_issue(tgt, held)] if held.repairs else []
    for file_id in held.held_ids():
        rec = tracked.get(file_id)
        if rec is None or rec.status != FILE_COMPLETED:
            status = rec.status if rec else "not tracked"
            if loader is not None and rec is not None and rec.owner_token == loader.token:
                issues.append(_in_progress(tgt, file_id, "committed; its tracker update", loader))
                continue
            issues.append(
                Issue(
                    "commit_not_tracked",
                    file_id,
                    f"{tgt.key}: the table holds it, tracker says {status}",
                    table=tgt.key,
                    extra=extra,
                )
            )
    for rec in tracked.values():
        if rec.status == FILE_COMPLETED and not held.held.get(rec.file_id):
            if loader is not None:
                issues.append(
                    _in_progress(tgt, rec.file_id, "undone by a rewind; its replay", loader)
                )
                continue
            issues.append(
                Issue(
                    "tracked_without_commit",
                    rec.file_id,
                    f"{tgt.key}: tracker says completed (version {rec.delta_version}) but "
                    "the table does not hold it",
                    table=tgt.key,
                    extra={**extra, "delta_version": rec.delta_version},
                )
            )
    for file in files:
        code = held.held.get(file.file_id, 0)
        if file.data_missing and code:
            continue  # the table holds it: `held_files_gone` reports it
        if not file.problem and code != checksum_code(file.checksum):
            file = _checksummed(file)  # the next load reads it: read it now too
        if file.problem:
            issues.append(_damaged(tgt, file))
        elif code and code != checksum_code(file.checksum):
            issues.append(
                Issue(
                    "lake_file_changed",
                    file.file_id,
                    f"{tgt.key}: the lake file (checksum {str(file.checksum)[:12]}...) is not "
                    "the version the table holds; the next load replaces it",
                    table=tgt.key,
                    extra={**extra, "path": file.path, "checksum": file.checksum},
                )
            )
    return issues


def external_restore_issue(tgt: LoadTarget, held: TableMarkers) -> Issue:
    """Another writer's RESTORE the table's markers do not reflect yet: the files it took
    back are still marked as held, so until a load corrects them it is reported (the
    corrected markers also give each file's own tracker issue)."""
    undone = sorted(f for f, code in held.repairs.items() if not code)
    changed = sorted(f for f, code in held.repairs.items() if code)
    what = "; ".join(r.describe() for r in held.restores)
    detail = (
        f"{tgt.key}: {what}: it took back {len(undone)} file(s) onceflow had loaded"
        + (f" ({', '.join(undone)})" if undone else "")
        + (f" and brought back older content of {len(changed)}" if changed else "")
        + f", while the table's markers still say it holds them; run `onceflow load "
        f"--tables {tgt.key}` to load them again (it corrects the markers first)"
    )
    return Issue(
        "external_restore",
        tgt.key,
        detail,
        table=tgt.key,
        extra={
            "target": tgt.target,
            "uri": tgt.uri,
            "restores": [{"version": r.version, "restored": r.to_version} for r in held.restores],
            "files": undone + changed,
        },
    )


def table_issues(
    config: Config, store: Store, tgt: LoadTarget, safe_age: float, scans: Scans | None = None
) -> list[Issue]:
    """Everything checked against one table's Delta log. A table that cannot be opened
    (a damaged log file) is one issue with its fix, and its lake files' own damage is
    still reported: one bad table never hides the other tables' report."""
    found = lake_files(config, tgt, scans)
    try:
        issues = table_vs_tracker(store, tgt, found)
        issues += held_files_gone(config, tgt, found)
        issues += files_loaded_twice(tgt)
        issues += [
            Issue(
                "uncommitted_delta_file",
                str(path),
                f"{tgt.key}: data file no commit references",
                table=tgt.key,
            )
            for path in delta_garbage(tgt, safe_age)
        ]
    except LoadError as error:
        return [unreadable_table(tgt, error), *(_damaged(tgt, f) for f in found if f.problem)]
    return issues


def unreadable_table(tgt: LoadTarget, error: LoadError) -> Issue:
    """A table whose log cannot be opened or whose data Arrow cannot read; the error says
    how to get it back (onceflow.errors.unopenable_table)."""
    return Issue(
        "unreadable_table",
        tgt.key,
        str(error),
        table=tgt.key,
        extra={"target": tgt.target, "uri": tgt.uri},
    )


def _damaged(tgt: LoadTarget, file: SourceFile) -> Issue:
    return Issue(
        "damaged_lake_file",
        file.file_id,
        # an unreadable sidecar's problem names its re-extraction command already
        f"{tgt.key}: {file.problem}"
        + ("" if "re-extract" in (file.problem or "") else "; re-extract its window"),
        table=tgt.key,
        extra={"target": tgt.target, "uri": tgt.uri, "path": file.path, "problem": file.problem},
    )


def held_files_gone(config: Config, tgt: LoadTarget, files: list[SourceFile]) -> list[Issue]:
    """Files a config table's Delta table holds whose data file is no longer in the lake.

    Found from the table's own markers, so a store that forgot the extractions (after
    `reset-state`) does not hide them. Such a table cannot be rewound over the file: a
    late or re-extracted window before it would fail to load."""
    if not config.tables:  # a standalone load's files are not in the lake
        return []
    held = read_markers(open_table(tgt.uri), [f.file_id for f in files])
    # a sidecar whose data file is gone commits a file the lake cannot give again
    present = {f.file_id for f in files if not f.data_missing}
    lake = Path(config.resolve(config.lake))
    issues = []
    for file_id in held.held_ids():
        if file_id in present or (lake / file_id).exists():
            continue  # in the lake (with a damaged sidecar, it is reported as such)
        day = layout_day(Path(file_id))
        repair = (
            f"re-extract its window (`onceflow extract --date {day} --tables {tgt.key} "
            "--force-reprocess`) or put the file back"
            if day
            else "put the file back"
        )
        issues.append(
            Issue(
                "held_file_gone",
                file_id,
                f"{tgt.key}: the table holds it, but its data file is no longer in the lake "
                f"({lake / file_id}); a replay over it (a late or re-extracted earlier "
                f"window) cannot run. To repair it, {repair}",
                table=tgt.key,
                extra={"target": tgt.target, "uri": tgt.uri, "path": str(lake / file_id)},
            )
        )
    return issues


def _in_progress(tgt: LoadTarget, file_id: str, step: str, loader: LockRecord) -> Issue:
    return Issue(
        IN_PROGRESS,
        file_id,
        f"{tgt.key}: {step} is in progress (held by {loader.describe()})",
        table=tgt.key,
        extra={"target": tgt.target, "uri": tgt.uri, "lock": loader.name},
    )


def _checksummed(file: SourceFile) -> SourceFile:
    """The file, with a problem when its bytes no longer hash to its sidecar's checksum.

    Only files the table does not hold as they are (new or re-extracted) are read: their
    next load reads them anyway, and a damaged one would fail it. Files the table holds
    are compared by size only: their content is in the table already, and reading the
    whole lake on every check would cost what the load saves (a replay reads them again,
    verified)."""
    try:
        actual = file_checksum(Path(file.path))
    except OSError as error:
        return replace(file, problem=f"the data file cannot be read ({error.strerror})")
    if file.checksum and actual != file.checksum:
        return replace(
            file,
            problem=(
                f"checksum {actual[:16]}... differs from its sidecar's "
                f"({file.checksum[:16]}...): the file changed after extraction"
            ),
        )
    return file


def files_loaded_twice(tgt: LoadTarget) -> list[Issue]:
    """A file identity whose rows are in the table under two batches (a file loaded twice,
    e.g. under two paths before identities were kept). Every strategy writes a file's rows
    under its one batch id, and replaces them whole, so this holds for all of them."""
    dt = open_table(tgt.uri)
    if dt is None:
        return []
    try:
        dataset = snapshot_dataset(dt)
    except LoadError as error:  # a table an older onceflow wrote with a uuid tag: the fix
        return [unreadable_table(tgt, error)]
    if not {"_source_file", "_batch_id"} <= set(dataset.schema.names):
        return []
    with duck() as con:
        con.register("t", dataset.to_table(columns=["_source_file", "_batch_id"]))
        rows = con.execute(
            "SELECT ident, count(DISTINCT _batch_id) AS batches, count(*) AS n FROM ("
            "SELECT array_to_string(list_slice(string_split(_source_file, '/'), -5, -1), '/') "
            "AS ident, _batch_id FROM t) GROUP BY ident HAVING count(DISTINCT _batch_id) > 1 "
            "ORDER BY ident"
        ).fetchall()
    return [
        Issue(
            "file_loaded_twice",
            ident,
            f"{tgt.key}: {n} rows of this file under {batches} batches",
            table=tgt.key,
            extra={"target": tgt.target, "uri": tgt.uri, "batches": batches, "rows": n},
        )
        for ident, batches, n in rows
    ]


def gone_tables(store: Store, config: Config, targets: list[LoadTarget]) -> list[Issue]:
    """Tracker rows of this pipeline for a table location the config no longer has and
    where no Delta table exists (a moved project leaves its old location behind)."""
    current = {t.uri for t in targets}
    seen: dict[str, int] = {}
    for rec in store.files.find(pipeline=config.pipeline):
        if rec.target_uri not in current:
            seen[rec.target_uri] = seen.get(rec.target_uri, 0) + 1
    issues = []
    for uri, n in sorted(seen.items()):
        try:
            gone = open_table(uri) is None
        except LoadError:  # a table is there, if unreadable: its rows are not orphans
            gone = False
        if gone:
            issues.append(
                Issue(
                    "tracked_table_gone",
                    uri,
                    f"{n} tracker row(s) for a table that no longer exists there",
                    extra={"uri": uri, "rows": n},
                )
            )
    return issues


def delta_garbage(tgt: LoadTarget, safe_age: float) -> list[Path]:
    """Data files in the table folder that no commit references, older than safe_age."""
    root = Path(tgt.uri)
    if "://" in tgt.uri or not (root / "_delta_log").is_dir():
        return []
    referenced: set[str] = set()
    dt = open_table(tgt.uri)
    if dt is not None:
        referenced.update(str(p) for p in dt.get_add_actions(flatten=True).column("path"))
    for commit in (root / "_delta_log").glob("*.json"):
        for line in commit.read_text(encoding="utf-8").splitlines():
            try:
                action = json.loads(line)
            except ValueError:
                continue
            for kind in ("add", "remove"):
                if kind in action and "path" in action[kind]:
                    referenced.add(action[kind]["path"])
    referenced |= {unquote(p) for p in referenced}
    now = time.time()
    garbage = []
    for path in root.rglob("*"):
        if "_delta_log" in path.parts or not path.is_file():
            continue
        if ".parquet" not in path.name:
            continue
        rel = str(path.relative_to(root))
        if _inside_another_table(root, path):
            continue  # another Delta table's file, not garbage of this one
        if rel in referenced:
            continue
        if now - path.stat().st_mtime >= safe_age:
            garbage.append(path)
    return garbage


def _inside_another_table(root: Path, path: Path) -> bool:
    """Whether `path` sits in a Delta table nested in `root`'s folder (a folder between
    them has its own `_delta_log`)."""
    folder = path.parent
    while folder != root and root in folder.parents:
        if (folder / "_delta_log").is_dir():
            return True
        folder = folder.parent
    return False


def temp_files(config: Config, safe_age: float) -> list[Path]:
    """The temp files in the folders of the config's tables older than `safe_age`. Not
    the whole lake: another pipeline sharing it holds no lock of this one, so its running
    extraction's temp file (whose mtime may stand still for over an hour between row
    groups) would be taken for garbage."""
    lake = config.resolve(config.lake)
    now = time.time()
    found: list[Path] = []
    for folder in sorted({table_folder(lake, t.source, t.display_name) for t in config.tables}):
        if not folder.is_dir():
            continue
        found += [
            p
            for p in folder.rglob(f"*{TEMP_MARKER}*")
            if p.is_file() and now - p.stat().st_mtime >= safe_age
        ]
    return found


def uncommitted_lake_files(
    config: Config, safe_age: float, scans: Scans | None = None
) -> list[tuple[str, Uncommitted]]:
    """Data files of the config's tables that no complete sidecar commits, with their
    table's key, older than safe_age (a younger one may be a running extraction's: it
    renames its data file into place, then writes the sidecar that commits it)."""
    if not config.tables:
        return []
    now = time.time()
    found = []
    for table in config.tables:
        for file in _scan(config, table.key, scans).uncommitted:
            try:
                age = now - os.stat(file.path).st_mtime
            except OSError:  # gone meanwhile: its extraction finished or removed it
                continue
            if age >= safe_age:
                found.append((table.key, file))
    return found


def reextract_command(key: str, file: Uncommitted) -> str:
    """The command that extracts an uncommitted file's window again, committed."""
    day = f" --date {file.day}" if file.day else ""
    return f"onceflow extract{day} --tables {key} --force-reprocess"


def held_uncommitted_files(
    config: Config,
    store: Store,
    targets: list[LoadTarget],
    safe_age: float,
    scans: Scans | None = None,
) -> list[tuple[str, Uncommitted]]:
    """Data files without a complete sidecar, younger than safe_age, that their table holds
    (its marker), while no extraction can be running: a loaded file that lost its commit
    marker (deleted, or a re-extraction killed between withdrawing it and its rename).

    Age is what tells an extraction in progress from a leftover, but not for these: an
    extraction only leaves a held file without its sidecar for the instant between the
    removal and the rename, and only while it holds the pipeline lock."""
    if not config.tables or _extraction_may_run(store, config):
        return []
    now = time.time()
    by_key = {t.key: t for t in targets}
    found = []
    for table in config.tables:
        tgt = by_key.get(table.key)
        young = []
        for file in _scan(config, table.key, scans).uncommitted:
            try:
                if now - os.stat(file.path).st_mtime < safe_age:
                    young.append(file)
            except OSError:
                continue
        if tgt is None or not young:
            continue
        held = read_markers(open_table(tgt.uri), [f.file_id for f in young])
        found += [(table.key, f) for f in young if held.held.get(f.file_id)]
    return found


def live_extraction_lock(store: Store, config: Config) -> LockRecord | None:
    """A live holder of the pipeline lock or of one of its run locks (an extraction or a
    run may be writing to the lake), if any."""
    name = config.pipeline_lock_name
    for lock in store.locks.find():
        if (lock.name == name or lock.name.startswith(f"{name}@")) and not lock.stale_reason():
            return lock
    return None


def _extraction_may_run(store: Store, config: Config) -> bool:
    """Whether a live process holds the pipeline lock or one of its run locks."""
    return live_extraction_lock(store, config) is not None


def _uncommitted_issues(
    config: Config,
    store: Store,
    targets: list[LoadTarget],
    safe_age: float,
    scans: Scans,
    *,
    held: bool = True,
) -> list[Issue]:
    old = uncommitted_lake_files(config, safe_age, scans)
    lost = held_uncommitted_files(config, store, targets, safe_age, scans) if held else []
    return [
        Issue(
            "uncommitted_lake_file",
            file.path,
            f"{key}: {file.reason}; "
            + (
                "the table holds it (it was loaded), so its commit marker was lost after its load; "
                if (key, file) in lost
                else ""
            )
            + f"a load does not take it: re-extract its window "
            f"(`{reextract_command(key, file)}`); fix-inconsistencies removes the file "
            "when no extraction is running and nothing holds or names it (a table that "
            "loaded it, an extraction record)",
            table=key,
            extra={"file_id": file.file_id, "command": reextract_command(key, file)},
        )
        for key, file in [*old, *lost]
    ]


Runs = list[tuple[RunRecord, dict[str, ExtractionRecord]]]


def pipeline_runs(store: Store, config: Config) -> Runs:
    """The pipeline's runs with their extractions, read once for every run-level check."""
    return [
        (run, store.extractions.of_run(run.run_id))
        for run in store.runs.find(config.pipeline, 1000)
    ]


def sidecar_issues(runs: Runs) -> list[Issue]:
    """Completed extractions whose sidecar disagrees with the state or with its data file,
    each with the command that extracts the window again. A sidecar edited by hand (its
    record count, its window moved) still names the file's checksum: only comparing its
    other fields finds it."""
    issues = []
    for run, extractions in runs:
        for key, ext in extractions.items():
            if ext.status != "completed" or not ext.file_path:
                continue
            problem = _sidecar_problem(ext)
            if problem:
                day = layout_day(Path(ext.file_path))
                redo = (
                    f"; re-extract its window (`onceflow extract --date {day} --tables {key} "
                    "--force-reprocess`)"
                    if day
                    else ""
                )
                issues.append(
                    Issue(
                        "sidecar_mismatch",
                        f"{run.run_id}:{key}",
                        f"{ext.file_path}: {problem}{redo}",
                        table=key,
                        extra={"run_id": run.run_id, "problem": problem},
                    )
                )
    return issues


def _sidecar_problem(ext: ExtractionRecord) -> str | None:
    """What of a completed extraction's sidecar disagrees with the state or the data file:
    its completeness, checksum, the file's size, the window, the record count (the
    state's, and the Parquet footer's: the footer alone is read)."""
    path = Path(str(ext.file_path))
    sidecar, unreadable = inspect_sidecar(path)
    if unreadable is not None:
        return f"its sidecar {unreadable}"
    if sidecar is None or sidecar.get("extraction_complete") is not True:
        return "no complete sidecar"
    if ext.checksum and sidecar.get("checksum") != ext.checksum:
        return "sidecar checksum differs from the state"
    if not path.exists():
        return "data file missing"
    if path.stat().st_size != sidecar.get("file_size_bytes"):
        return "file size differs from its sidecar"
    window = (sidecar.get("window_start"), sidecar.get("window_end"))
    if ext.window_start and ext.window_end and window != (ext.window_start, ext.window_end):
        return (
            f"its sidecar's window {window[0]} → {window[1]} differs from the state's "
            f"({ext.window_start} → {ext.window_end})"
        )
    counted = sidecar.get("record_count")
    if ext.record_count is not None and counted != ext.record_count:
        return f"its sidecar's record_count {counted} differs from the state's ({ext.record_count})"
    try:
        rows = _footer_rows(path)
    except Exception:  # pyarrow raises ArrowInvalid, OSError...
        # the data file is damaged, not the sidecar: its checksum tells (a damaged lake
        # file of its table), and its load fails it by name
        return None
    if counted != rows:
        return f"its sidecar's record_count {counted} differs from the file's {rows} rows"
    return None


def _footer_rows(path: Path) -> int:
    import pyarrow.parquet as pq  # Arrow only once a sidecar is to be compared

    with pq.ParquetFile(path) as footer:
        return int(footer.metadata.num_rows)


def _first_line(error: str | None, path: str) -> str:
    """A load error, short: its first line without the file name the report already shows."""
    text = (error or "failed").splitlines()[0] if error else "failed"
    return text.removeprefix(f"{path}: ")[:200]


def tables_with_failed_files(store: Store, runs: Runs) -> list[Issue]:
    """Per table: files that failed to load although their run is marked completed.

    One issue per table (the report names the table and counts its failed files); it
    lists the runs to mark failed, since a run is only complete once its files loaded.
    """
    failed = {
        os.path.abspath(f.file_path): f for f in store.files.find(status=FILE_FAILED) if f.file_path
    }
    if not failed:
        return []
    found: dict[str, list[tuple[str, str, FileRecord]]] = {}
    for run, extractions in runs:
        if run.status != "completed":
            continue
        for key, ext in sorted(extractions.items()):
            rec = failed.get(os.path.abspath(ext.file_path)) if ext.file_path else None
            if rec is not None:
                found.setdefault(key, []).append((run.run_id, ext.file_path or "", rec))
    issues = []
    for key, bad in sorted(found.items()):
        parts = [
            f"{path} (run {run_id}): {_first_line(rec.error, path)}" for run_id, path, rec in bad
        ]
        issues.append(
            Issue(
                "completed_with_failed_files",
                key,
                _first_few(parts),
                table=key,
                extra={
                    "failed_files": len(bad),
                    "runs": sorted({run_id for run_id, _, _ in bad}),
                    "files": [path for _, path, _ in bad],
                },
            )
        )
    return issues


def _first_few(parts: list[str], shown: int = 3) -> str:
    """An issue's detail: its first few parts, and how many more there are."""
    more = f"; and {len(parts) - shown} more" if len(parts) > shown else ""
    return "; ".join(parts[:shown]) + more


def failed_files(
    store: Store, config: Config, keys: dict[str, str], reported: list[Issue]
) -> list[Issue]:
    """Per table: every file of the pipeline that failed to load, whatever its run's status
    (a failed load marks its run failed; a file may have no run at all), but those already
    named as failed files of a completed run. A failed file is not loaded: its table is
    not what its lake says until the file is repaired (re-extracted) and loaded."""
    named = {os.path.abspath(path) for issue in reported for path in issue.extra.get("files", [])}
    found: dict[str, list[FileRecord]] = {}
    for rec in store.files.find(status=FILE_FAILED, pipeline=config.pipeline):
        if rec.file_path and os.path.abspath(rec.file_path) in named:
            continue
        found.setdefault(keys.get(rec.target_uri, rec.table_key), []).append(rec)
    issues = []
    for key, bad in sorted(found.items()):
        parts = [f"{r.file_id}: {_first_line(r.error, r.file_id)}" for r in bad]
        issues.append(
            Issue(
                "failed_files",
                key,
                _first_few(parts),
                table=key,
                extra={
                    "failed_files": len(bad),
                    "files": [r.file_path or r.file_id for r in bad],
                    "uri": bad[0].target_uri,
                },
            )
        )
    return issues


def interrupted_extractions(
    store: Store, config: Config, runs: Runs, *, own_token: str | None = None
) -> list[Issue]:
    """Extractions left `running` by a process that is gone (nobody live holds the lock).
    `own_token`: the caller's own hold of the pipeline lock, which runs nothing.

    `runs` may be old: validate-consistency reads them before its table and lake scans,
    and a run that finished meanwhile has released its lock. So an extraction `running`
    in `runs` is judged on the locks as they are now, then its record is read again, and
    it is reported only if that same attempt is still running: a run records its
    extractions before it releases its lock, and one that starts again holds a lock
    before it marks an extraction running (a new attempt), so a record read after its
    locks were seen free says whether a live process could still own it."""
    holder = store.locks.holder(config.pipeline_lock_name)
    if holder is not None and holder.token != own_token and holder.stale_reason() is None:
        return []  # a live run holds the pipeline: its running extractions are real
    issues = []
    for run, extractions in runs:
        running = {key: ext for key, ext in extractions.items() if ext.status == "running"}
        if not running:
            continue
        # a scheduled run holds only its own run lock (`pipeline:<name>@<run id>`)
        own = store.locks.holder(config.run_lock_name(run.run_id))
        if own is not None and own.stale_reason() is None:
            continue
        now = store.extractions.of_run(run.run_id)  # read after its locks were seen free
        for key, ext in running.items():
            current = now.get(key)
            if current is None or current.status != "running" or current.attempts != ext.attempts:
                continue  # finished, or started again, since `runs` was read
            issues.append(
                Issue(
                    "interrupted_extraction",
                    f"{run.run_id}:{key}",
                    f"running since {current.started_at}, but no live process holds the "
                    f"pipeline lock or the run's lock ({config.run_lock_name(run.run_id)})",
                    table=key,
                    extra={"run_id": run.run_id, "attempts": current.attempts},
                )
            )
    return issues


def _orphan_issues(store: Store, keys: dict[str, str]) -> list[Issue]:
    return [
        Issue(
            "orphaned_processing",
            o.record.file_id,
            f"{o.record.table_key}: processing since {o.record.started_at}; {o.reason}",
            table=keys.get(o.record.target_uri, o.record.table_key),
            extra={"uri": o.record.target_uri, "reason": o.reason},
        )
        for o in store.files.orphans()
    ]


def _summary(issues: list[Issue], keys: dict[str, str]) -> tuple[dict[str, Any], list[Any]]:
    """The file tracker's verdict and each table's (config tables first, in order)."""
    tracker = [i for i in issues if i.kind in FILE_TRACKER_KINDS]
    names = list(dict.fromkeys([*keys.values(), *(i.table for i in issues if i.table)]))
    tables = []
    for name in names:
        own = [i for i in issues if i.table == name and i.kind not in NON_TABLE_KINDS]
        tables.append({"table": name, "consistent": not own, "issues": len(own)})
    return {"consistent": not tracker, "inconsistencies": len(tracker)}, tables


def validate_consistency(
    config: Config,
    *,
    safe_age_seconds: float = DEFAULT_SAFE_AGE_SECONDS,
    store: Store | None = None,
) -> dict[str, Any]:
    """Every inconsistency between the state store and the data; `consistent` when none.

    `issues` is a list of {kind, subject, detail, table, summary, ...}; `file_tracker` and
    `tables` give the verdict per part (what the text report shows).
    """
    if safe_age_seconds < 0:
        raise ConfigError("--safe-age: must be 0 or more seconds", field="safe_age")
    store = store or open_store(config.state_url)
    targets = config_load_targets(config, store)
    keys = {t.uri: t.key for t in targets}
    runs = pipeline_runs(store, config)
    issues = _orphan_issues(store, keys)
    completed_failed = tables_with_failed_files(store, runs)
    issues += completed_failed
    issues += failed_files(store, config, keys, completed_failed)
    locks = store.locks.find()
    for lock in locks:
        reason = lock.stale_reason()
        if reason:
            table = (
                keys.get(lock.name.removeprefix("load:")) if lock.name.startswith("load:") else None
            )
            issues.append(
                Issue(
                    "stale_lock",
                    lock.name,
                    f"{reason} (held by {lock.describe()})",
                    table=table,
                    extra={"reason": reason},
                )
            )
    issues += gone_tables(store, config, targets)
    # a held file without its sidecar is a lost commit marker only if no extraction could
    # be re-extracting it while the lake was read: judged before the scan, as the check
    # made when it read the lake itself (a later look would miss one that just finished)
    extraction_at_scan = bool(config.tables) and _extraction_may_run(store, config)
    scans = lake_scans(config)
    for tgt in targets:
        issues += table_issues(config, store, tgt, safe_age_seconds, scans)
    issues += sidecar_issues(runs)
    issues += interrupted_extractions(store, config, runs)
    for path in temp_files(config, safe_age_seconds):
        issues.append(Issue("temp_file", str(path), "temp file left by an interrupted write"))
    issues += _uncommitted_issues(
        config, store, targets, safe_age_seconds, scans, held=not extraction_at_scan
    )
    tracked = len(store.files.find())
    in_progress = [i for i in issues if i.kind == IN_PROGRESS]
    issues = [i for i in issues if i.kind != IN_PROGRESS]
    file_tracker, tables = _summary(issues, keys)
    return {
        "consistent": not issues,
        "issues": [i.as_dict() for i in issues],
        "in_progress": [i.as_dict() for i in in_progress],
        "checked": {
            "tables": len(targets),
            "tracked_files": tracked,
            "locks": len(locks),
            "runs": len(runs),
        },
        "file_tracker": {"files_checked": tracked, **file_tracker},
        "tables": tables,
        "safe_age_seconds": safe_age_seconds,
    }
