"""fix-inconsistencies: repair the index from the truth and remove old garbage.

Every repair is one store verb and one log line; the report lists the same lines.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from onceflow.config import Config
from onceflow.consistency.checks import (
    DEFAULT_SAFE_AGE_SECONDS,
    config_load_targets,
    delta_garbage,
    external_restore_issue,
    files_loaded_twice,
    gone_tables,
    interrupted_extractions,
    lake_files,
    live_extraction_lock,
    pipeline_runs,
    reextract_command,
    sidecar_issues,
    tables_with_failed_files,
    temp_files,
    uncommitted_lake_files,
    validate_consistency,
)
from onceflow.consistency.locks import live_run_lock
from onceflow.errors import LoadError, LockError, OnceflowError
from onceflow.lake import Uncommitted, inspect_sidecar, sidecar_path
from onceflow.load import LoadTarget, config_targets, reconcile, reload_file
from onceflow.state import Lease, LockRecord, Store, open_store
from onceflow.warehouse import open_table
from onceflow.warehouse.markers import read_markers

log = logging.getLogger(__name__)


class _Actions:
    """The repairs made, each logged as it is made."""

    def __init__(self) -> None:
        self.done: list[str] = []

    def add(self, note: str) -> None:
        log.info("fixed: %s", note)
        self.done.append(note)


def _replace_twice_loaded(
    config: Config,
    store: Store,
    tgt: LoadTarget,
    lease: Lease,
    actions: _Actions,
    failures: list[str],
) -> None:
    """An append table holding one file's rows twice gets that file's rows replaced by
    the lake file, in one commit: what a re-extraction of the window would do."""
    twice = [i for i in files_loaded_twice(tgt) if i.kind == "file_loaded_twice"]
    if not twice:
        return  # an unreadable table is reported with its fix (a rebuild), not repaired here
    if tgt.cfg.strategy != "append":  # its rows were merged into others: no file to swap
        for issue in twice:
            failures.append(
                f"{tgt.key}: {issue.subject} is held twice; reload the table from the lake "
                "(`onceflow reset-state --yes`, then load into a new table)"
            )
            log.warning("not fixed: %s", failures[-1])
        return
    lake = {f.file_id: f for f in lake_files(config, tgt) if not f.data_missing}
    for issue in twice:
        file = lake.get(issue.subject)
        if file is None:
            failures.append(f"{tgt.key}: {issue.subject} is loaded twice and not in the lake")
            log.warning("not fixed: %s", failures[-1])
            continue
        try:
            outcome = reload_file(
                store, tgt, file, token=lease.token, check_lock=lease.check, reason="loaded twice"
            )
        except OnceflowError as error:
            failures.append(f"{tgt.key}: {issue.subject}: {error}")
            log.warning("not fixed: %s", failures[-1])
            continue
        actions.add(
            f"{tgt.key}: {issue.subject} was held twice ({issue.extra['rows']} rows); its rows "
            f"replaced by the lake file's {outcome.rows} (version {outcome.version})"
        )


def _repair_extractions(
    config: Config, store: Store, safe_age: float, actions: _Actions, failures: list[str]
) -> None:
    """Mark interrupted extractions failed, and remove the lake's temp files and the data
    files no sidecar commits, older than safe_age, while no extraction can run: under the
    pipeline lock (taken without waiting: an extraction and a run hold it, and a scheduled
    run refuses to start while it is held) and with no live run lock.

    Age alone does not tell a live writer's temp file from a dead one's: the writer
    buffers a whole row group (up to 48 MiB or 1M rows) before its first write, so a slow
    source leaves the file untouched for longer than any safe age. An extraction found
    `running` is judged again under the lock, and only that attempt is failed, so one
    that completed (or started again) meanwhile keeps its state."""
    runs = pipeline_runs(store, config)
    temps = temp_files(config, safe_age)
    found = uncommitted_lake_files(config, safe_age)
    if not (temps or found or interrupted_extractions(store, config, runs)):
        return
    try:
        with Lease(
            store, config.pipeline_lock_name, ttl=config.lock_ttl_seconds, timeout=0
        ) as lease:
            # a scheduled run holds only its own run lock: the interrupted extractions of
            # the other runs are still repaired
            _fail_interrupted(config, store, lease.token, actions)
            running = live_run_lock(store, config)
            if running is not None:
                raise LockError(f"a run holds {running.name} (held by {running.describe()})")
            for path in temps:
                _remove_temp(path, safe_age, actions)
            _remove_uncommitted(config, store, found, safe_age, actions, failures)
    except LockError as refused:
        # who holds it, without the lock error's advice (`--lock-timeout` is no option here)
        error = str(refused).split("; waited ")[0]
        for path in temps:
            failures.append(f"temp file {path} kept, an extraction may be running ({error})")
            log.warning("not fixed: %s", failures[-1])
        for key, file in found:
            failures.append(
                f"{key}: uncommitted {file.path} kept, an extraction may be running ({error})"
            )
            log.warning("not fixed: %s", failures[-1])


def _fail_interrupted(config: Config, store: Store, token: str, actions: _Actions) -> None:
    """Extractions left `running` by a process that is gone: failed (the next run retries
    them), and their runs' status recounted. Called under the pipeline lock (`token`)."""
    runs = pipeline_runs(store, config)
    failed: set[str] = set()
    for issue in interrupted_extractions(store, config, runs, own_token=token):
        run_id, key = issue.extra["run_id"], issue.table or ""
        error = "interrupted: the process running it is gone"
        if store.extractions.fail(run_id, key, error, only_attempt=issue.extra["attempts"]):
            failed.add(run_id)
            actions.add(
                f"{key} of {run_id}: interrupted extraction marked failed (retried next run)"
            )
    for run_id in sorted(failed):
        store.runs.finish(run_id)


def _remove_temp(path: Path, safe_age: float, actions: _Actions) -> None:
    try:  # again under the lock: a new writer may use the name since the check
        if time.time() - os.stat(path).st_mtime < safe_age:
            return
    except OSError:
        return
    path.unlink(missing_ok=True)
    actions.add(f"removed temp file {path}")


def _remove_uncommitted(
    config: Config,
    store: Store,
    found: list[tuple[str, Uncommitted]],
    safe_age: float,
    actions: _Actions,
    failures: list[str],
) -> None:
    """Remove the lake's data files no sidecar commits (`found`), under the locks of
    `_repair_extractions`. By the lake's protocol the sidecar is the commit marker, so such
    a file is an uncommitted extraction's output and removing it loses nothing committed; a
    file a completed extraction names (its sidecar lost) is left to its re-extraction."""
    if not found:
        return
    kept = _known_files(config, store, found)
    for key, file in found:
        if file.file_id in kept:
            failures.append(
                f"{key}: {file.path} has no complete sidecar but is known (loaded, "
                "or named by an extraction): kept; re-extract its window: "
                f"{reextract_command(key, file)}"
            )
            log.warning("not fixed: %s", failures[-1])
            continue
        _remove_one(key, file, safe_age, actions)


def _known_files(config: Config, store: Store, found: list[tuple[str, Uncommitted]]) -> set[str]:
    """The identities (path within the lake) of the files among `found` that something
    knows: a Delta table holds it, the load tracker has it, or an extraction (of any
    status: a lost sidecar sets it pending first) names it. Such a file's sidecar was lost
    after its commit; deleting it could lose data a table holds and a re-extraction of a
    moved window no longer returns. Matched by identity, so a moved project is the same."""
    ids = {file.file_id for _key, file in found}
    known: set[str] = set()
    for tgt in config_targets(config):
        known |= {r.file_id for r in store.files.find(tgt.uri) if r.file_id in ids}
        try:
            held = read_markers(open_table(tgt.uri), ids).held
        except LoadError:  # an unreadable table may hold any of them: keep them all
            return ids
        known |= {i for i in ids if held.get(i)}
    named = [
        ext.file_path.replace(os.sep, "/")
        for _run, extractions in pipeline_runs(store, config)
        for ext in extractions.values()
        if ext.file_path
    ]
    known |= {i for i in ids if any(p == i or p.endswith("/" + i) for p in named)}
    return known


def _remove_one(key: str, file: Uncommitted, safe_age: float, actions: _Actions) -> None:
    try:  # again under the lock: a re-extraction may have replaced it since the check
        if time.time() - os.stat(file.path).st_mtime < safe_age:
            return
    except OSError:
        return
    path = Path(file.path)
    sidecar, damaged = inspect_sidecar(path)
    if damaged is not None:  # a sidecar that cannot be read is damage, not "no commit"
        return
    if sidecar is not None and sidecar.get("extraction_complete") is True:
        return  # committed meanwhile
    path.unlink(missing_ok=True)
    if sidecar is not None:  # a sidecar saying incomplete commits nothing either
        sidecar_path(path).unlink(missing_ok=True)
    actions.add(
        f"{key}: removed uncommitted lake file {file.path} (no sidecar commits it); "
        f"re-extract its window: `{reextract_command(key, file)}`"
    )


def fix_inconsistencies(
    config: Config,
    *,
    safe_age_seconds: float = DEFAULT_SAFE_AGE_SECONDS,
    store: Store | None = None,
) -> dict[str, Any]:
    """Repair the index from the truth and remove old garbage; says what it did.

    `failures` lists what was not done: a table skipped because another command holds its
    lock (also in `skipped`), a file kept because a live process may be writing it, a
    repair only a load or a re-extraction can make. `consistent` is the re-check's verdict
    after the fixes; `complete` says nothing was left undone. The CLI exits 1 unless both
    hold: a table skipped was not fixed, whatever the re-check saw of it."""
    store = store or open_store(config.state_url)
    actions = _Actions()
    failures: list[str] = []
    # Orphans first: releasing one also releases its owner's stale lock in the same
    # transaction, so the owner can never finish a file that is pending again.
    released: set[str] = set()
    for orphan in store.files.release_orphans():
        rec = orphan.record
        if orphan.lock is not None and orphan.lock.token not in released:
            released.add(orphan.lock.token)
            actions.add(
                f"released stale lock {orphan.lock.name} ({orphan.stale_reason}; it owned "
                "orphaned processing records)"
            )
        actions.add(
            f"{rec.file_id} ({rec.table_key}): orphaned processing record put back to "
            f"pending ({orphan.reason}); the next load retries it"
        )
    for lock in store.locks.find():
        reason = lock.stale_reason()
        if reason and store.locks.release_if_unchanged(lock):
            actions.add(f"released stale lock {lock.name} ({reason})")
    targets = config_load_targets(config, store)
    for issue in gone_tables(store, config, targets):
        store.files.forget(issue.subject)
        actions.add(f"forgot {issue.extra['rows']} tracker row(s) of {issue.subject} (no table)")
    skipped: list[str] = []
    for tgt in targets:
        with ExitStack() as stack:
            try:
                lease = stack.enter_context(
                    Lease(store, tgt.lock_name, ttl=config.lock_ttl_seconds, timeout=0)
                )
            except LockError as error:
                skipped.append(tgt.key)
                failures.append(f"{tgt.key}: skipped, not fixed: {_held_elsewhere(store, error)}")
                log.warning("not fixed: %s", failures[-1])
                continue
            try:
                _repair_table(config, store, tgt, lease, safe_age_seconds, actions, failures)
            except LockError as error:  # its lease was broken while repairing
                failures.append(f"{tgt.key}: not fully fixed: {error}")
                log.warning("not fixed: %s", failures[-1])
            except LoadError as error:
                # a table that cannot be opened: nothing of it is known, so nothing is
                # touched (its data files are not garbage: a damaged log hides which are
                # referenced)
                failures.append(f"{tgt.key}: left as it is: {error}")
                log.warning("not fixed: %s", failures[-1])
    for issue in tables_with_failed_files(store, pipeline_runs(store, config)):
        count = issue.extra["failed_files"]
        for run_id in issue.extra["runs"]:
            if store.runs.fail(run_id, only_if="completed") is not None:
                actions.add(
                    f"{issue.subject}: run {run_id} status completed -> failed (table marked "
                    f"as completed but has {count} failed file{'s' if count != 1 else ''})"
                )
    for issue in sidecar_issues(pipeline_runs(store, config)):
        run_id, key = issue.extra["run_id"], issue.table or ""
        if store.extractions.force(run_id, key):
            actions.add(f"{key} of {run_id}: {issue.detail}; marked for re-extraction")
    _repair_extractions(config, store, safe_age_seconds, actions, failures)
    before = live_extraction_lock(store, config)
    after = validate_consistency(config, safe_age_seconds=safe_age_seconds, store=store)
    remaining = _kept_under_live_locks(store, config, after["issues"], before, failures)
    return {
        "actions": actions.done,
        "fixes_applied": len(actions.done),
        "fixes_failed": len(failures),
        "failures": failures,
        "skipped": skipped,
        "consistent": not remaining,
        "complete": not failures,
        "remaining": remaining,
    }


def _repair_table(
    config: Config,
    store: Store,
    tgt: LoadTarget,
    lease: Lease,
    safe_age: float,
    actions: _Actions,
    failures: list[str],
) -> None:
    """One table's repairs, under its load lock (`lease`): its tracker from its Delta log,
    its old uncommitted data files, a file's rows it holds twice."""
    held = read_markers(open_table(tgt.uri))
    for note in reconcile(store, tgt, held):
        actions.add(f"{tgt.key}: {note}")
    if held.repairs:  # the data is short: only a load brings it back
        failures.append(external_restore_issue(tgt, held).detail)
        log.warning("not fixed: %s", failures[-1])
    for path in delta_garbage(tgt, safe_age):
        path.unlink(missing_ok=True)
        actions.add(f"{tgt.key}: removed uncommitted data file {path}")
    _replace_twice_loaded(config, store, tgt, lease, actions, failures)


def _held_elsewhere(store: Store, error: LockError) -> str:
    """Why a lock could not be taken, naming its holder: any command takes a table's lock
    (a load, validate-consistency --fix, reset-state, optimize...), and the lock does not
    record which, so it is "another command", not "a loader"."""
    holder = store.locks.holder(error.lock) if error.lock else None
    who = f"another command ({holder.describe()})" if holder else "another command"
    return (
        f"its lock {error.lock or ''} is held by {who}; run fix-inconsistencies again once "
        "it has finished"
    )


#: What the re-check after the fixes may find only because a live process is writing it:
#: the lake's temp and uncommitted files under an extraction's lock, a table's uncommitted
#: data files under its loader's.
_LIVE_WRITES = ("temp_file", "uncommitted_lake_file", "uncommitted_delta_file")


def _kept_under_live_locks(
    store: Store,
    config: Config,
    issues: list[dict[str, Any]],
    before: LockRecord | None,
    failures: list[str],
) -> list[dict[str, Any]]:
    """The re-check's issues, but the files a live writer may own, judged as the fixes
    judged them: kept (a failure, "an extraction may be running"), not an inconsistency.

    With a small --safe-age, a live extraction's temp file, or its data file between its
    rename and its sidecar, is found by the re-check although the fixes kept it (or it
    appeared after them). A lock seen live before or after the re-check counts: a writer
    creates its files only while holding it."""
    holder = live_extraction_lock(store, config) or before
    loaders = {t.key: t.lock_name for t in config_load_targets(config, store)}
    remaining = []
    for issue in issues:
        kind, path = issue["kind"], str(issue["subject"])
        lock = holder if kind in ("temp_file", "uncommitted_lake_file") else None
        if kind == "uncommitted_delta_file" and issue.get("table") in loaders:
            live = store.locks.holder(loaders[issue["table"]])
            lock = live if live is not None and not live.stale_reason() else None
        if kind not in _LIVE_WRITES or lock is None:
            remaining.append(issue)
            continue
        if not Path(path).exists() or any(path in f for f in failures):
            continue  # finished meanwhile, or already listed as kept
        what = "temp file" if kind == "temp_file" else "uncommitted file"
        writer = "a load" if kind == "uncommitted_delta_file" else "an extraction"
        failures.append(
            f"{what} {path} kept, {writer} may be running "
            f"(lock {lock.name} is held by {lock.describe()})"
        )
        log.warning("not fixed: %s", failures[-1])
    return remaining
