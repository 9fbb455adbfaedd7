"""The one way tests run the real `onceflow` command: a process of this venv's script.

A command runs in a child forked from a server that has imported onceflow once
(tests/helpers/forkserver.py says why and what that skips); ONCEFLOW_TEST_EXEC=1 starts
each command as a new interpreter instead."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

from tests.helpers.forkserver import ForkedProcess

#: The console script installed beside this interpreter (the project's .venv in CI).
ONCEFLOW = str(Path(sys.executable).with_name("onceflow"))


def cli_env(crash_at: str | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI subprocess: no inherited crash point unless asked for."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("ONCEFLOW_CRASH_AT", "ONCEFLOW_PAUSE_AT")
    }
    env["NO_COLOR"] = "1"
    if crash_at:
        env["ONCEFLOW_CRASH_AT"] = crash_at
    env.update(extra or {})
    return env


def forking() -> bool:
    """Whether commands are forked from the fork server (the default) or exec'd."""
    return os.environ.get("ONCEFLOW_TEST_EXEC") != "1"


def run_cli(
    *args: str,
    cwd: Path | None = None,
    stdin: str | None = None,
    crash_at: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run `onceflow ARGS` to completion; a crash point only when given."""
    if not forking():
        return subprocess.run(
            [ONCEFLOW, *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            input=stdin,
            env=cli_env(crash_at, env),
            check=False,
            timeout=timeout,
        )
    proc = ForkedProcess(ONCEFLOW, list(args), env=cli_env(crash_at, env), cwd=cwd, stdin=stdin)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess([ONCEFLOW, *args], proc.wait(), out, err)


def run_python(
    script: str, *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `script` (Python source) with ARGS in a fresh interpreter of this venv: what a
    new process imports and how it exits, out of pytest's own process."""
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        timeout=timeout,
    )


def spawn(
    *args: str,
    cwd: Path | None = None,
    crash_at: str | None = None,
    env: dict[str, str] | None = None,
) -> ForkedProcess | subprocess.Popen[str]:
    """Start `onceflow ARGS` without waiting (to kill it from outside); `communicate`
    gives its output once it has ended."""
    if not forking():
        return subprocess.Popen(
            [ONCEFLOW, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(crash_at, env),
            cwd=cwd,
        )
    return ForkedProcess(ONCEFLOW, list(args), env=cli_env(crash_at, env), cwd=cwd)


#: A terminal's colour and style sequences, taken out of what `run_in_terminal` read.
_STYLE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_terminal(
    *args: str,
    columns: int,
    cwd: Path | None = None,
    set_columns: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run `onceflow ARGS` with stdout on a pseudo-terminal `columns` wide (COLUMNS set
    to it too, unless `set_columns` is False: then the width is the terminal's own), as
    a user at a terminal of that size runs it. stderr is a pipe, stdin empty; the output
    has its line ends as written (the terminal's `\\r\\n` back to `\\n`) and no colours.
    A new interpreter, not a fork of the fork server: the terminal must be its own."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = cli_env()
    env.pop("COLUMNS", None)
    if set_columns:
        env["COLUMNS"] = str(columns)
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [ONCEFLOW, *args], stdin=subprocess.DEVNULL, stdout=slave, stderr=err, cwd=cwd, env=env
        )
        os.close(slave)
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    proc.kill()
                    raise subprocess.TimeoutExpired([ONCEFLOW, *args], timeout)
                ready, _, _ = select.select([master], [], [], left)
                if not ready:
                    continue
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the program ended and closed the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
        finally:
            os.close(master)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    out = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    return subprocess.CompletedProcess([ONCEFLOW, *args], code, _STYLE.sub("", out), stderr)
