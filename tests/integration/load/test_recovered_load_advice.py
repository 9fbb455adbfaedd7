"""The advice to load a run whose load failed is given where it helps: by a lone
extract, not by the `run` that is about to load it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from onceflow.extract import extract
from onceflow.pipeline import run
from onceflow.state import open_store
from tests.helpers.schedule import project_config

DAY = "2025-01-03"
ADVICE = "stays failed"


def _failed_load(tmp_path: Path) -> object:
    """A project whose run of DAY extracted everything and then failed (as a load does)."""
    config = project_config(tmp_path / "p", f"sqlite:///{tmp_path / 'state.db'}")
    summary = run(config, DAY)
    store = open_store(config.state_url)
    store.runs.fail(summary.run.run_id)
    store.close()
    return config


def test_run_recovering_a_failed_load_does_not_advise_running_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _failed_load(tmp_path)
    with caplog.at_level(logging.WARNING):
        summary = run(config, DAY)  # type: ignore[arg-type]
    assert summary.run.status == "completed"
    assert not [r for r in caplog.records if ADVICE in r.getMessage()]


def test_a_lone_extract_still_says_how_to_load_a_failed_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _failed_load(tmp_path)
    with caplog.at_level(logging.WARNING):
        extract(config, DAY)  # type: ignore[arg-type]
    assert [r for r in caplog.records if ADVICE in r.getMessage()]
