"""Seed 002's `DataProcessor` as a thin adapter over `Pipeline.load` and its lock."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from onceflow.config import Config, as_config
from onceflow.errors import ConfigError
from onceflow.load import LoadSummary
from onceflow.pipeline import Pipeline
from onceflow.state import Lease

#: A load outcome of a file this call committed (the loader's own test for "wrote").
_PROCESSED = ("loaded", "replaced", "replayed", "unchanged", "superseded")


class _PipelineLock:
    """`with processor.pipeline_lock:`: the pipeline lock for the block (LockError when
    another holder has it); `process_all_tables()` inside the block runs under it."""

    def __init__(self, processor: DataProcessor) -> None:
        self._processor = processor
        self._lease: Lease | None = None

    def __enter__(self) -> Lease:
        processor = self._processor
        lease = processor.pipeline.lock(timeout=processor.lock_timeout)
        lease.__enter__()
        self._lease = processor._held = lease
        return lease

    def __exit__(self, *exc: object) -> None:
        lease, self._lease = self._lease, None
        self._processor._held = None
        if lease is not None:
            lease.__exit__(*exc)


class DataProcessor:
    """Seed 002's loader: every configured table's committed lake files into its Delta
    table, exactly once (`Pipeline.load`, with the pre-load rules), under the pipeline
    lock.

    `config` is a Config, the path of onceflow.yml (default ./onceflow.yml) or its
    mapping, the seed's spellings (`table_name`, `loading_strategy`, `primary_keys`...)
    read as in a file. `lock_timeout` is how long a call waits for the pipeline lock
    (default 0: LockError at once, naming the holder).
    """

    def __init__(
        self,
        config: Config | str | Path | Mapping[str, Any] | None = None,
        *,
        lock_timeout: float = 0.0,
    ) -> None:
        if lock_timeout < 0:
            raise ConfigError("lock_timeout: must be 0 or more seconds", field="lock_timeout")
        #: The Pipeline every call goes through.
        self.pipeline = Pipeline(as_config(config))
        self.config = self.pipeline.config
        self.lock_timeout = lock_timeout
        self._held: Lease | None = None
        #: The onceflow summary of the last `process_all_tables()`.
        self.last_summary: LoadSummary | None = None

    @property
    def pipeline_lock(self) -> _PipelineLock:
        """The pipeline lock as a context manager: `with processor.pipeline_lock: ...`
        keeps runs, extractions and other processors out of the block."""
        return _PipelineLock(self)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self._held is not None:  # inside `with processor.pipeline_lock:`
            self._held.check()
            yield
            return
        with self.pipeline_lock:
            yield

    def process_all_tables(self) -> dict[str, Any]:
        """Load every configured table under the pipeline lock; the seed's totals with
        their true values (see `load_results`), and onceflow's summary under `load`."""
        with self._locked():
            summary = self.pipeline.load(lock_timeout=self.lock_timeout)
        self.last_summary = summary
        return load_results(summary)


def load_results(summary: LoadSummary) -> dict[str, Any]:
    """A load's outcome under the seed's keys: `total_files_discovered` (the files the
    loader saw in the lake, every outcome counted: the same on every rerun),
    `total_files_processed` (the files this call committed to a table: 0 on a rerun with
    nothing new), `total_files_skipped` (held already), `total_files_failed`,
    `total_files_waiting` (behind a gap or not committed by their extraction), the tables
    that are complete and failed, `success`, and `load`, onceflow's summary."""
    counts = summary.counts()
    return {
        "success": summary.ok,
        "total_tables": len(summary.results),
        "successful_tables": [r.key for r in summary.results if r.ok],
        "failed_tables": [r.key for r in summary.results if not r.ok],
        "total_files_discovered": sum(len(r.files) for r in summary.results),
        "total_files_processed": sum(counts.get(a, 0) for a in _PROCESSED),
        "total_files_skipped": counts.get("skipped", 0),
        "total_files_failed": counts.get("failed", 0),
        "total_files_waiting": counts.get("waiting", 0) + counts.get("uncommitted", 0),
        "total_records_processed": sum(r.rows for r in summary.results),
        "load": summary.as_dict(),
    }
