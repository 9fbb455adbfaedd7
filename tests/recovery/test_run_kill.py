"""kill -9 of `onceflow run` during its load: the run is not shown completed, and the
rerun that finishes it counts as a restart. `onceflow extract` alone still completes."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.helpers.cli import run_cli
from tests.recovery.test_replay_kill import _demo

DAY = "2025-01-23"


def test_a_run_killed_during_its_load_shows_loading_and_its_rerun_is_a_restart(
    tmp_path: Path,
) -> None:
    demo = _demo(tmp_path / "demo")
    killed = run_cli("run", "--date", DAY, cwd=demo, crash_at="after_delta_commit")
    assert killed.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), killed.stderr

    status = json.loads(run_cli("status", "--date", DAY, "--json", cwd=demo).stdout)
    assert status["status"] == "loading"  # extracted, but its load never finished
    assert status["restart_count"] == 0
    text = run_cli("status", "--date", DAY, cwd=demo).stdout
    assert "loading" in text and f"onceflow run --date {DAY}" in text

    rerun = run_cli("run", "--date", DAY, "--json", cwd=demo)

    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["status"] == "completed"
    assert report["restart_count"] == 1  # it resumed a run a crash left unfinished
    assert report["validation"] is not None  # the post-load rules ran this time
    after = json.loads(run_cli("status", "--date", DAY, "--json", cwd=demo).stdout)
    assert (after["status"], after["restart_count"]) == ("completed", 1)
    again = json.loads(run_cli("run", "--date", DAY, "--json", cwd=demo).stdout)
    assert again["restart_count"] == 1  # rerunning a completed run is no restart


def test_extract_alone_completes_its_run(tmp_path: Path) -> None:
    demo = _demo(tmp_path / "demo")
    done = run_cli("extract", "--date", DAY, cwd=demo)
    assert done.returncode == 0, done.stderr
    status = json.loads(run_cli("status", "--date", DAY, "--json", cwd=demo).stdout)
    assert (status["status"], status["restart_count"]) == ("completed", 0)


def test_extract_after_a_run_killed_during_its_load_does_not_complete_it(
    tmp_path: Path,
) -> None:
    demo = _demo(tmp_path / "demo")
    killed = run_cli("run", "--date", DAY, cwd=demo, crash_at="after_delta_commit")
    assert killed.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), killed.stderr
    assert run_cli("extract", "--date", DAY, cwd=demo).returncode == 0
    status = json.loads(run_cli("status", "--date", DAY, "--json", cwd=demo).stdout)
    # its load did not finish: an extraction alone does not complete it, a run does
    assert (status["status"], status["restart_count"]) == ("failed", 1)
    assert run_cli("run", "--date", DAY, cwd=demo).returncode == 0
    status = json.loads(run_cli("status", "--date", DAY, "--json", cwd=demo).stdout)
    assert status["status"] == "completed"
