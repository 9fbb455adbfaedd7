"""overwrite: one file replaces the table's whole content, atomically, as one commit.

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
    """Replace the table's rows with this file's rows (with audit columns)."""
    write(
        table,
        with_audit_columns(batch, source_file=source_file, load_time=load_time, batch_id=batch_id),
        mode="overwrite",
        commit_properties=commit_properties,
    )
