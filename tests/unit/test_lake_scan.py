"""What a table's lake folder holds: committed files, damaged ones, and data files that
no complete sidecar commits, each told apart (no server: files in a temp folder)."""

from __future__ import annotations

import json
import os
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
from onceflow.lake.discovery import (
    SourceFile,
    TableScan,
    Uncommitted,
    _committed,
    _data_missing,
)
from onceflow.lake.paths import TEMP_MARKER, sidecar_name
from tests.helpers.lake import make_lake, orders_batch, write_extracted


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


def _scan_per_file(lake: Path, source: str, table: str) -> TableScan:
    """The scan as it was before one listing per day folder: two globs, and each file's
    identity from its own resolved path (the reference the walk must equal)."""
    root, folder, key = lake, lake / source / table, f"{source}.{table}"
    found: list[SourceFile] = []
    uncommitted: list[Uncommitted] = []
    for path in folder.glob("*/*/*.parquet"):
        if TEMP_MARKER in path.name:
            continue
        seen = _committed(path, root, key)
        if isinstance(seen, Uncommitted):
            uncommitted.append(seen)
        else:
            found.append(seen)
    for marker in folder.glob("*/*/*_metadata.json"):
        data = marker.with_name(marker.name.removesuffix("_metadata.json") + ".parquet")
        if not data.exists() and (missing := _data_missing(data, root, key)):
            found.append(missing)
    return TableScan(
        sorted(found, key=lambda f: f.order),
        sorted(uncommitted, key=lambda u: u.file_id),
    )


def _every_kind_of_file(lake: Path) -> None:
    """A table folder with one of each thing a scan tells apart, links included."""
    paths = make_lake(lake, files=12, rows=2)
    sidecar_path(paths[1]).unlink()  # an extraction in progress
    sidecar_path(paths[2]).write_text('{"broken', encoding="utf-8")
    sidecar_path(paths[3]).write_text('{"extraction_complete": false}', encoding="utf-8")
    paths[4].unlink()  # committed, data gone
    paths[5].write_bytes(paths[5].read_bytes()[:-3])  # truncated after its commit
    paths[6].with_name(paths[6].name + TEMP_MARKER + "x").write_bytes(b"tmp")
    # a day folder that is a link to a folder elsewhere in the lake
    day7 = paths[7].parent
    elsewhere = lake / "moved" / "07"
    elsewhere.parent.mkdir()
    day7.rename(elsewhere)
    day7.symlink_to(elsewhere, target_is_directory=True)
    # a data file that is a link, and one whose link dangles beside a complete sidecar
    real = lake / "moved" / "p_8.parquet"
    paths[8].rename(real)
    paths[8].symlink_to(real)
    paths[9].unlink()
    paths[9].symlink_to(lake / "moved" / "gone.parquet")
    (lake / "src" / "orders" / "misc" / "x").mkdir(parents=True)  # not the layout
    pq.write_table(pa.table({"id": [1]}), lake / "src" / "orders" / "misc" / "x" / "a.parquet")
    (lake / "src" / "orders" / "202501" / "stray.txt").write_text("not a folder")


def test_the_scan_finds_exactly_what_a_per_file_scan_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One listing per day folder and identities built from the table folder's (no Path
    and no resolve per file) give the same files, problems, identities and order as the
    two globs and per-file resolving they replace, links included, from any cwd."""
    lake = tmp_path / "lake"
    _every_kind_of_file(lake)
    monkeypatch.chdir(tmp_path)
    for given in (str(lake), "lake", "./lake/"):
        assert scan_table_files(given, "src", "orders") == _scan_per_file(
            Path(given), "src", "orders"
        )
    scan = scan_table_files("lake", "src", "orders")
    ids = {f.file_id: f for f in scan.files}
    assert "moved/07/p_20250108.parquet" in ids  # a link: where it leads, as before
    assert ids["moved/p_8.parquet"].path == str(lake / "src/orders/202501/09/p_20250109.parquet")
    # a link that dangles beside its complete sidecar is listed twice (unreadable, and
    # data missing), as it was: kept so that the two scans stay equal
    dangling = [f for f in scan.files if f.path.endswith("/10/p_20250110.parquet")]
    assert [f.data_missing for f in dangling] == [False, True]
    assert len(scan.files) == 11 and len(scan.uncommitted) == 3


def test_a_scan_resolves_the_lake_and_the_table_folder_once_not_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each `run` and `load` scans every table's whole folder: resolving the lake root
    and each file per file was 0.31 s of a year of 5 tables (1,825 files)."""
    lake = tmp_path / "lake"
    make_lake(lake, files=6, rows=2)
    calls = []
    resolve = Path.resolve

    def counted(self: Path, strict: bool = False) -> Path:
        calls.append(self)
        return resolve(self, strict)

    monkeypatch.setattr(Path, "resolve", counted)
    assert len(scan_table_files(str(lake), "src", "orders").files) == 6
    assert len(calls) == 2


def test_a_hand_edited_sidecar_and_a_re_extracted_file_are_seen_by_the_next_scan(
    tmp_path: Path,
) -> None:
    """Nothing of a scan is kept for the next one: a sidecar edited by hand, or a file
    extracted again, is read again even when its size and modification time are put back
    as they were (a cache keyed on them would miss both)."""
    lake = tmp_path / "lake"
    first, second = make_lake(lake, files=2, rows=3)
    before = {f.file_id: f for f in scan_table_files(str(lake), "src", "orders").files}
    sidecar = sidecar_path(first)
    stat = sidecar.stat()
    content = json.loads(sidecar.read_text(encoding="utf-8"))
    content["record_count"] = 4  # one digit for another: the same size
    sidecar.write_text(json.dumps(content, indent=2, sort_keys=True), encoding="utf-8")
    os.utime(sidecar, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    old = second.stat()
    write_extracted(lake, orders_batch(1, 3).slice(0, 2), day=1)  # the window again
    os.utime(second, ns=(old.st_atime_ns, old.st_mtime_ns))
    after = {f.file_id: f for f in scan_table_files(str(lake), "src", "orders").files}
    first_id = "src/orders/202501/01/p_20250101.parquet"
    second_id = "src/orders/202501/02/p_20250102.parquet"
    assert (before[first_id].record_count, after[first_id].record_count) == (3, 4)
    assert after[second_id].checksum != before[second_id].checksum
    assert after[second_id].record_count == 2 and after[second_id].problem is None


@pytest.mark.parametrize("name", ["p_1.parquet", "a.b.parquet", ".parquet", "..parquet", "x"])
def test_a_sidecars_name_is_the_data_files_stem_and_the_suffix(name: str) -> None:
    assert sidecar_name(name) == Path(name).stem + "_metadata.json"
    assert sidecar_path(Path("d") / name) == Path("d") / sidecar_name(name)
