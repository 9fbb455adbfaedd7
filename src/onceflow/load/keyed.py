"""What merge and scd2 share: primary-key checks and delta-rs predicate quoting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from onceflow.errors import LoadError

# apply_*(table=OPEN_LATEST): open the table's latest version (else: the snapshot given)
OPEN_LATEST: Any = object()


def dq(name: str) -> str:
    """A column name quoted for delta-rs / DataFusion predicates (backticks)."""
    if "`" in name:
        raise LoadError(f"column name {name!r} contains a backtick, which merge cannot address")
    return f"`{name}`"


def check_keys(batch: pa.Table, keys: Sequence[str], table_uri: str) -> None:
    """Every key column exists and holds no NULL."""
    missing = [k for k in keys if k not in batch.column_names]
    if missing:
        raise LoadError(
            f"primary key column(s) {', '.join(map(repr, missing))} missing from the file "
            f"(it has: {', '.join(batch.column_names)}); {table_uri} is untouched"
        )
    for key in keys:
        nulls = batch.column(key).null_count
        if nulls:
            raise LoadError(
                f"primary key column {key!r} has {nulls} NULL value(s); {table_uri} is untouched",
                bad_rows=True,
            )
