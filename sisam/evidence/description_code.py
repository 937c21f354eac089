"""Description against code (issue 6, part 1): do the description's words go with the
declared tariff code?

Catalog entry (``knowledge/evidence.toml``)::

    [evidence.description_given_code]
    kind = "description_vs_code"
    text = "description"          # a text attribute: the words (``sisam.evidence.words``)
    code = "hs_code"              # an attribute with a chain: 8 -> 6 -> 4 -> 2 digits
    judge = ["value", "prefix:4", "prefix:2"]   # optional: code, group, top group
    serves = ["hs_code", "hs_chapter", "description"]
    smoothing = 2.0               # optional: S (default DEFAULT_SMOOTHING)
    candidates = 8                # optional: K (default DEFAULT_CANDIDATES)

Counting. Every declaration, inspected or not, adds 1 to all declarations (the root), to
its code at every level of the chain (table ``codes``: N, and the parent's key so that a
code's chain can be walked), to each of its words (table ``vocabulary``: the declarations
whose description holds the word, and the word) and to each (code at each level, word)
pair (table ``pairs``: n_{X,t}, with the code and the word). A word counts once per
declaration. All are sums over declarations: two batches' tables add up, and decay scales
them like the factor counts.

Smoothing (hpb.md's recursion, the chain as the only parent). For a word t and a code X
whose chain is X -> X' -> ... -> X'' -> root, the share of X's declarations whose
description holds t is estimated top-down:

    P_root(t) = (n_t + 1/2) / (N + 1)
    P_X(t)    = (n_{X,t} + S * P_parent(X)(t)) / (N_X + S)

so a code never declared takes its subheading's estimate, a subheading seen thousands of
times without the word drives it towards zero, and a rare word under a rare code stays
near what the coarser levels say. S = 2: two declarations of a code outweigh its parent
as often as not (the value-in-context models' choice, for the same reason).

Compatibility. The words then vote for codes, as in naive Bayes over the words present:

    score(X) = log(N_X + 1/2) + sum over known words t of log P_X(t)
    P(X | words) = exp(score(X)) / sum over candidates Y of exp(score(Y))

at each judged level (the code, e.g. 8 digits; its group, the heading; its top group, the
chapter). A word is known if some other declaration held it; unknown words (a new model
number) say nothing and are left out. Candidates are the declared code and, for each
known word, the K codes of the level it was most often declared under: the normaliser
is over them, not over every code (a code under which none of the words was ever seen
has a vanishing score whenever one of them is specific). Levels are voted coarsest
first, and a code is a candidate at a finer level only if its group at the coarser
judged level got a posterior of at least ``description_kernels.BEAM`` (1e-6) there (the
declared code always is): a beam that drops codes of chapters and headings the words
rule out. Computed once per distinct (description, code) pattern by
``description_kernels.description_fit``.

Leave-one-out. At learning (``own_rows_counted``) the item's own declaration is taken out
of every count it is in (root, its code's chain, its words, its pairs), so a history item
whose description was seen only on itself has unknown words, as a new item would.

The band. ``s<fit>n<support>``. Fit, from the posteriors of the declared code at the
judged levels (code, group, top group):

    0  the words point to the declared code (P(code | words) >= 1/2), or no word is known
    1  the words fit the declared group but point to no code (no candidate reaches 1/2):
       a description too vague to classify
    2  the words fit the declared group and point to another code of it
    3  the words fit the declared top group but not the group (P(group | words) < 1/2)
    4  the words do not fit the declared top group (P(top group | words) < 1/2)

Support: 0 no known word (nothing to judge), 1 the code was never declared (the figure
rests on its coarser levels), 2 up to 99 declarations of the code, 3 more. ``prefix:2``
keeps the fit alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from sisam.encoding import Encoder
from sisam.engine.hashtable import KeyIndex, build_index, lookup_many
from sisam.engine.levels import mix64, mix64_int
from sisam.evidence.base import EvidenceModel, ModelTables
from sisam.evidence.description_kernels import code_paths, count_table, description_fit
from sisam.evidence.words import Tokenised, tokenise
from sisam.knowledge import Attribute, EvidenceSpec, Knowledge

DEFAULT_SMOOTHING = 2.0
DEFAULT_CANDIDATES = 8
DEFAULT_JUDGE = ("value", "prefix:4", "prefix:2")
#: A posterior from this share up "points to" its code.
POINTS_TO = 0.5
#: Upper bound of the code's declarations for support band 2 (3 above).
SUPPORT_CEILING = 99.0
#: Key of all declarations in the codes table.
ROOT = np.uint64(mix64_int(0x0DE5C2C0DE5200F5))
_BANDS = [f"s{f}n{n}" for f in range(5) for n in range(4)]
#: Words quoted per explanation.
QUOTED_WORDS = 2


def pair_keys(codes: np.ndarray, words: np.ndarray) -> np.ndarray:
    """uint64: keys of (code, word) pairs, as ``description_kernels.pair_key``."""
    return mix64(mix64(codes) ^ np.asarray(words, dtype=np.uint64))


@dataclass(frozen=True)
class Prepared:
    """Indexes and arrays of the three tables, and the candidates of every word."""

    code_index: KeyIndex
    code_keys: np.ndarray
    code_n: np.ndarray
    code_paths: np.ndarray
    code_path_lengths: np.ndarray
    code_text: np.ndarray
    pair_table: np.ndarray
    pair_keys: np.ndarray
    pair_n: np.ndarray
    word_index: KeyIndex
    word_keys: np.ndarray
    word_n: np.ndarray
    word_text: np.ndarray
    cand_starts: np.ndarray
    cand_codes: np.ndarray
    cand_rows: np.ndarray
    cand_above: np.ndarray


@dataclass(frozen=True)
class _Fit:
    """The kernel's outputs per distinct pattern, and which pattern each row is."""

    pattern_of_row: np.ndarray
    chain: np.ndarray
    words: Tokenised
    text_of_pattern: np.ndarray
    p: np.ndarray
    best: np.ndarray
    best_code: np.ndarray
    known: np.ndarray
    n_code: np.ndarray


def _lookup(keys: np.ndarray, values: np.ndarray, wanted: np.ndarray | int, default: Any = 0.0) -> np.ndarray:
    wanted = np.atleast_1d(np.asarray(wanted, dtype=np.uint64))
    if keys.size == 0:
        return np.full(wanted.size, default, dtype=values.dtype)
    at = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
    return np.where(keys[at] == wanted, values[at], default)


class DescriptionVsCode(EvidenceModel):
    kind = "description_vs_code"
    parallel_bands = True
    options: ClassVar[dict[str, bool]] = {
        "text": True, "code": True, "judge": False, "smoothing": False, "candidates": False,
    }

    def __init__(self, spec: EvidenceSpec, knowledge: Knowledge):
        super().__init__(spec, knowledge)
        self.text: Attribute = knowledge.attributes[spec.options["text"]]
        self.code: Attribute = knowledge.attributes[spec.options["code"]]
        judge = tuple(spec.options.get("judge", DEFAULT_JUDGE))
        self.judged = np.array([self.code.levels.index(level) for level in judge], dtype=np.int64)
        self.smoothing = float(spec.options.get("smoothing", DEFAULT_SMOOTHING))
        self.candidates = int(spec.options.get("candidates", DEFAULT_CANDIDATES))

    @property
    def sources(self) -> tuple[Attribute, ...]:
        return (self.text, self.code)

    @classmethod
    def check_options(cls, spec: EvidenceSpec, attributes: Mapping[str, Attribute]) -> str | None:
        problem = super().check_options(spec, attributes)
        if problem:
            return problem
        text, code = spec.options["text"], spec.options["code"]
        if text not in attributes or attributes[text].type != "text":
            return f"text {text!r} must be a text attribute of attributes.toml"
        if code not in attributes or attributes[code].type != "nominal":
            return f"code {code!r} must be a nominal attribute of attributes.toml"
        levels = attributes[code].levels
        judge = spec.options.get("judge", list(DEFAULT_JUDGE))
        if (not isinstance(judge, list) or len(judge) != 3 or any(j not in levels for j in judge)
                or [levels.index(j) for j in judge] != sorted({levels.index(j) for j in judge})):
            return (f"judge must name three levels of {code!r} from finest to coarsest "
                    f"(its levels: {', '.join(levels)}), got {judge!r}")
        smoothing = spec.options.get("smoothing", 1.0)
        if isinstance(smoothing, bool) or not isinstance(smoothing, int | float) or not 0 < smoothing < float("inf"):
            return f"smoothing must be a positive number, got {smoothing!r}"
        candidates = spec.options.get("candidates", 1)
        if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
            return f"candidates must be a positive integer, got {candidates!r}"
        return None

    # -- learning ---------------------------------------------------------------------

    def _patterns(self, frame: pd.DataFrame, encoder: Encoder) -> tuple[np.ndarray, np.ndarray, Tokenised, np.ndarray]:
        """Distinct (description, code) patterns: each row's pattern, each pattern's code
        chain (uint64[P, levels]), the tokenised texts and each pattern's text."""
        words = tokenise(frame[self.text.column])
        chain = encoder.codes(self.code)
        code_of_row, codes = pd.factorize(chain[:, 0])
        pattern_of_row, uniques = pd.factorize(words.text_of_row * np.int64(codes.size) + code_of_row)
        first = np.empty(len(uniques), dtype=np.int64)
        first[pattern_of_row[::-1]] = np.arange(len(frame) - 1, -1, -1)
        return pattern_of_row.astype(np.int64), np.ascontiguousarray(chain[first]), words, words.text_of_row[first]

    def count(self, frame: pd.DataFrame) -> ModelTables:
        encoder = Encoder(frame)
        pattern_of_row, chain, words, text_of_pattern = self._patterns(frame, encoder)
        weight = np.bincount(pattern_of_row, minlength=chain.shape[0]).astype(np.float64)
        depth = chain.shape[1]
        # codes: every level of the chain, and the root
        row_chain = encoder.codes(self.code)
        texts = _level_texts(frame[self.code.column], self.code)
        code_keys = [np.array([ROOT], dtype=np.uint64)]
        code_n = [np.array([float(len(frame))])]
        code_parent = [np.zeros(1, dtype=np.uint64)]
        code_level = [np.array([depth], dtype=np.int64)]
        code_text = [np.array([""], dtype=object)]
        for c in range(depth):
            unique, first, inverse = np.unique(row_chain[:, c], return_index=True, return_inverse=True)
            code_keys.append(unique)
            code_n.append(np.bincount(inverse.ravel(), minlength=unique.size).astype(np.float64))
            code_parent.append(row_chain[first, c + 1] if c + 1 < depth else np.full(unique.size, ROOT))
            code_level.append(np.full(unique.size, c, dtype=np.int64))
            # a missing code is stored as "" (the knowledge base keeps strings, not None)
            code_text.append(np.array(["" if t is None else t for t in texts[c][first]], dtype=object))
        codes = _sorted_table(np.concatenate(code_keys), N=np.concatenate(code_n),
                              parent=np.concatenate(code_parent), level=np.concatenate(code_level),
                              text=np.concatenate(code_text))
        # words and (code, word) pairs, weighted by each pattern's declarations
        starts, pattern_words = words.of_texts(text_of_pattern)
        pattern = np.repeat(np.arange(chain.shape[0]), np.diff(starts))
        word_weight = weight[pattern]
        unique_words, inverse = np.unique(pattern_words, return_inverse=True)
        vocabulary = {
            "key": unique_words.astype(np.uint64),
            "N": np.bincount(inverse.ravel(), weights=word_weight, minlength=unique_words.size),
            "text": np.array([words.vocabulary[int(w)] for w in unique_words.tolist()], dtype=object),
        }
        keys = np.concatenate([pair_keys(chain[pattern, c], pattern_words) for c in range(depth)])
        pair_code = np.concatenate([chain[pattern, c] for c in range(depth)])
        pair_word = np.tile(pattern_words, depth)
        unique_pairs, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        pairs = {
            "key": unique_pairs.astype(np.uint64),
            "N": np.bincount(inverse.ravel(), weights=np.tile(word_weight, depth), minlength=unique_pairs.size),
            "code": pair_code[first].astype(np.uint64),
            "word": pair_word[first].astype(np.uint64),
        }
        return {"codes": codes, "pairs": pairs, "vocabulary": vocabulary}

    # -- banding ----------------------------------------------------------------------

    def prepare(self, tables: ModelTables) -> Prepared:
        codes, pairs, vocabulary = tables["codes"], tables["pairs"], tables["vocabulary"]
        # candidates: per word and judged level, the K codes it was most often declared under
        level_of_pair = _lookup(codes["key"], codes["level"], pairs["code"], default=-1)
        word_row = np.searchsorted(vocabulary["key"], pairs["word"])
        n_levels = self.judged.size
        slot = np.full(pairs["key"].size, -1, dtype=np.int64)
        for judged, column in enumerate(self.judged.tolist()):
            slot[level_of_pair == column] = judged
        keep = np.flatnonzero(slot >= 0)
        group = word_row[keep] * n_levels + slot[keep]
        order = keep[np.lexsort((pairs["code"][keep], -pairs["N"][keep], group))]
        group = word_row[order] * n_levels + slot[order]
        starts_all = np.searchsorted(group, np.arange(vocabulary["key"].size * n_levels + 1))
        rank = np.arange(order.size) - starts_all[group]
        chosen = order[rank < self.candidates]
        chosen_group = word_row[chosen] * n_levels + slot[chosen]
        cand_starts = np.searchsorted(chosen_group, np.arange(vocabulary["key"].size * n_levels + 1)).astype(np.int64)
        cand_codes = np.ascontiguousarray(pairs["code"][chosen], dtype=np.uint64)
        code_index = build_index(codes["key"])
        paths, path_lengths = code_paths(np.ascontiguousarray(codes["key"], dtype=np.uint64), code_index.slot_keys,
                                         code_index.slot_rows, np.ascontiguousarray(codes["parent"], dtype=np.uint64),
                                         ROOT)
        cand_rows = lookup_many(code_index.slot_keys, code_index.slot_rows, cand_codes)
        # each candidate's group at the next coarser judged level, where its path reaches it
        level = np.repeat(np.tile(np.arange(n_levels), vocabulary["key"].size), np.diff(cand_starts))
        coarser = np.minimum(level + 1, n_levels - 1)
        above = self.judged[coarser] - self.judged[level]
        reach = np.where(cand_rows >= 0, np.minimum(path_lengths[cand_rows], len(self.code.levels) - self.judged[level]), 1)
        cand_above = np.where((level < n_levels - 1) & (above < reach),
                              paths[cand_rows, np.minimum(above, paths.shape[1] - 1)], ROOT).astype(np.uint64)
        return Prepared(
            code_index, codes["key"], codes["N"], paths, path_lengths, codes["text"],
            count_table(pairs["key"], pairs["N"]), pairs["key"], pairs["N"],
            build_index(vocabulary["key"]), vocabulary["key"], vocabulary["N"], vocabulary["text"],
            cand_starts, cand_codes, cand_rows, cand_above,
        )

    def _fit(self, prepared: Prepared, frame: pd.DataFrame, own_rows_counted: bool, encoder: Encoder | None) -> _Fit:
        encoder = encoder if encoder is not None else Encoder(frame)
        pattern_of_row, chain, words, text_of_pattern = self._patterns(frame, encoder)
        starts, flat = words.of_texts(text_of_pattern)
        n, j = chain.shape[0], self.judged.size
        p, best = np.empty((n, j)), np.empty((n, j))
        best_code, known = np.empty((n, j), dtype=np.uint64), np.empty(n, dtype=np.int64)
        n_code = np.empty((n, chain.shape[1]))
        description_fit(
            np.lexsort(chain[:, self.judged].T), starts, flat, chain, self.judged, ROOT,
            prepared.code_index.slot_keys, prepared.code_index.slot_rows, prepared.code_n,
            prepared.code_paths, prepared.code_path_lengths,
            prepared.pair_table,
            prepared.word_index.slot_keys, prepared.word_index.slot_rows, prepared.word_n,
            prepared.cand_starts, prepared.cand_codes, prepared.cand_rows, prepared.cand_above,
            1.0 if own_rows_counted else 0.0, self.smoothing,
            p, best, best_code, known, n_code,
        )  # fmt: skip
        return _Fit(pattern_of_row, chain, words, text_of_pattern, p, best, best_code, known, n_code)

    @staticmethod
    def _band_index(fit: _Fit) -> np.ndarray:
        code, group, top = fit.p[:, 0], fit.p[:, 1], fit.p[:, 2]
        other_code = fit.best[:, 0]
        band = np.select(
            [code >= POINTS_TO, top < POINTS_TO, group < POINTS_TO, other_code >= POINTS_TO],
            [0, 4, 3, 2], default=1,
        )
        band = np.where(fit.known == 0, 0, band)
        n_code = fit.n_code[:, 0]
        support = np.where(fit.known == 0, 0, np.where(n_code == 0, 1, np.where(n_code <= SUPPORT_CEILING, 2, 3)))
        return band * 4 + support

    def bands(
        self, prepared: Prepared, frame: pd.DataFrame, *, own_rows_counted: bool, encoder: Encoder | None = None
    ) -> pd.Categorical:
        fit = self._fit(prepared, frame, own_rows_counted, encoder)
        return pd.Categorical.from_codes(self._band_index(fit)[fit.pattern_of_row], categories=_BANDS)

    def facts(
        self, prepared: Prepared, frame: pd.DataFrame, *, own_rows_counted: bool, encoder: Encoder | None = None
    ) -> list[dict[str, Any]]:
        fit = self._fit(prepared, frame, own_rows_counted, encoder)
        loo = 1.0 if own_rows_counted else 0.0
        band_index = self._band_index(fit)
        texts = _level_texts(frame[self.code.column], self.code)
        n_all = max(0.0, float(_lookup(prepared.code_keys, prepared.code_n, ROOT)[0]) - loo)
        levels = [self.code.levels[c] for c in self.judged.tolist()]
        facts = []
        for i in range(len(frame)):
            k = int(fit.pattern_of_row[i])
            band = int(band_index[k])
            fit_band, support = band // 4, band % 4
            # the level the sentence speaks of: the top group, the group, else the code
            at = {4: 2, 3: 1}.get(fit_band, 0)
            column = int(self.judged[at])
            declared_key = fit.chain[k, column]
            n_here = float(fit.n_code[k, column])
            word_codes = fit.words.of(int(fit.text_of_pattern[k]))
            n_word = np.maximum(_lookup(prepared.word_keys, prepared.word_n, word_codes) - loo, 0.0)
            known = n_word > 0
            n_pair = np.maximum(_lookup(prepared.pair_keys, prepared.pair_n, pair_keys(
                np.full(word_codes.size, declared_key), word_codes)) - loo, 0.0)
            # the known words least usual under the declared code, against all declarations
            best_key = int(fit.best_code[k, at])
            # the code the words point to instead (not on the item's chain: no own row)
            n_usual = float(_lookup(prepared.code_keys, prepared.code_n, best_key)[0]) if best_key else 0.0
            n_usual_pair = _lookup(prepared.pair_keys, prepared.pair_n, pair_keys(
                np.full(word_codes.size, np.uint64(best_key)), word_codes)) if best_key else np.zeros(word_codes.size)
            # quoted: the known words that most favour that code over the declared one, or
            # without one the least usual under the declared code against all declarations
            against = (n_usual_pair + 0.5) / (n_usual + 1.0) if best_key else (n_word + 0.5) / (n_all + 1.0)
            ratio = against / ((n_pair + 0.5) / (n_here + 1.0))
            order = [int(w) for w in np.argsort(-ratio, kind="stable") if known[w]][:QUOTED_WORDS]
            facts.append({
                "model": self.name,
                "kind": self.kind,
                "serves": list(self.spec.serves),
                "band": _BANDS[band],
                "fit": fit_band,
                "support": support,
                "declared": texts[0][i],
                "level": levels[at],
                "digits": _digits(levels[at], texts[column][i]),
                "declared_at": texts[column][i],
                "n_at": n_here,
                "n_all": n_all,
                "p_declared": float(fit.p[k, at]),
                "usual": str(_lookup(prepared.code_keys, prepared.code_text, best_key, default=None)[0])
                if best_key else None,
                "p_usual": float(fit.best[k, at]),
                "n_usual": n_usual,
                "words": [{"word": fit.words.vocabulary[int(word_codes[w])], "n_here": float(n_pair[w]),
                           "n_usual": float(n_usual_pair[w]), "n_all": float(n_word[w])} for w in order],
                "n_words": int(word_codes.size),
                "n_known": int(fit.known[k]),
                "code_unseen": bool(fit.n_code[k, 0] == 0),
                "judged": [{"level": levels[j], "digits": _digits(levels[j], texts[c][i]), "declared": texts[c][i],
                            "n": float(fit.n_code[k, c]), "p_declared": float(fit.p[k, j]),
                            "p_best_other": float(fit.best[k, j])}
                           for j, c in enumerate(self.judged.tolist())],
            })
        return facts


def _sorted_table(keys: np.ndarray, **columns: np.ndarray) -> dict[str, np.ndarray]:
    order = np.argsort(keys, kind="stable")
    return {"key": keys[order].astype(np.uint64), **{c: v[order] for c, v in columns.items()}}


def _level_texts(column: pd.Series, attribute: Attribute) -> list[np.ndarray]:
    """Per level of ``attribute``, object[n]: each row's value at that level, stripped
    (None when missing), as ``engine.levels`` groups it."""
    values, uniques = pd.factorize(column, use_na_sentinel=True)
    stripped = [u.strip() if isinstance(u, str) else str(u).strip() for u in uniques]
    out = []
    for level in attribute.levels:
        kind, _, param = level.partition(":")
        texts = [t[: int(param)] for t in stripped] if kind == "prefix" else stripped
        out.append(np.array([*texts, None], dtype=object)[values])
    return out


def _digits(level: str, text: str | None) -> int:
    kind, _, param = level.partition(":")
    return int(param) if kind == "prefix" else len(text or "")
