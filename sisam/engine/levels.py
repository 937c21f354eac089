"""Level codes: each item's value at each generalisation level, as a stable 64-bit code.

hpb.md ("Patterns and the lattice") gives every attribute a chain of generalisation levels
ending in the wildcard ``*``: the HS code goes ``hs8 -> hs6 -> hs4 -> hs2 -> *``, a value
in USD goes ``fine band -> coarse band -> *``. The chain is declared in ``knowledge/`` with
these level names:

    value         the value itself (strings stripped of surrounding white space)
    prefix:N      the first N characters of the stripped string (nominal and text)
    log2band:W    floor(log2(x) / W) for x > 0 (numeric); zero, negative and missing
                  values each get a code of their own
    month, year   the calendar month / year of a date

The engine never looks at values again after this step: a pattern key (``keys.py``) mixes
these codes, and counts are stored by key. So a code must be *stable*: the same value at the
same level gives the same code in every process, on every run and every machine, or a
knowledge base learnt yesterday would not recognise today's items. Python's ``hash()`` is
salted per process and is never used; strings go through SipHash with a fixed key
(``pandas.util.hash_array``), numbers through their exact bits, and everything through the
splitmix64 finaliser together with a salt derived from the level's name. The level salt
keeps "84" as a two-character prefix apart from "84" as a full value. Codes do not depend
on the attribute: a factor's key tells its attributes apart by position.

Changing anything here changes every code, hence every key: a knowledge base is only
valid with the ``CODE_VERSION`` it was learnt with (it should record it and refuse to be
read under another one), and must be relearnt when that moves.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numba as nb
import numpy as np
import pandas as pd
from pandas.util import hash_array

#: Version of the coding scheme: the level codes below and the pattern keys built from
#: them (``keys.py``). Bump it whenever a code or a key could change.
CODE_VERSION = 1

#: Level kinds allowed per attribute type; ``value`` is allowed for every type.
LEVELS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "nominal": ("value", "prefix"),
    "text": ("value", "prefix"),
    "numeric": ("value", "log2band"),
    "date": ("value", "month", "year"),
}

# SipHash key of the string hash: exactly 16 bytes, fixed forever (see CODE_VERSION).
_SIPHASH_KEY = "sisam-levels-v1!"
MASK64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15  # splitmix64's increment, 2**64 / golden ratio

# Tags keep the kinds of payload apart: the string "7", the number 7 and the band 7 must
# not share a code just because their payload bits coincide.
TAG_STRING = 1
TAG_NUMBER = 2
TAG_BAND = 3
TAG_DAY = 4
TAG_MONTH = 5
TAG_YEAR = 6
TAG_ZERO = 7
TAG_NEGATIVE = 8
TAG_INFINITE = 9
TAG_MISSING = 10


@dataclass(frozen=True)
class Level:
    """A parsed level name: ``kind`` and its parameter (N of prefix, W of log2band)."""

    name: str
    kind: str
    param: float = 0.0


def parse_level(level: str, attr_type: str) -> Level:
    """Parse and check a level name for an attribute type; raises ``ValueError`` saying what
    was expected (``knowledge.py`` turns it into a ``KnowledgeError`` naming the file)."""
    if attr_type not in LEVELS_BY_TYPE:
        raise ValueError(
            f"unknown attribute type {attr_type!r}: expected one of {sorted(LEVELS_BY_TYPE)}"
        )
    kind, _, param = level.partition(":")
    allowed = LEVELS_BY_TYPE[attr_type]
    if kind not in allowed:
        raise ValueError(
            f"level {level!r} does not apply to a {attr_type} attribute: expected one of "
            f"{', '.join(k + (':N' if k == 'prefix' else ':W' if k == 'log2band' else '') for k in allowed)}"
        )
    if kind == "prefix":
        if not param.isdigit() or int(param) < 1:
            raise ValueError(f"level {level!r}: expected prefix:N with N a positive integer")
        return Level(level, kind, float(int(param)))
    if kind == "log2band":
        try:
            width = float(param)
        except ValueError:
            width = math.nan
        if not (width > 0 and math.isfinite(width)):
            raise ValueError(f"level {level!r}: expected log2band:W with W a positive number")
        return Level(level, kind, width)
    if param:
        raise ValueError(f"level {level!r}: {kind} takes no parameter")
    return Level(level, kind)


def level_salt(level: str) -> int:
    """64-bit salt of a level name (BLAKE2b, stable everywhere)."""
    digest = hashlib.blake2b(level.encode("utf-8"), digest_size=8, person=b"sisam.level")
    return int.from_bytes(digest.digest(), "little")


@nb.njit(inline="always", nogil=True)
def mix(x):
    """splitmix64's finaliser (uint64 -> uint64): a bijection whose every output bit
    depends on every input bit, so nearby payloads (bands 3 and 4) get unrelated codes.
    The one definition for numba kernels (pattern keys, ``keys.py``) and arrays
    (``mix64``); ``mix64_int`` is its twin on Python ints."""
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


@nb.njit(cache=True, nogil=True)
def _mix_flat(x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = mix(x[i])
    return out


def mix64(x: np.ndarray) -> np.ndarray:
    """``mix`` on every element of a uint64 array (a new array, shaped like ``x``)."""
    x = np.asarray(x, dtype=np.uint64)
    return _mix_flat(np.ascontiguousarray(x.reshape(-1))).reshape(x.shape)


def mix64_int(x: int) -> int:
    """``mix64`` on one Python int, for scalars (numpy scalars warn on the wrap-around)."""
    x &= MASK64
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & MASK64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & MASK64
    x ^= x >> 31
    return x


def tag_base(level: str, tag: int) -> int:
    """The code of a payload-free value (zero, missing...) and the seed of tagged payloads."""
    return mix64_int(level_salt(level) + tag * GAMMA)


def _tagged(level: str, tag: int, payload: np.ndarray) -> np.ndarray:
    return mix64(np.uint64(tag_base(level, tag)) ^ np.asarray(payload, dtype=np.uint64))


def string_hashes(strings: np.ndarray) -> np.ndarray:
    """SipHash-2-4 of each string's UTF-8 bytes under the fixed key (object array in)."""
    return hash_array(strings, encoding="utf8", hash_key=_SIPHASH_KEY, categorize=False)


def level_codes(
    values: pd.Series | np.ndarray, levels: tuple[str, ...], attr_type: str
) -> np.ndarray:
    """uint64[n, len(levels)]: the code of every item's value at every level.

    ``attr_type`` is the attribute's type in ``knowledge/``: "nominal" and "text" read
    strings ("" is a declared-empty value with a code of its own; None/NaN get the
    level's missing code; any other value is read as ``str(value)``), "numeric" reads
    numbers (NaN is missing), "date" reads datetime64 values or ``YYYY-MM-DD`` strings
    (NaT and blank strings are missing).

    >>> codes = level_codes(pd.Series(["84713012", "84710000"]), ("value", "prefix:4"), "nominal")
    >>> bool(codes[0, 0] != codes[1, 0]), bool(codes[0, 1] == codes[1, 1])
    (True, True)
    """
    parsed = [parse_level(level, attr_type) for level in levels]
    if attr_type in ("nominal", "text"):
        columns = _string_levels(values, parsed)
    elif attr_type == "numeric":
        columns = _numeric_levels(values, parsed)
    else:
        columns = _date_levels(values, parsed)
    n = len(values)
    out = np.empty((n, len(parsed)), dtype=np.uint64)
    for j, column in enumerate(columns):
        out[:, j] = column
    return out


def _string_levels(values: pd.Series | np.ndarray, parsed: list[Level]) -> list[np.ndarray]:
    # Work on the distinct values only: attributes have far fewer values than items
    # (thousands of HS codes, tens of thousands of importers for a million items).
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    # as Python objects first: iterating an Arrow-backed index costs microseconds per value
    stripped = np.array(
        [u.strip() if isinstance(u, str) else str(u).strip() for u in np.asarray(uniques, dtype=object)],
        dtype=object,
    )
    missing = codes < 0
    columns = []
    for level in parsed:
        level_strings = stripped
        if level.kind == "prefix":
            width = int(level.param)
            level_strings = np.array([s[:width] for s in stripped], dtype=object)
        unique_codes = _tagged(level.name, TAG_STRING, string_hashes(level_strings))
        column = unique_codes[codes] if unique_codes.size else np.empty(len(codes), np.uint64)
        column[missing] = np.uint64(tag_base(level.name, TAG_MISSING))
        columns.append(column)
    return columns


def _numeric_levels(values: pd.Series | np.ndarray, parsed: list[Level]) -> list[np.ndarray]:
    x = np.asarray(values, dtype=np.float64) + 0.0  # + 0.0 turns -0.0 into 0.0
    nan = np.isnan(x)
    columns = []
    for level in parsed:
        if level.kind == "value":
            column = _tagged(level.name, TAG_NUMBER, x.view(np.uint64))
        else:
            column = _log2band(level, x)
        column[nan] = np.uint64(tag_base(level.name, TAG_MISSING))
        columns.append(column)
    return columns


def _log2band(level: Level, x: np.ndarray) -> np.ndarray:
    positive = (x > 0) & np.isfinite(x)
    band = np.zeros(x.shape, dtype=np.int64)
    xp = x[positive]
    width = level.param
    if width == int(width):
        # Integer width: floor(log2(x) / W) == floor(floor(log2 x) / W), and frexp gives
        # floor(log2 x) exactly, so band edges do not depend on the platform's log2.
        _, exponent = np.frexp(xp)
        band[positive] = np.floor_divide(exponent.astype(np.int64) - 1, int(width))
    else:
        band[positive] = np.floor(np.log2(xp) / width).astype(np.int64)
    column = _tagged(level.name, TAG_BAND, band.view(np.uint64))
    column[x == 0] = np.uint64(tag_base(level.name, TAG_ZERO))
    column[x < 0] = np.uint64(tag_base(level.name, TAG_NEGATIVE))
    column[x == np.inf] = np.uint64(tag_base(level.name, TAG_INFINITE))
    return column


def _date_levels(values: pd.Series | np.ndarray, parsed: list[Level]) -> list[np.ndarray]:
    days = _days_since_epoch(values)
    missing = days == np.iinfo(np.int64).min
    dates = np.where(missing, 0, days).astype("datetime64[D]")
    payload_of = {
        "value": (TAG_DAY, days),
        "month": (TAG_MONTH, dates.astype("datetime64[M]").astype(np.int64)),
        "year": (TAG_YEAR, dates.astype("datetime64[Y]").astype(np.int64)),
    }
    columns = []
    for level in parsed:
        tag, payload = payload_of[level.kind]
        column = _tagged(level.name, tag, payload.view(np.uint64))
        column[missing] = np.uint64(tag_base(level.name, TAG_MISSING))
        columns.append(column)
    return columns


def _days_since_epoch(values: pd.Series | np.ndarray) -> np.ndarray:
    """int64 days since 1970-01-01, int64 min where the date is missing."""
    array = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if np.issubdtype(array.dtype, np.datetime64):
        return array.astype("datetime64[D]").astype(np.int64)  # NaT -> int64 min
    codes, uniques = pd.factorize(array, use_na_sentinel=True)
    stripped = pd.Index([u.strip() if isinstance(u, str) else u for u in uniques], dtype=object)
    blank = np.asarray(stripped == "", dtype=bool)
    parsed = pd.to_datetime(stripped.where(~blank, None), format="%Y-%m-%d", errors="coerce")
    bad = np.asarray(parsed.isna()) & ~blank
    if bad.any():
        examples = ", ".join(repr(v) for v in uniques[bad][:5])
        raise ValueError(f"dates must be YYYY-MM-DD or empty; got {examples}")
    unique_days = np.asarray(parsed.values.astype("datetime64[D]").astype(np.int64))
    days = unique_days[codes] if unique_days.size else np.empty(len(codes), np.int64)
    days[codes < 0] = np.iinfo(np.int64).min
    return days
