"""The metadata sidecar: the commit marker of an extracted file, and its verification."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onceflow.lake.atomic import file_checksum, fsync_dir, write_bytes_atomic
from onceflow.lake.paths import sidecar_path

PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class Verdict:
    """Whether an existing extraction can be skipped, and why not if it cannot."""

    complete: bool
    reason: str
    sidecar: dict[str, Any] | None = None


def read_sidecar(data_path: Path) -> dict[str, Any] | None:
    """The sidecar of a data file, or None when missing or unreadable."""
    return inspect_sidecar(data_path)[0]


def inspect_sidecar(data_path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(content, None) for a readable sidecar; (None, None) when there is none; (None,
    why) when one is there but cannot be read.

    A sidecar is written atomically (temp file, fsync, rename), so one at its own name is
    never half-written: an unreadable one was damaged after its extraction, it is not an
    extraction in progress (that has no sidecar yet, or only a temp file).
    """
    return inspect_sidecar_file(sidecar_path(data_path))


def inspect_sidecar_file(sidecar: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """`inspect_sidecar`, given the sidecar's own path (a scan knows it without a Path)."""
    try:
        with open(sidecar, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None, None
    except OSError as error:
        return None, f"cannot be read ({error.strerror})"
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError alike
        return None, f"is not valid JSON ({error})"
    if not isinstance(data, dict):
        return None, "is not a JSON object"
    return data, None


def write_sidecar(data_path: Path, content: dict[str, Any]) -> None:
    """Write the sidecar atomically; once it is on disk the extraction is committed."""
    text = json.dumps(content, indent=2, sort_keys=True, default=str)
    write_bytes_atomic(sidecar_path(data_path), text.encode("utf-8"))


def remove_sidecar(data_path: Path) -> None:
    """Un-commit an extraction before its data file is replaced.

    The removal is made durable before the data file is touched: otherwise a power loss
    could bring back the old sidecar beside a new file of the same size.
    """
    path = sidecar_path(data_path)
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fsync_dir(path.parent)


def _has_parquet_footer(path: Path, size: int) -> bool:
    if size < 12:
        return False
    with open(path, "rb") as handle:
        head = handle.read(4)
        handle.seek(size - 4)
        return head == PARQUET_MAGIC and handle.read(4) == PARQUET_MAGIC


# The table_config fields that decide which rows a file holds; others are informational.
SELECTION_FIELDS = ("table", "query", "mode", "cursor")


def verify(
    data_path: Path,
    run_id: str,
    window: tuple[str, str],
    *,
    deep: bool = False,
    table_config: dict[str, Any] | None = None,
) -> Verdict:
    """Check a committed extraction: complete sidecar, same run, window and rows, file intact."""
    sidecar = read_sidecar(data_path)
    if sidecar is None:
        exists = sidecar_path(data_path).exists()
        return Verdict(False, "sidecar unreadable" if exists else "no sidecar")
    if sidecar.get("extraction_complete") is not True:
        return Verdict(False, "sidecar says incomplete", sidecar)
    if sidecar.get("run_id") != run_id:
        return Verdict(False, "sidecar belongs to another run id", sidecar)
    if (sidecar.get("window_start"), sidecar.get("window_end")) != window:
        return Verdict(False, "window differs from this run's window", sidecar)
    if table_config is not None:
        recorded = sidecar.get("table_config") or {}
        if any(recorded.get(f) != table_config.get(f) for f in SELECTION_FIELDS):
            return Verdict(False, "table config (table, query, mode or cursor) changed", sidecar)
    try:
        size = data_path.stat().st_size
    except OSError:
        return Verdict(False, "data file missing", sidecar)
    if size != sidecar.get("file_size_bytes"):
        return Verdict(False, f"file size {size} differs from sidecar", sidecar)
    try:
        if not _has_parquet_footer(data_path, size):
            return Verdict(False, "data file is not a complete Parquet file", sidecar)
        if deep and file_checksum(data_path) != sidecar.get("checksum"):
            return Verdict(False, "checksum differs from sidecar", sidecar)
    except OSError as error:
        return Verdict(False, f"data file unreadable: {error.strerror}", sidecar)
    return Verdict(True, "complete", sidecar)
