"""The state-store contract: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from onceflow.errors import StateError
from onceflow.state import open_store
from onceflow.state.migrations import LATEST_VERSION, MIGRATIONS
from onceflow.state.store import StateStore

WINDOW = ("2025-01-23T00:00:00+00:00", "2025-01-24T00:00:00+00:00")


def _entry(key: str) -> dict[str, Any]:
    source, name = key.split(".", 1)
    return {
        "table_key": key,
        "source": source,
        "table_name": name,
        "mode": "full",
        "window_start": WINDOW[0],
        "window_end": WINDOW[1],
    }


def _done(key: str, rows: int = 10) -> dict[str, Any]:
    return {
        "table_key": key,
        "action": "extracted",
        "record_count": rows,
        "file_path": f"/lake/{key}.parquet",
        "file_size": 100,
        "checksum": "abc",
        "window_start": WINDOW[0],
        "window_end": WINDOW[1],
        "started_at": None,
        "ended_at": None,
        "duration_seconds": 0.5,
    }


def test_fresh_store_is_at_latest_version(store: StateStore) -> None:
    assert store.schema_version() == LATEST_VERSION
    assert store.migrate() == LATEST_VERSION  # idempotent


def test_run_lifecycle_counts_tables_and_restarts(store: StateStore) -> None:
    run = store.begin_run("p_20250123", "p", "2025-01-23", WINDOW)
    assert (run.status, run.restart_count) == ("running", 0)
    store.ensure_extractions(run.run_id, [_entry("s.a"), _entry("s.b"), _entry("s.c")])
    store.mark_running(run.run_id, "s.a", WINDOW)
    store.mark_completed(run.run_id, [_done("s.a")])
    store.mark_running(run.run_id, "s.b", WINDOW)
    store.mark_failed(run.run_id, "s.b", "boom")
    finished = store.finish_run(run.run_id)
    assert (finished.total_tables, finished.completed_tables, finished.failed_tables) == (3, 1, 1)
    assert finished.status == "failed"
    assert finished.completion_rate == pytest.approx(33.333, rel=1e-3)
    again = store.begin_run("p_20250123", "p", "2025-01-23", WINDOW)
    assert again.restart_count == 1
    assert store.runs("p")[0].run_id == "p_20250123"


def test_ensure_extractions_keeps_existing_progress(store: StateStore) -> None:
    store.begin_run("r", "p", "2025-01-23", WINDOW)
    store.ensure_extractions("r", [_entry("s.a")])
    store.mark_completed("r", [_done("s.a", rows=42)])
    store.ensure_extractions("r", [_entry("s.a"), _entry("s.b")])
    rows = store.extractions("r")
    assert rows["s.a"].status == "completed"
    assert rows["s.a"].record_count == 42
    assert rows["s.b"].status == "pending"


def test_attempts_count_and_errors_clear_on_success(store: StateStore) -> None:
    store.begin_run("r", "p", "2025-01-23", WINDOW)
    store.ensure_extractions("r", [_entry("s.a")])
    store.mark_running("r", "s.a", WINDOW)
    store.mark_failed("r", "s.a", "transient")
    store.mark_running("r", "s.a", WINDOW)
    store.mark_completed("r", [_done("s.a")])
    record = store.extractions("r")["s.a"]
    assert (record.attempts, record.status, record.error) == (2, "completed", None)
    assert record.last_action == "extracted"


def test_reset_failed_returns_how_many(store: StateStore) -> None:
    store.begin_run("r", "p", "2025-01-23", WINDOW)
    store.ensure_extractions("r", [_entry("s.a"), _entry("s.b"), _entry("s.c")])
    store.mark_failed("r", "s.a", "x")
    store.mark_failed("r", "s.b", "y")
    assert store.reset_failed("r") == 2
    assert store.reset_failed("r") == 0
    assert store.status_counts("r")["pending"] == 3


def test_force_reprocess_flags_one_table(store: StateStore) -> None:
    store.begin_run("r", "p", "2025-01-23", WINDOW)
    store.ensure_extractions("r", [_entry("s.a"), _entry("s.b")])
    store.mark_completed("r", [_done("s.a"), _done("s.b")])
    assert store.force_reprocess("r", "s.a") is True
    assert store.force_reprocess("r", "s.zzz") is False
    rows = store.extractions("r")
    assert rows["s.a"].force_reprocess and rows["s.a"].status == "pending"
    assert not rows["s.b"].force_reprocess
    store.mark_completed("r", [_done("s.a")])
    assert not store.extractions("r")["s.a"].force_reprocess


def test_delete_run_forgets_it(store: StateStore) -> None:
    store.begin_run("r", "p", "2025-01-23", WINDOW)
    store.ensure_extractions("r", [_entry("s.a")])
    assert store.delete_run("r") == 2
    assert store.get_run("r") is None


def test_failed_transaction_rolls_back(store: StateStore) -> None:
    store.begin_run("r", "p", "2025-01-23", WINDOW)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.execute("UPDATE pipeline_runs SET status = ? WHERE run_id = ?", ("bogus", "r"))
        raise RuntimeError("abort")
    run = store.get_run("r")
    assert run is not None and run.status == "running"


@pytest.mark.parametrize("start_version", range(LATEST_VERSION))
def test_migrates_from_every_earlier_version(
    request: pytest.FixtureRequest, tmp_path: Path, start_version: int, backend: str
) -> None:
    url = _fresh_url(request, tmp_path, backend)
    old = open_store(url, migrate=False)
    assert old.migrate(target=start_version) == start_version
    if start_version >= 1:
        old.begin_run("r", "p", "2025-01-23", WINDOW)
        with old.transaction() as tx:
            tx.execute(
                "INSERT INTO extractions (run_id, table_key, source, table_name, mode, status, "
                "record_count, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ("r", "s.a", "s", "a", "full", "completed", 7, "2025-01-23T00:00:00+00:00"),
            )
    old.close()
    new = open_store(url)
    assert new.schema_version() == LATEST_VERSION
    if start_version >= 1:
        record = new.extractions("r")["s.a"]
        assert (record.status, record.record_count) == ("completed", 7)
    new.close()


def test_newer_schema_than_code_is_refused(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    url = _fresh_url(request, tmp_path, backend)
    s = open_store(url)
    with s.transaction() as tx:
        tx.execute("INSERT INTO onceflow_schema (version) VALUES (?)", (LATEST_VERSION + 1,))
    with pytest.raises(StateError, match="newer than this onceflow"):
        s.migrate()
    s.close()


def test_migration_list_is_ordered_without_gaps() -> None:
    assert [m[0] for m in MIGRATIONS] == list(range(1, LATEST_VERSION + 1))


def _worker(url: str, worker: int, n: int) -> None:
    s = open_store(url)
    for i in range(n):
        run_id = f"r{i % 3}"
        s.begin_run(run_id, "p", "2025-01-23", WINDOW)
        s.ensure_extractions(run_id, [_entry(f"s.w{worker}_{i}")])
        s.mark_completed(run_id, [_done(f"s.w{worker}_{i}")])
    s.close()


def test_several_processes_write_at_once_without_losing_updates(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    url = _fresh_url(request, tmp_path, backend)
    open_store(url).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(url, w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    s = open_store(url)
    total = sum(len(s.extractions(f"r{i}")) for i in range(3))
    assert total == 60
    assert sum(r.restart_count + 1 for r in s.runs("p")) == 60
    s.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _fresh_url(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    from tests.conftest import pg_state_url, unique

    admin = request.getfixturevalue("pg_admin")
    schema = unique("of_mig")
    admin.execute(f'CREATE SCHEMA "{schema}"')
    request.addfinalizer(lambda: admin.execute(f'DROP SCHEMA "{schema}" CASCADE'))
    return pg_state_url(schema)
