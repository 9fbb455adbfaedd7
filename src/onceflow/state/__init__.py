"""The state store: an index of what happened, on SQLite or PostgreSQL.

`open_store(url)` gives a Store whose repositories (`runs`, `extractions`, `files`,
`locks`, `rules`, `scheduled_runs`, `queue`) hold the SQL of one concern each; `Lease`
holds a lock for a `with` block. Names are imported on first use, so a command loads
only the repositories it touches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from onceflow.lazy import lazy_exports as _lazy_exports

if TYPE_CHECKING:
    from onceflow.state.db import Database, Tx
    from onceflow.state.extractions import ExtractionEntry, ExtractionOutcome, ExtractionRecord
    from onceflow.state.files import FileEntry, FileRecord, OrphanedFile
    from onceflow.state.lease import Lease, describe_lock, force_release
    from onceflow.state.locks import LockRecord
    from onceflow.state.queue import Job, JobSpec, TenantQueueStatus
    from onceflow.state.rules import (
        HistoryRecord,
        RuleResultRecord,
        StatementRecord,
        ValidationRecord,
    )
    from onceflow.state.runs import RunRecord
    from onceflow.state.scheduled_runs import (
        RUN_STATES,
        TRANSITIONS,
        RunSpec,
        ScheduledRunRecord,
        TransitionRecord,
    )
    from onceflow.state.store import DamagedStore, Store, open_store, set_aside_damaged

_WHERE = {
    "Database": "onceflow.state.db",
    "Tx": "onceflow.state.db",
    "ExtractionEntry": "onceflow.state.extractions",
    "ExtractionOutcome": "onceflow.state.extractions",
    "ExtractionRecord": "onceflow.state.extractions",
    "FileEntry": "onceflow.state.files",
    "FileRecord": "onceflow.state.files",
    "OrphanedFile": "onceflow.state.files",
    "Lease": "onceflow.state.lease",
    "describe_lock": "onceflow.state.lease",
    "force_release": "onceflow.state.lease",
    "LockRecord": "onceflow.state.locks",
    "Job": "onceflow.state.queue",
    "JobSpec": "onceflow.state.queue",
    "TenantQueueStatus": "onceflow.state.queue",
    "HistoryRecord": "onceflow.state.rules",
    "RuleResultRecord": "onceflow.state.rules",
    "StatementRecord": "onceflow.state.rules",
    "ValidationRecord": "onceflow.state.rules",
    "RunRecord": "onceflow.state.runs",
    "RUN_STATES": "onceflow.state.scheduled_runs",
    "TRANSITIONS": "onceflow.state.scheduled_runs",
    "RunSpec": "onceflow.state.scheduled_runs",
    "ScheduledRunRecord": "onceflow.state.scheduled_runs",
    "TransitionRecord": "onceflow.state.scheduled_runs",
    "DamagedStore": "onceflow.state.store",
    "Store": "onceflow.state.store",
    "set_aside_damaged": "onceflow.state.store",
    "open_store": "onceflow.state.store",
}

__all__ = [
    "RUN_STATES",
    "TRANSITIONS",
    "DamagedStore",
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
    "StatementRecord",
    "Store",
    "TenantQueueStatus",
    "TransitionRecord",
    "Tx",
    "ValidationRecord",
    "describe_lock",
    "force_release",
    "open_store",
    "set_aside_damaged",
]

__getattr__, __dir__ = _lazy_exports(__name__, _WHERE, globals())
