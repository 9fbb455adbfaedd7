"""A naive `validity_column` is wall time in the pipeline's `timezone`, as the window reads
the same naive cursor: an SCD2 version starts inside its own window (SQLite source,
`run` end to end)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from onceflow.config import config_from_dict
from onceflow.load import config_targets
from onceflow.pipeline import run
from onceflow.warehouse import read_table


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/New_York", "UTC"])
def test_an_scd2_version_starts_inside_the_window_that_extracted_its_row(
    tmp_path: Path, zone: str
) -> None:
    stamps = ["2025-01-02 00:30:00", "2025-01-02 23:30:00"]
    conn = sqlite3.connect(tmp_path / "src.db")
    conn.execute("CREATE TABLE ev (id INTEGER, name TEXT, updated_at TIMESTAMP)")
    conn.executemany("INSERT INTO ev VALUES (1, ?, ?)", zip("ab", stamps, strict=True))
    conn.commit()
    conn.close()
    config = config_from_dict(
        {
            "pipeline": "p",
            "state": f"sqlite:///{tmp_path / 'state.db'}",
            "lake": str(tmp_path / "lake"),
            "warehouse": str(tmp_path / "warehouse"),
            "timezone": zone,
            "sources": {"s": {"url": f"sqlite:///{tmp_path / 'src.db'}"}},
            "tables": [
                {
                    "source": "s",
                    "table": "ev",
                    "extract": {"mode": "incremental", "cursor": "updated_at"},
                    "load": {
                        "strategy": "scd2",
                        "primary_key": ["id"],
                        "validity_column": "updated_at",
                    },
                }
            ],
        },
        base_dir=str(tmp_path),
    )
    result = run(config, "2025-01-02")
    assert result.ok
    (target,) = config_targets(config)
    versions = sorted(r["_effective_from"] for r in read_table(target.uri).to_pylist())
    tz = ZoneInfo(zone)
    start = datetime(2025, 1, 2, tzinfo=tz).astimezone(UTC)
    end = datetime(2025, 1, 3, tzinfo=tz).astimezone(UTC)
    expected = [datetime.fromisoformat(s).replace(tzinfo=tz).astimezone(UTC) for s in stamps]
    assert versions == expected
    assert all(start <= v < end for v in versions)
