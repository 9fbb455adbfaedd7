"""The PostgreSQL backend, for many workers on many machines."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from onceflow.errors import StateError
from onceflow.redact import redact
from onceflow.state.db import Database, Row, Tx


def _pg(sql: str) -> str:
    # The shared SQL never contains a literal '?' or '%', so this rewrite is exact.
    return sql.replace("?", "%s")


class _PgTx(Tx):
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Tx:
        self._cursor.execute(_pg(sql), tuple(params))
        return self

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        batch = [tuple(r) for r in rows]
        if batch:
            self._cursor.executemany(_pg(sql), batch)

    def fetchall(self) -> list[Row]:
        if self._cursor.description is None:
            return []
        return list(self._cursor.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)


class PostgresDatabase(Database):
    """State in PostgreSQL; conditional updates and row locks make it multi-writer safe."""

    backend = "postgresql"

    def __init__(self, url: str) -> None:
        super().__init__(url.replace("postgresql+psycopg://", "postgresql://", 1))

    def _connect(self) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        try:
            return psycopg.connect(
                self.url, autocommit=True, row_factory=dict_row, connect_timeout=10
            )
        except psycopg.Error as error:
            raise StateError(
                f"state: cannot connect to PostgreSQL store: {redact(str(error)).strip()}"
            ) from None

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        import psycopg

        conn = self.connection()
        try:
            with conn.transaction(), conn.cursor() as cursor:
                yield _PgTx(cursor)
        except psycopg.OperationalError as error:
            self.forget_connection()
            raise StateError(
                f"state: PostgreSQL store failed: {redact(str(error)).strip()}"
            ) from None

    def schema_lock(self, tx: Tx) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('onceflow_schema'))")

    def serialize(self, tx: Tx, key: str) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (key,))
