"""SIGKILL in the middle of `onceflow validate`: the rerun runs exactly the rules whose
results were not saved, and its report equals an uninterrupted one but for timings and
the SQL text of the rules run after the kill."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cli import run_cli, spawn
from tests.helpers.validate import RULES, customers, events, project, write_delta

FUSED = [
    r["name"]
    for r in RULES
    if r["type"] not in ("uniqueness", "referential", "sql_query", "schema")
]
SEPARATE = ["id_unique", "pair_unique", "customer_exists", "big_paid", "dup_status", "shape"]


def _report(folder: Path, *extra: str, crash_at: str | None = None) -> Any:
    done = run_cli("validate", "--output", "report.json", *extra, cwd=folder, crash_at=crash_at)
    return done, (
        json.loads((folder / "report.json").read_text()) if done.returncode in (0, 1) else None
    )


def _comparable(report: dict[str, Any]) -> list[dict[str, Any]]:
    # the rerun's fused query holds only the rules it still had to run: other SQL text;
    # samples are the same rows (the first failing ones in the table's file order)
    skip = {"sql_refs", "duration_seconds", "cached"}
    return [{k: v for k, v in r.items() if k not in skip} for r in report["tables"][0]["results"]]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("crash_rule", "done_before"),
    [
        ("id_present", []),  # the first fused result saved; its fused peers not yet
        ("id_unique", FUSED),  # after the fused scan and the first uniqueness query
        ("customer_exists", [*FUSED, "id_unique", "pair_unique"]),
    ],
)
def test_a_killed_validation_resumes_with_only_the_rules_not_done(
    tmp_path: Path, crash_rule: str, done_before: list[str]
) -> None:
    write_delta(tmp_path / "events", events(3000))
    write_delta(tmp_path / "customers", customers())
    project(
        tmp_path / "a",
        RULES,
        events_path=tmp_path / "events",
        customers_path=tmp_path / "customers",
    )
    project(
        tmp_path / "b",
        RULES,
        events_path=tmp_path / "events",
        customers_path=tmp_path / "customers",
    )

    killed, _ = _report(tmp_path / "a", crash_at=f"validate_after_rule:src.events/{crash_rule}")
    assert killed.returncode == -9, killed.stderr
    resumed_run, resumed = _report(tmp_path / "a")
    assert resumed_run.returncode == 1, resumed_run.stderr
    saved = [*done_before, crash_rule]
    results = resumed["tables"][0]["results"]
    assert sorted(r["rule"] for r in results if r["cached"]) == sorted(saved)
    rerun = [r for r in results if not r["cached"]]
    # the statements the rerun made are exactly those of the rules not saved
    ran = {rule for r in rerun for rule in [r["rule"]] if r["sql_refs"]}
    assert ran == {r["rule"] for r in rerun if r["type"] != "schema"}
    # one fused query for the aggregates of the rules not saved (a uniqueness, referential
    # or custom-query rule has its row counts there too), one per separate rule not saved
    expected = 1 if any(n not in saved for n in [*FUSED, *SEPARATE[:-1]]) else 0
    failing = {r["rule"] for r in rerun if r["outcome"] in ("fail", "warn") and r["failing_rows"]}
    expected += sum(1 for n in SEPARATE if n not in saved and n != "shape")
    expected += len(failing)  # one LIMIT query of samples per failing rule
    assert resumed["data_queries"] == expected

    clean_run, clean = _report(tmp_path / "b")
    assert clean_run.returncode == 1
    assert _comparable(resumed) == _comparable(clean)


def _validated_twins(tmp_path: Path) -> None:
    """The events and customers tables, and two projects `a` and `b` with the same rules
    on them, each validated once in full (the state an incremental run starts from)."""
    write_delta(tmp_path / "events", events(3000))
    write_delta(tmp_path / "customers", customers())
    for name in ("a", "b"):
        project(
            tmp_path / name,
            RULES,
            events_path=tmp_path / "events",
            customers_path=tmp_path / "customers",
        )
        assert _report(tmp_path / name)[0].returncode == 1  # rules fail: exit code 1


@pytest.mark.slow
@pytest.mark.parametrize("crash_rule", ["median", "id_unique", "customer_exists"])
def test_a_killed_incremental_validation_resumes_with_only_the_rules_not_done(
    tmp_path: Path, crash_rule: str
) -> None:
    """After an append, the separate queries run on a second cursor in a thread while the
    fused query runs: a SIGKILL leaves only the results the main thread saved, and the
    rerun computes the others, still incrementally, to the same report."""
    _validated_twins(tmp_path)
    write_delta(tmp_path / "events", events(400, seed=7, first_id=2500), mode="append")

    killed, _ = _report(tmp_path / "a", crash_at=f"validate_after_rule:src.events/{crash_rule}")
    assert killed.returncode == -9, killed.stderr
    resumed_run, resumed = _report(tmp_path / "a")
    assert resumed_run.returncode == 1, resumed_run.stderr
    results = resumed["tables"][0]["results"]
    cached = {r["rule"] for r in results if r["cached"]}
    assert crash_rule in cached and len(cached) < len(results)
    assert all(r["incremental"] for r in results if r["rule"] in ("median", "id_unique"))

    clean_run, clean = _report(tmp_path / "b")
    assert clean_run.returncode == 1
    assert _comparable(resumed) == _comparable(clean)


def _quarantined(folder: Path) -> list[tuple[Any, ...]]:
    """The quarantine's rows as (row, its failed rules) pairs, sorted."""
    from deltalake import DeltaTable

    table = DeltaTable(str(folder / "events_quarantine")).to_pyarrow_table()
    rows = table.drop_columns(["_quarantined_at"]).to_pylist()
    return sorted(
        ((tuple(sorted(r.pop("_failed_rules"))), tuple(sorted(r.items(), key=str))) for r in rows),
        key=repr,
    )


@pytest.mark.slow
@pytest.mark.parametrize("incremental", [False, True], ids=["full", "after an append"])
@pytest.mark.parametrize("crash_rule", ["amount_range", "id_unique"])
def test_a_killed_validation_quarantines_each_failing_row_once_with_all_its_rules(
    tmp_path: Path, crash_rule: str, incremental: bool
) -> None:
    """The rerun's quarantine pass covers the rules served from the cache as well as the
    ones it ran (it once saw only the latter, and marked the data done without the
    others' rows)."""
    for name in ("a", "b"):
        write_delta(tmp_path / name / "events", events(3000))
        project(
            tmp_path / name,
            RULES,
            events_path=tmp_path / name / "events",
            customers_path=tmp_path / "customers",
            table={"quarantine": True},
        )
    write_delta(tmp_path / "customers", customers())
    if incremental:
        for name in ("a", "b"):
            assert _report(tmp_path / name)[0].returncode == 1
            batch = events(400, seed=7, first_id=2500)
            write_delta(tmp_path / name / "events", batch, mode="append")

    killed, _ = _report(tmp_path / "a", crash_at=f"validate_after_rule:src.events/{crash_rule}")
    assert killed.returncode == -9, killed.stderr
    resumed_run, resumed = _report(tmp_path / "a")
    clean_run, clean = _report(tmp_path / "b")
    assert (resumed_run.returncode, clean_run.returncode) == (1, 1), resumed_run.stderr

    def same(report: Any) -> list[dict[str, Any]]:  # twin tables: their own table ids
        return [{k: v for k, v in r.items() if k != "fingerprint"} for r in _comparable(report)]

    assert same(resumed) == same(clean)
    expected = _quarantined(tmp_path / "b")
    assert expected and _quarantined(tmp_path / "a") == expected
    _, again = _report(tmp_path / "a")
    assert again["tables"][0]["quarantined"] == 0 and _quarantined(tmp_path / "a") == expected


@pytest.mark.slow
def test_random_sigkills_during_incremental_validations(tmp_path: Path) -> None:
    """Append, validate, kill at a random moment, rerun: each time the report equals the
    one of a project validated without interruption (the same rules, the same data)."""
    _validated_twins(tmp_path)
    rng = random.Random(20261130)
    killed = 0
    for trial in range(6):
        rows = rng.choice([1, 50, 400])
        batch = events(rows, seed=100 + trial, first_id=10_000 * (trial + 1))
        write_delta(tmp_path / "events", batch, mode="append")
        started = time.perf_counter()
        clean_run, clean = _report(tmp_path / "b")
        duration = time.perf_counter() - started
        assert clean_run.returncode == 1, clean_run.stderr

        proc = spawn("validate", "--output", "report.json", cwd=tmp_path / "a")
        time.sleep(rng.uniform(0, duration))
        with contextlib.suppress(ProcessLookupError):  # it may have finished first
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=120)
        killed += proc.returncode == -signal.SIGKILL
        resumed_run, resumed = _report(tmp_path / "a")
        assert resumed_run.returncode == 1, resumed_run.stderr
        assert _comparable(resumed) == _comparable(clean), (trial, rows)
    assert killed >= 3, f"only {killed} of 6 runs were killed before they finished"


SLOW_QUERY = {
    # one scalar subquery DuckDB needs about a minute for, which its client would only
    # notice Ctrl-C after; onceflow interrupts it
    "name": "slow",
    "type": "sql_query",
    "query": "SELECT * FROM {table} WHERE id < 0 AND "
    "(SELECT count(*) FROM range(50000000000) WHERE hash(range) = 0) > 0",
}


def test_ctrl_c_stops_a_validation_at_once_and_saves_nothing_of_the_running_rule(
    tmp_path: Path,
) -> None:
    from onceflow import Validator
    from onceflow.config import load_config

    write_delta(tmp_path / "events", events(300))
    rules = [RULES[0], RULES[7], SLOW_QUERY]
    config_path = project(tmp_path / "p", rules, events_path=tmp_path / "events")
    process = spawn("validate", cwd=tmp_path / "p")
    validator = Validator(load_config(config_path))
    deadline = time.monotonic() + 60
    while not validator.is_rule_completed("src.events", "rows"):  # the fused query is done
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    time.sleep(0.5)  # into the slow query
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, out + err
    assert time.monotonic() - sent < 5
    # the last word (INFO lines of the phases it began may come before it)
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err
    assert validator.is_rule_completed("src.events", "id_present")
    assert not validator.is_rule_completed("src.events", "slow")  # no error stored for it
