"""Nothing a load did not do goes unreported: a failed file keeps its run failed, an
unreadable sidecar fails its file by name, validate-consistency names every failed file.

In-process on a SQLite source and state store (the CLI's output and exit codes are
tested in tests/integration/cli)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from onceflow.config import Config
from onceflow.consistency import validate_consistency
from onceflow.extract import extract
from onceflow.lake import discover_table_files, sidecar_path
from onceflow.load import load, load_status
from onceflow.pipeline import run
from onceflow.state import open_store
from onceflow.warehouse import open_table
from tests.helpers.lake import (
    done,
    make_config,
    make_lake,
    orders_batch,
    read_table,
    table_uri,
    write_extracted,
)
from tests.helpers.schedule import project_config
from tests.helpers.servers import unavailable

SCD2 = {"strategy": "scd2", "primary_key": ["id"]}

DAY1, DAY2 = "2025-01-01", "2025-01-02"


def _project(tmp_path: Path) -> Config:
    return project_config(tmp_path / "project", f"sqlite:///{tmp_path / 'state.db'}", days=3)


def _lake_file(cfg: Config, day: str) -> Path:
    lake = cfg.resolve(cfg.lake)
    [found] = [f for f in discover_table_files(lake, "src", "events") if f.run_id == _rid(day)]
    return Path(found.path)


def _rid(day: str) -> str:
    return "sched_" + day.replace("-", "")


def _flip_a_middle_byte(path: Path) -> None:
    """The file changes after extraction, size unchanged: only a checksum notices."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _kinds(cfg: Config) -> list[str]:
    return sorted(i["kind"] for i in validate_consistency(cfg)["issues"])


def test_an_extraction_after_a_failed_load_leaves_the_run_failed_until_a_load_succeeds(
    tmp_path: Path,
) -> None:
    cfg = _project(tmp_path)
    store = open_store(cfg.state_url)
    assert extract(cfg, DAY1).ok and extract(cfg, DAY2).ok
    _flip_a_middle_byte(_lake_file(cfg, DAY2))
    failed = run(cfg, DAY2)
    assert not failed.ok and failed.run.status == "failed"
    # the load proved the file damaged, so the extraction repairs it (no --verify deep);
    # the load's verdict stands: only the load that follows completes the run
    again = extract(cfg, DAY2)
    assert again.ok and again.counts() == {"extracted": 1, "skipped": 0, "failed": 0}
    assert again.run.status == "failed"
    assert store.runs.get(_rid(DAY2)).status == "failed"  # type: ignore[union-attr]
    assert "completed_with_failed_files" not in _kinds(cfg)
    assert extract(cfg, DAY2).counts() == {"extracted": 0, "skipped": 1, "failed": 0}
    assert extract(cfg, DAY2, force_reprocess=True).run.status == "failed"
    repaired = run(cfg, DAY2)
    assert repaired.ok and repaired.run.status == "completed"
    assert store.runs.get(_rid(DAY1)).status == "completed"  # type: ignore[union-attr]
    assert _kinds(cfg) == []


def test_validate_consistency_names_a_failed_file_of_a_failed_run_and_checksums_new_files(
    tmp_path: Path,
) -> None:
    cfg = _project(tmp_path)
    assert extract(cfg, DAY1).ok and extract(cfg, DAY2).ok
    damaged = _lake_file(cfg, DAY2)
    _flip_a_middle_byte(damaged)
    # before any load: the file the next load would read is checksummed, not only sized
    [issue] = validate_consistency(cfg)["issues"]
    assert (issue["kind"], issue["subject"]) == ("damaged_lake_file", _id(damaged))
    assert "differs from its sidecar's" in issue["problem"]
    assert not run(cfg, DAY2).ok  # its load fails, so the run is failed, not completed
    report = validate_consistency(cfg)
    assert not report["consistent"]
    assert sorted(i["kind"] for i in report["issues"]) == ["damaged_lake_file", "failed_files"]
    [failed] = [i for i in report["issues"] if i["kind"] == "failed_files"]
    assert failed["table"] == "src.events" and failed["files"] == [str(damaged)]
    assert "does not match its sidecar" in failed["detail"]


def _id(path: Path) -> str:
    return "/".join(path.parts[-5:])


def test_a_run_whose_only_extraction_failed_completes_once_it_is_extracted(
    tmp_path: Path,
) -> None:
    cfg = _project(tmp_path)
    store = open_store(cfg.state_url)
    extract(cfg, DAY1)
    store.runs.fail(_rid(DAY1))
    with store.transaction() as tx:  # as a failed extraction leaves it
        tx.execute("UPDATE extractions SET status = 'failed' WHERE run_id = ?", (_rid(DAY1),))
    store.runs.finish(_rid(DAY1))
    assert extract(cfg, DAY1).run.status == "completed"


# -- a sidecar that cannot be read fails its file; one not written yet is reported --------


OVERWRITE = {"strategy": "overwrite"}


def _lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


def test_an_unreadable_sidecar_fails_its_file_by_name_and_later_windows_wait(
    tmp_path: Path,
) -> None:
    lake = _lake(tmp_path)
    make_lake(lake, files=2, rows=3)
    cfg = make_config(tmp_path, OVERWRITE)
    assert load(cfg).ok
    broken = write_extracted(lake, orders_batch(2, 4), day=2)
    sidecar_path(broken).write_text('{"broken', encoding="utf-8")
    later = write_extracted(lake, orders_batch(3, 5), day=3)
    summary = load(cfg)
    assert not summary.ok
    result = summary.results[0]
    assert done(result.counts()) == {"skipped": 2, "failed": 1, "waiting": 1}
    broken_id = "src/orders/202501/03/p_20250103.parquet"
    assert broken_id in (result.error or "")
    assert "p_20250103_metadata.json is not valid JSON" in (result.error or "")
    assert "onceflow extract --date 2025-01-03 --tables src.orders --force-reprocess" in (
        result.error or ""
    )
    assert "src/orders/202501/04/p_20250104.parquet" in (result.waiting or "")
    # the table keeps its last good content, and every report says why
    assert read_table(table_uri(tmp_path)).num_rows == 3
    store = open_store(cfg.state_url)
    assert store.files.get(table_uri(tmp_path), broken_id).status == "failed"  # type: ignore[union-attr]
    status = load_status(cfg)[0]
    assert [f["file"] for f in status["damaged_files"]] == [broken_id]
    assert [f["file"] for f in status["failed_files"]] == [broken_id]
    assert "damaged_lake_file" in _kinds(cfg)
    # the re-extraction writes a good sidecar: both files load, the last window wins
    write_extracted(lake, orders_batch(2, 4), day=2)
    repaired = load(cfg)
    assert repaired.ok, repaired.as_dict()
    assert done(repaired.counts()) == {"loaded": 1, "superseded": 1, "skipped": 2}
    assert sorted(read_table(table_uri(tmp_path))["id"].to_pylist()) == list(
        range(300_000, 300_005)
    )
    assert later.exists()


def test_a_superseded_file_is_logged_without_a_row_count_it_does_not_have(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lake = _lake(tmp_path)
    make_lake(lake, files=2, rows=3)
    with caplog.at_level(logging.INFO, logger="onceflow.load.loader"):
        assert load(make_config(tmp_path, OVERWRITE)).ok
    lines = [r.getMessage() for r in caplog.records if " superseded " in r.getMessage()]
    assert lines == [
        "src.orders: superseded src/orders/202501/01/p_20250101.parquet "
        "(a later window replaces it: no rows written, its markers in version 1)"
    ]
    assert not [r for r in caplog.records if "None" in r.getMessage()]


@pytest.mark.parametrize(
    ("strategy", "ids", "says"),
    [
        ({"strategy": "merge", "primary_key": ["id"]}, [1, 1, 2], "appear more than once"),
        (SCD2, [1, 1, 2], "ambiguous order"),
        (SCD2, [1, None, 2], "primary key column 'id' has 1 NULL value(s)"),
    ],
    ids=["merge-duplicate-key", "scd2-duplicate-key", "scd2-null-key"],
)
def test_a_file_whose_rows_a_keyed_strategy_refuses_says_how_to_repair_it(
    tmp_path: Path, strategy: dict[str, Any], ids: list[int | None], says: str
) -> None:
    # the lake file is what the source held: the fix is at the source, then the window
    # extracted again; the error gives that command, as a damaged file's does
    lake = _lake(tmp_path)
    bad = pa.table({"id": pa.array(ids, pa.int64()), "label": ["a", "b", "c"]})
    write_extracted(lake, bad, day=0)
    write_extracted(
        lake, pa.table({"id": pa.array([1, 2], pa.int64()), "label": ["a", "c"]}), day=1
    )
    cfg = make_config(tmp_path, strategy)
    result = load(cfg).results[0]
    assert done(result.counts()) == {"failed": 1, "waiting": 1}
    error = result.error or ""
    assert says in error
    assert error.endswith(
        "is untouched. To repair it, correct those rows at the source, then re-extract the "
        "window (`onceflow extract --date 2025-01-01 --tables src.orders --force-reprocess`) "
        "and load (1 later file(s) of the table wait)"
    )
    # the tracker keeps the fix with the error, for `status` and a later given-up load
    store = open_store(cfg.state_url)
    failed = store.files.get(table_uri(tmp_path), "src/orders/202501/01/p_20250101.parquet")
    assert failed is not None and "--force-reprocess`) and load" in (failed.error or "")


@pytest.mark.parametrize(
    ("strategy", "ids", "says"),
    [
        ({"strategy": "merge", "primary_key": ["id"]}, [1, 1, 2], "a NULL 'ts' in at least one"),
        ({**SCD2}, [1, 2, 3], "validity column 'ts' has 1 NULL value(s)"),
    ],
    ids=["merge-null-validity-among-a-keys-rows", "scd2-null-validity"],
)
def test_a_file_refused_for_a_null_validity_says_how_to_repair_it(
    tmp_path: Path, strategy: dict[str, Any], ids: list[int], says: str
) -> None:
    lake = _lake(tmp_path)
    stamps = [None, datetime(2025, 1, 1, 10, tzinfo=UTC), datetime(2025, 1, 1, 11, tzinfo=UTC)]
    bad = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "label": ["a", "b", "c"],
            "ts": pa.array(stamps, pa.timestamp("us", tz="UTC")),
        }
    )
    write_extracted(lake, bad, day=0)
    result = load(make_config(tmp_path, {**strategy, "validity_column": "ts"})).results[0]
    error = result.error or ""
    assert says in error, error
    assert "To repair it, correct those rows at the source, then re-extract the window" in error


@pytest.mark.parametrize("strategy", [{}, SCD2], ids=["append", "scd2"])
def test_an_unreadable_sidecar_of_an_earlier_window_never_rewinds_the_table(
    tmp_path: Path, strategy: dict[str, Any]
) -> None:
    lake = _lake(tmp_path)
    paths = make_lake(lake, files=3, rows=3)
    cfg = make_config(tmp_path, strategy or None)
    assert load(cfg).ok
    version = open_table(table_uri(tmp_path)).version()
    sidecar_path(paths[0]).write_bytes(b"\xff\xfe not json")
    summary = load(cfg)
    assert not summary.ok
    assert done(summary.counts()) == {"skipped": 2, "failed": 1}
    assert open_table(table_uri(tmp_path)).version() == version  # nothing rewound or written


def test_a_data_file_without_its_sidecar_is_reported_as_not_committed(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    paths = make_lake(lake, files=3, rows=3)
    cfg = make_config(tmp_path)
    sidecar = sidecar_path(paths[2]).read_bytes()
    sidecar_path(paths[2]).unlink()  # an extraction running, or killed before its commit
    summary = load(cfg)
    assert not summary.ok
    result = summary.results[0]
    assert done(result.counts()) == {"loaded": 2, "uncommitted": 1}
    assert result.error is None
    assert "src/orders/202501/03/p_20250103.parquet: no sidecar" in (result.uncommitted or "")
    assert "onceflow extract --date 2025-01-03 -t src.orders" in (result.uncommitted or "")
    assert load_status(cfg)[0]["uncommitted_files"][0]["file"].endswith("03/p_20250103.parquet")
    # a load up to an earlier window has nothing left undone
    assert load(cfg, "2025-01-02").ok
    sidecar_path(paths[2]).write_bytes(sidecar)  # the extraction commits
    last = load(cfg)
    assert last.ok and done(last.counts()) == {"loaded": 1, "skipped": 2}


def test_a_load_up_to_a_date_counts_no_file_of_a_later_window(tmp_path: Path) -> None:
    make_lake(_lake(tmp_path), files=3, rows=2)
    cfg = make_config(tmp_path)
    assert done(load(cfg).counts()) == {"loaded": 3}
    # held, but out of scope: not "skipped" by a load that does not reach their windows
    assert done(load(cfg, "2024-12-30").counts()) == {}
    assert done(load(cfg, "2025-01-02").counts()) == {"skipped": 2}
    assert read_table(table_uri(tmp_path)).num_rows == 6


def test_a_full_disk_says_so_with_its_fix_and_does_not_use_up_the_files_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It said `Delta write failed (... Failed to parse parquet: ... No space left on
    device)`, and each try counted against the file: after max_file_retries, freeing
    space was not enough (`reset-state --failed` was needed too)."""
    import onceflow.load.loader as loader

    make_lake(_lake(tmp_path), files=1, rows=2)
    cfg = make_config(tmp_path)

    def full(*_args: Any, **_kw: Any) -> Any:  # what delta-rs raises on a full disk
        raise OSError(
            "Failed to parse parquet: External: Generic LocalFileSystem error: Unable to "
            "copy data to file: No space left on device (os error 28)"
        )

    monkeypatch.setattr(loader, "_apply", full)
    for _ in range(cfg.tables[0].load.max_file_retries + 2):
        [result] = load(cfg).results
        assert "disk full while writing the Delta table" in (result.error or "")
        assert "free space on its disk, then load again" in (result.error or "")
    [record] = open_store(cfg.state_url).files.find(table_uri(tmp_path))
    assert record.status == "failed" and record.retry_count == 0
    monkeypatch.undo()  # space freed
    assert done(load(cfg).counts()) == {"loaded": 1}


def test_a_full_disk_under_an_append_to_a_table_is_said_and_keeps_the_files_retries(
    tmp_path: Path,
) -> None:
    """On a real full disk, an append to an existing table (pyarrow writes its part file)
    said `Delta write failed (RuntimeError: file metadata is only available after writer
    close)`: the ENOSPC was the error under it. Each load used up a retry, and after
    freeing space the file stayed given up until `reset-state --failed`."""
    from tests.helpers.mounts import fill, tmpfs

    lake = tmp_path / "lake"
    write_extracted(lake, orders_batch(0, 50), day=0)
    cfg = make_config(tmp_path)
    with tmpfs(tmp_path / "warehouse", "2m") as disk:
        assert done(load(cfg).counts()) == {"loaded": 1}  # the table exists
        write_extracted(lake, orders_batch(1, 20_000), day=1)
        filler = fill(disk, leave=16 * 1024)
        for _ in range(cfg.tables[0].load.max_file_retries + 2):
            [result] = load(cfg).results
            assert "disk full while writing the Delta table" in (result.error or ""), result
        [failed] = [
            r
            for r in open_store(cfg.state_url).files.find(table_uri(tmp_path))
            if r.status == "failed"
        ]
        assert failed.retry_count == 0
        assert read_table(table_uri(tmp_path)).num_rows == 50  # unchanged
        filler.unlink()  # space freed: a plain load takes the file
        assert done(load(cfg).counts()) == {"loaded": 1, "skipped": 1}
        assert read_table(table_uri(tmp_path)).num_rows == 20_050


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "Unable to open file x/_delta_log/1.json#1: Read-only file system (os error 30)",
            "is on a read-only file system",
        ),
        (
            "[Errno 13] Failed to open local file 'x/part-0.parquet'. Detail: [errno 13] "
            "Permission denied",
            "no permission to write the Delta table",
        ),
        (
            "Unable to open file x/part-0.parquet#1: Operation not permitted (os error 1)",
            "is not permitted",
        ),
        ("Unable to copy data to file: Disk quota exceeded (os error 122)", "quota exceeded"),
        (
            "Could not create local directory: /wh/t: Error: Os { code: 20, kind: "
            'NotADirectory, message: "Not a directory" }',
            "a file stands where a folder of the path of the Delta table /wh/t should be",
        ),
    ],
)
def test_an_unwritable_table_says_why_and_how_to_fix_it(text: str, said: str) -> None:
    import onceflow.load.loader as loader

    error = loader._delta_error("a.parquet", OSError(text), "/wh/t")
    assert str(error).startswith("a.parquet: ") and "/wh/t" in str(error)
    assert said in str(error) and "then load again" in str(error)
    assert error.context.get("environment") is True


def test_a_file_where_the_warehouse_folder_should_be_does_not_use_up_the_files_retries(
    tmp_path: Path,
) -> None:
    """ENOTDIR (`Os { code: 20, kind: NotADirectory }`) was a `Delta write failed` that
    counted against the file: after max_file_retries, moving the file away was not
    enough (`reset-state --failed` was needed too)."""
    make_lake(_lake(tmp_path), files=1, rows=2)
    cfg = make_config(tmp_path)
    (tmp_path / "warehouse").write_text("junk\n")
    for _ in range(cfg.tables[0].load.max_file_retries + 2):
        [result] = load(cfg).results
        assert "a file stands where a folder of the path of the Delta table" in (
            result.error or ""
        ), result
        assert "move that file away" in (result.error or "")
    [record] = open_store(cfg.state_url).files.find(table_uri(tmp_path))
    assert record.status == "failed" and record.retry_count == 0
    (tmp_path / "warehouse").unlink()
    assert done(load(cfg).counts()) == {"loaded": 1}


def _immutable(path: Path, on: bool) -> bool:
    import shutil
    import subprocess

    chattr = shutil.which("chattr")
    if chattr is None:
        return False
    flag = "+i" if on else "-i"
    return subprocess.run([chattr, flag, str(path)], capture_output=True).returncode == 0


def test_an_immutable_table_folder_does_not_use_up_the_files_retries(tmp_path: Path) -> None:
    """EPERM (`chattr +i`, as CIFS and FUSE mounts also answer) counted against the file."""
    lake = _lake(tmp_path)
    write_extracted(lake, orders_batch(0, 5), day=0)
    cfg = make_config(tmp_path)
    assert done(load(cfg).counts()) == {"loaded": 1}
    write_extracted(lake, orders_batch(1, 5), day=1)
    folder = Path(table_uri(tmp_path))
    if not _immutable(folder, True):
        # root and a file system with the flag (ext4, xfs, btrfs); CI has both
        unavailable("chattr +i", OSError("needs root and a file system with the flag"))
    try:
        for _ in range(cfg.tables[0].load.max_file_retries + 2):
            [result] = load(cfg).results
            assert "is not permitted" in (result.error or ""), result
            assert "chattr -i" in (result.error or "")
        [failed] = [
            r
            for r in open_store(cfg.state_url).files.find(table_uri(tmp_path))
            if r.status == "failed"
        ]
        assert failed.retry_count == 0
    finally:
        _immutable(folder, False)
    assert done(load(cfg).counts()) == {"loaded": 1, "skipped": 1}


@pytest.mark.parametrize(
    "strategy",
    [{"strategy": "append"}, {"strategy": "merge", "primary_key": ["id"]}, OVERWRITE],
    ids=["append", "merge", "overwrite"],
)
def test_a_sidecar_whose_record_count_was_edited_fails_its_file_with_the_fix(
    tmp_path: Path, strategy: dict[str, Any]
) -> None:
    """A hand-edited record_count went unnoticed: the checksum it names still matched,
    and the file was loaded. The append fast path reads only the footer; the others read
    the rows."""
    lake = _lake(tmp_path)
    [path] = make_lake(lake, files=1, rows=4)
    marker = sidecar_path(path)
    sidecar = json.loads(marker.read_text("utf-8"))
    marker.write_text(json.dumps({**sidecar, "record_count": 3}), encoding="utf-8")
    cfg = make_config(tmp_path, strategy)
    [result] = load(cfg).results
    assert "its sidecar says 3 rows, the file holds 4: the sidecar was changed after " in (
        result.error or ""
    ), result
    assert "onceflow extract --date 2025-01-01 --tables src.orders --force-reprocess" in (
        result.error or ""
    )
    assert open_table(table_uri(tmp_path)) is None  # nothing loaded
    marker.write_text(json.dumps(sidecar), encoding="utf-8")  # what a re-extraction writes
    assert done(load(cfg).counts()) == {"loaded": 1}
