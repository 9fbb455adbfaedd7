"""Named crash points, so recovery tests can SIGKILL a real process at an exact step.

ONCEFLOW_CRASH_AT=<point> kills the process the first time any table reaches <point>;
ONCEFLOW_CRASH_AT=<point>:<table key> only when that table reaches it, so a test can
crash in the middle of a run whose other tables are already committed.

ONCEFLOW_PAUSE_AT=<point>:<file> makes a process wait at <point> until <file> exists
(after creating <file>.reached), so that a test can act on it there - cut its machine
off the network, or SIGKILL it - at a known step.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

_ENV = "ONCEFLOW_CRASH_AT"
_PAUSE_ENV = "ONCEFLOW_PAUSE_AT"
POINTS = (
    "during_write",
    # extract: the new file written, the old sidecar removed, the file not renamed yet
    "before_data_rename",
    "after_data_rename",
    "after_sidecar",
    "after_delta_commit",
    # load.widen: the table rewritten with wider types, the file's own commit not made
    "after_widen",
    # validate: right after a rule's result is saved; the key is <table key>/<rule name>
    "validate_after_rule",
    # validate: the quarantine's rows computed, its commit not made; and just after it
    "quarantine_before_commit",
    "quarantine_after_commit",
    # the scheduler: a tick recorded (SCHEDULED), its job not queued yet
    "scheduler_after_tick",
    # a worker: jobs claimed, run not started; run started; pipeline done, not recorded
    "worker_after_claim",
    "worker_after_start",
    "worker_before_complete",
)


def crashpoint(name: str, key: str | None = None) -> None:
    """Kill this process with SIGKILL when ONCEFLOW_CRASH_AT names this point (and table);
    wait here when ONCEFLOW_PAUSE_AT names it."""
    wanted = os.environ.get(_ENV)
    if wanted:
        point, _, table = wanted.partition(":")
        if point == name and (not table or table == key):
            os.kill(os.getpid(), signal.SIGKILL)
    pausepoint(name)


def pausepoint(name: str) -> None:
    """Wait at this point while ONCEFLOW_PAUSE_AT names it, until its file exists."""
    wanted = os.environ.get(_PAUSE_ENV)
    if not wanted:
        return
    point, _, path = wanted.partition(":")
    if point != name or not path:
        return
    Path(f"{path}.reached").touch()
    while not Path(path).exists():
        time.sleep(0.05)
