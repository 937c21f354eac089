"""Latent error mechanisms: how declared values come to differ from the true ones.

A mechanism is a cause of error with the traces real causes leave. It holds, for the items
it may strike, the probability ``q`` that it strikes and the values it would declare then
(``changes``: field -> would-be value). Whether it strikes is one uniform draw per item (or
per declaration, for declaration-level fields, so a broker's wrong incoterm is wrong on every
item of the declaration). Importer *schemes* stop when the importer is caught (see
``sisam.synth.inspection``); clerical mechanisms follow the broker's carelessness, which
changes on a date for some brokers and is higher for importers new to the trade.

The mechanisms and the error types they leave (catalog ids):

- clerical, by broker: tariff code confusion (hs_code, sometimes hs_chapter, and the rates
  that follow from the code), vague description, wrong manufacturer, wrong exporter,
  the seller's country declared as origin, a valid preference left out (the duty follows),
  incoterm, currency, transport mode, exchange coverage, valuation method, freight,
  insurance, net weight (and quantity for goods counted in kg), quantity, unit (with the
  quantity), value typos, licence numbers, omitted anti-dumping/countervailing duties,
  general PIS/COFINS on goods with sector rates, and superseded rates after each dated rate
  change (duty, IPI, PIS, COFINS), decaying with the days since the change;
- schemes, by importer: misclassification into a lower-duty code of the same heading (or
  chapter) on some of its headings only, with or without a matching false description and
  dropping the licence the true code needs; undervaluation with some suppliers only;
  overvaluation of duty-free goods bought from related parties; re-routing goods under
  anti-dumping duties through a transit country (origin, often acquisition country and
  manufacturer); unfounded preferential claims and triangulation through MERCOSUR;
  unfounded ex-tariff claims; invoicing through a hub trading company (exporter and
  acquisition country); hiding related-party relations; omitting licences;
- by exporter: undervalued invoices to every buyer;
- the combination-only scheme: wrong tax regimes on certain (importer, heading) pairs,
  balanced so that every importer and every heading alone shows the base rate
  (:func:`balanced_pair_rates`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sisam.synth.actors import CLERICAL, INCOTERMS, Actors
from sisam.synth.geography import (
    AGREEMENTS,
    AIR,
    CURRENCIES,
    POST,
    RAIL,
    ROAD,
    SEA,
    TRANSIT_COUNTRIES,
    Geography,
)
from sisam.synth.nomenclature import KG, PCE, Tariff
from sisam.synth.streams import stream
from sisam.synth.trade import (
    DRAWBACK,
    EXEMPTION,
    FINANCED,
    NORMAL,
    RATE_FIELDS,
    RATE_INPUTS,
    SUSPENSION,
    WITH,
    WITHOUT,
    Trade,
    description_key,
    generic_description_key,
    rates,
)

#: Importer schemes, stopped (with the importer's probability) once caught.
SCHEMES = ("evasion", "undervaluation", "overvaluation", "reroute", "preference", "ex_tariff",
           "hub", "related", "licence")
#: Error type of the combination-only scheme and the attributes whose pairs carry it.
COMBINATION_ERROR = "tax_regime"
COMBINATION_BASE_RATE = 0.008
COMBINATION_LIFT = 60.0
#: Share of importers whose schemes switch on a world's drift day (``scheme_personas``).
DRIFT_SHARE = 0.5


@dataclass
class Mechanism:
    """One cause of error over the items it may strike (``items`` sorted ascending)."""

    name: str
    error: str                      # catalog id whose detection probability applies
    items: np.ndarray               # int64
    q: np.ndarray                   # float64: probability it strikes each item
    changes: dict[str, np.ndarray]  # field -> would-be declared value, aligned on ``items``
    declaration_level: bool = False
    scheme: int = -1                # index into SCHEMES, -1 if never stopped
    u_fire: np.ndarray = field(default_factory=lambda: np.zeros(0))
    u_detect: np.ndarray = field(default_factory=lambda: np.zeros(0))
    q_effective: np.ndarray = field(default_factory=lambda: np.zeros(0))  # q while not stopped
    fired: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    detected: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @property
    def corrects(self) -> tuple[str, ...]:
        """Fields an officer who detects this mechanism sets back to their true values.

        Correcting the code, the origin or a claim recomputes every rate (a corrected code
        whose duty differs also corrects the duty).
        """
        fields = tuple(self.changes)
        if RATE_INPUTS.intersection(fields):
            fields += tuple(f for f in RATE_FIELDS if f not in fields)
        return fields

    @property
    def sets_rates(self) -> bool:
        """Whether it overrides rates, so it applies after rates follow the declared keys."""
        return any(f in RATE_FIELDS for f in self.changes)


@dataclass(frozen=True)
class PairRates:
    """The combination-only scheme: error probability multipliers per (importer, heading)."""

    importers: np.ndarray     # int64[P]: importer of each scheme pair
    headings: np.ndarray      # int64[P]: heading index of each scheme pair
    multiplier: np.ndarray    # float64[n]: per item; mean 1 over each importer and heading


def balanced_pair_rates(importer: np.ndarray, heading: np.ndarray, n_history: int, n_headings: int,
                        rng: np.random.Generator) -> PairRates:
    """Multipliers that put an error on some (importer, heading) pairs only.

    Some pairs (5 % of those seen at least 5 times, among importers and headings with at
    least three such pairs) get ``COMBINATION_LIFT`` times the odds of the others. Iterative
    proportional fitting on the history's pair counts then rescales rows (importers) and
    columns (headings) until every importer's and every heading's mean multiplier is 1: each
    attribute alone shows the base rate, only the pair reveals the scheme (an XOR-like design
    that a model looking at one attribute at a time cannot see).
    """
    cell = importer.astype(np.int64) * n_headings + heading
    cells, inverse = np.unique(cell, return_inverse=True)
    count = np.bincount(inverse[:n_history], minlength=len(cells)).astype(np.float64)
    cell_imp = cells // n_headings
    cell_head = cells % n_headings
    imp_ids, imp_of_cell = np.unique(cell_imp, return_inverse=True)
    head_ids, head_of_cell = np.unique(cell_head, return_inverse=True)
    row_total = np.bincount(imp_of_cell, count, minlength=len(imp_ids))
    col_total = np.bincount(head_of_cell, count, minlength=len(head_ids))
    eligible = count >= 5
    rows_ok = np.bincount(imp_of_cell, eligible, minlength=len(imp_ids)) >= 3
    cols_ok = np.bincount(head_of_cell, eligible, minlength=len(head_ids)) >= 3
    small = (count <= 0.12 * row_total[imp_of_cell]) & (count <= 0.12 * col_total[head_of_cell])
    chosen = eligible & rows_ok[imp_of_cell] & cols_ok[head_of_cell] & small & (rng.random(len(cells)) < 0.2)
    base = np.where(chosen, COMBINATION_LIFT, 1.0)
    r = np.ones(len(imp_ids))
    c = np.ones(len(head_ids))
    has_rows, has_cols = row_total > 0, col_total > 0
    for _ in range(500):
        row = np.bincount(imp_of_cell, count * base * r[imp_of_cell] * c[head_of_cell], minlength=len(imp_ids))
        if np.max(np.abs(row[has_rows] / row_total[has_rows] - 1.0), initial=0.0) < 1e-9:
            break
        r[has_rows] *= row_total[has_rows] / row[has_rows]
        col = np.bincount(head_of_cell, count * base * r[imp_of_cell] * c[head_of_cell], minlength=len(head_ids))
        c[has_cols] *= col_total[has_cols] / col[has_cols]
    m = base * r[imp_of_cell] * c[head_of_cell]
    return PairRates(importers=cell_imp[chosen], headings=cell_head[chosen], multiplier=m[inverse])


class _Builder:
    """Collects mechanisms, drawing each one's would-be values from the world's streams."""

    def __init__(self, seed: int, trade: Trade, actors: Actors, history_days: int):
        self.trade = trade
        self.actors = actors
        self.history_days = history_days
        self.v = trade.values
        self.rng = stream(seed, "mechanisms")
        self.mechanisms: list[Mechanism] = []
        b, day, imp = trade.broker, trade.day, trade.importer
        drift = np.where(day >= actors.broker_change_day[b], actors.broker_change[b], 1.0)
        newcomer = np.where(day - actors.imp_arrival[imp] < 60, 1.8, 1.0)
        self._clerical_base = actors.broker_care[b] * drift * newcomer

    def clerical(self, kind: str, rate: float) -> np.ndarray:
        """Per-item probability of a broker's clerical error of this kind.

        The broker factors are scaled to mean 1 over the world's items, so ``rate`` is the
        world's average rate however the few large brokers of a small world happen to be.
        """
        b = self.trade.broker
        factor = self._clerical_base * self.actors.broker_mult[b, CLERICAL.index(kind)]
        return np.minimum(0.95, rate * factor / max(float(factor.mean()), 1e-12))

    def scheme_start(self, n: int) -> np.ndarray:
        """Day a scheme begins: at the importer's arrival mostly, later for some."""
        later = self.rng.random(n) < 0.3
        return np.where(later, (self.rng.random(n) * self.history_days).astype(np.int64), 0)

    def add(self, name: str, error: str, q: np.ndarray, changes: dict[str, np.ndarray],
            declaration_level: bool = False, scheme: int = -1) -> None:
        """Register a mechanism; ``q`` and ``changes`` are full-length (one value per item).

        Items where it would change nothing are left out: it could not leave a trace there.
        """
        differs = np.zeros(self.trade.n, dtype=bool)
        for f, would in changes.items():
            differs |= would != self.v[f]
        items = np.flatnonzero((q > 0) & differs)
        self.mechanisms.append(Mechanism(
            name=name, error=error, items=items, q=q[items].astype(np.float64),
            changes={f: would[items] for f, would in changes.items()},
            declaration_level=declaration_level, scheme=scheme))

    def decl_random(self, size: int | None = None) -> np.ndarray:
        n_decl = self.trade.n_declarations
        return self.rng.random(n_decl if size is None else (n_decl, size))[self.trade.decl]


def scheme_personas(seed: int, n_importers: int) -> np.ndarray:
    """int64[n_importers]: whose schemes each importer runs after a drift day.

    :data:`DRIFT_SHARE` of the importers, drawn at random, pass their schemes round in a
    random cycle (each takes the next one's habits: evasion, claims, re-routing, ...); the
    others keep their own. From a seed stream of its own, so that a world without drift is
    the same bytes whether or not this is drawn."""
    rng = stream(seed, "drift")
    persona = np.arange(n_importers, dtype=np.int64)
    movers = np.flatnonzero(rng.random(n_importers) < DRIFT_SHARE)
    rng.shuffle(movers)
    if len(movers) > 1:
        persona[movers] = np.roll(movers, -1)
    return persona


def build_mechanisms(seed: int, trade: Trade, tariff: Tariff, actors: Actors, geo: Geography,
                     history_days: int, drift_day: int | None = None) -> tuple[list[Mechanism], PairRates]:
    """Every error mechanism of the world, in the order they are applied.

    With ``drift_day``, importers' schemes switch on that day (:func:`scheme_personas`):
    what an importer's history taught about it turns stale, the change a model must track.
    """
    m = _Builder(seed, trade, actors, history_days)
    v, rng, n = trade.values, m.rng, trade.n
    imp, day, line = trade.importer, trade.day, v["line"]
    n_imp = actors.n_importers
    # whose scheme habits each item follows: its importer's, or after the drift its persona's
    who = imp if drift_day is None else np.where(day >= drift_day, scheme_personas(seed, n_imp)[imp], imp)
    n_man = len(actors.man_country)

    def importer_flag(share: float) -> np.ndarray:
        return rng.random(n_imp) < share

    # --- Key fields: code, description, parties, countries, claims, licence -------------
    # Residual "other" lines attract more wrong codes than specific ones.
    residual = np.array([c.endswith(("90", "99", "19")) for c in tariff.code])
    confusability = rng.lognormal(0.0, 0.8, tariff.n_lines) * np.where(residual, 1.5, 1.0)
    pick = (rng.random(n) < 0.3).astype(np.int64)
    m.add("code confusion", "hs_code", m.clerical("hs_code", 0.012) * confusability[line],
          {"line": tariff.confused_with[line, pick]})

    evader = importer_flag(0.05)
    evasion_rate = rng.uniform(0.25, 0.7, n_imp)
    false_description = rng.uniform(0.2, 0.95, n_imp)
    start = m.scheme_start(n_imp)
    pair = imp.astype(np.int64) * (tariff.heading.max() + 1) + tariff.heading[line]
    pairs, pair_inverse = np.unique(pair, return_inverse=True)
    in_scheme = (rng.random(len(pairs)) < 0.5)[pair_inverse]
    target = tariff.evasion_target[line]
    ok = evader[who] & in_scheme & (target >= 0) & (day >= start[who])
    safe_target = np.where(target >= 0, target, line)
    lie = rng.random(n) < false_description[who]
    m.add("misclassification scheme", "hs_code", np.where(ok, evasion_rate[who], 0.0), {
        "line": safe_target,
        "desc": np.where(lie, description_key(safe_target, v["manufacturer"], n_man), v["desc"]),
        "licence": np.where(tariff.licence[safe_target], v["licence"], 0),
    }, scheme=SCHEMES.index("evasion"))

    m.add("vague description", "description", m.clerical("description", 0.006),
          {"desc": generic_description_key(tariff.heading[line], tariff.n_lines, n_man)})

    rerouter = importer_flag(0.06)
    start = m.scheme_start(n_imp)
    via_acquisition = importer_flag(0.5)
    via_plant = importer_flag(0.5)
    transit = actors.imp_transit[imp]
    transit_row = np.full(len(geo.codes), 0, dtype=np.int64)
    transit_row[geo.indices(list(TRANSIT_COUNTRIES))] = np.arange(len(TRANSIT_COUNTRIES))
    plant = actors.transit_plants[transit_row[transit], rng.integers(0, 4, n)]
    m.add("re-routing of dumped goods", "origin_country",
          np.where(rerouter[who] & (v["ad"] > 0) & (day >= start[who]), 0.6, 0.0), {
              "origin": transit,
              "acquisition": np.where(via_acquisition[who], transit, v["acquisition"]),
              "manufacturer": np.where(via_plant[who], plant, v["manufacturer"]),
          }, scheme=SCHEMES.index("reroute"))

    m.add("seller's country as origin", "origin_country",
          np.where(v["origin"] != v["acquisition"], m.clerical("origin", 0.02), 0.0), {"origin": v["acquisition"]})

    claimer = importer_flag(0.08)
    start = m.scheme_start(n_imp)
    agreement = geo.agreement[v["origin"]]
    covered = np.zeros(n, dtype=bool)
    for a, agr in enumerate(AGREEMENTS):
        covered |= (agreement == a) & agr.covers(tariff.chapter[line])
    mercosur = AGREEMENTS[0]
    acq_mercosur = np.isin(v["acquisition"], geo.indices(list(mercosur.members)))
    triangulate = acq_mercosur & (geo.agreement[v["origin"]] < 0) & mercosur.covers(tariff.chapter[line])
    unfounded = (agreement >= 0) & ~covered
    uncertified = covered & (v["pref"] == 0)
    m.add("unfounded preference", "preferential_claim",
          np.where(claimer[who] & (day >= start[who]) & (triangulate | unfounded | uncertified), 0.6, 0.0), {
              "pref": np.where(triangulate, 1, agreement + 1),
              "origin": np.where(triangulate, v["acquisition"], v["origin"]),
          }, scheme=SCHEMES.index("preference"))
    m.add("preference left out", "preferential_claim", np.where(v["pref"] > 0, m.clerical("preference", 0.03), 0.0),
          {"pref": np.zeros(n, dtype=np.int64)})

    ex_claimer = importer_flag(0.2)
    start = m.scheme_start(n_imp)
    ex_count = tariff.ex_count[line]
    m.add("unfounded ex-tariff", "ex_tariff_claim",
          np.where(ex_claimer[who] & (ex_count > 0) & (v["ex"] == 0) & (day >= start[who]), 0.45, 0.0),
          {"ex": np.where(ex_count > 0, 1 + np.floor(rng.random(n) * ex_count).astype(np.int64), 0)},
          scheme=SCHEMES.index("ex_tariff"))

    hub_user = importer_flag(0.02)
    start = m.scheme_start(n_imp)
    hub = actors.imp_hub[imp]
    m.add("hub re-invoicing", "exporter", np.where(hub_user[who] & (day >= start[who]), 0.5, 0.0),
          {"exporter": hub, "acquisition": actors.exp_country[hub]}, declaration_level=True,
          scheme=SCHEMES.index("hub"))

    n_links = np.diff(actors.link_ptr)[imp]
    first_link = actors.link_ptr[imp]
    other = np.where(trade.link == first_link, np.minimum(first_link + 1, actors.link_ptr[imp + 1] - 1), first_link)
    m.add("wrong exporter", "exporter", np.where(n_links > 1, m.clerical("exporter", 0.004), 0.0),
          {"exporter": actors.link_exporter[other]}, declaration_level=True)

    own_plant = actors.man_self[v["manufacturer"]] == v["exporter"]
    m.add("exporter as manufacturer", "manufacturer",
          np.where(own_plant, 0.0, m.clerical("manufacturer", 0.010)),
          {"manufacturer": n_man + v["exporter"]})

    hider = importer_flag(0.25)
    start = m.scheme_start(n_imp)
    related = v["related"] == 1
    m.add("hidden relation", "related_party", np.where(hider[who] & related & (day >= start[who]), 0.7, 0.0),
          {"related": np.zeros(n, dtype=np.int64)}, declaration_level=True, scheme=SCHEMES.index("related"))
    m.add("relation left out", "related_party", np.where(related, m.clerical("exporter", 0.02), 0.0),
          {"related": np.zeros(n, dtype=np.int64)}, declaration_level=True)

    careless = importer_flag(0.05)
    start = m.scheme_start(n_imp)
    licensed = v["licence"] > 0
    m.add("licence omitted", "import_licence", np.where(careless[who] & licensed & (day >= start[who]), 0.4, 0.0),
          {"licence": np.zeros(n, dtype=np.int64)}, scheme=SCHEMES.index("licence"))
    m.add("wrong licence number", "import_licence", np.where(licensed, m.clerical("import_licence", 0.015), 0.0),
          {"licence": v["licence"] + 3})

    # --- Rates: omissions, superseded rates, general rates on sector-rated goods ---------
    m.add("anti-dumping omitted", "antidumping", np.where(v["ad"] > 0, m.clerical("antidumping", 0.10), 0.0),
          {"ad": np.zeros(n)})
    m.add("countervailing omitted", "countervailing", np.where(v["cvd"] > 0, m.clerical("antidumping", 0.10), 0.0),
          {"cvd": np.zeros(n)})
    margin = np.array([0.0, *(a.margin for a in AGREEMENTS)])
    slowness = actors.broker_slowness[trade.broker]
    slowness = slowness / slowness.mean()
    for fname, error, change in (("duty", "import_duty_rate", tariff.duty), ("ipi", "ipi_rate", tariff.ipi),
                                 ("pis", "pis_rate", tariff.pis), ("cofins", "cofins_rate", tariff.cofins)):
        old = change.before[line]
        if fname == "duty":
            old = np.where(v["ex"] > 0, 0.0, np.round(old * (1.0 - margin[v["pref"]]), 2))
        since = day - change.day
        q = np.where((since >= 0) & change.changed[line], np.minimum(0.9, 0.3 * slowness * np.exp(-np.maximum(since, 0) / 25.0)), 0.0)
        m.add(f"superseded {fname} rate", error, q, {fname: old})
    sibling = tariff.confused_with[line, 0]
    sib = rates(tariff, sibling, day, v["origin"], v["pref"], v["ex"])
    m.add("duty of another code", "import_duty_rate", m.clerical("rates", 0.002), {"duty": sib["duty"]})
    m.add("IPI of another code", "ipi_rate", m.clerical("rates", 0.002), {"ipi": sib["ipi"]})
    sector_rated = (v["pis"] != 2.10) | (v["cofins"] != 9.65)
    m.add("general PIS/COFINS on sector-rated goods", "pis_rate",
          np.where(sector_rated, m.clerical("rates", 0.05), 0.0), {"pis": np.full(n, 2.10), "cofins": np.full(n, 9.65)})

    # --- Values ---------------------------------------------------------------------------
    link_flag = rng.random(len(actors.link_exporter)) < 0.03
    link_rate = rng.uniform(0.4, 0.9, len(actors.link_exporter))
    link_factor = rng.uniform(0.3, 0.7, len(actors.link_exporter))
    link_start = np.where(rng.random(len(link_flag)) < 0.3, (rng.random(len(link_flag)) * history_days).astype(np.int64), 0)
    lk = trade.link
    m.add("undervaluation with some suppliers", "undervaluation",
          np.where(link_flag[lk] & (day >= link_start[lk]), link_rate[lk], 0.0),
          {"value": np.round(v["value"] * link_factor[lk] * rng.lognormal(0.0, 0.05, n), 2)},
          scheme=SCHEMES.index("undervaluation"))
    low_invoicer = rng.random(actors.n_exporters) < 0.015
    factor = rng.uniform(0.4, 0.75, actors.n_exporters)
    ex_i = v["exporter"]
    m.add("undervalued invoices of a seller", "undervaluation", np.where(low_invoicer[ex_i], 0.35, 0.0),
          {"value": np.round(v["value"] * factor[ex_i], 2)})
    transfer = importer_flag(0.25)
    start = m.scheme_start(n_imp)
    m.add("overvaluation with related sellers", "overvaluation",
          np.where(transfer[who] & related & (v["duty"] <= 2.0) & (day >= start[who]), 0.5, 0.0),
          {"value": np.round(v["value"] * rng.uniform(1.4, 3.0, n), 2)}, scheme=SCHEMES.index("overvaluation"))
    m.add("value including freight and insurance", "overvaluation", m.clerical("value", 0.006),
          {"value": np.round(v["value"] + v["freight"] + v["insurance"], 2)}, declaration_level=True)
    m.add("value typo", "undervaluation", m.clerical("value", 0.0015),
          {"value": np.round(v["value"] * np.where(rng.random(n) < 0.5, 10.0, 0.1), 2)})

    # --- Declaration-level clerical fields --------------------------------------------------
    swap = {"FOB": ("CFR", "CIF"), "CFR": ("CIF", "FOB"), "CIF": ("CFR", "FOB"), "EXW": ("FCA", "FOB"),
            "FCA": ("EXW", "FOB"), "CPT": ("CIP", "FCA"), "CIP": ("CPT", "CIF"), "DAP": ("DDP", "CPT"),
            "DDP": ("DAP", "DAP")}
    table = np.array([[INCOTERMS.index(swap[t][k]) for k in range(2)] for t in INCOTERMS])
    m.add("wrong incoterm", "incoterm", m.clerical("incoterm", 0.008),
          {"incoterm": table[v["incoterm"], (m.decl_random() < 0.5).astype(np.int64)]}, declaration_level=True)
    usd, eur = CURRENCIES.index("USD"), CURRENCIES.index("EUR")
    m.add("wrong currency", "currency",
          np.where(v["currency"] == usd, m.clerical("currency", 0.002), np.minimum(0.95, 0.08 * m.clerical("currency", 1.0))),
          {"currency": np.where(v["currency"] == usd, eur, usd)}, declaration_level=True)
    mode_swap = np.array([AIR, POST, RAIL, ROAD, AIR])
    land = geo.land[actors.exp_country[v["exporter"]]]
    m.add("wrong transport mode", "transport_mode", m.clerical("transport_mode", 0.003),
          {"mode": np.where((v["mode"] == SEA) & land, ROAD, mode_swap[v["mode"]])}, declaration_level=True)
    m.add("wrong exchange coverage", "fx_coverage", m.clerical("fx_coverage", 0.005),
          {"fx": np.where(v["fx"] == WITH, np.where(m.decl_random() < 0.6, WITHOUT, FINANCED), WITH)},
          declaration_level=True)
    transaction = v["valuation"] == 0
    m.add("wrong valuation method", "valuation_method",
          np.where(transaction, m.clerical("valuation_method", 0.003), np.minimum(0.95, 0.25 * m.clerical("valuation_method", 1.0))),
          {"valuation": np.where(transaction, np.where(m.decl_random() < 0.6, 5, 2), 0)}, declaration_level=True)

    kind = m.decl_random()
    scale = np.where(m.decl_random() < 0.5, m.decl_random() * 0.4 + 0.3, m.decl_random() * 1.6 + 1.4)
    first_item = trade.item_no == 1
    decl_freight = np.bincount(trade.decl, v["freight"], minlength=trade.n_declarations)[trade.decl]
    several = np.diff(trade.decl_start)[trade.decl] > 1
    freight = np.select([kind < 0.3, (kind < 0.5) & several],
                        [np.zeros(n), np.where(first_item, np.round(decl_freight, 2), 0.0)],
                        np.round(v["freight"] * scale, 2))
    m.add("wrong freight", "freight", m.clerical("freight", 0.012), {"freight": freight}, declaration_level=True)
    insured = v["insurance"] > 0
    insurance = np.where(insured, np.where(kind < 0.5, 0.0, np.round(v["insurance"] * (2.0 + 8.0 * m.decl_random()), 2)),
                         np.round(v["value"] * 0.003, 2))
    m.add("wrong insurance", "insurance", m.clerical("insurance", 0.008), {"insurance": insurance},
          declaration_level=True)

    # --- Item-level quantities ----------------------------------------------------------------
    counted_in_kg = v["unit"] == KG
    u = rng.random(n)
    w = v["weight"]
    weight = np.maximum(0.001, np.round(np.select(
        [u < 0.5, u < 0.65, u < 0.75, u < 0.85],
        [w * rng.uniform(1.08, 1.3, n), w * 10.0, w / 10.0, w * 1000.0], w / rng.uniform(1.1, 1.5, n)), 3))
    m.add("wrong net weight", "net_weight", m.clerical("net_weight", 0.012),
          {"weight": weight, "quantity": np.where(counted_in_kg, weight, v["quantity"])})
    qty = v["quantity"]
    discrete = np.isin(v["unit"], [PCE, 5, 7])
    u = rng.random(n)
    wrong_count = np.select([u < 0.3, u < 0.55, u < 0.8], [qty * 10.0, qty / 10.0, qty * rng.uniform(0.05, 0.5, n)], qty * 12.0)
    wrong_count = np.where(discrete, np.maximum(1.0, np.round(wrong_count)), np.maximum(0.01, np.round(wrong_count, 2)))
    quantity = np.where(counted_in_kg, np.round(w * rng.uniform(1.05, 1.2, n), 3), wrong_count)
    m.add("wrong quantity", "quantity", m.clerical("quantity", 0.008), {"quantity": quantity})
    m.add("wrong unit", "unit", m.clerical("unit", 0.003), {
        "unit": np.where(counted_in_kg, PCE, KG),
        "quantity": np.where(counted_in_kg, np.maximum(1.0, np.round(w / rng.uniform(5, 50, n))), w),
    })

    # --- The combination-only scheme ----------------------------------------------------------
    pair_rates = balanced_pair_rates(imp, tariff.heading[line], trade.n_history, int(tariff.heading.max()) + 1, rng)
    habit = rng.choice([DRAWBACK, EXEMPTION, SUSPENSION], size=n_imp, p=[0.5, 0.3, 0.2])
    wrong = np.where(habit[imp] == v["regime"], NORMAL, habit[imp])
    m.add("regime on certain importer-heading pairs", COMBINATION_ERROR,
          np.minimum(0.95, COMBINATION_BASE_RATE * pair_rates.multiplier), {"regime": wrong})

    for mech in m.mechanisms:
        fire = stream(seed, "fire:" + mech.name)
        detect = stream(seed, "detect:" + mech.name)
        if mech.declaration_level:
            decl = trade.decl[mech.items]
            mech.u_fire = fire.random(trade.n_declarations)[decl]
            mech.u_detect = detect.random(trade.n_declarations)[decl]
        else:
            mech.u_fire = fire.random(len(mech.items))
            mech.u_detect = detect.random(len(mech.items))
    return m.mechanisms, pair_rates

