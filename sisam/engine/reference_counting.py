"""The slow, obvious twin of ``levels``, ``keys`` and ``counting``, for tests only.

Everything here is plain Python on one item at a time: a pattern is the tuple (shape,
values at the shape's levels), counted with ``collections.Counter``, exactly as hpb.md
("Counts") defines it. Only at the end is each pattern mapped to its 64-bit key, with
the same mixing as the kernels but in Python integers, so that tests can compare the
fast path with this one exactly. The one primitive shared with the fast path is the
SipHash of a string (``levels.string_hashes``), which has no plain-Python twin worth
writing; golden codes in the tests pin it.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
import pandas as pd

from sisam.engine.counts import PatternCounts
from sisam.engine.lattice import Lattice
from sisam.engine.levels import (
    GAMMA,
    MASK64,
    TAG_BAND,
    TAG_DAY,
    TAG_INFINITE,
    TAG_MISSING,
    TAG_MONTH,
    TAG_NEGATIVE,
    TAG_NUMBER,
    TAG_STRING,
    TAG_YEAR,
    TAG_ZERO,
    mix64_int,
    parse_level,
    string_hashes,
    tag_base,
)

_EPOCH = dt.date(1970, 1, 1)


def _is_missing(value: object) -> bool:
    return bool(pd.isna(value))


def level_value(value: object, level: str, attr_type: str) -> tuple[int, object]:
    """The value of one item at one level, as (tag, payload): what the level keeps of it.

    "84012100" at prefix:4 is (TAG_STRING, "8401"); 1000.0 at log2band:1 is
    (TAG_BAND, 9); a date at month is (TAG_MONTH, months since 1970-01).
    """
    parsed = parse_level(level, attr_type)
    if attr_type in ("nominal", "text"):
        if _is_missing(value):
            return TAG_MISSING, None
        text = str(value).strip()
        if parsed.kind == "prefix":
            text = text[: int(parsed.param)]
        return TAG_STRING, text
    if attr_type == "numeric":
        if _is_missing(value):
            return TAG_MISSING, None
        x = float(value) + 0.0  # -0.0 is the same number as 0.0
        if parsed.kind == "value":
            return TAG_NUMBER, x
        if x == 0:
            return TAG_ZERO, None
        if x < 0:
            return TAG_NEGATIVE, None
        if math.isinf(x):
            return TAG_INFINITE, None
        width = parsed.param
        if width == int(width):
            return TAG_BAND, (math.frexp(x)[1] - 1) // int(width)
        return TAG_BAND, math.floor(math.log2(x) / width)
    # date: a YYYY-MM-DD string, a datetime.date or a numpy datetime64
    if _is_missing(value) or (isinstance(value, str) and not value.strip()):
        return TAG_MISSING, None
    if isinstance(value, str):
        day = dt.date.fromisoformat(value.strip())
    elif isinstance(value, np.datetime64):
        day = _EPOCH + dt.timedelta(days=int(value.astype("datetime64[D]").astype(np.int64)))
    else:
        day = value if type(value) is dt.date else value.date()
    if parsed.kind == "value":
        return TAG_DAY, (day - _EPOCH).days
    if parsed.kind == "month":
        return TAG_MONTH, (day.year - 1970) * 12 + day.month - 1
    return TAG_YEAR, day.year - 1970


def level_code(value: object, level: str, attr_type: str) -> int:
    """The 64-bit code of one item's value at one level (twin of ``levels.level_codes``)."""
    return code_of(level, level_value(value, level, attr_type))


def code_of(level: str, value: tuple[int, object]) -> int:
    """The code of a (tag, payload) level value at ``level``."""
    tag, payload = value
    base = tag_base(level, tag)
    if payload is None:
        return base
    if tag == TAG_STRING:
        bits = int(string_hashes(np.array([payload], dtype=object))[0])
    elif tag == TAG_NUMBER:
        bits = struct.unpack("<Q", struct.pack("<d", payload))[0]  # the double's bits
    else:
        bits = int(payload) & MASK64  # two's complement, as int64 viewed as uint64
    return mix64_int(base ^ bits)


def pattern_key(salt: int, shape: int, codes: Sequence[int]) -> int:
    """Key of the pattern with level ``codes`` (non-wildcard attributes, in attribute
    order) at ``shape`` of the factor salted ``salt`` (twin of ``keys.pattern_keys``)."""
    folded = mix64_int(int(salt) + (shape + 1) * GAMMA)
    for code in codes:
        folded = mix64_int(folded ^ code)
    return (shape << 56) | (folded >> 8)  # the shape in the top 8 bits


def count_patterns(
    columns: Sequence[Sequence[object]],
    attributes: Sequence[tuple[tuple[str, ...], str]],
    lattice: Lattice,
    salt: int,
    labels: np.ndarray,
    weights: Sequence[float] | None = None,
) -> PatternCounts:
    """Count a factor's patterns the obvious way (twin of keys + ``counting.count_factor``).

    ``columns[a]`` are the items' values of attribute a, ``attributes[a]`` its (levels,
    type); ``labels`` int8[n, E] as for ``count_factor``.
    """
    n_items = len(columns[0])
    weights = [1.0] * n_items if weights is None else [float(w) for w in weights]
    big_N: Counter[tuple] = Counter()
    small_n: Counter[tuple] = Counter()
    k: Counter[tuple] = Counter()
    for i in range(n_items):
        if weights[i] == 0:
            continue
        row = [int(x) for x in labels[i]]
        for s in range(lattice.n_shapes):
            pattern = [s]
            for a, (levels, attr_type) in enumerate(attributes):
                level = int(lattice.levels[s, a])
                if level < len(levels):
                    pattern.append(
                        (levels[level], level_value(columns[a][i], levels[level], attr_type))
                    )
            pattern_t = tuple(pattern)
            big_N[pattern_t] += weights[i]
            if row[0] >= 0:
                small_n[pattern_t] += weights[i]
                for e, y in enumerate(row):
                    if y == 1:
                        k[(pattern_t, e)] += weights[i]

    def key_of(pattern: tuple) -> int:
        codes = [code_of(level, value) for level, value in pattern[1:]]
        return pattern_key(salt, pattern[0], codes)

    by_key_N: Counter[int] = Counter()
    by_key_n: Counter[int] = Counter()
    by_key_k: Counter[tuple[int, int]] = Counter()
    for pattern, count in big_N.items():
        by_key_N[key_of(pattern)] += count
    for pattern, count in small_n.items():
        by_key_n[key_of(pattern)] += count
    for (pattern, e), count in k.items():
        by_key_k[(key_of(pattern), e)] += count
    return _as_pattern_counts(by_key_N, by_key_n, by_key_k)


def count_keys(
    keys: np.ndarray, labels: np.ndarray, weights: Sequence[float] | None = None
) -> PatternCounts:
    """Count given keys the obvious way (twin of ``counting.count_factor`` alone): every
    (item, shape) adds the item's weight to its key, whatever the shape."""
    n_items, n_shapes = keys.shape
    weights = [1.0] * n_items if weights is None else [float(w) for w in weights]
    big_N: Counter[int] = Counter()
    small_n: Counter[int] = Counter()
    k: Counter[tuple[int, int]] = Counter()
    for i in range(n_items):
        if weights[i] == 0:
            continue
        row = [int(x) for x in labels[i]]
        for s in range(n_shapes):
            key = int(keys[i, s])
            big_N[key] += weights[i]
            if row[0] >= 0:
                small_n[key] += weights[i]
                for e, y in enumerate(row):
                    if y == 1:
                        k[(key, e)] += weights[i]
    return _as_pattern_counts(big_N, small_n, k)


def _as_pattern_counts(
    big_N: Counter[int], small_n: Counter[int], k: Counter[tuple[int, int]]
) -> PatternCounts:
    keys = sorted(big_N)
    errors: defaultdict[int, list[tuple[int, float]]] = defaultdict(list)
    for (key, e), count in sorted(k.items()):
        errors[key].append((e, count))
    ptr = [0]
    labels: list[int] = []
    counts: list[float] = []
    for key in keys:
        for e, count in errors[key]:
            labels.append(e)
            counts.append(count)
        ptr.append(len(labels))
    return PatternCounts(
        np.array(keys, dtype=np.uint64),
        np.array([small_n[key] for key in keys], dtype=np.float64),
        np.array([big_N[key] for key in keys], dtype=np.float64),
        np.array(ptr, dtype=np.int64),
        np.array(labels, dtype=np.int16),
        np.array(counts, dtype=np.float64),
    )
