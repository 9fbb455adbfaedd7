"""A config of rules only: the seed validator's `config.yaml`, read as it was written.

That file names each table by `name:` and gives its `rules:`; it has no sources, no
extraction and no load, because its data comes from `--sources` (or is handed to
`validate_table`). Its other keys (`version`, `pipeline: {state_file}`, `engine: {type,
options}`) are the seed spellings onceflow's config already reads. So the file becomes
an onceflow Config without tables (state store, engine settings) plus the rules of each
named table.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from onceflow.config import Config, config_from_dict, read_config_file, require_tables
from onceflow.errors import ConfigError

#: What a table of a rules-only config may say.
_TABLE_KEYS = frozenset({"name", "rules", "description"})
#: Keys that make a table entry one of onceflow's own (a source table to extract).
_PIPELINE_KEYS = frozenset({"source", "table", "table_name", "extract", "load"})

RulesByTable = dict[str, list[Any]]


def is_rules_only(data: Any) -> bool:
    """Whether a parsed config is the seed validator's: tables named by `name` with rules,
    none of them a source table, and no `sources:`."""
    if not isinstance(data, Mapping) or "sources" in data:
        return False
    tables = data.get("tables")
    return (
        isinstance(tables, list)
        and bool(tables)
        and all(
            isinstance(t, Mapping) and "name" in t and not (_PIPELINE_KEYS & set(t)) for t in tables
        )
    )


def validation_config(
    data: Mapping[str, Any], *, base_dir: str, origin: str = "config"
) -> tuple[Config, RulesByTable]:
    """A parsed config as (Config, rules of the tables it names by `name` only): for the
    seed validator's format, a Config without tables and every table's rules; for an
    onceflow.yml, the Config and no extra rules."""
    if not is_rules_only(data):
        return config_from_dict(dict(data), base_dir=base_dir, origin=origin), {}
    rules: RulesByTable = {}
    for i, table in enumerate(data["tables"]):
        extra = sorted(set(table) - _TABLE_KEYS)
        if extra:
            raise ConfigError(
                f"{origin}: tables[{i}].{extra[0]}: unknown field; a table named by `name:` "
                "takes rules (its data comes from --sources)",
                field=f"tables[{i}].{extra[0]}",
            )
        name = str(table["name"])
        if name in rules:
            raise ConfigError(
                f"{origin}: tables[{i}].name: table {name!r} is named twice; give its rules once",
                field=f"tables[{i}].name",
            )
        items = table.get("rules") or []
        if not isinstance(items, list):
            raise ConfigError(
                f"{origin}: tables[{i}].rules: expected a list of rules",
                field=f"tables[{i}].rules",
            )
        rules[name] = items
    rest = {k: v for k, v in data.items() if k != "tables"}
    return config_from_dict(rest, base_dir=base_dir, origin=origin), rules


def load_validation_config(path: str | Path | None = None) -> tuple[Config, RulesByTable]:
    """Read onceflow.yml or a rules-only config (default ./onceflow.yml); see
    `validation_config`. An onceflow.yml that lists no tables is refused, as
    `load_config` refuses it: there would be nothing to validate."""
    data, base_dir, origin = read_config_file(path)
    config, rules = validation_config(data, base_dir=base_dir, origin=origin)
    return (config if rules else require_tables(config, data)), rules


__all__ = ["RulesByTable", "is_rules_only", "load_validation_config", "validation_config"]
