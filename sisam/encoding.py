"""From declaration rows to pattern keys: the bridge between tables and kernels.

Each factor of ``knowledge/networks.toml`` becomes a ``FactorPlan``: its attributes, its
lattice (``engine.lattice``, the single definition of shapes) and the salt of its keys.
An ``Encoder`` turns a frame of declarations into the uint64[n, S] pattern keys of every
factor, computing each attribute's level codes once even when several factors share it.
Learning, scoring, explanations and every back-end go through here, so a pattern has the
same key wherever it is counted or looked up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sisam.engine.keys import DistinctKeys, distinct_factor_keys, factor_keys, factor_salt
from sisam.engine.lattice import Lattice, build_lattice
from sisam.engine.levels import level_codes
from sisam.knowledge import Attribute, Knowledge


@dataclass(frozen=True)
class FactorPlan:
    name: str
    attributes: tuple[Attribute, ...]
    lattice: Lattice

    @property
    def salt(self) -> int:
        return int(factor_salt(self.name))

    @property
    def level_counts(self) -> tuple[int, ...]:
        return tuple(len(a.levels) for a in self.attributes)


def factor_plans(knowledge: Knowledge) -> dict[str, FactorPlan]:
    """Every factor of the knowledge catalog, in catalog order."""
    plans = {}
    for name, factor in knowledge.factors.items():
        attributes = tuple(knowledge.attributes[a] for a in factor.attributes)
        plans[name] = FactorPlan(name, attributes, build_lattice(tuple(len(a.levels) for a in attributes)))
    return plans


class Encoder:
    """Pattern keys of one frame of declarations, attribute codes computed once."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self._codes: dict[tuple[str, str, tuple[str, ...]], np.ndarray] = {}

    def with_columns(self, columns: dict[str, np.ndarray | pd.Categorical]) -> Encoder:
        """An Encoder of this frame with ``columns`` added (new names only), keeping the
        level codes computed so far: they are codes of columns that did not change."""
        clash = sorted(set(columns) & set(self.frame.columns))
        if clash:
            raise ValueError(f"columns {clash} are already in the frame: an Encoder only adds columns")
        encoder = Encoder(self.frame.assign(**columns))
        encoder._codes = self._codes
        return encoder

    def codes(self, attribute: Attribute) -> np.ndarray:
        """uint64[n, levels]: the level codes of ``attribute`` for every row."""
        # keyed by what the codes depend on, not by the attribute's name: an evidence
        # model's field is its attribute cut to the finest level, under the same name
        key = (attribute.column, attribute.type, attribute.levels)
        codes = self._codes.get(key)
        if codes is None:
            codes = level_codes(self.frame[attribute.column], attribute.levels, attribute.type)
            self._codes[key] = codes
        return codes

    def keys(self, plan: FactorPlan) -> np.ndarray:
        """uint64[n, S]: every row's pattern key at every shape of the factor."""
        return factor_keys(plan.name, [self.codes(a) for a in plan.attributes], plan.lattice)

    def distinct_keys(self, plan: FactorPlan) -> DistinctKeys:
        """The pattern keys of the rows distinct over the factor's attributes, and each
        row's index among them (``keys.distinct_factor_keys``)."""
        return distinct_factor_keys(plan.name, [self.codes(a) for a in plan.attributes], plan.lattice)
