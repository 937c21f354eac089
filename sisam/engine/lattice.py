"""The lattice of patterns of one HPB factor (hpb.md, "Patterns and the lattice").

This is the single definition of the lattice: the learning kernels, the scoring kernels,
the knowledge base and any other back-end enumerate shapes and generalisations from here.

A factor has attributes a = 0..L-1; attribute a has ``m_a`` generalisation levels (level 0
the finest, level m_a - 1 the coarsest) plus the wildcard ``*``, written as level ``m_a``.
A shape picks one level per attribute, so there are prod(m_a + 1) shapes. The
generalisations of a shape are the shapes one step coarser in exactly one attribute.

Shapes are numbered so that every generalisation comes before the shapes it generalises:
shape 0 is the root (every attribute at ``*``) and the last shape is the full pattern
(every attribute at its finest level). Kernels rely on that order to evaluate the posterior
recursion bottom-up in a single pass.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

#: Above this many shapes a factor's lattice is too costly to score per item; hpb.md asks
#: for "below ~100 per node", the margin leaves room for a deep HS chain.
MAX_SHAPES = 256


class Lattice(NamedTuple):
    levels: np.ndarray  # int8[S, L]: level per attribute, m_a meaning "*"
    parents: np.ndarray  # int32[S, L]: generalisation shapes, -1 padded
    n_parents: np.ndarray  # int32[S]
    level_counts: np.ndarray  # int8[L]: m_a, levels before the wildcard

    @property
    def n_shapes(self) -> int:
        return int(self.levels.shape[0])

    @property
    def root(self) -> int:
        return 0

    @property
    def full(self) -> int:
        return self.n_shapes - 1


def build_lattice(level_counts: tuple[int, ...] | list[int]) -> Lattice:
    """Enumerate every shape of a factor whose attributes have ``level_counts`` levels."""
    counts = tuple(int(m) for m in level_counts)
    if not counts or min(counts) < 1:
        raise ValueError(f"every attribute needs at least one level, got {counts}")
    n_shapes = int(np.prod([m + 1 for m in counts]))
    if n_shapes > MAX_SHAPES:
        raise ValueError(
            f"a factor with level counts {counts} has {n_shapes} shapes, more than "
            f"{MAX_SHAPES}: split it into smaller groups of attributes"
        )
    # Coarseness = number of steps from the full pattern; sorting by decreasing coarseness
    # puts every generalisation (coarseness + 1) before its specialisations.
    all_shapes = list(itertools.product(*[range(m + 1) for m in counts]))
    all_shapes.sort(key=lambda s: (-sum(s), tuple(-x for x in s)))
    position = {shape: i for i, shape in enumerate(all_shapes)}
    n_attr = len(counts)
    levels = np.array(all_shapes, dtype=np.int8).reshape(n_shapes, n_attr)
    parents = np.full((n_shapes, n_attr), -1, dtype=np.int32)
    n_parents = np.zeros(n_shapes, dtype=np.int32)
    for i, shape in enumerate(all_shapes):
        for a in range(n_attr):
            if shape[a] < counts[a]:
                coarser = (*shape[:a], shape[a] + 1, *shape[a + 1:])
                parents[i, n_parents[i]] = position[coarser]
                n_parents[i] += 1
    return Lattice(levels, parents, n_parents, np.array(counts, dtype=np.int8))
