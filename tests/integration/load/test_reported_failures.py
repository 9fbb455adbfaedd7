"""Nothing a load did not do goes unreported: a failed file keeps its run failed, an
unreadable sidecar fails its file by name, validate-consistency names every failed file.

In-process on a SQLite source and state store (the CLI's output and exit codes are
tested in tests/integration/cli)."""

from __future__ import annotations

from pathlib import Path

from onceflow.config import Config
from onceflow.consistency import validate_consistency
from onceflow.extract import extract
from onceflow.lake import discover_table_files
from onceflow.pipeline import run
from onceflow.state import open_store
from tests.helpers.schedule import project_config

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
    # everything is committed, so the extraction skips all; the load's verdict stands
    again = extract(cfg, DAY2)
    assert again.ok and again.counts() == {"extracted": 0, "skipped": 1, "failed": 0}
    assert again.run.status == "failed"
    assert store.runs.get(_rid(DAY2)).status == "failed"  # type: ignore[union-attr]
    assert "completed_with_failed_files" not in _kinds(cfg)
    # a re-extraction repairs the file, but only the load that follows completes the run
    assert extract(cfg, DAY2, force_reprocess=True).run.status == "failed"
    repaired = run(cfg, DAY2)
    assert repaired.ok and repaired.run.status == "completed"
    assert store.runs.get(_rid(DAY1)).status == "completed"  # type: ignore[union-attr]
    assert _kinds(cfg) == []


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
