"""Combining a network's factors into one probability per label (hpb.md, "A network, not
one node").

Each error type's network is a set of HPB factors (``knowledge/``). Each factor f gives
lo(P_f,e), the log-odds of error e given the item's pattern over the factor's attributes
(``hpb.factor_log_odds``). The factors overlap in what they know, so they are combined with
the same calibrated naive-Bayes rule HPB uses between generalisations:

    lo(P_e) = lo(p_e) + min(1, dnet_e / m_e) * sum over the m_e factors of e's network
              of [lo(P_f,e) - lo(p_e)],

where p_e is the root probability (identical in every factor: every labelled item matches
every factor's root). dnet_e = m_e is plain naive Bayes, dnet_e = 1 averages the factors'
lifts; ``fit.py`` picks it by leave-one-out likelihood. A label whose network is empty
keeps p_e. Factors are added in order f = 0, 1, ..., so results are reproducible bit for
bit (``reference_hpb.network_log_odds`` is the plain twin).

**"Any error" is made coherent (our choice).** The last label, "the item has at least one
error", has a network of its own, learnt from its own counts like any other label; but
nothing in separate networks keeps it consistent with the 30 error types. Since "any" is
the union of the 30 events, every joint distribution satisfies the Fréchet bounds

    max_e P(e) <= P(any) <= min(1, sum_e P(e)),

so ``coherent_any`` clips the network's own P(any) into that interval (in log-odds, where
the lower bound is exact): it is kept where it is consistent (the usual case), raised to
the largest single error probability where it would say "this item probably has a wrong
HS code but probably has no error", and lowered where it claims more than all error
types together could produce. Clipping moves P(any) the least possible distance to a
coherent value. (``fit.py`` chooses dnet for "any" on the unclipped network, like every
other label's.)

Probabilities come from log-odds through a numerically stable logistic; ``probabilities``
keeps them strictly inside (0, 1) as float64 (see ``MIN_LOG_ODDS``, ``MAX_LOG_ODDS``).
Rank by log-odds when the extremes matter: they are never clipped.

The three steps are elementwise over items, so one fused kernel (``network_scores``)
runs them in a single parallel pass; the separate functions give the same bits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numba as nb
import numpy as np

#: Largest log-odds turned into a probability: 1 / (1 + e**-36) = 1 - 2**-52 still differs
#: from 1.0 in float64, while beyond ~36.7 the logistic rounds to exactly 1.
MAX_LOG_ODDS = 36.0
#: Smallest: e**-700 ~ 1e-304 is a normal float64 (beyond ~-745 it would round to 0).
MIN_LOG_ODDS = -700.0


@nb.njit(inline="always", nogil=True)
def _logistic(x):
    """1 / (1 + e**-x) without overflow."""
    t = math.exp(-abs(x))
    return 1.0 / (1.0 + t) if x >= 0.0 else t / (1.0 + t)


@nb.njit(inline="always", nogil=True)
def _combine_item(i, factor_lo, factor_rows, column, base, calibration, out):
    """out[i, e] = base_e + calibration_e * sum_f [f in e's network] (lo_f,e - base_e),
    lo_f,e = ``factor_lo[f][factor_rows[f][i], column[f, e]]`` (``column[f, e]`` < 0:
    not in the network), base_e = ``base[b, e]`` with b = i, or 0 for a single row.
    The sum runs over f = 0, 1, ... in order for every label, out[i] holding it."""
    n_labels = out.shape[1]
    b = np.int64(i) if base.shape[0] > 1 else np.int64(0)  # prange's i may be unsigned
    for e in range(n_labels):
        out[i, e] = 0.0
    for f in range(len(factor_lo)):
        lo_f = factor_lo[f]
        row_f = factor_rows[f][i]
        for e in range(n_labels):
            c = column[f, e]
            out[i, e] = out[i, e] + (lo_f[row_f, c] - base[b, e] if c >= 0 else 0.0)
    for e in range(n_labels):
        out[i, e] = base[b, e] + calibration[e] * out[i, e]


@nb.njit(inline="always", nogil=True)
def _error_probabilities(i, lo, any_label, p):
    """p[i, e] = logistic(lo[i, e]) for every label but ``any_label``, unclipped: what
    ``_coherent_item`` sums, and the probability itself wherever lo is within the clip."""
    for e in range(lo.shape[1]):
        if e != any_label:
            p[i, e] = _logistic(lo[i, e])


@nb.njit(inline="always", nogil=True)
def _coherent_item(i, lo, p, any_label):
    """Clip lo[i, any_label] into the Fréchet bounds of the other labels (in place);
    ``p`` as ``_error_probabilities`` left it."""
    n_labels = lo.shape[1]
    if n_labels < 2:
        return
    top = 0 if any_label != 0 else 1
    for e in range(n_labels):
        if e != any_label and lo[i, e] > lo[i, top]:
            top = e
    lower = lo[i, top]
    # total = P(top) + the rest; 1 - total as (1 - P(top)) - the rest, both exact-ish,
    # since 1.0 - total would cancel when the bound is close to 1
    rest = 0.0
    for e in range(n_labels):
        if e != any_label and e != top:
            rest += p[i, e]
    total = p[i, top] + rest
    complement = _logistic(-lower) - rest
    upper = math.inf
    if complement > 0.0:
        # total = 0 when every error is below 1e-308: then lower wins below
        upper = math.log(total) - math.log(complement) if total > 0.0 else -math.inf
    # rounding can put lo(sum) a hair below lo(max) when one error dominates: lower wins
    lo[i, any_label] = max(min(lo[i, any_label], max(upper, lower)), lower)


@nb.njit(inline="always", nogil=True)
def _probability(x):
    return _logistic(min(max(x, MIN_LOG_ODDS), MAX_LOG_ODDS))


@nb.njit(cache=True, nogil=True, parallel=True)
def _combine_kernel(factor_lo, factor_rows, column, base, calibration, out):
    for i in nb.prange(out.shape[0]):
        _combine_item(i, factor_lo, factor_rows, column, base, calibration, out)


@nb.njit(cache=True, nogil=True, parallel=True)
def _coherent_kernel(lo, any_label, p):
    for i in nb.prange(lo.shape[0]):
        _error_probabilities(i, lo, any_label, p)
        _coherent_item(i, lo, p, any_label)


@nb.njit(cache=True, nogil=True, parallel=True)
def _probability_kernel(lo, out):
    for i in nb.prange(lo.shape[0]):
        for e in range(lo.shape[1]):
            out[i, e] = _probability(lo[i, e])


@nb.njit(cache=True, nogil=True, parallel=True)
def _network_kernel(factor_lo, factor_rows, column, base, calibration, any_label, out_lo, out_p):
    for i in nb.prange(out_lo.shape[0]):
        _combine_item(i, factor_lo, factor_rows, column, base, calibration, out_lo)
        _error_probabilities(i, out_lo, any_label, out_p)
        if any_label >= 0:
            _coherent_item(i, out_lo, out_p, any_label)
        for e in range(out_lo.shape[1]):
            x = out_lo[i, e]
            # within the clip, the logistic already computed is the probability
            if e == any_label or not MIN_LOG_ODDS <= x <= MAX_LOG_ODDS:
                out_p[i, e] = _probability(x)


class ServedLogOdds(NamedTuple):
    """One factor's log-odds for the labels whose network uses it, one row per distinct
    item (``keys.distinct_rows``): item i's lo(P_f,e) is ``lo[rows[i], c]`` where
    ``labels[c]`` = e. Scoring passes these instead of float64[n, E] per factor: a
    factor serves about a third of the labels, and items repeat."""

    lo: np.ndarray  # float64[u, c]
    rows: np.ndarray  # int64[n]
    labels: np.ndarray  # int64[c]


def _prepare(
    factor_lo: Sequence[np.ndarray],
    factor_rows: Sequence[np.ndarray],
    column: np.ndarray,
    base: np.ndarray,
    dnet: np.ndarray,
    n_items: int,
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], np.ndarray, np.ndarray, np.ndarray]:
    """The kernels' arguments: log-odds and row indexes per factor, ``column`` int64[F, E]
    (-1: label e's network does not use factor f), base float64[1 or n, E], calibration
    float64[E]; checked."""
    n_labels = column.shape[1]
    dnet = np.asarray(dnet, dtype=np.float64)
    if dnet.shape != (n_labels,) or not (np.isfinite(dnet).all() and (dnet > 0).all()):
        raise ValueError(f"dnet must be {n_labels} finite positive floats; got {dnet.shape}")
    base = np.atleast_2d(np.asarray(base, dtype=np.float64))
    if base.shape[1:] != (n_labels,) or base.shape[0] not in (1, n_items):
        raise ValueError(f"base must be float64[{n_labels}] or float64[{n_items}, {n_labels}]; got {base.shape}")
    base = np.ascontiguousarray(base)
    lo = tuple(np.ascontiguousarray(x, dtype=np.float64) for x in factor_lo)
    rows = tuple(np.ascontiguousarray(r, dtype=np.int64) for r in factor_rows)
    for f, (x, r) in enumerate(zip(lo, rows, strict=True)):
        if r.shape != (n_items,) or (r.size and not (0 <= r.min() and r.max() < x.shape[0])):
            raise ValueError(f"factor {f}: item rows must be int64[{n_items}] indexing its {x.shape[0]} rows")
        if x.ndim != 2 or column[f].max(initial=-1) >= x.shape[1]:
            raise ValueError(f"factor {f}: log-odds float64[rows, columns] lack the columns its labels use")
    n_members = (column >= 0).sum(axis=0)
    calibration = np.where(n_members > 0, np.minimum(1.0, dnet / np.maximum(n_members, 1)), 0.0)
    if not lo:  # no factor at all: a zero-weight stand-in keeps the kernel's signature
        lo, rows = (base,), (np.zeros(n_items, dtype=np.int64),)
        column = np.full((1, n_labels), -1, dtype=np.int64)
    return lo, rows, np.ascontiguousarray(column, dtype=np.int64), base, calibration


def _dense(
    factor_lo: Sequence[np.ndarray], base: np.ndarray, membership: np.ndarray, dnet: np.ndarray
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], np.ndarray, np.ndarray, np.ndarray]:
    """``_prepare`` for float64[n, E] log-odds per factor and bool[F, E] membership."""
    membership = np.asarray(membership, dtype=bool)
    n_factors = len(factor_lo)
    if membership.ndim != 2 or membership.shape[0] != n_factors:
        raise ValueError(
            f"membership must be bool[{n_factors} factors, n_labels]; got {membership.shape}"
        )
    n_labels = membership.shape[1]
    n_items = np.shape(factor_lo[0])[0] if n_factors else np.atleast_2d(base).shape[0]
    if any(np.shape(x) != (n_items, n_labels) for x in factor_lo):
        raise ValueError(f"factor log-odds must be float64[{n_items}, {n_labels}] each")
    column = np.where(membership, np.arange(n_labels), -1)
    every_item = np.arange(n_items, dtype=np.int64)
    return _prepare(factor_lo, [every_item] * n_factors, column, base, dnet, n_items)


def _served(
    factors: Sequence[ServedLogOdds], base: np.ndarray, dnet: np.ndarray
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], np.ndarray, np.ndarray, np.ndarray]:
    """``_prepare`` for ``ServedLogOdds`` per factor and lo(p_e) float64[E]."""
    n_labels = np.shape(base)[-1]
    n_items = factors[0].rows.shape[0] if factors else 1
    column = np.full((len(factors), n_labels), -1, dtype=np.int64)
    for f, factor in enumerate(factors):
        labels = np.asarray(factor.labels, dtype=np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= n_labels or np.unique(labels).size < labels.size):
            raise ValueError(f"factor {f}: labels must be distinct indexes of the {n_labels} labels")
        column[f, labels] = np.arange(labels.size)
    return _prepare([f.lo for f in factors], [f.rows for f in factors], column, base, dnet, n_items)


def combine(
    factor_lo: Sequence[np.ndarray],
    base: np.ndarray,
    membership: np.ndarray,
    dnet: np.ndarray,
) -> np.ndarray:
    """float64[n, E] network log-odds (see the module docstring).

    ``factor_lo[f]`` float64[n, E] is factor f's ``FactorLogOdds.full``; ``base``
    float64[n, E] (or [E]) is lo(p_e), ``FactorLogOdds.root`` of any factor;
    ``membership`` bool[F, E] says which factors are in label e's network; ``dnet``
    float64[E] > 0.
    """
    lo, rows, column, base, calibration = _dense(factor_lo, base, membership, dnet)
    out = np.empty((rows[0].shape[0], column.shape[1]))
    _combine_kernel(lo, rows, column, base, calibration, out)
    return out


def coherent_any(lo: np.ndarray, any_label: int = -1) -> np.ndarray:
    """A copy of ``lo`` (float64[n, E]) whose ``any_label`` column is clipped into the
    Fréchet bounds of a union: max_e P(e) <= P(any) <= min(1, sum_e P(e)) over the other
    labels (see the module docstring)."""
    lo = np.array(lo, dtype=np.float64, order="C")
    _coherent_kernel(lo, any_label % lo.shape[1], np.empty_like(lo))
    return lo


def logistic(lo: np.ndarray) -> np.ndarray:
    """1 / (1 + e**-lo) without overflow, unclipped (0 or 1 only beyond float64's range)."""
    lo = np.asarray(lo, dtype=np.float64)
    t = np.exp(-np.abs(lo))
    return np.where(lo >= 0.0, 1.0 / (1.0 + t), t / (1.0 + t))


def probabilities(lo: np.ndarray) -> np.ndarray:
    """Probabilities strictly inside (0, 1), shaped like ``lo``: the logistic of ``lo``
    clipped to [``MIN_LOG_ODDS``, ``MAX_LOG_ODDS``]."""
    lo = np.asarray(lo, dtype=np.float64)
    flat = np.ascontiguousarray(lo.reshape(-1, lo.shape[-1] if lo.ndim else 1))
    out = np.empty_like(flat)
    _probability_kernel(flat, out)
    return out.reshape(lo.shape)


def log_sigmoid(lo: np.ndarray) -> np.ndarray:
    """ln(1 / (1 + e**-lo)) without overflow or cancellation."""
    lo = np.asarray(lo, dtype=np.float64)
    return np.minimum(lo, 0.0) - np.log1p(np.exp(-np.abs(lo)))


def log_likelihood(lo: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ln P(y) elementwise for Bernoulli variables of log-odds ``lo`` and outcomes y in
    {0, 1}."""
    return np.where(np.asarray(y) > 0, log_sigmoid(lo), log_sigmoid(-np.asarray(lo)))


def network_scores(
    factor_lo: Sequence[np.ndarray],
    base: np.ndarray,
    membership: np.ndarray,
    dnet: np.ndarray,
    any_label: int | None = -1,
) -> tuple[np.ndarray, np.ndarray]:
    """(log-odds, probabilities), both float64[n, E]: ``combine``, then ``coherent_any``
    (unless ``any_label`` is None), then ``probabilities``, fused into one parallel pass
    with the same bits as the three steps."""
    return _scores(*_dense(factor_lo, base, membership, dnet), any_label)


def served_network_scores(
    factors: Sequence[ServedLogOdds], base: np.ndarray, dnet: np.ndarray, any_label: int | None = -1
) -> tuple[np.ndarray, np.ndarray]:
    """``network_scores`` of factors given as ``ServedLogOdds`` (base float64[E]): the
    same bits as expanding each to float64[n, E] first, without the expansion."""
    return _scores(*_served(factors, base, dnet), any_label)


def _scores(
    lo: tuple[np.ndarray, ...],
    rows: tuple[np.ndarray, ...],
    column: np.ndarray,
    base: np.ndarray,
    calibration: np.ndarray,
    any_label: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    shape = (rows[0].shape[0], column.shape[1])
    out_lo, out_p = np.empty(shape), np.empty(shape)
    label = -1 if any_label is None else any_label % shape[1]
    _network_kernel(lo, rows, column, base, calibration, label, out_lo, out_p)
    return out_lo, out_p


def network_probabilities(
    factor_lo: Sequence[np.ndarray],
    base: np.ndarray,
    membership: np.ndarray,
    dnet: np.ndarray,
    any_label: int | None = -1,
) -> np.ndarray:
    """float64[n, E]: the probabilities of ``network_scores``."""
    return network_scores(factor_lo, base, membership, dnet, any_label)[1]
