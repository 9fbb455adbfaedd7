"""A Ctrl-C at any moment of a command, its start-up included, ends it with
`interrupted` and exit code 130, never a Python traceback."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from onceflow.demo import init_project
from tests.helpers.cli import cli_env, run_cli, run_python, spawn

ROOT = Path(__file__).resolve().parents[3]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]


def console_script(entry: str) -> str:
    """The console script pip writes for `module:function`, telling the test (by a file
    it names first) that the interpreter has started and the entry module's import comes
    next: that import and all that follows is the program's to interrupt cleanly."""
    module, function = entry.split(":")
    return (
        # os.open: the file exists only once the call is all but done (open() makes it,
        # then sets up its text encoder, which an interrupt could still hit)
        "import os, sys\nos.close(os.open(sys.argv.pop(1), os.O_CREAT | os.O_WRONLY))\n"
        f"from {module} import {function}\nsys.exit({function}())\n"
    )


def interrupt(
    script: str, args: list[str], delay: float, cwd: Callable[[int], Path]
) -> tuple[int, str]:
    """The exit code and stderr of `script` sent SIGINT `delay` s after its start, tried
    again in a fresh `cwd(attempt)` when the program had already ended: on a loaded
    machine this process can sleep far longer than `delay`, and a program that ended
    before the signal proves nothing (run again where it ran, it would be a quick no-op)."""
    for attempt in range(5):
        folder = cwd(attempt)
        outcome = _interrupt_once(script, args, delay, folder, folder / f"started-{delay}")
        if outcome is not None:
            return outcome
    pytest.fail(f"the program ended before the signal {delay} s after its start, 5 times")


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _interrupt_once(
    script: str, args: list[str], delay: float, cwd: Path, started: Path
) -> tuple[int, str] | None:
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(started), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        # this checkout's onceflow, wherever the command runs (a relative PYTHONPATH)
        env=cli_env(extra={"PYTHONPATH": str(ROOT / "src")}),
    )
    deadline = time.monotonic() + 30
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(delay)
    if proc.poll() is not None:
        proc.communicate(timeout=60)
        return None
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


# from 0.05 s: the entry module's own import (a few ms) is the one window left, and
# test_the_console_scripts_entry_module_imports_nothing_heavy keeps it short
@pytest.mark.parametrize("delay", [0.05, 0.1, 0.2, 0.4, 0.8])
def test_ctrl_c_while_the_cli_starts_says_interrupted_without_a_traceback(
    tmp_path: Path, delay: float
) -> None:

    def demo(attempt: int) -> Path:
        init_project(tmp_path / f"demo-{attempt}")
        return tmp_path / f"demo-{attempt}"

    # a run of the demo takes over a second: the interrupt finds it importing or running
    code, err = interrupt(
        console_script(SCRIPTS["onceflow"]), ["run", "--date", "2025-01-10"], delay, demo
    )
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert code == 130 and err.rstrip().endswith("interrupted")


@pytest.mark.parametrize("delay", [0.05, 0.2])
def test_ctrl_c_while_the_validator_job_starts_says_interrupted(
    tmp_path: Path, delay: float
) -> None:
    code, err = interrupt(
        console_script(SCRIPTS["data-validator-job"]),
        ["--help"],
        delay,
        lambda attempt: _folder(tmp_path / f"try-{attempt}"),
    )
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert code == 130 and err.rstrip().endswith("interrupted")


def test_the_console_scripts_entry_module_imports_nothing_heavy() -> None:
    # the interrupt window before the entry module's `try` is this import: keep it short
    done = run_python(
        "import sys, onceflow.console\n"
        "print(' '.join(m for m in ('typing', 'typer', 'pydantic', 'onceflow.cli') "
        "if m in sys.modules))"
    )
    assert done.returncode == 0 and done.stdout.strip() == ""


def _silent_postgres_project(tmp_path: Path, port: int) -> Path:
    """A project whose one table is read from a PostgreSQL "server" at `port` that takes
    the connection and never answers: libpq waits for its connect timeout, then retries."""
    data = {
        "pipeline": "p",
        "state": "sqlite:///state.db",
        "lake": "./lake",
        "warehouse": "./warehouse",
        "sources": {"pg": {"url": f"postgresql://u@127.0.0.1:{port}/db?connect_timeout=120"}},
        "tables": [{"source": "pg", "table": "public.events", "extract": {"mode": "full"}}],
    }
    (tmp_path / "onceflow.yml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return tmp_path


def _table_running(state: Path) -> bool:
    """Whether the table's extraction started (a worker thread is reading it)."""
    if not state.exists():
        return False
    try:
        with sqlite3.connect(state, timeout=1) as conn:
            rows = conn.execute("SELECT 1 FROM extractions WHERE status = 'running'").fetchall()
    except sqlite3.Error:  # not created yet
        return False
    return bool(rows)


# `extract` takes the connection opened early while it started; `run` connects in the
# table's thread. Either way the command waited for that thread, its connect timeout and
# its retries included, before it exited (and an early connection's wait swallowed a
# Ctrl-C on the main thread).
@pytest.mark.parametrize("command", ["extract", "run"])
def test_ctrl_c_while_a_source_does_not_answer_ends_the_command_at_once(
    tmp_path: Path, command: str
) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.settimeout(60)
        project = _silent_postgres_project(tmp_path, server.getsockname()[1])
        script = console_script(SCRIPTS["onceflow"])
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / "go"), command, "--date", "2025-01-10"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=project,
            env=cli_env(extra={"PYTHONPATH": str(ROOT / "src")}),
        )
        try:
            accepted, _ = server.accept()  # the source is being connected to
            with accepted:
                deadline = time.monotonic() + 60
                while not _table_running(project / "state.db"):
                    assert proc.poll() is None and time.monotonic() < deadline
                    time.sleep(0.02)
                proc.send_signal(signal.SIGINT)
                started = time.monotonic()
                _, err = proc.communicate(timeout=30)
                took = time.monotonic() - started
        finally:
            proc.kill()
            proc.communicate()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert proc.returncode == 130 and err.rstrip().endswith("interrupted"), err
    assert took < 10


def test_ctrl_c_while_a_table_loads_ends_the_load_without_waiting_for_it(demo: Path) -> None:
    # the load's threads were waited for, the tables not started yet loaded too
    assert run_cli("extract", "--date", "2025-01-20", cwd=demo).returncode == 0
    gate = demo / "gate"
    proc = spawn(
        "load",
        "--date",
        "2025-01-20",
        cwd=demo,
        env={"ONCEFLOW_PAUSE_AT": f"after_delta_commit:{gate}"},
    )
    try:
        deadline = time.monotonic() + 120
        while not Path(f"{gate}.reached").exists():  # a table's thread waits at the gate
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        gate.touch()
        proc.kill()
        proc.wait()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert proc.returncode == 130 and err.rstrip().endswith("interrupted"), err
