"""Pipeline locks as lease rows: token, pid, host, boot id, process start time, expiry.

A lock is stale when its lease expired, or when its holder ran on this host (same boot)
and that pid is dead or now belongs to another process (its start time differs), or when
this host rebooted since. A stale lock is taken over by a conditional update on its old
token, so two contenders never both win. A lease can still be broken by age, so every
guarded write re-checks the holder's token (see FileTrackerMixin).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from onceflow.errors import LockError

DEFAULT_TTL_SECONDS = 120.0


@lru_cache(maxsize=1)
def boot_id() -> str | None:
    """This machine's boot id (Linux), so a reboot makes every local lock stale."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def host_name() -> str:
    """This machine's host name as stored in lock rows."""
    return socket.gethostname()


def process_start(pid: int) -> float | None:
    """The start time of a process (seconds since the epoch), or None when it is gone."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


@dataclass(frozen=True)
class LockRecord:
    """The holder of a named lock."""

    name: str
    token: str
    pid: int
    host: str
    boot_id: str | None
    process_start: float | None
    acquired_at: str
    heartbeat_at: str
    expires_at: str

    def describe(self) -> str:
        """`pid 123 on host h since <time> (lease until <time>)`."""
        return (
            f"pid {self.pid} on {self.host} since {self.acquired_at} "
            f"(last heartbeat {self.heartbeat_at}, lease until {self.expires_at})"
        )

    def stale_reason(self, now: datetime | None = None) -> str | None:
        """Why this lock no longer protects anything, or None while its holder lives."""
        now = now or datetime.now(UTC)
        if datetime.fromisoformat(self.expires_at) <= now:
            return f"lease expired at {self.expires_at}"
        if self.host != host_name():
            return None
        if self.boot_id and boot_id() and self.boot_id != boot_id():
            return "this host rebooted since the lock was taken"
        started = process_start(self.pid)
        if started is None:
            return f"pid {self.pid} is no longer running"
        if self.process_start is not None and abs(started - self.process_start) > 1.0:
            return f"pid {self.pid} now belongs to another process"
        return None


def lock_record(row: Mapping[str, Any]) -> LockRecord:
    names = {f.name for f in fields(LockRecord)}
    values = {k: v for k, v in row.items() if k in names}
    values["pid"] = int(values["pid"])
    if values.get("process_start") is not None:
        values["process_start"] = float(values["process_start"])
    return LockRecord(**values)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


class LockMixin:
    """Lease-lock queries, mixed into StateStore; uses its `transaction()`."""

    if TYPE_CHECKING:  # provided by StateStore, which mixes this class in

        def transaction(self) -> Any: ...

    def try_acquire_lock(
        self, name: str, *, ttl: float = DEFAULT_TTL_SECONDS
    ) -> tuple[str | None, LockRecord | None]:
        """Take the lock if free or stale: (token, None); else (None, live holder)."""
        token = uuid.uuid4().hex
        now = datetime.now(UTC)
        pid = os.getpid()
        values = (
            token,
            pid,
            host_name(),
            boot_id(),
            process_start(pid),
            _iso(now),
            _iso(now),
            _iso(now + timedelta(seconds=ttl)),
        )
        with self.transaction() as tx:
            row = tx.execute("SELECT * FROM locks WHERE name = ?", (name,)).fetchone()
            if row is None:
                n = tx.execute(
                    "INSERT INTO locks (name, token, pid, host, boot_id, process_start, "
                    "acquired_at, heartbeat_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (name) DO NOTHING",
                    (name, *values),
                ).rowcount
                return (token, None) if n == 1 else (None, None)
            holder = lock_record(row)
        if holder.stale_reason(now) is None:
            return None, holder
        with self.transaction() as tx:
            # Only the lease judged stale may be replaced: if its holder heartbeat since we
            # read it, the expiry moved and the takeover matches nothing.
            n = tx.execute(
                "UPDATE locks SET token = ?, pid = ?, host = ?, boot_id = ?, process_start = ?, "
                "acquired_at = ?, heartbeat_at = ?, expires_at = ? "
                "WHERE name = ? AND token = ? AND expires_at = ?",
                (*values, name, holder.token, holder.expires_at),
            ).rowcount
        return (token, None) if n == 1 else (None, None)

    def acquire_lock(
        self,
        name: str,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        timeout: float = 0.0,
        poll: float = 0.5,
    ) -> str:
        """Take the lock, waiting up to `timeout` seconds; LockError names the holder."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            token, holder = self.try_acquire_lock(name, ttl=ttl)
            if token is not None:
                return token
            if time.monotonic() >= deadline:
                who = holder.describe() if holder else "another process"
                raise LockError(
                    f"lock {name!r} is held by {who}; waited {timeout:g}s. Retry later, raise "
                    "--lock-timeout, or run `onceflow force-unlock` if that process is gone"
                )
            time.sleep(min(poll, max(0.01, deadline - time.monotonic())))

    def heartbeat_lock(self, name: str, token: str, *, ttl: float = DEFAULT_TTL_SECONDS) -> bool:
        """Extend the lease; False when the lock is no longer ours."""
        now = datetime.now(UTC)
        with self.transaction() as tx:
            n = tx.execute(
                "UPDATE locks SET heartbeat_at = ?, expires_at = ? WHERE name = ? AND token = ?",
                (_iso(now), _iso(now + timedelta(seconds=ttl)), name, token),
            ).rowcount
        return bool(n == 1)

    def holds_lock(self, name: str, token: str) -> bool:
        """True while `token` holds `name` and its lease has not expired."""
        holder = self.lock_holder(name)
        return (
            holder is not None
            and holder.token == token
            and datetime.fromisoformat(holder.expires_at) > datetime.now(UTC)
        )

    def check_lock(self, name: str, token: str) -> None:
        """LockError unless `token` still holds `name` (call before a guarded commit)."""
        if not self.holds_lock(name, token):
            holder = self.lock_holder(name)
            who = f"; it is now held by {holder.describe()}" if holder else ""
            raise LockError(f"lost lock {name!r} (lease expired or broken){who}; stopping")

    def release_lock(self, name: str, token: str) -> bool:
        """Give the lock up; False when it was no longer ours."""
        with self.transaction() as tx:
            n = tx.execute("DELETE FROM locks WHERE name = ? AND token = ?", (name, token)).rowcount
        return bool(n == 1)

    def lock_holder(self, name: str) -> LockRecord | None:
        """The current holder of `name` (live or stale), or None."""
        with self.transaction() as tx:
            row = tx.execute("SELECT * FROM locks WHERE name = ?", (name,)).fetchone()
        return lock_record(row) if row else None

    def all_locks(self) -> list[LockRecord]:
        """Every lock row, live or stale."""
        with self.transaction() as tx:
            rows = tx.execute("SELECT * FROM locks ORDER BY name").fetchall()
        return [lock_record(r) for r in rows]

    def force_release_lock(self, name: str, token: str | None = None) -> LockRecord | None:
        """Remove the lock whoever holds it (only `token`'s, when given); returns it."""
        with self.transaction() as tx:
            row = tx.execute("SELECT * FROM locks WHERE name = ?", (name,)).fetchone()
            if row is None or (token is not None and row["token"] != token):
                return None
            tx.execute("DELETE FROM locks WHERE name = ? AND token = ?", (name, row["token"]))
        return lock_record(row)


class Lease:
    """Hold a lock for a `with` block, heartbeating it from a background thread.

    `lost` becomes True when a heartbeat finds the lock taken over; `check()` then raises.
    """

    def __init__(
        self, store: Any, name: str, *, ttl: float = DEFAULT_TTL_SECONDS, timeout: float = 0.0
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
        self.token = self.store.acquire_lock(self.name, ttl=self.ttl, timeout=self.timeout)
        self._thread = threading.Thread(target=self._beat, name=f"lease:{self.name}", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        try:
            while not self._stop.wait(max(0.5, self.ttl / 3)):
                try:
                    if not self.store.heartbeat_lock(self.name, self.token, ttl=self.ttl):
                        self.lost = True
                        return
                except Exception:  # a transient store error: try again next beat
                    continue
        finally:
            self.store.close()

    def check(self) -> None:
        """LockError when the lease was lost (call before each guarded commit)."""
        if self.lost:
            raise LockError(f"lost lock {self.name!r} (lease broken by another process)")
        self.store.check_lock(self.name, self.token)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not self.lost:
            self.store.release_lock(self.name, self.token)
