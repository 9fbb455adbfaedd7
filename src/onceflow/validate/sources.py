"""The `--sources` file: which data each table's rules check, instead of its Delta table.

A YAML (or JSON) mapping of table key or name to a path: a Delta table, a Parquet file or
a folder of Parquet files, relative to the file's own folder. The mapping may sit under a
top-level `sources:` key. The seed's validator job took the same file
(`--config config.yaml --sources sources.yaml`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from onceflow.config import parse_yaml
from onceflow.errors import ConfigError
from onceflow.redact import register_url


def load_sources(path: str | Path) -> dict[str, str]:
    """Read a sources file into {table: data path}; ConfigError naming the entry at fault."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            f"--sources {file}: no such file; give a YAML file of `table: path` lines",
            field="sources",
        )
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--sources {file}: cannot read it: {error}", field="sources") from None
    data = parse_yaml(text, f"--sources {file}", field="sources")
    if isinstance(data, Mapping) and set(data) == {"sources"}:
        data = data["sources"]
    return sources_from_mapping(data, base_dir=file.resolve().parent, origin=str(file))


def sources_from_mapping(
    data: Any, *, base_dir: str | Path | None = None, origin: str = "sources"
) -> dict[str, str]:
    """Check a {table: path} mapping; relative paths are taken from `base_dir`."""
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(
            f"{origin}: expected a mapping of table to data path, like `shop.orders: "
            "data/orders.parquet`",
            field="sources",
        )
    found: dict[str, str] = {}
    for name, value in data.items():
        if isinstance(value, Mapping) and set(value) == {"path"}:
            value = value["path"]
        if not isinstance(name, str) or not isinstance(value, str) or not value.strip():
            raise ConfigError(
                f"{origin}: entry {name!r}: give the table's data as a path string "
                "(a Delta table, a Parquet file or folder)",
                field=f"sources.{name}",
            )
        if "://" in value:
            register_url(value)  # an object-store URL may carry credentials
            found[name] = value
            continue
        location = Path(value).expanduser()
        if base_dir is not None and not location.is_absolute():
            location = Path(base_dir) / location
        found[name] = str(location)
    return found
