"""Rule results, validations and rule history: the validate step's index.

    rule_results   one result per (pipeline, table, rule, rule hash, data fingerprint): the
                   cache and the resume point. A result is saved the moment it is known,
                   so a killed validation resumes with only the rules not yet saved.
                   `metrics` holds the partial aggregate state that an incremental run on
                   a grown Delta table merges (source_id = table id, source_version).
    rule_statements  the SQL the results name, each statement once per (pipeline, table,
                   data fingerprint), by digest: a fused query serves hundreds of rules,
                   so a result holds its statements' digests, not their text. Saved with
                   the result that first names it; pruned and reset with the results.
    validations    one row per validation of a table: when, on what, how it ended.
    rule_history   each rule's outcome and pass rate per validation (the HTML report's chart).
    seed_state_files  the seed validator's JSON state files seen, one row per content: so
                   that what one held is reported once (its entries are never results).
    quarantine_passes  one row per (pipeline, table, data fingerprint): the quarantine pass
                   completed on that data with these rules (a digest) and left the
                   quarantine table in this state; pruned and reset with the results.

Results are JSON text written by the validate step; this repository never interprets them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from onceflow.clock import now_iso
from onceflow.state.db import Database, record_from_row, rows_as

_SAVE = (
    "INSERT INTO rule_results (pipeline, table_key, rule_name, rule_hash, fingerprint, outcome, "
    "result, metrics, source_id, source_version, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (pipeline, table_key, rule_name, rule_hash, fingerprint) DO UPDATE SET "
    "outcome = excluded.outcome, result = excluded.result, metrics = excluded.metrics, "
    "source_id = excluded.source_id, source_version = excluded.source_version, "
    "created_at = excluded.created_at"
)
_FIND = "SELECT * FROM rule_results WHERE pipeline = ? AND table_key = ? AND fingerprint = ?"
_SAVE_STATEMENT = (
    "INSERT INTO rule_statements (pipeline, table_key, fingerprint, digest, sql, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (pipeline, table_key, fingerprint, digest) DO NOTHING"
)
_STATEMENTS = (
    "SELECT digest, sql FROM rule_statements WHERE pipeline = ? AND table_key = ? "
    "AND fingerprint = ?"
)
_STATES = (
    "SELECT * FROM rule_results WHERE pipeline = ? AND table_key = ? AND source_id = ? "
    "AND source_version < ? AND metrics IS NOT NULL ORDER BY source_version DESC, created_at DESC"
)
_BEGIN = (
    "INSERT INTO validations (validation_id, pipeline, table_key, run_id, stage, fingerprint, "
    "status, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_FINISH = (
    "UPDATE validations SET status = ?, counts = ?, statements = ?, ended_at = ? "
    "WHERE validation_id = ?"
)
_HISTORY = (
    "INSERT INTO rule_history (validation_id, rule_name, pipeline, table_key, outcome, "
    "pass_rate, failing_rows, cached, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (validation_id, rule_name) DO NOTHING"
)
# The newest `keep` fingerprints of a table stay (the current one, and the older states
# an incremental run merges from); the rest is a cache nobody can hit any more.
_PRUNE_RESULTS = (
    "DELETE FROM rule_results WHERE pipeline = ? AND table_key = ? AND fingerprint NOT IN ("
    "SELECT fingerprint FROM rule_results WHERE pipeline = ? AND table_key = ? "
    "GROUP BY fingerprint ORDER BY MAX(created_at) DESC, fingerprint LIMIT ?)"
)
# a quarantine pass is worth keeping while results on its data are (its only reader is a
# validation answered wholly from the cache)
_PRUNE_PASSES = (
    "DELETE FROM quarantine_passes WHERE pipeline = ? AND table_key = ? AND fingerprint NOT IN ("
    "SELECT fingerprint FROM rule_results WHERE pipeline = ? AND table_key = ?)"
)
# a statement is kept while results on its data are (they are what names it)
_PRUNE_STATEMENTS = (
    "DELETE FROM rule_statements WHERE pipeline = ? AND table_key = ? AND fingerprint NOT IN ("
    "SELECT fingerprint FROM rule_results WHERE pipeline = ? AND table_key = ?)"
)
# validations older than the table's `keep`-th newest, with their history rows
_OLDEST_KEPT = (
    "SELECT started_at FROM validations WHERE pipeline = ? AND table_key = ? "
    "ORDER BY started_at DESC LIMIT 1 OFFSET ?"
)
_LAST = (
    "SELECT v.* FROM validations v WHERE v.pipeline = ? AND v.stage = ? AND v.started_at = "
    "(SELECT MAX(w.started_at) FROM validations w WHERE w.pipeline = v.pipeline "
    "AND w.table_key = v.table_key AND w.stage = v.stage) ORDER BY v.table_key"
)


@dataclass(frozen=True)
class RuleResultRecord:
    """One stored rule result: the result and metrics as JSON text."""

    pipeline: str
    table_key: str
    rule_name: str
    rule_hash: str
    fingerprint: str
    outcome: str
    result: str
    metrics: str | None = None
    source_id: str | None = None
    source_version: int | None = None
    created_at: str = ""

    def result_data(self) -> dict[str, Any]:
        """The result as a dict."""
        data: dict[str, Any] = json.loads(self.result)
        return data

    def metrics_data(self) -> dict[str, Any] | None:
        """The partial aggregate state, or None."""
        return None if self.metrics is None else dict(json.loads(self.metrics))


@dataclass(frozen=True)
class StatementRecord:
    """One statement a stored result names (by `digest`), on one table's data."""

    pipeline: str
    table_key: str
    fingerprint: str
    digest: str
    sql: str


@dataclass(frozen=True)
class ValidationRecord:
    """One validation of one table (a stage: post_load on the table, pre_load on a file)."""

    validation_id: str
    pipeline: str
    table_key: str
    run_id: str | None
    stage: str
    fingerprint: str | None
    status: str
    counts: str | None
    statements: int
    started_at: str
    ended_at: str | None

    def counts_data(self) -> dict[str, int]:
        """Rules per outcome."""
        return {} if not self.counts else {k: int(v) for k, v in json.loads(self.counts).items()}


@dataclass(frozen=True)
class HistoryRecord:
    """One rule's outcome in one validation."""

    validation_id: str
    rule_name: str
    pipeline: str
    table_key: str
    outcome: str
    pass_rate: float | None
    failing_rows: int | None
    cached: bool
    recorded_at: str


class Rules:
    """The `rule_results`, `rule_statements`, `validations`, `rule_history`,
    `seed_state_files` and `quarantine_passes` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def save(
        self, records: Sequence[RuleResultRecord], statements: Sequence[StatementRecord] = ()
    ) -> None:
        """Store results (replacing the same rule, hash and fingerprint), with the
        statements they name that are not stored yet (one already stored on that data is
        kept as it is), in one transaction."""
        if not records and not statements:
            return
        stamp = now_iso()
        with self.db.transaction() as tx:
            if statements:
                tx.executemany(
                    _SAVE_STATEMENT,
                    [
                        (s.pipeline, s.table_key, s.fingerprint, s.digest, s.sql, stamp)
                        for s in statements
                    ],
                )
            if not records:
                return
            tx.executemany(
                _SAVE,
                [
                    (
                        r.pipeline,
                        r.table_key,
                        r.rule_name,
                        r.rule_hash,
                        r.fingerprint,
                        r.outcome,
                        r.result,
                        r.metrics,
                        r.source_id,
                        r.source_version,
                        r.created_at or stamp,
                    )
                    for r in records
                ],
            )

    def find(self, pipeline: str, table_key: str, fingerprint: str) -> list[RuleResultRecord]:
        """Every stored result of a table on this data fingerprint (one query)."""
        with self.db.transaction() as tx:
            rows = tx.execute(_FIND, (pipeline, table_key, fingerprint)).fetchall()
        return rows_as(RuleResultRecord, rows)

    def statements(self, pipeline: str, table_key: str, fingerprint: str) -> dict[str, str]:
        """The statements stored results of a table on this data name: digest -> SQL."""
        with self.db.transaction() as tx:
            rows = tx.execute(_STATEMENTS, (pipeline, table_key, fingerprint)).fetchall()
        return {str(r["digest"]): str(r["sql"]) for r in rows}

    def get(
        self, pipeline: str, table_key: str, rule_name: str, rule_hash: str, fingerprint: str
    ) -> RuleResultRecord | None:
        """One stored result, or None."""
        with self.db.transaction() as tx:
            row = tx.execute(
                _FIND + " AND rule_name = ? AND rule_hash = ?",
                (pipeline, table_key, fingerprint, rule_name, rule_hash),
            ).fetchone()
        return record_from_row(RuleResultRecord, row) if row else None

    def latest_states(
        self, pipeline: str, table_key: str, source_id: str, below_version: int
    ) -> dict[tuple[str, str], RuleResultRecord]:
        """Per (rule, hash), the newest result with metrics on an older version of the
        same source (a Delta table id): what an incremental run starts from."""
        with self.db.transaction() as tx:
            rows = tx.execute(_STATES, (pipeline, table_key, source_id, below_version)).fetchall()
        out: dict[tuple[str, str], RuleResultRecord] = {}
        for rec in rows_as(RuleResultRecord, rows):
            out.setdefault((rec.rule_name, rec.rule_hash), rec)
        return out

    def begin(
        self,
        validation_id: str,
        pipeline: str,
        table_key: str,
        *,
        stage: str,
        fingerprint: str | None,
        run_id: str | None = None,
    ) -> None:
        """Record that a validation of a table started."""
        with self.db.transaction() as tx:
            tx.execute(
                _BEGIN,
                (
                    validation_id,
                    pipeline,
                    table_key,
                    run_id,
                    stage,
                    fingerprint,
                    "running",
                    now_iso(),
                ),
            )

    def finish(
        self,
        validation_id: str,
        status: str,
        counts: dict[str, int],
        statements: int,
        history: Iterable[HistoryRecord] = (),
    ) -> None:
        """End a validation with its status, outcome counts and each rule's history row."""
        stamp = now_iso()
        with self.db.transaction() as tx:
            tx.execute(
                _FINISH,
                (status, json.dumps(counts, sort_keys=True), statements, stamp, validation_id),
            )
            tx.executemany(
                _HISTORY,
                [
                    (
                        h.validation_id,
                        h.rule_name,
                        h.pipeline,
                        h.table_key,
                        h.outcome,
                        h.pass_rate,
                        h.failing_rows,
                        int(h.cached),
                        h.recorded_at or stamp,
                    )
                    for h in history
                ],
            )

    def validations(
        self,
        pipeline: str,
        table_key: str | None = None,
        limit: int = 50,
        *,
        stage: str | None = None,
    ) -> list[ValidationRecord]:
        """The most recent validations first (of one table, or all; of one stage, or all)."""
        sql = "SELECT * FROM validations WHERE pipeline = ?"
        params: list[Any] = [pipeline]
        if table_key is not None:
            sql += " AND table_key = ?"
            params.append(table_key)
        if stage is not None:
            sql += " AND stage = ?"
            params.append(stage)
        sql += " ORDER BY started_at DESC LIMIT ?"
        with self.db.transaction() as tx:
            return rows_as(ValidationRecord, tx.execute(sql, (*params, limit)).fetchall())

    def last_validations(self, pipeline: str, stage: str = "post_load") -> list[ValidationRecord]:
        """Each table's latest validation of a stage (for `onceflow status`)."""
        with self.db.transaction() as tx:
            rows = tx.execute(_LAST, (pipeline, stage)).fetchall()
        return rows_as(ValidationRecord, rows)

    def history(
        self, pipeline: str, table_key: str, limit: int = 30, *, source: str | None = None
    ) -> list[HistoryRecord]:
        """Rule outcomes of a table's last `limit` finished validations, oldest first;
        with `source` (a data fingerprint's prefix), only those of that data source."""
        where = " AND fingerprint LIKE ?" if source is not None else ""
        like = [source.replace("%", "") + "%"] if source is not None else []
        with self.db.transaction() as tx:
            ids = [
                r["validation_id"]
                for r in tx.execute(
                    "SELECT validation_id FROM validations WHERE pipeline = ? AND table_key = ? "
                    f"AND ended_at IS NOT NULL AND stage = 'post_load'{where} "
                    "ORDER BY started_at DESC LIMIT ?",
                    (pipeline, table_key, *like, limit),
                ).fetchall()
            ]
            if not ids:
                return []
            marks = ", ".join("?" for _ in ids)
            rows = tx.execute(
                f"SELECT * FROM rule_history WHERE validation_id IN ({marks}) "
                "ORDER BY recorded_at, rule_name",
                ids,
            ).fetchall()
        return rows_as(HistoryRecord, rows)

    def reset(
        self, pipeline: str, table_key: str | None = None, rule_name: str | None = None
    ) -> int:
        """Forget stored results (the cache and resume points) of one rule, one table, or
        the whole pipeline; without a rule, that scope's validations and history too.
        Returns the number of results removed."""
        where = "pipeline = ?"
        params: list[Any] = [pipeline]
        if table_key is not None:
            where += " AND table_key = ?"
            params.append(table_key)
        with self.db.transaction() as tx:
            if rule_name is not None:
                return int(
                    tx.execute(
                        f"DELETE FROM rule_results WHERE {where} AND rule_name = ?",
                        (*params, rule_name),
                    ).rowcount
                )
            removed = int(tx.execute(f"DELETE FROM rule_results WHERE {where}", params).rowcount)
            tx.execute(f"DELETE FROM rule_statements WHERE {where}", params)
            tx.execute(f"DELETE FROM quarantine_passes WHERE {where}", params)
            tx.execute(f"DELETE FROM rule_history WHERE {where}", params)
            tx.execute(f"DELETE FROM validations WHERE {where}", params)
            return removed

    def prune(
        self, pipeline: str, table_key: str, *, keep_results: int = 10, keep_history: int = 200
    ) -> int:
        """Bound what a table keeps: results on its `keep_results` newest data fingerprints,
        its `keep_history` newest validations (the report's chart reads the last 30).
        Returns the number of results removed."""
        with self.db.transaction() as tx:
            removed = int(
                tx.execute(
                    _PRUNE_RESULTS, (pipeline, table_key, pipeline, table_key, keep_results)
                ).rowcount
            )
            tx.execute(_PRUNE_PASSES, (pipeline, table_key, pipeline, table_key))
            tx.execute(_PRUNE_STATEMENTS, (pipeline, table_key, pipeline, table_key))
            row = tx.execute(_OLDEST_KEPT, (pipeline, table_key, keep_history - 1)).fetchone()
            if row is not None:
                old = (
                    "SELECT validation_id FROM validations WHERE pipeline = ? AND table_key = ? "
                    "AND started_at < ?"
                )
                params = (pipeline, table_key, row["started_at"])
                tx.execute(f"DELETE FROM rule_history WHERE validation_id IN ({old})", params)
                tx.execute(
                    "DELETE FROM validations WHERE pipeline = ? AND table_key = ? "
                    "AND started_at < ?",
                    params,
                )
            return removed

    def note_seed_file(self, pipeline: str, path: str, digest: str, summary: str) -> bool:
        """Record that the seed's state file at `path`, with this content digest, was
        seen; True only for the first caller (the one to report it), even concurrently."""
        with self.db.transaction() as tx:
            return (
                tx.execute(
                    "INSERT INTO seed_state_files (pipeline, path, digest, summary, seen_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (pipeline, path, digest) DO NOTHING",
                    (pipeline, path, digest, summary, now_iso()),
                ).rowcount
                == 1
            )

    def note_quarantined(
        self, pipeline: str, table_key: str, fingerprint: str, rules: str, quarantine: str
    ) -> None:
        """Record that the quarantine pass completed on this data (`fingerprint`) with
        these rules (a digest), leaving the quarantine table as `quarantine` says."""
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO quarantine_passes (pipeline, table_key, fingerprint, rules, "
                "quarantine, done_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (pipeline, table_key, fingerprint) DO UPDATE SET "
                "rules = excluded.rules, quarantine = excluded.quarantine, "
                "done_at = excluded.done_at",
                (pipeline, table_key, fingerprint, rules, quarantine, now_iso()),
            )

    def quarantined(
        self, pipeline: str, table_key: str, fingerprint: str
    ) -> tuple[str, str] | None:
        """The last completed quarantine pass on this data: (rules, quarantine), or None."""
        with self.db.transaction() as tx:
            row = tx.execute(
                "SELECT rules, quarantine FROM quarantine_passes "
                "WHERE pipeline = ? AND table_key = ? AND fingerprint = ?",
                (pipeline, table_key, fingerprint),
            ).fetchone()
        return None if row is None else (str(row["rules"]), str(row["quarantine"]))

    def counts(self, pipeline: str) -> dict[str, int]:
        """Stored results per outcome."""
        with self.db.transaction() as tx:
            rows = tx.execute(
                "SELECT outcome, COUNT(*) AS n FROM rule_results WHERE pipeline = ? "
                "GROUP BY outcome",
                (pipeline,),
            ).fetchall()
        return {r["outcome"]: int(r["n"]) for r in rows}
