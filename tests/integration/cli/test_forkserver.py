"""A command forked from the test fork server behaves as the same command exec'd.

The CLI and kill tests fork their commands (tests/helpers/forkserver.py); these checks
run the same commands both ways and compare what a test can see: exit code, output,
the environment, the folder and a real SIGKILL (test_load_cli's force-unlock answers
on standard input).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tests.helpers.cli import ONCEFLOW, cli_env, forking, run_cli, spawn
from tests.helpers.forkserver import ForkedProcess

pytestmark = pytest.mark.skipif(not forking(), reason="ONCEFLOW_TEST_EXEC=1: nothing is forked")


def _exec(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ONCEFLOW, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=cli_env(),
        check=False,
        timeout=120,
    )


def _project(folder: Path) -> Path:
    folder.mkdir()
    (folder / "onceflow.yml").write_text(
        yaml.safe_dump({"pipeline": "p", "sources": {}, "tables": [{"source": "nowhere"}]}),
        encoding="utf-8",
    )
    return folder


@pytest.mark.parametrize(
    "args",
    [
        ("--version",),
        ("--help",),
        ("status",),  # a config that names an unknown source: one line, exit 2
        ("no-such-command",),
        ("status", "--json", "--no-such-flag"),
    ],
)
def test_a_forked_command_gives_the_exit_code_and_output_of_an_execd_one(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    folder = _project(tmp_path / "p")
    forked, execd = run_cli(*args, cwd=folder), _exec(*args, cwd=folder)
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        execd.returncode,
        execd.stdout,
        execd.stderr,
    )


def test_a_forked_command_has_its_own_environment_and_folder(tmp_path: Path) -> None:
    folder = _project(tmp_path / "p")
    with sqlite3.connect(folder / "shop.db") as conn:
        conn.execute("CREATE TABLE t (id INTEGER)")
    (folder / "onceflow.yml").write_text(
        yaml.safe_dump(
            {
                "pipeline": "p",
                "state": "sqlite:///${STATE_NAME}.db",
                "sources": {"s": {"url": "sqlite:///shop.db"}},
                "tables": [{"source": "s", "table": "t"}],
            }
        ),
        encoding="utf-8",
    )
    first = run_cli("extract", cwd=folder, env={"STATE_NAME": "state_a"})
    second = run_cli("extract", cwd=folder, env={"STATE_NAME": "state_b"})
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert (folder / "state_a.db").exists() and (folder / "state_b.db").exists()
    assert "STATE_NAME" not in os.environ  # nothing leaked into the test's process
    unset = run_cli("extract", cwd=folder)
    assert unset.returncode != 0 and "STATE_NAME" in unset.stderr


def test_a_forked_command_is_a_process_of_its_own_that_sigkill_ends(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    with sqlite3.connect(folder / "shop.db") as conn:
        conn.execute("CREATE TABLE t (id INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
    (folder / "onceflow.yml").write_text(
        yaml.safe_dump(
            {
                "pipeline": "p",
                "sources": {"s": {"url": "sqlite:///shop.db"}},
                "tables": [{"source": "s", "table": "t"}],
            }
        ),
        encoding="utf-8",
    )
    gate = tmp_path / "gate"
    proc = spawn("extract", cwd=folder, env={"ONCEFLOW_PAUSE_AT": f"during_write:{gate}"})
    assert isinstance(proc, ForkedProcess)
    deadline = time.monotonic() + 60
    while not Path(f"{gate}.reached").exists():  # it waits mid-write, in its own folder
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    assert proc.pid != os.getpid() and Path(f"/proc/{proc.pid}").exists()
    assert proc.poll() is None
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert not Path(f"/proc/{proc.pid}").exists() or proc.pid == os.getpid()
    # the next command, forked from the same server, finds the killed one's work to redo
    rerun = run_cli("extract", "--json", cwd=folder)
    assert rerun.returncode == 0, rerun.stderr
    (table,) = json.loads(rerun.stdout)["tables"]
    assert pq.read_table(table["file_path"]).num_rows == 100
