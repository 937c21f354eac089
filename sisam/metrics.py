"""Recall against selection rate: how many errors an officer catches by stopping the top items.

Customs risk studies report recall, precision and normalised recall at selection rates of
1, 2, 5 and 10 % (brief.md); so does sisam. Items are ranked by score, highest first.

**Ties.** A ranking that gives many items the same score (a constant, a coarse table, an
unseen pattern falling back to the base rate) does not say which of them to stop first, so
no tie may earn credit from the items' order in the input. When the cut at ``m`` selected
items falls inside a group of tied items, the officer is taken to pick the remaining
places among them uniformly at random, and every figure is the *expectation* over those
picks: a tied group of g items holding p positives, of which t places are taken,
contributes t * p / g caught items. A constant score therefore reaches exactly the recall of
random selection, and two rankings that differ only in input order score the same.

**Weights.** Every count can be weighted (``weights``: how many times each item is drawn,
for the bootstrap in ``sisam.bench.metrics``); the selection then takes the top ``m`` units
of weight, splitting a straddling tie group in proportion, which is the same expectation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SELECTION_RATES = (0.01, 0.02, 0.05, 0.10, 0.20, 0.50, 0.75)


@dataclass(frozen=True)
class RecallPoint:
    rate: float
    selected: int
    caught: float  # expected over the orderings of tied items
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


def selected_count(n_items: int | float, rate: float) -> int:
    """Items stopped at ``rate``: rounded up, so that 1 % of 999 items is 10."""
    return int(np.ceil(rate * n_items - 1e-9))


class Ranking:
    """One score column sorted once, with its groups of tied scores, so that many weighted
    counts (error types' truths, values, bootstrap draws) can be cut at many rates.

    NaN scores rank below every number (an item a method could not score is stopped last).
    """

    def __init__(self, scores: np.ndarray):
        scores = np.asarray(scores, dtype=np.float64)
        key = np.where(np.isnan(scores), np.inf, -scores)
        # ascending -score = descending score; the order inside a tie group is irrelevant
        # to every result (ties are split in expectation), stable only for reproducibility
        self.order = np.argsort(key, kind="stable")
        ordered = key[self.order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if ordered.size else np.zeros(0, np.int64)
        #: index (in sorted order) one past the last item of each tie group
        self.group_ends = np.r_[starts[1:], ordered.size].astype(np.int64)
        self.n_items = int(scores.size)

    def caught(self, amounts: np.ndarray, weights: np.ndarray | None, cuts: np.ndarray) -> np.ndarray:
        """Expected total ``amount`` of the items selected when the top ``cuts[j]`` units of
        weight are stopped, float64[len(cuts)].

        ``amounts`` float64[n] is what each item brings when stopped (1 for an error, its
        value for value captured, 0 otherwise), already multiplied by its weight;
        ``weights`` float64[n] the items' weights (None: all 1)."""
        cuts = np.asarray(cuts, dtype=np.float64)
        if self.n_items == 0:
            return np.zeros(cuts.shape)
        w = np.ones(self.n_items) if weights is None else np.asarray(weights, dtype=np.float64)[self.order]
        a = np.asarray(amounts, dtype=np.float64)[self.order]
        cum_w = np.r_[0.0, np.cumsum(w)[self.group_ends - 1]]
        cum_a = np.r_[0.0, np.cumsum(a)[self.group_ends - 1]]
        # the first group whose end reaches the cut straddles it (or ends exactly on it)
        g = np.clip(np.searchsorted(cum_w[1:], cuts, side="left"), 0, self.group_ends.size - 1)
        group_w = cum_w[g + 1] - cum_w[g]
        group_a = cum_a[g + 1] - cum_a[g]
        taken = np.clip(cuts - cum_w[g], 0.0, group_w)
        share = np.divide(taken, group_w, out=np.zeros_like(taken), where=group_w > 0)
        return np.where(cuts > 0, cum_a[g] + share * group_a, 0.0)


def ranking(scores: np.ndarray) -> np.ndarray:
    """Indices of items from highest to lowest score (NaN last); tied items in input order,
    which callers must not give meaning to (see the module docstring)."""
    return Ranking(scores).order


def recall_curve(scores: np.ndarray, positives: np.ndarray, rates=SELECTION_RATES) -> list[RecallPoint]:
    """Expected recall of stopping the top ``rate`` share of items, for each rate."""
    positives = np.asarray(positives, dtype=bool)
    selected = np.array([selected_count(positives.size, rate) for rate in rates], dtype=np.int64)
    caught = Ranking(scores).caught(positives.astype(np.float64), None, selected)
    total = int(positives.sum())
    return [RecallPoint(rate, int(m), float(c), total) for rate, m, c in zip(rates, selected, caught, strict=True)]


def pooled_recall(score_columns: list[np.ndarray], positive_columns: list[np.ndarray], rate: float) -> float:
    """Errors caught over all error types, each type selecting its own top ``rate``."""
    caught = positives = 0.0
    for scores, truth in zip(score_columns, positive_columns, strict=True):
        (point,) = recall_curve(scores, truth, (rate,))
        caught += point.caught
        positives += point.positives
    return caught / positives if positives else float("nan")


def value_captured(scores: np.ndarray, values: np.ndarray, rates=SELECTION_RATES) -> list[float]:
    """Share of the total ``values`` (what stopping each item recovers, >= 0) held by the top
    ``rate`` share of items by score, for each rate; ties split in expectation."""
    values = np.asarray(values, dtype=np.float64)
    total = float(values.sum())
    selected = np.array([selected_count(values.size, rate) for rate in rates], dtype=np.int64)
    caught = Ranking(scores).caught(values, None, selected)
    return [float(c) / total if total > 0 else float("nan") for c in caught]
