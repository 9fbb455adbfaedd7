"""force-unlock: show who holds a pipeline's locks and release them on request."""

from __future__ import annotations

from collections.abc import Callable

from onceflow.config import Config
from onceflow.load import config_targets
from onceflow.state import LockRecord, Store, describe_lock, force_release, open_store


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
    and asks); with neither, nothing is released.
    """
    store = store or open_store(config.state_url)
    released = []
    for lock, stale in list_locks(config, store):
        if name and lock.name != name:
            continue
        if not yes and (confirm is None or not confirm(describe_lock(lock, stale))):
            continue
        if force_release(store, lock.name, lock) is not None:
            released.append(lock)
    return released
