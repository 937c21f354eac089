import numpy as np
import pytest

from sisam.bench.metrics import Outcome, auc, bootstrap_weights, evaluate, log_loss
from sisam.metrics import Ranking


def test_auc_counts_ties_as_half():
    assert auc(np.array([0.9, 0.8, 0.1]), np.array([True, False, False])) == 1.0
    assert auc(np.array([0.1, 0.8, 0.9]), np.array([True, False, False])) == 0.0
    assert auc(np.zeros(6), np.array([1, 0, 1, 0, 0, 0], bool)) == 0.5
    # one positive tied with one of two negatives: (1 + 0.5) / 2
    assert auc(np.array([0.5, 0.5, 0.1]), np.array([True, False, False])) == 0.75


def test_log_loss_of_known_probabilities():
    assert log_loss(np.array([0.5, 0.5]), np.array([True, False])) == pytest.approx(np.log(2))
    # a certain wrong answer costs about -ln(1e-15), not infinity
    assert 30 < log_loss(np.array([1.0]), np.array([False])) < 40


def test_weighted_cut_equals_repeating_the_items():
    scores = np.array([0.9, 0.5, 0.5, 0.2, 0.5])
    truth = np.array([0, 1, 0, 1, 1], float)
    weights = np.array([2, 0, 1, 3, 1], float)
    repeated = np.repeat(np.arange(5), weights.astype(int))
    cuts = np.arange(8, dtype=float)
    weighted = Ranking(scores).caught(truth * weights, weights, cuts)
    plain = Ranking(scores[repeated]).caught(truth[repeated], None, cuts)
    assert weighted == pytest.approx(plain)


def test_evaluate_hand_made_rankings():
    truth = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0], bool)
    value = np.array([100.0, 1, 1, 1, 300, 1, 1, 1, 1, 1])
    perfect = truth.astype(float)
    tied = np.zeros(10)
    table = evaluate(
        {"perfect": {"e": perfect}, "tied": {"e": tied}},
        [Outcome("e", truth, value)],
        probabilistic={"tied"},
        rates=(0.1, 0.2, 0.5),
        draws=50,
        seed=3,
    )
    assert table["outcomes"]["e"] == {"positives": 2, "value": 400.0}
    best = table["peers"]["perfect"]["outcomes"]["e"]
    assert best["recall"] == [0.5, 1.0, 1.0]
    assert best["normalised_recall"] == [1.0, 1.0, 1.0]
    assert best["precision"] == [1.0, 1.0, 0.4]
    # the perfect ranking ties both positives at 1.0: one of them at 10 %, in expectation
    assert best["value_captured"] == pytest.approx([0.5, 1.0, 1.0])
    assert best["auc"] == 1.0 and best["log_loss"] is None
    flat = table["peers"]["tied"]["outcomes"]["e"]
    assert flat["recall"] == pytest.approx([0.1, 0.2, 0.5])
    assert flat["auc"] == 0.5 and flat["log_loss"] == pytest.approx(0.2 * -np.log(1e-15))
    for low, high in best["recall_ci"]:
        assert 0.0 <= low <= high <= 1.0
    assert table["peers"]["perfect"]["pooled"]["recall"] == best["recall"]


def test_pooled_adds_caught_errors_over_outcomes():
    a = np.array([1, 0, 0, 0], bool)
    b = np.array([0, 1, 1, 0], bool)
    table = evaluate(
        {"p": {"a": np.array([0.9, 0.1, 0.1, 0.1]), "b": np.array([0.1, 0.9, 0.2, 0.3])}},
        [Outcome("a", a), Outcome("b", b)],
        rates=(0.25,),
        draws=10,
    )
    assert table["peers"]["p"]["pooled"]["recall"] == pytest.approx([2 / 3])
    assert table["peers"]["p"]["pooled"]["normalised_recall"] == pytest.approx([1.0])


def test_bootstrap_draws_are_seeded_and_sum_to_n():
    w = bootstrap_weights(20, 5, seed=9)
    assert (w.sum(axis=1) == 20).all()
    assert (w == bootstrap_weights(20, 5, seed=9)).all()
