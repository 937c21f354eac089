"""Legislation as knowledge: correlation and rates tables validated with file, row and
column; a correlation applied to a knowledge base makes new lines score as their
predecessors, without retraining."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from sisam import kb, legislation
from sisam.cli import cli
from sisam.errors import InputError
from sisam.knowledge import load_knowledge
from sisam.model import Scorer, learn
from sisam.synth import generate_world


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_correlation_is_read_and_every_defect_named_by_file_row_and_column(tmp_path: Path):
    good = _write(tmp_path / "good.csv", "old_code,new_code,share,effective_date\n"
                  "85171200,85171300,0.7,2025-01-01\n85171200,85171400,0.3,2025-01-01\n\n"
                  "84818010,84818099,1,2025-02-01\n84818020,84818099,1,2025-02-01\n")
    table = legislation.read_correlation(good)
    assert table.new_code == ("85171300", "85171400", "84818099", "84818099")
    assert table.effective_date[0] == dt.date(2025, 1, 1)
    assert legislation.Correlation.from_table(table.as_table()) == table
    bad = _write(tmp_path / "bad.csv", "old_code,new_code,share,effective_date\n"
                 "8517120,85171300,0.5,2025-01-01\n85171200,85171300,0.5,2025-13-01\n"
                 "84818010,84818099,0.4,2025-02-01\n84818099,84819000,1,2025-02-01\n"
                 "84821000,84821000,1,2025-02-01\n")
    with pytest.raises(InputError) as caught:
        legislation.read_correlation(bad)
    message = str(caught.value)
    for expected in (f"{bad}, row 1, column 'old_code': expected an 8-digit code; got '8517120'",
                     f"{bad}, row 2, column 'effective_date': expected a date YYYY-MM-DD; got '2025-13-01'",
                     f"{bad}, row 3, column 'new_code': 84818099 is also retired in this table",
                     f"{bad}, row 3, column 'share': the shares of 84818010 add up to 0.4; expected 1",
                     f"{bad}, row 5, column 'new_code': expected a code other than the old one"):
        assert expected in message
    with pytest.raises(InputError, match="expected the header old_code,new_code,share,effective_date"):
        legislation.read_correlation(_write(tmp_path / "h.csv", "old,new\n1,2\n"))


def test_rates_in_force_by_longest_prefix_then_latest_date(tmp_path: Path):
    rates = legislation.read_rates(_write(tmp_path / "rates.csv", "hs_code,rate,value,effective_date\n"
                                          "84,import_duty_rate,14,2024-01-01\n8481,import_duty_rate,12,2024-01-01\n"
                                          "8481,import_duty_rate,10,2024-07-01\n84,ipi_rate,5,2024-01-01\n"))
    codes = np.array(["84818010", "84818010", "84821000", "85171200", "84818010"])
    dates = np.array(["2024-03-01", "2024-08-01", "2024-08-01", "2024-08-01", "2023-12-31"])
    got = rates.rate_at("import_duty_rate", codes, dates)
    assert got[:4].tolist()[:3] == [12.0, 10.0, 14.0] and np.isnan(got[3]) and np.isnan(got[4])
    with pytest.raises(InputError, match=r"row 1, column 'rate': expected one of import_duty_rate"):
        legislation.read_rates(_write(tmp_path / "r.csv", "hs_code,rate,value,effective_date\n84,duty,1,2024-01-01\n"))


def test_successors_read_as_the_predecessor_with_most_trade_until_they_have_history():
    correlation = legislation.Correlation(("11111111", "22222222", "33333333"), ("99999999", "99999999", "88888888"),
                                          (1.0, 1.0, 1.0), (dt.date(2025, 1, 1),) * 3)
    successors = legislation.Successors(correlation, {"11111111": 10.0, "22222222": 40.0})
    assert successors.predecessor == {"99999999": "22222222", "88888888": "33333333"}
    resolved = successors.resolve(np.array(["99999999", "99999999", "88888888", "12345678"], dtype=object),
                                  np.array([0.0, legislation.INHERIT_BELOW, 3.0, 0.0]))
    assert resolved.tolist() == ["22222222", "99999999", "33333333", "12345678"]


@pytest.fixture(scope="module")
def learnt(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("legislation")
    generate_world(12_000, 90, 8, root / "world", test_days=15)
    learn(root / "world" / "history.parquet", root / "world" / "rectified.parquet", root / "kb", fit_sample=500)
    return root / "world", root / "kb"


def test_an_item_under_a_new_code_gets_the_knowledge_of_its_predecessor(learnt: tuple[Path, Path], tmp_path: Path):
    world, kb_source = learnt
    kb_dir = tmp_path / "kb"
    for path in kb_source.rglob("*"):
        target = kb_dir / path.relative_to(kb_source)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.name != "LOCK":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    knowledge = load_knowledge()
    history = pd.read_parquet(world / "history.parquet")
    test = pd.read_parquet(world / "test.parquet")
    old = test["hs_code"].value_counts().index[0]
    new = "99" + old[2:]  # a line in a chapter nobody declared: no shared hierarchy either
    assert not (history["hs_code"].str[:2] == "99").any()
    items = test[test["hs_code"] == old].reset_index(drop=True)
    renamed = items.assign(hs_code=new)

    before = Scorer.open(kb_dir, knowledge)
    as_old = before.probabilities(items)
    assert not np.array_equal(before.probabilities(renamed), as_old)

    table = _write(tmp_path / "corr.csv", f"old_code,new_code,share,effective_date\n{old},{new},1,2025-01-01\n")
    result = CliRunner().invoke(cli, ["kb", "apply-correlation", "--kb", str(kb_dir), "--table", str(table)])
    assert result.exit_code == 0, result.output
    version = kb.open_version(kb_dir, expected_catalog_hash=knowledge.hash)
    assert version.record.parent_version == before.version.version
    assert version.record.provenance.input_files == (str(table.resolve()),)
    for name, counts in version.counts.items():
        assert np.array_equal(counts.keys, before.version.counts[name].keys)

    after = Scorer.open(kb_dir, knowledge)
    assert np.array_equal(after.probabilities(renamed), as_old)
    assert np.array_equal(after.probabilities(items), as_old)
    scores = after.score_frame(renamed)
    assert (scores["hs_code_suggested_1"] != new).all()
