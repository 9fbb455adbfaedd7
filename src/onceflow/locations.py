"""Where things are: safe path components, Databricks paths, table locations."""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from pathlib import Path
from urllib.parse import unquote

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def safe_component(name: str) -> str:
    """A table or source name as one safe path component (no separators, no '..').

    A name that is already safe is kept as it is. A name that had to be changed gets a
    short hash of the original, so two names never share a folder: `order items` and
    `order_items` (or `x"; drop table y; --` and `x_drop_table_y_--`) are different tables
    and must not overwrite, or be taken for, each other's files.
    """
    cleaned = _UNSAFE.sub("_", name).strip("._") or "_"
    if cleaned == name:
        return cleaned
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{cleaned}-{digest}"


def normalize_path(path: str) -> str:
    """`dbfs:/x` -> `/dbfs/x` (Databricks' FUSE mount; delta-rs has no dbfs scheme);
    Unity Catalog `/Volumes/c/s/v/...` and local paths unchanged."""
    if path.startswith("dbfs:"):
        return "/dbfs/" + path[len("dbfs:") :].lstrip("/")
    return path


def table_location(warehouse: str, target: str) -> str:
    """Where a target table lives: a URI or absolute path as given, else under warehouse.

    `.` and `..` segments are collapsed: the location names the table (its lock
    `load:<location>`, the tracker's key, `check`'s one-table-per-target rule), so
    `wh/x` and `wh/../wh/x` must be one location, not two names of one Delta table.
    """
    if "://" in target or target.startswith("/") or target.startswith("dbfs:"):
        return _collapse_dots(normalize_path(target))
    base = normalize_path(warehouse)
    joined = f"{base.rstrip('/')}/{target}" if "://" in base else str(Path(base) / target)
    return _collapse_dots(joined)


def folder_location(path: str) -> str:
    """A folder as the filesystem or store sees it, so that two spellings of one folder
    compare equal (`within`): `file:///x` (percent-decoded) and `dbfs:/x` as the local
    paths `/x` and `/dbfs/x`, a local path with its symlinks resolved (a lake given as
    a link to the warehouse's parent is that parent), `.` and `..` segments collapsed,
    a URI's scheme in lower case (RFC 3986: `S3://b` is `s3://b`), no trailing `/`.
    Comparing spellings alone took `file:///data/lake` and `/data/lake` for two folders."""
    local = unquote(path.removeprefix("file://")) if path.startswith("file://") else path
    location = _collapse_dots(normalize_path(local))
    scheme, sep, rest = location.partition("://")
    if sep:
        location = f"{scheme.lower()}://{rest}"
    elif location.startswith("/"):
        # realpath resolves the links of the part that exists, and keeps the rest
        location = os.path.realpath(location)
    return location.rstrip("/") or "/"


def within(inner: str, outer: str) -> bool:
    """Whether location `inner` is `outer` or inside it (both as `folder_location`
    gives them): a prefix of whole segments, so `/data/lake2` is not inside `/data/lake`."""
    inner, outer = inner.rstrip("/") or "/", outer.rstrip("/") or "/"
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


def _collapse_dots(location: str) -> str:
    """A path or URI with its `.` and `..` segments collapsed (lexically, as a URI's path
    is resolved); a location without any is returned unchanged."""
    scheme, sep, rest = location.partition("://")
    if not sep:
        return os.path.normpath(location) if _has_dots(location) else location
    authority, _slash, path = rest.partition("/")
    if not _has_dots(path):
        return location
    return f"{scheme}://{authority}{posixpath.normpath('/' + path)}"


def _has_dots(path: str) -> bool:
    return any(part in (".", "..") for part in path.split("/"))


def local_root(uri: str) -> str | None:
    """The folder of a table on the local filesystem, or None for a remote table.

    delta-rs reports local tables as percent-encoded ``file://`` URIs
    (``file:///lake/my%20table/``), so the prefix alone is not the path.
    """
    if uri.startswith("file://"):
        return unquote(uri.removeprefix("file://")).rstrip("/") or "/"
    if "://" in uri:
        return None
    return uri.rstrip("/") or "/"
