"""Named crash points, so recovery tests can SIGKILL a real process at an exact step."""

from __future__ import annotations

import os
import signal

_ENV = "ONCEFLOW_CRASH_AT"


def crashpoint(name: str) -> None:
    """Kill this process with SIGKILL when ONCEFLOW_CRASH_AT names this point."""
    wanted = os.environ.get(_ENV)
    if wanted and wanted == name:
        os.kill(os.getpid(), signal.SIGKILL)
