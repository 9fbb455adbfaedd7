"""Another writer's RESTORE of a table (delta-rs `restore`, Spark's `RESTORE TABLE`).

A Delta RESTORE rolls the data back but not the application transactions onceflow keeps
its markers in: without a correction the loader believed it still held the windows the
restore took back, skipped them with exit 0, and validate-consistency said CONSISTENT.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from onceflow.consistency import fix_inconsistencies, validate_consistency
from onceflow.load import load
from onceflow.warehouse import open_table
from onceflow.warehouse.markers import forget_cached_markers, read_markers
from tests.helpers.lake import (
    clean_load_checksum,
    content_checksum,
    done,
    make_config,
    orders_batch,
    table_uri,
    undone_ids,
    write_extracted,
)

STRATEGIES = {
    "append": {"strategy": "append"},
    "merge": {"strategy": "merge", "primary_key": ["id"]},
    "scd2": {"strategy": "scd2", "primary_key": ["id"]},
}


def _batch(strategy: str, day: int, *, relabel: str = "") -> pa.Table:
    if strategy == "append":
        batch = orders_batch(day, 4)
        return batch.set_column(3, "label", pa.array([f"d{day}{relabel}"] * 4))
    ids = list(range(6))  # a dimension: one key changes each day
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "label": [f"k{i}-v{day if i == day % 6 else 0}{relabel}" for i in ids],
        }
    )


def _project(tmp_path: Path, strategy: str, days: int) -> Any:
    for day in range(days):
        write_extracted(tmp_path / "lake", _batch(strategy, day), day=day)
    cfg = make_config(tmp_path, STRATEGIES[strategy])
    assert load(cfg).ok
    return cfg


def _clean(tmp_path: Path, strategy: str) -> str:
    return clean_load_checksum(tmp_path, tmp_path / "lake", STRATEGIES[strategy])


def _kinds(cfg: Any) -> list[str]:
    return sorted(i["kind"] for i in validate_consistency(cfg)["issues"])


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_a_restore_by_another_writer_is_reported_then_loaded_again_exactly_once(
    tmp_path: Path, strategy: str
) -> None:
    cfg = _project(tmp_path, strategy, days=4)
    uri = table_uri(tmp_path)
    # 4 windows, then the commit recording the table's settings (onceflow.load.settings)
    restored = DeltaTable(uri).version() + 1
    DeltaTable(uri).restore(1)  # back to windows 0 and 1

    report = validate_consistency(cfg)
    assert not report["consistent"]
    [restore] = [i for i in report["issues"] if i["kind"] == "external_restore"]
    assert f"version {restored} is a RESTORE to version 1" in restore["detail"]
    assert "onceflow load --tables src.orders" in restore["detail"]
    assert len(restore["files"]) == 2
    # --fix puts the tracker right, but only a load brings the rows back: still exit 1
    fixed = fix_inconsistencies(cfg)
    assert not fixed["consistent"]
    assert any("onceflow load --tables src.orders" in f for f in fixed["failures"])

    summary = load(cfg)
    assert summary.ok, summary.as_dict()
    counts = done(summary.counts())
    assert counts.get("loaded", 0) + counts.get("unchanged", 0) == 2, counts
    assert any("RESTORE to version 1" in n for n in summary.results[0].reconciled)
    assert content_checksum(uri) == _clean(tmp_path, strategy)
    assert _kinds(cfg) == []
    # the correction is in the log: a fresh reader agrees, and the next load does nothing
    forget_cached_markers()
    assert not read_markers(open_table(uri)).restores
    assert done(load(cfg).counts()) == {"skipped": 4}


def test_a_restore_behind_a_checkpoint_and_a_restore_of_a_restore_are_followed(
    tmp_path: Path,
) -> None:
    cfg = _project(tmp_path, "merge", days=12)  # checkpoints at version 10
    uri = table_uri(tmp_path)
    first = DeltaTable(uri).version() + 1  # after the settings record (version 12)
    DeltaTable(uri).restore(3)  # version 13: windows 0..3
    DeltaTable(uri).restore(5)  # version 14: windows 0..5
    DeltaTable(uri).restore(first)  # version 15: the data of 13, whose markers were stale
    DeltaTable(uri).create_checkpoint()  # a checkpoint that holds the stale markers
    forget_cached_markers()
    held = read_markers(open_table(uri))
    assert [r.version for r in held.restores] == [first, first + 1, first + 2]
    assert len(held.held_ids()) == 4 and len(undone_ids(held)) == 8
    assert "external_restore" in _kinds(cfg)
    summary = load(cfg)
    assert summary.ok and done(summary.counts()) == {"loaded": 8, "skipped": 4}
    assert content_checksum(uri) == _clean(tmp_path, "merge")
    assert _kinds(cfg) == []


def test_a_restore_to_a_version_with_older_content_replaces_it(tmp_path: Path) -> None:
    cfg = _project(tmp_path, "append", days=3)
    uri = table_uri(tmp_path)
    write_extracted(tmp_path / "lake", _batch("append", 1, relabel="-new"), day=1)
    assert done(load(cfg).counts()) == {"replaced": 1, "skipped": 2}
    DeltaTable(uri).restore(2)  # day 1's old rows are back
    summary = load(cfg)
    assert summary.ok and done(summary.counts()) == {"replaced": 1, "skipped": 2}
    assert content_checksum(uri) == _clean(tmp_path, "append")


def test_a_restore_undone_by_another_restore_needs_nothing(tmp_path: Path) -> None:
    cfg = _project(tmp_path, "append", days=4)
    uri = table_uri(tmp_path)
    before = content_checksum(uri)
    DeltaTable(uri).restore(1)
    DeltaTable(uri).restore(3)  # every window again
    assert _kinds(cfg) == []
    assert done(load(cfg).counts()) == {"skipped": 4}
    assert content_checksum(uri) == before


def test_compaction_by_another_writer_changes_nothing(tmp_path: Path) -> None:
    cfg = _project(tmp_path, "merge", days=4)
    uri = table_uri(tmp_path)
    before = content_checksum(uri)
    DeltaTable(uri).optimize.compact()
    assert _kinds(cfg) == []
    assert done(load(cfg).counts()) == {"skipped": 4}
    assert content_checksum(uri) == before


def test_loader_commits_record_the_version_they_verified(tmp_path: Path) -> None:
    _project(tmp_path, "append", days=3)
    log = Path(table_uri(tmp_path)) / "_delta_log" / f"{2:020d}.json"
    txns = [json.loads(line).get("txn") for line in log.read_text().splitlines()]
    assert {"appId": "onceflow.verified", "version": 1} in [
        {k: t[k] for k in ("appId", "version")} for t in txns if t
    ]
