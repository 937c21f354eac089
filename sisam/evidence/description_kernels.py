"""The description-against-code posterior, per pattern (numba).

The plain-Python twin is ``reference_description.py``; tests compare the two to 1e-12.
The formulas are in ``sisam.evidence.description_code``'s docstring; this module only
evaluates them.

For every pattern i (a distinct description with its declared code) and every judged
level l of the code's chain (``judged[l]``: a column of ``chain``, e.g. 8, 4 and 2
digits), the candidates are the declared code at that level and, for each of the
pattern's known words, the codes the word was most often declared under (``cand_*``,
prepared once per knowledge-base version). Each candidate X gets

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

from sisam.engine.hashtable import EMPTY_ROW, lookup

#: Chains hold at most this many codes below the root (8, 6, 4, 2 digits).
MAX_DEPTH = 8


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
    pair_slots, pair_rows, pair_n,
    word_slots, word_rows, word_n, cand_starts, cand_codes,
    loo, s,
    out_p, out_best, out_best_code, out_known, out_n_code,
):  # fmt: skip
    """Fill the out_* arrays for every pattern.

    ``starts`` int64[P + 1], ``words`` uint64: the word codes of pattern i are
    ``words[starts[i]:starts[i + 1]]``; ``chain`` uint64[P, D]: the declared code's key at
    each level, finest first; ``judged`` int64[J]: the chain columns judged; ``root``: the
    key of all declarations; ``code_*``: the codes table's index, N and parent key;
    ``pair_*``: the pairs table's index and N; ``word_*``: the vocabulary's index and N;
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
        for level in range(n_levels):
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
                # the pattern's own declaration is counted under its own chain only
                n_x = max(0.0, _value(code_slots, code_rows, code_n, x) - (loo if r == 0 else 0.0))
                score = math.log(n_x + 0.5)
                for j in range(n_known):
                    p = (known_n[j] + 0.5) / (n_root + 1.0)
                    for h in range(n_path - 1, -1, -1):
                        code = path[h]
                        own = loo if code == chain[i, column + h] else 0.0
                        n_w = max(0.0, _value(code_slots, code_rows, code_n, code) - own)
                        n_tw = max(0.0, _value(pair_slots, pair_rows, pair_n, pair_key(code, known_word[j])) - own)
                        p = (n_tw + s * p) / (n_w + s)
                    score += math.log(p)
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
                if posterior > best:
                    best = posterior
                    best_code = candidates[r]
            out_best[i, level] = best
            out_best_code[i, level] = best_code
