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
from onceflow.state.db import Database, Tx, retry_conflicts
from onceflow.state.migrations import LATEST_VERSION, MIGRATIONS, OnlyOn

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
        """Pipeline runs, one per (pipeline, run date): their window, status and counts."""
        from onceflow.state.runs import Runs

        return Runs(self.db)

    @cached_property
    def extractions(self) -> Extractions:
        """Each run's tables and their extraction: status, attempts, file, error."""
        from onceflow.state.extractions import Extractions

        return Extractions(self.db)

    @cached_property
    def files(self) -> Files:
        """The file tracker: each lake file and how far its load got."""
        from onceflow.state.files import Files

        return Files(self.db)

    @cached_property
    def locks(self) -> Locks:
        """Named leases: who holds a pipeline's or a table's lock, until when."""
        from onceflow.state.locks import Locks

        return Locks(self.db)

    @cached_property
    def rules(self) -> Rules:
        """Stored rule results, validations and their history (the validation cache)."""
        from onceflow.state.rules import Rules

        return Rules(self.db)

    @cached_property
    def scheduled_runs(self) -> ScheduledRuns:
        """The scheduler's runs: one per schedule tick or backfill date, and its states."""
        from onceflow.state.scheduled_runs import ScheduledRuns

        return ScheduledRuns(self.db)

    @cached_property
    def queue(self) -> Queue:
        """The job queue that workers claim scheduled runs from."""
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
        """Apply the migrations up to `target`; returns the resulting version.

        The version is read first, writing nothing: a store already at `target` is used
        as it is, so that a role that may only read and write rows can run every command
        (an administrator's role migrates, the application's role does DML: the pattern
        of Alembic and Flyway). PostgreSQL checks the CREATE privilege before it looks
        whether a table exists, so even `CREATE TABLE IF NOT EXISTS` would refuse that
        role. An upgrade is one transaction under the schema lock: a migration that fails
        leaves the store as it was, and says so (StateError, permanent: running the
        same migration again fails again). One the database rolled back for a deadlock
        is run again: an upgrade locks each table it alters until it commits, and a
        transaction of an older onceflow still running that holds one of them and waits
        for another it locked makes one (PostgreSQL)."""
        current = self.schema_version()
        _refuse_newer(current)
        if current >= target:
            return current
        return retry_conflicts(lambda: self._upgrade(target))

    def _upgrade(self, target: int) -> int:
        """One try of `migrate`'s upgrade, under the schema lock."""
        with self.transaction() as tx:
            self.db.schema_lock(tx)
            # read again under the lock: another process may have upgraded it meanwhile
            start = _read_version(tx) if self.db.has_table(tx, "onceflow_schema") else 0
            _refuse_newer(start)
            if start >= target:
                return start
            step = current = 0  # 0: creating onceflow_schema itself, on an empty store
            try:
                tx.execute("CREATE TABLE IF NOT EXISTS onceflow_schema (version INTEGER NOT NULL)")
                for version, _title, statements in MIGRATIONS:
                    if start < version <= target:
                        step = version
                        for statement in statements:
                            if isinstance(statement, OnlyOn):
                                if statement.backend != self.db.backend:
                                    continue
                                statement = statement.sql
                            tx.execute(self.db.adapt_ddl(statement))
                        tx.execute("INSERT INTO onceflow_schema (version) VALUES (?)", (version,))
                        current = version
            except Exception as error:
                said = self.db.refusal(error)
                if said is None:  # a lost connection, a full disk: the transaction's to say
                    raise
                raise _upgrade_failed(start, target, step, said, self.db.denied(error)) from None
            return max(start, current)

    def refuse_newer_schema(self) -> None:
        """Raise the permanent StateError of a store whose schema is newer than this
        onceflow understands: a newer onceflow may migrate the store while a worker or a
        scheduler of this one runs, and rows written by code that does not know the new
        schema may mean something else to it. Reads one row (the long-running loops call
        it about once a minute, SCHEMA_CHECK_SECONDS); StateError while the store is away."""
        _refuse_newer(self.schema_version())


#: How often a long-running worker or scheduler reads the store's schema version, to stop
#: once a newer onceflow has migrated it (one read of one row: nothing at this rate).
SCHEMA_CHECK_SECONDS = 60.0


def _refuse_newer(current: int) -> None:
    if current > LATEST_VERSION:
        raise StateError(
            f"the state store has schema version {current}, newer than this onceflow "
            f"understands ({LATEST_VERSION}); upgrade onceflow",
            permanent=True,
            newer_schema=current,
        )


def _upgrade_failed(start: int, target: int, step: int, said: str, denied: bool) -> StateError:
    """The StateError of an upgrade the database refused (rolled back: nothing changed)."""
    if denied:
        have = (
            "has no tables yet (schema version 0)"
            if start == 0
            else f"has schema version {start}, older than this onceflow's ({target})"
        )
        return StateError(
            f"state: the state store {have}, and this database role may not upgrade it "
            f"({said}): grant the role CREATE on the store's schema (and ownership of its "
            "tables), or run `onceflow status` once as a role that has them; after that a "
            "role that may only read and write rows can run every command",
            permanent=True,
        )
    if "no schema has been selected" in said:
        # PostgreSQL: the URL's search_path names no schema that exists
        return StateError(
            f"state: the state store's schema does not exist ({said}): create it "
            "(`CREATE SCHEMA ...`, the one `options=-csearch_path=...` names in the `state:` "
            "URL) or fix that URL",
            permanent=True,
        )
    return StateError(
        f"state: upgrading the store from schema {start} to {target} failed at migration "
        f"{step} ({said}); nothing was changed (the upgrade is one transaction): remove "
        "what is in its way in the store (an object of that name not made by onceflow) "
        "and run the command again, or keep using the onceflow that wrote the store",
        permanent=True,
    )


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
    try:
        if migrate and read_only:
            _ready_to_read(store)
        elif migrate:
            store.migrate()
    except BaseException:
        store.close()  # a PostgreSQL session is a server resource: not left to the collector
        raise
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
