"""Validating Delta tables and Parquet files: cache, resume, incremental, quarantine,
retries and the JSON report, on real DuckDB, Delta Lake and the SQLite state store."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from onceflow.config import load_config
from onceflow.errors import ConfigError
from onceflow.lake.sidecar import write_sidecar
from onceflow.validate import SCHEMA_PATH, Validator, validate
from onceflow.validate.engines import QueryError, make_engine
from onceflow.warehouse import read_table
from tests.helpers.cli import run_python
from tests.helpers.validate import RULES, customers, events, project, write_delta


@pytest.fixture
def tables(tmp_path: Path) -> tuple[Path, Path]:
    write_delta(tmp_path / "events", events(3000))
    write_delta(tmp_path / "customers", customers())
    return tmp_path / "events", tmp_path / "customers"


def validator(
    tmp_path: Path, customers_path: Path, rules: list[dict[str, Any]] | None = None, **kw: Any
) -> Validator:
    return Validator(
        rules_by_table={"events": RULES if rules is None else rules},
        state=f"sqlite:///{tmp_path / 'state.db'}",
        references={"customers": str(customers_path)},
        **kw,
    )


def same(a: Any, b: Any) -> bool:
    """Equal results, floats to rounding (a merged stddev differs in the last bits)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_a_rerun_on_unchanged_data_and_rules_runs_no_data_query(
    tmp_path: Path, tables: tuple[Path, Path]
) -> None:
    events_path, customers_path = tables
    first = validator(tmp_path, customers_path).validate_table(events_path, "events")
    assert first.data_queries >= 5 and not any(r.cached for r in first.results)
    assert {r.outcome for r in first.results} >= {"pass", "fail", "warn"}
    second = validator(tmp_path, customers_path).validate_table(events_path, "events")
    assert second.data_queries == 0 and second.statements == 0
    assert all(r.cached for r in second.results)
    assert [r.comparable() for r in second.results] == [r.comparable() for r in first.results]
    assert second.results[0].fingerprint == first.results[0].fingerprint
    assert first.results[0].fingerprint.startswith("delta:") and first.results[
        0
    ].fingerprint.endswith("@0")


def test_a_changed_rule_runs_again_alone_and_no_resume_runs_everything(
    tmp_path: Path, tables: tuple[Path, Path]
) -> None:
    events_path, customers_path = tables
    validator(tmp_path, customers_path).validate_table(events_path, "events")
    changed = [dict(r, max=999) if r["name"] == "amount_range" else r for r in RULES]
    again = validator(tmp_path, customers_path, changed).validate_table(events_path, "events")
    assert [r.rule for r in again.results if not r.cached] == ["amount_range"]
    assert again.data_queries == 2  # its part of the fused query, and its samples
    fresh = validator(tmp_path, customers_path).validate_table(events_path, "events", resume=False)
    assert not any(r.cached for r in fresh.results) and fresh.data_queries >= 5


def test_a_rule_that_reads_the_clock_or_a_file_of_its_own_runs_every_time(
    tmp_path: Path, tables: tuple[Path, Path]
) -> None:
    # Its answer depends on more than the table's fingerprint: served from the cache (or
    # merged incrementally), `now()` would be the first run's and the file its old content
    events_path, customers_path = tables
    pq.write_table(pa.table({"id": [1, 2]}), tmp_path / "extra.parquet")
    extra = str(tmp_path / "extra.parquet")
    rules = [
        {"name": "id_present", "type": "completeness", "column": "id"},
        {"name": "recent", "type": "sql_predicate", "expression": "ts < now()"},
        {"name": "quoted", "type": "sql_predicate", "expression": 'ts < "now"()'},
        {"name": "aged", "type": "sql_predicate", "expression": "age(ts) < INTERVAL 9999 DAY"},
        {"name": "in_tx", "type": "sql_predicate", "expression": "ts < transaction_timestamp()"},
        {
            "name": "in_window",
            "type": "completeness",
            "column": "id",
            "filter": "ts < current_date",
        },
        {
            "name": "not_extra",
            "type": "sql_query",
            "query": f"SELECT * FROM {{table}} WHERE id IN (SELECT id FROM '{extra}')",
        },
        {"name": "says_now", "type": "allowed_values", "column": "status", "values": ["now"]},
    ]
    ids = read_table(str(events_path)).column("id").to_pylist()
    first = validator(tmp_path, customers_path, rules).validate_table(events_path, "events")
    assert first.result("not_extra").failing_rows == sum(i in (1, 2) for i in ids)
    pq.write_table(pa.table({"id": [1, 2, 3]}), extra)
    again = validator(tmp_path, customers_path, rules).validate_table(events_path, "events")
    volatile = {"recent", "quoted", "aged", "in_tx", "in_window", "not_extra"}
    assert {r.rule for r in again.results if not r.cached} == volatile
    # the file as it is now
    assert again.result("not_extra").failing_rows == sum(i in (1, 2, 3) for i in ids)
    write_delta(events_path, events(50, seed=4, first_id=9000), mode="append")
    grown = validator(tmp_path, customers_path, rules).validate_table(events_path, "events")
    assert {r.rule for r in grown.results if r.incremental} == {"id_present", "says_now"}


def test_incremental_after_appends_equals_a_full_validation_on_random_data(
    tmp_path: Path, tables: tuple[Path, Path]
) -> None:
    events_path, customers_path = tables
    v = validator(tmp_path, customers_path)
    v.validate_table(events_path, "events")
    for seed, first_id in ((7, 2500), (8, 9000)):  # the first batch repeats some old ids
        write_delta(events_path, events(400, seed=seed, first_id=first_id), mode="append")
        incremental = v.validate_table(events_path, "events")
        full = validator(tmp_path / "other", customers_path).validate_table(events_path, "events")
        merged = {r.rule for r in incremental.results if r.incremental}
        assert merged >= {
            "id_present",
            "amount_range",
            "mean_amount",
            "sd_amount",
            "id_unique",
            "customer_exists",
            "big_paid",
            "median",
            "fresh",
        }
        assert "dup_status" not in merged  # a GROUP BY query is not row-local: run in full
        for inc, whole in zip(incremental.results, full.results, strict=True):
            assert same(inc.comparable(), whole.comparable()), inc.rule
        assert (
            incremental.result("id_unique").distinct_failing
            == full.result("id_unique").distinct_failing
        )
        # the appended files are scanned, not the table: the fused query reads only them
        fused = next(s for s in incremental.result("amount_range").sql)
        assert '"new"' in fused or " new" in fused


def test_a_non_append_change_is_validated_in_full(
    tmp_path: Path, tables: tuple[Path, Path]
) -> None:
    events_path, customers_path = tables
    v = validator(tmp_path, customers_path)
    v.validate_table(events_path, "events")
    write_delta(events_path, events(500, seed=3), mode="overwrite")
    after = v.validate_table(events_path, "events")
    assert not any(r.incremental or r.cached for r in after.results)
    assert after.result("rows").observed == 500


def test_parquet_files_are_fingerprinted_by_checksum(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    pq.write_table(events(200), folder / "a.parquet")
    pq.write_table(events(100, seed=2), folder / "b.parquet")
    rules = [
        {"name": "rows", "type": "row_count", "min": 1},
        {"name": "id", "type": "completeness", "column": "id"},
    ]
    v = Validator(rules_by_table={"f": rules}, state=f"sqlite:///{tmp_path / 's.db'}")
    first = v.validate_table(folder, "f")
    assert first.result("rows").observed == 300 and first.results[0].fingerprint.startswith(
        "parquet:"
    )
    assert v.validate_table(folder, "f").data_queries == 0
    pq.write_table(events(50, seed=9), folder / "b.parquet")  # same name, new content
    changed = v.validate_table(str(folder / "*.parquet"), "f")
    assert changed.data_queries == 1 and changed.result("rows").observed == 250


def _committed(path: Path, table: pa.Table) -> None:
    """Write `table` to `path` with a complete sidecar, as an extraction commits it."""
    pq.write_table(table, path)
    data = path.read_bytes()
    write_sidecar(
        path,
        {
            "extraction_complete": True,
            "file_size_bytes": len(data),
            "checksum": hashlib.sha256(data).hexdigest(),
            "run_id": path.stem,
        },
    )


def test_a_file_replaced_behind_its_sidecar_is_never_served_a_stale_answer(
    tmp_path: Path,
) -> None:
    q = tmp_path / "run1.parquet"
    rules = [{"name": "positive", "type": "range", "column": "x", "min": 0}]
    v = Validator(rules_by_table={"t": rules}, state=f"sqlite:///{tmp_path / 's.db'}")
    _committed(q, pa.table({"x": pa.array([1, 2, 3], pa.int64())}))
    assert v.validate_table(q, "t").result("positive").outcome == "pass"
    # the same size, other values, the sidecar left as it was: a new modification time
    pq.write_table(pa.table({"x": pa.array([1, 2, -3], pa.int64())}), q)
    os.utime(q, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    again = v.validate_table(q, "t")
    assert again.data_queries > 0 and again.result("positive").outcome == "fail"
    # another size: the file no longer matches its sidecar, it is refused as damaged
    pq.write_table(pa.table({"x": pa.array(range(-5, 50), pa.int64())}), q)
    damaged = v.validate_table(q, "t").result("positive")
    assert damaged.outcome == "error" and "differs from its sidecar" in (damaged.message or "")


def _quarantined(tmp_path: Path, tables: tuple[Path, Path], names: tuple[str, ...]) -> Any:
    """The config of a project whose events table, with these rules, has a quarantine."""
    rules = [r for r in RULES if r["name"] in names]
    config_path = project(
        tmp_path / "p",
        rules,
        events_path=tables[0],
        customers_path=tables[1],
        table={"quarantine": True},
    )
    return load_config(config_path)


def test_quarantine_holds_each_rules_failing_rows_once(
    tmp_path: Path, tables: tuple[Path, Path]
) -> None:
    events_path, _ = tables
    names = ("amount_range", "status_known", "email_format", "status_len", "id_unique")
    config = _quarantined(tmp_path, tables, names)
    report = validate(config, tables=["src.events"])
    table = report.tables[0]
    quarantine = read_table(str(events_path) + "_quarantine")
    assert table.quarantined == quarantine.num_rows > 0
    assert table.quarantine_table == str(events_path) + "_quarantine"
    failed = quarantine.column("_failed_rules").to_pylist()
    for name in ("amount_range", "status_known", "email_format"):
        assert sum(name in names for names in failed) == report.result(name).failing_rows
    assert not any(
        "status_len" in names or "id_unique" in names for names in failed
    )  # warn; not row-level
    # a rerun quarantines nothing again; an append quarantines only the new rows' failures
    assert validate(config, tables=["src.events"]).tables[0].quarantined == 0
    assert validate(config, tables=["src.events"], resume=False).tables[0].quarantined == 0
    write_delta(events_path, events(300, seed=5, first_id=5000), mode="append")
    grown = validate(config, tables=["src.events"])
    quarantine = read_table(str(events_path) + "_quarantine")
    failed = quarantine.column("_failed_rules").to_pylist()
    for name in ("amount_range", "status_known", "email_format"):
        assert sum(name in names for names in failed) == grown.result(name).failing_rows
    assert grown.tables[0].quarantined == quarantine.num_rows - table.quarantined


def test_a_staged_check_of_a_quarantined_table_leaves_its_quarantine_alone(
    tmp_path: Path, tables: tuple[Path, Path]
) -> None:
    """`validate --sources` on staged data replaced the table's quarantine with the staged
    rows (and a schema without the audit columns, which later passes failed to write)."""
    events_path, _ = tables
    config = _quarantined(tmp_path, tables, ("amount_range",))
    first = validate(config, tables=["src.events"])
    held = read_table(str(events_path) + "_quarantine")
    assert first.tables[0].quarantined == held.num_rows > 0
    staged = tmp_path / "staged.parquet"
    pq.write_table(events(200, seed=9, first_id=90_000), staged)
    report = validate(config, tables=["src.events"], sources={"src.events": staged})
    assert report.result("amount_range").failing_rows  # the staged rows fail it too
    assert report.tables[0].quarantined is None and report.tables[0].quarantine_table is None
    assert read_table(str(events_path) + "_quarantine").equals(held)
    again = validate(config, tables=["src.events"], resume=False)
    assert again.exit_code == 1 and again.tables[0].quarantine_error is None
    # the config file's path does as the Config (the docs' `validate(config, sources=...)`)
    by_path = validate(
        tmp_path / "p" / "onceflow.yml", tables=["src.events"], sources={"src.events": staged}
    )
    assert by_path.result("amount_range").failing_rows == report.result("amount_range").failing_rows


def _quarantine_counts(events_path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for names in read_table(str(events_path) + "_quarantine").column("_failed_rules").to_pylist():
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    return counts


def _failing_once(
    monkeypatch: pytest.MonkeyPatch, hit: Callable[[str, tuple[str, ...]], bool], times: int
) -> None:
    """The engine's statements matching `hit` (kind, rules) raise a DuckDB I/O error, a
    transient one, `times` times: onceflow's own retries see it."""
    import duckdb

    from onceflow.validate.engines import base

    original = base.Engine._run
    left = [times]

    def run(self: Any, execute: Any, sql: str, kind: str, rules: tuple[str, ...]) -> Any:
        def failing(text: str) -> Any:
            if hit(kind, rules) and left[0] > 0:
                left[0] -= 1
                raise duckdb.IOException("IO Error: Could not read file (injected)")
            return execute(text)

        return original(self, failing, sql, kind, rules)

    monkeypatch.setattr(base.Engine, "_run", run)


def test_a_rule_a_transient_error_left_unjudged_holds_the_quarantine_back(
    tmp_path: Path, tables: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written without that rule's rows, the quarantine would be marked done for the data
    and never get them."""
    events_path, _ = tables
    rules = [r for r in RULES if r["name"] in ("amount_range", "status_known", "rows")]
    # amount_range's aggregates are a chunk of their own (at most 2 a query)
    settings = {"max_retries": 1, "retry_delay": 0.0, "max_fused_aggregates": 2}
    config = load_config(
        project(
            tmp_path / "p",
            rules,
            events_path=tables[0],
            customers_path=tables[1],
            table={"quarantine": True},
            extra={"validation": settings},
        )
    )
    _failing_once(monkeypatch, lambda kind, rules: rules == ("amount_range",), times=2)
    first = validate(config, tables=["src.events"])
    assert first.result("amount_range").outcome == "error"
    assert "amount_range could not run" in (first.tables[0].quarantine_error or "")
    assert first.exit_code == 2 and first.tables[0].quarantined is None
    assert not Path(str(events_path) + "_quarantine").exists()
    monkeypatch.undo()
    second = validate(config, tables=["src.events"])
    assert second.result("amount_range").outcome == "fail"
    assert _quarantine_counts(events_path) == {
        name: second.result(name).failing_rows for name in ("amount_range", "status_known")
    }


def test_a_transient_error_fetching_samples_stores_nothing_of_that_rule(
    tmp_path: Path, tables: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    events_path, customers_path = tables
    v = validator(tmp_path, customers_path, max_retries=1, retry_delay=0.0)
    _failing_once(monkeypatch, lambda kind, rules: kind == "samples", times=2)
    first = v.validate_table(events_path, "events").result("amount_range")
    assert (first.outcome, first.samples) == ("fail", [])
    assert "samples query failed" in (first.message or "")
    monkeypatch.undo()
    second = v.validate_table(events_path, "events").result("amount_range")
    assert not second.cached and len(second.samples) == 20


# -- a rule that fails under a new threshold takes only its samples -------------------------

# one rule of each kind that takes samples; each fails on the `batched` events, both scopes
SAMPLED = ("amount_range", "id_unique", "customer_exists", "big_paid")


def _kinds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The kind of every statement the engines run from now on (kept in the list)."""
    from onceflow.validate.engines import base

    kinds: list[str] = []
    original = base.Engine._run

    def run(self: Any, execute: Any, sql: str, kind: str, rules: tuple[str, ...]) -> Any:
        kinds.append(kind)
        return original(self, execute, sql, kind, rules)

    monkeypatch.setattr(base.Engine, "_run", run)
    return kinds


def _one_rule(tmp_path: Path, tables: tuple[Path, Path], name: str, scope: str) -> Any:
    """Validate the events table (as batches b1 and b2, `scope: run` checking b1) with
    rule `name` alone, under the threshold given, as a config would."""
    events_path, customers_path = tables
    rule = next(r for r in RULES if r["name"] == name)

    def run(max_failing: int | None = None, *, resume: bool = True) -> Any:
        threshold = {} if max_failing is None else {"max_failing": max_failing}
        path = project(
            tmp_path / "p",
            [{**rule, **threshold}],
            events_path=events_path,
            customers_path=customers_path,
            table={"scope": scope},
            extra={"validation": {"max_retries": 1, "retry_delay": 0.0}},
        )
        return validate(
            load_config(path),
            tables=["src.events"],
            batch_ids={"src.events": ["b1"]},
            resume=resume,
        )

    return run


@pytest.fixture
def batched(tmp_path: Path) -> tuple[Path, Path]:
    """`tables`, with the events in two batches (`_batch_id` b1 and b2, interleaved)."""
    data = events(3000)
    batch = pa.array(["b1" if i % 3 else "b2" for i in range(data.num_rows)])
    write_delta(tmp_path / "events", data.append_column("_batch_id", batch))
    write_delta(tmp_path / "customers", customers())
    return tmp_path / "events", tmp_path / "customers"


@pytest.mark.parametrize("scope", ["table", "run"])
@pytest.mark.parametrize("name", SAMPLED)
def test_a_rule_that_fails_under_a_new_threshold_runs_only_its_samples_query(
    tmp_path: Path,
    batched: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    scope: str,
) -> None:
    """A rule that passed was stored without samples; failing under a stricter threshold,
    its stored counts stand and only its one LIMIT query runs (it ran in full again: the
    fused scan or its own query, then the samples). Its result is then a full run's, and
    the next run serves it from the cache with its samples."""
    run = _one_rule(tmp_path, batched, name, scope)
    lenient = run(max_failing=10**9).result(name)
    assert lenient.outcome == "pass" and lenient.failing_rows and not lenient.samples
    kinds = _kinds(monkeypatch)
    strict = run()
    assert kinds == ["samples"] and strict.data_queries == 1
    assert ("#" in (strict.tables[0].fingerprint or "")) == (scope == "run")  # b1 alone
    kinds.clear()
    again = run()
    assert kinds == [] and again.data_queries == 0 and again.result(name).cached
    full = run(resume=False).result(name)
    for got in (strict.result(name), again.result(name)):
        assert got.comparable() == full.comparable() and got.outcome == "fail"
        assert got.samples == full.samples and len(got.samples) == min(20, full.failing_rows)


def test_a_transient_error_fetching_a_rejudged_rules_samples_stores_none_of_it(
    tmp_path: Path, batched: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for a rule run in full: reported without samples, saying why, and not stored;
    the next run takes them with its one LIMIT query, the counts still from the cache."""
    run = _one_rule(tmp_path, batched, "amount_range", "table")
    assert run(max_failing=10**9).result("amount_range").outcome == "pass"
    _failing_once(monkeypatch, lambda kind, rules: kind == "samples", times=2)
    first = run().result("amount_range")
    assert (first.outcome, first.samples) == ("fail", [])
    assert first.message == "no samples: the samples query failed (transient)"
    monkeypatch.undo()
    kinds = _kinds(monkeypatch)
    second = run().result("amount_range")
    assert kinds == ["samples"] and not second.cached and len(second.samples) == 20
    assert second.message is None and second.failing_rows == first.failing_rows
    kinds.clear()
    assert run().result("amount_range").samples == second.samples and kinds == []


def test_a_changed_rule_set_quarantines_the_same_data_again(
    tmp_path: Path, tables: tuple[Path, Path]
) -> None:
    events_path, _ = tables
    config = _quarantined(tmp_path, tables, ("amount_range",))
    assert validate(config).tables[0].quarantined == _quarantine_counts(events_path)["amount_range"]
    more = _quarantined(tmp_path, tables, ("amount_range", "status_known"))
    report = validate(more)
    assert _quarantine_counts(events_path) == {
        name: report.result(name).failing_rows for name in ("amount_range", "status_known")
    }
    assert validate(more).tables[0].quarantined == 0  # and then it is done


def test_validate_all_tables_runs_each_configured_table_and_then_only_what_was_left(
    tmp_path: Path, tables: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    events_path, customers_path = tables
    config = load_config(
        project(tmp_path / "p", events_path=events_path, customers_path=customers_path)
    )
    v = Validator(config)
    assert not v.is_rule_completed("src.events", "rows")
    # the seed's DataValidator("config.yaml") and DataValidator(config_dict) are the same
    path = tmp_path / "p" / "onceflow.yml"
    assert Validator(path).rules == Validator(str(path)).rules == v.rules
    monkeypatch.chdir(path.parent)  # a mapping's relative paths are the current folder's
    assert Validator(yaml.safe_load(path.read_text())).rules == v.rules
    with pytest.raises(ConfigError, match="got int"):
        Validator(7)  # type: ignore[arg-type]
    first = v.validate_all_tables()  # src.customers has no rules
    assert [t.table for t in first.tables] == ["src.events"]
    assert not any(r.cached for r in first.results) and first.exit_code == 1
    assert all(v.is_rule_completed("src.events", r["name"]) for r in RULES)
    # what `onceflow validate` reports is the same
    assert [r.comparable() for r in validate(config).results] == [
        r.comparable() for r in first.results
    ]
    v.reset_rule_state("src.events", "rows")
    assert not v.is_rule_completed("src.events", "rows")
    again = Validator(config).validate_all_tables()
    assert [r.rule for r in again.results if not r.cached] == ["rows"]
    assert [r.comparable() for r in again.results] == [r.comparable() for r in first.results]
    # other data is other data; unknown names are refused before anything runs
    assert not v.is_rule_completed("src.events", "rows", events(10))
    with pytest.raises(ConfigError, match=r"table src\.events: no rule 'nope'"):
        v.is_rule_completed("src.events", "nope")
    with pytest.raises(ConfigError, match="nope"):
        v.validate_all_tables({"nope": events(10)})


def test_validate_all_tables_takes_each_tables_data_from_sources(
    tmp_path: Path, tables: tuple[Path, Path]
) -> None:
    events_path, _ = tables
    rules = {"a": [RULES[0], RULES[7]], "b": [RULES[0], RULES[14]]}
    v = Validator(rules_by_table=rules, state=f"sqlite:///{tmp_path / 'state.db'}")
    with pytest.raises(ConfigError, match=r"no data for a, b: .*give their data in `sources`"):
        v.validate_all_tables()
    pq.write_table(events(50, seed=3), tmp_path / "b.parquet")
    sources = {"a": events_path, "b": tmp_path / "b.parquet"}
    report = v.validate_all_tables(sources)
    assert [t.table for t in report.tables] == ["a", "b"]
    assert "error" not in {r.outcome for r in report.results}  # a single Parquet file reads
    assert report.tables[1].fingerprint.startswith("parquet:")
    assert [r.rule for r in report.results] == ["id_present", "rows", "id_present", "id_unique"]
    assert all(
        v.is_rule_completed(name, rule["name"], sources[name])
        for name in rules
        for rule in rules[name]
    )
    again = v.validate_all_tables(sources)
    assert all(r.cached for r in again.results)
    assert again.total_rules == report.total_rules == 4  # the seed's summary.total_rules
    assert [r.passed for r in again.results] == [r.outcome == "pass" for r in report.results]
    # data in memory is fingerprinted by its content: equal data is completed, other not
    memory = v.validate_all_tables({"a": events(20)})
    assert not any(r.cached for r in memory.results)
    assert v.is_rule_completed("a", "rows", events(20))
    assert not v.is_rule_completed("a", "rows", events(21))
    # a table that cannot be read is an error result, and the next one still runs
    broken = v.validate_all_tables({"a": tmp_path / "missing", "b": tmp_path / "b.parquet"})
    assert [t.results[0].outcome for t in broken.tables] == ["error", "pass"]
    assert broken.exit_code == 2


def test_transient_errors_are_retried_and_permanent_ones_are_not(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), path)
    engine = make_engine("duckdb", max_retries=6, retry_delay=0.05)
    try:
        engine.register_parquet("t", [str(path)])
        hidden = tmp_path / "a.hidden"
        path.rename(hidden)  # the file goes away for a moment (a remount, a slow sync)
        threading.Timer(0.3, lambda: hidden.rename(path)).start()
        rows = engine.query("SELECT count(*) AS n FROM t")
        assert rows == [{"n": 3}] and engine.retries >= 1
        started, before = time.monotonic(), engine.retries
        with pytest.raises(QueryError) as caught:
            engine.query("SELECT nope FROM t")
        assert not caught.value.transient and engine.retries == before
        assert time.monotonic() - started < 0.05 * 2  # no backoff for a permanent error
        assert "Binder Error" in str(caught.value) and "\n" not in str(caught.value)
    finally:
        engine.close()


def test_retries_run_out_into_a_rule_error_that_is_not_cached(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    pq.write_table(pa.table({"x": [1, None]}), folder / "a.parquet")
    v = Validator(
        rules_by_table={"f": [{"name": "x", "type": "completeness", "column": "x"}]},
        state=f"sqlite:///{tmp_path / 's.db'}",
        max_retries=1,
        retry_delay=0.01,
    )
    from onceflow.validate.inputs import parquet_input

    data = parquet_input(str(folder))
    (folder / "a.parquet").rename(folder / "gone")  # gone for good, after the fingerprint
    report = v.validate_table(data, "f")
    assert report.result("x").outcome == "error" and "cannot read" in (
        report.result("x").message or ""
    )
    (folder / "gone").rename(folder / "a.parquet")
    assert v.validate_table(data, "f").result("x").outcome == "fail"  # ran again


def test_the_json_report_follows_its_schema(tmp_path: Path, tables: tuple[Path, Path]) -> None:
    import jsonschema

    events_path, customers_path = tables
    report = validator(tmp_path, customers_path).validate_table(events_path, "events")
    data = json.loads(report.to_json(tmp_path / "report.json"))
    jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text()))
    assert data["exit_code"] == report.exit_code == 1
    assert data == json.loads((tmp_path / "report.json").read_text())
    bad = dict(data, exit_code=7)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json.loads(SCHEMA_PATH.read_text()))
    # a query that repeats rows fails more than 100 % of the table, as documented
    joined = "SELECT a.* FROM {table} a JOIN {table} b ON a.status = b.status"
    rules = {"t": [{"name": "q", "type": "sql_query", "query": joined}]}
    many = Validator(rules_by_table=rules).validate_table(events(30), "t")
    assert (many.result("q").failing_percent or 0) > 100
    jsonschema.validate(json.loads(many.to_json()), json.loads(SCHEMA_PATH.read_text()))


def test_resets_forget_one_rule_one_table_or_all(tmp_path: Path, tables: tuple[Path, Path]) -> None:
    events_path, customers_path = tables
    v = validator(tmp_path, customers_path)
    v.validate_table(events_path, "events")
    assert v.reset_rule_state("events", "rows") == 1
    assert [r.rule for r in v.validate_table(events_path, "events").results if not r.cached] == [
        "rows"
    ]
    assert v.reset_table_state("events") == len(RULES)
    assert not any(r.cached for r in v.validate_table(events_path, "events").results)
    assert v.reset_state() == len(RULES)


def test_a_missing_table_is_an_error_result(tmp_path: Path) -> None:
    v = Validator(rules_by_table={"t": [{"name": "rows", "type": "row_count", "min": 1}]})
    report = v.validate_table(tmp_path / "nothing-here", "t")
    assert report.exit_code == 2
    assert (
        report.result("rows").message
        == f"{tmp_path / 'nothing-here'}: no such Delta table or Parquet file"
    )


def test_the_table_location_rule_matches_the_loader(tmp_path: Path) -> None:
    from onceflow.load import load_target
    from onceflow.validate import table_location

    config = load_config(project(tmp_path, [], events_path=tmp_path / "e"))
    for table in config.tables:
        assert table_location(config, table) == load_target(config, table).uri
    shutil.rmtree(tmp_path / "warehouse", ignore_errors=True)


LEAN_SCRIPT = """
import json, sys
from onceflow import Validator
events, customers, state, rules = sys.argv[1:5]
validator = Validator(rules_by_table={"events": json.loads(rules)}, state=state,
                      references={"customers": customers}, samples=0)
report = validator.validate_table(events, "events")
assert len(report.results) == len(json.loads(rules)), report
print("arrow:" + str("pyarrow" in sys.modules))
"""


def test_a_local_delta_table_is_validated_without_loading_arrow(
    tables: tuple[Path, Path], tmp_path: Path
) -> None:
    # DuckDB reads the snapshot's files itself: Arrow (0.1-0.2 s to import) would be a
    # pure start-up cost of every `onceflow validate` (bench/RESULTS.md, Validate)

    events_path, customers_path = tables
    done = run_python(
        LEAN_SCRIPT,
        str(events_path),
        str(customers_path),
        f"sqlite:///{tmp_path / 'lean.db'}",
        json.dumps(RULES),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "arrow:False"


def _appended(tmp_path: Path, tables: tuple[Path, Path], **kw: Any) -> tuple[Validator, Any]:
    """A validated table that then grew by an append, and its full validation now."""
    events_path, customers_path = tables
    v = validator(tmp_path, customers_path, **kw)
    v.validate_table(events_path, "events")
    write_delta(events_path, events(400, seed=7, first_id=2500), mode="append")
    full = validator(tmp_path / "other", customers_path).validate_table(events_path, "events")
    return v, full


def _same_results(got: Any, full: Any) -> None:
    for a, b in zip(got.results, full.results, strict=True):
        assert same(a.comparable(), b.comparable()), a.rule


SEPARATE = ("id_unique", "customer_exists", "big_paid")  # uniqueness, referential, query


def test_incremental_separate_queries_run_beside_the_fused_one_on_a_second_engine(
    tmp_path: Path, tables: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from onceflow.validate.engines.duckdb import DuckDBEngine

    v, full = _appended(tmp_path, tables)
    threads: dict[str, set[str]] = {}
    execute = DuckDBEngine._execute

    def recorded(self: DuckDBEngine, sql: str) -> Any:
        threads.setdefault(threading.current_thread().name, set()).add(sql)
        return execute(self, sql)

    monkeypatch.setattr(DuckDBEngine, "_execute", recorded)
    report = v.validate_table(tables[0], "events")
    _same_results(report, full)
    assert {r.rule for r in report.results if r.incremental} >= set(SEPARATE)
    ahead = next(sqls for name, sqls in threads.items() if name.startswith("onceflow-validate"))
    # each separate rule's counting query ran on the second engine, and is reported
    for rule in SEPARATE:
        assert any(s in ahead for s in report.result(rule).sql), rule
    assert not any("QUANTILE" in s.upper() or "m0" in s for s in ahead)  # fused stays
    assert report.statements == sum(len(s) for s in threads.values())


def test_without_a_second_engine_the_separate_queries_run_in_turn(
    tmp_path: Path, tables: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from onceflow.validate.engines.duckdb import DuckDBEngine

    def no_fork(self: DuckDBEngine) -> DuckDBEngine:
        raise RuntimeError("no second cursor")

    v, full = _appended(tmp_path, tables)
    monkeypatch.setattr(DuckDBEngine, "fork", no_fork)
    report = v.validate_table(tables[0], "events")
    _same_results(report, full)
    assert {r.rule for r in report.results if r.incremental} >= set(SEPARATE)
    assert not [t for t in threading.enumerate() if t.name.startswith("onceflow-validate")]


def test_a_query_that_fails_ahead_errors_its_rule_only_and_is_not_cached(
    tmp_path: Path, tables: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb

    from onceflow.validate.engines.duckdb import DuckDBEngine

    v, full = _appended(tmp_path, tables, max_retries=0)
    fork = DuckDBEngine.fork

    def failing_fork(self: DuckDBEngine) -> DuckDBEngine:
        other = fork(self)

        def execute(sql: str) -> Any:
            if "dup_rows" in sql and '"status"' not in sql:  # id_unique's, not pair_unique's
                raise duckdb.IOException("IO Error: the disk went away")
            return DuckDBEngine._execute(other, sql)

        other._execute = execute  # type: ignore[method-assign]
        return other

    monkeypatch.setattr(DuckDBEngine, "fork", failing_fork)
    broken = v.validate_table(tables[0], "events")
    unique = broken.result("id_unique")
    assert unique.outcome == "error" and "the disk went away" in (unique.message or "")
    others = [r.comparable() for r in broken.results if r.rule != "id_unique"]
    # floats to rounding: a merged mean may differ from the full one in the last bit
    assert same(others, [r.comparable() for r in full.results if r.rule != "id_unique"])
    monkeypatch.undo()
    again = v.validate_table(tables[0], "events")  # only the rule that errored runs
    assert [r.rule for r in again.results if not r.cached] == ["id_unique"]
    assert again.result("id_unique").incremental
    _same_results(again, full)


def test_an_unreadable_reference_errors_its_rule_only_and_is_not_cached(
    tmp_path: Path, tables: tuple[Path, Path]
) -> None:
    events_path, customers_path = tables
    part = next(customers_path.glob("*.parquet"))
    original = part.read_bytes()
    part.write_bytes(b"not parquet at all" * 100)
    v = validator(tmp_path, customers_path)
    broken = v.validate_table(events_path, "events")
    ref = broken.result("customer_exists")
    assert ref.outcome == "error" and broken.exit_code == 2
    assert (ref.message or "").startswith(
        f"reference table 'customers': cannot read {customers_path}: "
    )
    assert "\n" not in (ref.message or "")
    assert {r.outcome for r in broken.results if r.rule != "customer_exists"} <= {
        "pass",
        "fail",
        "warn",
    }
    part.write_bytes(original)
    again = v.validate_table(events_path, "events")  # only the rule that could not read
    assert [r.rule for r in again.results if not r.cached] == ["customer_exists"]
    assert again.result("customer_exists").outcome in ("pass", "fail")


def test_a_reference_without_the_column_names_the_reference_and_its_columns(
    tmp_path: Path, tables: tuple[Path, Path]
) -> None:
    events_path, customers_path = tables
    rule = {
        "name": "ck",
        "type": "referential",
        "column": "customer_id",
        "reference": {"table": "customers", "column": "cid"},
    }
    report = validator(tmp_path, customers_path, [rule]).validate_table(events_path, "events")
    assert report.result("ck").outcome == "error"
    columns = ", ".join(customers().column_names)
    assert report.result("ck").message == (
        f"reference table 'customers' has no column 'cid' (columns: {columns})"
    )


def test_freshness_on_a_column_that_is_not_a_moment_is_an_error_not_a_fail(
    tmp_path: Path,
) -> None:
    data = pa.table({"at": ["2025-01-01 00:00:00"], "n": [1.5]})
    rules = [
        {"name": f"fresh_{c}", "type": "freshness", "column": c, "max_age": "1d"}
        for c in ("at", "n")
    ]
    report = Validator(rules_by_table={"t": rules}).validate_table(data, "t")
    assert [r.outcome for r in report.results] == ["error", "error"]
    assert report.result("fresh_at").message == (
        "freshness needs a date or timestamp column; 'at' is VARCHAR (load it as a "
        "timestamp, e.g. cast it in the source query)"
    )


def test_a_quarantine_that_cannot_be_written_keeps_the_results_and_says_why(
    tmp_path: Path, tables: tuple[Path, Path]
) -> None:
    events_path, _ = tables
    config = _quarantined(tmp_path, tables, ("amount_range", "rows"))
    blocker = Path(str(events_path) + "_quarantine")
    blocker.write_text("a file where the quarantine table goes")
    report = validate(config, tables=["src.events"])
    table = report.tables[0]
    assert table.quarantine_error is not None
    assert table.quarantine_error.startswith("quarantine not written: ")
    # what is in the way and that the fix is made there, then the validation rerun: not
    # the loader's "then load again", which would not write the quarantine
    assert table.quarantine_error == (
        f"quarantine not written: cannot open the quarantine table {blocker}: a file stands "
        "where a folder of its path should be; move that file away, then rerun `onceflow "
        "validate` (or the run): the rule results stand, the quarantine keeps its last commit"
    )
    assert table.status == "error" and report.exit_code == 2 and not report.ok
    assert report.result("amount_range").outcome == "fail"  # the rules stand
    assert report.as_dict()["tables"][0]["quarantine_error"] == table.quarantine_error
    blocker.unlink()
    again = validate(config, tables=["src.events"])  # from the cache, then the quarantine
    assert again.data_queries > 0 and again.tables[0].quarantine_error is None
    assert again.tables[0].quarantined == report.result("amount_range").failing_rows


def test_a_report_that_cannot_be_written_leaves_the_last_one_whole(
    tmp_path: Path, tables: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from onceflow.errors import ReportError
    from onceflow.lake import atomic

    events_path, customers_path = tables
    config = load_config(
        project(tmp_path / "p", events_path=events_path, customers_path=customers_path)
    )
    out, page = tmp_path / "r.json", tmp_path / "r.html"
    first = validate(config, output=out, html=page)
    before = out.read_bytes()

    def full_disk(self: Any, data: Any) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.HashingFile, "write", full_disk)
    with pytest.raises(ReportError) as caught:
        validate(config, output=out, html=page)
    assert str(caught.value) == (
        f"--output {out}: cannot write the report (No space left on device); --html "
        f"{page}: cannot write the report (No space left on device); the results are "
        "stored: a rerun with another path answers from the cache"
    )
    assert caught.value.exit_code == 2
    assert [r.comparable() for r in caught.value.report.results] == [
        r.comparable() for r in first.results
    ]
    assert out.read_bytes() == before and not list(tmp_path.glob("*.tmp*"))


def test_a_run_whose_checks_crash_is_marked_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onceflow.pipeline as pipeline
    from onceflow.state import open_store
    from tests.helpers.recovery import RUN_DATE, make_sqlite_source, write_project

    make_sqlite_source(tmp_path / "src.db", {"orders": 50})
    proj = write_project(tmp_path / "p", f"sqlite:///{tmp_path / 'src.db'}", ["orders"])
    config_data = yaml.safe_load(proj.config.read_text())
    config_data["tables"][0]["rules"] = [{"name": "rows", "type": "row_count", "min": 1}]
    proj.config.write_text(yaml.safe_dump(config_data, sort_keys=False))
    config = load_config(proj.config)

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the checks fell over")

    monkeypatch.setattr(pipeline, "validate", crash)
    with pytest.raises(RuntimeError, match="the checks fell over"):
        pipeline.run(config, RUN_DATE)
    runs = open_store(config.state_url).runs.find(config.pipeline, limit=1)
    assert runs[0].status == "failed"


def test_a_referential_result_follows_its_reference_not_only_the_checked_table(
    tmp_path: Path,
) -> None:
    write_delta(tmp_path / "orders", pa.table({"cust": pa.array([1, 2, 3, 4, 5], pa.int64())}))
    write_delta(tmp_path / "customers", pa.table({"id": pa.array([1, 2], pa.int64())}))
    rule = {"name": "known", "type": "referential", "column": "cust"}
    rule["reference"] = {"table": "customers", "column": "id"}
    v = Validator(
        rules_by_table={"orders": [rule]},
        state=f"sqlite:///{tmp_path / 'state.db'}",
        references={"customers": str(tmp_path / "customers")},
    )
    first = v.validate_table(tmp_path / "orders", "orders").result("known")
    assert first.failing_rows == 3 and sorted(s["cust"] for s in first.samples) == [3, 4, 5]
    write_delta(tmp_path / "customers", pa.table({"id": pa.array([3], pa.int64())}), "append")
    assert not v.is_rule_completed("orders", "known", tmp_path / "orders")
    second = v.validate_table(tmp_path / "orders", "orders").result("known")
    assert not second.cached and second.failing_rows == 2
    assert sorted(s["cust"] for s in second.samples) == [4, 5]  # not the old samples
    third = v.validate_table(tmp_path / "orders", "orders").result("known")
    assert third.cached and third.comparable() == second.comparable()


def test_an_empty_delta_table_is_judged_on_zero_rows(tmp_path: Path) -> None:
    from deltalake import DeltaTable

    schema = pa.schema([("id", pa.int64())])
    DeltaTable.create(str(tmp_path / "t"), schema=schema)
    rules = [
        {"name": "some_rows", "type": "row_count", "min": 1},
        {"name": "id_present", "type": "completeness", "column": "id"},
    ]
    report = Validator(rules_by_table={"t": rules}).validate_table(tmp_path / "t", "t")
    assert [(r.rule, r.outcome, r.total_rows) for r in report.results] == [
        ("some_rows", "fail", 0),
        ("id_present", "pass", 0),
    ]
    assert report.exit_code == 1


def test_an_incremental_failure_samples_the_old_rows_it_had_not_sampled(tmp_path: Path) -> None:
    write_delta(tmp_path / "t", pa.table({"x": pa.array([-1, -2, 5], pa.int64())}))
    rule = {"name": "positive", "type": "range", "column": "x", "min": 0, "max_failing": 2}
    v = Validator(rules_by_table={"t": [rule]}, state=f"sqlite:///{tmp_path / 'state.db'}")
    passed = v.validate_table(tmp_path / "t", "t").result("positive")
    assert passed.outcome == "pass" and passed.samples == []  # no samples of a pass
    write_delta(tmp_path / "t", pa.table({"x": pa.array([-3], pa.int64())}), "append")
    failed = v.validate_table(tmp_path / "t", "t").result("positive")
    full = Validator(rules_by_table={"t": [rule]}).validate_table(tmp_path / "t", "t")
    assert failed.incremental and failed.failing_rows == 3
    assert sorted(s["x"] for s in failed.samples) == [-3, -2, -1]
    assert sorted(s["x"] for s in full.result("positive").samples) == [-3, -2, -1]


def test_a_reference_staged_in_sources_is_the_one_checked_against(
    tmp_path: Path, tables: tuple[Path, Path]
) -> None:
    # --sources stages orders and customers together: the staged orders must be checked
    # against the staged customers, not the loaded ones; a reference that cannot be read
    # says it is the reference
    events_path, customers_path = tables
    exists = next(r for r in RULES if r["name"] == "customer_exists")
    project(tmp_path, [exists], events_path=events_path, customers_path=customers_path)
    config = load_config(tmp_path / "onceflow.yml")
    staged = tmp_path / "staged_customers.parquet"
    pq.write_table(customers(10), staged)
    ids = read_table(str(events_path)).column("customer_id").to_pylist()
    report = validate(config, sources={"src.events": events_path, "src.customers": staged})
    assert report.result("customer_exists").failing_rows == sum(
        i is not None and not 1 <= i <= 10 for i in ids
    )
    gone = tmp_path / "gone.parquet"
    missing = validate(config, sources={"src.events": events_path, "customers": gone})
    message = missing.result("customer_exists").message or ""
    assert missing.result("customer_exists").outcome == "error"
    assert message.startswith("reference table 'customers': "), message


# -- data in memory is cached by its content -------------------------------------------------


def _memory_validator(tmp_path: Path) -> Validator:
    return Validator(
        rules_by_table={"my_table": [RULES[0], RULES[1], RULES[7]]},
        state=f"sqlite:///{tmp_path / 'state.db'}",
    )


def test_equal_data_in_memory_is_served_from_the_cache_with_no_data_query(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    v = _memory_validator(tmp_path)
    summary1 = v.validate_table(events(200), "my_table")
    assert summary1.data_queries > 0 and not any(r.cached for r in summary1.results)
    # the seed's "second call uses cached results": the same object, then equal data again
    summary2 = v.validate_table(events(200), "my_table")
    assert summary2.data_queries == 0 and all(r.cached for r in summary2.results)
    assert summary2.total_rules == summary1.total_rules
    assert [r.comparable() for r in summary2.results] == [r.comparable() for r in summary1.results]
    frame = events(200).to_pandas()
    first = v.validate_table(frame, "my_table")
    assert v.validate_table(frame.copy(), "my_table").data_queries == 0 < first.data_queries


def test_a_new_threshold_or_severity_is_judged_from_the_stored_counts_with_no_query(
    tmp_path: Path,
) -> None:
    """`mostly`, `max_failing` and `severity` are left out of the cache key: the stored
    counts decide them. A rule that passed, stored without samples, and fails under a
    stricter threshold runs its samples query alone for them."""
    state = f"sqlite:///{tmp_path / 'state.db'}"
    data = pa.table({"x": list(range(100))})
    base = {"name": "r", "type": "range", "column": "x", "min": 7}

    def run(**changed: Any) -> Any:
        rules = {"t": [{**base, **changed}]}
        report = Validator(rules_by_table=rules, state=state).validate_table(data, "t")
        return report.data_queries, report.result("r")

    queries, first = run(mostly=0.9)  # 93 of 100 pass: no samples stored
    assert queries > 0 and first.outcome == "pass" and not first.samples
    queries, stricter = run(mostly=0.95)
    assert queries == 1 and stricter.outcome == "fail" and len(stricter.samples) == 7
    for changed, outcome, observed, samples, threshold in [
        ({"mostly": 0.94}, "fail", 0.93, 7, {"mostly": 0.94}),
        ({"mostly": 0.93}, "pass", 0.93, 0, {"mostly": 0.93}),
        ({"max_failing": 7}, "pass", 7, 0, {"max_failing": 7}),
        ({"max_failing": 6}, "fail", 7, 7, {"max_failing": 6}),
        ({"severity": "warn"}, "warn", 7, 7, {"max_failing": 0}),
    ]:
        queries, result = run(**changed)
        assert queries == 0 and result.cached, changed
        found = (result.outcome, result.observed, len(result.samples), result.threshold)
        assert found == (outcome, observed, samples, threshold), changed
        assert result.severity == changed.get("severity", "error")
    queries, filtered = run(filter="x > 3")  # what it measures changed: it runs
    assert queries > 0 and filtered.failing_rows == 3


def test_one_changed_value_in_memory_runs_the_rules_again(tmp_path: Path) -> None:
    v = _memory_validator(tmp_path)
    data = events(200)
    v.validate_table(data, "my_table")
    ids = data.column("id").to_pylist()
    ids[150] = None
    changed = data.set_column(0, "id", pa.array(ids, pa.int64()))
    again = v.validate_table(changed, "my_table")
    assert again.data_queries > 0 and not any(r.cached for r in again.results)
    assert again.result("id_present").failing_rows == 1
    assert again.tables[0].fingerprint != v.validate_table(data, "my_table").tables[0].fingerprint


def test_a_sliced_table_is_cached_by_its_own_rows(tmp_path: Path) -> None:
    v = _memory_validator(tmp_path)
    data = events(300)
    first = v.validate_table(data.slice(100, 100), "my_table")
    # the same rows built afresh are the same data; the parent's other rows are not
    fresh = pa.Table.from_pylist(data.slice(100, 100).to_pylist(), schema=data.schema)
    assert v.validate_table(fresh, "my_table").data_queries == 0
    other = v.validate_table(data.slice(101, 100), "my_table")
    assert other.data_queries > 0
    assert other.tables[0].fingerprint != first.tables[0].fingerprint


def test_a_nan_is_seen_by_every_query_on_delta_and_parquet_not_only_by_aggregates(
    tmp_path: Path,
) -> None:
    """Parquet leaves NaN out of a column's min/max, and DuckDB's scan skipped a row group
    of [NaN, 5.0] for `x > 90` whole: a custom query passed, samples were empty, the
    quarantine missed the row and an appended NaN duplicate went unseen."""
    nan = float("nan")
    data = pa.table({"id": [1, 2], "x": [nan, 5.0]})
    rules = [
        {"name": "big", "type": "sql_query", "query": "SELECT * FROM {table} WHERE x > 90"},
        {"name": "x_range", "type": "range", "column": "x", "max": 90},
        {"name": "x_unique", "type": "uniqueness", "columns": ["x"]},
    ]
    write_delta(tmp_path / "events", data)
    pq.write_table(data, tmp_path / "events.parquet")
    for source in (str(tmp_path / "events"), str(tmp_path / "events.parquet"), data):
        report = Validator(rules_by_table={"t": rules}).validate_table(source, "t")
        big, in_range = report.result("big"), report.result("x_range")
        assert big.outcome == "fail" and big.failing_rows == 1, source
        assert in_range.failing_rows == 1 and len(in_range.samples) == 1, source
        assert in_range.samples[0]["x"] == "nan"  # JSON has no NaN: samples keep it as text
        assert report.result("x_unique").outcome == "pass"
    # incremental: the appended NaN duplicates the old one (DuckDB groups NaN as one value)
    state = f"sqlite:///{tmp_path / 'state.db'}"
    first = Validator(rules_by_table={"t": rules}, state=state)
    assert first.validate_table(str(tmp_path / "events"), "t").result("x_unique").passed
    write_delta(tmp_path / "events", pa.table({"id": [3], "x": [nan]}), mode="append")
    grown = Validator(rules_by_table={"t": rules}, state=state)
    unique = grown.validate_table(str(tmp_path / "events"), "t").result("x_unique")
    assert unique.incremental and unique.outcome == "fail" and unique.failing_rows == 2
    # the quarantine holds the NaN row, as the rule counts it
    config = load_config(
        project(
            tmp_path / "p",
            [rules[1]],
            events_path=tmp_path / "events",
            table={"quarantine": True},
        )
    )
    report = validate(config, tables=["src.events"])
    assert report.result("x_range").failing_rows == 2
    assert report.tables[0].quarantined == 2


def test_validate_on_a_date_whose_load_did_not_complete_skips_a_whole_table_scope(
    tmp_path: Path,
) -> None:
    # a scope-table table still holds what earlier runs loaded: judging it for a date
    # whose load failed passed the older snapshot where `run` said skipped
    import sqlite3

    import onceflow.pipeline as pipeline
    from onceflow.extract import extract
    from tests.helpers.recovery import RUN_DATE, make_sqlite_source, write_project

    make_sqlite_source(tmp_path / "src.db", {"orders": 50})
    proj = write_project(tmp_path / "p", f"sqlite:///{tmp_path / 'src.db'}", ["orders"])
    config_data = yaml.safe_load(proj.config.read_text())
    config_data["tables"][0]["load"] = {"strategy": "overwrite"}  # scope: table
    config_data["tables"][0]["rules"] = [
        {"name": "rows", "type": "row_count", "min": 1},
        {"name": "few", "type": "row_count", "max": 60, "stage": "pre_load"},
    ]
    proj.config.write_text(yaml.safe_dump(config_data, sort_keys=False))
    config = load_config(proj.config)
    assert pipeline.run(config, RUN_DATE).load.ok
    with sqlite3.connect(tmp_path / "src.db") as conn:  # 70 rows: the gate refuses the file
        conn.execute(
            "INSERT INTO orders SELECT id + 50, customer, amount, label, note, "
            "updated_at FROM orders WHERE id <= 20"
        )
    conn.close()
    refused = pipeline.run(config, "2025-01-24")
    assert not refused.load.ok
    assert refused.validation is not None
    assert refused.validation.tables[-1].status == "skipped"

    report = validate(config, "2025-01-24")
    (table,) = report.tables
    assert table.status == "skipped" and report.exit_code == 2
    message = table.results[0].message or ""
    assert message.startswith("not validated: run recovery_20250124: its load failed (")
    assert "rerun `onceflow run --date 2025-01-24` once its cause is fixed" in message
    from onceflow.validate import validation_status

    assert [r["status"] for r in validation_status(config)] == ["skipped"]
    assert validate(config, RUN_DATE).exit_code == 0  # the date that loaded is judged

    # extracted, never loaded: its file is not in the table either
    extract(config, "2025-01-25")
    unloaded = validate(config, "2025-01-25").tables[0]
    assert unloaded.status == "skipped"
    assert "run recovery_20250125: its file is not loaded yet" in (
        unloaded.results[0].message or ""
    )
