"""Validate one table: cache, fused scan, separate queries, samples, resume, incremental.

Protocol for one table (or one file, for the pre-load gate):
1. Look up every rule's stored result for (rule hash, data fingerprint) in one query;
   those are done (`cached`; a freshness rule is re-judged against today's reference
   time from its stored metrics, any rule under its threshold and severity now). A
   rule that fails now but passed then, and so was stored without samples, keeps its
   counts and runs only its samples query (step 4's LIMIT query). With every rule
   cached, no engine is even started.
2. Register the data, read its columns, compile the other rules (a bad rule is `error`
   now, with one line, and saved like any result).
3. Incremental: for a Delta table that only grew by appends since the version of the
   rules' stored metrics, register just the added files as `new`: mergeable metrics are
   computed there and merged, duplicates are looked up for the new keys only,
   referential checks run on the new rows (when the reference did not change), a
   row-local custom query counts new rows; those queries run on a second cursor beside
   the fused one (`_Ahead`). A quantile is read off the sorted window stored around it
   merged with the new rows (`compile.quantile_window_new`), else off the band of its
   column between the old and the new rows' quantiles (`compile.quantile_band_query`),
   which stores the next window.
4. One fused aggregate query for all metrics (split at `max_fused_aggregates`); on a
   permanent error, each rule's aggregates are probed on zero rows to find the bad ones,
   which become `error`, and the rest run again. Then one query per uniqueness key set,
   per referential rule, per custom query; one LIMIT query of samples per failing rule.
5. Each result is saved the moment it is known (resume: a killed validation reruns only
   the rules not saved). Transient errors that outlived the retries are not saved.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any

from onceflow.clock import now_iso
from onceflow.errors import OnceflowError, ValidateError, plain_message
from onceflow.faults import crashpoint
from onceflow.redact import redact
from onceflow.rules import (
    AnyRule,
    Referential,
    Schema,
    SqlQuery,
    Statistic,
    Uniqueness,
)
from onceflow.state import HistoryRecord, RuleResultRecord, StatementRecord, Store
from onceflow.type_names import same_type
from onceflow.validate.engines.base import Engine, QueryError, Statement
from onceflow.validate.figures import binary_text
from onceflow.validate.heap import old_objects_frozen
from onceflow.validate.inputs import Input
from onceflow.validate.metrics import decode, decode_all, encode, encode_all, judge, merge, plain
from onceflow.validate.results import (
    ERROR,
    FAIL,
    PASS,
    WARN,
    RuleResult,
    TableReport,
    count_outcomes,
)

if TYPE_CHECKING:
    from onceflow.validate import compile as sql
    from onceflow.validate.compile import Plan
else:

    class _Compiler:
        """onceflow.validate.compile on first use: sqlglot takes 0.26 s to import, which a
        validation answered from the cache never needs (its goal is < 1 s for a command)."""

        def __getattr__(self, name: str) -> Any:
            from onceflow.validate import compile as module

            return getattr(module, name)

    sql = _Compiler()
    Plan = Any

log = logging.getLogger(__name__)

REL, NEW, EMPTY = "rel", "new", "rel__empty"
_INTEGER = re.compile(r"U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?\b", re.I)
_DECIMAL = re.compile(r"(?:DECIMAL|NUMERIC)\(\s*\d+\s*,\s*(\d+)\s*\)", re.I)
_NUMERIC = re.compile(
    r"(DECIMAL|NUMERIC|DOUBLE|FLOAT|REAL|U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?)\b", re.I
)
AUDIT = {"_source_file", "_load_timestamp", "_batch_id"}
# values kept on each side of a quantile for the next incremental run (0: none; a
# window that misses falls back to a band of the table, then the whole column)
WINDOW = 1024


@dataclass(frozen=True)
class Settings:
    """How rules run (from `validation:` in the config)."""

    pipeline: str
    engine: str = "duckdb"
    max_retries: int = 3
    retry_delay: float = 1.0
    samples: int = 20
    max_fused_aggregates: int = 400


@dataclass
class Job:
    """One table (or file) to validate with its rules."""

    table: str
    data: Input
    rules: Sequence[AnyRule]
    stage: str = "post_load"
    scope: str = "table"
    run_id: str | None = None
    reference_time: datetime | None = None
    references: Callable[[str], Input] | None = None
    # the quarantine pass, run on the engine before it closes: (engine, every judged
    # rule's plan, the results, the rules' hashes, the rules left unjudged by a
    # transient error) -> rows written
    after_rules: (
        Callable[
            [Engine, dict[str, Plan], dict[str, RuleResult], dict[str, str], set[str]],
            int | None,
        ]
        | None
    ) = None
    # the quarantine table's state as text (`quarantine.quarantine_state`): a pass the
    # store recorded on this data and rules, over this state, need not run again
    quarantine_state: Callable[[], str] | None = None
    skip_reason: str | None = None  # every rule skipped (e.g. the table's load failed)
    # the data could not be found or opened: every rule is `error` with this message, and
    # the validation is still recorded, so `status` shows it rather than the one before
    unreadable: str | None = None


@dataclass
class _State:
    """What the run knows so far about each rule."""

    results: dict[str, RuleResult] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    base: dict[str, dict[str, Any]] = field(default_factory=dict)  # incremental: old metrics
    base_samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def make_engine(name: str, *, max_retries: int, retry_delay: float) -> Engine:
    """A new engine (imported on first use: DuckDB's helpers bring pyarrow.compute).

    Its database starts on a thread while the SQL dialect's module loads: ~20 ms each
    in a new process, overlapped.
    """
    from onceflow.validate.engines import engine_class

    engine = engine_class(name)
    engine.prepare()
    sql.load_dialect(engine.dialect)
    return engine(max_retries=max_retries, retry_delay=retry_delay)


# Part of every rule's cache key: raised when a rule's SQL or judging changes what it
# answers (2: a filtered stddev, a DECIMAL quantile in DOUBLE; 3: NaN and infinite values,
# values of another kind than the column's, UTC offsets on naive timestamps, column names
# in their exact case; 4: NaN rows DuckDB's Parquet scan skipped, a decimal statistic
# judged as a double, a DATE's allowed value with a time of day; a nanosecond zoned
# column a schema rule failed; 5: a binary sample value marked `<binary, N bytes: ...>`,
# where a stored result holds it as bare hex), so that no result stored by an older
# onceflow is served again.
RESULTS_VERSION = 5


# A rule's fields its stored result is judged again under (see TableRun._rejudged), left
# out of its cache key: a stricter `mostly` ran the scan again for the counts it held.
REJUDGED = ("mostly", "max_failing", "severity")


def rule_hash(rule: AnyRule, settings: Settings) -> str:
    """The key of a rule's stored results: what it measures (not its threshold or
    severity, judged again from the stored counts) and what changes that."""
    return rule.definition_hash(
        settings.engine, settings.samples, RESULTS_VERSION, without=REJUDGED
    )


def reference_fingerprint(references: Callable[[str], Input] | None, name: str) -> str | None:
    """The fingerprint of a reference table as it is now; None when it has none (data in
    memory) or cannot be found (the rule then runs, and says why)."""
    if references is None:
        return None
    try:
        return references(name).fingerprint
    except OnceflowError:
        return None


def still_valid(
    rule: AnyRule, record: RuleResultRecord, reference: Callable[[str], str | None]
) -> bool:
    """Whether a result stored on this data answers for the rule now: a referential one
    only when its reference table is as it was then (`reference` gives its fingerprint)."""
    if not isinstance(rule, Referential):
        return True
    metrics = record.metrics_data()
    if metrics is None:  # an error that will recur on the same data and rule
        return True
    now = reference(rule.reference.table)
    return now is not None and metrics.get("ref") == now


class TableRun:
    """The validation of one table: build it, then `run()`."""

    def __init__(self, job: Job, settings: Settings, store: Store | None, *, resume: bool):
        self.job = job
        self.settings = settings
        self.store = store
        self.resume = resume
        self.fingerprint = job.data.fingerprint
        self.hashes = {r.name: rule_hash(r, settings) for r in job.rules}
        self.state = _State()
        self.engine: Engine | None = None
        self.plans: dict[str, Plan] = {}
        self.schema: dict[str, str] = {}
        self.clashes: frozenset[str] = frozenset()  # columns differing only in case
        self.sql: dict[str, list[str]] = {}  # each rule's statements, for its result
        # each statement as run -> as reported: redacted once, however many rules it
        # served (redacting a fused query again per rule was 14.5 s of 57 s at 2,002 rules)
        self.reported: dict[str, str] = {}
        self.digests: dict[str, str] = {}  # a reported statement -> its digest in the store
        self.shared: dict[str, str] = {}  # an older result's statement -> the one copy kept
        self.stored: set[str] = set()  # digests the store holds on this data
        self.spent: dict[str, float] = {}  # each rule's share of the statements timed so far
        self.timing: list[Statement] = []  # the engine's statements `spent` reads
        self.timed = 0  # how many of them are in `spent`
        self.refs: dict[str, tuple[str, str | None]] = {}  # reference -> (relation, fingerprint)
        self.ref_columns: dict[str, dict[str, str]] = {}  # reference -> its columns
        self.ref_clashes: dict[str, frozenset[str]] = {}  # reference -> its case clashes
        self.ref_fingerprints: dict[str, str | None] = {}  # reference -> its fingerprint now
        self.texts: dict[int, tuple[Any, str]] = {}  # id(aggregate) -> it and its SQL
        self.validation_id: str | None = None  # begun in the store, not yet finished
        self.unsaved: set[str] = set()  # results kept out of the store (transient errors)
        # rules judged from stored metrics that fail now, stored without samples (they
        # passed then): rule -> (those metrics, the statements that computed them)
        self.unsampled: dict[str, tuple[dict[str, Any], list[str]]] = {}
        self.started = time.perf_counter()

    # -- the run --------------------------------------------------------------------------
    def run(self) -> TableReport:
        """Validate the table: its rules' results, from the store or computed; a validation
        that raises is recorded as ended (`interrupted` or `error`), not left running."""
        with old_objects_frozen():
            try:
                return self._run()
            except BaseException as error:  # the validation row must not stay `running`
                self._abandon("interrupted" if isinstance(error, KeyboardInterrupt) else "error")
                raise

    def _abandon(self, status: str) -> None:
        """End a begun validation that raised (a SIGKILL leaves it `running`: nothing can)."""
        if self.store is None or self.validation_id is None:
            return
        results = list(self.state.results.values())
        try:
            self.store.rules.finish(self.validation_id, status, count_outcomes(results), 0)
        except Exception as error:  # the original error is the one to report
            log.warning("%s: could not mark the validation %s: %s", self.job.table, status, error)

    def _run(self) -> TableReport:
        job = self.job
        report = TableReport(
            job.table,
            redact(job.data.label),
            job.stage,
            job.scope,
            self.fingerprint,
            validation_id=uuid.uuid4().hex,
        )
        if self.store is not None:
            self.validation_id = report.validation_id
            self.store.rules.begin(
                report.validation_id or "",
                self.settings.pipeline,
                job.table,
                stage=job.stage,
                fingerprint=self.fingerprint,
                run_id=job.run_id,
            )
        if job.skip_reason is not None:
            for rule in job.rules:
                self._done(rule, {"outcome": "skipped", "message": job.skip_reason}, save=False)
        elif job.unreadable is not None:
            report.message = job.unreadable
            for rule in job.rules:
                self._done(rule, {"outcome": ERROR, "message": job.unreadable}, save=False)
        else:
            todo = self._from_cache()
            if todo:
                self.engine = make_engine(
                    self.settings.engine,
                    max_retries=self.settings.max_retries,
                    retry_delay=self.settings.retry_delay,
                )
                try:
                    self._execute(todo)
                    if job.after_rules is not None:
                        report.quarantined = self._quarantine(report, self._quarantine_pass)
                finally:
                    self.engine.close()
            elif job.after_rules is not None and self.state.results:
                if self._quarantine_done():
                    report.quarantined = 0
                else:
                    report.quarantined = self._quarantine(report, self._quarantine_cached)
        report.results = [self.state.results[r.name] for r in job.rules]
        for rule, result in zip(job.rules, report.results, strict=True):
            result.description = rule.description
        if self.engine is not None:
            report.statements = len(self.engine.statements)
            report.data_queries = self.engine.data_queries
            report.retries = self.engine.retries
        report.duration_seconds = round(time.perf_counter() - self.started, 4)
        if self.store is not None:
            self.store.rules.finish(
                report.validation_id or "",
                report.status,
                report.counts(),
                report.data_queries,
                [
                    HistoryRecord(
                        report.validation_id or "",
                        r.rule,
                        self.settings.pipeline,
                        job.table,
                        r.outcome,
                        r.pass_rate,
                        r.failing_rows,
                        r.cached,
                        "",
                    )
                    for r in report.results
                ],
            )
            self.validation_id = None
            self.store.rules.prune(self.settings.pipeline, job.table)
        return report

    def _quarantine(self, report: TableReport, write: Callable[[], int | None]) -> int | None:
        """Run the quarantine pass; a failure is the table's `quarantine_error` (the rule
        results stand, the quarantine table keeps its last commit, the next run tries
        again), not an abort of the validation. A pass that completed is recorded in the
        store after it (a kill in between leaves no record: the next run's pass finds its
        commit as the last one and writes nothing)."""
        try:
            written = write()
        except Exception as error:
            report.quarantine_error = f"quarantine not written: {_first_line(error)}"
            log.error("table %s: %s", self.job.table, report.quarantine_error)
            return None
        self._note_quarantined()
        return written

    def _quarantine_key(self) -> str:
        """The rules a quarantine pass ran with, as a digest: each rule's whole definition
        (its severity decides whether its rows are quarantined, and the results' cache
        key leaves it out) and whether it had a verdict (an `error` rule's rows are not)."""
        body = [
            [
                rule.name,
                rule.definition_hash(self.settings.engine, self.settings.samples, RESULTS_VERSION),
                rule.name in self.state.results and self.state.results[rule.name].outcome != ERROR,
            ]
            for rule in self.job.rules
        ]
        text = json.dumps(sorted(body), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    def _quarantine_done(self) -> bool:
        """Whether the store recorded a completed quarantine pass on this data, with these
        rules, that left the quarantine table as it is now: that pass would write nothing
        again, and checking so costs a data query (which batches the table holds).
        Without such a record (quarantine turned on since the results were stored, a pass
        that failed or was killed before the record) the pass runs."""
        job = self.job
        if self.store is None or self.fingerprint is None or job.quarantine_state is None:
            return False
        done = self.store.rules.quarantined(self.settings.pipeline, job.table, self.fingerprint)
        if done is None or done[0] != self._quarantine_key():
            return False
        try:
            return done[1] == job.quarantine_state()
        except OnceflowError:  # the pass itself says what is wrong with the table
            return False

    def _note_quarantined(self) -> None:
        """Record the completed pass (see `_quarantine_done`)."""
        job = self.job
        if self.store is None or self.fingerprint is None or job.quarantine_state is None:
            return
        try:
            state = job.quarantine_state()
        except OnceflowError:  # not recorded: the next run checks again
            return
        self.store.rules.note_quarantined(
            self.settings.pipeline, job.table, self.fingerprint, self._quarantine_key(), state
        )

    def _quarantine_cached(self) -> int | None:
        """Everything came from the cache: the quarantine pass still checks its table is
        up to date (it usually is, and then runs nothing)."""
        engine = make_engine(
            self.settings.engine,
            max_retries=self.settings.max_retries,
            retry_delay=self.settings.retry_delay,
        )
        self.engine = engine
        try:
            self.job.data.register(engine, REL)
            self.schema = engine.columns(REL)
            self.clashes = engine.case_clashes(REL)
            return self._quarantine_pass()
        finally:
            engine.close()

    def _quarantine_pass(self) -> int | None:
        """The quarantine pass over every judged rule: those of this run and those served
        from the cache alike (a resumed run has only some plans of its own)."""
        engine = self.engine
        assert engine is not None and self.job.after_rules is not None
        for rule in self.job.rules:
            result = self.state.results.get(rule.name)
            if rule.name in self.plans or result is None or result.outcome == ERROR:
                continue
            try:
                self.plans[rule.name] = sql.compile_rule(
                    rule, self.schema, engine.dialect, self.clashes
                )
            except sql.CompileError:  # judged on this data, so it compiled before
                continue
        unjudged = {n for n in self.unsaved if self.state.results[n].outcome == ERROR}
        return self.job.after_rules(engine, self.plans, self.state.results, self.hashes, unjudged)

    def _from_cache(self) -> list[AnyRule]:
        """Stored results of this data become this run's (cached); the rest to do."""
        stored: dict[tuple[str, str], RuleResultRecord] = {}
        texts: dict[str, str] = {}  # the statements stored results on this data name
        if self.store is not None and self.fingerprint is not None and self.resume:
            for rec in self.store.rules.find(
                self.settings.pipeline, self.job.table, self.fingerprint
            ):
                stored[(rec.rule_name, rec.rule_hash)] = rec
            if stored:
                texts = self.store.rules.statements(
                    self.settings.pipeline, self.job.table, self.fingerprint
                )
                self.stored.update(texts)
        todo: list[AnyRule] = []
        for rule in self.job.rules:
            found = None if rule.volatile else stored.get((rule.name, self.hashes[rule.name]))
            if found is None or not still_valid(rule, found, self._reference_fingerprint):
                todo.append(rule)
                continue
            data = self._with_sql(found.result_data(), texts)
            if data is None:  # its SQL is gone (a reset in between): it runs again
                todo.append(rule)
                continue
            result = RuleResult.from_dict(data)
            if not self._rejudged(rule, result, found.metrics_data()):
                self.unsampled[rule.name] = (decode_all(found.metrics_data() or {}), result.sql)
                todo.append(rule)
                continue
            result.cached = True
            result.duration_seconds = 0.0
            self.state.results[rule.name] = result
        return todo

    def _with_sql(self, data: dict[str, Any], texts: dict[str, str]) -> dict[str, Any] | None:
        """A stored result with its statements' text in `sql`, from the digests it names
        (`sql_digests`); None when one is not stored. A result stored before the
        statements were kept apart holds its text in `sql` and is taken as it is (each
        text kept once in memory, not once a rule)."""
        digests = data.pop("sql_digests", None)
        if digests is None:
            data["sql"] = [self.shared.setdefault(s, s) for s in data.get("sql") or []]
            return data
        if any(d not in texts for d in digests):
            return None
        data["sql"] = [texts[d] for d in digests]
        for digest, text in zip(digests, data["sql"], strict=True):
            self.digests.setdefault(text, digest)
        return data

    def _rejudged(self, rule: AnyRule, result: RuleResult, metrics: dict[str, Any] | None) -> bool:
        """`result`, stored for this data, judged again from its stored metrics under the
        rule's threshold and severity now (the cache key leaves them out), and a freshness
        rule against today's reference time; False when it fails now, but passed then
        and so was stored without samples: those are still to take (`_sample_rejudged`)."""
        result.severity = rule.severity  # an error reports the severity it has now, too
        if result.outcome == ERROR or metrics is None:  # the same error would recur
            return True
        if isinstance(rule, Schema):  # judged from the columns: only its severity can change
            if result.outcome in (FAIL, WARN):
                result.outcome = WARN if rule.severity == "warn" else FAIL
            return True
        fields = judge(rule, decode_all(metrics), reference_time=self.job.reference_time)
        for key, value in fields.items():
            setattr(result, key, plain(value) if key != "details" else value)
        if result.outcome not in (FAIL, WARN):
            result.samples = []  # a passing rule shows none, as when it ran
        elif result.failing_rows and self.settings.samples and not result.samples:
            return False
        return True

    def _reference_fingerprint(self, name: str) -> str | None:
        """The fingerprint of a referential rule's other table as it is now (once per run)."""
        if name not in self.ref_fingerprints:
            self.ref_fingerprints[name] = reference_fingerprint(self.job.references, name)
        return self.ref_fingerprints[name]

    def _execute(self, todo: list[AnyRule]) -> None:
        engine = self.engine
        assert engine is not None
        try:
            self.job.data.register(engine, REL)
            schema = engine.columns(REL)
            engine.create_view(EMPTY, f"SELECT * FROM {REL} LIMIT 0")
        except Exception as error:  # the data cannot be read at all
            message = f"cannot read {self.job.data.label}: {_first_line(error)}"
            for rule in todo:
                self._done(rule, {"outcome": ERROR, "message": message}, save=False)
            return
        self.schema = schema
        self.clashes = engine.case_clashes(REL)
        for rule in todo:
            try:
                plan = sql.compile_rule(rule, schema, engine.dialect, self.clashes)
                sql.check_syntax(rule, engine.syntax_error)  # what sqlglot took, the engine may not
                self.plans[rule.name] = plan
            except sql.CompileError as error:
                self._done(rule, {"outcome": ERROR, "message": str(error)})
        for name, (metrics, statements) in self.unsampled.items():
            if name in self.plans:
                self._sample_rejudged(self.plans[name], metrics, statements)
        incremental = self._incremental()
        ahead = _Ahead(engine)
        try:
            ahead.start(self._ahead(incremental), self._counts)
            self._fused(incremental)
            for plan in list(self.plans.values()):
                name = plan.rule.name
                if name in self.state.results:
                    continue
                try:
                    if plan.separate in ("unique", "referential", "query"):
                        self._separate(plan, name in incremental, ahead)
                    elif plan.separate == "schema":
                        self._schema(plan.rule)
                except QueryError as error:
                    self._done(plan.rule, _error(error), save=not error.transient)
        finally:
            ahead.close()

    def _ahead(self, incremental: set[str]) -> list[Plan]:
        """The separate rules that only read the new rows: their queries can run beside
        the fused one (a referential rule's reference is registered first)."""
        plans = []
        for name in sorted(incremental):
            plan = self.plans[name]
            if plan.separate in ("unique", "query"):
                plans.append(plan)
            elif plan.separate == "referential":
                assert isinstance(plan.rule, Referential)
                try:
                    self._reference(plan.rule.reference.table)
                    self._reference_column(plan.rule)
                except OnceflowError:
                    continue  # reported when the rule runs
                if self._same_reference(plan):
                    plans.append(plan)
        return plans

    # -- incremental ----------------------------------------------------------------------
    def _incremental(self) -> set[str]:
        """Rules computed from stored metrics plus the appended files (`new`)."""
        data, store = self.job.data, self.store
        if store is None or not self.resume or data.kind != "delta" or data.batch_ids is not None:
            return set()
        assert data.source_id is not None and data.version is not None
        states = store.rules.latest_states(
            self.settings.pipeline, self.job.table, data.source_id, data.version
        )
        found = {}
        for name, plan in self.plans.items():
            if name in self.state.results:  # e.g. a rejudged rule that only took samples
                continue
            rec = states.get((name, self.hashes[name]))
            if rec is None or rec.source_version is None or plan.separate == "schema":
                continue
            if plan.rule.volatile:  # its stored part was judged at another moment
                continue
            if plan.separate == "query" and not plan.row_local:
                continue
            found[name] = rec
        if not found:
            return set()
        base = max(int(r.source_version or 0) for r in found.values())
        added = data.added_since(base)
        if added is None:
            return set()
        assert self.engine is not None
        if added:
            data.register_files(self.engine, NEW, added)
        else:  # only marker commits since: no new rows
            self.engine.create_view(NEW, f"SELECT * FROM {REL} LIMIT 0")
        chosen = set()
        for name, rec in found.items():
            if rec.source_version != base:
                continue
            self.state.base[name] = decode_all(rec.metrics_data() or {})
            self.state.base_samples[name] = list(rec.result_data().get("samples") or [])
            chosen.add(name)
        log.info(
            "%s: incremental from version %s (%d files added) for %d rules",
            self.job.table,
            base,
            len(added),
            len(chosen),
        )
        return chosen

    # -- the fused aggregate query ---------------------------------------------------------
    def _fused(self, incremental: set[str]) -> None:
        """All aggregates of every rule, on the table (and on `new` for incremental
        rules), in as few queries as the size cap allows."""
        on_rel: list[tuple[str, str, Any]] = []  # (rule, metric, expression)
        on_new: list[tuple[str, str, Any]] = []
        banded: set[str] = set()  # incremental quantiles: a stored window, else a band
        for name, plan in self.plans.items():
            if name in self.state.results:
                continue
            band = name in incremental and self._bandable(plan)
            for metric, expression in plan.aggregates.items():
                if name in incremental and metric != "quantile":
                    on_new.append((name, metric, expression))
                elif not band:
                    on_rel.append((name, metric, expression))
            if band:
                banded.add(name)
                on_new.extend((name, m, e) for m, e in plan.new_aggregates.items())
                on_new.extend((name, m, e) for m, e in self._window_aggregates(plan).items())
        got_rel = self._aggregate(REL, on_rel)
        got_new = self._aggregate(NEW, on_new) if on_new else {}
        for name, plan in list(self.plans.items()):
            if name in self.state.results:
                continue
            if name in incremental:
                new = got_new.get(name, {})
                near = new.pop("near", None)
                window_new = (new.pop("win_below", None), new.pop("win_inside", None))
                base = self.state.base[name]
                metrics = merge(base, new)
                metrics.pop("window", None)  # its ranks were the old rows'
                metrics.pop("window_below", None)
                metrics.update(got_rel.get(name, {}))  # what was recomputed in full
                if name in banded:
                    n_new = int(new.get("n") or 0)
                    found = self._window_quantile(plan, base, metrics, n_new, window_new)
                    if found is not None:
                        metrics["quantile"] = found[0]
                    else:
                        quantile = self._band_quantile(plan, base, new, near, metrics)
                        if name in self.state.results:  # the full quantile could not run
                            continue
                        metrics["quantile"] = quantile
            else:
                metrics = got_rel.get(name, {})
            self.state.metrics[name] = metrics
            if plan.separate is None:
                self._judge_and_save(plan, metrics, incremental=name in incremental)

    # -- quantiles after an append ----------------------------------------------------------
    def _bandable(self, plan: Plan) -> bool:
        """A quantile an incremental run can take from a band of the table (DuckDB, a
        numeric column: its DOUBLE cast is monotone)."""
        if "quantile" not in plan.aggregates or self.engine is None:
            return False
        if self.engine.dialect != "duckdb" or not self.schema:
            return False
        return _NUMERIC.match(self._column_type(plan)) is not None

    def _column_type(self, plan: Plan) -> str:
        return self.schema.get(getattr(plan.rule, "column", ""), "")

    def _window_aggregates(self, plan: Plan) -> dict[str, Any]:
        """The new rows' part of the rule's stored window, for the fused query on them."""
        runs = self.state.base.get(plan.rule.name, {}).get("window")
        if not runs:
            return {}
        assert isinstance(plan.rule, Statistic)
        low, high = decode(runs[0][0]), decode(runs[-1][0])
        return sql.quantile_window_new(plan.rule, plan.scope, low, high)

    def _window_quantile(
        self,
        plan: Plan,
        base: dict[str, Any],
        metrics: dict[str, Any],
        n_new: int,
        window_new: tuple[Any, Any],
    ) -> tuple[Any] | None:
        """The quantile after an append from the stored window and the new rows alone,
        and the window moved to it (in `metrics`); None when the window does not hold
        the ranks the quantile needs (or there is none).

        The window is a run of the sorted column: `window_below` values precede it, and
        the new rows give how many of theirs fall below its first value and which fall
        inside it. Merged, that is again a run of the sorted column, so the values at the
        quantile's floor and ceiling ranks are read off it and interpolated by the
        engine's own quantile_cont, as over the whole column."""
        name, rule = plan.rule.name, plan.rule
        assert isinstance(rule, Statistic) and rule.quantile is not None
        runs = base.get("window")
        if not runs:
            return None
        if n_new == 0:  # no new value in scope: neither the quantile nor the window moved
            metrics["window"], metrics["window_below"] = runs, base.get("window_below")
            return (base.get("quantile"),)
        below_new, inside = window_new
        if below_new is None or inside is None:
            return None
        counts: dict[Any, int] = {}
        for value, count in runs:
            key = decode(value)
            counts[key] = counts.get(key, 0) + int(count)
        for value in inside:
            counts[value] = counts.get(value, 0) + 1
        merged = sorted(counts.items())
        start = int(base.get("window_below") or 0) + int(below_new)
        position = float(int(metrics.get("n") or 0) - 1) * rule.quantile  # as the engine does
        ranks = (math.floor(position) - start, math.ceil(position) - start)
        picked = _at(merged, ranks)
        if picked is None:
            log.info("%s: %s: the window missed the quantile; a band", self.job.table, name)
            return None
        assert self.engine is not None
        query = sql.render(
            sql.interpolate_query(
                *picked, self._column_type(plan), position - math.floor(position)
            ),
            self.engine.dialect,
        )
        try:
            row = self.engine.query(query, kind="aggregate", rules=(name,))[0]
        except QueryError as error:
            log.info("%s: %s: no interpolation (%s); a band", self.job.table, name, error)
            return None
        self._remember_sql(name, query)
        kept, skipped = _around(merged, ranks, WINDOW)
        _set_window(metrics, kept, start + skipped)
        return (row["quantile"],)

    def _band_quantile(
        self,
        plan: Plan,
        base: dict[str, Any],
        new: dict[str, Any],
        near: Any,
        metrics: dict[str, Any],
    ) -> Any:
        """The exact quantile after an append, from the band between the old quantile and
        the new rows' (see `compile.quantile_band_query`), with the window around it kept
        in `metrics` for the next run; the whole column when the band does not hold the
        ranks it needs."""
        name, rule = plan.rule.name, plan.rule
        assert self.engine is not None and isinstance(rule, Statistic)
        assert rule.quantile is not None
        n_new, n_old = int(new.get("n") or 0), int(base.get("n") or 0)
        old = base.get("quantile")
        if n_new == 0:
            return old  # no new value in scope: the quantile did not move
        bounds = [float(v) for v in (near or []) if v is not None]
        if old is not None and n_old > 0 and len(bounds) == 2:
            # the quantile of old + new lies between the old one and the new rows' one;
            # the new rows' spread around it is a margin for the interpolation neighbours,
            # widened on a small table (the band is all that is read of it) to hold about
            # WINDOW old values a side: the window the next run starts from
            spread = bounds[1] - bounds[0]  # ~2 * NEAR * n_old old values lie in it
            width = spread * max(1.0, WINDOW / (2 * sql.NEAR * n_old))
            low, high = min(float(old), bounds[0]) - width, max(float(old), bounds[1]) + width
            position = float(n_old + n_new - 1) * rule.quantile  # as the engine computes it
            ranks = (math.floor(position), math.ceil(position))
            if all(map(math.isfinite, (low, high, position))):
                band = _bounds_in_type(self._column_type(plan), low, high)
                tree = sql.quantile_band_query(
                    REL,
                    rule,
                    plan.scope,
                    band,
                    ranks,
                    position - ranks[0],
                    WINDOW,
                    self._column_type(plan),
                )
                query = sql.render(tree, self.engine.dialect)
                try:
                    row = self.engine.query(query, kind="aggregate", rules=(name,))[0]
                except QueryError as error:
                    if error.transient:
                        self._done(rule, _error(error), save=False)
                        return None
                    row = {}  # e.g. bounds the column's type cannot hold: the whole column
                else:
                    self._remember_sql(name, query)
                below, inside = int(row.get("below") or 0), int(row.get("inside") or 0)
                if row and below <= ranks[0] and ranks[1] < below + inside:
                    self._keep_window(
                        metrics, row["window"], below + max(0, ranks[0] - below - WINDOW)
                    )
                    return row["quantile"]
                log.info("%s: %s: the band missed the quantile; whole column", self.job.table, name)
        got = self._aggregate(REL, [(name, "quantile", plan.aggregates["quantile"])])
        return got.get(name, {}).get("quantile")

    @staticmethod
    def _keep_window(metrics: dict[str, Any], values: list[Any] | None, below: int) -> None:
        """Keep a run of the sorted column (`below` values precede it) with the rule's
        metrics, as (value, count) pairs; NaN, which sorts above every number, ends it."""
        if WINDOW <= 0 or not values:
            return
        finite = [v for v in values if v == v]
        if finite:
            _set_window(metrics, _runs(finite), below)

    def _aggregate(self, rel: str, items: list[tuple[str, str, Any]]) -> dict[str, dict[str, Any]]:
        """Run the aggregates; a rule whose aggregates fail becomes error."""
        engine = self.engine
        assert engine is not None
        out: dict[str, dict[str, Any]] = {}
        if not items:
            return out
        cap = self.settings.max_fused_aggregates
        by_rule: dict[str, list[tuple[str, str, Any]]] = {}
        for item in items:
            by_rule.setdefault(item[0], []).append(item)
        # a rule's aggregates stay in one query; a new query starts when the next rule's
        # new aggregates would pass the cap (shared ones, like COUNT(*), repeat per query)
        chunks: list[list[tuple[str, str, Any]]] = [[]]
        texts: set[str] = set()
        for rule_items in by_rule.values():
            new = {self._text(e) for _n, _m, e in rule_items} - texts
            if chunks[-1] and len(texts) + len(new) > cap:
                chunks.append([])
                texts = set()
                new = {self._text(e) for _n, _m, e in rule_items}
            texts |= new
            chunks[-1].extend(rule_items)
        for chunk in chunks:
            self._run_chunk(rel, chunk, out)
        return out

    def _run_chunk(
        self, rel: str, chunk: list[tuple[str, str, Any]], out: dict[str, dict[str, Any]]
    ) -> None:
        engine = self.engine
        assert engine is not None
        dialect = engine.dialect
        aliases: dict[str, str] = {}
        columns: list[tuple[str, Any]] = []
        for _name, _metric, expression in chunk:
            text = self._text(expression)
            if text not in aliases:
                aliases[text] = f"m{len(aliases)}"
                columns.append((aliases[text], expression))
        query = sql.render(sql.fused_query(rel, columns), dialect)
        names = tuple(sorted({n for n, _m, _e in chunk}))
        try:
            row = engine.query(query, kind="aggregate", rules=names)[0]
        except QueryError as error:
            if error.transient or len(names) == 1:
                for name in names:
                    self._done(self.plans[name].rule, _error(error), save=not error.transient)
                return
            self._isolate(rel, chunk, out)
            return
        for name, metric, expression in chunk:
            out.setdefault(name, {})[metric] = row[aliases[self._text(expression)]]
        for name in names:
            self._remember_sql(name, query)

    def _text(self, expression: Any) -> str:
        """An aggregate's SQL: rendered once per run (the fused query's aggregates are
        compared as text to share them, ~120 renders otherwise)."""
        got = self.texts.get(id(expression))
        if got is None:
            assert self.engine is not None
            # the expression is kept with its text: its id cannot be reused by another
            got = self.texts[id(expression)] = (
                expression,
                sql.render(expression, self.engine.dialect),
            )
        return got[1]

    def _isolate(
        self,
        rel: str,
        chunk: list[tuple[str, str, Any]],
        out: dict[str, dict[str, Any]],
    ) -> None:
        """A fused query failed: probe each rule on zero rows (bind errors, bad regexes),
        mark the bad ones error, run the rest again: fused while that removed a culprit,
        else each rule alone (the error comes from the data)."""
        engine = self.engine
        assert engine is not None
        by_rule: dict[str, list[tuple[str, str, Any]]] = {}
        for item in chunk:
            by_rule.setdefault(item[0], []).append(item)
        survivors: list[str] = []
        for name, items in by_rule.items():
            probe = sql.fused_query(EMPTY, [(f"p{i}", e) for i, (_n, _m, e) in enumerate(items)])
            try:
                engine.query(sql.render(probe, engine.dialect), kind="probe", rules=(name,))
            except QueryError as bad:
                self._done(self.plans[name].rule, _error(bad), save=not bad.transient)
                continue
            survivors.append(name)
        if len(survivors) < len(by_rule):
            if survivors:
                self._run_chunk(rel, [i for n in survivors for i in by_rule[n]], out)
            return
        for name in survivors:
            self._run_chunk(rel, by_rule[name], out)

    # -- the separate queries -------------------------------------------------------------
    def _metrics(self, name: str) -> dict[str, Any]:
        return dict(self.state.metrics.get(name, {}))

    def _separate(self, plan: Plan, incremental: bool, ahead: _Ahead) -> None:
        """A uniqueness, referential or custom-query rule: its counts (computed ahead on
        a second engine, or now), merged with its fused metrics, judged and saved."""
        rule = plan.rule
        engine = self.engine
        assert engine is not None
        metrics = self._metrics(rule.name)
        ref: str | None = None
        if isinstance(rule, Referential):
            try:
                ref, ref_fingerprint = self._reference(rule.reference.table)
                self._reference_column(rule)
            except OnceflowError as error:
                self._done(rule, {"outcome": ERROR, "message": str(error)}, save=False)
                return
            metrics["ref"] = ref_fingerprint
            if incremental and not self._same_reference(plan):
                metrics = self._full_metrics(plan) | {"ref": ref_fingerprint}
                incremental = False  # the reference changed: everything again
                self.state.base_samples.pop(rule.name, None)  # they may pass now
                if rule.name in self.state.results:  # its aggregates could not run
                    return
        counts, queries = ahead.take(rule.name) or self._counts(plan, incremental, engine)
        if incremental:
            base = self.state.base[rule.name]
            counts = {k: int(base.get(k) or 0) + v for k, v in counts.items()}
        metrics |= counts
        for query in queries:
            self._remember_sql(rule.name, query)
        fresh = isinstance(rule, Uniqueness)
        self._judge_and_save(plan, metrics, incremental=incremental, fresh_samples=fresh, ref=ref)

    def _reference_column(self, rule: Referential) -> None:
        """A referential rule's column must be in its reference table (named, with the
        columns it has, rather than the engine's binder error about the other table)."""
        ref = rule.reference
        columns = self.ref_columns[ref.table]
        if ref.column.lower() not in {c.lower() for c in columns}:
            raise ValidateError(
                f"reference table {ref.table!r} has no column {ref.column!r} "
                f"(columns: {', '.join(columns)})",
                table=ref.table,
            )
        try:  # in its exact case, as the rule's own column
            where = f"the reference table {ref.table!r}"
            sql.check_columns([ref.column], columns, where, self.ref_clashes[ref.table])
            sql.check_keys(rule, self.schema[rule.column], columns[ref.column])
        except sql.CompileError as error:
            raise ValidateError(str(error), table=ref.table) from None

    def _same_reference(self, plan: Plan) -> bool:
        """An incremental referential rule whose reference is the one its stored counts
        were taken against (registered by `_reference`)."""
        assert isinstance(plan.rule, Referential)
        fingerprint = self.refs[plan.rule.reference.table][1]
        stored = self.state.base.get(plan.rule.name, {}).get("ref")
        return fingerprint is not None and stored == fingerprint

    def _counts(
        self, plan: Plan, incremental: bool, engine: Engine
    ) -> tuple[dict[str, int], list[str]]:
        """A separate rule's counts, on the new rows when `incremental` (to add to the
        stored ones), and the statements to report. Only reads: safe on a forked engine
        in another thread."""
        rule = plan.rule
        rel = NEW if incremental else REL
        if isinstance(rule, Uniqueness):
            if incremental:
                bounds = self._key_bounds(plan, engine)
                tree = sql.unique_delta_query(REL, NEW, rule, plan.scope, bounds)
            else:
                tree = sql.unique_query(REL, rule, plan.scope)
            query = sql.render(tree, engine.dialect)
            row = engine.query(query, kind="unique", rules=(rule.name,))[0]
            counts = {
                "dup_rows": int(row["dup_rows"] or 0),
                "dup_values": int(row["dup_values"] or 0),
            }
            return counts, [query]
        if isinstance(rule, Referential):
            ref_name = self.refs[rule.reference.table][0]
            tree = sql.referential_query(rel, rule, ref_name, plan.scope)
            kind = "referential"
        else:
            tree = sql.custom_count_query(plan, rel)
            kind = "query"
        query = sql.render(tree, engine.dialect)
        failing = int(engine.query(query, kind=kind, rules=(rule.name,))[0]["failing"])
        return {"failing": failing}, [query]

    def _key_bounds(self, plan: Plan, engine: Engine) -> dict[str, tuple[Any, Any]]:
        """Each key column's range among the new rows (one small query on them), for the
        row-group pruning of unique_delta_query; only plain numbers and text, whose
        literals compare exactly."""
        assert isinstance(plan.rule, Uniqueness)
        query = sql.render(sql.key_bounds_query(NEW, plan.rule, plan.scope), engine.dialect)
        row = engine.query(query, kind="unique", rules=(plan.rule.name,))[0]
        bounds = {}
        for i, name in enumerate(plan.rule.columns):
            low, high = row[f"lo_{i}"], row[f"hi_{i}"]
            if type(low) in (int, str) and type(high) is type(low):
                bounds[name] = (low, high)
        return bounds

    def _full_metrics(self, plan: Plan) -> dict[str, Any]:
        """A rule's aggregates on the whole table (an incremental rule that cannot merge)."""
        got: dict[str, dict[str, Any]] = {}
        self._run_chunk(REL, [(plan.rule.name, m, e) for m, e in plan.aggregates.items()], got)
        return got.get(plan.rule.name, {})

    def _schema(self, rule: AnyRule) -> None:
        assert isinstance(rule, Schema)
        missing, wrong, unexpected = [], {}, []
        for name, expected in rule.columns.items():  # in their exact case, as every rule
            found = self.schema.get(name)
            if found is None:
                missing.append(name)
            elif expected is not None and not same_type(expected, found):
                wrong[name] = {"expected": expected, "actual": found}
        if not rule.allow_extra:
            unexpected = [k for k in self.schema if k not in rule.columns and k not in AUDIT]
        problems = len(missing) + len(wrong) + len(unexpected)
        bad = WARN if rule.severity == "warn" else FAIL
        observed = {"missing": missing, "wrong_type": wrong, "unexpected": unexpected}
        fields: dict[str, Any] = {
            "outcome": PASS if not problems else bad,
            "observed": observed,
            "threshold": {"columns": dict(rule.columns), "allow_extra": rule.allow_extra},
            "details": {"columns": dict(self.schema)},
        }
        self._done(rule, fields, metrics={"columns": dict(self.schema)})

    def _reference(self, name: str) -> tuple[str, str | None]:
        """The reference table registered in the engine (once): its name and fingerprint."""
        if name not in self.refs:
            if self.job.references is None:
                raise OnceflowError(f"reference table {name!r}: no way to find it here")
            try:
                data = self.job.references(name)
            except ValidateError as error:
                message = str(error)
                if not message.startswith("reference table"):
                    message = f"reference table {name!r}: {message.removeprefix(name + ': ')}"
                raise ValidateError(message, table=name) from None
            rel = f"ref_{len(self.refs)}"
            engine = self.engine
            assert engine is not None
            try:
                data.register(engine, rel)
                columns = engine.columns(rel)
            except Exception as error:  # a corrupt or missing file of the reference
                raise ValidateError(
                    f"reference table {name!r}: cannot read {data.label}: {_first_line(error)}",
                    table=name,
                ) from None
            self.refs[name] = (rel, data.fingerprint)
            self.ref_columns[name] = columns
            self.ref_clashes[name] = engine.case_clashes(rel)
        return self.refs[name]

    # -- results ----------------------------------------------------------------------------
    def _sample_rejudged(self, plan: Plan, metrics: dict[str, Any], statements: list[str]) -> None:
        """A rule judged from its stored metrics that fails now but was stored without
        samples (it passed then): its counts stand for this data, so only its samples
        query runs (running it in full again cost a scan or its own query), and the
        result is saved with them. A referential rule whose reference changed since the
        cache was read is left to run in full."""
        rule = plan.rule
        ref: str | None = None
        if isinstance(rule, Referential):
            try:
                ref, fingerprint = self._reference(rule.reference.table)
            except OnceflowError as error:
                self._done(rule, {"outcome": ERROR, "message": str(error)}, save=False)
                return
            if fingerprint is None or fingerprint != metrics.get("ref"):
                return
        self.sql[rule.name] = list(statements)  # what computed the counts, then the samples'
        self._judge_and_save(plan, metrics, incremental=False, fresh_samples=True, ref=ref)

    def _remember_sql(self, name: str, query: str) -> None:
        self.sql.setdefault(name, []).append(query)

    def _judge_and_save(
        self,
        plan: Plan,
        metrics: dict[str, Any],
        *,
        incremental: bool,
        fresh_samples: bool = False,
        ref: str | None = None,
    ) -> None:
        rule = plan.rule
        fields = judge(rule, metrics, reference_time=self.job.reference_time)
        failing = fields.get("failing_rows") or 0
        if fields["outcome"] in (FAIL, WARN) and failing and self.settings.samples:
            samples = [] if fresh_samples else list(self.state.base_samples.get(rule.name, []))
            from_new = incremental
            old_failing = int(self.state.base.get(rule.name, {}).get("failing") or 0)
            if incremental and len(samples) < min(old_failing, self.settings.samples):
                # the old rows' failures were not sampled (the rule passed then): take the
                # samples from the whole table, as a full run would
                samples, from_new = [], False
            if len(samples) < self.settings.samples:
                try:
                    taken = self._samples(plan, from_new, ref, self.settings.samples - len(samples))
                except QueryError as error:
                    self._done(rule, _error(error))
                    return
                if taken is None:  # a transient failure: report, but keep nothing stored
                    fields["incremental"] = incremental
                    fields["message"] = "no samples: the samples query failed (transient)"
                    self._done(rule, fields, metrics=metrics, save=False)
                    return
                samples += taken
            fields["samples"] = samples[: self.settings.samples]
        fields["incremental"] = incremental
        self._done(rule, fields, metrics=metrics)

    def _samples(
        self, plan: Plan, incremental: bool, ref: str | None, limit: int
    ) -> list[dict[str, Any]] | None:
        """At most one LIMIT query of failing rows (new rows only, when incremental);
        None when it failed on a transient error (the result must not be stored without
        them: a rerun would serve it from the cache with no samples)."""
        engine = self.engine
        assert engine is not None
        rule = plan.rule
        rel = NEW if incremental else REL
        if isinstance(rule, Uniqueness):
            tree = sql.unique_samples_query(REL, rule, plan.scope, limit)
        elif isinstance(rule, Referential):
            assert ref is not None
            tree = sql.referential_samples_query(rel, rule, ref, plan.scope, limit)
        elif isinstance(rule, SqlQuery):
            tree = sql.custom_samples_query(plan, rel, limit)
        elif plan.failing is not None:
            tree = sql.samples_query(rel, plan.scope, plan.failing, limit)
        else:
            return []
        query = sql.render(tree, engine.dialect)
        try:
            rows = engine.query(query, kind="samples", rules=(rule.name,))
        except QueryError as error:
            if isinstance(rule, SqlQuery) and not error.transient:
                # the user's own query, now evaluated row by row (the count may not have
                # computed its columns): it cannot run, which is the rule's error
                raise
            log.warning("%s: no samples for rule %s (%s)", self.job.table, rule.name, error)
            return None if error.transient else []
        self._remember_sql(rule.name, query)
        samples = [{str(k): _capped(v) for k, v in row.items()} for row in rows]
        if isinstance(rule, Uniqueness):  # each duplicated key with its rows, as `n`
            label, taken = "n", {c.lower() for c in rule.columns}
            while label in taken:
                label += "_rows"
            for row in samples:
                row[label] = row.pop(sql.KEY_ROWS, None)
        return samples

    def _done(
        self,
        rule: AnyRule,
        fields: dict[str, Any],
        *,
        metrics: dict[str, Any] | None = None,
        save: bool = True,
    ) -> None:
        """Record a rule's result and save it at once (the resume point)."""
        result = RuleResult(
            rule=rule.name,
            table=self.job.table,
            type=rule.type_name,
            severity=rule.severity,
            stage=rule.stage,
            outcome=fields.pop("outcome"),
            fingerprint=self.fingerprint,
        )
        for key, value in fields.items():
            setattr(result, key, value if key in ("samples", "details") else plain(value))
        # A message may name a reference's URL with its credentials, and a rule's filter
        # or query may hold a `${SECRET}` of the config (so its SQL and the rows it
        # selected do): what is saved and reported goes through redact.
        if result.message:
            result.message = redact(result.message)
        result.sql = [self._reported(sql) for sql in self.sql.get(rule.name, [])]
        result.samples = scrubbed(result.samples)
        result.details = scrubbed(result.details)
        if isinstance(result.observed, str):
            result.observed = redact(result.observed)
        result.duration_seconds = round(self._spent(rule.name), 6)
        self.state.results[rule.name] = result
        if not save:
            self.unsaved.add(rule.name)
        if not save or self.store is None or self.fingerprint is None:
            return
        data = self.job.data
        # the result names its statements by digest; their text is saved once per table
        # and data, with the first result that names them (the same transaction: a kill
        # leaves no result whose SQL is missing)
        stored = result.as_dict()
        digests = [self._digest(sql) for sql in stored.pop("sql")]
        stored["sql_digests"] = digests
        statements = [
            StatementRecord(self.settings.pipeline, self.job.table, self.fingerprint, d, sql)
            for d, sql in dict(zip(digests, result.sql, strict=True)).items()
            if d not in self.stored
        ]
        self.store.rules.save(
            [
                RuleResultRecord(
                    pipeline=self.settings.pipeline,
                    table_key=self.job.table,
                    rule_name=rule.name,
                    rule_hash=self.hashes[rule.name],
                    fingerprint=self.fingerprint,
                    outcome=result.outcome,
                    result=json.dumps(stored, default=str),
                    metrics=None
                    if metrics is None
                    else json.dumps(encode_all(metrics), default=str),
                    source_id=data.source_id if data.batch_ids is None else None,
                    source_version=data.version if data.batch_ids is None else None,
                    created_at=now_iso(),
                )
            ],
            statements,
        )
        self.stored.update(s.digest for s in statements)
        crashpoint("validate_after_rule", f"{self.job.table}/{rule.name}")

    def _reported(self, sql: str) -> str:
        """A statement as the result reports it: redacted, once per statement (a fused
        query's text is one object shared by its rules, its hash kept by Python)."""
        got = self.reported.get(sql)
        if got is None:
            got = self.reported[sql] = redact(sql)
        return got

    def _digest(self, sql: str) -> str:
        """A reported statement's key in the store (computed once per statement)."""
        got = self.digests.get(sql)
        if got is None:
            got = self.digests[sql] = hashlib.sha256(sql.encode("utf-8")).hexdigest()[:32]
        return got

    def _spent(self, name: str) -> float:
        """A rule's share of the time of the statements it took part in so far: a fused
        query's time is split among its rules, so the rules' times add up to the
        table's. The statements are read once, as they come, not once a rule (looking
        for each rule in each statement's rules was ~1 s at 2,002 rules)."""
        statements = self.engine.statements if self.engine else []
        if statements is not self.timing:  # another engine's (none has run a rule yet)
            self.timing, self.timed = statements, 0
        end = len(statements)  # a forked engine in another thread may append meanwhile
        for statement in statements[self.timed : end]:
            share = statement.seconds / len(statement.rules) if statement.rules else 0.0
            for rule in statement.rules:
                self.spent[rule] = self.spent.get(rule, 0.0) + share
        self.timed = end
        return self.spent.get(name, 0.0)


def _set_window(metrics: dict[str, Any], runs: list[tuple[Any, int]], below: int) -> None:
    """Store a window in a rule's metrics: its (value, count) runs, values encoded as
    for the state store, and how many values precede it."""
    metrics["window"] = [[encode(v), c] for v, c in runs]
    metrics["window_below"] = below


def _runs(values: list[Any]) -> list[tuple[Any, int]]:
    """Sorted values as (value, count) runs."""
    runs: list[tuple[Any, int]] = []
    for value in values:
        if runs and runs[-1][0] == value:
            runs[-1] = (value, runs[-1][1] + 1)
        else:
            runs.append((value, 1))
    return runs


def _at(runs: list[tuple[Any, int]], ranks: tuple[int, int]) -> tuple[Any, Any] | None:
    """The values at two 0-based ranks of the run-length encoded `runs`; None when a
    rank falls outside them."""
    total = sum(count for _v, count in runs)
    if ranks[0] < 0 or ranks[1] >= total:
        return None
    found: list[Any] = []
    seen = 0
    for value, count in runs:
        while len(found) < 2 and ranks[len(found)] < seen + count:
            found.append(value)
        if len(found) == 2:
            return found[0], found[1]
        seen += count
    return None


def _around(
    runs: list[tuple[Any, int]], ranks: tuple[int, int], size: int
) -> tuple[list[tuple[Any, int]], int]:
    """The runs holding ranks from `ranks[0] - size` to `ranks[1] + size`, and how many
    values precede the first of them (whole runs are kept: a value's ties stay together)."""
    kept: list[tuple[Any, int]] = []
    skipped = seen = 0
    for value, count in runs:
        if seen + count <= ranks[0] - size:
            skipped += count
        elif seen <= ranks[1] + size:
            kept.append((value, count))
        seen += count
    return kept, skipped


class _Ahead:
    """Separate queries of incremental rules, run on a second engine (`Engine.fork`) in a
    thread while the fused query runs on the first.

    On an append of ~100k rows each of these queries reads one row group, which DuckDB
    scans on one thread; side by side they use both cores (~30 ms of ~250 ms in the
    benchmark's incremental run). Results are only taken in the calling thread, which
    judges and saves them as before. Without a fork (an engine that has none, or one that
    failed to start) nothing runs ahead and every query runs in turn, as before.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.fork: Engine | None = None
        self.pool: ThreadPoolExecutor | None = None
        self.futures: dict[str, Future[tuple[dict[str, int], list[str]]]] = {}

    def start(
        self,
        plans: list[Plan],
        counts: Callable[[Plan, bool, Engine], tuple[dict[str, int], list[str]]],
    ) -> None:
        if not plans:
            return
        try:
            self.fork = self.engine.fork()
        except Exception as error:  # the queries then run in turn, on the first engine
            log.info("no second engine (%s): separate queries run in turn", error)
            return
        if self.fork is None:
            return
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="onceflow-validate")
        for plan in plans:
            self.futures[plan.rule.name] = self.pool.submit(counts, plan, True, self.fork)

    def take(self, name: str) -> tuple[dict[str, int], list[str]] | None:
        """The counts computed ahead for rule `name` (its QueryError raised here), or None."""
        future = self.futures.pop(name, None)
        return None if future is None else future.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.fork is not None:
            self.engine.retries += self.fork.retries
            self.fork.close()


# A sample value longer than this is cut: 20 samples of rows with a 1 MB text column
# would put 20 MB per rule into the report, the HTML page and the state store. A binary
# value keeps as many bytes as its hex has characters.
SAMPLE_VALUE_CHARS = 1000
SAMPLE_VALUE_BYTES = SAMPLE_VALUE_CHARS // 2
# A list, a map or a struct in a sample keeps this many entries: a map column of 50,000
# entries a row put 14.5 MB of JSON into one rule's report.
SAMPLE_VALUE_ITEMS = 100


def _cut(text: str) -> str:
    if len(text) <= SAMPLE_VALUE_CHARS:
        return text
    left = len(text) - SAMPLE_VALUE_CHARS
    return f"{text[:SAMPLE_VALUE_CHARS]}... ({left:,} more characters)"


def _capped(value: Any) -> Any:
    """A sample value for the report (`metrics.plain`), cut to SAMPLE_VALUE_CHARS
    characters a text (a map's keys too), SAMPLE_VALUE_BYTES bytes a binary value (cut
    before it is written out, so that its marker stays whole: `<binary, 70,000 bytes:
    0a1b... (69,500 more bytes)>`) and SAMPLE_VALUE_ITEMS entries a list or map, saying
    how much was left out."""
    if isinstance(value, bytes | bytearray | memoryview):
        return binary_text(bytes(value), SAMPLE_VALUE_BYTES)
    if isinstance(value, list | tuple):
        kept = [_capped(v) for v in value[:SAMPLE_VALUE_ITEMS]]
        return kept + (["..."] if len(value) > SAMPLE_VALUE_ITEMS else [])
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in itertools.islice(value.items(), SAMPLE_VALUE_ITEMS):
            # two long keys cut to the same text keep the first: the value is a sample
            name = _capped(key) if isinstance(key, bytes) else _cut(str(key))
            out.setdefault(name, _capped(item))
        left = len(value) - SAMPLE_VALUE_ITEMS
        if left > 0:
            out["..."] = f"({left:,} more entries)"
        return out
    text = plain(value)
    return _cut(text) if isinstance(text, str) else text


def scrubbed(value: Any) -> Any:
    """`value` (a sample row, a result's details) with every string in it redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [scrubbed(v) for v in value]
    if isinstance(value, dict):
        return {k: scrubbed(v) for k, v in value.items()}
    return value


def _first_line(error: BaseException) -> str:
    """An engine's or library's error as one redacted line."""
    lines = plain_message(redact(str(error))).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _error(error: QueryError) -> dict[str, Any]:
    what = "engine error (transient, retries exhausted)" if error.transient else "could not run"
    return {"outcome": ERROR, "message": f"{what}: {redact(str(error))}"}


def _bounds_in_type(kind: str, low: float, high: float) -> tuple[Any, Any]:
    """The band's bounds as numbers the column compares with in its own type (integers for
    an integer column, its scale for a decimal one), widened outwards: comparing a
    DECIMAL(12,2) column with 4961.089999999999 casts every value (~20 ms at 10M rows)."""
    if _INTEGER.match(kind):
        return math.floor(low), math.ceil(high)
    scale = _DECIMAL.match(kind)
    if scale:
        step = Decimal(1).scaleb(-int(scale.group(1)))
        with contextlib.suppress(ArithmeticError):  # beyond 28 digits: plain doubles
            return (
                Decimal(low).quantize(step, rounding=ROUND_FLOOR),
                Decimal(high).quantize(step, rounding=ROUND_CEILING),
            )
    return low, high
