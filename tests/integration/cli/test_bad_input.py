"""Bad input: one clear line naming the problem, the table failed, nothing committed for it,
the other tables extracted, and the CLI's exit code says so."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from onceflow.state import open_store
from tests.helpers.cli import run_cli
from tests.helpers.extract import unique_name, write_yaml

RUN_ID = "daily_extract_20250123"


def _good_sqlite(tmp_path: Path) -> str:
    path = tmp_path / "good.db"
    if path.exists():
        return f"sqlite:///{path}"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE ok (id INTEGER); INSERT INTO ok VALUES (1), (2);")
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def _config(tmp_path: Path, bad_source: dict, bad_table: dict, lake: Path | None = None) -> Path:
    return write_yaml(
        tmp_path / "onceflow.yml",
        {
            "state": f"sqlite:///{tmp_path / 'state.db'}",
            "lake": str(lake or tmp_path / "lake"),
            "retry": {"max_attempts": 2, "backoff_seconds": 0, "max_backoff_seconds": 0},
            "sources": {"bad": bad_source, "good": {"url": _good_sqlite(tmp_path)}},
            "tables": [{"source": "bad", **bad_table}, {"source": "good", "table": "ok"}],
        },
    )


def _extract_and_check(
    tmp_path: Path,
    config: Path,
    bad_key: str,
    lake: Path | None = None,
    *,
    must_say: str,
    secret: str | None = None,
) -> str:
    """Run `onceflow extract`; check exit 1, a one-line error, state, and what was committed."""
    done = run_cli("extract", "--config", str(config), "--date", "2025-01-23", cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    if secret:
        assert secret not in output
    failed_lines = [ln for ln in done.stderr.splitlines() if ln.strip().startswith("failed:")]
    assert len(failed_lines) == 1, output
    line = failed_lines[0]
    assert bad_key in line and must_say in line.lower(), line

    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        records = store.extractions.of_run(RUN_ID)
    finally:
        store.close()
    assert records[bad_key].status == "failed"
    assert must_say in (records[bad_key].error or "").lower()
    assert "\n" not in (records[bad_key].error or "")
    if secret:
        assert secret not in (records[bad_key].error or "")
    assert records["good.ok"].status == "completed"

    lake = lake or tmp_path / "lake"
    bad_files = list((lake / "bad").rglob("*")) if (lake / "bad").exists() else []
    assert not [p for p in bad_files if p.is_file()], bad_files
    good = list((lake / "good" / "ok").rglob("*.parquet"))
    assert len(good) == 1 and good[0].with_name(f"{RUN_ID}_metadata.json").is_file()
    return line


def test_unknown_source_is_a_config_error(tmp_path):
    config = write_yaml(
        tmp_path / "onceflow.yml",
        {
            "sources": {"shop": {"url": _good_sqlite(tmp_path)}},
            "tables": [{"source": "shpo", "table": "ok"}],
        },
    )
    done = run_cli("extract", "--config", str(config), "--date", "2025-01-23", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "unknown source 'shpo'" in done.stderr and "shop" in done.stderr
    assert not (tmp_path / "lake").exists()


def test_invalid_date_is_a_config_error(tmp_path):
    config = _config(tmp_path, {"url": _good_sqlite(tmp_path)}, {"table": "ok", "name": "x"})
    done = run_cli("extract", "--config", str(config), "--date", "2025-13-45", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "invalid date '2025-13-45'" in done.stderr and "YYYY-MM-DD" in done.stderr
    assert not (tmp_path / "lake").exists()


@pytest.mark.mysql
def test_wrong_password_is_not_shown(mysql_admin, mysql_db, tmp_path):
    user, real, wrong = unique_name("of_user"), "Real-Pw-4291x", "Wrong-Pw-7733q"
    db = mysql_db.rsplit("/", 1)[1]
    with mysql_admin.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{real}'")
        cur.execute(f"GRANT SELECT ON `{db}`.* TO '{user}'@'%'")
        cur.execute(f"CREATE TABLE `{db}`.t (id int)")
    try:
        config = _config(
            tmp_path, {"url": f"mysql://{user}:{wrong}@127.0.0.1:3306/{db}"}, {"table": "t"}
        )
        line = _extract_and_check(
            tmp_path, config, "bad.t", must_say="authentication failed", secret=wrong
        )
        assert real not in line
        sidecars = list((tmp_path / "lake").rglob("*.json"))
        assert all(wrong not in p.read_text() for p in sidecars)
    finally:
        with mysql_admin.cursor() as cur:
            cur.execute(f"DROP USER '{user}'@'%'")


@pytest.mark.postgres
def test_unknown_postgres_role(pg_admin, pg_schema, tmp_path):
    config = _config(
        tmp_path,
        {"url": "postgresql://no_such_role_x:pw-secret-91@127.0.0.1:5432/test"},
        {"table": f"{pg_schema}.t"},
    )
    _extract_and_check(
        tmp_path,
        config,
        f"bad.{pg_schema}.t",
        must_say="authentication failed",
        secret="pw-secret-91",
    )


@pytest.mark.postgres
def test_missing_postgres_table(pg_admin, pg_schema, pg_url, tmp_path):
    config = _config(tmp_path, {"url": pg_url}, {"table": f"{pg_schema}.nope"})
    line = _extract_and_check(tmp_path, config, f"bad.{pg_schema}.nope", must_say="table not found")
    assert "nope" in line


@pytest.mark.postgres
def test_missing_postgres_cursor_column(pg_admin, pg_schema, pg_url, tmp_path):
    pg_admin.execute(f'CREATE TABLE "{pg_schema}".t (id int, updated_at timestamptz)')
    config = _config(
        tmp_path,
        {"url": pg_url},
        {"table": f"{pg_schema}.t", "extract": {"mode": "incremental", "cursor": "updatd_at"}},
    )
    line = _extract_and_check(tmp_path, config, f"bad.{pg_schema}.t", must_say="column not found")
    assert "updatd_at" in line


@pytest.mark.mysql
def test_missing_mysql_table_and_column(mysql_admin, mysql_db, tmp_path):
    db = mysql_db.rsplit("/", 1)[1]
    with mysql_admin.cursor() as cur:
        cur.execute(f"CREATE TABLE `{db}`.t (id int, updated_at datetime)")
    config = _config(
        tmp_path,
        {"url": mysql_db},
        {"table": "t", "extract": {"mode": "incremental", "cursor": "updatd_at"}},
    )
    line = _extract_and_check(tmp_path, config, "bad.t", must_say="column not found")
    assert "updatd_at" in line
    (tmp_path / "state.db").unlink()
    config = _config(tmp_path, {"url": mysql_db}, {"table": "nope"})
    _extract_and_check(tmp_path, config, "bad.nope", must_say="table not found")


def test_missing_sqlite_table_and_column(tmp_path):
    path = tmp_path / "bad.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER, at TEXT)")
    conn.commit()
    conn.close()
    config = _config(tmp_path, {"url": f"sqlite:///{path}"}, {"table": "nope"})
    _extract_and_check(tmp_path, config, "bad.nope", must_say="table not found")
    (tmp_path / "state.db").unlink()
    config = _config(
        tmp_path,
        {"url": f"sqlite:///{path}"},
        {"table": "t", "extract": {"mode": "incremental", "cursor": "att"}},
    )
    _extract_and_check(tmp_path, config, "bad.t", must_say="column not found")


def test_misspelt_sqlite_cursor_of_a_table_with_rows_fails_it_by_name(tmp_path):
    """SQLite reads a double-quoted name that is no column as its text: the table failed
    as holding 2 values "not ISO 8601 (e.g. 'att')", with a conversion query to paste."""
    path = tmp_path / "bad.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE t (id INTEGER, at TEXT);"
        "INSERT INTO t VALUES (1, '2025-01-23 10:00:00'), (2, '2025-01-23 11:00:00');"
    )
    conn.commit()
    conn.close()
    config = _config(
        tmp_path,
        {"url": f"sqlite:///{path}"},
        {"table": "t", "extract": {"mode": "incremental", "cursor": "att"}},
    )
    line = _extract_and_check(tmp_path, config, "bad.t", must_say="column not found")
    assert "cursor column 'att' is not a column of t (columns: id, at)" in line
    assert "ISO 8601" not in line


def test_lake_under_a_file_is_a_clear_error(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    lake = afile / "lake"
    config = write_yaml(
        tmp_path / "onceflow.yml",
        {
            "state": f"sqlite:///{tmp_path / 'state.db'}",
            "lake": str(lake),
            "sources": {"good": {"url": _good_sqlite(tmp_path)}},
            "tables": [{"source": "good", "table": "ok"}],
        },
    )
    done = run_cli(
        "extract", "--config", str(config), "--date", "2025-01-23", "--json", cwd=tmp_path
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    error = report["tables"][0]["error"]
    assert "cannot write to lake folder" in error and "Not a directory" in error, error
    assert "\n" not in error
    assert afile.read_text() == "not a folder"


def test_an_unsupported_state_store_fails_check_and_run_with_exit_2(tmp_path):
    """`check` said "config ok" and `run` exited 1 when it opened the store."""
    config = write_yaml(
        tmp_path / "onceflow.yml",
        {
            "state": "mongodb://x/y",
            "sources": {"good": {"url": _good_sqlite(tmp_path)}},
            "tables": [{"source": "good", "table": "ok"}],
        },
    )
    for args in (["check"], ["run", "--date", "2025-01-23"]):
        done = run_cli(*args, "--config", str(config), cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().count("\n") == 0
        assert "state: unsupported state store (scheme 'mongodb')" in done.stderr


def test_a_sqlalchemy_source_without_its_driver_fails_check_and_names_the_urls_that_work(
    tmp_path,
):
    """`check` passed; the run failed with `ModuleNotFoundError: No module named 'MySQLdb'`."""
    bad = {"url": "mysql://etl@127.0.0.1:1/crm", "reader": "sqlalchemy"}
    config = _config(tmp_path, bad, {"table": "t"})
    done = run_cli("check", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 2
    assert "sources.bad.url: mysql:// read through SQLAlchemy needs" in done.stderr
    assert "mysql+pymysql://" in done.stderr and "reader: auto" in done.stderr
    line = _extract_and_check(tmp_path, config, "bad.t", must_say="mysql+pymysql://")
    assert "MySQLdb" in line and "ModuleNotFoundError" not in line


def test_status_and_load_run_without_a_source_secret_and_extract_names_it(tmp_path):
    """status, load and validate-consistency refused to run without `${PGPW}` (exit 2),
    a source password they never use: a monitoring host has no source secrets."""
    config = write_yaml(
        tmp_path / "onceflow.yml",
        {
            "state": f"sqlite:///{tmp_path / 'state.db'}",
            "sources": {"pg": {"url": "postgresql://app:${OF_TEST_UNSET_PW}@127.0.0.1:1/db"}},
            "tables": [{"source": "pg", "table": "t"}],
        },
    )
    for args in (["status"], ["load"], ["validate-consistency"]):
        done = run_cli(*args, "--config", str(config), cwd=tmp_path)
        assert done.returncode == 0, (args, done.stderr)
    for args in (["check"], ["extract", "--date", "2025-01-23"]):
        done = run_cli(*args, "--config", str(config), cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.strip() == (
            f"error: {config}: sources.pg.url: environment variable OF_TEST_UNSET_PW is not "
            "set; export it or write ${OF_TEST_UNSET_PW:-default}"
        )
