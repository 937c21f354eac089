"""Recall against selection rate: how many errors an officer catches by stopping the top items.

Customs risk studies report recall, precision and normalised recall at selection rates of
1, 2, 5 and 10 % (brief.md); so does sisam. Items are ranked by score, highest first; ties
are broken by the items' order in the input so that a ranking is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SELECTION_RATES = (0.01, 0.02, 0.05, 0.10, 0.20, 0.50, 0.75)


@dataclass(frozen=True)
class RecallPoint:
    rate: float
    selected: int
    caught: int
    positives: int

    @property
    def recall(self) -> float:
        return self.caught / self.positives if self.positives else float("nan")

    @property
    def precision(self) -> float:
        return self.caught / self.selected if self.selected else float("nan")

    @property
    def best_recall(self) -> float:
        """The recall a perfect ranking reaches at this rate."""
        return min(self.selected, self.positives) / self.positives if self.positives else float("nan")

    @property
    def normalised_recall(self) -> float:
        return self.recall / self.best_recall if self.positives else float("nan")


def selected_count(n_items: int, rate: float) -> int:
    return int(np.ceil(rate * n_items - 1e-9))


def ranking(scores: np.ndarray) -> np.ndarray:
    """Indices of items from highest to lowest score, ties in input order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def recall_curve(scores: np.ndarray, positives: np.ndarray, rates=SELECTION_RATES) -> list[RecallPoint]:
    """Recall of stopping the top ``rate`` share of items, for each rate."""
    positives = np.asarray(positives, dtype=bool)
    caught_cumulative = np.cumsum(positives[ranking(scores)])
    total = int(positives.sum())
    points = []
    for rate in rates:
        selected = selected_count(positives.size, rate)
        caught = int(caught_cumulative[selected - 1]) if selected else 0
        points.append(RecallPoint(rate, selected, caught, total))
    return points


def pooled_recall(score_columns: list[np.ndarray], positive_columns: list[np.ndarray], rate: float) -> float:
    """Errors caught over all error types, each type selecting its own top ``rate``."""
    caught = positives = 0
    for scores, truth in zip(score_columns, positive_columns, strict=True):
        (point,) = recall_curve(scores, truth, (rate,))
        caught += point.caught
        positives += point.positives
    return caught / positives if positives else float("nan")
