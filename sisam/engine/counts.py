"""Pattern counts: the whole state sisam learns (hpb.md, "Counts").

Counts are additive: a day's counts, a partition's counts and the whole history's counts
are the same kind of object and merge by addition; old knowledge decays by scaling.
Probabilities are never stored; they are recomputed from counts.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class PatternCounts(NamedTuple):
    """Counts of one factor's patterns, sorted by key, keys unique.

    ``n[r]`` labelled (inspected) items matching pattern r, ``N[r]`` all declarations
    matching it; error counts are sparse in CSR form: the labels of pattern r are
    ``err_label[err_ptr[r]:err_ptr[r+1]]`` (ascending, label index into the catalog's
    errors plus the trailing "any error" label) with counts ``err_k[...]`` (> 0).
    """

    keys: np.ndarray  # uint64[P]
    n: np.ndarray  # float64[P]
    N: np.ndarray  # float64[P]
    err_ptr: np.ndarray  # int64[P + 1]
    err_label: np.ndarray  # int16[nnz]
    err_k: np.ndarray  # float64[nnz]

    @property
    def n_patterns(self) -> int:
        return int(self.keys.shape[0])

    @classmethod
    def empty(cls) -> PatternCounts:
        return cls(
            np.zeros(0, np.uint64),
            np.zeros(0, np.float64),
            np.zeros(0, np.float64),
            np.zeros(1, np.int64),
            np.zeros(0, np.int16),
            np.zeros(0, np.float64),
        )

    def scaled(self, factor: float) -> PatternCounts:
        """Every count multiplied by ``factor`` (decay of old knowledge)."""
        return self._replace(n=self.n * factor, N=self.N * factor, err_k=self.err_k * factor)

    def dense_errors(self, n_labels: int) -> np.ndarray:
        """float64[P, n_labels] error counts; for tests and small worlds only."""
        out = np.zeros((self.n_patterns, n_labels))
        rows = np.repeat(np.arange(self.n_patterns), np.diff(self.err_ptr))
        out[rows, self.err_label] = self.err_k
        return out


def merge(*parts: PatternCounts) -> PatternCounts:
    """Sum of several ``PatternCounts``: union of keys, counts added."""
    parts = tuple(p for p in parts if p.n_patterns)
    if not parts:
        return PatternCounts.empty()
    if len(parts) == 1:
        return parts[0]
    all_keys = np.concatenate([p.keys for p in parts])
    keys, inverse = np.unique(all_keys, return_inverse=True)
    n = np.bincount(inverse, weights=np.concatenate([p.n for p in parts]), minlength=keys.size)
    N = np.bincount(inverse, weights=np.concatenate([p.N for p in parts]), minlength=keys.size)
    # error entries: (new row, label) pairs summed
    rows, labels, ks = [], [], []
    offset = 0
    for p in parts:
        pattern_of_entry = np.repeat(np.arange(p.n_patterns), np.diff(p.err_ptr))
        rows.append(inverse[offset + pattern_of_entry])
        labels.append(p.err_label.astype(np.int64))
        ks.append(p.err_k)
        offset += p.n_patterns
    rows_a, labels_a, ks_a = np.concatenate(rows), np.concatenate(labels), np.concatenate(ks)
    n_labels = int(labels_a.max()) + 1 if labels_a.size else 1
    pair = rows_a * n_labels + labels_a
    pairs, pair_inverse = np.unique(pair, return_inverse=True)
    # bincount of an empty input is int64 whatever the weights: keep counts float64
    k = np.bincount(pair_inverse, weights=ks_a, minlength=pairs.size).astype(np.float64, copy=False)
    pair_rows = pairs // n_labels
    err_ptr = np.zeros(keys.size + 1, np.int64)
    np.cumsum(np.bincount(pair_rows, minlength=keys.size), out=err_ptr[1:])
    return PatternCounts(
        keys.astype(np.uint64),
        n,
        N,
        err_ptr,
        (pairs % n_labels).astype(np.int16),
        k,
    )
