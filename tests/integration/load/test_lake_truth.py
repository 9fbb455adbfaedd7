"""A table always equals a clean, in-order load of the lake's current files (issue 8).

One test per case found failing on the old main: re-extracted windows, damaged files,
late windows, moved and copied projects, two pipelines on one state store, two tables
into one target.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from onceflow.config import config_from_dict, load_config
from onceflow.consistency import fix_inconsistencies, validate_consistency
from onceflow.errors import ConfigError
from onceflow.lake import discover_path, discover_table_files
from onceflow.load import config_targets, load, load_status
from onceflow.load.append import apply_append
from onceflow.state import ExtractionEntry, open_store
from onceflow.warehouse import open_table
from onceflow.warehouse.markers import commit_properties
from onceflow.windows import window_for
from tests.helpers.lake import (
    START,
    clean_load_checksum,
    config_dict,
    content_checksum,
    done,
    make_config,
    make_lake,
    orders_batch,
    read_table,
    table_uri,
    write_extracted,
)
from tests.helpers.servers import pg_state_url, unique

SCD2 = {"strategy": "scd2", "primary_key": ["id"]}
MERGE = {"strategy": "merge", "primary_key": ["id"]}


def dims(day: int, *, relabel: str = "") -> pa.Table:
    """A dimension's full extract on `day`: keys 0..5, one changing label per day."""
    ids = list(range(6))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "label": [f"k{i}-v{day if i == day % 6 else 0}{relabel}" for i in ids],
        }
    )


def _kinds(cfg: Any) -> list[str]:
    return sorted(i["kind"] for i in validate_consistency(cfg)["issues"])


# -- 1. a re-extracted window reaches the table ---------------------------------------------


def test_a_reextracted_append_window_replaces_its_rows_in_one_commit(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    make_lake(lake, files=3, rows=5)
    cfg = make_config(tmp_path)
    assert load(cfg).ok
    version = open_table(table_uri(tmp_path)).version()
    # re-extraction of day 1: more rows, other values
    write_extracted(lake, orders_batch(1, 7).set_column(3, "label", pa.array(["new"] * 7)), day=1)
    assert _kinds(cfg) == ["lake_file_changed"]
    summary = load(cfg)
    assert summary.ok and done(summary.counts()) == {"replaced": 1, "skipped": 2}
    assert open_table(table_uri(tmp_path)).version() == version + 1  # one commit
    table = read_table(table_uri(tmp_path))
    assert table.num_rows == 17
    assert sorted(table.filter(pa.compute.equal(table["label"], "new"))["id"].to_pylist()) == list(
        range(100_000, 100_007)
    )
    assert content_checksum(table_uri(tmp_path)) == clean_load_checksum(tmp_path, lake, {})
    assert _kinds(cfg) == []


@pytest.mark.parametrize("strategy", [SCD2, MERGE], ids=["scd2", "merge"])
def test_a_reextracted_window_of_an_ordered_table_is_replayed_in_window_order(
    tmp_path: Path, strategy: dict[str, Any]
) -> None:
    lake = tmp_path / "lake"
    for day in range(4):
        write_extracted(lake, dims(day), day=day)
    cfg = make_config(tmp_path, strategy)
    assert load(cfg).ok
    write_extracted(lake, dims(1, relabel="-fixed"), day=1)
    summary = load(cfg)
    assert summary.ok, summary.as_dict()
    result = summary.results[0]
    assert len(result.rewound) == 3  # days 1, 2 and 3 were taken back and applied again
    assert done(result.counts()) == {"replayed": 3, "skipped": 1}
    assert content_checksum(table_uri(tmp_path)) == clean_load_checksum(tmp_path, lake, strategy)
    assert _kinds(cfg) == []


def test_a_file_rewritten_in_place_in_path_mode_is_replaced(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    for n in range(3):
        pq.write_table(orders_batch(n, 4), drop / f"part-{n}.parquet")
    cfg = config_from_dict(config_dict(tmp_path), base_dir=str(tmp_path))
    assert load(cfg, path=str(drop), target="raw/events").ok
    pq.write_table(orders_batch(9, 6), drop / "part-1.parquet")
    again = load(cfg, path=str(drop), target="raw/events")
    assert again.ok and done(again.counts()) == {"replaced": 1, "skipped": 2}
    ids = sorted(read_table(str(tmp_path / "warehouse" / "raw" / "events"))["id"].to_pylist())
    assert ids == sorted([*range(0, 4), *range(900_000, 900_006), *range(200_000, 200_004)])


# -- 2. a committed file that cannot be loaded fails by name ------------------------------------


def test_a_truncated_committed_file_fails_by_name_and_its_reextraction_repairs_it(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    paths = make_lake(lake, files=3, rows=5)
    cfg = make_config(tmp_path)
    with paths[1].open("r+b") as handle:
        handle.truncate(100)
    summary = load(cfg)
    assert not summary.ok  # a non-zero exit
    result = summary.results[0]
    assert "src/orders/202501/02/p_20250102.parquet" in (result.error or "")
    assert "differs from its sidecar" in (result.error or "")
    # day 2 waits behind it, counted and listed as waiting
    assert done(result.counts()) == {"loaded": 1, "failed": 1, "waiting": 1}
    status = load_status(cfg)[0]
    assert status["damaged_files"][0]["file"] == "src/orders/202501/02/p_20250102.parquet"
    assert "damaged_lake_file" in _kinds(cfg)
    write_extracted(lake, orders_batch(1, 5), day=1)  # re-extraction
    repaired = load(cfg)
    assert repaired.ok and done(repaired.counts()) == {"loaded": 2, "skipped": 1}
    assert read_table(table_uri(tmp_path)).num_rows == 15


def test_a_committed_window_whose_data_file_was_deleted_fails_by_name(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    paths = make_lake(lake, files=3, rows=5)
    cfg = make_config(tmp_path)
    paths[1].unlink()  # its sidecar stays: the window is committed
    summary = load(cfg)
    assert not summary.ok  # a non-zero exit, not a silent skip
    result = summary.results[0]
    gone = "src/orders/202501/02/p_20250102.parquet"
    assert f"{gone}: data file missing" in (result.error or "")
    assert "put the file back" in (result.error or "")
    # day 3 waits behind it, counted and listed as waiting
    assert done(result.counts()) == {"loaded": 1, "failed": 1, "waiting": 1}
    failed = [f for f in result.files if f.action == "failed"]
    assert [f.file_id for f in failed] == [gone]
    assert load_status(cfg)[0]["damaged_files"][0]["file"] == gone
    assert "damaged_lake_file" in _kinds(cfg)
    write_extracted(lake, orders_batch(1, 5), day=1)  # re-extraction
    repaired = load(cfg)
    assert repaired.ok and done(repaired.counts()) == {"loaded": 2, "skipped": 1}
    assert read_table(table_uri(tmp_path)).num_rows == 15


@pytest.mark.parametrize("strategy", [{}, SCD2, {"strategy": "overwrite"}])
def test_a_loaded_file_whose_data_file_was_deleted_is_a_warning_not_a_failure(
    tmp_path: Path, strategy: dict[str, Any]
) -> None:
    lake = tmp_path / "lake"
    paths = [write_extracted(lake, dims(d), day=d) for d in range(3)]
    cfg = make_config(tmp_path, strategy)
    assert load(cfg).ok
    before = content_checksum(table_uri(tmp_path))
    paths[2].unlink()  # the table holds it; the lake lost its copy
    summary = load(cfg)
    result = summary.results[0]
    # the table is right and nothing waits: later windows still load on top of it
    assert summary.ok and done(result.counts()) == {"skipped": 3}
    [warning] = result.warnings
    assert warning.startswith("src/orders/202501/03/p_20250103.parquet: the table holds it")
    assert "a rebuild from the lake" in warning
    assert content_checksum(table_uri(tmp_path)) == before
    assert "data file missing" in load_status(cfg)[0]["damaged_files"][0]["problem"]
    assert _kinds(cfg) == ["held_file_gone"]


def test_a_loaded_file_that_lost_its_sidecar_is_inconsistent_at_once_unless_a_run_is_live(
    tmp_path: Path,
) -> None:
    from onceflow.state import Lease

    lake = tmp_path / "lake"
    paths = make_lake(lake, files=2, rows=5)
    cfg = make_config(tmp_path)
    assert load(cfg).ok
    paths[1].with_name(paths[1].stem + "_metadata.json").unlink()
    # younger than the safe age, but the table holds it and no extraction is running:
    # not an extraction in progress, a loaded file whose commit marker is gone
    report = validate_consistency(cfg)
    assert not report["consistent"]
    [issue] = [i for i in report["issues"] if i["kind"] == "uncommitted_lake_file"]
    assert issue["file_id"] == "src/orders/202501/02/p_20250102.parquet"
    assert "the table holds it" in issue["detail"]
    # while an extraction holds the pipeline lock, it may be between its two renames
    with Lease(open_store(cfg.state_url), cfg.pipeline_lock_name):
        assert validate_consistency(cfg)["consistent"]


# -- 3. a late window is brought into place -----------------------------------------------------


def test_a_late_window_of_a_business_time_scd2_table_is_replayed_into_place(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    strategy = {**SCD2, "validity_column": "updated_at"}

    def day_file(day: int) -> pa.Table:
        stamp = pa.array([window_for(START, "UTC").start.replace(day=day + 1)] * 6)
        return dims(day).append_column("updated_at", stamp)

    write_extracted(lake, day_file(0), day=0)
    write_extracted(lake, day_file(2), day=2)
    cfg = make_config(tmp_path, strategy)
    assert load(cfg).ok
    write_extracted(lake, day_file(1), day=1)  # the missed day of a backfill
    summary = load(cfg)
    assert summary.ok, summary.as_dict()
    assert done(summary.results[0].counts()) == {"replayed": 1, "loaded": 1, "skipped": 1}
    assert content_checksum(table_uri(tmp_path)) == clean_load_checksum(tmp_path, lake, strategy)


def test_a_late_append_window_loads_and_the_table_equals_an_in_order_load(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    write_extracted(lake, orders_batch(0, 3), day=0)
    write_extracted(lake, orders_batch(2, 3), day=2)
    cfg = make_config(tmp_path)
    assert load(cfg).ok
    write_extracted(lake, orders_batch(1, 3), day=1)
    assert done(load(cfg).counts()) == {"loaded": 1, "skipped": 2}
    assert content_checksum(table_uri(tmp_path)) == clean_load_checksum(tmp_path, lake, {})


def test_an_ordered_table_waits_for_an_earlier_window_whose_extraction_failed(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    write_extracted(lake, dims(0), day=0)
    write_extracted(lake, dims(2), day=2)
    cfg = make_config(tmp_path, SCD2)
    store = open_store(cfg.state_url)
    day1 = START.replace(day=2)
    window = window_for(day1, "UTC").iso()
    store.runs.begin("p_20250102", "p", day1.isoformat(), window)
    store.extractions.ensure(
        "p_20250102", [ExtractionEntry("src.orders", "src", "orders", "full", *window)]
    )
    store.extractions.fail("p_20250102", "src.orders", "source down")
    summary = load(cfg)
    assert not summary.ok
    result = summary.results[0]
    assert done(result.counts()) == {"loaded": 1, "waiting": 1}
    assert "p_20250102" in (result.waiting or "") and "failed" in (result.waiting or "")
    assert "p_20250102" in (load_status(cfg)[0]["waiting"] or "")
    # the window is extracted at last: the waiting file loads after it, no rewind needed
    write_extracted(lake, dims(1), day=1)
    later = load(cfg)
    assert later.ok and done(later.counts()) == {"loaded": 2, "skipped": 1}
    assert later.results[0].rewound == []
    assert content_checksum(table_uri(tmp_path)) == clean_load_checksum(tmp_path, lake, SCD2)


# -- 5. identity: a moved or copied project loads nothing twice ---------------------------------


def _relative_project(root: Path) -> Path:
    data = config_dict(root)
    data.update(state="sqlite:///.onceflow/state.db", lake="./lake", warehouse="./warehouse")
    config = root / "onceflow.yml"
    root.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    make_lake(root / "lake", files=3, rows=4)
    return config


def test_a_moved_or_copied_project_loads_nothing_twice(tmp_path: Path) -> None:
    config = _relative_project(tmp_path / "a")
    assert load(load_config(config)).ok
    shutil.move(str(tmp_path / "a"), str(tmp_path / "moved"))
    moved = load_config(tmp_path / "moved" / "onceflow.yml")
    again = load(moved)
    assert again.ok and done(again.counts()) == {"skipped": 3}
    assert read_table(table_uri(tmp_path / "moved")).num_rows == 12
    assert _kinds(moved) == ["tracked_table_gone"]  # rows of the old location
    assert fix_inconsistencies(moved)["consistent"]
    shutil.copytree(tmp_path / "moved", tmp_path / "copy")
    copied = load_config(tmp_path / "copy" / "onceflow.yml")
    make_lake(tmp_path / "copy" / "lake", files=4, rows=4)  # one new day in the copy
    summary = load(copied)
    assert summary.ok and done(summary.counts()) == {"loaded": 1, "skipped": 3}
    assert read_table(table_uri(tmp_path / "copy")).num_rows == 16
    assert read_table(table_uri(tmp_path / "moved")).num_rows == 12


def test_a_table_holding_one_files_rows_twice_is_reported_and_repaired(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    make_lake(lake, files=2, rows=4)
    cfg = make_config(tmp_path)
    assert load(cfg).ok
    # as the old loader did after a move: the same file again, under its absolute path
    [first, _] = discover_table_files(str(lake), "src", "orders")
    dt = open_table(table_uri(tmp_path))
    apply_append(
        dt,
        pq.read_table(first.path),
        source_file=f"/elsewhere/lake/{first.file_id}",
        load_time=window_for(START, "UTC").end,
        batch_id="old-copy",
        commit_properties=commit_properties(),
    )
    assert read_table(table_uri(tmp_path)).num_rows == 12
    assert _kinds(cfg) == ["file_loaded_twice"]
    fixed = fix_inconsistencies(cfg)
    assert fixed["consistent"], fixed
    assert read_table(table_uri(tmp_path)).num_rows == 8
    assert content_checksum(table_uri(tmp_path)) == clean_load_checksum(tmp_path, lake, {})


# -- 6. two pipelines, two projects, one state store --------------------------------------------


def test_two_pipelines_with_the_same_table_names_share_one_postgresql_store(
    tmp_path: Path, pg_admin: Any
) -> None:
    schema = unique("of_two")
    pg_admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        configs = []
        for name in ("a", "b"):
            root = tmp_path / name
            data = config_dict(root, state=pg_state_url(schema))
            data["pipeline"] = name
            make_lake(root / "lake", files=3 if name == "a" else 2, rows=4, pipeline=name)
            configs.append(config_from_dict(data, base_dir=str(root)))
        results: dict[str, Any] = {}
        together = threading.Barrier(2)

        def run(cfg: Any) -> None:
            together.wait(timeout=30)
            results[cfg.pipeline] = load(cfg, lock_timeout=0)

        threads = [threading.Thread(target=run, args=(cfg,)) for cfg in configs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results["a"].ok and results["b"].ok, {k: v.as_dict() for k, v in results.items()}
        assert read_table(table_uri(tmp_path / "a")).num_rows == 12
        assert read_table(table_uri(tmp_path / "b")).num_rows == 8
        store = open_store(configs[0].state_url)
        assert {r.pipeline for r in store.files.find()} == {"a", "b"}
        for cfg, files in zip(configs, (3, 2), strict=True):
            assert load_status(cfg)[0]["files"]["completed"] == files
            assert validate_consistency(cfg)["consistent"]
        locks = {t.lock_name for cfg in configs for t in config_targets(cfg)}
        assert len(locks) == 2
        store.close()
    finally:
        pg_admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


# -- 7. two tables of one config into one Delta target ------------------------------------------


def test_two_tables_loading_into_one_target_are_refused(tmp_path: Path) -> None:
    data = config_dict(tmp_path)
    data["tables"] = [
        {"source": "src", "table": "orders", "load": {"target": "shared/t"}},
        {"source": "src", "table": "refunds", "load": {"target": "shared/t"}},
    ]
    with pytest.raises(ConfigError, match=r"tables\[1\]\.load\.target: .*same Delta table"):
        config_from_dict(data, base_dir=str(tmp_path))
    data["tables"][1]["load"] = {"target": str(tmp_path / "warehouse" / "shared" / "t")}
    with pytest.raises(ConfigError, match="same Delta table"):
        config_from_dict(data, base_dir=str(tmp_path))


def test_discover_path_identities_are_relative_to_the_folder(tmp_path: Path) -> None:
    (tmp_path / "drop" / "x").mkdir(parents=True)
    pq.write_table(orders_batch(0, 1), tmp_path / "drop" / "x" / "a.parquet")
    [found] = discover_path(str(tmp_path / "drop"))
    assert found.file_id == "x/a.parquet"
    [globbed] = discover_path(str(tmp_path / "drop" / "*" / "*.parquet"))
    assert globbed.file_id == "x/a.parquet"
