"""Plain-Python twin of ``description_kernels.description_fit``, for tests: the tables are
dicts (codes: key -> (N, parent key), pairs: (code, word) -> N, words: word -> N,
candidates: (word, judged level) -> codes); returns the kernel's outputs as lists, one
entry per pattern. It follows the formulas of ``sisam.evidence.description_code``'s
docstring literally: each P_X(t) by recursion down X's chain."""

from __future__ import annotations

import math

from sisam.evidence.description_kernels import BEAM, TIE


def _path(code: int, column: int, chain: list[int], root: int, codes: dict[int, tuple[float, int]]) -> list[int]:
    """The code's chain from itself up to the root (excluded): the item's own for its
    declared code, else the codes table's parents."""
    if code == chain[column]:
        return chain[column:]
    path: list[int] = []
    while code != root and len(path) < len(chain) - column:
        path.append(code)
        if code not in codes:
            break
        code = codes[code][1]
    return path


def _share(word: int, path: list[int], chain: list[int], n_word: float, n_root: float, loo: float, s: float,
           codes: dict[int, tuple[float, int]], pairs: dict[tuple[int, int], float]) -> float:
    """P_X(t) for the first code of ``path``, top-down from the root."""
    p = (n_word + 0.5) / (n_root + 1.0)
    for code in reversed(path):
        own = loo if code in chain else 0.0  # the pattern's own declaration is under its chain only
        n_w = max(0.0, codes.get(code, (0.0, 0))[0] - own)
        n_tw = max(0.0, pairs.get((code, word), 0.0) - own)
        p = (n_tw + s * p) / (n_w + s)
    return p


def description_fit(
    patterns: list[tuple[list[int], list[int]]],
    judged: list[int],
    root: int,
    codes: dict[int, tuple[float, int]],
    pairs: dict[tuple[int, int], float],
    words: dict[int, float],
    candidates: dict[tuple[int, int], list[int]],
    loo: float,
    s: float,
) -> tuple[list[list[float]], list[list[float]], list[list[int]], list[int], list[list[float]]]:
    """``patterns``: (word codes, the declared code's chain, finest first) per pattern."""
    out_p, out_best, out_best_code, out_known, out_n_code = [], [], [], [], []
    n_root = codes.get(root, (0.0, 0))[0] - loo
    for pattern_words, chain in patterns:
        known = [w for w in pattern_words if words.get(w, 0.0) - loo > 0.0]
        out_known.append(len(known))
        out_n_code.append([max(0.0, codes.get(c, (0.0, 0))[0] - loo) for c in chain])
        ps, bests, best_codes = [0.0] * len(judged), [0.0] * len(judged), [0] * len(judged)
        survivors: list[int] = []
        for level in reversed(range(len(judged))):
            column = judged[level]
            declared = chain[column]
            listed = [declared]
            for w in known:
                for x in candidates.get((w, level), []):
                    if x not in listed:
                        listed.append(x)
            scores = []
            for x in listed:
                path = _path(x, column, chain, root, codes)
                if x != declared and level < len(judged) - 1:
                    above = judged[level + 1] - column
                    if above >= len(path) or path[above] not in survivors:
                        scores.append(-math.inf)
                        continue
                n_x = max(0.0, codes.get(x, (0.0, 0))[0] - (loo if x == declared else 0.0))
                scores.append(math.log(n_x + 0.5) + sum(
                    math.log(_share(w, path, chain, words[w] - loo, n_root, loo, s, codes, pairs)) for w in known))
            top = max(scores)
            total = sum(math.exp(v - top) for v in scores)
            posteriors = [math.exp(v - top) / total for v in scores]
            ps[level] = posteriors[0]
            for x, posterior in zip(listed[1:], posteriors[1:], strict=True):
                best = bests[level]
                if posterior > best * (1 + TIE) or (posterior >= best * (1 - TIE) and x < best_codes[level]):
                    bests[level], best_codes[level] = posterior, x
            survivors = [x for x, posterior in zip(listed, posteriors, strict=True) if posterior >= BEAM]
        out_p.append(ps)
        out_best.append(bests)
        out_best_code.append(best_codes)
    return out_p, out_best, out_best_code, out_known, out_n_code
