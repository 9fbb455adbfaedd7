"""A reader that closes stdout early (`onceflow status | head -1`) ends the command quietly
with 141 (128 + SIGPIPE), as a shell reports for `yes | head -1`: it exited 1 with nothing
said, which reads as "something failed"."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.cli import ONCEFLOW, cli_env, run_cli

DAY = "2025-01-23"


def _to_a_closed_pipe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`onceflow ARGS` writing into a pipe whose reader is already gone, so that its
    first write fails as the reader's early exit makes a later one fail (without the
    race of `| head -1`, which may read everything before it exits)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [ONCEFLOW, *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=cli_env(),
            check=False,
            timeout=300,
        )
    finally:
        os.close(write)


@pytest.fixture
def ran(demo: Path) -> Path:
    """The demo after a run and a backfill: status, runs and schedules to show."""
    assert run_cli("run", "--date", DAY, cwd=demo).returncode == 0
    queued = run_cli("backfill", "--from", "2025-01-20", "--to", "2025-01-22", cwd=demo)
    assert queued.returncode == 0, queued.stderr
    return demo


@pytest.mark.parametrize(
    "args",
    [
        ["status"],  # rich's table
        ["status", "--json"],
        ["runs", "list", "--limit", "50"],  # plain lines
        ["schedule", "preview", "nightly", "--count", "50"],
        ["--help"],
    ],
    ids=" ".join,
)
def test_a_closed_stdout_ends_the_command_quietly_with_141(ran: Path, args: list[str]) -> None:
    done = _to_a_closed_pipe(*args, cwd=ran)
    assert (done.returncode, done.stderr) == (141, "")


def test_a_failure_before_any_output_is_still_said(ran: Path) -> None:
    """Only a write to the closed pipe is taken for the reader's exit: an error line
    goes to stderr with its own exit code, as without the pipe."""
    done = _to_a_closed_pipe("status", "--run-id", "demo_19990101", cwd=ran)
    assert done.returncode == 1
    assert done.stderr == "error: run demo_19990101 is not in the state store\n"
