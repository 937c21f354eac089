"""Quantities (issue 6, part 2): where does the declared unit value or weight fall among
the declarations of the same goods?

Catalog entry (``knowledge/evidence.toml``)::

    [evidence.value_per_kg]
    kind = "quantity"
    measure = "value_per_kg"     # value_per_unit, value_per_kg or kg_per_unit (MEASURES)
    code = "hs_code"             # an attribute: its chain is the hierarchy (8 -> 6 -> 4 -> 2 digits)
    split = ["origin"]           # optional: attributes that split the finest level only
    within = []                  # optional: attributes held at every level (the unit)
    prior_strength = 4.0         # optional: S (default DEFAULT_PRIOR_STRENGTH)
    serves = ["undervaluation", "overvaluation"]

The measure is a ratio of contract columns (customs value, quantity in the statistical
unit, net weight); it is undefined, and the item says so, when either is missing, zero,
negative or not finite.

The hierarchy. Levels, coarsest first: all declarations, then the code's chain from its
coarsest level to its finest (chapter, heading, subheading, 8-digit code), then the finest
code with the ``split`` attributes (8-digit code x origin). A chain, not the lattice of
code x origin: the price of goods is set by what they are, and origin moves it within a
product (a Chinese valve is cheaper than a German one) but says little across products
(chapter 84 from China mixes everything that chapter holds), so origin is only worth
splitting where the goods are already fixed; a chain also costs one look-up per level.
Per-unit measures keep ``within = ["unit"]`` at every level: a value per piece and a value
per litre do not belong to one distribution, even under one heading.

Counting: a fixed log-scale histogram per context. Each declaration with a defined measure
adds 1 to the bin floor(ln(x) / BIN_WIDTH) of every level's context (table ``bins``:
``key`` of (context, bin), ``context``, ``bin``, ``N``). Bins are an eighth of a doubling
wide (x 1.09), clipped to 2^-40 .. 2^40. Why a histogram and not count, sum and sum of
squares of ln(x): trade data has heavy tails, and the history holds its own errors (a
weight typed x 1000 adds ln(1000)^2 = 48 to a sum of squares whose other hundred terms
are around 0.06 each, and the standard deviation of the context triples), whereas one
declaration moves a rank by one. The histogram gives ranks and quantiles directly, holds
the count (the sum of its bins), adds up across batches and decays like every count;
only non-empty bins are stored, at most one row per declaration and level.

Placing an item: ``quantity_kernels.place_in_context`` (its smoothing rule and the reason
for the mid-rank are there) gives q, the smoothed P(X < x) + P(X = x)/2 in the item's
finest context; a context with few declarations is shrunk towards its parent level with
prior strength S, an unseen one falls back to it. S = 4 lets four declarations of an
8-digit code from an origin weigh as much as everything the coarser levels say, enough for
a code's own price to dominate after a few declarations and little enough that one odd
declaration does not make a context.

The band. ``q<position>n<support>``: position 0 far below (q < 1 %), 1 below (q < 10 %),
2 usual, 3 above (q > 90 %), 4 far above (q > 99 %); support by N of the finest context:
0 never seen (the figure comes from coarser levels), 1 up to 9 declarations, 2 more. ``qm``:
the measure is undefined (missing or zero quantity, weight or value). ``prefix:2`` keeps the
position alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from sisam.encoding import Encoder
from sisam.engine.hashtable import KeyIndex, build_index
from sisam.engine.keys import factor_salt
from sisam.engine.levels import mix64, mix64_int
from sisam.evidence.base import EvidenceModel, ModelTables
from sisam.evidence.quantity_kernels import place_in_context
from sisam.evidence.value_in_context import _level_texts
from sisam.knowledge import Attribute, EvidenceSpec, Knowledge

#: measure -> (numerator column, denominator column) of the contract.
MEASURES: dict[str, tuple[str, str]] = {
    "value_per_unit": ("customs_value_usd", "quantity"),
    "value_per_kg": ("customs_value_usd", "net_weight_kg"),
    "kg_per_unit": ("net_weight_kg", "quantity"),
}
#: Bins of the log scale: an eighth of a doubling.
BIN_WIDTH = math.log(2.0) / 8.0
#: Bins are clipped to [-MAX_BIN, MAX_BIN - 1]: 2^-40 .. 2^40.
MAX_BIN = 8 * 40
DEFAULT_PRIOR_STRENGTH = 4.0
#: Upper bounds of q of positions 0, 1 and lower bounds of positions 3, 4.
FAR_BELOW, BELOW, ABOVE, FAR_ABOVE = 0.01, 0.10, 0.90, 0.99
#: Upper bound of N of the finest context of support band 1 (0: never seen; 2 above it).
SUPPORT_CEILING = 9.0
#: Explanations quote the finest level with at least this many declarations.
MIN_QUOTED = 10.0
#: The share of declarations an explanation's "usual range" holds (its middle).
QUOTED_SHARE = 0.80
MISSING_BAND = "qm"
BANDS = [f"q{p}n{s}" for p in range(5) for s in range(3)] + [MISSING_BAND]


@dataclass(frozen=True)
class Prepared:
    """The contexts' index (row r: ``context_n[r]`` declarations, non-empty bins at
    ``context_start[r]:context_start[r + 1]``) and the bins sorted by (context, bin)."""

    index: KeyIndex
    context_keys: np.ndarray
    context_start: np.ndarray
    context_n: np.ndarray
    bin_ids: np.ndarray
    bin_below: np.ndarray
    bin_n: np.ndarray


@dataclass(frozen=True)
class Placed:
    """Per row: the measure, whether it is defined, its bin, the context keys per level and
    the kernel's outputs (see ``quantity_kernels``)."""

    measure: np.ndarray
    valid: np.ndarray
    bins: np.ndarray
    context_keys: np.ndarray
    q: np.ndarray
    used: np.ndarray
    n_used: np.ndarray
    n_full: np.ndarray


def measure_bins(x: np.ndarray) -> np.ndarray:
    """int64: the log-scale bin of each positive finite x (others get 0; callers mask them)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.floor(np.log(np.where(x > 0, x, 1.0)) / BIN_WIDTH)
    return np.clip(np.nan_to_num(b), -MAX_BIN, MAX_BIN - 1).astype(np.int64)


def bin_value(b: float) -> float:
    """The measure at position ``b`` of the log scale (bin k spans [k, k + 1))."""
    return math.exp(b * BIN_WIDTH)


class Quantity(EvidenceModel):
    kind = "quantity"
    options: ClassVar[dict[str, bool]] = {
        "measure": True, "code": True, "split": False, "within": False, "prior_strength": False,
    }

    def __init__(self, spec: EvidenceSpec, knowledge: Knowledge):
        super().__init__(spec, knowledge)
        self.measure: str = spec.options["measure"]
        self.numerator, self.denominator = MEASURES[self.measure]
        self.code: Attribute = knowledge.attributes[spec.options["code"]]
        self.split = tuple(knowledge.attributes[a] for a in spec.options.get("split", []))
        self.within = tuple(knowledge.attributes[a] for a in spec.options.get("within", []))
        self.prior_strength = float(spec.options.get("prior_strength", DEFAULT_PRIOR_STRENGTH))
        self.readers = tuple(_reader(knowledge.attributes, c) for c in (self.numerator, self.denominator))
        # levels coarsest first: all, the code's chain reversed, the finest code x split
        self.n_levels = 1 + len(self.code.levels) + (1 if self.split else 0)
        self.salt = np.uint64(factor_salt(self.column))

    @property
    def sources(self) -> tuple[Attribute, ...]:
        return (self.code, *self.split, *self.within, *self.readers)

    @classmethod
    def check_options(cls, spec: EvidenceSpec, attributes: Mapping[str, Attribute]) -> str | None:
        problem = super().check_options(spec, attributes)
        if problem:
            return problem
        measure = spec.options["measure"]
        if measure not in MEASURES:
            return f"measure {measure!r} is not one of {', '.join(MEASURES)}"
        for column in MEASURES[measure]:
            if not any(a.column == column for a in attributes.values()):
                return f"measure {measure!r} reads column {column!r}, which no attribute of attributes.toml reads"
        code = spec.options["code"]
        if code not in attributes:
            return f"code {code!r} is not an attribute of attributes.toml"
        for key in ("split", "within"):
            names = spec.options.get(key, [])
            if not isinstance(names, list) or not all(isinstance(a, str) for a in names):
                return f"{key} must be a list of attributes, got {names!r}"
            for a in names:
                if a not in attributes:
                    return f"{key} attribute {a!r} is not an attribute of attributes.toml"
        named = [code, *spec.options.get("split", []), *spec.options.get("within", [])]
        if len(set(named)) != len(named):
            return f"code, split and within repeat an attribute: {named}"
        value = spec.options.get("prior_strength", DEFAULT_PRIOR_STRENGTH)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
            return f"prior_strength must be a positive number, got {value!r}"
        return None

    # -- keys ---------------------------------------------------------------------------

    def _measure(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """float64[n] the measure, bool[n] where it is defined."""
        top, bottom = (pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64) for c in
                       (self.numerator, self.denominator))
        valid = np.isfinite(top) & np.isfinite(bottom) & (top > 0) & (bottom > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(valid, top / np.where(valid, bottom, 1.0), np.nan)
        return x, valid & np.isfinite(x) & (x > 0)

    def context_keys(self, encoder: Encoder) -> np.ndarray:
        """uint64[n, levels]: each row's context key at every level, coarsest first."""
        code = encoder.codes(self.code)
        n = code.shape[0]
        base = np.full(n, self.salt, dtype=np.uint64)
        for a in self.within:
            base = mix64(base ^ encoder.codes(a)[:, 0])
        out = np.empty((n, self.n_levels), dtype=np.uint64)
        out[:, 0] = mix64(base)
        chain = code.shape[1]
        for level in range(1, chain + 1):
            # level 1 is the code's coarsest level (its last column), level `chain` its finest
            tag = np.uint64(mix64_int(level))
            out[:, level] = mix64(mix64(base ^ tag) ^ code[:, chain - level])
        if self.split:
            folded = out[:, chain]
            for a in self.split:
                folded = mix64(folded ^ encoder.codes(a)[:, 0])
            out[:, chain + 1] = mix64(folded ^ np.uint64(0xD1B54A32D192ED03))
        return out

    # -- learning -----------------------------------------------------------------------

    def count(self, frame: pd.DataFrame) -> ModelTables:
        x, valid = self._measure(frame)
        contexts = self.context_keys(Encoder(frame))[valid]
        bins = np.repeat(measure_bins(x[valid]), self.n_levels)
        contexts = contexts.ravel()
        keys = mix64(contexts ^ mix64(bins.astype(np.uint64) + self.salt))
        unique, first, n = np.unique(keys, return_index=True, return_counts=True)
        return {"bins": {"key": unique.astype(np.uint64), "context": contexts[first], "bin": bins[first],
                         "N": n.astype(np.float64)}}

    # -- placing ------------------------------------------------------------------------

    def prepare(self, tables: ModelTables) -> Prepared:
        t = tables["bins"]
        order = np.lexsort((t["bin"], t["context"]))
        context, bin_ids, bin_n = t["context"][order], t["bin"][order].astype(np.int64), t["N"][order]
        starts = np.flatnonzero(np.r_[True, context[1:] != context[:-1]]) if context.size else np.zeros(0, np.int64)
        context_start = np.r_[starts, context.size].astype(np.int64)
        total = np.cumsum(bin_n)
        before_group = np.repeat(np.r_[0.0, total][starts], np.diff(context_start))
        bin_below = total - bin_n - before_group
        context_n = np.add.reduceat(bin_n, starts) if starts.size else np.zeros(0)
        keys = context[starts]
        return Prepared(build_index(keys), keys, context_start, context_n, bin_ids,
                        np.ascontiguousarray(bin_below), np.ascontiguousarray(bin_n))

    def place(
        self, prepared: Prepared, frame: pd.DataFrame, own_rows_counted: bool, encoder: Encoder | None = None
    ) -> Placed:
        encoder = encoder if encoder is not None else Encoder(frame)
        x, valid = self._measure(frame)
        bins = measure_bins(x)
        keys = self.context_keys(encoder)
        n = len(frame)
        q, used, n_used, n_full = np.empty(n), np.empty(n, np.int64), np.empty(n), np.empty(n)
        place_in_context(
            keys, bins, valid, prepared.index.slot_keys, prepared.index.slot_rows, prepared.context_start,
            prepared.context_n, prepared.bin_ids, prepared.bin_below, prepared.bin_n,
            1.0 if own_rows_counted else 0.0, self.prior_strength, q, used, n_used, n_full,
        )  # fmt: skip
        return Placed(x, valid, bins, keys, q, used, n_used, n_full)

    @staticmethod
    def band_index(placed: Placed) -> np.ndarray:
        q = placed.q
        position = np.select([q < FAR_BELOW, q < BELOW, q > FAR_ABOVE, q > ABOVE], [0, 1, 4, 3], 2)
        support = np.where(placed.n_full > 0, np.where(placed.n_full > SUPPORT_CEILING, 2, 1), 0)
        return np.where(placed.valid, position * 3 + support, len(BANDS) - 1)

    def bands(
        self, prepared: Prepared, frame: pd.DataFrame, *, own_rows_counted: bool, encoder: Encoder | None = None
    ) -> pd.Categorical:
        placed = self.place(prepared, frame, own_rows_counted, encoder)
        return pd.Categorical.from_codes(self.band_index(placed), categories=BANDS)

    # -- explaining ---------------------------------------------------------------------

    def _histogram(self, prepared: Prepared, context: int, own_bin: int | None) -> tuple[np.ndarray, np.ndarray]:
        """The bins of a context and their declarations, the item's own taken out."""
        row = int(np.searchsorted(prepared.context_keys, np.uint64(context)))
        if row >= prepared.context_keys.size or prepared.context_keys[row] != np.uint64(context):
            return np.zeros(0, np.int64), np.zeros(0)
        lo, hi = prepared.context_start[row], prepared.context_start[row + 1]
        bins, n = prepared.bin_ids[lo:hi], prepared.bin_n[lo:hi].copy()
        if own_bin is not None:
            n = np.maximum(0.0, n - (bins == own_bin))
        return bins, n

    def _level_parts(self, level: int, code_texts: list[np.ndarray], split_texts: list[np.ndarray],
                     i: int) -> list[dict[str, Any]]:
        """The pattern parts naming the context of ``level`` for row ``i`` (all: none)."""
        chain = len(self.code.levels)
        if level == 0:
            return []
        finest = min(level, chain)
        parts = [{"attribute": self.code.name, "level": self.code.levels[chain - finest],
                  "value": code_texts[chain - finest][i]}]
        if level > chain:
            parts += [{"attribute": a.name, "level": a.levels[0], "value": split_texts[j][i]}
                      for j, a in enumerate(self.split)]
        return parts

    def facts(
        self, prepared: Prepared, frame: pd.DataFrame, *, own_rows_counted: bool, encoder: Encoder | None = None
    ) -> list[dict[str, Any]]:
        placed = self.place(prepared, frame, own_rows_counted, encoder)
        index = self.band_index(placed)
        code_texts = _level_texts(frame[self.code.column], self.code)
        split_texts = [_level_texts(frame[a.column], a)[0] for a in self.split]
        units = frame["unit"].astype("string").str.strip() if "unit" in frame else pd.Series([None] * len(frame))
        columns = {c: pd.to_numeric(frame[c], errors="coerce") for c in (self.numerator, self.denominator)}
        facts = []
        for i in range(len(frame)):
            valid = bool(placed.valid[i])
            unit = units.iloc[i]
            fact: dict[str, Any] = {
                "model": self.name,
                "kind": self.kind,
                "serves": list(self.spec.serves),
                "band": BANDS[int(index[i])],
                "measure": self.measure,
                "unit": None if pd.isna(unit) else str(unit),
                "valid": valid,
                "position": int(index[i] // 3) if valid else None,
                "support": int(index[i] % 3) if valid else None,
                "context": self._level_parts(self.n_levels - 1, code_texts, split_texts, i),
                "fallback": bool(placed.n_full[i] == 0),
                "n_full_context": float(placed.n_full[i]),
            }
            if not valid:
                fact["undefined"] = [c for c in (self.numerator, self.denominator)
                                     if not (np.isfinite(columns[c].iloc[i]) and columns[c].iloc[i] > 0)]
                facts.append(fact)
                continue
            own = int(placed.bins[i]) if own_rows_counted else None
            quoted = None
            for level in range(self.n_levels - 1, -1, -1):
                bins, n = self._histogram(prepared, int(placed.context_keys[i, level]), own)
                if n.sum() >= MIN_QUOTED or (level == 0 and n.sum() > 0):
                    quoted = (level, bins, n)
                    break
            fact.update({"declared": float(placed.measure[i]), "quantile": float(placed.q[i])})
            if quoted is None:
                fact["usual"] = None
            else:
                level, bins, n = quoted
                tail = (1.0 - QUOTED_SHARE) / 2.0
                fact["usual"] = {
                    "context": self._level_parts(level, code_texts, split_texts, i),
                    "n": float(n.sum()),
                    "low": histogram_quantile(bins, n, tail),
                    "high": histogram_quantile(bins, n, 1.0 - tail),
                    "share": QUOTED_SHARE,
                }
            facts.append(fact)
        return facts


def histogram_quantile(bins: np.ndarray, n: np.ndarray, p: float) -> float:
    """The p-quantile of a log-scale histogram, interpolated within its bin on the log
    scale (declarations spread evenly across a bin)."""
    total = float(n.sum())
    target = p * total
    below = 0.0
    for b, count in zip(bins.tolist(), n.tolist(), strict=True):
        if count > 0 and below + count >= target:
            return bin_value(b + (target - below) / count)
        below += count
    return bin_value(float(bins[-1]) + 1.0)


def _reader(attributes: Mapping[str, Attribute], column: str) -> Attribute:
    """The first attribute reading ``column`` (``check_options`` made sure one does)."""
    return next(a for a in attributes.values() if a.column == column)
