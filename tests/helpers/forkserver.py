"""Start `onceflow` commands fast: forked from a server that imported onceflow once.

Most of a CLI test's time went into starting interpreters: each command spent ~0.6 s
importing Arrow, Delta Lake, DuckDB and pydantic before it did anything, and the kill
tests start hundreds. The server imports onceflow and its libraries once, then forks a
child per command, as Android's zygote and multiprocessing's forkserver do. The child is
a real, separate process: its own pid, its own standard streams, folder and environment,
killed for real by SIGKILL at any instant. It runs the command's real entry point,
`onceflow.console.run`, with `sys.argv` as the console script would have it. What a fork
skips is the interpreter's start and the imports; the tests of those (`run_python`,
`python -m onceflow`, a command in a network namespace) still exec a new interpreter, and
ONCEFLOW_TEST_EXEC=1 makes every command exec as before.

The server is forked from nothing but imports: no command has run in it, so a child
starts from the same module state as a new interpreter. What an interpreter settles as it
starts (the PYTHON* variables, the hash seed) is the server's. A child's exit status comes back
over its request's socket, since the server, not the test, is its parent.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

#: What the server imports before it forks: what the commands import (Arrow, Delta Lake,
#: DuckDB, the database drivers) and onceflow's command modules.
PRELOAD = (
    "pyarrow",
    "pyarrow.compute",
    "pyarrow.dataset",
    "pyarrow.parquet",
    "deltalake",
    "duckdb",
    "psycopg",
    "pymysql",
    "sqlglot",
    "onceflow.cli",
    "onceflow.cli.app",
    "onceflow.config",
    "onceflow.consistency",
    "onceflow.extract",
    "onceflow.load",
    "onceflow.pipeline",
    "onceflow.schedule",
    "onceflow.validate",
)

_REQUEST_FDS = 3  # stdin, stdout, stderr


# -- the server ---------------------------------------------------------------------------


def _child(request: dict[str, Any], fds: list[int], script: str) -> None:
    """In the forked child: become the command and run it; never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        time.tzset()
        sys.argv = [script, *request["args"]]
        sys.path[0] = str(Path(script).parent)  # as the console script's interpreter has it
        from onceflow.console import run

        run()  # exits through os._exit unless a non-daemon thread is still alive
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        threading._shutdown()  # type: ignore[attr-defined]  # as the interpreter's exit does
    except BaseException:
        import traceback

        traceback.print_exc()
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def serve(path: str, script: str) -> None:
    """Listen on the Unix socket `path`; fork a child per request; report its exit."""
    for name in PRELOAD:
        __import__(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}
    print("READY", flush=True)
    while True:
        for key, _ in selector.select(timeout=0.5):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                data, fds, _, _ = socket.recv_fds(conn, 1 << 20, _REQUEST_FDS)
                request = json.loads(data)
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    listener.close()
                    for other in children.values():
                        other.close()
                    conn.close()
                    os.close(wake_r)
                    os.close(wake_w)
                    _child(request, fds, script)
                for fd in fds:
                    os.close(fd)
                children[pid] = conn
                conn.send(json.dumps({"pid": pid}).encode())
            else:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = children.pop(pid, None)
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.send(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode())
                conn.close()


# -- the client (the test's side) ---------------------------------------------------------


class _Server:
    """The one fork server of this test process, started on first use."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.folder = ""
        self.path = ""

    def address(self, script: str) -> str:
        if self.proc is not None and self.proc.poll() is None:
            return self.path
        self.folder = tempfile.mkdtemp(prefix="onceflow-forkserver-")
        self.path = os.path.join(self.folder, "socket")
        root = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from tests.helpers.forkserver import serve; "
                "serve(sys.argv[1], sys.argv[2])",
                self.path,
                script,
            ],
            cwd=root,  # the server runs no command, so it needs no environment of its own
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().strip()
        assert ready == "READY", f"the fork server did not start: {ready!r}"
        atexit.register(self.stop)
        return self.path

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=5)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
            os.rmdir(self.folder)


_SERVER = _Server()


class ForkedProcess:
    """A command forked by the server, with the part of `subprocess.Popen` tests use:
    pid, poll, wait, communicate, kill, terminate, send_signal, returncode.

    Its output goes to temporary files, read by `communicate` once it has exited: a pipe
    could fill up while nobody reads it."""

    def __init__(
        self,
        script: str,
        args: list[str],
        *,
        env: dict[str, str],
        cwd: Path | str | None = None,
        stdin: str | None = None,
    ) -> None:
        self.args = [script, *args]
        self.returncode: int | None = None
        self._files: list[IO[bytes]] = []
        stdin_file = self._temp((stdin or "").encode())
        self._out, self._err = self._temp(), self._temp()
        request = {"args": args, "env": env, "cwd": str(cwd or os.getcwd())}
        self._conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._conn.connect(_SERVER.address(script))
        fds = [stdin_file.fileno(), self._out.fileno(), self._err.fileno()]
        socket.send_fds(self._conn, [json.dumps(request).encode()], fds)
        self.pid = int(json.loads(self._conn.recv(4096))["pid"])

    def _temp(self, content: bytes | None = None) -> IO[bytes]:
        handle = tempfile.TemporaryFile()  # noqa: SIM115 - closed by communicate
        if content is not None:
            handle.write(content)
            handle.seek(0)
        self._files.append(handle)
        return handle

    def poll(self) -> int | None:
        """The exit code once the command has ended (negative: the signal that ended it)."""
        return self._collect(0.0)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the end of the command; TimeoutExpired after `timeout` seconds."""
        code = self._collect(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return code

    def _collect(self, timeout: float | None) -> int | None:
        if self.returncode is None:
            self._conn.settimeout(timeout)
            try:
                message = self._conn.recv(4096)
            except (TimeoutError, BlockingIOError):
                return None
            if not message:  # the server itself went away: its children went with it
                raise RuntimeError(f"the fork server lost {self.args}")
            self.returncode = int(json.loads(message)["exit"])
            self._conn.close()
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Wait for the end, then return its (stdout, stderr)."""
        self.wait(timeout)
        outputs = []
        for handle in (self._out, self._err):
            handle.seek(0)
            data = handle.read()
            outputs.append(data.decode(errors="replace"))
        for handle in self._files:
            handle.close()
        return outputs[0], outputs[1]

    def send_signal(self, sig: int) -> None:
        """Send `sig` to the command, unless it has ended."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def __del__(self) -> None:
        # a test that only waited never read the output: its files go with the process
        for handle in getattr(self, "_files", ()):
            handle.close()
        if hasattr(self, "_conn"):
            self._conn.close()

    def __enter__(self) -> ForkedProcess:
        return self

    def __exit__(self, *_: object) -> None:
        if self.returncode is None:
            self.kill()
            self.wait()
        for handle in self._files:
            handle.close()
