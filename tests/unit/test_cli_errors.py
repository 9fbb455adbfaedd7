"""How the CLI ends on an error: one line, the error's exit code, with or without
--debug, and no secret in what it prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from onceflow.cli import main

pytestmark = pytest.mark.usefixtures("cli_globals_restored")


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "onceflow.yml"
    path.write_text(text, encoding="utf-8")
    return str(path)


BAD_MODE = (
    "pipeline: d\nsources:\n  s: {url: 'sqlite:///x.db'}\n"
    "tables:\n  - {source: s, table: t, extract: {mode: ful}}\n"
)


@pytest.mark.parametrize("debug", [["--debug"], []], ids=["debug", "plain"])
def test_debug_keeps_the_errors_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], debug: list[str]
) -> None:
    """--debug re-raised the error, and Python exits 1 on an uncaught exception: a
    script saw exit 1 for a config error (2) only when debugging it."""
    code = main([*debug, "check", "--config", _config(tmp_path, BAD_MODE)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.rstrip().splitlines()[-1].startswith("error: ")
    assert ("Traceback (most recent call last)" in err) == bool(debug)


def test_debug_env_variable_keeps_the_exit_code_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ONCEFLOW_DEBUG", "1")
    assert main(["check", "--config", _config(tmp_path, BAD_MODE)]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_a_debug_traceback_is_redacted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The traceback's last line is the error's message: a state URL's password in it
    (a password with a space, which the line's redaction pattern stops at) never shows."""
    text = (
        "pipeline: d\nstate: 'postgresql://u:Dbg Secret9@127.0.0.1:5432/st'\n"
        "checkpoint_path: ./ck\nsources:\n  s: {url: 'sqlite:///x.db'}\n"
        "tables:\n  - {source: s, table: t}\n"
    )
    code = main(["--debug", "check", "--config", _config(tmp_path, text)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" in err and "Secret9" not in err and "Dbg" not in err


@pytest.mark.parametrize(
    "command",
    [
        ["check"],
        ["run"],
        ["validate"],
        ["status"],
        ["up", "--until-idle"],
        ["validate-consistency"],
        ["extract"],
        ["load"],
    ],
    ids=lambda c: c[0],
)
@pytest.mark.parametrize("text", ["", "pipeline: p\ntables: []\n"], ids=["empty", "no-tables"])
def test_every_command_refuses_a_config_that_lists_no_tables(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    text: str,
) -> None:
    """`check` and `run` refused it while `validate`, `status`, `up --until-idle` and
    `validate-consistency` did nothing and exited 0 (`status` leaving a new state store)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "onceflow.yml").write_text(text, encoding="utf-8")
    assert main(command) == 2
    assert "tables: the config lists no tables" in capsys.readouterr().err
    assert not (tmp_path / ".onceflow").exists()


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgressql://u@127.0.0.1:5432/db", "did you mean postgresql?"),
        ("postgresql+psycopg3://u@127.0.0.1:5432/db", "did you mean psycopg or psycopg2?"),
        ("foodb://u@h/db", "'foodb', which neither SQLAlchemy nor an installed package"),
    ],
    ids=["dialect", "driver", "no-typo"],
)
def test_check_refuses_a_source_whose_dialect_or_driver_cannot_be_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, named: str
) -> None:
    """It said "config ok", and the first run failed every table of the source."""
    text = f"pipeline: d\nsources:\n  a: {{url: '{url}'}}\ntables:\n  - {{source: a, table: t}}\n"
    assert main(["check", "--config", _config(tmp_path, text)]) == 2
    err = capsys.readouterr().err
    assert "sources.a.url: " in err and named in err


@pytest.mark.parametrize(
    "command",
    [["run"], ["check"], ["status"], ["schedule", "trigger", "nightly"], ["validate"]],
    ids=lambda c: "-".join(c),
)
@pytest.mark.parametrize(
    "spelling", [["--config", "-c"], ["-c", "--config="], ["--config", "-c="]], ids=["a", "b", "c"]
)
def test_a_command_that_takes_one_config_refuses_it_twice(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    spelling: list[str],
) -> None:
    """click keeps the last value: `run --config a.yml --config b.yml` ran b alone, and
    `check --config missing.yml --config b.yml` said ok."""
    good = _config(
        tmp_path,
        "pipeline: p\nsources:\n  s: {url: 'sqlite:///x.db'}\ntables:\n  - {source: s, table: t}\n",
    )
    first, second = spelling
    args = [*command, first, str(tmp_path / "missing.yml")]
    # "-c=" stands for click's attached short form, `-cPATH`
    attached = {"--config=": "--config=", "-c=": "-c"}
    args += [f"{attached[second]}{good}"] if second in attached else [second, good]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--config: given 2 times" in err and "missing.yml" in err
    assert not (tmp_path / ".onceflow").exists()


def test_the_commands_that_take_several_configs_still_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        f"state: 'sqlite:///{tmp_path}/state.db'\npipeline: {{}}\n"
        "sources:\n  s: {{url: 'sqlite:///x.db'}}\ntables:\n  - {{source: s, table: t}}\n"
    )
    paths = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        path = tmp_path / name / "onceflow.yml"
        path.write_text(text.format(name), encoding="utf-8")
        paths.append(str(path))
    # `schedule list` reads both pipelines of one state store
    assert main(["schedule", "list", "--config", paths[0], "--config", paths[1]]) == 0
    assert "given 2 times" not in capsys.readouterr().err


def test_a_bad_log_level_is_a_json_record_with_json_logs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """It was a plain-text line in a stderr that a log shipper reads as JSON lines."""
    import json

    assert main(["--log-format", "json", "--log-level", "nope", "check"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["level"] == "error" and "--log-level: expected one of" in record["message"]


class _Recorder:
    """A Pipeline that records what a command asks of it."""

    calls: dict[str, dict[str, object]] = {}

    @classmethod
    def from_file(cls, path: object = None) -> _Recorder:
        return cls()

    def load(self, *args: object, **kwargs: object) -> object:
        self.calls["load"] = kwargs
        raise _Done

    def optimize(self, *args: object, **kwargs: object) -> list[object]:
        self.calls["optimize"] = kwargs
        return []


class _Done(Exception):
    """Stops a recorded load once its arguments are kept: nothing is loaded."""


@pytest.mark.parametrize(
    ("args", "method", "key", "value"),
    [
        (["load", "--workers", "3"], "load", "workers", 3),
        (["load", "-w", "2"], "load", "workers", 2),
        (["load"], "load", "workers", None),
        (["optimize", "--lock-timeout", "12.5"], "optimize", "lock_timeout", 12.5),
        (["optimize"], "optimize", "lock_timeout", 0.0),
    ],
    ids=["load-workers", "load-w", "load-default", "optimize-lock-timeout", "optimize-default"],
)
def test_the_cli_passes_every_option_the_python_api_takes(
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    method: str,
    key: str,
    value: object,
) -> None:
    """`Pipeline.load(workers=)` and `Pipeline.optimize(lock_timeout=)` had no option."""
    import onceflow.pipeline

    monkeypatch.delenv("ONCEFLOW_WORKERS", raising=False)
    monkeypatch.delenv("ONCEFLOW_LOCK_TIMEOUT", raising=False)
    monkeypatch.setattr(onceflow.pipeline, "Pipeline", _Recorder)
    _Recorder.calls.clear()
    main(args)
    assert _Recorder.calls[method][key] == value


def test_a_ctrl_c_a_library_wrapped_in_its_own_error_is_an_interrupt() -> None:
    """pydantic-core turns a KeyboardInterrupt inside a serializer into its own error: the
    CLI said `error: unexpected PydanticSerializationError ... KeyboardInterrupt`."""
    from pydantic import BaseModel, field_serializer

    from onceflow.cli import _from_an_interrupt

    class Model(BaseModel):
        x: int

        @field_serializer("x")
        def interrupted(self, value: int) -> int:
            raise KeyboardInterrupt

    with pytest.raises(Exception) as caught:
        Model(x=1).model_dump()
    assert _from_an_interrupt(caught.value)
    assert not _from_an_interrupt(ValueError("KeyboardInterrupt in a message alone"))


@pytest.mark.parametrize(
    ("given", "named"),
    [
        (["--date", "2025-01-23", "--run-id", "xyz"], "--date and --run-id"),
        (["--date", "2025-01-23"], "--date"),
        (["--run-id", "xyz"], "--run-id"),
    ],
)
def test_status_of_a_tenant_refuses_the_options_of_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], given: list[str], named: str
) -> None:
    """`status --tenant T --date D --run-id X` ignored both and exited 0."""
    text = (
        f"state: 'sqlite:///{tmp_path}/state.db'\npipeline: p\n"
        "sources:\n  s: {url: 'sqlite:///x.db'}\ntables:\n  - {source: s, table: t}\n"
    )
    args = ["status", "--config", _config(tmp_path, text), "--tenant", "default", *given]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: --tenant shows a tenant's scheduled runs, not one run: {named} ")
    assert not (tmp_path / "state.db").exists()
