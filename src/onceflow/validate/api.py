"""The validate step's entry points: validate, Validator, the pre-load gate, resets, status.

`validate(config, run_date)` checks each configured table's post-load rules on its Delta
snapshot: the whole table (`scope: table`) or this run's batches (`scope: run`, by
`_batch_id`). `Validator(config).validate_table(data, name)` does the same for any data
(a Delta or Parquet path, an Arrow table, a pandas or polars frame). `Gate` runs the
pre-load rules on each extracted file inside the loader (write, audit, then publish).
Results are cached and resumable rule by rule (see `runner.py`).
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from onceflow.clock import now_iso
from onceflow.config import Config, TableConfig, ValidationConfig
from onceflow.errors import ConfigError, GateError, OnceflowError, ReportError, ValidateError
from onceflow.lake import SourceFile, extracted_identity
from onceflow.redact import redact
from onceflow.rules import AnyRule, Referential, Uniqueness, rule_list
from onceflow.state import Store, open_store
from onceflow.state.extractions import COMPLETED as EXTRACTION_COMPLETED
from onceflow.state.extractions import FAILED as EXTRACTION_FAILED
from onceflow.state.extractions import ExtractionRecord
from onceflow.state.files import FILE_COMPLETED, FILE_FAILED, FILE_PENDING
from onceflow.validate.inputs import Input, delta_input, memory_input, open_delta, resolve_input
from onceflow.validate.quarantine import quarantine_pass, quarantine_state
from onceflow.validate.results import ERROR, FAIL, TableReport, ValidationReport
from onceflow.validate.rules_file import RulesByTable, load_validation_config, validation_config
from onceflow.validate.runner import (
    Job,
    Settings,
    TableRun,
    reference_fingerprint,
    rule_hash,
    still_valid,
)
from onceflow.validate.seed_state import note_seed_state_file
from onceflow.validate.sources import load_sources
from onceflow.warehouse.held import batch_id_for, checksum_code, held_code
from onceflow.windows import make_run_id, parse_run_date, window_for

log = logging.getLogger(__name__)

#: A run's extractions by table key (`store.extractions.of_run`), read once per validation:
#: read per table, 1,000 tables made 1M record conversions (32 s of a 37 s validation)
RunExtractions = Mapping[str, ExtractionRecord]


def _same_location(data: Any, location: str) -> bool:
    """Whether `data` names the Delta table at `location` (a path or URI as given)."""
    if not isinstance(data, str | Path):
        return False
    given = str(data).rstrip("/")
    if "://" in given or "://" in location:
        return given == location.rstrip("/")
    return Path(given).resolve() == Path(location).resolve()


def table_location(config: Config, table: TableConfig) -> str:
    """Where a config table's Delta table is (the loader's rule: Config.resolve_target)."""
    return config.resolve_target(table.target)


def quarantine_location(config: Config, table: TableConfig) -> str:
    """The `<table>_quarantine` Delta table beside the table."""
    return table_location(config, table).rstrip("/") + "_quarantine"


def _settings(pipeline: str, cfg: ValidationConfig) -> Settings:
    return Settings(
        pipeline=pipeline,
        engine=cfg.engine,
        max_retries=cfg.max_retries,
        retry_delay=cfg.retry_delay,
        samples=cfg.samples,
        max_fused_aggregates=cfg.max_fused_aggregates,
    )


class _References:
    """Finds a referential rule's other table: a given name, a config table, or a path."""

    def __init__(self, config: Config | None, given: Mapping[str, Any] | None) -> None:
        self.config = config
        self.given = dict(given or {})

    def __call__(self, name: str) -> Input:
        if name in self.given:
            return resolve_input(self.given[name])
        if self.config is not None:
            matches = [t for t in self.config.tables if name in (t.key, t.display_name)]
            staged = [a for t in matches[:1] for a in (t.key, t.display_name) if a in self.given]
            if len(matches) == 1 and staged:  # given with the data it is checked beside
                return resolve_input(self.given[staged[0]])
            if len(matches) == 1:
                return delta_input(table_location(self.config, matches[0]), label=name)
        # a path in a config is relative to the config's folder, as every path there is,
        # never to wherever the command runs (a same-named file there would be read)
        path = self.config.resolve(name) if self.config is not None else name
        if Path(path).exists() or "://" in name:
            return resolve_input(path)
        raise ValidateError(
            f"reference table {name!r} not found: not a table of the config, nor a Delta "
            "table or Parquet path",
            table=name,
        )


def _as_config(
    config: Config | str | Path | Mapping[str, Any] | None,
) -> tuple[Config | None, RulesByTable]:
    """A Config from itself, the path of an onceflow.yml, or its parsed mapping (the
    seed's `DataValidator("config.yaml")` and `DataValidator(config_dict)`), with the rules
    of the tables a rules-only config names (see `rules_file`)."""
    if config is None or isinstance(config, Config):
        return config, {}
    if isinstance(config, str | Path):
        return load_validation_config(config)
    if isinstance(config, Mapping):
        return validation_config(config, base_dir=os.getcwd())
    raise ConfigError(
        f"Validator(config): expected a Config, the path of onceflow.yml or its mapping, "
        f"got {type(config).__name__}"
    )


def _store_of(state: str | Store | None) -> Store | None:
    if state is None or isinstance(state, Store):
        return state
    return open_store(state)


class Validator:
    """Validate data against rules, with results cached and resumable in the state store.

    `Validator(config)` takes each table's rules from the config (a Config, the path of
    onceflow.yml, or its mapping); or give
    `rules_by_table` (rule mappings or models per table name), `state` (a store URL or
    Store; None keeps nothing) and `references` (names of referenced tables -> a path or
    data). `validate_table(data, name)` returns a ValidationReport.
    """

    def __init__(
        self,
        config: Config | str | Path | Mapping[str, Any] | None = None,
        *,
        rules_by_table: Mapping[str, Sequence[Mapping[str, Any] | AnyRule]] | None = None,
        state: str | Store | None = None,
        references: Mapping[str, Any] | None = None,
        pipeline: str | None = None,
        samples: int | None = None,
        max_retries: int | None = None,
        retry_delay: float | None = None,
    ) -> None:
        config, named = _as_config(config)
        rules_by_table = {**named, **(rules_by_table or {})}
        self.config = config
        cfg = config.validation if config is not None else ValidationConfig()
        updates = {
            k: v
            for k, v in (
                ("samples", samples),
                ("max_retries", max_retries),
                ("retry_delay", retry_delay),
            )
            if v is not None
        }
        cfg = cfg.model_copy(update=updates)
        self.settings = _settings(pipeline or (config.pipeline if config else "standalone"), cfg)
        self.rules: dict[str, list[AnyRule]] = {}
        if config is not None:
            for table in config.tables:
                self.rules[table.key] = list(table.rules)
        for name, items in rules_by_table.items():
            try:
                self.rules[name] = rule_list(items, name)
            except ValueError as error:
                raise ConfigError(str(error)) from None
        if state is None and config is not None:
            state = config.state_url
        self.store = _store_of(state)
        self.references = _References(config, references)
        if config is not None and self.store is not None:
            note_seed_state_file(config.seed_state_file, self.store, self.settings.pipeline)

    def _table(self, name: str) -> tuple[str, list[AnyRule], TableConfig | None]:
        """(key, rules, configured table) of a table with rules here: a configured table
        by key or name, or a table given its rules by name (a rules-only config's);
        ConfigError listing them all otherwise."""
        if name in self.rules:
            table = None
            if self.config is not None:
                table = next((t for t in self.config.tables_named(name) if t.key == name), None)
            return name, self.rules[name], table
        if self.config is not None and self.config.tables_named(name):
            table = self.config.table(name)  # ambiguous: ConfigError naming the tables
            return table.key, self.rules[table.key], table
        known = ", ".join(self.rules) or "none"
        problem = "is not in the config" if self.config is not None else "has no rules here"
        raise ConfigError(f"table {name!r} {problem}; tables: {known}")

    def _rule(self, table: str, rule: str) -> tuple[str, AnyRule, TableConfig | None]:
        """A table's rule by name; ConfigError naming the table's rules otherwise."""
        key, rules, configured = self._table(table)
        found = next((r for r in rules if r.name == rule), None)
        if found is None:
            known = ", ".join(r.name for r in rules) or "none"
            raise ConfigError(f"table {key}: no rule {rule!r} (rules: {known})")
        return key, found, configured

    def validate_table(
        self,
        data: Any,
        name: str,
        *,
        stage: str = "post_load",
        resume: bool = True,
        reference_time: datetime | None = None,
        fingerprint: str | None = None,
    ) -> ValidationReport:
        """Run the table's rules of `stage` on `data`; the report of that one table."""
        key, rules, table = self._table(name)
        chosen = [r for r in rules if r.stage == stage]
        if not chosen:
            # "passed" on no rules would vouch for data nothing looked at
            said = _nothing_to_check([key], {key: rules}, stage, "the config")
            raise ConfigError(f"table {said}", table=key)
        started = time.perf_counter()
        report = ValidationReport(self.settings.pipeline, started_at=now_iso())
        unreadable = None
        try:
            # without a store nothing is cached: data in memory need not be hashed
            source = resolve_input(data, hashed=self.store is not None)
        except OnceflowError as error:
            label = str(data) if isinstance(data, str | Path) else type(data).__name__
            source, unreadable = memory_input(None, label=label), redact(str(error))
        if fingerprint is not None and unreadable is None:
            source.fingerprint = fingerprint
        job = Job(
            key,
            source,
            chosen,
            stage=stage,
            reference_time=reference_time,
            references=self.references,
            unreadable=unreadable,
        )
        quarantine = None
        if table is not None and table.quarantine and stage == "post_load" and self.config:
            own = table_location(self.config, table)
            if _same_location(data, own):
                quarantine = quarantine_location(self.config, table)
                job.after_rules = quarantine_pass(quarantine, source, key)
                job.quarantine_state = quarantine_state(quarantine, key)
            else:
                # staged data (`--sources`, a file, a frame): its failing rows are not the
                # table's, and writing them replaced the table's quarantine (and its
                # schema, which later passes then could not write to)
                log.info(
                    "%s: no quarantine for this check: the data is not the table %s itself",
                    key,
                    redact(own),
                )
        one = TableRun(job, self.settings, self.store, resume=resume).run()
        one.quarantine_table = None if quarantine is None else redact(quarantine)
        report.tables.append(one)
        report.duration_seconds = round(time.perf_counter() - started, 4)
        report.reference_time = None if reference_time is None else reference_time.isoformat()
        return report

    def validate_all_tables(
        self,
        sources: Mapping[str, Any] | None = None,
        *,
        resume: bool = True,
        reference_time: datetime | None = None,
    ) -> ValidationReport:
        """Validate several tables into one report: each table named in `sources` on its
        data, or (no `sources`) every table with rules on its configured Delta table.

        Rules already done on the same data come from the state store, so a rerun after a
        failure runs only what was left. A table with no data to read is refused before
        anything runs.
        """
        if sources is not None:
            names = list(sources)
        else:  # pre-load rules run in the loader, on each file
            names = [n for n, rs in self.rules.items() if any(r.stage == "post_load" for r in rs)]
        tables = {name: self._table(name) for name in names}  # unknown names: ConfigError
        if sources is not None:
            rules_of = {name: rules for name, (_, rules, _) in tables.items()}
            pointless = _pointless(rules_of)
            if pointless:
                said = _nothing_to_check(pointless, rules_of, "post_load", "the config")
                raise ConfigError(f"sources: {said}", field="sources")
            # a staged table without rules of its own is there to be referenced: not checked
            tables = {n: t for n, t in tables.items() if _has_stage(t[1], "post_load")}
        if sources is None:
            unread = [n for n, (_, _, table) in tables.items() if table is None]
            if unread or self.config is None:
                raise ConfigError(
                    f"no data for {', '.join(unread) or 'these tables'}: they are not "
                    "configured tables; give their data in `sources` (name -> data)"
                )
        started = time.perf_counter()
        report = ValidationReport(
            self.settings.pipeline,
            started_at=now_iso(),
            reference_time=None if reference_time is None else reference_time.isoformat(),
        )
        configured = [t for _, _, t in tables.values() if t is not None]
        run_id = None
        if sources is None and self.config is not None:
            run_id = _latest_run(self.config, self.store, configured)
        extractions = (
            self.store.extractions.of_run(run_id) if self.store and run_id is not None else None
        )
        for name, (key, _, table) in tables.items():
            if sources is None and self.config is not None and table is not None:
                one_table = _validate_one(
                    self,
                    self.config,
                    table,
                    self.store,
                    run_id,
                    reference_time,
                    resume,
                    extractions=extractions,
                )
                report.tables.append(one_table)
                continue
            assert sources is not None
            one = self._staged(sources).validate_table(
                sources[name], key, resume=resume, reference_time=reference_time
            )
            report.tables.extend(one.tables)
        report.run_id = run_id
        report.duration_seconds = round(time.perf_counter() - started, 4)
        return report

    def _staged(self, sources: Mapping[str, Any]) -> Validator:
        """This validator, its referential rules also finding the tables in `sources`
        (the staged orders reference the staged customers, not the loaded ones)."""
        staged = copy.copy(self)
        staged.references = _References(self.config, {**self.references.given, **sources})
        return staged

    def is_rule_completed(self, table: str, rule: str, data: Any = None) -> bool:
        """Whether the state store holds `rule`'s result on the table's data, so that the
        next validation of that data takes it from there instead of running it.

        Which data: `data` when given (a path, or data in memory, by its fingerprint); else
        a configured table's Delta table as it is now; else (a table of a rules-only
        config, or rules given in Python: onceflow does not know where its data is) the
        data of the table's latest validation: True when that validation recorded the
        rule's result (the same rule definition; a failing result is a result), False
        when the table was never validated, when the rule was not reached or could not
        be judged for a reason that may pass (it runs again), or after a reset.
        """
        key, found, configured = self._rule(table, rule)
        if found.stage == "pre_load":
            raise ConfigError(
                f"table {key}, rule {rule!r}: a pre-load rule runs on each extracted file "
                "in the loader; its results are kept per file, not per table"
            )
        if self.store is None:
            return False
        if data is not None:
            fingerprint = resolve_input(data).fingerprint
        elif configured is not None and self.config is not None:
            run_id = _latest_run(self.config, self.store, [configured])
            try:
                fingerprint = _table_input(self.config, configured, self.store, run_id).fingerprint
            except ValidateError:  # nothing to read (no table yet, no run): nothing done
                return False
        else:
            latest = self.store.rules.validations(
                self.settings.pipeline, key, limit=1, stage="post_load"
            )
            fingerprint = latest[0].fingerprint if latest else None
        if fingerprint is None:  # an Arrow dataset in memory: never cached
            return False
        stored = self.store.rules.get(
            self.settings.pipeline, key, rule, rule_hash(found, self.settings), fingerprint
        )
        return stored is not None and still_valid(
            found, stored, lambda name: reference_fingerprint(self.references, name)
        )

    @property
    def _state(self) -> ValidationState:
        """The seed's `validator._state`: this validator's stored state (see
        ValidationState)."""
        return ValidationState(self)

    def validation_status(self) -> list[dict[str, Any]]:
        """Each table with rules here and its latest validation (`onceflow status` of a
        rules-only config): when, on what data, status, outcome counts; a table never
        validated has status `never validated` and None elsewhere."""
        last: dict[str, dict[str, Any]] = {}
        if self.store is not None:
            last = {r["table"]: r for r in _status_rows(self.store, self.settings.pipeline)}
        rows = [last.pop(key) if key in last else _never_validated(key) for key in self.rules]
        return rows + list(last.values())  # tables validated once, whose rules are gone

    def reset_rule_state(self, table: str, rule: str) -> int:
        """Forget one rule's stored results (it runs again next time); ConfigError for a
        table or rule that is not here, as `onceflow reset-state --rule` says (a
        validator given no rules at all takes the names as they are)."""
        if not self.rules:
            return self._reset(table, rule)
        key, _, _ = self._rule(table, rule)
        return self._reset(key, rule)

    def reset_table_state(self, table: str) -> int:
        """Forget a table's stored results, validations and history; ConfigError for a
        table that is not here (a validator given no rules takes the name as it is)."""
        return self._reset(self._table(table)[0] if self.rules else table, None)

    def reset_state(self) -> int:
        """Forget every stored result, validation and history of the pipeline."""
        if self.store is None:
            return 0
        return self.store.rules.reset(self.settings.pipeline)

    def _reset(self, key: str, rule: str | None) -> int:
        if self.store is None:
            return 0
        return self.store.rules.reset(self.settings.pipeline, key, rule)


#: The seed validator's name of `Validator` (seed 003: `DataValidator("config.yaml")`):
#: the same class under a second name, as the Pipeline's seed method names are.
DataValidator = Validator


class ValidationState:
    """The seed's `validator._state`: the validator's stored state, answering the seed's
    state calls. Nothing is kept here: each call asks the state store through the
    validator, so the answer is the same as the validator's own method's."""

    def __init__(self, validator: Validator) -> None:
        self.validator = validator

    def is_rule_completed(self, table: str, rule: str, data: Any = None) -> bool:
        """`Validator.is_rule_completed`."""
        return self.validator.is_rule_completed(table, rule, data)

    def reset_rule_state(self, table: str, rule: str) -> int:
        """`Validator.reset_rule_state`."""
        return self.validator.reset_rule_state(table, rule)

    def reset_table_state(self, table: str) -> int:
        """`Validator.reset_table_state`."""
        return self.validator.reset_table_state(table)

    def reset_state(self) -> int:
        """`Validator.reset_state`."""
        return self.validator.reset_state()


def _never_validated(key: str) -> dict[str, Any]:
    return {
        "table": key,
        "status": "never validated",
        "counts": {},
        "started_at": None,
        "ended_at": None,
        "fingerprint": None,
        "run_id": None,
        "data_queries": None,
    }


def _run_batches(
    config: Config, table: TableConfig, store: Store, run_id: str, extractions: RunExtractions
) -> tuple[str, ...]:
    """The batch ids this run (its `extractions`) loaded into the table: its extracted
    file's, per the tracker, else per the table's own marker of the file. Never empty: a
    run whose rows cannot be named is a ValidateError, as checking no rows would pass
    every rule."""
    record = extractions.get(table.key)
    if record is None or not record.file_path:
        # the run has no file of this table (its extraction failed or never finished):
        # there are no rows of this run to check, and passing on none would say all is well
        state = record.status if record is not None else "missing"
        raise ValidateError(
            f"scope run: run {run_id} has no extracted file of this table (extraction "
            f"{state}); none of its rows are in the table to check",
            table=table.key,
        )
    # the identity, not the recorded path: a moved or copied project is the same lake
    file_id = extracted_identity(record.file_path, Path(config.resolve(config.lake)))
    uri = table_location(config, table)
    tracked = store.files.get(uri, file_id)
    named = tracked is not None and (tracked.batch_id or tracked.loaded_checksum)
    if tracked is None or (tracked.status == FILE_COMPLETED and not named):
        # The tracker knows tables by location, so a moved or copied project has no row
        # for the table at its new place until a load there reconciles one (and a row
        # reconciled from a log whose commits aged out names no batch). The table itself
        # says which content of the file it holds, and that names the batch.
        return (_held_batch(uri, table, run_id, file_id, record.checksum),)
    if tracked.status != FILE_COMPLETED:
        # Its rows are not in the table: checking "this run's rows" would judge none and
        # pass every rule, a silent pass for a run that loaded nothing.
        if tracked.status == FILE_PENDING:
            why = "it is not loaded yet (run `onceflow load`)"
        elif tracked.status == FILE_FAILED:
            why = f"its load failed ({tracked.error or 'no reason recorded'})"
        else:
            why = "it is being loaded right now"
        raise ValidateError(
            f"scope run: run {run_id} extracted this table, but {why}; none of its rows "
            "are in the table to check",
            table=table.key,
        )
    return (tracked.batch_id or batch_id_for(file_id, tracked.loaded_checksum),)


def _unfinished_loads(
    config: Config,
    store: Store,
    run_id: str,
    day: date,
    tables: Sequence[TableConfig],
    extractions: RunExtractions,
) -> dict[str, str]:
    """The `scope: table` tables whose extraction or load in run `run_id` (its
    `extractions`) did not complete, by the state store, each with why its rules are
    skipped.

    Such a table still holds what earlier runs loaded: judging it for this date would
    pass the older snapshot (from the cache, even) where `run` itself said `skipped`, and
    `status` would show the older verdict over the run's. A table this run did not
    extract, or whose file the table holds, is judged as it is. (`scope: run` tables are
    refused by `_run_batches` instead: no rows of the run to check is an error.)"""
    whole = [t for t in tables if t.validation_scope == "table"]
    if not whole:
        return {}
    fix = f"rerun `onceflow run --date {day.isoformat()}` once its cause is fixed"
    skipped = {}
    for table in whole:
        record = extractions.get(table.key)
        if record is None or (record.status == EXTRACTION_COMPLETED and not record.file_path):
            continue  # not part of the run, or nothing extracted: nothing failed to land
        why: str | None
        if record.status == EXTRACTION_FAILED:
            why = f"its extraction failed ({record.error or 'no reason recorded'})"
        elif record.status != EXTRACTION_COMPLETED:
            why = f"its extraction is {record.status}, not completed"
        else:
            why = _load_problem(config, table, store, record.file_path or "", record.checksum)
        if why is not None:
            skipped[table.key] = (
                f"not validated: run {run_id}: {why}; the table holds what earlier runs "
                f"loaded, not this run's data ({fix})"
            )
    return skipped


def _load_problem(
    config: Config, table: TableConfig, store: Store, file_path: str, checksum: str | None
) -> str | None:
    """Why the run's extracted file of `table` is not in it (its load failed, is under
    way or never ran), or None when it is."""
    file_id = extracted_identity(file_path, Path(config.resolve(config.lake)))
    uri = table_location(config, table)
    tracked = store.files.get(uri, file_id)
    if tracked is not None:
        if tracked.status == FILE_COMPLETED:
            return None
        if tracked.status == FILE_FAILED:
            return f"its load failed ({tracked.error or 'no reason recorded'})"
        if tracked.status == FILE_PENDING:
            return "its file is not loaded yet"
        return "its file is being loaded (or its load was killed)"
    # no tracker row at this location (never loaded, or a moved project): the table's
    # own marker of the file says whether it holds it
    try:
        dt = open_delta(uri)
    except ValidateError:
        return None  # unreadable: judging it says so, as an error
    code = 0 if dt is None else held_code(dt, file_id)
    if not code:
        return "its file is not loaded yet"
    if checksum and code != checksum_code(checksum):
        return "the table holds another extraction of its file than the run recorded"
    return None


def _held_batch(
    uri: str, table: TableConfig, run_id: str, file_id: str, checksum: str | None
) -> str:
    """The batch of the run's file (`file_id`, extracted with `checksum`) in the table at
    `uri`, when the table holds that content of it (its marker); else ValidateError."""
    dt = open_delta(uri)  # unreadable: ValidateError naming the table
    code = 0 if dt is None else held_code(dt, file_id)
    if code and checksum and code == checksum_code(checksum):
        return batch_id_for(file_id, checksum)
    why = (
        "it is not loaded yet (run `onceflow load`)"
        if not code
        else "the table holds another extraction of that file than the run recorded "
        "(run `onceflow load` to load the run's)"
    )
    raise ValidateError(
        f"scope run: run {run_id} extracted this table, but {why}; none of its rows are "
        "in the table to check",
        table=table.key,
    )


def _table_input(
    config: Config,
    table: TableConfig,
    store: Store | None,
    run_id: str | None,
    batch_ids: Mapping[str, Sequence[str]] | None = None,
    extractions: RunExtractions | None = None,
) -> Input:
    """A config table's data as its post-load rules see it: the whole Delta table, or
    (`scope: run`) the batches that run loaded. `extractions`: the run's, when the caller
    read them already (else they are read here)."""
    batches: tuple[str, ...] | None = None
    if table.validation_scope == "run":
        if batch_ids is not None and table.key in batch_ids:
            batches = tuple(batch_ids[table.key])
            if not batches:  # rules on no rows pass: say it instead
                raise ValidateError(
                    "scope run: no batch given for this table, so there are no rows of a "
                    "run to check",
                    table=table.key,
                )
        elif run_id is None or store is None:
            raise ValidateError(
                "scope run: no run has loaded this table yet, so there are no rows of a run "
                "to check (run the pipeline first, or set `scope: table`)",
                table=table.key,
            )
        else:
            if extractions is None:
                extractions = store.extractions.of_run(run_id)
            if table.key not in extractions:
                raise ValidateError(
                    f"scope run: run {run_id} did not extract this table (no such run, or "
                    "the table was not part of it); validate a date that ran",
                    table=table.key,
                )
            batches = _run_batches(config, table, store, run_id, extractions)
    uri = table_location(config, table)
    return delta_input(uri, batch_ids=batches, label=uri)


def _has_stage(rules: Sequence[AnyRule], stage: str) -> bool:
    return any(r.stage == stage for r in rules)


def _pointless(rules_of: Mapping[str, Sequence[AnyRule]]) -> list[str]:
    """The tables of `rules_of` (name -> rules; tables checked together on staged data)
    with no post-load rule that no other table's referential rule checks against:
    nothing to validate there."""
    referenced = {
        r.reference.table
        for rules in rules_of.values()
        for r in rules
        if isinstance(r, Referential) and r.stage == "post_load"
    }
    return [
        name
        for name, rules in rules_of.items()
        if not _has_stage(rules, "post_load") and name not in referenced
    ]


def _nothing_to_check(
    names: Sequence[str], rules_of: Mapping[str, Sequence[AnyRule]], stage: str, where: str
) -> str:
    """Why tables with no rules of `stage` are refused, and what to do instead."""
    if stage == "post_load" and all(_has_stage(rules_of[n], "pre_load") for n in names):
        hint = "its rules are all `stage: pre_load`, run on each extracted file as it is loaded"
    else:
        hint = f"add `rules:` under the table in {where}"
    said = stage.replace("_", "-")
    return f"{', '.join(names)} has no {said} rules, so there is nothing to validate ({hint})"


def _referenced_keys(config: Config) -> set[str]:
    """The keys of the config's tables that a referential rule checks against."""
    names = {
        r.reference.table for t in config.tables for r in t.rules if isinstance(r, Referential)
    }
    return {t.key for t in config.tables if names & {t.key, t.display_name}}


def _latest_run(config: Config, store: Store | None, tables: Sequence[TableConfig]) -> str | None:
    """The run whose batches `scope: run` tables check when no run date is given."""
    if store is None or not any(t.validation_scope == "run" for t in tables):
        return None
    runs = store.runs.find(config.pipeline, limit=1)
    return runs[0].run_id if runs else None


def validate(
    config: Config | str | Path,
    run_date: str | date | None = None,
    *,
    tables: Sequence[str] | None = None,
    sources: Mapping[str, Any] | str | Path | None = None,
    output: str | Path | None = None,
    html: str | Path | None = None,
    resume: bool = True,
    run_id: str | None = None,
    batch_ids: Mapping[str, Sequence[str]] | None = None,
    skip: Mapping[str, str] | None = None,
    store: Store | None = None,
    rules: Mapping[str, Sequence[Any]] | None = None,
) -> ValidationReport:
    """Run each selected table's post-load rules on its Delta table; write the JSON
    (`output`) and HTML (`html`) reports when asked.

    With `run_date`, the freshness reference is that run's window end and `scope: run`
    tables check that run's batches (`batch_ids` gives them; else the state store's
    tracker); without it, now and the latest run. `skip` maps table keys to a reason
    their rules are skipped (a failed load). `resume=False` ignores stored results.

    `sources` (a {table: data} mapping, or the path of a YAML file of one) checks the
    named tables on that data instead, each as a whole (see `Validator.validate_table`).
    `rules` gives the rules of tables that are not in the config (a rules-only config,
    `load_validation_config`): their data must come from `sources`. `config` may be the
    path of the config file, as for `Validator` (its rules-only tables' rules too).
    """
    if isinstance(config, str | Path):
        config, own_rules = load_validation_config(config)
        rules = {**own_rules, **(rules or {})} or None
    for path, option in ((output, "--output"), (html, "--html")):
        _check_writable(path, option)
    if output is not None and html is not None and Path(output).resolve() == Path(html).resolve():
        raise ConfigError(
            f"--output and --html name the same file ({output}): the HTML report would "
            "overwrite the JSON one; give each its own path",
            field="html",
        )
    given = _given_sources(sources)
    if rules and given is None:
        raise ConfigError(
            f"{', '.join(rules)}: the config gives only rules, not where the data is; name "
            "each table's data with --sources (a YAML file of `table: path` lines)",
            field="sources",
        )
    store = store or open_store(config.state_url)
    started = time.perf_counter()
    reference: datetime | None = None
    if run_date is not None:
        day = parse_run_date(run_date, config.zone)
        reference = window_for(day, config.zone).end.astimezone(UTC)
    if rules:
        assert given is not None
        return _validate_given(config, rules, given, tables, resume, store, output, html, reference)
    if given is not None:
        tables = _sourced_tables(config, given, tables)
    selected = [config.table(k) for k in tables] if tables else list(config.tables)
    ruleless = [t.key for t in selected if not any(r.stage == "post_load" for r in t.rules)]
    # a staged table without rules of its own may be what a staged table's rule references
    pointless = [k for k in ruleless if given is None or k not in _referenced_keys(config)]
    if tables and pointless:  # asked for by name: say so rather than check nothing
        where = "--tables" if given is None else "--sources"
        rules_of = {t.key: list(t.rules) for t in selected}
        said = _nothing_to_check(pointless, rules_of, "post_load", "onceflow.yml")
        raise ConfigError(f"{where}: {said}", field=where.lstrip("-"))
    selected = [t for t in selected if t.key not in ruleless]
    if given is None and run_date is None and run_id is None:
        run_id = _latest_run(config, store, selected)
    elif run_date is not None:
        run_id = run_id or make_run_id(config.pipeline, parse_run_date(run_date, config.zone))
    if given is not None:
        run_id = None  # the data is given whole: no run's batches to pick
    extractions: RunExtractions = {} if run_id is None else store.extractions.of_run(run_id)
    if run_date is not None and given is None:
        assert run_id is not None
        day = parse_run_date(run_date, config.zone)
        # the run's own reasons (a load it just saw fail) win over what the state says
        unfinished = _unfinished_loads(config, store, run_id, day, selected, extractions)
        skip = {**unfinished, **(skip or {})}
    # a table staged in `sources` is also what a referential rule checks against: the
    # staged orders reference the staged customers, not the loaded ones
    validator = Validator(config, state=store, references=given)
    report = ValidationReport(
        config.pipeline,
        started_at=now_iso(),
        run_id=run_id,
        reference_time=None if reference is None else reference.isoformat(),
    )
    # said before it starts: on many tables this phase runs for a while (from the cache
    # too), and nothing else is logged until its report
    rule_count = sum(1 for t in selected for r in t.rules if r.stage == "post_load")
    of_run = f" of run {run_id}" if run_id is not None else ""
    log.info(
        "validating %d table(s)%s: %d post-load rule(s)",
        len(selected),
        of_run,
        rule_count,
        extra={"action": "validate", "run_id": run_id},
    )
    for table in selected:
        if given is not None:
            data = given[table.key]
            one = validator.validate_table(data, table.key, resume=resume, reference_time=reference)
            report.tables.extend(one.tables)
            continue
        report.tables.append(
            _validate_one(
                validator,
                config,
                table,
                store,
                run_id,
                reference,
                resume,
                batch_ids,
                skip,
                extractions,
            )
        )
    report.duration_seconds = round(time.perf_counter() - started, 4)
    _write_reports(report, output, html, store)
    return report


def _validate_given(
    config: Config,
    rules: Mapping[str, Sequence[Any]],
    given: dict[str, Any],
    tables: Sequence[str] | None,
    resume: bool,
    store: Store,
    output: str | Path | None,
    html: str | Path | None,
    reference: datetime | None,
) -> ValidationReport:
    """A rules-only config's tables, each on its data from `sources` (freshness judged at
    `reference`, a run date's window end, else now)."""
    known = ", ".join(rules)
    for option, names in (("--tables", tables or ()), ("--sources", given)):
        unknown = [name for name in names if name not in rules]
        if unknown:  # named by the option it came from, as the onceflow.yml path does
            raise ConfigError(
                f"{option}: table {unknown[0]!r} is not in the config; tables: {known}",
                field=option.lstrip("-"),
            )
    wanted = list(tables) if tables else list(given)
    missing = [name for name in wanted if name not in given]
    if missing:
        raise ConfigError(
            f"--tables: {', '.join(missing)} has no data in --sources", field="tables"
        )
    validator = Validator(config, rules_by_table=rules, state=store)
    # as the onceflow.yml path: a table asked for (by --tables, or by being staged) with
    # no post-load rules is refused, not reported "passed" on no rules; a staged one that
    # another's referential rule checks against is there to be read, not checked
    rules_of = {name: validator.rules[name] for name in wanted}
    pointless = _pointless(rules_of)
    if pointless:
        where = "--tables" if tables else "--sources"
        said = _nothing_to_check(pointless, rules_of, "post_load", "the config")
        raise ConfigError(f"{where}: {said}", field=where.lstrip("-"))
    report = validator.validate_all_tables(
        {name: given[name] for name in wanted}, resume=resume, reference_time=reference
    )
    _write_reports(report, output, html, store)
    return report


def _given_sources(sources: Mapping[str, Any] | str | Path | None) -> dict[str, Any] | None:
    if sources is None:
        return None
    if isinstance(sources, str | Path):
        return dict(load_sources(sources))
    if not sources:
        raise ConfigError("sources: empty; name at least one table and its data")
    return dict(sources)


def _sourced_tables(
    config: Config, given: dict[str, Any], tables: Sequence[str] | None
) -> list[str]:
    """The table keys to check on given data; rekeys `given` by table key in place."""
    for name in list(given):
        key = config.table(name).key  # unknown: ConfigError naming the config's tables
        if key != name:
            if key in given:
                raise ConfigError(f"sources: table {key} is named twice ({name!r} and {key!r})")
            given[key] = given.pop(name)
    if not tables:
        return list(given)
    wanted = [config.table(t).key for t in tables]
    missing = [t for t in wanted if t not in given]
    if missing:
        raise ConfigError(
            f"--tables: {', '.join(missing)} has no data in --sources (add a line "
            "`table: path` for it there, or leave it out of --tables)",
            field="tables",
        )
    return wanted


def _check_writable(path: str | Path | None, option: str) -> None:
    """Refuse a report path that cannot be written before any rule runs."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{option} {target}: is a folder; give a file name", field=option)
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the missing folders are created when the report is written
    if not os.access(folder, os.W_OK | os.X_OK) or (
        target.exists() and not os.access(target, os.W_OK)
    ):
        raise ConfigError(f"{option} {target}: not writable here", field=option)


def _write_reports(
    report: ValidationReport, output: str | Path | None, html: str | Path | None, store: Store
) -> None:
    """Write the JSON and HTML reports; a failure raises ReportError holding the report
    (whose results are already stored) after trying both."""

    def html_page(path: str | Path) -> None:
        from onceflow.validate.html import write_html  # only when asked for

        write_html(report, path, store=store)

    writers = ((output, "--output", report.to_json), (html, "--html", html_page))
    problems = []
    for path, option, write in writers:
        if path is None:
            continue
        try:
            write(path)
        except OSError as error:
            reason = error.strerror or str(error)
            problems.append(f"{option} {path}: cannot write the report ({reason})")
    if problems:
        raise ReportError(
            "; ".join(problems) + "; the results are stored: a rerun with another path "
            "answers from the cache",
            report=report,
        )


def _validate_one(
    validator: Validator,
    config: Config,
    table: TableConfig,
    store: Store | None,
    run_id: str | None,
    reference: datetime | None,
    resume: bool,
    batch_ids: Mapping[str, Sequence[str]] | None = None,
    skip: Mapping[str, str] | None = None,
    extractions: RunExtractions | None = None,
) -> TableReport:
    """One config table's post-load rules on its Delta table (`_table_input`);
    `extractions`: run `run_id`'s, read once by the caller for all its tables."""
    rules = [r for r in table.rules if r.stage == "post_load"]
    uri = table_location(config, table)
    scope = table.validation_scope
    reason = (skip or {}).get(table.key)
    unreadable = None
    try:
        source = _table_input(config, table, store, run_id, batch_ids, extractions)
    except OnceflowError as error:
        source = memory_input(None, label=uri)
        if reason is None:
            unreadable = f"table {table.key}: {redact(str(error))}"
    job = Job(
        table.key,
        source,
        rules,
        stage="post_load",
        scope=scope,
        run_id=run_id,
        reference_time=reference,
        references=validator.references,
        skip_reason=reason,
        unreadable=unreadable,
    )
    quarantine = None
    if table.quarantine and reason is None and unreadable is None:
        quarantine = quarantine_location(config, table)
        job.after_rules = quarantine_pass(quarantine, source, table.key)
        job.quarantine_state = quarantine_state(quarantine, table.key)
    report = TableRun(job, validator.settings, store, resume=resume).run()
    report.quarantine_table = None if quarantine is None else redact(quarantine)
    if source.batch_ids and _judged_no_rows(rules, report):
        report.message = _no_rows_of_the_run(config, table, store, run_id, extractions)
    return report


def _judged_no_rows(rules: Sequence[AnyRule], report: TableReport) -> bool:
    """Whether the rules judged no rows at all: some rule without a `filter` counted the
    rows in its scope, and found none (known from the results, cached ones too: no query
    is run to ask). False when every such rule has a filter: then it is not known."""
    unfiltered = {r.name for r in rules if not r.filter}
    counted = [
        r.total_rows for r in report.results if r.rule in unfiltered and r.total_rows is not None
    ]
    return bool(counted) and not any(counted)


def _no_rows_of_the_run(
    config: Config,
    table: TableConfig,
    store: Store | None,
    run_id: str | None,
    extractions: RunExtractions | None,
) -> str:
    """The note of a `scope: run` table that holds none of the run's rows. Not an error:
    a merge writes only the rows that changed and a later window replaces an earlier
    one's, so a run's rows may be gone from the table with nothing wrong (they were
    judged by that run's own validation, the rows that replaced them by theirs); an error
    would fail every later rerun of the date. Not a silent pass either: the rules judged
    nothing of the run, and the report says so."""
    rows = None
    if extractions is None and store is not None and run_id is not None:
        extractions = store.extractions.of_run(run_id)
    record = (extractions or {}).get(table.key)
    if store is not None and record is not None and record.file_path:
        file_id = extracted_identity(record.file_path, Path(config.resolve(config.lake)))
        tracked = store.files.get(table_location(config, table), file_id)
        rows = tracked.rows_loaded if tracked is not None else None
    run = f"run {run_id}" if run_id else "the run"
    if rows == 0:
        return f"{run} loaded no rows into this table (its window had none): no rows to judge"
    return (
        f"the table holds none of {run}'s rows now: later loads replaced them all, or its "
        "load changed no row (a merge writes only the rows that changed); nothing of the "
        "run was left to check, so the rules judged no rows"
    )


class Gate:
    """The pre-load gate: called by the loader once per file, after it is read and its
    schema checked, before anything is committed. A failing (or unrunnable)
    error-severity pre-load rule raises GateError, which fails that file (and, as for any
    failed file, holds back the later files of its table); warn rules never block.

    The gate judges the lake file, not the source: once refused, a file is refused again
    by every later load until its window is re-extracted or the rule changes. Such a
    refusal is no new attempt at the file (GateError's `attempt` is False, so it spends
    none of the file's `max_file_retries`): the file and the rules are what they were
    (each refusing result came from the cache, which is keyed by the file's checksum and
    the rule's definition), or every refusing rule could not run at all (an `error`: the
    rule's fault, not the file's). Otherwise a catch-up of N dates would use up the
    file's retries on one unchanged refusal, and `max_file_retries` would then hide the
    repair behind a reset. The loader also spends none on a file the gate refused the
    last time it was tried (`_refused_before`), though a rule judged it again because
    what it reads besides the file (a referential rule's other table) changed."""

    def __init__(self, config: Config, store: Store | None = None) -> None:
        self.config = config
        self.validator = Validator(config, state=store or open_store(config.state_url))
        self.reports: list[TableReport] = []
        self._keys = {t.key for t in config.tables if any(r.stage == "pre_load" for r in t.rules)}

    def __call__(self, target: Any, source: SourceFile, batch: Any) -> None:
        key = getattr(target, "key", None)
        if key not in self._keys:
            return
        fingerprint = f"file:{source.checksum}" if source.checksum else None
        data = memory_input(batch, fingerprint=fingerprint, label=source.path)
        report = self.validator.validate_table(data, key, stage="pre_load")
        table_report = report.tables[0]
        # a file gated twice (before a replay's rewind, then as it is applied) is one report
        self.reports = [
            r for r in self.reports if (r.table, r.source) != (table_report.table, source.path)
        ]
        self.reports.append(table_report)
        blocking = [
            r for r in table_report.results if r.severity == "error" and r.outcome in (FAIL, ERROR)
        ]
        if blocking:
            # a refusal costs a retry only when it judged something new of the file
            attempt = any(r.outcome == FAIL and not r.cached for r in blocking)
            what = "; ".join(
                f"{r.rule} {r.outcome}"
                + (
                    f" ({r.failing_rows} failing rows)"
                    if r.failing_rows
                    else f" (observed {r.observed})"
                    if r.failing_rows is None and r.observed is not None
                    else ""
                )
                + (f": {r.message}" if r.message else "")
                for r in blocking
            )
            if attempt:
                note = ""
            elif all(r.outcome == ERROR for r in blocking):
                note = "; a rule that cannot run is not the file's fault: no retry is spent"
            else:
                note = "; the same file was refused by the same rules before: no retry is spent"
            raise GateError(
                f"{source.path}: pre-load rules refused the file ({what}); nothing of it is "
                f"committed{note}",
                table=key,
                rules=tuple(r.rule for r in blocking),
                attempt=attempt,
                rule_errors_only=all(r.outcome == ERROR for r in blocking),
            )


def rule_warnings(config: Config) -> list[str]:
    """What `check` warns of in the tables' rules (never refuses: the rule may mean it).

    Rules judge what a table holds, and an scd2 table holds its history: every version,
    closed ones included. So a uniqueness rule on (part of) its primary key without a
    `filter` fails as soon as one key changes, and every run after, however clean the
    source is since. Judging the table as it is (not only its current rows) is kept:
    the history is what is loaded, and a rule on it (complete emails in every version)
    may be meant; the current versions are one `filter` away, as dbt's snapshot tests
    add `where: dbt_valid_to is null`. A `scope: run` rule sees the run's new versions
    only: one per key, unless a `validity_column` lets one file hold several."""
    out = []
    for table in config.tables:
        load = table.load
        if load.strategy != "scd2" or not load.primary_key:
            continue
        if table.validation_scope == "run" and load.validity_column is None:
            continue
        for rule in table.rules:
            if not isinstance(rule, Uniqueness) or rule.stage != "post_load" or rule.filter:
                continue
            if not set(rule.columns) <= set(load.primary_key):
                continue
            current = load.is_current_column
            out.append(
                f"table {table.key}: rule {rule.name} (uniqueness on "
                f"{', '.join(rule.columns)}) judges every version the scd2 table holds, "
                "closed ones included: it fails as soon as a key changes, and on every run "
                f"after; add `filter: {current}` to judge the current versions (as dbt's "
                "snapshot tests add `where: dbt_valid_to is null`), or the effective-from "
                f"column ({load.effective_from_column}) to its columns for one row per "
                "version"
            )
    return out


def validation_status(config: Config, store: Store | None = None) -> list[dict[str, Any]]:
    """Each table's last validation: when, on what data, status and outcome counts."""
    return _status_rows(store or open_store(config.state_url), config.pipeline)


def _status_rows(store: Store, pipeline: str) -> list[dict[str, Any]]:
    out = []
    for rec in store.rules.last_validations(pipeline):
        out.append(
            {
                "table": rec.table_key,
                "status": rec.status,
                "counts": rec.counts_data(),
                "started_at": rec.started_at,
                "ended_at": rec.ended_at,
                "fingerprint": rec.fingerprint,
                "run_id": rec.run_id,
                "data_queries": rec.statements,
            }
        )
    return out


def reset_validation_state(
    config: Config,
    *,
    table: str | None = None,
    rule: str | None = None,
    store: Store | None = None,
) -> int:
    """Forget stored validation results: of one rule (`table` and `rule`), one table, or
    all; returns how many results were removed."""
    store = store or open_store(config.state_url)
    if rule is not None and table is None:
        raise ConfigError("--rule needs --table (rule names are unique per table)")
    key = config.table(table).key if table is not None else None
    if key is not None and rule is not None:
        names = {r.name for r in config.table(key).rules}
        if rule not in names:
            known = ", ".join(sorted(names)) or "none"
            raise ConfigError(f"table {key}: no rule {rule!r} (rules: {known})")
    return store.rules.reset(config.pipeline, key, rule)
