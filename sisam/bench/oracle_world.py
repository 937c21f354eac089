"""Small random worlds in which every network's full table fits, so that pgmpy's exact
inference can score them: ``tests/test_pgmpy.py`` checks sisam's probabilities against it,
``benchmarks/bench_pgmpy.py`` times both.

Few values per column, so that the "any" network (every column) has 4 * 3 * 2**11 = 24,576
combinations. HS codes share subheadings, headings and chapters; "B-01" and 1234.5
exercise escaped state names; None and "" the reserved ones. The counts are the engine's;
the coefficients are drawn from hpb.md's grids ("Choosing the coefficients") with a seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sisam.knowledge import Knowledge
from sisam.model import Scorer, counted_version

S_GRID = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0)
D_GRID = (0.5, 1.0, 1.5, 2.0, 3.0)

VALUES: dict[str, list[object]] = {
    "importer_id": ["I1", "I2", "I3"],
    "exporter_id": ["X1", "X2"],
    "broker_id": ["B-01", "B_02"],
    "customs_office": ["0817600", "0927800"],
    "hs_code": ["84713012", "84713019", "84714100", "02011000"],
    "origin_country": ["CN", "US"],
    "transport_mode": ["1", "4"],
    "incoterm": ["FOB", "CIF"],
    "currency": ["USD", "EUR"],
    "net_weight_kg": [10.0, 2500.0],
    "customs_value_usd": [1234.5, 98765.25],
    "tax_regime": ["1", "2"],
    "preferential_claim": ["", None],
}

#: The evidence models' own columns, which their bands read: one value each, so that with
#: the shipped catalog's evidence factors the "any" network's table stays enumerable (two
#: values each would make it 6.3 million cells).
EVIDENCE_VALUES: dict[str, list[object]] = {
    "pis_rate": [2.1],
    "cofins_rate": [9.65],
    "import_duty_rate": [14.0],
    "ipi_rate": [5.0],
    "acquisition_country": ["CN"],
    "unit": ["KG"],
    "related_party": ["N"],
    "description": ["Stainless steel valve"],
    "quantity": [40.0],
}


def random_items(n: int, rng: np.random.Generator, values: dict[str, list[object]] = VALUES) -> pd.DataFrame:
    """``n`` declarations, each column's value drawn uniformly from ``values``."""
    return pd.DataFrame({c: [v[j] for j in rng.integers(0, len(v), n)] for c, v in values.items()})


def random_world(
    knowledge: Knowledge, seed: int, n: int = 300, values: dict[str, list[object]] = VALUES
) -> tuple[pd.DataFrame, Scorer]:
    """``n`` random items, their counts (a third of them never inspected) and a scorer with
    seeded coefficients over them."""
    rng = np.random.default_rng(seed)
    frame = random_items(n, rng, values)
    n_labels = len(knowledge.label_ids)
    # Error rates that depend on the values, so that the patterns' counts differ.
    rate = 0.02 + 0.25 * (frame["importer_id"] == "I1").to_numpy()[:, None] * rng.random(n_labels)
    labels = (rng.random((n, n_labels)) < rate).astype(np.int8)
    labels[:, -1] = labels[:, :-1].max(axis=1)
    labels[rng.random(n) < 1 / 3] = -1
    coefficients = {
        name: {"S": rng.choice(S_GRID, n_labels), "d": rng.choice(D_GRID, n_labels)} for name in knowledge.factors
    }
    version = counted_version(knowledge, frame, labels, coefficients, {"dnet": rng.choice(D_GRID, n_labels)})
    return frame, Scorer(version, knowledge)
