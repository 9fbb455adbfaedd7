"""A window committed as complete by a clock ahead of this host's is not trusted as
complete while, by this host's clock, the window has not settled.

The clock that decides whether a window has settled is patched (the one `extract` and
`windows` read), as a host whose clock was stepped back sees it: an NTP step, a VM
restored, or a worker on another host with a clock ahead sharing the store.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import onceflow.extract.api
import onceflow.windows
from onceflow.errors import ConfigError
from onceflow.extract import extract
from onceflow.extract.extractor import EARLY_COMMIT
from onceflow.lake import sidecar_path
from tests.helpers.extract import make_config, result

DAY = "2026-11-25"  # in UTC: settles at 2026-11-26T02:00Z with settle: 2h
SETTLED = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
BEFORE_SETTLED = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[datetime], None]:
    """Sets the clock that extract and windows read."""
    now = [datetime.now(UTC)]

    class Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return now[0].astimezone(tz) if tz else now[0].astimezone().replace(tzinfo=None)

    monkeypatch.setattr(onceflow.extract.api, "datetime", Clock)
    monkeypatch.setattr(onceflow.windows, "datetime", Clock)

    def set_to(moment: datetime) -> None:
        now[0] = moment

    return set_to


def _ids(path: str) -> list[int]:
    return sorted(pq.read_table(path).column("id").to_pylist())


def _sidecar(path: str) -> dict[str, Any]:
    return dict(json.loads(sidecar_path(Path(path)).read_text()))


def _source(tmp_path: Path, first_id: int) -> tuple[sqlite3.Connection, Any]:
    """A SQLite source with one row in the window of DAY, and an incremental table on it
    that settles 2 h after its window ends."""
    db = tmp_path / "source.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (id INTEGER, updated_at TIMESTAMP)")
    conn.execute("INSERT INTO t VALUES (?, '2026-11-25 20:00:00')", (first_id,))
    conn.commit()
    config = make_config(
        tmp_path,
        {"s": f"sqlite:///{db}"},
        [{"source": "s", "table": "t", "extract": {"mode": "incremental", "cursor": "updated_at"}}],
        timezone="UTC",
        settle="2h",
    )
    return conn, config


def test_a_window_committed_complete_by_a_clock_ahead_is_extracted_again_until_settled(
    tmp_path: Path, clock: Callable[[datetime], None], caplog: pytest.LogCaptureFixture
) -> None:
    conn, config = _source(tmp_path, 7001)
    clock(SETTLED)  # a clock ahead: the window looks settled
    first = result(extract(config, DAY), "s.t")
    assert first.action == "extracted" and _sidecar(first.file_path)["partial"] is False
    assert first.partial is False

    clock(BEFORE_SETTLED)  # stepped back; a row commits into the window
    conn.execute("INSERT INTO t VALUES (7002, '2026-11-25 23:00:00')")
    conn.commit()
    with pytest.raises(ConfigError, match="already committed as complete") as refused:
        extract(config, DAY)
    assert "--allow-partial" in str(refused.value) and "--force-reprocess" in str(refused.value)

    with caplog.at_level(logging.WARNING, logger="onceflow.extract.api"):
        again = result(extract(config, DAY, allow_partial=True), "s.t")
    assert again.action == "extracted" and (again.reason or "").startswith(EARLY_COMMIT)
    assert "2026-11-26T02:00:00+00:00" in (again.reason or "")
    assert any("another host's clock is ahead" in r.getMessage() for r in caplog.records)
    assert _ids(again.file_path) == [7001, 7002]
    assert _sidecar(again.file_path)["partial"] is True
    assert again.partial is True  # the result says so, as the sidecar does

    clock(SETTLED)  # settled now: extracted once more, complete, then skipped
    settled = result(extract(config, DAY), "s.t")
    assert settled.action == "extracted" and _sidecar(settled.file_path)["partial"] is False
    assert settled.partial is False
    assert _ids(settled.file_path) == [7001, 7002]
    assert result(extract(config, DAY), "s.t").action == "skipped"
    conn.close()


def test_a_settled_window_committed_complete_is_skipped_whatever_the_clock_said(
    tmp_path: Path, clock: Callable[[datetime], None]
) -> None:
    # the ordinary case stays: committed after the window settled, skipped
    conn, config = _source(tmp_path, 1)
    conn.close()
    clock(SETTLED)
    assert result(extract(config, DAY), "s.t").action == "extracted"
    assert result(extract(config, DAY), "s.t").action == "skipped"
