"""Benchmark: durable priority job queue - onceflow vs. Procrastinate vs. PgQueuer.

Run from the repository root with the project venv::

    .venv/bin/python bench/queue.py --setup             # peers' venv (idempotent)
    .venv/bin/python bench/queue.py                     # everything, 3 repeats
    .venv/bin/python bench/queue.py --jobs 2000 --repeats 1 --workers 1,4 --no-write
    .venv/bin/python bench/queue.py --only onceflow_pg onceflow_sqlite   # merges
    .venv/bin/python bench/queue.py --only procrastinate --proc-concurrency 4 --workers 1,4
    .venv/bin/python bench/queue.py --render-only     # rewrite RESULTS.md from stored data

The peers live in their own venv, ``bench/.work/venv-queue`` (pinned in
``bench/requirements-queue.txt``, created by ``--setup`` from the same base python3
as ``.venv``); onceflow runs from ``.venv``.  Every measured process is a fresh child.

What is measured
----------------
Throughput ("claim-and-complete", drain strategy).  Per run: a new schema
``qbench_<hex>`` in database ``test``; a setup child installs the tool's schema and
enqueues N no-op jobs up front (enqueue time is reported on its own, not in the
throughput); ``ANALYZE`` and ``CHECKPOINT`` (same for every method, not timed); then
W worker *processes* start, connect, and report READY; the harness releases them all
at once and the run ends when the last worker has drained the queue and returned.
jobs/s = N / (last worker's return - release).  The schema is dropped afterwards.
This is PgQueuer's own ``tools/benchmark.py --strategy drain`` with processes instead
of coroutines, and Procrastinate's own benchmark (``batch_defer`` then
``run_worker(wait=False)``) with several workers.

* ``procrastinate`` 3.10, ``PsycopgConnector`` (psycopg 3 pool, its default pool
  settings), an ``async def`` no-op task, ``App.run_worker_async(concurrency=C,
  wait=False)`` - what ``procrastinate worker --one-shot --concurrency C`` runs - on
  the default asyncio loop, like its CLI.  Enqueue: ``Task.batch_defer_async`` in
  chunks of 1,000 (one ``procrastinate_defer_jobs_v1`` call per chunk).  Each fetch is
  ``procrastinate_fetch_job_v2``: ``ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP
  LOCKED`` + ``UPDATE``; completion is ``procrastinate_finish_job_v1``, one per job.
  Procrastinate 3.10 cannot fetch several jobs per query (``--concurrency`` runs C
  single-job fetch/run loops in one process), so batch 10 is not applicable; C > 1 is
  measured separately (``--proc-concurrency``).
* ``pgqueuer`` 1.6, asyncpg driver, one connection per worker (its tuning guide: a
  direct connection, not a pool, for the ``QueueManager``), ``QueueManager.run(
  batch_size=B, mode=drain)`` on uvloop (what ``pgq run`` does), ``durable`` tables
  (the default; logged, like the others) and ``pgq autovac`` applied (its production
  checklist).  Enqueue: ``Queries.enqueue`` with lists, chunks of 1,000.  Dequeue is
  one CTE: ``LIMIT B FOR UPDATE SKIP LOCKED`` + ``UPDATE ... status='picked'`` + a
  ``pgqueuer_log`` insert; completions are buffered and flushed as one DELETE + log
  INSERT per B jobs (or every 0.1 s); each batch's jobs run as concurrent asyncio
  tasks while the next dequeue is already under way.
* ``onceflow_pg`` / ``onceflow_sqlite``: ``run_onceflow`` - the ``store.queue`` API,
  one synchronous worker loop per process: ``claim(worker, limit=B, lease_seconds=60)``
  (one ``UPDATE ... WHERE id IN (SELECT ... ORDER BY priority, id LIMIT B FOR UPDATE
  SKIP LOCKED) RETURNING *`` statement on PostgreSQL, no BEGIN/COMMIT round trips; the
  same statement in one ``BEGIN IMMEDIATE`` transaction on SQLite); each next
  ``claim(..., complete=jobs)`` completes the batch just run (one fenced UPDATE of the
  claimed rows) and claims the next in one transaction: one commit per batch, durable
  (PgQueuer instead buffers completions for up to 0.1 s).  Enqueue: ``enqueue_many`` in
  chunks of 1,000.  Latency: ``listen()`` before
  READY, then ``claim`` / ``wait_for_jobs(1.0)`` (LISTEN/NOTIFY on PostgreSQL).

Exactly-once.  After every run, from the tool's own tables: Procrastinate - every job
``succeeded`` and exactly one ``started`` and one ``succeeded`` row per job in
``procrastinate_events`` (written by its triggers on every status change); PgQueuer -
the queue table is empty and ``pgqueuer_log`` has exactly one ``picked`` and one
``successful`` row per job (dequeue logs every pick).  Independently, each worker keeps
the ids its no-op ran (a list append, no I/O) and the harness checks that the union is
exactly the enqueued ids with no id run twice.  No side table is written.

Enqueue-to-start latency.  One idle worker (W=1, the tool's defaults: LISTEN/NOTIFY
on, Procrastinate's 5 s / PgQueuer's 30 s polling fallback) is started and left
listening; a separate enqueuer process enqueues one job at a time, 5 warm-up + S
samples, 50-100 ms apart (random); the job records ``time.time()`` as its first
statement; latency = job start - ``time.time()`` just before the enqueue call (so it
includes the enqueue's own round trip and commit, reported separately).  Both
processes are on this machine, same clock.  Latencies far below the polling
intervals show that NOTIFY, not polling, woke the worker.

Fairness.  Same PostgreSQL, same N, same W, same no-op, fresh schema per run, methods
interleaved (order rotated every repeat), medians over repeats.  The machine has 2
cores and is shared/noisy: W=4/8 worker processes plus their PostgreSQL backends
oversubscribe it, so W>2 shows contention behaviour, not scaling; the 1-minute load
average before each run, the machine's busy share during it and the workers' own CPU
time are recorded.  Other sessions share the machine: before each run the harness waits
(``--quiet-wait``) until other processes use < 0.1 core and no other PostgreSQL client
is active, measures the CPU that other processes used during the run, marks runs where
that exceeded 0.15 core as disturbed (re-measured once if the machine is quiet again,
left out of medians unless all runs were) and reports paired ratios of the peers run back
to back in the same repeat, which drift less than either median.

Results go to the ``## Queue`` section of ``bench/RESULTS.md`` with the raw runs embedded
as JSON; ``--only``/``--workers``/... runs merge into it by configuration (``--append``
adds repeats instead of replacing them), ``--render-only`` rewrites it from that data.
Hand-written observations sit below the section's end marker and are not touched.
"""

from __future__ import annotations

import sys

if __name__ == "queue":  # pragma: no cover - only when imported by accident
    # Every bench script has bench/ as sys.path[0], so a plain ``import queue`` in them
    # (concurrent.futures, logging.handlers, psycopg_pool, ...) finds this file before
    # the standard library.  Hand the importer the real module instead; the rest of
    # this file only defines functions, so running it as "queue" is harmless.
    import importlib.util as _ilu
    import os as _os
    import sysconfig as _sysconfig

    _spec = _ilu.spec_from_file_location(
        "queue", _os.path.join(_sysconfig.get_path("stdlib"), "queue.py")
    )
    assert _spec is not None and _spec.loader is not None
    _std = _ilu.module_from_spec(_spec)
    sys.modules["queue"] = _std
    _spec.loader.exec_module(_std)

import argparse
import contextlib
import hashlib
import json
import os
import random
import select
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"
VENV_DIR = WORK_DIR / "venv-queue"
PEER_PY = VENV_DIR / "bin" / "python"
REQUIREMENTS = BENCH_DIR / "requirements-queue.txt"
PROJECT_PY = REPO_DIR / ".venv" / "bin" / "python"

ENQUEUE_CHUNK = 1_000
LATENCY_WARMUP = 5
LATENCY_GAP_S = (0.05, 0.10)
PEER_PACKAGES = ["procrastinate", "pgqueuer", "psycopg", "psycopg-pool", "asyncpg", "uvloop"]

# method -> (label, backend, child python)
METHODS: dict[str, tuple[str, str]] = {
    "procrastinate": ("Procrastinate", "postgres"),
    "pgqueuer": ("PgQueuer", "postgres"),
    "onceflow_pg": ("onceflow", "postgres"),
    "onceflow_sqlite": ("onceflow", "sqlite"),
}
ONCEFLOW_MISSING_EXIT = 3


# =================================================================== child processes
# python bench/queue.py --child KIND --spec SPEC.json
# A child imports only what its tool needs; results go to spec["result"] as JSON.


def _conninfo(spec: dict[str, Any]) -> str:
    """libpq key/value conninfo with the run's schema first on the search_path."""
    return (
        f"host={spec['pg_host']} port={spec['pg_port']} user={spec['pg_user']} "
        f"dbname={spec['pg_db']} options=-csearch_path={spec['schema']}"
    )


def _ready() -> None:
    sys.stdout.write("READY\n")
    sys.stdout.flush()


def _ready_and_wait_go() -> float:
    """Tell the harness we are connected; block until it releases all workers."""
    _ready()
    if sys.stdin.readline().strip() != "GO":
        raise SystemExit("the harness went away before GO")
    return time.time()


def _write_result(spec: dict[str, Any], data: dict[str, Any]) -> None:
    Path(spec["result"]).write_text(json.dumps(data))


async def _enqueue_samples(spec: dict[str, Any], enqueue_one: Callable[[int], Any]) -> None:
    """Latency enqueuer: one job at a time, 50-100 ms apart, times around each call."""
    import asyncio

    rng = random.Random(spec.get("seed", 0))
    calls: list[tuple[int, float, float]] = []
    for i in range(spec["total"]):
        t0 = time.time()
        await enqueue_one(i)
        calls.append((i, t0, time.time()))
        await asyncio.sleep(rng.uniform(*LATENCY_GAP_S))
    _write_result(spec, {"calls": calls})


# --- Procrastinate ------------------------------------------------------------------


def _proc_app(spec: dict[str, Any]) -> Any:
    import procrastinate

    # psycopg_pool's default is 4 connections; with --concurrency C an expert gives the
    # pool at least C + 1 (C fetch/finish loops, plus headroom for heartbeats).
    size = max(4, spec.get("concurrency", 1) + 1)
    connector = procrastinate.PsycopgConnector(conninfo=_conninfo(spec), max_size=size)
    return procrastinate.App(connector=connector)


def child_procrastinate(kind: str, spec: dict[str, Any]) -> None:
    import asyncio

    app = _proc_app(spec)
    ids: list[int] = []
    starts: dict[int, float] = {}
    all_started = asyncio.Event()

    if kind in ("setup", "enqueuer"):

        @app.task(name="noop")
        async def noop(i: int = 0) -> None:  # never run here
            return None

    else:

        @app.task(name="noop", pass_context=True)
        async def noop(context: Any, i: int = -1) -> None:
            if i >= 0:  # latency sample
                starts[i] = time.time()
                if len(starts) >= spec["total"]:
                    all_started.set()
            else:
                ids.append(context.job.id)

    async def main() -> None:
        async with app.open_async():
            if kind == "setup":
                await app.schema_manager.apply_schema_async()
                t0 = time.perf_counter()
                n = spec["jobs"]
                for lo in range(0, n, ENQUEUE_CHUNK):
                    await noop.batch_defer_async(*[{} for _ in range(min(ENQUEUE_CHUNK, n - lo))])
                _write_result(spec, {"enqueue_s": time.perf_counter() - t0})
            elif kind == "worker":
                t_go = _ready_and_wait_go()
                await app.run_worker_async(concurrency=spec["concurrency"], wait=False)
                t_end = time.time()
                _write_result(spec, {"t_go": t_go, "t_end": t_end, "ids": ids})
            elif kind == "latency_worker":
                worker = asyncio.create_task(app.run_worker_async(concurrency=1))
                await asyncio.sleep(1.5)  # registered and LISTENing
                _ready()
                await asyncio.wait_for(all_started.wait(), spec["timeout_s"])
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
                _write_result(spec, {"starts": starts})
            elif kind == "enqueuer":
                await _enqueue_samples(spec, lambda i: noop.defer_async(i=i))

    asyncio.run(main())


# --- PgQueuer -----------------------------------------------------------------------


async def _pgq_connect(spec: dict[str, Any]) -> Any:
    import asyncpg

    return await asyncpg.connect(
        host=spec["pg_host"],
        port=spec["pg_port"],
        user=spec["pg_user"],
        database=spec["pg_db"],
        server_settings={"search_path": spec["schema"]},
    )


def child_pgqueuer(kind: str, spec: dict[str, Any]) -> None:
    import asyncio

    import uvloop
    from pgqueuer import AsyncpgDriver, Queries, QueueManager
    from pgqueuer.types import QueueExecutionMode

    async def main() -> None:
        conn = await _pgq_connect(spec)
        queries = Queries(AsyncpgDriver(conn))
        try:
            if kind == "setup":
                await queries.install()
                await queries.optimize_autovacuum()  # `pgq autovac`
                t0 = time.perf_counter()
                n = spec["jobs"]
                for lo in range(0, n, ENQUEUE_CHUNK):
                    k = min(ENQUEUE_CHUNK, n - lo)
                    await queries.enqueue(["noop"] * k, [None] * k, [0] * k)
                _write_result(spec, {"enqueue_s": time.perf_counter() - t0})
            elif kind == "worker":
                ids: list[int] = []
                qm = QueueManager(queries)

                @qm.entrypoint("noop")
                async def noop(job: Any) -> None:
                    ids.append(job.id)

                t_go = _ready_and_wait_go()
                await qm.run(batch_size=spec["batch"], mode=QueueExecutionMode.drain)
                t_end = time.time()
                _write_result(spec, {"t_go": t_go, "t_end": t_end, "ids": ids})
            elif kind == "latency_worker":
                starts: dict[int, float] = {}
                qm = QueueManager(queries)

                @qm.entrypoint("noop")
                async def sample(job: Any) -> None:
                    starts[int(job.payload)] = time.time()
                    if len(starts) >= spec["total"]:
                        qm.shutdown.set()

                async def announce() -> None:
                    await asyncio.sleep(1.5)  # LISTENing
                    _ready()

                ready_task = asyncio.create_task(announce())
                await asyncio.wait_for(qm.run(), spec["timeout_s"])  # its defaults
                await ready_task
                _write_result(spec, {"starts": starts})
            elif kind == "enqueuer":
                await _enqueue_samples(spec, lambda i: queries.enqueue("noop", str(i).encode(), 0))
        finally:
            await conn.close()

    uvloop.run(main())


# --- onceflow -----------------------------------------------------------------------
# Keep these calls thin: the queue API is not final.  Everything onceflow-specific is in
# _onceflow_api() and child_onceflow().


class OnceflowQueueMissing(Exception):
    pass


def _onceflow_api(url: str) -> tuple[Any, Any]:
    """Return (store, JobSpec), or raise OnceflowQueueMissing with the reason."""
    try:
        from onceflow.state import open_store
    except ImportError as exc:
        raise OnceflowQueueMissing(f"cannot import onceflow.state: {exc}") from None
    try:
        from onceflow.state import JobSpec
    except ImportError:
        try:
            from onceflow.state.queue import JobSpec
        except ImportError:
            raise OnceflowQueueMissing("onceflow.state has no JobSpec (no queue yet)") from None
    store = open_store(url)
    if getattr(store, "queue", None) is None:
        raise OnceflowQueueMissing("onceflow.state stores have no .queue yet")
    return store, JobSpec


def _job_index(job: Any) -> int:
    payload = getattr(job, "payload", None) or {}
    return int(payload["i"])


def child_onceflow(kind: str, spec: dict[str, Any]) -> None:
    try:
        store, job_spec = _onceflow_api(spec["url"])
    except OnceflowQueueMissing as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(ONCEFLOW_MISSING_EXIT) from None
    q = store.queue
    if kind == "probe":
        _write_result(spec, {"ok": True})
    elif kind == "setup":
        t0 = time.perf_counter()
        n = spec["jobs"]
        for lo in range(0, n, ENQUEUE_CHUNK):
            q.enqueue_many(
                [
                    job_spec(pipeline="bench", payload={"i": i}, priority=5)
                    for i in range(lo, min(n, lo + ENQUEUE_CHUNK))
                ]
            )
        _write_result(spec, {"enqueue_s": time.perf_counter() - t0})
    elif kind == "worker":
        worker_id = f"bench-{os.getpid()}"
        ids: list[Any] = []
        q.length()  # connected before READY, like the peers
        t_go = _ready_and_wait_go()
        # each claim completes the batch before it in the same transaction: one commit
        # (one WAL flush) per batch; the last call completes the last batch, claims none
        jobs = q.claim(worker_id, limit=spec["batch"], lease_seconds=60)
        while jobs:
            ids.extend(job.id for job in jobs)  # the no-ops
            jobs = q.claim(worker_id, limit=spec["batch"], lease_seconds=60, complete=jobs)
        t_end = time.time()
        _write_result(spec, {"t_go": t_go, "t_end": t_end, "ids": ids})
    elif kind == "latency_worker":
        worker_id = f"bench-{os.getpid()}"
        starts: dict[int, float] = {}
        deadline = time.time() + spec["timeout_s"]
        q.claim(worker_id, limit=1, lease_seconds=60)  # warm the connection
        q.listen()  # LISTEN before READY: no wake-up between claim and wait is missed
        _ready()
        while len(starts) < spec["total"] and time.time() < deadline:
            jobs = q.claim(worker_id, limit=1, lease_seconds=60)
            if not jobs:
                q.wait_for_jobs(1.0)
                continue
            for job in jobs:
                starts[_job_index(job)] = time.time()
                q.complete(job.id, job.token)
        _write_result(spec, {"starts": starts})
    elif kind == "enqueuer":
        rng = random.Random(spec.get("seed", 0))
        calls: list[tuple[int, float, float]] = []
        for i in range(spec["total"]):
            t0 = time.time()
            q.enqueue_many([job_spec(pipeline="bench", payload={"i": i}, priority=5)])
            calls.append((i, t0, time.time()))
            time.sleep(rng.uniform(*LATENCY_GAP_S))
        _write_result(spec, {"calls": calls})


def child_main(kind: str, spec_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    tool = spec["tool"]
    if tool == "procrastinate":
        child_procrastinate(kind, spec)
    elif tool == "pgqueuer":
        child_pgqueuer(kind, spec)
    elif tool == "onceflow":
        child_onceflow(kind, spec)
    else:
        raise SystemExit(f"unknown tool {tool}")
    return 0


# ======================================================================= orchestrator


def setup_venv(force: bool = False) -> None:
    """Create bench/.work/venv-queue with the pinned peers (idempotent)."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = VENV_DIR / ".requirements.sha256"
    if not force and PEER_PY.exists() and stamp.exists() and stamp.read_text() == digest:
        print(f"{VENV_DIR} is up to date")
        return
    base = getattr(sys, "_base_executable", sys.executable)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    if not PEER_PY.exists():
        print(f"creating {VENV_DIR} from {base}", flush=True)
        subprocess.run([base, "-m", "venv", str(VENV_DIR)], check=True)
    subprocess.run(
        [str(PEER_PY), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)], check=True
    )
    subprocess.run(
        [str(PEER_PY), "-c", "import procrastinate, pgqueuer, asyncpg, uvloop, psycopg_pool"],
        check=True,
    )
    stamp.write_text(digest)
    print(f"{VENV_DIR} ready")


def peer_versions() -> dict[str, str]:
    code = (
        "import json; from importlib import metadata as m\n"
        f"print(json.dumps({{p: m.version(p) for p in {PEER_PACKAGES!r}}}))"
    )
    out = subprocess.run([str(PEER_PY), "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


class Ctx:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        import common

        self.args = args
        self.tmp = tmp
        self.common = common
        self.timeout_s = args.timeout
        self.seq = 0

    def spec(self, tool: str, schema: str, **extra: Any) -> dict[str, Any]:
        c = self.common
        self.seq += 1
        return {
            "tool": tool,
            "schema": schema,
            "pg_host": c.PG_HOST,
            "pg_port": c.PG_PORT,
            "pg_user": c.PG_USER,
            "pg_db": c.PG_DB,
            "result": str(self.tmp / f"result_{self.seq}.json"),
            **extra,
        }


def _python_for(tool: str) -> str:
    if tool == "onceflow":
        return str(PROJECT_PY if PROJECT_PY.exists() else Path(sys.executable))
    return str(PEER_PY)


class Child:
    """One child process (own session), stdin/stdout pipes for READY/GO, stderr to file."""

    def __init__(self, ctx: Ctx, kind: str, spec: dict[str, Any]) -> None:
        spec_path = Path(spec["result"]).with_suffix(".spec.json")
        spec_path.write_text(json.dumps(spec))
        self.spec = spec
        self.err_path = spec_path.with_suffix(".stderr")
        self.err_f = open(self.err_path, "wb")  # noqa: SIM115 - closed in poll()
        script = str(Path(__file__).resolve())
        self.proc = subprocess.Popen(
            [_python_for(spec["tool"]), script, "--child", kind, "--spec", str(spec_path)],
            cwd=REPO_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err_f,
            start_new_session=True,
        )
        self.returncode: int | None = None
        self.cpu_s = 0.0

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def poll(self) -> bool:
        if self.returncode is not None:
            return True
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.returncode = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.returncode
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self.err_f.close()
        return True

    def error(self) -> str:
        text = self.err_path.read_text(errors="replace").strip()
        lines = [ln for ln in text.splitlines() if ln.strip()]
        return f"exit {self.returncode}: " + " | ".join(lines[-3:])[:500]

    def result(self) -> dict[str, Any]:
        return dict(json.loads(Path(self.spec["result"]).read_text()))


def wait_ready(children: list[Child], timeout_s: float) -> None:
    pending = {c.proc.stdout.fileno(): c for c in children if c.proc.stdout}
    deadline = time.monotonic() + timeout_s
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError("workers did not report READY in time")
        readable, _, _ = select.select(list(pending), [], [], min(left, 0.5))
        for fd in readable:
            child = pending.pop(fd)
            assert child.proc.stdout is not None
            line = child.proc.stdout.readline().decode().strip()
            if line != "READY":
                child.poll()
                raise RuntimeError(f"worker failed before READY: {child.error()}")
        for child in pending.values():
            if child.poll():
                raise RuntimeError(f"worker died before READY: {child.error()}")


def wait_all(children: list[Child], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(c.poll() for c in children):
        if time.monotonic() > deadline:
            for c in children:
                c.kill()
            for c in children:
                while not c.poll():
                    time.sleep(0.01)
            raise RuntimeError(f"timeout after {timeout_s:.0f}s")
        time.sleep(0.05)
    bad = [c for c in children if c.returncode != 0]
    if bad:
        raise RuntimeError(bad[0].error())


def run_one(ctx: Ctx, kind: str, spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    child = Child(ctx, kind, spec)
    try:
        wait_all([child], timeout_s)
    finally:
        child.kill()
    return child.result()


# --- PostgreSQL side ----------------------------------------------------------------


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return total - idle, total


CLK_TCK = os.sysconf("SC_CLK_TCK")
QUIET_CORES = 0.10  # "quiet": other processes used < 10 % of one core over 1 s
DISTURBED_CORES = 0.15  # a run during which others used more is re-measured once


def _proc_cpu() -> dict[int, tuple[str, int]]:
    """pid -> (comm, utime+stime+cutime+cstime ticks) for every process."""
    out: dict[int, tuple[str, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path("/proc", entry.name, "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()  # fields[0] is stat field 3
        out[int(entry.name)] = (
            raw[raw.index("(") + 1 : raw.rindex(")")],
            sum(map(int, fields[11:15])),
        )
    return out


class CpuWatch:
    """CPU used between start and stop by: the whole machine, PostgreSQL processes, and
    processes that are neither ours nor PostgreSQL's (another session's tests, say).
    Exited children are counted through their parent's cutime/cstime."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.procs0 = _proc_cpu()
        self.ticks0 = _cpu_ticks()

    def stop(self, mine: set[int]) -> dict[str, float]:
        procs1, ticks1 = _proc_cpu(), _cpu_ticks()
        dt = max(1e-3, time.monotonic() - self.t0)
        foreign = pg = 0
        mine = mine | {os.getpid()}
        for pid, (comm, ticks) in procs1.items():
            if pid in mine:
                continue
            comm0, ticks0 = self.procs0.get(pid, (comm, 0))
            delta = ticks - (ticks0 if comm0 == comm else 0)
            if comm.startswith("postgres"):
                pg += delta
            else:
                foreign += delta
        busy = ticks1[0] - self.ticks0[0]
        total = max(1, ticks1[1] - self.ticks0[1])
        return {
            "foreign_cores": foreign / CLK_TCK / dt,
            "pg_cores": pg / CLK_TCK / dt,
            "machine_busy_pct": 100.0 * busy / total,
        }


def wait_quiet(conn: Any, max_wait_s: float) -> float:
    """Wait (up to max_wait_s) until no other process uses the CPU and no other client
    is active in PostgreSQL; return the seconds waited."""
    waited = 0.0
    while True:
        watch = CpuWatch()
        time.sleep(1.0)
        st = watch.stop(set())
        busy_clients = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND state <> 'idle' AND pid <> pg_backend_pid()"
        ).fetchone()[0]
        quiet = st["foreign_cores"] < QUIET_CORES and st["pg_cores"] < QUIET_CORES
        if (quiet and not busy_clients) or waited >= max_wait_s:
            if waited:
                print(f"(waited {waited:.0f}s{'' if quiet else ', still busy'})", end=" ")
            return waited
        time.sleep(4.0)
        waited += 5.0


def pg_counters(conn: Any) -> tuple[int, str, int]:
    """(commits in this database, current WAL position, WAL flushes server-wide)."""
    row = conn.execute(
        "SELECT d.xact_commit, pg_current_wal_lsn()::text, w.wal_sync "
        "FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = current_database()"
    ).fetchone()
    return int(row[0]), str(row[1]), int(row[2])


def verify_procrastinate(conn: Any, s: str, n: int) -> tuple[dict[str, int], set[int]]:
    statuses = dict(
        conn.execute(f"SELECT status::text, count(*) FROM {s}.procrastinate_jobs GROUP BY 1")
    )
    events = {
        t: (int(a), int(b))
        for t, a, b in conn.execute(
            f"SELECT type::text, count(*), count(DISTINCT job_id) FROM {s}.procrastinate_events "
            "WHERE type IN ('started', 'succeeded') GROUP BY 1"
        )
    }
    started, started_jobs = events.get("started", (0, 0))
    done, done_jobs = events.get("succeeded", (0, 0))
    ids = {int(r[0]) for r in conn.execute(f"SELECT id FROM {s}.procrastinate_jobs")}
    return {
        "jobs": len(ids),
        "completed": int(statuses.get("succeeded", 0)),
        "not_completed": sum(int(v) for k, v in statuses.items() if k != "succeeded"),
        "claims": started,
        "claimed_jobs": started_jobs,
        "completions": done,
        "completed_jobs": done_jobs,
    }, ids


def verify_pgqueuer(conn: Any, s: str, n: int) -> tuple[dict[str, int], set[int]]:
    left = conn.execute(f"SELECT count(*) FROM {s}.pgqueuer").fetchone()[0]
    rows = {
        t: (int(a), int(b))
        for t, a, b in conn.execute(
            f"SELECT status::text, count(*), count(DISTINCT job_id) FROM {s}.pgqueuer_log "
            "GROUP BY 1"
        )
    }
    ids = {
        int(r[0])
        for r in conn.execute(f"SELECT job_id FROM {s}.pgqueuer_log WHERE status = 'queued'")
    }
    picked, picked_jobs = rows.get("picked", (0, 0))
    done, done_jobs = rows.get("successful", (0, 0))
    failed = sum(a for k, (a, _) in rows.items() if k not in ("queued", "picked", "successful"))
    return {
        "jobs": len(ids),
        "completed": done_jobs,
        "not_completed": int(left) + failed,
        "claims": picked,
        "claimed_jobs": picked_jobs,
        "completions": done,
        "completed_jobs": done_jobs,
    }, ids


def verify_onceflow(rows: Any, ids: set[int]) -> tuple[dict[str, int], set[int]]:
    """From onceflow's own ``jobs`` table: (count, completed, sum of claims, claimed)."""
    jobs, completed, claims, claimed = (int(x or 0) for x in rows)
    return {
        "jobs": jobs,
        "completed": completed,
        "not_completed": jobs - completed,
        "claims": claims,
        "claimed_jobs": claimed,
        # a completion is a fenced update of a claimed row: at most one per claim
        "completions": completed,
        "completed_jobs": completed,
    }, ids


_ONCEFLOW_COUNTS = (
    "SELECT count(*), sum(CASE WHEN state = 'completed' THEN 1 ELSE 0 END), sum(attempts), "
    "sum(CASE WHEN attempts > 0 THEN 1 ELSE 0 END) FROM {}jobs"
)


def verify_onceflow_pg(conn: Any, s: str, n: int) -> tuple[dict[str, int], set[int]]:
    rows = conn.execute(_ONCEFLOW_COUNTS.format(f"{s}.")).fetchone()
    ids = {int(r[0]) for r in conn.execute(f"SELECT id FROM {s}.jobs")}
    return verify_onceflow(rows, ids)


def verify_onceflow_sqlite(path: Path, n: int) -> tuple[dict[str, int], set[int]]:
    import sqlite3

    db = sqlite3.connect(path)
    try:
        rows = db.execute(_ONCEFLOW_COUNTS.format("")).fetchone()
        ids = {int(r[0]) for r in db.execute("SELECT id FROM jobs")}
    finally:
        db.close()
    return verify_onceflow(rows, ids)


def check_exactly_once(
    n: int, db: dict[str, int] | None, db_ids: set[int] | None, ran: list[Any]
) -> dict[str, Any]:
    """Combine the tool's own bookkeeping with the ids the workers' no-ops saw."""
    uniq = set(ran)
    out: dict[str, Any] = {
        "ran": len(ran),
        "ran_twice": len(ran) - len(uniq),
        "missing": n - len(uniq),
    }
    problems = []
    if out["ran_twice"]:
        problems.append(f"{out['ran_twice']} ids ran twice")
    if len(uniq) != n:
        problems.append(f"{len(uniq)} distinct ids ran, expected {n}")
    if db is not None:
        out["db"] = db
        out["double_claims"] = db["claims"] - db["claimed_jobs"]
        if db["jobs"] != n:
            problems.append(f"{db['jobs']} jobs in the table, expected {n}")
        if db["claims"] != n or db["claimed_jobs"] != n:
            problems.append(f"{db['claims']} claims of {db['claimed_jobs']} jobs")
        if db["completions"] != n or db["completed_jobs"] != n or db["not_completed"]:
            problems.append(
                f"{db['completions']} completions of {db['completed_jobs']} jobs, "
                f"{db['not_completed']} not completed"
            )
    if db_ids is not None and db_ids != {int(x) for x in uniq}:
        problems.append("ids run differ from ids enqueued")
    out["double_claims"] = max(out.get("double_claims", 0), out["ran_twice"])
    out["ok"] = not problems
    out["problems"] = problems
    return out


# --- one throughput run -------------------------------------------------------------


class Skip(Exception):
    pass


def _tool(method: str) -> str:
    return "onceflow" if method.startswith("onceflow") else method


def _store_url(ctx: Ctx, method: str, schema: str) -> str:
    if method == "onceflow_sqlite":
        return f"sqlite:///{ctx.tmp / schema / 'state.db'}"
    c = ctx.common
    return (
        f"postgresql://{c.PG_USER}@{c.PG_HOST}:{c.PG_PORT}/{c.PG_DB}"
        f"?options=-csearch_path%3D{schema}"
    )


def run_throughput(
    ctx: Ctx, method: str, workers: int, batch: int, concurrency: int
) -> dict[str, Any]:
    common = ctx.common
    tool = _tool(method)
    schema = common.new_schema_name("qbench")
    n = ctx.args.jobs
    children: list[Child] = []
    conn = common.pg_connect()
    try:
        common.create_schema(conn, schema)
        extra: dict[str, Any] = {"url": _store_url(ctx, method, schema)}
        setup = run_one(ctx, "setup", ctx.spec(tool, schema, jobs=n, **extra), ctx.timeout_s)
        s = f'"{schema}"'
        if method == "procrastinate":
            conn.execute(f"ANALYZE {s}.procrastinate_jobs")
        elif method == "pgqueuer":
            conn.execute(f"ANALYZE {s}.pgqueuer")
        elif method == "onceflow_pg":
            for (table,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
            ).fetchall():
                conn.execute(f'ANALYZE {s}."{table}"')
        with contextlib.suppress(Exception):
            conn.execute("CHECKPOINT")
        quiet_wait = wait_quiet(conn, ctx.args.quiet_wait)
        load1 = os.getloadavg()[0]
        for w in range(workers):
            spec = ctx.spec(tool, schema, batch=batch, concurrency=concurrency, index=w, **extra)
            children.append(Child(ctx, "worker", spec))
        wait_ready(children, 120)
        xact0, lsn0, sync0 = pg_counters(conn)
        watch = CpuWatch()
        t_release = time.time()
        for c in children:
            assert c.proc.stdin is not None
            c.proc.stdin.write(b"GO\n")
            c.proc.stdin.close()
        wait_all(children, ctx.timeout_s)
        cpu = watch.stop({c.proc.pid for c in children})
        results = [c.result() for c in children]
        t_end = max(r["t_end"] for r in results)
        time.sleep(0.6)  # let the exited backends' statistics arrive
        xact1, lsn1, sync1 = pg_counters(conn)
        wal = conn.execute("SELECT pg_wal_lsn_diff(%s, %s)", (lsn1, lsn0)).fetchone()[0]
        elapsed = t_end - t_release
        ran = [i for r in results for i in r["ids"]]
        db: dict[str, int] | None = None
        db_ids: set[int] | None = None
        if method == "procrastinate":
            db, db_ids = verify_procrastinate(conn, s, n)
        elif method == "pgqueuer":
            db, db_ids = verify_pgqueuer(conn, s, n)
        elif method == "onceflow_pg":
            db, db_ids = verify_onceflow_pg(conn, s, n)
        elif method == "onceflow_sqlite":
            db, db_ids = verify_onceflow_sqlite(ctx.tmp / schema / "state.db", n)
        return {
            "jobs": n,
            "elapsed_s": elapsed,
            "jobs_s": n / elapsed,
            "enqueue_s": setup["enqueue_s"],
            "start_spread_s": max(r["t_go"] for r in results) - t_release,
            "per_worker": [len(r["ids"]) for r in results],
            "worker_cpu_s": sum(c.cpu_s for c in children),
            **cpu,
            "disturbed": cpu["foreign_cores"] > DISTURBED_CORES,
            "quiet_wait_s": quiet_wait,
            "commits_per_job": (xact1 - xact0) / n,
            "wal_bytes_per_job": float(wal) / n,
            "wal_syncs_per_job": (sync1 - sync0) / n,
            "load1_before": load1,
            "check": check_exactly_once(n, db, db_ids, ran),
        }
    finally:
        for c in children:
            c.kill()
            with contextlib.suppress(Exception):
                c.poll()
        conn.close()
        common.drop_schema(schema)
        shutil.rmtree(ctx.tmp / schema, ignore_errors=True)


def run_latency(ctx: Ctx, method: str) -> dict[str, Any]:
    common = ctx.common
    tool = _tool(method)
    schema = common.new_schema_name("qbench")
    samples = ctx.args.latency_samples
    total = LATENCY_WARMUP + samples
    timeout = total * 0.1 + 120
    worker: Child | None = None
    try:
        with common.pg_connect() as conn:
            common.create_schema(conn, schema)
        extra = {"url": _store_url(ctx, method, schema)}
        run_one(ctx, "setup", ctx.spec(tool, schema, jobs=0, **extra), ctx.timeout_s)
        with common.pg_connect() as conn:
            quiet_wait = wait_quiet(conn, ctx.args.quiet_wait)
        watch = CpuWatch()
        worker = Child(
            ctx, "latency_worker", ctx.spec(tool, schema, total=total, timeout_s=timeout, **extra)
        )
        wait_ready([worker], 60)
        seed = random.randrange(1 << 30)
        enq = run_one(
            ctx, "enqueuer", ctx.spec(tool, schema, total=total, seed=seed, **extra), timeout
        )
        wait_all([worker], 60)
        cpu = watch.stop({worker.proc.pid})
        starts = {int(k): v for k, v in worker.result()["starts"].items()}
        lat, call = [], []
        for i, t0, t1 in enq["calls"]:
            if i < LATENCY_WARMUP:
                continue
            if i in starts:
                lat.append((starts[i] - t0) * 1000)
            call.append((t1 - t0) * 1000)
        return {
            "samples": len(lat),
            "lost": samples - len(lat),
            "latency_ms": lat,
            "median_ms": statistics.median(lat),
            "p95_ms": _pct(lat, 95),
            "max_ms": max(lat),
            "enqueue_call_median_ms": statistics.median(call),
            "foreign_cores": cpu["foreign_cores"],
            "disturbed": cpu["foreign_cores"] > DISTURBED_CORES,
            "quiet_wait_s": quiet_wait,
        }
    finally:
        if worker is not None:
            worker.kill()
            with contextlib.suppress(Exception):
                worker.poll()
        common.drop_schema(schema)
        shutil.rmtree(ctx.tmp / schema, ignore_errors=True)


def _pct(values: list[float], p: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


# --- the run matrix -----------------------------------------------------------------


def tkey(method: str, workers: int, batch: int, concurrency: int = 1) -> str:
    return f"{method}|w{workers}|b{batch}|c{concurrency}"


def parse_tkey(key: str) -> tuple[str, int, int, int]:
    method, w, b, c = key.split("|")
    return method, int(w[1:]), int(b[1:]), int(c[1:])


def probe_onceflow(ctx: Ctx) -> str | None:
    """None when onceflow has a queue; otherwise the reason to skip it."""
    tmp = Path(tempfile.mkdtemp(dir=ctx.tmp))
    spec = ctx.spec("onceflow", "probe", url=f"sqlite:///{tmp / 'state.db'}")
    child = Child(ctx, "probe", spec)
    try:
        wait_all([child], 120)
        return None
    except RuntimeError:
        if child.returncode == ONCEFLOW_MISSING_EXIT:
            text = child.err_path.read_text(errors="replace").strip().splitlines()
            return text[-1] if text else "onceflow has no queue yet"
        return f"onceflow probe failed: {child.error()}"
    finally:
        child.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def run_onceflow(
    ctx: Ctx, plan: list[tuple[int, int]], repeat: int, results: dict[str, Any]
) -> None:
    """The onceflow hook: SQLite and PostgreSQL x W x batch, one repeat.

    Kept apart from the peers so it is easy to adapt when the queue API lands; the
    measured calls are in child_onceflow().  Skips (with the reason) while
    ``onceflow.state`` has no queue.
    """
    for method in ("onceflow_pg", "onceflow_sqlite"):
        if method not in ctx.args.only or method in results["skipped"]:
            continue
        for workers, batch in plan:
            _measure(ctx, method, workers, batch, 1, repeat, results)


def _measure(
    ctx: Ctx, method: str, workers: int, batch: int, conc: int, repeat: int, results: dict[str, Any]
) -> None:
    key = tkey(method, workers, batch, conc)
    for attempt in range(2):  # a run disturbed by other processes is measured once more
        label = f"[r{repeat + 1}] {method:16s} W={workers} batch={batch} c={conc}"
        print(f"{label} ...", end=" ", flush=True)
        try:
            run = run_throughput(ctx, method, workers, batch, conc)
        except Exception as exc:
            print(f"FAILED: {exc}", flush=True)
            results["errors"].append(f"{label}: {exc}")
            return
        run["repeat"] = repeat
        results["throughput"].setdefault(key, []).append(run)
        chk = run["check"]
        print(
            f"{run['jobs_s']:7.0f} jobs/s ({run['elapsed_s']:.2f}s, enqueue "
            f"{run['enqueue_s']:.2f}s, busy {run['machine_busy_pct']:.0f}%, others "
            f"{run['foreign_cores']:.2f} cores, start spread {run['start_spread_s'] * 1000:.0f} "
            f"ms, per worker {run['per_worker']}) exactly-once: "
            f"{'ok' if chk['ok'] else 'FAILED ' + '; '.join(chk['problems'])}"
            f"{' DISTURBED' if run['disturbed'] else ''}",
            flush=True,
        )
        if not run["disturbed"] or attempt or not _quiet_now():
            return


def _quiet_now() -> bool:
    """Re-measuring a disturbed run only helps if the others have stopped."""
    watch = CpuWatch()
    time.sleep(1.0)
    return watch.stop(set())["foreign_cores"] < QUIET_CORES


def _latency(ctx: Ctx, method: str, repeat: int, results: dict[str, Any]) -> None:
    for attempt in range(2):
        print(f"[r{repeat + 1}] {method:16s} latency ...", end=" ", flush=True)
        try:
            run = run_latency(ctx, method)
        except Exception as exc:
            print(f"FAILED: {exc}", flush=True)
            results["errors"].append(f"[r{repeat + 1}] {method} latency: {exc}")
            return
        run["repeat"] = repeat
        results["latency"].setdefault(method, []).append(run)
        print(
            f"median {run['median_ms']:.1f} ms, p95 {run['p95_ms']:.1f} ms "
            f"({run['samples']} samples, {run['lost']} lost, others "
            f"{run['foreign_cores']:.2f} cores){' DISTURBED' if run['disturbed'] else ''}",
            flush=True,
        )
        if not run["disturbed"] or attempt or not _quiet_now():
            return


def run_all(ctx: Ctx) -> dict[str, Any]:
    args = ctx.args
    results: dict[str, Any] = {"throughput": {}, "latency": {}, "skipped": {}, "errors": []}
    if any(m.startswith("onceflow") for m in args.only):
        reason = probe_onceflow(ctx)
        if reason:
            print(f"skipping onceflow: {reason}", flush=True)
            for m in ("onceflow_pg", "onceflow_sqlite"):
                if m in args.only:
                    results["skipped"][m] = reason
    plan = [(w, b) for w in args.workers for b in args.batch]
    peers = [m for m in ("procrastinate", "pgqueuer") if m in args.only]
    for repeat in range(args.repeats):
        order = peers[repeat % max(1, len(peers)) :] + peers[: repeat % max(1, len(peers))]
        for workers, batch in plan:
            for method in order:
                if method == "procrastinate":
                    if batch != 1:
                        continue  # no multi-job fetch: not applicable
                    for conc in args.proc_concurrency:
                        _measure(ctx, method, workers, 1, conc, repeat, results)
                else:
                    _measure(ctx, method, workers, batch, 1, repeat, results)
        run_onceflow(ctx, plan, repeat, results)
        if args.latency_samples > 0:
            lat_methods = [
                *order,
                *(m for m in ("onceflow_pg", "onceflow_sqlite") if m in args.only),
            ]
            for method in lat_methods:
                if method in results["skipped"]:
                    continue
                _latency(ctx, method, repeat, results)
    return results


# ========================================================================= reporting


def _clean(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs no other process disturbed (all of them if every run was disturbed)."""
    return [r for r in runs if not r.get("disturbed")] or runs


def _med(runs: list[dict[str, Any]], field: str) -> float:
    return statistics.median(r[field] for r in _clean(runs))


def _fmt_rate(runs: list[dict[str, Any]]) -> str:
    rates = sorted(r["jobs_s"] for r in _clean(runs))
    med = statistics.median(rates)
    if len(rates) == 1:
        return f"{med:,.0f}"
    return f"**{med:,.0f}** ({rates[0]:,.0f}-{rates[-1]:,.0f})"


ALGORITHMS = """\
How each one claims (from the installed sources, not from their docs):

- **Procrastinate 3.10**: `procrastinate_fetch_job_v2()` - a CTE picks `ORDER BY
  priority DESC, id ASC LIMIT 1 FOR UPDATE SKIP LOCKED` (with a NOT EXISTS check for
  job `lock`s), then `UPDATE ... SET status='doing'`; an `AFTER UPDATE` trigger inserts a
  `started` row into `procrastinate_events`.  Completion is `procrastinate_finish_job_v1()`
  (status `succeeded` + another events row).  One job per query: `--concurrency C` runs C
  independent fetch loops in one process, so "batch 10" does not exist for it.  Every
  pooled query also pays psycopg_pool's connection check (`check_connection`), which
  Procrastinate always enables.  New jobs: an `AFTER INSERT` row trigger sends
  `pg_notify('procrastinate_any_queue_v1', ...)`; the worker LISTENs on its own
  connection (`listen_notify=True` by default), polls every 5 s as a fallback.
- **PgQueuer 1.6**: one dequeue statement: `LIMIT B FOR UPDATE SKIP LOCKED` on the
  `(entrypoint, priority DESC, id)` partial index, plus a second branch that re-picks
  `picked` jobs whose heartbeat is stale, `UPDATE ... status='picked'` and an insert of
  every pick into `pgqueuer_log`, all in one round trip.  Jobs of a batch run as
  concurrent asyncio tasks while the loop already dequeues again (no in-process cap by
  default); completions go into a buffer flushed every B jobs or 0.1 s as one
  `DELETE ... RETURNING` + `pgqueuer_log` insert.  A statement-level trigger on the queue
  table `pg_notify`s `ch_pgqueuer` on every INSERT/UPDATE/DELETE, so every dequeue and
  every flush wakes all listening workers; the worker LISTENs on the same asyncpg
  connection and polls after 30 s without a notification.
- **onceflow**: `store.queue.claim(worker_id, limit=B, lease_seconds=60)` - one
  statement, `WITH picked AS (SELECT id ... WHERE state='queued' AND run_after <= now
  ORDER BY priority, id LIMIT B FOR UPDATE SKIP LOCKED) UPDATE jobs SET state='claimed',
  token=..., lease_expires_at=... WHERE id IN (SELECT id FROM picked) RETURNING *` on the
  `(priority, id) WHERE state='queued'` partial index, sent on an autocommit connection
  (no BEGIN/COMMIT round trips); on SQLite the same statement in one `BEGIN IMMEDIATE`
  transaction.  Completion: the next `claim(..., complete=jobs)` runs `UPDATE ... SET
  state='completed' WHERE state='claimed' AND token=? AND id IN (...) RETURNING id` for
  the batch just run, then the claim, in one transaction (BEGIN, 2 statements, COMMIT:
  one WAL flush per batch); every completion is fenced by the claim's token and a batch
  with a lost lease completes nothing.  No events table: a job row
  keeps its claim count (`attempts`), worker, token and times.  Enqueue sends
  `pg_notify('onceflow_jobs')` in its transaction; an idle worker LISTENs on its own
  connection (`wait_for_jobs`), on SQLite it watches `PRAGMA data_version` every 5 ms.
"""


def render(data: dict[str, Any]) -> str:
    meta = data["meta"]
    thr: dict[str, list[dict[str, Any]]] = data["throughput"]
    lat: dict[str, list[dict[str, Any]]] = data["latency"]
    skipped = {m: r.removeprefix("onceflow: ") for m, r in data.get("skipped", {}).items()}
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    made = "; ".join(
        f"`bench/queue.py {m['argv']}` on {m['date']} UTC ({m['duration_min']:.0f} min)"
        for m in data.get("history", [meta])
    )
    lines = [
        "## Queue",
        "",
        f"Generated by {made}.",
        f"Machine: {meta['machine']}; {meta['pg_version']} on 127.0.0.1 (same machine, "
        "default settings: synchronous_commit on, shared_buffers 128MB).",
        f"Versions: {versions}.",
        "",
        f"Throughput: N={meta['jobs']:,} no-op jobs enqueued up front, W worker processes "
        "released together, jobs/s = N / (last worker returned - release); median of the "
        "undisturbed runs (min-max; every run is listed in the next table), methods "
        "interleaved, fresh schema per run. "
        "This box has 2 cores: W=4 and W=8 oversubscribe it (workers + their PostgreSQL "
        "backends), so those columns show behaviour under contention, not scaling. Before "
        "each run the harness waits (up to `--quiet-wait` s) until other processes use < 0.1 "
        "core and no other PostgreSQL client is active.",
        "",
    ]
    methods = sorted({parse_tkey(k)[0] for k in thr}, key=list(METHODS).index)
    workers = sorted({parse_tkey(k)[1] for k in thr})
    rows = []
    for method in methods:
        for batch in sorted({parse_tkey(k)[2] for k in thr if parse_tkey(k)[0] == method}):
            concs = sorted(
                {parse_tkey(k)[3] for k in thr if parse_tkey(k)[:3:2] == (method, batch)}
            )
            for conc in concs:
                label, backend = METHODS[method]
                name = f"{label} ({backend})"
                if method == "procrastinate":
                    name += f", concurrency {conc}"
                cells = []
                for w in workers:
                    runs = thr.get(tkey(method, w, batch, conc))
                    cells.append(_fmt_rate(runs) if runs else "-")
                rows.append([name, batch, *cells])
            if method == "procrastinate":
                rows.append([f"{METHODS[method][0]} (postgres)", 10, *(["n/a"] * len(workers))])
    for method in skipped:
        label, backend = METHODS[method]
        rows.append([f"{label} ({backend})", "1, 10", *(["skipped"] * len(workers))])
    common = _common()
    lines += [
        "### Claim-and-complete throughput, jobs/s",
        "",
        common.md_table(["method", "batch", *(f"W={w}" for w in workers)], rows),
        "",
        "Procrastinate batch 10: n/a - 3.10 fetches exactly one job per query (see below).",
        *(f"{METHODS[m][0]} ({METHODS[m][1]}) skipped: {reason}." for m, reason in skipped.items()),
        "",
    ]
    all_runs = [r for runs in thr.values() for r in runs]
    n_dist = sum(1 for r in all_runs if r.get("disturbed"))
    if n_dist:
        lines += [
            f"**{n_dist} of {len(all_runs)} throughput runs were disturbed** by other "
            'processes on this shared machine (other sessions\' test suites; see "others" '
            "below); where every run of a configuration was disturbed, its median is of all "
            "of them. Treat single figures as rough; the paired ratios below hold up better.",
            "",
        ]
    # paired ratios: the two peers ran back to back in each repeat, so their ratio is
    # less exposed to slow drifts of the machine's load than either median
    prows = []
    for w in workers:
        base = {r["repeat"]: r for r in thr.get(tkey("procrastinate", w, 1), [])}
        for b in (1, 10):
            pairs = [
                r["jobs_s"] / base[r["repeat"]]["jobs_s"]
                for r in thr.get(tkey("pgqueuer", w, b), [])
                if r["repeat"] in base
            ]
            if pairs:
                prows.append(
                    [
                        w,
                        b,
                        f"{statistics.median(pairs):.2f}",
                        " ".join(f"{x:.2f}" for x in pairs),
                    ]
                )
    crows = []
    for w in workers:
        base = {r["repeat"]: r for r in thr.get(tkey("procrastinate", w, 1), [])}
        for c in sorted({parse_tkey(k)[3] for k in thr if parse_tkey(k)[0] == "procrastinate"}):
            if c == 1:
                continue
            pairs = [
                r["jobs_s"] / base[r["repeat"]]["jobs_s"]
                for r in thr.get(tkey("procrastinate", w, 1, c), [])
                if r["repeat"] in base
            ]
            if pairs:
                crows.append(
                    [w, c, f"{statistics.median(pairs):.2f}", " ".join(f"{x:.2f}" for x in pairs)]
                )
    if prows:
        lines += [
            "### Paired ratio PgQueuer / Procrastinate (concurrency 1, batch 1)",
            "",
            "Same repeat, run back to back (all runs, disturbed or not): less sensitive to "
            "the machine's changing load than the medians above.",
            "",
            common.md_table(["W", "PgQueuer batch", "median ratio", "per repeat"], prows),
            "",
        ]
    if crows:
        lines += [
            "Procrastinate `--concurrency C` against concurrency 1, same W, same repeat:",
            "",
            common.md_table(["W", "concurrency", "median ratio", "per repeat"], crows),
            "",
        ]
    # details
    drows = []
    for key in sorted(
        thr, key=lambda k: (list(METHODS).index(parse_tkey(k)[0]), parse_tkey(k)[1:])
    ):
        runs = thr[key]
        method, w, b, c = parse_tkey(key)
        drows.append(
            [
                f"{METHODS[method][0]} ({METHODS[method][1]})" + (f" c={c}" if c != 1 else ""),
                w,
                b,
                " ".join(f"{r['jobs_s']:,.0f}{'*' if r.get('disturbed') else ''}" for r in runs),
                f"{_med(runs, 'enqueue_s'):.2f}",
                f"{1e6 * statistics.median(r['worker_cpu_s'] / r['jobs'] for r in runs):.0f}",
                f"{_med(runs, 'machine_busy_pct'):.0f}",
                f"{_med(runs, 'foreign_cores'):.2f}",
                f"{_med(runs, 'commits_per_job'):.2f}",
                f"{_med(runs, 'wal_bytes_per_job'):,.0f}",
                f"{_med(runs, 'wal_syncs_per_job'):.2f}",
                f"{_med(runs, 'load1_before'):.1f}",
            ]
        )
    lines += [
        "### Where the time goes (medians per configuration)",
        "",
        "enqueue s = N jobs enqueued in chunks of 1,000 in one process (Procrastinate "
        "`batch_defer_async`, PgQueuer `enqueue` with lists, onceflow `enqueue_many`), not "
        "part of the throughput; worker CPU = user+sys of all worker processes / N; busy = "
        "whole machine (both cores, PostgreSQL included) during the run; others = CPU used "
        "during the run by processes that are neither the workers nor PostgreSQL (another "
        "session's tests, say; a run above 0.15 cores is marked * in the runs column, left out "
        "of the medians unless every run was, and measured once more if the machine is quiet "
        "again); commits/job, "
        "WAL/job and WAL flushes (fsyncs)/job from `pg_stat_database`, "
        "`pg_current_wal_lsn()` and `pg_stat_wal` (database- or server-wide, so other "
        "activity on the shared server would show up here).",
        "",
        common.md_table(
            [
                "method",
                "W",
                "batch",
                "runs jobs/s",
                "enqueue s",
                "worker CPU µs/job",
                "machine busy %",
                "others, cores",
                "commits/job",
                "WAL bytes/job",
                "WAL flushes/job",
                "load1 before",
            ],
            drows,
        ),
        "",
    ]
    # exactly once
    erows = []
    for method in methods:
        keys = [k for k in thr if parse_tkey(k)[0] == method]
        runs = [r for k in keys for r in thr[k]]
        ok = sum(1 for r in runs if r["check"]["ok"])
        dbl = sum(r["check"]["double_claims"] for r in runs)
        missing = sum(max(0, r["check"]["missing"]) for r in runs)
        problems = sorted({p for r in runs for p in r["check"]["problems"]})
        erows.append(
            [
                f"{METHODS[method][0]} ({METHODS[method][1]})",
                f"{ok}/{len(runs)}",
                sum(r["jobs"] for r in runs),
                dbl,
                missing,
                "; ".join(problems) or "-",
            ]
        )
    lines += [
        "### Exactly-once",
        "",
        "Per run: the tool's own tables (Procrastinate: every job `succeeded`, exactly one "
        "`started` and one `succeeded` row per job in `procrastinate_events`; PgQueuer: queue "
        "table empty, exactly one `picked` and one `successful` row per job in "
        "`pgqueuer_log`) and, independently, the ids the workers' no-ops ran (no id twice, "
        "union = the enqueued ids); onceflow: every row of `jobs` `completed`, claimed "
        "exactly once (`attempts` = 1), plus the workers' ids likewise.",
        "",
        common.md_table(
            ["method", "runs verified", "jobs checked", "double claims", "lost jobs", "problems"],
            erows,
        ),
        "",
    ]
    # latency
    if lat:
        first = next(iter(lat.values()))[0]
        per_run = first["samples"] + first["lost"]
        lrows = []
        for method in [m for m in METHODS if m in lat]:
            runs = _clean(lat[method])
            pooled = [x for r in runs for x in r["latency_ms"]]
            lrows.append(
                [
                    f"{METHODS[method][0]} ({METHODS[method][1]})",
                    len(pooled),
                    f"{statistics.median(pooled):.1f}",
                    f"{_pct(pooled, 95):.1f}",
                    f"{max(pooled):.1f}",
                    " ".join(f"{r['median_ms']:.1f}" for r in runs),
                    " ".join(f"{r['p95_ms']:.1f}" for r in runs),
                    f"{_med(runs, 'enqueue_call_median_ms'):.1f}",
                    sum(r["lost"] for r in runs),
                ]
            )
        lines += [
            "### Enqueue-to-start latency, one idle worker (W=1), ms",
            "",
            f"{per_run} samples per run after {LATENCY_WARMUP} warm-ups, "
            "50-100 ms apart, one job per enqueue call from a separate process; latency = job "
            "start (`time.time()` in the job) - `time.time()` before the enqueue call, so it "
            "includes that call (its median is shown). Each tool with its defaults: "
            "LISTEN/NOTIFY on; polling fallback 5 s (Procrastinate) / 30 s (PgQueuer), so "
            "medians in milliseconds mean NOTIFY woke the worker.",
            "",
            common.md_table(
                [
                    "method",
                    "samples",
                    "median",
                    "p95",
                    "max",
                    "per-run medians",
                    "per-run p95",
                    "enqueue call",
                    "lost",
                ],
                lrows,
            ),
            "",
        ]
    # goals
    lines += ["### onceflow against its goals", ""]
    for method in ("onceflow_pg", "onceflow_sqlite"):
        if method in skipped:
            lines.append(
                f"- {METHODS[method][0]} ({METHODS[method][1]}): not measured - {skipped[method]}."
            )
    for w in workers:
        for b in sorted({parse_tkey(k)[2] for k in thr}):
            peers = [
                _med(thr[tkey(m, w, b)], "jobs_s")
                for m in ("procrastinate", "pgqueuer")
                if tkey(m, w, b) in thr
            ]
            of = thr.get(tkey("onceflow_pg", w, b))
            if peers and of:
                best = max(peers)
                mine = _med(of, "jobs_s")
                verdict = "met" if mine >= best else "NOT met"
                lines.append(
                    f"- PostgreSQL W={w} batch={b}: onceflow {mine:,.0f} vs faster peer "
                    f"{best:,.0f} jobs/s: **{verdict}**"
                )
    if "onceflow_pg" in lat:
        pooled = [x for r in _clean(lat["onceflow_pg"]) for x in r["latency_ms"]]
        med = statistics.median(pooled)
        lines.append(
            f"- median enqueue-to-start on PostgreSQL {med:.1f} ms (goal < 100 ms): "
            f"**{'met' if med < 100 else 'NOT met'}**"
        )
    lines.append("- zero double claims: see the exactly-once table.")
    lines += ["", ALGORITHMS]
    if data.get("errors"):
        lines += ["### Failed runs", "", *(f"- {e}" for e in data["errors"]), ""]
    return "\n".join(lines)


def _common() -> Any:
    import common

    return common


def merge_old(new: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Keep earlier figures of whatever this run did not measure (``--only`` and
    partial ``--workers``/``--batch``/``--proc-concurrency`` runs merge)."""
    old = _common().read_section_data("queue")
    if not old or args.no_merge:
        new["history"] = [new["meta"]]
        return new
    new["history"] = [*old.get("history", []), new["meta"]]
    if args.append:  # add this run's repeats to the earlier ones, numbered after them
        old_runs = [
            r
            for group in ("throughput", "latency")
            for runs in old.get(group, {}).values()
            for r in runs
        ]
        offset = 1 + max((r["repeat"] for r in old_runs), default=-1)
        for group in ("throughput", "latency"):
            for key, runs in new[group].items():
                for r in runs:
                    r["repeat"] += offset
                new[group][key] = old.get(group, {}).get(key, []) + runs
    for key, runs in old.get("throughput", {}).items():
        new["throughput"].setdefault(key, runs)
    for method, runs in old.get("latency", {}).items():
        new["latency"].setdefault(method, runs)
    for method, reason in old.get("skipped", {}).items():
        if method not in args.only:
            new["skipped"].setdefault(method, reason)
    return new


# ============================================================================== main


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    p.add_argument("--jobs", type=int, default=20_000, help="jobs per throughput run")
    p.add_argument("--workers", type=_int_list, default=[1, 4, 8], help="e.g. 1,4,8")
    p.add_argument("--batch", type=_int_list, default=[1, 10], help="e.g. 1,10")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--only",
        nargs="*",
        default=list(METHODS),
        choices=list(METHODS),
        help="methods to measure (others keep their earlier figures in RESULTS.md)",
    )
    p.add_argument(
        "--proc-concurrency",
        type=_int_list,
        default=[1],
        help="Procrastinate --concurrency values to measure (default 1)",
    )
    p.add_argument("--latency-samples", type=int, default=100, help="0 = no latency runs")
    p.add_argument("--timeout", type=float, default=900, help="seconds per child run")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=600,
        help="max seconds to wait before each run for other processes to go quiet",
    )
    p.add_argument("--setup", action="store_true", help="create/refresh the peers' venv, exit")
    p.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    p.add_argument("--no-merge", action="store_true", help="drop earlier figures")
    p.add_argument(
        "--append",
        action="store_true",
        help="add this run's repeats to the stored ones instead of replacing them",
    )
    p.add_argument(
        "--render-only", action="store_true", help="rewrite the section from its stored data"
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args.child, args.spec)
    if args.setup:
        setup_venv()
        return 0
    if args.render_only:
        sys.path.append(str(BENCH_DIR))
        import common

        data = common.read_section_data("queue")
        if not data:
            sys.exit("no ## Queue data in RESULTS.md yet")
        common.write_section("queue", render(data), data)
        print(f"re-rendered the Queue section of {common.RESULTS_MD}")
        return 0
    if any(m in args.only for m in ("procrastinate", "pgqueuer")) and not PEER_PY.exists():
        sys.exit(f"{VENV_DIR} missing: run `.venv/bin/python bench/queue.py --setup` first")
    # bench/ must not shadow the standard library's queue module for our imports
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]
    sys.path.append(str(BENCH_DIR))
    import common

    signal.signal(signal.SIGTERM, _sigterm)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="queue_", dir=WORK_DIR))
    started = time.time()
    try:
        ctx = Ctx(args, tmp)
        with common.pg_connect() as conn:
            pg_version = f"PostgreSQL {common.server_version(conn)}"
        versions = peer_versions() if PEER_PY.exists() else {}
        versions.update(common.package_versions(["onceflow"]))
        results = run_all(ctx)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["meta"] = {
        "argv": " ".join(argv),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "duration_min": (time.time() - started) / 60,
        "machine": common.machine_note(),
        "pg_version": pg_version,
        "versions": versions,
        "jobs": args.jobs,
        "repeats": args.repeats,
        "latency_samples": args.latency_samples,
    }
    data = merge_old(results, args)
    body = render(data)
    print()
    print(body)
    if not args.no_write:
        common.write_section("queue", body, data)
        print(f"\nupdated {common.RESULTS_MD}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
