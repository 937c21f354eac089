"""Learning side of the engine: level codes, pattern keys and counting, each checked
against its plain-Python twin (``sisam.engine.reference_counting``) on small worlds."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sisam.engine import reference_counting as ref
from sisam.engine.counting import count_factor, count_factor_codes
from sisam.engine.counts import PatternCounts, merge
from sisam.engine.keys import (
    SHAPE_BITS,
    distinct_factor_keys,
    distinct_rows,
    factor_keys,
    factor_salt,
    pattern_keys,
    pattern_keys_block,
    stack_codes,
)
from sisam.engine.lattice import build_lattice
from sisam.engine.levels import level_codes, parse_level

ROOT = Path(__file__).resolve().parents[1]
# Kernels compile on their first call; examples are small, so only that call is slow.
# Derandomized: the same examples on every run (the house rule: every random choice
# takes a seed), so that a failure is reproducible and CI cannot fail by chance.
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

ATTRIBUTES = [  # (levels, type) of a small factor touching every kind of level
    (("value", "prefix:4", "prefix:2"), "nominal"),
    (("value",), "nominal"),
    (("value", "log2band:1", "log2band:0.5"), "numeric"),
    (("month", "year"), "date"),
]


def assert_counts_equal(
    got: PatternCounts, expected: PatternCounts, check_dtype: bool = True
) -> None:
    for name, a, b in zip(PatternCounts._fields, got, expected, strict=True):
        if check_dtype:
            assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)


def assert_well_formed(counts: PatternCounts, n_labels: int) -> None:
    assert (np.diff(counts.keys.astype(object)) > 0).all(), "keys sorted and unique"
    assert counts.err_ptr[0] == 0 and counts.err_ptr[-1] == counts.err_label.size
    assert (np.diff(counts.err_ptr) >= 0).all()
    for r in range(counts.n_patterns):
        labels = counts.err_label[counts.err_ptr[r] : counts.err_ptr[r + 1]]
        assert (np.diff(labels) > 0).all(), "labels ascending within a pattern"
    assert ((counts.err_label >= 0) & (counts.err_label < n_labels)).all()
    assert (counts.err_k > 0).all()
    assert (counts.n <= counts.N).all()


def world(
    seed: int, n: int, n_labels: int = 5
) -> tuple[list[list[object]], np.ndarray, np.ndarray]:
    """Columns for ``ATTRIBUTES``, labels (half inspected) and integer weights (some 0)."""
    rng = np.random.default_rng(seed)
    columns: list[list[object]] = [
        [f"{x:08d}" for x in rng.integers(0, 40, n) * 1013],
        list(rng.choice(np.array(["a", "b", " b ", "", None], dtype=object), n)),
        list(rng.choice([0.0, -0.0, -1.5, np.nan, 3.5, 1000.0, 1e9, np.inf], n)),
        list(rng.choice(np.array(["2024-01-05", "2024-01-31", "", "2023-12-31"]), n)),
    ]
    labels = np.full((n, n_labels), -1, dtype=np.int8)
    inspected = rng.random(n) < 0.5
    labels[inspected] = rng.random((int(inspected.sum()), n_labels)) < 0.3
    weights = rng.integers(0, 4, n).astype(np.float64)
    return columns, labels, weights


def world_keys(columns: list[list[object]], name: str = "f") -> np.ndarray:
    codes = [
        level_codes(pd.Series(col, dtype=object), levels, kind)
        for col, (levels, kind) in zip(columns, ATTRIBUTES, strict=True)
    ]
    return factor_keys(name, codes, build_lattice([len(levels) for levels, _ in ATTRIBUTES]))


# ---------------------------------------------------------------------------- levels


def test_level_codes_are_pinned() -> None:
    """Codes are stored in knowledge bases: a change of hashing must be deliberate (bump
    ``levels.CODE_VERSION``), never a side effect of an upgrade of pandas or numpy."""
    hs = level_codes(pd.Series(["84713012", ""]), ("value", "prefix:2"), "nominal")
    assert hs.tolist() == [
        [17075194661194387002, 11622457946782529048],
        [17451804123103805718, 13823225523877507158],
    ]
    value = level_codes(np.array([1000.0, 0.0]), ("value", "log2band:1"), "numeric")
    assert value.tolist() == [
        [14966073190322428687, 17649526697804590234],
        [13107716011065601780, 11586950672459953019],
    ]
    day = level_codes(pd.Series(["2024-03-15"]), ("value", "month", "year"), "date")
    assert day.tolist() == [[6326583880637037151, 14770158722191130212, 2326174762061780704]]
    assert int(factor_salt("classification")) == 16371664327460344857


def test_level_codes_are_the_same_in_another_process() -> None:
    script = (
        "import pandas as pd; from sisam.engine.levels import level_codes;"
        "print(level_codes(pd.Series(['BR', ' cn', '']), ('value', 'prefix:1'), 'nominal').tolist())"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout
    here = level_codes(pd.Series(["BR", " cn", ""]), ("value", "prefix:1"), "nominal")
    assert out.strip() == str(here.tolist())


def test_string_levels_distinguish_what_they_must() -> None:
    values = pd.Series(["8471", " 8471 ", "84", "", None, np.nan], dtype=object)
    codes = level_codes(values, ("value", "prefix:2"), "nominal")
    value, prefix = codes[:, 0], codes[:, 1]
    assert value[0] == value[1], "white space around a value is not part of it"
    assert value[0] != value[2]
    assert prefix[0] == prefix[2], "8471 and 84 share their first two characters"
    assert value[2] != prefix[2], "84 as a value is not 84 as a prefix"
    assert value[3] != value[4], "declared empty is not missing"
    assert value[4] == value[5], "None and NaN are both missing"
    assert len(set(value.tolist())) == 4


def test_numeric_bands_keep_special_values_apart() -> None:
    x = np.array([1.0, 1.9, 2.0, 0.0, -0.0, -3.0, -7.0, np.nan, np.inf, 0.75])
    value, band = level_codes(x, ("value", "log2band:1"), "numeric").T
    assert band[0] == band[1] != band[2], "log2 band 0 is [1, 2)"
    assert value[3] == value[4] and band[3] == band[4], "-0.0 is 0.0"
    assert band[5] == band[6], "every negative number shares one code"
    special = {band[3], band[5], band[7], band[8]}
    assert len(special) == 4 and not special & {band[0], band[2], band[9]}
    coarse = level_codes(np.array([1.0, 7.9, 8.0]), ("log2band:3",), "numeric")[:, 0]
    assert coarse[0] == coarse[1] != coarse[2]


def test_dates_from_strings_and_datetimes_agree() -> None:
    text = pd.Series(["2024-01-05", "2024-01-31", "2024-02-01", "", None], dtype=object)
    stamps = pd.to_datetime(pd.Series(["2024-01-05", "2024-01-31", "2024-02-01", None, None]))
    levels = ("value", "month", "year")
    from_text = level_codes(text, levels, "date")
    np.testing.assert_array_equal(from_text, level_codes(stamps, levels, "date"))
    day, month, year = from_text.T
    assert len(set(day[:3].tolist())) == 3
    assert month[0] == month[1] != month[2]
    assert year[0] == year[2]
    assert day[3] == day[4], "a blank date is a missing date"


@given(
    st.lists(st.one_of(st.text(max_size=6), st.none()), min_size=1, max_size=30),
    st.lists(
        st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)),
        min_size=1,
        max_size=30,
    ),
    st.lists(
        st.one_of(st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31)), st.none()),
        min_size=1,
        max_size=30,
    ),
)
@SETTINGS
def test_level_codes_match_the_reference(
    strings: list[str | None], numbers: list[float], dates: list[dt.date | None]
) -> None:
    cases = [
        (strings, ("value", "prefix:3", "prefix:1"), "text"),
        (
            [float(x) for x in numbers],
            ("value", "log2band:1", "log2band:2", "log2band:0.5"),
            "numeric",
        ),
        ([d.isoformat() if d else "" for d in dates], ("value", "month", "year"), "date"),
    ]
    for values, levels, kind in cases:
        series = pd.Series(values, dtype=object if kind != "numeric" else np.float64)
        got = level_codes(series, levels, kind)
        expected = [[ref.level_code(v, level, kind) for level in levels] for v in values]
        assert got.tolist() == expected, kind


def test_level_names_are_checked() -> None:
    for level, kind in [("prefix:0", "nominal"), ("log2band:x", "numeric"),
                        ("month", "nominal"), ("prefix:2", "numeric"), ("value:1", "date")]:  # fmt: skip
        with pytest.raises(ValueError, match="level"):
            parse_level(level, kind)
    with pytest.raises(ValueError, match="attribute type"):
        level_codes(pd.Series(["a"]), ("value",), "colour")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        level_codes(pd.Series(["15/03/2024"]), ("value",), "date")


# ------------------------------------------------------------------------------ keys


@given(st.integers(0, 2**32), st.integers(1, 40), st.text(min_size=1, max_size=8))
@SETTINGS
def test_pattern_keys_match_the_reference(seed: int, n: int, name: str) -> None:
    rng = np.random.default_rng(seed)
    widths = (3, 1, 2)
    codes = [rng.integers(0, 2**63, (n, m)).astype(np.uint64) for m in widths]
    lattice = build_lattice(widths)
    keys = factor_keys(name, codes, lattice)
    salt = int(factor_salt(name))
    stacked, small_salt = stack_codes(codes), salt >> 1  # a Python int below 2**63 too
    np.testing.assert_array_equal(
        pattern_keys(stacked, lattice.levels, lattice.level_counts, small_salt),
        pattern_keys(stacked, lattice.levels, lattice.level_counts, np.uint64(small_salt)),
    )
    for i in range(n):
        for s in range(lattice.n_shapes):
            present = [
                int(codes[a][i, lattice.levels[s, a]])
                for a in range(len(widths))
                if lattice.levels[s, a] < widths[a]
            ]
            assert int(keys[i, s]) == ref.pattern_key(salt, s, present)


def test_root_key_is_shared_and_shapes_never_collide() -> None:
    rng = np.random.default_rng(7)
    n, widths = 2000, (4, 1, 1, 1)
    # Few distinct values, so that most patterns repeat within a shape.
    codes = [rng.integers(0, 5, (n, m)).astype(np.uint64) for m in widths]
    lattice = build_lattice(widths)
    keys = factor_keys("classification", codes, lattice)
    assert (keys[:, lattice.root] == keys[0, lattice.root]).all()
    shape_bits = keys >> np.uint64(64 - SHAPE_BITS)
    np.testing.assert_array_equal(
        shape_bits, np.broadcast_to(np.arange(lattice.n_shapes), keys.shape)
    )
    seen: dict[int, int] = {}
    for s in range(lattice.n_shapes):
        for key in np.unique(keys[:, s]).tolist():
            assert seen.setdefault(key, s) == s, "a key shared by two shapes"
    other = factor_keys("trade_pair", codes, lattice)
    assert not set(other.ravel().tolist()) & set(seen), "factors keep their keys apart"


def test_a_block_of_keys_is_a_slice_of_the_keys_transposed() -> None:
    rng = np.random.default_rng(3)
    widths = (4, 1, 1, 1)
    lattice = build_lattice(widths)
    codes = stack_codes([rng.integers(0, 2**63, (50, m)).astype(np.uint64) for m in widths])
    salt = factor_salt("f")
    keys = pattern_keys(codes, lattice.levels, lattice.level_counts, salt)
    block = np.empty((7, 50), dtype=np.uint64)
    pattern_keys_block(codes, lattice.levels, lattice.level_counts, salt, 30, block)
    np.testing.assert_array_equal(block, keys[:, 30:37].T)


@given(st.integers(0, 2**32), st.integers(0, 60), st.integers(1, 4))
@SETTINGS
def test_distinct_rows_group_exactly_the_equal_rows(seed: int, n: int, values: int) -> None:
    rng = np.random.default_rng(seed)
    widths = (3, 1, 2)
    codes = [rng.integers(0, values, (n, m)).astype(np.uint64) for m in widths]
    lattice = build_lattice(widths)
    stacked = stack_codes(codes)
    stacked[:, 1, 1:] = rng.integers(0, 2**63, (n, 2)).astype(np.uint64)  # padding: never read
    inverse, first = distinct_rows(stacked, lattice.level_counts)
    groups: dict[tuple[int, ...], int] = {}  # the obvious way: rows as tuples, in order
    for i in range(n):
        row = tuple(int(c) for a in range(len(widths)) for c in codes[a][i])
        assert inverse[i] == groups.setdefault(row, len(groups))
    assert first.tolist() == [int(np.flatnonzero(inverse == g)[0]) for g in range(len(groups))]
    distinct = distinct_factor_keys("f", codes, lattice)
    np.testing.assert_array_equal(distinct.keys[distinct.inverse], factor_keys("f", codes, lattice))


def test_distinct_rows_keep_rows_sharing_a_slot_apart() -> None:
    """Thousands of rows in a table of 16,384 slots: many share a home slot, and each is
    found again past the others on its probe sequence."""
    lattice = build_lattice((1,))
    n = 5000
    codes = np.arange(n, dtype=np.uint64).reshape(n, 1, 1)
    inverse, first = distinct_rows(np.concatenate([codes, codes]), lattice.level_counts)
    np.testing.assert_array_equal(inverse, np.r_[np.arange(n), np.arange(n)])
    np.testing.assert_array_equal(first, np.arange(n))


def test_pattern_keys_ignore_padding_and_check_widths() -> None:
    codes = [np.arange(6, dtype=np.uint64).reshape(3, 2), np.arange(3, dtype=np.uint64)[:, None]]
    lattice = build_lattice((2, 1))
    stacked = stack_codes(codes)
    assert stacked.shape == (3, 2, 2)
    noisy = stacked.copy()
    noisy[:, 1, 1] = 99  # padding of the one-level attribute: never read
    salt = factor_salt("f")
    np.testing.assert_array_equal(
        pattern_keys(stacked, lattice.levels, lattice.level_counts, salt),
        pattern_keys(noisy, lattice.levels, lattice.level_counts, salt),
    )
    with pytest.raises(ValueError, match="level counts"):
        factor_keys("f", codes, build_lattice((1, 1)))
    too_many = np.zeros((257, 2), dtype=np.int8)  # the shape must fit the key's top byte
    with pytest.raises(ValueError, match="256 shapes"):
        pattern_keys(stacked, too_many, lattice.level_counts, salt)


# -------------------------------------------------------------------------- counting


@given(st.integers(0, 2**32), st.integers(0, 60))
@SETTINGS
def test_counting_matches_the_reference(seed: int, n: int) -> None:
    """End to end: values -> codes -> keys -> counts, against Counter over patterns."""
    columns, labels, weights = world(seed, n)
    counts = count_factor(world_keys(columns), labels, weights)
    lattice = build_lattice([len(levels) for levels, _ in ATTRIBUTES])
    codes = [
        level_codes(pd.Series(col, dtype=object), levels, kind)
        for col, (levels, kind) in zip(columns, ATTRIBUTES, strict=True)
    ]
    assert_counts_equal(count_factor_codes("f", codes, lattice, labels, weights), counts)
    expected = ref.count_patterns(
        columns, ATTRIBUTES, lattice, int(factor_salt("f")), labels, weights
    )
    assert_counts_equal(counts, expected)
    assert_well_formed(counts, labels.shape[1])


@given(st.integers(0, 2**32), st.integers(0, 80), st.data())
@SETTINGS
def test_counts_are_additive(seed: int, n: int, data: st.DataObject) -> None:
    columns, labels, weights = world(seed, n)
    keys = world_keys(columns)
    cut = data.draw(st.integers(0, n))
    whole = count_factor(keys, labels, weights)
    parts = merge(
        count_factor(keys[:cut], labels[:cut], weights[:cut]),
        count_factor(keys[cut:], labels[cut:], weights[cut:]),
    )
    # Values only: ``merge`` of parts without errors returns int64 error counts (see
    # test_merge_keeps_error_counts_float below).
    assert_counts_equal(whole, parts, check_dtype=False)


def test_merge_keeps_error_counts_float() -> None:
    keys = np.arange(6, dtype=np.uint64).reshape(2, 3)
    no_errors = np.zeros((2, 4), dtype=np.int8)
    merged = merge(count_factor(keys[:1], no_errors[:1]), count_factor(keys[1:], no_errors[1:]))
    assert merged.err_k.dtype == np.float64


@given(st.integers(0, 2**32), st.integers(1, 60))
@SETTINGS
def test_counts_do_not_depend_on_item_order(seed: int, n: int) -> None:
    columns, labels, weights = world(seed, n)
    keys = world_keys(columns)
    order = np.random.default_rng(seed).permutation(n)
    assert_counts_equal(
        count_factor(keys, labels, weights),
        count_factor(keys[order], labels[order], weights[order]),
    )


def test_unlabelled_items_count_only_in_N() -> None:
    columns, labels, _ = world(3, 50)
    keys = world_keys(columns)
    base = count_factor(keys, labels)
    extra = labels.copy()
    extra[:] = -1
    both = count_factor(np.concatenate([keys, keys]), np.concatenate([labels, extra]))
    np.testing.assert_array_equal(both.keys, base.keys)
    np.testing.assert_array_equal(both.N, 2 * base.N)
    np.testing.assert_array_equal(both.n, base.n)
    np.testing.assert_array_equal(both.err_k, base.err_k)
    root = np.searchsorted(base.keys, keys[0, 0])
    assert base.N[root] == 50 and base.n[root] == (labels[:, 0] >= 0).sum()


def test_a_weight_counts_as_that_many_copies() -> None:
    columns, labels, weights = world(5, 40)
    keys = world_keys(columns)
    copies = np.repeat(np.arange(40), weights.astype(int))
    assert_counts_equal(
        count_factor(keys, labels, weights), count_factor(keys[copies], labels[copies])
    )
    half = count_factor(keys, labels, weights / 2)
    np.testing.assert_array_equal(half.N, count_factor(keys, labels, weights).N / 2)


def test_equal_keys_add_up_like_merge() -> None:
    """Keys are opaque to counting: two patterns sharing a key (a 64-bit collision, here
    forced by hand) are one pattern, exactly as ``counts.merge`` would sum them."""
    keys = np.array([[1, 1, 2], [2, 3, 3], [1, 5, 1]], dtype=np.uint64)
    labels = np.array([[1, 0], [-1, -1], [0, 1]], dtype=np.int8)
    counts = count_factor(keys, labels)
    assert_counts_equal(counts, ref.count_keys(keys, labels))
    assert counts.keys.tolist() == [1, 2, 3, 5]
    assert counts.N.tolist() == [4.0, 2.0, 2.0, 1.0]
    assert counts.n.tolist() == [4.0, 1.0, 0.0, 1.0]
    assert counts.dense_errors(2).tolist() == [[2.0, 2.0], [1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]


@pytest.mark.parametrize("mixed", [True, False])
def test_large_enough_to_grow_tables_and_bucket_the_merge(mixed: bool) -> None:
    """Thousands of patterns: tables double several times, and since these keys do not
    carry their shape in their top bits, the shapes are interleaved by the general merge
    in many buckets. Small integers (unmixed) share most of their top bits: the tables
    hash by the bits below, and the merge's bins degrade to insertion sort."""
    rng = np.random.default_rng(11)
    n, n_shapes = 3000, 4
    keys = rng.integers(0, 2500, (n, n_shapes)).astype(np.uint64) * np.uint64(n_shapes)
    keys += np.arange(n_shapes, dtype=np.uint64)
    if mixed:
        keys = rng.integers(0, 2**63, (2500, n_shapes)).astype(np.uint64)[rng.integers(0, 2500, n)]
    labels = np.where(rng.random((n, 31)) < 0.05, 1, 0).astype(np.int8)
    labels[rng.random(n) < 0.3] = -1
    weights = rng.integers(0, 3, n).astype(np.float64)
    counts = count_factor(keys, labels, weights)
    assert counts.n_patterns > 1024
    assert_counts_equal(counts, ref.count_keys(keys, labels, weights))
    assert_well_formed(counts, 31)


def test_empty_and_weightless_inputs() -> None:
    keys = np.zeros((0, 3), dtype=np.uint64)
    assert_counts_equal(count_factor(keys, np.zeros((0, 31), np.int8)), PatternCounts.empty())
    keys = np.arange(6, dtype=np.uint64).reshape(2, 3)
    labels = np.ones((2, 31), dtype=np.int8)
    assert count_factor(keys, labels, np.zeros(2)).n_patterns == 0


@pytest.mark.parametrize(
    ("keys", "labels", "weights", "message"),
    [
        (np.zeros((2, 3), np.int64), np.zeros((2, 4), np.int8), None, "uint64"),
        (np.zeros((2, 3), np.uint64), np.zeros((3, 4), np.int8), None, "labels"),
        (np.zeros((2, 3), np.uint64), np.array([[0, 2], [0, 0]], np.int8), None, "0/1"),
        (np.zeros((2, 3), np.uint64), np.array([[0, -1], [0, 0]], np.int8), None, "whole row"),
        (np.zeros((2, 3), np.uint64), np.zeros((2, 4), np.int8), np.array([1.0, -1.0]), ">= 0"),
        (np.zeros((2, 3), np.uint64), np.zeros((2, 4), np.int8), np.array([1.0, np.nan]), ">= 0"),
    ],
)
def test_bad_inputs_are_refused(keys, labels, weights, message) -> None:
    with pytest.raises(ValueError, match=message):
        count_factor(keys, labels, weights)
