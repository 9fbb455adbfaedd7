"""A load's work depends on its new files and the table as it is, not on its history.

A scale review found every load walking a table's whole past: each tracker row built into
a record twice, every row registered again, every commit's metadata parsed from the Delta
log, and the table opened three times. A 50-table backfill's runs grew from 1.6 s on day
1 to 7 s on day 100. What a load reads of a table's past is measured here on a table of
30 files and of 3, and must not grow with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from onceflow.load import load
from onceflow.state import open_store
from onceflow.warehouse import markers
from tests.helpers.lake import done, make_config, make_lake, orders_batch, write_extracted

STRATEGIES = {
    "append": {"strategy": "append"},
    "overwrite": {"strategy": "overwrite"},
    "merge": {"strategy": "merge", "primary_key": ["id"]},
    "scd2": {"strategy": "scd2", "primary_key": ["id"]},
}


class _Reads:
    """What a load reads of a table's past: commit files parsed in Python (delta-rs reads
    its own), tracker rows built into whole records, and the table opened by the loader."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import onceflow.load.loader as loader
        import onceflow.state.files as files

        self.commit_files = 0
        self.records = 0
        self.opens = 0
        read_text, rows_as, open_table = Path.read_text, files.rows_as, loader.open_table

        def reading(path: Path, *args: Any, **kwargs: Any) -> str:
            if path.parent.name == "_delta_log" and path.suffix == ".json":
                self.commit_files += 1
            return read_text(path, *args, **kwargs)

        def building(cls: Any, rows: Any) -> Any:
            built = rows_as(cls, rows)
            self.records += len(built) if cls is files.FileRecord else 0
            return built

        def opening(*args: Any, **kwargs: Any) -> Any:
            self.opens += 1
            return open_table(*args, **kwargs)

        monkeypatch.setattr(Path, "read_text", reading)
        monkeypatch.setattr(files, "rows_as", building)
        monkeypatch.setattr(loader, "open_table", opening)


def _history(tmp_path: Path, strategy: str, files: int) -> Any:
    make_lake(tmp_path / "lake", files=files, rows=3)
    cfg = make_config(tmp_path, STRATEGIES[strategy])
    assert load(cfg).ok  # one commit per file: a log as long as the table's history
    markers.forget_cached_markers()  # the next load is a new process: nothing cached
    return cfg


def _measure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str, files: int
) -> tuple[_Reads, _Reads]:
    """What a load with nothing new, then one with one new file, reads."""
    cfg = _history(tmp_path, strategy, files)
    with monkeypatch.context() as patched:
        idle = _Reads(patched)
        assert done(load(cfg).counts()) == {"skipped": files}
    write_extracted(tmp_path / "lake", orders_batch(files, 3), day=files)
    markers.forget_cached_markers()
    with monkeypatch.context() as patched:
        new = _Reads(patched)
        result = load(cfg)
    assert result.ok and result.counts()["loaded"] == 1, result.as_dict()
    return idle, new


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_what_a_load_reads_of_a_table_does_not_grow_with_its_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str
) -> None:
    short_idle, short_new = _measure(tmp_path / "short", monkeypatch, strategy, 3)
    long_idle, long_new = _measure(tmp_path / "long", monkeypatch, strategy, 30)
    # the commits after the table's last checkpoint (it is written every 10 commits) and
    # a few others (the oldest one, those after the verified version): never all 30
    assert long_idle.commit_files <= 12 and long_new.commit_files <= 12, (
        long_idle.commit_files,
        long_new.commit_files,
    )
    # no tracker row of a file that is not loaded is built into a record: only the new
    # file's, as it is registered and before its commit
    assert short_idle.records == long_idle.records == 0
    assert short_new.records == long_new.records <= 2
    # opened once to plan, and for a commit once more before it and once after
    assert short_idle.opens == long_idle.opens == 1
    assert short_new.opens == long_new.opens == 3


def test_a_load_with_nothing_new_writes_no_tracker_row(tmp_path: Path) -> None:
    make_lake(tmp_path / "lake", files=5, rows=3)
    cfg = make_config(tmp_path)
    assert load(cfg).ok
    store = open_store(cfg.state_url)
    before = {r.file_id: r.updated_at for r in store.files.find()}
    assert done(load(cfg).counts()) == {"skipped": 5}
    assert {r.file_id: r.updated_at for r in store.files.find()} == before
    # a file that changed in the lake is registered again (a re-extraction's checksum)
    write_extracted(tmp_path / "lake", orders_batch(2, 4), day=2)
    assert done(load(cfg).counts()) == {"replaced": 1, "skipped": 4}
    after = {r.file_id: r for r in store.files.find()}
    changed = [f for f, r in after.items() if r.updated_at != before[f]]
    assert changed == ["src/orders/202501/03/p_20250103.parquet"]
