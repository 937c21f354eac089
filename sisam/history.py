"""Counting a history in chunks: learning with memory bounded by the counts, not the items.

Learning is counting, and counts are additive (hpb.md, "Counts"): the counts of a history
are the sum of the counts of its chunks. So the history is read a chunk at a time
(``declarations.iter_declarations``), each chunk is labelled against the rectified table
(``labels.label_matrix``), every factor is counted with ``engine.counting.count_factor_codes``
(which never holds a factor's uint64[n, S] keys) and the chunk's counts are added to the
running totals (``engine.counting.merge_counts``). Memory is the totals, one chunk, and the
inspected items (the rectified table and their declared rows, which the coefficients, the
suggestions and the recovered values learn from): never the whole history. The allocator
gives each chunk's temporaries back after the chunk (``memory``), else they pile up.

Evidence models (``sisam.evidence``) band every item against tables counted over all
declarations, without the item's own contribution; with models in the catalog the history
is read twice: once to count their tables, once to band and count the factors.

The fitting sample. The coefficients are chosen by leave-one-out on a seeded sample of the
inspected items (``engine.fit.sample_labelled``), drawn as positions among the inspected
items in file order (:func:`sample_positions`): the same items, in the same order, as when
the whole history is held, hence the same coefficients bit for bit. The Spark back-end
(``sisam.spark``) draws them the same way, in (file, row) order.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sisam import kb, suggest
from sisam.declarations import check_pair, iter_declarations, read_declarations
from sisam.encoding import Encoder, FactorPlan
from sisam.engine.counting import count_factor_codes, merge_counts
from sisam.engine.counts import PatternCounts
from sisam.engine.fit import sample_labelled
from sisam.evidence import (
    EvidenceTables,
    PreparedEvidence,
    add_evidence_columns,
    count_evidence,
    evidence_models,
    merge_evidence,
)
from sisam.knowledge import Knowledge
from sisam.labels import label_matrix, match_rectified
from sisam.memory import release_freed_memory, serve_large_blocks_by_mmap

log = logging.getLogger("sisam.history")

#: Items counted at once: a chunk's level codes and one block of keys (``counting.py``)
#: take about 1.5 GB per million items with the shipped catalog.
DEFAULT_CHUNK_ROWS = 1_000_000


@dataclass(frozen=True)
class CountedHistory:
    """What learning needs from a history: every factor's counts, the inspected items
    (declared rows with their evidence columns, rectified rows aligned with them, labels;
    file order), the declarations per code (``suggest.count_codes``), the evidence tables
    (merged with the base given) and the provenance."""

    counts: dict[str, PatternCounts]
    inspected: pd.DataFrame
    rectified: pd.DataFrame
    labels: np.ndarray
    code_counts: dict[str, np.ndarray]
    evidence: EvidenceTables
    provenance: kb.Provenance


def sample_positions(n_inspected: int, size: int, seed: int) -> np.ndarray:
    """Positions (ascending) among ``n_inspected`` inspected items of the fitting sample:
    ``sample_labelled`` over that many labelled items, so that holding them all and
    passing them to the fit draws exactly these."""
    return sample_labelled(np.zeros((n_inspected, 1), dtype=np.int8), size, seed)


def count_plans(frame: pd.DataFrame, labels: np.ndarray, plans: dict[str, FactorPlan]) -> dict[str, PatternCounts]:
    """Counts of every factor over one frame of declarations and its labels."""
    encoder = Encoder(frame)
    return {
        name: count_factor_codes(name, [encoder.codes(a) for a in plan.attributes], plan.lattice, labels)
        for name, plan in plans.items()
    }


class _Dates:
    """The date range of the declarations seen so far."""

    def __init__(self) -> None:
        self.low: dt.date | None = None
        self.high: dt.date | None = None

    def add(self, dates: pd.Series) -> None:
        dates = dates.dropna()
        if len(dates):
            low, high = dates.min().date(), dates.max().date()
            self.low = low if self.low is None else min(self.low, low)
            self.high = high if self.high is None else max(self.high, high)


def count_history(
    declarations: Path,
    rectified: Path,
    knowledge: Knowledge,
    plans: dict[str, FactorPlan],
    *,
    evidence_base: Callable[[kb.Provenance], tuple[EvidenceTables, float]],
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[str], None],
) -> CountedHistory:
    """Count ``declarations`` (labelled by ``rectified``) chunk by chunk.

    ``evidence_base(provenance)`` gives the evidence tables to add this history's to, and
    the decay to scale them by (a knowledge base's when updating: the decay depends on the
    history's dates, hence the call)."""
    serve_large_blocks_by_mmap()
    rect = read_declarations(rectified, kind="rectified")
    files = tuple(str(p.resolve()) for p in (declarations, rectified))
    models = evidence_models(knowledge)
    evidence: EvidenceTables = {}
    if models:
        dates, n_items = _Dates(), 0
        for chunk in iter_declarations(declarations, chunk_rows=chunk_rows):
            tables = count_evidence(models, chunk)
            evidence = merge_evidence(evidence, tables, 1.0) if evidence else tables
            dates.add(chunk["date"])
            n_items += len(chunk)
            del chunk, tables
            release_freed_memory()
        base, decay = evidence_base(kb.Provenance(files, dates.low, dates.high, n_items, len(rect)))
        if base:
            evidence = merge_evidence(base, evidence, decay)
        prepared = PreparedEvidence(models, evidence)
        progress(f"counted {len(models)} evidence model(s)")
    n_labels = len(knowledge.label_ids)
    totals: dict[str, PatternCounts] = {name: PatternCounts.empty() for name in plans}
    inspected_parts, rect_parts, label_parts = [], [], []
    code_counts: dict[str, np.ndarray] | None = None
    dates, n_items = _Dates(), 0
    for chunk in iter_declarations(declarations, chunk_rows=chunk_rows):
        rows = match_rectified(chunk, rect)
        labels = label_matrix(chunk, rect, knowledge.errors)
        if models:
            chunk = add_evidence_columns(chunk, models, prepared, own_rows_counted=True)
        inspected = rows >= 0
        inspected_parts.append(chunk[inspected])
        rect_parts.append(rect.iloc[rows[inspected]])
        label_parts.append(labels[inspected])
        codes = suggest.count_codes(chunk["hs_code"].to_numpy())
        code_counts = codes if code_counts is None else suggest.merge_codes(code_counts, codes, 1.0)
        chunk_counts = count_plans(chunk, labels, plans)
        for name in plans:
            totals[name] = merge_counts([totals[name], chunk_counts[name]], n_labels)
        del chunk_counts
        dates.add(chunk["date"])
        n_items += len(chunk)
        del chunk, labels, rows
        release_freed_memory()
        progress(f"counted {n_items:,} items")
    n_inspected = sum(len(p) for p in inspected_parts)
    if n_inspected != len(rect):
        # Some rectified item has no declared item: the pair check says which, as always.
        check_pair(declarations, rectified)
    empty = read_declarations(declarations).iloc[:0] if not inspected_parts else None
    return CountedHistory(
        totals,
        pd.concat(inspected_parts, ignore_index=True) if inspected_parts else empty,
        pd.concat(rect_parts, ignore_index=True) if rect_parts else rect.iloc[:0],
        np.concatenate(label_parts) if label_parts else np.zeros((0, n_labels), np.int8),
        code_counts if code_counts is not None else suggest.count_codes(np.array([], dtype=object)),
        evidence,
        kb.Provenance(files, dates.low, dates.high, n_items, n_inspected),
    )
