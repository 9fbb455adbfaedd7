"""Which Parquet files a table has to load: from the extract layout, or any folder or glob.

A file is known by its identity, its path relative to the lake (or to the folder given to
`load --path`): `<source>/<table>/<yyyymm>/<dd>/<run_id>.parquet`. The identity, not the
absolute path, is what the state store and the Delta commit markers record, so a project
moved or copied elsewhere is the same lake.

From the extract layout only committed files count: the sidecar says complete. A committed
file whose data no longer matches its sidecar (a truncated or replaced file) is not dropped:
it is returned with its `problem`, so that the loader fails it by name and waits for a
re-extraction. So is a file whose sidecar is there but unreadable: a sidecar is written
atomically, so a damaged one is not an extraction in progress, and the file's window
cannot be known to be committed or not (`sidecar_unreadable`). Temp files
(`*.onceflow-tmp-*`) never count. A data file with no sidecar, or one that does not say
complete, is an extraction in progress or interrupted: it does not count either, but
`scan_table_files` lists it (`Uncommitted`), so that a load can say what it did not load.
A complete sidecar whose data file is gone is a committed file too, returned with its
problem (`data_missing`): its window is committed, so leaving it out would skip it silently.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import glob
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as day_start
from pathlib import Path
from typing import Any

from onceflow.errors import ConfigError, LoadError
from onceflow.lake.atomic import file_checksum
from onceflow.lake.paths import (
    LAYOUT_DEPTH,
    SIDECAR_SUFFIX,
    TEMP_MARKER,
    normalize_lake_path,
    sidecar_name,
    sidecar_path,
    table_folder,
)
from onceflow.lake.sidecar import inspect_sidecar_file

log = logging.getLogger(__name__)

_EARLIEST = datetime.min.replace(tzinfo=UTC)
_DIGITS = re.compile(r"(\d+)")

#: A file's place among a table's files: its window's start, then its name.
FileOrder = tuple[datetime, tuple[tuple[tuple[str | int, ...], ...], str]]


def name_order(file_id: str) -> tuple[tuple[tuple[str | int, ...], ...], str]:
    """The order of files by name, as people read names: folder by folder, and within a
    name a run of digits compared as the number it is, so `batch_9` comes before
    `batch_10` (the order `ls -v` and file managers show). A name's parts alternate text
    and number, so two names are always compared text with text, number with number.
    Names that only differ in leading zeros (`b_01`, `b_1`) are then ordered by their
    text, so that the order is total and the same on every run."""
    parts = tuple(
        tuple(int(piece) if i % 2 else piece for i, piece in enumerate(_DIGITS.split(part)))
        for part in file_id.split("/")
    )
    return parts, file_id


@dataclass(frozen=True)
class SourceFile:
    """A committed Parquet file: where it is, its identity, what its sidecar says."""

    path: str
    file_id: str
    size: int
    modified_time: str
    checksum: str | None
    record_count: int | None = None
    run_id: str | None = None
    window_start: str | None = None
    window_end: str | None = None
    snapshot_at: str | None = None
    partial: bool = False
    problem: str | None = None
    #: Its sidecar is there but unreadable: nothing it should say (checksum, window) is known.
    sidecar_unreadable: bool = False
    #: Its sidecar commits it, but the data file is not in the lake (deleted after commit).
    data_missing: bool = False
    #: The run date its place in the extract layout says (<yyyymm>/<dd>/), if it has one.
    day: date | None = None

    @functools.cached_property
    def order(self) -> FileOrder:
        """Window order: the window's start (else the layout's day; files without either
        first), then the identity in name order (`name_order`). Worked out once per file:
        a plan compares every file the table holds with the ones that move."""
        start = _EARLIEST
        if self.window_start:
            with contextlib.suppress(ValueError):
                start = datetime.fromisoformat(self.window_start).astimezone(UTC)
        elif self.day is not None:
            # midnight UTC of the run date lies between the starts of the windows before
            # and after it in any time zone (offsets are under a day)
            start = datetime.combine(self.day, day_start.min, UTC)
        return start, name_order(self.file_id)


@dataclass(frozen=True)
class Uncommitted:
    """A data file of a table with no complete sidecar: an extraction in progress, or
    one interrupted before its commit. It does not count, but it is reported."""

    path: str
    file_id: str
    reason: str
    day: date | None = None


@dataclass(frozen=True)
class TableScan:
    """A table's lake folder: its committed files (window order) and uncommitted ones."""

    files: list[SourceFile]
    uncommitted: list[Uncommitted]


def layout_day(path: Path) -> date | None:
    """The run date of a file in the extract layout (`<yyyymm>/<dd>/<file>`), else None."""
    return _folders_day(path.parent.parent.name, path.parent.name)


def _folders_day(month: str, day: str) -> date | None:
    """The run date the layout's `<yyyymm>` and `<dd>` folder names say, else None."""
    text = month + day
    if len(month) == 6 and len(day) == 2 and text.isascii() and text.isdigit():
        # the layout's own names, read as strptime reads them at a fifth of its cost
        # (a scan asks once per day folder: 1,825 times for a year of 5 tables)
        try:
            return date(int(month[:4]), int(month[4:]), int(day))
        except ValueError:
            return None
    try:
        return datetime.strptime(month + day, "%Y%m%d").date()
    except ValueError:
        return None


def file_identity(path: Path, root: Path) -> str:
    """A file's identity: its path below `root`, with '/' separators."""
    return path.resolve().relative_to(root.resolve()).as_posix()


def extracted_identity(path: str | Path, lake: Path) -> str:
    """The identity of a file the extractor wrote, from the path it was recorded under: its
    path below `lake`; or, recorded under where the lake was before the project was moved
    or copied, the layout's last parts (`<source>/<table>/<yyyymm>/<dd>/<file>`), which are
    the same wherever the lake is."""
    try:
        return file_identity(Path(path), lake)
    except ValueError:
        parts = Path(path).parts
        if len(parts) < LAYOUT_DEPTH:
            raise
        return "/".join(parts[-LAYOUT_DEPTH:])


@dataclass(frozen=True, slots=True)
class _Found:
    """A data file as a scan found it: its path as found (for stat, open and logs), its
    absolute path (`Path.absolute()`: symlinks kept), its identity and its layout day."""

    path: str
    absolute: str
    file_id: str
    day: date | None

    @classmethod
    def of(cls, path: Path, root: Path) -> _Found:
        """A file known by its Path alone (symlinks resolved per file: the slow way)."""
        return cls(str(path), str(path.absolute()), file_identity(path, root), layout_day(path))

    def sidecar(self) -> str:
        """Its sidecar's path."""
        head, _sep, name = self.path.rpartition(os.sep)
        return f"{head}{_sep}{sidecar_name(name)}"


def _committed(path: Path, root: Path, key: str | None = None) -> SourceFile | Uncommitted:
    """The file as a SourceFile when its sidecar commits it (with its problem, if damaged
    or if its sidecar is unreadable), else as Uncommitted. `key`: its config table's."""
    return _classify(_Found.of(path, root), key)


def _classify(found: _Found, key: str | None) -> SourceFile | Uncommitted:
    """`_committed` of a file found by a scan."""
    sidecar, unreadable = inspect_sidecar_file(found.sidecar())
    if unreadable is not None:
        redo = _redo(Path(found.path), found.day, key)
        damaged = (
            f"its sidecar {sidecar_name(Path(found.path).name)} {unreadable}: it was damaged "
            f"after extraction (sidecars are written atomically), so whether this file is the "
            f"window's committed extract is unknown; re-extract the window ({redo})"
        )
        log.warning("%s: %s", found.path, damaged)
        return _unreadable(found, damaged)
    if sidecar is None or sidecar.get("extraction_complete") is not True:
        reason = (
            "no sidecar: its extraction is running, or was interrupted before its commit"
            if sidecar is None
            else "its sidecar does not say extraction_complete: the extraction is not committed"
        )
        log.debug("%s: not committed (%s); not a file to load", found.path, reason)
        return Uncommitted(found.absolute, found.file_id, reason, found.day)
    try:
        # after the sidecar is read, as an extraction commits the other way round
        stat = os.stat(found.path)
    except OSError as error:
        size, mtime = -1, 0.0
        problem: str | None = f"its sidecar is complete but the data file is unreadable ({error})"
    else:
        size, mtime, problem = stat.st_size, stat.st_mtime, None
        if size != sidecar.get("file_size_bytes"):
            problem = (
                f"size {size} differs from its sidecar ({sidecar.get('file_size_bytes')}): "
                "the file was truncated or replaced after extraction"
            )
    if problem:
        log.warning("%s: %s", found.path, problem)
    return _committed_file(found, sidecar, size, mtime, problem)


def _committed_file(
    found: _Found,
    sidecar: dict[str, Any],
    size: int,
    mtime: float,
    problem: str | None,
    *,
    data_missing: bool = False,
) -> SourceFile:
    """The committed file a complete sidecar describes, as discovery found it."""
    return SourceFile(
        path=found.absolute,
        file_id=found.file_id,
        size=size,
        modified_time=datetime.fromtimestamp(mtime, UTC).isoformat(),
        checksum=sidecar.get("checksum"),
        record_count=sidecar.get("record_count"),
        run_id=sidecar.get("run_id"),
        window_start=sidecar.get("window_start"),
        window_end=sidecar.get("window_end"),
        snapshot_at=sidecar.get("snapshot_at") or sidecar.get("start_time"),
        partial=sidecar.get("partial") is True,
        problem=problem,
        data_missing=data_missing,
        day=found.day,
    )


def _redo(path: Path, day: date | None, key: str | None) -> str:
    """The command that extracts a file's window again, in backquotes (or "its extraction")."""
    if day is None:
        return "its extraction"
    # the file's name is its run id: an extraction under another id would write another
    # file, and this one would still fail. The pipeline (so the date's default id,
    # `<pipeline>_<yyyymmdd>`) is not known here: an id of that shape is taken for the
    # default and not named
    default = path.stem.endswith(f"_{day:%Y%m%d}")
    named = "" if default else f" --run-id {path.stem}"
    tables = f" --tables {key}{named}" if key else ""
    return f"`onceflow extract --date {day}{tables} --force-reprocess`"


def _data_missing(data: Path, root: Path, key: str | None) -> SourceFile | None:
    """The committed file a complete sidecar names whose data file is not there, else None
    (a sidecar without a data file that does not say complete commits nothing)."""
    return _missing(_Found.of(data, root), key)


def _missing(found: _Found, key: str | None) -> SourceFile | None:
    """`_data_missing` of a file a scan expected beside a sidecar."""
    sidecar, _unreadable_why = inspect_sidecar_file(found.sidecar())
    if sidecar is None or sidecar.get("extraction_complete") is not True:
        return None
    data = Path(found.path)
    problem = (
        f"data file missing: its sidecar {sidecar_name(data.name)} commits it, but the file "
        f"is not in the lake; re-extract its window ({_redo(data, found.day, key)}), or put "
        "the file back"
    )
    # not a warning here: the load fails it by name (or warns, when the table holds it),
    # and status and validate-consistency report it
    log.debug("%s: %s", found.path, problem)
    return _committed_file(found, sidecar, -1, 0.0, problem, data_missing=True)


def _unreadable(found: _Found, problem: str) -> SourceFile:
    """A file whose sidecar cannot be read: known by name and place only, it fails."""
    try:
        stat = os.stat(found.path)
        size, mtime = stat.st_size, stat.st_mtime
    except OSError:
        size, mtime = -1, 0.0
    return SourceFile(
        path=found.absolute,
        file_id=found.file_id,
        size=size,
        modified_time=datetime.fromtimestamp(mtime, UTC).isoformat(),
        checksum=None,
        problem=problem,
        sidecar_unreadable=True,
        day=found.day,
    )


#: The errors `Path.glob` passes over when it asks an entry whether it is a folder.
_IGNORED_ERRNOS = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)


def _listing(folder: str) -> list[os.DirEntry[str]]:
    """A folder's entries; none when it may not be read (as `Path.glob` skips it)."""
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except PermissionError:
        return []


def _subfolders(folder: str) -> list[os.DirEntry[str]]:
    """The entries of a folder that are folders (a symlink to one too), as `Path.glob`
    walks `*/`."""
    out = []
    for entry in _listing(folder):
        try:
            if entry.is_dir():
                out.append(entry)
        except OSError as error:
            if error.errno not in _IGNORED_ERRNOS:
                raise
    return out


class _Walk:
    """Identities and absolute paths of a table folder's files, each built from the
    folder's once: resolving the lake root and every file's path per file was 0.31 s of a
    1,825-file scan (a year of 5 tables). A file reached through a symlink (a linked
    month or day folder, or a linked file) is resolved on its own, as before: its
    identity is where the link leads."""

    def __init__(self, root: Path, folder: Path) -> None:
        self.root = root
        self.folder = str(folder)
        self.absolute = str(folder.absolute())
        try:
            self.folder_id: str | None = file_identity(folder, root)
        except ValueError:
            # the table folder leads out of the lake: each file then fails as it did
            # (file_identity raises for it), and an empty folder does not
            self.folder_id = None
        if self.folder_id in ("", "."):
            self.folder_id = None

    def found(self, month: str, day: str, name: str, *, linked: bool, when: date | None) -> _Found:
        """The file `<month>/<day>/<name>` of the folder."""
        path = f"{self.folder}{os.sep}{month}{os.sep}{day}{os.sep}{name}"
        if linked or self.folder_id is None:
            return _Found.of(Path(path), self.root)
        return _Found(
            path,
            f"{self.absolute}{os.sep}{month}{os.sep}{day}{os.sep}{name}",
            f"{self.folder_id}/{month}/{day}/{name}",
            when,
        )


def scan_table_files(lake: str, source: str, table: str) -> TableScan:
    """The committed files of one extracted table, in window order, and its data files
    that no complete sidecar commits (yet).

    One listing per day folder finds both the data files and the sidecars (their commit
    markers), with no Path per file: every `run` and `load` scans every table's whole
    folder, so its cost grows with the lake (0.29-0.57 s for a year of 5 tables before,
    see docs/performance.md).
    """
    root = Path(normalize_lake_path(lake))
    folder = table_folder(lake, source, table)
    if not folder.is_dir():
        return TableScan([], [])
    key = f"{source}.{table}"
    walk = _Walk(root, folder)
    found: list[SourceFile] = []
    uncommitted: list[Uncommitted] = []
    for month in _subfolders(walk.folder):
        for day in _subfolders(month.path):
            when = _folders_day(month.name, day.name)
            linked = month.is_symlink() or day.is_symlink()
            entries = _listing(day.path)
            for entry in entries:
                name = entry.name
                if not name.endswith(".parquet") or TEMP_MARKER in name:
                    continue
                seen = _classify(
                    walk.found(
                        month.name, day.name, name, linked=linked or entry.is_symlink(), when=when
                    ),
                    key,
                )
                if isinstance(seen, Uncommitted):
                    uncommitted.append(seen)
                else:
                    found.append(seen)
            # the data file a sidecar names: one that is there as a plain entry needs no
            # look; one missing, or there as a symlink, is asked and placed the slow way
            symlinks = {e.name for e in entries if e.is_symlink()}
            plain = {e.name for e in entries} - symlinks
            for entry in entries:
                if not entry.name.endswith(SIDECAR_SUFFIX):
                    continue
                data = entry.name.removesuffix(SIDECAR_SUFFIX) + ".parquet"
                if data in plain or Path(day.path, data).exists():
                    continue
                place = walk.found(
                    month.name, day.name, data, linked=linked or data in symlinks, when=when
                )
                if missing := _missing(place, key):
                    found.append(missing)
    return TableScan(
        sorted(found, key=lambda f: f.order), sorted(uncommitted, key=lambda u: u.file_id)
    )


def discover_table_files(lake: str, source: str, table: str) -> list[SourceFile]:
    """The committed files of one extracted table, in window order."""
    return scan_table_files(lake, source, table).files


def _glob_root(pattern: str) -> Path:
    """The folder a glob's identities are relative to: its part before the first wildcard."""
    parts = Path(pattern).parts
    first = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts) - 1)
    return Path(*parts[:first]) if first else Path(".")


def discover_path(pattern: str) -> list[SourceFile]:
    """Parquet files of a folder (recursively) or a glob, for standalone loads.

    Identities are relative to the folder (or the glob's fixed part). A file with a
    sidecar must be committed by it; a file without one is taken as it is (its checksum
    is computed, its modification time stands for its snapshot instant). Order: window
    order when sidecars say, else by identity in name order (`name_order`): the order
    a merge, scd2 or overwrite table applies them in, so it must be the same whenever the
    same files are loaded (not their modification times, which a copy changes).
    """
    target = normalize_lake_path(pattern)
    if os.path.isdir(target):
        root = Path(target)
        paths = sorted(root.rglob("*.parquet"))
    elif os.path.isfile(target):
        root = Path(target).parent
        paths = [Path(target)]
    elif not glob.has_magic(target):
        # a mistyped path is a bad argument (exit 2), as any other; a glob that matches
        # nothing yet may be data not arrived (a failed load, exit 1)
        raise ConfigError(
            f"--path {pattern}: no such file or folder; give a Parquet file, a folder of "
            "them, or a glob",
            field="path",
        )
    else:
        root = _glob_root(target)
        paths = [Path(p) for p in sorted(glob.glob(target, recursive=True))]
        if not paths:
            raise LoadError(f"--path {pattern}: no Parquet files match")
    found = []
    for path in paths:
        if TEMP_MARKER in path.name or not path.is_file():
            continue
        if sidecar_path(path).exists():
            committed = _committed(path, root)
            if isinstance(committed, SourceFile):
                found.append(committed)
            continue
        stat = path.stat()
        modified = datetime.fromtimestamp(stat.st_mtime, UTC).isoformat()
        found.append(
            SourceFile(
                path=str(path.resolve()),
                file_id=file_identity(path, root),
                size=stat.st_size,
                modified_time=modified,
                checksum=file_checksum(path),
                snapshot_at=modified,
            )
        )
    return sorted(found, key=lambda f: f.order)
