"""``generate_world``: a synthetic customs world with its ground truth.

The pipeline (each step a module of ``sisam.synth``):

1. ``nomenclature``: the tariff (real HS texts, national lines, rates, measures, changes);
2. ``actors``: importers, exporters, manufacturers, brokers, offices;
3. ``trade``: the true declarations and items;
4. ``mechanisms``: the latent causes of error and the values they would declare;
5. ``inspection``: strikes, inspections, detections and importers stopping schemes, in
   two-week blocks;
6. here: declared values (keys first, then rates recomputed from the declared keys, then
   rate overrides), rectified values (the detected mechanisms' fields set back to the
   truth), the labels by the catalog's rules, and the probability each item had each error;
7. ``writing``: the four tables, written atomically.

Labels are never taken from the mechanisms' bookkeeping: ``e_<id>`` is the catalog's rule
between declared and true values, ``found_<id>`` between declared and rectified values, so
the labels a reader derives from (history, rectified) equal ``found_<id>`` exactly.
``p_<id>`` is 1 - prod over mechanisms of (1 - q * [the mechanism would leave error id]),
the probability given the world's latent state (who runs which scheme, which broker, which
rate changed), not given the declared values a model sees.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sisam.contract import ERROR_IDS
from sisam.errors import SisamError
from sisam.knowledge import ErrorType, load_knowledge
from sisam.synth.actors import build_actors
from sisam.synth.geography import geography
from sisam.synth.inspection import simulate
from sisam.synth.mechanisms import (
    COMBINATION_BASE_RATE,
    COMBINATION_ERROR,
    COMBINATION_LIFT,
    Mechanism,
    build_mechanisms,
)
from sisam.synth.nomenclature import Tariff, build_tariff
from sisam.synth.rules import ERROR_FIELD, FIELD_COLUMN, check_catalog, holds, rule_matrix
from sisam.synth.trade import RATE_FIELDS, RATE_INPUTS, Trade, build_trade, rates
from sisam.synth.writing import (
    Dictionaries,
    contract_table,
    declaration_ids,
    rates_table,
    write_world,
)

log = logging.getLogger("sisam.synth")
FORMATS = ("parquet", "csv")
#: Fields whose true values the truth table carries as ``true_<contract column>``.
TRUE_FIELDS = ("line", "value", "duty", "ipi", "pis", "cofins", "ad", "cvd")


@dataclass(frozen=True)
class CombinationScheme:
    """The error that only a pair of attributes reveals (see ``mechanisms.balanced_pair_rates``).

    ``pairs`` holds the (importer_id, heading) pairs, heading being the first 4 digits of
    ``hs_code``, on which error ``error_id`` is ``lift`` times likelier in odds than on the
    importer's and the heading's other items, while every importer's and every heading's
    rate over all its items is the same base rate.
    """

    error_id: str
    base_rate: float
    lift: float
    pairs: frozenset[tuple[str, str]]


@dataclass(frozen=True)
class WorldSummary:
    """What ``generate_world`` made: counts, error rates, the combination scheme, time."""

    history_items: int
    test_items: int
    inspected_items: int
    declarations: int
    importers: int
    true_rates: Mapping[str, float]    # per error id, share of history items having it
    found_rates: Mapping[str, float]   # per error id, share of inspected items where found
    combination: CombinationScheme
    seconds: float
    files: tuple[Path, ...]

    def __str__(self) -> str:
        inspected = self.inspected_items / max(self.history_items, 1)
        lines = [
            f"synthetic world: {self.history_items:,} history items, {self.test_items:,} test items, "
            f"{self.declarations:,} declarations, {self.importers:,} importers; "
            f"{self.inspected_items:,} inspected ({inspected:.1%}); {self.seconds:.1f} s",
            "error rates, true among history items / found among inspected items:",
        ]
        ids = list(self.true_rates)
        cells = [f"  {e:<20}{self.true_rates[e]:>7.2%}{self.found_rates[e]:>8.2%}" for e in ids]
        for i in range(0, len(cells), 3):
            lines.append("".join(cells[i:i + 3]))
        lines.append(f"combination-only scheme: {self.combination.error_id} on "
                     f"{len(self.combination.pairs):,} (importer, heading) pairs")
        lines.append("files: " + ", ".join(str(p) for p in self.files))
        return "\n".join(lines)


def _check_arguments(n_items: int, days: int, test_days: int, file_format: str) -> None:
    problems = []
    if n_items < 1:
        problems.append(f"n_items must be at least 1; got {n_items}")
    if days < 1:
        problems.append(f"days must be at least 1; got {days}")
    if test_days < 0:
        problems.append(f"test_days must be 0 or more; got {test_days}")
    if file_format not in FORMATS:
        problems.append(f"file_format must be one of {FORMATS}; got {file_format!r}")
    if problems:
        raise SisamError("cannot generate the world: " + "; ".join(problems))


def _would_be(mech: Mechanism, trade: Trade, tariff: Tariff) -> dict[str, np.ndarray]:
    """The fields a mechanism touches, as it would declare them on all its items."""
    v = trade.values
    items = mech.items
    out = dict(mech.changes)
    if RATE_INPUTS.intersection(mech.changes):
        keys = {f: out.get(f, v[f][items]) for f in ("line", "origin", "pref", "ex")}
        recomputed = rates(tariff, keys["line"], trade.day[items], keys["origin"], keys["pref"], keys["ex"])
        for f in RATE_FIELDS:
            out.setdefault(f, recomputed[f])
    return out


def _declared(trade: Trade, tariff: Tariff, mechanisms: list[Mechanism]) -> dict[str, np.ndarray]:
    """Declared values: key mechanisms, then rates from the declared keys, then rate overrides."""
    declared = {f: a.copy() for f, a in trade.values.items()}
    for stage in (False, True):
        if stage:
            recomputed = rates(tariff, declared["line"], trade.day, declared["origin"], declared["pref"], declared["ex"])
            declared.update(recomputed)
        for mech in mechanisms:
            if mech.sets_rates != stage or not mech.fired.any():
                continue
            hit = mech.items[mech.fired]
            for f, would in mech.changes.items():
                declared[f][hit] = would[mech.fired]
    return declared


def _probabilities(errors: tuple[ErrorType, ...], trade: Trade, tariff: Tariff, mechanisms: list[Mechanism],
                   dicts: Dictionaries, prefix_codes: dict[int, np.ndarray]) -> np.ndarray:
    """float64[n, E]: probability that the world's mechanisms gave each item each error."""
    log_survive = np.zeros((trade.n, len(errors)))
    truth = trade.values
    for mech in mechanisms:
        if len(mech.items) == 0:
            continue
        would = _would_be(mech, trade, tariff)
        for j, error in enumerate(errors):
            field = ERROR_FIELD[error.id]
            if field not in would:
                continue
            d, r = would[field], truth[field][mech.items]
            if field == "desc":
                d, r = dicts.canonical_descriptions(d), dicts.canonical_descriptions(r)
            effect = holds(error, d, r, prefix_codes.get(error.prefix))
            if effect.any():
                q = np.where(effect, mech.q_effective, 0.0)
                np.add.at(log_survive[:, j], mech.items, np.log1p(-np.minimum(q, 1.0 - 1e-12)))
    return -np.expm1(log_survive)


def _rectified(trade: Trade, mechanisms: list[Mechanism], declared: dict[str, np.ndarray],
               rows: np.ndarray) -> dict[str, np.ndarray]:
    """Rectified values of the inspected ``rows``: detected mechanisms' fields back to truth."""
    position = np.full(trade.n, -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    rectified = {f: a[rows].copy() for f, a in declared.items()}
    for mech in mechanisms:
        if not mech.detected.any():
            continue
        hit = mech.items[mech.detected]
        for f in mech.corrects:
            rectified[f][position[hit]] = trade.values[f][hit]
    return rectified


def generate_world(n_items: int, days: int, seed: int, out_dir: Path, *, test_days: int = 30,
                   file_format: str = "parquet", drift_day: int | None = None) -> WorldSummary:
    """Generate a synthetic customs world and write it to ``out_dir``.

    Writes ``history``, ``rectified``, ``test``, ``truth`` and ``rates`` (``.parquet`` or
    ``.csv``; ``rates`` is the tariff's dated rates as legislation, ``sisam.legislation``):
    ``n_items`` items in all, the history over ``days`` days from 2024-01-01, the test period
    over the ``test_days`` that follow. The same arguments give the same bytes.
    ``history``, ``test`` and ``rectified`` have the contract's columns (contract.md);
    ``truth`` has, per history and test item, ``declaration_id``, ``item_no``, ``split``,
    ``inspected``, the true ``hs_code``, ``customs_value_usd`` and six rates as ``true_<column>``,
    and per error id ``p_<id>``, ``e_<id>``, ``found_<id>``.

    With ``drift_day`` (days from the start, 1 to ``days + test_days - 1``) half of the
    importers switch schemes on that day (``mechanisms.scheme_personas``): a world whose
    actors change behaviour, for measuring how knowledge tracks change.

    Raises SisamError for arguments out of range.
    """
    _check_arguments(n_items, days, test_days, file_format)
    if drift_day is not None and not 0 < drift_day < days + test_days:
        raise SisamError(f"cannot generate the world: drift_day must be between 1 and {days + test_days - 1}; got {drift_day}")
    started = time.perf_counter()
    errors = load_knowledge().errors
    check_catalog(errors)
    if tuple(e.id for e in errors) != ERROR_IDS:
        raise SisamError(f"the shipped error catalog does not list the contract's 30 error types in order; got {[e.id for e in errors]}")
    total_days = days + test_days
    geo = geography()
    tariff = build_tariff(seed, geo, days)
    actors = build_actors(seed, n_items, total_days, days, tariff, geo)
    trade = build_trade(seed, n_items, days, total_days, tariff, actors, geo)
    mechanisms, pair_rates = build_mechanisms(seed, trade, tariff, actors, geo, days, drift_day)
    inspected = simulate(seed, trade, tariff, actors, mechanisms, days)
    log.info("world of %d items: trade and mechanisms in %.1f s", n_items, time.perf_counter() - started)

    declared = _declared(trade, tariff, mechanisms)
    h = trade.n_history
    rows = np.flatnonzero(inspected[:h])
    rectified = _rectified(trade, mechanisms, declared, rows)

    dicts = Dictionaries(tariff, actors, geo)
    desc_keys = [trade.values["desc"], declared["desc"]] + [m.changes["desc"] for m in mechanisms if "desc" in m.changes]
    dicts.set_descriptions(np.concatenate(desc_keys))
    prefix_codes = {e.prefix: np.unique(np.array([c[: e.prefix] for c in tariff.code]), return_inverse=True)[1]
                    for e in errors if e.rule == "prefix_changed"}

    def canonical(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**values, "desc": dicts.canonical_descriptions(values["desc"])}

    true_c, declared_c, rectified_c = canonical(trade.values), canonical(declared), canonical(rectified)
    has_error = rule_matrix(errors, declared_c, true_c, prefix_codes)
    found_rows = rule_matrix(errors, {f: a[rows] for f, a in declared_c.items()}, rectified_c, prefix_codes)
    # An officer's correction that breaks no rule (a value within tolerance, a duty lowered)
    # is no correction: the rectified row keeps the declared value there.
    for f in rectified_c:
        allowed = np.zeros(len(rows), dtype=bool)
        for j, error in enumerate(errors):
            if ERROR_FIELD[error.id] == f:
                allowed |= found_rows[:, j]
        rectified_c[f] = np.where(allowed, rectified_c[f], declared_c[f][rows])
    found = np.zeros_like(has_error)
    found[rows] = found_rows
    probability = _probabilities(errors, trade, tariff, mechanisms, dicts, prefix_codes)

    decl_ids = declaration_ids(trade)
    history_rows, test_rows = np.arange(h), np.arange(h, trade.n)
    tables = {
        "history": contract_table(trade, history_rows, {f: a[:h] for f, a in declared_c.items()}, dicts, decl_ids),
        "rectified": contract_table(trade, rows, rectified_c, dicts, decl_ids),
        "test": contract_table(trade, test_rows, {f: a[h:] for f, a in declared_c.items()}, dicts, decl_ids),
    }
    is_inspected = np.zeros(trade.n, dtype=bool)
    is_inspected[rows] = True
    truth: dict[str, pa.Array] = {
        "declaration_id": decl_ids.take(pa.array(trade.decl)),
        "item_no": pa.array(trade.item_no),
        "split": pa.DictionaryArray.from_arrays(pa.array((np.arange(trade.n) >= h).astype(np.int8)),
                                                pa.array(["history", "test"])).cast(pa.string()),
        "inspected": pa.array(is_inspected),
    }
    # The true values behind the tax at stake, for every item (test items are never
    # rectified): what a suggested code and an expected recovery are measured against.
    for field in TRUE_FIELDS:
        values = true_c[field]
        column = FIELD_COLUMN[field]
        truth[f"true_{column}"] = (pa.array(values, pa.float64()) if values.dtype == np.float64
                                   else pc.take(dicts.columns[field], pa.array(values)))
    for j, error in enumerate(errors):
        truth[f"p_{error.id}"] = pa.array(probability[:, j])
        truth[f"e_{error.id}"] = pa.array(has_error[:, j])
        truth[f"found_{error.id}"] = pa.array(found[:, j])
    tables["truth"] = pa.table(truth)
    tables["rates"] = rates_table(tariff)
    files = write_world(tables, Path(out_dir), file_format)

    n_inspected = len(rows)
    true_rates = {e.id: float(has_error[:h, j].mean()) if h else 0.0 for j, e in enumerate(errors)}
    found_rates = {e.id: float(found_rows[:, j].mean()) if n_inspected else 0.0 for j, e in enumerate(errors)}
    pair_ids = dicts.columns["importer"].take(pa.array(pair_rates.importers)).to_pylist()
    heading_code = np.empty(int(tariff.heading.max()) + 1, dtype=object)
    heading_code[tariff.heading] = [c[:4] for c in tariff.code]
    heading_codes = heading_code[pair_rates.headings].tolist()
    summary = WorldSummary(
        history_items=h, test_items=trade.n - h, inspected_items=n_inspected,
        declarations=trade.n_declarations, importers=len(np.unique(trade.importer)),
        true_rates=MappingProxyType(true_rates), found_rates=MappingProxyType(found_rates),
        combination=CombinationScheme(COMBINATION_ERROR, COMBINATION_BASE_RATE, COMBINATION_LIFT,
                                      frozenset(zip(pair_ids, heading_codes, strict=True))),
        seconds=time.perf_counter() - started, files=tuple(files),
    )
    log.info("%s", summary)
    return summary

