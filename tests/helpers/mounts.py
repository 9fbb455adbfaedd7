"""Small file systems of a test's own: a tmpfs of a few KiB that fills up, or one remounted
read-only, for what the state store does when its disk is full or cannot be written.
`chmod` does not stop root, so a real mount is the only faithful read-only folder.

Mounting needs root: the tests skip with the reason elsewhere, and fail under CI=true.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.servers import IN_CI


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "1m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` for the `with` block, unmounted after it."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    except (OSError, subprocess.CalledProcessError) as error:
        detail = (getattr(error, "stderr", "") or str(error)).strip()
        message = f"a tmpfs cannot be mounted here (needs root and mount): {detail}"
        if IN_CI:
            pytest.fail(f"{message}; CI requires it")
        pytest.skip(message)
    try:
        yield path
    finally:
        # lazily, should a connection the test leaked still hold a file open there
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def remount(path: Path, mode: str) -> None:
    """Remount the tmpfs at `path` `ro` or `rw`."""
    _mount("-o", f"remount,{mode}", str(path))


def fill(path: Path, leave: int) -> Path:
    """Fill the file system holding `path` with a file that leaves `leave` bytes free."""
    filler = path / "filler"
    with filler.open("wb") as handle:
        handle.write(b"\0" * max(0, shutil.disk_usage(path).free - leave))
    return filler
