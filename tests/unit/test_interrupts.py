"""Ctrl-C at any moment of a console script (onceflow.interrupts): put off inside the
import machinery, delivered later, and still an interrupt when the program ends first or
a library turns it into an error of its own (no subprocess: the handler is called)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

import onceflow.cli as cli
from onceflow import interrupts


def _frame(filename: str) -> object:
    return SimpleNamespace(f_code=SimpleNamespace(co_filename=filename))


def _sent_again(sent: list[int]) -> list[int]:
    """What the put-off delivery sent, once it has (before the fixture's stand-in for
    os.kill is undone: a real SIGINT would reach pytest)."""
    deadline = time.monotonic() + 5
    while not sent and time.monotonic() < deadline:
        time.sleep(0.005)
    return sent


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Flags cleared; the signals the handler would send again, recorded instead."""
    monkeypatch.setattr(interrupts, "_put_off", [False])
    monkeypatch.setattr(interrupts, "_raised", [False])
    sent: list[int] = []
    monkeypatch.setattr(interrupts.os, "kill", lambda pid, signum: sent.append(signum))
    yield sent


def test_an_interrupt_inside_an_import_is_put_off_and_sent_again(fresh: list[int]) -> None:
    interrupts.on_interrupt(signal.SIGINT, _frame("<frozen importlib._bootstrap>"))
    assert interrupts.pending() and interrupts.received()
    assert _sent_again(fresh) == [signal.SIGINT]
    with pytest.raises(KeyboardInterrupt):  # delivered where the program is now
        interrupts.on_interrupt(signal.SIGINT, _frame(__file__))
    assert not interrupts.pending() and interrupts.received()


def test_an_interrupt_outside_an_import_is_raised_at_once(fresh: list[int]) -> None:
    assert not interrupts.received()
    with pytest.raises(KeyboardInterrupt):
        interrupts.on_interrupt(signal.SIGINT, _frame(__file__))
    assert interrupts.received() and not fresh


def test_a_program_that_ends_before_its_put_off_interrupt_came_exits_interrupted(
    fresh: list[int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    interrupts.on_interrupt(signal.SIGINT, _frame("<frozen importlib._bootstrap>"))
    monkeypatch.setenv("ONCEFLOW_NO_FAST_EXIT", "1")  # the normal exit: SystemExit
    with pytest.raises(SystemExit) as done:
        cli.exit_now(0)
    assert done.value.code == cli.INTERRUPTED
    assert capsys.readouterr().err.strip() == "interrupted"
    assert _sent_again(fresh) == [signal.SIGINT]


def test_a_librarys_error_made_of_the_interrupt_is_the_interrupt(
    fresh: list[int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """pydantic-core builds a model's validator in Rust and says `SchemaError: ...
    KeyboardInterrupt` with no cause to follow: after a Ctrl-C it is the interrupt."""
    with pytest.raises(KeyboardInterrupt):
        interrupts.on_interrupt(signal.SIGINT, _frame(__file__))

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError('Error building "literal" validator: KeyboardInterrupt: ')

    monkeypatch.setattr(cli, "narrowed", broken)
    assert cli.main(["status"]) == cli.INTERRUPTED
    assert capsys.readouterr().err.strip() == "interrupted"


def test_the_same_error_without_a_ctrl_c_is_unexpected(
    fresh: list[int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "narrowed", broken)
    assert cli.main(["status"]) == 1
    assert "unexpected RuntimeError: boom" in capsys.readouterr().err


def test_ctrl_c_during_a_seed_scripts_help_exits_interrupted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """typer turns a Ctrl-C into the return code 130 outside standalone mode; the seed
    aliases' help returned 0 whatever it said."""
    import rich.console

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(rich.console.Console, "print", interrupted)
    assert cli.validator_job_main(["--help"]) == cli.INTERRUPTED
    assert capsys.readouterr().err.strip().endswith("interrupted")
