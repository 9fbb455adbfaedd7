"""Full extracts of an SCD2 table with hard deletes, read out of window order: the newest
read of the whole table is the truth, for deletes and returns as for changed rows.

A backfilled window is read after the windows ahead of it, so its load rewinds the table
and replays them: their files were read earlier, and a key they miss, or hold, is older
evidence than the versions the backfilled window made. It must neither end a version
that started after it was read nor bring back a key deleted after it was read.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from onceflow.config import Config, config_from_dict
from onceflow.load import config_targets, load
from onceflow.pipeline import run
from onceflow.warehouse import read_table
from tests.helpers.lake import content_checksum

TABLES = ("k_close", "k_new")


@pytest.fixture
def source(pg_admin: Any, pg_schema: str) -> str:
    """A source table holding keys 1 and 3; its qualified name."""
    pg_admin.execute(f'CREATE TABLE "{pg_schema}".k (id int, v text)')
    pg_admin.execute(f"INSERT INTO \"{pg_schema}\".k VALUES (1, 'a'), (3, 'c')")
    return f"{pg_schema}.k"


def _config(
    project: Path, url: str, table: str, lake: Path | None = None, validity: str | None = None
) -> Config:
    valid = {"validity_column": validity} if validity else {}
    tables = [
        {
            "source": "pg",
            "table": table,
            "name": name,
            "extract": {"mode": "full"},
            "load": {"strategy": "scd2", "primary_key": ["id"], "hard_deletes": mode, **valid},
        }
        for name, mode in zip(TABLES, ("close", "new_record"), strict=True)
    ]
    return config_from_dict(
        {
            "pipeline": "p",
            "state": f"sqlite:///{project / 'state.db'}",
            "lake": str(lake or project / "lake"),
            "warehouse": str(project / "warehouse"),
            "retry": {"max_attempts": 1, "backoff_seconds": 0, "max_backoff_seconds": 0},
            "sources": {"pg": {"url": url}},
            "tables": tables,
        },
        base_dir=str(project),
    )


def _uris(config: Config) -> dict[str, str]:
    return {t.key.rsplit(".", 1)[-1]: t.uri for t in config_targets(config)}


def _state(uri: str) -> dict[int, list[tuple[str, bool, bool]]]:
    """Per key, its versions in effective order as (value, current, deletion), after
    checking that none is empty, each ends where the next one starts and only the
    current one is open."""
    out: dict[int, list[tuple[str, bool, bool]]] = {}
    rows = sorted(read_table(uri).to_pylist(), key=lambda r: (r["id"], r["_effective_from"]))
    for key in sorted({r["id"] for r in rows}):
        versions = [r for r in rows if r["id"] == key]
        for older, newer in itertools.pairwise(versions):
            assert older["_effective_from"] < older["_effective_to"], versions
            assert older["_effective_to"] == newer["_effective_from"], versions
        assert all((r["_effective_to"] is None) == r["_is_current"] for r in versions)
        out[key] = [(r["v"], r["_is_current"], bool(r.get("_is_deleted"))) for r in versions]
    return out


def test_an_older_full_read_neither_ends_nor_brings_back_what_the_newest_read_decided(
    source: str, pg_admin: Any, pg_url: str, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    config = _config(project, pg_url, source)
    assert run(config, "2026-10-03").ok
    assert run(config, "2026-10-05").ok  # read first: keys 1 and 3
    pg_admin.execute(f"INSERT INTO {source} VALUES (2, 'b')")
    pg_admin.execute(f"DELETE FROM {source} WHERE id = 3")
    backfill = run(config, "2026-10-04")  # the newest read: keys 1 and 2
    assert backfill.ok and backfill.load is not None
    by_table = {r.target: r for r in backfill.load.results}
    uris = _uris(config)

    close = _state(uris["k_close"])
    assert close == {1: [("a", True, False)], 2: [("b", True, False)], 3: [("c", False, False)]}
    new = _state(uris["k_new"])
    assert new == {
        1: [("a", True, False)],
        2: [("b", True, False)],
        3: [("c", False, False), ("c", True, True)],
    }
    # 10-05's read, replayed after 10-04's, misses key 2: a late absence, counted; it
    # still holds key 3 as it was then: known, not late
    for name in TABLES:
        result = next(r for target, r in by_table.items() if target.endswith(name))
        assert result.rewound and result.rows_skipped == 1

    # a rebuild from the lake alone applies the same files in the same order
    fresh = _config(tmp_path / "rebuild", pg_url, source, project / "lake")
    assert load(fresh).ok
    rebuilt = _uris(fresh)
    for name in TABLES:
        assert content_checksum(uris[name]) == content_checksum(rebuilt[name])


def _skipped(summary: Any) -> dict[str, int]:
    assert summary.ok and summary.load is not None
    return {
        name: r.rows_skipped
        for r in summary.load.results
        for name in TABLES
        if r.target.endswith(name)
    }


def _rebuilds_the_same(config: Config, tmp_path: Path, url: str, table: str, **kw: Any) -> None:
    """A rebuild from the lake alone applies the same files in the same order."""
    fresh = _config(tmp_path / "rebuild", url, table, Path(config.lake), **kw)
    assert load(fresh).ok
    uris, rebuilt = _uris(config), _uris(fresh)
    for name in TABLES:
        assert content_checksum(uris[name]) == content_checksum(rebuilt[name])


def test_a_backfilled_full_read_is_not_overridden_by_a_key_only_an_older_read_held(
    source: str, pg_admin: Any, pg_url: str, tmp_path: Path
) -> None:
    # 10-05 is read first, with keys 1 and 3; then key 3 is gone and 10-04 is backfilled:
    # the newest read. Replayed after it, 10-05's read holds key 3, which the table has no
    # version of: the newest read did not hold it, so it is late, never inserted current
    config = _config(tmp_path / "project", pg_url, source)
    assert run(config, "2026-10-05").ok
    pg_admin.execute(f"DELETE FROM {source} WHERE id = 3")
    backfill = run(config, "2026-10-04")
    uris = _uris(config)
    assert _state(uris["k_close"]) == {1: [("a", True, False)]}
    assert _state(uris["k_new"]) == {1: [("a", True, False)]}
    # key 3, and key 1 as read before its version started (its values, but no history)
    assert _skipped(backfill) == {"k_close": 2, "k_new": 2}
    _rebuilds_the_same(config, tmp_path, pg_url, source)


def test_with_a_validity_column_an_older_read_replayed_never_brings_back_a_deleted_key(
    pg_admin: Any, pg_schema: str, pg_url: str, tmp_path: Path
) -> None:
    # key 2 is valid from 2030: the newest read (10-02 read again, after key 2 was deleted)
    # ends it at its start, 2030, so 10-03's row of it, read earlier with the same validity,
    # is no later than the close. It is history (late), not a return
    table = f"{pg_schema}.kv"
    pg_admin.execute(f'CREATE TABLE "{pg_schema}".kv (id int, v text, vf date)')
    pg_admin.execute(f"INSERT INTO {table} VALUES (1, 'a', '2025-01-01'), (2, 'b', '2030-01-01')")
    config = _config(tmp_path / "project", pg_url, table, validity="vf")
    assert run(config, "2026-10-01").ok
    pg_admin.execute(f"DELETE FROM {table} WHERE id = 2")
    assert run(config, "2026-10-02").ok
    pg_admin.execute(f"INSERT INTO {table} VALUES (2, 'b', '2030-01-01')")
    assert run(config, "2026-10-03").ok
    pg_admin.execute(f"DELETE FROM {table} WHERE id = 2")
    pg_admin.execute(f"UPDATE {table} SET v = 'a2', vf = '2025-01-05' WHERE id = 1")
    again = run(config, "2026-10-02", force_reprocess=True)
    assert _skipped(again) == {"k_close": 1, "k_new": 1}
    for name, uri in _uris(config).items():
        live = {
            r["id"]: r["v"]
            for r in read_table(uri).to_pylist()
            if r["_is_current"] and not r.get("_is_deleted")
        }
        assert live == {1: "a2"}, name
    _rebuilds_the_same(config, tmp_path, pg_url, table, validity="vf")
