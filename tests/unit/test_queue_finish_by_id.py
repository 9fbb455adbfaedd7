"""QueueManager finishes a job given its id (the seed's `queue_id`) or the dequeued item."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from onceflow import QueueManager
from onceflow.errors import LeaseLostError, StateError
from onceflow.schedule import AsyncQueueManager
from onceflow.state import Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


def test_the_seeds_queue_id_completes_the_job_this_manager_claimed(store: Store) -> None:
    queue_manager = QueueManager(store)
    queue_id = queue_manager.enqueue("acme_corp", {"pipeline": "shop"}, priority=5)
    item = queue_manager.dequeue("worker-001")
    assert item is not None and item.queue_id == queue_id
    queue_manager.mark_completed(queue_id)
    job = store.queue.get(queue_id)
    assert job is not None and job.state == "completed"


def test_the_seeds_queue_id_fails_the_job_with_its_message(store: Store) -> None:
    queue_manager = QueueManager(store)
    queue_id = queue_manager.enqueue("acme_corp", {"pipeline": "shop"})
    queue_manager.dequeue("worker-001")
    queue_manager.mark_failed(queue_id, "TimeoutError: slow")
    job = store.queue.get(queue_id)
    assert job is not None and (job.state, job.error) == ("failed", "TimeoutError: slow")


def test_the_dequeued_item_still_finishes_its_job(store: Store) -> None:
    queue_manager = QueueManager(store)
    queue_manager.enqueue("acme_corp", {"pipeline": "shop"})
    item = queue_manager.dequeue("worker-001")
    assert item is not None
    queue_manager.mark_completed(item)
    job = store.queue.get(item.id)
    assert job is not None and job.state == "completed"


def test_an_id_claimed_by_another_manager_is_refused_and_left_claimed(store: Store) -> None:
    queue_id = QueueManager(store).enqueue("acme_corp", {"pipeline": "shop"})
    QueueManager(store).dequeue("worker-002")
    with pytest.raises(StateError, match=r"claimed by worker worker-002 through another"):
        QueueManager(store).mark_completed(queue_id)
    job = store.queue.get(queue_id)
    assert job is not None and job.state == "claimed"


def test_an_id_not_claimed_or_unknown_is_refused_naming_its_state(store: Store) -> None:
    queue_manager = QueueManager(store)
    queue_id = queue_manager.enqueue("acme_corp", {"pipeline": "shop"})
    with pytest.raises(StateError, match=rf"job {queue_id} is queued, not claimed"):
        queue_manager.mark_failed(queue_id, "boom")
    with pytest.raises(StateError, match="there is no job 999"):
        queue_manager.mark_completed(999)


def test_a_finished_id_is_not_finished_twice(store: Store) -> None:
    queue_manager = QueueManager(store)
    queue_id = queue_manager.enqueue("acme_corp", {"pipeline": "shop"})
    queue_manager.dequeue("worker-001")
    queue_manager.mark_completed(queue_id)
    with pytest.raises(StateError, match="is completed, not claimed"):
        queue_manager.mark_failed(queue_id, "late")


def test_an_id_whose_lease_was_lost_is_fenced(store: Store) -> None:
    queue_manager = QueueManager(store, lease_seconds=0.0)
    queue_id = queue_manager.enqueue("acme_corp", {"pipeline": "shop"})
    queue_manager.dequeue("worker-001")
    store.queue.requeue_expired()
    with pytest.raises(LeaseLostError):
        queue_manager.mark_completed(queue_id)


@pytest.mark.parametrize("given", ["1", 1.0, True, None])
def test_anything_but_an_item_or_an_int_id_is_a_type_error_saying_what_to_give(
    store: Store, given: object
) -> None:
    with pytest.raises(TypeError, match="give the item dequeue returned or its queue id"):
        QueueManager(store).mark_completed(given)  # type: ignore[arg-type]


def test_the_awaited_calls_take_the_queue_id(store: Store) -> None:
    queue_manager = AsyncQueueManager(store)

    async def seed() -> int:
        queue_id = await queue_manager.enqueue("acme_corp", {"pipeline": "shop"}, priority=5)
        item = await queue_manager.dequeue("worker-001")
        assert item is not None
        await queue_manager.mark_completed(queue_id)
        return queue_id

    job = store.queue.get(asyncio.run(seed()))
    assert job is not None and job.state == "completed"
