"""The CLI builds only the command it runs; what users see is the same as with the whole app."""

from __future__ import annotations

import pytest
import typer.main
from typer.testing import CliRunner

from onceflow.cli import app, narrowed

COMMANDS = sorted(
    [
        info.name or typer.main.get_command_name(info.callback.__name__)
        for info in app.registered_commands
        if info.callback is not None
    ]
    + [info.name for info in app.registered_groups if info.name]
)


def _help(target: typer.Typer, args: list[str]) -> str:
    result = CliRunner().invoke(target, args, prog_name="onceflow", env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_is_found_by_its_name():
    assert len(COMMANDS) >= 18
    for name in COMMANDS:
        only = narrowed([name, "--help"])
        assert only is not app, name
        kept = [
            i.name or typer.main.get_command_name(i.callback.__name__)
            for i in only.registered_commands
            if i.callback
        ]
        kept += [i.name for i in only.registered_groups]
        assert kept == [name]


@pytest.mark.parametrize("name", COMMANDS)
def test_a_commands_help_is_the_same_as_from_the_whole_app(name):
    assert _help(narrowed([name, "--help"]), [name, "--help"]) == _help(app, [name, "--help"])


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["--debug", "extract"], "extract"),
        (["--log-level", "DEBUG", "--log-format", "json", "run"], "run"),
        (["--log-format=json", "load"], "load"),
        (["--debug", "schedule", "preview"], "schedule"),
    ],
)
def test_global_options_before_the_command_are_skipped(args, name):
    only = narrowed(args)
    names = [i.name for i in only.registered_commands] + [i.name for i in only.registered_groups]
    assert names == [name]


@pytest.mark.parametrize(
    "args", [[], ["--help"], ["--version"], ["bogus"], ["--log-level", "DEBUG"], ["--what", "run"]]
)
def test_no_command_help_or_an_unknown_one_keep_the_whole_app(args):
    assert narrowed(args) is app


def test_an_unknown_command_still_gets_the_whole_apps_suggestion(capsys):
    from onceflow.cli import main

    assert main(["extrat"]) == 2
    assert "extract" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["validate", "run", "extract", "load"])
def test_an_empty_tables_option_is_refused_not_taken_for_every_table(command, capsys, tmp_path):
    from onceflow.cli import main

    assert main([command, "--config", str(tmp_path / "none.yml"), "--tables", " , "]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --tables: empty; name at least one table, or leave --tables out for all"
    )
