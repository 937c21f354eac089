"""sisam's networks as pgmpy Bayesian networks: an independent oracle for inference.

This is the only module of sisam that imports pgmpy (style.md, item 13: one adapter per
unstable dependency; pgmpy renamed its network class twice). pgmpy is imported lazily,
inside the functions, because importing it takes seconds and emits deprecation warnings
of its own.

What is exported
----------------
sisam scores error type e with a Bayesian network (hpb.md, "A network, not one node"):
the node "item has error e" has as parents every attribute of every factor of e's network,
and its conditional probability table (CPT) is never stored; HPB computes the column of
the parents' values on demand from pattern counts. For a small enough set of values the
table can be written out in full, and that is what ``export_network`` does:

* **One node per contract column, not per attribute.** Several attributes may read one
  column (``hs_code``, ``hs_subheading`` and ``hs_heading`` all read ``hs_code``), and an
  attribute has a chain of levels (hs8 -> hs6 -> hs4 -> hs2). The node's state is the
  declared value; sisam derives every level from it, exactly as when it scores. Nodes in
  separate columns would let pgmpy consider an item whose code is 84713012 and whose
  heading is 0201, which no item can be.
* **The parents of "any" are every network's columns.** ``network.coherent_any`` clips
  P(any) into the Fréchet bounds of the other 30 labels' probabilities, so P(any) depends
  on every column any network reads, not only on those of the "any" network's factors.
* **The error node** ``error`` (states ``no``, ``yes``) has a CPT column per combination
  of its parents' states, filled with sisam's own probability for a synthetic item having
  those values: the combinations are built as a frame and scored by ``Scorer.probabilities``
  (Encoder keys, HPB posterior per factor, network combination, coherent "any"), so the
  table is exactly what sisam answers, bit for bit, for every item of the frame.
* **Parent nodes** have a marginal CPD: P(state) proportional to N + 1/2, with N the
  declarations the knowledge base counted at the state's pattern of the column's finest
  attribute alone (the value's own count for a ``value`` level, its band's count for a
  banded number), 1/2 being the root's Jeffreys prior; or uniform. Marginals matter only
  for queries that leave some parents unobserved; they are normalised over the exported
  states, a truncation of the world to the values exported.
* **The "(unseen)" state** (``_unseen``, optional for a frame, always present in the
  network of one item, ``export_item``) stands for every value none of whose levels was
  ever counted: all such values have zero counts at every pattern they reach, so HPB
  gives them one and the same answer, generalising to the wildcard (hpb.md, "Prior from
  the generalisations"). Its CPT columns are computed with a stand-in value that is
  checked, against the counts, never to have been counted. A value whose finest level is
  new but whose coarser levels were seen (a new HS code of a known heading) is *not*
  "(unseen)": export it as a value.

State names
-----------
XMLBIF allows only letters, digits and underscores in state names (pgmpy's writer
rewrites anything else, and then two values may collide), so a value's state name
(``state_name``) keeps ASCII letters and digits and writes every other character as
``_`` followed by the two hex digits of each of its UTF-8 bytes: ``B-01`` becomes
``B_2D01``, ``1234.5`` becomes ``1234_2E5``. Strings are stripped first (sisam's levels
compare stripped strings), numbers are written by ``repr(float)``, dates as YYYY-MM-DD.
The names that no value can take (an escape is always followed by two hex digits) are
reserved: ``_missing`` (None, NaN, NaT), ``_empty`` (a blank string) and ``_unseen``.
Evidence for an item is computed from its values with the same function, so a network
read back from XMLBIF answers queries without any metadata from sisam.

Inference and size
------------------
``Oracle`` wraps pgmpy's ``VariableElimination``; with every parent observed, pgmpy's
exact answer is the CPT column renormalised, which agrees with sisam to rounding (the
tests ask for 1e-9). A full table has 2 x prod(states) cells; above ``MAX_TABLE_CELLS``
the export refuses (``ExportTooLarge``) and points to ``export_item``, whose table has
2 x 2**(parents) cells (the item's value and "(unseen)" per column).

Example::

    exported = export_network(scorer, "hs_code", frame)
    oracle = Oracle(exported.model)
    p = oracle.probabilities(frame)          # == scorer.probabilities(frame)[:, 0]
    write_xmlbif(exported.model, "hs_code.xml")
"""

from __future__ import annotations

import logging
import math
import string
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal
from xml.etree import ElementTree

import numpy as np
import pandas as pd

from sisam.contract import COLUMNS
from sisam.encoding import Encoder
from sisam.errors import SisamError
from sisam.knowledge import ANY_LABEL, Attribute, Knowledge

if TYPE_CHECKING:
    from sisam.model import Scorer

log = logging.getLogger("sisam.pgmpy_adapter")

#: Name of the error node of every exported network, and its states (probability of
#: "yes" is sisam's score). No contract column has this name.
ERROR_NODE = "error"
ERROR_STATES = ("no", "yes")
#: Reserved state names (see the module docstring, "State names").
UNSEEN = "_unseen"
MISSING = "_missing"
EMPTY = "_empty"
#: Largest table ``export_network`` writes out: 1e6 float64 cells are 8 MB in memory and
#: 20 MB of XMLBIF text, and pgmpy's inference reduces (copies) the table on every query.
MAX_TABLE_CELLS = 1_000_000

# Stand-ins for "a value never counted", per contract type: values no declaration carries
# at any level (a string no reader produces, a customs value of 2**-1000 USD, the year 1678).
# Each is checked against the counts before use (``_check_unseen``).
UNSEEN_STAND_IN: dict[str, object] = {
    "string": "<sisam:unseen>",
    "number": 2.0**-1000,
    "integer": 2**62,
    "date": pd.Timestamp("1678-01-01"),
}
_PLAIN = frozenset(string.ascii_letters + string.digits)
# Synthetic items scored per batch while filling a table: bounds the pattern keys held at
# once (rows x shapes x 8 bytes per factor) whatever the table's size.
_SCORE_BATCH = 65_536


class ExportTooLarge(SisamError):
    """The full table of a network would exceed the cell limit."""


@dataclass(frozen=True)
class ColumnNode:
    """A parent node: a contract column, the attributes of the network reading it, and
    ``finest``, the attribute with the longest level chain among those of any factor
    reading the column, whose first level gives the node's marginal counts."""

    column: str
    type: str  # the contract's type: "string" | "number" | "integer" | "date"
    attributes: tuple[str, ...]
    finest: str


@dataclass(frozen=True)
class ExportedNetwork:
    """One error type's network as a pgmpy ``DiscreteBayesianNetwork``.

    ``model`` has the parent nodes ``nodes`` (contract column order) and ``ERROR_NODE``;
    ``states[column]`` are the state names of a parent and ``values[column]`` the value
    each stands for (``None`` for ``UNSEEN``: any never-counted value); ``n_cells`` is the
    size of the error node's table.
    """

    label: str
    model: Any  # pgmpy.models.DiscreteBayesianNetwork (imported lazily)
    nodes: tuple[ColumnNode, ...]
    states: dict[str, tuple[str, ...]]
    values: dict[str, tuple[object, ...]]
    n_cells: int

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(node.column for node in self.nodes)


@cache
def _pgmpy() -> SimpleNamespace:
    """pgmpy's classes, imported once. pgmpy 1.1 warns at import time about its own
    modules (``pgmpy.estimators.StructureScore`` is deprecated); nothing sisam can act
    on, and the test suite turns warnings into errors, so those are silenced here only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"pgmpy(\.|$)")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pgmpy(\.|$)")
        from pgmpy.estimators import TreeSearch
        from pgmpy.factors.discrete import TabularCPD
        from pgmpy.inference import VariableElimination
        from pgmpy.models import DiscreteBayesianNetwork
        from pgmpy.readwrite import XMLBIFReader, XMLBIFWriter

    class TableXMLBIFWriter(XMLBIFWriter):
        """pgmpy's writer with the tables joined once: pgmpy appends to the TABLE
        element's text one number at a time, which is quadratic (pgmpy 1.1.2 took 42 s
        for 131,072 cells on our machine; this writes 1,048,576 in 0.7 s). Same text."""

        def get_values(self) -> dict[str, Any]:
            tables = {}
            for cpd in self.model.get_cpds():
                tag = ElementTree.SubElement(self.definition[cpd.variable], "TABLE")
                values = np.ravel(np.asarray(cpd.get_values()), order="F")
                tag.text = "".join(f"{v!s} " for v in values.tolist())
                tables[cpd.variable] = tag
            return tables

    return SimpleNamespace(
        DiscreteBayesianNetwork=DiscreteBayesianNetwork,
        TabularCPD=TabularCPD,
        TreeSearch=TreeSearch,
        VariableElimination=VariableElimination,
        XMLBIFReader=XMLBIFReader,
        XMLBIFWriter=TableXMLBIFWriter,
    )


# ------------------------------------------------------------------------ state names


def state_name(value: object, column_type: str) -> str:
    """The state name of ``value`` in a column of contract type ``column_type`` (see the
    module docstring, "State names"): letters, digits and ``_`` only."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return MISSING
    if column_type == "number":
        text = repr(float(value) + 0.0)  # + 0.0: sisam's levels do not tell -0.0 from 0.0
    elif column_type == "integer":
        text = str(int(value))
    elif column_type == "date":
        text = pd.Timestamp(value).date().isoformat()
    else:
        text = str(value).strip()
        if not text:
            return EMPTY
    return "".join(ch if ch in _PLAIN else "".join(f"_{b:02X}" for b in ch.encode()) for ch in text)


def item_evidence(
    item: Mapping[str, object], columns: tuple[str, ...] | list[str]
) -> dict[str, str]:
    """Evidence for pgmpy: the state name of the item's value in each of ``columns``."""
    return {column: state_name(item[column], COLUMNS[column]) for column in columns}


# ------------------------------------------------------------------------ structure


def network_nodes(knowledge: Knowledge, label: str) -> tuple[ColumnNode, ...]:
    """The parent nodes of ``label``'s network, in contract column order: every column
    read by an attribute of its factors (of every network's factors for "any")."""
    if label not in knowledge.networks:
        raise SisamError(
            f"no network for label {label!r}: expected one of {', '.join(knowledge.label_ids)}"
        )
    labels = knowledge.label_ids if label == ANY_LABEL else (label,)
    sources = _evidence_sources(knowledge)
    used: dict[str, list[str]] = {}
    for name in labels:
        for factor in knowledge.networks[name].factors:
            for attribute in knowledge.factors[factor].attributes:
                for read in sources.get(knowledge.attributes[attribute].column, (attribute,)):
                    readers = used.setdefault(knowledge.attributes[read].column, [])
                    if read not in readers:
                        readers.append(read)
    nodes = []
    for column in (c for c in COLUMNS if c in used):
        readers = [
            a
            for a in knowledge.attributes.values()
            if a.column == column and _in_some_factor(knowledge, a)
        ]
        finest = max(readers, key=lambda a: len(a.levels))  # ties: catalog order
        nodes.append(ColumnNode(column, COLUMNS[column], tuple(used[column]), finest.name))
    return tuple(nodes)


def _synthetic(
    template: pd.DataFrame, n: int, overrides: Mapping[str, Sequence[object]]
) -> pd.DataFrame:
    """``n`` synthetic items: copies of the template's first row with the ``overrides``
    columns set. Columns keep the template's dtypes, so sisam reads them as it reads real
    frames (the same strings, the same missing values, the same numbers)."""
    frame = template.iloc[np.zeros(n, dtype=np.intp)].reset_index(drop=True)
    for column, column_values in overrides.items():
        frame[column] = pd.Series(column_values, dtype=template[column].dtype)
    return frame


class _Probe:
    """The values of every node looked up alone in the counts: at the shape where one
    attribute is at a level and every other at the wildcard, the pattern reads "this
    value, whatever the rest", and its N is the declarations carrying the value.

    All nodes' values go into one synthetic frame, encoded once per factor, because the
    key kernels have a fixed cost per call that dwarfs a few hundred rows.
    """

    def __init__(self, scorer: Scorer, template: pd.DataFrame, values: dict[str, list[object]]):
        self._scorer = scorer
        self._rows: dict[str, slice] = {}
        n = sum(len(v) for v in values.values())
        overrides = {}
        start = 0
        for column, column_values in values.items():
            self._rows[column] = slice(start, start + len(column_values))
            filled = [template[column].iloc[0]] * n
            filled[self._rows[column]] = column_values
            overrides[column] = filled
            start += len(column_values)
        self._encoder = Encoder(_synthetic(template, n, overrides))
        self._keys: dict[str, np.ndarray] = {}

    def counts(self, attribute: Attribute, level: int) -> tuple[np.ndarray, np.ndarray]:
        """(found bool[k], N float64[k]) for the k values of the attribute's column: was
        the value at ``level`` ever counted, and by how many declarations. Any factor
        holding the attribute serves: every factor counts every declaration. An attribute
        only evidence models read has no such count: never found, N = 0 (a uniform
        marginal, and no check of the "(unseen)" stand-in)."""
        name, plan = next(
            (
                (name, plan)
                for name, plan in self._scorer.plans.items()
                if attribute.name in (a.name for a in plan.attributes)
            ),
            (None, None),
        )
        if plan is None:
            # read only by evidence models: no factor counted its values alone
            size = self._rows[attribute.column].stop - self._rows[attribute.column].start
            return np.zeros(size, dtype=bool), np.zeros(size)
        if name not in self._keys:
            self._keys[name] = self._encoder.keys(plan)
        position = [a.name for a in plan.attributes].index(attribute.name)
        target = np.array(plan.lattice.level_counts, dtype=plan.lattice.levels.dtype)
        target[position] = level
        shape = int(np.flatnonzero((plan.lattice.levels == target).all(axis=1))[0])
        keys = self._keys[name][self._rows[attribute.column], shape]
        counts = self._scorer.version.counts[name]
        rows = np.searchsorted(counts.keys, keys)
        found = rows < counts.n_patterns
        found[found] = counts.keys[rows[found]] == keys[found]
        declared = np.zeros(len(keys))
        declared[found] = counts.N[rows[found]]
        return found, declared


def _check_unseen(probe: _Probe, knowledge: Knowledge, node: ColumnNode, position: int) -> None:
    """Check that the stand-in at ``position`` of the node's values was never counted at
    any level of any attribute reading the column: a pattern holding the value at some
    level exists only if the pattern of that value alone at that level does."""
    for attribute in knowledge.attributes.values():
        if attribute.column != node.column or not _in_some_factor(knowledge, attribute):
            continue
        for level, level_name in enumerate(attribute.levels):
            found, _ = probe.counts(attribute, level)
            if found[position]:
                raise SisamError(
                    f"column {node.column!r}: the stand-in {UNSEEN_STAND_IN[node.type]!r} for "
                    f"never-counted values was counted at level {level_name!r} of attribute "
                    f"{attribute.name!r}; expected no declaration to carry it. Export "
                    "without the unseen state."
                )


# ------------------------------------------------------------------------ export


def export_network(
    scorer: Scorer,
    label: str,
    frame: pd.DataFrame,
    *,
    unseen: bool = False,
    marginals: Literal["counts", "uniform"] = "counts",
    max_cells: int = MAX_TABLE_CELLS,
) -> ExportedNetwork:
    """Export ``label``'s network with the values of ``frame`` as states.

    Each parent column gets one state per distinct value of ``frame`` (plus ``UNSEEN``
    with ``unseen=True``); the error node's table holds sisam's probability for every
    combination of states, so pgmpy's exact inference with an item of ``frame`` as
    evidence returns ``scorer.probabilities`` for that item (module docstring).
    ``frame`` must have every column the catalog's attributes read (``Scorer`` reads
    them all). Raises ``ExportTooLarge`` when the table would exceed ``max_cells``.
    """
    if marginals not in ("counts", "uniform"):
        raise SisamError(f"marginals must be 'counts' or 'uniform'; got {marginals!r}")
    knowledge = scorer.knowledge
    nodes = network_nodes(knowledge, label)
    needed = {a.column for a in knowledge.attributes.values()
              if _in_some_factor(knowledge, a) and a.column in COLUMNS}
    missing = sorted(needed - set(frame.columns))
    if missing:
        raise SisamError(
            f"export of {label!r}: the frame lacks columns {missing}; expected every column "
            "the catalog's attributes read (sisam scores all factors)"
        )
    if len(frame) == 0:
        raise SisamError(f"export of {label!r}: expected a frame with at least one item; got none")
    template = frame.iloc[[0]]
    states: dict[str, tuple[str, ...]] = {}
    values: dict[str, tuple[object, ...]] = {}
    for node in nodes:
        by_name: dict[str, object] = {}
        for value in frame[node.column].tolist():
            by_name.setdefault(state_name(value, node.type), value)
        if unseen:
            by_name[UNSEEN] = None
        states[node.column] = tuple(by_name)
        values[node.column] = tuple(by_name.values())
    cards = [len(states[node.column]) for node in nodes]
    n_cells = len(ERROR_STATES) * math.prod(cards)
    if n_cells > max_cells:
        shown = ", ".join(f"{node.column} {card}" for node, card in zip(nodes, cards, strict=True))
        raise ExportTooLarge(
            f"the network of {label!r} would have a table of {n_cells:,} cells (2 x states of "
            f"{shown}), more than the limit of {max_cells:,}: export fewer distinct values, "
            "or one item's network with export_item (its value and '(unseen)' per column)"
        )
    scored = {  # the values sisam scores: the stand-in for "(unseen)"
        node.column: [
            UNSEEN_STAND_IN[node.type] if state == UNSEEN else value
            for state, value in zip(states[node.column], values[node.column], strict=True)
        ]
        for node in nodes
    }
    probe = _Probe(scorer, template, scored)
    if unseen:
        for node in nodes:
            _check_unseen(probe, knowledge, node, states[node.column].index(UNSEEN))
    table = _error_table(scorer, knowledge.label_ids.index(label), nodes, scored, template)
    counted = probe if marginals == "counts" else None
    cpds = [_marginal(node, states[node.column], counted, knowledge) for node in nodes]
    pg = _pgmpy()
    cpds.append(
        pg.TabularCPD(
            ERROR_NODE,
            len(ERROR_STATES),
            np.vstack([1.0 - table, table]),
            evidence=[node.column for node in nodes],
            evidence_card=cards,
            state_names={ERROR_NODE: list(ERROR_STATES), **{c: list(s) for c, s in states.items()}},
        )
    )
    model = pg.DiscreteBayesianNetwork([(node.column, ERROR_NODE) for node in nodes])
    model.add_cpds(*cpds)
    model.name = f"sisam_{label}"
    log.debug("exported %s: %d parents, %d cells", label, len(nodes), n_cells)
    return ExportedNetwork(label, model, nodes, states, values, n_cells)


def export_item(
    scorer: Scorer,
    label: str,
    item: pd.DataFrame,
    *,
    marginals: Literal["counts", "uniform"] = "counts",
    max_cells: int = MAX_TABLE_CELLS,
) -> ExportedNetwork:
    """Export ``label``'s network for one item (a frame of one row): two states per
    parent column, the item's value and ``UNSEEN``, so the table has 2 x 2**parents cells
    however many values the world has. Besides the item's own probability it answers
    "what if this importer (this code, ...) had never been seen"."""
    if len(item) != 1:
        raise SisamError(f"export_item takes a frame of exactly one item; got {len(item)} rows")
    return export_network(
        scorer, label, item, unseen=True, marginals=marginals, max_cells=max_cells
    )


def _in_some_factor(knowledge: Knowledge, attribute: Attribute) -> bool:
    """Whether some factor reads the attribute, itself or through an evidence model."""
    return any(attribute.name in f.attributes for f in knowledge.factors.values()) or any(
        attribute.name in names for names in _evidence_sources(knowledge).values()
    )


def _evidence_sources(knowledge: Knowledge) -> dict[str, tuple[str, ...]]:
    """Evidence column -> the attributes its model reads (models some factor reads, see
    ``evidence_models``): a band is a function of those
    contract columns, so they, not the derived column, are the network's parents (the
    scorer derives the band from them, as when it scores a real item)."""
    from sisam.evidence import evidence_models

    return {m.column: tuple(a.name for a in m.sources) for m in evidence_models(knowledge).values()}


def _error_table(
    scorer: Scorer,
    label_index: int,
    nodes: tuple[ColumnNode, ...],
    values: dict[str, list[object]],
    template: pd.DataFrame,
) -> np.ndarray:
    """float64[prod(cards)]: sisam's probability of the label for every combination of
    the parents' values, in pgmpy's column order (the last parent varies fastest, which is
    C order). "any" is read from the full 31-label scores, after ``coherent_any``."""
    cards = [len(values[node.column]) for node in nodes]
    n = math.prod(cards)
    table = np.empty(n)
    columns = {}
    for node in nodes:  # object arrays filled element-wise: numpy never reshapes the values
        columns[node.column] = np.empty(len(values[node.column]), dtype=object)
        columns[node.column][:] = values[node.column]
    for start in range(0, n, _SCORE_BATCH):
        stop = min(n, start + _SCORE_BATCH)
        digits = np.unravel_index(np.arange(start, stop), cards)
        overrides = {
            node.column: columns[node.column][digit]
            for node, digit in zip(nodes, digits, strict=True)
        }
        batch = _synthetic(template, stop - start, overrides)
        table[start:stop] = scorer.probabilities(batch)[:, label_index]
    return table


def _marginal(
    node: ColumnNode, states: tuple[str, ...], probe: _Probe | None, knowledge: Knowledge
) -> Any:
    """The node's marginal CPD: proportional to N + 1/2 from the probe's counts, uniform
    without a probe (module docstring, "What is exported")."""
    weights = np.ones(len(states))
    if probe is not None:
        weights = probe.counts(knowledge.attributes[node.finest], 0)[1] + 0.5
    return _pgmpy().TabularCPD(
        node.column,
        len(states),
        (weights / weights.sum())[:, None],
        state_names={node.column: list(states)},
    )


# ------------------------------------------------------------------------ inference


class Oracle:
    """pgmpy's exact inference (variable elimination) on an exported network, or on one
    read back from XMLBIF: P(error = yes | evidence).

    Build it once per network: pgmpy prepares its elimination structures in the
    constructor, and each query then costs what the benchmark measures.
    """

    def __init__(self, model: Any):
        cpd = model.get_cpds(ERROR_NODE)
        if cpd is None:
            raise SisamError(
                f"the network {model.name!r} has no {ERROR_NODE!r} node: not exported by sisam"
            )
        self.model = model
        self.columns: tuple[str, ...] = tuple(cpd.variables[1:])
        self._states = {c: frozenset(cpd.state_names[c]) for c in self.columns}
        self._engine = _pgmpy().VariableElimination(model)

    def probability(self, evidence: Mapping[str, str]) -> float:
        """P(error = yes | evidence), evidence being state names of any parents (those
        left out are summed over with their marginals)."""
        for column, state in evidence.items():
            if state not in self._states.get(column, ()):
                raise SisamError(
                    f"network {self.model.name!r}: {column}={state!r} is not a state of the "
                    f"network; expected one of {sorted(self._states.get(column, ()))[:20]}. "
                    "Export the item's own network with export_item."
                )
        result = self._engine.query([ERROR_NODE], evidence=dict(evidence), show_progress=False)
        return float(result.get_value(**{ERROR_NODE: ERROR_STATES[1]}))

    def probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """float64[n]: P(error = yes) for every item of ``frame``, every parent observed."""
        rows = frame[list(self.columns)].to_dict("records")
        return np.array([self.probability(item_evidence(row, self.columns)) for row in rows])


# ------------------------------------------------------------------------ XMLBIF


def tan_edges(data: pd.DataFrame, class_node: str, root: str) -> list[tuple[str, str]]:
    """The tree-augmented naive Bayes structure pgmpy learns from ``data`` (categorical
    columns and the class): ``TreeSearch(estimator_type="tan")``, conditional mutual
    information and a maximum spanning tree rooted at ``root``; edges (parent, child),
    the class's edges included. One job: the machine's cores are shared. Needs
    scikit-learn (pgmpy's mutual information)."""
    search = _pgmpy().TreeSearch(data, root_node=root, n_jobs=1)
    return list(search.estimate(estimator_type="tan", class_node=class_node, show_progress=False).edges())


def write_xmlbif(model: Any, path: str | Path) -> Path:
    """Write an exported network to ``path`` in XMLBIF 0.3 (pgmpy's writer)."""
    path = Path(path)
    _pgmpy().XMLBIFWriter(model).write(str(path))
    return path


def read_xmlbif(path: str | Path) -> Any:
    """Read an XMLBIF file back as a pgmpy ``DiscreteBayesianNetwork`` (state names kept
    as strings, which is what ``state_name`` produces)."""
    return _pgmpy().XMLBIFReader(path=str(path)).get_model(state_name_type=str)
