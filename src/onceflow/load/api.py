"""The load step's entry points: load, optimize, load_status, reset_load_state.

Each config table loads into its own Delta table under its own lease lock, named by the
table's location (`load:<uri>`), so tables load in parallel, two loaders of one table
never interleave, and two pipelines sharing a state store only contend when they share a
table. Within a table, the result is a clean load of its lake files in window order
(see onceflow.load.plan and onceflow.load.loader).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from onceflow.config import Config, LoadConfig, TableConfig
from onceflow.errors import ConfigError, LoadError, LockError, error_names
from onceflow.lake import SourceFile, Uncommitted, discover_path, scan_table_files
from onceflow.load.loader import (
    ACTIONS,
    CHANGES,
    FileOutcome,
    Gate,
    LoadTarget,
    TableLoadResult,
    load_table,
    rows_note,
)
from onceflow.load.plan import ORDERED
from onceflow.load.settings import KEYED, Settings, kept, read_record, recorded_settings
from onceflow.load.standalone import refuse_namesakes
from onceflow.pools import interruptible
from onceflow.state import Lease, Store, force_release, open_store
from onceflow.state.extractions import PENDING, RUNNING
from onceflow.state.files import FILE_FAILED
from onceflow.state.locks import LockRecord, host_name
from onceflow.state.runs import RUN_COMPLETED, RUN_FAILED
from onceflow.warehouse import open_table
from onceflow.windows import parse_run_date, window_for

log = logging.getLogger(__name__)

SAFE_RETENTION_HOURS = 168
STRATEGIES = ("append", "overwrite", "merge", "scd2")
#: Actions that leave a file in its table (the file was brought in by this load).
APPLIED = ("loaded", "replaced", "replayed", "unchanged", "superseded")


@dataclass
class LoadSummary:
    """The outcome of one `load`: each table's result."""

    results: list[TableLoadResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every table holds every file: nothing failed, nothing waits."""
        return all(r.ok for r in self.results)

    def counts(self) -> dict[str, int]:
        """Files per action, over all tables."""
        out = dict.fromkeys(ACTIONS, 0)
        for r in self.results:
            for k, v in r.counts().items():
                out[k] = out.get(k, 0) + v
        return out

    @property
    def rows(self) -> int:
        """Rows of the files applied, over all tables (not rows written: `changes`)."""
        return sum(r.rows for r in self.results)

    @property
    def rows_skipped(self) -> int:
        """Late rows skipped (scd2 `late_rows: skip`), over all tables."""
        return sum(r.rows_skipped for r in self.results)

    def changes(self) -> dict[str, int]:
        """The rows inserted, updated, deleted and closed, over all tables."""
        out = dict.fromkeys(CHANGES, 0)
        for r in self.results:
            for name, n in r.changes().items():
                out[name] += n
        return out

    def rows_note(self) -> str:
        """`3 rows read; 1 inserted, 1 closed`, over all tables."""
        return rows_note(self.rows, self.changes())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ok": self.ok,
            "counts": self.counts(),
            "rows": self.rows,
            "rows_skipped": self.rows_skipped,
            "changes": self.changes(),
            "tables": [r.as_dict() for r in self.results],
        }


def target_name(table: TableConfig) -> str:
    """The Delta table a config table loads into: `load.target`, else <source>/<name>."""
    return table.target


def load_target(config: Config, table: TableConfig) -> LoadTarget:
    """The LoadTarget of a config table."""
    return LoadTarget(
        table.key,
        table.target,
        config.resolve_target(table.target),
        table.load,
        config.pipeline,
        timezone=config.timezone,
    )


def config_targets(config: Config, tables: Sequence[str] | None = None) -> list[LoadTarget]:
    """The load targets of the selected tables (all by default)."""
    selected = [config.table(k) for k in tables] if tables else list(config.tables)
    return [load_target(config, t) for t in selected]


def tracked_targets(store: Store, pipeline: str) -> list[LoadTarget]:
    """The tables a pipeline loaded without config tables (`load --path`), from the
    tracker, each with the settings it records (onceflow.load.settings; the default
    append for a table that records none, or cannot be read)."""
    found: dict[str, str] = {}
    for rec in store.files.find(pipeline=pipeline):
        found.setdefault(rec.target_uri, rec.table_key)
    return [
        LoadTarget(key, key, uri, _recorded_config(uri), pipeline, standalone=True)
        for uri, key in sorted(found.items())
    ]


def _recorded(uri: str, dt: Any = None) -> Settings | None:
    """The settings a table records; None without a table, a record, or a readable log
    (the load that opens it reports that). `dt`: the table, when the caller opened it."""
    try:
        return recorded_settings(dt if dt is not None else open_table(uri))
    except Exception:  # an unreadable table: its load says why, with the fix
        log.debug("%s: settings not read", uri, exc_info=True)
        return None


def _recorded_config(uri: str) -> LoadConfig:
    settings = _recorded(uri)
    return LoadConfig() if settings is None else settings.config()


def check_settings(config: Config, tables: Sequence[str] | None = None) -> None:
    """Refuse (ConfigError) a config whose table says another strategy or key than its
    Delta table was created with (onceflow.load.settings): loading would apply new files
    to rows the old settings made. `load` and `run` check it before anything is done."""
    for tgt in config_targets(config, tables):
        conflict = settings_conflict(config, tgt)
        if conflict is not None:
            raise ConfigError(conflict, field=f"{_field(config, tgt.key)}.load")


def _field(config: Config, key: str) -> str:
    return f"tables[{[t.key for t in config.tables].index(key)}]"


def settings_conflict(
    config: Config, tgt: LoadTarget, recorded: Settings | None = None
) -> str | None:
    """Why a config table's settings cannot load its table (None: they can); `recorded`:
    what the table records, when the caller read it already."""
    recorded = recorded or _recorded(tgt.uri)
    wanted = Settings.of(tgt.cfg)
    if recorded is None or not recorded.differs(wanted):
        return None
    return (
        f"{_field(config, tgt.key)}.load ({tgt.key}): the config says "
        f"{wanted.describe()}, but {kept(tgt.target, recorded)}. Put back its settings, set "
        f"`load.target` to a new table, or move {tgt.uri} away and run `onceflow load`, "
        "which rebuilds it from the lake with the new ones"
    )


def _window_limit(config: Config, run_date: str | date | None) -> datetime | None:
    if run_date is None:
        return None
    return window_for(parse_run_date(run_date, config.zone), config.zone).end.astimezone(UTC)


def _within(file: SourceFile, limit: datetime | None) -> bool:
    if limit is None or not file.window_end:
        return True
    return datetime.fromisoformat(file.window_end).astimezone(UTC) <= limit


def _until(
    config: Config, found: list[Uncommitted], run_date: str | date | None
) -> list[Uncommitted]:
    """The uncommitted files up to the run date's window (all without one)."""
    if run_date is None:
        return found
    day = parse_run_date(run_date, config.zone)
    return [u for u in found if u.day is None or u.day <= day]


def report_uncommitted(result: TableLoadResult, uncommitted: list[Uncommitted]) -> None:
    """Name the data files a load could not take because nothing commits them: not
    loaded, so the load is not complete (exit 1) until their extraction commits them."""
    if not uncommitted:
        return
    result.files += [
        FileOutcome(u.file_id, u.path, "uncommitted", error=u.reason) for u in uncommitted
    ]
    first = uncommitted[0]
    day = f" --date {first.day}" if first.day else ""
    result.uncommitted = (
        f"{len(uncommitted)} data file(s) not committed, not loaded: {first.file_id}: "
        f"{first.reason}. Let a running extraction finish, or extract again "
        f"(`onceflow extract{day} -t {result.key}`), then load"
    )
    log.warning("%s: %s", result.key, result.uncommitted)


@dataclass(frozen=True)
class Gap:
    """An earlier window a table waits for: its extraction failed or has not finished."""

    window_start: datetime
    run_id: str
    status: str
    #: why no process can be extracting it any more (a pending or running extraction whose
    #: run's lock is stale or free), or None: failed, or a live process may be at it
    interrupted: str | None = None

    def reason(self, key: str) -> str:
        """What the table waits for and the ways out."""
        day = self.run_id.rsplit("_", 1)[-1]
        date_text = f"{day[:4]}-{day[4:6]}-{day[6:]}"
        extract = f"`onceflow extract --date {date_text} -t {key}`"
        forget = f"`onceflow reset-state --run-id {self.run_id} --yes`"
        waiting = f"waiting for the window starting {self.window_start.isoformat()} of {key}: "
        if self.interrupted is not None:
            return (
                f"{waiting}its extraction in run {self.run_id} was interrupted "
                f"({self.interrupted}). Rerun that date (`onceflow run --date {date_text}`), "
                f"re-extract the table alone ({extract}), or forget that run ({forget})"
            )
        return (
            f"{waiting}its extraction is {self.status} in run {self.run_id}. Re-extract it "
            f"({extract}), or forget that run ({forget})"
        )


def table_gap(config: Config, store: Store, key: str, files: list[SourceFile]) -> Gap | None:
    """The earliest window of a table whose extraction is known and unfinished, and for
    which the lake holds no committed file: order-dependent tables wait there."""
    have = {f.window_start for f in files}
    for found in store.extractions.unfinished(config.pipeline, key):
        if found.window_start and found.window_start not in have:
            start = datetime.fromisoformat(found.window_start).astimezone(UTC)
            interrupted = None
            if found.status in (PENDING, RUNNING):
                interrupted = _interrupted(config, store, found.run_id)
            return Gap(start, found.run_id, found.status, interrupted)
    return None


def _interrupted(config: Config, store: Store, run_id: str) -> str | None:
    """Why no process can be extracting run `run_id` any more, or None when one may be.

    An extraction runs under its run's lock (`run`, a scheduled run) or the pipeline's
    (`run`, `extract`). The status `running` is only what the store was last told: a
    killed extraction keeps it, and saying it "is running" sends the reader to wait for
    a process that is gone. The pipeline lock counts only when another process holds it:
    this one's (a `run` of a later date, loading) extracts nothing of that run now.
    """
    run_lock = store.locks.holder(config.run_lock_name(run_id))
    run_stale = None if run_lock is None else run_lock.stale_reason()
    if run_lock is not None and run_stale is None:
        return None
    pipeline = store.locks.holder(config.pipeline_lock_name)
    pipeline_stale = None if pipeline is None else pipeline.stale_reason()
    if pipeline is not None and pipeline_stale is None and not _ours(pipeline):
        return None
    why = []
    if run_stale is not None:
        why.append(f"its run's lock is stale: {run_stale}")
    if pipeline_stale is not None:
        why.append(f"the pipeline lock is stale: {pipeline_stale}")
    return "; ".join(why) or "no other live process holds its run's lock or the pipeline's"


def _ours(lock: LockRecord) -> bool:
    return lock.pid == os.getpid() and lock.host == host_name()


def _run_one(
    store: Store,
    tgt: LoadTarget,
    files: list[SourceFile],
    lock_timeout: float,
    ttl: float,
    limit: datetime | None,
    gap: Gap | None,
    gate: Gate | None = None,
    standalone: bool = False,
    still_ours: Callable[[], None] | None = None,
) -> TableLoadResult:
    try:
        with Lease(store, tgt.lock_name, ttl=ttl, timeout=lock_timeout) as lease:

            def check_lock() -> None:
                lease.check()
                if still_ours is not None:
                    still_ours()

            # under the lock, before the loader registers the files' paths
            refused = refuse_namesakes(store, tgt, files) if standalone else None
            if refused is not None:
                return refused
            return load_table(
                store,
                tgt,
                files,
                token=lease.token,
                check_lock=check_lock,
                limit=limit,
                wait_from=gap.window_start if gap else None,
                wait_reason=gap.reason(tgt.key) if gap else None,
                gate=gate,
            )
    except LockError as error:
        return TableLoadResult(
            tgt.key,
            tgt.target,
            tgt.uri,
            tgt.cfg.strategy,
            error=str(error),
            error_types=error_names(error),
        )


def standalone_target(
    config: Config, target: str, strategy: str | None, primary_key: Sequence[str] | None
) -> tuple[LoadTarget, str | None]:
    """The target of `load --path ... --target T`, and a note on where its settings came
    from when the command line did not give them.

    A table that records its settings (onceflow.load.settings) loads with them: a
    strategy or key left out is the recorded one, and another one is refused. A new
    table, or one created before the record, takes the command line's (append by
    default); only a new table, or a strategy given, records them."""
    if strategy is not None and strategy not in STRATEGIES:
        raise ConfigError(
            f"--strategy: unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}",
            field="strategy",
        )
    uri = config.resolve_target(target)
    try:
        dt = open_table(uri)
        record = read_record(dt)
    except Exception:  # an unreadable table: its load says why, with the fix
        log.debug("%s: settings not read", uri, exc_info=True)
        dt, record = None, None
    note = None
    if record is not None:
        cfg = _recorded_choice(record.settings, target, uri, strategy, primary_key)
        if strategy is None:
            note = f"loaded with {record.settings.describe()}, as the table records"
    else:
        cfg = _command_line_choice(strategy or "append", primary_key)
        if dt is not None and strategy is None:
            note = (
                "loaded with strategy append (--strategy's default): the table records no "
                "strategy (created by an older onceflow); pass --strategy to load with its "
                "own and record it"
            )
    tgt = LoadTarget(
        target,
        target,
        uri,
        cfg,
        config.pipeline,
        standalone=True,
        timezone=config.timezone,
        record=record is not None or dt is None or strategy is not None,
    )
    return tgt, note


def _recorded_choice(
    recorded: Settings,
    target: str,
    uri: str,
    strategy: str | None,
    primary_key: Sequence[str] | None,
) -> LoadConfig:
    """The config of a standalone load into a table that records its settings: those,
    unless the command line gives others, which are refused (ConfigError)."""
    keys = tuple(primary_key or ())
    other_strategy = strategy is not None and strategy != recorded.strategy
    other_key = (
        bool(keys)
        and recorded.strategy in KEYED
        and recorded.differs(Settings(recorded.strategy, keys, recorded.columns))
    )
    if other_strategy or other_key:
        given = f"--strategy {strategy or recorded.strategy}" if strategy else ""
        given += f"{' ' if given else ''}--primary-key {','.join(keys)}" if keys else ""
        raise ConfigError(
            f"{given}: {kept(target, recorded)}; leave out --strategy and --primary-key to "
            f"load with its own, load into a new --target, or drop the table (move {uri} "
            "away) and load again",
            field="strategy" if other_strategy else "primary_key",
        )
    if keys and recorded.strategy not in KEYED:
        _command_line_choice(recorded.strategy, keys)  # says the key would be ignored
    return recorded.config()


def _command_line_choice(strategy: str, primary_key: Sequence[str] | None) -> LoadConfig:
    """The config of a standalone load from its command line (no recorded settings)."""
    if strategy in ORDERED and not primary_key:
        raise ConfigError(
            f"--strategy {strategy} needs --primary-key COLUMN (repeat it, or comma-separate, "
            "for a composite key)",
            field="primary_key",
        )
    if primary_key and strategy not in ORDERED:
        # an append or overwrite matches no rows by key: the key would be ignored
        raise ConfigError(
            f"--primary-key: --strategy {strategy} would ignore it (only merge and scd2 read "
            "it); use --strategy merge to upsert on it, or leave --primary-key out",
            field="primary_key",
        )
    return LoadConfig.model_validate({"strategy": strategy, "primary_key": list(primary_key or [])})


def load(
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
    gate: Gate | None = None,
    store: Store | None = None,
    still_ours: Callable[[], None] | None = None,
) -> LoadSummary:
    """Bring Delta tables to a clean, in-order load of their committed lake files.

    With `path` (a folder or glob of Parquet files) and `target`, load those files into one
    table on their own (standalone use; a file named as one the table took from another
    folder that is still there is refused, see onceflow.load.standalone); otherwise every
    selected config table's files in the lake. With `run_date`, files of later windows are
    not brought in (files a table already holds are always kept in place). Each table is
    loaded under its own lease lock, waiting up to `lock_timeout` seconds for it;
    `force_unlock` first releases those tables' locks whoever holds them. `gate` (the
    validate step's pre-load rules, passed in by the pipeline) sees each file's rows before
    its commit and fails the file by raising LoadError. `still_ours` (the caller's own
    leases: a run's lock, a worker's job) is called before each commit, with the table's
    lock check, and raises LockError when the caller lost the right to write: that
    table's load stops there, uncommitted.
    """
    if lock_timeout < 0:
        raise ConfigError("--lock-timeout: must be 0 or more seconds", field="lock_timeout")
    store = store or open_store(config.state_url)
    limit = _window_limit(config, run_date)
    jobs: list[tuple[LoadTarget, list[SourceFile], Gap | None]] = []
    uncommitted: dict[str, list[Uncommitted]] = {}
    note = None
    if path is not None:
        if not target:
            raise ConfigError("--path needs --target (the Delta table to load into)")
        tgt, note = standalone_target(config, target, strategy, primary_key)
        jobs.append((tgt, discover_path(path), None))
    else:
        if target or strategy or primary_key:
            raise ConfigError(
                "--target, --strategy and --primary-key go with --path; for config tables "
                "set `load: {target: ..., strategy: ...}` in onceflow.yml"
            )
        if not config.tables:
            raise ConfigError("tables: the config lists no tables; add one or use --path")
        check_settings(config, tables)
        lake = config.resolve(config.lake)
        for tgt in config_targets(config, tables):
            table = config.table(tgt.key)
            if gate is None and any(r.stage == "pre_load" for r in table.rules):
                # loading without them would commit what the gate refuses
                raise ConfigError(
                    f"table {tgt.key} has pre-load rules, which this call cannot run: load "
                    "it with `onceflow load`, Pipeline.load or onceflow.pipeline.load_gated "
                    "(they gate each file), or pass `gate=`",
                    field="tables",
                )
            scan = scan_table_files(lake, table.source, table.display_name)
            files = scan.files
            jobs.append((tgt, files, table_gap(config, store, tgt.key, files)))
            uncommitted[tgt.key] = _until(config, scan.uncommitted, run_date)
    if force_unlock:
        for tgt, _files, _gap in jobs:
            force_release(store, tgt.lock_name)
    failed_before = {(r.target_uri, r.file_id) for r in store.files.find(status=FILE_FAILED)}
    ttl = config.lock_ttl_seconds
    pool = max(1, min(workers or config.workers, len(jobs)))
    # a load with nothing new logs nothing per table: on many tables it would be a long
    # silent phase without this line
    found = sum(len(files) for _tgt, files, _gap in jobs)
    log.info(
        "loading %d table(s) (%d lake file(s) found)", len(jobs), found, extra={"action": "load"}
    )
    with interruptible(ThreadPoolExecutor(pool, thread_name_prefix="load")) as executor:
        results = list(
            executor.map(
                lambda job: _run_one(
                    store,
                    job[0],
                    job[1],
                    lock_timeout,
                    ttl,
                    limit,
                    job[2],
                    gate,
                    path is not None,
                    still_ours,
                ),
                jobs,
            )
        )
    for result in results:
        report_uncommitted(result, uncommitted.get(result.key, []))
        result.settings_note = note
    if path is None:
        settle_runs(
            config, store, [f for _t, files, _g in jobs for f in files], results, failed_before
        )
    return LoadSummary(results)


def settle_runs(
    config: Config,
    store: Store,
    files: list[SourceFile],
    results: list[TableLoadResult],
    failed_before: set[tuple[str, str]],
) -> None:
    """A run is complete only once its files are loaded: the run of a file that failed to
    load is marked failed (a completed one; its sidecar names it), so `status` never shows
    it completed. A load that brings such a file in undoes that verdict (when the run has
    nothing else failed) only in a pipeline without post-load rules: otherwise the run's
    rules have not seen the data, and `onceflow run --date D` (which skips what is done
    and validates) completes it."""
    run_of = {f.path: f.run_id for f in files if f.run_id}
    failed: dict[str, str] = {}
    repaired: set[str] = set()
    for result in results:
        for outcome in result.files:
            run_id = run_of.get(outcome.path)
            if run_id is None:
                continue
            if outcome.action == "failed":
                failed.setdefault(run_id, outcome.file_id)
            elif (result.uri, outcome.file_id) in failed_before and outcome.action in APPLIED:
                repaired.add(run_id)
    for run_id, file_id in sorted(failed.items()):
        if store.runs.fail(run_id, only_if=RUN_COMPLETED) is not None:
            log.warning("run %s: completed -> failed: its file %s failed to load", run_id, file_id)
    if any(r.stage == "post_load" for t in config.tables for r in t.rules):
        return
    for run_id in sorted(repaired - set(failed)):
        run = store.runs.get(run_id)
        if run is None or run.status != RUN_FAILED:
            continue
        paths = [e.file_path or "" for e in store.extractions.of_run(run_id).values()]
        if store.files.failed_among(paths):
            continue
        if store.runs.finish(run_id).status == RUN_COMPLETED:
            log.info("run %s: failed -> completed: its failed files are loaded now", run_id)


def optimize(
    config: Config,
    tables: Sequence[str] | None = None,
    *,
    retention_hours: int | None = None,
    vacuum: bool = True,
    allow_short_retention: bool = False,
    lock_timeout: float = 0.0,
    store: Store | None = None,
) -> list[dict[str, Any]]:
    """Compact small files of each table, then vacuum files past the retention period.

    The retention defaults to the table's own setting (7 days unless configured); a
    retention below 7 days is refused unless `allow_short_retention` (readers of older
    versions, and a writer still running, could lose files). Each table is compacted
    under its load lock, waiting up to `lock_timeout` seconds for it; every table is
    tried, and one whose lock stays held is `skipped` with why (naming the holder) and
    `busy: True` (a table not created yet is `skipped` without `busy`).
    """
    if retention_hours is not None and retention_hours < 0:
        raise ConfigError("--retention-hours: must be 0 or more", field="retention_hours")
    if (
        retention_hours is not None
        and retention_hours < SAFE_RETENTION_HOURS
        and not (allow_short_retention)
    ):
        raise ConfigError(
            f"--retention-hours {retention_hours} is below the safe default "
            f"({SAFE_RETENTION_HOURS}h): readers of older versions could fail. Pass "
            "--allow-short-retention if you are sure no reader or writer is running"
        )
    store = store or open_store(config.state_url)
    out: list[dict[str, Any]] = []
    for tgt in config_targets(config, tables):
        dt = open_table(tgt.uri)
        if dt is None:
            out.append({"table": tgt.key, "uri": tgt.uri, "skipped": "no table yet"})
            continue
        try:
            with Lease(store, tgt.lock_name, ttl=config.lock_ttl_seconds, timeout=lock_timeout):
                dt = open_table(tgt.uri)
                metrics = dt.optimize.compact()
                removed: list[str] = []
                if vacuum:
                    removed = dt.vacuum(
                        retention_hours=retention_hours,
                        dry_run=False,
                        enforce_retention_duration=not allow_short_retention,
                    )
        except LockError as busy:
            # one busy table (a run loading it, a fix) must not cost the others their
            # compaction, nor hide what was done before it: it is reported and skipped
            out.append({"table": tgt.key, "uri": tgt.uri, "skipped": str(busy), "busy": True})
            continue
        entry: dict[str, Any] = {
            "table": tgt.key,
            "uri": tgt.uri,
            "version": dt.version(),
            "files_added": metrics.get("numFilesAdded"),
            "files_removed": metrics.get("numFilesRemoved"),
            "vacuumed": len(removed),
        }
        out.append(entry)
    return out


def load_status(
    config: Config, tables: Sequence[str] | None = None, store: Store | None = None
) -> list[dict[str, Any]]:
    """For `onceflow status`: per table, its strategy and key (as the table records them,
    onceflow.load.settings; a config table's from its config when it records none, a
    standalone one's `unknown`), the Delta version, the files it holds, the tracker's
    counts, failed files, skipped late rows, what it waits for, and its lock."""
    store = store or open_store(config.state_url)
    lake = config.resolve(config.lake)
    out = []
    targets = config_targets(config, tables) if config.tables else []
    for tgt in targets or tracked_targets(store, config.pipeline):
        table = config.table(tgt.key) if config.tables else None
        try:
            dt, error = open_table(tgt.uri), None
        except LoadError as unreadable:
            dt, error = None, str(unreadable)
        # the table opened once: status opened each twice (1,000 tables: 1,000 more opens)
        recorded = _recorded(tgt.uri, dt) if dt is not None else None
        settings = recorded or (Settings.of(tgt.cfg) if table is not None else None)
        conflict = (
            settings_conflict(config, tgt, recorded) if table is not None and recorded else None
        )
        records = store.files.find(tgt.uri)
        failed = [
            {"file": f.file_id, "error": f.error, "retries": f.retry_count}
            for f in records
            if f.status == "failed"
        ]
        scan = scan_table_files(lake, table.source, table.display_name) if table else None
        files = scan.files if scan else []
        ordered = table is not None and tgt.cfg.strategy in ORDERED
        gap = table_gap(config, store, tgt.key, files) if ordered else None
        out.append(
            {
                "table": tgt.key,
                "target": tgt.target,
                "uri": tgt.uri,
                "strategy": settings.strategy if settings else "unknown",
                "primary_key": list(settings.primary_key) if settings else None,
                # False: a config table's settings from its config (the table records
                # none yet), or a standalone table's unknown
                "settings_recorded": recorded is not None,
                "settings_conflict": conflict,
                "files": store.files.counts(tgt.uri),
                "lake_files": len(files),
                "delta_version": None if dt is None else dt.version(),
                "failed_files": failed,
                "damaged_files": [
                    {"file": f.file_id, "problem": f.problem} for f in files if f.problem
                ],
                "uncommitted_files": [
                    {"file": u.file_id, "reason": u.reason}
                    for u in (scan.uncommitted if scan else [])
                ],
                "rows_skipped": sum(f.rows_skipped or 0 for f in records),
                "waiting": gap.reason(tgt.key) if gap else None,
                "lock": (h.describe() if (h := store.locks.holder(tgt.lock_name)) else None),
                # why that holder no longer protects the table (a dead pid), or None
                "lock_stale": h.stale_reason() if h else None,
                "error": error,
            }
        )
    return out


def reset_load_state(
    config: Config,
    tables: Sequence[str] | None = None,
    *,
    failed_only: bool = False,
    store: Store | None = None,
) -> int:
    """For `onceflow reset-state`: failed files back to pending (fresh retries), or forget
    the tracker rows entirely (the next load re-derives them from the Delta logs)."""
    store = store or open_store(config.state_url)
    # a folder of standalone loads (`load --path`, no config) has its tables only in the
    # tracker, as `load_status` finds them
    targets = (
        config_targets(config, tables) if config.tables else tracked_targets(store, config.pipeline)
    )
    n = 0
    for tgt in targets:
        n += store.files.reset_failed(tgt.uri) if failed_only else store.files.forget(tgt.uri)
    return n
