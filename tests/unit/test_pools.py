"""`interruptible`: a Ctrl-C leaves a thread pool at once, cancelling what has not started;
any other way out waits for every task, as `with ThreadPoolExecutor` does."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from onceflow.pools import interruptible


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_neither_waits_for_the_running_task_nor_starts_the_queued_ones(
    stop: type[BaseException],
) -> None:
    release = threading.Event()
    started: list[int] = []

    def task(n: int) -> None:
        started.append(n)
        release.wait(30)  # a connect to a host that does not answer

    began = time.monotonic()
    try:
        with (
            pytest.raises(stop),
            interruptible(ThreadPoolExecutor(1)) as pool,
        ):
            futures = [pool.submit(task, n) for n in range(3)]
            while not started:
                time.sleep(0.001)
            raise stop
        assert time.monotonic() - began < 5
        assert futures[1].cancelled() and futures[2].cancelled()
    finally:
        release.set()
    futures[0].result(timeout=30)
    assert started == [0]


def test_an_error_or_a_normal_end_waits_for_every_task() -> None:
    done: list[int] = []

    def task(n: int) -> None:
        time.sleep(0.05)
        done.append(n)

    with pytest.raises(ValueError), interruptible(ThreadPoolExecutor(1)) as pool:
        for n in range(3):
            pool.submit(task, n)
        raise ValueError
    assert done == [0, 1, 2]
    with interruptible(ThreadPoolExecutor(2)) as pool:
        for n in range(3, 5):
            pool.submit(task, n)
    assert sorted(done) == [0, 1, 2, 3, 4]
