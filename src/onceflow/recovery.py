"""validate-consistency and fix-inconsistencies: compare the index (state store) with the
truth (sidecars, Delta logs, the files on disk) and repair the index from the truth.

Checks: orphaned `processing` file records, runs marked completed whose files failed to
load, stale locks, Delta commits the tracker does not know and tracker entries with no
commit, sidecars that disagree with the extraction state, extractions left `running` by a
process that is gone, temp files left by a crash and
Delta data files no commit references (including delta-rs `*.parquet#N` temp files),
the last two only when older than a safe age (default 1 hour) so a running writer's
files are never touched.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from onceflow.config import Config
from onceflow.errors import LockError
from onceflow.extract.paths import TEMP_MARKER, normalize_lake_path
from onceflow.extract.sidecar import read_sidecar
from onceflow.load import delta
from onceflow.load.loader import NO_COMMIT_STRATEGIES, LoadTarget
from onceflow.state import StateStore, open_store
from onceflow.state.files import FILE_COMPLETED, FILE_FAILED
from onceflow.state.locks import Lease

log = logging.getLogger("onceflow.recovery")

DEFAULT_SAFE_AGE_SECONDS = 3600.0


@dataclass(frozen=True)
class Issue:
    """One inconsistency: its kind, what it is about, and what is wrong."""

    kind: str
    subject: str
    detail: str


def _targets(config: Config) -> list[LoadTarget]:
    from onceflow.pipeline_load import config_targets

    return config_targets(config) if config.tables else []


def _log_vs_tracker(store: StateStore, tgt: LoadTarget) -> list[Issue]:
    dt = delta.open_table(tgt.uri)
    view = delta.read_log(dt, tgt.app_id)
    issues = []
    tracked = {r.file_path: r for r in store.tracked_files(tgt.target)}
    for path, logged in view.files.items():
        rec = tracked.get(path)
        if rec is None or rec.status != FILE_COMPLETED:
            status = rec.status if rec else "not tracked"
            issues.append(
                Issue(
                    "commit_not_tracked",
                    path,
                    f"{tgt.key}: Delta version {logged.version} has it, tracker says {status}",
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
            )
        )
    return issues


def _delta_garbage(tgt: LoadTarget, safe_age: float) -> list[Path]:
    """Data files in the table folder that no commit references, older than safe_age."""
    root = Path(tgt.uri)
    if "://" in tgt.uri or not (root / "_delta_log").is_dir():
        return []
    referenced: set[str] = set()
    dt = delta.open_table(tgt.uri)
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
    from urllib.parse import unquote

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


def _temp_files(config: Config, safe_age: float) -> list[Path]:
    lake = Path(normalize_lake_path(config.resolve(config.lake)))
    if not lake.is_dir():
        return []
    now = time.time()
    return [
        p
        for p in lake.rglob(f"*{TEMP_MARKER}*")
        if p.is_file() and now - p.stat().st_mtime >= safe_age
    ]


def _sidecar_issues(store: StateStore, config: Config) -> list[Issue]:
    issues = []
    for run in store.runs(config.pipeline, limit=1000):
        for key, ext in store.extractions(run.run_id).items():
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
                    Issue("sidecar_mismatch", f"{run.run_id}:{key}", f"{ext.file_path}: {problem}")
                )
    return issues


def _runs_with_failed_files(store: StateStore, config: Config) -> list[Issue]:
    failed = {f.file_path for f in store.tracked_files(status=FILE_FAILED)}
    if not failed:
        return []
    issues = []
    for run in store.runs(config.pipeline, limit=1000):
        if run.status != "completed":
            continue
        bad = [e.file_path for e in store.extractions(run.run_id).values() if e.file_path in failed]
        if bad:
            issues.append(
                Issue(
                    "completed_with_failed_files",
                    run.run_id,
                    f"run marked completed but {len(bad)} of its files failed to "
                    f"load: {', '.join(str(b) for b in bad[:3])}",
                )
            )
    return issues


def _interrupted_extractions(store: StateStore, config: Config) -> list[Issue]:
    """Extractions left `running` by a process that is gone (nobody live holds the lock)."""
    from onceflow.pipeline import pipeline_lock_name

    holder = store.lock_holder(pipeline_lock_name(config))
    if holder is not None and holder.stale_reason() is None:
        return []  # a live run holds the pipeline: its running extractions are real
    issues = []
    for run in store.runs(config.pipeline, limit=1000):
        for key, ext in store.extractions(run.run_id).items():
            if ext.status == "running":
                issues.append(
                    Issue(
                        "interrupted_extraction",
                        f"{run.run_id}:{key}",
                        f"running since {ext.started_at}, but no live process holds the "
                        "pipeline lock",
                    )
                )
    return issues


def validate_consistency(
    config: Config,
    *,
    safe_age_seconds: float = DEFAULT_SAFE_AGE_SECONDS,
    store: StateStore | None = None,
) -> dict[str, Any]:
    """Every inconsistency between the state store and the data; `consistent` when none."""
    store = store or open_store(config.state_url)
    issues: list[Issue] = []
    for f in store.orphaned_files():
        issues.append(
            Issue(
                "orphaned_processing",
                f.file_path,
                f"{f.target_table}: processing since {f.started_at} by a loader whose lock is gone",
            )
        )
    issues += _runs_with_failed_files(store, config)
    for lock in store.all_locks():
        reason = lock.stale_reason()
        if reason:
            issues.append(Issue("stale_lock", lock.name, f"{lock.describe()}: {reason}"))
    targets = _targets(config)
    for tgt in targets:
        issues += _log_vs_tracker(store, tgt)
        for path in _delta_garbage(tgt, safe_age_seconds):
            issues.append(
                Issue(
                    "uncommitted_delta_file",
                    str(path),
                    f"{tgt.key}: data file no commit references",
                )
            )
    issues += _sidecar_issues(store, config)
    issues += _interrupted_extractions(store, config)
    for path in _temp_files(config, safe_age_seconds):
        issues.append(Issue("temp_file", str(path), "temp file left by an interrupted write"))
    return {
        "consistent": not issues,
        "issues": [asdict(i) for i in issues],
        "checked": {
            "tables": len(targets),
            "tracked_files": len(store.tracked_files()),
            "locks": len(store.all_locks()),
        },
    }


def fix_inconsistencies(
    config: Config,
    *,
    safe_age_seconds: float = DEFAULT_SAFE_AGE_SECONDS,
    store: StateStore | None = None,
) -> dict[str, Any]:
    """Repair the index from the truth and remove old garbage; says what it did."""
    from onceflow.load.loader import reconcile

    store = store or open_store(config.state_url)
    actions: list[str] = []
    failures: list[str] = []
    for lock in store.all_locks():
        reason = lock.stale_reason()
        if reason and store.force_release_lock(lock.name, lock.token):
            actions.append(f"released stale lock {lock.name} ({reason})")
    for tgt in _targets(config):
        try:
            with Lease(store, tgt.lock_name, timeout=0):
                view = delta.read_log(delta.open_table(tgt.uri), tgt.app_id)
                for note in reconcile(store, tgt, view):
                    actions.append(f"{tgt.key}: {note}")
                for path in _delta_garbage(tgt, safe_age_seconds):
                    path.unlink(missing_ok=True)
                    actions.append(f"{tgt.key}: removed uncommitted data file {path}")
        except LockError as error:
            failures.append(f"{tgt.key}: skipped, a loader is running ({error})")
    for rec in store.release_orphaned_files():
        actions.append(f"{rec.file_path}: orphaned processing record back to pending")
    for issue in _runs_with_failed_files(store, config):
        with store.transaction() as tx:
            tx.execute(
                "UPDATE pipeline_runs SET status = ? WHERE run_id = ? AND status = ?",
                ("failed", issue.subject, "completed"),
            )
        actions.append(f"run {issue.subject}: status completed -> failed ({issue.detail})")
    for issue in _sidecar_issues(store, config):
        run_id, _, key = issue.subject.partition(":")
        if store.force_reprocess(run_id, key):
            actions.append(f"{key} of {run_id}: {issue.detail}; marked for re-extraction")
    interrupted = _interrupted_extractions(store, config)
    for issue in interrupted:
        run_id, _, key = issue.subject.partition(":")
        store.mark_failed(run_id, key, "interrupted: the process running it is gone")
        actions.append(
            f"{key} of {run_id}: interrupted extraction marked failed (retried next run)"
        )
    for run_id in sorted({i.subject.partition(":")[0] for i in interrupted}):
        store.finish_run(run_id)
    for path in _temp_files(config, safe_age_seconds):
        path.unlink(missing_ok=True)
        actions.append(f"removed temp file {path}")
    after = validate_consistency(config, safe_age_seconds=safe_age_seconds, store=store)
    return {
        "actions": actions,
        "fixes_applied": len(actions),
        "fixes_failed": len(failures),
        "failures": failures,
        "consistent": after["consistent"],
        "remaining": after["issues"],
    }
