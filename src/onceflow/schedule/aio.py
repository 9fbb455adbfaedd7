"""Awaitable forms of the seed's state, queue and retry managers, for asyncio programs.

The seed awaits its managers (`await state_manager.get_yet_to_run_pipelines()`). The
state store is synchronous (sqlite3, psycopg's blocking connection) and keeps one
connection per thread, so each awaited call runs the synchronous method in a worker
thread with `asyncio.to_thread`: the event loop is never blocked on the database, each
thread uses its own connection, and the semantics (transactions, conditional
transitions, leases) are exactly the synchronous ones. Calls that touch no store -
`calculate_retry_time(attempt=...)`, and `ScheduleCalculator` altogether - stay plain
calls, as the seed writes them.

    async_states = AsyncPipelineStateManager(store)
    due = await async_states.get_yet_to_run_pipelines()
    await AsyncQueueManager(store).enqueue("acme", {"pipeline": "shop"}, priority=5)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from onceflow.schedule.managers import (
    PipelineStateManager,
    QueueManager,
    RetryConfigLike,
    RetryManager,
)
from onceflow.state import Store

S = TypeVar("S")
P = ParamSpec("P")
R = TypeVar("R")


class _InThread(Generic[S, P, R]):
    """A synchronous manager method, awaitable on the async wrapper: it runs in a worker
    thread on the wrapper's `sync` manager, with the same arguments and result."""

    def __init__(self, method: Callable[Concatenate[S, P], R]) -> None:
        self.method = method
        self.__doc__ = method.__doc__

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> _InThread[S, P, R]: ...

    @overload
    def __get__(
        self, obj: _AsyncManager[S], owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...

    def __get__(
        self, obj: _AsyncManager[S] | None, owner: type[Any]
    ) -> _InThread[S, P, R] | Callable[P, Coroutine[Any, Any, R]]:
        if obj is None:
            return self
        method, sync = self.method, obj.sync

        async def call(*args: P.args, **kwargs: P.kwargs) -> R:
            return await asyncio.to_thread(method, sync, *args, **kwargs)

        call.__name__ = self.name
        call.__doc__ = self.__doc__
        return call


class _AsyncManager(Generic[S]):
    """An async wrapper around one synchronous manager (`sync`)."""

    sync: S


class AsyncPipelineStateManager(_AsyncManager[PipelineStateManager]):
    """`PipelineStateManager` with awaitable methods (the seed's `await state_manager...`)."""

    def __init__(self, store: Store) -> None:
        self.sync = PipelineStateManager(store)

    create_scheduled_run = _InThread(PipelineStateManager.create_scheduled_run)
    transition_state = _InThread(PipelineStateManager.transition_state)
    get_pipelines_by_state = _InThread(PipelineStateManager.get_pipelines_by_state)
    get_yet_to_run_pipelines = _InThread(PipelineStateManager.get_yet_to_run_pipelines)
    mark_as_running = _InThread(PipelineStateManager.mark_as_running)
    mark_as_completed = _InThread(PipelineStateManager.mark_as_completed)
    mark_as_failed = _InThread(PipelineStateManager.mark_as_failed)
    get_run_status = _InThread(PipelineStateManager.get_run_status)
    get_customer_pipeline_status = _InThread(PipelineStateManager.get_customer_pipeline_status)


class AsyncQueueManager(_AsyncManager[QueueManager]):
    """`QueueManager` with awaitable methods (the seed's `await queue_manager...`)."""

    def __init__(self, store: Store, *, lease_seconds: float = 30.0) -> None:
        self.sync = QueueManager(store, lease_seconds=lease_seconds)

    enqueue = _InThread(QueueManager.enqueue)
    dequeue = _InThread(QueueManager.dequeue)
    heartbeat = _InThread(QueueManager.heartbeat)
    mark_completed = _InThread(QueueManager.mark_completed)
    mark_failed = _InThread(QueueManager.mark_failed)
    get_queue_length = _InThread(QueueManager.get_queue_length)
    get_queue_status = _InThread(QueueManager.get_queue_status)


class AsyncRetryManager(_AsyncManager[RetryManager]):
    """`RetryManager` with awaitable `should_retry` and `schedule_retry` (the seed awaits
    both); `calculate_retry_time` stays a plain call, as the seed makes it."""

    def __init__(self, store: Store, *, retry_config: RetryConfigLike | None = None) -> None:
        self.sync = RetryManager(store, retry_config=retry_config)

    should_retry = _InThread(RetryManager.should_retry)
    schedule_retry = _InThread(RetryManager.schedule_retry)

    def calculate_retry_time(
        self,
        run_id: str | None = None,
        *,
        attempt: int | None = None,
        retry_config: RetryConfigLike | None = None,
    ) -> datetime:
        """`RetryManager.calculate_retry_time`, not awaited (with a run id it reads the
        store once: a short query)."""
        return self.sync.calculate_retry_time(run_id, attempt=attempt, retry_config=retry_config)
