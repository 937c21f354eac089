"""The Spark tasks' plain-Arrow functions, without Spark: summing a shuffled share of count
rows (``partition.sum_partition``) gives one row per (factor, key, label, code) whose sums
are the rows' totals, however the rows come split into batches and ordered."""

from __future__ import annotations

import os
from collections import defaultdict
from itertools import pairwise

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from sisam.spark.partition import COUNT_SCHEMA, sum_partition

_row = st.tuples(
    st.integers(-1, 2),  # factor (-1: a declared code's row)
    st.sampled_from([0, 1, -(2**63), 2**63 - 1, 123456789]),  # key, as Spark's signed int64
    st.integers(-1, 3),  # label (-1: the pattern's n and N)
    st.sampled_from([None, "01012100", "8471.30"]),  # code
    st.integers(0, 2**40),  # a: whole counts, as the tasks emit
    st.integers(0, 2**40),  # b
)


def _batches(rows: list[tuple], cuts: list[int]) -> list[pa.RecordBatch]:
    bounds = sorted({0, len(rows), *(c % (len(rows) + 1) for c in cuts)})
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in COUNT_SCHEMA.names]
    table = pa.table(
        {name: pa.array([float(v) for v in col] if name in ("a", "b") else list(col), COUNT_SCHEMA.field(name).type)
         for name, col in zip(COUNT_SCHEMA.names, columns, strict=True)},
        schema=COUNT_SCHEMA,
    )
    return [b for lo, hi in pairwise(bounds) for b in table.slice(lo, hi - lo).to_batches()]


@settings(max_examples=200, deadline=None)
@given(st.lists(_row, max_size=60), st.lists(st.integers(0, 60), max_size=4), st.randoms())
def test_sums_each_pattern_label_and_code_once(rows: list[tuple], cuts: list[int], rng) -> None:
    rng.shuffle(rows)
    expected: dict[tuple, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for factor, key, label, code, a, b in rows:
        expected[factor, key, label, code][0] += a
        expected[factor, key, label, code][1] += b
    out = list(sum_partition(iter(_batches(rows, cuts))))
    assert all(batch.schema.equals(COUNT_SCHEMA) for batch in out)
    got = [r for batch in out for r in batch.to_pylist()]
    assert len(got) == len(expected)
    assert {(r["factor"], r["key"], r["label"], r["code"]): [r["a"], r["b"]] for r in got} == dict(expected)


def test_nothing_in_nothing_out() -> None:
    assert list(sum_partition(iter([]))) == []
    empty = pa.RecordBatch.from_pylist([], schema=COUNT_SCHEMA)
    assert list(sum_partition(iter([empty, empty]))) == []


def test_sums_stay_exact_where_float64_has_no_fraction_left() -> None:
    big = float(2**52)
    rows = [(0, 7, -1, None, big, 1.0), (0, 7, -1, None, 1.0, 2.0), (0, 7, 2, None, 3.0, 0.0)]
    (batch,) = list(sum_partition(iter(_batches(rows, [1]))))
    summed = {(r["label"]): (r["a"], r["b"]) for r in batch.to_pylist()}
    assert summed == {-1: (big + 1.0, 3.0), 2: (3.0, 0.0)}
    assert np.float64(big + 1.0) != np.float64(big)


def test_count_folders_of_killed_runs_are_removed_and_others_kept(tmp_path) -> None:
    import subprocess
    import sys

    from sisam.spark import COUNTS_PREFIX, _fresh_counts_dir

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    killed = tmp_path / f"{COUNTS_PREFIX}{gone.stdout.strip()}-abc"  # its driver has exited
    running = tmp_path / f"{COUNTS_PREFIX}{os.getpid()}-def"  # this process: still running
    legacy = tmp_path / f"{COUNTS_PREFIX}7xgmgf2j"  # an older sisam's name: no process id to check
    for folder in (killed, running, legacy):
        (folder / "patterns").mkdir(parents=True)
    fresh = _fresh_counts_dir(tmp_path)
    assert not killed.exists() and running.exists() and legacy.exists()
    assert fresh.name.startswith(f"{COUNTS_PREFIX}{os.getpid()}-") and fresh.is_dir()
