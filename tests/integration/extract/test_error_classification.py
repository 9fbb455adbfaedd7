"""classify on errors from real database servers and drivers (PostgreSQL, MariaDB)."""

from __future__ import annotations

import pytest

from onceflow.extract.classify import classify

REFUSED_PG = "postgresql://root@127.0.0.1:1/test"


def _raised(fn) -> BaseException:
    try:
        fn()
    except Exception as error:
        return error
    raise AssertionError("expected an exception")


def _check(error: BaseException, transient: bool, label: str) -> str:
    result = classify(error, "src.t")
    message = str(result)
    assert result.transient is transient, message
    assert message.startswith("src.t: ") and label in message, message
    assert "\n" not in message
    return message


def test_connection_refused_is_transient_for_every_driver():
    import adbc_driver_postgresql.dbapi as adbc_pg
    import psycopg
    import pymysql

    _check(_raised(lambda: psycopg.connect(REFUSED_PG, connect_timeout=2)), True, "transient")
    _check(_raised(lambda: adbc_pg.connect(REFUSED_PG)), True, "transient")
    _check(
        _raised(lambda: pymysql.connect(host="127.0.0.1", port=1, user="root", connect_timeout=2)),
        True,
        "transient",
    )


@pytest.mark.postgres
def test_postgres_errors_from_psycopg_and_adbc(pg_admin, pg_url):
    import adbc_driver_postgresql.dbapi as adbc_pg
    import psycopg

    _check(
        _raised(lambda: pg_admin.execute("SELECT * FROM no_such_table_x")), False, "table not found"
    )
    _check(
        _raised(lambda: pg_admin.execute("SELECT no_such_col FROM pg_class")),
        False,
        "column not found",
    )
    with adbc_pg.connect(pg_url) as conn, conn.cursor() as cur:
        _check(
            _raised(lambda: cur.execute("SELECT * FROM no_such_table_x")), False, "table not found"
        )
    with psycopg.connect(pg_url, autocommit=True) as conn:
        serialization = _raised(
            lambda: conn.execute(
                "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$"
            )
        )
        _check(serialization, True, "transient")
        deadlock = _raised(
            lambda: conn.execute(
                "DO $$ BEGIN RAISE EXCEPTION 'deadlock' USING ERRCODE = '40P01'; END $$"
            )
        )
        _check(deadlock, True, "transient")
    role = _raised(
        lambda: psycopg.connect(
            "postgresql://no_such_role_q:hunter2-secret@127.0.0.1:5432/test", connect_timeout=5
        )
    )
    message = _check(role, False, "authentication failed")
    assert "hunter2-secret" not in message


@pytest.mark.mysql
def test_mysql_errors_from_pymysql(mysql_admin):
    import pymysql

    with mysql_admin.cursor() as cur:
        _check(
            _raised(lambda: cur.execute("SELECT * FROM mysql.no_such_table_x")),
            False,
            "table not found",
        )
        _check(
            _raised(lambda: cur.execute("SELECT no_such_col FROM mysql.user")),
            False,
            "column not found",
        )
    wrong = _raised(
        lambda: pymysql.connect(
            host="127.0.0.1", port=3306, user="root", password="wrong-pw-5521", connect_timeout=5
        )
    )
    message = _check(wrong, False, "authentication failed")
    assert "wrong-pw-5521" not in message
