"""Labels: every rule of the error catalog, its tolerance edges and its missing-value policy."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sisam.labels
from sisam.contract import COLUMNS
from sisam.knowledge import load_knowledge
from sisam.labels import UNLABELLED, label_matrix, rule_holds

ERRORS = load_knowledge().errors
NUMBER_RULES = ("changed", "increased", "increased_beyond", "decreased_beyond", "differs_beyond")


def reference_rule(rule: str, d, r, tolerance: float, prefix: int, column_type: str) -> bool:
    """The slow, obvious twin: one pair of values, the module docstring's rules word for word."""
    if column_type == "string":
        ds = "" if d is None else str(d).strip()
        rs = "" if r is None else str(r).strip()
        if rule == "prefix_changed":
            return ds[:prefix] != rs[:prefix]
        return ds != rs
    dn = None if d is None or (isinstance(d, float) and math.isnan(d)) else float(d)
    rn = None if r is None or (isinstance(r, float) and math.isnan(r)) else float(r)
    if dn is None and rn is None:
        return False
    if dn is None or rn is None:
        # Missing ranks below every number.
        return {
            "changed": True,
            "differs_beyond": True,
            "increased": dn is None,
            "increased_beyond": dn is None,
            "decreased_beyond": rn is None,
        }[rule]
    if rule == "changed":
        return dn != rn
    if rule == "increased":
        return rn > dn
    if rule == "increased_beyond":
        return rn > dn * (1 + tolerance)
    if rule == "decreased_beyond":
        return rn < dn * (1 - tolerance)
    return abs(dn - rn) > tolerance * abs(rn)


def test_docstring_examples_hold():
    result = doctest.testmod(sisam.labels, raise_on_error=True)
    assert result.attempted >= 3


# --- tolerance edges -------------------------------------------------------------------------

positive = st.floats(min_value=1e-6, max_value=1e12, allow_nan=False, allow_infinity=False)


@given(d=positive)
def test_undervaluation_edge(d: float):
    # r exactly d * 1.05 is within tolerance; the next representable value above is not.
    r_edge = d * (1 + 0.05)
    r_above = np.nextafter(r_edge, np.inf)
    got = rule_holds("increased_beyond", [d, d], [r_edge, r_above], 0.05, column_type="number")
    assert got.tolist() == [False, True]


@given(d=positive)
def test_overvaluation_edge(d: float):
    r_edge = d * (1 - 0.05)
    r_below = np.nextafter(r_edge, -np.inf)
    got = rule_holds("decreased_beyond", [d, d], [r_edge, r_below], 0.05, column_type="number")
    assert got.tolist() == [False, True]


@pytest.mark.parametrize(
    ("tolerance", "declared", "expected"),
    [
        (0.05, 105.0, False),  # |d - r| == 5 % of r: at the edge, not an error
        (0.05, 95.0, False),
        (0.05, 105.001, True),
        (0.05, 94.999, True),
        (0.01, 101.0, False),
        (0.01, 99.0, False),
        (0.01, 101.001, True),
        (0.01, 98.999, True),
    ],
)
def test_differs_beyond_edges_are_relative_to_rectified(tolerance, declared, expected):
    got = rule_holds("differs_beyond", [declared], [100.0], tolerance, column_type="number")
    assert got.tolist() == [expected]


def test_differs_beyond_with_zero_rectified_value_flags_any_difference():
    got = rule_holds("differs_beyond", [0.0, 0.001], [0.0, 0.0], 0.05, column_type="number")
    assert got.tolist() == [False, True]


@given(d=st.floats(min_value=0, max_value=100, allow_nan=False), step=st.floats(0.0, 1.0))
def test_increased_is_strict(d: float, step: float):
    got = rule_holds("increased", [d, d, d], [d, d + step + 1e-3, d - step], column_type="number")
    assert got.tolist() == [False, True, False]


# --- strings: trimming and prefixes ----------------------------------------------------------

blank = st.sampled_from(["", " ", "  ", "\t", " \t "])
text = st.text(alphabet=st.characters(categories=["L", "N", "P"]), min_size=0, max_size=12)


@given(value=text, left=blank, right=blank, left2=blank, right2=blank)
def test_changed_ignores_surrounding_white_space(value, left, right, left2, right2):
    got = rule_holds("changed", [left + value + right], [left2 + value + right2])
    assert got.tolist() == [False]


@given(a=text, b=text)
def test_changed_strings_equals_reference(a, b):
    assert rule_holds("changed", [a], [b]).tolist() == [reference_rule("changed", a, b, 0, 0, "string")]


def test_string_rule_treats_missing_as_empty():
    declared = np.array([None, "", np.nan, None, "x"], dtype=object)
    rectified = np.array(["", None, " ", "x", None], dtype=object)
    assert rule_holds("changed", declared, rectified).tolist() == [False, False, False, True, True]


def test_string_columns_compare_as_strings_not_numbers():
    # valuation_method is a string column: "1" and "01" are different codes.
    assert rule_holds("changed", ["1", "1"], ["01", "1 "]).tolist() == [True, False]


@pytest.mark.parametrize(
    ("declared", "rectified", "expected"),
    [
        ("01012100", "01019000", False),  # same chapter 01
        ("01012100", "02012100", True),
        (" 01012100", "01012100 ", False),
        ("", "01012100", True),
        ("0", "01012100", True),  # a one-character code differs from its two-character prefix
    ],
)
def test_prefix_changed(declared, rectified, expected):
    assert rule_holds("prefix_changed", [declared], [rectified], prefix=2).tolist() == [expected]


# --- numbers given as strings ----------------------------------------------------------------


@given(x=st.floats(min_value=-1e9, max_value=1e9, allow_nan=False))
def test_numbers_as_strings_compare_as_numbers(x: float):
    spellings = [repr(x), f"{x:.17g}", f" {x!r} ", f"{x:e}" if x == float(f"{x:e}") else repr(x)]
    got = rule_holds("changed", spellings, [x] * len(spellings), column_type="number")
    assert not got.any()


def test_numeric_string_spellings_of_one_rate_are_unchanged():
    got = rule_holds("changed", ["5", "5.0", "5e0", " 5 ", "", "5"], ["5.00", "5", "5", "5", "", "6"],
                     column_type="number")
    assert got.tolist() == [False, False, False, False, False, True]


def test_unparsable_number_is_a_clear_error():
    with pytest.raises(ValueError, match=r"expected a number.*got '5,0' at position 1"):
        rule_holds("changed", ["5", "5,0"], ["5", "5"], column_type="number")


# --- missing numbers -------------------------------------------------------------------------

maybe_number = st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))


@pytest.mark.parametrize("rule", NUMBER_RULES)
@given(pairs=st.lists(st.tuples(maybe_number, maybe_number), min_size=1, max_size=20))
def test_number_rules_equal_reference(rule, pairs):
    d = np.array([np.nan if a is None else a for a, _ in pairs])
    r = np.array([np.nan if b is None else b for _, b in pairs])
    expected = [reference_rule(rule, a, b, 0.05, 0, "number") for a, b in pairs]
    assert rule_holds(rule, d, r, 0.05, column_type="number").tolist() == expected


def test_missing_number_policy():
    d = [np.nan, np.nan, 10.0]
    r = [np.nan, 10.0, np.nan]
    assert rule_holds("changed", d, r, column_type="number").tolist() == [False, True, True]
    assert rule_holds("increased", d, r, column_type="number").tolist() == [False, True, False]
    assert rule_holds("decreased_beyond", d, r, 0.05, column_type="number").tolist() == [False, False, True]
    assert rule_holds("differs_beyond", d, r, 0.05, column_type="number").tolist() == [False, True, True]


@pytest.mark.parametrize(
    ("rule", "column_type"), [("increased", "string"), ("prefix_changed", "number"), ("changed", "date")]
)
def test_rule_that_does_not_apply_is_refused(rule, column_type):
    with pytest.raises(ValueError, match=r"does not apply|unknown column type"):
        rule_holds(rule, ["1"], ["2"], prefix=2, column_type=column_type)


def test_misaligned_values_are_refused():
    with pytest.raises(ValueError, match="aligned"):
        rule_holds("changed", ["a", "b"], ["a"])


# --- the 30 error types through the label matrix ---------------------------------------------


def base_items(n: int) -> pd.DataFrame:
    """n items whose every number is 100 (so tolerance edges are exact) and strings are codes."""
    data: dict[str, object] = {}
    for column, kind in COLUMNS.items():
        if kind == "string":
            data[column] = ["01012100" if column == "hs_code" else f"{column}-v"] * n
        elif kind == "number":
            data[column] = [100.0] * n
        elif kind == "date":
            data[column] = pd.to_datetime(["2024-03-01"] * n)
    data["declaration_id"] = [f"D{i:03d}" for i in range(n)]
    data["item_no"] = np.arange(1, n + 1, dtype=np.int64)
    return pd.DataFrame(data)


# For each rule: a rectified value that makes the error found, and one that just misses it
# (differs_beyond is missed by moving the declared value instead, see the test).
FOUND = {
    "changed": lambda v: v + 1 if isinstance(v, float) else v + "X",
    "prefix_changed": lambda v: "99" + v[2:],
    "increased": lambda v: v + 0.01,
    "increased_beyond": lambda v: v * 1.0501,
    "decreased_beyond": lambda v: v * 0.9499,
    "differs_beyond": lambda v: v * 1.2,
}
MISSED = {
    "changed": lambda v: v if isinstance(v, float) else f"  {v} ",
    "prefix_changed": lambda v: v[:2] + "999999",
    "increased": lambda v: v - 50,
    "increased_beyond": lambda v: v * 1.05,
    "decreased_beyond": lambda v: v * 0.95,
}


@pytest.mark.parametrize("error", ERRORS, ids=[e.id for e in ERRORS])
def test_every_error_type_is_found_and_missed_at_its_edge(error):
    declared = base_items(3)
    rectified = declared.iloc[[0, 1]].copy()  # item 2 was not inspected
    value = declared.at[0, error.field]
    rectified.at[0, error.field] = FOUND[error.rule](value)
    if error.rule == "differs_beyond":
        # The edge |d - r| == tolerance * |r| is exact in floats with r = 100 and
        # d = 100 * (1 + tolerance) (105.0 and 101.0), so move d rather than r.
        declared.at[1, error.field] = 100.0 * (1 + error.tolerance)
    else:
        rectified.at[1, error.field] = MISSED[error.rule](value)

    labels = label_matrix(declared, rectified, ERRORS)

    j = ERRORS.index(error)
    assert labels.shape == (3, len(ERRORS) + 1) and labels.dtype == np.int8
    assert labels[0, j] == 1 and labels[0, -1] == 1
    assert labels[1, j] == 0
    same_field = [k for k, e in enumerate(ERRORS) if e.field == error.field]
    others = [k for k in range(len(ERRORS)) if k not in same_field]
    assert not labels[0, others].any() and not labels[1, others].any()
    assert (labels[2] == UNLABELLED).all()


def test_any_is_zero_for_an_inspected_item_without_errors():
    declared = base_items(2)
    labels = label_matrix(declared, declared.copy(), ERRORS)
    assert (labels == 0).all()


def test_label_rows_follow_declared_order_not_rectified_order():
    declared = base_items(4)
    rectified = declared.iloc[[3, 0]].copy()
    rectified.loc[rectified["item_no"] == 4, "currency"] = "EUR"
    labels = label_matrix(declared, rectified, ERRORS)
    currency = [e.id for e in ERRORS].index("currency")
    assert labels[:, currency].tolist() == [0, -1, -1, 1]
    assert labels[:, -1].tolist() == [0, -1, -1, 1]


def test_item_key_uses_both_declaration_and_item_number():
    declared = base_items(2)
    declared["declaration_id"] = "D1"
    rectified = declared.iloc[[1]].copy()
    rectified["unit"] = "kg"
    labels = label_matrix(declared, rectified, ERRORS)
    assert labels[:, -1].tolist() == [-1, 1]


def test_rectified_rows_without_declared_row_are_ignored():
    declared = base_items(1)
    rectified = pd.concat([declared, base_items(2).iloc[[1]].assign(unit="kg")])
    assert label_matrix(declared, rectified, ERRORS)[:, -1].tolist() == [0]


def test_repeated_rectified_key_is_refused():
    declared = base_items(1)
    with pytest.raises(ValueError, match=r"rectified table repeats the key.*\('D000', 1\)"):
        label_matrix(declared, pd.concat([declared, declared]), ERRORS)
