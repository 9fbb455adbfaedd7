"""kill -9 at random points of a 20-file load, then rerun: the table equals a clean run's.

Each trial starts a fresh warehouse and state over the same lake, starts the real
`onceflow load`, SIGKILLs it after a random delay (covering start-up, reading, writing,
committing, tracking), sometimes twice, then reruns it to completion. The table content
is compared with a clean run's by a checksum over sorted rows, excluding
`_load_timestamp` (the wall-clock time of the load, which legitimately differs);
`_batch_id` and `_source_file` are deterministic. A few trials use the named crash point
after_delta_commit (between the Delta commit and the tracker update).
"""

from __future__ import annotations

import random
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from onceflow.pipeline_load import load
from onceflow.recovery import validate_consistency
from tests.integration.load_helpers import (
    ONCEFLOW,
    config_dict,
    content_checksum,
    file_commits,
    make_lake,
    read_table,
    write_extracted,
)

pytestmark = pytest.mark.slow

FILES = 20
LIVE_KILLS = 22


def _scd2_lake(lake: Path) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for day in range(FILES):
        ids = list(range(200))
        write_extracted(
            lake,
            pa.table(
                {
                    "id": pa.array(ids, pa.int64()),
                    "name": [f"name-{i}-v{day // (1 + i % 5)}" for i in ids],
                    "tier": [(i + day // 3) % 4 for i in ids],
                    "updated_at": pa.array(
                        [start + timedelta(days=day)] * len(ids), pa.timestamp("us", tz="UTC")
                    ),
                }
            ),
            day=day,
        )


def _write_cfg(folder: Path, lake: Path, load_cfg: dict[str, Any]) -> Path:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    data = config_dict(folder, load_cfg)
    data["lake"] = str(lake)
    path = folder / "onceflow.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _cfg(path: Path) -> Any:
    from onceflow.config import load_config

    return load_config(path)


def _uri(folder: Path) -> str:
    return str(folder / "warehouse" / "src" / "orders")


def _run_trials(tmp_path: Path, load_cfg: dict[str, Any], *, seed: int) -> None:
    lake = tmp_path / "lake"
    clean = _write_cfg(tmp_path / "clean", lake, load_cfg)
    started = time.monotonic()
    assert load(_cfg(clean)).ok
    clean_sum = content_checksum(_uri(tmp_path / "clean"))
    clean_commits = file_commits(_uri(tmp_path / "clean"))
    rng = random.Random(seed)
    live_kills = 0
    trial = 0
    while live_kills < LIVE_KILLS:
        trial += 1
        assert trial <= 3 * LIVE_KILLS, f"only {live_kills} kills hit a running loader"
        folder = tmp_path / f"t{trial}"
        shutil.rmtree(folder, ignore_errors=True)
        config = _write_cfg(folder, lake, load_cfg)
        crash_at = "after_delta_commit" if trial % 8 == 0 else None
        for _ in range(rng.choice((1, 1, 2))):
            env = dict(__import__("os").environ)
            env.pop("ONCEFLOW_CRASH_AT", None)
            if crash_at:
                env["ONCEFLOW_CRASH_AT"] = crash_at
            proc = subprocess.Popen(
                [ONCEFLOW, "load", "-c", str(config)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if crash_at:
                proc.wait(timeout=120)
                live_kills += proc.returncode == -9
                continue
            time.sleep(rng.uniform(0.4, 2.2))
            if proc.poll() is None:
                proc.kill()
                live_kills += 1
            proc.wait(timeout=60)
        done = subprocess.run(
            [ONCEFLOW, "load", "-c", str(config)],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        uri = _uri(folder)
        commits = file_commits(uri)
        assert len(commits) == len(set(commits)), f"trial {trial}: a file committed twice"
        assert commits == clean_commits, f"trial {trial}: commits differ from a clean run"
        assert content_checksum(uri) == clean_sum, f"trial {trial}: content differs"
        report = validate_consistency(_cfg(config), safe_age_seconds=0)
        unexpected = [i for i in report["issues"] if i["kind"] != "uncommitted_delta_file"]
        assert not unexpected, report
        # a killed writer may leave data files no commit references: fix removes them
        if report["issues"]:
            from onceflow.recovery import fix_inconsistencies

            assert fix_inconsistencies(_cfg(config), safe_age_seconds=0)["consistent"]
            assert content_checksum(uri) == clean_sum
    assert time.monotonic() - started < 280


def test_append_survives_sigkill_at_random_points(tmp_path: Path) -> None:
    make_lake(tmp_path / "lake", files=FILES, rows=2000)
    _run_trials(tmp_path, {"strategy": "append"}, seed=3)
    table = read_table(_uri(tmp_path / "t1"))
    assert table.num_rows == FILES * 2000
    assert len(set(table.column("id").to_pylist())) == FILES * 2000


def test_scd2_survives_sigkill_at_random_points(tmp_path: Path) -> None:
    pytest.importorskip("onceflow.load.scd2")
    _scd2_lake(tmp_path / "lake")
    _run_trials(
        tmp_path,
        {"strategy": "scd2", "primary_key": ["id"], "validity_column": "updated_at"},
        seed=5,
    )
    table = read_table(_uri(tmp_path / "t1")).to_pylist()
    current = [r["id"] for r in table if r["_is_current"]]
    assert sorted(current) == list(range(200))  # one current row per key
    versions = {(r["id"], r["_effective_from"]) for r in table}
    assert len(versions) == len(table)  # no duplicate version
