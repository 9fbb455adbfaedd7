"""The load commands through the real CLI: run (extract + load) under the pipeline lock,
validate-consistency / fix-inconsistencies, force-unlock, optimize."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

from onceflow.demo import init_project
from onceflow.lake import sidecar_path
from onceflow.state import FileEntry, open_store
from tests.helpers.cli import run_cli
from tests.helpers.lake import (
    make_config,
    make_lake,
    orders_batch,
    read_table,
    table_uri,
    write_config,
    write_extracted,
)


def test_run_extracts_then_loads_and_a_second_run_waits_for_the_lock(tmp_path: Path) -> None:
    init_project(tmp_path / "demo")
    demo = tmp_path / "demo"
    done = run_cli("run", "--date", "2025-01-10", "--json", cwd=demo)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["load"]["counts"]["loaded"] == 2
    # version 0 holds the window, 1 records the table's settings (onceflow.load.settings)
    assert DeltaTable(str(demo / "warehouse" / "shop" / "orders")).version() == 1
    again = run_cli("run", "--date", "2025-01-10", "--json", cwd=demo)
    assert json.loads(again.stdout)["load"]["counts"]["loaded"] == 0
    # hold the pipeline lock from this (live) process: a run waits, then names the holder
    store = open_store(f"sqlite:///{demo / '.onceflow' / 'state.db'}")
    token = store.locks.acquire("pipeline:demo")
    started = time.monotonic()
    blocked = run_cli("run", "--date", "2025-01-10", "--lock-timeout", "1.5", cwd=demo)
    assert blocked.returncode == 1
    assert time.monotonic() - started >= 1.5
    assert f"held by pid {os.getpid()}" in blocked.stderr
    # one line while it waits (naming whom for), then one clear error line
    wait, error = blocked.stderr.splitlines()
    assert f"waiting up to 1.5 s for lock 'pipeline:demo' held by pid {os.getpid()}" in wait
    assert error.startswith("error: ")
    shown = run_cli("force-unlock", cwd=demo, stdin="n\n")
    assert f"pid {os.getpid()}" in shown.stdout and "nothing released" in shown.stdout
    assert store.locks.holds("pipeline:demo", token)
    released = run_cli("force-unlock", "--yes", cwd=demo)
    assert "released pipeline:demo" in released.stdout
    assert not store.locks.holds("pipeline:demo", token)
    assert run_cli("run", "--date", "2025-01-10", cwd=demo).returncode == 0


def test_validate_consistency_finds_and_fix_repairs(tmp_path: Path) -> None:
    make_lake(tmp_path / "lake", files=4, rows=5)
    config = str(write_config(tmp_path))
    assert run_cli("load", "-c", config).returncode == 0
    cfg = make_config(tmp_path)
    store = open_store(cfg.state_url)
    uri = table_uri(tmp_path)
    # 1. a tracker entry says completed but no commit has it; 2. a commit the tracker lost
    files = store.files.find()
    with store.transaction() as tx:
        tx.execute(
            "UPDATE load_files SET status = 'pending' WHERE file_id = ?", (files[0].file_id,)
        )
    store.files.record_loaded(
        uri,
        "src/orders/202501/31/ghost.parquet",
        pipeline="p",
        table_key="src.orders",
        checksum="x",
        delta_version=2,
        batch_id="g",
    )
    # 3. an orphaned processing record (of another pipeline) with a stale lock (dead pid)
    token = store.locks.acquire("load:other")
    store.files.register("other", "q.t", "q", [FileEntry("x.parquet", "/x.parquet")])
    store.files.claim("other", "x.parquet", token)
    with store.transaction() as tx:
        tx.execute("UPDATE locks SET pid = 999999 WHERE token = ?", (token,))
    # 4. old temp file in the lake; 5. uncommitted Delta data files (+ a '#N' temp)
    temp = tmp_path / "lake" / "src" / "orders" / "x.parquet.onceflow-tmp-123"
    temp.write_bytes(b"junk")
    stray = Path(uri) / "part-00000-stray.snappy.parquet"
    stray.write_bytes(b"junk")
    hashed = Path(uri) / "part-00001-stray.snappy.parquet#1"
    hashed.write_bytes(b"junk")
    old = time.time() - 7200
    for p in (temp, stray, hashed):
        os.utime(p, (old, old))
    fresh = Path(uri) / "part-00002-being-written.parquet"
    fresh.write_bytes(b"junk")  # younger than the safe age: not touched

    check = run_cli("validate-consistency", "-c", config, "--json")
    assert check.returncode == 1
    kinds = sorted(i["kind"] for i in json.loads(check.stdout)["issues"])
    assert kinds == [
        "commit_not_tracked",
        "orphaned_processing",  # its owner's lease is stale (dead pid)
        "stale_lock",
        "temp_file",
        "tracked_without_commit",
        "uncommitted_delta_file",
        "uncommitted_delta_file",
    ], kinds
    fixed = run_cli("validate-consistency", "-c", config, "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "Fixes Applied" in fixed.stdout
    assert store.files.get("other", "x.parquet").status == "pending"
    assert not temp.exists() and not stray.exists() and not hashed.exists() and fresh.exists()
    assert run_cli("validate-consistency", "-c", config).returncode == 0
    assert read_table(uri).num_rows == 20


def test_optimize_compacts_and_keeps_content(tmp_path: Path) -> None:
    make_lake(tmp_path / "lake", files=6, rows=5)
    config = str(write_config(tmp_path))
    assert run_cli("load", "-c", config).returncode == 0
    uri = table_uri(tmp_path)
    before = sorted(read_table(uri).column("id").to_pylist())
    out = run_cli("optimize", "-c", config)
    assert out.returncode == 0, out.stderr
    assert "6 files compacted into 1" in out.stdout
    assert len(DeltaTable(uri).file_uris()) == 1
    assert sorted(read_table(uri).column("id").to_pylist()) == before
    refused = run_cli("optimize", "-c", config, "--retention-hours", "0")
    assert refused.returncode == 2 and "below the safe default" in refused.stderr
    # loads after optimize still skip what is in
    assert "0 loaded, 6 skipped" in run_cli("load", "-c", config).stdout


def test_load_fails_a_file_whose_sidecar_is_corrupt_naming_it_and_the_fix(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    make_lake(lake, files=2, rows=3)
    config = str(write_config(tmp_path, {"strategy": "overwrite"}))
    assert run_cli("load", "-c", config).returncode == 0
    sidecar_path(write_extracted(lake, orders_batch(2, 4), day=2)).write_text('{"broken')
    loaded = run_cli("load", "-c", config)
    assert loaded.returncode == 1
    assert loaded.stdout.startswith("src.orders: 0 loaded, 2 skipped, 1 failed"), loaded.stdout
    error = loaded.stdout + loaded.stderr
    assert "src/orders/202501/03/p_20250103.parquet: its sidecar" in error
    assert "onceflow extract --date 2025-01-03 --tables src.orders --force-reprocess" in error


def test_standalone_load_refuses_a_same_named_file_from_another_folder(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for folder, tag in (("dropA", "A"), ("dropB", "B")):
        (tmp_path / folder).mkdir()
        table = pa.table({"id": list(range(10)), "tag": [tag] * 10})
        pq.write_table(table, tmp_path / folder / "e0.parquet")
    args = ("load", "--target", "raw/x", "--strategy", "append", "--path")
    first = run_cli(*args, "./dropA/", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = run_cli(*args, "./dropB/", cwd=tmp_path)
    assert second.returncode == 1, second.stdout + second.stderr
    said = second.stdout + second.stderr
    assert "raw/x: 0 loaded, 0 skipped, 1 failed" in second.stdout
    assert str((tmp_path / "dropA" / "e0.parquet").resolve()) in said
    assert "dropB" in said and "unique names" in said and "Traceback" not in said
    tags = DeltaTable(str(tmp_path / "warehouse" / "raw" / "x")).to_pyarrow_table()["tag"]
    assert tags.to_pylist() == ["A"] * 10


def _drop(tmp_path: Path, name: str, ids: list[int], values: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "drop").mkdir(exist_ok=True)
    pq.write_table(pa.table({"id": ids, "v": values}), tmp_path / "drop" / name)


def _ids(tmp_path: Path, target: str) -> list[int]:
    table = DeltaTable(str(tmp_path / "warehouse" / target)).to_pyarrow_table(columns=["id"])
    return sorted(table["id"].to_pylist())


def _strategies(tmp_path: Path) -> dict[str, Any]:
    shown = run_cli("status", "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    return {r["table"]: (r["strategy"], r["primary_key"]) for r in json.loads(shown.stdout)["load"]}


def test_a_standalone_table_keeps_its_strategy_without_strategy_and_after_state_loss(
    tmp_path: Path,
) -> None:
    _drop(tmp_path, "e0.parquet", [1, 2, 3], ["a", "b", "c"])
    _drop(tmp_path, "e1.parquet", [3, 4], ["C", "d"])
    base = ("load", "--path", "./drop/", "--target")
    merged = run_cli(
        *base, "dims/customer", "--strategy", "merge", "--primary-key", "id", cwd=tmp_path
    )
    assert merged.returncode == 0, merged.stderr
    assert run_cli(*base, "raw/events", cwd=tmp_path).returncode == 0  # append, recorded
    _drop(tmp_path, "e2.parquet", [4], ["D"])
    again = run_cli(*base, "dims/customer", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "dims/customer: 1 loaded, 2 skipped, 0 failed (1 rows read; 1 updated)" in again.stdout
    assert "  loaded with strategy merge, primary key id, as the table records" in again.stdout
    assert _ids(tmp_path, "dims/customer") == [1, 2, 3, 4]  # id 4 once
    refused = run_cli(*base, "raw/events", "--strategy", "overwrite", cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    [line] = refused.stderr.splitlines()
    assert line.startswith("error: --strategy overwrite: raw/events was created with strategy ")
    assert "load into a new --target, or drop the table" in line
    assert _ids(tmp_path, "raw/events") == [1, 2, 3, 3, 4]
    assert _strategies(tmp_path) == {
        "dims/customer": ("merge", ["id"]),
        "raw/events": ("append", []),
    }
    # the state store is lost: the tables still say how they load
    shutil.rmtree(tmp_path / ".onceflow")
    _drop(tmp_path, "e3.parquet", [4, 5], ["DD", "e"])
    rebuilt = run_cli(*base, "dims/customer", "--json", cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    [table] = json.loads(rebuilt.stdout)["tables"]
    assert table["strategy"] == "merge" and table["counts"]["loaded"] == 1
    assert (
        table["settings_note"] == "loaded with strategy merge, primary key id, as the table records"
    )
    assert _ids(tmp_path, "dims/customer") == [1, 2, 3, 4, 5]
    assert _strategies(tmp_path)["dims/customer"] == ("merge", ["id"])


def test_a_config_tables_changed_strategy_is_refused_by_load_and_run_and_shown_by_status(
    tmp_path: Path,
) -> None:
    init_project(tmp_path / "demo")
    demo = tmp_path / "demo"
    assert run_cli("run", "--date", "2025-01-10", cwd=demo).returncode == 0
    yml = demo / "onceflow.yml"
    yml.write_text(
        yml.read_text().replace(
            "load: {strategy: append}", "load: {strategy: merge, primary_key: [order_id]}"
        )
    )
    for args in (("load",), ("run", "--date", "2025-01-11")):
        refused = run_cli(*args, cwd=demo)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        [line] = refused.stderr.splitlines()
        assert line.startswith(
            "error: tables[0].load (shop.orders): the config says strategy merge, primary key "
            "order_id, but shop/orders was created with strategy append (recorded in the table)"
        )
    assert not list((demo / "lake" / "shop" / "orders").rglob("*20250111*"))  # not extracted
    shown = json.loads(run_cli("status", "--json", cwd=demo).stdout)["load"]
    [orders] = [r for r in shown if r["table"] == "shop.orders"]
    assert orders["strategy"] == "append" and "the config says" in orders["settings_conflict"]
