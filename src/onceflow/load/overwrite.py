"""overwrite: one file replaces the table's whole content, atomically, as one commit.

The file's schema replaces the table's in the same commit (a column the source widened,
narrowed, added or dropped): the table is the file, so no older type has to hold its
values. The file markers are application transactions of the snapshot, which a schema
change keeps, so the table still says which files it holds.

Readers see either the old version or the new one; the old data files stay until
`onceflow optimize` vacuums them past the retention period.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa

from onceflow.load.append import write
from onceflow.warehouse import with_audit_columns


def apply_overwrite(
    table: Any,
    batch: pa.Table,
    *,
    source_file: str,
    load_time: datetime,
    batch_id: str,
    commit_properties: Any,
) -> None:
    """Replace the table's rows and schema with this file's rows (with audit columns)."""
    write(
        table,
        with_audit_columns(batch, source_file=source_file, load_time=load_time, batch_id=batch_id),
        mode="overwrite",
        commit_properties=commit_properties,
        schema_mode="overwrite",
    )
