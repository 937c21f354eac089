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

import numba as nb
import numpy as np

from sisam.engine.lattice import Lattice
from sisam.engine.levels import GAMMA

_GAMMA = np.uint64(GAMMA)
#: Bits of a key holding its shape index.
SHAPE_BITS = 8
_LOW_BITS = np.uint64(64 - SHAPE_BITS)


def factor_salt(name: str) -> np.uint64:
    """Stable 64-bit salt of a factor's name (BLAKE2b; never Python's salted ``hash``)."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8, person=b"sisam.factor")
    return np.uint64(int.from_bytes(digest.digest(), "little"))


@nb.njit(inline="always", nogil=True)
def mix(x):
    """splitmix64's finaliser (uint64 -> uint64, a bijection with full avalanche)."""
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


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


def factor_codes(name: str, attribute_codes: Sequence[np.ndarray], lattice: Lattice) -> np.ndarray:
    """``stack_codes(attribute_codes)``, checked against the factor's lattice."""
    widths = tuple(c.shape[1] for c in attribute_codes)
    expected = tuple(int(m) for m in lattice.level_counts)
    if widths != expected:
        raise ValueError(
            f"factor {name!r}: the lattice expects level counts {expected}, the codes have {widths}"
        )
    return stack_codes(attribute_codes)
