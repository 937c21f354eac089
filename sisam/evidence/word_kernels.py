"""The scan behind ``words.tokenise`` (numba): the words of many texts in one pass.

The texts are folded (``words.fold``), joined by a boundary byte and encoded as UTF-8;
the scan finds what ``words._WORD`` finds in each text, on bytes: a run of ASCII letters
and digits, extended while a joiner (``-``, ``/``, ``.``) is followed by another such
run. A byte of a non-ASCII character is never a letter, digit or joiner, so the bytes
give the same words as the characters. It keeps words of two bytes or more (they are
ASCII: two characters), each once per text at its first appearance, and numbers the
distinct words in order of first appearance (an open-addressing table keyed by a hash
of the bytes, comparing the bytes themselves, so two words never share a number).

The plain-Python twin is ``words.words`` (a regular expression per text); tests compare
``tokenise`` with it text by text.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@nb.njit(inline="always", nogil=True)
def _is_word_byte(c):
    return (c >= 97 and c <= 122) or (c >= 48 and c <= 57)  # a-z, 0-9


@nb.njit(inline="always", nogil=True)
def _is_joiner(c):
    return c == 45 or c == 46 or c == 47  # - . /


@nb.njit(inline="always", nogil=True)
def _hash(text, start, stop):
    h = _FNV_OFFSET
    for k in range(start, stop):
        h = (h ^ np.uint64(text[k])) * _FNV_PRIME
    h ^= h >> np.uint64(31)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(29)
    return h


@nb.njit(inline="always", nogil=True)
def _same(text, start, stop, other_start, other_stop):
    if stop - start != other_stop - other_start:
        return False
    for k in range(stop - start):
        if text[start + k] != text[other_start + k]:
            return False
    return True


@nb.njit(cache=True, nogil=True)
def scan_words(text, boundary):
    """The words of the texts in ``text`` (uint8, UTF-8), each text ended by the byte
    ``boundary``.

    Returns ``token_text`` and ``token_word`` int64[W]: for each word kept (two bytes or
    more, first appearance in its text), its text's number and its word's number; and
    ``word_start``, ``word_stop`` int64[V]: the bytes of word v are
    ``text[word_start[v]:word_stop[v]]``."""
    n = text.shape[0]
    token_text = np.empty(n // 3 + 1, dtype=np.int64)  # a kept word and its separator: 3 bytes
    token_word = np.empty(n // 3 + 1, dtype=np.int64)
    word_start = np.empty(64, dtype=np.int64)
    word_stop = np.empty(64, dtype=np.int64)
    last_text = np.empty(64, dtype=np.int64)  # the last text that listed the word
    slots = np.full(128, -1, dtype=np.int64)  # word numbers by hash, 2x the words at most
    hashes = np.empty(64, dtype=np.uint64)
    n_words = 0
    n_tokens = 0
    t = 0
    i = 0
    while i < n:
        c = text[i]
        if c == boundary:
            t += 1
            i += 1
            continue
        if not _is_word_byte(c):
            i += 1
            continue
        start = i
        while i < n and _is_word_byte(text[i]):
            i += 1
        while i + 1 < n and _is_joiner(text[i]) and _is_word_byte(text[i + 1]):
            i += 1
            while i < n and _is_word_byte(text[i]):
                i += 1
        if i - start < 2:
            continue
        h = _hash(text, start, i)
        mask = np.uint64(slots.shape[0] - 1)
        slot = h & mask
        while True:
            v = slots[slot]
            if v < 0 or (hashes[v] == h and _same(text, start, i, word_start[v], word_stop[v])):
                break
            slot = (slot + np.uint64(1)) & mask
        if v < 0:
            v = n_words
            n_words += 1
            if n_words > word_start.shape[0]:
                word_start = _grown(word_start)
                word_stop = _grown(word_stop)
                last_text = _grown(last_text)
                hashes = _grown(hashes)
            word_start[v] = start
            word_stop[v] = i
            last_text[v] = -1
            hashes[v] = h
            slots[slot] = v
            if 2 * n_words > slots.shape[0]:
                slots = _rehashed(hashes, n_words, 2 * slots.shape[0])
        if last_text[v] == t:
            continue
        last_text[v] = t
        token_text[n_tokens] = t
        token_word[n_tokens] = v
        n_tokens += 1
    return token_text[:n_tokens].copy(), token_word[:n_tokens].copy(), word_start[:n_words].copy(), word_stop[:n_words].copy()


@nb.njit(nogil=True)
def _grown(values):
    out = np.empty(2 * values.shape[0], dtype=values.dtype)
    out[: values.shape[0]] = values
    return out


@nb.njit(nogil=True)
def _rehashed(hashes, n_words, size):
    slots = np.full(size, -1, dtype=np.int64)
    mask = np.uint64(size - 1)
    for v in range(n_words):
        slot = hashes[v] & mask
        while slots[slot] >= 0:
            slot = (slot + np.uint64(1)) & mask
        slots[slot] = v
    return slots
