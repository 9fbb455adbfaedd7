"""Options shared by several commands, declared once (with their environment variables)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Protocol, runtime_checkable

import typer

from onceflow.errors import ConfigError

if TYPE_CHECKING:  # imported when called: `onceflow --help` imports none of them
    from onceflow.config import Config
    from onceflow.pipeline import Pipeline
    from onceflow.validate import Validator

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="ONCEFLOW_CONFIG",
        help="Path to onceflow.yml (default ./onceflow.yml).",
    ),
]
#: --config of the commands that serve several pipelines sharing one state store.
#: (A command with ConfigOpt takes one: `refuse_repeated_config` refuses a second.)
ConfigsOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--config",
        "-c",
        envvar="ONCEFLOW_CONFIG",
        help="Path to an onceflow.yml (repeat for several pipelines sharing one state store; "
        "default ./onceflow.yml).",
    ),
]
DateOpt = Annotated[
    str | None,
    typer.Option("--date", "-d", help="Run date YYYY-MM-DD, 'today' or 'yesterday' (default)."),
]
#: --date of the commands that report on or reset a run that already exists.
RunDateOpt = Annotated[
    str | None,
    typer.Option(
        "--date",
        "-d",
        help="The run of this date, YYYY-MM-DD, 'today' or 'yesterday' (default: the latest "
        "run date's run, not the run made last).",
    ),
]
RunIdOpt = Annotated[
    str | None, typer.Option("--run-id", help="Override the deterministic run id.")
]
#: --run-id of the commands that report on or reset a run that already exists.
WhichRunIdOpt = Annotated[
    str | None, typer.Option("--run-id", help="The run with this id (instead of --date).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
#: Where the --tables callback leaves what it read from tables files, for `selected_tables`.
_SELECTION = "onceflow.tables"
#: onceflow.extract.tables_file.TABLE_FILE_SUFFIXES, without importing it for every command.
_TABLE_FILE_SUFFIXES = (".json", ".yml", ".yaml")


def _parts(values: Sequence[str] | None) -> list[str]:
    return [part.strip() for item in values or [] for part in item.split(",") if part.strip()]


def _read_table_files(ctx: typer.Context, values: list[str] | None) -> list[str] | None:
    """--tables of every command: a value ending in .json/.yml/.yaml is a file listing the
    tables (read here, before the command runs: a bad one is one line naming the file and
    the entry). The keys replace it; the file entries stay in the context for the commands
    that check them against the config (extract, run)."""
    if values and not _parts(values):  # `--tables ""` would otherwise mean every table
        raise ConfigError(
            "--tables: empty; name at least one table, or leave --tables out for all",
            field="tables",
        )
    if not any(p.lower().endswith(_TABLE_FILE_SUFFIXES) for p in _parts(values)):
        return values
    from onceflow.extract.tables_file import table_selection

    selection = table_selection(values)
    ctx.meta[_SELECTION] = selection
    return list(selection or [])


TablesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--tables",
        "-t",
        callback=_read_table_files,
        help="Table keys or names (repeat, or comma-separate), or a .json/.yml/.yaml file "
        "listing them.",
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", "-w", min=1, envvar="ONCEFLOW_WORKERS", help="Parallel tables."),
]
VerifyOpt = Annotated[
    str, typer.Option("--verify", help="fast (size) or deep (checksum) skip verification.")
]
ForceReprocessOpt = Annotated[
    bool, typer.Option("--force-reprocess", help="Re-extract even committed tables.")
]
LockTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--lock-timeout",
        envvar="ONCEFLOW_LOCK_TIMEOUT",
        min=0,
        help="Seconds to wait for a lock held by another process.",
    ),
]
SafeAgeOpt = Annotated[
    float,
    typer.Option(
        "--safe-age", min=0, help="Only touch temp/uncommitted files older than this (s)."
    ),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
AllowPartialOpt = Annotated[
    bool,
    typer.Option(
        "--allow-partial",
        help="Extract a window that has not ended yet, marked partial (extracted again by "
        "every run until it has ended).",
    ),
]


StateOpt = Annotated[
    str | None,
    typer.Option(
        "--state",
        envvar="ONCEFLOW_STATE",
        help="Without a config file: the state store to show (default .onceflow/state.db).",
    ),
]
#: --state of the commands that reset, repair or unlock a store without a config file.
ChangeStateOpt = Annotated[
    str | None,
    typer.Option(
        "--state",
        envvar="ONCEFLOW_STATE",
        help="Without a config file: the state store to change (default .onceflow/state.db).",
    ),
]
PipelineOpt = Annotated[
    str | None,
    typer.Option(
        "--pipeline", help="Without a config file: which pipeline (default: the latest run's)."
    ),
]


def typed_state(state: str | None) -> bool:
    """Whether a `--state` was typed on the command line rather than taken from
    `ONCEFLOW_STATE`: the variable, exported for the commands without a config, must not
    make a command with one refuse to run (the same value typed counts as the variable's)."""
    return bool(state) and state != os.environ.get("ONCEFLOW_STATE")


def open_pipeline(
    config: Path | None,
    state: str | None = None,
    name: str | None = None,
    *,
    read_only: bool = False,
) -> Pipeline:
    """The Pipeline of --config (or ./onceflow.yml); without a config file, the one the
    state store knows (what single-table extracts and standalone loads left here).
    `read_only` for the commands that only read: they work on a read-only store."""
    from onceflow.pipeline import Pipeline

    if config is None and not Path("onceflow.yml").exists():
        _require_store(state)
        return Pipeline.from_state(state, name, read_only=read_only)
    if typed_state(state) or name:
        raise ConfigError("--state and --pipeline are for use without a config file")
    try:
        return Pipeline.from_file(config, read_only=read_only)
    except ConfigError:
        _refuse_rules_only(config)
        raise


def _refuse_rules_only(config: Path | None) -> None:
    """A rules-only config (the seed validator's) has no pipeline for the state commands:
    say what does apply to it, rather than that its tables lack a `source`."""
    from onceflow.config import read_config_file
    from onceflow.validate.rules_file import is_rules_only

    try:
        data, _, origin = read_config_file(config)
    except ConfigError:
        return
    if is_rules_only(data):
        raise ConfigError(
            f"{origin} gives rules only (the seed validator's config): it has no runs, "
            f"loads or locks. Run `onceflow validate --config {origin} --sources FILE`; "
            f"`onceflow status --config {origin}` shows its validations and `onceflow "
            f"reset-state --config {origin} --validation [--table T] [--rule R]` forgets "
            "their stored results"
        ) from None


def rules_only_validator(
    config: Path | None, state: str | None = None, name: str | None = None
) -> Validator | None:
    """The Validator of a rules-only config (the seed validator's `config.yaml`: tables
    named by `name:` with rules, no sources) given by --config or ./onceflow.yml, for the
    commands that apply to it (`status`, `reset-state --validation`); None for any other
    config, or none. A file that cannot be read is left for `open_pipeline` to report."""
    from onceflow.config import read_config_file
    from onceflow.validate.rules_file import is_rules_only

    path = config if config is not None else Path("onceflow.yml")
    if not path.is_file():
        return None
    try:
        data, _, _ = read_config_file(path)
    except ConfigError:
        return None
    if not is_rules_only(data):
        return None
    if typed_state(state) or name:
        raise ConfigError("--state and --pipeline are for use without a config file")
    from onceflow.validate import Validator

    return Validator(path)


def _require_store(state: str | None) -> None:
    """Without a config file the commands that call `open_pipeline` show or repair a
    state store that is already there: a SQLite one that does not exist is an error, not
    a new empty store left behind in the folder."""
    from onceflow.config import standalone_config
    from onceflow.errors import ConfigError

    url = standalone_config(state=state).state_url
    if not url.startswith("sqlite:"):
        return
    path = Path(url.removeprefix("sqlite:///").removeprefix("sqlite://"))
    if not path.exists():
        where = state or path
        raise ConfigError(
            f"no onceflow.yml here and no state store at {where}; pass --config PATH, or "
            "--state URL of the store to show",
            field="config",
        )


def split_list(values: Sequence[str] | None) -> list[str]:
    """`-t a,b -t c` -> ['a', 'b', 'c']: repeated options, each comma-separated."""
    return _parts(values)


def selected_tables(ctx: typer.Context, values: Sequence[str] | None) -> list[str] | None:
    """The --tables of a command that extracts: the keys, as the TableSelection that also
    holds the entries of a tables file (the extract step checks them against the config),
    or None for every table."""
    return ctx.meta.get(_SELECTION) or split_list(values) or None


DatabricksOpt = Annotated[
    bool,
    typer.Option(
        "--databricks",
        envvar="ONCEFLOW_DATABRICKS",
        help="Refuse to run unless everything written is Databricks storage (dbfs:/..., "
        "/Volumes/...), so that a Databricks job never writes to local disk.",
    ),
]


# What `refuse_repeated_config` reads of a command, as protocols rather than click's
# classes: typer 0.29 runs its own copy of click (`typer._click`, whose group is no
# `click.Group`), older typers the click package; both have these attributes.
class _ClickParameter(Protocol):
    @property
    def opts(self) -> Sequence[str]: ...
    @property
    def secondary_opts(self) -> Sequence[str]: ...
    @property
    def multiple(self) -> bool: ...


@runtime_checkable
class _ClickOption(_ClickParameter, Protocol):
    @property
    def is_flag(self) -> bool: ...
    @property
    def count(self) -> bool: ...


class ClickCommand(Protocol):
    """A click command as `typer.main.get_command` makes it, whichever click typer uses."""

    @property
    def params(self) -> Sequence[_ClickParameter]:
        """Its options and arguments."""


@runtime_checkable
class _ClickGroup(ClickCommand, Protocol):
    @property
    def commands(self) -> Mapping[str, ClickCommand]: ...


def load_configs(paths: list[Path] | None) -> list[Config]:
    """The configs of a repeated --config (./onceflow.yml without one)."""
    from onceflow.config import load_config

    chosen: list[Path | None] = list(paths) if paths else [None]
    return [load_config(p) for p in chosen]


def refuse_repeated_config(command: ClickCommand, args: Sequence[str]) -> None:
    """ConfigError when `args` give --config (-c) twice to a command that takes one
    config: click keeps the last value without a word, so `run --config a.yml --config
    b.yml` ran b alone, and `check --config missing.yml --config b.yml` said "ok".

    `command` is the click command the args run; the args are walked as click reads them,
    to the command (past the options of each group, with their values), then its own
    options, long (`--config X`, `--config=X`) or short (`-c X`, `-cX`)."""
    leaf, rest = _leaf(command, list(args))
    if leaf is None:
        return
    option = next((p for p in leaf.params if "--config" in getattr(p, "opts", ())), None)
    if option is None or option.multiple:
        return
    given: list[str] = []
    i = 0
    while i < len(rest) and rest[i] != "--":
        arg = rest[i]
        name, has_value = arg.partition("=")[0], "=" in arg
        value = arg.partition("=")[2]
        if len(arg) > 2 and arg[0] == "-" and arg[1] != "-":  # `-cPATH`: click's short form
            name, has_value, value = arg[:2], True, arg[2:]
        found = _option(leaf, name) if arg.startswith("-") else None
        if found is option:
            given.append(value if has_value else _at(rest, i + 1))
        takes_value = found is not None and not found.is_flag and not found.count
        i += 2 if takes_value and not has_value else 1
    if len(given) > 1:
        raise ConfigError(
            f"--config: given {len(given)} times ({', '.join(given)}); this command runs one "
            "config, and would silently use the last: give it once (run the command once "
            "per config; runs, schedule list, scheduler, worker and up take several)",
            field="config",
        )


def _leaf(command: ClickCommand, args: list[str]) -> tuple[ClickCommand | None, list[str]]:
    """The (sub)command `args` run and the args after its name; (None, []) when none."""
    i = 0
    while isinstance(command, _ClickGroup):  # its options, then a command's name
        while i < len(args) and args[i].startswith("-") and args[i] != "--":
            found = _option(command, args[i].partition("=")[0])
            takes_value = found is not None and not found.is_flag and "=" not in args[i]
            i += 2 if takes_value else 1
        if i >= len(args) or args[i] not in command.commands:
            return None, []
        command, i = command.commands[args[i]], i + 1
    return command, args[i:]


def _option(command: ClickCommand, name: str) -> _ClickOption | None:
    """The option of `command` spelt `name` (`--config`, `-c`, `--no-resume`), if any."""
    for param in command.params:
        if isinstance(param, _ClickOption) and name in (*param.opts, *param.secondary_opts):
            return param
    return None


def _at(args: Sequence[str], i: int) -> str:
    return args[i] if i < len(args) else "?"
