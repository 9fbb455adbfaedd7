"""validate-consistency / fix-inconsistencies, one kind of inconsistency at a time.

Each inconsistency is produced for real (a SIGKILLed loader, a failed load, a dropped
Delta table, files left on disk...), reported, fixed, and a second validation says
consistent. Where the state store matters the test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from onceflow.config import Config, load_config
from onceflow.consistency import fix_inconsistencies, force_unlock, validate_consistency
from onceflow.lake import TEMP_MARKER
from onceflow.lake.discovery import discover_table_files
from onceflow.lake.paths import sidecar_path
from onceflow.lake.sidecar import read_sidecar, write_sidecar
from onceflow.load import load
from onceflow.state import (
    ExtractionEntry,
    ExtractionOutcome,
    FileEntry,
    Store,
    open_store,
)
from onceflow.windows import window_for
from tests.helpers.cli import run_cli, spawn
from tests.helpers.lake import (
    START,
    config_dict,
    make_lake,
    orders_batch,
    read_table,
    table_uri,
)
from tests.helpers.recovery import RUN_DATE, make_sqlite_source, write_project
from tests.helpers.servers import pg_state_url, unique

# A loader stand-in that takes a table's lock and claims a file exactly as the loader does
# (real store, real lease row with its pid), then waits to be SIGKILLed.
CHILD = """
import sys, time
from onceflow.state import FileEntry, open_store
url, lock, target, paths = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
store = open_store(url)
token = store.locks.acquire(lock, ttl=600)
if paths:
    store.files.register(target, "src.orders", "p", [FileEntry(p, p) for p in paths])
    assert store.files.claim(target, paths[0], token)
print("ready", flush=True)
time.sleep(120)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def any_state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A state-store URL, once per backend (PostgreSQL in a fresh schema)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    admin = request.getfixturevalue("pg_admin")
    schema = unique("of_consistency")
    admin.execute(f'CREATE SCHEMA "{schema}"')
    yield pg_state_url(schema)
    admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


TWO = ("orders", "customers")


def _project(
    tmp_path: Path, state: str, *, tables: tuple[str, ...] = ("orders",), days: int = 2
) -> tuple[Path, Config]:
    """`days` extracted files of each table (5 rows each) and an onceflow.yml loading them."""
    for name in tables:
        make_lake(tmp_path / "lake", files=days, rows=5, name=name)
    data = config_dict(tmp_path, state=state)
    data["tables"] = [
        {"source": "src", "table": name, "load": {"strategy": "append"}} for name in tables
    ]
    path = tmp_path / "onceflow.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path, load_config(path)


def _record_runs(store: Store, tmp_path: Path, tables: tuple[str, ...], days: int) -> None:
    """Record each day's run as the extractor does: every table extracted, run completed."""
    for day in range(days):
        run_date = START + timedelta(days=day)
        run_id = f"p_{run_date:%Y%m%d}"
        window = window_for(run_date, "UTC").iso()
        store.runs.begin(run_id, "p", run_date.isoformat(), window)
        store.extractions.ensure(
            run_id,
            [
                ExtractionEntry(f"src.{name}", "src", name, "incremental", *window)
                for name in tables
            ],
        )
        results = []
        for name in tables:
            [file] = [
                f
                for f in discover_table_files(str(tmp_path / "lake"), "src", name)
                if f.run_id == run_id
            ]
            store.extractions.start(run_id, f"src.{name}", window)
            results.append(
                ExtractionOutcome(
                    table_key=f"src.{name}",
                    action="extracted",
                    record_count=file.record_count,
                    file_path=file.path,
                    file_size=file.size,
                    checksum=file.checksum,
                    window_start=window[0],
                    window_end=window[1],
                )
            )
        store.extractions.complete(run_id, results)
        assert store.runs.finish(run_id).status == "completed"


def _validate_json(config: Path, *extra: str) -> dict[str, Any]:
    out = run_cli("validate-consistency", "-c", str(config), "--json", *extra)
    report: dict[str, Any] = json.loads(out.stdout)
    assert out.returncode == (0 if report["consistent"] else 1), out.stderr
    return report


def _kinds(report: dict[str, Any]) -> list[str]:
    return sorted(i["kind"] for i in report["issues"])


def _killed_holder(url: str, lock: str, target: str = "", paths: tuple[str, ...] = ()) -> int:
    """Start a process that takes `lock` (and claims paths[0]), SIGKILL it; its pid."""
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, url, lock, target, *paths],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    return proc.pid


def _day_paths(tmp_path: Path, name: str = "orders") -> list[str]:
    return [f.path for f in discover_table_files(str(tmp_path / "lake"), "src", name)]


def _day_ids(tmp_path: Path, name: str = "orders") -> list[str]:
    return [f.file_id for f in discover_table_files(str(tmp_path / "lake"), "src", name)]


def _lock(tmp_path: Path) -> str:
    return f"load:{table_uri(tmp_path)}"


# -- orphaned processing records --------------------------------------------------------


def test_orphan_of_a_sigkilled_loader_is_reported_with_its_stale_lease_and_fixed(
    tmp_path: Path, any_state_url: str
) -> None:
    config, cfg = _project(tmp_path, any_state_url)
    first, second = _day_ids(tmp_path)
    uri, lock = table_uri(tmp_path), _lock(tmp_path)
    pid = _killed_holder(any_state_url, lock, uri, (first, second))
    store = open_store(any_state_url)
    assert store.files.get(uri, first).status == "processing"
    assert store.locks.holder(lock) is not None  # the lease row outlived its process

    report = _validate_json(config)
    assert not report["consistent"]
    assert _kinds(report) == ["orphaned_processing", "stale_lock"]
    orphan = next(i for i in report["issues"] if i["kind"] == "orphaned_processing")
    assert orphan["subject"] == first and orphan["table"] == "src.orders"
    assert f"pid {pid} is no longer running" in orphan["detail"]
    assert report["file_tracker"] == {"files_checked": 2, "consistent": False, "inconsistencies": 1}
    text = run_cli("validate-consistency", "-c", str(config))
    assert text.returncode == 1
    # every inconsistency is counted at the top (the orphan and its stale lock), the file
    # tracker's own listed under it
    assert (
        f"Inconsistencies Found: 2 (1 in the file tracker, 1 listed below)\n"
        f"  - Orphaned processing record: {first}\n"
    ) in text.stdout
    assert text.stdout.endswith("Total Inconsistencies: 2\n")
    assert "  ✗ src.orders\n    - 1 file tracker inconsistency (listed above)\n" in text.stdout
    assert f"  - Stale lock: {lock}\n" in text.stdout

    fixed = run_cli("fix-inconsistencies", "-c", str(config), "--json")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    actions = json.loads(fixed.stdout)["actions"]
    assert any(a.startswith(f"released stale lock {lock}") for a in actions), actions
    assert any(
        f"{first} (src.orders): orphaned processing record put back to pending" in a
        for a in actions
    )
    assert store.files.get(uri, first).status == "pending"
    assert store.locks.holder(lock) is None
    assert validate_consistency(cfg, store=store)["consistent"]
    # the file is then loaded once, in order with the other
    assert load(cfg, store=store).counts()["loaded"] == 2
    assert read_table(table_uri(tmp_path)).num_rows == 10


def test_orphan_whose_lease_expired_is_put_back_and_its_owner_can_no_longer_finish_it(
    tmp_path: Path, any_state_url: str
) -> None:
    _, cfg = _project(tmp_path, any_state_url, days=1)
    [path] = _day_ids(tmp_path)
    uri, lock = table_uri(tmp_path), _lock(tmp_path)
    store = open_store(any_state_url)
    # This process is the loader: alive, but its lease ran out (a long pause).
    token = store.locks.acquire(lock, ttl=0.2)
    store.files.register(uri, "src.orders", "p", [FileEntry(path, path)])
    assert store.files.claim(uri, path, token)
    assert validate_consistency(cfg, store=store)["consistent"]  # a live lease: not orphaned
    time.sleep(0.3)

    report = validate_consistency(cfg, store=store)
    [orphan] = [i for i in report["issues"] if i["kind"] == "orphaned_processing"]
    assert "lease expired" in orphan["detail"] and orphan["reason"].startswith(
        f"its loader's lock {lock} is stale"
    )
    result = fix_inconsistencies(cfg, store=store)
    assert result["consistent"], result
    assert store.files.get(uri, path).status == "pending"
    # the stale owner's lock went with its files: it cannot record them any more
    assert not store.files.complete(uri, path, token, checksum=None, delta_version=0, batch_id="b")
    assert validate_consistency(cfg, store=store)["consistent"]


def test_orphan_whose_loader_lock_was_force_released_goes_back_to_pending(
    tmp_path: Path, any_state_url: str
) -> None:
    _, cfg = _project(tmp_path, any_state_url)
    store = open_store(any_state_url)
    files = discover_table_files(str(tmp_path / "lake"), "src", "orders")
    uri, lock = table_uri(tmp_path), _lock(tmp_path)
    token = store.locks.acquire(lock)
    store.files.register(
        uri,
        "src.orders",
        "p",
        [
            FileEntry(f.file_id, f.path, f.window_start, f.size, f.modified_time, f.checksum)
            for f in files
        ],
    )
    assert store.files.claim(uri, files[0].file_id, token)
    assert [held.name for held in force_unlock(cfg, yes=True, store=store)] == [lock]

    report = validate_consistency(cfg, store=store)
    assert _kinds(report) == ["orphaned_processing"]
    assert "its loader's lock is gone" in report["issues"][0]["detail"]
    result = fix_inconsistencies(cfg, store=store)
    assert result["consistent"] and result["fixes_applied"] == 1, result
    assert store.files.get(uri, files[0].file_id).status == "pending"
    assert load(cfg, store=store).counts()["loaded"] == 2


# -- locks ------------------------------------------------------------------------------


def test_stale_lock_of_a_killed_run_is_released_and_a_live_one_is_kept(
    tmp_path: Path, any_state_url: str
) -> None:
    _, cfg = _project(tmp_path, any_state_url, days=1)
    pid = _killed_holder(any_state_url, "pipeline:p")
    store = open_store(any_state_url)
    live = store.locks.acquire("load:someone/else", ttl=600)  # this process: alive

    report = validate_consistency(cfg, store=store)
    assert _kinds(report) == ["stale_lock"]
    assert report["issues"][0]["subject"] == "pipeline:p"
    assert f"pid {pid} is no longer running" in report["issues"][0]["detail"]
    result = fix_inconsistencies(cfg, store=store)
    assert result["actions"] == [f"released stale lock pipeline:p (pid {pid} is no longer running)"]
    assert result["consistent"]
    assert store.locks.holder("pipeline:p") is None
    assert store.locks.holds("load:someone/else", live)


# -- tables marked complete with failed files -------------------------------------------


def test_table_marked_complete_with_failed_files_is_named_and_its_run_marked_failed(
    tmp_path: Path, any_state_url: str
) -> None:
    tables = ("customers", "orders")
    config, _ = _project(tmp_path, any_state_url, tables=tables)
    store = open_store(any_state_url)
    _record_runs(store, tmp_path, tables, days=2)
    # The first orders file changes after extraction (same size): its load fails.
    bad = Path(_day_paths(tmp_path)[0])
    good = bad.read_bytes()
    data = bytearray(good)
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    loaded = run_cli("load", "-c", str(config))
    assert loaded.returncode == 1
    assert store.files.get(table_uri(tmp_path), _day_ids(tmp_path)[0]).status == "failed"
    # a failed load marks its run failed: `status` does not show it completed
    assert store.runs.get("p_20250101").status == "failed"
    assert store.runs.get("p_20250102").status == "completed"
    status = json.loads(
        run_cli("status", "-c", str(config), "--date", "2025-01-01", "--json").stdout
    )
    assert status["status"] == "failed", status
    assert _kinds(_validate_json(config)) == ["damaged_lake_file", "failed_files"]
    # the load's proof flags the extraction for re-extraction (the next run repairs it)
    flagged = store.extractions.of_run("p_20250101")["src.orders"]
    assert flagged.force_reprocess and flagged.last_action == "corrupt"
    # a store an older onceflow wrote (its load left the run completed, and flagged
    # nothing) is named and fixed
    with store.db.transaction() as tx:
        tx.execute(
            "UPDATE extractions SET status = 'completed', force_reprocess = 0 WHERE run_id = ?",
            ("p_20250101",),
        )
    assert store.runs.finish("p_20250101").status == "completed"

    report = _validate_json(config)
    # the file is not loaded, so it is checksummed: it no longer matches its sidecar
    assert _kinds(report) == ["completed_with_failed_files", "damaged_lake_file"]
    [issue, damaged] = report["issues"]
    assert (issue["subject"], issue["table"], issue["failed_files"]) == (
        "src.orders",
        "src.orders",
        1,
    )
    assert issue["runs"] == ["p_20250101"] and issue["files"] == [str(bad)]
    assert "does not match its sidecar" in issue["detail"]
    assert damaged["subject"] == _day_ids(tmp_path)[0]
    assert "differs from its sidecar's" in damaged["problem"]
    assert report["tables"] == [
        {"table": "src.customers", "consistent": True, "issues": 0},
        {"table": "src.orders", "consistent": False, "issues": 2},
    ]
    text = run_cli("validate-consistency", "-c", str(config))
    assert text.returncode == 1
    assert text.stdout.startswith(
        "=== PIPELINE CONSISTENCY VALIDATION ===\n"
        "Overall Status: INCONSISTENT\n"
        "File Tracker Status: consistent\n"
        "Total Files Checked: 4\n"
        "Inconsistencies Found: 2 (0 in the file tracker, 2 listed below)\n"
        "Table Consistency:\n"
        "  ✓ src.customers\n"
        "  ✗ src.orders\n"
        "    - Table marked as completed but has 1 failed file\n"
    ), text.stdout

    fixed = run_cli("fix-inconsistencies", "-c", str(config))
    assert fixed.returncode == 1, fixed.stdout + fixed.stderr  # the file is still damaged
    assert fixed.stdout.startswith(
        "=== FIXING PIPELINE INCONSISTENCIES ===\n"
        "Fixes Applied: 1\n"
        "Fixes Failed: 0\n"
        "Actions taken:\n"
        "  - src.orders: run p_20250101 status completed -> failed (table marked as "
        "completed but has 1 failed file)\n"
        "Overall Status After Fixes: INCONSISTENT\n"
    ), fixed.stdout
    assert store.runs.get("p_20250101").status == "failed"
    assert store.runs.get("p_20250102").status == "completed"
    # the run's verdict is right now, but the file is still failed and damaged: only a
    # repaired file (a re-extraction; here its bytes put back) and a load end that
    after = _validate_json(config)
    assert _kinds(after) == ["damaged_lake_file", "failed_files"]
    failed = next(i for i in after["issues"] if i["kind"] == "failed_files")
    assert failed["summary"] == "Table has 1 file that failed to load"
    assert failed["files"] == [str(bad)] and "does not match its sidecar" in failed["detail"]
    bad.write_bytes(good)
    assert run_cli("load", "-c", str(config)).returncode == 0
    # its files are loaded and no post-load rule has a verdict on it: the run is complete
    assert store.runs.get("p_20250101").status == "completed"
    again = run_cli("validate-consistency", "-c", str(config))
    assert again.returncode == 0 and "Overall Status: CONSISTENT" in again.stdout


# -- sidecars ---------------------------------------------------------------------------


def test_deleted_or_rewritten_sidecar_of_a_completed_extraction_is_marked_for_reextraction(
    tmp_path: Path,
) -> None:
    config, cfg = _project(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
    store = open_store(cfg.state_url)
    _record_runs(store, tmp_path, ("orders",), days=2)
    assert validate_consistency(cfg, store=store)["consistent"]
    first, second = (Path(p) for p in _day_paths(tmp_path))
    sidecar_path(first).unlink()
    rewritten = read_sidecar(second) or {}
    write_sidecar(second, {**rewritten, "checksum": "0" * 64})

    report = _validate_json(config)
    # the second file, not loaded yet, is checksummed: it no longer matches its sidecar
    assert _kinds(report) == ["damaged_lake_file", "sidecar_mismatch", "sidecar_mismatch"]
    problems = {i["subject"]: i["problem"] for i in report["issues"]}
    assert problems == {
        "p_20250101:src.orders": "no complete sidecar",
        "p_20250102:src.orders": "sidecar checksum differs from the state",
        _day_ids(tmp_path)[-1]: problems[_day_ids(tmp_path)[-1]],
    }
    assert "differs from its sidecar's" in problems[_day_ids(tmp_path)[-1]]
    text = run_cli("validate-consistency", "-c", str(config)).stdout
    table = text[text.index("  ✗ src.orders\n") : text.index("Locks Checked:")]
    assert "    - Sidecar disagrees with the state: p_20250101:src.orders\n" in table
    assert "    - Sidecar disagrees with the state: p_20250102:src.orders\n" in table

    result = fix_inconsistencies(cfg, store=store)
    assert result["fixes_applied"] == 2, result
    for run_id in ("p_20250101", "p_20250102"):
        extraction = store.extractions.of_run(run_id)["src.orders"]
        assert extraction.force_reprocess and extraction.status == "pending"
    # the lake file itself stays damaged until its re-extraction (its sidecar put back)
    assert [i["kind"] for i in result["remaining"]] == ["damaged_lake_file"]
    write_sidecar(second, rewritten)
    assert _validate_json(config)["consistent"]


def test_a_sidecar_edited_by_hand_is_reported_against_the_state_and_the_file(
    tmp_path: Path,
) -> None:
    """A record_count changed or a window moved a day in a sidecar went unnoticed: only
    a size or checksum difference was reported."""
    config, cfg = _project(tmp_path, f"sqlite:///{tmp_path / 'state.db'}", days=3)
    first, second, third = (Path(p) for p in _day_paths(tmp_path))
    # the third day's sidecar is edited before its extraction is recorded, so the state
    # agrees with it: only the Parquet footer tells
    write_sidecar(third, {**(read_sidecar(third) or {}), "record_count": 7})
    store = open_store(cfg.state_url)
    _record_runs(store, tmp_path, ("orders",), days=3)
    write_sidecar(first, {**(read_sidecar(first) or {}), "record_count": 3})
    moved = read_sidecar(second) or {}
    write_sidecar(second, {**moved, "window_start": "2025-01-01T00:00:00+00:00"})

    report = _validate_json(config)
    problems = {
        i["subject"]: i["problem"] for i in report["issues"] if i["kind"] == "sidecar_mismatch"
    }
    assert problems == {
        "p_20250101:src.orders": "its sidecar's record_count 3 differs from the state's (5)",
        "p_20250102:src.orders": (
            "its sidecar's window 2025-01-01T00:00:00+00:00 → 2025-01-03T00:00:00+00:00 "
            "differs from the state's (2025-01-02T00:00:00+00:00 → 2025-01-03T00:00:00+00:00)"
        ),
        "p_20250103:src.orders": "its sidecar's record_count 7 differs from the file's 5 rows",
    }
    details = [i["detail"] for i in report["issues"] if i["kind"] == "sidecar_mismatch"]
    assert all("--tables src.orders --force-reprocess`)" in d for d in details), details
    # fix-inconsistencies marks each window for re-extraction, as for a rewritten sidecar
    assert fix_inconsistencies(cfg, store=store)["fixes_applied"] == 3


def test_a_damaged_lake_file_is_warned_of_once_by_validate_consistency(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The lake folder was scanned by three checks, each logging the size warning."""
    _config, cfg = _project(tmp_path, f"sqlite:///{tmp_path / 'state.db'}", days=1)
    [path] = _day_paths(tmp_path)
    with open(path, "ab") as data:
        data.write(b"x")
    with caplog.at_level("WARNING", logger="onceflow"):
        report = validate_consistency(cfg)
    assert not report["consistent"]
    warned = [r for r in caplog.records if "differs from its sidecar" in r.getMessage()]
    assert len(warned) == 1, [r.getMessage() for r in warned]


# -- Delta log against the tracker ------------------------------------------------------


def test_commit_of_a_loader_killed_before_its_tracker_update_is_recorded_by_fix(
    tmp_path: Path, any_state_url: str
) -> None:
    config, cfg = _project(tmp_path, any_state_url)
    first, second = _day_ids(tmp_path)
    uri, lock = table_uri(tmp_path), _lock(tmp_path)
    crashed = run_cli("load", "-c", str(config), crash_at="after_delta_commit")
    assert crashed.returncode == -signal.SIGKILL
    store = open_store(any_state_url)
    assert store.files.get(uri, first).status == "processing"

    report = _validate_json(config)
    # the commit is in, the tracker still says processing, by a loader that is gone
    assert _kinds(report) == ["commit_not_tracked", "orphaned_processing", "stale_lock"]
    assert {i["subject"] for i in report["issues"]} == {first, lock}
    fixed = run_cli("validate-consistency", "-c", str(config), "--fix", "--json")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    record = store.files.get(uri, first)
    assert (record.status, record.delta_version) == ("completed", 0)
    assert _validate_json(config)["consistent"]
    # nothing twice: the next load skips the committed file and loads the other
    summary = load(cfg, store=store)
    assert (summary.counts()["skipped"], summary.counts()["loaded"]) == (1, 1)
    assert store.files.get(uri, second).status == "completed"
    assert sorted(read_table(table_uri(tmp_path)).column("id").to_pylist()) == sorted(
        orders_batch(0, 5).column("id").to_pylist() + orders_batch(1, 5).column("id").to_pylist()
    )


def test_a_live_load_paused_after_its_commit_is_in_progress_and_a_dead_one_is_not(
    tmp_path: Path, any_state_url: str
) -> None:
    config, cfg = _project(tmp_path, any_state_url)
    first, _second = _day_ids(tmp_path)
    gate = tmp_path / "gate"
    loader = spawn(
        "load", "-c", str(config), env={"ONCEFLOW_PAUSE_AT": f"after_delta_commit:{gate}"}
    )
    try:
        deadline = time.monotonic() + 60
        while not Path(f"{gate}.reached").exists():  # committed, tracker not updated yet
            assert loader.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        store = open_store(any_state_url)
        assert store.files.get(table_uri(tmp_path), first).status == "processing"

        report = _validate_json(config)  # exit 0: a live load is not an inconsistency
        assert report["consistent"] and report["issues"] == [], report["issues"]
        [live] = report["in_progress"]
        assert (live["kind"], live["subject"], live["lock"]) == (
            "load_in_progress",
            first,
            _lock(tmp_path),
        )
        assert f"pid {loader.pid}" in live["detail"]
        text = run_cli("validate-consistency", "-c", str(config))
        assert text.returncode == 0, text.stdout
        assert "Overall Status: CONSISTENT\n" in text.stdout
        assert "In Progress (a live load, not an inconsistency): 1\n" in text.stdout
    finally:
        loader.kill()
        loader.communicate()
    # its holder is dead: the same state is an inconsistency again, and --fix repairs it
    report = _validate_json(config)
    assert _kinds(report) == ["commit_not_tracked", "orphaned_processing", "stale_lock"]
    assert report["in_progress"] == []
    assert run_cli("validate-consistency", "-c", str(config), "--fix").returncode == 0
    assert load(cfg).counts()["loaded"] == 1  # the other file; the committed one is held


def test_tracker_entries_of_a_dropped_delta_table_go_back_to_pending_and_reload(
    tmp_path: Path, any_state_url: str
) -> None:
    _, cfg = _project(tmp_path, any_state_url)
    store = open_store(any_state_url)
    assert load(cfg, store=store).counts()["loaded"] == 2
    shutil.rmtree(table_uri(tmp_path))

    report = validate_consistency(cfg, store=store)
    assert _kinds(report) == ["tracked_without_commit", "tracked_without_commit"]
    assert report["file_tracker"]["inconsistencies"] == 2
    result = fix_inconsistencies(cfg, store=store)
    assert result["consistent"], result
    assert store.files.counts(table_uri(tmp_path))["pending"] == 2
    assert load(cfg, store=store).counts()["loaded"] == 2
    assert read_table(table_uri(tmp_path)).num_rows == 10
    assert validate_consistency(cfg, store=store)["consistent"]


def test_a_table_whose_delta_log_is_damaged_is_reported_with_its_fix_and_the_others_checked(
    tmp_path: Path,
) -> None:
    """One unreadable Delta log used to abort the whole report (exit 1, one error line),
    hiding every other table's state, a damaged sidecar among them."""
    config, cfg = _project(tmp_path, f"sqlite:///{tmp_path / 'state.db'}", tables=TWO)
    store = open_store(cfg.state_url)
    assert load(cfg, store=store).ok
    log_file = Path(table_uri(tmp_path, "orders")) / "_delta_log" / f"{0:020d}.json"
    log_file.write_text("garbage\n", encoding="utf-8")
    sidecar_path(Path(_day_paths(tmp_path, "customers")[-1])).write_text("{", encoding="utf-8")

    report = _validate_json(config, "--safe-age", "0")
    assert _kinds(report) == ["damaged_lake_file", "unreadable_table"]
    unreadable, damaged = (
        next(i for i in report["issues"] if i["kind"] == kind)
        for kind in ("unreadable_table", "damaged_lake_file")
    )
    assert unreadable["table"] == "src.orders"
    assert "cannot open the Delta table" in unreadable["detail"]
    assert "restore that file from a backup" in unreadable["detail"]
    assert "delete the table's folder and run `onceflow load`" in unreadable["detail"]
    assert damaged["table"] == "src.customers"
    assert "not valid JSON" in damaged["detail"]
    assert [t["consistent"] for t in report["tables"]] == [False, False]
    text = run_cli("validate-consistency", "-c", str(config))
    assert text.returncode == 1
    assert "Table that cannot be opened or read: src.orders" in text.stdout
    assert "Total Inconsistencies: 2" in text.stdout

    # nothing of an unreadable table is touched: its data files are not garbage (the
    # damaged log hides which are referenced)
    data_files = sorted(Path(table_uri(tmp_path, "orders")).glob("*.parquet"))
    fixed = fix_inconsistencies(cfg, safe_age_seconds=0, store=store)
    assert any("src.orders: left as it is" in f for f in fixed["failures"]), fixed
    assert sorted(Path(table_uri(tmp_path, "orders")).glob("*.parquet")) == data_files

    # the fix it names: delete the folder, and a load rebuilds the table from the lake
    shutil.rmtree(table_uri(tmp_path, "orders"))
    assert load(cfg, tables=["src.orders"], store=store).counts()["loaded"] == 2
    assert read_table(table_uri(tmp_path, "orders")).num_rows == 10


def test_a_load_counts_the_files_of_a_table_it_cannot_open_as_failed_with_the_reason(
    tmp_path: Path,
) -> None:
    """It said `0 loaded, 0 skipped, 0 failed` and then the error: a new lake file of the
    table was counted nowhere."""
    config, cfg = _project(tmp_path, f"sqlite:///{tmp_path / 'state.db'}", days=1)
    assert load(cfg).ok
    make_lake(tmp_path / "lake", files=2, rows=5)  # the next day's file
    log_file = Path(table_uri(tmp_path)) / "_delta_log" / f"{0:020d}.json"
    log_file.write_text("garbage\n", encoding="utf-8")

    summary = load(cfg)
    [result] = summary.results
    assert not summary.ok and "cannot open the Delta table" in (result.error or "")
    # the file the table held (the tracker says so) is not counted; the new one failed
    assert [(f.file_id, f.action) for f in result.files] == [(_day_ids(tmp_path)[1], "failed")]
    assert result.files[0].error == result.error
    out = run_cli("load", "-c", str(config))
    assert out.returncode == 1
    assert "src.orders: 0 loaded, 0 skipped, 1 failed" in out.stdout


def test_a_table_missing_a_commit_file_names_it_in_a_short_line_with_the_fix(
    tmp_path: Path,
) -> None:
    """delta-kernel's gap error is ~1,100 characters of Rust Debug output naming neither
    the missing file nor what to do first."""
    config, cfg = _project(tmp_path, f"sqlite:///{tmp_path / 'state.db'}", days=4)
    assert load(cfg).ok
    log = Path(table_uri(tmp_path)) / "_delta_log"
    assert (log / f"{3:020d}.json").exists()
    (log / f"{1:020d}.json").unlink()
    (log / f"{2:020d}.json").unlink()
    out = run_cli("load", "-c", str(config))
    assert out.returncode == 1
    [line] = [x for x in out.stderr.splitlines() if "cannot open the Delta table" in x]
    assert line.strip() == (
        f"error: {table_uri(tmp_path)}: cannot open the Delta table: its _delta_log is "
        "missing 00000000000000000001.json, 00000000000000000002.json: the log goes from "
        "version 0 to 3. Either restore that file from a backup, or delete the table's "
        "folder and run `onceflow load`, which rebuilds the table from the lake's files"
    )
    report = _validate_json(config, "--safe-age", "0")
    [unreadable] = [i for i in report["issues"] if i["kind"] == "unreadable_table"]
    assert "its _delta_log is missing 00000000000000000001.json" in unreadable["detail"]
    assert "ParsedLogPath" not in unreadable["detail"]
    from onceflow.errors import ValidateError
    from onceflow.validate.inputs import delta_input

    with pytest.raises(ValidateError, match=r"the log goes from version 0 to 3\. Either restore"):
        delta_input(table_uri(tmp_path))  # what a validation of the table says


# -- files on disk ----------------------------------------------------------------------


def test_old_temp_and_uncommitted_delta_files_are_removed_and_young_ones_kept(
    tmp_path: Path,
) -> None:
    config, _ = _project(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
    assert run_cli("load", "-c", str(config)).returncode == 0
    uri = Path(table_uri(tmp_path))
    folder = Path(_day_paths(tmp_path)[0]).parent
    old_temp = folder / "p_20250101.parquet.onceflow-tmp-dead"
    old_stray = uri / "part-00000-killed-writer.snappy.parquet"
    old_hashed = uri / "part-00001-killed-writer.snappy.parquet#1"
    young_temp = folder / "p_20250101.parquet.onceflow-tmp-live"
    young_stray = uri / "part-00002-being-written.snappy.parquet"
    young_hashed = uri / "part-00003-being-written.snappy.parquet#1"
    # another pipeline sharing the lake: its extraction holds none of this one's locks
    theirs = folder.parents[3] / "crm" / "contacts" / "202501" / "01"
    theirs.mkdir(parents=True)
    their_temp = theirs / "q_20250101.parquet.onceflow-tmp-theirs"
    for path in (old_temp, old_stray, old_hashed, young_temp, young_stray, young_hashed):
        path.write_bytes(b"partial")
    their_temp.write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    for path in (old_temp, old_stray, old_hashed, their_temp):
        os.utime(path, (two_hours_ago, two_hours_ago))

    report = _validate_json(config, "--safe-age", "3600")
    assert {(i["kind"], i["subject"]) for i in report["issues"]} == {
        ("temp_file", str(old_temp)),
        ("uncommitted_delta_file", str(old_stray)),
        ("uncommitted_delta_file", str(old_hashed)),
    }
    text = run_cli("validate-consistency", "-c", str(config)).stdout
    assert f"Temp Files In The Lake (older than 3600 s): 1\n  - {old_temp}\n" in text
    assert f"    - Delta data file no commit references: {old_hashed}\n" in text
    # a young file is a running writer's: only a zero safe age reports it
    assert len(_validate_json(config, "--safe-age", "0")["issues"]) == 6

    fixed = run_cli("fix-inconsistencies", "-c", str(config), "--safe-age", "3600")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert f"  - removed temp file {old_temp}\n" in fixed.stdout
    assert not old_temp.exists() and not old_stray.exists() and not old_hashed.exists()
    assert young_temp.exists() and young_stray.exists() and young_hashed.exists()
    assert their_temp.exists()
    assert _validate_json(config)["consistent"]
    assert read_table(str(uri)).num_rows == 10


def test_a_table_an_older_onceflow_wrote_with_a_uuid_tag_is_reported_with_its_rebuild(
    tmp_path: Path,
) -> None:
    """Arrow refuses such a table's schema and data files: validate-consistency and
    fix-inconsistencies used to crash on it (`Invalid storage type for UuidType`)."""
    import pyarrow as pa
    from deltalake import write_deltalake

    _, cfg = _project(tmp_path, f"sqlite:///{tmp_path / 'state.db'}", days=1)
    storage = pa.array([b"\xa0" * 16], pa.binary(16))
    write_deltalake(  # what an older onceflow made of a PostgreSQL uuid column
        table_uri(tmp_path),
        pa.table({"u": pa.ExtensionArray.from_storage(pa.uuid(), storage)}),
    )
    report = validate_consistency(cfg)
    [issue] = [i for i in report["issues"] if i["kind"] == "unreadable_table"]
    assert "delete the table's folder and run `onceflow load" in issue["detail"]
    fixed = fix_inconsistencies(cfg)
    assert not fixed["consistent"]
    assert "unreadable_table" in {i["kind"] for i in fixed["remaining"]}


def test_an_old_lake_file_without_sidecar_is_reported_and_removed_only_when_no_extraction_runs(
    tmp_path: Path,
) -> None:
    """`run`/`load` said uncommitted and exited 1 while validate-consistency said
    consistent. A young file may be a running extraction's: never reported or touched."""
    _, cfg = _project(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
    assert load(cfg).ok
    first = Path(_day_paths(tmp_path)[0])
    old = first.parent.parent / "05" / "p_20250105.parquet"
    young = first.parent.parent / "06" / "p_20250106.parquet"
    for path in (old, young):
        path.parent.mkdir(parents=True)
        shutil.copyfile(first, path)  # a data file its extraction never committed
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))

    report = validate_consistency(cfg)
    [issue] = report["issues"]
    assert (issue["kind"], issue["subject"], issue["table"]) == (
        "uncommitted_lake_file",
        str(old.absolute()),
        "src.orders",
    )
    assert (
        "`onceflow extract --date 2025-01-05 --tables src.orders --force-reprocess`"
        in (issue["detail"])
    )
    store = open_store(cfg.state_url)
    for lock in (cfg.pipeline_lock_name, f"{cfg.pipeline_lock_name}@p_20250107"):
        token = store.locks.acquire(lock, ttl=600)  # a live extraction, or a scheduled run
        kept = fix_inconsistencies(cfg, store=store)
        assert old.exists() and kept["fixes_failed"] == 1, kept
        assert "an extraction may be running" in kept["failures"][0]
        store.locks.release(lock, token)
    fixed = fix_inconsistencies(cfg, store=store)
    assert not old.exists() and young.exists()
    assert any("removed uncommitted lake file" in a for a in fixed["actions"])
    assert fixed["consistent"] and read_table(table_uri(tmp_path)).num_rows == 10


def test_a_loaded_lake_file_whose_sidecar_was_lost_is_kept_not_removed(tmp_path: Path) -> None:
    # the table holds it: deleting it would block every later rewind, and a re-extraction
    # of a window whose rows moved on would not bring it back
    _, cfg = _project(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
    assert load(cfg).ok
    rows = read_table(table_uri(tmp_path)).num_rows
    held = Path(_day_paths(tmp_path)[0])
    sidecar_path(held).unlink()
    two_hours_ago = time.time() - 7200
    os.utime(held, (two_hours_ago, two_hours_ago))
    fixed = fix_inconsistencies(cfg)
    assert held.exists(), fixed
    assert any("is known (loaded, or named by an extraction): kept" in f for f in fixed["failures"])
    assert read_table(table_uri(tmp_path)).num_rows == rows


def test_a_live_extractions_old_temp_file_is_kept_and_reported_and_the_extraction_commits(
    tmp_path: Path, any_state_url: str
) -> None:
    """fix-inconsistencies judged a temp file by its age alone and deleted a live one: the
    writer buffers a whole row group before it writes, so a slow source leaves the file
    untouched for longer than the safe age; the extraction then failed at its rename."""
    make_sqlite_source(tmp_path / "src.db", {"items": 500})
    project = write_project(tmp_path / "proj", f"sqlite:///{tmp_path / 'src.db'}", ["items"])
    data = yaml.safe_load(project.config.read_text(encoding="utf-8"))
    project.config.write_text(yaml.safe_dump({**data, "state": any_state_url}), encoding="utf-8")
    gate = tmp_path / "gate"
    extraction = spawn(
        "extract",
        "--config",
        str(project.config),
        "--date",
        RUN_DATE,
        env={"ONCEFLOW_PAUSE_AT": f"before_data_rename:{gate}"},
    )
    try:
        deadline = time.monotonic() + 60
        while not Path(f"{gate}.reached").exists():  # written to its temp file, not renamed
            assert extraction.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        [temp] = [p for p in project.lake.rglob("*") if TEMP_MARKER in p.name]
        two_hours_ago = time.time() - 7200
        os.utime(temp, (two_hours_ago, two_hours_ago))  # untouched for longer than safe age

        fixed = run_cli("fix-inconsistencies", "--config", str(project.config), "--json")
        assert fixed.returncode == 1, fixed.stderr
        report = json.loads(fixed.stdout)
        assert temp.exists()
        assert not any("temp file" in a for a in report["actions"]), report["actions"]
        [kept] = [f for f in report["failures"] if str(temp) in f]
        assert kept.startswith(f"temp file {temp} kept, an extraction may be running")
        assert "lock 'pipeline:recovery' is held by pid" in kept

        gate.touch()
        _out, err = extraction.communicate(timeout=120)
        assert extraction.returncode == 0, err
    finally:
        if extraction.poll() is None:
            extraction.kill()
            extraction.communicate()
    assert project.data_path("items").exists() and not temp.exists()
    assert project.sidecar("items")["extraction_complete"] is True
    after = run_cli("validate-consistency", "--config", str(project.config))
    assert after.returncode == 0, after.stdout


def test_an_old_temp_file_is_kept_while_a_run_holds_its_run_lock_and_removed_after(
    tmp_path: Path, any_state_url: str
) -> None:
    # a scheduled run holds only its run lock (`pipeline:<name>@<run id>`), not the
    # pipeline's; its extraction's temp file is as live as a `run`'s
    _, cfg = _project(tmp_path, any_state_url)
    folder = Path(_day_paths(tmp_path)[0]).parent
    temp = folder / "p_20250101.parquet.onceflow-tmp-live"
    temp.write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(temp, (two_hours_ago, two_hours_ago))
    store = open_store(cfg.state_url)
    lock = f"{cfg.pipeline_lock_name}@p_20250107"
    token = store.locks.acquire(lock, ttl=600)
    kept = fix_inconsistencies(cfg, store=store)
    assert temp.exists(), kept
    assert kept["failures"] == [
        f"temp file {temp} kept, an extraction may be running (a run holds {lock} (held by "
        f"{store.locks.holder(lock).describe()}))"  # type: ignore[union-attr]
    ]
    store.locks.release(lock, token)
    fixed = fix_inconsistencies(cfg, store=store)
    assert not temp.exists()
    assert fixed["actions"][-1] == f"removed temp file {temp}"


def test_an_extraction_completed_after_it_was_judged_interrupted_is_not_marked_failed(
    tmp_path: Path, any_state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fix-inconsistencies judged an extraction interrupted, then failed it unconditionally:
    a writer that completed it in between (its lease broken by age, so not excluded by
    the lock) had its committed table marked failed."""
    from onceflow.consistency import fixes

    _, cfg = _project(tmp_path, any_state_url, tables=TWO, days=1)
    store = open_store(cfg.state_url)
    _record_runs(store, tmp_path, TWO, 1)
    window = window_for(START, "UTC").iso()
    for key in ("src.orders", "src.customers"):  # both left running by a writer
        store.extractions.start("p_20250101", key, window)
    done = store.extractions.of_run("p_20250101")["src.orders"]
    judged = fixes.interrupted_extractions
    seen: list[Any] = []

    def judged_then_completed(*args: Any, **kwargs: Any) -> list[Any]:
        # the verdict as first read, however often asked: the writer of src.orders
        # commits right after it, unseen (a read made before its commit)
        if not seen:
            seen.extend(judged(*args, **kwargs))
            store.extractions.complete("p_20250101", [_extracted_again(done, window)])
        return list(seen)

    monkeypatch.setattr(fixes, "interrupted_extractions", judged_then_completed)
    fixed = fix_inconsistencies(cfg, store=store)
    rows = store.extractions.of_run("p_20250101")
    assert (rows["src.orders"].status, rows["src.customers"].status) == ("completed", "failed")
    assert [a for a in fixed["actions"] if "interrupted" in a] == [
        "src.customers of p_20250101: interrupted extraction marked failed (retried next run)"
    ]


def _extracted_again(done: Any, window: tuple[str, str]) -> ExtractionOutcome:
    """src.orders extracted once more, as its completed record `done` says."""
    return ExtractionOutcome(
        "src.orders",
        "extracted",
        done.record_count,
        done.file_path or "",
        done.file_size,
        done.checksum,
        *window,
    )


def test_an_extraction_a_run_finished_during_the_check_is_not_reported_interrupted(
    tmp_path: Path, any_state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """validate-consistency read the extractions' statuses before its table and lake scans
    and the locks after them: a run that finished in between (its lock released) left its
    extraction looking abandoned, and a healthy run's check exited 1."""
    from onceflow.consistency import checks

    _, cfg = _project(tmp_path, any_state_url, days=1)
    store = open_store(cfg.state_url)
    _record_runs(store, tmp_path, ("orders",), 1)
    run_id, window = "p_20250101", window_for(START, "UTC").iso()
    done = store.extractions.of_run(run_id)["src.orders"]
    lock = cfg.run_lock_name(run_id)
    token = store.locks.acquire(lock, ttl=600)  # the run, extracting src.orders again
    store.extractions.start(run_id, "src.orders", window)
    scans = checks.lake_scans

    def scanned_while_the_run_finished(config: Config) -> Any:
        # the statuses are read; the run records its extraction and releases its lock
        store.extractions.complete(run_id, [_extracted_again(done, window)])
        store.locks.release(lock, token)
        return scans(config)

    monkeypatch.setattr(checks, "lake_scans", scanned_while_the_run_finished)
    report = validate_consistency(cfg, store=store)
    assert "interrupted_extraction" not in _kinds(report), report["issues"]

    # read while running, re-read still running in that attempt with no lock: reported
    store.extractions.start(run_id, "src.orders", window)
    stale = checks.pipeline_runs(store, cfg)
    [issue] = checks.interrupted_extractions(store, cfg, stale)
    assert issue.subject == f"{run_id}:src.orders"
    assert f"the run's lock ({lock})" in issue.detail
    # ...but not once a new attempt started (its process holds a lock before it does)
    store.extractions.start(run_id, "src.orders", window)
    assert checks.interrupted_extractions(store, cfg, stale) == []


def test_a_table_whose_lock_another_command_holds_is_skipped_named_and_fails_the_fix(
    tmp_path: Path, any_state_url: str
) -> None:
    """fix-inconsistencies called any holder of a table's lock "a loader", and printed
    CONSISTENT with exit 0 although it had not fixed that table."""
    config, cfg = _project(tmp_path, any_state_url, tables=TWO, days=1)
    store = open_store(cfg.state_url)
    load(cfg, store=store)
    lock = _lock(tmp_path)
    store.locks.acquire(lock, ttl=600)  # e.g. reset-state or optimize: this live process
    holder = store.locks.holder(lock)
    assert holder is not None

    result = fix_inconsistencies(cfg, store=store)
    assert result["failures"] == [
        f"src.orders: skipped, not fixed: its lock {lock} is held by another command "
        f"({holder.describe()}); run fix-inconsistencies again once it has finished"
    ]
    assert result["skipped"] == ["src.orders"]
    assert (result["consistent"], result["complete"]) == (True, False)

    out = run_cli("fix-inconsistencies", "-c", str(config))
    assert out.returncode == 1, out.stderr
    assert "a loader" not in out.stdout
    assert f"! src.orders: skipped, not fixed: its lock {lock} is held by another" in out.stdout
    assert (
        "Overall Status After Fixes: INCOMPLETE - 1 not fixed (see Failed fixes); tables "
        "skipped: src.orders;" in out.stdout
    )


def test_a_temp_file_a_live_extraction_writes_during_the_fix_is_kept_not_inconsistent(
    tmp_path: Path, any_state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --safe-age 0 beside a live run, the re-check after the fixes reported the
    run's temp file as left by an interrupted write (INCONSISTENT) instead of kept."""
    from onceflow.consistency import fixes

    _, cfg = _project(tmp_path, any_state_url, days=1)
    store = open_store(cfg.state_url)
    load(cfg, store=store)
    store.locks.acquire(cfg.pipeline_lock_name, ttl=600)  # a live extraction: this process
    holder = store.locks.holder(cfg.pipeline_lock_name)
    assert holder is not None
    temp = Path(_day_paths(tmp_path)[0]).parent / f"p_20250102.parquet{TEMP_MARKER}-live"
    recheck = fixes.validate_consistency

    def written_before_the_recheck(*args: Any, **kwargs: Any) -> dict[str, Any]:
        temp.write_bytes(b"partial")  # after the fixes looked, before the re-check
        return recheck(*args, **kwargs)

    monkeypatch.setattr(fixes, "validate_consistency", written_before_the_recheck)
    result = fix_inconsistencies(cfg, safe_age_seconds=0, store=store)
    assert temp.exists()
    assert result["remaining"] == []
    assert result["failures"] == [
        f"temp file {temp} kept, an extraction may be running (lock "
        f"{cfg.pipeline_lock_name} is held by {holder.describe()})"
    ]
    assert (result["consistent"], result["complete"]) == (True, False)

    # the same file found before the fixes is kept by them and listed once
    again = fix_inconsistencies(cfg, safe_age_seconds=0, store=store)
    assert [f for f in again["failures"] if str(temp) in f] == [
        f"temp file {temp} kept, an extraction may be running (lock "
        f"{cfg.pipeline_lock_name!r} is held by {holder.describe()})"
    ]
    assert again["remaining"] == []
