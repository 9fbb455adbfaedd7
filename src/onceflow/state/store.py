"""The state store: one database and a repository per concern.

    store.runs         pipeline runs (pipeline, run date)
    store.extractions  each table of a run
    store.files        the file tracker: which file is loaded into which table
    store.locks        named leases
    store.rules        rule results (the validation cache), validations, rule history
    store.scheduled_runs  scheduled runs: the state machine, its history, schedule cursors
    store.queue        the job queue: priorities, leases, fencing tokens

The store is an index of what happened: sidecars and Delta logs are the truth.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from onceflow.errors import StateError
from onceflow.state.db import Database, Tx
from onceflow.state.migrations import LATEST_VERSION, MIGRATIONS

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from onceflow.state.extractions import Extractions
    from onceflow.state.files import Files
    from onceflow.state.locks import Locks
    from onceflow.state.queue import Queue
    from onceflow.state.rules import Rules
    from onceflow.state.runs import Runs
    from onceflow.state.scheduled_runs import ScheduledRuns


class Store:
    """A state store on one backend, with its repositories.

    A repository's module is imported when the repository is first used: an extraction
    of one small window should not pay for the queue, the scheduler's state machine and
    the validation cache (~10 ms of dataclasses and SQL at start-up).
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    @cached_property
    def runs(self) -> Runs:
        from onceflow.state.runs import Runs

        return Runs(self.db)

    @cached_property
    def extractions(self) -> Extractions:
        from onceflow.state.extractions import Extractions

        return Extractions(self.db)

    @cached_property
    def files(self) -> Files:
        from onceflow.state.files import Files

        return Files(self.db)

    @cached_property
    def locks(self) -> Locks:
        from onceflow.state.locks import Locks

        return Locks(self.db)

    @cached_property
    def rules(self) -> Rules:
        from onceflow.state.rules import Rules

        return Rules(self.db)

    @cached_property
    def scheduled_runs(self) -> ScheduledRuns:
        from onceflow.state.scheduled_runs import ScheduledRuns

        return ScheduledRuns(self.db)

    @cached_property
    def queue(self) -> Queue:
        from onceflow.state.queue import Queue

        return Queue(self.db)

    @property
    def url(self) -> str:
        """The store's URL (may hold a password: redact before showing it)."""
        return self.db.url

    @property
    def backend(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.db.backend

    def transaction(self) -> AbstractContextManager[Tx]:
        """A write transaction on the store's database (a read transaction on a store
        opened read-only)."""
        return self.db.transaction()

    def close(self) -> None:
        """Close this thread's connection (and its queue listener)."""
        if "queue" in self.__dict__:  # a listener exists only on a queue that was used
            self.queue.close_listener()
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        """The schema version of the store (0 when empty); writes nothing."""
        with self.transaction() as tx:
            if not self.db.has_table(tx, "onceflow_schema"):
                return 0
            return _read_version(tx)

    def migrate(self, target: int = LATEST_VERSION) -> int:
        """Apply the migrations up to `target`; returns the resulting version."""
        with self.transaction() as tx:
            self.db.schema_lock(tx)
            current = _version(tx)
            _refuse_newer(current)
            for version, _title, statements in MIGRATIONS:
                if current < version <= target:
                    for statement in statements:
                        tx.execute(self.db.adapt_ddl(statement))
                    tx.execute("INSERT INTO onceflow_schema (version) VALUES (?)", (version,))
                    current = version
            return current


def _refuse_newer(current: int) -> None:
    if current > LATEST_VERSION:
        raise StateError(
            f"the state store has schema version {current}, newer than this onceflow "
            f"understands ({LATEST_VERSION}); upgrade onceflow",
            permanent=True,
        )


def _version(tx: Tx) -> int:
    tx.execute("CREATE TABLE IF NOT EXISTS onceflow_schema (version INTEGER NOT NULL)")
    return _read_version(tx)


def _read_version(tx: Tx) -> int:
    row = tx.execute("SELECT MAX(version) AS v FROM onceflow_schema").fetchone()
    return int(row["v"]) if row and row["v"] is not None else 0


@dataclass(frozen=True)
class DamagedStore:
    """A damaged SQLite state store, moved aside: where it was, where it is, and why."""

    path: str
    moved_to: str
    damage: str


def set_aside_damaged(url: str) -> DamagedStore | None:
    """Move a SQLite state store that SQLite cannot read (malformed, not a database) aside
    to `<file>.corrupt-<UTC time>`, so that the next connection starts a new store; None
    when it is sound or absent. Nothing is deleted: the store is an index, re-derived from
    the sidecars and Delta logs, and the moved file stays for inspection.

    A PostgreSQL store is never moved (None): it is a database that others may share, and
    its damage is repaired by PostgreSQL's own means (restore a backup, or point `state:`
    at a new empty database and let `validate-consistency --fix` and the next run rebuild
    the index)."""
    if url.split(":", 1)[0].split("+", 1)[0] != "sqlite":
        return None
    from onceflow.state.sqlite import SqliteDatabase

    db = SqliteDatabase(url)
    damage = db.damage()
    if damage is None:
        return None
    moved = db.move_aside()
    log.warning("state: %s is damaged (%s): moved aside to %s", db.path, damage, moved)
    return DamagedStore(str(db.path), str(moved), damage)


def open_store(url: str, *, migrate: bool = True, read_only: bool = False) -> Store:
    """Open the state store at `url` (sqlite:///path or postgresql://...), migrated.

    `read_only`, for commands that only read (`status`, `validate-consistency`): the store
    writes nothing, so a SQLite store on a read-only mount can still be read. It is never
    migrated through that connection: a store that can be written and is new, or was
    left by an older onceflow, is first migrated as any command would; one that cannot
    be written must already be at this onceflow's schema (StateError saying so)."""
    db: Database
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme == "sqlite":
        from onceflow.state.sqlite import SqliteDatabase

        db = SqliteDatabase(url, read_only=read_only)
    elif scheme in ("postgresql", "postgres"):
        from onceflow.state.postgres import PostgresDatabase

        db = PostgresDatabase(url, read_only=read_only)
    else:
        raise StateError(
            f"state: unsupported state store URL {scheme!r}; "
            "use sqlite:///path/state.db or postgresql://user@host/db",
            permanent=True,
        )
    store = Store(db)
    if migrate and read_only:
        _ready_to_read(store)
    elif migrate:
        store.migrate()
    return store


def _ready_to_read(store: Store) -> None:
    """Make a store opened read-only readable by this onceflow, or say why it is not."""
    db = store.db
    cannot_write = db.unwritable()
    if cannot_write is None:
        if not db.exists() or store.schema_version() != LATEST_VERSION:
            store.close()
            open_store(db.url).close()  # migrates (and refuses a newer schema)
        return
    if not db.exists():
        raise StateError(f"state: there is no state store at {db.url} and {cannot_write}")
    current = store.schema_version()
    _refuse_newer(current)
    if current < LATEST_VERSION:
        raise StateError(
            f"state: the state store has schema version {current}, older than this "
            f"onceflow's ({LATEST_VERSION}), and cannot be upgraded: {cannot_write}. Run a "
            "command that writes (`onceflow run`) once where it can be written, or read it "
            "with the onceflow that wrote it"
        )
