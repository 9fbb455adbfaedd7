"""Hold a lock for a `with` block, heartbeating it from a background thread."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from onceflow.errors import LockError
from onceflow.state.locks import DEFAULT_TTL_SECONDS, LockRecord

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from onceflow.state.store import Store


class Lease:
    """Hold a lock for a `with` block, heartbeating it from a background thread.

    `lost` becomes True when a heartbeat finds the lock taken over; `check()` then raises.
    """

    def __init__(
        self, store: Store, name: str, *, ttl: float = DEFAULT_TTL_SECONDS, timeout: float = 0.0
    ) -> None:
        self.store = store
        self.name = name
        self.ttl = ttl
        self.timeout = timeout
        self.token = ""
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Lease:
        self.token = self.store.locks.acquire(self.name, ttl=self.ttl, timeout=self.timeout)
        self._thread = threading.Thread(target=self._beat, name=f"lease:{self.name}", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        try:
            while not self._stop.wait(max(0.5, self.ttl / 3)):
                try:
                    if not self.store.locks.heartbeat(self.name, self.token, ttl=self.ttl):
                        self.lost = True
                        return
                except Exception:  # a transient store error: try again next beat
                    continue
        finally:
            self.store.close()

    def check(self) -> None:
        """LockError when the lease was lost (call right before each guarded commit).

        The lease must also have at least half its TTL left, else it is renewed here: a
        write that follows the check at once can then only land after the lease expired
        (and a successor took over) if the process stalls for that long in between, not
        merely because the background heartbeat fell behind. Nothing outside the state
        store can be fenced perfectly (a lake file's rename): this narrows the window."""
        if self.lost:
            raise LockError(
                f"lost lock {self.name!r} (lease broken by another process)", lock=self.name
            )
        left = self.store.locks.time_left(self.name, self.token)
        if 0 < left < self.ttl / 2 and not self.store.locks.heartbeat(
            self.name, self.token, ttl=self.ttl
        ):
            left = 0.0
        if left <= 0:
            self.lost = True
            self.store.locks.check(self.name, self.token)  # raises, naming the new holder
            raise LockError(f"lost lock {self.name!r} (lease expired); stopping", lock=self.name)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not self.lost:
            self.store.locks.release(self.name, self.token)


def describe_lock(lock: LockRecord, stale: str | None) -> str:
    """`name held by pid ... [stale: why]`, as force-unlock shows and logs it."""
    state = f"stale: {stale}" if stale else "holder looks alive"
    return f"{lock.name} held by {lock.describe()} [{state}]"


def force_release(store: Store, name: str, seen: LockRecord | None = None) -> LockRecord | None:
    """Release lock `name` whoever holds it (only the holder `seen`, when given), logging
    who held it; returns the released holder, or None when there was nothing to release."""
    holder = seen or store.locks.holder(name)
    if holder is None:
        return None
    released = store.locks.force_release(name, holder.token)
    if released is not None:
        log.warning("force-released %s", describe_lock(holder, holder.stale_reason()))
    return released
