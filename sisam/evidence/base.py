"""What every evidence model is: the base class and the keyed tables it learns.

See the package docstring (``sisam.evidence``) for the mechanism; this module holds the
parts every kind shares, so that a kind's module only says how it counts and how it bands.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from sisam.encoding import Encoder
    from sisam.knowledge import Attribute, EvidenceSpec, Knowledge

#: One table: named columns of equal length; ``key`` (uint64, sorted, unique) first.
Table = dict[str, np.ndarray]
#: A model's tables by name.
ModelTables = dict[str, Table]
#: Every model's tables by model name: what a knowledge base stores.
EvidenceTables = dict[str, ModelTables]

#: Column dtypes a table may hold (the knowledge base stores exactly these).
TABLE_DTYPES = (np.dtype(np.uint64), np.dtype(np.int64), np.dtype(np.float64), np.dtype(object))


class EvidenceModel(ABC):
    """One ``[evidence.<name>]`` model of ``knowledge/evidence.toml``.

    A kind subclasses this and sets ``kind`` and ``options`` (key -> required), then
    implements ``check_options``, ``count``, ``prepare``, ``bands`` and ``facts``. Tables
    are merged by ``merge_tables`` (counts add, decay scales them), which every kind
    inherits: design the tables so that adding them is right.
    """

    kind: ClassVar[str]
    #: kind-specific keys of the catalog entry -> whether they are required
    options: ClassVar[dict[str, bool]] = {}
    #: whether ``bands`` runs a parallel numba kernel (``evidence_columns`` runs such models
    #: beside the others)
    parallel_bands: ClassVar[bool] = False

    def __init__(self, spec: EvidenceSpec, knowledge: Knowledge):
        self.spec = spec
        self.knowledge = knowledge

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def column(self) -> str:
        return self.spec.column

    @property
    @abstractmethod
    def sources(self) -> tuple[Attribute, ...]:
        """The attributes of contract columns the model reads: its band is a function of
        their values (and of the tables), which exports of the network need to know."""

    @classmethod
    def check_options(cls, spec: EvidenceSpec, attributes: Mapping[str, Attribute]) -> str | None:
        """What is wrong with the entry's kind-specific keys, or None. Called by
        ``load_knowledge``, which names the file and the entry in front of the message."""
        for key in spec.options:
            if key not in cls.options:
                valid = ", ".join(sorted({"kind", "serves", *cls.options}))
                return f"unknown key {key!r} for kind {cls.kind!r}; valid: {valid}"
        for key, required in cls.options.items():
            if required and key not in spec.options:
                return f"missing key {key!r} (kind {cls.kind!r} needs it)"
        return None

    @abstractmethod
    def count(self, frame: pd.DataFrame) -> ModelTables:
        """The model's tables counted over ``frame`` (every declaration, inspected or not)."""

    @abstractmethod
    def prepare(self, tables: ModelTables) -> Any:
        """Whatever ``bands`` and ``facts`` need from the tables (indexes, derived arrays),
        built once per knowledge-base version."""

    @abstractmethod
    def bands(
        self, prepared: Any, frame: pd.DataFrame, *, own_rows_counted: bool, encoder: Encoder | None = None
    ) -> np.ndarray | pd.Categorical:
        """Band strings, one per row of ``frame`` (object array, or a ``pd.Categorical``,
        which is cheaper to key: few distinct bands among many items). ``encoder``, an
        ``Encoder`` of ``frame`` shared by all models, saves recomputing level codes. With ``own_rows_counted`` the
        rows were counted in the tables and each is banded as if it had not been."""

    @abstractmethod
    def facts(
        self, prepared: Any, frame: pd.DataFrame, *, own_rows_counted: bool, encoder: Encoder | None = None
    ) -> list[dict[str, Any]]:
        """Per row of ``frame``, JSON-ready facts behind its band, for explanations and the
        reasoning log: at least ``model``, ``kind``, ``band``, ``serves``."""


def check_table(model: str, name: str, table: Mapping[str, np.ndarray]) -> str | None:
    """What breaks the table invariants, or None."""
    if "key" not in table:
        return f"evidence table {model}.{name} has no 'key' column"
    keys = table["key"]
    if not isinstance(keys, np.ndarray) or keys.dtype != np.uint64 or keys.ndim != 1:
        return f"evidence table {model}.{name}: key must be a 1-d uint64 array"
    if keys.size > 1 and not np.all(keys[1:] > keys[:-1]):
        return f"evidence table {model}.{name}: keys are not sorted and unique"
    for column, values in table.items():
        if not isinstance(values, np.ndarray) or values.dtype not in TABLE_DTYPES or values.shape != keys.shape:
            got = getattr(values, "dtype", type(values)), getattr(values, "shape", None)
            return (f"evidence table {model}.{name}: column {column!r} must be a 1-d array of "
                    f"{', '.join(str(d) for d in TABLE_DTYPES)} as long as the keys, got {got}")
    return None


def merge_tables(old: Table, new: Table, decay: float) -> Table:
    """``old`` decayed by ``decay`` plus ``new``: union of keys; float64 columns are counts
    (scaled, then added); int64 columns named ``first_*`` are the earliest of something
    (a day: the smaller is kept, never decayed); other columns describe the key (equal in
    both, kept)."""
    if old["key"].size == 0:
        return dict(new)
    if new["key"].size == 0:
        return {c: (v * decay if v.dtype == np.float64 else v) for c, v in old.items()}
    if list(old) != list(new):
        raise ValueError(f"cannot merge evidence tables with columns {list(old)} and {list(new)}")
    keys, inverse = np.unique(np.concatenate([old["key"], new["key"]]), return_inverse=True)
    out: Table = {"key": keys}
    for column in old:
        if column == "key":
            continue
        if old[column].dtype == np.float64:
            weights = np.concatenate([old[column] * decay, new[column]])
            out[column] = np.bincount(inverse, weights=weights, minlength=keys.size)
        elif column.startswith("first_") and old[column].dtype == np.int64:
            values = np.full(keys.size, np.iinfo(np.int64).max, dtype=np.int64)
            np.minimum.at(values, inverse, np.concatenate([old[column], new[column]]))
            out[column] = values
        else:
            values = np.empty(keys.size, dtype=old[column].dtype)
            values[inverse[: old["key"].size]] = old[column]
            values[inverse[old["key"].size:]] = new[column]
            out[column] = values
    return out
