"""Read the next batches on a second thread while the current ones are encoded.

The drivers (libpq via ADBC, ConnectorX) and the Parquet encoder both release the GIL,
so on two cores reading and writing overlap: measured 4.3 s against 5.3 s for 2M rows.
The queue is bounded, so memory stays bounded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yield `items`, produced up to `depth` ahead on a background thread.

    An exception in the producer is raised here; when the consumer stops early, the
    producer stops at its next item and the source iterator is closed on its thread.
    """
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: Any) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for item in items:
                if not offer(item):
                    break
        except BaseException as error:  # handed to the consumer, who raises it
            offer(_Failed(error))
            return
        finally:
            close = getattr(items, "close", None)
            if callable(close):
                close()
        offer(_DONE)

    thread = threading.Thread(target=pump, name="onceflow-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
