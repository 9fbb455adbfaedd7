"""`early.take`: a failed early connection is the reader's to report again; a Ctrl-C while
waiting for one ends the command."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from onceflow.extract import early

URL = "postgresql://u@db.invalid/shop"


class _Closable:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def pending() -> Iterator[Future[tuple[Any, Any]]]:
    """A connection to URL that is still opening (a host that does not answer)."""
    future: Future[tuple[Any, Any]] = Future()
    early._pending[URL] = future
    yield future
    early._pending.pop(URL, None)


def test_a_failed_early_connection_is_none_so_the_reader_connects_itself(
    pending: Future[tuple[Any, Any]],
) -> None:
    pending.set_exception(OSError("connection refused"))
    assert early.take(URL) is None
    assert URL not in early._pending


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_raised_by_the_wait_is_not_swallowed(
    pending: Future[tuple[Any, Any]], stop: type[BaseException]
) -> None:
    pending.set_exception(stop())
    with pytest.raises(stop):
        early.take(URL)


def test_a_ctrl_c_while_waiting_for_the_connection_propagates_and_closes_it_later(
    pending: Future[tuple[Any, Any]],
) -> None:
    # the reader then connected again, to the host that had not answered, and the user's
    # Ctrl-C was lost. Python's own handler: another test of this process may have imported
    # the console scripts' entry, which installs onceflow.interrupts' handler
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            early.take(URL)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    database, conn = _Closable(), _Closable()
    pending.set_result((database, conn))  # it opened after all: nobody will use it
    assert conn.closed and database.closed
