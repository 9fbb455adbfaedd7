"""Cancelling a run ends its job in the same transaction: a worker running it stops
before its load (or, past it, records nothing) and drops it quietly, not as a failure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from onceflow import PipelineStateManager
from onceflow.config import Config
from onceflow.schedule import Worker, backfill
from onceflow.schedule import worker as worker_module
from onceflow.state import Store
from tests.integration.schedule.test_worker import loaded_dates


def cancel_during_run(monkeypatch: pytest.MonkeyPatch, store: Store, *, after_load: bool) -> None:
    """Cancel the run by hand while the worker runs it: before its load, or after."""
    real = worker_module.run_window

    def run_window(config: Config, run_date: str, **kw: Any) -> Any:
        (run,) = store.scheduled_runs.find(state="RUNNING")
        if not after_load:
            PipelineStateManager(store).transition_state(run.id, "RUNNING", "CANCELLED")
        summary = real(config, run_date, **kw)
        if after_load:
            PipelineStateManager(store).transition_state(run.id, "RUNNING", "CANCELLED")
        return summary

    monkeypatch.setattr(worker_module, "run_window", run_window)


def test_a_run_cancelled_while_running_stops_before_its_load_and_is_no_failure(
    store: Store, project: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = project()
    backfill(config, "2025-01-02", "2025-01-02", store=store)
    cancel_during_run(monkeypatch, store, after_load=False)
    report = Worker([config], store, poll_seconds=0.05).run(until_idle=True)
    assert (report.cancelled, report.failed, report.lost, report.completed) == (1, 0, 0, 0)
    (run,) = store.scheduled_runs.find()
    assert run.state == "CANCELLED" and run.ended_at
    job = store.queue.get(run.job_id or 0)
    assert job is not None and job.state == "cancelled"
    assert store.queue.length() == 0 and store.queue.length(state="claimed") == 0
    assert not (Path(config.resolve(config.warehouse)) / "src" / "events").exists()  # no load


def test_a_cancel_after_the_load_keeps_the_data_and_refuses_the_completion(
    store: Store, project: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = project()
    backfill(config, "2025-01-02", "2025-01-02", store=store)
    cancel_during_run(monkeypatch, store, after_load=True)
    report = Worker([config], store, poll_seconds=0.05).run(until_idle=True)
    assert (report.cancelled, report.failed, report.lost) == (1, 0, 0)
    (run,) = store.scheduled_runs.find()
    assert run.state == "CANCELLED"
    assert loaded_dates(config) == ["2025-01-02"]  # a Delta commit is not undone


def test_a_cancelled_pending_run_is_never_claimed(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project()
    backfill(config, "2025-01-02", "2025-01-02", store=store)
    (run,) = store.scheduled_runs.find()
    PipelineStateManager(store).transition_state(run.id, "PENDING", "CANCELLED")
    assert store.queue.length() == 0
    assert Worker([config], store).run(until_idle=True).claimed == 0
    # cancelled by hand, requeued by hand: it runs
    PipelineStateManager(store).transition_state(run.id, "CANCELLED", "PENDING")
    assert Worker([config], store, poll_seconds=0.05).run(until_idle=True).completed == 1


def test_a_run_cancelled_then_retried_while_running_counts_as_cancelled_not_lost(
    store: Store, project: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    from onceflow.schedule import cancel_scheduled_run, retry_run

    config = project()
    backfill(config, "2025-01-02", "2025-01-02", store=store)
    real = worker_module.run_window

    def run_window(cfg: Config, run_date: str, **kw: Any) -> Any:
        (run,) = store.scheduled_runs.find(state="RUNNING")
        cancel_scheduled_run([cfg], run.id, store=store)
        retry_run([cfg], run.id, store=store)  # queued again before this worker notices
        monkeypatch.setattr(worker_module, "run_window", real)
        return real(cfg, run_date, **kw)

    monkeypatch.setattr(worker_module, "run_window", run_window)
    first = Worker([config], store, poll_seconds=0.05).run(max_jobs=1)
    assert (first.cancelled, first.lost, first.failed) == (1, 0, 0)
    again = Worker([config], store, poll_seconds=0.05).run(until_idle=True)
    assert again.completed == 1
    assert loaded_dates(config) == ["2025-01-02"]  # loaded once
