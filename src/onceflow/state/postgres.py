"""The PostgreSQL backend, for many workers on many machines."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from onceflow.errors import StateError
from onceflow.redact import redact
from onceflow.state.db import Database, Listener, Row, Tx

#: What the server says when it refuses the URL itself (a database or role that does not
#: exist, a wrong password, no pg_hba.conf entry): a config to fix, not an outage to wait
#: out. psycopg gives no SQLSTATE for a failed connection, only the server's text.
_REFUSALS = (
    "does not exist",
    "password authentication failed",
    "no pg_hba.conf entry",
    "authentication failed",
    # the URL's own settings, refused by libpq or the server before any session
    "invalid sslmode value",
    "invalid value for parameter",
    "unrecognized configuration parameter",
    "does not support SSL",
    "invalid URI",
    "invalid connection option",
    "invalid integer value",
)

#: How long the server lets an onceflow session sit idle inside an open transaction before
#: it ends the session (and so its row locks). Every onceflow transaction is a few
#: statements with no slow work between them (extracting, loading and sleeping all happen
#: outside any), so its idle gaps are milliseconds; a session idle for this long belongs
#: to a worker that froze (SIGSTOP, a swapped-out VM) or was cut off mid-transaction, and
#: would otherwise block every other worker's transition of the rows it locked for up to
#: the server's TCP keepalive (about 2 h by default). Twice a job's default lease: that
#: worker's lease has expired by then, so whatever it would have written is refused anyway.
IDLE_IN_TRANSACTION_SECONDS = 60
#: Server-side TCP keepalives: a client machine that vanished (power off, network cut) has
#: its session, and whatever it holds, ended within idle + interval * count = 60 s.
SERVER_KEEPALIVES = {"idle": 30, "interval": 10, "count": 3}


def session_settings() -> dict[str, str]:
    """The settings of every onceflow session (`SET` per session: the connection's
    `options` would replace those of the URL, a search_path)."""
    return {
        "idle_in_transaction_session_timeout": f"{IDLE_IN_TRANSACTION_SECONDS * 1000}",
        **{f"tcp_keepalives_{k}": str(v) for k, v in SERVER_KEEPALIVES.items()},
    }


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

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        super().__init__(
            url.replace("postgresql+psycopg://", "postgresql://", 1), read_only=read_only
        )
        self._schema: str | None = None  # the store's schema, read on first NOTIFY/LISTEN

    def _connect(self) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        try:
            # keepalives: a worker whose machine is cut off from the server notices within
            # seconds instead of hanging on a dead socket (its lease is lost by then anyway)
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=10,
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=3,
                tcp_user_timeout=15000,
            )
            settings = session_settings()
            if self.read_only:
                settings["default_transaction_read_only"] = "on"
            # one round trip; session settings, not the connection's `options`, which
            # would replace those of the URL (a search_path)
            calls = ", ".join("set_config(%s, %s, false)" for _ in settings)
            conn.execute(f"SELECT {calls}", [v for kv in settings.items() for v in kv])
        except psycopg.Error as error:
            text = str(error)
            raise StateError(
                f"state: cannot connect to PostgreSQL store: {redact(text).strip()}",
                permanent=isinstance(error, psycopg.ProgrammingError)
                or any(p in text for p in _REFUSALS),
            ) from None
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        import psycopg

        conn = self.connection()
        try:
            with conn.transaction(), conn.cursor() as cursor:
                yield _PgTx(cursor)
        except psycopg.errors.ReadOnlySqlTransaction as error:
            raise StateError(
                f"state: PostgreSQL store refused a write: {redact(str(error)).strip()} "
                "(it is opened read-only, for a command that only reads)"
            ) from None
        except (psycopg.OperationalError, psycopg.errors.IdleInTransactionSessionTimeout) as error:
            # the latter: this session sat idle in its transaction past
            # IDLE_IN_TRANSACTION_SECONDS (its process was frozen) and the server ended it
            if (error.sqlstate or "").startswith("40"):
                # class 40, a deadlock or serialization failure: the server rolled this
                # transaction back, the connection is fine, and running it again may well
                # succeed (retry_conflicts)
                raise StateError(
                    f"state: PostgreSQL rolled the transaction back: {redact(str(error)).strip()}",
                    conflict=True,
                ) from None
            self.forget_connection()
            raise StateError(
                f"state: PostgreSQL store failed: {redact(str(error)).strip()}"
            ) from None
        except psycopg.DatabaseError as error:
            raise self._refused(error) from None

    def _refused(self, error: Exception) -> StateError:
        """The StateError of a statement the server refused (a constraint it violates, a
        value of the wrong type): its transaction is rolled back, the session goes on.
        SQLite raises StateError for these too, so a caller handles one error whichever
        store it uses (a psycopg error escaped here, past every `except StateError`)."""
        return StateError(f"state: PostgreSQL store refused a statement: {self.refusal(error)}")

    def refusal(self, error: Exception) -> str | None:
        import psycopg

        if not isinstance(error, psycopg.Error) or isinstance(error, psycopg.OperationalError):
            return None
        # the first line: the rest ("LINE 1: CREATE TABLE ...", a caret) quotes the statement
        lines = redact(str(error)).strip().splitlines()
        return lines[0] if lines else type(error).__name__

    def denied(self, error: Exception) -> bool:
        import psycopg

        return isinstance(error, psycopg.errors.InsufficientPrivilege)

    def has_table(self, tx: Tx, name: str) -> bool:
        # pg_class read as a table (this statement's snapshot), not `to_regclass`, which
        # looks in the backend's catalog cache: after waiting for the schema lock, that
        # cache could still miss the table the lock's holder had just created and
        # committed, and a second migrator began again from version 0 ("relation
        # pipeline_runs already exists")
        row = tx.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = ? AND n.nspname = ANY (current_schemas(false))) AS found",
            (name,),
        ).fetchone()
        return bool(row and row["found"])

    def schema_lock(self, tx: Tx) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('onceflow_schema'))")

    def serialize(self, tx: Tx, key: str) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (key,))

    @contextmanager
    def _statement(self) -> Iterator[Tx]:
        import psycopg

        conn = self.connection()
        try:
            with conn.cursor() as cursor:
                yield _PgTx(cursor)
        except (psycopg.OperationalError, psycopg.errors.IdleInTransactionSessionTimeout) as error:
            self.forget_connection()
            raise StateError(
                f"state: PostgreSQL store failed: {redact(str(error)).strip()}"
            ) from None
        except psycopg.DatabaseError as error:
            raise self._refused(error) from None

    def statement(self) -> AbstractContextManager[Tx]:
        # The connection is in autocommit mode: a lone statement is its own transaction,
        # one round trip instead of three (BEGIN, statement, COMMIT).
        return self._statement()

    def adapt_ddl(self, sql: str) -> str:
        return sql

    @property
    def skip_locked(self) -> str:
        return "FOR UPDATE SKIP LOCKED"

    def notify(self, tx: Tx, channel: str, payload: str = "") -> None:
        tx.execute("SELECT pg_notify(?, ?)", (self._scoped(channel, tx), payload))

    def listener(self, channel: str) -> Listener:
        conn = self._connect()
        with conn.cursor() as cursor:
            name = self._scoped(channel, _PgTx(cursor))
        conn.execute(f'LISTEN "{name}"')
        return _PgListener(conn)

    def _scoped(self, channel: str, tx: Tx) -> str:
        """`channel` of this store's schema: channels are database-wide, and stores in two
        schemas of one database would otherwise wake each other's workers for nothing."""
        if self._schema is None:
            row = tx.execute("SELECT current_schema() AS s").fetchone()
            self._schema = str(row["s"]) if row and row["s"] else ""
        name = f"{channel}:{self._schema}"
        if len(name.encode()) > 63:  # PostgreSQL's identifier limit (NAMEDATALEN - 1)
            digest = hashlib.sha256(self._schema.encode()).hexdigest()[:16]
            name = f"{channel}:{digest}"
        return name


class _PgListener(Listener):
    """LISTEN on its own autocommit connection; NOTIFY wakes `wait` at once."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def wait(self, timeout: float) -> bool:
        import psycopg

        try:
            for _ in self.conn.notifies(timeout=timeout, stop_after=1):
                return True
        except psycopg.OperationalError as error:
            raise StateError(
                f"state: PostgreSQL listener failed: {redact(str(error)).strip()}"
            ) from None
        return False

    def close(self) -> None:
        self.conn.close()
