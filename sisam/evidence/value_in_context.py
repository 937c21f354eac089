"""Value in context (issue 8): how usual is the declared value of a field in its context?

Catalog entry (``knowledge/evidence.toml``)::

    [evidence.origin_given_exporter]
    kind = "value_in_context"
    field = "origin"             # an attribute; its finest level is the value v
    context = ["exporter"]       # attributes, with their generalisation chains
    serves = ["origin_country"]
    smoothing = 2.0              # optional: S of hpb.md (default DEFAULT_SMOOTHING)
    calibration = 1.0            # optional: d of hpb.md (default DEFAULT_CALIBRATION)

This is an HPB node whose child is the field itself (hpb.md's second domain, the declared
code given importer and exporter) in its binary form "f = v or not".

Counting. The lattice is the context attributes' lattice times the field at its finest
level (``value -> *``); every declaration, inspected or not, is counted with the engine's
``count_factor`` over the keys of ``engine.keys``: shapes with the field at ``*`` give
N_W, shapes with the field at its value give N_Wv. Table ``counts``: ``key``, ``N``, and
for the rows of N_Wv ``context`` (the key of W) and ``value`` (the code of v), from which
``prepare`` derives each context's modal value and its runner-up. Table ``values``: the
field's codes, their text (for explanations) and their N.

Smoothing. ``context_kernels.value_in_context`` computes P(f = v | C) with hpb.md's
recursion over the context lattice: the root is the value's overall frequency, and each
context pattern's posterior shrinks its own frequency towards the calibrated combination of
its generalisations with S pseudo-declarations. Coefficients are fixed, not fitted: the
only labels here would be the items' own values (always "yes"), whose leave-one-out
likelihood HPB's unnormalised P(f = v) can raise by inflating every value at once. S = 2
lets two declarations of a context outweigh its generalisations as often as not (a new
exporter's first declarations move the figure, one odd declaration among hundreds does
not); d = 1 averages the generalisations' lifts, the cautious end of hpb.md's range,
because the generalisations of a context (importer, heading) overlap.

The band. ``s<surprise>n<support>``: surprise 0 when v is the modal value of the context
the figure rests on (the finest context with declarations), else by P(f = v | C):
1 from 20 %, 2 from 5 %, 3 from 1 %, 4 below; support by N_W of the full context:
0 never seen (the figure comes from coarser contexts), 1 up to 9 declarations, 2 up to 99,
3 more. ``prefix:2`` keeps the surprise alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from sisam.encoding import Encoder
from sisam.engine.counting import count_factor
from sisam.engine.hashtable import KeyIndex, build_index
from sisam.engine.keys import SHAPE_BITS, distinct_factor_keys, factor_keys
from sisam.engine.lattice import MAX_SHAPES, Lattice, build_lattice
from sisam.evidence.base import EvidenceModel, ModelTables
from sisam.evidence.context_kernels import value_in_context
from sisam.knowledge import Attribute, EvidenceSpec, Knowledge

DEFAULT_SMOOTHING = 2.0
DEFAULT_CALIBRATION = 1.0
#: Lower bounds of P(f = v | C) of surprise bands 1, 2, 3 (band 4 below the last).
SURPRISE_FLOORS = (0.20, 0.05, 0.01)
#: Upper bounds of N_W of support bands 1, 2 (0: never seen; 3 above the last).
SUPPORT_CEILINGS = (9.0, 99.0)
_BANDS = [f"s{s}n{n}" for s in range(5) for n in range(4)]


@dataclass(frozen=True)
class Prepared:
    """What banding needs: the counts' index and N, and per context row the largest and
    second largest N_Wv and the value holding the largest."""

    index: KeyIndex
    keys: np.ndarray
    N: np.ndarray
    top1: np.ndarray
    top2: np.ndarray
    mode: np.ndarray
    # value rows sorted by (context, N descending, value): contexts, N and values, for
    # the usual value and the rank in facts
    by_context: np.ndarray
    by_context_n: np.ndarray
    by_context_value: np.ndarray
    texts: dict[int, str]


@dataclass(frozen=True)
class _Outputs:
    lo: np.ndarray
    used: np.ndarray
    n_used: np.ndarray
    nv_used: np.ndarray
    n_full: np.ndarray
    modal: np.ndarray


class ValueInContext(EvidenceModel):
    kind = "value_in_context"
    options: ClassVar[dict[str, bool]] = {"field": True, "context": True, "smoothing": False, "calibration": False}

    def __init__(self, spec: EvidenceSpec, knowledge: Knowledge):
        super().__init__(spec, knowledge)
        self.field: Attribute = knowledge.attributes[spec.options["field"]]
        self.context: tuple[Attribute, ...] = tuple(knowledge.attributes[a] for a in spec.options["context"])
        self.smoothing = float(spec.options.get("smoothing", DEFAULT_SMOOTHING))
        self.calibration = float(spec.options.get("calibration", DEFAULT_CALIBRATION))
        # the field enters at its finest level only: its value, then "*"
        self.value_attribute = Attribute(
            self.field.name, self.field.column, self.field.type, self.field.levels[:1], self.field.noun
        )
        self.attributes = (*self.context, self.value_attribute)
        self.lattice: Lattice = build_lattice(tuple(len(a.levels) for a in self.attributes))
        self.context_lattice: Lattice = build_lattice(tuple(len(a.levels) for a in self.context))
        field_level = self.lattice.levels[:, -1]
        # context shape c sits at the same place among the shapes with the field at its
        # value as among those with the field at "*" (lattice order ignores a constant level)
        self.value_shape = np.flatnonzero(field_level == 0).astype(np.int64)
        self.context_shape = np.flatnonzero(field_level == 1).astype(np.int64)
        self.is_value_shape = field_level == 0

    @property
    def sources(self) -> tuple[Attribute, ...]:
        return (*self.context, self.field)

    @classmethod
    def check_options(cls, spec: EvidenceSpec, attributes: Mapping[str, Attribute]) -> str | None:
        problem = super().check_options(spec, attributes)
        if problem:
            return problem
        field, context = spec.options["field"], spec.options["context"]
        if field not in attributes:
            return f"field {field!r} is not an attribute of attributes.toml"
        if attributes[field].type not in ("nominal", "numeric"):
            return f"field {field!r} is a {attributes[field].type} attribute; expected nominal or numeric"
        if not isinstance(context, list) or not context:
            return f"context must be a non-empty list of attributes, got {context!r}"
        for a in context:
            if a not in attributes:
                return f"context attribute {a!r} is not an attribute of attributes.toml"
        if field in context or len(set(context)) != len(context):
            return f"context {context} repeats an attribute or contains the field {field!r}"
        shapes = 2 * int(np.prod([len(attributes[a].levels) + 1 for a in context]))
        if shapes > MAX_SHAPES:
            return f"a context of {shapes // 2} shapes is too large (at most {MAX_SHAPES // 2})"
        for key in ("smoothing", "calibration"):
            value = spec.options.get(key, 1.0)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
                return f"{key} must be a positive number, got {value!r}"
        return None

    # -- learning ---------------------------------------------------------------------

    def _keys(self, encoder: Encoder) -> tuple[np.ndarray, np.ndarray]:
        codes = [encoder.codes(a) for a in self.context] + [encoder.codes(self.field)[:, :1]]
        return factor_keys(self.column, codes, self.lattice), np.ascontiguousarray(codes[-1][:, 0])

    def count(self, frame: pd.DataFrame) -> ModelTables:
        encoder = Encoder(frame)
        keys, codes = self._keys(encoder)
        unlabelled = np.full((len(frame), 1), -1, dtype=np.int8)
        counted = count_factor(keys, unlabelled)
        table_keys = np.array(counted.keys, dtype=np.uint64)
        context = np.zeros(table_keys.size, dtype=np.uint64)
        value = np.zeros(table_keys.size, dtype=np.uint64)
        for vs, cs in zip(self.value_shape, self.context_shape, strict=True):
            unique, first = np.unique(keys[:, vs], return_index=True)
            rows = np.searchsorted(table_keys, unique)
            context[rows] = keys[first, cs]
            value[rows] = codes[first]
        value_codes, first = np.unique(codes, return_index=True)
        n_value = np.bincount(np.searchsorted(value_codes, codes), minlength=value_codes.size).astype(np.float64)
        texts = _texts(frame[self.field.column].iloc[first], self.field)
        return {
            "counts": {"key": table_keys, "N": np.array(counted.N, dtype=np.float64), "context": context, "value": value},
            "values": {"key": value_codes.astype(np.uint64), "text": texts, "N": n_value},
        }

    # -- banding ----------------------------------------------------------------------

    def prepare(self, tables: ModelTables) -> Prepared:
        counts = tables["counts"]
        keys, n, context, value = counts["key"], counts["N"], counts["context"], counts["value"]
        shape = (keys >> np.uint64(64 - SHAPE_BITS)).astype(np.int64)
        value_rows = np.flatnonzero(self.is_value_shape[shape])
        order = value_rows[np.lexsort((value[value_rows], -n[value_rows], context[value_rows]))]
        grouped = context[order]
        first = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]]) if order.size else order
        top1, top2 = np.zeros(keys.size), np.zeros(keys.size)
        mode = np.zeros(keys.size, dtype=np.uint64)
        context_rows = np.searchsorted(keys, grouped[first])
        top1[context_rows] = n[order[first]]
        mode[context_rows] = value[order[first]]
        has_second = np.r_[first[1:], order.size] - first > 1
        top2[context_rows[has_second]] = n[order[first[has_second] + 1]]
        texts = dict(zip(tables["values"]["key"].tolist(), tables["values"]["text"].tolist(), strict=True))
        return Prepared(build_index(keys), keys, n, top1, top2, mode, grouped, n[order], value[order], texts)

    def _run(
        self, prepared: Prepared, frame: pd.DataFrame, own_rows_counted: bool, encoder: Encoder | None
    ) -> tuple[_Outputs, np.ndarray, np.ndarray, np.ndarray]:
        """The kernel's outputs per distinct full pattern, the row -> pattern index, and
        the patterns' keys and field codes.

        Rows with the same values at every level of the context and the field have the
        same keys, hence the same outputs, with or without leave-one-out (a row's own
        count is the same for all of them): keys are made and the kernel runs once per
        distinct row (``keys.distinct_factor_keys``), a few thousand among hundreds of
        thousands of items."""
        encoder = encoder if encoder is not None else Encoder(frame)
        codes = [encoder.codes(a) for a in self.context] + [encoder.codes(self.field)[:, :1]]
        keys, distinct, first = distinct_factor_keys(self.column, codes, self.lattice)
        field_codes = np.ascontiguousarray(codes[-1][first, 0])
        size = first.size
        out = _Outputs(np.empty(size), np.empty(size, np.int64), np.empty(size), np.empty(size), np.empty(size),
                       np.empty(size, np.bool_))
        value_in_context(
            keys, self.value_shape, self.context_shape, self.context_lattice.parents,
            self.context_lattice.n_parents, prepared.index.slot_keys, prepared.index.slot_rows,
            prepared.N, prepared.top1, prepared.top2, prepared.mode, field_codes,
            1.0 if own_rows_counted else 0.0, self.smoothing, self.calibration,
            out.lo, out.used, out.n_used, out.nv_used, out.n_full, out.modal,
        )  # fmt: skip
        return out, distinct, keys, field_codes

    @staticmethod
    def _band_index(out: _Outputs) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-out.lo))
        surprise = np.where(out.modal, 0, 1 + np.searchsorted(-np.array(SURPRISE_FLOORS), -p, side="right"))
        support = np.where(out.n_full > 0, 1 + np.searchsorted(np.array(SUPPORT_CEILINGS), out.n_full), 0)
        return surprise * 4 + support

    def bands(
        self, prepared: Prepared, frame: pd.DataFrame, *, own_rows_counted: bool, encoder: Encoder | None = None
    ) -> pd.Categorical:
        out, distinct, _, _ = self._run(prepared, frame, own_rows_counted, encoder)
        # categorical: the pattern keys' level codes then hash 20 strings, not one per item
        return pd.Categorical.from_codes(self._band_index(out)[distinct], categories=_BANDS)

    def facts(
        self, prepared: Prepared, frame: pd.DataFrame, *, own_rows_counted: bool, encoder: Encoder | None = None
    ) -> list[dict[str, Any]]:
        found, distinct, found_keys, found_codes = self._run(prepared, frame, own_rows_counted, encoder)
        out = _Outputs(*(column[distinct] for column in (found.lo, found.used, found.n_used, found.nv_used,
                                                         found.n_full, found.modal)))
        keys, codes = found_keys[distinct], found_codes[distinct]
        loo = 1.0 if own_rows_counted else 0.0
        declared = _texts(frame[self.field.column], self.field)
        context_values = [_level_texts(frame[a.column], a) for a in self.context]
        band_index = self._band_index(out)
        bands = np.array(_BANDS, dtype=object)[band_index]
        numeric = self.field.type == "numeric"
        facts = []
        for i in range(len(frame)):
            used = int(out.used[i])
            levels = self.context_lattice.levels[used]
            context_key = keys[i, self.context_shape[used]]
            lo = int(np.searchsorted(prepared.by_context, context_key, side="left"))
            hi = int(np.searchsorted(prepared.by_context, context_key, side="right"))
            group_n = prepared.by_context_n[lo:hi] - loo * (prepared.by_context_value[lo:hi] == codes[i])
            seen = group_n > 0
            best = int(np.argmax(np.where(seen, group_n, -1.0))) if seen.any() else -1
            others = group_n[prepared.by_context_value[lo:hi] != codes[i]]
            facts.append({
                "model": self.name,
                "kind": self.kind,
                "serves": list(self.spec.serves),
                "band": str(bands[i]),
                "surprise": int(band_index[i] // 4),
                "support": int(band_index[i] % 4),
                "field": self.field.name,
                "numeric": numeric,
                "declared": declared[i],
                "probability": float(1.0 / (1.0 + np.exp(-out.lo[i]))),
                "context": [
                    {"attribute": a.name, "level": a.levels[0], "value": context_values[j][0][i]}
                    for j, a in enumerate(self.context)
                ],
                "used_context": [
                    {"attribute": a.name, "level": a.levels[levels[j]], "value": context_values[j][levels[j]][i]}
                    for j, a in enumerate(self.context)
                    if levels[j] < len(a.levels)
                ],
                "fallback": bool(out.n_full[i] == 0),
                "n_full_context": float(out.n_full[i]),
                "n_context": float(out.n_used[i]),
                "n_declared": float(out.nv_used[i]),
                "usual": prepared.texts.get(int(prepared.by_context_value[lo + best])) if best >= 0 else None,
                "n_usual": float(group_n[best]) if best >= 0 else 0.0,
                "share_usual": float(group_n[best] / out.n_used[i]) if best >= 0 else 0.0,
                "rank": 1 + int((others > out.nv_used[i]).sum()),
                "n_values": int(seen.sum()),
                "modal": bool(out.modal[i]),
            })
        return facts


def _texts(column: pd.Series, attribute: Attribute) -> np.ndarray:
    """object[n]: each value as explanations quote it (rates with two decimals)."""
    return _level_texts(column, Attribute(attribute.name, attribute.column, attribute.type, attribute.levels[:1],
                                          attribute.noun))[0]


def _level_texts(column: pd.Series, attribute: Attribute) -> list[np.ndarray]:
    """Per level of ``attribute``, object[n] of each row's value at that level (None when
    missing), mirroring ``engine.levels`` so that the text names the counted group."""
    values, uniques = pd.factorize(column, use_na_sentinel=True)
    out = []
    for level in attribute.levels:
        kind, _, param = level.partition(":")
        if attribute.type == "numeric":
            texts = [_number(float(u)) for u in uniques]
        else:
            stripped = [u.strip() if isinstance(u, str) else str(u).strip() for u in uniques]
            texts = [t[: int(param)] for t in stripped] if kind == "prefix" else stripped
        out.append(np.array([*texts, None], dtype=object)[values])
    return out


def _number(x: float) -> str:
    return f"{x:.2f}" if round(x, 2) == x else repr(x)
