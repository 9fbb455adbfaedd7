"""The state store: an index of what happened, on SQLite or PostgreSQL.

`open_store(url)` gives a Store whose repositories (`runs`, `extractions`, `files`,
`locks`) hold the SQL of one concern each; `Lease` holds a lock for a `with` block.
"""

from onceflow.errors import StateError
from onceflow.state.db import Database, Tx
from onceflow.state.extractions import ExtractionEntry, ExtractionOutcome, ExtractionRecord
from onceflow.state.files import FileEntry, FileRecord, OrphanedFile
from onceflow.state.lease import Lease, describe_lock, force_release
from onceflow.state.locks import LockRecord
from onceflow.state.postgres import PostgresDatabase
from onceflow.state.runs import RunRecord
from onceflow.state.sqlite import SqliteDatabase
from onceflow.state.store import Store


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open the state store at `url` (sqlite:///path or postgresql://...), migrated."""
    db: Database
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme == "sqlite":
        db = SqliteDatabase(url)
    elif scheme in ("postgresql", "postgres"):
        db = PostgresDatabase(url)
    else:
        raise StateError(
            f"state: unsupported state store URL {scheme!r}; "
            "use sqlite:///path/state.db or postgresql://user@host/db"
        )
    store = Store(db)
    if migrate:
        store.migrate()
    return store


__all__ = [
    "ExtractionEntry",
    "ExtractionOutcome",
    "ExtractionRecord",
    "FileEntry",
    "FileRecord",
    "Lease",
    "LockRecord",
    "OrphanedFile",
    "RunRecord",
    "Store",
    "Tx",
    "describe_lock",
    "force_release",
    "open_store",
]
