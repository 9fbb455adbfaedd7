"""Ctrl-C at any moment: the SIGINT handler the console scripts install, and what the exit
needs to know of it. Standard library only: it is installed before the CLI is imported.

Raised inside one of importlib's weakref callbacks (its module locks'), a
KeyboardInterrupt is "ignored" by Python: it prints `Exception ignored in ...
KeyboardInterrupt` with a traceback and the command runs on. Commands import lazily while
they run, so such a moment comes at any time; there the signal is put off and delivered
again 20 ms later, once the import has moved on. A program that ends before then (its
imports went on to the end) still ends as interrupted: `pending` says so to the exit.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # not `signal`: its enums cost ms of this window
import _thread
import os
import time

# whether a Ctrl-C was put off and not yet delivered, and whether one was raised: flags
# only the handler sets, and it runs in the main thread
_put_off = [False]
_raised = [False]


def on_interrupt(signum: int, frame: object) -> None:
    """The SIGINT handler: KeyboardInterrupt, but never inside the import machinery."""
    code = getattr(frame, "f_code", None)
    if code is not None and code.co_filename.startswith("<frozen importlib"):
        _put_off[0] = True
        # a bare `_thread` thread: built in, so never half imported (this signal can land
        # while `threading` itself is being imported), and never waited for at the exit
        _thread.start_new_thread(_deliver_again, (signum,))
        return
    _put_off[0] = False
    _raised[0] = True
    raise KeyboardInterrupt


def _deliver_again(signum: int) -> None:
    time.sleep(0.02)
    os.kill(os.getpid(), signum)


def install() -> None:
    """Make `on_interrupt` the SIGINT handler (main thread only, as for any handler)."""
    _signal.signal(_signal.SIGINT, on_interrupt)


def pending() -> bool:
    """Whether a Ctrl-C was put off and not yet delivered."""
    return _put_off[0]


def received() -> bool:
    """Whether this process was sent a Ctrl-C (raised or put off): an error a library made
    of the KeyboardInterrupt (pydantic-core builds a validator's schema in Rust and says
    `SchemaError: ... KeyboardInterrupt`, with no cause to follow) is the interrupt."""
    return _raised[0] or _put_off[0]
