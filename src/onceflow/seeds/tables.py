"""The seeds' table configs and settings in onceflow's terms, shared by the seed classes."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from onceflow.errors import ConfigError
from onceflow.extract.tables_file import ENTRY_KEYS
from onceflow.windows import DATED_RUN_ID, run_date_of

log = logging.getLogger(__name__)

#: The seed's table-config keys onceflow reads (seed 001's extract_table parameters): the
#: same keys a `--tables` file takes.
TABLE_KEYS = ENTRY_KEYS
#: Seed keys with no onceflow equivalent, and what to do instead.
REFUSED_TABLE_KEYS = {
    "flashback_enabled": "onceflow reads the source as it is (Oracle Flashback queries "
    "are not supported); leave it out",
    "flashback_timestamp": "onceflow reads the source as it is (Oracle Flashback queries "
    "are not supported); leave it out",
}
#: A run id that ends in a date names its run date: daily_extract_20250123 (the CLI's
#: --run-id reads it by the same rule).
_DATED_RUN_ID = DATED_RUN_ID
#: The seed's defaults where onceflow has none of its own.
SEED_LAKE = "data"
SEED_STATE_DIR = "state"
SEED_DATABRICKS_LAKE = "/dbfs/data"
SINGLE_TABLE_PIPELINE = "extract"  # as `onceflow extract --host/--url`: runs shared


@dataclass(frozen=True)
class _SeedTable:
    """One seed table config, in onceflow's terms."""

    key: str
    source: str
    table: dict[str, Any]  # the onceflow table mapping (connection mode)
    where: str
    full: bool | None  # is_full_extract as given
    cursor: str | None
    query: str | None
    run_date: date | None
    run_id: str | None


def _text(entry: Mapping[str, Any], name: str, where: str, required: bool = False) -> str | None:
    value = entry.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {name}: expected text, got {value!r}", field=name)
    return value.strip()


def _as_date(value: Any, where: str) -> date | None:
    """The seed's extraction_date (a datetime, date or YYYY-MM-DD) as a run date."""
    if value is None or isinstance(value, date):
        return value.date() if isinstance(value, datetime) else value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # not a date: refused below, with the rest
            return date.fromisoformat(value[:10])
    raise ConfigError(
        f"{where}: extraction_date: expected a date, datetime or YYYY-MM-DD, got {value!r}",
        field="extraction_date",
    )


def seed_table(entry: Mapping[str, Any], where: str = "table config") -> _SeedTable:
    """A seed table config (or extract_table's arguments) read into onceflow's terms:
    key `source_name[.schema_name].table_name`; a full extract unless
    `incremental_column` is given and `is_full_extract` is not true (the seed's rule)."""
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping with source_name and table_name")
    for key in entry:
        if key in REFUSED_TABLE_KEYS and entry[key]:
            raise ConfigError(f"{where}: {key}: {REFUSED_TABLE_KEYS[key]}", field=key)
        if key not in TABLE_KEYS and key not in REFUSED_TABLE_KEYS:
            raise ConfigError(
                f"{where}: {key}: not a key onceflow reads; a table config takes "
                f"{', '.join(TABLE_KEYS)}",
                field=key,
            )
    source = _text(entry, "source_name", where, required=True)
    name = _text(entry, "table_name", where, required=True)
    assert source is not None and name is not None
    schema = _text(entry, "schema_name", where)
    qualified = f"{schema}.{name}" if schema else name
    where = f"{where} ({source}.{qualified})"
    full = entry.get("is_full_extract")
    if full is not None and not isinstance(full, bool):
        raise ConfigError(f"{where}: is_full_extract: expected true or false, got {full!r}")
    cursor = _text(entry, "incremental_column", where)
    query = _text(entry, "custom_query", where)
    incremental = bool(cursor) and full is not True
    extract = {"mode": "incremental", "cursor": cursor} if incremental else {"mode": "full"}
    table: dict[str, Any] = {"source": source, "extract": extract}
    if query:
        table.update(query=query, name=qualified)
    else:
        table["table"] = qualified
    run_id = _text(entry, "run_id", where)
    return _SeedTable(
        key=f"{source}.{qualified}",
        source=source,
        table=table,
        where=where,
        full=full,
        cursor=cursor if incremental else None,
        query=query,
        run_date=_as_date(entry.get("extraction_date"), where),
        run_id=run_id,
    )


def _run_date_of(run_id: str | None) -> date | None:
    """The date a run id such as daily_extract_20250123 names (onceflow's own run ids
    are <pipeline>_<yyyymmdd>), or None."""
    return run_date_of(run_id)


def _absolute(path: str) -> str:
    """A lake path given to a class, from the current folder (URLs and dbfs: as given)."""
    if "://" in path or path.startswith(("/", "dbfs:")):
        return path
    return os.path.abspath(path)


def _state_url(state_dir: str) -> str:
    """The seed's state folder: onceflow's SQLite store goes in it (as for the loader's
    `checkpoint_path`), one file for every run instead of a JSON file per run."""
    return "sqlite:///" + os.path.join(os.path.abspath(state_dir), "state.db")
