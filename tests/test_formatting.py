"""Numbers, percentages and dates per language: the pt-BR separators, rounding, signs."""

from __future__ import annotations

import datetime as dt
import doctest
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sisam import formatting
from sisam.formatting import format_count, format_date, format_number, format_percent

finite = st.floats(min_value=-1e15, max_value=1e15, allow_nan=False, allow_infinity=False)


def test_docstring_examples():
    result = doctest.testmod(formatting)
    assert result.attempted > 0 and result.failed == 0


@given(finite, st.integers(min_value=0, max_value=4))
def test_pt_br_reads_back_as_the_rounded_number(x: float, decimals: int):
    text = format_number(x, "pt-BR", decimals)
    # pt-BR: "." groups thousands, "," marks decimals
    assert re.fullmatch(r"-?\d{1,3}(\.\d{3})*(,\d+)?", text), text
    integer, _, fraction = text.partition(",")
    assert len(fraction) == decimals
    assert float(integer.replace(".", "") + "." + (fraction or "0")) == float(f"{x:.{decimals}f}")


@given(finite, st.integers(min_value=0, max_value=4))
def test_pt_br_swaps_the_separators_of_en(x: float, decimals: int):
    en = format_number(x, "en", decimals)
    assert format_number(x, "pt-BR", decimals) == en.translate(str.maketrans(",.", ".,"))


@given(st.floats(min_value=0.0, max_value=1.0))
def test_percent_is_a_number_with_the_language_sign(p: float):
    en, pt = format_percent(p, "en"), format_percent(p, "pt-BR")
    assert en.endswith("%") and not en.endswith(" %")
    assert pt.endswith(" %")
    assert pt[:-2] == en[:-1].translate(str.maketrans(",.", ".,"))
    # a rare event never reads as impossible, nor a near-certain one as certain
    shown = float(en.lstrip("<> ")[:-1].replace(",", ""))
    if 0.0 < p < 5e-7:  # below half the last place shown (0.0001%)
        assert en.startswith("< ") and shown > 0.0
    elif 0.0 < p < 0.01:
        assert shown > 0.0
    if p < 1.0:
        assert shown < 100.0


def test_examples_an_officer_would_write():
    assert format_number(1234.5, "pt-BR", 1) == "1.234,5"
    assert format_number(1234567.891, "en", 2) == "1,234,567.89"
    assert format_percent(0.123, "pt-BR") == "12,3 %"
    assert format_percent(0.00042, "pt-BR") == "0,042 %"
    assert format_percent(0.999958, "en") == "99.9958%"
    assert format_percent(1 - 1e-12, "en") == "> 99.9999%"
    assert format_count(3.0, "en") == "3" and format_count(2.5, "pt-BR") == "2,5"
    assert format_number(-0.04, "en", 1) == "0.0"
    assert format_number(-1234.0, "pt-BR") == "-1.234"
    assert format_date(dt.date(2024, 3, 5), "pt-BR") == "05/03/2024"
    assert format_date("2024-03-05", "en") == "5 March 2024"


def test_refuses_what_it_cannot_format():
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        format_number(1.0, "fr")
    with pytest.raises(ValueError, match="cannot format"):
        format_number(float("nan"), "en")
