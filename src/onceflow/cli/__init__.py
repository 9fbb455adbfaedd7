"""The `onceflow` command: each command is a thin call of one public function, a
`Pipeline` method or a function of `onceflow` / `onceflow.schedule` (docs/python-api.md
names each; a unit test holds every command to it).

`main(argv)` runs it and returns the exit code: one clear line and a non-zero code on any
error; with --debug a redacted traceback before that line, and the same exit code. A
reader that closes stdout early (`onceflow status | head -1`) ends it quietly, exit 141.
Commands import `onceflow.pipeline` when they run, not at start-up: it brings Arrow,
Delta Lake and DuckDB (0.5 s), which `--help` and a bad option should not wait for.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import errno
import importlib
import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

import typer

from onceflow import interrupts
from onceflow.cli.app import app, echo, examples, say_problem, settings
from onceflow.cli.options import refuse_repeated_config
from onceflow.errors import OnceflowError
from onceflow.logs import setup_logging
from onceflow.redact import redact

#: The command modules, one per group, in the order `--help` lists them; importing one
#: registers its commands.
COMMAND_MODULES = tuple(
    importlib.import_module(f"onceflow.cli.{name}")
    for name in ("project", "run", "load", "validate", "schedule", "runs", "state", "consistency")
)


def _cli_exceptions() -> tuple[tuple[type[BaseException], ...], ...]:
    """(exit, abort, usage) exception types: typer's own, plus click's where typer uses it."""
    from typer.exceptions import Abort, Exit, TyperException

    exits: list[type[BaseException]] = [Exit]
    aborts: list[type[BaseException]] = [Abort]
    usages: list[type[BaseException]] = [TyperException]
    # typer releases before 0.29.2 raise click's exceptions and have imported click by now;
    # later ones vendor it, and importing an installed but unused click costs ~7 ms.
    click = sys.modules.get("click")
    if click is None:
        return tuple(exits), tuple(aborts), tuple(usages)
    exits.append(click.exceptions.Exit)
    aborts.append(click.exceptions.Abort)
    usages.append(click.ClickException)
    return tuple(exits), tuple(aborts), tuple(usages)


#: The global options that take a value (the others are flags).
_VALUED_GLOBALS = ("--log-format", "--log-level")


def _command_name(args: Sequence[str]) -> str | None:
    """The command `args` name after the global options; None for `--help`, `--version`
    or no command."""
    values_next = False
    for arg in args:
        if values_next:
            values_next = False
        elif arg in _VALUED_GLOBALS:
            values_next = True
        elif arg == "--debug" or arg.startswith(tuple(f"{o}=" for o in _VALUED_GLOBALS)):
            continue
        elif arg.startswith("-"):
            return None
        else:
            return arg
    return None


def narrowed(args: Sequence[str]) -> typer.Typer:
    """The app with only the command `args` run: typer builds a click command for every
    registered command on each call (~17 ms for all of onceflow's), and a run needs one.
    `--help`, no command or an unknown one get the whole app, with its list of commands
    and its suggestions."""
    name = _command_name(args)
    if name is None:
        return app
    keep = copy.copy(app)
    keep.registered_commands = [
        info
        for info in app.registered_commands
        if info.callback is not None
        and (info.name or typer.main.get_command_name(info.callback.__name__)) == name
    ]
    keep.registered_groups = [info for info in app.registered_groups if info.name == name]
    return keep if keep.registered_commands or keep.registered_groups else app


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on `argv` (default: the process arguments); returns the exit code."""
    exits, aborts, usages = _cli_exceptions()
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        command = typer.main.get_command(narrowed(args))
        refuse_repeated_config(command, args)
        # Without standalone mode a command's exit code is returned instead of exiting.
        code = command(args=args, prog_name="onceflow", standalone_mode=False)
        if code == INTERRUPTED:  # typer turns Ctrl-C into this code, silently
            say_problem("interrupted")
        return code if isinstance(code, int) else 0
    except SystemExit as done:
        # rich and typer turn a write to a closed pipe into SystemExit(1)
        if _stdout_closed(done):
            return _after_stdout_closed()
        raise
    except exits as done:
        return int(getattr(done, "exit_code", 1))
    except aborts:
        say_problem("aborted")
        return 1
    except usages as error:
        _usage_problem(error, args)
        return int(getattr(error, "exit_code", 2))
    except OnceflowError as error:
        if settings["debug"]:
            _show_traceback(error)
        say_problem(f"error: {_one_line(redact(str(error)))}")
        return error.exit_code
    except KeyboardInterrupt:
        say_problem("interrupted")
        return INTERRUPTED
    except Exception as error:
        if _stdout_closed(error):
            return _after_stdout_closed()
        if _from_an_interrupt(error):
            say_problem("interrupted")
            return INTERRUPTED
        if settings["debug"]:
            _show_traceback(error)
        else:
            logging.getLogger("onceflow").debug("unexpected error", exc_info=True)
        hint = "" if settings["debug"] else " (rerun with --debug for a traceback)"
        say_problem(
            f"error: unexpected {type(error).__name__}: {_one_line(redact(str(error)))}{hint}"
        )
        return 1


#: The exit code of an interrupted command: 128 + SIGINT, what a shell reports for a
#: program Ctrl-C stopped (as `onceflow.console` exits during start-up).
INTERRUPTED = 130

#: The exit code after the reader of stdout went away: 128 + SIGPIPE, what a shell reports
#: for `yes | head -1`. Not 0: the command's own verdict (an exit 1 of validate-windows,
#: say) may not have been reached, and a `set -o pipefail` script must not read success
#: from output it cut short; not 1, which says the command failed.
CLOSED_PIPE = 141


def _stdout_closed(error: BaseException) -> bool:
    """Whether `error` comes of writing to a pipe whose reader has gone (EPIPE): the
    BrokenPipeError itself, or the SystemExit rich and typer raise in its place."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and current.errno == errno.EPIPE:
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _after_stdout_closed() -> int:
    """End quietly once stdout's reader is gone, as Unix tools do: nothing on stderr (the
    reader chose to stop reading; nothing failed), and stdout pointed at /dev/null so that
    the flush at exit cannot fail again (Python's documented way, `signal`'s "Note on
    SIGPIPE"). Returns CLOSED_PIPE."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no file descriptor
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return CLOSED_PIPE


def _from_an_interrupt(error: BaseException) -> bool:
    """Whether Ctrl-C caused `error`: a library may catch the KeyboardInterrupt and raise
    its own from it (pydantic-core's serializer: `PydanticSerializationError: ...:
    KeyboardInterrupt`, seen as "unexpected" on a loaded machine; its validator builder's
    `SchemaError` holds none: `interrupts.received`)."""
    if interrupts.received():
        return True
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _show_traceback(error: BaseException) -> None:
    """--debug: the error's traceback, redacted as the logs are (a driver's message, a
    URL in a frame's source line), before its one-line message; the exit code stays the
    error's own, so that a script sees the same code with and without --debug."""
    if settings["json_logs"]:
        # the log filter redacts the traceback, and stderr stays one JSON record a line
        logging.getLogger("onceflow.cli").error("traceback", exc_info=error)
        return
    import traceback

    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    echo(redact(text).rstrip("\n"), err=True, lines=True)


def _usage_problem(error: BaseException, args: Sequence[str]) -> None:
    """A bad option or command. In text mode click's own usage text and its `Error:`
    line, as CLIs do; with `--log-format json` one JSON log record, so that stderr stays
    one JSON document per line (the global options may not have been applied yet when
    the error is in them)."""
    if not settings["json_logs"] and _json_logs_asked(args):
        settings["json_logs"] = True
        setup_logging("INFO", "json")
    if settings["json_logs"]:
        fmt = getattr(error, "format_message", None)
        message = _one_line(str(fmt() if callable(fmt) else error)).rstrip(".")
        ctx = getattr(error, "ctx", None)
        hint = f"; see '{ctx.command_path} --help'" if ctx is not None else ""
        say_problem(f"error: {message}{hint}")
        return
    show = getattr(error, "show", None)
    if callable(show):
        show()
    else:
        echo(f"error: {error}", err=True)


def _json_logs_asked(args: Sequence[str]) -> bool:
    """Whether the global options (or ONCEFLOW_LOG_FORMAT) ask for JSON logs."""
    asked = os.environ.get("ONCEFLOW_LOG_FORMAT", "text")
    for i, arg in enumerate(args):
        if arg == "--log-format" and i + 1 < len(args):
            asked = args[i + 1]
        elif arg.startswith("--log-format="):
            asked = arg.partition("=")[2]
        elif arg == _command_name(args):
            break
    return asked == "json"


def _one_line(text: str) -> str:
    """A message on one line: drivers add hints on lines of their own (psycopg's
    "\n\tIs the server running on that host...?"), and a problem is one line of stderr."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def run() -> NoReturn:
    """The `onceflow` program: `main` on the process arguments, then `exit_now`."""
    exit_now(main())


def validator_job_main(argv: Sequence[str] | None = None) -> int:
    """The seed validator's job, `data-validator-job --config config.yaml --sources
    sources.yaml --output report.json [--no-resume]`: exactly `onceflow validate` with
    the same arguments (its flags are the seed's); returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--help" in args:
        return _alias_help(
            "validate",
            "data-validator-job",
            "data-validator-job --config config.yaml --sources sources.yaml \\",
            "                   --output report.json",
            "data-validator-job --config config.yaml --sources sources.yaml \\",
            "                   --output report.json --no-resume     # every rule again",
        )
    return main(["validate", *args])


def extractor_main(argv: Sequence[str] | None = None) -> int:
    """The seed extractor's command (seed 001), `data-extractor --config config.yml
    --tables tables.json [--force-reprocess] [--databricks]`, or single-table with
    `--host --user --password --source-name --table-name`: exactly `onceflow extract`
    with the same arguments (its flags are the seed's); returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--help" in args:
        return _alias_help(
            "extract",
            "data-extractor",
            "data-extractor --config config.yml --tables tables.json",
            "data-extractor --config config.yml --tables tables.json --force-reprocess",
            "data-extractor --host localhost --service XE --user hr --password secret \\",
            "               --source-name oracle_db --table-name employees",
        )
    return main(["extract", *args])


def _alias_help(command_name: str, prog: str, *lines: str) -> int:
    """`<seed script> --help`: the help of `onceflow <command_name>` under the script's
    own name and with its own examples, rather than `Usage: onceflow <command_name>`."""
    group = typer.main.get_command(narrowed([command_name]))
    command = copy.copy(group.commands[command_name])  # type: ignore[attr-defined]
    command.epilog = examples(*lines)
    code = command.main(["--help"], prog_name=prog, standalone_mode=False)
    if code == INTERRUPTED:  # typer turns Ctrl-C into this code, silently (as in `main`)
        say_problem("interrupted")
        return INTERRUPTED
    return 0


def run_validator_job() -> NoReturn:
    """The `data-validator-job` program (the seed's name of `onceflow validate`)."""
    exit_now(validator_job_main())


def run_extractor() -> NoReturn:
    """The `data-extractor` program (the seed's name of `onceflow extract`)."""
    exit_now(extractor_main())


def _fast_exit_allowed() -> bool:
    """Whether `exit_now` may skip the interpreter's teardown: not when a profiler or a
    tracer watches the program (`python -m cProfile -o out.prof -m onceflow ...` writes
    its profile, and `trace` or a debugger its report, after the program returns: an
    os._exit left them nothing), nor when ONCEFLOW_NO_FAST_EXIT is 1."""
    if os.environ.get("ONCEFLOW_NO_FAST_EXIT", "").strip().lower() in ("1", "true", "yes"):
        return False
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return False
    # Python 3.12+: cProfile (and debuggers) may watch through sys.monitoring instead,
    # where sys.getprofile() does not show them
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is not None:
        watchers = (monitoring.DEBUGGER_ID, monitoring.PROFILER_ID)
        return all(monitoring.get_tool(tool) is None for tool in watchers)
    return True


def exit_now(code: int) -> NoReturn:
    """Exit with `code`, skipping the interpreter's teardown.

    Freeing every module at exit (Arrow, pydantic, the Delta Lake and DuckDB bindings)
    takes ~50 ms, a tenth of extracting a small window; Instagram's web workers skip it
    the same way. It is safe here for the reason any instant is: what a command commits
    is fsynced before it counts, and a SIGKILL at any point loses nothing. Exit handlers
    still run (logging's flush, temporary folders, coverage) and output is flushed;
    while another non-daemon thread is alive, the normal exit waits for it, unless the
    command was interrupted (`INTERRUPTED`): Ctrl-C must end it now, and a thread still
    at work (a table whose source does not answer, waiting for its connect timeout) would
    hold the exit until it is done (`onceflow.pools`). Under a profiler or tracer, or with
    ONCEFLOW_NO_FAST_EXIT=1, the exit is the normal one (`_fast_exit_allowed`).
    """
    if code != INTERRUPTED and interrupts.pending():
        # a Ctrl-C put off inside an import, its program done before it came again
        say_problem("interrupted")
        code = INTERRUPTED
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    busy = code != INTERRUPTED and any(t.is_alive() for t in others)
    if busy or not _fast_exit_allowed():
        sys.exit(code)
    if code == INTERRUPTED:
        # `interrupted` was the last word: a table thread the interrupt left behind fails
        # as the exit handlers run (DuckDB refuses to run during the exit), and its log
        # lines would blame the exit, never the data
        logging.disable(logging.CRITICAL)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing more can be said
            stream.flush()
    os._exit(code)


__all__ = [
    "COMMAND_MODULES",
    "app",
    "exit_now",
    "extractor_main",
    "main",
    "run",
    "run_extractor",
    "run_validator_job",
    "validator_job_main",
]
