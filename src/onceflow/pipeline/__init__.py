"""A pipeline run, and `Pipeline`, the one object with a method per pipeline command.

`run` = extract -> load -> validate for one run date, under the pipeline lock: each
step is called through its public entry point with the run's lease, so the steps never
import each other and no step runs without the lock. The load calls the validate step's
pre-load gate on each file before committing it (write, audit, then publish); the
post-load rules then check each loaded table on the snapshot the load produced. A run
also holds its own run lock
(`pipeline:<name>@<run id>`), which is all `run_window` takes: the scheduler's workers
run different dates of one pipeline at once, each excluding only its own date, and
load a window only when its caller says no earlier window comes first.

`status.py` holds `onceflow status` and `reset-state`: like a run, they span every step,
so they sit here, above the steps, and not among the base modules a step may import.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from onceflow.config import (
    Config,
    as_config,
    load_config,
    single_table_config,
    standalone_config,
)
from onceflow.consistency import (
    config_lock_names,
    fix_inconsistencies,
    force_unlock,
    list_locks,
    validate_consistency,
)
from onceflow.errors import ConfigError, LockError, OnceflowError, named_once
from onceflow.extract import (
    ExtractionResult,
    ExtractSummary,
    create_extraction_report,
    extract,
    force_reprocess_table,
    get_extraction_summary,
    is_extraction_needed,
    require_databricks,
    reset_failed_extractions,
    validate_window_consistency,
)
from onceflow.load import LoadSummary, check_settings, load, optimize
from onceflow.pipeline.status import reset_state, status_report
from onceflow.state import (
    DamagedStore,
    Lease,
    RunRecord,
    Store,
    force_release,
    open_store,
    set_aside_damaged,
)
from onceflow.state.runs import RUN_FAILED, RUN_LOADING
from onceflow.validate import (
    Gate,
    ValidationReport,
    reset_validation_state,
    rule_warnings,
    validate,
    validation_status,
)
from onceflow.windows import check_run_id, make_run_id, parse_run_date

Progress = Callable[[ExtractionResult], None]
P = ParamSpec("P")
R = TypeVar("R")

# How long a run (holding the pipeline lock) waits at least for a table's load lock: a
# maintenance command that takes only table locks (`optimize`, a `fix-inconsistencies`
# repair of one table) holds one for seconds, and a manual run should not fail on that
# moment. Bounded, so a table held for long (a big `onceflow load`) still fails, and
# says by whom.
TABLE_LOCK_WAIT_SECONDS = 30.0


@dataclass
class RunSummary:
    """The outcome of a run: the run, each table's extraction, and the load."""

    run: RunRecord
    results: list[ExtractionResult] = field(default_factory=list)
    load: LoadSummary | None = None
    validation: ValidationReport | None = None
    #: Why the load was not done yet (`run_window`: an earlier window comes first).
    deferred: str | None = None

    @property
    def ok(self) -> bool:
        """True when every selected table is committed and loaded (or its load deferred),
        and no error-severity rule failed (or could not run)."""
        loaded = self.load is None or self.load.ok
        valid = self.validation is None or self.validation.ok
        return loaded and valid and all(r.action != "failed" for r in self.results)

    @property
    def error(self) -> tuple[str, str] | None:
        """(error type, first error message) of a failed run, or None."""
        for r in self.results:
            if r.action == "failed":
                return "ExtractError", named_once(r.table_key, r.error or "extraction failed")
        for t in self.load.results if self.load else []:
            if not t.ok:
                return "LoadError", named_once(t.key, str(t.error or t.waiting or t.uncommitted))
        for key, problem in self.validation_problems():
            return "ValidateError", named_once(key, problem)
        return None

    def validation_problems(self) -> list[tuple[str, str]]:
        """(table, what) for each table whose error-severity rules failed or could not run:
        a run is failed by them as by a failed load (exit 1 or 2), under a scheduler too."""
        if self.validation is None:
            return []
        problems = []
        for t in self.validation.tables:
            bad = [f"{r.rule} {r.outcome}" for r in t.results if r.outcome in ("fail", "error")]
            if t.quarantine_error:
                bad.append(t.quarantine_error)
            if bad and t.status in ("failed", "error"):
                problems.append((t.table, f"validation {t.status}: {', '.join(bad)}"))
        return problems

    def counts(self) -> dict[str, int]:
        """How many tables were extracted, skipped and failed."""
        return ExtractSummary(self.run, self.results).counts()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for `--json` and reports."""
        return {
            **ExtractSummary(self.run, self.results).as_dict(),
            "load": None if self.load is None else self.load.as_dict(),
            "validation": None if self.validation is None else self.validation.as_dict(),
        }


def pipeline_lock(config: Config, *, timeout: float = 0.0, store: Store | None = None) -> Lease:
    """The pipeline lock as a context manager (`with pipeline_lock(config):`), for work of
    your own that must not overlap a run; it waits up to `timeout` s, then raises LockError."""
    return Lease(
        store or open_store(config.state_url),
        config.pipeline_lock_name,
        ttl=config.lock_ttl_seconds,
        timeout=timeout,
    )


def run(
    config: Config,
    run_date: str | date | None = None,
    *,
    tables: Sequence[str] | None = None,
    force_reprocess: bool = False,
    workers: int | None = None,
    verify: str = "fast",
    run_id: str | None = None,
    lock_timeout: float = 0.0,
    force_unlock: bool = False,
    allow_partial: bool = False,
    store: Store | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Run the whole pipeline for a run date: extract, load, validate, under the pipeline lock.

    A second run of the same pipeline waits up to `lock_timeout` seconds for the lock,
    then raises LockError naming the holder. Each table's load lock (which a maintenance
    command may hold for a moment) is waited for up to `lock_timeout` seconds, at least
    TABLE_LOCK_WAIT_SECONDS; a table still held then fails its load, naming the holder.
    `force_unlock` first releases the pipeline's locks (its own and its tables') whoever
    holds them. Pre-load rules gate each file before its commit; post-load rules then
    check each loaded table (the rules of a table whose load failed are skipped). A run
    whose load fails, or whose error-severity rule fails or cannot run, is marked failed,
    though every extraction completed.
    """
    store = store or open_store(config.state_url)
    # a table whose settings changed under it is refused before extracting its window
    check_settings(config, tables)
    if force_unlock:
        # only this pipeline's own locks: a shared state store holds other pipelines' too
        for name in config_lock_names(config):
            force_release(store, name)
    rid = _run_id(config, run_date, run_id)
    with (
        pipeline_lock(config, timeout=lock_timeout, store=store) as lease,
        # a worker running this date under `run_window` holds only the run lock
        Lease(
            store, run_lock_name(config, rid), ttl=config.lock_ttl_seconds, timeout=lock_timeout
        ) as run_lease,
    ):
        extracted = extract(
            config,
            run_date,
            tables=tables,
            force_reprocess=force_reprocess,
            workers=workers,
            verify=verify,
            run_id=run_id,
            store=store,
            progress=progress,
            allow_partial=allow_partial,
            lease=lease,
            loads_next=True,
        )
        summary = RunSummary(extracted.run, extracted.results)
        fence = _Fence(lease.check, run_lease.check)
        table_wait = max(lock_timeout, TABLE_LOCK_WAIT_SECONDS)
        _load_and_validate(config, summary, tables, table_wait, store, lease, fence)
    return summary


class _Fence:
    """A run's own leases (its lock, a worker's job), checked before each commit of its
    load (with the table's lock, `load(still_ours=...)`): a run that lost one stops
    before its next commit instead of loading on beside its successor.

    The load step stops a table on LockError only, so any other loss (LeaseLostError)
    is passed down as one; the first loss is kept and raised again once the load is
    back (`raise_lost`), so the caller learns it as itself."""

    def __init__(self, *checks: Callable[[], None] | None) -> None:
        self.checks = [c for c in checks if c is not None]
        self.lost: OnceflowError | None = None

    def __call__(self) -> None:
        try:
            for check in self.checks:
                check()
        except OnceflowError as error:
            if self.lost is None:
                self.lost = error
            if isinstance(error, LockError):
                raise
            raise LockError(f"{error}; this load stops before its next commit") from error

    def raise_lost(self) -> None:
        if self.lost is not None:
            raise self.lost


def _load_and_validate(
    config: Config,
    summary: RunSummary,
    tables: Sequence[str] | None,
    lock_timeout: float,
    store: Store,
    lease: Lease,
    fence: _Fence,
) -> None:
    """Load the run's tables, pre-load rules gating each file before its commit, then
    check each loaded table with its post-load rules (a table whose load failed is
    skipped); a failed load or an error-severity rule that fails marks the run failed.
    `fence` is checked before each commit; a loss found there is raised once the load
    is back, before anything is recorded of the run."""
    gate = pre_load_gate(config, store)
    # the run is not complete until its load and rules are: a kill from here on leaves it
    # `loading` (not `completed`), and the rerun that finishes it counts as a restart
    summary.run = store.runs.loading(summary.run.run_id) or summary.run
    try:
        summary.load = load(
            config,
            summary.run.run_date,
            tables=tables,
            lock_timeout=lock_timeout,
            gate=gate,
            store=store,
            still_ours=fence,
        )
    except BaseException:  # the load did not finish: the run is not a success
        store.runs.fail(summary.run.run_id)
        raise
    # a run that lost its right to write records nothing more: its successor does
    fence.raise_lost()
    chosen = [config.table(k) for k in tables] if tables else config.tables
    checked = [t.key for t in chosen if any(r.stage == "post_load" for r in t.rules)]
    if checked or (gate is not None and gate.reports):
        lease.check()
        failed = {
            r.key: f"not validated: its load failed ({r.error})"
            for r in summary.load.results
            if not r.ok
        }
        # the first cause, not its echo: checking a table whose extraction failed would
        # give one error per rule for what is one failure, already reported
        failed |= {
            r.table_key: f"not validated: its extraction failed ({r.error or 'no reason given'})"
            for r in summary.results
            if r.action == "failed"
        }
        try:
            summary.validation = (
                validate(
                    config,
                    summary.run.run_date,
                    tables=checked,
                    run_id=summary.run.run_id,
                    skip=failed,
                    store=store,
                )
                if checked
                else ValidationReport(config.pipeline, run_id=summary.run.run_id)
            )
        except BaseException:  # the checks did not finish: the run is not a success
            store.runs.fail(summary.run.run_id)
            raise
        if gate is not None:
            summary.validation.tables[:0] = gate.reports
    if not summary.load.ok or (summary.validation is not None and not summary.validation.ok):
        summary.run = store.runs.fail(summary.run.run_id) or summary.run
    elif summary.run.status in (RUN_FAILED, RUN_LOADING):
        # a failed load's verdict, which the extraction kept: the load succeeded now, so
        # the run completes if every extraction did and none of its files is still failed
        # (a load of other --tables leaves theirs as they were)
        paths = [e.file_path or "" for e in store.extractions.of_run(summary.run.run_id).values()]
        if not store.files.failed_among(paths):
            summary.run = store.runs.finish(summary.run.run_id)
        elif summary.run.status == RUN_LOADING:  # a file of another table still failed
            summary.run = store.runs.fail(summary.run.run_id) or summary.run


def config_warnings(config: Config) -> list[str]:
    """What `check` warns of in the steps' settings, read from the config alone: rules
    that cannot mean what they say (`onceflow.validate.rule_warnings`)."""
    return rule_warnings(config)


def pre_load_gate(config: Config, store: Store) -> Gate | None:
    """The validate step's gate over the config's pre-load rules, or None without any."""
    if any(r.stage == "pre_load" for t in config.tables for r in t.rules):
        return Gate(config, store)
    return None


def load_gated(
    config: Config,
    run_date: str | date | None = None,
    *,
    tables: Sequence[str] | None = None,
    lock_timeout: float = 0.0,
    path: str | None = None,
    target: str | None = None,
    strategy: str | None = None,
    primary_key: Sequence[str] | None = None,
    workers: int | None = None,
    force_unlock: bool = False,
    store: Store | None = None,
) -> LoadSummary:
    """`onceflow load`: the load step (`onceflow.load.load`, same options) with the
    pre-load rules gating each file before its commit, as in `run`."""
    store = store or open_store(config.state_url)
    return load(
        config,
        run_date,
        tables=tables,
        lock_timeout=lock_timeout,
        path=path,
        target=target,
        strategy=strategy,
        primary_key=primary_key,
        workers=workers,
        force_unlock=force_unlock,
        gate=pre_load_gate(config, store),
        store=store,
    )


def run_lock_name(config: Config, run_id: str) -> str:
    """The lock one run holds, so that runs of other dates of its pipeline go on."""
    return config.run_lock_name(run_id)


def _run_id(config: Config, run_date: str | date | None, run_id: str | None) -> str:
    if run_id:
        return check_run_id(run_id)
    return make_run_id(config.pipeline, parse_run_date(run_date, config.zone))


def run_window(
    config: Config,
    run_date: str | date,
    *,
    tables: Sequence[str] | None = None,
    force_reprocess: bool = False,
    lease_ttl: float | None = None,
    lock_timeout: float = 0.0,
    may_load: Callable[[], str | None] | None = None,
    check: Callable[[], None] | None = None,
    store: Store | None = None,
) -> RunSummary:
    """Run one run date as the scheduler's workers do: extract, load, validate, under
    the run's own lock only, so that other dates of the pipeline run at the same time.

    A table whose extraction failed does not stop the others: as in `run`, the tables
    that were extracted are loaded (the load's own window order keeps a table from
    loading past a window of it that is missing), and the summary's `error` still
    fails the run; a retry re-extracts only what failed.

    Before loading, `may_load()` may return why the load must wait (an earlier window
    of the same backfill is not loaded yet): the extraction stays committed, nothing
    is loaded, and the summary's `deferred` says why (unless an extraction failed: the
    run is failed then, not deferred); run again later, the extraction is skipped and
    the load goes on. `check()` is called before the load and before each of its
    commits (with the run lock's), and should raise when the caller lost the right to
    write (its job's lease): the load stops uncommitted and that error is raised. The lock's lease
    lasts `lease_ttl` seconds after the last heartbeat (default `lock_ttl_minutes`).
    A whole-pipeline command (`run`, `extract`) holding the pipeline lock makes this
    wait up to `lock_timeout` seconds, then raise LockError.
    """
    store = store or open_store(config.state_url)
    check_settings(config, tables)
    rid = _run_id(config, run_date, None)
    ttl = lease_ttl or config.lock_ttl_seconds
    with Lease(store, run_lock_name(config, rid), ttl=ttl, timeout=lock_timeout) as lease:
        holder = store.locks.holder(config.pipeline_lock_name)
        if holder is not None and holder.stale_reason() is None:
            raise LockError(
                f"lock {config.pipeline_lock_name!r} is held by {holder.describe()} (a "
                "whole-pipeline command is running); this run waits for it",
                lock=config.pipeline_lock_name,
            )
        extracted = extract(
            config,
            run_date,
            tables=tables,
            force_reprocess=force_reprocess,
            store=store,
            lease=lease,
            loads_next=True,
        )
        summary = RunSummary(extracted.run, extracted.results)
        reason = may_load() if may_load is not None else None
        if reason:
            if extracted.ok:
                summary.deferred = reason
            # else the run fails now (its error is the extraction's) and loads nothing:
            # the retry re-extracts what failed and then waits its turn to load
            return summary
        if check is not None:
            check()
        lease.check()
        fence = _Fence(check, lease.check)
        _load_and_validate(config, summary, tables, lock_timeout, store, lease, fence)
    return summary


class _Command(Generic[P, R]):
    """A step's function as a Pipeline method: the config is the pipeline's, and the
    state store defaults to the pipeline's open one. Docs are the function's, and so is
    the signature, less the `config` the method fills in (what `help()` shows).
    """

    def __init__(self, function: Callable[Concatenate[Config, P], R]) -> None:
        self.function = function
        self.__doc__ = function.__doc__
        signature = inspect.signature(function)
        self.signature = signature.replace(parameters=list(signature.parameters.values())[1:])

    def __get__(self, pipeline: Pipeline | None, owner: type[Pipeline]) -> Callable[P, R]:
        if pipeline is None:
            raise AttributeError("a Pipeline command is called on a Pipeline object")
        function = self.function

        @functools.wraps(function)
        def bound(*args: P.args, **kwargs: P.kwargs) -> R:
            kwargs.setdefault("store", pipeline.store)
            return function(pipeline.config, *args, **kwargs)

        bound.__signature__ = self.signature  # type: ignore[attr-defined]
        return bound


class Pipeline:
    """One pipeline's commands as methods: what the `onceflow` commands about one
    pipeline's runs, loads and state call, one to one (the commands that serve several
    pipelines, `init` and `check` call functions of `onceflow.schedule` and `onceflow`:
    docs/python-api.md lists each command's).

    Holds the config and one open state store, so a program that calls several commands
    opens the store once. Each method is the step's own function with the config and
    store filled in (`Pipeline(c).load(...)` is `onceflow.load.load(c, ...)`).
    """

    def __init__(
        self,
        config: Config | str | Path | Mapping[str, Any] | None = None,
        store: Store | None = None,
        *,
        read_only: bool = False,
    ) -> None:
        """`config`: a Config, the path of an onceflow.yml (default ./onceflow.yml; read
        as `from_file` reads it), or its mapping (as in the file, seed spellings too;
        paths from the current folder). `store`: an open store to use instead of the
        config's; `read_only` as for `from_file`."""
        self.config = as_config(config)
        self._store = store
        self.read_only = read_only

    @classmethod
    def from_file(cls, path: str | Path | None = None, *, read_only: bool = False) -> Pipeline:
        """The pipeline of an onceflow.yml (default ./onceflow.yml). `read_only`: for
        commands that only read (`status`, `validate_consistency`); its store writes
        nothing, and can be on a read-only mount (`open_store`)."""
        return cls(load_config(path), read_only=read_only)

    @classmethod
    def for_table(
        cls,
        url: str,
        source_name: str,
        table_name: str,
        *,
        cursor: str | None = None,
        lake: str | None = None,
        state: str | None = None,
        timezone: str | None = None,
    ) -> Pipeline:
        """A one-table pipeline without a config file (`onceflow extract --url ...`):
        a full extract, or a 24-hour window on `cursor`."""
        return cls(
            single_table_config(
                url,
                source_name,
                table_name,
                cursor=cursor,
                lake=lake,
                state=state,
                timezone=timezone,
            )
        )

    @classmethod
    def standalone(
        cls, *, state: str | None = None, warehouse: str | None = None, name: str | None = None
    ) -> Pipeline:
        """A pipeline with no tables, for `onceflow load --path` without a config file:
        by default the pipeline of the store's latest run (single-table extracts in the
        same folder), so that `status` shows both."""
        config = standalone_config(state=state, warehouse=warehouse)
        store = open_store(config.state_url)
        if name is None:
            latest = store.runs.find(limit=1)
            name = latest[0].pipeline if latest else None
        return cls(standalone_config(state=state, warehouse=warehouse, pipeline=name), store)

    @classmethod
    def from_state(
        cls, state: str | None = None, name: str | None = None, *, read_only: bool = False
    ) -> Pipeline:
        """The pipeline a state store knows, without a config file: what single-table
        extracts (`extract --url`) and standalone loads (`load --path`) left in this
        folder. `name` picks a pipeline; by default the one of the latest run.
        `read_only` as for `from_file`."""
        config = standalone_config(state=state)
        store = open_store(config.state_url, read_only=read_only)
        if name is None:
            latest = store.runs.find(limit=1)
            tracked = store.files.find()
            name = latest[0].pipeline if latest else tracked[0].pipeline if tracked else None
        if name is None:
            raise ConfigError(
                f"no onceflow.yml here and no runs or loads in the state store "
                f"({config.state}); pass --config PATH, or --state URL of the store to show"
            )
        return cls(standalone_config(state=state, pipeline=name), store, read_only=read_only)

    @property
    def store(self) -> Store:
        """The state store (opened and migrated on first use; read-only for a pipeline
        opened `read_only`)."""
        if self._store is None:
            self._store = open_store(self.config.state_url, read_only=self.read_only)
        return self._store

    def set_aside_damaged_store(self) -> DamagedStore | None:
        """Seed 002's recovery from a corrupted state store, first step: a SQLite store
        that SQLite cannot read is moved aside (`<file>.corrupt-<UTC time>`; nothing is
        deleted) so that a new one starts; returns where it went, or None when the store
        is sound (a PostgreSQL store is never moved). `reset-state --yes` does it before
        forgetting the run; `fix_inconsistencies()` then rebuilds the load tracker from
        the Delta logs, and the next run the extractions from their sidecars."""
        if self._store is not None:
            self._store.close()  # this thread's connection to the file that may move
        damaged = set_aside_damaged(self.config.state_url)
        if damaged is not None:
            self._store = None
        return damaged

    run = _Command(run)
    run_window = _Command(run_window)
    extract = _Command(extract)
    load = _Command(load_gated)
    status = _Command(status_report)
    extraction_summary = _Command(get_extraction_summary)
    extraction_report = _Command(create_extraction_report)
    validate_windows = _Command(validate_window_consistency)
    reset_state = _Command(reset_state)
    reset_failed_extractions = _Command(reset_failed_extractions)
    force_reprocess_table = _Command(force_reprocess_table)
    validate_consistency = _Command(validate_consistency)
    fix_inconsistencies = _Command(fix_inconsistencies)
    locks = _Command(list_locks)
    force_unlock = _Command(force_unlock)
    optimize = _Command(optimize)
    lock = _Command(pipeline_lock)
    validate = _Command(validate)
    validation_status = _Command(validation_status)
    reset_validation_state = _Command(reset_validation_state)
    is_extraction_needed = _Command(is_extraction_needed)

    # The seed extractor's names for the same commands (seed 000), so that its callers
    # work unchanged: aliases, not copies.
    get_extraction_summary = extraction_summary
    create_extraction_report = extraction_report
    validate_extraction_window_consistency = validate_windows
    get_pipeline_status = status
    get_pipeline_progress = status

    def require_databricks(self, *, warehouse: bool = True) -> None:
        """`--databricks`: ConfigError unless the lake (and with `warehouse`, the warehouse
        and every table's target) is Databricks storage, so that a job meant for
        Databricks never writes to local disk (`onceflow.extract.require_databricks`)."""
        require_databricks(self.config, warehouse=warehouse)
