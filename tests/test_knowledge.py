"""The knowledge loader accepts the shipped catalog and rejects each kind of typo precisely."""

from pathlib import Path

import pytest

from sisam.contract import COLUMNS, ERROR_IDS
from sisam.engine.lattice import build_lattice
from sisam.errors import KnowledgeError
from sisam.knowledge import LANGUAGES, load_knowledge


def test_shipped_catalog_has_the_contract_errors_in_order():
    k = load_knowledge()
    assert tuple(e.id for e in k.errors) == ERROR_IDS
    assert k.label_ids == (*ERROR_IDS, "any")
    for e in k.errors:
        assert e.field in COLUMNS
        assert set(e.name) == set(LANGUAGES) == set(e.description)


def test_contract_rules_and_tolerances():
    k = load_knowledge()
    expected = {
        "hs_chapter": ("hs_code", "prefix_changed", 0.0, 2),
        "antidumping": ("antidumping_rate", "increased", 0.0, 0),
        "countervailing": ("countervailing_rate", "increased", 0.0, 0),
        "undervaluation": ("customs_value_usd", "increased_beyond", 0.05, 0),
        "overvaluation": ("customs_value_usd", "decreased_beyond", 0.05, 0),
        "net_weight": ("net_weight_kg", "differs_beyond", 0.05, 0),
        "quantity": ("quantity", "differs_beyond", 0.01, 0),
        "freight": ("freight_usd", "differs_beyond", 0.05, 0),
        "insurance": ("insurance_usd", "differs_beyond", 0.05, 0),
        "exporter": ("exporter_id", "changed", 0.0, 0),
        "manufacturer": ("manufacturer_id", "changed", 0.0, 0),
    }
    for e in k.errors:
        got = (e.field, e.rule, e.tolerance, e.prefix)
        assert got == expected.get(e.id, (e.id, "changed", 0.0, 0)), e.id


def test_every_network_factor_builds_a_small_lattice():
    k = load_knowledge()
    assert set(k.networks) == set(k.label_ids)
    for name in k.factors:
        lattice = build_lattice(k.factor_level_counts(name))
        assert lattice.n_shapes <= 100, name


def test_knowledge_hash_is_stable_and_content_sensitive(knowledge_copy: Path):
    assert load_knowledge(knowledge_copy).hash == load_knowledge().hash
    path = knowledge_copy / "networks.toml"
    path.write_text(path.read_text() + "\n# a comment changes the bytes\n")
    assert load_knowledge(knowledge_copy).hash != load_knowledge().hash


def _edit(folder: Path, name: str, old: str, new: str) -> None:
    path = folder / name
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("errors.toml", 'rule = "prefix_changed"', 'rul = "prefix_changed"', "unknown key 'rul' (did you mean 'rule'?)"),
        ("errors.toml", 'field = "origin_country"', 'field = "origin_contry"', "field 'origin_contry' is not a contract column (did you mean 'origin_country'?)"),
        ("errors.toml", 'rule = "increased_beyond"', 'rule = "increased_by"', "unknown rule 'increased_by'"),
        ("errors.toml", 'id = "hs_chapter"', 'id = "hs_code"', "duplicate id 'hs_code' (first defined in [[error]] #1)"),
        ("errors.toml", "tolerance = 0.01", "tolerance = 1.5", "tolerance must be a number in [0, 1)"),
        ("errors.toml", 'rule = "prefix_changed"\nprefix = 2', 'rule = "prefix_changed"', "rule 'prefix_changed' needs 'prefix'"),
        ("errors.toml", 'name.pt-BR = "Moeda incorreta"', 'name.pt = "Moeda incorreta"', "name.pt-BR is missing or empty"),
        ("errors.toml", 'id = "valuation_method"', 'id = "valuation"', "the catalog must list the contract's 30 error types"),
        ("attributes.toml", 'levels = ["value", "prefix:6", "prefix:4", "prefix:2"]', 'levels = ["value", "prefix:6", "prefx:4"]', "level 'prefx:4' does not apply to a nominal attribute"),
        ("attributes.toml", 'column = "broker_id"', 'column = "broker"', "column 'broker' is not a contract column"),
        ("attributes.toml", 'levels = ["log2band:1", "log2band:3"]', 'levels = ["prefix:2"]', "level 'prefix:2' does not apply to a numeric attribute"),
        ("networks.toml", 'attributes = ["broker", "office", "transport_mode"]', 'attributes = ["broker", "ofice", "transport_mode"]', "unknown attribute 'ofice' (did you mean 'office'?)"),
        ("networks.toml", '[network.incoterm]\nfactors = ["declarant", "sale_terms", "trade_consistency"]', '[network.incoterm]\nfactors = ["declarant", "sale_term", "trade_consistency"]', "unknown factor 'sale_term' (did you mean 'sale_terms'?)"),
        ("networks.toml", "[network.fx_coverage]", "[network.fx_cover]", "[network.fx_cover]: unknown error type"),
        ("networks.toml", 'attributes = ["hs_code", "importer", "origin", "office"]', 'attributes = ["hs_code", "importer", "origin", "office", "goods_value_band"]', "unknown attribute 'goods_value_band'"),
        ("attributes.toml", 'levels = ["log2band:1", "log2band:3"]', 'levels = ["log2band:0", "log2band:3"]', "expected log2band:W with W a positive number"),
        ("attributes.toml", 'levels = ["value", "prefix:6", "prefix:4", "prefix:2"]', 'levels = ["value", "prefix:4", "prefix:6", "prefix:2"]', "levels must run from finest to coarsest"),
    ],
)
def test_typos_fail_with_file_entry_and_key(knowledge_copy: Path, file, old, new, message):
    _edit(knowledge_copy, file, old, new)
    with pytest.raises(KnowledgeError) as info:
        load_knowledge(knowledge_copy)
    text = str(info.value)
    assert str(knowledge_copy / file) in text
    assert message in text


def test_oversized_lattice_is_refused(knowledge_copy: Path):
    _edit(
        knowledge_copy,
        "networks.toml",
        'attributes = ["hs_code", "importer", "origin", "office"]',
        'attributes = ["hs_code", "hs_subheading", "value_band", "weight_band", "importer", "origin"]',
    )
    with pytest.raises(KnowledgeError, match=r"\[factor.classification\]: lattice of 720 shapes exceeds 256"):
        load_knowledge(knowledge_copy)


def test_missing_network_and_unused_factor(knowledge_copy: Path):
    _edit(knowledge_copy, "networks.toml", '[network.currency]\nfactors = ["declarant", "sale_terms", "trade_consistency"]\n', "")
    with pytest.raises(KnowledgeError, match=r"no network for error type.s. currency"):
        load_knowledge(knowledge_copy)


def test_invalid_toml_names_the_file(knowledge_copy: Path):
    (knowledge_copy / "attributes.toml").write_text("[attribute.importer\n")
    with pytest.raises(KnowledgeError, match=r"attributes\.toml: not valid TOML"):
        load_knowledge(knowledge_copy)


def test_missing_folder(tmp_path: Path):
    with pytest.raises(KnowledgeError, match="knowledge folder not found"):
        load_knowledge(tmp_path / "nowhere")
