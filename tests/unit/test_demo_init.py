"""`onceflow init`: a demo made again with --force starts from nothing of the old one."""

from __future__ import annotations

from pathlib import Path

import pytest

from onceflow.demo import init_project
from onceflow.errors import ConfigError


def _old_demo(folder: Path) -> None:
    init_project(folder)
    for path in (".onceflow/state.db", ".onceflow/state.db-wal", "lake/shop/orders/f.parquet"):
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text("old")
    (folder / "warehouse" / "shop" / "orders" / "_delta_log").mkdir(parents=True)
    (folder / "validation.html").write_text("mine")


def test_force_removes_the_old_state_lake_and_warehouse_only(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    _old_demo(demo)
    (tmp_path / "lake").mkdir()  # beside the demo, not its own: untouched
    with pytest.raises(ConfigError, match="--force"):
        init_project(demo)
    assert (demo / "lake").exists()  # refused: nothing removed

    init_project(demo, force=True)

    for gone in (".onceflow", "lake", "warehouse"):
        assert not (demo / gone).exists(), gone
    assert (demo / "shop.db").stat().st_size > 0
    assert (demo / "onceflow.yml").exists()
    assert (demo / "validation.html").read_text() == "mine"
    assert (tmp_path / "lake").is_dir()


def test_force_keeps_other_files_in_the_state_folder(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    _old_demo(demo)
    (demo / ".onceflow" / "notes.txt").write_text("mine")
    init_project(demo, force=True)
    assert not (demo / ".onceflow" / "state.db").exists()
    assert not (demo / ".onceflow" / "state.db-wal").exists()
    assert (demo / ".onceflow" / "notes.txt").read_text() == "mine"


def test_force_leaves_a_linked_lake_outside_the_folder_alone(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    init_project(demo)
    elsewhere = tmp_path / "shared-lake"
    (elsewhere / "keep").mkdir(parents=True)
    (demo / "lake").symlink_to(elsewhere)
    init_project(demo, force=True)
    assert (elsewhere / "keep").is_dir()
