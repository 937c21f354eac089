"""Choosing the coefficients by exact leave-one-out (hpb.md, "Choosing the coefficients").

Per factor and label, S from ``S_GRID`` and d from ``D_GRID``; per label, the network's
calibration dnet from ``D_GRID``. The criterion is the leave-one-out log-likelihood of a
seeded sample of inspected items: each item is scored against the counts with its own
counts subtracted from every pattern it matches (``hpb.loo_log_likelihood``), which is
exactly what retraining without it would give, at the cost of one scoring pass.

The search is coordinate-wise, to keep fitting in seconds on a million items: first S with
d = 1 (the paper's averaging of generalisations), then d at the chosen S, then dnet with
every factor at its chosen (S, d). Every candidate of a step is a *lane* of the same kernel
pass, so a step costs one pass over the sample whatever the grid's size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sisam.engine.counts import PatternCounts
from sisam.engine.hashtable import KeyIndex
from sisam.engine.hpb import factor_log_odds, loo_log_likelihood
from sisam.engine.lattice import Lattice
from sisam.engine.network import combine, log_likelihood

S_GRID = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)
D_GRID = (0.5, 1.0, 1.5, 2.0, 3.0)
DEFAULT_D = 1.0


@dataclass(frozen=True)
class FitResult:
    """Coefficients as the knowledge base stores them: per factor ``S``, ``d`` and the
    leave-one-out log-likelihood they reach (``loo_loglik``), all float64[E]; per label
    ``dnet`` and its ``loo_loglik``; and the number of items the choice rests on."""

    coefficients: dict[str, dict[str, np.ndarray]]
    network_coefficients: dict[str, np.ndarray]
    n_sample: int


def sample_rows(n_items: int, sample: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``sample`` of ``n_items`` items, seeded."""
    if n_items <= sample:
        return np.arange(n_items)
    return np.sort(np.random.default_rng(seed).choice(n_items, size=sample, replace=False))


def _best_per_label(loglik: np.ndarray, n_labels: int, grid: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``loglik`` laid out label-major (label, candidate): the best candidate per label.
    Ties go to the first candidate in grid order, so the choice is reproducible."""
    table = loglik.reshape(n_labels, len(grid))
    best = np.argmax(table, axis=1)
    return np.asarray(grid)[best], table[np.arange(n_labels), best]


def fit_factor(
    keys: np.ndarray, lattice: Lattice, counts: PatternCounts, index: KeyIndex, labels: np.ndarray
) -> dict[str, np.ndarray]:
    """S, d and their leave-one-out log-likelihood for every label of one factor."""
    n_labels = labels.shape[1]
    label_lanes = np.repeat(np.arange(n_labels), len(S_GRID))
    s_lanes = np.tile(np.asarray(S_GRID), n_labels)
    loglik = loo_log_likelihood(keys, lattice, counts, index, labels, label_lanes, s_lanes, np.full(s_lanes.size, DEFAULT_D))
    s_best, _ = _best_per_label(loglik, n_labels, S_GRID)

    label_lanes = np.repeat(np.arange(n_labels), len(D_GRID))
    d_lanes = np.tile(np.asarray(D_GRID), n_labels)
    loglik = loo_log_likelihood(keys, lattice, counts, index, labels, label_lanes, np.repeat(s_best, len(D_GRID)), d_lanes)
    d_best, best_loglik = _best_per_label(loglik, n_labels, D_GRID)
    return {"S": s_best, "d": d_best, "loo_loglik": best_loglik}


def fit_network(
    factor_lo: list[np.ndarray], base: np.ndarray, membership: np.ndarray, labels: np.ndarray
) -> dict[str, np.ndarray]:
    """dnet per label, from the factors' leave-one-out log-odds of the sample items."""
    n_labels = labels.shape[1]
    loglik = np.empty((n_labels, len(D_GRID)))
    for j, dnet in enumerate(D_GRID):
        lo = combine(factor_lo, base, membership, np.full(n_labels, dnet))
        loglik[:, j] = log_likelihood(lo, labels).sum(axis=0)
    best = np.argmax(loglik, axis=1)
    return {"dnet": np.asarray(D_GRID)[best], "loo_loglik": loglik[np.arange(n_labels), best]}


def fit_coefficients(
    lattices: Mapping[str, Lattice],
    counts: Mapping[str, PatternCounts],
    indexes: Mapping[str, KeyIndex],
    inspected_keys: Mapping[str, np.ndarray],
    inspected_labels: np.ndarray,
    membership: np.ndarray,
    *,
    sample: int,
    seed: int,
) -> FitResult:
    """Fit every factor, then the networks, on a seeded sample of the inspected items.

    ``inspected_keys[factor]`` uint64[m, S] and ``inspected_labels`` int8[m, E] belong to
    inspected items that were counted in ``counts`` (so that leaving them out is exact);
    ``membership`` bool[F, E] gives each label's factors, in the order of ``lattices``.
    """
    rows = sample_rows(inspected_labels.shape[0], sample, seed)
    labels = np.ascontiguousarray(inspected_labels[rows])
    coefficients, factor_lo, base = {}, [], None
    for name, lattice in lattices.items():
        keys = np.ascontiguousarray(inspected_keys[name][rows])
        fitted = fit_factor(keys, lattice, counts[name], indexes[name], labels)
        coefficients[name] = fitted
        loo = factor_log_odds(keys, lattice, counts[name], indexes[name], fitted["S"], fitted["d"], loo=labels)
        factor_lo.append(loo.full)
        base = loo.root if base is None else base
    network = fit_network(factor_lo, base, membership, labels)
    return FitResult(coefficients, network, int(rows.size))
