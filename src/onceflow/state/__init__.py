"""The state store: an index of what happened, on SQLite or PostgreSQL.

`open_store(url)` gives a Store whose repositories (`runs`, `extractions`, `files`,
`locks`, `rules`) hold the SQL of one concern each; `Lease` holds a lock for a `with` block.
"""

from onceflow.state.db import Database, Tx
from onceflow.state.extractions import ExtractionEntry, ExtractionOutcome, ExtractionRecord
from onceflow.state.files import FileEntry, FileRecord, OrphanedFile
from onceflow.state.lease import Lease, describe_lock, force_release
from onceflow.state.locks import LockRecord
from onceflow.state.rules import HistoryRecord, RuleResultRecord, ValidationRecord
from onceflow.state.runs import RunRecord
from onceflow.state.store import Store, open_store

__all__ = [
    "Database",
    "ExtractionEntry",
    "ExtractionOutcome",
    "ExtractionRecord",
    "FileEntry",
    "FileRecord",
    "HistoryRecord",
    "Lease",
    "LockRecord",
    "OrphanedFile",
    "RuleResultRecord",
    "RunRecord",
    "Store",
    "Tx",
    "ValidationRecord",
    "describe_lock",
    "force_release",
    "open_store",
]
