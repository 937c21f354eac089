"""Suggested correct codes: which tariff line an item belongs to when its declared one is wrong.

SISAM "also estimates the probability of each possible correct code" (brief.md). The
teacher is the same as for the error types: the (declared, rectified) pairs of the inspected
items whose ``hs_code`` error was found. This module is an HPB node whose *child is the
code itself* (hpb.md, "A network, not one node"): its parent is the declared code, with the
HS chain ``importer with hs8 -> hs8 -> hs6 -> hs4 -> hs2 -> *`` as generalisations (the
importer refines the line: an importer who declares one line for another keeps doing so). A single parent with a chain
makes the lattice a path, so the prior of a pattern is simply its parent's posterior and
Eq. 3 of hpb.md becomes, for every candidate code c::

    P(c | W) = (k_W,c + S * P(c | parent(W))) / (n_W + S)

with ``n_W`` the corrected items whose declared code matches W at its level and ``k_W,c``
those corrected to c. A declared line never seen corrected still inherits what its
subheading, heading and chapter teach; an unseen heading falls back to the chapter, and so on.

The root is where this node departs from a plain count: corrections are few (a few hundred
a year in the default world) against thousands of lines, so most candidates were never
seen corrected. The root's distribution is therefore built from the nomenclature's shape
and from *all* declarations (learning unsupervised as well as supervised, brief.md): how
far corrections move (``pi_a``: the share of corrected pairs whose codes agree on exactly
the first a digits, a in 6, 4, 2, 0, from the pair counts, add-one smoothed), and, within
that distance of the declared code, how often each code is declared (``N_c``, counted over
every declaration)::

    B_d(c) = pi_a(d, c) * N_c / sum of N_c' over the codes c' at the same agreement a with d

(levels with no code are dropped and the rest renormalised). S is chosen from hpb.md's grid by
the exact leave-one-out log-likelihood of the rectified codes (each pair's own count
removed from every context it matches).

The rectified code differs from the declared one by definition of the error, so the
declared code is removed from the candidates and the rest renormalised: the figures are
P(correct code = c | the declared code is wrong). Multiply by ``p_hs_code`` for the
unconditional probability.

Everything is stored in the knowledge base as the extra table ``suggest_pairs`` (columns
``level``: prefix length of the declared code, 0 for the root; ``context``: that prefix;
``code``: the rectified code; ``k``: how many, decayed like every count) and
``suggest_smoothing`` (the chosen ``S`` and its leave-one-out log-likelihood), and
``suggest_codes`` (``code``, ``n``: declarations of each code, all of them, decayed).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sisam.engine.fit import S_GRID

log = logging.getLogger("sisam.suggest")

#: Prefix lengths of the declared code, finest first: line, subheading, heading, chapter, all.
LEVELS = (8, 6, 4, 2, 0)
#: The finest level, below the declared line: this importer declaring this line (context
#: ``importer/line``): an importer's habit of declaring one line for another is its own.
IMPORTER_LEVEL = 9
PAIRS_TABLE = "suggest_pairs"
SMOOTHING_TABLE = "suggest_smoothing"
CODES_TABLE = "suggest_codes"
#: Agreement levels of the root's distribution: digits two different codes share.
AGREEMENT = (6, 4, 2, 0)
#: Suggestions per item in the score table and the explanation.
TOP = 3
#: Suggestions a ``Suggester`` remembers between calls before it starts afresh (a few
#: hundred bytes each).
_REMEMBERED = 1 << 20
#: Codes declared anywhere that may reach the top when the declared chapter has too few.
_SPARE_CODES = TOP + 1


def _strings(values: np.ndarray) -> np.ndarray:
    return pd.Series(values, dtype="string").fillna("").str.strip().to_numpy(dtype=object)


def error_pairs(declared: np.ndarray, rectified: np.ndarray, importers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The declared and rectified codes and the importers of items whose code was
    corrected, stripped."""
    d, r, i = _strings(declared), _strings(rectified), _strings(importers)
    changed = d != r
    return d[changed], r[changed], i[changed]


def _importer_context(importer: str, declared: str) -> str:
    return f"{importer}/{declared}"


def count_pairs(declared: np.ndarray, rectified: np.ndarray, importers: np.ndarray, weight: float = 1.0) -> dict[str, np.ndarray]:
    """The ``suggest_pairs`` table of corrected pairs (``error_pairs`` output), in
    canonical order (level descending, context, code)."""
    rows: dict[tuple[int, str, str], float] = defaultdict(float)
    for d, r, i in zip(declared, rectified, importers, strict=True):
        rows[IMPORTER_LEVEL, _importer_context(i, d), r] += weight
        for level in LEVELS:
            rows[level, d[:level], r] += weight
    return _table(rows)


def count_codes(codes: np.ndarray) -> dict[str, np.ndarray]:
    """The ``suggest_codes`` table: declarations per (stripped) code, in code order."""
    counts = pd.Series(codes, dtype="string").fillna("").str.strip().value_counts()
    counts = counts[counts.index != ""].sort_index()
    return {"code": counts.index.to_numpy(dtype=object), "n": counts.to_numpy(dtype=np.float64)}


def merge_codes(old: Mapping[str, np.ndarray] | None, new: Mapping[str, np.ndarray], decay: float) -> dict[str, np.ndarray]:
    """Old code counts scaled by ``decay`` plus the new ones."""
    total: dict[str, float] = defaultdict(float)
    for table, scale in ((old, decay), (new, 1.0)):
        if table is not None:
            for code, n in zip(table["code"], table["n"], strict=True):
                total[str(code)] += float(n) * scale
    ordered = sorted(total)
    return {"code": np.array(ordered, dtype=object), "n": np.array([total[c] for c in ordered], dtype=np.float64)}


def _table(rows: Mapping[tuple[int, str, str], float]) -> dict[str, np.ndarray]:
    ordered = sorted(rows, key=lambda t: (-t[0], t[1], t[2]))
    return {
        "level": np.array([t[0] for t in ordered], dtype=np.int64),
        "context": np.array([t[1] for t in ordered], dtype=object),
        "code": np.array([t[2] for t in ordered], dtype=object),
        "k": np.array([rows[t] for t in ordered], dtype=np.float64),
    }


def merge_pairs(old: Mapping[str, np.ndarray] | None, new: Mapping[str, np.ndarray], decay: float) -> dict[str, np.ndarray]:
    """Old pair counts scaled by ``decay`` plus the new ones (counts add, hpb.md "Counts")."""
    rows: dict[tuple[int, str, str], float] = defaultdict(float)
    for table, scale in ((old, decay), (new, 1.0)):
        if table is None:
            continue
        for level, context, code, k in zip(table["level"], table["context"], table["code"], table["k"], strict=True):
            rows[int(level), str(context), str(code)] += float(k) * scale
    return _table(rows)


@dataclass(frozen=True)
class Suggestion:
    """One item's suggested codes, most probable first, with P(code | declared is wrong)."""

    codes: tuple[str, ...]
    probabilities: tuple[float, ...]


class Suggester:
    """Posterior of the correct code given the declared one, from the pair counts."""

    def __init__(self, pairs: Mapping[str, np.ndarray], codes: Mapping[str, np.ndarray], s: float):
        self.s = float(s)
        self.context: dict[tuple[int, str], dict[str, float]] = defaultdict(dict)
        for level, context, code, k in zip(pairs["level"], pairs["context"], pairs["code"], pairs["k"], strict=True):
            self.context[int(level), str(context)][str(code)] = float(k)
        self.n = {key: sum(found.values()) for key, found in self.context.items()}
        # pairs agreeing on at least a digits: at level a, those whose code keeps the context
        # (the importer level's contexts are no prefixes: at_least only reads levels of AGREEMENT)
        at_least = {a: sum(k for (level, context), found in self.context.items() if level == a
                           for code, k in found.items() if code[:a] == context) for a in AGREEMENT if a}
        at_least[0] = self.n.get((0, ""), 0.0)
        finer = (None, *AGREEMENT[:-1])
        exactly = {a: at_least[a] - (at_least[b] if b is not None else 0.0) for a, b in zip(AGREEMENT, finer, strict=True)}
        self.pi = {a: (exactly[a] + 1.0) / (at_least[0] + len(AGREEMENT)) for a in AGREEMENT}
        self.declared = {str(c): float(n) for c, n in zip(codes["code"], codes["n"], strict=True)}
        self.by_prefix: dict[tuple[int, str], list[str]] = defaultdict(list)
        for code in sorted(self.declared):
            for a in AGREEMENT:
                self.by_prefix[a, code[:a]].append(code)
        self.popular = sorted(self.declared, key=lambda c: (-self.declared[c], c))[: _SPARE_CODES + 1]
        self._importer_contexts = {context for level, context in self.context if level == IMPORTER_LEVEL}
        # suggestions computed so far, by (declared code, importer or None, top)
        self._remembered: dict[tuple[str, str | None, int], Suggestion] = {}
        # the declared codes as arrays, for the array twin of ``posterior`` (``_posterior_array``):
        # each code's row, its declarations and the ids of its prefixes of 2, 4 and 6 digits
        ordered = sorted(self.declared)
        self._row = {c: j for j, c in enumerate(ordered)}
        self._n_declared = np.array([self.declared[c] for c in ordered], dtype=np.float64)
        self._prefix_ids: dict[int, tuple[dict[str, int], np.ndarray]] = {}
        for a in AGREEMENT[:-1]:
            ids, prefixes = pd.factorize(pd.Series([c[:a] for c in ordered], dtype=object))
            self._prefix_ids[a] = ({str(x): j for j, x in enumerate(prefixes)}, ids)
        self.prefix_total = {key: sum(self.declared[c] for c in found) for key, found in self.by_prefix.items()}

    def _chain(self, declared: str, importer: str | None = None) -> list[tuple[int, str]]:
        chain = [(level, declared[:level]) for level in reversed(LEVELS)]
        return chain if importer is None else [*chain, (IMPORTER_LEVEL, _importer_context(importer, declared))]

    def _agreement(self, declared: str, code: str) -> int:
        return next(a for a in AGREEMENT if declared[:a] == code[:a])

    def base(self, declared: str, candidates: set[str]) -> dict[str, float]:
        """The root's distribution B_d over ``candidates`` (module docstring), in code order.

        Code order, not the set's: a set of strings iterates in an order that changes with
        each process's hash seed, and the posteriors keep this dict's order into the sums
        that normalise them; summed in code order they are the same bits in every process."""
        mass, norm = self._masses(declared)
        out = {}
        for c in sorted(candidates):
            a = self._agreement(declared, c)
            out[c] = self.pi[a] / norm * self.declared.get(c, 0.0) / mass[a] if a in mass and norm else 0.0
        return out

    def _masses(self, declared: str) -> tuple[dict[int, float], float]:
        """Per agreement level a, the declarations agreeing with ``declared`` on exactly a
        digits (levels without any left out), and the sum of those levels' pi_a."""
        mass = {}
        for a, finer in zip(AGREEMENT, (None, *AGREEMENT[:-1]), strict=True):
            # declarations within a digits of the declared code, minus those closer to it
            # (agreeing on the finer level, or the declared code itself at the finest)
            closer = self.prefix_total.get((finer, declared[:finer]), 0.0) if finer else self.declared.get(declared, 0.0)
            total = self.prefix_total.get((a, declared[:a]), 0.0) - closer
            if total > 1e-9:
                mass[a] = total
        return mass, sum(self.pi[a] for a in mass)

    def _posterior_array(self, declared: str, candidates: list[str], importer: str | None = None,
                         position: Mapping[str, int] | None = None) -> np.ndarray:
        """``posterior(declared, set(candidates), importer=importer)`` as float64 over
        ``candidates`` (sorted, the order ``posterior`` sums in): the same products and
        quotients per candidate, in the same order, so the same bits (tests hold the two
        equal bit for bit), without a Python loop over the candidates at each context.
        Scoring suggests for thousands of declared codes, each with hundreds of candidates.
        ``position``: candidate -> index, if the caller has it already."""
        mass, norm = self._masses(declared)
        rows = np.array([self._row.get(c, -1) for c in candidates], dtype=np.int64)
        known = np.flatnonzero(rows >= 0)
        agreement = np.zeros(known.size, dtype=np.int64)
        for a in AGREEMENT[-2::-1]:  # coarsest first: a finer agreement overrides it
            lookup, ids = self._prefix_ids[a]
            agreement[ids[rows[known]] == lookup.get(declared[:a], -1)] = a
        p = np.zeros(len(candidates))
        for a, total in mass.items():
            at = known[agreement == a]
            p[at] = self.pi[a] / norm * self._n_declared[rows[at]] / total
        if position is None:
            position = {c: j for j, c in enumerate(candidates)}
        for key in self._chain(declared, importer)[1:]:
            p = self._step_array(p, key, position)
        return p

    def _step_array(self, p: np.ndarray, key: tuple[int, str], position: Mapping[str, int]) -> np.ndarray:
        """``_step`` on the array of ``_posterior_array`` (``position``: candidate -> index)."""
        codes = self.context.get(key)
        if codes is None:
            return p
        k = np.zeros(p.size)
        for code, count in codes.items():
            j = position.get(code)
            if j is not None:
                k[j] = count
        return (k + self.s * p) / (self.n[key] + self.s)

    def posterior(self, declared: str, candidates: set[str], leave_out: str | None = None,
                  importer: str | None = None) -> dict[str, float]:
        """P(c | declared's finest pattern) for every candidate c (in code order, see
        :meth:`base`), the chain evaluated from the root down; ``leave_out`` removes one
        pair (declared -> leave_out) first."""
        p = self.base(declared, candidates)
        for key in self._chain(declared, importer)[1:]:
            p = self._step(p, key, leave_out)
        return p

    def _step(self, p: dict[str, float], key: tuple[int, str], leave_out: str | None = None) -> dict[str, float]:
        """One context of the chain: ``p`` (its parent's posterior) shrunk towards the
        context's corrections (Eq. 3 on a path); ``p`` itself if the context has none."""
        codes = self.context.get(key)
        if codes is None:
            return p
        n = self.n[key] - (leave_out is not None)
        return {c: (codes.get(c, 0.0) - (c == leave_out) + self.s * q) / (n + self.s) for c, q in p.items()}

    def candidates(self, declared: str, top: int = TOP) -> set[str]:
        """The codes that can reach the top: every code declared in the declared code's
        chapter, every code seen corrected to under its contexts, and the most declared
        codes of all (the only ones of agreement 0 that can outrank the rest)."""
        found = set(self.by_prefix.get((2, declared[:2]), ())) | set(self.popular)
        for key in self._chain(declared)[1:]:
            found.update(self.context.get(key, ()))
        found.discard(declared)
        return found

    def suggest(self, declared: str, top: int = TOP, importer: str | None = None) -> Suggestion:
        declared = declared.strip()
        candidates = sorted(self.candidates(declared, top))
        if not candidates:
            return Suggestion((), ())
        return _best(candidates, self._posterior_array(declared, candidates, importer), top)

    def support(self, declared: str, importer: str | None = None) -> tuple[int, str, float]:
        """The finest context of the declared code's chain holding corrections: its level
        (prefix length, :data:`IMPORTER_LEVEL` for the importer's own, 0 if only the root
        has any), context and number of corrections."""
        declared = declared.strip()
        for level, context in self._chain(declared, importer)[::-1]:
            n = self.n.get((level, context), 0.0)
            if n > 0 and level > 0:
                return level, context, n
        return 0, "", self.n.get((0, ""), 0.0)

    def explanation_values(self, declared: str, importer: str, suggestion: Suggestion) -> dict:
        """What ``stake.txt`` says about an item's suggested codes (reasoning-log ready)."""
        level, context, n = self.support(declared, importer)
        context = declared.strip() if level == IMPORTER_LEVEL else context
        return {
            "declared": declared.strip(),
            "codes": [{"code": c, "probability": p} for c, p in zip(suggestion.codes, suggestion.probabilities, strict=True)],
            "level": level,
            "context": context,
            "corrections": n,
        }

    def suggest_all(self, declared: np.ndarray, importers: np.ndarray, top: int = TOP) -> list[Suggestion]:
        """Suggestions for every item, computed once per distinct declared code, and once
        per (importer, code) where that importer's corrections of that code are known.

        They depend on this suggester alone, so they are remembered from call to call (up
        to :data:`_REMEMBERED` of them): a file scored in chunks computes each once."""
        codes, who = _strings(declared), _strings(importers)
        unique, inverse = np.unique(codes.astype(str), return_inverse=True)
        own_rows = np.flatnonzero(pd.Series(who + "/" + codes).isin(self._importer_contexts).to_numpy()).tolist()
        own_importers: dict[str, set[str]] = defaultdict(set)
        for j in own_rows:
            own_importers[codes[j]].add(who[j])
        if len(self._remembered) > _REMEMBERED:
            self._remembered.clear()
        remembered = self._remembered
        found = []
        for c in unique.tolist():
            missing = sorted(i for i in own_importers.get(c, ()) if (c, i, top) not in remembered)
            if (c, None, top) in remembered and not missing:
                found.append(remembered[c, None, top])
                continue
            candidates = sorted(self.candidates(c, top))
            if not candidates:
                remembered.update({(c, i, top): Suggestion((), ()) for i in [None, *missing]})
                found.append(remembered[c, None, top])
                continue
            # the chain to the declared line is shared by every importer's own suggestion
            # for it: the importer's context is one more step (the same operations, so the
            # same bits as ``suggest(c, importer=i)``)
            position = {code: j for j, code in enumerate(candidates)}
            p = self._posterior_array(c, candidates, position=position)
            remembered[c, None, top] = _best(candidates, p, top)
            found.append(remembered[c, None, top])
            for i in missing:
                key = (IMPORTER_LEVEL, _importer_context(i, c))
                remembered[c, i, top] = _best(candidates, self._step_array(p, key, position), top)
        out = [found[i] for i in inverse]
        for j in own_rows:
            out[j] = remembered[codes[j], who[j], top]
        return out

    def loo_terms(self, declared: np.ndarray, rectified: np.ndarray, importers: np.ndarray) -> list[_LooTerm]:
        """What :meth:`loo_loglik` needs of each pair counted in this suggester, whatever S.

        Each pair's leave-one-out probability is P(r | d) / (sum over the candidates of
        P(c | d)), both run down the chain with the pair removed. The posterior of r and the
        candidates' sum follow the same recursion: at each context, with n its corrections
        and K those to a candidate, the candidates' new sum is (K - 1 + S * old sum) / (n - 1
        + S), since r is a candidate and loses its one. So a pair costs its chain, not its
        candidates, once the root's sum over the candidates is known (once per declared
        code); :meth:`posterior` with ``leave_out`` is the plain reference (tests hold the
        two to 1e-12)."""
        by_code: dict[str, tuple[set[str], float]] = {}
        terms = []
        for d, r, i in zip(declared, rectified, importers, strict=True):
            if d not in by_code:
                candidates = self.candidates(d)
                root = self.base(d, candidates)
                by_code[d] = candidates, sum(root.values())
            candidates, root_sum = by_code[d]
            q = self.base(d, {r})[r]
            total = root_sum + (q if r not in candidates else 0.0)
            steps = []
            for key in self._chain(d, i)[1:]:
                codes = self.context.get(key)
                if codes is None:
                    continue
                to_candidates = sum(k for c, k in codes.items() if c in candidates or c == r)
                steps.append((codes.get(r, 0.0), to_candidates, self.n[key]))
            terms.append(_LooTerm(q, total, tuple(steps)))
        return terms

    def loo_loglik(self, declared: np.ndarray, rectified: np.ndarray, importers: np.ndarray,
                   terms: list[_LooTerm] | None = None) -> float:
        """Leave-one-out log-likelihood of the rectified codes of pairs counted in this
        suggester, each given its declared code with itself removed from the counts
        (``terms``: :meth:`loo_terms` of the same pairs, if already computed)."""
        total, s = 0.0, self.s
        for term in terms if terms is not None else self.loo_terms(declared, rectified, importers):
            p, norm = term.root, term.root_sum
            for k, to_candidates, n in term.steps:
                p = (k - 1.0 + s * p) / (n - 1.0 + s)
                norm = (to_candidates - 1.0 + s * norm) / (n - 1.0 + s)
            total += math.log(max(p / norm, 1e-300))
        return total


def _best(candidates: list[str], p: np.ndarray, top: int) -> Suggestion:
    """The ``top`` most probable of ``candidates`` (sorted; ``p`` their posterior),
    renormalised; ties go to the smaller code."""
    total = sum(p.tolist())  # left to right, in code order, as ``posterior``'s dict sums
    if not total > 0:
        return Suggestion((), ())
    best = np.argsort(-p, kind="stable")[:top].tolist()
    return Suggestion(tuple(candidates[j] for j in best), tuple(float(p[j]) / total for j in best))


@dataclass(frozen=True)
class _LooTerm:
    """One pair's leave-one-out inputs: the root's probability of its rectified code and
    the root's sum over its candidates, then per context of its chain that holds
    corrections (root excluded), (corrections to the rectified code, corrections to any
    candidate, all corrections), the pair itself included."""

    root: float
    root_sum: float
    steps: tuple[tuple[float, float, float], ...]


def fit_smoothing(pairs: Mapping[str, np.ndarray], codes: Mapping[str, np.ndarray], declared: np.ndarray,
                  rectified: np.ndarray, importers: np.ndarray) -> dict[str, np.ndarray]:
    """The ``suggest_smoothing`` table: S of hpb.md's grid with the best leave-one-out
    log-likelihood over the batch's pairs (counted in ``pairs``); ties to the smaller S."""
    best_s, best = S_GRID[0], -math.inf
    suggester = Suggester(pairs, codes, S_GRID[0])
    terms = suggester.loo_terms(declared, rectified, importers)
    for s in S_GRID:
        suggester.s = s
        loglik = suggester.loo_loglik(declared, rectified, importers, terms)
        if loglik > best:
            best_s, best = s, loglik
    log.info("suggested codes: S = %g (leave-one-out log-likelihood %.1f over %d pairs)", best_s, best, len(declared))
    return {"S": np.array([best_s]), "loo_loglik": np.array([best if np.isfinite(best) else 0.0])}


def suggester_from(tables: Mapping[str, Mapping[str, np.ndarray]]) -> Suggester | None:
    """The suggester stored in a knowledge base version's extra tables, if any."""
    if any(t not in tables for t in (PAIRS_TABLE, SMOOTHING_TABLE, CODES_TABLE)):
        return None
    return Suggester(tables[PAIRS_TABLE], tables[CODES_TABLE], float(tables[SMOOTHING_TABLE]["S"][0]))


def suggestion_columns(suggestions: list[Suggestion], top: int = TOP) -> dict[str, np.ndarray]:
    """The score table's optional columns: ``hs_code_suggested_<i>`` and
    ``hs_code_suggested_<i>_probability`` for i = 1..top (empty string and NaN where fewer)."""
    columns = {}
    for i in range(top):
        columns[f"hs_code_suggested_{i + 1}"] = np.array(
            [s.codes[i] if i < len(s.codes) else "" for s in suggestions], dtype=object)
        columns[f"hs_code_suggested_{i + 1}_probability"] = np.array(
            [s.probabilities[i] if i < len(s.codes) else np.nan for s in suggestions], dtype=np.float64)
    return columns
