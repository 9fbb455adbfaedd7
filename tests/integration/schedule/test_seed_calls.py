"""The seed's calls (seeds/004, "Usage Patterns"), written as the seed writes them, on both
stores: what each records in onceflow's state store."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from onceflow import PipelineStateManager, QueueManager, RetryManager
from onceflow.errors import ConfigError, StateError, TransitionError
from onceflow.schedule import (
    AsyncPipelineStateManager,
    AsyncQueueManager,
    AsyncRetryManager,
    RetryPolicy,
    ScheduleCalculator,
)
from onceflow.state import ScheduledRunRecord, Store, TenantQueueStatus

TICK = datetime(2025, 1, 10, 7, 0, tzinfo=UTC)
SEED_RETRY_CONFIG = {
    "max_retries": 3,
    "backoff_multiplier": 2,
    "retry_on_errors": ["TimeoutError", "TransientError"],
}


def running_run(store: Store, tick: datetime = TICK) -> str:
    """A run of acme's `shop`, made RUNNING by the seed's calls."""
    state_manager = PipelineStateManager(store)
    run_id = state_manager.create_scheduled_run("acme", "shop", tick)
    assert run_id is not None
    state_manager.transition_state(run_id, "SCHEDULED", "PENDING")
    state_manager.mark_as_running(run_id)
    return run_id


def due_in(when: datetime, minutes: float) -> bool:
    """`when` is `minutes` from now, give or take a second."""
    return abs((when - datetime.now(UTC)).total_seconds() - minutes * 60) < 1.0


# --- 1. mark_as_running(run_id, pipeline_logging_id), mark_as_completed(run_id, duration)


def test_mark_as_running_and_completed_record_the_logging_id_and_the_duration(
    store: Store,
) -> None:
    state_manager = PipelineStateManager(store)
    run_id = state_manager.create_scheduled_run("acme", "shop", TICK)
    assert run_id is not None
    state_manager.transition_state(run_id, "SCHEDULED", "PENDING")
    pipeline_logging_id = str(uuid.uuid4())
    duration = 42.5
    state_manager.mark_as_running(run_id, pipeline_logging_id)
    state_manager.mark_as_completed(run_id, duration)
    status = state_manager.get_run_status(run_id)
    assert status["state"] == "COMPLETED"
    assert status["duration_seconds"] == 42.5
    assert status["pipeline_logging_id"] == pipeline_logging_id
    assert status["worker"] is None  # neither argument is taken for a worker any more


def test_the_worker_is_a_keyword_and_a_duration_defaults_to_the_time_running(
    store: Store,
) -> None:
    states = PipelineStateManager(store)
    run_id = states.create_scheduled_run("acme", "shop", TICK)
    assert run_id is not None
    states.transition_state(run_id, "SCHEDULED", "PENDING")
    logging_id = uuid.uuid4()
    states.mark_as_running(run_id, logging_id, worker="w1")
    states.mark_as_completed(run_id, worker="w1")
    status = states.get_run_status(run_id)
    assert status["worker"] == "w1" and status["pipeline_logging_id"] == str(logging_id)
    assert 0 <= status["duration_seconds"] < 5
    other = running_run(store, TICK + timedelta(days=1))
    states.mark_as_completed(other, timedelta(minutes=2))
    assert states.get_run_status(other)["duration_seconds"] == 120.0


@pytest.mark.parametrize(
    ("duration", "error", "message"),
    [
        ("w1", TypeError, "give the worker as worker="),
        (True, TypeError, "duration is in seconds"),
        (-1.0, ValueError, "finite number of seconds >= 0"),
        (float("nan"), ValueError, "finite number of seconds >= 0"),
    ],
)
def test_a_duration_that_is_not_seconds_is_refused_and_changes_nothing(
    store: Store, duration: object, error: type[Exception], message: str
) -> None:
    run_id = running_run(store)
    with pytest.raises(error, match=message):
        PipelineStateManager(store).mark_as_completed(run_id, duration)  # type: ignore[arg-type]
    run = store.scheduled_runs.get(run_id)
    assert run is not None and run.state == "RUNNING" and run.duration_seconds is None


def test_a_failed_run_keeps_its_duration_and_error_type(store: Store) -> None:
    run_id = running_run(store)
    PipelineStateManager(store).mark_as_failed(run_id, "TimeoutError: source did not answer")
    run = store.scheduled_runs.get(run_id)
    assert run is not None and run.state == "FAILED" and run.error_type == "TimeoutError"
    assert run.duration_seconds is not None and run.duration_seconds >= 0


# --- 3. enqueue(tenant_id, config, priority=5) --------------------------------------


def test_enqueue_takes_the_seeds_config_dict(store: Store) -> None:
    queue_manager = QueueManager(store)
    tenant_id = "acme_corp"
    config = {
        "pipeline": "shop_orders",
        "cron": "0 2 * * *",
        "start": date(2025, 1, 1),
        "tables": ["orders", "customers"],
        "source": {"url": "postgresql://etl:s3cr3t@db/shop", "password": "hunter2"},
    }
    queue_id = queue_manager.enqueue(tenant_id, config, priority=5)
    item = queue_manager.dequeue("worker-001")
    assert item is not None
    assert (item.id, item.pipeline, item.tenant, item.priority) == (
        queue_id,
        "shop_orders",
        "acme_corp",
        5,
    )
    assert item.payload == {
        "pipeline": "shop_orders",
        "cron": "0 2 * * *",
        "start": "2025-01-01",
        "tables": ["orders", "customers"],
        "source": {"url": "postgresql://etl:***@db/shop", "password": "***"},
    }


def test_create_scheduled_run_twice_for_a_tick_returns_the_same_run_for_the_seeds_pattern(
    store: Store,
) -> None:
    state_manager = PipelineStateManager(store)
    run_id = state_manager.create_scheduled_run("acme", "shop", TICK)
    state_manager.transition_state(run_id, "SCHEDULED", "PENDING")
    # the caller timed out and retries its whole step: same run, in the state it reached
    again = state_manager.create_scheduled_run("acme", "shop", TICK)
    assert again == run_id
    assert state_manager.get_run_status(again)["state"] == "PENDING"
    assert len(store.scheduled_runs.find(pipeline="shop")) == 1
    history = store.scheduled_runs.history(run_id)
    assert [h.to_state for h in history] == ["SCHEDULED", "PENDING"]


def test_create_scheduled_run_refuses_a_tick_recorded_for_another_tenant_or_date(
    store: Store,
) -> None:
    state_manager = PipelineStateManager(store)
    run_id = state_manager.create_scheduled_run("acme", "shop", TICK)
    with pytest.raises(ConfigError, match=f"already recorded \\(run {run_id}\\) for tenant acme"):
        state_manager.create_scheduled_run("zeta", "shop", TICK)
    with pytest.raises(ConfigError, match=r"data date 2025-01-09; this call asks .* 2025-01-01"):
        state_manager.create_scheduled_run("acme", "shop", TICK, run_date=date(2025, 1, 1))
    assert [r.id for r in store.scheduled_runs.find(pipeline="shop")] == [run_id]


def test_get_run_status_gives_the_seeds_field_names_beside_onceflows(store: Store) -> None:
    run_id = running_run(store)
    status = PipelineStateManager(store).get_run_status(run_id)
    assert status["run_id"] == status["id"] == run_id
    assert status["scheduled_time"] == status["tick"] == TICK.isoformat()
    assert status["tenant_id"] == status["tenant"] == "acme"
    assert status["status"] == status["state"] == "RUNNING"
    assert status["created_at"]
    (record,) = PipelineStateManager(store).get_pipelines_by_state("RUNNING", "acme")
    assert (record.run_id, record.scheduled_time, record.tenant_id, record.status) == (
        run_id,
        TICK.isoformat(),
        "acme",
        "RUNNING",
    )


def test_a_dequeued_item_is_read_by_key_under_the_seeds_names(store: Store) -> None:
    queue_manager = QueueManager(store)
    config = {"pipeline": "shop_orders", "tables": ["orders"]}
    queue_id = queue_manager.enqueue("acme_corp", config, priority=3)
    item = queue_manager.dequeue("worker-001")
    assert item is not None
    assert item["priority"] == item.priority == 3
    assert item["queue_id"] == item.queue_id == item.id == queue_id
    assert item["status"] == item.status == item.state == "claimed"
    assert item["created_at"] == item.created_at == item.enqueued_at
    assert item["tenant_id"] == item["tenant"] == "acme_corp"
    assert item["worker_id"] == item["worker"] == "worker-001"
    assert item["config"] == item["payload"] == config
    assert "queue_id" in item and "nosuch" not in item
    assert item.get("nosuch", "x") == "x"
    with pytest.raises(KeyError, match="nosuch"):
        item["nosuch"]
    with pytest.raises(KeyError):
        item["keys"]  # a method is no field
    assert dict(item)["queue_id"] == queue_id
    assert dataclasses.replace(item, priority=9).priority == 9  # still a dataclass
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.priority = 1  # type: ignore[misc]


def test_the_seeds_queue_id_finishes_a_job_its_manager_claimed_and_no_other(
    store: Store,
) -> None:
    queue_manager = QueueManager(store)
    done = queue_manager.enqueue("acme_corp", {"pipeline": "shop"}, priority=5)
    failed = queue_manager.enqueue("acme_corp", {"pipeline": "shop"}, priority=6)
    assert [j.id for j in queue_manager.dequeue("worker-001", limit=2)] == [done, failed]
    queue_manager.mark_completed(done)
    queue_manager.mark_failed(failed, "TimeoutError: slow")
    states = [(j.state, j.error) for j in map(store.queue.get, (done, failed)) if j]
    assert states == [("completed", None), ("failed", "TimeoutError: slow")]
    other = queue_manager.enqueue("acme_corp", {"pipeline": "shop"})
    QueueManager(store).dequeue("worker-002")
    with pytest.raises(StateError, match="claimed by worker worker-002 through another"):
        queue_manager.mark_completed(other)
    with pytest.raises(TypeError, match="give the item dequeue returned or its queue id"):
        queue_manager.mark_completed(str(other))  # type: ignore[arg-type]


def test_enqueue_with_the_seeds_row_id_after_a_timeout_queues_one_job(store: Store) -> None:
    queue_manager = QueueManager(store)
    config = {"pipeline": "shop_orders", "run_date": "2025-01-09"}
    row_id = "acme_corp:shop_orders:2025-01-09"
    queue_id = queue_manager.enqueue("acme_corp", config, priority=5, row_id=row_id)
    # the client timed out before it saw the id, and enqueues again
    assert queue_manager.enqueue("acme_corp", config, priority=5, row_id=row_id) == queue_id
    assert queue_manager.enqueue("acme_corp", config, idempotency_key=row_id) == queue_id
    assert queue_manager.get_queue_length("acme_corp") == 1
    item = queue_manager.dequeue("worker-001")
    assert item is not None and item["row_id"] == item.idempotency_key == row_id
    with pytest.raises(TypeError, match="row_id is the seed's name of idempotency_key"):
        queue_manager.enqueue("acme_corp", config, row_id="a", idempotency_key="b")


@pytest.mark.parametrize(
    ("config", "pipeline"),
    [
        ({"pipeline_name": "a", "name": "b"}, "a"),
        ({"name": "b", "config_id": "c"}, "b"),
        ({"config_id": "c"}, "c"),
    ],
)
def test_a_config_names_its_pipeline_by_the_first_key_present(
    store: Store, config: dict[str, str], pipeline: str
) -> None:
    QueueManager(store).enqueue("acme", config)
    (job,) = store.queue.claim("w")
    assert job.pipeline == pipeline and job.payload == config


def test_a_config_the_queue_cannot_keep_is_refused_and_nothing_is_queued(store: Store) -> None:
    queue = QueueManager(store)
    with pytest.raises(ConfigError, match="the config names no pipeline") as caught:
        queue.enqueue("acme", {"cron": "0 2 * * *"}, priority=5)
    assert caught.value.field == "config.pipeline"
    with pytest.raises(ConfigError, match=r"config\.client is a object"):
        queue.enqueue("acme", {"pipeline": "shop", "client": object()})
    with pytest.raises(TypeError, match="do not give a payload as well"):
        queue.enqueue("acme", {"pipeline": "shop"}, {"n": 1})
    assert queue.get_queue_length() == 0


# --- 4. and 5. should_retry / calculate_retry_time / schedule_retry ------------------


def test_the_seeds_retry_pattern_retries_once_at_the_time_it_chose(store: Store) -> None:
    state_manager = PipelineStateManager(store)
    retry_manager = RetryManager(store)
    run_id = running_run(store)
    error_msg = "TimeoutError: source did not answer in 30 s"
    retry_config = SEED_RETRY_CONFIG
    bq_client = object()  # the seed's BigQuery client: accepted, not used

    state_manager.mark_as_failed(run_id, error_msg, should_retry=True)
    should_retry = retry_manager.should_retry(run_id, retry_config, bq_client)
    if should_retry:
        retry_time = retry_manager.calculate_retry_time(attempt=1)
        retry_manager.schedule_retry(run_id, retry_time, bq_client)

    assert should_retry
    assert due_in(retry_time, 1)
    run = store.scheduled_runs.get(run_id)
    job = store.queue.live_job_of_run(run_id)
    assert run is not None and run.state == "PENDING"
    assert run.next_attempt_at == retry_time.astimezone(UTC).isoformat()
    assert job is not None and abs(job.run_after - retry_time.timestamp()) < 1e-3
    assert store.queue.length() == 1  # mark_as_failed's retry, moved: one job, not two


def test_the_seeds_retry_pattern_stops_when_the_retry_budget_is_spent(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    state_manager = PipelineStateManager(store)
    retry_manager = RetryManager(store)
    run_id = running_run(store)  # the default policy: max_retries 3
    queued = []
    for _attempt in range(6):
        queued.append(state_manager.mark_as_failed(run_id, "TimeoutError: slow", should_retry=True))
        if not retry_manager.should_retry(run_id, SEED_RETRY_CONFIG, object()):
            break
        # a worker takes the retry when it is due (now, to keep the test short)
        job = store.queue.live_job_of_run(run_id)
        assert job is not None and store.queue.reschedule(job.id, 0.0)
        (claimed,) = store.queue.claim("worker-001")
        state_manager.mark_as_running(run_id)
        store.queue.fail(claimed.id, claimed.token or "", "TimeoutError: slow")
    # the first run and its 3 retries failed: no fifth attempt, whatever the caller asked
    assert queued == [True, True, True, False]
    run = store.scheduled_runs.get(run_id)
    assert run is not None and run.state == "FAILED"
    assert store.queue.live_job_of_run(run_id) is None
    assert "retry budget is spent (4 failures, max_retries 3)" in caplog.text


def test_mark_as_failed_does_not_retry_an_error_its_policy_never_retries(store: Store) -> None:
    state_manager = PipelineStateManager(store)
    run_id = state_manager.create_scheduled_run(
        "acme", "shop", TICK, retry=RetryPolicy(retry_on=("TimeoutError",))
    )
    state_manager.transition_state(run_id, "SCHEDULED", "PENDING")
    state_manager.mark_as_running(run_id)
    assert not state_manager.mark_as_failed(run_id, "KeyError: 'x'", should_retry=True)
    run = store.scheduled_runs.get(run_id)
    assert run is not None and run.state == "FAILED" and store.queue.length() == 0


def test_mark_as_failed_with_a_message_retries_by_the_type_it_names(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    state_manager, retry_manager = PipelineStateManager(store), RetryManager(store)
    listed = RetryPolicy(max_retries=3, retry_on=["TimeoutError", "TransientError"])
    timeout = state_manager.create_scheduled_run("acme", "shop", TICK, retry=listed)
    state_manager.transition_state(timeout, "SCHEDULED", "PENDING")
    state_manager.mark_as_running(timeout)
    assert state_manager.mark_as_failed(timeout, "TimeoutError: read timed out", should_retry=True)
    assert "not retried" not in caplog.text
    # the default policy never retries a config error, given as a message too
    config = running_run(store, TICK + timedelta(days=1))
    assert not state_manager.mark_as_failed(config, "ConfigError: unknown x", should_retry=True)
    assert "its error type (ConfigError) is not retried" in caplog.text
    assert not retry_manager.should_retry(config)
    # onceflow's older (run_id, error) call with a message judges its type
    failed = running_run(store, TICK + timedelta(days=2))
    state_manager.mark_as_failed(failed, TimeoutError("x"))
    assert retry_manager.should_retry(failed, listed, error="TimeoutError: x")
    assert not retry_manager.should_retry(failed, listed, error="KeyError: x")
    assert not retry_manager.should_retry(failed, "ConfigError: x")


def test_schedule_retry_queues_a_failed_run_at_the_retry_time(store: Store) -> None:
    retry_manager = RetryManager(store)
    run_id = running_run(store)
    PipelineStateManager(store).mark_as_failed(run_id, "TimeoutError: slow")
    retry_time = retry_manager.calculate_retry_time(attempt=3)
    assert due_in(retry_time, 4)  # 1, 2, 4 minutes
    job_id = retry_manager.schedule_retry(run_id, retry_time, object())
    job = store.queue.get(job_id)
    run = store.scheduled_runs.get(run_id)
    assert job is not None and abs(job.run_after - retry_time.timestamp()) < 1e-3
    assert run is not None and run.state == "PENDING" and run.job_id == job_id
    # a retry not started yet is moved (one job still); a started one is not
    assert retry_manager.schedule_retry(run_id, datetime.now(UTC), object()) == job_id
    assert [j.id for j in store.queue.claim("w")] == [job_id]
    with pytest.raises(TransitionError, match="is PENDING, not FAILED"):
        retry_manager.schedule_retry(run_id, retry_time, object())


def test_should_retry_honours_the_retry_config_it_is_given(store: Store) -> None:
    states, retries = PipelineStateManager(store), RetryManager(store)
    run_id = running_run(store)
    states.mark_as_failed(run_id, "ValueError: bad row")
    assert not retries.should_retry(run_id, SEED_RETRY_CONFIG, object())  # not listed
    assert retries.should_retry(run_id, {"max_retries": 1}, object())  # any error
    assert retries.should_retry(run_id)  # the run's stored (default) policy
    assert retries.should_retry(run_id, "TimeoutError")  # onceflow's (run_id, error) call
    assert retries.should_retry(run_id, SEED_RETRY_CONFIG, error=TimeoutError())
    # a second failure spends the budget of max_retries 1
    retries.schedule_retry(run_id, datetime.now(UTC), object())
    store.scheduled_runs.transition(run_id, "PENDING", "RUNNING")
    states.mark_as_failed(run_id, TimeoutError("again"))
    assert not retries.should_retry(run_id, {"max_retries": 1}, object())
    assert retries.should_retry(run_id, SEED_RETRY_CONFIG, object())
    with pytest.raises(ConfigError, match="retry_config: retries: unknown key"):
        retries.should_retry(run_id, {"retries": 3}, object())


def test_calculate_retry_time_takes_the_seeds_attempt(store: Store) -> None:
    assert due_in(RetryManager(store).calculate_retry_time(attempt=1), 1)
    assert due_in(RetryManager(store).calculate_retry_time(attempt=2), 2)
    slow = RetryManager(store, retry_config={"backoff_base_minutes": 5, "max_delay_minutes": 8})
    assert due_in(slow.calculate_retry_time(attempt=1), 5)
    assert due_in(slow.calculate_retry_time(attempt=2), 8)
    assert due_in(slow.calculate_retry_time(attempt=1, retry_config=SEED_RETRY_CONFIG), 1)
    with pytest.raises(ValueError, match="attempt counts retries from 1"):
        slow.calculate_retry_time(attempt=0)
    with pytest.raises(TypeError, match="give a run_id or attempt="):
        slow.calculate_retry_time()


# --- 6. await state_manager... --------------------------------------------------------


def test_the_seeds_awaited_calls_run_on_the_store(store: Store) -> None:
    state_manager = AsyncPipelineStateManager(store)
    queue_manager = AsyncQueueManager(store)
    retry_manager = AsyncRetryManager(store)
    calculator = ScheduleCalculator()
    tenant_id, config_id = "acme_corp", "shop"
    config = {"pipeline": "shop", "tables": ["orders"]}
    pipeline_logging_id, duration = "log-001", 12.25
    bq_client = object()

    async def pattern_1() -> str | None:
        next_run = calculator.calculate_next_run("0 2 * * *", "America/New_York")
        run_id = await state_manager.create_scheduled_run(tenant_id, config_id, next_run)
        assert run_id is not None
        await state_manager.transition_state(run_id, "SCHEDULED", "PENDING")
        queue_id = await queue_manager.enqueue(tenant_id, config, priority=5)
        item = await queue_manager.dequeue("worker-001")
        assert item is not None and item.id == queue_id
        await state_manager.mark_as_running(run_id, pipeline_logging_id)
        await state_manager.mark_as_completed(run_id, duration)
        return run_id

    async def pattern_2(run_id: str, error_msg: str) -> bool:
        await state_manager.mark_as_failed(run_id, error_msg, should_retry=True)
        should_retry = await retry_manager.should_retry(run_id, SEED_RETRY_CONFIG, bq_client)
        if should_retry:
            retry_time = retry_manager.calculate_retry_time(attempt=1)
            await retry_manager.schedule_retry(run_id, retry_time, bq_client)
        return should_retry

    async def pattern_3() -> tuple[
        list[ScheduledRunRecord], dict[str, Any], list[TenantQueueStatus]
    ]:
        return await asyncio.gather(
            state_manager.get_yet_to_run_pipelines(),
            state_manager.get_customer_pipeline_status("acme_corp"),
            queue_manager.get_queue_status(),
        )

    run_id = asyncio.run(pattern_1())
    assert run_id is not None
    status = PipelineStateManager(store).get_run_status(run_id)
    assert (status["state"], status["pipeline_logging_id"], status["duration_seconds"]) == (
        "COMPLETED",
        "log-001",
        12.25,
    )
    failing = running_run(store)
    assert asyncio.run(pattern_2(failing, "TimeoutError: slow")) is True
    yet_to_run, summary, queue_status = asyncio.run(pattern_3())
    assert yet_to_run == []  # the next 02:00 in New York is not due yet
    assert summary["counts"]["COMPLETED"] == 1
    assert [(q.tenant, q.queued) for q in queue_status] == [("acme", 1), ("acme_corp", 0)]


def test_awaited_calls_run_concurrently_each_in_its_own_thread(store: Store) -> None:
    state_manager = AsyncPipelineStateManager(store)
    ticks = [TICK + timedelta(hours=h) for h in range(8)]

    async def create_all() -> list[str | None]:
        return list(
            await asyncio.gather(
                *(state_manager.create_scheduled_run("acme", "shop", t) for t in ticks)
            )
        )

    created = asyncio.run(create_all())
    assert None not in created and len(set(created)) == 8
    assert len(store.scheduled_runs.find(tenant="acme")) == 8
    with pytest.raises(TransitionError, match="illegal transition"):
        asyncio.run(state_manager.transition_state(str(created[0]), "SCHEDULED", "COMPLETED"))


def test_a_naive_time_is_refused_by_the_calls_that_take_an_instant(store: Store) -> None:
    # read in the host's zone, one call recorded another tick in Tokyo than in UTC
    states, retries = PipelineStateManager(store), RetryManager(store)
    naive = datetime(2026, 11, 24, 2, 0)
    with pytest.raises(ValueError, match="create_scheduled_run: scheduled_time 2026-11-24T02:00"):
        states.create_scheduled_run("acme", "shop", naive)
    assert store.scheduled_runs.find() == []
    with pytest.raises(ValueError, match=r"get_yet_to_run_pipelines: at .* has no time zone"):
        states.get_yet_to_run_pipelines(naive)
    run_id = running_run(store)
    with pytest.raises(ValueError, match=r"mark_as_failed: retry_at .* has no time zone"):
        states.mark_as_failed(run_id, "TimeoutError: x", should_retry=True, retry_at=naive)
    run = store.scheduled_runs.get(run_id)
    assert run is not None and run.state == "RUNNING"  # nothing recorded
    states.mark_as_failed(run_id, "TimeoutError: x")
    with pytest.raises(ValueError, match=r"schedule_retry: retry_time .* has no time zone"):
        retries.schedule_retry(run_id, naive)
    # an aware time in any zone is its instant
    tokyo = datetime(2026, 11, 24, 11, 0, tzinfo=timezone(timedelta(hours=9)))
    made = states.create_scheduled_run("acme", "shop", tokyo)
    recorded = store.scheduled_runs.get(made)
    assert recorded is not None and recorded.tick == "2026-11-24T02:00:00+00:00"
