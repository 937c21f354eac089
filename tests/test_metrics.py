import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sisam.metrics import pooled_recall, recall_curve, selected_count


def test_recall_of_a_perfect_and_a_reversed_ranking():
    truth = np.array([0] * 90 + [1] * 10, dtype=bool)
    perfect = truth.astype(float)
    (p5, p10, p20) = recall_curve(perfect, truth, (0.05, 0.10, 0.20))
    assert (p5.caught, p5.recall, p5.precision, p5.normalised_recall) == (5, 0.5, 1.0, 1.0)
    assert p10.recall == 1.0 and p20.recall == 1.0 and p20.precision == 0.5
    (worst,) = recall_curve(-perfect, truth, (0.10,))
    assert worst.caught == 0 and worst.normalised_recall == 0.0


def test_ties_earn_no_credit_from_input_order():
    # four tied items, positives first or last in the input: the same expected recall
    for truth in (np.array([True, False, False, False]), np.array([False, False, False, True])):
        (point,) = recall_curve(np.zeros(4), truth, (0.5,))
        assert point.selected == 2 and point.caught == pytest.approx(0.5)


def test_a_tie_group_straddling_the_cut_is_split_in_expectation():
    # ranked: 0.9 (positive), then five tied at 0.5 holding two positives, then 0.1
    scores = np.array([0.5, 0.9, 0.5, 0.1, 0.5, 0.5, 0.5])
    truth = np.array([1, 1, 0, 0, 1, 0, 0], bool)
    # 3 of 7 selected: the top item, then 2 of the 5 tied: 1 + 2 * 2 / 5 caught
    (point,) = recall_curve(scores, truth, (3 / 7,))
    assert point.selected == 3 and point.caught == pytest.approx(1.8)
    assert point.recall == pytest.approx(0.6) and point.precision == pytest.approx(0.6)


def test_a_constant_score_has_the_recall_of_random_selection():
    truth = np.random.default_rng(1).random(1000) < 0.05
    for point in recall_curve(np.full(1000, 0.3), truth):
        assert point.recall == pytest.approx(point.selected / 1000)


def test_nan_scores_rank_last():
    (point,) = recall_curve(np.array([np.nan, 0.1, 0.2]), np.array([True, False, False]), (2 / 3,))
    assert point.caught == 0.0


def test_selected_count_rounds_up_and_is_exact_on_round_rates():
    assert selected_count(1000, 0.01) == 10
    assert selected_count(999, 0.01) == 10
    assert selected_count(100, 0.07) == 7


def test_pooled_recall_sums_over_error_types():
    a_truth = np.array([1, 0, 0, 0], bool)
    b_truth = np.array([0, 1, 1, 0], bool)
    a = np.array([0.9, 0.1, 0.1, 0.1])
    b = np.array([0.1, 0.9, 0.2, 0.3])
    # each type selects its top 1 of 4: a catches 1 of 1, b catches 1 of 2
    assert pooled_recall([a, b], [a_truth, b_truth], 0.25) == pytest.approx(2 / 3)


@given(st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1, max_size=60))
def test_recall_is_monotone_and_bounded(rows):
    scores = np.array([r[0] for r in rows])
    truth = np.array([r[1] for r in rows])
    points = recall_curve(scores, truth)
    caught = [p.caught for p in points]
    assert caught == sorted(caught)
    for p in points:
        assert 0 <= p.caught <= min(p.selected, p.positives) + 1e-9
    # reversing the input order changes nothing: ties are split in expectation
    reversed_points = recall_curve(scores[::-1], truth[::-1])
    assert [p.caught for p in reversed_points] == pytest.approx(caught)
