"""The extracted-file format shared by every step: Parquet plus a metadata sidecar.

Paths are deterministic (`paths`), files are written atomically while hashed (`atomic`),
the sidecar is the commit marker (`sidecar`), and `discovery` lists the committed files
of a table or folder. The extractor writes this format; the loader and the validator read it.
"""

from onceflow.lake.atomic import CHECKSUM_ALGORITHM, file_checksum
from onceflow.lake.discovery import (
    FileOrder,
    SourceFile,
    TableScan,
    Uncommitted,
    discover_path,
    discover_table_files,
    extracted_identity,
    file_identity,
    layout_day,
    name_order,
    scan_table_files,
)
from onceflow.lake.paths import (
    TEMP_MARKER,
    normalize_lake_path,
    output_path,
    sidecar_path,
    table_folder,
)
from onceflow.lake.sidecar import (
    Verdict,
    inspect_sidecar,
    read_sidecar,
    remove_sidecar,
    verify,
    write_sidecar,
)

__all__ = [
    "CHECKSUM_ALGORITHM",
    "TEMP_MARKER",
    "FileOrder",
    "SourceFile",
    "TableScan",
    "Uncommitted",
    "Verdict",
    "discover_path",
    "discover_table_files",
    "extracted_identity",
    "file_checksum",
    "file_identity",
    "inspect_sidecar",
    "layout_day",
    "name_order",
    "normalize_lake_path",
    "output_path",
    "read_sidecar",
    "remove_sidecar",
    "scan_table_files",
    "sidecar_path",
    "table_folder",
    "verify",
    "write_sidecar",
]
