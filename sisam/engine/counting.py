"""Counting one factor's patterns: the whole of learning (hpb.md, "Counts").

For every pattern W of a factor's lattice seen in the items, HPB needs ``N_W`` (all
declarations matching W), ``n_W`` (labelled, i.e. inspected, items matching W) and
``k_W,e`` (labelled items matching W having error e), for every label e at once. Items
arrive as their pattern keys (``keys.pattern_keys``: one uint64 per item and shape), their
labels (int8, a row of -1 for an item never inspected, else 0/1 per label) and optional
weights.

How, and why so:

* Shape by shape, in an *ordered* hash table. A pattern's home slot is the top bits of
  its key, and collisions probe forward (linear probing). Keys are uniformly spread, so
  the top bits hash as well as any, and the table ends up almost sorted by key: reading
  it slot by slot and repairing the few local inversions (insertion sort) gives the
  shape's patterns in key order without sorting them. The table starts small and
  doubles at half load, so the coarse shapes (the root, the HS chapter...) stay in cache
  and only the finest shapes pay for a table of the items' size. Accumulators live in
  the table's own slots: one probe per item, no indirection.
* Errors are sparse. Most labelled items have no error and those that do have a few, so
  error counts come only from the (item, label) pairs equal to 1, grouped by pattern
  with a counting sort (linear time), never through a dense [patterns, labels] array.
* One merge at the end. Each shape's patterns come out sorted; a k-way merge (binary
  heap over the shapes) interleaves them into the final key order reading each shape
  sequentially. Keys of different shapes never coincide in practice (the shape is mixed
  into the key); should two patterns share a key all the same (a 64-bit collision),
  their counts are added, exactly what ``counts.merge`` would do.

Additivity is the contract: ``count_factor(A + B) == merge(count_factor(A),
count_factor(B))`` exactly whenever the weights are integers (sums of integer-valued
floats below 2**53 are exact in any order).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba as nb
import numpy as np

from sisam.engine.counts import PatternCounts

_FIRST_BITS = 10  # a new shape's table has 2**10 slots; the root needs one
_SHAPES_PER_BLOCK = 8  # shapes transposed together: 64 MB of keys per million items
_ROWS_PER_BUCKET = 512


@nb.njit(inline="always", nogil=True)
def _find(table_keys, table_N, key, shift):
    """Slot holding ``key`` or the empty slot where it belongs; -1 if probing ran off the
    end of the table (the caller grows it). An empty slot has N == 0: only items of
    positive weight are counted, so an occupied slot always has N > 0."""
    slot = np.int64(key >> shift)
    size = table_keys.shape[0]
    while slot < size:
        if table_N[slot] == 0.0 or table_keys[slot] == key:
            return slot
        slot += 1
    return -1


@nb.njit(cache=True, nogil=True)
def _grow(table_keys, table_N, table_n, bits):
    """Twice the slots (and spill room), the same patterns; returns the new table."""
    bits += 1
    size = (1 << bits) + _spill(bits)
    while True:
        new_keys = np.empty(size, dtype=np.uint64)
        new_N = np.zeros(size, dtype=np.float64)
        new_n = np.zeros(size, dtype=np.float64)
        shift = np.uint64(64 - bits)
        ok = True
        for old in range(table_keys.shape[0]):
            if table_N[old] != 0.0:
                slot = _find(new_keys, new_N, table_keys[old], shift)
                if slot < 0:
                    ok = False
                    break
                new_keys[slot] = table_keys[old]
                new_N[slot] = table_N[old]
                new_n[slot] = table_n[old]
        if ok:
            return new_keys, new_N, new_n, bits
        # Only keys that are not well mixed (hand-made ones in tests) pile up so much.
        size *= 2


@nb.njit(inline="always", nogil=True)
def _spill(bits):
    """Slots past the last home slot, for clusters that start near the end. At half load
    a cluster longer than this is vanishingly rare for mixed keys."""
    return max(64, (1 << bits) >> 4)


@nb.njit(cache=True, nogil=True)
def _insert_items(column, weights, labelled, table_keys, table_N, table_n, bits, n_pat, start):
    """Add items ``start``, ``start + 1``, ... of a shape's key ``column`` to the table until the
    end, or until the table must grow; returns (first item not added, pattern count).

    Growing is left to the caller on purpose: a hot loop that may rebind its arrays makes
    numba maintain reference counts on every iteration, several times slower.
    """
    shift = np.uint64(64 - bits)
    max_patterns = (1 << bits) // 2  # load at most one half: probes stay short
    for i in range(start, column.shape[0]):
        w = weights[i]
        if w == 0.0:
            continue
        key = column[i]
        slot = _find(table_keys, table_N, key, shift)
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
def _count_shape(column, weights, labelled, err_items, err_ptr, err_labels, n_labels):
    """Count the patterns of one shape, whose keys are ``column`` (uint64[n], contiguous).

    Returns (keys, n, N, error ptr, error labels, error counts), patterns sorted by key.
    ``err_items`` are the labelled items of positive weight having at least one error,
    with labels ``err_labels[err_ptr[j]:err_ptr[j+1]]`` (ascending).
    """
    bits = _FIRST_BITS
    size = (1 << bits) + _spill(bits)
    table_keys = np.empty(size, dtype=np.uint64)
    table_N = np.zeros(size, dtype=np.float64)
    table_n = np.zeros(size, dtype=np.float64)
    n_pat = 0
    start = 0
    while True:
        start, n_pat = _insert_items(
            column, weights, labelled, table_keys, table_N, table_n, bits, n_pat, start
        )
        if start == column.shape[0]:
            break
        table_keys, table_N, table_n, bits = _grow(table_keys, table_N, table_n, bits)

    out_keys, out_n, out_N, out_slot = _read_sorted(table_keys, table_N, table_n, n_pat)
    ptr, label, k = _count_errors(
        column,
        weights,
        err_items,
        err_ptr,
        err_labels,
        n_labels,
        table_keys,
        table_N,
        bits,
        out_slot,
    )
    return out_keys, out_n, out_N, ptr, label, k


@nb.njit(cache=True, nogil=True)
def _read_sorted(table_keys, table_N, table_n, n_pat):
    """The table's patterns in key order, with the slot each came from.

    Read slot by slot, a pattern sits at or after its home slot (its key's top bits), so
    the keys come out sorted up to short local inversions, which insertion sort repairs
    in about linear time.
    """
    out_keys = np.empty(n_pat, dtype=np.uint64)
    out_n = np.empty(n_pat, dtype=np.float64)
    out_N = np.empty(n_pat, dtype=np.float64)
    out_slot = np.empty(n_pat, dtype=np.int64)
    r = 0
    for slot in range(table_keys.shape[0]):
        if table_N[slot] != 0.0:
            key, N, n, j = table_keys[slot], table_N[slot], table_n[slot], r
            while j > 0 and out_keys[j - 1] > key:
                out_keys[j] = out_keys[j - 1]
                out_N[j] = out_N[j - 1]
                out_n[j] = out_n[j - 1]
                out_slot[j] = out_slot[j - 1]
                j -= 1
            out_keys[j], out_N[j], out_n[j], out_slot[j] = key, N, n, slot
            r += 1
    return out_keys, out_n, out_N, out_slot


@nb.njit(cache=True, nogil=True)
def _count_errors(
    column, weights, err_items, err_ptr, err_labels, n_labels, table_keys, table_N, bits, out_slot
):
    """Error counts (CSR over the sorted patterns) of one shape: the positive (item,
    label) pairs are bucketed by pattern with a counting sort, then summed by label."""
    n_pat = out_slot.shape[0]
    n_err_items = err_items.shape[0]
    row_of_slot = np.empty(table_keys.shape[0] if n_err_items else 0, dtype=np.int64)
    for row in range(n_pat if n_err_items else 0):
        row_of_slot[out_slot[row]] = row
    item_row = np.empty(n_err_items, dtype=np.int64)
    bucket_start = np.zeros(n_pat + 1, dtype=np.int64)
    shift = np.uint64(64 - bits)
    for j in range(n_err_items):
        slot = _find(table_keys, table_N, column[err_items[j]], shift)
        item_row[j] = row_of_slot[slot]
        bucket_start[item_row[j] + 1] += err_ptr[j + 1] - err_ptr[j]
    for row in range(n_pat):
        bucket_start[row + 1] += bucket_start[row]
    fill = bucket_start[:-1].copy()
    bucket_label = np.empty(bucket_start[n_pat], dtype=np.int64)
    bucket_w = np.empty(bucket_start[n_pat], dtype=np.float64)
    for j in range(n_err_items):
        row = item_row[j]
        w = weights[err_items[j]]
        for p in range(err_ptr[j], err_ptr[j + 1]):
            bucket_label[fill[row]] = err_labels[p]
            bucket_w[fill[row]] = w
            fill[row] += 1
    return _sum_buckets(bucket_start, bucket_label, bucket_w, n_labels)


@nb.njit(cache=True, nogil=True)
def _sum_buckets(bucket_start, bucket_label, bucket_w, n_labels):
    """CSR (ptr, ascending labels, summed weights) from per-row buckets of (label, w)."""
    n_rows = bucket_start.shape[0] - 1
    out_ptr = np.zeros(n_rows + 1, dtype=np.int64)
    out_label = np.empty(bucket_label.shape[0], dtype=np.int16)
    out_k = np.empty(bucket_label.shape[0], dtype=np.float64)
    scratch = np.zeros(n_labels, dtype=np.float64)
    touched = np.zeros(n_labels, dtype=np.bool_)
    nnz = 0
    for r in range(n_rows):
        lo, hi = bucket_start[r], bucket_start[r + 1]
        if hi > lo:
            for p in range(lo, hi):
                scratch[bucket_label[p]] += bucket_w[p]
                touched[bucket_label[p]] = True
            nnz = _flush(scratch, touched, out_label, out_k, nnz)
        out_ptr[r + 1] = nnz
    return out_ptr, out_label[:nnz].copy(), out_k[:nnz].copy()


@nb.njit(inline="always", nogil=True)
def _flush(scratch, touched, out_label, out_k, nnz):
    """Append the touched labels of ``scratch`` (ascending, by scanning the few labels
    rather than sorting) and reset them; returns the new entry count."""
    for e in range(scratch.shape[0]):
        if touched[e]:
            out_label[nnz] = e
            out_k[nnz] = scratch[e]
            nnz += 1
            scratch[e] = 0.0
            touched[e] = False
    return nnz


@nb.njit(cache=True, nogil=True)
def _merge_parts(bounds, keys, n, N, err_ptr, err_label, err_k, n_labels):
    """Interleave sorted parts into one key order, summing the counts of equal keys.

    The arrays are the parts concatenated (``err_ptr`` global); the key space is cut into
    buckets by the keys' top bits, and ``bounds[p, b]:bounds[p, b + 1]`` are the rows of
    part p in bucket b. Bucket by bucket, each part's run is read in sequence and the
    bucket's few hundred rows are sorted: every array is read front to back, never at
    random, which matters once the counts outgrow the caches.
    """
    n_parts, n_buckets = bounds.shape[0], bounds.shape[1] - 1
    out_keys = np.empty(keys.shape[0], dtype=np.uint64)
    out_n = np.empty(keys.shape[0], dtype=np.float64)
    out_N = np.empty(keys.shape[0], dtype=np.float64)
    out_ptr = np.zeros(keys.shape[0] + 1, dtype=np.int64)
    out_label = np.empty(err_label.shape[0], dtype=np.int16)
    out_k = np.empty(err_label.shape[0], dtype=np.float64)
    scratch = np.zeros(n_labels, dtype=np.float64)
    touched = np.zeros(n_labels, dtype=np.bool_)
    largest = 0
    for b in range(n_buckets):
        largest = max(largest, np.sum(bounds[:, b + 1] - bounds[:, b]))
    rows = np.empty(largest, dtype=np.int64)
    bucket_keys = np.empty(largest, dtype=np.uint64)
    n_out = 0
    nnz = 0
    for b in range(n_buckets):
        m = 0
        for p in range(n_parts):
            for row in range(bounds[p, b], bounds[p, b + 1]):
                rows[m] = row
                bucket_keys[m] = keys[row]
                m += 1
        order = np.argsort(bucket_keys[:m])
        for q in range(m):
            row = rows[order[q]]
            if q == 0 or keys[row] != out_keys[n_out - 1]:
                out_keys[n_out] = keys[row]
                out_n[n_out] = n[row]
                out_N[n_out] = N[row]
                n_out += 1
            else:
                out_n[n_out - 1] += n[row]  # a 64-bit key collision: counts add up
                out_N[n_out - 1] += N[row]
            for e in range(err_ptr[row], err_ptr[row + 1]):
                scratch[err_label[e]] += err_k[e]
                touched[err_label[e]] = True
            if q + 1 == m or keys[rows[order[q + 1]]] != keys[row]:
                nnz = _flush(scratch, touched, out_label, out_k, nnz)
                out_ptr[n_out] = nnz
    # Views, not copies: without collisions they span their whole buffers anyway.
    return (
        out_keys[:n_out],
        out_n[:n_out],
        out_N[:n_out],
        out_ptr[: n_out + 1],
        out_label[:nnz],
        out_k[:nnz],
    )


def count_factor(
    keys: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray | None = None,
    threads: int | None = None,
) -> PatternCounts:
    """Count a factor's patterns over items.

    ``keys`` uint64[n, S] from ``keys.pattern_keys``; ``labels`` int8[n, E] (a row of -1:
    never inspected; else 0/1 per label, label order ``Knowledge.label_ids``); ``weights``
    float64[n] >= 0 (default 1; an item of weight 0 is not counted at all). Shapes are
    counted on ``threads`` threads (default: numba's thread count); the result does not
    depend on it.

    Returns the ``PatternCounts`` of every pattern met: ``N`` sums the weights of all
    items matching it, ``n`` those of the labelled ones, ``k`` those of the labelled ones
    having each error.
    """
    keys = np.ascontiguousarray(keys, dtype=np.uint64)
    labels = np.ascontiguousarray(labels, dtype=np.int8)
    if keys.ndim != 2:
        raise ValueError(f"keys must be uint64[n_items, n_shapes]; got shape {keys.shape}")
    n_items, n_shapes = keys.shape
    if labels.ndim != 2 or labels.shape[0] != n_items or labels.shape[1] == 0:
        raise ValueError(
            f"labels must be int8[n_items={n_items}, n_labels >= 1]; got shape {labels.shape}"
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
    unlabelled = labels < 0
    labelled = ~unlabelled.any(axis=1)
    if ((labels < -1) | (labels > 1)).any() or (~labelled & ~unlabelled.all(axis=1)).any():
        raise ValueError(
            "labels must be 0/1 for an inspected item and -1 on the whole row for an item "
            "never inspected; got other values or mixed rows"
        )
    positive = labels == 1
    err_items = np.flatnonzero(positive.any(axis=1) & (weights > 0))
    item_of_pair, err_labels = np.nonzero(positive[err_items])
    err_ptr = np.zeros(err_items.size + 1, dtype=np.int64)
    np.cumsum(np.bincount(item_of_pair, minlength=err_items.size), out=err_ptr[1:])
    err_labels = err_labels.astype(np.int16)
    n_labels = labels.shape[1]

    def count(column: np.ndarray) -> tuple[np.ndarray, ...]:
        return _count_shape(column, weights, labelled, err_items, err_ptr, err_labels, n_labels)

    parts: list[tuple[np.ndarray, ...]] = []
    threads = nb.get_num_threads() if threads is None else threads
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for first in range(0, n_shapes, _SHAPES_PER_BLOCK):
            # Reading one shape's keys down a row-major [n, S] array would pull every
            # item's whole row through the cache, once per shape; a block of shapes
            # transposed at once is read once and then counted column by column.
            block = np.ascontiguousarray(keys[:, first : first + _SHAPES_PER_BLOCK].T)
            # The kernels release the GIL: the block's shapes are counted side by side.
            parts.extend(pool.map(count, block))
    return _merge(parts, n_labels)


def _merge(parts: list[tuple[np.ndarray, ...]], n_labels: int) -> PatternCounts:
    """One ``PatternCounts`` from the shapes' sorted parts (see ``_merge_parts``)."""
    sizes = np.array([p[0].shape[0] for p in parts], dtype=np.int64)
    part_start = np.concatenate([[0], np.cumsum(sizes)])
    # About _ROWS_PER_BUCKET rows per bucket: sorting them is cheap, their bounds small.
    bucket_bits = min(20, max(0, int(np.log2(max(1, part_start[-1] // _ROWS_PER_BUCKET)))))
    edges = np.zeros(1, dtype=np.uint64)
    if bucket_bits:
        edges = np.arange(1 << bucket_bits, dtype=np.uint64) << np.uint64(64 - bucket_bits)
    bounds = np.empty((len(parts), edges.size + 1), dtype=np.int64)
    for j, p in enumerate(parts):
        bounds[j, :-1] = part_start[j] + np.searchsorted(p[0], edges)
        bounds[j, -1] = part_start[j + 1]
    # CSR pointers of the parts, shifted by the error entries of the parts before.
    entries_before = np.cumsum([0] + [p[4].shape[0] for p in parts])
    err_ptr = np.concatenate(
        [np.zeros(1, np.int64)] + [p[3][1:] + entries_before[j] for j, p in enumerate(parts)]
    )
    columns = [np.concatenate([p[i] for p in parts]) for i in (0, 1, 2, 4, 5)]
    keys, n, N, err_label, err_k = columns
    return PatternCounts(*_merge_parts(bounds, keys, n, N, err_ptr, err_label, err_k, n_labels))
