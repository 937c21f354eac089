"""Scoring with a knowledge base larger than memory: a batch at a time, its patterns only.

Scoring an item reads the counts of the patterns it matches, one per shape of every
factor, and nothing else (hpb.md: the posterior recursion runs over the item's own
lattice). So a batch of items needs the counts of at most (items x shapes) patterns, however
large the knowledge base: ``kb.open_patterns`` semi-joins the version file with the batch's
keys, streaming the file from disk within DuckDB's memory limit, and the usual ``Scorer``
scores the batch against those counts. The probabilities are the same bits as with the whole
version loaded (``tests/test_streaming.py``); the price is one pass over the file per batch,
so batches are large (``kb.STREAM_BATCH_ROWS``; ``sisam kb info`` says what one needs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sisam import kb
from sisam.encoding import Encoder, factor_plans
from sisam.evidence import add_evidence_columns
from sisam.model import Scorer


def batch_scorer(tables_only: Scorer, kb_dir, frame: pd.DataFrame, memory_limit: str | None = None) -> Scorer:
    """``tables_only`` (a ``Scorer`` of a version read without counts: ``kb.open_patterns``
    with no keys) holding the counts of the patterns ``frame``'s items match, read from the
    same version of the knowledge base in ``kb_dir``.

    The items are scored as ``Scorer.with_evidence`` prepares them: evidence columns (from
    the version's tables) and successor codes resolved (which looks up counts of the
    declared codes). So the patterns of the items with their evidence columns are loaded
    first, which serves the successors' look-ups, then those of the resolved items if any
    code was resolved to another. The extra tables and what derives from them are
    ``tables_only``'s, read and built once for all batches."""
    plans = factor_plans(tables_only.knowledge)

    def keys_of(prepared: pd.DataFrame) -> dict[str, np.ndarray]:
        encoder = Encoder(prepared)
        return {name: np.unique(encoder.keys(plan)) for name, plan in plans.items()}

    def load(keys: dict[str, np.ndarray]) -> Scorer:
        version = tables_only.version
        counts = kb.open_patterns(kb_dir, keys, version.version, version.catalog_hash, memory_limit, extra_tables=False).counts
        return tables_only.with_counts(counts)

    with_evidence = frame
    if tables_only.evidence is not None:
        with_evidence = add_evidence_columns(frame, tables_only.evidence.models, tables_only.evidence, own_rows_counted=False)
    wanted = keys_of(with_evidence)
    scorer = load(wanted)
    resolved = scorer.with_evidence(frame)
    more = keys_of(resolved)
    if all(np.isin(more[name], wanted[name]).all() for name in plans):
        return scorer
    return load({name: np.union1d(wanted[name], more[name]) for name in plans})
