"""An incremental SCD2 table without a business time follows window order, not the order
its windows were read in.

Each window of an incremental extract holds the rows whose cursor moved in it, so a later
window's rows changed later, whenever it was read. A window read out of order (a failed
window re-run after the next one, a `--force-reprocess` of a past window) has a later
snapshot instant than the windows after it; its file must still not make theirs "late".
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from onceflow.config import Config, config_from_dict
from onceflow.load import config_targets, load, load_status
from onceflow.pipeline import run
from onceflow.warehouse import read_table
from tests.helpers.lake import content_checksum

ROWS = [
    (1, "a", "2025-09-01 01:00"),
    (1, "b", "2025-09-02 01:00"),
    (1, "c", "2025-09-03 01:00"),
]


@pytest.fixture
def history(pg_admin: Any, pg_schema: str) -> str:
    """A source table holding key 1's value on each of three days; its qualified name."""
    pg_admin.execute(f'CREATE TABLE "{pg_schema}".h (id int, v text, ts timestamp)')
    with pg_admin.cursor() as cur:
        cur.executemany(f'INSERT INTO "{pg_schema}".h VALUES (%s, %s, %s)', ROWS)
    return f"{pg_schema}.h"


def _config(project: Path, url: str, table: str, lake: Path | None = None) -> Config:
    return config_from_dict(
        {
            "pipeline": "p",
            "state": f"sqlite:///{project / 'state.db'}",
            "lake": str(lake or project / "lake"),
            "warehouse": str(project / "warehouse"),
            "retry": {"max_attempts": 1, "backoff_seconds": 0, "max_backoff_seconds": 0},
            "sources": {"pg": {"url": url}},
            "tables": [
                {
                    "source": "pg",
                    "table": table,
                    "name": "h",
                    "extract": {"mode": "incremental", "cursor": "ts"},
                    "load": {"strategy": "scd2", "primary_key": ["id"], "tracking_columns": ["v"]},
                }
            ],
        },
        base_dir=str(project),
    )


def _uri(config: Config) -> str:
    return config_targets(config)[0].uri


def _chain(config: Config, key: int = 1) -> list[tuple[str, bool]]:
    """A key's versions in effective order, each (value, current), after checking that
    each version ends where the next one starts."""
    rows = [r for r in read_table(_uri(config)).to_pylist() if r["id"] == key]
    versions = sorted(rows, key=lambda r: r["_effective_from"])
    for older, newer in itertools.pairwise(versions):
        assert older["_effective_to"] == newer["_effective_from"], versions
    assert versions[-1]["_effective_to"] is None
    return [(r["v"], r["_is_current"]) for r in versions]


def _rebuilt(tmp_path: Path, url: str, table: str, lake: Path) -> str:
    """The content of a fresh table loaded from `lake` alone, in window order."""
    fresh = _config(tmp_path / f"rebuild{len(list(tmp_path.glob('rebuild*')))}", url, table, lake)
    summary = load(fresh)
    assert summary.ok, summary.as_dict()
    return content_checksum(_uri(fresh))


def test_a_window_read_after_the_next_one_does_not_make_the_next_one_late(
    history: str, pg_admin: Any, pg_url: str, tmp_path: Path
) -> None:
    schema, _ = history.split(".")
    project = tmp_path / "project"
    config = _config(project, pg_url, history)
    assert run(config, "2025-09-01").ok
    pg_admin.execute(f'ALTER TABLE "{schema}".h RENAME TO h_away')
    assert not run(config, "2025-09-02").ok  # the source table is gone: extraction fails
    pg_admin.execute(f'ALTER TABLE "{schema}".h_away RENAME TO h')
    assert not run(config, "2025-09-03").ok  # extracted, its load waits for 09-02
    assert run(config, "2025-09-02").ok  # 09-02 is read now, after 09-03 was
    last = run(config, "2025-09-03")
    assert last.ok and last.load is not None and last.load.results[0].rows_skipped == 0

    assert _chain(config) == [("a", False), ("b", False), ("c", True)]
    assert load_status(config)[0]["rows_skipped"] == 0
    lake = project / "lake"
    assert content_checksum(_uri(config)) == _rebuilt(tmp_path, pg_url, history, lake)

    # a row committed late into the first window, taken in the documented way: the window
    # is read again, last of all, and the table rewound and replayed in window order
    pg_admin.execute(f"INSERT INTO {history} VALUES (2, 'late', '2025-09-01 05:00')")
    again = run(config, "2025-09-01", force_reprocess=True)
    assert again.ok and again.load is not None
    assert again.load.results[0].rewound and again.load.results[0].rows_skipped == 0
    assert _chain(config) == [("a", False), ("b", False), ("c", True)]
    assert _chain(config, key=2) == [("late", True)]
    assert content_checksum(_uri(config)) == _rebuilt(tmp_path, pg_url, history, lake)
