"""Pipeline locks as lease rows: token, pid, host, boot id, process start time, expiry.

A lock is stale when its lease expired, or when its holder ran on this host (same boot)
and that pid is dead or now belongs to another process (its start time differs), or when
this host rebooted since. A stale lock is taken over by a conditional update on its old
token, so two contenders never both win. A lease can still be broken by age, so every
guarded write re-checks the holder's token (see onceflow.state.files).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from onceflow.clock import now
from onceflow.errors import LockError
from onceflow.state.db import Database, record_from_row, rows_as

log = logging.getLogger(__name__)

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
    if sys.platform == "linux":
        return _linux_process_start(pid)
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _linux_process_start(pid: int) -> float | None:
    """psutil's create_time read straight from /proc (boot time plus the process's start
    in clock ticks): importing psutil costs every command ~25 ms."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            # the command name (field 2) may hold spaces and parentheses: split after it
            fields = handle.read().rpartition(")")[2].split()
        with open("/proc/stat", encoding="ascii") as handle:
            boot = next(float(line.split()[1]) for line in handle if line.startswith("btime "))
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    if not fields or fields[0] == "Z":  # a zombie has ended (killed, not yet reaped)
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


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

    def stale_reason(self, at: datetime | None = None) -> str | None:
        """Why this lock no longer protects anything, or None while its holder lives."""
        if datetime.fromisoformat(self.expires_at) <= (at or now()):
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


class Locks:
    """The `locks` table: named leases."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def try_acquire(
        self, name: str, *, ttl: float = DEFAULT_TTL_SECONDS
    ) -> tuple[str | None, LockRecord | None]:
        """Take the lock if free or stale: (token, None); else (None, live holder)."""
        token = uuid.uuid4().hex
        moment = now()
        pid = os.getpid()
        values = (
            token,
            pid,
            host_name(),
            boot_id(),
            process_start(pid),
            moment.isoformat(),
            moment.isoformat(),
            (moment + timedelta(seconds=ttl)).isoformat(),
        )
        with self.db.transaction() as tx:
            row = tx.execute("SELECT * FROM locks WHERE name = ?", (name,)).fetchone()
            if row is None:
                n = tx.execute(
                    "INSERT INTO locks (name, token, pid, host, boot_id, process_start, "
                    "acquired_at, heartbeat_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (name) DO NOTHING",
                    (name, *values),
                ).rowcount
                return (token, None) if n == 1 else (None, None)
            holder = record_from_row(LockRecord, row)
        if holder.stale_reason(moment) is None:
            return None, holder
        with self.db.transaction() as tx:
            # Only the lease judged stale may be replaced: if its holder heartbeat since we
            # read it, the expiry moved and the takeover matches nothing.
            n = tx.execute(
                "UPDATE locks SET token = ?, pid = ?, host = ?, boot_id = ?, process_start = ?, "
                "acquired_at = ?, heartbeat_at = ?, expires_at = ? "
                "WHERE name = ? AND token = ? AND expires_at = ?",
                (*values, name, holder.token, holder.expires_at),
            ).rowcount
        return (token, None) if n == 1 else (None, None)

    def acquire(
        self,
        name: str,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        timeout: float = 0.0,
        poll: float = 0.5,
    ) -> str:
        """Take the lock, waiting up to `timeout` seconds; LockError names the holder.

        A wait is logged once (INFO), naming the holder, so a command that waits does not
        look hung. A refusal re-reads a holder it does not know: `try_acquire` gives none
        when it lost a race (an insert or takeover beaten by another contender), and a
        winner that has released since is no reason to refuse, so the lock is tried once
        more; only a holder still there is named, else `another process`."""
        deadline = time.monotonic() + max(0.0, timeout)
        waiting = False
        while True:
            token, holder = self.try_acquire(name, ttl=ttl)
            if token is not None:
                return token
            if time.monotonic() >= deadline:
                if holder is None:
                    token, holder = self.try_acquire(name, ttl=ttl)
                    if token is not None:
                        return token
                    holder = holder or self.holder(name)
                who = holder.describe() if holder else "another process"
                raise LockError(
                    f"lock {name!r} is held by {who}; waited {timeout:g}s. Retry later, raise "
                    "--lock-timeout, or run `onceflow force-unlock` if that process is gone",
                    lock=name,
                )
            if not waiting:
                waiting = True
                seen = holder or self.holder(name)
                log.info(
                    "waiting up to %g s for lock %r held by %s",
                    timeout,
                    name,
                    seen.describe() if seen else "another process",
                )
            time.sleep(min(poll, max(0.01, deadline - time.monotonic())))

    def heartbeat(self, name: str, token: str, *, ttl: float = DEFAULT_TTL_SECONDS) -> bool:
        """Extend the lease; False when the lock is no longer ours, or its lease expired.

        An expired lease is lost even when no one took it yet: its holder was paused or cut
        off past its expiry, and a contender may have judged it stale and be about to write
        (a takeover matches the expiry it read). Reviving it would let the holder go on
        writing beside that contender, so the holder stops instead."""
        moment = now()
        with self.db.transaction() as tx:
            row = tx.execute(
                "SELECT token, expires_at FROM locks WHERE name = ?", (name,)
            ).fetchone()
            if row is None or row["token"] != token:
                return False
            if datetime.fromisoformat(row["expires_at"]) <= moment:
                return False
            # matched on the expiry read, as a takeover does: one of the two wins
            n = tx.execute(
                "UPDATE locks SET heartbeat_at = ?, expires_at = ? "
                "WHERE name = ? AND token = ? AND expires_at = ?",
                (
                    moment.isoformat(),
                    (moment + timedelta(seconds=ttl)).isoformat(),
                    name,
                    token,
                    row["expires_at"],
                ),
            ).rowcount
        return bool(n == 1)

    def time_left(self, name: str, token: str) -> float:
        """Seconds until `token`'s lease of `name` expires; 0 when it is not ours or expired."""
        holder = self.holder(name)
        if holder is None or holder.token != token:
            return 0.0
        return max(0.0, (datetime.fromisoformat(holder.expires_at) - now()).total_seconds())

    def holds(self, name: str, token: str) -> bool:
        """True while `token` holds `name` and its lease has not expired."""
        holder = self.holder(name)
        return (
            holder is not None
            and holder.token == token
            and datetime.fromisoformat(holder.expires_at) > now()
        )

    def check(
        self, name: str, token: str, *, unrenewed: float | None = None, why: str | None = None
    ) -> None:
        """LockError unless `token` still holds `name` (call before a guarded commit).

        The error names the new holder only when another process holds the lock now.
        When the row is still `token`'s (its lease ran out) or gone (force-unlocked, or
        released as stale by a contender), it says how long the lease went unrenewed:
        `unrenewed` seconds when the holder counted them, else since the row's last
        heartbeat; `why`: the last heartbeat's error, when one failed."""
        if self.holds(name, token):
            return
        holder = self.holder(name)
        failed = f"the last heartbeat failed: {why}" if why else ""
        if holder is not None and holder.token != token:
            cause = f"; {failed}" if failed else ""
            raise LockError(
                f"lost lock {name!r} (lease expired or broken{cause}); it is now held by "
                f"{holder.describe()}; stopping",
                lock=name,
            )
        if unrenewed is None and holder is not None:
            unrenewed = (now() - datetime.fromisoformat(holder.heartbeat_at)).total_seconds()
        span = f" for {unrenewed:.1f} s" if unrenewed is not None else ""
        if holder is None:
            gone = "its row was removed (force-unlock, or a contender that found it stale)"
            reason = f"{gone}; {failed}" if failed else gone
        else:
            # ours and expired: with no failed beat, none ran in time
            reason = failed or "no heartbeat in time (was this process paused or starved?)"
        raise LockError(
            f"lost lock {name!r}: its lease could not be renewed{span}: {reason}; stopping",
            lock=name,
        )

    def release(self, name: str, token: str) -> bool:
        """Give the lock up; False when it was no longer ours."""
        with self.db.transaction() as tx:
            n = tx.execute("DELETE FROM locks WHERE name = ? AND token = ?", (name, token)).rowcount
        return bool(n == 1)

    def holder(self, name: str) -> LockRecord | None:
        """The current holder of `name` (live or stale), or None."""
        with self.db.transaction() as tx:
            row = tx.execute("SELECT * FROM locks WHERE name = ?", (name,)).fetchone()
        return record_from_row(LockRecord, row) if row else None

    def find(self) -> list[LockRecord]:
        """Every lock row, live or stale."""
        with self.db.transaction() as tx:
            return rows_as(LockRecord, tx.execute("SELECT * FROM locks ORDER BY name").fetchall())

    def release_if_unchanged(self, lock: LockRecord) -> bool:
        """Delete a stale lock only if it is still the lease judged stale (same token and
        expiry): a holder that heartbeat since is alive and keeps it."""
        with self.db.transaction() as tx:
            n = tx.execute(
                "DELETE FROM locks WHERE name = ? AND token = ? AND expires_at = ?",
                (lock.name, lock.token, lock.expires_at),
            ).rowcount
        return bool(n == 1)

    def force_release(self, name: str, token: str | None = None) -> LockRecord | None:
        """Remove the lock whoever holds it (only `token`'s, when given); returns it."""
        with self.db.transaction() as tx:
            row = tx.execute("SELECT * FROM locks WHERE name = ?", (name,)).fetchone()
            if row is None or (token is not None and row["token"] != token):
                return None
            tx.execute("DELETE FROM locks WHERE name = ? AND token = ?", (name, row["token"]))
        return record_from_row(LockRecord, row)
