"""A replay never leaves a table behind where it was; a damaged file names its repair.

Reproductions of a review: a late window of an scd2 table whose replay needs a file
that was corrupted in the lake (same size, other bytes) rewound the table, re-applied
part of it and then said "the table is unchanged"; the repair command it gave had no
`--date`, and a correct re-extraction still could not load (its retry budget was spent).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from onceflow.config import config_from_dict
from onceflow.load import load, loader
from onceflow.state import ExtractionEntry, ExtractionOutcome, open_store
from onceflow.warehouse.markers import read_markers
from onceflow.windows import window_for
from tests.helpers.lake import (
    START,
    clean_load_checksum,
    config_dict,
    content_checksum,
    done,
    make_config,
    table_uri,
    write_extracted,
)

SCD2 = {"strategy": "scd2", "primary_key": ["id"]}
DAY3 = "src/orders/202501/04/p_20250104.parquet"
LATE = "src/orders/202501/01/p_20250101.parquet"


def dims(day: int) -> pa.Table:
    """A dimension's full extract on `day`: keys 0..5, one changing label per day."""
    ids = list(range(6))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "label": [f"k{i}-v{day if i == day % 6 else 0}" for i in ids],
        }
    )


def flip_two_bytes(path: Path) -> None:
    """Corrupt a file in place, keeping its size (what a fast extract check cannot see)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0xFF
    data[middle + 1] ^= 0xFF
    path.write_bytes(bytes(data))


def _state(uri: str) -> tuple[int, str, dict[str, Any]]:
    """The table as a reader sees it: version, content, and its file markers."""
    dt = DeltaTable(uri)
    return dt.version(), content_checksum(uri), dict(read_markers(dt).held)


def _held_days_1_to_4(tmp_path: Path) -> tuple[Path, Any, list[Path]]:
    lake = tmp_path / "lake"
    paths = [write_extracted(lake, dims(day), day=day) for day in range(1, 5)]
    cfg = make_config(tmp_path, SCD2)
    assert load(cfg).ok
    return lake, cfg, paths


def test_a_replay_blocked_by_a_corrupted_file_leaves_the_table_exactly_as_it_was(
    tmp_path: Path,
) -> None:
    lake, cfg, paths = _held_days_1_to_4(tmp_path)
    uri = table_uri(tmp_path)
    flip_two_bytes(paths[2])  # day 3, which the table holds: same size, other bytes
    before = _state(uri)
    write_extracted(lake, dims(0), day=0)  # an earlier window arrives late

    summary = load(cfg)
    assert not summary.ok
    result = summary.results[0]
    assert _state(uri) == before  # no rewind, nothing re-applied
    assert result.rewound == []
    assert done(result.counts()) == {"failed": 1, "skipped": 4}  # the table holds them
    failed = next(f for f in result.files if f.action == "failed")
    assert failed.file_id == LATE  # the late file fails; the table keeps what it held
    error = result.error or ""
    assert DAY3 in error and "does not match its sidecar" in error
    assert "the table is left as it was" in error
    assert "onceflow extract --date 2025-01-04 --tables src.orders --force-reprocess" in error
    store = open_store(cfg.state_url)
    # the tracker still says the table holds days 1-4: nothing went back to pending
    statuses = {r.file_id: r.status for r in store.files.find(uri)}
    assert statuses == {LATE: "failed", **{p: "completed" for p in statuses if p != LATE}}
    # the blocked file was not tried itself: its retry budget is untouched
    assert store.files.get(uri, LATE).retry_count == 0

    # the repair: a correct re-extraction of day 3; the replay then goes through
    write_extracted(lake, dims(3), day=3)
    repaired = load(cfg)
    assert repaired.ok, repaired.as_dict()
    assert content_checksum(uri) == clean_load_checksum(tmp_path, lake, SCD2)


def test_a_replay_that_fails_midway_says_so_and_the_next_load_finishes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, cfg, _paths = _held_days_1_to_4(tmp_path)
    uri = table_uri(tmp_path)
    write_extracted(lake, dims(0), day=0)
    real = loader._read_verified

    def io_error_on_day3(source: Any, fix: str) -> Any:
        if source.file_id == DAY3:  # it passed the check ahead; its read fails
            raise loader.LoadError(f"{DAY3}: cannot read the file (Input/output error)")
        return real(source, fix)

    monkeypatch.setattr(loader, "_read_verified", io_error_on_day3)
    summary = load(cfg)
    result = summary.results[0]
    assert not summary.ok and len(result.rewound) == 4
    error = result.error or ""
    assert "the table is unchanged" not in error
    assert "rewound" in error and "the next load finishes the replay" in error
    monkeypatch.setattr(loader, "_read_verified", real)

    again = load(cfg)  # the rewind's markers say what is still to apply: days 3 and 4
    assert again.ok, again.as_dict()
    assert done(again.results[0].counts()) == {"loaded": 2, "skipped": 3}
    assert content_checksum(uri) == clean_load_checksum(tmp_path, lake, SCD2)


def test_a_damaged_file_names_the_exact_reextraction_and_a_new_extraction_gets_fresh_retries(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    paths = [write_extracted(lake, dims(day), day=day) for day in range(1, 4)]
    flip_two_bytes(paths[1])
    cfg = make_config(tmp_path, {**SCD2, "max_file_retries": 1})
    day2 = "src/orders/202501/03/p_20250103.parquet"
    for _ in range(2):  # the first try and its one retry
        result = load(cfg).results[0]
        assert "onceflow extract --date 2025-01-03 --tables src.orders --force-reprocess" in (
            result.error or ""
        )
    gave_up = load(cfg).results[0]
    assert "gave up after 2 failed attempts" in (gave_up.error or "")
    # a correct re-extraction: the same rows, so the same checksum as the sidecar's
    write_extracted(lake, dims(2), day=2)
    repaired = load(cfg)
    assert repaired.ok, repaired.as_dict()
    assert done(repaired.results[0].counts()) == {"loaded": 2, "skipped": 1}
    assert open_store(cfg.state_url).files.get(table_uri(tmp_path), day2).status == "completed"


def _record_run(store: Any, path: Path, day: int) -> str:
    """Record day `day`'s extraction as the extractor does: its run completed."""
    run_date = START + timedelta(days=day)
    run_id, window = f"p_{run_date:%Y%m%d}", window_for(run_date, "UTC").iso()
    store.runs.begin(run_id, "p", run_date.isoformat(), window)
    store.extractions.ensure(
        run_id, [ExtractionEntry("src.orders", "src", "orders", "full", *window)]
    )
    store.extractions.start(run_id, "src.orders", window)
    outcome = ExtractionOutcome("src.orders", "extracted", 6, str(path), None, None, *window)
    store.extractions.complete(run_id, [outcome])
    assert store.runs.finish(run_id).status == "completed"
    return run_id


@pytest.mark.parametrize("rules", [False, True], ids=["no-rules", "post-load-rules"])
def test_a_failed_load_marks_its_run_failed_and_a_repairing_load_completes_it(
    tmp_path: Path, rules: bool
) -> None:
    lake = tmp_path / "lake"
    paths = [write_extracted(lake, dims(day), day=day) for day in range(1, 3)]
    data = config_dict(tmp_path, SCD2)
    if rules:
        data["tables"][0]["rules"] = [{"name": "id_ok", "type": "completeness", "column": "id"}]
    cfg = config_from_dict(data, base_dir=str(tmp_path))
    store = open_store(cfg.state_url)
    first, second = (_record_run(store, p, d) for p, d in zip(paths, (1, 2), strict=True))
    good = paths[1].read_bytes()
    flip_two_bytes(paths[1])
    assert not load(cfg).ok
    assert store.runs.get(second).status == "failed"  # not shown completed any more
    assert store.runs.get(first).status == "completed"  # its file loaded
    paths[1].write_bytes(good)  # repaired
    assert load(cfg).ok
    # without rules the load's verdict was the only one: it is undone; with post-load
    # rules the run waits for `onceflow run --date`, which validates the data first
    assert store.runs.get(second).status == ("failed" if rules else "completed")


DAY4 = "src/orders/202501/05/p_20250105.parquet"
DAY3_LATE = "src/orders/202501/04/p_20250104.parquet"


def _late_window_blocked_by(tmp_path: Path, damage: str) -> tuple[Any, str, Any, str]:
    """Days 1, 2, 4 and 5 held; day 4's sidecar made invalid JSON, or its data file
    deleted; then day 3 arrives late (its run completed). The load, its table's uri, the
    store and the late run's id."""
    lake = tmp_path / "lake"
    paths = {day: write_extracted(lake, dims(day), day=day) for day in (1, 2, 4, 5)}
    cfg = make_config(tmp_path, SCD2)
    assert load(cfg).ok
    if damage == "sidecar":
        paths[4].with_name(paths[4].stem + "_metadata.json").write_text("{not json")
    else:
        paths[4].unlink()
    store = open_store(cfg.state_url)
    late = _record_run(store, write_extracted(lake, dims(3), day=3), 3)
    return cfg, table_uri(tmp_path), store, late


def test_a_replay_blocked_by_a_held_file_with_a_damaged_sidecar_fails_the_late_file(
    tmp_path: Path,
) -> None:
    cfg, uri, store, late = _late_window_blocked_by(tmp_path, "sidecar")
    before = _state(uri)

    summary = load(cfg)

    assert not summary.ok
    result = summary.results[0]
    assert _state(uri) == before  # no rewind, nothing committed
    # every file counted: days 1, 2 (before the replay) and 5 held; day 3 and day 4 fail
    assert done(result.counts()) == {"failed": 2, "skipped": 3}
    failed = {f.file_id: f.error or "" for f in result.files if f.action == "failed"}
    assert set(failed) == {DAY3_LATE, DAY4}
    error = failed[DAY3_LATE]
    assert f"{DAY4}: its sidecar is unreadable (the data file is there" in error
    assert "no longer in the lake" not in error
    assert "the table is left as it was (no rewind)" in error
    assert "onceflow extract --date 2025-01-05 --tables src.orders --force-reprocess" in error
    assert store.files.get(uri, DAY3_LATE).status == "failed"
    assert store.files.get(uri, DAY3_LATE).retry_count == 0  # not tried itself
    assert store.runs.get(late).status == "failed"  # not shown completed


def test_a_replay_blocked_by_a_held_file_whose_data_file_is_gone_fails_the_late_file(
    tmp_path: Path,
) -> None:
    cfg, uri, store, late = _late_window_blocked_by(tmp_path, "deleted")
    before = _state(uri)

    summary = load(cfg)

    assert not summary.ok
    result = summary.results[0]
    assert _state(uri) == before
    # every committed file counted: day 4's sidecar still commits it (held, its data gone)
    assert done(result.counts()) == {"failed": 1, "skipped": 4}
    assert any(w.startswith(f"{DAY4}: the table holds it") for w in result.warnings)
    error = result.error or ""
    assert error.startswith(f"{DAY3_LATE}: not loaded")
    assert f"{DAY4}: its data file is no longer in the lake" in error
    assert "onceflow extract --date 2025-01-05 --tables src.orders --force-reprocess" in error
    assert "or put the file back in the lake as it was" in error
    assert store.runs.get(late).status == "failed"


def test_consistency_reports_a_held_file_whose_data_file_is_gone_after_the_store_forgot_it(
    tmp_path: Path,
) -> None:
    from onceflow.consistency import validate_consistency

    lake = tmp_path / "lake"
    paths = {day: write_extracted(lake, dims(day), day=day) for day in (1, 2, 4)}
    cfg = make_config(tmp_path, SCD2)
    assert load(cfg).ok
    assert validate_consistency(cfg, safe_age_seconds=0)["consistent"]
    paths[4].unlink()
    # a store that knows nothing of the loads nor the extractions (`reset-state --yes`)
    open_store(cfg.state_url).files.forget(table_uri(tmp_path))

    report = validate_consistency(cfg, safe_age_seconds=0)

    assert not report["consistent"]
    gone = [i for i in report["issues"] if i["kind"] == "held_file_gone"]
    assert [i["subject"] for i in gone] == [DAY4]
    assert "no longer in the lake" in gone[0]["detail"]
    assert "onceflow extract --date 2025-01-05 --tables src.orders" in gone[0]["detail"]
