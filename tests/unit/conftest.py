"""Unit tests run with no server and no subprocess: both are refused here."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import croniter  # noqa: F401 - imported here, before subprocesses are refused: its import
import pytest  # runs `file` on the interpreter (platform.architecture) to detect 32-bit builds

SERVER_FIXTURES = {"pg_admin", "pg_schema", "pg_url", "mysql_admin", "mysql_db"}


@pytest.fixture(autouse=True)
def _no_servers_or_subprocesses(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    used = SERVER_FIXTURES & set(request.fixturenames)
    if used or "postgresql" in request.node.name:
        pytest.fail(f"a unit test may not use a server ({', '.join(sorted(used))}): move it")

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a unit test may not start a subprocess: move it to integration/")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    yield


@pytest.fixture
def cli_globals_restored() -> Iterator[None]:
    """--debug and --log-format set process-wide settings and the `onceflow` logger: put
    them back after a test that runs the CLI in this process."""
    import logging

    from onceflow.cli.app import settings

    saved = dict(settings)
    logger = logging.getLogger("onceflow")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    settings.update(saved)
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate
