"""The seed extractor's command line on the real `onceflow`: a tables file, Oracle
connection options whose password never shows, and --databricks."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import yaml

from tests.helpers.cli import run_cli, run_python

DAY = "2025-01-23"


def _project(tmp_path: Path) -> Path:
    """A SQLite source with `employees` (full) and `orders` (incremental) and its config."""
    db = tmp_path / "hr.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE employees (id INTEGER, name TEXT)")
        conn.execute("CREATE TABLE orders (id INTEGER, updated_at TEXT)")
        conn.execute("CREATE TABLE jobs (id INTEGER)")
        conn.executemany("INSERT INTO employees VALUES (?, ?)", [(1, "a"), (2, "b")])
        conn.execute("INSERT INTO orders VALUES (1, '2025-01-23 10:00:00')")
    data = {
        "pipeline": "hr",
        "state": "sqlite:///state.db",
        "lake": "./lake",
        "warehouse": "./warehouse",
        "sources": {"oracle_db": {"url": f"sqlite:///{db}"}},
        "tables": [
            {"source": "oracle_db", "table": "employees"},
            {
                "source": "oracle_db",
                "table": "orders",
                "extract": {"mode": "incremental", "cursor": "updated_at"},
            },
            {"source": "oracle_db", "table": "jobs"},
        ],
    }
    (tmp_path / "onceflow.yml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return tmp_path


def _extracted(stdout: str) -> list[str]:
    return [t["table_key"] for t in json.loads(stdout)["tables"] if t["action"] == "extracted"]


def test_extract_tables_from_the_seeds_tables_json(tmp_path):
    project = _project(tmp_path)
    (project / "tables.json").write_text(
        json.dumps(
            [
                {"source_name": "oracle_db", "table_name": "employees", "is_full_extract": True},
                {"source_name": "oracle_db", "table_name": "orders", "is_full_extract": False},
            ]
        )
    )
    done = run_cli("extract", "--tables", "tables.json", "--date", DAY, "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    assert _extracted(done.stdout) == ["oracle_db.employees", "oracle_db.orders"]
    assert not (project / "lake" / "oracle_db" / "jobs").exists()


def test_a_seed_tables_file_of_extract_tables_parameters_runs_as_in_python(tmp_path):
    # what DataExtractor(config=...).extract_tables_parallel takes, the CLI takes too
    project = _project(tmp_path)
    entries = [
        {"source_name": "oracle_db", "table_name": "orders", "incremental_column": "updated_at"},
        {"source_name": "oracle_db", "table_name": "employees", "extraction_date": DAY},
    ]
    (project / "tables.json").write_text(json.dumps(entries))
    done = run_cli("extract", "--tables", "tables.json", "--date", DAY, "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    assert _extracted(done.stdout) == ["oracle_db.orders", "oracle_db.employees"]
    entries[0]["incremental_column"] = "id"
    (project / "tables.json").write_text(json.dumps(entries))
    refused = run_cli("extract", "--tables", "tables.json", "--date", DAY, cwd=project)
    assert refused.returncode == 2
    assert "entry 1 (oracle_db.orders): incremental_column: 'id', but the config has" in (
        refused.stderr
    )


def test_every_command_with_tables_reads_a_tables_file(tmp_path):
    project = _project(tmp_path)
    (project / "tables.yml").write_text("- oracle_db.jobs\n")
    ran = run_cli("run", "-t", "tables.yml", "--date", DAY, "--json", cwd=project)
    assert ran.returncode == 0, ran.stderr
    assert _extracted(ran.stdout) == ["oracle_db.jobs"]
    loaded = run_cli("load", "-t", "tables.yml", cwd=project)
    assert loaded.returncode == 0, loaded.stderr
    assert "oracle_db.jobs" in loaded.stdout and "employees" not in loaded.stdout


def test_a_bad_tables_file_is_one_line_naming_the_file_and_entry_and_nothing_runs(tmp_path):
    project = _project(tmp_path)
    (project / "tables.json").write_text(
        json.dumps(
            [
                "oracle_db.employees",
                {"source_name": "oracle_db", "table_name": "orders", "is_full_extract": True},
            ]
        )
    )
    refused = run_cli("extract", "-t", "tables.json", "--date", DAY, cwd=project)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "tables.json: entry 2 (oracle_db.orders): is_full_extract: true" in refused.stderr
    assert not (project / "lake").exists()

    missing = run_cli("run", "-t", "nope.yaml", "--date", DAY, cwd=project)
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "error: tables file nope.yaml not found (a --tables value ending in .json, .yml "
        "or .yaml names a file that lists the tables)"
    )


def test_oracle_options_never_show_the_password(tmp_path):
    secret = "Tr0ub4dor&3@pw"
    args = [
        "--log-format",
        "json",
        "extract",
        "--host",
        "127.0.0.1",
        "--port",
        "1",  # nothing listens: the connection is refused at once
        "--user",
        "hr",
        "--service",
        "XEPDB1",
        "--source-name",
        "oracle_db",
        "--table-name",
        "hr.employees",
        "--full",
        "--date",
        DAY,
        "--json",
    ]
    for given in (["--password", secret], []):
        env = {} if given else {"ONCEFLOW_SOURCE_PASSWORD": secret}
        failed = run_cli(*args, *given, cwd=tmp_path, env=env)
        assert failed.returncode == 1, failed.stderr
        report = json.loads(failed.stdout)
        assert report["tables"][0]["action"] == "failed"
        assert secret not in failed.stdout + failed.stderr
    status = run_cli("status", "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert secret not in status.stdout + status.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_the_seeds_single_table_command_says_exactly_what_to_add(tmp_path):
    # seed 001's command as written: no --service (nor --port); nothing is guessed
    refused = run_cli(
        "extract",
        "--host",
        "localhost",
        "--user",
        "hr",
        "--password",
        "secret",
        "--source-name",
        "oracle_db",
        "--table-name",
        "employees",
        "--force-reprocess",
        cwd=tmp_path,
    )
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "error: --host needs --service NAME: who connects and to which Oracle service (e.g. "
        "--service XE, the service of the seed's examples; onceflow does not guess it)"
    )
    assert list(tmp_path.iterdir()) == []  # no state, no lake


def test_url_and_host_together_are_refused_naming_both(tmp_path):
    refused = run_cli(
        "extract",
        "--url",
        "sqlite:///x.db",
        "--host",
        "db",
        "--source-name",
        "s",
        "--table-name",
        "t",
        cwd=tmp_path,
    )
    assert refused.returncode == 2
    assert "--url" in refused.stderr and "--host" in refused.stderr
    assert refused.stderr.count("\n") == 1


def test_databricks_refuses_a_local_project_before_writing_anything(tmp_path):
    project = _project(tmp_path)
    ran = run_cli("run", "--databricks", "--date", DAY, cwd=project)
    assert ran.returncode == 2
    assert ran.stderr.startswith("error: --databricks: lake ")
    assert "warehouse" in ran.stderr and "local disk" in ran.stderr
    extracted = run_cli("extract", "--date", DAY, cwd=project, env={"ONCEFLOW_DATABRICKS": "1"})
    assert extracted.returncode == 2
    assert "is not Databricks storage" in extracted.stderr and "warehouse" not in extracted.stderr
    assert not (project / "lake").exists() and not (project / "warehouse").exists()
    assert not (project / "state.db").exists()


def test_single_table_extracts_of_one_date_share_a_run_and_say_so(tmp_path):
    # the seed's single-table mode keys runs by date: a good table after a bad one says
    # the run is failed because of a table it did not touch, and exits 0 for its own
    db = tmp_path / "src.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE a (id INTEGER)")
        conn.execute("INSERT INTO a VALUES (1)")
    one = ("extract", "--url", f"sqlite:///{db}", "--source-name", "s", "--full", "--date", DAY)
    bad = run_cli(*one, "--table-name", "nope", cwd=tmp_path)
    assert bad.returncode == 1 and "failed: s.nope: table not found" in bad.stderr
    good = run_cli(*one, "--table-name", "a", cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert "run extract_20250123: failed — 1 extracted, 0 skipped, 0 failed" in good.stdout
    assert (
        "the run also counts 1 table(s) this command did not touch; "
        "`onceflow status --run-id extract_20250123` shows each"
    ) in good.stdout


def test_data_extractor_is_onceflow_extract_under_the_seeds_name(tmp_path):
    import tomllib

    import onceflow

    pyproject = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["data-extractor"] == "onceflow.console:run_extractor"
    project = _project(tmp_path)
    (project / "config.yml").write_text((project / "onceflow.yml").read_text())
    (project / "tables.json").write_text(
        json.dumps([{"source_name": "oracle_db", "table_name": "employees"}])
    )
    # the onceflow under test, whatever the child's folder (PYTHONPATH=src is relative)
    src = str(Path(onceflow.__file__).resolve().parents[1])
    script = (
        f"import sys; sys.path.insert(0, {src!r}); "
        "from onceflow.console import run_extractor; run_extractor()"
    )
    seed = ("--config", "config.yml", "--tables", "tables.json", "--date", DAY)
    done = run_python(script, *seed, "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    assert _extracted(done.stdout) == ["oracle_db.employees"]
    again = run_python(script, *seed, "--force-reprocess", "--json", cwd=project)
    assert again.returncode == 0, again.stderr
    assert _extracted(again.stdout) == ["oracle_db.employees"]
    bad = run_python(script, "--config", "nope.yml", cwd=project)
    assert bad.returncode == 2
    assert "nope.yml" in bad.stderr
