"""What `--help` says is what the commands do and what docs/commands.md says: defaults,
examples, options."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from onceflow.cli import app, extractor_main, main, validator_job_main

COMMANDS: Any = typer.main.get_command(app).commands  # type: ignore[attr-defined]
DOCS = (Path(__file__).resolve().parents[2] / "docs" / "commands.md").read_text(encoding="utf-8")
#: The help is rendered at this width (the terminal's COLUMNS)...
WIDTH = "100"
#: ...and each example line, indented, must fit in 80 columns, less the help's margins.
EXAMPLE_WIDTH = 80 - 2


def _help(name: str, option: str) -> str:
    return next(str(p.help) for p in COMMANDS[name].params if option in p.opts)


@pytest.mark.parametrize("name", ["status", "validate-windows", "reset-state"])
def test_a_run_is_the_latest_by_default_on_the_state_commands(name: str) -> None:
    date = _help(name, "--date")
    assert "default: the latest run" in date and "'yesterday' (default)" not in date
    assert "Override" not in _help(name, "--run-id")


def test_run_says_it_validates_too() -> None:
    assert "validate" in str(COMMANDS["run"].help)


def _paths(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """`()` (the program), every command and every group and subcommand, as name paths."""
    found = [prefix]
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found += _paths(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


PATHS = _paths(typer.main.get_command(app))
IDS = [" ".join(p) or "onceflow" for p in PATHS]


def _command(path: tuple[str, ...]) -> Any:
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


def test_every_command_is_listed() -> None:
    assert len(PATHS) >= 30 and ("runs", "purge") in PATHS and ("force-unlock",) in PATHS


def _rendered(run: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> str:
    monkeypatch.setenv("COLUMNS", WIDTH)
    assert run() == 0
    return str(capsys.readouterr().out)


def _example_lines(epilog: str | None) -> list[str]:
    """The lines of a command's examples, as written (after the `Examples:` heading)."""
    _, heading, lines = (epilog or "").partition("\nExamples:\n")
    return [line for line in lines.splitlines() if line.strip()] if heading else []


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_every_help_shows_examples_line_by_line(
    path: tuple[str, ...], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Each help ends with `Examples:` and real command lines, each on a line of its own
    (fitting in 80 columns): not re-wrapped into a paragraph, nothing taken for rich
    markup."""
    shown = _rendered(lambda: main([*path, "--help"]), monkeypatch, capsys)
    lines = [line.strip() for line in shown.splitlines()]
    assert "Examples:" in lines, f"`onceflow {' '.join(path)} --help` shows no examples"
    examples = [line.strip() for line in _example_lines(_command(path).epilog)]
    assert all(len(line) <= EXAMPLE_WIDTH for line in _example_lines(_command(path).epilog))
    after = lines[lines.index("Examples:") + 1 :]
    assert after[: len(examples)] == examples
    assert any(line.startswith("onceflow ") for line in after[: len(examples)])
    # and each option that reads the environment says which variable (`--lease-seconds`),
    # whole: in rich's tag, or in its text where the tag would be cut at 80 columns
    flat = " ".join(shown.replace("│", " ").split())
    for param in _command(path).params:
        if isinstance(getattr(param, "envvar", None), str):
            tag = f"[env var: {param.envvar}]" in flat
            assert tag or (not param.show_envvar and f" {param.envvar} " in flat), (
                path,
                param.envvar,
            )


def test_the_validator_job_help_is_under_its_own_name(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    shown = _rendered(lambda: validator_job_main(["--help"]), monkeypatch, capsys)
    lines = [line.strip() for line in shown.splitlines()]
    assert "Usage: data-validator-job [OPTIONS]" in lines
    assert "onceflow" not in shown.partition("Examples:")[2]
    assert "data-validator-job --config config.yaml --sources sources.yaml \\" in lines


def test_the_extractor_help_is_under_its_own_name_with_the_docs_examples(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    shown = _rendered(lambda: extractor_main(["--help"]), monkeypatch, capsys)
    lines = [line.strip() for line in shown.splitlines()]
    assert "Usage: data-extractor [OPTIONS]" in lines
    examples = shown.partition("Examples:")[2]
    assert "onceflow" not in examples
    for flag in ("--tables", "--force-reprocess", "--databricks", "--host", "--source-name"):
        assert flag in shown
    lines = "\n".join(line.strip() for line in examples.splitlines())
    assert _commands(f"```bash\n{lines}\n```") <= _commands(_section("extract"))


def _section(title: str) -> str:
    """The text of the `### \\`onceflow TITLE\\`` section of docs/commands.md; the
    introduction (before the first `##`) for the program itself."""
    if not title:
        return DOCS.partition("\n## ")[0]
    found = re.search(rf"^### `onceflow {re.escape(title)}`\n(.*?)(?=^##|\Z)", DOCS, re.S | re.M)
    return found.group(1) if found else ""


def _sections(path: tuple[str, ...]) -> str:
    """The docs of a command: its section; a subcommand documented in its group's section
    (`runs list` in `onceflow runs`) there; a group without one, its subcommands'."""
    own = _section(" ".join(path)) or (_section(path[0]) if path else "")
    if own:
        return own
    return "\n".join(_section(" ".join(sub)) for sub in PATHS if sub[:1] == path and sub != path)


def _commands(text: str) -> set[str]:
    """The command lines of the code blocks of `text`: continuations joined, comments and
    extra spaces dropped."""
    found = set()
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0]
            if line.strip():
                found.add(" ".join(line.split()))
    return found


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_the_help_examples_are_the_docs_examples(path: tuple[str, ...]) -> None:
    shown = _commands("```bash\n" + "\n".join(_example_lines(_command(path).epilog)) + "\n```")
    documented = _commands(_sections(path))
    assert shown <= documented, (
        f"examples of `onceflow {' '.join(path)} --help` not in its docs/commands.md section: "
        f"{sorted(shown - documented)}"
    )


def _own_examples(path: tuple[str, ...], text: str) -> set[str]:
    """The command lines of `text` that run this command: not its usage synopsis (in
    brackets), nor the other commands a procedure in its section names."""
    name = re.escape(" ".join(path))
    return {c for c in _commands(text) if re.match(rf"onceflow {name}( |$)", c) and "[" not in c}


LEAVES = [p for p in PATHS if p and not hasattr(_command(p), "commands")]


@pytest.mark.parametrize("path", LEAVES, ids=[" ".join(p) for p in LEAVES])
def test_the_docs_examples_of_a_command_are_all_in_its_help(path: tuple[str, ...]) -> None:
    """docs/commands.md says a command's `--help` ends with the examples its section
    gives: every one, not a few of them."""
    shown = _commands("```bash\n" + "\n".join(_example_lines(_command(path).epilog)) + "\n```")
    missing = _own_examples(path, _sections(path)) - shown
    assert not missing, (
        f"examples of `onceflow {' '.join(path)}` in docs/commands.md missing from its "
        f"--help: {sorted(missing)}"
    )


def test_the_validator_job_examples_are_the_docs_examples(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    shown = _rendered(lambda: validator_job_main(["--help"]), monkeypatch, capsys)
    examples = shown.partition("Examples:")[2]
    lines = "\n".join(line.strip() for line in examples.splitlines())
    assert _commands(f"```bash\n{lines}\n```") <= _commands(_section("validate"))


#: Options documented once for every command rather than in each section: --help, and
#: --config, which the introduction describes (with its environment variable) for all.
DOCUMENTED_ONCE = {"--help", "--config"}


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_every_option_is_in_its_docs_section(path: tuple[str, ...]) -> None:
    """Each long option `--help` lists appears in the command's section of
    docs/commands.md (the program's global options in the introduction)."""
    text = _sections(path)
    assert text, f"docs/commands.md has no section for `onceflow {' '.join(path)}`"
    options = {
        opt
        for param in _command(path).params
        if isinstance(param, typer.core.TyperOption)
        for opt in param.opts
        if opt.startswith("--")
    }
    missing = sorted(
        opt for opt in options - DOCUMENTED_ONCE if not re.search(rf"{opt}(?![\w-])", text)
    )
    assert not missing, f"`onceflow {' '.join(path)}`: {missing} not in its docs section"


def test_the_environment_of_each_option_is_in_the_docs() -> None:
    """Every environment variable an option reads is named in docs/commands.md."""
    envvars = {
        param.envvar
        for path in PATHS
        for param in _command(path).params
        if isinstance(getattr(param, "envvar", None), str)
    }
    assert envvars and not sorted(v for v in envvars if v not in DOCS)


COMMAND_PATHS = [p for p in PATHS if p]


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=[" ".join(p) for p in COMMAND_PATHS])
def test_each_command_is_listed_by_one_line_of_help(path: tuple[str, ...]) -> None:
    """The root --help lists a command by its help's first paragraph: one written over
    two lines kept the line break there (`check`'s did)."""
    first = (_command(path).help or "").strip().split("\n\n")[0]
    assert first and "\n" not in first, f"`onceflow {' '.join(path)}`: {first!r}"


def test_the_defaults_the_help_gives_are_the_real_ones() -> None:
    """Options whose default the command fills in (so --help shows none by itself) say
    it in their text, and say the one the code uses."""
    from onceflow.config import single_table_config, standalone_config

    one = single_table_config("sqlite:///x.db", "s", "t")
    alone = standalone_config()
    for name, option, default in [
        ("extract", "--lake", one.lake),
        ("extract", "--timezone", one.timezone),
        ("extract", "--state", one.state),
        ("load", "--warehouse", alone.warehouse),
        ("load", "--state", alone.state),
    ]:
        assert f"(default {default})" in " ".join(_help(name, option).split()), (name, option)
    # a table's recorded strategy, else standalone_target's
    assert "append for a new table" in " ".join(_help("load", "--strategy").split())
    reprocess = next(p for p in COMMANDS["backfill"].params if "--reprocess" in p.opts)
    assert reprocess.metavar == "none|failed|all"
    from onceflow.schedule.api import REPROCESS

    assert tuple(reprocess.metavar.split("|")) == REPROCESS


def test_the_help_of_an_option_says_what_its_command_does() -> None:
    """`worker --until-idle` spoke of ticks, which a worker never records; the --state
    of the commands that change a store said `the state store to show`."""
    assert "tick" not in _help("worker", "--until-idle")
    assert "queued" in _help("worker", "--until-idle")
    assert "every due tick is queued" in _help("up", "--until-idle")
    for name in ("reset-state", "fix-inconsistencies", "force-unlock"):
        assert "to show" not in _help(name, "--state"), name
    runs_date = next(p for p in COMMANDS["runs"].commands["list"].params if "--date" in p.opts)
    assert "'today' or 'yesterday'" in runs_date.help


def test_the_json_keys_of_scheduler_worker_and_up_are_documented() -> None:
    """commands.md left out `lost` (scheduler, up) and `revoked` (worker)."""
    from onceflow.schedule import PassReport, WorkerReport

    scheduler, worker = PassReport().as_dict(), WorkerReport().as_dict()
    for name, keys in (
        ("scheduler", scheduler),
        ("worker", worker),
        ("up", {**scheduler, **worker, "skipped": []}),
    ):
        text = _section(name)
        missing = sorted(k for k in keys if f"`{k}`" not in text)
        assert not missing, f"`onceflow {name} --json`: {missing} not in its docs section"
