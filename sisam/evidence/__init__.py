"""Evidence models: what every declaration, inspected or not, says about an item.

One mechanism carries every kind of non-nominal or unsupervised evidence into the Bayesian
network (integrator's decision, notes/evidence.md): an *evidence model* learns tables from
ALL declarations and turns each item into a short **band string** in a derived column
``evidence.<model name>``. Attributes of ``knowledge/attributes.toml`` read that column
like any nominal contract column (``column = "evidence.origin_given_exporter"``), and
factors of ``knowledge/networks.toml`` use those attributes; the HPB engine (counting,
keys, fit, scoring, attribution, pgmpy export) is unchanged: HPB smoothing and the
leave-one-out fit decide how much a band matters per error type.

Catalog (``knowledge/evidence.toml``, loaded and hashed by ``sisam.knowledge``)::

    [evidence.<name>]
    kind = "value_in_context"   # a key of KINDS
    serves = ["origin_country"] # error ids: documentation, explanations, checks
    ...                         # kind-specific keys, checked by the kind's check_options

Interface for a new kind (one module per kind, numeric hot loops in their own kernel
module with a plain-Python twin, like ``sisam.engine``): subclass
``base.EvidenceModel``, set ``kind`` and ``options`` (key -> required), implement

- ``check_options(spec, attributes) -> str | None``: the problem with the entry's keys;
- ``count(frame) -> ModelTables``: ``{table name: {column: 1-d array}}``; every table has a
  ``key`` column (uint64, sorted, unique); float64 columns are *counts*: merging adds them
  and decay scales them; columns of other dtypes (uint64, int64, object str) describe
  the key and must be equal wherever two batches share it. Design tables so that adding
  two batches' tables gives the tables of both (``base.merge_tables``);
- ``prepare(tables) -> Any``: indexes and derived arrays, built once per version;
- ``bands(prepared, frame, own_rows_counted=..., encoder=None)`` -> band strings, an
  object array or a ``pd.Categorical`` (cheaper to key); ``encoder`` is an ``Encoder`` of
  ``frame`` shared by every model (level codes computed once);
  with ``own_rows_counted`` the frame's rows are in the tables (learning) and each must be
  banded as if it were not (leave-one-out), else history items look usual and bands would
  mean one thing at learning and another at scoring;
- ``facts(prepared, frame, own_rows_counted=..., encoder=None) -> list[dict]``: JSON-ready facts per row
  (at least model, kind, serves, band) for explanations and the reasoning log.

and register the class in ``KINDS`` below. Band strings should be coarsenable by
``prefix:N`` (``"s3n2"``: surprise band 3, support band 2; ``prefix:2`` keeps the surprise).

Pipeline (``sisam.model``): ``learn`` counts the evidence over the history
(``count_evidence``; with ``--update`` ``merge_evidence`` adds them to the knowledge base's,
decayed like the factor counts), adds the columns with leave-one-out
(``add_evidence_columns(..., own_rows_counted=True)``), then counts the factors as before;
the knowledge base stores the tables as its extra tables (``sisam.kb``: DuckDB tables
``extra_evidence__<model>__<table>``, covered by the content hash, exported to Parquet;
``kb_tables`` / ``from_kb_tables`` name them). ``Scorer`` prepares the tables once and adds
the columns (no leave-one-out) before computing pattern keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from sisam.encoding import Encoder
from sisam.evidence.base import (
    EvidenceModel,
    EvidenceTables,
    ModelTables,
    check_table,
    merge_tables,
)
from sisam.evidence.description_code import DescriptionVsCode
from sisam.evidence.novelty import Novelty
from sisam.evidence.quantities import Quantity
from sisam.evidence.value_in_context import ValueInContext
from sisam.knowledge import Knowledge

#: kind -> class: the evidence kinds a catalog may use.
KINDS: dict[str, type[EvidenceModel]] = {
    ValueInContext.kind: ValueInContext, Novelty.kind: Novelty, DescriptionVsCode.kind: DescriptionVsCode,
    Quantity.kind: Quantity,
}

__all__ = [
    "KINDS",
    "EvidenceModel",
    "EvidenceTables",
    "ModelTables",
    "PreparedEvidence",
    "add_evidence_columns",
    "count_evidence",
    "evidence_columns",
    "evidence_facts",
    "evidence_models",
    "from_kb_tables",
    "kb_tables",
    "merge_evidence",
    "prepare_evidence",
]


def evidence_models(knowledge: Knowledge) -> dict[str, EvidenceModel]:
    """The catalog's evidence models that some factor reads (through an attribute of its
    column), in catalog order: a model no network uses is neither counted nor banded, so
    a catalog without the evidence factors costs what it cost before evidence existed."""
    read = {knowledge.attributes[a].column for f in knowledge.factors.values() for a in f.attributes}
    return {name: KINDS[spec.kind](spec, knowledge) for name, spec in knowledge.evidence.items()
            if spec.column in read}


def count_evidence(models: Mapping[str, EvidenceModel], frame: pd.DataFrame) -> EvidenceTables:
    """Every model's tables counted over ``frame``."""
    tables = {}
    for name, model in models.items():
        tables[name] = model.count(frame)
        for table, columns in tables[name].items():
            problem = check_table(name, table, columns)
            if problem:
                raise ValueError(f"{type(model).__name__}.count: {problem}")
    return tables


def merge_evidence(old: EvidenceTables, new: EvidenceTables, decay: float) -> EvidenceTables:
    """``old`` decayed by ``decay`` plus ``new``, table by table (``base.merge_tables``);
    models or tables present on one side only are kept (decayed if old)."""
    empty: ModelTables = {}
    out: EvidenceTables = {}
    for model in sorted(set(old) | set(new)):
        o, n = old.get(model, empty), new.get(model, empty)
        out[model] = {}
        for table in sorted(set(o) | set(n)):
            if table in o and table in n:
                out[model][table] = merge_tables(o[table], n[table], decay)
            elif table in o:
                out[model][table] = merge_tables(o[table], {c: v[:0] for c, v in o[table].items()}, decay)
            else:
                out[model][table] = dict(n[table])
    return out


#: Extra tables of a knowledge base holding evidence: evidence__<model>__<table>.
KB_PREFIX = "evidence__"


def kb_tables(tables: EvidenceTables) -> dict[str, dict[str, Any]]:
    """The evidence tables as the knowledge base's extra tables (``sisam.kb.Tables``)."""
    return {f"{KB_PREFIX}{model}__{table}": columns for model, by_table in tables.items()
            for table, columns in by_table.items()}


def from_kb_tables(extra: Mapping[str, Mapping[str, Any]]) -> EvidenceTables:
    """The evidence tables among a knowledge base's extra tables."""
    out: EvidenceTables = {}
    for name, columns in extra.items():
        if name.startswith(KB_PREFIX):
            model, _, table = name[len(KB_PREFIX):].partition("__")
            out.setdefault(model, {})[table] = dict(columns)
    return out


class PreparedEvidence:
    """The models and their prepared tables, built once per knowledge-base version."""

    def __init__(self, models: Mapping[str, EvidenceModel], tables: EvidenceTables):
        missing = sorted(set(models) - set(tables))
        if missing:
            raise ValueError(f"no evidence tables for the model(s) {', '.join(missing)}")
        self.models = dict(models)
        self.prepared = {name: model.prepare(tables[name]) for name, model in models.items()}


def prepare_evidence(models: Mapping[str, EvidenceModel], tables: EvidenceTables) -> PreparedEvidence:
    return PreparedEvidence(models, tables)


def add_evidence_columns(
    frame: pd.DataFrame,
    models: Mapping[str, EvidenceModel],
    tables: EvidenceTables | PreparedEvidence,
    *,
    own_rows_counted: bool,
) -> pd.DataFrame:
    """``frame`` with one ``evidence.<name>`` column per model (a new frame; the input is
    left untouched). ``own_rows_counted``: see the module docstring."""
    if not models:
        return frame
    return frame.assign(**evidence_columns(Encoder(frame), models, tables, own_rows_counted=own_rows_counted))


def evidence_columns(
    encoder: Encoder,
    models: Mapping[str, EvidenceModel],
    tables: EvidenceTables | PreparedEvidence,
    *,
    own_rows_counted: bool,
) -> dict[str, np.ndarray | pd.Categorical]:
    """The band column of every model for the rows of ``encoder.frame`` (an ``Encoder``
    shared by the models, and by whoever keys the frame next: level codes are computed
    once)."""
    prepared = tables if isinstance(tables, PreparedEvidence) else PreparedEvidence(models, tables)

    def bands(names: list[str]) -> dict[str, np.ndarray | pd.Categorical]:
        return {name: models[name].bands(prepared.prepared[name], encoder.frame, own_rows_counted=own_rows_counted,
                                         encoder=encoder) for name in names}

    # The models are independent. Those whose bands run a parallel kernel (the description
    # model) run in a thread beside the others, whose work is serial numpy and numba that
    # releases the GIL: it fills the cores a parallel kernel leaves idle (a fifth of the
    # scoring time, benchmarks/results/engine.md). Only one thread launches parallel
    # kernels at a time, as numba's workqueue threading layer requires.
    parallel = [name for name, model in models.items() if model.parallel_bands]
    serial = [name for name in models if name not in parallel]
    if parallel and serial:
        with ThreadPoolExecutor(1, thread_name_prefix="sisam-evidence") as lane:
            beside = lane.submit(bands, parallel)
            found = bands(serial)
            found.update(beside.result())
    else:
        found = bands(list(models))
    return {model.column: found[name] for name, model in models.items()}


def evidence_facts(prepared: PreparedEvidence, frame: pd.DataFrame, *, own_rows_counted: bool = False) -> list[list[dict[str, Any]]]:
    """Per row of ``frame``, the facts of every model (catalog order)."""
    encoder = Encoder(frame)
    per_model = [
        model.facts(prepared.prepared[name], frame, own_rows_counted=own_rows_counted, encoder=encoder)
        for name, model in prepared.models.items()
    ]
    return [[facts[i] for facts in per_model] for i in range(len(frame))]
