"""The HPB kernels against their plain-Python twin, leave-one-out against retraining, and
the properties that must hold whatever the counts: finite log-odds, identical results on
any number of threads or batches, the weight-of-evidence identity.

Tolerance. Kernels and reference are compared on log-odds, relatively with a floor:
|lo_kernel - lo_ref| <= 1e-12 * max(1, |lo_ref|). Log-odds are what the kernels compute and
what the network adds up; an absolute tolerance on probabilities would accept anything for
rare errors (p = 1e-9 and p = 2e-9 differ by 1e-9 but by ln 2 in evidence), while a purely
relative one is meaningless around lo = 0. Both sides round each exp/log to about 1 ulp and
the recursion adds a few dozen such terms, so 1e-12 leaves three orders of margin.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
from collections.abc import Sequence

import numba as nb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sisam.engine import fit, hpb, network
from sisam.engine import reference_hpb as ref
from sisam.engine.counts import PatternCounts
from sisam.engine.hashtable import build_index
from sisam.engine.lattice import Lattice, build_lattice

RTOL = 1e-12
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# ----------------------------------------------------------------- small worlds, by hand


def item_keys(codes: np.ndarray, lattice: Lattice) -> np.ndarray:
    """uint64[n, S] keys: a digest of (shape, the item's code at each non-wildcard level).

    ``codes[i, a]`` is item i's finest value of attribute a; level l of it is
    ``codes >> l`` (a taxonomy: level l + 1 merges pairs of level-l values)."""
    n = codes.shape[0]
    keys = np.empty((n, lattice.n_shapes), dtype=np.uint64)
    for i in range(n):
        for s in range(lattice.n_shapes):
            parts = [s]
            for a, level in enumerate(lattice.levels[s]):
                if level < lattice.level_counts[a]:
                    parts.append(int(codes[i, a]) >> int(level))
                else:
                    parts.append(-1)
            digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
            keys[i, s] = int.from_bytes(digest, "little")
    return keys


def count(keys: np.ndarray, labels: np.ndarray, weights: Sequence[float] | None = None):
    """PatternCounts of items, with dicts: the obvious way (hpb.md, "Counts")."""
    n_items = keys.shape[0]
    weights = [1.0] * n_items if weights is None else list(weights)
    table: dict[int, list] = {}
    for i in range(n_items):
        for key in keys[i].tolist():
            entry = table.setdefault(key, [0.0, 0.0, {}])
            entry[1] += weights[i]
            if labels[i, 0] >= 0:
                entry[0] += weights[i]
                for e in np.flatnonzero(labels[i] == 1).tolist():
                    entry[2][e] = entry[2].get(e, 0.0) + weights[i]
    return counts_from_table(table)


def counts_from_table(table: dict[int, list]) -> PatternCounts:
    """{key: [n, N, {label: k}]} -> PatternCounts (keys sorted, zero k dropped)."""
    keys = sorted(table)
    ptr, err_label, err_k = [0], [], []
    for key in keys:
        errors = sorted((e, k) for e, k in table[key][2].items() if k > 0)
        err_label += [e for e, _ in errors]
        err_k += [k for _, k in errors]
        ptr.append(len(err_label))
    return PatternCounts(
        np.array(keys, dtype=np.uint64),
        np.array([table[k][0] for k in keys], dtype=np.float64),
        np.array([table[k][1] for k in keys], dtype=np.float64),
        np.array(ptr, dtype=np.int64),
        np.array(err_label, dtype=np.int16),
        np.array(err_k, dtype=np.float64),
    )


class World:
    """Items (codes, labels), their lattice, keys and counts."""

    def __init__(self, level_counts, codes, labels, weights=None):
        self.lattice = build_lattice(level_counts)
        self.codes = codes
        self.labels = labels
        self.weights = weights
        self.keys = item_keys(codes, self.lattice)
        self.counts = count(self.keys, labels, weights)
        self.index = build_index(self.counts.keys)
        self.table = ref.counts_to_dict(self.counts)

    @property
    def n_labels(self) -> int:
        return self.labels.shape[1]


@st.composite
def worlds(draw, n_labels: int = 3, max_items: int = 30):
    level_counts = draw(st.lists(st.integers(1, 2), min_size=1, max_size=3))
    n_items = draw(st.integers(1, max_items))
    cardinality = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, cardinality, (n_items, len(level_counts)))
    rate = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    labels = (rng.random((n_items, n_labels)) < rate).astype(np.int8)
    labels[rng.random(n_items) < draw(st.sampled_from([0.0, 0.3, 1.0]))] = -1
    weights = None
    if draw(st.booleans()):
        weights = rng.choice([0.5, 1.0, 2.0, 3.25], n_items).tolist()
    return World(level_counts, codes, labels, weights)


coefficients = st.floats(0.01, 5000.0)
calibrations = st.floats(0.05, 10.0)


def assert_close(kernel: np.ndarray, reference: np.ndarray) -> None:
    kernel, reference = np.asarray(kernel), np.asarray(reference)
    assert np.isfinite(kernel).all()
    error = np.abs(kernel - reference) / np.maximum(1.0, np.abs(reference))
    assert error.max(initial=0.0) <= RTOL, f"max relative error {error.max()}"


def reference_scores(world, keys, s_coef, d_coef, loo=None, weights=None):
    """float64[n, E] full-pattern log-odds from the reference."""
    out = []
    for i in range(keys.shape[0]):
        own = None if loo is None or loo[i, 0] < 0 else loo[i].tolist()
        w = 1.0 if weights is None else weights[i]
        trace = ref.item_trace(keys[i].tolist(), world.lattice, world.table, s_coef, d_coef, own, w)
        out.append(trace["lo_post"][-1])
    return np.array(out)


def fresh_keys(world: World, seed: int, n: int = 5) -> np.ndarray:
    """Keys of items partly unseen in the counts (codes beyond the world's range)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 12, (n, world.codes.shape[1]))
    return item_keys(codes, world.lattice)


# ---------------------------------------------------------------------- exp and log lanes


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.spacing(np.abs(b))


def test_exp_and_log_lanes_within_one_ulp_of_libm():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.uniform(0, 700, 20000), rng.exponential(1e-3, 20000), [0.0, 700.0]])
    out = np.empty_like(a)
    scale_bits = np.empty(a.size, dtype=np.int64)
    hpb._exp_neg_lanes(a, out, scale_bits, scale_bits.view(np.float64))
    assert ulps(out, np.array([math.exp(-v) for v in a])).max() <= 1.0

    x = np.concatenate([
        np.exp(rng.uniform(-700, 700, 20000)),
        1.0 + rng.normal(0, 1e-6, 20000),
        [1.0, 2.0, 0.5, hpb._TINY, hpb._HUGE, np.nextafter(1.0, 0.0)],
    ])
    out = np.empty((1, x.size))
    mant_bits = np.empty(x.size, dtype=np.int64)
    hpb._log_lanes(x.view(np.int64), out, 0, mant_bits, mant_bits.view(np.float64), np.empty(x.size))
    expected = np.array([math.log(v) for v in x])
    error = np.where(expected == 0.0, np.abs(out[0]), ulps(out[0], expected))
    assert error.max() <= 1.0


# ------------------------------------------------------------------ kernels vs reference


@SETTINGS
@given(worlds(), st.lists(coefficients, min_size=3, max_size=3),
       st.lists(calibrations, min_size=3, max_size=3), st.integers(0, 1000))  # fmt: skip
def test_scores_match_reference(world, s_coef, d_coef, seed):
    keys = np.concatenate([world.keys, fresh_keys(world, seed)])
    got = hpb.factor_log_odds(keys, world.lattice, world.counts, world.index, s_coef, d_coef)
    assert_close(got.full, reference_scores(world, keys, s_coef, d_coef))
    root = ref.item_trace(keys[0].tolist(), world.lattice, world.table, s_coef, d_coef)
    assert_close(got.root, np.broadcast_to(root["lo_post"][0], got.root.shape))


@SETTINGS
@given(worlds(), st.lists(coefficients, min_size=3, max_size=3),
       st.lists(calibrations, min_size=3, max_size=3))  # fmt: skip
def test_trace_matches_reference_and_scoring(world, s_coef, d_coef):
    keys = world.keys[:6]
    trace = hpb.trace_factor(keys, world.lattice, world.counts, world.index, s_coef, d_coef)
    scores = hpb.factor_log_odds(keys, world.lattice, world.counts, world.index, s_coef, d_coef)
    assert np.array_equal(trace.full, scores.full)
    assert np.array_equal(trace.lo_post[:, 0], scores.root)
    assert_close(trace.full, trace.lo_post[:, -1])
    for i in range(keys.shape[0]):
        expected = ref.item_trace(keys[i].tolist(), world.lattice, world.table, s_coef, d_coef)
        assert_close(trace.lo_post[i], expected["lo_post"])
        assert_close(trace.lo_prior[i], expected["lo_prior"])
        assert np.array_equal(trace.n[i], expected["n"])
        assert np.array_equal(trace.k[i], expected["k"])
        row_of_key = {int(k): r for r, k in enumerate(world.counts.keys.tolist())}
        assert trace.rows[i].tolist() == [row_of_key[int(k)] for k in keys[i]]


def test_scores_all_31_labels_match_reference():
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 4, (40, 3))
    labels = (rng.random((40, 31)) < 0.2).astype(np.int8)
    labels[:10] = -1
    world = World((2, 1, 1), codes, labels)
    s_coef = rng.choice([0.25, 1.0, 10.0, 1000.0], 31)
    d_coef = rng.choice([0.5, 1.0, 3.0], 31)
    got = hpb.factor_log_odds(world.keys, world.lattice, world.counts, world.index, s_coef, d_coef)
    assert_close(got.full, reference_scores(world, world.keys, s_coef, d_coef))


# ------------------------------------------------------------------------- leave-one-out


@SETTINGS
@given(worlds(max_items=15), st.lists(coefficients, min_size=3, max_size=3),
       st.lists(calibrations, min_size=3, max_size=3))  # fmt: skip
def test_leave_one_out_equals_retraining_without_the_item(world, s_coef, d_coef):
    weights = world.weights
    loo = hpb.factor_log_odds(
        world.keys, world.lattice, world.counts, world.index, s_coef, d_coef,
        loo=world.labels, loo_weight=weights,
    )  # fmt: skip
    n_items = world.keys.shape[0]
    for i in range(n_items):
        others = np.arange(n_items) != i
        w_others = None if weights is None else [w for j, w in enumerate(weights) if j != i]
        retrained = count(world.keys[others], world.labels[others], w_others)
        if not retrained.n_patterns:
            retrained = PatternCounts.empty()
        alone = hpb.factor_log_odds(
            world.keys[i : i + 1], world.lattice, retrained, build_index(retrained.keys),
            s_coef, d_coef,
        )  # fmt: skip
        if world.labels[i, 0] >= 0:
            assert_close(loo.full[i], alone.full[0])
            assert_close(loo.root[i], alone.root[0])
        else:  # an unlabelled item has nothing to leave out
            no_loo = hpb.factor_log_odds(
                world.keys[i : i + 1], world.lattice, world.counts, world.index, s_coef, d_coef
            )
            assert np.array_equal(loo.full[i], no_loo.full[0])
    assert_close(loo.full, reference_scores(world, world.keys, s_coef, d_coef, world.labels, weights))


@SETTINGS
@given(worlds(max_items=20), st.integers(0, 1000))
def test_loo_log_likelihood_matches_reference(world, seed):
    rng = np.random.default_rng(seed)
    n_lanes = 7
    lane_label = rng.integers(0, world.n_labels, n_lanes)
    lane_s = rng.choice([0.25, 2.5, 100.0, 1000.0], n_lanes)
    lane_d = rng.choice([0.5, 1.0, 3.0], n_lanes)
    got = hpb.loo_log_likelihood(
        world.keys, world.lattice, world.counts, world.index, world.labels,
        lane_label, lane_s, lane_d, weight=world.weights,
    )  # fmt: skip
    expected = np.zeros(n_lanes)
    for c in range(n_lanes):
        s_coef = np.full(world.n_labels, lane_s[c])
        d_coef = np.full(world.n_labels, lane_d[c])
        lo = reference_scores(world, world.keys, s_coef, d_coef, world.labels, world.weights)
        for i in np.flatnonzero(world.labels[:, 0] >= 0):
            w = 1.0 if world.weights is None else world.weights[i]
            expected[c] += w * ref.log_likelihood(lo[i, lane_label[c]], world.labels[i, lane_label[c]])
    assert np.allclose(got, expected, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------- extreme counts and coefficients

count_values = st.sampled_from([0.0, 1e-9, 0.5, 1.0, 3.0, 1e6, 1e15, 1e200, 1e300])
extreme_s = st.sampled_from([1e-300, 1e-30, 1e-6, 0.25, 1000.0, 1e30, 1e300])
extreme_d = st.sampled_from([1e-9, 0.5, 1.0, 3.0, 1e9])


@st.composite
def extreme_counts(draw, lattice: Lattice, keys: np.ndarray, n_labels: int):
    """Arbitrary counts per pattern of one item: empty, tiny, huge, k = 0, k = n. Like all
    counts of items, closed under generalisation (a pattern is counted only if its
    generalisations are) and monotone (n and k never exceed a generalisation's)."""
    table = {}
    counts: list[tuple[float, list[float]] | None] = []
    for s, key in enumerate(keys[0].tolist()):
        parents = [counts[p] for p in lattice.parents[s, : lattice.n_parents[s]]]
        if any(p is None for p in parents) or draw(st.booleans()):
            counts.append(None)  # unseen
            continue
        n_max = min([p[0] for p in parents], default=math.inf)
        n = draw(count_values.filter(lambda v, n_max=n_max: v <= n_max))
        ks = []
        for e in range(n_labels):
            k_max = min([p[1][e] for p in parents] + [n])
            ks.append(draw(st.sampled_from([0.0, k_max, k_max / 2, min(k_max, 1.0)])))
        counts.append((n, ks))
        table[key] = [n, n, dict(enumerate(ks))]
    return table


@SETTINGS
@given(st.data(), st.sampled_from([(1,), (2, 1), (1, 1, 1), (3, 2)]))
def test_extreme_counts_and_coefficients_stay_finite_and_match_reference(data, level_counts):
    lattice = build_lattice(level_counts)
    keys = item_keys(np.array([[5] * len(level_counts)]), lattice)
    n_labels = 2
    table = data.draw(extreme_counts(lattice, keys, n_labels))
    s_coef = data.draw(st.lists(extreme_s, min_size=n_labels, max_size=n_labels))
    d_coef = data.draw(st.lists(extreme_d, min_size=n_labels, max_size=n_labels))
    counts = counts_from_table(table) if table else PatternCounts.empty()
    trace = hpb.trace_factor(keys, lattice, counts, build_index(counts.keys), s_coef, d_coef)
    assert np.isfinite(trace.lo_post).all() and np.isfinite(trace.lo_prior).all()
    expected = ref.item_trace(
        keys[0].tolist(), lattice, ref.counts_to_dict(counts), s_coef, d_coef
    )
    assert_close(trace.lo_post[0], expected["lo_post"])


def test_empty_counts_give_one_half_everywhere():
    lattice = build_lattice((2, 1))
    keys = item_keys(np.array([[1, 2], [3, 4]]), lattice)
    counts = PatternCounts.empty()
    got = hpb.factor_log_odds(keys, lattice, counts, build_index(counts.keys), [1.0], [1.0])
    assert np.array_equal(got.full, np.zeros((2, 1)))


# ---------------------------------------------------------------- weight of evidence


@SETTINGS
@given(worlds(), st.lists(coefficients, min_size=3, max_size=3),
       st.lists(calibrations, min_size=3, max_size=3), st.integers(0, 1000))  # fmt: skip
def test_weights_of_evidence_add_up_to_the_score(world, s_coef, d_coef, seed):
    weights = hpb.path_weights(world.lattice, d_coef)
    assert np.allclose(weights, ref.path_weights(world.lattice, d_coef), rtol=1e-12, atol=0)
    keys = np.concatenate([world.keys[:5], fresh_keys(world, seed, 3)])
    trace = hpb.trace_factor(keys, world.lattice, world.counts, world.index, s_coef, d_coef)
    total = hpb.contributions(trace, weights).sum(axis=1)
    assert np.abs(total - (trace.lo_post[:, -1] - trace.lo_post[:, 0])).max() <= 1e-9


# ---------------------------------------------------------- threads, batches, item order


@functools.cache
def big_world() -> tuple:
    """700 items (several blocks and prange tasks), 31 labels, counts of the first 500."""
    rng = np.random.default_rng(11)
    n_items = 700
    codes = rng.integers(0, 40, (n_items, 3))
    codes[:, 1] %= 5
    labels = (rng.random((n_items, 31)) < 0.05).astype(np.int8)
    labels[rng.random(n_items) < 0.4] = -1
    lattice = build_lattice((2, 1, 1))
    keys = item_keys(codes, lattice)
    counts = count(keys[:500], labels[:500])
    coefficients = (rng.choice([0.5, 5.0, 50.0], 31), rng.choice([0.5, 1.0, 3.0], 31))
    loo = np.concatenate([labels[:500], np.full((200, 31), -1, np.int8)])
    return lattice, keys, counts, build_index(counts.keys), coefficients, loo


def score_big(keys, loo=None, threads=2):
    lattice, _, counts, index, (s_coef, d_coef), _ = big_world()
    previous = nb.get_num_threads()
    nb.set_num_threads(threads)
    try:
        return hpb.factor_log_odds(keys, lattice, counts, index, s_coef, d_coef, loo=loo).full
    finally:
        nb.set_num_threads(previous)


@SETTINGS
@given(
    st.integers(1, 2),
    st.lists(st.integers(1, 699), max_size=4),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_results_do_not_depend_on_threads_batches_or_order(threads, cuts, seed, leave_out):
    _, keys, _, _, _, labels = big_world()
    loo = labels if leave_out else None
    whole = score_big(keys, loo)
    order = np.random.default_rng(seed).permutation(keys.shape[0])
    bounds = [0, *sorted(set(cuts)), keys.shape[0]]
    parts = [
        score_big(keys[order[a:b]], None if loo is None else loo[order[a:b]], threads)
        for a, b in itertools.pairwise(bounds)
    ]
    assert np.array_equal(np.concatenate(parts), whole[order])


def test_leave_one_out_log_likelihood_does_not_depend_on_threads():
    lattice, keys, counts, index, (s_coef, d_coef), labels = big_world()
    lanes = (np.arange(31), s_coef, d_coef)
    ll = []
    for threads in (1, 2):
        previous = nb.get_num_threads()
        nb.set_num_threads(threads)
        try:
            ll.append(hpb.loo_log_likelihood(keys[:500], lattice, counts, index, labels[:500], *lanes))
        finally:
            nb.set_num_threads(previous)
    assert np.array_equal(ll[0], ll[1])
    # unlabelled items are scored as they are: leave-one-out only touches labelled ones
    assert np.array_equal(score_big(keys[500:], labels[500:]), score_big(keys[500:]))


def test_empty_batch():
    lattice, keys, counts, index, (s_coef, d_coef), _ = big_world()
    out = hpb.factor_log_odds(keys[:0], lattice, counts, index, s_coef, d_coef)
    assert out.full.shape == (0, 31) and out.root.shape == (0, 31)


@SETTINGS
@given(worlds(), st.lists(st.integers(0, 2), min_size=1, max_size=3, unique=True))
def test_a_subset_of_labels_gives_the_same_columns(world, subset):
    s_coef, d_coef = [0.5, 25.0, 250.0], [0.5, 1.0, 3.0]
    args = (world.keys, world.lattice, world.counts, world.index, s_coef, d_coef)
    every = hpb.factor_log_odds(*args)
    some = hpb.factor_log_odds(*args, labels=np.array(subset))
    assert np.array_equal(some.full, every.full[:, subset])
    assert np.array_equal(some.root, every.root[:, subset])


# ------------------------------------------------------------------------------ errors


def test_bad_inputs_are_refused():
    world = World((1, 1), np.array([[0, 1], [1, 1]]), np.array([[1, 0], [-1, -1]], np.int8))
    args = (world.lattice, world.counts, world.index)
    with pytest.raises(ValueError, match="one column per shape"):
        hpb.factor_log_odds(world.keys[:, :2], *args, [1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="finite positive"):
        hpb.factor_log_odds(world.keys, *args, [1.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="finite positive"):
        hpb.factor_log_odds(world.keys, *args, [1.0, 1.0], [1.0, np.nan])
    with pytest.raises(ValueError, match="row of -1"):
        hpb.factor_log_odds(world.keys, *args, [1.0, 1.0], [1.0, 1.0],
                            loo=np.array([[1, -1], [-1, -1]], np.int8))  # fmt: skip
    with pytest.raises(ValueError, match="lane labels"):
        hpb.loo_log_likelihood(world.keys, *args, world.labels, [2], [1.0], [1.0])


# ----------------------------------------------------------------------------- network

log_odds_values = st.floats(-800.0, 800.0, allow_nan=False)


@SETTINGS
@given(st.integers(1, 4), st.integers(1, 5), st.integers(0, 1000))
def test_network_combination_matches_reference(n_factors, n_labels, seed):
    rng = np.random.default_rng(seed)
    n_items = 7
    factor_lo = [rng.normal(-3, 4, (n_items, n_labels)) for _ in range(n_factors)]
    base = rng.normal(-3, 1, (n_items, n_labels))
    membership = rng.random((n_factors, n_labels)) < 0.6
    dnet = rng.choice([0.5, 1.0, 1.5, 2.0, 3.0], n_labels)
    got = network.combine(factor_lo, base, membership, dnet)
    for i in range(n_items):
        expected = ref.network_log_odds(
            [lo[i].tolist() for lo in factor_lo], base[i].tolist(), membership.tolist(), dnet
        )
        assert got[i].tolist() == expected  # same operations in the same order
    empty = ~membership.any(axis=0)
    assert np.array_equal(got[:, empty], base[:, empty])


@SETTINGS
@given(st.integers(1, 4), st.integers(2, 6), st.integers(1, 9), st.integers(0, 1000))
def test_served_log_odds_give_the_bits_of_full_arrays(n_factors, n_labels, n_items, seed):
    """Factors given for the labels they serve, one row per distinct item, combine to the
    very bits of the same log-odds expanded to float64[n, E] per factor."""
    rng = np.random.default_rng(seed)
    membership = rng.random((n_factors, n_labels)) < 0.5
    base = rng.normal(-3, 1, n_labels)
    dnet = rng.choice([0.5, 1.0, 1.5, 2.0, 3.0], n_labels)
    served, full = [], []
    for f in range(n_factors):
        labels = np.flatnonzero(membership[f])
        distinct = rng.normal(-3, 4, (rng.integers(1, n_items + 1), labels.size))
        rows = rng.integers(0, distinct.shape[0], n_items)
        served.append(network.ServedLogOdds(distinct, rows, labels))
        lo = np.broadcast_to(base, (n_items, n_labels)).copy()
        lo[:, labels] = distinct[rows]
        full.append(lo)
    got = network.served_network_scores(served, base, dnet)
    expected = network.network_scores(full, base, membership, dnet)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g.view(np.uint64), e.view(np.uint64))
    bad = network.ServedLogOdds(served[0].lo, served[0].rows + served[0].lo.shape[0], served[0].labels)
    with pytest.raises(ValueError, match="item rows"):
        network.served_network_scores([bad, *served[1:]], base, dnet)


@SETTINGS
@given(st.lists(st.lists(log_odds_values, min_size=4, max_size=4), min_size=1, max_size=6))
def test_any_is_clipped_into_the_frechet_bounds(rows):
    lo = np.array(rows)
    got = network.coherent_any(lo)
    assert np.array_equal(got[:, :-1], lo[:, :-1])
    p_errors = network.logistic(lo[:, :-1])
    p_any = network.logistic(got[:, -1])
    assert (p_any >= p_errors.max(axis=1)).all()
    upper = np.minimum(1.0, p_errors.sum(axis=1))
    assert (p_any <= upper * (1 + 1e-12) + 1e-300).all()
    inside = (lo[:, -1] >= lo[:, :-1].max(axis=1)) & (
        network.logistic(lo[:, -1]) <= upper * (1 - 1e-9)
    )
    assert np.array_equal(got[inside, -1], lo[inside, -1])


@SETTINGS
@given(st.lists(st.lists(st.floats(-60.0, 60.0), min_size=4, max_size=4), min_size=1, max_size=6))
def test_coherent_any_matches_reference(rows):
    got = network.coherent_any(np.array(rows))
    expected = np.array([ref.coherent_any(row) for row in rows])
    assert_close(got[:, :-1], expected[:, :-1])
    # The upper bound lo(sum P) has condition number 1 / (1 - sum P): near 1 the rounding
    # of each P(e) alone exceeds any relative tolerance on log-odds. It bounds a
    # probability, so that is what is compared.
    assert np.allclose(network.logistic(got[:, -1]), network.logistic(expected[:, -1]),
                       rtol=1e-13, atol=1e-15)  # fmt: skip


@SETTINGS
@given(st.lists(st.floats(-1e300, 1e300, allow_nan=False), min_size=1, max_size=20))
def test_probabilities_are_finite_and_strictly_inside_zero_one(values):
    p = network.probabilities(np.array(values))
    assert np.isfinite(p).all() and (p > 0).all() and (p < 1).all()
    order = np.argsort(values, kind="stable")
    assert (np.diff(p[order]) >= 0).all()  # monotone in the log-odds


@SETTINGS
@given(log_odds_values, st.integers(0, 1))
def test_bernoulli_log_likelihood_matches_reference(lo, y):
    got = float(network.log_likelihood(np.array([lo]), np.array([y]))[0])
    assert math.isclose(got, ref.log_likelihood(lo, y), rel_tol=1e-12, abs_tol=1e-300)


def test_network_probabilities_chain_the_three_steps():
    rng = np.random.default_rng(5)
    factor_lo = [rng.normal(-2, 3, (20, 4)) for _ in range(2)]
    base = np.full((20, 4), -2.5)
    membership = np.ones((2, 4), dtype=bool)
    dnet = np.array([1.0, 2.0, 0.5, 1.5])
    lo = network.coherent_any(network.combine(factor_lo, base, membership, dnet))
    got = network.network_probabilities(factor_lo, base, membership, dnet)
    assert np.array_equal(got, network.probabilities(lo))


# --------------------------------------------------------------------------------- fit


def fit_world(seed: int = 2, n_items: int = 60) -> tuple[list[World], np.ndarray]:
    """Two factors over the same items: a two-attribute one and a one-attribute one."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 5, (n_items, 2))
    labels = (rng.random((n_items, 3)) < 0.25 + 0.1 * codes[:, :1]).astype(np.int8)
    labels[rng.random(n_items) < 0.3] = -1
    return [World((1, 1), codes, labels), World((1,), codes[:, 1:], labels)], labels


def test_sample_of_labelled_items_is_seeded_and_labelled():
    labels = np.full((1000, 2), -1, np.int8)
    labels[::3] = 0
    first = fit.sample_labelled(labels, 100, seed=7)
    assert first.size == 100 and (np.diff(first) > 0).all() and (labels[first, 0] == 0).all()
    assert np.array_equal(first, fit.sample_labelled(labels, 100, seed=7))
    assert not np.array_equal(first, fit.sample_labelled(labels, 100, seed=8))
    assert np.array_equal(fit.sample_labelled(labels, 10**6), np.flatnonzero(labels[:, 0] == 0))


def test_fit_picks_the_best_leave_one_out_likelihood_of_the_grid():
    worlds_, labels = fit_world()
    states = [hpb.FactorState(w.lattice, w.counts, w.index) for w in worlds_]
    keys = [w.keys for w in worlds_]
    membership = np.array([[True, True, True], [True, False, True]])
    grid = fit.fit_coefficients(states, keys, labels, membership, search="grid", seed=1)
    coordinate = fit.fit_coefficients(states, keys, labels, membership, seed=1)
    labelled = np.flatnonzero(labels[:, 0] >= 0)
    assert grid.n_items == labelled.size and not np.isnan(grid.factor_loglik).any()

    # every grid value is the reference's leave-one-out likelihood (2 pairs checked)
    world = worlds_[0]
    for i, j in ((0, 0), (len(fit.S_GRID) - 1, 4)):
        s_coef = np.full(3, fit.S_GRID[i])
        d_coef = np.full(3, fit.D_GRID[j])
        lo = reference_scores(world, world.keys, s_coef, d_coef, labels)
        expected = [
            sum(ref.log_likelihood(lo[r, e], labels[r, e]) for r in labelled) for e in range(3)
        ]
        assert np.allclose(grid.factor_loglik[0, :, i, j], expected, rtol=1e-12, atol=0)

    # the choice is the grid's argmax (first in grid order); coordinate search agrees on
    # the pairs it evaluated
    for f in range(2):
        for e in range(3):
            table = grid.factor_loglik[f, e]
            i, j = np.unravel_index(np.argmax(table), table.shape)
            assert (grid.s[f, e], grid.d[f, e]) == (fit.S_GRID[i], fit.D_GRID[j])
    tried = ~np.isnan(coordinate.factor_loglik)
    assert tried.sum(axis=(2, 3)).max() == len(fit.S_GRID) + len(fit.D_GRID) - 1
    assert np.array_equal(coordinate.factor_loglik[tried], grid.factor_loglik[tried])
    assert (coordinate.chosen_factor_loglik <= grid.chosen_factor_loglik).all()

    # dnet: the network's leave-one-out likelihood, recomputed from the factors' scores
    factor_lo, base = [], None
    for f, world in enumerate(worlds_):
        out = hpb.factor_log_odds(
            world.keys[labelled], world.lattice, world.counts, world.index,
            grid.s[f], grid.d[f], loo=labels[labelled],
        )  # fmt: skip
        factor_lo.append(out.full)
        base = out.root
    for j, dnet in enumerate(fit.D_GRID):
        expected = np.zeros(3)
        for r in range(labelled.size):
            lo = ref.network_log_odds(
                [x[r].tolist() for x in factor_lo], base[r].tolist(), membership.tolist(),
                [dnet] * 3,
            )  # fmt: skip
            for e in range(3):
                expected[e] += ref.log_likelihood(lo[e], labels[labelled[r], e])
        assert np.allclose(grid.network_loglik[:, j], expected, rtol=1e-12, atol=0)
    assert np.array_equal(grid.dnet, np.asarray(fit.D_GRID)[np.argmax(grid.network_loglik, axis=1)])
    assert np.array_equal(grid.chosen_network_loglik, grid.network_loglik.max(axis=1))


def test_fit_is_reproducible_and_refuses_bad_input():
    worlds_, labels = fit_world(seed=4, n_items=80)
    states = [hpb.FactorState(w.lattice, w.counts, w.index) for w in worlds_]
    keys = [w.keys for w in worlds_]
    membership = np.ones((2, 3), dtype=bool)
    a = fit.fit_coefficients(states, keys, labels, membership, sample_size=20, seed=3)
    b = fit.fit_coefficients(states, keys, labels, membership, sample_size=20, seed=3)
    assert a.n_items == 20
    assert all(np.array_equal(x, y, equal_nan=True) for x, y in zip(
        (a.s, a.d, a.dnet, a.factor_loglik, a.network_loglik),
        (b.s, b.d, b.dnet, b.factor_loglik, b.network_loglik), strict=True,
    ))  # fmt: skip
    with pytest.raises(ValueError, match="search"):
        fit.fit_coefficients(states, keys, labels, membership, search="random")
    with pytest.raises(ValueError, match="membership"):
        fit.fit_coefficients(states, keys, labels, membership[:, :2])
    with pytest.raises(ValueError, match="no labelled item"):
        fit.fit_coefficients(states, keys, np.full_like(labels, -1), membership)
