"""What `--help` says of a command's defaults is what the command does."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from onceflow.cli import app

COMMANDS: Any = typer.main.get_command(app).commands  # type: ignore[attr-defined]


def _help(name: str, option: str) -> str:
    return next(str(p.help) for p in COMMANDS[name].params if option in p.opts)


@pytest.mark.parametrize("name", ["status", "validate-windows", "reset-state"])
def test_a_run_is_the_latest_by_default_on_the_state_commands(name: str) -> None:
    date = _help(name, "--date")
    assert "default: the latest run" in date and "'yesterday' (default)" not in date
    assert "Override" not in _help(name, "--run-id")


def test_run_says_it_validates_too() -> None:
    assert "validate" in str(COMMANDS["run"].help)
