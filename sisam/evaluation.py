"""Recall of several rankings of the same test items, per error type and pooled.

Used by ``sisam demo`` and the quality benchmark: sisam's scores beside the synthetic
world's own prior-risk probabilities (the oracle no model can beat on average) and beside
baselines (``baselines.py``), all measured on the same items against the world's truth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from sisam.metrics import pooled_recall, recall_curve

DEFAULT_RATES = (0.01, 0.05)


@dataclass
class Evaluation:
    rankers: tuple[str, ...]
    error_ids: tuple[str, ...]
    rates: tuple[float, ...]
    n_items: int
    positives: dict[str, int] = field(default_factory=dict)
    recall: dict[tuple[str, str, float], float] = field(default_factory=dict)
    pooled: dict[tuple[str, float], float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "n_items": self.n_items,
            "rates": list(self.rates),
            "positives": self.positives,
            "recall": {
                ranker: {e: {f"{r:g}": self.recall[ranker, e, r] for r in self.rates} for e in self.error_ids}
                for ranker in self.rankers
            },
            "pooled_recall": {ranker: {f"{r:g}": self.pooled[ranker, r] for r in self.rates} for ranker in self.rankers},
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, allow_nan=True)

    def markdown(self) -> str:
        head = "| error type | errors |" + "".join(f" {name} @{r:.0%} |" for name in self.rankers for r in self.rates)
        rule = "|---|---:|" + "---:|" * (len(self.rankers) * len(self.rates))
        lines = [head, rule]
        for e in self.error_ids:
            cells = "".join(f" {_pct(self.recall[name, e, r])} |" for name in self.rankers for r in self.rates)
            lines.append(f"| {e} | {self.positives[e]:,} |{cells}")
        pooled = "".join(f" **{_pct(self.pooled[name, r])}** |" for name in self.rankers for r in self.rates)
        lines.append(f"| **pooled** | {sum(self.positives.values()):,} |{pooled}")
        return "\n".join(lines)


def _pct(x: float) -> str:
    return "n/a" if np.isnan(x) else f"{x:.1%}"


def evaluate(
    rankings: dict[str, dict[str, np.ndarray]],
    truth: dict[str, np.ndarray],
    rates: tuple[float, ...] = DEFAULT_RATES,
) -> Evaluation:
    """``rankings[ranker][error_id]`` float[n] scores; ``truth[error_id]`` bool[n]."""
    error_ids = tuple(truth)
    n = len(next(iter(truth.values()))) if truth else 0
    ev = Evaluation(tuple(rankings), error_ids, tuple(rates), n)
    for e in error_ids:
        ev.positives[e] = int(np.sum(truth[e]))
    for name, scores in rankings.items():
        for e in error_ids:
            for point in recall_curve(scores[e], truth[e], rates):
                ev.recall[name, e, point.rate] = point.recall
        for r in rates:
            ev.pooled[name, r] = pooled_recall([scores[e] for e in error_ids], [truth[e] for e in error_ids], r)
    return ev
