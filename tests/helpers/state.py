"""State-store helpers: a fresh store URL per backend, for tests that open it themselves;
a second contender on a thread of its own."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers.servers import pg_state_url, unique

if TYPE_CHECKING:
    from onceflow.state import Store


def fresh_store_url(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> str:
    """The URL of an empty store on `backend` (a PostgreSQL schema dropped after the test)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    admin = request.getfixturevalue("pg_admin")
    schema = unique("of_mig")
    admin.execute(f'CREATE SCHEMA "{schema}"')
    request.addfinalizer(lambda: admin.execute(f'DROP SCHEMA "{schema}" CASCADE'))
    return pg_state_url(schema)


def in_thread(store: Store, call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run `call` on a new thread, which has its own connection to `store` (closed when it
    ends): a second contender. The list gets its result."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(call())
        finally:
            store.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out
