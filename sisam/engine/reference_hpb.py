"""The slow, obvious twin of ``hpb.py`` and ``network.py``: hpb.md's formulas as written.

Tests compare the kernels with this module; auditors can replay one item with it. Nothing
here is fast or clever: counts live in a dict, each label is evaluated on its own, and the
recursion over an item's patterns is a memoised recursive function.

Exact where the formula is rational, float where it is not:

* counts, S, the priors' probabilities and the posteriors are ``fractions.Fraction``
  (every float converts to a Fraction exactly), so P_e(W) = (k + S prior) / (n + S) and
  p_e = (k + 1/2) / (n + 1) carry no rounding at all;
* the log-odds lo(P) = ln(P / (1 - P)) is a float: ``log_fraction`` scales the rational
  P / (1 - P) by an exact power of two into [1/2, 2), rounds it once to a float and takes
  ``math.log`` (or ``math.log1p`` of the exact q - 1 near 1), so it stays accurate within
  a few ulp whatever the magnitude;
* the prior's log-odds (a sum over generalisations, the calibration D(j) = min(1, d / j))
  is float arithmetic, and the prior's probability comes from t = ``math.exp``(-|lo|),
  itself a float turned into an exact Fraction: prior = 1 / (1 + t) or t / (1 + t).
  Below exp's range (|lo| > 700) t is 2**-j * exp(j ln 2 - |lo|), still exact as a Fraction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction

from sisam.engine.counts import PatternCounts
from sisam.engine.lattice import Lattice

#: key -> (n_W, {label: k_W,label}); labels absent from the inner dict have k = 0.
ReferenceCounts = Mapping[int, tuple[float, Mapping[int, float]]]

_LN2 = math.log(2.0)


def counts_to_dict(counts: PatternCounts) -> dict[int, tuple[float, dict[int, float]]]:
    """The ``PatternCounts`` as plain Python: {key: (n, {label: k})}."""
    out: dict[int, tuple[float, dict[int, float]]] = {}
    for row, key in enumerate(counts.keys.tolist()):
        lo, hi = int(counts.err_ptr[row]), int(counts.err_ptr[row + 1])
        labels, ks = counts.err_label[lo:hi].tolist(), counts.err_k[lo:hi].tolist()
        errors = dict(zip(labels, ks, strict=True))
        out[int(key)] = (float(counts.n[row]), errors)
    return out


def exp_fraction(x: float) -> Fraction:
    """exp(x) for x <= 0, as the exact Fraction of a float result (never 0)."""
    if x >= -700.0:
        return Fraction(math.exp(x))
    j = int((-x - 600.0) / _LN2) + 1
    return Fraction(math.exp(x + j * _LN2)) / (1 << j)


def log_fraction(q: Fraction) -> float:
    """ln(q) for a positive rational q of any magnitude, accurate relatively even where
    ln(q) is near 0 (q - 1 is exact before rounding)."""
    if Fraction(1, 2) < q < 2:
        return math.log1p(float(q - 1))
    shift = q.numerator.bit_length() - q.denominator.bit_length()
    scaled = q / (1 << shift) if shift >= 0 else q * (1 << -shift)
    return math.log(float(scaled)) + shift * _LN2


def log_odds(p: Fraction) -> float:
    """lo(p) = ln(p / (1 - p)) for a rational 0 < p < 1."""
    return log_fraction(p / (1 - p))


def probability(lo: float) -> Fraction:
    """The inverse of ``log_odds``: 1 / (1 + e**-lo), exact up to the float t = e**-|lo|."""
    t = exp_fraction(-abs(lo))
    return 1 / (1 + t) if lo >= 0 else t / (1 + t)


def item_trace(
    item_keys: Sequence[int],
    lattice: Lattice,
    counts: ReferenceCounts,
    s_coef: Sequence[float],
    d_coef: Sequence[float],
    own_labels: Sequence[int] | None = None,
    own_weight: float = 1.0,
) -> dict[str, list]:
    """One item's recursion, every shape and label: hpb.md's "Posterior of a pattern" and
    "Prior from the generalisations", with leave-one-out when ``own_labels`` (0/1 per
    label) says the item was counted (with weight ``own_weight``).

    Returns lists indexed [shape] (``n``) or [shape][label] (``k``, ``lo_prior``,
    ``lo_post``); at the root lo_prior = lo_post = lo(p_e).
    """
    n_shapes = lattice.n_shapes
    own = None if own_labels is None else (Fraction(own_weight), list(own_labels))
    per_label = [
        _label_trace(item_keys, lattice, counts, label, float(s_e), float(d_e), own)
        for label, (s_e, d_e) in enumerate(zip(s_coef, d_coef, strict=True))
    ]
    return {
        "n": [float(_counts_at(item_keys[s], counts, 0, own)[0]) for s in range(n_shapes)],
        "k": [[t["k"][s] for t in per_label] for s in range(n_shapes)],
        "lo_prior": [[t["lo_prior"][s] for t in per_label] for s in range(n_shapes)],
        "lo_post": [[t["lo_post"][s] for t in per_label] for s in range(n_shapes)],
    }


def _counts_at(
    key: int, counts: ReferenceCounts, label: int, own: tuple[Fraction, list[int]] | None
) -> tuple[Fraction, Fraction]:
    """(n_W, k_W,label) of the pattern ``key``, without the item's own counts if ``own``."""
    n, errors = counts.get(int(key), (0.0, {}))
    n_f, k_f = Fraction(n), Fraction(errors.get(label, 0.0))
    if own is not None:
        weight, labels = own
        n_f -= weight
        k_f -= weight * labels[label]
    return n_f, k_f


def _label_trace(
    item_keys: Sequence[int],
    lattice: Lattice,
    counts: ReferenceCounts,
    label: int,
    s_e: float,
    d_e: float,
    own: tuple[Fraction, list[int]] | None,
) -> dict[str, list[float]]:
    """The recursion for one label, memoised per pattern (per shape of this item)."""
    n_shapes = lattice.n_shapes
    s_frac = Fraction(s_e)
    n_root, k_root = _counts_at(item_keys[0], counts, label, own)
    lo_root = log_odds((k_root + Fraction(1, 2)) / (n_root + 1))
    out = {"k": [float(k_root)] * n_shapes, "lo_prior": [lo_root] * n_shapes}
    memo: dict[int, float] = {0: lo_root}

    def lo_posterior(shape: int) -> float:
        if shape not in memo:
            gens = [int(g) for g in lattice.parents[shape, : lattice.n_parents[shape]]]
            calibration = min(1.0, d_e / len(gens))
            lo_prior = lo_root + calibration * sum(lo_posterior(g) - lo_root for g in gens)
            n, k = _counts_at(item_keys[shape], counts, label, own)
            posterior = (k + s_frac * probability(lo_prior)) / (n + s_frac)
            memo[shape] = log_odds(posterior)
            out["lo_prior"][shape] = lo_prior
            out["k"][shape] = float(k)
        return memo[shape]

    lo_posterior(n_shapes - 1)
    # every shape generalises the full pattern, so the recursion reached them all
    out["lo_post"] = [memo[s] for s in range(n_shapes)]
    return out


def path_weights(lattice: Lattice, d_coef: Sequence[float]) -> list[list[float]]:
    """w_W per [shape][label] by walking every path from the full pattern down through
    generalisations, multiplying D(|g(V)|) at each step (hpb.md, "Why explanations come for
    free"). Exponential in the lattice's depth: for small lattices."""
    n_shapes = lattice.n_shapes
    weights = [[0.0] * len(d_coef) for _ in range(n_shapes)]
    for label, d_e in enumerate(d_coef):

        def walk(shape: int, product: float, label: int = label, d_e: float = d_e) -> None:
            weights[shape][label] += product
            n_par = int(lattice.n_parents[shape])
            for j in range(n_par):
                walk(int(lattice.parents[shape, j]), product * min(1.0, d_e / n_par))

        walk(n_shapes - 1, 1.0)
    return weights


def network_log_odds(
    factor_lo: Sequence[Sequence[float]],
    base: Sequence[float],
    membership: Sequence[Sequence[bool]],
    dnet: Sequence[float],
) -> list[float]:
    """One item's network log-odds per label: lo(p_e) + min(1, dnet_e / m_e) *
    sum over the m_e factors of label e's network of (lo(P_f) - lo(p_e)) (hpb.md, "A
    network, not one node"). ``factor_lo[f][e]``, ``base[e]``, ``membership[f][e]``."""
    out = []
    for e in range(len(base)):
        members = [f for f in range(len(factor_lo)) if membership[f][e]]
        total = sum(factor_lo[f][e] - base[e] for f in members)
        calibration = min(1.0, dnet[e] / len(members)) if members else 0.0
        out.append(base[e] + calibration * total)
    return out


def coherent_any(lo: Sequence[float], any_label: int = -1) -> list[float]:
    """One item's log-odds with the "any" label clipped into the Fréchet bounds of a
    union, max_e P(e) <= P(any) <= min(1, sum_e P(e)) (``network.coherent_any``): the
    lower bound in log-odds, the upper one from the exact sum of the probabilities."""
    out = list(lo)
    any_label %= len(out)
    errors = [x for e, x in enumerate(out) if e != any_label]
    if not errors:
        return out
    lower = max(errors)
    total = sum(probability(x) for x in errors)
    upper = log_odds(total) if total < 1 else math.inf
    out[any_label] = min(max(out[any_label], lower), max(upper, lower))
    return out


def log_likelihood(lo: float, y: int) -> float:
    """ln P(y) for a Bernoulli of log-odds lo."""
    p = probability(lo)
    return log_fraction(p if y else 1 - p)
