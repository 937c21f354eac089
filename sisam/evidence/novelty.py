"""Novelty (issue 6, part 3): how new are the item's combinations?

Catalog entry (``knowledge/evidence.toml``)::

    [evidence.importer_novelty]
    kind = "novelty"
    subject = "importer"                         # an attribute (its finest level)
    companions = ["hs_heading", "exporter"]      # optional: attributes (finest levels)
    serves = ["freight", "insurance"]

Counting. Every declaration, inspected or not, adds 1 to its subject (table ``subjects``,
which also keeps the subject's first day, ``first_day``: days since 1970-01-01 of its
earliest dated declaration) and to each (subject, companion) pair (table ``pairs``); keys
fold the attributes' finest level codes (``engine.levels``) with the companion's position,
so tables of two batches add up (counts) and keep the earlier first day
(``base.merge_tables``). No hot loop: counting and look-ups are sorted array operations
(``np.unique``, ``np.searchsorted``), so there is no kernel to twin.

Time order, not only leave-one-out. "First time this importer declares this heading"
means no *earlier* declaration did. At scoring every counted declaration is earlier than
the item. At learning (``own_rows_counted``) the frame's rows are in the tables, and
plain leave-one-out would count the pair's later declarations too: the first of ten
declarations of a pair would look like its tenth, and "new" would mean one thing at
learning and another at scoring. So a history row counts only the tables' declarations
outside the frame (earlier batches of ``learn --update``) plus the frame's rows before it
in (``date``, row) order; rows of the same day keep their file order.

The band. ``n<subject><companion 1><companion 2>...``. The subject's digit is its age: 0 no
earlier declaration (its first), 1 its first declaration under 30 days before the item's
date, 2 from 30 to 89 days, 3 ninety days or more (or an earlier declaration but no date to
measure from). Age, not a count of declarations, because that is how being new to the trade
works: a large importer's first month holds dozens of declarations, a small one's a single
one, and both are new (the synthetic world's brokers err 1.8 times as often in an
importer's first 60 days, ``sisam.synth.mechanisms``). A companion's digit counts the
earlier declarations of the pair: 0 none (first time), 1 from 1 to 4, 2 five or more.
``prefix:2`` keeps the subject's age alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from sisam.encoding import Encoder
from sisam.engine.levels import mix64
from sisam.evidence.base import EvidenceModel, ModelTables
from sisam.knowledge import Attribute, EvidenceSpec, Knowledge

#: Upper bounds of the earlier-declaration counts of bands 0 and 1 (2 above the last).
COUNT_CEILINGS = (0.0, 4.0)
#: Days from the subject's first declaration that begin age bands 2 and 3 (a month, a quarter).
AGE_STARTS = (30, 90)
#: Age digit of a subject declared before when the item or the tables have no date.
AGE_UNKNOWN = 3
#: first_day of a subject none of whose declarations is dated.
NO_DAY = np.iinfo(np.int64).max
#: The contract column that orders history rows (ties keep the file order).
DATE_COLUMN = "date"


@dataclass(frozen=True)
class Prepared:
    """Sorted keys and counts of both tables."""

    subject_keys: np.ndarray
    subject_n: np.ndarray
    subject_first: np.ndarray
    pair_keys: np.ndarray
    pair_n: np.ndarray


def _lookup(keys: np.ndarray, counts: np.ndarray, wanted: np.ndarray, absent: Any = 0.0) -> np.ndarray:
    """The value of each wanted key, ``absent`` where the key is not in the table."""
    if keys.size == 0:
        return np.full(wanted.size, absent, dtype=counts.dtype)
    at = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
    return np.where(keys[at] == wanted, counts[at], absent)


def _table(keys: np.ndarray) -> dict[str, np.ndarray]:
    unique, n = np.unique(keys, return_counts=True)
    return {"key": unique.astype(np.uint64), "N": n.astype(np.float64)}


def day_numbers(frame: pd.DataFrame) -> np.ndarray:
    """int64: each row's date as days since 1970-01-01, ``NO_DAY`` where missing (or no
    date column)."""
    if DATE_COLUMN not in frame:
        return np.full(len(frame), NO_DAY, dtype=np.int64)
    dates = pd.to_datetime(frame[DATE_COLUMN], errors="coerce").to_numpy(dtype="datetime64[D]")
    missing = np.isnat(dates)
    return np.where(missing, NO_DAY, np.where(missing, np.datetime64(0, "D"), dates).astype(np.int64))


def _subject_table(keys: np.ndarray, days: np.ndarray) -> dict[str, np.ndarray]:
    """``_table`` with each key's first (smallest) day."""
    table = _table(keys)
    first = np.full(table["key"].size, NO_DAY, dtype=np.int64)
    np.minimum.at(first, np.searchsorted(table["key"], keys), days)
    return {**table, "first_day": first}


def age_band(earlier: np.ndarray, day: np.ndarray, first_day: np.ndarray) -> np.ndarray:
    """int64: 0 no earlier declaration, 1 first one under 30 days before, 2 under 90, 3 older
    (or undated)."""
    dated = (day != NO_DAY) & (first_day != NO_DAY)
    age = np.where(dated, np.maximum(day - np.where(dated, first_day, 0), 0), 0)
    digit = np.where(dated, 1 + np.searchsorted(np.array(AGE_STARTS), age, side="right"), AGE_UNKNOWN)
    return np.where(earlier > 0, digit, 0)


def earlier_in_frame(keys: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, how many rows of the frame share its key and come before it in ``order``
    (a permutation: rows by time), and how many share its key in all."""
    ranked = keys[order]
    codes, uniques = pd.factorize(ranked)
    before = np.empty(keys.size)
    before[order] = pd.Series(codes).groupby(codes).cumcount().to_numpy(dtype=np.float64)
    total = np.bincount(codes, minlength=uniques.size).astype(np.float64)
    in_frame = np.empty(keys.size)
    in_frame[order] = total[codes]
    return before, in_frame


def count_band(n: np.ndarray) -> np.ndarray:
    """int64: 0 for no earlier declaration, 1 up to 4, 2 from 5."""
    return np.searchsorted(np.array(COUNT_CEILINGS), n, side="left")


class Novelty(EvidenceModel):
    kind = "novelty"
    options: ClassVar[dict[str, bool]] = {"subject": True, "companions": False}

    def __init__(self, spec: EvidenceSpec, knowledge: Knowledge):
        super().__init__(spec, knowledge)
        self.subject: Attribute = knowledge.attributes[spec.options["subject"]]
        self.companions: tuple[Attribute, ...] = tuple(
            knowledge.attributes[a] for a in spec.options.get("companions", []))

    @property
    def sources(self) -> tuple[Attribute, ...]:
        return (self.subject, *self.companions)

    @classmethod
    def check_options(cls, spec: EvidenceSpec, attributes: Mapping[str, Attribute]) -> str | None:
        problem = super().check_options(spec, attributes)
        if problem:
            return problem
        subject, companions = spec.options["subject"], spec.options.get("companions", [])
        if subject not in attributes:
            return f"subject {subject!r} is not an attribute of attributes.toml"
        if not isinstance(companions, list) or not all(isinstance(c, str) for c in companions):
            return f"companions must be a list of attributes, got {companions!r}"
        for c in companions:
            if c not in attributes:
                return f"companion {c!r} is not an attribute of attributes.toml"
        if subject in companions or len(set(companions)) != len(companions):
            return f"companions {companions} repeat an attribute or contain the subject {subject!r}"
        return None

    # -- keys ---------------------------------------------------------------------------

    def _keys(self, encoder: Encoder) -> tuple[np.ndarray, list[np.ndarray]]:
        subject = np.ascontiguousarray(encoder.codes(self.subject)[:, 0])
        subject_keys = mix64(subject)
        pair_keys = []
        for position, companion in enumerate(self.companions):
            # the companion's position keeps (importer, heading H) apart from (importer,
            # exporter H) should two codes coincide
            salt = mix64(np.array([position + 1], dtype=np.uint64))[0]
            pair_keys.append(mix64(subject_keys ^ mix64(encoder.codes(companion)[:, 0] ^ salt)))
        return subject_keys, pair_keys

    def count(self, frame: pd.DataFrame) -> ModelTables:
        subject_keys, pair_keys = self._keys(Encoder(frame))
        return {
            "subjects": _subject_table(subject_keys, day_numbers(frame)),
            "pairs": _table(np.concatenate(pair_keys) if pair_keys else subject_keys[:0]),
        }

    def prepare(self, tables: ModelTables) -> Prepared:
        s, p = tables["subjects"], tables["pairs"]
        # tables of a knowledge base learnt before subjects kept a first day: undated
        first = s["first_day"] if "first_day" in s else np.full(s["key"].size, NO_DAY, dtype=np.int64)
        return Prepared(s["key"], s["N"], first, p["key"], p["N"])

    def earlier(
        self, prepared: Prepared, frame: pd.DataFrame, own_rows_counted: bool, encoder: Encoder | None
    ) -> np.ndarray:
        """float64[n, 1 + companions]: earlier declarations of the subject, then of each
        (subject, companion) pair (see the module docstring for "earlier")."""
        encoder = encoder if encoder is not None else Encoder(frame)
        subject_keys, pair_keys = self._keys(encoder)
        out = np.empty((len(frame), 1 + len(pair_keys)))
        if own_rows_counted:
            dates = frame[DATE_COLUMN].to_numpy() if DATE_COLUMN in frame else np.zeros(len(frame))
            order = np.lexsort((np.arange(len(frame)), dates))
        for j, keys in enumerate([subject_keys, *pair_keys]):
            table_keys, table_n = (
                (prepared.subject_keys, prepared.subject_n) if j == 0 else (prepared.pair_keys, prepared.pair_n)
            )
            counted = _lookup(table_keys, table_n, keys)
            if own_rows_counted:
                before, in_frame = earlier_in_frame(keys, order)
                # decay may leave old batches' counts fractional; never below zero
                counted = np.maximum(counted - in_frame, 0.0) + before
            out[:, j] = counted
        return out

    def age(
        self, prepared: Prepared, frame: pd.DataFrame, earlier: np.ndarray, encoder: Encoder | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The subject's age digit, its first day (``NO_DAY`` if unknown) and each row's
        day, given the subject's earlier declarations (``earlier[:, 0]``). The tables' first
        day is the subject's earliest counted declaration; at learning that may be the row's
        own, but then the row has no earlier declaration and its digit is 0 whatever the day."""
        encoder = encoder if encoder is not None else Encoder(frame)
        subject_keys, _ = self._keys(encoder)
        first = _lookup(prepared.subject_keys, prepared.subject_first, subject_keys, NO_DAY)
        day = day_numbers(frame)
        return age_band(earlier[:, 0], day, first), first, day

    def _digits(self, prepared: Prepared, frame: pd.DataFrame, own_rows_counted: bool,
                encoder: Encoder | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Digits of the band (age, then one per companion), earlier counts, first days, days."""
        encoder = encoder if encoder is not None else Encoder(frame)
        earlier = self.earlier(prepared, frame, own_rows_counted, encoder)
        age, first, day = self.age(prepared, frame, earlier, encoder)
        digits = np.column_stack([age, count_band(earlier[:, 1:])]) if earlier.shape[1] > 1 else age[:, None]
        return digits, earlier, first, day

    def bands(
        self, prepared: Prepared, frame: pd.DataFrame, *, own_rows_counted: bool, encoder: Encoder | None = None
    ) -> pd.Categorical:
        digits, _, _, _ = self._digits(prepared, frame, own_rows_counted, encoder)
        return pd.Categorical.from_codes(band_index(digits), categories=band_names(digits.shape[1]))

    def facts(
        self, prepared: Prepared, frame: pd.DataFrame, *, own_rows_counted: bool, encoder: Encoder | None = None
    ) -> list[dict[str, Any]]:
        digits, earlier, first, day = self._digits(prepared, frame, own_rows_counted, encoder)
        names = band_names(digits.shape[1])
        index = band_index(digits)
        subject_values = frame[self.subject.column].astype("string").str.strip()
        companion_values = [_finest_text(frame[c.column], c) for c in self.companions]
        facts = []
        for i in range(len(frame)):
            known = bool(earlier[i, 0] > 0 and first[i] != NO_DAY and day[i] != NO_DAY)
            facts.append({
                "model": self.name,
                "kind": self.kind,
                "serves": list(self.spec.serves),
                "band": names[int(index[i])],
                "subject": self.subject.name,
                "subject_value": None if pd.isna(subject_values.iloc[i]) else str(subject_values.iloc[i]),
                "n_subject": float(earlier[i, 0]),
                "age": int(digits[i, 0]),
                # the subject's first declaration and the days from it to the item (None if
                # it has none before the item, or no date)
                "first_date": str(np.datetime64(int(first[i]), "D")) if known else None,
                "days_since_first": int(max(day[i] - first[i], 0)) if known else None,
                "companions": [
                    {"attribute": c.name, "value": companion_values[j][i], "n_earlier": float(earlier[i, 1 + j]),
                     "first_time": bool(earlier[i, 1 + j] == 0)}
                    for j, c in enumerate(self.companions)
                ],
            })
        return facts


def _radices(width: int) -> np.ndarray:
    """Digits per position: 4 ages of the subject, 3 counts per companion."""
    return np.array([len(AGE_STARTS) + 2] + [len(COUNT_CEILINGS) + 1] * (width - 1))


def band_index(digits: np.ndarray) -> np.ndarray:
    """int64[n]: each row's band code (mixed radix, the subject's digit first)."""
    radices = _radices(digits.shape[1])
    weights = np.r_[np.cumprod(radices[::-1])[::-1][1:], 1]
    return (digits * weights).sum(axis=1)


def band_names(width: int) -> list[str]:
    """The band strings in code order (digit of the subject first)."""
    radices = _radices(width)
    names = [""]
    for r in radices:
        names = [name + str(d) for name in names for d in range(r)]
    return ["n" + name for name in names]


def _finest_text(column: pd.Series, attribute: Attribute) -> list[str | None]:
    """Each row's value at the attribute's finest level, as the counts group it."""
    kind, _, param = attribute.levels[0].partition(":")
    texts = column.astype("string").str.strip()
    if kind == "prefix":
        texts = texts.str[: int(param)]
    return [None if pd.isna(t) else str(t) for t in texts]
