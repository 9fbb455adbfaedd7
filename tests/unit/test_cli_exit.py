"""When the CLI skips the interpreter's teardown at exit, and when it must not: a
profiler or tracer writes its output after the program returns (no subprocess here:
os._exit and sys.exit are watched)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest

import onceflow.cli as cli


class _Exited(Exception):
    """os._exit, caught."""


@pytest.fixture
def unwatched(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """No profiler, tracer or monitoring tool as far as exit_now can see (pytest-cov's
    tracer included); the codes os._exit was called with."""
    monkeypatch.delenv("ONCEFLOW_NO_FAST_EXIT", raising=False)
    monkeypatch.setattr(sys, "getprofile", lambda: None)
    monkeypatch.setattr(sys, "gettrace", lambda: None)
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is not None:
        monkeypatch.setattr(monitoring, "get_tool", lambda tool: None)
    monkeypatch.setattr(cli.atexit, "_run_exitfuncs", lambda: None)
    codes: list[int] = []

    def fast(code: int) -> None:
        codes.append(code)
        raise _Exited

    monkeypatch.setattr(cli.os, "_exit", fast)
    yield codes
    # an interrupted exit silences logging for the rest of the process: here, a test's
    logging.disable(logging.NOTSET)


def test_the_fast_exit_is_taken_when_nothing_watches(unwatched: list[int]) -> None:
    with pytest.raises(_Exited):
        cli.exit_now(3)
    assert unwatched == [3]


@pytest.mark.parametrize("hook", ["getprofile", "gettrace"])
def test_under_a_profiler_or_tracer_the_exit_is_the_normal_one(
    unwatched: list[int], monkeypatch: pytest.MonkeyPatch, hook: str
) -> None:
    """`python -m cProfile -o x.prof -m onceflow ...` wrote no profile: os._exit ended
    the process before cProfile could write it."""
    monkeypatch.setattr(sys, hook, lambda: object())
    with pytest.raises(SystemExit) as exited:
        cli.exit_now(3)
    assert exited.value.code == 3 and unwatched == []


def test_a_real_profiler_is_seen(unwatched: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    import cProfile

    monkeypatch.undo()  # the interpreter's own hooks, as cProfile sets them
    monkeypatch.setattr(cli.os, "_exit", unwatched.append)
    profile = cProfile.Profile()
    profile.enable()
    try:
        allowed = cli._fast_exit_allowed()
    finally:
        profile.disable()
    assert not allowed


@pytest.mark.parametrize(("value", "fast"), [("1", False), ("true", False), ("0", True)])
def test_onceflow_no_fast_exit_keeps_the_teardown(
    unwatched: list[int], monkeypatch: pytest.MonkeyPatch, value: str, fast: bool
) -> None:
    monkeypatch.setenv("ONCEFLOW_NO_FAST_EXIT", value)
    assert cli._fast_exit_allowed() is fast


def test_an_interrupted_command_does_not_wait_for_a_thread_still_at_work(
    unwatched: list[int],
) -> None:
    """A Ctrl-C while a table's thread waits for a source that does not answer: the exit
    waited for that thread, the connect timeout and its retries included."""
    import threading

    release = threading.Event()
    worker = threading.Thread(target=release.wait, args=(30,))
    worker.start()
    try:
        with pytest.raises(SystemExit) as exited:
            cli.exit_now(3)  # any other code still waits for it (the normal exit)
        assert exited.value.code == 3 and unwatched == []
        with pytest.raises(_Exited):
            cli.exit_now(cli.INTERRUPTED)
        assert unwatched == [130]
    finally:
        release.set()
        worker.join()
