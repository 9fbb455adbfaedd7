"""Delta table access shared by the steps: location, snapshot reads, the one schema rule,
the audit columns, DuckDB helpers, and the markers by which a table names the lake files
it holds (`held`: one file's lookup; `markers`: a whole log's, and the commits' metadata).

Names are imported on first use: `warehouse.duck` serves a validation that reads through
DuckDB alone, and importing this package must not load Arrow (~0.1 s) for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from onceflow.lazy import lazy_exports as _lazy_exports

if TYPE_CHECKING:
    from onceflow.locations import local_root
    from onceflow.warehouse.audit import (
        AUDIT_COLUMNS,
        AUDIT_FIELDS,
        audited_schema,
        with_audit_columns,
    )
    from onceflow.warehouse.schema import check_schema, compatible, conform_batch, widenings
    from onceflow.warehouse.tables import (
        arrow_schema,
        checkpoint_if_due,
        commit_infos,
        create_table,
        log_commit_infos,
        one_line,
        open_table,
        read_snapshot,
        read_table,
        snapshot_dataset,
        table_uri,
        widen_table,
        write_problem,
        write_problem_cause,
    )

_WHERE = {
    "AUDIT_COLUMNS": "onceflow.warehouse.audit",
    "AUDIT_FIELDS": "onceflow.warehouse.audit",
    "arrow_schema": "onceflow.warehouse.tables",
    "audited_schema": "onceflow.warehouse.audit",
    "check_schema": "onceflow.warehouse.schema",
    "checkpoint_if_due": "onceflow.warehouse.tables",
    "commit_infos": "onceflow.warehouse.tables",
    "create_table": "onceflow.warehouse.tables",
    "log_commit_infos": "onceflow.warehouse.tables",
    "compatible": "onceflow.warehouse.schema",
    "conform_batch": "onceflow.warehouse.schema",
    "local_root": "onceflow.locations",
    "one_line": "onceflow.warehouse.tables",
    "open_table": "onceflow.warehouse.tables",
    "read_snapshot": "onceflow.warehouse.tables",
    "read_table": "onceflow.warehouse.tables",
    "snapshot_dataset": "onceflow.warehouse.tables",
    "table_uri": "onceflow.warehouse.tables",
    "widen_table": "onceflow.warehouse.tables",
    "widenings": "onceflow.warehouse.schema",
    "with_audit_columns": "onceflow.warehouse.audit",
    "write_problem": "onceflow.warehouse.tables",
    "write_problem_cause": "onceflow.warehouse.tables",
}

__all__ = [
    "AUDIT_COLUMNS",
    "AUDIT_FIELDS",
    "arrow_schema",
    "audited_schema",
    "check_schema",
    "checkpoint_if_due",
    "commit_infos",
    "compatible",
    "conform_batch",
    "create_table",
    "local_root",
    "log_commit_infos",
    "one_line",
    "open_table",
    "read_snapshot",
    "read_table",
    "snapshot_dataset",
    "table_uri",
    "widen_table",
    "widenings",
    "with_audit_columns",
    "write_problem",
    "write_problem_cause",
]

__getattr__, __dir__ = _lazy_exports(__name__, _WHERE, globals())
