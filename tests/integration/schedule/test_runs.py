"""Scheduled runs as an operator handles them (`onceflow runs ...`): list newest first with
filters, one run in detail, retry a failed window with the later failed windows of its
batch and a fresh retry budget, cancel; each refusal names what to do instead."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from onceflow import PipelineStateManager
from onceflow.config import Config
from onceflow.errors import ConfigError, StateError, TransitionError, typed_error
from onceflow.pipeline.status import reset_state, status_report
from onceflow.schedule import (
    Scheduler,
    Worker,
    backfill,
    cancel_scheduled_run,
    list_runs,
    retry_run,
    run_details,
    trigger_schedule,
)
from onceflow.schedule.retry import failures_since_reprocess
from onceflow.state import Store

NO_RETRY = {"name": "nightly", "cron": "0 2 * * *", "retry": {"max_retries": 0}}


def _by_date(store: Store) -> dict[str, str]:
    return {r.run_date: r.id for r in store.scheduled_runs.find()}


def test_retry_of_the_failed_window_requeues_the_later_failed_windows_with_fresh_retries(
    store: Store, project: Callable[..., Config], broken: set[str]
) -> None:
    config = project(schedules=[NO_RETRY])
    backfill(config, "2025-01-02", "2025-01-05", store=store)
    broken.add("2025-01-03")
    assert Worker([config], store, poll_seconds=0.05).run(until_idle=True).failed == 3
    ids = _by_date(store)

    # a blocked window alone would only be blocked again: refused, naming the window to retry
    with pytest.raises(TransitionError) as refused:
        retry_run([config], ids["2025-01-04"], store=store)
    assert f"onceflow runs retry {ids['2025-01-03']}" in str(refused.value)
    assert store.scheduled_runs.get(ids["2025-01-04"]).state == "FAILED"  # type: ignore[union-attr]

    broken.clear()
    report = retry_run([config], ids["2025-01-03"], store=store)
    assert [r["run_date"] for r in report.requeued] == ["2025-01-03", "2025-01-04", "2025-01-05"]
    assert {r["was"] for r in report.requeued} == {"FAILED"}
    for day in ("2025-01-03", "2025-01-04", "2025-01-05"):
        run = store.scheduled_runs.get(ids[day])
        assert run is not None and run.state == "PENDING" and run.error is None
        assert store.queue.live_job_of_run(run.id) is not None
        # a fresh retry budget, as Airflow's clear gives
        assert failures_since_reprocess(store.scheduled_runs.history(run.id)) == 0
    assert Worker([config], store, poll_seconds=0.05).run(until_idle=True).failed == 0
    assert {r.state for r in store.scheduled_runs.find()} == {"COMPLETED"}


def test_retry_refuses_a_completed_a_pending_and_an_unknown_run(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[NO_RETRY])
    backfill(config, "2025-01-02", "2025-01-03", store=store)
    ids = _by_date(store)
    with pytest.raises(TransitionError, match="is PENDING: it will run"):
        retry_run([config], ids["2025-01-02"], store=store)
    Worker([config], store, poll_seconds=0.05).run(until_idle=True)
    with pytest.raises(TransitionError) as done:
        retry_run([config], ids["2025-01-02"], store=store)
    assert "completed: its data is loaded" in str(done.value)
    assert "backfill --from 2025-01-02 --to 2025-01-02 --reprocess all" in str(done.value)
    with pytest.raises(TransitionError, match="not in the state store"):
        retry_run([config], "no-such-run", store=store)


def test_cancel_ends_a_queued_run_and_its_job_and_a_cancelled_run_can_be_retried(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[NO_RETRY])
    backfill(config, "2025-01-02", "2025-01-02", store=store)
    (run_id,) = _by_date(store).values()
    assert cancel_scheduled_run([config], run_id, store=store) == "PENDING"
    run = store.scheduled_runs.get(run_id)
    assert run is not None and run.state == "CANCELLED"
    assert store.queue.live_job_of_run(run_id) is None  # never claimed
    with pytest.raises(TransitionError, match="only a run that is SCHEDULED, PENDING"):
        cancel_scheduled_run([config], run_id, store=store)
    assert Worker([config], store, poll_seconds=0.05).run(until_idle=True).completed == 0

    assert [r["was"] for r in retry_run([config], run_id, store=store).requeued] == ["CANCELLED"]
    assert Worker([config], store, poll_seconds=0.05).run(until_idle=True).completed == 1
    detail = run_details([config], run_id, store=store)
    assert detail["state"] == "COMPLETED" and detail["job"]["state"] == "completed"
    steps = [(h["from_state"], h["to_state"]) for h in detail["history"]]
    assert ("PENDING", "CANCELLED") in steps and ("CANCELLED", "PENDING") in steps
    assert steps[-1] == ("RUNNING", "COMPLETED")


def test_cancelling_a_failed_run_clears_the_failures_error_types_and_keeps_them_in_history(
    store: Store, project: Callable[..., Config], broken: set[str]
) -> None:
    config = project(schedules=[NO_RETRY])
    backfill(config, "2025-01-02", "2025-01-04", store=store)
    broken.add("2025-01-03")
    Worker([config], store, poll_seconds=0.05).run(until_idle=True)
    ids = _by_date(store)
    blocked = store.scheduled_runs.get(ids["2025-01-04"])
    assert blocked is not None and blocked.error_type == "BlockedRunError"

    assert cancel_scheduled_run([config], blocked.id, store=store) == "FAILED"
    run = store.scheduled_runs.get(blocked.id)
    assert run is not None and run.state == "CANCELLED"
    assert (run.error, run.error_type, run.error_types) == ("cancelled by hand", None, None)
    assert run.error_names == ()
    (listed,) = list_runs([config], state="CANCELLED", store=store)
    assert listed.error_type is None
    failure = [h for h in store.scheduled_runs.history(run.id) if h.to_state == "FAILED"]
    assert failure and "blocked: the earlier window 2025-01-03" in (failure[-1].error or "")

    # a cancel through the seed's transition_state, with no note: no error left at all
    PipelineStateManager(store).transition_state(ids["2025-01-03"], "FAILED", "CANCELLED")
    plain = store.scheduled_runs.get(ids["2025-01-03"])
    assert plain is not None and (plain.error, plain.error_type, plain.error_types) == (
        None,
        None,
        None,
    )


def test_status_of_a_scheduled_runs_id_says_it_is_one_and_points_at_runs_show(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[NO_RETRY])
    backfill(config, "2025-01-02", "2025-01-02", store=store)
    (run_id,) = _by_date(store).values()
    with pytest.raises(StateError) as before:
        status_report(config, run_id=run_id, store=store)
    assert str(before.value) == (
        f"--run-id {run_id} is a scheduled run (sched/backfill, data date 2025-01-02, "
        f"PENDING), not a pipeline run: `onceflow runs show {run_id}` shows it; its date's "
        "pipeline run sched_20250102 has not started yet"
    )
    Worker([config], store, poll_seconds=0.05).run(until_idle=True)
    with pytest.raises(StateError) as after:
        status_report(config, run_id=run_id, store=store)
    assert str(after.value).endswith(
        "the pipeline run of its date is sched_20250102 (`onceflow status --date 2025-01-02`)"
    )
    assert status_report(config, "2025-01-02", store=store)["run_id"] == "sched_20250102"
    with pytest.raises(StateError, match="run nosuch is not in the state store"):
        status_report(config, run_id="nosuch", store=store)
    # flagging a table of it would make a pipeline run under the scheduled run's id
    with pytest.raises(StateError, match="is a scheduled run"):
        reset_state(config, run_id=run_id, table="src.events", store=store)
    assert store.runs.get(run_id) is None


def test_list_shows_the_newest_runs_first_filtered_by_state_schedule_and_date(
    store: Store, project: Callable[..., Config], broken: set[str]
) -> None:
    config = project(schedules=[NO_RETRY])
    backfill(config, "2025-01-02", "2025-01-05", store=store)
    broken.add("2025-01-05")
    Worker([config], store, poll_seconds=0.05).run(until_idle=True)

    newest = list_runs([config], store=store)
    assert [r.run_date for r in newest] == ["2025-01-05", "2025-01-04", "2025-01-03", "2025-01-02"]
    assert [r.run_date for r in list_runs([config], limit=2, store=store)] == [
        "2025-01-05",
        "2025-01-04",
    ]
    (failed,) = list_runs([config], state="failed", store=store)  # any case, as typed
    assert failed.run_date == "2025-01-05" and failed.error_type == "SourceError"
    assert [r.run_date for r in list_runs([config], run_date="2025-01-03", store=store)] == [
        "2025-01-03"
    ]
    assert len(list_runs([config], schedule="backfill", store=store)) == 4
    assert list_runs([config], schedule="nightly", store=store) == []
    with pytest.raises(ConfigError, match="unknown state 'DONE'; states: SCHEDULED"):
        list_runs([config], state="DONE", store=store)


def test_a_failed_tables_error_names_its_table_once(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[NO_RETRY])
    (Path(config.resolve("source.db"))).unlink()  # the source is gone
    backfill(config, "2025-01-02", "2025-01-02", store=store)
    report = Worker([config], store, poll_seconds=0.05).run(until_idle=True)
    (run,) = list_runs([config], store=store)
    assert run.state == "FAILED" and run.error_type == "ExtractError"
    assert run.error is not None and run.error.startswith("src.events: ")
    assert run.error.count("src.events") == 1, run.error
    assert report.failures[0].count("src.events") == 1


def test_a_run_that_completes_after_a_failed_attempt_keeps_the_failure_in_its_history_only(
    store: Store, project: Callable[..., Config], broken: set[str]
) -> None:
    config = project(schedules=[NO_RETRY])
    backfill(config, "2025-01-02", "2025-01-02", store=store)
    broken.add("2025-01-02")
    Worker([config], store, poll_seconds=0.05).run(until_idle=True)
    (run_id,) = _by_date(store).values()
    broken.clear()
    retry_run([config], run_id, store=store)
    Worker([config], store, poll_seconds=0.05).run(until_idle=True)
    run = store.scheduled_runs.get(run_id)
    assert run is not None and run.state == "COMPLETED"
    assert (run.error, run.error_type, run.error_names) == (None, None, ())
    assert any(
        h.error and "broken by the test" in h.error for h in store.scheduled_runs.history(run_id)
    )


def test_runs_recorded_through_the_api_days_apart_never_block_each_other(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[NO_RETRY])
    states = PipelineStateManager(store)
    first = states.create_scheduled_run("default", "sched", datetime(2025, 1, 3, 2, tzinfo=UTC))
    states.transition_state(first, "SCHEDULED", "PENDING")
    states.mark_as_running(first)
    states.mark_as_failed(first, "TimeoutError: source slow")
    later = states.create_scheduled_run("default", "sched", datetime(2025, 1, 6, 2, tzinfo=UTC))
    states.transition_state(later, "SCHEDULED", "PENDING")
    # queues the job the seed's caller did not, once it has been PENDING for the grace
    Scheduler([config], store, orphan_grace=timedelta(0)).run_once()
    assert Worker([config], store, poll_seconds=0.05).run(until_idle=True).failed == 0
    assert store.scheduled_runs.get(later).state == "COMPLETED"  # type: ignore[union-attr]
    # and a retry of the first requeues it alone: they are no batch
    assert [r["run_id"] for r in retry_run([config], first, store=store).requeued] == [first]


def test_a_window_whose_blocker_was_requeued_meanwhile_waits_for_it_instead_of_failing(
    store: Store, project: Callable[..., Config], broken: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = project(schedules=[NO_RETRY])
    backfill(config, "2025-01-02", "2025-01-03", store=store)
    broken.add("2025-01-02")
    Worker([config], store, poll_seconds=0.05).run(until_idle=True)
    ids = _by_date(store)
    stale = store.scheduled_runs.get(ids["2025-01-02"])  # FAILED, as a worker read it
    broken.clear()
    retry_run([config], ids["2025-01-02"], store=store)  # both queued again
    # the worker that takes Jan 3 first read Jan 2 as FAILED, a moment before the retry
    monkeypatch.setattr(Worker, "earlier", lambda self, run: stale)
    worker = Worker([config], store, poll_seconds=0.05)
    report = worker.run(max_jobs=1)
    assert report.failed == 0 and report.deferred + report.completed == 1
    monkeypatch.undo()
    assert Worker([config], store, poll_seconds=0.05).run(until_idle=True).failed == 0
    assert {r.state for r in store.scheduled_runs.find()} == {"COMPLETED"}


def test_backfill_reprocess_all_re_extracts_a_date_backfilled_for_the_first_time(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[NO_RETRY])
    backfill(config, "2025-01-02", "2025-01-02", reprocess="all", store=store)
    (run,) = store.scheduled_runs.find()
    assert run.force_reprocess


def test_list_by_schedule_name_covers_its_triggered_runs_and_reads_today_and_yesterday(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[NO_RETRY])
    trigger_schedule(config, "nightly", run_date="2025-01-02", store=store)
    (manual,) = list_runs([config], schedule="nightly", store=store)
    assert manual.schedule == "nightly:manual"
    assert list_runs([config], run_date="yesterday", store=store) == []
    with pytest.raises(ConfigError, match="--date"):
        list_runs([config], run_date="2025-13-01", store=store)
    detail = run_details([config], manual.id, store=store)
    assert detail["state"] == "PENDING" and detail["job"]["state"] == "queued"


def test_a_run_error_recorded_from_a_message_names_its_type_once() -> None:
    assert typed_error("TimeoutError", "TimeoutError: source slow") == "TimeoutError: source slow"
    assert typed_error("ExtractError", "src.events: gone") == "ExtractError: src.events: gone"
    assert typed_error(None, "cancelled by hand") == "cancelled by hand"
    assert typed_error("SourceError", None) == ""
