"""Recovery of `onceflow extract` from a real SIGKILL, and detection of damaged files.

Every test drives the real command in a subprocess. A crash point (ONCEFLOW_CRASH_AT)
makes the process SIGKILL itself at an exact step of the commit protocol; the slow test
kills it from outside at random moments. After each crash a plain rerun must leave the
lake byte-identical to a clean run's (Parquet output embeds nothing time-dependent: the
test fixture checks that two clean runs give the same sha256 for every file) and the
state complete.

Temp files left by a crash are garbage for validate-consistency to list and remove; a
rerun neither counts them nor leaves any new ones behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cli import run_cli, spawn
from tests.helpers.recovery import (
    RUN_DATE,
    Project,
    actions,
    assert_sidecars_match,
    assert_state_complete,
    make_sqlite_source,
    parquet_checksums,
    results_by_table,
    sha256,
    temp_files,
    write_project,
)

POINTS = ["during_write", "before_data_rename", "after_data_rename", "after_sidecar"]
TABLES = {"orders": 25_000, "items": 15_000, "events": 10_000}
SIGKILLED = -signal.SIGKILL


@pytest.fixture(scope="module")
def sqlite_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """A SQLite source of 50k rows over 3 tables, and the checksums of a clean run."""
    base = tmp_path_factory.mktemp("source")
    make_sqlite_source(base / "src.db", TABLES)
    url = f"sqlite:///{base / 'src.db'}"
    sums = []
    for name in ("clean1", "clean2"):
        project = write_project(base / name, url, list(TABLES))
        done = project.extract()
        assert done.returncode == 0, done.stderr
        sums.append(parquet_checksums(project.lake))
    # Parquet bytes are deterministic: two clean runs give byte-identical files.
    assert sums[0] == sums[1]
    assert len(sums[0]) == len(TABLES)
    return url, sums[0]


@pytest.fixture
def committed(tmp_path: Path, sqlite_source: tuple[str, dict[str, str]]) -> Project:
    """A project whose run is extracted cleanly and completely."""
    url, clean = sqlite_source
    project = write_project(tmp_path / "proj", url, list(TABLES))
    done = project.extract()
    assert done.returncode == 0, done.stderr
    assert parquet_checksums(project.lake) == clean
    return project


def _crash(project: Project, point: str, key: str) -> None:
    done = project.extract(crash_at=f"{point}:{key}")
    assert done.returncode == SIGKILLED, (done.returncode, done.stderr[-2000:])


def _assert_recovered(project: Project, clean: dict[str, str], garbage: set[str]) -> None:
    assert parquet_checksums(project.lake) == clean
    assert_sidecars_match(project)
    assert_state_complete(project)
    # The crash's temp files are still there (validate-consistency's job), nothing else.
    assert temp_files(project.lake) == garbage


def _statuses(project: Project) -> dict[str, str]:
    return {t["table_key"]: t["status"] for t in project.status()["tables"]}


# -- 1. crash points ------------------------------------------------------------------


@pytest.mark.parametrize("point", POINTS)
def test_crash_point_sqlite(
    point: str, tmp_path: Path, sqlite_source: tuple[str, dict[str, str]]
) -> None:
    url, clean = sqlite_source
    project = write_project(tmp_path / "proj", url, list(TABLES), workers=1)
    # One worker: orders commits, items crashes at the point, events never starts.
    _crash(project, point, "src.items")

    before = _statuses(project)
    assert before == {"src.orders": "completed", "src.items": "running", "src.events": "pending"}
    items = project.data_path("items")
    leftovers = temp_files(project.lake)
    if point in ("during_write", "before_data_rename"):
        assert not items.exists()
        assert len(leftovers) == 1 and next(iter(leftovers)).startswith("src/items/")
    else:
        assert items.exists() and leftovers == set()
    assert project.sidecar_path("items").exists() == (point == "after_sidecar")

    rerun = project.extract()
    assert rerun.returncode == 0, rerun.stderr
    # The sidecar is the commit marker: once it is written, the table is done even though
    # the state never heard of it; before it, the table is extracted again.
    crashed = "skipped" if point == "after_sidecar" else "extracted"
    assert actions(rerun) == {
        "src.orders": "skipped",
        "src.items": crashed,
        "src.events": "extracted",
    }
    _assert_recovered(project, clean, leftovers)
    report = project.status()
    assert report["restart_count"] == 1
    by_key = {t["table_key"]: t for t in report["tables"]}
    assert by_key["src.items"]["attempts"] == (1 if point == "after_sidecar" else 2)
    assert by_key["src.orders"]["attempts"] == 1


@pytest.mark.parametrize("point", POINTS)
def test_crash_point_with_parallel_workers(
    point: str, tmp_path: Path, sqlite_source: tuple[str, dict[str, str]]
) -> None:
    """A crash while other tables are in flight: whatever they had done is recovered too."""
    url, clean = sqlite_source
    project = write_project(tmp_path / "proj", url, list(TABLES), workers=3)
    _crash(project, point, "src.orders")
    garbage = temp_files(project.lake)
    rerun = project.extract()
    assert rerun.returncode == 0, rerun.stderr
    _assert_recovered(project, clean, garbage)


@pytest.mark.postgres
@pytest.mark.parametrize("point", POINTS)
def test_crash_point_postgres(
    point: str, tmp_path: Path, pg_admin: Any, pg_schema: str, pg_url: str
) -> None:
    names = {"accounts": 20_000, "payments": 20_000, "logins": 10_000}
    for name, rows in names.items():
        pg_admin.execute(
            f'CREATE TABLE "{pg_schema}"."{name}" AS SELECT g AS id, '
            "(g * 7919) % 10007 AS customer, (g % 100000)::numeric(12, 2) / 7 AS amount, "
            "'label-' || (g % 97) || '-ü' AS label, "
            "CASE WHEN g % 13 = 0 THEN NULL ELSE 'note ' || g END AS note, "
            "timestamptz '2025-01-23 00:00:00+00' + g * interval '1 second' AS updated_at "
            f"FROM generate_series(1, {rows}) AS g"
        )
    tables = [f"{pg_schema}.{n}" for n in names]
    clean_project = write_project(tmp_path / "clean", pg_url, tables, source="pg")
    done = clean_project.extract()
    assert done.returncode == 0, done.stderr
    clean = parquet_checksums(clean_project.lake)
    assert len(clean) == 3

    project = write_project(tmp_path / "proj", pg_url, tables, source="pg", workers=1)
    _crash(project, point, "pg.payments")
    garbage = temp_files(project.lake)
    rerun = project.extract()
    assert rerun.returncode == 0, rerun.stderr
    crashed = "skipped" if point == "after_sidecar" else "extracted"
    assert actions(rerun) == {
        "pg.accounts": "skipped",
        "pg.payments": crashed,
        "pg.logins": "extracted",
    }
    _assert_recovered(project, clean, garbage)


@pytest.mark.parametrize("point", ["during_write", "before_data_rename", "after_data_rename"])
def test_a_killed_reextraction_keeps_the_old_commit_until_its_file_is_replaced(
    point: str, tmp_path: Path
) -> None:
    """A forced re-extraction of changed rows withdraws the old commit (its sidecar) only
    right before the rename: killed while writing, the old file still counts; killed
    after the withdrawal, nothing counts. Either way the table stays flagged, so a plain
    rerun finishes the forced extraction rather than keep the old file."""
    db = tmp_path / "src.db"
    make_sqlite_source(db, {"items": 5_000})
    project = write_project(tmp_path / "proj", f"sqlite:///{db}", ["items"])
    assert project.extract().returncode == 0
    data, sidecar = project.data_path("items"), project.sidecar_path("items")
    old_data, old_sidecar = data.read_bytes(), sidecar.read_bytes()
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM items WHERE id % 2 = 0")
    conn.close()

    killed = project.extract("--force-reprocess", crash_at=f"{point}:src.items")
    assert killed.returncode == SIGKILLED, killed.stderr[-2000:]

    if point == "during_write":  # the old commit stands, whole
        assert (data.read_bytes(), sidecar.read_bytes()) == (old_data, old_sidecar)
    elif point == "before_data_rename":  # withdrawn: the old file no longer counts
        assert data.read_bytes() == old_data and not sidecar.exists()
    else:
        assert data.read_bytes() != old_data and not sidecar.exists()
    rerun = project.extract()
    assert rerun.returncode == 0, rerun.stderr
    assert actions(rerun) == {"src.items": "extracted"}
    assert_sidecars_match(project)
    assert_state_complete(project)
    assert json.loads(sidecar.read_text())["record_count"] == 2_500


# -- 2. random kills from outside -------------------------------------------------------


@pytest.mark.slow
def test_random_sigkill_from_outside(tmp_path: Path) -> None:
    big = {f"t{i}": 200_000 for i in range(5)}
    make_sqlite_source(tmp_path / "big.db", big)
    url = f"sqlite:///{tmp_path / 'big.db'}"

    clean_project = write_project(tmp_path / "clean", url, list(big), workers=3, batch_rows=20_000)
    started = time.perf_counter()
    done = clean_project.extract()
    clean_duration = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    clean = parquet_checksums(clean_project.lake)
    assert len(clean) == len(big)

    project = write_project(tmp_path / "proj", url, list(big), workers=3, batch_rows=20_000)
    rng = random.Random(20250123)
    killed = 0
    restarts = -1
    bound = clean_duration
    attempts = 0
    # Ten kills at least half of which land before the run ends: on a loaded machine a
    # forced run can be quicker than the clean one was, so a run that beat its kill
    # shortens the bound and adds a round (at most 20).
    while attempts < 10 or (killed < 5 and attempts < 20):
        attempts += 1
        # A forced run rewrites every table, so each kill can land anywhere in the
        # protocol, including in the middle of replacing an already committed file.
        proc = spawn(
            "extract", "--config", str(project.config), "--date", RUN_DATE, "--force-reprocess"
        )
        time.sleep(rng.uniform(0, bound))
        with contextlib.suppress(ProcessLookupError):  # it may have finished first
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        if proc.returncode == SIGKILLED:
            killed += 1
        else:
            bound *= 0.7

        rerun = project.extract()
        assert rerun.returncode == 0, rerun.stderr
        assert parquet_checksums(project.lake) == clean
        assert_sidecars_match(project)
        report = assert_state_complete(project)
        # a rerun after a kill resumes a run left running: a restart; a run that finished
        # before the kill is rerun completed: none (nor one killed before it began)
        assert report["restart_count"] >= restarts
        restarts = report["restart_count"]
    assert killed >= 5, f"only {killed} of {attempts} runs were killed before they finished"
    assert 1 <= restarts <= killed


# -- 3. damaged files ---------------------------------------------------------------------


def test_truncated_file_is_re_extracted(
    committed: Project, sqlite_source: tuple[str, dict[str, str]]
) -> None:
    data = committed.data_path("items")
    with open(data, "r+b") as handle:
        handle.truncate(data.stat().st_size // 2)
    _assert_only_items_re_extracted(committed, sqlite_source[1])


def test_truncated_file_with_matching_size_sidecar_is_re_extracted(
    committed: Project, sqlite_source: tuple[str, dict[str, str]]
) -> None:
    """A file cut short whose sidecar was (somehow) written for that size: no footer."""
    data = committed.data_path("events")
    size = data.stat().st_size
    with open(data, "r+b") as handle:
        handle.truncate(size - 10)
    meta = committed.sidecar("events")
    meta["file_size_bytes"] = size - 10
    _write_sidecar(committed, "events", meta)
    rerun = committed.extract()
    assert rerun.returncode == 0, rerun.stderr
    assert actions(rerun)["src.events"] == "extracted"
    _assert_recovered(committed, sqlite_source[1], set())


def test_flipped_byte_needs_deep_verify(
    committed: Project, sqlite_source: tuple[str, dict[str, str]]
) -> None:
    clean = sqlite_source[1]
    data = committed.data_path("orders")
    size = data.stat().st_size
    with open(data, "r+b") as handle:
        handle.seek(size // 2)
        byte = handle.read(1)
        handle.seek(size // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert data.stat().st_size == size
    damaged = sha256(data)
    assert damaged != committed.sidecar("orders")["checksum"]

    fast = committed.extract()
    assert fast.returncode == 0, fast.stderr
    assert set(actions(fast).values()) == {"skipped"}  # fast verify checks sizes only
    assert sha256(data) == damaged

    deep = committed.extract("--verify", "deep")
    assert deep.returncode == 0, deep.stderr
    assert actions(deep) == {
        "src.orders": "extracted",
        "src.items": "skipped",
        "src.events": "skipped",
    }
    # the same bytes as the extraction's: the file is repaired under its standing commit
    assert results_by_table(deep)["src.orders"]["reason"] == (
        "checksum differs from sidecar; same content as the committed file, whose commit stands"
    )
    _assert_recovered(committed, clean, set())


def test_deleted_file_is_re_extracted(
    committed: Project, sqlite_source: tuple[str, dict[str, str]]
) -> None:
    committed.data_path("orders").unlink()
    rerun = committed.extract()
    assert rerun.returncode == 0, rerun.stderr
    assert actions(rerun)["src.orders"] == "extracted"
    _assert_recovered(committed, sqlite_source[1], set())


def _assert_only_items_re_extracted(committed: Project, clean: dict[str, str]) -> None:
    """A rerun re-extracts the damaged `items` table, skips the others, and recovers."""
    rerun = committed.extract()
    assert rerun.returncode == 0, rerun.stderr
    assert actions(rerun) == {
        "src.orders": "skipped",
        "src.items": "extracted",
        "src.events": "skipped",
    }
    _assert_recovered(committed, clean, set())


def _write_sidecar(project: Project, table: str, meta: dict[str, Any]) -> None:
    project.sidecar_path(table).write_text(json.dumps(meta), encoding="utf-8")


@pytest.mark.parametrize(
    "damage",
    [
        "deleted",
        "incomplete",
        "other_run_id",
        "other_window",
        "unreadable",
        "not_a_mapping",
    ],
)
def test_bad_sidecar_is_re_extracted(
    damage: str, committed: Project, sqlite_source: tuple[str, dict[str, str]]
) -> None:
    meta = committed.sidecar("items")
    if damage == "deleted":
        committed.sidecar_path("items").unlink()
    elif damage == "unreadable":
        committed.sidecar_path("items").write_text('{"extraction_complete": tr', encoding="utf-8")
    elif damage == "not_a_mapping":
        committed.sidecar_path("items").write_text("[1, 2]", encoding="utf-8")
    else:
        if damage == "incomplete":
            meta["extraction_complete"] = False
        elif damage == "other_run_id":
            meta["run_id"] = "recovery_20250122"
        else:
            meta["window_start"] = "2025-01-22T00:00:00+00:00"
            meta["window_end"] = "2025-01-23T00:00:00+00:00"
        _write_sidecar(committed, "items", meta)
    _assert_only_items_re_extracted(committed, sqlite_source[1])


def test_force_reprocess_only_named_tables(
    committed: Project, sqlite_source: tuple[str, dict[str, str]]
) -> None:
    before = {t: committed.sidecar(t)["end_time"] for t in committed.tables}
    rerun = committed.extract("--force-reprocess", "--tables", "events")
    assert rerun.returncode == 0, rerun.stderr
    assert actions(rerun) == {"src.events": "extracted"}
    # events was read again; the source has not changed, so its commit stands as it was
    assert results_by_table(rerun)["src.events"]["reason"] == (
        "forced; same content as the committed file, whose commit stands"
    )
    after = {t: committed.sidecar(t)["end_time"] for t in committed.tables}
    assert after == before

    everything = committed.extract()
    assert set(actions(everything).values()) == {"skipped"}
    _assert_recovered(committed, sqlite_source[1], set())


# -- 4. restart semantics ------------------------------------------------------------------


def test_idempotent_reruns_of_a_completed_run_are_not_restarts(committed: Project) -> None:
    assert committed.status()["restart_count"] == 0
    for _ in range(3):
        done = committed.extract()
        assert done.returncode == 0, done.stderr
        assert set(actions(done).values()) == {"skipped"}
        assert json.loads(done.stdout)["restart_count"] == 0
    assert committed.status()["restart_count"] == 0
    # Another run date is another run: its count starts at zero.
    other_day = committed.extract(date="2025-01-24")
    assert other_day.returncode == 0, other_day.stderr
    assert json.loads(other_day.stdout)["restart_count"] == 0


def test_failed_table_is_retried_and_completed_ones_skipped(tmp_path: Path) -> None:
    from onceflow.config import load_config
    from onceflow.extract import reset_failed_extractions

    source_db = tmp_path / "late.db"
    make_sqlite_source(source_db, {"orders": 2_000})
    project = write_project(tmp_path / "proj", f"sqlite:///{source_db}", ["orders", "late"])

    first = project.extract()
    assert first.returncode == 1
    results = results_by_table(first)
    assert results["src.orders"]["action"] == "extracted"
    assert results["src.late"]["action"] == "failed"
    assert "late" in results["src.late"]["error"]
    assert not project.data_path("late").exists()
    assert not project.sidecar_path("late").exists()
    assert temp_files(project.lake) == set()
    assert _statuses(project) == {"src.orders": "completed", "src.late": "failed"}

    config = load_config(project.config)
    assert reset_failed_extractions(config, RUN_DATE) == 1
    assert _statuses(project) == {"src.orders": "completed", "src.late": "pending"}
    assert reset_failed_extractions(config, RUN_DATE) == 0

    # Still missing: it fails again, and reset counts it again.
    again = project.extract()
    assert again.returncode == 1
    assert actions(again) == {"src.orders": "skipped", "src.late": "failed"}
    assert reset_failed_extractions(config, RUN_DATE) == 1

    with sqlite3.connect(source_db) as conn:
        conn.execute("CREATE TABLE late AS SELECT * FROM orders WHERE id <= 500")
    conn.close()
    second = project.extract()
    assert second.returncode == 0, second.stderr
    assert actions(second) == {"src.orders": "skipped", "src.late": "extracted"}
    assert results_by_table(second)["src.late"]["record_count"] == 500
    report = assert_state_complete(project)
    assert report["restart_count"] == 2
    by_key = {t["table_key"]: t for t in report["tables"]}
    assert by_key["src.late"]["attempts"] == 3
    assert by_key["src.orders"]["attempts"] == 1
    assert_sidecars_match(project)


def test_names_that_clean_alike_never_share_a_file(tmp_path: Path) -> None:
    """`order items` and `order_items` once mapped to one folder: the second table's file
    replaced the first's, and a rerun took it (same run, window and size) as the first's."""
    import pyarrow.parquet as pq

    make_sqlite_source(tmp_path / "src.db", {"order items": 300, "order_items": 700})
    project = write_project(
        tmp_path / "proj", f"sqlite:///{tmp_path / 'src.db'}", ["order items", "order_items"]
    )
    for attempt in ("extracted", "skipped"):
        done = project.extract()
        assert done.returncode == 0, done.stderr
        results = results_by_table(done)
        assert {r["action"] for r in results.values()} == {attempt}
        paths = {k: Path(r["file_path"]) for k, r in results.items()}
        assert len(set(paths.values())) == 2
        assert pq.read_table(paths["src.order items"]).num_rows == 300
        assert pq.read_table(paths["src.order_items"]).num_rows == 700


def test_changed_table_config_for_the_same_run_is_reextracted(tmp_path: Path) -> None:
    """A sidecar written for another selection (mode, cursor, query) does not count."""
    import sqlite3

    from onceflow.config import config_from_dict
    from onceflow.extract import extract

    db = tmp_path / "src.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, ts TIMESTAMP)")
        conn.executemany(
            "INSERT INTO t VALUES (?, ?)",
            [(1, "2025-01-22 10:00:00"), (2, "2025-01-23 10:00:00"), (3, "2025-01-24 10:00:00")],
        )

    def config(extract_cfg: dict[str, str]) -> object:
        return config_from_dict(
            {
                "state": f"sqlite:///{tmp_path / 'state.db'}",
                "lake": str(tmp_path / "lake"),
                "sources": {"s": {"url": f"sqlite:///{db}"}},
                "tables": [{"source": "s", "table": "t", "extract": extract_cfg}],
            }
        )

    full = extract(config({"mode": "full"}), "2025-01-23")  # type: ignore[arg-type]
    assert [r.record_count for r in full.results] == [3]
    windowed = config({"mode": "incremental", "cursor": "ts"})
    [changed] = extract(windowed, "2025-01-23").results  # type: ignore[arg-type]
    assert (changed.action, changed.record_count) == ("extracted", 1)
    assert changed.reason == "table config (table, query, mode or cursor) changed"
    [same] = extract(windowed, "2025-01-23").results  # type: ignore[arg-type]
    assert same.action == "skipped"


def test_killed_extract_is_reported_repaired_and_its_lock_taken_over(
    tmp_path: Path, sqlite_source: tuple[str, dict[str, str]]
) -> None:
    """A SIGKILLed extract leaves a `running` row and a dead holder's lock: both are
    reported, --fix marks the row failed, and the next extract takes the lock over."""
    url, clean = sqlite_source
    project = write_project(tmp_path / "proj", url, list(TABLES), workers=1)
    _crash(project, "during_write", "src.items")
    assert _statuses(project)["src.items"] == "running"

    check = run_cli("validate-consistency", "--json", "--safe-age", "0", cwd=project.folder)
    assert check.returncode == 1
    kinds = {(i["kind"], i["subject"]) for i in json.loads(check.stdout)["issues"]}
    assert ("interrupted_extraction", "recovery_20250123:src.items") in kinds
    assert ("stale_lock", "pipeline:recovery") in kinds

    fixed = run_cli("fix-inconsistencies", "--safe-age", "0", cwd=project.folder)
    assert "interrupted extraction marked failed" in fixed.stdout, fixed.stdout
    assert _statuses(project)["src.items"] == "failed"

    rerun = project.extract()
    assert rerun.returncode == 0, rerun.stderr
    _assert_recovered(project, clean, set())
    again = run_cli("validate-consistency", cwd=project.folder)
    assert again.returncode == 0, again.stdout
