"""onceflow's SCD2 loader against dbt snapshots, on planted scenarios.

Run from the repository root with the project venv::

    .venv/bin/python bench/compare_dbt.py --setup          # dbt's venv (idempotent)
    .venv/bin/python bench/compare_dbt.py                  # every scenario -> bench/compare-dbt.md
    .venv/bin/python bench/compare_dbt.py --only silent_change late_window --no-write
    .venv/bin/python bench/compare_dbt.py --list
    .venv/bin/python bench/compare_dbt.py --repro silent_change timestamp/ignore --late-rows reject
    .venv/bin/python bench/compare_dbt.py --reuse-dbt      # onceflow again, dbt's last results

dbt lives in its own venv, ``bench/.work/venv-dbt`` (pinned in
``bench/requirements-compare-dbt.txt``, created by ``--setup`` from the same base
python3 as ``.venv``; offline afterwards: no dbt hub packages, anonymous usage stats and
version checks off). onceflow runs in this process, from ``.venv``.

A scenario is a small dimension (a few keys) and its source state on 3-6 days. Each
scenario runs in one or more *modes*: a dbt snapshot strategy (``check`` on the tracked
columns, or ``timestamp`` on ``updated_at``) and a ``hard_deletes`` setting (``ignore``,
``invalidate``, ``new_record``). For each mode:

* **dbt**: one DuckDB database holds every case; each case is its own snapshot over
  its own source table. Round r loads day r's source state of every case into its source
  table and runs ``dbt snapshot`` once for the cases that have a day r (so each case's
  snapshot runs once per day, in order). dbt's clock is made deterministic by a project
  macro ``duckdb__snapshot_get_time`` (dispatch finds the root project's macro before
  dbt-duckdb's, which is ``now()::timestamp``): it reads the case's row of a
  ``main.dbt_clock`` table that the harness sets before each round to the end of that
  day (00:00 UTC of the next day), i.e. day N's snapshot runs "at" the end of day N,
  the instant onceflow's extractor records as ``snapshot_at`` for that day. A case whose
  clock is NULL falls back to dbt's own ``now()`` (the scenario ``backfill_real_clock``).
  ``snapshot_get_time`` is what dbt uses for check-strategy versions, for hard-delete
  closes and for deletion records; the timestamp strategy takes ``updated_at``.
* **onceflow**: each day's state is written as a lake file with a complete sidecar (the
  fields of ``tests/helpers/lake.py:write_extracted``; ``snapshot_at`` = end of the day)
  and ``onceflow.load.load`` runs after each file, with ``strategy: scd2``,
  ``primary_key``, ``tracking_columns`` (the dbt ``check_cols``; omitted when dbt uses
  ``check_cols: all``), ``hard_deletes`` ignore / close (dbt ``invalidate``) /
  new_record, and ``validity_column: updated_at`` for the timestamp strategy (none for
  check: validity is then the sidecar's ``snapshot_at``). ``late_rows`` stays ``skip``.
  The ``late_window`` scenario writes and loads day 3 before day 2 (a rewind and replay);
  its dbt reference is the in-order run, and a dbt run in that arrival order is shown too.

Both results are normalised to (key, source columns, valid_from, valid_to, is_current[,
is_deleted]) with naive UTC timestamps, compared as multisets, and reported per scenario
side by side: one table per mode, a row per version, and which tool has it. Verdicts:

* **same**;
* **differs - onceflow decision**: every differing key is covered by a difference the
  scenario declares, citing the line of docs/exactly-once.md that states it (the line is
  looked up in the current file, so a reworded docs table is noticed);
* **differs - docs gap**: a deliberate onceflow behaviour (named in the scd2.py
  docstring) that docs/exactly-once.md does not state: a docs fix, not a code fix;
* **differs - unexplained**: anything else (a candidate onceflow bug; the report gives
  the reproduction, and ``--repro`` runs it). Besides the histories, a case is
  unexplained when onceflow counts late rows in a scenario that plants none, when a load
  fails where the scenario expects none to, or when onceflow's history is not the one a
  scenario derives by hand from docs/exactly-once.md (``docs_history``): a documented
  difference from dbt must also be the documented behaviour. A late-row anomaly is run
  again with ``late_rows: reject`` to show what it does to a pipeline.

The report also checks each claim of the dbt column of docs/exactly-once.md's table
"SCD2: what a version means" against what dbt actually did, and writes everything to
``bench/compare-dbt.md`` (``--no-write``: print only).

The dbt part runs as a child in dbt's venv: this same file, ``--dbt-driver SPEC OUT``,
which imports nothing from onceflow.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"
VENV_DIR = WORK_DIR / "venv-dbt"
DBT_PY = VENV_DIR / "bin" / "python"
REQUIREMENTS = BENCH_DIR / "requirements-compare-dbt.txt"
REPORT = BENCH_DIR / "compare-dbt.md"
DOCS = REPO_DIR / "docs" / "exactly-once.md"
RUN_DIR = WORK_DIR / "compare-dbt"

START = date(2025, 1, 1)  # day 1
DBT_ENV = {
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DO_NOT_TRACK": "1",
    "DBT_VERSION_CHECK": "false",
    "DBT_PARTIAL_PARSE": "false",
    "DBT_STATIC_PARSER": "true",
}
SQL_TYPES = {
    "id": "BIGINT",
    "region": "VARCHAR",
    "name": "VARCHAR",
    "tier": "VARCHAR",
    "updated_at": "TIMESTAMP",
}

# ================================================================== scenario builders


def t(day: int, hour: int = 10, minute: int = 0) -> str:
    """An instant on day `day` (1 = 2025-01-01), naive UTC."""
    d = START + timedelta(days=day - 1)
    return f"{d:%Y-%m-%d} {hour:02d}:{minute:02d}"


def end_of(day: int) -> str:
    """The end of day `day`: where its extract's snapshot_at and dbt's clock stand."""
    d = START + timedelta(days=day)
    return f"{d:%Y-%m-%d} 00:00"


@dataclass(frozen=True)
class Documented:
    """A difference docs/exactly-once.md states: `row` is the start of the case cell of
    its table row; `keys` the keys it may affect (None: any); `modes` glob patterns of
    the modes it applies to ("strategy/hard_deletes")."""

    row: str
    modes: tuple[str, ...]
    keys: tuple[Any, ...] | None = None
    why: str = ""


@dataclass(frozen=True)
class Gap:
    """A deliberate onceflow behaviour not stated in docs/exactly-once.md."""

    where: str
    modes: tuple[str, ...]
    keys: tuple[Any, ...] | None = None
    why: str = ""


@dataclass
class Scenario:
    name: str
    title: str
    plants: str
    days: list[list[tuple[Any, ...]]]
    columns: tuple[str, ...] = ("id", "name", "tier", "updated_at")
    keys: tuple[str, ...] = ("id",)
    tracked: tuple[str, ...] | None = ("name", "tier")  # None: dbt check_cols 'all'
    strategies: tuple[str, ...] = ("check", "timestamp")
    deletes: tuple[str, ...] = ("ignore",)
    onceflow_order: tuple[int, ...] | None = None  # day numbers in arrival order
    dbt_real_clock: bool = False
    dbt_arrival_order: bool = False  # also run dbt in onceflow_order (informational)
    late_expected: tuple[str, ...] = ()  # modes (globs) where onceflow should count late rows
    fail_expected: tuple[str, ...] = ()  # modes (globs) where onceflow should refuse a file
    # what docs/exactly-once.md says onceflow's history must be (mode -> rows), derived by
    # hand from its table; checked before the comparison with dbt
    docs_history: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    superseded: dict[int, list[tuple[Any, ...]]] = field(default_factory=dict)  # first extracts
    expect: list[Documented | Gap] = field(default_factory=list)

    def modes(self) -> list[str]:
        return [f"{s}/{d}" for s in self.strategies for d in self.deletes]


ALL_DELETES = ("ignore", "invalidate", "new_record")
HD = ("*/invalidate", "*/new_record")

SCENARIOS: list[Scenario] = [
    Scenario(
        "plain_change",
        "A plain change",
        "key 1 changes tier on day 2 (updated_at moves); key 2 never changes",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "platinum", t(2)), (2, "bob", "silver", t(1))],
            [(1, "ann", "platinum", t(2)), (2, "bob", "silver", t(1))],
        ],
    ),
    Scenario(
        "no_change",
        "No change",
        "the same state on three days",
        [[(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))]] * 3,
    ),
    Scenario(
        "change_and_back",
        "A change and back (A -> B -> A)",
        "key 1: gold (day 1), platinum (day 2), gold again with a new updated_at (day 3)",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "platinum", t(2)), (2, "bob", "silver", t(1))],
            [(1, "ann", "gold", t(3)), (2, "bob", "silver", t(1))],
            [(1, "ann", "gold", t(3)), (2, "bob", "silver", t(1))],
        ],
    ),
    Scenario(
        "deleted_back_unchanged",
        "A key deleted, then back unchanged",
        "key 2 is absent on day 2 and back on day 3 with the very same row (same updated_at)",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "gold", t(1))],
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
        ],
        deletes=ALL_DELETES,
        expect=[
            Documented(
                "a deleted key that comes back",
                ("timestamp/invalidate", "timestamp/new_record"),
                (2,),
                "dbt restarts the key at its old updated_at, inside the closed history "
                "(and, new_record, closes the deletion record before it began); onceflow "
                "starts it at the snapshot instant that saw it back",
            )
        ],
        docs_history={
            "timestamp/invalidate": [
                (1, "ann", "gold", t(1), t(1), None, True),
                (2, "bob", "silver", t(1), t(1), end_of(2), False),
                (2, "bob", "silver", t(1), end_of(3), None, True),
            ],
            "timestamp/new_record": [
                (1, "ann", "gold", t(1), t(1), None, True, False),
                (2, "bob", "silver", t(1), t(1), end_of(2), False, False),
                (2, "bob", "silver", t(1), end_of(2), end_of(3), False, True),
                (2, "bob", "silver", t(1), end_of(3), None, True, False),
            ],
        },
    ),
    Scenario(
        "deleted_back_changed",
        "A key deleted, then back changed",
        "key 2 is absent on day 2, back on day 3 with another tier and an updated_at of "
        "day 3 (after the delete)",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "gold", t(1))],
            [(1, "ann", "gold", t(1)), (2, "bob", "gold", t(3))],
            [(1, "ann", "gold", t(1)), (2, "bob", "gold", t(3))],
        ],
        deletes=ALL_DELETES,
    ),
    Scenario(
        "deleted_back_changed_old_ts",
        "A key deleted, then back changed with an updated_at before the delete",
        "key 2 is absent on day 2 (closed at the end of day 2); it comes back on day 3 "
        "changed, but its updated_at is day 2 12:00 (a restore, a late replica)",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "gold", t(1))],
            [(1, "ann", "gold", t(1)), (2, "bob", "gold", t(2, 12))],
            [(1, "ann", "gold", t(1)), (2, "bob", "gold", t(2, 12))],
        ],
        deletes=ALL_DELETES,
        expect=[
            Documented(
                "a deleted key that comes back",
                ("timestamp/invalidate", "timestamp/new_record"),
                (2,),
                "dbt starts the returning version at its updated_at, before the delete "
                "that closed the previous version (overlap); onceflow at the snapshot "
                "instant that saw it back",
            )
        ],
        docs_history={
            "timestamp/invalidate": [
                (1, "ann", "gold", t(1), t(1), None, True),
                (2, "bob", "silver", t(1), t(1), end_of(2), False),
                (2, "bob", "gold", t(2, 12), end_of(3), None, True),
            ],
        },
    ),
    Scenario(
        "deleted_never_back",
        "A key deleted and never back",
        "key 2 is absent from day 2 to day 5 (four runs without it)",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "gold", t(1))],
            [(1, "ann", "gold", t(1))],
            [(1, "ann", "gold", t(1))],
            [(1, "ann", "gold", t(1))],
        ],
        deletes=ALL_DELETES,
    ),
    Scenario(
        "silent_change",
        "A silent change (values change, updated_at does not)",
        "key 1 changes tier on day 2 keeping updated_at of day 1; a real change on day 4",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "platinum", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "platinum", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "diamond", t(4)), (2, "bob", "silver", t(1))],
        ],
        expect=[
            Documented(
                "a silent change",
                ("timestamp/*",),
                (1,),
                "dbt's timestamp strategy never sees the silent change; onceflow records "
                "it from the snapshot instant that observed it",
            )
        ],
        docs_history={
            "timestamp/ignore": [
                (1, "ann", "gold", t(1), t(1), end_of(2), False),
                (1, "ann", "platinum", t(1), end_of(2), t(4), False),
                (1, "ann", "diamond", t(4), t(4), None, True),
                (2, "bob", "silver", t(1), t(1), None, True),
            ]
        },
    ),
    Scenario(
        "silent_then_late_commit",
        "A silent change, then a change stamped before it was observed",
        "key 1 changes silently on day 2 (platinum, updated_at still day 1); on day 3 the "
        "source shows diamond with an updated_at of day 2 20:00: after the business time "
        "of every version, but before the end of day 2, when onceflow observed the silent "
        "change (a transaction that committed after the day 2 extract, say)",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "platinum", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "diamond", t(2, 20)), (2, "bob", "silver", t(1))],
            [(1, "ann", "diamond", t(2, 20)), (2, "bob", "silver", t(1))],
        ],
        late_expected=("timestamp/*",),
        expect=[
            Documented(
                "a row stamped before the snapshot of a silent change",
                ("timestamp/*",),
                (1,),
                "onceflow's current version (the silent change) starts at the end of day 2, "
                "so diamond @day2 20:00 is older than it and not in the history: a late "
                "row, dropped and counted on every later file, while dbt (which never saw "
                "the silent change) records diamond. onceflow's current row then stays "
                "platinum for as long as the source keeps that updated_at",
            )
        ],
    ),
    Scenario(
        "two_silent_changes",
        "Two silent changes in a row",
        "key 1: gold (day 1), platinum (day 2), diamond (day 3), all with the updated_at of day 1",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "platinum", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "diamond", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "diamond", t(1)), (2, "bob", "silver", t(1))],
        ],
        expect=[
            Documented(
                "a silent change",
                ("timestamp/*",),
                (1,),
                "each silent change is a new version from the snapshot instant that "
                "observed it; dbt's timestamp strategy sees none",
            )
        ],
        docs_history={
            "timestamp/ignore": [
                (1, "ann", "gold", t(1), t(1), end_of(2), False),
                (1, "ann", "platinum", t(1), end_of(2), end_of(3), False),
                (1, "ann", "diamond", t(1), end_of(3), None, True),
                (2, "bob", "silver", t(1), t(1), None, True),
            ]
        },
    ),
    Scenario(
        "silent_change_and_back",
        "A silent change and back",
        "key 1: gold (day 1), platinum (day 2), gold again (day 3), all with the updated_at "
        "of day 1: the source ends where it started",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "platinum", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
        ],
        expect=[
            Documented(
                "a silent change",
                ("timestamp/*",),
                (1,),
                "both silent changes are versions from the snapshot instants that observed "
                "them; dbt's timestamp strategy sees neither",
            )
        ],
        docs_history={
            "timestamp/ignore": [
                (1, "ann", "gold", t(1), t(1), end_of(2), False),
                (1, "ann", "platinum", t(1), end_of(2), end_of(3), False),
                (1, "ann", "gold", t(1), end_of(3), None, True),
                (2, "bob", "silver", t(1), t(1), None, True),
            ]
        },
    ),
    Scenario(
        "reextracted_window",
        "A re-extracted window",
        "day 2 is first extracted with a wrong tier for key 1 (bronze) and key 2 missing; "
        "after day 3 is loaded, day 2 is extracted again (the states below). onceflow "
        "replays from day 2; compared with dbt run in day order on the corrected states",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "platinum", t(2)), (2, "bob", "silver", t(1))],
            [(1, "ann", "diamond", t(3)), (2, "bob", "silver", t(1))],
            [(1, "ann", "diamond", t(3)), (2, "bob", "silver", t(1))],
        ],
        superseded={2: [(1, "ann", "bronze", t(2))]},
        deletes=ALL_DELETES,
        onceflow_order=(1, -2, 3, 2, 4),
        dbt_arrival_order=True,
    ),
    Scenario(
        "late_row_differs",
        "A late row that differs",
        "key 1: gold @day1, platinum @day2; on day 3 the source shows bronze with an "
        "updated_at of day 1 22:00 (older than the current version, not in the history)",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "platinum", t(2)), (2, "bob", "silver", t(1))],
            [(1, "ann", "bronze", t(1, 22)), (2, "bob", "silver", t(1))],
            [(1, "ann", "bronze", t(1, 22)), (2, "bob", "silver", t(1))],
        ],
        late_expected=("timestamp/*",),
    ),
    Scenario(
        "old_row_matches_history",
        "An older row that matches history",
        "key 1: gold @day1, platinum @day2; from day 3 the source shows gold @day1 again "
        "(the exact first version)",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "platinum", t(2)), (2, "bob", "silver", t(1))],
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
        ],
    ),
    Scenario(
        "two_changes_between_snapshots",
        "Two changes between snapshots",
        "key 1 goes gold -> platinum (day 2 09:00) -> diamond (day 2 15:00); only the "
        "last is in the day 2 extract",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "diamond", t(2, 15)), (2, "bob", "silver", t(1))],
            [(1, "ann", "diamond", t(2, 15)), (2, "bob", "silver", t(1))],
        ],
    ),
    Scenario(
        "key_appears_late",
        "A key that first appears late",
        "keys 3 and 4 first appear on day 3: key 3 updated on day 3, key 4 backdated to day 1",
        [
            [(1, "ann", "gold", t(1))],
            [(1, "ann", "gold", t(1))],
            [(1, "ann", "gold", t(1)), (3, "cy", "silver", t(3)), (4, "di", "gold", t(1, 8))],
            [(1, "ann", "gold", t(1)), (3, "cy", "silver", t(3)), (4, "di", "gold", t(1, 8))],
        ],
    ),
    Scenario(
        "null_values",
        "NULLs in tracked columns",
        "key 1: name NULL -> 'ann' -> NULL; key 2: tier 'silver' -> NULL; key 3: name and "
        "tier NULL throughout (NULL = NULL)",
        [
            [(1, None, "gold", t(1)), (2, "bob", "silver", t(1)), (3, None, None, t(1))],
            [(1, "ann", "gold", t(2)), (2, "bob", None, t(2)), (3, None, None, t(1))],
            [(1, None, "gold", t(3)), (2, "bob", None, t(2)), (3, None, None, t(1))],
            [(1, None, "gold", t(3)), (2, "bob", None, t(2)), (3, None, None, t(1))],
        ],
    ),
    Scenario(
        "composite_key",
        "A composite key (id, region)",
        "id 1 in eu and us (eu changes on day 2); (2, eu) deleted on day 2 and back "
        "changed on day 3; (2, us) new on day 2",
        [
            [
                (1, "eu", "ann", "gold", t(1)),
                (1, "us", "ann", "silver", t(1)),
                (2, "eu", "bob", "gold", t(1)),
            ],
            [
                (1, "eu", "ann", "platinum", t(2)),
                (1, "us", "ann", "silver", t(1)),
                (2, "us", "bob", "silver", t(2)),
            ],
            [
                (1, "eu", "ann", "platinum", t(2)),
                (1, "us", "ann", "silver", t(1)),
                (2, "eu", "bob", "bronze", t(3)),
                (2, "us", "bob", "silver", t(2)),
            ],
        ],
        columns=("id", "region", "name", "tier", "updated_at"),
        keys=("id", "region"),
        deletes=ALL_DELETES,
    ),
    Scenario(
        "tracked_subset",
        "Tracking only some columns",
        "tracked: name only. Day 2: key 1 changes tier (untracked) with a new updated_at, "
        "key 2 changes name; day 3: key 1 changes name",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "platinum", t(2)), (2, "robert", "silver", t(2))],
            [(1, "anne", "platinum", t(3)), (2, "robert", "silver", t(2))],
            [(1, "anne", "platinum", t(3)), (2, "robert", "silver", t(2))],
        ],
        tracked=("name",),
        expect=[
            Documented(
                "a moved `updated_at` with the same tracked values",
                ("timestamp/*",),
                (1,),
                "dbt's timestamp strategy has no tracked columns: a moved updated_at is a "
                "version whatever changed; onceflow with a validity column still only "
                "versions a change of a tracking column",
            )
        ],
    ),
    Scenario(
        "touch_only",
        "A touch: updated_at moves, values do not",
        "key 1 is re-saved on day 2 with the same values and a new updated_at; a real "
        "change on day 4",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "gold", t(2)), (2, "bob", "silver", t(1))],
            [(1, "ann", "gold", t(2)), (2, "bob", "silver", t(1))],
            [(1, "ann", "platinum", t(4)), (2, "bob", "silver", t(1))],
        ],
        expect=[
            Documented(
                "a moved `updated_at` with the same tracked values",
                ("timestamp/*",),
                (1,),
                "dbt's timestamp strategy versions every move of updated_at; onceflow "
                "versions changed values only",
            )
        ],
    ),
    Scenario(
        "flicker",
        "A key that flickers (present / absent / present ...)",
        "key 2: present day 1, absent day 2, back unchanged day 3, absent day 4, back "
        "changed day 5 (updated_at day 5)",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "gold", t(1))],
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "gold", t(1))],
            [(1, "ann", "gold", t(1)), (2, "bob", "gold", t(5))],
        ],
        deletes=ALL_DELETES,
        expect=[
            Documented(
                "a deleted key that comes back",
                ("timestamp/invalidate", "timestamp/new_record"),
                (2,),
                "as deleted_back_unchanged, twice",
            )
        ],
    ),
    Scenario(
        "empty_extract",
        "An empty extract",
        "day 2's full extract has no rows at all; day 3 has both keys back unchanged",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [],
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
        ],
        deletes=ALL_DELETES,
        expect=[
            Documented(
                "a deleted key that comes back",
                ("timestamp/invalidate", "timestamp/new_record"),
                (1, 2),
                "as deleted_back_unchanged, for every key",
            )
        ],
    ),
    Scenario(
        "check_all_no_updated_at",
        "Check strategy without updated_at (check_cols: all)",
        "the source has no updated_at; dbt check_cols 'all', onceflow's default tracking "
        "columns (every non-key column); key 1 changes on day 2, key 2 gone on day 3",
        [
            [(1, "ann", "gold"), (2, "bob", "silver")],
            [(1, "ann", "platinum"), (2, "bob", "silver")],
            [(1, "ann", "platinum")],
        ],
        columns=("id", "name", "tier"),
        tracked=None,
        strategies=("check",),
        deletes=("ignore", "invalidate", "new_record"),
    ),
    Scenario(
        "check_all_with_updated_at",
        "Check strategy, check_cols: all, with updated_at in the source",
        "default tracking columns: updated_at is then tracked too, by both; a touch "
        "(updated_at only) on day 2, a change on day 3",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "gold", t(2)), (2, "bob", "silver", t(1))],
            [(1, "ann", "platinum", t(3)), (2, "bob", "silver", t(1))],
        ],
        tracked=None,
        strategies=("check",),
    ),
    Scenario(
        "daily_changes",
        "A key that changes every day",
        "key 1 changes on each of five days; key 2 on days 3 and 5",
        [
            [(1, "ann", "t1", t(1)), (2, "bob", "a", t(1))],
            [(1, "ann", "t2", t(2)), (2, "bob", "a", t(1))],
            [(1, "ann", "t3", t(3)), (2, "bob", "b", t(3))],
            [(1, "ann", "t4", t(4)), (2, "bob", "b", t(3))],
            [(1, "ann", "t5", t(5)), (2, "bob", "c", t(5))],
        ],
    ),
    Scenario(
        "dup_key_in_extract",
        "Two rows of one key in one extract",
        "day 2's extract holds key 1 twice: platinum @day2 09:00 and diamond @day2 15:00 "
        "(an extract that carries history); day 3 only diamond",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [
                (1, "ann", "platinum", t(2, 9)),
                (1, "ann", "diamond", t(2, 15)),
                (2, "bob", "silver", t(1)),
            ],
            [(1, "ann", "diamond", t(2, 15)), (2, "bob", "silver", t(1))],
        ],
        fail_expected=("check/*",),
        expect=[
            Documented(
                "two rows of one key in one file",
                ("*/*",),
                (1,),
                "dbt inserts both rows as current versions of key 1 (no uniqueness "
                "check); onceflow chains them by updated_at (timestamp) or refuses the "
                "file as ambiguous (check: both rows have the snapshot instant as "
                "validity), so its table keeps day 1 and waits",
            )
        ],
    ),
    Scenario(
        "late_window",
        "A late window (day 3 arrives before day 2)",
        "key 1 changes on days 2 and 3, key 3 appears on day 2, key 2 is gone from day 3. "
        "onceflow gets the files of days 1, 3, 2, 4 in that order (a rewind and replay); "
        "compared with dbt run in day order",
        [
            [(1, "ann", "gold", t(1)), (2, "bob", "silver", t(1))],
            [(1, "ann", "platinum", t(2)), (2, "bob", "silver", t(1)), (3, "cy", "gold", t(2))],
            [(1, "ann", "diamond", t(3)), (3, "cy", "gold", t(2))],
            [(1, "ann", "diamond", t(3)), (3, "cy", "gold", t(2))],
        ],
        deletes=ALL_DELETES,
        onceflow_order=(1, 3, 2, 4),
        dbt_arrival_order=True,
    ),
    Scenario(
        "backfill_real_clock",
        "A backfill on dbt's own clock (no business time)",
        "four days of changes loaded back to back; dbt's snapshot_get_time is left to "
        "now() (no clock override) so the four runs happen within seconds",
        [
            [(1, "ann", "t1", t(1)), (2, "bob", "a", t(1))],
            [(1, "ann", "t2", t(2)), (2, "bob", "a", t(1))],
            [(1, "ann", "t3", t(3)), (2, "bob", "b", t(3))],
            [(1, "ann", "t4", t(4)), (2, "bob", "b", t(3))],
        ],
        strategies=("check",),
        dbt_real_clock=True,
        expect=[
            Documented(
                "no business time",
                ("check/*",),
                None,
                "dbt's check strategy stamps versions with the run's wall clock; "
                "onceflow with the snapshot instant of each day's file",
            )
        ],
    ),
]


# ================================================================== dbt driver (child)


def _sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def dbt_driver(spec_path: str, out_path: str) -> None:
    """Run every dbt case of `spec_path` (JSON) round by round; write the snapshots."""
    import duckdb
    from dbt.cli.main import dbtRunner

    spec = json.loads(Path(spec_path).read_text())
    project = Path(spec["project_dir"])
    if project.exists():
        shutil.rmtree(project)
    (project / "snapshots").mkdir(parents=True)
    (project / "macros").mkdir()
    db_path = project / "cmp.duckdb"
    (project / "dbt_project.yml").write_text(
        "name: compare_dbt\nversion: '1.0'\nprofile: compare_dbt\n"
        "snapshot-paths: [snapshots]\nmacro-paths: [macros]\n"
        "flags:\n  send_anonymous_usage_stats: false\n"
    )
    (project / "profiles.yml").write_text(
        "compare_dbt:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: {json.dumps(str(db_path))}\n      threads: 1\n"
        "      settings: {TimeZone: UTC}\n"
    )
    # dbt's clock: the case's row of main.dbt_clock (set per round), else its own now()
    (project / "macros" / "clock.sql").write_text(
        "{% macro duckdb__snapshot_get_time() -%}\n"
        "  coalesce((select max(at_ts) from main.dbt_clock where snap = "
        "'{{ model.name }}'), now()::timestamp)\n"
        "{%- endmacro %}\n"
    )
    for case in spec["cases"]:
        keys = case["keys"]
        cfg = {
            "unique_key": keys if len(keys) > 1 else keys[0],
            "strategy": case["strategy"],
            "hard_deletes": case["hard_deletes"],
        }
        if case["strategy"] == "check":
            cfg["check_cols"] = case["check_cols"]
        else:
            cfg["updated_at"] = "updated_at"
        args = ", ".join(f"{k}={json.dumps(v)}" for k, v in cfg.items())
        (project / "snapshots" / f"{case['snap']}.sql").write_text(
            f"{{% snapshot {case['snap']} %}}\n{{{{ config({args}) }}}}\n"
            f"select * from main.src_{case['snap']}\n{{% endsnapshot %}}\n"
        )
    con = duckdb.connect(str(db_path))
    con.execute("CREATE TABLE main.dbt_clock (snap VARCHAR, at_ts TIMESTAMP)")
    con.close()
    runner = dbtRunner()
    rounds = max(len(c["runs"]) for c in spec["cases"])
    log: dict[str, list[dict[str, Any]]] = {c["snap"]: [] for c in spec["cases"]}
    for r in range(rounds):
        cases = [c for c in spec["cases"] if len(c["runs"]) > r]
        con = duckdb.connect(str(db_path))
        con.execute("DELETE FROM main.dbt_clock")
        for case in cases:
            run = case["runs"][r]
            cols = ", ".join(f"{c} {SQL_TYPES[c]}" for c in case["columns"])
            con.execute(f"CREATE OR REPLACE TABLE main.src_{case['snap']} ({cols})")
            if run["rows"]:
                values = ", ".join(
                    "(" + ", ".join(_sql_literal(v) for v in row) + ")" for row in run["rows"]
                )
                con.execute(f"INSERT INTO main.src_{case['snap']} VALUES {values}")
            if run["clock"] is not None:
                con.execute(
                    "INSERT INTO main.dbt_clock VALUES (?, ?::TIMESTAMP)",
                    [case["snap"], run["clock"]],
                )
        con.close()
        started = time.time()
        res = runner.invoke(
            [
                "snapshot",
                "--project-dir",
                str(project),
                "--profiles-dir",
                str(project),
                "--quiet",
                "--no-partial-parse",
                "--select",
                *[c["snap"] for c in cases],
            ]
        )
        took = time.time() - started
        results = {}
        if res.result is not None:
            for node_result in res.result:
                results[node_result.node.name] = (
                    str(node_result.status),
                    node_result.message,
                )
        for case in cases:
            status, message = results.get(case["snap"], ("not run", str(res.exception)))
            log[case["snap"]].append(
                {"round": r, "status": status, "message": message, "seconds": round(took, 1)}
            )
        print(f"dbt round {r + 1}/{rounds}: {len(cases)} snapshots, {took:.1f}s", flush=True)
    con = duckdb.connect(str(db_path))
    out: dict[str, Any] = {"cases": {}, "versions": {}}
    existing = {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    for case in spec["cases"]:
        rows: list[dict[str, Any]] = []
        if case["snap"] in existing:
            cur = con.execute(f"SELECT * FROM main.{case['snap']}")
            names = [d[0] for d in cur.description]
            for row in cur.fetchall():
                rows.append(
                    {
                        n: (v.isoformat(sep=" ") if isinstance(v, datetime) else v)
                        for n, v in zip(names, row, strict=True)
                    }
                )
        out["cases"][case["snap"]] = {"rows": rows, "log": log[case["snap"]]}
    con.close()
    from importlib import metadata

    out["versions"] = {
        p: metadata.version(p) for p in ("dbt-core", "dbt-duckdb", "dbt-adapters", "duckdb")
    }
    Path(out_path).write_text(json.dumps(out, indent=1, default=str))


# ================================================================== setup


def setup_venv(force: bool = False) -> None:
    """Create bench/.work/venv-dbt with the pinned dbt (idempotent)."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = VENV_DIR / ".requirements.sha256"
    if not force and DBT_PY.exists() and stamp.exists() and stamp.read_text() == digest:
        print(f"{VENV_DIR} is up to date")
        return
    base = getattr(sys, "_base_executable", sys.executable)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    if not DBT_PY.exists():
        print(f"creating {VENV_DIR} from {base}", flush=True)
        subprocess.run([base, "-m", "venv", str(VENV_DIR)], check=True)
    subprocess.run(
        [str(DBT_PY), "-m", "pip", "install", "--quiet", "--no-deps", "-r", str(REQUIREMENTS)],
        check=True,
    )
    subprocess.run(
        [str(DBT_PY), "-c", "import dbt.cli.main, dbt.adapters.duckdb, duckdb"],
        check=True,
        env={**os.environ, **DBT_ENV},
    )
    stamp.write_text(digest)
    print(f"{VENV_DIR} ready")


# ================================================================== cases


@dataclass
class Case:
    scenario: Scenario
    mode: str  # "check/ignore"

    @property
    def strategy(self) -> str:
        return self.mode.split("/")[0]

    @property
    def hard_deletes(self) -> str:
        return self.mode.split("/")[1]

    @property
    def snap(self) -> str:
        return f"{self.scenario.name}__{self.strategy}__{self.hard_deletes}"


def steps(sc: Scenario) -> list[tuple[int, str, list[tuple[Any, ...]]]]:
    """onceflow's arrivals: (day, label, rows); a negative day is a day's first extract."""
    out = []
    for step in sc.onceflow_order or range(1, len(sc.days) + 1):
        day = abs(step)
        if step < 0:
            out.append((day, f"day {day}, first extract", sc.superseded[day]))
        else:
            again = -day in (sc.onceflow_order or ())
            out.append((day, f"day {day}" + (", re-extracted" if again else ""), sc.days[day - 1]))
    return out


def dbt_runs(sc: Scenario, order: tuple[int, ...] | None) -> list[dict[str, Any]]:
    days = list(order or range(1, len(sc.days) + 1))
    runs = []
    last_clock = ""
    for step in days:
        day = abs(step)
        clock = None if sc.dbt_real_clock else end_of(day)
        if clock is not None and clock <= last_clock:  # a late day runs after the later one
            clock = (datetime.fromisoformat(last_clock) + timedelta(hours=1)).strftime(
                "%Y-%m-%d %H:%M"
            )
        if clock is not None:
            last_clock = clock
        rows = sc.superseded[day] if step < 0 else sc.days[day - 1]
        runs.append({"day": step, "rows": [list(r) for r in rows], "clock": clock})
    return runs


def dbt_spec(cases: list[Case]) -> dict[str, Any]:
    out = []
    for case in cases:
        sc = case.scenario
        base = {
            "keys": list(sc.keys),
            "columns": list(sc.columns),
            "strategy": case.strategy,
            "hard_deletes": case.hard_deletes,
            "check_cols": list(sc.tracked) if sc.tracked is not None else "all",
        }
        out.append({**base, "snap": case.snap, "runs": dbt_runs(sc, None)})
        if sc.dbt_arrival_order and sc.onceflow_order:
            out.append(
                {**base, "snap": case.snap + "__arrival", "runs": dbt_runs(sc, sc.onceflow_order)}
            )
    return {"project_dir": str(RUN_DIR / "dbt"), "cases": out}


def run_dbt(cases: list[Case]) -> dict[str, Any]:
    if not DBT_PY.exists():
        sys.exit(f"{VENV_DIR} missing: run `.venv/bin/python bench/compare_dbt.py --setup` first")
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    spec_path = RUN_DIR / "dbt-spec.json"
    out_path = RUN_DIR / "dbt-out.json"
    spec_path.write_text(json.dumps(dbt_spec(cases), indent=1))
    env = {**os.environ, **DBT_ENV}
    subprocess.run(
        [str(DBT_PY), str(Path(__file__).resolve()), "--dbt-driver", str(spec_path), str(out_path)],
        check=True,
        env=env,
        cwd=str(RUN_DIR),
    )
    return dict(json.loads(out_path.read_text()))


# ------------------------------------------------------------------ onceflow


def _arrow_table(sc: Scenario, rows: list[tuple[Any, ...]]) -> Any:
    import pyarrow as pa

    types = {
        "id": pa.int64(),
        "region": pa.string(),
        "name": pa.string(),
        "tier": pa.string(),
        "updated_at": pa.timestamp("us"),
    }
    arrays = []
    for i, col in enumerate(sc.columns):
        values = [r[i] for r in rows]
        if col == "updated_at":
            values = [datetime.fromisoformat(v) if v is not None else None for v in values]
        arrays.append(pa.array(values, types[col]))
    return pa.table(arrays, names=list(sc.columns))


def _write_extracted(lake: Path, table: Any, day: int) -> Path:
    """tests/helpers/lake.py:write_extracted, for day `day` (1 = 2025-01-01)."""
    import pyarrow.parquet as pq

    from onceflow.lake import file_checksum, output_path, write_sidecar
    from onceflow.windows import window_for

    run_date = START + timedelta(days=day - 1)
    run_id = f"p_{run_date:%Y%m%d}"
    path = output_path(str(lake), "src", "dim", run_date, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    start, end = window_for(run_date, "UTC").iso()
    assert datetime.fromisoformat(end) == datetime.fromisoformat(end_of(day)).replace(tzinfo=UTC)
    write_sidecar(
        path,
        {
            "extraction_complete": True,
            "checksum": file_checksum(path),
            "checksum_algorithm": "sha256",
            "file_size_bytes": path.stat().st_size,
            "record_count": table.num_rows,
            "run_id": run_id,
            "run_date": run_date.isoformat(),
            "window_start": start,
            "window_end": end,
            "snapshot_at": end,
            "table_config": {},
            "schema": [],
        },
    )
    return path


def onceflow_load_config(case: Case, late_rows: str = "skip") -> dict[str, Any]:
    sc = case.scenario
    load: dict[str, Any] = {
        "strategy": "scd2",
        "primary_key": list(sc.keys),
        "hard_deletes": {"invalidate": "close"}.get(case.hard_deletes, case.hard_deletes),
    }
    if sc.tracked is not None:
        load["tracking_columns"] = list(sc.tracked)
    if case.strategy == "timestamp":
        load["validity_column"] = "updated_at"
    if late_rows != "skip":
        load["late_rows"] = late_rows
    return load


def run_onceflow(case: Case, root: Path, late_rows: str = "skip") -> dict[str, Any]:
    from onceflow.config import config_from_dict
    from onceflow.load import load
    from onceflow.warehouse import read_table

    sc = case.scenario
    folder = root / (case.snap + ("" if late_rows == "skip" else f"__{late_rows}"))
    lake = folder / "lake"
    cfg_dict = {
        "pipeline": "p",
        "state": f"sqlite:///{folder / 'state.db'}",
        "lake": str(lake),
        "warehouse": str(folder / "warehouse"),
        "sources": {"src": {"url": f"sqlite:///{folder / 'src.db'}"}},
        "tables": [
            {"source": "src", "table": "dim", "load": onceflow_load_config(case, late_rows)}
        ],
    }
    folder.mkdir(parents=True)
    cfg = config_from_dict(cfg_dict, base_dir=str(folder))
    log = []
    for step in sc.onceflow_order or range(1, len(sc.days) + 1):
        day = abs(step)
        rows_of_day = sc.superseded[day] if step < 0 else sc.days[day - 1]
        _write_extracted(lake, _arrow_table(sc, rows_of_day), day)
        summary = load(cfg)
        counts = {k: v for k, v in summary.counts().items() if v}
        result = summary.results[0]
        log.append(
            {
                "day": day if step > 0 else f"{day} (first extract)",
                "ok": summary.ok,
                "counts": counts,
                "rows_skipped": result.rows_skipped,
                "error": (
                    result.error or "; ".join(f.error for f in result.files if f.error) or None
                ),
                "waiting": result.waiting,
            }
        )
    for x in log:
        for k in ("error", "waiting"):
            if x[k]:
                x[k] = x[k].replace(str(folder), "<case>")
    uri = str(folder / "warehouse" / "src" / "dim")
    rows = read_table(uri).to_pylist() if (Path(uri) / "_delta_log").exists() else []
    return {"rows": rows, "log": log, "config": cfg_dict["tables"][0]["load"]}


# ================================================================== normalise, compare


def ts(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    if value.second == 0 and value.microsecond == 0:
        return value.strftime("%Y-%m-%d %H:%M")
    return value.isoformat(sep=" ")


Row = tuple[Any, ...]


def norm_dbt(sc: Scenario, mode: str, rows: list[dict[str, Any]]) -> list[Row]:
    out = []
    for r in rows:
        row: list[Any] = [r[c] if c != "updated_at" else ts(r[c]) for c in sc.columns]
        row += [ts(r["dbt_valid_from"]), ts(r["dbt_valid_to"]), r["dbt_valid_to"] is None]
        if mode.endswith("new_record"):
            row.append(r.get("dbt_is_deleted") == "True")
        out.append(tuple(row))
    return sorted(out, key=sort_key)


def norm_onceflow(sc: Scenario, mode: str, rows: list[dict[str, Any]]) -> list[Row]:
    out = []
    for r in rows:
        row: list[Any] = [r[c] if c != "updated_at" else ts(r[c]) for c in sc.columns]
        row += [ts(r["_effective_from"]), ts(r["_effective_to"]), bool(r["_is_current"])]
        if mode.endswith("new_record"):
            row.append(bool(r.get("_is_deleted")))
        out.append(tuple(row))
    return sorted(out, key=sort_key)


def sort_key(row: Row) -> tuple[str, ...]:
    return tuple("" if v is None else f"{v!s:>30}" if isinstance(v, int) else str(v) for v in row)


def key_of(sc: Scenario, row: Row) -> Any:
    idx = [sc.columns.index(k) for k in sc.keys]
    vals = tuple(row[i] for i in idx)
    return vals[0] if len(vals) == 1 else vals


def header(sc: Scenario, mode: str) -> list[str]:
    cols = [*sc.columns, "valid_from", "valid_to", "current"]
    if mode.endswith("new_record"):
        cols.append("deleted")
    return cols


@dataclass
class Outcome:
    case: Case
    dbt: list[Row]
    onceflow: list[Row]
    dbt_log: list[dict[str, Any]]
    onceflow_log: list[dict[str, Any]]
    dbt_arrival: list[Row] | None = None
    verdict: str = ""
    detail: str = ""
    differing_keys: list[Any] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    reject_log: list[dict[str, Any]] | None = None


def docs_lines() -> list[str]:
    return DOCS.read_text(encoding="utf-8").splitlines()


def docs_row(prefix: str) -> tuple[int, str]:
    """(line number, line) of the SCD2 table row whose case cell starts with `prefix`."""
    for i, line in enumerate(docs_lines(), 1):
        if line.startswith("| ") and line[2:].startswith(prefix):
            return i, line
    return 0, ""


def judge(out: Outcome) -> None:
    """The verdict of one case: its histories, then what onceflow's load reported."""
    sc, mode = out.case.scenario, out.case.mode
    a, b = Counter(out.dbt), Counter(out.onceflow)
    diff = (a - b) + (b - a)
    keys = sorted({key_of(sc, r) for r in diff.elements()}, key=str)
    out.differing_keys = keys
    expected = [e for e in sc.expect if any(fnmatch.fnmatch(mode, m) for m in e.modes)]
    notes: list[str] = []
    anomalies = []
    docs_rows = next((v for m, v in sc.docs_history.items() if fnmatch.fnmatch(mode, m)), None)
    if docs_rows is not None:
        want = Counter(tuple(r) for r in docs_rows)
        if want != b:
            missing = sorted((want - b).elements(), key=sort_key)
            extra = sorted((b - want).elements(), key=sort_key)
            anomalies.append(
                "onceflow's history is not the one docs/exactly-once.md describes: "
                + (f"missing {[tuple(map(_cell, r)) for r in missing]}" if missing else "")
                + ("; " if missing and extra else "")
                + (f"unexpected {[tuple(map(_cell, r)) for r in extra]}" if extra else "")
            )
    if not diff:
        out.verdict = "same"
        if expected:
            notes.append("a difference was declared for this mode but none was seen")
    else:
        used: list[Documented | Gap] = []
        uncovered = []
        for key in keys:
            covering = [e for e in expected if e.keys is None or key in e.keys]
            if not covering:
                uncovered.append(key)
            used += [e for e in covering if e not in used]
        if uncovered:
            out.verdict = "differs - unexplained"
            notes.append(
                "keys "
                + ", ".join(map(str, uncovered))
                + " differ and no documented decision covers them"
            )
        else:
            gone = [e.row for e in used if isinstance(e, Documented) and not docs_row(e.row)[0]]
            if gone:
                out.verdict = "differs - unexplained"
                notes.append(f"the docs rows {gone} these differences cite are gone")
            elif any(isinstance(e, Gap) for e in used):
                out.verdict = "differs - docs gap"
            else:
                out.verdict = "differs - onceflow decision"
            for e in used:
                if isinstance(e, Documented):
                    notes.append(
                        f"docs/exactly-once.md:{docs_row(e.row)[0]} (`{e.row}...`): {e.why}"
                    )
                else:
                    notes.append(f"not in docs/exactly-once.md; {e.where}: {e.why}")
    # what the load said must fit the scenario too
    skipped = [
        f"day {x['day']}: {x['rows_skipped']}" for x in out.onceflow_log if x["rows_skipped"]
    ]
    if skipped and not any(fnmatch.fnmatch(mode, m) for m in sc.late_expected):
        anomalies.append(
            "onceflow counted late rows (" + ", ".join(skipped) + ") although no row of "
            "this scenario is older than what the source showed before"
        )
    failed = [f"day {x['day']}" for x in out.onceflow_log if not x["ok"]]
    if failed and not any(fnmatch.fnmatch(mode, m) for m in sc.fail_expected):
        anomalies.append("onceflow's load failed or waits (" + ", ".join(failed) + ")")
    if anomalies:
        notes = [f"history: {out.verdict}" + (f" ({'; '.join(notes)})" if notes else "")]
        notes += ["**candidate bug**: " + x for x in anomalies]
        out.verdict = "differs - unexplained"
        out.anomalies = anomalies
    out.detail = "\n\n".join(notes)


# ================================================================== report


def _cell(v: Any) -> str:
    if v is None:
        return "NULL"
    if v is True:
        return "t"
    if v is False:
        return "f"
    return str(v).replace("|", "\\|")


def side_by_side(sc: Scenario, mode: str, dbt: list[Row], onceflow: list[Row]) -> list[str]:
    a, b = Counter(dbt), Counter(onceflow)
    rows = sorted(set(a) | set(b), key=sort_key)
    cols = header(sc, mode)
    lines = [
        "| " + " | ".join([*cols, "dbt", "onceflow"]) + " |",
        "|" + "---|" * (len(cols) + 2),
    ]
    for r in rows:
        mark_a = ("yes" if a[r] == 1 else f"x{a[r]}") if a[r] else "-"
        mark_b = ("yes" if b[r] == 1 else f"x{b[r]}") if b[r] else "-"
        if a[r] != b[r]:
            mark_a, mark_b = f"**{mark_a}**", f"**{mark_b}**"
        lines.append("| " + " | ".join([*map(_cell, r), mark_a, mark_b]) + " |")
    if not rows:
        lines.append("| " + " | ".join(["(empty)"] + [""] * (len(cols) + 1)) + " |")
    return lines


def _log_lines(log: list[dict[str, Any]]) -> list[str]:
    out = []
    for x in log:
        counts = ", ".join(f"{k} {v}" for k, v in x["counts"].items())
        line = f"day {x['day']}: ok={x['ok']} ({counts}); late rows skipped: {x['rows_skipped']}"
        if x["error"] or x["waiting"]:
            line += f"; {x['error'] or x['waiting']}"
        out.append(line)
    return out


def repro(out: Outcome) -> list[str]:
    """How to reproduce an unexplained difference: the command, the config, the files."""
    sc = out.case.scenario
    lines = [
        "Reproduction (onceflow only; prints the history and each load's outcome):",
        "",
        "```",
        f".venv/bin/python bench/compare_dbt.py --repro {sc.name} {out.case.mode}"
        + (" --late-rows reject" if out.reject_log is not None else ""),
        "```",
        "",
        "```text",
        f"load = {onceflow_load_config(out.case)!r}",
        f"columns = {list(sc.columns)!r}",
    ]
    for day, label, rows in steps(sc):
        lines.append(f"# {label}: a lake file with snapshot_at {end_of(day)} UTC, then load()")
        lines.append(f"rows = {[tuple(r) for r in rows]!r}")
    lines += ["```", ""]
    if out.reject_log is not None:
        lines += ["The same with `late_rows: reject`:", "", "```"]
        lines += [*_log_lines(out.reject_log), "```", ""]
    return lines


def render(
    outcomes: list[Outcome], versions: dict[str, str], claims: list[str], seconds: float
) -> str:
    import onceflow

    lines = [
        "# onceflow SCD2 against dbt snapshots",
        "",
        "Generated by `bench/compare_dbt.py` (do not edit by hand): "
        f"dbt-core {versions.get('dbt-core')}, dbt-duckdb {versions.get('dbt-duckdb')}, "
        f"dbt-adapters {versions.get('dbt-adapters')}, duckdb {versions.get('duckdb')} "
        f"(dbt's venv); onceflow {getattr(onceflow, '__version__', '?')}; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {seconds:.0f} s.",
        "",
        "Day N (1 = 2025-01-01) is extracted at the end of day N: onceflow's sidecar "
        "`snapshot_at` and dbt's `snapshot_get_time()` (overridden by a project macro that "
        "reads a clock table the harness sets before each daily `dbt snapshot`) are both "
        "00:00 UTC of day N+1. Modes: `check` = dbt `strategy: check` with `check_cols` = "
        "the tracked columns, onceflow without `validity_column`; `timestamp` = dbt "
        "`strategy: timestamp, updated_at: updated_at`, onceflow `validity_column: "
        "updated_at`; hard deletes `ignore` / `invalidate` (onceflow `close`) / "
        "`new_record`. In the tables, `dbt` and `onceflow` say which tool has that version "
        "(bold: they disagree).",
        "",
        "## Verdicts",
        "",
        "| scenario | mode | verdict | differing keys |",
        "|---|---|---|---|",
    ]
    for o in outcomes:
        keys = ", ".join(map(str, o.differing_keys)) or ""
        name = o.case.scenario.name
        lines.append(f"| [{name}](#{name}) | {o.case.mode} | {o.verdict} | {keys} |")
    counts = Counter(o.verdict for o in outcomes)
    lines += ["", "Totals: " + ", ".join(f"{v}: {n}" for v, n in sorted(counts.items())), ""]
    unexplained = [o for o in outcomes if o.verdict == "differs - unexplained"]
    lines += ["## Unexplained differences", ""]
    if not unexplained:
        lines += ["None.", ""]
    for o in unexplained:
        detail = " ".join(o.detail.split("\n\n"))
        lines += [f"* [{o.case.scenario.name}](#{o.case.scenario.name}) {o.case.mode}: {detail}"]
    if unexplained:
        lines.append("")
    lines += ["## Claims of docs/exactly-once.md's dbt column", "", *claims, ""]
    by_scenario: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_scenario.setdefault(o.case.scenario.name, []).append(o)
    for name, group in by_scenario.items():
        sc = group[0].case.scenario
        lines += [f"## {name}", "", f"**{sc.title}.** {sc.plants}.", ""]
        lines += ["Source states:", ""]
        lines.append("| day | " + " | ".join(sc.columns) + " |")
        lines.append("|" + "---|" * (len(sc.columns) + 1))
        for day, rows in enumerate(sc.days, 1):
            if not rows:
                lines.append(
                    f"| {day} | " + " | ".join(["(no rows)"] + [""] * (len(sc.columns) - 1)) + " |"
                )
            for r in rows:
                lines.append(f"| {day} | " + " | ".join(map(_cell, r)) + " |")
        for day, rows in sorted(sc.superseded.items()):
            for r in rows:
                lines.append(
                    f"| {day} (first extract, replaced later) | " + " | ".join(map(_cell, r)) + " |"
                )
        lines.append("")
        if sc.onceflow_order:
            arrivals = "; ".join(label for _, label, _ in steps(sc))
            lines += [f"onceflow receives and loads: {arrivals}.", ""]
        for o in group:
            lines += [f"### {name} - {o.case.mode}: {o.verdict}", ""]
            if o.detail:
                lines += [o.detail, ""]
            lines += [*side_by_side(sc, o.case.mode, o.dbt, o.onceflow), ""]
            notes = []
            bad = [x for x in o.dbt_log if x["status"] != "success"]
            if bad:
                notes.append(
                    "dbt runs not successful: "
                    + "; ".join(
                        f"round {x['round'] + 1}: {x['status']} {x['message']}" for x in bad
                    )
                )
            skipped = [
                f"day {x['day']}: {x['rows_skipped']}" for x in o.onceflow_log if x["rows_skipped"]
            ]
            if skipped:
                notes.append("onceflow late rows skipped: " + ", ".join(skipped))
            errs = [
                f"day {x['day']}: {x['error'] or x['waiting']}"
                for x in o.onceflow_log
                if not x["ok"]
            ]
            if errs:
                notes.append("onceflow load not ok: " + "; ".join(errs))
            actions = ", ".join(
                f"day {x['day']}: "
                + "/".join(f"{k} {v}" for k, v in x["counts"].items() if k != "skipped")
                for x in o.onceflow_log
            )
            notes.append(f"onceflow actions: {actions}")
            lines += [f"* {n}" for n in notes] + [""]
            if o.dbt_arrival is not None:
                lines += [
                    "dbt run in onceflow's arrival order ("
                    + "; ".join(label for _, label, _ in steps(sc))
                    + "; a day that arrives after a later one runs 1 h after that later "
                    "day's run), against dbt in day order:",
                    "",
                ]
                table = side_by_side(sc, o.case.mode, o.dbt, o.dbt_arrival)
                table[0] = table[0].replace(
                    "| dbt | onceflow |", "| dbt in day order | dbt in arrival order |"
                )
                lines += [*table, ""]
            if o.verdict == "differs - unexplained":
                lines += repro(o)
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ docs claims


def _find(outcomes: list[Outcome], scenario: str, mode: str) -> Outcome | None:
    return next(
        (o for o in outcomes if o.case.scenario.name == scenario and o.case.mode == mode), None
    )


def _versions_of(o: Outcome, key: Any, rows: list[Row] | None = None) -> list[Row]:
    sc = o.case.scenario
    return [r for r in (rows if rows is not None else o.dbt) if key_of(sc, r) == key]


def _spans(rows: list[Row], deleted: bool = False) -> str:
    """'[from, to)' of each row (valid_from/valid_to sit before current[, is_deleted])."""
    i = -4 if deleted else -3
    return "; ".join(f"[{r[i]}, {r[i + 1]})" for r in sorted(rows, key=lambda r: (r[i], r[i + 2])))


def check_claims(outcomes: list[Outcome], versions: dict[str, str]) -> list[str]:
    """Each dbt-column claim of the docs table, against what dbt did in these runs."""
    tools = (
        f"dbt-core {versions.get('dbt-core')}, dbt-duckdb {versions.get('dbt-duckdb')}, "
        f"dbt-adapters {versions.get('dbt-adapters')}"
    )
    out: list[str] = []

    def claim(row: str, verdict: str, evidence: str) -> None:
        line, text = docs_row(row)
        dbt_cell = text.rstrip(" |").rsplit(" | ", 1)[-1] if text else "?"
        out.append(
            f'* docs/exactly-once.md:{line} `{row}...`: dbt "{dbt_cell}" - **{verdict}**. '
            + evidence
        )

    def find(scenario: str, mode: str) -> Outcome:
        o = _find(outcomes, scenario, mode)
        assert o is not None, (scenario, mode)
        return o

    vf = -3  # valid_from in a row without is_deleted
    # a changed row
    c, ts_ = find("plain_change", "check/ignore"), find("plain_change", "timestamp/ignore")
    c1 = sorted(r[vf] for r in _versions_of(c, 1))
    t1 = sorted(r[vf] for r in _versions_of(ts_, 1))
    touch = len(_versions_of(find("touch_only", "timestamp/ignore"), 1))
    sub = len(_versions_of(find("tracked_subset", "timestamp/ignore"), 1))
    ok = c1 == [end_of(1), end_of(2)] and t1 == [t(1), t(2)]
    claim(
        "a changed row",
        "confirmed" if ok else "contradicted",
        f"plain_change: key 1's versions start at {c1} (check) and {t1} (timestamp).",
    )
    claim(
        "a moved `updated_at` with the same tracked values",
        "confirmed" if touch == 3 and sub == 3 else "contradicted",
        f"touch_only (updated_at moved, values not) gives dbt {touch} versions of key 1 for "
        f"2 distinct values, and tracked_subset (only an untracked column changed) {sub} "
        "versions for 2 distinct names.",
    )
    # no business time
    b = find("backfill_real_clock", "check/ignore")
    froms = sorted({datetime.fromisoformat(r[vf]) for r in b.dbt})
    span = (froms[-1] - froms[0]).total_seconds()
    claim(
        "no business time",
        "confirmed" if span < 600 else "contradicted",
        "backfill_real_clock (dbt's own clock): four days loaded back to back give "
        f"valid_from values within {span:.0f} s ({ts(froms[0])} .. {ts(froms[-1])}).",
    )
    # silent change
    tiers = [r[2] for r in _versions_of(find("silent_change", "timestamp/ignore"), 1)]
    claim(
        "a silent change",
        "confirmed" if "platinum" not in tiers else "contradicted",
        f"silent_change: dbt's versions of key 1 have tiers {sorted(tiers)}; the silent "
        "change (platinum) " + ("never appears." if "platinum" not in tiers else "appears."),
    )
    # a late commit behind a silent change
    late_commit = _versions_of(find("silent_then_late_commit", "timestamp/ignore"), 1)
    diamond = sorted(r[vf] for r in late_commit if r[2] == "diamond")
    claim(
        "a row stamped before the snapshot of a silent change",
        "confirmed" if diamond == [t(2, 20)] else "contradicted",
        f"silent_then_late_commit timestamp: dbt's diamond version of key 1 starts at "
        f"{diamond} (its updated_at).",
    )
    # two rows of one key in one file
    dup = [find("dup_key_in_extract", f"{s}/ignore") for s in ("check", "timestamp")]
    together = sum(1 for r in _versions_of(dup[0], 1) if r[vf] == end_of(2))
    currents = sum(1 for r in _versions_of(dup[1], 1) if r[-1])
    claim(
        "two rows of one key in one file",
        "confirmed" if together >= 2 and currents >= 2 else "contradicted",
        f"dup_key_in_extract: check inserts {together} versions of key 1 at day 2's "
        f"snapshot (the next run closes them both); timestamp ends with {currents} current "
        "versions of key 1.",
    )
    # older row already in the history
    n = len(_versions_of(find("old_row_matches_history", "timestamp/ignore"), 1))
    claim(
        "a row older than the current version, already in the history",
        "confirmed" if n == 2 else "contradicted",
        f"old_row_matches_history timestamp: dbt keeps {n} versions of key 1. (In the check "
        "strategy the old row is a change like any other, in both tools.)",
    )
    # late row not in the history
    late = find("late_row_differs", "timestamp/ignore")
    tiers = [r[2] for r in _versions_of(late, 1)]
    quiet = all(x["status"] == "success" for x in late.dbt_log)
    claim(
        "a row older than the current version, not in the history (late)",
        "confirmed" if "bronze" not in tiers and quiet else "contradicted",
        f"late_row_differs timestamp: dbt's versions of key 1 have tiers {sorted(tiers)} "
        "(bronze, the late row, is dropped); every run ended `success`.",
    )
    # an absent key
    closes = set()
    for mode in ("check/invalidate", "timestamp/invalidate"):
        closes |= {r[-2] for r in _versions_of(find("deleted_never_back", mode), 2)}
    for mode in ("check/new_record", "timestamp/new_record"):
        closes |= {r[-3] for r in _versions_of(find("deleted_never_back", mode), 2) if not r[-1]}
    claim(
        "a key absent from a full extract",
        "confirmed" if closes == {end_of(2)} else "contradicted",
        f"deleted_never_back: key 2 is closed at {sorted(closes)} in every invalidate and "
        "new_record mode: dbt's snapshot_get_time() of the first run without it.",
    )
    # a deleted key that comes back
    ts_back = _versions_of(find("deleted_back_unchanged", "timestamp/invalidate"), 2)
    ck_back = _versions_of(find("deleted_back_unchanged", "check/invalidate"), 2)
    old, new = sorted(ts_back, key=lambda r: (r[vf], r[-1]))
    overlap = old[-2] is not None and new[vf] < old[-2]
    never = [find("deleted_never_back", f"{s}/new_record") for s in ("check", "timestamp")]
    repeated = [sum(1 for r in _versions_of(o, 2) if r[-1]) for o in never]
    back = [find("deleted_back_unchanged", f"{s}/new_record") for s in ("check", "timestamp")]
    reinserted = [sum(1 for r in _versions_of(o, 2) if r[-2] and not r[-1]) for o in back]
    ts_del = [r for r in _versions_of(back[1], 2) if r[-1]]
    flick = sum(1 for r in _versions_of(find("flicker", "check/new_record"), 2) if r[-1])
    bug654 = any(x > 1 for x in repeated) or not all(reinserted)
    inverted = [r for r in ts_del if r[-3] is not None and r[-3] < r[-4]]
    claim(
        "a deleted key that comes back",
        "confirmed"
        if overlap and not bug654 and inverted
        else f"contradicted with {tools}"
        + (" (returning rows not re-inserted or deletion rows repeated: #654)" if bug654 else ""),
        "deleted_back_unchanged timestamp/invalidate: key 2's versions "
        f"{_spans(ts_back)}"
        + (
            ": the return starts at its old updated_at, inside the closed version. "
            if overlap
            else ". "
        )
        + f"(check/invalidate: {_spans(ck_back)}: in the check strategy the return starts at "
        "the snapshot time.) new_record: deleted_never_back (four runs without key 2) has "
        f"{repeated[0]} (check) and {repeated[1]} (timestamp) deletion record(s); "
        f"deleted_back_unchanged re-inserts the returning key ({reinserted[0]} and "
        f"{reinserted[1]} current live version(s)); flicker check/new_record has {flick} "
        "deletion records for 2 absences. In the timestamp strategy dbt closes the deletion "
        "record at the returning row's updated_at"
        + (f", before the record began ({_spans(inverted, deleted=True)})." if inverted else "."),
    )
    # late window
    lw = [find("late_window", f"{s}/invalidate") for s in ("check", "timestamp")]
    moved = [o.dbt_arrival is not None and Counter(o.dbt) != Counter(o.dbt_arrival) for o in lw]
    claim(
        "a late window, a re-extracted window",
        "confirmed" if all(moved) else "contradicted",
        "late_window and reextracted_window: dbt run in arrival order ends with another "
        "history than dbt run in day order (check and timestamp), see those sections; "
        "onceflow's replay equals the in-order run.",
    )
    return out


# ================================================================== main


def repro_run(scenario: str, mode: str, late_rows: str = "skip") -> None:
    sc = next((x for x in SCENARIOS if x.name == scenario), None)
    if sc is None or mode not in sc.modes():
        sys.exit(f"no scenario {scenario!r} with mode {mode!r}: see --list")
    case = Case(sc, mode)
    root = Path(tempfile.mkdtemp(prefix="onceflow-repro-"))
    try:
        result = run_onceflow(case, root, late_rows)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"load: {result['config']}")
    for day, label, rows in steps(sc):
        print(f"{label} (snapshot_at {end_of(day)} UTC): {rows}")
    print("\n".join(_log_lines(result["log"])))
    rows = norm_onceflow(sc, mode, result["rows"])
    print(" | ".join(header(sc, mode)))
    for r in rows:
        print(" | ".join(map(_cell, r)))


def select(only: list[str] | None) -> list[Case]:
    cases = []
    for sc in SCENARIOS:
        if only and sc.name not in only:
            continue
        cases += [Case(sc, m) for m in sc.modes()]
    return cases


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--setup", action="store_true", help="create/refresh dbt's venv, exit")
    p.add_argument("--only", nargs="+", metavar="SCENARIO", help="run only these scenarios")
    p.add_argument("--list", action="store_true", help="list the scenarios and their modes")
    p.add_argument(
        "--no-write", action="store_true", help=f"print only, do not write {REPORT.name}"
    )
    p.add_argument(
        "--repro",
        nargs=2,
        metavar=("SCENARIO", "MODE"),
        help="run onceflow alone on one scenario in a mode (e.g. timestamp/ignore), print it",
    )
    p.add_argument("--late-rows", default="skip", choices=("skip", "reject"), help="with --repro")
    p.add_argument(
        "--reuse-dbt",
        action="store_true",
        help="reuse the last dbt results (bench/.work/compare-dbt/dbt-out.json) if they fit",
    )
    p.add_argument("--dbt-driver", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.dbt_driver:
        dbt_driver(*args.dbt_driver)
        return
    if args.setup:
        setup_venv()
        return
    if args.repro:
        repro_run(*args.repro, late_rows=args.late_rows)
        return
    if args.list:
        for sc in SCENARIOS:
            print(f"{sc.name:32} {', '.join(sc.modes())}")
        print(f"{len(SCENARIOS)} scenarios, {len(select(None))} cases")
        return
    started = time.time()
    cases = select(args.only)
    if not cases:
        sys.exit(f"no such scenario: {args.only}")
    print(f"{len(cases)} cases; dbt first", flush=True)
    dbt = None
    previous = RUN_DIR / "dbt-out.json"
    if args.reuse_dbt and previous.exists():
        dbt = json.loads(previous.read_text())
        if not all(c.snap in dbt["cases"] for c in cases):
            dbt = None
    if dbt is None:
        dbt = run_dbt(cases)
    versions = dbt["versions"]
    root = Path(tempfile.mkdtemp(prefix="onceflow-", dir=RUN_DIR))
    outcomes = []
    try:
        for case in cases:
            of = run_onceflow(case, root)
            d = dbt["cases"][case.snap]
            o = Outcome(
                case,
                norm_dbt(case.scenario, case.mode, d["rows"]),
                norm_onceflow(case.scenario, case.mode, of["rows"]),
                d["log"],
                of["log"],
            )
            arrival = dbt["cases"].get(case.snap + "__arrival")
            if arrival is not None:
                o.dbt_arrival = norm_dbt(case.scenario, case.mode, arrival["rows"])
            judge(o)
            if any("late rows" in x for x in o.anomalies):
                o.reject_log = run_onceflow(case, root, late_rows="reject")["log"]
            outcomes.append(o)
            print(f"{case.snap:60} {o.verdict}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    claims = check_claims(outcomes, versions) if not args.only else ["(only with every scenario)"]
    report = render(outcomes, versions, claims, time.time() - started)
    print(report)
    if not args.no_write:
        REPORT.write_text(report, encoding="utf-8")
        print(f"wrote {REPORT}")


if __name__ == "__main__":
    main()
