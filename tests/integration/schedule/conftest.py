"""A scheduled project on each state store (SQLite file, PostgreSQL schema)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from onceflow.config import Config
from onceflow.errors import SourceError
from onceflow.schedule import worker as worker_module
from onceflow.state import Store
from tests.helpers.schedule import project_config


@pytest.fixture
def project(store: Store, tmp_path: Path) -> Iterator[Callable[..., Config]]:
    """project(schedules=[...], **kw) -> Config whose state is the test's store."""

    def make(**kw: Any) -> Config:
        return project_config(tmp_path / "project", store.url, **kw)

    yield make


@pytest.fixture
def broken(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Run dates whose run fails (a permanent source error) while listed."""
    dates: set[str] = set()
    real = worker_module.run_window

    def run_window(config: Config, run_date: str, **kw: Any) -> Any:
        if run_date in dates:
            raise SourceError(f"{run_date}: no such table (broken by the test)")
        return real(config, run_date, **kw)

    monkeypatch.setattr(worker_module, "run_window", run_window)
    yield dates
