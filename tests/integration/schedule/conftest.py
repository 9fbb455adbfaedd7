"""A scheduled project on each state store (SQLite file, PostgreSQL schema)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from onceflow.config import Config
from onceflow.state import Store
from tests.helpers.schedule import project_config


@pytest.fixture
def project(store: Store, tmp_path: Path) -> Iterator[Callable[..., Config]]:
    """project(schedules=[...], **kw) -> Config whose state is the test's store."""

    def make(**kw: Any) -> Config:
        return project_config(tmp_path / "project", store.url, **kw)

    yield make
