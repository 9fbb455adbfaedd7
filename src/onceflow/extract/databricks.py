"""`--databricks`: refuse to write anywhere but Databricks storage.

A job meant for Databricks that runs with a relative or local lake (a config copied from a
laptop, a mistyped path) would write to the driver's local disk, which is lost with the
cluster, and report success. With `--databricks`, every place the command writes must be
Databricks storage, or nothing runs: DBFS (`dbfs:/x`, read as the FUSE path `/dbfs/x`) or
a Unity Catalog volume (`/Volumes/<catalog>/<schema>/<volume>/...`), whose mount must be
there (off Databricks, `/dbfs/x` would be a local folder); a Delta table may also be an
object-store URL (`abfss://`, `s3://`), which is never local disk. The state store is not
checked: it is not data, and the next run re-derives it from the sidecars and Delta logs.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath

from onceflow.config import Config
from onceflow.errors import ConfigError
from onceflow.locations import normalize_path

#: The mount points of Databricks storage on a cluster's nodes.
DBFS_ROOT = "/dbfs"
VOLUMES_ROOT = "/Volumes"


def _mounted(root: str) -> bool:
    return os.path.isdir(root)


def databricks_storage(path: str) -> bool:
    """Whether `path` is DBFS or a Unity Catalog volume, with its mount present."""
    parts = PurePosixPath(normalize_path(path)).parts
    if parts[:2] == ("/", DBFS_ROOT[1:]) and len(parts) > 2:
        return _mounted(DBFS_ROOT)
    if parts[:2] == ("/", VOLUMES_ROOT[1:]) and len(parts) > 4:  # catalog, schema, volume
        return _mounted(VOLUMES_ROOT)
    return False


def _remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def require_databricks(config: Config, *, warehouse: bool = True) -> None:
    """ConfigError, naming each place that is not Databricks storage, unless the lake
    (and with `warehouse`, the warehouse and every table's target) is Databricks storage
    (see the module's docstring). `extract` writes only the lake: it passes
    `warehouse=False`."""
    wrong: list[str] = []
    lake = config.resolve(config.lake)
    if not databricks_storage(lake):
        wrong.append(f"lake {lake}")
    if warehouse:
        root = config.resolve(config.warehouse)
        if not (_remote(root) or databricks_storage(root)):
            wrong.append(f"warehouse {root}")
        inside = normalize_path(root).rstrip("/") + "/"
        for table in config.tables:
            # a target under the warehouse is where the warehouse is; others on their own
            target = config.resolve_target(table.target)
            if target.startswith(inside) or _remote(target) or databricks_storage(target):
                continue
            wrong.append(f"{table.key}'s target {target}")
    if wrong:
        raise ConfigError(
            f"--databricks: {'; '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not "
            "Databricks storage, so this job would write to the local disk; write "
            "dbfs:/... or /Volumes/<catalog>/<schema>/<volume>/... in the config (on a "
            "Databricks cluster), or leave out --databricks",
            field="databricks",
        )
