"""A source column widened (`ALTER ... TYPE bigint`, `numeric(10,2)` -> `numeric(14,4)`)
between two windows, loaded into real Delta tables: values that fit load into the narrow
table, one that does not fails its file (table unchanged), `load.widen` rewrites the
table once, and an overwrite table takes the file's schema. Each file once, always."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable

from onceflow.consistency import validate_consistency
from onceflow.load import load
from onceflow.warehouse import arrow_schema
from tests.helpers.cli import run_cli
from tests.helpers.lake import (
    clean_load_checksum,
    content_checksum,
    data_version,
    done,
    file_commits,
    make_config,
    read_table,
    table_uri,
    write_config,
    write_extracted,
)

NARROW = {"id": pa.int32(), "amount": pa.decimal128(10, 2)}
WIDE = {"id": pa.int64(), "amount": pa.decimal128(14, 4)}


def _rows(day: int, types: dict[str, pa.DataType], ids: list[int] | None = None) -> pa.Table:
    ids = ids if ids is not None else [day * 10 + i for i in range(3)]
    return pa.table(
        {
            "id": pa.array(ids, types["id"]),
            "amount": pa.array([Decimal(i % 7) / 4 for i in ids], types["amount"]),
            "label": [f"day{day}-{i}" for i in ids],
        }
    )


def _types(uri: str) -> dict[str, pa.DataType]:
    schema = arrow_schema(DeltaTable(uri))
    return {name: schema.field(name).type for name in ("id", "amount")}


def _lake(tmp_path: Path, *days: tuple[int, dict[str, pa.DataType], list[int] | None]) -> Path:
    lake = tmp_path / "lake"
    for day, types, ids in days:
        write_extracted(lake, _rows(day, types, ids), day=day)
    return lake


def test_wider_file_whose_values_fit_loads_into_the_narrow_table_once(tmp_path: Path) -> None:
    _lake(tmp_path, (0, NARROW, None), (1, WIDE, None))
    cfg = make_config(tmp_path)
    assert done(load(cfg).counts()) == {"loaded": 2}
    uri = table_uri(tmp_path)
    assert _types(uri) == NARROW and read_table(uri).num_rows == 6
    assert done(load(cfg).counts()) == {"skipped": 2}
    assert len(file_commits(uri)) == 2 and validate_consistency(cfg)["consistent"]


def test_a_value_that_does_not_fit_fails_its_file_and_leaves_the_table(tmp_path: Path) -> None:
    _lake(tmp_path, (0, NARROW, None), (1, WIDE, [10, 2**40]), (2, WIDE, None))
    cfg = make_config(tmp_path)
    out = load(cfg)
    [table] = out.results
    assert done(table.counts()) == {"loaded": 1, "failed": 1, "waiting": 1}
    error = table.error or ""
    assert error.startswith("src/orders/202501/02/p_20250102.parquet: column 'id' ")
    assert "1099511627776" in error and "`load: {widen: true}`" in error
    assert "\n" not in error and "(1 later file(s) of the table wait)" in error
    uri = table_uri(tmp_path)
    assert data_version(uri) == 0 and read_table(uri).num_rows == 3


def test_widen_rewrites_the_table_once_and_keeps_what_it_holds(tmp_path: Path) -> None:
    _lake(tmp_path, (0, NARROW, None), (1, WIDE, [10, 2**40]), (2, WIDE, None))
    assert not load(make_config(tmp_path)).ok
    cfg = make_config(tmp_path, {"strategy": "append", "widen": True})
    assert done(load(cfg).counts()) == {"loaded": 2, "skipped": 1}
    uri = table_uri(tmp_path)
    assert _types(uri) == WIDE
    assert sorted(read_table(uri)["id"].to_pylist()) == [0, 1, 2, 10, 20, 21, 22, 2**40]
    history = list(reversed(DeltaTable(uri).history()))
    widened = [h for h in history if "onceflow.widen" in h]
    assert len(widened) == 1 and "int64" in widened[0]["onceflow.widen"]
    # the rewrite carried the first file's rows and its audit columns; no file twice
    assert file_commits(uri) == [
        "src/orders/202501/01/p_20250101.parquet",
        "src/orders/202501/02/p_20250102.parquet",
        "src/orders/202501/03/p_20250103.parquet",
    ]
    day0 = read_table(uri).filter(pa.compute.less(read_table(uri)["id"], 10))
    assert set(day0["_source_file"].to_pylist()) == {"src/orders/202501/01/p_20250101.parquet"}
    assert done(load(cfg).counts()) == {"skipped": 3}
    assert validate_consistency(cfg)["consistent"]


def test_a_kill_after_the_widening_commit_loads_the_file_once_on_rerun(tmp_path: Path) -> None:
    _lake(tmp_path, (0, NARROW, None), (1, WIDE, [10, 2**40]))
    config = write_config(tmp_path, {"strategy": "append", "widen": True})
    crashed = run_cli("load", "-c", str(config), crash_at="after_widen")
    assert crashed.returncode == -9, crashed.stderr
    uri = table_uri(tmp_path)
    assert _types(uri) == WIDE and read_table(uri).num_rows == 3  # widened, file not in
    again = run_cli("load", "-c", str(config))
    assert again.returncode == 0, again.stderr
    assert read_table(uri).num_rows == 5 and len(file_commits(uri)) == 2
    assert validate_consistency(make_config(tmp_path, {"widen": True}))["consistent"]


def test_merge_widened_then_rewound_for_a_late_window_equals_a_clean_load(
    tmp_path: Path,
) -> None:
    merge: dict[str, Any] = {"strategy": "merge", "primary_key": ["id"], "widen": True}
    lake = _lake(tmp_path, (0, NARROW, [1, 2]), (2, WIDE, [2, 2**40]))
    cfg = make_config(tmp_path, merge)
    assert done(load(cfg).counts()) == {"loaded": 2}
    uri = table_uri(tmp_path)
    assert _types(uri) == WIDE
    write_extracted(lake, _rows(1, NARROW, [1, 3]), day=1)  # a late window: rewind, replay
    out = load(cfg)
    assert out.ok, out.as_dict()
    assert done(out.counts()) == {"loaded": 1, "replayed": 1, "skipped": 1}
    assert _types(uri) == WIDE
    assert content_checksum(uri) == clean_load_checksum(tmp_path, lake, merge)


def test_scd2_takes_wider_values_that_fit(tmp_path: Path) -> None:
    scd2 = {"strategy": "scd2", "primary_key": ["id"], "tracking_columns": ["amount"]}
    _lake(tmp_path, (0, NARROW, [1, 2]), (1, WIDE, [1, 2]))
    cfg = make_config(tmp_path, scd2)
    assert load(cfg).ok
    uri = table_uri(tmp_path)
    assert _types(uri) == NARROW and read_table(uri).num_rows == 2  # same values: no version
    assert done(load(cfg).counts()) == {"skipped": 2}


def test_overwrite_takes_the_files_schema_in_its_one_commit(tmp_path: Path) -> None:
    lake = _lake(tmp_path, (0, NARROW, None))
    cfg = make_config(tmp_path, {"strategy": "overwrite"})
    assert load(cfg).ok
    before = DeltaTable(table_uri(tmp_path)).version()
    changed = _rows(1, WIDE, [2**40]).drop_columns(["label"]).append_column("note", ["n"])
    write_extracted(lake, changed, day=1)
    out = load(cfg)
    assert done(out.counts()) == {"loaded": 1, "skipped": 1}
    uri = table_uri(tmp_path)
    table = read_table(uri)
    assert table.column_names == [
        "id",
        "amount",
        "note",
        "_source_file",
        "_load_timestamp",
        "_batch_id",
    ]
    assert _types(uri) == WIDE and table["id"].to_pylist() == [2**40]
    assert DeltaTable(uri).version() == before + 1  # one commit: schema and rows together
    assert done(load(cfg).counts()) == {"skipped": 2}
    assert validate_consistency(cfg)["consistent"]


def test_an_overwrite_files_failed_window_does_not_hold_back_a_later_one(tmp_path: Path) -> None:
    lake = _lake(tmp_path, (0, NARROW, None))
    cfg = make_config(tmp_path, {"strategy": "overwrite", "max_file_retries": 0})
    assert load(cfg).ok
    broken = write_extracted(lake, _rows(1, WIDE, None), day=1)
    broken.write_bytes(b"x" * broken.stat().st_size)  # damaged after its sidecar
    assert not load(cfg).ok and "gave up" in (load(cfg).results[0].error or "")
    write_extracted(lake, _rows(2, WIDE, None), day=2)
    out = load(cfg)
    assert out.ok, out.as_dict()
    assert done(out.counts()) == {"loaded": 1, "superseded": 1, "skipped": 1}
    assert read_table(table_uri(tmp_path))["id"].to_pylist() == [20, 21, 22]
    assert done(load(cfg).counts()) == {"skipped": 3}
