"""Lake paths: the deterministic layout, and Databricks path normalisation.

A table's files live at <lake>/<source>/<table>/<yyyymm>/<dd>/<run_id>.parquet, each
beside its sidecar <run_id>_metadata.json; temp files carry TEMP_MARKER in their name.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from onceflow.locations import normalize_path, safe_component

TEMP_MARKER = ".onceflow-tmp-"
SIDECAR_SUFFIX = "_metadata.json"
#: The parts of an extracted file's path within the lake: <source>/<table>/<yyyymm>/<dd>/<file>.
LAYOUT_DEPTH = 5


def normalize_lake_path(path: str) -> str:
    """`dbfs:/x` -> `/dbfs/x`; Unity Catalog `/Volumes/c/s/v/...` and local paths unchanged."""
    return normalize_path(path)


def table_folder(lake: str, source: str, table: str) -> Path:
    """<lake>/<source>/<table>: where a table's extracted files live."""
    return Path(normalize_lake_path(lake)) / safe_component(source) / safe_component(table)


def output_path(lake: str, source: str, table: str, run_date: date, run_id: str) -> Path:
    """<lake>/<source>/<table>/<yyyymm>/<dd>/<run_id>.parquet"""
    return (
        table_folder(lake, source, table)
        / f"{run_date:%Y%m}"
        / f"{run_date:%d}"
        / f"{run_id}.parquet"
    )


def sidecar_name(data_name: str) -> str:
    """The name of a data file's sidecar: its stem (the name without its last suffix, as
    `Path.stem` takes it) and `_metadata.json`. On names, so that a scan of many files
    builds no Path per file."""
    dot = data_name.rfind(".")
    stem = data_name[:dot] if 0 < dot < len(data_name) - 1 else data_name
    return stem + SIDECAR_SUFFIX


def sidecar_path(data_path: Path) -> Path:
    """The metadata sidecar beside a data file: <run_id>_metadata.json."""
    return data_path.with_name(sidecar_name(data_path.name))


def temp_path(target: Path, token: str) -> Path:
    """A temp file beside `target`; the marker lets validate-consistency find leftovers."""
    return target.with_name(f"{target.name}{TEMP_MARKER}{token}")
