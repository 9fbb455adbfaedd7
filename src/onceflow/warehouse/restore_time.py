"""Which version another writer's RESTORE **by time** brought back, worked out from the log.

A restore by time names no version in its commit. delta-rs (`DeltaTable.restore(datetime)`,
1.6) records the time asked for, in milliseconds, as `operationParameters.datetime`, and
resolves it (`DeltaTable::load_with_datetime`) with a binary search over the commit files
from the oldest file the log holds (a commit or a checkpoint) to the newest: the latest
version whose commit file was **last modified** at or before that time (the object store's
modification time, not the commit's `timestamp`, and not an in-commit timestamp); a time
before every commit gives the oldest version the log then held (no error). Spark/Delta
(`RESTORE TABLE t TIMESTAMP AS OF ...`) resolves the same rule over modification times made
increasing (or in-commit timestamps), but records the time as the text of a local time
without its zone (the JVM's), which this cannot turn back into an instant: refused.

So the resolution here is delta-rs's, and it is taken only where it cannot have come out
differently for the restore than for this read:

* the restore read the version just before its own (`readVersion`): no commit slipped in
  between its search and its commit;
* the log still holds every commit file from its oldest file to the restore;
* the answer does not depend on how the search went: the commits at or before the time
  are a prefix of the log, and no commit other than the answer has exactly that time
  (a binary search stops at any commit whose time equals the one asked for);
* the commits' own times (their `inCommitTimestamp` when they carry one, else their
  `timestamp`: the writer's clock) give the same answer as the files' modification times
  (the store's clock), or differ only because the time falls inside the next commit's
  write (at or after its timestamp, before its file's time, the two at most `WRITE_MS`
  apart: a time copied from the table's history lands there, and delta-rs took the
  commit before);
  otherwise clocks are skewed or the files were copied or touched since, and the times
  delta-rs saw are not known;
* a time before every commit is followed only when the oldest commit the log holds is
  version 0 (otherwise older ones may have been cleaned up since, and the restore chose
  one of them);
* and the table right after the restore holds exactly the data files of the resolved
  version (a restore's adds and removes make it so): the check that the answer is right.

Anything else returns the reason, and the loader refuses the table naming it and the fix.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from onceflow.warehouse.tables import log_commit_infos

log = logging.getLogger(__name__)

# delta-rs's DELTA_LOG_REGEX (logstore/mod.rs): the files whose versions bound its search
_LOG_FILE = re.compile(r"^(\d{20})\.(json|checkpoint(\.\d+)?\.parquet)$")

#: The longest a commit's write may take between its own timestamp and its file's
#: modification time (ms): delta-rs takes the timestamp, writes the data files' actions,
#: then the commit file; a local commit takes milliseconds, an object store's seconds
WRITE_MS = 5_000

# (table root, restore version, its commit file's mtime) -> version or reason: resolving
# reads every commit's time, and a log is read more than once per load (markers, history)
_cache: dict[tuple[str, int, int], int | str] = {}
_cache_lock = threading.Lock()


def requested_time(params: Mapping[str, Any]) -> tuple[int | None, str | None]:
    """The time a RESTORE's `operationParameters` ask for: (milliseconds since the epoch
    when the commit says it as delta-rs does, the time as text for messages); (None, None)
    when it names no time."""
    raw = params.get("datetime")
    if raw is not None:
        try:
            millis = int(str(raw))
        except ValueError:
            return None, str(raw)
        return millis, datetime.fromtimestamp(millis / 1000, UTC).isoformat(
            timespec="milliseconds"
        ).replace("+00:00", "Z")
    raw = params.get("timestamp")
    if raw is not None and str(raw) not in ("", "null"):
        return None, str(raw).strip('"')  # Spark: a JSON-encoded local time, no zone
    return None, None


def last_at_or_before(times: Sequence[int], at: int) -> int | None:
    """The index of the last of `times` at or before `at`, -1 when none is, and None when
    a binary search over `times` could have answered otherwise: the ones at or before are
    not a prefix (times out of order across `at`), or another than the last of them
    equals `at` exactly."""
    count = sum(1 for t in times if t <= at)
    if any(t > at for t in times[:count]):
        return None
    exact = [i for i, t in enumerate(times) if t == at]
    if exact and exact != [count - 1]:
        return None
    return count - 1


def resolve(root: Path, version: int, at: int, read_version: int | None) -> int | str:
    """The version the RESTORE by time at `version` (commit `version` asked for time `at`,
    in ms, having read `read_version`) brought back, or why it cannot be known for sure
    (see the module docstring)."""
    commit = root / "_delta_log" / f"{version:020d}.json"
    try:
        stamp = commit.stat().st_mtime_ns
    except OSError:
        return f"its log no longer holds commit {version}"
    key = (str(root), version, stamp)
    with _cache_lock:
        known = _cache.get(key)
    if known is None:
        known = _resolve(root, version, at, read_version)
        with _cache_lock:
            _cache[key] = known
    return known


def _resolve(root: Path, version: int, at: int, read_version: int | None) -> int | str:
    if read_version is not None and read_version != version - 1:
        return (
            f"it read version {read_version} but committed as {version}: another commit came "
            "between, so which commits its search saw is not known"
        )
    log_dir = root / "_delta_log"
    numbers = [int(m.group(1)) for p in log_dir.iterdir() if (m := _LOG_FILE.match(p.name))]
    oldest = min((n for n in numbers if n < version), default=version)
    if oldest >= version:
        return "its log holds no commit before it"
    modified: list[int] = []
    for number in range(oldest, version):
        try:  # delta-rs compares whole milliseconds of the store's modification time
            modified.append((log_dir / f"{number:020d}.json").stat().st_mtime_ns // 1_000_000)
        except OSError:
            return f"its log no longer holds commit {number}"
    infos = log_commit_infos(root, oldest, version - 1)
    if infos is None:
        return f"its log no longer holds the commits from {oldest} to {version - 1}"
    own: list[int] = []
    for info in reversed(infos):  # oldest first
        stamp = info.get("inCommitTimestamp", info.get("timestamp"))
        if not isinstance(stamp, int):
            return f"commit {info['version']} records no time to check its file's against"
        own.append(stamp)
    by_file, by_commit = last_at_or_before(modified, at), last_at_or_before(own, at)
    if by_file is None or by_commit is None:
        return (
            "the commits' times are out of order around that time (or two have exactly that "
            "time), so the version it chose depends on how its search went"
        )
    if by_file != by_commit and not _in_write(own, modified, at, by_file, by_commit):
        return (
            f"the commit files' modification times give version {oldest + by_file} and the "
            f"commits' own times version {oldest + by_commit} (clocks skewed, or the log's "
            "files copied or touched since), and delta-rs used the first"
        )
    if by_file != by_commit:
        log.info(
            "%s: the RESTORE at version %d asked for a time in commit %d's write (after its "
            "own timestamp, before its file's: a time from the table's history, say), so "
            "delta-rs restored version %d",
            root,
            version,
            oldest + by_commit,
            oldest + by_file,
        )
    if by_file < 0 and oldest > 0:
        return (
            f"that time is before the oldest commit the log holds ({oldest}): delta-rs then "
            "restores the oldest its log held, which may have been cleaned up since"
        )
    resolved = oldest + max(by_file, 0)
    if resolved >= version - 1:  # delta-rs refuses to restore the version it read
        return f"it resolves to version {resolved}, which a restore at {version} cannot bring back"
    then, after = _data_files(root, resolved), _data_files(root, version)
    if then is None or after is None:
        return f"the log no longer gives the data files of version {resolved} or {version}"
    if then != after:
        return (
            f"it resolves to version {resolved}, but the table after the restore does not "
            "hold that version's data files"
        )
    return resolved


def _in_write(
    own: Sequence[int], modified: Sequence[int], at: int, by_file: int, by_commit: int
) -> bool:
    """Whether the two answers differ only because `at` falls in the write of the commit
    after the files' answer: at or after its own timestamp, before its file's modification,
    within a commit's write time (`WRITE_MS`; more is a clock out of step, or a touched
    file). delta-rs compared the file's time, so its answer is the files'."""
    ahead = by_file + 1
    return (
        by_commit == ahead
        and own[ahead] <= at < modified[ahead]
        and modified[ahead] - own[ahead] <= WRITE_MS
    )


def _data_files(root: Path, version: int) -> set[str] | None:
    """The data files of the table at `version`; None when that version cannot be read."""
    from deltalake import DeltaTable

    try:
        return set(DeltaTable(str(root), version=version).file_uris())
    except Exception:  # delta-rs raises several types for a version it cannot load
        return None


def forget_resolved() -> None:
    """Drop the resolutions kept (as a new process starts; see `forget_cached_markers`)."""
    with _cache_lock:
        _cache.clear()
