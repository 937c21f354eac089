"""Countries, currencies, trade agreements and routes of the synthetic world.

The importing country is Brazil-like: partners weighted roughly by their share of Brazilian
import declarations, MERCOSUR neighbours reachable by road, Europe invoicing in euros, Asia
far away by sea. Codes are real (ISO 3166-1 alpha-2, ISO 4217, checked against pycountry),
so a reader can validate them like real data.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pycountry

#: Transport modes of the contract's ``transport_mode`` column.
MODES = ("sea", "air", "road", "rail", "post")
SEA, AIR, ROAD, RAIL, POST = range(5)

#: Currencies used on invoices; USD first (index 0) because most trade is invoiced in dollars.
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF", "CNY", "BRL")

# region -> (sea distance factor for freight, members with their weight as home of sellers)
_REGIONS: dict[str, tuple[float, dict[str, float]]] = {
    "mercosur": (0.45, {"AR": 4.0, "UY": 1.0, "PY": 0.8}),
    "andean": (0.6, {"CL": 1.5, "BO": 0.3, "PE": 0.5, "CO": 0.5, "EC": 0.3}),
    "north_america": (1.0, {"US": 14.0, "CA": 1.0, "MX": 2.0}),
    "eu": (1.0, {
        "DE": 6.0, "IT": 3.0, "FR": 2.2, "ES": 2.0, "NL": 1.3, "BE": 1.0, "PT": 0.6, "AT": 0.6,
        "SE": 0.5, "DK": 0.3, "IE": 0.5, "PL": 0.5, "FI": 0.3,
    }),
    "europe_other": (1.05, {"GB": 1.5, "CH": 1.5, "NO": 0.3, "TR": 0.8, "RU": 1.0}),
    "east_asia": (1.4, {"CN": 26.0, "JP": 3.0, "KR": 2.6, "TW": 1.8, "HK": 1.0}),
    "southeast_asia": (1.45, {"VN": 1.6, "TH": 1.2, "MY": 1.0, "ID": 0.9, "SG": 0.5, "PH": 0.3}),
    "south_asia": (1.35, {"IN": 3.5, "PK": 0.3, "BD": 0.3}),
    "middle_east": (1.2, {"IL": 0.5, "AE": 0.5, "SA": 0.3, "EG": 0.3}),
    "africa": (1.15, {"ZA": 0.4, "MA": 0.3, "NG": 0.2}),
}

#: Where goods can also come by road (and rail): land neighbours of the importing country.
_LAND_NEIGHBOURS = frozenset({"AR", "UY", "PY", "BO", "CL", "PE"})
# Euro area members invoice in EUR most of the time; others in their currency some of the time.
_HOME_CURRENCY = {"GB": ("GBP", 0.5), "JP": ("JPY", 0.35), "CH": ("CHF", 0.4), "CN": ("CNY", 0.04),
                  "AR": ("BRL", 0.06), "UY": ("BRL", 0.06)}
_EURO_AREA = frozenset({"DE", "IT", "FR", "ES", "NL", "BE", "PT", "AT", "IE", "FI"})

#: Countries where goods under anti-dumping duties are relabelled when re-routed.
TRANSIT_COUNTRIES = ("VN", "MY", "TH", "ID", "KR", "TW")
#: Trading hubs whose companies re-invoice goods bought elsewhere.
HUB_COUNTRIES = ("HK", "AE", "PA", "SG", "CH", "UY")


@dataclass(frozen=True)
class Agreement:
    """A preferential trade agreement: who may claim it, for which chapters, what it cuts."""

    code: str                      # as declared in ``preferential_claim``
    members: tuple[str, ...]
    margin: float                  # share of the duty removed (1.0: duty-free)
    chapters: frozenset[int] | None = None   # covered chapters; None: all but ``excluded``
    excluded: frozenset[int] = frozenset()

    def covers(self, chapters: np.ndarray) -> np.ndarray:
        if self.chapters is not None:
            return np.isin(chapters, sorted(self.chapters))
        return ~np.isin(chapters, sorted(self.excluded))


AGREEMENTS = (
    # MERCOSUR's free trade keeps sugar and cars out (ACE 18 and its protocols).
    Agreement("ACE18", ("AR", "UY", "PY"), 1.0, excluded=frozenset({17, 87})),
    Agreement("ACE35", ("CL",), 1.0, excluded=frozenset({17})),
    Agreement("ACE36", ("BO",), 1.0),
    Agreement("ACE58", ("PE",), 1.0, excluded=frozenset({2, 4})),
    Agreement("ACE59", ("CO", "EC"), 0.8, excluded=frozenset({17, 87})),
    Agreement("ACE53", ("MX",), 0.2, chapters=frozenset({28, 29, 38, 39, 84, 85, 90})),
    Agreement("ALC-ISRAEL", ("IL",), 0.5, chapters=frozenset(range(28, 41)) | frozenset(range(84, 91))),
    Agreement("ALC-EGITO", ("EG",), 0.5, chapters=frozenset(range(25, 41))),
)


@dataclass(frozen=True)
class Geography:
    """Countries as parallel arrays (index = country code used everywhere in the world)."""

    codes: tuple[str, ...]          # ISO alpha-2
    weight: np.ndarray              # float64: share of sellers based there
    region: np.ndarray              # int: index into ``regions``
    regions: tuple[str, ...]
    sea_distance: np.ndarray        # float64: freight factor of the sea route
    land: np.ndarray                # bool: reachable by road and rail
    home_currency: np.ndarray       # int: currency index sellers there may invoice in
    home_currency_share: np.ndarray  # float64: how often they do
    agreement: np.ndarray           # int: index into AGREEMENTS, -1 if none

    def index(self, code: str) -> int:
        return self.codes.index(code)

    def indices(self, codes: tuple[str, ...] | list[str]) -> np.ndarray:
        return np.array([self.codes.index(c) for c in codes], dtype=np.int64)


@cache
def geography() -> Geography:
    """The world's countries; names are checked against ISO 3166 (pycountry)."""
    codes: list[str] = []
    weight, region, distance = [], [], []
    for r, (factor, members) in enumerate(_REGIONS.values()):
        for code, w in members.items():
            codes.append(code)
            weight.append(w)
            region.append(r)
            distance.append(factor)
    for code in (*codes, *TRANSIT_COUNTRIES, *HUB_COUNTRIES, "PA"):
        if code not in codes:
            codes.append(code)
            weight.append(0.0)
            region.append(len(_REGIONS) - 1)
            distance.append(1.2)
    for code in codes:
        if pycountry.countries.get(alpha_2=code) is None:
            raise AssertionError(f"not an ISO 3166 country: {code}")
    for currency in CURRENCIES:
        if pycountry.currencies.get(alpha_3=currency) is None:
            raise AssertionError(f"not an ISO 4217 currency: {currency}")
    home, share, agreement = [], [], []
    for code in codes:
        if code in _EURO_AREA:
            home.append(CURRENCIES.index("EUR"))
            share.append(0.65)
        elif code in _HOME_CURRENCY:
            cur, s = _HOME_CURRENCY[code]
            home.append(CURRENCIES.index(cur))
            share.append(s)
        else:
            home.append(0)
            share.append(0.0)
        agreement.append(next((i for i, a in enumerate(AGREEMENTS) if code in a.members), -1))
    return Geography(
        codes=tuple(codes),
        weight=np.array(weight, dtype=np.float64),
        region=np.array(region, dtype=np.int64),
        regions=tuple(_REGIONS),
        sea_distance=np.array(distance, dtype=np.float64),
        land=np.array([c in _LAND_NEIGHBOURS for c in codes]),
        home_currency=np.array(home, dtype=np.int64),
        home_currency_share=np.array(share, dtype=np.float64),
        agreement=np.array(agreement, dtype=np.int64),
    )
