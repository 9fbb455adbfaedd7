"""The connection side of the state store: transactions, rows and dialect hooks.

SQL is written once with `?` placeholders; each backend rewrites them for its driver and
supplies the few statements that differ (an advisory lock, the schema lock, identity
columns, `FOR UPDATE SKIP LOCKED`, LISTEN/NOTIFY). Repositories (runs, extractions,
files, locks, scheduled runs, queue) hold their SQL and take a Database; they never
branch on the backend.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import fields
from typing import Any, ClassVar, TypeVar

from onceflow.errors import StateError

log = logging.getLogger(__name__)

Row = dict[str, Any]
R = TypeVar("R")


class Tx(ABC):
    """A cursor inside a transaction, returning rows as dicts."""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Tx:
        """Run one statement with `?` placeholders."""

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per parameter row."""

    @abstractmethod
    def fetchall(self) -> list[Row]:
        """The rows of the last statement."""

    @property
    @abstractmethod
    def rowcount(self) -> int:
        """Rows changed by the last statement."""

    def fetchone(self) -> Row | None:
        """The first row of the last statement, or None."""
        rows = self.fetchall()
        return rows[0] if rows else None


class Listener(ABC):
    """Wakes a waiter when something may have been written to a channel (NOTIFY on
    PostgreSQL; a change of the database file on SQLite). A wake-up is a hint to look,
    never a promise: callers re-check, and poll as the fallback."""

    @abstractmethod
    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True when woken before that."""

    @abstractmethod
    def close(self) -> None:
        """Stop listening and free the connection."""


class _Owned:
    """A thread's connection, closed when the thread (or the database object) goes away:
    worker threads end without saying so, and an open PostgreSQL session is a server
    resource."""

    __slots__ = ("conn",)

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


class Database(ABC):
    """One backend: a connection per thread, write transactions and dialect hooks.

    Opened `read_only`, for the commands that only read (`status`, `validate-consistency`),
    it writes nothing: a transaction reads, and a write in it fails. A SQLite file on a
    read-only mount can be read so."""

    backend: ClassVar[str] = ""

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        self.url = url
        self.read_only = read_only
        self._local = threading.local()

    def exists(self) -> bool:
        """Whether the store is there to read (a SQLite file may not be yet)."""
        return True

    def unwritable(self) -> str | None:
        """Why this store cannot be written here (a read-only mount, permissions), as the
        end of a sentence; None when it can, or when that cannot be known beforehand."""
        return None

    @abstractmethod
    def refusal(self, error: Exception) -> str | None:
        """What the database said when it refused a statement (an object of that name
        exists, a privilege is missing), on one line and redacted; None when `error` is no
        such refusal (a lost connection, a full disk: the transaction reports those)."""

    def denied(self, error: Exception) -> bool:
        """Whether `error` is the database refusing this role a privilege."""
        return False

    @abstractmethod
    def has_table(self, tx: Tx, name: str) -> bool:
        """Whether the table `name` exists (asked without writing anything)."""

    @abstractmethod
    def _connect(self) -> Any:
        """A new connection (StateError, redacted, when it cannot be made)."""

    def connection(self) -> Any:
        """This thread's connection, made on first use (again after it was closed)."""
        owned: _Owned | None = getattr(self._local, "owned", None)
        if owned is None or getattr(owned.conn, "closed", False) is True:
            owned = _Owned(self._connect())
            self._local.owned = owned
        return owned.conn

    def forget_connection(self) -> None:
        """Drop this thread's connection (it broke); the next use makes a new one."""
        self._local.owned = None

    def close(self) -> None:
        """Close this thread's connection."""
        owned: _Owned | None = getattr(self._local, "owned", None)
        if owned is not None:
            self._local.owned = None
            owned.conn.close()

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Tx]:
        """A write transaction (serialised against other writers where needed); a read
        transaction when the database is opened read-only."""

    @abstractmethod
    def schema_lock(self, tx: Tx) -> None:
        """Serialise migrations across processes."""

    @abstractmethod
    def serialize(self, tx: Tx, key: str) -> None:
        """Serialise transactions that share `key` until `tx` ends (SQLite: already serial)."""

    @abstractmethod
    def statement(self) -> AbstractContextManager[Tx]:
        """A cursor for one statement that is atomic on its own: no BEGIN/COMMIT round
        trips where the server makes a lone statement a transaction (PostgreSQL); a write
        transaction where it does not take the write lock up front (SQLite)."""

    @abstractmethod
    def adapt_ddl(self, sql: str) -> str:
        """A migration statement in this backend's dialect (identity columns, `COLLATE "C"`)."""

    @property
    @abstractmethod
    def skip_locked(self) -> str:
        """The clause that locks the rows a claim selects and skips rows others hold
        (`FOR UPDATE SKIP LOCKED`); empty where the write transaction is already serial."""

    @abstractmethod
    def notify(self, tx: Tx, channel: str, payload: str = "") -> None:
        """Wake listeners of `channel` when `tx` commits."""

    @abstractmethod
    def listener(self, channel: str) -> Listener:
        """A Listener on `channel`, with its own connection."""


@functools.cache
def _converters(cls: type) -> tuple[tuple[str, Callable[[Any], Any] | None], ...]:
    """Each field of a record dataclass and what makes a driver's value its annotated
    type (None: taken as it is); worked out once per class, not once per row."""
    out: list[tuple[str, Callable[[Any], Any] | None]] = []
    for f in fields(cls):
        kind = str(f.type)
        convert: Callable[[Any], Any] | None = None
        if kind.startswith("int"):
            convert = int
        elif kind.startswith("float"):
            convert = float
        elif kind.startswith("bool"):
            convert = bool
        out.append((f.name, convert))
    return tuple(out)


def record_from_row(cls: type[R], row: Mapping[str, Any]) -> R:
    """A record dataclass from a row: known columns only, driver values made plain.

    Integers come back from some drivers as other numeric types and SQLite keeps
    booleans as 0/1, so each field is converted to its annotated type.
    """
    values: dict[str, Any] = {}
    for name, convert in _converters(cls):  # type: ignore[arg-type]
        if name not in row:
            continue
        value = row[name]
        if value is not None and convert is not None:
            value = convert(value)
        values[name] = value
    return cls(**values)


def rows_as(cls: type[R], rows: Iterable[Mapping[str, Any]]) -> list[R]:
    """Records of every row."""
    return [record_from_row(cls, r) for r in rows]


CONFLICT_TRIES = 6


def retry_conflicts(work: Callable[[], R], *, tries: int = CONFLICT_TRIES) -> R:
    """Run `work` (one or more whole transactions) again when the database rolled it back
    for a conflict with a concurrent transaction - a deadlock or a serialization failure
    (`StateError` with `conflict=True`; PostgreSQL only) - after a short random pause, so
    that two passes that collided do not collide again. Any other error, and the last
    conflict, is raised."""
    for attempt in range(tries):
        try:
            return work()
        except StateError as error:
            if not error.context.get("conflict") or attempt == tries - 1:
                raise
            log.info("state: %s; trying again", error)
            time.sleep(random.uniform(0.0, 0.02 * 2**attempt))
    raise AssertionError("unreachable")  # the loop returns or raises
