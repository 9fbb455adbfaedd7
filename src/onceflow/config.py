"""onceflow.yml as pydantic models: ${ENV} interpolation, the seeds' key spellings as
synonyms, path resolution, clear errors."""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from onceflow.dialects import scheme_problem
from onceflow.durations import duration_seconds
from onceflow.errors import ConfigError, did_you_mean, field_problem, first_problem
from onceflow.locations import (
    folder_location,
    normalize_path,
    safe_component,
    table_location,
    within,
)
from onceflow.redact import (
    credentials_end,
    mask_url,
    quote_credentials,
    redact,
    register_secret,
    register_url,
)

if TYPE_CHECKING:
    from onceflow.rules import Rule
else:
    # the 13 rule models take ~25 ms to build: a config whose tables have no rules (a
    # small extraction's) never loads them; `_parse_rules` parses rules into them
    Rule = Any

logger = logging.getLogger(__name__)

DEFAULT_CONFIG_NAME = "onceflow.yml"
DEFAULT_STATE = "sqlite:///.onceflow/state.db"
_ENV_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
#: A `${` that does not start a reference `_ENV_REF` reads, up to its `}` (or the end).
_BAD_REF = re.compile(r"\$\{(?![A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\})[^}]{0,40}\}?")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
#: The state store URL schemes onceflow.state.open_store opens.
STATE_SCHEMES = ("sqlite", "postgresql", "postgres", "postgresql+psycopg")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def __repr_args__(self) -> Any:
        # repr() and str() of a config are what a user prints, logs or an error reporter
        # captures: a source URL there holds its resolved ${PASSWORD}. model_dump() keeps
        # the values (onceflow connects with them).
        for name, value in super().__repr_args__():
            if isinstance(value, str):
                value = mask_url(value) if "://" in value else redact(value)
            yield name, value


def _no_boolean(value: Any, info: ValidationInfo) -> Any:
    """A number field's value, refused when YAML read it as a boolean: pydantic takes
    `true` for 1 (`workers: true`, one worker), which no one writes to mean 1."""
    if isinstance(value, bool):
        raise ValueError(
            f"expected a number, got {str(value).lower()} (a boolean); write the number, "
            f"or leave `{info.field_name}` out for its default"
        )
    return value


def _check_url(url: str, example: str) -> str:
    """A database URL's shape, refused when the config is read rather than when a step
    first connects: a scheme (`<dialect>://`) and, if given, a numeric port. Never quoted
    in the message (it may hold a password)."""
    from urllib.parse import urlsplit

    scheme, sep, _ = url.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", scheme):
        raise ValueError(f"expected a URL such as {example}")
    try:
        _ = urlsplit(quote_credentials(url)).port  # reading it checks it
    except ValueError:
        rest = url.partition("://")[2]
        # the host is after the credentials' '@', else after the last '@' (a bad port
        # makes the credentials' end unclear): never in the password, so the port
        # quoted below is never a piece of it (as the text before a '/' in it would be)
        at = credentials_end(rest)
        host = re.split(r"[/?#]", rest[(at if at >= 0 else rest.rfind("@")) + 1 :], maxsplit=1)[0]
        port = (
            host.rpartition("]")[2].partition(":")[2]
            if host.startswith("[")
            else host.partition(":")[2]
        )
        if not port or (port.isdigit() and int(port) <= 65535):
            raise ValueError(
                "the port is not a port number (0 to 65535), or the host cannot be told "
                "from the password: write host:PORT with digits only and percent-encode a "
                f"password holding '/', '@', '?' or '#' (%2F, %40, %3F, %23), e.g. {example}"
            ) from None
        raise ValueError(
            f"the port {port!r} is not a port number (0 to 65535): write host:PORT with "
            f"digits only, e.g. {example}"
        ) from None
    return url


#: The DB-API module SQLAlchemy imports for a URL without `+driver`, and the spelling of
#: the same URL with a driver installed with onceflow.
_SA_DEFAULT_DRIVER = {
    "mysql": ("MySQLdb", "mysql+pymysql://"),
    "mariadb": ("MySQLdb", "mariadb+pymysql://"),
    "postgresql": ("psycopg", "postgresql+psycopg://"),
    "postgres": ("psycopg", "postgresql+psycopg://"),
    "oracle": ("cx_Oracle", "oracle+oracledb://"),
}
#: The module of a `+driver` SQLAlchemy names by another name.
_SA_DRIVER_MODULE = {"mysqldb": "MySQLdb", "cx_oracle": "cx_Oracle", "mysqlconnector": "mysql"}


class SourceConfig(_Model):
    """A database to extract from, by SQLAlchemy-style URL."""

    url: str
    # no `pymysql`: it is only the MySQL reader's preflight; accepted, it read through
    # the dialect's native reader as `auto` does, naming a reader there is not
    reader: Literal["auto", "adbc", "connectorx", "sqlalchemy"] = "auto"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if _ENV_REF.search(value):
            return value  # a `${VAR}` not set yet: checked once resolved (Config.source)
        url = _check_url(value, "postgresql://user@db-host:5432/shop")
        # a typo of a known dialect or driver only: another scheme may be a package's
        # that a host which only loads or reports need not have (`driver_problem` checks)
        problem = scheme_problem(url.partition("://")[0], strict=False)
        if problem:
            raise ValueError(problem)
        return url

    @property
    def resolved_reader(self) -> str:
        """The reader `auto` stands for: ADBC for PostgreSQL and SQLite, ConnectorX (after
        a pymysql preflight) for MySQL/MariaDB, SQLAlchemy for any other dialect."""
        if self.reader != "auto":
            return self.reader
        return {"postgresql": "adbc", "sqlite": "adbc", "mysql": "connectorx"}.get(
            self.dialect, "sqlalchemy"
        )

    def reader_problem(self) -> str | None:
        """Why `reader:` cannot read this dialect (ADBC reads PostgreSQL and SQLite here,
        ConnectorX MySQL/MariaDB), with the fix; None when it can. Such a reader used to
        be swapped for the dialect's own without a word."""
        native = {"postgresql": "adbc", "sqlite": "adbc", "mysql": "connectorx"}.get(self.dialect)
        if self.reader in ("adbc", "connectorx") and self.reader != native:
            auto = f"`reader: auto` ({native})" if native else "`reader: auto`"
            return (
                f"reader {self.reader!r} does not read {self.dialect} in onceflow: use {auto} "
                "or `reader: sqlalchemy`"
            )
        driver = self.url.split("://", 1)[0].lower().partition("+")[2]
        if (
            self.dialect == "postgresql"
            and self.reader == "sqlalchemy"
            and driver not in ("", "psycopg")
        ):
            # onceflow reads the server's text through psycopg 3's loaders; psycopg2 and
            # the others parse json (`"hello"` -> hello, JSON null -> NULL) and drop a
            # timetz's offset, with no error
            return (
                f"`reader: sqlalchemy` reads PostgreSQL through psycopg (3) only, not "
                f"{driver}, whose values differ from the server's (json parsed, a "
                "timetz's offset dropped): write the URL as postgresql+psycopg://... or "
                "postgresql://..., or use `reader: auto`"
            )
        return None

    def driver_problem(self) -> str | None:
        """Why this URL's dialect or driver cannot be read, with the fix: a scheme that
        neither SQLAlchemy nor an installed package provides (`scheme_problem`), or a
        SQLAlchemy driver that is not installed; None when it can be read (or another
        reader is used). Checked when the source is connected and by `check`, not when any
        config is read: a host that only loads or reports needs no driver."""
        import importlib.util

        scheme = self.url.split("://", 1)[0].lower()
        unknown = scheme_problem(scheme, strict=True)
        if unknown:
            return unknown
        if self.resolved_reader != "sqlalchemy":
            return None
        base, _, driver = scheme.partition("+")
        if driver:
            module = _SA_DRIVER_MODULE.get(driver, driver)
        elif base in _SA_DEFAULT_DRIVER:
            module = _SA_DEFAULT_DRIVER[base][0]
        else:
            return None  # SQLAlchemy's own message names its dialect's driver
        if importlib.util.find_spec(module) is not None:
            return None
        fixes = []
        if base in _SA_DEFAULT_DRIVER:
            fixes.append(
                f"write the URL as {_SA_DEFAULT_DRIVER[base][1]}... (its driver is "
                "installed with onceflow)"
            )
        if self.dialect in ("postgresql", "mysql", "sqlite") and self.reader == "sqlalchemy":
            fixes.append("use `reader: auto`")
        return (
            f"{scheme}:// read through SQLAlchemy needs the Python module {module!r}, which "
            f"is not installed: {' or '.join(fixes) or f'install {module}'}"
        )

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

    _numbers = field_validator("*", mode="before")(_no_boolean)


class ExtractConfig(_Model):
    """How a table is read: in full, or by a 24-hour window on a cursor column."""

    mode: Literal["full", "incremental"] = "full"
    cursor: str | None = None
    batch_rows: int = Field(100_000, ge=1_000)
    # rows whose cursor is NULL (a MariaDB zero date, PostgreSQL +-infinity) are in no
    # window: fail the table naming their count (the default: nothing is lost silently),
    # or extract the window without them and warn with the count every run
    null_cursor: Literal["fail", "skip"] = "fail"

    _numbers = field_validator("batch_rows", mode="before")(_no_boolean)

    @model_validator(mode="after")
    def _cursor_for_incremental(self) -> ExtractConfig:
        if self.mode == "incremental" and not self.cursor:
            raise ValueError(
                "incremental mode needs a cursor column: add `cursor: <column>` "
                "(e.g. updated_at) or use `mode: full`"
            )
        # a full extract reads every row, with no window: it would ignore these, and an
        # `extract: {cursor: ts}` that forgot `mode: incremental` (full is the default)
        # would read the whole table every run while it says otherwise
        written = self.model_fields_set
        ignored = [k for k in ("cursor", "null_cursor") if k in written and getattr(self, k)]
        if self.mode == "full" and ignored:
            default = "" if "mode" in written else " (the default)"
            raise ValueError(
                f"mode full{default} reads the whole table with no window and would ignore "
                f"`{ignored[0]}`: set `mode: incremental` to extract a 24-hour window on "
                f"the cursor, or remove `{'` and `'.join(ignored)}`"
            )
        return self


#: The columns onceflow writes on every loaded row (`warehouse.audit` builds them from
#: these names). A column the load config names may not be one of them: a source column
#: of that name is refused at load, and an SCD2 column of that name would be overwritten.
AUDIT_COLUMN_NAMES = ("_source_file", "_load_timestamp", "_batch_id")

#: The load options that name a column (one, or a list).
_COLUMN_OPTIONS = (
    "primary_key",
    "tracking_columns",
    "delete_column",
    "validity_column",
    "effective_from_column",
    "effective_to_column",
    "is_current_column",
    "is_deleted_column",
)


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
    # a column the source widened: rewrite the table with the wider type (True), or cast
    # the file's values to the table's type when each one fits exactly (False)
    widen: bool = False

    _numbers = field_validator("max_file_retries", mode="before")(_no_boolean)

    @field_validator("primary_key", "tracking_columns")
    @classmethod
    def _each_once(cls, value: list[str] | None) -> list[str] | None:
        # a key listed twice joins on one column twice; a tracked column twice is a typo
        # for another column more often than not: either way, say so
        seen: set[str] = set()
        for column in value or []:
            if column in seen:
                raise ValueError(f"column {column!r} is listed twice; list each column once")
            seen.add(column)
        return value

    @field_validator("tracking_columns")
    @classmethod
    def _tracks_something(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        keys = info.data.get("primary_key") or []
        if value is not None and not [c for c in value if c not in keys]:
            # no tracked column can change, so no key would ever get a second version
            listed = "an empty list" if not value else "a list of key columns only"
            raise ValueError(
                f"{listed} tracks no change, so no key would get a new version after its "
                "first; list the columns whose changes make a version, or leave "
                "`tracking_columns` out to track every non-key column"
            )
        return value

    @field_validator("target")
    @classmethod
    def _a_target(cls, value: str | None) -> str | None:
        # '' was taken as no target, `<source>/<table>`: say so rather than guess
        if value is not None and not value.strip():
            raise ValueError(
                "is empty: leave `target` out to load into <warehouse>/<source>/<table>, or "
                "give a path under the warehouse or an absolute path"
            )
        return value

    @field_validator(*_COLUMN_OPTIONS)
    @classmethod
    def _names_a_column(
        cls, value: str | list[str] | None, info: ValidationInfo
    ) -> str | list[str] | None:
        # '' passed `check` and failed the load (`primary key column(s) '' missing`), or
        # made a Delta column without a name (`effective_from_column: ''`)
        named = value if isinstance(value, list) else [value]
        empty = [c for c in named if c is not None and not c.strip()]
        if empty:
            default = cls.model_fields[str(info.field_name)].default
            leave = (
                f", or leave `{info.field_name}` out for its default {default!r}"
                if isinstance(default, str)
                else ""
            )
            raise ValueError(f"{empty[0]!r} names no column: give the column's name{leave}")
        return value

    @field_validator(*_COLUMN_OPTIONS)
    @classmethod
    def _no_audit_column_names(cls, value: str | list[str] | None) -> str | list[str] | None:
        named = value if isinstance(value, list) else [value]
        clash = [c for c in named if c in AUDIT_COLUMN_NAMES]
        if clash:
            raise ValueError(
                f"{clash[0]!r} is one of onceflow's audit columns "
                f"({', '.join(AUDIT_COLUMN_NAMES)}), which every loaded row gets: a source "
                "column of that name is refused when loaded, and a column onceflow writes "
                "under it would be overwritten; name another column"
            )
        return value

    @model_validator(mode="after")
    def _key_for_keyed_strategies(self) -> LoadConfig:
        if self.strategy in ("merge", "scd2") and not self.primary_key:
            raise ValueError(
                f"strategy {self.strategy} needs a primary key: add `primary_key: [<column>, ...]`"
            )
        return self

    def column_clash(self) -> tuple[str, str] | None:
        """An SCD2 column named as another SCD2 column, or as a key or tracked column:
        (the option to change, why); None when they are apart. The load refuses either
        (its SCD2 columns must be distinct, and a file column may not be one of them),
        so `check` does, naming the option written rather than its default partner."""
        if self.strategy != "scd2":
            return None
        scd2 = [
            "effective_from_column",
            "effective_to_column",
            "is_current_column",
            "is_deleted_column",
        ]
        for i, option in enumerate(scd2):
            name = getattr(self, option)
            for other in scd2[:i]:
                if getattr(self, other) != name:
                    continue
                # name the one the user wrote: the later, unless only the earlier was
                blamed, partner = (
                    (other, option)
                    if other in self.model_fields_set and option not in self.model_fields_set
                    else (option, other)
                )
                default = "" if partner in self.model_fields_set else " (its default)"
                return blamed, (
                    f"{name!r} is also `{partner}`{default}: the four SCD2 columns (effective "
                    "from, effective to, is current, is deleted) need four names; name "
                    "another column"
                )
            for listing in ("primary_key", "tracking_columns"):
                if name not in (getattr(self, listing) or []):
                    continue
                why = (
                    "onceflow writes the SCD2 column itself, and a source column of its "
                    "name is refused when loaded; name another column"
                )
                if option in self.model_fields_set:
                    return option, f"{name!r} is also in `{listing}`: {why}"
                return listing, f"{name!r} is also `{option}` (its default): {why}"
        return None

    def inapplicable(self) -> tuple[str, str] | None:
        """The first option written that the strategy does not read, and why with what to
        use instead; None when every option given applies. An option the strategy would
        ignore (`hard_deletes` on a merge) is a pipeline that silently does not do what
        it says, so the config is refused instead (see `LOAD_OPTION_STRATEGIES`)."""
        for option, strategies in LOAD_OPTION_STRATEGIES.items():
            if option in self.model_fields_set and self.strategy not in strategies:
                readers = " and ".join(strategies)
                verb = "read" if len(strategies) > 1 else "reads"
                hint = _INSTEAD.get((option, self.strategy)) or _INSTEAD[(option, "")]
                return option, (
                    f"strategy {self.strategy} would ignore it (only {readers} {verb} it); "
                    f"{hint.format(strategy=self.strategy)}"
                )
        return None


#: The strategies that read each load option (the others: every strategy). A strategy
#: not listed would ignore the option, so `LoadConfig.inapplicable` refuses it.
LOAD_OPTION_STRATEGIES: dict[str, tuple[str, ...]] = {
    "primary_key": ("merge", "scd2"),
    "validity_column": ("merge", "scd2"),
    "delete_column": ("merge",),
    "tracking_columns": ("scd2",),
    "hard_deletes": ("scd2",),
    "late_rows": ("scd2",),
    "effective_from_column": ("scd2",),
    "effective_to_column": ("scd2",),
    "is_current_column": ("scd2",),
    # read by scd2 whatever `hard_deletes` is now: a table that has the column from an
    # earlier `new_record` keeps honouring its deletion versions
    "is_deleted_column": ("scd2",),
}
# what to write instead of an option the strategy would ignore: (option, strategy), else
# (option, "") for every strategy
_INSTEAD: dict[tuple[str, str], str] = {
    ("primary_key", ""): (
        "{strategy} does not match rows by key: use `strategy: merge` to upsert on it (or "
        "`scd2` to keep versions), or a `uniqueness` rule to check it, and remove `primary_key`"
    ),
    ("validity_column", ""): (
        "it orders the rows of one key: use `strategy: merge` or `scd2` with a "
        "`primary_key`, or remove it"
    ),
    ("delete_column", "scd2"): (
        "scd2 would keep the flag as a tracked value and never end the key: for keys "
        "deleted at the source write `hard_deletes: close` (or `new_record`) with full "
        "extracts, and remove `delete_column`"
    ),
    ("delete_column", ""): (
        "{strategy} would store the flag as an ordinary column: use `strategy: merge` "
        "(with a `primary_key`) to delete flagged rows, or remove it"
    ),
    ("tracking_columns", "merge"): (
        "merge updates every column of a changed row: remove it, or use `strategy: scd2` "
        "to keep a version per change of those columns"
    ),
    ("tracking_columns", ""): (
        "use `strategy: scd2` (with a `primary_key`) to keep a version per change of "
        "those columns, or remove it"
    ),
    ("hard_deletes", "merge"): (
        "merge deletes a row only when a flag column of the source says so: name it "
        "with `delete_column: <column>` (or use `strategy: overwrite` to mirror each full "
        "snapshot, deleted rows included), and remove `hard_deletes`"
    ),
    ("hard_deletes", "overwrite"): (
        "overwrite replaces the table with each file, so a row absent from the source "
        "is gone from the table already: remove it"
    ),
    ("hard_deletes", ""): (
        "{strategy} keeps every row it was given: use `strategy: scd2` to end keys "
        "absent from a full snapshot (or `merge` with `delete_column` to delete flagged "
        "rows), or remove it"
    ),
    ("late_rows", ""): (
        "only scd2 compares a row with the version already in the table: remove it"
    ),
    **{
        (column, ""): "it names an SCD2 column: remove it, or use `strategy: scd2`"
        for column in (
            "effective_from_column",
            "effective_to_column",
            "is_current_column",
            "is_deleted_column",
        )
    },
}


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
        if isinstance(data, dict) and isinstance(data.get("rules"), list) and data["rules"]:
            from onceflow.rules import rule_list

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

    _numbers = field_validator(
        "max_retries", "retry_delay", "samples", "max_fused_aggregates", mode="before"
    )(_no_boolean)


def parse_duration(value: str | float | int) -> float:
    """Seconds of a duration: `90s`, `45m`, `2h`, `1h30m`, `1d`, `1w`, or a number of
    minutes (see onceflow.durations)."""
    return duration_seconds(value, bare=60, bare_name="minutes")


class ScheduleRetryConfig(_Model):
    """How a failed scheduled run is retried: exponential backoff, only for listed errors.

    The delay before retry n (1-based) is `backoff_base_minutes * backoff_multiplier**(n-1)`,
    capped at `max_delay_minutes`, then spread by +/- `jitter` (a fraction).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    max_retries: int = 3
    backoff_base_minutes: float = Field(1.0, gt=0)
    backoff_multiplier: float = Field(2.0, ge=1)
    max_delay_minutes: float = Field(60.0, gt=0)
    jitter: float = Field(0.0, ge=0, le=1)
    # None: every error except the ones that cannot heal by waiting (a config error).
    retry_on: list[str] | None = Field(
        None, validation_alias=AliasChoices("retry_on", "retry_on_errors")
    )

    _numbers = field_validator(
        "backoff_base_minutes", "backoff_multiplier", "max_delay_minutes", "jitter", mode="before"
    )(_no_boolean)

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, data: Any) -> Any:
        # pydantic takes one alias and calls the other an unknown field ("check its
        # spelling"), which it is not. Refused even with equal values, as
        # RetryPolicy(retry_on=..., retry_on_errors=...) is: one setting, one place.
        if isinstance(data, Mapping) and "retry_on" in data and "retry_on_errors" in data:
            raise ValueError(
                "retry_on_errors and retry_on are both given: they are two spellings of "
                "the same setting (retry_on_errors is the seed's); keep one of them"
            )
        return data

    @field_validator("max_retries", mode="before")
    @classmethod
    def _retries(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number from 0 to 100, got {value!r}")
        if value < 0 or value > 100:
            raise ValueError(f"must be between 0 and 100, got {value}")
        return value

    @field_validator("retry_on", mode="before")
    @classmethod
    def _known_errors(cls, value: Any) -> Any:
        from onceflow.errors import check_error_name

        if value is None:
            return value
        if not isinstance(value, list):
            raise ValueError(f"expected a list of error type names, got {value!r}")
        return [check_error_name(name) for name in value]


class CatchUpMax(_Model):
    """Catch up at most the `max` latest missed ticks."""

    max: int = Field(ge=1, le=100_000)


class WindowDaysBefore(_Model):
    """The local day `days_before` days before the tick's local date."""

    days_before: int = Field(ge=0, le=3660)


# Schedule keys onceflow records runs under itself: a schedule of that name would share
# their (pipeline, schedule, tick) keys, and its ticks or their dates would be dropped as
# already recorded. Compared without case, as a name differing only in case misleads.
RESERVED_SCHEDULE_NAMES = {
    "backfill": "backfill runs are recorded under the schedule 'backfill'",
    "manual": "runs made with PipelineStateManager.create_scheduled_run are recorded "
    "under the schedule 'manual'",
}


class ScheduleConfig(_Model):
    """A cron schedule: when ticks fire (cron in a time zone) and what each tick runs."""

    name: str
    cron: str
    timezone: str | None = None
    tables: list[str] | None = None
    tenant: str = "default"
    priority: int = 5
    retry: ScheduleRetryConfig = ScheduleRetryConfig()
    catch_up: Literal["none", "latest", "all"] | CatchUpMax = "latest"
    max_runtime: str | float = "6h"
    window: Literal["previous_day", "same_day"] | WindowDaysBefore = "previous_day"
    start: datetime | None = None

    @field_validator("name")
    @classmethod
    def _schedule_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"invalid schedule name {value!r}: use letters, digits, '_', '.' or '-'"
            )
        if value.lower() in RESERVED_SCHEDULE_NAMES:
            raise ValueError(
                f"the schedule name {value!r} is reserved: "
                f"{RESERVED_SCHEDULE_NAMES[value.lower()]}; choose another name"
            )
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from onceflow.cronspec import check_cron

        return check_cron(value)

    @field_validator("catch_up", mode="before")
    @classmethod
    def _catch_up(cls, value: Any) -> Any:
        if value in ("none", "latest", "all"):
            return value
        n = value.get("max") if isinstance(value, dict) and set(value) == {"max"} else None
        if isinstance(n, int) and not isinstance(n, bool) and n >= 1:
            return value
        raise ValueError(
            f"invalid catch-up policy {value!r}: expected none, latest, all or {{max: N}} "
            "with N >= 1"
        )

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> Any:
        if value in ("previous_day", "same_day"):
            return value
        n = (
            value.get("days_before")
            if isinstance(value, dict) and set(value) == {"days_before"}
            else None
        )
        if isinstance(n, int) and not isinstance(n, bool) and n >= 0:
            return value
        raise ValueError(
            f"invalid window {value!r}: expected previous_day, same_day or {{days_before: N}}"
        )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else _check_zone(value)

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: Any) -> Any:
        # `true` would be read as 1 and 2.5 as 2: refused, as the queue refuses them
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number from 1 (highest) to 10, got {value!r}")
        if not 1 <= value <= 10:
            raise ValueError(f"must be between 1 (highest) and 10, got {value}")
        return value

    @field_validator("tenant", mode="before")
    @classmethod
    def _tenant(cls, value: Any) -> Any:
        if not isinstance(value, str) or not value.strip() or value != value.strip():
            raise ValueError(
                f"must be a non-empty name without leading or trailing spaces, got {value!r}"
            )
        return value

    @field_validator("max_runtime")
    @classmethod
    def _runtime(cls, value: str | float) -> str | float:
        parse_duration(value)
        return value

    @field_validator("start", mode="before")
    @classmethod
    def _no_number_start(cls, value: Any) -> Any:
        # pydantic reads a number as seconds since 1970: `start: 2025` would be 00:33:45
        # on 1 January 1970, not the year
        if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
            raise ValueError(
                f"expected a date and time with its offset, e.g. 2025-01-01T00:00:00+00:00, "
                f"got {value!r}"
            )
        return value

    @field_validator("start")
    @classmethod
    def _aware_start(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give an offset, e.g. 2025-01-01T00:00:00+00:00")
        return value

    @property
    def max_runtime_seconds(self) -> float:
        """`max_runtime` in seconds."""
        return parse_duration(self.max_runtime)

    @property
    def catch_up_policy(self) -> str | int:
        """`none`, `latest`, `all`, or the maximum number of missed ticks to run."""
        return self.catch_up.max if isinstance(self.catch_up, CatchUpMax) else self.catch_up

    @property
    def window_days_before(self) -> int:
        """How many days before its local date the window of a tick is."""
        if isinstance(self.window, WindowDaysBefore):
            return self.window.days_before
        return 1 if self.window == "previous_day" else 0


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}: use an IANA name such as UTC or America/New_York"
        ) from None
    return value


# the validation context's key of `config_from_dict(one_step=True)`
_ONE_STEP = "one_step"

# the longest `settle`: past it a window would wait longer than late rows plausibly take
# (and a date far enough on is past Python's year 9999)
SETTLE_MAX_SECONDS = 30 * 86_400


class Config(_Model):
    """The whole onceflow.yml."""

    pipeline: str = "daily_extract"
    state: str = DEFAULT_STATE
    lake: str = "./lake"
    warehouse: str = "./warehouse"
    timezone: str = "UTC"
    workers: int = Field(4, ge=1, le=64)
    # how long after its end a window is taken as complete (rows committed late: a
    # transaction open across midnight, replica lag); before that it is refused as one
    # that has not ended. A duration (`2h`, `30m`) or minutes; none by default
    settle: str | float | None = None
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
    # the seed validator's JSON state file, when `pipeline: {state_file: x.json}` named
    # one (the store is x.db beside it): set by config_from_dict, never a key of the file
    _seed_state_file: str | None = PrivateAttr(None)
    # the file's name for messages, and the lazy fields whose `${VAR}` was not set when
    # it was read (`_LAZY_FIELD`): resolved by `source()` when the source is connected
    _origin: str = PrivateAttr("config")
    _unset: frozenset[str] = PrivateAttr(frozenset())

    _numbers = field_validator("workers", "lock_ttl_minutes", mode="before")(_no_boolean)

    @property
    def seed_state_file(self) -> str | None:
        """The seed validator's JSON state file this config named (an absolute path), or
        None. onceflow never writes it; see onceflow.validate.seed_state."""
        return self._seed_state_file

    @field_validator("settle", mode="before")
    @classmethod
    def _settle(cls, value: Any) -> Any:
        # before pydantic reads `true` as the number 1 (a minute); 0 is no settle period
        unset = value is None or (value == 0 and not isinstance(value, bool))
        if not unset and parse_duration(value) > SETTLE_MAX_SECONDS:
            raise ValueError(
                f"{value!r} is more than 30 days, the longest a window may wait to settle "
                "(rows committed later than that are a backfill: re-extract the window "
                "with --force-reprocess); use e.g. 2h or 1d"
            )
        return value

    @property
    def settle_seconds(self) -> float:
        """`settle` in seconds (0 without it)."""
        return 0.0 if self.settle is None or self.settle == 0 else parse_duration(self.settle)

    @property
    def lock_ttl_seconds(self) -> float:
        """`lock_ttl_minutes` in seconds, as the state store's leases take it."""
        return self.lock_ttl_minutes * 60

    @property
    def pipeline_lock_name(self) -> str:
        """The lock a run or an extraction of this pipeline holds."""
        return f"pipeline:{self.pipeline}"

    def run_lock_name(self, run_id: str) -> str:
        """The lock one run holds (`run`, and a scheduled run's worker), so that runs of
        other dates of the pipeline go on."""
        return f"{self.pipeline_lock_name}@{run_id}"

    @field_validator("state")
    @classmethod
    def _state_url(cls, value: str) -> str:
        # refused here, not when a command first opens the store (exit 1, after `check`
        # said the config was fine)
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in STATE_SCHEMES:
            given = f"scheme {scheme!r}" if scheme else "not a URL"
            raise ValueError(
                f"unsupported state store ({given}): use sqlite:///path/state.db (a local "
                "file) or postgresql://user@host/db (a shared store; also postgres:// and "
                "postgresql+psycopg://)"
            )
        if scheme == "sqlite" and value.split("://", 1)[1].lstrip("/") in ("", ":memory:"):
            raise ValueError(
                "an in-memory SQLite store cannot be shared between steps: give a file, "
                "e.g. sqlite:///.onceflow/state.db"
            )
        return _check_url(value, "postgresql://user@db-host:5432/onceflow")

    @field_validator("lake", "warehouse")
    @classmethod
    def _a_folder(cls, value: str, info: ValidationInfo) -> str:
        # '' would be the config's own folder, which holds the other and the state store
        if not value.strip():
            raise ValueError(f"is empty: give a folder, e.g. ./{info.field_name}")
        return value

    @field_validator("pipeline")
    @classmethod
    def _pipeline_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use letters, digits, '_', '.' or '-' (it becomes part of file names)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _check_zone(value)

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> Config:
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
            for problem in (table.load.inapplicable(), table.load.column_clash()):
                if problem is not None:
                    option, why = problem
                    raise ValueError(f"tables[{i}].load.{option}: {why}")
            if table.load.hard_deletes != "ignore" and table.extract.mode == "incremental":
                # an incremental file holds only the rows changed in its window: every key
                # it lacks would be taken for deleted, ending versions still in the source
                raise ValueError(
                    f"tables[{i}].load.hard_deletes: {table.load.hard_deletes} needs full "
                    "extracts (a key absent from a file is taken for deleted, but an "
                    "incremental file holds only the rows changed in its window); use "
                    "`extract: {mode: full}`, or `hard_deletes: ignore`"
                )
            seen.add(table.key)
            target = self.resolve_target(table.target)
            if target in targets:
                raise ValueError(
                    f"tables[{i}].load.target: {table.key!r} would load into the same Delta "
                    f"table as {targets[target]!r} ({table.target}), mixing their rows; give "
                    "one of them its own `load: {target: ...}`"
                )
            targets[target] = table.key
            _no_escapes(self, table, i, target)
        places = _no_nested_tables(self, targets)
        if not (info.context or {}).get(_ONE_STEP):
            _lake_apart(self, places)
        names: set[str] = set()
        for schedule in self.schedules:
            where = f"schedules[{schedule.name}]"
            if schedule.name in names:
                raise ValueError(f"{where}.name: schedule {schedule.name!r} is listed twice")
            names.add(schedule.name)
            if schedule.tables == []:
                # as `--tables ""` is refused: an empty list would mean every table
                raise ValueError(
                    f"{where}.tables: empty; list at least one table, or leave `tables` out "
                    "for every table"
                )
            for key in schedule.tables or []:
                if not [t for t in self.tables if key in (t.key, t.display_name)]:
                    known = ", ".join(t.key for t in self.tables) or "none"
                    raise ValueError(f"{where}.tables: unknown table {key!r} (tables: {known})")
        return self

    def schedule(self, name: str) -> ScheduleConfig:
        """The schedule with this name; ConfigError if there is none."""
        for schedule in self.schedules:
            if schedule.name == name:
                return schedule
        known = ", ".join(s.name for s in self.schedules) or "none"
        raise ConfigError(
            f"schedule {name!r} is not in the config (schedules: {known})", field="schedules"
        )

    def schedule_zone(self, schedule: ScheduleConfig) -> ZoneInfo:
        """The time zone a schedule's cron runs in: its own, else the pipeline's."""
        return ZoneInfo(schedule.timezone or self.timezone)

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

    def source(self, name: str) -> SourceConfig:
        """A source, its URL's `${VAR}` references resolved: the config is read without
        them (see `_LAZY_FIELD`), a connection needs them. ConfigError naming the field
        when one is not set, or when the URL it makes is not a valid one."""
        source = self.sources[name]
        where = f"sources.{name}.url"
        if where not in self._unset:
            return source
        url = _interpolate(source.url, where, self._origin)
        try:
            resolved = SourceConfig.model_validate({"url": url, "reader": source.reader})
        except ValidationError as error:
            problem = field_problem(first_problem(error.errors()), show_input=False)
            raise ConfigError(f"{self._origin}: {where}: {problem}", field=where) from None
        register_url(url)
        return resolved

    def check_sources(self) -> None:
        """ConfigError naming the first source whose URL cannot be used: a `${VAR}` not
        set, or a dialect or driver that is not installed (`driver_problem`). Checked by
        `onceflow check` and when a source is connected, not whenever a config is read:
        a host that only loads or reports needs neither the secrets nor the drivers."""
        for name in self.sources:
            source = self.source(name)
            for field, problem in (
                ("reader", source.reader_problem()),
                ("url", source.driver_problem()),
            ):
                if problem:
                    where = f"sources.{name}.{field}"
                    raise ConfigError(f"{self._origin}: {where}: {problem}", field=where)

    def source_url(self, name: str) -> str:
        """A source's URL for its driver: a relative SQLite path resolved against the
        config's folder, credentials percent-encoded."""
        url = self.source(name).url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            return "sqlite:///" + self.resolve(url[len("sqlite:///") :])
        return quote_credentials(url)

    def table(self, key: str) -> TableConfig:
        """The table with this key (or unique name); ConfigError if there is none."""
        matches = self.tables_named(key)
        if len(matches) != 1:
            known = ", ".join(t.key for t in self.tables) or "none"
            problem = "is ambiguous" if matches else "is not in the config"
            raise ConfigError(f"table {key!r} {problem}; tables: {known}")
        return matches[0]

    def tables_named(self, name: str) -> list[TableConfig]:
        """The tables whose key or name is `name`, in config order: none, one, or more
        (an ambiguous name, which `table()` refuses)."""
        return list(self._tables_by_name().get(name, ()))

    def _tables_by_name(self) -> dict[str, list[TableConfig]]:
        """Each table key and name -> the tables it names, in config order. A scan per
        `table()` call made the per-table lookups of a 1,000-table config 2M `key` calls
        (2.5 s of a run).

        Kept in the instance's `__dict__`, as `functools.cached_property` keeps its value:
        pydantic leaves such keys out of `==` and `model_dump`, where a private attribute
        would make a config that was asked for a table unequal to one that was not. It is
        built again when `tables` is another list or another length (`model_copy` copies
        the `__dict__`, so a copy with other tables would otherwise use this one's)."""
        cached = self.__dict__.get("_tables_index")
        if cached is not None and cached[0] is self.tables and cached[1] == len(self.tables):
            return cast(dict[str, list[TableConfig]], cached[2])
        index: dict[str, list[TableConfig]] = {}
        for t in self.tables:
            for name in dict.fromkeys((t.key, t.display_name)):
                index.setdefault(name, []).append(t)
        self.__dict__["_tables_index"] = (self.tables, len(self.tables), index)
        return index


# --- The seeds' spellings -------------------------------------------------------------
# The loader and the validator that onceflow replaces (seeds 002 and 003) spelled some keys
# differently: `table_name`, `loading_strategy`, `primary_keys`, `engine: {type, options}`,
# `pipeline: {state_file}`... `normalize_seed_keys` rewrites a parsed config mapping into
# onceflow's spelling before pydantic sees it, so every step reads one model. Invariants:
# - a key given in both spellings is accepted when the values are equal and refused, naming
#   both, when they differ;
# - every rewrite is recorded as `onceflow path -> path the user wrote`, so that a bad value
#   is reported under the user's spelling (`seed_spelling`);
# - nothing is dropped silently: a seed key with no onceflow equivalent (a checkpoint folder
#   on object storage, a state file URL) is refused with what onceflow uses instead.

# seed 002 (loader), per table: seed key -> path under the table in onceflow's spelling
TABLE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "table_name": ("table",),
    "loading_strategy": ("load", "strategy"),
    "primary_keys": ("load", "primary_key"),
    "tracking_columns": ("load", "tracking_columns"),
    "scd2_effective_date_column": ("load", "effective_from_column"),
    "scd2_end_date_column": ("load", "effective_to_column"),
    "scd2_current_flag_column": ("load", "is_current_column"),
}
# the seed validator's config format version; onceflow reads that format (and no other)
_SEED_VERSIONS = ("1", "1.0")
_SEED_STATE_NAME = "state.db"


class _Normalizer:
    """One pass over a config mapping; `renames` collects onceflow path -> seed path."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.renames: dict[str, str] = {}
        self.seed_state_file: str | None = None  # `pipeline.state_file` when it is JSON

    def fail(self, field: str, message: str) -> ConfigError:
        return ConfigError(f"{self.origin}: {field}: {message}", field=field)

    def put(
        self, target: dict[str, Any], path: tuple[str, ...], value: Any, seed: str, where: str
    ) -> None:
        """Set `target[path]` to a value given under a seed key; refuse a different value
        already there under onceflow's own key (or another synonym)."""
        here = target
        for i, part in enumerate(path[:-1]):
            child = here.get(part)
            if child is None:
                child = here[part] = {}
            elif not isinstance(child, dict):
                own = _dotted(where, path[: i + 1])
                raise self.fail(own, f"expected a mapping of settings (`{seed}` goes in it)")
            else:
                child = here[part] = dict(child)  # never mutate the caller's mapping
            here = child
        own = _dotted(where, path)
        if path[-1] in here and not _same(here[path[-1]], value):
            other = self.renames.get(own, own)
            mine, theirs = _shown(own, value), _shown(own, here[path[-1]])
            raise self.fail(
                seed,
                f"the same setting as `{other}`, with another value ({mine} here, "
                f"{theirs} there); keep one of them",
            )
        here[path[-1]] = value
        self.renames[own] = seed
        logger.debug("config: %s read as %s", seed, own)

    def table(self, data: dict[str, Any], index: int) -> dict[str, Any]:
        where = f"tables[{index}]"
        table = dict(data)
        for seed, path in TABLE_SYNONYMS.items():
            if seed in table:
                self.put(table, path, table.pop(seed), f"{where}.{seed}", where)
        load = table.get("load")
        # pydantic's message would say `add primary_key:` under `load`, a key this table
        # does not use: say it in the table's own spelling
        if (
            isinstance(load, dict)
            and "loading_strategy" in data
            and load.get("strategy") in ("merge", "scd2")
            and not load.get("primary_key")
        ):
            raise self.fail(
                f"{where}.loading_strategy",
                f"strategy {load['strategy']} needs primary keys: add "
                "`primary_keys: [<column>, ...]`",
            )
        rules = table.get("rules")
        if isinstance(rules, list):
            table["rules"] = [self.rule(r, f"{where}.rules[{j}]") for j, r in enumerate(rules)]
        return table

    def rule(self, rule: Any, where: str) -> Any:
        if not isinstance(rule, dict) or "rule_type" not in rule:
            return rule
        kind = rule["rule_type"]
        from onceflow.rules import RULE_TYPES

        if kind not in RULE_TYPES:
            known = ", ".join(sorted(RULE_TYPES))
            raise self.fail(f"{where}.rule_type", f"unknown rule type {kind!r} (types: {known})")
        if "type" in rule and rule["type"] != kind:
            return rule  # the rule parser refuses it, naming both and the rule
        return {("type" if k == "rule_type" else k): v for k, v in rule.items() if k != "type"}

    def version(self, value: Any) -> None:
        text = str(value) if isinstance(value, int | float | str) else None
        if isinstance(value, bool) or text not in _SEED_VERSIONS:
            raise self.fail(
                "version",
                f"onceflow reads version 1.0 of this config format, got {value!r}: "
                'write `version: "1.0"` or leave it out',
            )

    def engine(self, top: dict[str, Any], engine: Any) -> None:
        if not isinstance(engine, dict):
            raise self.fail(
                "engine",
                "expected `engine: {type: duckdb, options: {max_retries: N, retry_delay: S}}` "
                "(or write `validation: {engine: duckdb}`)",
            )
        for key in engine:
            if key not in ("type", "options"):
                raise self.fail(f"engine.{key}", "unknown field; `engine:` takes type and options")
        if "type" in engine:
            self.put(top, ("validation", "engine"), engine["type"], "engine.type", "")
        options = engine.get("options", {})
        if not isinstance(options, dict):
            raise self.fail(
                "engine.options", "expected a mapping: {max_retries: N, retry_delay: S}"
            )
        for key, value in options.items():
            # any `validation:` key may be given as an option; pydantic refuses the others,
            # reported under `engine.options.<key>` by the rename
            self.put(top, ("validation", str(key)), value, f"engine.options.{key}", "")

    def pipeline(self, top: dict[str, Any], pipeline: dict[str, Any]) -> None:
        del top["pipeline"]
        for key in pipeline:
            if key not in ("name", "state_file"):
                raise self.fail(
                    f"pipeline.{key}", "unknown field; `pipeline:` takes name and state_file"
                )
        if "name" in pipeline:
            self.put(top, ("pipeline",), pipeline["name"], "pipeline.name", "")
        if "state_file" in pipeline:
            path = self.local_path("pipeline.state_file", pipeline["state_file"])
            # the seed's file is JSON; onceflow's store is SQLite: never open (or overwrite)
            # an old JSON state file as a database
            root, ext = os.path.splitext(path)
            if ext.lower() == ".json":
                self.seed_state_file = path
            self.state(top, root + ".db" if ext.lower() == ".json" else path, "pipeline.state_file")

    def state(self, top: dict[str, Any], path: str, seed: str) -> None:
        url = "sqlite:///" + path
        given = top.get("state")
        if isinstance(given, str) and _same_sqlite(given, url):
            url = given  # the same file spelt another way: keep the user's spelling
        self.put(top, ("state",), url, seed, "")

    def local_path(self, field: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, f"expected a file or folder path, got {value!r}")
        if "://" in value:
            raise self.fail(
                field,
                "onceflow keeps its state and locks in a SQLite file, which needs a local "
                "path (or /dbfs/..., /Volumes/...); for a shared store write "
                "`state: postgresql://user@host/db` instead",
            )
        return normalize_path(value)

    def retry_attempts(self, top: dict[str, Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(
                "retry_attempts",
                f"expected a whole number of retries of a failed file, 0 or more, got {value!r}",
            )
        tables = top.get("tables")
        if not isinstance(tables, list):
            return
        for i, table in enumerate(tables):
            if not isinstance(table, dict):
                continue
            load = table.get("load")
            if isinstance(load, dict) and "max_file_retries" in load:
                continue  # a table's own setting is the more specific one
            if load is not None and not isinstance(load, dict):
                continue  # pydantic names the bad `load:`
            table = dict(table)
            self.put(table, ("load", "max_file_retries"), value, "retry_attempts", f"tables[{i}]")
            tables[i] = table


def normalize_seed_keys(
    data: dict[str, Any], origin: str = "config"
) -> tuple[dict[str, Any], dict[str, str]]:
    """`data` in onceflow's spelling, and the renames made (onceflow path -> seed path).

    ConfigError, naming the key as written, for two spellings of one setting with different
    values, a bad value that pydantic would not name under the seed's spelling, or a seed
    key onceflow has no place for.
    """
    top, norm = _normalized(data, origin)
    return top, norm.renames


def _normalized(data: dict[str, Any], origin: str) -> tuple[dict[str, Any], _Normalizer]:
    """`normalize_seed_keys`, with the normalizer (what it found besides the renames)."""
    norm = _Normalizer(origin)
    top = dict(data)
    if "version" in top:
        norm.version(top.pop("version"))
    if "engine" in top:
        norm.engine(top, top.pop("engine"))
    if isinstance(top.get("pipeline"), dict):
        norm.pipeline(top, top["pipeline"])
    if "checkpoint_path" in top:
        # the seed's folder of its state file and lock file: onceflow's SQLite store,
        # which holds both, goes in it
        folder = norm.local_path("checkpoint_path", top.pop("checkpoint_path"))
        norm.state(top, folder.rstrip("/") + "/" + _SEED_STATE_NAME, "checkpoint_path")
    if "timeout_minutes" in top:
        # the seed's pipeline lock counts as stale this long after it was taken (plus 30
        # minutes); onceflow's lock counts as held this long after its last heartbeat
        norm.put(top, ("lock_ttl_minutes",), top.pop("timeout_minutes"), "timeout_minutes", "")
    if isinstance(top.get("tables"), list):
        top["tables"] = [
            norm.table(t, i) if isinstance(t, dict) else t for i, t in enumerate(top["tables"])
        ]
    if "retry_attempts" in top:
        norm.retry_attempts(top, top.pop("retry_attempts"))
    return top, norm


def seed_spelling(field: str, renames: Mapping[str, str]) -> str:
    """A field path as the user wrote it: `tables[0].load.strategy` ->
    `tables[0].loading_strategy` when the value was given as `loading_strategy`."""
    for own in sorted(renames, key=len, reverse=True):
        if field == own or field.startswith((own + ".", own + "[")):
            return renames[own] + field[len(own) :]
    return field


def _dotted(where: str, path: tuple[str, ...]) -> str:
    return ".".join([where, *path]) if where else ".".join(path)


def _same(a: Any, b: Any) -> bool:
    # 60 and 60.0 are one value; True and 1 are not (a flag is not a count)
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return bool(a == b)


def _same_sqlite(a: str, b: str) -> bool:
    prefix = "sqlite:///"
    if not (a.startswith(prefix) and b.startswith(prefix)):
        return False
    return os.path.normpath(a[len(prefix) :]) == os.path.normpath(b[len(prefix) :])


_SECRET_FIELD = re.compile(r"(?i)(^state$|\.url$|pass|secret|token|credential|api_?key$)")


def _shown(where: str, value: Any) -> str:
    """A config value as a message quotes it: a URL with its password masked
    (`mask_url`, which also masks one with a space in it), any other value of a field that
    holds secrets not at all. Built into the message, so that the error itself never holds
    a secret (`str(error)` in the Python API; a traceback under --debug)."""
    if isinstance(value, str) and "://" in value:
        return repr(mask_url(value))
    if _holds_secrets(where) or "://" in repr(value):
        return "a value not shown (it may hold a secret)"
    return repr(value)


def _may_show(where: str, value: Any) -> bool:
    """Whether a bad value may be quoted in a message: not in a field that holds secrets,
    nor when it holds a URL (a source given as a URL string instead of `{url: ...}`)."""
    return not _holds_secrets(where) and "://" not in repr(value)


def _holds_secrets(where: str) -> bool:
    """Fields whose ${ENV} values are masked everywhere: URLs, the state store, credentials.

    Other values (a region in a query, say) stay visible, so that a changed value is seen
    as a changed query rather than masked to the same text.
    """
    return bool(_SECRET_FIELD.search(where))


#: The fields whose `${VAR}` may stay unset until they are used: a source's URL is read
#: only when the source is connected (extract, run, check), so a host that only loads,
#: validates or reports (`status` on a monitoring host) needs none of the sources'
#: secrets. Every other field is resolved, and refused when unset, as the config is read.
_LAZY_FIELD = re.compile(r"^sources\.[^.]+\.url$")


def _interpolate(
    value: Any, where: str, origin: str = "config", unset: set[str] | None = None
) -> Any:
    """`value` with its `${VAR}` references resolved from the environment. A variable that
    is not set (and has no default) is a ConfigError naming the field; in a lazy field
    (`_LAZY_FIELD`) with `unset` given, the reference is kept and the field is added to
    `unset`, to be resolved when it is used (Config.source)."""
    if isinstance(value, dict):
        return {
            k: _interpolate(v, f"{where}.{k}" if where else str(k), origin, unset)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_interpolate(v, f"{where}[{i}]", origin, unset) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    bad = _BAD_REF.search(value)
    if bad:
        # kept as text, `${NOPE LAKE}` would be a folder or a password of that name
        what = "a '${' that" if _holds_secrets(where) else repr(bad.group(0))
        encode = " (in a URL's password, write '$' as %24)" if _holds_secrets(where) else ""
        raise ConfigError(
            f"{origin}: {where}: {what} is not a variable reference: write ${{NAME}} or "
            f"${{NAME:-default}}, NAME of letters, digits and '_' (not starting with a "
            f"digit){encode}",
            field=where,
        )

    def substitute(match: re.Match[str]) -> str:
        name, default = match["name"], match["default"]
        if name in os.environ:
            if _holds_secrets(where):
                register_secret(os.environ[name])
            return os.environ[name]
        if default is not None:
            return default
        if unset is not None and _LAZY_FIELD.match(where):
            unset.add(where)
            return match.group(0)
        raise ConfigError(
            f"{origin}: {where}: environment variable {name} is not set; export it or write "
            f"${{{name}:-default}}",
            field=where,
        )

    return _ENV_REF.sub(substitute, value)


def _error_field(error: ValidationError, data: dict[str, Any] | None = None) -> str:
    """The dotted path of the first invalid field, e.g. `tables[0].load.strategy`; a
    schedule is named, `schedules[nightly].cron`; a check across fields names its own."""
    first = first_problem(error.errors())
    loc = ""
    parts = list(first["loc"])
    for i, part in enumerate(parts):
        if isinstance(part, int):
            if loc == "schedules" and data is not None:
                part = _schedule_label(data, part)
            loc += f"[{part}]"
        elif i > 0 and parts[i - 1] in ("catch_up", "window", "max_runtime", "retry_on"):
            continue  # pydantic's name of a union member, not a config key
        else:
            loc += f".{part}" if loc else str(part)
    if not loc:
        named = re.match(r"^([A-Za-z_][\w\[\].\-]*): ", first["msg"].removeprefix("Value error, "))
        loc = named.group(1) if named else ""
    return loc


def _keys_at(parts: list[Any]) -> list[str]:
    """The keys the config mapping at a pydantic location takes (for a did-you-mean):
    the fields of the model there, found by walking Config's annotations."""
    here: Any = Config
    for part in parts:
        here = _step(here, part)
        if here is None:
            return []
    model = _model_in(here)
    if model is None:
        return []
    keys = []
    for name, info in model.model_fields.items():
        if not info.exclude:
            keys.append(name)
        if isinstance(info.validation_alias, AliasChoices):
            keys += [c for c in info.validation_alias.choices if isinstance(c, str)]
    return keys


def _step(annotation: Any, part: Any) -> Any:
    """The annotation one location part further: a model's field, a list's item, a
    dict's value, or the member of a union pydantic names."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        for member in args:
            if getattr(member, "__name__", None) == part:
                return member
        found = [m for m in args if _model_in(m) or typing.get_origin(m) in (list, dict)]
        return _step(found[0], part) if found else None
    if origin is list:
        return args[0] if isinstance(part, int) else None
    if origin is dict:
        return args[1]
    model = _model_in(annotation)
    if model is not None and isinstance(part, str) and part in model.model_fields:
        return model.model_fields[part].annotation
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation is, or the one model of an optional one."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    models = [
        m for m in typing.get_args(annotation) if isinstance(m, type) and issubclass(m, BaseModel)
    ]
    return models[0] if len(models) == 1 else None


def _schedule_label(data: dict[str, Any], index: int) -> str | int:
    schedules = data.get("schedules")
    if isinstance(schedules, list) and index < len(schedules):
        entry = schedules[index]
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            return str(entry["name"])
    return index


def _format_validation_error(
    error: ValidationError,
    origin: str,
    data: dict[str, Any] | None = None,
    renames: dict[str, str] | None = None,
) -> str:
    first = first_problem(error.errors())
    field = _error_field(error, data)
    loc = field
    if loc and first["msg"].removeprefix("Value error, ").startswith(f"{loc}: "):
        loc = ""  # the message names its field itself
    loc = seed_spelling(loc, renames or {})
    if first["type"] == "extra_forbidden":
        parts = list(first["loc"])
        hint = did_you_mean(str(parts[-1]), _keys_at(parts[:-1]))
        message = f"unknown field{hint}; check its spelling against docs/configuration.md"
    else:
        message = field_problem(first, show_input=_may_show(field, first.get("input")))
        if not loc and field and message.startswith(f"{field}: "):
            # a check across fields names its own field: as the user wrote it too
            message = seed_spelling(field, renames or {}) + message[len(field) :]
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    where = f"{loc}: " if loc else ""
    return f"{origin}: {where}{message}{suffix}"


def config_from_dict(
    data: dict[str, Any],
    *,
    base_dir: str = ".",
    origin: str = "config",
    one_step: bool = False,
) -> Config:
    """Build a Config from a parsed mapping; ConfigError names the bad field.

    `one_step`: the config of a command that uses only the lake or only the warehouse
    (a one-table `extract --url`, the seed extractor, a standalone `load --path`): their
    folders are not compared then (`_lake_apart`), as the unused one is only a default."""
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping of settings at the top level")
    unset: set[str] = set()
    data = _interpolate(data, "", origin, unset)
    # the seeds' spellings (`table_name`, `engine: {type, options}`...) become onceflow's
    # here, so that every step sees one model; `renames` names a bad value as written
    data, norm = _normalized(data, origin)
    renames = norm.renames
    try:
        config = Config.model_validate(
            {**data, "base_dir": base_dir}, context={_ONE_STEP: True} if one_step else None
        )
    except ValidationError as error:
        raise ConfigError(
            _format_validation_error(error, origin, data, renames),
            field=seed_spelling(_error_field(error, data), renames),
        ) from None
    if norm.seed_state_file is not None:
        config._seed_state_file = config.resolve(norm.seed_state_file)
    config._origin, config._unset = origin, frozenset(unset)
    for source in config.sources.values():
        register_url(source.url)
    register_url(config.state)
    return config


_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def _no_escapes(config: Config, table: TableConfig, index: int, target: str) -> None:
    """Refuse a local Delta table path holding `%XX`: delta-rs decodes it as an escaped
    character when it opens the table, so `wh data%20x` was written once and then read as
    `wh data x`, and every later load failed naming a damaged `_delta_log`."""
    escape = None if "://" in target else _ESCAPE.search(target)
    if escape is None:
        return
    field = "warehouse" if _ESCAPE.search(config.warehouse) else f"tables[{index}].load.target"
    raise ValueError(
        f"{field}: the Delta table of {table.key!r} ({target}) has {escape.group()!r} in its "
        "folder name, which delta-rs reads as an escaped character when it opens the "
        "table (another folder); rename the folder without `%`"
    )


def _no_nested_tables(config: Config, targets: dict[str, str]) -> dict[str, str]:
    """Refuse a Delta table inside another's folder, or a quarantine table that is another
    table: a table's folder holds only its own files (the consistency check takes any
    other Parquet file in it for an uncommitted write of that table, and its repair
    removes it), and a quarantine write into a loaded table mixes rows in it. Returns
    every Delta table's location (quarantines too) -> whose it is."""
    places = dict(targets)
    for table in config.tables:
        if table.quarantine:
            spot = config.resolve_target(table.target).rstrip("/") + "_quarantine"
            if spot in targets:
                raise ValueError(
                    f"tables[{config.tables.index(table)}].quarantine: {table.key!r} "
                    f"quarantines into {spot}, which is the Delta table of "
                    f"{targets[spot]!r}; give one of them another `load: {{target: ...}}`"
                )
            places[spot] = f"{table.key}'s quarantine"
    # as the filesystem sees them (symlinks resolved: two spellings of one folder are one
    # table), each looked up among the folders above it: a comparison per pair cost 1.7 s
    # for 500 tables. Not a table against itself: a target with a trailing `/` (`s3://b/t/`)
    # started with its own folder + `/` and was refused as nested in itself.
    folders = {place: folder_location(place) for place in places}
    located: dict[str, tuple[str, str]] = {}
    for place, whose in places.items():
        located.setdefault(folders[place], (place, whose))
    for place, whose in places.items():
        for above in _folder_and_parents(folders[place]):
            outer, other = located.get(above, (place, whose))
            if other != whose:
                index = next((i for i, t in enumerate(config.tables) if whose.startswith(t.key)), 0)
                where = (
                    "would be the same folder as that of"
                    if above == folders[place]
                    else "would sit inside the folder of"
                )
                raise ValueError(
                    f"tables[{index}].load.target: the Delta table of {whose!r} ({place}) "
                    f"{where} {other!r} ({outer}); a table's folder holds only its own "
                    "files: give it a target beside it"
                )
    return places


def _lake_apart(config: Config, places: dict[str, str]) -> None:
    """Refuse a lake that shares a folder with a Delta table; not one that merely shares
    a parent with the warehouse. A table's lake files live in its lake folder
    `<lake>/<source>/<table>`, its Delta table at its target (`<warehouse>/<source>/
    <table>` by default), and every lake scan and consistency check reads one table's
    lake folder, every VACUUM one Delta table's folder. So `warehouse: s3://corp-data`
    with `lake: s3://corp-data/raw`, or `lake: /data` with `warehouse: /data/warehouse`,
    is sound, and refusing it (as comparing the two folders once did) refused common
    layouts. Refused, each naming the folders:

    * the lake being the warehouse: each table's lake folder is its Delta table's folder;
    * a target (or quarantine table) that is the lake, holds it, or holds a table's lake
      folder: a Spark or Databricks VACUUM deletes every data file in a Delta table's
      folder that no commit names, lake files and their committed extractions with them;
    * a target inside a table's lake folder: the lake's checks take a Parquet file
      without a sidecar there for an unfinished write, which `fix-inconsistencies`
      removes;
    * a target elsewhere inside the lake, unless in a warehouse given inside the lake:
      `<lake>/<name>` is the folder of a source named `<name>`, and a table lands there
      by accident (a source `raw` with `lake: <warehouse>/raw`), not by a choice of
      folders.

    Folders are compared as the filesystem sees them (`folder_location`: symlinks,
    `file://`). (`places`: every Delta table -> whose, from `_no_nested_tables`.)"""
    lake = folder_location(config.resolve(config.lake))
    warehouse = folder_location(config.resolve(config.warehouse))
    vacuum = "where a VACUUM (Spark, Databricks) deletes the files no Delta commit names"
    if lake == warehouse:
        raise ValueError(
            f"lake: the lake and the warehouse are one folder ({lake}): each table's lake "
            "folder (<lake>/<source>/<table>) would be its Delta table's folder "
            f"(<warehouse>/<source>/<table>), {vacuum}; give each its own folder, side by "
            "side or one inside the other (e.g. `lake: ./lake`, `warehouse: ./warehouse`)"
        )
    folders = {
        folder_location(
            f"{lake.rstrip('/')}/{safe_component(t.source)}/{safe_component(t.display_name)}"
        ): t.key
        for t in config.tables
    }
    # every folder holding a lake folder (itself included) -> that lake folder: a lookup
    # per Delta table, not a comparison per pair (500 tables: 0.7 s)
    holding: dict[str, str] = {}
    for folder in folders:
        for above in _folder_and_parents(folder):
            holding.setdefault(above, folder)
    index = {t.key: i for i, t in reversed(list(enumerate(config.tables)))}
    carved = within(warehouse, lake)  # the user gave the warehouse a folder in the lake
    for place, whose in places.items():
        spot = folder_location(place)
        number = index.get(whose.removesuffix("'s quarantine"), 0)
        head = f"tables[{number}].load.target: the Delta table of {whose!r} ({spot}) would"
        if within(lake, spot):
            where = "be the lake's folder" if spot == lake else "hold the lake"
            raise ValueError(
                f"{head} {where} ({lake}), the lake's files mixed with the table's, {vacuum}; "
                "give it a target outside the lake (a path under `warehouse`, the default)"
            )
        if spot in holding:
            folder = holding[spot]
            verb = "be" if folder == spot else "hold"
            raise ValueError(
                f"{head} {verb} the lake folder of {folders[folder]!r} ({folder}), {vacuum}; "
                "give it a target beside the lake (a path under `warehouse`, the default)"
            )
        inside = next((f for f in _folder_and_parents(spot) if f in folders), None)
        if inside is not None:
            raise ValueError(
                f"{head} sit inside the lake folder of {folders[inside]!r} ({inside}), where "
                "the lake's checks take a Parquet file without a sidecar for an unfinished "
                "extraction, which fix-inconsistencies removes; give it a target outside "
                "the lake (a path under `warehouse`, the default)"
            )
        if within(spot, lake) and not (carved and within(spot, warehouse)):
            raise ValueError(
                f"{head} sit inside the lake ({lake}), among its sources' folders "
                "(<lake>/<source>/<table>): a source named like its folder would share it; "
                "give it a target outside the lake (a path under `warehouse`, the default; "
                "a source named like the lake's folder loads there: give it `load: "
                "{target: ...}`)"
            )


def _folder_and_parents(location: str) -> list[str]:
    """A folder (as `folder_location` gives it) and each folder above it, in that order,
    not above a URI's authority (`s3://b/x/y`: itself, `s3://b/x`, `s3://b`)."""
    scheme, sep, rest = location.partition("://")
    prefix, path = (f"{scheme}://", rest) if sep else ("", location)
    parts = path.split("/")
    found = [prefix + "/".join(parts[:n]) for n in range(len(parts), 0, -1)]
    return [f or "/" for f in found]


class _DuplicateKey(Exception):
    """A mapping repeats a key: YAML loaders keep the last value without a word."""


class _BadScalar(Exception):
    """A scalar YAML resolves to a type it does not fit (`2025-04-31`, an unquoted date
    that is no day; `!!int abc`): PyYAML's constructors raise a bare ValueError, with
    neither the line nor the value."""

    def __init__(self, node: Any, problem: str, root: Any) -> None:
        super().__init__(problem)
        self.node, self.problem, self.root = node, problem, root


#: What a scalar of each YAML type tag is, for a message about one that is not.
_TAG_KINDS = {
    "tag:yaml.org,2002:timestamp": "date (YYYY-MM-DD) or date and time",
    "tag:yaml.org,2002:int": "whole number",
    "tag:yaml.org,2002:float": "number",
    "tag:yaml.org,2002:bool": "true or false",
}


def _node_path(node: Any, target: Any, key: str | None = None) -> str | None:
    """The field path from a YAML node (under the mapping key `key`) to `target`, as
    config messages spell it (`schedules[nightly].start`, `tables[0].name`); None when
    `target` is not under it."""
    if node is target:
        return ""
    items = getattr(node, "value", None)
    if not isinstance(items, list):
        return None
    for i, item in enumerate(items):
        if isinstance(item, tuple):  # a mapping's (key node, value node)
            name = str(item[0].value) if isinstance(item[0].value, str) else "?"
            below = _node_path(item[1], target, name)
            if below is not None:
                return name + ("." + below if below and not below.startswith("[") else below)
        else:
            below = _node_path(item, target)
            if below is not None:
                label = _schedule_name(item) if key == "schedules" else None
                head = f"[{label or i}]"
                return head + ("." + below if below and not below.startswith("[") else below)
    return None


def _schedule_name(node: Any) -> str | None:
    """The `name:` of a schedule's mapping node, which messages name it by."""
    items = getattr(node, "value", None)
    for pair in items if isinstance(items, list) else []:
        if isinstance(pair, tuple) and pair[0].value == "name" and isinstance(pair[1].value, str):
            return str(pair[1].value)
    return None


@functools.cache
def _strict_loader() -> type[Any]:
    """The safe YAML loader (libyaml's when built in: 10x the pure-Python one on a config
    of 100 rules) that refuses a repeated key: a second `rules:` under a table would
    otherwise drop the first list, and `min: 0, min: 5` keep 5, silently."""
    import yaml

    base: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class StrictLoader(base):  # type: ignore[misc]
        def construct_document(self, node: Any) -> Any:
            self.root_node = node  # to name the field of a bad scalar (_BadScalar)
            return super().construct_document(node)

        def construct_object(self, node: Any, deep: bool = False) -> Any:
            try:
                return super().construct_object(node, deep=deep)
            except (ValueError, OverflowError) as error:
                if isinstance(error, _BadScalar):
                    raise
                problem = str(error) or type(error).__name__
                raise _BadScalar(node, problem, getattr(self, "root_node", None)) from None

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[Any, Any] = {}
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` may override
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: the base loader says so
                    continue
                if first is not key_node:
                    mark, was = key_node.start_mark, first.start_mark
                    raise _DuplicateKey(
                        f"key {key!r} appears twice in one mapping, at line {was.line + 1}, "
                        f"column {was.column + 1} and at line {mark.line + 1}, column "
                        f"{mark.column + 1}; the second "
                        "would silently replace the first: keep one (merge their contents "
                        "if both are wanted)"
                    )
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def parse_yaml(text: str, origin: str, *, field: str | None = None) -> Any:
    """YAML text as data; ConfigError `<origin>: not valid YAML at line L, column C: ...`,
    or naming the field, line and value of a scalar that is not of its YAML type."""
    import yaml  # only when a YAML file is read

    try:
        loader = _strict_loader()(text)  # the pure-Python reader checks characters here
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _bounded_aliases(node, origin, field)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except _DuplicateKey as duplicate:
        raise ConfigError(f"{origin}: {duplicate}", field=field) from None
    except _BadScalar as bad:
        raise ConfigError(_bad_scalar(bad, origin), field=field) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "unreadable"
        context = getattr(error, "context", None)
        what = f"{problem} ({context})" if context else problem
        raise ConfigError(f"{origin}: not valid YAML{where}: {what}", field=field) from None


#: The most values (YAML nodes) a document may amount to once its aliases are expanded.
#: A config without aliases is a node per value of its text; 10,000 tables that each merge
#: a 20-key `<<: *defaults` are about 500,000. A "billion laughs" document (400 bytes, 9
#: levels of 9 aliases) is 435 million: the loader shares them, but every step after it
#: (`${VAR}` interpolation, validation) walks the tree: 3 GB and minutes for `check`.
#: 600,000 values take `check` ~4 s.
MAX_YAML_VALUES = 1_000_000


def _bounded_aliases(root: Any, origin: str, field: str | None) -> None:
    """Refuse a YAML document whose aliases (`*name`) expand to more than
    MAX_YAML_VALUES values, or refer to a node that holds them (a recursive structure,
    which no config is, and which every walk of it would follow forever).

    Counted on the composed nodes, where an alias is the anchored node itself: each
    node's expanded size once (memoized), so the count costs one pass over the text's
    nodes however far the aliases multiply them."""
    size: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            total = 1 + sum(size[id(child)] for child in _children(node))
            if total > MAX_YAML_VALUES:
                mark = node.start_mark
                raise ConfigError(
                    f"{origin}: the YAML's aliases (*name) expand to more than "
                    f"{MAX_YAML_VALUES:,} values (at line {mark.line + 1}, column "
                    f"{mark.column + 1}): no config is that large; write the values out, or "
                    "use fewer aliases of aliases",
                    field=field,
                )
            size[key] = total
            continue
        if key in size:
            continue
        if key in open_nodes:
            mark = node.start_mark
            raise ConfigError(
                f"{origin}: the YAML alias at line {mark.line + 1}, column {mark.column + 1} "
                "refers to a value that holds it (a recursive structure): a config is a tree; "
                "write the value out",
                field=field,
            )
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)


def _children(node: Any) -> list[Any]:
    """A YAML node's child nodes: a sequence's items, a mapping's keys and values."""
    items = node.value
    if not isinstance(items, list):
        return []
    found: list[Any] = []
    for item in items:
        if isinstance(item, tuple):
            found.extend(item)
        else:
            found.append(item)
    return found


def _bad_scalar(bad: _BadScalar, origin: str) -> str:
    """`<origin>: <field>: <value> at line L, column C is not a valid <type> (<why>)`,
    with the fix: quote a text, or write a value of the type. The value is left out in a
    field that holds secrets."""
    node = bad.node
    path = _node_path(bad.root, node) if bad.root is not None else None
    if path and path.startswith("["):  # an item of a top-level list: a tables file's
        index, _, rest = path[1:].partition("]")
        path = f"entry {int(index) + 1}{rest}" if index.isdigit() else path
    mark = node.start_mark
    kind = _TAG_KINDS.get(node.tag, node.tag.rpartition(":")[2] or "value")
    shown = "the value" if _holds_secrets(path or "") else repr(str(node.value))
    where = f"{path}: " if path else ""
    # an unquoted 2025-04-31 is read as a date whatever is meant; an explicit `!!int`
    # stays one when quoted
    implicit = node.tag == "tag:yaml.org,2002:timestamp"
    quote = ", or quote it to keep it as text" if implicit else ""
    return (
        f"{origin}: {where}{shown} at line {mark.line + 1}, column {mark.column + 1} is not "
        f"a valid {kind} ({bad.problem}): write a valid one{quote}"
    )


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate onceflow.yml (default: ./onceflow.yml); a file that lists no
    tables is refused (`require_tables`)."""
    data, base_dir, origin = read_config_file(path)
    return require_tables(config_from_dict(data, base_dir=base_dir, origin=origin), data)


def as_config(config: Config | str | Path | Mapping[str, Any] | None) -> Config:
    """A Config from itself, the path of an onceflow.yml (None: ./onceflow.yml), or its
    mapping (the seeds' spellings read as in a file; paths from the current folder).
    A file is read as `load_config` reads it (one that lists no tables is refused); a
    mapping may list none (a standalone load's config)."""
    if isinstance(config, Config):
        return config
    if config is None or isinstance(config, str | Path):
        return load_config(config)
    if isinstance(config, Mapping):
        return config_from_dict(dict(config), base_dir=os.getcwd(), origin="config")
    raise ConfigError(
        f"config: expected a Config, the path of onceflow.yml or its mapping, got "
        f"{type(config).__name__}"
    )


def require_tables(config: Config, data: Any = None) -> Config:
    """`config`, refused when it lists no tables: every command of a config file works on
    its tables (a schedule runs them, `status` and `validate` report on them), so a file
    without any, an empty one above all, would do nothing and exit 0 while the user
    believes it ran. Configs built without a file (a single-table extract, a standalone
    load, a rules-only validation config's) have no tables by design and are not checked
    here."""
    if config.tables:
        return config
    origin = config._origin
    empty = " (the file is empty)" if not data else ""
    raise ConfigError(
        f"{origin}: tables: the config lists no tables{empty}; add at least one under "
        "`tables:` (see docs/configuration.md)",
        field="tables",
    )


def read_config_file(path: str | Path | None = None) -> tuple[Any, str, str]:
    """A config file (default ./onceflow.yml) parsed, not yet checked: (data, its folder,
    its name for messages)."""
    config_path = Path(path or DEFAULT_CONFIG_NAME)
    if config_path.is_dir():
        inside = config_path / DEFAULT_CONFIG_NAME
        hint = f"; did you mean {inside}?" if inside.is_file() else ""
        raise ConfigError(
            f"config file {config_path} is a folder, not a file: pass the config file with "
            f"--config PATH{hint}",
            field="config",
        )
    if not config_path.is_file():
        raise ConfigError(
            f"config file {config_path} not found; pass --config PATH or run `onceflow init DIR`",
            field="config",
        )
    data = parse_yaml(read_text_file(config_path, str(config_path)), str(config_path)) or {}
    return data, str(config_path.resolve().parent), str(config_path)


def read_text_file(path: Path, origin: str, *, field: str | None = None) -> str:
    """A config, sources or tables file's text; ConfigError naming it when it cannot be
    read or is not UTF-8 (YAML and JSON files are; a file saved as Latin-1 or UTF-16 by
    an editor failed as `unexpected UnicodeDecodeError`, without the file's name)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{origin}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
            f"{error.start}): save it as UTF-8",
            field=field,
        ) from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError(f"{origin}: cannot read it: {reason}", field=field) from None


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
        one_step=True,
    )


#: The port of an Oracle listener when none is given.
ORACLE_PORT = 1521
#: How the CLI spells the Oracle connection options; the seeds' classes pass their own
#: (`oracle_host`, `oracle_user=`...), so that a message names what the caller wrote.
ORACLE_OPTIONS = {"host": "--host", "user": "--user NAME", "service": "--service NAME"}


def oracle_url(
    host: str,
    port: int | str | None,
    user: str | None,
    password: str | None,
    service: str | None,
    *,
    options: Mapping[str, str] = ORACLE_OPTIONS,
) -> str:
    """The SQLAlchemy URL of an Oracle service (`oracle+oracledb://`, the scheme the
    generic reader uses for Oracle), from the seed extractor's connection options; the
    password is registered as a secret first, so no log, sidecar or report shows it.

    The service has no default: the seed's own CLI required `--service` too, and a guessed
    one (XE, XEPDB1, ORCLPDB1...) would connect to another database or fail later with
    a listener error that does not say what was missing. The message names what to add,
    in the caller's spelling (`options`)."""
    from urllib.parse import quote

    missing = [options[name] for name, value in (("user", user), ("service", service)) if not value]
    if missing:
        example = options["service"].replace("NAME", "XE")
        raise ConfigError(
            f"{options['host']} needs {' and '.join(missing)}: who connects and to which "
            f"Oracle service (e.g. {example}, the service of the seed's examples; onceflow "
            "does not guess it)",
            field="service" if not service else "user",
        )
    assert user is not None and service is not None
    register_secret(password)
    where = f"[{host}]" if ":" in host else host  # an IPv6 address
    credentials = quote(user, safe="")
    if password:
        credentials += ":" + quote(password, safe="")
    return (
        f"oracle+oracledb://{credentials}@{where}:{port or ORACLE_PORT}/"
        f"?service_name={quote(service, safe='')}"
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
    return config_from_dict(
        data, base_dir=base_dir or str(Path.cwd()), origin="command line", one_step=True
    )
