"""Benchmark: the lake scan every `run` and `load` makes of every table (its whole folder).

    .venv/bin/python bench/scan.py --lake path/to/lake --source src   # a project's lake
    .venv/bin/python bench/scan.py --tables 20 --days 365             # a lake built here

Reports the median (and all) of `--repeats` in-process timings of `scan_table_files`
over every table folder of the source, and the files found. A built lake has one small
Parquet file and a sidecar (as the extractor writes it) per table and day, so the figure
is the scan's own cost, which grows with the number of files (docs/performance.md).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path


def build(lake: Path, tables: int, days: int) -> None:
    """`tables` tables of `days` daily extracts each, with complete sidecars."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from onceflow.lake import file_checksum, output_path, write_sidecar

    sample = lake / "sample.parquet"
    lake.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": list(range(100))}), sample)
    data, checksum, size = sample.read_bytes(), file_checksum(sample), sample.stat().st_size
    start = date(2025, 1, 1)
    for t in range(tables):
        for d in range(days):
            day = start + timedelta(days=d)
            path = output_path(str(lake), "src", f"public.t{t}", day, f"p_{day:%Y%m%d}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            write_sidecar(
                path,
                {
                    "extraction_complete": True,
                    "checksum": checksum,
                    "file_size_bytes": size,
                    "record_count": 100,
                    "run_id": path.stem,
                    "window_start": f"{day}T00:00:00+00:00",
                    "window_end": f"{day + timedelta(days=1)}T00:00:00+00:00",
                    "partial": False,
                },
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lake", help="an existing lake (else one is built)")
    parser.add_argument("--source", default="src")
    parser.add_argument("--tables", type=int, default=5)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from onceflow.lake import scan_table_files

    with tempfile.TemporaryDirectory() as tmp:
        lake = Path(args.lake) if args.lake else Path(tmp) / "lake"
        if not args.lake:
            build(lake, args.tables, args.days)
        names = sorted(p.name for p in (lake / args.source).iterdir() if p.is_dir())
        times, found = [], 0
        for _ in range(args.repeats):
            began = time.perf_counter()
            found = sum(len(scan_table_files(str(lake), args.source, n).files) for n in names)
            times.append(time.perf_counter() - began)
        shown = ", ".join(f"{t:.3f}" for t in times)
        print(
            f"{len(names)} tables, {found} files: median {statistics.median(times):.3f} s ({shown})"
        )


if __name__ == "__main__":
    main()
