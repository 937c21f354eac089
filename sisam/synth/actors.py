"""The people of the world: importers, exporters, manufacturers, brokers, customs offices.

Activity is heavy-tailed everywhere (lognormal weights: a few importers, sellers and brokers
make most of the declarations). Importers work in a few sectors (chapters), through a few
brokers and offices, buying from suppliers that sell in those sectors; suppliers join an
importer over time, and importers themselves arrive during the history (some only in the
test period). Each exporter has a home country (its acquisition country), a catalogue of
tariff lines, the currency and incoterm it habitually invoices in, and the manufacturers it
sells for: itself when it manufactures, factories abroad (mostly Chinese) when it trades.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sisam.synth.geography import HUB_COUNTRIES, MODES, TRANSIT_COUNTRIES, Geography
from sisam.synth.nomenclature import Tariff
from sisam.synth.streams import csr_cumulative, grouped_choice, stream

INCOTERMS = ("FOB", "CFR", "CIF", "EXW", "FCA", "CPT", "CIP", "DAP", "DDP")
# Incoterm shares by transport mode (index of MODES).
INCOTERM_BY_MODE = np.array([
    [0.45, 0.15, 0.15, 0.08, 0.10, 0.00, 0.00, 0.05, 0.02],   # sea
    [0.05, 0.00, 0.00, 0.25, 0.35, 0.15, 0.10, 0.08, 0.02],   # air
    [0.00, 0.00, 0.00, 0.20, 0.30, 0.20, 0.00, 0.30, 0.00],   # road
    [0.00, 0.00, 0.00, 0.20, 0.40, 0.20, 0.00, 0.20, 0.00],   # rail
    [0.00, 0.00, 0.00, 0.20, 0.00, 0.00, 0.00, 0.50, 0.30],   # post
])
# Customs offices per mode: ports, airports, land borders, rail terminals, postal centres.
_OFFICES_PER_MODE = (13, 10, 9, 3, 5)
# Chapters a country's sellers specialise in (multiplies the chapter's base share).
_AFFINITY = {
    "CN": {84: 2, 85: 3, 39: 2, 73: 3, 64: 4, 94: 3, 95: 5, 61: 3, 62: 3, 63: 3, 40: 3, 72: 3, 29: 2, 28: 2},
    "US": {84: 2, 85: 2, 90: 3, 30: 2, 29: 2, 38: 2, 27: 3, 88: 5},
    "DE": {84: 3, 85: 2, 87: 3, 90: 3, 30: 2, 38: 2},
    "RU": {31: 20, 27: 5}, "AR": {10: 10, 11: 5, 4: 5, 87: 3, 39: 2, 2: 5},
    "IN": {29: 4, 30: 3, 52: 4, 72: 2}, "JP": {84: 2, 85: 2, 87: 3, 90: 3},
    "KR": {85: 3, 87: 2, 39: 2}, "IT": {84: 3, 64: 2, 94: 2, 22: 3, 62: 2},
    "CL": {3: 10, 8: 5, 74: 10, 22: 5}, "UY": {2: 10, 4: 5, 10: 5}, "PY": {2: 5, 12: 5, 15: 5},
}


@dataclass(frozen=True)
class Actors:
    # importers
    imp_weight: np.ndarray        # float64[I]: activity
    imp_arrival: np.ndarray       # int64[I]: first day it declares
    imp_brokers: np.ndarray       # int64[I, 3]: its brokers, most used first
    imp_office: np.ndarray        # int64[I, modes]: its usual office per transport mode
    imp_drawback: np.ndarray      # bool[I]: authorised to import under drawback
    imp_exempt: np.ndarray        # bool[I]: an exempt entity (hospital, university, state)
    imp_transit: np.ndarray       # int64[I]: country it would re-route goods through
    imp_hub: np.ndarray           # int64[I]: hub trading company it would invoice through
    link_ptr: np.ndarray          # int64[I+1]: CSR of suppliers; the first is the oldest
    link_exporter: np.ndarray     # int64[K]
    link_cum: np.ndarray          # float64[K]: grouped_choice cumulative weights
    link_start: np.ndarray        # int64[K]: first day of the relationship
    link_related: np.ndarray      # bool[K]: buyer and seller are related parties
    # exporters (the last ``n_hubs`` are hub trading companies, never true sellers)
    exp_country: np.ndarray       # int64[E]
    exp_price_level: np.ndarray   # float64[E]: its prices against the market
    exp_incoterm: np.ndarray      # int64[E, modes]: habitual incoterm per mode
    cat_ptr: np.ndarray           # int64[E+1]: CSR catalogue of tariff lines
    cat_line: np.ndarray
    cat_cum: np.ndarray
    man_ptr: np.ndarray           # int64[E+1]: CSR of manufacturers it sells for
    man_index: np.ndarray
    man_cum: np.ndarray
    n_hubs: int
    # manufacturers (the last ones are fictitious plants in transit countries)
    man_country: np.ndarray       # int64[M]
    man_self: np.ndarray          # int64[M]: exporter that is this manufacturer, -1 if none
    transit_plants: np.ndarray    # int64[len(TRANSIT_COUNTRIES), 4]: fictitious plants
    # brokers
    broker_weight: np.ndarray     # float64[B]
    broker_care: np.ndarray       # float64[B]: carelessness (multiplies clerical error rates)
    broker_mult: np.ndarray       # float64[B, K]: carelessness per kind of clerical error
    broker_change_day: np.ndarray  # int64[B]: day its behaviour changes (beyond the end if never)
    broker_change: np.ndarray     # float64[B]: factor on its error rates from that day
    broker_slowness: np.ndarray   # float64[B]: how long it keeps using superseded rates
    # offices
    office_mode: np.ndarray       # int64[O]
    office_code: np.ndarray       # object[O]

    @property
    def n_importers(self) -> int:
        return len(self.imp_weight)

    @property
    def n_exporters(self) -> int:
        return len(self.exp_country)


#: Kinds of clerical error whose rate depends on the broker (columns of ``broker_mult``).
CLERICAL = ("incoterm", "currency", "transport_mode", "fx_coverage", "valuation_method", "freight",
            "insurance", "net_weight", "quantity", "unit", "exporter", "manufacturer",
            "description", "hs_code", "import_licence", "antidumping", "rates", "value", "origin",
            "preference")


def _lognormal_weights(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    return rng.lognormal(0.0, sigma, n)


def build_actors(seed: int, n_items: int, total_days: int, history_days: int, tariff: Tariff,
                 geo: Geography) -> Actors:
    """The actors of a world of ``n_items`` items over ``total_days`` days."""
    rng = stream(seed, "actors")
    n_imp = max(20, round(n_items ** 0.72 / 1.2))
    n_exp = max(30, round(1.5 * n_imp))
    n_hubs = max(3, n_exp // 100)
    n_brokers = max(5, n_imp // 25)
    n_countries = len(geo.codes)

    # Chapters' shares of trade and each country's specialisation.
    chapters = np.unique(tariff.chapter)
    chapter_share = np.bincount(tariff.chapter, tariff.popularity, minlength=98)[chapters]
    affinity = np.ones((n_countries, len(chapters)))
    for code, boosts in _AFFINITY.items():
        for ch, factor in boosts.items():
            if ch in chapters:
                affinity[geo.index(code), np.searchsorted(chapters, ch)] = factor
    country_chapter = affinity * chapter_share
    country_chapter /= country_chapter.sum(axis=1, keepdims=True)

    # Exporters: home country, chapters, catalogue, manufacturers.
    home_p = geo.weight / geo.weight.sum()
    exp_country = rng.choice(n_countries, size=n_exp, p=home_p)
    cc_cum = np.cumsum(country_chapter, axis=1)
    first_ch = np.minimum((cc_cum[exp_country] < rng.random(n_exp)[:, None]).sum(axis=1), len(chapters) - 1)
    second_ch = np.minimum((cc_cum[exp_country] < rng.random(n_exp)[:, None]).sum(axis=1), len(chapters) - 1)
    has_second = rng.random(n_exp) < 0.3
    exp_weight = _lognormal_weights(rng, n_exp, 1.3)

    # Lines by chapter, for catalogue draws by popularity.
    line_order = np.lexsort((np.arange(tariff.n_lines), tariff.chapter))
    ch_of_sorted = tariff.chapter[line_order]
    ch_ptr = np.searchsorted(ch_of_sorted, np.r_[chapters, 99])
    ch_cum = csr_cumulative(ch_ptr, tariff.popularity[line_order])
    cat_size = np.clip(np.round(rng.lognormal(np.log(5.0), 0.9, n_exp)), 1, 80).astype(np.int64)
    cat_ptr = np.r_[0, np.cumsum(cat_size)]
    owner = np.repeat(np.arange(n_exp), cat_size)
    use_second = has_second[owner] & (rng.random(len(owner)) < 0.3)
    cat_chapter = np.where(use_second, second_ch[owner], first_ch[owner])
    cat_line = line_order[grouped_choice(ch_ptr, ch_cum, cat_chapter, rng.random(len(owner)))]
    rank = np.arange(len(owner)) - cat_ptr[owner]
    cat_cum = csr_cumulative(cat_ptr, 1.0 / (rank + 1.0))

    hub_like = np.isin(exp_country, geo.indices(["HK", "SG", "AE", "PA"]))
    manufactures = rng.random(n_exp) < np.where(hub_like, 0.1, 0.6)
    n_plants = np.where(manufactures, 1 + (rng.random(n_exp) < 0.2), 1 + rng.poisson(1.0, n_exp))
    man_ptr = np.r_[0, np.cumsum(n_plants)]
    man_owner = np.repeat(np.arange(n_exp), n_plants)
    china = geo.index("CN")
    source = np.where(rng.random(len(man_owner)) < 0.55, china, rng.choice(n_countries, size=len(man_owner), p=home_p))
    man_country = np.where(manufactures[man_owner], exp_country[man_owner], source)
    man_self = np.where(manufactures[man_owner] & (np.arange(len(man_owner)) == man_ptr[man_owner]), man_owner, -1)
    man_rank = np.arange(len(man_owner)) - man_ptr[man_owner]
    man_cum = csr_cumulative(man_ptr, 1.0 / (man_rank + 1.0))
    man_index = np.arange(len(man_owner))

    # Hub trading companies and fictitious plants in transit countries close both tables.
    hub_country = geo.indices(list(HUB_COUNTRIES))[rng.integers(0, len(HUB_COUNTRIES), n_hubs)]
    exp_country = np.r_[exp_country, hub_country]
    hub_ptr_tail = cat_ptr[-1]
    cat_ptr = np.r_[cat_ptr, np.full(n_hubs, hub_ptr_tail)]
    man_ptr = np.r_[man_ptr, np.full(n_hubs, man_ptr[-1])]
    transit = geo.indices(list(TRANSIT_COUNTRIES))
    n_real_plants = len(man_country)
    transit_plants = n_real_plants + np.arange(len(transit) * 4).reshape(len(transit), 4)
    man_country = np.r_[man_country, np.repeat(transit, 4)]
    man_self = np.r_[man_self, np.full(len(transit) * 4, -1)]
    n_exp_all = n_exp + n_hubs
    exp_price_level = rng.lognormal(0.0, 0.15, n_exp_all)
    exp_incoterm = np.stack([
        rng.choice(len(INCOTERMS), size=n_exp_all, p=INCOTERM_BY_MODE[m]) for m in range(len(MODES))], axis=1)

    # Brokers.
    broker_weight = _lognormal_weights(rng, n_brokers, 1.3)
    broker_care = np.clip(rng.lognormal(0.0, 0.7, n_brokers), 0.1, 5.0)
    broker_mult = np.clip(rng.lognormal(0.0, 0.6, (n_brokers, len(CLERICAL))), 0.2, 4.0)
    changes = rng.random(n_brokers) < 0.3
    broker_change_day = np.where(changes, (history_days * rng.uniform(0.15, 0.85, n_brokers)).astype(np.int64),
                                 total_days + 1)
    broker_change = np.where(rng.random(n_brokers) < 0.5, 0.35, 2.5)
    broker_slowness = rng.lognormal(0.0, 0.8, n_brokers)

    # Offices: unique 7-digit unit codes, each serving one transport mode.
    office_mode = np.repeat(np.arange(len(MODES)), _OFFICES_PER_MODE)
    region = rng.integers(1, 11, len(office_mode))
    unit = rng.choice(np.arange(100, 1000), size=len(office_mode), replace=False)
    office_code = np.array([f"{r:02d}{u:03d}00" for r, u in zip(region, unit, strict=True)], dtype=object)
    office_weight = rng.lognormal(0.0, 1.0, len(office_mode))
    mode_ptr = np.r_[0, np.cumsum(_OFFICES_PER_MODE)]
    office_cum = csr_cumulative(mode_ptr, office_weight)

    # Importers: activity, arrival, sectors, brokers, offices, suppliers.
    imp_weight = _lognormal_weights(rng, n_imp, 1.6)
    imp_arrival = np.where(rng.random(n_imp) < 0.8, 0, rng.integers(0, total_days, n_imp))
    broker_p = broker_weight / broker_weight.sum()
    imp_brokers = rng.choice(n_brokers, size=(n_imp, 3), p=broker_p)
    imp_office = np.stack([
        grouped_choice(mode_ptr, office_cum, np.full(n_imp, m), rng.random(n_imp)) for m in range(len(MODES))], axis=1)
    imp_drawback = rng.random(n_imp) < 0.08
    imp_exempt = rng.random(n_imp) < 0.02
    imp_transit = transit[rng.integers(0, len(transit), n_imp)]
    imp_hub = n_exp + rng.integers(0, n_hubs, n_imp)

    # Sellers by chapter (an exporter sells in its first chapter and maybe a second one).
    seller_ch = np.r_[first_ch, second_ch[has_second]]
    seller = np.r_[np.arange(n_exp), np.flatnonzero(has_second)]
    order = np.lexsort((seller, seller_ch))
    seller_ch, seller = seller_ch[order], seller[order]
    sell_ptr = np.searchsorted(seller_ch, np.arange(len(chapters) + 1))
    sell_cum = csr_cumulative(sell_ptr, exp_weight[seller])
    served = np.diff(sell_ptr) > 0
    sector_p = np.where(served, chapter_share, 0.0)
    sector_p /= sector_p.sum()

    median_w = np.median(imp_weight)
    n_sectors = np.minimum(1 + rng.poisson(0.7, n_imp), 4)
    n_links = np.minimum(1 + rng.poisson(1.5 * (imp_weight / median_w) ** 0.35), 40)
    link_ptr = np.r_[0, np.cumsum(n_links)]
    link_owner = np.repeat(np.arange(n_imp), n_links)
    sectors = rng.choice(len(chapters), size=(n_imp, 4), p=sector_p)
    link_sector = sectors[link_owner, np.minimum(rng.integers(0, 4, len(link_owner)), n_sectors[link_owner] - 1)]
    link_exporter = seller[grouped_choice(sell_ptr, sell_cum, link_sector, rng.random(len(link_owner)))]
    link_rank = np.arange(len(link_owner)) - link_ptr[link_owner]
    link_cum = csr_cumulative(link_ptr, 1.0 / (link_rank + 1.0) ** 0.8)
    arrival = imp_arrival[link_owner]
    late = (link_rank > 0) & (rng.random(len(link_owner)) < 0.35)
    link_start = np.where(late, arrival + (rng.random(len(link_owner)) * (total_days - arrival)).astype(np.int64), arrival)
    big = imp_weight > np.quantile(imp_weight, 0.95)
    link_related = rng.random(len(link_owner)) < np.where(big[link_owner], 0.15, 0.04)

    return Actors(
        imp_weight=imp_weight, imp_arrival=imp_arrival.astype(np.int64), imp_brokers=imp_brokers,
        imp_office=imp_office, imp_drawback=imp_drawback, imp_exempt=imp_exempt,
        imp_transit=imp_transit, imp_hub=imp_hub, link_ptr=link_ptr, link_exporter=link_exporter,
        link_cum=link_cum, link_start=link_start.astype(np.int64), link_related=link_related,
        exp_country=exp_country, exp_price_level=exp_price_level, exp_incoterm=exp_incoterm,
        cat_ptr=cat_ptr, cat_line=cat_line, cat_cum=cat_cum, man_ptr=man_ptr, man_index=man_index,
        man_cum=man_cum, n_hubs=n_hubs, man_country=man_country, man_self=man_self,
        transit_plants=transit_plants, broker_weight=broker_weight, broker_care=broker_care,
        broker_mult=broker_mult, broker_change_day=broker_change_day, broker_change=broker_change,
        broker_slowness=broker_slowness, office_mode=office_mode, office_code=office_code,
    )

