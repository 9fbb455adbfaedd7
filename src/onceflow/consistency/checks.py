"""validate-consistency: compare the index (the state store) with the truth (sidecars,
Delta logs, the files on disk).

Checks: orphaned `processing` file records (their loader's lock is gone, or still there but
stale: lease expired, pid dead or recycled), tables whose files failed to load although
their run is marked completed, stale locks, Delta commits the tracker does not know and
tracker entries with no commit, sidecars that disagree with the extraction state,
extractions left `running` by a process that is gone, temp files left by a crash and
Delta data files no commit references (including delta-rs `*.parquet#N` temp files),
the last two only when older than a safe age (default 1 hour) so a running writer's
files are never touched.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from onceflow.config import Config
from onceflow.lake import TEMP_MARKER, normalize_lake_path, read_sidecar
from onceflow.load import LoadTarget, config_targets
from onceflow.load.loader import NO_COMMIT_STRATEGIES
from onceflow.load.markers import read_log
from onceflow.state import ExtractionRecord, RunRecord, Store, open_store
from onceflow.state.files import FILE_COMPLETED, FILE_FAILED, FileRecord
from onceflow.warehouse import open_table

DEFAULT_SAFE_AGE_SECONDS = 3600.0


#: How the text report and the JSON `summary` name each kind of issue.
ISSUE_LABELS = {
    "orphaned_processing": "Orphaned processing record",
    "commit_not_tracked": "Delta commit the tracker does not know",
    "tracked_without_commit": "Tracker entry with no Delta commit",
    "completed_with_failed_files": "Table marked as completed but has failed files",
    "stale_lock": "Stale lock",
    "uncommitted_delta_file": "Delta data file no commit references",
    "sidecar_mismatch": "Sidecar disagrees with the state",
    "interrupted_extraction": "Extraction left running by a process that is gone",
    "temp_file": "Temp file left by an interrupted write",
}
#: Kinds that are about the file tracker (its own section of the report).
FILE_TRACKER_KINDS = ("orphaned_processing", "commit_not_tracked", "tracked_without_commit")
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


def config_load_targets(config: Config) -> list[LoadTarget]:
    """The load targets of every config table (none for a config without tables)."""
    return config_targets(config) if config.tables else []


def _log_vs_tracker(store: Store, tgt: LoadTarget) -> list[Issue]:
    view = read_log(open_table(tgt.uri), tgt.app_id)
    issues = []
    tracked = {r.file_path: r for r in store.files.find(tgt.target)}
    for path, logged in view.files.items():
        rec = tracked.get(path)
        if rec is None or rec.status != FILE_COMPLETED:
            status = rec.status if rec else "not tracked"
            issues.append(
                Issue(
                    "commit_not_tracked",
                    path,
                    f"{tgt.key}: Delta version {logged.version} has it, tracker says {status}",
                    table=tgt.key,
                    extra={"target": tgt.target, "delta_version": logged.version},
                )
            )
    for rec in tracked.values():
        if rec.status != FILE_COMPLETED or rec.file_path in view.files:
            continue
        if rec.delta_version is None:
            if tgt.cfg.strategy in NO_COMMIT_STRATEGIES:
                continue  # loaded with no change: nothing to commit (see loader docs)
        elif rec.delta_version < view.oldest_version:
            continue  # its commit aged out of the log
        issues.append(
            Issue(
                "tracked_without_commit",
                rec.file_path,
                f"{tgt.key}: tracker says completed (version "
                f"{rec.delta_version}) but no commit has it",
                table=tgt.key,
                extra={"target": tgt.target, "delta_version": rec.delta_version},
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
        if rel in referenced:
            continue
        if now - path.stat().st_mtime >= safe_age:
            garbage.append(path)
    return garbage


def temp_files(config: Config, safe_age: float) -> list[Path]:
    lake = Path(normalize_lake_path(config.resolve(config.lake)))
    if not lake.is_dir():
        return []
    now = time.time()
    return [
        p
        for p in lake.rglob(f"*{TEMP_MARKER}*")
        if p.is_file() and now - p.stat().st_mtime >= safe_age
    ]


Runs = list[tuple[RunRecord, dict[str, ExtractionRecord]]]


def pipeline_runs(store: Store, config: Config) -> Runs:
    """The pipeline's runs with their extractions, read once for every run-level check."""
    return [
        (run, store.extractions.of_run(run.run_id))
        for run in store.runs.find(config.pipeline, 1000)
    ]


def sidecar_issues(runs: Runs) -> list[Issue]:
    issues = []
    for run, extractions in runs:
        for key, ext in extractions.items():
            if ext.status != "completed" or not ext.file_path:
                continue
            path = Path(ext.file_path)
            sidecar = read_sidecar(path)
            problem = None
            if sidecar is None or sidecar.get("extraction_complete") is not True:
                problem = "no complete sidecar"
            elif ext.checksum and sidecar.get("checksum") != ext.checksum:
                problem = "sidecar checksum differs from the state"
            elif not path.exists():
                problem = "data file missing"
            elif path.stat().st_size != sidecar.get("file_size_bytes"):
                problem = "file size differs from its sidecar"
            if problem:
                issues.append(
                    Issue(
                        "sidecar_mismatch",
                        f"{run.run_id}:{key}",
                        f"{ext.file_path}: {problem}",
                        table=key,
                        extra={"run_id": run.run_id, "problem": problem},
                    )
                )
    return issues


def _first_line(error: str | None, path: str) -> str:
    """A load error, short: its first line without the file name the report already shows."""
    text = (error or "failed").splitlines()[0] if error else "failed"
    return text.removeprefix(f"{path}: ")[:200]


def tables_with_failed_files(store: Store, runs: Runs) -> list[Issue]:
    """Per table: files that failed to load although their run is marked completed.

    One issue per table (the report names the table and counts its failed files); it
    lists the runs to mark failed, since a run is only complete once its files loaded.
    """
    failed = {os.path.abspath(f.file_path): f for f in store.files.find(status=FILE_FAILED)}
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
            f"{path} (run {run_id}): {_first_line(rec.error, path)}"
            for run_id, path, rec in bad[:3]
        ]
        more = f"; and {len(bad) - 3} more" if len(bad) > 3 else ""
        issues.append(
            Issue(
                "completed_with_failed_files",
                key,
                "; ".join(parts) + more,
                table=key,
                extra={
                    "failed_files": len(bad),
                    "runs": sorted({run_id for run_id, _, _ in bad}),
                    "files": [path for _, path, _ in bad],
                },
            )
        )
    return issues


def interrupted_extractions(store: Store, config: Config, runs: Runs) -> list[Issue]:
    """Extractions left `running` by a process that is gone (nobody live holds the lock)."""
    holder = store.locks.holder(config.pipeline_lock_name)
    if holder is not None and holder.stale_reason() is None:
        return []  # a live run holds the pipeline: its running extractions are real
    issues = []
    for run, extractions in runs:
        # a scheduled run holds only its own run lock (`pipeline:<name>@<run id>`)
        own = store.locks.holder(f"{config.pipeline_lock_name}@{run.run_id}")
        if own is not None and own.stale_reason() is None:
            continue
        for key, ext in extractions.items():
            if ext.status == "running":
                issues.append(
                    Issue(
                        "interrupted_extraction",
                        f"{run.run_id}:{key}",
                        f"running since {ext.started_at}, but no live process holds the "
                        "pipeline lock",
                        table=key,
                        extra={"run_id": run.run_id},
                    )
                )
    return issues


def _orphan_issues(store: Store, keys: dict[str, str]) -> list[Issue]:
    return [
        Issue(
            "orphaned_processing",
            o.record.file_path,
            f"{o.record.target_table}: processing since {o.record.started_at}; {o.reason}",
            table=keys.get(o.record.target_table, o.record.target_table),
            extra={"target": o.record.target_table, "reason": o.reason},
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
    store = store or open_store(config.state_url)
    targets = config_load_targets(config)
    keys = {t.target: t.key for t in targets}
    runs = pipeline_runs(store, config)
    issues = _orphan_issues(store, keys)
    issues += tables_with_failed_files(store, runs)
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
    for tgt in targets:
        issues += _log_vs_tracker(store, tgt)
        for path in delta_garbage(tgt, safe_age_seconds):
            issues.append(
                Issue(
                    "uncommitted_delta_file",
                    str(path),
                    f"{tgt.key}: data file no commit references",
                    table=tgt.key,
                )
            )
    issues += sidecar_issues(runs)
    issues += interrupted_extractions(store, config, runs)
    for path in temp_files(config, safe_age_seconds):
        issues.append(Issue("temp_file", str(path), "temp file left by an interrupted write"))
    tracked = len(store.files.find())
    file_tracker, tables = _summary(issues, keys)
    return {
        "consistent": not issues,
        "issues": [i.as_dict() for i in issues],
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
