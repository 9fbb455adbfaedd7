"""The runs repository's contract, on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from onceflow.errors import StateError
from onceflow.state import ExtractionEntry, ExtractionOutcome, Store, open_store
from tests.helpers.state import fresh_store_url

WINDOW = ("2025-01-23T00:00:00+00:00", "2025-01-24T00:00:00+00:00")


def _entry(key: str) -> ExtractionEntry:
    source, name = key.split(".", 1)
    return ExtractionEntry(key, source, name, "full", WINDOW[0], WINDOW[1])


def _done(key: str, rows: int = 10) -> ExtractionOutcome:
    return ExtractionOutcome(
        table_key=key,
        action="extracted",
        record_count=rows,
        file_path=f"/lake/{key}.parquet",
        file_size=100,
        checksum="abc",
        window_start=WINDOW[0],
        window_end=WINDOW[1],
        duration_seconds=0.5,
    )


def test_run_lifecycle_counts_tables_and_restarts(store: Store) -> None:
    run = store.runs.begin("p_20250123", "p", "2025-01-23", WINDOW)
    assert (run.status, run.restart_count) == ("running", 0)
    store.extractions.ensure(run.run_id, [_entry("s.a"), _entry("s.b"), _entry("s.c")])
    store.extractions.start(run.run_id, "s.a", WINDOW)
    store.extractions.complete(run.run_id, [_done("s.a")])
    store.extractions.start(run.run_id, "s.b", WINDOW)
    store.extractions.fail(run.run_id, "s.b", "boom")
    finished = store.runs.finish(run.run_id)
    assert (finished.total_tables, finished.completed_tables, finished.failed_tables) == (3, 1, 1)
    assert finished.status == "failed"
    assert finished.completion_rate == pytest.approx(33.333, rel=1e-3)
    again = store.runs.begin("p_20250123", "p", "2025-01-23", WINDOW)
    assert again.restart_count == 1
    assert store.runs.find("p")[0].run_id == "p_20250123"


def test_delete_run_forgets_it(store: Store) -> None:
    store.runs.begin("r", "p", "2025-01-23", WINDOW)
    store.extractions.ensure("r", [_entry("s.a")])
    assert store.runs.delete("r") == 2
    assert store.runs.get("r") is None


def test_failed_transaction_rolls_back(store: Store) -> None:
    store.runs.begin("r", "p", "2025-01-23", WINDOW)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.execute("UPDATE pipeline_runs SET status = ? WHERE run_id = ?", ("bogus", "r"))
        raise RuntimeError("abort")
    run = store.runs.get("r")
    assert run is not None and run.status == "running"


def test_fail_only_if_moves_only_a_run_in_that_status(store: Store) -> None:
    store.runs.begin("r", "p", "2025-01-23", WINDOW)
    assert store.runs.fail("r", only_if="completed") is None
    assert store.runs.get("r").status == "running"
    failed = store.runs.fail("r")
    assert failed is not None and failed.status == "failed"


def _worker(url: str, worker: int, n: int) -> None:
    s = open_store(url)
    for i in range(n):
        run_id = f"r{i % 3}"
        s.runs.begin(run_id, "p", "2025-01-23", WINDOW)
        s.extractions.ensure(run_id, [_entry(f"s.w{worker}_{i}")])
        s.extractions.complete(run_id, [_done(f"s.w{worker}_{i}")])
    s.close()


def test_several_processes_write_at_once_without_losing_updates(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    url = fresh_store_url(request, tmp_path, backend)
    open_store(url).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(url, w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    s = open_store(url)
    total = sum(len(s.extractions.of_run(f"r{i}")) for i in range(3))
    assert total == 60
    assert sum(r.restart_count + 1 for r in s.runs.find("p")) == 60
    s.close()


def test_finish_keeps_a_failed_verdict_of_a_later_step_when_asked(store: Store) -> None:
    run = store.runs.begin("r", "p", "2025-01-23", WINDOW)
    store.extractions.ensure(run.run_id, [_entry("s.a")])
    store.extractions.start(run.run_id, "s.a", WINDOW)
    store.extractions.complete(run.run_id, [_done("s.a")])
    assert store.runs.finish("r", keep_failed=True).status == "failed"
    assert store.runs.finish("r").status == "completed"


def _complete_run(store: Store, run_id: str) -> None:
    store.runs.begin(run_id, "p", "2025-01-23", WINDOW)
    store.extractions.ensure(run_id, [_entry("s.a")])
    store.extractions.complete(run_id, [_done("s.a")])
    assert store.runs.finish(run_id).status == "completed"


def test_rerunning_a_completed_run_is_not_a_restart(store: Store) -> None:
    _complete_run(store, "r")
    for _ in range(3):
        assert store.runs.begin("r", "p", "2025-01-23", WINDOW).restart_count == 0
        assert store.runs.finish("r").status == "completed"


def test_resuming_a_run_left_running_or_failed_is_a_restart(store: Store) -> None:
    store.runs.begin("r", "p", "2025-01-23", WINDOW)  # then killed: left running
    assert store.runs.begin("r", "p", "2025-01-23", WINDOW).restart_count == 1
    store.runs.fail("r")  # its load failed
    assert store.runs.begin("r", "p", "2025-01-23", WINDOW).restart_count == 2
    store.extractions.ensure("r", [_entry("s.a")])
    store.extractions.complete("r", [_done("s.a")])
    store.runs.finish("r")
    assert store.runs.begin("r", "p", "2025-01-23", WINDOW).restart_count == 2


def test_a_registered_run_is_pending_and_its_first_begin_is_no_restart(store: Store) -> None:
    pending = store.runs.register("r", "p", "2025-01-23", WINDOW)
    assert (pending.status, pending.restart_count, pending.started_at) == ("pending", 0, None)
    assert store.runs.begin("r", "p", "2025-01-23", WINDOW).restart_count == 0
    # registering a run that exists changes nothing
    assert store.runs.register("r", "p", "2025-01-23", WINDOW).status == "running"


def test_moving_a_runs_window_flags_every_table_for_reextraction_in_it(store: Store) -> None:
    _complete_run(store, "r")
    new = ("2025-01-23T00:00:00-05:00", "2025-01-24T00:00:00-05:00")
    moved = store.runs.move_window("r", new)
    assert (moved.window_start, moved.window_end) == new
    ext = store.extractions.of_run("r")["s.a"]
    assert (ext.window_start, ext.window_end, ext.status) == (*new, "pending")
    assert ext.force_reprocess


def test_loading_moves_only_a_completed_run_and_a_kill_there_is_a_restart(store: Store) -> None:
    store.runs.begin("r", "p", "2025-01-23", WINDOW)
    assert store.runs.loading("r") is None  # still extracting
    assert store.runs.get("r").status == "running"
    assert store.runs.loading("nosuch") is None
    store.extractions.ensure("r", [_entry("s.a")])
    store.extractions.complete("r", [_done("s.a")])
    extracted = store.runs.finish("r")
    loading = store.runs.loading("r")
    assert loading is not None and loading.status == "loading"
    assert loading.updated_at >= extracted.updated_at
    assert loading.completed_tables == extracted.completed_tables == 1
    assert store.runs.loading("r") is None  # loading already
    # killed while loading: the next begin resumes it, and counts that
    assert store.runs.begin("r", "p", "2025-01-23", WINDOW).restart_count == 1


def test_of_dates_gives_the_pipelines_runs_of_those_dates_by_date(store: Store) -> None:
    # run ids that do not sort as their dates do
    for run_id, pipeline, day in [
        ("a3", "p", "2025-01-03"),
        ("b2", "p", "2025-01-02"),
        ("q2", "q", "2025-01-02"),
        ("c1", "p", "2025-01-01"),
        ("a2", "p", "2025-01-02"),
    ]:
        store.runs.register(run_id, pipeline, day, WINDOW)

    def ids(dates: list[str] | None = None) -> list[str]:
        return [r.run_id for r in store.runs.of_dates("p", dates)]

    assert ids() == ["c1", "a2", "b2", "a3"]  # all, by date, then id
    assert ids(["2025-01-03", "2025-01-02", "2025-01-09"]) == ["a2", "b2", "a3"]
    assert ids([]) == []  # no dates: no runs, not all of them
    assert store.runs.of_dates("nosuch") == []


def test_a_statement_the_database_refuses_is_a_state_error_on_either_store(store: Store) -> None:
    # a transaction, and a lone statement (autocommit on PostgreSQL)
    for scope in (store.db.transaction, store.db.statement):
        refused = pytest.raises(StateError, match=r"NOT NULL constraint|not-null constraint")
        with refused, scope() as tx:
            tx.execute("INSERT INTO pipeline_runs (run_id) VALUES (?)", ("r",))
        assert store.runs.get("r") is None  # nothing written, and the connection goes on
    assert store.runs.begin("r", "p", "2025-01-23", WINDOW).status == "running"
