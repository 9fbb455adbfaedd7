"""Write a file atomically: temp file beside the target, hash while writing, fsync, rename."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

from onceflow.lake.paths import temp_path

CHECKSUM_ALGORITHM = "sha256"


class HashingFile:
    """A binary file that hashes every byte it writes, so no second read is needed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "xb")  # noqa: SIM115 - closed in close()
        self._hash = hashlib.new(CHECKSUM_ALGORITHM)
        self.size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._hash.update(view)
        written = self._file.write(view)
        self.size += view.nbytes
        return written if written is not None else view.nbytes

    def flush(self) -> None:
        self._file.flush()

    def tell(self) -> int:
        return self.size

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        """Flush, fsync and close: Arrow closes its sink this way once the footer is out."""
        if not self.closed:
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
            finally:
                self._file.close()
                self.closed = True

    def abandon(self) -> None:
        """Close without syncing and delete the temp file (a failed write)."""
        if not self.closed:
            self._file.close()
            self.closed = True
        self.path.unlink(missing_ok=True)

    @property
    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def new_temp(target: Path) -> HashingFile:
    """Open a fresh hashing temp file beside `target` (its folder is created)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return HashingFile(temp_path(target, uuid.uuid4().hex[:12]))


def commit(temp: HashingFile, target: Path) -> None:
    """fsync the temp file, rename it over `target`, fsync the folder."""
    temp.close()
    os.replace(temp.path, target)
    fsync_dir(target.parent)


def write_bytes_atomic(target: Path, data: bytes) -> str:
    """Write small content atomically; returns its checksum."""
    temp = new_temp(target)
    try:
        temp.write(data)
        commit(temp, target)
    except BaseException:
        temp.abandon()
        raise
    return temp.hexdigest


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_checksum(path: Path, chunk: int = 8 << 20) -> str:
    """Checksum of a file on disk (used by --verify deep only)."""
    digest = hashlib.new(CHECKSUM_ALGORITHM)
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
