"""docs/python-api.md lists what the code has: every `Pipeline` method with its real
parameters, every CLI command with the one function it calls (and that function's real
parameters), every state-store repository with its real verbs, and a method's signature
as `help()` shows it is the step function's less the config it fills in."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
import typer

from onceflow.cli import app
from onceflow.config import standalone_config
from onceflow.pipeline import Pipeline, _Command
from onceflow.state import open_store

TEXT = (Path(__file__).resolve().parents[2] / "docs" / "python-api.md").read_text("utf-8")
ROWS = [line for line in TEXT.splitlines() if line.startswith("| `") or line.startswith("| |")]
#: Parameters a method fills in or passes between steps, not for callers to list.
# what the steps pass one another (a held lease; `loads_next`: run loads what extract made)
INTERNAL = {"config", "store", "lease", "loads_next", "cls", "self"}


def _calls(cell: str) -> list[tuple[str, list[str]]]:
    """`name(a, b=, c=x(y))` spans of a table cell -> (name, parameter names)."""
    out = []
    for name, params in re.findall(r"`(?:Pipeline\.)?(\w+)\(([^`]*)\)`", cell):
        names = [p.split("=")[0].strip() for p in re.split(r",(?![^(]*\))", params)]
        out.append((name, [n for n in names if n]))
    return out


def _parameters(name: str) -> list[str]:
    attr = Pipeline.__dict__[name]
    function = attr.function if isinstance(attr, _Command) else getattr(attr, "__func__", attr)
    return [p for p in inspect.signature(function).parameters if p not in INTERNAL]


def test_every_pipeline_method_in_the_table_has_its_real_parameters() -> None:
    listed: dict[str, set[str]] = {}
    for row in ROWS:
        for name, params in _calls(row.split("|")[1]):
            assert name in Pipeline.__dict__, f"python-api.md lists Pipeline.{name}: no such method"
            real = _parameters(name)
            assert [p for p in params if p not in real] == [], f"{name}: {params} vs {real}"
            listed.setdefault(name, set()).update(params)
    for name, params in listed.items():
        assert set(_parameters(name)) <= params, f"{name}: python-api.md leaves out parameters"


def test_every_function_the_table_names_exists() -> None:
    for row in ROWS:
        for path in re.findall(r"`(onceflow(?:\.\w+)+)", row.split("|")[3]):
            module, _, attr = path.rpartition(".")
            assert hasattr(importlib.import_module(module), attr), path


def _command_paths(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command the CLI runs, as name paths: ("run",), ("runs", "list")..."""
    found: list[tuple[str, ...]] = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        if hasattr(command, "commands"):
            found += _command_paths(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


#: Every CLI command, and the variants that call another function (`status --tenant`).
COMMANDS = [" ".join(p) for p in _command_paths(typer.main.get_command(app))] + ["status --tenant"]


def _functions(row: str) -> list[str]:
    """The callables a table row names: its `Pipeline` methods, and the `onceflow...`
    functions of its function column that exist."""
    cells = row.split("|")
    named = [f"Pipeline.{name}" for name, _ in _calls(cells[1]) if name in Pipeline.__dict__]
    for path in re.findall(r"`(onceflow(?:\.\w+)+)", cells[3]):
        module, _, attr = path.rpartition(".")
        if callable(getattr(importlib.import_module(module), attr, None)):
            named.append(path)
    return named


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_a_row_naming_the_function_it_calls(command: str) -> None:
    """The CLI is a thin layer over the Python API: for each command, python-api.md's
    table has a row (`onceflow COMMAND` in its CLI column) naming a Pipeline method or a
    public function, so that whatever a command does can be done in Python."""
    rows = [
        row
        for row in ROWS
        if re.search(rf"`onceflow {re.escape(command)}(?:[` ])", row.split("|")[2])
        and not re.search(rf"`onceflow {re.escape(command)} --tenant", row.split("|")[2])
    ]
    assert rows, f"docs/python-api.md has no row for `onceflow {command}`"
    assert any(_functions(row) for row in rows), f"`onceflow {command}`: no function named"


def test_every_function_the_table_calls_has_its_real_parameters() -> None:
    """`onceflow.schedule.up(configs, concurrency=, ...)`: each function the table
    spells out with its parameters lists exactly the function's own."""
    spelled = 0
    for row in ROWS:
        for path, params in re.findall(r"`(onceflow(?:\.\w+)+)\(([^`]*)\)`", row.split("|")[3]):
            module, _, attr = path.rpartition(".")
            function = getattr(importlib.import_module(module), attr)
            real = list(inspect.signature(function).parameters)
            listed = [p.split("=")[0].strip() for p in params.split(",") if p.strip()]
            assert listed == real, f"{path}: python-api.md lists {listed}, the function {real}"
            spelled += 1
    assert spelled >= 15


def test_every_repository_lists_its_real_verbs(tmp_path: Path) -> None:
    listed = dict(re.findall(r"`store\.(\w+)` \(([^)]*)\)", TEXT.replace("\n", " ")))
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert set(listed) == {
            "runs", "extractions", "files", "locks", "rules", "scheduled_runs", "queue"
        }  # fmt: skip
        for name, verbs in listed.items():
            repository = type(getattr(store, name))
            real = {
                m
                for m, v in inspect.getmembers(repository)
                if not m.startswith("_") and callable(v)
            }
            assert set(re.split(r",\s*", verbs.strip())) == real, name
    finally:
        store.close()


@pytest.mark.parametrize("name", ["run", "extract", "status", "locks", "lock", "force_unlock"])
def test_help_shows_the_method_without_the_config(name: str) -> None:
    function = Pipeline.__dict__[name].function
    method = getattr(Pipeline(standalone_config()), name)
    assert method.__doc__ == function.__doc__
    parameters = list(inspect.signature(method).parameters)
    assert parameters == list(inspect.signature(function).parameters)[1:]
    assert "config" not in parameters and "store" in parameters
