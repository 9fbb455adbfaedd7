"""A bare queue worker process for the scale tests: claim, complete, record each id.

    python -m tests.helpers.queue_worker STATE_URL OUT_FILE BATCH

Waits for a line on stdin (so that all workers start together), then claims BATCH jobs
at a time and completes them (one statement per claimed batch) until the queue is
empty; writes the ids it completed, one per line, to OUT_FILE.
"""

from __future__ import annotations

import os
import sys

from onceflow.state import open_store


def main(url: str, out: str, batch: int) -> None:
    store = open_store(url, migrate=False)
    store.queue.length()  # connect before the start signal
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    sys.stdin.readline()
    done: list[int] = []
    worker = f"scale-{os.getpid()}"
    while jobs := store.queue.claim(worker, limit=batch, lease_seconds=120):
        store.queue.complete_many(jobs)
        done += [job.id for job in jobs]
    with open(out, "w", encoding="ascii") as handle:
        handle.write("\n".join(str(i) for i in done))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
