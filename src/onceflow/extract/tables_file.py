"""`--tables FILE`: the tables a command acts on, read from a JSON or YAML file.

The file is a list. Each item is a table key (`source.table`, or a table's unique name)
or the seed extractor's table config: an object with `source_name` and `table_name`,
whose key is `source_name.table_name`. The seed's `is_full_extract` is onceflow's
`extract: {mode: full}`; a file that says otherwise than the config is refused, not
obeyed: the config decides how a table is extracted, whichever command names it, so a
table's lake never mixes windows extracted two ways. Any other key is refused by name.

Invariants: a file is read whole before anything runs; every problem is one
ConfigError naming the file and the entry; the keys keep the file's order, each once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onceflow.config import Config, parse_yaml
from onceflow.errors import ConfigError

#: A --tables value ending in one of these names a file of tables.
TABLE_FILE_SUFFIXES = (".json", ".yml", ".yaml")
#: The keys of the seed's table config that onceflow reads.
ENTRY_KEYS = ("source_name", "table_name", "is_full_extract")


@dataclass(frozen=True)
class TableEntry:
    """One entry of a tables file: the table's key and what the entry says about it."""

    key: str
    where: str  # "tables.json: entry 2", for messages
    full: bool | None = None  # the seed's is_full_extract, when given

    def check(self, config: Config) -> None:
        """ConfigError naming the entry when the config has no such table, or extracts
        it otherwise than the entry says."""
        try:
            table = config.table(self.key)
        except ConfigError as error:
            raise ConfigError(f"{self.where}: {error}", field="tables") from None
        mode = table.extract.mode
        if self.full is not None and self.full != (mode == "full"):
            raise ConfigError(
                f"{self.where}: is_full_extract: {str(self.full).lower()}, but the config "
                f"extracts {table.key} with extract.mode: {mode}; make them agree (the "
                "config decides how a table is extracted)",
                field="tables",
            )


class TableSelection(list[str]):
    """Table keys, some read from tables files: a list of keys that remembers the file
    entries, so that the extract step checks them against the config it runs."""

    def __init__(self, keys: Iterable[str] = (), entries: Iterable[TableEntry] = ()) -> None:
        super().__init__(keys)
        self.entries = tuple(entries)

    def check(self, config: Config) -> None:
        """Check every file entry against `config` (see TableEntry.check)."""
        for entry in self.entries:
            entry.check(config)


def is_tables_file(value: str) -> bool:
    """Whether a --tables value names a file of tables (by its suffix)."""
    return value.strip().lower().endswith(TABLE_FILE_SUFFIXES)


def read_tables_file(path: str | Path) -> TableSelection:
    """The tables a JSON or YAML file lists (see the module's docstring); ConfigError
    naming the file, and the entry, for a missing file or a bad entry."""
    name = str(path)
    data = _parse(Path(path), name)
    if not isinstance(data, list):
        raise ConfigError(
            f"{name}: expected a list of tables (keys, or objects with source_name and "
            f"table_name), got {type(data).__name__}",
            field="tables",
        )
    if not data:
        raise ConfigError(f"{name}: lists no tables", field="tables")
    entries = [_entry(item, f"{name}: entry {i}") for i, item in enumerate(data, start=1)]
    return TableSelection(_unique(e.key for e in entries), entries)


def table_selection(values: Sequence[str] | None) -> TableSelection | None:
    """--tables values (repeated, comma-separated) as keys, each file read in its place;
    None when none is given (all tables)."""
    keys: list[str] = []
    entries: list[TableEntry] = []
    for value in values or []:
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            if is_tables_file(part):
                chosen = read_tables_file(part)
                keys += chosen
                entries += chosen.entries
            else:
                keys.append(part)
    return TableSelection(_unique(keys), entries) if keys else None


def _parse(path: Path, name: str) -> Any:
    if not path.is_file():
        raise ConfigError(
            f"tables file {name} not found (a --tables value ending in .json, .yml or "
            ".yaml names a file that lists the tables)",
            field="tables",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{name}: cannot read it: {error}", field="tables") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{name}: not valid JSON: {error}", field="tables") from None
    return parse_yaml(text, name, field="tables")


def _entry(item: Any, where: str) -> TableEntry:
    if isinstance(item, str) and item.strip():
        return TableEntry(item.strip(), f"{where} ({item.strip()})")
    if not isinstance(item, dict):
        raise ConfigError(
            f"{where}: expected a table key or an object with source_name and table_name, "
            f"got {item!r}",
            field="tables",
        )
    names = [item.get(k) for k in ("source_name", "table_name")]
    for key, value in zip(("source_name", "table_name"), names, strict=True):
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(
                f"{where}: {key}: expected the name as text, got {value!r}", field="tables"
            )
    key = f"{names[0].strip()}.{names[1].strip()}"  # type: ignore[union-attr]
    where = f"{where} ({key})"
    for extra in item:
        if extra not in ENTRY_KEYS:
            raise ConfigError(
                f"{where}: {extra}: not a key onceflow reads here; an entry takes "
                f"{', '.join(ENTRY_KEYS)} (the rest of a table's settings are in onceflow.yml)",
                field="tables",
            )
    full = item.get("is_full_extract")
    if full is not None and not isinstance(full, bool):
        raise ConfigError(
            f"{where}: is_full_extract: expected true or false, got {full!r}", field="tables"
        )
    return TableEntry(key, where, full)


def _unique(keys: Iterable[str]) -> list[str]:
    """The keys in order, each once: a table named twice is still extracted once."""
    return list(dict.fromkeys(keys))
