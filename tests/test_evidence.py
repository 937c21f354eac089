"""Evidence models (sisam.evidence): value in context, its kernel, leave-one-out, the
knowledge base round trip and update merge, and the catalog checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sisam import kb
from sisam.errors import KnowledgeError
from sisam.evidence import (
    add_evidence_columns,
    count_evidence,
    evidence_facts,
    evidence_models,
    from_kb_tables,
    merge_evidence,
    prepare_evidence,
)
from sisam.evidence import reference_context as reference
from sisam.evidence.context_kernels import value_in_context
from sisam.knowledge import load_knowledge

#: The shipped models the tests use (knowledge/evidence.toml defines them so).
USED = ("origin_given_exporter", "pis_given_code")


@pytest.fixture(scope="module")
def models():
    every = evidence_models(load_knowledge())
    return {name: every[name] for name in USED}


def frame(exporters: list[str], origins: list[str], codes: list[str] | None = None,
          pis: list[float] | None = None) -> pd.DataFrame:
    n = len(exporters)
    return pd.DataFrame({
        "exporter_id": exporters,
        "origin_country": origins,
        "hs_code": codes or ["30049099"] * n,
        "pis_rate": pis or [2.1] * n,
    })


def history() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 400
    exporters = [f"E{i}" for i in rng.integers(0, 12, n)]
    origins = [str(o) for o in rng.choice(["CN", "MY", "US", "DE"], n, p=[0.6, 0.2, 0.1, 0.1])]
    codes = [str(c) for c in rng.choice(["30049099", "30049069", "84713012", "84715010"], n)]
    pis = [float(x) for x in rng.choice([2.1, 1.65, 0.0], n, p=[0.7, 0.2, 0.1])]
    return frame(exporters, origins, codes, pis)


def test_a_value_always_the_same_in_its_context_makes_any_other_value_surprising(models):
    f = frame(["A"] * 60 + ["B"] * 40, ["CN"] * 60 + ["MY", "CN", "US", "DE"] * 10)
    prepared = prepare_evidence(models, count_evidence(models, f))
    items = frame(["A", "A", "A"], ["CN", "MY", "US"])
    bands = add_evidence_columns(items, models, prepared, own_rows_counted=False)["evidence.origin_given_exporter"]
    assert list(bands) == ["s0n2", "s4n2", "s4n2"]
    usual, other, _ = (facts[0] for facts in evidence_facts(prepared, items))
    assert usual["probability"] > 0.95 and usual["modal"] and usual["rank"] == 1
    assert other["probability"] < 0.01 and not other["modal"] and other["n_declared"] == 0
    assert (other["usual"], other["n_usual"], other["n_context"]) == ("CN", 60.0, 60.0)
    # the same values in a mixed context surprise nobody
    mixed = add_evidence_columns(frame(["B", "B"], ["MY", "US"]), models, prepared, own_rows_counted=False)
    assert all(b.startswith(("s0", "s1")) for b in mixed["evidence.origin_given_exporter"])


def test_unseen_contexts_fall_back_through_the_hierarchy_and_say_so(models):
    f = frame(["A"] * 30, ["CN"] * 30, ["30049099"] * 20 + ["30049069"] * 10, [2.1] * 20 + [1.65] * 10)
    prepared = prepare_evidence(models, count_evidence(models, f))
    # a new exporter, a new code of a known subheading
    items = frame(["NEW"], ["CN"], ["30049011"], [1.65])
    exporter, code = evidence_facts(prepared, items)[0]
    assert exporter["fallback"] and exporter["used_context"] == [] and exporter["band"].endswith("n0")
    assert code["fallback"] and code["band"].endswith("n0")
    assert code["used_context"] == [{"attribute": "hs_code", "level": "prefix:6", "value": "300490"}]
    assert (code["n_context"], code["n_declared"], code["usual"]) == (30.0, 10.0, "2.10")
    assert code["context"] == [{"attribute": "hs_code", "level": "value", "value": "30049011"}]


def test_history_rows_are_banded_as_if_they_had_not_been_counted(models):
    f = history()
    tables = count_evidence(models, f)
    prepared = prepare_evidence(models, tables)
    loo = add_evidence_columns(f, models, prepared, own_rows_counted=True)
    loo_facts = evidence_facts(prepared, f, own_rows_counted=True)
    for i in range(0, len(f), 23):
        rest = f.drop(index=i)
        alone = prepare_evidence(models, count_evidence(models, rest))
        row = f.iloc[i : i + 1]
        expected = add_evidence_columns(row, models, alone, own_rows_counted=False)
        for model in models.values():
            assert loo[model.column].iloc[i] == expected[model.column].iloc[0]
        for got, want in zip(loo_facts[i], evidence_facts(alone, row)[0], strict=True):
            assert got == want
    # without leave-one-out every history item would look more usual than it is
    plain = add_evidence_columns(f, models, prepared, own_rows_counted=False)
    assert (plain["evidence.origin_given_exporter"] != loo["evidence.origin_given_exporter"]).any()


def test_kernel_matches_its_plain_python_twin(models):
    f = history()
    model = models["pis_given_code"]
    prepared = model.prepare(count_evidence(models, f)["pis_given_code"])
    items = pd.concat([f.iloc[:50], frame(["X"], ["FR"], ["99999999"], [7.6])], ignore_index=True)
    from sisam.encoding import Encoder

    keys, codes = model._keys(Encoder(items))
    table = {int(k): (float(n), float(t1), float(t2), int(m)) for k, n, t1, t2, m in
             zip(prepared.keys, prepared.N, prepared.top1, prepared.top2, prepared.mode, strict=True)}
    lattice = model.context_lattice
    for loo in (0, 1):
        size = len(items)
        out = (np.empty(size), np.empty(size, np.int64), np.empty(size), np.empty(size), np.empty(size),
               np.empty(size, np.bool_))
        value_in_context(keys, model.value_shape, model.context_shape, lattice.parents, lattice.n_parents,
                         prepared.index.slot_keys, prepared.index.slot_rows, prepared.N, prepared.top1,
                         prepared.top2, prepared.mode, codes, float(loo), model.smoothing, model.calibration, *out)
        twin = reference.value_in_context(keys, model.value_shape, model.context_shape, lattice.parents,
                                          lattice.n_parents, table, codes, loo, model.smoothing, model.calibration)
        for got, want in zip(out, twin, strict=True):
            assert got.tolist() == want


def test_tables_add_up_and_decay_like_counts(models):
    f = history()
    whole = count_evidence(models, f)
    parts = merge_evidence(count_evidence(models, f.iloc[:150]), count_evidence(models, f.iloc[150:]), 1.0)
    assert whole.keys() == parts.keys()
    for model in whole:
        for table in whole[model]:
            for column, values in whole[model][table].items():
                assert np.array_equal(values, parts[model][table][column]), (model, table, column)
    halved = merge_evidence(whole, {}, 0.5)
    assert np.array_equal(halved["origin_given_exporter"]["counts"]["N"], whole["origin_given_exporter"]["counts"]["N"] * 0.5)


def test_knowledge_base_stores_hashes_and_merges_the_tables(models, tmp_path: Path):
    f = history()
    first, second = count_evidence(models, f.iloc[:200]), count_evidence(models, f.iloc[200:])
    from sisam.engine.counts import PatternCounts
    from sisam.evidence import kb_tables

    counts = {"x": PatternCounts.empty()}
    meta = {"x": kb.FactorMeta("x", ("importer",), (1,), 7)}
    coefficients = {"x": {"S": np.ones(2), "d": np.ones(2)}}
    version = kb.create(tmp_path / "kb", meta, counts, coefficients, {"dnet": np.ones(2)}, ("a", "any"),
                        kb.Provenance(), "catalog", tables=kb_tables(first))
    loaded = kb.open_version(tmp_path / "kb", version)
    for model, by_table in first.items():
        for table, columns in by_table.items():
            for column, values in columns.items():
                assert np.array_equal(from_kb_tables(loaded.tables)[model][table][column], values)
    merged = merge_evidence(from_kb_tables(loaded.tables), second, 0.5)
    kb.update(tmp_path / "kb", {}, coefficients, {"dnet": np.ones(2)}, kb.Provenance(), "catalog",
              half_life_days=1.0, days_elapsed=1.0, tables=kb_tables(merged))
    again = kb.open_version(tmp_path / "kb")
    assert again.content_hash != loaded.content_hash
    got = from_kb_tables(again.tables)["origin_given_exporter"]["counts"]
    want = merge_evidence(first, second, 0.5)["origin_given_exporter"]["counts"]
    assert all(np.array_equal(got[c], want[c]) for c in want)
    exported = kb.export_parquet(tmp_path / "kb", tmp_path / "parquet")
    assert "extra_evidence__origin_given_exporter__counts" in exported


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('field = "origin"', 'field = "origine"', "field 'origine' is not an attribute"),
        ('context = ["exporter"]', 'context = ["exporter", "origin"]', "contains the field"),
        ('kind = "value_in_context"\nfield = "origin"', 'kind = "value_in_contxt"\nfield = "origin"', "unknown kind 'value_in_contxt'"),
        ('serves = ["origin_country"]', 'serves = ["origin"]', "serves unknown error type 'origin'"),
        ('serves = ["origin_country"]', 'serves = ["origin_country"]\nsmoothing = 0', "smoothing must be a positive number"),
        ('serves = ["origin_country"]', 'serves = ["origin_country"]\nwindow = 3', "unknown key 'window'"),
    ],
)
def test_catalog_mistakes_name_the_file_and_the_entry(knowledge_copy: Path, old: str, new: str, message: str):
    path = knowledge_copy / "evidence.toml"
    path.write_text(path.read_text().replace(old, new, 1))
    with pytest.raises(KnowledgeError, match="evidence.toml: \\[evidence.origin_given_exporter\\]: .*" + message):
        load_knowledge(knowledge_copy)


def test_attributes_may_read_only_declared_evidence_columns(knowledge_copy: Path):
    hashed = load_knowledge(knowledge_copy).hash
    path = knowledge_copy / "attributes.toml"
    path.write_text(path.read_text().replace('column = "evidence.origin_given_exporter"', 'column = "evidence.origin_given_exportr"'))
    with pytest.raises(KnowledgeError, match=r"\[attribute.ev_origin_given_exporter\]: column 'evidence.origin_given_exportr' names no evidence model"):
        load_knowledge(knowledge_copy)
    path.write_text(path.read_text().replace('column = "evidence.origin_given_exportr"', 'column = "evidence.origin_given_exporter"'))
    evidence = knowledge_copy / "evidence.toml"
    evidence.write_text(evidence.read_text() + "\n# a comment changes the catalog hash\n")
    assert load_knowledge(knowledge_copy).hash != hashed


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sisam.synth import generate_world

    out = tmp_path_factory.mktemp("world")
    generate_world(4000, 90, 11, out, test_days=15)
    return out


def test_models_change_no_probability_of_an_error_type_they_do_not_serve(world: Path, tmp_path: Path):
    from sisam.bench.suites import knowledge_without
    from sisam.declarations import read_declarations
    from sisam.model import Scorer, learn

    shipped = load_knowledge()
    evidence_factors = [name for name, factor in shipped.factors.items()
                        if any(shipped.attributes[a].column.startswith("evidence.") for a in factor.attributes)]
    served = {e for spec in shipped.evidence.values() for e in spec.serves}
    without = load_knowledge(knowledge_without(evidence_factors, tmp_path / "without"))
    test = read_declarations(world / "test.parquet")
    scores = {}
    for name, knowledge in (("with", shipped), ("without", without)):
        learn(world / "history.parquet", world / "rectified.parquet", tmp_path / f"kb-{name}", knowledge=knowledge)
        scores[name] = Scorer.open(tmp_path / f"kb-{name}", knowledge).probabilities(test)
    changed = {label for j, label in enumerate(shipped.label_ids)
               if not np.array_equal(scores["with"][:, j], scores["without"][:, j])}
    # "any" is made coherent with every error type, so it may move with the served ones
    assert changed - {"any"} <= served
    assert {"origin_country", "pis_rate"} <= changed


GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("lang", ["en", "pt-BR"])
def test_golden_consistency_sentences(models, lang: str):
    """The issue's two examples, and both fallbacks, as an officer reads them."""
    import os

    from sisam.explain import Renderer, hide_facts

    n = 4120
    exporters = ["EXP1"] * 215 + ["EXP2"] * (n - 215)
    origins = ["CN"] * 212 + ["MY"] * 3 + ["CN"] * (n - 215)
    pis = [2.1] * 4000 + [1.65] * 120
    prepared = prepare_evidence(models, count_evidence(models, frame(exporters, origins, ["30049099"] * n, pis)))
    items = frame(["EXP1", "EXP9"], ["MY", "FR"], ["30049099", "30049011"], [1.65, 7.6])
    knowledge = load_knowledge()
    renderer = Renderer(knowledge, lang)
    lines = []
    for facts in evidence_facts(prepared, items):
        values = {"error": {"id": "x", "name": "x"}, "probability": 0.5, "base_rate": 0.01, "lift": 0.0, "clip": None,
                  "up": [], "down": [], "novel": None,
                  "consistency": [hide_facts(f, knowledge, lang, False) for f in facts]}
        lines += renderer.sentences(values)[1:-1]  # between the probability and "no pattern weighs much"
    text = "\n".join(lines) + "\n"
    golden = GOLDEN / f"evidence_{lang}.txt"
    if os.environ.get("SISAM_REGENERATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), f"regenerate {golden} with SISAM_REGENERATE_GOLDEN=1 if intended"


def test_learn_update_adds_the_batch_evidence_to_the_knowledge_base(world: Path, tmp_path: Path):
    """learn, then learn --update with a second batch and a half-life: the factor counts
    decay, the evidence tables are the first batch's plus the second's, undecayed (a band
    must mean the same counts of declarations whenever an item was banded)."""
    from sisam.contract import KEY
    from sisam.declarations import read_declarations
    from sisam.model import learn
    from sisam.tables import write_table

    history = read_declarations(world / "history.parquet")
    rectified = pd.read_parquet(world / "rectified.parquet")
    cut = history["date"].sort_values().iloc[len(history) // 2]
    paths = {}
    for name, part in (("first", history[history["date"] < cut]), ("second", history[history["date"] >= cut])):
        keys = part[list(KEY)].drop_duplicates()
        paths[name] = (tmp_path / f"{name}.parquet", tmp_path / f"{name}-rectified.parquet")
        write_table(part, paths[name][0])
        write_table(rectified.merge(keys, on=list(KEY)), paths[name][1])
    knowledge = load_knowledge()
    learn(*paths["first"], tmp_path / "kb", knowledge=knowledge)
    first = kb.open_version(tmp_path / "kb")
    learn(*paths["second"], tmp_path / "kb", knowledge=knowledge, update=True, half_life_days=30.0)
    second = kb.open_version(tmp_path / "kb")
    decay = second.record.decay_factor
    assert 0.0 < decay < 1.0
    # the factor counts did decay: the root pattern holds every labelled item, weighted
    for name, counts in second.counts.items():
        root_n = first.counts[name].n.max() * decay + second.record.provenance.n_labelled
        assert counts.n.max() == pytest.approx(root_n, rel=1e-12), name
    models = evidence_models(knowledge)
    batch = count_evidence(models, read_declarations(paths["second"][0]))
    expected = merge_evidence(from_kb_tables(first.tables), batch, 1.0)
    got = from_kb_tables(second.tables)
    assert got.keys() == expected.keys() == set(models)
    for model, by_table in expected.items():
        for table, columns in by_table.items():
            for column, values in columns.items():
                assert np.array_equal(got[model][table][column], values), (model, table, column)
