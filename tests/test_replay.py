"""Reasoning logs and their replay: complete, canonical, hash-chained records from which
every probability is recomputed bit for bit; every kind of tampering found at its record."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from explanation_world import World, build_world, create_kb, random_frame, random_labels

from sisam.cli import cli
from sisam.errors import InputError
from sisam.model import score
from sisam.reasoning_log import (
    ReasoningLogWriter,
    canonical_bytes,
    last_hash,
    read_records,
    record_hash,
)
from sisam.replay import ReplayError, replay

N_ITEMS = 6


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("world"), seed=23)


@pytest.fixture(scope="module")
def logged(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log of ``N_ITEMS`` items, written once; tests tamper with copies."""
    path = tmp_path_factory.mktemp("log") / "reasoning.jsonl"
    with ReasoningLogWriter(path, world.scorer(), lang="pt-BR") as writer:
        writer.score_frame(world.test.iloc[:N_ITEMS])
    return path


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def write_lines(path: Path, content: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in content))
    return path


def fields(report) -> set[tuple[int, str]]:
    return {(f.record, f.field) for f in report.findings}


def test_records_are_complete_canonical_and_chained(world: World, logged: Path):
    records = [json.loads(line) for line in lines(logged)]
    n_labels = len(world.knowledge.label_ids)
    assert len(records) == 1 + N_ITEMS * (1 + n_labels) + 1
    assert [r["kind"] for r in records[:3]] == ["header", "item", "error"]
    assert records[-1] == {**records[-1], "kind": "end", "items": N_ITEMS, "records": len(records)}
    for number, (line, record) in enumerate(zip(lines(logged), records, strict=True), start=1):
        assert line == canonical_bytes(record)
        assert record["seq"] == number
        if number > 1:
            assert record["prev"] == record_hash(records[number - 2])
    assert last_hash(logged) == record_hash(records[-1])
    header, item, error = records[0], records[1], records[2]
    assert header["kb"]["version"] == 1 and header["lang"] == "pt-BR" and not header["pseudonymised"]
    assert [f["name"] for f in header["knowledge"]["factors"]] == list(world.knowledge.factors)
    # what was read: the item's values as declared
    first = world.test.iloc[0]
    assert item["read"]["hs_code"] == first["hs_code"] and item["read"]["customs_value_usd"] == first["customs_value_usd"]
    classification = item["factors"]["classification"]
    assert classification["patterns"][-1]["hs_code"] == ["value", first["hs_code"]]
    assert len(classification["keys"]) == len(classification["n"]) == len(classification["patterns"])
    # the error record: coefficients, every pattern's numbers, the explanation's template and values
    assert error["error"] == "hs_code" and error["item"] == 2
    assert set(error["factors"]) == set(world.knowledge.networks["hs_code"].factors)
    for name, entry in error["factors"].items():
        size = len(item["factors"][name]["n"])
        assert all(len(entry[key]) == size for key in ("k", "lo_prior", "lo_posterior", "contribution"))
    total = sum(sum(entry["contribution"]) + entry["root_offset"] for entry in error["factors"].values())
    assert total == pytest.approx(error["lift"], abs=1e-9)
    assert error["explanation"]["template"] == "error.txt"
    assert error["explanation"]["values"]["probability"] == error["probability"]


def test_an_untouched_log_replays_bit_for_bit(world: World, logged: Path):
    report = replay(logged)
    assert report.ok, report.render()
    assert report.items == N_ITEMS and report.probabilities == N_ITEMS * len(world.knowledge.label_ids)
    with_kb = replay(logged, world.kb_dir)
    assert with_kb.ok, with_kb.render()
    assert "all identical, chain intact" in with_kb.render()


def test_an_edited_number_is_found_at_its_record(logged: Path, tmp_path: Path):
    content = lines(logged)
    record = json.loads(content[4])  # record 5: an error record of the first item
    record["probability"] = record["probability"] * 0.5
    content[4] = canonical_bytes(record)
    report = replay(write_lines(tmp_path / "edited.jsonl", content))
    assert (5, "probability") in fields(report)
    assert (6, "prev") in fields(report)  # the chain: record 5 is not what record 6 followed
    assert "record 5: probability: logged" in report.render()


def test_an_edited_count_changes_what_it_explains(logged: Path, tmp_path: Path):
    content = lines(logged)
    record = json.loads(content[2])  # record 3: hs_code of the first item
    shape = int(np.argmax(record["factors"]["classification"]["k"]))
    record["factors"]["classification"]["k"][shape] -= 1.0
    content[2] = canonical_bytes(record)
    found = fields(replay(write_lines(tmp_path / "count.jsonl", content)))
    assert (3, f"factors.classification.lo_posterior[{shape}]") in found
    assert (3, "probability") in found and (4, "prev") in found


def test_a_deleted_record_is_found(logged: Path, tmp_path: Path):
    content = lines(logged)
    del content[9]
    found = fields(replay(write_lines(tmp_path / "deleted.jsonl", content)))
    assert (10, "seq") in found and (10, "prev") in found
    assert (len(content), "records") in found  # the end record counts one more


def test_swapped_records_are_found(logged: Path, tmp_path: Path):
    content = lines(logged)
    content[6], content[7] = content[7], content[6]
    found = fields(replay(write_lines(tmp_path / "swapped.jsonl", content)))
    assert {(7, "seq"), (8, "seq"), (7, "prev"), (8, "prev")} <= found


def test_a_cut_log_is_found(logged: Path, tmp_path: Path):
    content = lines(logged)[:-5]
    report = replay(write_lines(tmp_path / "cut.jsonl", content))
    assert (len(content), "end") in fields(report)


def test_another_knowledge_base_is_refused(world: World, logged: Path, tmp_path: Path):
    other = random_frame(99, 800)
    create_kb(tmp_path / "other", world.knowledge, other, random_labels(other, 99), 99)
    with pytest.raises(ReplayError, match="a different knowledge base"):
        replay(logged, tmp_path / "other")
    header = json.loads(lines(logged)[0])
    header["kb"]["version"] = 7
    content = [canonical_bytes(header), *lines(logged)[1:]]
    with pytest.raises(ReplayError, match="written with version 7"):
        replay(write_lines(tmp_path / "seven.jsonl", content), world.kb_dir)


def test_score_writes_the_log_and_the_same_scores(world: World, tmp_path: Path):
    plain, logged_scores, log = tmp_path / "plain.parquet", tmp_path / "logged.parquet", tmp_path / "r.jsonl.gz"
    score(world.test_file, world.kb_dir, plain, knowledge=world.knowledge)
    score(world.test_file, world.kb_dir, logged_scores, knowledge=world.knowledge, log=log, pseudonymise=True)
    pd.testing.assert_frame_equal(pd.read_parquet(plain), pd.read_parquet(logged_scores), check_exact=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logged.parquet", "plain.parquet", "r.jsonl.gz"]
    text = gzip.decompress(log.read_bytes()).decode()
    for column in ("importer_id", "hs_code", "exporter_id"):
        for value in world.test[column].unique():
            assert f'"{value}"' not in text, f"{column} {value} leaked into a pseudonymised log"
    item = next(line.record for line in read_records(log) if line.record["kind"] == "item")
    assert len(item["read"]["importer_id"]) == 64  # a sha256
    assert replay(log, world.kb_dir).ok


def test_a_failed_scoring_leaves_no_log(world: World, tmp_path: Path):
    broken = tmp_path / "broken.csv"
    frame = world.test.copy()
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")
    frame.loc[3, "item_no"] = frame.loc[2, "item_no"]
    frame.loc[3, "declaration_id"] = frame.loc[2, "declaration_id"]  # a duplicate key
    frame.to_csv(broken, index=False)
    with pytest.raises(InputError):
        score(broken, world.kb_dir, tmp_path / "s.csv", knowledge=world.knowledge, log=tmp_path / "r.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.csv"]


def test_command_line(world: World, tmp_path: Path):
    runner = CliRunner()
    log = tmp_path / "r.jsonl"
    knowledge = ["--knowledge", world.knowledge.source]
    args = ["score", "--declarations", str(world.test_file), "--kb", str(world.kb_dir), "--out", str(tmp_path / "s.csv"), "--log", str(log), *knowledge]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert f"last record sha256 {last_hash(log)}" in result.output
    result = runner.invoke(cli, ["replay", str(log), "--kb", str(world.kb_dir)])
    assert result.exit_code == 0 and "all identical, chain intact" in result.output
    content = lines(log)
    record = json.loads(content[40])
    record["log_odds"] = record["log_odds"] + 1.0
    content[40] = canonical_bytes(record)
    result = runner.invoke(cli, ["replay", str(write_lines(tmp_path / "t.jsonl", content))])
    assert result.exit_code == 1 and "record 41: log_odds: logged" in result.output
    other = random_frame(98, 600)
    create_kb(tmp_path / "other", world.knowledge, other, random_labels(other, 98), 98)
    result = runner.invoke(cli, ["replay", str(log), "--kb", str(tmp_path / "other")])
    assert result.exit_code == 1 and "a different knowledge base" in result.output
    row = world.test.iloc[2]
    item = f"{row['declaration_id']}/{row['item_no']}"
    args = ["explain", "--kb", str(world.kb_dir), "--declarations", str(world.test_file), "--item", item, "--lang", "pt-BR", *knowledge]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Declaração {row['declaration_id']}, item {row['item_no']}")
    result = runner.invoke(cli, [*args[:5], "--item", "nope/1", *knowledge])
    assert result.exit_code == 1 and "no item 1 of declaration 'nope'" in result.output
