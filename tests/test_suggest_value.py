"""Suggested codes (sisam.suggest) and expected value at stake (sisam.value): hand-checked
figures on tiny tables, then learning, updating and scoring on a small generated world."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sisam import kb, suggest, value
from sisam.engine.fit import S_GRID
from sisam.errors import SisamError
from sisam.knowledge import load_knowledge
from sisam.model import Scorer, learn
from sisam.synth import generate_world


def _suggester(pairs: list[tuple[str, str]], declared_codes: dict[str, float], s: float) -> suggest.Suggester:
    d = np.array([p[0] for p in pairs], dtype=object)
    r = np.array([p[1] for p in pairs], dtype=object)
    codes = {"code": np.array(list(declared_codes), dtype=object), "n": np.array(list(declared_codes.values()))}
    return suggest.Suggester(suggest.count_pairs(d, r, np.array(["imp"] * len(d), dtype=object)), codes, s)


def _dict_suggestion(s: suggest.Suggester, declared: str, importer: str | None) -> suggest.Suggestion:
    """The plain reference of a suggestion: ``posterior``'s dicts, sorted by (-p, code)."""
    candidates = s.candidates(declared)
    if not candidates:
        return suggest.Suggestion((), ())
    p = s.posterior(declared, candidates, importer=importer)
    total = sum(p.values())
    best = sorted(p, key=lambda c: (-p[c], c))[:suggest.TOP]
    return suggest.Suggestion(tuple(best), tuple(p[c] / total for c in best)) if total > 0 else suggest.Suggestion((), ())


_CODE = st.sampled_from(["84818010", "84818020", "84819000", "84821000", "8482", "85171200", "85176200",
                         "85176299", "87032310", "01012100", "", "9"])


@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(st.tuples(_CODE, _CODE, st.sampled_from(["x", "y", "z"])), max_size=40),
       declared=st.dictionaries(_CODE.filter(bool), st.integers(1, 500).map(float), min_size=1),
       items=st.lists(st.tuples(_CODE, st.sampled_from(["x", "y", "z", "w"])), min_size=1, max_size=30),
       s=st.sampled_from(S_GRID))
def test_array_posterior_and_suggest_all_equal_the_dict_reference_bit_for_bit(pairs, declared, items, s):
    d, r, i = suggest.error_pairs(*(np.array([pair[j] for pair in pairs], dtype=object) for j in range(3)))
    codes = {"code": np.array(sorted(declared), dtype=object), "n": np.array([declared[c] for c in sorted(declared)])}
    suggester = suggest.Suggester(suggest.count_pairs(d, r, i), codes, s)
    for code, importer in items:
        candidates = suggester.candidates(code)
        reference = np.array(list(suggester.posterior(code, candidates, importer=importer).values()))
        array = suggester._posterior_array(code, sorted(candidates), importer)
        assert reference.tobytes() == array.tobytes()
    found = suggester.suggest_all(np.array([c for c, _ in items], dtype=object), np.array([w for _, w in items], dtype=object))
    for (code, importer), suggestion in zip(items, found, strict=True):
        own = (suggest.IMPORTER_LEVEL, f"{importer}/{code}") in suggester.context
        assert suggestion == _dict_suggestion(suggester, code, importer if own else None)
    # a second call (a later chunk of the same file) reads what the first remembered, and
    # computes what it did not: half the items again, in another order, with other importers
    again = items[::-2] + [(code, "x") for code, _ in items]
    found_again = suggester.suggest_all(np.array([c for c, _ in again], dtype=object), np.array([w for _, w in again], dtype=object))
    for (code, importer), suggestion in zip(again, found_again, strict=True):
        own = (suggest.IMPORTER_LEVEL, f"{importer}/{code}") in suggester.context
        assert suggestion == _dict_suggestion(suggester, code, importer if own else None)


def test_an_importer_context_of_a_code_without_candidates_gets_no_suggestion():
    # "imp/x" declaring "85" and "imp" declaring "x/85" share the context string "imp/x/85";
    # with no declared codes, "x/85" has no candidates: no suggestion, for its importers too
    pairs = suggest.count_pairs(np.array(["85"], dtype=object), np.array(["84"], dtype=object),
                                np.array(["imp/x"], dtype=object))
    empty = {"code": np.array([], dtype=object), "n": np.array([])}
    found = suggest.Suggester(pairs, empty, 1.0).suggest_all(np.array(["x/85"], dtype=object), np.array(["imp"], dtype=object))
    assert found == [suggest.Suggestion((), ())]


CODES_TABLE = {"code": np.array(["84818010", "84818020", "84819000"], dtype=object), "n": np.array([50.0, 30.0, 10.0])}
CODES = {"84818010": 50.0, "84818020": 30.0, "84819000": 10.0, "84821000": 5.0, "85171200": 40.0, "85176200": 1.0}


def test_suggestions_follow_the_pairs_then_the_hierarchy_then_all_declarations():
    pairs = [("84818010", "84818020")] * 4 + [("84818010", "84819000")] + [("85171200", "85176200")] * 2
    s = _suggester(pairs, CODES, 1.0)
    seen = s.suggest("84818010")
    assert seen.codes[:2] == ("84818020", "84819000")
    assert "84818010" not in seen.codes
    assert list(seen.probabilities) == sorted(seen.probabilities, reverse=True) and sum(seen.probabilities) <= 1 + 1e-12
    # never seen corrected: the subheading's pairs teach, and the declared code is excluded
    unseen = s.suggest("84818020")
    assert unseen.codes[0] == "84819000" and "84818020" not in unseen.codes
    # a chapter with no pair at all: the most declared neighbours, nearest first
    assert s.suggest("84821000").codes[0] in {"84818010", "84818020"}
    # an importer's own corrections of a line come first for its items, not for others'
    d = np.array(["84818010"] * 6, dtype=object)
    r = np.array(["84818020"] * 4 + ["84819000"] * 2, dtype=object)
    own = suggest.Suggester(suggest.count_pairs(d, r, np.array(["x"] * 4 + ["y"] * 2, dtype=object)), CODES_TABLE, 1.0)
    assert own.suggest_all(np.array(["84818010"] * 3, dtype=object), np.array(["x", "y", "z"], dtype=object))[1].codes[0] == "84819000"
    assert own.suggest("84818010", importer="x").codes[0] == own.suggest("84818010").codes[0] == "84818020"
    assert own.support("84818010", "y") == (suggest.IMPORTER_LEVEL, "y/84818010", 2.0)
    # the root: 4 pairs agree on 6 digits, 3 on 4 (8481 and 8517), add-one smoothed over 4 levels
    assert s.pi == {6: (4 + 1) / (7 + 4), 4: (3 + 1) / (7 + 4), 2: (0 + 1) / (7 + 4), 0: (0 + 1) / (7 + 4)}


def test_smoothing_is_chosen_by_leave_one_out_and_pairs_merge_with_decay():
    pairs = [("84818010", "84818020")] * 6 + [("84818020", "84818010")] * 3
    d = np.array([p[0] for p in pairs], dtype=object)
    r = np.array([p[1] for p in pairs], dtype=object)
    importers = np.array(["a"] * 5 + ["b"] * 4, dtype=object)
    table = suggest.count_pairs(d, r, importers)
    codes = suggest.count_codes(np.array(list(CODES), dtype=object))
    fitted = suggest.fit_smoothing(table, codes, d, r, importers)
    best = fitted["S"][0]
    assert best in S_GRID
    assert all(suggest.Suggester(table, codes, best).loo_loglik(d, r, importers)
               >= suggest.Suggester(table, codes, s).loo_loglik(d, r, importers) for s in S_GRID)
    merged = suggest.merge_pairs(table, table, 0.5)
    assert np.allclose(merged["k"], 1.5 * table["k"]) and list(merged["code"]) == list(table["code"])
    assert suggest.merge_codes(codes, codes, 0.5)["n"].tolist() == [1.5] * len(CODES)


def test_leave_one_out_by_the_chain_equals_the_whole_posterior_with_the_pair_removed():
    rng = np.random.default_rng(3)
    lines = sorted({f"{rng.choice(['84', '85'])}{rng.integers(0, 10**6):06d}" for _ in range(120)})
    codes = {"code": np.array(lines, dtype=object), "n": rng.integers(1, 50, len(lines)) * 0.8 ** rng.integers(0, 9, len(lines))}
    declared = np.array([lines[i] for i in rng.integers(0, 15, 300)], dtype=object)
    rectified = np.array([lines[i] for i in rng.integers(0, len(lines), 300)], dtype=object)
    importers = np.array([f"imp{i}" for i in rng.integers(0, 6, 300)], dtype=object)
    d, r, i = suggest.error_pairs(declared, rectified, importers)
    suggester = suggest.Suggester(suggest.count_pairs(d, r, i), codes, 1.0)
    for s in (0.25, 2.5, 100.0):
        suggester.s = s
        reference = 0.0
        for dj, rj, ij in zip(d, r, i, strict=True):
            p = suggester.posterior(dj, suggester.candidates(dj) | {rj}, leave_out=rj, importer=ij)
            reference += np.log(p[rj] / sum(p.values()))
        assert suggester.loo_loglik(d, r, i) == pytest.approx(reference, rel=1e-12, abs=1e-12)


def _rows(**columns) -> pd.DataFrame:
    base = {"hs_code": "84818010", "customs_value_usd": 1000.0, **dict.fromkeys(value.RATES, 0.0)}
    base.update(import_duty_rate=10.0, ipi_rate=5.0, pis_rate=2.1, cofins_rate=9.65)
    frame = pd.DataFrame([base] * 3)
    for name, values in columns.items():
        frame[name] = values
    return frame


def test_recovered_share_of_each_tax_error_from_the_contract_columns():
    knowledge = load_knowledge()
    declared = _rows()
    rectified = _rows(import_duty_rate=[14.0, 10.0, 6.0], customs_value_usd=[1000.0, 1500.0, 1000.0])
    ratios = value.recovered_ratios(declared, rectified, knowledge)
    assert ratios["import_duty_rate"] == pytest.approx([0.04, 0.0, 0.0])  # a lowered duty recovers nothing
    assert ratios["undervaluation"] == pytest.approx([0.0, 500 * 26.75 / 100 / 1000, 0.0])
    assert ratios["ipi_rate"].tolist() == [0.0, 0.0, 0.0]
    assert value.tax(declared)[0] == pytest.approx(1000 * 26.75 / 100)


def test_recovery_is_smoothed_along_the_code_and_weighted_by_probabilities():
    codes = np.array(["84818010", "84818010", "84819000", "85171200"], dtype=object)
    ratios = {e: np.zeros(4) for e in value.TAX_ERRORS}
    ratios["import_duty_rate"] = np.array([0.10, 0.06, 0.02, 0.0])
    found = {e: r > 0 for e, r in ratios.items()}
    table = value.count_amounts(codes, ratios, found)
    recovery = value.Recovery(table, {"import_duty_rate": 1.0})
    root = 0.18 / 3
    ch84 = (0.18 + root) / 4
    hs4 = (0.18 + ch84) / 4
    hs6_8481 = (0.16 + hs4) / 3  # 848180
    line = (0.16 + hs6_8481) / 3
    assert recovery.ratio("import_duty_rate", "84818010") == pytest.approx(line)
    assert recovery.ratio("import_duty_rate", "85171200") == pytest.approx(root)  # no item of chapter 85 had it
    frame = pd.DataFrame({"hs_code": ["84818010"], "customs_value_usd": [2000.0]})
    p = {e: np.array([0.0]) for e in value.TAX_ERRORS}
    p["import_duty_rate"] = np.array([0.5])
    assert recovery.expected(frame, p)[0] == pytest.approx(2000 * 0.5 * line)
    fitted = value.fit_smoothing(table, codes, ratios, found)
    assert set(fitted["S"]) <= set(S_GRID) and list(fitted["error"]) == list(value.TAX_ERRORS)


@pytest.fixture(scope="module")
def small_world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("suggest") / "world"
    generate_world(12_000, 90, 5, out, test_days=15)
    return out


def test_learn_stores_the_tables_update_merges_them_and_scores_carry_the_columns(small_world: Path, tmp_path: Path):
    knowledge = load_knowledge()
    history = pd.read_parquet(small_world / "history.parquet")
    rectified = pd.read_parquet(small_world / "rectified.parquet")
    first, second = history[history["date"] < history["date"].quantile(0.7)], history[history["date"] >= history["date"].quantile(0.7)]
    for name, part in (("first", first), ("second", second)):
        part.to_parquet(tmp_path / f"{name}.parquet")
        part[["declaration_id", "item_no"]].merge(rectified).to_parquet(tmp_path / f"{name}-rect.parquet")
    learn(tmp_path / "first.parquet", tmp_path / "first-rect.parquet", tmp_path / "kb", knowledge=knowledge, fit_sample=500)
    v1 = kb.open_version(tmp_path / "kb")
    learn(tmp_path / "second.parquet", tmp_path / "second-rect.parquet", tmp_path / "kb", knowledge=knowledge,
          update=True, half_life_days=30.0, fit_sample=500)
    v2 = kb.open_version(tmp_path / "kb")
    decay = v2.record.decay_factor
    assert 0 < decay < 1
    batch = suggest.count_codes(second["hs_code"].to_numpy())
    expected = suggest.merge_codes(v1.tables[suggest.CODES_TABLE], batch, decay)
    assert np.allclose(v2.tables[suggest.CODES_TABLE]["n"], expected["n"])
    n_pairs = v2.tables[suggest.PAIRS_TABLE]["k"][v2.tables[suggest.PAIRS_TABLE]["level"] == 0].sum()
    declared = history.merge(rectified, on=["declaration_id", "item_no"], suffixes=("", "_r"))
    assert 0 < n_pairs <= (declared["hs_code"] != declared["hs_code_r"]).sum()

    # a daily batch too small to refit: counts added, coefficients kept bit for bit
    learn(tmp_path / "second.parquet", tmp_path / "second-rect.parquet", tmp_path / "kb", knowledge=knowledge,
          update=True, half_life_days=30.0, keep_coefficients=True)
    v3 = kb.open_version(tmp_path / "kb")
    assert v3.version == v2.version + 1 and v3.counts[next(iter(v3.counts))].n.sum() > v2.counts[next(iter(v2.counts))].n.sum()
    for factor, coefficients in v2.coefficients.items():
        assert all(np.array_equal(coefficients[c], v3.coefficients[factor][c]) for c in coefficients)
    assert np.array_equal(v2.network_coefficients["dnet"], v3.network_coefficients["dnet"])
    with pytest.raises(SisamError, match="keeping coefficients needs a knowledge base"):
        learn(tmp_path / "first.parquet", tmp_path / "first-rect.parquet", tmp_path / "other", keep_coefficients=True)

    scorer = Scorer(v2, knowledge)
    test = pd.read_parquet(small_world / "test.parquet")
    scores = scorer.score_frame(test)
    assert list(scores.columns[: 33]) == ["declaration_id", "item_no", *(f"p_{label}" for label in knowledge.label_ids)]
    assert (scores[value.COLUMN] >= 0).all() and scores[value.COLUMN].max() > 0
    assert (scores["hs_code_suggested_1"] != test["hs_code"]).all()
    p1, p2 = scores["hs_code_suggested_1_probability"], scores["hs_code_suggested_2_probability"]
    assert ((p1 >= p2) | p2.isna()).all() and p1.between(0, 1).all()


def test_value_captured_splits_ties_and_the_report_ranks_by_value(small_world: Path, tmp_path: Path):
    from sisam.metrics import value_captured
    from sisam.model import score
    from sisam.report import build_report

    assert value_captured(np.array([3.0, 2.0, 1.0, 0.0]), np.array([0.0, 5.0, 5.0, 10.0]), (0.25, 0.5, 1.0)) == [0.0, 0.25, 1.0]
    assert value_captured(np.zeros(4), np.array([0.0, 5.0, 5.0, 10.0]), (0.5,)) == [0.5]

    learn(small_world / "history.parquet", small_world / "rectified.parquet", tmp_path / "kb", fit_sample=500)
    score(small_world / "test.parquet", tmp_path / "kb", tmp_path / "scores.parquet")
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    build_report(tmp_path / "scores.parquet", tmp_path / "worklist.html", top=3, rank_by="value")
    page = (tmp_path / "worklist.html").read_text()
    best = scores.sort_values(value.COLUMN, ascending=False).iloc[:3]
    positions = [page.index(f"{d}") for d in best["declaration_id"]]
    assert positions == sorted(positions)
