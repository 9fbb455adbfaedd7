"""Hold a lock for a `with` block, heartbeating it from a background thread."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING

from onceflow.errors import LockError, OnceflowError, StateError
from onceflow.redact import redact
from onceflow.state.locks import DEFAULT_TTL_SECONDS, LockRecord

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from onceflow.state.store import Store


class Lease:
    """Hold a lock for a `with` block, heartbeating it from a background thread.

    `lost` becomes True when a heartbeat finds the lock taken over; `check()` then raises.
    A heartbeat that fails (the store cut off, locked, or a bug) is tried again every
    beat until the lease runs out: logged as a warning once per run of failures, and once
    more when a beat succeeds again; `failure` holds the last one's error (redacted) while
    they fail, and the LockError of a lease that ran out meanwhile says it.
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
        #: The last heartbeat's error while heartbeats fail (redacted, one line), else None.
        self.failure: str | None = None
        self._failures = 0
        self._renewed = 0.0  # time.monotonic() of the last renewal
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Lease:
        self.token = self.store.locks.acquire(self.name, ttl=self.ttl, timeout=self.timeout)
        self._renewed = time.monotonic()
        self._thread = threading.Thread(target=self._beat, name=f"lease:{self.name}", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        try:
            while not self._stop.wait(max(0.5, self.ttl / 3)):
                try:
                    renewed = self.store.locks.heartbeat(self.name, self.token, ttl=self.ttl)
                except Exception as error:  # the store cut off, locked: try again next beat
                    self._failed(error)
                    continue
                if not renewed:
                    self.lost = True
                    return
                self._succeeded()
        finally:
            self.store.close()

    def _failed(self, error: Exception) -> None:
        """Keep a failed beat's error; a warning for the first of a run of failures (one a
        beat would flood the log for as long as the store stays away)."""
        self.failure = _one_line(error)
        self._failures += 1
        if self._failures == 1:
            left = self.ttl - (time.monotonic() - self._renewed)
            log.warning(
                "lock %r: heartbeat failed, trying again every %.1f s (the lease runs out "
                "in %.0f s without one): %s",
                self.name,
                max(0.5, self.ttl / 3),
                max(0.0, left),
                self.failure,
            )

    def _succeeded(self) -> None:
        if self._failures:
            log.warning(
                "lock %r: heartbeat renewed the lease again, after %d failed (%.1f s "
                "unrenewed); the last: %s",
                self.name,
                self._failures,
                time.monotonic() - self._renewed,
                self.failure,
            )
        self._failures = 0
        self.failure = None
        self._renewed = time.monotonic()

    def check(self) -> None:
        """LockError when the lease was lost (call right before each guarded commit).

        The lease must also have at least half its TTL left, else it is renewed here: a
        write that follows the check at once can then only land after the lease expired
        (and a successor took over) if the process stalls for that long in between, not
        merely because the background heartbeat fell behind. Nothing outside the state
        store can be fenced perfectly (a lake file's rename): this narrows the window.

        The error names the new holder when another process took the lock; else it says
        how long the lease went unrenewed and why (the last heartbeat's error)."""
        if not self.lost:
            left = self.store.locks.time_left(self.name, self.token)
            if 0 < left < self.ttl / 2:
                if self.store.locks.heartbeat(self.name, self.token, ttl=self.ttl):
                    self._renewed = time.monotonic()
                else:
                    left = 0.0
            if left > 0:
                return
            self.lost = True
        unrenewed = time.monotonic() - self._renewed
        with contextlib.suppress(StateError):  # the store is away too: say what we know
            self.store.locks.check(self.name, self.token, unrenewed=unrenewed, why=self.failure)
        cause = f": the last heartbeat failed: {self.failure}" if self.failure else ""
        raise LockError(
            f"lost lock {self.name!r}: its lease could not be renewed for {unrenewed:.1f} s"
            f"{cause}; stopping",
            lock=self.name,
        )

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


def _one_line(error: Exception) -> str:
    """A failed heartbeat's error as one redacted line: a store's error says what it is
    (`state: ...`); another, a bug, is named by its type."""
    text = " ".join(str(error).split())
    said = text if isinstance(error, OnceflowError) else f"{type(error).__name__}: {text}"
    return redact(said)
