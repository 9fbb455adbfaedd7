"""`onceflow optimize`: compaction, and a vacuum that deletes only what no reader needs."""

from __future__ import annotations

import json
from pathlib import Path

from deltalake import DeltaTable

from onceflow.warehouse import snapshot_dataset
from tests.helpers.cli import run_cli
from tests.helpers.lake import (
    content_checksum,
    make_lake,
    table_uri,
    write_config,
)


def _data_files(uri: str) -> set[str]:
    return {
        str(p.relative_to(uri)) for p in Path(uri).rglob("*.parquet") if "_delta_log" not in p.parts
    }


def test_vacuum_keeps_replaced_files_within_retention_and_deletes_them_when_told(
    tmp_path: Path,
) -> None:
    make_lake(tmp_path / "lake", files=5, rows=4)
    config = str(write_config(tmp_path))
    assert run_cli("load", "-c", config).returncode == 0
    uri = table_uri(tmp_path)
    before = content_checksum(uri)
    loaded = _data_files(uri)
    assert len(loaded) == 5

    # default retention (7 days): the 5 replaced files stay for readers of older versions
    first = run_cli("optimize", "-c", config, "--json")
    assert first.returncode == 0, first.stderr
    [entry] = json.loads(first.stdout)
    assert (entry["files_removed"], entry["files_added"], entry["vacuumed"]) == (5, 1, 0)
    assert loaded < _data_files(uri)
    old = snapshot_dataset(DeltaTable(uri, version=4))  # time travel still reads
    assert old.count_rows() == 20
    assert content_checksum(uri) == before

    # an explicit short retention, acknowledged: only the replaced files go
    live = {Path(u).name for u in DeltaTable(uri).file_uris()}
    second = run_cli(
        "optimize", "-c", config, "--retention-hours", "0", "--allow-short-retention", "--json"
    )
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)[0]["vacuumed"] == 5
    assert {Path(p).name for p in _data_files(uri)} == live
    assert content_checksum(uri) == before
    # the loader still knows every file is in
    assert "0 loaded, 5 skipped" in run_cli("load", "-c", config).stdout
    assert run_cli("validate-consistency", "-c", config).returncode == 0


def test_optimize_of_a_table_not_loaded_yet_says_so(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    out = run_cli("optimize", "-c", config, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["skipped"] == "no table yet"
