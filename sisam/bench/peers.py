"""The rankings sisam is measured against, over the same attributes, in the same run.

Every peer learns from a training frame of categorical attributes (one column per
attribute, any hashable values; a value never seen in training is "unseen") and the
binary outcome of its rows, and scores the rows of a test frame; higher scores are stopped
first. ``probabilistic`` peers return probabilities (their log loss is reported).

* ``BaseRate``: the training positive rate for every item: a constant, so the tie-aware
  metrics give it exactly the recall of **random selection**, and its log loss is the
  reference any informative model must beat.
* ``EntityProfile``: the simple baseline of customs fraud studies: each entity's smoothed
  error rate (k + m p) / (n + m), m = 10 pseudo-items at the base rate p, summed over the
  attributes.
* ``NaiveBayes`` and ``TreeAugmentedNaiveBayes``: pgmpy's structures (naive Bayes; TAN by
  pgmpy's ``TreeSearch(estimator_type="tan")``, conditional mutual information, maximum
  spanning tree) with pgmpy's K2 parameters (Dirichlet pseudo-count 1, over the states seen
  in training). The conditional tables are counted sparsely here, because pgmpy's dense
  ``TabularCPD`` of an attribute given a high-cardinality parent and the class would need
  card(x) * card(parent) * 2 cells (8e8 for importer given exporter); posteriors of a
  tree-structured network given every attribute are exact products, and a test
  (tests/test_bench_peers.py) checks them against pgmpy's own ``predict_probability``.
  pgmpy's tables have no state for a value unseen in training; here such a value carries
  no evidence (its term is left out; K2's 1 / (n(class) + K) would favour the rare class).
* ``LightGBM``: gradient boosting with LightGBM's native categorical splits (fixed
  parameters below, no tuning on the test data); unseen values are missing values.
* ``LogisticTargetEncoding``: scikit-learn's cross-fitted ``TargetEncoder`` then logistic
  regression.

LightGBM and scikit-learn are the ``bench`` extra: imported inside the peers only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sisam.errors import SisamError

#: Pseudo-items at the base rate that smooth an entity's error rate.
PROFILE_PSEUDO_ITEMS = 10.0
#: LightGBM's parameters: a common default-ish setting for a rare binary outcome with
#: high-cardinality categoricals; the same for every data set.
LIGHTGBM_PARAMS = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "min_data_per_group": 20,
    "cat_smooth": 10.0,
    "max_cat_threshold": 64,
    "verbose": -1,
}
LIGHTGBM_ROUNDS = 300


def encode_columns(train: pd.DataFrame, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int64[n_train, A] and int64[n_test, A] codes 0..K_a-1 of each column's training
    values (-1 in test for a value unseen in training), and int64[A] the K_a."""
    if list(train.columns) != list(test.columns):
        raise ValueError(f"train and test columns differ: {list(train.columns)} vs {list(test.columns)}")
    tr = np.empty(train.shape, dtype=np.int64)
    te = np.empty(test.shape, dtype=np.int64)
    cards = np.empty(train.shape[1], dtype=np.int64)
    for a, column in enumerate(train.columns):
        codes, uniques = pd.factorize(train[column], use_na_sentinel=False)
        tr[:, a] = codes
        te[:, a] = pd.Index(uniques).get_indexer(test[column])
        cards[a] = len(uniques)
    return tr, te, cards


@dataclass
class Peer(ABC):
    name: str
    probabilistic: bool = True
    key: str = ""  # how ``sisam bench --peers`` names it

    @abstractmethod
    def fit_predict(self, train: pd.DataFrame, y: np.ndarray, test: pd.DataFrame, seed: int = 0) -> np.ndarray:
        """float64[len(test)] scores after learning from ``train`` and its outcomes ``y``."""


@dataclass
class BaseRate(Peer):
    name: str = "random (base rate)"
    key: str = "random"

    def fit_predict(self, train, y, test, seed=0):
        return np.full(len(test), float(np.mean(y)) if len(y) else 0.0)


@dataclass
class EntityProfile(Peer):
    name: str = "entity risk profile"
    probabilistic: bool = False
    key: str = "profile"

    def fit_predict(self, train, y, test, seed=0):
        tr, te, cards = encode_columns(train, test)
        y = np.asarray(y, dtype=np.float64)
        p = float(y.mean()) if y.size else 0.0
        score = np.zeros(len(test))
        for a in range(tr.shape[1]):
            n = np.bincount(tr[:, a], minlength=cards[a] + 1).astype(np.float64)
            k = np.bincount(tr[:, a], weights=y, minlength=cards[a] + 1)
            rate = (k + PROFILE_PSEUDO_ITEMS * p) / (n + PROFILE_PSEUDO_ITEMS)
            # code -1 (unseen) reads the extra last slot: no items, the base rate
            score += rate[np.where(te[:, a] >= 0, te[:, a], cards[a])]
        return score


def _log_conditional(child: np.ndarray, parent: np.ndarray | None, c: np.ndarray,
                     child_test: np.ndarray, parent_test: np.ndarray | None,
                     k_child: int, k_parent: int) -> np.ndarray:
    """float64[n_test, 2]: ln P(child | parent, class) for class 0 and 1, K2 prior:
    (n(child, parent, class) + 1) / (n(parent, class) + K_child), counted sparsely."""
    if parent is None:
        parent, parent_test, k_parent = np.zeros_like(child), np.zeros_like(child_test), 1
    # test codes -1 (unseen) become K, a code no training row has
    child_test = np.where(child_test >= 0, child_test, k_child)
    parent_test = np.where(parent_test >= 0, parent_test, k_parent)
    out = np.empty((child_test.size, 2))
    for cls in (0, 1):
        rows = c == cls
        joint_train = parent[rows] * (k_child + 1) + child[rows]
        joint_keys, joint_n = np.unique(joint_train, return_counts=True)
        parent_keys, parent_n = np.unique(parent[rows], return_counts=True)
        out[:, cls] = np.log(_sparse_count(joint_keys, joint_n, parent_test * (k_child + 1) + child_test) + 1.0) - np.log(
            _sparse_count(parent_keys, parent_n, parent_test) + k_child
        )
    # An unseen value is no evidence: K2's 1 / (n(class) + K) would otherwise favour the
    # rare class for every value never seen (pgmpy has no state for it at all).
    out[child_test == k_child] = 0.0
    return out


def _sparse_count(keys: np.ndarray, counts: np.ndarray, query: np.ndarray) -> np.ndarray:
    at = np.clip(np.searchsorted(keys, query), 0, max(keys.size - 1, 0))
    hit = keys[at] == query if keys.size else np.zeros(query.size, bool)
    return np.where(hit, counts[at] if keys.size else 0, 0).astype(np.float64)


def _posterior(log_joint: np.ndarray) -> np.ndarray:
    """P(class 1) from float64[n, 2] log joint probabilities."""
    lo = log_joint[:, 1] - log_joint[:, 0]
    t = np.exp(-np.abs(lo))
    return np.where(lo >= 0, 1.0 / (1.0 + t), t / (1.0 + t))


def tan_parents(train_codes: np.ndarray, y: np.ndarray) -> list[int | None]:
    """The TAN structure from pgmpy: for each attribute, the index of its attribute parent
    (None for the tree's root, the first attribute)."""
    from sisam.pgmpy_adapter import tan_edges

    columns = [f"a{j}" for j in range(train_codes.shape[1])]
    if len(columns) < 2:
        return [None] * len(columns)
    data = pd.DataFrame(train_codes, columns=columns)
    data["_class"] = np.asarray(y, dtype=np.int64)
    parents: list[int | None] = [None] * len(columns)
    for u, v in tan_edges(data, "_class", columns[0]):
        if u != "_class":
            parents[columns.index(v)] = columns.index(u)
    return parents


@dataclass
class NaiveBayes(Peer):
    name: str = "naive Bayes (pgmpy)"
    key: str = "naive_bayes"
    tree: bool = False

    def fit_predict(self, train, y, test, seed=0):
        tr, te, cards = encode_columns(train, test)
        c = np.asarray(y, dtype=np.int64)
        parents = tan_parents(tr, c) if self.tree else [None] * tr.shape[1]
        n1 = float(c.sum())
        log_joint = np.tile(np.log([(c.size - n1 + 1.0) / (c.size + 2.0), (n1 + 1.0) / (c.size + 2.0)]), (len(test), 1))
        for a, p in enumerate(parents):
            log_joint += _log_conditional(
                tr[:, a], None if p is None else tr[:, p], c, te[:, a], None if p is None else te[:, p],
                int(cards[a]), 1 if p is None else int(cards[p]),
            )  # fmt: skip
        return _posterior(log_joint)


@dataclass
class TreeAugmentedNaiveBayes(NaiveBayes):
    name: str = "TAN (pgmpy)"
    key: str = "tan"
    tree: bool = True


@dataclass
class LightGBM(Peer):
    name: str = "LightGBM"
    key: str = "lightgbm"
    rounds: int = LIGHTGBM_ROUNDS
    threads: int = 2

    def fit_predict(self, train, y, test, seed=0):
        import lightgbm as lgb

        if _one_class(y):
            return BaseRate().fit_predict(train, y, test)
        tr, te, _ = encode_columns(train, test)
        params = {**LIGHTGBM_PARAMS, "seed": seed, "num_threads": self.threads, "deterministic": True}
        data = lgb.Dataset(tr.astype(np.int32), label=np.asarray(y, dtype=np.float64),
                           categorical_feature=list(range(tr.shape[1])), params=params)  # fmt: skip
        booster = lgb.train(params, data, num_boost_round=self.rounds)
        # negative codes (unseen values) are missing values for LightGBM's categorical splits
        return booster.predict(te.astype(np.int32))


@dataclass
class LogisticTargetEncoding(Peer):
    name: str = "logistic + target encoding"
    key: str = "logistic"

    def fit_predict(self, train, y, test, seed=0):
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold
        from sklearn.preprocessing import StandardScaler, TargetEncoder

        y = np.asarray(y, dtype=np.int64)
        minority = int(min(y.sum(), y.size - y.sum()))
        if minority < 2:  # nothing to cross-fit on
            return BaseRate().fit_predict(train, y, test)
        tr, te, _ = encode_columns(train, test)
        # five folds, fewer when a class has fewer items (a rare error in a small world)
        folds = StratifiedKFold(min(5, minority), shuffle=True, random_state=seed)
        encoder = TargetEncoder(target_type="binary", cv=folds)
        x_train = encoder.fit_transform(tr, y)  # cross-fitted: no row sees its own outcome
        x_test = encoder.transform(te)
        scaler = StandardScaler().fit(x_train)
        model = LogisticRegression(max_iter=5000).fit(scaler.transform(x_train), y)
        return model.predict_proba(scaler.transform(x_test))[:, 1]


def _one_class(y: np.ndarray) -> bool:
    """A training set with one outcome only teaches a constant: the base rate."""
    y = np.asarray(y, dtype=bool)
    return bool(y.all() or not y.any())


@dataclass
class PeerSet:
    """The peers of a run, in report order; ``extra_missing`` says why some were left out."""

    peers: list[Peer] = field(default_factory=list)
    extra_missing: str | None = None


#: Every peer in report order, with the modules it needs beyond sisam's own dependencies
#: (TAN's structure search needs scikit-learn).
PEERS: tuple[tuple[type[Peer], tuple[str, ...]], ...] = (
    (BaseRate, ()),
    (EntityProfile, ()),
    (NaiveBayes, ()),
    (TreeAugmentedNaiveBayes, ("sklearn",)),
    (LightGBM, ("lightgbm",)),
    (LogisticTargetEncoding, ("sklearn",)),
)
PEER_KEYS = tuple(kind().key for kind, _ in PEERS)


def default_peers() -> PeerSet:
    """Every peer whose dependencies are installed (LightGBM, scikit-learn: the bench extra)."""
    missing = sorted({m for _, needs in PEERS for m in needs if not _importable(m)})
    peers = [kind() for kind, needs in PEERS if not set(needs) & set(missing)]
    note = None
    if missing:
        note = f"not installed: {', '.join(missing)} (pip install 'sisam[bench]'); their peers were not run"
    return PeerSet(peers, note)


def choose_peers(keys: list[str]) -> PeerSet:
    """The peers named by ``keys`` (``PEER_KEYS``; none: no peer at all), in report order;
    the note names the peers left out. A chosen peer whose dependency is missing is an
    error, not a silent omission."""
    unknown = [k for k in keys if k not in PEER_KEYS]
    if unknown:
        raise SisamError(f"unknown peer(s) {', '.join(unknown)}; peers: {', '.join(PEER_KEYS)}")
    peers, left_out = [], []
    for kind, needs in PEERS:
        peer = kind()
        if peer.key not in keys:
            left_out.append(peer.name)
            continue
        missing = [m for m in needs if not _importable(m)]
        if missing:
            raise SisamError(f"peer {peer.key} needs {', '.join(missing)}: pip install 'sisam[bench]'")
        peers.append(peer)
    note = f"{', '.join(left_out)}: left out by choice (sisam bench --peers/--skip-peers)" if left_out else None
    return PeerSet(peers, note)


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
