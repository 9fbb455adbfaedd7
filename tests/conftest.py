"""Shared fixtures: real PostgreSQL and MariaDB (unique schema/database per test), both stores.

A test that needs a server skips with a reason when it is absent, except under CI=true,
where a missing server is a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.servers import PG_BASE, pg_state_url, unavailable, unique


@pytest.fixture
def pg_admin() -> Iterator[object]:
    """An autocommit psycopg connection to the test database."""
    try:
        import psycopg

        conn = psycopg.connect(PG_BASE, autocommit=True, connect_timeout=5)
    except Exception as error:  # pragma: no cover - depends on the machine
        unavailable("PostgreSQL at 127.0.0.1:5432", error)
    yield conn
    conn.close()


@pytest.fixture
def pg_schema(pg_admin: object) -> Iterator[str]:
    """A fresh PostgreSQL schema, dropped after the test."""
    name = unique("of_test")
    pg_admin.execute(f'CREATE SCHEMA "{name}"')  # type: ignore[attr-defined]
    yield name
    pg_admin.execute(f'DROP SCHEMA "{name}" CASCADE')  # type: ignore[attr-defined]


@pytest.fixture
def pg_url() -> str:
    """The PostgreSQL source URL (tables are addressed as schema.table)."""
    return PG_BASE


@pytest.fixture
def mysql_admin() -> Iterator[object]:
    """A pymysql connection (autocommit) to the MariaDB server."""
    try:
        import pymysql

        conn = pymysql.connect(
            host="127.0.0.1",
            port=3306,
            user="root",
            password="",
            autocommit=True,
            connect_timeout=5,
        )
    except Exception as error:  # pragma: no cover - depends on the machine
        unavailable("MariaDB at 127.0.0.1:3306", error)
    yield conn
    conn.close()


@pytest.fixture
def mysql_db(mysql_admin: object) -> Iterator[str]:
    """A fresh MariaDB database; yields its URL. Dropped after the test."""
    name = unique("of_test")
    with mysql_admin.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    yield f"mysql://root@127.0.0.1:3306/{name}"
    with mysql_admin.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute(f"DROP DATABASE `{name}`")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """The state store, once per backend: every contract test runs on both."""
    from onceflow.state import open_store

    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'state.db'}")
        yield s
        s.close()
        return
    admin = request.getfixturevalue("pg_admin")
    schema = unique("of_state")
    admin.execute(f'CREATE SCHEMA "{schema}"')
    s = open_store(pg_state_url(schema))
    yield s
    s.close()
    admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite state URL in the test's temp folder."""
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend's name, for tests that build their own store URL (fresh_store_url)."""
    return str(request.param)


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """`onceflow init`'s demo project, its data pinned to the week ending 2025-01-23 so
    that a test does not depend on today's date (a module may define its own `demo`)."""
    from datetime import date

    from onceflow.demo import create_demo_database, init_project

    init_project(tmp_path / "demo")
    (tmp_path / "demo" / "shop.db").unlink()
    create_demo_database(tmp_path / "demo" / "shop.db", end=date(2025, 1, 23))
    return tmp_path / "demo"
