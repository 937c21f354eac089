"""Faithful attribution: the contributions are the terms of the very sum the scorer
evaluates (hpb.md, "Why explanations come for free"), in the item's own terms."""

from __future__ import annotations

import numpy as np
import pytest
from explanation_world import memory_version, random_frame, random_labels

from sisam.attribution import PatternPart, attribute, iter_attributions
from sisam.engine.network import logistic
from sisam.knowledge import load_knowledge
from sisam.model import Scorer

SEEDS = range(6)


@pytest.fixture(scope="module")
def knowledge():
    return load_knowledge()


def random_scorer(knowledge, seed: int, n_items: int = 400) -> Scorer:
    history = random_frame(seed, n_items, n_importers=4 + seed)
    return Scorer(memory_version(knowledge, history, random_labels(history, seed, inspected=0.3 + 0.1 * seed), seed), knowledge)


@pytest.mark.parametrize("seed", SEEDS)
def test_contributions_sum_to_the_lift_and_probabilities_are_the_scorers(knowledge, seed: int):
    """For random worlds and coefficients drawn from the whole grid (S from 0.25 to 100, d
    and dnet from 0.5 to 3): every (item, label) decomposes exactly, and the scores are
    the scorer's to the last bit."""
    scorer = random_scorer(knowledge, seed)
    items = random_frame(seed + 50, 120, n_importers=8)
    attribution = attribute(scorer, items)
    lift = attribution.network - attribution.base[None, :]
    assert np.abs(attribution.total() - lift).max() <= 1e-9
    assert np.array_equal(attribution.probability, scorer.probabilities(items))
    for i in (0, 57, 119):
        for label in ("hs_code", "undervaluation", "any"):
            decomposition = attribution.error(i, label)
            total = sum(c.contribution for c in decomposition.contributions) + decomposition.root_offset
            assert total == pytest.approx(decomposition.lift, abs=1e-9)
            assert decomposition.probability == attribution.probability[i, attribution.label_index(label)]


def test_every_pattern_of_the_network_with_its_counts(knowledge):
    scorer = random_scorer(knowledge, 3)
    attribution = attribute(scorer, random_frame(77, 30))
    decomposition = attribution.error(4, "hs_code")
    network = knowledge.networks["hs_code"].factors
    sizes = {name: plan.lattice.n_shapes for name, plan in scorer.plans.items()}
    assert len(decomposition.contributions) == sum(sizes[f] for f in network)
    assert [c.factor for c in decomposition.contributions] == [f for f in scorer.plans if f in network for _ in range(sizes[f])]
    for c in decomposition.contributions:
        assert 0.0 <= c.k <= c.n
        assert c.prior == pytest.approx(float(logistic(c.lo_prior)))
        assert c.contribution == pytest.approx(c.weight * (c.lo_posterior - c.lo_prior), rel=1e-12, abs=1e-15)
        if c.n == 0.0:  # never inspected: the prior stands, nothing contributed
            assert c.lo_posterior == c.lo_prior and c.contribution == 0.0
    root = decomposition.contributions[0]
    assert root.pattern == () and root.contribution == 0.0
    assert root.lo_posterior == decomposition.base_log_odds


def test_patterns_in_the_items_own_terms(knowledge):
    scorer = random_scorer(knowledge, 1)
    items = random_frame(5, 10)
    items.loc[0, ["hs_code", "importer_id", "origin_country", "customs_office"]] = ["84818099", " IMP00001 ", "CN", "0817600"]
    items.loc[0, ["customs_value_usd", "preferential_claim"]] = [12_000.0, ""]
    attribution = attribute(scorer, items)
    classification = list(scorer.plans).index("classification")
    lattice = scorer.plans["classification"].lattice
    heading_only = next(s for s in range(lattice.n_shapes) if lattice.levels[s].tolist() == [2, 1, 1, 1])
    assert attribution.pattern(0, classification, heading_only) == (PatternPart("hs_code", "prefix:4", "8481"),)
    full = attribution.pattern(0, classification, lattice.n_shapes - 1)
    assert full == (
        PatternPart("hs_code", "value", "84818099"),
        PatternPart("importer", "value", "IMP00001"),  # stripped, as the level codes are
        PatternPart("origin", "value", "CN"),
        PatternPart("office", "value", "0817600"),
    )
    goods_value = list(scorer.plans).index("goods_value")
    value_lattice = scorer.plans["goods_value"].lattice
    value_only = next(s for s in range(value_lattice.n_shapes) if value_lattice.levels[s].tolist() == [3, 0, 2])
    # 2**13 <= 12,000 < 2**14
    assert attribution.pattern(0, goods_value, value_only) == (PatternPart("value_band", "log2band:1", "[8192, 16384)", 13),)
    claims = list(scorer.plans).index("claims")
    claims_lattice = scorer.plans["claims"].lattice
    claim_only = next(s for s in range(claims_lattice.n_shapes) if claims_lattice.levels[s].tolist() == [1, 1, 0, 2])
    assert attribution.pattern(0, claims, claim_only) == (PatternPart("preferential_claim", "value", ""),)


def test_same_group_of_items_same_identity_across_factors(knowledge):
    """The importer alone, in two factors: two keys (factors are salted), one identity
    and the same counts; the heading through ``hs_code`` and through ``hs_heading`` too."""
    scorer = random_scorer(knowledge, 2)
    attribution = attribute(scorer, random_frame(9, 20))
    by_name = {f.name: f for f in attribution.factors}

    def shape(factor: str, levels: list[int]) -> int:
        lattice = by_name[factor].lattice
        return next(s for s in range(lattice.n_shapes) if lattice.levels[s].tolist() == levels)

    a, b = by_name["classification"], by_name["trade_pair"]
    importer_a, importer_b = shape("classification", [4, 0, 1, 1]), shape("trade_pair", [0, 1, 2])
    assert (a.keys[:, importer_a] != b.keys[:, importer_b]).all()
    assert (a.identities[:, importer_a] == b.identities[:, importer_b]).all()
    assert np.array_equal(a.trace.n[:, importer_a], b.trace.n[:, importer_b])
    heading_a, heading_b = shape("classification", [2, 1, 1, 1]), shape("trade_pair", [1, 1, 0])
    assert (a.identities[:, heading_a] == b.identities[:, heading_b]).all()
    # a different group: the heading with the importer
    assert (a.identities[:, heading_a] != a.identities[:, shape("classification", [2, 0, 1, 1])]).all()


def test_the_any_clip_is_recorded_when_it_applies(knowledge):
    clipped = 0
    for seed in SEEDS:
        attribution = attribute(random_scorer(knowledge, seed), random_frame(seed + 9, 60))
        for i in range(attribution.n_items):
            decomposition = attribution.error(i, "any")
            moved = attribution.log_odds[i, -1] != attribution.network[i, -1]
            assert (decomposition.clip is not None) == moved
            if moved:
                clipped += 1
                assert decomposition.clip.network_log_odds == decomposition.network_log_odds
                errors = attribution.network[i, :-1]
                if decomposition.clip.bound == "lower":  # raised to the most probable error
                    assert decomposition.log_odds == errors.max()
            # the 30 error types are never clipped
            assert decomposition.lift == attribution.network[i, -1] - attribution.base[-1]
    assert clipped > 0, "the random worlds should exercise the clip"


def test_slices_give_the_same_bits(knowledge):
    scorer = random_scorer(knowledge, 4)
    items = random_frame(31, 50).reset_index(drop=True)
    whole = attribute(scorer, items)
    parts = np.concatenate([a.probability for _, a in iter_attributions(scorer, items, chunk=16)])
    assert np.array_equal(parts, whole.probability)
