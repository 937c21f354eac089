"""Scoring with the knowledge base streamed from disk a batch at a time gives the same bits
as scoring with it loaded whole; ``kb info`` reports what each way needs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from sisam import kb
from sisam.cli import cli
from sisam.errors import SisamError
from sisam.model import learn, score
from sisam.synth import generate_world


@pytest.fixture(scope="module")
def learnt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("world")
    generate_world(5_000, 60, 4, out, test_days=20)
    learn(out / "history.parquet", out / "rectified.parquet", out / "kb", fit_sample=300)
    return out, out / "kb"


def test_streamed_scores_equal_loaded_scores(learnt: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world, kb_dir = learnt
    items = world / "test.parquet"
    monkeypatch.setattr(kb, "STREAM_BATCH_ROWS", 300)  # several batches, each its own subset
    loaded = score(items, kb_dir, tmp_path / "loaded.parquet")
    streamed = score(items, kb_dir, tmp_path / "streamed.parquet", stream_kb=True, stream_memory_limit="256MB")
    # batches set by the caller, through the command line
    result = CliRunner().invoke(cli, ["score", "--declarations", str(items), "--kb", str(kb_dir), "--out",
                                      str(tmp_path / "small.parquet"), "--stream-kb", "--stream-batch-rows", "250", "--quiet"])
    assert result.exit_code == 0, result.output
    assert loaded.n_items == streamed.n_items > 3 * 300
    a = pq.read_table(tmp_path / "loaded.parquet")
    for other in ("streamed", "small"):
        b = pq.read_table(tmp_path / f"{other}.parquet")
        for name in a.column_names:
            x, y = a.column(name).to_numpy(), b.column(name).to_numpy()
            assert np.array_equal(x.view(np.uint64), y.view(np.uint64)) if x.dtype == np.float64 else (x == y).all()
    refused = CliRunner().invoke(cli, ["score", "--declarations", str(items), "--kb", str(kb_dir), "--out",
                                       str(tmp_path / "x.parquet"), "--stream-batch-rows", "250"])
    assert refused.exit_code == 2 and "add --stream-kb" in refused.output
    for rows, stream in ((250, False), (0, True)):
        with pytest.raises(SisamError, match="stream_batch_rows"):
            score(items, kb_dir, tmp_path / "y.parquet", stream_kb=stream, stream_batch_rows=rows)


def test_open_patterns_loads_only_the_wanted_patterns(learnt: tuple[Path, Path]) -> None:
    _, kb_dir = learnt
    whole = kb.open_version(kb_dir)
    name, counts = next(iter(whole.counts.items()))
    rows = np.array([0, 3, counts.n_patterns - 1])
    wanted = np.concatenate([counts.keys[rows], counts.keys[rows], [np.uint64(12345)]])  # repeats, a miss
    subset = kb.open_patterns(kb_dir, {name: wanted})
    assert subset.content_hash == whole.content_hash
    got = subset.counts[name]
    np.testing.assert_array_equal(got.keys, counts.keys[rows])
    np.testing.assert_array_equal(got.N, counts.N[rows])
    np.testing.assert_array_equal(got.dense_errors(31), counts.dense_errors(31)[rows])
    assert all(c.n_patterns == 0 for f, c in subset.counts.items() if f != name)


def test_kb_info_reports_scoring_memory(learnt: tuple[Path, Path]) -> None:
    _, kb_dir = learnt
    facts = kb.info(kb_dir)
    memory = facts["scoring_memory_bytes"]
    # the counts alone take 32 bytes a pattern; the index at least as much again
    assert memory["load_all"] >= 64 * facts["n_patterns"]
    assert memory["stream_batch_rows"] == kb.STREAM_BATCH_ROWS and memory["stream_per_batch"] > 0
    # the extra tables: at least their numbers' bytes once loaded, strings on top
    numbers = sum(column.nbytes for table in kb.open_version(kb_dir).tables.values() for column in table.values()
                  if column.dtype != object)
    assert numbers < memory["tables_whole"] < 3 * numbers


def test_streamed_scoring_refuses_a_log(learnt: tuple[Path, Path], tmp_path: Path) -> None:
    world, kb_dir = learnt
    with pytest.raises(SisamError, match="--stream-kb"):
        score(world / "test.parquet", kb_dir, tmp_path / "s.parquet", stream_kb=True, log=tmp_path / "log.jsonl")
