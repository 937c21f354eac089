"""The value-in-context recursion: HPB smoothing of P(f = v | C) per item (numba).

The plain-Python twin is ``reference_context.py``; tests compare the two bit for bit.

For an item with declared value v and context shapes c = 0..C-1 (the context lattice,
root first, generalisations before specialisations, ``engine.lattice``), with N_W the
declarations matching the context pattern W and N_Wv those of them declaring v:

    root:   P(root) = (N_v + 1/2) / (N + 1)                          (hpb.md, Eq. 3 root)
    other:  P(W)    = (N_Wv + S * prior(W)) / (N_W + S)
            lo(prior(W)) = lo(P(root)) + min(1, d / |g(W)|) * sum_{W' in g(W)} [lo(P(W')) - lo(P(root))]

so an unseen context (N_W = 0) takes its prior, i.e. falls back through its
generalisations, and a context seen many times without v pulls P(W) down towards 0 as
N_W grows: exactly the "this exporter never declared that origin" signal. lo(P) is
computed in the stable form of ``engine.hpb`` (a ratio of sums of non-negative terms), with
the prior's log-odds clamped to +-700 so that exp never underflows to zero.

With ``loo`` every item is taken out of the counts it was counted in (N - 1 and N_v - 1 at
every shape, root included): history items are banded as new items would be.

Besides lo(P) at the full context pattern, the kernel reports the context the figure
rests on: the last shape in lattice order (one of the finest) whose N_W is positive after
leave-one-out, its N_W and N_Wv, N_W at the full context, and whether v is the modal
value there (no other value has more declarations; ties count as modal).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from sisam.engine.hashtable import EMPTY_ROW, lookup

#: Prior log-odds are clamped here: exp(-700) is still a normal float64.
LO_CLAMP = 700.0


@nb.njit(inline="always", nogil=True)
def _count(slot_keys, slot_rows, counts, key):
    row = lookup(slot_keys, slot_rows, key)
    if row == EMPTY_ROW:
        return -1, 0.0
    return row, counts[row]


@nb.njit(inline="always", nogil=True)
def _log_odds(k, n, s, lo_prior):
    lp = min(LO_CLAMP, max(-LO_CLAMP, lo_prior))
    t = math.exp(-abs(lp))
    if lp >= 0.0:
        u, v = 1.0, t
    else:
        u, v = t, 1.0
    return math.log((k * (1.0 + t) + s * u) / ((n - k) * (1.0 + t) + s * v))


@nb.njit(cache=True, nogil=True)
def value_in_context(
    keys, value_shape, context_shape, parents, n_parents, slot_keys, slot_rows,
    counts, top1, top2, mode, codes, loo, s, d,
    out_lo, out_used, out_n_used, out_nv_used, out_n_full, out_modal,
):  # fmt: skip
    """Fill the out_* arrays (float64[n] / int64[n] / bool[n]) for every item.

    ``keys`` uint64[n, S]: the items' keys over the lattice of context + field;
    ``value_shape[c]`` / ``context_shape[c]``: the column of context shape c with the field
    at its value / at ``*``; ``parents`` int32[C, L], ``n_parents`` int32[C]: the context
    lattice; ``slot_keys``, ``slot_rows``: the ``KeyIndex`` of the counts table, whose
    ``counts`` float64[P] are N; ``top1``, ``top2`` float64[P] and ``mode`` uint64[P] the
    largest and second largest N_Wv of each context row and the value with the largest;
    ``codes`` uint64[n] the items' field codes; ``loo`` 1 to leave each item out, else 0.
    """
    n_shapes = value_shape.shape[0]
    lo_post = np.empty(n_shapes)
    for i in range(keys.shape[0]):
        lo_root = 0.0
        used = 0
        n_used = 0.0
        nv_used = 0.0
        modal = False
        for c in range(n_shapes):
            row_w, n_w = _count(slot_keys, slot_rows, counts, keys[i, context_shape[c]])
            _, n_wv = _count(slot_keys, slot_rows, counts, keys[i, value_shape[c]])
            n_w = max(0.0, n_w - loo)
            n_wv = min(n_w, max(0.0, n_wv - loo))
            if c == 0:
                lo_root = math.log((n_wv + 0.5) / (n_w - n_wv + 0.5))
                lo_post[0] = lo_root
            else:
                total = 0.0
                for j in range(n_parents[c]):
                    total += lo_post[parents[c, j]] - lo_root
                lo_prior = lo_root + min(1.0, d / n_parents[c]) * total
                if n_w > 0.0:
                    lo_post[c] = _log_odds(n_wv, n_w, s, lo_prior)
                else:
                    lo_post[c] = lo_prior
            if n_w > 0.0:
                used = c
                n_used = n_w
                nv_used = n_wv
                # the best other value: the runner-up if v is the mode, else the mode
                if mode[row_w] == codes[i]:
                    best_other = top2[row_w]
                else:
                    best_other = top1[row_w]
                modal = nv_used > 0.0 and nv_used >= best_other
        out_lo[i] = lo_post[n_shapes - 1]
        out_used[i] = used
        out_n_used[i] = n_used
        out_nv_used[i] = nv_used
        out_modal[i] = modal
        row_full, n_full = _count(slot_keys, slot_rows, counts, keys[i, context_shape[n_shapes - 1]])
        out_n_full[i] = max(0.0, n_full - loo) if row_full != EMPTY_ROW else 0.0
