"""The `onceflow` Typer app and its global options; command modules register on it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from typer.core import TyperOption

from onceflow.errors import ConfigError, printable
from onceflow.logs import setup_logging
from onceflow.version import __version__


def examples(*lines: str) -> str:
    """A command's `epilog`: its examples (the ones docs/commands.md gives) under an
    `Examples:` heading. Rich help keeps each line as written, indented, where a plain
    paragraph would be re-wrapped; the heading comes after a newline so that the
    indentation is kept (typer dedents all but the first line). No `[`: rich markup."""
    return "\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Batch data pipelines that are safe to rerun: SQL -> Parquet -> Delta Lake.",
    epilog=examples(
        "onceflow init demo && cd demo && onceflow run",
        "onceflow status                  # the latest run, its loads and locks",
        "onceflow run --help              # a command's options and examples",
    ),
)

#: Set by the global options; read by the error handler.
settings: dict[str, bool] = {"debug": False, "json_logs": False}


def echo(text: str = "", *, err: bool = False, lines: bool = False) -> None:
    """Print a line of the CLI's text output (stdout, or stderr with `err`), its control
    characters escaped (`errors.printable`): the lines hold values of the data and
    libraries' messages quoting them, which must not drive the terminal. `lines`: `text`
    is several lines (a traceback). JSON output goes out as `json.dumps` escapes it."""
    typer.echo(printable(text, lines=lines), err=err)


def say_problem(text: str) -> None:
    """A problem line for stderr: plain text, or a JSON log record with `--log-format
    json`, so that stderr stays one JSON document per line."""
    if settings["json_logs"]:
        logging.getLogger("onceflow.cli").error(text)
    else:
        echo(text, err=True)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


#: click's Context: typer 0.29's own copy of click (`typer._click`), older typers' click.
_Context = TypeVar("_Context")


def _flags_without_type(
    original: Callable[[TyperOption, _Context], str | None],
) -> Callable[[TyperOption, _Context], str | None]:
    """typer 0.29 prints every flag as taking a `<bool>` value; a flag takes none."""

    def display_type_rich(self: TyperOption, ctx: _Context) -> str | None:
        return None if self.is_flag else original(self, ctx)

    return display_type_rich


# [assignment]: mypy reads a Callable put on a class as a method taking `self` twice
TyperOption.display_type_rich = _flags_without_type(  # type: ignore[method-assign,assignment]
    TyperOption.display_type_rich
)


def _version(value: bool) -> None:
    if value:
        echo(f"onceflow {__version__}")
        raise typer.Exit(0)


@app.callback()
def _global(
    debug: Annotated[
        bool, typer.Option("--debug", envvar="ONCEFLOW_DEBUG", help="Show tracebacks.")
    ] = False,
    log_format: Annotated[
        str,
        typer.Option("--log-format", envvar="ONCEFLOW_LOG_FORMAT", help="text or json."),
    ] = "text",
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level", envvar="ONCEFLOW_LOG_LEVEL", help="DEBUG, INFO, WARNING or ERROR."
        ),
    ] = "INFO",
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Batch data pipelines that are safe to rerun: SQL -> Parquet -> Delta Lake."""
    if log_format not in ("text", "json"):
        raise ConfigError(
            f"--log-format: expected 'text' or 'json', got {log_format!r}", field="log_format"
        )
    # JSON first, so that a bad --log-level is told as a JSON record too
    settings["json_logs"] = log_format == "json"
    if settings["json_logs"]:
        setup_logging("INFO", "json")
    if log_level.upper() not in LOG_LEVELS:
        raise ConfigError(
            f"--log-level: expected one of {', '.join(LOG_LEVELS)}, got {log_level!r}",
            field="log_level",
        )
    settings["debug"] = debug
    settings["json_logs"] = log_format == "json"
    setup_logging("DEBUG" if debug else log_level, log_format)
