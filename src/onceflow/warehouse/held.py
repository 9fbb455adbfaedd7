"""How a Delta table names the lake files it holds: the format the loader writes
(`onceflow.warehouse.markers` reads a whole log of it) and other steps look up.

Each lake file a table holds is an application transaction of its snapshot: app id
`onceflow.file:<identity>` (the file's path within the lake), version a code of the
file's checksum (`checksum_code`), 0 = not held. The file's rows carry
`_batch_id = batch_id_for(identity, checksum)`, so a file the table holds names its own
batch, whatever the state store says and wherever the project is.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath
from typing import Any

APP_PREFIX = "onceflow.file:"


def app_id(file_id: str) -> str:
    """The application id under which a table records one lake file."""
    return APP_PREFIX + file_id


def checksum_code(checksum: str | None) -> int:
    """A file's checksum as a positive transaction version (0 is 'not held'): 60 bits of
    a hash of it, so any checksum text maps to a number that fits Delta's long."""
    digest = hashlib.sha256((checksum or "").encode("utf-8")).hexdigest()
    return int(digest[:15], 16) or 1


def batch_id_for(file_id: str, checksum: str | None) -> str:
    """A deterministic batch id for one file: its stem and the start of its checksum."""
    return f"{PurePosixPath(file_id).stem}-{(checksum or 'nochecksum')[:12]}"


def held_code(dt: Any, file_id: str) -> int:
    """The code of the file's checksum the table `dt` holds it with; 0 when it does not
    hold it (never loaded, or undone by a rewind)."""
    code = dt.transaction_version(app_id(file_id))
    return 0 if code is None else int(code)
