"""The invariant, tested directly: whatever order windows arrive in, however often they are
re-extracted, wherever the project folder is moved, a table equals a clean in-order load
of the lake's current files (issue 8).

Each case draws a random history of events (a window arrives, a window is re-extracted, a
load runs, the project moves) from a seed, plays it, loads once more, and compares the
table with a clean load of the final lake into a fresh table. Append, SCD2 on business
time, and SCD2 on snapshot time with hard deletes; on SQLite and PostgreSQL stores.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from onceflow.config import load_config
from onceflow.load import load
from onceflow.windows import window_for
from tests.helpers.lake import (
    START,
    clean_load_checksum,
    config_dict,
    content_checksum,
    table_uri,
    write_extracted,
)
from tests.helpers.servers import pg_state_url, unique

WINDOWS = 5
KEYS = 8
STRATEGIES = {
    "append": {"strategy": "append"},
    "scd2_business_time": {
        "strategy": "scd2",
        "primary_key": ["id"],
        "validity_column": "updated_at",
    },
    "scd2_snapshot_deletes": {"strategy": "scd2", "primary_key": ["id"], "hard_deletes": "close"},
}


def extract(day: int, version: int, strategy: str) -> pa.Table:
    """A window's extract, deterministic in (day, version): what the source held then."""
    rng = random.Random(day * 1000 + version)
    if strategy == "append":
        n = rng.randint(1, 5)
        ids = [day * 1000 + version * 100 + i for i in range(n)]
        return pa.table({"id": pa.array(ids, pa.int64()), "v": [rng.randint(0, 3) for _ in ids]})
    keys = sorted(rng.sample(range(KEYS), rng.randint(KEYS - 2, KEYS)))
    stamp = window_for(START + timedelta(days=day), "UTC").start
    return pa.table(
        {
            "id": pa.array(keys, pa.int64()),
            "v": [rng.randint(0, 2) for _ in keys],
            "updated_at": pa.array([stamp + timedelta(hours=version)] * len(keys)),
        }
    )


def write_window(root: Path, day: int, version: int, strategy: str) -> None:
    end = window_for(START + timedelta(days=day), "UTC").end
    write_extracted(
        root / "lake",
        extract(day, version, strategy),
        day=day,
        snapshot_at=(end + timedelta(hours=version)).isoformat(),
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        yield "sqlite:///.onceflow/state.db"  # inside the project: it moves with it
        return
    admin = request.getfixturevalue("pg_admin")
    schema = unique("of_order")
    admin.execute(f'CREATE SCHEMA "{schema}"')
    yield pg_state_url(schema)
    admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def play(tmp_path: Path, state: str, strategy: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    root = tmp_path / "project"
    root.mkdir(parents=True)
    data = config_dict(root, STRATEGIES[strategy])
    data.update(state=state, lake="./lake", warehouse="./warehouse")
    (root / "onceflow.yml").write_text(yaml.safe_dump(data), encoding="utf-8")
    versions: dict[int, int] = {}
    history = []
    for step in range(12):
        event = rng.choice(["arrive", "arrive", "reextract", "load", "load", "move"])
        if event == "arrive" and len(versions) < WINDOWS:
            day = rng.choice([d for d in range(WINDOWS) if d not in versions])
            versions[day] = 0
            write_window(root, day, 0, strategy)
        elif event == "reextract" and versions:
            day = rng.choice(sorted(versions))
            versions[day] += 1
            write_window(root, day, versions[day], strategy)
        elif event == "move":
            moved = tmp_path / f"project-moved-{step}"
            shutil.move(str(root), str(moved))
            root = moved
        elif event == "load":
            summary = load(load_config(root / "onceflow.yml"))
            assert summary.ok, summary.as_dict()
        else:
            continue
        history.append(event)
    final = load(load_config(root / "onceflow.yml"))
    assert final.ok, final.as_dict()
    got = content_checksum(table_uri(root)) if versions else None
    if got is not None:
        assert got == clean_load_checksum(tmp_path, root / "lake", STRATEGIES[strategy]), (
            seed,
            history,
        )
    return history


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_any_arrival_order_equals_a_clean_in_order_load(
    tmp_path: Path, state: str, strategy: str
) -> None:
    play(tmp_path, state, strategy, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 12))
@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_many_arrival_orders_equal_a_clean_in_order_load(
    tmp_path: Path, state: str, strategy: str, seed: int
) -> None:
    play(tmp_path, state, strategy, seed)


def test_the_histories_exercise_every_event(tmp_path: Path) -> None:
    seen: set[str] = set()
    for seed in range(1, 12):
        seen |= set(play(tmp_path / str(seed), "sqlite:///.onceflow/state.db", "append", seed))
    assert seen == {"arrive", "reextract", "load", "move"}
