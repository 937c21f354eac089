"""Inspection: which history items officers verify, what they detect, and who then stops.

Time runs in blocks of two weeks. In each block the mechanisms strike (schemes only while
the importer has not stopped them); officers then select declarations by

- rules on declared values: licensed chapters, goods under anti-dumping measures, high
  values, importers new to the trade;
- targeting: importers caught before (log of past detections) and the world's own
  knowledge of each item's risk (sum of its mechanisms' probabilities) blurred by noise;
- a small random share (1 % of declarations at least),

calibrated so that about ``INSPECTION_RATE`` of the block's items are inspected: a selected
declaration is inspected in full up to 8 items, beyond that on its riskiest items only.
Each struck mechanism on an inspected item is detected with its error type's probability
(:data:`DETECTION`). An importer caught in a scheme stops it from the next block with its own
probability: easy errors become rarer and the hardest remain (brief.md).

Test-period items are never inspected; the schemes stopped during the history stay stopped.
"""

from __future__ import annotations

import numpy as np

from sisam.synth.actors import Actors
from sisam.synth.mechanisms import SCHEMES, Mechanism
from sisam.synth.nomenclature import Tariff
from sisam.synth.streams import stream
from sisam.synth.trade import Trade

INSPECTION_RATE = 0.07
BLOCK_DAYS = 14
#: Probability that an officer detects an error of each type on an inspected item.
DETECTION = {
    "hs_code": 0.80, "hs_chapter": 0.85, "description": 0.75, "origin_country": 0.70,
    "acquisition_country": 0.75, "exporter": 0.85, "manufacturer": 0.70, "related_party": 0.70,
    "import_licence": 0.95, "tax_regime": 0.90, "preferential_claim": 0.90, "ex_tariff_claim": 0.85,
    "import_duty_rate": 0.90, "ipi_rate": 0.90, "pis_rate": 0.90, "cofins_rate": 0.90,
    "antidumping": 0.80, "countervailing": 0.80, "undervaluation": 0.70, "overvaluation": 0.75,
    "net_weight": 0.85, "quantity": 0.85, "unit": 0.90, "incoterm": 0.80, "freight": 0.75,
    "insurance": 0.80, "currency": 0.90, "transport_mode": 0.95, "fx_coverage": 0.80,
    "valuation_method": 0.75,
}
_FULL_INSPECTION_ITEMS = 8
_RANDOM_SHARE = 0.01


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _items_inspected_if_selected(size: np.ndarray) -> np.ndarray:
    extra = np.ceil(0.1 * np.maximum(size - _FULL_INSPECTION_ITEMS, 0))
    return np.minimum(size, _FULL_INSPECTION_ITEMS + extra)


def _calibrate(score: np.ndarray, k: np.ndarray, target: float) -> float:
    """Offset a with sum((sigmoid(a + score) + floor) * k) == target, by bisection."""
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        p = np.minimum(1.0, _sigmoid(mid + score) + _RANDOM_SHARE)
        if float(p @ k) > target:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


def simulate(seed: int, trade: Trade, tariff: Tariff, actors: Actors, mechanisms: list[Mechanism],
             history_days: int) -> np.ndarray:
    """Decide strikes, inspections and detections; return bool[n] of inspected items.

    Fills each mechanism's ``q_effective``, ``fired`` and ``detected``.
    """
    rng = stream(seed, "inspection")
    n, n_imp = trade.n, actors.n_importers
    imp = trade.importer
    for mech in mechanisms:
        mech.q_effective = mech.q.copy()
        mech.fired = np.zeros(len(mech.items), dtype=bool)
        mech.detected = np.zeros(len(mech.items), dtype=bool)
    active = np.ones((len(SCHEMES), n_imp), dtype=bool)
    stop_probability = rng.uniform(0.4, 0.95, n_imp)
    stop_draw = rng.random((len(SCHEMES), n_imp))
    importer_noise = rng.normal(0.0, 0.5, n_imp)
    item_noise = rng.normal(0.0, 0.8, n)
    select_draw = rng.random(trade.n_declarations)
    order_noise = rng.gumbel(0.0, 1.0, n)
    past = np.zeros(n_imp)
    inspected = np.zeros(n, dtype=bool)
    detection = {m.name: DETECTION[m.error] for m in mechanisms}

    edges = [*range(0, history_days, BLOCK_DAYS), history_days, int(trade.day[-1]) + 1 if n else history_days]
    bounds = np.searchsorted(trade.day, edges)
    for lo, hi, is_history in ((bounds[i], bounds[i + 1], edges[i] < history_days) for i in range(len(edges) - 1)):
        if hi <= lo:
            continue
        ranges = []
        risk = np.zeros(hi - lo)
        line = trade.values["line"][lo:hi].copy()
        value = trade.values["value"][lo:hi].copy()
        for mech in mechanisms:
            a, b = np.searchsorted(mech.items, [lo, hi])
            ranges.append((a, b))
            if mech.scheme >= 0:
                mech.q_effective[a:b] = mech.q[a:b] * active[mech.scheme, imp[mech.items[a:b]]]
            mech.fired[a:b] = mech.u_fire[a:b] < mech.q_effective[a:b]
            if not is_history:
                continue
            local = mech.items[a:b] - lo
            risk += np.bincount(local, mech.q_effective[a:b], minlength=hi - lo)
            hit = mech.fired[a:b]
            if "line" in mech.changes:
                line[local[hit]] = mech.changes["line"][a:b][hit]
            if "value" in mech.changes:
                value[local[hit]] = mech.changes["value"][a:b][hit]
        if not is_history:
            continue

        # Selection of declarations, then of items inside large ones.
        block_imp = imp[lo:hi]
        z = np.log(risk + 1e-4)
        z = (z - z.mean()) / max(float(z.std()), 1e-9) + importer_noise[block_imp] + item_noise[lo:hi]
        new = trade.day[lo:hi] - actors.imp_arrival[block_imp] < 90
        score = (1.6 * tariff.licence[line] + 1.3 * tariff.under_defence(line) + 0.8 * (value > 50_000)
                 + 0.6 * np.log1p(past[block_imp]) + 0.7 * z + 0.4 * new)
        d_lo, d_hi = trade.decl[lo], trade.decl[hi - 1] + 1
        starts = trade.decl_start[d_lo:d_hi] - lo
        size = np.diff(trade.decl_start[d_lo:d_hi + 1])
        decl_score = np.maximum.reduceat(score, starts)
        k = _items_inspected_if_selected(size)
        offset = _calibrate(decl_score, k, INSPECTION_RATE * (hi - lo))
        p = np.minimum(1.0, _sigmoid(offset + decl_score) + _RANDOM_SHARE)
        selected = select_draw[d_lo:d_hi] < p
        local_decl = trade.decl[lo:hi] - d_lo
        ranked = np.lexsort((-(score + order_noise[lo:hi]), local_decl))
        rank = np.empty(hi - lo, dtype=np.int64)
        rank[ranked] = np.arange(hi - lo) - starts[local_decl[ranked]]
        inspected[lo:hi] = selected[local_decl] & (rank < k[local_decl])

        # Detection and its consequences.
        caught = np.zeros((len(SCHEMES), n_imp), dtype=bool)
        for mech, (a, b) in zip(mechanisms, ranges, strict=True):
            items = mech.items[a:b]
            found = mech.fired[a:b] & inspected[items] & (mech.u_detect[a:b] < detection[mech.name])
            mech.detected[a:b] = found
            if found.any():
                np.add.at(past, imp[items[found]], 1.0)
                if mech.scheme >= 0:
                    caught[mech.scheme, imp[items[found]]] = True
        active &= ~(caught & (stop_draw < stop_probability[None, :]))
    return inspected
