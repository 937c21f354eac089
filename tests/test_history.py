"""Chunked learning: the counts of a history are the sum of its chunks' counts, and the
knowledge base learnt chunk by chunk is the one learnt from the whole history, bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sisam import kb
from sisam.engine.counting import count_factor, merge_counts
from sisam.engine.counts import merge
from sisam.model import learn
from sisam.synth import generate_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    generate_world(6_000, 60, 3, out, test_days=10)
    return out


def _counts(seed: int, n: int):
    rng = np.random.default_rng(seed)
    # few distinct values: parts share many patterns, so merging must add them up
    keys = rng.integers(0, 50, size=(n, 3)).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    labels = rng.integers(0, 2, size=(n, 4)).astype(np.int8)
    labels[rng.random(n) < 0.5] = -1
    return count_factor(keys, labels, rng.integers(0, 3, size=n).astype(np.float64))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**32), st.integers(0, 400)), min_size=0, max_size=4))
def test_merge_counts_is_merge(parts_spec: list[tuple[int, int]]) -> None:
    parts = [_counts(seed, n) for seed, n in parts_spec]
    expected, got = merge(*parts), merge_counts(parts, 4)
    for field in expected._fields:
        np.testing.assert_array_equal(getattr(got, field), getattr(expected, field), err_msg=field)


def test_chunked_learning_equals_whole(world: Path, tmp_path: Path) -> None:
    history, rectified = world / "history.parquet", world / "rectified.parquet"
    whole = learn(history, rectified, tmp_path / "whole", fit_sample=300, seed=5)
    chunked = learn(history, rectified, tmp_path / "chunked", fit_sample=300, seed=5, chunk_rows=700)
    a, b = kb.open_version(whole.kb_dir), kb.open_version(chunked.kb_dir)
    assert whole.n_items > 5 * 700  # several chunks, some inspected items in each
    assert a.content_hash == b.content_hash
    assert a.provenance == b.provenance
