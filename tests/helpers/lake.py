"""Lake and warehouse builders: extracted files with sidecars, configs, table checksums."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from onceflow.config import Config, config_from_dict
from onceflow.lake import file_checksum, output_path, write_sidecar
from onceflow.warehouse import read_table
from onceflow.warehouse.markers import TableMarkers
from onceflow.windows import window_for

START = date(2025, 1, 1)


def orders_batch(day: int, rows: int) -> pa.Table:
    """Rows of one day's extract: unique ids per day."""
    base = day * 100_000
    return pa.table(
        {
            "id": pa.array(range(base, base + rows), pa.int64()),
            "customer": pa.array([(base + i) % 97 for i in range(rows)], pa.int64()),
            "amount": pa.array([round((base + i) * 0.37 % 1000, 2) for i in range(rows)]),
            "label": pa.array([f"day{day}-row{i}-ü" for i in range(rows)]),
        }
    )


def write_extracted(
    lake: Path,
    table: pa.Table,
    *,
    day: int,
    source: str = "src",
    name: str = "orders",
    pipeline: str = "p",
    snapshot_at: str | None = None,
) -> Path:
    """Write `table` where the extractor would for day START+day, with a complete sidecar.

    The rows were read at `snapshot_at` (default: the end of the window), as the
    extractor records it: SCD2 versions without a business time start there.
    """
    run_date = START + timedelta(days=day)
    run_id = f"{pipeline}_{run_date:%Y%m%d}"
    path = output_path(str(lake), source, name, run_date, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    start, end = window_for(run_date, "UTC").iso()
    write_sidecar(
        path,
        {
            "extraction_complete": True,
            "checksum": file_checksum(path),
            "checksum_algorithm": "sha256",
            "file_size_bytes": path.stat().st_size,
            "record_count": table.num_rows,
            "run_id": run_id,
            "run_date": run_date.isoformat(),
            "window_start": start,
            "window_end": end,
            "snapshot_at": snapshot_at or end,
            "table_config": {},
            "schema": [],
        },
    )
    return path


def make_lake(lake: Path, files: int = 20, rows: int = 50, **kw: Any) -> list[Path]:
    """`files` daily extracts of the orders table."""
    return [write_extracted(lake, orders_batch(d, rows), day=d, **kw) for d in range(files)]


def config_dict(
    tmp_path: Path,
    load: dict[str, Any] | None = None,
    *,
    state: str | None = None,
    name: str = "orders",
) -> dict[str, Any]:
    return {
        "pipeline": "p",
        "state": state or f"sqlite:///{tmp_path / 'state.db'}",
        "lake": str(tmp_path / "lake"),
        "warehouse": str(tmp_path / "warehouse"),
        "sources": {"src": {"url": f"sqlite:///{tmp_path / 'src.db'}"}},
        "tables": [{"source": "src", "table": name, "load": load or {"strategy": "append"}}],
    }


def make_config(tmp_path: Path, load: dict[str, Any] | None = None, **kw: Any) -> Config:
    return config_from_dict(config_dict(tmp_path, load, **kw), base_dir=str(tmp_path))


def write_config(tmp_path: Path, load: dict[str, Any] | None = None, **kw: Any) -> Path:
    import yaml

    path = tmp_path / "onceflow.yml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path, load, **kw)), encoding="utf-8")
    return path


def table_uri(tmp_path: Path, name: str = "orders") -> str:
    return str(tmp_path / "warehouse" / "src" / name)


def content_checksum(uri: str, exclude: tuple[str, ...] = ("_load_timestamp",)) -> str:
    """sha256 over the table's sorted rows (columns sorted, `exclude` left out)."""
    table = read_table(uri)
    names = sorted(c for c in table.column_names if c not in exclude)
    rows = sorted(
        json.dumps([r[c] for c in names], default=str) for r in table.select(names).to_pylist()
    )
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def file_commits(uri: str) -> list[str]:
    """The onceflow.file of every commit in the table's history, oldest first."""
    from deltalake import DeltaTable

    return [h["onceflow.file"] for h in reversed(DeltaTable(uri).history()) if "onceflow.file" in h]


def data_version(uri: str) -> int:
    """The table's newest version that is not the commit recording its load settings
    (`SET TBLPROPERTIES`, onceflow.load.settings): the one its data is at."""
    from deltalake import DeltaTable

    history = DeltaTable(uri).history()
    return max(h["version"] for h in history if h.get("operation") != "SET TBLPROPERTIES")


def lake_ids(paths: list[Path], lake: Path | None = None) -> list[str]:
    """Lake file identities: paths below the lake folder (`<lake>` is paths[0]'s 5th parent)."""
    return [p.relative_to(lake or p.parents[4]).as_posix() for p in paths]


def done(counts: dict[str, int]) -> dict[str, int]:
    """A load's counts without the actions that did not happen."""
    return {action: n for action, n in counts.items() if n}


def clean_load_checksum(
    tmp_path: Path,
    lake: Path,
    load: dict[str, Any],
    exclude: tuple[str, ...] = ("_load_timestamp",),
) -> str:
    """The content checksum of a clean, in-order load of `lake` into a fresh table."""
    from onceflow.load import load as run_load

    fresh = tmp_path / "clean"
    data = config_dict(fresh, load)
    data["lake"] = str(lake)
    cfg = config_from_dict(data, base_dir=str(fresh))
    summary = run_load(cfg)
    assert summary.ok, summary.as_dict()
    return content_checksum(table_uri(fresh), exclude)


def undone_ids(markers: TableMarkers) -> list[str]:
    """The files a rewind took back (their transaction says 0) and no commit has applied
    again since: a replay in progress, which any load must finish."""
    return sorted(f for f, code in markers.held.items() if not code)
