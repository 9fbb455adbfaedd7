"""`ONCEFLOW_STATE`, exported for the commands used without a config, is the store of each
of them, and is ignored (not refused) by a command whose config names its own."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.cli import run_cli


def test_an_exported_state_is_ignored_where_a_config_names_its_own(demo: Path) -> None:
    assert run_cli("run", "--date", "2025-01-22", cwd=demo).returncode == 0
    other = {"ONCEFLOW_STATE": f"sqlite:///{demo / 'elsewhere.db'}"}
    shown = run_cli("status", "--json", cwd=demo, env=other)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["run_id"] == "demo_20250122"  # the config's store
    assert run_cli("load", "--date", "2025-01-22", cwd=demo, env=other).returncode == 0
    typed = run_cli("status", "--state", other["ONCEFLOW_STATE"], cwd=demo)
    assert typed.returncode == 2
    assert "--state and --pipeline are for use without a config file" in typed.stderr


def test_an_exported_state_is_where_a_single_table_extract_and_status_meet(
    demo: Path, tmp_path: Path
) -> None:
    work = tmp_path / "single"
    work.mkdir()
    env = {"ONCEFLOW_STATE": f"sqlite:///{tmp_path / 'shared.db'}"}
    url = f"sqlite:///{demo / 'shop.db'}"
    extract = run_cli(
        "extract", "--url", url, "--source-name", "shop", "--table-name", "orders",
        "--full", "--date", "2025-01-22", "--lake", str(work / "lake"), cwd=work, env=env,
    )  # fmt: skip
    assert extract.returncode == 0, extract.stderr
    assert (tmp_path / "shared.db").exists()
    status = run_cli("status", "--json", cwd=work, env=env)
    assert status.returncode == 0, status.stderr
    assert "extract_20250122" in status.stdout
