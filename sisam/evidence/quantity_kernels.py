"""Where a declared quantity falls in its context's smoothed distribution (numba).

The plain-Python twin is ``reference_quantity.py``; tests compare the two to 1e-12.

Each item has a measure x (a unit value or a weight per unit, ``quantities.py``), its bin
b on a fixed log scale and one context key per level of its hierarchy, coarsest (all
declarations) first, finest (8-digit code x origin) last. For a context W with N_W
declarations, the empirical mid-rank of the item is

    F_W = (declarations of W in bins below b + 1/2 * declarations of W in bin b) / N_W

(the mid-rank makes a context whose declarations all share one value place each of them
at 1/2, not at an edge). Smoothing goes down the hierarchy as in hpb.md, with a fixed
prior strength S: the coarsest level with declarations gives the starting figure, and
each finer level W with declarations shrinks towards what its parent level gave,

    q_W = (N_W * F_W + S * q_parent) / (N_W + S),

so a context with few declarations speaks little and an unseen one (N_W = 0) leaves the
figure to its parent: the fallback through the hierarchy. Because the rule is linear in
the empirical distributions, q is also the tail probability P(X < x) + P(X = x)/2 under
the smoothed distribution (the same mixture of the levels' histograms).

With ``loo`` every item is taken out of the counts it was counted in (N_W - 1 and the
count of its own bin - 1 at every level): history items are placed as new items would be.

Outputs per item: q (1/2 when no level has declarations or the measure is undefined), the
finest level with declarations (-1 if none) and its N_W, and N_W at the finest level.
"""

from __future__ import annotations

import numba as nb

from sisam.engine.hashtable import EMPTY_ROW, lookup


@nb.njit(cache=True, nogil=True)
def place_in_context(
    context_keys, bins, valid, slot_keys, slot_rows, context_start, context_n, bin_ids, bin_below, bin_n,
    loo, s, out_q, out_used, out_n_used, out_n_full,
):  # fmt: skip
    """Fill ``out_q`` float64[n], ``out_used`` int64[n], ``out_n_used`` and ``out_n_full``
    float64[n].

    ``context_keys`` uint64[n, L]: each item's context key per level, coarsest first;
    ``bins`` int64[n]; ``valid`` bool[n]: whether the measure is defined (else the item is
    left at 1/2 with no level); ``slot_keys``, ``slot_rows``: the ``KeyIndex`` of the
    contexts, whose row r has ``context_n[r]`` declarations and its non-empty bins at
    ``context_start[r]:context_start[r + 1]`` of ``bin_ids`` (sorted), ``bin_n`` (their
    declarations) and ``bin_below`` (the context's declarations in lower bins);
    ``loo`` 1 to leave each item out, else 0; ``s`` the prior strength.
    """
    n_levels = context_keys.shape[1]
    for i in range(context_keys.shape[0]):
        q = 0.5
        used = -1
        n_used = 0.0
        n_full = 0.0
        if valid[i]:
            b = bins[i]
            for level in range(n_levels):
                row = lookup(slot_keys, slot_rows, context_keys[i, level])
                if row == EMPTY_ROW:
                    continue
                n_w = max(0.0, context_n[row] - loo)
                if level == n_levels - 1:
                    n_full = n_w
                if n_w <= 0.0:
                    continue
                lo = context_start[row]
                end = context_start[row + 1]
                hi = end
                while lo < hi:
                    mid = (lo + hi) // 2
                    if bin_ids[mid] < b:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo < end:
                    below = bin_below[lo]
                    at = bin_n[lo] if bin_ids[lo] == b else 0.0
                else:
                    below = context_n[row]
                    at = 0.0
                at = max(0.0, at - loo)
                f = min(1.0, (below + 0.5 * at) / n_w)
                if used < 0:
                    q = f
                else:
                    q = (n_w * f + s * q) / (n_w + s)
                used = level
                n_used = n_w
        out_q[i] = q
        out_used[i] = used
        out_n_used[i] = n_used
        out_n_full[i] = n_full
