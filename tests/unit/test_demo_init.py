"""`onceflow init`: a demo made again with --force starts from nothing of the old one."""

from __future__ import annotations

import shutil
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


def _refused(demo: Path, says: str) -> str:
    with pytest.raises(ConfigError) as refused:
        init_project(demo, force=True)
    message = str(refused.value)
    assert refused.value.exit_code == 2
    assert says in message and "\n" not in message
    assert "Remove or move it yourself" in message and "nothing was removed" in message
    return message


def test_force_refuses_a_lake_linked_to_a_folder_of_the_user_inside_the_demo(
    tmp_path: Path,
) -> None:
    demo = tmp_path / "demo"
    _old_demo(demo)
    (demo / "lake").rename(demo / "precious")
    (demo / "precious" / "mine.txt").write_text("mine")
    (demo / "lake").symlink_to("precious")
    shop = (demo / "shop.db").read_bytes()

    _refused(demo, f"{demo.resolve() / 'lake'} is a symlink (to precious)")

    # nothing removed, not even what comes before the link in the config (the state)
    assert (demo / "precious" / "mine.txt").read_text() == "mine"
    assert (demo / "lake").is_symlink()
    assert (demo / ".onceflow" / "state.db").exists()
    assert (demo / "warehouse").is_dir()
    assert (demo / "shop.db").read_bytes() == shop


def test_force_refuses_a_warehouse_linked_outside_the_folder(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    _old_demo(demo)
    outside = tmp_path / "outside"
    (outside / "shop" / "orders" / "_delta_log").mkdir(parents=True)
    shutil.rmtree(demo / "warehouse")
    (demo / "warehouse").symlink_to(Path("..") / "outside")

    _refused(demo, "warehouse is a symlink (to ../outside)")
    assert (outside / "shop" / "orders" / "_delta_log").is_dir()
    assert (demo / "lake" / "shop" / "orders" / "f.parquet").exists()


def test_force_refuses_a_link_on_the_way_and_a_linked_config(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    _old_demo(demo)
    elsewhere = tmp_path / "state-elsewhere"
    (demo / ".onceflow").rename(elsewhere)
    (demo / ".onceflow").symlink_to(elsewhere)
    _refused(demo, f"{demo.resolve() / '.onceflow'} is a symlink")
    assert (elsewhere / "state.db").read_text() == "old"

    (demo / ".onceflow").unlink()  # what the message asks: the link goes, its target stays
    mine = tmp_path / "mine.yml"
    mine.write_text("mine")
    (demo / "onceflow.yml").unlink()
    (demo / "onceflow.yml").symlink_to(mine)
    _refused(demo, "onceflow.yml is a symlink")
    assert mine.read_text() == "mine"
    assert (demo / "lake").is_dir()

    (demo / "onceflow.yml").unlink()
    init_project(demo, force=True)
    assert not (demo / "lake").exists() and (demo / "onceflow.yml").is_file()
    assert (elsewhere / "state.db").read_text() == "old"


def test_force_through_a_linked_demo_folder_is_the_folder_itself(tmp_path: Path) -> None:
    real = tmp_path / "real"
    _old_demo(real)
    (tmp_path / "alias").symlink_to(real)
    init_project(tmp_path / "alias", force=True)  # the folder given may be a link
    assert not (real / "lake").exists() and (real / "shop.db").is_file()


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_init_on_a_file_says_a_folder_is_meant(tmp_path: Path, force: bool) -> None:
    """`onceflow init demo/onceflow.yml` was `unexpected FileExistsError`, exit 1."""
    init_project(tmp_path / "demo")
    config = tmp_path / "demo" / "onceflow.yml"
    before = config.read_text()
    with pytest.raises(ConfigError, match=r"onceflow\.yml is a file, not a folder: `onceflow init"):
        init_project(config, force=force)
    assert config.read_text() == before


def test_the_demo_schedule_starts_three_days_back_so_its_catch_up_skips_no_night() -> None:
    """A fixed 2025 start left `up` hundreds of missed nights to skip and warn about."""
    from datetime import date

    import yaml

    from onceflow.demo import demo_config

    (schedule,) = yaml.safe_load(demo_config(date(2026, 11, 30)))["schedules"]
    assert schedule["start"] == "2026-11-27T12:00:00+00:00"
    assert schedule["catch_up"] == {"max": 3}  # the ticks of 11-28, 11-29, 11-30 02:00


def test_the_demo_catches_up_three_nights_at_any_hour() -> None:
    """Before 02:00 UTC a start three calendar days back left two ticks, and the demo's
    own test failed for two hours a night."""
    from datetime import UTC, datetime

    import yaml

    from onceflow.demo import demo_config

    for at, start in [
        (datetime(2026, 12, 1, 0, 30, tzinfo=UTC), "2026-11-27T12:00:00+00:00"),  # 3 ticks
        (datetime(2026, 12, 1, 1, 59, tzinfo=UTC), "2026-11-27T12:00:00+00:00"),
        (datetime(2026, 12, 1, 2, 0, tzinfo=UTC), "2026-11-28T12:00:00+00:00"),
        (datetime(2026, 12, 1, 23, 0, tzinfo=UTC), "2026-11-28T12:00:00+00:00"),
    ]:
        (schedule,) = yaml.safe_load(demo_config(at))["schedules"]
        assert schedule["start"] == start, at
