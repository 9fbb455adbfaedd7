"""The seed validator's entry points (seed 003) are onceflow's own under the seed's names:
`DataValidator` is `Validator`, `data-validator-job` is `onceflow validate`."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import onceflow
from onceflow.cli import validator_job_main
from onceflow.validate import DataValidator, Validator

ROOT = Path(__file__).resolve().parents[2]


def test_the_seeds_class_is_the_validator_in_both_places() -> None:
    assert onceflow.DataValidator is DataValidator is Validator


def test_the_seeds_job_is_a_console_script_of_onceflow_validate() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["data-validator-job"] == "onceflow.console:run_validator_job"


def test_the_job_takes_the_seeds_flags_as_validate_does(capsys: pytest.CaptureFixture[str]):
    assert validator_job_main(["--help"]) == 0
    shown = capsys.readouterr().out
    for flag in ("--config", "--sources", "--output", "--no-resume"):
        assert flag in shown
    assert validator_job_main(["--config", "/nonexistent/config.yaml"]) == 2
    assert "config file /nonexistent/config.yaml not found" in capsys.readouterr().err
