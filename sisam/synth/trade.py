"""The true trade: declarations and their items as they really are.

Each declaration belongs to one importer on one day and buys from one supplier (through one
broker, one office, one transport mode, incoterm and currency); its items are lines of the
supplier's catalogue made by the supplier's manufacturers. Items per declaration are heavy
tailed (mostly 1-5, a few above 50). Quantities follow from values and unit prices, weights
from quantities, freight from weight, mode and distance, insurance from value. Rates follow
from the tariff on the day, the origin and the valid preferential or ex-tariff claims.

Everything here is *true*: the declared version is derived from it by the error mechanisms
(``sisam.synth.mechanisms``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sisam.synth.actors import INCOTERM_BY_MODE, Actors
from sisam.synth.geography import (
    AGREEMENTS,
    AIR,
    CURRENCIES,
    MODES,
    POST,
    RAIL,
    ROAD,
    SEA,
    Geography,
)
from sisam.synth.nomenclature import CARAT, KG, KPCE, PAIRS, PCE, Tariff
from sisam.synth.streams import grouped_choice, stream

REGIMES = ("normal", "drawback", "exemption", "suspension")
NORMAL, DRAWBACK, EXEMPTION, SUSPENSION = range(4)
FX = ("with", "without", "financed")
WITH, WITHOUT, FINANCED = range(3)
VALUATION = ("1", "2", "3", "4", "5", "6")
RELATED = ("N", "Y")
#: Codes of the ``preferential_claim`` column: "" (none) then the agreements.
PREFERENCES = ("", *(a.code for a in AGREEMENTS))
#: Codes of the ``ex_tariff_claim`` column: "" (none), "EX 001", "EX 002", "EX 003".
EX_TARIFFS = ("", "EX 001", "EX 002", "EX 003")
_MARGIN = np.array([0.0, *(a.margin for a in AGREEMENTS)])
_DISCRETE_UNITS = (PCE, PAIRS, KPCE)
# Freight per gross kg (USD) by mode, and the least a shipment is charged.
_FREIGHT_PER_KG = np.array([0.10, 3.5, 0.12, 0.08, 9.0])
_FREIGHT_MINIMUM = np.array([300.0, 80.0, 150.0, 200.0, 15.0])
EPOCH_DAY = np.datetime64("2024-01-01", "D")


@dataclass
class Trade:
    """Items as parallel arrays, sorted by declaration (declarations by day), then item_no.

    Fields shared by a declaration's items are stored per item too (``decl`` maps back).
    Mutable columns (the ones errors touch) live in ``values``; see :data:`FIELDS`.
    """

    n_history: int            # items [0, n_history) are history, the rest test
    decl: np.ndarray          # int64[n]: declaration index
    decl_start: np.ndarray    # int64[D+1]: first item of each declaration
    item_no: np.ndarray       # int64[n]
    day: np.ndarray           # int64[n]: days since 2024-01-01
    importer: np.ndarray
    broker: np.ndarray
    office: np.ndarray
    link: np.ndarray          # supplier link of the declaration
    values: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        return len(self.decl)

    @property
    def n_declarations(self) -> int:
        return len(self.decl_start) - 1


#: Item fields an error can touch, with their coding (numbers are float64, the rest int64):
#: line (tariff line), desc (description key), origin/acquisition (country), exporter,
#: manufacturer (>= n_manufacturers: an exporter declared as manufacturer), related (RELATED),
#: licence (0: none), regime (REGIMES), pref (PREFERENCES), ex (EX_TARIFFS), unit, incoterm,
#: currency, mode, fx, valuation: indices into their tuples.
FIELDS = ("line", "desc", "origin", "acquisition", "exporter", "manufacturer", "related", "licence",
          "regime", "pref", "ex", "duty", "ipi", "pis", "cofins", "ad", "cvd", "value", "weight",
          "quantity", "unit", "incoterm", "freight", "insurance", "currency", "mode", "fx", "valuation")
NUMBER_FIELDS = frozenset({"duty", "ipi", "pis", "cofins", "ad", "cvd", "value", "weight", "quantity",
                           "freight", "insurance"})
RATE_FIELDS = ("duty", "ipi", "pis", "cofins", "ad", "cvd")
#: Fields the rates are computed from: correcting one of them recomputes every rate.
RATE_INPUTS = frozenset({"line", "origin", "pref", "ex"})


def description_key(lines: np.ndarray, manufacturers: np.ndarray, n_manufacturers: int) -> np.ndarray:
    """Key of the description "<line's text> - <manufacturer's brand and model>"."""
    return lines.astype(np.int64) * (n_manufacturers + 1) + manufacturers


def generic_description_key(headings: np.ndarray, n_lines: int, n_manufacturers: int) -> np.ndarray:
    """Key of a vague description: the heading's text alone."""
    return n_lines * (n_manufacturers + 1) + headings.astype(np.int64)


def rates(tariff: Tariff, line: np.ndarray, day: np.ndarray, origin: np.ndarray, pref: np.ndarray,
          ex: np.ndarray) -> dict[str, np.ndarray]:
    """Rates (percent) owed on the day: duty after valid claims, IPI, PIS, COFINS, AD, CVD.

    A claimed ex-tariff zeroes the duty; a preference removes its agreement's margin of it.
    Anti-dumping and countervailing duties apply whatever the claims.
    """
    base = tariff.duty.at(line, day)
    duty = np.where(ex > 0, 0.0, np.round(base * (1.0 - _MARGIN[pref]), 2))
    return {
        "duty": duty,
        "ipi": tariff.ipi.at(line, day),
        "pis": tariff.pis.at(line, day),
        "cofins": tariff.cofins.at(line, day),
        "ad": tariff.antidumping(line, origin),
        "cvd": tariff.countervailing(line, origin),
    }


def _declaration_sizes(rng: np.random.Generator, n_items: int) -> np.ndarray:
    """Items per declaration: mostly 1-5 (geometric), 7 % lognormal around 15 (some 50+)."""
    sizes: list[np.ndarray] = []
    total = 0
    while total < n_items:
        batch = max(16, int((n_items - total) / 3.0) + 16)
        small = rng.geometric(0.42, batch)
        large = np.maximum(2, np.round(rng.lognormal(np.log(15.0), 0.9, batch))).astype(np.int64)
        size = np.where(rng.random(batch) < 0.07, np.minimum(large, 400), small)
        sizes.append(size)
        total += int(size.sum())
    size = np.concatenate(sizes)
    end = int(np.searchsorted(np.cumsum(size), n_items))
    size = size[: end + 1].copy()
    size[-1] -= int(size.sum()) - n_items
    return size


def _day_cdf(total_days: int) -> np.ndarray:
    """Cumulative activity over days: weekends quiet, a slow growth of trade."""
    t = np.arange(total_days)
    weekday = t % 7  # 2024-01-01 is a Monday
    factor = np.select([weekday == 5, weekday == 6], [0.25, 0.1], 1.0) * (1.0 + 0.25 * t / max(total_days, 1))
    return np.r_[0.0, np.cumsum(factor)]


def build_trade(seed: int, n_items: int, history_days: int, total_days: int, tariff: Tariff, actors: Actors,
                geo: Geography) -> Trade:
    """The true items of the world, sorted by declaration date and number."""
    rng = stream(seed, "trade")
    size = _declaration_sizes(rng, n_items)
    n_decl = len(size)

    # Importer and day of each declaration; importers only declare after they arrive.
    active = (total_days - actors.imp_arrival) / total_days
    p = actors.imp_weight * active
    importer = rng.choice(len(p), size=n_decl, p=p / p.sum())
    cdf = _day_cdf(total_days)
    lo = cdf[actors.imp_arrival[importer]]
    target = lo + rng.random(n_decl) * (cdf[-1] - lo)
    day = np.clip(np.searchsorted(cdf, target, side="right") - 1, actors.imp_arrival[importer], total_days - 1)
    order = np.lexsort((rng.random(n_decl), day))
    importer, day, size = importer[order], day[order], size[order]
    decl_start = np.r_[0, np.cumsum(size)]
    decl = np.repeat(np.arange(n_decl), size)
    item_no = np.arange(n_items) - decl_start[decl] + 1

    # Supplier, broker and regime of each declaration.
    link = grouped_choice(actors.link_ptr, actors.link_cum, importer, rng.random(n_decl))
    link = np.where(actors.link_start[link] > day, actors.link_ptr[importer], link)
    exporter = actors.link_exporter[link]
    broker = actors.imp_brokers[importer, rng.choice(3, size=n_decl, p=[0.75, 0.2, 0.05])]
    u = rng.random(n_decl)
    regime = np.select(
        [actors.imp_exempt[importer] & (u < 0.9), actors.imp_drawback[importer] & (u < 0.4), u > 0.985],
        [EXEMPTION, DRAWBACK, SUSPENSION], NORMAL)

    # Items: a catalogue line of the supplier, made by one of its manufacturers.
    ex_i = exporter[decl]
    line = actors.cat_line[grouped_choice(actors.cat_ptr, actors.cat_cum, ex_i, rng.random(n_items))]
    manufacturer = actors.man_index[grouped_choice(actors.man_ptr, actors.man_cum, ex_i, rng.random(n_items))]
    origin = actors.man_country[manufacturer]
    acquisition = actors.exp_country[ex_i]
    chapter = tariff.chapter[line]

    # Value, quantity, weight.
    size_effect = 0.12 * np.log(actors.imp_weight[importer[decl]] / np.median(actors.imp_weight))
    target_value = rng.lognormal(np.log(2500.0) + size_effect, 1.3)
    unit_price = tariff.unit_price[line] * actors.exp_price_level[ex_i]
    unit = tariff.unit[line]
    raw_qty = target_value / unit_price
    quantity = np.select(
        [np.isin(unit, _DISCRETE_UNITS), unit == KG, unit == CARAT],
        [np.maximum(1.0, np.round(raw_qty)), np.maximum(0.001, np.round(raw_qty, 3)), np.maximum(0.01, np.round(raw_qty, 2))],
        np.maximum(0.01, np.round(raw_qty, 2)))
    value = np.maximum(1.0, np.round(quantity * unit_price * rng.lognormal(0.0, 0.2, n_items), 2))
    weight = np.where(unit == KG, quantity,
                      np.maximum(0.001, np.round(quantity * tariff.kg_per_unit[line] * rng.lognormal(0.0, 0.08, n_items), 3)))

    # Transport mode from the first item's value density, the route and the shipment's weight.
    first = decl_start[:-1]
    shipment_kg = np.add.reduceat(weight, first) * 1.12
    density = value[first] / np.maximum(weight[first], 1e-3)
    seller_country = actors.exp_country[exporter]
    p_air = 1.0 / (1.0 + np.exp(-(np.log(density) - np.log(80.0)) / 0.7))
    u = rng.random(n_decl)
    overseas = np.where(u < p_air, AIR, SEA)
    overseas = np.where((shipment_kg < 30) & (rng.random(n_decl) < 0.35), POST, overseas)
    land = np.select([u < 0.65, u < 0.70, u < 0.85], [ROAD, RAIL, SEA], AIR)
    mode = np.where(geo.land[seller_country], land, overseas)
    usual = rng.random(n_decl) < 0.85
    counts = np.bincount(actors.office_mode, minlength=len(MODES))
    first_office = np.r_[0, np.cumsum(counts)][:-1]
    elsewhere = first_office[mode] + np.floor(rng.random(n_decl) * counts[mode]).astype(np.int64)
    office = np.where(usual, actors.imp_office[importer, mode], elsewhere)

    # Incoterm, currency, exchange coverage, valuation method.
    cum = np.cumsum(INCOTERM_BY_MODE, axis=1)
    drawn = np.minimum((cum[mode] < rng.random(n_decl)[:, None]).sum(axis=1), cum.shape[1] - 1)
    incoterm = np.where(rng.random(n_decl) < 0.75, actors.exp_incoterm[exporter, mode], drawn)
    home = rng.random(n_decl) < geo.home_currency_share[seller_country]
    currency = np.where(home, geo.home_currency[seller_country], CURRENCIES.index("USD"))
    capital = np.isin(tariff.chapter[line[first]], [84, 86, 87, 88, 89, 90])
    u = rng.random(n_decl)
    fx = np.select([regime == SUSPENSION, u < 0.01, capital & (u < 0.06)], [WITHOUT, WITHOUT, FINANCED], WITH)
    valuation = np.where(fx == WITHOUT, rng.choice([5, 2, 1], size=n_decl, p=[0.5, 0.3, 0.2]), 0)
    related = actors.link_related[link].astype(np.int64)

    # Freight by shipment, shared among its items by weight; insurance on value.
    distance = np.where(mode == SEA, geo.sea_distance[seller_country], 1.0)
    distance = np.where(mode == AIR, 0.8 + 0.4 * geo.sea_distance[seller_country], distance)
    total_freight = np.maximum(_FREIGHT_MINIMUM[mode], _FREIGHT_PER_KG[mode] * distance * shipment_kg ** 0.92)
    total_freight *= rng.lognormal(0.0, 0.25, n_decl)
    share = weight / np.add.reduceat(weight, first)[decl]
    freight = np.round(total_freight[decl] * share, 2)
    insured = rng.random(n_decl) < 0.7
    premium = rng.lognormal(np.log(0.0025), 0.5, n_decl)
    insurance = np.where(insured[decl], np.round(value * premium[decl], 2), 0.0)

    # Claims, licences, rates, regime per item (printed matter is immune).
    agreement = geo.agreement[origin]
    covered = np.zeros(n_items, dtype=bool)
    for a, agr in enumerate(AGREEMENTS):
        covered |= (agreement == a) & agr.covers(chapter)
    pref = np.where(covered & (rng.random(n_items) < 0.85), agreement + 1, 0)
    # A third of the machines on a line with ex-tariffs are the very machine an ex describes.
    matches_ex = rng.random(n_items) < 0.35
    ex_count = tariff.ex_count[line]
    ex = np.where((ex_count > 0) & matches_ex, 1 + np.floor(rng.random(n_items) * ex_count).astype(np.int64), 0)
    licence = np.where(tariff.licence[line], 1_000_000 + np.arange(n_items, dtype=np.int64) * 7, 0)
    item_day = day[decl]
    item_regime = np.where((chapter == 49) & (regime[decl] == NORMAL), EXEMPTION, regime[decl])
    n_man = len(actors.man_country)

    values: dict[str, np.ndarray] = {
        "line": line, "desc": description_key(line, manufacturer, n_man), "origin": origin,
        "acquisition": acquisition, "exporter": ex_i, "manufacturer": manufacturer,
        "related": related[decl], "licence": licence, "regime": item_regime, "pref": pref, "ex": ex,
        **rates(tariff, line, item_day, origin, pref, ex),
        "value": value, "weight": weight, "quantity": quantity, "unit": unit,
        "incoterm": incoterm[decl], "freight": freight, "insurance": insurance,
        "currency": currency[decl], "mode": mode[decl], "fx": fx[decl], "valuation": valuation[decl],
    }
    values = {k: (v.astype(np.float64) if k in NUMBER_FIELDS else v.astype(np.int64)) for k, v in values.items()}
    n_history = int(np.searchsorted(item_day, history_days))
    return Trade(n_history=n_history, decl=decl, decl_start=decl_start, item_no=item_no, day=item_day,
                 importer=importer[decl], broker=broker[decl], office=office[decl], link=link[decl],
                 values=values)
