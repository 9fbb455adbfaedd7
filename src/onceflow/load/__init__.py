"""Load: Parquet files -> Delta tables (append, overwrite, merge, scd2), one commit per file."""

from onceflow.load.api import (
    LoadSummary,
    check_settings,
    config_targets,
    load,
    load_status,
    load_target,
    optimize,
    reset_load_state,
    target_name,
    tracked_targets,
)
from onceflow.load.loader import LoadTarget, TableLoadResult, reconcile, reload_file

__all__ = [
    "LoadSummary",
    "LoadTarget",
    "TableLoadResult",
    "check_settings",
    "config_targets",
    "load",
    "load_status",
    "load_target",
    "optimize",
    "reconcile",
    "reload_file",
    "reset_load_state",
    "target_name",
    "tracked_targets",
]
