"""The description-against-code posterior, per pattern (numba).

The plain-Python twin is ``reference_description.py``; tests compare the two to 1e-12.
The formulas are in ``sisam.evidence.description_code``'s docstring; this module only
evaluates them.

For every pattern i (a distinct description with its declared code) and every judged
level l of the code's chain (``judged[l]``: a column of ``chain``, e.g. 8, 4 and 2
digits), the candidates are the declared code at that level and, for each of the
pattern's known words, the codes the word was most often declared under (``cand_*``,
prepared once per knowledge-base version), less those whose group at the next coarser
judged level got a posterior below ``BEAM`` (levels are voted coarsest first). Each
candidate X gets

    score(X) = log(N_X + 1/2) + sum over known words t of log P_X(t)

with P_X(t) the smoothed share of X's declarations whose description holds t, computed
down X's chain from the root (all declarations); the posterior of the declared code is
exp(score) normalised over the candidates.

With ``loo`` (learning) the pattern's own declaration is taken out of every count it was
counted in: the root, the declared code's chain (N and the pairs of its words) and the
words' overall counts; a word left with no declaration is unknown.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from sisam.engine.hashtable import EMPTY_ROW, capacity_for, lookup

#: Chains hold at most this many codes below the root (8, 6, 4, 2 digits).
MAX_DEPTH = 8
#: A slot of a ``CountTable``: the key and its count side by side, so that a probe costs
#: one cache line (the pairs table is the kernel's hot path: most of its probes miss).
SLOT = np.dtype([("key", np.uint64), ("n", np.float64)])
#: Posterior below which a group's codes are not candidates at the next finer level.
BEAM = 1e-6
#: Relative gap under which two candidates' posteriors are a tie: equal in exact arithmetic
#: (e.g. two codes each holding one of the words once), they differ in their last bits by
#: the order of the sums, so the likeliest other code goes to the smaller code key instead.
TIE = 1e-12
#: The count of an empty slot (counts are never negative).
EMPTY_N = -1.0
#: Patterns per prange task.
_CHUNK = 256


def count_table(keys: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """An open-addressing table of ``SLOT`` from unique, well mixed uint64 ``keys`` to
    ``counts`` (capacity a power of two, at least twice the keys; a key's home slot is
    ``key & (capacity - 1)``, ``_count_after`` probes past it)."""
    table = np.zeros(capacity_for(keys.size), dtype=SLOT)
    table["n"] = EMPTY_N
    _fill_counts(np.ascontiguousarray(keys, dtype=np.uint64), np.ascontiguousarray(counts, dtype=np.float64), table)
    return table


@nb.njit(cache=True, nogil=True)
def _fill_counts(keys, counts, table):
    mask = np.uint64(table.shape[0] - 1)
    for row in range(keys.shape[0]):
        slot = keys[row] & mask
        while table[slot]["n"] != EMPTY_N:
            slot = (slot + np.uint64(1)) & mask
        table[slot]["key"] = keys[row]
        table[slot]["n"] = counts[row]


@nb.njit(inline="always", nogil=True)
def _count_after(table, key, home):
    """The count of ``key`` (0.0 when it was never counted), whose home slot holds
    another key."""
    mask = np.uint64(table.shape[0] - 1)
    slot = (home + np.uint64(1)) & mask
    while True:
        n = table[slot]["n"]
        if n == EMPTY_N:
            return 0.0
        if table[slot]["key"] == key:
            return n
        slot = (slot + np.uint64(1)) & mask


@nb.njit(inline="always", nogil=True)
def _mix(x):
    """splitmix64's finaliser (``engine.levels.mix64``) on one uint64."""
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


@nb.njit(inline="always", nogil=True)
def pair_key(code, word):
    """Key of (code, word) in the pairs table: ``mix64(mix64(code) ^ word)``."""
    return _mix(_mix(code) ^ word)


@nb.njit(inline="always", nogil=True)
def _value(slot_keys, slot_rows, values, key):
    row = lookup(slot_keys, slot_rows, key)
    return 0.0 if row == EMPTY_ROW else values[row]


@nb.njit(cache=True, nogil=True)
def code_paths(code_keys, code_slots, code_rows, code_parent, root):
    """Each code's chain from itself up to the root (excluded), as the codes table's
    parents give it: ``paths`` uint64[C, MAX_DEPTH] and ``lengths`` int64[C] (the walk
    stops at the root, at a parent the table does not hold, or after MAX_DEPTH codes).
    It depends on the knowledge base only, so it is built once per version."""
    paths = np.zeros((code_keys.shape[0], MAX_DEPTH), dtype=np.uint64)
    lengths = np.zeros(code_keys.shape[0], dtype=np.int64)
    for c in range(code_keys.shape[0]):
        key = code_keys[c]
        n_path = 0
        while key != root and n_path < MAX_DEPTH:
            paths[c, n_path] = key
            n_path += 1
            row = lookup(code_slots, code_rows, key)
            if row == EMPTY_ROW:
                break
            key = code_parent[row]
        lengths[c] = n_path
    return paths, lengths


@nb.njit(cache=True, nogil=True, parallel=True)
def description_fit(
    order, starts, words, chain, judged, root,
    code_slots, code_rows, code_n, code_paths, code_path_lengths,
    pairs,
    word_slots, word_rows, word_n, cand_starts, cand_codes, cand_rows, cand_above,
    loo, s,
    out_p, out_best, out_best_code, out_known, out_n_code,
):  # fmt: skip
    """Fill the out_* arrays for every pattern.

    ``order`` int64[P]: the patterns in the order they are computed (patterns of one
    code group together, so that the counts they read are still in cache; the results
    do not depend on it); ``starts`` int64[P + 1], ``words`` uint64: the word codes of pattern i are
    ``words[starts[i]:starts[i + 1]]``; ``chain`` uint64[P, D]: the declared code's key at
    each level, finest first; ``judged`` int64[J]: the chain columns judged; ``root``: the
    key of all declarations; ``code_*``: the codes table's index, N and paths to the root
    (``code_paths``); ``pairs``: the pairs table's N as a ``count_table``; ``word_*``: the
    vocabulary's index and N; ``cand_starts`` int64[V * J + 1], ``cand_codes`` uint64: the
    candidates of the word in vocabulary row v at judged level l are
    ``cand_codes[cand_starts[v * J + l]:cand_starts[v * J + l + 1]]``, ``cand_rows``
    int64 their rows in the codes table (``EMPTY_ROW`` for none) and ``cand_above`` uint64
    their groups at the next coarser judged level (``root`` when their chain does not
    reach it: the beam always leaves them out); ``loo`` 1.0 to
    leave each pattern's declaration out, else 0.0; ``s`` the smoothing S.

    Out: ``out_p`` / ``out_best`` float64[P, J]: the declared code's posterior and the
    largest posterior of another candidate, ``out_best_code`` uint64[P, J] that candidate
    (0 when there is none), ``out_known`` int64[P] the pattern's known words,
    ``out_n_code`` float64[P, D] N of the declared code at each level.

    Patterns are independent: tasks of ``_CHUNK`` patterns run in ``prange``, each with
    its own buffers, and every output of pattern i is computed from pattern i's inputs
    alone, in the same order of operations whatever the thread count or ``order``.
    """
    n_patterns = starts.shape[0] - 1
    n_root = _value(code_slots, code_rows, code_n, root) - loo
    for chunk in nb.prange((n_patterns + _CHUNK - 1) // _CHUNK):
        _fit_chunk(
            order[chunk * _CHUNK:min(n_patterns, (chunk + 1) * _CHUNK)], n_root,
            starts, words, chain, judged, root,
            code_slots, code_rows, code_n, code_paths, code_path_lengths,
            pairs, word_slots, word_rows, word_n, cand_starts, cand_codes, cand_rows, cand_above, loo, s,
            out_p, out_best, out_best_code, out_known, out_n_code,
        )  # fmt: skip


@nb.njit(inline="always", nogil=True)
def _find(tags, stamps, stamp, key):
    """Slot of ``key`` in a stamped open-addressing table (keys are well mixed), or of
    the empty slot where it would go, as -1 - slot; a slot whose stamp is not ``stamp``
    is empty, so a table is emptied by taking a new stamp."""
    mask = np.uint64(tags.shape[0] - 1)
    slot = key & mask
    while True:
        if stamps[slot] != stamp:
            return -1 - np.int64(slot)
        if tags[slot] == key:
            return np.int64(slot)
        slot = (slot + np.uint64(1)) & mask


@nb.njit(inline="always", nogil=True)
def _table_size(n):
    """A power of two, at least 2 n: the slots of a stamped table of up to n keys."""
    size = 16
    while size < 2 * n:
        size *= 2
    return size


@nb.njit(nogil=True)
def _fit_chunk(
    patterns, n_root,
    starts, words, chain, judged, root,
    code_slots, code_rows, code_n, code_paths, code_path_lengths,
    pairs, word_slots, word_rows, word_n, cand_starts, cand_codes, cand_rows, cand_above, loo, s,
    out_p, out_best, out_best_code, out_known, out_n_code,
):  # fmt: skip
    """The patterns ``patterns``; buffers grow to the largest pattern."""
    n_levels = judged.shape[0]
    depth = chain.shape[1]
    path = np.empty(MAX_DEPTH, dtype=np.uint64)
    n_words = 1
    for i in patterns:
        n_words = max(n_words, starts[i + 1] - starts[i])
    known = np.empty(n_words, dtype=np.int64)  # vocabulary rows of known words
    known_word = np.empty(n_words, dtype=np.uint64)
    known_n = np.empty(n_words)
    probe_key = np.empty(n_words, dtype=np.uint64)
    probe_home = np.empty(n_words, dtype=np.uint64)
    home_key = np.empty(n_words, dtype=np.uint64)
    home_n = np.empty(n_words)
    mask = np.uint64(pairs.shape[0] - 1)
    # memo: per code met, P_X(t) of every known word (``memo``), N_X less the own
    # declaration (``memo_n``) and whether X survived the beam at its level; the stamped
    # table ``index_*`` finds a code's memo row
    capacity = 0
    memo = np.empty((0, n_words))
    memo_n = np.empty(0)
    memo_survived = np.empty(0, dtype=np.bool_)
    index_tags = np.empty(0, dtype=np.uint64)
    index_stamps = np.empty(0, dtype=np.int64)
    index_rows = np.empty(0, dtype=np.int64)
    seen_tags = np.empty(0, dtype=np.uint64)
    seen_stamps = np.empty(0, dtype=np.int64)
    candidates = np.empty(0, dtype=np.uint64)
    candidate_rows = np.empty(0, dtype=np.int64)  # their rows in the codes table
    scores = np.empty(0)
    posteriors = np.empty(0)
    stamp = 0
    for i in patterns:
        n_known = 0
        for k in range(starts[i], starts[i + 1]):
            row = lookup(word_slots, word_rows, words[k])
            if row != EMPTY_ROW and word_n[row] - loo > 0.0:
                known[n_known] = row
                known_word[n_known] = words[k]
                known_n[n_known] = word_n[row] - loo
                n_known += 1
        out_known[i] = n_known
        for c in range(depth):
            out_n_code[i, c] = max(0.0, _value(code_slots, code_rows, code_n, chain[i, c]) - loo)
        # P_X(t) of every code X met, for all known words at once: candidates share their
        # ancestors (and the levels their candidates), so each code's shares are computed
        # once per pattern. Whether a code's counts hold the pattern's own declaration
        # depends on the code alone (is it on the pattern's chain?), so a code's shares
        # are the same whichever candidate's path meets it.
        needed = 1
        most = 1
        for level in range(n_levels):
            here = 1
            for j in range(n_known):
                v = known[j] * n_levels + level
                here += cand_starts[v + 1] - cand_starts[v]
            needed += depth * here
            most = max(most, here)
        if needed > capacity:
            capacity = needed
            memo = np.empty((capacity, n_words))
            memo_n = np.empty(capacity)
            memo_survived = np.empty(capacity, dtype=np.bool_)
            index_tags = np.empty(_table_size(capacity), dtype=np.uint64)
            index_stamps = np.zeros(_table_size(capacity), dtype=np.int64)
            index_rows = np.empty(_table_size(capacity), dtype=np.int64)
        if most > candidates.shape[0]:
            candidates = np.empty(most, dtype=np.uint64)
            candidate_rows = np.empty(most, dtype=np.int64)
            scores = np.empty(most)
            posteriors = np.empty(most)
            seen_tags = np.empty(_table_size(most), dtype=np.uint64)
            seen_stamps = np.zeros(_table_size(most), dtype=np.int64)
        stamp += 1
        memo_stamp = stamp
        memo_n[0] = n_root
        memo_survived[0] = False
        for j in range(n_known):
            memo[0, j] = (known_n[j] + 0.5) / (n_root + 1.0)
        n_memo = 1
        # coarsest level first: its survivors prune the next finer level's candidates
        for level in range(n_levels - 1, -1, -1):
            column = judged[level]
            declared = chain[i, column]
            # candidates: the declared code first, then each known word's, without repeats
            stamp += 1
            candidates[0] = declared
            seen = _find(seen_tags, seen_stamps, stamp, declared)
            seen_tags[-1 - seen] = declared
            seen_stamps[-1 - seen] = stamp
            n_cand = 1
            # less the codes whose group the beam dropped at the coarser level (their
            # posterior would be 0: listed or not, no sum, maximum or survivor changes)
            for j in range(n_known):
                v = known[j] * n_levels + level
                for q in range(cand_starts[v], cand_starts[v + 1]):
                    if level < n_levels - 1:
                        at = _find(index_tags, index_stamps, memo_stamp, cand_above[q])
                        if at < 0 or not memo_survived[index_rows[at]]:
                            continue
                    x = cand_codes[q]
                    seen = _find(seen_tags, seen_stamps, stamp, x)
                    if seen < 0:
                        seen_tags[-1 - seen] = x
                        seen_stamps[-1 - seen] = stamp
                        candidates[n_cand] = x
                        candidate_rows[n_cand] = cand_rows[q]
                        n_cand += 1
            for r in range(n_cand):
                x = candidates[r]
                # the candidate's chain from itself up to the root (excluded): the item's
                # own for the declared code (known even if never declared before), else
                # the codes table's parents
                n_path = 0
                if r == 0:
                    for c in range(column, depth):
                        path[n_path] = chain[i, c]
                        n_path += 1
                else:
                    row = candidate_rows[r]
                    if row == EMPTY_ROW:
                        path[0] = x
                        n_path = 1
                    else:
                        n_path = min(code_path_lengths[row], depth - column)
                        for h in range(n_path):
                            path[h] = code_paths[row, h]
                # down the path from the root: each code's shares from its parent's
                parent = 0
                for h in range(n_path - 1, -1, -1):
                    code = path[h]
                    at = _find(index_tags, index_stamps, memo_stamp, code)
                    if at >= 0:
                        parent = index_rows[at]
                        continue
                    slot = n_memo
                    n_memo += 1
                    index_tags[-1 - at] = code
                    index_stamps[-1 - at] = memo_stamp
                    index_rows[-1 - at] = slot
                    memo_survived[slot] = False
                    # the pattern's own declaration is counted under its own chain only
                    own = loo if code == chain[i, column + h] else 0.0
                    memo_n[slot] = max(0.0, _value(code_slots, code_rows, code_n, code) - own)
                    n_w = memo_n[slot]
                    # the pairs (code, word) of all known words: their home slots are
                    # read first, in a loop without branches, so that the cache misses
                    # overlap; the rare probe past the home slot comes after
                    for j in range(n_known):
                        key = pair_key(code, known_word[j])
                        home = key & mask
                        probe_key[j] = key
                        probe_home[j] = home
                        home_key[j] = pairs[home]["key"]
                        home_n[j] = pairs[home]["n"]
                    for j in range(n_known):
                        raw = home_n[j]
                        if raw == EMPTY_N:
                            raw = 0.0
                        elif home_key[j] != probe_key[j]:
                            raw = _count_after(pairs, probe_key[j], probe_home[j])
                        n_tw = max(0.0, raw - own)
                        memo[slot, j] = (n_tw + s * memo[parent, j]) / (n_w + s)
                    parent = slot
                score = math.log(memo_n[parent] + 0.5)
                for j in range(n_known):
                    score += math.log(memo[parent, j])
                scores[r] = score
            top = scores[0]
            for r in range(1, n_cand):
                top = max(top, scores[r])
            total = 0.0
            for r in range(n_cand):
                posteriors[r] = math.exp(scores[r] - top)
                total += posteriors[r]
            for r in range(n_cand):
                posteriors[r] = posteriors[r] / total
            out_p[i, level] = posteriors[0]
            best = 0.0
            best_code = np.uint64(0)
            for r in range(1, n_cand):
                posterior = posteriors[r]
                if posterior > best * (1.0 + TIE) or (posterior >= best * (1.0 - TIE) and candidates[r] < best_code):
                    best = posterior
                    best_code = candidates[r]
            out_best[i, level] = best
            out_best_code[i, level] = best_code
            for r in range(n_cand):
                if posteriors[r] >= BEAM:
                    memo_survived[index_rows[_find(index_tags, index_stamps, memo_stamp, candidates[r])]] = True
