"""Numbers, percentages and dates as an officer of each language writes them.

Explanations are read by people, in English or in Brazilian Portuguese, and the two write
numbers differently:

==========  ================  ================
            en                pt-BR
==========  ================  ================
number      1,234.5           1.234,5
percent     12.3%             12,3 %
date        30 April 2024     30/04/2024
==========  ================  ================

Written here rather than taken from babel or the C locale: the formats are few and fixed,
a locale installed (or not) on the scoring machine must not change what the reasoning log's
sentences say, and one more dependency is one more thing an auditor must pin.

Rounding is Python's: the float is rounded to the nearest decimal of the requested places
(``format(x, ".1f")``, correctly rounded, ties to even on the binary value), then grouped.
These functions only present numbers; every figure they are given comes from the
reasoning log unchanged (``sisam.explain``).
"""

from __future__ import annotations

import datetime as dt
import math

LANGUAGES = ("en", "pt-BR")

_MONTHS_EN = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
# en groups with "," and marks decimals with "."; pt-BR the other way round.
_SEPARATORS = {"en": str.maketrans({}), "pt-BR": str.maketrans({",": ".", ".": ","})}
_PERCENT_SIGN = {"en": "%", "pt-BR": " %"}


def _check_language(lang: str) -> None:
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; expected one of {', '.join(LANGUAGES)}")


def format_number(x: float, lang: str, decimals: int = 0) -> str:
    """``x`` rounded to ``decimals`` places with the language's separators.

    >>> format_number(1234.5, "en", 1), format_number(1234.5, "pt-BR", 1)
    ('1,234.5', '1.234,5')
    >>> format_number(-0.04, "pt-BR", 1)  # no "-0,0": a rounded zero has no sign
    '0,0'
    """
    _check_language(lang)
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"cannot format {x!r} as a number")
    if decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    text = format(abs(x), f",.{decimals}f")
    negative = x < 0 and any(c not in "0,." for c in text)
    return ("-" if negative else "") + text.translate(_SEPARATORS[lang])


def format_count(x: float, lang: str) -> str:
    """A count of items: whole counts without decimals, decayed (fractional) counts with one.

    >>> format_count(1234.0, "pt-BR"), format_count(12.25, "en")
    ('1.234', '12.2')
    """
    x = float(x)
    return format_number(x, lang, 0 if x == round(x) else 1)


#: Percentages closer than this to 0 % or 100 % are shown as "< 0.0001%" / "> 99.9999%":
#: more digits would say nothing an officer can act on.
PERCENT_FLOOR_DECIMALS = 4


def percent_decimals(p: float) -> int:
    """Places that show a probability ``p`` as a percentage without lying about it.

    One place for most values (12.3%); rare events keep two significant digits (0.042%)
    instead of collapsing to 0.0%, and near-certain ones likewise keep their distance from
    100% (99.958%), down to ``PERCENT_FLOOR_DECIMALS`` places. Exactly 0 and 1 get one.
    """
    pct = 100.0 * p
    distance = min(pct, 100.0 - pct)
    if distance >= 1.0 or distance <= 0.0:
        return 1
    return min(PERCENT_FLOOR_DECIMALS, max(1, 1 - math.floor(math.log10(distance))))


def format_percent(p: float, lang: str) -> str:
    """Probability ``p`` (0..1) as a percentage.

    >>> format_percent(0.123, "en"), format_percent(0.123, "pt-BR")
    ('12.3%', '12,3 %')
    >>> format_percent(0.00042, "en"), format_percent(1e-9, "pt-BR")
    ('0.042%', '< 0,0001 %')
    """
    _check_language(lang)
    p = float(p)
    decimals = percent_decimals(p)
    floor = 10.0**-decimals
    sign = _PERCENT_SIGN[lang]
    if 0.0 < 100.0 * p < floor / 2:
        return "< " + format_number(floor, lang, decimals) + sign
    if 0.0 < 100.0 - 100.0 * p < floor / 2:
        return "> " + format_number(100.0 - floor, lang, decimals) + sign
    return format_number(100.0 * p, lang, decimals) + sign


def format_date(value: dt.date | str, lang: str) -> str:
    """A calendar date (a ``date`` or an ISO ``YYYY-MM-DD`` string).

    >>> format_date("2024-04-30", "en"), format_date("2024-04-30", "pt-BR")
    ('30 April 2024', '30/04/2024')
    """
    _check_language(lang)
    if isinstance(value, str):
        value = dt.date.fromisoformat(value)
    if isinstance(value, dt.datetime):
        value = value.date()
    if lang == "en":
        return f"{value.day} {_MONTHS_EN[value.month - 1]} {value.year}"
    return f"{value.day:02d}/{value.month:02d}/{value.year}"
