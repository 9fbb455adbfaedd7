"""The SQL behind the results, once: a fused query serves many rules, so the JSON report
holds each statement once per table (results index it), the state store once per table
and data (results name it by digest), and it is redacted once; a cached result, and one
stored by an older onceflow with its text inside, still gives its SQL."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow as pa
import pytest

from onceflow.validate import SCHEMA_PATH, ValidationReport, Validator, runner

#: Many rules of the fused kind (their aggregates in one query), one that fails (a samples
#: query of its own) and a uniqueness rule (a query of its own).
RULES: list[dict[str, Any]] = [
    *({"name": f"v_above_{n}", "type": "range", "column": "v", "min": -n} for n in range(40)),
    {"name": "v_small", "type": "range", "column": "v", "max": 10},
    {"name": "id_unique", "type": "uniqueness", "columns": ["id"]},
]


def data() -> pa.Table:
    return pa.table({"id": list(range(30)), "v": [n % 15 for n in range(30)]})


def check(state: Path | None, rules: list[dict[str, Any]] | None = None) -> ValidationReport:
    url = None if state is None else f"sqlite:///{state}"
    validator = Validator(rules_by_table={"t": rules or RULES}, state=url)
    return validator.validate_table(data(), "t")


def fused(report: ValidationReport) -> str:
    """The fused query: the statement the most rules took part in."""
    statements = {s for r in report.results for s in r.sql}
    return max(statements, key=lambda s: sum(s in r.sql for r in report.results))


def stored(state: Path) -> tuple[list[str], list[str]]:
    """The store's results (JSON text) and statements."""
    with sqlite3.connect(state) as con:
        results = [r for (r,) in con.execute("SELECT result FROM rule_results")]
        texts = [t for (t,) in con.execute("SELECT sql FROM rule_statements")]
    return results, texts


def test_the_json_report_holds_each_statement_once_and_results_index_them() -> None:
    report = check(None)
    text = report.to_json()
    data = json.loads(text)
    jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text("utf-8")))
    assert data["format"] == "onceflow.validation-report/2"
    table = data["tables"][0]
    assert len(table["sql"]) == len(set(table["sql"])) == 3  # fused, uniqueness, samples
    statement = fused(report)
    assert text.count(json.dumps(statement)) == 1  # not once for each of its 41 rules
    for result, back in zip(report.results, table["results"], strict=True):
        assert "sql" not in back
        assert [table["sql"][i] for i in back["sql_refs"]] == result.sql
    assert len(report.result("v_small").sql) == 2  # the fused query, then its samples
    assert report.tables[0].sql == table["sql"]


def test_a_fused_statement_is_redacted_once_not_once_a_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []

    def counting(text: str) -> str:
        seen.append(text)
        return text

    monkeypatch.setattr(runner, "redact", counting)
    report = check(None)
    assert seen.count(fused(report)) == 1


def test_the_store_keeps_each_statement_once_and_a_cached_result_gives_its_sql(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.db"
    first = check(state)
    statement = fused(first)
    results, texts = stored(state)
    assert len(results) == len(RULES)
    assert not any(statement in r for r in results)  # the results name it by digest
    assert texts.count(statement) == 1 and len(texts) == 3

    again = check(state)
    assert again.data_queries == 0 and all(r.cached for r in again.results)
    for old, new in zip(first.results, again.results, strict=True):
        assert new.sql == old.sql and new.sql
    assert again.tables[0].sql == first.tables[0].sql
    jsonschema.validate(json.loads(again.to_json()), json.loads(SCHEMA_PATH.read_text("utf-8")))


def test_a_rule_failing_under_a_stricter_threshold_keeps_its_sql_and_adds_its_samples(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.db"
    rules = [dict(r) for r in RULES]
    rules[0] = {**rules[0], "min": 20, "mostly": 0.0}  # stored as passing, without samples
    first = check(state, rules)
    assert first.results[0].outcome == "pass" and len(first.results[0].sql) == 1
    rules[0] = {**rules[0], "mostly": 0.99}  # judged again: now it fails
    stricter = check(state, rules)
    result = stricter.results[0]
    assert result.outcome == "fail" and stricter.data_queries == 1  # its samples alone
    assert result.sql[0] == fused(first) and "LIMIT" in result.sql[1]
    results, texts = stored(state)  # saved again naming its statements, not holding them
    assert texts.count(fused(first)) == 1 and not any(fused(first) in r for r in results)
    third = check(state, rules)
    assert third.data_queries == 0 and third.results[0].sql == result.sql


def _old_format(state: Path) -> None:
    """Rewrite the stored results as an older onceflow wrote them: each with the text of
    its statements in `sql`, and no statements stored apart."""
    with sqlite3.connect(state) as con:
        texts = dict(con.execute("SELECT digest, sql FROM rule_statements").fetchall())
        rows = con.execute("SELECT rowid, result FROM rule_results").fetchall()
        for rowid, result in rows:
            data = json.loads(result)
            data["sql"] = [texts[d] for d in data.pop("sql_digests")]
            con.execute(
                "UPDATE rule_results SET result = ? WHERE rowid = ?", (json.dumps(data), rowid)
            )
        con.execute("DELETE FROM rule_statements")


def test_results_stored_with_their_sql_inside_are_still_served_with_it(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    first = check(state)
    _old_format(state)
    again = check(state)
    assert again.data_queries == 0 and all(r.cached for r in again.results)
    assert [r.sql for r in again.results] == [r.sql for r in first.results]
    assert json.loads(again.to_json())["tables"][0]["sql"] == first.tables[0].sql


def test_a_result_whose_statements_are_gone_runs_again(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    first = check(state)
    with sqlite3.connect(state) as con:
        con.execute("DELETE FROM rule_statements")
    again = check(state)
    assert again.data_queries > 0 and not any(r.cached for r in again.results)
    assert [r.sql for r in again.results] == [r.sql for r in first.results]
