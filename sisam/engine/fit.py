"""Choosing HPB's coefficients by exact leave-one-out likelihood (hpb.md, "Choosing the
coefficients").

Per factor f and label e, S_e is picked from ``S_GRID`` and d_e from ``D_GRID``; per label,
the network's dnet_e from ``D_GRID``. The criterion is the leave-one-out log-likelihood of
labelled items, sum_i w_i ln P(y_i,e | the counts without item i): each item is scored by
the same kernels as at scoring time, with its own counts subtracted from every pattern it
matches (``hpb.loo_log_likelihood``). That is exactly what retraining without the item
would give, at the cost of one scoring pass.

Cost, and the choices that keep fitting to seconds on a million items:

* **A sample.** The likelihood is estimated on a seeded sample of the labelled items
  (``sample_size``, 20,000 by default: a standard error of a few tenths of a percent on
  the per-item likelihood, finer than the grid's steps). The counts are always the full
  history's; only the items scored are sampled.
* **Lanes.** One pass over the sample evaluates many coefficient pairs at once: each is a
  lane of the kernel, all lanes share each item's lookups (see ``hpb.py``).
* **Coordinate search** (``search="coordinate"``, the default): first S over its grid
  with d = 1 (averaging the generalisations' lifts, the neutral calibration), then d over
  its grid with that S; 17 of the 60 pairs per label. ``search="grid"`` evaluates all
  60. Unevaluated pairs are NaN in ``Coefficients.factor_loglik``.
* **Network.** With each factor's coefficients fixed, the sample's leave-one-out
  log-odds of every factor are computed once; dnet is then chosen by evaluating the
  network combination (``network.combine``) for each value of the grid, in numpy.

Ties go to the first value in grid order (the smallest S, the smallest d), so that a
label with no information keeps the least committal choice; the result depends only on
the counts, the items, the seed and the grids.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sisam.engine import hpb, network
from sisam.engine.hpb import FactorState

log = logging.getLogger("sisam.engine.fit")

#: The paper's grid for S: powers of ten with halves and quarters (hpb.md).
S_GRID = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)
#: The grid for d and dnet (hpb.md).
D_GRID = (0.5, 1.0, 1.5, 2.0, 3.0)
_D_START = D_GRID.index(1.0)  # coordinate search: S is chosen with d = 1


@dataclass(frozen=True)
class Coefficients:
    """Chosen coefficients and the evidence for them.

    ``s[f, e]`` and ``d[f, e]`` per factor and label, ``dnet[e]`` per label.
    ``factor_loglik[f, e, i, j]`` is the leave-one-out log-likelihood (summed over the
    sampled labelled items, weighted) of factor f alone for label e with S = S_GRID[i] and
    d = D_GRID[j] (NaN where the search did not evaluate the pair);
    ``network_loglik[e, j]`` that of label e's network with dnet = D_GRID[j].
    """

    s: np.ndarray  # float64[F, E]
    d: np.ndarray  # float64[F, E]
    dnet: np.ndarray  # float64[E]
    factor_loglik: np.ndarray  # float64[F, E, len(S_GRID), len(D_GRID)]
    network_loglik: np.ndarray  # float64[E, len(D_GRID)]
    n_items: int  # labelled items in the sample
    seed: int
    search: str

    @property
    def chosen_factor_loglik(self) -> np.ndarray:
        """float64[F, E]: the leave-one-out log-likelihood of the chosen (S, d)."""
        i = np.searchsorted(S_GRID, self.s)
        j = np.searchsorted(D_GRID, self.d)
        f, e = np.indices(self.s.shape)
        return self.factor_loglik[f, e, i, j]

    @property
    def chosen_network_loglik(self) -> np.ndarray:
        """float64[E]: the leave-one-out log-likelihood of each label's network."""
        j = np.searchsorted(D_GRID, self.dnet)
        return self.network_loglik[np.arange(self.dnet.shape[0]), j]


def sample_labelled(labels: np.ndarray, size: int = 20_000, seed: int = 0) -> np.ndarray:
    """int64 indices (ascending) of up to ``size`` labelled rows of ``labels`` (int8[n, E],
    a row of -1 for unlabelled items), drawn without replacement with ``seed``; all of
    them when there are fewer."""
    labelled = np.flatnonzero(np.asarray(labels)[:, 0] >= 0)
    if labelled.size <= size:
        return labelled.astype(np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(labelled, size=size, replace=False)).astype(np.int64)


def fit_coefficients(
    factors: Sequence[FactorState],
    keys: Sequence[np.ndarray],
    labels: np.ndarray,
    membership: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    sample_size: int = 20_000,
    seed: int = 0,
    search: str = "coordinate",
) -> Coefficients:
    """Choose S and d per (factor, label) and dnet per label (see the module docstring).

    ``keys[f]`` uint64[n, S_f] are the pattern keys of n items under factor f, ``labels``
    int8[n, E] their labels (a row of -1: unlabelled, ignored) and ``weights`` float64[n]
    the weights they were counted with (default 1); every labelled item must be counted
    in ``factors[f].counts``. ``membership`` bool[F, E] says which factors make up each
    label's network. Callers that can compute keys for a sample only should pass the
    rows ``sample_labelled(labels, sample_size, seed)`` selects: sampling again a set no
    larger than ``sample_size`` keeps all of it.
    """
    if search not in ("coordinate", "grid"):
        raise ValueError(f"search must be 'coordinate' or 'grid'; got {search!r}")
    n_factors = len(factors)
    labels = np.ascontiguousarray(labels, dtype=np.int8)
    membership = np.asarray(membership, dtype=bool)
    if n_factors == 0 or len(keys) != n_factors:
        raise ValueError(f"need keys for each of the {n_factors} factors; got {len(keys)}")
    n_labels = labels.shape[1]
    if membership.shape != (n_factors, n_labels):
        raise ValueError(
            f"membership must be bool[{n_factors}, {n_labels}]; got {membership.shape}"
        )
    rows = sample_labelled(labels, sample_size, seed)
    if rows.size == 0:
        raise ValueError("no labelled item to fit the coefficients on")
    y = labels[rows]
    w = None if weights is None else np.asarray(weights, dtype=np.float64)[rows]

    start = time.perf_counter()
    s = np.empty((n_factors, n_labels))
    d = np.empty((n_factors, n_labels))
    factor_loglik = np.full((n_factors, n_labels, len(S_GRID), len(D_GRID)), np.nan)
    for f, factor in enumerate(factors):
        sample_keys = np.ascontiguousarray(np.asarray(keys[f])[rows])
        s[f], d[f] = _fit_factor(factor, sample_keys, y, w, search, factor_loglik[f])
    log.info(
        "fitted S and d of %d factors x %d labels on %d items (%s search) in %.2f s",
        n_factors, n_labels, rows.size, search, time.perf_counter() - start,
    )  # fmt: skip

    start = time.perf_counter()
    factor_lo, base = [], None
    for f, factor in enumerate(factors):
        sample_keys = np.ascontiguousarray(np.asarray(keys[f])[rows])
        result = hpb.factor_log_odds(
            sample_keys, factor.lattice, factor.counts, factor.index, s[f], d[f],
            loo=y, loo_weight=w,
        )  # fmt: skip
        factor_lo.append(result.full)
        base = result.root
    item_weight = np.ones(rows.size) if w is None else w
    network_loglik = np.empty((n_labels, len(D_GRID)))
    for j, dnet in enumerate(D_GRID):
        lo = network.combine(factor_lo, base, membership, np.full(n_labels, dnet))
        # a plain sum, not a BLAS product, whose order could vary with its threads
        network_loglik[:, j] = (item_weight[:, None] * network.log_likelihood(lo, y)).sum(axis=0)
    dnet_chosen = np.asarray(D_GRID)[np.argmax(network_loglik, axis=1)]
    log.info("fitted dnet of %d labels in %.2f s", n_labels, time.perf_counter() - start)
    return Coefficients(
        s, d, dnet_chosen, factor_loglik, network_loglik, int(rows.size), seed, search
    )


def _fit_factor(
    factor: FactorState,
    keys: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | None,
    search: str,
    loglik: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """S and d per label for one factor; fills ``loglik[e, i, j]`` for the pairs tried."""
    n_labels = y.shape[1]
    s_grid, d_grid = np.asarray(S_GRID), np.asarray(D_GRID)

    def evaluate(lane_label: np.ndarray, lane_i: np.ndarray, lane_j: np.ndarray) -> None:
        values = hpb.loo_log_likelihood(
            keys, factor.lattice, factor.counts, factor.index, y,
            lane_label, s_grid[lane_i], d_grid[lane_j], weight=w,
        )  # fmt: skip
        loglik[lane_label, lane_i, lane_j] = values

    labels, s_index, d_index = np.arange(n_labels), np.arange(s_grid.size), np.arange(d_grid.size)
    if search == "grid":
        e, i, j = _pairs(labels, s_index, d_index)
        evaluate(e, i, j)
    else:
        e, i = _pairs(labels, s_index)
        evaluate(e, i, np.full(e.size, _D_START))
        best_i = np.argmax(loglik[:, :, _D_START], axis=1)
        e, j = _pairs(labels, d_index)
        evaluate(e, best_i[e], j)
    flat = np.where(np.isnan(loglik), -np.inf, loglik).reshape(n_labels, -1)
    best = np.argmax(flat, axis=1)  # first maximum in (S, d) grid order
    return s_grid[best // d_grid.size], d_grid[best % d_grid.size]


def _pairs(*axes: np.ndarray) -> list[np.ndarray]:
    """Every combination of the axes' values, flattened, first axis slowest."""
    return [a.ravel() for a in np.meshgrid(*axes, indexing="ij")]
