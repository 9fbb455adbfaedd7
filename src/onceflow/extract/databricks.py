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


#: Each mount: what it holds, and how deep a path must go to be inside a storage
#: location (DBFS: anything under the root; a volume: /Volumes/<catalog>/<schema>/<volume>).
_MOUNTS = ((DBFS_ROOT, "DBFS", 2), (VOLUMES_ROOT, "a Unity Catalog volume", 4))


def _mounted(root: str) -> bool:
    return os.path.isdir(root)


def _mount_of(path: str) -> tuple[str, str] | None:
    """(mount root, what it holds) of a DBFS or volume path, whether mounted or not."""
    parts = PurePosixPath(normalize_path(path)).parts
    for root, kind, depth in _MOUNTS:
        if parts[:2] == ("/", root[1:]) and len(parts) > depth:
            return root, kind
    return None


def databricks_storage(path: str) -> bool:
    """Whether `path` is DBFS or a Unity Catalog volume, with its mount present."""
    mount = _mount_of(path)
    return mount is not None and _mounted(mount[0])


def _remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def _listed(places: list[str]) -> str:
    return f"{'; '.join(places)} {'is' if len(places) == 1 else 'are'}"


class _Refusals:
    """The places a --databricks command would write that are not Databricks storage:
    local paths, and DBFS or volume paths whose mount is absent (off a cluster)."""

    def __init__(self) -> None:
        self.local: list[str] = []
        self.unmounted: dict[tuple[str, str], list[str]] = {}

    def check(self, label: str, shown: str, *, remote_ok: bool = False) -> None:
        if (remote_ok and _remote(shown)) or databricks_storage(shown):
            return
        mount = _mount_of(shown)
        if mount is None:
            self.local.append(f"{label} {shown}")
        else:
            self.unmounted.setdefault(mount, []).append(f"{label} {shown}")

    def message(self) -> str | None:
        parts = [
            # the path is right for Databricks; where the command runs is not
            f"{_listed(places)} on {kind}, but its mount {root} is not on this machine (it "
            f"is there on a Databricks cluster's nodes only), so this job would write to a "
            f"local folder {root}/...; run it on a Databricks cluster, or leave out "
            "--databricks"
            for (root, kind), places in self.unmounted.items()
        ]
        if self.local:
            parts.append(
                f"{_listed(self.local)} not Databricks storage, so this job would write to "
                "the local disk; write dbfs:/... or /Volumes/<catalog>/<schema>/<volume>/... "
                "in the config (on a Databricks cluster), or leave out --databricks"
            )
        return f"--databricks: {'; '.join(parts)}" if parts else None


def require_databricks(config: Config, *, warehouse: bool = True) -> None:
    """ConfigError, naming each place that is not Databricks storage, unless the lake
    (and with `warehouse`, the warehouse and every table's target) is Databricks storage
    (see the module's docstring). A DBFS or volume path whose mount is absent is named
    as such: the config is right, the machine is not a Databricks cluster. `extract`
    writes only the lake: it passes `warehouse=False`."""
    refusals = _Refusals()
    refusals.check("lake", config.resolve(config.lake))
    if warehouse:
        root = config.resolve(config.warehouse)
        refusals.check("warehouse", root, remote_ok=True)
        inside = normalize_path(root).rstrip("/") + "/"
        for table in config.tables:
            # a target under the warehouse is where the warehouse is; others on their own
            target = config.resolve_target(table.target)
            if not target.startswith(inside):
                refusals.check(f"{table.key}'s target", target, remote_ok=True)
    message = refusals.message()
    if message is not None:
        raise ConfigError(message, field="databricks")
