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
file content again) is written again. A batch is written for the rules that had a
verdict then (the write's rules key): validated again by other rules (one that errored
since fixed, one added or changed), its rows are rewritten the same way.

Two passes at once (two `validate`, a scheduled run and a manual one) each plan from the
quarantine as they read it, so each commits on that version with no rebase
(`max_commit_retries=0`; the first write creates the table only if there is none): the
later commit fails, and its pass reads the quarantine again and plans anew, finding the
rows written. Delta's own check, not a state-store lock: it holds for every writer,
those without a store or with another store included.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from onceflow.errors import ValidateError
from onceflow.faults import crashpoint
from onceflow.redact import redact
from onceflow.rules import quarantines_rows
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


def _covered_batches(writes: list[dict[str, Any]]) -> tuple[dict[str, str | None], str | None]:
    """Batch ids quarantined since the quarantine's content was last replaced, less those
    a later write removed, each with the rules key of the write that wrote it (None: a
    write from before the rules were recorded); and the rules key of that replacing
    write, which rows carrying a batch id no write names came from (a `scope: table`
    write). A later run's validation of an old date sees the same batch under a newer
    table version (a new fingerprint), and must not write its rows again unless the
    rules changed since."""
    decided: dict[str, tuple[bool, str | None]] = {}
    base: str | None = None
    for write in writes:  # newest first: the newest word on a batch stands
        rules = write.get(META_RULES)
        for batch in json.loads(str(write.get(META_BATCHES) or "[]")):
            decided.setdefault(batch, (True, None if rules is None else str(rules)))
        for batch in json.loads(str(write.get(META_REMOVED) or "[]")):
            decided.setdefault(batch, (False, None))
        if write.get(META_MODE) == "overwrite":
            base = None if rules is None else str(rules)
            break
    return {batch: rules for batch, (held, rules) in decided.items() if held}, base


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
    """A row-level, error-severity rule (`rules.quarantines_rows`, which `check` warns
    by too): its failing rows are quarantined."""
    return plan.failing is not None and plan.separate is None and quarantines_rows(plan.rule)


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


@dataclass
class _Write:
    """One planned quarantine commit: the failing rows of `chosen` in `rel`, written as
    `mode`; `predicate` (scope run) deletes the rows of `removed` and `batches` first."""

    rel: str
    mode: str
    chosen: list[Plan]
    batches: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    predicate: str | None = None


class _Moved(Exception):
    """Another writer committed to the quarantine table after this pass read it."""


#: How many times a pass whose base version moved (another validation of the table
#: committed first) reads the quarantine again and plans anew, before it gives up.
CONFLICT_RETRIES = 5


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
        waiting = sorted(n for n in unjudged if n in plans and _eligible(plans[n]))
        if waiting:  # a write now would be marked done without their rows
            raise ValidateError(
                f"rule(s) {', '.join(waiting)} could not run (a transient error), and the "
                "quarantine waits for their rows; the next run writes it",
                table=table,
            )
        key = _rules_key(plans, results, hashes)
        for _attempt in range(CONFLICT_RETRIES):
            dt = _open(uri, table)
            write = _plan(engine, dt, data, plans, results, key)
            if write is None:
                return 0
            try:
                return _commit(engine, uri, dt, data, table, key, write)
            except _Moved:
                # its plan rests on what it read (the last write, the batches held): read
                # again, and this data is usually found quarantined by the other writer
                log.info(
                    "%s: another writer committed to %s while this quarantine pass ran; "
                    "planning it again",
                    table,
                    redact(uri),
                )
        raise ValidateError(
            f"the quarantine table {redact(uri)} changed under each of {CONFLICT_RETRIES} "
            "attempts to write it (other validations of the table at the same time); rerun: "
            "the rule results stand, the quarantine keeps its last commit",
            table=table,
        )

    return run


def quarantine_state(uri: str, table: str) -> Callable[[], str]:
    """The quarantine table's state as text, read from its log (no data query): its id
    and version, or "none" before its first write. A pass on the same data with the same
    rules over the same state writes nothing (it plans from these alone), so a validation
    answered from the cache skips the pass when the store recorded one on all three."""

    def state() -> str:
        dt = _open(uri, table)
        if dt is None:
            return "none"
        return f"{dt.metadata().id}@{dt.version()}"

    return state


def _plan(
    engine: Engine,
    dt: Any,
    data: Input,
    plans: dict[str, Plan],
    results: dict[str, RuleResult],
    key: str,
) -> _Write | None:
    """What to write given the quarantine as read (`dt`, None before its first write);
    None when it holds this data's rows by these rules already."""
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
        return None  # this data is quarantined already, by these rules
    chosen = [
        p
        for name, p in plans.items()
        if _eligible(p) and name in results and (results[name].failing_rows or 0) > 0
    ]
    if data.batch_ids is not None:
        return _plan_batches(engine, dt, data, writes, key, chosen)
    write = _Write("rel", "overwrite", chosen)
    if last is not None and data.kind == "delta" and last.get(META_RULES, key) == key:
        source_id, _, version = str(last.get(META_SOURCE) or "").partition("@")
        added = data.added_since(int(version)) if source_id == data.source_id else None
        if added is not None:
            if not added:
                return None
            data.register_files(engine, "q_new", added)
            write.rel, write.mode = "q_new", "append"
    if not chosen and (write.mode == "append" or dt is None):
        return None  # no failing row to add, and nothing to replace
    return write


def _plan_batches(
    engine: Engine,
    dt: Any,
    data: Input,
    writes: list[dict[str, Any]],
    key: str,
    chosen: list[Plan],
) -> _Write | None:
    """The `scope: run` write: this run's batches not quarantined yet by these rules,
    and the removal of the batches the table no longer holds."""
    assert data.batch_ids is not None
    held, base = _covered_batches(writes)
    if dt is not None:
        for batch in _quarantined_batches(dt):
            held.setdefault(batch, base)
    wanted = set(data.batch_ids)
    asked = sorted(set(held) | wanted)
    present = set()
    if asked:
        # the batches the table holds now: a replaced or rewound one is not there
        found = engine.query(
            f'SELECT DISTINCT _batch_id FROM "{data.snapshot_name("rel")}" '
            f"WHERE _batch_id IN ({_in_list(asked)})",
            kind="quarantine",
        )
        present = {str(r["_batch_id"]) for r in found}
    removed = sorted(set(held) - present)
    # a batch is covered for the rules that had a verdict when it was written: one
    # written before a rule was fixed (it errored), added or changed is written again
    # by the rules in force now, as a `scope: table` quarantine is on any rule change
    batches = sorted(b for b in wanted & present if b not in held or held[b] not in (None, key))
    rewritten = any(b in held for b in batches)
    if not batches and not removed:
        return None
    write = _Write("rel", "append", chosen if batches else [], batches, removed)
    if batches and len(batches) < len(wanted):
        engine.create_view("q_run", f'SELECT * FROM "rel" WHERE _batch_id IN ({_in_list(batches)})')
        write.rel = "q_run"
    if dt is not None:
        # one commit deletes the removed batches' rows and adds the new ones' (the
        # added batches too: rows of theirs, if any, would be twice)
        write.predicate = f"_batch_id IN ({_in_list(removed + batches)})"
    if not write.chosen and not (removed or rewritten):
        return None  # no failing row in new batches: nothing to write or delete
    return write


def _commit(
    engine: Engine, uri: str, dt: Any, data: Input, table: str, key: str, write: _Write
) -> int:
    """Select the planned rows and commit them, on the version the plan read: another
    writer's commit since then fails it with `_Moved` (no silent rebase: two passes that
    both read the same last write would both add the same rows)."""
    import pyarrow as pa
    from deltalake import CommitProperties, write_deltalake

    if write.chosen:
        from onceflow.validate import compile as sql

        query = sql.render(sql.quarantine_query(write.rel, write.chosen), engine.dialect)
        rows = engine.query_arrow(
            query, kind="quarantine", rules=tuple(p.rule.name for p in write.chosen)
        )
    else:  # rows to remove or to replace, none to add
        rows = _empty_like(dt)
    stamp = pa.scalar(datetime.now(UTC), pa.timestamp("us", tz="UTC"))
    rows = rows.append_column("_quarantined_at", pa.repeat(stamp, rows.num_rows))
    props = CommitProperties(
        custom_metadata={
            META_FINGERPRINT: data.fingerprint or "",
            META_SOURCE: f"{data.source_id}@{data.version}",
            META_ROWS: str(rows.num_rows),
            META_BATCHES: json.dumps(write.batches),
            META_REMOVED: json.dumps(write.removed),
            META_MODE: write.mode,
            META_RULES: key,
        },
        max_commit_retries=0,
    )
    base = None if dt is None else dt.version()
    crashpoint("quarantine_before_commit", table)
    try:
        if dt is None:  # the first write creates it: refused if another pass just did
            write_deltalake(uri, rows, mode="error", commit_properties=props)
        else:
            write_deltalake(  # type: ignore[call-overload]
                dt,
                rows,
                mode="overwrite" if write.predicate is not None else write.mode,
                predicate=write.predicate,
                schema_mode="merge" if write.mode == "append" else "overwrite",
                commit_properties=props,
            )
    except Exception as error:
        if _moved(uri, table, base):
            raise _Moved from error
        raise _write_error(uri, table, error) from None
    crashpoint("quarantine_after_commit", table)
    log.info("%s: %d rows quarantined into %s (%s)", table, rows.num_rows, uri, write.mode)
    if write.removed:
        log.info(
            "%s: quarantined rows of %d batch(es) the table no longer holds removed: %s",
            table,
            len(write.removed),
            ", ".join(write.removed),
        )
    return int(rows.num_rows)


def _moved(uri: str, table: str, base: int | None) -> bool:
    """Whether the quarantine table has commits after version `base` (None: it exists
    now, where the plan found none)."""
    try:
        now = _open(uri, table)
    except ValidateError:
        return False
    return now is not None and (base is None or now.version() > base)


#: What to do about a quarantine table the machine will not let this pass open or
#: write, by `write_problem_cause`'s words; then rerun `validate` (or the run)
_FIXES = {
    "disk full": "free space on its disk",
    "disk quota exceeded": "free space or raise this user's quota",
    "read-only file system": "mount it read-write",
    "no permission": "give this user write access to it",
    "not permitted": "lift what forbids it (an immutable flag: `lsattr -d`, `chattr -i`)",
    "not a folder": "move that file away",
    "a folder in the way": "move that folder away",
}
_WHAT = {
    "not a folder": "a file stands where a folder of its path should be",
    "a folder in the way": "a folder stands where it writes a file",
}
#: The end of every such message: what stands, and what writes it after the fix.
_RERUN = (
    "then rerun `onceflow validate` (or the run): the rule results stand, the quarantine "
    "keeps its last commit"
)


def _open(uri: str, table: str) -> Any:
    """The quarantine table, None before its first write. A path the machine will not
    let it open says what is there and that the fix is to rerun the validation:
    `warehouse.open_table`'s own words ("then load again") are the loader's."""
    from onceflow.errors import LoadError
    from onceflow.warehouse import one_line, open_table, write_problem_cause

    try:
        return open_table(uri)
    except LoadError as error:
        # open_table drops delta-rs's error (`from None`); its text still names the cause
        found = write_problem_cause(error)
        if found is None:
            raise ValidateError(
                f"cannot open the quarantine table: {redact(one_line(str(error)))[:300]}; {_RERUN}",
                table=table,
            ) from None
        raise ValidateError(
            f"cannot open the quarantine table {redact(uri)}: "
            f"{_WHAT.get(found[0], found[0])}; {_FIXES[found[0]]}, {_RERUN}",
            table=table,
        ) from None


def _write_error(uri: str, table: str, error: Exception) -> Exception:
    """A failed quarantine write as what to do about it: a full disk, a read-only one, a
    folder it may not write or a path in the way is said so, with the fix (delta-rs's own
    text is a chain of layers that names none of it first); anything else as it came."""
    from onceflow.warehouse import one_line, write_problem_cause  # Arrow: only after a failure

    found = write_problem_cause(error)
    if found is None:
        return error
    problem = found[0]
    text = redact(one_line(str(error)))[:300]
    return ValidateError(
        f"{_WHAT.get(problem, problem)} while writing the quarantine table {redact(uri)} "
        f"({text}); {_FIXES[problem]}, {_RERUN}",
        table=table,
    )


def _empty_like(dt: Any) -> Any:
    import pyarrow as pa

    schema = pa.schema(dt.schema().to_arrow())
    schema = pa.schema([f for f in schema if f.name != "_quarantined_at"])
    return schema.empty_table()
