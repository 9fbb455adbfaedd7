"""The test servers (PostgreSQL, MariaDB): where they are, and what to do when they are not."""

from __future__ import annotations

import os
import uuid

import pytest

PG_BASE = os.environ.get("ONCEFLOW_TEST_PG", "postgresql://root@127.0.0.1:5432/test")
MYSQL_BASE = os.environ.get("ONCEFLOW_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(what: str, error: Exception) -> None:
    """Skip the test with the reason, or fail it under CI=true, where servers are required."""
    missing(f"{what} is not reachable ({type(error).__name__}: {str(error).strip()[:120]})")


def missing(message: str) -> None:
    """Skip the test saying what the server lacks (`message`), or fail it under CI=true,
    where the servers must offer everything the tests use."""
    if IN_CI:
        pytest.fail(f"{message}; CI requires it")
    pytest.skip(message)


def unique(prefix: str) -> str:
    """A unique lower-case identifier for a test's schema or database."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def pg_state_url(schema: str) -> str:
    """A PostgreSQL state-store URL whose tables live in `schema`."""
    return f"{PG_BASE}?options=-csearch_path%3D{schema}"
