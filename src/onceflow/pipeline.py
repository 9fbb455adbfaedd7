"""A run of the pipeline: extract (then load and validate) every table, in parallel."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from onceflow.config import Config, TableConfig
from onceflow.errors import ConfigError
from onceflow.extract.extractor import (
    ExtractionResult,
    TableJob,
    check_committed,
    extract_table,
    skipped_result,
)
from onceflow.state import RunRecord, StateStore, open_store
from onceflow.windows import Window, check_run_id, make_run_id, parse_run_date, window_for

if TYPE_CHECKING:
    from onceflow.state.locks import Lease

log = logging.getLogger("onceflow.pipeline")

Progress = Callable[[ExtractionResult], None]


@dataclass
class RunSummary:
    """The outcome of one command: the run and each table's result."""

    run: RunRecord
    results: list[ExtractionResult] = field(default_factory=list)
    load: Any = None  # the LoadSummary of `run` (onceflow.pipeline_load)

    @property
    def ok(self) -> bool:
        """True when every selected table is committed (and loaded, for `run`)."""
        loaded = self.load is None or bool(self.load.ok)
        return loaded and all(r.action != "failed" for r in self.results)

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
            "load": None if self.load is None else self.load.as_dict(),
        }


@dataclass(frozen=True)
class RunContext:
    """The (pipeline, run date) a command acts on."""

    run_id: str
    run_date: date
    window: Window


def pipeline_lock_name(config: Config) -> str:
    """The lock a run or an extraction of this pipeline holds."""
    return f"pipeline:{config.pipeline}"


def pipeline_lock(
    config: Config, *, timeout: float = 0.0, store: StateStore | None = None
) -> Lease:
    """The pipeline lock as a context manager (`with pipeline_lock(config):`), for work of
    your own that must not overlap a run; it waits up to `timeout` s, then raises LockError."""
    from onceflow.state.locks import Lease

    return Lease(
        store or open_store(config.state_url),
        pipeline_lock_name(config),
        ttl=config.lock_ttl_seconds,
        timeout=timeout,
    )


def run_context(
    config: Config, run_date: str | date | None = None, run_id: str | None = None
) -> RunContext:
    """Resolve the run date (default yesterday), its window and its deterministic run id."""
    day = parse_run_date(run_date, config.zone)
    rid = check_run_id(run_id) if run_id else make_run_id(config.pipeline, day)
    return RunContext(rid, day, window_for(day, config.zone))


def select_tables(config: Config, keys: Sequence[str] | None) -> list[TableConfig]:
    """The tables named by --tables (keys or unique names), or all of them."""
    if not config.tables:
        raise ConfigError("tables: the config lists no tables; add at least one under `tables:`")
    if not keys:
        return list(config.tables)
    return [config.table(k) for k in keys]


def extraction_entry(table: TableConfig, ctx: RunContext) -> dict[str, Any]:
    """The state row that registers a table in a run before its first attempt."""
    start, end = ctx.window.iso()
    return {
        "table_key": table.key,
        "source": table.source,
        "table_name": table.display_name,
        "mode": table.extract.mode,
        "window_start": start,
        "window_end": end,
    }


def source_url(config: Config, table: TableConfig) -> str:
    """The table's source URL, with a relative SQLite path resolved against the config."""
    url = config.sources[table.source].url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return "sqlite:///" + config.resolve(url[len("sqlite:///") :])
    return url


def make_job(
    config: Config, ctx: RunContext, table: TableConfig, *, force: bool = False, deep: bool = False
) -> TableJob:
    """The extraction job of one table in a run."""
    return TableJob(
        table=table,
        source=config.sources[table.source],
        source_url=source_url(config, table),
        run_id=ctx.run_id,
        run_date=ctx.run_date,
        window=ctx.window,
        lake=config.resolve(config.lake),
        zone=config.zone,
        compression=config.compression,
        retry=config.retry,
        deep_verify=deep,
        force=force,
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
    store: StateStore | None = None,
    progress: Progress | None = None,
    lock_timeout: float | None = None,
    force_unlock: bool = False,
) -> RunSummary:
    """Extract the selected tables for one run; committed tables are skipped.

    With `lock_timeout` (the CLI always gives one) the pipeline lock is held throughout,
    waiting up to that many seconds for it, so two extractions of a run never race;
    `force_unlock` first releases it whoever holds it.
    """
    if lock_timeout is not None or force_unlock:
        from onceflow.pipeline_load import force_unlock as release
        from onceflow.state.locks import Lease

        store = store or open_store(config.state_url)
        if force_unlock:
            release(config, yes=True, name=pipeline_lock_name(config), store=store)
        lease = Lease(
            store,
            pipeline_lock_name(config),
            ttl=config.lock_ttl_seconds,
            timeout=lock_timeout or 0.0,
        )
        with lease:
            return extract(
                config,
                run_date,
                tables=tables,
                force_reprocess=force_reprocess,
                workers=workers,
                verify=verify,
                run_id=run_id,
                store=store,
                progress=progress,
            )
    if verify not in ("fast", "deep"):
        raise ConfigError(f"--verify: expected 'fast' or 'deep', got {verify!r}")
    ctx = run_context(config, run_date, run_id)
    selected = select_tables(config, tables)
    store = store or open_store(config.state_url)
    store.begin_run(ctx.run_id, config.pipeline, ctx.run_date.isoformat(), ctx.window.iso())
    store.ensure_extractions(ctx.run_id, [extraction_entry(t, ctx) for t in selected])
    known = store.extractions(ctx.run_id)
    jobs = [
        make_job(
            config,
            ctx,
            t,
            deep=verify == "deep",
            force=force_reprocess or known[t.key].force_reprocess,
        )
        for t in selected
    ]

    results: list[ExtractionResult] = []
    todo: list[TableJob] = []
    for job in jobs:
        verdict = check_committed(job)
        if verdict.complete and not job.force:
            results.append(skipped_result(job, verdict))
        else:
            todo.append(job)
    if results:
        store.mark_completed(ctx.run_id, [r.as_state() for r in results])
        for r in results:
            log.info(
                "%s: skipped (already extracted)",
                r.table_key,
                extra={"table": r.table_key, "action": "skipped"},
            )
            if progress:
                progress(r)

    def work(job: TableJob) -> ExtractionResult:
        store.mark_running(ctx.run_id, job.key, job.window_iso)
        result = extract_table(
            job,
            # Retries of a transient error count as attempts in the state, like the first.
            on_attempt=lambda n: (
                store.mark_running(ctx.run_id, job.key, job.window_iso) if n > 1 else None
            ),
        )
        if result.action == "failed":
            store.mark_failed(ctx.run_id, job.key, result.error or "unknown error")
            log.error(
                "%s: failed: %s",
                job.key,
                result.error,
                extra={"table": job.key, "action": "failed"},
            )
        else:
            store.mark_completed(ctx.run_id, [result.as_state()])
            log.info(
                "%s: %s %s rows in %.2fs -> %s",
                job.key,
                result.action,
                result.record_count,
                result.duration_seconds or 0.0,
                result.file_path,
                extra={"table": job.key, "action": result.action, "rows": result.record_count},
            )
        return result

    pool_size = max(1, min(workers or config.workers, len(todo) or 1))
    if todo:
        with ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="extract") as pool:
            futures = [pool.submit(work, job) for job in todo]
            for future in as_completed(futures):
                result = future.result()
                results.append(result)
                if progress:
                    progress(result)
    order = {t.key: i for i, t in enumerate(selected)}
    results.sort(key=lambda r: order[r.table_key])
    return RunSummary(run=store.finish_run(ctx.run_id), results=results)


def run(
    config: Config,
    run_date: str | date | None = None,
    *,
    lock_timeout: float = 0.0,
    force_unlock: bool = False,
    **options: Any,
) -> RunSummary:
    """Run the whole pipeline for a run date: extract, then load, under the pipeline lock.

    A second run of the same pipeline waits up to `lock_timeout` seconds for the lock,
    then raises LockError naming the holder. `force_unlock` first releases the pipeline's
    locks (its own and its tables') whoever holds them. A run whose load fails is marked
    failed, though every extraction completed.
    """
    from onceflow.pipeline_load import config_lock_names, load
    from onceflow.pipeline_load import force_unlock as release
    from onceflow.state.locks import Lease

    store = options.pop("store", None) or open_store(config.state_url)
    if force_unlock:
        # only this pipeline's own locks: a shared state store holds other pipelines' too
        for name in config_lock_names(config):
            release(config, yes=True, name=name, store=store)
    lease = Lease(
        store, pipeline_lock_name(config), ttl=config.lock_ttl_seconds, timeout=lock_timeout
    )
    with lease:
        summary = extract(config, run_date, store=store, **options)
        summary.load = load(
            config,
            summary.run.run_date,
            tables=options.get("tables"),
            lock_timeout=lock_timeout,
            store=store,
        )
        if not summary.load.ok:
            summary.run = store.mark_run_failed(summary.run.run_id)
    return summary
