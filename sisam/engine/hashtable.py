"""Open-addressing hash index from 64-bit pattern keys to rows of a ``PatternCounts``.

numba's typed dict costs about ten times more per lookup than a flat table probed linearly;
at scoring time every item does a few hundred lookups, so the table is the hot path.
Keys are already well mixed 64-bit hashes (see ``keys.py``), so the slot is the key's low
bits and no further hashing is needed.
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np

EMPTY_ROW = -1


class KeyIndex(NamedTuple):
    """``slot_keys[s]`` holds a key and ``slot_rows[s]`` its row, or ``EMPTY_ROW``.
    The capacity is a power of two, at least twice the number of keys."""

    slot_keys: np.ndarray  # uint64[capacity]
    slot_rows: np.ndarray  # int64[capacity]


def capacity_for(n_keys: int) -> int:
    return 1 << max(4, int(np.ceil(np.log2(max(1, 2 * n_keys)))))


@nb.njit(cache=True, nogil=True)
def _fill(keys, slot_keys, slot_rows):
    mask = np.uint64(slot_keys.shape[0] - 1)
    for row in range(keys.shape[0]):
        key = keys[row]
        slot = key & mask
        while slot_rows[slot] != EMPTY_ROW:
            if slot_keys[slot] == key:
                raise ValueError("duplicate key in KeyIndex")
            slot = (slot + np.uint64(1)) & mask
        slot_keys[slot] = key
        slot_rows[slot] = row


def build_index(keys: np.ndarray) -> KeyIndex:
    """Index unique ``keys`` (uint64) so that ``lookup`` returns their position."""
    keys = np.ascontiguousarray(keys, dtype=np.uint64)
    capacity = capacity_for(keys.shape[0])
    slot_keys = np.zeros(capacity, dtype=np.uint64)
    slot_rows = np.full(capacity, EMPTY_ROW, dtype=np.int64)
    _fill(keys, slot_keys, slot_rows)
    return KeyIndex(slot_keys, slot_rows)


@nb.njit(inline="always", nogil=True)
def lookup(slot_keys, slot_rows, key):
    """Row of ``key``, or ``EMPTY_ROW`` when the pattern was never counted."""
    mask = np.uint64(slot_keys.shape[0] - 1)
    slot = key & mask
    while True:
        row = slot_rows[slot]
        if row == EMPTY_ROW or slot_keys[slot] == key:
            return row
        slot = (slot + np.uint64(1)) & mask


@nb.njit(cache=True, nogil=True)
def lookup_many(slot_keys, slot_rows, keys):
    out = np.empty(keys.shape[0], dtype=np.int64)
    for i in range(keys.shape[0]):
        out[i] = lookup(slot_keys, slot_rows, keys[i])
    return out
