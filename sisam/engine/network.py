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
keeps p_e.

**"Any error" is made coherent (our choice).** The last label, "the item has at least one
error", has a network of its own, learnt from its own counts like any other label; but
nothing in separate networks keeps it consistent with the 30 error types. Since "any" is
the union of the 30 events, every joint distribution satisfies the Fréchet bounds

    max_e P(e) <= P(any) <= min(1, sum_e P(e)),

so ``coherent_any`` clips the network's own P(any) into that interval: it is kept where
it is consistent (the usual case), raised to the largest single error probability where
it would say "this item probably has a wrong HS code but probably has no error", and
lowered where it claims more than all error types together could produce. Clipping moves
P(any) the least possible distance to a coherent value.

Probabilities come from log-odds through a numerically stable logistic; ``probabilities``
keeps them strictly inside (0, 1) as float64 (see ``MIN_LOG_ODDS``, ``MAX_LOG_ODDS``).
Rank by log-odds when the extremes matter: they are never clipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Largest log-odds turned into a probability: 1 / (1 + e**-36) = 1 - 2**-52 still differs
#: from 1.0 in float64, while beyond ~36.7 the logistic rounds to exactly 1.
MAX_LOG_ODDS = 36.0
#: Smallest: e**-700 ~ 1e-304 is a normal float64 (beyond ~-745 it would round to 0).
MIN_LOG_ODDS = -700.0


def combine(
    factor_lo: Sequence[np.ndarray],
    base: np.ndarray,
    membership: np.ndarray,
    dnet: np.ndarray,
) -> np.ndarray:
    """float64[n, E] network log-odds.

    ``factor_lo[f]`` float64[n, E] is factor f's ``FactorLogOdds.full``; ``base``
    float64[n, E] (or [E]) is lo(p_e), ``FactorLogOdds.root`` of any factor;
    ``membership`` bool[F, E] says which factors are in label e's network; ``dnet``
    float64[E] > 0. Factors are added in order f = 0, 1, ..., so the result is
    reproducible bit for bit.
    """
    membership = np.asarray(membership, dtype=bool)
    dnet = np.asarray(dnet, dtype=np.float64)
    n_factors = len(factor_lo)
    if membership.ndim != 2 or membership.shape[0] != n_factors:
        raise ValueError(
            f"membership must be bool[{n_factors} factors, n_labels]; got {membership.shape}"
        )
    n_labels = membership.shape[1]
    if dnet.shape != (n_labels,) or not (np.isfinite(dnet).all() and (dnet > 0).all()):
        raise ValueError(f"dnet must be {n_labels} finite positive floats; got {dnet.shape}")
    base = np.asarray(base, dtype=np.float64)
    n_members = membership.sum(axis=0)
    calibration = np.minimum(1.0, dnet / np.maximum(n_members, 1))
    calibration[n_members == 0] = 0.0
    total = np.zeros(np.broadcast_shapes(base.shape, (1, n_labels)))
    for f in range(n_factors):
        lo_f = np.asarray(factor_lo[f], dtype=np.float64)
        total = total + np.where(membership[f], lo_f - base, 0.0)
    return base + calibration * total


def coherent_any(lo: np.ndarray, any_label: int = -1) -> np.ndarray:
    """A copy of ``lo`` (float64[n, E]) whose ``any_label`` column is clipped into the
    Fréchet bounds of a union: max_e P(e) <= P(any) <= min(1, sum_e P(e)) over the other
    labels (see the module docstring)."""
    lo = np.array(lo, dtype=np.float64)
    any_label = any_label % lo.shape[1]
    errors = np.delete(lo, any_label, axis=1)
    if errors.shape[1] == 0:
        return lo
    lower = errors.max(axis=1)
    total = logistic(errors).sum(axis=1)
    below_one = total < 1.0
    safe = np.where(below_one, total, 0.5)
    with np.errstate(divide="ignore"):  # total = 0 (every error below 1e-308): upper = -inf
        upper = np.where(below_one, np.log(safe) - np.log1p(-safe), np.inf)
    # rounding can put lo(sum) a hair below lo(max) when one error dominates: lower wins
    lo[:, any_label] = np.clip(lo[:, any_label], lower, np.maximum(upper, lower))
    return lo


def logistic(lo: np.ndarray) -> np.ndarray:
    """1 / (1 + e**-lo) without overflow, unclipped (0 or 1 only beyond float64's range)."""
    lo = np.asarray(lo, dtype=np.float64)
    t = np.exp(-np.abs(lo))
    return np.where(lo >= 0.0, 1.0 / (1.0 + t), t / (1.0 + t))


def probabilities(lo: np.ndarray) -> np.ndarray:
    """float64 probabilities strictly inside (0, 1): the logistic of ``lo`` clipped to
    [``MIN_LOG_ODDS``, ``MAX_LOG_ODDS``]."""
    return logistic(np.clip(lo, MIN_LOG_ODDS, MAX_LOG_ODDS))


def log_sigmoid(lo: np.ndarray) -> np.ndarray:
    """ln(1 / (1 + e**-lo)) without overflow or cancellation."""
    lo = np.asarray(lo, dtype=np.float64)
    return np.minimum(lo, 0.0) - np.log1p(np.exp(-np.abs(lo)))


def log_likelihood(lo: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ln P(y) elementwise for Bernoulli variables of log-odds ``lo`` and outcomes y in
    {0, 1}."""
    return np.where(np.asarray(y) > 0, log_sigmoid(lo), log_sigmoid(-np.asarray(lo)))


def network_probabilities(
    factor_lo: Sequence[np.ndarray],
    base: np.ndarray,
    membership: np.ndarray,
    dnet: np.ndarray,
    any_label: int = -1,
) -> np.ndarray:
    """float64[n, E]: ``combine``, then ``coherent_any``, then ``probabilities``."""
    return probabilities(coherent_any(combine(factor_lo, base, membership, dnet), any_label))
