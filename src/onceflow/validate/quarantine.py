"""Quarantine: the rows failing a table's row-level error rules, in `<table>_quarantine`.

One extra pass selects every row that fails at least one row-level, error-severity rule
(completeness, range, allowed_values, regex, length, sql_predicate), whatever the
rule's threshold, with `_failed_rules` (the names of the rules it fails) and
`_quarantined_at`. So for each rule, the quarantine rows naming it are its failing rows.

Nothing is quarantined twice: each write is one Delta commit whose metadata names the
data fingerprint it covers, the source version and the rules (name:hash) it applied. A
rerun on the same data and rules finds that commit as the last one and writes nothing
(other rules on the same data rewrite it, and so does a rule changed back); a rule left
unjudged by a transient error holds the write back, as a write without its rows would be
taken for done; a table that only grew by appends since the last write gets only the
failing rows of the added files; any other change (overwrite, merge) replaces the
quarantine table's content, as the source's content was replaced.

A `scope: run` validation keeps one set of rows per batch: the quarantine holds the
failing rows of the batches the table holds now. Each write removes the rows of every
batch the table no longer holds (a re-extracted window replaced it, a rewind took it
back) and adds those of this run's batches it does not hold yet, in one commit (a
predicate overwrite: delete `_batch_id IN (removed + added)`, insert the added rows), so
a kill leaves it before or after, never between. A later validation of an old date names
the batches already written and adds nothing; a batch removed and loaded again (the same
file content again) is written again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from onceflow.errors import ValidateError
from onceflow.faults import crashpoint
from onceflow.redact import redact
from onceflow.rules import Uniqueness
from onceflow.validate.engines.base import Engine
from onceflow.validate.inputs import Input
from onceflow.validate.results import ERROR, RuleResult

if TYPE_CHECKING:
    from onceflow.validate.compile import Plan
else:
    Plan = Any

log = logging.getLogger(__name__)

META_FINGERPRINT = "onceflow.quarantine.fingerprint"
META_SOURCE = "onceflow.quarantine.source"
META_ROWS = "onceflow.quarantine.rows"
META_BATCHES = "onceflow.quarantine.batches"  # scope run: the batch ids a write covered
META_REMOVED = "onceflow.quarantine.removed"  # scope run: the batch ids a write removed
META_MODE = "onceflow.quarantine.mode"
META_RULES = "onceflow.quarantine.rules"  # the rules (name:hash) a write covered


def _covered_batches(writes: list[dict[str, Any]]) -> set[str]:
    """Batch ids quarantined since the quarantine's content was last replaced, less those
    a later write removed: a later run's validation of an old date sees the same batch
    under a newer table version (a new fingerprint), and must not write its rows again."""
    decided: dict[str, bool] = {}
    for write in writes:  # newest first: the newest word on a batch stands
        for batch in json.loads(str(write.get(META_BATCHES) or "[]")):
            decided.setdefault(batch, True)
        for batch in json.loads(str(write.get(META_REMOVED) or "[]")):
            decided.setdefault(batch, False)
        if write.get(META_MODE) == "overwrite":
            break
    return {batch for batch, held in decided.items() if held}


def _quarantined_batches(dt: Any) -> set[str]:
    """The batch ids of the quarantine's rows (rows a `scope: table` write left there
    carry theirs too)."""
    import pyarrow.compute as pc

    if "_batch_id" not in dt.schema().to_arrow().names:
        return set()
    column = dt.to_pyarrow_dataset().to_table(columns=["_batch_id"]).column("_batch_id")
    return {b for b in pc.unique(column).to_pylist() if b is not None}


def _in_list(batches: list[str]) -> str:
    return ", ".join("'" + b.replace("'", "''") + "'" for b in batches)


def _eligible(plan: Plan) -> bool:
    """A row-level, error-severity rule: its failing rows are quarantined."""
    return (
        plan.failing is not None
        and plan.separate is None
        and not isinstance(plan.rule, Uniqueness)
        and plan.rule.severity == "error"
    )


def _rules_key(
    plans: dict[str, Plan], results: dict[str, RuleResult], hashes: dict[str, str]
) -> str:
    """The rules a write covers, by name and definition: the same data checked by other
    rules (one added, fixed or changed) is not quarantined yet."""
    judged = [
        f"{name}:{hashes.get(name, '')}"
        for name, p in plans.items()
        if _eligible(p) and name in results and results[name].outcome != ERROR
    ]
    return json.dumps(sorted(judged))


def _writes(dt: Any) -> list[dict[str, Any]]:
    """The quarantine's own commits, newest first."""
    return [dict(e) for e in dt.history() if e.get(META_FINGERPRINT)]


def quarantine_pass(
    uri: str, data: Input, table: str
) -> Callable[
    [Engine, dict[str, Plan], dict[str, RuleResult], dict[str, str], set[str]], int | None
]:
    """The pass to run after a table's rules (see the module doc); returns rows written."""

    def run(
        engine: Engine,
        plans: dict[str, Plan],
        results: dict[str, RuleResult],
        hashes: dict[str, str],
        unjudged: set[str],
    ) -> int | None:
        import pyarrow as pa
        from deltalake import CommitProperties, write_deltalake

        from onceflow.warehouse import open_table

        waiting = sorted(n for n in unjudged if n in plans and _eligible(plans[n]))
        if waiting:  # a write now would be marked done without their rows
            raise ValidateError(
                f"rule(s) {', '.join(waiting)} could not run (a transient error), and the "
                "quarantine waits for their rows; the next run writes it",
                table=table,
            )
        key = _rules_key(plans, results, hashes)
        dt = open_table(uri)
        writes = _writes(dt) if dt is not None else []
        last = writes[0] if writes else None
        # what the quarantine holds now is its last write's: an older write of the same
        # data and rules was replaced since (a rule changed and changed back, other data
        # checked in between), so it does not make this one done
        if (
            last is not None
            and last.get(META_FINGERPRINT) == data.fingerprint
            and last.get(META_RULES, key) == key
        ):
            return 0  # this data is quarantined already, by these rules
        chosen = [
            p
            for name, p in plans.items()
            if _eligible(p) and name in results and (results[name].failing_rows or 0) > 0
        ]
        rel, mode = "rel", "overwrite"
        batches: list[str] = []
        removed: list[str] = []
        predicate: str | None = None
        if data.batch_ids is not None:
            mode = "append"  # scope run: this run's rows, beside earlier runs' (never twice)
            held = _covered_batches(writes)
            if dt is not None:
                held |= _quarantined_batches(dt)
            wanted = set(data.batch_ids)
            asked = sorted(held | wanted)
            present = set()
            if asked:
                # the batches the table holds now: a replaced or rewound one is not there
                found = engine.query(
                    f'SELECT DISTINCT _batch_id FROM "{data.snapshot_name("rel")}" '
                    f"WHERE _batch_id IN ({_in_list(asked)})",
                    kind="quarantine",
                )
                present = {str(r["_batch_id"]) for r in found}
            removed = sorted(held - present)
            batches = sorted((wanted & present) - held)
            if not batches and not removed:
                return 0
            if batches and len(batches) < len(wanted):
                engine.create_view(
                    "q_run", f'SELECT * FROM "rel" WHERE _batch_id IN ({_in_list(batches)})'
                )
                rel = "q_run"
            if dt is not None:
                # one commit deletes the removed batches' rows and adds the new ones' (the
                # added batches too: rows of theirs, if any, would be twice)
                predicate = f"_batch_id IN ({_in_list(removed + batches)})"
            if not batches:
                chosen = []
        elif last is not None and data.kind == "delta" and last.get(META_RULES, key) == key:
            source_id, _, version = str(last.get(META_SOURCE) or "").partition("@")
            added = data.added_since(int(version)) if source_id == data.source_id else None
            if added is not None:
                if not added:
                    return 0
                data.register_files(engine, "q_new", added)
                rel, mode = "q_new", "append"
        if chosen:
            from onceflow.validate import compile as sql

            query = sql.render(sql.quarantine_query(rel, chosen), engine.dialect)
            rows = engine.query_arrow(
                query, kind="quarantine", rules=tuple(p.rule.name for p in chosen)
            )
        elif (mode == "overwrite" or removed) and dt is not None:
            rows = _empty_like(dt)
        else:
            return 0
        stamp = pa.scalar(datetime.now(UTC), pa.timestamp("us", tz="UTC"))
        rows = rows.append_column("_quarantined_at", pa.repeat(stamp, rows.num_rows))
        props = CommitProperties(
            custom_metadata={
                META_FINGERPRINT: data.fingerprint or "",
                META_SOURCE: f"{data.source_id}@{data.version}",
                META_ROWS: str(rows.num_rows),
                META_BATCHES: json.dumps(batches),
                META_REMOVED: json.dumps(removed),
                META_MODE: mode,
                META_RULES: key,
            }
        )
        crashpoint("quarantine_before_commit", table)
        try:
            write_deltalake(  # type: ignore[call-overload]
                uri,
                rows,
                mode="overwrite" if predicate is not None else mode,
                predicate=predicate,
                schema_mode="merge" if mode == "append" else "overwrite",
                commit_properties=props,
            )
        except Exception as error:
            raise _write_error(uri, table, error) from None
        crashpoint("quarantine_after_commit", table)
        log.info("%s: %d rows quarantined into %s (%s)", table, rows.num_rows, uri, mode)
        if removed:
            log.info(
                "%s: quarantined rows of %d batch(es) the table no longer holds removed: %s",
                table,
                len(removed),
                ", ".join(removed),
            )
        return int(rows.num_rows)

    return run


def _write_error(uri: str, table: str, error: Exception) -> Exception:
    """A failed quarantine write as what to do about it: a full disk, a read-only one or
    a folder it may not write is said so, with the fix (delta-rs's own text is a chain
    of layers that names none of it first); anything else as it came."""
    from onceflow.warehouse import one_line, write_problem  # Arrow: only after a failure

    problem = write_problem(error)
    if problem is None:
        return error
    fix = {
        "disk full": "free space on its disk",
        "read-only file system": "mount it read-write",
        "no permission": "give this user write access to it",
    }[problem]
    text = redact(one_line(str(error)))[:300]
    return ValidateError(
        f"{problem} while writing the quarantine table {redact(uri)} ({text}); {fix}, then "
        "rerun: the rule results stand, the quarantine keeps its last commit",
        table=table,
    )


def _empty_like(dt: Any) -> Any:
    import pyarrow as pa

    schema = pa.schema(dt.schema().to_arrow())
    schema = pa.schema([f for f in schema if f.name != "_quarantined_at"])
    return schema.empty_table()
