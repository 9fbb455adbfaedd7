"""A writer that lost its lease writes nothing more: an extraction SIGSTOPped right before
its rename, whose lock a successor took over meanwhile, does not rename over the
successor's committed file; a load whose caller lost its lease between tables does not
commit the next table; and the lake a lost writer did replace is repaired by the next run.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from datetime import date
from pathlib import Path

import pytest
import yaml

from onceflow.config import load_config
from onceflow.errors import LeaseLostError, LockError
from onceflow.extract.extractor import TableJob, _lost_after_rename
from onceflow.lake.sidecar import read_sidecar
from onceflow.load.api import config_targets
from onceflow.load.loader import open_table
from onceflow.pipeline import run_window
from onceflow.windows import window_for
from tests.helpers.cli import run_cli, spawn
from tests.helpers.recovery import RUN_DATE, make_sqlite_source, sha256, write_project

TTL_MINUTES = 0.05  # a 3 s lease: the stopped writer's expires while the test waits


def _project(tmp_path: Path, tables: list[str], rows: int = 2000) -> Path:
    make_sqlite_source(tmp_path / "src.db", dict.fromkeys(tables, rows))
    project = write_project(tmp_path / "proj", f"sqlite:///{tmp_path / 'src.db'}", tables)
    data = yaml.safe_load(project.config.read_text(encoding="utf-8"))
    data["lock_ttl_minutes"] = TTL_MINUTES
    project.config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return tmp_path / "proj"


def _add_row(source: Path, table: str, row_id: int) -> None:
    conn = sqlite3.connect(source)
    try:
        conn.execute(
            f'INSERT INTO "{table}" VALUES (?, 1, 1.0, "late", NULL, "2025-01-23 23:59:00")',
            (row_id,),
        )
        conn.commit()
    finally:
        conn.close()


def test_an_extraction_paused_before_its_rename_whose_lock_was_taken_over_does_not_rename(
    tmp_path: Path,
) -> None:
    folder = _project(tmp_path, ["items"])
    config = folder / "onceflow.yml"
    data_path = folder / "lake" / "src" / "items" / "202501" / "23" / "recovery_20250123.parquet"
    first = run_cli("extract", "--config", str(config), "--date", RUN_DATE)
    assert first.returncode == 0, first.stderr

    _add_row(tmp_path / "src.db", "items", 900_001)  # the re-extraction reads other rows
    gate = tmp_path / "gate"
    zombie = spawn(
        "extract",
        "--config",
        str(config),
        "--date",
        RUN_DATE,
        "--force-reprocess",
        env={"ONCEFLOW_PAUSE_AT": f"before_data_rename:{gate}"},
    )
    try:
        deadline = time.monotonic() + 60
        while not Path(f"{gate}.reached").exists():
            assert zombie.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        zombie.send_signal(signal.SIGSTOP)  # its heartbeat stops too: the lease runs out
        time.sleep(TTL_MINUTES * 60 + 1)
        _add_row(tmp_path / "src.db", "items", 900_002)  # and its successor others still
        successor = run_cli(
            "extract", "--config", str(config), "--date", RUN_DATE, "--force-reprocess"
        )
        assert successor.returncode == 0, successor.stderr
        committed = sha256(data_path)
        gate.touch()
        zombie.send_signal(signal.SIGCONT)
        _out, err = zombie.communicate(timeout=120)
    finally:
        if zombie.poll() is None:
            zombie.send_signal(signal.SIGCONT)
            zombie.kill()
            zombie.communicate()
    assert zombie.returncode != 0, err
    assert "lost lock 'pipeline:recovery'" in err
    assert sha256(data_path) == committed  # not renamed over the successor's file
    sidecar = read_sidecar(data_path)
    assert sidecar is not None and sidecar["checksum"] == committed
    assert sidecar["record_count"] == 2002
    assert not [p for p in data_path.parent.iterdir() if "onceflow-tmp" in p.name]
    consistent = run_cli("validate-consistency", "--config", str(config))
    assert consistent.returncode == 0, consistent.stdout


def test_a_file_renamed_by_a_writer_that_lost_its_lock_is_uncommitted_and_re_extracted(
    tmp_path: Path,
) -> None:
    # the window no check closes: paused after the last check, renamed, then found lost
    folder = _project(tmp_path, ["items"])
    config = load_config(folder / "onceflow.yml")
    done = run_cli("extract", "--config", str(folder / "onceflow.yml"), "--date", RUN_DATE)
    assert done.returncode == 0, done.stderr
    data_path = folder / "lake" / "src" / "items" / "202501" / "23" / "recovery_20250123.parquet"
    successor = read_sidecar(data_path)
    assert successor is not None
    stale = data_path.read_bytes()[:-9] + b"x" + data_path.read_bytes()[-8:]  # other bytes
    data_path.write_bytes(stale)  # what the lost writer renamed over the successor's file
    day = date.fromisoformat(RUN_DATE)
    job = TableJob(
        table=config.tables[0],
        source=config.source("src"),
        source_url=config.source_url("src"),
        run_id="recovery_20250123",
        run_date=day,
        window=window_for(day, config.zone),
        lake=config.resolve(config.lake),
        zone=config.zone,
    )
    assert job.target == data_path
    lost = LockError("lost lock 'pipeline:recovery'", lock="pipeline:recovery")
    with pytest.raises(LockError, match="may have replaced a successor's committed file"):
        _lost_after_rename(job, "not-its-checksum", len(stale), lost)
    assert read_sidecar(data_path) is None  # the successor's commit is withdrawn

    again = run_cli("extract", "--config", str(folder / "onceflow.yml"), "--date", RUN_DATE)
    assert again.returncode == 0, again.stderr
    repaired = read_sidecar(data_path)
    assert repaired is not None and repaired["checksum"] == sha256(data_path)
    assert repaired["checksum"] == successor["checksum"]  # the same rows, read again
    consistent = run_cli("validate-consistency", "--config", str(folder / "onceflow.yml"))
    assert consistent.returncode == 0, consistent.stdout


def test_a_load_whose_job_lease_is_lost_between_tables_does_not_commit_the_next(
    tmp_path: Path,
) -> None:
    folder = _project(tmp_path, ["alpha", "beta"], rows=50)
    config = load_config(folder / "onceflow.yml")
    targets = [t.uri for t in config_targets(config)]
    first_table = targets[0]

    def check() -> None:
        # the worker's job lease, lost once the first table committed
        if open_table(first_table) is not None:
            raise LeaseLostError("job 1: lease lost", job_id=1)

    with pytest.raises(LeaseLostError, match="job 1: lease lost"):
        run_window(config, RUN_DATE, check=check)
    assert open_table(targets[0]) is not None
    assert open_table(targets[1]) is None  # refused before its commit
