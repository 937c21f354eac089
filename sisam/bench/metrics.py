"""Every figure of a benchmark table, for several rankings of the same test items.

For each ranker ("peer") and each outcome (an error type, or a real data set's bad
outcome), at each selection rate: expected recall, precision and normalised recall (ties
split in expectation, ``sisam.metrics``), the share of the positives' value captured where
items carry a value, and a percentile bootstrap interval for recall; per outcome also the
AUC (ties counted as half) and, for rankers whose scores are probabilities, the log loss.
Pooled figures add the caught errors of every outcome, each outcome selecting its own top
share (as in ``sisam.metrics.pooled_recall``).

The bootstrap redraws the test items with replacement; the *same* draws serve every ranker
(paired), so that the intervals of two rankers differ by the rankers, not by the draws.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sisam.metrics import SELECTION_RATES, Ranking, selected_count

#: Probabilities are clipped to [EPS, 1 - EPS] for the log loss, as scikit-learn does.
EPS = 1e-15


@dataclass(frozen=True)
class Outcome:
    """One binary outcome on the test items: ``truth`` bool[n]; ``value`` float64[n] what
    stopping a positive item recovers (None where the data has no value)."""

    name: str
    truth: np.ndarray
    value: np.ndarray | None = None


def auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random positive outranks a random
    negative, a tie counting one half (Mann-Whitney with average ranks)."""
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(truth, dtype=bool)
    positives = int(truth.sum())
    negatives = truth.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    key = np.where(np.isnan(scores), -np.inf, scores)
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    # average 1-based rank of each distinct score, ascending
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0
    rank_sum = average_rank[inverse][truth].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def log_loss(probabilities: np.ndarray, truth: np.ndarray) -> float:
    """Mean negative log-likelihood of the outcomes, probabilities clipped to [EPS, 1-EPS]."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), EPS, 1.0 - EPS)
    y = np.asarray(truth, dtype=bool)
    return float(-np.mean(np.where(y, np.log(p), np.log1p(-p)))) if y.size else float("nan")


def bootstrap_weights(n_items: int, draws: int, seed: int) -> np.ndarray:
    """float64[draws, n]: how many times each item is drawn in each bootstrap sample."""
    rng = np.random.default_rng(seed)
    out = np.empty((draws, n_items))
    for b in range(draws):
        out[b] = np.bincount(rng.integers(0, n_items, n_items), minlength=n_items)
    return out


def _interval(samples: np.ndarray) -> list[list[float]]:
    """[[low, high], ...]: the 95 % percentile interval of each column over the draws
    where it is defined (a draw with no positive of an outcome has no recall)."""
    out = []
    for column in np.asarray(samples, dtype=np.float64).T:
        finite = column[np.isfinite(column)]
        if finite.size == 0:
            out.append([float("nan"), float("nan")])
        else:
            low, high = np.percentile(finite, [2.5, 97.5])
            out.append([float(low), float(high)])
    return out


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.full(np.broadcast(a, b).shape, np.nan), where=b > 0)


def evaluate(
    scores: Mapping[str, Mapping[str, np.ndarray]],
    outcomes: list[Outcome],
    *,
    probabilistic: frozenset[str] | set[str] = frozenset(),
    rates: tuple[float, ...] = SELECTION_RATES,
    draws: int = 200,
    seed: int = 0,
) -> dict:
    """The JSON-ready table of every figure.

    ``scores[peer][outcome name]`` float64[n] (higher: stop first); every peer must score
    every outcome. ``probabilistic``: the peers whose scores are probabilities (log loss
    reported for them only). Layout::

        {"rates", "n_items", "bootstrap": {"draws", "seed"},
         "outcomes": {name: {"positives", "value"}},
         "peers": {peer: {"outcomes": {name: {"recall", "recall_ci", "precision",
                                              "normalised_recall", "value_captured",
                                              "auc", "log_loss"}},
                          "pooled": {"recall", "recall_ci", "precision",
                                     "normalised_recall", "value_captured"}}}}

    Per-rate figures are lists in ``rates`` order; intervals are [low, high] pairs.
    """
    n = int(outcomes[0].truth.size) if outcomes else 0
    rates = tuple(rates)
    selected = np.array([selected_count(n, r) for r in rates], dtype=np.float64)
    weights = bootstrap_weights(n, draws, seed) if n else np.zeros((0, 0))
    table: dict = {
        "rates": list(rates),
        "n_items": n,
        "bootstrap": {"draws": int(draws), "seed": int(seed)},
        "outcomes": {},
        "peers": {},
    }
    truths = {o.name: np.asarray(o.truth, dtype=bool) for o in outcomes}
    positives = {name: float(t.sum()) for name, t in truths.items()}
    boot_positives = {name: weights @ t.astype(np.float64) for name, t in truths.items()}
    for o in outcomes:
        table["outcomes"][o.name] = {
            "positives": int(positives[o.name]),
            "value": None if o.value is None else float(np.sum(np.where(truths[o.name], o.value, 0.0))),
        }
    for peer, columns in scores.items():
        missing = [o.name for o in outcomes if o.name not in columns]
        if missing:
            raise ValueError(f"peer {peer!r} gave no scores for {missing}")
        per_outcome = {}
        pooled_caught = np.zeros(len(rates))
        pooled_best = np.zeros(len(rates))
        pooled_value = np.zeros(len(rates))
        pooled_value_total = 0.0
        pooled_boot = np.zeros((draws, len(rates)))
        pooled_boot_positives = np.zeros(draws)
        for o in outcomes:
            s = np.asarray(columns[o.name], dtype=np.float64)
            if s.shape != (n,):
                raise ValueError(f"peer {peer!r}, outcome {o.name!r}: expected {n} scores, got {s.shape}")
            y = truths[o.name].astype(np.float64)
            rank = Ranking(s)
            caught = rank.caught(y, None, selected)
            best = np.minimum(selected, positives[o.name])
            figures = {
                "recall": _ratio(caught, positives[o.name]).tolist(),
                "precision": _ratio(caught, selected).tolist(),
                "normalised_recall": _ratio(caught, best).tolist(),
                "value_captured": None,
                "auc": auc(s, truths[o.name]),
                "log_loss": log_loss(s, truths[o.name]) if peer in probabilistic else None,
            }
            if o.value is not None:
                value = np.where(truths[o.name], np.asarray(o.value, dtype=np.float64), 0.0)
                got = rank.caught(value, None, selected)
                figures["value_captured"] = _ratio(got, value.sum()).tolist()
                pooled_value += got
                pooled_value_total += float(value.sum())
            boot = np.array([rank.caught(y * w, w, selected) for w in weights]).reshape(draws, len(rates))
            figures["recall_ci"] = _interval(_ratio(boot, boot_positives[o.name][:, None]))
            per_outcome[o.name] = figures
            pooled_caught += caught
            pooled_best += best
            pooled_boot += boot
            pooled_boot_positives += boot_positives[o.name]
        total_positives = sum(positives.values())
        table["peers"][peer] = {
            "outcomes": per_outcome,
            "pooled": {
                "recall": _ratio(pooled_caught, total_positives).tolist(),
                "recall_ci": _interval(_ratio(pooled_boot, pooled_boot_positives[:, None])),
                "precision": _ratio(pooled_caught, selected * len(outcomes)).tolist(),
                "normalised_recall": _ratio(pooled_caught, pooled_best).tolist(),
                "value_captured": _ratio(pooled_value, pooled_value_total).tolist() if pooled_value_total else None,
            },
        }
    return table
