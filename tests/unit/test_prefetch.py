from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from onceflow.extract.prefetch import prefetch


def test_yields_everything_in_order() -> None:
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))


def test_producer_error_is_raised_to_the_consumer() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise ValueError("source broke")

    got = []
    with pytest.raises(ValueError, match="source broke"):
        for item in prefetch(items()):
            got.append(item)
    assert got == [1]


def test_consumer_stopping_early_closes_the_source_and_joins() -> None:
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            yield from range(10_000)
        finally:
            closed.set()

    stream = prefetch(items(), depth=2)
    assert next(stream) == 0
    stream.close()  # what a failing writer's `with`/exception does
    assert closed.wait(5)
    assert not any(t.name == "onceflow-prefetch" for t in threading.enumerate())


def test_stays_at_most_depth_ahead() -> None:
    produced = []

    def items() -> Iterator[int]:
        for i in range(50):
            produced.append(i)
            yield i

    stream = prefetch(items(), depth=2)
    next(stream)
    import time

    time.sleep(0.2)
    # one consumed, `depth` queued, and one in the producer's hand waiting for room
    assert len(produced) <= 1 + 2 + 1
    stream.close()
