"""Novelty evidence (sisam.evidence.novelty): first-time combinations, time order at
learning, tables that add up, the catalog checks."""

from __future__ import annotations

import os
from dataclasses import replace
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
def models() -> dict[str, Novelty]:
    # built directly: no shipped network reads the band (see knowledge/networks.toml)
    knowledge = load_knowledge()
    return {"importer_novelty": Novelty(knowledge.evidence["importer_novelty"], knowledge)}


def frame(rows: list[tuple[str, str, str, str, str]]) -> pd.DataFrame:
    """rows of (date, importer, hs_code, exporter, origin)."""
    return pd.DataFrame(rows, columns=["date", "importer_id", "hs_code", "exporter_id", "origin_country"])


def earlier(models, tables, f, own):
    model = models["importer_novelty"]
    return model.earlier(prepare_evidence(models, tables).prepared["importer_novelty"], f, own, None)


def test_a_first_heading_exporter_and_origin_show_in_the_band(models):
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
    assert bands[-1] == "n0000" and bands[0] == "n1111" and bands[5] == "n2222"


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


row = st.tuples(
    st.sampled_from(["2024-01-01", "2024-01-02", "2024-01-03"]),
    st.sampled_from(["I1", "I2"]),
    st.sampled_from(["84713012", "84715010", "30049099"]),
    st.sampled_from(["E1", "E2"]),
    st.sampled_from(["CN", "US"]),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(row, min_size=1, max_size=25))
def test_learning_counts_match_the_plain_python_twin(models, rows):
    f = frame(rows)
    assert np.array_equal(earlier(models, count_evidence(models, f), f, True), brute_force(rows))


def test_scoring_counts_every_declaration_and_facts_say_which_pair_is_new(models):
    history = frame([("2024-01-01", "I1", "84713012", "E1", "CN")] * 4 + [("2024-01-02", "I1", "30049099", "E1", "US")])
    prepared = prepare_evidence(models, count_evidence(models, history))
    item = frame([("2024-03-01", "I1", "84719000", "E7", "US")])
    ((fact,),) = evidence_facts(prepared, item)
    assert fact["n_subject"] == 5.0 and fact["band"] == "n2101"
    assert [(c["attribute"], c["value"], c["n_earlier"], c["first_time"]) for c in fact["companions"]] == [
        ("hs_heading", "8471", 4.0, False), ("exporter", "E7", 0.0, True), ("origin", "US", 1.0, False)]


def test_tables_add_up_and_decay_like_counts(models):
    a = frame([("2024-01-01", "I1", "84713012", "E1", "CN")] * 2)
    b = frame([("2024-01-02", "I1", "84713012", "E2", "CN")])
    merged = merge_evidence(count_evidence(models, a), count_evidence(models, b), 0.5)
    whole = count_evidence(models, pd.concat([a, a.iloc[:0], b]))["importer_novelty"]
    assert np.array_equal(merged["importer_novelty"]["pairs"]["key"], whole["pairs"]["key"])
    assert merged["importer_novelty"]["subjects"]["N"].tolist() == [2.0]


def test_catalog_checks_name_the_problem():
    knowledge = load_knowledge()
    spec = knowledge.evidence["importer_novelty"]
    bad = replace(spec, options={"subject": "importer", "companions": ["importer"]})
    assert "repeat" in Novelty.check_options(bad, knowledge.attributes)
    bad = replace(spec, options={"subject": "importer", "companions": ["nope"]})
    assert "'nope' is not an attribute" in Novelty.check_options(bad, knowledge.attributes)


GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("lang", ["en", "pt-BR"])
def test_golden_novelty_sentences(models, lang: str):
    """A known importer with a new exporter and origin, and a new importer, as an officer
    reads them."""
    from sisam.explain import Renderer, hide_facts

    history = frame([("2024-01-01", "IMP1", "84713012", "EXP1", "CN")] * 5)
    prepared = prepare_evidence(models, count_evidence(models, history))
    items = frame([("2024-03-01", "IMP1", "84719000", "EXP7", "US"), ("2024-03-01", "IMP9", "84713012", "EXP1", "CN")])
    knowledge = load_knowledge()
    renderer = Renderer(knowledge, lang)
    lines = []
    for facts in evidence_facts(prepared, items):
        values = {"error": {"id": "x", "name": "x"}, "probability": 0.5, "base_rate": 0.01, "lift": 0.0, "clip": None,
                  "up": [], "down": [], "novel": None,
                  "consistency": [hide_facts(f, knowledge, lang, False) for f in facts]}
        lines += renderer.sentences(values)[1:-1]
    text = "\n".join(lines) + "\n"
    golden = GOLDEN / f"novelty_{lang}.txt"
    if os.environ.get("SISAM_REGENERATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), f"regenerate {golden} with SISAM_REGENERATE_GOLDEN=1 if intended"
