"""A validation keeps the collector off the objects made before it, and puts them back."""

from __future__ import annotations

import gc
import threading

from onceflow.validate.heap import old_objects_frozen


def test_old_objects_are_frozen_during_the_block_and_back_after() -> None:
    assert gc.get_freeze_count() == 0
    before = [[] for _ in range(3)]  # noqa: F841 - tracked objects to freeze
    with old_objects_frozen():
        frozen = gc.get_freeze_count()
        assert frozen > 0
        # A second freeze would take these in too. The count may only fall meanwhile:
        # a frozen object freed (by another thread of the test runner) leaves it.
        newer = [[] for _ in range(1000)]  # noqa: F841
        with old_objects_frozen():  # nested: still one freeze
            assert gc.get_freeze_count() <= frozen
        assert 0 < gc.get_freeze_count() <= frozen
    assert gc.get_freeze_count() == 0


def test_the_last_of_parallel_validations_unfreezes() -> None:
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with old_objects_frozen():
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    inside.wait(5)
    with old_objects_frozen():  # this one ends first: the freeze stays for the other
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() > 0  # the other validation still runs
    release.set()
    thread.join()
    assert gc.get_freeze_count() == 0


def test_a_process_that_froze_objects_itself_is_left_as_it_is() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with old_objects_frozen():  # no freeze of ours on top of the process's
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen  # not unfrozen by us
    finally:
        gc.unfreeze()
