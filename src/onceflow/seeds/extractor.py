"""The seed extractors (seeds 000 and 001) as thin adapters over `Pipeline.extract`."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from onceflow.config import Config, as_config, config_from_dict, oracle_url
from onceflow.consistency import pipeline_at_rest
from onceflow.errors import ConfigError
from onceflow.extract import ExtractSummary, TableSelection
from onceflow.extract.tables_file import TableEntry
from onceflow.pipeline import Pipeline
from onceflow.seeds.tables import (
    _DATED_RUN_ID,
    SEED_DATABRICKS_LAKE,
    SEED_LAKE,
    SEED_STATE_DIR,
    SINGLE_TABLE_PIPELINE,
    _absolute,
    _run_date_of,
    _SeedTable,
    _state_url,
    seed_table,
)
from onceflow.state import Store, open_store

log = logging.getLogger(__name__)


@dataclass
class _Settings:
    """What the constructor's parameters say, before any table is known."""

    url: str | None
    config: Config | None
    lake: str | None
    state: str | None
    workers: int | None
    retries: int | None = None
    pipeline: str = SINGLE_TABLE_PIPELINE
    run_id: str | None = None
    databricks: bool = False
    tables: dict[str, _SeedTable] = field(default_factory=dict)


class DataExtractor:
    """Seed 001's extractor: tables to Parquet, skipped when committed, by onceflow's
    extract step (`Pipeline.extract`).

    Connection: the seed's `oracle_host`, `oracle_port`, `oracle_service`, `oracle_user`,
    `oracle_password` (an `oracle+oracledb://` URL, the password kept secret), or any
    source by `url=` (postgresql://, mysql://, sqlite:///...); or neither, and the
    sources of onceflow.yml (`config=`, a path, Config or mapping; default
    ./onceflow.yml). `output_base_path` is the lake (default `data`, the seed's);
    `max_workers` the extraction's threads. Results: `extract_table` -> bool (extracted
    or skipped: True), `extract_tables_parallel` -> {table key: bool}; the last call's
    onceflow summary is `last_summary`.
    """

    _default_lake = SEED_LAKE

    def __init__(
        self,
        oracle_host: str | None = None,
        oracle_port: str | int | None = None,
        oracle_service: str | None = None,
        oracle_user: str | None = None,
        oracle_password: str | None = None,
        output_base_path: str | None = None,
        max_workers: int | None = None,
        *,
        url: str | None = None,
        config: Config | str | Path | Mapping[str, Any] | None = None,
        state: str | None = None,
    ) -> None:
        given = [
            n
            for n, v in (
                ("oracle_port", oracle_port),
                ("oracle_service", oracle_service),
                ("oracle_user", oracle_user),
                ("oracle_password", oracle_password),
            )
            if v is not None
        ]
        if oracle_host and url:
            raise ConfigError("give either oracle_host=... or url=..., not both")
        if given and not oracle_host:
            raise ConfigError(f"{', '.join(given)} need oracle_host (the Oracle host)")
        if (oracle_host or url) and config is not None:
            raise ConfigError(
                "give a connection (oracle_host=... or url=...) or config=onceflow.yml, not "
                "both: with a config, its sources are the connections"
            )
        if oracle_host:
            url = oracle_url(
                oracle_host,
                oracle_port,
                oracle_user,
                oracle_password,
                oracle_service,
                options={
                    "host": "oracle_host",
                    "user": "oracle_user=NAME",
                    "service": 'oracle_service="NAME"',
                },
            )
        if max_workers is not None and (isinstance(max_workers, bool) or max_workers < 1):
            raise ConfigError(f"max_workers: expected 1 or more, got {max_workers!r}")
        if url is None and config is None and not Path("onceflow.yml").is_file():
            raise ConfigError(
                f"{type(self).__name__}: no connection and no onceflow.yml in "
                f"{os.getcwd()}: give oracle_host=... (with oracle_service=, oracle_user=, "
                "oracle_password=), url=... (any source URL), or config='path/onceflow.yml' "
                "(its sources)"
            )
        self._settings = _Settings(
            url=url,
            config=None if url else as_config(config),
            lake=output_base_path,
            state=state,
            workers=max_workers,
        )
        self._store: Store | None = None
        #: The onceflow summary of the last extraction (each table's result, the run).
        self.last_summary: ExtractSummary | None = None

    # -- the config and pipeline the calls run on ----------------------------------------

    @property
    def config(self) -> Config:
        """The onceflow config the calls run on (with the tables seen so far)."""
        s = self._settings
        if s.config is not None:
            update: dict[str, Any] = {}
            if s.lake is not None:
                update["lake"] = _absolute(s.lake)
            if s.state is not None:
                update["state"] = s.state
            if s.retries is not None:
                update["retry"] = s.config.retry.model_copy(update={"max_attempts": s.retries})
            return s.config.model_copy(update=update) if update else s.config
        data: dict[str, Any] = {
            "pipeline": s.pipeline,
            "lake": s.lake or self._default_lake,
            "sources": {t.source: {"url": s.url} for t in s.tables.values()},
            "tables": [t.table for t in s.tables.values()],
        }
        if s.state is not None:
            data["state"] = s.state
        if s.retries is not None:
            data["retry"] = {"max_attempts": s.retries}
        # extraction only: its lake is compared with no warehouse
        return config_from_dict(
            data, base_dir=os.getcwd(), origin=type(self).__name__, one_step=True
        )

    @property
    def pipeline(self) -> Pipeline:
        """The Pipeline of `config`, on one state store for the extractor's life."""
        config = self.config
        if self._store is None:
            self._store = open_store(config.state_url)
        return Pipeline(config, self._store)

    def _remember(self, tables: Sequence[_SeedTable]) -> TableSelection:
        """Check the tables against the config (config mode), or against the configs of
        them seen before and add them to the extractor's (connection mode); the keys to
        extract, with the entries the extract step checks `is_full_extract` by."""
        s = self._settings
        if s.config is not None:
            for t in tables:
                self._check_against_config(s.config, t)
            return TableSelection(
                dict.fromkeys(t.key for t in tables),
                [TableEntry(t.key, t.where, t.full) for t in tables],
            )
        seen = dict(s.tables)
        for t in tables:
            known = seen.setdefault(t.key, t)
            if known.table != t.table:
                raise ConfigError(
                    f"{t.where}: says otherwise than {known.where} ({known.table} vs "
                    f"{t.table}); a table's lake never mixes windows extracted two ways"
                )
        s.tables = seen
        return TableSelection(dict.fromkeys(t.key for t in tables))

    @staticmethod
    def _check_against_config(config: Config, t: _SeedTable) -> None:
        table = config.table(t.key)
        said = [
            (name, value, own)
            for name, value, own in (
                ("incremental_column", t.cursor, table.extract.cursor),
                ("custom_query", t.query, table.query),
            )
            if value is not None and value != own
        ]
        if said:
            name, value, own = said[0]
            raise ConfigError(
                f"{t.where}: {name}: {value!r}, but the config has {own!r} for {table.key}; "
                "make them agree (the config decides how a table is extracted)",
                field=name,
            )

    def _runs(
        self, tables: Sequence[_SeedTable]
    ) -> dict[tuple[date | None, str | None], list[_SeedTable]]:
        """The tables grouped by the run they belong to: (run date, run id)."""
        s = self._settings
        groups: dict[tuple[date | None, str | None], list[_SeedTable]] = {}
        for t in tables:
            # a run id's date is the extraction's to decide (`run_context`): the stored
            # run's own date when the store knows the run, else the date its name ends in
            groups.setdefault((t.run_date, t.run_id or s.run_id), []).append(t)
        return groups

    def _extract(self, tables: Sequence[_SeedTable], force_reprocess: bool) -> dict[str, bool]:
        if not isinstance(force_reprocess, bool):
            raise ConfigError(f"force_reprocess: expected True or False, got {force_reprocess!r}")
        selection = self._remember(tables)
        pipeline = self.pipeline
        if self._settings.databricks:
            pipeline.require_databricks(warehouse=False)  # an extraction writes the lake only
        outcome: dict[str, bool] = {}
        for (day, run_id), group in self._runs(tables).items():
            keys = {t.key for t in group}
            chosen = TableSelection(
                [k for k in selection if k in keys], [e for e in selection.entries if e.key in keys]
            )
            with _python_terms(run_id, extraction_date=True):
                summary = pipeline.extract(
                    day,
                    tables=chosen,
                    force_reprocess=force_reprocess,
                    workers=self._settings.workers,
                    run_id=run_id,
                )
            self.last_summary = summary
            outcome.update({r.table_key: r.action != "failed" for r in summary.results})
        return outcome

    # -- seed 001 ----------------------------------------------------------------------

    def extract_table(
        self,
        source_name: str,
        table_name: str,
        schema_name: str | None = None,
        incremental_column: str | None = None,
        extraction_date: date | datetime | str | None = None,
        is_full_extract: bool | None = None,
        custom_query: str | None = None,
        run_id: str | None = None,
        force_reprocess: bool = False,
        flashback_enabled: bool = False,
        flashback_timestamp: datetime | None = None,
    ) -> bool:
        """Extract one table for its run date (default yesterday): True when its file is
        committed (extracted now, or skipped as already committed and intact), False when
        it failed (the error is in `last_summary` and the log). `force_reprocess` extracts
        it again whatever is committed."""
        given = {
            "source_name": source_name,
            "table_name": table_name,
            "schema_name": schema_name,
            "incremental_column": incremental_column,
            "extraction_date": extraction_date,
            "is_full_extract": is_full_extract,
            "custom_query": custom_query,
            "run_id": run_id,
            "flashback_enabled": flashback_enabled or None,
            "flashback_timestamp": flashback_timestamp,
        }
        entry = {k: v for k, v in given.items() if v is not None}
        table = seed_table(entry, "extract_table")
        return self._extract([table], force_reprocess)[table.key]

    def extract_tables_parallel(
        self, table_configs: Sequence[Mapping[str, Any]], force_reprocess: bool = False
    ) -> dict[str, bool]:
        """Extract the tables in parallel (`max_workers` threads): {table key: True when
        committed, False when failed}. Committed tables are skipped, so a rerun extracts
        only what failed; `force_reprocess` extracts every one again."""
        if isinstance(table_configs, str | bytes | Mapping) or not table_configs:
            raise ConfigError(
                "table_configs: expected a non-empty list of table configs "
                "({'source_name': ..., 'table_name': ..., ...})"
            )
        tables = [seed_table(t, f"table_configs[{i}]") for i, t in enumerate(table_configs)]
        return self._extract(tables, force_reprocess)

    #: Seed 000's name for the same call.
    extract_tables = extract_tables_parallel

    # -- seed 000: the run's state ------------------------------------------------------

    def _run_args(self) -> dict[str, Any]:
        """The run a report is about: the extractor's (see `_run`), else the pipeline's
        latest."""
        run_id = self._run()[1]
        return {"run_id": run_id} if run_id else {}

    def _run(self) -> tuple[str | None, str | None]:
        """(run date, run id) of the extractor's run: its `run_id` (whose date the
        extraction resolves: the stored run's, else the lake's, else the one its name
        ends in), else the last run it extracted, else yesterday's."""
        s = self._settings
        if s.run_id:
            return None, s.run_id
        if self.last_summary is not None:
            run = self.last_summary.run
            return run.run_date, run.run_id
        return None, None

    def get_pipeline_status(self) -> dict[str, Any]:
        """The run's progress (`Pipeline.status`): `completion_rate`, `status_counts`,
        `restart_count`, each table's extraction, loads, validations and locks."""
        return self.pipeline.status(**self._run_args())

    get_pipeline_progress = get_pipeline_status

    def get_extraction_summary(self) -> dict[str, Any]:
        """The run's status breakdown (`Pipeline.extraction_summary`)."""
        return self.pipeline.extraction_summary(**self._run_args())

    def create_extraction_report(self) -> dict[str, Any]:
        """The summary with every table's record (`Pipeline.extraction_report`)."""
        return self.pipeline.extraction_report(**self._run_args())

    def validate_extraction_window_consistency(self) -> dict[str, Any]:
        """Every extraction whose window differs from its run's (`Pipeline.validate_windows`)."""
        return self.pipeline.validate_windows(**self._run_args())

    @contextmanager
    def _at_rest(self) -> Iterator[None]:
        """The locks `reset-state` holds: no run, extraction or load of the pipeline going
        on (LockError naming the holder otherwise), since one would write over the reset,
        or miss a flag set while it read the run's tables."""
        with pipeline_at_rest(self.pipeline.config, self.pipeline.store):
            yield

    def reset_failed_extractions(self) -> int:
        """Put the run's failed extractions back to pending; how many."""
        with self._at_rest():
            return self.pipeline.reset_failed_extractions(**self._run_args())

    def force_reprocess_table(self, table_key: str) -> bool:
        """Flag a table of the extractor's run (see `_run`) for re-extraction by the next
        call, whatever is committed; False when it is not in the run. The table must be one
        this extractor has extracted (connection mode) or one of the config's."""
        s = self._settings
        if s.config is None and table_key not in s.tables:
            known = ", ".join(s.tables) or "none yet"
            raise ConfigError(
                f"table {table_key!r} is not one this extractor knows (tables: {known}); "
                "extract it once with extract_table(...) or extract_tables([...]) first"
            )
        day, run_id = self._run()
        with _python_terms(), self._at_rest():
            return self.pipeline.force_reprocess_table(table_key, day, run_id=run_id)

    def is_extraction_needed(self, table_key: str) -> bool:
        """Whether the next call would extract the table rather than skip it."""
        day, run_id = self._run()
        with _python_terms():
            return self.pipeline.is_extraction_needed(table_key, day, run_id=run_id)

    def close(self) -> None:
        """Close the state store connection."""
        if self._store is not None:
            self._store.close()
            self._store = None


class DatabricksDataExtractor(DataExtractor):
    """Seed 001's Databricks extractor: the same extraction, refused before anything is
    written unless the lake is Databricks storage (`--databricks`).

    `output_base_path` defaults to `/dbfs/data`, and a relative one is under `/dbfs/` (the
    seed's rule on a cluster); `unity_catalog_volume="catalog/schema/volume"` (or dotted)
    writes to `/Volumes/catalog/schema/volume` instead, as the seed did. Sources are read
    by onceflow's Python drivers, not Spark: `use_existing_spark` cannot be honoured and is
    refused when given.
    """

    _default_lake = SEED_DATABRICKS_LAKE

    def __init__(
        self,
        oracle_host: str | None = None,
        oracle_port: str | int | None = None,
        oracle_service: str | None = None,
        oracle_user: str | None = None,
        oracle_password: str | None = None,
        output_base_path: str | None = None,
        max_workers: int | None = None,
        use_existing_spark: bool | None = None,
        unity_catalog_volume: str | None = None,
        *,
        url: str | None = None,
        config: Config | str | Path | Mapping[str, Any] | None = None,
        state: str | None = None,
    ) -> None:
        if use_existing_spark is not None:
            raise ConfigError(
                "use_existing_spark: onceflow reads sources with Python drivers (ADBC, "
                "ConnectorX, SQLAlchemy), not Spark, so there is no Spark session to reuse "
                "or create; leave it out",
                field="use_existing_spark",
            )
        super().__init__(
            oracle_host,
            oracle_port,
            oracle_service,
            oracle_user,
            oracle_password,
            databricks_lake(output_base_path, unity_catalog_volume),
            max_workers,
            url=url,
            config=config,
            state=state,
        )
        self.unity_catalog_volume = unity_catalog_volume
        self._settings.databricks = True


def databricks_lake(output_base_path: str | None, unity_catalog_volume: str | None) -> str | None:
    """The lake of the seed's Databricks extractor: the Unity Catalog volume when given
    (`/Volumes/<catalog>/<schema>/<volume>`), else `output_base_path`, relative under
    `/dbfs/`; None: the class default (/dbfs/data), or the config's lake."""
    if unity_catalog_volume:
        parts = [p for p in re.split(r"[./]", unity_catalog_volume.strip("/")) if p]
        if unity_catalog_volume.startswith("/Volumes/"):
            parts = parts[1:]
        if len(parts) != 3:
            raise ConfigError(
                f"unity_catalog_volume: expected catalog/schema/volume, got "
                f"{unity_catalog_volume!r}",
                field="unity_catalog_volume",
            )
        if output_base_path:
            log.info(
                "unity_catalog_volume %s is the lake; output_base_path %s is not used (as "
                "in the seed)",
                unity_catalog_volume,
                output_base_path,
            )
        return "/Volumes/" + "/".join(parts)
    # relative: under /dbfs/ (the seed's rule on a cluster); a URL or dbfs: as given
    if output_base_path is None or output_base_path.startswith(("/", "dbfs:")):
        return output_base_path
    return output_base_path if "://" in output_base_path else "/dbfs/" + output_base_path


class StatefulDataExtractor(DataExtractor):
    """Seed 000's extractor with state: the same extraction, for one run named by
    `run_id` (`daily_extract_20250123` is the run of 2025-01-23; a run id without a date
    is a run of yesterday's window), recorded in the SQLite store in `state_dir`
    (default `state`; with onceflow.yml, the config's store unless given). A new
    extractor with the same run id resumes the run: committed tables are skipped.

    `max_retry_attempts` is onceflow's `retry.max_attempts`: attempts at a table within
    one extraction, on transient errors; a failed table is extracted again by every
    later call (no cap across calls). `enable_checkpoints=False` cannot be honoured
    (every state change is committed at once) and is refused.
    """

    def __init__(
        self,
        oracle_host: str | None = None,
        oracle_port: str | int | None = None,
        oracle_service: str | None = None,
        oracle_user: str | None = None,
        oracle_password: str | None = None,
        output_base_path: str | None = None,
        max_workers: int | None = None,
        state_dir: str | None = None,
        enable_checkpoints: bool = True,
        max_retry_attempts: int | None = None,
        run_id: str | None = None,
        *,
        url: str | None = None,
        config: Config | str | Path | Mapping[str, Any] | None = None,
    ) -> None:
        _stateful_checks(enable_checkpoints, max_retry_attempts, run_id)
        connection = bool(oracle_host or url)
        if state_dir is None and connection:
            state_dir = SEED_STATE_DIR
        super().__init__(
            oracle_host,
            oracle_port,
            oracle_service,
            oracle_user,
            oracle_password,
            output_base_path,
            max_workers,
            url=url,
            config=config,
            state=_state_url(state_dir) if state_dir is not None else None,
        )
        _stateful_settings(self._settings, max_retry_attempts, run_id)
        self.run_id = run_id


class StatefulDatabricksDataExtractor(DatabricksDataExtractor):
    """Seed 000's Databricks extractor with state: `DatabricksDataExtractor`'s storage
    rules and `StatefulDataExtractor`'s run (`run_id`, `state_dir`, ...)."""

    def __init__(
        self,
        oracle_host: str | None = None,
        oracle_port: str | int | None = None,
        oracle_service: str | None = None,
        oracle_user: str | None = None,
        oracle_password: str | None = None,
        output_base_path: str | None = None,
        max_workers: int | None = None,
        use_existing_spark: bool | None = None,
        unity_catalog_volume: str | None = None,
        state_dir: str | None = None,
        enable_checkpoints: bool = True,
        max_retry_attempts: int | None = None,
        run_id: str | None = None,
        *,
        url: str | None = None,
        config: Config | str | Path | Mapping[str, Any] | None = None,
    ) -> None:
        _stateful_checks(enable_checkpoints, max_retry_attempts, run_id)
        if state_dir is None and (oracle_host or url):
            state_dir = SEED_STATE_DIR
        super().__init__(
            oracle_host,
            oracle_port,
            oracle_service,
            oracle_user,
            oracle_password,
            output_base_path,
            max_workers,
            use_existing_spark,
            unity_catalog_volume,
            url=url,
            config=config,
            state=_state_url(state_dir) if state_dir is not None else None,
        )
        _stateful_settings(self._settings, max_retry_attempts, run_id)
        self.run_id = run_id


def _stateful_checks(
    enable_checkpoints: bool, max_retry_attempts: int | None, run_id: str | None
) -> None:
    if enable_checkpoints is not True:
        raise ConfigError(
            "enable_checkpoints: onceflow commits every state change to the state store at "
            "once (that is how a run resumes); it cannot be turned off: leave it out",
            field="enable_checkpoints",
        )
    if max_retry_attempts is not None and (
        isinstance(max_retry_attempts, bool)
        or not isinstance(max_retry_attempts, int)
        or not 1 <= max_retry_attempts <= 20
    ):
        raise ConfigError(
            f"max_retry_attempts: expected 1 to 20 attempts, got {max_retry_attempts!r}",
            field="max_retry_attempts",
        )
    if run_id is not None:
        from onceflow.windows import check_run_id

        check_run_id(run_id)


def _stateful_settings(settings: _Settings, retries: int | None, run_id: str | None) -> None:
    settings.retries = retries
    settings.run_id = run_id
    match = _DATED_RUN_ID.match(run_id or "")
    if match and settings.config is None and _run_date_of(run_id) is not None:
        settings.pipeline = match["pipeline"]  # then the run id is onceflow's own


@contextmanager
def _python_terms(run_id: str | None = None, *, extraction_date: bool = False) -> Iterator[None]:
    """A refusal of the run id in the caller's terms: the seed classes take `run_id=`
    (`run_id` is the one given: named `run_id='...'`), where the commands' messages name
    `--run-id`; and, with `extraction_date` (an extraction, whose date the caller gives as
    `extraction_date=`), `--date` as `extraction_date=`: a message naming a flag the
    caller never gave sends them looking for it."""
    try:
        yield
    except ConfigError as error:
        text = str(error)
        dated = extraction_date and "--date" in text
        if "--run-id" not in text and not dated:
            raise
        if run_id:
            given = re.compile(rf"--run-id {re.escape(run_id)}(?![A-Za-z0-9_.\-])")
            text = given.sub(lambda _: f"run_id={run_id!r}", text)
        text = text.replace("--run-id:", "run_id:").replace("--run-id", "run_id=")
        field = error.field
        if dated:
            text = re.sub(r"--date (\d{4}-\d{2}-\d{2})", r"extraction_date='\1'", text)
            text = text.replace("--date:", "extraction_date:").replace("--date", "extraction_date=")
            field = "extraction_date" if field == "date" else field
        raise ConfigError(text, field=field) from None
