"""set_aside_damaged: a SQLite store SQLite cannot read is moved aside with its journal
files, never deleted, and a new store starts at its path; a sound store, a missing one
and a PostgreSQL one are left alone."""

from __future__ import annotations

from pathlib import Path

from onceflow.state import open_store, set_aside_damaged
from tests.helpers.servers import pg_state_url


def _store_with_a_run(path: Path) -> None:
    store = open_store(f"sqlite:///{path}")
    store.runs.begin("r", "p", "2025-01-23", ("a", "b"))
    store.close()


def test_a_malformed_store_moves_aside_with_its_journal_and_a_new_one_starts(tmp_path):
    path = tmp_path / "state.db"
    _store_with_a_run(path)
    with path.open("r+b") as handle:
        handle.seek(4096 * 2)
        handle.write(b"\xff" * 4096 * 3)
    Path(f"{path}-wal").write_bytes(b"a journal that belongs to the damaged file")
    damaged_bytes = path.read_bytes()

    moved = set_aside_damaged(f"sqlite:///{path}")
    assert moved is not None and "malformed" in moved.damage
    aside = Path(moved.moved_to)
    assert aside.name.startswith("state.db.corrupt-") and aside.parent == tmp_path
    assert aside.read_bytes() == damaged_bytes
    assert Path(f"{aside}-wal").read_bytes() == b"a journal that belongs to the damaged file"
    assert not path.exists() and not Path(f"{path}-wal").exists()
    fresh = open_store(f"sqlite:///{path}")
    assert fresh.runs.find() == []


def test_a_file_that_is_not_a_database_is_moved_aside_too(tmp_path):
    path = tmp_path / "state.db"
    path.write_bytes(b"x" * 8192)
    moved = set_aside_damaged(f"sqlite:///{path}")
    assert moved is not None and "not a database" in moved.damage
    assert Path(moved.moved_to).read_bytes() == b"x" * 8192


def test_a_second_damage_in_the_same_second_gets_its_own_name(tmp_path):
    path = tmp_path / "state.db"
    names = set()
    for _ in range(2):
        path.write_bytes(b"x" * 8192)
        moved = set_aside_damaged(f"sqlite:///{path}")
        assert moved is not None
        names.add(moved.moved_to)
    assert len(names) == 2 and all(Path(n).exists() for n in names)


def test_a_sound_or_missing_store_is_left_in_place(tmp_path):
    path = tmp_path / "state.db"
    assert set_aside_damaged(f"sqlite:///{path}") is None
    _store_with_a_run(path)
    assert set_aside_damaged(f"sqlite:///{path}") is None
    assert open_store(f"sqlite:///{path}").runs.get("r") is not None


def test_a_postgresql_store_is_never_moved():
    # decided before connecting: PostgreSQL damage is repaired by PostgreSQL's own means
    assert set_aside_damaged(pg_state_url("any_schema")) is None
