"""State-store helpers: a fresh store URL per backend, for tests that open it themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.servers import pg_state_url, unique


def fresh_store_url(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> str:
    """The URL of an empty store on `backend` (a PostgreSQL schema dropped after the test)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    admin = request.getfixturevalue("pg_admin")
    schema = unique("of_mig")
    admin.execute(f'CREATE SCHEMA "{schema}"')
    request.addfinalizer(lambda: admin.execute(f'DROP SCHEMA "{schema}" CASCADE'))
    return pg_state_url(schema)
