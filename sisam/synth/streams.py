"""Named random streams: every part of the world draws from its own seeded generator.

A stream is keyed by the world's seed and a name, so adding draws to one part of the
generator never shifts the numbers another part sees, and the same seed always gives the
same world (architecture.md: every random choice takes a seed).
"""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, name: str) -> np.random.Generator:
    """The generator of the part ``name`` of the world built from ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, seed >> 32, zlib.crc32(name.encode())]))


def grouped_choice(ptr: np.ndarray, cum: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index of one element per draw, chosen inside its row of a CSR list by weight.

    ``ptr`` (int64[R+1]) delimits the rows, ``cum`` (float64) holds for every element the
    row number plus the cumulative weight of the elements before it, normalised so a row
    spans [row, row + 1). Draw i picks in row ``rows[i]`` with the uniform ``u[i]``: one
    ``searchsorted`` for all draws, no loop over rows. Every row must be non-empty.
    """
    pos = np.searchsorted(cum, rows + u, side="right") - 1
    return np.clip(pos, ptr[rows], ptr[rows + 1] - 1)


def csr_cumulative(ptr: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The ``cum`` array of :func:`grouped_choice` for rows ``ptr`` and element weights > 0."""
    sizes = np.diff(ptr)
    row = np.repeat(np.arange(len(sizes)), sizes)
    total = np.bincount(row, weights, minlength=len(sizes))
    before = np.cumsum(weights) - weights
    row_start = np.zeros(len(sizes))
    nonempty = sizes > 0
    row_start[nonempty] = before[ptr[:-1][nonempty]]
    return row + (before - row_start[row]) / total[row]
