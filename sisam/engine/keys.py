"""Pattern keys: one 64-bit key per item and shape of a factor's lattice.

An item's pattern at a shape is its values at the shape's levels, the wildcard attributes
left out (hpb.md, "Patterns and the lattice"). Counting and scoring never compare the
values themselves: they compare keys. A key is

    top 8 bits    the shape's index (a lattice has at most 256 shapes), and
    low 56 bits   splitmix64's finaliser folded over the factor's salt, the shape's
                  index and the level codes of the attributes not at ``*``, in
                  attribute order.

The salt keeps two factors over the same attributes apart. The shape in the top bits
makes keys of different shapes different by construction, and it sorts a factor's keys
shape by shape: counting emits each shape's patterns sorted and needs no merge to sort
them all (``counting.py``). Within a shape the low bits are as good as random: two
distinct patterns of one shape share a key with probability about P**2 / 2**57 (1e-5 for
a shape of a million patterns), and a shared key merely adds two patterns' counts
together, as ``counts.merge`` would. The low bits stay well mixed for hash tables that
index by them (``hashtable.py``). The root's key depends on the salt alone: every item
matches the root.

Level codes come from ``levels.level_codes``; the lattice from ``lattice.build_lattice``.
Keys are stored in knowledge bases: any change to how they are made is a change of
``levels.CODE_VERSION``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NamedTuple

import numba as nb
import numpy as np

from sisam.engine.lattice import Lattice
from sisam.engine.levels import GAMMA, mix

_GAMMA = np.uint64(GAMMA)
#: Bits of a key holding its shape index.
SHAPE_BITS = 8
_LOW_BITS = np.uint64(64 - SHAPE_BITS)


def factor_salt(name: str) -> np.uint64:
    """Stable 64-bit salt of a factor's name (BLAKE2b; never Python's salted ``hash``)."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8, person=b"sisam.factor")
    return np.uint64(int.from_bytes(digest.digest(), "little"))


@nb.njit(inline="always", nogil=True)
def shape_seed(salt, shape):
    """The fold's starting value at shape ``shape``, before any attribute is mixed in."""
    return mix(salt + np.uint64(shape + 1) * _GAMMA)


@nb.njit(inline="always", nogil=True)
def with_shape(shape, folded):
    """The key: ``shape`` in the top bits, the top of the folded mix below it."""
    return (np.uint64(shape) << _LOW_BITS) | (folded >> np.uint64(SHAPE_BITS))


@nb.njit(cache=True, nogil=True)
def pattern_keys(codes, lattice_levels, level_counts, salt):
    """uint64[n, S]: the key of every item at every shape.

    ``codes`` uint64[n, L, max_levels] holds attribute a's level codes in
    ``codes[:, a, :level_counts[a]]`` (the rest is padding, never read);
    ``lattice_levels`` int8[S, L] and ``level_counts`` int8[L] come from the ``Lattice``;
    ``salt`` is the factor's ``factor_salt``.

    Serial on purpose: on two cores shared with other work, splitting items across
    threads measured between 10 % faster and 60 % slower (writing n * S keys is bound by
    memory, and a busy second core stalls the team); callers that want both cores can
    key two factors at once, as the kernel releases the GIL.
    """
    n_shapes = lattice_levels.shape[0]
    if n_shapes > 1 << SHAPE_BITS:
        raise ValueError("a lattice of more than 256 shapes does not fit the keys' shape bits")
    seeds = _seeds(salt, n_shapes)
    out = np.empty((codes.shape[0], n_shapes), dtype=np.uint64)
    for i in range(codes.shape[0]):
        for s in range(n_shapes):
            out[i, s] = _key(codes, i, s, lattice_levels, level_counts, seeds)
    return out


@nb.njit(cache=True, nogil=True)
def pattern_keys_block(codes, lattice_levels, level_counts, salt, first, out):
    """``out[j, i]`` = the key of item i at shape ``first + j``, for the ``out.shape[0]``
    shapes from ``first``: ``pattern_keys`` transposed and restricted to a block of
    shapes, for counting, which reads shape by shape and need not hold every key."""
    n_shapes = lattice_levels.shape[0]
    if n_shapes > 1 << SHAPE_BITS:
        raise ValueError("a lattice of more than 256 shapes does not fit the keys' shape bits")
    seeds = _seeds(salt, n_shapes)
    for i in range(codes.shape[0]):
        for j in range(out.shape[0]):
            out[j, i] = _key(codes, i, first + j, lattice_levels, level_counts, seeds)


@nb.njit(inline="always", nogil=True)
def _seeds(salt, n_shapes):
    # A salt given as a Python int arrives as int64, and int64 + uint64 is float64 in
    # numba: make it unsigned before any arithmetic.
    unsigned_salt = np.uint64(salt)
    seeds = np.empty(n_shapes, dtype=np.uint64)
    for s in range(n_shapes):
        seeds[s] = shape_seed(unsigned_salt, s)
    return seeds


@nb.njit(inline="always", nogil=True)
def _key(codes, i, s, lattice_levels, level_counts, seeds):
    key = seeds[s]
    for a in range(codes.shape[1]):
        level = lattice_levels[s, a]
        if level < level_counts[a]:
            key = mix(key ^ codes[i, a, level])
    return with_shape(s, key)


@nb.njit(cache=True, nogil=True)
def distinct_rows(codes, level_counts):
    """(inverse int64[n], first int64[u]): the items grouped by their level codes.

    Items i and j fall in one group exactly when ``codes[i, a, l] == codes[j, a, l]`` at
    every level l < ``level_counts[a]`` of every attribute a (``codes`` as for
    ``pattern_keys``): then they have the same key at every shape, so anything computed
    from their keys is computed once per group. ``first[g]`` is the first item of group
    g, groups are numbered in order of their first item and ``inverse[i]`` is item i's
    group. Codes are compared in full, not through a hash of them: no two different
    items ever share a group.
    """
    n_items, n_attributes = codes.shape[0], codes.shape[1]
    capacity = 16
    while capacity < 2 * n_items:
        capacity *= 2
    mask = np.uint64(capacity - 1)
    slot_item = np.full(capacity, -1, dtype=np.int64)
    slot_hash = np.zeros(capacity, dtype=np.uint64)
    inverse = np.empty(n_items, dtype=np.int64)
    first = np.empty(n_items, dtype=np.int64)
    n_groups = 0
    for i in range(n_items):
        folded = np.uint64(n_attributes)
        for a in range(n_attributes):
            for level in range(level_counts[a]):
                folded = mix(folded ^ codes[i, a, level])
        slot = folded & mask
        while True:
            j = slot_item[slot]
            if j < 0:
                slot_item[slot] = i
                slot_hash[slot] = folded
                first[n_groups] = i
                inverse[i] = n_groups
                n_groups += 1
                break
            if slot_hash[slot] == folded and _same_codes(codes, i, j, level_counts):
                inverse[i] = inverse[j]
                break
            slot = (slot + np.uint64(1)) & mask
    return inverse, first[:n_groups].copy()


@nb.njit(inline="always", nogil=True)
def _same_codes(codes, i, j, level_counts):
    for a in range(codes.shape[1]):
        for level in range(level_counts[a]):
            if codes[i, a, level] != codes[j, a, level]:
                return False
    return True


def stack_codes(attribute_codes: Sequence[np.ndarray]) -> np.ndarray:
    """Stack a factor's per-attribute level codes (uint64[n, m_a] each, in the factor's
    attribute order) into the uint64[n, L, max m_a] array ``pattern_keys`` reads."""
    if not attribute_codes:
        raise ValueError("a factor needs at least one attribute")
    n = attribute_codes[0].shape[0]
    widths = [c.shape[1] for c in attribute_codes]
    if any(c.ndim != 2 or c.shape[0] != n for c in attribute_codes):
        shapes = [c.shape for c in attribute_codes]
        raise ValueError(f"level codes must be uint64[n, levels] with one n; got {shapes}")
    # Padding is zero rather than garbage so that the array is deterministic to inspect.
    stacked = np.zeros((n, len(widths), max(widths)), dtype=np.uint64)
    for a, codes in enumerate(attribute_codes):
        stacked[:, a, : widths[a]] = codes
    return stacked


def factor_keys(name: str, attribute_codes: Sequence[np.ndarray], lattice: Lattice) -> np.ndarray:
    """uint64[n, S] pattern keys of the factor ``name`` whose attributes have the level
    codes ``attribute_codes`` (one uint64[n, m_a] per attribute, factor order) and whose
    lattice is ``lattice`` (``build_lattice`` of the m_a)."""
    return pattern_keys(
        factor_codes(name, attribute_codes, lattice),
        lattice.levels,
        lattice.level_counts,
        factor_salt(name),
    )


class DistinctKeys(NamedTuple):
    """The pattern keys of a batch's distinct items (``distinct_rows``): item i's key at
    shape s is ``keys[inverse[i], s]``; distinct item g is item ``first[g]``."""

    keys: np.ndarray  # uint64[u, S]
    inverse: np.ndarray  # int64[n]
    first: np.ndarray  # int64[u]


def distinct_factor_keys(name: str, attribute_codes: Sequence[np.ndarray], lattice: Lattice) -> DistinctKeys:
    """``factor_keys`` of the distinct items only: items repeat (the same importer
    declaring the same goods), and every result that depends on the keys alone is the
    same for all copies of an item, so scoring computes it once per distinct item."""
    stacked = factor_codes(name, attribute_codes, lattice)
    inverse, first = distinct_rows(stacked, lattice.level_counts)
    keys = pattern_keys(stacked[first], lattice.levels, lattice.level_counts, factor_salt(name))
    return DistinctKeys(keys, inverse, first)


def factor_codes(name: str, attribute_codes: Sequence[np.ndarray], lattice: Lattice) -> np.ndarray:
    """``stack_codes(attribute_codes)``, checked against the factor's lattice."""
    widths = tuple(c.shape[1] for c in attribute_codes)
    expected = tuple(int(m) for m in lattice.level_counts)
    if widths != expected:
        raise ValueError(
            f"factor {name!r}: the lattice expects level counts {expected}, the codes have {widths}"
        )
    return stack_codes(attribute_codes)
