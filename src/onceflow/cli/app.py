"""The `onceflow` Typer app and its global options; command modules register on it."""

from __future__ import annotations

import logging
import shutil
import sys
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


#: The narrowest width output is laid out to: below it a table's borders and padding
#: alone leave its columns no room (a COLUMNS of 5 is a mistake, not a terminal).
MIN_WIDTH = 20


def terminal_width() -> int | None:
    """The width stdout's text output is fitted to: on a terminal, its width (COLUMNS
    when set, as `ls` and rich read it; at least MIN_WIDTH). None, for whole lines, when
    stdout is a file or a pipe (scripts and grep read every line whole, whatever COLUMNS
    an rc file exported) and with `--log-format json`: a log collector reads the output
    then, through the terminal `docker run -t` gives it too."""
    if settings["json_logs"]:
        return None
    try:
        if not sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):  # replaced by an object without it, or closed
        return None
    return max(shutil.get_terminal_size().columns, MIN_WIDTH)


def echo(text: str = "", *, err: bool = False, lines: bool = False) -> None:
    """Print a line of the CLI's text output (stdout, or stderr with `err`), its control
    characters escaped (`errors.printable`): the lines hold values of the data and
    libraries' messages quoting them, which must not drive the terminal. `lines`: `text`
    is several lines (a traceback). JSON output goes out as `json.dumps` escapes it.

    On a terminal a stdout line longer than its width is wrapped at spaces, under its own
    indent plus two (the terminal's wrap starts each piece at the left edge, out of the
    line's place in a list). A word longer than the width (a path, a URL) stays whole:
    the terminal wraps it as it would, and copies it as one word. stderr keeps one line
    a problem, as its log lines do."""
    text = printable(text, lines=lines)
    width = None if err or lines else terminal_width()
    if width is not None and len(text) > width:
        text = _wrapped(text, width)
    typer.echo(text, err=err)


def _wrapped(line: str, width: int) -> str:
    import textwrap

    body = line.lstrip(" ")
    indent = " " * min(len(line) - len(body), width // 2)
    return "\n".join(
        textwrap.wrap(
            body,
            width,
            initial_indent=indent,
            subsequent_indent=indent + "  ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    )


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
