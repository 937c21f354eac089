"""What an inspection may correct, explained: suggested codes after the hs_code and
hs_chapter sentences, the expected tax recovered in the item's header; golden wording in
both languages (regenerate with ``SISAM_REGENERATE_GOLDEN=1`` and review the diff)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from explanation_world import World, build_world

from sisam import kb, suggest, value
from sisam.explain import STAKE_TEMPLATE, Renderer, explain_items, render_item

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("SISAM_REGENERATE_GOLDEN") == "1"
HEADER = {"en": "Expected tax recovered if inspected:", "pt-BR": "Valor esperado dos tributos recuperados se inspecionado:"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    world = build_world(tmp_path_factory.mktemp("stake"), seed=11)
    pairs = [("84818099", "84819090")] * 5 + [("84818099", "84818092")] * 2 + [("84813000", "84818099")]
    declared = np.array([p[0] for p in pairs], dtype=object)
    rectified = np.array([p[1] for p in pairs], dtype=object)
    # one importer's own habit: the suggestions for its items of this line follow it
    importers = np.array([world.test["importer_id"].iloc[0]] * 4 + ["someone else"] * 4, dtype=object)
    codes = world.history["hs_code"].to_numpy()
    ratios = {e: np.zeros(len(codes)) for e in value.TAX_ERRORS}
    ratios["import_duty_rate"][:40] = 0.04
    ratios["undervaluation"][40:60] = 0.12
    found = {e: r > 0 for e, r in ratios.items()}
    tables = {
        suggest.PAIRS_TABLE: suggest.count_pairs(declared, rectified, importers),
        suggest.CODES_TABLE: suggest.count_codes(codes),
        suggest.SMOOTHING_TABLE: {"S": np.array([5.0]), "loo_loglik": np.array([0.0])},
        value.AMOUNTS_TABLE: value.count_amounts(codes, ratios, found),
        value.SMOOTHING_TABLE: {"error": np.array(value.TAX_ERRORS, dtype=object), "S": np.full(len(value.TAX_ERRORS), 10.0)},
    }
    kb.amend(world.kb_dir, tables, kb.Provenance(("stake tables",)), world.knowledge.hash)
    return world


@pytest.mark.parametrize("lang", ["en", "pt-BR"])
def test_golden_suggestions_and_expected_recovery(world: World, lang: str):
    scorer = world.scorer()
    renderer = Renderer(world.knowledge, lang)
    chosen = world.test[world.test["hs_code"].isin(["84818099", "84813000", "84818092", "84819090", "39029010"])].drop_duplicates("hs_code")
    explanations = explain_items(scorer, chosen, lang, labels=list(suggest_labels()), top=2)
    blocks = []
    for x in explanations:
        text = render_item(x, renderer)
        header = [line for line in text.splitlines() if line.startswith(HEADER[lang])]
        (hs_code,) = [e for e in x.errors if e.id == "hs_code"]
        stake_lines = renderer.lines(STAKE_TEMPLATE, hs_code.values)
        assert stake_lines and hs_code.sentences[-len(stake_lines):] == stake_lines
        assert all(line in text for line in stake_lines)
        blocks.append("\n".join([f"{x.declaration_id}/{x.item_no}", *header, *stake_lines]))
    text = "\n\n".join(blocks) + "\n"
    golden = GOLDEN / f"stake_{lang}.txt"
    if REGENERATE:
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), f"the {lang} wording changed; regenerate {golden} if intended"


def suggest_labels() -> tuple[str, ...]:
    return ("hs_code", "hs_chapter")


def test_explained_figures_are_the_score_table_s(world: World):
    scorer = world.scorer()
    items = world.test.iloc[:10]
    scores = scorer.score_frame(items)
    for i, x in enumerate(explain_items(scorer, items, "en", labels=["hs_code"], top=1)):
        assert x.values["expected_recovery_usd"] == scores[value.COLUMN].iloc[i]
        codes = x.errors[0].values["suggestions"]["codes"]
        assert [c["code"] for c in codes] == [scores[f"hs_code_suggested_{j + 1}"].iloc[i] for j in range(len(codes))]
        assert [c["probability"] for c in codes] == [scores[f"hs_code_suggested_{j + 1}_probability"].iloc[i] for j in range(len(codes))]
