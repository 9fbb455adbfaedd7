"""The seed's four parts under their own names, on both stores: PipelineStateManager,
QueueManager, ScheduleCalculator (see tests/unit) and RetryManager."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from onceflow import PipelineStateManager, QueueManager, RetryManager, RetryPolicy
from onceflow.errors import LeaseLostError, TransitionError
from onceflow.state import Store

TICK = datetime(2025, 1, 10, 7, 0, tzinfo=UTC)


def test_pipeline_state_manager_runs_the_seed_lifecycle(store: Store) -> None:
    states = PipelineStateManager(store)
    run_id = states.create_scheduled_run("acme", "shop", TICK, schedule="nightly")
    assert run_id is not None
    # idempotent: a caller retrying the same tick gets the run it recorded
    assert states.create_scheduled_run("acme", "shop", TICK, schedule="nightly") == run_id
    assert [r.id for r in states.get_yet_to_run_pipelines(TICK)] == [run_id]
    assert states.get_yet_to_run_pipelines(TICK - timedelta(seconds=1)) == []
    states.transition_state(run_id, "SCHEDULED", "PENDING")
    assert [r.id for r in states.get_pipelines_by_state("PENDING", "acme")] == [run_id]
    assert states.get_pipelines_by_state("PENDING", "zeta") == []
    states.mark_as_running(run_id, worker="w1")
    states.mark_as_failed(run_id, "source down", should_retry=True)
    status = states.get_run_status(run_id)
    assert status["state"] == "PENDING" and status["run_date"] == "2025-01-09"
    assert [h["to_state"] for h in status["history"]] == [
        "SCHEDULED",
        "PENDING",
        "RUNNING",
        "FAILED",
        "PENDING",
    ]
    assert store.queue.length(tenant="acme") == 1  # the retry's job, due after its backoff
    store.scheduled_runs.transition(run_id, "PENDING", "RUNNING")
    states.mark_as_completed(run_id)
    summary = states.get_customer_pipeline_status("acme")
    assert summary["counts"]["COMPLETED"] == 1 and summary["last_success"]["run_id"] == run_id
    with pytest.raises(TransitionError, match="cannot go PENDING -> RUNNING: it is COMPLETED"):
        states.mark_as_running(run_id)
    with pytest.raises(TransitionError, match="illegal transition COMPLETED -> RUNNING"):
        states.transition_state(run_id, "COMPLETED", "RUNNING")
    with pytest.raises(ValueError, match="unknown state 'DONE'"):
        states.get_pipelines_by_state("DONE")


def test_queue_manager_enqueue_dequeue_and_mark(store: Store) -> None:
    queue = QueueManager(store, lease_seconds=30)
    low = queue.enqueue("acme", "shop", {"n": 1}, priority=9)
    high = queue.enqueue("acme", "shop", {"n": 2}, priority=1)
    assert queue.get_queue_length("acme") == 2
    first = queue.dequeue("w1")
    assert first is not None
    assert first.id == high and first.payload == {"n": 2}
    assert queue.heartbeat([first]) == set()
    queue.mark_completed(first)
    (second,) = queue.dequeue("w1", limit=1, pipelines=["shop"])
    assert second.id == low
    queue.mark_failed(second, "boom")
    with pytest.raises(LeaseLostError):
        queue.mark_completed(second)
    (status,) = queue.get_queue_status("acme")
    assert (status.completed, status.failed, status.queued) == (1, 1, 0)


def test_retry_manager_follows_the_runs_policy(store: Store) -> None:
    states = PipelineStateManager(store)
    policy = RetryPolicy(max_retries=1, backoff_base_minutes=2)
    run_id = states.create_scheduled_run("acme", "shop", TICK, retry=policy)
    assert run_id is not None
    retries = RetryManager(store)
    with pytest.raises(TransitionError, match="is SCHEDULED, not FAILED"):
        retries.should_retry(run_id)
    for frm, to in (("SCHEDULED", "PENDING"), ("PENDING", "RUNNING"), ("RUNNING", "FAILED")):
        store.scheduled_runs.transition(run_id, frm, to)
    assert retries.should_retry(run_id, "ExtractError")
    before = datetime.now(UTC)
    due = retries.calculate_retry_time(run_id)
    assert abs((due - before).total_seconds() - 120) < 1.0
    job_id = retries.schedule_retry(run_id, due)
    job = store.queue.get(job_id)
    assert job is not None and abs(job.run_after - due.timestamp()) < 1e-3
    run = store.scheduled_runs.get(run_id)
    assert run is not None and run.state == "PENDING" and run.next_attempt_at == due.isoformat()
    assert RetryManager.policy().max_retries == 3
