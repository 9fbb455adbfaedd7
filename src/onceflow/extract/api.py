"""The extract step's entry point: extract the selected tables of one run.

A run is (pipeline, run date); its tables are extracted in parallel, each skipped when
its file is committed and intact (sidecar, window, size; checksum with deep verification).
The pipeline lock is held throughout, so two extractions of one run never race.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from onceflow.config import Config, TableConfig
from onceflow.errors import ConfigError
from onceflow.extract import early
from onceflow.extract.extractor import (
    ExtractionResult,
    OtherCommit,
    TableJob,
    check_committed,
    extract_table,
    is_early_commit,
    needs_extraction,
    other_commits,
    skipped_result,
)
from onceflow.extract.tables_file import TableSelection
from onceflow.lake.discovery import layout_day
from onceflow.lake.paths import sidecar_name, table_folder
from onceflow.lake.sidecar import inspect_sidecar_file
from onceflow.pools import interruptible
from onceflow.state import ExtractionEntry, Lease, RunRecord, Store, force_release, open_store
from onceflow.state.runs import RUN_FAILED, RUN_LOADING
from onceflow.windows import (
    StoredWindow,
    Window,
    broken_seams,
    check_run_id,
    make_run_id,
    parse_run_date,
    run_date_of,
    run_date_with_id,
    window_for,
)

log = logging.getLogger(__name__)

Progress = Callable[[ExtractionResult], None]


@dataclass
class ExtractSummary:
    """The outcome of an extraction: the run and each table's result."""

    run: RunRecord
    results: list[ExtractionResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every selected table is committed."""
        return all(r.action != "failed" for r in self.results)

    def counts(self) -> dict[str, int]:
        """How many tables were extracted, skipped and failed."""
        out = {"extracted": 0, "skipped": 0, "failed": 0}
        for r in self.results:
            out[r.action] = out.get(r.action, 0) + 1
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for `--json` and reports."""
        return {
            "run_id": self.run.run_id,
            "status": self.run.status,
            "window_start": self.run.window_start,
            "window_end": self.run.window_end,
            "restart_count": self.run.restart_count,
            "counts": self.counts(),
            "tables": [vars(r) for r in self.results],
        }


@dataclass(frozen=True)
class RunContext:
    """The (pipeline, run date) a command acts on."""

    run_id: str
    run_date: date
    window: Window


def null_cursor_note(rows: int) -> str:
    """What a table's extraction left out under `null_cursor: skip`, for logs and reports."""
    return (
        f"{rows:,} row(s) left out: their cursor is NULL (or a zero date, or infinite), "
        "in no window, never extracted (extract.null_cursor: skip)"
    )


def run_context(
    config: Config,
    run_date: str | date | None = None,
    run_id: str | None = None,
    store: Store | None = None,
) -> RunContext:
    """Resolve the run date, its window and its deterministic run id. The date is
    `run_date`, else that of the run `store` holds under `run_id`, else the one the
    sidecars of that run id's files in the lake record (a run the store forgot), else the
    date a run id nothing records names (daily_extract_20250123), else yesterday
    (`run_date_with_id`). Pass the command's `store` whenever a `run_id` may be given:
    without it a run whose id ends in another date than its own is looked up in the lake.
    A `run_date` other than the lake's for a run the store does not hold is refused
    (ConfigError), as `check_same_run` refuses one other than the store's."""
    if run_id:
        check_run_id(run_id)
    known = store.runs.get(run_id) if store is not None and run_id else None
    stored: str | date | None = known.run_date if known is not None else None
    in_lake = lake_run_date(config, run_id, run_date) if run_id and known is None else None
    if in_lake is not None:
        stored = in_lake.day
    day = parse_run_date(
        run_date_with_id(run_date, run_id, config.zone, stored=stored), config.zone
    )
    rid = run_id if run_id else make_run_id(config.pipeline, day)
    if in_lake is not None and day != in_lake.day:
        raise ConfigError(
            f"--run-id: run {rid} is the run of {in_lake.day} (its file "
            f"{_relative(in_lake.path, config.resolve(config.lake))} in the lake says so; the "
            f"state store holds no such run), not of {day}: a run id names one window. "
            f"Give another --run-id for {day}, or leave out --run-id (its run is then "
            f"{make_run_id(config.pipeline, day)})",
            field="run_id",
        )
    return RunContext(rid, day, window_for(day, config.zone))


@dataclass(frozen=True)
class LakeRun:
    """A run id's run date as the lake records it: a committed file of it, and its date."""

    day: date
    path: Path


def lake_run_date(
    config: Config, run_id: str | None, run_date: str | date | None = None
) -> LakeRun | None:
    """The run date the lake records for `run_id` (the `run_date` of the sidecars of its
    files in the configured tables' folders), or None when it holds no file of it.

    The state store is an index that can be forgotten (`reset-state --yes`, a new store);
    the sidecars stay, each naming its run's date. Without them a run whose id ends in
    another date than its own, or in eight digits that are no date, would be read by its
    name once forgotten, and its window locked out: its own id refused, and the date's
    own id refused because the lake holds the window under the forgotten id.

    Cheap first: the day folders of `run_date` and of the date the id names, one `stat`
    each per table; only when they hold no file of it, every day folder of the configured
    tables, by name (`<yyyymm>/<dd>/<run id>_metadata.json`): no data file is read. Files
    of several dates (an id reused for another date after a forget) are refused unless
    `run_date` is one of them."""
    if not run_id or not config.tables:
        return None
    near = [run_date_of(run_id)]
    if run_date is not None:
        near.insert(0, parse_run_date(run_date, config.zone))
    found = _lake_runs(config, run_id, [d for d in near if d is not None])
    if not found:
        found = _lake_runs(config, run_id, None)
    if len(found) <= 1:
        return next(iter(found.values()), None)
    dates = ", ".join(
        f"{run.day} ({_relative(run.path, config.resolve(config.lake))})" for run in found.values()
    )
    raise ConfigError(
        f"--run-id: the lake holds files of run {run_id} of several dates: {dates}; the "
        "state store holds no such run to say which it is. Give --date to name one, or "
        "another --run-id",
        field="run_id",
    )


def _lake_runs(config: Config, run_id: str, days: Sequence[date] | None) -> dict[date, LakeRun]:
    """The run dates the sidecars of `run_id` record, each with a file of it, looking in
    `days`' folders, or (None) in every day folder of the configured tables."""
    lake = config.resolve(config.lake)
    name = sidecar_name(f"{run_id}.parquet")
    found: dict[date, LakeRun] = {}
    for table in config.tables:
        folder = table_folder(lake, table.source, table.display_name)
        if days is None:
            # glob lists the month and day folders; a literal last part is one lstat each
            pattern = os.path.join(glob.escape(str(folder)), "*", "*", glob.escape(name))
            sidecars = [Path(p) for p in sorted(glob.glob(pattern))]
        else:
            sidecars = [folder / f"{d:%Y%m}" / f"{d:%d}" / name for d in dict.fromkeys(days)]
        for sidecar in sidecars:
            day = _recorded_day(sidecar, run_id)
            if day is not None and day not in found:
                found[day] = LakeRun(day, sidecar.with_name(f"{run_id}.parquet"))
    return found


def _recorded_day(sidecar: Path, run_id: str) -> date | None:
    """The run date a sidecar of `run_id` records (else its folder's, in the layout), or
    None when there is none, or it is another run's."""
    content, _unreadable = inspect_sidecar_file(sidecar)
    if content is None:
        # missing: no file of the run here; unreadable: still a file of it, committed
        # (a sidecar is written atomically), its date the folder's
        return layout_day(sidecar) if _unreadable is not None else None
    if content.get("run_id", run_id) != run_id:
        return None
    try:
        return date.fromisoformat(str(content["run_date"]))
    except (KeyError, ValueError):
        return layout_day(sidecar)


def select_tables(
    config: Config, keys: Sequence[str] | None, run: RunContext | None = None
) -> list[TableConfig]:
    """The tables named by --tables (keys or unique names), or all of them. Keys read
    from a tables file (a TableSelection) are first checked against the config: what an
    entry says of its table (`is_full_extract`, `incremental_column`, `custom_query`)
    must be what the config says, and its `extraction_date`/`run_id` those of `run`."""
    if not config.tables:
        raise ConfigError("tables: the config lists no tables; add at least one under `tables:`")
    if not keys:
        return list(config.tables)
    if isinstance(keys, TableSelection):
        keys.check(config, run.run_date if run else None, run.run_id if run else None)
    return [config.table(k) for k in keys]


def extraction_entry(table: TableConfig, ctx: RunContext) -> ExtractionEntry:
    """The state row that registers a table in a run before its first attempt."""
    start, end = ctx.window.iso()
    return ExtractionEntry(
        table.key, table.source, table.display_name, table.extract.mode, start, end
    )


#: The reason of a re-extraction a load asked for: the committed file failed its checksum.
DAMAGED = "damaged: a load found the committed file does not match its sidecar"


def make_job(
    config: Config,
    ctx: RunContext,
    table: TableConfig,
    *,
    force: bool = False,
    force_reason: str = "forced",
    deep: bool = False,
    lease: Lease | None = None,
) -> TableJob:
    """The extraction job of one table in a run."""
    return TableJob(
        table=table,
        source=config.source(table.source),  # its URL's ${VAR} resolved
        source_url=config.source_url(table.source),
        run_id=ctx.run_id,
        run_date=ctx.run_date,
        window=ctx.window,
        lake=config.resolve(config.lake),
        zone=config.zone,
        compression=config.compression,
        retry=config.retry,
        deep_verify=deep,
        force=force,
        force_reason=force_reason,
        partial=settles_at(ctx, config.settle_seconds) > datetime.now(UTC),
        settles_at=settles_at(ctx, config.settle_seconds),
        check_lock=lease.check if lease is not None else None,
    )


def settles_at(ctx: RunContext, settle: float) -> datetime:
    """When the run's window settles: its end plus the config's `settle` seconds."""
    return ctx.window.end + timedelta(seconds=settle)


def committed_complete(config: Config, ctx: RunContext, selected: Sequence[TableConfig]) -> str:
    """The selected tables whose file of the run is committed as complete (`partial:
    false`) though the window has not settled by this host's clock, with the earliest
    commit time, as a clause for the refusal of `check_window_closed`; "" when none."""
    found: list[tuple[str, str]] = []
    for table in selected:
        verdict = check_committed(make_job(config, ctx, table))
        if is_early_commit(verdict):
            found.append((table.key, str((verdict.sidecar or {}).get("end_time", "?"))))
    if not found:
        return ""
    return (
        f"{', '.join(k for k, _ in found)} already committed as complete (at "
        f"{min(t for _, t in found)}: a clock stepped back since, another host's clock "
        "is ahead, or `settle` was raised since)"
    )


def check_window_closed(
    ctx: RunContext,
    allow_partial: bool,
    settle: float = 0.0,
    committed: Callable[[], str] | None = None,
) -> None:
    """Refuse a window that has not ended, or ended less than `settle` seconds ago (the
    config's `settle`: rows committed late into it): rows arriving later in it would never
    be extracted, since a committed window is skipped. `allow_partial` extracts it anyway,
    marked partial, and every later run extracts it again until the window has settled.
    `committed` names the tables already committed as complete in the window (by a clock
    ahead of this host's), for the refusal to say what becomes of them."""
    now = datetime.now(UTC)
    settled = ctx.window.end + timedelta(seconds=settle)
    if settled <= now or allow_partial:
        return
    early_tables = committed() if committed is not None else ""
    if early_tables:
        raise ConfigError(
            f"--date: the window of {ctx.run_date} settles only at {settled.isoformat()} "
            f"by this host's clock, yet {early_tables}. Rows committed into the window "
            "since are in no file: pass --allow-partial to extract it again now as partial "
            "(and by every run until it has settled); without it, a run after it has "
            f"settled skips the committed files, and only `--date {ctx.run_date} "
            "--force-reprocess` takes those rows in",
            field="date",
        )
    left = str(settled.astimezone(UTC) - now).split(".")[0]
    if ctx.window.end > now:
        when = f"ends at {ctx.window.end.isoformat()} (in {left}"
        when += ", with settle)" if settle else ")"
        wait = "it has ended"
    else:
        when = f"ended at {ctx.window.end.isoformat()}; settle gives rows {left} more to arrive"
        wait = f"{settled.isoformat()} (settle: {timedelta(seconds=settle)})"
    raise ConfigError(
        f"--date: the window of {ctx.run_date} {when}; extracting it now would miss its later "
        f"rows. Wait until {wait}, or pass --allow-partial to extract it as partial "
        "(extracted again by every run until it has settled)",
        field="date",
    )


def extract(
    config: Config,
    run_date: str | date | None = None,
    *,
    tables: Sequence[str] | None = None,
    force_reprocess: bool = False,
    workers: int | None = None,
    verify: str = "fast",
    run_id: str | None = None,
    store: Store | None = None,
    progress: Progress | None = None,
    lock_timeout: float = 0.0,
    force_unlock: bool = False,
    allow_partial: bool = False,
    lease: Lease | None = None,
    loads_next: bool = False,
) -> ExtractSummary:
    """Extract the selected tables for one run; committed tables are skipped.

    The pipeline lock is held throughout, waiting up to `lock_timeout` seconds for it
    (`force_unlock` first releases it whoever holds it); a caller that already holds it
    passes its `lease`. A window that has not ended is refused unless `allow_partial`.
    `loads_next`: the caller loads the run right after (`run`), so the advice to load a
    run whose earlier load failed is not given.
    """
    try:
        if verify not in ("fast", "deep"):
            raise ConfigError(
                f"--verify: expected 'fast' or 'deep', got {verify!r}", field="verify"
            )
        if lock_timeout < 0:
            raise ConfigError("--lock-timeout: must be 0 or more seconds", field="lock_timeout")
        if run_id:
            # the run's stored date is its date: opened now, not after the checks below
            store = store or open_store(config.state_url)
        ctx = run_context(config, run_date, run_id, store)
        selected = select_tables(config, tables, ctx)
        check_window_closed(
            ctx,
            allow_partial,
            config.settle_seconds,
            lambda: committed_complete(config, ctx, selected),
        )
        store = store or open_store(config.state_url)

        def go(held: Lease) -> ExtractSummary:
            return _extract(
                config,
                store,
                ctx,
                selected,
                tables_given=bool(tables),
                force=force_reprocess,
                deep=verify == "deep",
                workers=workers,
                progress=progress,
                lease=held,
                loads_next=loads_next,
            )

        if lease is not None:
            lease.check()
            return go(lease)
        if force_unlock:
            force_release(store, config.pipeline_lock_name)
        with Lease(
            store, config.pipeline_lock_name, ttl=config.lock_ttl_seconds, timeout=lock_timeout
        ) as held:
            return go(held)
    finally:
        early.close_unused()  # a connection the command opened early that no table used


def check_same_run(config: Config, store: Store, ctx: RunContext) -> RunRecord | None:
    """The stored run of `ctx.run_id`, refused (ConfigError) when it is another run.

    A run id names one window: its files are `<run id>.parquet` under the window's date,
    and the run's extractions are its tables in that window. A `--run-id` reused for
    another date would overwrite the first date's extraction records with the second's
    (its files elsewhere in the lake) and leave a run whose window its tables do not have.
    A run whose stored window differs for the same date (the config's `timezone` changed)
    would mix two windows: `run_rewindowed` decides whether this extraction may move it.
    """
    run = store.runs.get(ctx.run_id)
    if run is None or run.run_date == ctx.run_date.isoformat():
        return run
    fallback = make_run_id(config.pipeline, ctx.run_date)
    raise ConfigError(
        f"--run-id: run {ctx.run_id} is the run of {run.run_date} (window "
        f"{run.window_start} → {run.window_end}), not of {ctx.run_date}: a run id names one "
        f"window. Give another --run-id for {ctx.run_date}, or leave out --run-id (its run "
        f"is then {fallback})",
        field="run_id",
    )


def _same_instants(stored: tuple[str, str], wanted: tuple[str, str]) -> bool:
    # instants, not strings: a zone renamed to one with the same offsets changes nothing
    return all(
        datetime.fromisoformat(a) == datetime.fromisoformat(b)
        for a, b in zip(stored, wanted, strict=True)
    )


def run_rewindowed(
    config: Config,
    run: RunRecord | None,
    ctx: RunContext,
    selected: Sequence[TableConfig],
    known: Sequence[str],
    *,
    force: bool,
    tables_given: bool = True,
) -> bool:
    """Whether the stored `run` must move to the window the config now gives (ConfigError
    when it may not).

    The same run date gives another window when the config's `timezone` changed since
    the run was extracted. Adding tables to it in the new window would leave a run of two
    windows for good: refused, naming both windows. `--force-reprocess` of every table
    the run holds (`known`) re-extracts the whole run in the new window: allowed, since
    nothing of the old window is left in the run afterwards (the files are replaced in
    place: same date, same paths)."""
    if run is None:
        return False
    stored, wanted = (run.window_start, run.window_end), ctx.window.iso()
    if _same_instants(stored, wanted):
        return False
    chosen = {t.key for t in selected}
    left_out = sorted(set(known) - chosen)
    if force and not left_out:
        return True
    if force and tables_given:
        cause = (
            f"--force-reprocess re-extracts it in the new window only as a whole, and it "
            f"also holds {', '.join(left_out)}, which --tables leaves out; leave out --tables"
        )
    elif force:
        cause = (
            f"--force-reprocess re-extracts it in the new window only as a whole, and it "
            f"also holds {', '.join(left_out)}, which the config no longer lists; forget "
            f"the run first (`onceflow reset-state --yes --date {ctx.run_date}`: its files "
            f"stay in the lake), then `onceflow run --date {ctx.run_date}` extracts the "
            "config's tables in the new window"
        )
    else:
        cause = (
            "re-extract the whole run in the new window with --force-reprocess and no "
            f"--tables (`onceflow run --date {ctx.run_date} --force-reprocess`), or put back "
            "the timezone that gave its window"
        )
    raise ConfigError(
        f"timezone: run {ctx.run_id} was extracted in the window {stored[0]} → {stored[1]}, "
        f"but timezone {config.timezone} now gives {wanted[0]} → {wanted[1]}; extracting "
        f"into it would mix two windows in one run. {cause[0].upper()}{cause[1:]}",
        field="timezone",
    )


def _extract(
    config: Config,
    store: Store,
    ctx: RunContext,
    selected: list[TableConfig],
    *,
    tables_given: bool = True,
    force: bool,
    deep: bool,
    workers: int | None,
    progress: Progress | None,
    lease: Lease,
    loads_next: bool = False,
) -> ExtractSummary:
    stored = check_same_run(config, store, ctx)
    check_seams(config, store, ctx)
    tables_of_run = list(store.extractions.of_run(ctx.run_id)) if stored else []
    rewindow = run_rewindowed(
        config, stored, ctx, selected, tables_of_run, force=force, tables_given=tables_given
    )
    keep_failed = failed_after_extraction(store, ctx.run_id)
    of_run = store.extractions.of_run(ctx.run_id)
    flagged = {k for k, e in of_run.items() if e.force_reprocess}
    # flagged by a load that found the committed file damaged (`mark_corrupt`)
    damaged = {k for k in flagged if of_run[k].last_action == "corrupt"}
    jobs = [
        make_job(
            config,
            ctx,
            t,
            deep=deep,
            force=force or rewindow or t.key in flagged,
            force_reason=DAMAGED if t.key in damaged and not force else "forced",
            lease=lease,
        )
        for t in selected
    ]
    results: list[ExtractionResult] = []
    todo: list[TableJob] = []
    for job in jobs:
        verdict = check_committed(job)
        if is_early_commit(verdict):
            log.warning(
                "%s: %s",
                job.key,
                verdict.reason,
                extra={"table": job.key, "action": "unsettled_commit"},
            )
        if not needs_extraction(job, verdict):
            results.append(skipped_result(job, verdict))
        else:
            todo.append(job)
    check_window_once_in_lake(config, ctx, todo)
    if rewindow:
        moved = store.runs.move_window(ctx.run_id, ctx.window.iso())
        log.warning(
            "run %s moves from the window %s → %s to %s → %s (timezone %s): every table "
            "is extracted again in the new window",
            ctx.run_id,
            stored.window_start if stored else "",
            stored.window_end if stored else "",
            moved.window_start,
            moved.window_end,
            config.timezone,
        )
    store.runs.begin(ctx.run_id, config.pipeline, ctx.run_date.isoformat(), ctx.window.iso())
    # A forced extraction's flags are saved before its first table starts, all in one
    # transaction: killed part-way, it leaves the tables it had not committed flagged, so
    # a plain rerun re-extracts them rather than skip their old files (whose commit stands
    # until each is replaced) and report a mix of new and old tables as completed.
    store.extractions.ensure(ctx.run_id, [extraction_entry(t, ctx) for t in selected], force=force)
    if results:
        store.extractions.complete(ctx.run_id, [r.as_state() for r in results])
        for r in results:
            log.info(
                "%s: skipped (already extracted)",
                r.table_key,
                extra={"table": r.table_key, "action": "skipped"},
            )
            if progress:
                progress(r)

    def work(job: TableJob) -> ExtractionResult:
        store.extractions.start(ctx.run_id, job.key, job.window_iso)
        result = extract_table(
            job,
            # Retries of a transient error count as attempts in the state, like the first.
            on_attempt=lambda n: (
                store.extractions.start(ctx.run_id, job.key, job.window_iso) if n > 1 else None
            ),
        )
        if result.action == "failed":
            store.extractions.fail(ctx.run_id, job.key, result.error or "unknown error")
            log.error(
                "%s: failed: %s",
                job.key,
                result.error,
                extra={"table": job.key, "action": "failed"},
            )
        else:
            store.extractions.complete(ctx.run_id, [result.as_state()])
            log.info(
                "%s: %s %s rows in %.2fs -> %s",
                job.key,
                result.action,
                result.record_count,
                result.duration_seconds or 0.0,
                result.file_path,
                extra={"table": job.key, "action": result.action, "rows": result.record_count},
            )
            if result.null_cursor_rows:
                log.warning(
                    "%s: %s",
                    job.key,
                    null_cursor_note(result.null_cursor_rows),
                    extra={"table": job.key, "null_cursor_rows": result.null_cursor_rows},
                )
        return result

    pool_size = max(1, min(workers or config.workers, len(todo) or 1))
    if todo:
        with interruptible(ThreadPoolExecutor(pool_size, thread_name_prefix="extract")) as pool:
            futures = [pool.submit(work, job) for job in todo]
            for future in as_completed(futures):
                result = future.result()
                results.append(result)
                if progress:
                    progress(result)
    order = {t.key: i for i, t in enumerate(selected)}
    results.sort(key=lambda r: order[r.table_key])
    finished = store.runs.finish(ctx.run_id, keep_failed=keep_failed)
    if keep_failed and finished.completed_tables == finished.total_tables and not loads_next:
        # said to a lone extract; `run`, about to load it, would recommend itself
        log.warning(
            "run %s stays failed: its extractions are complete, but its load or validation "
            "failed and has not succeeded since; `onceflow run --date %s` loads it and "
            "marks it completed",
            ctx.run_id,
            ctx.run_date.isoformat(),
        )
    return ExtractSummary(run=finished, results=results)


def check_seams(config: Config, store: Store, ctx: RunContext) -> None:
    """Refuse (ConfigError, before anything is written) a run whose window would not tile
    with the stored windows of the pipeline's runs of the day before and the day after:
    the previous date's window must end where this one starts, the next date's start
    where this one ends. They differ only when the config's `timezone` changed between
    the extractions, and then the instants between are in no window (rows lost) or in
    two (rows loaded twice). Re-windowing this date (`--force-reprocess`) would move the
    seam, not close it: the ways out are the old timezone, or the whole history in the
    new one (docs/exactly-once.md, "Changing the timezone")."""
    day = ctx.run_date
    around = [(day - timedelta(days=1)).isoformat(), (day + timedelta(days=1)).isoformat()]
    neighbours = [
        StoredWindow.of(r.run_id, r.run_date, r.window_start, r.window_end)
        for r in store.runs.of_dates(config.pipeline, around)
        if r.run_id != ctx.run_id
    ]
    this = StoredWindow(ctx.run_id, day, ctx.window.start, ctx.window.end)
    seams = [s for s in broken_seams([*neighbours, this]) if ctx.run_id in (s.earlier, s.later)]
    if not seams:
        return
    start, end = ctx.window.iso()
    raise ConfigError(
        f"timezone: the window of {day} in {config.timezone} ({start} → {end}) does not meet "
        f"the stored windows of the dates beside it: {'; '.join(s.describe() for s in seams)}. "
        "Nothing was written. Put back the timezone those runs were extracted in, or extract "
        f"the whole history again in {config.timezone} into a new lake, warehouse and state "
        "(re-extracting only some dates moves the gap or overlap, it does not close it; see "
        'docs/exactly-once.md, "Changing the timezone")',
        field="timezone",
    )


def check_window_once_in_lake(config: Config, ctx: RunContext, jobs: Sequence[TableJob]) -> None:
    """Refuse (ConfigError, before anything is written) to extract a table whose window
    the lake already holds, committed, under another run id (another `--run-id` for a date
    that already ran, another pipeline's run ids, `extract --url`): the loader loads every
    committed file of a table, so a second file of one window would load its rows twice.
    `--force-reprocess` does not supersede the other file: it may be loaded already, under
    its own name, and only a re-extraction in place (same run id, same path) replaces its
    rows in the tables. So the way out is that run id."""
    clashes: list[tuple[TableJob, OtherCommit]] = [
        (job, other) for job in jobs for other in other_commits(job)
    ]
    if not clashes:
        return
    lake = config.resolve(config.lake)
    default = make_run_id(config.pipeline, ctx.run_date)
    named = "; ".join(
        f"{job.key} under run {other.run_id} ({_relative(other.path, lake)})"
        for job, other in clashes
    )
    owners = sorted({other.run_id for _, other in clashes})
    fix = " or ".join(
        "leave out --run-id" if rid == default else f"--run-id {rid}" for rid in owners
    )
    start, end = ctx.window.iso()
    # Without --run-id the run id is the date's own: what clashes is then the date, whose
    # window another run id holds, and the message says so rather than blame a --run-id
    # that was not given.
    field, whose = (
        ("run_id", "") if ctx.run_id != default else ("date", f", {ctx.run_date}'s own run id,")
    )
    raise ConfigError(
        f"--{field.replace('_', '-')}: the lake already holds the window {start} → {end} of "
        f"{named}; a second file of it under run {ctx.run_id}{whose} would be loaded too, "
        f"its rows twice. Nothing was written. Extract into that run instead ({fix}; add "
        "--force-reprocess to extract the window again)",
        field=field,
    )


def _relative(path: Path, lake: str) -> str:
    try:
        return str(path.relative_to(Path(lake)))
    except ValueError:
        return str(path)


def failed_after_extraction(store: Store, run_id: str) -> bool:
    """Whether a run was failed by a later step (its load or validation): it is failed
    with every extraction complete, or a file of its extractions failed to load. An
    extraction alone must not mark such a run completed; a load that succeeds does."""
    run = store.runs.get(run_id)
    if run is not None and run.status == RUN_LOADING:
        return True  # a run killed during its load or validation: neither finished
    if run is None or run.status != RUN_FAILED:
        return False
    if run.total_tables and run.completed_tables == run.total_tables:
        return True
    paths = [e.file_path or "" for e in store.extractions.of_run(run_id).values()]
    return bool(store.files.failed_among(paths))


def is_extraction_needed(
    config: Config,
    table_key: str,
    run_date: str | date | None = None,
    *,
    run_id: str | None = None,
    verify: str = "fast",
    store: Store | None = None,
) -> bool:
    """Whether the next extraction of the run date (default yesterday) would extract the
    table rather than skip it: the extractor's own decision (no committed, intact file for
    the window, a partial one, or flagged by `force_reprocess_table` or by a forced
    extraction that did not finish it), made without extracting, locking or writing
    anything; `verify="deep"` also compares checksums, as
    `extract(verify="deep")` does. `extract(force_reprocess=True)` extracts it whatever
    this says. An extraction `extract(tables=[table_key])` would refuse (a run id of
    another date, a window another run id holds, a changed timezone) raises the same
    ConfigError here: "yes, extract it" would be an answer the extractor then refuses."""
    if verify not in ("fast", "deep"):
        raise ConfigError(f"verify: expected 'fast' or 'deep', got {verify!r}", field="verify")
    store = store or open_store(config.state_url)
    ctx = run_context(config, run_date, run_id, store)
    table = config.table(table_key)
    stored = check_same_run(config, store, ctx)
    check_seams(config, store, ctx)
    of_run = store.extractions.of_run(ctx.run_id)
    rewindow = run_rewindowed(config, stored, ctx, [table], list(of_run), force=False)
    known = of_run.get(table.key)
    job = make_job(
        config,
        ctx,
        table,
        force=rewindow or bool(known and known.force_reprocess),
        deep=verify == "deep",
    )
    needed = needs_extraction(job, check_committed(job))
    if needed:
        check_window_once_in_lake(config, ctx, [job])
    return needed
