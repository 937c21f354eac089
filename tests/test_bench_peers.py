import numpy as np
import pandas as pd
import pytest
from optional import require

from sisam.bench.peers import BaseRate, EntityProfile, NaiveBayes, encode_columns, tan_parents

require("sklearn")


def _tiny(seed: int, n: int = 400) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "a": rng.choice(["x", "y", "z"], n),
        "b": rng.choice(["p", "q"], n),
        "c": rng.choice(["u", "v", "w", "t"], n),
    })
    # the outcome needs a and c together: an interaction TAN can use and naive Bayes cannot
    risk = 0.05 + 0.6 * ((frame["a"] == "x") & (frame["c"] == "u")).to_numpy()
    return frame, (rng.random(n) < risk).astype(np.int64)


def test_encode_columns_marks_unseen_values():
    tr, te, cards = encode_columns(pd.DataFrame({"a": ["x", "y", "x"]}), pd.DataFrame({"a": ["y", "new"]}))
    assert tr[:, 0].tolist() == [0, 1, 0] and te[:, 0].tolist() == [1, -1] and cards.tolist() == [2]


def test_base_rate_and_entity_profile_by_hand():
    train = pd.DataFrame({"importer": ["A", "A", "B", "B", "B"]})
    y = np.array([1, 1, 0, 0, 0])
    test = pd.DataFrame({"importer": ["A", "B", "C"]})
    assert BaseRate().fit_predict(train, y, test).tolist() == [0.4, 0.4, 0.4]
    # (k + 10 p) / (n + 10), p = 0.4; an unseen entity gets p
    assert EntityProfile().fit_predict(train, y, test) == pytest.approx([6 / 12, 4 / 13, 0.4])


@pytest.mark.parametrize("tree", [False, True])
def test_naive_bayes_and_tan_equal_pgmpy_fitted_with_k2(tree):
    from sisam.pgmpy_adapter import _pgmpy

    _pgmpy()  # imports pgmpy's modules with its own import-time warnings silenced
    from pgmpy.models import DiscreteBayesianNetwork
    from pgmpy.parameter_estimator import DiscreteBayesianEstimator

    frame, y = _tiny(4)
    ours = NaiveBayes(tree=tree).fit_predict(frame, y, frame)
    tr, _, _ = encode_columns(frame, frame)
    parents = tan_parents(tr, y) if tree else [None] * 3
    edges = [("y", col) for col in frame.columns]
    edges += [(frame.columns[p], frame.columns[a]) for a, p in enumerate(parents) if p is not None]
    model = DiscreteBayesianNetwork(edges)
    data = frame.assign(y=y)
    model.fit(data, estimator=DiscreteBayesianEstimator(prior_type="K2"))
    theirs = model.predict_probability(frame)["y_1"].to_numpy()
    assert ours == pytest.approx(theirs, abs=1e-9)
    if tree:
        assert sum(p is not None for p in parents) == 2  # a tree over the three attributes


def test_lightgbm_and_logistic_rank_the_risky_combination_first():
    require("lightgbm")
    from sisam.bench.peers import LightGBM, LogisticTargetEncoding

    frame, y = _tiny(5, 2000)
    test = pd.DataFrame({"a": ["x", "y", "new"], "b": ["p", "p", "p"], "c": ["u", "v", "u"]})
    for peer in (LightGBM(rounds=30), LogisticTargetEncoding()):
        p = peer.fit_predict(frame, y, test, seed=1)
        assert p.shape == (3,) and ((p > 0) & (p < 1)).all()
        assert p[0] > p[1], peer.name


def test_an_unseen_value_is_no_evidence():
    train = pd.DataFrame({"a": ["x"] * 50 + ["y"] * 50})
    y = np.array([1] * 5 + [0] * 95)
    p = NaiveBayes().fit_predict(train, y, pd.DataFrame({"a": ["new"]}))
    assert p[0] == pytest.approx((5 + 1) / (100 + 2))
