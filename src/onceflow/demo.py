"""`onceflow init`: a demo project with a SQLite shop database and an onceflow.yml.

The shop's dates are relative to today, so a demo made again on a later day is a new
shop: `init --force` removes what the old demo left (its state store, lake and warehouse,
the ones its config names) before writing the new one. Keeping them would load the new
shop's orders beside the old ones: the same order ids twice, under run dates the old
state already holds. So it never keeps nor deletes through a link: when one of those
paths (or shop.db, onceflow.yml) is a symlink, lies behind one, or resolves outside the
demo folder, it refuses before removing anything, naming the path for the user to
remove or move.
"""

from __future__ import annotations

import logging
import os
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
    start: "{start}"   # 3 nights before `init`: no missed night is left out
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
    if folder.exists() and not folder.is_dir():
        # `init demo/onceflow.yml`: a folder is meant (else "unexpected FileExistsError")
        raise ConfigError(
            f"{folder} is a file, not a folder: `onceflow init DIR` makes the demo project "
            f"in a folder (e.g. onceflow init {folder.parent}, or a new folder's name)",
            field="directory",
        )
    if (config.exists() or database.exists()) and not force:
        raise ConfigError(f"{folder} already has a demo project; pass --force to overwrite it")
    # writing the config or the shop through a link would overwrite a file elsewhere
    refuse_links(folder, [config, database], "init")
    folder.mkdir(parents=True, exist_ok=True)
    if force:
        remove_demo_data(folder)
    database.unlink(missing_ok=True)
    create_demo_database(database)
    config.write_text(demo_config(), encoding="utf-8")
    return config


def demo_config(now: datetime | date | None = None) -> str:
    """The demo's onceflow.yml, its schedule starting three nights back from `now`: a
    fixed start left `up` hundreds of missed nights to skip, each demo warning about them.
    A date stands for its noon."""
    at = now or datetime.now(UTC)
    if not isinstance(at, datetime):
        at = datetime(at.year, at.month, at.day, 12, tzinfo=UTC)
    # the day of the latest 02:00 tick, so that `up` always catches up 3 nights (a start 3
    # days back from the calendar day left 2 before 02:00 and 3 after); at noon, away from
    # the tick; each of them a night the shop has orders for
    day = at.date() if at.astimezone(UTC).hour >= 2 else at.date() - timedelta(days=1)
    start = datetime(day.year, day.month, day.day, 12, tzinfo=UTC) - timedelta(days=3)
    return DEMO_CONFIG.replace("{start}", start.isoformat())


def demo_data_paths(folder: Path) -> list[Path]:
    """What a demo in `folder` writes besides its shop and config: the state store (with
    SQLite's journal files), the lake and the warehouse, as `DEMO_CONFIG` names them, below
    the (resolved) folder. Not resolved themselves: a link among them is the user's, and
    `remove_demo_data` refuses it rather than follow it."""
    import yaml

    raw = yaml.safe_load(DEMO_CONFIG)
    root = folder.resolve()
    state = root / str(raw["state"]).removeprefix("sqlite:///")
    paths = [state, *(state.with_name(state.name + s) for s in ("-wal", "-shm", "-journal"))]
    return [*paths, root / str(raw["lake"]), root / str(raw["warehouse"])]


def _link_problem(root: Path, path: Path) -> str | None:
    """Why `path` (below `root`) must not be written or removed, or None: a link on the
    way to it (it, or a folder it is in), or a place that resolves outside `root`."""
    if not path.is_relative_to(root) or path == root:
        return f"{path} is not inside the demo folder {root}"
    step = root
    for part in path.relative_to(root).parts:
        step = step / part
        if step.is_symlink():
            return f"{step} is a symlink (to {os.readlink(step)})"
        if not step.exists():
            return None
    resolved = path.resolve()
    if resolved == root or not resolved.is_relative_to(root):
        return f"{path} resolves to {resolved}, outside the demo folder {root}"
    return None


def refuse_links(folder: Path, paths: list[Path], command: str) -> None:
    """Raise ConfigError (nothing touched) when any of `paths` is a link, lies behind
    one, or resolves outside `folder`: onceflow never deletes or writes through a link."""
    root = folder.resolve()
    problems = [p for p in (_link_problem(root, root / p.relative_to(folder)) for p in paths) if p]
    if not problems:
        return
    raise ConfigError(
        f"{command}: {'; '.join(problems)}: it is not the demo's own, and {command} never "
        "deletes or writes through a link or outside the demo folder. Remove or move it "
        f"yourself (removing a link leaves what it points to), then run {command} again; "
        "nothing was removed"
    )


def remove_demo_data(folder: Path) -> list[Path]:
    """Remove the demo's state store, lake and warehouse in `folder` (`init --force`);
    returns what was removed. Every path is checked before any is removed: when one is a
    link, or lies behind one or outside `folder`, nothing is removed (ConfigError). The
    state store's own folder (`.onceflow/`) goes too when nothing else is left in it."""
    paths = demo_data_paths(folder)
    root = folder.resolve()
    refuse_links(root, paths, "init --force")
    removed = []
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        log.info("init --force: removed the old demo's %s", path)
        removed.append(path)
    state_dir = paths[0].parent
    if state_dir != root and state_dir.is_dir() and not any(state_dir.iterdir()):
        state_dir.rmdir()
    return removed
