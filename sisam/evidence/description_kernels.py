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


def count_table(keys: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """An open-addressing table of ``SLOT`` from unique, well mixed uint64 ``keys`` to
    ``counts`` (capacity a power of two, at least twice the keys; ``count_of`` probes it)."""
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
def count_of(table, key):
    """The count of ``key``, 0.0 when it was never counted."""
    mask = np.uint64(table.shape[0] - 1)
    slot = key & mask
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
def description_fit(
    starts, words, chain, judged, root,
    code_slots, code_rows, code_n, code_parent,
    pairs,
    word_slots, word_rows, word_n, cand_starts, cand_codes,
    loo, s,
    out_p, out_best, out_best_code, out_known, out_n_code,
):  # fmt: skip
    """Fill the out_* arrays for every pattern.

    ``starts`` int64[P + 1], ``words`` uint64: the word codes of pattern i are
    ``words[starts[i]:starts[i + 1]]``; ``chain`` uint64[P, D]: the declared code's key at
    each level, finest first; ``judged`` int64[J]: the chain columns judged; ``root``: the
    key of all declarations; ``code_*``: the codes table's index, N and parent key;
    ``pairs``: the pairs table's N as a ``count_table``; ``word_*``: the vocabulary's index and N;
    ``cand_starts`` int64[V * J + 1], ``cand_codes`` uint64: the candidates of the word in
    vocabulary row v at judged level l are ``cand_codes[cand_starts[v * J + l]:
    cand_starts[v * J + l + 1]]``; ``loo`` 1.0 to leave each pattern's declaration out,
    else 0.0; ``s`` the smoothing S.

    Out: ``out_p`` / ``out_best`` float64[P, J]: the declared code's posterior and the
    largest posterior of another candidate, ``out_best_code`` uint64[P, J] that candidate
    (0 when there is none), ``out_known`` int64[P] the pattern's known words,
    ``out_n_code`` float64[P, D] N of the declared code at each level.
    """
    n_levels = judged.shape[0]
    depth = chain.shape[1]
    n_root = _value(code_slots, code_rows, code_n, root) - loo
    known = np.empty(words.shape[0], dtype=np.int64)  # vocabulary rows of known words
    known_word = np.empty(words.shape[0], dtype=np.uint64)
    known_n = np.empty(words.shape[0])
    path = np.empty(MAX_DEPTH, dtype=np.uint64)
    for i in range(starts.shape[0] - 1):
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
        capacity = 1
        for level in range(n_levels):
            capacity += depth
            for j in range(n_known):
                v = known[j] * n_levels + level
                capacity += depth * (cand_starts[v + 1] - cand_starts[v])
        memo_keys = np.empty(capacity, dtype=np.uint64)
        memo = np.empty((capacity, max(n_known, 1)))
        memo_keys[0] = root
        for j in range(n_known):
            memo[0, j] = (known_n[j] + 0.5) / (n_root + 1.0)
        n_memo = 1
        survivors = np.empty(capacity, dtype=np.uint64)
        n_survivors = 0
        # coarsest level first: its survivors prune the next finer level's candidates
        for level in range(n_levels - 1, -1, -1):
            column = judged[level]
            declared = chain[i, column]
            # candidates: the declared code first, then each known word's, without repeats
            cand_total = 1
            for j in range(n_known):
                v = known[j] * n_levels + level
                cand_total += cand_starts[v + 1] - cand_starts[v]
            candidates = np.empty(cand_total, dtype=np.uint64)
            candidates[0] = declared
            n_cand = 1
            for j in range(n_known):
                v = known[j] * n_levels + level
                for q in range(cand_starts[v], cand_starts[v + 1]):
                    x = cand_codes[q]
                    repeated = False
                    for r in range(n_cand):
                        if candidates[r] == x:
                            repeated = True
                            break
                    if not repeated:
                        candidates[n_cand] = x
                        n_cand += 1
            scores = np.empty(n_cand)
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
                    key = x
                    while key != root and n_path < depth - column:
                        path[n_path] = key
                        n_path += 1
                        row = lookup(code_slots, code_rows, key)
                        if row == EMPTY_ROW:
                            break
                        key = code_parent[row]
                if r > 0 and level < n_levels - 1:
                    # beam: a candidate under no surviving group of the coarser level is out
                    above = judged[level + 1] - column
                    kept = False
                    if above < n_path:
                        for m in range(n_survivors):
                            if survivors[m] == path[above]:
                                kept = True
                                break
                    if not kept:
                        scores[r] = -np.inf
                        continue
                # down the path from the root: each code's shares from its parent's
                parent = 0
                for h in range(n_path - 1, -1, -1):
                    code = path[h]
                    slot = -1
                    for m in range(n_memo):
                        if memo_keys[m] == code:
                            slot = m
                            break
                    if slot < 0:
                        slot = n_memo
                        n_memo += 1
                        memo_keys[slot] = code
                        # the pattern's own declaration is counted under its own chain only
                        own = loo if code == chain[i, column + h] else 0.0
                        n_w = max(0.0, _value(code_slots, code_rows, code_n, code) - own)
                        for j in range(n_known):
                            n_tw = max(0.0, count_of(pairs, pair_key(code, known_word[j])) - own)
                            memo[slot, j] = (n_tw + s * memo[parent, j]) / (n_w + s)
                    parent = slot
                n_x = max(0.0, _value(code_slots, code_rows, code_n, x) - (loo if r == 0 else 0.0))
                score = math.log(n_x + 0.5)
                for j in range(n_known):
                    score += math.log(memo[parent, j])
                scores[r] = score
            top = scores[0]
            for r in range(1, n_cand):
                top = max(top, scores[r])
            total = 0.0
            for r in range(n_cand):
                total += math.exp(scores[r] - top)
            out_p[i, level] = math.exp(scores[0] - top) / total
            best = 0.0
            best_code = np.uint64(0)
            for r in range(1, n_cand):
                posterior = math.exp(scores[r] - top) / total
                if posterior > best * (1.0 + TIE) or (posterior >= best * (1.0 - TIE) and candidates[r] < best_code):
                    best = posterior
                    best_code = candidates[r]
            out_best[i, level] = best
            out_best_code[i, level] = best_code
            n_survivors = 0
            for r in range(n_cand):
                if math.exp(scores[r] - top) / total >= BEAM:
                    survivors[n_survivors] = candidates[r]
                    n_survivors += 1
