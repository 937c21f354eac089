"""Giving freed memory back to the operating system between chunks.

Learning counts a history a chunk at a time so that memory stays bounded by the counts,
not the items (``history``). The chunk's temporaries are freed after each chunk, yet the
process's resident memory kept growing by about a chunk's temporaries per chunk (0.55 GiB
per 250,000-item chunk, measured: still so when nothing of the chunk was kept): glibc's
allocator keeps freed blocks in its heaps rather than returning them (its threshold for
serving large blocks by ``mmap``, which are returned on free, rises to 32 MB after the
first such free), so numpy's temporaries of a few megabytes each pile up. ``malloc_trim``
returns them; with it, the resident memory after each chunk stayed flat. Elsewhere than on
glibc this does nothing. Arrow's memory pool (mimalloc), which holds pandas' strings, keeps
freed segments likewise: at 20 million items its segments held 3.4 GB after ten chunks, so
it is asked to release them too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import pyarrow

#: glibc's mallopt parameter: blocks at least this large are served by mmap.
_M_MMAP_THRESHOLD = -3
#: Served by mmap (and returned on free) from this size: every array of a chunk's column.
_MMAP_FROM_BYTES = 1 << 20


@functools.cache
def _glibc():
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim, libc.mallopt  # noqa: B018 (glibc has both; other C libraries may not)
    except (OSError, AttributeError):  # not glibc
        return None
    return libc


def serve_large_blocks_by_mmap() -> None:
    """From now on, blocks of a megabyte or more come from mmap and go back to the system
    when freed (a fixed threshold also stops glibc raising it to 32 MB): at 20 million
    items, malloc_trim alone still let the heap grow by about 0.15 GB a chunk."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_FROM_BYTES)


def release_freed_memory() -> None:
    """Return the allocators' free memory to the operating system: Arrow's memory pool's
    (pandas' strings live there) and glibc's."""
    pyarrow.default_memory_pool().release_unused()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
