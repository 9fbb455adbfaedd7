"""Delta table access shared by the steps: location, snapshot reads, the one schema rule,
the audit columns and DuckDB helpers."""

from onceflow.warehouse.audit import (
    AUDIT_COLUMNS,
    AUDIT_FIELDS,
    audited_schema,
    with_audit_columns,
)
from onceflow.warehouse.schema import check_schema, compatible, conform_batch
from onceflow.warehouse.tables import (
    arrow_schema,
    checkpoint_if_due,
    commit_infos,
    local_root,
    one_line,
    open_table,
    read_snapshot,
    read_table,
    snapshot_dataset,
    table_uri,
)

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
    "local_root",
    "one_line",
    "open_table",
    "read_snapshot",
    "read_table",
    "snapshot_dataset",
    "table_uri",
    "with_audit_columns",
]
