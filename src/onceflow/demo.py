"""`onceflow init`: a demo project with a SQLite shop database and an onceflow.yml.

The shop's dates are relative to today, so a demo made again on a later day is a new
shop: `init --force` removes what the old demo left (its state store, lake and warehouse,
the ones its config names, when they lie inside the demo folder) before writing the new
one. Keeping them would load the new shop's orders beside the old ones: the same order ids
twice, under run dates the old state already holds.
"""

from __future__ import annotations

import logging
import random
import shutil
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from onceflow.errors import ConfigError

log = logging.getLogger(__name__)

DEMO_CONFIG = """\
# onceflow demo: a small shop in SQLite, extracted to Parquet under ./lake.
pipeline: demo
state: sqlite:///.onceflow/state.db
lake: ./lake
warehouse: ./warehouse
timezone: UTC
workers: 2
sources:
  shop: {url: "sqlite:///shop.db"}
tables:
  - source: shop
    table: orders
    extract: {mode: incremental, cursor: updated_at}
    load: {strategy: append}
    rules:                              # checked after each load, on the rows it appended
      - {name: order_id_unique, type: uniqueness, columns: [order_id]}
      - {name: amount_positive, type: range, column: amount, min: 0, inclusive: false}
      - {name: status_known, type: allowed_values, column: status,
         values: [new, paid, shipped, cancelled]}
  - source: shop
    table: customers
    extract: {mode: full}
    load: {strategy: scd2, primary_key: [customer_id], tracking_columns: [name, email]}
    rules:                              # checked on the whole table
      - {name: email_format, type: regex, column: email, pattern: '^[^@ ]+@[^@ ]+$'}
      - {name: email_present, type: completeness, column: email, severity: warn}
schedules:
  - name: nightly                       # `onceflow up` runs it: 02:00 UTC, yesterday's window
    cron: "0 2 * * *"
    start: "2025-01-01T00:00:00+00:00"
    catch_up: {max: 3}                  # after downtime, the 3 latest missed nights
"""

_NAMES = ["Ada", "Bjørn", "Chloé", "Dmitri", "Eun-ji", "Farah", "Giulia", "Hiro", "Inès", "José"]
_SURNAMES = ["Lovelace", "Ødegaard", "Dubois", "Ivanov", "Kim", "Haddad", "Rossi", "Tanaka"]


def create_demo_database(
    path: Path,
    *,
    days: int = 7,
    orders_per_day: int = 600,
    customers: int = 300,
    end: date | None = None,
    seed: int = 42,
) -> None:
    """A SQLite shop: customers, and orders spread over `days` days ending `end` (yesterday)."""
    rng = random.Random(seed)
    last = end or (datetime.now(UTC).date() - timedelta(days=1))
    first = last - timedelta(days=days - 1)
    conn = sqlite3.connect(path)
    try:
        conn.executescript(
            """
            CREATE TABLE customers (
                customer_id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT,
                country TEXT, created_at TEXT NOT NULL);
            CREATE TABLE orders (
                order_id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL,
                amount REAL NOT NULL, currency TEXT NOT NULL, status TEXT NOT NULL,
                updated_at TEXT NOT NULL);
            CREATE INDEX orders_updated_at ON orders (updated_at);
            """
        )
        conn.executemany(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?)",
            [
                (
                    i,
                    f"{rng.choice(_NAMES)} {rng.choice(_SURNAMES)}",
                    None if i % 37 == 0 else f"customer{i}@example.com",
                    rng.choice(["NO", "FR", "JP", "US", "IT", "KR"]),
                    f"{first - timedelta(days=rng.randint(1, 400))} 12:00:00",
                )
                for i in range(1, customers + 1)
            ],
        )
        rows = []
        order_id = 0
        for offset in range(days):
            day = first + timedelta(days=offset)
            for _ in range(orders_per_day):
                order_id += 1
                seconds = rng.randrange(86_400)
                stamp = datetime(day.year, day.month, day.day) + timedelta(seconds=seconds)
                rows.append(
                    (
                        order_id,
                        rng.randint(1, customers),
                        round(rng.uniform(5, 500), 2),
                        "EUR",
                        rng.choice(["new", "paid", "shipped", "cancelled"]),
                        stamp.strftime("%Y-%m-%d %H:%M:%S"),
                    )
                )
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", rows)
        conn.commit()
    finally:
        conn.close()


def init_project(directory: str | Path, *, force: bool = False) -> Path:
    """Scaffold a demo project in `directory`; returns the path of its onceflow.yml."""
    folder = Path(directory)
    config = folder / "onceflow.yml"
    database = folder / "shop.db"
    if (config.exists() or database.exists()) and not force:
        raise ConfigError(f"{folder} already has a demo project; pass --force to overwrite it")
    folder.mkdir(parents=True, exist_ok=True)
    if force:
        remove_demo_data(folder)
    database.unlink(missing_ok=True)
    create_demo_database(database)
    config.write_text(DEMO_CONFIG, encoding="utf-8")
    return config


def demo_data_paths(folder: Path) -> list[Path]:
    """What a demo in `folder` writes besides its shop and config: the state store (with
    SQLite's journal files), the lake and the warehouse, as `DEMO_CONFIG` names them,
    resolved the way its config resolves them; only paths inside `folder` (never the
    folder itself)."""
    import yaml

    raw = yaml.safe_load(DEMO_CONFIG)
    root = folder.resolve()
    state = str(raw["state"]).removeprefix("sqlite:///")
    paths = [root / state]
    paths += [paths[0].with_name(paths[0].name + s) for s in ("-wal", "-shm", "-journal")]
    paths += [root / str(raw["lake"]), root / str(raw["warehouse"])]
    resolved = [p.resolve() for p in paths]
    return [p for p in resolved if p != root and p.is_relative_to(root)]


def remove_demo_data(folder: Path) -> list[Path]:
    """Remove the demo's state store, lake and warehouse in `folder` (`init --force`);
    returns what was removed. The state store's own folder (`.onceflow/`) goes too when
    nothing else is left in it."""
    removed = []
    for path in demo_data_paths(folder):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        log.info("init --force: removed the old demo's %s", path)
        removed.append(path)
    state_dir = demo_data_paths(folder)[0].parent
    if state_dir != folder.resolve() and state_dir.is_dir() and not any(state_dir.iterdir()):
        state_dir.rmdir()
    return removed
