"""pgmpy as the oracle of sisam's inference (sisam/pgmpy_adapter.py).

Tiny worlds of a few hundred items with two to four values per column, so that full
tables fit: for every item, pgmpy's exact inference on the exported network must give
sisam's probability within 1e-9, and an XMLBIF round trip must not change the answers.
The knowledge base is built in memory: counts from the engine, coefficients drawn from
the grids of hpb.md ("Choosing the coefficients") with a seed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sisam.bench.oracle_world import VALUES, random_world
from sisam.bench.suites import knowledge_without
from sisam.contract import COLUMNS
from sisam.engine.network import coherent_any, combine
from sisam.errors import SisamError
from sisam.knowledge import Knowledge, load_knowledge
from sisam.model import Scorer
from sisam.pgmpy_adapter import (
    EMPTY,
    ERROR_NODE,
    MISSING,
    UNSEEN,
    UNSEEN_STAND_IN,
    ExportTooLarge,
    Oracle,
    export_item,
    export_network,
    item_evidence,
    network_nodes,
    read_xmlbif,
    state_name,
    write_xmlbif,
)

TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def knowledge(tmp_path_factory: pytest.TempPathFactory) -> Knowledge:
    """The shipped catalog without its evidence factors, whose extra parent columns (rates,
    units, ...) would make the "any" network's table too large to enumerate in a test
    (``test_evidence_columns_are_exported_as_their_sources`` covers them)."""
    shipped = load_knowledge()
    evidence = [name for name, f in shipped.factors.items()
                if any(shipped.attributes[a].column.startswith("evidence.") for a in f.attributes)]
    return load_knowledge(knowledge_without(evidence, tmp_path_factory.mktemp("knowledge") / "k"))


@pytest.fixture(scope="module")
def world(knowledge: Knowledge) -> tuple[pd.DataFrame, Scorer]:
    return random_world(knowledge, seed=7)


def test_state_names_are_xmlbif_names_and_reserved_ones_cannot_be_values() -> None:
    assert state_name("84713012", "string") == "84713012"
    assert state_name(" B-01 ", "string") == "B_2D01"  # stripped, as sisam's levels
    assert state_name("B_02", "string") == "B_5F02"  # the escape character is escaped
    assert state_name("Sé", "string") == "S_C3_A9"
    assert state_name(1234.5, "number") == "1234_2E5"
    assert state_name(-0.0, "number") == state_name(0.0, "number") == "0_2E0"
    assert state_name(7, "integer") == "7"
    assert state_name(pd.Timestamp("2024-01-05"), "date") == "2024_2D01_2D05"
    assert state_name("  ", "string") == EMPTY
    for missing in (None, np.nan, pd.NA, pd.NaT):
        assert state_name(missing, "string") == MISSING
    # An escape is "_" and two hex digits; "_u", "_m" and "_em" start none.
    for reserved in (UNSEEN, MISSING, EMPTY):
        assert state_name(reserved, "string") != reserved


def test_one_node_per_column_and_any_reads_every_network(knowledge: Knowledge) -> None:
    nodes = {node.column: node for node in network_nodes(knowledge, "hs_code")}
    assert set(nodes) == {
        "importer_id", "exporter_id", "customs_office", "hs_code", "origin_country",
        "net_weight_kg", "customs_value_usd",
    }  # fmt: skip
    # classification reads hs_code, trade_pair hs_heading, goods_value hs_subheading
    assert sorted(nodes["hs_code"].attributes) == ["hs_code", "hs_heading", "hs_subheading"]
    assert nodes["hs_code"].finest == "hs_code"
    every_column = {
        knowledge.attributes[a].column for f in knowledge.factors.values() for a in f.attributes
    }
    assert {node.column for node in network_nodes(knowledge, "any")} == every_column
    with pytest.raises(SisamError, match="no network for label 'hs_cod'"):
        network_nodes(knowledge, "hs_cod")


@pytest.mark.parametrize(
    "label", ["hs_code", "origin_country", "undervaluation", "tax_regime", "net_weight", "any"]
)
def test_pgmpy_exact_inference_gives_sisams_probabilities(
    world: tuple[pd.DataFrame, Scorer], label: str
) -> None:
    frame, scorer = world
    exported = export_network(scorer, label, frame)
    expected = scorer.probabilities(frame)[:, scorer.knowledge.label_ids.index(label)]
    assert 0.0 < expected.min() < expected.max() < 1.0  # a table worth checking
    if label == "any":  # the world must exercise coherent_any, or "any" proves little
        lo = combine(
            *scorer.factor_log_odds(frame),
            scorer.membership,
            scorer.version.network_coefficients["dnet"],
        )
        assert (coherent_any(lo)[:, -1] != lo[:, -1]).sum() > len(frame) // 10
    got = Oracle(exported.model).probabilities(frame)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)


def test_every_label_per_item(world: tuple[pd.DataFrame, Scorer]) -> None:
    """Every error type's one-item network answers the item's probability."""
    frame, scorer = world
    items = frame.iloc[[0, 1]]
    expected = scorer.probabilities(items)
    for j, label in enumerate(scorer.knowledge.label_ids):
        for i in range(len(items)):
            exported = export_item(scorer, label, items.iloc[[i]])
            assert exported.n_cells == 2 * 2 ** len(exported.nodes)
            got = Oracle(exported.model).probabilities(items.iloc[[i]])[0]
            assert abs(got - expected[i, j]) <= TOLERANCE, (label, i)


def test_unseen_state_answers_for_any_never_counted_value(
    world: tuple[pd.DataFrame, Scorer],
) -> None:
    frame, scorer = world
    item = frame.iloc[[3]]
    oracle = Oracle(export_item(scorer, "any", item).model)
    changed = item.copy()
    changed["importer_id"] = "NEW-IMPORTER"
    changed["hs_code"] = "99999999"  # a chapter never counted either
    changed["customs_value_usd"] = 3.0e9  # a band never counted
    evidence = item_evidence(item.iloc[0], oracle.columns)
    evidence.update(importer_id=UNSEEN, hs_code=UNSEEN, customs_value_usd=UNSEEN)
    expected = scorer.probabilities(changed)[0, -1]
    assert abs(oracle.probability(evidence) - expected) <= TOLERANCE


def test_marginals_from_declaration_counts(world: tuple[pd.DataFrame, Scorer]) -> None:
    frame, scorer = world
    exported = export_network(scorer, "hs_code", frame, unseen=True)
    for column in ("importer_id", "hs_code", "customs_value_usd"):
        cpd = exported.model.get_cpds(column)
        # every declaration is counted in N, inspected or not; "(unseen)" has N = 0
        declared = frame[column].map(lambda v, kind=COLUMNS[column]: state_name(v, kind))
        counts = declared.value_counts()
        weights = np.array([counts.get(s, 0) for s in exported.states[column]]) + 0.5
        np.testing.assert_allclose(cpd.get_values()[:, 0], weights / weights.sum(), rtol=1e-15)
    uniform = export_network(scorer, "hs_code", frame, marginals="uniform")
    cpd = uniform.model.get_cpds("importer_id")
    np.testing.assert_allclose(cpd.get_values()[:, 0], 1 / 3)


def test_xmlbif_round_trip(world: tuple[pd.DataFrame, Scorer], tmp_path: Path) -> None:
    frame, scorer = world
    exported = export_network(scorer, "any", frame)
    path = write_xmlbif(exported.model, tmp_path / "any.xml")
    model = read_xmlbif(path)
    assert model.name == "sisam_any"
    assert set(model.nodes()) == {*exported.columns, ERROR_NODE}
    for column, names in exported.states.items():
        assert tuple(model.get_cpds(column).state_names[column]) == names  # none rewritten
    original = exported.model.get_cpds(ERROR_NODE)
    read = model.get_cpds(ERROR_NODE)
    assert read.variables == original.variables
    np.testing.assert_array_equal(read.get_values(), original.get_values())  # repr round-trips
    np.testing.assert_array_equal(
        Oracle(model).probabilities(frame), Oracle(exported.model).probabilities(frame)
    )


def test_too_large_a_table_points_to_the_per_item_export(knowledge: Knowledge) -> None:
    many = dict(
        VALUES, importer_id=[f"I{k}" for k in range(40)], exporter_id=[f"X{k}" for k in range(40)]
    )
    frame, scorer = random_world(knowledge, seed=3, n=400, values=many)
    with pytest.raises(ExportTooLarge, match=r"more than the limit of 1,000,000.*export_item"):
        export_network(scorer, "any", frame)
    item = frame.iloc[[5]]
    got = Oracle(export_item(scorer, "any", item).model).probabilities(item)[0]
    assert abs(got - scorer.probabilities(item)[0, -1]) <= TOLERANCE


def test_values_outside_the_network_are_refused(world: tuple[pd.DataFrame, Scorer]) -> None:
    frame, scorer = world
    oracle = Oracle(export_network(scorer, "exporter", frame).model)
    other = frame.iloc[[0]].copy()
    other["exporter_id"] = "X9"
    with pytest.raises(SisamError, match=r"exporter_id='X9' is not a state.*export_item"):
        oracle.probabilities(other)


def test_a_counted_stand_in_is_refused(knowledge: Knowledge) -> None:
    values = dict(VALUES, importer_id=["I1", UNSEEN_STAND_IN["string"]])
    frame, scorer = random_world(knowledge, seed=5, n=50, values=values)
    with pytest.raises(SisamError, match=r"stand-in .* was counted"):
        export_item(scorer, "tax_regime", frame.iloc[[0]])


def test_importing_the_adapter_does_not_import_pgmpy() -> None:
    code = "import sys, sisam.pgmpy_adapter; assert 'pgmpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


def test_a_frame_without_a_column_sisam_reads_is_refused(
    world: tuple[pd.DataFrame, Scorer],
) -> None:
    frame, scorer = world
    with pytest.raises(SisamError, match=r"lacks columns \['broker_id'\]"):
        export_network(scorer, "hs_code", frame.drop(columns="broker_id"))


def test_evidence_columns_are_exported_as_their_sources() -> None:
    """A band is a function of contract columns: the network of an error type an evidence
    model serves has those columns as parents, and pgmpy's inference still gives sisam's
    probabilities."""
    shipped = load_knowledge()
    values = {**VALUES, "pis_rate": [2.1, 1.65], "cofins_rate": [9.65, 7.6], "import_duty_rate": [14.0, 0.0],
              "ipi_rate": [5.0, 0.0], "acquisition_country": ["CN", "HK"], "unit": ["KG", "UN"],
              "related_party": ["N", "S"], "description": ["Stainless steel valve", "Cotton shirts"],
              "quantity": [1.0, 40.0]}
    frame, scorer = random_world(shipped, seed=3, values=values)
    exported = export_network(scorer, "pis_rate", frame.iloc[:40])
    assert {"pis_rate", "cofins_rate", "hs_code"} <= set(exported.columns)
    oracle = Oracle(exported.model)
    items = frame.iloc[:40]
    expected = scorer.probabilities(items)[:, shipped.label_ids.index("pis_rate")]
    assert np.allclose(oracle.probabilities(items), expected, rtol=0, atol=TOLERANCE)
