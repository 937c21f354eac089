"""The words of a free-text field, as the description evidence counts them.

A word is a run of letters and digits, possibly joined by ``-``, ``/`` or ``.`` inside the
run (``"uy-352"``, ``"m8/1.25"`` stay one word: part numbers and models are among the most
telling words of a goods description). Before splitting, text is lower-cased and its
accents folded (NFKD, combining marks dropped: ``"válvula"`` -> ``"valvula"``), so that
the English and Portuguese spellings officers actually type meet; words of one character
and stop words (English and Portuguese function words, which say nothing about goods) are
dropped; each word counts once per text. Everything is a pure function of the text:
same text, same words, same 64-bit codes on every machine.

Texts are tokenised once per *distinct* text (a day's items repeat a few thousand
descriptions), and the result is a CSR layout: ``starts[k]:starts[k + 1]`` are the word
codes of distinct text ``k``. ``words`` says what the words of one text are (a regular
expression: slow, obvious); ``tokenise`` finds the same words for a whole column in one
numba scan (``word_kernels``), and tests hold the two equal text by text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sisam.engine.levels import mix64, string_hashes
from sisam.evidence.word_kernels import scan_words

#: Function words of English and Portuguese: words that never tell goods apart.
STOP_WORDS = frozenset("""
a an and are as at be but by for from has have in into is it its not of on or other than
that the their this those to was were whether which with without
o os as um uma uns umas e ou de do da dos das em no na nos nas por para pelo pela pelos
pelas com sem que se ao aos ate mas nao seu sua seus suas outro outra outros outras
""".split()) - {"other", "outro", "outra", "outros", "outras"}
#: "other" (outros) stays: in a tariff it names the residual lines ("; other").
_WORD = re.compile(r"[a-z0-9]+(?:[-/.][a-z0-9]+)*")
#: The boundary between two texts in ``tokenise``'s scan (the ASCII unit separator: no
#: part of a word).
_END = "\x1f"
#: Salt of word codes, so that a word's code never equals an attribute's level code.
WORD_SALT = np.uint64(0x5DE5C0DE0F0A7DE5)


#: Unicode's blocks of combining marks (accents once NFKD has split them from their letters).
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def fold(text: str) -> str:
    """Lower case without accents: ``"Válvulas"`` -> ``"valvulas"``."""
    text = text.lower()
    if text.isascii():  # most descriptions: nothing to fold
        return text
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text))


def words(text: str | None) -> list[str]:
    """The distinct words of ``text`` in order of first appearance (``[]`` for a missing
    or blank text)."""
    if text is None or (not isinstance(text, str) and pd.isna(text)):
        return []
    seen: dict[str, None] = {}
    for word in _WORD.findall(fold(str(text))):
        if len(word) > 1 and word not in STOP_WORDS:
            seen.setdefault(word, None)
    return list(seen)


def word_codes(texts: list[str] | np.ndarray) -> np.ndarray:
    """uint64: the stable 64-bit code of each word (SipHash of its UTF-8 bytes, mixed)."""
    if len(texts) == 0:
        return np.zeros(0, dtype=np.uint64)
    return mix64(string_hashes(np.asarray(texts, dtype=object)) ^ WORD_SALT)


@dataclass(frozen=True)
class Tokenised:
    """The words of a column of texts, one entry per distinct text.

    ``text_of_row[i]``: the distinct text of row ``i``; ``starts`` int64[K + 1] and
    ``codes`` uint64: the word codes of distinct text k; ``vocabulary``: word code ->
    word, for the words met."""

    text_of_row: np.ndarray
    starts: np.ndarray
    codes: np.ndarray
    vocabulary: dict[int, str]

    @property
    def n_texts(self) -> int:
        return self.starts.size - 1

    def of(self, k: int) -> np.ndarray:
        return self.codes[self.starts[k]:self.starts[k + 1]]

    def of_texts(self, texts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The word codes of distinct texts ``texts`` one after the other, as ``starts``
        int64[len(texts) + 1] and ``codes``: those of ``texts[i]`` are
        ``codes[starts[i]:starts[i + 1]]``."""
        lengths = np.diff(self.starts)[texts]
        starts = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=starts[1:])
        positions = np.arange(starts[-1]) - np.repeat(starts[:-1] - self.starts[texts], lengths)
        return starts, self.codes[positions]


def tokenise(column: pd.Series) -> Tokenised:
    """The words of every row of ``column``, tokenised once per distinct text: the words
    ``words`` gives, found for all distinct texts in one scan of their folded texts
    (``word_kernels.scan_words``); the scan numbers the distinct words, so that only
    they become strings, are checked against the stop words and are hashed."""
    text_of_row, uniques = pd.factorize(column, use_na_sentinel=False)
    # the boundary may not occur inside a text: as any other non-word character there,
    # a space in its place changes no word
    # as Python objects first: iterating an Arrow-backed index costs microseconds per value
    folded = ["" if u is None or (not isinstance(u, str) and pd.isna(u)) else fold(str(u)).replace(_END, " ")
              for u in np.asarray(uniques, dtype=object).tolist()]
    joined = (_END.join(folded) + _END).encode("utf-8")
    token_text, token_word, word_start, word_stop = scan_words(np.frombuffer(joined, dtype=np.uint8), ord(_END))
    met = [joined[a:b].decode("ascii") for a, b in zip(word_start.tolist(), word_stop.tolist(), strict=True)]
    counted = np.fromiter((w not in STOP_WORDS for w in met), dtype=bool, count=len(met))
    kept = counted[token_word]
    token_text, token_word = token_text[kept], token_word[kept]
    starts = np.zeros(len(uniques) + 1, dtype=np.int64)
    np.cumsum(np.bincount(token_text, minlength=len(uniques)), out=starts[1:])
    used = np.flatnonzero(counted)
    met_codes = np.zeros(len(met), dtype=np.uint64)
    met_codes[used] = word_codes(np.array(met, dtype=object)[used])
    vocabulary = dict(zip(met_codes[used].tolist(), [met[v] for v in used.tolist()], strict=True))
    return Tokenised(text_of_row.astype(np.int64), starts, met_codes[token_word], vocabulary)
