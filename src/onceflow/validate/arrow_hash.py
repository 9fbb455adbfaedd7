"""The fingerprint of data in memory: a hash of its logical content, so it can be cached.

`memory_fingerprint(data)` is `memory:<hash>` for an Arrow table or record batch, or a
pandas data frame (through Arrow); None for what cannot be hashed without consuming or
reading it (a dataset, a batch reader), which then is not cached, as before.

What is hashed, per column chunk: the field (name, type, nullability), the length and
null count, and of each buffer only the bytes of the chunk's own rows:

- a validity bitmap (only when the chunk has nulls: no bitmap and an all-valid one are
  the same data), and a boolean's data, as the bits of rows [offset, offset + length),
  the last byte masked (bits past the end are whatever the allocator left there);
- a fixed-width value's bytes of those rows;
- a string or binary column's offsets rebased to start at 0, and the bytes they span.

So a sliced table (`table.slice(5, 10)`, whose buffers are its parent's, with an offset)
hashes as the same rows built afresh would, and neither reads nor depends on the rows
it does not hold. Any other type (nested, dictionary, views) is hashed as its Arrow IPC
serialisation, compacted first when it is sliced: IPC is a faithful encoding, so a
changed value always changes the hash; it may also change with bytes no row uses
(values under a null), which costs a rerun, never a wrong cache hit. For the same
reason the same rows split into other chunks are another fingerprint.

The hash is xxh3-128 (the `xxhash` package), one column per thread. It is not a
cryptographic hash, and need not be: the fingerprint keys a cache of results for data
the caller hands over, not a defence against a forger. It is ~11x SHA-256's speed here
(19 GB/s against 1.7 GB/s on one buffer), which took the fingerprint from about a fifth
of a full validation of the benchmark's 10M-row table to a few percent (docs/validate.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import xxhash

log = logging.getLogger(__name__)

# A table of fewer rows is hashed on the calling thread: a thread is not worth it.
_PARALLEL_ROWS = 100_000


def memory_fingerprint(data: Any) -> str | None:
    """`memory:<hash>` of an Arrow table or record batch or a pandas data frame; None
    for other data (not cached)."""
    import pyarrow as pa

    module = type(data).__module__
    if module.startswith("pandas"):
        try:  # what DuckDB scans: the columns, not the index
            data = pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowException, TypeError, ValueError) as error:
            log.debug("data frame not cached: no Arrow form to fingerprint (%s)", error)
            return None
    if not isinstance(data, pa.Table | pa.RecordBatch):
        return None
    # hashed on every call, never remembered by object: a table built without a copy
    # over a NumPy array (`pa.table({"x": arr})`, `from_pandas` of numbers) changes when
    # the array does, so "the same object" is not "the same data"
    table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
    return "memory:" + table_hash(table)


def table_hash(table: Any) -> str:
    """The hex xxh3-128 (32 digits) of a table's schema and logical content."""
    columns = list(zip(table.schema, table.columns, strict=True))
    if table.num_rows >= _PARALLEL_ROWS and len(columns) > 1:
        workers = min(len(columns), os.cpu_count() or 1)
        with ThreadPoolExecutor(workers, thread_name_prefix="onceflow-hash") as pool:
            digests = list(pool.map(lambda c: _column_hash(*c), columns))
    else:
        digests = [_column_hash(field, column) for field, column in columns]
    whole = xxhash.xxh3_128(f"{table.num_rows}:{len(columns)}".encode())
    for digest in digests:
        whole.update(digest)
    return whole.hexdigest()


def _column_hash(field: Any, column: Any) -> bytes:
    h = xxhash.xxh3_128(f"{field.name}\0{field.type}\0{field.nullable}".encode())
    for chunk in column.chunks:
        for part in chunk_parts(chunk):
            h.update(part)
    return h.digest()


def chunk_parts(array: Any) -> Iterator[Any]:
    """The byte strings (or memoryviews) whose hash is that of `array`'s rows."""
    import pyarrow as pa

    t, n, offset = array.type, len(array), array.offset
    nulls = array.null_count
    yield f"\0{n}:{nulls}\0".encode()
    buffers = array.buffers()
    if pa.types.is_null(t):
        return
    if pa.types.is_dictionary(t):  # its values: a slice keeps the whole dictionary
        yield from chunk_parts(array.dictionary_decode())
        return
    flat = pa.types.is_boolean(t) or _fixed_width(t) or _offsets_size(t)
    if not flat:
        yield from _ipc_parts(array)
        return
    if nulls:
        yield from _bits(buffers[0], offset, n)
    if pa.types.is_boolean(t):
        yield from _bits(buffers[1], offset, n)
    elif _fixed_width(t):
        width = t.bit_width // 8
        yield memoryview(buffers[1])[offset * width : (offset + n) * width]
    else:
        yield from _binary_parts(buffers, offset, n, _offsets_size(t))


def _fixed_width(t: Any) -> bool:
    import pyarrow as pa

    try:
        width = t.bit_width
    except ValueError:  # not a fixed-width type
        return False
    return bool(width % 8 == 0 and width and not pa.types.is_dictionary(t))


def _offsets_size(t: Any) -> int:
    """4 or 8 for a string or binary type of 32 or 64-bit offsets, else 0."""
    import pyarrow as pa

    if pa.types.is_string(t) or pa.types.is_binary(t):
        return 4
    if pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        return 8
    return 0


def _bits(buffer: Any, offset: int, n: int) -> Iterator[Any]:
    """Bits [offset, offset + n) of a bitmap, as whole bytes starting at bit 0."""
    if n == 0:
        return
    view = memoryview(buffer)
    if offset % 8:  # unaligned: shift the bits down (n bytes of work, a slice's only)
        import numpy as np

        start = offset // 8
        raw = np.frombuffer(view[start : (offset + n + 7) // 8], dtype=np.uint8)
        bits = np.unpackbits(raw, bitorder="little")[offset % 8 : offset % 8 + n]
        yield np.packbits(bits, bitorder="little").tobytes()
        return
    start, end = offset // 8, (offset + n) // 8
    yield view[start:end]
    tail = n % 8
    if tail:
        yield bytes([view[end] & ((1 << tail) - 1)])


def _binary_parts(buffers: list[Any], offset: int, n: int, size: int) -> Iterator[Any]:
    import numpy as np

    dtype = np.int32 if size == 4 else np.int64
    offsets = np.frombuffer(buffers[1], dtype=dtype, count=n + 1, offset=offset * size)
    first, last = int(offsets[0]), int(offsets[-1])
    yield (offsets - first).tobytes() if first else memoryview(offsets.data).cast("B")
    if buffers[2] is not None:
        yield memoryview(buffers[2])[first:last]


def _ipc_parts(array: Any) -> Iterator[Any]:
    """A type without a flat layout: the IPC encoding of a compact copy of its rows (a
    slice's children are its parent's whole, even at offset 0; a nested column is rare
    enough that the copy is not worth avoiding)."""
    import pyarrow as pa

    yield pa.record_batch([pa.concat_arrays([array])], names=["c"]).serialize()


__all__ = ["chunk_parts", "memory_fingerprint", "table_hash"]
