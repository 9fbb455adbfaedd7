"""`onceflow validate`, `run` with rules, `reset-state --validation` and `status`: real
processes on a real project (SQLite source, Delta tables, SQLite state)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.cli import run_cli, run_python
from tests.helpers.recovery import RUN_DATE, make_sqlite_source, write_project
from tests.helpers.servers import IN_CI
from tests.helpers.validate import RULES, customers, events, project, write_delta


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    write_delta(tmp_path / "events", events(2000))
    write_delta(tmp_path / "customers", customers())
    project(tmp_path, RULES, events_path=tmp_path / "events", customers_path=tmp_path / "customers")
    return tmp_path


def test_exit_codes_terminal_table_and_reports(proj: Path) -> None:
    done = run_cli("validate", "--output", "r.json", "--html", "r.html", cwd=proj)
    assert done.returncode == 1, done.stderr  # an error-severity rule failed
    out = done.stdout
    assert "src.events: failed (post_load, scope table, 21 rules" in out
    assert "amount_range" in out and "fail" in out and "status_len" in out and "warn" in out
    assert "-- exit 1: an error-severity rule failed" in out
    report = json.loads((proj / "r.json").read_text())
    assert report["exit_code"] == 1 and report["counts"]["fail"] > 0
    assert (proj / "r.html").read_text().startswith("<!DOCTYPE html>")
    again = run_cli("validate", "--json", cwd=proj)
    assert again.returncode == 1 and json.loads(again.stdout)["data_queries"] == 0

    passing = [r for r in RULES if r["name"] in ("rows", "id_present", "fresh")]
    project(proj, passing, events_path=proj / "events", customers_path=proj / "customers")
    assert run_cli("validate", cwd=proj).returncode == 0

    broken = [*passing, {"name": "bad", "type": "completeness", "column": "nope"}]
    project(proj, broken, events_path=proj / "events", customers_path=proj / "customers")
    done = run_cli("validate", cwd=proj)
    assert done.returncode == 2
    assert (
        "unknown column 'nope' in the rule" in done.stdout
        and "exit 2: a rule could not run" in done.stdout
    )


def test_a_bad_rule_is_one_line_naming_table_and_rule(proj: Path) -> None:
    rules = [{"name": "x", "type": "completeness", "column": "id", "mostly": 2}]
    project(proj, rules, events_path=proj / "events")
    done = run_cli("validate", cwd=proj)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: onceflow.yml: tables[0]: table src.events, rule 'x': threshold out of "
        "range: mostly must be between 0 and 1 (a fraction of passing rows), got 2"
    ]


def test_a_missing_table_is_exit_2_naming_it(tmp_path: Path) -> None:
    project(tmp_path, RULES[:2], events_path=tmp_path / "never-loaded")
    done = run_cli("validate", "--json", cwd=tmp_path)
    assert done.returncode == 2
    result = json.loads(done.stdout)["tables"][0]["results"][0]
    assert result["outcome"] == "error"
    where = tmp_path / "never-loaded"
    assert result["message"] == (
        f"table src.events: no Delta table at {where} (load it first, or check the path)"
    )


def test_reset_state_validation_and_status(proj: Path) -> None:
    run_cli("validate", cwd=proj)
    done = run_cli(
        "reset-state", "--validation", "--table", "src.events", "--rule", "rows", "--json", cwd=proj
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "action": "reset_validation",
        "table": "src.events",
        "rule": "rows",
        "count": 1,
    }
    report = json.loads(run_cli("validate", "--json", cwd=proj).stdout)
    fresh = [r["rule"] for r in report["tables"][0]["results"] if not r["cached"]]
    assert fresh == ["rows"]
    wrong = run_cli(
        "reset-state", "--validation", "--table", "src.events", "--rule", "nope", cwd=proj
    )
    assert wrong.returncode == 2 and "no rule 'nope'" in wrong.stderr
    everything = run_cli("reset-state", "--validation", cwd=proj)
    assert everything.stdout.startswith(f"forgot {len(RULES)} stored rule result(s):")
    report = json.loads(run_cli("validate", "--json", cwd=proj).stdout)
    assert not any(r["cached"] for r in report["tables"][0]["results"])


def _pipeline(tmp_path: Path, rules: list[dict[str, Any]]) -> Path:
    make_sqlite_source(tmp_path / "src.db", {"orders": 400})
    proj = write_project(tmp_path / "p", f"sqlite:///{tmp_path / 'src.db'}", ["orders"])
    config = yaml.safe_load(proj.config.read_text())
    config["tables"][0]["rules"] = rules
    config["validation"] = {"retry_delay": 0.01}
    proj.config.write_text(yaml.safe_dump(config, sort_keys=False))
    return proj.folder


ORDER_RULES = [
    {"name": "id_present", "type": "completeness", "column": "id"},
    {"name": "id_unique", "type": "uniqueness", "columns": ["id"]},
    {"name": "amount_ok", "type": "range", "column": "amount", "min": 0},
    {"name": "some_rows", "type": "row_count", "min": 400, "max": 400},
    {"name": "note_present", "type": "completeness", "column": "note", "severity": "warn"},
]


def test_run_extracts_loads_then_validates_this_runs_rows(tmp_path: Path) -> None:
    folder = _pipeline(tmp_path, ORDER_RULES)
    done = run_cli("run", "--date", RUN_DATE, "--json", cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    validation = json.loads(done.stdout)["validation"]
    table = validation["tables"][0]
    assert (table["table"], table["scope"], table["status"]) == ("src.orders", "run", "warn")
    assert "#" in table["fingerprint"]  # the run's batches
    assert validation["reference_time"] == "2025-01-24T00:00:00+00:00"
    again = json.loads(run_cli("run", "--date", RUN_DATE, "--json", cwd=folder).stdout)[
        "validation"
    ]
    assert again["data_queries"] == 0
    status = run_cli("status", "--date", RUN_DATE, "--json", cwd=folder)
    assert json.loads(status.stdout)["validation"][0]["status"] == "warn"
    text = run_cli("status", "--date", RUN_DATE, cwd=folder).stdout
    assert "validation (last per table)" in text and "src.orders" in text


def test_a_failing_rule_fails_the_run(tmp_path: Path) -> None:
    rules = [*ORDER_RULES[:3], {"name": "few", "type": "row_count", "max": 10}]
    folder = _pipeline(tmp_path, rules)
    done = run_cli("run", "--date", RUN_DATE, cwd=folder)
    assert done.returncode == 1
    assert "rule fail: src.orders/few" in done.stderr
    status = json.loads(run_cli("status", "--date", RUN_DATE, "--json", cwd=folder).stdout)
    assert status["status"] == "failed"


def test_a_failing_pre_load_rule_stops_the_file_before_its_commit(tmp_path: Path) -> None:
    gate = {"name": "note_in_file", "type": "completeness", "column": "note", "stage": "pre_load"}
    folder = _pipeline(tmp_path, [*ORDER_RULES[:2], gate])
    done = run_cli("run", "--date", RUN_DATE, "--json", cwd=folder)
    assert done.returncode == 1
    summary = json.loads(done.stdout)
    load = summary["load"]["tables"][0]
    assert "pre-load rules refused the file (note_in_file fail (30 failing rows))" in load["error"]
    assert load["files"][0]["action"] == "failed"
    assert not (
        folder / "warehouse" / "src" / "orders" / "_delta_log"
    ).exists()  # nothing committed
    gated = summary["validation"]["tables"][0]
    assert (gated["stage"], gated["results"][0]["outcome"]) == ("pre_load", "fail")
    assert gated["fingerprint"].startswith("file:")
    post = summary["validation"]["tables"][1]
    assert {r["outcome"] for r in post["results"]} == {"skipped"}
    assert post["status"] == "skipped"  # not "passed": nothing was judged
    assert summary["validation"]["exit_code"] == 2

    config = yaml.safe_load((folder / "onceflow.yml").read_text())
    config["tables"][0]["rules"][2]["severity"] = "warn"  # warn rules never block
    (folder / "onceflow.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    done = run_cli("run", "--date", RUN_DATE, "--json", cwd=folder)
    assert done.returncode == 0, done.stdout
    summary = json.loads(done.stdout)
    assert summary["load"]["counts"]["loaded"] == 1
    assert summary["validation"]["tables"][0]["results"][0]["outcome"] == "warn"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def test_the_html_report_renders_in_a_real_browser(proj: Path) -> None:
    browser = _chromium()
    if browser is None:
        message = "chromium is not installed (scripts/setup.sh installs it)"
        if IN_CI:
            pytest.fail(f"{message}; CI requires it")
        pytest.skip(message)
    for seed in (2, 3):  # past runs for the pass-rate chart
        run_cli("validate", cwd=proj)
        write_delta(proj / "events", events(300, seed=seed, first_id=9000 * seed), mode="append")
    assert run_cli("validate", "--html", "report.html", cwd=proj).returncode == 1
    html = (proj / "report.html").read_text()
    assert (
        "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
        and "<script" not in html
    )
    assert html.count("<polyline") == len(RULES) and "failing row sample" in html
    shot = proj / "report.png"
    args = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        "--window-size=1400,1800",
        (proj / "report.html").as_uri(),
    ]
    _screenshot(args, proj)
    assert shot.exists()
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 1800)
    assert len(data) > 60_000  # a rendered page, not a blank one
    keep = os.environ.get("ONCEFLOW_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def _screenshot(args: list[str], home: Path) -> None:
    """Run headless Chromium to its end; its log is the failure message."""
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "HOME": str(home)},
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]


def test_scope_run_quarantines_each_runs_failing_rows_once(tmp_path: Path) -> None:
    from onceflow.warehouse import read_table

    note = {"name": "note_present", "type": "completeness", "column": "note"}
    folder = _pipeline(tmp_path, [note])
    config = yaml.safe_load((folder / "onceflow.yml").read_text())
    config["tables"][0]["quarantine"] = True
    (folder / "onceflow.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    quarantine = folder / "warehouse" / "src" / "orders_quarantine"
    first = json.loads(run_cli("run", "--date", RUN_DATE, "--json", cwd=folder).stdout)
    failing = first["validation"]["tables"][0]["results"][0]["failing_rows"]
    assert first["validation"]["tables"][0]["quarantined"] == failing == 30
    run_cli("run", "--date", RUN_DATE, cwd=folder)  # the same run again: nothing twice
    assert read_table(str(quarantine)).num_rows == failing
    second = json.loads(run_cli("run", "--date", "2025-01-24", "--json", cwd=folder).stdout)
    assert second["validation"]["tables"][0]["quarantined"] == 30  # that run's rows, added
    rows = read_table(str(quarantine))
    assert rows.num_rows == 2 * failing
    assert set(rows.column("_failed_rules").to_pylist()[0]) == {"note_present"}
    assert len(set(rows.column("_batch_id").to_pylist())) == 2
    # the first date again, now that the table has a newer version: its batch is the same
    # rows under a new fingerprint, and is not quarantined twice
    again = json.loads(run_cli("run", "--date", RUN_DATE, "--json", cwd=folder).stdout)
    assert again["validation"]["tables"][0]["quarantined"] == 0
    old = run_cli("validate", "--date", RUN_DATE, "--no-resume", "--json", cwd=folder)
    assert json.loads(old.stdout)["tables"][0]["quarantined"] == 0
    assert read_table(str(quarantine)).num_rows == 2 * failing


def test_a_cached_rerun_with_quarantine_runs_no_data_query(tmp_path: Path) -> None:
    """The quarantine pass of a validation answered from the cache asked the table which
    batches it holds on every rerun; a pass the store recorded on the same data, rules
    and quarantine table is not run again. One that is not recorded (quarantine turned
    on after the results were stored) still runs."""
    from onceflow.warehouse import read_table

    note = {"name": "note_present", "type": "completeness", "column": "note"}
    ids = {"name": "id_present", "type": "completeness", "column": "id"}
    folder = _pipeline(tmp_path, [ids, note])
    assert run_cli("run", "--date", RUN_DATE, cwd=folder).returncode == 1
    config = yaml.safe_load((folder / "onceflow.yml").read_text())
    config["tables"][0]["quarantine"] = True
    (folder / "onceflow.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    quarantine = folder / "warehouse" / "src" / "orders_quarantine"

    def validate() -> dict[str, Any]:
        done = run_cli("validate", "--date", RUN_DATE, "--json", cwd=folder)
        report: dict[str, Any] = json.loads(done.stdout)
        return report

    first = validate()  # every rule cached, the quarantine never written: the pass runs
    assert first["tables"][0]["quarantined"] == 30 and first["data_queries"] > 0
    for _ in range(2):
        again = validate()
        assert (again["data_queries"], again["statements"]) == (0, 0)
        assert again["tables"][0]["quarantined"] == 0
    assert read_table(str(quarantine)).num_rows == 30
    shutil.rmtree(quarantine)  # the quarantine table changed: the pass runs again
    assert validate()["tables"][0]["quarantined"] == 30


def _by_rule(quarantine: Path) -> dict[str, int]:
    """How many quarantine rows name each rule."""
    from onceflow.warehouse import read_table

    counts: dict[str, int] = {}
    for names in read_table(str(quarantine)).column("_failed_rules").to_pylist():
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    return counts


def test_scope_run_quarantines_a_fixed_rules_rows_when_its_run_is_validated_again(
    tmp_path: Path,
) -> None:
    """A rule that errored (a column named in the wrong case) had no verdict when the
    run's batch was quarantined; fixed, its failing rows were never added: the batch
    counted as done whatever the rules."""
    typo = {"name": "note_present", "type": "completeness", "column": "Note"}
    small = {"name": "amount_small", "type": "range", "column": "amount", "max": 1000}
    folder = _pipeline(tmp_path, [typo, small])
    config = yaml.safe_load((folder / "onceflow.yml").read_text())
    config["tables"][0]["quarantine"] = True
    (folder / "onceflow.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    quarantine = folder / "warehouse" / "src" / "orders_quarantine"
    first = json.loads(run_cli("run", "--date", RUN_DATE, "--json", cwd=folder).stdout)
    results = first["validation"]["tables"][0]["results"]
    assert [r["outcome"] for r in results] == ["error", "fail"]
    assert _by_rule(quarantine) == {"amount_small": results[1]["failing_rows"]}

    config["tables"][0]["rules"][0]["column"] = "note"
    (folder / "onceflow.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    done = run_cli("validate", "--date", RUN_DATE, "--json", cwd=folder)
    table = json.loads(done.stdout)["tables"][0]
    failing = {r["rule"]: r["failing_rows"] for r in table["results"]}
    assert failing["note_present"] == 30
    assert table["quarantined"] > 0 and table["quarantine_error"] is None
    assert _by_rule(quarantine) == failing  # each rule's failing rows, once
    again = run_cli("validate", "--date", RUN_DATE, "--no-resume", "--json", cwd=folder)
    assert json.loads(again.stdout)["tables"][0]["quarantined"] == 0
    rerun = json.loads(run_cli("run", "--date", RUN_DATE, "--json", cwd=folder).stdout)
    assert rerun["validation"]["tables"][0]["quarantined"] == 0
    assert _by_rule(quarantine) == failing

    # a rule's definition changed: the batch's rows follow it when its run is validated
    config["tables"][0]["rules"][1]["max"] = 1500
    (folder / "onceflow.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    changed = json.loads(run_cli("validate", "--date", RUN_DATE, "--json", cwd=folder).stdout)
    failing = {r["rule"]: r["failing_rows"] for r in changed["tables"][0]["results"]}
    assert 0 < failing["amount_small"] < results[1]["failing_rows"]
    assert _by_rule(quarantine) == failing


def _verdicts(done: subprocess.CompletedProcess[str]) -> list[tuple[Any, ...]]:
    table = json.loads(done.stdout)["tables"][0]
    return [
        (r["rule"], r["outcome"], r["evaluated_rows"], r["failing_rows"], r["message"])
        for r in table["results"]
    ]


def test_a_moved_or_copied_project_checks_an_older_runs_rows_as_before(tmp_path: Path) -> None:
    from onceflow.warehouse import read_table

    note = {"name": "note_present", "type": "completeness", "column": "note"}
    folder = _pipeline(tmp_path, [note, ORDER_RULES[3]])
    config = yaml.safe_load((folder / "onceflow.yml").read_text())
    config["tables"][0]["quarantine"] = True
    (folder / "onceflow.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    for day in (RUN_DATE, "2025-01-24"):
        assert run_cli("run", "--date", day, cwd=folder).returncode == 1  # note_present fails
    assert run_cli("extract", "--date", "2025-01-25", cwd=folder).returncode == 0  # not loaded
    args = ("validate", "--date", RUN_DATE, "--no-resume", "--json")
    before = run_cli(*args, cwd=folder)
    assert before.returncode == 1, before.stdout + before.stderr
    assert _verdicts(before)[0][1:4] == ("fail", 400, 30)
    fingerprint = json.loads(before.stdout)["tables"][0]["fingerprint"]
    quarantined = read_table(str(folder / "warehouse" / "src" / "orders_quarantine")).num_rows
    copied, moved = tmp_path / "copied", tmp_path / "moved"
    shutil.copytree(folder, copied)
    shutil.move(folder, moved)
    for place in (copied, moved):
        # the state store recorded the lake and the table where they were: the run's file
        # is found by its identity within the lake, its batch by what the table holds
        after = run_cli(*args, cwd=place)
        assert after.returncode == 1, after.stdout + after.stderr
        assert _verdicts(after) == _verdicts(before)
        assert json.loads(after.stdout)["tables"][0]["fingerprint"] == fingerprint
        cached = run_cli("validate", "--date", RUN_DATE, "--json", cwd=place)
        assert _verdicts(cached) == _verdicts(before)
        quarantine = place / "warehouse" / "src" / "orders_quarantine"
        assert read_table(str(quarantine)).num_rows == quarantined  # nothing twice
        # a run whose file the table does not hold is said, exit 2, not passed on no rows
        unloaded = run_cli("validate", "--date", "2025-01-25", "--json", cwd=place)
        assert unloaded.returncode == 2, unloaded.stdout + unloaded.stderr
        message = _verdicts(unloaded)[0][4]
        assert "extracted this table, but it is not loaded yet (run `onceflow load`)" in message
    from onceflow.config import load_config
    from onceflow.validate import validate

    given = validate(load_config(moved / "onceflow.yml"), RUN_DATE, batch_ids={"src.orders": []})
    assert given.tables[0].status == "error"  # no batch given: not a pass on no rows


def test_a_run_whose_quarantine_cannot_be_written_says_so_and_fails(tmp_path: Path) -> None:
    from tests.helpers.mounts import fill, tmpfs

    # passes (30 of 400 rows lack a note), and still quarantines those 30 rows
    mostly = {"name": "note_mostly", "type": "completeness", "column": "note", "mostly": 0.5}
    folder = _pipeline(tmp_path, [mostly])
    config = yaml.safe_load((folder / "onceflow.yml").read_text())
    config["tables"][0]["quarantine"] = True
    (folder / "onceflow.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    quarantine = folder / "warehouse" / "src" / "orders_quarantine"
    with tmpfs(quarantine, "64k"):
        filler = fill(quarantine, 0)
        done = run_cli("run", "--date", RUN_DATE, cwd=folder)
        assert done.returncode == 1, done.stdout + done.stderr  # the rule passed
        assert "validate: 1 pass" in done.stdout
        line = next(x for x in done.stderr.splitlines() if x.startswith("  src.orders: "))
        assert line.startswith(
            f"  src.orders: quarantine not written: disk full while writing the quarantine "
            f"table {quarantine} ("
        )
        assert line.endswith(
            "free space on its disk, then rerun `onceflow validate` (or the run): the rule "
            "results stand, the quarantine keeps its last commit"
        )
        again = run_cli("run", "--date", RUN_DATE, "--json", cwd=folder)
        assert again.returncode == 1
        table = json.loads(again.stdout)["validation"]["tables"][0]
        assert table["status"] == "error"
        assert table["quarantine_error"].startswith("quarantine not written: disk full while")
        status = json.loads(run_cli("status", "--date", RUN_DATE, "--json", cwd=folder).stdout)
        assert status["status"] == "failed"
        assert status["validation"][0]["status"] == "error"
        filler.unlink()
        freed = run_cli("run", "--date", RUN_DATE, "--json", cwd=folder)
        assert freed.returncode == 0, freed.stdout + freed.stderr
        assert json.loads(freed.stdout)["validation"]["tables"][0]["quarantined"] == 30


def test_load_runs_the_pre_load_gate_too(tmp_path: Path) -> None:
    gate = {"name": "note_in_file", "type": "completeness", "column": "note", "stage": "pre_load"}
    folder = _pipeline(tmp_path, [ORDER_RULES[0], gate])
    assert run_cli("extract", "--date", RUN_DATE, cwd=folder).returncode == 0
    done = run_cli("load", cwd=folder)  # extract then load: the gate still stands
    assert done.returncode == 1
    assert "pre-load rules refused the file (note_in_file fail (30 failing rows))" in done.stderr
    assert not (folder / "warehouse" / "src" / "orders" / "_delta_log").exists()
    run = run_cli("run", "--date", RUN_DATE, cwd=folder)  # and run refuses it again
    assert run.returncode == 1 and "refused the file" in run.stderr
    assert run_cli("load", cwd=folder).returncode == 1
    # scope run on a run whose file was refused: no row of it is in the table, so the
    # rules would pass on nothing; that is said, exit 2, not a pass
    unloaded = run_cli("validate", "--date", RUN_DATE, "--json", cwd=folder)
    assert unloaded.returncode == 2, unloaded.stdout + unloaded.stderr
    table = json.loads(unloaded.stdout)["tables"][0]
    assert table["status"] == "error"
    assert {r["outcome"] for r in table["results"]} == {"error"}
    assert "extracted this table, but its load failed (" in table["results"][0]["message"]
    # the load step alone cannot run the gate: it refuses rather than commit the file
    from onceflow.config import load_config
    from onceflow.errors import ConfigError
    from onceflow.load import load

    with pytest.raises(ConfigError, match=r"table src\.orders has pre-load rules"):
        load(load_config(folder / "onceflow.yml"))


def test_asking_for_a_table_without_rules_or_a_run_that_never_ran_is_said(tmp_path: Path) -> None:
    folder = _pipeline(tmp_path, ORDER_RULES[:1])
    assert run_cli("run", "--date", RUN_DATE, cwd=folder).returncode == 0
    config = yaml.safe_load((folder / "onceflow.yml").read_text())
    config["tables"][0]["rules"] = []
    (folder / "onceflow.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    done = run_cli("validate", "--tables", "src.orders", cwd=folder)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: --tables: src.orders has no post-load rules, so there is nothing to "
        "validate (add `rules:` under the table in onceflow.yml)"
    )
    everything = run_cli("validate", cwd=folder)
    assert everything.returncode == 0
    assert "no configured table has post-load rules: nothing to validate" in everything.stdout

    config["tables"][0]["rules"] = ORDER_RULES[:1]  # scope run: the rows of one run
    (folder / "onceflow.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    never = run_cli("validate", "--date", "2025-06-30", "--json", cwd=folder)
    assert never.returncode == 2
    table = json.loads(never.stdout)["tables"][0]
    assert table["scope"] == "run" and table["results"][0]["outcome"] == "error"
    assert "did not extract this table (no such run" in table["results"][0]["message"]
    extracted_only = run_cli("extract", "--date", "2025-01-22", cwd=folder)
    assert extracted_only.returncode == 0, extracted_only.stderr
    pending = run_cli("validate", "--date", "2025-01-22", "--json", cwd=folder)
    assert pending.returncode == 2
    message = json.loads(pending.stdout)["tables"][0]["results"][0]["message"]
    assert "extracted this table, but it is not loaded yet (run `onceflow load`)" in message
    assert run_cli("validate", "--date", RUN_DATE, cwd=folder).returncode == 0


def test_a_report_path_that_cannot_be_written_is_refused_before_any_rule_runs(
    proj: Path,
) -> None:
    (proj / "a-file").write_text("x")
    done = run_cli("validate", "--output", "a-file/r.json", cwd=proj)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --output a-file/r.json: not writable here"
    assert run_cli("validate", "--html", ".", cwd=proj).stderr.strip() == (
        "error: --html .: is a folder; give a file name"
    )
    same = run_cli("validate", "--output", "r.out", "--html", "./r.out", cwd=proj)
    assert same.returncode == 2 and not (proj / "r.out").exists()
    assert same.stderr.strip() == (
        "error: --output and --html name the same file (r.out): the HTML report would "
        "overwrite the JSON one; give each its own path"
    )
    from onceflow.config import load_config
    from onceflow.validate import validation_status

    assert validation_status(load_config(proj / "onceflow.yml")) == []  # nothing ran
    nested = run_cli("validate", "--output", "reports/today/r.json", cwd=proj)
    assert nested.returncode == 1 and (proj / "reports" / "today" / "r.json").exists()


def test_json_logs_keep_stderr_one_json_document_per_line(tmp_path: Path) -> None:
    rules = [*ORDER_RULES[:3], {"name": "few", "type": "row_count", "max": 10}]
    folder = _pipeline(tmp_path, rules)
    done = run_cli("--log-format", "json", "run", "--date", RUN_DATE, cwd=folder)
    assert done.returncode == 1
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert any("rule fail: src.orders/few" in line["message"] for line in lines)
    bad = run_cli("--log-format", "json", "validate", "--tables", "nope", cwd=folder)
    assert bad.returncode == 2
    (line,) = [json.loads(line) for line in bad.stderr.splitlines()]
    assert line["level"] == "error" and line["message"].startswith("error: ")


def _gated_items(folder: Path, strategy: str) -> None:
    """A full-extract `items` table loaded with `strategy`, gated by amount >= -10."""
    import sqlite3

    folder.mkdir(parents=True)
    with contextlib.closing(sqlite3.connect(folder / "src.db")) as con:
        con.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, amount REAL)")
        con.executemany("INSERT INTO items VALUES (?, ?)", [(i, float(i)) for i in range(1, 21)])
        con.commit()
    load: dict[str, Any] = {"strategy": strategy, "primary_key": ["id"]}
    if strategy == "scd2":
        load["tracking_columns"] = ["amount"]
    gate = {"name": "gate", "type": "range", "column": "amount", "min": -10, "stage": "pre_load"}
    config = {
        "pipeline": "rw",
        "state": "sqlite:///state.db",
        "lake": "./lake",
        "warehouse": "./warehouse",
        "timezone": "UTC",
        "sources": {"s": {"url": "sqlite:///src.db"}},
        "tables": [{"source": "s", "table": "items", "extract": {"mode": "full"}, "load": load}],
    }
    config["tables"][0]["rules"] = [gate]
    (folder / "onceflow.yml").write_text(yaml.safe_dump(config, sort_keys=False))


def _source_sql(folder: Path, statement: str) -> None:
    import sqlite3

    with contextlib.closing(sqlite3.connect(folder / "src.db")) as con:
        con.execute(statement)
        con.commit()


@pytest.mark.parametrize("strategy", ["merge", "scd2"])
def test_a_late_file_the_gate_refuses_leaves_the_table_unrewound(
    tmp_path: Path, strategy: str
) -> None:
    from deltalake import DeltaTable

    folder = tmp_path / strategy
    _gated_items(folder, strategy)
    assert run_cli("extract", "--date", "2025-01-10", cwd=folder).returncode == 0
    _source_sql(folder, "UPDATE items SET amount = amount + 100")
    assert run_cli("extract", "--date", "2025-01-12", cwd=folder).returncode == 0
    assert run_cli("load", cwd=folder).returncode == 0
    table = folder / "warehouse" / "s" / "items"
    before = DeltaTable(str(table))
    version, rows = before.version(), before.to_pyarrow_table().sort_by("id")
    # a late window arrives, and its file is refused: its replay would rewind the table
    _source_sql(folder, "UPDATE items SET amount = -999 WHERE id = 5")
    assert run_cli("extract", "--date", "2025-01-11", cwd=folder).returncode == 0
    done = run_cli("load", cwd=folder)
    assert done.returncode == 1
    assert "refused the file" in done.stderr and "left as it was (no rewind)" in done.stderr
    after = DeltaTable(str(table))
    assert after.version() == version  # no rewind, no commit
    assert after.to_pyarrow_table().sort_by("id").equals(rows)
    # a re-extraction of a loaded window refused the same way
    again = run_cli("run", "--date", "2025-01-10", "--force-reprocess", "--json", cwd=folder)
    assert again.returncode == 1 and DeltaTable(str(table)).version() == version
    gated = [
        t for t in json.loads(again.stdout)["validation"]["tables"] if t["stage"] == "pre_load"
    ]
    assert any(t["results"][0]["outcome"] == "fail" for t in gated)
    # fixed at the source, the late window passes: the replay gates each file before the
    # rewind and again as it applies it, and the run reports each file once
    _source_sql(folder, "UPDATE items SET amount = 5 WHERE id = 5")
    first = run_cli("run", "--date", "2025-01-10", "--force-reprocess", cwd=folder)
    assert first.returncode == 0, first.stderr
    fixed = run_cli("run", "--date", "2025-01-11", "--force-reprocess", "--json", cwd=folder)
    assert fixed.returncode == 0, fixed.stderr
    assert DeltaTable(str(table)).version() > version
    gated = [
        t for t in json.loads(fixed.stdout)["validation"]["tables"] if t["stage"] == "pre_load"
    ]
    assert gated and len(gated) == len({t["source"] for t in gated})  # one report per file


def test_sources_file_checks_the_named_tables_on_that_data(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    rules = [r for r in RULES if r["name"] in ("rows", "id_present", "amount_range")]
    project(tmp_path, rules, events_path=tmp_path / "never-loaded")
    (tmp_path / "jobs" / "data").mkdir(parents=True)
    pq.write_table(events(500), tmp_path / "jobs" / "data" / "events.parquet")
    sources = tmp_path / "jobs" / "sources.yaml"  # paths are taken from the file's folder
    sources.write_text("sources:\n  events: data/events.parquet\n", encoding="utf-8")

    done = run_cli("validate", "--sources", str(sources), "--json", cwd=tmp_path)
    report = json.loads(done.stdout)
    table = report["tables"][0]
    assert table["table"] == "src.events"
    assert table["source"] == str(tmp_path / "jobs" / "data" / "events.parquet")
    outcomes = {r["rule"]: r["outcome"] for r in table["results"]}
    assert outcomes == {"rows": "pass", "id_present": "pass", "amount_range": "fail"}
    assert done.returncode == 1 and report["data_queries"] > 0
    again = run_cli("validate", "--sources", str(sources), "--json", cwd=tmp_path)
    assert again.returncode == 1 and json.loads(again.stdout)["data_queries"] == 0

    refused = {
        "unknown table": ("nope: data/events.parquet\n", "table 'nope' is not in the config"),
        "not a path": ("src.events: [1, 2]\n", "entry 'src.events': give the table's data"),
    }
    for text, expected in refused.values():
        sources.write_text(text, encoding="utf-8")
        done = run_cli("validate", "--sources", str(sources), cwd=tmp_path)
        assert done.returncode == 2 and expected in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    sources.write_text("src.events: data/gone.parquet\n", encoding="utf-8")
    done = run_cli("validate", "--sources", str(sources), "--json", cwd=tmp_path)
    assert done.returncode == 2  # each rule is an error naming the path
    first = json.loads(done.stdout)["tables"][0]["results"][0]
    assert first["outcome"] == "error" and "gone.parquet" in first["message"]
    done = run_cli("validate", "--sources", str(sources), "-t", "src.customers", cwd=tmp_path)
    assert done.returncode == 2 and "src.customers has no data in --sources" in done.stderr


def test_a_validation_that_cannot_reach_its_state_store_exits_2_not_1(tmp_path: Path) -> None:
    # exit 1 means "the data failed a rule"; a check that never ran must not say that
    project(tmp_path, RULES, extra={"state": "sqlite:////proc/no-such-dir/state.db"})
    done = run_cli("validate", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: state: "), done.stderr
    # psycopg puts its hint on a line of its own: the problem is still one line, no secret
    project(tmp_path, RULES, extra={"state": "postgresql://u:s3cret-pw@127.0.0.1:1/x"})
    unreachable = run_cli("validate", cwd=tmp_path)
    assert unreachable.returncode == 2
    lines = unreachable.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to PostgreSQL store" in lines[0], lines
    assert "s3cret-pw" not in unreachable.stdout + unreachable.stderr


def test_a_secret_in_a_rules_sql_stays_out_of_reports_output_and_state(tmp_path: Path) -> None:
    # the password of a source URL is a secret; a filter or query that uses the same
    # ${VAR} carries it into the SQL that ran and into the rows it selected
    secret = "envPW-secret-99"
    rules = [
        {"name": "f", "type": "completeness", "column": "email", "filter": "email <> '${PW}'"},
        {
            "name": "q",
            "type": "sql_query",
            "query": "SELECT id, '${PW}' AS leak FROM {table} LIMIT 3",
        },
    ]
    sources = {
        "src": {"url": "sqlite:///src.db"},
        "other": {"url": "postgresql://app:${PW}@localhost:1/other"},
    }
    write_delta(tmp_path / "events", events(200))
    write_delta(tmp_path / "customers", customers())
    project(tmp_path, rules, extra={"sources": sources})
    args = ("validate", "--json", "--output", "r.json", "--html", "r.html")
    done = run_cli(*args, cwd=tmp_path, env={"PW": secret})
    assert done.returncode == 1, done.stderr
    table = json.loads(done.stdout)["tables"][0]
    results = {r["rule"]: r for r in table["results"]}
    assert results["q"]["outcome"] == "fail" and results["q"]["samples"][0]["leak"] == "***"
    assert "email <> '***'" in " ".join(table["sql"][i] for i in results["f"]["sql_refs"])
    written = [done.stdout, done.stderr, *(p.read_bytes().decode() for p in tmp_path.glob("r.*"))]
    assert all(secret not in text for text in written)
    stored = [p.read_bytes() for p in tmp_path.glob("state.db*")]  # with its WAL
    assert stored and all(secret.encode() not in data for data in stored)


def test_the_rules_of_a_table_whose_extraction_failed_are_skipped_not_errors(
    tmp_path: Path,
) -> None:
    # one failure (the source is gone) is said once, as an extraction failure; its
    # table's rules were not done, which `skipped` says, rather than one error per rule
    folder = _pipeline(tmp_path, ORDER_RULES)
    (tmp_path / "src.db").unlink()
    done = run_cli("run", "--date", RUN_DATE, "--json", cwd=folder)
    assert done.returncode == 1
    table = json.loads(done.stdout)["validation"]["tables"][0]
    assert table["status"] == "skipped"
    assert {r["outcome"] for r in table["results"]} == {"skipped"}
    assert "not validated: its extraction failed (" in table["results"][0]["message"]
    # standalone, the same date: the run has no file of the table, which is an error
    alone = run_cli("validate", "--date", RUN_DATE, "--json", cwd=folder)
    assert alone.returncode == 2
    message = json.loads(alone.stdout)["tables"][0]["results"][0]["message"]
    assert "has no extracted file of this table (extraction failed)" in message


SEED_VALIDATOR_CONFIG = """\
version: "1.0"
pipeline:
  state_file: "pipeline_state.json"  # Path to persist state
engine:
  type: "duckdb"
  options:
    max_retries: 3        # Retry failed operations
    retry_delay: 1.0      # Base delay for exponential backoff
tables:
  - name: "customers"
    rules:
      - name: "id_check"
        rule_type: "completeness"
        column: "customer_id"
"""


def test_the_seed_validators_own_config_and_sources_run_as_written(tmp_path: Path) -> None:
    # data-validator-job --config config.yaml --sources sources.yaml --output report.json
    (tmp_path / "config.yaml").write_text(SEED_VALIDATOR_CONFIG)
    (tmp_path / "sources.yaml").write_text("customers: customers.parquet\n")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"customer_id": [1, 2, None]}), tmp_path / "customers.parquet")
    args = ("validate", "-c", "config.yaml", "--sources", "sources.yaml")
    done = run_cli(*args, "--output", "report.json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # one NULL id: the rule fails
    result = json.loads((tmp_path / "report.json").read_text())["tables"][0]["results"][0]
    assert (result["rule"], result["outcome"], result["failing_rows"]) == ("id_check", "fail", 1)
    assert (tmp_path / "pipeline_state.db").is_file()  # the seed's state file, as SQLite
    again = run_cli(*args, "--json", cwd=tmp_path)
    assert json.loads(again.stdout)["tables"][0]["results"][0]["cached"] is True
    fresh = run_cli(*args, "--json", "--no-resume", cwd=tmp_path)
    assert json.loads(fresh.stdout)["tables"][0]["results"][0]["cached"] is False
    other = run_cli("validate-windows", "-c", "config.yaml", cwd=tmp_path)
    assert other.returncode == 2
    assert other.stderr.startswith(
        "error: config.yaml gives rules only (the seed validator's config): it has no runs"
    )
    assert "`onceflow status --config config.yaml` shows its validations" in other.stderr
    without = run_cli("validate", "-c", "config.yaml", cwd=tmp_path)
    assert without.returncode == 2
    assert without.stderr.strip() == (
        "error: customers: the config gives only rules, not where the data is; name each "
        "table's data with --sources (a YAML file of `table: path` lines)"
    )


def _seed_project(tmp_path: Path, customer_ids: list[int | None]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "config.yaml").write_text(SEED_VALIDATOR_CONFIG)
    (tmp_path / "sources.yaml").write_text("customers: customers.parquet\n")
    pq.write_table(pa.table({"customer_id": customer_ids}), tmp_path / "customers.parquet")


def test_status_of_a_rules_only_config_shows_each_tables_last_validation(tmp_path: Path) -> None:
    _seed_project(tmp_path, [1, None])
    never = run_cli("status", "-c", "config.yaml", "--json", cwd=tmp_path)
    assert never.returncode == 0, never.stderr
    assert [(r["table"], r["status"]) for r in json.loads(never.stdout)["validation"]] == [
        ("customers", "never validated")
    ]
    run_cli("validate", "-c", "config.yaml", "--sources", "sources.yaml", cwd=tmp_path)
    shown = run_cli("status", "-c", "config.yaml", "--json", cwd=tmp_path)
    report = json.loads(shown.stdout)
    assert report["rules_only"] is True and report["pipeline"] == "daily_extract"
    (row,) = report["validation"]
    assert (row["table"], row["status"], row["counts"]["fail"]) == ("customers", "failed", 1)
    assert row["fingerprint"].startswith("parquet:")
    text = run_cli("status", "-c", "config.yaml", cwd=tmp_path)
    assert text.returncode == 0
    assert "rules only (no runs, loads or locks)" in text.stdout and "customers" in text.stdout
    dated = run_cli("status", "-c", "config.yaml", "--date", "2025-01-01", cwd=tmp_path)
    assert dated.returncode == 2 and "has no runs for --date" in dated.stderr


def test_reset_state_of_a_rules_only_config_forgets_its_rule_results(tmp_path: Path) -> None:
    _seed_project(tmp_path, [1, 2])
    validate = ("validate", "-c", "config.yaml", "--sources", "sources.yaml", "--json")
    assert run_cli(*validate, cwd=tmp_path).returncode == 0

    def reset(*flags: str) -> Any:
        return run_cli("reset-state", "-c", "config.yaml", *flags, cwd=tmp_path)

    typo = reset("--validation", "--table", "customers", "--rule", "nope")
    assert typo.returncode == 2
    assert typo.stderr.strip() == "error: table customers: no rule 'nope' (rules: id_check)"
    unknown = reset("--validation", "--table", "nope")
    assert unknown.stderr.strip() == "error: table 'nope' is not in the config; tables: customers"
    one = reset("--validation", "--table", "customers", "--rule", "id_check", "--json")
    assert json.loads(one.stdout) == {
        "action": "reset_validation",
        "table": "customers",
        "rule": "id_check",
        "count": 1,
    }
    again = json.loads(run_cli(*validate, cwd=tmp_path).stdout)
    assert again["tables"][0]["results"][0]["cached"] is False  # it ran again
    table = reset("--validation", "--table", "customers")
    assert table.returncode == 0
    assert table.stdout.startswith("forgot 1 stored rule result(s) of customers")
    assert reset("--validation").stdout.startswith("forgot 0 stored rule result(s)")
    plain = reset("--failed")
    assert plain.returncode == 2
    assert "it has no runs or loads to reset; forget its stored rule results with" in plain.stderr


def test_data_validator_job_is_onceflow_validate_under_the_seeds_name(tmp_path: Path) -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["data-validator-job"] == (
        "onceflow.console:run_validator_job"
    )
    _seed_project(tmp_path, [1, None])
    import onceflow

    # the onceflow under test, whatever the child's folder (PYTHONPATH=src is relative)
    src = str(Path(onceflow.__file__).resolve().parents[1])
    script = (
        f"import sys; sys.path.insert(0, {src!r}); "
        "from onceflow.console import run_validator_job; run_validator_job()"
    )
    args = ("--config", "config.yaml", "--sources", "sources.yaml", "--output", "report.json")
    done = run_python(script, *args, cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # one NULL id: the rule fails, as validate says
    result = json.loads((tmp_path / "report.json").read_text())["tables"][0]["results"][0]
    assert (result["rule"], result["outcome"], result["cached"]) == ("id_check", "fail", False)
    cached = run_python(script, *args, cwd=tmp_path)
    assert cached.returncode == 1
    assert json.loads((tmp_path / "report.json").read_text())["tables"][0]["results"][0]["cached"]
    fresh = run_python(script, *args, "--no-resume", cwd=tmp_path)
    assert fresh.returncode == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["tables"][0]["results"][0]["cached"] is False
    bad = run_python(script, "--config", "config.yaml", cwd=tmp_path)
    assert bad.returncode == 2
    assert "name each table's data with --sources" in bad.stderr


def test_a_report_that_cannot_be_written_states_exit_2_in_the_summary_line(proj: Path) -> None:
    # the path passes the check before the rules run, and fails only when it is written
    done = run_cli("validate", "--html", "/proc/onceflow-report.html", cwd=proj)
    assert done.returncode == 2
    # the totals line, then the failing rules once more
    lines = done.stdout.strip().splitlines()
    [summary] = [line for line in lines if " -- exit " in line]
    assert " -- exit 2: the report file could not be written (validation: " in summary
    after = lines[lines.index(summary) + 1 :]
    assert "  rule fail: src.events/big_paid: 35 failing rows" in after
    assert all(line.startswith("  rule fail: src.events/") for line in after)
    assert "cannot write the report" in done.stderr
