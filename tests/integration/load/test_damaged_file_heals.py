"""A committed lake file damaged in place at its size: the default `--verify` (a stat)
cannot see it, the load's checksum check refuses it, and records that proof in the state
store, so the next `run` re-extracts the window by itself and the table ends as a clean
run's. In-process on a SQLite source and state store."""

from __future__ import annotations

from pathlib import Path

from onceflow.config import Config
from onceflow.extract import extract
from onceflow.lake import discover_table_files, sidecar_path
from onceflow.pipeline import RunSummary, run
from onceflow.state import open_store
from tests.helpers.lake import content_checksum
from tests.helpers.schedule import project_config

DAY1, DAY2 = "2025-01-01", "2025-01-02"
KEY = "src.events"


def _project(folder: Path) -> Config:
    return project_config(folder / "project", f"sqlite:///{folder / 'state.db'}", days=3)


def _lake_file(cfg: Config, day: str) -> Path:
    run_id = "sched_" + day.replace("-", "")
    lake = cfg.resolve(cfg.lake)
    [found] = [f for f in discover_table_files(lake, "src", "events") if f.run_id == run_id]
    return Path(found.path)


def _damage_a_value(path: Path) -> None:
    """One byte of the data pages changed, the size the same: the file still reads (its
    values differ), so only a checksum notices."""
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01
    path.write_bytes(bytes(data))


def _actions(summary: RunSummary) -> list[str]:
    return [r.action for r in summary.results]


def _table(cfg: Config) -> str:
    return content_checksum(str(Path(cfg.resolve(cfg.warehouse)) / "src" / "events"))


def test_a_run_after_a_load_proved_a_file_damaged_re_extracts_it_and_heals(
    tmp_path: Path,
) -> None:
    clean = _project(tmp_path / "clean")
    assert run(clean, DAY1).ok and run(clean, DAY2).ok
    cfg = _project(tmp_path / "damaged")
    assert run(cfg, DAY1).ok and extract(cfg, DAY2).ok
    damaged = _lake_file(cfg, DAY2)
    sidecar = sidecar_path(damaged).read_bytes()
    size = damaged.stat().st_size
    _damage_a_value(damaged)
    assert damaged.stat().st_size == size

    first = run(cfg, DAY2)
    assert not first.ok and first.run.status == "failed"
    assert _actions(first) == ["skipped"]  # the stat-only default does not read it
    assert first.load is not None
    [table] = first.load.results
    error = table.error or ""
    assert "does not match its sidecar" in error
    assert f"the next `onceflow run --date {DAY2}`" in error
    assert "from the source as it is now" in error
    record = open_store(cfg.state_url).extractions.of_run("sched_20250102")[KEY]
    assert record.force_reprocess and record.last_action == "corrupt"
    assert "does not match its sidecar" in (record.error or "")

    second = run(cfg, DAY2)
    assert second.ok and second.run.status == "completed", second.load
    assert _actions(second) == ["extracted"]
    assert (second.results[0].reason or "").startswith("damaged: a load found")
    # the source did not change: the same bytes are back under the same commit
    assert sidecar_path(damaged).read_bytes() == sidecar
    assert _table(cfg) == _table(clean)

    third = run(cfg, DAY2)
    assert third.ok and _actions(third) == ["skipped"]  # the flag was cleared
    assert _table(cfg) == _table(clean)


def test_an_extract_after_the_proof_re_extracts_without_verify_deep(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    assert extract(cfg, DAY1).ok
    damaged = _lake_file(cfg, DAY1)
    _damage_a_value(damaged)
    assert extract(cfg, DAY1).counts() == {"extracted": 0, "skipped": 1, "failed": 0}
    assert not run(cfg, DAY1).ok
    again = extract(cfg, DAY1)
    assert again.counts() == {"extracted": 1, "skipped": 0, "failed": 0}
    assert again.run.status == "failed"  # the load's verdict stands until a load succeeds
    assert run(cfg, DAY1).ok
