"""The console scripts' entry points (`onceflow`, `data-validator-job`, `data-extractor`).

This module is what the installed scripts import first, so it must be cheap: a Ctrl-C
can arrive while the CLI's modules are still being imported (typer, rich, the command
modules: about a second on a cold disk), before `onceflow.cli.main` has its own handler,
and Python would print a traceback of the import. Here the CLI is imported inside a
`try`, so an interrupt at any moment after this module is loaded ends the program with
`interrupted` and exit code 130, as an interrupt of a running command does. It imports
nothing but the standard library (and `onceflow/__init__.py`, which is lazy).
"""

from __future__ import annotations

import os
import sys

from onceflow.interrupts import install, received

TYPE_CHECKING = False  # typing itself costs ~20 ms of the window this module closes
if TYPE_CHECKING:
    from typing import NoReturn

INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a program Ctrl-C stopped


install()  # before the CLI's imports: see onceflow.interrupts


def _interrupted() -> NoReturn:
    try:
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
    finally:
        os._exit(INTERRUPTED)  # no teardown: a second Ctrl-C must not print one either


def run() -> NoReturn:
    """The `onceflow` program."""
    try:
        from onceflow.cli import run as cli_run

        cli_run()
    except KeyboardInterrupt:
        _interrupted()
    except Exception:
        if received():  # a library's error made of the interrupt (onceflow.interrupts)
            _interrupted()
        raise


def run_validator_job() -> NoReturn:
    """The `data-validator-job` program (the seed's name of `onceflow validate`)."""
    try:
        from onceflow.cli import run_validator_job as cli_run

        cli_run()
    except KeyboardInterrupt:
        _interrupted()
    except Exception:
        if received():  # a library's error made of the interrupt (onceflow.interrupts)
            _interrupted()
        raise


def run_extractor() -> NoReturn:
    """The `data-extractor` program (the seed's name of `onceflow extract`)."""
    try:
        from onceflow.cli import run_extractor as cli_run

        cli_run()
    except KeyboardInterrupt:
        _interrupted()
    except Exception:
        if received():  # a library's error made of the interrupt (onceflow.interrupts)
            _interrupted()
        raise
