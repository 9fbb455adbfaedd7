"""Consistency between the index (the state store) and the truth (sidecars, Delta logs,
files on disk): validate-consistency, fix-inconsistencies and force-unlock."""

from onceflow.consistency.checks import (
    DEFAULT_SAFE_AGE_SECONDS,
    FILE_TRACKER_KINDS,
    ISSUE_LABELS,
    Issue,
    validate_consistency,
)
from onceflow.consistency.fixes import fix_inconsistencies
from onceflow.consistency.locks import (
    config_lock_names,
    force_unlock,
    list_locks,
    lock_name,
    pipeline_at_rest,
)

__all__ = [
    "DEFAULT_SAFE_AGE_SECONDS",
    "FILE_TRACKER_KINDS",
    "ISSUE_LABELS",
    "Issue",
    "config_lock_names",
    "fix_inconsistencies",
    "force_unlock",
    "list_locks",
    "lock_name",
    "pipeline_at_rest",
    "validate_consistency",
]
