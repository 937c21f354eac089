"""sisam's HPB network for one binary outcome of a table of categorical attributes.

The knowledge catalog of ``knowledge/`` is tied to the declaration contract: its attributes
read contract columns and its labels are the contract's 30 error types. A real public data
set (flights, census, mushrooms) has other columns and one outcome, so the benchmarks do
not dress it up as declarations; they run the same engine layers ``model.learn`` and
``Scorer`` run, on the data set's own attributes:

    level codes (``engine.levels``) -> pattern keys per factor (``engine.keys``)
    -> counts (``engine.counting``) -> S, d per factor and dnet by exact leave-one-out
    (``engine.fit``) -> HPB posterior per factor (``engine.hpb``)
    -> calibrated network combination (``engine.network``).

Nothing in the engine is changed or re-implemented. The one difference from a declaration
knowledge base is the label set: a single label, the outcome, and so no coherent "any".

A data set's catalog is a TOML file (``sisam/bench/catalogs/<name>.toml``)::

    outcome = "cancelled"            # what a positive item is, for reports
    [attribute.carrier]
    column = "carrier"
    type = "nominal"                 # nominal | numeric | text | date, as in knowledge/
    levels = ["value"]               # finest first; "*" implicit
    [factor.route]
    attributes = ["carrier", "origin", "dest"]

Every factor is in the outcome's network (there is one network). The flat table peer
(``flat_probabilities``) uses the same counts and combination without the hierarchy.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sisam.engine.counting import count_factor
from sisam.engine.counts import PatternCounts
from sisam.engine.fit import fit_coefficients
from sisam.engine.hashtable import KeyIndex, build_index, lookup_many
from sisam.engine.hpb import FactorState, factor_log_odds
from sisam.engine.keys import factor_keys
from sisam.engine.lattice import MAX_SHAPES, Lattice, build_lattice
from sisam.engine.levels import level_codes, parse_level
from sisam.engine.network import network_scores
from sisam.errors import KnowledgeError
from sisam.knowledge import ATTRIBUTE_TYPES, MAX_FACTOR_ATTRIBUTES


@dataclass(frozen=True)
class TableAttribute:
    name: str
    column: str
    type: str
    levels: tuple[str, ...]


@dataclass(frozen=True)
class TableCatalog:
    """A data set's attributes and factors (the outcome's network is every factor)."""

    source: str
    outcome: str
    attributes: dict[str, TableAttribute]
    factors: dict[str, tuple[str, ...]]

    @property
    def columns(self) -> tuple[str, ...]:
        """The data set's columns the network reads, in catalog order, each once."""
        return tuple(dict.fromkeys(a.column for a in self.attributes.values()))


def _fail(path: Path, entry: str, message: str) -> KnowledgeError:
    return KnowledgeError(f"{path}: {entry}: {message}")


def load_catalog(path: str | Path) -> TableCatalog:
    """Read and check a data set's catalog; every defect names the file and the entry."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KnowledgeError(f"{path}: catalog file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise KnowledgeError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(doc) - {"outcome", "attribute", "factor"}
    if unknown:
        raise _fail(path, "top level", f"unknown key(s) {sorted(unknown)}; expected outcome, attribute, factor")
    if not isinstance(doc.get("outcome"), str) or not doc["outcome"].strip():
        raise _fail(path, "outcome", "expected a non-empty string naming the positive outcome")
    attributes = {}
    for name, entry in doc.get("attribute", {}).items():
        label = f"[attribute.{name}]"
        if not isinstance(entry, dict) or set(entry) != {"column", "type", "levels"}:
            got = sorted(entry) if isinstance(entry, dict) else entry
            raise _fail(path, label, f"expected exactly the keys column, type, levels; got {got}")
        if entry["type"] not in ATTRIBUTE_TYPES:
            raise _fail(path, label, f"type {entry['type']!r} is not one of {ATTRIBUTE_TYPES}")
        levels = entry["levels"]
        if not isinstance(levels, list) or not levels or len(set(levels)) != len(levels):
            raise _fail(path, label, f"levels must be a non-empty list without repeats, finest first; got {levels!r}")
        for level in levels:
            try:
                parse_level(str(level), entry["type"])
            except ValueError as exc:
                raise _fail(path, label, str(exc)) from None
        attributes[name] = TableAttribute(name, str(entry["column"]), entry["type"], tuple(levels))
    if not attributes:
        raise _fail(path, "[attribute]", "no attribute declared")
    factors = {}
    for name, entry in doc.get("factor", {}).items():
        label = f"[factor.{name}]"
        attrs = entry.get("attributes") if isinstance(entry, dict) else None
        if not isinstance(attrs, list) or not 1 <= len(attrs) <= MAX_FACTOR_ATTRIBUTES or len(set(attrs)) != len(attrs):
            raise _fail(path, label, f"attributes must list 1 to {MAX_FACTOR_ATTRIBUTES} distinct attributes; got {attrs!r}")
        for a in attrs:
            if a not in attributes:
                raise _fail(path, label, f"unknown attribute {a!r}; declared: {', '.join(attributes)}")
        shapes = int(np.prod([len(attributes[a].levels) + 1 for a in attrs]))
        if shapes > MAX_SHAPES:
            raise _fail(path, label, f"lattice of {shapes} shapes exceeds {MAX_SHAPES}")
        factors[name] = tuple(attrs)
    if not factors:
        raise _fail(path, "[factor]", "no factor declared")
    unused = [a for a in attributes if not any(a in f for f in factors.values())]
    if unused:
        raise _fail(path, "[attribute]", f"attribute(s) {unused} used by no factor")
    return TableCatalog(str(path), doc["outcome"], attributes, factors)


@dataclass(frozen=True)
class _Factor:
    name: str
    attributes: tuple[TableAttribute, ...]
    lattice: Lattice
    counts: PatternCounts
    index: KeyIndex


class HPBNode:
    """Learn on a frame and its outcomes; score another frame. ``fit_sample`` and ``seed``
    are ``model.learn``'s (labelled items scored by leave-one-out to fit coefficients)."""

    def __init__(self, catalog: TableCatalog, *, fit_sample: int = 20_000, seed: int = 0):
        self.catalog = catalog
        self.fit_sample = fit_sample
        self.seed = seed
        self._factors: list[_Factor] = []
        self.s = self.d = self.dnet = np.zeros(0)

    def _codes(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        missing = [c for c in self.catalog.columns if c not in frame.columns]
        if missing:
            raise KnowledgeError(f"{self.catalog.source}: column(s) {missing} not in the data set; it has {list(frame.columns)}")
        return {a.name: level_codes(frame[a.column], a.levels, a.type) for a in self.catalog.attributes.values()}

    def _keys(self, codes: dict[str, np.ndarray], name: str, lattice: Lattice) -> np.ndarray:
        return factor_keys(name, [codes[a] for a in self.catalog.factors[name]], lattice)

    def fit(self, frame: pd.DataFrame, outcome: np.ndarray) -> HPBNode:
        labels = np.asarray(outcome, dtype=np.int8).reshape(-1, 1)
        codes = self._codes(frame)
        keys, self._factors = [], []
        for name, attrs in self.catalog.factors.items():
            attributes = tuple(self.catalog.attributes[a] for a in attrs)
            lattice = build_lattice(tuple(len(a.levels) for a in attributes))
            k = self._keys(codes, name, lattice)
            counts = count_factor(k, labels)
            keys.append(k)
            self._factors.append(_Factor(name, attributes, lattice, counts, build_index(counts.keys)))
        fitted = fit_coefficients(
            [FactorState(f.lattice, f.counts, f.index) for f in self._factors],
            keys,
            labels,
            np.ones((len(self._factors), 1), dtype=bool),
            sample_size=self.fit_sample,
            seed=self.seed,
        )
        self.s, self.d, self.dnet = fitted.s, fitted.d, fitted.dnet
        return self

    @property
    def n_patterns(self) -> int:
        return sum(f.counts.n_patterns for f in self._factors)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """float64[n]: P(outcome) of every row."""
        codes = self._codes(frame)
        factor_lo, base = [], None
        for f, factor in enumerate(self._factors):
            result = factor_log_odds(
                self._keys(codes, factor.name, factor.lattice), factor.lattice, factor.counts, factor.index,
                self.s[f], self.d[f],
            )  # fmt: skip
            factor_lo.append(result.full)
            base = result.root
        membership = np.ones((len(self._factors), 1), dtype=bool)
        return network_scores(factor_lo, base, membership, self.dnet, any_label=None)[1][:, 0]

    def flat_probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """float64[n]: the flat-table peer (``sisam.baselines``): each factor's full pattern
        alone, (k + 1) / (n + 2), combined by the same fitted network rule."""
        codes = self._codes(frame)
        factor_lo, base = [], None
        for factor in self._factors:
            keys = self._keys(codes, factor.name, factor.lattice)
            rows = lookup_many(factor.index.slot_keys, factor.index.slot_rows, np.ascontiguousarray(keys[:, factor.lattice.full]))
            k = _positives(factor.counts, rows)
            n = np.where(rows >= 0, factor.counts.n[np.maximum(rows, 0)], 0.0)
            p = (k + 1.0) / (n + 2.0)
            factor_lo.append((np.log(p) - np.log1p(-p))[:, None])
            if base is None:
                (root,) = lookup_many(factor.index.slot_keys, factor.index.slot_rows, np.ascontiguousarray(keys[:1, factor.lattice.root]))
                p_root = (_positives(factor.counts, np.array([root]))[0] + 0.5) / (factor.counts.n[root] + 1.0)
                base = np.array([np.log(p_root) - np.log1p(-p_root)])
        membership = np.ones((len(self._factors), 1), dtype=bool)
        return network_scores(factor_lo, base, membership, self.dnet, any_label=None)[1][:, 0]


def _positives(counts: PatternCounts, rows: np.ndarray) -> np.ndarray:
    """float64[len(rows)]: the single label's error count at each row (-1: none)."""
    out = np.zeros(rows.size)
    seen = np.flatnonzero(rows >= 0)
    start, end = counts.err_ptr[rows[seen]], counts.err_ptr[rows[seen] + 1]
    has = end > start  # one label: at most one entry per pattern
    out[seen[has]] = counts.err_k[start[has]]
    return out
