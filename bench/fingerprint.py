"""Benchmark: the fingerprint of data in memory against a full validation of it.

    .venv/bin/python bench/fingerprint.py                 # 10M rows, 5 repeats
    .venv/bin/python bench/fingerprint.py --rows 1000000 --repeats 3

The table is bench/validate.py's `events` (10 columns, ~1.07 GB in Arrow at 10M rows),
built in memory; the rules are its 15 checks (the referential one against `customers`
in memory). Reported, as the median of the repeats: the hash of a new table object (what
an equal table built again costs), the same object again (hashed again: see
docs/validate.md), a full validation (`resume=False`, hash included) and a rerun
served from the cache on an equal table built again (its hash included). A busy
machine shows in the spread: compare minima.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import validate as bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import pyarrow as pa

    from onceflow import Validator
    from onceflow.validate.arrow_hash import memory_fingerprint, table_hash

    events = bench.generate_events(args.rows)
    customers = bench.generate_customers()
    print(f"{args.rows:,} rows, {events.nbytes / 1e6:,.0f} MB in Arrow")

    def timed(fn: object) -> float:
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        return time.perf_counter() - started

    hashes = [timed(lambda: table_hash(events)) for _ in range(args.repeats)]
    copies = [pa.Table.from_batches(events.to_batches()) for _ in range(args.repeats)]
    fresh = [timed(lambda t=t: memory_fingerprint(t)) for t in copies]  # new objects
    again = [timed(lambda: memory_fingerprint(copies[0])) for _ in range(args.repeats)]
    with tempfile.TemporaryDirectory() as folder:
        validator = Validator(
            rules_by_table={"events": bench.rules(args.rows)},
            state=f"sqlite:///{folder}/state.db",
            references={"customers": customers},
            samples=0,
        )
        full = [
            timed(lambda: validator.validate_table(events, "events", resume=False))
            for _ in range(args.repeats)
        ]
        # equal tables not hashed yet: what a program that builds its data again pays
        others = [pa.Table.from_batches(events.to_batches()) for _ in range(args.repeats)]
        cached = [timed(lambda t=t: validator.validate_table(t, "events")) for t in others]
    for name, times in (
        ("table_hash", hashes),
        ("fingerprint, new object", fresh),
        ("fingerprint, same object", again),
        ("full validation", full),
        ("rerun from the cache (equal table)", cached),
    ):
        print(f"{name:36} median {statistics.median(times):.3f} s  (min {min(times):.3f})")
    share = statistics.median(hashes) / statistics.median(full)
    print(f"hash / full validation: {share:.0%} (medians), {min(hashes) / min(full):.0%} (minima)")


if __name__ == "__main__":
    main()
