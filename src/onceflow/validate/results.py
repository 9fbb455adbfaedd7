"""Validation results: one per rule, grouped per table, and the report that holds them.

Outcomes:
    pass     the rule held (within its threshold)
    warn     a `severity: warn` rule did not hold (never blocks, never fails a run)
    fail     an error-severity rule did not hold
    error    the rule could not run (bad SQL, a missing column or table); never a `fail`
    skipped  the rule was not run: its table's load failed

The JSON form (`ValidationReport.as_dict`) follows `report.schema.json`, shipped beside
this module (`SCHEMA_PATH`). A table's statements are in it once, in the table's `sql`,
and each result names its own by index (`sql_refs`): a fused query serves hundreds of
rules, and 2,002 rules that each repeated their ~66 KB chunk made a 144 MB report.
In Python, `RuleResult.sql` is the rule's statements as text (the same string objects
its table's other results hold, so nothing is copied).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PASS, WARN, FAIL, ERROR, SKIPPED = "pass", "warn", "fail", "error", "skipped"
OUTCOMES = (PASS, WARN, FAIL, ERROR, SKIPPED)
SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
# 2: a table's statements once, in its `sql`; a result's `sql_refs` index them (1: each
# result held its statements' text, `sql`)
REPORT_FORMAT = "onceflow.validation-report/2"


@dataclass
class RuleResult:
    """The outcome of one rule on one table (or one file, for a pre-load rule)."""

    rule: str
    table: str
    type: str
    severity: str
    stage: str
    outcome: str
    observed: Any = None
    threshold: dict[str, Any] = field(default_factory=dict)
    failing_rows: int | None = None
    distinct_failing: int | None = None  # uniqueness: distinct duplicated values
    evaluated_rows: int | None = None  # rows judged: non-NULL ones (completeness: all)
    total_rows: int | None = None  # rows in the rule's scope (after its filter)
    failing_percent: float | None = None  # of total_rows
    failing_percent_non_null: float | None = None  # of evaluated_rows
    samples: list[dict[str, Any]] = field(default_factory=list)
    # the statements the rule took part in, as text (a cached result's ran before); in
    # the JSON report, indexes into its table's `sql` (`sql_refs`)
    sql: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0
    fingerprint: str | None = None
    cached: bool = False
    incremental: bool = False
    message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # the rule's `description` as the config gives it now: set when the report is made,
    # never served from the cache (a changed description keeps the stored result)
    description: str | None = None

    @property
    def pass_rate(self) -> float | None:
        """Passing fraction of the judged rows (1.0/0.0 for a one-value rule), or None."""
        if self.outcome in (ERROR, SKIPPED):
            return None
        if self.failing_rows is not None:
            judged = self.evaluated_rows if self.evaluated_rows is not None else self.total_rows
            if not judged:
                return 1.0
            return max(0, judged - self.failing_rows) / judged
        return 1.0 if self.outcome == PASS else 0.0

    @property
    def passed(self) -> bool:
        """The rule held (outcome pass); warn, fail, error and skipped did not."""
        return self.outcome == PASS

    def as_dict(self, sql_refs: list[int] | None = None) -> dict[str, Any]:
        """JSON-ready form (a shallow copy: dataclasses.asdict deep-copies every sample
        row, 0.4 s for 100 rules' samples); with `sql_refs`, the report's form: those
        indexes into the table's statements in place of `sql`'s text."""
        if sql_refs is None:
            return {f.name: getattr(self, f.name) for f in fields(self)}
        return {
            ("sql_refs" if f.name == "sql" else f.name): (
                sql_refs if f.name == "sql" else getattr(self, f.name)
            )
            for f in fields(self)
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuleResult:
        """The result back from its JSON form (unknown keys ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def comparable(self) -> dict[str, Any]:
        """What must be equal between two validations of the same data: the result without
        how it was got (samples, SQL, duration, fingerprint, cached, incremental). Compare
        two reports' `comparable()` lists to tell a rerun from a changed outcome."""
        data = self.as_dict()
        for key in ("samples", "sql", "duration_seconds", "fingerprint", "cached", "incremental"):
            data.pop(key)
        return data


def count_outcomes(results: Iterable[RuleResult]) -> dict[str, int]:
    """How many results have each outcome (every outcome listed, zeros included)."""
    out = dict.fromkeys(OUTCOMES, 0)
    for r in results:
        out[r.outcome] += 1
    return out


def sql_index(results: Iterable[RuleResult]) -> tuple[list[str], list[list[int]]]:
    """The statements of `results`, each once in the order first named, and each
    result's statements as indexes into them. (A rule's statements are string objects
    shared with its table's other rules, whose hash Python keeps: a 66 KB fused query
    is hashed once, not once a rule.)"""
    index: dict[str, int] = {}
    refs = [[index.setdefault(s, len(index)) for s in r.sql] for r in results]
    return list(index), refs


@dataclass
class TableReport:
    """The rules of one table (or one file) and how they were run."""

    table: str
    source: str
    stage: str = "post_load"
    scope: str = "table"
    fingerprint: str | None = None
    results: list[RuleResult] = field(default_factory=list)
    statements: int = 0
    data_queries: int = 0
    retries: int = 0
    duration_seconds: float = 0.0
    validation_id: str | None = None
    quarantined: int | None = None
    quarantine_table: str | None = None
    quarantine_error: str | None = None  # the quarantine pass failed (rules still judged)
    message: str | None = None

    def counts(self) -> dict[str, int]:
        """Rules per outcome."""
        return count_outcomes(self.results)

    @property
    def sql(self) -> list[str]:
        """Every statement behind the results, each once, in the order they name them
        (a cached result's ran on an earlier validation): the JSON report's `sql`."""
        return sql_index(self.results)[0]

    @property
    def total_rules(self) -> int:
        """Rules judged (or skipped, or in error) in this report."""
        return len(self.results)

    @property
    def failed(self) -> list[RuleResult]:
        """Error-severity rules that did not hold."""
        return [r for r in self.results if r.outcome == FAIL]

    @property
    def errors(self) -> list[RuleResult]:
        """Rules that could not run."""
        return [r for r in self.results if r.outcome == ERROR]

    @property
    def status(self) -> str:
        """error (a rule, or the quarantine pass, could not run), failed, skipped (its
        rules did not run: the table's load failed), warn or passed."""
        counts = self.counts()
        if counts[ERROR] or self.quarantine_error:
            return "error"
        if counts[FAIL]:
            return "failed"
        if counts[SKIPPED]:
            return "skipped"
        if counts[WARN]:
            return "warn"
        return "passed"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        statements, refs = sql_index(self.results)
        data["sql"] = statements
        data["results"] = [r.as_dict(n) for r, n in zip(self.results, refs, strict=True)]
        data["counts"] = self.counts()
        data["status"] = self.status
        return data


@dataclass
class ValidationReport:
    """A validation of one or more tables: `results` flattens their rule results."""

    pipeline: str
    tables: list[TableReport] = field(default_factory=list)
    started_at: str = ""
    duration_seconds: float = 0.0
    run_id: str | None = None
    reference_time: str | None = None

    @property
    def results(self) -> list[RuleResult]:
        """Every rule result of every table."""
        return [r for t in self.tables for r in t.results]

    def counts(self) -> dict[str, int]:
        """Rules per outcome, all tables."""
        return count_outcomes(self.results)

    @property
    def total_rules(self) -> int:
        """Rules in the report, all tables (the seed validator's `summary.total_rules`)."""
        return len(self.results)

    @property
    def ok(self) -> bool:
        """No error-severity rule failed and every rule (and quarantine pass) could run."""
        return self.exit_code == 0

    @property
    def exit_code(self) -> int:
        """0: no error-severity rule failed; 1: one failed; 2: a rule (or a table's
        quarantine pass) could not run, or was skipped."""
        counts = self.counts()
        if counts[ERROR] or counts[SKIPPED] or any(t.quarantine_error for t in self.tables):
            return 2
        return 1 if counts[FAIL] else 0

    @property
    def data_queries(self) -> int:
        """Statements that read data, all tables (0 when everything came from the cache)."""
        return sum(t.data_queries for t in self.tables)

    @property
    def statements(self) -> int:
        """Statements run, all tables."""
        return sum(t.statements for t in self.tables)

    def table(self, key: str) -> TableReport:
        """One table's report, by key."""
        for t in self.tables:
            if t.table == key:
                return t
        raise KeyError(key)

    def result(self, rule: str, table: str | None = None) -> RuleResult:
        """One rule's result (of `table`, when several tables have that rule name)."""
        for r in self.results:
            if r.rule == rule and (table is None or r.table == table):
                return r
        raise KeyError(rule)

    def as_dict(self) -> dict[str, Any]:
        """The JSON report (see report.schema.json)."""
        return {
            "format": REPORT_FORMAT,
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "started_at": self.started_at,
            "duration_seconds": self.duration_seconds,
            "reference_time": self.reference_time,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "counts": self.counts(),
            "statements": self.statements,
            "data_queries": self.data_queries,
            "tables": [t.as_dict() for t in self.tables],
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """The JSON report as text, also written to `path` when given."""
        # compact: with `indent`, json falls back to its pure-Python encoder, 0.18 s for a
        # report of 100 rules with their samples; without, the C one takes 0.02 s
        text = json.dumps(self.as_dict(), separators=(",", ":"), default=str)
        if path is not None:
            from onceflow.lake.atomic import write_bytes_atomic

            # a full disk leaves the last report whole, not a truncated one
            write_bytes_atomic(Path(path), (text + "\n").encode("utf-8"))
        return text


def schema() -> dict[str, Any]:
    """The JSON Schema of the report."""
    data: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return data
