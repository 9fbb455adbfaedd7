"""The embedded SQLite backend: WAL, BEGIN IMMEDIATE, a connection per thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from onceflow.errors import StateError
from onceflow.state.db import Database, Row, Tx


class _SqliteTx(Tx):
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Tx:
        self._cursor.execute(sql, tuple(params))
        return self

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._cursor.executemany(sql, [tuple(r) for r in rows])

    def fetchall(self) -> list[Row]:
        if self._cursor.description is None:
            return []
        names = [d[0] for d in self._cursor.description]
        return [dict(zip(names, row, strict=True)) for row in self._cursor.fetchall()]

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


class SqliteDatabase(Database):
    """State in one SQLite file, safe for several processes at once."""

    backend = "sqlite"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
        if not path or path == ":memory:":
            raise StateError("state: an in-memory SQLite store cannot be shared; give a file path")
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StateError(f"state: cannot create {self.path.parent}: {error.strerror}") from None

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=60, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process; only power loss can drop the
            # last commits, and the sidecars and Delta logs re-derive those.
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as error:
            raise StateError(self._problem("cannot open", error)) from None
        return conn

    def _problem(self, what: str, error: sqlite3.Error) -> str:
        message = f"state: {what} the SQLite store {self.path}: {error}"
        if "not a database" in str(error) or "malformed" in str(error):
            message += (
                ". It is not a readable onceflow state database: if it is a damaged state "
                "store, move it aside; the next run starts a new one, and `onceflow "
                "validate-consistency --fix` re-derives the load tracker from the Delta "
                "tables (extractions are re-verified from their sidecars). If the path is "
                "wrong, fix `state:` in onceflow.yml"
            )
        return message

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        conn: sqlite3.Connection = self.connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise StateError(self._problem("cannot use", error)) from None
        try:
            yield _SqliteTx(conn.cursor())
        except sqlite3.DatabaseError as error:
            conn.execute("ROLLBACK")
            raise StateError(self._problem("cannot use", error)) from None
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as error:
                conn.execute("ROLLBACK")
                raise StateError(f"state: commit failed on {self.path}: {error}") from None

    def schema_lock(self, tx: Tx) -> None:
        # BEGIN IMMEDIATE already holds the database's single write lock.
        return None

    def serialize(self, tx: Tx, key: str) -> None:
        # Every write transaction holds the database's single write lock.
        return None
