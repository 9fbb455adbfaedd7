"""Another writer's RESTORE by time (delta-rs `DeltaTable.restore(datetime)`).

Its commit names the time, not the version; the loader refused every one and told the
user to restore again by version or rebuild. Now the version is worked out from the log
as delta-rs works it out (the latest commit file modified at or before the time), checked
against the table's data files after the restore, and followed like a restore by version;
where it cannot be known for sure the table is still refused, naming why.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from onceflow.consistency import validate_consistency
from onceflow.load import load
from onceflow.warehouse import open_table, read_table
from onceflow.warehouse.markers import forget_cached_markers, read_markers
from onceflow.warehouse.restore_time import WRITE_MS
from tests.helpers.lake import (
    clean_load_checksum,
    content_checksum,
    done,
    make_config,
    table_uri,
    write_extracted,
)
from tests.integration.load.test_external_restore import STRATEGIES, _batch


def _pause() -> datetime:
    """A time strictly between the commits before and after it (file times and the
    commits' own times both: whole milliseconds apart, on any file system's clock)."""
    time.sleep(0.03)
    moment = datetime.now(UTC)
    time.sleep(0.03)
    return moment


def _daily(tmp_path: Path, strategy: str, days: int) -> tuple[Any, list[datetime]]:
    """One load per day, with a time after each day's load."""
    cfg = make_config(tmp_path, STRATEGIES[strategy])
    after = []
    for day in range(days):
        write_extracted(tmp_path / "lake", _batch(strategy, day), day=day)
        assert load(cfg).ok
        after.append(_pause())
    return cfg, after


def _clean(tmp_path: Path, strategy: str) -> str:
    return clean_load_checksum(tmp_path, tmp_path / "lake", STRATEGIES[strategy])


def _version_at(uri: str, moment: datetime) -> int:
    """The newest version committed before `moment` (what a restore to it brings back)."""
    stamp = moment.timestamp() * 1000
    return max(h["version"] for h in DeltaTable(uri).history() if h["timestamp"] <= stamp)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_a_restore_by_time_is_followed_and_loaded_again_exactly_once(
    tmp_path: Path, strategy: str
) -> None:
    cfg, after = _daily(tmp_path, strategy, days=3)
    uri = table_uri(tmp_path)
    target = _version_at(uri, after[1])  # days 0 and 1
    DeltaTable(uri).restore(after[1])
    restore = DeltaTable(uri).version()
    assert "datetime" in DeltaTable(uri).history(1)[0]["operationParameters"]

    forget_cached_markers()
    [issue] = [i for i in validate_consistency(cfg)["issues"] if i["kind"] == "external_restore"]
    assert f"version {restore} is a RESTORE to version {target} (by time, " in issue["detail"]
    assert issue["restores"] == [{"version": restore, "restored": target}]

    summary = load(cfg)
    assert summary.ok, summary.as_dict()
    assert done(summary.counts()) == {"loaded": 1, "skipped": 2}
    assert any(f"RESTORE to version {target} (by time" in n for n in summary.results[0].reconciled)
    assert content_checksum(uri) == _clean(tmp_path, strategy)
    assert read_table(uri).num_rows == read_table(table_uri(tmp_path / "clean")).num_rows
    # the correction records the version: a fresh reader needs no times, the next load is a no-op
    log = Path(uri) / "_delta_log" / f"{restore + 1:020d}.json"
    info = json.loads(log.read_text().splitlines()[0])["commitInfo"]
    assert json.loads(info["onceflow.external_restore"])[0]["restored"] == target
    forget_cached_markers()
    assert not read_markers(open_table(uri)).restores
    assert done(load(cfg).counts()) == {"skipped": 3}


def test_a_restore_by_a_time_before_the_first_commit_brings_back_version_0(
    tmp_path: Path,
) -> None:
    # delta-rs 1.6 does not refuse it: its search stops at the oldest version the log holds
    cfg, _ = _daily(tmp_path, "merge", days=3)
    uri = table_uri(tmp_path)
    DeltaTable(uri).restore(datetime(2000, 1, 1, tzinfo=UTC))
    assert set(DeltaTable(uri).file_uris()) == set(DeltaTable(uri, version=0).file_uris())
    forget_cached_markers()
    held = read_markers(open_table(uri))
    assert [r.to_version for r in held.restores] == [0] and len(held.held_ids()) == 1
    summary = load(cfg)
    assert summary.ok and done(summary.counts()) == {"loaded": 2, "skipped": 1}
    assert content_checksum(uri) == _clean(tmp_path, "merge")


def test_a_restore_by_time_in_a_chain_of_restores_by_version_is_followed(
    tmp_path: Path,
) -> None:
    cfg, _ = _daily(tmp_path, "scd2", days=4)
    uri = table_uri(tmp_path)
    DeltaTable(uri).restore(0)  # by version: window 0
    first = DeltaTable(uri).version()
    moment = _pause()
    DeltaTable(uri).restore(first - 1)  # by version: every window again
    DeltaTable(uri).restore(moment)  # by time: the first restore's version (window 0)
    by_time = DeltaTable(uri).version()
    DeltaTable(uri).restore(first - 1)  # and by version again: every window
    DeltaTable(uri).restore(by_time)  # by version, to the restore by time: window 0
    forget_cached_markers()
    held = read_markers(open_table(uri))
    assert [r.to_version for r in held.restores] == [0, first - 1, first, first - 1, by_time]
    assert len(held.held_ids()) == 1
    summary = load(cfg)
    assert summary.ok and done(summary.counts()) == {"loaded": 3, "skipped": 1}
    assert content_checksum(uri) == _clean(tmp_path, "scd2")


def _touch(uri: str, version: int, millis: int) -> None:
    path = Path(uri) / "_delta_log" / f"{version:020d}.json"
    os.utime(path, ns=(millis * 1_000_000, millis * 1_000_000))


def test_a_restore_by_time_whose_times_do_not_settle_it_is_refused_naming_the_fix(
    tmp_path: Path,
) -> None:
    cfg, after = _daily(tmp_path, "append", days=3)
    uri = table_uri(tmp_path)
    target = _version_at(uri, after[0])
    DeltaTable(uri).restore(after[0])
    # the commit after the target now looks modified before the time (clock skew, a copy):
    # delta-rs's search would have gone otherwise, and the commit's own time disagrees
    _touch(uri, target + 1, int(after[0].timestamp() * 1000) - 1)
    forget_cached_markers()
    summary = load(cfg)
    assert not summary.ok
    error = summary.results[0].error or ""
    assert uri in error and "RESTORE to the time " in error
    assert "modification times give version" in error
    assert "restore it again naming the version number" in error
    assert "unreadable_table" in {i["kind"] for i in validate_consistency(cfg)["issues"]}
    # restored again by version: followed, and loaded again exactly once
    DeltaTable(uri).restore(target)
    summary = load(cfg)
    assert summary.ok and done(summary.counts()) == {"loaded": 2, "skipped": 1}
    assert content_checksum(uri) == _clean(tmp_path, "append")


def test_a_resolved_version_whose_files_differ_from_the_restored_table_is_refused(
    tmp_path: Path,
) -> None:
    cfg, after = _daily(tmp_path, "append", days=3)
    uri = table_uri(tmp_path)
    target = _version_at(uri, after[0])
    DeltaTable(uri).restore(after[0])
    # both times of the next commit moved before the restore's time: they agree, and
    # name a version whose data files are not the restored table's
    moved = int(after[0].timestamp() * 1000) - 1
    log = Path(uri) / "_delta_log" / f"{target + 1:020d}.json"
    lines = log.read_text().splitlines()
    first = json.loads(lines[0])
    first["commitInfo"]["timestamp"] = moved
    log.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    _touch(uri, target + 1, moved)
    forget_cached_markers()
    summary = load(cfg)
    assert not summary.ok
    assert "does not hold that version's data files" in (summary.results[0].error or "")


def test_a_time_before_a_cleaned_up_log_is_refused_and_a_restore_by_version_is_followed(
    tmp_path: Path,
) -> None:
    cfg, _ = _daily(tmp_path, "merge", days=3)
    uri = table_uri(tmp_path)
    DeltaTable(uri).create_checkpoint()
    checkpoint = DeltaTable(uri).version()
    write_extracted(tmp_path / "lake", _batch("merge", 3), day=3)
    assert load(cfg).ok
    for number in range(checkpoint):  # what a log clean-up after the checkpoint removes
        (Path(uri) / "_delta_log" / f"{number:020d}.json").unlink()
    # delta-rs restores the oldest version its log holds, the checkpoint's; whether the
    # log held older ones when it restored is not known afterwards
    DeltaTable(uri).restore(datetime(2000, 1, 1, tzinfo=UTC))
    forget_cached_markers()
    summary = load(cfg)
    assert not summary.ok
    assert f"before the oldest commit the log holds ({checkpoint})" in (
        summary.results[0].error or ""
    )
    DeltaTable(uri).restore(checkpoint)
    summary = load(cfg)
    assert summary.ok and done(summary.counts()) == {"loaded": 1, "skipped": 3}
    assert content_checksum(uri) == _clean(tmp_path, "merge")


@pytest.mark.parametrize("write_ms", [5, 60_000])
def test_a_restore_to_a_commits_own_timestamp_restored_the_one_before(
    tmp_path: Path, write_ms: int
) -> None:
    # the time users copy from `history()`: delta-rs compares it with the commit file's
    # modification time, a few ms later, and restores the commit before; followed, unless
    # the file's time is further from the commit's own than a write takes (a clock off)
    cfg, _ = _daily(tmp_path, "append", days=3)
    uri = table_uri(tmp_path)
    [info] = [h for h in DeltaTable(uri).history() if h["version"] == 2]
    _touch(uri, 2, info["timestamp"] + write_ms)
    DeltaTable(uri).restore(datetime.fromtimestamp(info["timestamp"] / 1000, UTC))
    assert set(DeltaTable(uri).file_uris()) == set(DeltaTable(uri, version=1).file_uris())
    forget_cached_markers()
    summary = load(cfg)
    if write_ms > WRITE_MS:
        assert not summary.ok
        assert "modification times give version 1 and the commits' own times version 2" in (
            summary.results[0].error or ""
        )
        return
    assert summary.ok and done(summary.counts()) == {"loaded": 2, "skipped": 1}
    assert any("RESTORE to version 1 (by time" in n for n in summary.results[0].reconciled)
    assert content_checksum(uri) == _clean(tmp_path, "append")
