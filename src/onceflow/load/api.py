"""The load step's entry points: load, optimize, load_status, reset_load_state.

Each config table loads into its own Delta table under its own lease lock (`load:<target>`),
so tables load in parallel and two loaders of one table never interleave. Within a
table, files load in window order, each exactly once (see onceflow.load.loader).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from onceflow.config import Config, LoadConfig, TableConfig
from onceflow.errors import ConfigError, LoadError, LockError
from onceflow.lake import SourceFile, discover_path, discover_table_files, safe_component
from onceflow.load.loader import Gate, LoadTarget, TableLoadResult, load_table
from onceflow.state import Lease, Store, force_release, open_store
from onceflow.warehouse import open_table, table_uri
from onceflow.windows import parse_run_date, window_for

log = logging.getLogger(__name__)

SAFE_RETENTION_HOURS = 168


@dataclass
class LoadSummary:
    """The outcome of one `load`: each table's result."""

    results: list[TableLoadResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def counts(self) -> dict[str, int]:
        out = {"loaded": 0, "skipped": 0, "unchanged": 0, "failed": 0}
        for r in self.results:
            for k, v in r.counts().items():
                out[k] = out.get(k, 0) + v
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "counts": self.counts(),
            "tables": [r.as_dict() for r in self.results],
        }


def target_name(table: TableConfig) -> str:
    """The Delta table a config table loads into: `load.target`, else <source>/<name>."""
    if table.load.target:
        return table.load.target
    return f"{safe_component(table.source)}/{safe_component(table.display_name)}"


def load_target(config: Config, table: TableConfig) -> LoadTarget:
    """The LoadTarget of a config table."""
    name = target_name(table)
    uri = table_uri(config.resolve(config.warehouse), name)
    return LoadTarget(table.key, name, uri, table.load)


def config_targets(config: Config, tables: Sequence[str] | None = None) -> list[LoadTarget]:
    """The load targets of the selected tables (all by default)."""
    selected = [config.table(k) for k in tables] if tables else list(config.tables)
    return [load_target(config, t) for t in selected]


def _window_limit(config: Config, run_date: str | date | None) -> datetime | None:
    if run_date is None:
        return None
    return window_for(parse_run_date(run_date, config.zone), config.zone).end.astimezone(UTC)


def _until(files: list[SourceFile], limit: datetime | None) -> list[SourceFile]:
    if limit is None:
        return files
    out = []
    for f in files:
        end = datetime.fromisoformat(f.window_end).astimezone(UTC) if f.window_end else None
        if end is None or end <= limit:
            out.append(f)
    return out


def _run_one(
    store: Store,
    tgt: LoadTarget,
    files: list[SourceFile],
    lock_timeout: float,
    ttl: float,
    gate: Gate | None = None,
) -> TableLoadResult:
    try:
        with Lease(store, tgt.lock_name, ttl=ttl, timeout=lock_timeout) as lease:
            return load_table(
                store, tgt, files, token=lease.token, check_lock=lease.check, gate=gate
            )
    except LockError as error:
        return TableLoadResult(tgt.key, tgt.target, tgt.uri, tgt.cfg.strategy, error=str(error))


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
) -> LoadSummary:
    """Load committed extracted files into their Delta tables, each file exactly once.

    With `path` (a folder or glob of Parquet files) and `target`, load those files into one
    table on their own (standalone use); otherwise every selected config table's files in
    the lake, up to `run_date`'s window when given. Each table is loaded under its own
    lease lock, waiting up to `lock_timeout` seconds for it; `force_unlock` first releases
    those tables' locks whoever holds them. `gate` (the validate step's pre-load rules,
    passed in by the pipeline) sees each file's rows before its commit and fails the file
    by raising LoadError.
    """
    store = store or open_store(config.state_url)
    limit = _window_limit(config, run_date)
    jobs: list[tuple[LoadTarget, list[SourceFile]]] = []
    if path is not None:
        if not target:
            raise ConfigError("--path needs --target (the Delta table to load into)")
        cfg = LoadConfig(
            strategy=strategy or "append",  # type: ignore[arg-type]
            primary_key=list(primary_key or []),
        )
        tgt = LoadTarget(target, target, table_uri(config.resolve(config.warehouse), target), cfg)
        jobs.append((tgt, _until(discover_path(path), limit)))
    else:
        if target or strategy:
            raise ConfigError(
                "--target and --strategy go with --path; for config tables set "
                "`load: {target: ..., strategy: ...}` in onceflow.yml"
            )
        if not config.tables:
            raise ConfigError("tables: the config lists no tables; add one or use --path")
        lake = config.resolve(config.lake)
        for tgt in config_targets(config, tables):
            table = config.table(tgt.key)
            files = discover_table_files(lake, table.source, table.display_name)
            jobs.append((tgt, _until(files, limit)))
    if force_unlock:
        for tgt, _files in jobs:
            force_release(store, tgt.lock_name)
    ttl = config.lock_ttl_seconds
    pool = max(1, min(workers or config.workers, len(jobs)))
    with ThreadPoolExecutor(max_workers=pool, thread_name_prefix="load") as executor:
        results = list(
            executor.map(lambda job: _run_one(store, job[0], job[1], lock_timeout, ttl, gate), jobs)
        )
    return LoadSummary(results)


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
    versions, and a writer still running, could lose files).
    """
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
    out = []
    for tgt in config_targets(config, tables):
        dt = open_table(tgt.uri)
        if dt is None:
            out.append({"table": tgt.key, "uri": tgt.uri, "skipped": "no table yet"})
            continue
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
    """For `onceflow status`: per table, tracker counts, Delta version and app txn version."""
    store = store or open_store(config.state_url)
    out = []
    for tgt in config_targets(config, tables):
        try:
            dt, error = open_table(tgt.uri), None
        except LoadError as unreadable:
            dt, error = None, str(unreadable)
        failed = [
            {"file": f.file_path, "error": f.error, "retries": f.retry_count}
            for f in store.files.find(tgt.target, "failed")
        ]
        row: dict[str, Any] = {}
        out.append(row)
        row.update(
            {
                "table": tgt.key,
                "target": tgt.target,
                "uri": tgt.uri,
                "strategy": tgt.cfg.strategy,
                "files": store.files.counts(tgt.target),
                "delta_version": None if dt is None else dt.version(),
                "loaded_sequence": None if dt is None else dt.transaction_version(tgt.app_id),
                "failed_files": failed,
                "lock": (h.describe() if (h := store.locks.holder(tgt.lock_name)) else None),
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
    n = 0
    for tgt in config_targets(config, tables):
        n += store.files.reset_failed(tgt.target) if failed_only else store.files.forget(tgt.target)
    return n
