"""Counting one factor's patterns: the whole of learning (hpb.md, "Counts").

For every pattern W of a factor's lattice seen in the items, HPB needs ``N_W`` (all
declarations matching W), ``n_W`` (labelled, i.e. inspected, items matching W) and
``k_W,e`` (labelled items matching W having error e), for every label e at once. Items
arrive as their pattern keys (``keys.pattern_keys``: one uint64 per item and shape), their
labels (int8, a row of -1 for an item never inspected, else 0/1 per label) and optional
weights. ``count_factor`` takes the keys; ``count_factor_codes`` takes the attributes'
level codes and keys a block of shapes at a time, so that the keys of every shape are
never held at once.

How, and why so:

* Shape by shape, in an *ordered* hash table. A pattern's home slot is the top bits of
  its key, below the bits that all keys of the shape share (its shape index), and
  collisions probe forward (linear probing). Those bits are uniformly spread, so they
  hash as well as any, and the table ends up almost sorted by key: reading it slot by
  slot and repairing the few local inversions (insertion sort) gives the shape's
  patterns in key order without sorting them. The table starts small and doubles at
  half load, so the coarse shapes (the root, the HS chapter...) stay in cache and only
  the finest shapes pay for a table of the items' size. Accumulators live in the
  table's own slots: one probe per item, no indirection.
* Errors are sparse. Most labelled items have no error and those that do have a few, so
  error counts come only from the (item, label) pairs equal to 1, grouped by pattern
  with a counting sort (linear time), never through a dense [patterns, labels] array.
* Each shape's sorted patterns are appended to one arena. Keys made by ``pattern_keys``
  hold their shape index in their top bits, so shape after shape the arena is already in
  key order and is the result as it stands. Keys made otherwise (by hand in tests, say)
  are interleaved by a merge that cuts the key space into buckets by the keys' top bits
  and sorts bucket by bucket, reading every shape front to back. Two patterns sharing a
  key (a collision of the hash, or keys made so) are one pattern: their counts add up,
  exactly as ``counts.merge`` would add them.
* Memory is allocated by numpy on the Python side, handed to the kernels and reused from
  shape to shape (two sets of table buffers, one transposed block of keys): fresh memory
  costs page faults, hundreds of megabytes of them per factor, while reused memory costs
  one clearing pass. numpy also asks the kernel for huge pages, which keeps random
  probes into a large table cheap on the TLB.

Additivity is the contract: ``count_factor(A + B) == merge(count_factor(A),
count_factor(B))`` exactly whenever the weights are integers (sums of integer-valued
floats below 2**53 are exact in any order).

The kernels release the GIL: several factors can be counted side by side on threads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numba as nb
import numpy as np

from sisam.engine.counts import PatternCounts
from sisam.engine.keys import factor_codes, factor_salt, pattern_keys_block
from sisam.engine.lattice import Lattice

_FIRST_BITS = 10  # a new shape's table has 2**10 slots; the root needs one
_SHAPES_PER_BLOCK = 16  # shapes transposed together: 128 MB of keys per million items
_ROWS_PER_BUCKET = 512  # rows of one merge bucket: sorted in cache


@nb.njit(inline="always", nogil=True)
def _find(table_keys, table_N, key, skip, shift):
    """Slot holding ``key`` or the empty slot where it belongs; -1 if probing ran off the
    end of the table (the caller grows it). The home slot is the key's top bits after the
    ``skip`` bits that every key of the shape shares (its shape index, ``keys.py``). An
    empty slot has N == 0: only items of positive weight are counted, so an occupied slot
    always has N > 0."""
    slot = np.int64((key << skip) >> shift)
    size = table_keys.shape[0]
    while slot < size:
        if table_N[slot] == 0.0 or table_keys[slot] == key:
            return slot
        slot += 1
    return -1


@nb.njit(cache=True, nogil=True)
def _insert_items(
    column, weights, labelled, table_keys, table_N, table_n, skip, bits, n_pat, start
):
    """Add items ``start``, ``start + 1``, ... of a shape's key ``column`` to the table
    until the end, or until the table must grow; returns (first item not added, patterns).

    Growing is left to the caller on purpose: a hot loop that may rebind its arrays makes
    numba maintain reference counts on every iteration, several times slower.
    """
    skip, shift = np.uint64(skip), np.uint64(64 - bits)
    max_patterns = (1 << bits) // 2  # load at most one half: probes stay short
    for i in range(start, column.shape[0]):
        w = weights[i]
        if w == 0.0:
            continue
        key = column[i]
        slot = _find(table_keys, table_N, key, skip, shift)
        if slot < 0:
            return i, n_pat
        if table_N[slot] == 0.0:
            if n_pat == max_patterns:
                return i, n_pat
            n_pat += 1
            table_keys[slot] = key
        table_N[slot] += w
        if labelled[i]:
            table_n[slot] += w
    return column.shape[0], n_pat


@nb.njit(cache=True, nogil=True)
def _rehash(old_keys, old_N, old_n, new_keys, new_N, new_n, skip, bits):
    """Move every pattern into the (empty) larger table; False if probing ran off its end."""
    skip, shift = np.uint64(skip), np.uint64(64 - bits)
    for old in range(old_keys.shape[0]):
        if old_N[old] != 0.0:
            slot = _find(new_keys, new_N, old_keys[old], skip, shift)
            if slot < 0:
                return False
            new_keys[slot] = old_keys[old]
            new_N[slot] = old_N[old]
            new_n[slot] = old_n[old]
    return True


@nb.njit(cache=True, nogil=True)
def _read_out(
    table_keys, table_N, table_n, skip, bits, n_pat,
    column, weights, err_items, err_ptr, err_labels,
    a_keys, a_n, a_N, a_ptr, a_label, a_k, row0, nnz0,
    row_of_slot, scratch,
):  # fmt: skip
    """Append the table's patterns, sorted, to the arena at row ``row0`` and their error
    counts at entry ``nnz0`` (``a_ptr`` global, ``a_ptr[row0] == nnz0``); returns the
    arena's new (rows, entries).

    Read slot by slot, a pattern sits at or after its home slot, so the keys come out
    sorted up to short local inversions, which insertion sort repairs in about linear
    time. Error entries: ``err_items`` are the labelled items of positive weight having
    at least one error, with labels ``err_labels[err_ptr[j]:err_ptr[j + 1]]``; they are
    bucketed by pattern with a counting sort, then summed by label in ``scratch``
    (float64[n_labels] of zeros). ``row_of_slot`` (int64[table size]) is scratch too,
    left untouched when there are no errors to place.
    """
    n_err_items = err_items.shape[0]
    skip, shift = np.uint64(skip), np.uint64(64 - bits)
    r = 0
    for slot in range(table_keys.shape[0]):
        if table_N[slot] != 0.0:
            key, j = table_keys[slot], row0 + r
            while j > row0 and a_keys[j - 1] > key:
                a_keys[j] = a_keys[j - 1]
                a_N[j] = a_N[j - 1]
                a_n[j] = a_n[j - 1]
                if n_err_items:
                    # The displaced pattern sits a few slots back: still in cache.
                    row_of_slot[_find(table_keys, table_N, a_keys[j], skip, shift)] = j - row0
                j -= 1
            a_keys[j], a_N[j], a_n[j] = key, table_N[slot], table_n[slot]
            if n_err_items:
                row_of_slot[slot] = j - row0  # slots ascend: a streaming write
            r += 1

    item_row = np.empty(n_err_items, dtype=np.int64)
    bucket_start = np.zeros(n_pat + 1, dtype=np.int64)
    for j in range(n_err_items):
        item_row[j] = row_of_slot[_find(table_keys, table_N, column[err_items[j]], skip, shift)]
        bucket_start[item_row[j] + 1] += err_ptr[j + 1] - err_ptr[j]
    for row in range(n_pat):
        bucket_start[row + 1] += bucket_start[row]
    fill = bucket_start[:-1].copy()
    bucket_label = np.empty(bucket_start[n_pat], dtype=np.int64)
    bucket_w = np.empty(bucket_start[n_pat], dtype=np.float64)
    for j in range(n_err_items):
        row = item_row[j]
        for p in range(err_ptr[j], err_ptr[j + 1]):
            bucket_label[fill[row]] = err_labels[p]
            bucket_w[fill[row]] = weights[err_items[j]]
            fill[row] += 1

    touched = np.zeros(scratch.shape[0], dtype=np.bool_)
    nnz = nnz0
    for row in range(n_pat):
        if bucket_start[row + 1] > bucket_start[row]:
            for p in range(bucket_start[row], bucket_start[row + 1]):
                scratch[bucket_label[p]] += bucket_w[p]
                touched[bucket_label[p]] = True
            nnz = _flush(scratch, touched, a_label, a_k, nnz)
        a_ptr[row0 + row + 1] = nnz
    return row0 + n_pat, nnz


@nb.njit(inline="always", nogil=True)
def _flush(scratch, touched, out_label, out_k, nnz):
    """Write the touched labels of ``scratch`` at entry ``nnz`` (ascending, by scanning
    the few labels rather than sorting) and reset them; returns the new entry count."""
    for e in range(scratch.shape[0]):
        if touched[e]:
            out_label[nnz] = e
            out_k[nnz] = scratch[e]
            nnz += 1
            scratch[e] = 0.0
            touched[e] = False
    return nnz


@nb.njit(cache=True, nogil=True)
def _merge_parts(
    bounds, bucket_bits, keys, n, N, err_ptr, err_label, err_k,
    out_keys, out_n, out_N, out_ptr, out_label, out_k, scratch,
):  # fmt: skip
    """Interleave sorted parts into one key order, summing the counts of equal keys;
    returns (patterns, entries) written to the ``out_*`` arrays.

    The inputs are the arena (``err_ptr`` global); the key space is cut into buckets by
    the keys' top ``bucket_bits`` bits, and ``bounds[p, b]:bounds[p, b + 1]`` are the
    rows of part p in bucket b. Bucket by bucket, each part's run is read in sequence and
    the bucket's few hundred rows are sorted in cache: every array is read front to back,
    never at random, which matters once the counts outgrow the caches.
    """
    n_parts, n_buckets = bounds.shape[0], bounds.shape[1] - 1
    touched = np.zeros(scratch.shape[0], dtype=np.bool_)
    largest = 0
    for b in range(n_buckets):
        largest = max(largest, np.sum(bounds[:, b + 1] - bounds[:, b]))
    rows = np.empty(largest, dtype=np.int64)
    bucket_keys = np.empty(largest, dtype=np.uint64)
    spare_rows = np.empty(largest, dtype=np.int64)
    spare_keys = np.empty(largest, dtype=np.uint64)
    bins = np.empty(4 * largest + 1, dtype=np.int64)  # _sort_by_key uses < 4m bins
    out_ptr[0] = 0
    n_out = 0
    nnz = 0
    for b in range(n_buckets):
        m = 0
        for p in range(n_parts):
            for row in range(bounds[p, b], bounds[p, b + 1]):
                rows[m] = row
                bucket_keys[m] = keys[row]
                m += 1
        _sort_by_key(bucket_keys, rows, m, bucket_bits, spare_keys, spare_rows, bins)
        for q in range(m):
            row = rows[q]
            if n_out == 0 or keys[row] != out_keys[n_out - 1]:
                out_keys[n_out] = keys[row]
                out_n[n_out] = n[row]
                out_N[n_out] = N[row]
                for e in range(err_ptr[row], err_ptr[row + 1]):
                    out_label[nnz] = err_label[e]
                    out_k[nnz] = err_k[e]
                    nnz += 1
                n_out += 1
            else:
                # A 64-bit key collision: the counts add up, as in ``counts.merge``.
                out_n[n_out - 1] += n[row]
                out_N[n_out - 1] += N[row]
                for e in range(out_ptr[n_out - 1], nnz):
                    scratch[out_label[e]] += out_k[e]
                    touched[out_label[e]] = True
                for e in range(err_ptr[row], err_ptr[row + 1]):
                    scratch[err_label[e]] += err_k[e]
                    touched[err_label[e]] = True
                nnz = _flush(scratch, touched, out_label, out_k, out_ptr[n_out - 1])
            out_ptr[n_out] = nnz
    return n_out, nnz


@nb.njit(inline="always", nogil=True)
def _sort_by_key(keys, rows, m, known_bits, spare_keys, spare_rows, bins):
    """Sort ``keys[:m]`` (and ``rows[:m]`` alongside) whose top ``known_bits`` bits are all
    equal: distribute by the next bits into about 2m bins (counting sort), which leaves
    uniform keys nearly sorted, then finish with insertion sort. Linear for mixed keys,
    unlike a comparison sort."""
    if m < 2:
        return
    bin_bits = 1
    while (1 << bin_bits) < 2 * m and bin_bits + known_bits < 64:
        bin_bits += 1
    shift = np.uint64(64 - bin_bits)
    n_bins = 1 << bin_bits
    bins[: n_bins + 1] = 0
    for q in range(m):
        bins[np.int64((keys[q] << np.uint64(known_bits)) >> shift) + 1] += 1
    for k in range(n_bins):
        bins[k + 1] += bins[k]
    for q in range(m):
        k = np.int64((keys[q] << np.uint64(known_bits)) >> shift)
        spare_keys[bins[k]] = keys[q]
        spare_rows[bins[k]] = rows[q]
        bins[k] += 1
    for q in range(m):
        key, row, j = spare_keys[q], spare_rows[q], q
        while j > 0 and keys[j - 1] > key:
            keys[j] = keys[j - 1]
            rows[j] = rows[j - 1]
            j -= 1
        keys[j] = key
        rows[j] = row


@nb.njit(cache=True, nogil=True)
def _transpose(keys, first, out):
    """``out[s] = keys[:, first + s]``: each item's keys of the block share one or two
    cache lines, read once; the block's columns are written as parallel streams. (A
    third faster than numpy's copy of the transposed view.)"""
    for i in range(keys.shape[0]):
        for s in range(out.shape[0]):
            out[s, i] = keys[i, first + s]


@nb.njit(cache=True, nogil=True)
def _scan_labels(labels, weights):
    """One pass over the label matrix: (labelled bool[n], the items of positive weight
    with an error, their labels in CSR form, the first malformed row or -1)."""
    n_items, n_labels = labels.shape
    labelled = np.zeros(n_items, dtype=np.bool_)
    n_err_items = 0
    n_pairs = 0
    for i in range(n_items):
        unlabelled = positive = other = 0
        for e in range(n_labels):
            y = labels[i, e]
            unlabelled += y == -1
            positive += y == 1
            other += y < -1 or y > 1
        if other or (unlabelled and unlabelled != n_labels):
            return labelled, np.empty(0, np.int64), np.zeros(1, np.int64), np.empty(0, np.int16), i
        labelled[i] = unlabelled == 0
        if positive and weights[i] > 0.0:
            n_err_items += 1
            n_pairs += positive
    err_items = np.empty(n_err_items, dtype=np.int64)
    err_ptr = np.zeros(n_err_items + 1, dtype=np.int64)
    err_labels = np.empty(n_pairs, dtype=np.int16)
    j = 0
    p = 0
    for i in range(n_items):
        if labelled[i] and weights[i] > 0.0:
            first = p
            for e in range(n_labels):
                if labels[i, e] == 1:
                    err_labels[p] = e
                    p += 1
            if p > first:
                err_items[j] = i
                j += 1
                err_ptr[j] = p
    return labelled, err_items, err_ptr, err_labels, -1


@dataclass
class _Table:
    """One shape's ordered hash table: ``2**bits`` home slots plus spill room past the
    last one for clusters that start near the end (at half load, a cluster longer than
    ``2**bits / 16`` slots is vanishingly rare for mixed keys). Its arrays are views of
    the buffers of a ``_Tables`` pool, set ``side``."""

    keys: np.ndarray
    N: np.ndarray
    n: np.ndarray
    skip: int
    bits: int
    side: int


class _Tables:
    """Two sets of table buffers, reused shape after shape: a growing table is rehashed
    from one set into the other. Fresh memory costs page faults (hundreds of megabytes
    per factor), reused memory only a clearing pass."""

    def __init__(self) -> None:
        self._buffers: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = [None, None]
        self._row_of_slot = np.empty(0, dtype=np.int64)

    def empty(self, skip: int, bits: int, side: int = 0, spill: int | None = None) -> _Table:
        size = (1 << bits) + (max(64, (1 << bits) >> 4) if spill is None else spill)
        buffers = self._buffers[side]
        if buffers is None or buffers[0].shape[0] < size:
            buffers = (np.empty(size, np.uint64), np.empty(size), np.empty(size))
            self._buffers[side] = buffers
        keys, N, n = (b[:size] for b in buffers)
        N.fill(0.0)
        n.fill(0.0)
        return _Table(keys, N, n, skip, bits, side)

    def grown(self, table: _Table) -> _Table:
        """Twice the home slots, the same patterns, in the other set of buffers."""
        bigger = self.empty(table.skip, table.bits + 1, 1 - table.side)
        while not _rehash(
            table.keys, table.N, table.n, bigger.keys, bigger.N, bigger.n, bigger.skip, bigger.bits
        ):
            # Only keys that are not well mixed (hand-made ones in tests) pile up so.
            spill = 2 * (bigger.keys.shape[0] - (1 << bigger.bits))
            bigger = self.empty(bigger.skip, bigger.bits, bigger.side, spill)
        return bigger

    def row_of_slot(self, table: _Table) -> np.ndarray:
        """Scratch int64[table size] for ``_read_out``."""
        if self._row_of_slot.shape[0] < table.keys.shape[0]:
            self._row_of_slot = np.empty(table.keys.shape[0], dtype=np.int64)
        return self._row_of_slot[: table.keys.shape[0]]


@dataclass
class _Arena:
    """Arrays where the shapes' sorted patterns are appended one after another.

    Capacity is reserved generously up front: pages never written cost nothing, and
    growing means copying everything written so far.
    """

    keys: np.ndarray
    n: np.ndarray
    N: np.ndarray
    err_ptr: np.ndarray
    err_label: np.ndarray
    err_k: np.ndarray
    rows: int = 0
    entries: int = 0

    @classmethod
    def with_capacity(cls, rows: int, entries: int) -> _Arena:
        return cls(
            np.empty(rows, dtype=np.uint64),
            np.empty(rows, dtype=np.float64),
            np.empty(rows, dtype=np.float64),
            np.zeros(rows + 1, dtype=np.int64),
            np.empty(entries, dtype=np.int16),
            np.empty(entries, dtype=np.float64),
        )

    def reserve(self, rows: int, entries: int) -> None:
        """Make room for ``rows`` more patterns and ``entries`` more error entries."""
        if self.rows + rows > self.keys.shape[0]:
            size = max(2 * self.keys.shape[0], self.rows + rows)
            self.keys = _grown(self.keys, size, self.rows)
            self.n = _grown(self.n, size, self.rows)
            self.N = _grown(self.N, size, self.rows)
            self.err_ptr = _grown(self.err_ptr, size + 1, self.rows + 1)
        if self.entries + entries > self.err_label.shape[0]:
            size = max(2 * self.err_label.shape[0], self.entries + entries)
            self.err_label = _grown(self.err_label, size, self.entries)
            self.err_k = _grown(self.err_k, size, self.entries)


def _grown(array: np.ndarray, size: int, used: int) -> np.ndarray:
    out = np.empty(size, dtype=array.dtype)
    out[:used] = array[:used]
    return out


def _shared_top_bits(column: np.ndarray) -> int:
    """How many leading bits all keys of a shape share (8 for ``pattern_keys``: the shape
    index); the table hashes by the bits below them, which are spread."""
    if column.size == 0:
        return 0
    spread = int(column.min()) ^ int(column.max())
    return 64 - spread.bit_length() if spread else 0


def count_factor(
    keys: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
) -> PatternCounts:
    """Count a factor's patterns over items.

    ``keys`` uint64[n, S] from ``keys.pattern_keys``; ``labels`` int8[n, E] (a row of -1:
    never inspected; else 0/1 per label, label order ``Knowledge.label_ids``); ``weights``
    float64[n] >= 0 (default 1; an item of weight 0 is not counted at all).

    Returns the ``PatternCounts`` of every pattern met: ``N`` sums the weights of all
    items matching it, ``n`` those of the labelled ones, ``k`` those of the labelled ones
    having each error. Its arrays may be views of larger buffers whose tails were
    reserved but never written (no memory is resident there).
    """
    keys = np.asarray(keys)
    if keys.ndim != 2 or keys.dtype != np.uint64:
        raise ValueError(
            f"keys must be uint64[n_items, n_shapes]; got {keys.dtype}{list(keys.shape)}"
        )

    def fill(first: int, block: np.ndarray) -> None:
        # Reading one shape's keys down a row-major [n, S] array would pull every item's
        # whole row through the cache, once per shape; a block of shapes transposed at
        # once is read once and then counted column by column.
        _transpose(keys, first, block)

    return _count(keys.shape[0], keys.shape[1], fill, labels, weights)


def count_factor_codes(
    name: str,
    attribute_codes: Sequence[np.ndarray],
    lattice: Lattice,
    labels: np.ndarray,
    weights: np.ndarray | None = None,
) -> PatternCounts:
    """``count_factor(factor_keys(name, attribute_codes, lattice), labels, weights)``, bit
    for bit, without ever holding the uint64[n, S] keys: each block of shapes is keyed
    as it is counted. Learning needs the keys for nothing else, and they are the largest
    array of the factor (320 MB per million items at 40 shapes), written once and read
    once, so not making them saves their memory and about a fifth of the time."""
    codes = factor_codes(name, attribute_codes, lattice)
    salt = factor_salt(name)

    def fill(first: int, block: np.ndarray) -> None:
        pattern_keys_block(codes, lattice.levels, lattice.level_counts, salt, first, block)

    return _count(codes.shape[0], lattice.n_shapes, fill, labels, weights)


def _count(
    n_items: int,
    n_shapes: int,
    fill: Callable[[int, np.ndarray], None],
    labels: np.ndarray,
    weights: np.ndarray | None,
) -> PatternCounts:
    """Count the patterns of ``n_shapes`` shapes whose keys ``fill(first, block)`` writes,
    shape ``first + j`` of every item into ``block[j]``, a block of shapes at a time."""
    labels = np.ascontiguousarray(labels, dtype=np.int8)
    if labels.ndim != 2 or labels.shape[0] != n_items or not 0 < labels.shape[1] <= 2**15:
        raise ValueError(
            f"labels must be int8[n_items={n_items}, 1 <= n_labels <= 32768]; "
            f"got shape {labels.shape}"
        )
    if weights is None:
        weights = np.ones(n_items, dtype=np.float64)
    else:
        weights = np.ascontiguousarray(weights, dtype=np.float64)
        if weights.shape != (n_items,) or not (np.isfinite(weights) & (weights >= 0)).all():
            raise ValueError(
                f"weights must be float64[n_items={n_items}], finite and >= 0; "
                f"got shape {weights.shape}"
            )
    labelled, err_items, err_ptr, err_labels, bad_row = _scan_labels(labels, weights)
    if bad_row >= 0:
        raise ValueError(
            "labels must be 0/1 for an inspected item and -1 on the whole row for an item "
            f"never inspected; row {bad_row} is {labels[bad_row].tolist()}"
        )
    n_labels = labels.shape[1]
    n_pairs = int(err_ptr[-1])
    scratch = np.zeros(n_labels, dtype=np.float64)

    # Sixteen patterns per item cover a factor of forty shapes over heavy-tailed data.
    arena = _Arena.with_capacity(
        min(n_items * n_shapes, 16 * n_items + 1024), min(n_pairs * n_shapes, 16 * n_pairs + 1024)
    )
    part_start = [0]
    tables = _Tables()
    block = np.empty((min(_SHAPES_PER_BLOCK, n_shapes), n_items), dtype=np.uint64)
    for first in range(0, n_shapes, _SHAPES_PER_BLOCK):
        width = min(_SHAPES_PER_BLOCK, n_shapes - first)
        fill(first, block[:width])
        for column in block[:width]:
            table = tables.empty(_shared_top_bits(column), _FIRST_BITS)
            start, n_pat = 0, 0
            while True:
                start, n_pat = _insert_items(
                    column, weights, labelled, table.keys, table.N, table.n, table.skip,
                    table.bits, n_pat, start,
                )  # fmt: skip
                if start == n_items:
                    break
                table = tables.grown(table)
            arena.reserve(n_pat, n_pairs)
            arena.rows, arena.entries = _read_out(
                table.keys, table.N, table.n, table.skip, table.bits, n_pat,
                column, weights, err_items, err_ptr, err_labels,
                arena.keys, arena.n, arena.N, arena.err_ptr, arena.err_label, arena.err_k,
                arena.rows, arena.entries,
                tables.row_of_slot(table),
                scratch,
            )  # fmt: skip
            part_start.append(arena.rows)
    del tables, block
    return _merge(arena, np.array(part_start, dtype=np.int64), scratch)


def _merge(arena: _Arena, part_start: np.ndarray, scratch: np.ndarray) -> PatternCounts:
    """One ``PatternCounts`` from the arena's sorted parts (see ``_merge_parts``)."""
    rows, entries = arena.rows, arena.entries
    filled = np.flatnonzero(np.diff(part_start) > 0)
    firsts, lasts = arena.keys[part_start[filled]], arena.keys[part_start[filled + 1] - 1]
    if (lasts[:-1] < firsts[1:]).all():
        # Keys from ``pattern_keys`` carry their shape in their top bits, so the shapes,
        # counted in order, are already in key order: the arena is the result. Its
        # arrays were reserved larger; the unused tail was never touched.
        return PatternCounts(
            arena.keys[:rows],
            arena.n[:rows],
            arena.N[:rows],
            arena.err_ptr[: rows + 1],
            arena.err_label[:entries],
            arena.err_k[:entries],
        )
    bucket_bits = min(20, max(0, int(rows // _ROWS_PER_BUCKET).bit_length() - 1))
    edges = np.arange(1 << bucket_bits, dtype=np.uint64)
    if bucket_bits:
        edges <<= np.uint64(64 - bucket_bits)
    bounds = np.empty((part_start.size - 1, edges.size + 1), dtype=np.int64)
    for p in range(part_start.size - 1):
        part = arena.keys[part_start[p] : part_start[p + 1]]
        bounds[p, :-1] = part_start[p] + np.searchsorted(part, edges)
        bounds[p, -1] = part_start[p + 1]
    out = PatternCounts(
        np.empty(rows, dtype=np.uint64),
        np.empty(rows, dtype=np.float64),
        np.empty(rows, dtype=np.float64),
        np.empty(rows + 1, dtype=np.int64),
        np.empty(entries, dtype=np.int16),
        np.empty(entries, dtype=np.float64),
    )
    n_out, nnz = _merge_parts(
        bounds, bucket_bits,
        arena.keys[:rows], arena.n[:rows], arena.N[:rows],
        arena.err_ptr[: rows + 1], arena.err_label[:entries], arena.err_k[:entries],
        *out, scratch,
    )  # fmt: skip
    if n_out == rows:
        return out
    # Key collisions merged some patterns: trim (a copy, so the buffers shrink too).
    return PatternCounts(
        out.keys[:n_out].copy(),
        out.n[:n_out].copy(),
        out.N[:n_out].copy(),
        out.err_ptr[: n_out + 1].copy(),
        out.err_label[:nnz].copy(),
        out.err_k[:nnz].copy(),
    )


def merge_counts(parts: Sequence[PatternCounts], n_labels: int) -> PatternCounts:
    """``counts.merge(*parts)``, bit for bit, in linear time: each part is already sorted by
    key, so the parts are laid end to end and interleaved bucket by bucket as the shapes of
    one factor are (``_merge_parts``). Chunked learning and per-partition counting merge a
    chunk's counts into the running total this way; ``n_labels`` sizes the scratch row."""
    parts = [p for p in parts if p.n_patterns]
    if not parts:
        return PatternCounts.empty()
    if len(parts) == 1:
        return parts[0]
    rows = sum(p.n_patterns for p in parts)
    entries = sum(int(p.err_ptr[-1]) for p in parts)
    arena = _Arena.with_capacity(rows, entries)
    part_start = [0]
    for p in parts:
        r, e = arena.rows, arena.entries
        m, nnz = p.n_patterns, int(p.err_ptr[-1])
        arena.keys[r : r + m] = p.keys
        arena.n[r : r + m] = p.n
        arena.N[r : r + m] = p.N
        arena.err_ptr[r + 1 : r + m + 1] = p.err_ptr[1:] + e
        arena.err_label[e : e + nnz] = p.err_label[:nnz]
        arena.err_k[e : e + nnz] = p.err_k[:nnz]
        arena.rows, arena.entries = r + m, e + nnz
        part_start.append(arena.rows)
    return _merge(arena, np.array(part_start, dtype=np.int64), np.zeros(n_labels, dtype=np.float64))
