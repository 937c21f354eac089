"""Explanations: golden wording in both languages, every number from the values, strict
and sandboxed templates, escaping, and the objects the worklist reads.

Golden files (tests/golden/explain_*.txt) pin the wording; after an intended change,
regenerate them with ``SISAM_REGENERATE_GOLDEN=1 pytest tests/test_explain.py`` and
review the diff like code.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from explanation_world import World, build_world

from sisam.errors import SisamError
from sisam.explain import (
    ItemExplanation,
    Renderer,
    TemplateError,
    explain_items,
    explain_one,
    render_item,
)
from sisam.formatting import PERCENT_FLOOR_DECIMALS, format_count, format_number, format_percent

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("SISAM_REGENERATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("world"), seed=11)


@pytest.fixture(scope="module")
def scorer(world: World):
    return world.scorer()


@pytest.mark.parametrize("lang", ["en", "pt-BR"])
def test_golden_explanations(world: World, scorer, lang: str):
    explanations = explain_items(scorer, world.test.iloc[:3], lang, top=3)
    renderer = Renderer(world.knowledge, lang)
    text = "\n\n".join(render_item(x, renderer) for x in explanations) + "\n"
    golden = GOLDEN / f"explain_{lang}.txt"
    if REGENERATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), (
        f"the {lang} explanations changed; if intended, regenerate {golden} with SISAM_REGENERATE_GOLDEN=1"
    )


def _leaves(values: Any) -> list[Any]:
    if isinstance(values, dict):
        return [leaf for v in values.values() for leaf in _leaves(v)]
    if isinstance(values, list):
        return [leaf for v in values for leaf in _leaves(v)]
    return [values]


_NUMBER = re.compile(r"\d[\d.,]*\d|\d")


@pytest.mark.parametrize("lang", ["en", "pt-BR"])
def test_every_number_in_a_sentence_comes_from_the_values(world: World, scorer, lang: str):
    """The template gets only the values the reasoning log stores: every figure of every
    sentence must be one of them, as the language formats it."""
    checked = 0
    for explanation in explain_items(scorer, world.test, lang, top=3):
        for error in explanation.errors:
            # the display bounds of "< 0.0001%" and "> 99.9999%" are no data
            floor = 10.0**-PERCENT_FLOOR_DECIMALS
            allowed = {format_number(x, lang, PERCENT_FLOOR_DECIMALS) for x in (floor, 100.0 - floor)}
            for leaf in _leaves(error.values):
                if isinstance(leaf, bool) or leaf is None:
                    continue
                if isinstance(leaf, int | float):
                    allowed |= {format_count(leaf, lang), format_number(leaf, lang), *_NUMBER.findall(format_percent(leaf, lang))}
                else:
                    allowed |= set(_NUMBER.findall(str(leaf)))
            for sentence in error.sentences:
                for token in _NUMBER.findall(sentence):
                    assert token in allowed, f"{token!r} of {sentence!r} is not among the values"
                    checked += 1
    assert checked > 100


def test_reasoning_rows_are_the_whole_decomposition(world: World, scorer):
    (explanation,) = explain_items(scorer, world.test.iloc[[5]], "en", top=30)
    assert isinstance(explanation, ItemExplanation)
    assert [e.probability for e in explanation.errors] == sorted((e.probability for e in explanation.errors), reverse=True)
    assert len(explanation.errors) == 30
    for error in explanation.errors:
        total = sum(r.contribution for r in error.reasoning)
        assert total == pytest.approx(error.values["lift"], abs=1e-9)
        assert [abs(r.contribution) for r in error.reasoning] == sorted((abs(r.contribution) for r in error.reasoning), reverse=True)
        assert all(0.0 <= r.prior <= 1.0 and 0.0 <= r.posterior <= 1.0 for r in error.reasoning)
        assert error.name == world.knowledge.error(error.id).name["en"]


def test_the_worklist_reads_the_explanations(world: World, scorer):
    from sisam.worklist import entries_from_explanations

    explanations = explain_items(scorer, world.test.iloc[:4], "pt-BR", top=2)
    entries = entries_from_explanations(explanations)
    assert [(e.declaration_id, e.item_no) for e in entries] == [(x.declaration_id, x.item_no) for x in explanations]
    assert list(entries[0].errors[0].sentences) == explanations[0].errors[0].sentences
    assert entries[0].errors[0].reasoning[0].pattern == explanations[0].errors[0].reasoning[0].pattern


def test_never_inspected_combination_says_where_the_estimate_comes_from(world: World, scorer):
    found = []
    for explanation in explain_items(scorer, world.test, "en", top=3):
        for error in explanation.errors:
            novel = error.values["novel"]
            if novel:
                found.append(error)
                sentence = next(s for s in error.sentences if "never inspected before" in s)
                assert "the estimate comes from" in sentence
                first = novel["patterns"][0][0]
                assert first == world.knowledge.networks[error.id].factors[0]
    assert found, "the test items should include combinations never inspected"


def test_a_misspelt_value_fails_loudly(world: World, scorer, tmp_path: Path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "error.txt.j2").write_text("Probability {{ probabilty|percent }}.\n")
    with pytest.raises(TemplateError, match="'probabilty' is undefined"):
        explain_items(scorer, world.test.iloc[:1], "en", templates=tmp_path)


def test_a_user_template_cannot_reach_python_internals(world: World, scorer, tmp_path: Path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "error.txt.j2").write_text("{{ error.__class__.__mro__[1].__subclasses__() }}\n")
    with pytest.raises(TemplateError, match="sandbox forbids"):
        explain_items(scorer, world.test.iloc[:1], "en", templates=tmp_path)
    # the same folder's innocent templates render, with the shipped filters and phrases
    (tmp_path / "en" / "error.txt.j2").write_text(
        '{% import "en/phrases.j2" as say %}{{ error.name }} at {{ probability|percent }}\n'
    )
    (explanation,) = explain_items(scorer, world.test.iloc[:1], "en", top=1, templates=tmp_path)
    assert re.fullmatch(r".+ at \d+\.\d%", explanation.errors[0].sentences[0])


def test_html_is_escaped(world: World, scorer):
    items = world.test.iloc[:1].copy()
    items["customs_office"] = "<script>alert(1)</script>"
    (explanation,) = explain_items(scorer, items, "en", top=2)
    html = render_item(explanation, Renderer(world.knowledge, "en"), html=True)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    text = render_item(explanation, Renderer(world.knowledge, "en"))
    assert "customs office <script>alert(1)</script>." in text  # text is text


def test_explain_one_item_by_its_key(world: World, scorer):
    row = world.test.iloc[7]
    text = explain_one(scorer, world.test, f"{row['declaration_id']}/{row['item_no']}", "pt-BR")
    assert text.startswith(f"Declaração {row['declaration_id']}, item {row['item_no']}")
    assert text.count("\n30. ") == 1
    with pytest.raises(SisamError, match="no item 99 of declaration"):
        explain_one(scorer, world.test, f"{row['declaration_id']}/99")
    with pytest.raises(SisamError, match="expected DECLARATION/ITEM"):
        explain_one(scorer, world.test, "2400001")
