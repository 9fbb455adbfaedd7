"""Loading extracted files into Delta: exactly once, reruns, bad input, schema, strategies."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from onceflow import warehouse
from onceflow.config import Config
from onceflow.consistency import validate_consistency
from onceflow.lake.discovery import discover_path, discover_table_files
from onceflow.load import config_targets, load, load_status
from onceflow.load.loader import load_table
from onceflow.state import FileEntry, open_store
from onceflow.warehouse import markers
from tests.helpers.cli import run_cli, spawn
from tests.helpers.lake import (
    content_checksum,
    data_version,
    done,
    file_commits,
    lake_ids,
    make_config,
    make_lake,
    orders_batch,
    read_table,
    table_uri,
    write_config,
    write_extracted,
)


def test_exactly_once_append_of_20_files_and_rerun_loads_nothing(tmp_path: Path) -> None:
    paths = make_lake(tmp_path / "lake", files=20, rows=30)
    cfg = make_config(tmp_path)
    first = load(cfg)
    assert first.ok, first.as_dict()
    assert first.counts()["loaded"] == 20
    uri = table_uri(tmp_path)
    assert file_commits(uri) == lake_ids(paths)  # window order, one commit each
    table = read_table(uri)
    assert table.num_rows == 600
    assert len(set(table.column("id").to_pylist())) == 600
    assert {"_source_file", "_load_timestamp", "_batch_id"} <= set(table.column_names)
    dt = DeltaTable(uri)
    version = dt.version()
    assert markers.read_markers(dt).held_ids() == lake_ids(paths)
    # the load ends with a checkpoint, so opening the table does not replay 20 commits
    checkpoints = list((Path(uri) / "_delta_log").glob("*.checkpoint.parquet"))
    assert [p.name for p in checkpoints] == [f"{version:020d}.checkpoint.parquet"]
    again = load(cfg)
    assert again.ok and done(again.counts()) == {"skipped": 20}
    assert DeltaTable(uri).version() == version
    assert validate_consistency(cfg)["consistent"]
    status = load_status(cfg)[0]
    assert status["files"]["completed"] == 20 and status["lake_files"] == 20


def test_new_files_load_after_old_ones_and_only_once(tmp_path: Path) -> None:
    make_lake(tmp_path / "lake", files=3, rows=5)
    cfg = make_config(tmp_path)
    load(cfg)
    write_extracted(tmp_path / "lake", orders_batch(10, 5), day=10)
    out = load(cfg)
    assert out.counts()["loaded"] == 1 and out.counts()["skipped"] == 3
    assert read_table(table_uri(tmp_path)).num_rows == 20


def test_discovery_ignores_temp_and_uncommitted_files(tmp_path: Path) -> None:
    paths = make_lake(tmp_path / "lake", files=3, rows=5)
    (paths[0].parent / (paths[0].name + ".onceflow-tmp-abc")).write_bytes(b"junk")
    paths[1].with_name(paths[1].stem + "_metadata.json").unlink()  # not committed
    found = discover_table_files(str(tmp_path / "lake"), "src", "orders")
    assert [f.path for f in found] == [str(paths[0]), str(paths[2])]


def test_tracker_lost_is_rederived_from_the_delta_log(tmp_path: Path) -> None:
    make_lake(tmp_path / "lake", files=4, rows=5)
    cfg = make_config(tmp_path)
    load(cfg)
    store = open_store(cfg.state_url)
    store.files.forget()
    version = DeltaTable(table_uri(tmp_path)).version()
    again = load(cfg)
    assert again.counts()["loaded"] == 0
    assert DeltaTable(table_uri(tmp_path)).version() == version
    assert store.files.counts()["completed"] == 4


def test_a_tracker_rederived_after_a_reset_is_one_info_line_per_table(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After `reset-state --yes` the next load re-derives every file from the Delta log:
    the documented recovery, one INFO line for the table (it was a WARNING per file,
    5,554 lines after 111 days of 50 tables). A row that disagrees with the table (one
    left pending for a file the table holds) is still a WARNING of its own."""
    make_lake(tmp_path / "lake", files=20, rows=2)
    cfg = make_config(tmp_path)
    assert load(cfg).ok
    store = open_store(cfg.state_url)
    store.files.forget()  # what `reset-state --yes` does to the tracker
    [tgt] = config_targets(cfg)
    [first, *_] = discover_table_files(str(tmp_path / "lake"), "src", "orders")
    store.files.register(
        tgt.uri,
        tgt.key,
        tgt.pipeline,
        [FileEntry(first.file_id, first.path, first.window_start, first.size, None, None)],
    )
    caplog.set_level(logging.INFO, logger="onceflow.load")
    again = load(cfg)
    assert again.ok and again.counts()["loaded"] == 0
    assert store.files.counts()["completed"] == 20
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    rederived = (
        "src.orders: re-derived 19 file(s) from the Delta log: the table holds them and the "
        "tracker had no row for them (a reset or new state store); marked completed"
    )
    disagreed = f"src.orders: {first.file_id}: the table holds it; tracker marked completed"
    assert [m for m in said if "re-derived" in m[1] or "tracker" in m[1]] == [
        ("INFO", rederived),
        ("WARNING", disagreed),
    ]
    assert [level for level, _ in said].count("WARNING") == 1
    assert again.results[0].reconciled == [
        rederived.removeprefix("src.orders: "),
        disagreed.removeprefix("src.orders: "),
    ]


def test_crash_between_commit_and_tracker_update(tmp_path: Path) -> None:
    make_lake(tmp_path / "lake", files=5, rows=10)
    config = write_config(tmp_path)
    crashed = run_cli("load", "-c", str(config), crash_at="after_delta_commit")
    assert crashed.returncode == -9, crashed.stderr
    uri = table_uri(tmp_path)
    assert len(file_commits(uri)) == 1  # committed, tracker not updated
    store = open_store(make_config(tmp_path).state_url)
    assert store.files.counts()["processing"] == 1
    done = run_cli("load", "-c", str(config))
    assert done.returncode == 0, done.stderr
    commits = file_commits(uri)
    assert len(commits) == 5 and len(set(commits)) == 5
    assert read_table(uri).num_rows == 50
    assert validate_consistency(make_config(tmp_path))["consistent"]


def test_two_loaders_at_once_leave_one_commit_per_file(tmp_path: Path) -> None:
    make_lake(tmp_path / "lake", files=10, rows=10)
    config = write_config(tmp_path)
    procs = [spawn("load", "-c", str(config), "--lock-timeout", "120") for _ in range(2)]
    errors = [p.communicate(timeout=240)[1] for p in procs]  # both waited for, always
    assert [p.returncode for p in procs] == [0, 0], errors
    commits = file_commits(table_uri(tmp_path))
    assert len(commits) == 10 and len(set(commits)) == 10
    assert read_table(table_uri(tmp_path)).num_rows == 100


def test_concurrent_loaders_without_lock_recheck_after_conflict(tmp_path: Path) -> None:
    """Two loaders racing on one table (as if a lease were broken): a commit conflict makes
    the loser reload the log, see the file in, and skip it; each file is one commit.

    Whether the racers collide is up to the scheduler, so rounds repeat (a fresh table
    each) until a conflict was logged, a bounded number of times: the test proves that the
    recheck path ran, not only that the outcome happened to be right."""
    import logging

    from onceflow.load.loader import TableLoadResult

    rounds = 8

    class ConflictRecords(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.INFO)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            if "commit conflict" in record.getMessage():
                self.messages.append(record.getMessage())

    def race(root: Path) -> None:
        paths = make_lake(root / "lake", files=8, rows=10)
        cfg = make_config(root)
        tgt = config_targets(cfg)[0]
        files = discover_table_files(str(root / "lake"), "src", "orders")
        errors: list[BaseException] = []
        results: list[TableLoadResult] = []
        together = threading.Barrier(2)

        def run(lock: str) -> None:
            try:
                # each racer has its own state store, so both really try every file
                store = open_store(f"sqlite:///{root / lock}.db")
                token = store.locks.acquire(tgt.lock_name)
                together.wait(timeout=30)
                results.append(load_table(store, tgt, files, token=token, check_lock=lambda: None))
            except BaseException as error:  # pragma: no cover
                errors.append(error)

        threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert all(r.ok for r in results), [r.error for r in results]
        assert file_commits(tgt.uri) == lake_ids(paths)  # one commit per file
        assert read_table(tgt.uri).num_rows == 80
        # each file was loaded by one racer and skipped (already in the log) by the other
        assert sum(r.counts()["loaded"] for r in results) == 8
        assert sum(r.counts()["skipped"] for r in results) == 8

    conflicts = ConflictRecords()
    logger = logging.getLogger("onceflow.load")
    level = logger.level
    logger.addHandler(conflicts)  # on the logger itself: setup_logging stops propagation
    logger.setLevel(logging.INFO)
    try:
        for round_no in range(1, rounds + 1):
            race(tmp_path / f"round{round_no}")
            if conflicts.messages:
                break
    finally:
        logger.removeHandler(conflicts)
        logger.setLevel(level)
    print(f"{len(conflicts.messages)} commit conflict(s) in {round_no} round(s)")
    assert conflicts.messages, f"no commit conflict in {rounds} rounds: recheck never ran"


def _assert_untouched(uri: str, version: int, rows: int) -> None:
    dt = DeltaTable(uri)
    assert data_version(uri) == version  # the settings record after its first load aside
    assert warehouse.snapshot_dataset(dt).count_rows() == rows


def test_corrupt_parquet_fails_clearly_and_table_untouched(tmp_path: Path) -> None:
    paths = make_lake(tmp_path / "lake", files=3, rows=5)
    cfg = make_config(tmp_path)
    load(cfg, "2025-01-02")  # the first two files
    uri = table_uri(tmp_path)
    bad = write_extracted(tmp_path / "lake", orders_batch(5, 5), day=5)
    data = bytearray(bad.read_bytes())
    data[10:60] = b"\x00" * 50
    bad.write_bytes(bytes(data))
    # the sidecar is rewritten to match, so it is the content that is bad
    from onceflow.lake.atomic import file_checksum
    from onceflow.lake.sidecar import read_sidecar, write_sidecar

    meta = read_sidecar(bad)
    assert meta is not None
    write_sidecar(bad, {**meta, "checksum": file_checksum(bad)})
    before = DeltaTable(uri).version()
    out = load(cfg)
    assert not out.ok
    assert out.results[0].counts()["loaded"] == 1  # paths[2] loads, then the corrupt file
    assert "not a readable Parquet file" in (out.results[0].error or "")
    _assert_untouched(uri, before + 1, 15)
    assert paths


def test_checksum_mismatch_fails_clearly_and_table_untouched(tmp_path: Path) -> None:
    paths = make_lake(tmp_path / "lake", files=2, rows=5)
    cfg = make_config(tmp_path)
    load(cfg, "2025-01-01")
    uri = table_uri(tmp_path)
    pq.write_table(orders_batch(1, 5).slice(0, 4), paths[1])  # changed after extraction
    meta = paths[1].with_name(paths[1].stem + "_metadata.json")
    import json

    side = json.loads(meta.read_text())
    side["file_size_bytes"] = paths[1].stat().st_size
    meta.write_text(json.dumps(side))
    out = load(cfg)
    assert not out.ok
    assert "does not match its sidecar" in (out.results[0].error or "")
    _assert_untouched(uri, 0, 5)
    store = open_store(cfg.state_url)
    failed = store.files.find(status="failed")
    assert [f.file_path for f in failed] == [str(paths[1])] and failed[0].retry_count == 1


def test_failed_file_retried_up_to_max_then_later_files_wait(tmp_path: Path) -> None:
    paths = make_lake(tmp_path / "lake", files=3, rows=5)
    cfg = make_config(tmp_path, {"strategy": "append", "max_file_retries": 1})
    good = paths[1].read_bytes()
    paths[1].write_bytes(b"x" * len(good))  # same size, wrong checksum
    assert done(load(cfg).results[0].counts()) == {"loaded": 1, "failed": 1, "waiting": 1}
    assert "does not match" in (load(cfg).results[0].error or "")  # retry 1
    third = load(cfg).results[0]
    assert "gave up after 2 failed attempts" in (third.error or "")
    assert read_table(table_uri(tmp_path)).num_rows == 5  # file 3 waits behind file 2
    paths[1].write_bytes(good)
    store = open_store(cfg.state_url)
    assert store.files.reset_failed() == 1
    final = load(cfg)
    assert final.ok and final.counts()["loaded"] == 2
    assert read_table(table_uri(tmp_path)).num_rows == 15


def test_new_nullable_column_is_added(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_extracted(lake, orders_batch(0, 5), day=0)
    wider = orders_batch(1, 5).append_column("note", pa.array(["n"] * 5))
    write_extracted(lake, wider, day=1)
    cfg = make_config(tmp_path)
    assert load(cfg).ok
    table = read_table(table_uri(tmp_path))
    assert "note" in table.column_names
    assert table.column("note").null_count == 5


def test_type_change_fails_clearly_and_table_untouched(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_extracted(lake, orders_batch(0, 5), day=0)
    changed = orders_batch(1, 5)
    changed = changed.set_column(1, "customer", pa.array(["a"] * 5))
    write_extracted(lake, changed, day=1)
    cfg = make_config(tmp_path)
    out = load(cfg)
    assert not out.ok
    assert "incompatible type change (customer: table has int64, file has string)" in (
        out.results[0].error or ""
    )
    _assert_untouched(table_uri(tmp_path), 0, 5)


@pytest.mark.parametrize(
    ("strategy", "column"),
    [
        ("append", "_source_file"),
        ("merge", "_batch_id"),
        ("scd2", "_load_timestamp"),
        ("overwrite", "_source_file"),
    ],
)
def test_a_source_column_named_like_an_audit_column_fails_its_file_not_overwritten(
    tmp_path: Path, strategy: str, column: str
) -> None:
    lake = tmp_path / "lake"
    write_extracted(lake, orders_batch(0, 5), day=0)
    clash = orders_batch(1, 5).append_column(column, pa.array(["crm"] * 5))
    write_extracted(lake, clash, day=1)
    keyed = {"primary_key": ["id"]} if strategy in ("merge", "scd2") else {}
    cfg = make_config(tmp_path, {"strategy": strategy, **keyed})
    out = load(cfg)
    assert not out.ok
    [result] = out.results
    error = result.error or ""
    assert f"has column(s) '{column}', which onceflow writes on every loaded row" in error
    assert "the table is unchanged. To repair it, rename the column(s) in the extraction" in error
    assert "--force-reprocess" in error
    if strategy == "overwrite":  # the last window is loaded first: nothing is committed
        assert done(result.counts()) == {"failed": 1, "waiting": 1}
        assert not Path(table_uri(tmp_path)).exists()
    else:
        assert done(result.counts()) == {"loaded": 1, "failed": 1}
        _assert_untouched(table_uri(tmp_path), 0, 5)


def test_a_late_file_with_an_audit_column_is_refused_before_any_rewind(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_extracted(lake, orders_batch(1, 5), day=1)
    cfg = make_config(tmp_path, {"strategy": "merge", "primary_key": ["id"]})
    assert load(cfg).ok
    late = orders_batch(0, 5).append_column("_batch_id", pa.array(["b"] * 5))
    write_extracted(lake, late, day=0)
    out = load(cfg)
    [result] = out.results
    assert not out.ok and not result.rewound
    assert "'_batch_id', which onceflow writes on every loaded row" in (result.error or "")
    assert "no rewind" in (result.error or "")
    _assert_untouched(table_uri(tmp_path), 0, 5)


def test_a_standalone_file_with_an_audit_column_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    pq.write_table(pa.table({"id": [1], "_source_file": ["crm"]}), folder / "a.parquet")
    cfg = make_config(tmp_path)
    out = load(cfg, path=str(folder), target="raw/a", strategy="merge", primary_key=["id"])
    assert not out.ok
    error = out.results[0].error or ""
    assert "a.parquet: the file has column(s) '_source_file'" in error
    assert error.endswith("To repair it, rename the column(s) in the file, then load")
    assert not (tmp_path / "warehouse" / "raw" / "a").exists()


def test_missing_primary_key_column_fails_clearly(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_extracted(lake, orders_batch(0, 5), day=0)
    write_extracted(lake, orders_batch(1, 5).drop_columns(["id"]), day=1)
    cfg = make_config(tmp_path, {"strategy": "merge", "primary_key": ["id"]})
    out = load(cfg)
    assert not out.ok
    assert "id" in (out.results[0].error or "")
    _assert_untouched(table_uri(tmp_path), 0, 5)


def test_overwrite_replaces_the_table_atomically(tmp_path: Path) -> None:
    make_lake(tmp_path / "lake", files=3, rows=7)
    cfg = make_config(tmp_path, {"strategy": "overwrite"})
    assert load(cfg).ok
    table = read_table(table_uri(tmp_path))
    assert table.num_rows == 7
    assert set(table.column("id").to_pylist()) == set(range(200_000, 200_007))
    version = DeltaTable(table_uri(tmp_path)).version()
    assert load(cfg).counts()["loaded"] == 0
    assert DeltaTable(table_uri(tmp_path)).version() == version


def test_merge_and_scd2_rerun_creates_no_version(tmp_path: Path) -> None:
    for strategy in ("merge", "scd2"):
        folder = tmp_path / strategy
        lake = folder / "lake"
        base = orders_batch(0, 6)
        write_extracted(lake, base, day=0)
        changed = base.set_column(3, "label", pa.array(["changed"] * 6))
        write_extracted(lake, changed, day=1)
        write_extracted(lake, changed, day=2)  # no change: a commit of its markers only
        cfg = make_config(folder, {"strategy": strategy, "primary_key": ["id"]})
        out = load(cfg)
        assert out.ok, out.as_dict()
        assert out.counts()["unchanged"] == 1, out.as_dict()
        uri = table_uri(folder)
        version = DeltaTable(uri).version()
        assert load(cfg).counts()["loaded"] == 0
        assert DeltaTable(uri).version() == version
        assert validate_consistency(cfg)["consistent"], validate_consistency(cfg)
        rows = read_table(uri).num_rows
        assert rows == (6 if strategy == "merge" else 12)


def _reload_after_losing_the_tracker(cfg: Config, uri: str) -> list[dict[str, Any]]:
    """Forget the tracker (as `reset-state --yes` does) and load again: nothing may change.
    Returns the current rows."""
    before = (DeltaTable(uri).version(), content_checksum(uri))
    open_store(cfg.state_url).files.forget()
    again = load(cfg)
    assert again.ok and again.counts()["loaded"] == 0, again.as_dict()
    assert (DeltaTable(uri).version(), content_checksum(uri)) == before
    return [r for r in read_table(uri).to_pylist() if r.get("_is_current", True)]


def test_unchanged_file_is_in_the_log_so_a_lost_tracker_does_not_reload_it_late(
    tmp_path: Path,
) -> None:
    # day 0 {1: a, 2: b}, day 1 the same (changes nothing), day 2 {2: B}. Were day 1 not
    # in the log, a rebuilt tracker would load it after day 2 and bring back "b".
    for strategy in ("merge", "scd2"):
        folder = tmp_path / strategy
        lake = folder / "lake"
        first = pa.table({"id": pa.array([1, 2], pa.int64()), "label": ["a", "b"]})
        write_extracted(lake, first, day=0)
        write_extracted(lake, first, day=1)
        write_extracted(lake, first.set_column(1, "label", pa.array(["a", "B"])), day=2)
        cfg = make_config(folder, {"strategy": strategy, "primary_key": ["id"]})
        out = load(cfg)
        assert out.ok and out.counts()["unchanged"] == 1, out.as_dict()
        uri = table_uri(folder)
        history = DeltaTable(uri).history()
        applied = [h for h in reversed(history) if h.get("operation") != "SET TBLPROPERTIES"]
        assert [h.get("onceflow.file", "").rsplit("/", 1)[-1] for h in applied] == [
            p.name for p in sorted(lake.rglob("*.parquet"))
        ]
        current = _reload_after_losing_the_tracker(cfg, uri)
        assert {r["id"]: r["label"] for r in current} == {1: "a", 2: "B"}
        assert validate_consistency(cfg)["consistent"], validate_consistency(cfg)


@pytest.mark.parametrize("strategy", ["scd2", "merge"])
def test_a_first_file_with_nothing_to_write_still_puts_the_table_and_its_markers_in_the_log(
    tmp_path: Path, strategy: str
) -> None:
    # day 0 is empty (scd2: a full extract of an empty source) or holds only deletes
    # (merge). Were it not in the log, a rebuilt tracker would load it after day 2: scd2
    # with hard_deletes close would close every key, merge would delete them.
    schema = pa.schema([("id", pa.int64()), ("label", pa.string()), ("gone", pa.bool_())])
    first = pa.table({"id": [1, 2], "label": ["x", "y"], "gone": [True, True]}, schema=schema)
    if strategy == "scd2":
        first = first.slice(0, 0)
    rows = pa.table({"id": [1, 2], "label": ["a", "b"], "gone": [False, False]}, schema=schema)
    lake = tmp_path / "lake"
    for day, table in enumerate([first, rows, rows]):
        write_extracted(lake, table, day=day)
    extra = {"hard_deletes": "close"} if strategy == "scd2" else {"delete_column": "gone"}
    cfg = make_config(tmp_path, {"strategy": strategy, "primary_key": ["id"], **extra})
    assert load(cfg).ok
    uri = table_uri(tmp_path)
    assert len(file_commits(uri)) == 3  # each file is in the log, the first one too
    current = _reload_after_losing_the_tracker(cfg, uri)
    assert sorted(r["id"] for r in current) == [1, 2]


def test_a_deletion_version_carries_the_audit_columns_of_the_file_that_found_the_key_gone(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    rows = pa.table({"id": [1, 2, 3], "label": ["a", "b", "c"]})
    for day, table in enumerate([rows, rows.slice(0, 2)]):  # key 3 is gone on day 1
        write_extracted(lake, table, day=day)
    load_cfg = {"strategy": "scd2", "primary_key": ["id"], "hard_deletes": "new_record"}
    cfg = make_config(tmp_path, load_cfg)
    assert load(cfg).ok
    [day0, day1] = discover_table_files(str(lake), "src", "orders")
    [deletion] = [r for r in read_table(table_uri(tmp_path)).to_pylist() if r["_is_deleted"]]
    assert deletion["id"] == 3 and deletion["_is_current"]
    assert deletion["_source_file"] == day1.file_id
    assert deletion["_batch_id"] == markers.batch_id_for(day1.file_id, day1.checksum)
    assert deletion["_batch_id"] != markers.batch_id_for(day0.file_id, day0.checksum)


def _keyed(ids: list[int], values: list[str], **more: list[Any]) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "v": values, **more})


def test_a_merge_reports_the_rows_it_inserted_updated_and_deleted(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_extracted(lake, _keyed([1, 2, 3], ["a", "b", "c"], gone=[False] * 3), day=0)
    cfg = make_config(
        tmp_path, {"strategy": "merge", "primary_key": ["id"], "delete_column": "gone"}
    )
    first = load(cfg)
    assert first.results[0].changes() == {"inserted": 3, "updated": 0, "deleted": 0, "closed": 0}
    changes = _keyed([1, 2, 3, 4], ["a", "B", "c", "d"], gone=[False, False, True, False])
    write_extracted(lake, changes, day=1)
    out = load(cfg)
    [result] = out.results
    assert out.ok and result.rows == 4  # the file's rows, not the table's changes
    assert result.changes() == {"inserted": 1, "updated": 1, "deleted": 1, "closed": 0}
    assert result.rows_note() == "4 rows read; 1 inserted, 1 updated, 1 deleted"
    data = out.as_dict()
    assert data["changes"] == data["tables"][0]["changes"] == result.changes()
    [applied] = [f for f in data["tables"][0]["files"] if f["action"] == "loaded"]
    assert (applied["rows"], applied["inserted"], applied["updated"], applied["deleted"]) == (
        4,
        1,
        1,
        1,
    )
    write_extracted(lake, changes, day=2)  # the same rows again: read, nothing changes
    again = load(cfg)
    assert done(again.counts()) == {"skipped": 2, "unchanged": 1}
    assert again.results[0].rows_note() == "4 rows read; no row changed"


def test_an_scd2_load_reports_the_versions_it_closed_for_a_deleted_key(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_extracted(lake, _keyed([1, 2, 3], ["a", "b", "c"]), day=0)
    cfg = make_config(
        tmp_path, {"strategy": "scd2", "primary_key": ["id"], "hard_deletes": "close"}
    )
    assert load(cfg).ok
    write_extracted(lake, _keyed([1, 2], ["a", "b"]), day=1)  # key 3 deleted at the source
    out = load(cfg)
    [result] = out.results
    assert out.ok and done(result.counts()) == {"loaded": 1, "skipped": 1}
    assert result.changes() == {"inserted": 0, "updated": 0, "deleted": 0, "closed": 1}
    assert result.rows_note() == "2 rows read; 1 closed"
    write_extracted(lake, _keyed([1, 2, 4], ["a", "B", "d"]), day=2)
    changed = load(cfg).results[0]
    assert changed.changes() == {"inserted": 2, "updated": 0, "deleted": 0, "closed": 1}


def test_an_scd2_new_record_load_reports_its_deletion_versions_as_deleted(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    write_extracted(lake, _keyed([1, 2, 3], ["a", "b", "c"]), day=0)
    write_extracted(lake, _keyed([1, 2], ["a", "B"]), day=1)  # 2 changed, 3 deleted
    cfg = write_config(
        tmp_path, {"strategy": "scd2", "primary_key": ["id"], "hard_deletes": "new_record"}
    )
    out = run_cli("load", "--config", str(cfg), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    [day1] = [f for f in data["tables"][0]["files"] if f["file_id"].endswith("_20250102.parquet")]
    # key 2's old version and key 3's are closed; key 3 gets a deletion version
    assert (day1["inserted"], day1["closed"], day1["deleted"]) == (1, 2, 1)
    assert data["changes"] == {"inserted": 4, "updated": 0, "deleted": 1, "closed": 2}
    deletions = [r for r in read_table(table_uri(tmp_path)).to_pylist() if r["_is_deleted"]]
    assert [r["id"] for r in deletions] == [3]
    write_extracted(lake, _keyed([1, 2], ["a", "B"]), day=2)  # still gone: nothing more
    again = run_cli("load", "--config", str(cfg))
    assert again.returncode == 0, again.stderr
    assert "(2 rows read; no row changed)" in again.stdout
    write_extracted(lake, _keyed([1], ["a"]), day=3)  # key 2 gone too
    shown = run_cli("load", "--config", str(cfg))
    assert "(1 rows read; 1 deleted, 1 closed)" in shown.stdout, shown.stdout


def test_standalone_folder_load(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    for i in range(3):
        pq.write_table(orders_batch(i, 4), folder / f"part{i}.parquet")
    found = discover_path(str(folder))
    assert len(found) == 3 and all(f.checksum for f in found)
    cfg = make_config(tmp_path)
    out = load(cfg, path=str(folder / "*.parquet"), target="standalone/t")
    assert out.ok and out.counts()["loaded"] == 3
    uri = warehouse.table_uri(str(tmp_path / "warehouse"), "standalone/t")
    assert read_table(uri).num_rows == 12
    assert load(cfg, path=str(folder), target="standalone/t").counts()["loaded"] == 0


def _drop(folder: Path, name: str, tag: str, rows: int = 10) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": list(range(rows)), "tag": [tag] * rows}), folder / name)
    return folder / name


def test_standalone_same_name_from_another_folder_is_refused_not_replaced(
    tmp_path: Path,
) -> None:
    cfg = make_config(tmp_path)
    uri = warehouse.table_uri(str(tmp_path / "warehouse"), "raw/x")

    def load_x(folder: Path) -> Any:
        return load(cfg, path=str(folder), target="raw/x", strategy="append")

    first = _drop(tmp_path / "dropA", "e0.parquet", "A")
    assert load_x(tmp_path / "dropA").counts()["loaded"] == 1
    version = DeltaTable(uri).version()

    other = _drop(tmp_path / "dropB", "e0.parquet", "B")
    _drop(tmp_path / "dropB", "e1.parquet", "B1")
    for _again in range(2):  # nothing recorded: a rerun refuses it the same way
        out = load_x(tmp_path / "dropB")
        assert not out.ok
        assert done(out.counts()) == {"failed": 1, "waiting": 1}, out.as_dict()
        [result] = out.results
        assert str(other) in result.error and str(first) in result.error
        assert "unique names" in result.error and "parent folder" in result.error
        assert "1 other file(s) of this load wait; nothing committed" in result.error
        assert result.error_types[0] == "LoadError"
        assert DeltaTable(uri).version() == version
        assert read_table(uri).column("tag").to_pylist() == ["A"] * 10
        store = open_store(cfg.state_url)
        rec = store.files.get(uri, "e0.parquet")
        assert rec is not None and rec.file_path == str(first) and rec.status == "completed"
        assert store.files.get(uri, "e1.parquet") is None

    # the fix the message names: a unique name, and dropB loads beside dropA
    other.rename(other.with_name("e0_b.parquet"))
    assert done(load_x(tmp_path / "dropB").counts()) == {"loaded": 2}
    assert sorted(set(read_table(uri).column("tag").to_pylist())) == ["A", "B", "B1"]

    # the same content under the same name elsewhere (a copy): held, nothing to refuse
    _drop(tmp_path / "copyA", "e0.parquet", "A")
    copied = load_x(tmp_path / "copyA")
    assert copied.ok and done(copied.counts()) == {"skipped": 1}


def test_a_redelivered_standalone_file_replaces_its_rows_not_a_namesake_in_a_subfolder(
    tmp_path: Path,
) -> None:
    cfg = make_config(tmp_path)
    uri = warehouse.table_uri(str(tmp_path / "warehouse"), "raw/ev")
    drop = tmp_path / "drop"
    _drop(drop, "e0.parquet", "top", rows=2)
    _drop(drop / "sub", "e0.parquet", "sub", rows=2)
    _drop(drop, "xe0.parquet", "x", rows=2)  # a name the others' end with
    assert load(cfg, path=str(drop), target="raw/ev", strategy="append").ok
    _drop(drop, "e0.parquet", "top2", rows=3)
    again = load(cfg, path=str(drop), target="raw/ev", strategy="append")
    assert again.ok and done(again.counts()) == {"replaced": 1, "skipped": 2}
    rows = read_table(uri)
    files, tags = rows.column("_source_file").to_pylist(), rows.column("tag").to_pylist()
    tagged = sorted(zip(files, tags, strict=True))
    assert tagged == [
        *[("e0.parquet", "top2")] * 3,
        *[("sub/e0.parquet", "sub")] * 2,
        *[("xe0.parquet", "x")] * 2,
    ]


def test_standalone_moved_folder_keeps_its_identities(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    uri = warehouse.table_uri(str(tmp_path / "warehouse"), "raw/x")
    _drop(tmp_path / "dropA", "e0.parquet", "A")
    assert load(cfg, path=str(tmp_path / "dropA"), target="raw/x").ok
    moved = tmp_path / "moved"
    (tmp_path / "dropA").rename(moved)
    again = load(cfg, path=str(moved), target="raw/x")
    assert again.ok and done(again.counts()) == {"skipped": 1}
    # the earlier path is gone: a new content there is the moved file re-delivered
    _drop(moved, "e0.parquet", "A2", rows=4)
    redelivered = load(cfg, path=str(moved), target="raw/x")
    assert redelivered.ok and done(redelivered.counts()) == {"replaced": 1}
    assert read_table(uri).column("tag").to_pylist() == ["A2"] * 4


def _version(folder: Path, name: str, v: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": [1], "v": [v]}), folder / name)


@pytest.mark.parametrize("strategy", ["merge", "scd2", "overwrite"])
def test_standalone_files_apply_in_name_order_with_numbers_compared_as_numbers(
    tmp_path: Path, strategy: str
) -> None:
    cfg = make_config(tmp_path)
    uri = warehouse.table_uri(str(tmp_path / "warehouse"), "dim/x")
    keyed = {"primary_key": ["id"]} if strategy != "overwrite" else {}

    def load_drop() -> Any:
        return load(cfg, path=str(tmp_path / "drop"), target="dim/x", strategy=strategy, **keyed)

    def current() -> list[str]:
        rows = read_table(uri).to_pylist()
        return [r["v"] for r in rows if r.get("_is_current", True)]

    _version(tmp_path / "drop", "batch_9.parquet", "older")
    assert load_drop().ok
    _version(tmp_path / "drop", "batch_10.parquet", "newer")
    out = load_drop()
    [result] = out.results
    assert out.ok and not result.rewound and not result.warnings
    assert done(result.counts()) == {"loaded": 1, "skipped": 1}
    assert current() == ["newer"]


@pytest.mark.parametrize("strategy", ["merge", "overwrite"])
def test_a_new_standalone_file_that_sorts_before_held_ones_is_warned_of(
    tmp_path: Path, strategy: str
) -> None:
    cfg = make_config(tmp_path)
    uri = warehouse.table_uri(str(tmp_path / "warehouse"), "dim/x")
    keyed = {"primary_key": ["id"]} if strategy == "merge" else {}
    drop = tmp_path / "drop"
    _version(drop, "batch_9.parquet", "b9")
    _version(drop, "batch_10.parquet", "b10")
    assert load(cfg, path=str(drop), target="dim/x", strategy=strategy, **keyed).ok
    _version(drop, "a.parquet", "delivered last")
    out = load(cfg, path=str(drop), target="dim/x", strategy=strategy, **keyed)
    [result] = out.results
    assert out.ok
    [warning] = result.warnings
    assert warning.startswith("a.parquet: a new")
    assert "sorts before" in warning and "batch_10.parquet" in warning
    assert "name order" in warning and "rename it to sort after them" in warning
    assert warning in out.as_dict()["tables"][0]["warnings"]
    # what a clean load of the folder gives: the last file by name wins
    assert read_table(uri).column("v").to_pylist() == ["b10"]
    if strategy == "merge":
        assert sorted(result.rewound) == ["batch_10.parquet", "batch_9.parquet"]
        clean = make_config(tmp_path / "clean")
        again = load(clean, path=str(drop), target="dim/x", strategy=strategy, **keyed)
        assert again.ok and not again.results[0].warnings
        fresh = warehouse.table_uri(str(tmp_path / "clean" / "warehouse"), "dim/x")
        assert read_table(fresh).column("v").to_pylist() == ["b10"]
    else:
        assert done(result.counts()) == {"superseded": 1, "skipped": 2}
    rerun = load(cfg, path=str(drop), target="dim/x", strategy=strategy, **keyed)
    assert rerun.ok and not rerun.results[0].warnings  # said once, when it happened


def test_content_checksum_is_stable_across_clean_runs(tmp_path: Path) -> None:
    for name in ("a", "b"):
        make_lake(tmp_path / name / "lake", files=3, rows=5)
        assert load(make_config(tmp_path / name)).ok
    assert content_checksum(
        table_uri(tmp_path / "a"), exclude=("_load_timestamp", "_source_file")
    ) == content_checksum(table_uri(tmp_path / "b"), exclude=("_load_timestamp", "_source_file"))


@pytest.fixture(autouse=True)
def _no_crash_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ONCEFLOW_CRASH_AT", raising=False)


def test_load_on_each_state_store(tmp_path: Path, store: object) -> None:
    """The loader on SQLite and PostgreSQL state: exactly once, then a no-op rerun."""
    make_lake(tmp_path / "lake", files=5, rows=5)
    cfg = make_config(tmp_path)
    assert load(cfg, store=store).counts()["loaded"] == 5  # type: ignore[arg-type]
    again = load(cfg, store=store)  # type: ignore[arg-type]
    assert again.counts()["skipped"] == 5 and again.counts()["loaded"] == 0
    assert validate_consistency(cfg, store=store)["consistent"]  # type: ignore[arg-type]
    assert len(file_commits(table_uri(tmp_path))) == 5


def test_a_delta_rs_panic_fails_its_file_not_the_whole_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PyO3 raises a Rust panic as a BaseException, which `except Exception` lets through:
    # it must fail the file (the table unchanged) instead of ending the process
    from onceflow.load import loader

    panic = type("PanicException", (BaseException,), {"__module__": "pyo3_runtime"})
    make_lake(tmp_path / "lake", files=2, rows=5)
    cfg = make_config(tmp_path)

    def panics(*args: Any, **kwargs: Any) -> Any:
        raise panic("called `Option::unwrap()` on a `None` value")

    monkeypatch.setattr(loader, "_apply", panics)
    out = load(cfg)
    assert not out.ok and done(out.counts()) == {"failed": 1, "waiting": 1}
    [table] = out.results
    assert table.error is not None and "Delta write failed (PanicException: called" in table.error
    assert table.error.endswith("(1 later file(s) of the table wait)")
    monkeypatch.undo()
    assert done(load(cfg).counts()) == {"loaded": 2}  # nothing of it was committed


def test_an_error_no_step_foresaw_fails_its_file_and_the_load_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a library error on a type no one mapped (pyarrow's ArrowInvalid) used to end the
    # whole command mid-run: it fails its file, by name, and nothing of it is committed
    from onceflow.load import loader

    make_lake(tmp_path / "lake", files=2, rows=5)
    cfg = make_config(tmp_path)

    def invalid(*args: Any, **kwargs: Any) -> Any:
        raise pa.ArrowInvalid("Invalid storage type for UuidType: binary")

    monkeypatch.setattr(loader, "conform_batch", invalid)
    out = load(cfg)
    [table] = out.results
    assert not out.ok and done(out.counts()) == {"failed": 1, "waiting": 1}
    assert table.error is not None
    assert "unexpected ArrowInvalid: Invalid storage type for UuidType: binary" in table.error
    monkeypatch.undo()
    assert done(load(cfg).counts()) == {"loaded": 2}
