"""Which Parquet files a table has to load: from the extract layout, or any folder or glob.

From the extract layout only committed files count: the sidecar says complete and the data
file has the size the sidecar recorded. Temp files (`*.onceflow-tmp-*`) never count.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from onceflow.errors import LoadError
from onceflow.lake.atomic import file_checksum
from onceflow.lake.paths import TEMP_MARKER, normalize_lake_path, sidecar_path, table_folder
from onceflow.lake.sidecar import read_sidecar

log = logging.getLogger("onceflow.load")


@dataclass(frozen=True)
class SourceFile:
    """A committed Parquet file to load, with what its sidecar says about it."""

    path: str
    size: int
    modified_time: str
    checksum: str | None
    record_count: int | None = None
    run_id: str | None = None
    window_start: str | None = None
    window_end: str | None = None


def _window_key(f: SourceFile) -> tuple[datetime, str]:
    start = datetime.min.replace(tzinfo=UTC)
    if f.window_start:
        with contextlib.suppress(ValueError):
            start = datetime.fromisoformat(f.window_start).astimezone(UTC)
    return start, f.path


def _committed(path: Path) -> SourceFile | None:
    """The file as a SourceFile when its sidecar commits it, else None (with the reason)."""
    sidecar = read_sidecar(path)
    if sidecar is None or sidecar.get("extraction_complete") is not True:
        log.debug("%s: not committed (no complete sidecar); skipped", path)
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    if stat.st_size != sidecar.get("file_size_bytes"):
        log.warning(
            "%s: size %s differs from its sidecar (%s); not loaded",
            path,
            stat.st_size,
            sidecar.get("file_size_bytes"),
        )
        return None
    return SourceFile(
        path=str(path.absolute()),
        size=stat.st_size,
        modified_time=datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(),
        checksum=sidecar.get("checksum"),
        record_count=sidecar.get("record_count"),
        run_id=sidecar.get("run_id"),
        window_start=sidecar.get("window_start"),
        window_end=sidecar.get("window_end"),
    )


def discover_table_files(lake: str, source: str, table: str) -> list[SourceFile]:
    """The committed files of one extracted table, in window order."""
    root = table_folder(lake, source, table)
    if not root.is_dir():
        return []
    found = []
    for path in root.glob("*/*/*.parquet"):
        if TEMP_MARKER in path.name:
            continue
        committed = _committed(path)
        if committed is not None:
            found.append(committed)
    return sorted(found, key=_window_key)


def discover_path(pattern: str) -> list[SourceFile]:
    """Parquet files of a folder (recursively) or a glob, for standalone loads.

    A file with a sidecar must be committed by it; a file without one is taken as it is
    (its checksum is computed). Order: window order when sidecars say, else by path.
    """
    target = normalize_lake_path(pattern)
    if os.path.isdir(target):
        paths = [Path(p) for p in sorted(Path(target).rglob("*.parquet"))]
    elif os.path.isfile(target):
        paths = [Path(target)]
    else:
        paths = [Path(p) for p in sorted(glob.glob(target, recursive=True))]
        if not paths:
            raise LoadError(f"--path {pattern}: no Parquet files match")
    found = []
    for path in paths:
        if TEMP_MARKER in path.name or not path.is_file():
            continue
        if sidecar_path(path).exists():
            committed = _committed(path)
            if committed is not None:
                found.append(committed)
            continue
        stat = path.stat()
        found.append(
            SourceFile(
                path=str(path.resolve()),
                size=stat.st_size,
                modified_time=datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(),
                checksum=file_checksum(path),
            )
        )
    return sorted(found, key=_window_key)
