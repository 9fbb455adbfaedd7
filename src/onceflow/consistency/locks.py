"""force-unlock: show who holds a pipeline's locks and release them on request; and
`pipeline_at_rest`, the locks a maintenance command holds so that no run, extraction or
load of the pipeline goes on while it changes what they read and write."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from onceflow.config import Config
from onceflow.errors import LockError
from onceflow.load import config_targets, load_target, tracked_targets
from onceflow.state import Lease, LockRecord, Store, describe_lock, force_release, open_store


def config_lock_names(config: Config) -> list[str]:
    """The pipeline's lock and its config tables' load locks."""
    names = [config.pipeline_lock_name]
    names += [t.lock_name for t in config_targets(config)] if config.tables else []
    return names


def list_locks(config: Config, store: Store | None = None) -> list[tuple[LockRecord, str | None]]:
    """The locks of this pipeline and its tables, each with why it is stale (or None)."""
    store = store or open_store(config.state_url)
    wanted = set(config_lock_names(config))
    return [
        (lock, lock.stale_reason())
        for lock in store.locks.find()
        if lock.name in wanted
        or lock.name.startswith("load:")
        # the run locks of scheduled runs of this pipeline (`pipeline:<name>@<run id>`)
        or lock.name.startswith(f"{config.pipeline_lock_name}@")
    ]


def lock_name(config: Config, name: str, store: Store | None = None) -> str:
    """The lock `name` stands for: a lock's own name (as `status` shows it), or a
    table's key, name or target, bare or after `load:` (`shop.orders`, `orders`,
    `load:shop/orders`), for that table's load lock, `load:<its absolute location>`.
    Tables of `load --path` are looked up in `store`'s tracker. Anything else (an
    ambiguous name too) is returned as given."""
    if name in config_lock_names(config):
        return name
    table = name.removeprefix("load:")
    targets = [
        load_target(config, t) for t in config.tables if table in (t.key, t.display_name, t.target)
    ]
    if store is not None:
        tracked = tracked_targets(store, config.pipeline)
        targets += [t for t in tracked if table in (t.key, t.target)]
    found = {t.lock_name for t in targets}
    return found.pop() if len(found) == 1 else name


def force_unlock(
    config: Config,
    yes: bool = False,
    *,
    name: str | None = None,
    confirm: Callable[[str], bool] | None = None,
    store: Store | None = None,
) -> list[LockRecord]:
    """Release this pipeline's locks whoever holds them; returns the released holders.

    Without `yes`, `confirm(description)` is asked for each lock (the CLI shows the holder
    and asks); with neither, nothing is released. `name` releases only that lock: a
    lock's name or a table's (see `lock_name`); LockError, naming the locks held, when
    that lock is not held: releasing nothing is not what was asked (a typo, a lock
    already gone).
    """
    store = store or open_store(config.state_url)
    held = list_locks(config, store)
    if name:
        wanted = lock_name(config, name, store)
        if wanted not in [lock.name for lock, _ in held]:
            meant = f" ({wanted})" if wanted != name else ""
            names = ", ".join(lock.name for lock, _ in held)
            locks = f"the locks held: {names}" if held else "no locks are held"
            raise LockError(f"--name {name}{meant} is not held; {locks}", lock=wanted)
        name = wanted
    released = []
    for lock, stale in held:
        if name and lock.name != name:
            continue
        if not yes and (confirm is None or not confirm(describe_lock(lock, stale))):
            continue
        if force_release(store, lock.name, lock) is not None:
            released.append(lock)
    return released


def live_run_lock(store: Store, config: Config) -> LockRecord | None:
    """A live holder of one of the pipeline's run locks (`<pipeline lock>@<run id>`: a
    scheduled run holds only its own), if any."""
    for lock in store.locks.find():
        if lock.name.startswith(f"{config.pipeline_lock_name}@") and not lock.stale_reason():
            return lock
    return None


@contextmanager
def pipeline_at_rest(
    config: Config, store: Store, *, timeout: float = 0.0, tables: bool = False
) -> Iterator[Lease]:
    """Hold the pipeline lock while none of its run locks is live and, with `tables`,
    each of its tables' load locks: no run, extraction or load of the pipeline is going on
    or can start while the block runs. Waits up to `timeout` seconds for all of them, then
    LockError naming the holder.

    The pipeline lock comes first: a run takes it (or, scheduled, takes its run lock and
    then refuses to start while the pipeline lock is held), so a run lock seen free under
    it stays free. A standalone load (`load --path`) holds only its table's lock."""
    deadline = time.monotonic() + max(0.0, timeout)
    ttl = config.lock_ttl_seconds
    with ExitStack() as held:
        lease = held.enter_context(
            Lease(store, config.pipeline_lock_name, ttl=ttl, timeout=timeout)
        )
        while (running := live_run_lock(store, config)) is not None:
            if time.monotonic() >= deadline:
                raise LockError(
                    f"lock {running.name!r} is held by {running.describe()} (a run of this "
                    f"pipeline); waited {timeout:g}s. Retry later, raise --lock-timeout, or "
                    "run `onceflow force-unlock` if that process is gone",
                    lock=running.name,
                )
            time.sleep(min(0.5, max(0.01, deadline - time.monotonic())))
        if tables:
            targets = (
                config_targets(config) if config.tables else tracked_targets(store, config.pipeline)
            )
            for name in sorted({t.lock_name for t in targets}):
                left = max(0.0, deadline - time.monotonic())
                held.enter_context(Lease(store, name, ttl=ttl, timeout=left))
        yield lease
