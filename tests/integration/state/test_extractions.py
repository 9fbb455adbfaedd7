"""The extractions repository's contract, on SQLite and PostgreSQL."""

from __future__ import annotations

from onceflow.state import ExtractionEntry, ExtractionOutcome, Store

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


def test_ensure_extractions_keeps_existing_progress(store: Store) -> None:
    store.runs.begin("r", "p", "2025-01-23", WINDOW)
    store.extractions.ensure("r", [_entry("s.a")])
    store.extractions.complete("r", [_done("s.a", rows=42)])
    store.extractions.ensure("r", [_entry("s.a"), _entry("s.b")])
    rows = store.extractions.of_run("r")
    assert rows["s.a"].status == "completed"
    assert rows["s.a"].record_count == 42
    assert rows["s.b"].status == "pending"


def test_attempts_count_and_errors_clear_on_success(store: Store) -> None:
    store.runs.begin("r", "p", "2025-01-23", WINDOW)
    store.extractions.ensure("r", [_entry("s.a")])
    store.extractions.start("r", "s.a", WINDOW)
    store.extractions.fail("r", "s.a", "transient")
    store.extractions.start("r", "s.a", WINDOW)
    store.extractions.complete("r", [_done("s.a")])
    record = store.extractions.of_run("r")["s.a"]
    assert (record.attempts, record.status, record.error) == (2, "completed", None)
    assert record.last_action == "extracted"


def test_failing_one_attempt_leaves_a_completed_or_later_attempt_as_it_is(store: Store) -> None:
    # fix-inconsistencies judges an extraction interrupted, then fails that attempt: a run
    # that completed it, or started it again, meanwhile keeps its state
    store.runs.begin("r", "p", "2025-01-23", WINDOW)
    store.extractions.ensure("r", [_entry("s.a"), _entry("s.b"), _entry("s.c")])
    for key in ("s.a", "s.b", "s.c"):
        store.extractions.start("r", key, WINDOW)
    store.extractions.complete("r", [_done("s.a")])
    store.extractions.start("r", "s.b", WINDOW)  # attempt 2 runs now
    assert not store.extractions.fail("r", "s.a", "interrupted", only_attempt=1)
    assert not store.extractions.fail("r", "s.b", "interrupted", only_attempt=1)
    assert store.extractions.fail("r", "s.c", "interrupted", only_attempt=1)
    rows = store.extractions.of_run("r")
    assert [(rows[k].status, rows[k].error) for k in ("s.a", "s.b", "s.c")] == [
        ("completed", None),
        ("running", None),
        ("failed", "interrupted"),
    ]


def test_reset_failed_returns_how_many(store: Store) -> None:
    store.runs.begin("r", "p", "2025-01-23", WINDOW)
    store.extractions.ensure("r", [_entry("s.a"), _entry("s.b"), _entry("s.c")])
    store.extractions.fail("r", "s.a", "x")
    store.extractions.fail("r", "s.b", "y")
    assert store.extractions.reset_failed("r") == 2
    assert store.extractions.reset_failed("r") == 0
    assert store.extractions.counts("r")["pending"] == 3


def test_force_reprocess_flags_one_table(store: Store) -> None:
    store.runs.begin("r", "p", "2025-01-23", WINDOW)
    store.extractions.ensure("r", [_entry("s.a"), _entry("s.b")])
    store.extractions.complete("r", [_done("s.a"), _done("s.b")])
    assert store.extractions.force("r", "s.a") is True
    assert store.extractions.force("r", "s.zzz") is False
    rows = store.extractions.of_run("r")
    assert rows["s.a"].force_reprocess and rows["s.a"].status == "pending"
    assert not rows["s.b"].force_reprocess
    store.extractions.complete("r", [_done("s.a")])
    assert not store.extractions.of_run("r")["s.a"].force_reprocess


def test_ensure_with_force_flags_new_and_known_tables_in_one_call(store: Store) -> None:
    store.runs.begin("r", "p", "2025-01-23", WINDOW)
    store.extractions.ensure("r", [_entry("s.a"), _entry("s.c")])
    store.extractions.complete("r", [_done("s.a"), _done("s.c")])
    store.extractions.ensure("r", [_entry("s.a"), _entry("s.b")], force=True)
    rows = store.extractions.of_run("r")
    assert rows["s.a"].force_reprocess and rows["s.a"].status == "pending"
    assert rows["s.b"].force_reprocess and rows["s.b"].status == "pending"
    assert not rows["s.c"].force_reprocess  # not among the entries: left as it was
    assert rows["s.c"].status == "completed"
    store.extractions.fail("r", "s.b", "unreachable")
    store.extractions.complete("r", [_done("s.a")])
    rows = store.extractions.of_run("r")
    assert not rows["s.a"].force_reprocess  # its new file is committed
    assert rows["s.b"].force_reprocess  # a failure keeps it flagged for the next run


def test_mark_corrupt_flags_only_the_completed_commit_of_that_checksum(store: Store) -> None:
    store.runs.begin("r", "p", "2025-01-23", WINDOW)
    store.extractions.ensure("r", [_entry("s.a"), _entry("s.b")])
    store.extractions.complete("r", [_done("s.a")])
    store.extractions.start("r", "s.b", WINDOW)  # being re-extracted: no proof about it
    assert not store.extractions.mark_corrupt("r", "s.a", "other", "x")  # another commit
    assert not store.extractions.mark_corrupt("r", "s.b", "abc", "x")
    assert store.extractions.mark_corrupt("r", "s.a", "abc", "checksum mismatch")
    rows = store.extractions.of_run("r")
    assert rows["s.a"].force_reprocess and rows["s.a"].status == "pending"
    assert (rows["s.a"].error, rows["s.a"].last_action) == ("checksum mismatch", "corrupt")
    assert rows["s.b"].status == "running" and not rows["s.b"].force_reprocess
    store.extractions.start("r", "s.a", WINDOW)
    store.extractions.complete("r", [_done("s.a")])
    record = store.extractions.of_run("r")["s.a"]
    assert not record.force_reprocess and record.error is None


def test_resetting_every_runs_failed_extractions_leaves_other_pipelines_alone(
    store: Store,
) -> None:
    """A shared store holds other pipelines' runs: `all_runs` is this pipeline's runs."""
    from onceflow.config import config_from_dict
    from onceflow.extract import reset_failed_extractions

    for run_id, pipeline in (("a_1", "a"), ("a_2", "a"), ("b_1", "b")):
        store.runs.begin(run_id, pipeline, "2025-01-23", WINDOW)
        store.extractions.ensure(run_id, [_entry("s.t")])
        store.extractions.start(run_id, "s.t", WINDOW)
        store.extractions.fail(run_id, "s.t", "boom")
    config = config_from_dict(
        {
            "pipeline": "a",
            "lake": "/tmp/lake",
            "sources": {"s": {"url": "sqlite:///s.db"}},
            "tables": [{"source": "s", "table": "t"}],
        }
    )
    assert reset_failed_extractions(config, all_runs=True, store=store) == 2
    assert store.extractions.of_run("b_1")["s.t"].status == "failed"
    assert store.extractions.of_run("a_1")["s.t"].status == "pending"


def test_unfinished_gives_a_tables_incomplete_windows_of_the_pipeline_oldest_first(
    store: Store,
) -> None:
    # daily windows across the spring DST change: local midnights, two UTC offsets; run
    # ids that sort the other way round
    days = {
        "w4": ("2025-03-10T00:00:00-04:00", "2025-03-11T00:00:00-04:00"),
        "z1": ("2025-03-07T00:00:00-05:00", "2025-03-08T00:00:00-05:00"),
        "x3": ("2025-03-09T00:00:00-05:00", "2025-03-10T00:00:00-04:00"),
        "y2": ("2025-03-08T00:00:00-05:00", "2025-03-09T00:00:00-05:00"),
    }
    for run_id, window in days.items():
        store.runs.begin(run_id, "p", window[0][:10], window)
        store.extractions.ensure(
            run_id, [ExtractionEntry(key, "s", key[2:], "full", *window) for key in ("s.a", "s.b")]
        )
        store.extractions.complete(run_id, [_done("s.b")])
    store.extractions.start("z1", "s.a", days["z1"])
    store.extractions.fail("z1", "s.a", "source down")
    store.extractions.complete("y2", [_done("s.a")])
    store.extractions.start("w4", "s.a", days["w4"])  # x3's stays pending
    store.runs.begin("q1", "q", "2025-03-07", days["z1"])  # another pipeline's
    store.extractions.ensure("q1", [ExtractionEntry("s.a", "s", "a", "full", *days["z1"])])

    found = store.extractions.unfinished("p", "s.a")
    assert [(e.run_id, e.status) for e in found] == [
        ("z1", "failed"),
        ("x3", "pending"),
        ("w4", "running"),
    ]
    assert found[0].error == "source down"
    assert store.extractions.unfinished("p", "s.b") == []
    assert store.extractions.unfinished("nosuch", "s.a") == []
