"""Standalone loads (`load --path DIR`): one file name, two folders.

A standalone file's identity is its path within the folder (or the glob's fixed part)
given to `load --path`, so that a moved folder is the same files, loaded nothing twice.
But then `dropA/e0.parquet` and, later, `dropB/e0.parquet` share the identity `e0.parquet`,
and the loader would take the second for a re-delivery of the first: `replaced`, the
first folder's rows gone.

The tracker records where each identity was last found (`load_files.file_path`, the
absolute path, written when a load registers the lake's files). Before registering, a
standalone load tells a move from a namesake:

- the recorded path no longer exists: the folder moved (or the file was removed), and
  the identity stands (a file with new content there is a re-delivery: `replaced`);
- it is the same file (same path, or a link to it): the usual rules;
- the new file has the recorded checksum: the same content, so nothing to replace (held
  files are skipped);
- else the recorded path still exists and is another file with other content: a
  different file with the same name. It is refused by name, the table's other files of
  this load wait, nothing is committed or registered (the tracker keeps the first
  folder's path, so a rerun refuses it again), and the load exits 1 until the files get
  unique names.

It runs under the table's lease lock, so two standalone loads of one table cannot both
pass it. Config tables are not checked: their identities are below the lake, one folder.
"""

from __future__ import annotations

import logging
import os

from onceflow.errors import LoadError, error_names
from onceflow.lake import SourceFile
from onceflow.load.loader import FileOutcome, LoadTarget, TableLoadResult
from onceflow.state import Store

log = logging.getLogger(__name__)


def _same_file(recorded: str, path: str) -> bool:
    try:
        return os.path.samefile(recorded, path)
    except OSError:
        return False


def namesakes(
    store: Store, tgt: LoadTarget, files: list[SourceFile]
) -> list[tuple[SourceFile, str]]:
    """The files of a standalone load whose identity the table's tracker already has from
    another file that is still there, with other content: (the file, the earlier path)."""
    tracked = {r.file_id: r for r in store.files.find(tgt.uri)}
    found = []
    for file in files:
        rec = tracked.get(file.file_id)
        if rec is None or not rec.file_path:
            continue
        if file.checksum is not None and file.checksum == rec.checksum:
            continue
        if not os.path.exists(rec.file_path) or _same_file(rec.file_path, file.path):
            continue
        found.append((file, rec.file_path))
    return found


def refuse_namesakes(
    store: Store, tgt: LoadTarget, files: list[SourceFile]
) -> TableLoadResult | None:
    """The refused load when some of `files` are namesakes of files from another folder
    (each failed by name, the others waiting, nothing committed), else None."""
    clashes = namesakes(store, tgt, files)
    if not clashes:
        return None
    result = TableLoadResult(tgt.key, tgt.target, tgt.uri, tgt.cfg.strategy)
    refused = {file.file_id for file, _earlier in clashes}
    for file, earlier in clashes:
        message = (
            f"{file.file_id}: {file.path} has the same name within its folder as {earlier}, "
            f"which an earlier load of {tgt.target} took from another folder and which is "
            f"still there: a different file, not a moved one, so it is not loaded (it would "
            f"replace that file's rows). Give files unique names (e.g. a date in the name: "
            f"rename this one and load again), or load their parent folder so that the "
            f"subfolder is part of the identity (into a new target: files already loaded "
            f"keep the identity they were loaded with); the table is unchanged"
        )
        result.files.append(FileOutcome(file.file_id, file.path, "failed", error=message))
        log.error("%s: %s", tgt.key, message, extra={"table": tgt.key, "action": "failed"})
    others = [f for f in files if f.file_id not in refused]
    result.files += [FileOutcome(f.file_id, f.path, "waiting") for f in others]
    first = result.files[0].error or ""
    more = len(clashes) - 1
    result.error = (
        first
        + (f" ({more} other file(s) refused the same way)" if more else "")
        + (f" ({len(others)} other file(s) of this load wait; nothing committed)" if others else "")
    )
    result.error_types = error_names(LoadError(result.error))
    return result
