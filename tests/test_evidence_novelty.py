"""Novelty evidence (sisam.evidence.novelty): the subject's age, first-time combinations,
time order at learning, tables that add up, the catalog checks."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sisam.evidence import (
    count_evidence,
    evidence_facts,
    merge_evidence,
    prepare_evidence,
)
from sisam.evidence.novelty import Novelty
from sisam.knowledge import load_knowledge


@pytest.fixture(scope="module")
def shipped() -> dict[str, Novelty]:
    """The shipped entry: the importer's age alone."""
    knowledge = load_knowledge()
    return {"importer_novelty": Novelty(knowledge.evidence["importer_novelty"], knowledge)}


@pytest.fixture(scope="module")
def models() -> dict[str, Novelty]:
    """The entry with the three companions the issue names: heading, exporter, origin."""
    knowledge = load_knowledge()
    spec = replace(knowledge.evidence["importer_novelty"],
                   options={"subject": "importer", "companions": ["hs_heading", "exporter", "origin"]})
    return {"importer_novelty": Novelty(spec, knowledge)}


def frame(rows: list[tuple[str, str, str, str, str]]) -> pd.DataFrame:
    """rows of (date, importer, hs_code, exporter, origin)."""
    return pd.DataFrame(rows, columns=["date", "importer_id", "hs_code", "exporter_id", "origin_country"])


def earlier(models, tables, f, own):
    model = models["importer_novelty"]
    return model.earlier(prepare_evidence(models, tables).prepared["importer_novelty"], f, own, None)


def test_a_first_heading_exporter_and_origin_show_in_the_band(models):
    # the importer's first declaration 31 days before: age digit 2 (30 to 89 days)
    history = frame([("2024-01-01", "I1", "84713012", "E1", "CN")] * 6)
    tables = count_evidence(models, history)
    new = frame([
        ("2024-02-01", "I1", "84713012", "E1", "CN"),   # all usual
        ("2024-02-01", "I1", "30049099", "E2", "CN"),   # new heading and exporter, usual origin
        ("2024-02-01", "I9", "84713012", "E1", "CN"),   # a new importer: every pair is new
    ])
    prepared = prepare_evidence(models, tables)
    bands = models["importer_novelty"].bands(prepared.prepared["importer_novelty"], new, own_rows_counted=False)
    assert list(bands) == ["n2222", "n2002", "n0000"]


def test_history_rows_count_only_earlier_declarations(models):
    # file order is not time order: the pair's first declaration (by date) is the last row
    history = frame([("2024-01-0" + str(d), "I1", "84713012", "E1", "CN") for d in (3, 4, 5, 6, 7, 8, 2)])
    counted = earlier(models, count_evidence(models, history), history, True)
    assert counted[:, 0].tolist() == [1, 2, 3, 4, 5, 6, 0]
    bands = models["importer_novelty"].bands(
        prepare_evidence(models, count_evidence(models, history)).prepared["importer_novelty"], history,
        own_rows_counted=True,
    )
    # Jan 3: one earlier row, a day old (age 1); Jan 8: six earlier rows, still age 1
    assert bands[-1] == "n0000" and bands[0] == "n1111" and bands[5] == "n1222"


def test_the_age_digit_follows_days_not_counts(shipped):
    history = frame([("2024-01-01", "BIG", "84713012", "E1", "CN")] * 40 + [("2024-01-01", "OLD", "84713012", "E1", "CN")])
    tables = count_evidence(shipped, history)
    assert tables["importer_novelty"]["subjects"]["first_day"].tolist() == [19723, 19723]  # 2024-01-01
    items = frame([("2024-01-29", "BIG", "84713012", "E1", "CN"),   # 28 days, 40 earlier: still new
                   ("2024-01-31", "OLD", "84713012", "E1", "CN"),   # 30 days: second band
                   ("2024-03-30", "OLD", "84713012", "E1", "CN"),   # 89 days
                   ("2024-03-31", "OLD", "84713012", "E1", "CN"),   # 90 days: old
                   ("", "OLD", "84713012", "E1", "CN"),             # no date: known, age unknown
                   ("2024-03-31", "NEW", "84713012", "E1", "CN")])  # never declared
    bands = shipped["importer_novelty"].bands(prepare_evidence(shipped, tables).prepared["importer_novelty"], items,
                                              own_rows_counted=False)
    assert list(bands) == ["n1", "n2", "n2", "n3", "n3", "n0"]


def test_an_update_batch_measures_age_from_the_first_batch(shipped):
    old = frame([("2024-01-01", "I1", "84713012", "E1", "CN")])
    batch = frame([("2024-02-15", "I1", "84713012", "E1", "CN"), ("2024-02-15", "I2", "84713012", "E1", "CN"),
                   ("2024-02-16", "I2", "84713012", "E1", "CN")])
    tables = merge_evidence(count_evidence(shipped, old), count_evidence(shipped, batch), 0.5)
    assert tables["importer_novelty"]["subjects"]["first_day"].tolist() == [19723, 19768]
    bands = shipped["importer_novelty"].bands(prepare_evidence(shipped, tables).prepared["importer_novelty"], batch,
                                              own_rows_counted=True)
    assert list(bands) == ["n2", "n0", "n1"]


def test_first_days_merge_to_the_earliest_whatever_the_order(shipped):
    early = frame([("2024-01-01", "I1", "84713012", "E1", "CN")])
    late = frame([("2024-05-01", "I1", "84713012", "E1", "CN")])
    for a, b in ((early, late), (late, early)):
        merged = merge_evidence(count_evidence(shipped, a), count_evidence(shipped, b), 1.0)
        assert merged["importer_novelty"]["subjects"]["first_day"].tolist() == [19723]


def test_earlier_batches_count_in_full(models):
    old = frame([("2024-01-01", "I1", "84713012", "E1", "CN")] * 3)
    batch = frame([("2024-02-01", "I1", "84713012", "E1", "CN")] * 2)
    tables = merge_evidence(count_evidence(models, old), count_evidence(models, batch), 1.0)
    assert earlier(models, tables, batch, True)[:, 1].tolist() == [3, 4]


def brute_force(rows: list[tuple[str, str, str, str, str]]) -> np.ndarray:
    """Plain-Python twin: per row, earlier rows (date, then file order) sharing the importer,
    then the importer with the heading, the exporter, the origin."""
    out = np.zeros((len(rows), 4))
    for i, (d, imp, code, exp, org) in enumerate(rows):
        for j, (d2, imp2, code2, exp2, org2) in enumerate(rows):
            if (d2, j) >= (d, i) or imp2 != imp:
                continue
            out[i] += [1, code2[:4] == code[:4], exp2 == exp, org2 == org]
    return out


def brute_force_bands(rows: list[tuple[str, str, str, str, str]]) -> list[str]:
    """Plain-Python twin of the bands: the importer's age from its earliest earlier row, then
    the pairs' counts."""
    counts = brute_force(rows)
    out = []
    for i, (d, imp, *_) in enumerate(rows):
        earlier = [date.fromisoformat(d2) for j, (d2, imp2, *_) in enumerate(rows) if (d2, j) < (d, i) and imp2 == imp]
        age = 0 if not earlier else 1 if (date.fromisoformat(d) - min(earlier)).days < 30 else 2 if (
            date.fromisoformat(d) - min(earlier)).days < 90 else 3
        out.append("n" + str(age) + "".join("0" if c == 0 else "1" if c <= 4 else "2" for c in counts[i, 1:]))
    return out


row = st.tuples(
    st.sampled_from(["2024-01-01", "2024-01-02", "2024-02-10", "2024-04-05"]),
    st.sampled_from(["I1", "I2"]),
    st.sampled_from(["84713012", "84715010", "30049099"]),
    st.sampled_from(["E1", "E2"]),
    st.sampled_from(["CN", "US"]),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(row, min_size=1, max_size=25))
def test_learning_counts_match_the_plain_python_twin(models, rows):
    f = frame(rows)
    tables = count_evidence(models, f)
    assert np.array_equal(earlier(models, tables, f, True), brute_force(rows))
    bands = models["importer_novelty"].bands(prepare_evidence(models, tables).prepared["importer_novelty"], f,
                                             own_rows_counted=True)
    assert list(bands) == brute_force_bands(rows)


def test_scoring_counts_every_declaration_and_facts_say_which_pair_is_new(models):
    history = frame([("2024-01-01", "I1", "84713012", "E1", "CN")] * 4 + [("2024-01-02", "I1", "30049099", "E1", "US")])
    prepared = prepare_evidence(models, count_evidence(models, history))
    item = frame([("2024-03-01", "I1", "84719000", "E7", "US")])
    ((fact,),) = evidence_facts(prepared, item)
    assert fact["n_subject"] == 5.0 and fact["band"] == "n2101"
    assert (fact["age"], fact["first_date"], fact["days_since_first"]) == (2, "2024-01-01", 60)
    assert [(c["attribute"], c["value"], c["n_earlier"], c["first_time"]) for c in fact["companions"]] == [
        ("hs_heading", "8471", 4.0, False), ("exporter", "E7", 0.0, True), ("origin", "US", 1.0, False)]


def test_tables_add_up_and_decay_like_counts(models):
    a = frame([("2024-01-01", "I1", "84713012", "E1", "CN")] * 2)
    b = frame([("2024-01-02", "I1", "84713012", "E2", "CN")])
    merged = merge_evidence(count_evidence(models, a), count_evidence(models, b), 0.5)
    whole = count_evidence(models, pd.concat([a, a.iloc[:0], b]))["importer_novelty"]
    assert np.array_equal(merged["importer_novelty"]["pairs"]["key"], whole["pairs"]["key"])
    assert merged["importer_novelty"]["subjects"]["N"].tolist() == [2.0]
    assert merged["importer_novelty"]["subjects"]["first_day"].tolist() == [19723]


def test_catalog_checks_name_the_problem():
    knowledge = load_knowledge()
    spec = knowledge.evidence["importer_novelty"]
    bad = replace(spec, options={"subject": "importer", "companions": ["importer"]})
    assert "repeat" in Novelty.check_options(bad, knowledge.attributes)
    bad = replace(spec, options={"subject": "importer", "companions": ["nope"]})
    assert "'nope' is not an attribute" in Novelty.check_options(bad, knowledge.attributes)
    bad = replace(spec, options={"subject": "importer", "companions": "exporter"})
    assert "must be a list" in Novelty.check_options(bad, knowledge.attributes)
    assert Novelty.check_options(replace(spec, options={"subject": "importer"}), knowledge.attributes) is None


GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("lang", ["en", "pt-BR"])
def test_golden_novelty_sentences(shipped, models, lang: str):
    """As an officer reads them: with the shipped entry (age alone) an importer 19 days and
    a day old, one of the same day, a new importer and an old one (no sentence); with the
    three companions a known importer with a new exporter and origin, 60 and 200 days old."""
    from sisam.explain import Renderer, hide_facts

    knowledge = load_knowledge()
    renderer = Renderer(knowledge, lang)
    history = frame([("2024-01-01", "IMP1", "84713012", "EXP1", "CN")] * 5 + [("2024-03-01", "IMP2", "84713012", "EXP1", "CN")])
    lines = []
    for model, items in (
        (shipped, frame([("2024-01-20", "IMP1", "84713012", "EXP1", "CN"), ("2024-03-02", "IMP2", "84713012", "EXP1", "CN"),
                         ("2024-03-01", "IMP2", "84713012", "EXP1", "CN"), ("2024-03-01", "IMP9", "84713012", "EXP1", "CN"),
                         ("2024-07-01", "IMP1", "84713012", "EXP1", "CN")])),
        (models, frame([("2024-03-01", "IMP1", "84719000", "EXP7", "US"), ("2024-07-19", "IMP1", "84719000", "EXP7", "US")])),
    ):
        prepared = prepare_evidence(model, count_evidence(model, history))
        for facts in evidence_facts(prepared, items):
            values = {"error": {"id": "x", "name": "x"}, "probability": 0.5, "base_rate": 0.01, "lift": 0.0,
                      "clip": None, "up": [], "down": [], "novel": None,
                      "consistency": [hide_facts(f, knowledge, lang, False) for f in facts]}
            lines += renderer.sentences(values)[1:-1] or ["(no sentence)"]
    text = "\n".join(lines) + "\n"
    golden = GOLDEN / f"novelty_{lang}.txt"
    if os.environ.get("SISAM_REGENERATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), f"regenerate {golden} with SISAM_REGENERATE_GOLDEN=1 if intended"
