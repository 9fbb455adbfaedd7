"""Thread pools that a Ctrl-C does not wait for.

`with ThreadPoolExecutor(...)` waits on its way out for every task it was given, the
queued ones too. Left by a Ctrl-C (a KeyboardInterrupt, raised in the main thread, the
only one a signal reaches), the command would then end only once every table had been
extracted or loaded: a connect to a host that does not answer holds it for the connect
timeout, each retry included, and a big table until its last row. `interruptible` is
that `with`, except that an interrupt (or SystemExit) cancels the tasks not started and
leaves at once.

The running tasks are not stopped: Python cannot stop a thread. The `onceflow` program
exits right after (`cli.exit_now` does not wait for them after an interrupt), which loses
nothing, as a SIGKILL at any instant loses nothing. Called from Python, they run on in
the background: an extraction's table finds the pipeline lock released at its next
`Lease.check` and stops before it renames or commits a file; a load holds its table's
lock itself and finishes under it.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager


@contextmanager
def interruptible(pool: ThreadPoolExecutor) -> Iterator[ThreadPoolExecutor]:
    """`with pool:`, except that a KeyboardInterrupt or SystemExit cancels the tasks not
    started and does not wait for the running ones."""
    try:
        yield pool
    except (KeyboardInterrupt, SystemExit):
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    except BaseException:
        pool.shutdown(wait=True)
        raise
    pool.shutdown(wait=True)
