"""The `onceflow` program exits without the interpreter's teardown, losing nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.helpers.cli import run_python


def _python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run_python(textwrap.dedent(code), cwd=tmp_path)


def test_the_exit_code_buffered_output_and_exit_handlers_survive(tmp_path):
    done = _python(
        """
        import atexit, logging, sys, tempfile
        from onceflow.cli import exit_now
        folder = tempfile.TemporaryDirectory(dir=".")  # removed by a finalizer at exit
        open("folder", "w").write(folder.name)
        atexit.register(lambda: open("handler", "w").write("ran"))
        handler = logging.FileHandler("log.txt")
        logging.getLogger("t").addHandler(handler)
        logging.getLogger("t").warning("logged")
        sys.stdout.write("buffered, no newline")
        sys.stderr.write("to stderr")
        exit_now(3)
        """,
        tmp_path,
    )
    assert done.returncode == 3
    assert done.stdout == "buffered, no newline"
    assert done.stderr == "to stderr"
    assert (tmp_path / "handler").read_text() == "ran"
    assert (tmp_path / "log.txt").read_text() == "logged\n"
    assert not Path((tmp_path / "folder").read_text()).exists()


def test_a_running_non_daemon_thread_is_waited_for(tmp_path):
    done = _python(
        """
        import threading, time
        from onceflow.cli import exit_now
        def work():
            time.sleep(0.3)
            open("finished", "w").write("yes")
        threading.Thread(target=work).start()
        exit_now(0)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "finished").read_text() == "yes"


def test_the_program_exits_with_the_commands_code(tmp_path):
    missing = _python(
        "from onceflow.cli import run; import sys; sys.argv = ['onceflow', 'check', "
        "'--config', 'nope.yml']; run()",
        tmp_path,
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: config file nope.yml not found")
    module = subprocess.run(
        [sys.executable, "-m", "onceflow", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert module.returncode == 0
    assert module.stdout.startswith("onceflow ")


def test_the_program_under_cprofile_writes_its_profile(tmp_path):
    """`python -m cProfile -o x.prof -m onceflow ...` (docs/development.md): the fast
    exit is skipped under a profiler, so cProfile writes the profile when it returns."""
    done = subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", "x.prof", "-m", "onceflow", "--version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("onceflow ")
    import pstats

    assert pstats.Stats(str(tmp_path / "x.prof")).total_calls > 0
