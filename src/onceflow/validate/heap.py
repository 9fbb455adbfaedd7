"""Keep the garbage collector off the objects a process had before a validation.

A validation makes many short-lived objects (SQL trees, results) and, in a new process,
the SQL dialect's classes. Each time enough of them survive, CPython runs a full
collection that walks every tracked object of the process: the modules of pyarrow,
pydantic, sqlglot and deltalake, ~20 ms on the benchmark's incremental run (a tenth of
it) to free nothing. `gc.freeze()` moves the existing objects out of the collector's
sight in O(1) and `gc.unfreeze()` puts them back when the last validation ends, so the
next full collection sees everything again. Objects made during the run are collected as
usual, and reference counting frees anything at any time; the only change is when a
cycle that was garbage before the run is found (after it instead of during it). A
process that froze objects itself (a pre-fork server) is left as it is.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_depth = 0  # validations running (threads: the loader's gate runs files in parallel)
_ours = False  # whether the freeze in effect is this module's


@contextlib.contextmanager
def old_objects_frozen() -> Iterator[None]:
    """Within the block, full collections skip the objects that existed before it."""
    global _depth, _ours
    with _lock:
        if _depth == 0:
            _ours = gc.get_freeze_count() == 0
            if _ours:
                gc.freeze()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _ours:
                gc.unfreeze()
                _ours = False
