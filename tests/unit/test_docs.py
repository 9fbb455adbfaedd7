"""The documentation keeps up: every command has help and a section with an example, every
option has help, and every config key is explained."""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from onceflow.cli import app, main
from onceflow.config import Config

DOCS = Path(__file__).resolve().parents[2] / "docs"
COMMANDS = [(c.name or c.callback.__name__.replace("_", "-"), c) for c in app.registered_commands]


def _options(callback: typing.Callable[..., object]) -> Iterator[tuple[str, object]]:
    hints = typing.get_type_hints(callback, include_extras=True)
    for name in inspect.signature(callback).parameters:
        for extra in getattr(hints[name], "__metadata__", ()):
            yield name, extra


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_command_has_help_and_a_documented_example(name: str, command: object) -> None:
    callback = command.callback  # type: ignore[attr-defined]
    assert (callback.__doc__ or "").strip(), f"{name} has no help text"
    text = (DOCS / "commands.md").read_text(encoding="utf-8")
    section = re.search(rf"### `onceflow {re.escape(name)}`\n(.*?)(?=\n##|\Z)", text, re.S)
    assert section, f"docs/commands.md has no section for `onceflow {name}`"
    assert f"onceflow {name}" in section.group(1) or "```" in section.group(1), name
    assert "```" in section.group(1), f"the section of `onceflow {name}` has no example"


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_option_has_help(name: str, command: object) -> None:
    for parameter, info in _options(command.callback):  # type: ignore[attr-defined]
        assert getattr(info, "help", None), f"{name}: option {parameter} has no help text"


def _keys(model: type[BaseModel]) -> Iterator[str]:
    for key, field in model.model_fields.items():
        if field.exclude:
            continue
        yield key
        for arg in typing.get_args(field.annotation) or (field.annotation,):
            for inner in typing.get_args(arg) or (arg,):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    yield from _keys(inner)


def test_every_config_key_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    rows = "\n".join(line for line in text.splitlines() if line.startswith("|"))
    missing = sorted({key for key in _keys(Config) if not re.search(rf"`[^`\n]*\b{key}`", rows)})
    assert missing == [], f"docs/configuration.md does not explain: {missing}"


def test_main_runs_a_command_and_returns_its_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("onceflow ")
    assert main(["check", "--config", "/nonexistent/onceflow.yml"]) == 2
    assert "not found" in capsys.readouterr().err


def test_the_readme_links_every_docs_page() -> None:
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    for page in DOCS.glob("*.md"):
        assert f"docs/{page.name}" in readme, f"README does not link docs/{page.name}"


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_link_to_a_docs_section_finds_its_heading() -> None:
    """A section removed or renamed leaves its links pointing nowhere (a docs edit once
    dropped three sections that commands.md links into)."""
    pages = {p.name: p for p in DOCS.glob("*.md")}
    readme = DOCS.parent / "README.md"
    anchors = {
        name: {_slug(h) for h in re.findall(r"^#+ (.+)$", p.read_text(encoding="utf-8"), re.M)}
        for name, p in pages.items()
    }
    broken = []
    for page in [*pages.values(), readme]:
        text = page.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\((?:docs/)?([\w.-]*\.md)?#([\w-]+)\)", text):
            name = target or page.name
            if name in anchors and anchor not in anchors[name]:
                broken.append(f"{page.name}: {name}#{anchor}")
    assert not broken, "links to missing sections: " + ", ".join(broken)


def test_the_development_layout_names_every_module() -> None:
    """docs/development.md's layout fell behind the code (cronspec, load/plan,
    validate/heap... were missing): every module and helper is named there."""
    text = (DOCS / "development.md").read_text(encoding="utf-8")
    layout = text.partition("```\nsrc/onceflow/\n")[2].partition("```")[0]
    package = DOCS.parent / "src" / "onceflow"
    missing = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.stem != "__init__" and not re.search(rf"\b{path.stem}\b", layout)
    )
    helpers = DOCS.parent / "tests" / "helpers"
    missing += sorted(
        f"tests/helpers/{path.name}"
        for path in helpers.glob("*.py")
        if path.stem != "__init__" and f"`{path.name}`" not in text
    )
    assert not missing, f"docs/development.md does not name: {missing}"
