"""A window is loaded from one file: a second committed file of a table's window (another
run id, copied into the lake by hand) is refused by name, and nothing is loaded twice."""

from __future__ import annotations

import shutil
from pathlib import Path

from deltalake import DeltaTable

from tests.helpers.cli import run_cli

DAY = "2025-01-23"


def _twin(demo: Path) -> Path:
    """Copy the orders file of DAY and its sidecar under another run id's name."""
    [data] = (demo / "lake" / "shop" / "orders").rglob("demo_20250123.parquet")
    twin = data.with_name("copied.parquet")
    shutil.copy(data, twin)
    sidecars = [p for p in data.parent.glob("demo_20250123*") if p != data]
    for sidecar in sidecars:
        shutil.copy(sidecar, sidecar.with_name(sidecar.name.replace("demo_20250123", "copied")))
    return twin


def _orders(demo: Path) -> int:
    return int(DeltaTable(str(demo / "warehouse" / "shop" / "orders")).to_pyarrow_table().num_rows)


def test_a_second_file_of_a_loaded_window_fails_by_name_and_loads_nothing_twice(
    demo: Path,
) -> None:
    assert run_cli("run", "--date", DAY, cwd=demo).returncode == 0
    rows = _orders(demo)
    _twin(demo)
    load = run_cli("load", "--tables", "shop.orders", cwd=demo)
    assert load.returncode == 1
    out = load.stdout + load.stderr
    assert "copied.parquet" in out and "has another committed file" in out
    assert "re-extract" not in out  # the repair is to remove one, not to extract again
    assert _orders(demo) == rows


def test_two_files_of_a_window_not_loaded_yet_both_fail_until_one_is_removed(
    demo: Path,
) -> None:
    assert run_cli("extract", "--date", DAY, cwd=demo).returncode == 0
    twin = _twin(demo)
    load = run_cli("load", "--tables", "shop.orders", cwd=demo)
    assert load.returncode == 1
    assert not (demo / "warehouse" / "shop" / "orders").exists() or _orders(demo) == 0
    twin.unlink()  # its sidecar still commits a second file of the window: still refused
    half = run_cli("load", "--tables", "shop.orders", cwd=demo)
    assert half.returncode == 1 and "copied.parquet" in half.stdout + half.stderr
    for path in twin.parent.glob("copied*"):
        path.unlink()
    again = run_cli("load", "--tables", "shop.orders", "--json", cwd=demo)
    assert _orders(demo) > 0, again.stdout + again.stderr
