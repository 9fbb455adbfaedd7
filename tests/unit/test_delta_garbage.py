"""The consistency check's garbage of a Delta table: files no commit references, never
another table's (delta-rs on local disk, no server)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from onceflow.config import LoadConfig
from onceflow.consistency.checks import delta_garbage
from onceflow.load import LoadTarget


def test_a_table_nested_in_another_tables_folder_is_not_its_garbage(tmp_path: Path) -> None:
    outer, inner = tmp_path / "t", tmp_path / "t" / "nested"
    write_deltalake(str(outer), pa.table({"id": [1]}))
    write_deltalake(str(inner), pa.table({"id": [2]}))
    stray = outer / "part-stray.parquet"  # a write no commit references: garbage
    stray.write_bytes(b"x")
    target = LoadTarget("s.t", "t", str(outer), LoadConfig())
    # the inner table's data files are its own, not the outer one's uncommitted writes
    assert delta_garbage(target, safe_age=-1) == [stray]
