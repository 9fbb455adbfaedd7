"""What a table's lake folder holds: committed files, damaged ones, and data files that
no complete sidecar commits, each told apart (no server: files in a temp folder)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from onceflow.errors import ConfigError, LoadError
from onceflow.lake import (
    discover_path,
    extracted_identity,
    inspect_sidecar,
    name_order,
    scan_table_files,
    sidecar_path,
)
from tests.helpers.lake import make_lake


def test_a_missing_sidecar_is_not_committed_and_an_unreadable_one_is_damaged(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    first, second, third, fourth = make_lake(lake, files=4, rows=2)
    sidecar_path(second).unlink()
    sidecar_path(third).write_text('{"broken', encoding="utf-8")
    sidecar_path(fourth).write_text('{"extraction_complete": false}', encoding="utf-8")
    scan = scan_table_files(str(lake), "src", "orders")
    [good, broken] = scan.files
    assert good.file_id.endswith("01/p_20250101.parquet") and good.problem is None
    assert broken.sidecar_unreadable and broken.checksum is None
    assert broken.day == date(2025, 1, 3) and good.order < broken.order
    assert "p_20250103_metadata.json is not valid JSON" in (broken.problem or "")
    command = "onceflow extract --date 2025-01-03 --tables src.orders --force-reprocess"
    assert command in (broken.problem or "")
    assert [(u.file_id, u.day) for u in scan.uncommitted] == [
        ("src/orders/202501/02/p_20250102.parquet", date(2025, 1, 2)),
        ("src/orders/202501/04/p_20250104.parquet", date(2025, 1, 4)),
    ]
    assert scan.uncommitted[0].reason.startswith("no sidecar")
    assert "extraction_complete" in scan.uncommitted[1].reason
    assert first.exists()


def test_inspect_sidecar_says_missing_unreadable_or_its_content(tmp_path: Path) -> None:
    data = tmp_path / "x.parquet"
    assert inspect_sidecar(data) == (None, None)
    sidecar_path(data).write_bytes(b"[1, 2]")
    assert inspect_sidecar(data) == (None, "is not a JSON object")
    sidecar_path(data).write_bytes(b"\xff\xfe")
    content, why = inspect_sidecar(data)
    assert content is None and (why or "").startswith("is not valid JSON")
    sidecar_path(data).write_text('{"run_id": "r"}', encoding="utf-8")
    assert inspect_sidecar(data) == ({"run_id": "r"}, None)


def test_a_complete_sidecar_whose_data_file_is_gone_is_a_committed_file_with_a_problem(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    first, second, third = make_lake(lake, files=3, rows=2)
    second.unlink()
    third.unlink()  # and its sidecar says it never committed: nothing to report
    sidecar_path(third).write_text('{"extraction_complete": false}', encoding="utf-8")
    scan = scan_table_files(str(lake), "src", "orders")
    [good, gone] = scan.files
    assert good.path == str(first.absolute()) and not good.data_missing
    assert gone.file_id == "src/orders/202501/02/p_20250102.parquet" and gone.data_missing
    assert gone.window_start is not None and gone.checksum is not None
    assert good.order < gone.order and gone.day == date(2025, 1, 2)
    assert (gone.problem or "").startswith("data file missing")
    command = "onceflow extract --date 2025-01-02 --tables src.orders --force-reprocess"
    assert command in (gone.problem or "") and "put the file back" in (gone.problem or "")
    assert scan.uncommitted == []


def test_a_folders_files_are_in_name_order_with_numbers_compared_as_numbers(
    tmp_path: Path,
) -> None:
    names = [
        "batch_10.parquet",
        "batch_9.parquet",
        "batch_1.parquet",
        "batch_01.parquet",
        "2025-01-10/a.parquet",
        "2025-01-9/a.parquet",
        "b2/x.parquet",
        "b10.parquet",
        "a.parquet",
        "10.parquet",
    ]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"id": [1]}), tmp_path / name)
    found = [f.file_id for f in discover_path(str(tmp_path))]
    assert found == [
        "10.parquet",
        "2025-01-9/a.parquet",
        "2025-01-10/a.parquet",
        "a.parquet",
        "b2/x.parquet",  # folder by folder: b2 before b10
        "b10.parquet",
        "batch_01.parquet",  # the same number: by its text, so the order is total
        "batch_1.parquet",
        "batch_9.parquet",
        "batch_10.parquet",
    ]
    assert sorted(reversed(found), key=name_order) == found


def test_a_mistyped_path_is_a_bad_argument_and_an_empty_glob_a_failed_load(
    tmp_path: Path,
) -> None:
    """`load --path ./nonexist` exited 1 like a failed load; the docs give 2 for a bad
    argument. A glob that matches nothing yet may be data not arrived: still a load error."""
    with pytest.raises(ConfigError, match="no such file or folder") as refused:
        discover_path(str(tmp_path / "nonexist"))
    assert refused.value.field == "path" and refused.value.exit_code == 2
    with pytest.raises(LoadError, match="no Parquet files match"):
        discover_path(str(tmp_path / "drop" / "*.parquet"))


def test_an_extracted_files_identity_survives_a_moved_lake(tmp_path: Path) -> None:
    lake = tmp_path / "now" / "lake"
    here = lake / "src" / "orders" / "202501" / "23" / "p_20250123.parquet"
    assert extracted_identity(here, lake) == "src/orders/202501/23/p_20250123.parquet"
    # recorded where the project was before it was moved or copied
    before = tmp_path / "then" / "lake" / "src" / "orders" / "202501" / "23" / "p_20250123.parquet"
    assert extracted_identity(str(before), lake) == "src/orders/202501/23/p_20250123.parquet"
    with pytest.raises(ValueError):
        extracted_identity("/x/y.parquet", lake)  # not a path of the layout
