"""Reference rankings that sisam's HPB networks are measured against.

``flat_table``: each factor's full pattern alone with Laplace smoothing, (k + 1) / (n + 2),
the "plain table" of the HPB paper: the same counts as sisam, without the hierarchy.
Factors are combined by the same calibrated rule as sisam's networks, with the same fitted
dnet, so that the comparison isolates what the hierarchy adds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sisam.encoding import Encoder
from sisam.engine.hashtable import lookup_many
from sisam.engine.network import network_probabilities

if TYPE_CHECKING:
    from sisam.model import Scorer


def flat_table(scorer: Scorer, frame: pd.DataFrame) -> np.ndarray:
    """float64[n, E]: the flat-table probabilities of every item and label."""
    encoder = Encoder(scorer.with_evidence(frame))
    n_labels = len(scorer.knowledge.label_ids)
    factor_lo = []
    base = None
    for name, plan in scorer.plans.items():
        counts = scorer.version.counts[name]
        index = scorer.indexes[name]
        full_keys = np.ascontiguousarray(encoder.keys(plan)[:, plan.lattice.full])
        rows = lookup_many(index.slot_keys, index.slot_rows, full_keys)
        dense = _dense(counts, rows, n_labels)
        n = np.where(rows >= 0, counts.n[np.maximum(rows, 0)], 0.0)[:, None]
        p = (dense + 1.0) / (n + 2.0)
        factor_lo.append(np.log(p) - np.log1p(-p))
        if base is None:
            root_row = lookup_many(index.slot_keys, index.slot_rows, np.ascontiguousarray(encoder.keys(plan)[:1, plan.lattice.root]))[0]
            k_root = _dense(counts, np.array([root_row]), n_labels)[0]
            p_root = (k_root + 0.5) / (counts.n[root_row] + 1.0)
            base = np.log(p_root) - np.log1p(-p_root)
    return network_probabilities(factor_lo, base, scorer.membership, scorer.version.network_coefficients["dnet"])


def _dense(counts, rows: np.ndarray, n_labels: int) -> np.ndarray:
    """float64[len(rows), n_labels] error counts of the given rows (-1: never counted, zeros)."""
    out = np.zeros((rows.size, n_labels))
    seen = np.flatnonzero(rows >= 0)
    starts, ends = counts.err_ptr[rows[seen]], counts.err_ptr[rows[seen] + 1]
    lengths = ends - starts
    item = np.repeat(seen, lengths)
    entry = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    out[item, counts.err_label[entry]] = counts.err_k[entry]
    return out
