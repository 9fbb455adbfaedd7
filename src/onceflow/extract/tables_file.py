"""`--tables FILE`: the tables a command acts on, read from a JSON or YAML file.

The file is a list. Each item is a table key (`source.table`, or a table's unique name)
or the seed extractor's table config, `extract_table`'s parameters: an object with
`source_name` and `table_name` (and `schema_name`), whose key is
`source_name[.schema_name].table_name`, as the seed classes read it. What an entry says of
how its table is extracted (`is_full_extract`, onceflow's `extract: {mode: full}`;
`incremental_column`, the cursor; `custom_query`) must be what the config says, and its
`extraction_date` and `run_id` must be the command's run: a value that agrees is
accepted, one that disagrees is refused naming it, not obeyed (the config decides how a
table is extracted, whichever command or class names it, so a table's lake never mixes
windows extracted two ways; a command runs one date). Any other key is refused by name.

Invariants: a file is read whole before anything runs; every problem is one
ConfigError naming the file and the entry; the keys keep the file's order, each once.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from onceflow.config import Config, parse_yaml
from onceflow.errors import ConfigError
from onceflow.windows import check_run_id

#: A --tables value ending in one of these names a file of tables.
TABLE_FILE_SUFFIXES = (".json", ".yml", ".yaml")
#: The keys of the seed's table config that onceflow reads: seed 001's `extract_table`
#: parameters, as the seed classes take them (onceflow.seeds.tables.TABLE_KEYS is this).
ENTRY_KEYS = (
    "source_name",
    "table_name",
    "schema_name",
    "is_full_extract",
    "incremental_column",
    "custom_query",
    "extraction_date",
    "run_id",
)


@dataclass(frozen=True)
class TableEntry:
    """One entry of a tables file: the table's key and what the entry says about it."""

    key: str
    where: str  # "tables.json: entry 2", for messages
    full: bool | None = None  # the seed's is_full_extract, when given
    cursor: str | None = None  # incremental_column
    query: str | None = None  # custom_query
    run_date: date | None = None  # extraction_date
    run_id: str | None = None

    def check(
        self, config: Config, run_date: date | None = None, run_id: str | None = None
    ) -> None:
        """ConfigError naming the entry when the config has no such table, or extracts
        it otherwise than the entry says, or (given the command's run) the entry's
        extraction_date or run_id is not `run_date` or `run_id`."""
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
        # the seed's rule (onceflow.seeds.extractor): a cursor or query given must be the
        # config's; one left out says nothing
        for name, value, own in (
            ("incremental_column", self.cursor, table.extract.cursor),
            ("custom_query", self.query, table.query),
        ):
            if value is not None and value != own:
                raise ConfigError(
                    f"{self.where}: {name}: {value!r}, but the config has {own!r} for "
                    f"{table.key}; make them agree (the config decides how a table is "
                    "extracted)",
                    field="tables",
                )
        # one command, one run: an entry of another date or run id is refused rather than
        # extracted into this run's window under its name
        if run_date is not None and self.run_date is not None and self.run_date != run_date:
            raise ConfigError(
                f"{self.where}: extraction_date: {self.run_date}, but this is the run of "
                f"{run_date}; give --date {self.run_date} (a command extracts one date)",
                field="tables",
            )
        if run_id is not None and self.run_id is not None and self.run_id != run_id:
            raise ConfigError(
                f"{self.where}: run_id: {self.run_id}, but this is run {run_id}; give "
                f"--run-id {self.run_id} (a command extracts one run)",
                field="tables",
            )


class TableSelection(list[str]):
    """Table keys, some read from tables files: a list of keys that remembers the file
    entries, so that the extract step checks them against the config it runs."""

    def __init__(self, keys: Iterable[str] = (), entries: Iterable[TableEntry] = ()) -> None:
        super().__init__(keys)
        self.entries = tuple(entries)

    def check(
        self, config: Config, run_date: date | None = None, run_id: str | None = None
    ) -> None:
        """Check every file entry against `config` and the command's run (see
        TableEntry.check)."""
        for entry in self.entries:
            entry.check(config, run_date, run_id)


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
    schema = _text(item, "schema_name", where)
    qualified = f"{schema}.{names[1].strip()}" if schema else names[1].strip()  # type: ignore[union-attr]
    key = f"{names[0].strip()}.{qualified}"  # type: ignore[union-attr]
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
    run_id = _text(item, "run_id", where)
    return TableEntry(
        key,
        where,
        full,
        cursor=_text(item, "incremental_column", where),
        query=_text(item, "custom_query", where),
        run_date=_run_date(item.get("extraction_date"), where),
        run_id=check_run_id(run_id) if run_id else None,
    )


def _text(item: dict[str, Any], name: str, where: str) -> str | None:
    value = item.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {name}: expected text, got {value!r}", field="tables")
    return value.strip()


def _run_date(value: Any, where: str) -> date | None:
    """The seed's extraction_date (YYYY-MM-DD, a timestamp, or a YAML date) as a run date."""
    if value is None or isinstance(value, date):
        return value.date() if isinstance(value, datetime) else value
    if isinstance(value, str):
        # a timestamp's day, as the seed's; text that is no date is refused below
        with contextlib.suppress(ValueError):
            return date.fromisoformat(value.strip()[:10])
    raise ConfigError(
        f"{where}: extraction_date: expected YYYY-MM-DD, got {value!r}", field="tables"
    )


def _unique(keys: Iterable[str]) -> list[str]:
    """The keys in order, each once: a table named twice is still extracted once."""
    return list(dict.fromkeys(keys))
