"""The state store: an index of what happened, on SQLite or PostgreSQL.

`open_store(url)` gives a Store whose repositories (`runs`, `extractions`, `files`,
`locks`, `rules`, `scheduled_runs`, `queue`) hold the SQL of one concern each; `Lease`
holds a lock for a `with` block.
"""

from onceflow.state.db import Database, Tx
from onceflow.state.extractions import ExtractionEntry, ExtractionOutcome, ExtractionRecord
from onceflow.state.files import FileEntry, FileRecord, OrphanedFile
from onceflow.state.lease import Lease, describe_lock, force_release
from onceflow.state.locks import LockRecord
from onceflow.state.queue import Job, JobSpec, TenantQueueStatus
from onceflow.state.rules import HistoryRecord, RuleResultRecord, ValidationRecord
from onceflow.state.runs import RunRecord
from onceflow.state.scheduled_runs import (
    RUN_STATES,
    TRANSITIONS,
    RunSpec,
    ScheduledRunRecord,
    TransitionRecord,
)
from onceflow.state.store import Store, open_store

__all__ = [
    "RUN_STATES",
    "TRANSITIONS",
    "Database",
    "ExtractionEntry",
    "ExtractionOutcome",
    "ExtractionRecord",
    "FileEntry",
    "FileRecord",
    "HistoryRecord",
    "Job",
    "JobSpec",
    "Lease",
    "LockRecord",
    "OrphanedFile",
    "RuleResultRecord",
    "RunRecord",
    "RunSpec",
    "ScheduledRunRecord",
    "Store",
    "TenantQueueStatus",
    "TransitionRecord",
    "Tx",
    "ValidationRecord",
    "describe_lock",
    "force_release",
    "open_store",
]
