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


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_freed_memory() -> None:
    """Return the allocators' free memory to the operating system: Arrow's memory pool's
    (pandas' strings live there) and glibc's."""
    pyarrow.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
