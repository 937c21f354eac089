"""Novelty (issue 6, part 3): how new are the item's combinations?

Catalog entry (``knowledge/evidence.toml``)::

    [evidence.importer_novelty]
    kind = "novelty"
    subject = "importer"                         # an attribute (its finest level)
    companions = ["hs_heading", "exporter", "origin"]   # attributes (finest levels)
    serves = ["hs_code", "exporter", "origin_country"]

Counting. Every declaration, inspected or not, adds 1 to its subject (table ``subjects``)
and to each (subject, companion) pair (table ``pairs``); keys fold the attributes' finest
level codes (``engine.levels``) with the companion's position, so tables of two batches
add up and decay like the factor counts. No hot loop: counting and look-ups are sorted
array operations (``np.unique``, ``np.searchsorted``), so there is no kernel to twin.

Time order, not only leave-one-out. "First time this importer declares this heading"
means no *earlier* declaration did. At scoring every counted declaration is earlier than
the item. At learning (``own_rows_counted``) the frame's rows are in the tables, and
plain leave-one-out would count the pair's later declarations too: the first of ten
declarations of a pair would look like its tenth, and "new" would mean one thing at
learning and another at scoring. So a history row counts only the tables' declarations
outside the frame (earlier batches of ``learn --update``) plus the frame's rows before it
in (``date``, row) order; rows of the same day keep their file order.

The band. ``n<subject><companion 1><companion 2>...``, one digit per count of earlier
declarations: 0 none (first time), 1 from 1 to 4, 2 five or more. ``prefix:2`` keeps the
subject's novelty alone.
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
#: The contract column that orders history rows (ties keep the file order).
DATE_COLUMN = "date"


@dataclass(frozen=True)
class Prepared:
    """Sorted keys and counts of both tables."""

    subject_keys: np.ndarray
    subject_n: np.ndarray
    pair_keys: np.ndarray
    pair_n: np.ndarray


def _lookup(keys: np.ndarray, counts: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """float64[len(wanted)]: the count of each wanted key, 0 where absent."""
    if keys.size == 0:
        return np.zeros(wanted.size)
    at = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
    return np.where(keys[at] == wanted, counts[at], 0.0)


def _table(keys: np.ndarray) -> dict[str, np.ndarray]:
    unique, n = np.unique(keys, return_counts=True)
    return {"key": unique.astype(np.uint64), "N": n.astype(np.float64)}


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
    options: ClassVar[dict[str, bool]] = {"subject": True, "companions": True}

    def __init__(self, spec: EvidenceSpec, knowledge: Knowledge):
        super().__init__(spec, knowledge)
        self.subject: Attribute = knowledge.attributes[spec.options["subject"]]
        self.companions: tuple[Attribute, ...] = tuple(knowledge.attributes[a] for a in spec.options["companions"])

    @property
    def sources(self) -> tuple[Attribute, ...]:
        return (self.subject, *self.companions)

    @classmethod
    def check_options(cls, spec: EvidenceSpec, attributes: Mapping[str, Attribute]) -> str | None:
        problem = super().check_options(spec, attributes)
        if problem:
            return problem
        subject, companions = spec.options["subject"], spec.options["companions"]
        if subject not in attributes:
            return f"subject {subject!r} is not an attribute of attributes.toml"
        if not isinstance(companions, list) or not companions or not all(isinstance(c, str) for c in companions):
            return f"companions must be a non-empty list of attributes, got {companions!r}"
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
            "subjects": _table(subject_keys),
            "pairs": _table(np.concatenate(pair_keys) if pair_keys else subject_keys[:0]),
        }

    def prepare(self, tables: ModelTables) -> Prepared:
        s, p = tables["subjects"], tables["pairs"]
        return Prepared(s["key"], s["N"], p["key"], p["N"])

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

    def bands(
        self, prepared: Prepared, frame: pd.DataFrame, *, own_rows_counted: bool, encoder: Encoder | None = None
    ) -> pd.Categorical:
        digits = count_band(self.earlier(prepared, frame, own_rows_counted, encoder))
        width = digits.shape[1]
        index = (digits * (3 ** np.arange(width - 1, -1, -1))).sum(axis=1)
        return pd.Categorical.from_codes(index, categories=band_names(width))

    def facts(
        self, prepared: Prepared, frame: pd.DataFrame, *, own_rows_counted: bool, encoder: Encoder | None = None
    ) -> list[dict[str, Any]]:
        earlier = self.earlier(prepared, frame, own_rows_counted, encoder)
        digits = count_band(earlier)
        names = band_names(digits.shape[1])
        weights = 3 ** np.arange(digits.shape[1] - 1, -1, -1)
        subject_values = frame[self.subject.column].astype("string").str.strip()
        companion_values = [_finest_text(frame[c.column], c) for c in self.companions]
        facts = []
        for i in range(len(frame)):
            facts.append({
                "model": self.name,
                "kind": self.kind,
                "serves": list(self.spec.serves),
                "band": names[int((digits[i] * weights).sum())],
                "subject": self.subject.name,
                "subject_value": None if pd.isna(subject_values.iloc[i]) else str(subject_values.iloc[i]),
                "n_subject": float(earlier[i, 0]),
                "companions": [
                    {"attribute": c.name, "value": companion_values[j][i], "n_earlier": float(earlier[i, 1 + j]),
                     "first_time": bool(earlier[i, 1 + j] == 0)}
                    for j, c in enumerate(self.companions)
                ],
            })
        return facts


def band_names(width: int) -> list[str]:
    """The 3**width band strings in code order (digit of the subject first)."""
    return ["n" + "".join(str(code // 3 ** (width - 1 - k) % 3) for k in range(width)) for code in range(3**width)]


def _finest_text(column: pd.Series, attribute: Attribute) -> list[str | None]:
    """Each row's value at the attribute's finest level, as the counts group it."""
    kind, _, param = attribute.levels[0].partition(":")
    texts = column.astype("string").str.strip()
    if kind == "prefix":
        texts = texts.str[: int(param)]
    return [None if pd.isna(t) else str(t) for t in texts]
