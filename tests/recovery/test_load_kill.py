"""kill -9 at random points of a load, then rerun: the table equals a clean run's.

Five scenarios: a 20-file append, SCD2 on business time and on snapshot time, and two
where the lake changed after a full load: ten re-extracted windows of an append table
(each a replace commit) and a re-extracted first window of an SCD2 table (a rewind, then
19 files replayed).


A clean run of the real `onceflow load` is timed from the moment it holds the table's
lease lock: to its first commit, then per commit. Each trial starts a fresh warehouse and
state over the same lake and runs a chain of real loaders; each resumes the load and is
SIGKILLed at the next of the trial's random points of the load (see `_kill_chain`). A
kill is only ever timed from the loader's lock and the table's commits, so it lands
during the load, never in the interpreter's start-up. Each kill records how many commits
the table had when it landed, and the test asserts that the kills spread over the load,
most of them between its first and last commit. One loader per scenario dies at the
named crash point after_delta_commit (between a Delta commit and its tracker update).
Then the load is rerun to completion and checked:

* the Delta log names each file exactly once, in window order (as a clean run's does);
* the content equals a clean run's: a checksum over sorted rows (see each scenario for the
  columns left out), and for scd2 the row count per key;
* the table's invariants: append, no duplicate (_source_file, id); scd2, at most one current
  row per key, no effective_to before effective_from, no overlapping versions;
* validate-consistency reports consistent (after --fix removed any data file a killed
  writer left uncommitted), and one more load creates no new table version.

The draws are seeded (ONCEFLOW_KILL_SEED overrides a scenario's seed); the seed and every
kill point are printed, so a failure names the plan that produced it.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from onceflow import warehouse
from onceflow.config import Config, load_config
from onceflow.consistency import fix_inconsistencies, validate_consistency
from onceflow.load import load
from tests.helpers.cli import run_cli, spawn
from tests.helpers.forkserver import ForkedProcess
from tests.helpers.lake import (
    clean_load_checksum,
    config_dict,
    content_checksum,
    file_commits,
    make_lake,
    orders_batch,
    read_table,
    write_extracted,
)
from tests.helpers.recovery import (
    assert_scd2_invariants,
    delta_commit_count,
    lock_holder_pid,
)

pytestmark = pytest.mark.slow

FILES = 20
RANDOM_KILLS = 20  # landed random kills per scenario
MAX_TRIALS = 15
CRASH_POINT = "after_delta_commit"
SCD2_KEYS = 200


@dataclass(frozen=True)
class Scenario:
    """A strategy under test: its load config, checksum exclusions and seed; for a load
    after a change of the lake, how a trial's table and lake are prepared and how many
    commits the measured load makes."""

    load_cfg: dict[str, Any]
    # columns left out of the content checksum: values a rerun legitimately changes
    exclude: tuple[str, ...]
    seed: int
    # a file each, then the commit that records the new table's settings (its property:
    # onceflow.load.settings)
    commits: int = FILES + 1
    prepare: Callable[[Path], None] | None = None  # the trial's project folder

    @property
    def scd2(self) -> bool:
        return bool(self.load_cfg["strategy"] == "scd2")


@dataclass(frozen=True)
class Kill:
    """One SIGKILL that landed: where in the chain, the planned point, and the commits."""

    trial: int
    step: int
    kind: str  # "random" or the named crash point
    point: float  # planned, in commits of the load (random kills)
    after_lock: float  # seconds from the loader taking the lock to the kill
    commits_before: int  # when the killed loader started
    commits_at_kill: int

    def __str__(self) -> str:
        return (
            f"trial {self.trial:2d}.{self.step} {self.kind:<18} point {self.point:5.2f} "
            f"{self.after_lock:6.3f}s after the lock, commits {self.commits_before:2d} -> "
            f"{self.commits_at_kill:2d}"
        )


@dataclass(frozen=True)
class Timing:
    """The clean run's load, timed from the moment the loader held the table's lock."""

    head: float  # lock -> first commit (reconcile, claim, read, write the first file)
    per_commit: float  # first -> last commit, per commit
    tail: float  # last commit -> exit (tracker update, summary, interpreter exit)


@dataclass(frozen=True)
class Clean:
    """What a clean run left: the reference every trial is compared with."""

    commits: list[str]
    checksum: str
    versions_per_key: Counter[Any]


@dataclass
class KillLog:
    """Every kill of a scenario, and what it needs to tell how to reproduce them."""

    seed: int
    timing: Timing
    kills: list[Kill] = field(default_factory=list)
    missed: int = 0  # loaders that finished before their kill point
    trials: list[str] = field(default_factory=list)  # what each trial took

    def random(self) -> list[Kill]:
        return [k for k in self.kills if k.kind == "random"]

    def report(self) -> str:
        lines = [
            f"seed {self.seed} (ONCEFLOW_KILL_SEED={self.seed} reproduces the draws); clean "
            f"load after its lock: first commit {self.timing.head:.3f}s, then "
            f"{self.timing.per_commit:.3f}s/commit, exit {self.timing.tail:.3f}s after the "
            f"last; {len(self.random())} random kills landed, {self.missed} missed"
        ]
        return "\n".join([*lines, *(str(k) for k in self.kills), *self.trials])


def _scd2_lake(lake: Path, *, business_time: bool) -> None:
    """20 daily extracts of 200 keys whose name and tier change at different paces;
    `updated_at` (the business time) only when `business_time`."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    ids = list(range(SCD2_KEYS))
    for day in range(FILES):
        columns: dict[str, Any] = {
            "id": pa.array(ids, pa.int64()),
            "name": [f"name-{i}-v{day // (1 + i % 5)}" for i in ids],
            "tier": [(i + day // 3) % 4 for i in ids],
        }
        if business_time:
            columns["updated_at"] = pa.array(
                [start + timedelta(days=day)] * len(ids), pa.timestamp("us", tz="UTC")
            )
        write_extracted(lake, pa.table(columns), day=day)


def _write_cfg(folder: Path, lake: Path, load_cfg: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = config_dict(folder, load_cfg)
    data["lake"] = str(lake)
    path = folder / "onceflow.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _cfg(path: Path) -> Config:
    return load_config(path)


def _uri(folder: Path) -> str:
    return str(folder / "warehouse" / "src" / "orders")


def _spawn(config: Path, crash_at: str | None = None) -> ForkedProcess | subprocess.Popen[str]:
    """Start the real `onceflow load`."""
    return spawn("load", "-c", str(config), crash_at=crash_at)


def _wait_for_lock(proc: ForkedProcess | subprocess.Popen[str], folder: Path) -> float | None:
    """When `proc` took the table's lock (its load started), or None if it exited first."""
    deadline = time.monotonic() + 120
    lock = f"load:{_uri(folder)}"
    while proc.poll() is None:
        if lock_holder_pid(folder / "state.db", lock) == proc.pid:
            return time.monotonic()
        assert time.monotonic() < deadline, "the loader never took the table's lock"
        time.sleep(0.004)
    return None


def _clean_run(
    folder: Path, config: Path, exclude: tuple[str, ...], commits: int
) -> tuple[Clean, Timing]:
    """Load everything once with the real CLI, timing its lock and every commit."""
    uri = _uri(folder)
    base = delta_commit_count(uri)
    proc = _spawn(config)
    locked = _wait_for_lock(proc, folder)
    assert locked is not None, "the clean load ended before it was seen holding its lock"
    seen: dict[int, float] = {}
    while proc.poll() is None:
        seen.setdefault(delta_commit_count(uri) - base, time.monotonic())
        time.sleep(0.002)
    ended = time.monotonic()
    _out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert delta_commit_count(uri) - base == commits
    first, last = seen.get(1, locked), seen.get(commits, ended)
    timing = Timing(first - locked, (last - first) / (commits - 1), ended - last)
    ids = warehouse.read_table(uri, columns=["id"]).column("id").to_pylist()
    return Clean(file_commits(uri), content_checksum(uri, exclude), Counter(ids)), timing


def _wait_for_commits(proc: ForkedProcess | subprocess.Popen[str], uri: str, commits: int) -> bool:
    """Wait until the table has `commits` commits; False if `proc` exited first."""
    while delta_commit_count(uri) < commits:
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    return True


def _kill_chain(folder: Path, config: Path, trial: int, log: KillLog, commits: int) -> None:
    """Start loaders one after another, each SIGKILLed at a random point of the load.

    A trial draws 6 to 8 uniform points of the 20-file load, in commits (sorted): 7.4 is
    "40% into the 8th file", when the table has 7 commits. Each loader of the chain
    resumes the load and is killed at the next point: once it holds the table's lock and
    the table has that many commits, after that fraction of a file's time in the clean
    run (of the lock-to-first-commit time when it has made no commit yet). A point the
    table has passed already kills the next loader at once after it took the lock, during
    reconciliation. The plan comes from the seed and the trial number alone, so timing
    never shifts another trial's draws.
    """
    rng = random.Random(log.seed * 1000 + trial)
    points = sorted(rng.uniform(0, commits) for _ in range(rng.choice((6, 7, 8))))
    uri = _uri(folder)
    base = delta_commit_count(uri)
    if trial == 1:  # once per scenario: killed between a commit and its tracker update
        proc = _spawn(config, CRASH_POINT)
        proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL, f"{CRASH_POINT} did not fire"
        made = delta_commit_count(uri) - base
        log.kills.append(Kill(trial, 0, CRASH_POINT, 0.0, 0.0, 0, made))
    for step, point in enumerate(points, 1):
        before = delta_commit_count(uri) - base
        if before >= commits:
            return  # nothing left to interrupt
        whole = int(point)
        proc = _spawn(config)
        locked = _wait_for_lock(proc, folder)
        if locked is not None and _wait_for_commits(proc, uri, base + whole):
            if whole < before:  # passed already: kill it while it reconciles
                pause = 0.0
            elif whole == before:  # before its first commit
                pause = (point - whole) * log.timing.head
            else:
                pause = (point - whole) * log.timing.per_commit
            time.sleep(pause)
            proc.kill()  # a no-op once the process has exited
        proc.communicate(timeout=120)
        if proc.returncode != -signal.SIGKILL:
            assert proc.returncode == 0, f"trial {trial}.{step}: exit {proc.returncode}"
            log.missed += 1
            return  # it finished the load: nothing left to interrupt
        assert locked is not None
        after = time.monotonic() - locked
        made = delta_commit_count(uri) - base
        log.kills.append(Kill(trial, step, "random", point, after, before, made))


def _check_recovered(
    scenario: Scenario, folder: Path, config: Path, clean: Clean, trial: int
) -> None:
    """After the final rerun: the same content as the clean run, invariants, consistency."""
    uri = _uri(folder)
    commits = file_commits(uri)
    if scenario.prepare is None:  # a replay applies files again; a plain load never
        assert Counter(commits).most_common(1)[0][1] == 1, f"trial {trial}: a file twice"
    assert commits == clean.commits, f"trial {trial}: commits differ from a clean run"
    checksum = content_checksum(uri, scenario.exclude)
    assert checksum == clean.checksum, f"trial {trial}: content differs from a clean run"
    if scenario.scd2:
        rows = read_table(uri).to_pylist()
        assert_scd2_invariants(rows)
        assert sorted(r["id"] for r in rows if r["_is_current"]) == list(range(SCD2_KEYS))
        per_key = Counter(r["id"] for r in rows)
        assert per_key == clean.versions_per_key, f"trial {trial}: versions per key differ"
    else:
        table = read_table(uri)
        pairs = table.group_by(["_source_file", "id"]).aggregate([])
        assert pairs.num_rows == table.num_rows, f"trial {trial}: duplicate (_source_file, id)"
    report = validate_consistency(_cfg(config), safe_age_seconds=0)
    unexpected = [i for i in report["issues"] if i["kind"] != "uncommitted_delta_file"]
    assert not unexpected, report
    if report["issues"]:  # a killed writer's data files that no commit references
        assert fix_inconsistencies(_cfg(config), safe_age_seconds=0)["consistent"]
        assert content_checksum(uri, scenario.exclude) == checksum
        assert validate_consistency(_cfg(config), safe_age_seconds=0)["consistent"]
    version = warehouse.open_table(uri).version()
    again = load(_cfg(config))
    assert again.ok and again.counts()["loaded"] == again.counts()["unchanged"] == 0
    assert warehouse.open_table(uri).version() == version, f"trial {trial}: a rerun committed"


def _setup(tmp_path: Path, folder: Path, scenario: Scenario) -> Path:
    """A trial's project: the shared lake, or for a changed lake its own copy, prepared."""
    if scenario.prepare is None:
        return _write_cfg(folder, tmp_path / "lake", scenario.load_cfg)
    shutil.copytree(tmp_path / "lake", folder / "lake")
    config = _write_cfg(folder, folder / "lake", scenario.load_cfg)
    scenario.prepare(folder)
    return config


def _run_trials(tmp_path: Path, scenario: Scenario) -> None:
    """Trials of kill chains, each rerun and checked, until RANDOM_KILLS kills landed."""
    started = time.monotonic()
    seed = int(os.environ.get("ONCEFLOW_KILL_SEED", scenario.seed))
    folder = tmp_path / "clean"
    config = _setup(tmp_path, folder, scenario)
    clean, timing = _clean_run(folder, config, scenario.exclude, scenario.commits)
    lake = folder / "lake" if scenario.prepare else tmp_path / "lake"
    # the clean run itself equals a fresh in-order load of its final lake
    reference = clean_load_checksum(tmp_path / "fresh", lake, scenario.load_cfg, scenario.exclude)
    assert clean.checksum == reference
    log = KillLog(seed, timing)
    trial = 0
    try:
        while len(log.random()) < RANDOM_KILLS:
            trial += 1
            assert trial <= MAX_TRIALS, f"only {len(log.random())} random kills landed"
            folder = tmp_path / f"t{trial}"
            config = _setup(tmp_path, folder, scenario)
            chain = time.monotonic()
            _kill_chain(folder, config, trial, log, scenario.commits)
            rerun = time.monotonic()
            done = run_cli("load", "-c", str(config))
            assert done.returncode == 0, done.stderr
            checks = time.monotonic()
            _check_recovered(scenario, folder, config, clean, trial)
            log.trials.append(
                f"trial {trial}: kills {rerun - chain:.1f}s, rerun {checks - rerun:.1f}s, "
                f"checks {time.monotonic() - checks:.1f}s"
            )
    finally:
        print(log.report())
        print(f"{trial} trials in {time.monotonic() - started:.1f}s")
    _assert_kills_spread(log, scenario.commits)


def _assert_kills_spread(log: KillLog, commits: int) -> None:
    """The random kills landed during the load, spread over it."""
    kills = log.random()
    assert len(kills) >= RANDOM_KILLS
    mid = [k.commits_at_kill for k in kills if 0 < k.commits_at_kill < commits]
    assert len(mid) >= 0.6 * len(kills), f"only {len(mid)} kills between the first and last commit"
    assert sum(c <= commits // 2 for c in mid) >= 3, f"few kills in the first half: {mid}"
    assert sum(c > commits // 2 for c in mid) >= 3, f"few kills in the second half: {mid}"
    assert len(set(mid)) >= min(6, commits // 2), f"kills bunch at a few points: {sorted(mid)}"


def test_append_reload_after_random_sigkills_equals_a_clean_run(tmp_path: Path) -> None:
    make_lake(tmp_path / "lake", files=FILES, rows=2000)
    # _load_timestamp is the wall-clock time of a load; _batch_id and _source_file are
    # deterministic
    _run_trials(tmp_path, Scenario({"strategy": "append"}, ("_load_timestamp",), seed=3))


def test_scd2_business_time_reload_after_random_sigkills_equals_a_clean_run(
    tmp_path: Path,
) -> None:
    _scd2_lake(tmp_path / "lake", business_time=True)
    cfg = {"strategy": "scd2", "primary_key": ["id"], "validity_column": "updated_at"}
    # the validity comes from the data, so effective_from/to are compared as well
    _run_trials(tmp_path, Scenario(cfg, ("_load_timestamp",), seed=5))


def test_scd2_load_time_reload_after_random_sigkills_equals_a_clean_run(
    tmp_path: Path,
) -> None:
    _scd2_lake(tmp_path / "lake", business_time=False)
    # Without validity_column a version is valid from its file's snapshot instant (the
    # sidecar's), not the wall clock of the load: a rerun after kills gives the same
    # history as a clean run (issue 8, case 10). Only _load_timestamp differs.
    scenario = Scenario({"strategy": "scd2", "primary_key": ["id"]}, ("_load_timestamp",), 7)
    _run_trials(tmp_path, scenario)


def _load_fully(folder: Path) -> None:
    assert load(_cfg(folder / "onceflow.yml")).ok


def test_append_window_replacements_after_random_sigkills_equal_a_clean_run(
    tmp_path: Path,
) -> None:
    make_lake(tmp_path / "lake", files=FILES, rows=2000)

    def reextract_every_other_day(folder: Path) -> None:
        _load_fully(folder)
        for day in range(0, FILES, 2):  # ten windows re-extracted with other rows
            changed = orders_batch(day, 1500).set_column(3, "label", pa.array(["again"] * 1500))
            write_extracted(folder / "lake", changed, day=day)

    scenario = Scenario(
        {"strategy": "append"}, ("_load_timestamp",), 11, FILES // 2, reextract_every_other_day
    )
    _run_trials(tmp_path, scenario)


def test_scd2_replay_after_a_reextracted_first_window_and_random_sigkills_equals_a_clean_run(
    tmp_path: Path,
) -> None:
    _scd2_lake(tmp_path / "lake", business_time=False)

    def reextract_day_one(folder: Path) -> None:
        _load_fully(folder)
        ids = list(range(SCD2_KEYS))
        fixed = pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "name": [f"fixed-{i}" for i in ids],
                "tier": [9] * 200,
            }
        )
        write_extracted(folder / "lake", fixed, day=1)

    # one rewind commit, then days 1..19 replayed, then the settings property again (the
    # rewind restored version 0, from before it): 21 commits
    scenario = Scenario(
        {"strategy": "scd2", "primary_key": ["id"]},
        ("_load_timestamp",),
        13,
        FILES + 1,
        reextract_day_one,
    )
    _run_trials(tmp_path, scenario)
