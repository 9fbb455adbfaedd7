"""onceflow.yml as pydantic models: ${ENV} interpolation, path resolution, clear errors."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from onceflow.errors import ConfigError
from onceflow.locations import safe_component, table_location
from onceflow.redact import quote_credentials, register_secret, register_url
from onceflow.rules import Rule, rule_list

DEFAULT_CONFIG_NAME = "onceflow.yml"
DEFAULT_STATE = "sqlite:///.onceflow/state.db"
_ENV_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Model):
    """A database to extract from, by SQLAlchemy-style URL."""

    url: str
    reader: Literal["auto", "adbc", "connectorx", "pymysql", "sqlalchemy"] = "auto"

    @property
    def dialect(self) -> str:
        """The URL scheme without its driver part: postgresql, mysql, sqlite, oracle..."""
        scheme = self.url.split(":", 1)[0].lower()
        base = scheme.split("+", 1)[0]
        return {"postgres": "postgresql", "mariadb": "mysql"}.get(base, base)


class RetryConfig(_Model):
    """How transient source errors are retried."""

    max_attempts: int = Field(3, ge=1, le=20)
    backoff_seconds: float = Field(1.0, ge=0)
    max_backoff_seconds: float = Field(30.0, ge=0)


class ExtractConfig(_Model):
    """How a table is read: in full, or by a 24-hour window on a cursor column."""

    mode: Literal["full", "incremental"] = "full"
    cursor: str | None = None
    batch_rows: int = Field(100_000, ge=1_000)

    @model_validator(mode="after")
    def _cursor_for_incremental(self) -> ExtractConfig:
        if self.mode == "incremental" and not self.cursor:
            raise ValueError(
                "incremental mode needs a cursor column: add `cursor: <column>` "
                "(e.g. updated_at) or use `mode: full`"
            )
        return self


class LoadConfig(_Model):
    """How extracted files are loaded into a Delta table."""

    strategy: Literal["append", "overwrite", "merge", "scd2"] = "append"
    target: str | None = None
    primary_key: list[str] = Field(default_factory=list)
    tracking_columns: list[str] | None = None
    delete_column: str | None = None
    effective_from_column: str = "_effective_from"
    effective_to_column: str = "_effective_to"
    is_current_column: str = "_is_current"
    is_deleted_column: str = "_is_deleted"
    validity_column: str | None = None
    hard_deletes: Literal["ignore", "close", "new_record"] = "ignore"
    late_rows: Literal["skip", "reject"] = "skip"
    max_file_retries: int = Field(3, ge=0)

    @model_validator(mode="after")
    def _key_for_keyed_strategies(self) -> LoadConfig:
        if self.strategy in ("merge", "scd2") and not self.primary_key:
            raise ValueError(
                f"strategy {self.strategy} needs a primary key: add `primary_key: [<column>, ...]`"
            )
        return self


class TableConfig(_Model):
    """One table (or query) of a source, and what to do with it."""

    source: str
    table: str | None = None
    query: str | None = None
    name: str | None = None
    extract: ExtractConfig = ExtractConfig()
    load: LoadConfig = LoadConfig()
    rules: list[Rule] = Field(default_factory=list)
    # which rows the post-load rules check: the whole table, or only this run's batches
    scope: Literal["table", "run"] | None = None
    quarantine: bool = False

    @model_validator(mode="before")
    @classmethod
    def _parse_rules(cls, data: Any) -> Any:
        # Parsed here, where the table's key is known, so that a bad rule's one-line
        # message names its table and rule (pydantic's own would say `rules[3].max`).
        if isinstance(data, dict) and isinstance(data.get("rules"), list):
            key = f"{data.get('source')}.{data.get('name') or data.get('table') or '?'}"
            data = {**data, "rules": rule_list(data["rules"], key)}
        return data

    @model_validator(mode="after")
    def _table_or_query(self) -> TableConfig:
        if bool(self.table) == bool(self.query):
            raise ValueError("give exactly one of `table: <schema.table>` or `query: <select ...>`")
        if self.query and not self.name:
            raise ValueError("a query needs a `name:` (used for the output path and the table key)")
        return self

    @property
    def display_name(self) -> str:
        """The table's name in paths and keys: `name`, else `table`."""
        return self.name or self.table or ""

    @property
    def key(self) -> str:
        """The table key, `<source>.<name>`, used by state, reports and --tables."""
        return f"{self.source}.{self.display_name}"

    @property
    def target(self) -> str:
        """The Delta table it loads into: `load.target`, else `<source>/<name>`."""
        if self.load.target:
            return self.load.target
        return f"{safe_component(self.source)}/{safe_component(self.display_name)}"

    @property
    def validation_scope(self) -> str:
        """`scope`, else `run` for append loads (their new rows) and `table` otherwise."""
        return self.scope or ("run" if self.load.strategy == "append" else "table")


class ValidationConfig(_Model):
    """How rules run: the engine, transient-error retries, samples, the fusion size cap."""

    engine: Literal["duckdb"] = "duckdb"
    max_retries: int = Field(3, ge=0, le=20)
    retry_delay: float = Field(1.0, ge=0, le=600)
    samples: int = Field(20, ge=0, le=1000)
    max_fused_aggregates: int = Field(400, ge=1, le=10_000)


class ScheduleConfig(BaseModel):
    """A cron schedule (the scheduler capability reads it)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str
    cron: str


class Config(_Model):
    """The whole onceflow.yml."""

    pipeline: str = "daily_extract"
    state: str = DEFAULT_STATE
    lake: str = "./lake"
    warehouse: str = "./warehouse"
    timezone: str = "UTC"
    workers: int = Field(4, ge=1, le=64)
    # How long a lock counts as held after its holder's last heartbeat (every third of it).
    # A holder on this host is seen dead at once; one on another host only after this.
    lock_ttl_minutes: float = Field(2.0, gt=0, le=24 * 60)
    compression: Literal["snappy", "zstd", "gzip", "lz4", "none"] = "snappy"
    retry: RetryConfig = RetryConfig()
    validation: ValidationConfig = ValidationConfig()
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    tables: list[TableConfig] = Field(default_factory=list)
    schedules: list[ScheduleConfig] = Field(default_factory=list)
    base_dir: str = Field(".", exclude=True)

    @property
    def lock_ttl_seconds(self) -> float:
        """`lock_ttl_minutes` in seconds, as the state store's leases take it."""
        return self.lock_ttl_minutes * 60

    @property
    def pipeline_lock_name(self) -> str:
        """The lock a run or an extraction of this pipeline holds."""
        return f"pipeline:{self.pipeline}"

    @field_validator("pipeline")
    @classmethod
    def _pipeline_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use letters, digits, '_', '.' or '-' (it becomes part of file names)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as UTC or America/New_York"
            ) from None
        return value

    @model_validator(mode="after")
    def _references(self) -> Config:
        if self.schedules:
            raise ValueError(
                "schedules: the scheduler is not part of this onceflow yet; remove "
                "`schedules:` (they would not run)"
            )
        seen: set[str] = set()
        targets: dict[str, str] = {}
        for i, table in enumerate(self.tables):
            if table.source not in self.sources:
                known = ", ".join(sorted(self.sources)) or "none defined"
                raise ValueError(
                    f"tables[{i}].source: unknown source {table.source!r} "
                    f"(sources: {known}); add it under `sources:`"
                )
            if table.key in seen:
                raise ValueError(f"tables[{i}]: table {table.key!r} is listed twice")
            seen.add(table.key)
            target = self.resolve_target(table.target)
            if target in targets:
                raise ValueError(
                    f"tables[{i}].load.target: {table.key!r} would load into the same Delta "
                    f"table as {targets[target]!r} ({table.target}), mixing their rows; give "
                    "one of them its own `load: {target: ...}`"
                )
            targets[target] = table.key
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The configured time zone."""
        return ZoneInfo(self.timezone)

    def resolve(self, path: str) -> str:
        """A path relative to the config file's folder (URLs and absolute paths unchanged)."""
        if "://" in path or path.startswith("/") or path.startswith("dbfs:"):
            return path
        return str((Path(self.base_dir) / path).resolve())

    @property
    def state_url(self) -> str:
        """The state store URL with a relative SQLite path made absolute."""
        prefix = "sqlite:///"
        if self.state.startswith(prefix) and not self.state.startswith(prefix + "/"):
            return prefix + self.resolve(self.state[len(prefix) :])
        return quote_credentials(self.state)

    def resolve_target(self, target: str) -> str:
        """Where a target table lives: a URI or absolute path as given (`dbfs:/x` as
        `/dbfs/x`), else a path under the warehouse."""
        return table_location(self.resolve(self.warehouse), target)

    def source_url(self, name: str) -> str:
        """A source's URL for its driver: a relative SQLite path resolved against the
        config's folder, credentials percent-encoded."""
        url = self.sources[name].url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            return "sqlite:///" + self.resolve(url[len("sqlite:///") :])
        return quote_credentials(url)

    def table(self, key: str) -> TableConfig:
        """The table with this key (or unique name); ConfigError if there is none."""
        matches = [t for t in self.tables if key in (t.key, t.display_name)]
        if len(matches) != 1:
            known = ", ".join(t.key for t in self.tables) or "none"
            problem = "is ambiguous" if matches else "is not in the config"
            raise ConfigError(f"table {key!r} {problem}; tables: {known}")
        return matches[0]


_SECRET_FIELD = re.compile(r"(?i)(^state$|\.url$|pass|secret|token|credential|api_?key$)")


def _holds_secrets(where: str) -> bool:
    """Fields whose ${ENV} values are masked everywhere: URLs, the state store, credentials.

    Other values (a region in a query, say) stay visible, so that a changed value is seen
    as a changed query rather than masked to the same text.
    """
    return bool(_SECRET_FIELD.search(where))


def _interpolate(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match["name"], match["default"]
        if name in os.environ:
            if _holds_secrets(where):
                register_secret(os.environ[name])
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{where}: environment variable {name} is not set; export it or write "
            f"${{{name}:-default}}"
        )

    return _ENV_REF.sub(substitute, value)


def _error_field(error: ValidationError) -> str:
    """The dotted path of the first invalid field, e.g. `tables[0].load.strategy`."""
    loc = ""
    for part in error.errors()[0]["loc"]:
        loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
    return loc


def _format_validation_error(error: ValidationError, origin: str) -> str:
    first = error.errors()[0]
    loc = _error_field(error)
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field; check its spelling against the README's config reference"
    elif first["type"] == "missing":
        message = "required field is missing"
    elif first["type"] == "literal_error":
        message = f"invalid value {first.get('input')!r}: {message}"
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    where = f"{loc}: " if loc else ""
    return f"{origin}: {where}{message}{suffix}"


def config_from_dict(
    data: dict[str, Any], *, base_dir: str = ".", origin: str = "config"
) -> Config:
    """Build a Config from a parsed mapping; ConfigError names the bad field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping of settings at the top level")
    data = _interpolate(data, "")
    try:
        config = Config.model_validate({**data, "base_dir": base_dir})
    except ValidationError as error:
        raise ConfigError(
            _format_validation_error(error, origin), field=_error_field(error)
        ) from None
    for source in config.sources.values():
        register_url(source.url)
    register_url(config.state)
    return config


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate onceflow.yml (default: ./onceflow.yml)."""
    import yaml

    config_path = Path(path or DEFAULT_CONFIG_NAME)
    if not config_path.is_file():
        raise ConfigError(
            f"config file {config_path} not found; pass --config PATH or run `onceflow init DIR`"
        )
    try:
        # libyaml's loader when built in: 10x the pure-Python one on a config of 100 rules
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(config_path.read_text(encoding="utf-8"), Loader=loader) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "unreadable"
        context = getattr(error, "context", None)
        what = f"{problem} ({context})" if context else problem
        raise ConfigError(f"{config_path}: not valid YAML{where}: {what}") from None
    return config_from_dict(
        data, base_dir=str(config_path.resolve().parent), origin=str(config_path)
    )


def single_table_config(
    url: str,
    source_name: str,
    table_name: str,
    *,
    cursor: str | None = None,
    lake: str | None = None,
    state: str | None = None,
    timezone: str | None = None,
    base_dir: str | None = None,
) -> Config:
    """The config of a one-table extraction without a config file (`extract --url ...`):
    a full extract, or a 24-hour window on `cursor`; paths relative to `base_dir` (cwd)."""
    extract = {"mode": "incremental", "cursor": cursor} if cursor else {"mode": "full"}
    return config_from_dict(
        {
            "pipeline": "extract",
            "state": state or DEFAULT_STATE,
            "lake": lake or "./lake",
            "timezone": timezone or "UTC",
            "sources": {source_name: {"url": url}},
            "tables": [{"source": source_name, "table": table_name, "extract": extract}],
        },
        base_dir=base_dir or str(Path.cwd()),
        origin="command line",
    )


def standalone_config(
    *,
    state: str | None = None,
    warehouse: str | None = None,
    pipeline: str | None = None,
    base_dir: str | None = None,
) -> Config:
    """The config of a standalone load without a config file (`load --path ...`), or of a
    state store shown without one (`status` after single-table extracts)."""
    data = {"state": state or DEFAULT_STATE, "warehouse": warehouse or "./warehouse"}
    if pipeline:
        data["pipeline"] = pipeline
    return config_from_dict(data, base_dir=base_dir or str(Path.cwd()), origin="command line")
